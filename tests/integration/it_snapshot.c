/*
 * it_snapshot.c - snapshots, gzip and retention in a whole process.
 *
 *   it_snapshot MODE DIR
 *
 * Settings come from the environment the checker (check_snapshot.py) sets;
 * traces go to DIR.
 *
 *   signals    prints "ready" once two threads record; they record until
 *              stdin reaches end of file while the checker sends the
 *              snapshot signal; then stop. Prints each thread's span count.
 *   gzip       SNAP_SPANS spans, stageprof_snapshot(), REST_SPANS more,
 *              stop. Prints the paths of both files.
 *   retention  NFLUSH flushes of FLUSH_SPANS spans each, then stop. Prints
 *              the paths in the order they were written.
 */
#include "it_common.h"

#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#define SNAP_SPANS 3000
#define REST_SPANS 1000
#define NFLUSH 5
#define FLUSH_SPANS 20

static int running = 1;

static void span(const char *who, long i)
{
    STAGEPROF_SCOPE(s, "work", "compute");
    STAGEPROF_ARG_STR(s, "who", who);
    STAGEPROF_ARG_INT(s, "i", i);
    STAGEPROF_SCOPE(inner, "step", "compute");
}

struct worker {
    const char *name;
    pthread_t thread;
    long spans;
};

/* Five spans a millisecond, until told to stop. */
static void *work(void *arg)
{
    struct worker *w = arg;
    stageprof_thread_set_name(w->name);
    struct timespec gap = {0, 1000000};
    while (__atomic_load_n(&running, __ATOMIC_ACQUIRE)) {
        for (int k = 0; k < 5; k++)
            span(w->name, w->spans++);
        nanosleep(&gap, NULL);
    }
    return NULL;
}

static void mode_signals(void)
{
    struct worker w[2] = {{"snap-a", 0, 0}, {"snap-b", 0, 0}};
    for (int i = 0; i < 2; i++)
        IT_CHECK(pthread_create(&w[i].thread, NULL, work, &w[i]) == 0);
    printf("ready\n");
    fflush(stdout);
    /* Wait for end of file on stdin in poll(), where ThreadSanitizer runs
     * signal handlers at once (it defers them during a plain read). */
    char buf[256];
    for (;;) {
        struct pollfd p = {.fd = 0, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        if (read(0, buf, sizeof buf) <= 0)
            break;
    }
    __atomic_store_n(&running, 0, __ATOMIC_RELEASE);
    for (int i = 0; i < 2; i++)
        IT_CHECK(pthread_join(w[i].thread, NULL) == 0);
    IT_CHECK_RC(stageprof_stop(), 0);
    printf("{\"spans\":{\"snap-a\":%ld,\"snap-b\":%ld},", w[0].spans,
           w[1].spans);
}

static void mode_gzip(void)
{
    stageprof_thread_set_name("gz-main");
    for (long i = 0; i < SNAP_SPANS; i++)
        span("gz-main", i);
    IT_CHECK_RC(stageprof_snapshot(), 0);
    printf("{\"snap_spans\":%d,\"rest_spans\":%d,", SNAP_SPANS, REST_SPANS);
    it_print_last_path("snapshot");
    for (long i = SNAP_SPANS; i < SNAP_SPANS + REST_SPANS; i++)
        span("gz-main", i);
    IT_CHECK_RC(stageprof_stop(), 0);
    printf(",");
    it_print_last_path("final");
    printf(",");
}

static void mode_retention(void)
{
    printf("{\"paths\":[");
    for (int f = 0; f < NFLUSH; f++) {
        for (long i = 0; i < FLUSH_SPANS; i++)
            span("ret", i);
        IT_CHECK_RC(stageprof_flush(), 0);
        char key[16];
        snprintf(key, sizeof key, "%d", f);
        if (f)
            printf(",");
        /* A one-member object per path: the helper prints "key":"path". */
        printf("{");
        it_print_last_path(key);
        printf("}");
    }
    IT_CHECK_RC(stageprof_stop(), 0);
    printf(",{");
    it_print_last_path("final");
    printf("}],");
}

int main(int argc, char **argv)
{
    if (argc != 3)
        it_fail("usage: it_snapshot signals|gzip|retention DIR");
    const char *mode = argv[1];
    it_start(argv[2]);
    if (strcmp(mode, "signals") == 0)
        mode_signals();
    else if (strcmp(mode, "gzip") == 0)
        mode_gzip();
    else if (strcmp(mode, "retention") == 0)
        mode_retention();
    else
        it_fail("unknown mode %s", mode);
    it_print_stats("stats");
    printf("}\n");
    return 0;
}
