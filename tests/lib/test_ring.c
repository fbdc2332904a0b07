/*
 * test_ring.c - the run ring: exactly the last N runs in the trace, memory
 * reclaimed a chunk at a time within the budget, pinned start-up data,
 * the window of events outside runs, head sampling, and no eviction while
 * a writer reads.
 */
#include "helpers.h"
#include "ring.h"
#include "tbuf.h"

static void one_run(uint64_t id, int spans)
{
    STAGEPROF_RUN_BEGIN("frame", id);
    for (int i = 0; i < spans; i++) {
        STAGEPROF_SCOPE(s, "stage", "compute");
        STAGEPROF_ARG_INT(s, "run_id", id);
    }
    STAGEPROF_RUN_END("frame", id);
}

STAGEPROF_TEST(keeps_exactly_the_last_n_runs)
{
    setenv("STAGEPROF_BUFFER_RUNS", "4", 1);
    start_fake(NULL, 0);
    for (uint64_t id = 1; id <= 10; id++)
        one_run(id, 3);
    char *trace = write_to_string(NULL);
    for (uint64_t id = 1; id <= 6; id++)
        ASSERT_EQ(events_of_run(trace, id), 0);
    for (uint64_t id = 7; id <= 10; id++)
        ASSERT_EQ(events_of_run(trace, id), 3 + 2); /* spans, b and e */
    ASSERT_CONTAINS(trace, "\"ring\":{\"active\":true,\"capacity\":4,"
                           "\"runs_kept\":4,\"runs_in_progress\":0,"
                           "\"runs_evicted\":6,");
    free(trace);
}

STAGEPROF_TEST(budget_reclaimed_from_evicted_runs)
{
    setenv("STAGEPROF_BUFFER_RUNS", "8", 1);
    start_fake(NULL, 64 << 10); /* sixteen 4 KiB chunks */
    {
        STAGEPROF_SCOPE(load, "load_model", "engine"); /* start-up */
    }
    int runs = 20000;
    for (int id = 1; id <= runs; id++)
        one_run((uint64_t)id, 4);
    stageprof_stats_t st = stats();
    ASSERT_EQ(st.events_dropped, 0);
    ASSERT_LE(st.bytes_buffered, 64 << 10);
    char *trace = write_to_string(NULL);
    for (int id = runs - 7; id <= runs; id++)
        ASSERT_EQ(events_of_run(trace, (uint64_t)id), 6);
    ASSERT_EQ(events_of_run(trace, (uint64_t)(runs - 8)), 0);
    ASSERT_EQ(count_of(trace, "\"ph\":\"b\""), 8);
    ASSERT_EQ(count_of(trace, "\"name\":\"load_model\""), 1); /* pinned */
    char want[64];
    snprintf(want, sizeof want, "\"runs_evicted\":%d,", runs - 8);
    ASSERT_CONTAINS(trace, want);
    ASSERT_CONTAINS(trace, "\"complete\":true");
    free(trace);
}

STAGEPROF_TEST(runs_in_progress_are_never_evicted)
{
    setenv("STAGEPROF_BUFFER_RUNS", "2", 1);
    start_fake(NULL, 64 << 10);
    STAGEPROF_RUN_BEGIN("long", 1); /* never ends */
    for (int i = 0; i < 20000; i++) {
        STAGEPROF_SCOPE(s, "inside", "compute");
    }
    /* Everything since the run began is protected: the budget fills and
     * new events drop, counted. */
    stageprof_stats_t st = stats();
    ASSERT_GT(st.events_dropped, 0);
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"name\":\"inside\""),
              20000 - (int)st.events_dropped);
    ASSERT_CONTAINS(trace, "\"runs_in_progress\":1,");
    free(trace);
}

STAGEPROF_TEST(startup_share_is_half_the_budget)
{
    start_fake(NULL, 64 << 10);
    for (int i = 0; i < 20000; i++) {
        STAGEPROF_SCOPE(s, "warmup", "engine");
    }
    stageprof_stats_t st = stats();
    ASSERT_GT(st.events_dropped, 0);
    ASSERT_LE(st.bytes_buffered, 32 << 10);
    char *trace = write_to_string(NULL);
    ASSERT_CONTAINS(trace, "\"pinned_chunks_refused\":");
    ASSERT_NULL(strstr(trace, "\"pinned_chunks_refused\":0}"));
    free(trace);
}

STAGEPROF_TEST(outside_runs_window_keeps_the_newest)
{
    setenv("STAGEPROF_BUFFER_RUNS", "4", 1);
    start_fake(NULL, 64 << 10);
    one_run(1, 1); /* start-up is over */
    for (int i = 0; i < 20000; i++) {
        STAGEPROF_SCOPE(s, "idle", "engine");
        STAGEPROF_ARG_INT(s, "i", i);
    }
    one_run(2, 1);
    stageprof_stats_t st = stats();
    ASSERT_EQ(st.events_dropped, 0);
    char *trace = write_to_string(NULL);
    /* The newest idle spans are there; older ones went, oldest first
     * (those sharing a chunk with run 1 stay with that run). */
    ASSERT_CONTAINS(trace, "\"args\":{\"i\":19999}");
    ASSERT_NULL(strstr(trace, "\"args\":{\"i\":10000}"));
    int idle = count_of(trace, "\"name\":\"idle\"");
    ASSERT_LT(idle, 20000);
    /* What is kept of them is the newest, without holes. */
    char last[64];
    snprintf(last, sizeof last, "\"args\":{\"i\":%d}", 20000 - idle / 2);
    ASSERT_CONTAINS(trace, last);
    ASSERT_EQ(events_of_run(trace, 2), 3);
    free(trace);
}

STAGEPROF_TEST(head_sampling_records_one_in_n)
{
    setenv("STAGEPROF_SAMPLE_RUNS", "4", 1);
    setenv("STAGEPROF_BUFFER_RUNS", "0", 1); /* keep all that is recorded */
    start_fake(NULL, 0);
    int sampled = 0, runs = 400;
    for (int id = 1; id <= runs; id++) {
        one_run((uint64_t)id, 2);
        sampled += stageprof__ring_sampled((uint64_t)id);
    }
    {
        STAGEPROF_SCOPE(s, "after_runs", "x");
    }
    ASSERT_GT(sampled, runs / 8);
    ASSERT_LT(sampled, runs / 2);
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"ph\":\"b\""), sampled);
    ASSERT_EQ(count_of(trace, "\"name\":\"stage\""), 2 * sampled);
    for (int id = 1; id <= runs; id++)
        ASSERT_EQ(events_of_run(trace, (uint64_t)id),
                  stageprof__ring_sampled((uint64_t)id) ? 4 : 0);
    ASSERT_CONTAINS(trace, "\"sample_runs\":4,");
    char want[64];
    snprintf(want, sizeof want, "\"runs_sampled_out\":%d,", runs - sampled);
    ASSERT_CONTAINS(trace, want);
    /* After an unsampled run the thread records again, outside runs. */
    const char *after = strstr(trace, "\"name\":\"after_runs\"");
    ASSERT_NOT_NULL(after);
    ASSERT_TRUE(strstr(after, "\"run\"") == NULL ||
                strstr(after, "\"run\"") > strchr(after, '\n'));
    free(trace);
}

STAGEPROF_TEST(no_eviction_while_a_writer_reads)
{
    setenv("STAGEPROF_BUFFER_RUNS", "1", 1);
    start_fake(NULL, 64 << 10);
    for (int id = 1; id <= 3000; id++)
        one_run((uint64_t)id, 4);
    struct ring_view v;
    ASSERT_EQ(stageprof__ring_view_open(&v), 0);
    ASSERT_UEQ(stageprof__ring_evict(), 0);
    stageprof__ring_view_close(&v);
    ASSERT_GT(stageprof__ring_evict(), 0);
}

STAGEPROF_TEST(snapshot_keeps_events_for_the_next_write)
{
    setenv("STAGEPROF_BUFFER_RUNS", "3", 1);
    start_fake(NULL, 0);
    for (uint64_t id = 1; id <= 5; id++)
        one_run(id, 1);
    struct mem_sink m;
    mem_init(&m);
    struct sink s = {mem_write, NULL, &m};
    ASSERT_EQ(stageprof__writer_write(&s, WRITE_KEEP), 0);
    ASSERT_EQ(count_of(m.sb.buf, "\"ph\":\"b\""), 3);
    stageprof__sb_fini(&m.sb);
    char *trace = write_to_string(NULL); /* the same runs again */
    ASSERT_EQ(count_of(trace, "\"ph\":\"b\""), 3);
    ASSERT_EQ(events_of_run(trace, 5), 3);
    free(trace);
}

STAGEPROF_TEST(open_span_across_evicted_chunks_stays_nested)
{
    setenv("STAGEPROF_BUFFER_RUNS", "2", 1);
    start_fake(NULL, 64 << 10);
    STAGEPROF_SPAN_BEGIN(serve, "serve_loop", "serve"); /* start-up, open */
    for (int id = 1; id <= 5000; id++)
        one_run((uint64_t)id, 3);
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"ph\":\"b\""), 2);
    ASSERT_CONTAINS(trace, "{\"ph\":\"B\",\"name\":\"serve_loop\"");
    ASSERT_CONTAINS(trace, "\"open_spans\":1,");
    ASSERT_EQ(count_of(trace, "\"name\":\"stage\""), 6);
    /* The open span is in a pinned chunk: nothing was cut. */
    ASSERT_CONTAINS(trace, "\"spans_cut\":0,");
    free(trace);
    STAGEPROF_SPAN_END(serve);
}

STAGEPROF_TEST(span_over_evicted_chunks_is_cut_and_counted)
{
    setenv("STAGEPROF_BUFFER_RUNS", "2", 1);
    start_fake(NULL, 64 << 10);
    one_run(1, 1); /* start-up over: what follows is not pinned */
    STAGEPROF_SPAN_BEGIN(loop, "serve_loop", "serve"); /* in an outside chunk */
    for (int id = 2; id <= 5000; id++)
        one_run((uint64_t)id, 3);
    STAGEPROF_SPAN_END(loop); /* its begin is long evicted */
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"name\":\"serve_loop\""), 0);
    ASSERT_EQ(count_of(trace, "\"ph\":\"E\""), 0);
    ASSERT_CONTAINS(trace, "\"spans_cut\":1,");
    ASSERT_EQ(count_of(trace, "\"name\":\"stage\""), 6);
    free(trace);
}

STAGEPROF_TEST_LIST(
    STAGEPROF_CASE(span_over_evicted_chunks_is_cut_and_counted),
    STAGEPROF_CASE(keeps_exactly_the_last_n_runs),
    STAGEPROF_CASE(budget_reclaimed_from_evicted_runs),
    STAGEPROF_CASE(runs_in_progress_are_never_evicted),
    STAGEPROF_CASE(startup_share_is_half_the_budget),
    STAGEPROF_CASE(outside_runs_window_keeps_the_newest),
    STAGEPROF_CASE(head_sampling_records_one_in_n),
    STAGEPROF_CASE(no_eviction_while_a_writer_reads),
    STAGEPROF_CASE(snapshot_keeps_events_for_the_next_write),
    STAGEPROF_CASE(open_span_across_evicted_chunks_stays_nested))
