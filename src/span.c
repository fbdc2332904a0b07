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

#include "metrics.h"
#include "tbuf.h"

/*
 * Spans counted in the metrics only (metrics mode, or tracing with the span
 * not recorded: category filtered, run not sampled, buffer full) carry
 * their series and begin time in the span value itself: owner is the slot
 * shifted left and tagged with bit 0 (a tbuf pointer never has it), depth
 * and serial the low and high halves of the begin ticks. They need no
 * thread state, so they may end on any thread.
 */
static inline int metrics_on(void)
{
    return LOAD_RELAXED(&stageprof__metrics_on);
}

static inline int is_metered_only(const stageprof_span_t *s)
{
    return ((uintptr_t)s->owner & 1u) != 0;
}

/* A metrics-only span of @slot beginning now (none without a series). */
static stageprof_span_t metered_only(uint32_t slot)
{
    if (slot == UINT32_MAX)
        return stageprof_span_none();
    uint64_t now = clock_ticks();
    stageprof_span_t s;
    s.owner = (void *)(((uintptr_t)slot << 1) | 1u);
    s.depth = (unsigned)now;
    s.serial = (unsigned)(now >> 32);
    return s;
}

/* A span that is not recorded: counted in the metrics when they are on. */
static stageprof_span_t unrecorded(stageprof_site_t *site)
{
    if (!metrics_on() || site == NULL)
        return stageprof_span_none();
    return metered_only(stageprof__metrics_stage(site));
}

/* End a metrics-only span at @now. */
static void end_metered_only(stageprof_span_t *span, uint64_t now)
{
    uint64_t start = (uint64_t)span->depth | ((uint64_t)span->serial << 32);
    uint32_t slot = (uint32_t)((uintptr_t)span->owner >> 1);
    span->owner = NULL;
    span->depth = SPAN_ENDED;
    stageprof__metrics_observe(slot, now - start);
}

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
                                           stageprof_site_t *site, uint64_t now,
                                           uint32_t slot)
{
    tb->mslot[depth] = slot;
    tb->mstart[depth] = now;
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
    /* Metrics only: no thread buffer, no category rules to consult. */
    if (LOAD_RELAXED(&stageprof_hot_state) == STATE_METRICS)
        return unrecorded(site);
    struct tbuf *tb = tbuf_for(site);
    if (unlikely(tb == NULL))
        return unrecorded(site);
    unsigned depth = tb->depth;
    if (unlikely(depth >= STAGEPROF_MAX_DEPTH)) {
        BUMP(&tb->mis_depth);
        return unrecorded(site);
    }
    uint32_t slot =
        metrics_on() && site ? stageprof__metrics_stage(site) : UINT32_MAX;
    struct rec *r = begin_record(tb, REC_SIZE);
    if (unlikely(r == NULL))
        return slot == UINT32_MAX ? stageprof_span_none() : metered_only(slot);
    uint64_t now = clock_ticks();
    r->a = now;
    r->b = (uintptr_t)site | REC_BEGIN;
    tbuf_commit(tb);
    tb->mslot[depth] = slot;
    tb->mstart[depth] = now;
    return push_span(tb, depth);
}

/* The fast path's case with metrics on: resolve the series first. */
static __attribute__((noinline)) stageprof_span_t
begin_metered(struct tbuf *tb, unsigned depth, stageprof_site_t *site)
{
    uint32_t slot = stageprof__metrics_stage(site);
    return begin_write(tb, tb->pos, depth, site, tsc_ticks(), slot);
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
    uint32_t slot = UINT32_MAX;
    if (unlikely(metrics_on())) {
        /* The site's cached series; resolving it is the slow path's. */
        unsigned m = LOAD_RELAXED(&site->metric);
        if (unlikely(m == 0))
            return begin_metered(tb, depth, site);
        slot = m - 1;
    }
    return begin_write(tb, pos, depth, site, tsc_ticks(), slot);
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
    /* A name known at run time is looked up (under a lock) every time. */
    uint32_t slot =
        metrics_on() ? stageprof__metrics_stage_named(site, name) : UINT32_MAX;
    if (unlikely(tb == NULL))
        return metered_only(slot);
    if (unlikely(tb->depth >= STAGEPROF_MAX_DEPTH)) {
        BUMP(&tb->mis_depth);
        return metered_only(slot);
    }
    size_t len = bounded_len(tb, name);
    struct rec *r = begin_record(tb, 2 * REC_SIZE + str_slots(len));
    if (unlikely(r == NULL))
        return metered_only(slot);
    uint64_t now = clock_ticks();
    tb->mslot[tb->depth] = slot;
    tb->mstart[tb->depth] = now;
    r[0].a = now;
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

/* Count the span just ended at level tb->depth in the metrics. */
static __attribute__((noinline)) void end_observe(struct tbuf *tb, uint64_t now)
{
    unsigned d = tb->depth;
    if (tb->mslot[d] != UINT32_MAX && now > tb->mstart[d])
        stageprof__metrics_observe(tb->mslot[d], now - tb->mstart[d]);
}

/* Every case the fast path below does not take, with the time read. */
static __attribute__((noinline)) void end_slow(stageprof_span_t *span,
                                               uint64_t now)
{
    struct tbuf *tb = stageprof__tls;
    if (is_metered_only(span)) {
        end_metered_only(span, now);
        return;
    }
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
        if (metrics_on())
            end_observe(tb, now);
    }
    end_record(tb, now);
    tbuf_commit(tb);
    span->depth = SPAN_ENDED;
    if (metrics_on())
        end_observe(tb, now);
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
        if (is_metered_only(span))
            end_metered_only(span, now);
        else
            end_slow(span, now);
        return;
    }
    end_record(tb, now);
    tbuf_commit(tb);
    span->depth = SPAN_ENDED;
    if (unlikely(metrics_on()))
        stageprof__metrics_observe(tb->mslot[d], now - tb->mstart[d]);
}

void stageprof_span_complete(stageprof_site_t *site, uint64_t start_ns,
                             uint64_t dur_ns)
{
    struct tbuf *tb = tbuf_for(site);
    if (unlikely(metrics_on()) && site != NULL)
        stageprof__metrics_observe_ns(stageprof__metrics_stage(site), dur_ns);
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
    if (span == NULL || span->owner == NULL || is_metered_only(span))
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
