/*
 * diff_html.c - `stageprof diff --html FILE`: the comparison as one
 * self-contained page, built like the report's (html_report.h: the same
 * head with its strict Content-Security-Policy, stylesheet and escaping;
 * no script, nothing fetched).
 *
 * Sections: the sides and the method (with the warnings: another machine,
 * other producers, too few repetitions, an optimistic interval), the
 * environment differences, the gate, then one interval chart per
 * statistic (p50, p95: each stage's relative change as a point with its
 * 95% interval across a zero line, coloured by verdict), the before/after
 * table of every statistic, and the stages on one side only.
 *
 * Charts: svg.chart.interval, one g.row per stage (and the runs) carrying
 * data-verdict, with line.ci and circle.est inside; the browser test
 * counts them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "html_report.h"
#include "util/strbuf.h"

#define NAME_CUT 34 /* code points of a chart label */
#define TEXT_CUT 300
#define SVG_W 1000
#define LABEL_X 290
#define PLOT_X 300
#define PLOT_W 520
#define VALUE_X 830
#define ROW_H 22
#define AXIS_H 26
#define RANGE_MAX 3.0 /* the axis stops at +300% (and -100%) */

static void esc(struct strbuf *sb, const char *s, size_t len)
{
    html_esc_cut(sb, s, len, TEXT_CUT);
}

static void esc_entry(struct strbuf *sb, const struct diff *d,
                      const struct diff_entry *e, size_t cut)
{
    if (e == &d->e[0]) {
        stageprof__sb_adds(sb, "runs (end to end)");
        return;
    }
    html_esc_cut(sb, e->name, e->name_len, cut);
    if (e->cat_len > 0) {
        stageprof__sb_adds(sb, " (");
        html_esc_cut(sb, e->cat, e->cat_len, cut);
        stageprof__sb_adds(sb, ")");
    }
}

static const char *color_of(const char *verdict)
{
    if (strcmp(verdict, "slower") == 0 || strcmp(verdict, "lower") == 0)
        return "#e15759";
    if (strcmp(verdict, "faster") == 0 || strcmp(verdict, "higher") == 0)
        return "#59a14f";
    return "#8c8c8c";
}

static const char *pct(char *buf, size_t len, double v)
{
    return diff_pct(buf, len, v, "\xe2\x80\x93"); /* an en dash */
}

static double clamp(double v)
{
    return v < -1 ? -1 : v > RANGE_MAX ? RANGE_MAX : v;
}

/* x of relative change @v on an axis from @lo to @hi. */
static double xpos(double v, double lo, double hi)
{
    return PLOT_X + (clamp(v) - lo) / (hi - lo) * PLOT_W;
}

void diff_interval_svg(struct strbuf *sb, const char *stat,
                       const struct diff_row *rows, size_t n)
{
    double lo = 0, hi = 0;
    for (size_t i = 0; i < n; i++) {
        const struct stats_change *c = &rows[i].change;
        double v[3] = {c->point, c->lo, c->hi};
        for (int j = 0; j < 3; j++)
            if (isfinite(v[j])) {
                lo = fmin(lo, clamp(v[j]));
                hi = fmax(hi, clamp(v[j]));
            }
    }
    /* Some room, and never a zero-width axis. */
    double pad = (hi - lo) * 0.08 + 0.01;
    lo -= pad;
    hi += pad;
    double h = AXIS_H + (double)n * ROW_H + 8;
    stageprof__sb_addf(sb,
                       "<svg class=\"chart interval\" data-stat=\"%s\" "
                       "viewBox=\"0 0 %d %.0f\" width=\"%d\" height=\"%.0f\" "
                       "role=\"img\" aria-label=\"relative change of %s "
                       "with its 95%% interval\">\n",
                       stat, SVG_W, h, SVG_W, h, stat);
    /* Axis: five ticks and the zero line. */
    stageprof__sb_adds(sb, "<g class=\"axis\">");
    for (int t = 0; t <= 4; t++) {
        double v = lo + (hi - lo) * t / 4;
        double x = xpos(v, lo, hi);
        char b[32];
        stageprof__sb_addf(sb,
                           "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" "
                           "y2=\"%.0f\"/><text x=\"%.1f\" y=\"14\" "
                           "text-anchor=\"middle\">%s</text>",
                           x, AXIS_H - 6, x, h - 4, x, pct(b, sizeof b, v));
    }
    double x0 = xpos(0, lo, hi);
    stageprof__sb_addf(sb,
                       "</g>\n<line class=\"zero\" x1=\"%.1f\" y1=\"%d\" "
                       "x2=\"%.1f\" y2=\"%.0f\" stroke=\"#333\"/>\n",
                       x0, AXIS_H - 6, x0, h - 4);
    for (size_t i = 0; i < n; i++) {
        const struct diff_row *r = &rows[i];
        const struct stats_change *c = &r->change;
        const char *col = color_of(r->verdict);
        double y = AXIS_H + (double)i * ROW_H + ROW_H / 2.0;
        stageprof__sb_addf(sb, "<g class=\"row\" data-verdict=\"%s\">",
                           r->verdict);
        stageprof__sb_addf(sb, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">",
                           LABEL_X, y + 4);
        html_esc_cut(sb, r->label, r->label_len, NAME_CUT);
        stageprof__sb_adds(sb, "</text>");
        if (isfinite(c->lo) && isfinite(c->hi))
            stageprof__sb_addf(sb,
                               "<line class=\"ci\" x1=\"%.1f\" y1=\"%.1f\" "
                               "x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                               "stroke-width=\"3\"/>",
                               xpos(c->lo, lo, hi), y, xpos(c->hi, lo, hi), y,
                               col);
        if (isfinite(c->point))
            stageprof__sb_addf(sb,
                               "<circle class=\"est\" cx=\"%.1f\" cy=\"%.1f\" "
                               "r=\"5\" fill=\"%s\"/>",
                               xpos(c->point, lo, hi), y, col);
        char b1[32], b2[32], b3[32];
        stageprof__sb_addf(sb,
                           "<text class=\"value\" x=\"%d\" y=\"%.1f\">%s "
                           "[%s, %s]</text><title>",
                           VALUE_X, y + 4, pct(b1, sizeof b1, c->point),
                           pct(b2, sizeof b2, c->lo),
                           pct(b3, sizeof b3, c->hi));
        html_esc_cut(sb, r->label, r->label_len, TEXT_CUT);
        stageprof__sb_addf(sb, ": %s %s</title></g>\n", stat, r->verdict);
    }
    stageprof__sb_adds(sb, "</svg>\n");
}

/* The interval chart of statistic @k over the common stages and runs. */
static void interval_chart(struct strbuf *sb, const struct diff *d, int k)
{
    size_t n = d->common + 1;
    struct diff_row *rows = calloc(n, sizeof *rows);
    struct strbuf names;
    stageprof__sb_init(&names, NULL, NULL);
    size_t *at = calloc(n + 1, sizeof *at);
    if (rows == NULL || at == NULL) {
        sb->oom = 1;
        free(rows);
        free(at);
        return;
    }
    /* The labels, "name (category)", one after the other. */
    for (size_t i = 0; i < n; i++) {
        const struct diff_entry *e = i < d->common ? d->order[i] : &d->e[0];
        at[i] = names.len;
        if (e == &d->e[0]) {
            stageprof__sb_adds(&names, "runs (end to end)");
        } else {
            stageprof__sb_add(&names, e->name, e->name_len);
            if (e->cat_len) {
                stageprof__sb_adds(&names, " (");
                stageprof__sb_add(&names, e->cat, e->cat_len);
                stageprof__sb_adds(&names, ")");
            }
        }
        rows[i].change = e->cmp[k].change;
        rows[i].verdict = diff_verdict(d, e, k);
    }
    at[n] = names.len;
    for (size_t i = 0; i < n && !names.oom; i++) {
        rows[i].label = names.buf + at[i];
        rows[i].label_len = at[i + 1] - at[i];
    }
    if (names.oom)
        sb->oom = 1;
    else
        diff_interval_svg(sb, diff_stat_names[k], rows, n);
    stageprof__sb_fini(&names);
    free(rows);
    free(at);
}

static void figures_row(struct strbuf *sb, const struct diff *d,
                        const struct diff_entry *e)
{
    const char *v = diff_verdict(d, e, DIFF_P50);
    stageprof__sb_addf(sb, "<tr data-verdict=\"%s\"><td>", v);
    esc_entry(sb, d, e, TEXT_CUT);
    stageprof__sb_addf(sb,
                       "</td><td style=\"color:%s\">%s</td><td>%llu "
                       "\xe2\x86\x92 %llu</td>",
                       color_of(v), v, (unsigned long long)e->side[0].count,
                       (unsigned long long)e->side[1].count);
    for (int k = 0; k < DIFF_NSTAT; k++) {
        char b0[48], b1[48], b2[32], b3[32], b4[32];
        const struct stats_change *c = &e->cmp[k].change;
        stageprof__sb_addf(
            sb,
            "<td>%s \xe2\x86\x92 %s<br><small>%s [%s, "
            "%s]</small></td>",
            html_dur(b0, sizeof b0, e->fig[0][k]),
            html_dur(b1, sizeof b1, e->fig[1][k]), pct(b2, sizeof b2, c->point),
            pct(b3, sizeof b3, c->lo), pct(b4, sizeof b4, c->hi));
    }
    stageprof__sb_adds(sb, "</tr>\n");
}

static void section_method(struct strbuf *sb, const struct diff *d)
{
    stageprof__sb_adds(sb, "<p class=\"sub\">");
    for (int s = 0; s < 2; s++) {
        stageprof__sb_adds(sb, s ? " \xc2\xb7 new " : "base ");
        esc(sb, d->arg[s], strlen(d->arg[s]));
        stageprof__sb_addf(sb, " (%zu trace%s, ", d->nfiles[s],
                           d->nfiles[s] == 1 ? "" : "s");
        const char *p = d->files[s][0].res.producer;
        esc(sb, p, strlen(p));
        stageprof__sb_adds(sb, ")");
    }
    stageprof__sb_adds(sb, "</p>\n<p class=\"note\">");
    if (d->method == DIFF_REPS)
        stageprof__sb_addf(
            sb,
            "%zu against %zu repetitions: each repetition's statistic, the "
            "sides' medians compared; 95%% bootstrap interval (%u "
            "resamples, seed %llu), Mann-Whitney U with Holm's correction "
            "across stages. A stage is slower or faster when both agree.",
            d->nfiles[0], d->nfiles[1], d->resamples,
            (unsigned long long)d->seed);
    else if (d->method == DIFF_BLOCK)
        stageprof__sb_addf(
            sb,
            "One trace per side: 95%% block bootstrap over consecutive "
            "spans and runs (blocks of %zu). <b>The interval is "
            "optimistic</b>: runs of one execution are not independent. "
            "Run 3 or more repetitions per side for a verdict you can "
            "trust.",
            d->block_len);
    else
        stageprof__sb_addf(sb,
                           "%zu against %zu repetitions: <b>too few to "
                           "judge</b> (3 or more per side); figures only.",
                           d->nfiles[0], d->nfiles[1]);
    stageprof__sb_adds(sb, "</p>\n");
    if (d->reps_needed)
        stageprof__sb_addf(sb,
                           "<p class=\"note\">With %zu against %zu "
                           "repetitions no change can pass the test after "
                           "Holm's correction across %zu comparisons: run %zu "
                           "or more per side for verdicts. Gate rules still "
                           "judge by the interval.</p>\n",
                           d->nfiles[0], d->nfiles[1], d->common + 1,
                           d->reps_needed);
    if (d->cross_machine)
        stageprof__sb_adds(sb, "<p class=\"verdict\"><b>The sides ran on "
                               "different machines: timings are not "
                               "comparable.</b></p>\n");
    if (d->mixed_producers)
        stageprof__sb_adds(sb, "<p class=\"note\">Traces of different "
                               "producers: only the stages both sides have "
                               "are compared.</p>\n");
    int any = 0;
    for (int f = 0; f < DIFF_NENV; f++) {
        if (!d->env[f].differs)
            continue;
        if (!any)
            stageprof__sb_adds(sb, "<h2>Environment differences</h2>\n<table "
                                   "class=\"facts env\">\n");
        any = 1;
        stageprof__sb_addf(sb, "<tr><th>%s</th><td>", diff_env_fields[f]);
        esc(sb, d->env[f].base, strlen(d->env[f].base));
        stageprof__sb_adds(sb, "</td><td>");
        esc(sb, d->env[f].new_, strlen(d->env[f].new_));
        stageprof__sb_adds(sb, "</td></tr>\n");
    }
    if (any)
        stageprof__sb_adds(sb, "</table>\n");
}

static void section_gate(struct strbuf *sb, const struct diff *d)
{
    if (d->nrules == 0)
        return;
    stageprof__sb_adds(sb, "<h2>Gate</h2>\n<ul class=\"gate\">\n");
    for (size_t i = 0; i < d->nrules; i++) {
        const struct diff_rule *r = &d->rules[i];
        stageprof__sb_addf(sb, "<li class=\"%s\"><code>",
                           r->nhits ? "fired" : "passed");
        esc(sb, r->text, strlen(r->text));
        stageprof__sb_addf(sb, "</code>: %s",
                           r->nhits      ? "<b>fired</b> on "
                           : !r->matched ? "nothing to judge"
                           : !r->judged  ? "not judged (too few repetitions)"
                                         : "passed");
        for (size_t h = 0; h < r->nhits; h++) {
            if (h)
                stageprof__sb_adds(sb, ", ");
            if (r->hits[h].e == &d->throughput)
                stageprof__sb_adds(sb, "throughput");
            else
                esc_entry(sb, d, r->hits[h].e, TEXT_CUT);
        }
        stageprof__sb_adds(sb, "</li>\n");
    }
    stageprof__sb_adds(sb, "</ul>\n");
}

static void section_only(struct strbuf *sb, const struct diff *d)
{
    for (int s = 0; s < 2; s++) {
        int any = 0;
        for (size_t i = d->common; i < d->norder; i++) {
            const struct diff_entry *e = d->order[i];
            if (!e->side[s].reps)
                continue;
            stageprof__sb_adds(sb, any ? ", "
                                   : s ? "<p class=\"only\">Only "
                                         "in new: "
                                       : "<p class=\"only\">Only "
                                         "in base: ");
            esc_entry(sb, d, e, TEXT_CUT);
            any = 1;
        }
        if (any)
            stageprof__sb_adds(sb, "</p>\n");
    }
}

int diff_html(const struct diff *d, const char *path, char *err, size_t errlen)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    html_head(&sb, "stageprof diff");
    section_method(&sb, d);
    section_gate(&sb, d);
    for (int k = DIFF_P50; k <= DIFF_P50 + 1; k++) {
        stageprof__sb_addf(&sb, "<h2>Change of %s</h2>\n", diff_stat_names[k]);
        interval_chart(&sb, d, k);
    }
    stageprof__sb_adds(&sb, "<h2>Before and after</h2>\n<table "
                            "class=\"figures\">\n<tr><th>stage</th><th>"
                            "verdict</th><th>count</th>");
    for (int k = 0; k < DIFF_NSTAT; k++)
        stageprof__sb_addf(&sb, "<th>%s</th>", diff_stat_names[k]);
    stageprof__sb_adds(&sb, "</tr>\n");
    for (size_t i = 0; i < d->common; i++)
        figures_row(&sb, d, d->order[i]);
    figures_row(&sb, d, &d->e[0]);
    const struct diff_entry *t = &d->throughput;
    char b1[32], b2[32], b3[32];
    stageprof__sb_addf(
        &sb,
        "</table>\n<p class=\"note\">Throughput: %.2f "
        "\xe2\x86\x92 %.2f runs/s, %s [%s, %s], %s.</p>\n",
        t->fig[0][0], t->fig[1][0], pct(b1, sizeof b1, t->cmp[0].change.point),
        pct(b2, sizeof b2, t->cmp[0].change.lo),
        pct(b3, sizeof b3, t->cmp[0].change.hi), diff_verdict(d, t, 0));
    section_only(&sb, d);
    return html_finish(&sb, "diff --html", 0, path, err, errlen);
}
