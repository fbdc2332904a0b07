/*
 * prom_text.h - a reader of the Prometheus text exposition format (0.0.4),
 * as /metrics endpoints serve it.
 *
 * The whole answer is parsed into families; each family holds its series
 * (one per label set), and a histogram's `_bucket`, `_sum` and `_count`
 * samples are grouped into the series they belong to (the labels without
 * `le`), buckets sorted by bound. Families and series keep the order they
 * first appear in.
 *
 * Hostile input is expected: a line that does not parse (garbage, a
 * missing value, a bad escape, a duplicate label, more than
 * PROM_MAX_LABELS labels, a value that is not a number) is skipped and
 * counted, never fatal. Memory grows with the text, nothing is recursive.
 */
#ifndef STAGEPROF_CLI_PROM_TEXT_H
#define STAGEPROF_CLI_PROM_TEXT_H

#include <stddef.h>

#define PROM_MAX_LABELS                                                        \
    64 /* more labels on one sample: the line is skipped                       \
        */

enum prom_type {
    PROM_UNTYPED = 0,
    PROM_COUNTER,
    PROM_GAUGE,
    PROM_HISTOGRAM,
    PROM_SUMMARY
};

struct prom_label {
    char *name;
    char *value; /* unescaped */
};

struct prom_bucket {
    double le;    /* upper bound, +Inf for the last */
    double count; /* cumulative, as served */
};

/* One label set of a family. */
struct prom_series {
    struct prom_label *labels; /* as served, `le` left out */
    size_t nlabels;
    char *key;    /* the labels in a canonical form: equal keys, same series */
    double value; /* the plain sample's value (counter, gauge, untyped) */
    int has_value;
    struct prom_bucket *buckets; /* histogram: sorted by le, unique */
    size_t nbuckets;
    size_t bcap;       /* private */
    double sum, count; /* histogram/summary _sum and _count */
    int has_sum, has_count;
};

struct prom_family {
    char *name;
    enum prom_type type; /* from # TYPE, else PROM_UNTYPED */
    struct prom_series *series;
    size_t nseries;
    size_t cap;  /* private */
    void *index; /* private: series by key */
};

struct prom_doc {
    struct prom_family *families;
    size_t nfamilies;
    size_t skipped;   /* lines that did not parse */
    size_t first_bad; /* line number of the first of them (1-based), or 0 */
    size_t cap;       /* private */
    void *index;      /* private: families by name */
};

/*
 * prom_text_parse - parse @len bytes of exposition text into @doc.
 * @text: need not be NUL-terminated; borrowed.
 * @doc: caller's storage, initialised here; release with prom_doc_fini().
 *
 * Returns 0, or -1 when memory ran out (@doc then holds what was parsed
 * so far and must still be finalised).
 */
int prom_text_parse(const char *text, size_t len, struct prom_doc *doc);

/* prom_doc_fini - free what @doc holds; a zeroed @doc is fine. */
void prom_doc_fini(struct prom_doc *doc);

/* The family called @name, or NULL. */
const struct prom_family *prom_doc_family(const struct prom_doc *doc,
                                          const char *name);

/* The series of @f whose key is @key, or NULL. */
const struct prom_series *prom_family_series(const struct prom_family *f,
                                             const char *key);

/* The value of label @name of @s, or NULL. */
const char *prom_series_label(const struct prom_series *s, const char *name);

/*
 * The value of the first series of family @name: its plain value, else its
 * _count. Returns 0 and sets *@v, or -1 when there is none.
 */
int prom_doc_scalar(const struct prom_doc *doc, const char *name, double *v);

#endif /* STAGEPROF_CLI_PROM_TEXT_H */
