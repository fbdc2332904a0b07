/*
 * span.c - spans, instants and their arguments.
 *
 * A span is a BEGIN record, any ARG records, and an END record on the same
 * thread. The thread keeps a stack of the serials of its open spans, so
 * misuse (ending twice, on another thread, out of order) is caught here and
 * counted, and the writer only ever sees balanced, properly nested spans.
 *
 * Hot path: stageprof_span_begin and stageprof_span_end take no lock, make
 * no system call and write only the calling thread's memory.
 */
#include <string.h>

#include "tbuf.h"

/* Open a span whose BEGIN record of @size bytes (@kind) is at the result. */
static inline struct rec *begin_record(struct tbuf *tb, size_t size)
{
    /* Room for the record plus the end of every open span and of this one. */
    if (unlikely(tb->pos + size + REC_SIZE > tb->limit)) {
        if (!stageprof__tbuf_grow(tb, size + REC_SIZE)) {
            BUMP(&tb->dropped);
            return NULL;
        }
    }
    struct rec *r = (struct rec *)tb->pos;
    tb->pos += size;
    tb->limit -= REC_SIZE;
    return r;
}

/* Push a span opened at level @depth (== tb->depth) on the thread's stack. */
static inline stageprof_span_t push_span(struct tbuf *tb, unsigned depth)
{
    unsigned serial = tb->serial + 1;
    tb->serial = serial;
    tb->stack_serial[depth] = serial;
    tb->depth = depth + 1;
    stageprof_span_t sp;
    sp.owner = tb;
    sp.depth = depth;
    sp.serial = serial;
    return sp;
}

/*
 * Write a BEGIN record at @pos (room checked, reserve for its end included)
 * and push the span on the thread's stack.
 */
static inline stageprof_span_t begin_write(struct tbuf *tb, unsigned char *pos,
                                           unsigned depth,
                                           stageprof_site_t *site, uint64_t now)
{
    struct rec *r = (struct rec *)pos;
    r->a = now;
    r->b = (uintptr_t)site | REC_BEGIN;
    pos += REC_SIZE;
    tb->pos = pos;
    tb->limit -= REC_SIZE;
    tbuf_commit_at(tb, pos);
    return push_span(tb, depth);
}

/* Every case the fast path below does not take: the general code. */
static __attribute__((noinline)) stageprof_span_t
begin_slow(stageprof_site_t *site)
{
    struct tbuf *tb = tbuf_for(site);
    if (unlikely(tb == NULL))
        return stageprof_span_none();
    unsigned depth = tb->depth;
    if (unlikely(depth >= STAGEPROF_MAX_DEPTH)) {
        BUMP(&tb->mis_depth);
        return stageprof_span_none();
    }
    struct rec *r = begin_record(tb, REC_SIZE);
    if (unlikely(r == NULL))
        return stageprof_span_none();
    r->a = clock_ticks();
    r->b = (uintptr_t)site | REC_BEGIN;
    tbuf_commit(tb);
    return push_span(tb, depth);
}

/*
 * The common case as a leaf function (no call, so no register saved): tracing
 * with the TSC, the site's category already resolved, the thread's buffer
 * present with room, nesting within bounds. Anything else goes to
 * begin_slow(), which checks everything again.
 */
stageprof_span_t stageprof_span_begin(stageprof_site_t *site)
{
    struct tbuf *tb = stageprof__tls;
    if (unlikely(LOAD_RELAXED(&stageprof_hot_state) != STATE_TRACING ||
                 site == NULL || tb == NULL || tb->muted ||
                 LOAD_RELAXED(&site->filter) !=
                     LOAD_RELAXED(&stageprof__g.filter_token)))
        return begin_slow(site);
    unsigned depth = tb->depth;
    unsigned char *pos = tb->pos;
    if (unlikely(depth >= STAGEPROF_MAX_DEPTH ||
                 pos + 2 * REC_SIZE > tb->limit ||
                 LOAD_RELAXED(&stageprof__g.clock_mode) != CLOCK_MODE_TSC))
        return begin_slow(site);
    return begin_write(tb, pos, depth, site, tsc_ticks());
}

/* Copy at most STAGEPROF_MAX_STRING bytes of @s; counts truncation. */
static size_t bounded_len(struct tbuf *tb, const char *s)
{
    size_t len = strnlen(s, STAGEPROF_MAX_STRING + 1);
    if (len > STAGEPROF_MAX_STRING) {
        BUMP(&tb->truncated);
        len = STAGEPROF_MAX_STRING;
    }
    return len;
}

stageprof_span_t stageprof_span_begin_name(stageprof_site_t *site,
                                           const char *name)
{
    if (name == NULL)
        name = "";
    struct tbuf *tb = tbuf_for(site);
    if (unlikely(tb == NULL))
        return stageprof_span_none();
    if (unlikely(tb->depth >= STAGEPROF_MAX_DEPTH)) {
        BUMP(&tb->mis_depth);
        return stageprof_span_none();
    }
    size_t len = bounded_len(tb, name);
    struct rec *r = begin_record(tb, 2 * REC_SIZE + str_slots(len));
    if (unlikely(r == NULL))
        return stageprof_span_none();
    r[0].a = clock_ticks();
    r[0].b = (uintptr_t)site | REC_BEGIN_NAME;
    r[1].a = len;
    r[1].b = 0;
    memcpy(&r[2], name, len);
    tbuf_commit(tb);
    return push_span(tb, tb->depth);
}

/* Write one END record into space reserved by its begin. */
static inline void end_record(struct tbuf *tb, uint64_t now)
{
    struct rec *r = (struct rec *)tb->pos;
    r->a = now;
    r->b = REC_END;
    tb->pos += REC_SIZE;
    tb->limit += REC_SIZE;
    tb->depth--;
}

/* Every case the fast path below does not take, with the time read. */
static __attribute__((noinline)) void end_slow(stageprof_span_t *span,
                                               uint64_t now)
{
    struct tbuf *tb = stageprof__tls;
    if (unlikely(span->owner != tb)) {
        if (tb != NULL)
            BUMP(&tb->mis_end_other);
        else
            __atomic_fetch_add(&stageprof__g.misuse_no_tbuf, 1,
                               __ATOMIC_RELAXED);
        return;
    }
    unsigned d = span->depth;
    unsigned depth = tb->depth;
    if (unlikely(d >= depth || tb->stack_serial[d] != span->serial)) {
        BUMP(&tb->mis_end_twice);
        span->depth = SPAN_ENDED;
        return;
    }
    /* Inner spans left open are closed at the same time, and counted. */
    while (unlikely(tb->depth > d + 1)) {
        BUMP(&tb->mis_unclosed);
        end_record(tb, now);
    }
    end_record(tb, now);
    tbuf_commit(tb);
    span->depth = SPAN_ENDED;
}

static __attribute__((noinline)) void end_slow_clock(stageprof_span_t *span)
{
    end_slow(span, stageprof__clock_slow_ticks());
}

/*
 * The common case as a leaf function: the TSC, the span ended on its own
 * thread, innermost first, once. Anything else goes to end_slow().
 */
void stageprof_span_end(stageprof_span_t *span)
{
    if (span == NULL || span->owner == NULL)
        return;
    /* Time first: the span's own bookkeeping is not part of it. */
    if (unlikely(LOAD_RELAXED(&stageprof__g.clock_mode) != CLOCK_MODE_TSC)) {
        end_slow_clock(span);
        return;
    }
    uint64_t now = tsc_ticks();
    struct tbuf *tb = stageprof__tls;
    unsigned d = span->depth;
    /* 64-bit sum: the SPAN_ENDED marker must not wrap to depth 0. */
    if (unlikely(span->owner != tb || (uint64_t)d + 1 != tb->depth ||
                 tb->stack_serial[d] != span->serial)) {
        end_slow(span, now);
        return;
    }
    end_record(tb, now);
    tbuf_commit(tb);
    span->depth = SPAN_ENDED;
}

void stageprof_span_complete(stageprof_site_t *site, uint64_t start_ns,
                             uint64_t dur_ns)
{
    struct tbuf *tb = tbuf_for(site);
    if (unlikely(tb == NULL))
        return;
    tbuf_put_pair(tb, site, REC_COMPLETE, start_ns, dur_ns, 0);
}

stageprof_span_t stageprof_instant(stageprof_site_t *site)
{
    struct tbuf *tb = tbuf_for(site);
    if (unlikely(tb == NULL))
        return stageprof_span_none();
    struct rec *r = tbuf_reserve(tb, REC_SIZE);
    if (r == NULL)
        return stageprof_span_none();
    r->a = clock_ticks();
    r->b = (uintptr_t)site | REC_INSTANT;
    tbuf_commit(tb);
    tb->after_instant = tb->pos;
    tb->instant_serial = ++tb->serial;
    stageprof_span_t s;
    s.owner = tb;
    s.depth = SPAN_INSTANT;
    s.serial = tb->instant_serial;
    return s;
}

/*
 * The ARG target for @span on the calling thread, or -1 (misuse counted)
 * when the span or instant is no longer open for arguments.
 */
static long arg_target(struct tbuf **tbp, const stageprof_span_t *span)
{
    if (span == NULL || span->owner == NULL)
        return -1;
    if (LOAD_RELAXED(&stageprof_hot_state) != STATE_TRACING)
        return -1;
    struct tbuf *tb = stageprof__tls;
    if (span->owner != tb) {
        if (tb != NULL)
            BUMP(&tb->mis_arg);
        return -1;
    }
    *tbp = tb;
    if (span->depth == SPAN_INSTANT) {
        if (tb->after_instant != tb->pos ||
            tb->instant_serial != span->serial) {
            BUMP(&tb->mis_arg);
            return -1;
        }
        return ARG_TARGET_INSTANT;
    }
    if (span->depth >= tb->depth ||
        tb->stack_serial[span->depth] != span->serial) {
        BUMP(&tb->mis_arg);
        return -1;
    }
    return (long)span->depth;
}

static void put_arg(const stageprof_span_t *span, const char *key, int type,
                    uint64_t bits, const char *str)
{
    struct tbuf *tb;
    long target = arg_target(&tb, span);
    if (target < 0 || key == NULL)
        return;
    size_t len = str ? bounded_len(tb, str) : 0;
    struct rec *r = tbuf_reserve(tb, 2 * REC_SIZE + str_slots(len));
    if (r == NULL)
        return;
    r[0].a = (uintptr_t)key;
    r[0].b = REC_ARG | ((uint64_t)type << 4) | ((uint64_t)target << 8);
    r[1].a = str ? len : bits;
    r[1].b = 0;
    if (str)
        memcpy(&r[2], str, len);
    tbuf_commit(tb);
    /* An instant keeps taking arguments until something else is recorded. */
    if (target == ARG_TARGET_INSTANT)
        tb->after_instant = tb->pos;
}

void stageprof_span_arg_int(const stageprof_span_t *span, const char *key,
                            int64_t value)
{
    put_arg(span, key, ARG_INT, (uint64_t)value, NULL);
}

void stageprof_span_arg_double(const stageprof_span_t *span, const char *key,
                               double value)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    put_arg(span, key, ARG_DOUBLE, bits, NULL);
}

void stageprof_span_arg_str(const stageprof_span_t *span, const char *key,
                            const char *value)
{
    put_arg(span, key, ARG_STR, 0, value ? value : "");
}
