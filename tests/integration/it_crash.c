/*
 * it_crash.c - record on several threads, then die of a signal.
 *
 *   it_crash DIR MODE [prev|held]
 *
 * MODE picks the death: segv (a store through a NULL pointer), abort,
 * fpe (integer division by a volatile zero), bus (raise(SIGBUS)), ill
 * (__builtin_trap). With "prev" the program installs its own handler for
 * that signal before stageprof_start(); the handler prints
 * "PREV_HANDLER_RAN sig=N dumps=K" (K: *_crash.json files in DIR at that
 * moment), restores the default action and raises the signal again.
 * With "held" a writer is stuck holding the library's writer lock when the
 * crash comes: a stageprof_flush() right after the start, whose log
 * callback never returns ("trace written"), so the dump must take no lock.
 *
 * Without a sanitizer (which owns the allocator) the program replaces
 * malloc, calloc, realloc and free with wrappers around glibc's: once the
 * crash has begun, any allocation (the crash handler must make none)
 * prints MALLOC_AFTER_CRASH and exits with 99.
 *
 * Tracing is started with the config (enable, DIR); STAGEPROF_CRASH_DUMP
 * comes from the environment the checker (check_crash.py) sets.
 *
 * Workload, printed as JSON on stdout before the crash:
 *
 *   worker-K (K < 3)  run 1000+K: STEPS[K] "step" > "inner" spans with
 *                     args, a tick instant every 100 steps, counters
 *                     "progress" (int) and "ratio" (i / 7.0), a flow
 *                     5000+K to the main thread; the run ends. Then
 *                     IDLE[K] "idle_step" spans outside any run, a span
 *                     with a run-time name, "late_parent" whose argument
 *                     is attached after its child ended, a span recorded
 *                     with explicit times ("manual"). Then run 2000+K
 *                     begins and "stuck_outer" > "stuck_inner" are left
 *                     open while the thread waits forever.
 *   early             EARLY "early_step" spans, then exits (joined).
 *   it-main           MAIN_SETUP "main_setup" spans, "main_pickup" with
 *                     the three flow ends, then "main_open" stays open and
 *                     the crash happens inside it.
 *
 * Every span carries "expect_run": the run it must carry in the dump.
 */
#include "it_common.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NWORKERS 3
#define EARLY 10
#define MAIN_SETUP 5

static const int steps[NWORKERS] = {6000, 150, 75};
static const int idle[NWORKERS] = {20, 7, 3};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int ready;
} sync_ = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static int worker_tid[NWORKERS];
static const char *dir_arg;
static volatile sig_atomic_t crashing;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define IT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define IT_SANITIZED 1
#endif
#endif

#ifndef IT_SANITIZED
/* glibc's allocator under its internal names. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static void no_alloc_now(void)
{
    if (crashing) {
        static const char msg[] = "MALLOC_AFTER_CRASH\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(99);
    }
}

void *malloc(size_t n)
{
    no_alloc_now();
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    no_alloc_now();
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    no_alloc_now();
    return __libc_realloc(p, n);
}

void free(void *p)
{
    no_alloc_now();
    __libc_free(p);
}
#endif

/* "held": the flushing thread waits here forever, holding the writer lock. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int inside;
} held = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static void held_log(int level, const char *message, void *data)
{
    (void)data;
    if (level != STAGEPROF_LOG_INFO || strstr(message, "trace written") == 0)
        return;
    pthread_mutex_lock(&held.lock);
    held.inside = 1;
    pthread_cond_broadcast(&held.cond);
    for (;;)
        pthread_cond_wait(&held.cond, &held.lock);
}

static void *flusher_main(void *arg)
{
    (void)arg;
    IT_CHECK_RC(stageprof_flush(), 0);
    return NULL;
}

static int gettid_(void)
{
    return (int)syscall(SYS_gettid);
}

static void *worker_main(void *arg)
{
    int k = (int)(intptr_t)arg;
    char name[16];
    snprintf(name, sizeof name, "worker-%d", k);
    stageprof_thread_set_name(name);
    stageprof_thread_set_sort_index(k + 1);
    worker_tid[k] = gettid_();

    uint64_t run = 1000 + (uint64_t)k;
    STAGEPROF_RUN_BEGIN("job", run);
    for (int i = 0; i < steps[k]; i++) {
        STAGEPROF_SCOPE(step, "step", "compute");
        STAGEPROF_ARG_INT(step, "expect_run", run);
        STAGEPROF_ARG_INT(step, "i", i);
        {
            STAGEPROF_SCOPE(inner, "inner", "preprocess");
            STAGEPROF_ARG_INT(inner, "expect_run", run);
            STAGEPROF_ARG_DOUBLE(inner, "third", i / 3.0);
            if (i % 100 == 0) {
                stageprof_span_t t;
                static stageprof_site_t tick_site =
                    STAGEPROF_SITE_INIT("tick", "engine");
                t = stageprof_instant(&tick_site);
                stageprof_span_arg_int(&t, "expect_run", (int64_t)run);
            }
        }
        if (i % 10 == 0) {
            STAGEPROF_COUNTER_INT("progress", i);
            STAGEPROF_COUNTER_DOUBLE("ratio", i / 7.0);
        }
    }
    STAGEPROF_FLOW_BEGIN("handoff", 5000 + (uint64_t)k);
    STAGEPROF_RUN_END("job", run);

    for (int i = 0; i < idle[k]; i++) {
        STAGEPROF_SCOPE(s, "idle_step", "io");
        STAGEPROF_ARG_INT(s, "expect_run", 0);
        STAGEPROF_ARG_STR(s, "note", "quote\" back\\ nl\n \xc3\xa9");
    }
    {
        char dyn[64];
        snprintf(dyn, sizeof dyn, "dyn \"%d\" \\ name", k);
        STAGEPROF_SCOPE_DYN(d, dyn, "data");
        STAGEPROF_ARG_INT(d, "expect_run", 0);
    }
    {
        STAGEPROF_SCOPE(parent, "late_parent", "serve");
        STAGEPROF_ARG_INT(parent, "expect_run", 0);
        {
            STAGEPROF_SCOPE(child, "child", "serve");
            STAGEPROF_ARG_INT(child, "expect_run", 0);
        }
        STAGEPROF_ARG_INT(parent, "late", 7);
    }
    uint64_t now = stageprof_now_ns();
    STAGEPROF_SPAN_COMPLETE("manual", "compute", now - 5000, 2500);

    uint64_t run2 = 2000 + (uint64_t)k;
    STAGEPROF_RUN_BEGIN("job", run2);
    STAGEPROF_SPAN_BEGIN(outer, "stuck_outer", "compute");
    STAGEPROF_ARG_INT(outer, "expect_run", run2);
    STAGEPROF_SPAN_BEGIN(inner2, "stuck_inner", "compute");
    STAGEPROF_ARG_INT(inner2, "expect_run", run2);

    pthread_mutex_lock(&sync_.lock);
    sync_.ready++;
    pthread_cond_broadcast(&sync_.cond);
    for (;;) /* until the process dies */
        pthread_cond_wait(&sync_.cond, &sync_.lock);
    return NULL;
}

static void *early_main(void *arg)
{
    (void)arg;
    stageprof_thread_set_name("early");
    for (int i = 0; i < EARLY; i++) {
        STAGEPROF_SCOPE(s, "early_step", "data");
        STAGEPROF_ARG_INT(s, "expect_run", 0);
    }
    return NULL;
}

/* *_crash.json files in DIR, with raw system calls (signal context). */
static int count_dumps(void)
{
    int fd = open(dir_arg, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return 0;
    char buf[4096];
    int n = 0;
    long got;
    while ((got = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        for (long off = 0; off < got;) {
            /* struct linux_dirent64: ino 8, off 8, reclen 2, type 1, name */
            unsigned short reclen;
            memcpy(&reclen, buf + off + 16, sizeof reclen);
            const char *nm = buf + off + 19;
            size_t len = strlen(nm);
            if (len > 11 && memcmp(nm + len - 11, "_crash.json", 11) == 0)
                n++;
            off += reclen;
        }
    }
    close(fd);
    return n;
}

static void prev_handler(int sig, siginfo_t *info, void *uctx)
{
    (void)info;
    (void)uctx;
    char msg[64] = "PREV_HANDLER_RAN sig=";
    size_t n = strlen(msg);
    if (sig >= 10)
        msg[n++] = (char)('0' + sig / 10);
    msg[n++] = (char)('0' + sig % 10);
    memcpy(msg + n, " dumps=", 7);
    n += 7;
    msg[n++] = (char)('0' + count_dumps() % 10);
    msg[n++] = '\n';
    ssize_t w = write(1, msg, n);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig); /* pending until we return; a fault also repeats */
}

/*
 * Volatile operands: the compiler must emit the division (1 / b folds to a
 * comparison otherwise). UBSan would report it instead of letting it trap.
 */
static volatile int dividend = 1, divisor = 0;

__attribute__((no_sanitize("undefined"), noinline)) static int divide(void)
{
    return dividend / divisor;
}

/* A volatile store through NULL: it cannot be optimised away; UBSan would
 * report it instead of letting it fault. */
__attribute__((no_sanitize("undefined"), noinline)) static void store_null(void)
{
    volatile int *volatile p = NULL;
    *p = 42;
}

static void crash(const char *mode)
{
    crashing = 1;
    if (strcmp(mode, "segv") == 0) {
        store_null();
    } else if (strcmp(mode, "abort") == 0) {
        abort();
    } else if (strcmp(mode, "fpe") == 0) {
        volatile int r = divide();
        (void)r;
    } else if (strcmp(mode, "bus") == 0) {
        raise(SIGBUS);
    } else if (strcmp(mode, "ill") == 0) {
        __builtin_trap();
    }
    it_fail("mode %s did not kill the process", mode);
}

static int mode_signal(const char *mode)
{
    static const struct {
        const char *name;
        int sig;
    } modes[] = {{"segv", SIGSEGV},
                 {"abort", SIGABRT},
                 {"fpe", SIGFPE},
                 {"bus", SIGBUS},
                 {"ill", SIGILL}};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(mode, modes[i].name) == 0)
            return modes[i].sig;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || mode_signal(argv[2]) == 0) {
        fprintf(stderr,
                "usage: it_crash DIR segv|abort|fpe|bus|ill [prev|held]\n");
        return 2;
    }
    dir_arg = argv[1];
    int sig = mode_signal(argv[2]);
    int prev = argc > 3 && strcmp(argv[3], "prev") == 0;
    if (prev) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = prev_handler;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        IT_CHECK(sigaction(sig, &sa, NULL) == 0);
    }
    int hold = argc > 3 && strcmp(argv[3], "held") == 0;
    stageprof_thread_set_name("it-main");
    stageprof_config_t cfg;
    stageprof_config_init(&cfg);
    cfg.enable = 1;
    cfg.dir = argv[1];
    if (hold)
        cfg.log_cb = held_log;
    IT_CHECK_RC(stageprof_start(&cfg), 0);
    if (hold) {
        pthread_t flusher;
        IT_CHECK(pthread_create(&flusher, NULL, flusher_main, NULL) == 0);
        pthread_mutex_lock(&held.lock);
        while (!held.inside)
            pthread_cond_wait(&held.cond, &held.lock);
        pthread_mutex_unlock(&held.lock);
    }

    pthread_t early;
    IT_CHECK(pthread_create(&early, NULL, early_main, NULL) == 0);
    IT_CHECK(pthread_join(early, NULL) == 0);

    for (int i = 0; i < MAIN_SETUP; i++) {
        STAGEPROF_SCOPE(s, "main_setup", "engine");
        STAGEPROF_ARG_INT(s, "expect_run", 0);
    }
    pthread_t th[NWORKERS];
    for (int k = 0; k < NWORKERS; k++)
        IT_CHECK(pthread_create(&th[k], NULL, worker_main,
                                (void *)(intptr_t)k) == 0);
    pthread_mutex_lock(&sync_.lock);
    while (sync_.ready < NWORKERS)
        pthread_cond_wait(&sync_.cond, &sync_.lock);
    pthread_mutex_unlock(&sync_.lock);
    {
        STAGEPROF_SCOPE(pick, "main_pickup", "serve");
        STAGEPROF_ARG_INT(pick, "expect_run", 0);
        for (int k = 0; k < NWORKERS; k++)
            STAGEPROF_FLOW_END("handoff", 5000 + (uint64_t)k);
    }

    printf("{\"pid\":%d,\"signal\":%d,\"version\":\"%s\",\"main_tid\":%d,"
           "\"steps\":[%d,%d,%d],\"idle\":[%d,%d,%d],\"early\":%d,"
           "\"main_setup\":%d,\"worker_tids\":[%d,%d,%d]}\n",
           (int)getpid(), sig, stageprof_version_string(), gettid_(), steps[0],
           steps[1], steps[2], idle[0], idle[1], idle[2], EARLY, MAIN_SETUP,
           worker_tid[0], worker_tid[1], worker_tid[2]);
    fflush(stdout);

    STAGEPROF_SPAN_BEGIN(open_span, "main_open", "serve");
    STAGEPROF_ARG_INT(open_span, "expect_run", 0);
    crash(argv[2]);
    return 1;
}
