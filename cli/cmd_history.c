/*
 * cmd_history.c - `stageprof history`: a run history in SQLite, to follow
 * stages across commits and catch the one that drifted.
 *
 *   add TRACE...   one entry: each trace read with the report's
 *                  aggregation (agg.h) and stored as its summary, with the
 *                  --label k=v given and the trace's header
 *   list           the entries, oldest first
 *   show           one stage's statistic across entries: a table with a
 *                  sparkline, --html for a chart page
 *   check          the newest entry's stages against the band of the
 *                  entries before it; exit 1 when one is outside
 *
 * An entry is one `add`; several traces in one add are repetitions of the
 * same workload, and an entry's figure for a stage is the median of its
 * traces' figures. The storage is history_db.c; the page history_html.c;
 * docs/cli/stageprof-history.md documents the schema and the band rule.
 *
 * Exit statuses: add, list, show: 0, 1 failure, 2 bad usage. check: 0
 * nothing outside its band (or too little history, said so), 1 something
 * outside, 2 bad usage or a history that cannot be read.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "agg.h"
#include "cli.h"
#include "history_db.h"
#include "history_html.h"
#include "html_report.h"
#include "stats.h"
#include "trace_load.h"
#include "util/json.h"
#include "util/strbuf.h"

#define DEFAULT_DB "stageprof-history.sqlite"
#define DB_ENV "STAGEPROF_HISTORY_DB"
#define DEFAULT_BUSY_MS 10000
#define DEFAULT_WINDOW 20
#define DEFAULT_K 5.0
#define DEFAULT_MIN_BAND 0.05 /* of the median, each side */
#define MIN_HISTORY 10        /* earlier entries needed to judge */
#define MAD_SCALE 1.4826      /* MAD to a normal's standard deviation */
#define DEFAULT_LAST 30       /* entries `show` prints */
#define LABEL_KEY_MAX 64
#define LABEL_VALUE_MAX 1024
#define NAME_CUT 40 /* code points of a name in a table */

enum sub { SUB_ADD, SUB_LIST, SUB_SHOW, SUB_CHECK };
static const char *const sub_names[] = {"add", "list", "show", "check"};

enum {
    OPT_DB = CLI_OPT_COMMAND,
    OPT_BUSY,
    OPT_LABEL,
    OPT_FORMAT,
    OPT_LAST,
    OPT_STAGE,
    OPT_CATEGORY,
    OPT_RUNS,
    OPT_STAT,
    OPT_HTML,
    OPT_WINDOW,
    OPT_K,
    OPT_MIN_BAND
};

#define ALL                                                                    \
    ((1u << SUB_ADD) | (1u << SUB_LIST) | (1u << SUB_SHOW) | (1u << SUB_CHECK))
#define READERS ((1u << SUB_LIST) | (1u << SUB_SHOW) | (1u << SUB_CHECK))

/* Which subcommands take each option. */
static const struct {
    int opt;
    unsigned subs;
} takes[] = {
    {OPT_DB, ALL},
    {OPT_BUSY, ALL},
    {OPT_LABEL, ALL},
    {OPT_FORMAT, READERS},
    {OPT_LAST, (1u << SUB_LIST) | (1u << SUB_SHOW)},
    {OPT_STAGE, 1u << SUB_SHOW},
    {OPT_CATEGORY, 1u << SUB_SHOW},
    {OPT_RUNS, 1u << SUB_SHOW},
    {OPT_STAT, (1u << SUB_SHOW) | (1u << SUB_CHECK)},
    {OPT_HTML, 1u << SUB_SHOW},
    {OPT_WINDOW, 1u << SUB_CHECK},
    {OPT_K, 1u << SUB_CHECK},
    {OPT_MIN_BAND, 1u << SUB_CHECK},
};

struct opts {
    enum sub sub;
    const char *db;
    int busy_ms;
    struct history_label *labels; /* add: stored; others: a filter */
    size_t nlabels;
    enum cli_format format;
    long last;
    int last_set;
    const char *stage, *category;
    int runs;
    enum history_stat stat;
    const char *html;
    long window;
    double k, min_band;
};

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */
/* ------------------------------------------------------------------------ */

/* "stageprof history: <message>" on stderr, exit @status. */
static noreturn void fail(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static noreturn void fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("stageprof history: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(status);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        fail(CLI_EXIT_FAIL, "out of memory");
    return q;
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = xrealloc(NULL, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/*
 * @len bytes of @s for a terminal, into @out: control bytes (NUL too) as
 * \xHH, at most @cut code points (then "…"). Returns the code points
 * written, for padding.
 */
static size_t text_cell(struct strbuf *out, const char *s, size_t len,
                        size_t cut)
{
    size_t cp = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (cp == cut) {
            stageprof__sb_adds(out, "\xe2\x80\xa6");
            return cp + 1;
        }
        size_t n =
            c < 0x80
                ? 1
                : stageprof__utf8_valid((const unsigned char *)s + i, len - i);
        if (c < 0x20 || c == 0x7f || n == 0) {
            stageprof__sb_addf(out, "\\x%02x", c);
            cp += 4;
            i++;
            continue;
        }
        stageprof__sb_add(out, s + i, n);
        cp++;
        i += n;
    }
    return cp;
}

/* Print @s (@len bytes) made safe, padded with spaces to @width. */
static void put_cell(const char *s, size_t len, size_t width, size_t cut)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    size_t cp = text_cell(&sb, s, len, cut);
    fputs(sb.buf != NULL ? sb.buf : "", stdout);
    for (; cp < width; cp++)
        fputc(' ', stdout);
    stageprof__sb_fini(&sb);
}

/* @s (plain UTF-8) right-aligned in @width code points, then @after. */
static void put_right(const char *s, size_t width, const char *after)
{
    size_t w = 0;
    for (const char *p = s; *p; p++)
        w += ((unsigned char)*p & 0xc0) != 0x80;
    for (; w < width; w++)
        fputc(' ', stdout);
    fputs(s, stdout);
    fputs(after, stdout);
}

static void put_labels(const struct history_entry *e)
{
    for (size_t i = 0; i < e->nlabels; i++) {
        if (i > 0)
            fputc(' ', stdout);
        put_cell(e->labels[i].key, strlen(e->labels[i].key), 0, NAME_CUT);
        fputc('=', stdout);
        put_cell(e->labels[i].value, strlen(e->labels[i].value), 0, NAME_CUT);
    }
}

static void json_labels(struct strbuf *sb, const struct history_entry *e)
{
    stageprof__sb_adds(sb, "{");
    for (size_t i = 0; i < e->nlabels; i++) {
        if (i > 0)
            stageprof__sb_adds(sb, ",");
        stageprof__json_str(sb, e->labels[i].key, strlen(e->labels[i].key));
        stageprof__sb_adds(sb, ":");
        stageprof__json_str(sb, e->labels[i].value, strlen(e->labels[i].value));
    }
    stageprof__sb_adds(sb, "}");
}

static void json_num(struct strbuf *sb, double v)
{
    if (isfinite(v))
        stageprof__sb_addf(sb, "%.17g", v);
    else
        stageprof__sb_adds(sb, "null");
}

static void json_print(struct strbuf *sb)
{
    if (sb->oom)
        fail(CLI_EXIT_FAIL, "out of memory");
    fwrite(sb->buf, 1, sb->len, stdout);
    fputc('\n', stdout);
    stageprof__sb_fini(sb);
}

static void json_entry_head(struct strbuf *sb, const struct history_entry *e)
{
    stageprof__sb_addf(sb, "{\"id\":%lld,\"added_at\":", e->id);
    stageprof__json_str(sb, e->added_at, strlen(e->added_at));
    stageprof__sb_adds(sb, ",\"labels\":");
    json_labels(sb, e);
}

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: stageprof history add TRACE... [--label KEY=VALUE ...]\n"
        "       stageprof history list [--last N] [--format text|json]\n"
        "       stageprof history show (--stage NAME [--category CAT] | "
        "--runs)\n"
        "                              [--stat STAT] [--last N] "
        "[--html FILE]\n"
        "                              [--format text|json]\n"
        "       stageprof history check [--window N] [--stat STAT] "
        "[--k K]\n"
        "                               [--min-band PCT] [--format "
        "text|json]\n"
        "\n"
        "Keep the summaries of traces in an SQLite file and follow stages\n"
        "across them. Each `add` is one entry (its traces are repetitions\n"
        "of one workload; a TRACE may be a directory of traces).\n"
        "\n"
        "  --db FILE            the history (default $%s, else\n"
        "                       ./%s)\n"
        "  --busy-timeout MS    wait this long for another process's lock\n"
        "                       (default %d)\n"
        "  --label KEY=VALUE    add: store it with the entry (repeatable);\n"
        "                       list, show, check: only entries carrying it\n"
        "  --format FMT         text (default) or json\n"
        "  --last N             the newest N entries (show: default %d; 0 "
        "all)\n"
        "  --stage NAME         show: the stage to follow\n"
        "  --category CAT       show: the stage's category, when its name\n"
        "                       is in several\n"
        "  --runs               show: the whole runs (end to end) instead\n"
        "  --stat STAT          mean, p50, p95 or p99 (show: p50, check: "
        "p95)\n"
        "  --html FILE          show: also write a self-contained chart page\n"
        "  --window N           check: entries before the newest to compare\n"
        "                       with, 3 to 1000 (default %d)\n"
        "  --k K                check: band half-width in robust standard\n"
        "                       deviations, above 0 (default %g)\n"
        "  --min-band PCT       check: smallest band half-width, percent of\n"
        "                       the median (default %g)\n"
        "\n"
        "check flags a stage (and the runs) of the newest entry whose STAT\n"
        "lies outside median +/- max(K x 1.4826 x MAD, PCT%% x median) of\n"
        "the entries before it; with fewer than %d earlier entries it says\n"
        "so and does not judge.\n"
        "\n"
        "Exit status: 0 success; 1 failure (check: a stage outside its\n"
        "band); 2 bad usage (check: also a history that cannot be read).\n",
        DB_ENV, DEFAULT_DB, DEFAULT_BUSY_MS, DEFAULT_LAST, DEFAULT_WINDOW,
        DEFAULT_K, DEFAULT_MIN_BAND * 100, MIN_HISTORY);
}

/* Label keys: a letter or _, then letters, digits, _ . - (64 at most). */
static int key_ok(const char *k, size_t n)
{
    if (n == 0 || n > LABEL_KEY_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k[i];
        int alpha =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        int more = (c >= '0' && c <= '9') || c == '.' || c == '-';
        if (!alpha && (i == 0 || !more))
            return 0;
    }
    return 1;
}

/* Values: 1 to 1024 bytes of UTF-8 without control characters. */
static const char *value_problem(const char *v)
{
    size_t n = strlen(v);
    if (n == 0)
        return "is empty";
    if (n > LABEL_VALUE_MAX)
        return "is longer than 1024 bytes";
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f)
            return "holds a control character";
        size_t len =
            c < 0x80
                ? 1
                : stageprof__utf8_valid((const unsigned char *)v + i, n - i);
        if (len == 0)
            return "is not valid UTF-8";
        i += len;
    }
    return NULL;
}

static void add_label(const struct cli_ctx *ctx, struct opts *o,
                      const char *arg)
{
    char buf[CLI_PRINTABLE_MAX];
    const char *eq = strchr(arg, '=');
    if (eq == NULL)
        cli_usage_error(ctx, "--label '%s': wants KEY=VALUE",
                        cli_printable(buf, sizeof buf, arg));
    size_t kn = (size_t)(eq - arg);
    if (!key_ok(arg, kn))
        cli_usage_error(ctx,
                        "--label '%s': the key must start with a letter or "
                        "_ and hold only letters, digits, _ . - (64 at most)",
                        cli_printable(buf, sizeof buf, arg));
    const char *why = value_problem(eq + 1);
    if (why != NULL)
        cli_usage_error(ctx, "--label '%s': the value %s",
                        cli_printable(buf, sizeof buf, arg), why);
    for (size_t i = 0; i < o->nlabels; i++)
        if (strlen(o->labels[i].key) == kn &&
            memcmp(o->labels[i].key, arg, kn) == 0)
            cli_usage_error(ctx, "--label: the key '%.*s' is given twice",
                            (int)kn, arg);
    o->labels = xrealloc(o->labels, (o->nlabels + 1) * sizeof *o->labels);
    o->labels[o->nlabels].key = xstrndup(arg, kn);
    o->labels[o->nlabels].value = xstrndup(eq + 1, strlen(eq + 1));
    o->nlabels++;
}

static enum history_stat parse_stat(const struct cli_ctx *ctx, const char *arg)
{
    for (int k = 0; k < HISTORY_NSTAT; k++)
        if (strcmp(arg, history_stat_names[k]) == 0)
            return (enum history_stat)k;
    char buf[CLI_PRINTABLE_MAX];
    cli_usage_error(ctx, "--stat wants mean, p50, p95 or p99, not '%s'",
                    cli_printable(buf, sizeof buf, arg));
}

/* A real number in (@lo, @hi] (or [@lo, @hi] with @lo_in) for --@name. */
static double parse_real(const struct cli_ctx *ctx, const char *name,
                         const char *arg, double lo, int lo_in, double hi)
{
    char *end;
    double v = (arg[0] >= '0' && arg[0] <= '9') || arg[0] == '.'
                   ? strtod(arg, &end)
                   : NAN;
    if (!isfinite(v) || *end != '\0' || v > hi || v < lo ||
        (!lo_in && v == lo)) {
        char buf[CLI_PRINTABLE_MAX];
        if (lo_in)
            cli_usage_error(ctx, "--%s wants a number from %g to %g, not '%s'",
                            name, lo, hi, cli_printable(buf, sizeof buf, arg));
        cli_usage_error(ctx,
                        "--%s wants a number above %g, at most %g, not "
                        "'%s'",
                        name, lo, hi, cli_printable(buf, sizeof buf, arg));
    }
    return v;
}

static void parse(struct cli_ctx *ctx, struct opts *o, int argc, char **argv)
{
    static const char shortopts[] = ":" CLI_GLOBAL_SHORTOPTS;
    static const struct option longopts[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"busy-timeout", required_argument, NULL, OPT_BUSY},
        {"label", required_argument, NULL, OPT_LABEL},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"last", required_argument, NULL, OPT_LAST},
        {"stage", required_argument, NULL, OPT_STAGE},
        {"category", required_argument, NULL, OPT_CATEGORY},
        {"runs", no_argument, NULL, OPT_RUNS},
        {"stat", required_argument, NULL, OPT_STAT},
        {"html", required_argument, NULL, OPT_HTML},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"k", required_argument, NULL, OPT_K},
        {"min-band", required_argument, NULL, OPT_MIN_BAND},
        CLI_GLOBAL_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int stat_set = 0, c, idx;
    cli_getopt_reset();
    while ((c = getopt_long(argc, argv, shortopts, longopts, &idx)) != -1) {
        for (size_t i = 0; i < sizeof takes / sizeof *takes; i++)
            if (takes[i].opt == c && !(takes[i].subs & (1u << o->sub)))
                cli_usage_error(ctx, "`history %s` takes no --%s",
                                sub_names[o->sub], longopts[idx].name);
        switch (c) {
        case 'h':
            usage(stdout);
            exit(CLI_EXIT_OK);
        case OPT_DB:
            if (optarg[0] == '\0')
                cli_usage_error(ctx, "--db wants a file, not ''");
            o->db = optarg;
            break;
        case OPT_BUSY:
            o->busy_ms =
                (int)cli_parse_number(ctx, "busy-timeout", optarg, 0, 3600000);
            break;
        case OPT_LABEL:
            add_label(ctx, o, optarg);
            break;
        case OPT_FORMAT:
            o->format = cli_parse_format(ctx, optarg,
                                         CLI_FORMAT_TEXT | CLI_FORMAT_JSON);
            break;
        case OPT_LAST:
            o->last = cli_parse_number(ctx, "last", optarg, 0, 100000000);
            o->last_set = 1;
            break;
        case OPT_STAGE:
            o->stage = optarg;
            break;
        case OPT_CATEGORY:
            o->category = optarg;
            break;
        case OPT_RUNS:
            o->runs = 1;
            break;
        case OPT_STAT:
            o->stat = parse_stat(ctx, optarg);
            stat_set = 1;
            break;
        case OPT_HTML:
            if (optarg[0] == '\0')
                cli_usage_error(ctx, "--html wants a file, not ''");
            o->html = optarg;
            break;
        case OPT_WINDOW:
            o->window = cli_parse_number(ctx, "window", optarg, 3, 1000);
            break;
        case OPT_K:
            o->k = parse_real(ctx, "k", optarg, 0, 0, 100);
            break;
        case OPT_MIN_BAND:
            o->min_band = parse_real(ctx, "min-band", optarg, 0, 1, 100) / 100;
            break;
        default:
            cli_global_option(ctx, c, argv, shortopts);
            break;
        }
    }
    if (!stat_set)
        o->stat = o->sub == SUB_CHECK ? HISTORY_P95 : HISTORY_P50;
    if (o->sub == SUB_SHOW) {
        if (o->runs && (o->stage != NULL || o->category != NULL))
            cli_usage_error(ctx, "--runs and --stage are one or the other");
        if (!o->runs && o->stage == NULL)
            cli_usage_error(ctx, "show wants --stage NAME (or --runs)");
        if (!o->last_set)
            o->last = DEFAULT_LAST;
    }
    if (o->sub != SUB_ADD)
        cli_no_operands(ctx, argc, argv);
}

/* ------------------------------------------------------------------------ */
/* add                                                                      */
/* ------------------------------------------------------------------------ */

/* "SIZE:CRC32" of the file's bytes into @out, or "" when unreadable. */
static void file_digest(const char *path, char *out, size_t len)
{
    out[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return;
    unsigned char buf[1 << 16];
    uLong crc = crc32(0L, Z_NULL, 0);
    unsigned long long size = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        crc = crc32(crc, buf, (uInt)n);
        size += n;
    }
    if (!ferror(f))
        snprintf(out, len, "%llu:%08lx", size, (unsigned long)crc);
    fclose(f);
}

/* Read one trace into @t (its stages' names copied). */
static void read_trace(const struct cli_ctx *ctx, const char *path,
                       struct history_trace *t)
{
    struct agg a;
    struct agg_opts aopts;
    memset(&aopts, 0, sizeof aopts);
    if (agg_init(&a, &aopts) != 0)
        fail(CLI_EXIT_FAIL, "out of memory");
    char err[1024];
    cli_verbose(ctx, 1, "reading %s", path);
    memset(t, 0, sizeof *t);
    if (tl_read(path, agg_event, &a, &t->res, err, sizeof err) != 0)
        fail(CLI_EXIT_FAIL, "%s; nothing was added", err);
    if (t->res.truncated)
        cli_warn(ctx,
                 "%s ends in the middle of its events: the part "
                 "before the cut is stored",
                 path);
    if (t->res.dropped > 0)
        a.dropped = t->res.dropped;
    if (agg_finish(&a) != 0)
        fail(CLI_EXIT_FAIL, "out of memory");
    t->stages = xrealloc(NULL, a.nstages * sizeof *t->stages);
    for (size_t i = 0; i < a.nstages; i++) {
        const struct agg_stage *st = a.stages[i];
        /* stageprof's runs (async, category "run") are the runs' figures,
         * as in diff. */
        if (st->count == 0 ||
            (st->async && st->cat_len == 3 && memcmp(st->cat, "run", 3) == 0))
            continue;
        struct history_stage *g = &t->stages[t->nstages++];
        g->name = xstrndup(st->name, st->name_len);
        g->cat = xstrndup(st->cat, st->cat_len);
        g->name_len = st->name_len;
        g->cat_len = st->cat_len;
        g->async = st->async;
        g->count = st->count;
        g->total_ns = st->total_ns;
        g->stat_ns[HISTORY_MEAN] = (double)st->total_ns / (double)st->count;
        g->stat_ns[HISTORY_P50] = st->pct_ns[0];
        g->stat_ns[HISTORY_P95] = st->pct_ns[2];
        g->stat_ns[HISTORY_P99] = st->pct_ns[3];
    }
    t->runs = a.rs.count;
    if (a.rs.count > 0) {
        t->run_ns[HISTORY_MEAN] = (double)a.rs.total_ns / (double)a.rs.count;
        t->run_ns[HISTORY_P50] = a.rs.pct_ns[0];
        t->run_ns[HISTORY_P95] = a.rs.pct_ns[2];
        t->run_ns[HISTORY_P99] = a.rs.pct_ns[3];
    }
    t->throughput = a.rs.throughput;
    agg_fini(&a);
    if (t->nstages == 0 && t->runs == 0)
        fail(CLI_EXIT_FAIL, "%s holds no stage and no run; nothing was added",
             path);
    if (strcmp(path, "-") != 0)
        file_digest(path, t->digest, sizeof t->digest);
    /* Stored absolute, so the entry still names the file from elsewhere
     * (standard input stays "-"). */
    char *abs = strcmp(path, "-") != 0 ? realpath(path, NULL) : NULL;
    t->path = abs != NULL ? abs : xstrndup(path, strlen(path));
}

static int run_add(struct cli_ctx *ctx, struct opts *o, int argc, char **argv)
{
    if (optind >= argc)
        cli_usage_error(ctx, "add wants at least one trace");
    struct cli_inputs in;
    memset(&in, 0, sizeof in);
    char err[4200];
    for (int i = optind; i < argc; i++)
        if (cli_inputs_add(ctx, &in, argv[i], err, sizeof err) != 0)
            fail(CLI_EXIT_FAIL, "%s; nothing was added", err);
    /* Every trace is read before the history is touched: a bad one
     * stops the add with the file as it was. */
    struct history_trace *t = xrealloc(NULL, in.n * sizeof *t);
    size_t nstages = 0;
    uint64_t runs = 0;
    for (size_t i = 0; i < in.n; i++) {
        read_trace(ctx, in.paths[i], &t[i]);
        nstages += t[i].nstages;
        runs += t[i].runs;
    }
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL ||
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        fail(CLI_EXIT_FAIL, "cannot read the clock");
    struct history h;
    long long id = 0;
    if (history_open(&h, o->db, 1, o->busy_ms, err, sizeof err) != 0 ||
        history_add(&h, o->labels, o->nlabels, t, in.n, when, &id, err,
                    sizeof err) != 0) {
        history_close(&h);
        fail(CLI_EXIT_FAIL, "%s; nothing was added", err);
    }
    history_close(&h);
    for (size_t i = 0; i < in.n; i++)
        if (t[i].again != 0)
            cli_warn(ctx,
                     "%s was added before, in entry %lld: stored again (a "
                     "trend counts it twice)",
                     t[i].path, t[i].again);
    printf("added entry %lld to %s: %zu trace%s, %zu stage rows, %llu "
           "runs\n",
           id, o->db, in.n, in.n == 1 ? "" : "s", nstages,
           (unsigned long long)runs);
    for (size_t i = 0; i < in.n; i++) {
        for (size_t s = 0; s < t[i].nstages; s++) {
            free((char *)t[i].stages[s].name);
            free((char *)t[i].stages[s].cat);
        }
        free(t[i].stages);
        free((char *)t[i].path);
    }
    free(t);
    cli_inputs_free(&in);
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* Reading helpers                                                          */
/* ------------------------------------------------------------------------ */

/*
 * Open the history for reading; exits @status on failure, a missing file
 * included (a wrong path, most likely). An empty file (no schema yet)
 * returns 1 after printing so (on stdout) when @empty_ok.
 */
static int open_read(struct history *h, const struct opts *o, int status,
                     int empty_ok)
{
    char err[4200];
    int rc = history_open(h, o->db, 0, o->busy_ms, err, sizeof err);
    if (rc == 0)
        return 0;
    history_close(h);
    if (rc == 1 && empty_ok && strncmp(err, "no history", 10) != 0) {
        if (o->format == CLI_FORMAT_JSON)
            printf("{\"stageprof_history\":1,\"entries\":[]}\n");
        else
            printf("%s\n", err);
        return 1;
    }
    fail(status, "%s", err);
}

static void load_entries(struct history *h, const struct opts *o, size_t last,
                         int status, struct history_entry **e, size_t *n)
{
    char err[4200];
    if (history_entries(h, o->labels, o->nlabels, last, e, n, err,
                        sizeof err) != 0) {
        history_close(h);
        fail(status, "%s", err);
    }
}

/* ------------------------------------------------------------------------ */
/* list                                                                     */
/* ------------------------------------------------------------------------ */

struct rows {
    struct strbuf *sb;
    size_t n;
};

/* A trace's row as a JSON object (history_row_cb). */
static void json_row(void *arg, int ncol, const char *const *names,
                     const char *const *values, const int *is_text,
                     long long nstages)
{
    struct rows *r = arg;
    stageprof__sb_adds(r->sb, r->n++ ? ",{" : "{");
    int first = 1;
    for (int c = 0; c < ncol; c++) {
        if (strcmp(names[c], "id") == 0 || strcmp(names[c], "entry_id") == 0)
            continue;
        if (!first)
            stageprof__sb_adds(r->sb, ",");
        first = 0;
        stageprof__json_str(r->sb, names[c], strlen(names[c]));
        stageprof__sb_adds(r->sb, ":");
        if (values[c] == NULL)
            stageprof__sb_adds(r->sb, "null");
        else if (is_text[c])
            stageprof__json_str(r->sb, values[c], strlen(values[c]));
        else if (strcmp(names[c], "truncated") == 0 ||
                 strcmp(names[c], "complete") == 0)
            stageprof__sb_adds(r->sb,
                               strcmp(values[c], "0") ? "true" : "false");
        else
            stageprof__sb_adds(r->sb, values[c]);
    }
    stageprof__sb_addf(r->sb, ",\"stages\":%lld}", nstages);
}

/* The distinct hosts of an entry's traces, for the text table. */
struct hosts {
    char buf[128];
};

static void host_row(void *arg, int ncol, const char *const *names,
                     const char *const *values, const int *is_text,
                     long long nstages)
{
    (void)is_text;
    (void)nstages;
    struct hosts *h = arg;
    for (int c = 0; c < ncol; c++) {
        if (strcmp(names[c], "host") != 0 || values[c] == NULL)
            continue;
        if (strstr(h->buf, values[c]) != NULL)
            return;
        size_t at = strlen(h->buf);
        snprintf(h->buf + at, sizeof h->buf - at, "%s%s", at ? "," : "",
                 values[c]);
    }
}

static int run_list(struct opts *o)
{
    struct history h;
    if (open_read(&h, o, CLI_EXIT_FAIL, 1) != 0)
        return CLI_EXIT_OK;
    struct history_entry *e;
    size_t n;
    load_entries(&h, o, (size_t)o->last, CLI_EXIT_FAIL, &e, &n);
    char err[4200];
    if (o->format == CLI_FORMAT_JSON) {
        struct strbuf sb;
        stageprof__sb_init(&sb, NULL, NULL);
        stageprof__sb_addf(&sb,
                           "{\"stageprof_history\":1,\"schema_version\":%d,"
                           "\"db\":",
                           HISTORY_SCHEMA_VERSION);
        stageprof__json_str(&sb, o->db, strlen(o->db));
        stageprof__sb_adds(&sb, ",\"entries\":[");
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                stageprof__sb_adds(&sb, ",");
            json_entry_head(&sb, &e[i]);
            stageprof__sb_adds(&sb, ",\"stageprof_version\":");
            stageprof__json_str(&sb, e[i].version, strlen(e[i].version));
            stageprof__sb_adds(&sb, ",\"traces\":[");
            struct rows r = {&sb, 0};
            if (history_trace_rows(&h, e[i].id, json_row, &r, err,
                                   sizeof err) != 0)
                fail(CLI_EXIT_FAIL, "%s", err);
            stageprof__sb_adds(&sb, "]}");
        }
        stageprof__sb_adds(&sb, "]}");
        json_print(&sb);
    } else if (n == 0) {
        printf("no entries%s in %s\n", o->nlabels ? " carry those labels" : "",
               o->db);
    } else {
        printf("%6s  %-20s  %6s  %8s  %-16s  %s\n", "entry", "added (UTC)",
               "traces", "runs", "host", "labels");
        for (size_t i = 0; i < n; i++) {
            struct hosts hs;
            hs.buf[0] = '\0';
            if (history_trace_rows(&h, e[i].id, host_row, &hs, err,
                                   sizeof err) != 0)
                fail(CLI_EXIT_FAIL, "%s", err);
            printf("%6lld  ", e[i].id);
            put_cell(e[i].added_at, strlen(e[i].added_at), 20, 20);
            printf("  %6zu  %8llu  ", e[i].ntraces,
                   (unsigned long long)e[i].runs);
            put_cell(hs.buf[0] ? hs.buf : "-", hs.buf[0] ? strlen(hs.buf) : 1,
                     16, 16);
            printf("  ");
            put_labels(&e[i]);
            printf("\n");
        }
    }
    history_entries_free(e, n);
    history_close(&h);
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* show                                                                     */
/* ------------------------------------------------------------------------ */

/* ", "-joined @s for a message. */
static char *joined(char **s, size_t n)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            stageprof__sb_adds(&sb, ", ");
        text_cell(&sb, s[i], strlen(s[i]), NAME_CUT);
    }
    if (sb.oom || sb.buf == NULL) {
        stageprof__sb_fini(&sb);
        return xstrndup("", 0);
    }
    return sb.buf;
}

/* The series --stage/--category name, checked against the history. */
static void resolve_stage(struct history *h, const struct opts *o,
                          struct history_key *key, char **cat_out)
{
    char err[4200], buf[CLI_PRINTABLE_MAX];
    char **cats;
    size_t nc;
    if (history_categories(h, o->stage, &cats, &nc, err, sizeof err) != 0)
        fail(CLI_EXIT_FAIL, "%s", err);
    const char *stage = cli_printable(buf, sizeof buf, o->stage);
    if (nc == 0) {
        char **names;
        size_t nn;
        if (history_stage_names(h, 20, &names, &nn, err, sizeof err) != 0)
            fail(CLI_EXIT_FAIL, "%s", err);
        char *list = joined(names, nn);
        fail(CLI_EXIT_FAIL, "no stage named '%s' in %s (%s%s%s)", stage, o->db,
             nn ? "stages: " : "it holds no stage", list,
             nn == 20 ? ", ..." : "");
    }
    const char *cat = NULL;
    for (size_t i = 0; i < nc; i++)
        if (o->category != NULL ? strcmp(cats[i], o->category) == 0 : nc == 1)
            cat = cats[i];
    if (cat == NULL) {
        char *list = joined(cats, nc);
        if (o->category != NULL) {
            char b2[CLI_PRINTABLE_MAX];
            fail(CLI_EXIT_FAIL,
                 "stage '%s' has no category '%s' in %s "
                 "(it has: %s)",
                 stage, cli_printable(b2, sizeof b2, o->category), o->db, list);
        }
        fail(CLI_EXIT_FAIL,
             "stage '%s' is in several categories (%s): choose one with "
             "--category",
             stage, list);
    }
    *cat_out = xstrndup(cat, strlen(cat));
    history_strings_free(cats, nc);
    key->runs = 0;
    key->name = o->stage;
    key->name_len = strlen(o->stage);
    key->cat = *cat_out;
    key->cat_len = strlen(*cat_out);
}

/* The sparkline of @p: eight heights from the smallest to the largest
 * value, a space for an entry without one. */
static void sparkline(struct strbuf *sb, const struct history_point *p,
                      size_t n)
{
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (p[i].has) {
            lo = fmin(lo, p[i].v);
            hi = fmax(hi, p[i].v);
        }
    for (size_t i = 0; i < n; i++) {
        if (!p[i].has) {
            stageprof__sb_adds(sb, " ");
            continue;
        }
        int level = hi > lo ? (int)lround((p[i].v - lo) / (hi - lo) * 7) : 3;
        char bar[4] = {'\xe2', '\x96', (char)(0x81 + level), '\0'};
        stageprof__sb_adds(sb, bar);
    }
}

static void show_text(const struct opts *o, const char *what, size_t what_len,
                      const struct history_point *p, size_t n)
{
    const char *stat = history_stat_names[o->stat];
    size_t have = 0;
    double *v = xrealloc(NULL, n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        if (p[i].has)
            v[have++] = p[i].v;
    fputs("stage ", stdout);
    put_cell(what, what_len, 0, 200);
    printf(", %s over %zu entr%s (oldest first), %zu with a value\n", stat, n,
           n == 1 ? "y" : "ies", have);
    if (have > 0) {
        double med = NAN, lo = v[0], hi = v[0];
        for (size_t i = 1; i < have; i++) {
            lo = fmin(lo, v[i]);
            hi = fmax(hi, v[i]);
        }
        (void)stats_median(v, have, NULL, &med);
        struct strbuf sb;
        stageprof__sb_init(&sb, NULL, NULL);
        sparkline(&sb, p, n);
        char a[48], b[48], c[48];
        printf("%s  min %s  median %s  max %s\n", sb.buf ? sb.buf : "",
               html_dur(a, sizeof a, lo), html_dur(b, sizeof b, med),
               html_dur(c, sizeof c, hi));
        stageprof__sb_fini(&sb);
    }
    free(v);
    printf("\n%6s  %-20s  %10s  %8s  %8s  %s\n", "entry", "added (UTC)", stat,
           "change", "count", "labels");
    double prev = NAN;
    for (size_t i = 0; i < n; i++) {
        char d[48], ch[32] = "";
        printf("%6lld  ", p[i].e->id);
        put_cell(p[i].e->added_at, strlen(p[i].e->added_at), 20, 20);
        if (p[i].has) {
            if (isfinite(prev) && prev > 0)
                snprintf(ch, sizeof ch, "%+.1f%%", (p[i].v / prev - 1) * 100);
            prev = p[i].v;
            fputs("  ", stdout);
            put_right(html_dur(d, sizeof d, p[i].v), 10, "  ");
            printf("%8s  %8llu  ", ch, (unsigned long long)p[i].count);
        } else {
            printf("  %10s  %8s  %8s  ", "-", "", "0");
        }
        put_labels(p[i].e);
        printf("\n");
    }
}

static void show_json(const struct opts *o, const struct history_key *key,
                      const struct history_point *p, size_t n)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    stageprof__sb_adds(&sb, "{\"stageprof_history\":1,\"db\":");
    stageprof__json_str(&sb, o->db, strlen(o->db));
    if (key->runs) {
        stageprof__sb_adds(&sb, ",\"runs\":true,\"stage\":null");
    } else {
        stageprof__sb_adds(&sb, ",\"runs\":false,\"stage\":{\"name\":");
        stageprof__json_str(&sb, key->name, key->name_len);
        stageprof__sb_adds(&sb, ",\"category\":");
        stageprof__json_str(&sb, key->cat, key->cat_len);
        stageprof__sb_adds(&sb, "}");
    }
    stageprof__sb_addf(&sb, ",\"stat\":\"%s\",\"entries\":[",
                       history_stat_names[o->stat]);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            stageprof__sb_adds(&sb, ",");
        json_entry_head(&sb, p[i].e);
        stageprof__sb_addf(&sb, ",\"traces\":%zu,\"count\":%llu,\"value_ns\":",
                           p[i].e->ntraces, (unsigned long long)p[i].count);
        json_num(&sb, p[i].has ? p[i].v : NAN);
        stageprof__sb_adds(&sb, "}");
    }
    stageprof__sb_adds(&sb, "]}");
    json_print(&sb);
}

static int run_show(struct opts *o)
{
    struct history h;
    if (open_read(&h, o, CLI_EXIT_FAIL, 0) != 0)
        return CLI_EXIT_FAIL;
    struct history_key key;
    char *cat = NULL;
    memset(&key, 0, sizeof key);
    key.runs = o->runs;
    if (!o->runs)
        resolve_stage(&h, o, &key, &cat);
    struct history_entry *e;
    size_t n;
    load_entries(&h, o, (size_t)o->last, CLI_EXIT_FAIL, &e, &n);
    struct history_point *p = xrealloc(NULL, n * sizeof *p);
    char err[4200];
    for (size_t i = 0; i < n; i++) {
        p[i].e = &e[i];
        p[i].count = 0;
        int rc = history_value(&h, e[i].id, &key, o->stat, &p[i].v, &p[i].count,
                               err, sizeof err);
        if (rc < 0)
            fail(CLI_EXIT_FAIL, "%s", err);
        p[i].has = rc == 1;
    }
    history_close(&h);
    /* The series as named on the page and in the table. */
    struct strbuf what;
    stageprof__sb_init(&what, NULL, NULL);
    if (key.runs) {
        stageprof__sb_adds(&what, "runs (end to end)");
    } else {
        stageprof__sb_add(&what, key.name, key.name_len);
        if (key.cat_len > 0) {
            stageprof__sb_adds(&what, " (");
            stageprof__sb_add(&what, key.cat, key.cat_len);
            stageprof__sb_adds(&what, ")");
        }
    }
    if (what.oom)
        fail(CLI_EXIT_FAIL, "out of memory");
    if (o->html != NULL &&
        history_html(o->html, what.buf, what.len, history_stat_names[o->stat],
                     o->db, p, n, err, sizeof err) != 0)
        fail(CLI_EXIT_FAIL, "%s", err);
    if (o->format == CLI_FORMAT_JSON)
        show_json(o, &key, p, n);
    else
        show_text(o, what.buf, what.len, p, n);
    stageprof__sb_fini(&what);
    free(p);
    free(cat);
    history_entries_free(e, n);
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* check                                                                    */
/* ------------------------------------------------------------------------ */

enum verdict { WITHIN, ABOVE, BELOW, TOO_FEW };
static const char *const verdict_names[] = {"within", "above", "below",
                                            "too little history"};

struct judged {
    struct history_key key;
    double v;            /* the newest entry's figure */
    size_t nhist;        /* earlier entries with a figure, at most window */
    double median, mad;  /* of those */
    double half, lo, hi; /* the band */
    enum verdict verdict;
};

/*
 * The band of @x[0..@n): median m, MAD = median |x - m|, half-width
 * max(k * 1.4826 * MAD, min_band * |m|). The floor keeps a series that
 * never moved (MAD 0) from flagging the least wobble.
 */
static void band(struct judged *j, double *x, size_t n, double k,
                 double min_band)
{
    double m, mad;
    (void)stats_median(x, n, NULL, &m);
    for (size_t i = 0; i < n; i++)
        x[i] = fabs(x[i] - m);
    (void)stats_median(x, n, NULL, &mad);
    j->median = m;
    j->mad = mad;
    j->half = fmax(k * MAD_SCALE * mad, min_band * fabs(m));
    j->lo = m - j->half;
    j->hi = m + j->half;
    j->verdict = j->v > j->hi ? ABOVE : j->v < j->lo ? BELOW : WITHIN;
}

static void judge(struct history *h, const struct opts *o,
                  const struct history_entry *e, size_t n, struct judged *j)
{
    char err[4200];
    uint64_t count;
    double *x = xrealloc(NULL, (size_t)o->window * sizeof *x);
    j->nhist = 0;
    /* Walk back from the entry before the newest, skipping entries
     * without the stage, until the window is full. */
    for (size_t i = n - 1; i-- > 0 && j->nhist < (size_t)o->window;) {
        double v;
        int rc = history_value(h, e[i].id, &j->key, o->stat, &v, &count, err,
                               sizeof err);
        if (rc < 0)
            fail(CLI_EXIT_USAGE, "%s", err);
        if (rc == 1)
            x[j->nhist++] = v;
    }
    size_t need =
        (size_t)o->window < MIN_HISTORY ? (size_t)o->window : MIN_HISTORY;
    j->median = j->mad = j->half = j->lo = j->hi = NAN;
    if (j->nhist < need)
        j->verdict = TOO_FEW;
    else
        band(j, x, j->nhist, o->k, o->min_band);
    free(x);
}

static void name_of(struct strbuf *sb, const struct history_key *k)
{
    if (k->runs) {
        stageprof__sb_adds(sb, "runs (end to end)");
        return;
    }
    text_cell(sb, k->name, k->name_len, NAME_CUT);
    if (k->cat_len) {
        stageprof__sb_adds(sb, " (");
        text_cell(sb, k->cat, k->cat_len, NAME_CUT);
        stageprof__sb_adds(sb, ")");
    }
}

static void check_text(const struct opts *o, const struct history_entry *last,
                       const struct judged *j, size_t nj, size_t judged,
                       size_t flagged, size_t need)
{
    const char *stat = history_stat_names[o->stat];
    printf("newest entry %lld (%s", last->id, last->added_at);
    if (last->nlabels) {
        fputs(", ", stdout);
        put_labels(last);
    }
    printf(") against up to %ld entries before it\n", o->window);
    printf("band: median %s +/- max(%g x 1.4826 x MAD, %g%% of the median)\n",
           stat, o->k, o->min_band * 100);
    if (judged == 0) {
        printf("\ntoo little history to judge: no stage of the newest entry "
               "has the %zu earlier entries a judgment needs\n",
               need);
        return;
    }
    printf("\n%-40s  %10s  %10s  %-23s  %8s  %s\n", "stage", stat, "median",
           "band", "change", "verdict");
    for (size_t i = 0; i < nj; i++) {
        struct strbuf sb;
        stageprof__sb_init(&sb, NULL, NULL);
        name_of(&sb, &j[i].key);
        size_t w = 0;
        for (size_t b = 0; b < sb.len; b++)
            w += ((unsigned char)sb.buf[b] & 0xc0) != 0x80;
        fputs(sb.buf ? sb.buf : "", stdout);
        for (; w < 40; w++)
            fputc(' ', stdout);
        stageprof__sb_fini(&sb);
        char a[48], b[48], c[48], d[48], bandtxt[64], ch[32];
        if (j[i].verdict == TOO_FEW) {
            fputs("  ", stdout);
            put_right(html_dur(a, sizeof a, j[i].v), 10, "  ");
            printf("%10s  %-23s  %8s  too little history (%zu earlier)\n", "-",
                   "-", "", j[i].nhist);
            continue;
        }
        snprintf(bandtxt, sizeof bandtxt, "%s - %s",
                 html_dur(c, sizeof c, j[i].lo),
                 html_dur(d, sizeof d, j[i].hi));
        if (j[i].median > 0)
            snprintf(ch, sizeof ch, "%+.1f%%",
                     (j[i].v / j[i].median - 1) * 100);
        else
            snprintf(ch, sizeof ch, "-");
        fputs("  ", stdout);
        put_right(html_dur(a, sizeof a, j[i].v), 10, "  ");
        put_right(html_dur(b, sizeof b, j[i].median), 10, "  ");
        size_t bw = 0;
        for (const char *q = bandtxt; *q; q++)
            bw += ((unsigned char)*q & 0xc0) != 0x80;
        fputs(bandtxt, stdout);
        for (; bw < 23; bw++)
            fputc(' ', stdout);
        printf("  %8s  %s\n", ch,
               j[i].verdict == WITHIN  ? "within"
               : j[i].verdict == ABOVE ? "ABOVE the band"
                                       : "BELOW the band");
    }
    if (flagged)
        printf("\n%zu of %zu judged outside the band\n", flagged, judged);
    else
        printf("\nall %zu judged within the band\n", judged);
    if (judged < nj)
        printf("%zu with too little history (fewer than %zu earlier "
               "entries): not judged\n",
               nj - judged, need);
}

static void check_json(const struct opts *o, const struct history_entry *last,
                       const struct judged *j, size_t nj, size_t judged,
                       size_t flagged, size_t need)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    stageprof__sb_adds(&sb, "{\"stageprof_history\":1,\"db\":");
    stageprof__json_str(&sb, o->db, strlen(o->db));
    stageprof__sb_adds(&sb, ",\"entry\":");
    if (last != NULL) {
        json_entry_head(&sb, last);
        stageprof__sb_adds(&sb, "}");
    } else {
        stageprof__sb_adds(&sb, "null");
    }
    stageprof__sb_addf(&sb,
                       ",\"stat\":\"%s\",\"window\":%ld,\"k\":%.17g,"
                       "\"min_band\":%.17g,\"min_history\":%zu,"
                       "\"judged\":%zu,\"flagged\":%zu,"
                       "\"too_little_history\":%s,\"stages\":[",
                       history_stat_names[o->stat], o->window, o->k,
                       o->min_band, need, judged, flagged,
                       judged == 0 ? "true" : "false");
    for (size_t i = 0; i < nj; i++) {
        const struct judged *g = &j[i];
        stageprof__sb_adds(&sb, i ? ",{" : "{");
        if (g->key.runs) {
            stageprof__sb_adds(&sb, "\"runs\":true,\"name\":null,"
                                    "\"category\":null");
        } else {
            stageprof__sb_adds(&sb, "\"runs\":false,\"name\":");
            stageprof__json_str(&sb, g->key.name, g->key.name_len);
            stageprof__sb_adds(&sb, ",\"category\":");
            stageprof__json_str(&sb, g->key.cat, g->key.cat_len);
        }
        stageprof__sb_adds(&sb, ",\"value_ns\":");
        json_num(&sb, g->v);
        stageprof__sb_addf(&sb, ",\"history\":%zu,\"median_ns\":", g->nhist);
        json_num(&sb, g->median);
        stageprof__sb_adds(&sb, ",\"mad_ns\":");
        json_num(&sb, g->mad);
        stageprof__sb_adds(&sb, ",\"lo_ns\":");
        json_num(&sb, g->lo);
        stageprof__sb_adds(&sb, ",\"hi_ns\":");
        json_num(&sb, g->hi);
        stageprof__sb_adds(&sb, ",\"change\":");
        json_num(&sb, g->median > 0 ? g->v / g->median - 1 : NAN);
        stageprof__sb_addf(&sb, ",\"verdict\":\"%s\"}",
                           verdict_names[g->verdict]);
    }
    stageprof__sb_adds(&sb, "]}");
    json_print(&sb);
}

static int run_check(struct opts *o)
{
    struct history h;
    char err[4200];
    int rc = history_open(&h, o->db, 0, o->busy_ms, err, sizeof err);
    /* A missing file is a wrong path more often than a first run: fail.
     * An empty one is a history without entries yet. */
    if (rc != 0 && (rc < 0 || strncmp(err, "no history", 10) == 0)) {
        history_close(&h);
        fail(CLI_EXIT_USAGE, "%s", err);
    }
    struct history_entry *e = NULL;
    size_t n = 0;
    if (rc == 0)
        load_entries(&h, o, 0, CLI_EXIT_USAGE, &e, &n);
    size_t need =
        (size_t)o->window < MIN_HISTORY ? (size_t)o->window : MIN_HISTORY;
    if (n < 2) {
        history_close(&h);
        if (o->format == CLI_FORMAT_JSON)
            check_json(o, n ? &e[0] : NULL, NULL, 0, 0, 0, need);
        else
            printf("too little history to judge: %zu entr%s%s in %s (the "
                   "newest needs at least %zu before it)\n",
                   n, n == 1 ? "y" : "ies",
                   o->nlabels ? " carrying those labels" : "", o->db, need);
        history_entries_free(e, n);
        return CLI_EXIT_OK;
    }
    const struct history_entry *last = &e[n - 1];
    struct history_stage_id *s;
    size_t ns;
    if (history_entry_stages(&h, last->id, &s, &ns, err, sizeof err) != 0)
        fail(CLI_EXIT_USAGE, "%s", err);
    /* The stages in name order, then the runs. */
    struct judged *j = xrealloc(NULL, (ns + 1) * sizeof *j);
    size_t nj = 0, judged = 0, flagged = 0;
    for (size_t i = 0; i <= ns; i++) {
        struct judged *g = &j[nj];
        memset(g, 0, sizeof *g);
        if (i < ns) {
            g->key.name = s[i].name;
            g->key.name_len = s[i].name_len;
            g->key.cat = s[i].cat;
            g->key.cat_len = s[i].cat_len;
        } else {
            g->key.runs = 1;
        }
        uint64_t count;
        rc = history_value(&h, last->id, &g->key, o->stat, &g->v, &count, err,
                           sizeof err);
        if (rc < 0)
            fail(CLI_EXIT_USAGE, "%s", err);
        if (rc == 0)
            continue; /* the runs of a trace without any */
        judge(&h, o, e, n, g);
        judged += g->verdict != TOO_FEW;
        flagged += g->verdict == ABOVE || g->verdict == BELOW;
        nj++;
    }
    history_close(&h);
    if (o->format == CLI_FORMAT_JSON)
        check_json(o, last, j, nj, judged, flagged, need);
    else
        check_text(o, last, j, nj, judged, flagged, need);
    free(j);
    history_stage_ids_free(s, ns);
    history_entries_free(e, n);
    return flagged ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* The command                                                              */
/* ------------------------------------------------------------------------ */

int cmd_history(struct cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 &&
            (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        cli_usage_error(ctx, "wants a subcommand first: add, list, show or "
                             "check");
    }
    struct opts o;
    memset(&o, 0, sizeof o);
    int found = 0;
    for (size_t i = 0; i < sizeof sub_names / sizeof *sub_names; i++)
        if (strcmp(argv[1], sub_names[i]) == 0) {
            o.sub = (enum sub)i;
            found = 1;
        }
    if (!found) {
        char buf[CLI_PRINTABLE_MAX];
        cli_usage_error(ctx,
                        "unknown subcommand '%s' (add, list, show or check)",
                        cli_printable(buf, sizeof buf, argv[1]));
    }
    const char *env = getenv(DB_ENV);
    o.db = env != NULL && env[0] != '\0' ? env : DEFAULT_DB;
    o.busy_ms = DEFAULT_BUSY_MS;
    o.format = CLI_FORMAT_TEXT;
    o.window = DEFAULT_WINDOW;
    o.k = DEFAULT_K;
    o.min_band = DEFAULT_MIN_BAND;
    /* The subcommand's own argv: its name is argv[0] for getopt. */
    parse(ctx, &o, argc - 1, argv + 1);
    int rc;
    switch (o.sub) {
    case SUB_ADD:
        rc = run_add(ctx, &o, argc - 1, argv + 1);
        break;
    case SUB_LIST:
        rc = run_list(&o);
        break;
    case SUB_SHOW:
        rc = run_show(&o);
        break;
    default:
        rc = run_check(&o);
        break;
    }
    for (size_t i = 0; i < o.nlabels; i++) {
        free(o.labels[i].key);
        free(o.labels[i].value);
    }
    free(o.labels);
    return rc;
}
