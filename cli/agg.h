/*
 * agg.h - per-stage statistics of the events of one or more traces.
 *
 * Feed every event of every file to agg_event(), then agg_finish() once:
 * it pairs B/E events per thread (a stack, after a stable sort by time),
 * nests each thread's slices to find self times, and sorts each stage's
 * durations for exact percentiles. A stage is an event name with its
 * category. Async spans (b/e, S/F) are stages too, marked async: they do
 * not nest, count in no thread's busy time and ignore the time window.
 */
#ifndef STAGEPROF_AGG_H
#define STAGEPROF_AGG_H

#include <stddef.h>
#include <stdint.h>

#include "trace_load.h"

/* Percentiles reported, in this order. */
#define AGG_NPCT 5
extern const double agg_pcts[AGG_NPCT]; /* 0.50 0.90 0.95 0.99 0.999 */

struct agg_stage {
    char *name, *cat; /* NUL-terminated copies; may hold NULs inside */
    size_t name_len, cat_len;
    int async;
    int exact; /* percentiles from every duration; 0: from the sketch */
    uint64_t count;
    int64_t total_ns, self_ns, min_ns, max_ns;
    double pct_ns[AGG_NPCT];
    /* private */
    int64_t *durs;
    size_t ndurs, cap;
    uint64_t *sketch; /* SKETCH_BINS counts, once the limit is passed */
    /* critical path (runs.c) */
    uint64_t path_runs; /* runs whose critical path it lies on */
    int64_t path_ns;    /* time it takes on those paths */
};

/*
 * Beyond agg_opts.exact_limit durations in all, a stage's durations go
 * into a sketch: bins of geometric width, so every percentile is within
 * AGG_SKETCH_ERROR of the exact one, relatively.
 */
#define AGG_SKETCH_ERROR 0.005
#define AGG_EXACT_LIMIT 8000000

struct agg_thread {
    char *pid, *tid; /* as written in the trace */
    size_t pid_len, tid_len;
    char *name;       /* from a thread_name metadata event, or NULL */
    uint64_t slices;  /* slices counted (in the window) */
    int64_t busy_ns;  /* union of its top-level slices */
    int64_t queue_ns; /* top-level slices of category "queue" */
    uint64_t flow_starts, flow_ends; /* hand-offs leaving, arriving */
    /* private */
    struct slice *sl;
    size_t nsl, slcap;
    struct be *be;
    size_t nbe, becap;
};

struct agg_counter {
    char *name, *series; /* event name, args key */
    uint64_t count;
    double min, max, sum, last;
    int64_t last_ts;
};

/*
 * Runs (runs.c): one input's way through the pipeline. stageprof run ids
 * (args.run) when the trace has them; else PyTorch's ProfilerStep#N spans;
 * else every top-level span.
 */
enum agg_run_kind {
    AGG_RUNS_NONE,
    AGG_RUNS_STAGEPROF,
    AGG_RUNS_PROFILER_STEP,
    AGG_RUNS_TOP_LEVEL
};

struct agg_run {
    uint64_t id;        /* stageprof's run id, or a serial from 1 */
    int64_t begin, end; /* ns; set when has_bounds */
    int has_bounds;     /* from its begin/end events or its span */
    int64_t covered_ns; /* in some stage or queue wait */
    /* private: its items, items[first .. first + nitems) once sorted */
    size_t first, nitems;
};

struct agg_queue {
    char *name; /* the flow's name */
    uint64_t count;
    int64_t wait_total_ns, wait_max_ns;
    double wait_p50_ns, wait_p90_ns;
    int64_t service_total_ns; /* from the hand-off to the run's end */
    uint64_t service_count;
    uint64_t path_runs; /* runs whose critical path holds its wait */
    int64_t path_ns;
    /* private */
    int64_t *waits;
    size_t nwaits, cap;
};

#define AGG_MAX_HINTS 8

struct agg_runs {
    enum agg_run_kind kind;
    uint64_t count;
    double pct_ns[AGG_NPCT];
    int64_t max_ns, total_ns, engine_ns;
    double throughput, steady_throughput; /* runs per second */
    uint64_t warmup;                      /* runs left out of steady */
    int64_t warmup_mean_ns;
    long bottleneck;  /* stage index, -1 none */
    char reason[512]; /* the evidence */
    char hints[AGG_MAX_HINTS][400];
    int nhints;
};

struct agg_opts {
    int64_t from_ns, to_ns; /* window from the trace's first slice */
    int has_from, has_to;
    const char *thread;   /* substring of a thread's name, pid or tid */
    uint64_t exact_limit; /* durations kept for exact percentiles; 0: default */
};

struct agg {
    struct agg_opts opts;
    struct agg_stage **stages;
    size_t nstages;
    struct agg_thread **threads;
    size_t nthreads;
    struct agg_counter **counters;
    size_t ncounters;
    int64_t first_ns, last_ns; /* wall: first slice start, last end */
    int have_wall;
    uint64_t kept;     /* durations kept for exact percentiles */
    uint64_t sketched; /* stages whose percentiles come from a sketch */
    /* warnings, counted */
    uint64_t no_dur, bad_dur, no_ts, no_ph, open_b, orphan_e, open_async,
        orphan_async;
    char unknown_phases[64]; /* each unknown phase letter once */
    int64_t dropped;         /* events the writers say they dropped */
    /* runs */
    struct agg_run *runs; /* by value: one allocation for all */
    size_t nruns;
    struct agg_queue **queues;
    size_t nqueues;
    struct agg_runs rs;
    /* private */
    struct strmap *stage_map, *thread_map, *counter_map, *async_map;
    size_t stages_cap, threads_cap, counters_cap;
    struct async_ev *async;
    size_t nasync, async_cap;
    char *keybuf;
    struct agg_thread *last_thread; /* of the previous event */
    uint64_t seq;
    struct strmap *run_map, *queue_map;
    size_t runs_cap, queues_cap;
    struct flow_table *flows_open; /* hand-off ends awaiting the other */
    struct service *svc;           /* hand-offs that carried a run */
    size_t nsvc, svc_cap;
    struct run_item *items; /* every run's work, one array */
    size_t nitems, items_cap;
    int has_run_args, has_profiler_step;
};

int agg_init(struct agg *a, const struct agg_opts *opts);
/* agg_event - fold one event in; a tl_event_cb (always 0). */
int agg_event(void *agg, const struct tl_event *ev);
/* agg_finish - pair, nest, sort, compute. Returns 0 or -1 (memory). */
int agg_finish(struct agg *a);
void agg_fini(struct agg *a);

/* Runs (runs.c) ----------------------------------------------------------- */

/* The run with stageprof id @id (made when new), or -1 (memory). */
long agg_run_of(struct agg *a, uint64_t id);
/* A new run, numbered in order. */
long agg_run_new(struct agg *a);
/* Work of run @run: [start, start + dur) in @stage (or queue wait of
 * queue @queue when @stage is -1), inside item @parent (-1: none). Its
 * index, or -1 (memory). */
long agg_run_item(struct agg *a, long run, int64_t start, int64_t dur,
                  long stage, long queue, long parent);
/* A flow event: hand-off @key starts (@start) or ends on thread @t. */
void agg_flow_event(struct agg *a, const struct tl_event *ev,
                    struct agg_thread *t, int start);
/* After agg_finish's stages: runs, paths, queues, the verdict. */
void agg_runs_finish(struct agg *a);
/* qsort order of stage pointers: most critical-path time first. */
int agg_cmp_path(const void *x, const void *y);
/*
 * agg_run_path - the critical path of run @run (an index in a->runs),
 * after agg_finish, by the rule agg_runs_finish charges: walking back from
 * the run's end, the item that ended last before the current time, then
 * from its start. @cb gets each item (struct run_item, agg_impl.h) with the
 * part of it on the path, [@from, @to) in ns, latest first.
 */
void agg_run_path(const struct agg *a, size_t run,
                  void (*cb)(void *, const struct run_item *, int64_t from,
                             int64_t to),
                  void *arg);
void agg_runs_fini(struct agg *a);

#endif
