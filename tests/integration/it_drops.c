/*
 * it_drops.c - far more events than the buffer budget holds.
 *
 *   STAGEPROF_BUFFER_BYTES=16K it_drops DIR
 *
 * Four threads each record ITER iterations of: a run, an "outer" span with
 * two arguments holding an "inner" span with one, a counter. The budget
 * fills after a few hundred records and the rest is dropped. The program
 * counts the spans the library accepted (a begin that returns a non-zero
 * span) so check_drops.py can demand exactly those in the trace. Then, with
 * the budget full and the workers gone, main makes a known number of calls
 * of each kind, which must each add exactly one to the drop count.
 */
#include "it_common.h"

#include <pthread.h>

#define NTHREADS 4
#define ITER 3000

static uint64_t outer_kept[NTHREADS], inner_kept[NTHREADS];
static pthread_barrier_t go; /* all threads race for the budget at once */

static uint64_t dropped(void)
{
    stageprof_stats_t st;
    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    IT_CHECK_RC(stageprof_get_stats(&st), 0);
    return st.events_dropped;
}

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

    /*
     * The budget is full now and nothing else records: every call below
     * must be dropped and counted exactly once. "kind":[calls, counted].
     */
    stageprof_thread_set_name("drop-main");
    printf("{\"phase2\":{");
    static stageprof_site_t probe = STAGEPROF_SITE_INIT("probe", "data");
    for (int kind = 0; kind < 8; kind++) {
        static const char *const names[8] = {"span",    "span_name", "counter",
                                             "instant", "flow",      "run",
                                             "run_set", "complete"};
        uint64_t before = dropped(), calls = 0;
        for (int i = 0; i < 10 + kind; i++, calls++) {
            stageprof_span_t sp = stageprof_span_none();
            if (kind == 0)
                sp = stageprof_span_begin(&probe);
            else if (kind == 1)
                sp = stageprof_span_begin_name(&probe, "dynamic");
            else if (kind == 2)
                stageprof_counter_set_double(&probe, i);
            else if (kind == 3)
                sp = stageprof_instant(&probe);
            else if (kind == 4)
                stageprof_flow_begin(&probe, (uint64_t)i + 1);
            else if (kind == 5)
                stageprof_run_begin(&probe, (uint64_t)i + 1);
            else if (kind == 6)
                stageprof_run_set_current((uint64_t)i + 100);
            else
                stageprof_span_complete(&probe, stageprof_now_ns(), 10);
            IT_CHECK(sp.owner == NULL);
        }
        printf("%s\"%s\":[%" PRIu64 ",%" PRIu64 "]", kind ? "," : "",
               names[kind], calls, dropped() - before);
    }
    printf("},");

    uint64_t outer = 0, inner = 0;
    for (int i = 0; i < NTHREADS; i++)
        outer += outer_kept[i], inner += inner_kept[i];
    printf("\"threads\":%d,\"iter\":%d,\"outer_kept\":%" PRIu64
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
