/*
 * test_snapshot.c - stageprof_snapshot() and STAGEPROF_SNAPSHOT_SIGNAL:
 * snapshots keep the events, get names of their own, survive failing
 * writes without counting them, run one at a time when requested at once,
 * race stageprof_stop() safely; signals write snapshots from the
 * background thread, coalesce while a write is in progress, never disturb
 * errno or kill the process, and the previous handler comes back at stop.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

#define SIG SIGUSR2

static char *tmpdir(void)
{
    return temp_dir("stageprof-snap");
}

/* Start tracing into @dir (fake clock, fixed ids) with @sig (0: none). */
static void start_with(const char *dir, int sig)
{
    stageprof__clock_set_fake(fake_clock);
    stageprof__writer_set_fixed_ids(1);
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 1;
    c.dir = dir;
    c.snapshot_signal = sig;
    ASSERT_EQ(stageprof_start(&c), 0);
}

/* A whole trace: its summary and the closing of the object are there. */
static void assert_whole(const char *text)
{
    ASSERT_CONTAINS(text, "\"stageprof_summary\":{");
    size_t n = strlen(text);
    ASSERT_TRUE(n > 4 && strcmp(text + n - 3, "}}\n") == 0);
}

/* Every .json file in @dir is whole; returns their number. */
static int check_all_whole(const char *dir)
{
    DIR *d = opendir(dir);
    ASSERT_NOT_NULL(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!ends_with(e->d_name, ".json"))
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        char *text = read_file(path, NULL);
        assert_whole(text);
        free(text);
        n++;
    }
    closedir(d);
    return n;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Wait up to 10 s for traces_written to reach @n; returns the count. */
static uint64_t wait_traces(uint64_t n)
{
    for (int i = 0; i < 1000 && stats().traces_written < n; i++)
        sleep_ms(10);
    return stats().traces_written;
}

STAGEPROF_TEST(snapshot_keeps_events_and_recording_goes_on)
{
    char *dir = tmpdir();
    start_with(dir, 0);
    record_some(10);
    ASSERT_EQ(stageprof_snapshot(), 0);
    ASSERT_TRUE(stageprof_is_tracing());
    char path[4096];
    char *snap = last_trace(path, sizeof path);
    ASSERT_EQ(count_of(snap, "\"name\":\"stage\""), 10);
    ASSERT_CONTAINS(snap, "\"final\":false");
    assert_whole(snap);
    free(snap);
    record_some(5);
    ASSERT_EQ(stageprof_snapshot(), 0);
    snap = last_trace(path, sizeof path);
    ASSERT_EQ(count_of(snap, "\"name\":\"stage\""), 15);
    free(snap);
    record_some(5);
    ASSERT_EQ(stageprof_stop(), 0);
    /* The final trace still holds everything the snapshots wrote. */
    char *fin = last_trace(path, sizeof path);
    ASSERT_EQ(count_of(fin, "\"name\":\"stage\""), 20);
    ASSERT_CONTAINS(fin, "\"final\":true");
    free(fin);
    stageprof_stats_t st = stats();
    ASSERT_EQ(st.traces_written, 3);
    ASSERT_EQ(st.write_errors, 0);
    ASSERT_EQ(files_in(dir, ".json"), 3);
}

STAGEPROF_TEST(snapshot_without_tracing_is_enotstarted)
{
    ASSERT_EQ(stageprof_snapshot(), STAGEPROF_ENOTSTARTED);
    char *dir = tmpdir();
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 0;
    c.dir = dir;
    ASSERT_EQ(stageprof_start(&c), 0);
    ASSERT_EQ(stageprof_snapshot(), STAGEPROF_ENOTSTARTED);
    ASSERT_EQ(stageprof_stop(), 0);
    start_with(dir, 0);
    record_some(3);
    ASSERT_EQ(stageprof_stop(), 0);
    ASSERT_EQ(stageprof_snapshot(), STAGEPROF_ENOTSTARTED);
    /* Not a failed write: nothing counted. */
    ASSERT_EQ(stats().write_errors, 0);
    ASSERT_EQ(stats().traces_written, 1);
    ASSERT_EQ(files_in(dir, ".json"), 1);
}

STAGEPROF_TEST(two_snapshots_in_one_second_get_distinct_names)
{
    char *dir = tmpdir();
    start_with(dir, 0);
    record_some(4);
    char a[4096], b[4096];
    time_t t0 = time(NULL);
    ASSERT_EQ(stageprof_snapshot(), 0);
    ASSERT_EQ(stageprof_get_last_path(a, sizeof a), 0);
    ASSERT_EQ(stageprof_snapshot(), 0);
    ASSERT_EQ(stageprof_get_last_path(b, sizeof b), 0);
    if (time(NULL) != t0)
        STAGEPROF_SKIP("the second changed between the two snapshots");
    ASSERT_TRUE(strcmp(a, b) != 0);
    /* Same stamp: the second one carries the _1 suffix. */
    size_t n = strlen(a) - strlen(".json");
    ASSERT_TRUE(strncmp(a, b, n) == 0);
    ASSERT_STREQ(b + n, "_1.json");
    ASSERT_EQ(files_in(dir, ".json"), 2);
    char *ta = read_file(a, NULL), *tb = read_file(b, NULL);
    ASSERT_EQ(count_of(ta, "\"name\":\"stage\""), 4);
    ASSERT_EQ(count_of(tb, "\"name\":\"stage\""), 4);
    free(ta);
    free(tb);
}

STAGEPROF_TEST(failed_snapshot_keeps_the_ring_and_the_next_retries)
{
    char *dir = tmpdir();
    start_with(dir, 0);
    record_some(40);
    /* Disk full in the middle of the file, then at its very start. */
    stageprof__trace_file_set_fail(STAGEPROF_ENOSPC, 700);
    ASSERT_EQ(stageprof_snapshot(), STAGEPROF_ENOSPC);
    stageprof__trace_file_set_fail(STAGEPROF_ENOSPC, 0);
    ASSERT_EQ(stageprof_snapshot(), STAGEPROF_ENOSPC);
    /* The rename fails: the file was whole, yet nothing counts. */
    stageprof__trace_file_set_fail(STAGEPROF_EIO, -2);
    ASSERT_EQ(stageprof_snapshot(), STAGEPROF_EIO);
    stageprof_stats_t st = stats();
    ASSERT_EQ(st.write_errors, 3);
    ASSERT_EQ(st.traces_written, 0);
    ASSERT_EQ(st.events_written, 0);
    ASSERT_EQ(files_in(dir, ".json"), 0);
    ASSERT_EQ(files_in(dir, ".tmp"), 0);
    char path[16];
    ASSERT_EQ(stageprof_get_last_path(path, sizeof path), STAGEPROF_ENOENT);

    stageprof__trace_file_set_fail(0, 0);
    record_some(2);
    ASSERT_EQ(stageprof_snapshot(), 0);
    char p[4096];
    char *snap = last_trace(p, sizeof p);
    ASSERT_EQ(count_of(snap, "\"name\":\"stage\""), 42);
    /* Counted as written: exactly the events of that one file. */
    st = stats();
    ASSERT_EQ(st.traces_written, 1);
    ASSERT_EQ(st.write_errors, 3);
    ASSERT_CONTAINS(snap, "\"events_written\":");
    char want[64];
    snprintf(want, sizeof want, "\"events_written\":%llu,",
             (unsigned long long)st.events_written);
    ASSERT_CONTAINS(snap, want);
    free(snap);
    ASSERT_EQ(stageprof_stop(), 0);
    char *fin = last_trace(p, sizeof p);
    ASSERT_EQ(count_of(fin, "\"name\":\"stage\""), 42);
    free(fin);
}

#define NREQ 4
#define PER_REQ 5

static void *snapshot_requests(void *arg)
{
    int *rcs = arg;
    for (int i = 0; i < PER_REQ; i++)
        rcs[i] = stageprof_snapshot();
    return NULL;
}

static int recording_on;

/* Ten spans a millisecond until told to stop (traces stay small). */
static void *recorder(void *arg)
{
    (void)arg;
    stageprof_thread_set_name("recorder");
    while (__atomic_load_n(&recording_on, __ATOMIC_ACQUIRE)) {
        record_some(10);
        sleep_ms(1);
    }
    return NULL;
}

STAGEPROF_TEST(snapshot_requests_at_once_each_write_a_whole_file)
{
    char *dir = tmpdir();
    start_with(dir, 0);
    record_some(200);
    __atomic_store_n(&recording_on, 1, __ATOMIC_RELEASE);
    pthread_t rec, t[NREQ];
    int rcs[NREQ][PER_REQ];
    ASSERT_EQ(pthread_create(&rec, NULL, recorder, NULL), 0);
    for (int i = 0; i < NREQ; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, snapshot_requests, rcs[i]), 0);
    for (int i = 0; i < NREQ; i++)
        ASSERT_EQ(pthread_join(t[i], NULL), 0);
    __atomic_store_n(&recording_on, 0, __ATOMIC_RELEASE);
    ASSERT_EQ(pthread_join(rec, NULL), 0);
    /* Requests wait for each other: every one wrote its own file. */
    for (int i = 0; i < NREQ; i++)
        for (int k = 0; k < PER_REQ; k++)
            ASSERT_EQ(rcs[i][k], 0);
    ASSERT_EQ(stats().traces_written, NREQ * PER_REQ);
    ASSERT_EQ(check_all_whole(dir), NREQ * PER_REQ);
    ASSERT_EQ(files_in(dir, ".tmp"), 0);
    ASSERT_EQ(stageprof_stop(), 0);
}

/* Snapshots until the session is over (at most 20 s: then @arg counts). */
static void *snapshot_until_stopped(void *arg)
{
    int *bad = arg;
    time_t end = time(NULL) + 20;
    for (;;) {
        int rc = stageprof_snapshot();
        if (rc == STAGEPROF_ENOTSTARTED)
            break;
        if (rc != 0 || time(NULL) > end) {
            (*bad)++;
            break;
        }
    }
    return NULL;
}

STAGEPROF_TEST(snapshot_during_stop)
{
    for (int round = 0; round < 5; round++) {
        char *dir = tmpdir();
        start_with(dir, 0);
        record_some(500);
        int bad = 0;
        pthread_t t;
        ASSERT_EQ(pthread_create(&t, NULL, snapshot_until_stopped, &bad), 0);
        record_some(500);
        ASSERT_EQ(stageprof_stop(), 0);
        ASSERT_EQ(pthread_join(t, NULL), 0);
        ASSERT_EQ(bad, 0);
        /* No snapshot came after the final trace: it is the last file,
         * and it holds every event. */
        char p[4096];
        char *fin = last_trace(p, sizeof p);
        ASSERT_CONTAINS(fin, "\"final\":true");
        ASSERT_EQ(count_of(fin, "\"name\":\"stage\""), 1000);
        free(fin);
        ASSERT_GE(check_all_whole(dir), 1);
        ASSERT_EQ(files_in(dir, ".tmp"), 0);
        ASSERT_EQ(stageprof_snapshot(), STAGEPROF_ENOTSTARTED);
    }
}

/* ------------------------------------------------------------------------ */
/* The signal                                                               */
/* ------------------------------------------------------------------------ */

static int user_handler_calls;

static void user_handler(int sig)
{
    (void)sig;
    __atomic_fetch_add(&user_handler_calls, 1, __ATOMIC_RELAXED);
}

static void install_user_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = user_handler;
    sa.sa_flags = SA_RESTART; /* the test's own reads go on */
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(sigaction(SIG, &sa, NULL), 0);
}

static void *current_handler(void)
{
    struct sigaction sa;
    ASSERT_EQ(sigaction(SIG, NULL, &sa), 0);
    return (void *)(uintptr_t)sa.sa_handler;
}

STAGEPROF_TEST(signal_writes_a_snapshot_and_stop_restores_the_handler)
{
    install_user_handler();
    char *dir = tmpdir();
    start_with(dir, SIG);
    ASSERT_TRUE(current_handler() != (void *)(uintptr_t)user_handler);
    record_some(12);
    ASSERT_EQ(kill(getpid(), SIG), 0);
    ASSERT_EQ(wait_traces(1), 1);
    char p[4096];
    char *snap = last_trace(p, sizeof p);
    ASSERT_EQ(count_of(snap, "\"name\":\"stage\""), 12);
    ASSERT_CONTAINS(snap, "\"final\":false");
    free(snap);
    ASSERT_TRUE(stageprof_is_tracing());
    ASSERT_EQ(user_handler_calls, 0);
    ASSERT_EQ(stageprof_stop(), 0);
    ASSERT_TRUE(current_handler() == (void *)(uintptr_t)user_handler);
    ASSERT_EQ(kill(getpid(), SIG), 0);
    ASSERT_EQ(user_handler_calls, 1);
    sleep_ms(100);
    ASSERT_EQ(stats().traces_written, 2); /* the snapshot and the final */
}

STAGEPROF_TEST(no_signal_handler_unless_asked)
{
    install_user_handler();
    char *dir = tmpdir();
    start_with(dir, 0);
    ASSERT_TRUE(current_handler() == (void *)(uintptr_t)user_handler);
    ASSERT_EQ(stageprof_stop(), 0);
    /* Tracing off: no handler either. */
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 0;
    c.snapshot_signal = SIG;
    ASSERT_EQ(stageprof_start(&c), 0);
    ASSERT_TRUE(current_handler() == (void *)(uintptr_t)user_handler);
    ASSERT_EQ(stageprof_stop(), 0);
}

STAGEPROF_TEST(signals_during_a_write_coalesce_into_one_more_snapshot)
{
    char *dir = tmpdir();
    start_with(dir, SIG);
    record_some(30);
    /* Hold the writer lock: the first request waits inside its write. */
    pthread_mutex_lock(&stageprof__g.wlock);
    ASSERT_EQ(kill(getpid(), SIG), 0);
    sleep_ms(300);
    for (int i = 0; i < 9; i++)
        ASSERT_EQ(kill(getpid(), SIG), 0);
    sleep_ms(50);
    pthread_mutex_unlock(&stageprof__g.wlock);
    ASSERT_EQ(wait_traces(2), 2);
    sleep_ms(300);
    ASSERT_EQ(stats().traces_written, 2);
    ASSERT_EQ(stageprof_stop(), 0);
    ASSERT_EQ(stats().traces_written, 3);
}

STAGEPROF_TEST(handler_keeps_errno_and_a_full_pipe_loses_no_request)
{
    char *dir = tmpdir();
    start_with(dir, SIG);
    record_some(5);
    pthread_mutex_lock(&stageprof__g.wlock);
    ASSERT_EQ(raise(SIG), 0);
    sleep_ms(300);
    /* More signals than the pipe holds bytes: the handler's write fails
     * with EAGAIN, which must not leak into the interrupted code. */
    int changed = 0, failed = 0;
    for (int i = 0; i < 70000; i++) {
        errno = EDOM;
        failed += raise(SIG) != 0;
        changed += errno != EDOM;
    }
    pthread_mutex_unlock(&stageprof__g.wlock); /* before any assertion */
    ASSERT_EQ(failed, 0);
    ASSERT_EQ(changed, 0);
    ASSERT_EQ(wait_traces(2), 2);
    sleep_ms(300);
    ASSERT_EQ(stats().traces_written, 2);
    ASSERT_EQ(stageprof_stop(), 0);
}

static int flood_on;

/*
 * Signals to the process and to @arg's thread, about 10 000 a second each
 * (faster would only measure how a sanitizer queues them).
 */
static void *flood(void *arg)
{
    pthread_t target = *(pthread_t *)arg;
    long n = 0;
    struct timespec gap = {0, 100000};
    while (__atomic_load_n(&flood_on, __ATOMIC_ACQUIRE)) {
        kill(getpid(), SIG);
        pthread_kill(target, SIG);
        n += 2;
        nanosleep(&gap, NULL);
    }
    return (void *)n;
}

STAGEPROF_TEST(signal_flood_while_snapshots_are_written)
{
    char *dir = tmpdir();
    start_with(dir, SIG);
    record_some(2000); /* snapshots take a while: signals land inside */
    __atomic_store_n(&recording_on, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&flood_on, 1, __ATOMIC_RELEASE);
    pthread_t rec, fl;
    ASSERT_EQ(pthread_create(&rec, NULL, recorder, NULL), 0);
    ASSERT_EQ(pthread_create(&fl, NULL, flood, &rec), 0);
    sleep_ms(1500);
    __atomic_store_n(&flood_on, 0, __ATOMIC_RELEASE);
    void *sent;
    ASSERT_EQ(pthread_join(fl, &sent), 0);
    __atomic_store_n(&recording_on, 0, __ATOMIC_RELEASE);
    ASSERT_EQ(pthread_join(rec, NULL), 0);
    sleep_ms(200);
    uint64_t snaps = stats().traces_written;
    ASSERT_GE(snaps, 2);
    /* Coalesced: far fewer files than signals. */
    ASSERT_LT(snaps, (uint64_t)(uintptr_t)sent / 4);
    ASSERT_EQ(stats().write_errors, 0);
    ASSERT_EQ(stageprof_stop(), 0);
    /* Requests still queued may have been served since: count again. */
    ASSERT_EQ(check_all_whole(dir), (int)stats().traces_written);
    ASSERT_EQ(files_in(dir, ".tmp"), 0);
}

STAGEPROF_TEST(signal_flood_during_stop)
{
    install_user_handler();
    for (int round = 0; round < 3; round++) {
        char *dir = tmpdir();
        start_with(dir, SIG);
        record_some(3000);
        pthread_t self = pthread_self(), fl;
        __atomic_store_n(&flood_on, 1, __ATOMIC_RELEASE);
        ASSERT_EQ(pthread_create(&fl, NULL, flood, &self), 0);
        sleep_ms(50);
        int before = __atomic_load_n(&user_handler_calls, __ATOMIC_RELAXED);
        ASSERT_EQ(stageprof_stop(), 0);
        /* The flood goes on; the user's handler gets it now. */
        for (int i = 0; i < 500 && __atomic_load_n(&user_handler_calls,
                                                   __ATOMIC_RELAXED) == before;
             i++)
            sleep_ms(2);
        __atomic_store_n(&flood_on, 0, __ATOMIC_RELEASE);
        ASSERT_EQ(pthread_join(fl, NULL), 0);
        ASSERT_GT(__atomic_load_n(&user_handler_calls, __ATOMIC_RELAXED),
                  before);
        ASSERT_TRUE(current_handler() == (void *)(uintptr_t)user_handler);
        char p[4096];
        char *fin = last_trace(p, sizeof p);
        ASSERT_CONTAINS(fin, "\"final\":true");
        ASSERT_EQ(count_of(fin, "\"name\":\"stage\""), 3000);
        free(fin);
        check_all_whole(dir);
        ASSERT_EQ(files_in(dir, ".tmp"), 0);
    }
}

/* Multi-threaded fork() with threads started in the child: ThreadSanitizer
 * refuses it (die_after_fork). */
static void skip_under_tsan(void)
{
#if defined(__SANITIZE_THREAD__)
    STAGEPROF_SKIP("ThreadSanitizer: threads started after fork()");
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
    STAGEPROF_SKIP("ThreadSanitizer: threads started after fork()");
#endif
#endif
}

/* In a child: 0 when @cond holds, else report and exit 1. */
#define CHILD_CHECK(cond)                                                      \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "child: %s:%d: %s\n", __FILE__, __LINE__, #cond);  \
            _exit(1);                                                          \
        }                                                                      \
    } while (0)

static int child_status(pid_t pid)
{
    int st;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT_TRUE(WIFEXITED(st));
    return WEXITSTATUS(st);
}

STAGEPROF_TEST(forked_child_snapshots_on_its_own)
{
    skip_under_tsan();
    install_user_handler();
    char *dir = tmpdir();
    start_with(dir, SIG);
    record_some(5);
    /*
     * Let the snapshot thread finish starting: GCC's AddressSanitizer
     * allocator is not fork-safe, and a thread still being set up holds its
     * lock, which a child allocating would then wait on for ever.
     */
    sleep_ms(50);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        record_some(3);
        CHILD_CHECK(raise(SIG) == 0);
        CHILD_CHECK(wait_traces(1) == 1);
        char p[4096], want[32];
        CHILD_CHECK(stageprof_get_last_path(p, sizeof p) == 0);
        snprintf(want, sizeof want, "_%d.json", (int)getpid());
        CHILD_CHECK(strstr(p, want) != NULL);
        char *t = read_file(p, NULL);
        CHILD_CHECK(count_of(t, "\"name\":\"stage\"") == 3);
        CHILD_CHECK(stageprof_stop() == 0);
        CHILD_CHECK(current_handler() == (void *)(uintptr_t)user_handler);
        _exit(0);
    }
    ASSERT_EQ(child_status(pid), 0);
    /* The child's signal did not reach the parent's thread through the
     * pipe they shared. */
    sleep_ms(100);
    ASSERT_EQ(stats().traces_written, 0);
    ASSERT_EQ(raise(SIG), 0);
    ASSERT_EQ(wait_traces(1), 1);
    char p[4096];
    char *t = last_trace(p, sizeof p);
    ASSERT_EQ(count_of(t, "\"name\":\"stage\""), 5);
    free(t);
    ASSERT_EQ(stageprof_stop(), 0);
    ASSERT_TRUE(current_handler() == (void *)(uintptr_t)user_handler);
}

STAGEPROF_TEST(child_that_does_not_trace_gets_the_handler_back)
{
    skip_under_tsan();
    install_user_handler();
    char *dir = tmpdir();
    stageprof__clock_set_fake(fake_clock);
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 1;
    c.dir = dir;
    c.snapshot_signal = SIG;
    c.follow_fork = 0;
    ASSERT_EQ(stageprof_start(&c), 0);
    sleep_ms(50); /* as above: the snapshot thread finishes starting */
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        CHILD_CHECK(!stageprof_is_tracing());
        CHILD_CHECK(current_handler() == (void *)(uintptr_t)user_handler);
        CHILD_CHECK(raise(SIG) == 0);
        CHILD_CHECK(user_handler_calls == 1);
        _exit(0);
    }
    ASSERT_EQ(child_status(pid), 0);
    ASSERT_EQ(stageprof_stop(), 0);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ASSERT_NOT_NULL(d);
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

STAGEPROF_TEST(start_stop_cycles_leak_no_descriptor_or_thread)
{
    char *dir = tmpdir();
    start_with(dir, SIG);
    ASSERT_EQ(stageprof_stop(), 0);
    int fds = count_entries("/proc/self/fd");
    int tasks = count_entries("/proc/self/task");
    for (int i = 0; i < 20; i++) {
        start_with(dir, SIG);
        ASSERT_GT(count_entries("/proc/self/fd"), fds); /* the pipe */
        record_some(3);
        if (i % 4 == 0)
            raise(SIG);
        ASSERT_EQ(stageprof_stop(), 0);
    }
    ASSERT_EQ(count_entries("/proc/self/fd"), fds);
    ASSERT_EQ(count_entries("/proc/self/task"), tasks);
    ASSERT_TRUE(current_handler() == (void *)(uintptr_t)SIG_DFL);
}

STAGEPROF_TEST_LIST(
    STAGEPROF_CASE(snapshot_keeps_events_and_recording_goes_on),
    STAGEPROF_CASE(snapshot_without_tracing_is_enotstarted),
    STAGEPROF_CASE(two_snapshots_in_one_second_get_distinct_names),
    STAGEPROF_CASE(failed_snapshot_keeps_the_ring_and_the_next_retries),
    STAGEPROF_CASE(snapshot_requests_at_once_each_write_a_whole_file),
    STAGEPROF_CASE(snapshot_during_stop),
    STAGEPROF_CASE(signal_writes_a_snapshot_and_stop_restores_the_handler),
    STAGEPROF_CASE(no_signal_handler_unless_asked),
    STAGEPROF_CASE(signals_during_a_write_coalesce_into_one_more_snapshot),
    STAGEPROF_CASE(handler_keeps_errno_and_a_full_pipe_loses_no_request),
    STAGEPROF_CASE(signal_flood_while_snapshots_are_written),
    STAGEPROF_CASE(signal_flood_during_stop),
    STAGEPROF_CASE(start_stop_cycles_leak_no_descriptor_or_thread),
    STAGEPROF_CASE(forked_child_snapshots_on_its_own),
    STAGEPROF_CASE(child_that_does_not_trace_gets_the_handler_back))
