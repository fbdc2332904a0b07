/*
 * test_sampler.c - the resource sampler: its /proc parsers on fixtures
 * (real layouts, cut reads, garbage, huge numbers, hostile thread names),
 * real samples of this process, the once-a-second figures read once and
 * carried over, the thread's start, stop and wake-up, its counters in a
 * trace, and the Prometheus text it renders (checked by promtool when
 * installed).
 */
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>

#include "helpers.h"
#include "sampler.h"

/* ------------------------------------------------------------------------ */
/* Fixtures and helpers                                                     */
/* ------------------------------------------------------------------------ */

/* A stat line as Linux 6.x writes it (fields past rss included). */
static const char STAT_REAL[] =
    "17389 (cat) R 15535 15535 26192 0 -1 4194304 98 0 7 0 25 13 0 0 20 0 "
    "3 0 1804489 3133440 376 18446744073709551615 94757508104192 "
    "94757508124073 140734171872976 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 "
    "94757508140080 94757508141696 94757864710144 140734171875970 "
    "140734171875990 140734171875990 140734171877355 0\n";

static const char STATUS_REAL[] = "Name:\tmy (weird) prog\n"
                                  "Umask:\t0022\n"
                                  "State:\tS (sleeping)\n"
                                  "Tgid:\t1234\n"
                                  "VmPeak:\t   12000 kB\n"
                                  "VmRSS:\t    2088 kB\n"
                                  "RssAnon:\t     128 kB\n"
                                  "Threads:\t4\n"
                                  "SigQ:\t0/63374\n"
                                  "voluntary_ctxt_switches:\t150\n"
                                  "nonvoluntary_ctxt_switches:\t7\n";

static const char IO_REAL[] = "rchar: 6976\n"
                              "wchar: 12\n"
                              "syscr: 10\n"
                              "syscw: 1\n"
                              "read_bytes: 4096\n"
                              "write_bytes: 8192\n"
                              "cancelled_write_bytes: 0\n";

static const char PROC_STAT_REAL[] =
    "cpu  1573569 8132 470364 1493582 29409 0 6346 2049 0 0\n"
    "cpu0 393392 2033 117591 373395 7352 0 1586 512 0 0\n"
    "intr 123456 0 9 0 0 0 0 0 0 0 0 0\n"
    "ctxt 987654321\n"
    "btime 1700000000\n"
    "processes 12345\n";

static const char STATM_REAL[] = "2617 344 300 1 0 79 0\n";

static const char PSI_MEM[] =
    "some avg10=1.25 avg60=0.50 avg300=0.10 total=604858\n"
    "full avg10=0.75 avg60=0.00 avg300=0.00 total=487769\n";

/* Parse @s as a stat line. */
static int pstat(const char *s, struct sampler_stat *st)
{
    return stageprof__sampler_parse_stat(s, strlen(s), st);
}

/* A conf with only the sampler rate set. */
static struct conf conf_hz(long long hz)
{
    struct conf c;
    memset(&c, 0, sizeof c);
    c.sample_hz = hz;
    return c;
}

static char *render(void)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    stageprof__sampler_render(&sb);
    ASSERT_TRUE(!sb.oom);
    return sb.buf != NULL ? sb.buf : strdup("");
}

/* The value of the sample line starting with @prefix ("name " or
 * "name{...} "), or -1 when absent. */
static double metric(const char *text, const char *prefix)
{
    size_t k = strlen(prefix);
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, prefix, k) == 0)
            return strtod(p + k, NULL);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

/* ThreadSanitizer refuses threads started in the child of a multi-threaded
 * fork() (die_after_fork). */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Spin on this thread for @ms milliseconds of wall time. */
static void burn(int ms)
{
    volatile uint64_t x = 0;
    uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;
    while (now_ns() < end)
        for (int i = 0; i < 10000; i++)
            x += (uint64_t)i;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* ------------------------------------------------------------------------ */
/* /proc/<pid>/stat                                                         */
/* ------------------------------------------------------------------------ */

STAGEPROF_TEST(parse_stat_real_line)
{
    struct sampler_stat st;
    ASSERT_EQ(pstat(STAT_REAL, &st), 0);
    ASSERT_STREQ(st.comm, "cat");
    ASSERT_UEQ(st.minflt, 98);
    ASSERT_UEQ(st.majflt, 7);
    ASSERT_UEQ(st.utime, 25);
    ASSERT_UEQ(st.stime, 13);
    ASSERT_UEQ(st.num_threads, 3);
    ASSERT_UEQ(st.starttime, 1804489);
    ASSERT_UEQ(st.vsize, 3133440);
    ASSERT_UEQ(st.rss, 376);
}

STAGEPROF_TEST(parse_stat_name_with_spaces_and_parentheses)
{
    struct sampler_stat st;
    ASSERT_EQ(pstat("1234 (my (weird) prog) S 1 1 1 0 -1 0 5 0 6 0 7 8 0 0 "
                    "20 0 2 0 99 4096 10 18446744073709551615\n",
                    &st),
              0);
    ASSERT_STREQ(st.comm, "my (weird) prog");
    ASSERT_UEQ(st.minflt, 5);
    ASSERT_UEQ(st.majflt, 6);
    ASSERT_UEQ(st.utime, 7);
    ASSERT_UEQ(st.stime, 8);
    ASSERT_UEQ(st.rss, 10);
    /* A name that fakes the fields after it: the last ')' wins. */
    ASSERT_EQ(pstat("1 (x) S 1 1 1 0 -1 0 999 0 999 0 999 999 0 0 20 0 999 0 "
                    "999 999 999) R 1 1 1 0 -1 0 1 0 2 0 3 4 -5 -6 20 -20 9 "
                    "0 11 12 13 0\n",
                    &st),
              0);
    ASSERT_UEQ(st.minflt, 1);
    ASSERT_UEQ(st.utime, 3);
    ASSERT_UEQ(st.num_threads, 9);
    ASSERT_UEQ(st.rss, 13);
    /* Empty name, and a name longer than the field keeps. */
    ASSERT_EQ(
        pstat("1 () S 1 1 1 0 -1 0 1 0 2 0 3 4 0 0 20 0 1 0 1 1 1\n", &st), 0);
    ASSERT_STREQ(st.comm, "");
    char line[512];
    snprintf(line, sizeof line,
             "1 (%0100d) S 1 1 1 0 -1 0 1 0 2 0 3 4 0 0 20 0 1 0 1 1 1\n", 0);
    ASSERT_EQ(pstat(line, &st), 0);
    ASSERT_EQ(strlen(st.comm), SAMPLER_COMM_MAX - 1);
}

STAGEPROF_TEST(parse_stat_cut_reads_never_give_short_numbers)
{
    /* Every prefix of the line either fails or gives the full values. */
    size_t n = strlen(STAT_REAL);
    struct sampler_stat full, st;
    ASSERT_EQ(pstat(STAT_REAL, &full), 0);
    int ok = 0;
    for (size_t k = 0; k < n; k++) {
        int rc = stageprof__sampler_parse_stat(STAT_REAL, k, &st);
        if (rc == 0) {
            ok++;
            ASSERT_TRUE(memcmp(&st, &full, sizeof st) == 0);
        } else {
            ASSERT_EQ(rc, STAGEPROF_EINVAL);
        }
    }
    ASSERT_GT(ok, 0);
    /* Cut right inside rss: "... 3133440 37" must not read as 37. */
    const char *cut = "1 (a) S 1 1 1 0 -1 0 1 0 2 0 3 4 0 0 20 0 1 0 1 3 37";
    ASSERT_EQ(pstat(cut, &st), STAGEPROF_EINVAL);
}

STAGEPROF_TEST(parse_stat_garbage)
{
    struct sampler_stat st;
    ASSERT_EQ(pstat("", &st), STAGEPROF_EINVAL);
    ASSERT_EQ(pstat("hello world\n", &st), STAGEPROF_EINVAL);
    ASSERT_EQ(pstat("1 (unclosed S 1 2 3\n", &st), STAGEPROF_EINVAL);
    ASSERT_EQ(pstat("1 )x( S 1 2 3\n", &st), STAGEPROF_EINVAL);
    ASSERT_EQ(stageprof__sampler_parse_stat(NULL, 0, &st), STAGEPROF_EINVAL);
    /* Letters and signs where numbers belong. */
    ASSERT_EQ(
        pstat("1 (a) S 1 1 1 0 -1 0 x 0 2 0 3 4 0 0 20 0 1 0 1 1 1\n", &st),
        STAGEPROF_EINVAL);
    ASSERT_EQ(
        pstat("1 (a) S 1 1 1 0 -1 0 1 0 2 0 -3 4 0 0 20 0 1 0 1 1 1\n", &st),
        STAGEPROF_EINVAL);
    ASSERT_EQ(
        pstat("1 (a) S 1 1 1 0 -1 0 1 0 2 0 3x 4 0 0 20 0 1 0 1 1 1\n", &st),
        STAGEPROF_EINVAL);
    /* Binary noise, with NULs inside the length given. */
    char noise[256];
    for (int i = 0; i < 256; i++)
        noise[i] = (char)(i * 37 + 11);
    ASSERT_EQ(stageprof__sampler_parse_stat(noise, sizeof noise, &st),
              STAGEPROF_EINVAL);
}

STAGEPROF_TEST(parse_stat_huge_numbers)
{
    struct sampler_stat st;
    ASSERT_EQ(pstat("1 (a) S 1 1 1 0 -1 0 18446744073709551615 0 2 0 3 4 0 0 "
                    "20 0 1 0 1 18446744073709551615 1\n",
                    &st),
              0);
    ASSERT_UEQ(st.minflt, UINT64_MAX);
    ASSERT_UEQ(st.vsize, UINT64_MAX);
    /* One past 2^64 - 1, and far past: refused, not wrapped. */
    ASSERT_EQ(pstat("1 (a) S 1 1 1 0 -1 0 18446744073709551616 0 2 0 3 4 0 0 "
                    "20 0 1 0 1 1 1\n",
                    &st),
              STAGEPROF_EINVAL);
    ASSERT_EQ(pstat("1 (a) S 1 1 1 0 -1 0 1 0 2 0 "
                    "99999999999999999999999999999999 4 0 0 20 0 1 0 1 1 1\n",
                    &st),
              STAGEPROF_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* status, io, /proc/stat, pressure                                         */
/* ------------------------------------------------------------------------ */

STAGEPROF_TEST(parse_status_fields)
{
    struct sampler_status s;
    unsigned all = SAMPLER_STATUS_VMRSS | SAMPLER_STATUS_VOLUNTARY |
                   SAMPLER_STATUS_INVOLUNTARY | SAMPLER_STATUS_THREADS;
    ASSERT_EQ(
        stageprof__sampler_parse_status(STATUS_REAL, strlen(STATUS_REAL), &s),
        all);
    ASSERT_UEQ(s.vm_rss_bytes, 2088 * 1024);
    ASSERT_UEQ(s.voluntary, 150);
    ASSERT_UEQ(s.involuntary, 7);
    ASSERT_UEQ(s.threads, 4);
    /* The last line cut: its number is not taken. */
    size_t n = strlen(STATUS_REAL) - 2;
    ASSERT_EQ(stageprof__sampler_parse_status(STATUS_REAL, n, &s),
              all & ~(unsigned)SAMPLER_STATUS_INVOLUNTARY);
    /* A kernel thread has no VmRSS; garbage and overflow are left out. */
    const char *odd = "Name:\tVmRSS: 5 kB\n"
                      "Threads:\tmany\n"
                      "VmRSS:\t18014398509481984 kB\n"
                      "voluntary_ctxt_switches:\t-1\n"
                      "nonvoluntary_ctxt_switches:\t3 4\n";
    ASSERT_EQ(stageprof__sampler_parse_status(odd, strlen(odd), &s), 0);
    ASSERT_EQ(stageprof__sampler_parse_status("", 0, &s), 0);
    ASSERT_EQ(stageprof__sampler_parse_status(NULL, 0, &s), 0);
}

STAGEPROF_TEST(parse_statm_fields)
{
    struct sampler_statm m;
    ASSERT_EQ(
        stageprof__sampler_parse_statm(STATM_REAL, strlen(STATM_REAL), &m), 0);
    ASSERT_UEQ(m.size, 2617);
    ASSERT_UEQ(m.resident, 344);
    /* The fields after resident are not needed. */
    ASSERT_EQ(stageprof__sampler_parse_statm("5 6\n", 4, &m), 0);
    ASSERT_UEQ(m.resident, 6);
    /* Every cut inside the first two numbers fails; later cuts give the
     * full values. */
    for (size_t k = 0; k < strlen(STATM_REAL); k++) {
        int rc = stageprof__sampler_parse_statm(STATM_REAL, k, &m);
        if (k < 9) {
            ASSERT_EQ(rc, STAGEPROF_EINVAL);
        } else {
            ASSERT_EQ(rc, 0);
            ASSERT_UEQ(m.resident, 344);
        }
    }
    /* Garbage, signs, one field only, overflow. */
    ASSERT_EQ(stageprof__sampler_parse_statm("x 1\n", 4, &m), STAGEPROF_EINVAL);
    ASSERT_EQ(stageprof__sampler_parse_statm("1 -2\n", 5, &m),
              STAGEPROF_EINVAL);
    ASSERT_EQ(stageprof__sampler_parse_statm("1\n", 2, &m), STAGEPROF_EINVAL);
    ASSERT_EQ(stageprof__sampler_parse_statm("", 0, &m), STAGEPROF_EINVAL);
    ASSERT_EQ(stageprof__sampler_parse_statm(NULL, 0, &m), STAGEPROF_EINVAL);
    const char *big = "1 18446744073709551616 0\n";
    ASSERT_EQ(stageprof__sampler_parse_statm(big, strlen(big), &m),
              STAGEPROF_EINVAL);
    ASSERT_UEQ(m.resident, 0);
    const char *max = "1 18446744073709551615 0\n";
    ASSERT_EQ(stageprof__sampler_parse_statm(max, strlen(max), &m), 0);
    ASSERT_UEQ(m.resident, UINT64_MAX);
}

STAGEPROF_TEST(parse_io_fields)
{
    struct sampler_io io;
    ASSERT_EQ(stageprof__sampler_parse_io(IO_REAL, strlen(IO_REAL), &io),
              SAMPLER_IO_RCHAR | SAMPLER_IO_WCHAR | SAMPLER_IO_READ_BYTES |
                  SAMPLER_IO_WRITE_BYTES);
    ASSERT_UEQ(io.rchar, 6976);
    ASSERT_UEQ(io.wchar, 12);
    ASSERT_UEQ(io.read_bytes, 4096);
    ASSERT_UEQ(io.write_bytes, 8192);
    /* cancelled_write_bytes is not write_bytes. */
    const char *c = "cancelled_write_bytes: 5\nread_bytes: x\n";
    ASSERT_EQ(stageprof__sampler_parse_io(c, strlen(c), &io), 0);
    ASSERT_UEQ(io.write_bytes, 0);
    const char *big = "rchar: 18446744073709551615\nwchar: "
                      "18446744073709551616\n";
    ASSERT_EQ(stageprof__sampler_parse_io(big, strlen(big), &io),
              SAMPLER_IO_RCHAR);
    ASSERT_UEQ(io.rchar, UINT64_MAX);
}

STAGEPROF_TEST(parse_proc_stat_cpu_and_btime)
{
    struct sampler_cpu c;
    size_t n = strlen(PROC_STAT_REAL);
    ASSERT_EQ(stageprof__sampler_parse_cpu(PROC_STAT_REAL, n, &c), 0);
    ASSERT_UEQ(c.user, 1573569);
    ASSERT_UEQ(c.nice, 8132);
    ASSERT_UEQ(c.system, 470364);
    ASSERT_UEQ(c.idle, 1493582);
    ASSERT_UEQ(c.iowait, 29409);
    ASSERT_UEQ(c.irq, 0);
    ASSERT_UEQ(c.softirq, 6346);
    ASSERT_UEQ(c.steal, 2049);
    uint64_t bt = 0;
    ASSERT_EQ(stageprof__sampler_parse_btime(PROC_STAT_REAL, n, &bt), 0);
    ASSERT_UEQ(bt, 1700000000);
    /* An old kernel's four fields. */
    ASSERT_EQ(stageprof__sampler_parse_cpu("cpu 1 2 3 4\n", 12, &c), 0);
    ASSERT_UEQ(c.idle, 4);
    ASSERT_UEQ(c.steal, 0);
    /* Too few, not the aggregate line, cut, garbage. */
    ASSERT_NE(stageprof__sampler_parse_cpu("cpu 1 2 3\n", 10, &c), 0);
    ASSERT_NE(stageprof__sampler_parse_cpu("cpu0 1 2 3 4\n", 13, &c), 0);
    ASSERT_NE(stageprof__sampler_parse_cpu("cpu  1573569 8132 47", 20, &c), 0);
    ASSERT_NE(stageprof__sampler_parse_cpu("cpu 1 2 x 4\n", 12, &c), 0);
    ASSERT_NE(stageprof__sampler_parse_cpu("", 0, &c), 0);
    ASSERT_NE(stageprof__sampler_parse_btime("btime \n", 7, &bt), 0);
    ASSERT_NE(stageprof__sampler_parse_btime("btime 17000", 11, &bt), 0);
    ASSERT_NE(stageprof__sampler_parse_btime("xbtime 5\n", 9, &bt), 0);
}

STAGEPROF_TEST(parse_pressure_files)
{
    struct sampler_psi p;
    ASSERT_EQ(stageprof__sampler_parse_pressure(PSI_MEM, strlen(PSI_MEM), &p),
              SAMPLER_PSI_SOME | SAMPLER_PSI_FULL);
    ASSERT_DBL_NEAR(p.some_avg10, 1.25, 1e-12);
    ASSERT_DBL_NEAR(p.full_avg10, 0.75, 1e-12);
    ASSERT_UEQ(p.some_total, 604858);
    ASSERT_UEQ(p.full_total, 487769);
    /* The cpu file of kernels before 5.13: "some" only. */
    const char *cpu = "some avg10=92.76 avg60=51.31 avg300=16.40 "
                      "total=2946187039\n";
    ASSERT_EQ(stageprof__sampler_parse_pressure(cpu, strlen(cpu), &p),
              SAMPLER_PSI_SOME);
    ASSERT_DBL_NEAR(p.some_avg10, 92.76, 1e-9);
    /* Cut inside the second line: the first still counts. */
    ASSERT_EQ(
        stageprof__sampler_parse_pressure(PSI_MEM, strlen(PSI_MEM) - 5, &p),
        SAMPLER_PSI_SOME);
    /* Garbage: no '=' value, exponent, missing total, negative. */
    const char *bad = "some avg10=1e5 avg60=0 avg300=0 total=1\n"
                      "full avg10=1.0 avg60=0.0\n"
                      "some avg10=-1.0 total=3\n"
                      "none avg10=1.0 total=3\n";
    ASSERT_EQ(stageprof__sampler_parse_pressure(bad, strlen(bad), &p), 0);
    ASSERT_EQ(stageprof__sampler_parse_pressure("", 0, &p), 0);
}

STAGEPROF_TEST(clean_name_makes_label_safe_text)
{
    char out[SAMPLER_COMM_MAX];
    stageprof__sampler_clean_name("worker-1", out, sizeof out);
    ASSERT_STREQ(out, "worker-1");
    stageprof__sampler_clean_name("a\nb\tc\x7f", out, sizeof out);
    ASSERT_STREQ(out, "a?b?c?");
    /* Valid UTF-8 is kept; a sequence cut by the 15-byte comm is not. */
    stageprof__sampler_clean_name("\xc3\xa9t\xc3", out, sizeof out);
    ASSERT_STREQ(out, "\xc3\xa9t?");
    stageprof__sampler_clean_name("\xed\xa0\x80\xc0\xaf", out, sizeof out);
    ASSERT_STREQ(out, "?????");
    /* Never past the room given, never half a sequence. */
    char small[4];
    stageprof__sampler_clean_name("ab\xe2\x82\xac", small, sizeof small);
    ASSERT_STREQ(small, "ab");
}

/* ------------------------------------------------------------------------ */
/* Real samples and rendering                                               */
/* ------------------------------------------------------------------------ */

STAGEPROF_TEST(real_sample_is_sane)
{
    burn(30);
    ASSERT_EQ(stageprof__sampler_sample_now(1), 0);
    ASSERT_EQ(stageprof__sampler_sample_now(1), 0);
    ASSERT_UEQ(stageprof__sampler_samples(), 2);
    char *text = render();
    ASSERT_GT(metric(text, "process_resident_memory_bytes "), 0);
    ASSERT_GT(metric(text, "process_virtual_memory_bytes "), 0);
    ASSERT_GE(metric(text, "process_threads "), 1);
    ASSERT_GE(metric(text, "process_cpu_seconds_total "), 0);
    ASSERT_GE(metric(text, "process_open_fds "), 3);
    ASSERT_GT(metric(text, "process_max_fds "), 0);
    /* Started within the last day, not in the future. */
    double start = metric(text, "process_start_time_seconds ");
    double now = (double)time(NULL);
    ASSERT_TRUE(start > now - 86400 && start <= now + 2);
    ASSERT_EQ(metric(text, "stageprof_sampler_samples_total "), 2);
    ASSERT_GE(metric(text, "stageprof_process_cpu_cores "), 0);
    ASSERT_GE(
        metric(text, "stageprof_process_page_faults_total{kind=\"minor\"} "),
        1);
    double busy = metric(text, "stageprof_system_cpu_busy_ratio ");
    ASSERT_TRUE(busy == -1 || (busy >= 0 && busy <= 1));
    /* The main thread's CPU shows under its name (the test's comm). */
    ASSERT_CONTAINS(text, "stageprof_thread_cpu_seconds_total{thread=\"");
    ASSERT_EQ(count_of(text, "NaN"), 0);
    ASSERT_EQ(count_of(text, "Inf"), 0);
    free(text);
    stageprof__sampler_stop();
}

STAGEPROF_TEST(render_without_sampler_has_process_metrics_only)
{
    char *text = render();
    ASSERT_CONTAINS(text, "# TYPE process_cpu_seconds_total counter\n");
    ASSERT_CONTAINS(text, "# TYPE process_resident_memory_bytes gauge\n");
    ASSERT_CONTAINS(text, "# TYPE process_start_time_seconds gauge\n");
    ASSERT_EQ(count_of(text, "stageprof_"), 0);
    free(text);
    /* Rate 0: no thread, nothing sampled. */
    struct conf c = conf_hz(0);
    ASSERT_EQ(stageprof__sampler_start(&c), 0);
    sleep_ms(20);
    ASSERT_UEQ(stageprof__sampler_samples(), 0);
    stageprof__sampler_stop();
}

STAGEPROF_TEST(thread_samples_while_cpu_burns)
{
    struct conf c = conf_hz(100);
    ASSERT_EQ(stageprof__sampler_start(&c), 0);
    burn(300);
    stageprof__sampler_stop();
    ASSERT_GE(stageprof__sampler_samples(), 10);
    char *text = render();
    ASSERT_GE(metric(text, "stageprof_sampler_samples_total "), 10);
    ASSERT_TRUE(metric(text, "process_cpu_seconds_total ") > 0);
    ASSERT_GE(metric(text, "stageprof_process_cpu_cores "), 0);
    free(text);
}

STAGEPROF_TEST(start_twice_then_stop_start_stop)
{
    struct conf c = conf_hz(200);
    ASSERT_EQ(stageprof__sampler_start(&c), 0);
    ASSERT_EQ(stageprof__sampler_start(&c), STAGEPROF_EALREADY);
    ASSERT_EQ(stageprof__sampler_sample_now(1), STAGEPROF_EBUSY);
    sleep_ms(30);
    stageprof__sampler_stop();
    stageprof__sampler_stop(); /* no-op */
    uint64_t first = stageprof__sampler_samples();
    ASSERT_GE(first, 1);
    sleep_ms(20);
    ASSERT_UEQ(stageprof__sampler_samples(), first); /* really stopped */
    ASSERT_EQ(stageprof__sampler_start(&c), 0);
    sleep_ms(30);
    stageprof__sampler_stop();
    ASSERT_GT(stageprof__sampler_samples(), first);
}

STAGEPROF_TEST(stop_wakes_a_slow_sampler_at_once)
{
    struct conf c = conf_hz(1);
    ASSERT_EQ(stageprof__sampler_start(&c), 0);
    sleep_ms(50); /* first sample taken, now waiting for a second */
    uint64_t t0 = now_ns();
    stageprof__sampler_stop();
    uint64_t dt = now_ns() - t0;
    /* A bound that catches a missing wake-up (1 s), not a speed claim. */
    ASSERT_LT(dt, 900000000ull);
    ASSERT_UEQ(stageprof__sampler_samples(), 1);
}

STAGEPROF_TEST(counters_appear_in_the_trace)
{
    start_fake(NULL, 0);
    /* The session may have started a sampler at its own rate: ours. */
    stageprof__sampler_stop();
    struct conf c = conf_hz(100);
    ASSERT_EQ(stageprof__sampler_start(&c), 0);
    burn(100);
    stageprof__sampler_stop();
    char *trace = write_to_string(NULL);
    ASSERT_CONTAINS(trace, "{\"ph\":\"C\",\"name\":\"process.cpu\"");
    ASSERT_CONTAINS(trace, "{\"ph\":\"C\",\"name\":\"process.rss_bytes\"");
    ASSERT_CONTAINS(trace, "\"name\":\"process.major_faults_per_s\"");
    ASSERT_CONTAINS(trace,
                    "\"name\":\"process.ctx_switches_involuntary_per_s\"");
    ASSERT_CONTAINS(trace, "\"name\":\"system.cpu_busy\"");
    ASSERT_CONTAINS(trace, "stageprof sampler");
    free(trace);
}

STAGEPROF_TEST(nothing_recorded_when_not_tracing)
{
    start_fake(NULL, 0);
    ASSERT_EQ(stageprof_stop(), 0);
    ASSERT_EQ(stageprof__sampler_sample_now(1), 0);
    ASSERT_EQ(stageprof__sampler_sample_now(1), 0);
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "process.cpu"), 0);
    free(trace);
    stageprof__sampler_stop();
}

/* The value of the first counter event named @name in @trace, or -1. */
static double counter_value(const char *trace, const char *name)
{
    char key[128];
    snprintf(key, sizeof key, "{\"ph\":\"C\",\"name\":\"%s\"", name);
    const char *p = strstr(trace, key);
    if (p == NULL || (p = strstr(p, "\"value\":")) == NULL)
        return -1;
    return strtod(p + 8, NULL);
}

static void *idle_until(void *arg)
{
    pthread_barrier_wait(arg);
    return NULL;
}

STAGEPROF_TEST(slow_figures_read_once_then_carried_over)
{
    enum { EXTRA = 3 };
    pthread_barrier_t hold;
    pthread_t th[EXTRA];
    ASSERT_EQ(pthread_barrier_init(&hold, NULL, EXTRA + 1), 0);
    for (int i = 0; i < EXTRA; i++)
        ASSERT_EQ(pthread_create(&th[i], NULL, idle_until, &hold), 0);
    start_fake(NULL, 0);
    /* One sample with the slow group, two without. */
    ASSERT_EQ(stageprof__sampler_sample_now(1), 0);
    ASSERT_EQ(stageprof__sampler_sample_now(0), 0);
    ASSERT_EQ(stageprof__sampler_sample_now(0), 0);
    pthread_barrier_wait(&hold);
    for (int i = 0; i < EXTRA; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&hold);
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"name\":\"process.rss_bytes\""), 3);
    ASSERT_EQ(count_of(trace, "\"name\":\"process.threads\""), 1);
    /* The count from the walk: this thread and the idle ones at least. */
    ASSERT_GE(counter_value(trace, "process.threads"), EXTRA + 1);
    ASSERT_GT(counter_value(trace, "process.rss_bytes"), 0);
    /* The byte rates are every sample's (from getrusage), from the
     * second on, although the io file is read once. */
    if (access("/proc/self/io", R_OK) == 0)
        ASSERT_EQ(count_of(trace, "\"name\":\"process.read_bytes_per_s\""), 2);
    int psi = access("/proc/pressure/memory", R_OK) == 0;
    if (psi)
        ASSERT_EQ(count_of(trace, "\"name\":\"pressure.memory_some_avg10\""),
                  1);
    free(trace);
    /* /metrics keeps showing them between reads. */
    char *text = render();
    if (psi)
        ASSERT_GE(metric(text, "stageprof_pressure_avg10_ratio{"
                               "resource=\"memory\",kind=\"some\"} "),
                  0);
    ASSERT_CONTAINS(text, "stageprof_thread_cpu_seconds_total{");
    free(text);
    stageprof__sampler_stop();
}

static void *switch_often(void *arg)
{
    (void)arg;
    for (int i = 0; i < 50; i++)
        sleep_ms(1);
    return NULL;
}

STAGEPROF_TEST(context_switches_count_every_thread)
{
    /* The main thread only waits in join meanwhile: the other thread's
     * sleeps must show in the process's count. */
    ASSERT_EQ(stageprof__sampler_sample_now(0), 0);
    char *text = render();
    double a = metric(
        text, "stageprof_process_context_switches_total{kind=\"voluntary\"} ");
    free(text);
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, switch_often, NULL), 0);
    pthread_join(th, NULL);
    ASSERT_EQ(stageprof__sampler_sample_now(0), 0);
    text = render();
    double b = metric(
        text, "stageprof_process_context_switches_total{kind=\"voluntary\"} ");
    ASSERT_GE(metric(text, "stageprof_process_context_switches_total{"
                           "kind=\"involuntary\"} "),
              0);
    free(text);
    ASSERT_GE(a, 0);
    ASSERT_GE(b, a + 50);
    stageprof__sampler_stop();
}

/* A thread that burns CPU under a name until released. */
struct named {
    const char *name;
    int ms;
    pthread_barrier_t *hold; /* waited on after burning; may be NULL */
};

static void *named_main(void *arg)
{
    struct named *n = arg;
    pthread_setname_np(pthread_self(), n->name);
    burn(n->ms);
    if (n->hold != NULL)
        pthread_barrier_wait(n->hold);
    return NULL;
}

STAGEPROF_TEST(thread_cpu_by_name_escapes_labels)
{
    struct named n = {"we\"ird\\name", 60, NULL};
    pthread_t th;
    ASSERT_EQ(stageprof__sampler_sample_now(1), 0);
    ASSERT_EQ(pthread_create(&th, NULL, named_main, &n), 0);
    sleep_ms(40);
    ASSERT_EQ(stageprof__sampler_sample_now(1), 0);
    pthread_join(th, NULL);
    char *text = render();
    double v = metric(
        text,
        "stageprof_thread_cpu_seconds_total{thread=\"we\\\"ird\\\\name\"} ");
    ASSERT_GE(v, 0);
    free(text);
    stageprof__sampler_stop();
}

STAGEPROF_TEST(thread_names_past_the_cap_go_to_other)
{
    enum { N = SAMPLER_MAX_NAMES + 6 };
    static struct named n[N];
    static char names[N][16];
    static pthread_t th[N];
    pthread_barrier_t hold;
    ASSERT_EQ(pthread_barrier_init(&hold, NULL, N + 1), 0);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "w%d", i);
        n[i] = (struct named){names[i], 0, &hold};
        ASSERT_EQ(pthread_create(&th[i], NULL, named_main, &n[i]), 0);
    }
    sleep_ms(100); /* every thread named */
    ASSERT_EQ(stageprof__sampler_sample_now(1), 0);
    pthread_barrier_wait(&hold);
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&hold);
    char *text = render();
    ASSERT_EQ(count_of(text, "stageprof_thread_cpu_seconds_total{"),
              SAMPLER_MAX_NAMES + 1);
    ASSERT_CONTAINS(text, "{thread=\"other\"}");
    free(text);
    stageprof__sampler_stop();
}

STAGEPROF_TEST(fork_child_stops_without_a_thread)
{
    struct conf c = conf_hz(100);
    ASSERT_EQ(stageprof__sampler_start(&c), 0);
    sleep_ms(30);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        /* No thread here: stop must not join, render must not hang. */
        stageprof__sampler_stop();
        struct strbuf sb;
        stageprof__sb_init(&sb, NULL, NULL);
        stageprof__sampler_render(&sb);
        int ok = sb.buf != NULL && strstr(sb.buf, "process_threads") != NULL;
        /* Figures start afresh; the child can run a sampler of its own. */
        ok = ok && stageprof__sampler_samples() == 0;
        if (!UNDER_TSAN) {
            ok = ok && stageprof__sampler_start(&c) == 0;
            sleep_ms(30);
            stageprof__sampler_stop();
            ok = ok && stageprof__sampler_samples() >= 1;
        }
        _exit(ok ? 0 : 3);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    stageprof__sampler_stop();
}

STAGEPROF_TEST(promtool_accepts_the_output)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0)
        STAGEPROF_SKIP("promtool not installed");
    /* A thread name that needs escaping, then a running sampler. */
    struct named n = {"q\"t\\x", 20, NULL};
    pthread_t th;
    ASSERT_EQ(pthread_create(&th, NULL, named_main, &n), 0);
    struct conf c = conf_hz(100);
    ASSERT_EQ(stageprof__sampler_start(&c), 0);
    pthread_join(th, NULL);
    burn(50);
    stageprof__sampler_stop();
    char *text = render();
    char path[] = "/tmp/stageprof-sampler-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    ASSERT_NOT_NULL(p);
    char out[4096];
    size_t got = fread(out, 1, sizeof out - 1, p);
    out[got] = '\0';
    int rc = pclose(p);
    unlink(path);
    if (got != 0 || rc != 0)
        fprintf(stderr, "promtool said (status %d):\n%s\non:\n%s\n", rc, out,
                text);
    ASSERT_EQ(got, 0);
    ASSERT_EQ(rc, 0);
    free(text);
}

STAGEPROF_TEST_LIST(
    STAGEPROF_CASE(parse_stat_real_line),
    STAGEPROF_CASE(parse_stat_name_with_spaces_and_parentheses),
    STAGEPROF_CASE(parse_stat_cut_reads_never_give_short_numbers),
    STAGEPROF_CASE(parse_stat_garbage), STAGEPROF_CASE(parse_stat_huge_numbers),
    STAGEPROF_CASE(parse_status_fields), STAGEPROF_CASE(parse_statm_fields),
    STAGEPROF_CASE(parse_io_fields),
    STAGEPROF_CASE(parse_proc_stat_cpu_and_btime),
    STAGEPROF_CASE(parse_pressure_files),
    STAGEPROF_CASE(clean_name_makes_label_safe_text),
    STAGEPROF_CASE(real_sample_is_sane),
    STAGEPROF_CASE(render_without_sampler_has_process_metrics_only),
    STAGEPROF_CASE(thread_samples_while_cpu_burns),
    STAGEPROF_CASE(start_twice_then_stop_start_stop),
    STAGEPROF_CASE(stop_wakes_a_slow_sampler_at_once),
    STAGEPROF_CASE(counters_appear_in_the_trace),
    STAGEPROF_CASE(nothing_recorded_when_not_tracing),
    STAGEPROF_CASE(slow_figures_read_once_then_carried_over),
    STAGEPROF_CASE(context_switches_count_every_thread),
    STAGEPROF_CASE(thread_cpu_by_name_escapes_labels),
    STAGEPROF_CASE(thread_names_past_the_cap_go_to_other),
    STAGEPROF_CASE(fork_child_stops_without_a_thread),
    STAGEPROF_CASE(promtool_accepts_the_output))
