/*
 * tbuf.c - per-thread buffers: lazy creation, the registry, chunk supply
 * within the byte budget, thread exit and reclamation.
 *
 * Lifecycle of a struct tbuf:
 *   1. a thread's first recorded event calls stageprof__tbuf_attach(): the
 *      tbuf is allocated, registered in stageprof__g.threads (under g.lock)
 *      and published in the thread-local stageprof__tls;
 *   2. the owner appends records; every 64 KiB or so it asks
 *      stageprof__tbuf_grow() for a chunk (one atomic add on the budget,
 *      one allocation, tbuf.lock held for the link only);
 *   3. at thread exit the key destructor marks it exited; its events stay
 *      until a write has consumed them, then stageprof__tbuf_reclaim()
 *      frees it.
 * See tbuf.h for the chunk layout and the invariants of pos and limit.
 */
#include <string.h>
#include <sys/prctl.h>

#include "ring.h"
#include "tbuf.h"

__thread struct tbuf *stageprof__tls __attribute__((tls_model("initial-exec")));

/* Session generation at which this thread last failed to get a buffer. */
static __thread unsigned attach_failed_gen;
/* Name given before the thread had a buffer (tracing not yet on). */
static __thread char pending_name[STAGEPROF_NAME_MAX];
static __thread int pending_sort, pending_has_sort;

static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;
static int exit_key_ok;

/* Thread exit: keep the events, forget the thread-local pointer. */
static void on_thread_exit(void *arg)
{
    struct tbuf *tb = arg;
    STORE_RELEASE(&tb->exited, 1);
    stageprof__tls = NULL;
}

static void exit_key_create(void)
{
    exit_key_ok = pthread_key_create(&exit_key, on_thread_exit) == 0;
}

struct tbuf *stageprof__tbuf_attach(void)
{
    unsigned gen = LOAD_RELAXED(&stageprof__g.filter_token);
    if (attach_failed_gen == gen) {
        __atomic_fetch_add(&stageprof__g.lost_no_tbuf, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    pthread_once(&exit_key_once, exit_key_create);
    struct tbuf *tb = stageprof__calloc(1, sizeof *tb);
    if (tb == NULL || !exit_key_ok ||
        pthread_mutex_init(&tb->lock, NULL) != 0) {
        stageprof__free(tb);
        attach_failed_gen = gen;
        __atomic_fetch_add(&stageprof__g.lost_no_tbuf, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    tb->tid = stageprof__sysinfo_tid();
    if (pending_name[0] != '\0')
        memcpy(tb->name, pending_name, sizeof tb->name);
    else if (prctl(PR_GET_NAME, tb->name, 0, 0, 0) != 0)
        tb->name[0] = '\0';
    tb->name[sizeof tb->name - 1] = '\0';
    tb->sort_index = pending_sort;
    tb->has_sort = pending_has_sort;

    pthread_mutex_lock(&stageprof__g.lock);
    tb->next = stageprof__g.threads;
    stageprof__g.threads = tb;
    tb->seq = ++stageprof__g.threads_seen;
    pthread_mutex_unlock(&stageprof__g.lock);

    (void)pthread_setspecific(exit_key, tb);
    stageprof__tls = tb;
    /* A forked child's first event: its snapshot thread, if one is due. */
    stageprof__snapshot_resume();
    stageprof__crash_thread_init();
    return tb;
}

/*
 * Written and evicted chunks are kept on a free list instead of going back
 * to the allocator: reusing them keeps their pages resident, so a thread
 * starting a chunk does not pay a page fault per 4 KiB of events (nor the
 * allocator a trim and refill). Free chunks still count against the budget
 * (they are memory the profiler holds), which bounds the list; with the
 * ring off, where nothing is evicted, it keeps at most FREE_CHUNKS_MAX.
 */
#define FREE_CHUNKS_MAX 64

static struct {
    pthread_mutex_t lock;
    struct chunk *head;
    unsigned n;
    uint64_t size; /* size of the chunks on the list */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static struct chunk *pool_take(uint64_t size)
{
    struct chunk *c = NULL;
    pthread_mutex_lock(&pool.lock);
    if (pool.head != NULL && pool.size == size) {
        c = pool.head;
        pool.head = c->next;
        pool.n--;
    }
    pthread_mutex_unlock(&pool.lock);
    return c;
}

/* Give back a chunk: to the free list, or to the allocator. */
static void chunk_release(struct chunk *c)
{
    uint64_t size = (uint64_t)c->cap + sizeof *c;
    if (LOAD_RELAXED(&c->flags) & CHUNK_PINNED)
        stageprof__ring_unpin(size);
    pthread_mutex_lock(&pool.lock);
    if ((pool.n < FREE_CHUNKS_MAX || stageprof__ring_is_active()) &&
        (pool.n == 0 || pool.size == size)) {
        pool.size = size;
        c->next = pool.head;
        pool.head = c;
        pool.n++;
        c = NULL;
    }
    pthread_mutex_unlock(&pool.lock);
    if (c != NULL) {
        __atomic_fetch_sub(&stageprof__g.bytes_in_use, size, __ATOMIC_RELAXED);
        stageprof__free(c);
    }
}

void stageprof__tbuf_pool_drain(void)
{
    pthread_mutex_lock(&pool.lock);
    struct chunk *c = pool.head;
    uint64_t size = pool.size;
    pool.head = NULL;
    pool.n = 0;
    pthread_mutex_unlock(&pool.lock);
    while (c != NULL) {
        struct chunk *next = c->next;
        __atomic_fetch_sub(&stageprof__g.bytes_in_use, size, __ATOMIC_RELAXED);
        stageprof__free(c);
        c = next;
    }
}

/* A chunk of @size bytes within the budget: reused, or newly allocated. */
static struct chunk *chunk_get(uint64_t size)
{
    struct chunk *c = pool_take(size);
    if (c != NULL)
        return c;
    uint64_t budget = LOAD_RELAXED(&stageprof__g.budget);
    uint64_t before =
        __atomic_fetch_add(&stageprof__g.bytes_in_use, size, __ATOMIC_RELAXED);
    if (before + size <= budget)
        c = stageprof__malloc(size);
    if (c == NULL)
        __atomic_fetch_sub(&stageprof__g.bytes_in_use, size, __ATOMIC_RELAXED);
    return c;
}

int stageprof__tbuf_grow(struct tbuf *tb, size_t need)
{
    uint64_t size = LOAD_RELAXED(&stageprof__g.chunk_bytes);
    uint64_t reserve = (uint64_t)tb->depth * REC_SIZE;
    struct chunk *c = NULL;
    unsigned flags = tb->run != 0 ? CHUNK_RUN : 0;

    int ring = stageprof__ring_is_active();
    /* Start-up data outside runs is pinned, within its own share. */
    int pinned = ring && flags == 0 && stageprof__ring_is_startup();
    if (size >= sizeof *c + reserve + need &&
        (!pinned || stageprof__ring_pin(size))) {
        if (pinned)
            flags = CHUNK_PINNED;
        c = chunk_get(size);
        /* Budget full: let the ring free what it no longer keeps. */
        if (c == NULL && ring && stageprof__ring_evict() > 0)
            c = chunk_get(size);
        if (c == NULL && pinned)
            stageprof__ring_unpin(size);
    }
    if (c == NULL) {
        /*
         * Seal the current chunk: nothing else may land in it, or a smaller
         * record recorded after this dropped one could be attributed to the
         * wrong run. Ends of open spans still fit (they are reserved).
         */
        if (tb->cur != NULL && tb->limit > tb->pos)
            tb->limit = tb->pos;
        return 0;
    }
    c->next = NULL;
    c->run_at_start = tb->run;
    c->cap = size - sizeof *c;
    c->used = 0;
    c->read = 0;
    c->last_ticks = UINT64_MAX;
    c->depth_at_start = tb->depth;
    STORE_RELAXED(&c->flags, flags);

    pthread_mutex_lock(&tb->lock);
    if (tb->cur != NULL) {
        /* Sealed: everything in it is older than now. */
        tb->cur->last_ticks = clock_ticks();
        tb->cur->next = c;
    } else {
        tb->head = c;
    }
    tb->cur = c;
    pthread_mutex_unlock(&tb->lock);

    tb->pos = c->data;
    tb->limit = c->data + c->cap - reserve;
    return 1;
}

void stageprof__tbuf_mark_run(struct tbuf *tb)
{
    struct chunk *c = tb->cur;
    if (c != NULL)
        STORE_RELAXED(&c->flags, LOAD_RELAXED(&c->flags) | CHUNK_RUN);
}

/* Unlink @c (after @prev, or the head) from @tb and release it. */
static uint64_t evict_chunk(struct tbuf *tb, struct chunk *prev,
                            struct chunk *c)
{
    if (prev != NULL)
        prev->next = c->next;
    else
        tb->head = c->next;
    uint64_t size = (uint64_t)c->cap + sizeof *c;
    chunk_release(c);
    return size;
}

/* Outside-run chunk: neither pinned nor holding run events. */
static int is_outside(const struct chunk *c)
{
    return LOAD_RELAXED(&c->flags) == 0;
}

uint64_t stageprof__tbuf_evict(uint64_t horizon, uint64_t outside_max,
                               uint64_t floor)
{
    if (pthread_mutex_trylock(&stageprof__g.lock) != 0)
        return 0;
    uint64_t freed = 0, outside = 0;
    for (struct tbuf *tb = stageprof__g.threads; tb; tb = tb->next) {
        if (pthread_mutex_trylock(&tb->lock) != 0)
            continue;
        struct chunk *prev = NULL, *c = tb->head;
        while (c != NULL && c != tb->cur) {
            struct chunk *next = c->next;
            if (!(LOAD_RELAXED(&c->flags) & CHUNK_PINNED) &&
                c->last_ticks < horizon) {
                freed += evict_chunk(tb, prev, c);
            } else {
                if (is_outside(c))
                    outside += (uint64_t)c->cap + sizeof *c;
                prev = c;
            }
            c = next;
        }
        pthread_mutex_unlock(&tb->lock);
    }
    /* Outside-run data beyond its window: oldest first, across threads. */
    while (outside > outside_max) {
        struct tbuf *best_tb = NULL;
        struct chunk *best = NULL, *best_prev = NULL;
        for (struct tbuf *tb = stageprof__g.threads; tb; tb = tb->next) {
            if (pthread_mutex_trylock(&tb->lock) != 0)
                continue;
            struct chunk *prev = NULL;
            for (struct chunk *c = tb->head; c && c != tb->cur; c = c->next) {
                if (is_outside(c) && c->last_ticks < floor &&
                    (best == NULL || c->last_ticks < best->last_ticks)) {
                    best = c, best_prev = prev, best_tb = tb;
                }
                prev = c;
            }
            pthread_mutex_unlock(&tb->lock);
        }
        if (best == NULL || pthread_mutex_trylock(&best_tb->lock) != 0)
            break;
        /* Still linked where it was: only evictors unlink, and we hold the
         * ring's lock; the owner only appends after its current chunk. */
        uint64_t size = evict_chunk(best_tb, best_prev, best);
        pthread_mutex_unlock(&best_tb->lock);
        freed += size;
        outside -= size;
    }
    pthread_mutex_unlock(&stageprof__g.lock);
    return freed;
}

/* Free the chunks of @tb the writer has fully consumed (tb->lock held). */
static void release_written(struct tbuf *tb)
{
    while (tb->head != NULL && tb->head != tb->cur &&
           tb->head->read == LOAD_ACQUIRE(&tb->head->used)) {
        struct chunk *c = tb->head;
        tb->head = c->next;
        chunk_release(c);
    }
}

static int fully_written(struct tbuf *tb)
{
    return tb->head == NULL ||
           (tb->head == tb->cur &&
            tb->head->read == LOAD_ACQUIRE(&tb->head->used));
}

static void tbuf_destroy(struct tbuf *tb)
{
    while (tb->head != NULL) {
        struct chunk *c = tb->head;
        tb->head = c->next;
        chunk_release(c);
    }
    pthread_mutex_destroy(&tb->lock);
    stageprof__free(tb);
}

static void add_counts(struct counts *c, struct tbuf *tb)
{
    c->dropped += LOAD_RELAXED(&tb->dropped);
    c->end_other += LOAD_RELAXED(&tb->mis_end_other);
    c->end_twice += LOAD_RELAXED(&tb->mis_end_twice);
    c->unclosed += LOAD_RELAXED(&tb->mis_unclosed);
    c->depth += LOAD_RELAXED(&tb->mis_depth);
    c->arg += LOAD_RELAXED(&tb->mis_arg);
    c->truncated += LOAD_RELAXED(&tb->truncated);
}

void stageprof__tbuf_counts(struct counts *out)
{
    *out = stageprof__g.retired;
    out->dropped += LOAD_RELAXED(&stageprof__g.lost_no_tbuf);
    out->end_other += LOAD_RELAXED(&stageprof__g.misuse_no_tbuf);
    for (struct tbuf *tb = stageprof__g.threads; tb; tb = tb->next)
        add_counts(out, tb);
}

void stageprof__tbuf_reclaim(void)
{
    pthread_mutex_lock(&stageprof__g.lock);
    struct tbuf **link = &stageprof__g.threads;
    while (*link != NULL) {
        struct tbuf *tb = *link;
        pthread_mutex_lock(&tb->lock);
        release_written(tb);
        int gone = LOAD_ACQUIRE(&tb->exited) && fully_written(tb);
        pthread_mutex_unlock(&tb->lock);
        if (gone) {
            /* Its counts outlive it: later traces report totals. */
            *link = tb->next;
            add_counts(&stageprof__g.retired, tb);
            tbuf_destroy(tb);
        } else {
            link = &tb->next;
        }
    }
    pthread_mutex_unlock(&stageprof__g.lock);
}

void stageprof__tbuf_free_all(void)
{
    pthread_mutex_lock(&stageprof__g.lock);
    struct tbuf *tb = stageprof__g.threads;
    stageprof__g.threads = NULL;
    pthread_mutex_unlock(&stageprof__g.lock);
    while (tb != NULL) {
        struct tbuf *next = tb->next;
        if (tb == stageprof__tls)
            stageprof__tls = NULL;
        if (exit_key_ok && pthread_getspecific(exit_key) == tb)
            (void)pthread_setspecific(exit_key, NULL);
        tbuf_destroy(tb);
        tb = next;
    }
}

uint64_t stageprof__tbuf_bytes(void)
{
    pthread_mutex_lock(&pool.lock);
    uint64_t idle = pool.n * pool.size;
    pthread_mutex_unlock(&pool.lock);
    return LOAD_RELAXED(&stageprof__g.bytes_in_use) - idle;
}

void stageprof_thread_set_name(const char *name)
{
    if (name == NULL)
        return;
    size_t n = strnlen(name, sizeof pending_name - 1);
    memcpy(pending_name, name, n);
    pending_name[n] = '\0';
    /* Only a thread that already records has a buffer to rename. */
    struct tbuf *tb = stageprof__tls;
    if (tb == NULL)
        return;
    pthread_mutex_lock(&tb->lock);
    memcpy(tb->name, pending_name, sizeof tb->name);
    pthread_mutex_unlock(&tb->lock);
}

void stageprof_thread_set_sort_index(int index)
{
    pending_sort = index;
    pending_has_sort = 1;
    struct tbuf *tb = stageprof__tls;
    if (tb == NULL)
        return;
    pthread_mutex_lock(&tb->lock);
    tb->sort_index = index;
    tb->has_sort = 1;
    pthread_mutex_unlock(&tb->lock);
}

void stageprof__tbuf_fork(int phase)
{
    if (phase == 0) {
        pthread_mutex_lock(&pool.lock);
        return;
    }
    if (phase == 1) {
        pthread_mutex_unlock(&pool.lock);
        return;
    }
    /*
     * Child (g.lock re-created by the caller): only the forking thread
     * exists. Every buffer, its own included, holds the parent's events:
     * drop them all; the thread gets a fresh buffer at its next event.
     */
    pthread_mutex_init(&pool.lock, NULL);
    struct tbuf *tb = stageprof__g.threads;
    stageprof__g.threads = NULL;
    while (tb != NULL) {
        struct tbuf *next = tb->next;
        pthread_mutex_init(&tb->lock, NULL);
        tbuf_destroy(tb);
        tb = next;
    }
    stageprof__tls = NULL;
    if (exit_key_ok)
        (void)pthread_setspecific(exit_key, NULL);
}
