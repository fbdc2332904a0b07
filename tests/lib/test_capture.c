/*
 * test_capture.c - GET /capture over real sockets to 127.0.0.1: parameter
 * checks, one capture at a time, mode=recent against the ring, windows in
 * tracing and in metrics mode, gzip, empty captures and their reasons, a
 * client that leaves mid-capture. Every wait is bounded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "capture.h"
#include "helpers.h"
#include "http.h"
#include "metrics.h"
#include "net.h"
#include "ring.h"
#include "tbuf.h"

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                 */
/* ------------------------------------------------------------------------ */

static stageprof_site_t site_work = STAGEPROF_SITE_INIT("work", "compute");
static stageprof_site_t site_tick = STAGEPROF_SITE_INIT("tick", "compute");
static stageprof_site_t site_run = STAGEPROF_SITE_INIT("frame", "serve");

/* Start a live session on @addr (tracing when @enable); the bound port. */
static int start_live(const char *addr, int enable, long long runs,
                      const char *token)
{
    if (!http_built())
        STAGEPROF_SKIP("built without STAGEPROF_WITH_HTTP");
    stageprof_config_t cfg;
    stageprof_config_init(&cfg);
    cfg.enable = enable;
    cfg.http = addr;
    cfg.http_token = token;
    cfg.sample_hz = 0;
    cfg.dir = "/tmp/stageprof-unit-capture";
    if (runs > 0)
        cfg.buffer_runs = runs;
    ASSERT_EQ(stageprof_start(&cfg), 0);
    int port = stageprof_http_get_port();
    ASSERT_GT(port, 0);
    return port;
}

static void send_get(int fd, const char *target, const char *extra)
{
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: "
                     "close\r\n\r\n",
                     target, extra ? extra : "");
    ASSERT_EQ(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
}

/* An answer: the whole response, its status, where its body starts. */
struct answer {
    char *raw; /* NUL added after the bytes */
    size_t len;
    int status;
    const char *body;
    size_t body_len;
};

static void read_answer(int fd, struct answer *a)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    char buf[8192];
    ssize_t r;
    while ((r = recv(fd, buf, sizeof buf, 0)) > 0)
        stageprof__sb_add(&sb, buf, (size_t)r);
    ASSERT_EQ(r, 0); /* closed by the server, not timed out */
    close(fd);
    a->len = sb.len;
    stageprof__sb_add(&sb, "", 1);
    a->raw = sb.buf;
    ASSERT_TRUE(strncmp(a->raw, "HTTP/1.", 7) == 0);
    a->status = (int)strtol(a->raw + 9, NULL, 10);
    const char *b = strstr(a->raw, "\r\n\r\n");
    ASSERT_NOT_NULL(b);
    a->body = b + 4;
    a->body_len = a->len - (size_t)(a->body - a->raw);
}

static void get(int port, const char *target, const char *extra,
                struct answer *a)
{
    int fd = dial_timeout(port, 20);
    ASSERT_GE(fd, 0);
    send_get(fd, target, extra);
    read_answer(fd, a);
}

/* The value of header @name (case as sent) into @out; 0 when absent. */
static int header(const struct answer *a, const char *name, char *out,
                  size_t len)
{
    size_t n = strlen(name);
    for (const char *p = strstr(a->raw, "\r\n"); p != NULL && p < a->body;
         p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 3 + n;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t k = (size_t)(e - v) < len - 1 ? (size_t)(e - v) : len - 1;
            memcpy(out, v, k);
            out[k] = '\0';
            return 1;
        }
    }
    return 0;
}

static long long header_num(const struct answer *a, const char *name)
{
    char v[64];
    ASSERT_TRUE(header(a, name, v, sizeof v));
    return strtoll(v, NULL, 10);
}

/* Events of the body (not "M") counted from its lines. */
static long long count_events(const char *body)
{
    long long n = 0;
    for (const char *p = strstr(body, "{\"ph\":\""); p != NULL;
         p = strstr(p + 1, "{\"ph\":\""))
        if (p[7] != 'M')
            n++;
    return n;
}

/* A recording thread: spans and instants until told to stop. */
static int rec_stop;
static void *recorder(void *arg)
{
    (void)arg;
    uint64_t run = 1;
    while (!__atomic_load_n(&rec_stop, __ATOMIC_ACQUIRE)) {
        stageprof_run_begin(&site_run, run);
        stageprof_span_t s = stageprof_span_begin(&site_work);
        stageprof_instant(&site_tick);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        stageprof_span_end(&s);
        stageprof_run_end(&site_run, run);
        run++;
    }
    return NULL;
}

static pthread_t start_recorder(void)
{
    pthread_t t;
    __atomic_store_n(&rec_stop, 0, __ATOMIC_RELEASE);
    ASSERT_EQ(pthread_create(&t, NULL, recorder, NULL), 0);
    return t;
}

static void stop_recorder(pthread_t t)
{
    __atomic_store_n(&rec_stop, 1, __ATOMIC_RELEASE);
    pthread_join(t, NULL);
}

/* The "capture" member's number @key ("events", ...). */
static long long member_num(const char *body, const char *key)
{
    const char *c = strstr(body, "\"capture\":{");
    ASSERT_NOT_NULL(c);
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(c, pat);
    ASSERT_NOT_NULL(p);
    return strtoll(p + strlen(pat), NULL, 10);
}

/* ------------------------------------------------------------------------ */
/* Cases                                                                    */
/* ------------------------------------------------------------------------ */

STAGEPROF_TEST(bad_parameters_400)
{
    int port = start_live("127.0.0.1:0", 0, 0, NULL);
    static const char *const bad[] = {
        "/capture?duration_ms=-5",
        "/capture?duration_ms=abc",
        "/capture?duration_ms=",
        "/capture?duration_ms",
        "/capture?duration_ms=0",
        "/capture?duration_ms=60001",
        "/capture?duration_ms=99999999999999999999",
        "/capture?delay_ms=-1",
        "/capture?delay_ms=1e3",
        "/capture?delay_ms=60001",
        "/capture?max_events=0",
        "/capture?max_events=1000001",
        "/capture?max_events=%2010",
        "/capture?categories=",
        "/capture?categories=a,,b",
        "/capture?categories=--x",
        "/capture?categories=a%20b",
        "/capture?mode=all",
        "/capture?mode=",
        "/capture?mode=recent&duration_ms=10",
        "/capture?foo=1",
        "/capture?duration_ms=10&duration_ms=20",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct answer a;
        get(port, bad[i], NULL, &a);
        if (a.status != 400)
            fprintf(stderr, "%s -> %d\n", bad[i], a.status);
        ASSERT_EQ(a.status, 400);
        /* One line of reason. */
        ASSERT_GT(a.body_len, 1);
        ASSERT_EQ(strchr(a.body, '\n') - a.body, (long)a.body_len - 1);
        free(a.raw);
    }
    stageprof_stop();
}

STAGEPROF_TEST(params_parse_pure)
{
    struct capture_params p;
    char why[200];
    stageprof__capture_params_init(&p);
    ASSERT_EQ(p.duration_ms, 1000);
    ASSERT_EQ(p.max_events, CAPTURE_MAX_EVENTS);
    ASSERT_EQ(
        stageprof__capture_param(&p, "duration_ms", "60000", why, sizeof why),
        0);
    ASSERT_EQ(stageprof__capture_param(&p, "categories", "compute,-io", why,
                                       sizeof why),
              0);
    ASSERT_STREQ(p.categories, "compute,-io");
    ASSERT_EQ(stageprof__capture_param(&p, "delay_ms", "x", why, sizeof why),
              STAGEPROF_EINVAL);
    ASSERT_CONTAINS(why, "delay_ms must be a whole number from 0 to 60000");
}

STAGEPROF_TEST(second_capture_409_then_client_gone)
{
    int port = start_live("127.0.0.1:0", 0, 0, NULL);
    /* Held: starts in 20 s, so it is still waiting. */
    int held = dial_timeout(port, 20);
    ASSERT_GE(held, 0);
    send_get(held, "/capture?delay_ms=20000&duration_ms=1000", NULL);
    struct timespec ts = {0, 100000000};
    nanosleep(&ts, NULL);
    struct answer a;
    get(port, "/capture?mode=recent", NULL, &a);
    ASSERT_EQ(a.status, 409);
    ASSERT_CONTAINS(a.body, "already running");
    free(a.raw);
    /* /metrics still answers while a capture waits. */
    get(port, "/metrics", NULL, &a);
    ASSERT_EQ(a.status, 200);
    free(a.raw);
    /* The client leaves: the slot frees within a few slices. */
    close(held);
    int status = 409;
    for (int i = 0; i < 100 && status == 409; i++) {
        get(port, "/capture?duration_ms=1", NULL, &a);
        status = a.status;
        free(a.raw);
        if (status == 409)
            nanosleep(&ts, NULL);
    }
    ASSERT_EQ(status, 200);
    ASSERT_EQ(stageprof_is_tracing(), 0);
    stageprof_stop();
}

STAGEPROF_TEST(recent_holds_last_runs)
{
    int port = start_live("127.0.0.1:0", 1, 10, NULL);
    for (uint64_t run = 1; run <= 100; run++) {
        stageprof_run_begin(&site_run, run);
        stageprof_span_t s = stageprof_span_begin(&site_work);
        stageprof_span_end(&s);
        stageprof_run_end(&site_run, run);
    }
    struct answer a;
    get(port, "/capture?mode=recent", NULL, &a);
    ASSERT_EQ(a.status, 200);
    char ct[64];
    ASSERT_TRUE(header(&a, "Content-Type", ct, sizeof ct));
    ASSERT_STREQ(ct, "application/json");
    int seen[101] = {0};
    for (const char *p = strstr(a.body, "\"run\":"); p != NULL;
         p = strstr(p + 1, "\"run\":")) {
        long v = strtol(p + 6, NULL, 10);
        ASSERT_TRUE(v >= 1 && v <= 100);
        seen[v] = 1;
    }
    for (int r = 1; r <= 100; r++)
        ASSERT_EQ(seen[r], r > 90);
    long long events = header_num(&a, "X-Stageprof-Events");
    ASSERT_EQ(events, count_events(a.body));
    ASSERT_EQ(events, 30); /* b, X, e per run */
    ASSERT_EQ(member_num(a.body, "events"), 30);
    ASSERT_EQ(header_num(&a, "X-Stageprof-Dropped"), 0);
    char v[200];
    ASSERT_TRUE(!header(&a, "X-Stageprof-Empty-Reason", v, sizeof v));
    ASSERT_CONTAINS(a.body, "\"mode\":\"recent\"");
    ASSERT_CONTAINS(a.body, "\"empty_reason\":null");
    ASSERT_CONTAINS(a.body, "\"stageprof_summary\":");
    free(a.raw);
    /* Not consumed: a second answer holds the same runs. */
    get(port, "/capture?mode=recent&max_events=5", NULL, &a);
    ASSERT_EQ(a.status, 200);
    ASSERT_EQ(header_num(&a, "X-Stageprof-Events"), 5);
    ASSERT_EQ(header_num(&a, "X-Stageprof-Left-Out"), 25);
    ASSERT_EQ(member_num(a.body, "left_out_max_events"), 25);
    free(a.raw);
    stageprof_stop();
}

/* ts (µs) of every "i" event must lie in [lo, hi] µs. */
static void check_instants_within(const char *body, double lo, double hi)
{
    int n = 0;
    for (const char *p = strstr(body, "{\"ph\":\"i\""); p != NULL;
         p = strstr(p + 1, "{\"ph\":\"i\"")) {
        const char *t = strstr(p, "\"ts\":");
        ASSERT_NOT_NULL(t);
        double ts = strtod(t + 5, NULL);
        ASSERT_TRUE(ts >= lo && ts <= hi);
        n++;
    }
    ASSERT_GT(n, 0);
}

static void window_of(const char *body, double *lo, double *hi)
{
    const char *w = strstr(body, "\"window_ns\":{\"start\":");
    ASSERT_NOT_NULL(w);
    *lo = strtod(w + 22, NULL) / 1000.0;
    const char *e = strstr(w, "\"end\":");
    ASSERT_NOT_NULL(e);
    *hi = strtod(e + 6, NULL) / 1000.0;
    ASSERT_TRUE(*hi > *lo);
}

STAGEPROF_TEST(window_while_tracing)
{
    int port = start_live("127.0.0.1:0", 1, 0, NULL);
    pthread_t t = start_recorder();
    struct timespec ts = {0, 200000000};
    nanosleep(&ts, NULL); /* events before the window */
    struct answer a;
    get(port, "/capture?duration_ms=300&delay_ms=100", NULL, &a);
    nanosleep(&ts, NULL);
    stop_recorder(t);
    ASSERT_EQ(a.status, 200);
    double lo, hi;
    window_of(a.body, &lo, &hi);
    ASSERT_TRUE(hi - lo >= 300000.0 && hi - lo < 2000000.0);
    check_instants_within(a.body, lo, hi);
    ASSERT_CONTAINS(a.body, "\"recording\":\"tracing\"");
    ASSERT_EQ(header_num(&a, "X-Stageprof-Events"), count_events(a.body));
    ASSERT_GT(count_events(a.body), 10);
    free(a.raw);
    /* Kept for the session's own trace: still tracing, nothing consumed. */
    ASSERT_EQ(stageprof_is_tracing(), 1);
    stageprof_stop();
}

/* The count of the "work" histogram in /metrics. */
static long long work_count(void)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    stageprof__metrics_render(&sb);
    ASSERT_NOT_NULL(sb.buf);
    const char *p = strstr(sb.buf, "ai_pipeline_stage_duration_seconds_count{"
                                   "stage=\"work\"");
    long long n = -1;
    if (p != NULL)
        n = strtoll(strchr(p, '}') + 1, NULL, 10);
    stageprof__sb_fini(&sb);
    return n;
}

STAGEPROF_TEST(window_in_metrics_mode)
{
    int port = start_live("127.0.0.1:0", 0, 0, NULL);
    pthread_t t = start_recorder();
    struct timespec ts = {0, 100000000};
    nanosleep(&ts, NULL);
    ASSERT_EQ(stageprof_is_tracing(), 0);
    struct answer a;
    get(port, "/capture?duration_ms=300", NULL, &a);
    ASSERT_EQ(a.status, 200);
    ASSERT_EQ(stageprof_is_tracing(), 0); /* back in metrics mode */
    ASSERT_EQ(LOAD_RELAXED(&stageprof_hot_state), STATE_METRICS);
    double lo, hi;
    window_of(a.body, &lo, &hi);
    check_instants_within(a.body, lo, hi);
    ASSERT_CONTAINS(a.body, "\"recording\":\"metrics_mode_window\"");
    ASSERT_GT(header_num(&a, "X-Stageprof-Events"), 10);
    free(a.raw);
    /* Histograms keep counting; the buffers hold (almost) nothing. */
    long long c1 = work_count();
    nanosleep(&ts, NULL);
    long long c2 = work_count();
    ASSERT_GT(c2, c1);
    ASSERT_LT(stageprof__tbuf_bytes(), 1u << 20);
    /* A second window works the same way. */
    get(port, "/capture?duration_ms=100", NULL, &a);
    ASSERT_EQ(a.status, 200);
    ASSERT_GT(header_num(&a, "X-Stageprof-Events"), 0);
    free(a.raw);
    stop_recorder(t);
    ASSERT_EQ(stageprof_is_tracing(), 0);
    stageprof_stop();
}

static stageprof_site_t site_held = STAGEPROF_SITE_INIT("held", "io");

/* A span begun 50 ms from now, held 500 ms. */
static void *hold_span(void *arg)
{
    (void)arg;
    struct timespec t50 = {0, 50000000}, t500 = {0, 500000000};
    nanosleep(&t50, NULL);
    stageprof_span_t s = stageprof_span_begin(&site_held);
    nanosleep(&t500, NULL);
    stageprof_span_end(&s);
    return NULL;
}

/*
 * A span a category filter left out of one window (still open at its end)
 * has no end in the next window: an "E" there would have no "B" anywhere.
 */
STAGEPROF_TEST(span_filtered_out_leaves_no_end_behind)
{
    int port = start_live("127.0.0.1:0", 0, 0, NULL);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, hold_span, NULL), 0);
    struct answer a;
    get(port, "/capture?duration_ms=200&categories=compute", NULL, &a);
    ASSERT_EQ(a.status, 200);
    ASSERT_NULL(strstr(a.body, "\"name\":\"held\""));
    free(a.raw);
    get(port, "/capture?duration_ms=600", NULL, &a);
    ASSERT_EQ(a.status, 200);
    ASSERT_NULL(strstr(a.body, "{\"ph\":\"E\""));
    free(a.raw);
    pthread_join(t, NULL);
    stageprof_stop();
}

static int capture_port;

static void *capture_300ms(void *arg)
{
    struct answer *a = arg;
    get(capture_port, "/capture?duration_ms=300", NULL, a);
    return NULL;
}

/* A run begun in a metrics-mode window and ended after it is forgotten. */
STAGEPROF_TEST(run_across_window_end_not_left_in_progress)
{
    capture_port = start_live("127.0.0.1:0", 0, 0, NULL);
    struct answer a;
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, capture_300ms, &a), 0);
    struct timespec ts = {0, 1000000};
    for (int i = 0; i < 5000 && !stageprof_is_tracing(); i++)
        nanosleep(&ts, NULL);
    ASSERT_EQ(stageprof_is_tracing(), 1);
    stageprof_run_begin(&site_run, 42);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    ASSERT_EQ(a.status, 200);
    free(a.raw);
    ASSERT_EQ(stageprof_is_tracing(), 0);
    stageprof_run_end(&site_run, 42); /* metrics mode: the ring sees nothing */
    struct ring_view v;
    ASSERT_EQ(stageprof__ring_view_open(&v), 0);
    uint64_t running = v.running, kept = v.kept;
    stageprof__ring_view_close(&v);
    ASSERT_EQ(running, 0);
    ASSERT_EQ(kept, 0);
    stageprof_stop();
}

STAGEPROF_TEST(gzip_round_trip)
{
    int port = start_live("127.0.0.1:0", 1, 0, NULL);
    stageprof_run_begin(&site_run, 1);
    stageprof_span_t s = stageprof_span_begin(&site_work);
    stageprof_span_end(&s);
    stageprof_run_end(&site_run, 1);
    struct answer a;
    get(port, "/capture?mode=recent", "Accept-Encoding: deflate, gzip\r\n", &a);
    ASSERT_EQ(a.status, 200);
    char v[64];
    ASSERT_TRUE(header(&a, "Content-Encoding", v, sizeof v));
    ASSERT_STREQ(v, "gzip");
    z_stream z;
    memset(&z, 0, sizeof z);
    ASSERT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
    size_t cap = 1u << 20;
    char *out = malloc(cap);
    z.next_in = (unsigned char *)a.body;
    z.avail_in = (uInt)a.body_len;
    z.next_out = (unsigned char *)out;
    z.avail_out = (uInt)cap - 1;
    ASSERT_EQ(inflate(&z, Z_FINISH), Z_STREAM_END);
    out[z.total_out] = '\0';
    inflateEnd(&z);
    ASSERT_EQ(out[0], '{');
    ASSERT_CONTAINS(out, "\"capture\":{\"mode\":\"recent\"");
    ASSERT_EQ(count_events(out), header_num(&a, "X-Stageprof-Events"));
    ASSERT_EQ(count_events(out), 3);
    free(out);
    free(a.raw);
    /* q=0 refuses gzip. */
    get(port, "/capture?mode=recent", "Accept-Encoding: gzip;q=0\r\n", &a);
    ASSERT_EQ(a.status, 200);
    ASSERT_TRUE(!header(&a, "Content-Encoding", v, sizeof v));
    ASSERT_EQ(a.body[0], '{');
    free(a.raw);
    stageprof_stop();
}

static void expect_empty(int port, const char *target, const char *reason)
{
    struct answer a;
    get(port, target, NULL, &a);
    ASSERT_EQ(a.status, 200);
    ASSERT_EQ(header_num(&a, "X-Stageprof-Events"), 0);
    ASSERT_EQ(count_events(a.body), 0);
    char v[256];
    ASSERT_TRUE(header(&a, "X-Stageprof-Empty-Reason", v, sizeof v));
    ASSERT_STREQ(v, reason);
    ASSERT_CONTAINS(a.body, reason);
    ASSERT_CONTAINS(a.body, "\"traceEvents\":[");
    ASSERT_CONTAINS(a.body, "\"stageprof_summary\":");
    free(a.raw);
}

STAGEPROF_TEST(empty_reasons_tracing)
{
    int port = start_live("127.0.0.1:0", 1, 8, NULL);
    expect_empty(port, "/capture?mode=recent", "the ring holds no runs yet");
    expect_empty(port, "/capture?duration_ms=50",
                 "no instrumented code ran in the window");
    stageprof_run_begin(&site_run, 1);
    stageprof_span_t s = stageprof_span_begin(&site_work);
    stageprof_span_end(&s);
    stageprof_run_end(&site_run, 1);
    expect_empty(port, "/capture?mode=recent&categories=nosuch",
                 "the category filter removed every event");
    stageprof_stop();
}

STAGEPROF_TEST(empty_reasons_metrics)
{
    int port = start_live("127.0.0.1:0", 0, 0, NULL);
    expect_empty(port, "/capture?mode=recent",
                 "tracing is off (metrics mode): nothing is kept between "
                 "captures; ask for a window instead");
    expect_empty(port, "/capture?duration_ms=50",
                 "no instrumented code ran in the window");
    pthread_t t = start_recorder();
    expect_empty(port, "/capture?duration_ms=100&categories=-compute,-serve",
                 "the category filter removed every event");
    stop_recorder(t);
    ASSERT_EQ(stageprof_is_tracing(), 0);
    stageprof_stop();
}

STAGEPROF_TEST(token_and_exposure)
{
    int port = start_live("127.0.0.1:0", 0, 0, "s3cret");
    struct answer a;
    get(port, "/capture?duration_ms=1", NULL, &a);
    ASSERT_EQ(a.status, 401);
    free(a.raw);
    get(port, "/capture?duration_ms=1", "Authorization: Bearer s3cret\r\n", &a);
    ASSERT_EQ(a.status, 200);
    free(a.raw);
    stageprof_stop();

    /* All interfaces, no token: /capture refused, /metrics served. */
    port = start_live("0.0.0.0:0", 0, 0, NULL);
    get(port, "/capture?mode=recent", NULL, &a);
    ASSERT_EQ(a.status, 403);
    ASSERT_CONTAINS(a.body, "token");
    free(a.raw);
    get(port, "/metrics", NULL, &a);
    ASSERT_EQ(a.status, 200);
    free(a.raw);
    stageprof_stop();
}

STAGEPROF_TEST(stop_during_capture)
{
    int port = start_live("127.0.0.1:0", 0, 0, NULL);
    int held = dial_timeout(port, 20);
    ASSERT_GE(held, 0);
    send_get(held, "/capture?duration_ms=20000", NULL);
    struct timespec ts = {0, 200000000};
    nanosleep(&ts, NULL);
    ASSERT_EQ(stageprof_is_tracing(), 1); /* the window records */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    stageprof_stop();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ASSERT_LT(t1.tv_sec - t0.tv_sec, 5);
    ASSERT_EQ(stageprof_is_tracing(), 0);
    char buf[64];
    ASSERT_LE(recv(held, buf, sizeof buf, 0), 0); /* closed, no answer */
    close(held);
}

STAGEPROF_TEST_LIST(STAGEPROF_CASE(bad_parameters_400),
                    STAGEPROF_CASE(params_parse_pure),
                    STAGEPROF_CASE(second_capture_409_then_client_gone),
                    STAGEPROF_CASE(recent_holds_last_runs),
                    STAGEPROF_CASE(window_while_tracing),
                    STAGEPROF_CASE(window_in_metrics_mode),
                    STAGEPROF_CASE(run_across_window_end_not_left_in_progress),
                    STAGEPROF_CASE(span_filtered_out_leaves_no_end_behind),
                    STAGEPROF_CASE(gzip_round_trip),
                    STAGEPROF_CASE(empty_reasons_tracing),
                    STAGEPROF_CASE(empty_reasons_metrics),
                    STAGEPROF_CASE(token_and_exposure),
                    STAGEPROF_CASE(stop_during_capture))
