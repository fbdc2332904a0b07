/*
 * it_common.h - helpers shared by the integration test programs.
 *
 * Each program in tests/integration records a known workload through the
 * public API only, writes its trace into a directory the Python checker
 * created, and prints one JSON object on stdout: what it recorded (counts,
 * ids, thread names) and what the library said (return codes, stats). The
 * checker compares that with the trace. A program exits 1 on a failed
 * IT_CHECK, which the checker reports with the program's stderr.
 */
#ifndef IT_COMMON_H
#define IT_COMMON_H

#include <stageprof.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void it_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "integration test program: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

#define IT_CHECK(cond)                                                         \
    do {                                                                       \
        if (!(cond))                                                           \
            it_fail("%s:%d: check failed: %s", __FILE__, __LINE__, #cond);     \
    } while (0)

/* IT_CHECK for a library return code, naming the error when it fails. */
#define IT_CHECK_RC(expr, want)                                                \
    do {                                                                       \
        int it_rc_ = (expr);                                                   \
        if (it_rc_ != (want))                                                  \
            it_fail("%s:%d: %s returned %d (%s), wanted %d (%s)", __FILE__,    \
                    __LINE__, #expr, it_rc_, stageprof_err_name(it_rc_),       \
                    (int)(want), stageprof_err_name(want));                    \
    } while (0)

/* Start tracing into @dir with everything else from the environment. */
static inline void it_start(const char *dir)
{
    stageprof_config_t cfg;
    stageprof_config_init(&cfg);
    cfg.enable = 1;
    cfg.dir = dir;
    IT_CHECK_RC(stageprof_start(&cfg), 0);
    IT_CHECK(stageprof_is_tracing());
}

/* "@key":{...} from stageprof_get_stats(), as a JSON member. */
static inline void it_print_stats(const char *key)
{
    stageprof_stats_t st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    IT_CHECK_RC(stageprof_get_stats(&st), 0);
    printf("\"%s\":{\"events_dropped\":%" PRIu64 ",\"misuse\":%" PRIu64
           ",\"threads\":%" PRIu64 ",\"events_written\":%" PRIu64
           ",\"traces_written\":%" PRIu64 ",\"write_errors\":%" PRIu64 "}",
           key, st.events_dropped, st.misuse, st.threads, st.events_written,
           st.traces_written, st.write_errors);
}

/* "@key":"path" (the checker's directories need no escaping). */
static inline void it_print_last_path(const char *key)
{
    char path[4096];
    IT_CHECK_RC(stageprof_get_last_path(path, sizeof path), 0);
    IT_CHECK(strchr(path, '"') == NULL && strchr(path, '\\') == NULL);
    printf("\"%s\":\"%s\"", key, path);
}

#endif /* IT_COMMON_H */
