/*
 * cmd_version.c - `stageprof version`: the version of this program and of
 * the libstageprof it runs with.
 *
 * The program's version is the header's (STAGEPROF_VERSION_STRING, fixed
 * at build time); the library's is what stageprof_version_string() answers
 * at run time. They differ only when the program runs with another library
 * than the one it was built against, which is worth a warning.
 */
#include <string.h>

#include <stageprof.h>

#include "cli.h"
#include "util/json.h"
#include "util/strbuf.h"

static void usage(FILE *f)
{
    fputs("usage: stageprof version [--format=text|json]\n"
          "\n"
          "Print the version of the stageprof program and of the libstageprof\n"
          "library it runs with: one per line, or one JSON object with the\n"
          "keys \"program\", \"version\" and \"library_version\".\n"
          "\n"
          "Options:\n"
          "  --format=FORMAT  text (default) or json\n"
          "  -h, --help       show this help\n"
          "\n"
          "The global options (-v, -q, --color) are accepted as well.\n",
          f);
}

static void print_json(const struct cli_ctx *ctx, const char *version,
                       const char *library)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    stageprof__sb_adds(&sb, "{\"program\":\"stageprof\",\"version\":");
    stageprof__json_str(&sb, version, strlen(version));
    stageprof__sb_adds(&sb, ",\"library_version\":");
    stageprof__json_str(&sb, library, strlen(library));
    stageprof__sb_adds(&sb, "}\n");
    if (sb.oom)
        cli_die(ctx, "out of memory");
    fwrite(sb.buf, 1, sb.len, stdout);
    stageprof__sb_fini(&sb);
}

int cmd_version(struct cli_ctx *ctx, int argc, char **argv)
{
    enum { OPT_FORMAT = CLI_OPT_COMMAND };
    static const char shortopts[] = ":" CLI_GLOBAL_SHORTOPTS;
    static const struct option longopts[] = {
        {"format", required_argument, NULL, OPT_FORMAT},
        CLI_GLOBAL_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    enum cli_format format = CLI_FORMAT_TEXT;

    int c;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return CLI_EXIT_OK;
        case OPT_FORMAT:
            format = cli_parse_format(ctx, optarg,
                                      CLI_FORMAT_TEXT | CLI_FORMAT_JSON);
            break;
        default:
            cli_global_option(ctx, c, argv, shortopts);
            break;
        }
    }
    cli_no_operands(ctx, argc, argv);

    const char *version = STAGEPROF_VERSION_STRING;
    const char *library = stageprof_version_string();
    if (stageprof_version() != STAGEPROF_VERSION_HEX)
        cli_warn(ctx,
                 "built with the headers of libstageprof %s but running "
                 "with libstageprof %s",
                 version, library);

    if (format == CLI_FORMAT_JSON)
        print_json(ctx, version, library);
    else
        printf("stageprof %s\nlibstageprof %s\n", version, library);
    return CLI_EXIT_OK;
}
