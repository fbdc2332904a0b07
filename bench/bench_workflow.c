/*
 * bench_workflow.c - what tracing costs a real workload: the detection
 * workflow of examples/detect_workflow, run with tracing on and off.
 *
 *   bench_workflow [--prog PATH] [PAIRS [FRAMES]]   (default 10 pairs,
 *                                                    16 frames)
 *
 * The program is PATH, else the variable DETECT_WORKFLOW_PATH, else the
 * one the build made (its path is compiled in); when there is none, or it
 * is not there, the benchmark says why and exits 0, "skipped".
 *
 * Every run is a child process with the same settings, --frames FRAMES
 * --workers 2 --input 256 --topk 2 (3-4 s on two cores), its output going
 * to a log file and its answers (--out) and --summary-json into a temporary
 * directory:
 *
 *   on    STAGEPROF_ENABLE=1, STAGEPROF_DIR a fresh empty directory
 *   off   no STAGEPROF_ variable at all (nor the older aliases
 *         ENABLE_WORKFLOWS_PROFILING, WORKFLOWS_PROFILER_*)
 *
 * DETECT_* variables are removed as well, so the flags alone set the work.
 * After one warm-up run (off, not counted: page cache, darknet's first
 * load) come PAIRS pairs in alternating order, on+off then off+on, so a
 * slow drift of the machine weighs on both levels alike.
 *
 * Measured: per pair, the throughput ratio on/off, frames per second of
 * the processing window the program reports (wall_ns: from starting its
 * threads to joining them; model loading, the calibration at start and
 * the trace written at stop are outside it). The median ratio gets a
 * distribution-free interval from order statistics: with n pairs, the
 * k-th smallest and k-th largest ratio bound the median with probability
 * 1 - 2 P(B <= k - 1), B ~ Binomial(n, 1/2); k is the largest rank that
 * keeps this coverage >= 95 % (n >= 6 is needed), and the coverage is
 * printed. Beside it: CPU time per frame on/off, and how many CPUs other
 * processes used during each run (/proc/stat busy time minus the child's
 * own): pairs where that exceeds 0.1 CPUs are marked, since on two CPUs
 * any other work lengthens the window of whichever run it meets.
 *
 * Computed: each on-run's trace ends with the trailer
 * "overhead":{"ns_per_event":X,"events":N,...}, X calibrated in that
 * process at start. N x X / cpu_ns is the share of the window's CPU time
 * spent recording, N x X / wall_ns the same per wall time (N counts the
 * whole session, a few start-up events outside the window included, so
 * both lean high); the medians over the on-runs are printed. Target: computed
 * overhead <= 1 % of CPU time, and the measured interval for 1 - ratio should
 * reach down to 1 % (or below) to be consistent with it.
 *
 * Exit status: 0 (also when skipped), 1 when a run fails or its output
 * cannot be read, 2 bad usage. Timing is reported, never asserted.
 */
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "bench.h"

#define PROG "bench_workflow"
#define WORKERS "2"
#define INPUT "256"
#define TOPK "2"
#define MAX_PAIRS 1000
#define LOG_TAIL_LINES 15
/* A run during which other processes used more CPUs than this on average
 * (a quiet machine: about 0.01) is flagged as contended. */
#define OTHERS_MAX 0.1

/* One child run and what it reported. */
struct run {
    int on;           /* tracing on */
    uint64_t frames;  /* frames done */
    uint64_t wall_ns; /* processing window */
    uint64_t cpu_ns;  /* process CPU time in the window */
    double fps;       /* frames / window */
    double others;    /* CPUs other processes used meanwhile */
    /* on-runs only, from the trace's trailer */
    double ns_per_event; /* X */
    uint64_t events;     /* N */
    int complete;        /* the trace says "complete":true */
};

static char root[4096];            /* temporary directory, "" when none */
static volatile sig_atomic_t stop; /* signal that asks us to stop */
static pid_t child = -1;

/* ------------------------------------------------------------------------ */
/* Files                                                                    */
/* ------------------------------------------------------------------------ */

static int remove_entry(const char *path, const struct stat *st, int flag,
                        struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void cleanup(void)
{
    if (root[0] != '\0') {
        remove_tree(root);
        root[0] = '\0';
    }
}

/* Print "bench_workflow: <message>" and exit 1 (cleanup() runs at exit). */
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

/* The whole file, NUL-terminated, or its last @tail bytes when @tail > 0;
 * malloc'd, NULL when it cannot be read. */
static char *read_file(const char *path, long tail)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *p = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0) {
        long from = tail > 0 && len > tail ? len - tail : 0;
        if (fseek(f, from, SEEK_SET) == 0 &&
            (p = malloc((size_t)(len - from) + 1)) != NULL) {
            size_t n = fread(p, 1, (size_t)(len - from), f);
            p[n] = '\0';
        }
    }
    fclose(f);
    return p;
}

/* Print the last lines of a child's output to stderr. */
static void show_log(const char *path)
{
    char *text = read_file(path, 8192);
    if (text == NULL)
        return;
    size_t len = strlen(text);
    while (len > 0 && text[len - 1] == '\n')
        text[--len] = '\0';
    const char *start = text;
    int lines = 0;
    for (size_t i = len; i > 0; i--)
        if (text[i - 1] == '\n' && ++lines == LOG_TAIL_LINES) {
            start = text + i;
            break;
        }
    if (*start != '\0')
        fprintf(stderr, PROG ": its output ends with:\n%s\n", start);
    free(text);
}

/* ------------------------------------------------------------------------ */
/* The writers' output, parsed by its fixed form                            */
/* ------------------------------------------------------------------------ */

/* The unsigned number after "@key": in @s; 0 or -1. */
static int json_u64(const char *s, const char *key, uint64_t *out)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(s, pat);
    if (p == NULL)
        return -1;
    p += strlen(pat);
    if (*p < '0' || *p > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno != 0)
        return -1;
    *out = v;
    return 0;
}

static int json_double(const char *s, const char *key, double *out)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(s, pat);
    if (p == NULL)
        return -1;
    p += strlen(pat);
    char *end;
    errno = 0;
    double v = strtod(p, &end);
    if (end == p || errno != 0)
        return -1;
    *out = v;
    return 0;
}

/*
 * The string after "@key": into @out (escapes \" \\ \/ undone; other
 * escapes refused); 1 when the value is null, 0 for a string, -1 else.
 */
static int json_str(const char *s, const char *key, char *out, size_t len)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(s, pat);
    if (p == NULL)
        return -1;
    p += strlen(pat);
    if (strncmp(p, "null", 4) == 0)
        return 1;
    if (*p++ != '"')
        return -1;
    size_t n = 0;
    for (; *p != '"'; p++) {
        if (*p == '\0' || n + 1 >= len)
            return -1;
        if (*p == '\\') {
            p++;
            if (*p != '"' && *p != '\\' && *p != '/')
                return -1;
        }
        out[n++] = *p;
    }
    out[n] = '\0';
    return 0;
}

/* X, N and completeness from the trailer at the end of @trace. */
static void read_trailer(const char *trace, struct run *r)
{
    size_t tl = strlen(trace);
    if (tl > 3 && strcmp(trace + tl - 3, ".gz") == 0)
        fail("%s: a compressed trace (STAGEPROF_GZIP is not set here)", trace);
    /* The trailer is a few hundred bytes, last in the file. */
    char *tail = read_file(trace, 16384);
    if (tail == NULL)
        fail("cannot read the trace %s: %s", trace, strerror(errno));
    const char *sum = strstr(tail, "\"stageprof_summary\":{");
    const char *ovh = sum != NULL ? strstr(sum, "\"overhead\":{") : NULL;
    if (ovh == NULL || json_double(ovh, "ns_per_event", &r->ns_per_event) ||
        json_u64(ovh, "events", &r->events) || r->ns_per_event <= 0) {
        free(tail);
        fail("%s: no \"overhead\" figures in its stageprof_summary", trace);
    }
    r->complete = strstr(sum, "\"complete\":true") != NULL;
    free(tail);
}

/* ------------------------------------------------------------------------ */
/* Child runs                                                               */
/* ------------------------------------------------------------------------ */

/* Seconds of CPU time the whole machine spent busy (idle and iowait left
 * out, time stolen by the hypervisor counted in), from /proc/stat. */
static double machine_busy_s(void)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return 0;
    int got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
                     &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (got < 8)
        return 0;
    long hz = sysconf(_SC_CLK_TCK);
    /* user nice system idle iowait irq softirq steal */
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) /
           (double)(hz > 0 ? hz : 100);
}

static void on_signal(int sig)
{
    stop = sig;
}

/* Inherited variables that would change what the child does. */
static int dropped_var(const char *v)
{
    return strncmp(v, "STAGEPROF_", 10) == 0 ||
           strncmp(v, "ENABLE_WORKFLOWS_PROFILING=", 27) == 0 ||
           strncmp(v, "WORKFLOWS_PROFILER_", 19) == 0 ||
           strncmp(v, "DETECT_", 7) == 0;
}

/* The environment of a child: ours, filtered, plus @add (NULL-ended). */
static char **child_env(char *const *add)
{
    size_t n = 0, k = 0;
    while (environ[n] != NULL)
        n++;
    while (add[k] != NULL)
        k++;
    char **env = calloc(n + k + 1, sizeof *env);
    if (env == NULL)
        fail("out of memory");
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!dropped_var(environ[i]))
            env[m++] = environ[i];
    for (size_t i = 0; i < k; i++)
        env[m++] = add[i];
    env[m] = NULL;
    return env;
}

static void make_dir(const char *path)
{
    if (mkdir(path, 0700) != 0)
        fail("cannot create %s: %s", path, strerror(errno));
}

/* Run the workflow once (run number @index) and fill @r; exits on error. */
static void run_once(const char *prog, const char *frames, int index, int on,
                     struct run *r)
{
    char dir[4200], out[4300], trace_dir[4300], summary[4300], log[4300];
    char set_dir[4400];
    snprintf(dir, sizeof dir, "%s/run%03d-%s", root, index, on ? "on" : "off");
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(trace_dir, sizeof trace_dir, "%s/trace", dir);
    snprintf(summary, sizeof summary, "%s/summary.json", dir);
    snprintf(log, sizeof log, "%s/output.log", dir);
    snprintf(set_dir, sizeof set_dir, "STAGEPROF_DIR=%s", trace_dir);
    if (stop)
        fail("interrupted");
    make_dir(dir);
    if (on)
        make_dir(trace_dir);

    char *add_on[] = {"STAGEPROF_ENABLE=1", set_dir, NULL};
    char *add_off[] = {NULL};
    char **env = child_env(on ? add_on : add_off);
    char *argv[] = {(char *)prog, "--frames", (char *)frames,
                    "--workers",  WORKERS,    "--input",
                    INPUT,        "--topk",   TOPK,
                    "--out",      out,        "--summary-json",
                    summary,      NULL};

    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0 ||
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) ||
        posix_spawn_file_actions_addopen(&fa, 1, log,
                                         O_WRONLY | O_CREAT | O_TRUNC, 0600) ||
        posix_spawn_file_actions_adddup2(&fa, 1, 2))
        fail("posix_spawn_file_actions failed");
    double busy0 = machine_busy_s();
    uint64_t t0 = bench_now_ns();
    int rc = posix_spawn(&child, prog, &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    if (rc != 0)
        fail("cannot start %s: %s", prog, strerror(rc));

    int status = 0;
    struct rusage ru;
    while (wait4(child, &status, 0, &ru) < 0) {
        if (errno != EINTR)
            fail("wait4: %s", strerror(errno));
        if (stop)
            kill(child, SIGTERM); /* then wait for it */
    }
    double elapsed = (double)(bench_now_ns() - t0) / 1e9;
    double own = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    double others = (machine_busy_s() - busy0 - own) / elapsed;
    child = -1;
    if (stop)
        fail("interrupted");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char why[64];
        if (WIFEXITED(status))
            snprintf(why, sizeof why, "exit status %d", WEXITSTATUS(status));
        else
            snprintf(why, sizeof why, "signal %d",
                     WIFSIGNALED(status) ? WTERMSIG(status) : -1);
        fprintf(stderr, PROG ": run %d (tracing %s) failed: %s\n", index,
                on ? "on" : "off", why);
        show_log(log);
        fail("the workflow must run cleanly to be measured: %s --frames %s "
             "--workers " WORKERS " --input " INPUT " --topk " TOPK,
             prog, frames);
    }

    char *js = read_file(summary, 0);
    uint64_t failed = 1;
    if (js == NULL)
        fail("cannot read %s: %s", summary, strerror(errno));
    char trace[4096];
    int tr = json_str(js, "trace", trace, sizeof trace);
    if (json_u64(js, "frames", &r->frames) ||
        json_u64(js, "frames_failed", &failed) ||
        json_u64(js, "wall_ns", &r->wall_ns) ||
        json_u64(js, "cpu_ns", &r->cpu_ns) || tr < 0) {
        free(js);
        fail("%s: not the summary expected", summary);
    }
    free(js);
    if (failed != 0 || r->frames == 0 || r->wall_ns == 0 || r->cpu_ns == 0)
        fail("run with no usable figures (%s)", summary);
    if (on && tr != 0)
        fail("tracing on, but no trace was written (%s)", summary);
    if (!on && tr == 0)
        fail("tracing off, but a trace was written: %s", trace);
    r->on = on;
    r->others = others > 0 ? others : 0;
    r->fps = (double)r->frames * 1e9 / (double)r->wall_ns;
    if (on)
        read_trailer(trace, r);
    remove_tree(dir);
}

/* ------------------------------------------------------------------------ */
/* Statistics                                                               */
/* ------------------------------------------------------------------------ */

static double median(const double *x, int n)
{
    double *s = malloc(sizeof *s * (size_t)n);
    if (s == NULL)
        fail("out of memory");
    memcpy(s, x, sizeof *s * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, bench_cmp_double);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    free(s);
    return m;
}

/* P(B <= j), B ~ Binomial(n, 1/2). */
static double binom_half_cdf(int n, int j)
{
    double p = 1, sum = 0;
    for (int i = 0; i < n; i++)
        p *= 0.5;
    for (int i = 0; i <= j; i++) {
        sum += p;
        p = p * (double)(n - i) / (double)(i + 1);
    }
    return sum;
}

/*
 * The largest rank k (1-based) whose order statistics x(k), x(n+1-k)
 * cover the median with probability >= 0.95, with that probability in
 * @cover; 0 when even k = 1 falls short (n < 6).
 */
static int median_rank(int n, double *cover)
{
    int best = 0;
    *cover = 0;
    for (int k = 1; 2 * k <= n; k++) {
        double c = 1 - 2 * binom_half_cdf(n, k - 1);
        if (c < 0.95)
            break;
        best = k;
        *cover = c;
    }
    return best;
}

/*
 * The distribution-free interval for the median of @x[0..n) into @lo,
 * @hi, with its coverage; returns its rank k, 0 when n is too small (then
 * @lo and @hi are the extremes).
 */
static int median_interval(const double *x, int n, double *lo, double *hi,
                           double *cover)
{
    double *s = malloc(sizeof *s * (size_t)n);
    if (s == NULL)
        fail("out of memory");
    memcpy(s, x, sizeof *s * (size_t)n);
    qsort(s, (size_t)n, sizeof *s, bench_cmp_double);
    int k = median_rank(n, cover);
    *lo = s[k > 0 ? k - 1 : 0];
    *hi = s[k > 0 ? n - k : n - 1];
    free(s);
    return k;
}

/* ------------------------------------------------------------------------ */
/* Main                                                                     */
/* ------------------------------------------------------------------------ */

static void usage(FILE *to)
{
    fprintf(to,
            "usage: " PROG " [--prog PATH] [PAIRS [FRAMES]]\n"
            "  PAIRS   on/off pairs of runs, 1..%d (default 10; the interval "
            "needs 6)\n"
            "  FRAMES  frames per run (default 16)\n"
            "  --prog PATH  the detect_workflow program (else "
            "$DETECT_WORKFLOW_PATH,\n"
            "               else the one the build made)\n",
            MAX_PAIRS);
}

static int parse_count(const char *s, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v < 1 ||
        v > max)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    long pairs = 10, frames = 16;
    const char *prog = NULL, *from = "--prog";
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--prog") == 0 && i + 1 < argc) {
            prog = argv[++i];
        } else if (npos == 0 && parse_count(a, MAX_PAIRS, &pairs) == 0) {
            npos++;
        } else if (npos == 1 && parse_count(a, 1000000, &frames) == 0) {
            npos++;
        } else {
            fprintf(stderr, PROG ": bad argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (prog == NULL && (prog = getenv("DETECT_WORKFLOW_PATH")) != NULL &&
        prog[0] != '\0')
        from = "DETECT_WORKFLOW_PATH";
#ifdef DETECT_WORKFLOW_PATH
    if (prog == NULL || prog[0] == '\0') {
        prog = DETECT_WORKFLOW_PATH;
        from = "the build";
    }
#endif
    if (prog == NULL || prog[0] == '\0') {
        printf(PROG ": skipped: no detect_workflow: this build did not make "
                    "it (it needs darknet, libjpeg and examples or tests "
                    "on), and neither --prog nor DETECT_WORKFLOW_PATH names "
                    "one\n");
        return 0;
    }
    if (access(prog, X_OK) != 0) {
        printf(PROG ": skipped: %s (from %s): %s\n", prog, from,
               strerror(errno));
        return 0;
    }

    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/" PROG ".XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(root) == NULL) {
        fprintf(stderr, PROG ": cannot create %s: %s\n", root, strerror(errno));
        root[0] = '\0';
        return 1;
    }
    atexit(cleanup);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: wait4 is interrupted */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    char fr[24];
    snprintf(fr, sizeof fr, "%ld", frames);
    bench_machine(PROG);
    printf("workload: %s --frames %s --workers " WORKERS " --input " INPUT
           " --topk " TOPK "\n",
           prog, fr);
    printf("%ld pairs, order on,off then off,on alternating, after one "
           "warm-up run (off, not counted)\n\n",
           pairs);
    fflush(stdout);

    struct run warm;
    run_once(prog, fr, 0, 0, &warm);

    int n = (int)pairs;
    struct run *on = calloc((size_t)n, sizeof *on);
    struct run *off = calloc((size_t)n, sizeof *off);
    double *ratio = calloc((size_t)n, sizeof *ratio);
    double *cpu_ratio = calloc((size_t)n, sizeof *cpu_ratio);
    double *share_cpu = calloc((size_t)n, sizeof *share_cpu);
    double *share_wall = calloc((size_t)n, sizeof *share_wall);
    if (!on || !off || !ratio || !cpu_ratio || !share_cpu || !share_wall)
        fail("out of memory");

    printf("%4s  %-6s %8s %8s %7s %7s %8s %7s %8s %10s %10s\n", "pair", "order",
           "off fr/s", "on fr/s", "on/off", "others", "cpu/fr", "events",
           "ns/event", "rec/cpu", "rec/wall");
    int incomplete = 0, contended = 0;
    for (int i = 0; i < n; i++) {
        int on_first = i % 2 == 0;
        for (int j = 0; j < 2; j++) {
            int is_on = (j == 0) == on_first;
            run_once(prog, fr, 1 + 2 * i + j, is_on, is_on ? &on[i] : &off[i]);
        }
        const struct run *a = &on[i], *b = &off[i];
        double work = (double)a->events * a->ns_per_event;
        double others = a->others > b->others ? a->others : b->others;
        int busy = others > OTHERS_MAX;
        ratio[i] = a->fps / b->fps;
        cpu_ratio[i] = ((double)a->cpu_ns / (double)a->frames) /
                       ((double)b->cpu_ns / (double)b->frames);
        share_cpu[i] = work / (double)a->cpu_ns;
        share_wall[i] = work / (double)a->wall_ns;
        incomplete += !a->complete;
        contended += busy;
        printf("%4d  %-6s %8.3f %8.3f %7.4f %7.2f %8.4f %7llu %8.1f %9.5f%% "
               "%9.5f%%%s%s\n",
               i + 1, on_first ? "on,off" : "off,on", b->fps, a->fps, ratio[i],
               others, cpu_ratio[i], (unsigned long long)a->events,
               a->ns_per_event, 100 * share_cpu[i], 100 * share_wall[i],
               busy ? "  *" : "", a->complete ? "" : "  (trace incomplete)");
        fflush(stdout);
    }
    printf("(fr/s: frames per second of the processing window; others: "
           "CPUs used by other\n processes during the pair's busier run; "
           "cpu/fr: CPU time per frame, on / off;\n rec/cpu, rec/wall: "
           "events x ns/event / CPU time, / wall time of the on-run)\n");
    if (contended > 0)
        printf("* %d of %d pairs had other work above %.1f CPUs in a run: "
               "their ratios measure\n  that as much as the profiler\n",
               contended, n, OTHERS_MAX);

    double med = median(ratio, n), cpu_med = median(cpu_ratio, n);
    double rec_cpu = median(share_cpu, n), rec_wall = median(share_wall, n);
    double lo, hi, cover, cpu_lo, cpu_hi;
    int k = median_interval(ratio, n, &lo, &hi, &cover);
    median_interval(cpu_ratio, n, &cpu_lo, &cpu_hi, &cover);
    printf("\nmeasured: throughput on/off, median of %d pairs: %.4f, "
           "1 - ratio %+.2f%%\n",
           n, med, 100 * (1 - med));
    if (k > 0) {
        printf("  95%% interval for the median: [%.4f, %.4f] (ranks %d and "
               "%d of %d, coverage %.2f%%)\n",
               lo, hi, k, n + 1 - k, n, 100 * cover);
        printf("  1 - ratio: [%+.2f%%, %+.2f%%]\n", 100 * (1 - hi),
               100 * (1 - lo));
        printf("  CPU time per frame on/off: median %.4f, interval [%.4f, "
               "%.4f]\n",
               cpu_med, cpu_lo, cpu_hi);
    } else {
        printf("  no interval: a 95%% interval for the median needs at "
               "least 6 pairs\n");
        printf("  CPU time per frame on/off: median %.4f\n", cpu_med);
    }
    printf("computed: events x ns/event, median of %d on-runs: %.5f%% of "
           "the CPU time, %.5f%% of the wall time\n",
           n, 100 * rec_cpu, 100 * rec_wall);
    if (incomplete > 0)
        printf("  %d trace(s) incomplete: events were dropped, and they are "
               "not counted\n",
               incomplete);

    printf("\ntarget: computed overhead <= 1%% of CPU time: %s (%.5f%%)\n",
           rec_cpu <= 0.01 ? "met" : "MISSED", 100 * rec_cpu);
    if (k > 0) {
        double lo_ovh = 1 - hi, hi_ovh = 1 - lo;
        printf("measured 1 - ratio [%+.2f%%, %+.2f%%]: %s; it %s the "
               "computed %.5f%%\n",
               100 * lo_ovh, 100 * hi_ovh,
               lo_ovh <= 0.01 ? "reaches 1% or less, consistent with the "
                                "target"
                              : "all above 1%, NOT consistent with the "
                                "target",
               lo_ovh <= rec_cpu && rec_cpu <= hi_ovh ? "includes"
                                                      : "does not include",
               100 * rec_cpu);
        if (hi_ovh - lo_ovh > 0.02)
            printf("  (%.2f points wide: the spread between runs, not the "
                   "profiler, limits what\n  the measurement resolves)\n",
                   100 * (hi_ovh - lo_ovh));
    }
    free(on);
    free(off);
    free(ratio);
    free(cpu_ratio);
    free(share_cpu);
    free(share_wall);
    return 0;
}
