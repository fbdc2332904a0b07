/*
 * test_tail.c - tail keeping: a slow run kept whole long after the ring
 * let it go, the K slowest of each window (a displaced run given up,
 * whether still queued or already written), slow runs kept under head
 * sampling, the share's bound, a run too big for it, the trace's record
 * of what was kept, and settings that do not parse.
 */
#include "helpers.h"
#include "ring.h"
#include "tail.h"

/* One run of @spans spans; @slow_ms stretches its first span. */
static void run_of(uint64_t id, int spans, int slow_ms)
{
    STAGEPROF_RUN_BEGIN("request", id);
    for (int i = 0; i < spans; i++) {
        STAGEPROF_SCOPE(s, "stage", "compute");
        STAGEPROF_ARG_INT(s, "run_id", id);
        if (i == 0 && slow_ms > 0)
            __atomic_fetch_add(&fake_now, (uint64_t)slow_ms * 1000000u,
                               __ATOMIC_RELAXED);
    }
    STAGEPROF_RUN_END("request", id);
}

/* The entry of run @id in the trace's tail list, or NULL. */
static const char *tail_entry(const char *trace, uint64_t id)
{
    const char *list = strstr(trace, "\"tail\":{");
    if (list == NULL)
        return NULL;
    char key[64];
    snprintf(key, sizeof key, "{\"run\":%llu,", (unsigned long long)id);
    const char *p = strstr(list, key);
    const char *end = strstr(list, "]}");
    return p != NULL && p < end ? p : NULL;
}

/* Write what the keeper has queued, as its thread would. */
static void drain(void)
{
    pthread_mutex_lock(&stageprof__g.wlock);
    stageprof__tail_drain();
    pthread_mutex_unlock(&stageprof__g.wlock);
}

STAGEPROF_TEST(slow_run_outlives_the_ring)
{
    setenv("STAGEPROF_BUFFER_RUNS", "4", 1);
    setenv("STAGEPROF_KEEP_SLOWER_THAN_MS", "20", 1);
    start_fake(NULL, 256 << 10);
    ASSERT_TRUE(stageprof__tail_on());
    for (uint64_t id = 1; id <= 3000; id++) {
        run_of(id, 3, id == 40 ? 25 : 0);
        /* Until the keeper has written it, the slow run holds back the
         * ring's eviction: let it (its thread may be slow to wake here). */
        if (id == 40)
            drain();
    }
    stageprof_stats_t st = stats();
    ASSERT_EQ(st.events_dropped, 0);
    char *trace = write_to_string(NULL);
    /* The slow run, whole, though 2960 runs ended since. */
    ASSERT_EQ(events_of_run(trace, 40), 3 + 2);
    for (uint64_t id = 1; id <= 2996; id++)
        if (id != 40)
            ASSERT_EQ(events_of_run(trace, id), 0);
    for (uint64_t id = 2997; id <= 3000; id++)
        ASSERT_EQ(events_of_run(trace, id), 3 + 2);
    const char *e = tail_entry(trace, 40);
    ASSERT_NOT_NULL(e);
    ASSERT_CONTAINS(e, "\"why\":\"slower_than\",\"in_ring\":false}");
    ASSERT_CONTAINS(trace, "\"tail\":{\"slower_than_ms\":20,\"slowest\":0,");
    ASSERT_CONTAINS(trace, "\"runs_pushed_out\":0,");
    ASSERT_CONTAINS(trace, "\"appended\":true");
    ASSERT_CONTAINS(trace, "\"complete\":true");
    /* Its duration: 25 ms plus the fake clock's steps. */
    double dur = strtod(strstr(e, "\"dur_ms\":") + 9, NULL);
    ASSERT_TRUE(dur >= 25.0 && dur < 25.1);
    /* The file took it: the next one does not repeat it. */
    free(trace);
    run_of(3001, 1, 0);
    trace = write_to_string(NULL);
    ASSERT_EQ(events_of_run(trace, 40), 0);
    ASSERT_NULL(tail_entry(trace, 40));
    free(trace);
}

STAGEPROF_TEST(slow_run_still_in_the_ring_is_written_once)
{
    setenv("STAGEPROF_BUFFER_RUNS", "8", 1);
    setenv("STAGEPROF_KEEP_SLOWER_THAN_MS", "5", 1);
    start_fake(NULL, 0);
    run_of(1, 2, 0);
    run_of(2, 2, 10);
    run_of(3, 2, 0);
    drain();
    char *trace = write_to_string(NULL);
    ASSERT_EQ(events_of_run(trace, 2), 2 + 2);
    ASSERT_CONTAINS(tail_entry(trace, 2), "\"in_ring\":true}");
    ASSERT_NULL(tail_entry(trace, 1));
    ASSERT_NULL(tail_entry(trace, 3));
    free(trace);
}

/* Move the fake clock to @s seconds (windows are whole seconds here). */
static void clock_at_s(uint64_t s)
{
    __atomic_store_n(&fake_now, s * 1000000000u, __ATOMIC_RELAXED);
}

STAGEPROF_TEST(slowest_k_of_each_window)
{
    setenv("STAGEPROF_BUFFER_RUNS", "1", 1);
    setenv("STAGEPROF_KEEP_SLOWEST", "2", 1);
    setenv("STAGEPROF_KEEP_WINDOW_S", "10", 1);
    start_fake(NULL, 0);
    /* Window [10 s, 20 s): 5, 9, 3, 7 ms. Run 1 (5 ms) is written by the
     * keeper before run 4 (7 ms) displaces it. */
    clock_at_s(10);
    run_of(1, 1, 5);
    drain();
    run_of(2, 1, 9);
    run_of(3, 1, 3);
    run_of(4, 1, 7);
    /* Window [20 s, 30 s): 4, 8, 6, 1 ms. Run 5 is still queued when run 7
     * displaces it. */
    clock_at_s(20);
    run_of(5, 1, 4);
    run_of(6, 1, 8);
    run_of(7, 1, 6);
    run_of(8, 1, 1); /* the ring's one run */
    char *trace = write_to_string(NULL);
    int kept[9] = {0, 0, 1, 0, 1, 0, 1, 1, 0};
    for (uint64_t id = 1; id <= 7; id++) {
        ASSERT_EQ(events_of_run(trace, id), kept[id] ? 3 : 0);
        ASSERT_EQ(tail_entry(trace, id) != NULL, kept[id]);
    }
    ASSERT_EQ(events_of_run(trace, 8), 3);
    ASSERT_CONTAINS(tail_entry(trace, 2), "\"why\":\"slowest\"");
    ASSERT_CONTAINS(trace, "\"slowest\":2,\"window_s\":10,");
    free(trace);
}

STAGEPROF_TEST(threshold_and_slowest_together)
{
    setenv("STAGEPROF_BUFFER_RUNS", "1", 1);
    setenv("STAGEPROF_KEEP_SLOWEST", "1", 1);
    setenv("STAGEPROF_KEEP_SLOWER_THAN_MS", "4", 1);
    start_fake(NULL, 0);
    clock_at_s(120);
    run_of(1, 1, 5); /* both reasons, then displaced from the slowest */
    drain();
    run_of(2, 1, 9);
    run_of(3, 1, 1);
    drain();
    char *trace = write_to_string(NULL);
    ASSERT_CONTAINS(tail_entry(trace, 1), "\"why\":\"slower_than\"");
    ASSERT_CONTAINS(tail_entry(trace, 2), "\"why\":\"slower_than,slowest\"");
    ASSERT_EQ(events_of_run(trace, 1), 3);
    ASSERT_EQ(events_of_run(trace, 2), 3);
    free(trace);
}

STAGEPROF_TEST(slow_runs_kept_under_head_sampling)
{
    setenv("STAGEPROF_BUFFER_RUNS", "8", 1);
    setenv("STAGEPROF_SAMPLE_RUNS", "50", 1);
    setenv("STAGEPROF_KEEP_SLOWER_THAN_MS", "20", 1);
    start_fake(NULL, 0);
    int runs = 400, sampled = 0;
    for (int id = 1; id <= runs; id++) {
        /* Two slow runs the sampling would not take. */
        int slow = id == 17 || id == 333;
        run_of((uint64_t)id, 2, slow ? 30 : 0);
    }
    int in_ring = 0;
    char *trace = write_to_string(NULL);
    ASSERT_EQ(events_of_run(trace, 17), 2 + 2);
    ASSERT_EQ(events_of_run(trace, 333), 2 + 2);
    ASSERT_NOT_NULL(tail_entry(trace, 17));
    ASSERT_NOT_NULL(tail_entry(trace, 333));
    /* Every other run in the trace is one of the ring's sampled runs. */
    for (int id = 1; id <= runs; id++) {
        int n = events_of_run(trace, (uint64_t)id);
        if (id == 17 || id == 333 || n == 0)
            continue;
        ASSERT_EQ(n, 2 + 2);
        in_ring++;
    }
    ASSERT_LE(in_ring, 8);
    ASSERT_GT(in_ring, 0);
    /* Runs not sampled are counted, kept ones included. */
    const char *so = strstr(trace, "\"runs_sampled_out\":");
    ASSERT_NOT_NULL(so);
    sampled = runs - atoi(so + 19);
    ASSERT_GT(sampled, 0);
    ASSERT_LT(sampled, runs / 10);
    free(trace);
}

STAGEPROF_TEST(share_keeps_the_newest_within_its_bytes)
{
    setenv("STAGEPROF_BUFFER_RUNS", "2", 1);
    setenv("STAGEPROF_KEEP_SLOWER_THAN_MS", "1", 1);
    setenv("STAGEPROF_KEEP_BYTES", "8K", 1);
    start_fake(NULL, 64 << 10);
    for (uint64_t id = 1; id <= 40; id++) {
        run_of(id, 10, 2); /* about 1.5 KB of trace each */
        drain();
    }
    for (uint64_t id = 41; id <= 42; id++)
        run_of(id, 1, 0);
    char *trace = write_to_string(NULL);
    ASSERT_CONTAINS(trace, "\"share_bytes\":8192,");
    const char *b = strstr(trace, "\"share_bytes\":8192,\"bytes\":");
    ASSERT_NOT_NULL(b);
    ASSERT_LE(atol(b + 27), 8192);
    /* The newest kept runs are there, whole; the oldest were pushed out. */
    ASSERT_EQ(events_of_run(trace, 40), 10 + 2);
    ASSERT_EQ(events_of_run(trace, 1), 0);
    int kept = 0;
    for (uint64_t id = 1; id <= 40; id++) {
        int n = events_of_run(trace, id);
        ASSERT_TRUE(n == 0 || n == 12);
        kept += n > 0;
        /* No hole: once kept, every newer one is. */
        if (id < 40 && n > 0)
            ASSERT_EQ(events_of_run(trace, id + 1), 12);
    }
    ASSERT_GT(kept, 1);
    char want[64];
    snprintf(want, sizeof want, "\"runs_pushed_out\":%d,", 40 - kept);
    ASSERT_CONTAINS(trace, want);
    free(trace);
}

STAGEPROF_TEST(run_too_big_for_the_share_is_counted)
{
    setenv("STAGEPROF_BUFFER_RUNS", "2", 1);
    setenv("STAGEPROF_KEEP_SLOWER_THAN_MS", "1", 1);
    setenv("STAGEPROF_KEEP_BYTES", "4K", 1);
    start_fake(NULL, 64 << 10);
    run_of(1, 100, 2); /* ~15 KB */
    drain();
    run_of(2, 1, 0);
    run_of(3, 1, 0);
    run_of(4, 1, 0);
    char *trace = write_to_string(NULL);
    ASSERT_EQ(events_of_run(trace, 1), 0);
    ASSERT_CONTAINS(trace, "\"runs_too_big\":1,");
    ASSERT_CONTAINS(trace, "\"complete\":true");
    free(trace);
}

STAGEPROF_TEST(keeper_writes_without_help)
{
    setenv("STAGEPROF_BUFFER_RUNS", "1", 1);
    setenv("STAGEPROF_KEEP_SLOWER_THAN_MS", "10", 1);
    start_fake(temp_dir("tail"), 0);
    run_of(1, 2, 15);
    /* The keeper thread, not a drain, turns it into a fragment. */
    size_t n = 0;
    for (int i = 0; i < 5000 && n == 0; i++) {
        pthread_mutex_lock(&stageprof__g.wlock);
        (void)stageprof__tail_frags(&n);
        pthread_mutex_unlock(&stageprof__g.wlock);
        if (n == 0)
            usleep(1000);
    }
    ASSERT_EQ(n, 1);
    run_of(2, 1, 0);
    /* A snapshot keeps everything: the kept run comes in both traces. */
    struct mem_sink m;
    mem_init(&m);
    struct sink s = {mem_write, NULL, &m};
    pthread_mutex_lock(&stageprof__g.wlock);
    ASSERT_EQ(stageprof__writer_write(&s, WRITE_KEEP), 0);
    pthread_mutex_unlock(&stageprof__g.wlock);
    ASSERT_EQ(events_of_run(m.sb.buf, 1), 2 + 2);
    stageprof__sb_fini(&m.sb);
    ASSERT_EQ(stageprof_stop(), 0);
    char path[512];
    char *trace = last_trace(path, sizeof path);
    ASSERT_NOT_NULL(trace);
    ASSERT_EQ(events_of_run(trace, 1), 2 + 2);
    free(trace);
}

STAGEPROF_TEST(stop_writes_what_is_queued)
{
    setenv("STAGEPROF_BUFFER_RUNS", "1", 1);
    setenv("STAGEPROF_KEEP_SLOWER_THAN_MS", "1", 1);
    start_fake(temp_dir("tail"), 0);
    for (uint64_t id = 1; id <= 60; id++)
        run_of(id, 1, id % 2 ? 2 : 0);
    ASSERT_EQ(stageprof_stop(), 0);
    char path[512];
    char *trace = last_trace(path, sizeof path);
    ASSERT_NOT_NULL(trace);
    for (uint64_t id = 1; id <= 60; id++)
        ASSERT_EQ(events_of_run(trace, id), id % 2 || id == 60 ? 3 : 0);
    free(trace);
}

STAGEPROF_TEST(fragment_write_lets_older_chunks_go)
{
    setenv("STAGEPROF_BUFFER_RUNS", "1", 1);
    setenv("STAGEPROF_KEEP_SLOWER_THAN_MS", "100", 1);
    start_fake(NULL, 64 << 10);
    for (uint64_t id = 1; id <= 3000; id++)
        run_of(id, 4, 0);
    /* A whole trace's reader holds every chunk... */
    struct ring_view v;
    ASSERT_EQ(stageprof__ring_view_open(&v), 0);
    ASSERT_UEQ(stageprof__ring_evict(), 0);
    stageprof__ring_view_close(&v);
    /* ...a kept run's reader only those from its begin on. */
    for (uint64_t id = 3001; id <= 6000; id++)
        run_of(id, 4, 0);
    ASSERT_EQ(stageprof__ring_view_open_from(&v, fake_clock()), 0);
    ASSERT_GT(stageprof__ring_evict(), 0);
    stageprof__ring_view_close(&v);
}

STAGEPROF_TEST(bad_settings_warn_and_keep_nothing)
{
    static const char *const bad[][2] = {
        {"STAGEPROF_KEEP_SLOWER_THAN_MS", "-5"},
        {"STAGEPROF_KEEP_SLOWER_THAN_MS", "fast"},
        {"STAGEPROF_KEEP_SLOWER_THAN_MS", "99999999999999999999"},
        {"STAGEPROF_KEEP_SLOWEST", "65"},
        {"STAGEPROF_KEEP_SLOWEST", "2x"},
        {"STAGEPROF_KEEP_WINDOW_S", "0"},
        {"STAGEPROF_KEEP_WINDOW_S", "86401"},
        {"STAGEPROF_KEEP_BYTES", "1"},
        {"STAGEPROF_KEEP_BYTES", "1T"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv(bad[i][0], bad[i][1], 1);
        struct conf c;
        ASSERT_EQ(stageprof__config_resolve(NULL, &c), 0);
        ASSERT_EQ(c.nwarnings, 1);
        ASSERT_CONTAINS(c.warnings[0], bad[i][0]);
        /* Nothing kept: neither setting is on by itself. */
        ASSERT_EQ(c.keep_bytes, 0);
        stageprof__config_fini(&c);
        unsetenv(bad[i][0]);
    }
    /* Keeping needs tracing: without it nothing is kept and the buffers
     * keep their whole budget. */
    setenv("STAGEPROF_KEEP_SLOWEST", "3", 1);
    struct conf c;
    ASSERT_EQ(stageprof__config_resolve(NULL, &c), 0);
    ASSERT_EQ(c.keep_slowest, 0);
    ASSERT_EQ(c.keep_bytes, 0);
    stageprof__config_fini(&c);
    setenv("STAGEPROF_ENABLE", "1", 1);
    /* Keeping needs the ring. */
    setenv("STAGEPROF_BUFFER_RUNS", "0", 1);
    ASSERT_EQ(stageprof__config_resolve(NULL, &c), 0);
    ASSERT_EQ(c.nwarnings, 1);
    ASSERT_CONTAINS(c.warnings[0], "need the run ring");
    ASSERT_EQ(c.keep_slowest, 0);
    stageprof__config_fini(&c);
    /* The defaults: a quarter of the budget, a minute. */
    setenv("STAGEPROF_BUFFER_RUNS", "16", 1);
    setenv("STAGEPROF_BUFFER_BYTES", "8M", 1);
    ASSERT_EQ(stageprof__config_resolve(NULL, &c), 0);
    ASSERT_EQ(c.nwarnings, 0);
    ASSERT_EQ(c.keep_slowest, 3);
    ASSERT_EQ(c.keep_bytes, 2ll << 20);
    ASSERT_EQ(c.keep_window_s, 60);
    stageprof__config_fini(&c);
}

STAGEPROF_TEST_LIST(STAGEPROF_CASE(slow_run_outlives_the_ring),
                    STAGEPROF_CASE(slow_run_still_in_the_ring_is_written_once),
                    STAGEPROF_CASE(slowest_k_of_each_window),
                    STAGEPROF_CASE(threshold_and_slowest_together),
                    STAGEPROF_CASE(slow_runs_kept_under_head_sampling),
                    STAGEPROF_CASE(share_keeps_the_newest_within_its_bytes),
                    STAGEPROF_CASE(run_too_big_for_the_share_is_counted),
                    STAGEPROF_CASE(keeper_writes_without_help),
                    STAGEPROF_CASE(stop_writes_what_is_queued),
                    STAGEPROF_CASE(fragment_write_lets_older_chunks_go),
                    STAGEPROF_CASE(bad_settings_warn_and_keep_nothing))
