/*
 * overhead.c - every trace states what recording it cost.
 *
 * At each traced start, stageprof__overhead_calibrate() times the real
 * recording path: CALIB_ROUNDS rounds of CALIB_PAIRS stageprof_span_begin /
 * stageprof_span_end pairs on the calling thread, with the session's clock
 * mode and fast paths, into a scratch thread buffer that no writer ever
 * sees (it is not in the registry and is freed at once), so nothing of it
 * reaches a trace and the budget is untouched. The median round gives
 * stageprof__g.cost_ns_per_event: the cost of one span, which is one trace
 * event made of two calls. Instants, counters, flows and runs take one
 * call per event, so for them the figure is an upper estimate. It is a
 * warm-cache figure: a pipeline whose caches are busy pays somewhat more.
 *
 * Every trailer then states
 *
 *   "overhead":{"ns_per_event":X,"events":N,"recording_share":S}
 *
 * N: events recorded this session up to this file = the events of the
 * earlier files of the session that consumed theirs (flush, stop) plus the
 * events of this file (a snapshot repeats what is still buffered, so
 * snapshots are not added up). S = X * N / (wall ns since the start), the
 * share of wall time the recording calls took, summed over threads (with
 * several threads recording at once it is CPU time per wall time).
 *
 * The fake test clock skips calibration (X = 0): it would move test time.
 *
 * State below is under stageprof__g.lock.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tbuf.h"
#include "util/json.h"

#define CALIB_PAIRS 400
#define CALIB_ROUNDS 5

/* Events of this session's consuming writes so far. */
static uint64_t session_events;
/* The session they belong to (its stageprof__g.base_mono_ns). */
static uint64_t session_key;

/* One round: ns for CALIB_PAIRS spans into @tb (the thread's buffer now). */
static uint64_t calib_round(stageprof_site_t *site, struct tbuf *tb,
                            struct chunk *c)
{
    tb->pos = c->data;
    tb->limit = c->data + c->cap;
    tb->depth = 0;
    uint64_t t0 = stageprof__clock_mono_ns();
    for (int i = 0; i < CALIB_PAIRS; i++) {
        stageprof_span_t s = stageprof_span_begin(site);
        stageprof_span_end(&s);
    }
    return stageprof__clock_mono_ns() - t0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

double stageprof__overhead_calibrate(void)
{
    static stageprof_site_t site =
        STAGEPROF_SITE_INIT("calibrate", "stageprof");
    if (LOAD_RELAXED(&stageprof__g.clock_mode) == CLOCK_MODE_FAKE ||
        LOAD_RELAXED(&stageprof_hot_state) != STATE_TRACING)
        return 0;
    /* Room for every record of a round: no chunk from the budget needed. */
    size_t cap = (size_t)CALIB_PAIRS * 2 * REC_SIZE + 4 * REC_SIZE;
    struct tbuf *tb = stageprof__calloc(1, sizeof *tb);
    struct chunk *c = stageprof__calloc(1, sizeof *c + cap);
    if (tb == NULL || c == NULL) {
        stageprof__free(tb);
        stageprof__free(c);
        return 0;
    }
    c->cap = cap;
    tb->cur = c;
    tb->head = c;
    /* Resolved in advance: site resolution would take g.lock, held here. */
    STORE_RELAXED(&site.filter, LOAD_RELAXED(&stageprof__g.filter_token));

    struct tbuf *saved = stageprof__tls;
    stageprof__tls = tb;
    uint64_t ns[CALIB_ROUNDS];
    for (int r = 0; r < CALIB_ROUNDS; r++)
        ns[r] = calib_round(&site, tb, c);
    stageprof__tls = saved;

    /* Every pair must have been recorded, or the timing means nothing. */
    int ok = tb->serial == (unsigned)(CALIB_PAIRS * CALIB_ROUNDS) &&
             tb->depth == 0 && tb->dropped == 0;
    stageprof__free(c);
    stageprof__free(tb);
    if (!ok)
        return 0;
    qsort(ns, CALIB_ROUNDS, sizeof *ns, cmp_u64);
    double per = (double)ns[CALIB_ROUNDS / 2] / CALIB_PAIRS;
    return per > 0 ? per : 0;
}

void stageprof__overhead_note(uint64_t events)
{
    pthread_mutex_lock(&stageprof__g.lock);
    if (session_key != stageprof__g.base_mono_ns) {
        session_key = stageprof__g.base_mono_ns;
        session_events = 0;
    }
    session_events += events;
    pthread_mutex_unlock(&stageprof__g.lock);
}

void stageprof__overhead_json(char *buf, size_t len, uint64_t file_events)
{
    pthread_mutex_lock(&stageprof__g.lock);
    double per = stageprof__g.cost_ns_per_event;
    uint64_t base = stageprof__g.base_mono_ns;
    uint64_t before = session_key == base ? session_events : 0;
    pthread_mutex_unlock(&stageprof__g.lock);

    uint64_t events = before + file_events;
    uint64_t now = stageprof__clock_mono_ns();
    double share = 0;
    if (per > 0 && now > base)
        share = per * (double)events / (double)(now - base);
    /* Rounded: 0.1 ns and 1e-9 of wall time are below what is measured. */
    per = round(per * 10) / 10;
    share = round(share * 1e9) / 1e9;
    char p[32], n[24], s[32];
    p[stageprof__fmt_double(p, per)] = '\0';
    n[stageprof__fmt_u64(n, events)] = '\0';
    s[stageprof__fmt_double(s, share)] = '\0';
    snprintf(buf, len,
             "\"overhead\":{\"ns_per_event\":%s,\"events\":%s,"
             "\"recording_share\":%s}",
             p, n, s);
}
