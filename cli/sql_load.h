/*
 * sql_load.h - a Chrome trace loaded into SQLite tables, for `stageprof
 * sql` (schema in docs/cli/stageprof-sql.md).
 *
 * The trace is read once as a stream (trace_load.h). Counters and
 * instants go into their tables as they are read; slices, async slices
 * and flows are kept in memory until the end of the file, because their
 * pairs (B/E, b/e, s/f) and their nesting are only known then. Every row
 * goes in inside one transaction through prepared statements reused for
 * each row; the indexes are built after the rows.
 */
#ifndef STAGEPROF_SQL_LOAD_H
#define STAGEPROF_SQL_LOAD_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "trace_load.h"

/* What the load met that the tables do not show on their own. */
struct sql_load_result {
    struct tl_result trace; /* the reader's answer */
    uint64_t slices, async_slices, instants, counters, flows, runs, threads;
    /* events left out, counted */
    uint64_t no_ts, no_dur, bad_dur, no_ph, open_b, orphan_e, open_async,
        orphan_async, orphan_flow, big_run;
    char unknown_phases[64]; /* each unknown phase letter once */
};

/*
 * sql_load - read the trace @path ("-": standard input) into @db, which
 * must be empty. Returns 0, or -1 with the reason in @err: the reader's
 * message ("<path>: byte N, line L, column C: ..."), SQLite's, or "out of
 * memory". On failure @db holds an unfinished transaction; close it.
 */
int sql_load(sqlite3 *db, const char *path, struct sql_load_result *res,
             char *err, size_t errlen);

#endif
