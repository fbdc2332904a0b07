/*
 * cmd_sql.c - `stageprof sql`: a trace in SQLite tables, queried.
 *
 *   stageprof sql [options] TRACE [QUERY]
 *
 * The trace is loaded (sql_load.c) into a temporary database, or with
 * --save into FILE: built as FILE.<pid>.tmp, synced and renamed over
 * FILE, so FILE is either the old database or the whole new one. Then
 * QUERY runs (sql_out.c); without QUERY, standard input gives the
 * statements: read to its end when it is not a terminal, else line by
 * line at a prompt (also with -i). Tables: docs/cli/stageprof-sql.md.
 *
 * Exit status: 0; 1 when the trace cannot be read, the database cannot be
 * written, or a statement fails (SQLite's message); 2 bad usage. At the
 * prompt a failing statement prints its message and the prompt goes on.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "sql_load.h"
#include "sql_out.h"

enum { OPT_FORMAT = CLI_OPT_COMMAND, OPT_SAVE };

struct sql_opts {
    enum cli_format format;
    const char *save; /* --save FILE, or NULL */
    int interactive;  /* -i */
    const char *trace, *query;
};

static void usage(FILE *f)
{
    fputs("usage: stageprof sql [options] TRACE [QUERY]\n"
          "\n"
          "Load a Chrome Trace Event Format file (plain or gzip, - for\n"
          "standard input) into SQLite tables and run QUERY on them: one\n"
          "or more SQL statements. Tables: slices, threads, processes,\n"
          "counters, flows, runs, args, async_slices, instants, metadata\n"
          "(docs/cli/stageprof-sql.md). Without QUERY the statements come\n"
          "from standard input, at a prompt when it is a terminal.\n"
          "\n"
          "Options:\n"
          "  --format=FORMAT  text (default: an aligned table), csv or json\n"
          "  --save=FILE      keep the database in FILE (replaced whole;\n"
          "                   a file that is not an SQLite database is\n"
          "                   never overwritten)\n"
          "  -i, --interactive\n"
          "                   the prompt even when standard input is not\n"
          "                   a terminal\n"
          "  -h, --help       show this help\n"
          "\n"
          "At the prompt: SQL ending with ';', .tables, .schema [TABLE],\n"
          ".format FORMAT, .help, .quit (or end of input).\n"
          "\n"
          "The global options (-v, -q, --color) are accepted as well.\n"
          "Exit status: 0 done, 1 the trace or the database failed or a\n"
          "statement failed, 2 bad usage.\n",
          f);
}

/* The database file being built, removed unless it was renamed. */
static char tmp_path[4096];
static volatile sig_atomic_t tmp_live;

static void remove_tmp(void)
{
    if (tmp_live)
        unlink(tmp_path);
    tmp_live = 0;
}

static void on_fatal_signal(int sig)
{
    if (tmp_live)
        unlink(tmp_path);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* @handler for the signals that end the command, unless ignored. */
static void catch_fatal(void (*handler)(int))
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            signal(sigs[i], handler);
    }
}

/* Database ---------------------------------------------------------------- */

static void pragmas(const struct cli_ctx *ctx, sqlite3 *db)
{
    /* Built once by one process: no rollback journal, no syncs (the
     * finished file is synced once before its rename). */
    static const char sql[] = "PRAGMA journal_mode=OFF;"
                              "PRAGMA synchronous=OFF;"
                              "PRAGMA locking_mode=EXCLUSIVE;"
                              "PRAGMA temp_store=MEMORY;"
                              "PRAGMA cache_size=-131072;";
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        cli_die(ctx, "%s", sqlite3_errmsg(db));
}

/* Exit 1 unless --save may replace @path: missing, empty or SQLite's. */
static void check_target(const struct cli_ctx *ctx, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT)
            cli_die(ctx, "--save: %s: %s", path, strerror(errno));
        return;
    }
    if (!S_ISREG(st.st_mode))
        cli_die(ctx, "--save: %s: not a regular file", path);
    if (st.st_size == 0)
        return;
    char head[16] = {0};
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        cli_die(ctx, "--save: %s: %s", path, strerror(errno));
    size_t n = fread(head, 1, sizeof head, f);
    fclose(f);
    if (n != sizeof head || memcmp(head, "SQLite format 3", 16) != 0)
        cli_die(ctx,
                "--save: %s exists and is not an SQLite database; not "
                "overwritten",
                path);
}

static sqlite3 *open_db(const struct cli_ctx *ctx, const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                        NULL) != SQLITE_OK)
        cli_die(ctx, "%s: %s", path[0] ? path : "temporary database",
                db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_extended_result_codes(db, 1);
    return db;
}

/* The temporary file for --save, made now so a bad path fails early. */
static void create_tmp(const struct cli_ctx *ctx, const char *save)
{
    int n =
        snprintf(tmp_path, sizeof tmp_path, "%s.%ld.tmp", save, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp_path)
        cli_die(ctx, "--save: file name too long");
    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0)
        cli_die(ctx, "--save: cannot create %s: %s", tmp_path, strerror(errno));
    close(fd);
    tmp_live = 1;
    atexit(remove_tmp);
    catch_fatal(on_fatal_signal);
}

/* Close the built database, sync it and rename it over @save. */
static void commit_tmp(const struct cli_ctx *ctx, sqlite3 *db, const char *save)
{
    if (sqlite3_close(db) != SQLITE_OK)
        cli_die(ctx, "%s: %s", tmp_path, sqlite3_errmsg(db));
    int fd = open(tmp_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        cli_die(ctx, "--save: %s: %s", tmp_path, strerror(errno));
    close(fd);
    if (rename(tmp_path, save) != 0)
        cli_die(ctx, "--save: cannot rename %s to %s: %s", tmp_path, save,
                strerror(errno));
    tmp_live = 0;
    catch_fatal(SIG_DFL);
    /* The rename itself lasts once the folder is synced. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", save);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        fsync(fd);
        close(fd);
    }
}

static void warn_load(const struct cli_ctx *ctx, const char *path,
                      const struct sql_load_result *r)
{
    if (r->trace.truncated)
        cli_warn(ctx,
                 "%s: the file ends in the middle of its events "
                 "(truncated); %llu events read",
                 path, (unsigned long long)r->trace.events);
    const struct {
        uint64_t n;
        const char *what;
    } counts[] = {
        {r->no_dur, "complete events (X) without a numeric dur skipped"},
        {r->bad_dur, "events with a negative duration skipped"},
        {r->no_ts, "events without a numeric ts skipped"},
        {r->no_ph, "events without a phase (\"ph\") skipped"},
        {r->open_b, "B events never ended (no matching E) skipped"},
        {r->orphan_e, "E events without a B skipped"},
        {r->open_async, "async spans begun but never ended skipped"},
        {r->orphan_async, "async ends without a begin skipped"},
        {r->orphan_flow, "flow steps or ends without a start"},
        {r->big_run, "run ids above 2^63-1 left out"},
    };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        if (counts[i].n > 0)
            cli_warn(ctx, "%llu %s", (unsigned long long)counts[i].n,
                     counts[i].what);
    if (r->unknown_phases[0] != '\0')
        cli_warn(ctx, "events of unknown phases skipped: %s",
                 r->unknown_phases);
}

/* Statements from standard input ------------------------------------------ */

static char *read_all(const struct cli_ctx *ctx, FILE *f)
{
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    for (size_t n;
         buf != NULL && (n = fread(buf + len, 1, cap - len - 1, f));) {
        len += n;
        if (cap - len - 1 == 0) {
            char *b = realloc(buf, cap *= 2);
            if (b == NULL)
                free(buf);
            buf = b;
        }
    }
    if (buf == NULL)
        cli_die(ctx, "out of memory");
    if (ferror(f))
        cli_die(ctx, "standard input: %s", strerror(errno));
    buf[len] = '\0';
    if (memchr(buf, '\0', len) != NULL)
        cli_die(ctx, "standard input: a NUL byte in the statements");
    return buf;
}

/* The prompt's database: Ctrl-C interrupts the statement running on it. */
static sqlite3 *volatile prompt_db;

static void on_interrupt(int sig)
{
    (void)sig;
    if (prompt_db != NULL)
        sqlite3_interrupt(prompt_db);
}

static void list_tables(sqlite3 *db, struct sql_out *o, const char *which)
{
    const char *sql =
        which == NULL
            ? "SELECT name FROM sqlite_schema WHERE type IN ('table','view')"
              " AND name NOT LIKE 'sqlite_%' ORDER BY name"
            : "SELECT sql || ';' FROM sqlite_schema WHERE sql IS NOT NULL"
              " AND (?1 = '' OR tbl_name = ?1) ORDER BY tbl_name, type DESC,"
              " name";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return;
    if (which != NULL)
        sqlite3_bind_text(st, 1, which, -1, SQLITE_STATIC);
    int first = 1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        fprintf(o->f, "%s%s", which != NULL || first ? "" : "  ", s ? s : "");
        if (which != NULL)
            fputc('\n', o->f);
        first = 0;
    }
    if (which == NULL && !first)
        fputc('\n', o->f);
    sqlite3_finalize(st);
}

/* A line starting with '.'; returns 1 to leave the prompt. */
static int dot_command(const struct cli_ctx *ctx, sqlite3 *db,
                       struct sql_out *o, char *line)
{
    char *save = NULL;
    char *cmd = strtok_r(line, " \t\r\n", &save);
    char *arg = strtok_r(NULL, " \t\r\n", &save);
    if (strcmp(cmd, ".quit") == 0 || strcmp(cmd, ".exit") == 0)
        return 1;
    if (strcmp(cmd, ".tables") == 0) {
        list_tables(db, o, NULL);
    } else if (strcmp(cmd, ".schema") == 0) {
        list_tables(db, o, arg ? arg : "");
    } else if (strcmp(cmd, ".format") == 0 || strcmp(cmd, ".mode") == 0) {
        static const struct {
            const char *name;
            enum cli_format format;
        } f[] = {{"text", CLI_FORMAT_TEXT},
                 {"csv", CLI_FORMAT_CSV},
                 {"json", CLI_FORMAT_JSON}};
        size_t i = 0;
        while (arg != NULL && i < 3 && strcmp(arg, f[i].name) != 0)
            i++;
        if (arg == NULL || i == 3)
            fputs("Error: .format wants text, csv or json\n", stderr);
        else
            o->format = f[i].format;
    } else if (strcmp(cmd, ".help") == 0) {
        fputs(".tables          the tables\n"
              ".schema [TABLE]  their CREATE statements\n"
              ".format FORMAT   text, csv or json from now on\n"
              ".quit            leave (so does the end of input)\n"
              "Anything else is SQL, run once it ends with ';'.\n",
              o->f);
    } else {
        char buf[CLI_PRINTABLE_MAX];
        fprintf(stderr, "Error: unknown command %s (.help lists them)\n",
                cli_printable(buf, sizeof buf, cmd));
    }
    (void)ctx;
    return 0;
}

/*
 * The prompt: statements run once complete; errors do not end it.
 *
 * Ctrl-C: SIGINT stays blocked but while the prompt waits for input (in
 * ppoll, which unblocks it atomically, so a Ctrl-C is never lost between
 * printing the prompt and waiting) and while a statement runs (the handler
 * interrupts it). stdin is unbuffered, so "input ready" is the truth.
 */
static void prompt(const struct cli_ctx *ctx, sqlite3 *db, struct sql_out *o)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigset_t block, open;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &open);
    sigdelset(&open, SIGINT);
    setvbuf(stdin, NULL, _IONBF, 0);
    prompt_db = db;
    char *line = NULL, *stmt = NULL;
    size_t cap = 0, len = 0, stmt_cap = 0;
    for (;;) {
        fputs(len == 0 ? "sql> " : "...> ", stdout);
        fflush(stdout);
        struct pollfd in = {.fd = 0, .events = POLLIN};
        if (ppoll(&in, 1, NULL, &open) < 0 && errno == EINTR) {
            fputc('\n', stdout);
            len = 0; /* Ctrl-C drops the statement being typed */
            continue;
        }
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) {
            fputc('\n', stdout);
            break;
        }
        if (len == 0) {
            size_t skip = strspn(line, " \t");
            if (line[skip] == '.') {
                if (dot_command(ctx, db, o, line + skip))
                    break;
                continue;
            }
        }
        if (len + (size_t)n + 1 > stmt_cap) {
            char *s = realloc(stmt, stmt_cap = 2 * (len + (size_t)n + 1));
            if (s == NULL)
                cli_die(ctx, "out of memory");
            stmt = s;
        }
        memcpy(stmt + len, line, (size_t)n + 1);
        len += (size_t)n;
        if (strspn(stmt, " \t\r\n") == len) {
            len = 0;
            continue;
        }
        if (!sqlite3_complete(stmt))
            continue;
        char err[1024];
        sigprocmask(SIG_SETMASK, &open, NULL); /* Ctrl-C interrupts it */
        int rc = sql_run(db, stmt, o, err, sizeof err);
        sigprocmask(SIG_BLOCK, &block, NULL);
        if (rc != 0)
            fprintf(stderr, "Error: %s\n", err);
        o->results = 0;
        fflush(stdout);
        len = 0;
    }
    free(line);
    free(stmt);
    prompt_db = NULL;
    signal(SIGINT, SIG_DFL);
    sigprocmask(SIG_UNBLOCK, &block, NULL);
}

/* Entry ------------------------------------------------------------------- */

/* The options into @o; 1 when --help was given (and printed). */
static int parse(struct cli_ctx *ctx, int argc, char **argv, struct sql_opts *o)
{
    static const char shortopts[] = ":i" CLI_GLOBAL_SHORTOPTS;
    static const struct option longopts[] = {
        {"format", required_argument, NULL, OPT_FORMAT},
        {"save", required_argument, NULL, OPT_SAVE},
        {"interactive", no_argument, NULL, 'i'},
        CLI_GLOBAL_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return 1;
        case OPT_FORMAT:
            o->format = cli_parse_format(ctx, optarg,
                                         CLI_FORMAT_TEXT | CLI_FORMAT_CSV |
                                             CLI_FORMAT_JSON);
            break;
        case OPT_SAVE:
            if (*optarg == '\0')
                cli_usage_error(ctx, "--save wants a file name");
            o->save = optarg;
            break;
        case 'i':
            o->interactive = 1;
            break;
        default:
            cli_global_option(ctx, c, argv, shortopts);
            break;
        }
    }
    if (optind >= argc)
        cli_usage_error(ctx, "no trace given");
    o->trace = argv[optind++];
    if (optind < argc)
        o->query = argv[optind++];
    cli_no_operands(ctx, argc, argv);
    if (o->query != NULL && o->interactive)
        cli_usage_error(ctx, "-i and a QUERY exclude each other");
    if (o->query == NULL && strcmp(o->trace, "-") == 0)
        cli_usage_error(ctx, "with the trace on standard input, give QUERY");
    return 0;
}

int cmd_sql(struct cli_ctx *ctx, int argc, char **argv)
{
    struct sql_opts o = {.format = CLI_FORMAT_TEXT};
    if (parse(ctx, argc, argv, &o))
        return CLI_EXIT_OK;

    if (o.save != NULL) {
        check_target(ctx, o.save);
        create_tmp(ctx, o.save);
    }
    sqlite3 *db = open_db(ctx, o.save != NULL ? tmp_path : "");
    pragmas(ctx, db);
    struct sql_load_result res;
    char err[4200];
    cli_verbose(ctx, 1, "reading %s", o.trace);
    if (sql_load(db, o.trace, &res, err, sizeof err) != 0)
        cli_die(ctx, "%s", err);
    warn_load(ctx, o.trace, &res);
    cli_verbose(ctx, 1,
                "%llu slices, %llu async slices, %llu instants, %llu counter "
                "samples, %llu flows, %llu runs, %llu threads",
                (unsigned long long)res.slices,
                (unsigned long long)res.async_slices,
                (unsigned long long)res.instants,
                (unsigned long long)res.counters, (unsigned long long)res.flows,
                (unsigned long long)res.runs, (unsigned long long)res.threads);
    if (o.save != NULL) {
        commit_tmp(ctx, db, o.save);
        db = open_db(ctx, o.save);
    }

    struct sql_out out = {.f = stdout, .format = o.format};
    int status = CLI_EXIT_OK;
    if (o.query == NULL && (o.interactive || isatty(0))) {
        if (!ctx->quiet)
            fprintf(stderr,
                    "stageprof sql: %llu slices on %llu threads from %s; "
                    ".tables lists the tables, .help the commands\n",
                    (unsigned long long)res.slices,
                    (unsigned long long)res.threads, o.trace);
        prompt(ctx, db, &out);
    } else {
        char *script = o.query == NULL ? read_all(ctx, stdin) : NULL;
        if (sql_run(db, o.query ? o.query : script, &out, err, sizeof err) !=
            0) {
            fflush(stdout);
            fprintf(stderr, "stageprof sql: %s\n", err);
            status = CLI_EXIT_FAIL;
        }
        free(script);
    }
    if (sqlite3_close(db) != SQLITE_OK)
        cli_die(ctx, "%s", sqlite3_errmsg(db));
    return status;
}
