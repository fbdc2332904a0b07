/*
 * crash.c - STAGEPROF_CRASH_DUMP: write what was recorded when the process
 * dies of SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT.
 *
 * Two halves that never meet in time:
 *
 *   stageprof__crash_install()          (start, normal code, g.lock held)
 *     computes everything the handler will need: the absolute directory
 *     (created now), the file name stem, the header text (sysinfo, clock,
 *     configuration), the process name, RLIMIT_FSIZE; gives the calling
 *     thread an alternate signal stack; installs the handlers and keeps
 *     the previous ones.
 *
 *   crash_handler()                     (any thread, at the crash)
 *     only async-signal-safe calls: open, write, close, rename, unlink,
 *     getpid, gettid, clock_gettime, nanosleep, sigaction, pthread_sigmask,
 *     raise. No stdio, malloc, lock, locale or zlib: numbers go through the
 *     pure formatters of util/json.c and the exact double formatter below,
 *     text through one static 64 KiB buffer flushed with write(2).
 *
 * The dump walks stageprof__g.threads and every chunk chain without a
 * lock. The registry only grows at its head and chunks are only appended
 * (and reclaimed after a write), so a racy walk sees a consistent prefix;
 * records are read up to each chunk's `used`, which the owner publishes
 * with a release store after each whole record. Like any trace file, the
 * dump holds what no earlier file holds: each chunk from its `read` offset,
 * with the spans and run carried from the last write (tbuf.wr_*).
 *
 * Events are streamed as they are met, with no pairing: a span begin is a
 * "B", its end an "E" (Chrome closes the innermost open "B" of the thread),
 * and only ends whose begin is in this dump are written. Arguments that
 * follow their span's begin go into the "B"; arguments attached later (after
 * another record) go into the "E". A span still open at the crash stays a
 * "B" without "E". The file is written as <name>.tmp and renamed, so a
 * dump that appears is always whole JSON.
 *
 * After the dump the handler restores the previous disposition of the
 * signal and lets it happen again: a fault (si_code > 0) re-executes the
 * faulting instruction when the handler returns, anything sent (abort,
 * raise, kill) is raised again. The process therefore dies (or a previous
 * handler runs) exactly as without stageprof.
 *
 * Re-entry: one dump per process. A second thread crashing during the dump
 * waits for it (the first thread's re-raise ends the process); a fault
 * inside the dump itself abandons it (the temporary file is removed) and
 * re-raises the original signal.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "tbuf.h"
#include "util/json.h"
#include "util/strbuf.h"

/*
 * Functions that read other threads' structures without their locks: on
 * purpose (the process is dying), so ThreadSanitizer is told not to watch.
 * Record bytes are still ordered by the acquire load in chunk_used().
 */
#define CRASH_RACY __attribute__((no_sanitize("thread")))

#define OUT_CAP (64u << 10)
/* Room kept below RLIMIT_FSIZE for the event being written and the end. */
#define TAIL_RESERVE (OUT_CAP + (16u << 10))
#define LEVELS (2 * STAGEPROF_MAX_DEPTH)
#define LATE_MAX 8     /* late arguments kept per open span */
#define ORDER_MAX 4096 /* threads written oldest first; more: as found */
#define ALTSTACK (64u << 10)
#define STATE_DONE (-1) /* crash.state: the dump was written */

static const int crash_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
static const char *const crash_names[] = {"SIGSEGV", "SIGBUS", "SIGFPE",
                                          "SIGILL", "SIGABRT"};
#define NCRASH ((int)(sizeof crash_signals / sizeof crash_signals[0]))

/* Everything the handler reads, computed at install (under g.lock). */
static struct {
    int on;                       /* handlers installed (atomic) */
    int installed[NCRASH];        /* we replaced this signal's handler */
    struct sigaction old[NCRASH]; /* what was there before */
    char prefix[4200];            /* <absdir>/workflow_execution_<stamp>_ */
    size_t prefix_len;
    char meta[16384]; /* header members after "pid" (sysinfo, config) */
    size_t meta_len;
    char pname[256]; /* process name when none was set later */
    uint64_t fsize;  /* RLIMIT_FSIZE at install, or UINT64_MAX */
    int pid;         /* process that installed (fork: see the handler) */
    int state;       /* 0, the tid writing the dump, or STATE_DONE */
    int cur_sig;     /* signal being dumped (for a fault inside) */
    char path[4300]; /* the dump's name, formatted in the handler */
    char tmp[4310];  /* path + ".tmp" */
} crash = {.fsize = UINT64_MAX};

/* ------------------------------------------------------------------------ */
/* Exact double formatting                                                  */
/* ------------------------------------------------------------------------ */

/*
 * A double is m * 2^e with a 53-bit m. Written as an integer N times a power
 * of ten it is exact: N = m << e (e >= 0) or N = m * 5^-e with 10^e (e < 0).
 * N has at most 2547 bits, so a fixed array of 32-bit limbs holds it, and
 * its decimal digits, rounded half-even to 17 significant digits, are what
 * printf("%.17g") prints. No libc call, no locale, no allocation.
 */
#define BIG_LIMBS 84

struct big {
    uint32_t w[BIG_LIMBS]; /* little-endian limbs */
    int n;                 /* limbs in use */
};

static void big_mul(struct big *b, uint32_t m)
{
    uint64_t carry = 0;
    for (int i = 0; i < b->n; i++) {
        uint64_t x = (uint64_t)b->w[i] * m + carry;
        b->w[i] = (uint32_t)x;
        carry = x >> 32;
    }
    if (carry != 0 && b->n < BIG_LIMBS)
        b->w[b->n++] = (uint32_t)carry;
}

static void big_shl(struct big *b, unsigned s)
{
    unsigned limbs = s / 32, bits = s % 32;
    if (bits != 0) {
        uint32_t carry = 0;
        for (int i = 0; i < b->n; i++) {
            uint32_t x = b->w[i];
            b->w[i] = (x << bits) | carry;
            carry = x >> (32 - bits);
        }
        if (carry != 0 && b->n < BIG_LIMBS)
            b->w[b->n++] = carry;
    }
    if (limbs != 0 && b->n + (int)limbs <= BIG_LIMBS) {
        for (int i = b->n - 1; i >= 0; i--)
            b->w[i + (int)limbs] = b->w[i];
        for (unsigned i = 0; i < limbs; i++)
            b->w[i] = 0;
        b->n += (int)limbs;
    }
}

/* b /= d; returns the remainder. */
static uint32_t big_div(struct big *b, uint32_t d)
{
    uint64_t rem = 0;
    for (int i = b->n - 1; i >= 0; i--) {
        uint64_t x = (rem << 32) | b->w[i];
        b->w[i] = (uint32_t)(x / d);
        rem = x % d;
    }
    while (b->n > 0 && b->w[b->n - 1] == 0)
        b->n--;
    return (uint32_t)rem;
}

/* Decimal digits of @b (consumed) into @dig, most significant first. */
static int big_digits(struct big *b, char *dig)
{
    uint32_t groups[96];
    int ng = 0;
    while (b->n > 0 && ng < 96)
        groups[ng++] = big_div(b, 1000000000u);
    int nd = 0;
    for (int g = ng - 1; g >= 0; g--) {
        char tmp[9];
        uint32_t x = groups[g];
        for (int i = 8; i >= 0; i--, x /= 10)
            tmp[i] = (char)('0' + x % 10);
        int i = 0;
        if (g == ng - 1)
            while (i < 8 && tmp[i] == '0')
                i++;
        for (; i < 9; i++)
            dig[nd++] = tmp[i];
    }
    return nd;
}

size_t stageprof__crash_fmt_double(char *out, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    unsigned ex = (unsigned)(bits >> 52) & 0x7FFu;
    uint64_t frac = bits & ((1ull << 52) - 1);
    char *o = out;
    if (ex == 0x7FF) {
        const char *s =
            frac ? "\"NaN\"" : (bits >> 63 ? "\"-Infinity\"" : "\"Infinity\"");
        size_t n = strlen(s);
        memcpy(out, s, n);
        return n;
    }
    if (bits >> 63)
        *o++ = '-';
    if (ex == 0 && frac == 0) {
        *o++ = '0';
        return (size_t)(o - out);
    }
    uint64_t m = ex ? frac | (1ull << 52) : frac;
    int e = ex ? (int)ex - 1075 : -1074;

    struct big b;
    b.w[0] = (uint32_t)m;
    b.w[1] = (uint32_t)(m >> 32);
    b.n = b.w[1] ? 2 : 1;
    int k10 = 0; /* v = N * 10^k10 */
    if (e > 0) {
        big_shl(&b, (unsigned)e);
    } else if (e < 0) {
        int k = -e;
        for (; k >= 13; k -= 13)
            big_mul(&b, 1220703125u); /* 5^13 */
        uint32_t p5 = 1;
        while (k-- > 0)
            p5 *= 5;
        big_mul(&b, p5);
        k10 = e;
    }
    char dig[800];
    int nd = big_digits(&b, dig);
    int x10 = nd + k10 - 1; /* decimal exponent of the first digit */

    enum { P = 17 };
    if (nd > P) {
        int up = dig[P] > '5';
        if (dig[P] == '5') {
            for (int i = P + 1; i < nd && !up; i++)
                up = dig[i] != '0';
            if (!up) /* an exact tie: to even */
                up = (dig[P - 1] - '0') & 1;
        }
        nd = P;
        if (up) {
            int i = P - 1;
            while (i >= 0 && dig[i] == '9')
                dig[i--] = '0';
            if (i < 0) {
                dig[0] = '1';
                x10++;
            } else {
                dig[i]++;
            }
        }
    }
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;

    if (x10 < -4 || x10 >= P) {
        *o++ = dig[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, dig + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        *o++ = 'e';
        *o++ = x10 < 0 ? '-' : '+';
        unsigned ax = (unsigned)(x10 < 0 ? -x10 : x10);
        if (ax < 10)
            *o++ = '0';
        o += stageprof__fmt_u64(o, ax);
    } else if (x10 >= 0) {
        for (int i = 0; i <= x10; i++)
            *o++ = i < nd ? dig[i] : '0';
        if (nd > x10 + 1) {
            *o++ = '.';
            memcpy(o, dig + x10 + 1, (size_t)(nd - x10 - 1));
            o += nd - x10 - 1;
        }
    } else {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -x10 - 1; i++)
            *o++ = '0';
        memcpy(o, dig, (size_t)nd);
        o += nd;
    }
    return (size_t)(o - out);
}

/* ------------------------------------------------------------------------ */
/* Output: one static buffer, write(2)                                      */
/* ------------------------------------------------------------------------ */

enum { OPEN_NONE = 0, OPEN_BEGIN = 1, OPEN_INSTANT = 2 };

/* State of one dump; static because the handler's stack is small. */
struct dump {
    int fd;
    int err;        /* a write failed: the file is abandoned */
    int stop;       /* no more events (error or size limit) */
    int truncated;  /* events left out to stay under RLIMIT_FSIZE */
    uint64_t total; /* bytes written to fd */
    uint64_t limit; /* no event starts beyond this many bytes */
    size_t len;     /* bytes in buf */
    int first;      /* no event yet (comma handling) */
    int pid;
    uint64_t base; /* time base, monotonic ns */
    uint64_t events, open_spans, args_dropped, threads, spans_cut;
    /* the thread being replayed */
    int tid;
    unsigned depth;              /* open levels, unwritten ones included */
    unsigned char shown[LEVELS]; /* the level's "B" is in this dump */
    uint64_t last_ticks;         /* latest time seen on the thread */
    const struct rec *late[LEVELS][LATE_MAX];
    unsigned nlate[LEVELS];
    int open;          /* OPEN_*: an event whose args may still grow */
    unsigned open_lvl; /* level of the open "B" */
    int open_args;     /* its "args":{ was written */
    char buf[OUT_CAP];
};

static struct dump dump;
static struct tbuf *order[ORDER_MAX];

static void d_flush(struct dump *d)
{
    const char *p = d->buf;
    size_t n = d->len;
    d->len = 0;
    if (d->err)
        return;
    /* Past RLIMIT_FSIZE the kernel would raise SIGXFSZ: never try. */
    if (d->total + n > crash.fsize) {
        d->err = d->stop = 1;
        return;
    }
    while (n > 0) {
        ssize_t k = write(d->fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            d->err = d->stop = 1;
            return;
        }
        p += k;
        n -= (size_t)k;
        d->total += (uint64_t)k;
    }
}

static char *d_room(struct dump *d, size_t need)
{
    if (d->len + need > OUT_CAP)
        d_flush(d);
    return d->buf + d->len;
}

static void d_put(struct dump *d, const char *s, size_t n)
{
    memcpy(d_room(d, n), s, n);
    d->len += n;
}
#define D_LIT(d, lit) d_put((d), (lit), sizeof(lit) - 1)

static void d_puts(struct dump *d, const char *s)
{
    d_put(d, s, strlen(s));
}

static void d_u64(struct dump *d, uint64_t v)
{
    d->len += stageprof__fmt_u64(d_room(d, 24), v);
}

static void d_i64(struct dump *d, int64_t v)
{
    d->len += stageprof__fmt_i64(d_room(d, 24), v);
}

static void d_hex(struct dump *d, uint64_t v)
{
    char *p = d_room(d, 20);
    *p++ = '"';
    *p++ = '0';
    *p++ = 'x';
    p += stageprof__fmt_hex(p, v);
    *p++ = '"';
    d->len = (size_t)(p - d->buf);
}

/* "s" escaped; @n at most STAGEPROF_MAX_STRING. */
static void d_str(struct dump *d, const char *s, size_t n)
{
    char *p = d_room(d, 6 * n + 2);
    *p++ = '"';
    p += stageprof__json_escape(p, s, n);
    *p++ = '"';
    d->len = (size_t)(p - d->buf);
}

/* ts relative to the base, in µs with three decimals, signed. */
static void d_ts(struct dump *d, uint64_t ns)
{
    char *p = d_room(d, 32);
    if (ns < d->base) {
        *p++ = '-';
        p += stageprof__fmt_us3(p, d->base - ns);
    } else {
        p += stageprof__fmt_us3(p, ns - d->base);
    }
    d->len = (size_t)(p - d->buf);
}

static void d_pid_tid(struct dump *d, int tid)
{
    D_LIT(d, ",\"pid\":");
    d_u64(d, (uint64_t)d->pid);
    D_LIT(d, ",\"tid\":");
    d_u64(d, (uint64_t)(unsigned)tid);
}

/* Start an event; 0 when no more events may be written. */
static int ev_start(struct dump *d)
{
    if (d->stop)
        return 0;
    if (d->total + d->len + TAIL_RESERVE > d->limit) {
        d->truncated = d->stop = 1;
        return 0;
    }
    if (!d->first)
        D_LIT(d, ",\n");
    d->first = 0;
    d->events++;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Replaying one thread's records                                           */
/* ------------------------------------------------------------------------ */

/* "name":..,"cat":.. of @site, or of the run-time name @dyn. */
static void d_name(struct dump *d, const stageprof_site_t *site,
                   const char *dyn, size_t dyn_len)
{
    D_LIT(d, "\"name\":");
    if (dyn != NULL) {
        d_str(d, dyn, dyn_len);
    } else {
        const char *n = site && site->name ? site->name : "";
        d_str(d, n, strnlen(n, STAGEPROF_MAX_STRING));
    }
    D_LIT(d, ",\"cat\":");
    const char *c = site && site->category ? site->category : "default";
    d_str(d, c, strnlen(c, 256));
}

/* "key":value of an ARG record. */
static void d_arg(struct dump *d, const struct rec *r)
{
    const char *key = (const char *)(uintptr_t)r[0].a;
    unsigned type = (unsigned)(r[0].b >> 4) & 15u;
    d_str(d, key ? key : "", key ? strnlen(key, 256) : 0);
    D_LIT(d, ":");
    if (type == ARG_INT) {
        d_i64(d, (int64_t)r[1].a);
    } else if (type == ARG_DOUBLE) {
        double v;
        memcpy(&v, &r[1].a, sizeof v);
        d->len += stageprof__crash_fmt_double(d_room(d, 32), v);
    } else {
        d_str(d, (const char *)&r[2], (size_t)r[1].a);
    }
}

/* One more member of the open event's args. */
static void open_member(struct dump *d)
{
    if (d->open_args) {
        D_LIT(d, ",");
    } else {
        D_LIT(d, ",\"args\":{");
        d->open_args = 1;
    }
}

static void close_open(struct dump *d)
{
    if (d->open == OPEN_NONE)
        return;
    if (d->open_args)
        D_LIT(d, "}}");
    else
        D_LIT(d, "}");
    d->open = OPEN_NONE;
}

static void on_arg(struct dump *d, const struct rec *r)
{
    unsigned target = (unsigned)(r->b >> 8) & 0xFFFFu;
    if ((d->open == OPEN_INSTANT && target == ARG_TARGET_INSTANT) ||
        (d->open == OPEN_BEGIN && target == d->open_lvl)) {
        open_member(d);
        d_arg(d, r);
    } else if (target != ARG_TARGET_INSTANT && target < d->depth &&
               d->shown[target] && d->nlate[target] < LATE_MAX) {
        d->late[target][d->nlate[target]++] = r; /* goes into its "E" */
    } else {
        d->args_dropped++;
    }
}

static void on_begin(struct dump *d, const struct rec *r, uint64_t run)
{
    if (d->depth >= LEVELS)
        return;
    /* The level is pushed even unwritten, so that its end pops it. */
    d->shown[d->depth] = 0;
    d->nlate[d->depth] = 0;
    if (!ev_start(d)) {
        d->depth++;
        return;
    }
    unsigned kind = (unsigned)(r->b & 15u);
    D_LIT(d, "{\"ph\":\"B\",");
    if (kind == REC_BEGIN_NAME)
        d_name(d, tbuf_rec_site(r), (const char *)&r[2], (size_t)r[1].a);
    else
        d_name(d, tbuf_rec_site(r), NULL, 0);
    D_LIT(d, ",\"ts\":");
    d_ts(d, stageprof__clock_to_ns_async(r->a));
    d_pid_tid(d, d->tid);
    d->open = OPEN_BEGIN;
    d->open_lvl = d->depth;
    d->open_args = 0;
    if (run != 0) {
        open_member(d);
        D_LIT(d, "\"run\":");
        d_u64(d, run);
    }
    d->shown[d->depth++] = 1;
}

static void on_end(struct dump *d, const struct rec *r)
{
    if (d->depth == 0)
        return;
    unsigned lvl = --d->depth;
    /* Begun in an earlier file, or not written: no "E" here. */
    if (!d->shown[lvl] || !ev_start(d))
        return;
    D_LIT(d, "{\"ph\":\"E\",\"ts\":");
    d_ts(d, stageprof__clock_to_ns_async(r->a));
    d_pid_tid(d, d->tid);
    for (unsigned i = 0; i < d->nlate[lvl]; i++) {
        d_puts(d, i == 0 ? ",\"args\":{" : ",");
        d_arg(d, d->late[lvl][i]);
    }
    d_puts(d, d->nlate[lvl] ? "}}" : "}");
}

/*
 * A chunk that does not follow the previous one (the ring evicted chunks
 * between) starts at its own depth. Spans whose end was evicted get an "E"
 * at the last time seen, marked, so that later ends still close the right
 * "B"; spans whose begin was evicted are pushed unwritten.
 */
static void align(struct dump *d, unsigned depth)
{
    while (d->depth > depth) {
        unsigned lvl = --d->depth;
        if (!d->shown[lvl] || !ev_start(d))
            continue;
        d->spans_cut++;
        D_LIT(d, "{\"ph\":\"E\",\"ts\":");
        d_ts(d, stageprof__clock_to_ns_async(d->last_ticks));
        d_pid_tid(d, d->tid);
        D_LIT(d, ",\"args\":{\"end_evicted\":true}}");
    }
    while (d->depth < depth && d->depth < LEVELS) {
        d->shown[d->depth] = 0;
        d->nlate[d->depth++] = 0;
    }
}

/* ,"args":{"run":N} when in a run. */
static void d_run_args(struct dump *d, uint64_t run)
{
    if (run == 0)
        return;
    D_LIT(d, ",\"args\":{\"run\":");
    d_u64(d, run);
    D_LIT(d, "}");
}

static void on_pair(struct dump *d, const struct rec *r, uint64_t *run)
{
    unsigned kind = (unsigned)(r->b & 15u);
    unsigned phase = (unsigned)r[1].b;
    const stageprof_site_t *site = tbuf_rec_site(r);
    if (kind == REC_RUN) {
        if (phase == RUN_BEGIN || phase == RUN_SET)
            *run = r[1].a;
        else if (*run == r[1].a)
            *run = 0;
        if (phase == RUN_SET)
            return;
    }
    if (!ev_start(d))
        return;
    if (kind == REC_COUNTER) {
        D_LIT(d, "{\"ph\":\"C\",");
        d_name(d, site, NULL, 0);
        D_LIT(d, ",\"ts\":");
        d_ts(d, stageprof__clock_to_ns_async(r->a));
        d_pid_tid(d, d->tid);
        D_LIT(d, ",\"args\":{\"value\":");
        if (r[1].b == 0) {
            d_i64(d, (int64_t)r[1].a);
        } else {
            double v;
            memcpy(&v, &r[1].a, sizeof v);
            d->len += stageprof__crash_fmt_double(d_room(d, 32), v);
        }
        D_LIT(d, "}}");
        return;
    }
    if (kind == REC_RUN)
        d_puts(d, phase == RUN_BEGIN ? "{\"ph\":\"b\"," : "{\"ph\":\"e\",");
    else if (phase == FLOW_END)
        D_LIT(d, "{\"ph\":\"f\",\"bp\":\"e\",");
    else
        d_puts(d, phase == FLOW_STEP ? "{\"ph\":\"t\"," : "{\"ph\":\"s\",");
    if (site != NULL)
        d_name(d, site, NULL, 0);
    else
        D_LIT(d, "\"name\":\"run\",\"cat\":\"run\"");
    D_LIT(d, ",\"id\":");
    d_hex(d, r[1].a);
    D_LIT(d, ",\"ts\":");
    d_ts(d, stageprof__clock_to_ns_async(r->a));
    d_pid_tid(d, d->tid);
    d_run_args(d, kind == REC_RUN ? r[1].a : *run);
    D_LIT(d, "}");
}

static void replay(struct dump *d, const unsigned char *p,
                   const unsigned char *end, uint64_t *run)
{
    while (p < end && !d->stop) {
        const struct rec *r = (const struct rec *)p;
        size_t size = tbuf_rec_size(r, (size_t)(end - p));
        if (size == 0)
            break; /* not a committed record: stop this chunk safely */
        p += size;
        unsigned kind = (unsigned)(r->b & 15u);
        if (kind == REC_ARG) {
            on_arg(d, r);
            continue;
        }
        close_open(d);
        if (kind != REC_COMPLETE && kind != REC_PAD)
            d->last_ticks = r->a;
        switch (kind) {
        case REC_BEGIN:
        case REC_BEGIN_NAME:
            on_begin(d, r, *run);
            break;
        case REC_END:
            on_end(d, r);
            break;
        case REC_COMPLETE:
            if (!ev_start(d))
                break;
            D_LIT(d, "{\"ph\":\"X\",");
            d_name(d, tbuf_rec_site(r), NULL, 0);
            D_LIT(d, ",\"ts\":");
            d_ts(d, r[0].a); /* already ns */
            D_LIT(d, ",\"dur\":");
            d->len += stageprof__fmt_us3(d_room(d, 32), r[1].a);
            d_pid_tid(d, d->tid);
            d_run_args(d, *run);
            D_LIT(d, "}");
            break;
        case REC_INSTANT:
            if (!ev_start(d))
                break;
            D_LIT(d, "{\"ph\":\"i\",\"s\":\"t\",");
            d_name(d, tbuf_rec_site(r), NULL, 0);
            D_LIT(d, ",\"ts\":");
            d_ts(d, stageprof__clock_to_ns_async(r->a));
            d_pid_tid(d, d->tid);
            d->open = OPEN_INSTANT;
            d->open_args = 0;
            if (*run != 0) {
                open_member(d);
                D_LIT(d, "\"run\":");
                d_u64(d, *run);
            }
            break;
        case REC_COUNTER:
        case REC_FLOW:
        case REC_RUN:
            on_pair(d, r, run);
            break;
        default:
            break;
        }
    }
}

/* Committed bytes of @c; instrumented, so TSan sees the acquire. */
static __attribute__((noinline)) size_t chunk_used(struct chunk *c)
{
    return LOAD_ACQUIRE(&c->used);
}

/* An "M" event up to its value; 0 when no more events may be written. */
static int d_meta(struct dump *d, const char *what, int tid, const char *key)
{
    if (!ev_start(d))
        return 0;
    D_LIT(d, "{\"ph\":\"M\",\"name\":\"");
    d_put(d, what, strlen(what));
    D_LIT(d, "\"");
    d_pid_tid(d, tid);
    D_LIT(d, ",\"args\":{\"");
    d_put(d, key, strlen(key));
    D_LIT(d, "\":");
    return 1;
}

CRASH_RACY static void dump_thread(struct dump *d, struct tbuf *tb)
{
    d->tid = LOAD_RELAXED(&tb->tid);
    d->threads++;
    /* A byte loop, not memcpy: the name may be changing under us. */
    char name[STAGEPROF_NAME_MAX];
    size_t n = 0;
    while (n < sizeof name - 1 && tb->name[n] != '\0') {
        name[n] = tb->name[n];
        n++;
    }
    if (n > 0 && d_meta(d, "thread_name", d->tid, "name")) {
        d_str(d, name, n);
        D_LIT(d, "}}");
    }
    if (LOAD_RELAXED(&tb->has_sort) &&
        d_meta(d, "thread_sort_index", d->tid, "sort_index")) {
        d_i64(d, LOAD_RELAXED(&tb->sort_index));
        D_LIT(d, "}}");
    }
    /* Start where the last write stopped, with the spans it left open. */
    d->depth = 0;
    d->open = OPEN_NONE;
    d->last_ticks = 0;
    align(d, LOAD_RELAXED(&tb->wr_open));
    uint64_t run = LOAD_RELAXED(&tb->wr_run);
    unsigned long guard = 0;
    for (struct chunk *c = LOAD_ACQUIRE(&tb->head); c != NULL && !d->stop;
         c = LOAD_ACQUIRE(&c->next)) {
        if (++guard > (1ul << 24))
            break; /* a cycle can only be corruption */
        size_t cap = LOAD_RELAXED(&c->cap);
        size_t to = chunk_used(c);
        size_t from = LOAD_RELAXED(&c->read);
        if (to > cap)
            to = cap;
        if (from > to)
            from = to;
        if (from == 0) {
            run = LOAD_RELAXED(&c->run_at_start);
            align(d, LOAD_RELAXED(&c->depth_at_start));
        }
        replay(d, c->data + from, c->data + to, &run);
    }
    close_open(d);
    for (unsigned i = 0; i < d->depth; i++)
        d->open_spans += d->shown[i];
}

/* Dropped-event total, racy: live threads plus retired ones. */
CRASH_RACY static uint64_t dropped_total(void)
{
    uint64_t n =
        stageprof__g.retired.dropped + LOAD_RELAXED(&stageprof__g.lost_no_tbuf);
    unsigned long guard = 0;
    for (struct tbuf *tb = LOAD_ACQUIRE(&stageprof__g.threads);
         tb != NULL && ++guard < (1ul << 20); tb = LOAD_ACQUIRE(&tb->next))
        n += LOAD_RELAXED(&tb->dropped);
    return n;
}

CRASH_RACY static void dump_threads(struct dump *d)
{
    size_t n = 0;
    struct tbuf *tb = LOAD_ACQUIRE(&stageprof__g.threads);
    for (; tb != NULL && n < ORDER_MAX; tb = LOAD_ACQUIRE(&tb->next))
        order[n++] = tb;
    /* The registry is newest first; write the oldest first. */
    for (size_t i = n; i-- > 0 && !d->stop;)
        dump_thread(d, order[i]);
    unsigned long guard = 0;
    for (; tb != NULL && !d->stop && ++guard < (1ul << 20);
         tb = LOAD_ACQUIRE(&tb->next))
        dump_thread(d, tb);
}

static int sig_index(int sig)
{
    for (int i = 0; i < NCRASH; i++)
        if (crash_signals[i] == sig)
            return i;
    return -1;
}

/* The whole dump into @fd. */
CRASH_RACY static void dump_fd(struct dump *d, int fd, int sig,
                               const siginfo_t *info)
{
    memset(d, 0, offsetof(struct dump, buf));
    d->fd = fd;
    d->first = 1;
    d->pid = (int)getpid();
    d->base = LOAD_RELAXED(&stageprof__g.base_mono_ns);
    d->limit = crash.fsize;
    int tid = (int)syscall(SYS_gettid);
    int si = sig_index(sig);

    D_LIT(d,
          "{\"stageprof\":{\"format\":1,\"version\":\"" STAGEPROF_VERSION_STRING
          "\",\"pid\":");
    d_u64(d, (uint64_t)d->pid);
    d_put(d, crash.meta, crash.meta_len);
    D_LIT(d, ",\"crash\":{\"signal\":");
    d_i64(d, sig);
    D_LIT(d, ",\"name\":");
    if (si >= 0)
        d_str(d, crash_names[si], strlen(crash_names[si]));
    else
        D_LIT(d, "null");
    if (info != NULL) {
        D_LIT(d, ",\"code\":");
        d_i64(d, info->si_code);
        if (info->si_code > 0 && sig != SIGABRT) {
            D_LIT(d, ",\"addr\":");
            d_hex(d, (uint64_t)(uintptr_t)info->si_addr);
        }
    }
    D_LIT(d, ",\"tid\":");
    d_i64(d, tid);
    D_LIT(d, ",\"written_by\":\"crash handler\"}},\n\"time_base\":{"
             "\"unix_ns\":");
    d_u64(d, LOAD_RELAXED(&stageprof__g.base_real_ns));
    D_LIT(d, ",\"monotonic_ns\":");
    d_u64(d, d->base);
    D_LIT(d, "},\n\"traceEvents\":[\n");

    const char *pname = crash.pname;
    if (stageprof__g.proc_name[0] != '\0')
        pname = stageprof__g.proc_name;
    if (d_meta(d, "process_name", 0, "name")) {
        d_str(d, pname, strnlen(pname, sizeof stageprof__g.proc_name - 1));
        D_LIT(d, "}}");
    }

    dump_threads(d);

    /* The crash itself, on the thread that received the signal. */
    uint64_t now = stageprof_now_ns();
    if (ev_start(d)) {
        D_LIT(d, "{\"ph\":\"i\",\"s\":\"t\",\"name\":");
        if (si >= 0)
            d_str(d, crash_names[si], strlen(crash_names[si]));
        else
            D_LIT(d, "\"signal\"");
        D_LIT(d, ",\"cat\":\"crash\",\"ts\":");
        d_ts(d, now);
        d_pid_tid(d, tid);
        D_LIT(d, ",\"args\":{\"signal\":");
        d_i64(d, sig);
        D_LIT(d, "}}");
    }

    D_LIT(d, "\n],\n\"stageprof_summary\":{\"complete\":false,\"crash\":true,"
             "\"events_written\":");
    d_u64(d, d->events);
    D_LIT(d, ",\"open_spans\":");
    d_u64(d, d->open_spans);
    D_LIT(d, ",\"threads\":");
    d_u64(d, d->threads);
    D_LIT(d, ",\"args_dropped\":");
    d_u64(d, d->args_dropped);
    D_LIT(d, ",\"spans_cut\":");
    d_u64(d, d->spans_cut);
    D_LIT(d, ",\"events_dropped_total\":");
    d_u64(d, dropped_total());
    /* The overhead statement, as far as the handler can afford: the cost
     * per event calibrated at start (ns, three decimals) and the count. */
    D_LIT(d, ",\"overhead\":{\"ns_per_event\":");
    {
        double per = stageprof__g.cost_ns_per_event;
        char num[32];
        uint64_t milli =
            per > 0 && per < 1e12 ? (uint64_t)(per * 1000.0 + 0.5) : 0;
        d_put(d, num, stageprof__fmt_us3(num, milli));
    }
    D_LIT(d, ",\"events\":");
    d_u64(d, d->events);
    D_LIT(d, "}");
    D_LIT(d, ",\"truncated\":");
    if (d->truncated)
        D_LIT(d, "true}}\n");
    else
        D_LIT(d, "false}}\n");
    d_flush(d);
}

int stageprof__crash_write_fd(int fd, int sig)
{
    int expect = 0;
    int me = (int)syscall(SYS_gettid);
    if (!__atomic_compare_exchange_n(&crash.state, &expect, me, 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return STAGEPROF_EBUSY;
    dump_fd(&dump, fd, sig, NULL);
    int rc = dump.err ? STAGEPROF_EIO : 0;
    __atomic_store_n(&crash.state, 0, __ATOMIC_RELEASE);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The handler                                                              */
/* ------------------------------------------------------------------------ */

/* crash.prefix + pid + "_crash.json" into crash.path, and ".tmp" after. */
static void make_paths(void)
{
    char *p = crash.path;
    memcpy(p, crash.prefix, crash.prefix_len);
    p += crash.prefix_len;
    p += stageprof__fmt_u64(p, (uint64_t)getpid());
    memcpy(p, "_crash.json", sizeof "_crash.json");
    size_t n = strlen(crash.path);
    memcpy(crash.tmp, crash.path, n);
    memcpy(crash.tmp + n, ".tmp", sizeof ".tmp");
}

static void dump_file(int sig, const siginfo_t *info)
{
    make_paths();
    int fd = open(crash.tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    dump_fd(&dump, fd, sig, info);
    int ok = !dump.err;
    if (close(fd) != 0)
        ok = 0;
    if (!ok || rename(crash.tmp, crash.path) != 0)
        unlink(crash.tmp);
}

/* Put back what was there before us for @sig. */
static void restore(int sig)
{
    int i = sig_index(sig);
    if (i >= 0 && crash.installed[i])
        sigaction(sig, &crash.old[i], NULL);
}

/*
 * Let @sig happen again under its previous disposition. A fault returns to
 * the faulting instruction, which faults again; a signal that was sent (or
 * a machine-check report that will not repeat) is raised again now.
 */
static void reraise(int sig, const siginfo_t *info)
{
    restore(sig);
    int sent = info == NULL || info->si_code <= 0 || sig == SIGABRT;
#ifdef BUS_MCEERR_AO
    if (sig == SIGBUS && info != NULL && info->si_code == BUS_MCEERR_AO)
        sent = 1;
#endif
    if (sent) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        raise(sig);
    }
}

static void crash_handler(int sig, siginfo_t *info, void *uctx)
{
    (void)uctx;
    int saved_errno = errno;
    int me = (int)syscall(SYS_gettid);
    int owner = 0;
    if (__atomic_compare_exchange_n(&crash.state, &owner, me, 0,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        crash.cur_sig = sig;
        /* A child forked with STAGEPROF_FOLLOW_FORK=0 has no session. */
        if (getpid() == crash.pid || stageprof__g.started)
            dump_file(sig, info);
        __atomic_store_n(&crash.state, STATE_DONE, __ATOMIC_RELEASE);
    } else if (owner == me) {
        /*
         * A fault inside the dump (the recorded data is damaged): drop the
         * file and die of the original signal, as without stageprof.
         */
        unlink(crash.tmp);
        restore(crash.cur_sig);
        if (crash.cur_sig != sig)
            reraise(crash.cur_sig, NULL);
    } else if (owner != STATE_DONE) {
        /* Another thread is writing the dump; its re-raise ends us all. */
        struct timespec ts = {0, 10 * 1000 * 1000};
        for (int i = 0; i < 3000; i++) {
            if (__atomic_load_n(&crash.state, __ATOMIC_ACQUIRE) == STATE_DONE)
                break;
            nanosleep(&ts, NULL);
        }
    }
    reraise(sig, info);
    errno = saved_errno;
}

/* ------------------------------------------------------------------------ */
/* Alternate signal stacks                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Each thread that records gets its own alternate stack, so a stack
 * overflow can still be dumped. They come from mmap, not the library's
 * allocator: a guard page below catches an overflow of the handler itself,
 * and the library's allocation count stays free of memory that lives as
 * long as the thread. A thread that already has an alternate stack (the
 * program's, a sanitizer's) keeps it.
 */
static __thread void *alt_mem;
static __thread size_t alt_len;
static pthread_key_t alt_key;
static pthread_once_t alt_once = PTHREAD_ONCE_INIT;
static int alt_key_ok;

/* Thread exit: unregister the stack, then unmap it. */
static void alt_release(void *mem)
{
    stack_t cur;
    if (mem != alt_mem || sigaltstack(NULL, &cur) != 0)
        return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (cur.ss_sp == (char *)mem + page) {
        if (cur.ss_flags & SS_ONSTACK)
            return; /* running on it: keep it (never happens at exit) */
        stack_t off;
        memset(&off, 0, sizeof off);
        off.ss_flags = SS_DISABLE;
        if (sigaltstack(&off, NULL) != 0)
            return;
    }
    munmap(mem, alt_len);
    alt_mem = NULL;
}

static void alt_key_create(void)
{
    alt_key_ok = pthread_key_create(&alt_key, alt_release) == 0;
}

static void alt_setup(void)
{
    if (alt_mem != NULL)
        return;
    stack_t cur;
    if (sigaltstack(NULL, &cur) != 0 || !(cur.ss_flags & SS_DISABLE))
        return;
    pthread_once(&alt_once, alt_key_create);
    if (!alt_key_ok)
        return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t size = ALTSTACK;
    if ((size_t)SIGSTKSZ > size)
        size = (size_t)SIGSTKSZ;
    size = (size + page - 1) & ~(page - 1);
    void *mem = mmap(NULL, size + page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return;
    stack_t st;
    memset(&st, 0, sizeof st);
    st.ss_sp = (char *)mem + page;
    st.ss_size = size;
    if (mprotect(mem, page, PROT_NONE) != 0 || sigaltstack(&st, NULL) != 0) {
        munmap(mem, size + page);
        return;
    }
    alt_mem = mem;
    alt_len = size + page;
    (void)pthread_setspecific(alt_key, mem);
}

void stageprof__crash_thread_init(void)
{
    if (LOAD_RELAXED(&crash.on))
        alt_setup();
}

/* ------------------------------------------------------------------------ */
/* Install and uninstall                                                    */
/* ------------------------------------------------------------------------ */

/* The header members after "pid", from the configuration in force. */
static void make_meta(const struct conf *c)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, stageprof__malloc, stageprof__free);
    stageprof__sysinfo_json(&sb);
    stageprof__sb_addf(&sb, ",\"final\":true,\"clock\":{\"source\":\"%s\"}",
                       stageprof__clock_name());
    stageprof__sb_addf(&sb, ",\"config\":{\"enable\":%d,\"dir\":", c->enable);
    stageprof__json_str(&sb, c->dir, strlen(c->dir));
    stageprof__sb_addf(
        &sb, ",\"buffer_bytes\":%lld,\"categories\":", c->buffer_bytes);
    const char *cats = c->categories ? c->categories : "*";
    stageprof__json_str(&sb, cats, strlen(cats));
    stageprof__sb_addf(
        &sb,
        ",\"crash_dump\":1,\"sources\":{\"enable\":\"%s\",\"dir\":\"%s\","
        "\"buffer_bytes\":\"%s\",\"categories\":\"%s\",\"clock\":\"%s\"}}",
        c->src_enable ? c->src_enable : "default",
        c->src_dir ? c->src_dir : "default",
        c->src_buffer_bytes ? c->src_buffer_bytes : "default",
        c->src_categories ? c->src_categories : "default",
        c->src_clock ? c->src_clock : "default");
    if (!sb.oom && sb.len <= sizeof crash.meta) {
        memcpy(crash.meta, sb.buf, sb.len);
        crash.meta_len = sb.len;
    } else {
        crash.meta_len = 0; /* the dump still names version and pid */
    }
    stageprof__sb_fini(&sb);
}

/* <absolute dir>/workflow_execution_<stamp>_ into crash.prefix. */
static int make_prefix(const char *dir)
{
    char cwd[2048] = "";
    if (dir[0] != '/' && getcwd(cwd, sizeof cwd) == NULL)
        return -1;
    time_t now = time(NULL);
    struct tm tm;
    char stamp[32];
    if (localtime_r(&now, &tm) == NULL ||
        strftime(stamp, sizeof stamp, "%Y_%m_%d_%H_%M_%S", &tm) == 0)
        return -1;
    int n = snprintf(crash.prefix, sizeof crash.prefix,
                     "%s%s%s/workflow_execution_%s_", cwd, cwd[0] ? "/" : "",
                     dir, stamp);
    /* Room for the pid, "_crash.json" and ".tmp" in path and tmp. */
    if (n < 0 || (size_t)n + 40 > sizeof crash.prefix)
        return -1;
    crash.prefix_len = (size_t)n;
    return 0;
}

/* Put back every handler we replaced, unless somebody replaced ours. */
static void restore_all(void)
{
    STORE_RELAXED(&crash.on, 0);
    for (int i = 0; i < NCRASH; i++) {
        struct sigaction cur;
        if (!crash.installed[i])
            continue;
        if (sigaction(crash_signals[i], NULL, &cur) == 0 &&
            (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == crash_handler)
            sigaction(crash_signals[i], &crash.old[i], NULL);
        crash.installed[i] = 0;
    }
}

void stageprof__crash_install(void)
{
    /* A start that overtook the previous session's stop. */
    if (LOAD_RELAXED(&crash.on))
        restore_all();
    const struct conf *c = &stageprof__g.conf;
    if (!c->enable || !c->crash_dump || c->dir == NULL)
        return;
    if (stageprof__make_dirs(c->dir) != 0 || make_prefix(c->dir) != 0) {
        stageprof__log(STAGEPROF_LOG_WARN,
                       "crash dump off: cannot create or name files in %s",
                       c->dir);
        return;
    }
    make_meta(c);
    if (c->process_name != NULL && c->process_name[0] != '\0')
        snprintf(crash.pname, sizeof crash.pname, "%s", c->process_name);
    else
        stageprof__sysinfo_program(crash.pname, sizeof crash.pname);
    struct rlimit rl;
    crash.fsize = UINT64_MAX;
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        crash.fsize = (uint64_t)rl.rlim_cur;
    crash.pid = (int)getpid();
    alt_setup();

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = crash_handler;
    /*
     * SA_NODEFER: a fault inside the dump comes back here (and abandons
     * it) instead of killing the process with the wrong signal. No
     * SA_RESETHAND: the previous handler, not SIG_DFL, is put back.
     */
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    int n = 0;
    for (int i = 0; i < NCRASH; i++) {
        struct sigaction prev;
        crash.installed[i] = 0;
        if (sigaction(crash_signals[i], NULL, &prev) != 0)
            continue;
        /* An ignored signal does not kill: nothing to dump. */
        if (!(prev.sa_flags & SA_SIGINFO) && prev.sa_handler == SIG_IGN)
            continue;
        crash.old[i] = prev;
        if (sigaction(crash_signals[i], &sa, NULL) == 0) {
            crash.installed[i] = 1;
            n++;
        }
    }
    __atomic_store_n(&crash.state, 0, __ATOMIC_RELEASE);
    STORE_RELEASE(&crash.on, n > 0);
}

void stageprof__crash_uninstall(void)
{
    /* g.lock: install runs under it, and fork() takes it first. */
    pthread_mutex_lock(&stageprof__g.lock);
    if (LOAD_RELAXED(&crash.on) && !stageprof__g.started)
        restore_all(); /* a session started since keeps its handlers */
    pthread_mutex_unlock(&stageprof__g.lock);
}
