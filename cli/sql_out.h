/*
 * sql_out.h - run SQL statements and print the rows they return, for
 * `stageprof sql`: an aligned table for people, CSV (RFC 4180) or JSON
 * for programs (docs/cli/stageprof-sql.md gives the exact forms).
 *
 * Values are printed from their lengths, so a NUL inside a string is
 * neither lost nor an end. The table shows control bytes and invalid
 * UTF-8 as escapes and cuts long values; CSV writes the bytes as they
 * are; JSON escapes them (invalid UTF-8 becomes U+FFFD).
 */
#ifndef STAGEPROF_SQL_OUT_H
#define STAGEPROF_SQL_OUT_H

#include <sqlite3.h>
#include <stdio.h>

#include "cli.h"

struct sql_out {
    FILE *f;
    enum cli_format format; /* text, csv or json */
    int results;            /* results printed so far (for separators) */
};

/*
 * sql_run - run each statement of @sql on @db in turn and print the rows
 * of those that return columns. Stops at the first error: -1 with SQLite's
 * message in @err (statements before it have run and printed); 0 when all
 * ran. @err must hold 512 bytes or more.
 */
int sql_run(sqlite3 *db, const char *sql, struct sql_out *o, char *err,
            size_t errlen);

#endif
