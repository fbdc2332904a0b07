/*
 * stageprof/version.h - compile-time version of the stageprof headers.
 *
 * Included by <stageprof.h>. Compare STAGEPROF_VERSION_HEX with
 * stageprof_version() at run time to detect a header/library mismatch.
 */
#ifndef STAGEPROF_VERSION_H
#define STAGEPROF_VERSION_H

#define STAGEPROF_VERSION_MAJOR 0
#define STAGEPROF_VERSION_MINOR 1
#define STAGEPROF_VERSION_PATCH 0
#define STAGEPROF_VERSION_STRING "0.1.0"

/* 0xMMmmpp: major, minor and patch in one comparable number. */
#define STAGEPROF_VERSION_HEX                                                  \
    ((STAGEPROF_VERSION_MAJOR << 16) | (STAGEPROF_VERSION_MINOR << 8) |        \
     STAGEPROF_VERSION_PATCH)

#endif /* STAGEPROF_VERSION_H */
