/*
 * stageprof.h - the whole public API of libstageprof.
 *
 * stageprof records where the time of an inference pipeline goes: spans
 * around its stages (data, preprocess, compute, postprocess, serve, io,
 * engine, or the user's own categories), runs (one frame, one request, one
 * batch) that every event inside carries, flows between threads, instants and
 * counters. It writes Chrome Trace Event Format files that open in Perfetto
 * UI and chrome://tracing.
 *
 * Three cost levels, chosen without touching instrumented code:
 *
 *   compiled out   define STAGEPROF_DISABLE: every STAGEPROF_* macro expands
 *                  to nothing (declaring macros still declare their
 *                  variable), functions remain callable.
 *   compiled in,   the default until tracing starts: one relaxed load of a
 *   off            global and a branch predicted not taken.
 *   on             STAGEPROF_ENABLE=1 in the environment (tracing starts at
 *                  the first instrumented event) or stageprof_start() with
 *                  enable set: events go to per-thread buffers with no lock,
 *                  allocation or system call per event.
 *
 * Quick use:
 *
 *     static void infer(frame_t *f)
 *     {
 *         STAGEPROF_SCOPE(span, "detector", "compute");
 *         STAGEPROF_ARG_INT(span, "batch", f->batch);
 *         run_model(f);
 *     }                                  (the span ends with the scope)
 *
 * Threading: every function may be called from any thread at any time. The
 * span, instant, counter, flow and run calls never block, allocate per event,
 * print or abort; when a buffer cannot take an event it is dropped and
 * counted, and the count is written into the trace.
 *
 * Names, categories and argument keys given through the macros are string
 * literals: they are kept by pointer forever (never copied). Strings passed
 * to functions with a plain `const char *` value parameter (argument values,
 * dynamic names, thread names) are copied.
 */
#ifndef STAGEPROF_H
#define STAGEPROF_H

#include <stddef.h>
#include <stdint.h>

#include "stageprof/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define STAGEPROF_API __attribute__((visibility("default")))
#define STAGEPROF_ALIGN16 __attribute__((aligned(16)))
#define STAGEPROF_UNUSED __attribute__((unused))
#define STAGEPROF_LIKELY(x) __builtin_expect(!!(x), 1)
#define STAGEPROF_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#error "stageprof needs GCC or Clang (cleanup and aligned attributes)"
#endif

/* ------------------------------------------------------------------------ */
/* Error codes                                                              */
/* ------------------------------------------------------------------------ */

/*
 * STAGEPROF_ERRNO_MAP - every error code: XX(name, value, message).
 *
 * Append only: a value is never renumbered or reused.
 */
#define STAGEPROF_ERRNO_MAP(XX)                                                \
    XX(EINVAL, -1, "invalid argument")                                         \
    XX(ENOMEM, -2, "out of memory")                                            \
    XX(EALREADY, -3, "profiler already started")                               \
    XX(ENOTSTARTED, -4, "profiler not started")                                \
    XX(EIO, -5, "input/output error")                                          \
    XX(ENOSPC, -6, "no space left on device")                                  \
    XX(EFBIG, -7, "file too large")                                            \
    XX(EACCES, -8, "permission denied")                                        \
    XX(ENOTDIR, -9, "not a directory")                                         \
    XX(ENOENT, -10, "no such file or directory")                               \
    XX(EBUSY, -11, "resource busy")                                            \
    XX(EROFS, -12, "read-only file system")                                    \
    XX(ERANGE, -13, "result does not fit")                                     \
    XX(ETHREAD, -14, "cannot start a background thread")

/* clang-format off */
enum stageprof_errno {
#define STAGEPROF_ERRNO_ENUM_(name, value, msg) STAGEPROF_##name = value,
    STAGEPROF_ERRNO_MAP(STAGEPROF_ERRNO_ENUM_)
#undef STAGEPROF_ERRNO_ENUM_
    STAGEPROF_ERRNO_END_ = -15 /* one past the last code; not an error */
};
/* clang-format on */

/*
 * stageprof_strerror - a human-readable message for an error code.
 * @err: 0 or a negative STAGEPROF_E* code.
 *
 * Returns a static string; unknown codes give "unknown error".
 */
STAGEPROF_API const char *stageprof_strerror(int err);

/*
 * stageprof_err_name - the symbolic name of an error code ("EINVAL").
 * @err: 0 or a negative STAGEPROF_E* code.
 *
 * Returns a static string; 0 gives "OK", unknown codes "UNKNOWN".
 */
STAGEPROF_API const char *stageprof_err_name(int err);

/* ------------------------------------------------------------------------ */
/* Version                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * stageprof_version - the library's version as STAGEPROF_VERSION_HEX.
 *
 * Differs from the header's STAGEPROF_VERSION_HEX when the program was
 * compiled against other headers than the library it runs with.
 */
STAGEPROF_API unsigned stageprof_version(void);

/* stageprof_version_string - the library's version, "MAJOR.MINOR.PATCH". */
STAGEPROF_API const char *stageprof_version_string(void);

/* ------------------------------------------------------------------------ */
/* Configuration and lifecycle                                              */
/* ------------------------------------------------------------------------ */

/* A field left at this value takes its environment variable, then default. */
#define STAGEPROF_UNSET (-1)

/* Values of stageprof_config_t.clock and STAGEPROF_CLOCK. */
enum stageprof_clock {
    STAGEPROF_CLOCK_AUTO = 0,     /* invariant TSC when trusted, else below */
    STAGEPROF_CLOCK_TSC = 1,      /* invariant TSC; falls back when untrusted */
    STAGEPROF_CLOCK_MONOTONIC = 2 /* clock_gettime(CLOCK_MONOTONIC) */
};

/* Levels given to the log callback. */
enum stageprof_log_level {
    STAGEPROF_LOG_ERROR = 0, /* an operation failed (a trace not written) */
    STAGEPROF_LOG_WARN = 1,  /* a bad setting was replaced by its default */
    STAGEPROF_LOG_INFO = 2   /* a trace was written, tracing started */
};

/*
 * stageprof_log_cb - receives the library's diagnostics.
 * @level: a stageprof_log_level.
 * @message: one line without a trailing newline; valid during the call.
 * @user_data: stageprof_config_t.log_data.
 *
 * Called from whichever thread hit the condition, never from inside a span,
 * counter, flow or run call. Must not call back into stageprof_start(),
 * stageprof_stop(), stageprof_flush() or stageprof_snapshot().
 */
typedef void (*stageprof_log_cb)(int level, const char *message,
                                 void *user_data);

/*
 * stageprof_malloc_cb / stageprof_free_cb - allocator used for every
 * allocation the library makes (buffers, copies, writer state).
 */
typedef void *(*stageprof_malloc_cb)(size_t size, void *user_data);
typedef void (*stageprof_free_cb)(void *ptr, void *user_data);

/*
 * stageprof_config_t - settings for stageprof_start().
 *
 * Initialise with stageprof_config_init(): every field starts unset, and an
 * unset field takes its environment variable, then its default. A field set
 * here wins over the environment. A bad value (here or in the environment)
 * is reported once through the log callback and its default is used.
 * Strings are copied by stageprof_start(). New fields are appended; the
 * library reads only the fields inside `size`. Numeric and flag fields are
 * unset at STAGEPROF_UNSET.
 */
typedef struct stageprof_config {
    size_t size;            /* sizeof(stageprof_config_t), set by _init */
    int enable;             /* STAGEPROF_ENABLE: 1 trace, 0 off; unset -1 */
    const char *dir;        /* STAGEPROF_DIR; default ./inference_profiling */
    long long buffer_bytes; /* STAGEPROF_BUFFER_BYTES; default 64 MiB */
    const char *categories; /* STAGEPROF_CATEGORIES; default "*" (all) */
    int clock;              /* STAGEPROF_CLOCK: auto|tsc|monotonic; unset -1 */
    const char *log_file;   /* STAGEPROF_LOG_FILE: append diagnostics here */
    const char *process_name; /* STAGEPROF_PROCESS_NAME; default: program */
    stageprof_log_cb log_cb;  /* diagnostics callback; NULL: none */
    void *log_data;           /* passed to log_cb */
    stageprof_malloc_cb malloc_fn; /* allocator; NULL: malloc (no env var) */
    stageprof_free_cb free_fn;     /* matching free; NULL: free */
    void *alloc_data;              /* passed to malloc_fn and free_fn */
    long long buffer_runs;   /* STAGEPROF_BUFFER_RUNS: completed runs kept;
                                default 64, 0 keeps every run */
    long long sample_runs;   /* STAGEPROF_SAMPLE_RUNS: record 1 run in N */
    int gzip;                /* STAGEPROF_GZIP: 1 writes .json.gz */
    long long max_files;     /* STAGEPROF_MAX_FILES: trace files kept; 0 all */
    long long max_dir_bytes; /* STAGEPROF_MAX_DIR_BYTES: their bytes; 0 any */
    int snapshot_signal;     /* STAGEPROF_SNAPSHOT_SIGNAL: signal number that
                                writes a snapshot; 0 none */
    int crash_dump;          /* STAGEPROF_CRASH_DUMP: 1 dumps on a crash */
    int follow_fork;         /* STAGEPROF_FOLLOW_FORK: 0 off in children */
    const char *http;        /* STAGEPROF_HTTP: "PORT" (loopback), "HOST:PORT"
                                or "[V6]:PORT" serving /metrics; NULL: off */
    const char *http_token;  /* STAGEPROF_HTTP_TOKEN: bearer token every
                                request must carry; NULL: none */
    long long http_max_connections; /* STAGEPROF_HTTP_MAX_CONNECTIONS; 256 */
    long long http_idle_timeout_s;  /* STAGEPROF_HTTP_IDLE_TIMEOUT_S; 10 */
    long long sample_hz; /* STAGEPROF_SAMPLE_HZ: resource samples a second;
                            default 10, 0 off */
    const char *histogram_buckets; /* STAGEPROF_HISTOGRAM_BUCKETS: comma
                                      list of upper bounds in seconds */
    long long max_stages;          /* STAGEPROF_MAX_STAGES: distinct stage label
                                      sets in /metrics; default 256 */
    long long keep_slower_than_ms; /* STAGEPROF_KEEP_SLOWER_THAN_MS: runs at
                                      least this slow are kept whole beyond
                                      the ring; 0 off (default) */
    long long keep_slowest;  /* STAGEPROF_KEEP_SLOWEST: the K slowest runs of
                                each window are kept too; 0 off (default) */
    long long keep_window_s; /* STAGEPROF_KEEP_WINDOW_S: that window; 60 */
    long long keep_bytes;    /* STAGEPROF_KEEP_BYTES: the kept runs' share of
                                buffer_bytes; default a quarter */
} stageprof_config_t;

/*
 * stageprof_config_init - set every field of @cfg to "unset".
 * @cfg: caller's storage.
 */
STAGEPROF_API void stageprof_config_init(stageprof_config_t *cfg);

/*
 * stageprof_start - start the profiler with a configuration.
 * @cfg: settings, or NULL to take everything from the environment.
 *
 * Tracing is on when cfg->enable (or STAGEPROF_ENABLE, or its alias
 * ENABLE_WORKFLOWS_PROFILING) says so; otherwise the profiler is started but
 * records nothing. Without any stageprof_start() call, STAGEPROF_ENABLE=1
 * starts tracing from the environment at the first instrumented event. The
 * trace is written by stageprof_stop(), stageprof_flush() and at normal
 * process exit.
 *
 * Thread-safe. Returns 0, STAGEPROF_EALREADY when already started (also by
 * STAGEPROF_ENABLE at an earlier event), STAGEPROF_EINVAL for a config whose
 * size is too small, STAGEPROF_EBUSY when another allocator than the one in
 * use is given while the library still holds memory, STAGEPROF_ENOMEM or
 * STAGEPROF_ETHREAD when resources cannot be had (nothing is leaked).
 */
STAGEPROF_API int stageprof_start(const stageprof_config_t *cfg);

/*
 * stageprof_stop - stop recording and write the trace.
 *
 * Waits for no instrumented thread: events being recorded while it runs
 * are written by a later flush or lost, counted. When the write fails the
 * recorded data is kept and a later stageprof_flush() tries again.
 *
 * Returns 0, STAGEPROF_ENOTSTARTED, or the write's error (STAGEPROF_EIO,
 * STAGEPROF_ENOSPC, STAGEPROF_EFBIG, STAGEPROF_EACCES, STAGEPROF_ENOTDIR,
 * STAGEPROF_ENOENT, STAGEPROF_EROFS, STAGEPROF_ENOMEM).
 */
STAGEPROF_API int stageprof_stop(void);

/*
 * stageprof_flush - write everything recorded and not yet written to a new
 * trace file, and keep recording.
 *
 * Also retries data kept after a failed write, even after stageprof_stop().
 * Returns 0, STAGEPROF_ENOTSTARTED when there was never a session, or the
 * write's error as for stageprof_stop().
 */
STAGEPROF_API int stageprof_flush(void);

/*
 * stageprof_snapshot - write everything recorded and not yet written to a
 * new trace file, without consuming it and without stopping recording.
 *
 * The events stay buffered: the next snapshot, flush or stop writes them
 * again (with whatever was recorded since). The file is written like any
 * other (atomically, gzip and retention as configured; two snapshots in one
 * second get distinct names) and its header says "final":false. With
 * STAGEPROF_SNAPSHOT_SIGNAL set, the same happens when the process receives
 * that signal (written by a background thread, never in the handler).
 *
 * Thread-safe. One trace is written at a time: a snapshot requested while
 * another write (snapshot, flush or stop) is in progress waits for it, then
 * writes its own file. A snapshot racing stageprof_stop() either completes
 * before the final trace is written or returns STAGEPROF_ENOTSTARTED; it
 * never writes after it. A failed snapshot keeps every event (nothing is
 * counted as written); the next one tries again.
 *
 * Returns 0, STAGEPROF_ENOTSTARTED when not tracing, or the write's error
 * as for stageprof_stop().
 */
STAGEPROF_API int stageprof_snapshot(void);

/*
 * stageprof_is_tracing - 1 when events are being recorded, else 0.
 */
STAGEPROF_API int stageprof_is_tracing(void);

/*
 * stageprof_get_last_path - path of the last trace file written.
 * @buf: caller's storage, NUL-terminated on success.
 * @len: size of @buf.
 *
 * Returns 0, STAGEPROF_ENOENT when nothing was written yet, STAGEPROF_ERANGE
 * when @buf is too small, STAGEPROF_EINVAL for a NULL @buf.
 */
STAGEPROF_API int stageprof_get_last_path(char *buf, size_t len);

/*
 * stageprof_stats_t - counters of the current process, for tests and
 * dashboards. Filled by stageprof_get_stats(); fields inside `size` only.
 */
typedef struct stageprof_stats {
    size_t size; /* set by the caller to sizeof(stageprof_stats_t) */
    uint64_t events_dropped; /* events not recorded: buffer budget full */
    uint64_t misuse;         /* API misuse, all kinds (see the trace) */
    uint64_t bytes_buffered; /* event buffer bytes in use now */
    uint64_t threads;        /* threads that recorded since start */
    uint64_t events_written; /* events written to trace files, in total */
    uint64_t traces_written; /* trace files written */
    uint64_t write_errors;   /* trace writes that failed */
} stageprof_stats_t;

/*
 * stageprof_get_stats - read the current counters into @stats.
 * @stats: caller's storage with `size` set.
 *
 * Returns 0 or STAGEPROF_EINVAL (NULL or too small a size).
 */
STAGEPROF_API int stageprof_get_stats(stageprof_stats_t *stats);

/*
 * stageprof_http_get_port - the TCP port the /metrics endpoint listens on
 * (useful with STAGEPROF_HTTP=127.0.0.1:0, where the kernel picks it).
 *
 * Returns the port, or 0 when the endpoint is not serving (not configured,
 * built without it, or its address could not be bound: the log says why).
 */
STAGEPROF_API int stageprof_http_get_port(void);

/*
 * stageprof_now_ns - the profiler's clock, in nanoseconds on
 * CLOCK_MONOTONIC's time line. Use it for stageprof_span_complete().
 */
STAGEPROF_API uint64_t stageprof_now_ns(void);

/*
 * stageprof_free - free memory the library returned to the caller.
 */
STAGEPROF_API void stageprof_free(void *ptr);

/* ------------------------------------------------------------------------ */
/* Names                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * stageprof_process_set_name - name the process in the trace (copied).
 * stageprof_thread_set_name - name the calling thread (copied; 63 bytes
 * kept). Default thread names are the kernel's ("comm").
 * stageprof_thread_set_sort_index - order of the calling thread's track.
 */
STAGEPROF_API void stageprof_process_set_name(const char *name);
STAGEPROF_API void stageprof_thread_set_name(const char *name);
STAGEPROF_API void stageprof_thread_set_sort_index(int index);

/* ------------------------------------------------------------------------ */
/* Recording                                                                */
/* ------------------------------------------------------------------------ */

/*
 * stageprof_site_t - one instrumentation point: static storage per call
 * site, created by the macros (or by the user with STAGEPROF_SITE_INIT).
 * Name and category are kept by pointer: they must live forever.
 */
typedef struct STAGEPROF_ALIGN16 stageprof_site {
    const char *name;     /* span, instant, counter, flow or run name */
    const char *category; /* triage bucket; NULL writes "default" */
    const char *file;     /* source file */
    unsigned line;        /* source line */
    unsigned filter;      /* private: cached category decision */
    unsigned metric;      /* private: cached metrics series */
} stageprof_site_t;

#define STAGEPROF_SITE_INIT(name, category)                                    \
    {                                                                          \
        (name), (category), __FILE__, __LINE__, 0, 0                           \
    }

/*
 * stageprof_span_t - a span (or instant) being recorded, by value in the
 * caller's storage. All-zero means "not recorded": ending it is a no-op.
 */
typedef struct stageprof_span {
    void *owner;     /* private: recording thread; NULL when not recorded */
    unsigned depth;  /* private: nesting level, or a state marker */
    unsigned serial; /* private: guards against ending twice */
} stageprof_span_t;

/* The hot-path switch read by the macros; never write it. */
STAGEPROF_API extern int stageprof_hot_state;

/*
 * stageprof_is_active - nonzero when recording calls do anything: one
 * relaxed load. The macros test it before calling in.
 */
static inline int stageprof_is_active(void)
{
    return __atomic_load_n(&stageprof_hot_state, __ATOMIC_RELAXED);
}

/* stageprof_span_none - a span value that records nothing. */
static inline stageprof_span_t stageprof_span_none(void)
{
    stageprof_span_t s;
    s.owner = 0;
    s.depth = 0;
    s.serial = 0;
    return s;
}

/*
 * stageprof_span_begin - open a span on the calling thread.
 * @site: static site; its name and category label the span.
 *
 * Spans on one thread nest (end them innermost first; ending an outer span
 * ends the inner ones still open, counted as misuse). The span carries the
 * thread's current run. Returns the span to pass to stageprof_span_end();
 * a zero span when not recorded (tracing off, filtered out, buffer full,
 * nesting deeper than 128).
 */
STAGEPROF_API stageprof_span_t stageprof_span_begin(stageprof_site_t *site);

/*
 * stageprof_span_begin_name - as stageprof_span_begin() with a name known
 * only at run time.
 * @name: copied into the thread's buffer (up to 1024 bytes kept); the site
 * gives the category.
 */
STAGEPROF_API stageprof_span_t stageprof_span_begin_name(stageprof_site_t *site,
                                                         const char *name);

/*
 * stageprof_span_end - close a span opened on the calling thread.
 * @span: from stageprof_span_begin(); marked ended.
 *
 * Ending a zero span is a no-op. Ending on another thread, ending twice or
 * ending a span already closed by its parent is counted as misuse and
 * ignored.
 */
STAGEPROF_API void stageprof_span_end(stageprof_span_t *span);

/*
 * stageprof_span_complete - record a finished span with explicit times.
 * @start_ns: start on stageprof_now_ns()'s time line.
 * @dur_ns: duration in nanoseconds.
 */
STAGEPROF_API void stageprof_span_complete(stageprof_site_t *site,
                                           uint64_t start_ns, uint64_t dur_ns);

/*
 * stageprof_span_arg_int / _double / _str - attach a typed argument to an
 * open span or to the instant just recorded.
 * @span: from stageprof_span_begin() (any time before its end) or from
 * stageprof_instant() (before the next event on the thread).
 * @key: string literal, kept by pointer.
 * @value: for _str, copied (up to 1024 bytes kept).
 */
STAGEPROF_API void stageprof_span_arg_int(const stageprof_span_t *span,
                                          const char *key, int64_t value);
STAGEPROF_API void stageprof_span_arg_double(const stageprof_span_t *span,
                                             const char *key, double value);
STAGEPROF_API void stageprof_span_arg_str(const stageprof_span_t *span,
                                          const char *key, const char *value);

/*
 * stageprof_instant - record a point in time on the calling thread.
 *
 * Returns a span value to attach arguments to (see stageprof_span_arg_int).
 */
STAGEPROF_API stageprof_span_t stageprof_instant(stageprof_site_t *site);

/*
 * stageprof_counter_set_int / _double - record a counter's value (queue
 * depth, batch size, memory). The site's name names the counter.
 */
STAGEPROF_API void stageprof_counter_set_int(stageprof_site_t *site,
                                             int64_t value);
STAGEPROF_API void stageprof_counter_set_double(stageprof_site_t *site,
                                                double value);

/*
 * stageprof_flow_begin / _step / _end - link a hand-off between threads.
 * @id: identifies the flow (a frame number, a request id); the same id on
 * both sides. Call inside the span that hands off (begin) and inside the
 * span that picks up (end); the trace draws an arrow between the two.
 */
STAGEPROF_API void stageprof_flow_begin(stageprof_site_t *site, uint64_t id);
STAGEPROF_API void stageprof_flow_step(stageprof_site_t *site, uint64_t id);
STAGEPROF_API void stageprof_flow_end(stageprof_site_t *site, uint64_t id);

/*
 * stageprof_run_begin - start a run (one frame, request or batch) and make
 * it the calling thread's current run.
 * @site: the run's name ("frame"); begin and end must use the same name.
 * @run_id: nonzero, unique among runs in progress.
 *
 * Every event the thread records until the run ends (or another run is made
 * current) carries args.run = @run_id. A run may cross threads: other
 * threads adopt it with stageprof_run_set_current().
 */
STAGEPROF_API void stageprof_run_begin(stageprof_site_t *site, uint64_t run_id);

/*
 * stageprof_run_end - end a run, from any thread. Clears the calling
 * thread's current run when it is @run_id. Ending a run that was never begun
 * is counted as misuse in the trace.
 */
STAGEPROF_API void stageprof_run_end(stageprof_site_t *site, uint64_t run_id);

/*
 * stageprof_run_set_current - make @run_id (0: none) the run the calling
 * thread's events belong to, without beginning or ending it.
 */
STAGEPROF_API void stageprof_run_set_current(uint64_t run_id);

/* stageprof_run_get_current - the calling thread's current run, 0: none. */
STAGEPROF_API uint64_t stageprof_run_get_current(void);

/* Called by STAGEPROF_SCOPE at scope exit. */
static inline void stageprof_span_cleanup(stageprof_span_t *span)
{
    if (STAGEPROF_UNLIKELY(span->owner != 0))
        stageprof_span_end(span);
}

/* ------------------------------------------------------------------------ */
/* Instrumentation macros                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Names, categories and keys are string literals. Macros marked "declares"
 * declare the named variable (a stageprof_span_t) in the current scope;
 * the others are statements.
 *
 *   STAGEPROF_SCOPE(var, name, cat)       declares; span ends at scope exit
 *   STAGEPROF_SCOPE_DYN(var, name, cat)   same, name is a run-time string
 *   STAGEPROF_SPAN_BEGIN(var, name, cat)  declares; open a span
 *   STAGEPROF_SPAN_END(var)               close it
 *   STAGEPROF_SPAN_COMPLETE(name, cat, start_ns, dur_ns)
 *   STAGEPROF_ARG_INT(var, key, value)    also _DOUBLE, _STR
 *   STAGEPROF_INSTANT(name, cat)
 *   STAGEPROF_COUNTER_INT(name, value)    also _DOUBLE
 *   STAGEPROF_FLOW_BEGIN(name, id)        also _STEP, _END
 *   STAGEPROF_RUN_BEGIN(name, id)         also _END; STAGEPROF_RUN_SET(id)
 */
#define STAGEPROF_CAT2_(a, b) a##b
#define STAGEPROF_CAT_(a, b) STAGEPROF_CAT2_(a, b)
#define STAGEPROF_SITE_VAR_ STAGEPROF_CAT_(stageprof_site_, __LINE__)

#ifndef STAGEPROF_DISABLE

#define STAGEPROF_SCOPE(var, name, cat)                                        \
    static stageprof_site_t stageprof_site_##var =                             \
        STAGEPROF_SITE_INIT(name, cat);                                        \
    stageprof_span_t var STAGEPROF_UNUSED                                      \
        __attribute__((cleanup(stageprof_span_cleanup))) =                     \
            STAGEPROF_UNLIKELY(stageprof_is_active())                          \
                ? stageprof_span_begin(&stageprof_site_##var)                  \
                : stageprof_span_none()

#define STAGEPROF_SCOPE_DYN(var, name, cat)                                    \
    static stageprof_site_t stageprof_site_##var =                             \
        STAGEPROF_SITE_INIT("", cat);                                          \
    stageprof_span_t var STAGEPROF_UNUSED                                      \
        __attribute__((cleanup(stageprof_span_cleanup))) =                     \
            STAGEPROF_UNLIKELY(stageprof_is_active())                          \
                ? stageprof_span_begin_name(&stageprof_site_##var, (name))     \
                : stageprof_span_none()

#define STAGEPROF_SPAN_BEGIN(var, name, cat)                                   \
    static stageprof_site_t stageprof_site_##var =                             \
        STAGEPROF_SITE_INIT(name, cat);                                        \
    stageprof_span_t var = STAGEPROF_UNLIKELY(stageprof_is_active())           \
                               ? stageprof_span_begin(&stageprof_site_##var)   \
                               : stageprof_span_none()

#define STAGEPROF_SPAN_END(var)                                                \
    do {                                                                       \
        if (STAGEPROF_UNLIKELY((var).owner != 0))                              \
            stageprof_span_end(&(var));                                        \
    } while (0)

#define STAGEPROF_SPAN_COMPLETE(name, cat, start_ns, dur_ns)                   \
    do {                                                                       \
        static stageprof_site_t STAGEPROF_SITE_VAR_ =                          \
            STAGEPROF_SITE_INIT(name, cat);                                    \
        if (STAGEPROF_UNLIKELY(stageprof_is_active()))                         \
            stageprof_span_complete(&STAGEPROF_SITE_VAR_, (start_ns),          \
                                    (dur_ns));                                 \
    } while (0)

#define STAGEPROF_ARG_INT(var, key, value)                                     \
    do {                                                                       \
        if (STAGEPROF_UNLIKELY((var).owner != 0))                              \
            stageprof_span_arg_int(&(var), (key), (int64_t)(value));           \
    } while (0)

#define STAGEPROF_ARG_DOUBLE(var, key, value)                                  \
    do {                                                                       \
        if (STAGEPROF_UNLIKELY((var).owner != 0))                              \
            stageprof_span_arg_double(&(var), (key), (double)(value));         \
    } while (0)

#define STAGEPROF_ARG_STR(var, key, value)                                     \
    do {                                                                       \
        if (STAGEPROF_UNLIKELY((var).owner != 0))                              \
            stageprof_span_arg_str(&(var), (key), (value));                    \
    } while (0)

/* A site-taking call guarded by the hot-path switch. */
#define STAGEPROF_SITE_CALL_(name, cat, call)                                  \
    do {                                                                       \
        static stageprof_site_t STAGEPROF_SITE_VAR_ =                          \
            STAGEPROF_SITE_INIT(name, cat);                                    \
        if (STAGEPROF_UNLIKELY(stageprof_is_active()))                         \
            call;                                                              \
    } while (0)

#define STAGEPROF_INSTANT(name, cat)                                           \
    STAGEPROF_SITE_CALL_(name, cat,                                            \
                         (void)stageprof_instant(&STAGEPROF_SITE_VAR_))
#define STAGEPROF_COUNTER_INT(name, value)                                     \
    STAGEPROF_SITE_CALL_(                                                      \
        name, "counter",                                                       \
        stageprof_counter_set_int(&STAGEPROF_SITE_VAR_, (int64_t)(value)))
#define STAGEPROF_COUNTER_DOUBLE(name, value)                                  \
    STAGEPROF_SITE_CALL_(                                                      \
        name, "counter",                                                       \
        stageprof_counter_set_double(&STAGEPROF_SITE_VAR_, (double)(value)))
#define STAGEPROF_FLOW_BEGIN(name, id)                                         \
    STAGEPROF_SITE_CALL_(name, "flow",                                         \
                         stageprof_flow_begin(&STAGEPROF_SITE_VAR_, (id)))
#define STAGEPROF_FLOW_STEP(name, id)                                          \
    STAGEPROF_SITE_CALL_(name, "flow",                                         \
                         stageprof_flow_step(&STAGEPROF_SITE_VAR_, (id)))
#define STAGEPROF_FLOW_END(name, id)                                           \
    STAGEPROF_SITE_CALL_(name, "flow",                                         \
                         stageprof_flow_end(&STAGEPROF_SITE_VAR_, (id)))
#define STAGEPROF_RUN_BEGIN(name, id)                                          \
    STAGEPROF_SITE_CALL_(name, "run",                                          \
                         stageprof_run_begin(&STAGEPROF_SITE_VAR_, (id)))
#define STAGEPROF_RUN_END(name, id)                                            \
    STAGEPROF_SITE_CALL_(name, "run",                                          \
                         stageprof_run_end(&STAGEPROF_SITE_VAR_, (id)))
#define STAGEPROF_RUN_SET(id)                                                  \
    do {                                                                       \
        if (STAGEPROF_UNLIKELY(stageprof_is_active()))                         \
            stageprof_run_set_current(id);                                     \
    } while (0)

#else /* STAGEPROF_DISABLE: everything compiles, nothing is recorded */

/*
 * Arguments are referred to through sizeof: never evaluated, yet the
 * compiler sees them used, so code that computes a value only for a macro
 * compiles without "unused" warnings.
 */
#define STAGEPROF_USE_(x) ((void)sizeof(x))

#define STAGEPROF_SCOPE(var, name, cat)                                        \
    stageprof_span_t var STAGEPROF_UNUSED = stageprof_span_none()
#define STAGEPROF_SCOPE_DYN(var, name, cat)                                    \
    stageprof_span_t var STAGEPROF_UNUSED =                                    \
        (STAGEPROF_USE_(name), stageprof_span_none())
#define STAGEPROF_SPAN_BEGIN(var, name, cat)                                   \
    stageprof_span_t var STAGEPROF_UNUSED = stageprof_span_none()
#define STAGEPROF_SPAN_END(var) ((void)(var))
#define STAGEPROF_SPAN_COMPLETE(name, cat, start_ns, dur_ns)                   \
    (STAGEPROF_USE_(start_ns), STAGEPROF_USE_(dur_ns))
#define STAGEPROF_ARG_INT(var, key, value) ((void)(var), STAGEPROF_USE_(value))
#define STAGEPROF_ARG_DOUBLE(var, key, value)                                  \
    ((void)(var), STAGEPROF_USE_(value))
#define STAGEPROF_ARG_STR(var, key, value) ((void)(var), STAGEPROF_USE_(value))
#define STAGEPROF_INSTANT(name, cat) ((void)0)
#define STAGEPROF_COUNTER_INT(name, value) STAGEPROF_USE_(value)
#define STAGEPROF_COUNTER_DOUBLE(name, value) STAGEPROF_USE_(value)
#define STAGEPROF_FLOW_BEGIN(name, id) STAGEPROF_USE_(id)
#define STAGEPROF_FLOW_STEP(name, id) STAGEPROF_USE_(id)
#define STAGEPROF_FLOW_END(name, id) STAGEPROF_USE_(id)
#define STAGEPROF_RUN_BEGIN(name, id) STAGEPROF_USE_(id)
#define STAGEPROF_RUN_END(name, id) STAGEPROF_USE_(id)
#define STAGEPROF_RUN_SET(id) STAGEPROF_USE_(id)

#endif /* STAGEPROF_DISABLE */

#ifdef __cplusplus
}
#endif

#endif /* STAGEPROF_H */
