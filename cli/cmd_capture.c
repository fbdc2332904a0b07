/*
 * cmd_capture.c - `stageprof capture`: pull a trace from a running process.
 *
 *   stageprof capture URL [--duration-ms N] [--delay-ms N] [--max-events N]
 *                         [--categories LIST] [--recent] [--retries N]
 *                         [--timeout-s S] [--token T] [-o FILE]
 *
 * URL names the process's endpoint (STAGEPROF_HTTP): "http://host:port",
 * "host:port" or the full ".../capture". The command asks for the next
 * --duration-ms of recording (1000 by default) or, with --recent, for what
 * the process keeps now (its last runs); writes the answer to FILE; says
 * where it went, how many events it holds and, when it holds none, why the
 * server says it is empty; then prints `stageprof report` of it. An empty
 * window capture is asked again up to --retries times (3), as one often
 * catches a quiet second.
 *
 * Exit status: 0 a trace with events was written; 1 the server could not
 * be reached, refused the capture (its reason is printed), or every try
 * came back empty (the last empty trace is still written); 2 bad usage.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "fetch.h"

static void usage(FILE *f)
{
    fputs("usage: stageprof capture URL [options]\n"
          "\n"
          "Pull a trace from a running process that serves STAGEPROF_HTTP:\n"
          "the next --duration-ms of recording, or with --recent what it\n"
          "keeps now (its last runs). URL: http://HOST:PORT, HOST:PORT or\n"
          "the full .../capture address.\n"
          "\n"
          "  --duration-ms N   length of the window, 1 to 60000 (1000)\n"
          "  --delay-ms N      wait this long before the window, 0 to 60000 "
          "(0)\n"
          "  --max-events N    at most this many events in the trace\n"
          "  --categories LIST record only these (as STAGEPROF_CATEGORIES)\n"
          "  --recent          the process's last runs, at once\n"
          "  --retries N       ask again this many times when a window comes\n"
          "                    back empty, 0 to 100 (3)\n"
          "  --timeout-s S     give up on an answer after S seconds\n"
          "                    (default: the window plus 30)\n"
          "  --token T         bearer token (default: STAGEPROF_HTTP_TOKEN)\n"
          "  -o, --output FILE where the trace goes\n"
          "                    (default: capture_<date>_<time>.json)\n"
          "\n"
          "Exit status: 0 a trace with events written; 1 the server could "
          "not be\n"
          "reached, refused, or every try came back empty; 2 bad usage.\n",
          f);
}

/* Append @s to @out (size @size) %-encoded for a query value. */
static void add_encoded(char *out, size_t size, const char *s)
{
    size_t n = strlen(out);
    for (; *s && n + 4 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
            c == ',' || c == '*') {
            out[n++] = (char)c;
        } else {
            snprintf(out + n, size - n, "%%%02X", c);
            n += 3;
        }
    }
    out[n] = '\0';
}

/* Write @len bytes of @data to @path; 0 or an errno value. */
static int write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return errno;
    size_t w = len ? fwrite(data, 1, len, f) : 0;
    int err = w == len ? 0 : (errno ? errno : EIO);
    if (fclose(f) != 0 && err == 0)
        err = errno;
    return err;
}

/*
 * The first line of @s, a reason the server sent, into @buf: control bytes
 * become '?', and it is cut to fit (never to a fixed short length, as
 * cli_printable() cuts what the user typed).
 */
static const char *server_line(char *buf, size_t size, const char *s)
{
    size_t n = 0;
    for (; s != NULL && s[n] && s[n] != '\n' && s[n] != '\r' && n + 1 < size;
         n++) {
        unsigned char c = (unsigned char)s[n];
        buf[n] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    buf[n] = '\0';
    return buf;
}

int cmd_capture(struct cli_ctx *ctx, int argc, char **argv)
{
    static const char shortopts[] = ":o:" CLI_GLOBAL_SHORTOPTS;
    enum {
        OPT_DURATION = 256,
        OPT_DELAY,
        OPT_MAX_EVENTS,
        OPT_CATEGORIES,
        OPT_RECENT,
        OPT_RETRIES,
        OPT_TIMEOUT,
        OPT_TOKEN
    };
    static const struct option longopts[] = {
        {"duration-ms", required_argument, NULL, OPT_DURATION},
        {"delay-ms", required_argument, NULL, OPT_DELAY},
        {"max-events", required_argument, NULL, OPT_MAX_EVENTS},
        {"categories", required_argument, NULL, OPT_CATEGORIES},
        {"recent", no_argument, NULL, OPT_RECENT},
        {"retries", required_argument, NULL, OPT_RETRIES},
        {"timeout-s", required_argument, NULL, OPT_TIMEOUT},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"output", required_argument, NULL, 'o'},
        CLI_GLOBAL_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    long duration = 1000, delay = 0, max_events = -1, retries = 3, timeout = -1;
    int recent = 0, window_opts = 0;
    const char *categories = NULL, *out = NULL;
    const char *token = getenv("STAGEPROF_HTTP_TOKEN");
    int c;
    cli_getopt_reset();
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return CLI_EXIT_OK;
        case OPT_DURATION:
            duration = cli_parse_number(ctx, "duration-ms", optarg, 1, 60000);
            window_opts = 1;
            break;
        case OPT_DELAY:
            delay = cli_parse_number(ctx, "delay-ms", optarg, 0, 60000);
            window_opts = 1;
            break;
        case OPT_MAX_EVENTS:
            max_events =
                cli_parse_number(ctx, "max-events", optarg, 1, LONG_MAX);
            break;
        case OPT_CATEGORIES:
            if (optarg[0] == '\0')
                cli_usage_error(ctx, "--categories wants a list, not ''");
            categories = optarg;
            break;
        case OPT_RECENT:
            recent = 1;
            break;
        case OPT_RETRIES:
            retries = cli_parse_number(ctx, "retries", optarg, 0, 100);
            break;
        case OPT_TIMEOUT:
            timeout = cli_parse_number(ctx, "timeout-s", optarg, 1, 3600);
            break;
        case OPT_TOKEN:
            token = optarg;
            break;
        case 'o':
            if (optarg[0] == '\0')
                cli_usage_error(ctx, "-o wants a file, not ''");
            out = optarg;
            break;
        default:
            cli_global_option(ctx, c, argv, shortopts);
            break;
        }
    }
    if (optind >= argc)
        cli_usage_error(ctx, "no URL given");
    if (optind + 1 < argc) {
        char buf[CLI_PRINTABLE_MAX];
        cli_usage_error(ctx, "one URL only; '%s' is extra",
                        cli_printable(buf, sizeof buf, argv[optind + 1]));
    }
    if (recent && window_opts)
        cli_usage_error(ctx, "--recent takes no --duration-ms or --delay-ms");

    char url[4096], err[256], buf[CLI_PRINTABLE_MAX];
    char *base = cli_fetch_url(argv[optind], "/capture", err, sizeof err);
    if (base == NULL)
        cli_usage_error(ctx, "bad URL '%s': %s",
                        cli_printable(buf, sizeof buf, argv[optind]), err);
    if (strchr(base, '?') != NULL || strlen(base) > 2048)
        cli_usage_error(ctx, "bad URL '%s': the query is made from the options",
                        cli_printable(buf, sizeof buf, argv[optind]));
    if (recent)
        snprintf(url, sizeof url, "%s?mode=recent", base);
    else
        snprintf(url, sizeof url, "%s?duration_ms=%ld&delay_ms=%ld", base,
                 duration, delay);
    if (max_events > 0)
        snprintf(url + strlen(url), sizeof url - strlen(url), "&max_events=%ld",
                 max_events);
    if (categories != NULL) {
        snprintf(url + strlen(url), sizeof url - strlen(url), "&categories=");
        add_encoded(url, sizeof url, categories);
    }

    char name[64];
    if (out == NULL) {
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(name, sizeof name, "capture_%Y%m%d_%H%M%S.json", &tm);
        out = name;
    }

    struct cli_fetch_opts fo = {
        .timeout_s =
            timeout > 0
                ? (double)timeout
                : (double)(recent ? 0 : duration + delay) / 1000.0 + 30.0,
        .token = token,
        .max_bytes = 0,
    };
    long tries = recent ? 1 : retries + 1;
    int status = CLI_EXIT_FAIL;
    for (long k = 1; k <= tries; k++) {
        struct cli_fetch_result r;
        char pbuf[CLI_PRINTABLE_MAX], lbuf[512];
        if (cli_fetch(url, &fo, &r) != 0) {
            cli_fetch_result_fini(&r);
            cli_die(ctx, "%s: %s", cli_printable(pbuf, sizeof pbuf, base),
                    r.error);
        }
        if (r.status != 200) {
            const char *why = server_line(lbuf, sizeof lbuf, r.body);
            long st = r.status;
            cli_fetch_result_fini(&r);
            cli_die(ctx, "%s answered %ld%s%s",
                    cli_printable(pbuf, sizeof pbuf, base), st,
                    why[0] ? ": " : "", why);
        }
        char events_s[32] = "", dropped_s[32] = "", reason[256] = "";
        cli_fetch_header(&r, "X-Stageprof-Events", events_s, sizeof events_s);
        cli_fetch_header(&r, "X-Stageprof-Dropped", dropped_s,
                         sizeof dropped_s);
        cli_fetch_header(&r, "X-Stageprof-Empty-Reason", reason, sizeof reason);
        int werr = write_file(out, r.body ? r.body : "", r.len);
        cli_fetch_result_fini(&r);
        if (werr != 0)
            cli_die(ctx, "cannot write %s: %s",
                    cli_printable(pbuf, sizeof pbuf, out), strerror(werr));
        long events = events_s[0] ? strtol(events_s, NULL, 10) : -1;
        if (events == 0) {
            const char *why = reason[0] ? reason : "the server gave no reason";
            if (k < tries) {
                fprintf(stderr,
                        "stageprof capture: empty capture (%s); asking again "
                        "(%ld of %ld)\n",
                        server_line(lbuf, sizeof lbuf, why), k, tries - 1);
                continue;
            }
            fprintf(stderr, "stageprof capture: %s holds no events: %s\n",
                    cli_printable(pbuf, sizeof pbuf, out),
                    server_line(lbuf, sizeof lbuf, why));
            return CLI_EXIT_FAIL;
        }
        printf("trace: %s (%s events, %s dropped)\n",
               cli_printable(pbuf, sizeof pbuf, out),
               events_s[0] ? events_s : "?", dropped_s[0] ? dropped_s : "?");
        fflush(stdout);
        status = CLI_EXIT_OK;
        break;
    }
    free(base);
    char *rargv[] = {"report", (char *)out, NULL};
    struct cli_ctx rctx = *ctx;
    rctx.cmd = "report";
    cli_getopt_reset();
    int rs = cmd_report(&rctx, 2, rargv);
    return rs != 0 ? rs : status;
}
