/*
 * ring.c - the run ring's bookkeeping (see ring.h for the policy).
 *
 * Under ring.lock:
 *   open[]  runs in progress, an open-addressing table id -> begin ticks
 *   done[]  the last `capacity` completed runs, circular, oldest first
 *
 * A run that completes when done[] is full pushes the oldest one out: that
 * run is evicted (counted) and its events stop being written at once; its
 * memory is reclaimed when a thread next needs a chunk and the budget is
 * full, by freeing every unpinned chunk sealed before the horizon, the
 * earliest begin among the runs in done[] and open[].
 */
#include <stdlib.h>
#include <string.h>

#include "ring.h"
#include "tail.h"
#include "tbuf.h"

struct open_run {
    uint64_t id;    /* 0: empty slot */
    uint64_t begin; /* ticks */
    int dead;       /* removed (probe chains continue through it) */
    int sampled;    /* under head sampling; else recorded only for tail
                       keeping, dropped at its end unless kept */
};

struct done_run {
    uint64_t id;
    uint64_t begin;
};

static struct {
    pthread_mutex_t lock;
    int active;           /* capacity > 0 */
    int startup;          /* no run has begun yet */
    int writing;          /* a writer reads chunks: nothing is freed */
    uint64_t floor;       /* ...except chunks sealed before this (ticks):
                             a kept run's fragment reads no older ones */
    uint64_t capacity;    /* completed runs kept */
    uint64_t sample_rate; /* 1 run in N recorded */
    struct open_run *open;
    size_t open_cap, open_used; /* slots, slots not empty (live + dead) */
    size_t open_live;
    struct done_run *done;
    size_t done_head, done_n; /* oldest at done_head */
    uint64_t evicted;         /* completed runs pushed out */
    uint64_t untracked;       /* runs the table could not hold */
    uint64_t unmatched_ends;  /* run ends without a begin in progress */
    uint64_t sampled_out;     /* atomic */
    uint64_t pinned_bytes;    /* atomic */
    uint64_t pinned_dropped;  /* atomic: chunks refused to start-up data */
    int pinned_warned;
} ring = {.lock = PTHREAD_MUTEX_INITIALIZER, .startup = 1};

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

int stageprof__ring_open(const struct conf *c)
{
    uint64_t cap = c->buffer_runs > 0 ? (uint64_t)c->buffer_runs : 0;
    struct done_run *done = NULL;
    if (cap > 0) {
        done = stageprof__calloc((size_t)cap, sizeof *done);
        if (done == NULL)
            return STAGEPROF_ENOMEM;
    }
    pthread_mutex_lock(&ring.lock);
    /* Runs completed under the previous capacity keep their order. */
    size_t keep = ring.done_n < cap ? ring.done_n : (size_t)cap;
    for (size_t i = 0; i < keep; i++)
        done[i] = ring.done[(ring.done_head + ring.done_n - keep + i) %
                            ring.capacity];
    stageprof__free(ring.done);
    ring.done = done;
    ring.done_head = 0;
    ring.done_n = keep;
    ring.capacity = cap;
    ring.active = cap > 0;
    ring.sample_rate = c->sample_runs > 1 ? (uint64_t)c->sample_runs : 1;
    pthread_mutex_unlock(&ring.lock);
    return 0;
}

int stageprof__ring_is_active(void)
{
    return LOAD_RELAXED(&ring.active);
}

int stageprof__ring_is_startup(void)
{
    return LOAD_RELAXED(&ring.startup);
}

/* Under head sampling: a hash of the id, so every thread decides alike. */
static int sampled(uint64_t id)
{
    uint64_t rate = LOAD_RELAXED(&ring.sample_rate);
    return rate <= 1 || mix(id) % rate == 0;
}

int stageprof__ring_sampled(uint64_t id)
{
    /* Tail keeping records every run and decides at its end. */
    return sampled(id) || stageprof__tail_on();
}

void stageprof__ring_sampled_out(void)
{
    __atomic_fetch_add(&ring.sampled_out, 1, __ATOMIC_RELAXED);
}

/* Slot of @id, or of the first free slot on its probe chain. */
static struct open_run *open_slot(uint64_t id, int for_insert)
{
    size_t mask = ring.open_cap - 1;
    struct open_run *tomb = NULL;
    for (size_t i = mix(id) & mask;; i = (i + 1) & mask) {
        struct open_run *s = &ring.open[i];
        if (s->id == 0)
            return for_insert && tomb ? tomb : s;
        if (s->dead) {
            if (tomb == NULL)
                tomb = s;
        } else if (s->id == id) {
            return s;
        }
    }
}

/* Make room for one more run in progress; 0 or -1 (out of memory). */
static int open_reserve(void)
{
    if ((ring.open_used + 1) * 10 < ring.open_cap * 7)
        return 0;
    size_t cap = ring.open_cap ? ring.open_cap : 64;
    while ((ring.open_live + 1) * 10 >= cap * 5)
        cap *= 2;
    struct open_run *old = ring.open;
    size_t old_cap = ring.open_cap;
    struct open_run *fresh = stageprof__calloc(cap, sizeof *fresh);
    if (fresh == NULL)
        return -1;
    ring.open = fresh;
    ring.open_cap = cap;
    ring.open_used = ring.open_live;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].id != 0 && !old[i].dead)
            *open_slot(old[i].id, 1) = old[i];
    stageprof__free(old);
    return 0;
}

void stageprof__ring_run_begin(uint64_t id, uint64_t ticks)
{
    pthread_mutex_lock(&ring.lock);
    STORE_RELAXED(&ring.startup, 0);
    if (ring.active) {
        if (open_reserve() != 0) {
            ring.untracked++;
        } else {
            struct open_run *s = open_slot(id, 1);
            if (s->id == 0)
                ring.open_used++;
            if (s->id == 0 || s->dead)
                ring.open_live++;
            s->id = id;
            s->begin = ticks;
            s->dead = 0;
            s->sampled = sampled(id);
        }
    }
    pthread_mutex_unlock(&ring.lock);
}

/* A completed run enters the ring, pushing the oldest out when full. */
static void done_push(uint64_t id, uint64_t begin)
{
    if (ring.done_n == ring.capacity) {
        ring.done_head = (ring.done_head + 1) % ring.capacity;
        ring.done_n--;
        ring.evicted++;
    }
    ring.done[(ring.done_head + ring.done_n) % ring.capacity] =
        (struct done_run){id, begin};
    ring.done_n++;
}

void stageprof__ring_run_end(uint64_t id, uint64_t ticks)
{
    pthread_mutex_lock(&ring.lock);
    if (ring.active && ring.open_cap == 0)
        ring.unmatched_ends++;
    if (ring.active && ring.open_cap > 0) {
        struct open_run *s = open_slot(id, 0);
        if (s->id == id && !s->dead) {
            s->dead = 1;
            ring.open_live--;
            (void)stageprof__tail_consider(id, s->begin, ticks);
            if (s->sampled) {
                done_push(id, s->begin);
            } else {
                /* Recorded for tail keeping only: kept there or gone. */
                __atomic_fetch_add(&ring.sampled_out, 1, __ATOMIC_RELAXED);
            }
        } else {
            ring.unmatched_ends++;
        }
    }
    pthread_mutex_unlock(&ring.lock);
}

int stageprof__ring_pin(uint64_t size)
{
    uint64_t share = LOAD_RELAXED(&stageprof__g.budget) / 2;
    uint64_t before =
        __atomic_fetch_add(&ring.pinned_bytes, size, __ATOMIC_RELAXED);
    if (before + size <= share)
        return 1;
    __atomic_fetch_sub(&ring.pinned_bytes, size, __ATOMIC_RELAXED);
    __atomic_fetch_add(&ring.pinned_dropped, 1, __ATOMIC_RELAXED);
    if (!__atomic_exchange_n(&ring.pinned_warned, 1, __ATOMIC_RELAXED))
        stageprof__log(STAGEPROF_LOG_WARN,
                       "start-up data (events before the first run) filled "
                       "its share, half of STAGEPROF_BUFFER_BYTES: "
                       "further start-up events are dropped; a program "
                       "without runs can set STAGEPROF_BUFFER_RUNS=0 to "
                       "keep everything");
    return 0;
}

void stageprof__ring_forget_runs(void)
{
    pthread_mutex_lock(&ring.lock);
    if (ring.open != NULL)
        memset(ring.open, 0, ring.open_cap * sizeof *ring.open);
    ring.open_used = ring.open_live = 0;
    ring.done_head = ring.done_n = 0;
    pthread_mutex_unlock(&ring.lock);
}

uint64_t stageprof__ring_evicted(void)
{
    pthread_mutex_lock(&ring.lock);
    uint64_t n = ring.evicted;
    pthread_mutex_unlock(&ring.lock);
    return n;
}

uint64_t stageprof__ring_unmatched_ends(void)
{
    pthread_mutex_lock(&ring.lock);
    uint64_t n = ring.unmatched_ends;
    pthread_mutex_unlock(&ring.lock);
    return n;
}

void stageprof__ring_unpin(uint64_t size)
{
    __atomic_fetch_sub(&ring.pinned_bytes, size, __ATOMIC_RELAXED);
}

/* Earliest begin among the kept, running and tail-queued runs (ring.lock
 * held). */
static uint64_t horizon(void)
{
    uint64_t h = stageprof__tail_horizon();
    for (size_t i = 0; i < ring.done_n; i++) {
        uint64_t b = ring.done[(ring.done_head + i) % ring.capacity].begin;
        if (b < h)
            h = b;
    }
    for (size_t i = 0; i < ring.open_cap; i++)
        if (ring.open[i].id != 0 && !ring.open[i].dead &&
            ring.open[i].begin < h)
            h = ring.open[i].begin;
    return h;
}

uint64_t stageprof__ring_evict(void)
{
    if (!LOAD_RELAXED(&ring.active))
        return 0;
    /* Never wait: a busy lock means someone else is at it. */
    if (pthread_mutex_trylock(&ring.lock) != 0)
        return 0;
    uint64_t freed = 0;
    uint64_t floor = ring.writing ? ring.floor : UINT64_MAX;
    if (floor > 0) {
        uint64_t h = horizon();
        /* No run kept or running: nothing protects run chunks, but
         * outside data then has nothing newer to make room for but
         * itself, handled by its window. */
        if (h == UINT64_MAX)
            h = 0;
        if (h > floor)
            h = floor;
        freed = stageprof__tbuf_evict(h, LOAD_RELAXED(&stageprof__g.budget) / 4,
                                      floor);
    }
    pthread_mutex_unlock(&ring.lock);
    return freed;
}

static int cmp_id(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int stageprof__ring_view_open(struct ring_view *v)
{
    return stageprof__ring_view_open_from(v, 0);
}

int stageprof__ring_view_open_from(struct ring_view *v, uint64_t floor)
{
    memset(v, 0, sizeof *v);
    pthread_mutex_lock(&ring.lock);
    ring.writing = 1;
    ring.floor = floor;
    v->active = ring.active;
    v->capacity = ring.capacity;
    v->kept = ring.done_n;
    v->running = ring.open_live;
    v->evicted = ring.evicted;
    v->sample_rate = ring.sample_rate;
    v->sampled_out = LOAD_RELAXED(&ring.sampled_out);
    v->pinned_bytes = LOAD_RELAXED(&ring.pinned_bytes);
    v->pinned_dropped = LOAD_RELAXED(&ring.pinned_dropped);
    v->unmatched_ends = ring.unmatched_ends;
    int rc = 0;
    if (ring.active) {
        size_t n = ring.done_n + ring.open_live;
        /* Runs not sampled (recorded for tail keeping) are left out. */
        v->ids = stageprof__malloc((n ? n : 1) * sizeof *v->ids);
        if (v->ids == NULL) {
            rc = STAGEPROF_ENOMEM;
        } else {
            for (size_t i = 0; i < ring.done_n; i++)
                v->ids[v->n++] =
                    ring.done[(ring.done_head + i) % ring.capacity].id;
            for (size_t i = 0; i < ring.open_cap; i++)
                if (ring.open[i].id != 0 && !ring.open[i].dead &&
                    ring.open[i].sampled)
                    v->ids[v->n++] = ring.open[i].id;
        }
    }
    pthread_mutex_unlock(&ring.lock);
    if (v->n > 1)
        qsort(v->ids, v->n, sizeof *v->ids, cmp_id);
    v->last_id = 0;
    v->last_keep = 1;
    return rc;
}

int stageprof__ring_view_keeps(struct ring_view *v, uint64_t run)
{
    if (!v->active || run == 0)
        return 1;
    if (run == v->last_id)
        return v->last_keep;
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v->ids[mid] < run)
            lo = mid + 1;
        else
            hi = mid;
    }
    v->last_id = run;
    v->last_keep = lo < v->n && v->ids[lo] == run;
    return v->last_keep;
}

void stageprof__ring_view_close(struct ring_view *v)
{
    pthread_mutex_lock(&ring.lock);
    ring.writing = 0;
    ring.floor = 0;
    pthread_mutex_unlock(&ring.lock);
    stageprof__free(v->ids);
    v->ids = NULL;
}

void stageprof__ring_fork(int phase)
{
    if (phase == 0) {
        pthread_mutex_lock(&ring.lock);
        return;
    }
    if (phase == 1) {
        pthread_mutex_unlock(&ring.lock);
        return;
    }
    /* Child: the parent's runs are not the child's; start-up again. */
    pthread_mutex_init(&ring.lock, NULL);
    if (ring.open != NULL)
        memset(ring.open, 0, ring.open_cap * sizeof *ring.open);
    ring.open_used = ring.open_live = 0;
    ring.done_head = ring.done_n = 0;
    ring.evicted = ring.untracked = ring.unmatched_ends = 0;
    ring.sampled_out = 0;
    ring.pinned_bytes = ring.pinned_dropped = 0;
    ring.pinned_warned = 0;
    ring.writing = 0;
    ring.startup = 1;
}
