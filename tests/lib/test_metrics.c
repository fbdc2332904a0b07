/*
 * test_metrics.c - the histograms, counters and gauges behind /metrics:
 * what each recording call adds, bucket placement, the series cap, label
 * escaping, threads that exit, metrics beside tracing, and the text format
 * as promtool reads it.
 */
#include <math.h>
#include <pthread.h>

#include "helpers.h"
#include "metrics.h"

/* Start metrics only (no tracing) with @buckets and @max_stages (0: default).
 */
static void start_metrics(const char *buckets, long long max_stages)
{
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 0;
    c.http = "127.0.0.1:0";
    c.sample_hz = 0;
    c.histogram_buckets = buckets;
    if (max_stages > 0)
        c.max_stages = max_stages;
    ASSERT_EQ(stageprof_start(&c), 0);
    ASSERT_EQ(stageprof__metrics_on, 1);
}

/* The /metrics body now (caller frees). */
static char *scrape(void)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    stageprof__metrics_render(&sb);
    ASSERT_EQ(sb.oom, 0);
    return sb.buf;
}

/* The value of the sample line that starts with @series followed by a space;
 * NAN when there is none. */
static double value_of(const char *text, const char *series)
{
    size_t k = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, series, k) == 0 && p[k] == ' ')
            return strtod(p + k + 1, NULL);
    return NAN;
}

#define STAGE_(name, cat) "stage=\"" name "\",category=\"" cat "\""

STAGEPROF_TEST(complete_spans_fall_in_their_buckets)
{
    start_metrics("0.001,0.01,0.1", 0);
    static stageprof_site_t site = STAGEPROF_SITE_INIT("infer", "compute");
    /* 0.5 ms, exactly 1 ms (le is inclusive), 5 ms, 50 ms, 2 s. */
    uint64_t durs[] = {500000, 1000000, 5000000, 50000000, 2000000000};
    for (size_t i = 0; i < 5; i++)
        stageprof_span_complete(&site, 0, durs[i]);
    char *m = scrape();
    const char *b =
        "ai_pipeline_stage_duration_seconds_bucket{" STAGE_("infer", "compute");
    char key[256];
    snprintf(key, sizeof key, "%s,le=\"0.001\"}", b);
    ASSERT_EQ(value_of(m, key), 2);
    snprintf(key, sizeof key, "%s,le=\"0.01\"}", b);
    ASSERT_EQ(value_of(m, key), 3);
    snprintf(key, sizeof key, "%s,le=\"0.1\"}", b);
    ASSERT_EQ(value_of(m, key), 4);
    snprintf(key, sizeof key, "%s,le=\"+Inf\"}", b);
    ASSERT_EQ(value_of(m, key), 5);
    ASSERT_EQ(value_of(m, "ai_pipeline_stage_duration_seconds_count{" STAGE_(
                              "infer", "compute") "}"),
              5);
    double sum = value_of(m, "ai_pipeline_stage_duration_seconds_sum{" STAGE_(
                                 "infer", "compute") "}");
    ASSERT_TRUE(fabs(sum - 2.0565) < 1e-9);
    free(m);
    ASSERT_EQ(stageprof_stop(), 0);
}

STAGEPROF_TEST(scoped_spans_count_once_each)
{
    start_metrics(NULL, 0);
    for (int i = 0; i < 7; i++) {
        STAGEPROF_SCOPE(s, "decode", "data");
        STAGEPROF_ARG_INT(s, "i", i); /* no trace: not misuse either */
    }
    char *m = scrape();
    ASSERT_EQ(value_of(m, "ai_pipeline_stage_duration_seconds_count{" STAGE_(
                              "decode", "data") "}"),
              7);
    /* The default bounds: 100 us to 10 s. */
    ASSERT_CONTAINS(m, "le=\"0.0001\"}");
    ASSERT_CONTAINS(m, "le=\"10\"}");
    free(m);
    ASSERT_EQ(stats().misuse, 0);
    ASSERT_EQ(stageprof_stop(), 0);
}

static void *end_here(void *arg)
{
    stageprof_span_end(arg);
    return NULL;
}

STAGEPROF_TEST(metrics_only_span_may_end_on_another_thread)
{
    start_metrics(NULL, 0);
    STAGEPROF_SPAN_BEGIN(s, "handoff", "queue");
    ASSERT_NOT_NULL(s.owner);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, end_here, &s), 0);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    STAGEPROF_SPAN_END(s); /* already ended: nothing */
    char *m = scrape();
    ASSERT_EQ(value_of(m, "ai_pipeline_stage_duration_seconds_count{" STAGE_(
                              "handoff", "queue") "}"),
              1);
    free(m);
    ASSERT_EQ(stageprof_stop(), 0);
}

static void *worker(void *arg)
{
    int n = *(int *)arg;
    for (int i = 0; i < n; i++) {
        STAGEPROF_SCOPE(s, "work", "compute");
    }
    return NULL;
}

STAGEPROF_TEST(exited_threads_keep_their_counts)
{
    start_metrics(NULL, 0);
    int n = 1000;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, worker, &n), 0);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(pthread_join(t[i], NULL), 0);
    worker(&n); /* and the main thread, still alive */
    char *m = scrape();
    ASSERT_EQ(value_of(m, "ai_pipeline_stage_duration_seconds_count{" STAGE_(
                              "work", "compute") "}"),
              5000);
    free(m);
    ASSERT_EQ(stageprof_stop(), 0);
}

STAGEPROF_TEST(series_beyond_the_cap_go_to_other)
{
    start_metrics(NULL, 3);
    char name[32];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "dyn%d", i);
        STAGEPROF_SCOPE_DYN(s, name, "compute");
    }
    char *m = scrape();
    ASSERT_EQ(value_of(m, "ai_pipeline_stage_duration_seconds_count{" STAGE_(
                              "dyn2", "compute") "}"),
              1);
    ASSERT_TRUE(
        isnan(value_of(m, "ai_pipeline_stage_duration_seconds_count{" STAGE_(
                              "dyn3", "compute") "}")));
    ASSERT_EQ(value_of(m, "ai_pipeline_stage_duration_seconds_count{" STAGE_(
                              "other", "other") "}"),
              7);
    ASSERT_EQ(value_of(m, "stageprof_series_overflow_total{kind=\"stage\"}"),
              7);
    free(m);
    ASSERT_EQ(stageprof_stop(), 0);
}

STAGEPROF_TEST(label_values_are_escaped)
{
    start_metrics(NULL, 0);
    {
        STAGEPROF_SCOPE_DYN(s, "a\"b\\c\nd", "compute");
    }
    char *m = scrape();
    ASSERT_EQ(value_of(m, "ai_pipeline_stage_duration_seconds_count{stage=\"a"
                          "\\\"b\\\\c\\nd\",category=\"compute\"}"),
              1);
    free(m);
    ASSERT_EQ(stageprof_stop(), 0);
}

static stageprof_site_t run_begin_site = STAGEPROF_SITE_INIT("request", "run");
static stageprof_site_t run_end_site = STAGEPROF_SITE_INIT("request", "run");

static void *end_run(void *arg)
{
    stageprof_run_end(&run_end_site, *(uint64_t *)arg);
    return NULL;
}

STAGEPROF_TEST(runs_flows_and_counters)
{
    start_metrics(NULL, 0);
    for (uint64_t id = 1; id <= 3; id++) {
        stageprof_run_begin(&run_begin_site, id);
        pthread_t t;
        ASSERT_EQ(pthread_create(&t, NULL, end_run, &id), 0);
        ASSERT_EQ(pthread_join(t, NULL), 0);
    }
    stageprof_run_end(&run_end_site, 99); /* never begun: not counted */
    STAGEPROF_FLOW_BEGIN("handoff", 7);
    STAGEPROF_FLOW_STEP("handoff", 7);
    STAGEPROF_FLOW_END("handoff", 7);
    STAGEPROF_FLOW_END("handoff", 8); /* no begin */
    STAGEPROF_COUNTER_INT("queue_depth", 4);
    STAGEPROF_COUNTER_DOUBLE("batch_fill", 0.75);
    char *m = scrape();
    ASSERT_EQ(
        value_of(m, "ai_pipeline_run_duration_seconds_count{run=\"request\"}"),
        3);
    ASSERT_EQ(value_of(m, "ai_pipeline_runs_total{run=\"request\"}"), 3);
    ASSERT_EQ(
        value_of(m, "ai_pipeline_queue_wait_seconds_count{flow=\"handoff\"}"),
        1);
    ASSERT_EQ(value_of(m, "ai_pipeline_value{track=\"queue_depth\"}"), 4);
    ASSERT_EQ(value_of(m, "ai_pipeline_value{track=\"batch_fill\"}"), 0.75);
    free(m);
    ASSERT_EQ(stageprof_stop(), 0);
}

STAGEPROF_TEST(leaked_runs_do_not_stop_run_metrics)
{
    start_metrics(NULL, 0);
    /* 5000 runs begun and never ended: more than the table of 4096. */
    for (uint64_t id = 1; id <= 5000; id++)
        stageprof_run_begin(&run_begin_site, id);
    stageprof_run_begin(&run_begin_site, 9999);
    stageprof_run_end(&run_end_site, 9999);
    char *m = scrape();
    ASSERT_EQ(
        value_of(m, "ai_pipeline_run_duration_seconds_count{run=\"request\"}"),
        1);
    ASSERT_TRUE(value_of(m, "stageprof_metrics_lost_total") >= 904);
    free(m);
    ASSERT_EQ(stageprof_stop(), 0);
}

static stageprof_site_t flow_site = STAGEPROF_SITE_INIT("handoff", "flow");

/* Begins and ends of flows with colliding ids, against a plain record. */
STAGEPROF_TEST(flow_pairs_match_under_churn)
{
    start_metrics(NULL, 0);
    enum { IDS = 3000 };
    static unsigned char open_[IDS];
    uint64_t expect = 0, x = 12345;
    for (int i = 0; i < 200000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t id = (x >> 33) % IDS + 1;
        if ((x >> 20) & 1) {
            stageprof_flow_begin(&flow_site, id);
            open_[id - 1] = 1;
        } else {
            stageprof_flow_end(&flow_site, id);
            expect += open_[id - 1];
            open_[id - 1] = 0;
        }
    }
    char *m = scrape();
    ASSERT_EQ(
        value_of(m, "ai_pipeline_queue_wait_seconds_count{flow=\"handoff\"}"),
        (double)expect);
    ASSERT_EQ(value_of(m, "stageprof_metrics_lost_total"), 0);
    free(m);
    ASSERT_EQ(stageprof_stop(), 0);
}

STAGEPROF_TEST(tracing_and_metrics_together)
{
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 1;
    c.dir = temp_dir("stageprof-metrics");
    c.http = "127.0.0.1:0";
    c.http_token = "s3cret-t0ken";
    c.sample_hz = 0;
    c.categories = "-io"; /* not traced, still measured */
    ASSERT_EQ(stageprof_start(&c), 0);
    for (int i = 0; i < 5; i++) {
        STAGEPROF_SCOPE(a, "traced", "compute");
        {
            STAGEPROF_SCOPE(b, "untraced", "io");
        }
    }
    char *m = scrape();
    ASSERT_EQ(value_of(m, "ai_pipeline_stage_duration_seconds_count{" STAGE_(
                              "traced", "compute") "}"),
              5);
    ASSERT_EQ(value_of(m, "ai_pipeline_stage_duration_seconds_count{" STAGE_(
                              "untraced", "io") "}"),
              5);
    free(m);
    ASSERT_EQ(stageprof_stop(), 0);
    char path[4096];
    char *trace = last_trace(path, sizeof path);
    ASSERT_EQ(count_of(trace, "\"name\":\"traced\""), 5);
    ASSERT_EQ(count_of(trace, "\"name\":\"untraced\""), 0);
    ASSERT_CONTAINS(trace, "\"http\":\"127.0.0.1:0\"}");
    ASSERT_NULL(strstr(trace, "s3cret"));
    free(trace);
    ASSERT_EQ(stats().misuse, 0);
}

STAGEPROF_TEST(sampler_tracks_are_not_gauges_again)
{
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 1;
    c.dir = temp_dir("stageprof-metrics");
    c.http = "127.0.0.1:0";
    c.sample_hz = 100;
    ASSERT_EQ(stageprof_start(&c), 0);
    STAGEPROF_COUNTER_INT("queue_depth", 3);
    usleep(300000);
    char *m = scrape();
    ASSERT_TRUE(value_of(m, "stageprof_sampler_samples_total") >= 2);
    ASSERT_EQ(value_of(m, "ai_pipeline_value{track=\"queue_depth\"}"), 3);
    ASSERT_NULL(strstr(m, "track=\"process."));
    ASSERT_NULL(strstr(m, "track=\"system."));
    free(m);
    ASSERT_EQ(stageprof_stop(), 0);
    char path[4096];
    char *trace = last_trace(path, sizeof path);
    ASSERT_CONTAINS(trace, "\"name\":\"system.cpu_busy\",\"cat\":\"resource\"");
    free(trace);
}

STAGEPROF_TEST(counts_survive_stop_and_start)
{
    start_metrics(NULL, 0);
    record_some(3);
    ASSERT_EQ(stageprof_stop(), 0);
    record_some(4); /* off: nothing */
    start_metrics(NULL, 0);
    record_some(5);
    char *m = scrape();
    ASSERT_EQ(value_of(m, "ai_pipeline_stage_duration_seconds_count{" STAGE_(
                              "stage", "compute") "}"),
              8);
    free(m);
    ASSERT_EQ(stageprof_stop(), 0);
}

STAGEPROF_TEST(off_records_nothing)
{
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 0;
    c.sample_hz = 0;
    ASSERT_EQ(stageprof_start(&c), 0);
    ASSERT_EQ(stageprof__metrics_on, 0);
    ASSERT_EQ(stageprof_is_active(), 0);
    record_some(3);
    char *m = scrape();
    ASSERT_NULL(strstr(m, "ai_pipeline_stage_duration_seconds_count"));
    ASSERT_CONTAINS(m, "stageprof_events_dropped_total 0\n");
    free(m);
    ASSERT_EQ(stageprof_stop(), 0);
}

STAGEPROF_TEST(bucket_lists)
{
    double b[64];
    int n = 0;
    ASSERT_EQ(stageprof__parse_buckets("0.001,0.5,2", b, 64, &n), 0);
    ASSERT_EQ(n, 3);
    ASSERT_EQ(b[1], 0.5);
    ASSERT_EQ(stageprof__parse_buckets("1", b, 64, &n), 0);
    ASSERT_EQ(n, 1);
    static const char *const bad[] = {
        "",    "0",     "-1",     "1,1",  "2,1", "1,", ",1",    "1,,2", "nan",
        "inf", "1e400", "0.1 ,1", " 0.1", "1;2", "0x", "1,abc", "1e10", "+1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = -1;
        ASSERT_NE(stageprof__parse_buckets(bad[i], b, 64, &n), 0);
        ASSERT_EQ(n, -1);
    }
    /* Too many: 65 increasing bounds. */
    char many[1024] = "";
    size_t off = 0;
    for (int i = 1; i <= 65; i++)
        off += (size_t)snprintf(many + off, sizeof many - off, "%s%d",
                                i > 1 ? "," : "", i);
    ASSERT_NE(stageprof__parse_buckets(many, b, 64, &n), 0);
}

static int warned;
static void count_warn(int level, const char *msg, void *ud)
{
    (void)ud;
    if (level == STAGEPROF_LOG_WARN &&
        strstr(msg, "STAGEPROF_HISTOGRAM_BUCKETS") != NULL)
        warned++;
}

STAGEPROF_TEST(bad_bucket_setting_warns_and_uses_default)
{
    setenv("STAGEPROF_HISTOGRAM_BUCKETS", "1,0.5", 1);
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 0;
    c.http = "127.0.0.1:0";
    c.sample_hz = 0;
    c.log_cb = count_warn;
    ASSERT_EQ(stageprof_start(&c), 0);
    ASSERT_EQ(warned, 1);
    record_some(1);
    char *m = scrape();
    ASSERT_CONTAINS(m, "le=\"0.00025\"}");
    free(m);
    ASSERT_EQ(stageprof_stop(), 0);
}

STAGEPROF_TEST(promtool_accepts_the_text)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0)
        STAGEPROF_SKIP("promtool not installed (Debian package prometheus)");
    start_metrics(NULL, 0);
    record_some(3);
    {
        STAGEPROF_SCOPE_DYN(s, "we\"ird\\name\n", "compute");
    }
    stageprof_run_begin(&run_begin_site, 1);
    stageprof_run_end(&run_end_site, 1);
    STAGEPROF_FLOW_BEGIN("handoff", 1);
    STAGEPROF_FLOW_END("handoff", 1);
    STAGEPROF_COUNTER_INT("queue_depth", 2);
    char *m = scrape();
    char *dir = temp_dir("stageprof-promtool");
    char path[256], cmd[512];
    snprintf(path, sizeof path, "%s/metrics.txt", dir);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs(m, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s > %s/out 2>&1", path,
             dir);
    int rc = system(cmd);
    snprintf(path, sizeof path, "%s/out", dir);
    char *out = read_file(path, NULL);
    if (rc != 0 || out[0] != '\0')
        fprintf(stderr, "promtool:\n%s\n--- text:\n%s\n", out, m);
    ASSERT_EQ(rc, 0);
    ASSERT_STREQ(out, "");
    free(out);
    free(m);
    ASSERT_EQ(stageprof_stop(), 0);
}

STAGEPROF_TEST_LIST(STAGEPROF_CASE(complete_spans_fall_in_their_buckets),
                    STAGEPROF_CASE(scoped_spans_count_once_each),
                    STAGEPROF_CASE(metrics_only_span_may_end_on_another_thread),
                    STAGEPROF_CASE(exited_threads_keep_their_counts),
                    STAGEPROF_CASE(series_beyond_the_cap_go_to_other),
                    STAGEPROF_CASE(label_values_are_escaped),
                    STAGEPROF_CASE(runs_flows_and_counters),
                    STAGEPROF_CASE(leaked_runs_do_not_stop_run_metrics),
                    STAGEPROF_CASE(flow_pairs_match_under_churn),
                    STAGEPROF_CASE(tracing_and_metrics_together),
                    STAGEPROF_CASE(sampler_tracks_are_not_gauges_again),
                    STAGEPROF_CASE(counts_survive_stop_and_start),
                    STAGEPROF_CASE(off_records_nothing),
                    STAGEPROF_CASE(bucket_lists),
                    STAGEPROF_CASE(bad_bucket_setting_warns_and_uses_default),
                    STAGEPROF_CASE(promtool_accepts_the_text))
