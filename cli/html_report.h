/*
 * html_report.h - `stageprof report --html FILE`: the report as one
 * self-contained HTML page (inline CSS and SVG, no script, nothing fetched).
 *
 * cmd_report.c fills a struct html_facts with what it knows beyond struct
 * agg (the files read, their producer and completeness, the warnings) and
 * calls html_report_write() after agg_finish(). The page shows the verdict,
 * stage times, latency distributions, the slowest run's timeline with its
 * critical path, queue wait against service time, the runs and the trace
 * facts; docs/cli/stageprof-report.md describes it.
 */
#ifndef STAGEPROF_HTML_REPORT_H
#define STAGEPROF_HTML_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "agg.h"
#include "trace_load.h"

/* What the page says about the input, beside the aggregation. */
struct html_facts {
    const char *producer; /* borrowed: "stageprof", "pytorch", ... */
    const char **files;   /* borrowed paths, in reading order */
    size_t nfiles, files_cap;
    uint64_t events; /* all files */
    int64_t dropped; /* events the writers say they dropped */
    int complete;    /* 1 every file says complete, 0 one does not, -1 ? */
    int truncated;   /* a file was cut short */
    char **warnings; /* owned copies, as sentences */
    size_t nwarnings, warnings_cap;
    int oom; /* an allocation failed: the lists are short */
};

/* html_facts_init - empty facts for input written by @producer. */
void html_facts_init(struct html_facts *f, const char *producer);
/*
 * html_facts_file - add one file read: @path (borrowed until
 * html_facts_fini) and what reading it found.
 */
void html_facts_file(struct html_facts *f, const char *path,
                     const struct tl_result *res);
/* html_facts_warning - add a warning sentence (copied); @facts is a
 * struct html_facts (the shape of a warnings callback). */
void html_facts_warning(void *facts, const char *msg);
void html_facts_fini(struct html_facts *f);

/*
 * html_report_write - write the page for @a (after agg_finish) to @path,
 * through "@path.tmp" and a rename, so @path is the old file or the whole
 * new one.
 * @stages: the stages the tables show (filters and --top applied),
 *          largest total first; the charts take the first 20.
 * @f: the trace facts.
 * Returns 0, or -1 with a message in @err ("cannot write PATH: why").
 */
int html_report_write(const char *path, const struct agg *a,
                      struct agg_stage *const *stages, size_t nstages,
                      const struct html_facts *f, char *err, size_t errlen);

/* Pieces shared with `stageprof diff --html` (diff_html.c). */
struct strbuf;
/*
 * @len bytes of @s as HTML text, safe in an attribute value too: invalid
 * UTF-8 as U+FFFD, control bytes as \xHH, at most @cut code points.
 */
void html_esc_cut(struct strbuf *sb, const char *s, size_t len, size_t cut);
/* @ns for reading, three digits: "850 ns", "30.0 µs", "2.41 ms", "1.23 s". */
const char *html_dur(char *buf, size_t len, double ns);
/* The page's head (strict CSP: no script, nothing fetched), the shared
 * stylesheet, and <h1>@title</h1>. */
void html_head(struct strbuf *sb, const char *title);
/* End the page begun by html_head() (a footer naming "stageprof
 * @command"), write it to @path with html_write_atomic() unless @sb or the
 * caller (@oom) ran out of memory, and free @sb; 0 or -1 (@err). */
int html_finish(struct strbuf *sb, const char *command, int oom,
                const char *path, char *err, size_t errlen);
/* @len bytes to @path through @path.tmp and a rename; 0, or -1 with the
 * reason in @err. */
int html_write_atomic(const char *path, const char *data, size_t len, char *err,
                      size_t errlen);

#endif
