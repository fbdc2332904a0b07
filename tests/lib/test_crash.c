/*
 * test_crash.c - the crash dump: the exact double formatter, the handlers
 * and alternate stacks it installs and removes, the JSON the handler
 * writes (through the stageprof__crash_write_fd() hook, byte for byte with
 * the fake clock), its limits, and a dump abandoned on damaged data.
 *
 * The real deaths (each signal, with and without the dump, with a
 * previous handler) are in tests/integration/check_crash.py.
 */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "tbuf.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static char *tmpdir(void)
{
    return temp_dir("stageprof-crash");
}

static void start_crash(const char *dir, int crash_dump, int enable)
{
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = enable;
    c.dir = dir;
    c.crash_dump = crash_dump;
    ASSERT_EQ(stageprof_start(&c), 0);
}

/* The dump for @sig, as a string (caller frees). */
static char *dump_string(int sig)
{
    char path[] = "/tmp/stageprof-crash-dump-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    unlink(path);
    ASSERT_EQ(stageprof__crash_write_fd(fd, sig), 0);
    off_t n = lseek(fd, 0, SEEK_END);
    ASSERT_GE(n, 0);
    char *buf = malloc((size_t)n + 1);
    ASSERT_NOT_NULL(buf);
    ASSERT_EQ(pread(fd, buf, (size_t)n, 0), n);
    buf[n] = '\0';
    close(fd);
    return buf;
}

static int tid(void)
{
    return (int)syscall(SYS_gettid);
}

/* Replace every "@from" in @s by "@to" (caller frees the result). */
static char *subst(const char *s, const char *from, const char *to)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    size_t k = strlen(from);
    for (const char *p; (p = strstr(s, from)) != NULL; s = p + k) {
        stageprof__sb_add(&sb, s, (size_t)(p - s));
        stageprof__sb_adds(&sb, to);
    }
    stageprof__sb_adds(&sb, s);
    return sb.buf;
}

static void dummy_action(int sig, siginfo_t *info, void *uctx)
{
    (void)sig;
    (void)info;
    (void)uctx;
}

static void dummy_handler(int sig)
{
    (void)sig;
}

/* ------------------------------------------------------------------------ */
/* Double formatting                                                        */
/* ------------------------------------------------------------------------ */

static void check_double(double v)
{
    char want[64], got[64];
    snprintf(want, sizeof want, "%.17g", v);
    size_t n = stageprof__crash_fmt_double(got, v);
    ASSERT_LT(n, 32);
    got[n] = '\0';
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    if (strcmp(want, got) != 0)
        TEST_FAIL_("bits %016llx: printf \"%s\", crash formatter \"%s\"",
                   (unsigned long long)bits, want, got);
    ASSERT_TRUE(strtod(got, NULL) == v || (v != v));
}

STAGEPROF_TEST(fmt_double_as_printf)
{
    static const double fixed[] = {
        0.0,
        1.0,
        -1.0,
        0.1,
        0.25,
        1.0 / 3.0,
        2.0 / 3.0,
        1e-5,
        1e-4,
        1.5e-4,
        9.9999999999999991e-5,
        123456789012345678.0,
        1e16,
        1e17,
        9.999999999999999e16,
        99999999999999999.0,
        1e21,
        1e22,
        1e23,
        1e300,
        1e-300,
        5e-324,
        2.2250738585072014e-308,
        2.2250738585072009e-308,
        1.7976931348623157e308,
        4503599627370496.5,
        9007199254740993.0,
        0.30000000000000004,
        100.0,
        1234.5678,
        -0.0009765625,
        3.14159,
        /* 2^60 + 2^8: the 18th digit is 5 followed by zeros (a tie) */
        1152921504606847232.0,
        1152921504606846976.0 + 2048.0,
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        check_double(fixed[i]);
        check_double(-fixed[i]);
    }
    /* Powers of two and ten over the whole range. */
    for (int e = -1074; e <= 1023; e++)
        check_double(ldexp(1.0, e));
    for (int e = -323; e <= 308; e++) {
        char text[16];
        snprintf(text, sizeof text, "1e%d", e);
        check_double(strtod(text, NULL));
    }
    /* Random bit patterns (deterministic), every exponent. */
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double v;
        memcpy(&v, &x, sizeof v);
        if (isfinite(v))
            check_double(v);
    }
}

STAGEPROF_TEST(fmt_double_specials)
{
    char out[64];
    size_t n = stageprof__crash_fmt_double(out, NAN);
    ASSERT_EQ(n, 5);
    ASSERT_TRUE(memcmp(out, "\"NaN\"", 5) == 0);
    n = stageprof__crash_fmt_double(out, INFINITY);
    ASSERT_TRUE(n == 10 && memcmp(out, "\"Infinity\"", 10) == 0);
    n = stageprof__crash_fmt_double(out, -INFINITY);
    ASSERT_TRUE(n == 11 && memcmp(out, "\"-Infinity\"", 11) == 0);
    n = stageprof__crash_fmt_double(out, -0.0);
    ASSERT_TRUE(n == 2 && memcmp(out, "-0", 2) == 0);
}

/* ------------------------------------------------------------------------ */
/* Handlers and alternate stacks                                            */
/* ------------------------------------------------------------------------ */

STAGEPROF_TEST(install_and_restore_handlers)
{
    struct sigaction sa, cur;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = dummy_action;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    ASSERT_EQ(sigaction(SIGSEGV, &sa, NULL), 0);
    signal(SIGBUS, dummy_handler);
    signal(SIGFPE, SIG_IGN);

    start_crash(tmpdir(), 1, 1);
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGABRT};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        ASSERT_EQ(sigaction(sigs[i], NULL, &cur), 0);
        ASSERT_TRUE(cur.sa_flags & SA_SIGINFO);
        ASSERT_TRUE(cur.sa_flags & SA_ONSTACK);
        ASSERT_TRUE(cur.sa_sigaction != dummy_action);
        ASSERT_TRUE(cur.sa_handler != SIG_DFL);
    }
    /* An ignored signal does not kill: left alone. */
    ASSERT_EQ(sigaction(SIGFPE, NULL, &cur), 0);
    ASSERT_TRUE(cur.sa_handler == SIG_IGN);
    /* The starting thread has an alternate stack. */
    stack_t st;
    ASSERT_EQ(sigaltstack(NULL, &st), 0);
    ASSERT_TRUE(!(st.ss_flags & SS_DISABLE));
    ASSERT_GE(st.ss_size, 64 << 10);

    ASSERT_EQ(stageprof_stop(), 0);
    ASSERT_EQ(sigaction(SIGSEGV, NULL, &cur), 0);
    ASSERT_TRUE(cur.sa_sigaction == dummy_action);
    ASSERT_TRUE(cur.sa_flags & SA_RESTART);
    ASSERT_EQ(sigaction(SIGBUS, NULL, &cur), 0);
    ASSERT_TRUE(cur.sa_handler == dummy_handler);
    ASSERT_EQ(sigaction(SIGABRT, NULL, &cur), 0);
    ASSERT_TRUE(cur.sa_handler == SIG_DFL);
}

/* A handler installed over ours while tracing stays after stop. */
STAGEPROF_TEST(uninstall_keeps_a_later_handler)
{
    struct sigaction before, cur;
    ASSERT_EQ(sigaction(SIGSEGV, NULL, &before), 0);
    start_crash(tmpdir(), 1, 1);
    signal(SIGILL, dummy_handler);
    ASSERT_EQ(stageprof_stop(), 0);
    ASSERT_EQ(sigaction(SIGILL, NULL, &cur), 0);
    ASSERT_TRUE(cur.sa_handler == dummy_handler);
    ASSERT_EQ(sigaction(SIGSEGV, NULL, &cur), 0);
    ASSERT_TRUE(cur.sa_handler == before.sa_handler);
}

static void *record_and_report(void *arg)
{
    stack_t *own = arg;
    if (own != NULL)
        ASSERT_EQ(sigaltstack(own, NULL), 0);
    STAGEPROF_INSTANT("hello", "test");
    static stack_t st;
    ASSERT_EQ(sigaltstack(NULL, &st), 0);
    return &st;
}

static stack_t thread_stack(stack_t *own)
{
    pthread_t th;
    void *ret;
    ASSERT_EQ(pthread_create(&th, NULL, record_and_report, own), 0);
    ASSERT_EQ(pthread_join(th, &ret), 0);
    return *(stack_t *)ret;
}

STAGEPROF_TEST(altstack_per_recording_thread)
{
    start_crash(tmpdir(), 1, 1);
    stack_t st = thread_stack(NULL);
    ASSERT_TRUE(!(st.ss_flags & SS_DISABLE));
    ASSERT_GE(st.ss_size, 64 << 10);
    /* A thread with an alternate stack of its own keeps it. (Mapped, not
     * static: ASan unmaps a thread's alternate stack when it exits.) */
    void *mine = mmap(NULL, 128 << 10, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_TRUE(mine != MAP_FAILED);
    stack_t own;
    memset(&own, 0, sizeof own);
    own.ss_sp = mine;
    own.ss_size = 128 << 10;
    st = thread_stack(&own);
    ASSERT_TRUE(st.ss_sp == mine);
    ASSERT_EQ(stageprof_stop(), 0);
}

STAGEPROF_TEST(off_installs_nothing)
{
    struct sigaction before, cur;
    ASSERT_EQ(sigaction(SIGSEGV, NULL, &before), 0);
    stack_t self_before, self, st0 = thread_stack(NULL);
    ASSERT_EQ(sigaltstack(NULL, &self_before), 0);
    /* crash_dump off, tracing on */
    start_crash(tmpdir(), 0, 1);
    ASSERT_EQ(sigaction(SIGSEGV, NULL, &cur), 0);
    ASSERT_TRUE(cur.sa_handler == before.sa_handler);
    /* No alternate stack beyond what threads get anyway (a sanitizer
     * gives every thread one). */
    stack_t st = thread_stack(NULL);
    ASSERT_EQ(st.ss_flags & SS_DISABLE, st0.ss_flags & SS_DISABLE);
    ASSERT_EQ(st.ss_size, st0.ss_size);
    ASSERT_EQ(sigaltstack(NULL, &self), 0);
    ASSERT_TRUE(self.ss_sp == self_before.ss_sp);
    ASSERT_EQ(stageprof_stop(), 0);
    /* crash_dump on, tracing off: nothing to dump */
    start_crash(tmpdir(), 1, 0);
    ASSERT_EQ(sigaction(SIGABRT, NULL, &cur), 0);
    ASSERT_TRUE(cur.sa_handler == SIG_DFL);
    ASSERT_EQ(stageprof_stop(), 0);
}

/* ------------------------------------------------------------------------ */
/* The JSON                                                                 */
/* ------------------------------------------------------------------------ */

STAGEPROF_TEST(dump_events_exact)
{
    stageprof__clock_set_fake(fake_clock);
    stageprof_process_set_name("unit");
    stageprof_thread_set_name("main");
    start_crash(tmpdir(), 1, 1);
    STAGEPROF_RUN_BEGIN("frame", 255); /* 1 */
    {
        STAGEPROF_SCOPE(outer, "outer", "compute"); /* 2 */
        STAGEPROF_ARG_INT(outer, "x", -1);
        STAGEPROF_ARG_DOUBLE(outer, "d", 0.1);
        STAGEPROF_ARG_STR(outer, "s", "a\"b");
        static stageprof_site_t mark = STAGEPROF_SITE_INIT("mark", "engine");
        stageprof_span_t m = stageprof_instant(&mark); /* 3 */
        stageprof_span_arg_int(&m, "k", 4);
        {
            STAGEPROF_SCOPE_DYN(inner, "in\\ner", "io"); /* 4, end 5 */
        }
        STAGEPROF_ARG_INT(outer, "late", 2);
    }                                       /* 6 */
    STAGEPROF_COUNTER_INT("depth", -2);     /* 7 */
    STAGEPROF_COUNTER_DOUBLE("load", 0.25); /* 8 */
    STAGEPROF_FLOW_BEGIN("q", 255);         /* 9 */
    STAGEPROF_FLOW_STEP("q", 255);          /* 10 */
    STAGEPROF_FLOW_END("q", 255);           /* 11 */
    STAGEPROF_RUN_END("frame", 255);        /* 12 */
    STAGEPROF_SPAN_COMPLETE("manual", "compute", fake_now + 500, 2500);
    STAGEPROF_SPAN_BEGIN(open, "open", "serve"); /* 13 */
    STAGEPROF_ARG_INT(open, "o", 1);

    char *dump = dump_string(SIGSEGV);
    char tids[32], pid[32];
    snprintf(tids, sizeof tids, "%d", tid());
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    const char *want_tpl =
        "\n\"traceEvents\":[\n"
        "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":P,\"tid\":0,"
        "\"args\":{\"name\":\"unit\"}},\n"
        "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":P,\"tid\":T,"
        "\"args\":{\"name\":\"main\"}},\n"
        "{\"ph\":\"b\",\"name\":\"frame\",\"cat\":\"run\",\"id\":\"0xff\","
        "\"ts\":1.000,\"pid\":P,\"tid\":T,\"args\":{\"run\":255}},\n"
        "{\"ph\":\"B\",\"name\":\"outer\",\"cat\":\"compute\",\"ts\":2.000,"
        "\"pid\":P,\"tid\":T,\"args\":{\"run\":255,\"x\":-1,"
        "\"d\":0.10000000000000001,\"s\":\"a\\\"b\"}},\n"
        "{\"ph\":\"i\",\"s\":\"t\",\"name\":\"mark\",\"cat\":\"engine\","
        "\"ts\":3.000,\"pid\":P,\"tid\":T,\"args\":{\"run\":255,\"k\":4}},\n"
        "{\"ph\":\"B\",\"name\":\"in\\\\ner\",\"cat\":\"io\",\"ts\":4.000,"
        "\"pid\":P,\"tid\":T,\"args\":{\"run\":255}},\n"
        "{\"ph\":\"E\",\"ts\":5.000,\"pid\":P,\"tid\":T},\n"
        "{\"ph\":\"E\",\"ts\":6.000,\"pid\":P,\"tid\":T,"
        "\"args\":{\"late\":2}},\n"
        "{\"ph\":\"C\",\"name\":\"depth\",\"cat\":\"counter\",\"ts\":7.000,"
        "\"pid\":P,\"tid\":T,\"args\":{\"value\":-2}},\n"
        "{\"ph\":\"C\",\"name\":\"load\",\"cat\":\"counter\",\"ts\":8.000,"
        "\"pid\":P,\"tid\":T,\"args\":{\"value\":0.25}},\n"
        "{\"ph\":\"s\",\"name\":\"q\",\"cat\":\"flow\",\"id\":\"0xff\","
        "\"ts\":9.000,\"pid\":P,\"tid\":T,\"args\":{\"run\":255}},\n"
        "{\"ph\":\"t\",\"name\":\"q\",\"cat\":\"flow\",\"id\":\"0xff\","
        "\"ts\":10.000,\"pid\":P,\"tid\":T,\"args\":{\"run\":255}},\n"
        "{\"ph\":\"f\",\"bp\":\"e\",\"name\":\"q\",\"cat\":\"flow\","
        "\"id\":\"0xff\",\"ts\":11.000,\"pid\":P,\"tid\":T,"
        "\"args\":{\"run\":255}},\n"
        "{\"ph\":\"e\",\"name\":\"frame\",\"cat\":\"run\",\"id\":\"0xff\","
        "\"ts\":12.000,\"pid\":P,\"tid\":T,\"args\":{\"run\":255}},\n"
        "{\"ph\":\"X\",\"name\":\"manual\",\"cat\":\"compute\","
        "\"ts\":13.500,\"dur\":2.500,\"pid\":P,\"tid\":T},\n"
        "{\"ph\":\"B\",\"name\":\"open\",\"cat\":\"serve\",\"ts\":13.000,"
        "\"pid\":P,\"tid\":T,\"args\":{\"o\":1}},\n"
        "{\"ph\":\"i\",\"s\":\"t\",\"name\":\"SIGSEGV\",\"cat\":\"crash\","
        "\"ts\":14.000,\"pid\":P,\"tid\":T,\"args\":{\"signal\":11}}\n"
        "],\n\"stageprof_summary\":{\"complete\":false,\"crash\":true,"
        "\"events_written\":17,\"open_spans\":1,\"threads\":1,"
        "\"args_dropped\":0,\"spans_cut\":0,\"events_dropped_total\":0,"
        "\"overhead\":{\"ns_per_event\":0.000,\"events\":17},"
        "\"truncated\":false}}\n";
    char *w1 = subst(want_tpl, "\"pid\":P", "\"pid\":PID");
    char *w2 = subst(w1, "PID", pid);
    char *want = subst(w2, "\"tid\":T", "\"tid\":TID");
    char *want2 = subst(want, "TID", tids);
    const char *events = strstr(dump, "\n\"traceEvents\":[");
    ASSERT_NOT_NULL(events);
    ASSERT_STREQ(events, want2);

    /* The header: version, pid, crash, time base. */
    char head[256];
    snprintf(head, sizeof head,
             "{\"stageprof\":{\"format\":1,\"version\":\"%s\",\"pid\":%s,",
             STAGEPROF_VERSION_STRING, pid);
    ASSERT_TRUE(strncmp(dump, head, strlen(head)) == 0);
    snprintf(head, sizeof head,
             "\"crash\":{\"signal\":11,\"name\":\"SIGSEGV\",\"tid\":%s,"
             "\"written_by\":\"crash handler\"}},\n\"time_base\":{"
             "\"unix_ns\":0,\"monotonic_ns\":1000000},",
             tids);
    ASSERT_CONTAINS(dump, head);
    ASSERT_CONTAINS(dump, "\"crash_dump\":1");
    free(dump);
    free(w1);
    free(w2);
    free(want);
    free(want2);
    STAGEPROF_SPAN_END(open);
    ASSERT_EQ(stageprof_stop(), 0);
}

/* A dump after a write holds only what that write did not. */
STAGEPROF_TEST(dump_after_flush)
{
    stageprof__clock_set_fake(fake_clock);
    stageprof_thread_set_name("main");
    start_crash(tmpdir(), 1, 1);
    STAGEPROF_SPAN_BEGIN(a, "a", "compute");
    {
        STAGEPROF_SCOPE(b, "b", "compute");
    }
    ASSERT_EQ(stageprof_flush(), 0);
    STAGEPROF_ARG_INT(a, "after", 1); /* its B is in the flushed file */
    {
        STAGEPROF_SCOPE(c, "c", "compute");
    }
    STAGEPROF_SPAN_END(a);
    STAGEPROF_INSTANT("d", "compute");
    char *dump = dump_string(SIGABRT);
    ASSERT_EQ(count_of(dump, "\"ph\":\"B\""), 1);
    ASSERT_EQ(count_of(dump, "\"ph\":\"E\""), 1);
    ASSERT_CONTAINS(dump, "\"name\":\"c\"");
    ASSERT_TRUE(strstr(dump, "\"name\":\"a\"") == NULL);
    ASSERT_TRUE(strstr(dump, "\"name\":\"b\"") == NULL);
    ASSERT_CONTAINS(dump, "\"name\":\"d\"");
    /* "after" belonged to a span not in this dump: counted, not written. */
    ASSERT_CONTAINS(dump, "\"args_dropped\":1,");
    ASSERT_CONTAINS(dump, "\"name\":\"SIGABRT\"");
    ASSERT_CONTAINS(dump, "\"events_written\":6,\"open_spans\":0,");
    free(dump);
    ASSERT_EQ(stageprof_stop(), 0);
}

/* Lines of @s starting with @prefix (a byte loop: the dump is large, and
 * string calls are re-checked end to end under ASan's strict checks). */
static int lines_starting(const char *s, const char *prefix)
{
    int n = 0;
    size_t k = strlen(prefix);
    for (const char *p = s; *p != '\0';) {
        size_t i = 0;
        while (i < k && p[i] == prefix[i])
            i++;
        n += i == k;
        while (*p != '\0' && *p++ != '\n')
            ;
    }
    return n;
}

/* More than the 64 KiB buffer, over many chunks and threads. */
static void *many_spans(void *arg)
{
    int n = (int)(intptr_t)arg;
    for (int i = 0; i < n; i++) {
        STAGEPROF_SCOPE(s, "many", "compute");
        STAGEPROF_ARG_INT(s, "i", i);
    }
    return NULL;
}

STAGEPROF_TEST(dump_large)
{
    start_crash(tmpdir(), 1, 1);
    pthread_t th[3];
    for (int k = 0; k < 3; k++)
        ASSERT_EQ(pthread_create(&th[k], NULL, many_spans,
                                 (void *)(intptr_t)(10000 * (k + 1))),
                  0);
    for (int k = 0; k < 3; k++)
        ASSERT_EQ(pthread_join(th[k], NULL), 0);
    char *dump = dump_string(SIGBUS);
    ASSERT_GT(strlen(dump), 1u << 20);
    ASSERT_EQ(lines_starting(dump, "{\"ph\":\"B\",\"name\":\"many\""), 60000);
    ASSERT_EQ(lines_starting(dump, "{\"ph\":\"E\""), 60000);
    char want[128];
    /* B, E, and thread_name per thread, the process name, the crash */
    snprintf(want, sizeof want, "\"events_written\":%d,\"open_spans\":0,",
             120000 + 3 + 1 + 1);
    ASSERT_CONTAINS(dump, want);
    ASSERT_CONTAINS(dump, "\"threads\":3,");
    ASSERT_TRUE(ends_with(dump, ",\"truncated\":false}}\n"));
    free(dump);
    ASSERT_EQ(stageprof_stop(), 0);
}

/* Under RLIMIT_FSIZE the dump stops early and still ends properly. */
STAGEPROF_TEST(dump_within_fsize)
{
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl;
    ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &rl), 0);
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = 300 << 10;
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &rl), 0);
    start_crash(tmpdir(), 1, 1);
    many_spans((void *)(intptr_t)20000);
    char *dump = dump_string(SIGSEGV);
    size_t n = strlen(dump);
    ASSERT_LE(n, 300u << 10);
    ASSERT_GT(n, 100u << 10);
    ASSERT_TRUE(ends_with(dump, ",\"truncated\":true}}\n"));
    ASSERT_CONTAINS(dump, "\n],\n\"stageprof_summary\":{");
    int b = lines_starting(dump, "{\"ph\":\"B\"");
    int e = lines_starting(dump, "{\"ph\":\"E\"");
    ASSERT_GT(b, 100);
    ASSERT_LE(e, b);
    ASSERT_LE(b - e, 1);
    free(dump);
    rl.rlim_cur = old;
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &rl), 0);
    ASSERT_EQ(stageprof_stop(), 0);
}

/*
 * Damaged data: the dump faults while reading it. The handler abandons the
 * dump (no file, no .tmp) and the process still dies of its own signal.
 */
STAGEPROF_TEST(fault_inside_dump_abandons_it)
{
#if defined(__SANITIZE_THREAD__)
    /* TSan runs every handler with all signals blocked: the fault inside
     * it kills at once (SIGSEGV), before any handler can run. */
    STAGEPROF_SKIP("ThreadSanitizer blocks signals inside handlers");
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
    STAGEPROF_SKIP("ThreadSanitizer blocks signals inside handlers");
#endif
#endif
    char *dir = tmpdir();
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        start_crash(dir, 1, 1);
        for (int i = 0; i < 10; i++) {
            STAGEPROF_SCOPE(s, "s", "compute");
        }
        struct tbuf *tb = stageprof__tls;
        if (tb == NULL || tb->head == NULL)
            _exit(3);
        tb->head->next = (struct chunk *)(uintptr_t)4096; /* unmapped */
        raise(SIGABRT);
        _exit(4);
    }
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status))
        TEST_FAIL_("child exited with %d", WEXITSTATUS(status));
    ASSERT_EQ(WTERMSIG(status), SIGABRT);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s)\"", dir);
    ASSERT_EQ(system(cmd), 0);
}

/* Wait for the child @pid and check that it died of SIGABRT. */
static void wait_abort(pid_t pid)
{
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status));
    ASSERT_EQ(WTERMSIG(status), SIGABRT);
}

/* The same child without the damage writes its dump, then dies. */
STAGEPROF_TEST(handler_writes_and_reraises)
{
    char *dir = tmpdir();
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        start_crash(dir, 1, 1);
        for (int i = 0; i < 10; i++) {
            STAGEPROF_SCOPE(s, "s", "compute");
        }
        raise(SIGABRT);
        _exit(4);
    }
    wait_abort(pid);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "test \"$(ls %s)\" != \"\" && grep -q "
             "'\"written_by\":\"crash handler\"' %s/*_%d_crash.json && "
             "! ls %s/*.tmp 2>/dev/null",
             dir, dir, (int)pid, dir);
    ASSERT_EQ(system(cmd), 0);
}

/*
 * A forked child that follows the session dumps under its own pid, with
 * its own events only; a child with STAGEPROF_FOLLOW_FORK=0 has no session
 * and writes nothing, though it inherited the handlers.
 */
static pid_t fork_and_crash(const char *dir, int follow)
{
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 1;
    c.dir = dir;
    c.crash_dump = 1;
    c.follow_fork = follow;
    ASSERT_EQ(stageprof_start(&c), 0);
    {
        STAGEPROF_SCOPE(p, "parent_span", "compute");
    }
    /* Let the clock's thread finish starting: GCC's AddressSanitizer
     * allocator is not fork-safe while a thread is being set up. */
    usleep(50000);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        {
            STAGEPROF_SCOPE(k, "child_span", "compute");
        }
        /* SIGABRT: under ASan the previous SIGSEGV handler is ASan's,
         * which reports and exits instead of dying of the signal. */
        raise(SIGABRT);
        _exit(4);
    }
    wait_abort(pid);
    return pid;
}

STAGEPROF_TEST(fork_child_dumps_its_own)
{
    char *dir = tmpdir();
    pid_t pid = fork_and_crash(dir, 1);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "f=$(ls %s/*_%d_crash.json) && grep -q '\"child_span\"' $f && "
             "! grep -q parent_span $f && grep -q '\"pid\":%d,' $f",
             dir, (int)pid, (int)pid);
    ASSERT_EQ(system(cmd), 0);
    ASSERT_EQ(stageprof_stop(), 0);
}

STAGEPROF_TEST(fork_child_without_session_writes_nothing)
{
    char *dir = tmpdir();
    pid_t pid = fork_and_crash(dir, 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "! ls %s/*_%d_crash.json* 2>/dev/null", dir,
             (int)pid);
    ASSERT_EQ(system(cmd), 0);
    ASSERT_EQ(stageprof_stop(), 0);
}

STAGEPROF_TEST_LIST(STAGEPROF_CASE(fmt_double_as_printf),
                    STAGEPROF_CASE(fmt_double_specials),
                    STAGEPROF_CASE(install_and_restore_handlers),
                    STAGEPROF_CASE(uninstall_keeps_a_later_handler),
                    STAGEPROF_CASE(altstack_per_recording_thread),
                    STAGEPROF_CASE(off_installs_nothing),
                    STAGEPROF_CASE(dump_events_exact),
                    STAGEPROF_CASE(dump_after_flush),
                    STAGEPROF_CASE(dump_large),
                    STAGEPROF_CASE(dump_within_fsize),
                    STAGEPROF_CASE(fault_inside_dump_abandons_it),
                    STAGEPROF_CASE(handler_writes_and_reraises),
                    STAGEPROF_CASE(fork_child_dumps_its_own),
                    STAGEPROF_CASE(fork_child_without_session_writes_nothing))
