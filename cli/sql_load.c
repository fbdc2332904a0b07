/*
 * sql_load.c - a Chrome trace into SQLite tables. See sql_load.h; the
 * tables are documented in docs/cli/stageprof-sql.md.
 *
 * Strings (names, categories, pids, tids, ids) are interned once and bound
 * to every row that uses them without a copy. Slices are kept per thread,
 * 64 bytes each, until the end of the file; then, thread by thread:
 *
 *   B/E pairs   sorted by time (read order breaks ties), paired with a
 *               stack, appended after the thread's X slices
 *   order       by start, the longer first, then the order above: the
 *               parent of two slices with the same start and duration is
 *               the one read first (the report's rule)
 *   nesting     a stack: a slice that starts inside the one on top is its
 *               child (one that starts exactly where a longer one ends is
 *               not, a zero-length one is); self time is the duration
 *               less the children's time inside it, never below zero
 *   ids         thread by thread, in that order, from 1
 *
 * Async begins and ends pair per (category, id, name) with a stack, in
 * time order; flow events per (category, id, name) from each s or t to
 * the next t or f. A flow's end points are bound to the deepest slice of
 * their thread that holds their time.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg_impl.h"
#include "sql_load.h"

#define NONE UINT32_MAX

/* An interned string; p is the map's NUL-terminated copy. */
struct str {
    const char *p;
    size_t len;
    int is_int;   /* a canonical decimal integer that fits int64 */
    int64_t ival; /* its value then */
};

/* A numeric argument of a slice whose value is known exactly. */
struct arg {
    uint32_t key;
    int is_int;     /* a whole number, stored as INTEGER */
    int64_t ivalue; /* then */
    double value;   /* else, as REAL */
};

struct slice {
    int64_t ts, dur;
    int64_t self;         /* the children's time while nesting, then self */
    uint64_t run;         /* 0: none */
    uint32_t name, cat;   /* strings */
    uint32_t seq;         /* position before sorting */
    uint32_t parent;      /* index among its thread's slices, NONE */
    uint32_t depth;       /* 0: top level */
    uint32_t args, nargs; /* its arguments in load.args */
};

/* A B or E event, until its thread's pairs are made. */
struct be {
    int64_t ts;
    uint64_t run;
    uint32_t name, cat, seq, args, nargs;
    int begin;
};

struct thread {
    uint32_t pid, tid, name; /* strings; name NONE until named */
    struct slice *sl;
    size_t nsl, slcap;
    struct be *be;
    size_t nbe, becap;
    int64_t first_id; /* its slices' ids are first_id + 1 + index */
};

/* An async begin or end (b/e, S/F), or a flow event (s/t/f). */
struct mark {
    int64_t ts;
    uint64_t run;
    uint32_t key; /* (category, id, name) */
    uint32_t name, cat, id, thread, seq;
    char ph;
};

struct async_slice {
    int64_t ts, end;
    uint64_t run;
    uint32_t name, cat, id, thread, end_thread, seq;
};

struct flow {
    int64_t ts, end_ts;
    int64_t slice, end_slice; /* ids, 0: none */
    uint32_t name, cat, id, thread, end_thread, seq;
    int has_end;
};

struct run {
    uint64_t id;
    int64_t begin, end;           /* the extent of its slices */
    int64_t span_begin, span_end; /* its own span (category "run") */
    uint64_t slices;
    int has_extent, has_span;
};

struct process {
    uint32_t pid, name; /* strings; name NONE until named */
};

struct load {
    sqlite3 *db;
    struct sql_load_result *res;
    char *err;
    size_t errlen;
    int failed; /* stop reading: err says why */

    struct strmap *str_map, *thread_map, *process_map, *key_map, *run_map;
    struct str *strs;
    size_t nstrs, strs_cap;
    struct thread *threads;
    size_t nthreads, threads_cap;
    uint32_t last_thread; /* of the previous event, NONE */
    struct process *procs;
    size_t nprocs, procs_cap;
    struct arg *args;
    size_t nargs, args_cap;
    struct mark *async, *flows;
    size_t nasync, async_cap, nflows, flows_cap;
    struct run *runs;
    size_t nruns, runs_cap;
    uint32_t seq;   /* read order of async and flow events */
    uint32_t s_run; /* the string "run" */
    int64_t next_instant;

    sqlite3_stmt *ins_counter, *ins_instant;
};

/* Errors ------------------------------------------------------------------ */

static int fail(struct load *l, const char *what)
{
    if (!l->failed)
        snprintf(l->err, l->errlen, "%s", what);
    l->failed = 1;
    return -1;
}

static int fail_db(struct load *l)
{
    return fail(l, sqlite3_errmsg(l->db));
}

static int oom(struct load *l)
{
    return fail(l, "out of memory");
}

/* Strings, threads, processes, runs --------------------------------------- */

static int canonical_int(const char *p, size_t len, int64_t *v)
{
    size_t i = p[0] == '-';
    if (len == i || len - i > 19 || (p[i] == '0' && len > i + 1) ||
        (p[i] == '0' && i == 1))
        return 0;
    uint64_t u = 0;
    for (size_t k = i; k < len; k++) {
        if (p[k] < '0' || p[k] > '9')
            return 0;
        u = u * 10 + (uint64_t)(p[k] - '0'); /* 19 digits cannot wrap */
    }
    if (u > (uint64_t)INT64_MAX + (i == 1))
        return 0;
    *v = i ? (int64_t)(0 - u) : (int64_t)u;
    return 1;
}

/* The index of string @s, interned when new; NONE when out of memory. */
static uint32_t intern(struct load *l, const char *p, size_t len)
{
    struct strmap_entry *e = strmap_get(l->str_map, p, len);
    if (e == NULL)
        return NONE;
    if (e->value != SIZE_MAX)
        return (uint32_t)e->value;
    if (l->nstrs >= NONE ||
        grow(&l->strs, &l->strs_cap, l->nstrs + 1, sizeof *l->strs) != 0)
        return NONE;
    struct str *s = &l->strs[l->nstrs];
    s->p = e->key;
    s->len = len;
    s->is_int = canonical_int(p, len, &s->ival);
    e->value = l->nstrs++;
    return (uint32_t)e->value;
}

static uint32_t intern_str(struct load *l, const struct tl_str *s)
{
    return intern(l, s->p, s->len);
}

/* The process of pid string @pid, made when new; NONE out of memory. */
static uint32_t process_of(struct load *l, uint32_t pid)
{
    struct strmap_entry *e = strmap_get(l->process_map, &pid, sizeof pid);
    if (e == NULL)
        return NONE;
    if (e->value == SIZE_MAX) {
        if (grow(&l->procs, &l->procs_cap, l->nprocs + 1, sizeof *l->procs))
            return NONE;
        l->procs[l->nprocs] = (struct process){pid, NONE};
        e->value = l->nprocs++;
    }
    return (uint32_t)e->value;
}

static int same(const struct str *have, const struct tl_str *s)
{
    return have->len == s->len && memcmp(have->p, s->p, s->len) == 0;
}

/* The index of the event's thread, made when new; NONE out of memory. */
static uint32_t thread_of(struct load *l, const struct tl_event *ev)
{
    /* Events of one thread tend to come together. */
    if (l->last_thread != NONE) {
        const struct thread *t = &l->threads[l->last_thread];
        if (same(&l->strs[t->tid], &ev->tid) &&
            same(&l->strs[t->pid], &ev->pid))
            return l->last_thread;
    }
    uint32_t key[2] = {intern_str(l, &ev->pid), intern_str(l, &ev->tid)};
    if (key[0] == NONE || key[1] == NONE)
        return NONE;
    struct strmap_entry *e = strmap_get(l->thread_map, key, sizeof key);
    if (e == NULL)
        return NONE;
    if (e->value == SIZE_MAX) {
        if (process_of(l, key[0]) == NONE ||
            grow(&l->threads, &l->threads_cap, l->nthreads + 1,
                 sizeof *l->threads) != 0)
            return NONE;
        struct thread *t = &l->threads[l->nthreads];
        memset(t, 0, sizeof *t);
        t->pid = key[0];
        t->tid = key[1];
        t->name = NONE;
        e->value = l->nthreads++;
    }
    return l->last_thread = (uint32_t)e->value;
}

static struct run *run_of(struct load *l, uint64_t id)
{
    struct strmap_entry *e = strmap_get(l->run_map, &id, sizeof id);
    if (e == NULL)
        return NULL;
    if (e->value == SIZE_MAX) {
        if (grow(&l->runs, &l->runs_cap, l->nruns + 1, sizeof *l->runs))
            return NULL;
        memset(&l->runs[l->nruns], 0, sizeof *l->runs);
        l->runs[l->nruns].id = id;
        e->value = l->nruns++;
    }
    return &l->runs[e->value];
}

/* The event's run id, 0 for none; ids SQLite cannot hold are counted. */
static uint64_t event_run(struct load *l, const struct tl_event *ev)
{
    if (!ev->has_run)
        return 0;
    if (ev->run > (uint64_t)INT64_MAX) {
        l->res->big_run++;
        return 0;
    }
    return ev->run;
}

/*
 * The slice's numeric arguments (the first TL_MAX_ARGS the reader keeps),
 * appended to load.args: args.run exactly as the reader read it, the
 * others as INTEGER when whole and exact in a double (|v| <= 2^53), else
 * REAL. The first index; *@n gets the count.
 */
static uint32_t keep_args(struct load *l, const struct tl_event *ev,
                          uint64_t run, uint32_t *n)
{
    uint32_t first = (uint32_t)l->nargs;
    *n = 0;
    for (int i = 0; i < ev->nargs; i++) {
        const struct tl_arg *a = &ev->args[i];
        int is_run = a->key.len == 3 && memcmp(a->key.p, "run", 3) == 0;
        if (is_run && run == 0)
            continue; /* not a run id the reader took */
        if (!isfinite(a->value) && !is_run)
            continue;
        if (grow(&l->args, &l->args_cap, l->nargs + 1, sizeof *l->args) != 0) {
            oom(l);
            return first;
        }
        struct arg *g = &l->args[l->nargs];
        memset(g, 0, sizeof *g);
        g->key = is_run ? l->s_run : intern_str(l, &a->key);
        if (g->key == NONE) {
            oom(l);
            return first;
        }
        if (is_run) {
            g->is_int = 1;
            g->ivalue = (int64_t)run;
        } else if (a->value == floor(a->value) &&
                   fabs(a->value) <= 9007199254740992.0) {
            g->is_int = 1;
            g->ivalue = (int64_t)a->value;
        } else {
            g->value = a->value;
        }
        l->nargs++;
        (*n)++;
    }
    return first;
}

/* qsort, which must not be handed a NULL array even when it is empty. */
static void sort(void *v, size_t n, size_t size,
                 int (*cmp)(const void *, const void *))
{
    if (n > 1)
        qsort(v, n, size, cmp);
}

/* Binding ----------------------------------------------------------------- */

static int bind_str(sqlite3_stmt *st, int col, const struct load *l, uint32_t s)
{
    if (s == NONE)
        return sqlite3_bind_null(st, col);
    return sqlite3_bind_text(st, col, l->strs[s].p, (int)l->strs[s].len,
                             SQLITE_STATIC);
}

/* A pid or tid: a number when the trace wrote one, NULL when absent. */
static int bind_id(sqlite3_stmt *st, int col, const struct load *l, uint32_t s)
{
    if (s != NONE && l->strs[s].is_int)
        return sqlite3_bind_int64(st, col, l->strs[s].ival);
    if (s != NONE && l->strs[s].len == 0)
        return sqlite3_bind_null(st, col);
    return bind_str(st, col, l, s);
}

static int bind_opt(sqlite3_stmt *st, int col, int64_t v, int has)
{
    return has ? sqlite3_bind_int64(st, col, v) : sqlite3_bind_null(st, col);
}

/* Run a bound statement that returns no row, ready for the next. */
static int step(struct load *l, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : fail_db(l);
}

static sqlite3_stmt *prepare(struct load *l, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(l->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
                           NULL) != SQLITE_OK) {
        fail_db(l);
        return NULL;
    }
    return st;
}

/* Reading ----------------------------------------------------------------- */

static void add_slice(struct load *l, struct thread *t, const struct slice *s)
{
    if (grow(&t->sl, &t->slcap, t->nsl + 1, sizeof *t->sl) != 0) {
        oom(l);
        return;
    }
    t->sl[t->nsl++] = *s;
}

static void on_slice(struct load *l, const struct tl_event *ev)
{
    if (!ev->has_dur) {
        l->res->no_dur++;
        return;
    }
    if (ev->dur_ns < 0) {
        l->res->bad_dur++;
        return;
    }
    uint32_t t = thread_of(l, ev);
    struct slice s = {.ts = ev->ts_ns, .dur = ev->dur_ns};
    s.name = intern_str(l, &ev->name);
    s.cat = intern_str(l, &ev->cat);
    if (t == NONE || s.name == NONE || s.cat == NONE) {
        oom(l);
        return;
    }
    s.run = event_run(l, ev);
    s.args = keep_args(l, ev, s.run, &s.nargs);
    add_slice(l, &l->threads[t], &s);
}

static void on_begin_end(struct load *l, const struct tl_event *ev)
{
    uint32_t ti = thread_of(l, ev);
    if (ti == NONE) {
        oom(l);
        return;
    }
    struct thread *t = &l->threads[ti];
    struct be b = {.ts = ev->ts_ns, .seq = (uint32_t)t->nbe};
    b.begin = ev->ph == 'B';
    if (b.begin) {
        b.name = intern_str(l, &ev->name);
        b.cat = intern_str(l, &ev->cat);
        b.run = event_run(l, ev);
        b.args = keep_args(l, ev, b.run, &b.nargs);
        if (b.name == NONE || b.cat == NONE) {
            oom(l);
            return;
        }
    }
    if (grow(&t->be, &t->becap, t->nbe + 1, sizeof *t->be) != 0) {
        oom(l);
        return;
    }
    t->be[t->nbe++] = b;
}

/* An async or flow event, kept for pairing. */
static void on_mark(struct load *l, const struct tl_event *ev, struct mark **v,
                    size_t *n, size_t *cap)
{
    struct mark m = {.ts = ev->ts_ns, .ph = ev->ph, .seq = l->seq++};
    m.thread = thread_of(l, ev);
    m.name = intern_str(l, &ev->name);
    m.cat = intern_str(l, &ev->cat);
    m.id = intern_str(l, &ev->id);
    m.run = event_run(l, ev);
    uint32_t key[3] = {m.cat, m.id, m.name};
    struct strmap_entry *e = strmap_get(l->key_map, key, sizeof key);
    if (m.thread == NONE || m.name == NONE || m.cat == NONE || m.id == NONE ||
        e == NULL || grow(v, cap, *n + 1, sizeof **v) != 0) {
        oom(l);
        return;
    }
    if (e->value == SIZE_MAX)
        e->value = l->key_map->n - 1;
    m.key = (uint32_t)e->value;
    (*v)[(*n)++] = m;
}

static void on_counter(struct load *l, const struct tl_event *ev)
{
    uint32_t pid = intern_str(l, &ev->pid);
    if (pid == NONE || process_of(l, pid) == NONE) {
        oom(l);
        return;
    }
    sqlite3_stmt *st = l->ins_counter;
    for (int i = 0; i < ev->nargs && !l->failed; i++) {
        const struct tl_arg *a = &ev->args[i];
        sqlite3_bind_text(st, 1, ev->name.p, (int)ev->name.len, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, a->key.p, (int)a->key.len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, ev->ts_ns);
        sqlite3_bind_double(st, 4, a->value);
        bind_id(st, 5, l, pid);
        if (step(l, st) == 0)
            l->res->counters++;
    }
}

static void on_instant(struct load *l, const struct tl_event *ev)
{
    uint32_t t = thread_of(l, ev);
    if (t == NONE) {
        oom(l);
        return;
    }
    uint64_t run = event_run(l, ev);
    const struct thread *th = &l->threads[t];
    sqlite3_stmt *st = l->ins_instant;
    sqlite3_bind_int64(st, 1, ++l->next_instant);
    sqlite3_bind_text(st, 2, ev->name.p, (int)ev->name.len, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, ev->cat.p, (int)ev->cat.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, ev->ts_ns);
    bind_id(st, 5, l, th->pid);
    bind_id(st, 6, l, th->tid);
    sqlite3_bind_int64(st, 7, (int64_t)t + 1);
    bind_opt(st, 8, (int64_t)run, run != 0);
    if (step(l, st) == 0)
        l->res->instants++;
}

static void on_metadata(struct load *l, const struct tl_event *ev)
{
    if (ev->arg_name.p == NULL)
        return;
    int thread =
        ev->name.len == 11 && memcmp(ev->name.p, "thread_name", 11) == 0;
    int process =
        ev->name.len == 12 && memcmp(ev->name.p, "process_name", 12) == 0;
    if (!thread && !process)
        return;
    uint32_t name = intern_str(l, &ev->arg_name);
    uint32_t pid = intern_str(l, &ev->pid);
    uint32_t who = pid == NONE ? NONE
                   : thread    ? thread_of(l, ev)
                               : process_of(l, pid);
    if (name == NONE || who == NONE) {
        oom(l);
        return;
    }
    if (thread)
        l->threads[who].name = name;
    else
        l->procs[who].name = name;
}

static void note_phase(struct load *l, char ph)
{
    char *u = l->res->unknown_phases;
    size_t n = strlen(u);
    if (strchr(u, ph) == NULL && n + 1 < sizeof l->res->unknown_phases) {
        u[n] = ph;
        u[n + 1] = '\0';
    }
}

static int on_event(void *arg, const struct tl_event *ev)
{
    struct load *l = arg;
    char ph = ev->ph;
    if (ph == 0) {
        l->res->no_ph++;
        return 0;
    }
    if (ph == 'M') {
        on_metadata(l, ev);
        return l->failed;
    }
    if (strchr("XBEbeSFCstfiI", ph) != NULL && !ev->has_ts) {
        l->res->no_ts++;
        return 0;
    }
    switch (ph) {
    case 'X':
        on_slice(l, ev);
        break;
    case 'B':
    case 'E':
        on_begin_end(l, ev);
        break;
    case 'b':
    case 'e':
    case 'S':
    case 'F':
        on_mark(l, ev, &l->async, &l->nasync, &l->async_cap);
        break;
    case 's':
    case 't':
    case 'f':
        on_mark(l, ev, &l->flows, &l->nflows, &l->flows_cap);
        break;
    case 'C':
        on_counter(l, ev);
        break;
    case 'i':
    case 'I':
        on_instant(l, ev);
        break;
    case 'n':
    case 'T':
    case 'p':
    case 'O':
    case 'N':
    case 'D':
    case 'P':
    case 'R':
    case 'c':
        break; /* known phases the tables do not hold */
    default:
        note_phase(l, ph);
        break;
    }
    return l->failed;
}

/* Slices ------------------------------------------------------------------ */

static int cmp_be(const void *x, const void *y)
{
    const struct be *a = x, *b = y;
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Parents first when two start together: the longer, then the first. */
static int cmp_slice(const void *x, const void *y)
{
    const struct slice *a = x, *b = y;
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    if (a->dur != b->dur)
        return a->dur > b->dur ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* B/E pairs of a thread appended to its slices: a stack in time order. */
static void pair_be(struct load *l, struct thread *t)
{
    if (t->nbe == 0)
        return;
    sort(t->be, t->nbe, sizeof *t->be, cmp_be);
    uint32_t *stack = malloc(t->nbe * sizeof *stack);
    size_t depth = 0;
    if (stack == NULL) {
        oom(l);
        return;
    }
    for (size_t i = 0; i < t->nbe; i++) {
        const struct be *e = &t->be[i];
        if (e->begin) {
            stack[depth++] = (uint32_t)i;
        } else if (depth == 0) {
            l->res->orphan_e++;
        } else {
            const struct be *b = &t->be[stack[--depth]];
            struct slice s = {.ts = b->ts, .dur = e->ts - b->ts};
            s.run = b->run;
            s.name = b->name;
            s.cat = b->cat;
            s.args = b->args;
            s.nargs = b->nargs;
            add_slice(l, t, &s);
        }
    }
    l->res->open_b += depth;
    free(stack);
    free(t->be);
    t->be = NULL;
    t->nbe = t->becap = 0;
}

/* Sort a thread's slices and give each its depth, parent and self time. */
static void nest(struct load *l, struct thread *t)
{
    struct slice *v = t->sl;
    size_t n = t->nsl, depth = 0;
    if (n == 0)
        return;
    int sorted = 1;
    for (size_t i = 0; i < n; i++) {
        v[i].seq = (uint32_t)i;
        sorted = sorted && (i == 0 || cmp_slice(&v[i - 1], &v[i]) <= 0);
    }
    if (!sorted)
        sort(v, n, sizeof *v, cmp_slice);
    uint32_t *stack = malloc(n * sizeof *stack);
    if (stack == NULL) {
        oom(l);
        return;
    }
    for (size_t i = 0; i <= n; i++) {
        struct slice *s = i < n ? &v[i] : NULL;
        while (depth > 0) {
            struct slice *p = &v[stack[depth - 1]];
            int64_t pend = p->ts + p->dur;
            if (s != NULL && !(pend < s->ts || (pend == s->ts && s->dur > 0)))
                break;
            p->self = p->dur - p->self > 0 ? p->dur - p->self : 0;
            depth--;
        }
        if (s == NULL)
            break;
        s->self = 0;
        s->depth = (uint32_t)depth;
        s->parent = depth > 0 ? stack[depth - 1] : NONE;
        if (depth > 0) {
            struct slice *p = &v[stack[depth - 1]];
            int64_t pend = p->ts + p->dur, end = s->ts + s->dur;
            /* A child sticking out past its parent counts up to its end. */
            p->self = sat_add(p->self, (end < pend ? end : pend) - s->ts);
        }
        stack[depth++] = (uint32_t)i;
    }
    free(stack);
}

/* A run's extent grows by [@ts, @end); @slice: one more of its slices. */
static int extend_run(struct load *l, uint64_t id, int64_t ts, int64_t end,
                      int slice)
{
    struct run *r = run_of(l, id);
    if (r == NULL)
        return oom(l);
    if (!r->has_extent || ts < r->begin)
        r->begin = ts;
    if (!r->has_extent || end > r->end)
        r->end = end;
    r->has_extent = 1;
    r->slices += slice != 0;
    return 0;
}

static int insert_slices(struct load *l)
{
    sqlite3_stmt *st = prepare(
        l, "INSERT INTO slices VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,"
           "?13)");
    sqlite3_stmt *sa = prepare(l, "INSERT INTO args VALUES(?1,?2,?3)");
    int64_t id = 0;
    for (size_t ti = 0; ti < l->nthreads && st && sa && !l->failed; ti++) {
        struct thread *t = &l->threads[ti];
        t->first_id = id;
        for (size_t i = 0; i < t->nsl && !l->failed; i++) {
            const struct slice *s = &t->sl[i];
            id++;
            bind_str(st, 2, l, s->name);
            bind_str(st, 3, l, s->cat);
            sqlite3_bind_int64(st, 1, id);
            sqlite3_bind_int64(st, 4, s->ts);
            sqlite3_bind_int64(st, 5, s->dur);
            sqlite3_bind_int64(st, 6, s->ts + s->dur);
            bind_id(st, 7, l, t->pid);
            bind_id(st, 8, l, t->tid);
            sqlite3_bind_int64(st, 9, (int64_t)ti + 1);
            sqlite3_bind_int64(st, 10, s->depth);
            bind_opt(st, 11, t->first_id + 1 + s->parent, s->parent != NONE);
            bind_opt(st, 12, (int64_t)s->run, s->run != 0);
            sqlite3_bind_int64(st, 13, s->self);
            if (step(l, st) != 0)
                break;
            for (uint32_t k = 0; k < s->nargs; k++) {
                const struct arg *a = &l->args[s->args + k];
                sqlite3_bind_int64(sa, 1, id);
                bind_str(sa, 2, l, a->key);
                if (a->is_int)
                    sqlite3_bind_int64(sa, 3, a->ivalue);
                else
                    sqlite3_bind_double(sa, 3, a->value);
                if (step(l, sa) != 0)
                    break;
            }
            if (s->run != 0)
                extend_run(l, s->run, s->ts, s->ts + s->dur, 1);
        }
    }
    l->res->slices = (uint64_t)id;
    sqlite3_finalize(st);
    sqlite3_finalize(sa);
    return l->failed ? -1 : 0;
}

/* Async slices ------------------------------------------------------------ */

static int cmp_mark(const void *x, const void *y)
{
    const struct mark *a = x, *b = y;
    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int cmp_async_slice(const void *x, const void *y)
{
    const struct async_slice *a = x, *b = y;
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static int insert_async(struct load *l)
{
    struct mark *m = l->async;
    size_t n = l->nasync, nout = 0;
    uint32_t *stack = malloc((n + 1) * sizeof *stack);
    struct async_slice *out = malloc((n / 2 + 1) * sizeof *out);
    if (stack == NULL || out == NULL) {
        free(stack);
        free(out);
        return oom(l);
    }
    sort(m, n, sizeof *m, cmp_mark);
    /* Each key's events are together, in time order: one stack each. */
    for (size_t i = 0, depth = 0; i < n; i++) {
        if (i > 0 && m[i].key != m[i - 1].key) {
            l->res->open_async += depth;
            depth = 0;
        }
        if (m[i].ph == 'b' || m[i].ph == 'S') {
            stack[depth++] = (uint32_t)i;
        } else if (depth == 0) {
            l->res->orphan_async++;
        } else {
            const struct mark *b = &m[stack[--depth]], *e = &m[i];
            out[nout++] = (struct async_slice){
                b->ts,     e->ts,     b->run ? b->run : e->run,
                b->name,   b->cat,    b->id,
                b->thread, e->thread, b->seq};
        }
        if (i + 1 == n)
            l->res->open_async += depth;
    }
    free(stack);
    sort(out, nout, sizeof *out, cmp_async_slice);
    sqlite3_stmt *st = prepare(
        l, "INSERT INTO async_slices VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,"
           "?11,?12)");
    for (size_t i = 0; i < nout && st != NULL && !l->failed; i++) {
        const struct async_slice *a = &out[i];
        const struct thread *t = &l->threads[a->thread];
        sqlite3_bind_int64(st, 1, (int64_t)i + 1);
        bind_str(st, 2, l, a->name);
        bind_str(st, 3, l, a->cat);
        bind_str(st, 4, l, a->id);
        sqlite3_bind_int64(st, 5, a->ts);
        sqlite3_bind_int64(st, 6, a->end - a->ts);
        sqlite3_bind_int64(st, 7, a->end);
        bind_id(st, 8, l, t->pid);
        bind_id(st, 9, l, t->tid);
        sqlite3_bind_int64(st, 10, (int64_t)a->thread + 1);
        sqlite3_bind_int64(st, 11, (int64_t)a->end_thread + 1);
        bind_opt(st, 12, (int64_t)a->run, a->run != 0);
        if (step(l, st) != 0)
            break;
        if (a->run == 0)
            continue;
        /* stageprof writes each run as an async span of category "run". */
        const struct str *cat = &l->strs[a->cat];
        struct run *r = run_of(l, a->run);
        if (r == NULL) {
            oom(l);
        } else if (cat->len == 3 && memcmp(cat->p, "run", 3) == 0) {
            if (!r->has_span || a->ts < r->span_begin)
                r->span_begin = a->ts;
            if (!r->has_span || a->end > r->span_end)
                r->span_end = a->end;
            r->has_span = 1;
        } else {
            extend_run(l, a->run, a->ts, a->end, 0);
        }
    }
    l->res->async_slices = nout;
    sqlite3_finalize(st);
    free(out);
    return l->failed ? -1 : 0;
}

/* Flows ------------------------------------------------------------------- */

/* The id of the deepest slice of thread @ti holding time @ts, or 0. */
static int64_t slice_at(const struct load *l, uint32_t ti, int64_t ts)
{
    const struct thread *t = &l->threads[ti];
    size_t lo = 0, hi = t->nsl; /* the first slice starting after ts */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->sl[mid].ts <= ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Any slice holding ts holds the last one starting at or before it,
     * or is it: the answer is on that one's chain of parents. */
    for (uint32_t i = lo > 0 ? (uint32_t)(lo - 1) : NONE; i != NONE;
         i = t->sl[i].parent)
        if (t->sl[i].ts + t->sl[i].dur >= ts)
            return t->first_id + 1 + i;
    return 0;
}

static int cmp_flow(const void *x, const void *y)
{
    const struct flow *a = x, *b = y;
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* A flow row from event @from to event @to (NULL: it never arrived). */
static void add_flow(const struct load *l, struct flow *f,
                     const struct mark *from, const struct mark *to)
{
    memset(f, 0, sizeof *f);
    f->ts = from->ts;
    f->name = from->name;
    f->cat = from->cat;
    f->id = from->id;
    f->thread = from->thread;
    f->seq = from->seq;
    f->slice = slice_at(l, from->thread, from->ts);
    if (to != NULL) {
        f->has_end = 1;
        f->end_ts = to->ts;
        f->end_thread = to->thread;
        f->end_slice = slice_at(l, to->thread, to->ts);
    }
}

static int insert_flows(struct load *l)
{
    struct mark *m = l->flows;
    size_t n = l->nflows, nout = 0;
    struct flow *out = malloc((n + 1) * sizeof *out);
    if (out == NULL)
        return oom(l);
    sort(m, n, sizeof *m, cmp_mark);
    /* Each key's events are together, in time order: a flow goes from
     * each s or t to the next t or f of its key. */
    const struct mark *open = NULL;
    for (size_t i = 0; i < n; i++) {
        const struct mark *e = &m[i];
        if (open != NULL && open->key != e->key) {
            add_flow(l, &out[nout++], open, NULL);
            open = NULL;
        }
        if (e->ph != 's' && open == NULL)
            l->res->orphan_flow++;
        if (open != NULL)
            add_flow(l, &out[nout++], open, e->ph == 's' ? NULL : e);
        open = e->ph == 'f' ? NULL : e;
    }
    if (open != NULL)
        add_flow(l, &out[nout++], open, NULL);
    sort(out, nout, sizeof *out, cmp_flow);
    sqlite3_stmt *st =
        prepare(l, "INSERT INTO flows VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)");
    for (size_t i = 0; i < nout && st != NULL && !l->failed; i++) {
        const struct flow *f = &out[i];
        sqlite3_bind_int64(st, 1, (int64_t)i + 1);
        bind_str(st, 2, l, f->name);
        bind_str(st, 3, l, f->cat);
        bind_str(st, 4, l, f->id);
        sqlite3_bind_int64(st, 5, f->ts);
        sqlite3_bind_int64(st, 6, (int64_t)f->thread + 1);
        bind_opt(st, 7, f->slice, f->slice != 0);
        bind_opt(st, 8, f->end_ts, f->has_end);
        bind_opt(st, 9, (int64_t)f->end_thread + 1, f->has_end);
        bind_opt(st, 10, f->end_slice, f->end_slice != 0);
        step(l, st);
    }
    l->res->flows = nout;
    sqlite3_finalize(st);
    free(out);
    return l->failed ? -1 : 0;
}

/* Runs, threads, processes, metadata -------------------------------------- */

static int cmp_run(const void *x, const void *y)
{
    const struct run *a = x, *b = y;
    return a->id < b->id ? -1 : a->id > b->id;
}

static int insert_runs(struct load *l)
{
    sort(l->runs, l->nruns, sizeof *l->runs, cmp_run);
    sqlite3_stmt *st = prepare(l, "INSERT INTO runs VALUES(?1,?2,?3,?4,?5,?6)");
    for (size_t i = 0; i < l->nruns && st != NULL && !l->failed; i++) {
        const struct run *r = &l->runs[i];
        int64_t b = r->has_span ? r->span_begin : r->begin;
        int64_t e = r->has_span ? r->span_end : r->end;
        sqlite3_bind_int64(st, 1, (int64_t)r->id);
        sqlite3_bind_int64(st, 2, b);
        sqlite3_bind_int64(st, 3, e);
        sqlite3_bind_int64(st, 4, e - b);
        sqlite3_bind_int64(st, 5, (int64_t)r->slices);
        sqlite3_bind_text(st, 6, r->has_span ? "span" : "slices", -1,
                          SQLITE_STATIC);
        step(l, st);
    }
    l->res->runs = l->nruns;
    sqlite3_finalize(st);
    return l->failed ? -1 : 0;
}

static int insert_threads(struct load *l)
{
    sqlite3_stmt *st = prepare(l, "INSERT INTO threads VALUES(?1,?2,?3,?4)");
    for (size_t i = 0; i < l->nthreads && st != NULL && !l->failed; i++) {
        const struct thread *t = &l->threads[i];
        sqlite3_bind_int64(st, 1, (int64_t)i + 1);
        bind_id(st, 2, l, t->pid);
        bind_id(st, 3, l, t->tid);
        bind_str(st, 4, l, t->name);
        step(l, st);
    }
    sqlite3_finalize(st);
    st = prepare(l, "INSERT INTO processes VALUES(?1,?2)");
    for (size_t i = 0; i < l->nprocs && st != NULL && !l->failed; i++) {
        bind_id(st, 1, l, l->procs[i].pid);
        bind_str(st, 2, l, l->procs[i].name);
        step(l, st);
    }
    sqlite3_finalize(st);
    l->res->threads = l->nthreads;
    return l->failed ? -1 : 0;
}

/* One row of metadata: an integer, or text when @text is not NULL. */
static void meta(struct load *l, sqlite3_stmt *st, const char *name,
                 const char *text, int64_t v)
{
    if (st == NULL || l->failed)
        return;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (text != NULL)
        sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(st, 2, v);
    step(l, st);
}

static int insert_metadata(struct load *l, const char *path)
{
    const struct sql_load_result *r = l->res;
    const struct tl_result *t = &r->trace;
    sqlite3_stmt *st = prepare(l, "INSERT INTO metadata VALUES(?1,?2)");
    meta(l, st, "trace", path, 0);
    meta(l, st, "producer", t->producer, 0);
    meta(l, st, "events", NULL, (int64_t)t->events);
    meta(l, st, "truncated", NULL, t->truncated);
    meta(l, st, "unclosed_array", NULL, t->unclosed);
    meta(l, st, "ts_rounded", NULL, t->ts_rounded);
    if (t->display_unit[0] != '\0')
        meta(l, st, "display_time_unit", t->display_unit, 0);
    if (t->has_summary) {
        meta(l, st, "complete", NULL, t->complete);
        if (t->dropped >= 0)
            meta(l, st, "events_dropped", NULL, t->dropped);
    }
    if (t->meta.present) {
        const struct tl_meta *m = &t->meta;
        const struct {
            const char *name, *value;
        } text[] = {
            {"stageprof_version", m->version},
            {"host", m->host},
            {"cpu_model", m->cpu_model},
            {"kernel", m->kernel},
            {"arch", m->arch},
            {"clock", m->clock},
            {"command_line", m->command_line},
            {"config", m->config},
        };
        for (size_t i = 0; i < sizeof text / sizeof text[0]; i++)
            if (text[i].value[0] != '\0')
                meta(l, st, text[i].name, text[i].value, 0);
        if (m->cores >= 0)
            meta(l, st, "cores", NULL, m->cores);
    }
    const struct {
        const char *name;
        uint64_t n;
    } skipped[] = {
        {"skipped_no_ts", r->no_ts},
        {"skipped_no_dur", r->no_dur},
        {"skipped_negative_dur", r->bad_dur},
        {"skipped_no_ph", r->no_ph},
        {"unended_begins", r->open_b},
        {"orphan_ends", r->orphan_e},
        {"unended_async", r->open_async},
        {"orphan_async_ends", r->orphan_async},
        {"orphan_flow_steps", r->orphan_flow},
        {"runs_too_large", r->big_run},
    };
    for (size_t i = 0; i < sizeof skipped / sizeof skipped[0]; i++)
        meta(l, st, skipped[i].name, NULL, (int64_t)skipped[i].n);
    if (r->unknown_phases[0] != '\0')
        meta(l, st, "unknown_phases", r->unknown_phases, 0);
    sqlite3_finalize(st);
    return l->failed ? -1 : 0;
}

/* Entry ------------------------------------------------------------------- */

static const char schema[] =
    "CREATE TABLE processes(pid, name TEXT);"
    "CREATE TABLE threads(id INTEGER PRIMARY KEY, pid, tid, name TEXT);"
    "CREATE TABLE slices(id INTEGER PRIMARY KEY, name TEXT, category TEXT,"
    " ts_ns INTEGER, dur_ns INTEGER, end_ns INTEGER, pid, tid,"
    " thread INTEGER REFERENCES threads(id), depth INTEGER,"
    " parent INTEGER REFERENCES slices(id), run INTEGER, self_ns INTEGER);"
    "CREATE TABLE args(slice INTEGER REFERENCES slices(id), key TEXT,"
    " value);"
    "CREATE TABLE async_slices(id INTEGER PRIMARY KEY, name TEXT,"
    " category TEXT, async_id TEXT, ts_ns INTEGER, dur_ns INTEGER,"
    " end_ns INTEGER, pid, tid, thread INTEGER REFERENCES threads(id),"
    " end_thread INTEGER REFERENCES threads(id), run INTEGER);"
    "CREATE TABLE instants(id INTEGER PRIMARY KEY, name TEXT, category TEXT,"
    " ts_ns INTEGER, pid, tid, thread INTEGER REFERENCES threads(id),"
    " run INTEGER);"
    "CREATE TABLE counters(name TEXT, series TEXT, ts_ns INTEGER, value REAL,"
    " pid);"
    "CREATE TABLE flows(id INTEGER PRIMARY KEY, name TEXT, category TEXT,"
    " flow_id TEXT, start_ns INTEGER,"
    " start_thread INTEGER REFERENCES threads(id),"
    " start_slice INTEGER REFERENCES slices(id), end_ns INTEGER,"
    " end_thread INTEGER REFERENCES threads(id),"
    " end_slice INTEGER REFERENCES slices(id));"
    "CREATE TABLE runs(id INTEGER PRIMARY KEY, begin_ns INTEGER,"
    " end_ns INTEGER, dur_ns INTEGER, slices INTEGER, bounds TEXT);"
    "CREATE TABLE metadata(name TEXT PRIMARY KEY, value);";

/* Built after the rows: one sort each instead of a b-tree insert per row. */
static const char indexes[] = "CREATE INDEX slices_parent ON slices(parent);"
                              "CREATE INDEX args_slice ON args(slice);";

static void load_free(struct load *l)
{
    for (size_t i = 0; i < l->nthreads; i++) {
        free(l->threads[i].sl);
        free(l->threads[i].be);
    }
    free(l->threads);
    free(l->procs);
    free(l->args);
    free(l->async);
    free(l->flows);
    free(l->runs);
    free(l->strs);
    strmap_free(l->str_map);
    strmap_free(l->thread_map);
    strmap_free(l->process_map);
    strmap_free(l->key_map);
    strmap_free(l->run_map);
    sqlite3_finalize(l->ins_counter);
    sqlite3_finalize(l->ins_instant);
}

static int exec(struct load *l, const char *sql)
{
    if (l->failed)
        return -1;
    return sqlite3_exec(l->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0
                                                                   : fail_db(l);
}

int sql_load(sqlite3 *db, const char *path, struct sql_load_result *res,
             char *err, size_t errlen)
{
    struct load l;
    memset(&l, 0, sizeof l);
    memset(res, 0, sizeof *res);
    l.db = db;
    l.res = res;
    l.err = err;
    l.errlen = errlen;
    l.last_thread = NONE;
    l.str_map = strmap_new();
    l.thread_map = strmap_new();
    l.process_map = strmap_new();
    l.key_map = strmap_new();
    l.run_map = strmap_new();
    if (!l.str_map || !l.thread_map || !l.process_map || !l.key_map ||
        !l.run_map || (l.s_run = intern(&l, "run", 3)) == NONE)
        oom(&l);
    exec(&l, "BEGIN");
    exec(&l, schema);
    if (!l.failed) {
        l.ins_counter = prepare(&l, "INSERT INTO counters VALUES(?1,?2,?3,?4,"
                                    "?5)");
        l.ins_instant = prepare(&l, "INSERT INTO instants VALUES(?1,?2,?3,?4,"
                                    "?5,?6,?7,?8)");
    }
    if (!l.failed && tl_read_opts(path, on_event, &l, TL_ALL_ARGS, &res->trace,
                                  err, errlen) != 0) {
        l.failed = 1; /* the reader's message is in err */
    }
    for (size_t i = 0; i < l.nthreads && !l.failed; i++) {
        pair_be(&l, &l.threads[i]);
        nest(&l, &l.threads[i]);
    }
    if (!l.failed)
        insert_slices(&l);
    if (!l.failed)
        insert_async(&l);
    if (!l.failed)
        insert_flows(&l);
    if (!l.failed)
        insert_runs(&l);
    if (!l.failed)
        insert_threads(&l);
    if (!l.failed)
        insert_metadata(&l, path);
    exec(&l, indexes);
    exec(&l, "COMMIT");
    load_free(&l);
    return l.failed ? -1 : 0;
}
