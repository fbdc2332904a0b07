/*
 * sampler.c - the resource sampler: process and system figures from /proc,
 * as counter tracks in the trace and as gauges and counters in /metrics.
 *
 *   stageprof__sampler_start(hz)
 *        |
 *   sampler thread ("stageprof-sampl"):
 *        lock; sample: getrusage and two /proc files, rates from the
 *              previous sample; once a second also thread CPU by name,
 *              thread count, pressure, I/O totals; publish into S; unlock
 *        record counters into the trace (tracing only), outside the lock
 *        lock; wait on `wake` until the next absolute deadline; ...
 *        |
 *   stageprof__sampler_stop(): quit = 1, signal `wake`, join
 *   stageprof__sampler_render(): process_* read now, plus a copy of S
 *
 * Deadlines are absolute CLOCK_MONOTONIC times (the condition variable is
 * made on that clock), so a sample's own cost does not stretch the period,
 * and a late thread skips the ticks it missed instead of sampling in a
 * burst. The wait is a condition wait, not clock_nanosleep, so that a stop
 * wakes the thread at once even at 1 Hz.
 *
 * No stdio and no allocation while sampling: every file is read with
 * pread() into a buffer on the stack, directories with getdents64. The
 * files read every sample stay open (O_CLOEXEC) while the sampler is in
 * use, so a sample costs reads, not path lookups; stop closes them. A file
 * that cannot be opened (no PSI in this kernel, /proc/<pid>/io denied) is
 * not tried again until the next stop, and its figures are left out.
 *
 * What a sample costs is mostly the kernel's, and at 10 Hz every read
 * after a 100 ms sleep finds its code and data cold: each /proc file costs
 * 15-35 us then, against 0.5-2.5 us back to back. So a sample reads as few
 * files as the figures allow:
 *
 *   every sample   getrusage(RUSAGE_SELF): process CPU, page faults,
 *                  context switches, storage bytes read and written;
 *                  /proc/self/statm: RSS; the first line of /proc/stat
 *   once a second  the thread walk (which also yields the thread count,
 *                  else /proc/self/stat), the three pressure files and
 *                  /proc/self/io (the byte totals for /metrics)
 *
 * The once-a-second figures change slowly, are averages already (the
 * kernel updates avg10 every 2 s) or are counters only /metrics shows, so
 * reading them ten times a second showed nothing more; between reads
 * their latest values are kept for /metrics, and the trace gets a counter
 * only when they were read (a counter track holds its value until the
 * next event). The storage byte rates the trace shows every sample come
 * from getrusage, whose block counts are the io file's read_bytes and
 * write_bytes (see read_rusage()).
 *
 * Thread CPU by name: the thread lists /proc/self/task and reads each
 * thread's stat at most once a second (SAMPLER_WALK_NS), whatever the
 * rate: a read per thread is most of a sample's cost when there are many
 * threads, and these totals only feed /metrics. The CPU time a thread used
 * since the previous sample is added to its name's total, so the totals only
 * grow (Prometheus counters) although threads come and go. Per-thread
 * bookkeeping sits in two hash tables of tids (previous sample, this sample)
 * that swap every sample; slots carry a generation instead of being cleared. At
 * most SAMPLER_MAX_TIDS live threads are tracked (the CPU of the rest goes
 * unattributed until they are) and SAMPLER_MAX_NAMES names; later names
 * add to "other". Per-thread CPU is exported in /metrics only: a counter
 * track needs a literal name, and thread names are known at run time.
 *
 * Locks: `ctl` orders start and stop. `lock` guards the rest of S and is
 * held through the reads of a sample (they take no other lock), never
 * while recording counters, which may need the library's own locks. The
 * fork prepare handler takes `lock` only, so a fork waits at most for one
 * sample's reads; the child, which has no sampler thread, starts with no
 * thread, closed files and zeroed figures.
 *
 * Everything lives in static storage: nothing is allocated at all.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "sampler.h"
#include "util/strbuf.h"

/* ------------------------------------------------------------------------ */
/* Parsers                                                                  */
/* ------------------------------------------------------------------------ */

static int is_sep(char c)
{
    return c == ' ' || c == '\t' || c == '\n';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static const char *skip_blank(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/*
 * An unsigned decimal at *@pp; a delimiter must follow it before @end, so
 * a read cut inside a number fails rather than giving a smaller one.
 * Overflow fails too. On success *@pp points at the delimiter.
 */
static int take_u64(const char **pp, const char *end, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;
    if (p >= end || !is_digit(*p))
        return -1;
    while (p < end && is_digit(*p)) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
        p++;
    }
    if (p >= end || !is_sep(*p))
        return -1;
    *pp = p;
    *out = v;
    return 0;
}

/*
 * A decimal "12.34" at *@pp, with the same delimiter rule. Parsed by hand:
 * strtod follows the host program's LC_NUMERIC. Digits past the 18th
 * fractional one are ignored.
 */
static int take_decimal(const char **pp, const char *end, double *out)
{
    const char *p = *pp;
    uint64_t ip = 0, fp = 0;
    double scale = 1;
    if (p >= end || !is_digit(*p))
        return -1;
    while (p < end && is_digit(*p)) {
        unsigned d = (unsigned)(*p - '0');
        if (ip > (UINT64_MAX - d) / 10)
            return -1;
        ip = ip * 10 + d;
        p++;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p))
            return -1;
        for (int k = 0; p < end && is_digit(*p); p++, k++) {
            if (k < 18) {
                fp = fp * 10 + (unsigned)(*p - '0');
                scale *= 10;
            }
        }
    }
    if (p >= end || !is_sep(*p))
        return -1;
    *pp = p;
    *out = (double)ip + (double)fp / scale;
    return 0;
}

/*
 * The next complete line of [*@pp, @end): its start in *@ls and its '\n'
 * in *@le. An unterminated tail is a cut read and is not a line.
 */
static int next_line(const char **pp, const char *end, const char **ls,
                     const char **le)
{
    const char *p = *pp;
    if (p >= end)
        return 0;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL)
        return 0;
    *ls = p;
    *le = nl;
    *pp = nl + 1;
    return 1;
}

/* Just past @key when the line [@ls, @le) starts with it, else NULL. */
static const char *after_key(const char *ls, const char *le, const char *key)
{
    size_t k = strlen(key);
    if ((size_t)(le - ls) < k || memcmp(ls, key, k) != 0)
        return NULL;
    return ls + k;
}

/* "key: <number>[ kB]\n" after the key; @unit_kb: accept and apply kB. */
static int key_value(const char *p, const char *le, int unit_kb, uint64_t *out)
{
    uint64_t v;
    p = skip_blank(p, le);
    if (take_u64(&p, le + 1, &v) != 0)
        return -1;
    p = skip_blank(p, le);
    if (unit_kb && le - p >= 2 && p[0] == 'k' && p[1] == 'B') {
        if (v > UINT64_MAX / 1024)
            return -1;
        v *= 1024;
        p = skip_blank(p + 2, le);
    }
    if (p != le)
        return -1;
    *out = v;
    return 0;
}

int stageprof__sampler_parse_stat(const char *s, size_t len,
                                  struct sampler_stat *out)
{
    memset(out, 0, sizeof *out);
    if (s == NULL)
        return STAGEPROF_EINVAL;
    const char *end = s + len;
    const char *open = memchr(s, '(', len);
    if (open == NULL)
        return STAGEPROF_EINVAL;
    /* The name may hold ')' itself; the fields after it never do. */
    const char *close = NULL;
    for (const char *q = end - 1; q > open; q--) {
        if (*q == ')') {
            close = q;
            break;
        }
    }
    if (close == NULL)
        return STAGEPROF_EINVAL;
    size_t n = (size_t)(close - open - 1);
    if (n > sizeof out->comm - 1)
        n = sizeof out->comm - 1;
    memcpy(out->comm, open + 1, n);
    out->comm[n] = '\0';

    /* Fields by their 1-based number in proc(5), in increasing order. */
    static const struct {
        int field;
        size_t off;
    } want[] = {
        {10, offsetof(struct sampler_stat, minflt)},
        {12, offsetof(struct sampler_stat, majflt)},
        {14, offsetof(struct sampler_stat, utime)},
        {15, offsetof(struct sampler_stat, stime)},
        {20, offsetof(struct sampler_stat, num_threads)},
        {22, offsetof(struct sampler_stat, starttime)},
        {23, offsetof(struct sampler_stat, vsize)},
        {24, offsetof(struct sampler_stat, rss)},
    };
    const char *p = close + 1;
    size_t w = 0;
    for (int field = 3; field <= 24; field++) {
        while (p < end && is_sep(*p))
            p++;
        if (field == want[w].field) {
            uint64_t v;
            if (take_u64(&p, end, &v) != 0)
                return STAGEPROF_EINVAL;
            memcpy((char *)out + want[w].off, &v, sizeof v);
            w++;
            continue;
        }
        /* A field we do not use (state, signed numbers): any token. */
        const char *t = p;
        while (p < end && !is_sep(*p))
            p++;
        if (p == t || p >= end)
            return STAGEPROF_EINVAL;
    }
    return 0;
}

int stageprof__sampler_parse_statm(const char *s, size_t len,
                                   struct sampler_statm *out)
{
    memset(out, 0, sizeof *out);
    if (s == NULL)
        return STAGEPROF_EINVAL;
    const char *p = s, *end = s + len;
    uint64_t size, resident;
    if (take_u64(&p, end, &size) != 0)
        return STAGEPROF_EINVAL;
    p = skip_blank(p, end);
    if (take_u64(&p, end, &resident) != 0)
        return STAGEPROF_EINVAL;
    out->size = size;
    out->resident = resident;
    return 0;
}

unsigned stageprof__sampler_parse_status(const char *s, size_t len,
                                         struct sampler_status *out)
{
    memset(out, 0, sizeof *out);
    if (s == NULL)
        return 0;
    unsigned have = 0;
    const char *p = s, *end = s + len, *ls, *le, *v;
    while (next_line(&p, end, &ls, &le)) {
        if ((v = after_key(ls, le, "VmRSS:")) != NULL) {
            if (key_value(v, le, 1, &out->vm_rss_bytes) == 0)
                have |= SAMPLER_STATUS_VMRSS;
        } else if ((v = after_key(ls, le, "voluntary_ctxt_switches:"))) {
            if (key_value(v, le, 0, &out->voluntary) == 0)
                have |= SAMPLER_STATUS_VOLUNTARY;
        } else if ((v = after_key(ls, le, "nonvoluntary_ctxt_switches:"))) {
            if (key_value(v, le, 0, &out->involuntary) == 0)
                have |= SAMPLER_STATUS_INVOLUNTARY;
        } else if ((v = after_key(ls, le, "Threads:")) != NULL) {
            if (key_value(v, le, 0, &out->threads) == 0)
                have |= SAMPLER_STATUS_THREADS;
        }
    }
    return have;
}

unsigned stageprof__sampler_parse_io(const char *s, size_t len,
                                     struct sampler_io *out)
{
    static const struct {
        const char *key;
        size_t off;
        unsigned bit;
    } keys[] = {
        {"rchar:", offsetof(struct sampler_io, rchar), SAMPLER_IO_RCHAR},
        {"wchar:", offsetof(struct sampler_io, wchar), SAMPLER_IO_WCHAR},
        {"read_bytes:", offsetof(struct sampler_io, read_bytes),
         SAMPLER_IO_READ_BYTES},
        {"write_bytes:", offsetof(struct sampler_io, write_bytes),
         SAMPLER_IO_WRITE_BYTES},
    };
    memset(out, 0, sizeof *out);
    if (s == NULL)
        return 0;
    unsigned have = 0;
    const char *p = s, *end = s + len, *ls, *le;
    while (next_line(&p, end, &ls, &le)) {
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            const char *v = after_key(ls, le, keys[i].key);
            uint64_t x;
            if (v != NULL && key_value(v, le, 0, &x) == 0) {
                memcpy((char *)out + keys[i].off, &x, sizeof x);
                have |= keys[i].bit;
            }
        }
    }
    return have;
}

int stageprof__sampler_parse_cpu(const char *s, size_t len,
                                 struct sampler_cpu *out)
{
    memset(out, 0, sizeof *out);
    if (s == NULL)
        return STAGEPROF_EINVAL;
    const char *p = s, *ls, *le;
    if (!next_line(&p, s + len, &ls, &le))
        return STAGEPROF_EINVAL;
    /* "cpu" then blanks: the aggregate line, not "cpu0". */
    if (le - ls < 4 || memcmp(ls, "cpu", 3) != 0 || !is_sep(ls[3]))
        return STAGEPROF_EINVAL;
    uint64_t *f[] = {&out->user,   &out->nice, &out->system,  &out->idle,
                     &out->iowait, &out->irq,  &out->softirq, &out->steal};
    const char *q = ls + 3;
    int got = 0;
    for (; got < 8; got++) {
        q = skip_blank(q, le);
        if (q >= le)
            break;
        if (take_u64(&q, le + 1, f[got]) != 0) {
            memset(out, 0, sizeof *out);
            return STAGEPROF_EINVAL;
        }
    }
    if (got < 4) {
        memset(out, 0, sizeof *out);
        return STAGEPROF_EINVAL;
    }
    return 0;
}

int stageprof__sampler_parse_btime(const char *s, size_t len, uint64_t *out)
{
    if (s == NULL)
        return STAGEPROF_EINVAL;
    const char *p = s, *end = s + len, *ls, *le, *v;
    while (next_line(&p, end, &ls, &le)) {
        if ((v = after_key(ls, le, "btime ")) != NULL &&
            key_value(v, le, 0, out) == 0)
            return 0;
    }
    return STAGEPROF_EINVAL;
}

unsigned stageprof__sampler_parse_pressure(const char *s, size_t len,
                                           struct sampler_psi *out)
{
    memset(out, 0, sizeof *out);
    if (s == NULL)
        return 0;
    unsigned have = 0;
    const char *p = s, *end = s + len, *ls, *le;
    while (next_line(&p, end, &ls, &le)) {
        unsigned bit;
        double *avg;
        uint64_t *total;
        const char *q;
        if ((q = after_key(ls, le, "some ")) != NULL) {
            bit = SAMPLER_PSI_SOME;
            avg = &out->some_avg10;
            total = &out->some_total;
        } else if ((q = after_key(ls, le, "full ")) != NULL) {
            bit = SAMPLER_PSI_FULL;
            avg = &out->full_avg10;
            total = &out->full_total;
        } else {
            continue;
        }
        double a = 0;
        uint64_t t = 0;
        int got_a = 0, got_t = 0, bad = 0;
        while (!bad) {
            q = skip_blank(q, le);
            if (q >= le)
                break;
            const char *v;
            if ((v = after_key(q, le, "avg10=")) != NULL) {
                bad = take_decimal(&v, le + 1, &a) != 0;
                got_a = 1;
            } else if ((v = after_key(q, le, "total=")) != NULL) {
                bad = take_u64(&v, le + 1, &t) != 0;
                got_t = 1;
            } else {
                v = q;
                while (v < le && !is_sep(*v))
                    v++;
            }
            q = v;
        }
        if (!bad && got_a && got_t) {
            *avg = a;
            *total = t;
            have |= bit;
        }
    }
    return have;
}

/* Bytes in the UTF-8 sequence at @p (NUL-terminated), 0 when invalid. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    unsigned lo = 0x80, hi = 0xBF;
    size_t n;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : lo; /* overlong */
        hi = c == 0xED ? 0x9F : hi; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : lo;
        hi = c == 0xF4 ? 0x8F : hi; /* beyond U+10FFFF */
    } else {
        return 0;
    }
    /* A NUL fails the range test, so nothing past it is read. */
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return n;
}

void stageprof__sampler_clean_name(const char *in, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0;
    while (*p != '\0' && o + 1 < cap) {
        size_t n = (*p < 0x20 || *p == 0x7F) ? 0 : utf8_len(p);
        if (n == 0) {
            out[o++] = '?';
            p++;
            continue;
        }
        if (o + n >= cap)
            break; /* never cut a sequence */
        memcpy(out + o, p, n);
        o += n;
        p += n;
    }
    out[o] = '\0';
}

/* ------------------------------------------------------------------------ */
/* State                                                                    */
/* ------------------------------------------------------------------------ */

enum {
    PF_STAT,
    PF_STATM,
    PF_IO,
    PF_SYSSTAT,
    PF_PSI_CPU,
    PF_PSI_IO,
    PF_PSI_MEM,
    PF_TASKS,
    PF_COUNT
};

/* A /proc file read every sample, kept open between samples. */
struct pfile {
    const char *path;
    int flags; /* extra open flags */
    int fd;    /* -1: not open */
    int gone;  /* could not be opened: not tried again until stop */
};

/*
 * The figures of one sample. The group read once a second is carried over
 * from the previous sample when not read again; slow_fresh tells which.
 */
struct sample {
    uint64_t mono_ns;        /* when taken */
    int have_ru;             /* getrusage() answered: cpu_ns to write_bytes */
    uint64_t cpu_ns;         /* process CPU time, user + system */
    uint64_t minflt, majflt; /* page faults */
    uint64_t voluntary, involuntary;  /* context switches, all threads */
    uint64_t read_bytes, write_bytes; /* storage, in 512-byte steps */
    int have_rss;
    uint64_t rss_pages; /* resident set, from statm */
    int have_sys;
    struct sampler_cpu sys;
    /* once a second */
    int slow_fresh; /* read by this sample, not carried over */
    int have_threads;
    uint64_t threads;     /* threads in the process */
    unsigned psi_bits[3]; /* cpu, io, memory: SAMPLER_PSI_* */
    struct sampler_psi psi[3];
    unsigned io_bits; /* SAMPLER_IO_*; also gates the byte rates */
    struct sampler_io io;
};

/* Rates between two samples; a have_ flag per group. */
struct rates {
    int have_proc;
    double proc_cores; /* process CPU, in cores */
    int have_sys;
    double sys_busy, sys_iowait; /* fractions of all CPU time */
    int have_io;
    double read_bps, write_bps; /* storage bytes per second */
    int have_ctx;
    double voluntary_ps, involuntary_ps;
    int have_faults;
    double minor_ps, major_ps;
};

/* CPU time of the threads of one name. */
struct tname {
    char name[SAMPLER_COMM_MAX]; /* cleaned: valid UTF-8, no controls */
    uint64_t ticks;              /* utime + stime, summed over time */
    int used;
};

/* One thread in a tid table; valid when gen is the table's generation. */
struct tslot {
    int32_t tid;
    uint32_t gen;
    uint64_t ticks; /* its utime + stime at that sample */
    uint32_t name;  /* index into S.names */
};

#define TID_SLOTS (2 * SAMPLER_MAX_TIDS) /* power of two, half full at most */
#define OTHER_NAME SAMPLER_MAX_NAMES     /* index of "other" */

static struct {
    pthread_mutex_t ctl;  /* start and stop, one at a time */
    pthread_mutex_t lock; /* the rest; held through a sample's reads */
    pthread_cond_t wake;  /* on CLOCK_MONOTONIC; stop -> thread */
    int running;          /* a thread was started in `owner` */
    int quit;             /* the thread ends */
    pid_t owner;          /* process that created the thread */
    pthread_t thread;
    uint64_t period_ns;

    /* sampling state */
    struct pfile pf[PF_COUNT];
    struct sample prev; /* for rates */
    int have_prev;
    struct tslot tids[2][TID_SLOTS];
    uint32_t tab_gen[2];   /* generation each table was filled with */
    int cur_tab;           /* table of the latest sample */
    uint32_t gen;          /* last generation handed out */
    uint64_t untracked;    /* thread readings left out: table full */
    uint64_t last_walk_ns; /* when the slow group was last read; 0 never */

    /* published, for render */
    uint64_t samples;
    struct sample last;
    struct rates rates;
    struct tname names[SAMPLER_MAX_NAMES + 1];
    int nnames;
} S = {
    .ctl = PTHREAD_MUTEX_INITIALIZER,
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .pf =
        {
            [PF_STAT] = {"/proc/self/stat", 0, -1, 0},
            [PF_STATM] = {"/proc/self/statm", 0, -1, 0},
            [PF_IO] = {"/proc/self/io", 0, -1, 0},
            [PF_SYSSTAT] = {"/proc/stat", 0, -1, 0},
            [PF_PSI_CPU] = {"/proc/pressure/cpu", 0, -1, 0},
            [PF_PSI_IO] = {"/proc/pressure/io", 0, -1, 0},
            [PF_PSI_MEM] = {"/proc/pressure/memory", 0, -1, 0},
            [PF_TASKS] = {"/proc/self/task", O_DIRECTORY, -1, 0},
        },
};

static long clk_tck = 100; /* set once in init_once */
static long page_size = 4096;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Close every kept file (lock held, or alone in a fork child). */
static void close_files(void)
{
    for (int i = 0; i < PF_COUNT; i++) {
        if (S.pf[i].fd >= 0)
            close(S.pf[i].fd);
        S.pf[i].fd = -1;
        S.pf[i].gone = 0;
    }
}

/* Forget every figure and thread total (a fork child: another process). */
static void reset_figures(void)
{
    S.have_prev = 0;
    S.samples = 0;
    S.untracked = 0;
    S.last_walk_ns = 0;
    memset(&S.last, 0, sizeof S.last);
    memset(&S.rates, 0, sizeof S.rates);
    memset(S.names, 0, sizeof S.names);
    S.nnames = 0;
    /* New generations make every tid slot stale without touching them. */
    S.tab_gen[0] = ++S.gen;
    S.tab_gen[1] = ++S.gen;
}

static void init_cond(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&S.wake, &ca);
    pthread_condattr_destroy(&ca);
}

static void on_fork_prepare(void)
{
    pthread_mutex_lock(&S.lock);
}

static void on_fork_parent(void)
{
    pthread_mutex_unlock(&S.lock);
}

/*
 * The child has no sampler thread. Its copies of the kept descriptors are
 * closed here, before the child's own code can reuse their numbers.
 */
static void on_fork_child(void)
{
    pthread_mutex_init(&S.ctl, NULL);
    pthread_mutex_init(&S.lock, NULL);
    init_cond();
    close_files();
    S.running = 0;
    S.quit = 0;
    reset_figures();
}

static void init_fn(void)
{
    long t = sysconf(_SC_CLK_TCK);
    if (t > 0)
        clk_tck = t;
    long p = sysconf(_SC_PAGESIZE);
    if (p > 0)
        page_size = p;
    init_cond();
    S.tab_gen[0] = ++S.gen;
    S.tab_gen[1] = ++S.gen;
    (void)pthread_atfork(on_fork_prepare, on_fork_parent, on_fork_child);
}

static void init_once(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    (void)pthread_once(&once, init_fn);
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */
/* ------------------------------------------------------------------------ */

/* Open kept file @i when needed; its descriptor or -1 (lock held). */
static int pfile_fd(int i)
{
    struct pfile *f = &S.pf[i];
    if (f->fd >= 0 || f->gone)
        return f->fd;
    f->fd = open(f->path, O_RDONLY | O_CLOEXEC | f->flags);
    if (f->fd < 0 && errno != EINTR && errno != EMFILE && errno != ENFILE)
        f->gone = 1; /* absent or denied: it stays so */
    return f->fd;
}

/*
 * Read kept file @i from its start into @buf (NUL-terminated); the bytes
 * read, or -1. /proc files are generated anew by a read at offset 0.
 */
static ssize_t pfile_read(int i, char *buf, size_t cap)
{
    int fd = pfile_fd(i);
    if (fd < 0)
        return -1;
    ssize_t n = pread(fd, buf, cap - 1, 0);
    if (n < 0 && errno == ESPIPE && lseek(fd, 0, SEEK_SET) == 0)
        n = read(fd, buf, cap - 1);
    if (n < 0) {
        int denied = errno == EACCES || errno == EPERM;
        close(fd);
        S.pf[i].fd = -1;
        S.pf[i].gone = denied;
        return -1;
    }
    buf[n] = '\0';
    return n;
}

/* Read a whole small file at @path once (open, read, close); as above. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t got = 0;
    while (got < cap - 1) {
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    return (ssize_t)got;
}

/* The kernel's directory record (getdents64). */
struct dent64 {
    uint64_t ino;
    int64_t off;
    unsigned short reclen;
    unsigned char type;
    char name[];
};

/* A directory entry name as a positive decimal, or -1. */
static long dent_number(const char *s)
{
    long v = 0;
    if (!is_digit(*s))
        return -1;
    for (; *s != '\0'; s++) {
        if (!is_digit(*s) || v > (0x7FFFFFFFL - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

/* Decimal text of @v followed by @suffix into @out (holds 32 bytes). */
static void u_path(char *out, unsigned long v, const char *suffix)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    int o = 0;
    while (n > 0)
        out[o++] = tmp[--n];
    size_t k = strlen(suffix);
    memcpy(out + o, suffix, k + 1);
}

/* ------------------------------------------------------------------------ */
/* Thread CPU by name                                                       */
/* ------------------------------------------------------------------------ */

static uint32_t tid_hash(int32_t tid)
{
    return ((uint32_t)tid * 2654435761u) & (TID_SLOTS - 1);
}

/* @tid in table @t, or NULL. */
static struct tslot *tid_find(int t, int32_t tid)
{
    uint32_t g = S.tab_gen[t];
    for (uint32_t h = tid_hash(tid), k = 0; k < TID_SLOTS; k++) {
        struct tslot *s = &S.tids[t][(h + k) & (TID_SLOTS - 1)];
        if (s->gen != g)
            return NULL;
        if (s->tid == tid)
            return s;
    }
    return NULL;
}

/* A fresh slot for @tid in table @t (it is not there yet). */
static struct tslot *tid_add(int t, int32_t tid)
{
    uint32_t g = S.tab_gen[t];
    for (uint32_t h = tid_hash(tid), k = 0; k < TID_SLOTS; k++) {
        struct tslot *s = &S.tids[t][(h + k) & (TID_SLOTS - 1)];
        if (s->gen != g) {
            s->gen = g;
            s->tid = tid;
            return s;
        }
    }
    return NULL;
}

/* Index of the total for cleaned name @name, added when new. */
static uint32_t name_slot(const char *name)
{
    for (int i = 0; i < S.nnames; i++)
        if (strcmp(S.names[i].name, name) == 0)
            return (uint32_t)i;
    if (S.nnames < SAMPLER_MAX_NAMES && strcmp(name, "other") != 0) {
        struct tname *n = &S.names[S.nnames];
        size_t k = strnlen(name, sizeof n->name - 1);
        memcpy(n->name, name, k);
        n->name[k] = '\0';
        n->used = 1;
        return (uint32_t)S.nnames++;
    }
    S.names[OTHER_NAME].used = 1;
    return OTHER_NAME;
}

/*
 * One thread's reading into table @next, its CPU since @prev to its name.
 * Every thread's stat holds the process's thread count: into *@nthreads.
 */
static void thread_one(int taskfd, int32_t tid, int prev, int next,
                       unsigned *ntids, uint64_t *nthreads)
{
    char path[32], buf[1024];
    u_path(path, (unsigned long)tid, "/stat");
    int fd = openat(taskfd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return; /* it exited meanwhile */
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    struct sampler_stat st;
    if (n <= 0 || stageprof__sampler_parse_stat(buf, (size_t)n, &st) != 0)
        return;
    *nthreads = st.num_threads;
    uint64_t ticks = st.utime + st.stime;
    struct tslot *old = tid_find(prev, tid);
    /* Leave out what cannot be stored: counting it now and again as a
     * new thread next time would count it twice. */
    if (*ntids >= SAMPLER_MAX_TIDS) {
        S.untracked++;
        return;
    }
    struct tslot *cur = tid_add(next, tid);
    if (cur == NULL) {
        S.untracked++;
        return;
    }
    (*ntids)++;
    char clean[SAMPLER_COMM_MAX];
    stageprof__sampler_clean_name(st.comm, clean, sizeof clean);
    uint32_t idx;
    if (old != NULL && strcmp(S.names[old->name].name, clean) == 0)
        idx = old->name;
    else
        idx = name_slot(clean);
    /* A tid whose time went back is a new thread with a reused tid. */
    uint64_t base = old != NULL && ticks >= old->ticks ? old->ticks : 0;
    cur->ticks = ticks;
    cur->name = idx;
    S.names[idx].ticks += ticks - base;
}

/*
 * Walk /proc/self/task (lock held). Returns the process's thread count as
 * the last thread read gave it (the same figure as /proc/self/stat's, read
 * by the kernel from the same place), or 0 when no thread could be read.
 */
static uint64_t sample_threads(void)
{
    int fd = pfile_fd(PF_TASKS);
    if (fd < 0)
        return 0;
    if (lseek(fd, 0, SEEK_SET) != 0) {
        close(fd);
        S.pf[PF_TASKS].fd = -1;
        return 0;
    }
    int prev = S.cur_tab, next = prev ^ 1;
    uint32_t g = ++S.gen;
    if (g == 0)
        g = ++S.gen; /* wrapped: 0 stays "never filled" */
    S.tab_gen[next] = g;
    unsigned ntids = 0;
    uint64_t nthreads = 0;
    /* 8-byte aligned: the kernel's records are. */
    _Alignas(8) char dbuf[4096];
    for (;;) {
        long k = syscall(SYS_getdents64, fd, dbuf, sizeof dbuf);
        if (k <= 0)
            break;
        for (long off = 0; off < k;) {
            const struct dent64 *d = (const struct dent64 *)(dbuf + off);
            if (d->reclen == 0)
                break;
            off += d->reclen;
            long tid = dent_number(d->name);
            if (tid > 0)
                thread_one(fd, (int32_t)tid, prev, next, &ntids, &nthreads);
        }
    }
    S.cur_tab = next;
    return nthreads;
}

/* ------------------------------------------------------------------------ */
/* Sampling                                                                 */
/* ------------------------------------------------------------------------ */

/* @b - @a into *@d when the counter did not go back. */
static int delta(uint64_t a, uint64_t b, double *d)
{
    if (b < a)
        return 0;
    *d = (double)(b - a);
    return 1;
}

static double clamp01(double v)
{
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

static uint64_t cpu_total(const struct sampler_cpu *c)
{
    return c->user + c->nice + c->system + c->idle + c->iowait + c->irq +
           c->softirq + c->steal;
}

static void compute_rates(const struct sample *a, const struct sample *b,
                          struct rates *r)
{
    memset(r, 0, sizeof *r);
    if (b->mono_ns <= a->mono_ns)
        return;
    double dt = (double)(b->mono_ns - a->mono_ns) / 1e9, x, y;
    int ru = a->have_ru && b->have_ru;
    if (ru && delta(a->cpu_ns, b->cpu_ns, &x)) {
        r->have_proc = 1;
        r->proc_cores = x / 1e9 / dt;
    }
    if (a->have_sys && b->have_sys) {
        uint64_t ta = cpu_total(&a->sys), tb = cpu_total(&b->sys);
        /* CPUs going offline can move single fields back: clamp. */
        if (tb > ta) {
            double dtot = (double)(tb - ta);
            double idle = (double)b->sys.idle - (double)a->sys.idle;
            double iow = (double)b->sys.iowait - (double)a->sys.iowait;
            r->have_sys = 1;
            r->sys_busy = clamp01(1 - (idle + iow) / dtot);
            r->sys_iowait = clamp01(iow / dtot);
        }
    }
    /* Only while the io file shows the kernel keeps these counts: without
     * I/O accounting getrusage reports 0, not "unknown". */
    unsigned io = SAMPLER_IO_READ_BYTES | SAMPLER_IO_WRITE_BYTES;
    if (ru && (a->io_bits & io) == io && (b->io_bits & io) == io &&
        delta(a->read_bytes, b->read_bytes, &x) &&
        delta(a->write_bytes, b->write_bytes, &y)) {
        r->have_io = 1;
        r->read_bps = x / dt;
        r->write_bps = y / dt;
    }
    if (ru && delta(a->voluntary, b->voluntary, &x) &&
        delta(a->involuntary, b->involuntary, &y)) {
        r->have_ctx = 1;
        r->voluntary_ps = x / dt;
        r->involuntary_ps = y / dt;
    }
    if (ru && delta(a->minflt, b->minflt, &x) &&
        delta(a->majflt, b->majflt, &y)) {
        r->have_faults = 1;
        r->minor_ps = x / dt;
        r->major_ps = y / dt;
    }
}

/*
 * Process CPU time, page faults and context switches from one system call
 * instead of three /proc files. Against what those files gave:
 * - CPU time: user + system as the kernel splits them; their sum is the
 *   runtime CLOCK_PROCESS_CPUTIME_ID reads, cut to microseconds (1e-5 of a
 *   core over 100 ms).
 * - page faults: the sums /proc/self/stat prints (every thread, exited
 *   ones included, children not).
 * - context switches: every thread's, exited ones included, as the metric's
 *   help says. /proc/self/status gave the main thread's only, so the
 *   figure is larger now, by the other threads' switches, the sampler's
 *   own one voluntary switch per sample among them.
 * - storage bytes: ru_inblock and ru_oublock are the read_bytes and
 *   write_bytes of /proc/self/io in 512-byte blocks (cancelled writes not
 *   taken off either), each thread's count rounded down before the sum.
 *   The kernel counts whole pages and sectors, so nothing is lost in
 *   practice; at worst a rate is off by under 512 bytes per thread.
 */
static void read_rusage(struct sample *cur)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return;
    uint64_t sec = (uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec;
    uint64_t usec =
        (uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec;
    cur->cpu_ns = sec * 1000000000ull + usec * 1000ull;
    cur->minflt = (uint64_t)ru.ru_minflt;
    cur->majflt = (uint64_t)ru.ru_majflt;
    cur->voluntary = (uint64_t)ru.ru_nvcsw;
    cur->involuntary = (uint64_t)ru.ru_nivcsw;
    cur->read_bytes = (uint64_t)ru.ru_inblock * 512;
    cur->write_bytes = (uint64_t)ru.ru_oublock * 512;
    cur->have_ru = 1;
}

/*
 * The once-a-second group (lock held): the thread walk, the thread count
 * (from the walk, else from /proc/self/stat), the pressure files and the
 * io file.
 */
static void read_slow(struct sample *cur)
{
    char buf[1024];
    ssize_t n;
    uint64_t threads = sample_threads();
    if (threads == 0 && (n = pfile_read(PF_STAT, buf, sizeof buf)) > 0) {
        struct sampler_stat st;
        if (stageprof__sampler_parse_stat(buf, (size_t)n, &st) == 0)
            threads = st.num_threads;
    }
    cur->have_threads = threads != 0;
    cur->threads = threads;
    for (int i = 0; i < 3; i++) {
        if ((n = pfile_read(PF_PSI_CPU + i, buf, sizeof buf)) > 0)
            cur->psi_bits[i] =
                stageprof__sampler_parse_pressure(buf, (size_t)n, &cur->psi[i]);
    }
    if ((n = pfile_read(PF_IO, buf, sizeof buf)) > 0)
        cur->io_bits = stageprof__sampler_parse_io(buf, (size_t)n, &cur->io);
    cur->slow_fresh = 1;
}

/*
 * Take one sample (lock held): read the figures of every sample, derive
 * rates from the previous sample, publish. With @slow, or when it never
 * was, read the once-a-second group too; else carry its latest values
 * over. Copies for the counters go to @out and @r.
 */
static void sample_locked(int slow, struct sample *out, struct rates *r)
{
    char buf[512]; /* statm, and what is read of /proc/stat */
    struct sample cur;
    memset(&cur, 0, sizeof cur);
    ssize_t n;
    /* Side by side, so the CPU rate divides by the right interval. */
    read_rusage(&cur);
    cur.mono_ns = mono_ns();
    if ((n = pfile_read(PF_STATM, buf, sizeof buf)) > 0) {
        struct sampler_statm sm;
        if (stageprof__sampler_parse_statm(buf, (size_t)n, &sm) == 0) {
            cur.have_rss = 1;
            cur.rss_pages = sm.resident; /* the same count as stat's rss */
        }
    }
    /* Only the first line matters; the kernel builds the rest anyway. */
    if ((n = pfile_read(PF_SYSSTAT, buf, sizeof buf)) > 0)
        cur.have_sys =
            stageprof__sampler_parse_cpu(buf, (size_t)n, &cur.sys) == 0;
    if (slow || S.last_walk_ns == 0) {
        read_slow(&cur);
        S.last_walk_ns = cur.mono_ns;
    } else {
        cur.have_threads = S.last.have_threads;
        cur.threads = S.last.threads;
        memcpy(cur.psi_bits, S.last.psi_bits, sizeof cur.psi_bits);
        memcpy(cur.psi, S.last.psi, sizeof cur.psi);
        cur.io_bits = S.last.io_bits;
        cur.io = S.last.io;
    }

    if (S.have_prev)
        compute_rates(&S.prev, &cur, &S.rates);
    else
        memset(&S.rates, 0, sizeof S.rates);
    S.prev = cur;
    S.have_prev = 1;
    S.last = cur;
    S.samples++;
    *out = cur;
    *r = S.rates;
}

/*
 * Record a sample's figures as counter tracks (tracing only; no lock
 * held). Pressure values stay in percent, as the kernel writes them. The
 * once-a-second figures are recorded when read, not when carried over: a
 * counter keeps its value until its next event anyway.
 */
/*
 * A counter track of the sampler, category "resource", in the trace only:
 * /metrics has the sampler's own families for these figures.
 */
#define RESOURCE_COUNTER(name, value)                                          \
    do {                                                                       \
        static stageprof_site_t site_ = STAGEPROF_SITE_INIT(name, "resource"); \
        stageprof__counter_trace(&site_, (double)(value));                     \
    } while (0)

static void record_counters(const struct sample *s, const struct rates *r)
{
    if (!stageprof_is_tracing())
        return;
    if (r->have_proc)
        RESOURCE_COUNTER("process.cpu", r->proc_cores);
    if (s->have_rss)
        RESOURCE_COUNTER("process.rss_bytes",
                         (int64_t)(s->rss_pages * (uint64_t)page_size));
    if (s->slow_fresh && s->have_threads)
        RESOURCE_COUNTER("process.threads", (int64_t)s->threads);
    if (r->have_sys) {
        RESOURCE_COUNTER("system.cpu_busy", r->sys_busy);
        RESOURCE_COUNTER("system.iowait", r->sys_iowait);
    }
    if (r->have_io) {
        RESOURCE_COUNTER("process.read_bytes_per_s", r->read_bps);
        RESOURCE_COUNTER("process.write_bytes_per_s", r->write_bps);
    }
    if (r->have_ctx) {
        RESOURCE_COUNTER("process.ctx_switches_voluntary_per_s",
                         r->voluntary_ps);
        RESOURCE_COUNTER("process.ctx_switches_involuntary_per_s",
                         r->involuntary_ps);
    }
    if (r->have_faults) {
        RESOURCE_COUNTER("process.minor_faults_per_s", r->minor_ps);
        RESOURCE_COUNTER("process.major_faults_per_s", r->major_ps);
    }
    if (!s->slow_fresh)
        return;
    if (s->psi_bits[0] & SAMPLER_PSI_SOME)
        RESOURCE_COUNTER("pressure.cpu_some_avg10", s->psi[0].some_avg10);
    if (s->psi_bits[0] & SAMPLER_PSI_FULL)
        RESOURCE_COUNTER("pressure.cpu_full_avg10", s->psi[0].full_avg10);
    if (s->psi_bits[1] & SAMPLER_PSI_SOME)
        RESOURCE_COUNTER("pressure.io_some_avg10", s->psi[1].some_avg10);
    if (s->psi_bits[1] & SAMPLER_PSI_FULL)
        RESOURCE_COUNTER("pressure.io_full_avg10", s->psi[1].full_avg10);
    if (s->psi_bits[2] & SAMPLER_PSI_SOME)
        RESOURCE_COUNTER("pressure.memory_some_avg10", s->psi[2].some_avg10);
    if (s->psi_bits[2] & SAMPLER_PSI_FULL)
        RESOURCE_COUNTER("pressure.memory_full_avg10", s->psi[2].full_avg10);
}

static void *sampler_main(void *arg)
{
    (void)arg;
    /* Its counter events show on a track of their own, named so. */
    stageprof_thread_set_name("stageprof sampler");
    pthread_mutex_lock(&S.lock);
    uint64_t next = mono_ns();
    while (!S.quit) {
        struct sample cur;
        struct rates r;
        /* Thread totals feed /metrics only and the rest of the slow
         * group changes slowly: once a second is enough, and the walk
         * costs a file read per thread. */
        int walk = S.last_walk_ns == 0 ||
                   mono_ns() - S.last_walk_ns >= SAMPLER_WALK_NS;
        sample_locked(walk, &cur, &r);
        pthread_mutex_unlock(&S.lock);
        record_counters(&cur, &r);
        pthread_mutex_lock(&S.lock);
        next += S.period_ns;
        uint64_t now = mono_ns();
        if (next <= now)
            next = now + S.period_ns; /* late: skip the missed ticks */
        struct timespec dl = {(time_t)(next / 1000000000ull),
                              (long)(next % 1000000000ull)};
        /* quit is checked under the lock before each wait: no lost wake. */
        while (!S.quit &&
               pthread_cond_timedwait(&S.wake, &S.lock, &dl) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&S.lock);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Start and stop                                                           */
/* ------------------------------------------------------------------------ */

/*
 * A thread recorded as running but made by another process: we are a
 * fork child the atfork handler did not reach. Forget it; its descriptor
 * numbers may be anybody's now, so they are dropped, not closed.
 */
static void forget_foreign_locked(void)
{
    if (!S.running || S.owner == getpid())
        return;
    S.running = 0;
    for (int i = 0; i < PF_COUNT; i++) {
        S.pf[i].fd = -1;
        S.pf[i].gone = 0;
    }
}

int stageprof__sampler_start(const struct conf *c)
{
    if (c == NULL || c->sample_hz <= 0)
        return 0;
    init_once();
    pthread_mutex_lock(&S.ctl);
    pthread_mutex_lock(&S.lock);
    forget_foreign_locked();
    if (S.running) {
        pthread_mutex_unlock(&S.lock);
        pthread_mutex_unlock(&S.ctl);
        return STAGEPROF_EALREADY;
    }
    long long hz =
        c->sample_hz > SAMPLER_MAX_HZ ? SAMPLER_MAX_HZ : c->sample_hz;
    S.period_ns = 1000000000ull / (uint64_t)hz;
    S.quit = 0;
    S.have_prev = 0;    /* rates across a pause would mislead */
    S.last_walk_ns = 0; /* the first sample reads everything */
    pthread_mutex_unlock(&S.lock);

    pthread_t th;
    int rc = stageprof__thread_create(&th, NULL, sampler_main, NULL);
    if (rc != 0) {
        pthread_mutex_unlock(&S.ctl);
        stageprof__log(STAGEPROF_LOG_WARN,
                       "cannot start the resource sampler thread (error "
                       "%d): no resource figures",
                       rc);
        return STAGEPROF_ETHREAD;
    }
    (void)pthread_setname_np(th, "stageprof-sampl");
    pthread_mutex_lock(&S.lock);
    S.thread = th;
    S.running = 1;
    S.owner = getpid();
    pthread_mutex_unlock(&S.lock);
    pthread_mutex_unlock(&S.ctl);
    return 0;
}

void stageprof__sampler_stop(void)
{
    init_once();
    pthread_mutex_lock(&S.ctl);
    pthread_mutex_lock(&S.lock);
    forget_foreign_locked();
    int join = S.running;
    pthread_t th = S.thread;
    S.quit = 1;
    pthread_cond_signal(&S.wake);
    pthread_mutex_unlock(&S.lock);
    if (join)
        pthread_join(th, NULL);
    pthread_mutex_lock(&S.lock);
    S.running = 0;
    close_files();
    pthread_mutex_unlock(&S.lock);
    pthread_mutex_unlock(&S.ctl);
}

int stageprof__sampler_sample_now(int threads)
{
    init_once();
    struct sample cur;
    struct rates r;
    pthread_mutex_lock(&S.lock);
    forget_foreign_locked();
    if (S.running) {
        pthread_mutex_unlock(&S.lock);
        return STAGEPROF_EBUSY;
    }
    sample_locked(threads, &cur, &r);
    pthread_mutex_unlock(&S.lock);
    record_counters(&cur, &r);
    return 0;
}

uint64_t stageprof__sampler_samples(void)
{
    pthread_mutex_lock(&S.lock);
    uint64_t n = S.samples;
    pthread_mutex_unlock(&S.lock);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Prometheus text                                                          */
/* ------------------------------------------------------------------------ */

/* Boot time, seconds since the epoch, from /proc/stat; 0 unknown. */
static uint64_t boot_time(void)
{
    static uint64_t cached; /* atomic; fixed once known */
    uint64_t v = LOAD_RELAXED(&cached);
    if (v != 0)
        return v;
    int fd = open("/proc/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    /* Line by line: the "intr" line before btime can be longer than the
     * buffer, and is dropped. */
    char buf[4096];
    size_t have = 0;
    int dropping = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof buf - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
        size_t start = 0;
        const char *nl;
        while ((nl = memchr(buf + start, '\n', have - start)) != NULL) {
            size_t end = (size_t)(nl - buf) + 1;
            uint64_t t;
            if (!dropping && stageprof__sampler_parse_btime(
                                 buf + start, end - start, &t) == 0) {
                v = t;
                goto done;
            }
            dropping = 0;
            start = end;
        }
        memmove(buf, buf + start, have - start);
        have -= start;
        if (have == sizeof buf) {
            have = 0;
            dropping = 1;
        }
    }
done:
    close(fd);
    if (v != 0)
        STORE_RELAXED(&cached, v);
    return v;
}

/* Open descriptors of the process, not counting the one used to count. */
static long open_fds(void)
{
    int fd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    _Alignas(8) char dbuf[4096];
    long count = 0;
    for (;;) {
        long k = syscall(SYS_getdents64, fd, dbuf, sizeof dbuf);
        if (k <= 0)
            break;
        for (long off = 0; off < k;) {
            const struct dent64 *d = (const struct dent64 *)(dbuf + off);
            if (d->reclen == 0)
                break;
            off += d->reclen;
            long n = dent_number(d->name);
            if (n >= 0 && n != fd)
                count++;
        }
    }
    close(fd);
    return count;
}

/* The process_* family, read now. */
static void render_process(struct strbuf *sb)
{
    char buf[2048];
    struct sampler_stat st;
    ssize_t n = read_small("/proc/self/stat", buf, sizeof buf);
    int have_st =
        n > 0 && stageprof__sampler_parse_stat(buf, (size_t)n, &st) == 0;
    double tck = (double)clk_tck;

    struct timespec ts;
    int have_cpu = clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0;
    if (have_cpu || have_st) {
        double cpu = have_cpu ? (double)ts.tv_sec + (double)ts.tv_nsec / 1e9
                              : (double)(st.utime + st.stime) / tck;
        stageprof__prom_family(
            sb, "process_cpu_seconds_total", "counter",
            "User and system CPU time used by the process, seconds.");
        stageprof__prom_double(sb, "process_cpu_seconds_total", NULL, cpu);
    }
    if (have_st) {
        stageprof__prom_family(sb, "process_resident_memory_bytes", "gauge",
                               "Resident set size of the process, bytes.");
        stageprof__prom_u64(sb, "process_resident_memory_bytes", NULL,
                            st.rss * (uint64_t)page_size);
        stageprof__prom_family(sb, "process_virtual_memory_bytes", "gauge",
                               "Virtual memory size of the process, bytes.");
        stageprof__prom_u64(sb, "process_virtual_memory_bytes", NULL, st.vsize);
    }
    long fds = open_fds();
    if (fds >= 0) {
        stageprof__prom_family(sb, "process_open_fds", "gauge",
                               "File descriptors the process has open.");
        stageprof__prom_u64(sb, "process_open_fds", NULL, (uint64_t)fds);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        stageprof__prom_family(sb, "process_max_fds", "gauge",
                               "Limit on open file descriptors (soft limit).");
        stageprof__prom_u64(sb, "process_max_fds", NULL, (uint64_t)rl.rlim_cur);
    }
    uint64_t bt = boot_time();
    if (have_st && bt != 0) {
        stageprof__prom_family(
            sb, "process_start_time_seconds", "gauge",
            "When the process started, seconds since the Unix epoch.");
        stageprof__prom_double(sb, "process_start_time_seconds", NULL,
                               (double)bt + (double)st.starttime / tck);
    }
    if (have_st) {
        stageprof__prom_family(sb, "process_threads", "gauge",
                               "Operating system threads in the process.");
        stageprof__prom_u64(sb, "process_threads", NULL, st.num_threads);
    }
}

/* Everything render needs from S, copied under the lock. */
struct snap {
    uint64_t samples;
    struct sample last;
    struct rates rates;
    struct tname names[SAMPLER_MAX_NAMES + 1];
    int nnames;
};

static void render_sampler(struct strbuf *sb, const struct snap *v)
{
    const struct sample *s = &v->last;
    const struct rates *r = &v->rates;
    if (r->have_proc) {
        stageprof__prom_family(
            sb, "stageprof_process_cpu_cores", "gauge",
            "Process CPU use between the last two samples, in cores.");
        stageprof__prom_double(sb, "stageprof_process_cpu_cores", NULL,
                               r->proc_cores);
    }
    if (r->have_sys) {
        stageprof__prom_family(
            sb, "stageprof_system_cpu_busy_ratio", "gauge",
            "Share of all CPU time the system spent busy (not idle, "
            "not in I/O wait) between the last two samples.");
        stageprof__prom_double(sb, "stageprof_system_cpu_busy_ratio", NULL,
                               r->sys_busy);
        stageprof__prom_family(
            sb, "stageprof_system_iowait_ratio", "gauge",
            "Share of all CPU time spent idle waiting for I/O between "
            "the last two samples.");
        stageprof__prom_double(sb, "stageprof_system_iowait_ratio", NULL,
                               r->sys_iowait);
    }
    if (s->io_bits & SAMPLER_IO_READ_BYTES) {
        stageprof__prom_family(
            sb, "stageprof_process_read_bytes_total", "counter",
            "Bytes the process caused to be read from storage.");
        stageprof__prom_u64(sb, "stageprof_process_read_bytes_total", NULL,
                            s->io.read_bytes);
    }
    if (s->io_bits & SAMPLER_IO_WRITE_BYTES) {
        stageprof__prom_family(
            sb, "stageprof_process_write_bytes_total", "counter",
            "Bytes the process caused to be written to storage.");
        stageprof__prom_u64(sb, "stageprof_process_write_bytes_total", NULL,
                            s->io.write_bytes);
    }
    if (s->io_bits & SAMPLER_IO_RCHAR) {
        stageprof__prom_family(
            sb, "stageprof_process_read_chars_total", "counter",
            "Bytes the process read through read-like system calls.");
        stageprof__prom_u64(sb, "stageprof_process_read_chars_total", NULL,
                            s->io.rchar);
    }
    if (s->io_bits & SAMPLER_IO_WCHAR) {
        stageprof__prom_family(
            sb, "stageprof_process_write_chars_total", "counter",
            "Bytes the process wrote through write-like system calls.");
        stageprof__prom_u64(sb, "stageprof_process_write_chars_total", NULL,
                            s->io.wchar);
    }
    if (s->have_ru) {
        stageprof__prom_family(sb, "stageprof_process_context_switches_total",
                               "counter",
                               "Context switches of the process's threads.");
        stageprof__prom_u64(sb, "stageprof_process_context_switches_total",
                            "kind=\"voluntary\"", s->voluntary);
        stageprof__prom_u64(sb, "stageprof_process_context_switches_total",
                            "kind=\"involuntary\"", s->involuntary);
        stageprof__prom_family(sb, "stageprof_process_page_faults_total",
                               "counter", "Page faults of the process.");
        stageprof__prom_u64(sb, "stageprof_process_page_faults_total",
                            "kind=\"minor\"", s->minflt);
        stageprof__prom_u64(sb, "stageprof_process_page_faults_total",
                            "kind=\"major\"", s->majflt);
    }
    static const char *const res[3] = {"cpu", "io", "memory"};
    if (s->psi_bits[0] | s->psi_bits[1] | s->psi_bits[2]) {
        stageprof__prom_family(
            sb, "stageprof_pressure_avg10_ratio", "gauge",
            "Pressure stall information: share of the last 10 s in "
            "which some or all tasks stalled on the resource.");
        for (int i = 0; i < 3; i++) {
            char lab[64];
            if (s->psi_bits[i] & SAMPLER_PSI_SOME) {
                snprintf(lab, sizeof lab, "resource=\"%s\",kind=\"some\"",
                         res[i]);
                stageprof__prom_double(sb, "stageprof_pressure_avg10_ratio",
                                       lab, s->psi[i].some_avg10 / 100);
            }
            if (s->psi_bits[i] & SAMPLER_PSI_FULL) {
                snprintf(lab, sizeof lab, "resource=\"%s\",kind=\"full\"",
                         res[i]);
                stageprof__prom_double(sb, "stageprof_pressure_avg10_ratio",
                                       lab, s->psi[i].full_avg10 / 100);
            }
        }
    }
    int any = 0;
    for (int i = 0; i <= SAMPLER_MAX_NAMES; i++)
        any |= v->names[i].used;
    if (any) {
        stageprof__prom_family(
            sb, "stageprof_thread_cpu_seconds_total", "counter",
            "CPU time of the process's threads, summed by thread "
            "name (names past the first 64 as \"other\").");
        for (int i = 0; i <= SAMPLER_MAX_NAMES; i++) {
            const struct tname *t = &v->names[i];
            if (!t->used)
                continue;
            struct strbuf lab;
            stageprof__sb_init(&lab, stageprof__malloc, stageprof__free);
            stageprof__sb_adds(&lab, "thread=\"");
            stageprof__metrics_label(&lab, i == OTHER_NAME ? "other" : t->name);
            stageprof__sb_adds(&lab, "\"");
            if (!lab.oom)
                stageprof__prom_double(sb, "stageprof_thread_cpu_seconds_total",
                                       lab.buf,
                                       (double)t->ticks / (double)clk_tck);
            stageprof__sb_fini(&lab);
        }
    }
    stageprof__prom_family(sb, "stageprof_sampler_samples_total", "counter",
                           "Samples taken by the resource sampler.");
    stageprof__prom_u64(sb, "stageprof_sampler_samples_total", NULL,
                        v->samples);
}

void stageprof__sampler_render(struct strbuf *sb)
{
    init_once();
    render_process(sb);
    struct snap v;
    pthread_mutex_lock(&S.lock);
    v.samples = S.samples;
    v.last = S.last;
    v.rates = S.rates;
    memcpy(v.names, S.names, sizeof v.names);
    v.nnames = S.nnames;
    pthread_mutex_unlock(&S.lock);
    if (v.samples > 0)
        render_sampler(sb, &v);
}
