/*
 * chrome_writer.c - write recorded events as Chrome Trace Event Format.
 *
 * Output (object form, one event per line):
 *
 *   {"stageprof":{format, version, pid, host, cpu_model, cores, kernel,
 *                 kernel_version, arch, command_line, final, clock,
 *                 config, warnings, ring},
 *    "time_base":{"unix_ns":..,"monotonic_ns":..},
 *    "traceEvents":[
 *     {"ph":"M",..process_name / thread_name / thread_sort_index..},
 *     {"ph":"X","name":..,"cat":..,"ts":12.345,"dur":6.789,"pid":..,
 *      "tid":..,"args":{"run":7,...}},
 *     ...],
 *    "stageprof_summary":{"complete":..,"events_written":..,..,
 *                         "misuse":{..},"overhead":{..}}}
 *
 * ts is microseconds with three decimals (ns precision) relative to
 * time_base.monotonic_ns; time_base.unix_ns is the same instant on the wall
 * clock, so traces of several processes can be aligned. A file without
 * stageprof_summary was cut short.
 *
 * Spans: a BEGIN..END pair becomes one "X" event (emitted at the end, so
 * children come before parents; viewers sort). A span still open when the
 * trace is written becomes "B" (args so far), and its end in a later file
 * "E". Runs are async "b"/"e" with the run id, flows "s"/"t"/"f" (the end
 * binds to the enclosing slice), counters "C", instants "i" (thread scope).
 * Every event but counters and metadata carries args.run while its thread
 * is in a run (a counter's args are its series, so "run" would become a
 * series); an "E" carries the run of its span.
 *
 * Consumption: the writer snapshots each thread's committed bytes, writes
 * them, and only when the whole trace reached its sink marks them read.
 * A failed write leaves everything in place for the next attempt.
 *
 * A filtered write (struct write_filter, for /capture) leaves out events
 * outside a time window, of refused categories, or beyond a count, and
 * counts them; it reserves blanks after the opening brace for the
 * caller's own member.
 *
 * One writer at a time (stageprof__g.wlock).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ring.h"
#include "tail.h"
#include "tbuf.h"
#include "util/json.h"
#include "util/strbuf.h"

#define OUT_CAP (1u << 20)
/* Largest single piece appended at once: an escaped 1 KiB string + slack. */
#define OUT_PIECE (8u << 10)

/* ------------------------------------------------------------------------ */
/* Buffered output                                                          */
/* ------------------------------------------------------------------------ */

struct out {
    struct sink *sink;
    char *buf;
    size_t len;
    int err;         /* first sink error; later output is discarded */
    uint64_t events; /* events written */
    int first;       /* no event written yet (comma handling) */
};

static void out_flush(struct out *o)
{
    if (o->len > 0 && o->err == 0)
        o->err = o->sink->write(o->sink->ud, o->buf, o->len);
    o->len = 0;
}

/* At least OUT_PIECE free bytes at o->buf + o->len. */
static inline char *out_room(struct out *o)
{
    if (unlikely(o->len + OUT_PIECE > OUT_CAP))
        out_flush(o);
    return o->buf + o->len;
}

static void out_add(struct out *o, const char *s, size_t n)
{
    while (n > 0) {
        char *p = out_room(o);
        size_t k = n < OUT_PIECE ? n : OUT_PIECE;
        memcpy(p, s, k);
        o->len += k;
        s += k;
        n -= k;
    }
}

/* ------------------------------------------------------------------------ */
/* Site fragments: "name":"..","cat":"..", escaped once per site and write  */
/* ------------------------------------------------------------------------ */

struct frag_slot {
    const stageprof_site_t *site;
    size_t off, len;
};

struct frags {
    struct frag_slot *slots;
    size_t cap, n;
    struct strbuf text;
};

static size_t ptr_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x;
}

static void cat_text(struct strbuf *sb, const char *cat)
{
    stageprof__sb_adds(sb, ",\"cat\":");
    cat = cat ? cat : "default";
    stageprof__json_str(sb, cat, strnlen(cat, STAGEPROF_MAX_STRING));
}

static int frags_grow(struct frags *f)
{
    size_t cap = f->cap ? f->cap * 2 : 256;
    struct frag_slot *s = stageprof__calloc(cap, sizeof *s);
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < f->cap; i++) {
        if (f->slots[i].site == NULL)
            continue;
        size_t j = ptr_hash(f->slots[i].site) & (cap - 1);
        while (s[j].site != NULL)
            j = (j + 1) & (cap - 1);
        s[j] = f->slots[i];
    }
    stageprof__free(f->slots);
    f->slots = s;
    f->cap = cap;
    return 0;
}

/* The fragment of @site, or NULL on allocation failure. */
static const char *frag_get(struct frags *f, const stageprof_site_t *site,
                            size_t *len)
{
    if ((f->n + 1) * 2 > f->cap && frags_grow(f) != 0)
        return NULL;
    size_t j = ptr_hash(site) & (f->cap - 1);
    while (f->slots[j].site != NULL && f->slots[j].site != site)
        j = (j + 1) & (f->cap - 1);
    struct frag_slot *s = &f->slots[j];
    if (s->site == NULL) {
        size_t off = f->text.len;
        const char *name = site->name ? site->name : "";
        stageprof__sb_adds(&f->text, "\"name\":");
        stageprof__json_str(&f->text, name,
                            strnlen(name, STAGEPROF_MAX_STRING));
        cat_text(&f->text, site->category);
        if (f->text.oom)
            return NULL;
        s->site = site;
        s->off = off;
        s->len = f->text.len - off;
        f->n++;
    }
    *len = s->len;
    return f->text.buf + s->off;
}

/* ------------------------------------------------------------------------ */
/* Per-thread replay                                                        */
/* ------------------------------------------------------------------------ */

/* An ARG record waiting for its event. */
struct argref {
    const struct rec *r;
    int next; /* index in the pool, -1 ends the list */
};

/* An open span of the thread being written. */
struct pend {
    uint64_t ns; /* begin, monotonic ns */
    const stageprof_site_t *site;
    const char *dyn; /* run-time name, or NULL */
    size_t dyn_len;
    uint64_t run;
    int args_head, args_tail; /* argref list */
    int carried;              /* begun in an earlier file */
    int skip;                 /* not written: its run left the ring, or its
                                 begin was evicted */
};

/* Per-thread snapshot taken under tbuf.lock. */
struct snap {
    struct tbuf *tb;
    int tid;
    uint64_t seq;
    char name[STAGEPROF_NAME_MAX];
    int has_sort, sort_index;
    /* results applied on success */
    unsigned new_open;
    uint64_t new_run;
    uint64_t new_open_run[STAGEPROF_MAX_DEPTH];
    unsigned char new_open_skip[STAGEPROF_MAX_DEPTH];
};

struct u64vec {
    uint64_t *v;
    size_t n, cap;
};

struct writer {
    struct out out;
    struct ring_view view; /* runs kept; chunks not freed meanwhile */
    int keep;              /* the current run's events are written */
    uint64_t spans_cut;    /* spans whose end or begin was evicted */
    struct frags frags;
    struct clock_map clock;
    uint64_t base; /* base monotonic ns */
    int pid;
    int fixed_ids;
    struct pend stack[STAGEPROF_MAX_DEPTH * 2];
    int depth;
    struct argref *args;
    int nargs, args_cap;
    const struct rec *instant; /* instant waiting for its args */
    uint64_t instant_run;
    int inst_args_head, inst_args_tail;
    struct u64vec run_begins, run_ends;
    uint64_t open_spans; /* spans written as "B" */
    int oom;
    char num[64];
    char pt[64];   /* ,"pid":..,"tid":.. of pt_tid */
    size_t pt_len; /* 0: not formatted yet */
    int pt_tid;
    struct write_filter *filt; /* a /capture write, or NULL */
    int frag;                  /* a kept run's fragment (filt->only_run) */
    int tail;                  /* kept runs' fragments are appended */
};

/* Whether the events of @run are written. */
static int keeps(struct writer *w, uint64_t run)
{
    if (w->frag)
        return run == w->filt->only_run;
    return stageprof__ring_view_keeps(&w->view, run);
}

static int fixed_ids_flag;

void stageprof__writer_set_fixed_ids(int on)
{
    fixed_ids_flag = on;
}

static void vec_push(struct writer *w, struct u64vec *v, uint64_t x)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        uint64_t *nv = stageprof__malloc(cap * sizeof *nv);
        if (nv == NULL) {
            w->oom = 1;
            return;
        }
        if (v->n)
            memcpy(nv, v->v, v->n * sizeof *nv);
        stageprof__free(v->v);
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = x;
}

static int arg_new(struct writer *w, const struct rec *r)
{
    if (w->nargs == w->args_cap) {
        int cap = w->args_cap ? w->args_cap * 2 : 64;
        struct argref *na = stageprof__malloc((size_t)cap * sizeof *na);
        if (na == NULL) {
            w->oom = 1;
            return -1;
        }
        if (w->nargs)
            memcpy(na, w->args, (size_t)w->nargs * sizeof *na);
        stageprof__free(w->args);
        w->args = na;
        w->args_cap = cap;
    }
    w->args[w->nargs].r = r;
    w->args[w->nargs].next = -1;
    return w->nargs++;
}

static void arg_append(struct writer *w, int *head, int *tail,
                       const struct rec *r)
{
    int i = arg_new(w, r);
    if (i < 0)
        return;
    if (*head < 0)
        *head = i;
    else
        w->args[*tail].next = i;
    *tail = i;
}

/*
 * Whether an event of category @cat at @ns (spans: until @end_ns) goes
 * into a filtered write: it overlaps the window, the rules take its
 * category, and max_events is not reached. Counts what it leaves out.
 */
static int admit_slow(struct writer *w, const char *cat, uint64_t ns,
                      uint64_t end_ns)
{
    struct write_filter *f = w->filt;
    if (f->to_ns != 0 && (ns > f->to_ns || end_ns < f->from_ns)) {
        f->out_of_window++;
        return 0;
    }
    if (f->cats != NULL && cat != NULL &&
        !stageprof__config_category_ok(f->cats, cat)) {
        f->cat_removed++;
        return 0;
    }
    if (f->max_events != 0 && f->events >= f->max_events) {
        f->over_max++;
        return 0;
    }
    f->events++;
    return 1;
}

static inline int admit(struct writer *w, const char *cat, uint64_t ns,
                        uint64_t end_ns)
{
    return likely(w->filt == NULL) || admit_slow(w, cat, ns, end_ns);
}

static inline const char *site_cat(const stageprof_site_t *site)
{
    return site != NULL && site->category != NULL ? site->category : "default";
}

/* Event separator and opening. */
static inline char *ev_open(struct writer *w, const char *ph, size_t phlen)
{
    char *p = out_room(&w->out);
    if (!w->out.first)
        *p++ = ',', *p++ = '\n';
    w->out.first = 0;
    memcpy(p, ph, phlen);
    return p + phlen;
}

static inline void ev_commit(struct writer *w, char *p)
{
    w->out.len = (size_t)(p - w->out.buf);
    w->out.events++;
}

static inline char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}
#define PUTS(p, lit) put((p), (lit), sizeof(lit) - 1)

/* ts relative to the base, signed, in µs with three decimals. */
static inline char *put_ts(struct writer *w, char *p, uint64_t ns)
{
    if (ns >= w->base)
        return p + stageprof__fmt_us3(p, ns - w->base);
    *p++ = '-';
    return p + stageprof__fmt_us3(p, w->base - ns);
}

static inline char *put_pid_tid(struct writer *w, char *p, int tid)
{
    /* The same on every event of a thread: formatted once per thread. */
    if (unlikely(tid != w->pt_tid || w->pt_len == 0)) {
        char *q = w->pt;
        q = PUTS(q, ",\"pid\":");
        q += stageprof__fmt_u64(q, (uint64_t)w->pid);
        q = PUTS(q, ",\"tid\":");
        q += stageprof__fmt_u64(q, (uint64_t)tid);
        w->pt_len = (size_t)(q - w->pt);
        w->pt_tid = tid;
    }
    return put(p, w->pt, w->pt_len);
}

static inline char *put_name(struct writer *w, char *p,
                             const stageprof_site_t *site, const char *dyn,
                             size_t dyn_len)
{
    if (dyn != NULL) {
        p = PUTS(p, "\"name\":\"");
        p += stageprof__json_escape(p, dyn, dyn_len);
        *p++ = '"';
        const char *cat = site->category ? site->category : "default";
        p = PUTS(p, ",\"cat\":\"");
        p += stageprof__json_escape(p, cat, strnlen(cat, 256));
        *p++ = '"';
        return p;
    }
    size_t n;
    const char *f = frag_get(&w->frags, site, &n);
    if (f == NULL) {
        w->oom = 1;
        return PUTS(p, "\"name\":\"?\"");
    }
    return put(p, f, n);
}

/* One argument "key":value; the pieces are bounded by OUT_PIECE. */
static char *put_arg(struct writer *w, char *p, const struct rec *r)
{
    const char *key = (const char *)(uintptr_t)r[0].a;
    unsigned type = (unsigned)(r[0].b >> 4) & 15u;
    *p++ = ',';
    *p++ = '"';
    p += stageprof__json_escape(p, key, strnlen(key, 256));
    *p++ = '"';
    *p++ = ':';
    if (type == ARG_INT) {
        p += stageprof__fmt_i64(p, (int64_t)r[1].a);
    } else if (type == ARG_DOUBLE) {
        double d;
        memcpy(&d, &r[1].a, sizeof d);
        p += stageprof__fmt_double(p, d);
    } else {
        *p++ = '"';
        p += stageprof__json_escape(p, (const char *)&r[2], (size_t)r[1].a);
        *p++ = '"';
    }
    (void)w;
    return p;
}

/*
 * ,"args":{"run":N,...} — each argument may be up to ~6 KiB escaped, so the
 * event is committed and the room renewed between arguments.
 */
static char *put_args(struct writer *w, char *p, uint64_t run, int head)
{
    if (run == 0 && head < 0)
        return p;
    p = PUTS(p, ",\"args\":{");
    int first = 1;
    if (run != 0) {
        p = PUTS(p, "\"run\":");
        p += stageprof__fmt_u64(p, run);
        first = 0;
    }
    for (int i = head; i >= 0; i = w->args[i].next) {
        /* Renewing the room may flush: only positions from p on count. */
        w->out.len = (size_t)(p - w->out.buf);
        p = out_room(&w->out);
        char *q = put_arg(w, p, w->args[i].r);
        if (first) /* drop the separating comma of the first member */
            memmove(p, p + 1, (size_t)(q - p - 1)), q--;
        first = 0;
        p = q;
    }
    *p++ = '}';
    return p;
}

/* 1 when written, 0 when a filtered write left it out. */
static int emit_span(struct writer *w, int tid, const struct pend *s,
                     const char *ph, uint64_t end_ns)
{
    /* "B": still open when the trace is written. */
    if (!admit(w, site_cat(s->site), s->ns, ph[7] == 'X' ? end_ns : UINT64_MAX))
        return 0;
    char *p = ev_open(w, ph, strlen(ph));
    p = put_name(w, p, s->site, s->dyn, s->dyn_len);
    p = PUTS(p, ",\"ts\":");
    p = put_ts(w, p, s->ns);
    if (ph[7] == 'X') {
        p = PUTS(p, ",\"dur\":");
        p += stageprof__fmt_us3(p, end_ns > s->ns ? end_ns - s->ns : 0);
    }
    p = put_pid_tid(w, p, tid);
    p = put_args(w, p, s->run, s->args_head);
    *p++ = '}';
    ev_commit(w, p);
    return 1;
}

static void emit_end(struct writer *w, int tid, const struct pend *s,
                     uint64_t ns)
{
    /* Its begin (and category) went into an earlier file: time only. */
    if (!admit(w, NULL, ns, ns))
        return;
    char *p = ev_open(w, "{\"ph\":\"E\",\"ts\":", 15);
    p = put_ts(w, p, ns);
    p = put_pid_tid(w, p, tid);
    p = put_args(w, p, s->run, s->args_head);
    *p++ = '}';
    ev_commit(w, p);
}

static void flush_instant_slow(struct writer *w, int tid)
{
    const struct rec *r = w->instant;
    if (r == NULL)
        return;
    w->instant = NULL;
    uint64_t ns = stageprof__clock_map_ns(&w->clock, r->a);
    if (!admit(w, site_cat(tbuf_rec_site(r)), ns, ns))
        return;
    char *p = ev_open(w, "{\"ph\":\"i\",\"s\":\"t\",", 18);
    p = put_name(w, p, tbuf_rec_site(r), NULL, 0);
    p = PUTS(p, ",\"ts\":");
    p = put_ts(w, p, ns);
    p = put_pid_tid(w, p, tid);
    p = put_args(w, p, w->instant_run, w->inst_args_head);
    *p++ = '}';
    ev_commit(w, p);
}

static inline void flush_instant(struct writer *w, int tid)
{
    if (unlikely(w->instant != NULL))
        flush_instant_slow(w, tid);
}

static void emit_id(char **pp, uint64_t id)
{
    char *p = *pp;
    p = PUTS(p, ",\"id\":\"0x");
    p += stageprof__fmt_hex(p, id);
    *p++ = '"';
    *pp = p;
}

static void emit_pair(struct writer *w, int tid, const struct rec *r,
                      uint64_t run)
{
    const stageprof_site_t *site = tbuf_rec_site(r);
    unsigned kind = (unsigned)(r[0].b & 15u);
    uint64_t ns = stageprof__clock_map_ns(&w->clock, r[0].a);
    /* Runs without a site are written with the category "run". */
    const char *cat = site != NULL      ? site_cat(site)
                      : kind == REC_RUN ? "run"
                                        : "default";
    if (!admit(w, cat, ns, ns))
        return;
    char *p;
    if (kind == REC_COUNTER) {
        p = ev_open(w, "{\"ph\":\"C\",", 10);
        p = put_name(w, p, site, NULL, 0);
        p = PUTS(p, ",\"ts\":");
        p = put_ts(w, p, ns);
        p = put_pid_tid(w, p, tid);
        p = PUTS(p, ",\"args\":{\"value\":");
        if (r[1].b == 0) {
            p += stageprof__fmt_i64(p, (int64_t)r[1].a);
        } else {
            double d;
            memcpy(&d, &r[1].a, sizeof d);
            p += stageprof__fmt_double(p, d);
        }
        p = PUTS(p, "}}");
        ev_commit(w, p);
        return;
    }
    static const char *const flow_ph[] = {"{\"ph\":\"s\",", "{\"ph\":\"t\",",
                                          "{\"ph\":\"f\",\"bp\":\"e\","};
    static const char *const run_ph[] = {"{\"ph\":\"b\",", "{\"ph\":\"e\","};
    unsigned phase = (unsigned)r[1].b;
    if (kind == REC_RUN) {
        if (phase == RUN_SET)
            return;
        vec_push(w, phase == RUN_BEGIN ? &w->run_begins : &w->run_ends, r[1].a);
        p = ev_open(w, run_ph[phase & 1], 10);
        run = r[1].a;
    } else {
        const char *ph = flow_ph[phase < 3 ? phase : 0];
        p = ev_open(w, ph, strlen(ph));
    }
    if (site != NULL) {
        p = put_name(w, p, site, NULL, 0);
    } else {
        p = PUTS(p, "\"name\":\"run\",\"cat\":\"run\"");
    }
    emit_id(&p, r[1].a);
    p = PUTS(p, ",\"ts\":");
    p = put_ts(w, p, ns);
    p = put_pid_tid(w, p, tid);
    p = put_args(w, p, run, -1);
    *p++ = '}';
    ev_commit(w, p);
}

/*
 * A chunk that does not follow the previous one (chunks between were
 * evicted) starts at its own nesting depth: spans whose end was evicted are
 * dropped from the stack, spans whose begin was evicted are pushed as
 * entries whose end is not written. Contiguous chunks need neither.
 */
static void align_stack(struct writer *w, unsigned depth)
{
    while ((unsigned)w->depth > depth) {
        struct pend *e = &w->stack[--w->depth];
        if (!e->skip)
            w->spans_cut++;
    }
    while ((unsigned)w->depth < depth &&
           w->depth < (int)(sizeof w->stack / sizeof w->stack[0])) {
        struct pend *e = &w->stack[w->depth++];
        memset(e, 0, sizeof *e);
        e->args_head = e->args_tail = -1;
        e->skip = 1;
        w->spans_cut++;
    }
}

static void replay(struct writer *w, struct snap *s, int tid,
                   const unsigned char *p, const unsigned char *end,
                   uint64_t *run)
{
    while (p < end) {
        const struct rec *r = (const struct rec *)p;
        size_t size = tbuf_rec_size(r, (size_t)(end - p));
        if (size == 0)
            break; /* cannot happen with committed data; stop safely */
        p += size;
        unsigned kind = (unsigned)(r->b & 15u);
        if (kind == REC_ARG) {
            unsigned target = (unsigned)(r->b >> 8) & 0xFFFFu;
            if (target == ARG_TARGET_INSTANT) {
                if (w->instant != NULL)
                    arg_append(w, &w->inst_args_head, &w->inst_args_tail, r);
            } else if ((int)target < w->depth) {
                struct pend *e = &w->stack[target];
                arg_append(w, &e->args_head, &e->args_tail, r);
            }
            continue;
        }
        flush_instant(w, tid);
        const stageprof_site_t *site = tbuf_rec_site(r);
        switch (kind) {
        case REC_BEGIN:
        case REC_BEGIN_NAME: {
            if (w->depth == (int)(sizeof w->stack / sizeof w->stack[0]))
                break;
            struct pend *e = &w->stack[w->depth++];
            e->ns = stageprof__clock_map_ns(&w->clock, r->a);
            e->site = site;
            e->dyn = kind == REC_BEGIN_NAME ? (const char *)&r[2] : NULL;
            e->dyn_len = kind == REC_BEGIN_NAME ? (size_t)r[1].a : 0;
            e->run = *run;
            e->args_head = e->args_tail = -1;
            e->carried = 0;
            e->skip = !w->keep;
            break;
        }
        case REC_END: {
            if (w->depth == 0)
                break;
            struct pend *e = &w->stack[--w->depth];
            uint64_t ns = stageprof__clock_map_ns(&w->clock, r->a);
            if (e->skip)
                ;
            else if (e->carried)
                emit_end(w, tid, e, ns);
            else
                emit_span(w, tid, e, "{\"ph\":\"X\",", ns);
            if (w->depth == 0)
                w->nargs = 0; /* no list refers to the pool any more */
            break;
        }
        case REC_COMPLETE: {
            struct pend e = {r[0].a, site, NULL, 0, *run, -1, -1, 0, 0};
            if (w->keep)
                emit_span(w, tid, &e, "{\"ph\":\"X\",", r[0].a + r[1].a);
            break;
        }
        case REC_INSTANT:
            if (!w->keep)
                break;
            w->instant = r;
            w->instant_run = *run;
            w->inst_args_head = w->inst_args_tail = -1;
            break;
        case REC_RUN: {
            unsigned phase = (unsigned)r[1].b;
            if (phase == RUN_BEGIN || phase == RUN_SET)
                *run = r[1].a;
            else if (*run == r[1].a)
                *run = 0;
            if (phase != RUN_SET && keeps(w, r[1].a))
                emit_pair(w, tid, r, *run);
            w->keep = keeps(w, *run);
            break;
        }
        case REC_COUNTER:
        case REC_FLOW:
            if (w->keep)
                emit_pair(w, tid, r, *run);
            break;
        default:
            break;
        }
    }
    (void)s;
}

/* ------------------------------------------------------------------------ */
/* The whole trace                                                          */
/* ------------------------------------------------------------------------ */

static void emit_meta(struct writer *w, const char *what, int tid,
                      const char *key, const char *sval, long long ival)
{
    char *p = ev_open(w, "{\"ph\":\"M\",\"name\":\"", 18);
    p = put(p, what, strlen(what));
    p = PUTS(p, "\"");
    p = put_pid_tid(w, p, tid);
    p = PUTS(p, ",\"args\":{\"");
    p = put(p, key, strlen(key));
    p = PUTS(p, "\":");
    if (sval != NULL) {
        *p++ = '"';
        p += stageprof__json_escape(p, sval, strnlen(sval, 256));
        *p++ = '"';
    } else {
        p += stageprof__fmt_i64(p, ival);
    }
    p = PUTS(p, "}}");
    ev_commit(w, p);
}

static void thread_meta(struct writer *w, const struct snap *s, int tid)
{
    if (s->name[0])
        emit_meta(w, "thread_name", tid, "name", s->name, 0);
    if (s->has_sort)
        emit_meta(w, "thread_sort_index", tid, "sort_index", NULL,
                  s->sort_index);
}

/*
 * The kept runs the ring no longer holds, after every thread's events;
 * max_events counts their events too.
 */
static void append_tail(struct writer *w)
{
    size_t n;
    const struct tail_frag *f = stageprof__tail_frags(&n);
    for (size_t i = 0; i < n; i++) {
        if (stageprof__ring_view_keeps(&w->view, f[i].id))
            continue;
        if (w->filt != NULL && w->filt->max_events != 0 &&
            w->filt->events + f[i].events > w->filt->max_events) {
            w->filt->over_max += f[i].events;
            continue;
        }
        if (w->filt != NULL)
            w->filt->events += f[i].events;
        out_add(&w->out, f[i].text, f[i].len);
        w->out.events += f[i].lines;
    }
}

static void header(struct writer *w, int final)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, stageprof__malloc, stageprof__free);
    const struct conf *c = &stageprof__g.conf;
    stageprof__sb_adds(&sb, "{");
    /* Room for the caller's own member (a /capture answer's "capture"). */
    for (size_t i = 0; w->filt != NULL && i < w->filt->reserve; i++)
        stageprof__sb_add(&sb, " ", 1);
    stageprof__sb_addf(&sb,
                       "\"stageprof\":{\"format\":1,\"version\":\"%s\","
                       "\"pid\":%d",
                       STAGEPROF_VERSION_STRING, w->pid);
    if (w->fixed_ids)
        stageprof__sb_adds(&sb, ",\"host\":\"test\"");
    else
        stageprof__sysinfo_json(&sb);
    stageprof__sb_addf(&sb, ",\"final\":%s,\"clock\":{\"source\":\"%s\"",
                       final ? "true" : "false", stageprof__clock_name());
    double hz = stageprof__clock_tsc_hz();
    if (hz > 0)
        stageprof__sb_addf(&sb, ",\"tsc_hz\":%.0f,\"anchors\":%d", hz,
                           stageprof__clock_anchor_count());
    const char *why = stageprof__clock_why();
    if (why != NULL && hz <= 0) {
        stageprof__sb_adds(&sb, ",\"why_not_tsc\":");
        stageprof__json_str(&sb, why, strlen(why));
    }
    stageprof__sb_addf(&sb, "},\"config\":{\"enable\":%d,\"dir\":", c->enable);
    const char *dir = c->dir ? c->dir : "";
    stageprof__json_str(&sb, dir, strlen(dir));
    stageprof__sb_addf(
        &sb, ",\"buffer_bytes\":%lld,\"categories\":", c->buffer_bytes);
    const char *cats = c->categories ? c->categories : "*";
    stageprof__json_str(&sb, cats, strlen(cats));
    static const char *const clock_names[] = {"auto", "tsc", "monotonic"};
    stageprof__sb_addf(
        &sb,
        ",\"clock\":\"%s\",\"sources\":{\"enable\":\"%s\","
        "\"dir\":\"%s\",\"buffer_bytes\":\"%s\","
        "\"categories\":\"%s\",\"clock\":\"%s\"}}",
        clock_names[c->clock >= 0 && c->clock <= 2 ? c->clock : 0],
        c->src_enable ? c->src_enable : "default",
        c->src_dir ? c->src_dir : "default",
        c->src_buffer_bytes ? c->src_buffer_bytes : "default",
        c->src_categories ? c->src_categories : "default",
        c->src_clock ? c->src_clock : "default");
    /* Reopen the config object for the settings of the always-on side. */
    if (!sb.oom) {
        sb.len--;
        sb.buf[sb.len] = '\0';
    }
    stageprof__sb_addf(&sb,
                       ",\"buffer_runs\":%lld,\"sample_runs\":%lld,"
                       "\"gzip\":%d,\"max_files\":%lld,\"max_dir_bytes\":%lld,"
                       "\"snapshot_signal\":%d,\"crash_dump\":%d,"
                       "\"follow_fork\":%d,\"sample_hz\":%lld,"
                       "\"max_stages\":%lld,\"keep_slower_than_ms\":%lld,"
                       "\"keep_slowest\":%lld,\"keep_window_s\":%lld,"
                       "\"keep_bytes\":%lld,\"http\":",
                       c->buffer_runs, c->sample_runs, c->gzip, c->max_files,
                       c->max_dir_bytes, c->snapshot_signal, c->crash_dump,
                       c->follow_fork, c->sample_hz, c->max_stages,
                       c->keep_slower_than_ms, c->keep_slowest,
                       c->keep_window_s, c->keep_bytes);
    /* The address only: the token is never written anywhere. */
    if (c->http != NULL)
        stageprof__json_str(&sb, c->http, strlen(c->http));
    else
        stageprof__sb_adds(&sb, "null");
    stageprof__sb_adds(&sb, "}");
    stageprof__sb_adds(&sb, ",\"warnings\":[");
    for (int i = 0; i < c->nwarnings; i++) {
        if (i)
            stageprof__sb_adds(&sb, ",");
        stageprof__json_str(&sb, c->warnings[i], strlen(c->warnings[i]));
    }
    const struct ring_view *v = &w->view;
    stageprof__sb_addf(
        &sb,
        "],\"ring\":{\"active\":%s,\"capacity\":%llu,\"runs_kept\":%llu,"
        "\"runs_in_progress\":%llu,\"runs_evicted\":%llu,"
        "\"sample_runs\":%llu,\"runs_sampled_out\":%llu,"
        "\"pinned_bytes\":%llu,\"pinned_chunks_refused\":%llu}",
        v->active ? "true" : "false", (unsigned long long)v->capacity,
        (unsigned long long)v->kept, (unsigned long long)v->running,
        (unsigned long long)v->evicted, (unsigned long long)v->sample_rate,
        (unsigned long long)v->sampled_out, (unsigned long long)v->pinned_bytes,
        (unsigned long long)v->pinned_dropped);
    if (c->enable && c->keep_bytes > 0)
        stageprof__tail_json(&sb, &w->view, stageprof__g.base_mono_ns, w->tail);
    stageprof__sb_addf(&sb,
                       "},\n\"time_base\":{\"unix_ns\":%llu,"
                       "\"monotonic_ns\":%llu},\n\"traceEvents\":[\n",
                       (unsigned long long)stageprof__g.base_real_ns,
                       (unsigned long long)stageprof__g.base_mono_ns);
    if (sb.oom)
        w->oom = 1;
    else
        out_add(&w->out, sb.buf, sb.len);
    stageprof__sb_fini(&sb);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int has_u64(const uint64_t *v, size_t n, uint64_t x)
{
    return n > 0 && bsearch(&x, v, n, sizeof *v, cmp_u64) != NULL;
}

/*
 * Runs ended without a begin in this file or an earlier one are misuse;
 * runs begun and not ended carry over to the next file. Returns the count
 * of unmatched ends; fills @open (owned) with the runs still open.
 */
static uint64_t match_runs(struct writer *w, uint64_t **open, size_t *nopen)
{
    struct u64vec all = {0};
    for (size_t i = 0; i < stageprof__g.nopen_runs; i++)
        vec_push(w, &all, stageprof__g.open_runs[i]);
    for (size_t i = 0; i < w->run_begins.n; i++)
        vec_push(w, &all, w->run_begins.v[i]);
    if (all.n)
        qsort(all.v, all.n, sizeof *all.v, cmp_u64);
    if (w->run_ends.n)
        qsort(w->run_ends.v, w->run_ends.n, sizeof *w->run_ends.v, cmp_u64);
    uint64_t bad = 0;
    for (size_t i = 0; i < w->run_ends.n; i++)
        if (!has_u64(all.v, all.n, w->run_ends.v[i]))
            bad++;
    size_t k = 0;
    for (size_t i = 0; i < all.n; i++)
        if (!has_u64(w->run_ends.v, w->run_ends.n, all.v[i]))
            all.v[k++] = all.v[i];
    *open = all.v;
    *nopen = k;
    return bad;
}

static void trailer(struct writer *w, const struct counts *t,
                    uint64_t run_end_bad, uint64_t dropped_reported,
                    size_t runs_open)
{
    uint64_t new_drops = t->dropped - dropped_reported;
    int complete = new_drops == 0 && w->open_spans == 0 && !w->oom;
    char ovh[160];
    stageprof__overhead_json(ovh, sizeof ovh, w->out.events);
    char buf[1024];
    int n = snprintf(
        buf, sizeof buf,
        "\n],\n\"stageprof_summary\":{\"complete\":%s,\"events_written\":%llu,"
        "\"events_dropped\":%llu,\"events_dropped_total\":%llu,"
        "\"open_spans\":%llu,\"open_runs\":%zu,\"spans_cut\":%llu,"
        "\"strings_truncated\":%llu,"
        "\"misuse\":{\"span_end_other_thread\":%llu,"
        "\"span_end_without_begin\":%llu,\"span_closed_by_parent\":%llu,"
        "\"span_too_deep\":%llu,\"arg_after_close\":%llu,"
        "\"run_end_without_begin\":%llu},%s}}\n",
        complete ? "true" : "false", (unsigned long long)w->out.events,
        (unsigned long long)new_drops, (unsigned long long)t->dropped,
        (unsigned long long)w->open_spans, runs_open,
        (unsigned long long)w->spans_cut, (unsigned long long)t->truncated,
        (unsigned long long)t->end_other, (unsigned long long)t->end_twice,
        (unsigned long long)t->unclosed, (unsigned long long)t->depth,
        (unsigned long long)t->arg, (unsigned long long)run_end_bad, ovh);
    out_add(&w->out, buf, (size_t)n);
}

/* Take a consistent view of @tb: its chunks and committed lengths. */
static void snapshot_thread(struct tbuf *tb, struct snap *s)
{
    memset(s, 0, sizeof *s);
    s->tb = tb;
    pthread_mutex_lock(&tb->lock);
    s->tid = tb->tid;
    s->seq = tb->seq;
    memcpy(s->name, tb->name, sizeof s->name);
    s->has_sort = tb->has_sort;
    s->sort_index = tb->sort_index;
    pthread_mutex_unlock(&tb->lock);
}

/* The committed bytes of every chunk, frozen under the lock. */
struct frozen {
    struct chunk *c;
    size_t from, to;
    uint64_t last_ticks;  /* when sealed; UINT64_MAX: current */
    uint64_t first_ticks; /* the previous one's seal (0: unknown) */
};

static int freeze(struct tbuf *tb, struct frozen **outp, size_t *np)
{
    size_t n = 0, cap = 16;
    struct frozen *v = stageprof__malloc(cap * sizeof *v);
    if (v == NULL)
        return -1;
    pthread_mutex_lock(&tb->lock);
    for (struct chunk *c = tb->head; c != NULL; c = c->next) {
        if (n == cap) {
            struct frozen *nv = stageprof__malloc(2 * cap * sizeof *nv);
            if (nv == NULL) {
                pthread_mutex_unlock(&tb->lock);
                stageprof__free(v);
                return -1;
            }
            memcpy(nv, v, n * sizeof *v);
            stageprof__free(v);
            v = nv;
            cap *= 2;
        }
        v[n].c = c;
        v[n].from = c->read;
        v[n].to = LOAD_ACQUIRE(&c->used);
        v[n].last_ticks = c->last_ticks;
        v[n].first_ticks = n > 0 ? v[n - 1].last_ticks : 0;
        n++;
    }
    pthread_mutex_unlock(&tb->lock);
    *outp = v;
    *np = n;
    return 0;
}

int stageprof__writer_write(struct sink *sink, int flags)
{
    return stageprof__writer_write_filtered(sink, flags, NULL);
}

static int discard_write(void *ud, const void *data, size_t len)
{
    (void)ud;
    (void)data;
    (void)len;
    return 0;
}

int stageprof__sb_sink_write(void *ud, const void *data, size_t len)
{
    struct sb_sink *s = ud;
    if (s->max > 0 && len > s->max - s->sb.len)
        return STAGEPROF_ENOMEM;
    stageprof__sb_add(&s->sb, data, len);
    return s->sb.oom ? STAGEPROF_ENOMEM : 0;
}

int stageprof__writer_discard(void)
{
    struct sink s = {discard_write, NULL, NULL};
    return stageprof__writer_write(&s, 0);
}

int stageprof__writer_write_filtered(struct sink *sink, int flags,
                                     struct write_filter *filt)
{
    int final = (flags & WRITE_FINAL) != 0;
    /* Kept runs still queued are written before a write consumes them. */
    if (!(flags & WRITE_KEEP))
        stageprof__tail_drain();
    struct writer *w = stageprof__calloc(1, sizeof *w);
    if (w == NULL)
        return STAGEPROF_ENOMEM;
    w->filt = filt;
    w->frag = filt != NULL && filt->only_run != 0;
    /* Whole traces end with the kept runs (not a window, nor a category
     * selection: fragments are text, their categories are not known). */
    w->tail = filt == NULL || (!w->frag && filt->to_ns == 0 &&
                               filt->from_ns == 0 && filt->cats == NULL);
    w->out.sink = sink;
    w->out.first = !w->frag; /* a fragment follows other events */
    w->out.buf = stageprof__malloc(OUT_CAP);
    stageprof__sb_init(&w->frags.text, stageprof__malloc, stageprof__free);
    if (w->out.buf == NULL) {
        stageprof__free(w);
        return STAGEPROF_ENOMEM;
    }
    w->fixed_ids = fixed_ids_flag;
    w->pid = w->fixed_ids ? 1 : (int)getpid();
    stageprof__clock_map_open(&w->clock);

    /*
     * Under g.lock only long enough to copy what the pass needs: the header
     * (it reads the configuration) and the thread list. Recording threads
     * take g.lock when they first record, so the pass itself runs without
     * it. Only the writer (wlock held) removes threads, so the copied
     * pointers stay valid.
     */
    /* From here until the view is closed no chunk is evicted (a fragment:
     * none its run's time overlaps). */
    if (stageprof__ring_view_open_from(&w->view,
                                       w->frag ? filt->only_from : 0) != 0)
        w->oom = 1;
    pthread_mutex_lock(&stageprof__g.lock);
    w->base = stageprof__g.base_mono_ns;
    if (!w->frag)
        header(w, final);
    char pname[256];
    if (stageprof__g.proc_name[0])
        snprintf(pname, sizeof pname, "%s", stageprof__g.proc_name);
    else if (stageprof__g.conf.process_name)
        snprintf(pname, sizeof pname, "%s", stageprof__g.conf.process_name);
    else
        stageprof__sysinfo_program(pname, sizeof pname);
    size_t nthreads = 0;
    for (struct tbuf *tb = stageprof__g.threads; tb; tb = tb->next)
        nthreads++;
    struct tbuf **list = stageprof__calloc(nthreads + 1, sizeof *list);
    if (list != NULL) {
        size_t i = 0;
        for (struct tbuf *tb = stageprof__g.threads; tb; tb = tb->next)
            list[i++] = tb;
    }
    pthread_mutex_unlock(&stageprof__g.lock);
    if (!w->frag)
        emit_meta(w, "process_name", 0, "name", pname, 0);

    struct snap *snaps = stageprof__calloc(nthreads + 1, sizeof *snaps);
    struct frozen **fz = stageprof__calloc(nthreads + 1, sizeof *fz);
    size_t *nfz = stageprof__calloc(nthreads + 1, sizeof *nfz);
    if (list == NULL || snaps == NULL || fz == NULL || nfz == NULL)
        w->oom = 1;

    /* Oldest thread first: the registry is newest first. */
    for (size_t ti = 0; ti < nthreads && !w->oom; ti++) {
        struct tbuf *tb = list[nthreads - 1 - ti];
        struct snap *s = &snaps[ti];
        snapshot_thread(tb, s);
        int tid = w->fixed_ids ? (int)s->seq : s->tid;
        if (!w->frag)
            thread_meta(w, s, tid);
        if (freeze(tb, &fz[ti], &nfz[ti]) != 0) {
            w->oom = 1;
            break;
        }
        /* Spans left open by the previous file are at the stack bottom. */
        w->depth = 0;
        w->nargs = 0;
        for (unsigned i = 0; i < tb->wr_open && i < STAGEPROF_MAX_DEPTH; i++) {
            struct pend *e = &w->stack[w->depth++];
            memset(e, 0, sizeof *e);
            e->args_head = e->args_tail = -1;
            e->carried = 1;
            e->run = tb->wr_open_run[i];
            e->skip = tb->wr_open_skip[i];
        }
        uint64_t run = tb->wr_run;
        uint64_t events0 = w->out.events;
        for (size_t k = 0; k < nfz[ti]; k++) {
            struct frozen *f = &fz[ti][k];
            /* A fragment reads only chunks its run's time overlaps. Those
             * sealed before may be freed meanwhile: not even looked at. */
            if (w->frag && f->last_ticks < filt->only_from)
                continue;
            if (w->frag && f->first_ticks > filt->only_to)
                break;
            if (f->from == 0) {
                run = f->c->run_at_start;
                align_stack(w, f->c->depth_at_start);
            }
            w->keep = keeps(w, run);
            replay(w, s, tid, f->c->data + f->from, f->c->data + f->to, &run);
        }
        flush_instant(w, tid);
        /* A fragment names only the threads the run ran on (after their
         * events: a thread gone since is named nowhere else). */
        if (w->frag && w->out.events > events0)
            thread_meta(w, s, tid);
        /* Spans still open: written as "B", ended by "E" in a later file. */
        for (int i = 0; i < w->depth && !w->frag; i++) {
            struct pend *e = &w->stack[i];
            if (e->carried || e->skip)
                continue;
            /* Left out by a filter: its end must not appear later either. */
            if (emit_span(w, tid, e, "{\"ph\":\"B\",", 0))
                w->open_spans++;
            else
                e->skip = 1;
        }
        s->new_open = (unsigned)w->depth;
        s->new_run = run;
        for (int i = 0; i < w->depth && i < (int)STAGEPROF_MAX_DEPTH; i++) {
            s->new_open_run[i] = w->stack[i].run;
            s->new_open_skip[i] = (unsigned char)w->stack[i].skip;
        }
    }

    struct counts t;
    uint64_t *open = NULL;
    size_t nopen = 0;
    uint64_t run_end_bad = match_runs(w, &open, &nopen);
    /* With the ring, ends of runs it never saw begin are counted there
     * (the writer only sees the runs still kept). */
    if (w->view.active)
        run_end_bad = 0;
    pthread_mutex_lock(&stageprof__g.lock);
    stageprof__tbuf_counts(&t);
    uint64_t misuse_run_end = stageprof__g.misuse_run_end;
    uint64_t dropped_reported = stageprof__g.dropped_reported;
    pthread_mutex_unlock(&stageprof__g.lock);
    if (w->view.active)
        misuse_run_end = w->view.unmatched_ends;
    if (filt != NULL) {
        filt->dropped_new = t.dropped - dropped_reported;
        filt->dropped_total = t.dropped;
        filt->runs_kept = w->view.kept;
        filt->runs_running = w->view.running;
        filt->ring_active = w->view.active;
    }
    if (w->tail && !w->oom)
        append_tail(w);
    if (filt != NULL)
        filt->lines = w->out.events;
    if (!w->frag)
        trailer(w, &t, misuse_run_end + run_end_bad, dropped_reported, nopen);
    out_flush(&w->out);
    int rc = w->out.err ? w->out.err : (w->oom ? STAGEPROF_ENOMEM : 0);
    if (rc == 0 && sink->finish != NULL)
        rc = sink->finish(sink->ud);

    pthread_mutex_lock(&stageprof__g.lock);
    if (rc == 0 && w->frag) {
        ; /* part of later traces, which count it */
    } else if (rc == 0 && (flags & WRITE_KEEP)) {
        /* A snapshot: the events stay for later traces. */
        stageprof__g.events_written += w->out.events;
        stageprof__g.traces_written++;
    } else if (rc == 0) {
        /* Everything reached the sink: consume it. */
        for (size_t ti = 0; ti < nthreads; ti++) {
            struct tbuf *tb = snaps[ti].tb;
            pthread_mutex_lock(&tb->lock);
            for (size_t k = 0; k < nfz[ti]; k++)
                fz[ti][k].c->read = fz[ti][k].to;
            tb->wr_open = snaps[ti].new_open;
            memcpy(tb->wr_open_run, snaps[ti].new_open_run,
                   sizeof tb->wr_open_run);
            memcpy(tb->wr_open_skip, snaps[ti].new_open_skip,
                   sizeof tb->wr_open_skip);
            tb->wr_run = snaps[ti].new_run;
            pthread_mutex_unlock(&tb->lock);
        }
        stageprof__free(stageprof__g.open_runs);
        stageprof__g.open_runs = open;
        stageprof__g.nopen_runs = nopen;
        open = NULL;
        stageprof__g.misuse_run_end += run_end_bad;
        stageprof__g.dropped_reported = t.dropped;
        stageprof__g.events_written += w->out.events;
        stageprof__g.traces_written++;
        stageprof__tail_forget(); /* the kept runs are in this trace */
    } else {
        stageprof__g.write_errors++;
    }
    pthread_mutex_unlock(&stageprof__g.lock);
    stageprof__ring_view_close(&w->view);
    if (rc == 0)
        stageprof__tbuf_reclaim();

    for (size_t i = 0; i < nthreads && fz; i++)
        stageprof__free(fz[i]);
    stageprof__free(list);
    stageprof__free(fz);
    stageprof__free(nfz);
    stageprof__free(snaps);
    stageprof__free(open);
    stageprof__free(w->run_begins.v);
    stageprof__free(w->run_ends.v);
    stageprof__free(w->args);
    stageprof__free(w->frags.slots);
    stageprof__sb_fini(&w->frags.text);
    stageprof__clock_map_close(&w->clock);
    stageprof__free(w->out.buf);
    stageprof__free(w);
    return rc;
}
