/*
 * metrics.c - live metrics: histograms of stage, run and queue-wait
 * durations, user counters as gauges, and the /metrics text.
 *
 * Series. Every labelled series (a stage: name and category; a run name; a
 * flow name; a counter name) gets a slot in one registry, once per call
 * site: the site caches slot and registry generation in its `metric` word,
 * so after the first event a recording call indexes arrays and nothing else.
 * Each kind holds at most max_stages series (STAGEPROF_MAX_STAGES); the
 * rest share one "other" series per kind and are counted, so names made
 * dynamic by a bug cannot grow Prometheus's memory without bound.
 *
 * Shards. A histogram is kept per thread: a thread's shard is a directory
 * of blocks of 64 slots, each slot its bucket counts (the last one for
 * values above every bound) and the sum of its values, all in clock ticks.
 * Only the owning thread writes a shard (relaxed loads and stores, no
 * read-modify-write), so an observation takes no lock; a scrape sums every
 * shard under the registry lock, and a thread's exit folds its shard into
 * the retired one. Blocks are allocated on a thread's first observation of
 * a slot in them, like its event buffer on its first event.
 *
 *   thread A shard: dir -> [blk 0: slot 0..63] [NULL] [blk 2] ...
 *   thread B shard: dir -> [blk 0]             ...
 *   retired shard (exited threads)              \ summed at scrape time
 *
 * Durations are converted from clock ticks to nanoseconds as they are
 * observed (one 64x64 multiply), so bounds and sums keep one unit whatever
 * clock a session uses. The registry is made by the first session with
 * metrics and lives as long as the process: Prometheus counters must never
 * go back, and nothing a recording thread may be touching is ever freed.
 * Its bounds and cap are therefore those of that first session.
 *
 * Runs and queue waits pair a begin with an end that may come from another
 * thread: they go through a small table keyed by id under a lock, as run
 * begin and end already do for the ring (twice per run, never per span).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "metrics.h"
#include "ring.h"
#include "sampler.h"
#include "tbuf.h"
#include "util/strbuf.h"

/* ------------------------------------------------------------------------ */
/* State                                                                    */
/* ------------------------------------------------------------------------ */

enum { KIND_STAGE = 0, KIND_RUN = 1, KIND_FLOW = 2, KIND_COUNTER = 3 };
#define NKINDS 4
#define BLOCK_SLOTS 64u
#define PAIR_CAP 4096u /* runs or flows in flight tracked for durations */

struct series {
    char *name;     /* owned */
    char *category; /* owned; stages only */
    int kind;
    char *labels; /* owned: `stage="x",category="y"` (escaped) */
};

struct shard {
    uint64_t **dir;     /* blocks of BLOCK_SLOTS slots, NULL until used */
    size_t ndir;        /* entries in dir */
    struct shard *next; /* registry list */
};

/* One begin waiting for its end: a run or a flow by id. */
struct pair {
    uint64_t id;    /* 0: free */
    uint32_t slot;  /* flow slot (runs: 0, the end names the run) */
    uint64_t ticks; /* when it began */
};

static struct {
    pthread_mutex_t lock; /* registry, shard list, pair tables */
    pthread_key_t key;    /* thread exit: fold the shard */
    int key_made;
    int open; /* registry exists */
    double bounds_s[STAGEPROF_MAX_BUCKETS];
    uint64_t bounds[STAGEPROF_MAX_BUCKETS + 1];  /* ns, then UINT64_MAX */
    uint64_t tbounds[STAGEPROF_MAX_BUCKETS + 1]; /* the same in clock ticks
                                                    of this session */
    int nb;                                      /* bounds in use */
    size_t stride;         /* u64 per slot: nb + 1 buckets and a sum */
    uint64_t mult;         /* ns per clock tick << 32 (atomic) */
    long long cap;         /* series per kind */
    struct series *series; /* [nslots] */
    uint32_t nslots, maxslots;
    uint32_t other[NKINDS];    /* slot of each kind's overflow series */
    uint32_t count[NKINDS];    /* named series per kind */
    uint64_t overflow[NKINDS]; /* registrations sent to "other" */
    uint32_t *hash;            /* open addressing: slot + 1, 0 empty */
    uint32_t hcap;
    uint64_t *gauges;     /* counters' last values (double bits) */
    struct shard *shards; /* live threads */
    struct shard retired; /* exited threads, summed */
    struct pair runs[PAIR_CAP], flows[PAIR_CAP];
    uint64_t pairs_lost; /* begins not tracked: table full */
    uint64_t lost;       /* observations lost: no memory for a shard */
} M = {.lock = PTHREAD_MUTEX_INITIALIZER};

int stageprof__metrics_on;
static __thread struct shard *tls_shard
    __attribute__((tls_model("initial-exec")));

/* ------------------------------------------------------------------------ */
/* Registry                                                                 */
/* ------------------------------------------------------------------------ */

static uint32_t hash_key(int kind, const char *name, const char *cat)
{
    uint32_t h = 2166136261u ^ (uint32_t)kind;
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ 0xff) * 16777619u;
    for (const char *p = cat; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

void stageprof__metrics_label(struct strbuf *sb, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = *s == '\\'   ? "\\\\"
                          : *s == '"'  ? "\\\""
                          : *s == '\n' ? "\\n"
                                       : NULL;
        if (esc == NULL)
            continue;
        stageprof__sb_add(sb, run, (size_t)(s - run));
        stageprof__sb_adds(sb, esc);
        run = s + 1;
    }
    stageprof__sb_add(sb, run, (size_t)(s - run));
}

static void *sb_alloc(size_t n)
{
    return stageprof__malloc(n);
}

/* The escaped label text of a new series (owned), NULL without memory. */
static char *make_labels(int kind, const char *name, const char *cat)
{
    static const char *const key[NKINDS] = {"stage", "run", "flow", "track"};
    struct strbuf sb;
    stageprof__sb_init(&sb, sb_alloc, stageprof__free);
    stageprof__sb_addf(&sb, "%s=\"", key[kind]);
    stageprof__metrics_label(&sb, name);
    stageprof__sb_adds(&sb, "\"");
    if (kind == KIND_STAGE) {
        stageprof__sb_adds(&sb, ",category=\"");
        stageprof__metrics_label(&sb, cat);
        stageprof__sb_adds(&sb, "\"");
    }
    if (sb.oom) {
        stageprof__sb_fini(&sb);
        return NULL;
    }
    return sb.buf;
}

/* Add a series (lock held); returns its slot or UINT32_MAX. */
static uint32_t add_series(int kind, const char *name, const char *cat)
{
    if (M.nslots == M.maxslots)
        return UINT32_MAX;
    struct series *s = &M.series[M.nslots];
    s->kind = kind;
    s->name = stageprof__strdup(name);
    s->category = stageprof__strdup(cat);
    s->labels = make_labels(kind, name, cat);
    if (s->name == NULL || s->category == NULL || s->labels == NULL) {
        stageprof__free(s->name);
        stageprof__free(s->category);
        stageprof__free(s->labels);
        memset(s, 0, sizeof *s);
        return UINT32_MAX;
    }
    STORE_RELAXED(&M.nslots, M.nslots + 1);
    return M.nslots - 1;
}

/*
 * The slot of (@kind, @name, @cat), registering it when new (lock held).
 * Beyond the cap, or without memory, the kind's "other" series.
 */
static uint32_t lookup(int kind, const char *name, const char *cat)
{
    if (name == NULL)
        name = "";
    if (cat == NULL)
        cat = kind == KIND_STAGE ? "default" : "";
    uint32_t mask = M.hcap - 1, i = hash_key(kind, name, cat) & mask;
    for (; M.hash[i] != 0; i = (i + 1) & mask) {
        struct series *s = &M.series[M.hash[i] - 1];
        if (s->kind == kind && strcmp(s->name, name) == 0 &&
            strcmp(s->category, cat) == 0)
            return M.hash[i] - 1;
    }
    if (M.count[kind] >= (uint64_t)M.cap) {
        if (M.overflow[kind]++ == 0)
            stageprof__log(STAGEPROF_LOG_WARN,
                           "more than %lld distinct %s names: \"%.64s\" and "
                           "later ones are counted under \"other\" in "
                           "/metrics (STAGEPROF_MAX_STAGES)",
                           M.cap,
                           kind == KIND_STAGE  ? "stage"
                           : kind == KIND_RUN  ? "run"
                           : kind == KIND_FLOW ? "flow"
                                               : "counter",
                           name);
        return M.other[kind];
    }
    uint32_t slot = add_series(kind, name, cat);
    if (slot == UINT32_MAX)
        return M.other[kind];
    M.count[kind]++;
    M.hash[i] = slot + 1;
    return slot;
}

static uint32_t site_slot_slow(stageprof_site_t *site, int kind)
{
    pthread_mutex_lock(&M.lock);
    uint32_t slot = UINT32_MAX;
    if (M.open) {
        slot = lookup(kind, site->name, site->category);
        /* The registry is never reset, so a cached slot stays right. */
        STORE_RELAXED(&site->metric, slot + 1);
    }
    pthread_mutex_unlock(&M.lock);
    return slot;
}

/* The slot of @site's series, resolved once per site. */
static inline uint32_t site_slot(stageprof_site_t *site, int kind)
{
    unsigned m = LOAD_RELAXED(&site->metric);
    if (likely(m != 0))
        return m - 1;
    return site_slot_slow(site, kind);
}

uint32_t stageprof__metrics_stage_slow(stageprof_site_t *site)
{
    return site ? site_slot(site, KIND_STAGE) : UINT32_MAX;
}

uint32_t stageprof__metrics_stage_named(stageprof_site_t *site,
                                        const char *name)
{
    pthread_mutex_lock(&M.lock);
    uint32_t slot = M.open
                        ? lookup(KIND_STAGE, name, site ? site->category : NULL)
                        : UINT32_MAX;
    pthread_mutex_unlock(&M.lock);
    return slot;
}

/* ------------------------------------------------------------------------ */
/* Shards                                                                   */
/* ------------------------------------------------------------------------ */

/* Add @from's counts into @to (lock held; @to is not being written). */
static void shard_fold(struct shard *to, const struct shard *from)
{
    for (size_t b = 0; b < from->ndir && b < to->ndir; b++) {
        const uint64_t *src = from->dir[b];
        if (src == NULL)
            continue;
        if (to->dir[b] == NULL) {
            to->dir[b] = stageprof__calloc(BLOCK_SLOTS * M.stride, 8);
            if (to->dir[b] == NULL) {
                M.lost++;
                continue;
            }
        }
        for (size_t i = 0; i < BLOCK_SLOTS * M.stride; i++)
            to->dir[b][i] += LOAD_RELAXED(&src[i]);
    }
}

static void shard_free_blocks(struct shard *s)
{
    for (size_t b = 0; b < s->ndir; b++)
        stageprof__free(s->dir[b]);
    stageprof__free(s->dir);
    s->dir = NULL;
    s->ndir = 0;
}

/* Thread exit: fold the thread's counts into the retired shard. */
static void shard_exit(void *p)
{
    struct shard *s = p;
    pthread_mutex_lock(&M.lock);
    for (struct shard **pp = &M.shards; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    if (M.open)
        shard_fold(&M.retired, s);
    shard_free_blocks(s);
    stageprof__free(s);
    pthread_mutex_unlock(&M.lock);
}

/* The calling thread's shard, made on its first observation. */
static struct shard *shard_attach(void)
{
    struct shard *s = stageprof__calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    pthread_mutex_lock(&M.lock);
    size_t ndir = (M.maxslots + BLOCK_SLOTS - 1) / BLOCK_SLOTS;
    s->dir = M.open ? stageprof__calloc(ndir, sizeof *s->dir) : NULL;
    if (s->dir == NULL) {
        pthread_mutex_unlock(&M.lock);
        stageprof__free(s);
        return NULL;
    }
    s->ndir = ndir;
    s->next = M.shards;
    M.shards = s;
    pthread_mutex_unlock(&M.lock);
    tls_shard = s;
    (void)pthread_setspecific(M.key, s);
    return s;
}

static __attribute__((noinline)) uint64_t *block_slow(uint32_t slot)
{
    struct shard *s = tls_shard;
    if (s == NULL && (s = shard_attach()) == NULL)
        return NULL;
    size_t b = slot / BLOCK_SLOTS;
    if (b >= s->ndir)
        return NULL;
    uint64_t *blk = stageprof__calloc(BLOCK_SLOTS * M.stride, 8);
    if (blk == NULL)
        return NULL;
    /* Published under the lock: a scrape walks the directory under it. */
    pthread_mutex_lock(&M.lock);
    STORE_RELEASE(&s->dir[b], blk);
    pthread_mutex_unlock(&M.lock);
    return blk;
}

/*
 * Index of the bucket for @v in @bounds (ending with UINT64_MAX): the first
 * bound >= @v. A scan from the smallest: the durations of one stage mostly
 * fall in the same bucket, so its branches are predicted, and it beats a
 * binary search whose steps each wait for the one before.
 */
static inline unsigned bucket_of(const uint64_t *bounds, uint64_t v)
{
    unsigned i = 0;
    while (v > bounds[i])
        i++;
    return i;
}

/* Add one value (bucket @i, @ns to the sum) to @slot's histogram. */
static inline void observe(uint32_t slot, unsigned i, uint64_t ns)
{
    if (unlikely(slot >= LOAD_RELAXED(&M.nslots)))
        return;
    struct shard *s = tls_shard;
    uint64_t *blk = likely(s != NULL && slot / BLOCK_SLOTS < s->ndir)
                        ? s->dir[slot / BLOCK_SLOTS]
                        : NULL;
    if (unlikely(blk == NULL) && (blk = block_slow(slot)) == NULL) {
        __atomic_fetch_add(&M.lost, 1, __ATOMIC_RELAXED);
        return;
    }
    uint64_t *h = blk + (slot % BLOCK_SLOTS) * M.stride;
    STORE_RELAXED(&h[i], LOAD_RELAXED(&h[i]) + 1);
    STORE_RELAXED(&h[M.nb + 1], LOAD_RELAXED(&h[M.nb + 1]) + ns);
}

void stageprof__metrics_observe(uint32_t slot, uint64_t ticks)
{
    /* An end read before its begin (clocks of two CPUs): not a duration. */
    if (unlikely(ticks >> 62))
        return;
    uint64_t ns =
        (uint64_t)(((unsigned __int128)ticks * LOAD_RELAXED(&M.mult)) >> 32);
    observe(slot, bucket_of(M.tbounds, ticks), ns);
}

void stageprof__metrics_observe_ns(uint32_t slot, uint64_t ns)
{
    observe(slot, bucket_of(M.bounds, ns), ns);
}

/* ------------------------------------------------------------------------ */
/* Runs, flows and counters                                                 */
/* ------------------------------------------------------------------------ */

/*
 * Remember @id's begin in @tab (lock held); replaces a stale same id. A
 * full table (runs begun and never ended) gives up the begin at @id's home
 * slot, counted, so a leak of runs cannot stop the run metrics for good.
 */
static void pair_put(struct pair *tab, uint64_t id, uint32_t slot,
                     uint64_t ticks)
{
    uint32_t home = (uint32_t)(id * 0x9E3779B97F4A7C15ull >> 52) % PAIR_CAP;
    uint32_t i = home;
    for (uint32_t n = 0; n < PAIR_CAP; n++, i = (i + 1) % PAIR_CAP) {
        if (tab[i].id == 0 || (tab[i].id == id && tab[i].slot == slot))
            break;
    }
    if (tab[i].id != 0 && !(tab[i].id == id && tab[i].slot == slot)) {
        M.pairs_lost++;
        i = home;
    }
    tab[i].id = id;
    tab[i].slot = slot;
    tab[i].ticks = ticks;
}

/* Take @id's begin out of @tab (lock held); 0 when not there. */
static int pair_take(struct pair *tab, uint64_t id, uint32_t slot,
                     uint64_t *ticks)
{
    uint32_t i = (uint32_t)(id * 0x9E3779B97F4A7C15ull >> 52) % PAIR_CAP;
    for (uint32_t n = 0; n < PAIR_CAP && tab[i].id != 0;
         n++, i = (i + 1) % PAIR_CAP) {
        if (tab[i].id == id && tab[i].slot == slot) {
            *ticks = tab[i].ticks;
            /*
             * Backward-shift deletion keeps every probe chain unbroken;
             * bounded, for a table with no free slot left.
             */
            uint32_t hole = i, j = (i + 1) % PAIR_CAP;
            for (uint32_t k = 1; k < PAIR_CAP && tab[j].id != 0; k++) {
                uint32_t home =
                    (uint32_t)(tab[j].id * 0x9E3779B97F4A7C15ull >> 52) %
                    PAIR_CAP;
                if (((j - home) % PAIR_CAP) >= ((j - hole) % PAIR_CAP)) {
                    tab[hole] = tab[j];
                    hole = j;
                }
                j = (j + 1) % PAIR_CAP;
            }
            tab[hole].id = 0;
            return 1;
        }
    }
    return 0;
}

void stageprof__metrics_run(stageprof_site_t *site, uint64_t id, int end)
{
    uint64_t now = clock_ticks(), t0;
    uint32_t slot = end ? site_slot(site, KIND_RUN) : 0;
    pthread_mutex_lock(&M.lock);
    int found = 0;
    if (!end)
        pair_put(M.runs, id, 0, now);
    else
        found = pair_take(M.runs, id, 0, &t0);
    pthread_mutex_unlock(&M.lock);
    if (found)
        stageprof__metrics_observe(slot, now - t0);
}

void stageprof__metrics_flow(stageprof_site_t *site, uint64_t id, int phase)
{
    if (phase == FLOW_STEP)
        return;
    uint64_t now = clock_ticks(), t0;
    uint32_t slot = site_slot(site, KIND_FLOW);
    pthread_mutex_lock(&M.lock);
    int found = 0;
    if (phase == FLOW_BEGIN)
        pair_put(M.flows, id, slot, now);
    else
        found = pair_take(M.flows, id, slot, &t0);
    pthread_mutex_unlock(&M.lock);
    if (found)
        stageprof__metrics_observe(slot, now - t0);
}

void stageprof__metrics_counter(stageprof_site_t *site, double value)
{
    uint32_t slot = site_slot(site, KIND_COUNTER);
    if (slot >= M.maxslots || !isfinite(value))
        return;
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    STORE_RELAXED(&M.gauges[slot], bits);
}

/* ------------------------------------------------------------------------ */
/* Open and close                                                           */
/* ------------------------------------------------------------------------ */

static int same_shape(const struct conf *c)
{
    return c->nbuckets == M.nb && c->max_stages == M.cap &&
           memcmp(c->buckets, M.bounds_s, sizeof(double) * (size_t)M.nb) == 0;
}

/* Make the registry (lock held); on failure what was made stays unused. */
static int registry_make(const struct conf *c)
{
    M.nb = c->nbuckets;
    M.cap = c->max_stages;
    memcpy(M.bounds_s, c->buckets, sizeof(double) * (size_t)M.nb);
    for (int i = 0; i <= M.nb; i++) {
        /* ns at or below a bound count in its bucket: round it down. */
        double t = i < M.nb ? floor(M.bounds_s[i] * 1e9) : 0;
        M.bounds[i] = i < M.nb && t < 1.8e19 ? (uint64_t)t : UINT64_MAX;
    }
    M.stride = (size_t)M.nb + 2;
    M.maxslots = (uint32_t)(NKINDS * (M.cap + 1));
    M.hcap = 16;
    while (M.hcap < 2 * M.maxslots)
        M.hcap *= 2;
    M.series = stageprof__calloc(M.maxslots, sizeof *M.series);
    M.hash = stageprof__calloc(M.hcap, sizeof *M.hash);
    M.gauges = stageprof__calloc(M.maxslots, sizeof *M.gauges);
    M.retired.ndir = (M.maxslots + BLOCK_SLOTS - 1) / BLOCK_SLOTS;
    M.retired.dir = stageprof__calloc(M.retired.ndir, sizeof *M.retired.dir);
    if (M.series == NULL || M.hash == NULL || M.gauges == NULL ||
        M.retired.dir == NULL)
        goto fail;
    for (int k = 0; k < NKINDS; k++) {
        M.other[k] = add_series(k, "other", k == KIND_STAGE ? "other" : "");
        if (M.other[k] == UINT32_MAX)
            goto fail;
    }
    M.open = 1;
    return 0;
fail:
    for (uint32_t i = 0; i < M.nslots; i++) {
        stageprof__free(M.series[i].name);
        stageprof__free(M.series[i].category);
        stageprof__free(M.series[i].labels);
    }
    stageprof__free(M.series);
    stageprof__free(M.hash);
    stageprof__free(M.gauges);
    stageprof__free(M.retired.dir);
    M.series = NULL;
    M.hash = NULL;
    M.gauges = NULL;
    M.retired.dir = NULL;
    M.nslots = M.maxslots = 0;
    return STAGEPROF_ENOMEM;
}

int stageprof__metrics_open(const struct conf *c)
{
    pthread_mutex_lock(&M.lock);
    int rc = 0;
    if (!M.key_made) {
        if (pthread_key_create(&M.key, shard_exit) != 0)
            rc = STAGEPROF_ETHREAD;
        else
            M.key_made = 1;
    }
    if (rc == 0 && !M.open)
        rc = registry_make(c);
    else if (rc == 0 && !same_shape(c))
        stageprof__log(STAGEPROF_LOG_WARN,
                       "histogram bounds and STAGEPROF_MAX_STAGES are those "
                       "of the first session with metrics; the new ones "
                       "apply from the next process");
    if (rc == 0) {
        /* This session's clock: bounds in its ticks, ticks to ns. */
        uint64_t mult = stageprof__clock_ns_per_tick();
        STORE_RELAXED(&M.mult, mult);
        for (int i = 0; i <= M.nb; i++) {
            unsigned __int128 t = ((unsigned __int128)M.bounds[i] << 32) / mult;
            STORE_RELAXED(&M.tbounds[i], i < M.nb && t < UINT64_MAX
                                             ? (uint64_t)t
                                             : UINT64_MAX);
        }
        STORE_RELEASE(&stageprof__metrics_on, 1);
    }
    pthread_mutex_unlock(&M.lock);
    return rc;
}

void stageprof__metrics_close(void)
{
    STORE_RELEASE(&stageprof__metrics_on, 0);
}

void stageprof__metrics_fork(int phase)
{
    if (phase == 0) {
        pthread_mutex_lock(&M.lock);
    } else if (phase == 1) {
        pthread_mutex_unlock(&M.lock);
    } else {
        pthread_mutex_init(&M.lock, NULL);
        /* The child serves nothing: its parent owns the endpoint. */
        STORE_RELAXED(&stageprof__metrics_on, 0);
    }
}

/* ------------------------------------------------------------------------ */
/* Exposition                                                               */
/* ------------------------------------------------------------------------ */

/* @v in the shortest form that reads back exactly, into @buf (40). */
static void fmt_double(char *buf, size_t len, double v)
{
    if (!isfinite(v))
        v = 0;
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
}

static void add_double(struct strbuf *sb, double v)
{
    char buf[40];
    fmt_double(buf, sizeof buf, v);
    stageprof__sb_adds(sb, buf);
}

static void add_u64(struct strbuf *sb, uint64_t v)
{
    char buf[24];
    char *p = buf + sizeof buf;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    stageprof__sb_add(sb, p, (size_t)(buf + sizeof buf - p));
}

void stageprof__prom_family(struct strbuf *sb, const char *name,
                            const char *type, const char *help)
{
    stageprof__sb_addf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                       type);
}

/* "name{labels} " (@labels NULL: none), before a sample's value. */
static void sample_head(struct strbuf *sb, const char *name, const char *labels)
{
    stageprof__sb_adds(sb, name);
    if (labels != NULL) {
        stageprof__sb_adds(sb, "{");
        stageprof__sb_adds(sb, labels);
        stageprof__sb_adds(sb, "}");
    }
    stageprof__sb_adds(sb, " ");
}

void stageprof__prom_double(struct strbuf *sb, const char *name,
                            const char *labels, double v)
{
    sample_head(sb, name, labels);
    add_double(sb, v);
    stageprof__sb_adds(sb, "\n");
}

void stageprof__prom_u64(struct strbuf *sb, const char *name,
                         const char *labels, uint64_t v)
{
    sample_head(sb, name, labels);
    add_u64(sb, v);
    stageprof__sb_adds(sb, "\n");
}

/* One counter family without labels. */
static void plain_counter(struct strbuf *sb, const char *name, const char *help,
                          uint64_t v)
{
    stageprof__prom_family(sb, name, "counter", help);
    stageprof__prom_u64(sb, name, NULL, v);
}

/* Sum of every shard for @slot into @out (stride values; lock held). */
static void slot_sum(uint32_t slot, uint64_t *out)
{
    size_t b = slot / BLOCK_SLOTS, off = (slot % BLOCK_SLOTS) * M.stride;
    memset(out, 0, M.stride * sizeof *out);
    if (M.retired.dir[b] != NULL)
        for (size_t i = 0; i < M.stride; i++)
            out[i] += M.retired.dir[b][off + i];
    for (struct shard *s = M.shards; s; s = s->next) {
        const uint64_t *blk = b < s->ndir ? s->dir[b] : NULL;
        if (blk != NULL)
            for (size_t i = 0; i < M.stride; i++)
                out[i] += LOAD_RELAXED(&blk[off + i]);
    }
}

/* Every series of @kind as one histogram family (lock held). */
static void histograms(struct strbuf *sb, int kind, const char *name,
                       const char *help, const char *total)
{
    char le[STAGEPROF_MAX_BUCKETS][40];
    for (int i = 0; i < M.nb; i++)
        fmt_double(le[i], sizeof le[i], M.bounds_s[i]);
    uint64_t v[STAGEPROF_MAX_BUCKETS + 2];
    stageprof__prom_family(sb, name, "histogram", help);
    for (uint32_t slot = 0; slot < M.nslots; slot++) {
        const struct series *s = &M.series[slot];
        if (s->kind != kind || (slot == M.other[kind] && !M.overflow[kind]))
            continue;
        slot_sum(slot, v);
        uint64_t cum = 0;
        for (int i = 0; i <= M.nb; i++) {
            cum += v[i];
            stageprof__sb_addf(sb, "%s_bucket{%s,le=\"%s\"} ", name, s->labels,
                               i < M.nb ? le[i] : "+Inf");
            add_u64(sb, cum);
            stageprof__sb_adds(sb, "\n");
        }
        stageprof__sb_addf(sb, "%s_sum{%s} ", name, s->labels);
        add_double(sb, (double)v[M.nb + 1] / 1e9);
        stageprof__sb_addf(sb, "\n%s_count{%s} ", name, s->labels);
        add_u64(sb, cum);
        stageprof__sb_adds(sb, "\n");
    }
    if (total == NULL)
        return;
    stageprof__prom_family(sb, total, "counter",
                           "Runs completed, by run name.");
    for (uint32_t slot = 0; slot < M.nslots; slot++) {
        if (M.series[slot].kind != kind ||
            (slot == M.other[kind] && !M.overflow[kind]))
            continue;
        slot_sum(slot, v);
        uint64_t n = 0;
        for (int i = 0; i <= M.nb; i++)
            n += v[i];
        stageprof__sb_addf(sb, "%s{%s} ", total, M.series[slot].labels);
        add_u64(sb, n);
        stageprof__sb_adds(sb, "\n");
    }
}

static void gauges(struct strbuf *sb)
{
    stageprof__prom_family(
        sb, "ai_pipeline_value", "gauge",
        "Last value of each counter track the pipeline records.");
    for (uint32_t slot = 0; slot < M.nslots; slot++) {
        if (M.series[slot].kind != KIND_COUNTER ||
            (slot == M.other[KIND_COUNTER] && !M.overflow[KIND_COUNTER]))
            continue;
        uint64_t bits = LOAD_RELAXED(&M.gauges[slot]);
        double d;
        memcpy(&d, &bits, sizeof d);
        stageprof__prom_double(sb, "ai_pipeline_value", M.series[slot].labels,
                               d);
    }
}

/* The library's own health: drops, evictions, series beyond the cap. */
static void own_counters(struct strbuf *sb)
{
    static const char *const kinds[NKINDS] = {"stage", "run", "flow", "track"};
    pthread_mutex_lock(&stageprof__g.lock);
    struct counts c;
    stageprof__tbuf_counts(&c);
    pthread_mutex_unlock(&stageprof__g.lock);
    plain_counter(sb, "stageprof_events_dropped_total",
                  "Trace events not recorded: the buffer budget was full.",
                  c.dropped + LOAD_RELAXED(&stageprof__g.lost_no_tbuf));
    plain_counter(sb, "stageprof_runs_evicted_total",
                  "Completed runs pushed out of the run ring.",
                  stageprof__ring_evicted());
    pthread_mutex_lock(&M.lock);
    stageprof__prom_family(
        sb, "stageprof_series_overflow_total", "counter",
        "Series registrations beyond STAGEPROF_MAX_STAGES, counted "
        "under \"other\".");
    for (int k = 0; k < NKINDS; k++) {
        char labels[32];
        snprintf(labels, sizeof labels, "kind=\"%s\"", kinds[k]);
        stageprof__prom_u64(sb, "stageprof_series_overflow_total", labels,
                            M.overflow[k]);
    }
    uint64_t lost = LOAD_RELAXED(&M.lost), pairs = M.pairs_lost;
    pthread_mutex_unlock(&M.lock);
    plain_counter(sb, "stageprof_metrics_lost_total",
                  "Observations not counted: no memory, or too many runs "
                  "and flows in flight.",
                  lost + pairs);
}

void stageprof__metrics_render(struct strbuf *sb)
{
    pthread_mutex_lock(&M.lock);
    if (M.open) {
        histograms(sb, KIND_STAGE, "ai_pipeline_stage_duration_seconds",
                   "Time spent in each pipeline stage.", NULL);
        histograms(sb, KIND_RUN, "ai_pipeline_run_duration_seconds",
                   "Time from the begin of a run to its end.",
                   "ai_pipeline_runs_total");
        histograms(sb, KIND_FLOW, "ai_pipeline_queue_wait_seconds",
                   "Time from a flow's begin (hand-off) to its end "
                   "(pick-up).",
                   NULL);
        gauges(sb);
    }
    pthread_mutex_unlock(&M.lock);
    own_counters(sb);
    stageprof__http_render(sb);
    stageprof__sampler_render(sb);
}
