/*
 * capture.c - on-demand captures for GET /capture: the ring's content now
 * (mode=recent) or the events of a window that starts delay_ms after the
 * request and lasts duration_ms, written into memory as one Chrome trace.
 *
 * Who calls: http.c, on a capture thread of its own (never the endpoint's
 * thread, which stays free for /metrics while a window runs). One capture
 * at a time: the slot is an atomic flag claimed by the endpoint's thread
 * and released by the capture thread before it hands the answer back.
 *
 * The two ways a window is recorded:
 *
 *   tracing (STATE_TRACING, STAGEPROF_ENABLE): the events are recorded
 *     anyway. Wait until the window ends, then write the buffers with
 *     WRITE_KEEP (nothing consumed: trace files still get everything),
 *     keeping only the events inside the window.
 *
 *   metrics (STATE_METRICS): after the delay, switch the state word to
 *     STATE_TRACING. start_locked already set up all that recording needs
 *     in a live session (the byte budget and chunk size, the run ring, the
 *     clock and its anchors, the time base, the category generation), so
 *     the switch is one store under g.lock. At the window's end the state
 *     goes back to STATE_METRICS first, then a consuming write (no
 *     WRITE_KEEP) answers and frees what the window recorded, so nothing
 *     piles up between captures.
 *
 *       METRICS --delay--> TRACING --duration--> METRICS --> write (consume)
 *
 * The switch is undone only if the session that was switched is still the
 * one in force (same category generation, still TRACING): a stop during
 * the window leaves the state to the stop.
 *
 * Waiting is done in slices of CAPTURE_SLICE_MS, each a poll() on the
 * client's socket for a hang-up, so a client that goes away (or a stop of
 * the endpoint, through *cancel) ends the capture within one slice.
 *
 * The body is the writer's output with a "capture" member written into
 * the blanks it reserves after the opening brace (CAPTURE_RESERVE): the
 * numbers are known only after the events are written, and JSON allows
 * the blanks left over.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "capture.h"
#include "ring.h"
#include "tbuf.h"
#include "util/json.h"
#include "util/strbuf.h"

#ifndef POLLRDHUP /* Linux's peer-closed flag; elsewhere only POLLHUP */
#define POLLRDHUP 0
#endif

/* Longest wait between two checks of the client and of *cancel. */
#define CAPTURE_SLICE_MS 50

/* Bits of capture_params.seen. */
enum {
    SEEN_MODE = 1,
    SEEN_DURATION = 2,
    SEEN_DELAY = 4,
    SEEN_MAX = 8,
    SEEN_CATS = 16
};

static int capture_busy; /* the slot (atomic) */

/* ------------------------------------------------------------------------ */
/* Parameters                                                               */
/* ------------------------------------------------------------------------ */

void stageprof__capture_params_init(struct capture_params *p)
{
    memset(p, 0, sizeof *p);
    p->duration_ms = CAPTURE_DURATION_DEFAULT_MS;
    p->max_events = CAPTURE_MAX_EVENTS;
}

/*
 * @v as a decimal integer in [@lo, @hi]: digits only (no sign, blank or
 * exponent), at most 12 of them so nothing overflows.
 */
static int parse_ms(const char *key, const char *v, long long lo, long long hi,
                    long long *out, char *why, size_t len)
{
    size_t n = v != NULL ? strlen(v) : 0;
    int ok = n > 0 && n <= 12;
    long long x = 0;
    for (size_t i = 0; ok && i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            ok = 0;
        else
            x = x * 10 + (v[i] - '0');
    }
    if (!ok || x < lo || x > hi) {
        snprintf(why, len, "%s must be a whole number from %lld to %lld", key,
                 lo, hi);
        return STAGEPROF_EINVAL;
    }
    *out = x;
    return 0;
}

int stageprof__capture_param(struct capture_params *p, const char *key,
                             const char *value, char *why, size_t len)
{
    static const struct {
        const char *name;
        unsigned bit;
    } known[] = {{"mode", SEEN_MODE},
                 {"duration_ms", SEEN_DURATION},
                 {"delay_ms", SEEN_DELAY},
                 {"max_events", SEEN_MAX},
                 {"categories", SEEN_CATS}};
    unsigned bit = 0;
    for (size_t i = 0; key != NULL && i < sizeof known / sizeof known[0]; i++)
        if (strcmp(key, known[i].name) == 0)
            bit = known[i].bit;
    if (bit == 0) {
        char shown[40];
        size_t i = 0;
        for (; key != NULL && key[i] != '\0' && i + 1 < sizeof shown; i++) {
            unsigned char ch = (unsigned char)key[i];
            shown[i] = ch < ' ' || ch >= 0x7f || ch == '"' ? '?' : (char)ch;
        }
        shown[i] = '\0';
        snprintf(why, len,
                 "unknown parameter \"%s\" (mode, duration_ms, delay_ms, "
                 "max_events, categories)",
                 shown);
        return STAGEPROF_EINVAL;
    }
    if (p->seen & bit) {
        snprintf(why, len, "parameter %s given twice", key);
        return STAGEPROF_EINVAL;
    }
    p->seen |= bit;
    switch (bit) {
    case SEEN_MODE:
        if (value == NULL || strcmp(value, "recent") != 0) {
            snprintf(why, len,
                     "mode must be \"recent\" (or left out for a "
                     "window)");
            return STAGEPROF_EINVAL;
        }
        p->recent = 1;
        return 0;
    case SEEN_DURATION:
        return parse_ms(key, value, 1, CAPTURE_DURATION_MAX_MS, &p->duration_ms,
                        why, len);
    case SEEN_DELAY:
        return parse_ms(key, value, 0, CAPTURE_DELAY_MAX_MS, &p->delay_ms, why,
                        len);
    case SEEN_MAX:
        return parse_ms(key, value, 1, CAPTURE_MAX_EVENTS, &p->max_events, why,
                        len);
    default:
        break;
    }
    /* categories: the STAGEPROF_CATEGORIES syntax, checked by its parser. */
    size_t n = value != NULL ? strlen(value) : 0;
    struct conf c;
    memset(&c, 0, sizeof c);
    int rc = n == 0 || n > CAPTURE_CATEGORIES_MAX
                 ? STAGEPROF_EINVAL
                 : stageprof__parse_categories(value, &c);
    stageprof__config_fini(&c);
    if (rc == STAGEPROF_ENOMEM) {
        snprintf(why, len, "out of memory");
        return rc;
    }
    if (rc != 0) {
        snprintf(why, len,
                 "categories must be a comma list of *, name and -name (at "
                 "most %d bytes)",
                 CAPTURE_CATEGORIES_MAX);
        return STAGEPROF_EINVAL;
    }
    memcpy(p->categories, value, n + 1);
    return 0;
}

int stageprof__capture_check(const struct capture_params *p, char *why,
                             size_t len)
{
    if (p->recent && (p->seen & (SEEN_DURATION | SEEN_DELAY))) {
        snprintf(why, len,
                 "duration_ms and delay_ms do not apply to "
                 "mode=recent");
        return STAGEPROF_EINVAL;
    }
    return 0;
}

int stageprof__capture_claim(void)
{
    return __atomic_exchange_n(&capture_busy, 1, __ATOMIC_ACQ_REL) == 0;
}

void stageprof__capture_release(void)
{
    __atomic_store_n(&capture_busy, 0, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------------------ */
/* Waiting                                                                  */
/* ------------------------------------------------------------------------ */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/*
 * Wait @ms milliseconds. Returns 1 early when *@cancel is set or the
 * client's socket @fd (when >= 0) hung up; 0 when the time passed.
 */
static int wait_ms(long long ms, const int *cancel, int fd)
{
    uint64_t end = mono_ms() + (uint64_t)ms;
    for (;;) {
        if (cancel != NULL && __atomic_load_n(cancel, __ATOMIC_ACQUIRE))
            return 1;
        uint64_t now = mono_ms();
        if (now >= end)
            return 0;
        int slice =
            (int)(end - now < CAPTURE_SLICE_MS ? end - now : CAPTURE_SLICE_MS);
        int hung = 0;
        if (fd >= 0) {
            /* Only a hang-up counts: a client may have sent more bytes
             * (POLLIN), which poll would report at once, every time. */
            struct pollfd pfd = {.fd = fd, .events = POLLRDHUP};
            int n = poll(&pfd, 1, slice);
            if (n > 0 &&
                (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
                hung = 1;
            else if (n > 0 || (n < 0 && errno != EINTR))
                fd = -1; /* cannot watch it: time alone from here on */
            else
                continue;
        }
        if (hung)
            return 1;
        struct timespec ts = {0, (long)slice * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                  */
/* ------------------------------------------------------------------------ */

/* @r->body gzip-compressed in one go; 0 or STAGEPROF_ENOMEM / EIO. */
static int gzip_body(struct capture_result *r)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    z.zalloc = stageprof__z_alloc;
    z.zfree = stageprof__z_free;
    /* windowBits 15 + 16: a gzip header and trailer, as the client asked. */
    int zr = deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8,
                          Z_DEFAULT_STRATEGY);
    if (zr != Z_OK)
        return zr == Z_MEM_ERROR ? STAGEPROF_ENOMEM : STAGEPROF_EIO;
    uLong bound = deflateBound(&z, (uLong)r->len);
    unsigned char *out = stageprof__malloc(bound);
    if (out == NULL) {
        deflateEnd(&z);
        return STAGEPROF_ENOMEM;
    }
    z.next_in = r->body;
    z.avail_in = (uInt)r->len;
    z.next_out = out;
    z.avail_out = (uInt)bound;
    zr = deflate(&z, Z_FINISH);
    size_t n = (size_t)z.total_out;
    deflateEnd(&z);
    if (zr != Z_STREAM_END) {
        stageprof__free(out);
        return STAGEPROF_EIO;
    }
    stageprof__free(r->body);
    r->body = out;
    r->len = n;
    r->gzipped = 1;
    return 0;
}

/* What a capture learned besides the writer's counts. */
struct capture_facts {
    int tracing;     /* the session traces (STAGEPROF_ENABLE) */
    int switched;    /* metrics mode: recording turned on for the window */
    uint64_t base;   /* time base of the trace, monotonic ns */
    uint64_t t0, t1; /* the window, monotonic ns (window mode) */
};

/*
 * Write the "capture" member into the blanks after the body's opening
 * brace. 0, or -1 when it does not fit (cannot happen within the bounds
 * of the parameters).
 */
static int patch_member(struct capture_result *r,
                        const struct capture_params *p,
                        const struct capture_facts *cf,
                        const struct write_filter *f)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, stageprof__malloc, stageprof__free);
    stageprof__sb_addf(&sb, "\"capture\":{\"mode\":\"%s\",\"recording\":\"%s\"",
                       p->recent ? "recent" : "window",
                       cf->tracing    ? "tracing"
                       : cf->switched ? "metrics_mode_window"
                                      : "off");
    if (p->recent) {
        stageprof__sb_adds(&sb, ",\"window_ns\":null");
    } else {
        stageprof__sb_addf(&sb, ",\"window_ns\":{\"start\":%lld,\"end\":%lld}",
                           (long long)(cf->t0 - cf->base),
                           (long long)(cf->t1 - cf->base));
    }
    stageprof__sb_addf(&sb, ",\"requested\":{\"mode\":\"%s\"",
                       p->recent ? "recent" : "window");
    if (!p->recent)
        stageprof__sb_addf(&sb, ",\"duration_ms\":%lld,\"delay_ms\":%lld",
                           p->duration_ms, p->delay_ms);
    stageprof__sb_addf(&sb,
                       ",\"max_events\":%lld,\"categories\":", p->max_events);
    if (p->categories[0] != '\0')
        stageprof__json_str(&sb, p->categories, strlen(p->categories));
    else
        stageprof__sb_adds(&sb, "null");
    stageprof__sb_addf(
        &sb,
        "},\"events\":%llu,\"dropped\":%llu,\"left_out_max_events\":%llu,"
        "\"left_out_categories\":%llu,\"empty_reason\":",
        (unsigned long long)r->events, (unsigned long long)r->dropped,
        (unsigned long long)r->left_out, (unsigned long long)f->cat_removed);
    if (r->empty_reason != NULL)
        stageprof__json_str(&sb, r->empty_reason, strlen(r->empty_reason));
    else
        stageprof__sb_adds(&sb, "null");
    stageprof__sb_adds(&sb, "},");
    int rc = -1;
    if (!sb.oom && sb.len <= CAPTURE_RESERVE && r->len > CAPTURE_RESERVE &&
        r->body[0] == '{') {
        memcpy(r->body + 1, sb.buf, sb.len);
        rc = 0;
    }
    stageprof__sb_fini(&sb);
    return rc;
}

/* Why a capture holding no event is empty (static text). */
static const char *empty_reason(const struct capture_params *p,
                                const struct capture_facts *cf,
                                const struct write_filter *f, uint64_t dropped)
{
#ifdef STAGEPROF_DISABLE
    (void)p;
    (void)cf;
    (void)f;
    (void)dropped;
    return "tracing is compiled out (library built with STAGEPROF_DISABLE)";
#else
    if (p->recent && !cf->tracing)
        return "tracing is off (metrics mode): nothing is kept between "
               "captures; ask for a window instead";
    if (f->cat_removed > 0)
        return "the category filter removed every event";
    if (p->recent && f->ring_active && f->runs_kept + f->runs_running == 0)
        return "the ring holds no runs yet";
    if (dropped > 0)
        return "every event was dropped: the buffer budget was full";
    if (p->recent)
        return "the buffers hold no events (already written to a trace "
               "file)";
    return "no instrumented code ran in the window";
#endif
}

/* Events dropped since the process started (g.lock taken). */
static uint64_t drops_now(void)
{
    struct counts c;
    pthread_mutex_lock(&stageprof__g.lock);
    stageprof__tbuf_counts(&c);
    pthread_mutex_unlock(&stageprof__g.lock);
    return c.dropped;
}

/* Turn recording off again after a metrics-mode window (see the top). */
static void switch_back(unsigned token)
{
    pthread_mutex_lock(&stageprof__g.lock);
    if (stageprof__g.started &&
        LOAD_RELAXED(&stageprof__g.filter_token) == token &&
        LOAD_RELAXED(&stageprof_hot_state) == STATE_TRACING)
        STORE_RELEASE(&stageprof_hot_state, STATE_METRICS);
    pthread_mutex_unlock(&stageprof__g.lock);
}

static int fail(struct capture_result *r, int status, const char *why)
{
    r->status = status;
    snprintf(r->reason, sizeof r->reason, "%s", why);
    return status;
}

int stageprof__capture_run(const struct capture_params *p, int gzip,
                           const int *cancel, int fd, struct capture_result *r)
{
    memset(r, 0, sizeof *r);
    struct capture_facts cf;
    memset(&cf, 0, sizeof cf);

    /* The categories, as rules for the writer (parsed when given). */
    struct conf cats;
    memset(&cats, 0, sizeof cats);
    if (p->categories[0] != '\0' &&
        stageprof__parse_categories(p->categories, &cats) != 0) {
        stageprof__config_fini(&cats);
        return fail(r, 503, "out of memory");
    }

    if (!p->recent && p->delay_ms > 0 && wait_ms(p->delay_ms, cancel, fd))
        goto gone;

    pthread_mutex_lock(&stageprof__g.lock);
    int started = stageprof__g.started;
    int st = LOAD_RELAXED(&stageprof_hot_state);
    unsigned token = LOAD_RELAXED(&stageprof__g.filter_token);
    cf.tracing = started && stageprof__g.conf.enable && st == STATE_TRACING;
    if (!p->recent && started && st == STATE_METRICS) {
        STORE_RELEASE(&stageprof_hot_state, STATE_TRACING);
        cf.switched = 1;
    }
    cf.base = stageprof__g.base_mono_ns;
    pthread_mutex_unlock(&stageprof__g.lock);
    if (!cf.tracing && !cf.switched && !(p->recent && st == STATE_METRICS)) {
        stageprof__config_fini(&cats);
        return fail(r, 503, "no profiling session in force (stopping?)");
    }

    uint64_t drops0 = drops_now();
    if (!p->recent) {
        cf.t0 = stageprof_now_ns();
        int gone = wait_ms(p->duration_ms, cancel, fd);
        cf.t1 = stageprof_now_ns();
        if (cf.switched)
            switch_back(token);
        if (gone) {
            if (cf.switched) {
                /* Free what the window recorded: nobody will read it. */
                pthread_mutex_lock(&stageprof__g.wlock);
                (void)stageprof__writer_discard();
                stageprof__ring_forget_runs();
                pthread_mutex_unlock(&stageprof__g.wlock);
            }
            goto gone;
        }
    }

    struct write_filter f;
    memset(&f, 0, sizeof f);
    if (p->recent && !cf.tracing) {
        /* Metrics mode keeps nothing: a valid trace with no event. */
        f.from_ns = 2;
        f.to_ns = 1;
    } else if (!p->recent) {
        f.from_ns = cf.t0;
        f.to_ns = cf.t1;
    }
    f.cats = p->categories[0] != '\0' ? &cats : NULL;
    f.max_events = (uint64_t)p->max_events;
    f.reserve = CAPTURE_RESERVE;
    struct sb_sink out = {.max = 0};
    stageprof__sb_init(&out.sb, stageprof__malloc, stageprof__free);
    struct sink sink = {stageprof__sb_sink_write, NULL, &out};
    /* A metrics-mode window consumes what it recorded; else keep all. */
    pthread_mutex_lock(&stageprof__g.wlock);
    int rc = stageprof__writer_write_filtered(&sink,
                                              cf.switched ? 0 : WRITE_KEEP, &f);
    if (rc != 0 && cf.switched)
        (void)stageprof__writer_discard();
    /* Runs still going at the window's end would stay "in progress". */
    if (cf.switched)
        stageprof__ring_forget_runs();
    pthread_mutex_unlock(&stageprof__g.wlock);
    stageprof__config_fini(&cats);
    if (rc != 0) {
        stageprof__sb_fini(&out.sb);
        return fail(r, 503,
                    rc == STAGEPROF_ENOMEM ? "out of memory while writing the "
                                             "trace"
                                           : "cannot write the trace");
    }

    r->body = (unsigned char *)out.sb.buf;
    r->len = out.sb.len;
    r->events = f.events;
    r->left_out = f.over_max;
    r->dropped = p->recent ? f.dropped_new : drops_now() - drops0;
    if (r->events == 0)
        r->empty_reason = empty_reason(p, &cf, &f, r->dropped);
    if (patch_member(r, p, &cf, &f) != 0) {
        stageprof__capture_result_fini(r);
        return fail(r, 503, "cannot describe the capture");
    }
    if (gzip && (rc = gzip_body(r)) != 0) {
        stageprof__capture_result_fini(r);
        return fail(r, 503,
                    rc == STAGEPROF_ENOMEM ? "out of memory while "
                                             "compressing"
                                           : "cannot compress");
    }
    r->status = 200;
    return 200;

gone:
    stageprof__config_fini(&cats);
    r->status = 0;
    snprintf(r->reason, sizeof r->reason, "capture abandoned");
    return 0;
}

void stageprof__capture_result_fini(struct capture_result *r)
{
    stageprof__free(r->body);
    r->body = NULL;
    r->len = 0;
}
