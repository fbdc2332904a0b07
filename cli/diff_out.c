/*
 * diff_out.c - what `stageprof diff` prints: the terminal table (or
 * Markdown for a pull request) and the JSON document.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "diff.h"
#include "util/json.h"
#include "util/strbuf.h"

const char *diff_verdict(const struct diff *d, const struct diff_entry *e,
                         int k)
{
    if (!e->side[0].reps || !e->side[1].reps)
        return e->side[0].reps ? "only in base" : "only in new";
    enum stats_verdict v = e->cmp[k].verdict;
    if (e == &d->throughput && v == STATS_SLOWER)
        return "higher";
    if (e == &d->throughput && v == STATS_FASTER)
        return "lower";
    return stats_verdict_name(v);
}

static const char *method_text(const struct diff *d)
{
    switch (d->method) {
    case DIFF_REPS:
        return "repetitions";
    case DIFF_BLOCK:
        return "block_bootstrap";
    default:
        return "too_few";
    }
}

const char *diff_pct(char *buf, size_t len, double v, const char *unknown)
{
    if (!isfinite(v))
        snprintf(buf, len, "%s", unknown);
    else
        snprintf(buf, len, "%+.1f%%", v * 100);
    return buf;
}

static const char *pct(char *buf, size_t len, double v)
{
    return diff_pct(buf, len, v, "-");
}

/* A duration in ms, 3 decimals; "-" when unknown. */
static const char *ms(char *buf, size_t len, double ns)
{
    if (!isfinite(ns))
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.3f", ns / 1e6);
    return buf;
}

/* The entry's printable name: "name (category)", or "runs". */
static char *label(char *buf, size_t len, const struct diff *d,
                   const struct diff_entry *e)
{
    char n[CLI_PRINTABLE_MAX], c[CLI_PRINTABLE_MAX];
    if (e == &d->e[0])
        snprintf(buf, len, "runs (end to end)");
    else if (e == &d->throughput)
        snprintf(buf, len, "throughput (runs/s)");
    else if (e->cat_len)
        snprintf(buf, len, "%s (%s)", cli_printable(n, sizeof n, e->name),
                 cli_printable(c, sizeof c, e->cat));
    else
        snprintf(buf, len, "%s", cli_printable(n, sizeof n, e->name));
    return buf;
}

/* Text -------------------------------------------------------------------- */

static void text_header(const struct diff *d, int md)
{
    for (int s = 0; s < 2; s++) {
        char a[CLI_PRINTABLE_MAX];
        printf("%s%s: %s (%zu trace%s, %s)\n", md ? "- " : "",
               s ? "new " : "base", cli_printable(a, sizeof a, d->arg[s]),
               d->nfiles[s], d->nfiles[s] == 1 ? "" : "s",
               d->files[s][0].res.producer);
    }
    if (d->method == DIFF_REPS)
        printf("%smethod: %zu against %zu repetitions: each repetition's "
               "statistic, the sides' medians compared; 95%% bootstrap "
               "interval (%u resamples, seed %llu), Mann-Whitney U with "
               "Holm's correction across stages\n",
               md ? "- " : "", d->nfiles[0], d->nfiles[1], d->resamples,
               (unsigned long long)d->seed);
    else if (d->method == DIFF_BLOCK)
        printf("%smethod: one trace per side: 95%% block bootstrap over "
               "consecutive spans and runs (blocks of %zu, %u resamples, "
               "seed %llu). The interval is OPTIMISTIC: runs of one "
               "execution are not independent; run 3 or more repetitions "
               "per side for a verdict you can trust\n",
               md ? "- " : "", d->block_len, d->resamples,
               (unsigned long long)d->seed);
    else
        printf("%smethod: %zu against %zu repetitions: TOO FEW TO JUDGE "
               "(3 or more per side, or one trace per side for a run-level "
               "interval); figures only\n",
               md ? "- " : "", d->nfiles[0], d->nfiles[1]);
    if (d->reps_needed)
        printf("%snote: with %zu against %zu repetitions and %zu stages "
               "compared, no change can pass the test after Holm's "
               "correction (its smallest p is 2/C(%zu,%zu)); verdicts stay "
               "\"no change\" while --fail-on rules still judge by the "
               "interval. Run %zu or more repetitions per side for "
               "verdicts\n",
               md ? "- " : "", d->nfiles[0], d->nfiles[1], d->common + 1,
               d->nfiles[0] + d->nfiles[1], d->nfiles[0], d->reps_needed);
    if (d->cross_machine)
        printf("%sWARNING: the sides ran on different machines: timings "
               "are not comparable\n",
               md ? "- **" : "");
    for (int f = 0; f < DIFF_NENV; f++)
        if (d->env[f].differs)
            printf("%s%s differs: base %s | new %s\n", md ? "- " : "",
                   diff_env_fields[f], d->env[f].base, d->env[f].new_);
    if (d->mixed_producers)
        printf("%sWARNING: traces of different producers; only the stages "
               "both sides have are compared\n",
               md ? "- " : "");
}

static void text_entry(const struct diff *d, const struct diff_entry *e,
                       int color)
{
    char l[200], b1[32], b2[32], b3[32], b4[32], b5[32];
    const char *v = diff_verdict(d, e, e == &d->throughput ? 0 : DIFF_P50);
    const char *on = "", *off = "";
    if (color && (strcmp(v, "slower") == 0 || strcmp(v, "lower") == 0))
        on = "\033[31m", off = "\033[0m";
    else if (color && (strcmp(v, "faster") == 0 || strcmp(v, "higher") == 0))
        on = "\033[32m", off = "\033[0m";
    printf("%s%-48s %s%s\n", on, label(l, sizeof l, d, e), v, off);
    if (e == &d->throughput) {
        const struct stats_compare *c = &e->cmp[0];
        printf(
            "  %-6s %13.2f -> %13.2f %11s %8s  [%s, %s]\n", "median",
            e->fig[0][0], e->fig[1][0], "", pct(b1, sizeof b1, c->change.point),
            pct(b2, sizeof b2, c->change.lo), pct(b3, sizeof b3, c->change.hi));
        return;
    }
    printf("  %-6s %13llu -> %13llu\n", "count",
           (unsigned long long)e->side[0].count,
           (unsigned long long)e->side[1].count);
    if (!e->side[0].reps || !e->side[1].reps)
        return;
    for (int k = 0; k < DIFF_NSTAT; k++) {
        const struct stats_compare *c = &e->cmp[k];
        printf("  %-6s %10s ms -> %10s ms %+11.3f ms %8s  [%s, %s]\n",
               diff_stat_names[k], ms(b1, sizeof b1, e->fig[0][k]),
               ms(b2, sizeof b2, e->fig[1][k]),
               (e->fig[1][k] - e->fig[0][k]) / 1e6,
               pct(b3, sizeof b3, c->change.point),
               pct(b4, sizeof b4, c->change.lo),
               pct(b5, sizeof b5, c->change.hi));
    }
}

/* A Markdown table cell: "base → new (+x%)". */
static void md_cell(const struct diff_entry *e, int k)
{
    char b1[32], b2[32], b3[32];
    printf(" %s → %s (%s) |", ms(b1, sizeof b1, e->fig[0][k]),
           ms(b2, sizeof b2, e->fig[1][k]),
           pct(b3, sizeof b3, e->cmp[k].change.point));
}

static void md_row(const struct diff *d, const struct diff_entry *e)
{
    char l[200];
    /* Pipes inside a name would split the cell. */
    for (char *p = label(l, sizeof l, d, e); *p; p++)
        if (*p == '|')
            *p = '/';
    printf("| %s | %s | %llu → %llu |", l, diff_verdict(d, e, DIFF_P50),
           (unsigned long long)e->side[0].count,
           (unsigned long long)e->side[1].count);
    for (int k = 0; k < DIFF_NSTAT; k++) {
        if (e->side[0].reps && e->side[1].reps)
            md_cell(e, k);
        else
            printf(" |");
    }
    printf("\n");
}

static void rules_text(const struct diff *d, int md)
{
    for (size_t i = 0; i < d->nrules; i++) {
        const struct diff_rule *r = &d->rules[i];
        char q[CLI_PRINTABLE_MAX];
        cli_printable(q, sizeof q, r->text);
        if (r->nhits == 0) {
            printf("%sgate: %s '%s'%s\n", md ? "- " : "",
                   !r->matched  ? "nothing to judge for"
                   : !r->judged ? "not judged (too few repetitions):"
                                : "passed",
                   q, !r->matched ? " (no such stage on both sides)" : "");
            continue;
        }
        for (size_t h = 0; h < r->nhits; h++) {
            const struct diff_hit *hit = &r->hits[h];
            const struct stats_change *c = &hit->e->cmp[hit->stat].change;
            char l[200], b1[32], b2[32], b3[32], b4[32];
            printf("%sgate: FIRED '%s' on %s: %s %s [%s, %s], beyond %s\n",
                   md ? "- **" : "", q, label(l, sizeof l, d, hit->e),
                   hit->e == &d->throughput ? "median"
                                            : diff_stat_names[hit->stat],
                   pct(b1, sizeof b1, c->point), pct(b2, sizeof b2, c->lo),
                   pct(b3, sizeof b3, c->hi), pct(b4, sizeof b4, r->threshold));
        }
    }
}

void diff_print_text(const struct cli_ctx *ctx, const struct diff *d, int md)
{
    int color = !md && cli_use_color(ctx, stdout);
    if (md)
        printf("## stageprof diff\n\n");
    text_header(d, md);
    printf("\n");
    if (md) {
        printf("| stage | verdict | count |");
        for (int k = 0; k < DIFF_NSTAT; k++)
            printf(" %s ms |", diff_stat_names[k]);
        printf("\n|---|---|---|---|---|---|---|\n");
    }
    for (size_t i = 0; i < d->common; i++)
        md ? md_row(d, d->order[i]) : text_entry(d, d->order[i], color);
    md ? md_row(d, &d->e[0]) : text_entry(d, &d->e[0], color);
    if (md) {
        char b1[32], b2[32], b3[32];
        const struct diff_entry *t = &d->throughput;
        printf("| throughput (runs/s) | %s | | %.2f → %.2f (%s) [%s, %s] "
               "| | | |\n",
               diff_verdict(d, t, 0), t->fig[0][0], t->fig[1][0],
               pct(b1, sizeof b1, t->cmp[0].change.point),
               pct(b2, sizeof b2, t->cmp[0].change.lo),
               pct(b3, sizeof b3, t->cmp[0].change.hi));
    } else {
        text_entry(d, &d->throughput, color);
    }
    for (int s = 0; s < 2; s++) {
        int any = 0;
        for (size_t i = d->common; i < d->norder; i++) {
            const struct diff_entry *e = d->order[i];
            if (!e->side[s].reps)
                continue;
            char l[200];
            printf("%s%s%s",
                   any  ? ", "
                   : md ? "\n- "
                        : "\n",
                   any ? ""
                   : s ? "only in new: "
                       : "only in base: ",
                   label(l, sizeof l, d, e));
            any = 1;
        }
        if (any)
            printf("\n");
    }
    if (d->nrules) {
        printf("\n");
        rules_text(d, md);
    }
}

/* JSON -------------------------------------------------------------------- */

static void jnum(struct strbuf *sb, double v)
{
    if (isfinite(v))
        stageprof__sb_addf(sb, "%.17g", v);
    else
        stageprof__sb_adds(sb, "null");
}

static void jstr(struct strbuf *sb, const char *s, size_t len)
{
    stageprof__json_str(sb, s, len);
}

static void json_side(struct strbuf *sb, const struct diff_entry *e, int s)
{
    stageprof__sb_addf(sb, "{\"count\":%llu,\"repetitions\":%zu",
                       (unsigned long long)e->side[s].count, e->side[s].reps);
    for (int k = 0; k < DIFF_NSTAT; k++) {
        stageprof__sb_addf(sb, ",\"%s_ns\":", diff_stat_names[k]);
        jnum(sb, e->side[s].reps ? e->fig[s][k] : NAN);
    }
    stageprof__sb_adds(sb, "}");
}

static void json_change(struct strbuf *sb, const struct diff_entry *e, int k)
{
    const struct stats_compare *c = &e->cmp[k];
    stageprof__sb_adds(sb, "{\"abs_ns\":");
    jnum(sb, e->fig[1][k] - e->fig[0][k]);
    stageprof__sb_adds(sb, ",\"rel\":");
    jnum(sb, c->change.point);
    stageprof__sb_adds(sb, ",\"lo\":");
    jnum(sb, c->change.lo);
    stageprof__sb_adds(sb, ",\"hi\":");
    jnum(sb, c->change.hi);
    stageprof__sb_adds(sb, ",\"p\":");
    jnum(sb, c->mw.p);
    stageprof__sb_adds(sb, ",\"p_holm\":");
    jnum(sb, c->p_adj);
    stageprof__sb_addf(sb, ",\"verdict\":\"%s\"}",
                       stats_verdict_name(c->verdict));
}

static void json_entry(struct strbuf *sb, const struct diff *d,
                       const struct diff_entry *e)
{
    stageprof__sb_adds(sb, "{\"name\":");
    jstr(sb, e->name, e->name_len);
    stageprof__sb_adds(sb, ",\"category\":");
    jstr(sb, e->cat, e->cat_len);
    stageprof__sb_adds(sb, ",\"verdict\":");
    const char *v = diff_verdict(d, e, DIFF_P50);
    jstr(sb, v, strlen(v));
    stageprof__sb_adds(sb, ",\"base\":");
    json_side(sb, e, 0);
    stageprof__sb_adds(sb, ",\"new\":");
    json_side(sb, e, 1);
    stageprof__sb_adds(sb, ",\"changes\":{");
    for (int k = 0; k < DIFF_NSTAT && e->side[0].reps && e->side[1].reps; k++) {
        stageprof__sb_addf(sb, "%s\"%s\":", k ? "," : "", diff_stat_names[k]);
        json_change(sb, e, k);
    }
    stageprof__sb_adds(sb, "}}");
}

void diff_print_json(const struct cli_ctx *ctx, const struct diff *d)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    stageprof__sb_adds(&sb, "{\"stageprof_diff\":1");
    for (int s = 0; s < 2; s++) {
        stageprof__sb_addf(&sb, ",\"%s\":{\"input\":", s ? "new" : "base");
        jstr(&sb, d->arg[s], strlen(d->arg[s]));
        stageprof__sb_adds(&sb, ",\"traces\":[");
        for (size_t i = 0; i < d->nfiles[s]; i++) {
            const struct diff_file *f = &d->files[s][i];
            stageprof__sb_addf(&sb, "%s{\"path\":", i ? "," : "");
            jstr(&sb, f->path, strlen(f->path));
            stageprof__sb_addf(&sb,
                               ",\"producer\":\"%s\",\"runs\":%llu,"
                               "\"throughput\":",
                               f->res.producer, (unsigned long long)f->runs);
            jnum(&sb, f->throughput);
            stageprof__sb_addf(&sb, ",\"truncated\":%s}",
                               f->res.truncated ? "true" : "false");
        }
        stageprof__sb_adds(&sb, "]}");
    }
    stageprof__sb_addf(&sb,
                       ",\"method\":{\"mode\":\"%s\",\"confidence\":0.95,"
                       "\"resamples\":%u,\"seed\":%llu,\"alpha\":%g,"
                       "\"optimistic\":%s,\"block_len\":%zu,"
                       "\"reps_needed_for_verdicts\":%zu},",
                       method_text(d), d->resamples,
                       (unsigned long long)d->seed, STATS_ALPHA,
                       d->method == DIFF_BLOCK ? "true" : "false", d->block_len,
                       d->reps_needed);
    stageprof__sb_addf(&sb,
                       "\"environment\":{\"cross_machine\":%s,"
                       "\"mixed_producers\":%s,\"mixed_time_units\":%s,"
                       "\"differences\":[",
                       d->cross_machine ? "true" : "false",
                       d->mixed_producers ? "true" : "false",
                       d->mixed_units ? "true" : "false");
    int any = 0;
    for (int f = 0; f < DIFF_NENV; f++) {
        if (!d->env[f].differs)
            continue;
        stageprof__sb_addf(&sb, "%s{\"field\":\"%s\",\"base\":", any ? "," : "",
                           diff_env_fields[f]);
        jstr(&sb, d->env[f].base, strlen(d->env[f].base));
        stageprof__sb_adds(&sb, ",\"new\":");
        jstr(&sb, d->env[f].new_, strlen(d->env[f].new_));
        stageprof__sb_adds(&sb, "}");
        any = 1;
    }
    stageprof__sb_adds(&sb, "]},\"stages\":[");
    for (size_t i = 0; i < d->common; i++) {
        if (i)
            stageprof__sb_adds(&sb, ",");
        json_entry(&sb, d, d->order[i]);
    }
    stageprof__sb_adds(&sb, "],\"runs\":");
    json_entry(&sb, d, &d->e[0]);
    const struct diff_entry *t = &d->throughput;
    stageprof__sb_adds(&sb, ",\"throughput\":{\"base\":");
    jnum(&sb, t->fig[0][0]);
    stageprof__sb_adds(&sb, ",\"new\":");
    jnum(&sb, t->fig[1][0]);
    stageprof__sb_adds(&sb, ",\"rel\":");
    jnum(&sb, t->cmp[0].change.point);
    stageprof__sb_adds(&sb, ",\"lo\":");
    jnum(&sb, t->cmp[0].change.lo);
    stageprof__sb_adds(&sb, ",\"hi\":");
    jnum(&sb, t->cmp[0].change.hi);
    stageprof__sb_addf(&sb, ",\"verdict\":\"%s\"}", diff_verdict(d, t, 0));
    for (int s = 0; s < 2; s++) {
        stageprof__sb_addf(&sb, ",\"only_%s\":[", s ? "new" : "base");
        int n = 0;
        for (size_t i = d->common; i < d->norder; i++) {
            const struct diff_entry *e = d->order[i];
            if (!e->side[s].reps)
                continue;
            stageprof__sb_adds(&sb, n++ ? ",{\"name\":" : "{\"name\":");
            jstr(&sb, e->name, e->name_len);
            stageprof__sb_adds(&sb, ",\"category\":");
            jstr(&sb, e->cat, e->cat_len);
            stageprof__sb_adds(&sb, "}");
        }
        stageprof__sb_adds(&sb, "]");
    }
    stageprof__sb_adds(&sb, ",\"rules\":[");
    for (size_t i = 0; i < d->nrules; i++) {
        const struct diff_rule *r = &d->rules[i];
        stageprof__sb_adds(&sb, i ? ",{\"rule\":" : "{\"rule\":");
        jstr(&sb, r->text, strlen(r->text));
        stageprof__sb_addf(&sb,
                           ",\"fired\":%s,\"matched\":%s,\"judged\":%s,"
                           "\"threshold\":",
                           r->nhits ? "true" : "false",
                           r->matched ? "true" : "false",
                           r->judged ? "true" : "false");
        jnum(&sb, r->threshold);
        stageprof__sb_adds(&sb, ",\"on\":[");
        for (size_t h = 0; h < r->nhits; h++) {
            const struct diff_hit *hit = &r->hits[h];
            const struct stats_change *c = &hit->e->cmp[hit->stat].change;
            stageprof__sb_adds(&sb, h ? ",{\"name\":" : "{\"name\":");
            jstr(&sb, hit->e->name, hit->e->name_len);
            stageprof__sb_adds(&sb, ",\"category\":");
            jstr(&sb, hit->e->cat, hit->e->cat_len);
            stageprof__sb_addf(&sb, ",\"stat\":\"%s\",\"rel\":",
                               hit->e == t ? "median"
                                           : diff_stat_names[hit->stat]);
            jnum(&sb, c->point);
            stageprof__sb_adds(&sb, ",\"lo\":");
            jnum(&sb, c->lo);
            stageprof__sb_adds(&sb, ",\"hi\":");
            jnum(&sb, c->hi);
            stageprof__sb_adds(&sb, "}");
        }
        stageprof__sb_adds(&sb, "]}");
    }
    stageprof__sb_addf(&sb, "],\"exit_status\":%d}\n", d->exit_status);
    if (sb.oom) {
        stageprof__sb_fini(&sb);
        cli_die(ctx, "out of memory");
    }
    fwrite(sb.buf, 1, sb.len, stdout);
    stageprof__sb_fini(&sb);
}
