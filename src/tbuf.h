/*
 * tbuf.h - per-thread event buffers and the record format.
 *
 * Each recording thread owns one struct tbuf, found through a thread-local
 * pointer. Events are appended as 16-byte records to the thread's current
 * chunk; chunks come from a global budget (STAGEPROF_BUFFER_BYTES) and are
 * chained oldest first:
 *
 *   tbuf.head -> [chunk]->[chunk]->[chunk] <- tbuf.cur (being written)
 *                 |read..used|      used = committed bytes, release-stored
 *
 *   chunk.data:  | rec | rec | rec+payload | rec | ... free ... |reserve|
 *                                          pos ^        limit ^   end ^
 *
 * The owner thread is the only writer of pos/limit and of a chunk's bytes;
 * after each record it publishes chunk.used with a release store, so the
 * writer thread (which reads with acquire) always sees whole records. Chain
 * links change only under tbuf.lock, once per chunk.
 *
 * End records never fail: every open span reserves 16 bytes at the end of
 * the current chunk (limit = end - 16 * depth), so a begin that was recorded
 * always gets its end, and the writer sees balanced spans.
 *
 * Each chunk remembers the thread's current run when it was started, so a
 * reader can attribute events to runs from any chunk on: this is what lets
 * the run ring evict whole old chunks.
 *
 * Record layout (two 64-bit words; kind in the low 4 bits of word b; sites
 * are 16-byte aligned so their pointer keeps those bits free):
 *
 *   kind         word a        word b          payload slots
 *   BEGIN        ticks         site|kind       -
 *   END          ticks         kind            -
 *   BEGIN_NAME   ticks         site|kind       {len, 0} + name bytes
 *   COMPLETE     start ns      site|kind       {dur ns, 0}
 *   INSTANT      ticks         site|kind       -
 *   COUNTER      ticks         site|kind       {value bits, 0 int / 1 dbl}
 *   FLOW         ticks         site|kind       {id, phase}
 *   RUN          ticks         site|kind       {run id, phase}
 *   ARG          key pointer   kind|type<<4|target<<8   {value or len, 0}
 *                                                       + string bytes
 */
#ifndef STAGEPROF_TBUF_H
#define STAGEPROF_TBUF_H

#include "internal.h"

#define REC_SIZE 16u
#define STAGEPROF_MAX_DEPTH 128u
#define STAGEPROF_MAX_STRING 1024u
#define STAGEPROF_NAME_MAX 64u

enum rec_kind {
    REC_PAD = 0,
    REC_BEGIN = 1,
    REC_END = 2,
    REC_BEGIN_NAME = 3,
    REC_COMPLETE = 4,
    REC_INSTANT = 5,
    REC_COUNTER = 6,
    REC_FLOW = 7,
    REC_RUN = 8,
    REC_ARG = 9
};

enum { FLOW_BEGIN = 0, FLOW_STEP = 1, FLOW_END = 2 };
enum { RUN_BEGIN = 0, RUN_END = 1, RUN_SET = 2 };
enum { ARG_INT = 0, ARG_DOUBLE = 1, ARG_STR = 2 };

/* ARG target meaning "the instant just recorded". */
#define ARG_TARGET_INSTANT 0xFFFFu
/* stageprof_span_t.depth markers. */
#define SPAN_ENDED 0xFFFFFFFFu
#define SPAN_INSTANT 0xFFFFFFFEu

struct rec {
    uint64_t a;
    uint64_t b;
};

struct chunk {
    struct chunk *next;    /* newer chunk of the same thread */
    uint64_t run_at_start; /* thread's current run when started */
    size_t cap;            /* bytes in data */
    size_t used;           /* committed bytes (owner release, reader acquire) */
    size_t read;           /* bytes already written (writer only) */
    uint64_t last_ticks;   /* clock when sealed; UINT64_MAX while current */
    unsigned depth_at_start; /* open spans of the thread when started */
    unsigned flags;          /* CHUNK_PINNED, CHUNK_RUN (ring.h; atomic) */
    uint64_t pad_;
    unsigned char data[]; /* records, 16-byte aligned */
};

struct tbuf {
    /* hot: owner thread only (pos and limit apart, so that updates of both
     * stay two scalar stores the next record can read back directly) */
    unsigned char *pos;   /* next record goes here */
    struct chunk *cur;    /* chunk being written; NULL before the first */
    unsigned char *limit; /* end of cur minus the reserve of open spans */
    unsigned depth;       /* open recorded spans */
    unsigned serial;      /* last span serial handed out */
    uint64_t run;         /* current run, 0 none */
    int muted;            /* current run not sampled: record nothing */
    unsigned char *after_instant; /* pos just after the last instant */
    unsigned instant_serial;      /* serial of that instant */
    unsigned stack_serial[STAGEPROF_MAX_DEPTH]; /* serial per open level */
    uint32_t mslot[STAGEPROF_MAX_DEPTH];  /* metrics series per open level,
                                             UINT32_MAX none */
    uint64_t mstart[STAGEPROF_MAX_DEPTH]; /* its begin ticks */

    /* counters: written by the owner (relaxed), read by anyone */
    uint64_t dropped;       /* events that did not fit the budget */
    uint64_t mis_end_other; /* span ended on another thread */
    uint64_t mis_end_twice; /* span ended twice or never begun */
    uint64_t mis_unclosed;  /* inner spans closed by their parent */
    uint64_t mis_depth;     /* begins beyond STAGEPROF_MAX_DEPTH */
    uint64_t mis_arg;       /* args for a span or instant no longer open */
    uint64_t truncated;     /* strings cut to STAGEPROF_MAX_STRING */

    /* cold: under lock */
    pthread_mutex_t lock; /* chain links, name */
    struct chunk *head;   /* oldest chunk not yet written */
    int tid;              /* kernel thread id */
    int sort_index;       /* thread_sort_index, when has_sort */
    int has_sort;
    int exited; /* the thread has exited (atomic) */
    char name[STAGEPROF_NAME_MAX];
    struct tbuf *next; /* registry (stageprof__g.threads) */

    /* writer state, kept between trace files */
    unsigned wr_open; /* spans whose begin went into an earlier file */
    uint64_t wr_open_run[STAGEPROF_MAX_DEPTH];       /* their runs, for "E" */
    unsigned char wr_open_skip[STAGEPROF_MAX_DEPTH]; /* not written */
    uint64_t wr_run; /* current run at the point already written */
    uint64_t seq;    /* registration order, for fixed test ids */
};

/* The calling thread's buffer, or NULL before its first event. */
extern __thread struct tbuf *stageprof__tls
    __attribute__((tls_model("initial-exec")));

/* Create the calling thread's buffer (first event); NULL when impossible. */
struct tbuf *stageprof__tbuf_attach(void);
/*
 * Make room for @need bytes beyond the open-span reserve: seal the current
 * chunk and start a new one. Returns 1 with tb->pos/limit valid, 0 when the
 * budget is full (the caller drops the event and counts it).
 */
int stageprof__tbuf_grow(struct tbuf *tb, size_t need);
/* Release chunks fully written by the writer; free exited threads' tbufs. */
void stageprof__tbuf_reclaim(void);
/* Free every thread buffer (process teardown and tests). */
void stageprof__tbuf_free_all(void);
/* Sum the counters of every thread, live and freed (g.lock held). */
void stageprof__tbuf_counts(struct counts *out);
/* Event bytes held (chunks in use, not those waiting for reuse). */
uint64_t stageprof__tbuf_bytes(void);
/* Return the free chunks to the allocator. */
void stageprof__tbuf_pool_drain(void);
/*
 * Free unpinned chunks sealed before @horizon, then the oldest outside-run
 * chunks sealed before @floor while they hold more than @outside_max
 * bytes. Never waits for a lock (a busy thread is skipped). Caller holds
 * the ring's lock, and no writer reads chunks sealed before @floor nor
 * (@horizon <= @floor) before @horizon. Returns the bytes freed.
 */
uint64_t stageprof__tbuf_evict(uint64_t horizon, uint64_t outside_max,
                               uint64_t floor);
/* Mark the thread's current chunk as holding run events. */
void stageprof__tbuf_mark_run(struct tbuf *tb);

/* Publish everything before @pos (the new tb->pos) to the writer. */
static inline void tbuf_commit_at(struct tbuf *tb, unsigned char *pos)
{
    struct chunk *c = tb->cur;
    STORE_RELEASE(&c->used, (size_t)(pos - c->data));
}

static inline void tbuf_commit(struct tbuf *tb)
{
    tbuf_commit_at(tb, tb->pos);
}

/*
 * Reserve @size bytes (a multiple of 16) for a record that is not a span
 * begin. Returns the record or NULL (event dropped and counted).
 */
static inline struct rec *tbuf_reserve(struct tbuf *tb, size_t size)
{
    if (unlikely(tb->pos + size > tb->limit)) {
        if (!stageprof__tbuf_grow(tb, size)) {
            BUMP(&tb->dropped);
            return NULL;
        }
    }
    struct rec *r = (struct rec *)tb->pos;
    tb->pos += size;
    return r;
}

/* The thread's buffer, created on first use; NULL when it cannot be. */
static inline struct tbuf *tbuf_get(void)
{
    struct tbuf *tb = stageprof__tls;
    if (unlikely(tb == NULL))
        tb = stageprof__tbuf_attach();
    return tb;
}

/* The TSC; call only when stageprof__g.clock_mode is CLOCK_MODE_TSC. */
static inline uint64_t tsc_ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_ia32_rdtsc();
#else
    return stageprof__clock_slow_ticks();
#endif
}

/* Raw clock ticks: the TSC, or ns from the slow path. */
static inline uint64_t clock_ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    if (likely(LOAD_RELAXED(&stageprof__g.clock_mode) == CLOCK_MODE_TSC))
        return __builtin_ia32_rdtsc();
#endif
    return stageprof__clock_slow_ticks();
}

/*
 * Common gate of every recording call: tracing on, and the site's category
 * recorded. Cheap when both hold; the slow paths resolve ARMED state and
 * categories once per site and session.
 */
static inline int record_gate(stageprof_site_t *site)
{
    if (unlikely(LOAD_RELAXED(&stageprof_hot_state) != STATE_TRACING) &&
        !stageprof__ensure_tracing())
        return 0;
    if (site != NULL) {
        unsigned f = LOAD_RELAXED(&site->filter);
        if (unlikely(f != LOAD_RELAXED(&stageprof__g.filter_token)) &&
            !(stageprof__site_resolve(site) & 1u))
            return 0;
    }
    return 1;
}

/*
 * The calling thread's buffer when an event for @site is to be recorded:
 * the gate is open, the buffer exists and the current run is not muted.
 * NULL otherwise.
 */
static inline struct tbuf *tbuf_for(stageprof_site_t *site)
{
    if (unlikely(!record_gate(site)))
        return NULL;
    struct tbuf *tb = tbuf_get();
    if (unlikely(tb == NULL || tb->muted))
        return NULL;
    return tb;
}

/*
 * Append a two-slot record: {@a, @site|@kind} then the payload {@x, @y}.
 * Dropped (and counted) when the budget is full.
 */
static inline void tbuf_put_pair(struct tbuf *tb, stageprof_site_t *site,
                                 unsigned kind, uint64_t a, uint64_t x,
                                 uint64_t y)
{
    struct rec *r = tbuf_reserve(tb, 2 * REC_SIZE);
    if (r == NULL)
        return;
    r[0].a = a;
    r[0].b = (uintptr_t)site | kind;
    r[1].a = x;
    r[1].b = y;
    tbuf_commit(tb);
}

/* Bytes of payload slots for a string of @len bytes (rounded up to 16). */
static inline size_t str_slots(size_t len)
{
    return (len + REC_SIZE - 1) & ~(size_t)(REC_SIZE - 1);
}

/*
 * Size of the record at @r, 0 when it does not fit in @avail bytes or is
 * malformed. Pure, so the crash handler may use it too.
 */
static inline size_t tbuf_rec_size(const struct rec *r, size_t avail)
{
    unsigned kind = (unsigned)(r->b & 15u);
    size_t size;
    switch (kind) {
    case REC_BEGIN:
    case REC_END:
    case REC_INSTANT:
    case REC_PAD:
        size = REC_SIZE;
        break;
    case REC_COMPLETE:
    case REC_COUNTER:
    case REC_FLOW:
    case REC_RUN:
        size = 2 * REC_SIZE;
        break;
    case REC_BEGIN_NAME:
        if (avail < 2 * REC_SIZE || r[1].a > STAGEPROF_MAX_STRING)
            return 0;
        size = 2 * REC_SIZE + str_slots((size_t)r[1].a);
        break;
    case REC_ARG:
        if (avail < 2 * REC_SIZE)
            return 0;
        size = 2 * REC_SIZE;
        if (((r->b >> 4) & 15u) == ARG_STR) {
            if (r[1].a > STAGEPROF_MAX_STRING)
                return 0;
            size += str_slots((size_t)r[1].a);
        }
        break;
    default:
        return 0;
    }
    return size <= avail ? size : 0;
}

/* The site pointer kept in word b of the record at @r (NULL for none). */
static inline const stageprof_site_t *tbuf_rec_site(const struct rec *r)
{
    return (const stageprof_site_t *)(uintptr_t)(r->b & ~15ull);
}

#endif /* STAGEPROF_TBUF_H */
