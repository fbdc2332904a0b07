/*
 * cli.c - helpers every command uses: messages with the command's prefix,
 * exits with the documented statuses, colour decisions, and the parsing of
 * the flags and values all commands share (global flags, --color,
 * --format, getopt errors).
 *
 * Nothing here writes to stdout: results are the commands' business.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static void vmessage(const struct cli_ctx *ctx, const char *what,
                     const char *fmt, va_list ap)
{
    if (ctx != NULL && ctx->cmd != NULL)
        fprintf(stderr, "stageprof %s: ", ctx->cmd);
    else
        fputs("stageprof: ", stderr);
    if (what != NULL)
        fputs(what, stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

noreturn void cli_die(const struct cli_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(ctx, NULL, fmt, ap);
    va_end(ap);
    exit(CLI_EXIT_FAIL);
}

noreturn void cli_usage_error(const struct cli_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(ctx, NULL, fmt, ap);
    va_end(ap);
    if (ctx != NULL && ctx->cmd != NULL)
        fprintf(stderr, "Try 'stageprof help %s' for its usage.\n", ctx->cmd);
    else
        fputs("Try 'stageprof help' for usage.\n", stderr);
    exit(CLI_EXIT_USAGE);
}

void cli_warn(const struct cli_ctx *ctx, const char *fmt, ...)
{
    if (ctx != NULL && ctx->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    vmessage(ctx, "warning: ", fmt, ap);
    va_end(ap);
}

void cli_verbose(const struct cli_ctx *ctx, int level, const char *fmt, ...)
{
    if (ctx == NULL || ctx->quiet || ctx->verbose < level)
        return;
    va_list ap;
    va_start(ap, fmt);
    vmessage(ctx, NULL, fmt, ap);
    va_end(ap);
}

int cli_use_color(const struct cli_ctx *ctx, FILE *f)
{
    switch (ctx->color) {
    case CLI_COLOR_ALWAYS:
        return 1;
    case CLI_COLOR_NEVER:
        return 0;
    case CLI_COLOR_AUTO:
    default:
        break;
    }
    /* https://no-color.org: any non-empty NO_COLOR turns colour off. */
    const char *no = getenv("NO_COLOR");
    if (no != NULL && no[0] != '\0')
        return 0;
    const char *term = getenv("TERM");
    if (term == NULL || strcmp(term, "dumb") == 0)
        return 0;
    return isatty(fileno(f));
}

const char *cli_printable(char *buf, size_t size, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const size_t keep = 60; /* bytes of @s shown before "..." */
    size_t o = 0;
    if (size < 4) {
        if (size > 0)
            buf[0] = '\0';
        return buf;
    }
    for (size_t i = 0; s[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)s[i];
        int ctrl = ch < 0x20 || ch == 0x7F;
        /* Room for this byte, then "..." and the NUL if more must follow. */
        size_t need = ctrl ? 4 : 1;
        /* Cut before a character, never inside a UTF-8 sequence. */
        int boundary = (ch & 0xC0) != 0x80;
        if ((i >= keep && boundary) || o + need + 4 > size) {
            if (!boundary)
                while (o > 0 && ((unsigned char)buf[o - 1] & 0xC0) == 0x80)
                    o--;
            if (!boundary && o > 0 &&
                ((unsigned char)buf[o - 1] & 0xC0) == 0xC0)
                o--;
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (ctrl) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[ch >> 4];
            buf[o++] = hex[ch & 15];
        } else {
            buf[o++] = (char)ch;
        }
    }
    buf[o] = '\0';
    return buf;
}

void cli_getopt_reset(void)
{
    /*
     * 0, not 1: glibc then also forgets the position inside a cluster of
     * short options and the ordering mode of the previous argv.
     */
    optind = 0;
    opterr = 0;
}

/* The option text of a getopt error, for the message. */
static const char *bad_option_text(char *buf, size_t size, int c, char **argv,
                                   const char *shortopts)
{
    /*
     * A character that is not a short option was met inside "-abc": name
     * it alone, since argv[optind - 1] need not be its element.
     */
    if (optopt > 0 && optopt < 0x100 && c == '?' &&
        strchr(shortopts, optopt) == NULL) {
        char opt[3] = {'-', (char)optopt, '\0'};
        return cli_printable(buf, size, opt);
    }
    /*
     * Long options, and short ones ending their element, advance optind:
     * argv[optind - 1] holds them.
     */
    const char *arg = optind > 0 ? argv[optind - 1] : NULL;
    int is_long = arg != NULL && strncmp(arg, "--", 2) == 0;
    if (!is_long && optopt > 0 && optopt < 0x100) {
        char opt[3] = {'-', (char)optopt, '\0'};
        return cli_printable(buf, size, opt);
    }
    if (!is_long)
        return cli_printable(buf, size, arg != NULL ? arg : "?");
    char name[CLI_PRINTABLE_MAX];
    size_t n = strcspn(arg, "=");
    if (n >= sizeof name)
        n = sizeof name - 1;
    memcpy(name, arg, n);
    name[n] = '\0';
    return cli_printable(buf, size, name);
}

/* getopt_long reported @c ('?' or ':'): say which option, exit 2. */
static noreturn void option_error(const struct cli_ctx *ctx, int c, char **argv,
                                  const char *shortopts)
{
    char buf[CLI_PRINTABLE_MAX];
    const char *opt = bad_option_text(buf, sizeof buf, c, argv, shortopts);
    if (c == ':')
        cli_usage_error(ctx, "option '%s' needs a value", opt);
    /* A known long option given a value: "--help=x". */
    if (optopt != 0 && strncmp(opt, "--", 2) == 0)
        cli_usage_error(ctx, "option '%s' takes no value", opt);
    cli_usage_error(ctx, "unknown option '%s'", opt);
}

int cli_global_option(struct cli_ctx *ctx, int c, char **argv,
                      const char *shortopts)
{
    switch (c) {
    case 'v':
        ctx->verbose++;
        return 1;
    case 'q':
        ctx->quiet = 1;
        return 1;
    case CLI_OPT_COLOR:
        ctx->color = cli_parse_color(ctx, optarg);
        return 1;
    case '?':
    case ':':
        option_error(ctx, c, argv, shortopts);
    default:
        return 0;
    }
}

enum cli_color cli_parse_color(const struct cli_ctx *ctx, const char *arg)
{
    if (strcmp(arg, "auto") == 0)
        return CLI_COLOR_AUTO;
    if (strcmp(arg, "always") == 0)
        return CLI_COLOR_ALWAYS;
    if (strcmp(arg, "never") == 0)
        return CLI_COLOR_NEVER;
    char buf[CLI_PRINTABLE_MAX];
    cli_usage_error(ctx,
                    "invalid --color '%s' (expected auto, always or never)",
                    cli_printable(buf, sizeof buf, arg));
}

static const struct {
    const char *name;
    enum cli_format format;
} formats[] = {
    {"text", CLI_FORMAT_TEXT},
    {"csv", CLI_FORMAT_CSV},
    {"json", CLI_FORMAT_JSON},
    {"md", CLI_FORMAT_MD},
};

enum cli_format cli_parse_format(const struct cli_ctx *ctx, const char *arg,
                                 unsigned allowed)
{
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if ((allowed & formats[i].format) && strcmp(arg, formats[i].name) == 0)
            return formats[i].format;

    /* "text, csv or json" from the allowed set. */
    char list[64] = "";
    size_t len = 0, n = 0, total = 0;
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        total += (allowed & formats[i].format) != 0;
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        if (!(allowed & formats[i].format))
            continue;
        const char *sep = n == 0 ? "" : n + 1 == total ? " or " : ", ";
        int k = snprintf(list + len, sizeof list - len, "%s%s", sep,
                         formats[i].name);
        if (k > 0 && (size_t)k < sizeof list - len)
            len += (size_t)k;
        n++;
    }
    char buf[CLI_PRINTABLE_MAX];
    cli_usage_error(ctx, "invalid --format '%s' (expected %s)",
                    cli_printable(buf, sizeof buf, arg), list);
}

void cli_no_operands(const struct cli_ctx *ctx, int argc, char **argv)
{
    if (optind < argc) {
        char buf[CLI_PRINTABLE_MAX];
        cli_usage_error(ctx, "unexpected argument '%s'",
                        cli_printable(buf, sizeof buf, argv[optind]));
    }
}

long cli_parse_number(const struct cli_ctx *ctx, const char *name,
                      const char *arg, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = arg[0] >= '0' && arg[0] <= '9' ? strtol(arg, &end, 10) : -1;
    if (v < 0 || errno != 0 || *end != '\0' || v < lo || v > hi) {
        char buf[CLI_PRINTABLE_MAX];
        cli_usage_error(ctx,
                        "--%s wants a whole number from %ld to %ld, not "
                        "'%s'",
                        name, lo, hi, cli_printable(buf, sizeof buf, arg));
    }
    return v;
}

/* Inputs ------------------------------------------------------------------ */

static void add_path(const struct cli_ctx *ctx, struct cli_inputs *in,
                     const char *p)
{
    if (in->n == in->cap) {
        size_t cap = in->cap ? in->cap * 2 : 8;
        char **q = realloc(in->paths, cap * sizeof *q);
        if (q == NULL)
            cli_die(ctx, "out of memory");
        in->paths = q;
        in->cap = cap;
    }
    if ((in->paths[in->n++] = strdup(p)) == NULL)
        cli_die(ctx, "out of memory");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

int cli_inputs_add(const struct cli_ctx *ctx, struct cli_inputs *in,
                   const char *arg, char *err, size_t errlen)
{
    struct stat st;
    if (strcmp(arg, "-") == 0 || stat(arg, &st) != 0 || !S_ISDIR(st.st_mode)) {
        add_path(ctx, in, arg); /* errors come when it is read */
        return 0;
    }
    DIR *d = opendir(arg);
    if (d == NULL) {
        snprintf(err, errlen, "%s: %s", arg, strerror(errno));
        return -1;
    }
    size_t first = in->n;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!ends_with(e->d_name, ".json") && !ends_with(e->d_name, ".json.gz"))
            continue;
        char path[4096];
        int n = snprintf(path, sizeof path, "%s/%s", arg, e->d_name);
        if (n < 0 || (size_t)n >= sizeof path)
            continue;
        add_path(ctx, in, path);
    }
    closedir(d);
    if (in->n == first) {
        snprintf(err, errlen,
                 "%s: no *.json or *.json.gz files in this directory", arg);
        return -1;
    }
    qsort(in->paths + first, in->n - first, sizeof *in->paths, cmp_str);
    return 0;
}

void cli_inputs_free(struct cli_inputs *in)
{
    for (size_t i = 0; i < in->n; i++)
        free(in->paths[i]);
    free(in->paths);
    memset(in, 0, sizeof *in);
}
