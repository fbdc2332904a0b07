/*
 * cmd_help.c - `stageprof help [<command>]`: the list of commands, or the
 * usage of one (which is what `stageprof <command> --help` prints).
 */
#include <stdlib.h>

#include "cli.h"

static void usage(FILE *f)
{
    fputs(
        "usage: stageprof help [<command>]\n"
        "\n"
        "Without a command, list the commands and the global options.\n"
        "With one, print its usage: the same as 'stageprof <command> --help'.\n"
        "\n"
        "Options:\n"
        "  -h, --help  show this help\n",
        f);
}

int cmd_help(struct cli_ctx *ctx, int argc, char **argv)
{
    static const char shortopts[] = ":" CLI_GLOBAL_SHORTOPTS;
    static const struct option longopts[] = {
        CLI_GLOBAL_LONGOPTS,
        {NULL, 0, NULL, 0},
    };

    int c;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        cli_global_option(ctx, c, argv, shortopts);
    }

    if (optind == argc) {
        cli_print_usage(ctx, stdout);
        return CLI_EXIT_OK;
    }
    if (argc - optind > 1) {
        char buf[CLI_PRINTABLE_MAX];
        cli_usage_error(ctx, "unexpected argument '%s' (one command at most)",
                        cli_printable(buf, sizeof buf, argv[optind + 1]));
    }
    const struct cli_command *cmd = cli_find_command(argv[optind]);
    if (cmd == NULL) {
        char buf[CLI_PRINTABLE_MAX];
        fprintf(stderr, "stageprof help: unknown command '%s'\n\n",
                cli_printable(buf, sizeof buf, argv[optind]));
        cli_print_usage(ctx, stderr);
        exit(CLI_EXIT_USAGE);
    }
    return cli_command_help(ctx, cmd);
}
