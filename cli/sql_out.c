/*
 * sql_out.c - run statements, print their rows. See sql_out.h.
 *
 * The table needs column widths before its first row: it holds up to
 * TEXT_SAMPLE rows to measure them, then prints those and streams the
 * rest in the same widths (a wider value later sticks out, it is not
 * cut further). CSV and JSON stream every row as it comes.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sql_out.h"
#include "util/json.h"
#include "util/strbuf.h"

#define TEXT_SAMPLE 1000 /* rows held to measure the columns */
#define TEXT_MAX 60      /* characters of a value shown in the table */

/* Values ------------------------------------------------------------------ */

/* A double in its shortest form that reads back exactly (15 to 17
 * significant digits); "Inf", "-Inf", "NaN" otherwise. */
static size_t fmt_real(char *out, double v)
{
    if (isnan(v) || isinf(v)) {
        const char *s = isnan(v) ? "NaN" : v > 0 ? "Inf" : "-Inf";
        memcpy(out, s, strlen(s) + 1);
        return strlen(s);
    }
    int n = 0;
    for (int digits = 15; digits <= 17; digits++) {
        n = snprintf(out, 32, "%.*g", digits, v);
        if (strtod(out, NULL) == v)
            break;
    }
    return (size_t)n;
}

static void add_hex(struct strbuf *sb, const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        char b[2] = {hex[p[i] >> 4], hex[p[i] & 15]};
        stageprof__sb_add(sb, b, 2);
    }
}

/*
 * Text made safe for a terminal into @sb, at most TEXT_MAX characters
 * (then "..."): control characters (C0, DEL, C1) and bytes that are not
 * UTF-8 become \xHH or \uHHHH. Returns the characters shown.
 */
static int add_safe(struct strbuf *sb, const unsigned char *p, size_t n)
{
    int width = 0;
    for (size_t i = 0; i < n;) {
        if (width == TEXT_MAX) {
            stageprof__sb_adds(sb, "...");
            return width + 3;
        }
        size_t k = stageprof__utf8_valid(p + i, n - i);
        char esc[8];
        if (k == 0 || (k == 1 && (p[i] < 0x20 || p[i] == 0x7f))) {
            snprintf(esc, sizeof esc, "\\x%02x", p[i]);
            stageprof__sb_adds(sb, esc);
            i++;
            width += 4;
        } else if (k == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0) {
            snprintf(esc, sizeof esc, "\\u%04x", p[i + 1]);
            stageprof__sb_adds(sb, esc);
            i += 2;
            width += 6;
        } else {
            stageprof__sb_add(sb, p + i, k);
            i += k;
            width++;
        }
        if (width > TEXT_MAX)
            width = TEXT_MAX; /* an escape may pass the limit: stop next */
    }
    return width;
}

/* Column @c of the current row as the table shows it; its width. */
static int text_value(struct strbuf *sb, sqlite3_stmt *st, int c)
{
    char b[40];
    size_t start = sb->len;
    switch (sqlite3_column_type(st, c)) {
    case SQLITE_NULL:
        stageprof__sb_adds(sb, "NULL");
        break;
    case SQLITE_INTEGER:
        stageprof__sb_add(sb, b,
                          stageprof__fmt_i64(b, sqlite3_column_int64(st, c)));
        break;
    case SQLITE_FLOAT:
        stageprof__sb_add(sb, b, fmt_real(b, sqlite3_column_double(st, c)));
        break;
    case SQLITE_BLOB: {
        const unsigned char *p = sqlite3_column_blob(st, c);
        size_t n = (size_t)sqlite3_column_bytes(st, c);
        stageprof__sb_adds(sb, "x'");
        add_hex(sb, p, n > TEXT_MAX / 2 ? TEXT_MAX / 2 : n);
        stageprof__sb_adds(sb, n > TEXT_MAX / 2 ? "...'" : "'");
        break;
    }
    default: {
        const unsigned char *p = sqlite3_column_text(st, c);
        return add_safe(sb, p ? p : (const unsigned char *)"",
                        (size_t)sqlite3_column_bytes(st, c));
    }
    }
    return (int)(sb->len - start);
}

/* Table ------------------------------------------------------------------- */

struct table {
    int ncol;
    int *width;             /* per column: the widest value held */
    unsigned char *numeric; /* per column: right-aligned (numbers held) */
    struct strbuf cells;    /* the held rows' values, one after another */
    size_t *off;            /* each held value's start in cells */
    int *cell_width;        /* and its width */
    size_t rows, cap;       /* rows held; room for cap values */
};

static void pad(FILE *f, int n)
{
    for (; n > 0; n--)
        fputc(' ', f);
}

/* Column @c's value @s (@w wide) in the table's layout. */
static void print_cell(FILE *f, const struct table *t, int c, const char *s,
                       size_t len, int w)
{
    if (c > 0)
        fputs("  ", f);
    if (t->numeric[c])
        pad(f, t->width[c] - w);
    fwrite(s, 1, len, f);
    if (!t->numeric[c] && c + 1 < t->ncol)
        pad(f, t->width[c] - w);
}

/* A column name as the table shows it; its width. */
static int text_name(struct strbuf *sb, sqlite3_stmt *st, int c)
{
    const char *name = sqlite3_column_name(st, c);
    stageprof__sb_reset(sb);
    return add_safe(sb, (const unsigned char *)(name ? name : ""),
                    name ? strlen(name) : 0);
}

static void print_header(FILE *f, sqlite3_stmt *st, const struct table *t,
                         struct strbuf *sb)
{
    for (int c = 0; c < t->ncol; c++) {
        int w = text_name(sb, st, c);
        print_cell(f, t, c, sb->buf ? sb->buf : "", sb->len, w);
    }
    fputc('\n', f);
    for (int c = 0; c < t->ncol; c++) {
        if (c > 0)
            fputs("  ", f);
        for (int i = 0; i < t->width[c]; i++)
            fputc('-', f);
    }
    fputc('\n', f);
}

/* Hold the current row; -1 out of memory. */
static int hold_row(struct table *t, sqlite3_stmt *st)
{
    size_t n = (t->rows + 1) * (size_t)t->ncol;
    if (n > t->cap) {
        size_t cap = t->cap ? 2 * t->cap : n;
        size_t *off = realloc(t->off, cap * sizeof *off);
        if (off != NULL)
            t->off = off;
        int *cw = realloc(t->cell_width, cap * sizeof *cw);
        if (cw != NULL)
            t->cell_width = cw;
        if (off == NULL || cw == NULL)
            return -1;
        t->cap = cap;
    }
    for (int c = 0; c < t->ncol; c++) {
        size_t i = t->rows * (size_t)t->ncol + (size_t)c;
        int type = sqlite3_column_type(st, c);
        t->off[i] = t->cells.len;
        t->cell_width[i] = text_value(&t->cells, st, c);
        if (t->cell_width[i] > t->width[c])
            t->width[c] = t->cell_width[i];
        if (type != SQLITE_NULL)
            t->numeric[c] &= type == SQLITE_INTEGER || type == SQLITE_FLOAT;
    }
    t->rows++;
    return t->cells.oom ? -1 : 0;
}

static void print_held(FILE *f, const struct table *t)
{
    size_t n = t->rows * (size_t)t->ncol;
    for (size_t r = 0; r < t->rows; r++) {
        for (int c = 0; c < t->ncol; c++) {
            size_t i = r * (size_t)t->ncol + (size_t)c;
            size_t end = i + 1 < n ? t->off[i + 1] : t->cells.len;
            print_cell(f, t, c, t->cells.buf + t->off[i], end - t->off[i],
                       t->cell_width[i]);
        }
        fputc('\n', f);
    }
}

static void table_free(struct table *t)
{
    stageprof__sb_fini(&t->cells);
    free(t->width);
    free(t->numeric);
    free(t->off);
    free(t->cell_width);
}

static int print_table(sqlite3_stmt *st, struct sql_out *o, int *rc)
{
    struct table t;
    struct strbuf sb;
    memset(&t, 0, sizeof t);
    t.ncol = sqlite3_column_count(st);
    t.width = calloc((size_t)t.ncol, sizeof *t.width);
    t.numeric = malloc((size_t)t.ncol);
    stageprof__sb_init(&t.cells, NULL, NULL);
    stageprof__sb_init(&sb, NULL, NULL);
    if (t.width == NULL || t.numeric == NULL) {
        table_free(&t);
        return -1;
    }
    for (int c = 0; c < t.ncol; c++) {
        t.width[c] = text_name(&sb, st, c);
        t.numeric[c] = 1;
    }
    int err = 0;
    while ((*rc = sqlite3_step(st)) == SQLITE_ROW && t.rows < TEXT_SAMPLE)
        if ((err = hold_row(&t, st)) != 0)
            break;
    /* A column of NULLs only is no number. */
    for (int c = 0; c < t.ncol; c++) {
        int any = 0;
        for (size_t r = 0; r < t.rows && !any; r++)
            any = t.cells.buf[t.off[r * (size_t)t.ncol + (size_t)c]] != 'N';
        t.numeric[c] &= any;
    }
    int failed = !err && *rc != SQLITE_ROW && *rc != SQLITE_DONE;
    if (failed && t.rows == 0) { /* nothing to show */
        stageprof__sb_fini(&sb);
        table_free(&t);
        return 0;
    }
    if (o->results++ > 0)
        fputc('\n', o->f);
    print_header(o->f, st, &t, &sb);
    print_held(o->f, &t);
    uint64_t rows = t.rows;
    /* The rest streams, in the widths of the rows held. */
    for (; !err && *rc == SQLITE_ROW; *rc = sqlite3_step(st)) {
        for (int c = 0; c < t.ncol; c++) {
            stageprof__sb_reset(&sb);
            int w = text_value(&sb, st, c);
            print_cell(o->f, &t, c, sb.buf ? sb.buf : "", sb.len, w);
        }
        fputc('\n', o->f);
        rows++;
        err = sb.oom ? -1 : 0;
    }
    if (*rc == SQLITE_DONE) /* the count of a whole result only */
        fprintf(o->f, "(%llu row%s)\n", (unsigned long long)rows,
                rows == 1 ? "" : "s");
    stageprof__sb_fini(&sb);
    table_free(&t);
    return err;
}

/* CSV and JSON ------------------------------------------------------------ */

/* RFC 4180: quoted when it holds a comma, a quote, a line break or any
 * other control byte, or is empty (an empty field is NULL). */
static void csv_text(FILE *f, const char *p, size_t n)
{
    int quote = n == 0;
    for (size_t i = 0; i < n && !quote; i++)
        quote = p[i] == ',' || p[i] == '"' || (unsigned char)p[i] < 0x20 ||
                p[i] == 0x7f;
    if (!quote) {
        fwrite(p, 1, n, f);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"')
            fputc('"', f);
        fputc(p[i], f);
    }
    fputc('"', f);
}

static void csv_value(FILE *f, sqlite3_stmt *st, int c, struct strbuf *sb)
{
    char b[40];
    switch (sqlite3_column_type(st, c)) {
    case SQLITE_NULL:
        break;
    case SQLITE_INTEGER:
        fwrite(b, 1, stageprof__fmt_i64(b, sqlite3_column_int64(st, c)), f);
        break;
    case SQLITE_FLOAT:
        fwrite(b, 1, fmt_real(b, sqlite3_column_double(st, c)), f);
        break;
    case SQLITE_BLOB:
        stageprof__sb_reset(sb);
        add_hex(sb, sqlite3_column_blob(st, c),
                (size_t)sqlite3_column_bytes(st, c));
        fwrite(sb->buf ? sb->buf : "", 1, sb->len, f);
        break;
    default: {
        const char *p = (const char *)sqlite3_column_text(st, c);
        csv_text(f, p ? p : "", (size_t)sqlite3_column_bytes(st, c));
    }
    }
}

static void json_value(struct strbuf *sb, sqlite3_stmt *st, int c)
{
    char b[40];
    switch (sqlite3_column_type(st, c)) {
    case SQLITE_NULL:
        stageprof__sb_adds(sb, "null");
        break;
    case SQLITE_INTEGER:
        stageprof__sb_add(sb, b,
                          stageprof__fmt_i64(b, sqlite3_column_int64(st, c)));
        break;
    case SQLITE_FLOAT: {
        double v = sqlite3_column_double(st, c);
        if (isnan(v) || isinf(v))
            stageprof__sb_adds(sb, "null");
        else
            stageprof__sb_add(sb, b, fmt_real(b, v));
        break;
    }
    case SQLITE_BLOB:
        stageprof__sb_adds(sb, "\"");
        add_hex(sb, sqlite3_column_blob(st, c),
                (size_t)sqlite3_column_bytes(st, c));
        stageprof__sb_adds(sb, "\"");
        break;
    default: {
        const char *p = (const char *)sqlite3_column_text(st, c);
        stageprof__json_str(sb, p ? p : "",
                            (size_t)sqlite3_column_bytes(st, c));
    }
    }
}

/* 1 when @key is among @keys[0..n) or another column's name. */
static int key_taken(sqlite3_stmt *st, int c, char **keys, int n,
                     const char *key, int renamed)
{
    for (int k = 0; k < n; k++)
        if (strcmp(keys[k], key) == 0)
            return 1;
    for (int k = 0; renamed && k < sqlite3_column_count(st); k++) {
        const char *other = sqlite3_column_name(st, k);
        if (k != c && other != NULL && strcmp(other, key) == 0)
            return 1;
    }
    return 0;
}

/*
 * The JSON keys of the columns: their names, but a name some column
 * before has already taken becomes the first of name_2, name_3, ... that
 * neither a key before nor a column's name is, so no key of an object
 * hides another. NULL out of memory; free each and the array.
 */
static char **json_keys(sqlite3_stmt *st)
{
    int ncol = sqlite3_column_count(st);
    char **keys = calloc((size_t)ncol + 1, sizeof *keys);
    for (int c = 0; keys != NULL && c < ncol; c++) {
        const char *name = sqlite3_column_name(st, c);
        size_t len = strlen(name ? name : "");
        char *key = malloc(len + 24);
        if (key == NULL) {
            for (int k = 0; k < c; k++)
                free(keys[k]);
            free(keys);
            return NULL;
        }
        memcpy(key, name ? name : "", len + 1);
        for (int n = 2; key_taken(st, c, keys, c, key, n > 2); n++)
            snprintf(key + len, 24, "_%d", n);
        keys[c] = key;
    }
    return keys;
}

static void csv_row(FILE *f, sqlite3_stmt *st, struct strbuf *sb)
{
    for (int c = 0; c < sqlite3_column_count(st); c++) {
        if (c > 0)
            fputc(',', f);
        csv_value(f, st, c, sb);
    }
    fputs("\r\n", f);
}

/* The row as a JSON object after @sep; @keys: each column's "key":. */
static void json_row(struct strbuf *sb, sqlite3_stmt *st, const char *sep,
                     const struct strbuf *keys, const size_t *at)
{
    stageprof__sb_reset(sb);
    stageprof__sb_adds(sb, sep);
    for (int c = 0; c < sqlite3_column_count(st); c++) {
        stageprof__sb_adds(sb, c > 0 ? "," : "{");
        stageprof__sb_add(sb, keys->buf + at[c], at[c + 1] - at[c]);
        json_value(sb, st, c);
    }
    stageprof__sb_adds(sb, "}");
}

/* CSV or JSON, a row at a time. Nothing is printed when the statement
 * fails before its first row. */
static int print_stream(sqlite3_stmt *st, struct sql_out *o, int *rc)
{
    int ncol = sqlite3_column_count(st), json = o->format == CLI_FORMAT_JSON;
    *rc = sqlite3_step(st);
    if (*rc != SQLITE_ROW && *rc != SQLITE_DONE)
        return 0;
    struct strbuf sb, keys;
    stageprof__sb_init(&sb, NULL, NULL);
    stageprof__sb_init(&keys, NULL, NULL);
    size_t *at = calloc((size_t)ncol + 1, sizeof *at);
    char **names = json ? json_keys(st) : NULL;
    int err = at == NULL || (json && names == NULL);
    if (!err && json) {
        for (int c = 0; c < ncol; c++) {
            at[c] = keys.len;
            stageprof__json_str(&keys, names[c], strlen(names[c]));
            stageprof__sb_adds(&keys, ":");
        }
        at[ncol] = keys.len;
        err = keys.oom;
        fputc('[', o->f);
    } else if (!err) {
        if (o->results > 0)
            fputs("\r\n", o->f);
        for (int c = 0; c < ncol; c++) {
            const char *name = sqlite3_column_name(st, c);
            if (c > 0)
                fputc(',', o->f);
            csv_text(o->f, name ? name : "", name ? strlen(name) : 0);
        }
        fputs("\r\n", o->f);
    }
    o->results++;
    for (uint64_t rows = 0; !err && *rc == SQLITE_ROW;
         rows++, *rc = sqlite3_step(st)) {
        if (json) {
            json_row(&sb, st, rows ? ",\n" : "\n", &keys, at);
            if (!(err = sb.oom))
                fwrite(sb.buf, 1, sb.len, o->f);
        } else {
            csv_row(o->f, st, &sb);
        }
    }
    if (json && !err)
        fputs(sb.len == 0 ? "]\n" : "\n]\n", o->f); /* no row: [] */
    stageprof__sb_fini(&sb);
    stageprof__sb_fini(&keys);
    for (int c = 0; names != NULL && c < ncol; c++)
        free(names[c]);
    free(names);
    free(at);
    return err ? -1 : 0;
}

/* Statements -------------------------------------------------------------- */

int sql_run(sqlite3 *db, const char *sql, struct sql_out *o, char *err,
            size_t errlen)
{
    const char *tail = sql;
    while (*tail != '\0') {
        sqlite3_stmt *st = NULL;
        const char *next;
        if (sqlite3_prepare_v2(db, tail, -1, &st, &next) != SQLITE_OK) {
            snprintf(err, errlen, "%s", sqlite3_errmsg(db));
            return -1;
        }
        tail = next;
        if (st == NULL) /* only a comment or white space */
            continue;
        int rc, bad = 0;
        if (sqlite3_column_count(st) == 0) {
            while ((rc = sqlite3_step(st)) == SQLITE_ROW)
                ;
        } else if (o->format == CLI_FORMAT_TEXT) {
            bad = print_table(st, o, &rc);
        } else {
            bad = print_stream(st, o, &rc);
        }
        if (bad) {
            snprintf(err, errlen, "out of memory");
            sqlite3_finalize(st);
            return -1;
        }
        if (rc != SQLITE_DONE) {
            snprintf(err, errlen, "%s", sqlite3_errmsg(db));
            sqlite3_finalize(st);
            return -1;
        }
        sqlite3_finalize(st);
    }
    return 0;
}
