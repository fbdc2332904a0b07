/*
 * test_flow.c - runs crossing threads and flows between them: every event
 * carries the run its thread was working for when it was recorded.
 */
#include <pthread.h>

#include "helpers.h"

static void *worker(void *arg)
{
    uint64_t run = *(uint64_t *)arg;
    stageprof_run_set_current(run);
    ASSERT_UEQ(stageprof_run_get_current(), run);
    STAGEPROF_SCOPE(s, "infer", "compute");
    STAGEPROF_FLOW_END("handoff", run);
    return NULL;
}

STAGEPROF_TEST(run_crosses_threads)
{
    start_fake(NULL, 0);
    uint64_t run = 77;
    STAGEPROF_RUN_BEGIN("frame", run);
    ASSERT_UEQ(stageprof_run_get_current(), 77);
    {
        STAGEPROF_SCOPE(s, "push", "data");
        STAGEPROF_FLOW_BEGIN("handoff", run);
    }
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, worker, &run), 0);
    pthread_join(t, NULL);
    STAGEPROF_RUN_END("frame", run);
    ASSERT_UEQ(stageprof_run_get_current(), 0);
    {
        STAGEPROF_SCOPE(s, "after", "data");
    }
    char *trace = write_to_string(NULL);
    /* push, infer, flow s and f, run b and e: all with run 77. */
    ASSERT_EQ(count_of(trace, "\"run\":77"), 6);
    ASSERT_CONTAINS(trace, "\"name\":\"infer\",\"cat\":\"compute\"");
    ASSERT_CONTAINS(trace, "{\"ph\":\"f\",\"bp\":\"e\",\"name\":\"handoff\"");
    const char *after = strstr(trace, "\"name\":\"after\"");
    ASSERT_NOT_NULL(after);
    const char *eol = strchr(after, '\n');
    ASSERT_TRUE(strstr(after, "\"run\"") == NULL ||
                strstr(after, "\"run\"") > eol);
    ASSERT_CONTAINS(trace, "\"run_end_without_begin\":0");
    free(trace);
}

STAGEPROF_TEST(run_id_zero_ignored_and_set_clears)
{
    start_fake(NULL, 0);
    STAGEPROF_RUN_BEGIN("frame", 0); /* 0 means "no run" */
    ASSERT_UEQ(stageprof_run_get_current(), 0);
    STAGEPROF_RUN_BEGIN("frame", 5);
    stageprof_run_set_current(0);
    stageprof_run_set_current(5); /* adopt it again */
    {
        STAGEPROF_SCOPE(s, "in5", "x");
    }
    stageprof_run_set_current(0);
    {
        STAGEPROF_SCOPE(s, "none", "x");
    }
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"ph\":\"b\""), 1);
    ASSERT_EQ(count_of(trace, "\"run\":5"), 2); /* the b event, in5 */
    free(trace);
}

STAGEPROF_TEST(overlapping_runs_on_one_thread)
{
    start_fake(NULL, 0);
    STAGEPROF_RUN_BEGIN("request", 1);
    STAGEPROF_RUN_BEGIN("request", 2); /* now current */
    {
        STAGEPROF_SCOPE(s, "a", "serve");
    }
    STAGEPROF_RUN_END("request", 1); /* not current: 2 stays */
    {
        STAGEPROF_SCOPE(s, "b", "serve");
    }
    STAGEPROF_RUN_END("request", 2);
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"ph\":\"b\""), 2);
    ASSERT_EQ(count_of(trace, "\"ph\":\"e\""), 2);
    ASSERT_CONTAINS(trace, "\"name\":\"b\",\"cat\":\"serve\"");
    const char *b = strstr(trace, "\"name\":\"b\",");
    const char *tag = strstr(b, "\"run\":2}");
    ASSERT_NOT_NULL(tag);
    ASSERT_TRUE(tag < strchr(b, '\n'));
    free(trace);
}

STAGEPROF_TEST(run_never_begun_is_not_kept_by_the_ring)
{
    start_fake(NULL, 0);
    stageprof_run_set_current(77); /* never begun: no run of the ring */
    {
        STAGEPROF_SCOPE(s, "tagged", "x");
    }
    stageprof_run_set_current(0);
    {
        STAGEPROF_SCOPE(s, "untagged", "x"); /* recording itself works */
    }
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"name\":\"tagged\""), 0);
    ASSERT_EQ(count_of(trace, "\"name\":\"untagged\""), 1);
    free(trace);
}

STAGEPROF_TEST(run_never_begun_kept_without_ring)
{
    setenv("STAGEPROF_BUFFER_RUNS", "0", 1);
    start_fake(NULL, 0);
    stageprof_run_set_current(77);
    {
        STAGEPROF_SCOPE(s, "tagged", "x");
    }
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"run\":77"), 1);
    free(trace);
}

STAGEPROF_TEST_LIST(STAGEPROF_CASE(run_crosses_threads),
                    STAGEPROF_CASE(run_id_zero_ignored_and_set_clears),
                    STAGEPROF_CASE(overlapping_runs_on_one_thread),
                    STAGEPROF_CASE(run_never_begun_is_not_kept_by_the_ring),
                    STAGEPROF_CASE(run_never_begun_kept_without_ring))
