/*
 * clock.c - the time source of every event.
 *
 * Events store raw ticks. With the invariant TSC (x86-64, and only when the
 * CPU flags constant_tsc and nonstop_tsc AND the kernel's current
 * clocksource "tsc" say it is trustworthy) a tick is one TSC count: reading
 * it costs one instruction. Otherwise a tick is one nanosecond of
 * CLOCK_MONOTONIC.
 *
 * Ticks become CLOCK_MONOTONIC nanoseconds only when a trace is written,
 * through a piecewise-linear map of anchors (ticks, ns) taken at start, once
 * a second by a background thread, and before each write:
 *
 *     ns ^            anchor k+1
 *        |          o
 *        |     o----   ns = ns_k + (t - ticks_k) * slope_k
 *        |  o--  anchor k
 *        +------------------> ticks
 *
 * So a process traced for days follows CLOCK_MONOTONIC (and its NTP slewing)
 * instead of drifting with one calibration. When the array is full every
 * other anchor is dropped, halving the resolution of the old past.
 *
 * The clock mode is decided at the first start and kept for the process, so
 * ticks recorded in one session stay meaningful for a later write.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define MAX_ANCHORS 4096
#define ANCHOR_PERIOD_NS 1000000000ull
#define CALIBRATE_NS 2000000ull

static struct {
    pthread_mutex_t lock; /* anchors, thread state */
    pthread_cond_t wake;  /* stops the anchor thread */
    struct clock_anchor anchors[MAX_ANCHORS];
    int nanchors;
    int decided;     /* mode fixed for the process */
    double hz;       /* TSC ticks per second (calibration) */
    const char *why; /* why TSC was not used, or NULL */
    pthread_t thread;
    int thread_running;
    int thread_stop;
    uint64_t (*fake)(void); /* test hook */
} clk = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
};

uint64_t stageprof__clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t stageprof__clock_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t stageprof__clock_slow_ticks(void)
{
    uint64_t (*fake)(void) = LOAD_RELAXED(&clk.fake);
    if (fake != NULL)
        return fake();
    return stageprof__clock_mono_ns();
}

uint64_t stageprof_now_ns(void)
{
    uint64_t (*fake)(void) = LOAD_RELAXED(&clk.fake);
    return fake ? fake() : stageprof__clock_mono_ns();
}

void stageprof__clock_set_fake(uint64_t (*fn)(void))
{
    pthread_mutex_lock(&clk.lock);
    STORE_RELAXED(&clk.fake, fn);
    clk.nanchors = 0;
    clk.decided = 0;
    STORE_RELAXED(&stageprof__g.clock_mode,
                  fn ? CLOCK_MODE_FAKE : CLOCK_MODE_MONO);
    pthread_mutex_unlock(&clk.lock);
}

#if defined(__x86_64__)
static uint64_t rdtsc(void)
{
    return __builtin_ia32_rdtsc();
}

/* A (ticks, ns) pair read as close together as the machine allows. */
static struct clock_anchor read_pair(void)
{
    struct clock_anchor best = {0, 0};
    uint64_t best_gap = UINT64_MAX;
    for (int i = 0; i < 5; i++) {
        uint64_t t0 = rdtsc();
        uint64_t ns = stageprof__clock_mono_ns();
        uint64_t t1 = rdtsc();
        if (t1 - t0 < best_gap) {
            best_gap = t1 - t0;
            best.ticks = t0 + (t1 - t0) / 2;
            best.ns = ns;
        }
    }
    return best;
}
#endif

/*
 * Whether the TSC may be trusted, from the text of /proc/cpuinfo and the
 * name of the current clocksource. Exposed for tests.
 */
int stageprof__clock_tsc_trusted(const char *cpuinfo, const char *clocksource,
                                 const char **why)
{
    const char *flags = cpuinfo ? strstr(cpuinfo, "\nflags") : NULL;
    if (flags == NULL && cpuinfo && strncmp(cpuinfo, "flags", 5) == 0)
        flags = cpuinfo;
    if (flags == NULL) {
        *why = "no CPU flags";
        return 0;
    }
    const char *eol = strchr(flags + 1, '\n');
    size_t n = eol ? (size_t)(eol - flags) : strlen(flags);
    char line[8192];
    if (n >= sizeof line)
        n = sizeof line - 1;
    memcpy(line, flags, n);
    line[n] = ' ';
    line[n < sizeof line - 1 ? n + 1 : n] = '\0';
    if (strstr(line, " constant_tsc ") == NULL) {
        *why = "CPU lacks constant_tsc";
        return 0;
    }
    if (strstr(line, " nonstop_tsc ") == NULL) {
        *why = "CPU lacks nonstop_tsc";
        return 0;
    }
    if (clocksource == NULL || strncmp(clocksource, "tsc", 3) != 0 ||
        (clocksource[3] != '\0' && clocksource[3] != '\n')) {
        *why = "kernel clocksource is not tsc";
        return 0;
    }
    *why = NULL;
    return 1;
}

/* Read at most @len - 1 bytes of @path; "" on failure. */
static void read_small(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return;
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static int tsc_usable(const char **why)
{
#if defined(__x86_64__)
    static char cpuinfo[16384];
    char cs[64];
    /* The first processor's block is enough: flags are uniform. */
    read_small("/proc/cpuinfo", cpuinfo, sizeof cpuinfo);
    read_small("/sys/devices/system/clocksource/clocksource0/"
               "current_clocksource",
               cs, sizeof cs);
    return stageprof__clock_tsc_trusted(cpuinfo, cs, why);
#else
    *why = "not x86-64";
    return 0;
#endif
}

static void add_anchor_locked(struct clock_anchor a)
{
    if (clk.nanchors > 0 && a.ticks <= clk.anchors[clk.nanchors - 1].ticks)
        return;
    if (clk.nanchors == MAX_ANCHORS) {
        /* Keep the first and every other one after it. */
        int j = 1;
        for (int i = 2; i < MAX_ANCHORS; i += 2)
            clk.anchors[j++] = clk.anchors[i];
        clk.nanchors = j;
    }
    clk.anchors[clk.nanchors++] = a;
}

void stageprof__clock_anchor(void)
{
#if defined(__x86_64__)
    if (LOAD_RELAXED(&stageprof__g.clock_mode) != CLOCK_MODE_TSC)
        return;
    struct clock_anchor a = read_pair();
    pthread_mutex_lock(&clk.lock);
    add_anchor_locked(a);
    pthread_mutex_unlock(&clk.lock);
#endif
}

static void *anchor_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&clk.lock);
    while (!clk.thread_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&clk.wake, &clk.lock, &until);
        if (clk.thread_stop)
            break;
        pthread_mutex_unlock(&clk.lock);
        stageprof__clock_anchor();
        pthread_mutex_lock(&clk.lock);
    }
    pthread_mutex_unlock(&clk.lock);
    return NULL;
}

#if defined(__x86_64__)
/* Two anchors CALIBRATE_NS apart give the first slope. */
static double calibrate(void)
{
    struct clock_anchor a = read_pair(), b;
    do {
        b = read_pair();
    } while (b.ns - a.ns < CALIBRATE_NS);
    pthread_mutex_lock(&clk.lock);
    add_anchor_locked(a);
    add_anchor_locked(b);
    pthread_mutex_unlock(&clk.lock);
    return (double)(b.ticks - a.ticks) * 1e9 / (double)(b.ns - a.ns);
}
#endif

int stageprof__clock_open(int want, const char **why)
{
    *why = NULL;
    if (LOAD_RELAXED(&clk.fake) != NULL)
        return 0;
    if (!clk.decided) {
        int use_tsc = 0;
        if (want != STAGEPROF_CLOCK_MONOTONIC)
            use_tsc = tsc_usable(&clk.why);
        else
            clk.why = "CLOCK_MONOTONIC requested";
#if defined(__x86_64__)
        if (use_tsc) {
            clk.hz = calibrate();
            if (clk.hz < 1e8 || clk.hz > 1e11) {
                clk.why = "TSC calibration out of range";
                use_tsc = 0;
                clk.nanchors = 0;
            }
        }
#endif
        STORE_RELAXED(&stageprof__g.clock_mode,
                      use_tsc ? CLOCK_MODE_TSC : CLOCK_MODE_MONO);
        clk.decided = 1;
    }
    *why = clk.why;
    if (LOAD_RELAXED(&stageprof__g.clock_mode) != CLOCK_MODE_TSC)
        return 0;
    stageprof__clock_anchor();
    pthread_mutex_lock(&clk.lock);
    int rc = 0;
    if (!clk.thread_running) {
        clk.thread_stop = 0;
        if (pthread_create(&clk.thread, NULL, anchor_thread, NULL) == 0)
            clk.thread_running = 1;
        else
            rc = STAGEPROF_ETHREAD;
    }
    pthread_mutex_unlock(&clk.lock);
    return rc;
}

void stageprof__clock_close(void)
{
    pthread_mutex_lock(&clk.lock);
    int running = clk.thread_running;
    clk.thread_stop = 1;
    pthread_cond_broadcast(&clk.wake);
    pthread_mutex_unlock(&clk.lock);
    if (running)
        pthread_join(clk.thread, NULL);
    pthread_mutex_lock(&clk.lock);
    clk.thread_running = 0;
    pthread_mutex_unlock(&clk.lock);
}

/* Fixed-point slope of the segment from @a to @b, ns per tick << 32. */
static uint64_t slope(const struct clock_anchor *a,
                      const struct clock_anchor *b)
{
    return (uint64_t)(((unsigned __int128)(b->ns - a->ns) << 32) /
                      (b->ticks - a->ticks));
}

void stageprof__clock_map_open(struct clock_map *m)
{
    memset(m, 0, sizeof *m);
    m->mode = LOAD_RELAXED(&stageprof__g.clock_mode);
    if (m->mode != CLOCK_MODE_TSC)
        return;
    stageprof__clock_anchor();
    pthread_mutex_lock(&clk.lock);
    m->n = clk.nanchors;
    m->a = stageprof__malloc(sizeof *m->a * (size_t)(m->n ? m->n : 1));
    if (m->a != NULL)
        memcpy(m->a, clk.anchors, sizeof *m->a * (size_t)m->n);
    else
        m->n = 0;
    m->default_mult = (uint64_t)(1e9 / clk.hz * 4294967296.0);
    pthread_mutex_unlock(&clk.lock);
    m->seg = -1;
}

void stageprof__clock_map_close(struct clock_map *m)
{
    stageprof__free(m->a);
    m->a = NULL;
}

/* Select the segment for @t: the last anchor at or before it. */
static void map_seek(struct clock_map *m, uint64_t t)
{
    int lo = 0, hi = m->n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (m->a[mid].ticks <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    m->seg = lo;
    m->lo = m->a[lo].ticks;
    m->hi = lo + 1 < m->n ? m->a[lo + 1].ticks : UINT64_MAX;
    m->base_ns = m->a[lo].ns;
    if (lo + 1 < m->n)
        m->mult = slope(&m->a[lo], &m->a[lo + 1]);
    else if (lo > 0) /* past the last anchor: the last slope goes on */
        m->mult = slope(&m->a[lo - 1], &m->a[lo]);
    else
        m->mult = m->default_mult;
}

uint64_t stageprof__clock_map_ns(struct clock_map *m, uint64_t t)
{
    if (m->mode != CLOCK_MODE_TSC)
        return t;
    if (m->n == 0)
        return 0;
    if (t < m->a[0].ticks) {
        uint64_t back = (uint64_t)(((unsigned __int128)(m->a[0].ticks - t) *
                                    m->default_mult) >>
                                   32);
        return m->a[0].ns > back ? m->a[0].ns - back : 0;
    }
    if (m->seg < 0 || t < m->lo || t >= m->hi)
        map_seek(m, t);
    return m->base_ns +
           (uint64_t)(((unsigned __int128)(t - m->lo) * m->mult) >> 32);
}

uint64_t stageprof__clock_to_ns(uint64_t ticks)
{
    struct clock_map m;
    stageprof__clock_map_open(&m);
    uint64_t ns = stageprof__clock_map_ns(&m, ticks);
    stageprof__clock_map_close(&m);
    return ns;
}

const char *stageprof__clock_name(void)
{
    switch (LOAD_RELAXED(&stageprof__g.clock_mode)) {
    case CLOCK_MODE_TSC:
        return "tsc";
    case CLOCK_MODE_FAKE:
        return "fake";
    default:
        return "monotonic";
    }
}

double stageprof__clock_tsc_hz(void)
{
    return LOAD_RELAXED(&stageprof__g.clock_mode) == CLOCK_MODE_TSC ? clk.hz
                                                                    : 0.0;
}

uint64_t stageprof__clock_ns_per_tick(void)
{
    double hz = stageprof__clock_tsc_hz();
    return hz > 0 ? (uint64_t)(1e9 / hz * 4294967296.0) : 1ull << 32;
}

int stageprof__clock_anchor_count(void)
{
    pthread_mutex_lock(&clk.lock);
    int n = clk.nanchors;
    pthread_mutex_unlock(&clk.lock);
    return n;
}

const char *stageprof__clock_why(void)
{
    return clk.why;
}

void stageprof__clock_fork(int phase)
{
    if (phase == 0) {
        pthread_mutex_lock(&clk.lock);
    } else if (phase == 1) {
        pthread_mutex_unlock(&clk.lock);
    } else {
        /* The anchor thread does not exist in the child; anchors are
         * still taken before every write. */
        pthread_mutex_init(&clk.lock, NULL);
        pthread_cond_init(&clk.wake, NULL);
        clk.thread_running = 0;
    }
}

/*
 * stageprof__clock_to_ns_async - stageprof__clock_to_ns() for the crash
 * handler: reads the anchors in place, with no lock and no allocation (the
 * handler may have interrupted a holder of clk.lock). A racing update of
 * the anchors can at worst pick a neighbouring segment; a segment that
 * looks wrong (not increasing) falls back to the calibrated frequency.
 */
__attribute__((no_sanitize("thread"))) uint64_t
stageprof__clock_to_ns_async(uint64_t t)
{
    if (LOAD_RELAXED(&stageprof__g.clock_mode) != CLOCK_MODE_TSC)
        return t;
    int n = LOAD_RELAXED(&clk.nanchors);
    if (n <= 0 || n > MAX_ANCHORS || clk.hz <= 0)
        return 0;
    uint64_t def = (uint64_t)(1e9 / clk.hz * 4294967296.0);
    const struct clock_anchor *a = clk.anchors;
    if (t < a[0].ticks) {
        uint64_t back =
            (uint64_t)(((unsigned __int128)(a[0].ticks - t) * def) >> 32);
        return a[0].ns > back ? a[0].ns - back : 0;
    }
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (a[mid].ticks <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    /* The segment's slope; past the last anchor the last slope goes on. */
    const struct clock_anchor *p = NULL;
    if (lo + 1 < n)
        p = &a[lo];
    else if (lo > 0)
        p = &a[lo - 1];
    uint64_t mult = def;
    if (p != NULL && p[1].ticks > p[0].ticks && p[1].ns >= p[0].ns)
        mult = slope(&p[0], &p[1]);
    return a[lo].ns +
           (uint64_t)(((unsigned __int128)(t - a[lo].ticks) * mult) >> 32);
}
