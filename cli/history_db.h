/*
 * history_db.h - the run history of `stageprof history`: one SQLite file
 * of entries, each holding the summaries of one or more traces with the
 * labels they were added with.
 *
 * Schema version 2 (PRAGMA user_version, PRAGMA application_id
 * HISTORY_APP_ID); docs/cli/stageprof-history.md lists the columns:
 *
 *     entries (id, added_at, stageprof_version)       one per `add`
 *       labels (entry_id, key, value)                 its k=v labels
 *       traces (id, entry_id, seq, path, metadata, runs figures,
 *               digest: the file's size and CRC-32, version 2)
 *         stages (trace_id, name, category, figures)  one per stage
 *
 * Writers take the lock with BEGIN IMMEDIATE and wait for one another
 * through SQLite's busy timeout; the file stays in rollback-journal mode
 * so that a read-only file or directory can still be read. A file whose
 * schema is newer than HISTORY_SCHEMA_VERSION, or which holds tables of
 * something else, is refused before anything is written. Called by
 * cmd_history.c only.
 */
#ifndef STAGEPROF_CLI_HISTORY_DB_H
#define STAGEPROF_CLI_HISTORY_DB_H

#include <stddef.h>
#include <stdint.h>

#include "trace_load.h"

#define HISTORY_SCHEMA_VERSION 2
#define HISTORY_APP_ID 0x73706831 /* "sph1" */

/* The statistics stored per stage and per trace's runs, in this order. */
enum history_stat { HISTORY_MEAN, HISTORY_P50, HISTORY_P95, HISTORY_P99 };
#define HISTORY_NSTAT 4
extern const char *const history_stat_names[HISTORY_NSTAT];

struct sqlite3;

struct history {
    struct sqlite3 *db;
    const char *path; /* borrowed */
    int busy_ms;      /* how long a locked file is waited for */
};

/* A k=v label (strings borrowed or owned, as the holder says). */
struct history_label {
    char *key, *value;
};

/* One stage of one trace, as `add` stores it. */
struct history_stage {
    const char *name, *cat; /* may hold NULs inside */
    size_t name_len, cat_len;
    int async;
    uint64_t count;
    int64_t total_ns;
    double stat_ns[HISTORY_NSTAT];
};

/* One trace, as `add` stores it. */
struct history_trace {
    const char *path;
    char digest[48];      /* "SIZE:CRC32" of the file's bytes; "" none */
    long long again;      /* out: an entry that holds the same file, 0 */
    struct tl_result res; /* producer, events, completeness, header */
    uint64_t runs;
    double run_ns[HISTORY_NSTAT]; /* when runs > 0 */
    double throughput;            /* runs per second; 0 unknown */
    struct history_stage *stages;
    size_t nstages;
};

/* An entry read back, with its labels sorted by key (all owned). */
struct history_entry {
    long long id;
    char *added_at, *version;
    struct history_label *labels;
    size_t nlabels;
    size_t ntraces;
    uint64_t runs; /* all its traces */
};

/* What a series follows: a stage (name, category), or the whole runs. */
struct history_key {
    int runs; /* 1: the runs; name and cat unused */
    const char *name, *cat;
    size_t name_len, cat_len;
};

/* A stage name and category read back (owned, may hold NULs). */
struct history_stage_id {
    char *name, *cat;
    size_t name_len, cat_len;
};

/*
 * history_open - open @path for reading (@write 0) or adding (@write 1),
 * waiting up to @busy_ms for other processes' locks.
 * Reading never creates the file (a missing file returns 1 with the
 * reason in @err) but rolls back a transaction a killed writer left. Adding
 * creates it (not its directory). Both check the schema version and the
 * application id first. Returns 0, 1 (no history: missing or empty file;
 * reading only), or -1 with the reason in @err. history_close() in every case.
 */
int history_open(struct history *h, const char *path, int write, int busy_ms,
                 char *err, size_t errlen);
void history_close(struct history *h);

/*
 * history_add - store one entry: @labels (validated by the caller) and
 * @ntraces traces, in one transaction (BEGIN IMMEDIATE), creating or
 * migrating the schema inside the same transaction. @added_at is the
 * UTC time "YYYY-MM-DDTHH:MM:SSZ". The new entry's id goes to @id; a
 * trace whose digest an earlier entry holds gets that entry in .again
 * (it is stored all the same).
 * Returns 0, or -1 with the reason in @err; then nothing was written.
 */
int history_add(struct history *h, const struct history_label *labels,
                size_t nlabels, struct history_trace *traces, size_t ntraces,
                const char *added_at, long long *id, char *err, size_t errlen);

/*
 * history_entries - the entries carrying every label of @filter, oldest
 * first; the last @last of them when @last > 0. Free with
 * history_entries_free(). Returns 0 or -1 with the reason in @err.
 */
int history_entries(struct history *h, const struct history_label *filter,
                    size_t nfilter, size_t last, struct history_entry **out,
                    size_t *n, char *err, size_t errlen);
void history_entries_free(struct history_entry *e, size_t n);

/*
 * history_categories - the categories stage @name has in the history
 * (@nc of them, owned strings in @cats). Returns 0 or -1.
 */
int history_categories(struct history *h, const char *name, char ***cats,
                       size_t *nc, char *err, size_t errlen);
/* history_stage_names - up to @max stage names (distinct, sorted, owned),
 * for a message naming the stages there are. Returns 0 or -1. */
int history_stage_names(struct history *h, size_t max, char ***names, size_t *n,
                        char *err, size_t errlen);
/* history_entry_stages - the stages of entry @id (owned). Returns 0 or -1. */
int history_entry_stages(struct history *h, long long id,
                         struct history_stage_id **out, size_t *n, char *err,
                         size_t errlen);
void history_stage_ids_free(struct history_stage_id *s, size_t n);
void history_strings_free(char **s, size_t n);

/*
 * history_value - statistic @stat of series @key in entry @id: the median
 * over the entry's traces that have it (type 7), and the spans or runs
 * they counted into @count. Returns 1 with the value in @v, 0 when no
 * trace of the entry has it, or -1 with the reason in @err.
 */
int history_value(struct history *h, long long id,
                  const struct history_key *key, enum history_stat stat,
                  double *v, uint64_t *count, char *err, size_t errlen);

/*
 * history_trace_rows - call @cb for each trace of entry @id, in the
 * order given to `add`, with the column names and values of its row
 * (NULL for SQL NULL; numbers as text) and its stage count. Returns 0 or
 * -1 with the reason in @err.
 */
typedef void (*history_row_cb)(void *arg, int ncol, const char *const *names,
                               const char *const *values, const int *is_text,
                               long long nstages);
int history_trace_rows(struct history *h, long long id, history_row_cb cb,
                       void *arg, char *err, size_t errlen);

#endif /* STAGEPROF_CLI_HISTORY_DB_H */
