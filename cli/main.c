/*
 * main.c - the `stageprof` program: global flags, the command table and
 * dispatch by name.
 *
 *   stageprof [--color=WHEN] [-v] [-q] <command> [<args>]
 *
 * Global flags before the command are parsed here into a struct cli_ctx
 * (commands accept them after their name as well, see cli.h). The command
 * is looked up by exact name in the table below and called with the rest
 * of argv. An unknown or missing command prints the usage on stderr and
 * exits 2. After the command returns, a failed write to stdout (a full
 * disk, a closed descriptor) turns success into exit status 1.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* One line per command, sorted by name; `stageprof help` lists them. */
static const struct cli_command commands[] = {
    {"capture", cmd_capture, "pull a trace from a running process"},
    {"diff", cmd_diff, "compare two sets of traces, gate on regressions"},
    {"help", cmd_help, "show the commands, or the usage of one"},
    {"history", cmd_history, "a run history in SQLite: add, list, show, check"},
    {"record", cmd_record, "run a program with tracing on, report its traces"},
    {"report", cmd_report, "per-stage statistics of Chrome traces"},
    {"sql", cmd_sql, "load a trace into SQLite tables and query them"},
    {"sweep", cmd_sweep, "run a command over parameter variants, compare them"},
    {"top", cmd_top, "live per-stage view of a running process's /metrics"},
    {"version", cmd_version,
     "print the versions of stageprof and libstageprof"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

const struct cli_command *cli_find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

void cli_print_usage(const struct cli_ctx *ctx, FILE *f)
{
    int color = cli_use_color(ctx, f);
    const char *bold = color ? "\033[1m" : "";
    const char *plain = color ? "\033[0m" : "";
    int width = 0;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        int n = (int)strlen(commands[i].name);
        if (n > width)
            width = n;
    }

    fputs("usage: stageprof [--color=WHEN] [-v] [-q] <command> [<args>]\n"
          "\n"
          "Profile AI inference pipelines and read the traces they write.\n"
          "\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        int pad = width - (int)strlen(commands[i].name);
        fprintf(f, "  %s%s%s%*s  %s\n", bold, commands[i].name, plain, pad, "",
                commands[i].summary);
    }
    fputs("\n"
          "Global options (before or after the command):\n"
          "  --color=WHEN   colour the output: auto (default), always, never\n"
          "  -v, --verbose  say more on stderr; repeat for more detail\n"
          "  -q, --quiet    print only errors on stderr\n"
          "  -h, --help     show this help, or a command's usage after it\n"
          "  --version      same as 'stageprof version'\n"
          "\n"
          "Run 'stageprof help <command>' for the options of a command.\n",
          f);
}

int cli_command_help(struct cli_ctx *ctx, const struct cli_command *c)
{
    char name[64], help[] = "--help";
    snprintf(name, sizeof name, "%s", c->name);
    char *argv[] = {name, help, NULL};
    const char *saved = ctx->cmd;
    ctx->cmd = c->name;
    cli_getopt_reset();
    int rc = c->run(ctx, 2, argv);
    ctx->cmd = saved;
    return rc;
}

/* Unknown or missing command: the usage on stderr, exit 2. */
static noreturn void bad_command(const struct cli_ctx *ctx, const char *name)
{
    if (name != NULL) {
        char buf[CLI_PRINTABLE_MAX];
        fprintf(stderr, "stageprof: unknown command '%s'\n\n",
                cli_printable(buf, sizeof buf, name));
    }
    cli_print_usage(ctx, stderr);
    exit(CLI_EXIT_USAGE);
}

/* Turn a failed write to stdout into a message and exit status 1. */
static int check_stdout(const struct cli_ctx *ctx, int rc)
{
    int failed = ferror(stdout);
    errno = 0;
    if (fflush(stdout) != 0)
        failed = 1;
    if (!failed)
        return rc;
    int err = errno;
    fprintf(stderr, "stageprof%s%s: cannot write the output%s%s\n",
            ctx->cmd ? " " : "", ctx->cmd ? ctx->cmd : "", err ? ": " : "",
            err ? strerror(err) : "");
    return CLI_EXIT_FAIL;
}

enum { OPT_VERSION = CLI_OPT_COMMAND };

int main(int argc, char **argv)
{
    static const char shortopts[] = "+:" CLI_GLOBAL_SHORTOPTS;
    static const struct option longopts[] = {
        CLI_GLOBAL_LONGOPTS,
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    struct cli_ctx ctx = {CLI_COLOR_AUTO, 0, 0, NULL};
    int show_help = 0, show_version = 0;

    /*
     * The program is linked with libstageprof (for `version`): with
     * STAGEPROF_ENABLE=1 in its environment the library would write a
     * trace of this process at exit. The library reads the variable again
     * when it would start, so turning it off here is enough; `record` sets
     * it for the programs it runs.
     */
    setenv("STAGEPROF_ENABLE", "0", 1);

    cli_getopt_reset();
    int c;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        if (c == 'h')
            show_help = 1;
        else if (c == OPT_VERSION)
            show_version = 1;
        else
            cli_global_option(&ctx, c, argv, shortopts);
    }

    const struct cli_command *cmd = NULL;
    if (optind < argc) {
        cmd = cli_find_command(argv[optind]);
        if (cmd == NULL)
            bad_command(&ctx, argv[optind]);
    }
    if (show_help) {
        /* "stageprof --help version" is "stageprof help version". */
        if (cmd != NULL)
            return check_stdout(&ctx, cli_command_help(&ctx, cmd));
        ctx.cmd = "help";
        cli_print_usage(&ctx, stdout);
        return check_stdout(&ctx, CLI_EXIT_OK);
    }
    if (show_version) {
        static char version_name[] = "version";
        static char *version_argv[] = {version_name, NULL};
        cmd = cli_find_command("version");
        argc = 1;
        argv = version_argv;
        optind = 0;
    } else if (cmd == NULL) {
        bad_command(&ctx, NULL);
    }

    int first = optind;
    ctx.cmd = cmd->name;
    cli_getopt_reset();
    int rc = cmd->run(&ctx, argc - first, argv + first);
    return check_stdout(&ctx, rc);
}
