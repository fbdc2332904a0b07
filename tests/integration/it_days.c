/*
 * it_days.c - a service left on "for days": far more runs than the ring
 * holds, inside a small byte budget.
 *
 *   STAGEPROF_BUFFER_BYTES=8M STAGEPROF_BUFFER_RUNS=32 it_days DIR RUNS
 *
 * Two threads: a front thread begins each run and records a span; one run
 * in 64 it hands to a worker thread through a one-slot mailbox (which
 * adopts it, records two nested spans and ends it), the others it finishes
 * itself the same way. Before the first run the front thread records
 * start-up work. Prints the peak resident set growth since
 * before the profiler started (from /proc/self/status), unless built with a
 * sanitizer (whose shadow memory would swamp it).
 */
#include "it_common.h"

#include <pthread.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define IT_SANITIZED 1
#else
#define IT_SANITIZED 0
#endif

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t run; /* 0: empty; UINT64_MAX: stop */
} box = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static void box_put(uint64_t run)
{
    pthread_mutex_lock(&box.lock);
    while (box.run != 0)
        pthread_cond_wait(&box.cond, &box.lock);
    box.run = run;
    pthread_cond_broadcast(&box.cond);
    pthread_mutex_unlock(&box.lock);
}

/* The run in the box (left there until box_done). */
static uint64_t box_take(void)
{
    pthread_mutex_lock(&box.lock);
    while (box.run == 0)
        pthread_cond_wait(&box.cond, &box.lock);
    uint64_t run = box.run;
    pthread_mutex_unlock(&box.lock);
    return run;
}

/* The worker finished the run in the box. */
static void box_done(void)
{
    pthread_mutex_lock(&box.lock);
    box.run = 0;
    pthread_cond_broadcast(&box.cond);
    pthread_mutex_unlock(&box.lock);
}

/* Hand @run over and wait until it is finished: runs complete in id order,
 * so "the last N completed runs" are the last N ids. */
static void box_handover(uint64_t run)
{
    box_put(run);
    pthread_mutex_lock(&box.lock);
    while (box.run != 0)
        pthread_cond_wait(&box.cond, &box.lock);
    pthread_mutex_unlock(&box.lock);
}

/* The second half of a run, on whichever thread handles it. */
static void finish(uint64_t run)
{
    STAGEPROF_RUN_SET(run);
    {
        STAGEPROF_SCOPE(infer, "infer", "compute");
        STAGEPROF_ARG_INT(infer, "expect_run", run);
        STAGEPROF_SCOPE(post, "post", "postprocess");
        STAGEPROF_ARG_INT(post, "expect_run", run);
    }
    STAGEPROF_RUN_END("request", run);
    STAGEPROF_RUN_SET(0);
}

static void *worker(void *arg)
{
    (void)arg;
    stageprof_thread_set_name("worker");
    for (;;) {
        uint64_t run = box_take();
        if (run == UINT64_MAX)
            return NULL;
        finish(run);
        box_done();
    }
}

/* A field of /proc/self/status in kB, or -1. */
static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    fclose(f);
    return v;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        it_fail("usage: it_days DIR RUNS");
    long long runs = strtoll(argv[2], NULL, 10);
    IT_CHECK(runs > 0);
    long rss0 = status_kb("VmRSS");
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 1;
    c.dir = argv[1];
    IT_CHECK_RC(stageprof_start(&c), 0);
    stageprof_thread_set_name("front");
    {
        STAGEPROF_SCOPE(load, "load_model", "engine"); /* start-up */
    }
    pthread_t th;
    IT_CHECK(pthread_create(&th, NULL, worker, NULL) == 0);
    for (long long i = 1; i <= runs; i++) {
        uint64_t run = (uint64_t)i;
        STAGEPROF_RUN_BEGIN("request", run);
        {
            STAGEPROF_SCOPE(recv, "receive", "serve");
            STAGEPROF_ARG_INT(recv, "expect_run", run);
        }
        STAGEPROF_RUN_SET(0);
        if (run % 64 == 0)
            box_handover(run);
        else
            finish(run);
    }
    box_put(UINT64_MAX);
    IT_CHECK(pthread_join(th, NULL) == 0);
    stageprof_stats_t st = {.size = sizeof st};
    IT_CHECK_RC(stageprof_get_stats(&st), 0);
    long hwm = status_kb("VmHWM");
    IT_CHECK_RC(stageprof_stop(), 0);
    printf("{\"runs\":%lld,\"dropped\":%llu,\"bytes_buffered\":%llu,"
           "\"rss_checked\":%s,\"rss_growth_kb\":%ld}\n",
           runs, (unsigned long long)st.events_dropped,
           (unsigned long long)st.bytes_buffered,
           IT_SANITIZED || rss0 < 0 || hwm < 0 ? "false" : "true", hwm - rss0);
    return 0;
}
