/*
 * agg_impl.h - what agg.c and runs.c share inside the aggregation: the
 * string map, growing arrays, composite keys.
 */
#ifndef STAGEPROF_AGG_IMPL_H
#define STAGEPROF_AGG_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "trace_load.h"

#define NO_RUN UINT32_MAX
#define KEY_MAX (3 * (TL_MAX_STRING + 16)) /* a composite key's bytes */

struct strmap_entry {
    char *key;
    size_t len;
    uint64_t hash;
    size_t value; /* SIZE_MAX until the caller sets it */
};

struct strmap {
    struct strmap_entry *e;
    size_t cap, n;
};

struct strmap *strmap_new(void);
void strmap_free(struct strmap *m);
/* The entry for the key, made (value SIZE_MAX) when new; NULL on OOM. */
struct strmap_entry *strmap_get(struct strmap *m, const void *key, size_t len);

/* A run's work (runs.c): a slice of it, or a queue wait. */
struct run_item {
    int64_t start, end; /* ns */
    uint32_t run;       /* index in agg.runs */
    int32_t stage;      /* index in agg.stages; -1: a queue wait */
    int32_t queue;      /* index in agg.queues, when stage is -1 */
    int32_t parent;     /* the item it lies in, -1 none: while reading an
                           index in agg.items, once the runs are finished
                           an index among its run's items */
    uint32_t id;        /* its index in agg.items as it was added */
};

/*
 * @a + @b, held at INT64_MAX or INT64_MIN instead of overflowing: times
 * are bounded (trace_load.h), but a sum of many of them is not.
 */
static inline int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

/* qsort order of int64_t values, smallest first. */
int cmp_i64(const void *x, const void *y);
/*
 * numpy's linear percentile of @n sorted values: rank p (n - 1), between
 * the two closest. 0 for none.
 */
double pct_sorted(const int64_t *v, size_t n, double p);

/* A 64-bit hash of @n bytes. */
uint64_t hash_bytes(const void *p, size_t n);

/* Grow *@p (of *@cap elements of @size) to hold @n; 0 or -1. */
int grow(void *p, size_t *cap, size_t n, size_t size);
/* A NUL-terminated copy of @n bytes, or NULL. */
char *dup_bytes(const char *p, size_t n);
/* The parts with their lengths, one after the other, so no two keys
 * alias; the key's length, or 0 when it does not fit @cap. */
size_t make_key(char *buf, size_t cap, const struct tl_str *parts, int n);

#endif
