/*
 * history_html.c - the trend page of `stageprof history show --html`
 * (history_html.h): a line chart of the statistic over the entries,
 * oldest left, one point per entry with a tooltip (an SVG <title>), gaps
 * where an entry lacks the stage, then the table of the same figures.
 *
 * Chart: svg.chart.trend, polyline.trend for each unbroken stretch,
 * circle.point per entry that has a value (data-entry, data-value-ns).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "history_html.h"
#include "html_report.h"
#include "util/strbuf.h"

#define TEXT_CUT 300
#define SVG_W 1000
#define SVG_H 320
#define PLOT_X 80 /* left edge of the plot */
#define PLOT_R 980
#define PLOT_TOP 16
#define PLOT_BOT 280
#define TICKS 5
#define XLABELS 12 /* entry ids written under the axis, at most */

static void esc(struct strbuf *sb, const char *s)
{
    html_esc_cut(sb, s, strlen(s), TEXT_CUT);
}

static void labels(struct strbuf *sb, const struct history_entry *e)
{
    for (size_t i = 0; i < e->nlabels; i++) {
        if (i > 0)
            stageprof__sb_adds(sb, " ");
        esc(sb, e->labels[i].key);
        stageprof__sb_adds(sb, "=");
        esc(sb, e->labels[i].value);
    }
}

static double xat(size_t i, size_t n)
{
    if (n <= 1)
        return (PLOT_X + PLOT_R) / 2.0;
    return PLOT_X + (double)i * (PLOT_R - PLOT_X) / (double)(n - 1);
}

static void chart(struct strbuf *sb, const struct history_point *p, size_t n)
{
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (p[i].has) {
            lo = fmin(lo, p[i].v);
            hi = fmax(hi, p[i].v);
        }
    if (!(lo <= hi)) {
        stageprof__sb_adds(sb, "<p class=\"note\">No entry shown has this "
                               "stage.</p>\n");
        return;
    }
    /* A margin of a tenth of the range (of the value when flat), never
     * below zero: durations are not negative. */
    double pad = hi > lo ? (hi - lo) / 10 : (hi > 0 ? hi / 10 : 1);
    lo = fmax(0, lo - pad);
    hi += pad;
    stageprof__sb_addf(sb,
                       "<svg class=\"chart trend\" viewBox=\"0 0 %d %d\" "
                       "width=\"%d\" height=\"%d\" role=\"img\">\n"
                       "<g class=\"axis\">\n",
                       SVG_W, SVG_H + 20, SVG_W, SVG_H + 20);
    for (int t = 0; t <= TICKS; t++) {
        double v = lo + (hi - lo) * t / TICKS;
        double y = PLOT_BOT - (double)t * (PLOT_BOT - PLOT_TOP) / TICKS;
        char d[48];
        stageprof__sb_addf(sb,
                           "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" "
                           "y2=\"%.1f\"/><text x=\"%d\" y=\"%.1f\" "
                           "text-anchor=\"end\">%s</text>\n",
                           PLOT_X, PLOT_R, y, y, PLOT_X - 6, y + 4,
                           html_dur(d, sizeof d, v));
    }
    size_t every = (n + XLABELS - 1) / XLABELS;
    for (size_t i = 0; i < n; i += every ? every : 1)
        stageprof__sb_addf(sb,
                           "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">"
                           "#%lld</text>\n",
                           xat(i, n), PLOT_BOT + 18, p[i].e->id);
    stageprof__sb_addf(sb,
                       "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">"
                       "entry (oldest left)</text>\n</g>\n",
                       (PLOT_X + PLOT_R) / 2, PLOT_BOT + 38);
    /* Lines through consecutive entries that have a value. */
    int open = 0;
    for (size_t i = 0; i < n; i++) {
        if (!p[i].has) {
            if (open)
                stageprof__sb_adds(sb, "\"/>\n");
            open = 0;
            continue;
        }
        double y = PLOT_BOT - (p[i].v - lo) / (hi - lo) * (PLOT_BOT - PLOT_TOP);
        stageprof__sb_addf(sb, "%s%.1f,%.1f",
                           open ? " "
                                : "<polyline class=\"trend\" "
                                  "fill=\"none\" stroke=\"#4e79a7\" "
                                  "stroke-width=\"2\" points=\"",
                           xat(i, n), y);
        open = 1;
    }
    if (open)
        stageprof__sb_adds(sb, "\"/>\n");
    for (size_t i = 0; i < n; i++) {
        if (!p[i].has)
            continue;
        double y = PLOT_BOT - (p[i].v - lo) / (hi - lo) * (PLOT_BOT - PLOT_TOP);
        char d[48];
        stageprof__sb_addf(sb,
                           "<circle class=\"point\" cx=\"%.1f\" cy=\"%.1f\" "
                           "r=\"4\" fill=\"#4e79a7\" data-entry=\"%lld\" "
                           "data-value-ns=\"%.17g\"><title>#%lld ",
                           xat(i, n), y, p[i].e->id, p[i].v, p[i].e->id);
        esc(sb, p[i].e->added_at);
        stageprof__sb_addf(sb, ": %s ", html_dur(d, sizeof d, p[i].v));
        labels(sb, p[i].e);
        stageprof__sb_adds(sb, "</title></circle>\n");
    }
    stageprof__sb_adds(sb, "</svg>\n");
}

static void table(struct strbuf *sb, const char *stat,
                  const struct history_point *p, size_t n)
{
    stageprof__sb_addf(sb,
                       "<table class=\"trend\">\n<tr><th>entry</th><th>added "
                       "(UTC)</th><th>%s</th><th>count</th><th>traces</th>"
                       "<th>labels</th></tr>\n",
                       stat);
    for (size_t i = 0; i < n; i++) {
        char d[48];
        stageprof__sb_addf(sb, "<tr><td>%lld</td><td>", p[i].e->id);
        esc(sb, p[i].e->added_at);
        if (p[i].has)
            stageprof__sb_addf(sb, "</td><td>%s</td><td>%llu</td>",
                               html_dur(d, sizeof d, p[i].v),
                               (unsigned long long)p[i].count);
        else
            stageprof__sb_adds(sb, "</td><td>\xe2\x80\x93</td><td>0</td>");
        stageprof__sb_addf(sb, "<td>%zu</td><td style=\"text-align:left\">",
                           p[i].e->ntraces);
        labels(sb, p[i].e);
        stageprof__sb_adds(sb, "</td></tr>\n");
    }
    stageprof__sb_adds(sb, "</table>\n");
}

int history_html(const char *path, const char *what, size_t what_len,
                 const char *stat, const char *db,
                 const struct history_point *p, size_t n, char *err,
                 size_t errlen)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    html_head(&sb, "stageprof history");
    stageprof__sb_adds(&sb, "<p class=\"sub\">");
    html_esc_cut(&sb, what, what_len, TEXT_CUT);
    stageprof__sb_addf(&sb, " \xc2\xb7 %s \xc2\xb7 %zu entr%s \xc2\xb7 ", stat,
                       n, n == 1 ? "y" : "ies");
    esc(&sb, db);
    stageprof__sb_adds(&sb, "</p>\n<h2>Trend</h2>\n");
    chart(&sb, p, n);
    stageprof__sb_adds(&sb, "<h2>Entries</h2>\n");
    table(&sb, stat, p, n);
    return html_finish(&sb, "history show --html", 0, path, err, errlen);
}
