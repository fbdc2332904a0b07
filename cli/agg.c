/*
 * agg.c - per-stage statistics. See agg.h.
 *
 * Memory: each slice of a thread is kept (24 bytes) until agg_finish(),
 * because slices of a thread may arrive in any order and self times need
 * the whole nesting; each stage keeps its durations (8 bytes each) for
 * exact percentiles. Everything else is per distinct stage, thread,
 * counter series and open async span.
 *
 * Self time: a slice's duration minus the durations of its direct
 * children on the same thread. A child that sticks out past its parent's
 * end (rounding of the two times) counts only up to the parent's end; a
 * self time never goes below zero.
 */
#include "agg.h"
#include "agg_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const double agg_pcts[AGG_NPCT] = {0.50, 0.90, 0.95, 0.99, 0.999};

struct slice {
    int64_t start, dur;
    uint32_t stage;
    uint32_t run; /* from args.run, NO_RUN without */
};

struct be {
    int64_t ts;
    uint64_t seq;
    int32_t stage; /* -1 for an end */
    uint32_t run;  /* a begin's args.run, NO_RUN without */
};

/* String map -------------------------------------------------------------- */

/* Eight bytes at a time, each step mixed by a multiply and a shift. */
uint64_t hash_bytes(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0x9e3779b97f4a7c15u ^ n, w;
    for (; n >= 8; n -= 8, b += 8) {
        memcpy(&w, b, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdu;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, b, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53u;
    return h ^ (h >> 29);
}

struct strmap *strmap_new(void)
{
    struct strmap *m = calloc(1, sizeof *m);
    if (m != NULL && (m->e = calloc(64, sizeof *m->e)) != NULL)
        m->cap = 64;
    else if (m != NULL) {
        free(m);
        m = NULL;
    }
    return m;
}

void strmap_free(struct strmap *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->cap; i++)
        free(m->e[i].key);
    free(m->e);
    free(m);
}

/* The entry for the key, made (value SIZE_MAX) when new; NULL on OOM. */
struct strmap_entry *strmap_get(struct strmap *m, const void *key, size_t len)
{
    if (2 * (m->n + 1) > m->cap) {
        size_t cap = m->cap * 2;
        struct strmap_entry *e = calloc(cap, sizeof *e);
        if (e == NULL)
            return NULL;
        for (size_t i = 0; i < m->cap; i++) {
            if (m->e[i].key == NULL)
                continue;
            size_t j = m->e[i].hash & (cap - 1);
            while (e[j].key != NULL)
                j = (j + 1) & (cap - 1);
            e[j] = m->e[i];
        }
        free(m->e);
        m->e = e;
        m->cap = cap;
    }
    uint64_t h = hash_bytes(key, len);
    size_t i = h & (m->cap - 1);
    for (; m->e[i].key != NULL; i = (i + 1) & (m->cap - 1))
        if (m->e[i].hash == h && m->e[i].len == len &&
            memcmp(m->e[i].key, key, len) == 0)
            return &m->e[i];
    char *k = malloc(len + 1);
    if (k == NULL)
        return NULL;
    memcpy(k, key, len);
    k[len] = '\0';
    m->e[i] = (struct strmap_entry){k, len, h, SIZE_MAX};
    m->n++;
    return &m->e[i];
}

/* Helpers ----------------------------------------------------------------- */

/* Grow *@p (of *@cap elements of @size) to hold @n; 0 or -1. */
int grow(void *p, size_t *cap, size_t n, size_t size)
{
    if (n <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < n)
        c *= 2;
    void *q = realloc(*(void **)p, c * size);
    if (q == NULL)
        return -1;
    *(void **)p = q;
    *cap = c;
    return 0;
}

char *dup_bytes(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

/* A composite key: the parts with their lengths, so no part can alias. */
size_t make_key(char *buf, size_t cap, const struct tl_str *parts, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        if (len + sizeof parts[i].len + parts[i].len > cap)
            return 0;
        memcpy(buf + len, &parts[i].len, sizeof parts[i].len);
        len += sizeof parts[i].len;
        memcpy(buf + len, parts[i].p, parts[i].len);
        len += parts[i].len;
    }
    return len;
}

/* Stages, threads, counters ---------------------------------------------- */

static long stage_of(struct agg *a, const struct tl_event *ev, int async)
{
    struct tl_str parts[3] = {ev->name, ev->cat, {async ? "a" : "s", 1}};
    char *kb = a->keybuf;
    size_t len = kb ? make_key(kb, KEY_MAX, parts, 3) : 0;
    struct strmap_entry *e = len ? strmap_get(a->stage_map, kb, len) : NULL;
    if (e == NULL)
        return -1;
    if (e->value != SIZE_MAX)
        return (long)e->value;
    struct agg_stage *st = calloc(1, sizeof *st);
    if (st == NULL || grow(&a->stages, &a->stages_cap, a->nstages + 1,
                           sizeof *a->stages) != 0) {
        free(st);
        return -1;
    }
    st->name = dup_bytes(ev->name.p, ev->name.len);
    st->cat = dup_bytes(ev->cat.p, ev->cat.len);
    st->name_len = ev->name.len;
    st->cat_len = ev->cat.len;
    st->async = async;
    st->min_ns = INT64_MAX;
    if (!async && ev->name.len > 13 &&
        memcmp(ev->name.p, "ProfilerStep#", 13) == 0)
        a->has_profiler_step = 1;
    if (st->name == NULL || st->cat == NULL) {
        free(st->name);
        free(st->cat);
        free(st);
        return -1;
    }
    a->stages[a->nstages] = st;
    e->value = a->nstages++;
    return (long)e->value;
}

/* Bytes, not C strings: a \u0000 inside a pid or tid is part of it. */
static int same(const char *have, size_t len, const struct tl_str *s)
{
    return len == s->len && memcmp(have, s->p, s->len) == 0;
}

static struct agg_thread *thread_of(struct agg *a, const struct tl_event *ev)
{
    /* Events of one thread tend to come together. */
    struct agg_thread *last = a->last_thread;
    if (last != NULL && same(last->tid, last->tid_len, &ev->tid) &&
        same(last->pid, last->pid_len, &ev->pid))
        return last;
    a->last_thread = NULL;
    struct tl_str parts[2] = {ev->pid, ev->tid};
    char *kb = a->keybuf;
    size_t len = kb ? make_key(kb, KEY_MAX, parts, 2) : 0;
    struct strmap_entry *e = len ? strmap_get(a->thread_map, kb, len) : NULL;
    if (e == NULL)
        return NULL;
    if (e->value != SIZE_MAX)
        return a->last_thread = a->threads[e->value];
    struct agg_thread *t = calloc(1, sizeof *t);
    if (t == NULL || grow(&a->threads, &a->threads_cap, a->nthreads + 1,
                          sizeof *a->threads) != 0) {
        free(t);
        return NULL;
    }
    t->pid = dup_bytes(ev->pid.p, ev->pid.len);
    t->tid = dup_bytes(ev->tid.p, ev->tid.len);
    t->pid_len = ev->pid.len;
    t->tid_len = ev->tid.len;
    a->threads[a->nthreads] = t;
    e->value = a->nthreads++;
    if (t->pid == NULL || t->tid == NULL)
        return NULL; /* kept in the table, freed with it */
    return a->last_thread = t;
}

static void add_slice(struct agg_thread *t, int64_t start, int64_t dur,
                      long stage, uint32_t run)
{
    if (grow(&t->sl, &t->slcap, t->nsl + 1, sizeof *t->sl) != 0)
        return;
    t->sl[t->nsl++] = (struct slice){start, dur, (uint32_t)stage, run};
}

/* The run an event names in args.run, or NO_RUN. */
static uint32_t event_run(struct agg *a, const struct tl_event *ev)
{
    if (!ev->has_run)
        return NO_RUN;
    a->has_run_args = 1;
    long r = agg_run_of(a, ev->run);
    return r < 0 ? NO_RUN : (uint32_t)r;
}

/*
 * The sketch: bin i > 0 counts durations in (g^(i-1), g^i] ns with
 * g = (1 + e) / (1 - e); bin 0 counts zero (and sub-ns) durations. The
 * value 2 g^i / (g + 1) is within e of everything in bin i, relatively.
 */
#define SKETCH_BINS 4500 /* g^4500 > 2^63 for e = 0.005 */

static double sketch_gamma(void)
{
    return (1 + AGG_SKETCH_ERROR) / (1 - AGG_SKETCH_ERROR);
}

static int sketch_bin(int64_t ns)
{
    if (ns < 1)
        return 0;
    int i = (int)ceil(log((double)ns) / log(sketch_gamma()));
    return i < 1 ? 1 : i >= SKETCH_BINS ? SKETCH_BINS - 1 : i;
}

static double sketch_value(int i)
{
    double g = sketch_gamma();
    return i == 0 ? 0.0 : 2.0 * pow(g, i) / (g + 1.0);
}

/* The value of rank @k (0-based) of the sketch. */
static double sketch_rank(const uint64_t *bins, uint64_t k)
{
    uint64_t seen = 0;
    for (int i = 0; i < SKETCH_BINS; i++) {
        seen += bins[i];
        if (seen > k)
            return sketch_value(i);
    }
    return sketch_value(SKETCH_BINS - 1);
}

static void add_duration(struct agg *a, struct agg_stage *st, int64_t dur,
                         int64_t self)
{
    uint64_t limit =
        a->opts.exact_limit ? a->opts.exact_limit : AGG_EXACT_LIMIT;
    if (st->sketch == NULL && a->kept >= limit) {
        /* This stage's durations move into a sketch. */
        st->sketch = calloc(SKETCH_BINS, sizeof *st->sketch);
        if (st->sketch != NULL) {
            for (size_t i = 0; i < st->ndurs; i++)
                st->sketch[sketch_bin(st->durs[i])]++;
            a->kept -= st->ndurs;
            a->sketched++;
            free(st->durs);
            st->durs = NULL;
            st->ndurs = st->cap = 0;
        }
    }
    if (st->sketch != NULL)
        st->sketch[sketch_bin(dur)]++;
    else if (grow(&st->durs, &st->cap, st->ndurs + 1, sizeof *st->durs) == 0) {
        st->durs[st->ndurs++] = dur;
        a->kept++;
    }
    st->count++;
    st->total_ns = sat_add(st->total_ns, dur);
    st->self_ns = sat_add(st->self_ns, self);
    if (dur < st->min_ns)
        st->min_ns = dur;
    if (dur > st->max_ns)
        st->max_ns = dur;
}

static void counter_sample(struct agg *a, const struct tl_event *ev,
                           const struct tl_arg *arg)
{
    struct tl_str parts[2] = {ev->name, arg->key};
    char *kb = a->keybuf;
    size_t len = kb ? make_key(kb, KEY_MAX, parts, 2) : 0;
    struct strmap_entry *e = len ? strmap_get(a->counter_map, kb, len) : NULL;
    if (e == NULL)
        return;
    if (e->value == SIZE_MAX) {
        struct agg_counter *c = calloc(1, sizeof *c);
        if (c == NULL || grow(&a->counters, &a->counters_cap, a->ncounters + 1,
                              sizeof *a->counters) != 0) {
            free(c);
            return;
        }
        c->name = dup_bytes(ev->name.p, ev->name.len);
        c->series = dup_bytes(arg->key.p, arg->key.len);
        c->min = c->max = c->last = arg->value;
        c->last_ts = INT64_MIN;
        a->counters[a->ncounters] = c;
        e->value = a->ncounters++;
    }
    struct agg_counter *c = a->counters[e->value];
    c->count++;
    c->sum += arg->value;
    if (arg->value < c->min)
        c->min = arg->value;
    if (arg->value > c->max)
        c->max = arg->value;
    if (ev->ts_ns >= c->last_ts) {
        c->last_ts = ev->ts_ns;
        c->last = arg->value;
    }
}

static void note_phase(struct agg *a, char ph)
{
    if (strchr(a->unknown_phases, ph) == NULL) {
        size_t n = strlen(a->unknown_phases);
        if (n + 1 < sizeof a->unknown_phases) {
            a->unknown_phases[n] = ph;
            a->unknown_phases[n + 1] = '\0';
        }
    }
}

/*
 * Async spans: b/e (n skipped), legacy S/F. Their ends may come before
 * their begins in the file (a writer that groups events by thread), so
 * they are kept and paired by time in agg_finish.
 */
struct async_ev {
    int64_t ts;
    uint64_t seq;
    uint32_t key;  /* index of (cat, id, name) */
    int32_t stage; /* the async stage */
    int begin;
    uint32_t run; /* a run's begin or end (category "run"), else NO_RUN */
};

static void async_event(struct agg *a, const struct tl_event *ev, int begin)
{
    struct tl_str parts[3] = {ev->cat, ev->id, ev->name};
    char *kb = a->keybuf;
    size_t len = make_key(kb, KEY_MAX, parts, 3);
    struct strmap_entry *e = len ? strmap_get(a->async_map, kb, len) : NULL;
    long st = stage_of(a, ev, 1);
    if (e == NULL || st < 0 ||
        grow(&a->async, &a->async_cap, a->nasync + 1, sizeof *a->async) != 0)
        return;
    if (e->value == SIZE_MAX)
        e->value = a->async_map->n - 1;
    uint32_t run = NO_RUN;
    if (ev->cat.len == 3 && memcmp(ev->cat.p, "run", 3) == 0)
        run = event_run(a, ev);
    a->async[a->nasync++] = (struct async_ev){
        ev->ts_ns, a->seq++, (uint32_t)e->value, (int32_t)st, begin, run};
}

/* Events ------------------------------------------------------------------ */

static int thread_wanted(const struct agg *a, const struct agg_thread *t)
{
    const char *f = a->opts.thread;
    return f == NULL || strstr(t->tid, f) != NULL ||
           strstr(t->pid, f) != NULL ||
           (t->name != NULL && strstr(t->name, f) != NULL);
}

int agg_event(void *arg, const struct tl_event *ev)
{
    struct agg *a = arg;
    char ph = ev->ph;
    if (ph == 'M') {
        if (ev->name.len == 11 && memcmp(ev->name.p, "thread_name", 11) == 0 &&
            ev->arg_name.p != NULL) {
            struct agg_thread *t = thread_of(a, ev);
            if (t != NULL) {
                free(t->name);
                t->name = dup_bytes(ev->arg_name.p, ev->arg_name.len);
            }
        }
        return 0;
    }
    if (ph == 'X' || ph == 'B' || ph == 'E' || ph == 'b' || ph == 'e' ||
        ph == 'S' || ph == 'F' || ph == 'C') {
        if (!ev->has_ts) {
            a->no_ts++;
            return 0;
        }
    }
    switch (ph) {
    case 'X': {
        if (!ev->has_dur) {
            a->no_dur++;
            return 0;
        }
        if (ev->dur_ns < 0) {
            a->bad_dur++;
            return 0;
        }
        struct agg_thread *t = thread_of(a, ev);
        long st = stage_of(a, ev, 0);
        if (t != NULL && st >= 0)
            add_slice(t, ev->ts_ns, ev->dur_ns, st, event_run(a, ev));
        return 0;
    }
    case 'B':
    case 'E': {
        struct agg_thread *t = thread_of(a, ev);
        long st = ph == 'B' ? stage_of(a, ev, 0) : -1;
        if (t == NULL || (ph == 'B' && st < 0) ||
            grow(&t->be, &t->becap, t->nbe + 1, sizeof *t->be) != 0)
            return 0;
        t->be[t->nbe++] = (struct be){ev->ts_ns, a->seq++, (int32_t)st,
                                      ph == 'B' ? event_run(a, ev) : NO_RUN};
        return 0;
    }
    case 'b':
    case 'S':
        async_event(a, ev, 1);
        return 0;
    case 'e':
    case 'F':
        async_event(a, ev, 0);
        return 0;
    case 'C':
        for (int i = 0; i < ev->nargs; i++)
            counter_sample(a, ev, &ev->args[i]);
        return 0;
    case 's':
    case 'f': {
        struct agg_thread *t = thread_of(a, ev);
        if (t != NULL)
            agg_flow_event(a, ev, t, ph == 's');
        return 0;
    }
    case 'n':
    case 'T':
    case 'p':
    case 'i':
    case 'I':
    case 't':
    case 'O':
    case 'N':
    case 'D':
    case 'P':
    case 'R':
    case 'c':
        return 0;
    case 0:
        a->no_ph++;
        return 0;
    default:
        note_phase(a, ph);
        return 0;
    }
}

/* Finishing --------------------------------------------------------------- */

static int cmp_be(const void *x, const void *y)
{
    const struct be *a = x, *b = y;
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Parents first when two start together: the longer one. */
static int cmp_slice(const void *x, const void *y)
{
    const struct slice *a = x, *b = y;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    return a->dur > b->dur ? -1 : a->dur < b->dur;
}

/*
 * Sort durations (never negative) by 11-bit digits, least significant
 * first, as many passes as the largest needs: 3 below 8.6 s. Falls back to
 * nothing on allocation failure: the caller then uses qsort.
 */
static int radix_sort(int64_t *v, size_t n)
{
    uint64_t max = 0;
    for (size_t i = 0; i < n; i++)
        if ((uint64_t)v[i] > max)
            max = (uint64_t)v[i];
    int64_t *tmp = malloc(n * sizeof *tmp);
    if (tmp == NULL)
        return -1;
    int64_t *src = v, *dst = tmp;
    for (int shift = 0; shift < 64 && (max >> shift) != 0; shift += 11) {
        size_t count[2048] = {0};
        for (size_t i = 0; i < n; i++)
            count[((uint64_t)src[i] >> shift) & 2047]++;
        size_t sum = 0;
        for (int d = 0; d < 2048; d++) {
            size_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[count[((uint64_t)src[i] >> shift) & 2047]++] = src[i];
        int64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != v)
        memcpy(v, src, n * sizeof *v);
    free(tmp);
    return 0;
}

int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

static int cmp_async(const void *x, const void *y)
{
    const struct async_ev *a = x, *b = y;
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Async begins and ends paired per key, in time order. */
static void pair_async(struct agg *a)
{
    size_t nkeys = a->async_map->n;
    int64_t *open = malloc((nkeys + 1) * sizeof *open);
    char *is_open = calloc(nkeys + 1, 1);
    if (open == NULL || is_open == NULL) {
        free(open);
        free(is_open);
        return;
    }
    if (a->nasync > 0)
        qsort(a->async, a->nasync, sizeof *a->async, cmp_async);
    for (size_t i = 0; i < a->nasync; i++) {
        const struct async_ev *e = &a->async[i];
        if (e->begin) {
            if (is_open[e->key])
                a->open_async++; /* begun again: the first never ends */
            is_open[e->key] = 1;
            open[e->key] = e->ts;
        } else if (!is_open[e->key]) {
            a->orphan_async++;
        } else {
            is_open[e->key] = 0;
            int64_t dur = e->ts - open[e->key];
            add_duration(a, a->stages[e->stage], dur, dur);
            if (e->run != NO_RUN) {
                /* A run's own begin and end bound it. */
                struct agg_run *r = &a->runs[e->run];
                r->begin = open[e->key];
                r->end = e->ts;
                r->has_bounds = 1;
            }
        }
    }
    for (size_t k = 0; k < nkeys; k++)
        a->open_async += is_open[k];
    free(open);
    free(is_open);
    free(a->async);
    a->async = NULL;
    a->nasync = a->async_cap = 0;
}

/* B/E pairs of a thread as slices: a stack over the time-sorted list. */
static void pair_be(struct agg *a, struct agg_thread *t)
{
    if (t->nbe == 0)
        return;
    qsort(t->be, t->nbe, sizeof *t->be, cmp_be);
    size_t *stack = malloc(t->nbe * sizeof *stack), depth = 0;
    if (stack == NULL)
        return;
    for (size_t i = 0; i < t->nbe; i++) {
        if (t->be[i].stage >= 0) {
            stack[depth++] = i;
        } else if (depth == 0) {
            a->orphan_e++;
        } else {
            const struct be *b = &t->be[stack[--depth]];
            add_slice(t, b->ts, t->be[i].ts - b->ts, b->stage, b->run);
        }
    }
    a->open_b += depth;
    free(stack);
    free(t->be);
    t->be = NULL;
    t->nbe = t->becap = 0;
}

/*
 * Stable sort by cmp_slice (merge sort, bottom up): of two slices with the
 * same start and duration the one read first stays first and becomes the
 * parent, whatever the C library's qsort does with ties. Without memory
 * for the merge, qsort (ties then in no defined order).
 */
static void sort_slices(struct slice *v, size_t n)
{
    struct slice *tmp = malloc(n * sizeof *tmp), *src = v, *dst = tmp;
    if (tmp == NULL) {
        qsort(v, n, sizeof *v, cmp_slice);
        return;
    }
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, o = lo;
            while (i < mid && j < hi)
                dst[o++] =
                    cmp_slice(&src[j], &src[i]) < 0 ? src[j++] : src[i++];
            while (i < mid)
                dst[o++] = src[i++];
            while (j < hi)
                dst[o++] = src[j++];
        }
        struct slice *t = src;
        src = dst;
        dst = t;
    }
    if (src != v)
        memcpy(v, src, n * sizeof *v);
    free(tmp);
}

/* A slice open on the nesting stack, with the time of its children. */
struct open {
    size_t i;
    int64_t child;
    uint32_t run;  /* the run it belongs to, NO_RUN none */
    int container; /* it is its run's own span (the run is its children) */
    long item;     /* its item in its run, -1 none */
};

/*
 * The run of slice @s with parent @p (NULL at the top): its own args.run;
 * else a new run when it is a ProfilerStep#N span, or, in traces with
 * neither, a top-level span; else its parent's run.
 */
static uint32_t slice_run(struct agg *a, const struct slice *s,
                          const struct open *p, int *container)
{
    *container = 0;
    if (s->run != NO_RUN)
        return s->run;
    const struct agg_stage *st = a->stages[s->stage];
    int step = a->has_profiler_step && st->name_len > 13 &&
               memcmp(st->name, "ProfilerStep#", 13) == 0;
    if (step || (p == NULL && !a->has_run_args && !a->has_profiler_step)) {
        long r = agg_run_new(a);
        if (r < 0)
            return NO_RUN;
        struct agg_run *run = &a->runs[r];
        run->begin = s->start;
        run->end = s->start + s->dur;
        run->has_bounds = 1;
        *container = 1;
        return (uint32_t)r;
    }
    return p != NULL ? p->run : NO_RUN;
}

struct window {
    int64_t from, to; /* slices starting in [from, to) count */
};

/* A slice whose children are all known: its durations go to its stage. */
static void close_slice(struct agg *a, struct agg_thread *t,
                        const struct slice *s, int64_t child,
                        const struct window *w)
{
    if (s->start < w->from || s->start >= w->to)
        return;
    int64_t self = s->dur - child, end = s->start + s->dur;
    add_duration(a, a->stages[s->stage], s->dur, self > 0 ? self : 0);
    t->slices++;
    if (s->start < a->first_ns)
        a->first_ns = s->start;
    if (end > a->last_ns)
        a->last_ns = end;
}

/*
 * Nest a thread's slices in start order with a stack: a slice that starts
 * inside the one on top is its child. Each slice is accounted when it
 * leaves the stack, its children's time then known; top-level slices
 * make the busy time.
 */
static void account_thread(struct agg *a, struct agg_thread *t,
                           const struct window *w)
{
    if (t->nsl == 0)
        return;
    size_t k = 1;
    while (k < t->nsl && cmp_slice(&t->sl[k - 1], &t->sl[k]) <= 0)
        k++;
    if (k < t->nsl) /* not already in order */
        sort_slices(t->sl, t->nsl);
    struct open *stack = NULL;
    size_t depth = 0, cap = 0;
    int64_t covered = INT64_MIN;
    for (size_t i = 0; i <= t->nsl; i++) {
        const struct slice *s = i < t->nsl ? &t->sl[i] : NULL;
        while (depth > 0) {
            const struct slice *p = &t->sl[stack[depth - 1].i];
            int64_t pend = p->start + p->dur;
            if (s != NULL &&
                !(pend < s->start || (pend == s->start && s->dur > 0)))
                break;
            close_slice(a, t, p, stack[depth - 1].child, w);
            depth--;
        }
        if (s == NULL)
            break;
        int64_t end = s->start + s->dur;
        const struct open *parent = depth > 0 ? &stack[depth - 1] : NULL;
        if (parent != NULL) {
            const struct slice *p = &t->sl[parent->i];
            int64_t pend = p->start + p->dur;
            stack[depth - 1].child += (end < pend ? end : pend) - s->start;
        } else if (s->start >= w->from && s->start < w->to && end > covered) {
            t->busy_ns = sat_add(
                t->busy_ns, end - (s->start > covered ? s->start : covered));
            covered = end;
            const struct agg_stage *st = a->stages[s->stage];
            if (st->cat_len == 5 && memcmp(st->cat, "queue", 5) == 0)
                t->queue_ns = sat_add(t->queue_ns, s->dur);
        }
        int container;
        uint32_t run = slice_run(a, s, parent, &container);
        /* The run's work: every slice of it, linked to the one of it that
         * it lies in (the critical path follows the nesting). */
        long item = -1;
        if (run != NO_RUN && !container)
            item = agg_run_item(a, run, s->start, s->dur, s->stage, -1,
                                parent != NULL && parent->run == run &&
                                        !parent->container
                                    ? parent->item
                                    : -1);
        if (grow(&stack, &cap, depth + 1, sizeof *stack) != 0)
            break; /* out of memory: the rest of the thread is lost */
        /* A top-level run with no work inside is its own work. */
        if (container && !a->has_profiler_step &&
            (i + 1 == t->nsl || t->sl[i + 1].start >= end))
            agg_run_item(a, run, s->start, s->dur, s->stage, -1, -1);
        stack[depth++] = (struct open){i, 0, run, container, item};
    }
    free(stack);
}

double pct_sorted(const int64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0.0;
    double rank = p * (double)(n - 1);
    size_t lo = (size_t)rank;
    if (lo + 1 >= n)
        return (double)v[n - 1];
    return (double)v[lo] + (rank - (double)lo) * (double)(v[lo + 1] - v[lo]);
}

/* A stage's percentile: exact from its durations, or from its sketch by
 * the same interpolation between the two closest ranks. */
static double percentile(const struct agg_stage *st, double p)
{
    uint64_t n = st->count;
    if (st->sketch == NULL)
        return pct_sorted(st->durs, st->ndurs, p);
    if (n == 0)
        return 0.0;
    double rank = p * (double)(n - 1);
    uint64_t lo = (uint64_t)rank;
    double frac = rank - (double)lo;
    double a = sketch_rank(st->sketch, lo);
    double b = lo + 1 < n ? sketch_rank(st->sketch, lo + 1) : a;
    /* The sketch's values never lie outside what was seen. */
    double v = a + frac * (b - a);
    return v < (double)st->min_ns   ? (double)st->min_ns
           : v > (double)st->max_ns ? (double)st->max_ns
                                    : v;
}

int agg_finish(struct agg *a)
{
    pair_async(a);
    /* The trace's start: the first slice of any thread. */
    int64_t t0 = INT64_MAX;
    for (size_t i = 0; i < a->nthreads; i++) {
        pair_be(a, a->threads[i]);
        for (size_t j = 0; j < a->threads[i]->nsl; j++)
            if (a->threads[i]->sl[j].start < t0)
                t0 = a->threads[i]->sl[j].start;
    }
    /* No slices (t0 unset): no window to apply. */
    int64_t from = a->opts.has_from && t0 != INT64_MAX
                       ? sat_add(t0, a->opts.from_ns)
                       : INT64_MIN;
    int64_t to = a->opts.has_to && t0 != INT64_MAX ? sat_add(t0, a->opts.to_ns)
                                                   : INT64_MAX;
    struct window w = {from, to};
    a->first_ns = INT64_MAX;
    a->last_ns = INT64_MIN;
    for (size_t i = 0; i < a->nthreads; i++) {
        struct agg_thread *t = a->threads[i];
        if (thread_wanted(a, t))
            account_thread(a, t, &w);
        free(t->sl);
        t->sl = NULL;
        t->nsl = t->slcap = 0;
    }
    a->have_wall = a->first_ns <= a->last_ns;
    for (size_t i = 0; i < a->nstages; i++) {
        struct agg_stage *st = a->stages[i];
        if (st->ndurs > 0 && radix_sort(st->durs, st->ndurs) != 0)
            qsort(st->durs, st->ndurs, sizeof *st->durs, cmp_i64);
        st->exact = st->sketch == NULL;
        for (int k = 0; k < AGG_NPCT; k++)
            st->pct_ns[k] = percentile(st, agg_pcts[k]);
        if (st->count == 0)
            st->min_ns = 0;
    }
    agg_runs_finish(a); /* uses the stages' figures */
    return 0;
}

int agg_init(struct agg *a, const struct agg_opts *opts)
{
    memset(a, 0, sizeof *a);
    if (opts != NULL)
        a->opts = *opts;
    a->stage_map = strmap_new();
    a->thread_map = strmap_new();
    a->counter_map = strmap_new();
    a->async_map = strmap_new();
    a->keybuf = malloc(KEY_MAX);
    a->run_map = strmap_new();
    a->queue_map = strmap_new();
    if (!a->stage_map || !a->thread_map || !a->counter_map || !a->async_map ||
        a->keybuf == NULL || !a->run_map || !a->queue_map) {
        agg_fini(a);
        return -1;
    }
    return 0;
}

void agg_fini(struct agg *a)
{
    for (size_t i = 0; i < a->nstages; i++) {
        free(a->stages[i]->name);
        free(a->stages[i]->cat);
        free(a->stages[i]->durs);
        free(a->stages[i]->sketch);
        free(a->stages[i]);
    }
    for (size_t i = 0; i < a->nthreads; i++) {
        free(a->threads[i]->pid);
        free(a->threads[i]->tid);
        free(a->threads[i]->name);
        free(a->threads[i]->sl);
        free(a->threads[i]->be);
        free(a->threads[i]);
    }
    for (size_t i = 0; i < a->ncounters; i++) {
        free(a->counters[i]->name);
        free(a->counters[i]->series);
        free(a->counters[i]);
    }
    free(a->async);
    free(a->stages);
    free(a->threads);
    free(a->counters);
    strmap_free(a->stage_map);
    strmap_free(a->thread_map);
    strmap_free(a->counter_map);
    strmap_free(a->async_map);
    agg_runs_fini(a);
    strmap_free(a->run_map);
    strmap_free(a->queue_map);
    free(a->keybuf);
    memset(a, 0, sizeof *a);
}
