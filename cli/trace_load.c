/*
 * trace_load.c - the streaming reader of Chrome traces. See trace_load.h.
 *
 * The scanner reads through zlib's gzread, which passes plain files
 * through unchanged, in chunks of BUF_SIZE; bytes are taken one at a time
 * from the chunk (an inline fast path) and the strings an event keeps are
 * copied into a per-event arena, so no token needs the chunk it started
 * in. Everything else is skipped: skip_value() walks nested arrays and
 * objects with an explicit stack of bracket kinds, never by recursion.
 *
 * Errors longjmp back to tl_read(), which owns every allocation; the line
 * and column of an error are found by reading the file again up to the
 * offset (standard input cannot be read again: offset only).
 *
 * Times: a JSON number of microseconds becomes integer nanoseconds
 * exactly, from its digits (mantissa and decimal exponent), never through
 * a double. Digits below a nanosecond are rounded half away from zero and
 * reported once.
 */
#include "trace_load.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define BUF_SIZE (1u << 20) /* bytes per read; STAGEPROF_READ_CHUNK: fewer */

struct scan {
    gzFile gz;
    unsigned chunk; /* bytes per read */
    const char *path;
    unsigned char *buf;
    const unsigned char *p, *end;
    uint64_t base; /* offset of buf[0] in the (uncompressed) input */
    int eof;
    jmp_buf fail;
    char *err;
    size_t errlen;
    uint64_t err_at; /* offset of the error */
    /* Per-event string arena. */
    char *arena;
    size_t alen, acap;
    /* Bracket stack of skip_value. */
    unsigned char *stack;
    size_t scap;
    struct tl_result *res;
    unsigned flags; /* TL_ALL_ARGS */
};

/* Input ------------------------------------------------------------------- */

static uint64_t offset_of(const struct scan *s)
{
    return s->base + (uint64_t)(s->p - s->buf);
}

static void fail_at(struct scan *s, uint64_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

static void fail_at(struct scan *s, uint64_t at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, s->errlen, fmt, ap);
    va_end(ap);
    s->err_at = at;
    longjmp(s->fail, 1);
}

#define FAIL(s, ...) fail_at((s), offset_of(s), __VA_ARGS__)

/* More input; the next byte, or -1 at the end. */
static int refill(struct scan *s)
{
    if (s->eof)
        return -1;
    s->base += (uint64_t)(s->end - s->buf);
    int n = gzread(s->gz, s->buf, s->chunk);
    if (n < 0) {
        int code;
        const char *msg = gzerror(s->gz, &code);
        if (code == Z_ERRNO)
            msg = strerror(errno);
        s->p = s->end = s->buf;
        FAIL(s, "cannot read: %s", msg);
    }
    s->p = s->buf;
    s->end = s->buf + n;
    if (n == 0) {
        int code;
        const char *msg = gzerror(s->gz, &code);
        s->eof = 1;
        /* A gzip stream cut short reads as an early end: say so. */
        if (code == Z_BUF_ERROR)
            FAIL(s, "truncated gzip data (%s)", msg);
        return -1;
    }
    return *s->p;
}

static inline int peek(struct scan *s)
{
    return s->p < s->end ? *s->p : refill(s);
}

static inline int next(struct scan *s)
{
    int c = peek(s);
    if (c >= 0)
        s->p++;
    return c;
}

static const unsigned char is_ws[256] = {
    [' '] = 1, ['\n'] = 1, ['\r'] = 1, ['\t'] = 1};

/* The next byte that is not white space (not consumed), or -1. */
static int peek_ws_slow(struct scan *s)
{
    for (;;) {
        const unsigned char *p = s->p, *end = s->end;
        while (p < end && is_ws[*p])
            p++;
        s->p = p;
        if (p < end)
            return *p;
        if (refill(s) < 0)
            return -1;
    }
}

static inline int peek_ws(struct scan *s)
{
    if (s->p < s->end && !is_ws[*s->p])
        return *s->p;
    return peek_ws_slow(s);
}

/* The first '"' or '\\' in [p, end), or end: eight bytes at a time. */
static const unsigned char *find_quote(const unsigned char *p,
                                       const unsigned char *end)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    const uint64_t quotes = ones * '"', slashes = ones * '\\';
    while (end - p >= 8) {
        uint64_t v, a, b;
        memcpy(&v, p, 8);
        a = v ^ quotes;
        b = v ^ slashes;
        /* A zero byte in a or b: that byte was a quote or a backslash. */
        if (((a - ones) & ~a & highs) | ((b - ones) & ~b & highs))
            break;
        p += 8;
    }
    while (p < end && *p != '"' && *p != '\\')
        p++;
    return p;
}

static const char *describe(int c, char *buf, size_t len)
{
    if (c < 0)
        snprintf(buf, len, "the end of the input");
    else if (c >= 0x20 && c < 0x7f)
        snprintf(buf, len, "'%c'", c);
    else
        snprintf(buf, len, "byte 0x%02x", c);
    return buf;
}

/* Thrown at the end of the input inside the events: the lenient case. */
#define TRUNCATED 2

static void expect_slow(struct scan *s, int want, const char *what)
{
    int c = peek_ws(s);
    if (c == want) {
        s->p++;
        return;
    }
    if (c < 0)
        longjmp(s->fail, TRUNCATED);
    char b[32];
    FAIL(s, "expected %s, found %s", what, describe(c, b, sizeof b));
}

/* The next token is @want, usually right here. */
static inline void expect(struct scan *s, int want, const char *what)
{
    if (s->p < s->end && *s->p == want)
        s->p++;
    else
        expect_slow(s, want, what);
}

/* Strings ----------------------------------------------------------------- */

static void arena_put(struct scan *s, const void *src, size_t n)
{
    /* @src may lie in the arena itself: find it again after a realloc. */
    const char *from = src;
    int inside =
        s->arena != NULL && from >= s->arena && from < s->arena + s->acap;
    size_t off = inside ? (size_t)(from - s->arena) : 0;
    if (s->alen + n + 1 > s->acap) {
        size_t cap = s->acap ? s->acap : 4096;
        while (cap < s->alen + n + 1)
            cap *= 2;
        char *a = realloc(s->arena, cap);
        if (a == NULL)
            FAIL(s, "out of memory");
        s->arena = a;
        s->acap = cap;
    }
    memmove(s->arena + s->alen, inside ? s->arena + off : from, n);
    s->alen += n;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static unsigned read_hex4(struct scan *s)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int c = next(s), h = hexval(c);
        if (c < 0)
            longjmp(s->fail, TRUNCATED);
        if (h < 0)
            FAIL(s, "bad \\u escape in a string");
        v = v << 4 | (unsigned)h;
    }
    return v;
}

static void put_utf8(struct scan *s, unsigned cp)
{
    unsigned char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xc0 | cp >> 6);
        b[1] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xe0 | cp >> 12);
        b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        b[2] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xf0 | cp >> 18);
        b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
        b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        b[3] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    arena_put(s, b, n);
}

/*
 * The string starting at the opening quote (consumed by the caller),
 * unescaped into the arena when @keep, else only skipped. Returns its
 * arena offset; *len its length.
 */
static size_t read_string(struct scan *s, int keep, size_t *len)
{
    size_t start = s->alen;
    uint64_t at = offset_of(s);
    for (;;) {
        /* Copy the plain run up to a quote or a backslash at once. */
        const unsigned char *q = find_quote(s->p, s->end);
        if (keep) {
            if (s->alen - start + (size_t)(q - s->p) > TL_MAX_STRING)
                fail_at(s, at, "string longer than %u bytes", TL_MAX_STRING);
            arena_put(s, s->p, (size_t)(q - s->p));
        }
        s->p = q;
        int c = next(s);
        if (c < 0)
            longjmp(s->fail, TRUNCATED);
        if (c == '"')
            break;
        if (c != '\\') {
            /* The chunk ended inside the string: c opens the next one. */
            char ch = (char)c;
            if (keep)
                arena_put(s, &ch, 1);
            continue;
        }
        c = next(s);
        char e;
        switch (c) {
        case -1:
            longjmp(s->fail, TRUNCATED);
        case '"':
            e = '"';
            break;
        case '\\':
            e = '\\';
            break;
        case '/':
            e = '/';
            break;
        case 'b':
            e = '\b';
            break;
        case 'f':
            e = '\f';
            break;
        case 'n':
            e = '\n';
            break;
        case 'r':
            e = '\r';
            break;
        case 't':
            e = '\t';
            break;
        case 'u': {
            unsigned cp = read_hex4(s);
            if (cp >= 0xd800 && cp < 0xdc00 && peek(s) == '\\') {
                /* A surrogate pair makes one code point. */
                s->p++;
                if (next(s) != 'u')
                    FAIL(s, "bad escape after a high surrogate");
                unsigned lo = read_hex4(s);
                if (lo >= 0xdc00 && lo < 0xe000)
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                else if (keep) {
                    put_utf8(s, 0xfffd);
                    cp = lo;
                }
            } else if (cp >= 0xd800 && cp < 0xe000) {
                cp = 0xfffd; /* a lone surrogate */
            }
            if (keep)
                put_utf8(s, cp);
            continue;
        }
        default: {
            char b[32];
            FAIL(s, "bad escape \\%s in a string", describe(c, b, sizeof b));
        }
        }
        if (keep)
            arena_put(s, &e, 1);
    }
    *len = s->alen - start;
    if (keep)
        arena_put(s, "", 1); /* the NUL, not counted in len */
    return start;
}

/* Values ------------------------------------------------------------------ */

static int is_delim(int c)
{
    return c < 0 || c == ',' || c == '}' || c == ']' || c == ' ' || c == '\n' ||
           c == '\r' || c == '\t';
}

/* true, false or null, whichever @c starts. */
static void read_literal(struct scan *s)
{
    static const char *const words[] = {"true", "false", "null"};
    int c = peek(s);
    for (size_t i = 0; i < 3; i++) {
        if (c != words[i][0])
            continue;
        for (const char *w = words[i]; *w; w++) {
            int d = next(s);
            if (d < 0)
                longjmp(s->fail, TRUNCATED);
            if (d != *w)
                FAIL(s, "expected '%s'", words[i]);
        }
        if (!is_delim(peek(s)))
            FAIL(s, "expected ',' or a closing bracket after '%s'", words[i]);
        return;
    }
    char b[32];
    FAIL(s, "expected a JSON value, found %s", describe(c, b, sizeof b));
}

/* A JSON number's text, checked against the grammar, into @buf. */
static size_t read_number_text(struct scan *s, char *buf, size_t cap)
{
    size_t n = 0;
    int c, digits = 0;
    /* Fast path: a plain decimal well inside the chunk, read in place. */
    if (s->end - s->p > 64 && cap > 64) {
        const unsigned char *p = s->p, *q = p, *lim = p + 63, *d;
        q += *q == '-';
        for (d = q; q < lim && *q >= '0' && *q <= '9'; q++)
            ;
        if (q > d && q < lim && *q == '.')
            for (d = ++q; q < lim && *q >= '0' && *q <= '9'; q++)
                ;
        if (q > d && q < lim && *q != 'e' && *q != 'E' && is_delim(*q)) {
            n = (size_t)(q - p);
            memcpy(buf, p, n);
            buf[n] = '\0';
            s->p = q;
            return n;
        }
    }
#define TAKE()                                                                 \
    do {                                                                       \
        if (n + 1 < cap)                                                       \
            buf[n] = (char)c;                                                  \
        n++;                                                                   \
        s->p++;                                                                \
    } while (0)
    if ((c = peek(s)) == '-')
        TAKE();
    while ((c = peek(s)) >= '0' && c <= '9') {
        TAKE();
        digits++;
    }
    if (digits == 0)
        goto bad;
    if (c == '.') {
        TAKE();
        digits = 0;
        while ((c = peek(s)) >= '0' && c <= '9') {
            TAKE();
            digits++;
        }
        if (digits == 0)
            goto bad;
    }
    if (c == 'e' || c == 'E') {
        TAKE();
        if ((c = peek(s)) == '+' || c == '-')
            TAKE();
        digits = 0;
        while ((c = peek(s)) >= '0' && c <= '9') {
            TAKE();
            digits++;
        }
        if (digits == 0)
            goto bad;
    }
#undef TAKE
    if (!is_delim(peek(s)))
        goto bad;
    buf[n < cap ? n : cap - 1] = '\0';
    return n;
bad:
    if (peek(s) < 0)
        longjmp(s->fail, TRUNCATED);
    FAIL(s, "malformed number");
}

/*
 * A number of microseconds as integer nanoseconds: 0, or -1 when it does
 * not fit in 64 bits. Digits below 1 ns are rounded half away from zero
 * and *rounded is set.
 */
static int us_text_to_ns(const char *t, int *rounded, int64_t *out)
{
    const uint64_t full = 1000000000000000000u; /* 19 digits kept at most */
    int neg = *t == '-';
    t += neg;
    uint64_t m = 0;
    long exp10 = 0;
    int dropped = -1; /* first digit that did not fit, -1 none */
    int sticky = 0;   /* a nonzero digit did not fit */
    for (; *t >= '0' && *t <= '9'; t++) {
        if (m < full) {
            m = m * 10 + (uint64_t)(*t - '0');
        } else {
            exp10++; /* an integer digit more: out of range below */
            sticky |= *t != '0';
        }
    }
    if (*t == '.')
        for (t++; *t >= '0' && *t <= '9'; t++) {
            if (m < full) {
                m = m * 10 + (uint64_t)(*t - '0');
                exp10--;
            } else {
                if (dropped < 0)
                    dropped = *t - '0';
                sticky |= *t != '0';
            }
        }
    if (*t == 'e' || *t == 'E') {
        t++;
        int eneg = *t == '-';
        t += *t == '-' || *t == '+';
        long e = 0;
        for (; *t >= '0' && *t <= '9'; t++)
            if (e < 100000)
                e = e * 10 + (*t - '0');
        exp10 += eneg ? -e : e;
    }
    exp10 += 3; /* microseconds to nanoseconds */
    if (exp10 < 0) {
        /* The digits below 1 ns go; the first of them decides. */
        int last = 0;
        for (; exp10 < 0; exp10++) {
            if (m == 0) {
                /* Nothing left to divide: what remains is below 1 ns. */
                last = 0;
                break;
            }
            last = (int)(m % 10);
            sticky |= last != 0;
            m /= 10;
        }
        dropped = last;
    }
    for (; exp10 > 0 && m != 0; exp10--) {
        if (m > UINT64_MAX / 10)
            return -1;
        m *= 10;
    }
    if (sticky)
        *rounded = 1;
    if (dropped >= 5)
        m++;
    if (m > (uint64_t)INT64_MAX)
        return -1;
    *out = neg ? -(int64_t)m : (int64_t)m;
    return 0;
}

/* Skip one value of any kind, nested ones included, without recursion. */
static void skip_value(struct scan *s)
{
    size_t depth = 0;
    for (;;) {
        int c = peek_ws(s);
        if (c < 0)
            longjmp(s->fail, TRUNCATED);
        if (c == '{' || c == '[') {
            s->p++;
            if (depth == s->scap) {
                size_t cap = s->scap ? s->scap * 2 : 64;
                unsigned char *st = realloc(s->stack, cap);
                if (st == NULL)
                    FAIL(s, "out of memory");
                s->stack = st;
                s->scap = cap;
            }
            s->stack[depth++] = (unsigned char)(c == '{' ? '}' : ']');
            c = peek_ws(s);
            if (c == s->stack[depth - 1]) {
                s->p++;
                depth--;
                goto after_value;
            }
            if (s->stack[depth - 1] == '}')
                goto object_key;
            continue;
        }
        if (c == '"') {
            size_t len;
            s->p++;
            read_string(s, 0, &len);
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            char tmp[80]; /* room for read_number_text's fast path */
            read_number_text(s, tmp, sizeof tmp);
        } else {
            read_literal(s);
        }
after_value:
        /* After a value: a comma, or the closing bracket(s). */
        for (;;) {
            if (depth == 0)
                return;
            c = peek_ws(s);
            if (c < 0)
                longjmp(s->fail, TRUNCATED);
            if (c == s->stack[depth - 1]) {
                s->p++;
                depth--;
                continue;
            }
            if (c != ',') {
                char b[32];
                FAIL(s, "expected ',' or '%c', found %s", s->stack[depth - 1],
                     describe(c, b, sizeof b));
            }
            s->p++;
            break;
        }
        if (s->stack[depth - 1] != '}')
            continue;
object_key:
        expect(s, '"', "a member name");
        {
            size_t len;
            read_string(s, 0, &len);
        }
        expect(s, ':', "':'");
    }
}

/* Events ------------------------------------------------------------------ */

/* Where an event's string lies in the arena until the event is done. */
struct spot {
    size_t off, len;
    int set;
};

static void keep_string(struct scan *s, struct spot *sp)
{
    sp->off = read_string(s, 1, &sp->len);
    sp->set = 1;
}

/* A string, or a number kept as its text (pid, tid, id). */
static void keep_scalar(struct scan *s, struct spot *sp)
{
    int c = peek_ws(s);
    if (c == '"') {
        s->p++;
        keep_string(s, sp);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        char t[64];
        size_t n = read_number_text(s, t, sizeof t);
        sp->off = s->alen;
        sp->len = n < sizeof t ? n : sizeof t - 1;
        arena_put(s, t, sp->len);
        arena_put(s, "", 1);
        sp->set = 1;
    } else {
        skip_value(s); /* null, an object...: as if absent */
    }
}

/*
 * A time in µs: a number, or null (*is_null). Anything else fails, and so
 * does a time outside TL_MIN_NS..TL_MAX_NS (a duration: 0..TL_MAX_DUR_NS
 * for positive ones): within those bounds every sum and difference the
 * report takes of two of them fits in 64 bits.
 */
static int read_time(struct scan *s, const char *key, int64_t *ns, int *is_null)
{
    int c = peek_ws(s);
    uint64_t at = offset_of(s);
    if (c == 'n') {
        read_literal(s);
        *is_null = 1;
        return 0;
    }
    if (c != '-' && (c < '0' || c > '9')) {
        if (c < 0)
            longjmp(s->fail, TRUNCATED);
        char b[32];
        fail_at(s, at, "\"%s\" is not a number (found %s)", key,
                describe(c, b, sizeof b));
    }
    /* Fast path: up to 16 integer and 3 fraction digits, in the chunk:
     * 19 digits, exact in 64 bits; beyond INT64_MAX the slow path says
     * so. */
    if (s->end - s->p > 32) {
        const unsigned char *q = s->p;
        int neg = *q == '-', digits = 0, frac = 0;
        uint64_t v = 0;
        q += neg;
        for (; *q >= '0' && *q <= '9' && digits < 16; q++, digits++)
            v = v * 10 + (uint64_t)(*q - '0');
        if (digits > 0 && *q == '.')
            for (q++; *q >= '0' && *q <= '9' && frac < 3; q++, frac++)
                v = v * 10 + (uint64_t)(*q - '0');
        if (digits > 0 && (*q < '0' || *q > '9') && *q != '.' && *q != 'e' &&
            *q != 'E' && is_delim(*q) && (frac > 0 || q[-1] != '.')) {
            for (; frac < 3; frac++)
                v *= 10;
            if (v <= (uint64_t)INT64_MAX) {
                *ns = neg ? -(int64_t)v : (int64_t)v;
                s->p = q;
                return 1;
            }
        }
    }
    char t[400];
    size_t n = read_number_text(s, t, sizeof t);
    if (n >= sizeof t || us_text_to_ns(t, &s->res->ts_rounded, ns) != 0)
        fail_at(s, at, "\"%s\" is out of range: %.40s", key, t);
    return 1;
}

/* read_time within the bounds of @key ("ts" or "dur"). */
static int read_time_bounded(struct scan *s, const char *key, int64_t *ns,
                             int *is_null)
{
    uint64_t at = offset_of(s);
    int got = read_time(s, key, ns, is_null);
    if (got && key[0] == 't' && (*ns < TL_MIN_NS || *ns > TL_MAX_NS))
        fail_at(s, at,
                "\"ts\" is out of range: %lld ns (allowed: %lld to %lld)",
                (long long)*ns, (long long)TL_MIN_NS, (long long)TL_MAX_NS);
    if (got && key[0] == 'd' && *ns > TL_MAX_DUR_NS)
        fail_at(s, at, "\"dur\" is out of range: %lld ns (at most %lld)",
                (long long)*ns, (long long)TL_MAX_DUR_NS);
    return got;
}

/*
 * A member name, only compared: read in place when it lies whole in the
 * chunk without escapes (the common case), else through the arena. Valid
 * until the next read.
 */
struct key {
    const char *p;
    size_t len;
};

static void read_key(struct scan *s, struct key *k)
{
    expect(s, '"', "a member name");
    const unsigned char *q = find_quote(s->p, s->end);
    if (q < s->end && *q == '"') {
        k->p = (const char *)s->p;
        k->len = (size_t)(q - s->p);
        s->p = q + 1;
        /* The ':' and the value's first byte must be in this chunk too:
         * callers look at that byte before they are done with the name,
         * and a read would overwrite it. Else keep a copy. */
        const unsigned char *c = s->p;
        while (c < s->end && is_ws[*c])
            c++;
        if (c < s->end && *c == ':')
            for (c++; c < s->end && is_ws[*c]; c++)
                ;
        if (c == s->end) {
            struct spot sp = {s->alen, k->len, 1};
            arena_put(s, k->p, k->len);
            arena_put(s, "", 1);
            k->p = s->arena + sp.off;
        }
    } else {
        struct spot sp;
        keep_string(s, &sp);
        k->p = s->arena + sp.off;
        k->len = sp.len;
    }
    expect(s, ':', "':'");
}

/* Keep @k beyond the next read: its place in the arena. */
static struct spot key_keep(struct scan *s, const struct key *k)
{
    struct spot sp = {0, k->len, 1};
    if (s->arena != NULL && k->p >= s->arena && k->p < s->arena + s->alen) {
        sp.off = (size_t)(k->p - s->arena); /* read through the arena */
    } else {
        sp.off = s->alen;
        arena_put(s, k->p, k->len);
        arena_put(s, "", 1);
    }
    return sp;
}

/* A macro, so that the length of the literal @w is a constant. */
#define keyis(s, k, w)                                                         \
    ((void)(s),                                                                \
     (k)->len == sizeof(w) - 1 && memcmp((k)->p, (w), sizeof(w) - 1) == 0)

/* "args": its numeric members (and a string "name"), the rest skipped. */
/* At an object that must be one: 1 when it has members ('{' consumed),
 * 0 when it is {}. Anything else fails, naming @what was expected. */
static int object_open_required(struct scan *s, const char *what)
{
    expect(s, '{', what);
    if (peek_ws(s) == '}') {
        s->p++;
        return 0;
    }
    return 1;
}

/*
 * At a value: 1 when it is an object with members ('{' consumed); else the
 * value (of any other kind, or {}) is skipped and 0.
 */
static int object_open(struct scan *s)
{
    if (peek_ws(s) != '{') {
        skip_value(s);
        return 0;
    }
    return object_open_required(s, "'{'");
}

/* After a member: 1 when another follows, 0 at the end of the object. */
static int object_more(struct scan *s, const char *what)
{
    if (peek_ws(s) == '}') {
        s->p++;
        return 0;
    }
    expect(s, ',', what);
    return 1;
}

/*
 * @all: keep every numeric member (a counter, or a phase not seen yet);
 * else only "run".
 */
static void read_args(struct scan *s, struct spot *keys, struct spot *vals,
                      int *nargs, struct spot *name, int all)
{
    if (!object_open(s))
        return;
    do {
        struct key k;
        read_key(s, &k);
        int c = peek_ws(s);
        if ((c == '-' || (c >= '0' && c <= '9')) && *nargs < TL_MAX_ARGS &&
            (all || keyis(s, &k, "run"))) {
            /* The text only: converted for the events that use it. */
            keys[*nargs] = key_keep(s, &k);
            keep_scalar(s, &vals[*nargs]);
            (*nargs)++;
        } else if (c == '"' && keyis(s, &k, "name")) {
            s->p++;
            keep_string(s, name);
        } else {
            skip_value(s);
        }
    } while (object_more(s, "',' or '}' in \"args\""));
}

/* "id2": {"local": X} or {"global": X}. */
static void read_id2(struct scan *s, struct spot *id)
{
    if (!object_open(s))
        return;
    do {
        struct key key;
        struct spot v = {0};
        read_key(s, &key);
        struct spot k = key_keep(s, &key);
        keep_scalar(s, &v);
        if (v.set) {
            /* The id is "<key>:<value>", built at the arena's end. */
            size_t off = s->alen;
            arena_put(s, s->arena + k.off, k.len);
            arena_put(s, ":", 1);
            arena_put(s, s->arena + v.off, v.len);
            arena_put(s, "", 1);
            id->off = off;
            id->len = k.len + 1 + v.len;
            id->set = 1;
        }
    } while (object_more(s, "',' or '}' in \"id2\""));
}

static struct tl_str resolve(const struct scan *s, const struct spot *sp)
{
    struct tl_str r = {"", 0};
    if (sp->set) {
        r.p = s->arena + sp->off;
        r.len = sp->len;
    }
    return r;
}

/* One event object, from its '{'; returns the callback's answer. */
static int read_event(struct scan *s, tl_event_cb cb, void *arg)
{
    struct tl_event ev;
    struct spot name = {0}, cat = {0}, pid = {0}, tid = {0}, id = {0}, ph = {0},
                argname = {0}, keys[TL_MAX_ARGS];
    struct spot vals[TL_MAX_ARGS];
    memset(&ev, 0, sizeof ev);
    ev.offset = offset_of(s);
    s->alen = 0;
    int members = object_open_required(s, "an event object '{'");
    while (members) {
        struct key k;
        read_key(s, &k);
        /* Duplicate keys: the last one wins, as in browsers. */
        struct spot *scalar = keyis(s, &k, "ph")     ? &ph
                              : keyis(s, &k, "name") ? &name
                              : keyis(s, &k, "cat")  ? &cat
                              : keyis(s, &k, "pid")  ? &pid
                              : keyis(s, &k, "tid")  ? &tid
                              : keyis(s, &k, "id")   ? &id
                                                     : NULL;
        if (scalar != NULL) {
            scalar->set = 0;
            keep_scalar(s, scalar);
        } else if (keyis(s, &k, "id2")) {
            id.set = 0;
            read_id2(s, &id);
        } else if (keyis(s, &k, "ts")) {
            int is_null = 0;
            ev.has_ts = read_time_bounded(s, "ts", &ev.ts_ns, &is_null);
        } else if (keyis(s, &k, "dur")) {
            int is_null = 0;
            ev.has_dur = read_time_bounded(s, "dur", &ev.dur_ns, &is_null);
        } else if (keyis(s, &k, "args")) {
            ev.nargs = 0;
            argname.set = 0;
            /* Only counters use every value: for an event whose phase is
             * known and not C, the others are skipped unread. */
            read_args(s, keys, vals, &ev.nargs, &argname,
                      (s->flags & TL_ALL_ARGS) || !ph.set || ph.len != 1 ||
                          s->arena[ph.off] == 'C');
        } else {
            skip_value(s);
        }
        members = object_more(s, "',' or '}' in an event");
    }
    ev.ph = ph.set && ph.len == 1 ? s->arena[ph.off] : (ph.set ? '?' : 0);
    ev.name = resolve(s, &name);
    ev.cat = resolve(s, &cat);
    ev.pid = resolve(s, &pid);
    ev.tid = resolve(s, &tid);
    ev.id = resolve(s, &id);
    if (argname.set)
        ev.arg_name = resolve(s, &argname);
    for (int i = 0; i < ev.nargs; i++) {
        ev.args[i].key = resolve(s, &keys[i]);
        /* Only counters use the values: the others skip strtod. */
        ev.args[i].value = ev.ph == 'C' || (s->flags & TL_ALL_ARGS)
                               ? strtod(s->arena + vals[i].off, NULL)
                               : 0.0;
        if (keyis(s, &ev.args[i].key, "run")) {
            /* A run id: a whole number, read exactly. */
            const char *d = s->arena + vals[i].off;
            uint64_t v = 0;
            int ok = *d >= '1' && *d <= '9';
            for (; ok && *d >= '0' && *d <= '9'; d++) {
                ok = v <= (UINT64_MAX - (uint64_t)(*d - '0')) / 10;
                v = v * 10 + (uint64_t)(*d - '0');
            }
            ev.has_run = ok && *d == '\0';
            ev.run = ev.has_run ? v : 0;
        }
    }
    s->res->events++;
    return cb(arg, &ev);
}

/* The events array, from its '['. */
static void read_events(struct scan *s, tl_event_cb cb, void *arg, int bare)
{
    expect(s, '[', "'[' of the events array");
    int c = peek_ws(s);
    if (c == ']') {
        s->p++;
        return;
    }
    for (;;) {
        c = peek_ws(s);
        if (c < 0) {
            if (bare && s->res->events > 0) {
                s->res->unclosed = 1; /* allowed: the bracket is optional */
                return;
            }
            longjmp(s->fail, TRUNCATED);
        }
        if (c != '{') {
            char b[32];
            FAIL(s, "expected an event object '{', found %s",
                 describe(c, b, sizeof b));
        }
        if (read_event(s, cb, arg) != 0)
            return;
        c = peek_ws(s);
        if (c == ']') {
            s->p++;
            return;
        }
        if (c < 0 && bare) {
            s->res->unclosed = 1;
            return;
        }
        expect(s, ',', "',' or ']' after an event");
        /* A trailing comma before the end of a bare array is allowed. */
        if (bare && peek_ws(s) < 0) {
            s->res->unclosed = 1;
            return;
        }
    }
}

/* stageprof's trailer: the two figures the report states. */
static void read_summary(struct scan *s)
{
    if (peek_ws(s) == '{')
        s->res->has_summary = 1;
    if (!object_open(s))
        return;
    do {
        struct key k;
        s->alen = 0;
        read_key(s, &k);
        int c = peek_ws(s);
        if (keyis(s, &k, "events_dropped_total") &&
            (c == '-' || (c >= '0' && c <= '9'))) {
            char t[64];
            read_number_text(s, t, sizeof t);
            s->res->dropped = strtoll(t, NULL, 10);
        } else if (keyis(s, &k, "complete") && (c == 't' || c == 'f')) {
            read_literal(s);
            s->res->complete = c == 't';
        } else {
            skip_value(s);
        }
    } while (object_more(s, "',' or '}'"));
}

/*
 * A scalar value as text into @buf (cut to @cap - 1 bytes): a string's
 * contents, a number's digits, true, false or null. Anything else is
 * skipped and gives "". Returns 1 for a scalar.
 */
static int read_scalar_text(struct scan *s, char *buf, size_t cap)
{
    int c = peek_ws(s);
    buf[0] = '\0';
    if (c == '"') {
        s->p++;
        size_t len, off = read_string(s, 1, &len);
        size_t n = len < cap - 1 ? len : cap - 1;
        memcpy(buf, s->arena + off, n);
        buf[n] = '\0';
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        size_t n = read_number_text(s, buf, cap);
        buf[n < cap ? n : cap - 1] = '\0';
    } else if (c == 't' || c == 'f' || c == 'n') {
        read_literal(s);
        snprintf(buf, cap, "%s",
                 c == 't'   ? "true"
                 : c == 'f' ? "false"
                            : "null");
    } else {
        skip_value(s);
        return 0;
    }
    return 1;
}

/* Append @sep (when @buf is not empty) and @piece to @buf, cut at @cap. */
static void text_append(char *buf, size_t cap, const char *sep,
                        const char *piece)
{
    size_t len = strlen(buf);
    if (len > 0 && len + 1 < cap)
        len += (size_t)snprintf(buf + len, cap - len, "%s", sep);
    if (len + 1 < cap)
        snprintf(buf + len, cap - len, "%s", piece);
}

/* An array of scalars, joined by spaces; anything else is skipped. */
static void read_text_array(struct scan *s, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (peek_ws(s) != '[') {
        skip_value(s);
        return;
    }
    s->p++;
    if (peek_ws(s) == ']') {
        s->p++;
        return;
    }
    for (;;) {
        char piece[512];
        s->alen = 0;
        read_scalar_text(s, piece, sizeof piece);
        text_append(buf, cap, " ", piece);
        if (peek_ws(s) != ',')
            break;
        s->p++;
    }
    expect(s, ']', "',' or ']'");
}

/* The header's fields @m holds; the rest skipped. */
static void read_header(struct scan *s, struct tl_meta *m)
{
    if (!object_open(s))
        return;
    m->present = 1;
    do {
        struct key k;
        s->alen = 0;
        read_key(s, &k);
        char num[64];
        if (keyis(s, &k, "version")) {
            read_scalar_text(s, m->version, sizeof m->version);
        } else if (keyis(s, &k, "host")) {
            read_scalar_text(s, m->host, sizeof m->host);
        } else if (keyis(s, &k, "cpu_model")) {
            read_scalar_text(s, m->cpu_model, sizeof m->cpu_model);
        } else if (keyis(s, &k, "kernel")) {
            read_scalar_text(s, m->kernel, sizeof m->kernel);
        } else if (keyis(s, &k, "arch")) {
            read_scalar_text(s, m->arch, sizeof m->arch);
        } else if (keyis(s, &k, "cores")) {
            if (read_scalar_text(s, num, sizeof num) && num[0] >= '0' &&
                num[0] <= '9')
                m->cores = strtoll(num, NULL, 10);
        } else if (keyis(s, &k, "command_line")) {
            read_text_array(s, m->command_line, sizeof m->command_line);
        } else if (keyis(s, &k, "clock")) {
            int more = object_open(s);
            while (more) {
                s->alen = 0;
                read_key(s, &k);
                if (keyis(s, &k, "source"))
                    read_scalar_text(s, m->clock, sizeof m->clock);
                else
                    skip_value(s);
                more = object_more(s, "',' or '}'");
            }
        } else if (keyis(s, &k, "config")) {
            int more = object_open(s);
            while (more) {
                s->alen = 0;
                read_key(s, &k);
                char name[128], value[512], pair[700];
                size_t n = k.len < sizeof name - 1 ? k.len : sizeof name - 1;
                memcpy(name, k.p, n);
                name[n] = '\0';
                /* Where the files went is no setting of the run. */
                if (read_scalar_text(s, value, sizeof value) &&
                    strcmp(name, "dir") != 0) {
                    snprintf(pair, sizeof pair, "%s=%s", name, value);
                    text_append(m->config, sizeof m->config, ", ", pair);
                }
                more = object_more(s, "',' or '}'");
            }
        } else {
            skip_value(s);
        }
    } while (object_more(s, "',' or '}'"));
}

/* Object form: members in any order, traceEvents among them. */
static void read_object(struct scan *s, tl_event_cb cb, void *arg)
{
    int have_events = 0;
    int members = object_open_required(s, "'{'");
    while (members) {
        struct key k;
        s->alen = 0;
        read_key(s, &k);
        if (keyis(s, &k, "traceEvents")) {
            have_events = 1;
            read_events(s, cb, arg, 0);
        } else if (keyis(s, &k, "stageprof_summary")) {
            read_summary(s);
        } else if (keyis(s, &k, "stageprof")) {
            s->res->producer = "stageprof";
            read_header(s, &s->res->meta);
        } else if (keyis(s, &k, "displayTimeUnit")) {
            read_scalar_text(s, s->res->display_unit,
                             sizeof s->res->display_unit);
        } else {
            if ((keyis(s, &k, "schemaVersion") ||
                 keyis(s, &k, "deviceProperties") ||
                 keyis(s, &k, "traceName")) &&
                strcmp(s->res->producer, "stageprof") != 0)
                s->res->producer = "pytorch";
            skip_value(s);
        }
        members = object_more(s, "',' or '}'");
    }
    if (!have_events)
        FAIL(s, "not a trace: the object has no \"traceEvents\" array");
}

/* Line and column of byte @at, by reading @path again; 0 when unknown. */
static int line_col(const char *path, uint64_t at, uint64_t *line,
                    uint64_t *col)
{
    if (strcmp(path, "-") == 0)
        return 0;
    gzFile gz = gzopen(path, "rb");
    if (gz == NULL)
        return 0;
    unsigned char buf[65536];
    uint64_t pos = 0, l = 1, c = 1;
    int n;
    while (pos < at && (n = gzread(gz, buf, sizeof buf)) > 0)
        for (int i = 0; i < n && pos < at; i++, pos++) {
            if (buf[i] == '\n') {
                l++;
                c = 1;
            } else {
                c++;
            }
        }
    gzclose(gz);
    *line = l;
    *col = c;
    return pos == at;
}

int tl_read(const char *path, tl_event_cb cb, void *arg, struct tl_result *res,
            char *err, size_t errlen)
{
    return tl_read_opts(path, cb, arg, 0, res, err, errlen);
}

int tl_read_opts(const char *path, tl_event_cb cb, void *arg, unsigned flags,
                 struct tl_result *res, char *err, size_t errlen)
{
    struct scan *s = calloc(1, sizeof *s);
    memset(res, 0, sizeof *res);
    res->producer = "chrome";
    res->dropped = -1;
    res->complete = -1;
    res->meta.cores = -1;
    if (s == NULL || (s->buf = malloc(BUF_SIZE)) == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        if (s != NULL)
            free(s);
        return -1;
    }
    /* Smaller reads put chunk boundaries everywhere: for tests. */
    const char *chunk = getenv("STAGEPROF_READ_CHUNK");
    long bytes = chunk ? strtol(chunk, NULL, 10) : 0;
    s->chunk =
        bytes >= 1 && bytes <= (long)BUF_SIZE ? (unsigned)bytes : BUF_SIZE;
    s->path = path;
    s->flags = flags;
    s->err = err;
    s->errlen = errlen;
    s->res = res;
    s->p = s->end = s->buf;
    int rc = 0;
    if (strcmp(path, "-") == 0)
        s->gz = gzdopen(dup(0), "rb");
    else
        s->gz = gzopen(path, "rb");
    if (s->gz == NULL) {
        snprintf(err, errlen, "%s: %s", path,
                 errno ? strerror(errno) : "cannot open");
        rc = -1;
        goto out;
    }
    gzbuffer(s->gz, 256 * 1024);

    int how = setjmp(s->fail);
    if (how == 0) {
        int c = peek_ws(s);
        if (c < 0) {
            fail_at(s, 0, "empty file, expected a JSON trace");
        } else if (c == '[') {
            read_events(s, cb, arg, 1);
        } else if (c == '{') {
            read_object(s, cb, arg);
        } else {
            char b[32];
            FAIL(s, "not a JSON trace: expected '{' or '[', found %s",
                 describe(c, b, sizeof b));
        }
        if (!res->unclosed && peek_ws(s) >= 0) {
            char b[32];
            FAIL(s, "unexpected %s after the trace",
                 describe(peek_ws(s), b, sizeof b));
        }
    } else if (how == TRUNCATED) {
        res->truncated = 1;
    } else {
        /* err holds the message: put the file and place in front. */
        char msg[512];
        uint64_t line, col;
        snprintf(msg, sizeof msg, "%s", err);
        if (line_col(path, s->err_at, &line, &col))
            snprintf(err, errlen, "%s: byte %llu (line %llu, column %llu): %s",
                     path, (unsigned long long)s->err_at,
                     (unsigned long long)line, (unsigned long long)col, msg);
        else
            snprintf(err, errlen, "%s: byte %llu: %s", path,
                     (unsigned long long)s->err_at, msg);
        rc = -1;
    }
out:
    if (s->gz != NULL)
        gzclose(s->gz);
    free(s->buf);
    free(s->arena);
    free(s->stack);
    free(s);
    return rc;
}
