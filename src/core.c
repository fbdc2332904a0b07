/*
 * core.c - global state, start/stop/flush, configuration in force, the
 * allocator, diagnostics and error codes.
 *
 * Session lifecycle (all under stageprof__g.lock):
 *
 *   OFF --stageprof_start(enable=1)--> TRACING --stageprof_stop()--> OFF
 *    |                                    ^
 *    +--STAGEPROF_ENABLE at load--> ARMED-+ (first instrumented event)
 *    |                                |
 *    +--stageprof_start(http)-----> METRICS (STAGEPROF_HTTP, no tracing)
 *
 * With an HTTP address configured the session is "live": the histograms,
 * the endpoint and the resource sampler run beside tracing (TRACING) or
 * alone (METRICS). The sampler also runs when tracing alone.
 *
 * stageprof_hot_state mirrors the state for the macros. Each start bumps a
 * generation in filter_token, so per-site category decisions cached in
 * stageprof_site_t.filter are redone once per site and session.
 *
 * Recorded data outlives a session: a write that fails keeps it, and
 * stageprof_flush() retries later, with the configuration it was recorded
 * under, until the next stageprof_start() replaces that configuration.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "metrics.h"
#include "ring.h"
#include "sampler.h"
#include "tail.h"
#include "tbuf.h"

int stageprof_hot_state;

struct global stageprof__g = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wlock = PTHREAD_MUTEX_INITIALIZER,
};

/* Log target copied out of the configuration, so logging needs no g.lock. */
static struct {
    pthread_mutex_t lock;
    stageprof_log_cb cb;
    void *data;
    char file[1024];
} logt = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ------------------------------------------------------------------------ */
/* Errors and version                                                       */
/* ------------------------------------------------------------------------ */

const char *stageprof_strerror(int err)
{
    if (err == 0)
        return "success";
#define STAGEPROF_STRERROR_CASE_(name, value, msg)                             \
    case value:                                                                \
        return msg;
    switch (err) {
        STAGEPROF_ERRNO_MAP(STAGEPROF_STRERROR_CASE_)
    default:
        return "unknown error";
    }
#undef STAGEPROF_STRERROR_CASE_
}

const char *stageprof_err_name(int err)
{
    if (err == 0)
        return "OK";
#define STAGEPROF_ERR_NAME_CASE_(name, value, msg)                             \
    case value:                                                                \
        return #name;
    switch (err) {
        STAGEPROF_ERRNO_MAP(STAGEPROF_ERR_NAME_CASE_)
    default:
        return "UNKNOWN";
    }
#undef STAGEPROF_ERR_NAME_CASE_
}

int stageprof__translate_errno(int e)
{
    switch (e) {
    case 0:
        return 0;
    case ENOMEM:
        return STAGEPROF_ENOMEM;
    case ENOSPC:
    case EDQUOT:
        return STAGEPROF_ENOSPC;
    case EFBIG:
        return STAGEPROF_EFBIG;
    case EACCES:
    case EPERM:
        return STAGEPROF_EACCES;
    case ENOTDIR:
        return STAGEPROF_ENOTDIR;
    case ENOENT:
        return STAGEPROF_ENOENT;
    case EROFS:
        return STAGEPROF_EROFS;
    case EBUSY:
        return STAGEPROF_EBUSY;
    case EINVAL:
        return STAGEPROF_EINVAL;
    default:
        return STAGEPROF_EIO;
    }
}

unsigned stageprof_version(void)
{
    return STAGEPROF_VERSION_HEX;
}

const char *stageprof_version_string(void)
{
    return STAGEPROF_VERSION_STRING;
}

/* ------------------------------------------------------------------------ */
/* Allocation                                                               */
/* ------------------------------------------------------------------------ */

void *stageprof__malloc(size_t size)
{
    void *p = stageprof__g.malloc_fn
                  ? stageprof__g.malloc_fn(size, stageprof__g.alloc_data)
                  : malloc(size);
    if (p != NULL)
        __atomic_fetch_add(&stageprof__g.live_allocs, 1, __ATOMIC_RELAXED);
    return p;
}

void *stageprof__calloc(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = stageprof__malloc(n * size);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

void stageprof__free(void *ptr)
{
    if (ptr == NULL)
        return;
    __atomic_fetch_sub(&stageprof__g.live_allocs, 1, __ATOMIC_RELAXED);
    if (stageprof__g.free_fn)
        stageprof__g.free_fn(ptr, stageprof__g.alloc_data);
    else
        free(ptr);
}

char *stageprof__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = stageprof__malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

void stageprof_free(void *ptr)
{
    stageprof__free(ptr);
}

/* ------------------------------------------------------------------------ */
/* Diagnostics                                                              */
/* ------------------------------------------------------------------------ */

static const char *const level_names[] = {"error", "warning", "info"};

static void log_emit(stageprof_log_cb cb, void *data, const char *file,
                     int level, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (cb != NULL)
        cb(level, msg, data);
    if (file != NULL && file[0] != '\0') {
        int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) {
            char line[1200];
            int n = snprintf(
                line, sizeof line, "stageprof[%d]: %s: %s\n", (int)getpid(),
                level_names[level >= 0 && level <= 2 ? level : 0], msg);
            if (n > (int)sizeof line - 1)
                n = (int)sizeof line - 1;
            ssize_t w = write(fd, line, (size_t)n);
            (void)w;
            close(fd);
        }
    }
}

void stageprof__log(int level, const char *fmt, ...)
{
    pthread_mutex_lock(&logt.lock);
    stageprof_log_cb cb = logt.cb;
    void *data = logt.data;
    char file[sizeof logt.file];
    memcpy(file, logt.file, sizeof file);
    pthread_mutex_unlock(&logt.lock);
    va_list ap;
    va_start(ap, fmt);
    log_emit(cb, data, file, level, fmt, ap);
    va_end(ap);
}

void stageprof__log_conf(const struct conf *c, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_emit(c->log_cb, c->log_data, c->log_file, level, fmt, ap);
    va_end(ap);
}

void stageprof__log_fork(int phase)
{
    if (phase == 0)
        pthread_mutex_lock(&logt.lock);
    else if (phase == 1)
        pthread_mutex_unlock(&logt.lock);
    else
        pthread_mutex_init(&logt.lock, NULL);
}

static void log_target_set(const struct conf *c)
{
    pthread_mutex_lock(&logt.lock);
    logt.cb = c->log_cb;
    logt.data = c->log_data;
    snprintf(logt.file, sizeof logt.file, "%s", c->log_file ? c->log_file : "");
    pthread_mutex_unlock(&logt.lock);
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */
/* ------------------------------------------------------------------------ */

int stageprof__thread_create(pthread_t *th, const pthread_attr_t *attr,
                             void *(*fn)(void *), void *arg)
{
    /* Every signal blocked: the host's handlers never run on our threads. */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    int rc = pthread_create(th, attr, fn, arg);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    return rc;
}

void stageprof_config_init(stageprof_config_t *cfg)
{
    if (cfg == NULL)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->size = sizeof *cfg;
    cfg->enable = STAGEPROF_UNSET;
    cfg->buffer_bytes = STAGEPROF_UNSET;
    cfg->clock = STAGEPROF_UNSET;
    cfg->buffer_runs = STAGEPROF_UNSET;
    cfg->sample_runs = STAGEPROF_UNSET;
    cfg->gzip = STAGEPROF_UNSET;
    cfg->max_files = STAGEPROF_UNSET;
    cfg->max_dir_bytes = STAGEPROF_UNSET;
    cfg->snapshot_signal = STAGEPROF_UNSET;
    cfg->crash_dump = STAGEPROF_UNSET;
    cfg->follow_fork = STAGEPROF_UNSET;
    cfg->http_max_connections = STAGEPROF_UNSET;
    cfg->http_idle_timeout_s = STAGEPROF_UNSET;
    cfg->sample_hz = STAGEPROF_UNSET;
    cfg->max_stages = STAGEPROF_UNSET;
    cfg->keep_slower_than_ms = STAGEPROF_UNSET;
    cfg->keep_slowest = STAGEPROF_UNSET;
    cfg->keep_window_s = STAGEPROF_UNSET;
    cfg->keep_bytes = STAGEPROF_UNSET;
}

static void at_exit(void)
{
    /*
     * Still armed: STAGEPROF_ENABLE asked for tracing and no instrumented
     * code ran. Start now so the user gets a trace that says so (no
     * events, complete) rather than no file at all.
     */
    if (LOAD_RELAXED(&stageprof_hot_state) == STATE_ARMED &&
        stageprof__config_env_enabled())
        (void)stageprof__ensure_tracing();
    int st = LOAD_RELAXED(&stageprof_hot_state);
    if (st == STATE_TRACING || st == STATE_METRICS)
        (void)stageprof_stop();
}

/* Chunk size: small budgets get small chunks so every thread gets some. */
static uint64_t chunk_size(long long budget)
{
    uint64_t c = (uint64_t)budget / 16;
    if (c > (64u << 10))
        c = 64u << 10;
    if (c < (4u << 10))
        c = 4u << 10;
    return c;
}

/* Copy the caller's config, reading only the fields inside its size. */
static int copy_config(const stageprof_config_t *cfg, stageprof_config_t *out)
{
    stageprof_config_init(out);
    if (cfg == NULL)
        return 0;
    if (cfg->size < offsetof(stageprof_config_t, enable) + sizeof(int))
        return STAGEPROF_EINVAL;
    size_t n = cfg->size < sizeof *out ? cfg->size : sizeof *out;
    memcpy(out, cfg, n);
    out->size = sizeof *out;
    if ((out->malloc_fn == NULL) != (out->free_fn == NULL))
        return STAGEPROF_EINVAL;
    return 0;
}

static int start_locked(const stageprof_config_t *user)
{
    stageprof_config_t cfg;
    int rc = copy_config(user, &cfg);
    if (rc != 0)
        return rc;
    if (stageprof__g.started)
        return STAGEPROF_EALREADY;

    if (cfg.malloc_fn != stageprof__g.malloc_fn ||
        cfg.free_fn != stageprof__g.free_fn ||
        cfg.alloc_data != stageprof__g.alloc_data) {
        /* Memory from one allocator must go back to the same one. */
        if (LOAD_RELAXED(&stageprof__g.live_allocs) != 0)
            return STAGEPROF_EBUSY;
        stageprof__g.malloc_fn = cfg.malloc_fn;
        stageprof__g.free_fn = cfg.free_fn;
        stageprof__g.alloc_data = cfg.alloc_data;
    }

    struct conf conf;
    rc = stageprof__config_resolve(&cfg, &conf);
    if (rc == 0 && (rc = stageprof__ring_open(&conf)) != 0)
        stageprof__config_fini(&conf);
    if (rc != 0)
        return rc;

    /* The clock (and its anchor thread) serves tracing and metrics. */
    const char *why;
    int live = conf.http != NULL;
    if ((conf.enable || live) && stageprof__clock_open(conf.clock, &why) != 0)
        stageprof__log_conf(&conf, STAGEPROF_LOG_WARN,
                            "cannot start the clock thread: the TSC is "
                            "re-anchored only when a trace is written");

    stageprof__config_fini(&stageprof__g.conf);
    stageprof__g.conf = conf;
    log_target_set(&conf);
    if (conf.enable) /* reads stageprof__g.conf, so only from here on */
        stageprof__snapshot_start();
    stageprof__g.base_mono_ns = stageprof__clock_mono_ns();
    stageprof__g.base_real_ns = stageprof__clock_real_ns();
    if (LOAD_RELAXED(&stageprof__g.clock_mode) == CLOCK_MODE_FAKE) {
        stageprof__g.base_mono_ns = stageprof_now_ns();
        stageprof__g.base_real_ns = 0;
    }
    /* After the clock, g.conf and the time base: the dump uses all three. */
    stageprof__crash_install();
    STORE_RELAXED(&stageprof__g.chunk_bytes, chunk_size(conf.buffer_bytes));
    /* Kept slow runs have their own share, out of the buffers' budget. */
    STORE_RELAXED(&stageprof__g.budget,
                  (uint64_t)(conf.buffer_bytes - conf.keep_bytes));
    unsigned gen = (LOAD_RELAXED(&stageprof__g.filter_token) >> 1) + 1;
    STORE_RELAXED(&stageprof__g.filter_token, (gen << 1) | 1u);
    if (!stageprof__g.atexit_registered && atexit(at_exit) == 0)
        stageprof__g.atexit_registered = 1;
    stageprof__fork_register();
    stageprof__g.started = 1;
    stageprof__g.ever_started = 1;
    STORE_RELEASE(&stageprof_hot_state,
                  conf.enable ? STATE_TRACING : STATE_OFF);
    if (conf.enable) /* records spans (privately): needs the state set */
        stageprof__g.cost_ns_per_event = stageprof__overhead_calibrate();
    /* After the calibration, whose spans are no stage of the pipeline. */
    if (live && stageprof__metrics_open(&conf) != 0) {
        stageprof__log(STAGEPROF_LOG_WARN,
                       "cannot start metrics (out of memory): no /metrics");
        live = 0;
    }
    stageprof__g.live = live;
    stageprof__g.live_pid = (int)getpid();
    if (live) {
        (void)stageprof__http_start(&conf); /* a failure is logged */
        if (!conf.enable)
            STORE_RELEASE(&stageprof_hot_state, STATE_METRICS);
    }
    if (conf.enable || live)
        (void)stageprof__sampler_start(&conf); /* a failure is logged */
    (void)stageprof__tail_open(&conf);         /* a failure is logged */
    if (conf.enable)
        stageprof__log(STAGEPROF_LOG_INFO,
                       "tracing on: clock %s, buffer %lld bytes, traces in %s",
                       stageprof__clock_name(), conf.buffer_bytes, conf.dir);
    return 0;
}

int stageprof_start(const stageprof_config_t *cfg)
{
    pthread_mutex_lock(&stageprof__g.lock);
    int rc = start_locked(cfg);
    pthread_mutex_unlock(&stageprof__g.lock);
    return rc;
}

int stageprof__ensure_tracing(void)
{
    int st = LOAD_ACQUIRE(&stageprof_hot_state);
    if (st == STATE_ARMED) {
        pthread_mutex_lock(&stageprof__g.lock);
        if (LOAD_RELAXED(&stageprof_hot_state) == STATE_ARMED &&
            !stageprof__g.started && start_locked(NULL) != 0)
            STORE_RELAXED(&stageprof_hot_state, STATE_OFF);
        pthread_mutex_unlock(&stageprof__g.lock);
        st = LOAD_ACQUIRE(&stageprof_hot_state);
    }
    return st == STATE_TRACING;
}

int stageprof_stop(void)
{
    pthread_mutex_lock(&stageprof__g.lock);
    if (!stageprof__g.started) {
        pthread_mutex_unlock(&stageprof__g.lock);
        return STAGEPROF_ENOTSTARTED;
    }
    int traced = stageprof__g.conf.enable;
    /* A forked child has neither the endpoint nor the sampler thread. */
    int own = stageprof__g.live_pid == (int)getpid();
    int live = stageprof__g.live && own;
    stageprof__g.started = 0;
    stageprof__g.live = 0;
    STORE_RELEASE(&stageprof_hot_state, STATE_OFF);
    pthread_mutex_unlock(&stageprof__g.lock);

    if (live) {
        stageprof__metrics_close();
        stageprof__http_stop();
    }
    if (own)
        stageprof__sampler_stop();
    stageprof__tail_close(); /* writes the runs it still holds */

    int rc = traced ? stageprof__trace_file_write(1) : 0;
    pthread_mutex_lock(&stageprof__g.wlock);
    stageprof__tail_forget();
    pthread_mutex_unlock(&stageprof__g.wlock);
    if (traced)
        stageprof__snapshot_stop();
    stageprof__clock_close();
    stageprof__crash_uninstall();
    return rc;
}

int stageprof_flush(void)
{
    pthread_mutex_lock(&stageprof__g.lock);
    int ever = stageprof__g.ever_started;
    pthread_mutex_unlock(&stageprof__g.lock);
    if (!ever)
        return STAGEPROF_ENOTSTARTED;
    return stageprof__trace_file_write(0);
}

int stageprof_is_tracing(void)
{
    return LOAD_RELAXED(&stageprof_hot_state) == STATE_TRACING;
}

int stageprof_get_last_path(char *buf, size_t len)
{
    if (buf == NULL)
        return STAGEPROF_EINVAL;
    pthread_mutex_lock(&stageprof__g.lock);
    size_t n = strlen(stageprof__g.last_path);
    int rc = 0;
    if (n == 0)
        rc = STAGEPROF_ENOENT;
    else if (n + 1 > len)
        rc = STAGEPROF_ERANGE;
    else
        memcpy(buf, stageprof__g.last_path, n + 1);
    pthread_mutex_unlock(&stageprof__g.lock);
    return rc;
}

int stageprof_get_stats(stageprof_stats_t *stats)
{
    if (stats == NULL || stats->size < sizeof(size_t) + sizeof(uint64_t))
        return STAGEPROF_EINVAL;
    stageprof_stats_t s;
    memset(&s, 0, sizeof s);
    pthread_mutex_lock(&stageprof__g.lock);
    struct counts c;
    stageprof__tbuf_counts(&c);
    s.events_dropped = c.dropped;
    s.misuse = c.end_other + c.end_twice + c.unclosed + c.depth + c.arg +
               stageprof__g.misuse_run_end + stageprof__ring_unmatched_ends();
    s.threads = stageprof__g.threads_seen;
    s.events_written = stageprof__g.events_written;
    s.traces_written = stageprof__g.traces_written;
    s.write_errors = stageprof__g.write_errors;
    pthread_mutex_unlock(&stageprof__g.lock);
    s.bytes_buffered = stageprof__tbuf_bytes();
    size_t n = stats->size < sizeof s ? stats->size : sizeof s;
    s.size = stats->size;
    memcpy(stats, &s, n);
    return 0;
}

void stageprof_process_set_name(const char *name)
{
    if (name == NULL)
        return;
    pthread_mutex_lock(&stageprof__g.lock);
    snprintf(stageprof__g.proc_name, sizeof stageprof__g.proc_name, "%s", name);
    pthread_mutex_unlock(&stageprof__g.lock);
}

unsigned stageprof__site_resolve(stageprof_site_t *site)
{
    unsigned token = LOAD_RELAXED(&stageprof__g.filter_token);
    unsigned f = LOAD_RELAXED(&site->filter);
    if ((f >> 1) == (token >> 1))
        return f;
    pthread_mutex_lock(&stageprof__g.lock);
    int ok = stageprof__config_category_ok(&stageprof__g.conf, site->category);
    pthread_mutex_unlock(&stageprof__g.lock);
    f = (token & ~1u) | (ok ? 1u : 0u);
    STORE_RELAXED(&site->filter, f);
    return f;
}

/*
 * At load: arm when STAGEPROF_ENABLE (or its alias) or STAGEPROF_HTTP is
 * present at all, so the first event starts tracing or metrics, or resolves the
 * configuration and reports a bad value through STAGEPROF_LOG_FILE; at exit a
 * process that never recorded resolves it too (and writes an empty trace when
 * enabled).
 */
__attribute__((constructor)) static void autoarm(void)
{
    if (getenv("STAGEPROF_ENABLE") == NULL &&
        getenv("ENABLE_WORKFLOWS_PROFILING") == NULL &&
        getenv("STAGEPROF_HTTP") == NULL)
        return;
    STORE_RELEASE(&stageprof_hot_state, STATE_ARMED);
    pthread_mutex_lock(&stageprof__g.lock);
    if (!stageprof__g.atexit_registered && atexit(at_exit) == 0)
        stageprof__g.atexit_registered = 1;
    pthread_mutex_unlock(&stageprof__g.lock);
}
