/*
 * bench.h - the measuring harness shared by the programs in bench/.
 *
 * Absolute times drift on a shared machine, so every figure a benchmark
 * prints is set beside baselines measured in the same process, in the same
 * rounds:
 *
 *   round 1:  variant A rep, variant B rep, variant C rep, ...
 *   round 2:  variant A rep, variant B rep, variant C rep, ...
 *   ...       (a slow period hits every variant, not just one)
 *
 * Each variant keeps the best (minimum ns/op) and the median of its
 * repetitions; ratios are taken between best figures. Two-thread variants run
 * on two pinned worker threads released together by a barrier: each thread
 * times its own loop (per-thread ns/op) and the pair gives the total rate
 * (operations of both threads over the time from the first start to the
 * last end).
 *
 * Baseline loops (same shape as the measured ones, one barrier per
 * iteration that costs no instruction but keeps the loop):
 *
 *   empty        the loop alone
 *   rdtsc x2     two __rdtsc() reads, their difference accumulated
 *   clock x2     two clock_gettime(CLOCK_MONOTONIC) reads, likewise
 *
 * Loop functions are noinline/noclone so they keep their names: the
 * callgrind script collects instructions inside them by name
 * (--toggle-collect).
 *
 * Header-only: the build makes one program per C file in bench/.
 */
#ifndef STAGEPROF_BENCH_H
#define STAGEPROF_BENCH_H

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define BENCH_HAVE_RDTSC 1
#else
#define BENCH_HAVE_RDTSC 0
#endif

#define BENCH_LOOP __attribute__((noinline, noclone, unused))
/* Harness functions: not every program uses every one. */
#define BENCH_FN static __attribute__((unused))
/* Keeps @x (and so the loop around it) without emitting an instruction. */
#define BENCH_KEEP(x) __asm__ __volatile__("" : "+r"(x))

#define BENCH_MAX_REPS 64
#define BENCH_MAX_VARIANTS 16

typedef uint64_t (*bench_loop_fn)(uint64_t n);

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t bench_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

BENCH_FN void bench_die(const char *what)
{
    fprintf(stderr, "bench: %s\n", what);
    exit(1);
}

/* ------------------------------------------------------------------------ */
/* Baseline loops                                                           */
/* ------------------------------------------------------------------------ */

static BENCH_LOOP uint64_t bench_loop_empty(uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        BENCH_KEEP(i);
    return n;
}

static BENCH_LOOP uint64_t bench_loop_rdtsc2(uint64_t n)
{
    uint64_t acc = 0;
#if BENCH_HAVE_RDTSC
    for (uint64_t i = 0; i < n; i++) {
        uint64_t a = __rdtsc();
        BENCH_KEEP(i);
        uint64_t b = __rdtsc();
        acc += b - a;
    }
#else
    (void)n;
#endif
    return acc;
}

static BENCH_LOOP uint64_t bench_loop_clock2(uint64_t n)
{
    uint64_t acc = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        BENCH_KEEP(i);
        clock_gettime(CLOCK_MONOTONIC, &b);
        acc += (uint64_t)(b.tv_nsec - a.tv_nsec);
    }
    return acc;
}

/* ------------------------------------------------------------------------ */
/* Pinning and the two-thread pool                                          */
/* ------------------------------------------------------------------------ */

/* The CPUs the process may use, as found before any thread was pinned. */
static cpu_set_t bench_cpus;
static int bench_cpus_known;

BENCH_FN void bench_cpus_init(void)
{
    if (bench_cpus_known)
        return;
    if (sched_getaffinity(0, sizeof bench_cpus, &bench_cpus) != 0) {
        CPU_ZERO(&bench_cpus);
        CPU_SET(0, &bench_cpus);
    }
    bench_cpus_known = 1;
}

BENCH_FN int bench_ncpus(void)
{
    bench_cpus_init();
    return CPU_COUNT(&bench_cpus);
}

/* Pin the calling thread to the @k-th usable CPU; 0 or -1. */
BENCH_FN int bench_pin(int k)
{
    bench_cpus_init();
    int seen = 0;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &bench_cpus))
            continue;
        if (seen++ == k) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(c, &one);
            return pthread_setaffinity_np(pthread_self(), sizeof one, &one);
        }
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

struct bench_opts {
    int reps;          /* repetitions per variant */
    double rep_ms;     /* target duration of one repetition */
    int threads2;      /* run the two-thread variants */
    const char *count; /* --count VARIANT: one fixed run, for callgrind */
    uint64_t count_n;  /* its iterations */
};

BENCH_FN uint64_t bench_parse_u64(const char *s, const char *what)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        bench_die(what);
    return (uint64_t)v;
}

/*
 * Common options: --reps N, --rep-ms MS, --no-threads, --quick,
 * --count VARIANT N. Returns 0, or 1 for --help (usage printed).
 */
BENCH_FN int bench_parse(int argc, char **argv, struct bench_opts *o,
                         const char *usage_extra)
{
    o->reps = 25;
    o->rep_ms = 10.0;
    o->threads2 = 1;
    o->count = NULL;
    o->count_n = 0;
    bench_cpus_init();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--reps") == 0 && i + 1 < argc) {
            o->reps = (int)bench_parse_u64(argv[++i], "bad --reps");
            if (o->reps < 1 || o->reps > BENCH_MAX_REPS)
                bench_die("--reps must be 1..64");
        } else if (strcmp(a, "--rep-ms") == 0 && i + 1 < argc) {
            o->rep_ms = (double)bench_parse_u64(argv[++i], "bad --rep-ms");
        } else if (strcmp(a, "--no-threads") == 0) {
            o->threads2 = 0;
        } else if (strcmp(a, "--quick") == 0) {
            o->reps = 3;
            o->rep_ms = 2.0;
        } else if (strcmp(a, "--count") == 0 && i + 2 < argc) {
            o->count = argv[++i];
            o->count_n = bench_parse_u64(argv[++i], "bad --count N");
        } else {
            printf("usage: %s [--reps N] [--rep-ms MS] [--no-threads] "
                   "[--quick] [--count VARIANT N]\n%s",
                   argv[0], usage_extra);
            return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 ? 1 : 2;
        }
    }
    return 0;
}

struct bench_pool {
    pthread_t th[2];
    pthread_barrier_t go, done;
    bench_loop_fn fn; /* job of the current round; NULL stops the pool */
    uint64_t n;
    uint64_t t0[2], t1[2];
    uint64_t sink;
    int idx[2];
};

static struct bench_pool bench_pool __attribute__((unused));

BENCH_FN void *bench_worker(void *arg)
{
    int k = *(int *)arg;
    bench_pin(k);
    for (;;) {
        pthread_barrier_wait(&bench_pool.go);
        bench_loop_fn fn = bench_pool.fn;
        if (fn == NULL)
            break;
        uint64_t t0 = bench_now_ns();
        uint64_t s = fn(bench_pool.n);
        uint64_t t1 = bench_now_ns();
        bench_pool.t0[k] = t0;
        bench_pool.t1[k] = t1;
        __atomic_fetch_add(&bench_pool.sink, s, __ATOMIC_RELAXED);
        pthread_barrier_wait(&bench_pool.done);
    }
    return NULL;
}

BENCH_FN void bench_pool_start(void)
{
    if (pthread_barrier_init(&bench_pool.go, NULL, 3) != 0 ||
        pthread_barrier_init(&bench_pool.done, NULL, 3) != 0)
        bench_die("pthread_barrier_init failed");
    for (int k = 0; k < 2; k++) {
        bench_pool.idx[k] = k;
        if (pthread_create(&bench_pool.th[k], NULL, bench_worker,
                           &bench_pool.idx[k]) != 0)
            bench_die("pthread_create failed");
    }
}

BENCH_FN void bench_pool_stop(void)
{
    bench_pool.fn = NULL;
    pthread_barrier_wait(&bench_pool.go);
    for (int k = 0; k < 2; k++)
        pthread_join(bench_pool.th[k], NULL);
    pthread_barrier_destroy(&bench_pool.go);
    pthread_barrier_destroy(&bench_pool.done);
}

/* One two-thread repetition: per-thread ns/op (mean) and total ops/s. */
BENCH_FN void bench_pool_run(bench_loop_fn fn, uint64_t n,
                             double *per_thread_ns, double *total_ops_s)
{
    bench_pool.fn = fn;
    bench_pool.n = n;
    pthread_barrier_wait(&bench_pool.go);
    pthread_barrier_wait(&bench_pool.done);
    double a = (double)(bench_pool.t1[0] - bench_pool.t0[0]) / (double)n;
    double b = (double)(bench_pool.t1[1] - bench_pool.t0[1]) / (double)n;
    uint64_t first = bench_pool.t0[0] < bench_pool.t0[1] ? bench_pool.t0[0]
                                                         : bench_pool.t0[1];
    uint64_t last = bench_pool.t1[0] > bench_pool.t1[1] ? bench_pool.t1[0]
                                                        : bench_pool.t1[1];
    *per_thread_ns = (a + b) / 2;
    *total_ops_s = 2.0 * (double)n * 1e9 / (double)(last - first);
}

/* ------------------------------------------------------------------------ */
/* Variants, rounds and results                                             */
/* ------------------------------------------------------------------------ */

struct bench_variant {
    const char *key;   /* short name, for --count and the summary */
    const char *label; /* row label */
    bench_loop_fn fn;
    int threads;          /* 1 or 2 */
    uint64_t max_n;       /* cap on iterations per rep (0: none) */
    void (*before)(void); /* untimed, before each repetition */
    void (*after)(void);  /* untimed, after each repetition */
    /* filled in */
    uint64_t n; /* iterations per repetition (per thread) */
    int nsamples;
    double ns[BENCH_MAX_REPS];   /* ns/op (per thread for two threads) */
    double rate[BENCH_MAX_REPS]; /* total ops/s */
    double best_ns, med_ns, best_rate;
};

/*
 * The baseline rows every table starts with, on @nthreads threads; @sfx is
 * appended to their keys ("" or "_2t") so tables can name them.
 */
#define BENCH_BASELINES(nthreads, sfx)                                         \
    {.key = "empty" sfx,                                                       \
     .label = "empty loop",                                                    \
     .fn = bench_loop_empty,                                                   \
     .threads = (nthreads)},                                                   \
        {.key = "rdtsc2" sfx,                                                  \
         .label = "two rdtsc",                                                 \
         .fn = bench_loop_rdtsc2,                                              \
         .threads = (nthreads)},                                               \
    {                                                                          \
        .key = "clock2" sfx, .label = "two clock_gettime(MONOTONIC)",          \
        .fn = bench_loop_clock2, .threads = (nthreads)                         \
    }

static uint64_t bench_sink __attribute__((unused));

/* Iterations that take about @ms for @v (single-threaded trial). */
BENCH_FN uint64_t bench_calibrate(struct bench_variant *v, double ms)
{
    uint64_t n = 1000;
    for (;;) {
        if (v->max_n && n > v->max_n)
            n = v->max_n;
        if (v->before)
            v->before();
        uint64_t t0 = bench_now_ns();
        bench_sink += v->fn(n);
        uint64_t dt = bench_now_ns() - t0;
        if (v->after)
            v->after();
        if (dt >= 1000000 || (v->max_n && n == v->max_n)) {
            double want = (double)n * ms * 1e6 / (double)(dt ? dt : 1);
            uint64_t k = want < 1000 ? 1000 : (uint64_t)want;
            if (v->max_n && k > v->max_n)
                k = v->max_n;
            return k;
        }
        n *= 4;
    }
}

/* "met" or "MISSED", for the lines that set a figure against its target. */
BENCH_FN const char *bench_verdict(int ok)
{
    return ok ? "met" : "MISSED";
}

BENCH_FN int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

BENCH_FN void bench_finish(struct bench_variant *v)
{
    double tmp[BENCH_MAX_REPS];
    memcpy(tmp, v->ns, sizeof(double) * (size_t)v->nsamples);
    qsort(tmp, (size_t)v->nsamples, sizeof *tmp, bench_cmp_double);
    v->best_ns = tmp[0];
    v->med_ns = tmp[v->nsamples / 2];
    v->best_rate = 0;
    for (int i = 0; i < v->nsamples; i++)
        if (v->rate[i] > v->best_rate)
            v->best_rate = v->rate[i];
}

/*
 * Measure @nv variants in interleaved rounds, one-thread variants timed
 * with @now (wall or the thread's CPU time). Two-thread variants need
 * bench_pool_start() first and are timed by the pool (wall time).
 */
BENCH_FN void bench_rounds_clock(struct bench_variant *v, int nv,
                                 const struct bench_opts *o,
                                 uint64_t (*now)(void))
{
    for (int i = 0; i < nv; i++) {
        v[i].n = bench_calibrate(&v[i], o->rep_ms);
        v[i].nsamples = 0;
    }
    for (int r = 0; r < o->reps; r++) {
        for (int i = 0; i < nv; i++) {
            struct bench_variant *x = &v[i];
            if (x->before)
                x->before();
            double ns, rate;
            if (x->threads == 2) {
                bench_pool_run(x->fn, x->n, &ns, &rate);
            } else {
                uint64_t t0 = now();
                bench_sink += x->fn(x->n);
                uint64_t dt = now() - t0;
                ns = (double)dt / (double)x->n;
                rate = dt ? (double)x->n * 1e9 / (double)dt : 0;
            }
            if (x->after)
                x->after();
            x->ns[x->nsamples] = ns;
            x->rate[x->nsamples] = rate;
            x->nsamples++;
        }
    }
    for (int i = 0; i < nv; i++)
        bench_finish(&v[i]);
}

/* bench_rounds_clock with wall time; the calling thread pinned by caller. */
BENCH_FN void bench_rounds(struct bench_variant *v, int nv,
                           const struct bench_opts *o)
{
    bench_rounds_clock(v, nv, o, bench_now_ns);
}

BENCH_FN struct bench_variant *bench_find(struct bench_variant *v, int nv,
                                          const char *key)
{
    for (int i = 0; i < nv; i++)
        if (strcmp(v[i].key, key) == 0)
            return &v[i];
    return NULL;
}

/*
 * Print a table: ns/op best and median, then the ratio of the best to the
 * best of each baseline key given (NULL: column left out).
 */
BENCH_FN void bench_table(const char *title, struct bench_variant *v, int nv,
                          const char *empty_key, const char *rdtsc_key)
{
    struct bench_variant *e = empty_key ? bench_find(v, nv, empty_key) : NULL;
    struct bench_variant *t = rdtsc_key ? bench_find(v, nv, rdtsc_key) : NULL;
    int two = v[0].threads == 2;
    printf("\n%s\n", title);
    printf("  %-34s %9s %9s %9s %9s %9s%s\n", "variant", "ns/op", "median",
           "-empty", "x rdtsc2", "x clock2", two ? "   total Mop/s" : "");
    struct bench_variant *c = bench_find(v, nv, two ? "clock2_2t" : "clock2");
    for (int i = 0; i < nv; i++) {
        struct bench_variant *x = &v[i];
        printf("  %-34s %9.2f %9.2f", x->label, x->best_ns, x->med_ns);
        if (e != NULL)
            printf(" %9.2f", x->best_ns - e->best_ns);
        else
            printf(" %9s", "");
        if (t != NULL && t->best_ns > 0)
            printf(" %9.3f", x->best_ns / t->best_ns);
        else
            printf(" %9s", "");
        if (c != NULL && c->best_ns > 0)
            printf(" %9.3f", x->best_ns / c->best_ns);
        else
            printf(" %9s", "");
        if (two)
            printf("   %11.1f", x->best_rate / 1e6);
        printf("\n");
    }
}

/* Print the machine line every benchmark starts with. */
BENCH_FN void bench_machine(const char *prog)
{
    char model[256] = "?", cs[64] = "?";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f != NULL) {
        char line[512];
        while (fgets(line, sizeof line, f) != NULL) {
            if (strncmp(line, "model name", 10) == 0) {
                char *p = strchr(line, ':');
                if (p != NULL) {
                    snprintf(model, sizeof model, "%s", p + 2);
                    model[strcspn(model, "\n")] = '\0';
                }
                break;
            }
        }
        fclose(f);
    }
    f = fopen("/sys/devices/system/clocksource/clocksource0/"
              "current_clocksource",
              "r");
    if (f != NULL) {
        if (fgets(cs, sizeof cs, f) != NULL)
            cs[strcspn(cs, "\n")] = '\0';
        fclose(f);
    }
    printf("%s: %s, %d CPUs usable, clocksource %s\n", prog, model,
           bench_ncpus(), cs);
}

#endif /* STAGEPROF_BENCH_H */
