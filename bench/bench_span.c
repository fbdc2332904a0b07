/*
 * bench_span.c - what one span costs, at each cost level, beside baselines.
 *
 *   bench_span                 all tables (about 10 s)
 *   bench_span --quick         a fast smoke run
 *   bench_span --count V N     run variant V once for N iterations and exit
 *                              (bench/callgrind.sh counts instructions so)
 *
 * A "span" is one begin and one end with a literal name, through
 * STAGEPROF_SCOPE or STAGEPROF_SPAN_BEGIN/END. Phases:
 *
 *   A  stageprof not started (compiled in, off): baselines + off loops,
 *      one thread and two threads;
 *   B  tracing on, buffer budget 1 GiB: baselines + on loops, one thread
 *      and two threads.
 *
 * Ratios are taken against the baselines of the same phase. Between
 * repetitions of an "on" variant the recorded events are consumed by the
 * trace writer into a sink that discards them (untimed), so every
 * repetition records into a buffer in the same state.
 *
 * Buffer memory comes from this program's allocator (stageprof_config_t
 * malloc_fn/free_fn): chunk-sized blocks are recycled through a free list.
 * "warm" repetitions get blocks that were touched before (the steady state
 * of a process that writes traces and reuses its memory, as the library's
 * own list of written chunks does); "first touch" repetitions first take
 * back the library's spare chunks, then give the pages of every free block
 * back with MADV_DONTNEED, so every page costs a page fault, as in a process
 * filling fresh buffers.
 *
 * The compiled-out level (STAGEPROF_DISABLE) is in bench_span_disabled.c:
 * a translation unit compiles the macros one way only.
 */
#include <sys/mman.h>

#include "bench.h"
#include "drain.h"
#include "stageprof.h"
#include "tbuf.h"

/* ------------------------------------------------------------------------ */
/* Measured loops                                                           */
/* ------------------------------------------------------------------------ */

#define SPAN_LOOP(name) span_##name
#include "span_loops.h"

/* ------------------------------------------------------------------------ */
/* Buffer memory: chunk blocks recycled, warm or first-touch on demand      */
/* ------------------------------------------------------------------------ */

#define POOL_RESERVE (4ull << 30) /* address space; pages come on touch */
#define POOL_PREFILL_BYTES (48u << 20)

static struct {
    pthread_mutex_t lock;
    unsigned char *base; /* POOL_RESERVE bytes, MAP_NORESERVE */
    size_t bump;         /* bytes handed out from base so far */
    size_t block;        /* the library's chunk size (fixed at start) */
    void **free;         /* recycled blocks */
    size_t nfree, capfree;
    int cold; /* free blocks were given back (MADV_DONTNEED) */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *pool_malloc(size_t size, void *ud)
{
    (void)ud;
    if (pool.block == 0 || size != pool.block)
        return malloc(size);
    void *p = NULL;
    pthread_mutex_lock(&pool.lock);
    if (pool.nfree > 0)
        p = pool.free[--pool.nfree];
    else if (pool.bump + size <= POOL_RESERVE) {
        p = pool.base + pool.bump;
        pool.bump += size;
    }
    pthread_mutex_unlock(&pool.lock);
    return p;
}

static void pool_free(void *ptr, void *ud)
{
    (void)ud;
    unsigned char *p = ptr;
    if (p < pool.base || p >= pool.base + POOL_RESERVE) {
        free(ptr);
        return;
    }
    pthread_mutex_lock(&pool.lock);
    if (pool.nfree == pool.capfree) {
        size_t cap = pool.capfree ? pool.capfree * 2 : 1024;
        void **nv = realloc(pool.free, cap * sizeof *nv);
        if (nv == NULL)
            bench_die("out of memory");
        pool.free = nv;
        pool.capfree = cap;
    }
    pool.free[pool.nfree++] = ptr;
    pthread_mutex_unlock(&pool.lock);
}

static void pool_init(void)
{
    pool.base = mmap(NULL, POOL_RESERVE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (pool.base == MAP_FAILED)
        bench_die("cannot reserve address space for buffers");
}

/* Fill the free list with touched blocks once the chunk size is known. */
static void pool_prefill(size_t block)
{
    pool.block = block;
    size_t k = POOL_PREFILL_BYTES / block;
    void **tmp = malloc(k * sizeof *tmp);
    if (tmp == NULL)
        bench_die("out of memory");
    for (size_t i = 0; i < k; i++) {
        tmp[i] = pool_malloc(block, NULL);
        memset(tmp[i], 0, block);
    }
    for (size_t i = 0; i < k; i++)
        pool_free(tmp[i], NULL);
    free(tmp);
}

/* Give the free blocks' pages back: the next use of each page faults. */
static void pool_make_cold(void)
{
    pthread_mutex_lock(&pool.lock);
    for (size_t i = 0; i < pool.nfree; i++)
        madvise(pool.free[i], pool.block, MADV_DONTNEED);
    pool.cold = 1;
    pthread_mutex_unlock(&pool.lock);
}

static void pool_make_warm(void)
{
    pthread_mutex_lock(&pool.lock);
    if (pool.cold) {
        for (size_t i = 0; i < pool.nfree; i++)
            memset(pool.free[i], 0, pool.block);
        pool.cold = 0;
    }
    pthread_mutex_unlock(&pool.lock);
}

/* Repetition set-up: warm or first-touch buffer memory. */
static void warm_before(void)
{
    pool_make_warm();
}

static void cold_before(void)
{
    /* The library keeps some written chunks for reuse: hand them back. */
    stageprof__tbuf_pool_drain();
    pool_make_cold();
}

/* ------------------------------------------------------------------------ */
/* Session                                                                  */
/* ------------------------------------------------------------------------ */

static char trace_dir[64];

static void tracing_start(void)
{
    snprintf(trace_dir, sizeof trace_dir, "/tmp/stageprof-bench-%d",
             (int)getpid());
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 1;
    c.buffer_bytes = 1ll << 30;
    c.dir = trace_dir;
    c.malloc_fn = pool_malloc;
    c.free_fn = pool_free;
    if (stageprof_start(&c) != 0)
        bench_die("stageprof_start failed");
    pool_prefill(LOAD_RELAXED(&stageprof__g.chunk_bytes));
}

/* Stop (writes an empty trace: everything was drained) and clean up. */
static void tracing_stop(void)
{
    drain();
    char path[4096];
    stageprof_stop();
    if (stageprof_get_last_path(path, sizeof path) == 0)
        unlink(path);
    rmdir(trace_dir);
}

/*
 * Bytes per BEGIN/END record, three ways, over @n spans recorded after a
 * drain: committed record bytes (the chunks' used counts) per record; the
 * growth of stageprof_get_stats() bytes_buffered per record; and, exactly,
 * whole chunks (header included) per record over the chunks filled
 * start to end.
 */
static void record_bytes(double *committed, double *stats, double *chunks)
{
    const uint64_t n = 1000000;
    drain();
    stageprof_stats_t st0 = {.size = sizeof st0}, st1 = {.size = sizeof st1};
    stageprof_get_stats(&st0);
    struct tbuf *tb = stageprof__tls;
    struct chunk *first = tb != NULL ? tb->cur : NULL;
    size_t before = first != NULL ? LOAD_ACQUIRE(&first->used) : 0;
    bench_sink += span_scope(n);
    stageprof_get_stats(&st1);
    tb = stageprof__tls;
    size_t used = 0, whole = 0, whole_recs = 0;
    pthread_mutex_lock(&tb->lock);
    for (struct chunk *c = tb->head; c != NULL; c = c->next) {
        size_t u = LOAD_ACQUIRE(&c->used);
        used += c == first ? u - before : u;
        if (c != first && c != tb->cur) {
            whole += c->cap + sizeof *c;
            whole_recs += u / REC_SIZE;
        }
    }
    pthread_mutex_unlock(&tb->lock);
    *committed = (double)used / (double)(2 * n);
    *stats =
        (double)(st1.bytes_buffered - st0.bytes_buffered) / (double)(2 * n);
    *chunks = whole_recs ? (double)whole / (double)whole_recs : 0;
    drain();
}

/* ------------------------------------------------------------------------ */
/* Fixed-count mode, for callgrind                                          */
/* ------------------------------------------------------------------------ */

static int count_mode(const char *key, uint64_t n)
{
    bench_loop_fn fn = NULL;
    int on = 0;
    if (strcmp(key, "empty") == 0)
        fn = bench_loop_empty;
    else if (strcmp(key, "rdtsc2") == 0)
        fn = bench_loop_rdtsc2;
    else if (strcmp(key, "clock2") == 0)
        fn = bench_loop_clock2;
    else if (strcmp(key, "off_scope") == 0)
        fn = span_scope;
    else if (strcmp(key, "off_begin_end") == 0)
        fn = span_begin_end;
    else if (strcmp(key, "on_scope") == 0)
        fn = span_scope, on = 1;
    else if (strcmp(key, "on_begin_end") == 0)
        fn = span_begin_end, on = 1;
    if (fn == NULL) {
        fprintf(stderr, "bench_span: --count takes empty, rdtsc2, clock2, "
                        "off_scope, off_begin_end, on_scope, on_begin_end\n");
        return 2;
    }
    if (on) {
        pool_init();
        tracing_start();
        /* One span first: the thread's buffer exists before the count. */
        bench_sink += span_scope(1);
    }
    uint64_t s = fn(n);
    printf("%s %llu %llu\n", key, (unsigned long long)n,
           (unsigned long long)(s + bench_sink) & 1);
    fflush(stdout);
    /* No trace at exit: the events are not wanted, writing them is slow. */
    _exit(0);
}

/* ------------------------------------------------------------------------ */
/* Main                                                                     */
/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    struct bench_opts o;
    int prc = bench_parse(argc, argv, &o,
                          "  variants for --count: empty rdtsc2 clock2 "
                          "off_scope off_begin_end on_scope on_begin_end\n");
    if (prc != 0)
        return prc == 1 ? 0 : 2;
    if (stageprof_is_active())
        bench_die("unset STAGEPROF_ENABLE: the off level needs stageprof "
                  "not started");
    if (o.count != NULL)
        return count_mode(o.count, o.count_n);

    uint64_t t_start = bench_now_ns();
    bench_machine("bench_span");
    int two = o.threads2 && bench_ncpus() >= 2;
    if (o.threads2 && !two)
        printf("only one CPU usable: two-thread variants skipped\n");
    bench_pin(0);
    printf("best of %d repetitions of about %.0f ms each, variants "
           "interleaved; ns per iteration (a span is one begin + one end)\n",
           o.reps, o.rep_ms);

    /* Phase A: compiled in, stageprof not started. */
    struct bench_variant a1[] = {
        BENCH_BASELINES(1, ""),
        {.key = "off_scope",
         .label = "off: STAGEPROF_SCOPE",
         .fn = span_scope,
         .threads = 1},
        {.key = "off_begin_end",
         .label = "off: SPAN_BEGIN/END",
         .fn = span_begin_end,
         .threads = 1},
    };
    int na1 = (int)(sizeof a1 / sizeof a1[0]);
    bench_rounds(a1, na1, &o);
    bench_table("A. compiled in, not started (off) - 1 thread", a1, na1,
                "empty", "rdtsc2");

    struct bench_variant a2[] = {
        BENCH_BASELINES(2, "_2t"),
        {.key = "off_scope_2t",
         .label = "off: STAGEPROF_SCOPE",
         .fn = span_scope,
         .threads = 2},
    };
    int na2 = (int)(sizeof a2 / sizeof a2[0]);
    if (two) {
        bench_pool_start();
        bench_rounds(a2, na2, &o);
        bench_table("A. compiled in, not started (off) - 2 threads, "
                    "ns/op per thread",
                    a2, na2, "empty_2t", "rdtsc2_2t");
    }

    /* Phase B: tracing. */
    pool_init();
    tracing_start();
    /* Per repetition: what fits the budget comfortably, drained after. */
    const uint64_t cap = 250000;
    struct bench_variant b1[] = {
        BENCH_BASELINES(1, ""),
        {.key = "on_scope",
         .label = "on: STAGEPROF_SCOPE",
         .fn = span_scope,
         .threads = 1,
         .max_n = cap,
         .before = warm_before,
         .after = drain},
        {.key = "on_begin_end",
         .label = "on: SPAN_BEGIN/END",
         .fn = span_begin_end,
         .threads = 1,
         .max_n = cap,
         .before = warm_before,
         .after = drain},
        {.key = "on_scope_cold",
         .label = "on: SCOPE, first-touch buffer",
         .fn = span_scope,
         .threads = 1,
         .max_n = cap,
         .before = cold_before,
         .after = drain},
    };
    int nb1 = (int)(sizeof b1 / sizeof b1[0]);
    bench_rounds(b1, nb1, &o);
    pool_make_warm();
    bench_table("B. tracing on - 1 thread", b1, nb1, "empty", "rdtsc2");

    struct bench_variant b2[] = {
        BENCH_BASELINES(2, "_2t"),
        {.key = "on_scope_2t",
         .label = "on: STAGEPROF_SCOPE",
         .fn = span_scope,
         .threads = 2,
         .max_n = cap,
         .before = warm_before,
         .after = drain},
    };
    int nb2 = (int)(sizeof b2 / sizeof b2[0]);
    if (two) {
        bench_rounds(b2, nb2, &o);
        bench_table("B. tracing on - 2 threads, ns/op per thread", b2, nb2,
                    "empty_2t", "rdtsc2_2t");
    }

    double committed, stats_b, chunk_b;
    record_bytes(&committed, &stats_b, &chunk_b);
    printf("\nbuffer bytes per BEGIN or END record without args, 1M spans:\n"
           "  %.3f committed (sum of chunks' used bytes / records)\n"
           "  %.3f held (growth of stageprof_get_stats bytes_buffered / "
           "records)\n"
           "  %.4f allocated (whole chunks incl. header / their records)\n",
           committed, stats_b, chunk_b);
    printf("clock: %s\n", stageprof__clock_name());

    /* Targets. */
    struct bench_variant *e1 = bench_find(a1, na1, "empty");
    struct bench_variant *off = bench_find(a1, na1, "off_scope");
    struct bench_variant *r1 = bench_find(b1, nb1, "rdtsc2");
    struct bench_variant *on = bench_find(b1, nb1, "on_scope");
    struct bench_variant *onbe = bench_find(b1, nb1, "on_begin_end");
    printf("\ntargets (ratios of best figures; instruction counts: "
           "bench/callgrind.sh)\n");
    double q = on->best_ns / r1->best_ns;
    printf("  span on, 1 thread, SCOPE      %6.3f x two rdtsc  "
           "(<= 1.15)   %s\n",
           q, bench_verdict(q <= 1.15));
    q = onbe->best_ns / r1->best_ns;
    printf("  span on, 1 thread, BEGIN/END  %6.3f x two rdtsc  "
           "(<= 1.15)   %s\n",
           q, bench_verdict(q <= 1.15));
    if (two) {
        struct bench_variant *r2 = bench_find(b2, nb2, "rdtsc2_2t");
        struct bench_variant *on2 = bench_find(b2, nb2, "on_scope_2t");
        /*
         * Two threads on two CPUs run side by side: their rdtsc loop costs
         * what it costs on one. When it does not, something else held a
         * CPU during every repetition and the two-thread ratios mean little.
         */
        int noisy = r2->best_ns > 1.1 * r1->best_ns ||
                    r2->best_rate < 0.9 * 2e9 / r1->best_ns;
        if (noisy)
            printf("  WARNING: two-thread baseline %.2f ns per thread, %.1f "
                   "Mop/s in total, vs %.2f ns on one thread: the CPUs were "
                   "shared, two-thread ratios are unreliable; run again on "
                   "a quiet machine\n",
                   r2->best_ns, r2->best_rate / 1e6, r1->best_ns);
        q = on2->best_ns / r2->best_ns;
        printf("  span on, 2 threads, per thread %5.3f x two rdtsc  "
               "(<= 1.2)    %s\n",
               q, noisy ? "UNRELIABLE" : bench_verdict(q <= 1.2));
        q = on2->best_rate / r2->best_rate;
        printf("  span on, 2 threads, total     %6.3f x baseline total "
               "(>= 0.85) %s\n",
               q, noisy ? "UNRELIABLE" : bench_verdict(q >= 0.85));
    }
    double d = off->best_ns - e1->best_ns;
    printf("  span off, 1 thread            %+6.2f ns vs empty loop "
           "(about 0.5 ns) %s\n",
           d, bench_verdict(d <= 0.75));
    printf("  bytes per record              %6.2f committed, %.4f with "
           "chunk headers (<= 16) %s\n",
           committed, chunk_b, bench_verdict(committed <= 16.0));

    tracing_stop();
    if (two)
        bench_pool_stop();
    printf("\n(%.1f s, checksum %llu)\n",
           (double)(bench_now_ns() - t_start) / 1e9,
           (unsigned long long)(bench_sink + bench_pool.sink) & 1);
    return 0;
}
