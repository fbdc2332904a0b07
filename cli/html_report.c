/*
 * html_report.c - `stageprof report --html FILE`: the report as one
 * self-contained HTML page.
 *
 * The page is built in a strbuf and written in one go (html_report_write)
 * to FILE.tmp, then renamed over FILE. Everything is drawn here: CSS
 * inline, charts as SVG with fixed coordinates, no script at all, and a
 * Content-Security-Policy that forbids scripts and every fetch, so the file
 * opens the same offline, from a mail or from a CI artefact.
 *
 * Text that comes from a trace (stage, category, thread, queue, counter and
 * file names, and the verdict's sentences that quote them) only reaches the
 * page through html_esc_cut(): HTML-escaped (quotes too, so it is safe in
 * attributes), invalid UTF-8 as U+FFFD, control bytes shown as \xHH, and
 * long strings cut with an ellipsis.
 *
 * Sections, in page order:
 *   verdict    bottleneck, reason, hints, time on critical paths
 *   stages     total and self time per stage (bars), the first 20
 *   latency    min, p50, p90, p99, max per stage (log axis when wide)
 *   timeline   the slowest run: its items in one lane per stage or queue,
 *              its critical path (agg_run_path) outlined and in a lane of
 *              its own
 *   queues     mean wait and mean service per queue, stacked; p90 wait
 *   runs       latency figures, throughput, warm-up; every run's latency
 *   trace      files, events, producer, completeness, warnings, threads,
 *              counters
 *
 * Charts carry class names the browser test counts (svg.chart, g.row,
 * rect.item, rect.path, rect.pathseg, rect.run); keep them when changing
 * the drawing.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agg_impl.h"
#include "html_report.h"
#include "util/json.h"
#include "util/strbuf.h"

#define TOP_STAGES 20 /* rows of the stage charts */
#define TOP_QUEUES 20
#define TOP_PATH 12     /* rows of the critical-path table */
#define MAX_LANES 24    /* timeline lanes before "other stages" */
#define MAX_RECTS 6000  /* timeline rectangles, per kind */
#define MAX_COLUMNS 450 /* run-latency columns before bucketing */
#define NAME_CUT 48     /* code points of a chart label */
#define TEXT_CUT 300    /* code points of a tooltip or a table cell */

/* Row charts: labels right-aligned at LABEL_X, bars from PLOT_X. */
#define SVG_W 1000
#define LABEL_X 250
#define PLOT_X 260
#define PLOT_W 490
#define VALUE_X 760
#define ROW_H 22
#define AXIS_H 26

/* ------------------------------------------------------------------------ */
/* Facts                                                                    */
/* ------------------------------------------------------------------------ */

void html_facts_init(struct html_facts *f, const char *producer)
{
    memset(f, 0, sizeof *f);
    f->producer = producer;
    f->complete = 1;
}

void html_facts_file(struct html_facts *f, const char *path,
                     const struct tl_result *res)
{
    if (grow(&f->files, &f->files_cap, f->nfiles + 1, sizeof *f->files) == 0)
        f->files[f->nfiles++] = path;
    else
        f->oom = 1;
    f->events += res->events;
    if (res->dropped > 0)
        f->dropped += res->dropped;
    f->truncated |= res->truncated;
    /* As the JSON's trace.complete: unknown unless every file says. */
    if (res->complete == 0 || res->truncated)
        f->complete = 0;
    else if (res->complete < 0 && f->complete == 1)
        f->complete = -1;
}

void html_facts_warning(void *facts, const char *msg)
{
    struct html_facts *f = facts;
    char *m = dup_bytes(msg, strlen(msg));
    if (m == NULL || grow(&f->warnings, &f->warnings_cap, f->nwarnings + 1,
                          sizeof *f->warnings) != 0) {
        free(m);
        f->oom = 1;
        return;
    }
    f->warnings[f->nwarnings++] = m;
}

void html_facts_fini(struct html_facts *f)
{
    for (size_t i = 0; i < f->nwarnings; i++)
        free(f->warnings[i]);
    free(f->warnings);
    free(f->files);
    memset(f, 0, sizeof *f);
}

/* ------------------------------------------------------------------------ */
/* Text                                                                     */
/* ------------------------------------------------------------------------ */

/*
 * @len bytes of @s as HTML text, safe in an attribute value too; at most
 * @cut code points, then an ellipsis.
 */
void html_esc_cut(struct strbuf *sb, const char *s, size_t len, size_t cut)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, cps = 0;
    while (i < len) {
        if (cps++ == cut) {
            stageprof__sb_adds(sb, "\xe2\x80\xa6");
            return;
        }
        size_t n = stageprof__utf8_valid(p + i, len - i);
        if (n == 0) {
            stageprof__sb_adds(sb, "\xef\xbf\xbd");
            i++;
            continue;
        }
        if (n > 1) {
            stageprof__sb_add(sb, p + i, n);
            i += n;
            continue;
        }
        unsigned char c = p[i++];
        switch (c) {
        case '&':
            stageprof__sb_adds(sb, "&amp;");
            break;
        case '<':
            stageprof__sb_adds(sb, "&lt;");
            break;
        case '>':
            stageprof__sb_adds(sb, "&gt;");
            break;
        case '"':
            stageprof__sb_adds(sb, "&quot;");
            break;
        case '\'':
            stageprof__sb_adds(sb, "&#39;");
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                stageprof__sb_addf(sb, "\\x%02x", c);
            else
                stageprof__sb_add(sb, &c, 1);
        }
    }
}

static void esc(struct strbuf *sb, const char *s)
{
    html_esc_cut(sb, s, strlen(s), TEXT_CUT);
}

/* "name (category)", or the name alone for an empty category. */
static void esc_stage(struct strbuf *sb, const struct agg_stage *st, size_t cut)
{
    html_esc_cut(sb, st->name, st->name_len, cut);
    if (st->cat_len > 0) {
        stageprof__sb_adds(sb, " (");
        html_esc_cut(sb, st->cat, st->cat_len, cut);
        stageprof__sb_adds(sb, ")");
    }
}

/* @ns for reading, three digits: "850 ns", "30.0 µs", "2.41 ms", "1.23 s". */
const char *html_dur(char *buf, size_t len, double ns)
{
    static const struct {
        double scale;
        const char *unit;
    } u[] = {{1, "ns"}, {1e3, "\xc2\xb5s"}, {1e6, "ms"}, {1e9, "s"}};
    int k = 0;
    while (k < 3 && fabs(ns) >= u[k + 1].scale)
        k++;
    double v = ns / u[k].scale;
    int prec = k == 0 || fabs(v) >= 99.95 ? 0 : fabs(v) >= 9.995 ? 1 : 2;
    snprintf(buf, len, "%.*f %s", prec, v, u[k].unit);
    return buf;
}

/* An axis label: "0", "500 µs", "1.5 ms". */
static const char *tick(char *buf, size_t len, double ns)
{
    static const struct {
        double scale;
        const char *unit;
    } u[] = {{1, "ns"}, {1e3, "\xc2\xb5s"}, {1e6, "ms"}, {1e9, "s"}};
    if (ns == 0) {
        snprintf(buf, len, "0");
        return buf;
    }
    int k = 0;
    while (k < 3 && fabs(ns) >= u[k + 1].scale * 0.9999)
        k++;
    snprintf(buf, len, "%.4g %s", ns / u[k].scale, u[k].unit);
    return buf;
}

static void add_dur(struct strbuf *sb, double ns)
{
    char b[48];
    stageprof__sb_adds(sb, html_dur(b, sizeof b, ns));
}

/* ------------------------------------------------------------------------ */
/* Colours and axes                                                         */
/* ------------------------------------------------------------------------ */

/* A category's colour: the usual ones fixed, any other by its name. */
static const char *cat_color(const char *cat, size_t len)
{
    static const struct {
        const char *cat, *color;
    } known[] = {
        {"data", "#4e79a7"},
        {"preprocess", "#f28e2b"},
        {"compute", "#e15759"},
        {"postprocess", "#76b7b2"},
        {"serve", "#59a14f"},
        {"io", "#edc948"},
        {"engine", "#b07aa1"},
        {"queue", "#9c755f"},
        {"run", "#8c8c8c"},
        {"cpu_op", "#e15759"},
        {"user_annotation", "#4e79a7"},
    };
    static const char *const palette[] = {
        "#ff9da7", "#59a14f", "#499894", "#d37295", "#86bcb6",
        "#f1ce63", "#a0cbe8", "#ffbe7d", "#b6992d", "#8cd17d"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].cat) == len && memcmp(known[i].cat, cat, len) == 0)
            return known[i].color;
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)cat[i]) * 16777619u;
    return palette[h % (sizeof palette / sizeof palette[0])];
}

static const char *stage_color(const struct agg_stage *st)
{
    return cat_color(st->cat, st->cat_len);
}

#define WAIT_COLOR "#9c755f"
#define SERVICE_COLOR "#4e79a7"

/* A value axis in ns over @w pixels from @x, linear or log10. */
struct axis {
    double lo, hi, step; /* step: linear ticks */
    int log;
    double x, w;
};

/* A step of 1, 2 or 5 times a power of ten: about @n ticks over @range. */
static double nice_step(double range, int n)
{
    double raw = range > 0 ? range / n : 1;
    double p = pow(10, floor(log10(raw)));
    double m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/*
 * An axis for values up to @hi; log10 from @lo when @may_log and the
 * values span two decades or more (@lo: the smallest positive value).
 */
static void axis_init(struct axis *ax, double lo, double hi, int may_log,
                      double x, double w)
{
    memset(ax, 0, sizeof *ax);
    ax->x = x;
    ax->w = w;
    if (hi <= 0)
        hi = 1;
    if (may_log && lo > 0 && hi / lo >= 100) {
        ax->log = 1;
        ax->lo = pow(10, floor(log10(lo)));
        ax->hi = pow(10, ceil(log10(hi)));
        if (ax->hi <= ax->lo)
            ax->hi = ax->lo * 10;
        return;
    }
    ax->step = nice_step(hi, 5);
    ax->lo = 0;
    ax->hi = ceil(hi / ax->step - 1e-9) * ax->step;
}

static double ax_pos(const struct axis *ax, double v)
{
    double f;
    if (ax->log)
        f = v <= ax->lo
                ? 0
                : (log10(v) - log10(ax->lo)) / (log10(ax->hi) - log10(ax->lo));
    else
        f = (v - ax->lo) / (ax->hi - ax->lo);
    f = f < 0 ? 0 : f > 1 ? 1 : f;
    return ax->x + f * ax->w;
}

/* Grid lines from @top to @bottom, labels above @top. */
static void axis_draw(struct strbuf *sb, const struct axis *ax, double top,
                      double bottom)
{
    char b[48];
    int decades = ax->log ? (int)lround(log10(ax->hi) - log10(ax->lo)) : 0;
    int every = decades > 8 ? 2 : 1;
    stageprof__sb_adds(sb, "<g class=\"axis\">");
    for (int k = 0;; k++) {
        double v = ax->log ? ax->lo * pow(10, k * every) : k * ax->step;
        if (v > ax->hi * (1 + 1e-9))
            break;
        double x = ax_pos(ax, v);
        stageprof__sb_addf(sb,
                           "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                           "y2=\"%.1f\"/><text x=\"%.1f\" y=\"%.1f\" "
                           "text-anchor=\"middle\">%s</text>",
                           x, top, x, bottom, x, top - 8, tick(b, sizeof b, v));
    }
    stageprof__sb_adds(sb, "</g>\n");
}

/* <svg ...> of a chart: @id, its height, what it shows (for readers). */
static void svg_open(struct strbuf *sb, const char *id, double h,
                     const char *label)
{
    stageprof__sb_addf(sb,
                       "<svg id=\"%s\" class=\"chart\" width=\"%d\" "
                       "height=\"%.0f\" viewBox=\"0 0 %d %.0f\" role=\"img\" "
                       "aria-label=\"%s\" xmlns=\"http://www.w3.org/2000/svg\">"
                       "\n",
                       id, SVG_W, h, SVG_W, h, label);
}

/* A pattern of brown stripes: queue waits. */
static void hatch(struct strbuf *sb, const char *id)
{
    stageprof__sb_addf(sb,
                       "<defs><pattern id=\"%s\" width=\"6\" height=\"6\" "
                       "patternUnits=\"userSpaceOnUse\" "
                       "patternTransform=\"rotate(45)\"><rect width=\"6\" "
                       "height=\"6\" fill=\"#eadfd4\"/><rect width=\"3\" "
                       "height=\"6\" fill=\"%s\"/></pattern></defs>\n",
                       id, WAIT_COLOR);
}

/* Colour swatches of the categories of @v[0 .. n). */
static void legend(struct strbuf *sb, struct agg_stage *const *v, size_t n)
{
    stageprof__sb_adds(sb, "<p class=\"legend\">");
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < i && !(v[j]->cat_len == v[i]->cat_len &&
                          memcmp(v[j]->cat, v[i]->cat, v[i]->cat_len) == 0))
            j++;
        if (j < i)
            continue;
        stageprof__sb_addf(sb, "<span><i style=\"background:%s\"></i>",
                           stage_color(v[i]));
        if (v[i]->cat_len > 0)
            html_esc_cut(sb, v[i]->cat, v[i]->cat_len, NAME_CUT);
        else
            stageprof__sb_adds(sb, "(no category)");
        stageprof__sb_adds(sb, "</span> ");
    }
    stageprof__sb_adds(sb, "</p>\n");
}

/* ------------------------------------------------------------------------ */
/* Verdict                                                                  */
/* ------------------------------------------------------------------------ */

static double pct_of(double part, double whole)
{
    return whole > 0 ? 100.0 * part / whole : 0.0;
}

/*
 * @to - @from in ns as a double: times from a trace may be anywhere in
 * the int64 range, and a difference of two must not overflow.
 */
static double span(int64_t from, int64_t to)
{
    return (double)to - (double)from;
}

/* The stages and queue waits on critical paths, most time first. */
static void path_table(struct strbuf *sb, const struct agg *a)
{
    const struct agg_runs *rs = &a->rs;
    struct agg_stage **v = malloc((a->nstages + 1) * sizeof *v);
    size_t n = 0;
    if (v == NULL) {
        sb->oom = 1;
        return;
    }
    for (size_t i = 0; i < a->nstages; i++)
        if (a->stages[i]->path_ns > 0)
            v[n++] = a->stages[i];
    qsort(v, n, sizeof *v, agg_cmp_path);
    stageprof__sb_addf(sb,
                       "<table class=\"path\"><caption>Time on the critical "
                       "paths of the %llu runs</caption>\n<tr><th>stage</th>"
                       "<th>category</th><th>runs</th><th>time</th>"
                       "<th>share of run time</th></tr>\n",
                       (unsigned long long)rs->count);
    for (size_t i = 0; i < n && i < TOP_PATH; i++) {
        stageprof__sb_adds(sb, "<tr><td>");
        html_esc_cut(sb, v[i]->name, v[i]->name_len, TEXT_CUT);
        stageprof__sb_adds(sb, "</td><td>");
        html_esc_cut(sb, v[i]->cat, v[i]->cat_len, TEXT_CUT);
        stageprof__sb_addf(sb, "</td><td>%llu</td><td>",
                           (unsigned long long)v[i]->path_runs);
        add_dur(sb, (double)v[i]->path_ns);
        stageprof__sb_addf(sb, "</td><td>%.1f%%</td></tr>\n",
                           pct_of(v[i]->path_ns, rs->total_ns));
    }
    for (size_t i = 0; i < a->nqueues; i++) {
        const struct agg_queue *q = a->queues[i];
        if (q->path_ns <= 0)
            continue;
        stageprof__sb_adds(sb, "<tr><td>wait: ");
        esc(sb, q->name);
        stageprof__sb_addf(sb, "</td><td>queue</td><td>%llu</td><td>",
                           (unsigned long long)q->path_runs);
        add_dur(sb, (double)q->path_ns);
        stageprof__sb_addf(sb, "</td><td>%.1f%%</td></tr>\n",
                           pct_of(q->path_ns, rs->total_ns));
    }
    stageprof__sb_adds(sb, "</table>\n");
    free(v);
}

static void section_verdict(struct strbuf *sb, const struct agg *a)
{
    const struct agg_runs *rs = &a->rs;
    stageprof__sb_adds(sb, "<section id=\"verdict\" class=\"verdict\">\n"
                           "<h2>Verdict</h2>\n");
    if (rs->bottleneck >= 0) {
        const struct agg_stage *b = a->stages[rs->bottleneck];
        stageprof__sb_adds(sb, "<p class=\"bottleneck\">Bottleneck: "
                               "<strong>");
        html_esc_cut(sb, b->name, b->name_len, TEXT_CUT);
        stageprof__sb_adds(sb, "</strong>");
        if (b->cat_len > 0) {
            stageprof__sb_adds(sb, " <span class=\"cat\">(");
            html_esc_cut(sb, b->cat, b->cat_len, TEXT_CUT);
            stageprof__sb_adds(sb, ")</span>");
        }
        stageprof__sb_adds(sb, "</p>\n<p class=\"reason\">");
        html_esc_cut(sb, rs->reason, strlen(rs->reason), 2 * TEXT_CUT);
        stageprof__sb_adds(sb, ".</p>\n");
    } else {
        stageprof__sb_adds(sb, "<p class=\"bottleneck\">No bottleneck: the "
                               "trace holds no stage with time in it.</p>\n");
    }
    if (rs->nhints > 0) {
        stageprof__sb_adds(sb, "<ul class=\"hints\">\n");
        for (int i = 0; i < rs->nhints; i++) {
            stageprof__sb_adds(sb, "<li>");
            html_esc_cut(sb, rs->hints[i], strlen(rs->hints[i]), 2 * TEXT_CUT);
            stageprof__sb_adds(sb, "</li>\n");
        }
        stageprof__sb_adds(sb, "</ul>\n");
    }
    if (rs->count > 0)
        path_table(sb, a);
    stageprof__sb_adds(sb, "</section>\n");
}

/* ------------------------------------------------------------------------ */
/* Stage charts                                                             */
/* ------------------------------------------------------------------------ */

/* The label cell of a row chart, a stage's name cut to fit. */
static void row_label(struct strbuf *sb, const struct agg_stage *st, double y)
{
    stageprof__sb_addf(sb,
                       "<text class=\"label\" x=\"%d\" y=\"%.1f\" "
                       "text-anchor=\"end\">",
                       LABEL_X, y);
    html_esc_cut(sb, st->name, st->name_len, NAME_CUT / 2);
    stageprof__sb_adds(sb, "</text>");
}

static void section_stages(struct strbuf *sb, struct agg_stage *const *v,
                           size_t nall)
{
    size_t n = nall < TOP_STAGES ? nall : TOP_STAGES;
    stageprof__sb_adds(sb, "<section id=\"stages\">\n<h2>Stage time</h2>\n");
    if (n == 0) {
        stageprof__sb_adds(sb, "<p>No stage with time in it.</p>\n"
                               "</section>\n");
        return;
    }
    stageprof__sb_addf(sb,
                       "<p class=\"note\">Total time per stage, largest "
                       "first (%zu of %zu stages). The dark part is self "
                       "time: total minus its direct children on the same "
                       "thread. Async stages (dashed outline) measure wall "
                       "time between their begin and end.</p>\n",
                       n, nall);
    legend(sb, v, n);
    double max = 0;
    for (size_t i = 0; i < n; i++)
        if ((double)v[i]->total_ns > max)
            max = (double)v[i]->total_ns;
    struct axis ax;
    axis_init(&ax, 0, max, 0, PLOT_X, PLOT_W);
    double h = AXIS_H + (double)n * ROW_H + 6;
    svg_open(sb, "stage-time", h, "total and self time per stage");
    axis_draw(sb, &ax, AXIS_H - 4, h - 4);
    for (size_t i = 0; i < n; i++) {
        const struct agg_stage *st = v[i];
        double y = AXIS_H + (double)i * ROW_H;
        double x1 = ax_pos(&ax, (double)st->total_ns);
        double xs = ax_pos(&ax, (double)st->self_ns);
        const char *c = stage_color(st);
        stageprof__sb_adds(sb, "<g class=\"row\"><title>");
        esc_stage(sb, st, TEXT_CUT);
        stageprof__sb_adds(sb, ": total ");
        add_dur(sb, (double)st->total_ns);
        stageprof__sb_adds(sb, ", self ");
        add_dur(sb, (double)st->self_ns);
        stageprof__sb_addf(sb, ", %llu calls%s</title>",
                           (unsigned long long)st->count,
                           st->async ? " (async)" : "");
        row_label(sb, st, y + 15);
        stageprof__sb_addf(
            sb,
            "<rect class=\"bar total\" x=\"%d\" y=\"%.1f\" width=\"%.1f\" "
            "height=\"14\" fill=\"%s\" fill-opacity=\"0.35\"%s/>",
            PLOT_X, y + 4, x1 - PLOT_X > 1 ? x1 - PLOT_X : 1, c,
            st->async ? " stroke=\"#555\" stroke-dasharray=\"3 2\"" : "");
        if (st->self_ns > 0)
            stageprof__sb_addf(sb,
                               "<rect class=\"bar self\" x=\"%d\" y=\"%.1f\" "
                               "width=\"%.1f\" height=\"14\" fill=\"%s\"/>",
                               PLOT_X, y + 4, xs - PLOT_X > 1 ? xs - PLOT_X : 1,
                               c);
        stageprof__sb_addf(sb, "<text class=\"value\" x=\"%d\" y=\"%.1f\">",
                           VALUE_X, y + 15);
        add_dur(sb, (double)st->total_ns);
        stageprof__sb_adds(sb, " \xc2\xb7 self ");
        add_dur(sb, (double)st->self_ns);
        stageprof__sb_adds(sb, "</text></g>\n");
    }
    stageprof__sb_adds(sb, "</svg>\n</section>\n");
}

static void section_latency(struct strbuf *sb, struct agg_stage *const *v,
                            size_t nall)
{
    size_t n = nall < TOP_STAGES ? nall : TOP_STAGES;
    stageprof__sb_adds(sb, "<section id=\"latency\">\n<h2>Latency of one "
                           "call</h2>\n");
    if (n == 0) {
        stageprof__sb_adds(sb, "<p>No stage with time in it.</p>\n"
                               "</section>\n");
        return;
    }
    double lo = 0, hi = 0;
    int sketched = 0;
    for (size_t i = 0; i < n; i++) {
        double vals[] = {(double)v[i]->min_ns, v[i]->pct_ns[0],
                         (double)v[i]->max_ns};
        for (size_t k = 0; k < 3; k++)
            if (vals[k] > 0 && (lo == 0 || vals[k] < lo))
                lo = vals[k];
        if ((double)v[i]->max_ns > hi)
            hi = (double)v[i]->max_ns;
        sketched |= !v[i]->exact;
    }
    struct axis ax;
    axis_init(&ax, lo, hi, 1, PLOT_X, PLOT_W);
    stageprof__sb_addf(sb,
                       "<p class=\"note\">Per stage, in the order above: the "
                       "line spans min to max, the solid box p50 to p90, the "
                       "pale box p90 to p99; the dark tick is the median. "
                       "%s axis.%s</p>\n",
                       ax.log ? "Logarithmic" : "Linear",
                       sketched ? " Some percentiles come from a sketch "
                                  "(within 0.5%)."
                                : "");
    double h = AXIS_H + (double)n * ROW_H + 6;
    svg_open(sb, "latency", h, "latency distribution per stage");
    axis_draw(sb, &ax, AXIS_H - 4, h - 4);
    for (size_t i = 0; i < n; i++) {
        const struct agg_stage *st = v[i];
        double y = AXIS_H + (double)i * ROW_H, mid = y + 11;
        double xmin = ax_pos(&ax, (double)st->min_ns);
        double xmax = ax_pos(&ax, (double)st->max_ns);
        double x50 = ax_pos(&ax, st->pct_ns[0]);
        double x90 = ax_pos(&ax, st->pct_ns[1]);
        double x99 = ax_pos(&ax, st->pct_ns[3]);
        const char *c = stage_color(st);
        stageprof__sb_adds(sb, "<g class=\"row\"><title>");
        esc_stage(sb, st, TEXT_CUT);
        static const char *const names[] = {"min", "p50", "p90", "p99", "max"};
        double vals[] = {(double)st->min_ns, st->pct_ns[0], st->pct_ns[1],
                         st->pct_ns[3], (double)st->max_ns};
        for (int k = 0; k < 5; k++) {
            stageprof__sb_addf(sb, "%s%s ", k ? ", " : ": ", names[k]);
            add_dur(sb, vals[k]);
        }
        stageprof__sb_addf(sb, " (%llu calls)</title>",
                           (unsigned long long)st->count);
        row_label(sb, st, y + 15);
        stageprof__sb_addf(
            sb,
            "<line class=\"whisker\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
            "y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.5\"/>"
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
            "stroke=\"%s\"/><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
            "y2=\"%.1f\" stroke=\"%s\"/>",
            xmin, mid, xmax, mid, c, xmin, mid - 4, xmin, mid + 4, c, xmax,
            mid - 4, xmax, mid + 4, c);
        stageprof__sb_addf(sb,
                           "<rect class=\"bar p99\" x=\"%.1f\" y=\"%.1f\" "
                           "width=\"%.1f\" height=\"12\" fill=\"%s\" "
                           "fill-opacity=\"0.35\"/>",
                           x90, y + 5, x99 - x90, c);
        stageprof__sb_addf(sb,
                           "<rect class=\"bar p90\" x=\"%.1f\" y=\"%.1f\" "
                           "width=\"%.1f\" height=\"12\" fill=\"%s\"/>",
                           x50, y + 5, x90 - x50 > 2 ? x90 - x50 : 2, c);
        stageprof__sb_addf(sb,
                           "<line class=\"p50\" x1=\"%.1f\" y1=\"%.1f\" "
                           "x2=\"%.1f\" y2=\"%.1f\" stroke=\"#222\" "
                           "stroke-width=\"2\"/>",
                           x50, y + 3, x50, y + 19);
        stageprof__sb_addf(sb, "<text class=\"value\" x=\"%d\" y=\"%.1f\">",
                           VALUE_X, y + 15);
        stageprof__sb_adds(sb, "p50 ");
        add_dur(sb, st->pct_ns[0]);
        stageprof__sb_adds(sb, " \xc2\xb7 p99 ");
        add_dur(sb, st->pct_ns[3]);
        stageprof__sb_adds(sb, "</text></g>\n");
    }
    stageprof__sb_adds(sb, "</svg>\n</section>\n");
}

/* ------------------------------------------------------------------------ */
/* Timeline of the slowest run                                              */
/* ------------------------------------------------------------------------ */

#define TL_LABEL_X 190
#define TL_X 200
#define TL_W 780
#define LANE_H 20

/* One lane: a stage, or the waits of one queue. */
struct lane {
    size_t key;    /* stage index, or nstages + queue index */
    int64_t first; /* its first item's start */
    double time;   /* its items' time, or its time on the path */
    size_t row;    /* where it is drawn */
};

/* A rectangle being drawn: items that touch on screen are merged. */
struct pending {
    double x0, x1;
    size_t key, n;
    double start, end; /* ns from the run's begin */
    int on;
    int mixed; /* holds several keys: slivers of under a pixel */
};

struct path_seg {
    size_t key;
    int64_t from, to;
};

struct timeline {
    const struct agg *a;
    const struct agg_run *r;
    struct path_seg *path;
    size_t npath, cap;
    int oom;
    struct axis ax;
    size_t *lane_of; /* key -> lane index */
    struct lane *lanes;
    size_t rects; /* drawn, for MAX_RECTS */
};

static size_t item_key(const struct agg *a, const struct run_item *it)
{
    return it->stage >= 0 ? (size_t)it->stage : a->nstages + (size_t)it->queue;
}

static void path_cb(void *arg, const struct run_item *it, int64_t from,
                    int64_t to)
{
    struct timeline *t = arg;
    if (grow(&t->path, &t->cap, t->npath + 1, sizeof *t->path) != 0) {
        t->oom = 1;
        return;
    }
    t->path[t->npath++] = (struct path_seg){item_key(t->a, it), from, to};
}

/* What lane @key is: a stage's name and colour, or a queue's wait. */
static void key_name(struct strbuf *sb, const struct agg *a, size_t key,
                     size_t cut)
{
    if (key < a->nstages) {
        esc_stage(sb, a->stages[key], cut);
    } else {
        stageprof__sb_adds(sb, "wait: ");
        const char *q = a->queues[key - a->nstages]->name;
        html_esc_cut(sb, q, strlen(q), cut);
    }
}

/* A lane's label: the stage's name, or "wait: " and the queue's. */
static void lane_label(struct strbuf *sb, const struct agg *a, size_t key)
{
    if (key < a->nstages) {
        html_esc_cut(sb, a->stages[key]->name, a->stages[key]->name_len,
                     NAME_CUT / 2);
    } else {
        const char *q = a->queues[key - a->nstages]->name;
        stageprof__sb_adds(sb, "wait: ");
        html_esc_cut(sb, q, strlen(q), NAME_CUT / 2 - 6);
    }
}

static const char *key_fill(const struct agg *a, size_t key, int other)
{
    if (other)
        return "#8c8c8c";
    if (key < a->nstages)
        return stage_color(a->stages[key]);
    return "url(#hatch-timeline)";
}

static void flush(struct strbuf *sb, struct timeline *t, struct pending *p,
                  double y, const char *cls, int other)
{
    if (!p->on)
        return;
    p->on = 0;
    if (t->rects++ >= MAX_RECTS)
        return;
    double w = p->x1 - p->x0 > 0.5 ? p->x1 - p->x0 : 0.5;
    other |= p->mixed;
    int wait = p->key >= t->a->nstages && !other;
    stageprof__sb_addf(sb,
                       "<rect class=\"%s%s\" x=\"%.2f\" y=\"%.1f\" "
                       "width=\"%.2f\" height=\"%d\" fill=\"%s\"%s><title>",
                       cls, wait ? " wait" : "", p->x0, y, w, LANE_H - 6,
                       key_fill(t->a, p->key, other),
                       wait ? " stroke=\"" WAIT_COLOR "\"" : "");
    if (strcmp(cls, "pathseg") == 0)
        stageprof__sb_adds(sb, "on the critical path: ");
    if (p->mixed)
        stageprof__sb_adds(sb, "several stages");
    else if (other)
        stageprof__sb_adds(sb, "other stages");
    else
        key_name(sb, t->a, p->key, TEXT_CUT);
    stageprof__sb_adds(sb, ": from +");
    add_dur(sb, (double)p->start);
    stageprof__sb_adds(sb, ", ");
    add_dur(sb, p->end - p->start);
    if (p->n > 1)
        stageprof__sb_addf(sb, " (%zu items merged on screen)", p->n);
    stageprof__sb_adds(sb, "</title></rect>\n");
}

/*
 * Add [start, end) of @key to @p, drawing what it held when they part.
 * Slivers under a pixel wide join whatever precedes them, so a path of
 * thousands of tiny items stays a few hundred rectangles.
 */
static void extend(struct strbuf *sb, struct timeline *t, struct pending *p,
                   size_t key, double start, double end, double y,
                   const char *cls, int other)
{
    double x0 = ax_pos(&t->ax, start);
    double x1 = ax_pos(&t->ax, end);
    int sliver = x1 - x0 < 1 && p->x1 - p->x0 < 1;
    if (p->on && (p->key == key || sliver) && x0 <= p->x1 + 0.5) {
        p->mixed |= p->key != key;
        p->x1 = x1 > p->x1 ? x1 : p->x1;
        p->end = end > p->end ? end : p->end;
        p->n++;
        return;
    }
    flush(sb, t, p, y, cls, other);
    *p = (struct pending){x0, x1, key, 1, start, end, 1, 0};
}

static int cmp_lane_time(const void *x, const void *y)
{
    const struct lane *a = x, *b = y;
    if (a->time != b->time)
        return a->time > b->time ? -1 : 1;
    return a->key < b->key ? -1 : a->key > b->key;
}

static int cmp_lane_first(const void *x, const void *y)
{
    const struct lane *a = x, *b = y;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    return a->key < b->key ? -1 : a->key > b->key;
}

/* The slowest run with bounds, or -1. */
static long slowest_run(const struct agg *a)
{
    long best = -1;
    for (size_t i = 0; i < a->nruns; i++) {
        const struct agg_run *r = &a->runs[i];
        if (!r->has_bounds || r->end < r->begin)
            continue;
        if (best < 0 || span(r->begin, r->end) >
                            span(a->runs[best].begin, a->runs[best].end))
            best = (long)i;
    }
    return best;
}

/* The time of each lane on the run's path, most first, as a table. */
static void timeline_path_table(struct strbuf *sb, struct timeline *t,
                                size_t nlanes)
{
    double latency = span(t->r->begin, t->r->end), on_items = 0;
    for (size_t i = 0; i < nlanes; i++)
        t->lanes[i].time = 0;
    for (size_t i = 0; i < t->npath; i++) {
        double d = span(t->path[i].from, t->path[i].to);
        t->lanes[t->lane_of[t->path[i].key]].time += d;
        on_items += d;
    }
    qsort(t->lanes, nlanes, sizeof *t->lanes, cmp_lane_time);
    stageprof__sb_adds(sb, "<table class=\"runpath\"><caption>Its critical "
                           "path</caption>\n<tr><th>stage or wait</th>"
                           "<th>time</th><th>share of the run</th></tr>\n");
    size_t shown = 0, rest = 0;
    double rest_ns = 0;
    for (size_t i = 0; i < nlanes && t->lanes[i].time > 0; i++) {
        if (shown == TOP_PATH) {
            rest++;
            rest_ns += t->lanes[i].time;
            continue;
        }
        shown++;
        stageprof__sb_adds(sb, "<tr><td>");
        key_name(sb, t->a, t->lanes[i].key, TEXT_CUT);
        stageprof__sb_adds(sb, "</td><td>");
        add_dur(sb, t->lanes[i].time);
        stageprof__sb_addf(sb, "</td><td>%.1f%%</td></tr>\n",
                           pct_of(t->lanes[i].time, latency));
    }
    if (rest > 0) {
        stageprof__sb_addf(sb, "<tr><td>%zu more stages or waits</td><td>",
                           rest);
        add_dur(sb, rest_ns);
        stageprof__sb_addf(sb, "</td><td>%.1f%%</td></tr>\n",
                           pct_of(rest_ns, latency));
    }
    if (latency > on_items) {
        stageprof__sb_adds(sb, "<tr><td>in no stage and no queue</td><td>");
        add_dur(sb, latency - on_items);
        stageprof__sb_addf(sb, "</td><td>%.1f%%</td></tr>\n",
                           pct_of(latency - on_items, latency));
    }
    stageprof__sb_adds(sb, "</table>\n");
}

static void timeline_draw(struct strbuf *sb, struct timeline *t)
{
    const struct agg *a = t->a;
    const struct agg_run *r = t->r;
    const struct run_item *items = a->items + r->first;
    size_t nkeys = a->nstages + a->nqueues, nlanes = 0;
    double latency = span(r->begin, r->end);

    /* Lanes in order of their first item; the least busy ones merged. */
    for (size_t k = 0; k < nkeys; k++)
        t->lane_of[k] = SIZE_MAX;
    for (size_t i = 0; i < r->nitems; i++) {
        size_t k = item_key(a, &items[i]);
        if (t->lane_of[k] == SIZE_MAX) {
            t->lane_of[k] = nlanes;
            t->lanes[nlanes++] = (struct lane){k, items[i].start, 0, 0};
        }
        t->lanes[t->lane_of[k]].time += span(items[i].start, items[i].end);
    }
    size_t kept = nlanes, other_row = SIZE_MAX;
    if (nlanes > MAX_LANES) {
        qsort(t->lanes, nlanes, sizeof *t->lanes, cmp_lane_time);
        kept = MAX_LANES - 1;
        other_row = kept;
        for (size_t i = kept; i < nlanes; i++)
            t->lanes[i].row = other_row;
    }
    qsort(t->lanes, kept, sizeof *t->lanes, cmp_lane_first);
    for (size_t i = 0; i < kept; i++)
        t->lanes[i].row = i;
    for (size_t i = 0; i < nlanes; i++)
        t->lane_of[t->lanes[i].key] = i;
    size_t rows = kept + (other_row != SIZE_MAX);

    axis_init(&t->ax, 0, latency, 0, TL_X, TL_W);
    /* The axis spans the run exactly; its end falls between two ticks. */
    t->ax.hi = latency > 0 ? latency : 1;
    double path_y = AXIS_H + (double)rows * LANE_H + 10;
    double h = path_y + LANE_H + 6;
    svg_open(sb, "timeline", h,
             "timeline of the slowest run with its critical path");
    hatch(sb, "hatch-timeline");
    axis_draw(sb, &t->ax, AXIS_H - 4, h - 4);
    /* The run's end, where the axis stops between two ticks. */
    stageprof__sb_addf(sb,
                       "<g class=\"axis\"><line x1=\"%d\" y1=\"%d\" "
                       "x2=\"%d\" y2=\"%.0f\"/></g>\n",
                       TL_X + TL_W, AXIS_H - 4, TL_X + TL_W, h - 4);
    /* Lane labels and bands. */
    for (size_t i = 0; i < rows; i++) {
        double y = AXIS_H + (double)i * LANE_H;
        stageprof__sb_addf(sb,
                           "<rect class=\"band\" x=\"%d\" y=\"%.1f\" "
                           "width=\"%d\" height=\"%d\" fill=\"%s\"/>"
                           "<text class=\"label\" x=\"%d\" y=\"%.1f\" "
                           "text-anchor=\"end\">",
                           TL_X, y, TL_W, LANE_H, i % 2 ? "#fafafa" : "#f3f3f3",
                           TL_LABEL_X, y + 14);
        if (i == other_row)
            stageprof__sb_addf(sb, "%zu other lanes", nlanes - kept);
        else
            lane_label(sb, a, t->lanes[i].key);
        stageprof__sb_adds(sb, "</text>\n");
    }
    stageprof__sb_addf(sb,
                       "<text class=\"label\" x=\"%d\" y=\"%.1f\" "
                       "text-anchor=\"end\" font-weight=\"bold\">critical "
                       "path</text>\n",
                       TL_LABEL_X, path_y + 14);

    /* Items: one pending rectangle per row, merged while they touch. */
    struct pending *pend = calloc(rows + 1, sizeof *pend);
    if (pend == NULL) {
        sb->oom = 1;
        return;
    }
    t->rects = 0;
    for (size_t i = 0; i < r->nitems; i++) {
        size_t row = t->lanes[t->lane_of[item_key(a, &items[i])]].row;
        double s = span(r->begin, items[i].start);
        double e = span(r->begin, items[i].end);
        extend(sb, t, &pend[row], row == other_row ? 0 : item_key(a, &items[i]),
               s, e, AXIS_H + (double)row * LANE_H + 3, "item",
               row == other_row);
    }
    for (size_t row = 0; row < rows; row++)
        flush(sb, t, &pend[row], AXIS_H + (double)row * LANE_H + 3, "item",
              row == other_row);
    size_t item_rects = t->rects;

    /* The path, in time order: outlines over the items, and its lane. */
    memset(pend, 0, (rows + 1) * sizeof *pend);
    struct pending lane = {0};
    t->rects = 0;
    for (size_t i = t->npath; i-- > 0;) {
        const struct path_seg *p = &t->path[i];
        double s = span(r->begin, p->from), e = span(r->begin, p->to);
        extend(sb, t, &lane, p->key, s, e, path_y + 3, "pathseg", 0);
    }
    flush(sb, t, &lane, path_y + 3, "pathseg", 0);
    stageprof__sb_adds(sb, "<g class=\"outline\">");
    for (size_t i = t->npath; i-- > 0;) {
        const struct path_seg *p = &t->path[i];
        size_t row = t->lanes[t->lane_of[p->key]].row;
        double x0 = ax_pos(&t->ax, span(r->begin, p->from));
        double x1 = ax_pos(&t->ax, span(r->begin, p->to));
        struct pending *q = &pend[row];
        if (q->on && x0 <= q->x1 + 0.5) {
            q->x1 = x1 > q->x1 ? x1 : q->x1;
            continue;
        }
        if (q->on && t->rects++ < MAX_RECTS)
            stageprof__sb_addf(sb,
                               "<rect class=\"path\" x=\"%.2f\" y=\"%.1f\" "
                               "width=\"%.2f\" height=\"%d\"/>",
                               q->x0, AXIS_H + (double)row * LANE_H + 2,
                               q->x1 - q->x0 > 1 ? q->x1 - q->x0 : 1,
                               LANE_H - 4);
        *q = (struct pending){x0, x1, 0, 1, 0, 0, 1, 0};
    }
    for (size_t row = 0; row < rows; row++) {
        struct pending *q = &pend[row];
        if (q->on && t->rects++ < MAX_RECTS)
            stageprof__sb_addf(sb,
                               "<rect class=\"path\" x=\"%.2f\" y=\"%.1f\" "
                               "width=\"%.2f\" height=\"%d\"/>",
                               q->x0, AXIS_H + (double)row * LANE_H + 2,
                               q->x1 - q->x0 > 1 ? q->x1 - q->x0 : 1,
                               LANE_H - 4);
    }
    stageprof__sb_adds(sb, "</g>\n</svg>\n");
    free(pend);
    if (item_rects > MAX_RECTS)
        stageprof__sb_addf(sb,
                           "<p class=\"note\">Only the first %d of %zu "
                           "rectangles are drawn.</p>\n",
                           MAX_RECTS, item_rects);
    timeline_path_table(sb, t, nlanes);
}

static void section_timeline(struct strbuf *sb, const struct agg *a)
{
    stageprof__sb_adds(sb, "<section id=\"slowest\">\n<h2>The slowest "
                           "run</h2>\n");
    long run = slowest_run(a);
    if (run < 0 || a->runs[run].nitems == 0) {
        stageprof__sb_adds(sb, "<p>No run to draw: the trace has no runs "
                               "(stageprof run ids, ProfilerStep spans or "
                               "top-level spans) with work in them.</p>\n"
                               "</section>\n");
        return;
    }
    const struct agg_run *r = &a->runs[run];
    struct timeline t = {.a = a, .r = r};
    size_t nkeys = a->nstages + a->nqueues;
    t.lane_of = malloc((nkeys + 1) * sizeof *t.lane_of);
    t.lanes = malloc((nkeys + 1) * sizeof *t.lanes);
    if (t.lane_of == NULL || t.lanes == NULL) {
        sb->oom = 1;
        goto out;
    }
    agg_run_path(a, (size_t)run, path_cb, &t);
    if (t.oom) {
        sb->oom = 1;
        goto out;
    }
    char d[48], from[48];
    stageprof__sb_addf(
        sb,
        "<p class=\"note\">Run %llu: %s, from %s into the "
        "trace; %zu items. One lane per stage (and per queue "
        "for waits, striped), whatever thread ran it. The "
        "critical path (walking back from the run's end: "
        "what ended last, then from its start) is outlined "
        "in black and repeated in the last lane.</p>\n",
        (unsigned long long)r->id,
        html_dur(d, sizeof d, span(r->begin, r->end)),
        html_dur(from, sizeof from,
                 a->have_wall ? span(a->first_ns, r->begin) : 0.0),
        r->nitems);
    timeline_draw(sb, &t);
out:
    free(t.lane_of);
    free(t.lanes);
    free(t.path);
    stageprof__sb_adds(sb, "</section>\n");
}

/* ------------------------------------------------------------------------ */
/* Queues                                                                   */
/* ------------------------------------------------------------------------ */

static double mean(int64_t total, uint64_t n)
{
    return n ? (double)total / (double)n : 0.0;
}

static int cmp_queue(const void *x, const void *y)
{
    const struct agg_queue *a = *(const struct agg_queue *const *)x;
    const struct agg_queue *b = *(const struct agg_queue *const *)y;
    if (a->wait_total_ns != b->wait_total_ns)
        return a->wait_total_ns > b->wait_total_ns ? -1 : 1;
    return strcmp(a->name, b->name);
}

static void section_queues(struct strbuf *sb, const struct agg *a)
{
    stageprof__sb_adds(sb, "<section id=\"queues\">\n<h2>Queues: wait "
                           "versus service</h2>\n");
    if (a->nqueues == 0) {
        stageprof__sb_adds(sb, "<p>No hand-offs: the trace has no flow "
                               "events (s/f) between stages, so no queue "
                               "waits.</p>\n</section>\n");
        return;
    }
    struct agg_queue **v = malloc(a->nqueues * sizeof *v);
    if (v == NULL) {
        sb->oom = 1;
        return;
    }
    memcpy(v, a->queues, a->nqueues * sizeof *v);
    qsort(v, a->nqueues, sizeof *v, cmp_queue);
    size_t n = a->nqueues < TOP_QUEUES ? a->nqueues : TOP_QUEUES;
    stageprof__sb_addf(sb,
                       "<p class=\"note\">Per queue (%zu of %zu, most wait "
                       "first): the mean wait from hand-off to pick-up "
                       "(striped), then the mean service from the pick-up to "
                       "the end of its run; the black tick is the p90 "
                       "wait.</p>\n<p class=\"legend\"><span><i "
                       "class=\"wait\"></i>wait</span> <span><i "
                       "style=\"background:%s\"></i>service</span></p>\n",
                       n, a->nqueues, SERVICE_COLOR);
    double max = 0;
    for (size_t i = 0; i < n; i++) {
        double w = mean(v[i]->wait_total_ns, v[i]->count);
        double s = mean(v[i]->service_total_ns, v[i]->service_count);
        max = w + s > max ? w + s : max;
        max = v[i]->wait_p90_ns > max ? v[i]->wait_p90_ns : max;
    }
    struct axis ax;
    axis_init(&ax, 0, max, 0, PLOT_X, PLOT_W);
    double h = AXIS_H + (double)n * ROW_H + 6;
    svg_open(sb, "queue-chart", h, "mean queue wait and service per queue");
    hatch(sb, "hatch-queues");
    axis_draw(sb, &ax, AXIS_H - 4, h - 4);
    for (size_t i = 0; i < n; i++) {
        const struct agg_queue *q = v[i];
        double y = AXIS_H + (double)i * ROW_H;
        double w = mean(q->wait_total_ns, q->count);
        double s = mean(q->service_total_ns, q->service_count);
        double xw = ax_pos(&ax, w), xs = ax_pos(&ax, w + s);
        double x90 = ax_pos(&ax, q->wait_p90_ns);
        stageprof__sb_adds(sb, "<g class=\"row\"><title>");
        esc(sb, q->name);
        stageprof__sb_addf(sb, ": %llu hand-offs, wait mean ",
                           (unsigned long long)q->count);
        add_dur(sb, w);
        stageprof__sb_adds(sb, ", p90 ");
        add_dur(sb, q->wait_p90_ns);
        stageprof__sb_adds(sb, ", service mean ");
        add_dur(sb, s);
        stageprof__sb_addf(sb,
                           "</title><text class=\"label\" x=\"%d\" "
                           "y=\"%.1f\" text-anchor=\"end\">",
                           LABEL_X, y + 15);
        html_esc_cut(sb, q->name, strlen(q->name), NAME_CUT / 2);
        stageprof__sb_addf(sb,
                           "</text><rect class=\"bar wait\" x=\"%d\" "
                           "y=\"%.1f\" width=\"%.1f\" height=\"14\" "
                           "fill=\"url(#hatch-queues)\" stroke=\"%s\"/>",
                           PLOT_X, y + 4, xw - PLOT_X > 1 ? xw - PLOT_X : 1,
                           WAIT_COLOR);
        stageprof__sb_addf(sb,
                           "<rect class=\"bar service\" x=\"%.1f\" y=\"%.1f\" "
                           "width=\"%.1f\" height=\"14\" fill=\"%s\"/>",
                           xw, y + 4, xs - xw > 1 ? xs - xw : 1, SERVICE_COLOR);
        stageprof__sb_addf(sb,
                           "<line class=\"p90\" x1=\"%.1f\" y1=\"%.1f\" "
                           "x2=\"%.1f\" y2=\"%.1f\" stroke=\"#222\" "
                           "stroke-width=\"2\"/>",
                           x90, y + 2, x90, y + 20);
        stageprof__sb_addf(sb, "<text class=\"value\" x=\"%d\" y=\"%.1f\">",
                           VALUE_X, y + 15);
        stageprof__sb_adds(sb, "wait ");
        add_dur(sb, w);
        stageprof__sb_adds(sb, " \xc2\xb7 service ");
        add_dur(sb, s);
        stageprof__sb_adds(sb, "</text></g>\n");
    }
    stageprof__sb_adds(sb, "</svg>\n<table><tr><th>queue</th><th>hand-offs"
                           "</th><th>wait mean</th><th>wait p50</th><th>"
                           "wait p90</th><th>wait max</th><th>service mean"
                           "</th><th>on critical paths</th></tr>\n");
    for (size_t i = 0; i < a->nqueues; i++) {
        const struct agg_queue *q = v[i];
        stageprof__sb_adds(sb, "<tr><td>");
        esc(sb, q->name);
        stageprof__sb_addf(sb, "</td><td>%llu</td><td>",
                           (unsigned long long)q->count);
        add_dur(sb, mean(q->wait_total_ns, q->count));
        stageprof__sb_adds(sb, "</td><td>");
        add_dur(sb, q->wait_p50_ns);
        stageprof__sb_adds(sb, "</td><td>");
        add_dur(sb, q->wait_p90_ns);
        stageprof__sb_adds(sb, "</td><td>");
        add_dur(sb, (double)q->wait_max_ns);
        stageprof__sb_adds(sb, "</td><td>");
        add_dur(sb, mean(q->service_total_ns, q->service_count));
        stageprof__sb_addf(sb, "</td><td>%llu runs, ",
                           (unsigned long long)q->path_runs);
        add_dur(sb, (double)q->path_ns);
        stageprof__sb_adds(sb, "</td></tr>\n");
    }
    stageprof__sb_adds(sb, "</table>\n</section>\n");
    free(v);
}

/* ------------------------------------------------------------------------ */
/* Runs                                                                     */
/* ------------------------------------------------------------------------ */

struct run_ref {
    int64_t begin;
    double latency;
    uint64_t id;
    size_t index;
};

static int cmp_run_begin(const void *x, const void *y)
{
    const struct run_ref *a = x, *b = y;
    if (a->begin != b->begin)
        return a->begin < b->begin ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

/* Every run's latency, in start order; warm-up runs and the slowest
 * marked. Runs share a column when there are more than MAX_COLUMNS. */
static void runs_chart(struct strbuf *sb, const struct agg *a)
{
    struct run_ref *v = malloc((a->nruns + 1) * sizeof *v);
    size_t n = 0;
    long slow = slowest_run(a);
    if (v == NULL) {
        sb->oom = 1;
        return;
    }
    for (size_t i = 0; i < a->nruns; i++) {
        const struct agg_run *r = &a->runs[i];
        if (r->has_bounds && r->end >= r->begin)
            v[n++] =
                (struct run_ref){r->begin, span(r->begin, r->end), r->id, i};
    }
    if (n == 0) {
        free(v);
        return;
    }
    qsort(v, n, sizeof *v, cmp_run_begin);
    size_t cols = n < MAX_COLUMNS ? n : MAX_COLUMNS;
    const double x0 = 80, w = 880, top = 14, ph = 150;
    double max = 0;
    for (size_t i = 0; i < n; i++)
        max = v[i].latency > max ? v[i].latency : max;
    double step = nice_step(max, 4);
    double hi = ceil(max / step - 1e-9) * step;
    hi = hi > 0 ? hi : 1;
    svg_open(sb, "run-chart", top + ph + 30, "latency of every run");
    stageprof__sb_adds(sb, "<g class=\"axis\">");
    for (int k = 0; k * step <= hi * (1 + 1e-9); k++) {
        char b[48];
        double y = top + ph - ph * (k * step) / hi;
        stageprof__sb_addf(sb,
                           "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" "
                           "y2=\"%.1f\"/><text x=\"%.0f\" y=\"%.1f\" "
                           "text-anchor=\"end\">%s</text>",
                           x0, y, x0 + w, y, x0 - 6, y + 4,
                           tick(b, sizeof b, k * step));
    }
    stageprof__sb_addf(sb,
                       "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">"
                       "runs in start order (%zu)</text></g>\n",
                       x0 + w / 2, top + ph + 22, n);
    double cw = w / (double)cols;
    for (size_t c = 0; c < cols; c++) {
        /* Column c holds runs [c n / cols, (c + 1) n / cols). */
        size_t from = c * n / cols, to = (c + 1) * n / cols, top_i = from;
        int warm = 0, has_slow = 0;
        for (size_t i = from; i < to; i++) {
            if (v[i].latency > v[top_i].latency)
                top_i = i;
            warm |= i < a->rs.warmup;
            has_slow |= (long)v[i].index == slow;
        }
        double bh = ph * v[top_i].latency / hi;
        char d[48];
        stageprof__sb_addf(
            sb,
            "<rect class=\"run%s\" x=\"%.2f\" y=\"%.2f\" "
            "width=\"%.2f\" height=\"%.2f\" fill=\"%s\"%s>"
            "<title>run %llu: %s%s%s</title></rect>\n",
            warm ? " warmup" : "", x0 + (double)c * cw + cw * 0.1,
            top + ph - (bh > 0.5 ? bh : 0.5), cw * 0.8 > 0.5 ? cw * 0.8 : 0.5,
            bh > 0.5 ? bh : 0.5, warm ? "#f28e2b" : SERVICE_COLOR,
            has_slow ? " stroke=\"#e15759\" stroke-width=\"2\"" : "",
            (unsigned long long)v[top_i].id,
            html_dur(d, sizeof d, v[top_i].latency), warm ? ", warm-up" : "",
            to - from > 1 ? " (the slowest of its column)" : "");
    }
    stageprof__sb_adds(sb, "</svg>\n");
    free(v);
}

static void section_runs(struct strbuf *sb, const struct agg *a)
{
    const struct agg_runs *rs = &a->rs;
    static const char *const kinds[] = {"none", "stageprof run ids (args.run)",
                                        "PyTorch ProfilerStep#N spans",
                                        "top-level spans (no run ids)"};
    stageprof__sb_adds(sb, "<section id=\"runs\">\n<h2>Runs</h2>\n");
    if (rs->count == 0) {
        stageprof__sb_adds(sb, "<p>No runs: the trace has no stageprof run "
                               "ids, ProfilerStep spans or top-level spans "
                               "with bounds.</p>\n</section>\n");
        return;
    }
    stageprof__sb_addf(sb,
                       "<table class=\"facts\">\n<tr><th>runs</th><td>%llu, "
                       "from %s</td></tr>\n<tr><th>latency</th><td>",
                       (unsigned long long)rs->count,
                       kinds[rs->kind <= AGG_RUNS_TOP_LEVEL ? rs->kind : 0]);
    static const char *const pn[] = {"p50", "p90", "p95", "p99", "p99.9"};
    for (int k = 0; k < AGG_NPCT; k++) {
        if (k == 2 || k == 4)
            continue;
        stageprof__sb_addf(sb, "%s ", pn[k]);
        add_dur(sb, rs->pct_ns[k]);
        stageprof__sb_adds(sb, " \xc2\xb7 ");
    }
    stageprof__sb_adds(sb, "max ");
    add_dur(sb, (double)rs->max_ns);
    stageprof__sb_adds(sb, " \xc2\xb7 mean ");
    add_dur(sb, mean(rs->total_ns, rs->count));
    stageprof__sb_addf(sb,
                       "</td></tr>\n<tr><th>throughput</th><td>%.3f runs/s"
                       "</td></tr>\n<tr><th>warm-up</th><td>",
                       rs->throughput);
    if (rs->warmup > 0) {
        stageprof__sb_addf(sb, "the first %llu runs, mean latency ",
                           (unsigned long long)rs->warmup);
        add_dur(sb, (double)rs->warmup_mean_ns);
        stageprof__sb_addf(sb, "; %.3f runs/s after them",
                           rs->steady_throughput);
    } else {
        stageprof__sb_adds(sb, "none left out (fewer than 10 runs)");
    }
    stageprof__sb_adds(sb, "</td></tr>\n<tr><th>engine overhead</th><td>");
    add_dur(sb, (double)rs->engine_ns);
    stageprof__sb_addf(sb,
                       " (%.1f%% of run time: inside runs, in no stage and "
                       "no queue)</td></tr>\n</table>\n",
                       pct_of(rs->engine_ns, rs->total_ns));
    stageprof__sb_adds(sb, "<p class=\"note\">Latency of every run in start "
                           "order; warm-up runs in orange, the slowest "
                           "outlined in red.</p>\n");
    runs_chart(sb, a);
    stageprof__sb_adds(sb, "</section>\n");
}

/* ------------------------------------------------------------------------ */
/* Trace facts                                                              */
/* ------------------------------------------------------------------------ */

static void section_trace(struct strbuf *sb, const struct agg *a,
                          const struct html_facts *f)
{
    stageprof__sb_adds(sb, "<section id=\"trace\">\n<h2>Trace</h2>\n"
                           "<table class=\"facts\">\n<tr><th>files</th><td>");
    for (size_t i = 0; i < f->nfiles; i++) {
        stageprof__sb_adds(sb, i ? "<br><code>" : "<code>");
        esc(sb, f->files[i]);
        stageprof__sb_adds(sb, "</code>");
    }
    stageprof__sb_addf(sb,
                       "</td></tr>\n<tr><th>events</th><td>%llu</td></tr>\n"
                       "<tr><th>dropped by the writer</th><td>%lld</td></tr>\n"
                       "<tr><th>producer</th><td>",
                       (unsigned long long)f->events, (long long)f->dropped);
    esc(sb, f->producer != NULL ? f->producer : "chrome");
    stageprof__sb_addf(sb,
                       "</td></tr>\n<tr><th>complete</th><td>%s%s</td></tr>\n"
                       "<tr><th>wall time</th><td>",
                       f->complete > 0    ? "yes"
                       : f->complete == 0 ? "no"
                                          : "unknown (no stageprof trailer)",
                       f->truncated ? " (a file was cut short)" : "");
    add_dur(sb, a->have_wall ? span(a->first_ns, a->last_ns) : 0.0);
    stageprof__sb_addf(sb,
                       " (first slice to last)</td></tr>\n"
                       "<tr><th>stages</th><td>%zu</td></tr>\n"
                       "<tr><th>warnings</th><td>",
                       a->nstages);
    if (f->nwarnings == 0)
        stageprof__sb_adds(sb, "none");
    stageprof__sb_adds(sb, "<ul class=\"warnings\">");
    for (size_t i = 0; i < f->nwarnings; i++) {
        stageprof__sb_adds(sb, "<li>");
        html_esc_cut(sb, f->warnings[i], strlen(f->warnings[i]), 2 * TEXT_CUT);
        stageprof__sb_adds(sb, "</li>");
    }
    stageprof__sb_adds(sb, "</ul></td></tr>\n</table>\n");

    double wall = a->have_wall ? span(a->first_ns, a->last_ns) : 0;
    int any = 0;
    for (size_t i = 0; i < a->nthreads; i++) {
        const struct agg_thread *t = a->threads[i];
        if (t->slices == 0)
            continue;
        if (!any++)
            stageprof__sb_adds(sb, "<table><caption>Threads</caption>\n"
                                   "<tr><th>thread</th><th>pid</th><th>tid"
                                   "</th><th>slices</th><th>busy</th><th>"
                                   "busy share</th></tr>\n");
        stageprof__sb_adds(sb, "<tr><td>");
        esc(sb, t->name != NULL ? t->name : "");
        stageprof__sb_adds(sb, "</td><td>");
        esc(sb, t->pid);
        stageprof__sb_adds(sb, "</td><td>");
        esc(sb, t->tid);
        stageprof__sb_addf(sb, "</td><td>%llu</td><td>",
                           (unsigned long long)t->slices);
        add_dur(sb, (double)t->busy_ns);
        stageprof__sb_addf(sb, "</td><td>%.1f%%</td></tr>\n",
                           pct_of(t->busy_ns, wall));
    }
    if (any)
        stageprof__sb_adds(sb, "</table>\n");
    for (size_t i = 0; i < a->ncounters; i++) {
        const struct agg_counter *c = a->counters[i];
        if (i == 0)
            stageprof__sb_adds(sb, "<table><caption>Counters</caption>\n"
                                   "<tr><th>counter</th><th>series</th><th>"
                                   "samples</th><th>min</th><th>mean</th>"
                                   "<th>max</th><th>last</th></tr>\n");
        stageprof__sb_adds(sb, "<tr><td>");
        esc(sb, c->name);
        stageprof__sb_adds(sb, "</td><td>");
        esc(sb, c->series);
        stageprof__sb_addf(sb,
                           "</td><td>%llu</td><td>%.6g</td><td>%.6g</td>"
                           "<td>%.6g</td><td>%.6g</td></tr>\n",
                           (unsigned long long)c->count, c->min,
                           c->count ? c->sum / (double)c->count : 0.0, c->max,
                           c->last);
    }
    if (a->ncounters > 0)
        stageprof__sb_adds(sb, "</table>\n");
    stageprof__sb_adds(sb, "</section>\n");
}

/* ------------------------------------------------------------------------ */
/* The page                                                                 */
/* ------------------------------------------------------------------------ */

static const char css[] =
    "body{margin:0;background:#fff;color:#222;font:14px/1.45 system-ui,"
    "-apple-system,'Segoe UI',Roboto,sans-serif}\n"
    "main{max-width:1020px;margin:0 auto;padding:12px 20px 40px}\n"
    "h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;margin:28px 0 "
    "6px;padding-bottom:3px;border-bottom:1px solid #ddd}\n"
    ".sub{color:#555;margin:0 0 12px}\n"
    ".verdict{background:#fdf2f2;border-left:6px solid #e15759;padding:2px "
    "16px 10px}\n.verdict h2{border:0;margin-top:10px}\n"
    ".bottleneck{font-size:18px;margin:4px 0}.cat{color:#666}\n"
    ".note{color:#555;font-size:13px;margin:4px 0}\n"
    ".legend{font-size:12px;color:#444;margin:2px 0}.legend span{margin-right:"
    "12px;white-space:nowrap}.legend i{display:inline-block;width:12px;"
    "height:12px;margin-right:4px;vertical-align:-2px;border-radius:2px}\n"
    ".legend i.wait{background:repeating-linear-gradient(45deg,#9c755f 0 "
    "3px,#eadfd4 3px 6px)}\n"
    "svg.chart{display:block;max-width:100%;height:auto;margin:6px 0}\n"
    "svg text{font:12px system-ui,sans-serif;fill:#222}svg .value{fill:#444;"
    "font-variant-numeric:tabular-nums}\n"
    "svg .axis line{stroke:#e2e2e2}svg .axis text{fill:#777;font-size:11px}\n"
    "svg rect.path{fill:none;stroke:#111;stroke-width:1.6}\n"
    "table{border-collapse:collapse;margin:8px 0;font-variant-numeric:"
    "tabular-nums}caption{text-align:left;font-weight:600;padding:4px 0}\n"
    "th,td{padding:2px 10px;border-bottom:1px solid #eee;text-align:right;"
    "vertical-align:top}th:first-child,td:first-child{text-align:left}\n"
    "table.path td:nth-child(2),table.path th:nth-child(2){text-align:left}\n"
    "table.facts th{text-align:left;color:#555;font-weight:500}table.facts "
    "td{text-align:left}\nul.warnings{margin:0;padding-left:18px}\n"
    "code{font-size:12px;word-break:break-all}\n"
    "footer{color:#888;font-size:12px;margin-top:30px}\n";

void html_head(struct strbuf *sb, const char *title)
{
    stageprof__sb_adds(
        sb, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta "
            "charset=\"utf-8\">\n<meta http-equiv=\"Content-Security-"
            "Policy\" content=\"default-src 'none'; style-src "
            "'unsafe-inline'\">\n<meta name=\"viewport\" content=\"width="
            "device-width, initial-scale=1\">\n<meta name=\"generator\" "
            "content=\"");
    html_esc_cut(sb, title, strlen(title), TEXT_CUT);
    stageprof__sb_adds(sb, "\">\n<title>");
    html_esc_cut(sb, title, strlen(title), TEXT_CUT);
    stageprof__sb_adds(sb, "</title>\n<style>\n");
    stageprof__sb_adds(sb, css);
    stageprof__sb_adds(sb, "</style>\n</head>\n<body>\n<main>\n<h1>");
    html_esc_cut(sb, title, strlen(title), TEXT_CUT);
    stageprof__sb_adds(sb, "</h1>\n");
}

static void page(struct strbuf *sb, const struct agg *a,
                 struct agg_stage *const *stages, size_t nstages,
                 const struct html_facts *f)
{
    char d[48];
    html_head(sb, "stageprof report");
    stageprof__sb_addf(sb,
                       "<p class=\"sub\">%zu file%s \xc2\xb7 "
                       "%llu events \xc2\xb7 producer ",
                       f->nfiles, f->nfiles == 1 ? "" : "s",
                       (unsigned long long)f->events);
    esc(sb, f->producer != NULL ? f->producer : "chrome");
    stageprof__sb_addf(
        sb, " \xc2\xb7 wall %s \xc2\xb7 %llu runs</p>\n",
        html_dur(d, sizeof d,
                 a->have_wall ? span(a->first_ns, a->last_ns) : 0.0),
        (unsigned long long)a->rs.count);
    section_verdict(sb, a);
    section_stages(sb, stages, nstages);
    section_latency(sb, stages, nstages);
    section_timeline(sb, a);
    section_queues(sb, a);
    section_runs(sb, a);
    section_trace(sb, a, f);
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                  */
/* ------------------------------------------------------------------------ */

/* @len bytes to @path through @path.tmp and a rename. */
int html_write_atomic(const char *path, const char *data, size_t len, char *err,
                      size_t errlen)
{
    size_t n = strlen(path);
    char *tmp = malloc(n + 5);
    if (tmp == NULL) {
        snprintf(err, errlen, "cannot write %s: out of memory", path);
        return -1;
    }
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    int bad = fwrite(data, 1, len, f) != len || fflush(f) != 0 ||
              fsync(fileno(f)) != 0;
    int saved = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        saved = errno;
    }
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        saved = errno;
    }
    if (bad) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(saved));
        unlink(tmp);
    }
    free(tmp);
    return bad ? -1 : 0;
}

int html_finish(struct strbuf *sb, const char *command, int oom,
                const char *path, char *err, size_t errlen)
{
    stageprof__sb_addf(sb,
                       "<footer>Written by stageprof %s.</footer>\n</main>\n"
                       "</body>\n</html>\n",
                       command);
    int rc = -1;
    if (sb->oom || oom)
        snprintf(err, errlen, "cannot write %s: out of memory", path);
    else
        rc = html_write_atomic(path, sb->buf, sb->len, err, errlen);
    stageprof__sb_fini(sb);
    return rc;
}

int html_report_write(const char *path, const struct agg *a,
                      struct agg_stage *const *stages, size_t nstages,
                      const struct html_facts *f, char *err, size_t errlen)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    page(&sb, a, stages, nstages, f);
    return html_finish(&sb, "report --html", f->oom, path, err, errlen);
}
