/*
 * cmd_report.c - `stageprof report`: per-stage statistics of Chrome traces.
 *
 *   stageprof report [options] TRACE...
 *
 * TRACE is a file (plain or gzip), a directory (its *.json and *.json.gz
 * files, in name order) or "-" for standard input. All of them are read
 * into one set of statistics (agg.c) and printed as a table, CSV or JSON
 * (schema in docs/cli/stageprof-report.md). A file cut short is reported
 * with a warning and what it held; any other bad file fails the command.
 */
#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agg.h"
#include "cli.h"
#include "html_report.h"
#include "trace_load.h"
#include "util/json.h"
#include "util/strbuf.h"

struct report_opts {
    enum cli_format format;
    long top;               /* 0: all */
    const char *categories; /* comma list, or NULL */
    const char *name;       /* substring or regex, or NULL */
    int regex;
    regex_t re;
    const char *html; /* --html FILE, or NULL */
    struct agg_opts agg;
};

struct file_result {
    char *path;
    struct tl_result res;
};

static void usage(FILE *f)
{
    fputs(
        "usage: stageprof report [options] TRACE...\n"
        "\n"
        "Per-stage statistics of Chrome Trace Event Format files, whoever\n"
        "wrote them: count, total and self time, mean, min, p50, p90, p95,\n"
        "p99, p99.9, max and share of the wall time, per thread busy time,\n"
        "counters. TRACE is a file (plain or gzip), a directory (its *.json\n"
        "and *.json.gz files) or - for standard input; several are read as\n"
        "one.\n"
        "\n"
        "Options:\n"
        "  --format=FORMAT  text (default), csv, json or md (markdown)\n"
        "  --top=N          only the N stages with the largest total time\n"
        "  --from=TIME      only slices starting at TIME or later, counted\n"
        "                   from the first slice (TIME: a number with ns, us,\n"
        "                   ms or s, e.g. 1.5s)\n"
        "  --to=TIME        only slices starting before TIME\n"
        "  --category=LIST  only stages of these categories (comma list)\n"
        "  --thread=TEXT    only threads whose name, pid or tid contains "
        "TEXT\n"
        "  --name=TEXT      only stages whose name contains TEXT\n"
        "  --regex          --name is a POSIX extended regular expression\n"
        "  --exact-limit=N  exact percentiles while at most N durations are\n"
        "                   kept (default 8000000); beyond, from a sketch\n"
        "                   within 0.5% of the exact values\n"
        "  --html=FILE      also write the report as one self-contained HTML\n"
        "                   page with charts to FILE\n"
        "  -h, --help       show this help\n"
        "\n"
        "The global options (-v, -q, --color) are accepted as well.\n"
        "Exit status: 0 done (also for a file cut short, with a warning),\n"
        "1 a trace could not be read, 2 bad usage.\n",
        f);
}

/* TIME: a decimal number with a unit, as nanoseconds; -1 when bad. */
static int parse_time(const char *s, int64_t *ns)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || !(v >= 0))
        return -1;
    double scale = strcmp(end, "ns") == 0   ? 1
                   : strcmp(end, "us") == 0 ? 1e3
                   : strcmp(end, "ms") == 0 ? 1e6
                   : strcmp(end, "s") == 0  ? 1e9
                                            : -1;
    if (scale < 0 || v * scale > (double)TL_MAX_DUR_NS)
        return -1;
    *ns = (int64_t)(v * scale + 0.5);
    return 0;
}

/* Output ------------------------------------------------------------------ */

static int stage_selected(const struct report_opts *o,
                          const struct agg_stage *st)
{
    if (o->categories != NULL) {
        int found = 0;
        const char *p = o->categories;
        while (*p && !found) {
            size_t n = strcspn(p, ",");
            found = n == st->cat_len && memcmp(p, st->cat, n) == 0;
            p += n + (p[n] == ',');
        }
        if (!found)
            return 0;
    }
    if (o->name != NULL) {
        if (o->regex)
            return regexec(&o->re, st->name, 0, NULL, 0) == 0;
        return strstr(st->name, o->name) != NULL;
    }
    return st->count > 0;
}

static int cmp_total(const void *x, const void *y)
{
    const struct agg_stage *a = *(const struct agg_stage *const *)x;
    const struct agg_stage *b = *(const struct agg_stage *const *)y;
    if (a->total_ns != b->total_ns)
        return a->total_ns > b->total_ns ? -1 : 1;
    int c = strcmp(a->name, b->name);
    return c ? c : strcmp(a->cat, b->cat);
}

/* The stages to print, largest total first; count in *n. */
static struct agg_stage **selected(const struct cli_ctx *ctx,
                                   const struct report_opts *o,
                                   const struct agg *a, size_t *n)
{
    struct agg_stage **v = malloc((a->nstages + 1) * sizeof *v);
    if (v == NULL)
        cli_die(ctx, "out of memory");
    *n = 0;
    for (size_t i = 0; i < a->nstages; i++)
        if (a->stages[i]->count > 0 && stage_selected(o, a->stages[i]))
            v[(*n)++] = a->stages[i];
    qsort(v, *n, sizeof *v, cmp_total);
    if (o->top > 0 && (size_t)o->top < *n)
        *n = (size_t)o->top;
    return v;
}

static int64_t wall_ns(const struct agg *a)
{
    return a->have_wall ? a->last_ns - a->first_ns : 0;
}

static double share(const struct agg *a, const struct agg_stage *st)
{
    int64_t w = wall_ns(a);
    return w > 0 ? (double)st->total_ns / (double)w : 0.0;
}

static uint64_t round_ns(double v)
{
    return v <= 0 ? 0 : (uint64_t)(v + 0.5);
}

static void add_us(struct strbuf *sb, uint64_t ns)
{
    char b[32];
    stageprof__sb_add(sb, b, stageprof__fmt_us3(b, ns));
}

static void add_double(struct strbuf *sb, double v)
{
    char b[40];
    stageprof__sb_add(sb, b, stageprof__fmt_double(b, v));
}

/* The warnings, as sentences; each call adds one through @add. */
static void warnings(const struct agg *a, const struct file_result *files,
                     size_t nfiles, void (*add)(void *, const char *),
                     void *arg)
{
    char m[512];
    for (size_t i = 0; i < nfiles; i++) {
        if (files[i].res.truncated) {
            snprintf(m, sizeof m,
                     "%s: the file ends in the middle of its events "
                     "(truncated); %llu events read",
                     files[i].path, (unsigned long long)files[i].res.events);
            add(arg, m);
        }
        if (files[i].res.ts_rounded) {
            snprintf(m, sizeof m,
                     "%s: times below 1 ns were rounded to whole "
                     "nanoseconds",
                     files[i].path);
            add(arg, m);
        }
        if (files[i].res.dropped > 0) {
            snprintf(m, sizeof m,
                     "%s: the trace says %lld events were dropped: the "
                     "numbers are incomplete",
                     files[i].path, (long long)files[i].res.dropped);
            add(arg, m);
        }
    }
    const struct {
        uint64_t n;
        const char *what;
    } counts[] = {
        {a->no_dur, "complete events (X) without a numeric dur skipped"},
        {a->bad_dur, "events with a negative duration skipped"},
        {a->no_ts, "events without a numeric ts skipped"},
        {a->no_ph, "events without a phase (\"ph\") skipped"},
        {a->open_b, "B events never ended (no matching E)"},
        {a->orphan_e, "E events without a B skipped"},
        {a->open_async, "async spans begun but never ended"},
        {a->orphan_async, "async ends without a begin skipped"},
    };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        if (counts[i].n > 0) {
            snprintf(m, sizeof m, "%llu %s", (unsigned long long)counts[i].n,
                     counts[i].what);
            add(arg, m);
        }
    if (a->sketched > 0) {
        snprintf(m, sizeof m,
                 "percentiles of %llu stage%s come from a sketch (within "
                 "%.1f%% of the exact values): more durations than "
                 "--exact-limit=%llu",
                 (unsigned long long)a->sketched, a->sketched == 1 ? "" : "s",
                 100 * AGG_SKETCH_ERROR,
                 (unsigned long long)(a->opts.exact_limit ? a->opts.exact_limit
                                                          : AGG_EXACT_LIMIT));
        add(arg, m);
    }
    if (a->unknown_phases[0] != '\0') {
        snprintf(m, sizeof m, "events of unknown phases skipped: %s",
                 a->unknown_phases);
        add(arg, m);
    }
}

static void warn_cb(void *ctx, const char *m)
{
    cli_warn(ctx, "%s", m);
}

static void json_warn_cb(void *sbp, const char *m)
{
    struct strbuf *sb = sbp;
    if (sb->buf[sb->len - 1] != '[')
        stageprof__sb_adds(sb, ",");
    stageprof__json_str(sb, m, strlen(m));
}

static const char *producer(const struct file_result *files, size_t n)
{
    const char *p = n ? files[0].res.producer : "chrome";
    for (size_t i = 1; i < n; i++)
        if (strcmp(files[i].res.producer, p) != 0)
            return "mixed";
    return p;
}

static const char *const run_kinds[] = {"none", "stageprof", "profiler_step",
                                        "top_level"};

/* The stages on critical paths, most time first; count in *n. */
static struct agg_stage **on_path(const struct cli_ctx *ctx,
                                  const struct agg *a, size_t *n)
{
    struct agg_stage **v = malloc((a->nstages + 1) * sizeof *v);
    if (v == NULL)
        cli_die(ctx, "out of memory");
    *n = 0;
    for (size_t i = 0; i < a->nstages; i++)
        if (a->stages[i]->path_ns > 0)
            v[(*n)++] = a->stages[i];
    qsort(v, *n, sizeof *v, agg_cmp_path);
    return v;
}

static double run_share(const struct agg *a, int64_t ns)
{
    return a->rs.total_ns > 0 ? (double)ns / (double)a->rs.total_ns : 0.0;
}

/* "runs", "critical_path", "queues", "engine_overhead_us", "bottleneck",
 * "hints" (schema in docs/cli/stageprof-report.md). */
static void json_runs(const struct cli_ctx *ctx, struct strbuf *sb,
                      const struct agg *a)
{
    const struct agg_runs *rs = &a->rs;
    static const char *const keys[AGG_NPCT] = {"p50_us", "p90_us", "p95_us",
                                               "p99_us", "p999_us"};
    stageprof__sb_addf(sb, ",\"runs\":{\"kind\":\"%s\",\"count\":%llu",
                       run_kinds[rs->kind], (unsigned long long)rs->count);
    for (int k = 0; k < AGG_NPCT; k++) {
        stageprof__sb_addf(sb, ",\"%s\":", keys[k]);
        add_us(sb, round_ns(rs->pct_ns[k]));
    }
    stageprof__sb_adds(sb, ",\"max_us\":");
    add_us(sb, (uint64_t)rs->max_ns);
    stageprof__sb_adds(sb, ",\"mean_us\":");
    add_us(sb,
           rs->count ? round_ns((double)rs->total_ns / (double)rs->count) : 0);
    stageprof__sb_adds(sb, ",\"throughput_per_s\":");
    add_double(sb, rs->throughput);
    stageprof__sb_adds(sb, ",\"steady_throughput_per_s\":");
    add_double(sb, rs->steady_throughput);
    stageprof__sb_addf(sb, ",\"warmup\":{\"count\":%llu,\"mean_us\":",
                       (unsigned long long)rs->warmup);
    add_us(sb, (uint64_t)rs->warmup_mean_ns);
    stageprof__sb_adds(sb, "}},\"critical_path\":[");
    size_t n;
    struct agg_stage **v = on_path(ctx, a, &n);
    for (size_t i = 0; i < n; i++) {
        stageprof__sb_adds(sb, i ? ",{\"stage\":" : "{\"stage\":");
        stageprof__json_str(sb, v[i]->name, v[i]->name_len);
        stageprof__sb_adds(sb, ",\"category\":");
        stageprof__json_str(sb, v[i]->cat, v[i]->cat_len);
        stageprof__sb_addf(sb, ",\"runs\":%llu,\"time_us\":",
                           (unsigned long long)v[i]->path_runs);
        add_us(sb, (uint64_t)v[i]->path_ns);
        stageprof__sb_adds(sb, ",\"share\":");
        add_double(sb, run_share(a, v[i]->path_ns));
        stageprof__sb_adds(sb, "}");
    }
    free(v);
    stageprof__sb_adds(sb, "],\"queues\":[");
    for (size_t i = 0; i < a->nqueues; i++) {
        const struct agg_queue *q = a->queues[i];
        stageprof__sb_adds(sb, i ? ",{\"name\":" : "{\"name\":");
        stageprof__json_str(sb, q->name, strlen(q->name));
        stageprof__sb_addf(sb, ",\"count\":%llu,\"wait_mean_us\":",
                           (unsigned long long)q->count);
        add_us(sb, q->count
                       ? round_ns((double)q->wait_total_ns / (double)q->count)
                       : 0);
        stageprof__sb_adds(sb, ",\"wait_p50_us\":");
        add_us(sb, round_ns(q->wait_p50_ns));
        stageprof__sb_adds(sb, ",\"wait_p90_us\":");
        add_us(sb, round_ns(q->wait_p90_ns));
        stageprof__sb_adds(sb, ",\"wait_max_us\":");
        add_us(sb, (uint64_t)q->wait_max_ns);
        stageprof__sb_adds(sb, ",\"service_mean_us\":");
        add_us(sb, q->service_count ? round_ns((double)q->service_total_ns /
                                               (double)q->service_count)
                                    : 0);
        stageprof__sb_addf(sb,
                           ",\"critical_path_runs\":%llu,"
                           "\"critical_path_us\":",
                           (unsigned long long)q->path_runs);
        add_us(sb, (uint64_t)q->path_ns);
        stageprof__sb_adds(sb, "}");
    }
    stageprof__sb_adds(sb, "],\"engine_overhead_us\":");
    add_us(sb, (uint64_t)rs->engine_ns);
    stageprof__sb_adds(sb, ",\"bottleneck\":");
    if (rs->bottleneck >= 0) {
        const struct agg_stage *b = a->stages[rs->bottleneck];
        stageprof__sb_adds(sb, "{\"stage\":");
        stageprof__json_str(sb, b->name, b->name_len);
        stageprof__sb_adds(sb, ",\"category\":");
        stageprof__json_str(sb, b->cat, b->cat_len);
        stageprof__sb_adds(sb, ",\"reason\":");
        stageprof__json_str(sb, rs->reason, strlen(rs->reason));
        stageprof__sb_adds(sb, "}");
    } else {
        stageprof__sb_adds(sb, "null");
    }
    stageprof__sb_adds(sb, ",\"hints\":[");
    for (int i = 0; i < rs->nhints; i++) {
        if (i)
            stageprof__sb_adds(sb, ",");
        stageprof__json_str(sb, rs->hints[i], strlen(rs->hints[i]));
    }
    stageprof__sb_adds(sb, "]");
}

static void print_json(const struct cli_ctx *ctx, const struct report_opts *o,
                       const struct agg *a, const struct file_result *files,
                       size_t nfiles)
{
    struct strbuf sb;
    size_t n;
    struct agg_stage **v = selected(ctx, o, a, &n);
    static const char *const pct_keys[AGG_NPCT] = {"p50_us", "p90_us", "p95_us",
                                                   "p99_us", "p999_us"};
    stageprof__sb_init(&sb, NULL, NULL);
    stageprof__sb_adds(&sb, "{\"stages\":[");
    for (size_t i = 0; i < n; i++) {
        const struct agg_stage *st = v[i];
        stageprof__sb_adds(&sb, i ? ",{\"name\":" : "{\"name\":");
        stageprof__json_str(&sb, st->name, st->name_len);
        stageprof__sb_adds(&sb, ",\"category\":");
        stageprof__json_str(&sb, st->cat, st->cat_len);
        stageprof__sb_addf(&sb,
                           ",\"async\":%s,\"exact\":%s,\"count\":%llu,"
                           "\"total_us\":",
                           st->async ? "true" : "false",
                           st->exact ? "true" : "false",
                           (unsigned long long)st->count);
        add_us(&sb, (uint64_t)st->total_ns);
        stageprof__sb_adds(&sb, ",\"self_us\":");
        add_us(&sb, (uint64_t)st->self_ns);
        stageprof__sb_adds(&sb, ",\"mean_us\":");
        add_us(&sb, round_ns((double)st->total_ns / (double)st->count));
        stageprof__sb_adds(&sb, ",\"min_us\":");
        add_us(&sb, (uint64_t)st->min_ns);
        for (int k = 0; k < AGG_NPCT; k++) {
            stageprof__sb_addf(&sb, ",\"%s\":", pct_keys[k]);
            add_us(&sb, round_ns(st->pct_ns[k]));
        }
        stageprof__sb_adds(&sb, ",\"max_us\":");
        add_us(&sb, (uint64_t)st->max_ns);
        stageprof__sb_adds(&sb, ",\"share\":");
        add_double(&sb, share(a, st));
        stageprof__sb_adds(&sb, "}");
    }
    stageprof__sb_adds(&sb, "],\"threads\":[");
    int first = 1;
    for (size_t i = 0; i < a->nthreads; i++) {
        const struct agg_thread *t = a->threads[i];
        if (t->slices == 0)
            continue;
        stageprof__sb_adds(&sb, first ? "{\"pid\":" : ",{\"pid\":");
        first = 0;
        stageprof__json_str(&sb, t->pid, t->pid_len);
        stageprof__sb_adds(&sb, ",\"tid\":");
        stageprof__json_str(&sb, t->tid, t->tid_len);
        stageprof__sb_adds(&sb, ",\"name\":");
        if (t->name != NULL)
            stageprof__json_str(&sb, t->name, strlen(t->name));
        else
            stageprof__sb_adds(&sb, "null");
        stageprof__sb_addf(&sb, ",\"slices\":%llu,\"busy_us\":",
                           (unsigned long long)t->slices);
        add_us(&sb, (uint64_t)t->busy_ns);
        stageprof__sb_adds(&sb, ",\"busy_fraction\":");
        add_double(&sb, wall_ns(a) > 0 ? (double)t->busy_ns / (double)wall_ns(a)
                                       : 0.0);
        stageprof__sb_adds(&sb, "}");
    }
    stageprof__sb_adds(&sb, "],\"counters\":[");
    for (size_t i = 0; i < a->ncounters; i++) {
        const struct agg_counter *c = a->counters[i];
        stageprof__sb_adds(&sb, i ? ",{\"name\":" : "{\"name\":");
        stageprof__json_str(&sb, c->name, strlen(c->name));
        stageprof__sb_adds(&sb, ",\"series\":");
        stageprof__json_str(&sb, c->series, strlen(c->series));
        stageprof__sb_addf(
            &sb, ",\"count\":%llu,\"min\":", (unsigned long long)c->count);
        add_double(&sb, c->min);
        stageprof__sb_adds(&sb, ",\"mean\":");
        add_double(&sb, c->sum / (double)c->count);
        stageprof__sb_adds(&sb, ",\"max\":");
        add_double(&sb, c->max);
        stageprof__sb_adds(&sb, ",\"last\":");
        add_double(&sb, c->last);
        stageprof__sb_adds(&sb, "}");
    }
    /* complete: known only when every file says (stageprof's trailer). */
    uint64_t events = 0;
    int64_t dropped = 0;
    int complete = 1, truncated = 0;
    for (size_t i = 0; i < nfiles; i++) {
        events += files[i].res.events;
        truncated |= files[i].res.truncated;
        if (files[i].res.dropped > 0)
            dropped += files[i].res.dropped;
        if (files[i].res.complete == 0 || files[i].res.truncated)
            complete = 0;
        else if (files[i].res.complete < 0 && complete == 1)
            complete = -1;
    }
    stageprof__sb_adds(&sb, "]");
    json_runs(ctx, &sb, a);
    stageprof__sb_adds(&sb, ",\"trace\":{\"files\":[");
    for (size_t i = 0; i < nfiles; i++) {
        if (i)
            stageprof__sb_adds(&sb, ",");
        stageprof__json_str(&sb, files[i].path, strlen(files[i].path));
    }
    stageprof__sb_addf(&sb, "],\"events\":%llu,\"dropped\":%lld,",
                       (unsigned long long)events, (long long)dropped);
    stageprof__sb_addf(&sb, "\"complete\":%s,\"truncated\":%s,\"producer\":",
                       complete > 0    ? "true"
                       : complete == 0 ? "false"
                                       : "null",
                       truncated ? "true" : "false");
    const char *prod = producer(files, nfiles);
    stageprof__json_str(&sb, prod, strlen(prod));
    stageprof__sb_adds(&sb, ",\"wall_us\":");
    add_us(&sb, (uint64_t)wall_ns(a));
    stageprof__sb_addf(&sb, ",\"exact_limit\":%llu,\"sketch_relative_error\":",
                       (unsigned long long)(a->opts.exact_limit
                                                ? a->opts.exact_limit
                                                : AGG_EXACT_LIMIT));
    add_double(&sb, AGG_SKETCH_ERROR);
    stageprof__sb_adds(&sb, ",\"warnings\":[");
    warnings(a, files, nfiles, json_warn_cb, &sb);
    stageprof__sb_adds(&sb, "]}}\n");
    if (sb.oom)
        cli_die(ctx, "out of memory");
    fwrite(sb.buf, 1, sb.len, stdout);
    stageprof__sb_fini(&sb);
    free(v);
}

/* A CSV field: quoted when it holds a comma, quote or line break. */
static void csv_field(const char *s, size_t len)
{
    if (strcspn(s, ",\"\r\n") >= len) {
        fwrite(s, 1, len, stdout);
        return;
    }
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"')
            putchar('"');
        putchar(s[i]);
    }
    putchar('"');
}

static void print_csv(const struct cli_ctx *ctx, const struct report_opts *o,
                      const struct agg *a)
{
    size_t n;
    struct agg_stage **v = selected(ctx, o, a, &n);
    printf("Stage,Duration_s,Category,Count,Self_s,Mean_us,Min_us,P50_us,"
           "P90_us,P95_us,P99_us,P999_us,Max_us,Share\n");
    for (size_t i = 0; i < n; i++) {
        const struct agg_stage *st = v[i];
        csv_field(st->name, st->name_len);
        printf(",%.9f,", (double)st->total_ns / 1e9);
        csv_field(st->cat, st->cat_len);
        printf(",%llu,%.9f,%.3f,%.3f", (unsigned long long)st->count,
               (double)st->self_ns / 1e9,
               (double)st->total_ns / (double)st->count / 1e3,
               (double)st->min_ns / 1e3);
        for (int k = 0; k < AGG_NPCT; k++)
            printf(",%.3f", st->pct_ns[k] / 1e3);
        printf(",%.3f,%.6f\n", (double)st->max_ns / 1e3, share(a, st));
    }
    free(v);
}

/* A name for the terminal: control bytes escaped, cut at @width. */
static const char *cell(char *buf, size_t size, const char *s, size_t len,
                        size_t width)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < size && o < width; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        else
            buf[o++] = (char)c;
    }
    buf[o] = '\0';
    return buf;
}

/* Runs, critical path, queues and the verdict, for text and markdown. */
static void text_runs(const struct cli_ctx *ctx, const struct agg *a, int md,
                      const char *bold, const char *off)
{
    const struct agg_runs *rs = &a->rs;
    if (rs->count > 0) {
        if (md)
            printf("\n### Runs (%s)\n\n", run_kinds[rs->kind]);
        else
            printf("\n%sruns%s (%s)\n", bold, off, run_kinds[rs->kind]);
        printf("%s%llu runs; latency p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, "
               "max %.3f ms; %.3f runs/s (%.3f runs/s after %llu warm-up "
               "runs); engine overhead %.3f ms (%.1f%% of run time)\n",
               md ? "" : "  ", (unsigned long long)rs->count,
               rs->pct_ns[0] / 1e6, rs->pct_ns[1] / 1e6, rs->pct_ns[3] / 1e6,
               (double)rs->max_ns / 1e6, rs->throughput, rs->steady_throughput,
               (unsigned long long)rs->warmup, (double)rs->engine_ns / 1e6,
               100.0 * run_share(a, rs->engine_ns));
        size_t n;
        struct agg_stage **v = on_path(ctx, a, &n);
        if (md)
            printf("\n| critical path | category | runs | ms | share |\n"
                   "|---|---|---:|---:|---:|\n");
        else
            printf("\n%s%-28s %-12s %8s %11s %7s%s\n", bold, "critical path",
                   "category", "runs", "ms", "share", off);
        for (size_t i = 0; i < n && i < 12; i++) {
            char nb[128], cb[64];
            cell(nb, sizeof nb, v[i]->name, v[i]->name_len, 28);
            cell(cb, sizeof cb, v[i]->cat, v[i]->cat_len, 12);
            printf(md ? "| %s | %s | %llu | %.3f | %.1f%% |\n"
                      : "%-28s %-12s %8llu %11.3f %6.1f%%\n",
                   nb, cb, (unsigned long long)v[i]->path_runs,
                   (double)v[i]->path_ns / 1e6,
                   100.0 * run_share(a, v[i]->path_ns));
        }
        free(v);
        /* Waits in queues on the paths, after the stages. */
        for (size_t i = 0; i < a->nqueues; i++) {
            const struct agg_queue *q = a->queues[i];
            if (q->path_ns <= 0)
                continue;
            char nb[128];
            cell(nb, sizeof nb, q->name, strlen(q->name), 22);
            if (md)
                printf("| wait: %s | queue | %llu | %.3f | %.1f%% |\n", nb,
                       (unsigned long long)q->path_runs,
                       (double)q->path_ns / 1e6,
                       100.0 * run_share(a, q->path_ns));
            else
                printf("wait: %-22s %-12s %8llu %11.3f %6.1f%%\n", nb, "queue",
                       (unsigned long long)q->path_runs,
                       (double)q->path_ns / 1e6,
                       100.0 * run_share(a, q->path_ns));
        }
    }
    for (size_t i = 0; i < a->nqueues; i++) {
        const struct agg_queue *q = a->queues[i];
        if (i == 0 && md)
            printf("\n| queue | hand-offs | wait mean ms | wait p90 ms | "
                   "service mean ms |\n|---|---:|---:|---:|---:|\n");
        else if (i == 0)
            printf("\n%s%-28s %8s %11s %11s %11s%s\n", bold, "queue", "count",
                   "wait ms", "wait p90", "service", off);
        char nb[128];
        cell(nb, sizeof nb, q->name, strlen(q->name), 28);
        double wait =
            q->count ? (double)q->wait_total_ns / (double)q->count : 0.0;
        double service = q->service_count ? (double)q->service_total_ns /
                                                (double)q->service_count
                                          : 0.0;
        printf(md ? "| %s | %llu | %.3f | %.3f | %.3f |\n"
                  : "%-28s %8llu %11.3f %11.3f %11.3f\n",
               nb, (unsigned long long)q->count, wait / 1e6,
               q->wait_p90_ns / 1e6, service / 1e6);
    }
    if (rs->bottleneck >= 0) {
        const struct agg_stage *b = a->stages[rs->bottleneck];
        char nb[128], cb[64];
        cell(nb, sizeof nb, b->name, b->name_len, 100);
        cell(cb, sizeof cb, b->cat, b->cat_len, 40);
        if (md)
            printf("\n**Bottleneck: %s (%s).** %s.\n", nb, cb, rs->reason);
        else
            printf("\n%sbottleneck: %s (%s)%s\n  %s\n", bold, nb, cb, off,
                   rs->reason);
    }
    for (int i = 0; i < rs->nhints; i++)
        printf(md ? "%s- %s\n" : "%s  hint: %s\n", md && i == 0 ? "\n" : "",
               rs->hints[i]);
}

static void print_text(const struct cli_ctx *ctx, const struct report_opts *o,
                       const struct agg *a, const struct file_result *files,
                       size_t nfiles)
{
    size_t n;
    struct agg_stage **v = selected(ctx, o, a, &n);
    int color = cli_use_color(ctx, stdout);
    const char *bold = color ? "\033[1m" : "", *off = color ? "\033[0m" : "";
    uint64_t events = 0;
    for (size_t i = 0; i < nfiles; i++)
        events += files[i].res.events;
    printf("%s%zu file%s, %llu events, producer %s, wall %.3f ms%s\n", bold,
           nfiles, nfiles == 1 ? "" : "s", (unsigned long long)events,
           producer(files, nfiles), (double)wall_ns(a) / 1e6, off);
    printf("%s%-28s %-12s %8s %11s %11s %10s %10s %10s %10s %10s %7s%s\n", bold,
           "stage", "category", "count", "total ms", "self ms", "mean ms",
           "p50 ms", "p90 ms", "p99 ms", "max ms", "share", off);
    for (size_t i = 0; i < n; i++) {
        const struct agg_stage *st = v[i];
        char nb[128], cb[64];
        printf("%-28s %-12s %8llu %11.3f %11.3f %10.3f %10.3f %10.3f %10.3f "
               "%10.3f %6.1f%%%s\n",
               cell(nb, sizeof nb, st->name, st->name_len, 28),
               cell(cb, sizeof cb, st->cat, st->cat_len, 12),
               (unsigned long long)st->count, (double)st->total_ns / 1e6,
               (double)st->self_ns / 1e6,
               (double)st->total_ns / (double)st->count / 1e6,
               st->pct_ns[0] / 1e6, st->pct_ns[1] / 1e6, st->pct_ns[3] / 1e6,
               (double)st->max_ns / 1e6, 100.0 * share(a, st),
               st->async   ? "  (async)"
               : st->exact ? ""
                           : "  (sketch)");
    }
    int any = 0;
    for (size_t i = 0; i < a->nthreads; i++) {
        const struct agg_thread *t = a->threads[i];
        if (t->slices == 0)
            continue;
        if (!any++)
            printf("\n%s%-28s %-12s %8s %11s %7s%s\n", bold, "thread", "tid",
                   "slices", "busy ms", "busy", off);
        char nb[128], tb[64];
        const char *name = t->name ? t->name : t->pid;
        printf("%-28s %-12s %8llu %11.3f %6.1f%%\n",
               cell(nb, sizeof nb, name, strlen(name), 28),
               cell(tb, sizeof tb, t->tid, t->tid_len, 12),
               (unsigned long long)t->slices, (double)t->busy_ns / 1e6,
               wall_ns(a) > 0 ? 100.0 * (double)t->busy_ns / (double)wall_ns(a)
                              : 0.0);
    }
    for (size_t i = 0; i < a->ncounters; i++) {
        const struct agg_counter *c = a->counters[i];
        if (i == 0)
            printf("\n%s%-28s %-12s %8s %11s %11s %11s %11s%s\n", bold,
                   "counter", "series", "samples", "min", "mean", "max", "last",
                   off);
        char nb[128], sb[64];
        printf("%-28s %-12s %8llu %11.6g %11.6g %11.6g %11.6g\n",
               cell(nb, sizeof nb, c->name, strlen(c->name), 28),
               cell(sb, sizeof sb, c->series, strlen(c->series), 12),
               (unsigned long long)c->count, c->min, c->sum / (double)c->count,
               c->max, c->last);
    }
    text_runs(ctx, a, 0, bold, off);
    free(v);
}

/* Progress ---------------------------------------------------------------- */

/*
 * A progress line on stderr while a large file is read, when stderr is a
 * terminal: the share of the file read (of the bytes read, for gzip and
 * standard input), at most five times a second.
 */
#define PROGRESS_MIN_BYTES (16u << 20)

struct progress {
    struct agg *agg;
    const char *path;
    uint64_t size; /* plain file size, 0 when unknown */
    uint64_t next; /* offset of the next look at the clock */
    double last;   /* when the line was last drawn */
    int on, drawn;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress_begin(const struct cli_ctx *ctx, struct progress *p,
                           struct agg *a, const char *path)
{
    struct stat st;
    memset(p, 0, sizeof *p);
    p->agg = a;
    p->path = path;
    if (ctx->quiet || !isatty(2))
        return;
    int is_file = strcmp(path, "-") != 0 && stat(path, &st) == 0;
    unsigned char magic[2] = {0};
    FILE *f = is_file ? fopen(path, "rb") : NULL;
    if (f != NULL) {
        if (fread(magic, 1, 2, f) != 2)
            magic[0] = 0;
        fclose(f);
    }
    /* A gzip file's size says little about how much JSON it holds. */
    int gz = magic[0] == 0x1f && magic[1] == 0x8b;
    p->size = is_file && !gz ? (uint64_t)st.st_size : 0;
    p->on = !is_file || gz || p->size >= PROGRESS_MIN_BYTES;
    p->next = PROGRESS_MIN_BYTES / 4;
    p->last = now_s();
}

static int progress_event(void *arg, const struct tl_event *ev)
{
    struct progress *p = arg;
    if (p->on && ev->offset >= p->next) {
        p->next = ev->offset + (1u << 20);
        double t = now_s();
        if (t - p->last >= 0.2) {
            p->last = t;
            p->drawn = 1;
            if (p->size > 0)
                fprintf(stderr,
                        "\rstageprof report: reading %s: %3.0f%% "
                        "(%llu of %llu MiB)",
                        p->path, 100.0 * (double)ev->offset / (double)p->size,
                        (unsigned long long)(ev->offset >> 20),
                        (unsigned long long)(p->size >> 20));
            else
                fprintf(stderr, "\rstageprof report: reading %s: %llu MiB",
                        p->path, (unsigned long long)(ev->offset >> 20));
            fflush(stderr);
        }
    }
    return agg_event(p->agg, ev);
}

static void progress_end(struct progress *p)
{
    if (p->drawn)
        fputs("\r\033[K", stderr); /* the line erased */
}

/* Markdown: ready to paste into an issue or a pull request. */
static void print_md(const struct cli_ctx *ctx, const struct report_opts *o,
                     const struct agg *a, const struct file_result *files,
                     size_t nfiles)
{
    size_t n;
    struct agg_stage **v = selected(ctx, o, a, &n);
    uint64_t events = 0;
    for (size_t i = 0; i < nfiles; i++)
        events += files[i].res.events;
    printf("## stageprof report\n\n%zu file%s, %llu events, producer %s, "
           "wall %.3f ms\n\n",
           nfiles, nfiles == 1 ? "" : "s", (unsigned long long)events,
           producer(files, nfiles), (double)wall_ns(a) / 1e6);
    printf("| stage | category | count | total ms | self ms | p50 ms | "
           "p90 ms | p99 ms | max ms | share |\n"
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < n; i++) {
        const struct agg_stage *st = v[i];
        char nb[128], cb[64];
        cell(nb, sizeof nb, st->name, st->name_len, 60);
        cell(cb, sizeof cb, st->cat, st->cat_len, 30);
        /* A '|' inside a name would end the cell. */
        for (char *c = nb; *c; c++)
            if (*c == '|')
                *c = '/';
        for (char *c = cb; *c; c++)
            if (*c == '|')
                *c = '/';
        printf("| %s%s | %s | %llu | %.3f | %.3f | %.3f | %.3f | %.3f | "
               "%.3f | %.1f%% |\n",
               nb, st->async ? " (async)" : "", cb,
               (unsigned long long)st->count, (double)st->total_ns / 1e6,
               (double)st->self_ns / 1e6, st->pct_ns[0] / 1e6,
               st->pct_ns[1] / 1e6, st->pct_ns[3] / 1e6,
               (double)st->max_ns / 1e6, 100.0 * share(a, st));
    }
    text_runs(ctx, a, 1, "", "");
    free(v);
}

/* --html FILE: the page (html_report.c), with the facts the JSON gives. */
static void write_html(const struct cli_ctx *ctx, const struct report_opts *o,
                       const struct agg *a, const struct file_result *files,
                       size_t nfiles)
{
    struct html_facts f;
    char err[4200];
    size_t n;
    struct agg_stage **v = selected(ctx, o, a, &n);
    html_facts_init(&f, producer(files, nfiles));
    for (size_t i = 0; i < nfiles; i++)
        html_facts_file(&f, files[i].path, &files[i].res);
    warnings(a, files, nfiles, html_facts_warning, &f);
    int rc = html_report_write(o->html, a, v, n, &f, err, sizeof err);
    html_facts_fini(&f);
    free(v);
    if (rc != 0)
        cli_die(ctx, "%s", err);
}

/* Entry ------------------------------------------------------------------- */

int cmd_report(struct cli_ctx *ctx, int argc, char **argv)
{
    static const char shortopts[] = ":" CLI_GLOBAL_SHORTOPTS;
    static const struct option longopts[] = {
        CLI_REPORT_LONGOPTS,
        CLI_GLOBAL_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    struct report_opts o = {.format = CLI_FORMAT_TEXT};
    int c;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'h':
            usage(stdout);
            return CLI_EXIT_OK;
        case CLI_REPORT_FORMAT:
            o.format = cli_parse_format(ctx, optarg,
                                        CLI_FORMAT_TEXT | CLI_FORMAT_CSV |
                                            CLI_FORMAT_JSON | CLI_FORMAT_MD);
            break;
        case CLI_REPORT_TOP:
            errno = 0;
            o.top = strtol(optarg, &end, 10);
            if (*optarg < '0' || *optarg > '9' || *end != '\0' || errno ||
                o.top < 1)
                cli_usage_error(ctx,
                                "--top wants a whole number from 1, "
                                "not '%s'",
                                optarg);
            break;
        case CLI_REPORT_FROM:
        case CLI_REPORT_TO: {
            int64_t *dst = c == CLI_REPORT_FROM ? &o.agg.from_ns : &o.agg.to_ns;
            if (parse_time(optarg, dst) != 0)
                cli_usage_error(ctx,
                                "--%s wants a time with a unit (ns, us, ms, "
                                "s), e.g. 1.5s, not '%s'",
                                c == CLI_REPORT_FROM ? "from" : "to", optarg);
            *(c == CLI_REPORT_FROM ? &o.agg.has_from : &o.agg.has_to) = 1;
            break;
        }
        case CLI_REPORT_CATEGORY:
            o.categories = optarg;
            break;
        case CLI_REPORT_THREAD:
            o.agg.thread = optarg;
            break;
        case CLI_REPORT_NAME:
            o.name = optarg;
            break;
        case CLI_REPORT_REGEX:
            o.regex = 1;
            break;
        case CLI_REPORT_EXACT_LIMIT: {
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (*optarg < '0' || *optarg > '9' || *end != '\0' || errno ||
                v < 1)
                cli_usage_error(ctx,
                                "--exact-limit wants a whole number from 1, "
                                "not '%s'",
                                optarg);
            o.agg.exact_limit = v;
            break;
        }
        case CLI_REPORT_HTML:
            if (*optarg == '\0')
                cli_usage_error(ctx, "--html wants a file name");
            o.html = optarg;
            break;
        default:
            cli_global_option(ctx, c, argv, shortopts);
            break;
        }
    }
    if (optind >= argc)
        cli_usage_error(ctx, "no trace given");
    if (o.regex && o.name == NULL)
        cli_usage_error(ctx, "--regex needs --name");
    if (o.regex) {
        int rc = regcomp(&o.re, o.name, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[128];
            regerror(rc, &o.re, msg, sizeof msg);
            cli_usage_error(ctx, "--name: bad regular expression: %s", msg);
        }
    }
    if (o.agg.has_from && o.agg.has_to && o.agg.to_ns <= o.agg.from_ns)
        cli_usage_error(ctx, "--to must be later than --from");

    struct cli_inputs in = {0};
    for (int i = optind; i < argc; i++) {
        char err[4200];
        if (cli_inputs_add(ctx, &in, argv[i], err, sizeof err) != 0)
            cli_die(ctx, "%s", err);
    }
    struct file_result *files = calloc(in.n, sizeof *files);
    struct agg a;
    if (files == NULL || agg_init(&a, &o.agg) != 0)
        cli_die(ctx, "out of memory");
    for (size_t i = 0; i < in.n; i++) {
        char err[1024];
        files[i].path = in.paths[i];
        cli_verbose(ctx, 1, "reading %s", in.paths[i]);
        struct progress pr;
        progress_begin(ctx, &pr, &a, in.paths[i]);
        int rc = tl_read(in.paths[i], progress_event, &pr, &files[i].res, err,
                         sizeof err);
        progress_end(&pr);
        if (rc != 0)
            cli_die(ctx, "%s", err);
    }
    for (size_t i = 0; i < in.n; i++)
        if (files[i].res.dropped > 0)
            a.dropped += files[i].res.dropped;
    agg_finish(&a);
    if (o.html != NULL)
        write_html(ctx, &o, &a, files, in.n);
    if (o.format != CLI_FORMAT_JSON)
        warnings(&a, files, in.n, warn_cb, ctx);
    if (o.format == CLI_FORMAT_JSON)
        print_json(ctx, &o, &a, files, in.n);
    else if (o.format == CLI_FORMAT_CSV)
        print_csv(ctx, &o, &a);
    else if (o.format == CLI_FORMAT_MD)
        print_md(ctx, &o, &a, files, in.n);
    else
        print_text(ctx, &o, &a, files, in.n);
    agg_fini(&a);
    cli_inputs_free(&in);
    free(files);
    if (o.regex)
        regfree(&o.re);
    return CLI_EXIT_OK;
}
