/*
 * cmd_diff.c - `stageprof diff BASE NEW`: did a change make it slower?
 *
 * BASE and NEW are each a trace file or a directory of traces, one per
 * repetition (one whole execution of the workload). Each trace is read
 * once with the report's aggregation (agg.h), and reduced to figures per
 * stage and for whole runs: count, mean, p50, p95, p99 of that
 * repetition, plus throughput.
 *
 * The unit of inference is the repetition: runs inside one execution are
 * not independent. With at least STATS_MIN_REPS repetitions per side,
 * each statistic of each stage is compared across the repetition-level
 * values (stats.h): the bootstrap interval of the relative change of
 * their median, a Mann-Whitney U test, Holm's correction across the
 * stages; a stage is slower or faster when both agree. With one trace per
 * side, a block bootstrap over consecutive spans and runs gives the
 * interval instead (said to be optimistic); anything else is "too few to
 * judge". A side's figure is the median of its repetitions' values.
 *
 * --fail-on rules fire when the whole interval lies beyond their
 * threshold. Exit status: 0, 1 when a rule fired, 2 for bad usage, a rule
 * that does not parse, or inputs that cannot be compared.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "agg_impl.h"
#include "cli.h"
#include "diff.h"
#include "stats.h"
#include "trace_load.h"
#include "util/json.h"
#include "util/strbuf.h"

const char *const diff_stat_names[DIFF_NSTAT] = {"mean", "p50", "p95", "p99"};
/* The statistics' indexes in agg's percentiles (agg_pcts). */
static const int pct_index[DIFF_NSTAT] = {-1, 0, 2, 3};
static const enum stats_stat stat_kind[DIFF_NSTAT] = {
    STATS_STAT_MEAN, STATS_STAT_MEDIAN, STATS_STAT_P95, STATS_STAT_P99};

noreturn void diff_fail(const struct cli_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "stageprof %s: ", ctx->cmd ? ctx->cmd : "diff");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(CLI_EXIT_USAGE);
}

static void *xrealloc(const struct cli_ctx *ctx, void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        diff_fail(ctx, "out of memory");
    return q;
}

static void push(const struct cli_ctx *ctx, struct diff_vals *v, double x)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 16;
        v->v = xrealloc(ctx, v->v, v->cap * sizeof *v->v);
    }
    v->v[v->n++] = x;
}

/* Reading ----------------------------------------------------------------- */

/* The entry of stage (@name, @cat) (@kind), made when new. */
static struct diff_entry *entry_of(const struct cli_ctx *ctx, struct diff *d,
                                   int kind, const char *name, size_t name_len,
                                   const char *cat, size_t cat_len)
{
    /* kind, name, NUL, category (strmap adds the final NUL) */
    size_t klen = 1 + name_len + 1 + cat_len;
    char *key = xrealloc(ctx, NULL, klen);
    key[0] = (char)('0' + kind);
    memcpy(key + 1, name, name_len);
    key[1 + name_len] = '\0';
    memcpy(key + 2 + name_len, cat, cat_len);
    struct strmap_entry *e = strmap_get(d->map, key, klen);
    if (e == NULL)
        diff_fail(ctx, "out of memory");
    if (e->value == SIZE_MAX) {
        e->value = d->n;
        d->e = xrealloc(ctx, d->e, (d->n + 1) * sizeof *d->e);
        struct diff_entry *n = &d->e[d->n++];
        memset(n, 0, sizeof *n);
        n->kind = kind;
        n->name = e->key + 1;
        n->name_len = name_len;
        n->cat = e->key + 2 + name_len;
        n->cat_len = cat_len;
    }
    free(key);
    return &d->e[e->value];
}

/* One repetition's figures (@count, @a's stage or run statistics). */
static void add_rep(const struct cli_ctx *ctx, struct diff_entry *e, int side,
                    uint64_t count, int64_t total, const double *pct)
{
    struct diff_side *s = &e->side[side];
    s->count += count;
    s->reps++;
    for (int k = 0; k < DIFF_NSTAT; k++)
        push(ctx, &s->rep[k],
             pct_index[k] < 0 ? (double)total / (double)count
                              : pct[pct_index[k]]);
}

/* Per-run series in run order, for the single-trace comparison: each
 * stage's span durations, and the runs' durations. */
static void add_series(const struct cli_ctx *ctx, struct diff *d, int side,
                       const struct agg *a, const size_t *of_stage)
{
    struct diff_entry *runs = &d->e[0];
    for (size_t r = 0; r < a->nruns; r++) {
        const struct agg_run *run = &a->runs[r];
        if (run->has_bounds && run->end > run->begin)
            push(ctx, &runs->side[side].series,
                 (double)(run->end - run->begin));
        for (size_t i = 0; i < run->nitems; i++) {
            const struct run_item *it = &a->items[run->first + i];
            if (it->stage >= 0 && of_stage[it->stage] != SIZE_MAX &&
                it->end > it->start)
                push(ctx, &d->e[of_stage[it->stage]].side[side].series,
                     (double)(it->end - it->start));
        }
    }
}

void diff_add_rep(const struct cli_ctx *ctx, struct diff *d, int side,
                  char *const *paths, size_t npaths, int series)
{
    struct agg a;
    struct agg_opts opts;
    memset(&opts, 0, sizeof opts);
    if (agg_init(&a, &opts) != 0)
        diff_fail(ctx, "out of memory");
    d->files[side] = xrealloc(ctx, d->files[side],
                              (d->nfiles[side] + 1) * sizeof *d->files[side]);
    struct diff_file *f = &d->files[side][d->nfiles[side]];
    memset(f, 0, sizeof *f);
    for (size_t k = 0; k < npaths; k++) {
        char err[1024];
        struct tl_result res;
        cli_verbose(ctx, 1, "reading %s", paths[k]);
        if (tl_read(paths[k], agg_event, &a, &res, err, sizeof err) != 0)
            diff_fail(ctx, "%s: %s", d->side_name[side], err);
        if (res.dropped > 0)
            a.dropped += res.dropped;
        if (k == 0)
            f->res = res; /* the header of a repetition: its first file */
    }
    if (agg_finish(&a) != 0)
        diff_fail(ctx, "out of memory");
    f->path = npaths ? paths[0] : "";
    f->stages = a.nstages;
    f->runs = a.rs.count;
    f->throughput = a.rs.throughput;
    d->nfiles[side]++;
    /* Entries by index: the array moves as entries are added. */
    size_t *of_stage = xrealloc(ctx, NULL, (a.nstages + 1) * sizeof *of_stage);
    for (size_t i = 0; i < a.nstages; i++) {
        const struct agg_stage *st = a.stages[i];
        of_stage[i] = SIZE_MAX;
        /* stageprof's runs (async, category "run") are the runs entry. */
        if (st->count == 0 ||
            (st->async && st->cat_len == 3 && memcmp(st->cat, "run", 3) == 0))
            continue;
        struct diff_entry *e = entry_of(ctx, d, DIFF_STAGE, st->name,
                                        st->name_len, st->cat, st->cat_len);
        of_stage[i] = (size_t)(e - d->e);
        add_rep(ctx, e, side, st->count, st->total_ns, st->pct_ns);
    }
    if (a.rs.count > 0) {
        add_rep(ctx, &d->e[0], side, a.rs.count, a.rs.total_ns, a.rs.pct_ns);
        if (a.rs.throughput > 0) {
            push(ctx, &d->throughput.side[side].rep[0], a.rs.throughput);
            d->throughput.side[side].reps++;
            d->throughput.side[side].count += a.rs.count;
        }
    }
    if (series)
        add_series(ctx, d, side, &a, of_stage);
    free(of_stage);
    agg_fini(&a);
}

/* Comparing --------------------------------------------------------------- */

static double median_of(const struct diff_vals *v)
{
    double m = NAN;
    if (v->n > 0 && stats_median(v->v, v->n, NULL, &m) != 0)
        m = NAN;
    return m;
}

/* The comparison of one statistic of @e, by repetitions or too few. */
static void compare(struct diff *d, struct diff_entry *e, int k,
                    const struct stats_boot_opts *bo)
{
    struct stats_compare *c = &e->cmp[k];
    const struct diff_vals *a = &e->side[0].rep[k], *b = &e->side[1].rep[k];
    memset(c, 0, sizeof *c);
    c->na = a->n;
    c->nb = b->n;
    if (d->method == DIFF_REPS) {
        (void)stats_compare(a->v, a->n, b->v, b->n, bo, c);
        return;
    }
    c->change.point = c->change.lo = c->change.hi = NAN;
    c->mw.p = c->p_adj = 1;
    c->verdict = STATS_TOO_FEW;
}

/*
 * One trace a side: every statistic of @e from one block bootstrap of its
 * series (the resamples are shared). The interval alone decides: there is
 * no test across runs.
 */
static void compare_block(struct diff_entry *e,
                          const struct stats_boot_opts *bo)
{
    const struct diff_vals *sa = &e->side[0].series, *sb = &e->side[1].series;
    struct stats_change ch[DIFF_NSTAT];
    int rc = sa->n < 2 || sb->n < 2
                 ? STATS_ETOOFEW
                 : stats_block_boot_changes(sa->v, sa->n, sb->v, sb->n,
                                            stat_kind, DIFF_NSTAT, bo, ch);
    for (int k = 0; k < DIFF_NSTAT; k++) {
        struct stats_compare *c = &e->cmp[k];
        memset(c, 0, sizeof *c);
        c->na = c->nb = 1;
        c->mw.p = c->p_adj = NAN;
        if (rc != 0) {
            c->change.point = c->change.lo = c->change.hi = NAN;
            c->verdict = rc == STATS_ETOOFEW ? STATS_TOO_FEW : STATS_INVALID;
            c->status = rc;
            continue;
        }
        c->change = ch[k];
        c->verdict = c->change.lo > 0   ? STATS_SLOWER
                     : c->change.hi < 0 ? STATS_FASTER
                                        : STATS_NO_CHANGE;
    }
}

/*
 * The smallest two-sided p an exact Mann-Whitney test can give @na
 * against @nb values: both orderings of complete separation, 2 / C(na+nb,
 * na).
 */
static double min_p(size_t na, size_t nb)
{
    double c = 1;
    for (size_t i = 1; i <= nb; i++)
        c = c * (double)(na + i) / (double)i;
    return fmin(1.0, 2.0 / c);
}

/*
 * Whether Holm's correction over @m comparisons leaves any verdict within
 * reach of the repetitions at hand; else the fewest repetitions per side
 * that would (into d->reps_needed).
 */
static void reachable(struct diff *d, size_t m)
{
    if (m == 0 || min_p(d->nfiles[0], d->nfiles[1]) * (double)m < STATS_ALPHA)
        return;
    size_t n = STATS_MIN_REPS;
    while (min_p(n, n) * (double)m >= STATS_ALPHA)
        n++;
    d->reps_needed = n;
}

static void compare_all(const struct cli_ctx *ctx, struct diff *d)
{
    struct stats_boot_opts bo = {d->resamples, 0, d->seed, 0};
    size_t m = d->n;
    struct stats_compare *col = xrealloc(ctx, NULL, m * sizeof *col);
    for (int k = 0; k < DIFF_NSTAT; k++) {
        size_t n = 0;
        for (size_t i = 0; i < d->n; i++) {
            struct diff_entry *e = &d->e[i];
            for (int s = 0; s < 2; s++)
                e->fig[s][k] = median_of(&e->side[s].rep[k]);
            if (!e->side[0].reps || !e->side[1].reps)
                continue;
            if (d->method == DIFF_BLOCK && k == 0)
                compare_block(e, &bo);
            else if (d->method != DIFF_BLOCK)
                compare(d, e, k, &bo);
            col[n++] = e->cmp[k];
        }
        /* Holm across the stages (and runs) for this statistic. */
        if (d->method == DIFF_REPS && k == 0)
            reachable(d, n);
        if (d->method == DIFF_REPS && n > 0) {
            if (stats_verdicts(col, n, 0) != 0)
                diff_fail(ctx, "out of memory");
            n = 0;
            for (size_t i = 0; i < d->n; i++) {
                struct diff_entry *e = &d->e[i];
                if (e->side[0].reps && e->side[1].reps)
                    e->cmp[k] = col[n++];
            }
        }
    }
    free(col);
    /* Throughput: higher is better; one value per repetition. */
    struct diff_entry *t = &d->throughput;
    for (int s = 0; s < 2; s++)
        t->fig[s][0] = median_of(&t->side[s].rep[0]);
    memset(&t->cmp[0], 0, sizeof t->cmp[0]);
    if (d->method == DIFF_REPS)
        (void)stats_compare(t->side[0].rep[0].v, t->side[0].rep[0].n,
                            t->side[1].rep[0].v, t->side[1].rep[0].n, &bo,
                            &t->cmp[0]);
    else {
        t->cmp[0].change.point = t->fig[1][0] / t->fig[0][0] - 1;
        t->cmp[0].change.lo = t->cmp[0].change.hi = NAN;
        t->cmp[0].verdict = STATS_TOO_FEW;
    }
}

/* Rules ------------------------------------------------------------------- */

static const char rule_grammar[] =
    "RULE is STAT:+N% (any stage), stage=NAME,STAT:+N%, runs.STAT:+N% or\n"
    "throughput:-N%, with STAT one of mean, p50, p95, p99 and N a number\n"
    "of percent (a sign: + slower by more than N%, - dropped by more);\n"
    "e.g. 'p95:+5%', 'stage=inference,p99:+10%', 'runs.p50:+3%',\n"
    "'throughput:-3%'";

/* Parse @text into @r; 0, or -1 with the reason in @why. */
static int parse_rule(const char *text, struct diff_rule *r, char *why,
                      size_t len)
{
    memset(r, 0, sizeof *r);
    r->text = text;
    const char *p = text;
    if (strncmp(p, "stage=", 6) == 0) {
        const char *comma = strrchr(p, ',');
        if (comma == NULL || comma == p + 6) {
            snprintf(why, len, "stage=NAME must be followed by ,STAT:...");
            return -1;
        }
        r->stage = p + 6;
        r->stage_len = (size_t)(comma - (p + 6));
        r->target = DIFF_RULE_STAGE;
        p = comma + 1;
    } else if (strncmp(p, "runs.", 5) == 0) {
        r->target = DIFF_RULE_RUNS;
        p += 5;
    } else if (strncmp(p, "throughput:", 11) == 0) {
        r->target = DIFF_RULE_THROUGHPUT;
        p += 10;
    } else {
        r->target = DIFF_RULE_ANY;
    }
    if (r->target != DIFF_RULE_THROUGHPUT) {
        r->stat = -1;
        for (int k = 0; k < DIFF_NSTAT; k++) {
            size_t n = strlen(diff_stat_names[k]);
            if (strncmp(p, diff_stat_names[k], n) == 0 && p[n] == ':') {
                r->stat = k;
                p += n;
            }
        }
        if (r->stat < 0) {
            snprintf(why, len,
                     "no statistic (mean, p50, p95 or p99) "
                     "before ':'");
            return -1;
        }
    }
    if (*p++ != ':' || (*p != '+' && *p != '-')) {
        snprintf(why, len, "the threshold must start with + or -");
        return -1;
    }
    int neg = *p++ == '-';
    char *end;
    errno = 0;
    double v = (*p >= '0' && *p <= '9') ? strtod(p, &end) : -1;
    if (v < 0 || errno != 0 || !isfinite(v) || v > 1000 ||
        strcmp(end, "%") != 0) {
        snprintf(why, len,
                 "the threshold must be a number of percent "
                 "from 0 to 1000 followed by %%");
        return -1;
    }
    r->threshold = (neg ? -v : v) / 100.0;
    if (neg && v == 0)
        r->threshold = -0.0;
    if (r->target == DIFF_RULE_THROUGHPUT && !neg) {
        snprintf(why, len, "a throughput rule fires on a drop: use -N%%");
        return -1;
    }
    return 0;
}

static int stage_named(const struct diff_entry *e, const struct diff_rule *r)
{
    return e->name_len == r->stage_len &&
           memcmp(e->name, r->stage, r->stage_len) == 0;
}

static void rule_hit(const struct cli_ctx *ctx, struct diff_rule *r,
                     const struct diff_entry *e, int k)
{
    r->hits = xrealloc(ctx, r->hits, (r->nhits + 1) * sizeof *r->hits);
    r->hits[r->nhits].e = e;
    r->hits[r->nhits].stat = k;
    r->nhits++;
}

/* Check @r on every entry it names; it fires when one is beyond. */
static void apply_rule(const struct cli_ctx *ctx, struct diff *d,
                       struct diff_rule *r)
{
    if (r->target == DIFF_RULE_THROUGHPUT) {
        const struct stats_compare *c = &d->throughput.cmp[0];
        r->matched = 1;
        r->judged = c->verdict != STATS_TOO_FEW && c->verdict != STATS_INVALID;
        if (stats_gate_fires(&c->change, r->threshold))
            rule_hit(ctx, r, &d->throughput, 0);
        return;
    }
    for (size_t i = 0; i < d->n; i++) {
        const struct diff_entry *e = &d->e[i];
        if (r->target == DIFF_RULE_RUNS
                ? i != 0
                : e->kind != DIFF_STAGE ||
                      (r->target == DIFF_RULE_STAGE && !stage_named(e, r)))
            continue;
        if (!e->side[0].reps || !e->side[1].reps)
            continue;
        r->matched = 1;
        const struct stats_compare *c = &e->cmp[r->stat];
        if (c->verdict != STATS_TOO_FEW && c->verdict != STATS_INVALID)
            r->judged = 1;
        if (stats_gate_fires(&c->change, r->threshold))
            rule_hit(ctx, r, e, r->stat);
    }
}

/* Environment ------------------------------------------------------------- */

/* Field @f of a file's header. */
static const char *meta_field(const struct tl_meta *m, int f, char *buf,
                              size_t len)
{
    switch (f) {
    case 0:
        return m->host;
    case 1:
        return m->cpu_model;
    case 2:
        if (m->cores < 0)
            return "";
        snprintf(buf, len, "%lld", m->cores);
        return buf;
    case 3:
        return m->kernel;
    case 4:
        return m->version;
    case 5:
        return m->clock;
    case 6:
        return m->config;
    default:
        return m->command_line;
    }
}

const char *const diff_env_fields[DIFF_NENV] = {
    "host",    "cpu_model", "cores",  "kernel",
    "version", "clock",     "config", "command_line"};

/* The distinct values of field @f on @side, "; "-joined, into @out. */
static void side_values(const struct diff *d, int side, int f, char *out,
                        size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < d->nfiles[side]; i++) {
        char num[32];
        const struct tl_meta *m = &d->files[side][i].res.meta;
        const char *v = m->present ? meta_field(m, f, num, sizeof num) : "";
        if (v[0] == '\0')
            v = "(unknown)";
        /* Each distinct value once. */
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) {
            const struct tl_meta *o = &d->files[side][j].res.meta;
            char n2[32];
            const char *w = o->present ? meta_field(o, f, n2, sizeof n2) : "";
            seen = strcmp(w[0] ? w : "(unknown)", v) == 0;
        }
        if (seen)
            continue;
        size_t at = strlen(out);
        snprintf(out + at, len - at, "%s%s", at ? "; " : "", v);
    }
}

/* Whether ", "-separated item @item (of length @n) is in @list. */
static int has_item(const char *list, const char *item, size_t n)
{
    for (const char *p = list; *p;) {
        const char *q = strstr(p, ", ");
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (len == n && memcmp(p, item, n) == 0)
            return 1;
        p += len + (q ? 2 : 0);
    }
    return 0;
}

/* The items of @a missing from @b, ", "-joined into @out. */
static void items_missing(const char *a, const char *b, char *out, size_t cap)
{
    out[0] = '\0';
    for (const char *p = a; *p;) {
        const char *q = strstr(p, ", ");
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (!has_item(b, p, len)) {
            size_t at = strlen(out);
            snprintf(out + at, cap - at, "%s%.*s", at ? ", " : "", (int)len, p);
        }
        p += len + (q ? 2 : 0);
    }
}

static void environment(const struct cli_ctx *ctx, struct diff *d)
{
    for (int f = 0; f < DIFF_NENV; f++) {
        char a[4096], b[4096];
        side_values(d, 0, f, a, sizeof a);
        side_values(d, 1, f, b, sizeof b);
        /* One configuration a side: only the settings that differ. */
        if (f == 6 && strcmp(a, b) != 0 && !strstr(a, "; ") &&
            !strstr(b, "; ")) {
            char x[4096], y[4096];
            items_missing(a, b, x, sizeof x);
            items_missing(b, a, y, sizeof y);
            snprintf(a, sizeof a, "%s", x);
            snprintf(b, sizeof b, "%s", y);
        }
        struct diff_env *e = &d->env[f];
        e->differs = strcmp(a, b) != 0;
        e->base = strdup(a);
        e->new_ = strdup(b);
        if (e->base == NULL || e->new_ == NULL)
            diff_fail(ctx, "out of memory");
    }
    d->cross_machine = d->env[0].differs || d->env[1].differs;
    /* Producers: traces of different tools compare their common stages;
     * a displayTimeUnit changes how viewers show times, never ts. */
    const char *p0 = d->files[0][0].res.producer;
    const char *u0 = d->files[0][0].res.display_unit;
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < d->nfiles[s]; i++) {
            if (strcmp(d->files[s][i].res.producer, p0) != 0)
                d->mixed_producers = 1;
            if (strcmp(d->files[s][i].res.display_unit, u0) != 0)
                d->mixed_units = 1;
        }
    if (d->mixed_units)
        cli_warn(ctx, "the traces declare different displayTimeUnit values: "
                      "that changes only how viewers show times; ts is read "
                      "as microseconds on both sides");
}

/* Ordering ---------------------------------------------------------------- */

/* Regressions first, then improvements, then the rest; within, the
 * largest change of the median first. */
static int rank(const struct diff_entry *e)
{
    if (!e->side[0].reps || !e->side[1].reps)
        return 5;
    switch (e->cmp[1].verdict) {
    case STATS_SLOWER:
        return 0;
    case STATS_FASTER:
        return 1;
    case STATS_NO_CHANGE:
        return 2;
    case STATS_TOO_FEW:
        return 3;
    default:
        return 4;
    }
}

static int cmp_entry(const void *x, const void *y)
{
    const struct diff_entry *a = *(const struct diff_entry *const *)x;
    const struct diff_entry *b = *(const struct diff_entry *const *)y;
    int ra = rank(a), rb = rank(b);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    double ca = fabs(a->cmp[1].change.point), cb = fabs(b->cmp[1].change.point);
    if (isnan(ca))
        ca = -1;
    if (isnan(cb))
        cb = -1;
    if (ca != cb)
        return ca > cb ? -1 : 1;
    int c = strcmp(a->name, b->name);
    return c ? c : strcmp(a->cat, b->cat);
}

/* The command ------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: stageprof diff BASE NEW [options]\n"
            "\n"
            "Compare two sets of traces per stage and for whole runs, and\n"
            "say what changed beyond noise. BASE and NEW are each a trace\n"
            "file or a directory of traces, one per repetition of the same\n"
            "workload (3 or more per side for a verdict; one per side gives\n"
            "an optimistic run-level interval).\n"
            "\n"
            "  --fail-on RULE     exit 1 when RULE fires (repeatable)\n"
            "  --format FMT       text (default), json or md\n"
            "  --html FILE        also write a self-contained HTML page\n"
            "  --seed N           bootstrap seed (default 1)\n"
            "  --resamples N      bootstrap resamples, 100 to 100000 "
            "(2000; 1000\n"
            "                     with one trace a side)\n"
            "\n"
            "%s\n"
            "\n"
            "A rule fires when the whole 95%% interval of the change lies\n"
            "beyond its threshold, so noise alone cannot fire it.\n"
            "\n"
            "Exit status: 0 no rule fired; 1 a rule fired; 2 bad usage, a\n"
            "rule that does not parse, or inputs that cannot be read.\n",
            rule_grammar);
}

void diff_free(struct diff *d)
{
    for (size_t i = 0; i < d->n; i++)
        for (int s = 0; s < 2; s++) {
            for (int k = 0; k < DIFF_NSTAT; k++)
                free(d->e[i].side[s].rep[k].v);
            free(d->e[i].side[s].series.v);
        }
    for (int s = 0; s < 2; s++) {
        free(d->throughput.side[s].rep[0].v);
        free(d->files[s]);
        cli_inputs_free(&d->in[s]);
    }
    for (int f = 0; f < DIFF_NENV; f++) {
        free(d->env[f].base);
        free(d->env[f].new_);
    }
    for (size_t i = 0; i < d->nrules; i++)
        free(d->rules[i].hits);
    free(d->rules);
    free(d->order);
    free(d->e);
    strmap_free(d->map);
}

void diff_init(const struct cli_ctx *ctx, struct diff *d)
{
    memset(d, 0, sizeof *d);
    d->seed = 1;
    d->side_name[0] = "base side";
    d->side_name[1] = "new side";
    if ((d->map = strmap_new()) == NULL)
        diff_fail(ctx, "out of memory");
    /* The runs are entry 0 (their key's kind keeps a stage named "runs"
     * apart). */
    (void)entry_of(ctx, d, DIFF_RUNS, "runs", 4, "", 0);
}

void diff_finish(const struct cli_ctx *ctx, struct diff *d)
{
    size_t n0 = d->nfiles[0], n1 = d->nfiles[1];
    d->method = n0 >= STATS_MIN_REPS && n1 >= STATS_MIN_REPS ? DIFF_REPS
                : n0 == 1 && n1 == 1                         ? DIFF_BLOCK
                                                             : DIFF_TOO_FEW;
    if (d->resamples == 0)
        d->resamples = d->method == DIFF_BLOCK ? DIFF_BLOCK_RESAMPLES
                                               : STATS_BOOT_RESAMPLES;
    if (d->method == DIFF_BLOCK) {
        size_t n = d->e[0].side[0].series.n;
        d->block_len = stats_block_len(n ? n : 1);
    }
    environment(ctx, d);
    compare_all(ctx, d);
    for (size_t i = 0; i < d->nrules; i++)
        apply_rule(ctx, d, &d->rules[i]);

    /* Order: stages by rank, then runs and throughput after them. */
    d->order = xrealloc(ctx, NULL, d->n * sizeof *d->order);
    for (size_t i = 1; i < d->n; i++)
        if (d->e[i].side[0].reps && d->e[i].side[1].reps)
            d->order[d->norder++] = &d->e[i];
    qsort(d->order, d->norder, sizeof *d->order, cmp_entry);
    d->common = d->norder;
    for (size_t i = 1; i < d->n; i++)
        if (!d->e[i].side[0].reps || !d->e[i].side[1].reps)
            d->order[d->norder++] = &d->e[i];
    int fired = 0;
    for (size_t i = 0; i < d->nrules; i++)
        fired |= d->rules[i].nhits > 0;
    d->exit_status = fired ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

int cmd_diff(struct cli_ctx *ctx, int argc, char **argv)
{
    enum {
        OPT_FAIL_ON = CLI_OPT_COMMAND,
        OPT_FORMAT,
        OPT_HTML,
        OPT_SEED,
        OPT_RESAMPLES
    };
    static const char shortopts[] = ":" CLI_GLOBAL_SHORTOPTS;
    static const struct option longopts[] = {
        {"fail-on", required_argument, NULL, OPT_FAIL_ON},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"html", required_argument, NULL, OPT_HTML},
        {"seed", required_argument, NULL, OPT_SEED},
        {"resamples", required_argument, NULL, OPT_RESAMPLES},
        CLI_GLOBAL_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    struct diff d;
    diff_init(ctx, &d); /* resamples 0: STATS_BOOT_ or DIFF_BLOCK_RESAMPLES */
    enum cli_format format = CLI_FORMAT_TEXT;
    const char *html = NULL;
    int c;
    cli_getopt_reset();
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return CLI_EXIT_OK;
        case OPT_FAIL_ON: {
            char why[200];
            d.rules = xrealloc(ctx, d.rules, (d.nrules + 1) * sizeof *d.rules);
            if (parse_rule(optarg, &d.rules[d.nrules], why, sizeof why) != 0) {
                char buf[CLI_PRINTABLE_MAX];
                diff_fail(ctx, "--fail-on '%s': %s\n%s",
                          cli_printable(buf, sizeof buf, optarg), why,
                          rule_grammar);
            }
            d.nrules++;
            break;
        }
        case OPT_FORMAT:
            format = cli_parse_format(
                ctx, optarg, CLI_FORMAT_TEXT | CLI_FORMAT_JSON | CLI_FORMAT_MD);
            break;
        case OPT_HTML:
            if (optarg[0] == '\0')
                cli_usage_error(ctx, "--html wants a file, not ''");
            html = optarg;
            break;
        case OPT_SEED:
            d.seed =
                (uint64_t)cli_parse_number(ctx, "seed", optarg, 0, LONG_MAX);
            break;
        case OPT_RESAMPLES:
            d.resamples = (unsigned)cli_parse_number(ctx, "resamples", optarg,
                                                     100, 100000);
            break;
        default:
            cli_global_option(ctx, c, argv, shortopts);
            break;
        }
    }
    if (argc - optind != 2)
        cli_usage_error(ctx, "wants two inputs, BASE and NEW (%d given)",
                        argc - optind);
    d.arg[0] = argv[optind];
    d.arg[1] = argv[optind + 1];
    /* Each file of a side is a repetition. One a side means the run-level
     * fallback, which needs the series. */
    char err[4200];
    for (int s = 0; s < 2; s++)
        if (cli_inputs_add(ctx, &d.in[s], d.arg[s], err, sizeof err) != 0)
            diff_fail(ctx, "%s: %s", d.side_name[s], err);
    int series = d.in[0].n == 1 && d.in[1].n == 1;
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < d.in[s].n; i++)
            diff_add_rep(ctx, &d, s, &d.in[s].paths[i], 1, series);
    diff_finish(ctx, &d);
    if (d.common == 0)
        cli_warn(ctx, "no stage in common: the traces are of unrelated "
                      "workloads, or a side is empty");
    if (html != NULL && diff_html(&d, html, err, sizeof err) != 0)
        diff_fail(ctx, "%s", err);
    if (format == CLI_FORMAT_JSON)
        diff_print_json(ctx, &d);
    else
        diff_print_text(ctx, &d, format == CLI_FORMAT_MD);
    int rc = d.exit_status;
    diff_free(&d);
    return rc;
}
