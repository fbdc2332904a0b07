/*
 * runs.c - runs, their critical paths, queues and the verdict.
 *
 * A run is one input's way through the pipeline (agg.h says how runs are
 * found). agg.c hands each run its work as items: the slices that belong
 * to it and lie in no other slice of it, on whatever thread; flows (s/f)
 * add their queue waits, from the hand-off to the pick-up. Then, per run:
 *
 *   latency          end - begin (its own begin/end events, or its span)
 *   engine overhead  latency minus the union of its items: time inside the
 *                    run in no stage and no queue
 *   critical path    walking back from the run's end: the item that ended
 *                    last before the current time, then from its start
 *                    again, until the run's begin. Each item's stage (or
 *                    queue) is charged the time it covers on the path.
 *
 * The verdict names the stage with the most time on critical paths (queue
 * stages and waits excepted: a wait is a symptom of the stage it waits
 * for), and the hints test the figures listed in docs/cli/stageprof-report.md.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "agg_impl.h"

/* Building --------------------------------------------------------------- */

static long add_run(struct agg *a, uint64_t id)
{
    if (grow(&a->runs, &a->runs_cap, a->nruns + 1, sizeof *a->runs) != 0)
        return -1;
    memset(&a->runs[a->nruns], 0, sizeof *a->runs);
    a->runs[a->nruns].id = id;
    return (long)a->nruns++;
}

long agg_run_of(struct agg *a, uint64_t id)
{
    struct strmap_entry *e = strmap_get(a->run_map, &id, sizeof id);
    if (e == NULL)
        return -1;
    if (e->value == SIZE_MAX) {
        long r = add_run(a, id);
        if (r < 0)
            return -1;
        e->value = (size_t)r;
    }
    return (long)e->value;
}

long agg_run_new(struct agg *a)
{
    return add_run(a, a->nruns + 1);
}

long agg_run_item(struct agg *a, long run, int64_t start, int64_t dur,
                  long stage, long queue, long parent)
{
    if (a->nitems >= INT32_MAX ||
        grow(&a->items, &a->items_cap, a->nitems + 1, sizeof *a->items) != 0)
        return -1;
    a->items[a->nitems] = (struct run_item){
        start,          start + dur,     (uint32_t)run,      (int32_t)stage,
        (int32_t)queue, (int32_t)parent, (uint32_t)a->nitems};
    return (long)a->nitems++;
}

static long queue_of(struct agg *a, const struct tl_str *name)
{
    struct strmap_entry *e = strmap_get(a->queue_map, name->p, name->len);
    if (e == NULL)
        return -1;
    if (e->value == SIZE_MAX) {
        struct agg_queue *q = calloc(1, sizeof *q);
        if (q == NULL ||
            grow(&a->queues, &a->queues_cap, a->nqueues + 1,
                 sizeof *a->queues) != 0 ||
            (q->name = dup_bytes(name->p, name->len)) == NULL) {
            free(q);
            return -1;
        }
        a->queues[a->nqueues] = q;
        e->value = a->nqueues++;
    }
    return (long)e->value;
}

/* A service time: from a hand-off to the end of the run it carried. */
struct service {
    uint32_t run, queue;
    int64_t from;
};

/*
 * Hand-offs are paired as their ends arrive: a table holds the ends still
 * waiting for their other end (in Kineto's layout and stageprof's the two
 * are near each other), so memory grows with the hand-offs open at once,
 * not with all of them. A key (category, id, name) is expected to carry
 * one start and one end at a time; a start followed by another start
 * keeps the later one, and an end earlier in time than its start is
 * dropped.
 */
struct pend {
    uint64_t hash;
    char *key; /* NULL: a free slot; PEND_GONE: one removed */
    size_t len;
    int64_t ts;
    uint32_t run, queue;
    int start;
};

struct flow_table {
    struct pend *e;
    size_t cap, used; /* used: slots not free (live or removed) */
};

static char pend_gone_mark;
#define PEND_GONE (&pend_gone_mark)

/* The slot of @key, or the free slot where it would go; NULL on OOM. */
static struct pend *pend_find(struct flow_table *ft, const char *key,
                              size_t len, uint64_t h)
{
    if (ft->cap == 0 || 2 * (ft->used + 1) > ft->cap) {
        /* Rebuild (twice as large when mostly live): removed slots go. */
        size_t live = 0;
        for (size_t i = 0; i < ft->cap; i++)
            live += ft->e[i].key != NULL && ft->e[i].key != PEND_GONE;
        size_t cap = ft->cap ? ft->cap : 64;
        while (4 * (live + 1) > cap)
            cap *= 2;
        struct pend *e = calloc(cap, sizeof *e);
        if (e == NULL)
            return NULL;
        for (size_t i = 0; i < ft->cap; i++) {
            if (ft->e[i].key == NULL || ft->e[i].key == PEND_GONE)
                continue;
            size_t j = ft->e[i].hash & (cap - 1);
            while (e[j].key != NULL)
                j = (j + 1) & (cap - 1);
            e[j] = ft->e[i];
        }
        free(ft->e);
        ft->e = e;
        ft->cap = cap;
        ft->used = live;
    }
    struct pend *free_slot = NULL;
    for (size_t i = h & (ft->cap - 1);; i = (i + 1) & (ft->cap - 1)) {
        struct pend *p = &ft->e[i];
        if (p->key == NULL)
            return free_slot != NULL ? free_slot : p;
        if (p->key == PEND_GONE) {
            if (free_slot == NULL)
                free_slot = p;
        } else if (p->hash == h && p->len == len &&
                   memcmp(p->key, key, len) == 0) {
            return p;
        }
    }
}

static void flow_table_free(struct agg *a)
{
    struct flow_table *ft = a->flows_open;
    if (ft == NULL)
        return;
    for (size_t i = 0; i < ft->cap; i++)
        if (ft->e[i].key != PEND_GONE)
            free(ft->e[i].key);
    free(ft->e);
    free(ft);
    a->flows_open = NULL;
}

static void pend_remove(struct pend *p)
{
    free(p->key);
    p->key = PEND_GONE;
}

/* One hand-off: its wait joins its queue and, with a run, the run. */
static void handoff(struct agg *a, int64_t s_ts, uint32_t s_run, int64_t f_ts,
                    uint32_t f_run, uint32_t queue)
{
    struct agg_queue *q = a->queues[queue];
    int64_t wait = f_ts - s_ts;
    if (grow(&q->waits, &q->cap, q->nwaits + 1, sizeof *q->waits) == 0)
        q->waits[q->nwaits++] = wait;
    q->count++;
    q->wait_total_ns = sat_add(q->wait_total_ns, wait);
    if (wait > q->wait_max_ns)
        q->wait_max_ns = wait;
    uint32_t run = s_run != NO_RUN ? s_run : f_run;
    if (run == NO_RUN)
        return;
    agg_run_item(a, run, s_ts, wait, -1, queue, -1);
    if (grow(&a->svc, &a->svc_cap, a->nsvc + 1, sizeof *a->svc) == 0)
        a->svc[a->nsvc++] = (struct service){run, queue, f_ts};
}

void agg_flow_event(struct agg *a, const struct tl_event *ev,
                    struct agg_thread *t, int start)
{
    if (!ev->has_ts)
        return;
    struct tl_str parts[3] = {ev->cat, ev->id, ev->name};
    size_t len = make_key(a->keybuf, KEY_MAX, parts, 3);
    long q = queue_of(a, &ev->name);
    if (len == 0 || q < 0)
        return;
    if (a->flows_open == NULL &&
        (a->flows_open = calloc(1, sizeof *a->flows_open)) == NULL)
        return;
    uint32_t run = NO_RUN;
    if (ev->has_run) {
        long r = agg_run_of(a, ev->run);
        a->has_run_args = 1;
        run = r < 0 ? NO_RUN : (uint32_t)r;
    }
    *(start ? &t->flow_starts : &t->flow_ends) += 1;
    uint64_t h = hash_bytes(a->keybuf, len);
    struct pend *p = pend_find(a->flows_open, a->keybuf, len, h);
    if (p == NULL)
        return;
    int found = p->key != NULL && p->key != PEND_GONE;
    if (found && p->start != start) {
        const struct pend *s = start ? NULL : p;
        int64_t s_ts = start ? ev->ts_ns : s->ts;
        int64_t f_ts = start ? p->ts : ev->ts_ns;
        if (s_ts <= f_ts) {
            handoff(a, s_ts, start ? run : p->run, f_ts, start ? p->run : run,
                    (uint32_t)q);
            pend_remove(p);
            return;
        }
        /* The end lies before the start: it is dropped, a start kept. */
        if (start) {
            p->ts = ev->ts_ns;
            p->run = run;
            p->start = 1;
        }
        return;
    }
    if (!found) {
        char *key = malloc(len);
        if (key == NULL)
            return;
        memcpy(key, a->keybuf, len);
        if (p->key == NULL)
            a->flows_open->used++;
        *p = (struct pend){h, key, len, 0, 0, 0, 0};
    }
    p->ts = ev->ts_ns;
    p->run = run;
    p->queue = (uint32_t)q;
    p->start = start;
}

/* Finishing -------------------------------------------------------------- */

/* By run, then start; the rest only makes the order total. */
static int cmp_item(const void *x, const void *y)
{
    const struct run_item *a = x, *b = y;
    if (a->run != b->run)
        return a->run < b->run ? -1 : 1;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    if (a->end != b->end)
        return a->end < b->end ? -1 : 1;
    if (a->stage != b->stage)
        return a->stage < b->stage ? -1 : 1;
    return a->queue < b->queue ? -1 : a->queue > b->queue;
}

/*
 * Once the items are in their final places, each parent link becomes an
 * index among its run's items. Without memory for the map, the links go:
 * the path then stays at the top level of each run.
 */
static void link_parents(struct agg *a)
{
    size_t n = a->nitems;
    uint32_t *pos = malloc((n + 1) * sizeof *pos);
    for (size_t i = 0; pos != NULL && i < n; i++)
        pos[a->items[i].id] = (uint32_t)i;
    for (size_t i = 0; i < n; i++) {
        struct run_item *it = &a->items[i];
        if (it->parent < 0)
            continue;
        it->parent = pos != NULL
                         ? (int32_t)(pos[it->parent] - a->runs[it->run].first)
                         : -1;
    }
    free(pos);
}

/*
 * Items grouped by run (a counting sort: runs are dense indexes), each
 * run's items then sorted by start. Without memory for the copy, one
 * qsort of everything.
 */
static void group_items(struct agg *a)
{
    size_t n = a->nitems;
    struct run_item *out = malloc((n + 1) * sizeof *out);
    if (out == NULL) {
        if (n > 0)
            qsort(a->items, n, sizeof *a->items, cmp_item);
        for (size_t i = 0, j; i < n; i = j) {
            for (j = i; j < n && a->items[j].run == a->items[i].run; j++)
                ;
            a->runs[a->items[i].run].first = i;
            a->runs[a->items[i].run].nitems = j - i;
        }
        link_parents(a);
        return;
    }
    for (size_t r = 0; r < a->nruns; r++)
        a->runs[r].nitems = 0;
    for (size_t i = 0; i < n; i++)
        a->runs[a->items[i].run].nitems++;
    size_t at = 0;
    for (size_t r = 0; r < a->nruns; r++) {
        a->runs[r].first = at;
        at += a->runs[r].nitems;
        a->runs[r].nitems = 0;
    }
    for (size_t i = 0; i < n; i++) {
        struct agg_run *r = &a->runs[a->items[i].run];
        out[r->first + r->nitems++] = a->items[i];
    }
    free(a->items);
    a->items = out;
    a->items_cap = n + 1;
    for (size_t r = 0; r < a->nruns; r++)
        if (a->runs[r].nitems > 1)
            qsort(a->items + a->runs[r].first, a->runs[r].nitems,
                  sizeof *a->items, cmp_item);
    link_parents(a);
}

/* Union of a run's items inside its bounds; items sorted by start. */
static int64_t covered(const struct agg *a, const struct agg_run *r)
{
    int64_t total = 0, reach = r->begin;
    const struct run_item *items = a->items + r->first;
    for (size_t i = 0; i < r->nitems; i++) {
        int64_t s = items[i].start, e = items[i].end;
        if (e > r->end)
            e = r->end;
        if (s < reach)
            s = reach;
        if (e > s) {
            total = sat_add(total, e - s);
            reach = e;
        }
    }
    return total;
}

/* Seen stages and queues of one run, charged as its path is walked. */
struct charge {
    struct agg *a;
    unsigned char *seen_stage, *seen_queue;
};

static void charge_step(void *arg, const struct run_item *it, int64_t from,
                        int64_t to)
{
    struct charge *c = arg;
    if (it->stage >= 0) {
        struct agg_stage *st = c->a->stages[it->stage];
        st->path_ns = sat_add(st->path_ns, to - from);
        if (!c->seen_stage[it->stage]) {
            c->seen_stage[it->stage] = 1;
            st->path_runs++;
        }
    } else {
        struct agg_queue *q = c->a->queues[it->queue];
        q->path_ns = sat_add(q->path_ns, to - from);
        if (!c->seen_queue[it->queue]) {
            c->seen_queue[it->queue] = 1;
            q->path_runs++;
        }
    }
}

int agg_cmp_path(const void *x, const void *y)
{
    const struct agg_stage *a = *(const struct agg_stage *const *)x;
    const struct agg_stage *b = *(const struct agg_stage *const *)y;
    if (a->path_ns != b->path_ns)
        return a->path_ns > b->path_ns ? -1 : 1;
    int c = strcmp(a->name, b->name);
    return c ? c : strcmp(a->cat, b->cat);
}

/* One level of the walk: the items inside @parent, from @cur back to @lo. */
struct frame {
    int32_t parent; /* an index among the run's items, -1: the run */
    int64_t lo, cur;
    size_t k; /* children below this index are still candidates */
};

/* Beyond this many children the walk takes the last one started (exact
 * for the slices of one thread, which do not overlap). */
#define PATH_SCAN_MAX 256

void agg_run_path(const struct agg *a, size_t run,
                  void (*cb)(void *, const struct run_item *, int64_t from,
                             int64_t to),
                  void *arg)
{
    if (run >= a->nruns || !a->runs[run].has_bounds)
        return;
    const struct agg_run *r = &a->runs[run];
    const struct run_item *items = a->items + r->first;
    size_t n = r->nitems;
    /* Children of each item (and of the run, slot n), in start order. */
    size_t *off = calloc(n + 2, sizeof *off),
           *kid = malloc((n + 1) * sizeof *kid);
    struct frame *st = NULL;
    size_t depth = 0, cap = 0;
    if (off == NULL || kid == NULL)
        goto out;
    for (size_t i = 0; i < n; i++)
        off[(items[i].parent < 0 ? n : (size_t)items[i].parent) + 1]++;
    for (size_t i = 1; i < n + 2; i++)
        off[i] += off[i - 1];
    size_t *fill = calloc(n + 1, sizeof *fill);
    if (fill == NULL)
        goto out;
    for (size_t i = 0; i < n; i++) {
        size_t p = items[i].parent < 0 ? n : (size_t)items[i].parent;
        kid[off[p] + fill[p]++] = i;
    }
    free(fill);
    if (grow(&st, &cap, 1, sizeof *st) != 0)
        goto out;
    st[depth++] = (struct frame){-1, r->begin, r->end, off[n + 1] - off[n]};
    /*
     * Back from the end: the child that ended last before the current time
     * (ties: the one that really ended later), its own children the same
     * way inside it, then on from its start. Time in an item but in none
     * of its children on the path is the item's own.
     */
    while (depth > 0) {
        struct frame *f = &st[depth - 1];
        size_t p = f->parent < 0 ? n : (size_t)f->parent;
        const size_t *ch = kid + off[p], cnt = off[p + 1] - off[p];
        const struct run_item *best = NULL;
        int64_t best_end = INT64_MIN;
        if (f->cur > f->lo && cnt <= PATH_SCAN_MAX) {
            for (size_t j = 0; j < f->k; j++) {
                const struct run_item *it = &items[ch[j]];
                if (it->start >= f->cur)
                    continue;
                int64_t e = it->end < f->cur ? it->end : f->cur;
                if (e > best_end || (e == best_end && it->end > best->end)) {
                    best = it;
                    best_end = e;
                }
            }
        } else if (f->cur > f->lo) {
            while (f->k > 0 && items[ch[f->k - 1]].start >= f->cur)
                f->k--;
            if (f->k > 0) {
                best = &items[ch[f->k - 1]];
                best_end = best->end < f->cur ? best->end : f->cur;
            }
        }
        const struct run_item *self = f->parent < 0 ? NULL : &items[f->parent];
        if (best == NULL || best_end <= f->lo) {
            if (self != NULL && f->cur > f->lo)
                cb(arg, self, f->lo, f->cur);
            depth--;
            continue;
        }
        if (self != NULL && best_end < f->cur)
            cb(arg, self, best_end, f->cur);
        int64_t from = best->start > f->lo ? best->start : f->lo;
        f->cur = from;
        size_t b = (size_t)(best - items);
        if (grow(&st, &cap, depth + 1, sizeof *st) != 0)
            break;
        st[depth++] =
            (struct frame){(int32_t)b, from, best_end, off[b + 1] - off[b]};
    }
out:
    free(off);
    free(kid);
    free(st);
}

static int is_queue_stage(const struct agg_stage *st)
{
    return st->cat_len == 5 && memcmp(st->cat, "queue", 5) == 0;
}

static void hint(struct agg *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void hint(struct agg *a, const char *fmt, ...)
{
    if (a->rs.nhints >= AGG_MAX_HINTS)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->rs.hints[a->rs.nhints++], sizeof a->rs.hints[0], fmt, ap);
    va_end(ap);
}

static const char *thread_label(const struct agg_thread *t)
{
    return t->name != NULL ? t->name : t->tid;
}

/* @ns for a sentence: "850 ns", "30.0 us", "2.41 ms", "1.23 s". */
static const char *dur(char *buf, size_t len, double ns)
{
    if (ns < 1e3)
        snprintf(buf, len, "%.0f ns", ns);
    else if (ns < 1e6)
        snprintf(buf, len, "%.1f us", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, len, "%.2f ms", ns / 1e6);
    else
        snprintf(buf, len, "%.2f s", ns / 1e9);
    return buf;
}

/* The bottleneck and its evidence; the hints. */
static void verdict(struct agg *a)
{
    struct agg_runs *rs = &a->rs;
    long best = -1, second = -1;
    for (size_t i = 0; i < a->nstages; i++) {
        const struct agg_stage *st = a->stages[i];
        if (st->async || is_queue_stage(st) || st->count == 0)
            continue;
        int64_t v = rs->count ? st->path_ns : st->self_ns;
        if (best < 0 || v > (rs->count ? a->stages[best]->path_ns
                                       : a->stages[best]->self_ns)) {
            second = best;
            best = (long)i;
        } else if (second < 0 || v > (rs->count ? a->stages[second]->path_ns
                                                : a->stages[second]->self_ns)) {
            second = (long)i;
        }
    }
    rs->bottleneck = best;
    if (best >= 0 && rs->count > 0 && a->stages[best]->path_ns > 0) {
        const struct agg_stage *b = a->stages[best];
        char d1[32], d2[32];
        int n = snprintf(
            rs->reason, sizeof rs->reason,
            "%s (%s) lies on the critical path of %llu of %llu runs and "
            "takes %.0f%% of their end-to-end time (%s a run; p50 of one "
            "call %s)",
            b->name, b->cat, (unsigned long long)b->path_runs,
            (unsigned long long)rs->count,
            rs->total_ns ? 100.0 * (double)b->path_ns / (double)rs->total_ns
                         : 0.0,
            dur(d1, sizeof d1, (double)b->path_ns / (double)rs->count),
            dur(d2, sizeof d2, b->pct_ns[0]));
        if (second >= 0 && a->stages[second]->path_ns > 0 && n > 0 &&
            (size_t)n < sizeof rs->reason)
            snprintf(rs->reason + n, sizeof rs->reason - (size_t)n,
                     "; next: %s (%s), %.0f%%", a->stages[second]->name,
                     a->stages[second]->cat,
                     100.0 * (double)a->stages[second]->path_ns /
                         (double)rs->total_ns);
    } else if (best >= 0) {
        const struct agg_stage *b = a->stages[best];
        int64_t wall = a->have_wall ? a->last_ns - a->first_ns : 0;
        char d1[32];
        snprintf(rs->reason, sizeof rs->reason,
                 "%s (%s) has the most self time: %s over %llu calls "
                 "(%.0f%% of the wall time); the trace has no runs to follow",
                 b->name, b->cat, dur(d1, sizeof d1, (double)b->self_ns),
                 (unsigned long long)b->count,
                 wall ? 100.0 * (double)b->self_ns / (double)wall : 0.0);
    }

    int64_t wall = a->have_wall ? a->last_ns - a->first_ns : 0;
    /* Hand-off threads that mostly wait in queue spans. */
    for (size_t i = 0; i < a->nthreads && wall > 0; i++) {
        const struct agg_thread *t = a->threads[i];
        double share = (double)t->queue_ns / (double)wall;
        if (share < 0.5)
            continue;
        if (t->flow_ends > t->flow_starts)
            hint(a,
                 "input-bound: thread %s waits on its queue %.0f%% of the "
                 "time for work to arrive; the stages before the queue, not "
                 "the compute after it, limit throughput",
                 thread_label(t), 100 * share);
        else if (t->flow_starts > t->flow_ends)
            hint(a,
                 "the producer %s waits %.0f%% of the time for room in the "
                 "queue: the consumers limit throughput (more workers or a "
                 "faster %s would raise it)",
                 thread_label(t), 100 * share,
                 best >= 0 ? a->stages[best]->name : "consumer");
    }
    /* Tails of the stages that matter: 1% of the time or more. */
    int64_t base = rs->count ? rs->total_ns : wall;
    for (size_t i = 0; i < a->nstages; i++) {
        const struct agg_stage *st = a->stages[i];
        if (st->async || is_queue_stage(st) || st->count < 20 ||
            st->pct_ns[0] <= 0 || (double)st->total_ns < 0.01 * (double)base)
            continue;
        double ratio = st->pct_ns[3] / st->pct_ns[0];
        char d1[32], d2[32];
        if (ratio >= 5)
            hint(a, "a tail problem in %s (%s): p99 %s is %.0fx its p50 %s",
                 st->name, st->cat, dur(d1, sizeof d1, st->pct_ns[3]), ratio,
                 dur(d2, sizeof d2, st->pct_ns[0]));
    }
    if (rs->count > 0 && rs->total_ns > 0) {
        double share = (double)rs->engine_ns / (double)rs->total_ns;
        char d1[32];
        if (share > 0.03)
            hint(a,
                 "orchestration cost: %.1f%% of run time (%s a run) is "
                 "inside runs but in no stage and no queue",
                 100 * share,
                 dur(d1, sizeof d1, (double)rs->engine_ns / (double)rs->count));
    }
    /* One thread near 100% busy while every other is mostly idle. */
    size_t nbusy = 0, nidle = 0, nthreads = 0;
    const struct agg_thread *busiest = NULL;
    for (size_t i = 0; i < a->nthreads && wall > 0; i++) {
        const struct agg_thread *t = a->threads[i];
        if (t->slices == 0)
            continue;
        nthreads++;
        double f = (double)t->busy_ns / (double)wall;
        if (f >= 0.9) {
            nbusy++;
            busiest = t;
        } else if (f < 0.5) {
            nidle++;
        }
    }
    if (nbusy == 1 && nthreads >= 2 && nidle == nthreads - 1)
        hint(a,
             "serialisation: thread %s is busy %.0f%% of the wall time while "
             "every other thread (%zu) is below 50%%",
             thread_label(busiest),
             100.0 * (double)busiest->busy_ns / (double)wall, nthreads - 1);
    if (a->dropped > 0)
        hint(a,
             "the numbers are incomplete: the trace says %lld events were "
             "dropped",
             (long long)a->dropped);
}

void agg_runs_finish(struct agg *a)
{
    struct agg_runs *rs = &a->rs;
    const struct service *sv = a->svc;
    size_t nsv = a->nsvc;
    rs->bottleneck = -1;
    rs->kind = a->has_run_args        ? AGG_RUNS_STAGEPROF
               : a->has_profiler_step ? AGG_RUNS_PROFILER_STEP
               : a->nruns             ? AGG_RUNS_TOP_LEVEL
                                      : AGG_RUNS_NONE;
    int64_t *lat = malloc((a->nruns + 1) * sizeof *lat);
    unsigned char *seen_stage = malloc(a->nstages + 1);
    unsigned char *seen_queue = malloc(a->nqueues + 1);
    if (lat == NULL || seen_stage == NULL || seen_queue == NULL)
        goto out;
    int64_t first = INT64_MAX, last = INT64_MIN;
    size_t n = 0;
    group_items(a);
    for (size_t i = 0; i < a->nruns; i++) {
        struct agg_run *r = &a->runs[i];
        const struct run_item *items = a->items + r->first;
        if (!r->has_bounds && r->nitems > 0) {
            r->begin = items[0].start;
            r->end = items[0].end;
            for (size_t k = 1; k < r->nitems; k++)
                if (items[k].end > r->end)
                    r->end = items[k].end;
            r->has_bounds = 1;
        }
        if (!r->has_bounds || r->end < r->begin)
            continue;
        r->covered_ns = covered(a, r);
        int64_t latency = r->end - r->begin;
        lat[n++] = latency;
        rs->total_ns = sat_add(rs->total_ns, latency);
        rs->engine_ns = sat_add(rs->engine_ns, latency - r->covered_ns);
        if (r->begin < first)
            first = r->begin;
        if (r->end > last)
            last = r->end;
        memset(seen_stage, 0, a->nstages + 1);
        memset(seen_queue, 0, a->nqueues + 1);
        struct charge ch = {a, seen_stage, seen_queue};
        agg_run_path(a, i, charge_step, &ch);
    }
    rs->count = n;
    for (size_t i = 0; i < nsv; i++) {
        const struct agg_run *r = &a->runs[sv[i].run];
        struct agg_queue *q = a->queues[sv[i].queue];
        if (r->has_bounds && r->end >= sv[i].from) {
            q->service_total_ns =
                sat_add(q->service_total_ns, r->end - sv[i].from);
            q->service_count++;
        }
    }
    for (size_t i = 0; i < a->nqueues; i++) {
        struct agg_queue *q = a->queues[i];
        if (q->nwaits > 0)
            qsort(q->waits, q->nwaits, sizeof *q->waits, cmp_i64);
        q->wait_p50_ns = pct_sorted(q->waits, q->nwaits, 0.5);
        q->wait_p90_ns = pct_sorted(q->waits, q->nwaits, 0.9);
    }
    if (n > 0) {
        qsort(lat, n, sizeof *lat, cmp_i64);
        for (int k = 0; k < AGG_NPCT; k++)
            rs->pct_ns[k] = pct_sorted(lat, n, agg_pcts[k]);
        rs->max_ns = lat[n - 1];
        if (last > first)
            rs->throughput = (double)n * 1e9 / (double)(last - first);
        /* Warm-up: the first tenth of the runs by start, from 10 runs. */
        rs->warmup = n >= 10 ? (n + 5) / 10 : 0;
        int64_t *begins = malloc(n * sizeof *begins);
        if (begins != NULL) {
            size_t m = 0;
            for (size_t i = 0; i < a->nruns; i++)
                if (a->runs[i].has_bounds && a->runs[i].end >= a->runs[i].begin)
                    begins[m++] = a->runs[i].begin;
            qsort(begins, m, sizeof *begins, cmp_i64);
            int64_t from = begins[rs->warmup], to = INT64_MIN, wsum = 0;
            uint64_t steady = 0;
            for (size_t i = 0; i < a->nruns; i++) {
                const struct agg_run *r = &a->runs[i];
                if (!r->has_bounds || r->end < r->begin)
                    continue;
                if (r->begin >= from) {
                    steady++;
                    if (r->end > to)
                        to = r->end;
                } else {
                    wsum += r->end - r->begin;
                }
            }
            if (to > from)
                rs->steady_throughput =
                    (double)steady * 1e9 / (double)(to - from);
            rs->warmup_mean_ns = rs->warmup ? wsum / (int64_t)rs->warmup : 0;
            free(begins);
        }
    }
    verdict(a);
out:
    free(lat);
    free(seen_stage);
    free(seen_queue);
    /* Hand-offs never completed are dropped with their table. */
    flow_table_free(a);
    free(a->svc);
    a->svc = NULL;
    a->nsvc = a->svc_cap = 0;
}

void agg_runs_fini(struct agg *a)
{
    for (size_t i = 0; i < a->nqueues; i++) {
        free(a->queues[i]->name);
        free(a->queues[i]->waits);
        free(a->queues[i]);
    }
    free(a->runs);
    free(a->queues);
    flow_table_free(a);
    free(a->svc);
    a->svc = NULL;
    a->nsvc = a->svc_cap = 0;
    free(a->items);
    a->items = NULL;
    a->nitems = a->items_cap = 0;
    a->runs = NULL;
    a->queues = NULL;
    a->nruns = a->nqueues = 0;
}
