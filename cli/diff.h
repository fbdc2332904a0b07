/*
 * diff.h - the state of `stageprof diff` (cmd_diff.c) and its outputs:
 * the terminal table and Markdown (diff_out.c), JSON (diff_out.c) and the
 * HTML page (diff_html.c). docs/cli/stageprof-diff.md documents them.
 */
#ifndef STAGEPROF_CLI_DIFF_H
#define STAGEPROF_CLI_DIFF_H

#include <stddef.h>
#include <stdint.h>
#include <stdnoreturn.h>

#include "cli.h"
#include "stats.h"
#include "trace_load.h"

/* Statistics compared, in this order: mean, p50, p95, p99. */
#define DIFF_NSTAT 4
extern const char *const diff_stat_names[DIFF_NSTAT];
#define DIFF_P50 1 /* the statistic a stage's verdict comes from */

/* Header fields compared between the sides. */
#define DIFF_NENV 8
extern const char *const diff_env_fields[DIFF_NENV];

/*
 * Resamples of the single-trace block bootstrap by default: each one is a
 * pass over every span of the trace (the repetitions' bootstrap uses
 * STATS_BOOT_RESAMPLES, 2000, over a handful of values).
 */
#define DIFF_BLOCK_RESAMPLES 1000

enum diff_method {
    DIFF_REPS,   /* >= STATS_MIN_REPS repetitions per side */
    DIFF_BLOCK,  /* one trace per side: block bootstrap over runs */
    DIFF_TOO_FEW /* anything else: no verdict */
};

enum { DIFF_RUNS, DIFF_STAGE }; /* diff_entry.kind */

struct diff_vals {
    double *v;
    size_t n, cap;
};

/* One side of an entry. */
struct diff_side {
    uint64_t count;                   /* spans or runs, all repetitions */
    size_t reps;                      /* repetitions it appears in */
    struct diff_vals rep[DIFF_NSTAT]; /* each repetition's value, ns */
    struct diff_vals series;          /* one trace: durations in run order */
};

/* A stage, the whole runs (entry 0), or the throughput (own entry). */
struct diff_entry {
    int kind;
    const char *name, *cat; /* NUL-terminated, may hold NULs inside */
    size_t name_len, cat_len;
    struct diff_side side[2];             /* base, new */
    double fig[2][DIFF_NSTAT];            /* median over repetitions, ns */
    struct stats_compare cmp[DIFF_NSTAT]; /* new against base */
};

struct diff_file {
    const char *path;
    struct tl_result res;
    size_t stages;
    uint64_t runs;
    double throughput; /* runs per second */
};

enum diff_rule_target {
    DIFF_RULE_ANY,       /* STAT:+N%: every stage */
    DIFF_RULE_STAGE,     /* stage=NAME,STAT:+N% */
    DIFF_RULE_RUNS,      /* runs.STAT:+N% */
    DIFF_RULE_THROUGHPUT /* throughput:-N% */
};

struct diff_hit {
    const struct diff_entry *e;
    int stat;
};

struct diff_rule {
    const char *text;
    enum diff_rule_target target;
    const char *stage; /* DIFF_RULE_STAGE: the name (not NUL-ended) */
    size_t stage_len;
    int stat;         /* index of diff_stat_names */
    double threshold; /* relative: +0.05 for +5% */
    int matched;      /* something it names is on both sides */
    int judged;       /* ... and could be judged (enough repetitions) */
    struct diff_hit *hits;
    size_t nhits;
};

struct diff_env {
    int differs;
    char *base, *new_; /* distinct values, "; "-joined */
};

struct diff {
    const char *arg[2];
    const char *side_name[2]; /* in messages: "base side", "new side" */
    struct cli_inputs in[2];
    struct diff_file *files[2];
    size_t nfiles[2];
    enum diff_method method;
    uint64_t seed;
    unsigned resamples;
    size_t block_len;   /* DIFF_BLOCK */
    size_t reps_needed; /* DIFF_REPS: no verdict is within reach of the
                           repetitions given; this many per side would
                           be (0: they suffice) */
    struct strmap *map;
    struct diff_entry *e; /* e[0]: the runs */
    size_t n;
    struct diff_entry throughput;
    struct diff_entry **order; /* stages: common ones ranked, then the rest */
    size_t norder, common;
    struct diff_rule *rules;
    size_t nrules;
    struct diff_env env[DIFF_NENV];
    int cross_machine, mixed_producers, mixed_units;
    int exit_status;
};

/*
 * The steps of a comparison, also used by `sweep`: diff_init(), then each
 * side's repetitions with diff_add_rep() (set arg, side_name, seed,
 * resamples, rules between), then diff_finish(); diff_free() at the end.
 * Errors (an unreadable trace, no memory) exit 2 through diff_fail().
 */
void diff_init(const struct cli_ctx *ctx, struct diff *d);
/* One repetition of @side: the trace files @paths, read as one (a
 * process and the children it forked); @series: keep the durations in run
 * order, for a comparison of one trace a side. */
void diff_add_rep(const struct cli_ctx *ctx, struct diff *d, int side,
                  char *const *paths, size_t npaths, int series);
/* The method, the environment, every comparison, the rules, the order. */
void diff_finish(const struct cli_ctx *ctx, struct diff *d);
void diff_free(struct diff *d);
/* "stageprof <command>: <message>" on stderr, exit 2. */
noreturn void diff_fail(const struct cli_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The terminal table (colour on a terminal), or Markdown (@md). */
void diff_print_text(const struct cli_ctx *ctx, const struct diff *d, int md);
/* The JSON document (docs/cli/stageprof-diff.md). */
void diff_print_json(const struct cli_ctx *ctx, const struct diff *d);
/* The HTML page into @path; 0, or -1 with the reason in @err. */
int diff_html(const struct diff *d, const char *path, char *err, size_t errlen);
/* One row of an interval chart: a label and a change with its verdict. */
struct diff_row {
    const char *label; /* may hold NULs inside */
    size_t label_len;
    struct stats_change change;
    const char *verdict; /* "slower", "faster", "no change", ... */
};
struct strbuf;
/*
 * An SVG chart (svg.chart.interval, data-stat=@stat): one g.row per row
 * (data-verdict), its interval (line.ci) and estimate (circle.est) across
 * a zero line, coloured by verdict; labels escaped.
 */
void diff_interval_svg(struct strbuf *sb, const char *stat,
                       const struct diff_row *rows, size_t n);

/* A relative change as "+12.3%", or @unknown when it is not finite. */
const char *diff_pct(char *buf, size_t len, double v, const char *unknown);
/* "slower", "faster", "no change", "too few to judge", ... for @e's
 * statistic @k (throughput: "lower", "higher"). */
const char *diff_verdict(const struct diff *d, const struct diff_entry *e,
                         int k);

#endif
