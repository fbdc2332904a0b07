/*
 * fetch.h - one HTTP GET through libcurl, for the commands that talk to a
 * running stageprof process (`top` reads /metrics, `capture` /capture).
 *
 * The module prints nothing: the caller decides what a failure means. A
 * transfer that gets an HTTP answer succeeds whatever its status; the
 * caller reads the status and, for 4xx/5xx, the body (stageprof's
 * endpoint answers errors with a one-line reason).
 */
#ifndef STAGEPROF_CLI_FETCH_H
#define STAGEPROF_CLI_FETCH_H

#include <stddef.h>

#define CLI_FETCH_MAX_BYTES_DEFAULT (64u << 20) /* 64 MiB */

struct cli_fetch_opts {
    double timeout_s;  /* whole transfer, connecting included; 0: none */
    const char *token; /* sent as "Authorization: Bearer <token>", or NULL */
    size_t max_bytes;  /* largest decoded body kept; 0: the default above */
    /*
     * Called now and then while the transfer runs (at least about once a
     * second), or NULL: a nonzero return abandons the transfer, which then
     * fails with the error "cancelled". Lets an interactive caller react
     * to keys or signals during a slow transfer.
     */
    int (*cancel)(void *arg);
    void *cancel_arg;
};

struct cli_fetch_result {
    long status;        /* HTTP status, 0 when no answer came */
    char *body;         /* decoded body, NUL-terminated; owned, may be NULL */
    size_t len;         /* bytes in @body, without the NUL */
    size_t cap;         /* private */
    size_t max;         /* private */
    int too_big;        /* private */
    int cancelled;      /* private */
    char error[256];    /* one line, set when cli_fetch() returns -1 */
    char headers[4096]; /* the last answer's header lines, as received (cut
                           at this size); read with cli_fetch_header() */
    size_t hlen;        /* private */
};

/*
 * cli_fetch - GET @url and keep the answer.
 * @url: http:// or https:// (other protocols are refused); borrowed.
 * @o: options, or NULL for the defaults; borrowed.
 * @r: caller's storage, initialised here; release with
 *     cli_fetch_result_fini() whatever the return value.
 *
 * gzip and deflate are offered and decoded. Redirects are not followed.
 * Returns 0 when an HTTP answer came (any status), -1 when none did
 * (refused connection, unknown host, timeout, an answer over the size cap,
 * a token with a line break, cancelled, no memory): @r->error then says why in
 * one line without a final period.
 */
int cli_fetch(const char *url, const struct cli_fetch_opts *o,
              struct cli_fetch_result *r);

/*
 * cli_fetch_header - the value of header @name (any case) of the answer in
 * @r, blanks around it removed, into @buf (@len bytes, NUL-terminated, cut
 * to fit). Returns 1 when the answer had it, else 0 with @buf empty.
 */
int cli_fetch_header(const struct cli_fetch_result *r, const char *name,
                     char *buf, size_t len);

/*
 * cli_fetch_url - @arg checked and completed by libcurl's URL parser as an
 * http:// or https:// address: "HOST:PORT" gets "http://", an empty path
 * or "/" gets @default_path ("/metrics").
 * Returns a malloc'd string, or NULL with @err (@errlen bytes, one line)
 * saying why: not a URL, another scheme, no memory.
 */
char *cli_fetch_url(const char *arg, const char *default_path, char *err,
                    size_t errlen);

/* cli_fetch_result_fini - free what @r holds; safe on a zeroed @r. */
void cli_fetch_result_fini(struct cli_fetch_result *r);

#endif /* STAGEPROF_CLI_FETCH_H */
