/*
 * history_db.c - the SQLite side of `stageprof history` (history_db.h):
 * opening and checking the file, the schema and its migrations, adding an
 * entry in one transaction, and the queries behind list, show and check.
 *
 * Every failure is turned into one sentence naming the file and what to
 * do about it (locked, read-only, not a database, damaged, newer schema);
 * SQLite's own words are kept in parentheses where they add something.
 */
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "history_db.h"
#include "stageprof/version.h"
#include "stats.h"

const char *const history_stat_names[HISTORY_NSTAT] = {"mean", "p50", "p95",
                                                       "p99"};

/* ------------------------------------------------------------------------ */
/* Schema                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * migrations[v] takes a file from schema version v to v + 1; version 0 is
 * a file without tables. A new version appends its step here and bumps
 * HISTORY_SCHEMA_VERSION; the steps run inside the adding transaction, so
 * a failed migration leaves the file as it was.
 */
static const char schema_v1[] =
    "CREATE TABLE entries ("
    " id INTEGER PRIMARY KEY,"
    " added_at TEXT NOT NULL,"
    " stageprof_version TEXT NOT NULL);"
    "CREATE TABLE labels ("
    " entry_id INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,"
    " key TEXT NOT NULL,"
    " value TEXT NOT NULL,"
    " PRIMARY KEY (entry_id, key)) WITHOUT ROWID;"
    "CREATE INDEX labels_by_key ON labels(key, value);"
    "CREATE TABLE traces ("
    " id INTEGER PRIMARY KEY,"
    " entry_id INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,"
    " seq INTEGER NOT NULL,"
    " path TEXT NOT NULL,"
    " producer TEXT NOT NULL,"
    " events INTEGER NOT NULL,"
    " truncated INTEGER NOT NULL,"
    " complete INTEGER,"
    " dropped INTEGER,"
    " host TEXT, cpu_model TEXT, cores INTEGER, kernel TEXT, arch TEXT,"
    " version TEXT, clock TEXT, config TEXT, command_line TEXT,"
    " runs INTEGER NOT NULL,"
    " run_mean_ns REAL, run_p50_ns REAL, run_p95_ns REAL, run_p99_ns REAL,"
    " throughput REAL,"
    " UNIQUE (entry_id, seq));"
    "CREATE TABLE stages ("
    " trace_id INTEGER NOT NULL REFERENCES traces(id) ON DELETE CASCADE,"
    " name TEXT NOT NULL,"
    " category TEXT NOT NULL,"
    " async INTEGER NOT NULL,"
    " count INTEGER NOT NULL,"
    " total_ns INTEGER NOT NULL,"
    " mean_ns REAL, p50_ns REAL, p95_ns REAL, p99_ns REAL,"
    " PRIMARY KEY (trace_id, name, category)) WITHOUT ROWID;"
    "CREATE INDEX stages_by_name ON stages(name, category);";

/* Version 2: each trace's digest, so that adding the same file twice is
 * noticed (older rows have none). */
static const char schema_v2[] =
    "ALTER TABLE traces ADD COLUMN digest TEXT;"
    "CREATE INDEX traces_by_digest ON traces(digest);";

static const char *const migrations[HISTORY_SCHEMA_VERSION] = {schema_v1,
                                                               schema_v2};

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/* The sentence for SQLite result @rc; @writing: the failure came while
 * changing the file. */
static void why(const struct history *h, int rc, int writing, char *err,
                size_t errlen)
{
    const char *msg =
        h->db != NULL ? sqlite3_errmsg(h->db) : sqlite3_errstr(rc);
    const char *p = h->path;
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        snprintf(err, errlen,
                 "%s is locked by another process: gave up after waiting "
                 "%d ms (see --busy-timeout)",
                 p, h->busy_ms);
        break;
    case SQLITE_NOTADB:
        snprintf(err, errlen,
                 "%s is not an SQLite database (or its first page is "
                 "damaged)",
                 p);
        break;
    case SQLITE_CORRUPT:
        snprintf(err, errlen, "%s is damaged (%s)", p, msg);
        break;
    case SQLITE_READONLY:
        if (rc == SQLITE_READONLY_ROLLBACK || rc == SQLITE_READONLY_RECOVERY) {
            snprintf(err, errlen,
                     "%s holds a transaction left unfinished by a process "
                     "that stopped, and this process cannot write the file "
                     "to roll it back: run any command on it as a user who "
                     "can write it",
                     p);
            break;
        }
        snprintf(err, errlen,
                 "%s cannot be written: the file or its directory is "
                 "read-only (%s)",
                 p, msg);
        break;
    case SQLITE_CANTOPEN:
        if (writing)
            snprintf(err, errlen,
                     "cannot write %s: SQLite could not create its journal "
                     "beside it (is the directory writable?)",
                     p);
        else
            snprintf(err, errlen, "cannot open %s (%s)", p, msg);
        break;
    case SQLITE_FULL:
        snprintf(err, errlen, "cannot write %s: the disk is full", p);
        break;
    default:
        snprintf(err, errlen, "%s: %s", p, msg);
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static int prepare(struct history *h, const char *sql, sqlite3_stmt **st,
                   char *err, size_t errlen)
{
    int rc = sqlite3_prepare_v2(h->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) {
        why(h, rc, 0, err, errlen);
        *st = NULL;
        return -1;
    }
    return 0;
}

static char *dup_text(sqlite3_stmt *st, int col, size_t *len)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    size_t n = (size_t)sqlite3_column_bytes(st, col);
    char *s = malloc(n + 1);
    if (s == NULL)
        return NULL;
    if (t != NULL)
        memcpy(s, t, n);
    else
        n = 0;
    s[n] = '\0';
    if (len != NULL)
        *len = n;
    return s;
}

static int oom(char *err, size_t errlen)
{
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Opening                                                                  */
/* ------------------------------------------------------------------------ */

struct header {
    long long version, app, tables;
};

/*
 * The three facts in one statement, so under one read lock: read one by
 * one, another process could create the schema in between, and the file
 * would look like version 0 with tables (someone else's database).
 */
static int read_header(struct history *h, struct header *hd, char *err,
                       size_t errlen)
{
    sqlite3_stmt *st;
    if (prepare(h,
                "SELECT (SELECT user_version FROM pragma_user_version),"
                " (SELECT application_id FROM pragma_application_id),"
                " (SELECT count(*) FROM sqlite_master)",
                &st, err, errlen) != 0)
        return -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        hd->version = sqlite3_column_int64(st, 0);
        hd->app = sqlite3_column_int64(st, 1);
        hd->tables = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) {
        why(h, rc, 0, err, errlen);
        return -1;
    }
    return 0;
}

/*
 * Whether a file with header @hd can be used: 0 yes, 1 it has no schema
 * yet (an empty database), -1 no (reason in @err).
 */
static int check_header(const struct history *h, const struct header *hd,
                        char *err, size_t errlen)
{
    if (hd->version > HISTORY_SCHEMA_VERSION) {
        snprintf(err, errlen,
                 "%s has history schema version %lld, newer than this "
                 "stageprof knows (%d): use a newer stageprof; the file "
                 "was left as it is",
                 h->path, hd->version, HISTORY_SCHEMA_VERSION);
        return -1;
    }
    if (hd->version == 0 && hd->tables == 0)
        return 1;
    if (hd->version == 0 || hd->app != HISTORY_APP_ID) {
        snprintf(err, errlen,
                 "%s is an SQLite database but not a stageprof history "
                 "(application id %#llx, schema version %lld): the file "
                 "was left as it is",
                 h->path, (unsigned long long)hd->app, hd->version);
        return -1;
    }
    return 0;
}

int history_open(struct history *h, const char *path, int write, int busy_ms,
                 char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    h->path = path;
    h->busy_ms = busy_ms;
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT && !write) {
            snprintf(err, errlen,
                     "no history at %s (`stageprof history add` creates it)",
                     path);
            return 1;
        }
        if (errno != ENOENT) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            return -1;
        }
    } else if (S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is a directory, not a history file", path);
        return -1;
    }
    /* Readers open read-write too (SQLite falls back to read-only when
     * the file is): a transaction left behind by a writer that was
     * killed must be rolled back before the file can be read. */
    int flags = write ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                      : SQLITE_OPEN_READWRITE;
    int rc = sqlite3_open_v2(path, &h->db, flags, NULL);
    if (rc != SQLITE_OK) {
        if ((rc & 0xff) == SQLITE_CANTOPEN && write)
            snprintf(err, errlen,
                     "cannot open or create %s (is its directory there and "
                     "writable?)",
                     path);
        else
            why(h, rc, 0, err, errlen);
        return -1;
    }
    sqlite3_extended_result_codes(h->db, 1);
    sqlite3_busy_timeout(h->db, busy_ms);
    if (write && sqlite3_db_readonly(h->db, "main") == 1) {
        snprintf(err, errlen, "%s is read-only (reading it works)", path);
        return -1;
    }
    struct header hd;
    if (read_header(h, &hd, err, errlen) != 0)
        return -1;
    int ok = check_header(h, &hd, err, errlen);
    if (ok < 0)
        return -1;
    if (ok == 1 && !write) {
        snprintf(err, errlen, "the history at %s is empty", path);
        return 1;
    }
    /* An older schema is read as it is (the reads use no column added
     * since version 1); the next add migrates it. */
    return 0;
}

void history_close(struct history *h)
{
    if (h->db != NULL)
        sqlite3_close(h->db);
    h->db = NULL;
}

/* ------------------------------------------------------------------------ */
/* Adding                                                                   */
/* ------------------------------------------------------------------------ */

static int exec(struct history *h, const char *sql, char *err, size_t errlen)
{
    int rc = sqlite3_exec(h->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        why(h, rc, 1, err, errlen);
        return -1;
    }
    return 0;
}

/* Bring a file of version @from (0: no tables) to the current schema. */
static int migrate(struct history *h, long long from, char *err, size_t errlen)
{
    for (long long v = from; v < HISTORY_SCHEMA_VERSION; v++)
        if (exec(h, migrations[v], err, errlen) != 0)
            return -1;
    char sql[96];
    snprintf(sql, sizeof sql,
             "PRAGMA user_version = %d; "
             "PRAGMA application_id = %d",
             HISTORY_SCHEMA_VERSION, HISTORY_APP_ID);
    return exec(h, sql, err, errlen);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s, size_t len)
{
    if (s == NULL || len == 0)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_text(st, i, s, (int)len, SQLITE_TRANSIENT);
}

static void bind_str(sqlite3_stmt *st, int i, const char *s)
{
    bind_text(st, i, s, s != NULL ? strlen(s) : 0);
}

static void bind_real(sqlite3_stmt *st, int i, double v)
{
    if (isfinite(v))
        sqlite3_bind_double(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

/* Step an INSERT once; 0 or -1. */
static int step_done(struct history *h, sqlite3_stmt *st, char *err,
                     size_t errlen)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        why(h, rc, 1, err, errlen);
        return -1;
    }
    return 0;
}

static int insert_trace(struct history *h, sqlite3_stmt *ins_trace,
                        sqlite3_stmt *ins_stage, long long entry, int seq,
                        const struct history_trace *t, char *err, size_t errlen)
{
    const struct tl_result *r = &t->res;
    const struct tl_meta *m = &r->meta;
    sqlite3_stmt *st = ins_trace;
    int i = 1;
    sqlite3_bind_int64(st, i++, entry);
    sqlite3_bind_int(st, i++, seq);
    bind_str(st, i++, t->path);
    bind_str(st, i++, r->producer != NULL ? r->producer : "chrome");
    sqlite3_bind_int64(st, i++, (sqlite3_int64)r->events);
    sqlite3_bind_int(st, i++, r->truncated != 0);
    if (r->complete >= 0)
        sqlite3_bind_int(st, i, r->complete);
    i++;
    if (r->dropped >= 0 && r->has_summary)
        sqlite3_bind_int64(st, i, r->dropped);
    i++;
    const char *text[] = {m->host,   m->cpu_model, NULL,
                          m->kernel, m->arch,      m->version,
                          m->clock,  m->config,    m->command_line};
    for (size_t k = 0; k < sizeof text / sizeof *text; k++, i++) {
        if (!m->present)
            continue;
        if (k == 2) {
            if (m->cores >= 0)
                sqlite3_bind_int64(st, i, m->cores);
        } else {
            bind_str(st, i, text[k]);
        }
    }
    sqlite3_bind_int64(st, i++, (sqlite3_int64)t->runs);
    for (int k = 0; k < HISTORY_NSTAT; k++, i++)
        if (t->runs > 0)
            bind_real(st, i, t->run_ns[k]);
    if (t->throughput > 0)
        bind_real(st, i, t->throughput);
    i++;
    if (t->digest[0] != '\0')
        bind_str(st, i, t->digest);
    if (step_done(h, st, err, errlen) != 0)
        return -1;
    long long trace = sqlite3_last_insert_rowid(h->db);
    for (size_t s = 0; s < t->nstages; s++) {
        const struct history_stage *g = &t->stages[s];
        st = ins_stage;
        i = 1;
        sqlite3_bind_int64(st, i++, trace);
        sqlite3_bind_text(st, i++, g->name, (int)g->name_len, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, i++, g->cat, (int)g->cat_len, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, i++, g->async != 0);
        sqlite3_bind_int64(st, i++, (sqlite3_int64)g->count);
        sqlite3_bind_int64(st, i++, g->total_ns);
        for (int k = 0; k < HISTORY_NSTAT; k++)
            bind_real(st, i++, g->stat_ns[k]);
        if (step_done(h, st, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* The earliest entry holding a trace with @t's digest, into t->again. */
static int find_again(struct history *h, sqlite3_stmt *st,
                      struct history_trace *t, char *err, size_t errlen)
{
    t->again = 0;
    if (t->digest[0] == '\0')
        return 0;
    bind_str(st, 1, t->digest);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        t->again = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        why(h, rc, 1, err, errlen);
        return -1;
    }
    return 0;
}

static int add_rows(struct history *h, const struct history_label *labels,
                    size_t nlabels, struct history_trace *traces,
                    size_t ntraces, const char *added_at, long long *id,
                    char *err, size_t errlen)
{
    sqlite3_stmt *again = NULL;
    if (prepare(h, "SELECT min(entry_id) FROM traces WHERE digest = ?", &again,
                err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < ntraces; i++)
        if (find_again(h, again, &traces[i], err, errlen) != 0) {
            sqlite3_finalize(again);
            return -1;
        }
    sqlite3_finalize(again);
    sqlite3_stmt *ins_entry = NULL, *ins_label = NULL, *ins_trace = NULL,
                 *ins_stage = NULL;
    int rc = -1;
    if (prepare(h,
                "INSERT INTO entries (added_at, stageprof_version) "
                "VALUES (?, ?)",
                &ins_entry, err, errlen) != 0 ||
        prepare(h, "INSERT INTO labels (entry_id, key, value) VALUES (?,?,?)",
                &ins_label, err, errlen) != 0 ||
        prepare(h,
                "INSERT INTO traces (entry_id, seq, path, producer, events,"
                " truncated, complete, dropped, host, cpu_model, cores,"
                " kernel, arch, version, clock, config, command_line, runs,"
                " run_mean_ns, run_p50_ns, run_p95_ns, run_p99_ns,"
                " throughput, digest) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
                "?,?,?,?,?,?,?,?,?)",
                &ins_trace, err, errlen) != 0 ||
        prepare(h,
                "INSERT OR IGNORE INTO stages (trace_id, name, category,"
                " async, count, total_ns, mean_ns, p50_ns, p95_ns, p99_ns)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                &ins_stage, err, errlen) != 0)
        goto out;
    bind_str(ins_entry, 1, added_at);
    bind_str(ins_entry, 2, STAGEPROF_VERSION_STRING);
    if (step_done(h, ins_entry, err, errlen) != 0)
        goto out;
    *id = sqlite3_last_insert_rowid(h->db);
    for (size_t i = 0; i < nlabels; i++) {
        sqlite3_bind_int64(ins_label, 1, *id);
        bind_str(ins_label, 2, labels[i].key);
        sqlite3_bind_text(ins_label, 3, labels[i].value, -1, SQLITE_TRANSIENT);
        if (step_done(h, ins_label, err, errlen) != 0)
            goto out;
    }
    for (size_t i = 0; i < ntraces; i++)
        if (insert_trace(h, ins_trace, ins_stage, *id, (int)i, &traces[i], err,
                         errlen) != 0)
            goto out;
    rc = 0;
out:
    sqlite3_finalize(ins_entry);
    sqlite3_finalize(ins_label);
    sqlite3_finalize(ins_trace);
    sqlite3_finalize(ins_stage);
    return rc;
}

int history_add(struct history *h, const struct history_label *labels,
                size_t nlabels, struct history_trace *traces, size_t ntraces,
                const char *added_at, long long *id, char *err, size_t errlen)
{
    /* IMMEDIATE: take the write lock now, waiting for other writers,
     * rather than upgrade a read lock later (which fails at once when two
     * processes both hold one). The header is read again under the lock:
     * another process may have created the schema meanwhile. */
    if (exec(h, "BEGIN IMMEDIATE", err, errlen) != 0)
        return -1;
    struct header hd;
    int ok = read_header(h, &hd, err, errlen) != 0
                 ? -1
                 : check_header(h, &hd, err, errlen);
    if (ok == 1)
        ok = migrate(h, 0, err, errlen);
    else if (ok == 0 && hd.version < HISTORY_SCHEMA_VERSION)
        ok = migrate(h, hd.version, err, errlen);
    if (ok == 0)
        ok = add_rows(h, labels, nlabels, traces, ntraces, added_at, id, err,
                      errlen);
    if (ok == 0) {
        int rc = sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            return 0;
        why(h, rc, 1, err, errlen);
    }
    /* The transaction may already be gone (SQLite rolls back by itself on
     * some errors); a second rollback then fails harmlessly. */
    sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */
/* ------------------------------------------------------------------------ */

static int step_error(struct history *h, int rc, char *err, size_t errlen)
{
    why(h, rc, 0, err, errlen);
    return -1;
}

static int read_labels(struct history *h, sqlite3_stmt *st,
                       struct history_entry *e, char *err, size_t errlen)
{
    sqlite3_bind_int64(st, 1, e->id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct history_label *l =
            realloc(e->labels, (e->nlabels + 1) * sizeof *e->labels);
        if (l == NULL)
            return oom(err, errlen);
        e->labels = l;
        l = &e->labels[e->nlabels];
        l->key = dup_text(st, 0, NULL);
        l->value = dup_text(st, 1, NULL);
        e->nlabels++;
        if (l->key == NULL || l->value == NULL)
            return oom(err, errlen);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : step_error(h, rc, err, errlen);
}

int history_entries(struct history *h, const struct history_label *filter,
                    size_t nfilter, size_t last, struct history_entry **out,
                    size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    /* One EXISTS per label asked for: entries carrying all of them. */
    size_t cap = 400 + nfilter * 100;
    char *sql = malloc(cap);
    if (sql == NULL)
        return oom(err, errlen);
    size_t at = (size_t)snprintf(
        sql, cap,
        "SELECT e.id, e.added_at, e.stageprof_version,"
        " (SELECT count(*) FROM traces t WHERE t.entry_id = e.id),"
        " (SELECT coalesce(sum(t.runs), 0) FROM traces t"
        " WHERE t.entry_id = e.id) FROM entries e WHERE 1");
    for (size_t i = 0; i < nfilter; i++)
        at += (size_t)snprintf(sql + at, cap - at,
                               " AND EXISTS (SELECT 1 FROM labels l WHERE"
                               " l.entry_id = e.id AND l.key = ? AND"
                               " l.value = ?)");
    snprintf(sql + at, cap - at, " ORDER BY e.id DESC LIMIT ?");
    sqlite3_stmt *st = NULL, *lst = NULL;
    int rc = prepare(h, sql, &st, err, errlen);
    free(sql);
    if (rc != 0)
        return -1;
    if (prepare(h,
                "SELECT key, value FROM labels WHERE entry_id = ? "
                "ORDER BY key",
                &lst, err, errlen) != 0) {
        sqlite3_finalize(st);
        return -1;
    }
    int p = 1;
    for (size_t i = 0; i < nfilter; i++) {
        bind_str(st, p++, filter[i].key);
        sqlite3_bind_text(st, p++, filter[i].value, -1, SQLITE_TRANSIENT);
    }
    sqlite3_bind_int64(st, p, last > 0 ? (sqlite3_int64)last : -1);
    struct history_entry *e = NULL;
    size_t ne = 0;
    int ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct history_entry *g = realloc(e, (ne + 1) * sizeof *e);
        if (g == NULL) {
            ret = oom(err, errlen);
            break;
        }
        e = g;
        g = &e[ne++];
        memset(g, 0, sizeof *g);
        g->id = sqlite3_column_int64(st, 0);
        g->added_at = dup_text(st, 1, NULL);
        g->version = dup_text(st, 2, NULL);
        g->ntraces = (size_t)sqlite3_column_int64(st, 3);
        g->runs = (uint64_t)sqlite3_column_int64(st, 4);
        if (g->added_at == NULL || g->version == NULL) {
            ret = oom(err, errlen);
            break;
        }
        if ((ret = read_labels(h, lst, g, err, errlen)) != 0)
            break;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = step_error(h, rc, err, errlen);
    sqlite3_finalize(st);
    sqlite3_finalize(lst);
    if (ret != 0) {
        history_entries_free(e, ne);
        return -1;
    }
    /* Newest first from the query (for LIMIT); oldest first out. */
    for (size_t i = 0; i < ne / 2; i++) {
        struct history_entry t = e[i];
        e[i] = e[ne - 1 - i];
        e[ne - 1 - i] = t;
    }
    *out = e;
    *n = ne;
    return 0;
}

void history_entries_free(struct history_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < e[i].nlabels; k++) {
            free(e[i].labels[k].key);
            free(e[i].labels[k].value);
        }
        free(e[i].labels);
        free(e[i].added_at);
        free(e[i].version);
    }
    free(e);
}

/* The first column of every row of @st as owned strings. */
static int collect_strings(struct history *h, sqlite3_stmt *st, char ***out,
                           size_t *n, char *err, size_t errlen)
{
    char **v = NULL;
    size_t nv = 0;
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char **g = realloc(v, (nv + 1) * sizeof *v);
        if (g == NULL || (g[nv] = dup_text(st, 0, NULL)) == NULL) {
            if (g != NULL)
                v = g;
            ret = oom(err, errlen);
            break;
        }
        v = g;
        nv++;
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = step_error(h, rc, err, errlen);
    sqlite3_finalize(st);
    if (ret != 0) {
        history_strings_free(v, nv);
        return -1;
    }
    *out = v;
    *n = nv;
    return 0;
}

int history_categories(struct history *h, const char *name, char ***cats,
                       size_t *nc, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (prepare(h,
                "SELECT DISTINCT category FROM stages WHERE name = ? "
                "ORDER BY category",
                &st, err, errlen) != 0)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
    return collect_strings(h, st, cats, nc, err, errlen);
}

int history_stage_names(struct history *h, size_t max, char ***names, size_t *n,
                        char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (prepare(h, "SELECT DISTINCT name FROM stages ORDER BY name LIMIT ?",
                &st, err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)max);
    return collect_strings(h, st, names, n, err, errlen);
}

void history_strings_free(char **s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i]);
    free(s);
}

int history_entry_stages(struct history *h, long long id,
                         struct history_stage_id **out, size_t *n, char *err,
                         size_t errlen)
{
    sqlite3_stmt *st;
    if (prepare(h,
                "SELECT DISTINCT s.name, s.category FROM stages s JOIN traces"
                " t ON t.id = s.trace_id WHERE t.entry_id = ?"
                " ORDER BY s.name, s.category",
                &st, err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    struct history_stage_id *v = NULL;
    size_t nv = 0;
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct history_stage_id *g = realloc(v, (nv + 1) * sizeof *v);
        if (g == NULL) {
            ret = oom(err, errlen);
            break;
        }
        v = g;
        g = &v[nv++];
        g->name = dup_text(st, 0, &g->name_len);
        g->cat = dup_text(st, 1, &g->cat_len);
        if (g->name == NULL || g->cat == NULL) {
            ret = oom(err, errlen);
            break;
        }
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = step_error(h, rc, err, errlen);
    sqlite3_finalize(st);
    if (ret != 0) {
        history_stage_ids_free(v, nv);
        return -1;
    }
    *out = v;
    *n = nv;
    return 0;
}

void history_stage_ids_free(struct history_stage_id *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].name);
        free(s[i].cat);
    }
    free(s);
}

int history_value(struct history *h, long long id,
                  const struct history_key *key, enum history_stat stat,
                  double *v, uint64_t *count, char *err, size_t errlen)
{
    /* The column name comes from a fixed list, never from the user. */
    char sql[320];
    const char *col = history_stat_names[stat];
    if (key->runs)
        snprintf(sql, sizeof sql,
                 "SELECT run_%s_ns, runs FROM traces WHERE entry_id = ?"
                 " AND runs > 0 AND run_%s_ns IS NOT NULL",
                 col, col);
    else
        snprintf(sql, sizeof sql,
                 "SELECT s.%s_ns, s.count FROM stages s JOIN traces t"
                 " ON t.id = s.trace_id WHERE t.entry_id = ? AND s.name = ?"
                 " AND s.category = ? AND s.%s_ns IS NOT NULL",
                 col, col);
    sqlite3_stmt *st;
    if (prepare(h, sql, &st, err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    if (!key->runs) {
        sqlite3_bind_text(st, 2, key->name, (int)key->name_len,
                          SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, key->cat, (int)key->cat_len, SQLITE_TRANSIENT);
    }
    double *x = NULL;
    size_t nx = 0;
    uint64_t c = 0;
    int rc, ret = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        double *g = realloc(x, (nx + 1) * sizeof *x);
        if (g == NULL) {
            ret = oom(err, errlen);
            break;
        }
        x = g;
        x[nx++] = sqlite3_column_double(st, 0);
        c += (uint64_t)sqlite3_column_int64(st, 1);
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = step_error(h, rc, err, errlen);
    sqlite3_finalize(st);
    if (ret == 0 && nx > 0) {
        if (stats_median(x, nx, NULL, v) != 0)
            ret = oom(err, errlen);
        else
            ret = 1;
        *count = c;
    }
    free(x);
    return ret;
}

int history_trace_rows(struct history *h, long long id, history_row_cb cb,
                       void *arg, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (prepare(h,
                "SELECT t.*, (SELECT count(*) FROM stages s WHERE"
                " s.trace_id = t.id) FROM traces t WHERE t.entry_id = ?"
                " ORDER BY t.seq",
                &st, err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int ncol = sqlite3_column_count(st) - 1;
    const char **names = calloc((size_t)ncol + 1, sizeof *names);
    const char **values = calloc((size_t)ncol + 1, sizeof *values);
    int *is_text = calloc((size_t)ncol + 1, sizeof *is_text);
    /* Reals in full (SQLite's own text form keeps 15 digits). */
    char(*num)[32] = calloc((size_t)ncol + 1, sizeof *num);
    int rc = SQLITE_DONE, ret = 0;
    if (names == NULL || values == NULL || is_text == NULL || num == NULL)
        ret = oom(err, errlen);
    for (int c = 0; ret == 0 && c < ncol; c++)
        names[c] = sqlite3_column_name(st, c);
    while (ret == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int c = 0; c < ncol; c++) {
            int type = sqlite3_column_type(st, c);
            is_text[c] = type == SQLITE_TEXT;
            if (type == SQLITE_FLOAT) {
                snprintf(num[c], sizeof num[c], "%.17g",
                         sqlite3_column_double(st, c));
                values[c] = num[c];
            } else {
                values[c] = type == SQLITE_NULL
                                ? NULL
                                : (const char *)sqlite3_column_text(st, c);
            }
        }
        cb(arg, ncol, names, values, is_text, sqlite3_column_int64(st, ncol));
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = step_error(h, rc, err, errlen);
    sqlite3_finalize(st);
    free(names);
    free(values);
    free(is_text);
    free(num);
    return ret;
}
