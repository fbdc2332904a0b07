/*
 * history_html.h - `stageprof history show --html FILE`: a stage's trend
 * as one self-contained page (html_report.h's head and escaping: inline
 * CSS and SVG, no script, nothing fetched).
 */
#ifndef STAGEPROF_CLI_HISTORY_HTML_H
#define STAGEPROF_CLI_HISTORY_HTML_H

#include <stddef.h>
#include <stdint.h>

#include "history_db.h"

/* One entry of the trend. */
struct history_point {
    const struct history_entry *e; /* borrowed */
    int has;                       /* the entry has the series */
    double v;                      /* its statistic, ns (when has) */
    uint64_t count;                /* spans or runs behind it */
};

/*
 * history_html - write the trend of @what (the series' name as shown,
 * @what_len bytes) for statistic @stat, read from history @db, to @path
 * through "@path.tmp" and a rename.
 * Returns 0, or -1 with the reason in @err.
 */
int history_html(const char *path, const char *what, size_t what_len,
                 const char *stat, const char *db,
                 const struct history_point *p, size_t n, char *err,
                 size_t errlen);

#endif /* STAGEPROF_CLI_HISTORY_HTML_H */
