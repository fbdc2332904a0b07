/*
 * tail.c - tail keeping (see tail.h for the policy and the locks).
 *
 * Under T.lock: the policy, the current window's K slowest (top[]), the
 * queue of runs waiting for the keeper and the run it is writing (busy),
 * the counts. Under g.wlock: the fragments (frags[], oldest first).
 */
#include <string.h>
#include <unistd.h>

#include "ring.h"
#include "tail.h"
#include "util/json.h"

#define TAIL_QUEUE 64

struct pending {
    uint64_t id, begin, end; /* ticks */
    uint64_t dur_ns;
    unsigned why;
};

struct top_run {
    uint64_t id, dur_ns;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int on; /* atomic */
    int running, quit;
    pthread_t thread;
    pid_t owner;
    /* policy, fixed at open */
    uint64_t slower_ns, window_ns, share, mult;
    unsigned k;
    long long slower_ms, window_s;
    /* the current window's K slowest */
    uint64_t window;
    struct top_run top[STAGEPROF_MAX_KEEP_SLOWEST];
    unsigned ntop;
    /* runs displaced from top[] after the keeper took them */
    uint64_t gone[2 * STAGEPROF_MAX_KEEP_SLOWEST];
    unsigned ngone;
    /* waiting for the keeper */
    struct pending queue[TAIL_QUEUE];
    unsigned nqueue;
    uint64_t busy_begin; /* begin of the run being written; 0 none */
    /* counts */
    uint64_t queue_full;    /* kept runs the queue could not take */
    uint64_t too_big;       /* fragments larger than the share */
    uint64_t lost_write;    /* fragments that could not be written */
    uint64_t share_evicted; /* fragments pushed out of a full share */
    /* under wlock */
    struct tail_frag *frags;
    size_t nfrags, cap;
    uint64_t bytes;
} T = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static void frag_free(struct tail_frag *f)
{
    stageprof__free(f->text);
    memset(f, 0, sizeof *f);
}

/* Remove fragment @i (wlock held). */
static void frag_remove(size_t i)
{
    T.bytes -= T.frags[i].len;
    frag_free(&T.frags[i]);
    memmove(&T.frags[i], &T.frags[i + 1], (T.nfrags - i - 1) * sizeof *T.frags);
    T.nfrags--;
}

static void frags_clear(void)
{
    for (size_t i = 0; i < T.nfrags; i++)
        frag_free(&T.frags[i]);
    stageprof__free(T.frags);
    T.frags = NULL;
    T.nfrags = T.cap = 0;
    T.bytes = 0;
}

int stageprof__tail_on(void)
{
    return LOAD_RELAXED(&T.on);
}

uint64_t stageprof__tail_horizon(void)
{
    uint64_t h = UINT64_MAX;
    if (!LOAD_RELAXED(&T.on))
        return h;
    pthread_mutex_lock(&T.lock);
    for (unsigned i = 0; i < T.nqueue; i++)
        if (T.queue[i].begin < h)
            h = T.queue[i].begin;
    if (T.busy_begin != 0 && T.busy_begin < h)
        h = T.busy_begin;
    pthread_mutex_unlock(&T.lock);
    return h;
}

/* Take @id out of the K slowest's consequences (T.lock held): a queued
 * run kept only for that leaves the queue; a stored one is reconciled. */
static void displace(uint64_t id)
{
    for (unsigned i = 0; i < T.nqueue; i++) {
        if (T.queue[i].id != id)
            continue;
        T.queue[i].why &= ~TAIL_SLOWEST;
        if (T.queue[i].why == 0) {
            memmove(&T.queue[i], &T.queue[i + 1],
                    (T.nqueue - i - 1) * sizeof *T.queue);
            T.nqueue--;
        }
        return;
    }
    /* Being written or written: the keeper reconciles. A full list
     * leaves the run kept (harmless: it was among the slowest). */
    if (T.ngone < sizeof T.gone / sizeof T.gone[0])
        T.gone[T.ngone++] = id;
}

/* Enter the window's K slowest? (T.lock held) */
static int among_slowest(uint64_t id, uint64_t dur, uint64_t window)
{
    if (window != T.window) {
        T.window = window;
        T.ntop = 0;
    }
    if (T.ntop < T.k) {
        T.top[T.ntop++] = (struct top_run){id, dur};
        return 1;
    }
    unsigned min = 0;
    for (unsigned i = 1; i < T.ntop; i++)
        if (T.top[i].dur_ns < T.top[min].dur_ns)
            min = i;
    if (dur <= T.top[min].dur_ns)
        return 0;
    displace(T.top[min].id);
    T.top[min] = (struct top_run){id, dur};
    return 1;
}

int stageprof__tail_consider(uint64_t id, uint64_t begin, uint64_t end)
{
    if (!LOAD_RELAXED(&T.on) || end < begin)
        return 0;
    pthread_mutex_lock(&T.lock);
    uint64_t dur =
        (uint64_t)(((unsigned __int128)(end - begin) * T.mult) >> 32);
    uint64_t end_ns = (uint64_t)(((unsigned __int128)end * T.mult) >> 32);
    uint64_t window = end_ns / T.window_ns;
    unsigned why = 0;
    if (T.slower_ns > 0 && dur >= T.slower_ns)
        why |= TAIL_SLOWER;
    if (T.k > 0 && among_slowest(id, dur, window))
        why |= TAIL_SLOWEST;
    if (why != 0) {
        if (T.nqueue == TAIL_QUEUE) {
            T.queue_full++;
            why = 0;
        } else {
            T.queue[T.nqueue++] = (struct pending){id, begin, end, dur, why};
            pthread_cond_signal(&T.wake);
        }
    }
    pthread_mutex_unlock(&T.lock);
    return why != 0;
}

/* Make room for @len more bytes of fragments (wlock held). */
static void make_room(uint64_t len)
{
    while (T.nfrags > 0 && T.bytes + len > T.share) {
        frag_remove(0);
        pthread_mutex_lock(&T.lock);
        T.share_evicted++;
        pthread_mutex_unlock(&T.lock);
    }
}

/* Write the fragment of @p and store it (wlock held, T.lock not). */
static void keep_one(const struct pending *p)
{
    struct write_filter f;
    memset(&f, 0, sizeof f);
    f.only_run = p->id;
    f.only_from = p->begin;
    f.only_to = p->end;
    struct sb_sink out = {.max = (size_t)T.share};
    stageprof__sb_init(&out.sb, stageprof__malloc, stageprof__free);
    struct sink sink = {stageprof__sb_sink_write, NULL, &out};
    int rc = stageprof__writer_write_filtered(&sink, WRITE_KEEP, &f);
    if (rc != 0 || f.events == 0) {
        pthread_mutex_lock(&T.lock);
        if (rc == STAGEPROF_ENOMEM && !out.sb.oom)
            T.too_big++;
        else
            T.lost_write++;
        pthread_mutex_unlock(&T.lock);
        stageprof__sb_fini(&out.sb);
        return;
    }
    if (T.nfrags == T.cap) {
        size_t cap = T.cap ? T.cap * 2 : 16;
        struct tail_frag *nv = stageprof__malloc(cap * sizeof *nv);
        if (nv == NULL) {
            pthread_mutex_lock(&T.lock);
            T.lost_write++;
            pthread_mutex_unlock(&T.lock);
            stageprof__sb_fini(&out.sb);
            return;
        }
        if (T.nfrags)
            memcpy(nv, T.frags, T.nfrags * sizeof *nv);
        stageprof__free(T.frags);
        T.frags = nv;
        T.cap = cap;
    }
    make_room(out.sb.len);
    struct tail_frag *d = &T.frags[T.nfrags++];
    d->id = p->id;
    d->begin_ns = stageprof__clock_to_ns(p->begin);
    d->dur_ns = p->dur_ns;
    d->why = p->why;
    d->events = f.events;
    d->lines = f.lines;
    d->len = out.sb.len;
    d->text = out.sb.buf; /* owned from here */
    T.bytes += d->len;
}

/*
 * Runs displaced from their window's K slowest after the keeper took
 * them: no longer kept for that reason, gone if for no other (wlock held).
 */
static void reconcile(void)
{
    uint64_t gone[sizeof T.gone / sizeof T.gone[0]];
    pthread_mutex_lock(&T.lock);
    unsigned n = T.ngone;
    memcpy(gone, T.gone, n * sizeof *gone);
    T.ngone = 0;
    pthread_mutex_unlock(&T.lock);
    for (unsigned k = 0; k < n; k++) {
        for (size_t i = 0; i < T.nfrags; i++) {
            struct tail_frag *d = &T.frags[i];
            if (d->id != gone[k])
                continue;
            d->why &= ~TAIL_SLOWEST;
            if (d->why == 0)
                frag_remove(i);
            break;
        }
    }
}

void stageprof__tail_drain(void)
{
    for (;;) {
        pthread_mutex_lock(&T.lock);
        if (T.nqueue == 0) {
            pthread_mutex_unlock(&T.lock);
            break;
        }
        struct pending p = T.queue[0];
        memmove(&T.queue[0], &T.queue[1], (T.nqueue - 1) * sizeof *T.queue);
        T.nqueue--;
        T.busy_begin = p.begin ? p.begin : 1;
        pthread_mutex_unlock(&T.lock);
        keep_one(&p);
        pthread_mutex_lock(&T.lock);
        T.busy_begin = 0;
        pthread_mutex_unlock(&T.lock);
    }
    reconcile();
}

static void *keeper_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&T.lock);
    for (;;) {
        while (!T.quit && T.nqueue == 0 && T.ngone == 0)
            pthread_cond_wait(&T.wake, &T.lock);
        if (T.quit && T.nqueue == 0)
            break;
        pthread_mutex_unlock(&T.lock);
        pthread_mutex_lock(&stageprof__g.wlock);
        stageprof__tail_drain();
        pthread_mutex_unlock(&stageprof__g.wlock);
        pthread_mutex_lock(&T.lock);
    }
    pthread_mutex_unlock(&T.lock);
    return NULL;
}

int stageprof__tail_open(const struct conf *c)
{
    int on = c->enable && (c->keep_slower_than_ms > 0 || c->keep_slowest > 0);
    pthread_mutex_lock(&T.lock);
    if (T.running) { /* not closed: cannot happen through the API */
        pthread_mutex_unlock(&T.lock);
        return STAGEPROF_EALREADY;
    }
    T.slower_ms = c->keep_slower_than_ms;
    T.window_s = c->keep_window_s;
    T.slower_ns = (uint64_t)c->keep_slower_than_ms * 1000000u;
    T.window_ns =
        (uint64_t)(c->keep_window_s > 0 ? c->keep_window_s : 60) * 1000000000u;
    T.k = (unsigned)c->keep_slowest;
    T.share = (uint64_t)c->keep_bytes;
    T.mult = stageprof__clock_ns_per_tick();
    T.window = UINT64_MAX;
    T.ntop = T.nqueue = 0;
    T.ngone = 0;
    T.queue_full = T.too_big = T.lost_write = T.share_evicted = 0;
    T.quit = 0;
    pthread_mutex_unlock(&T.lock);
    if (!on)
        return 0;

    pthread_t th;
    int rc = stageprof__thread_create(&th, NULL, keeper_main, NULL);
    if (rc != 0) {
        stageprof__log(STAGEPROF_LOG_WARN,
                       "cannot start the tail keeper thread (error %d): slow "
                       "runs are not kept beyond the ring",
                       rc);
        return STAGEPROF_ETHREAD;
    }
    (void)pthread_setname_np(th, "stageprof-tail");
    pthread_mutex_lock(&T.lock);
    T.thread = th;
    T.running = 1;
    T.owner = getpid();
    pthread_mutex_unlock(&T.lock);
    STORE_RELAXED(&T.on, 1);
    return 0;
}

void stageprof__tail_close(void)
{
    STORE_RELAXED(&T.on, 0);
    pthread_mutex_lock(&T.lock);
    int join = T.running && T.owner == getpid();
    pthread_t th = T.thread;
    T.quit = 1;
    pthread_cond_signal(&T.wake);
    pthread_mutex_unlock(&T.lock);
    /* The keeper writes what is queued, then ends. */
    if (join)
        pthread_join(th, NULL);
    pthread_mutex_lock(&T.lock);
    T.running = 0;
    pthread_mutex_unlock(&T.lock);
}

const struct tail_frag *stageprof__tail_frags(size_t *n)
{
    *n = T.nfrags;
    return T.frags;
}

void stageprof__tail_json(struct strbuf *sb, struct ring_view *v,
                          uint64_t base_ns, int appended)
{
    pthread_mutex_lock(&T.lock);
    long long slower = T.slower_ms, window = T.window_s;
    unsigned k = T.k;
    uint64_t share = T.share, queued = T.nqueue, full = T.queue_full,
             big = T.too_big, lost = T.lost_write, evicted = T.share_evicted;
    pthread_mutex_unlock(&T.lock);
    stageprof__sb_addf(
        sb,
        ",\"tail\":{\"slower_than_ms\":%lld,\"slowest\":%u,\"window_s\":%lld,"
        "\"share_bytes\":%llu,\"bytes\":%llu,\"appended\":%s,"
        "\"runs_queued\":%llu,\"runs_missed_queue_full\":%llu,"
        "\"runs_too_big\":%llu,\"runs_not_written\":%llu,"
        "\"runs_pushed_out\":%llu,\"runs\":[",
        slower, k, window, (unsigned long long)share,
        (unsigned long long)T.bytes, appended ? "true" : "false",
        (unsigned long long)queued, (unsigned long long)full,
        (unsigned long long)big, (unsigned long long)lost,
        (unsigned long long)evicted);
    for (size_t i = 0; i < T.nfrags; i++) {
        const struct tail_frag *f = &T.frags[i];
        double ts = (double)(int64_t)(f->begin_ns - base_ns) / 1e3;
        stageprof__sb_addf(
            sb,
            "%s{\"run\":%llu,\"ts\":%.3f,\"dur_ms\":%.3f,"
            "\"why\":\"%s\",\"in_ring\":%s}",
            i ? "," : "", (unsigned long long)f->id, ts,
            (double)f->dur_ns / 1e6,
            f->why == (TAIL_SLOWER | TAIL_SLOWEST) ? "slower_than,slowest"
            : f->why == TAIL_SLOWER                ? "slower_than"
                                                   : "slowest",
            stageprof__ring_view_keeps(v, f->id) ? "true" : "false");
    }
    stageprof__sb_adds(sb, "]}");
}

void stageprof__tail_forget(void)
{
    frags_clear();
}

void stageprof__tail_fork(int phase)
{
    if (phase == 0) {
        pthread_mutex_lock(&T.lock);
        return;
    }
    if (phase == 1) {
        pthread_mutex_unlock(&T.lock);
        return;
    }
    /* Child: no keeper thread; its runs are not the parent's. */
    pthread_mutex_init(&T.lock, NULL);
    pthread_cond_init(&T.wake, NULL);
    T.on = 0;
    T.running = 0;
    T.nqueue = 0;
    T.ntop = T.ngone = 0;
    T.busy_begin = 0;
    frags_clear();
}
