/*
 * strbuf.h - a growable byte buffer, NUL-terminated, with an "out of
 * memory" latch instead of per-call error checks.
 *
 * Used by the library (with its allocator) and by the CLI (malloc). After an
 * allocation failure every append is ignored and sb->oom stays set; check it
 * once at the end.
 */
#ifndef STAGEPROF_STRBUF_H
#define STAGEPROF_STRBUF_H

#include <stddef.h>
#include <stdint.h>

struct strbuf {
    char *buf;  /* NUL-terminated contents, NULL until the first append */
    size_t len; /* bytes used, without the NUL */
    size_t cap; /* bytes allocated */
    int oom;    /* an allocation failed: contents are incomplete */
    void *(*alloc)(size_t);  /* NULL: malloc */
    void (*release)(void *); /* NULL: free */
};

void stageprof__sb_init(struct strbuf *sb, void *(*alloc)(size_t),
                        void (*release)(void *));
void stageprof__sb_fini(struct strbuf *sb);
/* Make room for @extra more bytes; 0 or -1 (oom latched). */
int stageprof__sb_reserve(struct strbuf *sb, size_t extra);
void stageprof__sb_add(struct strbuf *sb, const void *data, size_t len);
void stageprof__sb_adds(struct strbuf *sb, const char *s);
void stageprof__sb_addf(struct strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void stageprof__sb_reset(struct strbuf *sb);

#endif /* STAGEPROF_STRBUF_H */
