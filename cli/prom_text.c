/*
 * prom_text.c - the Prometheus text exposition format (0.0.4), read into
 * families and series (see prom_text.h).
 *
 * One pass over the lines. A sample line is split into its name, labels
 * (escapes \\, \" and \n undone), value and optional timestamp; anything
 * else on the line makes it garbage, skipped and counted. The sample then
 * goes to its family: `x_bucket`, `x_sum` and `x_count` to the histogram
 * (or summary) `x` declared by `# TYPE`, `x_total` to the counter `x`,
 * anything else to the family of its own name. Within a family, the
 * labels (without `le`) in a canonical, length-prefixed form are the
 * series' key. Families and series are found through small open-addressed
 * hash tables, so a hostile answer with many series costs linear time.
 * Buckets are appended as they come and sorted once at the end (a later
 * duplicate bound replaces an earlier one).
 */
#include "prom_text.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hash tables: string keys borrowed from the items, values are indexes. */

struct slot {
    const char *key; /* NULL: empty */
    size_t idx;
};

struct table {
    struct slot *v;
    size_t cap, n; /* cap: a power of two */
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static struct slot *table_slot(struct table *t, const char *key)
{
    size_t mask = t->cap - 1;
    for (size_t i = (size_t)hash_str(key) & mask;; i = (i + 1) & mask)
        if (t->v[i].key == NULL || strcmp(t->v[i].key, key) == 0)
            return &t->v[i];
}

/* The index stored for @key, or (size_t)-1. */
static size_t table_get(const struct table *t, const char *key)
{
    if (t == NULL || t->cap == 0)
        return (size_t)-1;
    struct slot *s = table_slot((struct table *)t, key);
    return s->key ? s->idx : (size_t)-1;
}

/* Store @key (borrowed, not yet present) -> @idx; 0 or -1 out of memory. */
static int table_put(struct table *t, const char *key, size_t idx)
{
    if (2 * (t->n + 1) > t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        struct slot *v = calloc(cap, sizeof *v);
        if (v == NULL)
            return -1;
        struct table old = *t;
        t->v = v;
        t->cap = cap;
        for (size_t i = 0; i < old.cap; i++)
            if (old.v[i].key != NULL)
                *table_slot(t, old.v[i].key) = old.v[i];
        free(old.v);
    }
    struct slot *s = table_slot(t, key);
    s->key = key;
    s->idx = idx;
    t->n++;
    return 0;
}

static void table_free(void *p)
{
    struct table *t = p;
    if (t != NULL)
        free(t->v);
    free(t);
}

/* Lines ------------------------------------------------------------------ */

/* A sample line taken apart; strings point into the line or into @buf. */
struct sample {
    const char *name;
    size_t name_len;
    struct prom_label labels[PROM_MAX_LABELS];
    size_t nlabels;
    double value;
};

struct cursor {
    const char *s, *end;
};

static void skip_blanks(struct cursor *c)
{
    while (c->s < c->end && (*c->s == ' ' || *c->s == '\t'))
        c->s++;
}

static int is_name_start(int ch, int colon)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
           (colon && ch == ':');
}

static int is_name_char(int ch, int colon)
{
    return is_name_start(ch, colon) || (ch >= '0' && ch <= '9');
}

/* A metric (@colon) or label name at @c; its length, 0 when none. */
static size_t take_name(struct cursor *c, int colon)
{
    const char *start = c->s;
    if (c->s >= c->end || !is_name_start((unsigned char)*c->s, colon))
        return 0;
    while (c->s < c->end && is_name_char((unsigned char)*c->s, colon))
        c->s++;
    return (size_t)(c->s - start);
}

/* A blank-separated token; its length (0 at the end of the line). */
static size_t take_token(struct cursor *c, const char **tok)
{
    *tok = c->s;
    while (c->s < c->end && *c->s != ' ' && *c->s != '\t')
        c->s++;
    return (size_t)(c->s - *tok);
}

/* A float as Go's ParseFloat takes it (NaN, +Inf, -Inf included). */
static int parse_double(const char *tok, size_t len, double *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, tok, len);
    buf[len] = '\0';
    char *endp;
    double v = strtod(buf, &endp);
    if (*endp != '\0')
        return -1;
    *out = v;
    return 0;
}

static int parse_int(const char *tok, size_t len)
{
    size_t i = tok[0] == '-' || tok[0] == '+' ? 1 : 0;
    if (i == len || len > 20)
        return -1;
    for (; i < len; i++)
        if (tok[i] < '0' || tok[i] > '9')
            return -1;
    return 0;
}

static char *dup_mem(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static void free_labels(struct prom_label *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(l[i].name);
        free(l[i].value);
    }
}

/*
 * The labels between { and }, unescaped into new strings. 0, 1 when the
 * line is malformed, -1 out of memory.
 */
static int take_labels(struct cursor *c, struct sample *smp)
{
    c->s++; /* { */
    for (;;) {
        skip_blanks(c);
        if (c->s < c->end && *c->s == '}') {
            c->s++;
            return 0;
        }
        const char *name = c->s;
        size_t nlen = take_name(c, 0);
        if (nlen == 0 || smp->nlabels == PROM_MAX_LABELS)
            return 1;
        skip_blanks(c);
        if (c->s >= c->end || *c->s != '=')
            return 1;
        c->s++;
        skip_blanks(c);
        if (c->s >= c->end || *c->s != '"')
            return 1;
        c->s++;
        /* The unescaped value is never longer than the escaped one. */
        const char *q = c->s;
        while (q < c->end && *q != '"')
            q += *q == '\\' && q + 1 < c->end ? 2 : 1;
        if (q >= c->end)
            return 1;
        char *value = malloc((size_t)(q - c->s) + 1);
        if (value == NULL)
            return -1;
        size_t n = 0;
        for (; c->s < q; c->s++) {
            char ch = *c->s;
            if (ch == '\\') {
                ch = *++c->s;
                if (ch == 'n')
                    ch = '\n';
                else if (ch != '\\' && ch != '"')
                    ch = '\0'; /* an unknown escape: garbage */
            }
            if (ch == '\0') {
                free(value);
                return 1;
            }
            value[n++] = ch;
        }
        value[n] = '\0';
        c->s++; /* closing quote */
        for (size_t i = 0; i < smp->nlabels; i++)
            if (strlen(smp->labels[i].name) == nlen &&
                memcmp(smp->labels[i].name, name, nlen) == 0) {
                free(value);
                return 1; /* a label twice */
            }
        char *dname = dup_mem(name, nlen);
        if (dname == NULL) {
            free(value);
            return -1;
        }
        smp->labels[smp->nlabels].name = dname;
        smp->labels[smp->nlabels].value = value;
        smp->nlabels++;
        skip_blanks(c);
        if (c->s < c->end && *c->s == ',')
            c->s++;
        else if (c->s >= c->end || *c->s != '}')
            return 1;
    }
}

/* A sample line; 0, 1 malformed, -1 out of memory. Labels freed by caller. */
static int parse_sample(const char *s, const char *end, struct sample *smp)
{
    struct cursor c = {s, end};
    smp->nlabels = 0;
    skip_blanks(&c);
    smp->name = c.s;
    smp->name_len = take_name(&c, 1);
    if (smp->name_len == 0)
        return 1;
    skip_blanks(&c);
    if (c.s < c.end && *c.s == '{') {
        int rc = take_labels(&c, smp);
        if (rc != 0)
            return rc;
        skip_blanks(&c);
    } else if (c.s == smp->name + smp->name_len) {
        return 1; /* no blank between name and value */
    }
    const char *tok;
    size_t n = take_token(&c, &tok);
    if (parse_double(tok, n, &smp->value) != 0)
        return 1;
    skip_blanks(&c);
    n = take_token(&c, &tok);
    if (n != 0) {
        if (parse_int(tok, n) != 0)
            return 1;
        skip_blanks(&c);
        if (c.s != c.end)
            return 1;
    }
    return 0;
}

/* Families and series ----------------------------------------------------- */

static struct prom_family *family_get(struct prom_doc *doc, const char *name,
                                      size_t len, int create)
{
    char buf[256];
    char *key = len < sizeof buf ? buf : malloc(len + 1);
    if (key == NULL)
        return NULL;
    memcpy(key, name, len);
    key[len] = '\0';
    size_t i = table_get(doc->index, key);
    struct prom_family *f = NULL;
    if (i != (size_t)-1) {
        f = &doc->families[i];
    } else if (create) {
        if (doc->index == NULL)
            doc->index = calloc(1, sizeof(struct table));
        if (doc->nfamilies == doc->cap) {
            size_t cap = doc->cap ? 2 * doc->cap : 32;
            struct prom_family *v =
                realloc(doc->families, cap * sizeof *doc->families);
            if (v == NULL)
                goto out;
            doc->families = v;
            doc->cap = cap;
        }
        f = &doc->families[doc->nfamilies];
        memset(f, 0, sizeof *f);
        f->name = dup_mem(name, len);
        if (doc->index == NULL || f->name == NULL ||
            table_put(doc->index, f->name, doc->nfamilies) != 0) {
            free(f->name);
            f = NULL;
            goto out;
        }
        doc->nfamilies++;
    }
out:
    if (key != buf)
        free(key);
    return f;
}

static int label_cmp(const void *a, const void *b)
{
    const struct prom_label *x = *(const struct prom_label *const *)a;
    const struct prom_label *y = *(const struct prom_label *const *)b;
    return strcmp(x->name, y->name);
}

/* "<len>:<name>=<len>:<value>;" per label sorted by name, @skip left out. */
static char *make_key(const struct prom_label *l, size_t n, const char *skip)
{
    const struct prom_label *sorted[PROM_MAX_LABELS];
    size_t m = 0, size = 1;
    for (size_t i = 0; i < n; i++) {
        if (skip != NULL && strcmp(l[i].name, skip) == 0)
            continue;
        sorted[m++] = &l[i];
        size += strlen(l[i].name) + strlen(l[i].value) + 48;
    }
    qsort(sorted, m, sizeof *sorted, label_cmp);
    char *key = malloc(size);
    if (key == NULL)
        return NULL;
    size_t off = 0;
    key[0] = '\0';
    for (size_t i = 0; i < m; i++) {
        int k = snprintf(key + off, size - off, "%zu:%s=%zu:%s;",
                         strlen(sorted[i]->name), sorted[i]->name,
                         strlen(sorted[i]->value), sorted[i]->value);
        if (k < 0 || (size_t)k >= size - off)
            break;
        off += (size_t)k;
    }
    return key;
}

/*
 * The series of @f for the labels of @smp (without @skip), created when
 * new; the labels move into a new series. NULL out of memory.
 */
static struct prom_series *series_get(struct prom_family *f, struct sample *smp,
                                      const char *skip)
{
    char *key = make_key(smp->labels, smp->nlabels, skip);
    if (key == NULL)
        return NULL;
    size_t i = table_get(f->index, key);
    if (i != (size_t)-1) {
        free(key);
        return &f->series[i];
    }
    if (f->index == NULL &&
        (f->index = calloc(1, sizeof(struct table))) == NULL)
        goto fail;
    if (f->nseries == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 8;
        struct prom_series *v = realloc(f->series, cap * sizeof *f->series);
        if (v == NULL)
            goto fail;
        f->series = v;
        f->cap = cap;
    }
    struct prom_series *s = &f->series[f->nseries];
    memset(s, 0, sizeof *s);
    s->labels = malloc((smp->nlabels ? smp->nlabels : 1) * sizeof *s->labels);
    if (s->labels == NULL)
        goto fail;
    if (table_put(f->index, key, f->nseries) != 0) {
        free(s->labels);
        goto fail;
    }
    s->key = key;
    /* Move the labels (without @skip) into the series. */
    size_t m = 0;
    for (size_t k = 0; k < smp->nlabels; k++) {
        if (skip != NULL && strcmp(smp->labels[k].name, skip) == 0)
            continue;
        s->labels[m++] = smp->labels[k];
        smp->labels[k].name = smp->labels[k].value = NULL;
    }
    s->nlabels = m;
    s->value = NAN;
    f->nseries++;
    return s;
fail:
    free(key);
    return NULL;
}

static int ends_with(const char *s, size_t len, const char *suffix,
                     size_t *base)
{
    size_t n = strlen(suffix);
    if (len <= n || memcmp(s + len - n, suffix, n) != 0)
        return 0;
    *base = len - n;
    return 1;
}

/* The declared family @name[0..len) of type @a or @b, or NULL. */
static struct prom_family *typed(struct prom_doc *doc, const char *name,
                                 size_t len, enum prom_type a, enum prom_type b)
{
    struct prom_family *f = family_get(doc, name, len, 0);
    return f != NULL && (f->type == a || f->type == b) ? f : NULL;
}

/* File @smp under its family; 0, 1 rejected, -1 out of memory. */
static int add_sample(struct prom_doc *doc, struct sample *smp)
{
    size_t base;
    struct prom_family *f;
    const char *n = smp->name;
    size_t len = smp->name_len;

    if (ends_with(n, len, "_bucket", &base) &&
        (f = typed(doc, n, base, PROM_HISTOGRAM, PROM_HISTOGRAM)) != NULL) {
        const char *le = NULL;
        for (size_t i = 0; i < smp->nlabels; i++)
            if (strcmp(smp->labels[i].name, "le") == 0)
                le = smp->labels[i].value;
        double bound;
        if (le == NULL || parse_double(le, strlen(le), &bound) != 0 ||
            isnan(bound))
            return 1;
        struct prom_series *s = series_get(f, smp, "le");
        if (s == NULL)
            return -1;
        if (s->nbuckets == s->bcap) {
            size_t cap = s->bcap ? 2 * s->bcap : 16;
            struct prom_bucket *v = realloc(s->buckets, cap * sizeof *v);
            if (v == NULL)
                return -1;
            s->buckets = v;
            s->bcap = cap;
        }
        s->buckets[s->nbuckets].le = bound;
        s->buckets[s->nbuckets].count = smp->value;
        s->nbuckets++;
        return 0;
    }
    int is_sum = ends_with(n, len, "_sum", &base);
    if ((is_sum || ends_with(n, len, "_count", &base)) &&
        (f = typed(doc, n, base, PROM_HISTOGRAM, PROM_SUMMARY)) != NULL) {
        struct prom_series *s = series_get(f, smp, NULL);
        if (s == NULL)
            return -1;
        if (is_sum) {
            s->sum = smp->value;
            s->has_sum = 1;
        } else {
            s->count = smp->value;
            s->has_count = 1;
        }
        return 0;
    }
    if (!(ends_with(n, len, "_total", &base) &&
          (f = typed(doc, n, base, PROM_COUNTER, PROM_COUNTER)) != NULL)) {
        f = family_get(doc, n, len, 1);
        if (f == NULL)
            return -1;
    }
    struct prom_series *s = series_get(f, smp, NULL);
    if (s == NULL)
        return -1;
    s->value = smp->value;
    s->has_value = 1;
    return 0;
}

/* "# TYPE name type"; other comments are ignored. -1 out of memory. */
static int parse_comment(struct prom_doc *doc, const char *s, const char *end)
{
    struct cursor c = {s + 1, end};
    skip_blanks(&c);
    const char *tok;
    size_t n = take_token(&c, &tok);
    if (n != 4 || memcmp(tok, "TYPE", 4) != 0)
        return 0;
    skip_blanks(&c);
    const char *name = c.s;
    size_t nlen = take_name(&c, 1);
    if (nlen == 0)
        return 1;
    skip_blanks(&c);
    n = take_token(&c, &tok);
    static const char *const types[] = {"untyped", "counter", "gauge",
                                        "histogram", "summary"};
    enum prom_type type = PROM_UNTYPED;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strlen(types[i]) == n && memcmp(tok, types[i], n) == 0)
            type = (enum prom_type)i;
    struct prom_family *f = family_get(doc, name, nlen, 1);
    if (f == NULL)
        return -1;
    if (f->type == PROM_UNTYPED && f->nseries == 0)
        f->type = type;
    return 0;
}

/* Buckets by bound; a later duplicate wins. */
struct seq_bucket {
    struct prom_bucket b;
    size_t seq;
};

static int bucket_cmp(const void *a, const void *b)
{
    const struct seq_bucket *x = a, *y = b;
    if (x->b.le != y->b.le)
        return x->b.le < y->b.le ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int sort_buckets(struct prom_series *s)
{
    if (s->nbuckets < 2)
        return 0;
    struct seq_bucket *t = malloc(s->nbuckets * sizeof *t);
    if (t == NULL)
        return -1;
    for (size_t i = 0; i < s->nbuckets; i++) {
        t[i].b = s->buckets[i];
        t[i].seq = i;
    }
    qsort(t, s->nbuckets, sizeof *t, bucket_cmp);
    size_t m = 0;
    for (size_t i = 0; i < s->nbuckets; i++) {
        if (m > 0 && s->buckets[m - 1].le == t[i].b.le)
            m--;
        s->buckets[m++] = t[i].b;
    }
    s->nbuckets = m;
    free(t);
    return 0;
}

/* Public ------------------------------------------------------------------ */

int prom_text_parse(const char *text, size_t len, struct prom_doc *doc)
{
    memset(doc, 0, sizeof *doc);
    const char *p = text, *end = text + len;
    size_t line = 0;
    struct sample *smp = malloc(sizeof *smp);
    if (smp == NULL)
        return -1;
    int rc = 0;
    while (p < end && rc == 0) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line++;
        const char *e = le > p && le[-1] == '\r' ? le - 1 : le;
        struct cursor c = {p, e};
        skip_blanks(&c);
        int r = 0;
        if (c.s == e) {
            r = 0;
        } else if (*c.s == '#') {
            r = parse_comment(doc, c.s, e);
        } else {
            r = parse_sample(p, e, smp);
            if (r == 0)
                r = add_sample(doc, smp);
            free_labels(smp->labels, smp->nlabels);
        }
        if (r < 0) {
            rc = -1;
        } else if (r > 0) {
            if (doc->skipped++ == 0)
                doc->first_bad = line;
        }
        p = nl ? nl + 1 : end;
    }
    free(smp);
    for (size_t i = 0; i < doc->nfamilies; i++)
        for (size_t k = 0; k < doc->families[i].nseries; k++)
            if (sort_buckets(&doc->families[i].series[k]) != 0)
                rc = -1;
    return rc;
}

void prom_doc_fini(struct prom_doc *doc)
{
    for (size_t i = 0; i < doc->nfamilies; i++) {
        struct prom_family *f = &doc->families[i];
        for (size_t k = 0; k < f->nseries; k++) {
            struct prom_series *s = &f->series[k];
            free_labels(s->labels, s->nlabels);
            free(s->labels);
            free(s->key);
            free(s->buckets);
        }
        free(f->series);
        table_free(f->index);
        free(f->name);
    }
    free(doc->families);
    table_free(doc->index);
    memset(doc, 0, sizeof *doc);
}

const struct prom_family *prom_doc_family(const struct prom_doc *doc,
                                          const char *name)
{
    size_t i = table_get(doc->index, name);
    return i == (size_t)-1 ? NULL : &doc->families[i];
}

const struct prom_series *prom_family_series(const struct prom_family *f,
                                             const char *key)
{
    size_t i = table_get(f->index, key);
    return i == (size_t)-1 ? NULL : &f->series[i];
}

const char *prom_series_label(const struct prom_series *s, const char *name)
{
    for (size_t i = 0; i < s->nlabels; i++)
        if (strcmp(s->labels[i].name, name) == 0)
            return s->labels[i].value;
    return NULL;
}

int prom_doc_scalar(const struct prom_doc *doc, const char *name, double *v)
{
    const struct prom_family *f = prom_doc_family(doc, name);
    if (f == NULL || f->nseries == 0)
        return -1;
    const struct prom_series *s = &f->series[0];
    if (s->has_value)
        *v = s->value;
    else if (s->has_count)
        *v = s->count;
    else
        return -1;
    return 0;
}
