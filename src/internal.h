/*
 * internal.h - declarations shared between the files of libstageprof.
 *
 * Names here are stageprof__<module>_<verb>; nothing here is exported.
 *
 * Global state lives in one struct (stageprof__g, core.c). The hot path reads
 * only the fields in its first cache line: the state word mirrored in the
 * public stageprof_hot_state, the category filter token, the clock mode.
 * Everything else is guarded by stageprof__g.lock and touched on cold paths.
 */
#ifndef STAGEPROF_INTERNAL_H
#define STAGEPROF_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "stageprof.h"
#include "util/strbuf.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define LOAD_RELAXED(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define STORE_RELAXED(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define LOAD_ACQUIRE(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE_RELEASE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
/* Owner-only counters other threads read: a relaxed load and store, no RMW. */
#define BUMP(p) STORE_RELAXED((p), LOAD_RELAXED(p) + 1)

/* ------------------------------------------------------------------------ */
/* States of stageprof_hot_state                                            */
/* ------------------------------------------------------------------------ */

enum {
    STATE_OFF = 0,     /* nothing recorded; macros do not call in */
    STATE_TRACING = 1, /* events recorded */
    STATE_ARMED = 2,   /* STAGEPROF_ENABLE or _HTTP set: start at the
                          first event */
    STATE_METRICS = 3  /* not tracing; spans, runs, flows and counters feed
                          the metrics only */
};

/* ------------------------------------------------------------------------ */
/* Allocation (core.c)                                                      */
/* ------------------------------------------------------------------------ */

void *stageprof__malloc(size_t size);
void *stageprof__calloc(size_t n, size_t size);
void stageprof__free(void *ptr);
char *stageprof__strdup(const char *s);

/* ------------------------------------------------------------------------ */
/* Configuration (config.c)                                                 */
/* ------------------------------------------------------------------------ */

#define STAGEPROF_DEFAULT_DIR "./inference_profiling"
#define STAGEPROF_DEFAULT_BUFFER_BYTES (64ll << 20)
#define STAGEPROF_MIN_BUFFER_BYTES (16ll << 10)
#define STAGEPROF_MAX_CATEGORY_RULES 64
#define STAGEPROF_MAX_BUCKETS 64
/* STAGEPROF_KEEP_SLOWEST at most. */
#define STAGEPROF_MAX_KEEP_SLOWEST 64

/* One rule of STAGEPROF_CATEGORIES: a name, "*", or an exclusion. */
struct cat_rule {
    char *name;  /* owned; NULL for "*" */
    int exclude; /* "-name" */
};

/* The configuration in force: every field resolved, strings owned. */
struct conf {
    int enable;
    char *dir;
    long long buffer_bytes;
    char *categories; /* as given, for the trace metadata */
    struct cat_rule rules[STAGEPROF_MAX_CATEGORY_RULES];
    int nrules;
    int has_include; /* a positive name rule exists */
    int clock;
    char *log_file;
    char *process_name;
    stageprof_log_cb log_cb;
    void *log_data;
    long long buffer_runs; /* completed runs kept; 0: all */
    long long sample_runs; /* 1 run in N recorded */
    int gzip;
    long long max_files;     /* 0: no limit */
    long long max_dir_bytes; /* 0: no limit */
    int snapshot_signal;     /* 0: none */
    int crash_dump;
    int follow_fork;
    char *http;       /* endpoint address as given; NULL: off */
    char *http_token; /* NULL: none */
    long long http_max_connections;
    long long http_idle_timeout_s;
    long long sample_hz;                   /* 0: sampler off */
    double buckets[STAGEPROF_MAX_BUCKETS]; /* upper bounds, s, increasing */
    int nbuckets;
    long long max_stages;
    long long keep_slower_than_ms; /* 0: no threshold */
    long long keep_slowest;        /* 0: none */
    long long keep_window_s;
    long long keep_bytes; /* the kept runs' share (0 when keeping is off) */
    /* where each setting came from: "default", "env" or "api" */
    const char *src_enable, *src_dir, *src_buffer_bytes, *src_categories,
        *src_clock;
    char *warnings[16]; /* bad settings met while resolving (owned) */
    int nwarnings;
};

/*
 * Resolve @api (may be NULL) over the environment into @out. Bad values are
 * reported with stageprof__log and replaced by defaults. Returns 0 or
 * STAGEPROF_ENOMEM (then @out holds nothing to free).
 */
int stageprof__config_resolve(const stageprof_config_t *api, struct conf *out);
void stageprof__config_fini(struct conf *c);
/* 1 when STAGEPROF_ENABLE (or its alias) asks for tracing. */
int stageprof__config_env_enabled(void);
/* 1 when @category passes the rules. */
int stageprof__config_category_ok(const struct conf *c, const char *category);
/* Parse helpers, exposed for tests. */
int stageprof__parse_bool(const char *s, int *out);
int stageprof__parse_size(const char *s, long long *out);
int stageprof__parse_categories(const char *s, struct conf *c);
int stageprof__parse_count(const char *s, long long *out);
int stageprof__parse_signal(const char *s, int *out);
/* Comma list of increasing positive seconds into @out (at most @max). */
int stageprof__parse_buckets(const char *s, double *out, int max, int *n);

/* ------------------------------------------------------------------------ */
/* Clock (clock.c)                                                          */
/* ------------------------------------------------------------------------ */

enum { CLOCK_MODE_MONO = 0, CLOCK_MODE_TSC = 1, CLOCK_MODE_FAKE = 2 };

/* Mapping from raw ticks to CLOCK_MONOTONIC ns: piecewise linear. */
struct clock_anchor {
    uint64_t ticks;
    uint64_t ns;
};

/*
 * A snapshot of the anchors for converting many ticks (the writer): no lock
 * per conversion, the current segment cached.
 */
struct clock_map {
    int mode;               /* CLOCK_MODE_* at snapshot time */
    struct clock_anchor *a; /* owned copy */
    int n;
    int seg;                /* cached segment, -1 none */
    uint64_t lo, hi;        /* ticks range of seg */
    uint64_t base_ns, mult; /* ns at lo; ns per tick << 32 */
    uint64_t default_mult;  /* from the calibration */
};
void stageprof__clock_map_open(struct clock_map *m);
uint64_t stageprof__clock_map_ns(struct clock_map *m, uint64_t ticks);
void stageprof__clock_map_close(struct clock_map *m);

uint64_t stageprof__clock_slow_ticks(void);
int stageprof__clock_tsc_trusted(const char *cpuinfo, const char *clocksource,
                                 const char **why);
const char *stageprof__clock_why(void);
/* Decide and calibrate the clock for @want (stageprof_clock); 0 or error. */
int stageprof__clock_open(int want, const char **why);
void stageprof__clock_close(void);
/* Take a new anchor (background thread, start, before writing). */
void stageprof__clock_anchor(void);
/* Convert raw ticks to monotonic ns with the anchors. */
uint64_t stageprof__clock_to_ns(uint64_t ticks);
/* The same without lock or allocation, for the crash handler. */
uint64_t stageprof__clock_to_ns_async(uint64_t ticks);
uint64_t stageprof__clock_mono_ns(void);
uint64_t stageprof__clock_real_ns(void);
const char *stageprof__clock_name(void);
double stageprof__clock_tsc_hz(void);
/* ns per tick << 32 at the calibrated rate (durations, thresholds). */
uint64_t stageprof__clock_ns_per_tick(void);
int stageprof__clock_anchor_count(void);
/* Test hook: time from @fn (ns) instead of the hardware. NULL restores. */
void stageprof__clock_set_fake(uint64_t (*fn)(void));

/* ------------------------------------------------------------------------ */
/* Global state (core.c)                                                    */
/* ------------------------------------------------------------------------ */

struct tbuf;

/* Event and misuse counters, summed over threads (see tbuf.h fields). */
struct counts {
    uint64_t dropped, end_other, end_twice, unclosed, depth, arg, truncated;
};

struct global {
    /* hot: read on every event */
    int clock_mode;        /* CLOCK_MODE_* */
    unsigned filter_token; /* site->filter value meaning "recorded" */
    char pad_[56];
    /* cold: under lock */
    pthread_mutex_t lock;  /* session, config, registry */
    pthread_mutex_t wlock; /* one writer at a time */
    int started;           /* a session exists (tracing or not) */
    int ever_started;      /* some session existed */
    int atexit_registered;
    int live;         /* the session serves metrics (endpoint, histograms) */
    int live_pid;     /* process that started the endpoint and the sampler */
    struct conf conf; /* configuration in force */
    uint64_t base_mono_ns; /* trace time base */
    uint64_t base_real_ns;
    uint64_t chunk_bytes;  /* size of one buffer chunk (atomic) */
    uint64_t budget;       /* buffer_bytes in force (atomic) */
    uint64_t bytes_in_use; /* chunks allocated (atomic) */
    struct tbuf *threads;  /* registry of thread buffers */
    uint64_t threads_seen;
    uint64_t lost_no_tbuf;   /* events lost: no thread buffer (atomic) */
    uint64_t misuse_no_tbuf; /* span ended on a thread that never recorded */
    uint64_t misuse_run_end; /* run ends without a begin (writer) */
    struct counts retired;   /* counters of thread buffers already freed */
    uint64_t events_written, traces_written, write_errors;
    char last_path[4096];
    char proc_name[256]; /* stageprof_process_set_name */
    /* writer: runs begun and not yet ended in earlier files (under wlock) */
    uint64_t *open_runs;
    size_t nopen_runs;
    uint64_t dropped_reported; /* drops already reported in a trace */
    int file_seq;              /* suffix counter for same-second names */
    /* allocator */
    stageprof_malloc_cb malloc_fn;
    stageprof_free_cb free_fn;
    void *alloc_data;
    uint64_t live_allocs;     /* outstanding allocations (atomic) */
    double cost_ns_per_event; /* one span's recording cost at start; 0 none */
};

extern struct global stageprof__g;

/* Diagnostics to the log callback and log file of the config in force. */
void stageprof__log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The same through the log settings of @c (while it is being resolved). */
void stageprof__log_conf(const struct conf *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Slow path of every recording call: handles ARMED; 1 when tracing. */
int stageprof__ensure_tracing(void);
/* pthread_create with every signal blocked in the new thread: the host's
 * handlers never run on the library's threads. Returns its result. */
int stageprof__thread_create(pthread_t *th, const pthread_attr_t *attr,
                             void *(*fn)(void *), void *arg);
/* A counter value for the trace only, never a /metrics gauge (counter.c;
 * the sampler's tracks, which /metrics shows in families of their own). */
void stageprof__counter_trace(stageprof_site_t *site, double value);
/* Decide whether @site's category is recorded; returns the new filter. */
unsigned stageprof__site_resolve(stageprof_site_t *site);

/* ------------------------------------------------------------------------ */
/* Writer (chrome_writer.c)                                                 */
/* ------------------------------------------------------------------------ */

/*
 * A sink receives the JSON text in large pieces. write returns 0 or a
 * negative STAGEPROF_E* code.
 */
struct sink {
    int (*write)(void *ud, const void *data, size_t len);
    /* Called after the last write, before the events count as written:
     * a failure here (closing, renaming) keeps them. May be NULL. */
    int (*finish)(void *ud);
    void *ud;
};

/* Appends to @sb (the sink's ud is the struct); more than @max bytes in
 * all (max > 0) fails with STAGEPROF_ENOMEM. */
struct sb_sink {
    struct strbuf sb;
    size_t max;
};
int stageprof__sb_sink_write(void *ud, const void *data, size_t len);

/* Flags of a write. */
enum {
    WRITE_FINAL = 1, /* written when profiling stops (the trace says so) */
    WRITE_KEEP = 2   /* a snapshot: the events stay for later traces */
};

/*
 * Write the events not yet written (WRITE_KEEP: without consuming them) as
 * one trace to @sink. Caller holds stageprof__g.wlock (or is alone).
 */
int stageprof__writer_write(struct sink *sink, int flags);
/* Consume everything unwritten without writing it anywhere (wlock held):
 * the buffers are released. */
int stageprof__writer_discard(void);

/*
 * What a filtered write (a /capture answer) keeps, and what it found.
 * Metadata events ("M") are always written and never counted.
 */
struct write_filter {
    /* in */
    uint64_t from_ns, to_ns; /* monotonic window; to_ns 0: no time filter */
    const struct conf *cats; /* category rules (only rules used) or NULL */
    uint64_t max_events;     /* events written at most; 0: no limit */
    size_t reserve;          /* blanks written after the opening brace, for the
                                caller to overwrite with its own member */
    uint64_t only_run;       /* a kept run's fragment (tail.h): its events only,
                                no header, trailer or process metadata */
    uint64_t only_from; /* its begin and end, ticks: chunks sealed before */
    uint64_t only_to;   /* the begin or started after the end are skipped */
    /* out */
    uint64_t events;        /* events written */
    uint64_t lines;         /* lines written, metadata included */
    uint64_t out_of_window; /* left out: outside the window */
    uint64_t cat_removed;   /* left out: category filter */
    uint64_t over_max;      /* left out: beyond max_events */
    uint64_t dropped_new;   /* drops not yet reported by a consuming write */
    uint64_t dropped_total; /* drops since the process started */
    uint64_t runs_kept, runs_running; /* the ring at the write */
    int ring_active;
};

/*
 * stageprof__writer_write with @f (may be NULL): events outside the window,
 * of a category the rules refuse, or beyond max_events are not written
 * (counted in @f). Consumption (without WRITE_KEEP) covers every event
 * read, written or not.
 */
int stageprof__writer_write_filtered(struct sink *sink, int flags,
                                     struct write_filter *f);

/* ------------------------------------------------------------------------ */
/* Trace files (trace_file.c)                                               */
/* ------------------------------------------------------------------------ */

/* Write a trace to an open file descriptor (not closed). */
int stageprof__trace_file_write_fd(int fd, int flags);
/* Write a trace file into the configured directory (takes wlock). */
int stageprof__trace_file_write(int flags);
/* zlib's allocation functions on the library's allocator (z_stream's
 * zalloc and zfree; the types are zlib's alloc_func and free_func). */
void *stageprof__z_alloc(void *opaque, unsigned items, unsigned size);
void stageprof__z_free(void *opaque, void *p);
/* mkdir -p @dir; 0 or a STAGEPROF_E* code (also used by crash install). */
int stageprof__make_dirs(const char *dir);
/* Test hook: file writes fail with @err after @after bytes (-2: the final
 * rename fails; 0 for @err restores). */
void stageprof__trace_file_set_fail(int err, long long after);
/* Fixed pid/tid/host fields for byte-comparable tests. */
void stageprof__writer_set_fixed_ids(int on);

/* ------------------------------------------------------------------------ */
/* Snapshots (snapshot.c) and the overhead statement (overhead.c)           */
/* ------------------------------------------------------------------------ */

/* Install the snapshot signal and its thread (g.lock held, tracing). */
void stageprof__snapshot_start(void);
/* Restore the signal's handler and end the thread (no lock held). */
void stageprof__snapshot_stop(void);
/* In a forked child that goes on tracing: make the snapshot pipe and
 * thread (deferred from the fork handler). Cheap when nothing is due. */
void stageprof__snapshot_resume(void);
/* Measure one span's recording cost in ns (g.lock held, tracing on). */
double stageprof__overhead_calibrate(void);
/* "overhead":{...} for a trace holding @file_events events, into @buf. */
void stageprof__overhead_json(char *buf, size_t len, uint64_t file_events);
/* A trace that consumed its @events events was written (wlock held). */
void stageprof__overhead_note(uint64_t events);

/* ------------------------------------------------------------------------ */
/* System facts (sysinfo.c)                                                 */
/* ------------------------------------------------------------------------ */

struct strbuf;
/* Append the host/CPU/kernel/command-line fields as JSON members. */
void stageprof__sysinfo_json(struct strbuf *sb);
/* Program name from /proc/self/comm, into @buf. */
void stageprof__sysinfo_program(char *buf, size_t len);
int stageprof__sysinfo_tid(void);

/* ------------------------------------------------------------------------ */
/* fork() (fork.c and a hook per module)                                    */
/* ------------------------------------------------------------------------ */

/* Install the fork handlers once (at the first start). */
void stageprof__fork_register(void);
void stageprof__fork_install(void);
/*
 * Module hooks, @phase 0 before fork() (take the module's lock), 1 in the
 * parent after it (release), 2 in the child (re-create the lock, drop what
 * belonged to other threads or to the parent).
 */
void stageprof__tbuf_fork(int phase);
void stageprof__ring_fork(int phase);
void stageprof__clock_fork(int phase);
void stageprof__log_fork(int phase);
void stageprof__snapshot_fork(int phase);

/* ------------------------------------------------------------------------ */
/* Crash dump (crash.c)                                                     */
/* ------------------------------------------------------------------------ */

/*
 * At start (g.lock held, g.conf and the time base set): when tracing with
 * crash_dump on, compute the dump's name and header and install handlers
 * for SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT. At stop: put the
 * previous handlers back.
 */
void stageprof__crash_install(void);
void stageprof__crash_uninstall(void);
/* A thread's buffer was created: its alternate signal stack, when on. */
void stageprof__crash_thread_init(void);
/* Test hook: write the dump the handler would write for @sig into @fd. */
int stageprof__crash_write_fd(int fd, int sig);
/* @v exactly as printf("%.17g") writes it, without stdio or locale (NaN
 * and infinities as JSON strings); @out holds 32 bytes. Pure. */
size_t stageprof__crash_fmt_double(char *out, double v);

/* Translate an errno value into a STAGEPROF_E* code. */
int stageprof__translate_errno(int e);

#endif /* STAGEPROF_INTERNAL_H */
