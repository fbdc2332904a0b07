/*
 * cmd_top.c - `stageprof top`: a live view of a running instrumented
 * process, from its /metrics endpoint.
 *
 *   stageprof top [--interval-s S] [--iterations N | --once] [--token T]
 *                 [--timeout-s S] [--format text|json] URL
 *
 * Every interval the endpoint is scraped (cli_fetch) and parsed
 * (prom_text); the figures of an interval are the differences between two
 * good scrapes: per stage the spans per second, p50/p95/p99 interpolated
 * inside the histogram buckets as Prometheus's histogram_quantile does,
 * the mean, and busy seconds per second (rate x mean), by which the rows
 * are sorted; above them runs per second, CPU cores, RSS and drops.
 *
 * Any counter lower than in the previous scrape (or a new process start
 * time) means the process restarted: that interval is shown as "reset"
 * and the current scrape becomes the new baseline. A failed scrape is
 * shown as "down: <reason>" and retried every interval.
 *
 * Interactive when stdout is a terminal, the format is text and neither
 * --once nor --iterations is given: the terminal is put in non-canonical,
 * no-echo mode (restored at exit, on SIGINT/SIGTERM/SIGHUP and by cli_die
 * through atexit), `q` quits and SIGWINCH redraws. Signals reach the loop
 * through a self-pipe, so poll() sees them without races. Otherwise plain
 * frames (text or one JSON object per line) are printed after each
 * interval; the exit status is 1 when a scrape failed.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fetch.h"
#include "prom_text.h"
#include "util/json.h"
#include "util/strbuf.h"

#define STAGE_FAMILY "ai_pipeline_stage_duration_seconds"
#define RUNS_FAMILY "ai_pipeline_runs_total"
#define CPU_FAMILY "process_cpu_seconds_total"
#define RSS_FAMILY "process_resident_memory_bytes"
#define DROPS_FAMILY "stageprof_events_dropped_total"
#define START_FAMILY "process_start_time_seconds"

enum {
    OPT_INTERVAL = CLI_OPT_COMMAND,
    OPT_ONCE,
    OPT_TOKEN,
    OPT_TIMEOUT,
    OPT_FORMAT
};

struct top_opts {
    char *url;         /* normalised, owned */
    double interval_s; /* --interval-s */
    double timeout_s;  /* --timeout-s; 0: the interval, at least 1 s */
    long iterations;   /* frames to print; 0: until stopped */
    int once;          /* --once: a failed scrape is fatal */
    const char *token; /* --token or STAGEPROF_HTTP_TOKEN */
    enum cli_format format;
};

/* One scrape: the parsed answer when it was good. */
struct scrape {
    int ok;
    double t; /* CLOCK_MONOTONIC seconds when it began */
    struct prom_doc doc;
    char error[320];
};

static const double quantiles[3] = {0.5, 0.95, 0.99};

struct row {
    const char *stage, *category; /* borrowed from the baseline's doc */
    double count, rate, mean, busy;
    double q[3];  /* seconds, NaN when no span ended in the interval */
    int above[3]; /* the quantile fell in the +Inf bucket: q is a floor */
};

struct run_rate {
    const char *run; /* borrowed like row strings */
    double rate;
};

enum state { ST_WAITING, ST_UP, ST_RESET, ST_DOWN, ST_CONNECTING };

/* What the screen or a frame shows. */
struct view {
    enum state state;
    const char *error; /* ST_DOWN: the reason (borrowed from a scrape) */
    double last_good;  /* time of the last good scrape, NaN when never */
    double interval;   /* seconds between the two scrapes compared */
    struct row *rows;
    size_t nrows, rows_cap;
    struct run_rate *runs;
    size_t nruns, runs_cap;
    double cpu, rss, drops; /* NaN when the metric is missing */
    int have_figures;       /* rows & co. hold an interval's figures */
    double *le, *cum;       /* scratch: one series' bucket deltas */
    size_t bcap;
};

static void usage(FILE *f)
{
    fputs("usage: stageprof top [options] URL\n"
          "\n"
          "Watch a running instrumented process through its /metrics\n"
          "endpoint (STAGEPROF_HTTP): per stage the spans per second and\n"
          "p50/p95/p99 and mean latency over the last interval, sorted by\n"
          "busy time (rate x mean); runs per second, CPU, RSS and dropped\n"
          "events above. URL is http:// or https://; without a path,\n"
          "/metrics is read. On a terminal the view refreshes in place and\n"
          "'q' quits; otherwise plain frames are printed.\n"
          "\n"
          "Options:\n"
          "  -d, --interval-s=S  seconds between scrapes (default 1)\n"
          "  -n, --iterations=N  print N frames (N intervals), then exit\n"
          "  --once              one frame: two scrapes one interval apart\n"
          "  --token=T           bearer token (default: STAGEPROF_HTTP_TOKEN)\n"
          "  --timeout-s=S       time limit of one scrape (default: the\n"
          "                      interval, at least 1)\n"
          "  --format=FORMAT     frames without a terminal: text (default)\n"
          "                      or json (one object per line)\n"
          "  -h, --help          show this help\n"
          "\n"
          "The global options (-v, -q, --color) are accepted as well.\n"
          "Exit status: 0; 1 when a scrape failed (--once, --iterations and\n"
          "frames without a terminal); 2 bad usage; 128+N after signal N in\n"
          "the interactive view.\n",
          f);
}

/* Options ------------------------------------------------------------------ */

static double parse_seconds(const struct cli_ctx *ctx, const char *opt,
                            const char *arg)
{
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (end == arg || *end != '\0' || errno != 0 || !(v >= 0.01) ||
        !(v <= 86400.0)) {
        char buf[CLI_PRINTABLE_MAX];
        cli_usage_error(ctx, "%s wants seconds from 0.01 to 86400, not '%s'",
                        opt, cli_printable(buf, sizeof buf, arg));
    }
    return v;
}

static long parse_count(const struct cli_ctx *ctx, const char *opt,
                        const char *arg)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (end == arg || *end != '\0' || errno != 0 || v < 1 || v > 1000000000) {
        char buf[CLI_PRINTABLE_MAX];
        cli_usage_error(ctx, "%s wants a count from 1, not '%s'", opt,
                        cli_printable(buf, sizeof buf, arg));
    }
    return v;
}

/* @arg as a full URL, /metrics when it names no path. */
static char *normalise_url(const struct cli_ctx *ctx, const char *arg)
{
    char buf[CLI_PRINTABLE_MAX], err[256];
    char *url = cli_fetch_url(arg, "/metrics", err, sizeof err);
    if (url == NULL)
        cli_usage_error(ctx, "bad URL '%s': %s",
                        cli_printable(buf, sizeof buf, arg), err);
    return url;
}

static void parse_options(struct cli_ctx *ctx, int argc, char **argv,
                          struct top_opts *o)
{
    static const char shortopts[] = ":" CLI_GLOBAL_SHORTOPTS "d:n:";
    static const struct option longopts[] = {
        CLI_GLOBAL_LONGOPTS,
        {"interval-s", required_argument, NULL, 'd'},
        {"iterations", required_argument, NULL, 'n'},
        {"once", no_argument, NULL, OPT_ONCE},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"timeout-s", required_argument, NULL, OPT_TIMEOUT},
        {"format", required_argument, NULL, OPT_FORMAT},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->interval_s = 1.0;
    o->format = CLI_FORMAT_TEXT;
    int c;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            exit(CLI_EXIT_OK);
        case 'd':
            o->interval_s = parse_seconds(ctx, "--interval-s", optarg);
            break;
        case 'n':
            o->iterations = parse_count(ctx, "--iterations", optarg);
            break;
        case OPT_ONCE:
            o->once = 1;
            break;
        case OPT_TOKEN:
            o->token = optarg;
            break;
        case OPT_TIMEOUT:
            o->timeout_s = parse_seconds(ctx, "--timeout-s", optarg);
            break;
        case OPT_FORMAT:
            o->format = cli_parse_format(ctx, optarg,
                                         CLI_FORMAT_TEXT | CLI_FORMAT_JSON);
            break;
        default:
            cli_global_option(ctx, c, argv, shortopts);
        }
    }
    if (o->once && o->iterations != 0)
        cli_usage_error(ctx, "--once and --iterations exclude each other");
    if (o->once)
        o->iterations = 1;
    if (optind >= argc)
        cli_usage_error(ctx, "missing URL (e.g. http://127.0.0.1:9464)");
    if (optind + 1 < argc) {
        char buf[CLI_PRINTABLE_MAX];
        cli_usage_error(ctx, "one URL only, '%s' is one too many",
                        cli_printable(buf, sizeof buf, argv[optind + 1]));
    }
    o->url = normalise_url(ctx, argv[optind]);
    if (o->token == NULL) {
        const char *env = getenv("STAGEPROF_HTTP_TOKEN");
        if (env != NULL && *env != '\0')
            o->token = env;
    }
    if (o->token != NULL && strpbrk(o->token, "\r\n") != NULL)
        cli_usage_error(ctx, "the token holds a line break");
    if (o->timeout_s == 0)
        o->timeout_s = o->interval_s < 1.0 ? 1.0 : o->interval_s;
}

/* Scraping ---------------------------------------------------------------- */

struct key_watch;
static int watch_keys(void *arg);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The first line of @body, printable, into @out. */
static void first_line(char *out, size_t size, const char *body, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < size; i++) {
        unsigned char ch = (unsigned char)body[i];
        if (ch == '\n' || ch == '\r')
            break;
        out[n++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    out[n] = '\0';
}

static void scrape(const struct top_opts *o, struct key_watch *w,
                   struct scrape *s)
{
    memset(s, 0, sizeof *s);
    s->t = now_s();
    struct cli_fetch_opts fo = {o->timeout_s, o->token, 0,
                                w ? watch_keys : NULL, w};
    struct cli_fetch_result r;
    if (cli_fetch(o->url, &fo, &r) != 0) {
        snprintf(s->error, sizeof s->error, "%s", r.error);
    } else if (r.status != 200) {
        char line[200];
        first_line(line, sizeof line, r.body ? r.body : "", r.len);
        snprintf(s->error, sizeof s->error, "HTTP %ld%s%s", r.status,
                 line[0] ? ": " : "", line);
    } else if (prom_text_parse(r.body ? r.body : "", r.len, &s->doc) != 0) {
        prom_doc_fini(&s->doc);
        snprintf(s->error, sizeof s->error, "out of memory parsing the answer");
    } else if (s->doc.nfamilies == 0 && s->doc.skipped > 0) {
        prom_doc_fini(&s->doc);
        snprintf(s->error, sizeof s->error,
                 "the answer is not Prometheus text (line %zu)",
                 s->doc.first_bad);
    } else {
        s->ok = 1;
    }
    cli_fetch_result_fini(&r);
}

/* Figures ------------------------------------------------------------------ */

/*
 * The @q quantile of cumulative bucket counts @cum with bounds @le (sorted,
 * the last +Inf), as Prometheus's histogram_quantile: linear inside the
 * bucket the rank falls in, from 0 for the first bucket; in the +Inf
 * bucket the last finite bound, with *@above set. NaN without counts.
 */
static double bucket_quantile(double q, const double *le, const double *cum,
                              size_t n, int *above)
{
    *above = 0;
    if (n < 2 || !isinf(le[n - 1]) || !(cum[n - 1] > 0))
        return NAN;
    double rank = q * cum[n - 1];
    size_t b = 0;
    while (b < n - 1 && cum[b] < rank)
        b++;
    if (b == n - 1) {
        *above = 1;
        return le[n - 2];
    }
    if (b == 0 && le[0] <= 0)
        return le[0];
    double start = b == 0 ? 0 : le[b - 1];
    double below = b == 0 ? 0 : cum[b - 1];
    return start + (le[b] - start) * ((rank - below) / (cum[b] - below));
}

/* @now - @then, or @now when @then is missing (a series new since). */
static double delta(double now, const double *then)
{
    return then != NULL ? now - *then : now;
}

/* A counter went back: 1. NaN never counts. */
static int went_down(double d)
{
    return d < 0;
}

static int same_bounds(const struct prom_series *a, const struct prom_series *b)
{
    if (a->nbuckets != b->nbuckets)
        return 0;
    for (size_t i = 0; i < a->nbuckets; i++)
        if (a->buckets[i].le != b->buckets[i].le)
            return 0;
    return 1;
}

static void *grow(const struct cli_ctx *ctx, void *p, size_t *cap, size_t n,
                  size_t size)
{
    if (n < *cap)
        return p;
    size_t c = *cap ? 2 * *cap : 32;
    void *q = realloc(p, c * size);
    if (q == NULL)
        cli_die(ctx, "out of memory");
    *cap = c;
    return q;
}

/* Scalar @name in @a and @b: the delta, NaN when either lacks it. */
static double scalar_delta(const struct scrape *a, const struct scrape *b,
                           const char *name)
{
    double x, y;
    if (prom_doc_scalar(&a->doc, name, &x) != 0 ||
        prom_doc_scalar(&b->doc, name, &y) != 0)
        return NAN;
    return y - x;
}

static int row_cmp(const void *pa, const void *pb)
{
    const struct row *a = pa, *b = pb;
    if (a->busy != b->busy)
        return a->busy > b->busy ? -1 : 1;
    if (a->rate != b->rate)
        return a->rate > b->rate ? -1 : 1;
    int c = strcmp(a->stage, b->stage);
    return c ? c : strcmp(a->category, b->category);
}

/*
 * The figures of the interval from @prev to @cur into @v. Returns 0, or 1
 * when a counter went down (the figures are then cleared).
 */
static int compute(const struct cli_ctx *ctx, const struct scrape *prev,
                   const struct scrape *cur, struct view *v)
{
    double dt = cur->t - prev->t;
    v->interval = dt;
    v->nrows = v->nruns = 0;
    v->have_figures = 0;
    int reset = 0;

    double st = scalar_delta(prev, cur, START_FAMILY);
    if (!isnan(st) && st != 0)
        reset = 1;

    const struct prom_family *fc = prom_doc_family(&cur->doc, STAGE_FAMILY);
    const struct prom_family *fp = prom_doc_family(&prev->doc, STAGE_FAMILY);
    for (size_t i = 0; fc != NULL && i < fc->nseries && !reset; i++) {
        const struct prom_series *s = &fc->series[i];
        const struct prom_series *p =
            fp ? prom_family_series(fp, s->key) : NULL;
        if (s->nbuckets == 0 && !s->has_count)
            continue;
        if (p != NULL && !same_bounds(s, p)) {
            reset = 1;
            break;
        }
        if (s->nbuckets > v->bcap) {
            free(v->le);
            free(v->cum);
            v->le = malloc(s->nbuckets * sizeof *v->le);
            v->cum = malloc(s->nbuckets * sizeof *v->cum);
            if (v->le == NULL || v->cum == NULL)
                cli_die(ctx, "out of memory");
            v->bcap = s->nbuckets;
        }
        double *le = v->le, *cum = v->cum;
        for (size_t k = 0; k < s->nbuckets; k++) {
            le[k] = s->buckets[k].le;
            cum[k] =
                delta(s->buckets[k].count, p ? &p->buckets[k].count : NULL);
            if (went_down(cum[k]))
                reset = 1;
            /* Cumulative counts never decrease across bounds. */
            if (k > 0 && cum[k] < cum[k - 1])
                cum[k] = cum[k - 1];
        }
        double count =
            s->has_count ? delta(s->count, p && p->has_count ? &p->count : NULL)
            : s->nbuckets ? cum[s->nbuckets - 1]
                          : NAN;
        double sum =
            s->has_sum ? delta(s->sum, p && p->has_sum ? &p->sum : NULL) : NAN;
        if (went_down(count) || went_down(sum))
            reset = 1;
        v->rows = grow(ctx, v->rows, &v->rows_cap, v->nrows, sizeof *v->rows);
        struct row *r = &v->rows[v->nrows++];
        const char *stage = prom_series_label(s, "stage");
        const char *cat = prom_series_label(s, "category");
        r->stage = stage ? stage : "";
        r->category = cat ? cat : "";
        r->count = count;
        r->rate = dt > 0 ? count / dt : NAN;
        r->mean = count > 0 ? sum / count : NAN;
        r->busy = dt > 0 && count > 0 && !isnan(sum) ? sum / dt : 0;
        for (int k = 0; k < 3; k++)
            r->q[k] = bucket_quantile(quantiles[k], le, cum, s->nbuckets,
                                      &r->above[k]);
    }

    const struct prom_family *rc = prom_doc_family(&cur->doc, RUNS_FAMILY);
    const struct prom_family *rp = prom_doc_family(&prev->doc, RUNS_FAMILY);
    for (size_t i = 0; rc != NULL && i < rc->nseries && !reset; i++) {
        const struct prom_series *s = &rc->series[i];
        const struct prom_series *p =
            rp ? prom_family_series(rp, s->key) : NULL;
        if (!s->has_value)
            continue;
        double d = delta(s->value, p && p->has_value ? &p->value : NULL);
        if (went_down(d))
            reset = 1;
        v->runs = grow(ctx, v->runs, &v->runs_cap, v->nruns, sizeof *v->runs);
        const char *run = prom_series_label(s, "run");
        v->runs[v->nruns].run = run ? run : "";
        v->runs[v->nruns].rate = dt > 0 ? d / dt : NAN;
        v->nruns++;
    }

    double cpu = scalar_delta(prev, cur, CPU_FAMILY);
    v->drops = scalar_delta(prev, cur, DROPS_FAMILY);
    if (went_down(cpu) || went_down(v->drops))
        reset = 1;
    v->cpu = dt > 0 ? cpu / dt : NAN;
    if (prom_doc_scalar(&cur->doc, RSS_FAMILY, &v->rss) != 0)
        v->rss = NAN;

    if (reset) {
        v->nrows = v->nruns = 0;
        v->cpu = v->rss = v->drops = NAN;
        return 1;
    }
    if (v->nrows > 1)
        qsort(v->rows, v->nrows, sizeof *v->rows, row_cmp);
    v->have_figures = 1;
    return 0;
}

/* Text --------------------------------------------------------------------- */

/* @s seconds with three significant digits and a unit; "-" for NaN. */
static void fmt_dur(char *out, size_t size, double s, int above)
{
    const char *gt = above ? ">" : "";
    if (isnan(s)) {
        snprintf(out, size, "-");
        return;
    }
    static const struct {
        double scale;
        const char *unit;
    } units[] = {{1, "s"}, {1e-3, "ms"}, {1e-6, "us"}, {1e-9, "ns"}};
    size_t u = 0;
    while (u + 1 < sizeof units / sizeof units[0] && fabs(s) < units[u].scale)
        u++;
    double x = s / units[u].scale;
    int prec = fabs(x) >= 100 ? 0 : fabs(x) >= 10 ? 1 : 2;
    snprintf(out, size, "%s%.*f%s", gt, prec, x, units[u].unit);
}

static void fmt_num(char *out, size_t size, double x, int prec)
{
    if (isnan(x))
        snprintf(out, size, "-");
    else
        snprintf(out, size, "%.*f", prec, x);
}

static void fmt_bytes(char *out, size_t size, double b)
{
    if (isnan(b)) {
        snprintf(out, size, "-");
        return;
    }
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    while (u + 1 < sizeof units / sizeof units[0] && b >= 1024) {
        b /= 1024;
        u++;
    }
    snprintf(out, size, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

/* A line of a text frame onto @sb; the caller cuts lines to the screen. */
static void add_line(struct strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add_line(struct strbuf *sb, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    stageprof__sb_adds(sb, buf);
    stageprof__sb_adds(sb, "\n");
}

/*
 * The frame of @v as text lines. @width limits the stage and category
 * columns (0: no limit); @interactive keeps the last figures when down.
 */
static void render_text(const struct top_opts *o, const struct view *v,
                        double now, int width, int interactive,
                        struct strbuf *out)
{
    char age[32] = "never";
    if (!isnan(v->last_good))
        snprintf(age, sizeof age, "%.1fs ago", now - v->last_good);
    switch (v->state) {
    case ST_CONNECTING:
        add_line(out, "%s  connecting...", o->url);
        break;
    case ST_WAITING:
        add_line(out, "%s  up, scraped %s; first figures after %.3gs", o->url,
                 age, o->interval_s);
        break;
    case ST_UP:
        add_line(out, "%s  up, scraped %s, interval %.2fs", o->url, age,
                 v->interval);
        break;
    case ST_RESET:
        add_line(out,
                 "%s  reset: a counter went down (restarted?), "
                 "figures start afresh",
                 o->url);
        break;
    case ST_DOWN:
        add_line(out, "%s  down: %s (last good scrape: %s)", o->url, v->error,
                 age);
        break;
    }
    int show = v->have_figures &&
               (v->state == ST_UP || (interactive && v->state == ST_DOWN));
    if (!show)
        return;

    struct strbuf runs;
    stageprof__sb_init(&runs, NULL, NULL);
    for (size_t i = 0; i < v->nruns; i++) {
        char r[32];
        fmt_num(r, sizeof r, v->runs[i].rate, 1);
        stageprof__sb_addf(&runs, "  %s %s", v->runs[i].run, r);
    }
    add_line(out, "runs/s%s", runs.len ? runs.buf : "  -");
    stageprof__sb_fini(&runs);
    char cpu[32], rss[32], drops[32];
    fmt_num(cpu, sizeof cpu, v->cpu, 2);
    fmt_bytes(rss, sizeof rss, v->rss);
    fmt_num(drops, sizeof drops, v->drops, 0);
    add_line(out, "cpu %s cores  rss %s  dropped %s%s", cpu, rss, drops,
             v->state == ST_DOWN ? "  (last good interval)" : "");
    add_line(out, "%s", "");

    int sw = 5, cw = 8;
    for (size_t i = 0; i < v->nrows; i++) {
        int a = (int)strlen(v->rows[i].stage),
            b = (int)strlen(v->rows[i].category);
        sw = a > sw ? a : sw;
        cw = b > cw ? b : cw;
    }
    if (width > 0) {
        /* Six number columns of 9 plus the gaps take 57 columns. */
        int room = width - 57 - 2;
        if (cw > 12)
            cw = 12;
        if (sw > room - cw)
            sw = room - cw > 5 ? room - cw : 5;
    }
    add_line(out, "%-*.*s  %-*.*s %9s %9s %9s %9s %9s %9s", sw, sw, "STAGE", cw,
             cw, "CATEGORY", "RATE/S", "P50", "P95", "P99", "MEAN", "BUSY");
    for (size_t i = 0; i < v->nrows; i++) {
        const struct row *r = &v->rows[i];
        char rate[32], q[3][32], mean[32], busy[32];
        fmt_num(rate, sizeof rate, r->rate, 1);
        for (int k = 0; k < 3; k++)
            fmt_dur(q[k], sizeof q[k], r->q[k], r->above[k]);
        fmt_dur(mean, sizeof mean, r->mean, 0);
        fmt_num(busy, sizeof busy, r->busy, 2);
        add_line(out, "%-*.*s  %-*.*s %9s %9s %9s %9s %9s %9s", sw, sw,
                 r->stage, cw, cw, r->category, rate, q[0], q[1], q[2], mean,
                 busy);
    }
}

/* JSON --------------------------------------------------------------------- */

static void json_num(struct strbuf *sb, double v)
{
    char b[40];
    if (isnan(v) || isinf(v))
        stageprof__sb_adds(sb, "null");
    else
        stageprof__sb_add(sb, b, stageprof__fmt_double(b, v));
}

static void json_key(struct strbuf *sb, const char *k)
{
    stageprof__sb_addf(sb, ",\"%s\":", k);
}

static void render_json(const struct top_opts *o, const struct view *v,
                        double now, struct strbuf *sb)
{
    static const char *const names[] = {"waiting", "up", "reset", "down",
                                        "connecting"};
    stageprof__sb_adds(sb, "{\"url\":");
    stageprof__json_str(sb, o->url, strlen(o->url));
    stageprof__sb_addf(sb, ",\"status\":\"%s\",\"error\":", names[v->state]);
    if (v->state == ST_DOWN)
        stageprof__json_str(sb, v->error, strlen(v->error));
    else
        stageprof__sb_adds(sb, "null");
    json_key(sb, "last_good_age_s");
    json_num(sb, isnan(v->last_good) ? NAN : now - v->last_good);
    int show = v->have_figures && v->state == ST_UP;
    json_key(sb, "interval_s");
    json_num(sb, show ? v->interval : NAN);
    json_key(sb, "cpu_cores");
    json_num(sb, show ? v->cpu : NAN);
    json_key(sb, "rss_bytes");
    json_num(sb, show ? v->rss : NAN);
    json_key(sb, "dropped");
    json_num(sb, show ? v->drops : NAN);
    stageprof__sb_adds(sb, ",\"runs\":[");
    for (size_t i = 0; show && i < v->nruns; i++) {
        stageprof__sb_adds(sb, i ? ",{\"run\":" : "{\"run\":");
        stageprof__json_str(sb, v->runs[i].run, strlen(v->runs[i].run));
        json_key(sb, "rate");
        json_num(sb, v->runs[i].rate);
        stageprof__sb_adds(sb, "}");
    }
    stageprof__sb_adds(sb, "],\"stages\":[");
    static const char *const qn[3] = {"p50", "p95", "p99"};
    for (size_t i = 0; show && i < v->nrows; i++) {
        const struct row *r = &v->rows[i];
        stageprof__sb_adds(sb, i ? ",{\"stage\":" : "{\"stage\":");
        stageprof__json_str(sb, r->stage, strlen(r->stage));
        stageprof__sb_adds(sb, ",\"category\":");
        stageprof__json_str(sb, r->category, strlen(r->category));
        json_key(sb, "count");
        json_num(sb, r->count);
        json_key(sb, "rate");
        json_num(sb, r->rate);
        json_key(sb, "mean_s");
        json_num(sb, r->mean);
        json_key(sb, "busy");
        json_num(sb, r->busy);
        for (int k = 0; k < 3; k++) {
            char key[16];
            snprintf(key, sizeof key, "%s_s", qn[k]);
            json_key(sb, key);
            json_num(sb, r->q[k]);
            snprintf(key, sizeof key, "%s_above", qn[k]);
            json_key(sb, key);
            stageprof__sb_adds(sb, r->above[k] ? "true" : "false");
        }
        stageprof__sb_adds(sb, "}");
    }
    stageprof__sb_adds(sb, "]}\n");
}

/* The terminal ------------------------------------------------------------- */

static struct termios saved_tio;
static int tio_saved; /* saved_tio holds the terminal's own mode */
static int screen_on; /* the alternate screen is in use */
static int sig_pipe[2] = {-1, -1};

static void write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, s, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return;
        s += k;
        n -= (size_t)k;
    }
}

/* Give the terminal back: also called at exit (cli_die included). */
static void restore_terminal(void)
{
    if (screen_on) {
        static const char leave[] = "\033[?25h\033[?1049l";
        fflush(stdout);
        write_all(STDOUT_FILENO, leave, sizeof leave - 1);
        screen_on = 0;
    }
    if (tio_saved) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
        tio_saved = 0;
    }
}

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write(sig_pipe[1], &b, 1) < 0) {
        /* The pipe is full: enough signals are already waiting. */
    }
    errno = saved;
}

static void setup_terminal(const struct cli_ctx *ctx)
{
    if (pipe(sig_pipe) != 0)
        cli_die(ctx, "cannot create a pipe: %s", strerror(errno));
    for (int i = 0; i < 2; i++) {
        fcntl(sig_pipe[i], F_SETFL, fcntl(sig_pipe[i], F_GETFL) | O_NONBLOCK);
        fcntl(sig_pipe[i], F_SETFD, FD_CLOEXEC);
    }
    atexit(restore_terminal);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);

    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
        struct termios t = saved_tio;
        /* Keys one at a time, unechoed; ISIG stays so Ctrl-C still works. */
        t.c_lflag &= ~(tcflag_t)(ICANON | ECHO | IEXTEN);
        t.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
        t.c_cc[VMIN] = 1;
        t.c_cc[VTIME] = 0;
        tio_saved = 1;
        if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) != 0)
            tio_saved = 0;
    }
    static const char enter[] = "\033[?1049h\033[?25l";
    fflush(stdout);
    write_all(STDOUT_FILENO, enter, sizeof enter - 1);
    screen_on = 1;
}

static void term_size(int *w, int *h)
{
    struct winsize ws;
    *w = 80;
    *h = 24;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 &&
        ws.ws_row > 0) {
        *w = ws.ws_col;
        *h = ws.ws_row;
    }
}

/* The view on the alternate screen, cut to its size. */
static void draw(const struct cli_ctx *ctx, const struct top_opts *o,
                 const struct view *v)
{
    int w, h;
    term_size(&w, &h);
    struct strbuf l;
    stageprof__sb_init(&l, NULL, NULL);
    render_text(o, v, now_s(), w, 1, &l);
    if (l.oom)
        cli_die(ctx, "out of memory");
    int color = cli_use_color(ctx, stdout);
    struct strbuf out;
    stageprof__sb_init(&out, NULL, NULL);
    const char *p = l.buf ? l.buf : "";
    int row = 1;
    /* The last line of the screen is the key help. */
    while (*p && row < h) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        int head = color && row == 1;
        const char *head_on = v->state == ST_DOWN ? "\033[1;31m" : "\033[1m";
        int cols = strncmp(p, "STAGE ", 6) == 0 && color;
        const char *style = head ? head_on : cols ? "\033[7m" : "";
        stageprof__sb_addf(&out, "\033[%d;1H%s", row, style);
        stageprof__sb_add(&out, p, n < (size_t)w ? n : (size_t)w);
        stageprof__sb_adds(&out, head || cols ? "\033[0m\033[K" : "\033[K");
        row++;
        p = nl ? nl + 1 : p + n;
    }
    stageprof__sb_addf(&out, "\033[%d;1H\033[J", row);
    stageprof__sb_addf(&out, "\033[%d;1H%.*s", h, w, "q quit   stageprof top");
    if (out.oom)
        cli_die(ctx, "out of memory");
    write_all(STDOUT_FILENO, out.buf, out.len);
    stageprof__sb_fini(&out);
    stageprof__sb_fini(&l);
}

/*
 * Wait until @deadline for keys and signals. Returns 0 at the deadline,
 * -1 for `q`, a signal number for SIGINT/SIGTERM/SIGHUP; redraws on
 * SIGWINCH when @v is given (during a scrape it is not: the next draw
 * comes soon).
 */
static int wait_keys(const struct cli_ctx *ctx, const struct top_opts *o,
                     const struct view *v, double deadline, int *stdin_open)
{
    for (;;) {
        double left = deadline - now_s();
        struct pollfd fds[2] = {{sig_pipe[0], POLLIN, 0},
                                {*stdin_open ? STDIN_FILENO : -1, POLLIN, 0}};
        int n = poll(fds, 2, left > 0 ? (int)(left * 1000) + 1 : 0);
        if (n < 0 && errno != EINTR)
            cli_die(ctx, "poll: %s", strerror(errno));
        if (n == 0 && left <= 0)
            return 0;
        if (n <= 0)
            continue;
        if (fds[0].revents & POLLIN) {
            unsigned char sigs[16];
            ssize_t k = read(sig_pipe[0], sigs, sizeof sigs);
            for (ssize_t i = 0; i < k; i++) {
                if (sigs[i] != SIGWINCH)
                    return sigs[i];
            }
            if (k > 0 && v != NULL)
                draw(ctx, o, v);
        }
        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            char keys[64];
            ssize_t k = read(STDIN_FILENO, keys, sizeof keys);
            if (k <= 0 && !(k < 0 && errno == EINTR))
                *stdin_open = 0;
            for (ssize_t i = 0; i < k; i++)
                if (keys[i] == 'q' || keys[i] == 'Q')
                    return -1;
        }
    }
}

/* What a scrape in the interactive view checks between its reads. */
struct key_watch {
    const struct cli_ctx *ctx;
    const struct top_opts *o;
    int *stdin_open;
    int result; /* wait_keys's answer, once nonzero */
};

static int watch_keys(void *arg)
{
    struct key_watch *w = arg;
    if (w->result == 0)
        w->result = wait_keys(w->ctx, w->o, NULL, 0, w->stdin_open);
    return w->result != 0;
}

/* The loop ----------------------------------------------------------------- */

static void sleep_until(double deadline)
{
    for (;;) {
        double left = deadline - now_s();
        if (left <= 0)
            return;
        struct timespec ts = {(time_t)left,
                              (long)((left - (double)(time_t)left) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

int cmd_top(struct cli_ctx *ctx, int argc, char **argv)
{
    struct top_opts o;
    parse_options(ctx, argc, argv, &o);
    int interactive = o.iterations == 0 && o.format == CLI_FORMAT_TEXT &&
                      isatty(STDOUT_FILENO);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        cli_die(ctx, "cannot initialise libcurl");
    if (interactive)
        setup_terminal(ctx);

    struct view v;
    memset(&v, 0, sizeof v);
    v.last_good = NAN;
    v.cpu = v.rss = v.drops = NAN;
    struct scrape base, cur;
    memset(&base, 0, sizeof base);
    int have_base = 0, stdin_open = 1, rc = CLI_EXIT_OK;
    long frames = 0, failed = 0, scrapes = 0;
    char last_error[sizeof cur.error] = "";
    double next = now_s();
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);

    struct key_watch watch = {ctx, &o, &stdin_open, 0};
    if (interactive) {
        v.state = ST_CONNECTING;
        draw(ctx, &o, &v);
    }
    for (;;) {
        scrape(&o, interactive ? &watch : NULL, &cur);
        scrapes++;
        if (watch.result != 0) {
            /* `q` or a signal during the scrape. */
            prom_doc_fini(&cur.doc);
            rc = watch.result > 0 ? 128 + watch.result : CLI_EXIT_OK;
            break;
        }
        if (!cur.ok) {
            failed++;
            snprintf(last_error, sizeof last_error, "%s", cur.error);
            if (o.once)
                cli_die(ctx, "%s: %s", o.url, cur.error);
            v.state = ST_DOWN;
            v.error = last_error;
        } else {
            v.last_good = cur.t;
            if (!have_base) {
                v.state = ST_WAITING;
            } else {
                v.state = compute(ctx, &base, &cur, &v) ? ST_RESET : ST_UP;
                prom_doc_fini(&base.doc);
            }
            base = cur;
            have_base = 1;
        }
        int first = scrapes == 1;
        if (interactive) {
            draw(ctx, &o, &v);
        } else if (!(first && v.state == ST_WAITING)) {
            double now = now_s();
            stageprof__sb_reset(&sb);
            if (o.format == CLI_FORMAT_JSON) {
                render_json(&o, &v, now, &sb);
            } else {
                if (frames > 0)
                    stageprof__sb_adds(&sb, "\n");
                render_text(&o, &v, now, 0, 0, &sb);
            }
            if (sb.oom)
                cli_die(ctx, "out of memory");
            fwrite(sb.buf, 1, sb.len, stdout);
            fflush(stdout);
            frames++;
            if (o.iterations != 0 && frames >= o.iterations)
                break;
        }
        if (!cur.ok)
            prom_doc_fini(&cur.doc);

        next += o.interval_s;
        double now = now_s();
        if (next < now)
            next = now; /* a slow scrape: start the beat again from now */
        if (interactive) {
            int r = wait_keys(ctx, &o, &v, next, &stdin_open);
            if (r == -1)
                break;
            if (r > 0) {
                rc = 128 + r;
                break;
            }
        } else {
            sleep_until(next);
        }
    }

    restore_terminal();
    if (have_base)
        prom_doc_fini(&base.doc);
    stageprof__sb_fini(&sb);
    free(v.rows);
    free(v.runs);
    free(v.le);
    free(v.cum);
    free(o.url);
    curl_global_cleanup();
    if (!interactive && failed > 0) {
        fprintf(stderr, "stageprof top: %ld of %ld scrapes failed; last: %s\n",
                failed, scrapes, last_error);
        rc = CLI_EXIT_FAIL;
    }
    return rc;
}
