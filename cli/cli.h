/*
 * cli.h - what the files of the `stageprof` program share: the context
 * every command receives, the command entry points, and the helpers for
 * messages, exit statuses and option parsing.
 *
 * Shape of a command (one file, cmd_<name>.c):
 *
 *     int cmd_<name>(struct cli_ctx *ctx, int argc, char **argv);
 *
 * argv[0] is the command's name; the rest are its arguments, with the
 * global flags that came before the command already removed. The command
 * parses them with getopt_long (after cli_getopt_reset()), prints its
 * results on stdout and everything else on stderr, and returns the exit
 * status. `--help` prints its usage on stdout and returns 0: that is also
 * how `stageprof help <name>` shows it.
 *
 * Exit statuses:
 *   0  success
 *   1  the command failed (cli_die)
 *   2  bad usage: unknown command or option, bad value (cli_usage_error)
 *
 * Adding a command: write cli/cmd_<name>.c, declare cmd_<name> below, and
 * add one line to the table in main.c. The build picks up the file.
 */
#ifndef STAGEPROF_CLI_H
#define STAGEPROF_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdnoreturn.h>

/* Exit statuses. */
enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

/*
 * --color=WHEN. auto: colour when the stream is a terminal, TERM is not
 * "dumb" and NO_COLOR is unset or empty.
 */
enum cli_color { CLI_COLOR_AUTO = 0, CLI_COLOR_ALWAYS, CLI_COLOR_NEVER };

/* Values of --format; a command accepts the subset that makes sense. */
enum cli_format {
    CLI_FORMAT_TEXT = 1 << 0,
    CLI_FORMAT_CSV = 1 << 1,
    CLI_FORMAT_JSON = 1 << 2,
    CLI_FORMAT_MD = 1 << 3
};

/* The global flags, parsed in main.c, passed to every command. */
struct cli_ctx {
    enum cli_color color; /* --color */
    int verbose;          /* -v, once per occurrence */
    int quiet;            /* -q: errors only on stderr */
    const char *cmd;      /* command running (message prefix), or NULL */
};

/* A line of the command table (main.c). */
struct cli_command {
    const char *name;
    int (*run)(struct cli_ctx *ctx, int argc, char **argv);
    const char *summary; /* one line, no final period */
};

/* ------------------------------------------------------------------------ */
/* Commands                                                                 */
/* ------------------------------------------------------------------------ */

int cmd_capture(struct cli_ctx *ctx, int argc, char **argv);
int cmd_diff(struct cli_ctx *ctx, int argc, char **argv);
int cmd_help(struct cli_ctx *ctx, int argc, char **argv);
int cmd_history(struct cli_ctx *ctx, int argc, char **argv);
int cmd_record(struct cli_ctx *ctx, int argc, char **argv);
int cmd_report(struct cli_ctx *ctx, int argc, char **argv);
int cmd_sql(struct cli_ctx *ctx, int argc, char **argv);
int cmd_sweep(struct cli_ctx *ctx, int argc, char **argv);
int cmd_top(struct cli_ctx *ctx, int argc, char **argv);
int cmd_version(struct cli_ctx *ctx, int argc, char **argv);

/* ------------------------------------------------------------------------ */
/* The command table (main.c)                                               */
/* ------------------------------------------------------------------------ */

/* The command called @name, or NULL. */
const struct cli_command *cli_find_command(const char *name);
/* The whole usage (synopsis, commands, global options) on @f. */
void cli_print_usage(const struct cli_ctx *ctx, FILE *f);
/* Run @c's --help (its usage on stdout); returns its exit status. */
int cli_command_help(struct cli_ctx *ctx, const struct cli_command *c);

/* ------------------------------------------------------------------------ */
/* Messages and exits (cli.c)                                               */
/* ------------------------------------------------------------------------ */

/* "stageprof <cmd>: <message>" on stderr, exit 1. */
noreturn void cli_die(const struct cli_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/*
 * "stageprof <cmd>: <message>" and a pointer to the command's help on
 * stderr, exit 2.
 */
noreturn void cli_usage_error(const struct cli_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "stageprof <cmd>: warning: <message>" on stderr unless -q. */
void cli_warn(const struct cli_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "stageprof <cmd>: <message>" on stderr when -v was given @level times. */
void cli_verbose(const struct cli_ctx *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 1 when output on @f should carry ANSI colour. */
int cli_use_color(const struct cli_ctx *ctx, FILE *f);

/*
 * @s made safe to quote in a message, into @buf (always NUL-terminated):
 * control bytes become \xHH and anything past 60 bytes becomes "...".
 * Returns @buf.
 */
const char *cli_printable(char *buf, size_t size, const char *s);
#define CLI_PRINTABLE_MAX 80 /* a @buf this size is never cut short */

/* ------------------------------------------------------------------------ */
/* Trace inputs (cli.c)                                                     */
/* ------------------------------------------------------------------------ */

/* Trace files named on a command line, in order. */
struct cli_inputs {
    char **paths;
    size_t n, cap;
};

/*
 * Add @arg: a file as it is (errors come when it is read), a directory's
 * *.json and *.json.gz files sorted by name. Returns 0, or -1 with the
 * reason in @err (a directory that cannot be read or holds no trace).
 * Exits 1 when out of memory.
 */
int cli_inputs_add(const struct cli_ctx *ctx, struct cli_inputs *in,
                   const char *arg, char *err, size_t errlen);
void cli_inputs_free(struct cli_inputs *in);

/* ------------------------------------------------------------------------ */
/* Option parsing (cli.c)                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Long-option values above any character, for options without a short
 * form. Commands number their own from CLI_OPT_COMMAND.
 */
enum { CLI_OPT_COLOR = 0x100, CLI_OPT_COMMAND = 0x200 };

/*
 * The global flags, accepted after the command name too (`stageprof
 * version -q`): put CLI_GLOBAL_LONGOPTS in the command's long-option table
 * and CLI_GLOBAL_SHORTOPTS in its short-option string, which must begin
 * with ':' (so a missing value is reported as such), and hand what
 * getopt_long returns to cli_global_option() when the command does not
 * handle it itself.
 */
#define CLI_GLOBAL_SHORTOPTS "hvq"
#define CLI_GLOBAL_LONGOPTS                                                    \
    {"help", no_argument, NULL, 'h'}, {"verbose", no_argument, NULL, 'v'},     \
        {"quiet", no_argument, NULL, 'q'},                                     \
    {                                                                          \
        "color", required_argument, NULL, CLI_OPT_COLOR                        \
    }

/*
 * The options of `report`, which `record` also takes and passes on as they
 * are: one list, so the two commands cannot drift apart.
 */
enum {
    CLI_REPORT_FORMAT = 0x300,
    CLI_REPORT_TOP,
    CLI_REPORT_FROM,
    CLI_REPORT_TO,
    CLI_REPORT_CATEGORY,
    CLI_REPORT_THREAD,
    CLI_REPORT_NAME,
    CLI_REPORT_REGEX,
    CLI_REPORT_EXACT_LIMIT,
    CLI_REPORT_HTML,
    CLI_REPORT_END /* one past the last */
};
#define CLI_REPORT_LONGOPTS                                                    \
    {"format", required_argument, NULL, CLI_REPORT_FORMAT},                    \
        {"top", required_argument, NULL, CLI_REPORT_TOP},                      \
        {"from", required_argument, NULL, CLI_REPORT_FROM},                    \
        {"to", required_argument, NULL, CLI_REPORT_TO},                        \
        {"category", required_argument, NULL, CLI_REPORT_CATEGORY},            \
        {"thread", required_argument, NULL, CLI_REPORT_THREAD},                \
        {"name", required_argument, NULL, CLI_REPORT_NAME},                    \
        {"regex", no_argument, NULL, CLI_REPORT_REGEX},                        \
        {"exact-limit", required_argument, NULL, CLI_REPORT_EXACT_LIMIT},      \
    {                                                                          \
        "html", required_argument, NULL, CLI_REPORT_HTML                       \
    }

/* Make the next getopt_long call start over on a new argv. */
void cli_getopt_reset(void);

/*
 * Handle getopt_long's result @c when it is a global flag ('v', 'q',
 * CLI_OPT_COLOR) and return 1; exit 2 with a message naming the option when
 * it is an error ('?' or ':'); return 0 for anything else ('h' included:
 * the command prints its own usage). @shortopts is the string given to
 * getopt_long.
 */
int cli_global_option(struct cli_ctx *ctx, int c, char **argv,
                      const char *shortopts);

/*
 * A whole number in [@lo, @hi] (@lo >= 0) for option --@name: digits only;
 * anything else exits 2 naming the option and the range.
 */
long cli_parse_number(const struct cli_ctx *ctx, const char *name,
                      const char *arg, long lo, long hi);

/* Parse a --color value; exits 2 on a bad one. */
enum cli_color cli_parse_color(const struct cli_ctx *ctx, const char *arg);

/*
 * Parse a --format value against @allowed (CLI_FORMAT_* bits); exits 2
 * naming the accepted values when @arg is not one of them.
 */
enum cli_format cli_parse_format(const struct cli_ctx *ctx, const char *arg,
                                 unsigned allowed);

/*
 * Exit 2 when arguments remain after the options (argv[optind] onwards),
 * for commands that take none.
 */
void cli_no_operands(const struct cli_ctx *ctx, int argc, char **argv);

#endif /* STAGEPROF_CLI_H */
