/*
 * it_misuse.c - every API misuse the library promises to survive.
 *
 *   it_misuse DIR
 *
 * Each misuse below must be ignored (no crash, no damage to the spans
 * around it) and counted in stageprof_summary.misuse; check_misuse.py
 * checks the counts and that the legitimate spans are intact:
 *
 *   span_end_other_thread   "cross", begun on main, ended by a thread
 *                           that records (t1) and by one that never did
 *                           (t2); main then ends it properly
 *   span_end_without_begin  "twice" ended twice; a stale copy of it ended
 *                           while "victim" holds its nesting level; "orphan"
 *                           ended after its parent closed it
 *   span_closed_by_parent   "parent" ended while "orphan" is open
 *   span_too_deep           130 nested "deep" spans: 128 recorded
 *   arg_after_close         an argument for "twice" after its end
 *   run_end_without_begin   run 777 ended, never begun
 *
 * Calls that are no-ops by contract (NULL or zero spans, run id 0) must not
 * count.
 */
#include "it_common.h"

#include <pthread.h>

#define DEEP 130

static stageprof_site_t cross_site = STAGEPROF_SITE_INIT("cross", "compute");
static stageprof_span_t cross;

static void *t1_main(void *arg)
{
    (void)arg;
    stageprof_thread_set_name("t1");
    {
        STAGEPROF_SCOPE(span, "t1_work", "compute");
    }
    stageprof_span_end(&cross);
    return NULL;
}

static void *t2_main(void *arg)
{
    (void)arg;
    stageprof_span_end(&cross); /* this thread never recorded anything */
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        it_fail("usage: it_misuse DIR");
    it_start(argv[1]);
    stageprof_thread_set_name("misuse-main");

    /* Ended on other threads: ignored, then ended here. */
    cross = stageprof_span_begin(&cross_site);
    IT_CHECK(cross.owner != NULL);
    pthread_t t1, t2;
    IT_CHECK(pthread_create(&t1, NULL, t1_main, NULL) == 0);
    IT_CHECK(pthread_join(t1, NULL) == 0);
    IT_CHECK(pthread_create(&t2, NULL, t2_main, NULL) == 0);
    IT_CHECK(pthread_join(t2, NULL) == 0);
    stageprof_span_end(&cross);

    /* Ended twice; a stale copy must not end the span now at its level. */
    static stageprof_site_t twice_site = STAGEPROF_SITE_INIT("twice", "data");
    static stageprof_site_t victim_site = STAGEPROF_SITE_INIT("victim", "data");
    static stageprof_site_t child_site =
        STAGEPROF_SITE_INIT("victim_child", "data");
    stageprof_span_t twice = stageprof_span_begin(&twice_site);
    stageprof_span_t copy = twice;
    stageprof_span_end(&twice);
    stageprof_span_end(&twice);
    stageprof_span_arg_int(&twice, "late", 1);
    stageprof_span_t victim = stageprof_span_begin(&victim_site);
    stageprof_span_end(&copy);
    stageprof_span_t child = stageprof_span_begin(&child_site);
    stageprof_span_end(&child);
    stageprof_span_end(&victim);

    /* A parent closing an open child; the child's own end comes late. */
    static stageprof_site_t parent_site =
        STAGEPROF_SITE_INIT("parent", "serve");
    static stageprof_site_t orphan_site =
        STAGEPROF_SITE_INIT("orphan", "serve");
    stageprof_span_t parent = stageprof_span_begin(&parent_site);
    stageprof_span_t orphan = stageprof_span_begin(&orphan_site);
    stageprof_span_end(&parent);
    stageprof_span_end(&orphan);

    /* Deeper than 128: the extra begins return zero spans. */
    static stageprof_site_t deep_site = STAGEPROF_SITE_INIT("deep", "compute");
    static stageprof_span_t deep[DEEP];
    int recorded = 0;
    for (int i = 0; i < DEEP; i++) {
        deep[i] = stageprof_span_begin(&deep_site);
        recorded += deep[i].owner != NULL;
    }
    for (int i = DEEP - 1; i >= 0; i--)
        stageprof_span_end(&deep[i]);

    /* A run that was never begun. */
    STAGEPROF_RUN_END("job", 777);

    /* No-ops by contract: not misuse. */
    stageprof_span_end(NULL);
    stageprof_span_t none = stageprof_span_none();
    stageprof_span_end(&none);
    STAGEPROF_SPAN_END(none);
    STAGEPROF_ARG_INT(none, "k", 1);
    STAGEPROF_RUN_END("job", 0);
    /* A proper run, for contrast. */
    STAGEPROF_RUN_BEGIN("job", 5);
    STAGEPROF_RUN_END("job", 5);

    IT_CHECK_RC(stageprof_stop(), 0);
    printf("{\"deep_recorded\":%d,", recorded);
    it_print_last_path("last_path");
    printf(",");
    it_print_stats("stats");
    printf("}\n");
    return 0;
}
