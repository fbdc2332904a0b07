/*
 * test_tbuf.c - per-thread buffers: the byte budget, drops, balanced spans
 * when full, threads that exit early, reclamation after a write, and run
 * attribution across chunk boundaries.
 */
#include <pthread.h>

#include "helpers.h"
#include "tbuf.h"

STAGEPROF_TEST(budget_full_drops_and_counts)
{
    setenv("STAGEPROF_BUFFER_RUNS", "0", 1); /* no ring: the bare budget */
    start_fake(NULL, 16 << 10);              /* four 4 KiB chunks */
    int n = 5000;
    for (int i = 0; i < n; i++) {
        STAGEPROF_SCOPE(s, "s", "x");
    }
    stageprof_stats_t st = stats();
    ASSERT_GT(st.events_dropped, 0);
    ASSERT_LE(st.bytes_buffered, 16 << 10);
    char *trace = write_to_string(NULL);
    int kept = count_of(trace, "\"ph\":\"X\"");
    /* A dropped span counts once; every recorded begin got its end. */
    ASSERT_EQ(kept + (int)st.events_dropped, n);
    ASSERT_EQ(count_of(trace, "\"ph\":\"B\""), 0);
    ASSERT_CONTAINS(trace, "\"complete\":false");
    free(trace);
    /* After the write only the chunk being written stays; recording
     * resumes. */
    ASSERT_LE(stats().bytes_buffered, 4 << 10);
    {
        STAGEPROF_SCOPE(s, "after", "x");
    }
    trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"name\":\"after\""), 1);
    ASSERT_CONTAINS(trace, "\"events_dropped\":0");
    free(trace);
}

STAGEPROF_TEST(ends_always_fit_when_full)
{
    start_fake(NULL, 16 << 10);
    stageprof_site_t site = STAGEPROF_SITE_INIT("deep", "x");
    stageprof_site_t fill = STAGEPROF_SITE_INIT("fill", "x");
    stageprof_span_t s[100];
    for (int i = 0; i < 100; i++)
        s[i] = stageprof_span_begin(&site);
    /* Exhaust the budget with instants while 100 spans are open. */
    for (int i = 0; i < 5000; i++)
        stageprof_instant(&fill);
    ASSERT_GT(stats().events_dropped, 0);
    for (int i = 99; i >= 0; i--)
        stageprof_span_end(&s[i]);
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"name\":\"deep\""), 100);
    ASSERT_EQ(count_of(trace, "\"ph\":\"B\""), 0);
    free(trace);
}

static void *short_lived(void *arg)
{
    stageprof_thread_set_name(arg);
    for (int i = 0; i < 10; i++) {
        STAGEPROF_SCOPE(s, "work", "compute");
    }
    return NULL;
}

STAGEPROF_TEST(exited_threads_kept_until_written)
{
    start_fake(NULL, 0);
    pthread_t t[8];
    char names[8][16];
    for (int i = 0; i < 8; i++) {
        snprintf(names[i], sizeof names[i], "early-%d", i);
        ASSERT_EQ(pthread_create(&t[i], NULL, short_lived, names[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    ASSERT_EQ(stats().threads, 8);
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"name\":\"work\""), 80);
    for (int i = 0; i < 8; i++) {
        char want[64];
        snprintf(want, sizeof want, "\"args\":{\"name\":\"early-%d\"}", i);
        ASSERT_CONTAINS(trace, want);
    }
    free(trace);
    /* Written and exited: their buffers are gone from the registry. */
    ASSERT_NULL(stageprof__g.threads);
    ASSERT_EQ(stats().bytes_buffered, 0);
}

STAGEPROF_TEST(run_id_survives_chunk_boundaries)
{
    start_fake(NULL, 0);
    stageprof_site_t frame = STAGEPROF_SITE_INIT("frame", "run");
    stageprof_run_begin(&frame, 42);
    /* Enough spans to fill several 64 KiB chunks. */
    int n = 20000;
    for (int i = 0; i < n; i++) {
        STAGEPROF_SCOPE(s, "s", "x");
    }
    stageprof_run_end(&frame, 42);
    {
        STAGEPROF_SCOPE(s, "outside", "x");
    }
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"args\":{\"run\":42}}"), n + 2);
    ASSERT_CONTAINS(trace, "\"name\":\"outside\",\"cat\":\"x\","
                           "\"ts\":");
    const char *out = strstr(trace, "\"name\":\"outside\"");
    ASSERT_TRUE(strstr(out, "run") == NULL ||
                strstr(out, "run") > strchr(out, '\n'));
    free(trace);
}

STAGEPROF_TEST(record_size_is_sixteen_bytes)
{
    start_fake(NULL, 0);
    {
        STAGEPROF_SCOPE(s, "first", "x");
    } /* allocates the first chunk */
    struct tbuf *tb = stageprof__tls;
    ASSERT_NOT_NULL(tb);
    unsigned char *before = tb->pos;
    for (int i = 0; i < 100; i++) {
        STAGEPROF_SCOPE(s, "s", "x");
    }
    ASSERT_EQ(tb->pos - before, 100 * 2 * 16);
}

static void *dropper(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5000; i++) {
        STAGEPROF_SCOPE(s, "flood", "x");
    }
    return NULL;
}

STAGEPROF_TEST(drops_of_exited_threads_stay_counted)
{
    start_fake(NULL, 16 << 10);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, dropper, NULL), 0);
    pthread_join(t, NULL);
    uint64_t dropped = stats().events_dropped;
    ASSERT_GT(dropped, 0);
    char *trace = write_to_string(NULL); /* frees the exited thread */
    ASSERT_CONTAINS(trace, "\"complete\":false");
    free(trace);
    ASSERT_UEQ(stats().events_dropped, dropped);
    {
        STAGEPROF_SCOPE(s, "later", "x");
    }
    trace = write_to_string(NULL);
    ASSERT_CONTAINS(trace, "\"complete\":true,");
    ASSERT_CONTAINS(trace, "\"events_dropped\":0,");
    char want[64];
    snprintf(want, sizeof want, "\"events_dropped_total\":%llu,",
             (unsigned long long)dropped);
    ASSERT_CONTAINS(trace, want);
    free(trace);
}

STAGEPROF_TEST_LIST(STAGEPROF_CASE(drops_of_exited_threads_stay_counted),
                    STAGEPROF_CASE(budget_full_drops_and_counts),
                    STAGEPROF_CASE(ends_always_fit_when_full),
                    STAGEPROF_CASE(exited_threads_kept_until_written),
                    STAGEPROF_CASE(run_id_survives_chunk_boundaries),
                    STAGEPROF_CASE(record_size_is_sixteen_bytes))
