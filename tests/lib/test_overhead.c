/*
 * test_overhead.c - every trace states its own overhead: the span cost
 * measured at start, the events recorded this session so far, and the
 * share of wall time recording took; the measurement itself leaves no
 * event, thread or byte behind.
 */
#include <stdlib.h>
#include <unistd.h>

#include "helpers.h"

static char *tmpdir(void)
{
    return temp_dir("stageprof-ovh");
}

/* Start tracing into @dir on the real clock. */
static void start_real(const char *dir)
{
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 1;
    c.dir = dir;
    ASSERT_EQ(stageprof_start(&c), 0);
}

struct ovh {
    double ns_per_event;
    unsigned long long events;
    double share;
    unsigned long long file_events; /* stageprof_summary.events_written */
};

/* The text of the last trace file written (caller frees). */
static char *read_last(void)
{
    char path[4096];
    return last_trace(path, sizeof path);
}

/* The overhead statement of the last trace file written. */
static struct ovh last_overhead(void)
{
    char *t = read_last();
    struct ovh o;
    const char *p = strstr(t, "\"overhead\":{\"ns_per_event\":");
    ASSERT_NOT_NULL(p);
    ASSERT_EQ(sscanf(p,
                     "\"overhead\":{\"ns_per_event\":%lf,\"events\":%llu,"
                     "\"recording_share\":%lf}}}",
                     &o.ns_per_event, &o.events, &o.share),
              3);
    const char *q = strstr(t, "\"events_written\":");
    ASSERT_NOT_NULL(q);
    ASSERT_EQ(sscanf(q, "\"events_written\":%llu", &o.file_events), 1);
    /* The statement closes the summary, which closes the trace. */
    ASSERT_CONTAINS(p, "}}}\n");
    ASSERT_TRUE(strlen(strstr(p, "}}}\n")) == 4);
    free(t);
    return o;
}

STAGEPROF_TEST(trace_states_measured_cost_events_and_share)
{
    char *dir = tmpdir();
    start_real(dir);
    ASSERT_GT(stageprof__g.cost_ns_per_event, 0);
    record_some(1000);
    ASSERT_EQ(stageprof_flush(), 0);
    struct ovh o = last_overhead();
    /* A span costs something, and less than 0.1 ms even under sanitizers. */
    ASSERT_TRUE(o.ns_per_event > 0 && o.ns_per_event < 100000);
    ASSERT_DBL_NEAR(o.ns_per_event, stageprof__g.cost_ns_per_event, 0.051);
    ASSERT_EQ(o.events, o.file_events);
    ASSERT_GE(o.events, 1000);
    ASSERT_TRUE(o.share > 0 && o.share < 1);
    ASSERT_EQ(stageprof_stop(), 0);
}

STAGEPROF_TEST(events_add_up_over_the_session_snapshots_do_not)
{
    char *dir = tmpdir();
    start_real(dir);
    record_some(100);
    ASSERT_EQ(stageprof_flush(), 0);
    struct ovh a = last_overhead();
    ASSERT_EQ(a.events, a.file_events);
    record_some(50);
    ASSERT_EQ(stageprof_snapshot(), 0);
    struct ovh b = last_overhead();
    ASSERT_EQ(b.events, a.file_events + b.file_events);
    record_some(70);
    ASSERT_EQ(stageprof_snapshot(), 0);
    struct ovh c = last_overhead();
    /* The second snapshot repeats the first one's events: not twice. */
    ASSERT_EQ(c.events, a.file_events + c.file_events);
    ASSERT_EQ(stageprof_stop(), 0);
    struct ovh d = last_overhead();
    ASSERT_EQ(d.events, a.file_events + d.file_events);
    ASSERT_GE(d.events, 220);

    /* A new session counts from zero. */
    start_real(dir);
    record_some(10);
    ASSERT_EQ(stageprof_flush(), 0);
    struct ovh e = last_overhead();
    ASSERT_EQ(e.events, e.file_events);
    ASSERT_EQ(stageprof_stop(), 0);
}

STAGEPROF_TEST(calibration_leaves_nothing_behind)
{
    char *dir = tmpdir();
    start_real(dir);
    stageprof_stats_t st = stats();
    ASSERT_EQ(st.threads, 0);
    ASSERT_EQ(st.bytes_buffered, 0);
    ASSERT_EQ(st.events_dropped, 0);
    record_some(3);
    ASSERT_EQ(stageprof_stop(), 0);
    /* Again with the thread's own buffer in place: it is untouched. */
    start_real(dir);
    record_some(4);
    ASSERT_EQ(stageprof_stop(), 0);
    char *t = read_last();
    ASSERT_EQ(count_of(t, "\"name\":\"stage\""), 4);
    ASSERT_NULL(strstr(t, "calibrate"));
    ASSERT_CONTAINS(t, "\"complete\":true");
    free(t);
    ASSERT_EQ(stageprof_get_stats(&st), 0);
    ASSERT_EQ(st.threads, 1);
    ASSERT_EQ(st.misuse, 0);
}

STAGEPROF_TEST(fake_clock_states_no_cost)
{
    char *dir = tmpdir();
    start_fake(dir, 0);
    record_some(5);
    ASSERT_EQ(stageprof_flush(), 0);
    struct ovh o = last_overhead();
    ASSERT_TRUE(o.ns_per_event == 0 && o.share == 0);
    ASSERT_EQ(o.events, o.file_events);
}

STAGEPROF_TEST_LIST(
    STAGEPROF_CASE(trace_states_measured_cost_events_and_share),
    STAGEPROF_CASE(events_add_up_over_the_session_snapshots_do_not),
    STAGEPROF_CASE(calibration_leaves_nothing_behind),
    STAGEPROF_CASE(fake_clock_states_no_cost))
