/*
 * it_drops.c - far more events than the buffer budget holds.
 *
 *   STAGEPROF_BUFFER_BYTES=16K it_drops DIR
 *
 * Four threads each record ITER iterations of: a run, an "outer" span with
 * two arguments holding an "inner" span with one, a counter. The budget
 * fills after a few hundred records and the rest is dropped. The program
 * counts the spans the library accepted (a begin that returns a non-zero
 * span) so check_drops.py can demand exactly those in the trace.
 */
#include "it_common.h"

#include <pthread.h>

#define NTHREADS 4
#define ITER 3000

static uint64_t outer_kept[NTHREADS], inner_kept[NTHREADS];
static pthread_barrier_t go; /* all threads race for the budget at once */

static void *worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    char name[16];
    snprintf(name, sizeof name, "drop-%d", t);
    stageprof_thread_set_name(name);
    pthread_barrier_wait(&go);
    static stageprof_site_t outer_site = STAGEPROF_SITE_INIT("outer", "data");
    static stageprof_site_t inner_site =
        STAGEPROF_SITE_INIT("inner", "compute");
    for (int i = 0; i < ITER; i++) {
        uint64_t run = (uint64_t)t * 100000 + (uint64_t)i + 1;
        STAGEPROF_RUN_BEGIN("iteration", run);
        stageprof_span_t outer = stageprof_span_begin(&outer_site);
        outer_kept[t] += outer.owner != NULL;
        STAGEPROF_ARG_INT(outer, "expect_run", run);
        STAGEPROF_ARG_INT(outer, "i", i);
        stageprof_span_t inner = stageprof_span_begin(&inner_site);
        inner_kept[t] += inner.owner != NULL;
        STAGEPROF_ARG_INT(inner, "expect_run", run);
        stageprof_span_end(&inner);
        stageprof_span_end(&outer);
        STAGEPROF_COUNTER_INT("progress", i);
        STAGEPROF_RUN_END("iteration", run);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        it_fail("usage: it_drops DIR");
    it_start(argv[1]);
    pthread_t th[NTHREADS];
    IT_CHECK(pthread_barrier_init(&go, NULL, NTHREADS) == 0);
    for (int i = 0; i < NTHREADS; i++)
        IT_CHECK(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) ==
                 0);
    for (int i = 0; i < NTHREADS; i++)
        IT_CHECK(pthread_join(th[i], NULL) == 0);
    IT_CHECK(pthread_barrier_destroy(&go) == 0);

    uint64_t outer = 0, inner = 0;
    for (int i = 0; i < NTHREADS; i++)
        outer += outer_kept[i], inner += inner_kept[i];
    printf("{\"threads\":%d,\"iter\":%d,\"outer_kept\":%" PRIu64
           ",\"inner_kept\":%" PRIu64 ",",
           NTHREADS, ITER, outer, inner);
    /* The counts must not change when the trace is written... */
    it_print_stats("stats_before_stop");
    IT_CHECK_RC(stageprof_stop(), 0);
    printf(",");
    it_print_last_path("last_path");
    printf(",");
    it_print_stats("stats");
    /* ...nor may drops already reported reappear in a later trace. */
    IT_CHECK_RC(stageprof_flush(), 0);
    printf(",");
    it_print_last_path("second_path");
    printf("}\n");
    return 0;
}
