/*
 * http.c - the embedded HTTP endpoint: GET /metrics (Prometheus text 0.0.4),
 * GET /healthz and GET /capture, served by libmicrohttpd on one thread of
 * its own. /capture suspends its connection and hands the wait and the
 * write to a capture thread (capture.c), which resumes it with the answer;
 * stop waits for that thread (http_cap_cond) before stopping the daemon.
 *
 * core.c calls stageprof__http_start() when the configuration names an
 * address and stageprof__http_stop() when the session ends (also from its
 * atexit handler); metrics.c calls stageprof__http_render() while building
 * the /metrics body, which happens on the server thread.
 *
 * Threading. One MHD daemon with an internal polling thread (epoll where
 * MHD has it): every connection is handled on that thread, so a request is
 * answered after the previous one's handler returned, and the recording
 * threads never wait for it. Two locks:
 *
 *   http_life   held across a whole start or stop: one lifecycle change at
 *               a time (start, stop, start again; stop at exit).
 *   http_state  held briefly: the published server pointer. Stop
 *               unpublishes the server under it, then joins the thread
 *               (MHD_stop_daemon) without it.
 *
 * The handler reads only its server (passed as the callback closure), which
 * is immutable while the daemon runs, and takes no lock of this file, so
 * joining its thread cannot deadlock. Counters, the open-connection count
 * and the bound port are atomics; the request counters live for the whole
 * process (Prometheus counters must not go back when the endpoint is
 * restarted).
 *
 * Limits, so a hostile client costs bounded memory and no pipeline time:
 * connections (c->http_max_connections: the accept policy closes each one
 * beyond the cap at once, rather than MHD's own limit, which would leave
 * them waiting in the listen backlog until a slot frees), an idle timeout
 * (c->http_idle_timeout_s), 32 KiB of memory per connection (request line and
 * headers: MHD answers larger ones with 413/431 itself), no request bodies
 * (refused before MHD reads them), MHD's messages to the log at most
 * HTTP_LOG_BURST per minute. libmicrohttpd never writes to stderr (its logger
 * is ours) and sends with MSG_NOSIGNAL: no signal handler is installed.
 *
 * Built without STAGEPROF_WITH_HTTP, start logs that the endpoint is not
 * available and fails; the address parser is built either way.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "capture.h"
#include "http.h"
#include "metrics.h"
#include "util/strbuf.h"

#ifdef STAGEPROF_WITH_HTTP
#include <microhttpd.h>
#endif

/* Longest address string accepted: a full host name plus ":65535". */
#define HTTP_ADDR_MAX 300
#define HTTP_HOST_MAX 256

/* ------------------------------------------------------------------------ */
/* Address parsing (pure)                                                   */
/* ------------------------------------------------------------------------ */

/* 1..5 decimal digits, at most 65535; no sign, no space. */
static int http_parse_port(const char *s, size_t n, int *port)
{
    if (n == 0 || n > 5)
        return STAGEPROF_EINVAL;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return STAGEPROF_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    if (v > 65535)
        return STAGEPROF_EINVAL;
    *port = (int)v;
    return 0;
}

/*
 * A DNS host name: dot-separated labels of letters, digits and '-' (1..63
 * bytes, no '-' at either end), at most 253 bytes. The last label must not
 * be all digits, so "1.2.3.4.5" is not taken for a name.
 */
static int http_is_hostname(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return 0;
    size_t start = 0;
    int all_digits = 1;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            size_t len = i - start;
            if (len == 0 || len > 63 || s[start] == '-' || s[i - 1] == '-')
                return 0;
            if (i == n && all_digits)
                return 0;
            start = i + 1;
            all_digits = 1;
            continue;
        }
        char ch = s[i];
        int digit = ch >= '0' && ch <= '9';
        int alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
        if (!digit && !alpha && ch != '-')
            return 0;
        if (!digit)
            all_digits = 0;
    }
    return 1;
}

/* Copy @n bytes of @s into @host as a string; EINVAL when it does not fit. */
static int http_copy_host(const char *s, size_t n, char *host, size_t len)
{
    if (n + 1 > len)
        return STAGEPROF_EINVAL;
    memcpy(host, s, n);
    host[n] = '\0';
    return 0;
}

int stageprof__http_parse_addr(const char *s, char *host, size_t len, int *port)
{
    if (s == NULL || host == NULL || len == 0 || port == NULL)
        return STAGEPROF_EINVAL;
    size_t n = strnlen(s, HTTP_ADDR_MAX + 1);
    if (n == 0 || n > HTTP_ADDR_MAX)
        return STAGEPROF_EINVAL;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= ' ' || ch >= 0x7f) /* controls, spaces, non-ASCII */
            return STAGEPROF_EINVAL;
    }

    const char *colon = strrchr(s, ':');
    if (s[0] == '[') {
        /* "[V6]:PORT": the literal must be one inet_pton takes. */
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return STAGEPROF_EINVAL;
        size_t hn = (size_t)(close - s - 1);
        char lit[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        if (hn == 0 || hn >= sizeof lit)
            return STAGEPROF_EINVAL;
        memcpy(lit, s + 1, hn);
        lit[hn] = '\0';
        if (inet_pton(AF_INET6, lit, &a6) != 1)
            return STAGEPROF_EINVAL;
        if (http_parse_port(close + 2, strlen(close + 2), port) != 0)
            return STAGEPROF_EINVAL;
        return http_copy_host(lit, hn, host, len);
    }
    if (colon == NULL) {
        /* "PORT": loopback only, never all interfaces by default. */
        if (http_parse_port(s, n, port) != 0)
            return STAGEPROF_EINVAL;
        return http_copy_host("127.0.0.1", 9, host, len);
    }
    /* "HOST:PORT": one colon only (IPv6 needs its brackets). */
    if (strchr(s, ':') != colon)
        return STAGEPROF_EINVAL;
    size_t hn = (size_t)(colon - s);
    char name[HTTP_HOST_MAX];
    if (hn == 0 || hn >= sizeof name)
        return STAGEPROF_EINVAL;
    memcpy(name, s, hn);
    name[hn] = '\0';
    struct in_addr a4;
    if (inet_pton(AF_INET, name, &a4) != 1 && !http_is_hostname(name, hn))
        return STAGEPROF_EINVAL;
    if (http_parse_port(colon + 1, n - hn - 1, port) != 0)
        return STAGEPROF_EINVAL;
    return http_copy_host(name, hn, host, len);
}

#ifdef STAGEPROF_WITH_HTTP

/*
 * @s (text from outside: a setting or a request) made safe for a one-line
 * message: at most 64 bytes, quote, backslash and anything not printable
 * ASCII replaced by '?'. @out holds at least 68 bytes.
 */
static void http_printable(const char *s, char *out, size_t len)
{
    size_t n = 0, i = 0;
    for (; s[i] != '\0' && i < 64 && n + 4 < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[n++] = (ch < ' ' || ch >= 0x7f || ch == '"' || ch == '\\')
                       ? '?'
                       : (char)ch;
    }
    if (s[i] != '\0' && n + 4 <= len) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

/* ------------------------------------------------------------------------ */
/* State                                                                    */
/* ------------------------------------------------------------------------ */

/* Per-connection memory of MHD: bounds the request line plus headers. */
#define HTTP_CONN_MEMORY (32u << 10)
/* Pending connections the kernel holds before MHD accepts them. */
#define HTTP_BACKLOG 64u
/* MHD messages forwarded to the log per minute; the rest are counted. */
#define HTTP_LOG_BURST 10u

/* One running daemon. Immutable while the daemon runs, except start_msg. */
struct http_server {
    struct MHD_Daemon *daemon; /* owned; stopped (joined) by http_stop */
    char *token;               /* owned copy of c->http_token, or NULL */
    size_t token_len;
    unsigned cap;             /* connections open at once, at most */
    int loopback;             /* bound to a loopback address */
    int starting;             /* MHD_start_daemon in progress (atomic) */
    pthread_mutex_t msg_lock; /* guards start_msg */
    char start_msg[256];      /* last MHD message during start */
};

static pthread_mutex_t http_life = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t http_state = PTHREAD_MUTEX_INITIALIZER;
static struct http_server *http_srv; /* published server; under http_state */
static int http_bound_port;          /* atomic; 0 when not serving */

/* Status codes the handler answers, counted for /metrics (atomics). */
static const int http_codes[] = {200, 400, 401, 403, 404, 405, 409, 413, 503};
#define HTTP_NCODES (sizeof http_codes / sizeof http_codes[0])
static uint64_t http_answered[HTTP_NCODES];
static uint64_t http_refused; /* connections closed: over the cap (atomic) */
static unsigned http_open;    /* connections open now (atomic) */

/*
 * Capture threads (see the /capture section): how many run, under
 * http_cap_lock, signalled on http_cap_cond when one ends; http_cap_cancel
 * (atomic) makes them give up at once, set by stop.
 */
static pthread_mutex_t http_cap_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t http_cap_cond = PTHREAD_COND_INITIALIZER;
static int http_cap_running;
static int http_cap_cancel;

/* *con_cls of a request answered on its first call (not a capture). */
static int http_mark;

/* Rate limit of MHD's messages (under http_log_lock). */
static pthread_mutex_t http_log_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t http_log_window_ns; /* start of the current minute */
static unsigned http_log_sent, http_log_dropped;

/* ------------------------------------------------------------------------ */
/* libmicrohttpd's messages                                                 */
/* ------------------------------------------------------------------------ */

/*
 * MHD's logger. While the daemon starts, the message is kept for the
 * warning start writes (a failed bind, a failed thread); afterwards it goes
 * to the log at WARN, at most HTTP_LOG_BURST a minute, because a hostile
 * client can make MHD complain on every connection.
 */
static void http_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct http_server *srv = cls;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    for (size_t i = 0; i < n; i++) /* one line in the log file */
        if ((unsigned char)msg[i] < ' ')
            msg[i] = ' ';

    if (srv != NULL && LOAD_ACQUIRE(&srv->starting)) {
        pthread_mutex_lock(&srv->msg_lock);
        snprintf(srv->start_msg, sizeof srv->start_msg, "%s", msg);
        pthread_mutex_unlock(&srv->msg_lock);
        return;
    }

    uint64_t now = stageprof__clock_mono_ns();
    unsigned dropped = 0;
    int send = 0;
    pthread_mutex_lock(&http_log_lock);
    if (now - http_log_window_ns >= 60000000000ull) {
        http_log_window_ns = now;
        dropped = http_log_dropped;
        http_log_sent = 0;
        http_log_dropped = 0;
    }
    if (http_log_sent < HTTP_LOG_BURST) {
        http_log_sent++;
        send = 1;
    } else {
        http_log_dropped++;
    }
    pthread_mutex_unlock(&http_log_lock);
    if (dropped > 0)
        stageprof__log(STAGEPROF_LOG_WARN,
                       "http: %u more libmicrohttpd messages were dropped",
                       dropped);
    if (send)
        stageprof__log(STAGEPROF_LOG_WARN, "http: libmicrohttpd: %s", msg);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */
/* ------------------------------------------------------------------------ */

/*
 * Accept policy: over the cap, MHD closes the new connection right away
 * (the client sees the connection closed, not a wait). Runs on the server
 * thread, like http_notify, so the count it reads is exact.
 */
static enum MHD_Result http_accept(void *cls, const struct sockaddr *addr,
                                   socklen_t addrlen)
{
    (void)addr;
    (void)addrlen;
    const struct http_server *srv = cls;
    if (LOAD_RELAXED(&http_open) >= srv->cap) {
        __atomic_fetch_add(&http_refused, 1, __ATOMIC_RELAXED);
        return MHD_NO;
    }
    return MHD_YES;
}

static void http_notify(void *cls, struct MHD_Connection *conn, void **ctx,
                        enum MHD_ConnectionNotificationCode what)
{
    (void)cls;
    (void)conn;
    (void)ctx;
    if (what == MHD_CONNECTION_NOTIFY_STARTED)
        __atomic_fetch_add(&http_open, 1, __ATOMIC_RELAXED);
    else if (what == MHD_CONNECTION_NOTIFY_CLOSED)
        __atomic_fetch_sub(&http_open, 1, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------ */
/* Answers                                                                  */
/* ------------------------------------------------------------------------ */

static void http_count(int code)
{
    for (size_t i = 0; i < HTTP_NCODES; i++) {
        if (http_codes[i] == code) {
            __atomic_fetch_add(&http_answered[i], 1, __ATOMIC_RELAXED);
            return;
        }
    }
}

/* Header flags of an answer. */
enum {
    HTTP_CLOSE = 1, /* the request announced a body: close after answering */
    HTTP_ALLOW = 2, /* Allow: GET, HEAD (405) */
    HTTP_AUTH = 4   /* WWW-Authenticate: Bearer (401) */
};

/* Queue @resp with the headers every answer carries; consumes @resp. */
static enum MHD_Result http_queue(struct MHD_Connection *conn, int code,
                                  struct MHD_Response *resp, const char *ctype,
                                  int flags)
{
    if (resp == NULL)
        return MHD_NO; /* out of memory: MHD closes the connection */
    int ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                     ctype) == MHD_YES &&
             MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                                     "no-store") == MHD_YES;
    if (ok && (flags & HTTP_ALLOW))
        ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                     "GET, HEAD") == MHD_YES;
    if (ok && (flags & HTTP_AUTH))
        ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                     "Bearer") == MHD_YES;
    /* The body was not read: the connection cannot carry another request. */
    if (ok && (flags & HTTP_CLOSE))
        ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
                                     "close") == MHD_YES;
    enum MHD_Result rc =
        ok ? MHD_queue_response(conn, (unsigned)code, resp) : MHD_NO;
    MHD_destroy_response(resp);
    if (rc == MHD_YES)
        http_count(code);
    return rc;
}

/* A short text answer; @text is one line ending in "\n". */
static enum MHD_Result http_text(struct MHD_Connection *conn, int code,
                                 const char *text, int flags)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    return http_queue(conn, code, resp, "text/plain; charset=utf-8", flags);
}

static enum MHD_Result http_metrics(struct MHD_Connection *conn, int flags)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, stageprof__malloc, stageprof__free);
    stageprof__metrics_render(&sb);
    if (sb.oom) {
        stageprof__sb_fini(&sb);
        return http_text(conn, 503, "out of memory while rendering metrics\n",
                         flags);
    }
    if (sb.buf == NULL) /* nothing to say: an empty body */
        return http_queue(conn, 200,
                          MHD_create_response_from_buffer(
                              0, (void *)"", MHD_RESPMEM_PERSISTENT),
                          "text/plain; version=0.0.4; charset=utf-8", flags);
    /* MHD owns the text from here and frees it with our allocator. */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback(sb.len, sb.buf,
                                                           stageprof__free);
    if (resp == NULL)
        stageprof__sb_fini(&sb);
    return http_queue(conn, 200, resp,
                      "text/plain; version=0.0.4; charset=utf-8", flags);
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * Constant-time comparison: the loop runs over the longer of both strings
 * whatever their contents and never exits early, so the time says nothing
 * about where they differ.
 */
static int http_token_equal(const char *a, size_t la, const char *b, size_t lb)
{
    size_t n = la > lb ? la : lb;
    size_t diff = la ^ lb;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < la ? (unsigned char)a[i] : 0;
        unsigned char y = i < lb ? (unsigned char)b[i] : 0;
        diff |= (size_t)(x ^ y);
    }
    return diff == 0;
}

/* "Authorization: Bearer <token>" carries the server's token. */
static int http_authorized(const struct http_server *srv,
                           struct MHD_Connection *conn)
{
    if (srv->token == NULL)
        return 1;
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    if (v == NULL || strncasecmp(v, "Bearer ", 7) != 0)
        return 0;
    v += 7;
    while (*v == ' ')
        v++;
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return http_token_equal(v, n, srv->token, srv->token_len);
}

/* The first query argument's name, kept by http_first_arg. */
struct http_arg {
    int found;
    char name[80];
};

static enum MHD_Result http_first_arg(void *cls, enum MHD_ValueKind kind,
                                      const char *key, const char *value)
{
    (void)kind;
    (void)value;
    struct http_arg *a = cls;
    a->found = 1;
    http_printable(key != NULL ? key : "", a->name, sizeof a->name);
    return MHD_NO; /* one is enough */
}

/*
 * Whether the request announces a body: a Content-Length above 0 or any
 * Transfer-Encoding. 413 or 400, 0 when there is none. Checked on the
 * first call, before MHD reads any of it.
 */
static int http_body_status(struct MHD_Connection *conn)
{
    if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                    MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL)
        return 400;
    const char *cl = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl == NULL)
        return 0;
    for (const char *p = cl; *p != '\0'; p++)
        if (*p != '0')
            return 413;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* /capture                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * A capture in progress. The connection is suspended while a capture
 * thread waits and writes; the thread resumes it with the result, and the
 * handler, called again on the server thread, answers. Two references: the
 * connection's (dropped by http_completed) and the thread's.
 *
 *   handler: parse, claim slot, suspend ---> thread: capture_run
 *                                              release slot, done = 1
 *   handler (resumed): answer or close <---- resume, unref
 *   http_completed: unref
 */
struct http_job {
    struct MHD_Connection *conn;
    struct capture_params params;
    int gzip; /* the client accepts gzip */
    int fd;   /* the client's socket, watched for a hang-up */
    int done; /* result ready (atomic) */
    int refs; /* atomic */
    struct capture_result res;
};

static void http_job_unref(struct http_job *job)
{
    if (__atomic_sub_fetch(&job->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    stageprof__capture_result_fini(&job->res);
    stageprof__free(job);
}

/* Query arguments into the parameters; the first problem is kept. */
struct http_cap_args {
    struct capture_params *p;
    int bad;
    char why[200];
};

static enum MHD_Result http_cap_arg(void *cls, enum MHD_ValueKind kind,
                                    const char *key, const char *value)
{
    (void)kind;
    struct http_cap_args *a = cls;
    if (stageprof__capture_param(a->p, key, value, a->why, sizeof a->why) !=
        0) {
        a->bad = 1;
        return MHD_NO;
    }
    return MHD_YES;
}

/*
 * Whether Accept-Encoding takes gzip: a "gzip" (or "*") coding not given
 * q=0. Case-insensitive, blanks ignored.
 */
static int http_accepts_gzip(struct MHD_Connection *conn)
{
    const char *v = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    while (v != NULL && *v != '\0') {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *tok = v;
        while (*v != '\0' && *v != ',' && *v != ';' && *v != ' ' && *v != '\t')
            v++;
        size_t n = (size_t)(v - tok);
        int match = (n == 4 && strncasecmp(tok, "gzip", 4) == 0) ||
                    (n == 1 && tok[0] == '*');
        int q0 = 0;
        while (*v != '\0' && *v != ',') {
            if (*v == ';') {
                const char *q = v + 1;
                while (*q == ' ' || *q == '\t')
                    q++;
                if ((q[0] == 'q' || q[0] == 'Q') && q[1] == '=' &&
                    q[2] == '0') {
                    /* "0", "0.", "0.0", "0.00", "0.000": refused */
                    const char *d = q + 3;
                    if (*d == '.')
                        for (d++; *d == '0'; d++)
                            ;
                    if (*d == '\0' || *d == ',' || *d == ' ' || *d == ';' ||
                        *d == '\t')
                        q0 = 1;
                }
            }
            v++;
        }
        if (match && !q0)
            return 1;
    }
    return 0;
}

/* A capture thread: run, hand the result back, leave. */
static void *http_capture_thread(void *arg)
{
    struct http_job *job = arg;
    (void)stageprof__capture_run(&job->params, job->gzip, &http_cap_cancel,
                                 job->fd, &job->res);
    /* Free the slot before answering, so the client may ask again. */
    stageprof__capture_release();
    STORE_RELEASE(&job->done, 1);
    MHD_resume_connection(job->conn);
    http_job_unref(job);
    pthread_mutex_lock(&http_cap_lock);
    http_cap_running--;
    pthread_cond_broadcast(&http_cap_cond);
    pthread_mutex_unlock(&http_cap_lock);
    return NULL;
}

/* Start @job's thread (detached, all signals blocked); 0 or -1. */
static int http_capture_spawn(struct http_job *job)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return -1;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    pthread_mutex_lock(&http_cap_lock);
    int rc = stageprof__thread_create(&t, &attr, http_capture_thread, job);
    if (rc == 0)
        http_cap_running++;
    pthread_mutex_unlock(&http_cap_lock);
    pthread_attr_destroy(&attr);
    return rc == 0 ? 0 : -1;
}

/* The decimal text of @v into @buf. */
static const char *http_u64(char *buf, size_t len, uint64_t v)
{
    snprintf(buf, len, "%llu", (unsigned long long)v);
    return buf;
}

/* The resumed request of @job: its answer, or closing the connection. */
static enum MHD_Result http_capture_answer(struct MHD_Connection *conn,
                                           struct http_job *job)
{
    if (!LOAD_ACQUIRE(&job->done))
        return MHD_YES; /* cannot happen: only resume calls again */
    struct capture_result *r = &job->res;
    if (r->status == 0)
        return MHD_NO; /* the client went away, or the endpoint stops */
    if (r->status != 200) {
        char line[200];
        snprintf(line, sizeof line, "%s\n", r->reason);
        return http_text(conn, r->status, line, 0);
    }
    /* MHD owns the body from here and frees it with our allocator. */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback(r->len, r->body,
                                                           stageprof__free);
    if (resp == NULL)
        return MHD_NO;
    r->body = NULL;
    char n1[24], n2[24];
    int ok = MHD_add_response_header(resp, "X-Stageprof-Events",
                                     http_u64(n1, sizeof n1, r->events)) ==
                 MHD_YES &&
             MHD_add_response_header(resp, "X-Stageprof-Dropped",
                                     http_u64(n2, sizeof n2, r->dropped)) ==
                 MHD_YES &&
             MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY,
                                     "Accept-Encoding") == MHD_YES;
    if (ok && r->empty_reason != NULL)
        ok = MHD_add_response_header(resp, "X-Stageprof-Empty-Reason",
                                     r->empty_reason) == MHD_YES;
    if (ok && r->left_out > 0)
        ok = MHD_add_response_header(resp, "X-Stageprof-Left-Out",
                                     http_u64(n1, sizeof n1, r->left_out)) ==
             MHD_YES;
    if (ok && r->gzipped)
        ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING,
                                     "gzip") == MHD_YES;
    if (!ok) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    return http_queue(conn, 200, resp, "application/json", 0);
}

/*
 * GET /capture: refused (403) on a non-loopback address without a token,
 * parameters checked (400), one at a time (409), then the connection is
 * suspended and a capture thread does the work.
 */
static enum MHD_Result http_capture(const struct http_server *srv,
                                    struct MHD_Connection *conn, void **con_cls,
                                    int flags)
{
    if (!srv->loopback && srv->token == NULL)
        return http_text(conn, 403,
                         "/capture needs a token on a non-loopback address "
                         "(set STAGEPROF_HTTP_TOKEN)\n",
                         flags);
    struct capture_params params;
    stageprof__capture_params_init(&params);
    struct http_cap_args a = {&params, 0, ""};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, http_cap_arg, &a);
    if (!a.bad && stageprof__capture_check(&params, a.why, sizeof a.why) != 0)
        a.bad = 1;
    if (a.bad) {
        char line[sizeof a.why + 2];
        snprintf(line, sizeof line, "%s\n", a.why);
        return http_text(conn, 400, line, flags);
    }
    if (!stageprof__capture_claim())
        return http_text(
            conn, 409, "a capture is already running (one at a time)\n", flags);
    struct http_job *job = stageprof__calloc(1, sizeof *job);
    if (job == NULL) {
        stageprof__capture_release();
        return http_text(conn, 503, "out of memory\n", flags);
    }
    job->conn = conn;
    job->params = params;
    job->gzip = http_accepts_gzip(conn);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    job->fd = ci != NULL ? (int)ci->connect_fd : -1;
    job->refs = 2;
    /* Suspended before the thread can resume it. */
    MHD_suspend_connection(conn);
    if (http_capture_spawn(job) != 0) {
        MHD_resume_connection(conn);
        job->res.status = 503;
        snprintf(job->res.reason, sizeof job->res.reason,
                 "cannot start the capture thread");
        stageprof__capture_release();
        job->refs = 1;
        STORE_RELEASE(&job->done, 1);
    }
    *con_cls = job;
    return MHD_YES;
}

/* A request ended (answered, failed, or closed): drop its capture job. */
static void http_completed(void *cls, struct MHD_Connection *conn,
                           void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    if (con_cls != NULL && *con_cls != NULL && *con_cls != &http_mark)
        http_job_unref(*con_cls);
    if (con_cls != NULL)
        *con_cls = NULL;
}

static enum MHD_Result http_handler(void *cls, struct MHD_Connection *conn,
                                    const char *url, const char *method,
                                    const char *version,
                                    const char *upload_data,
                                    size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    const struct http_server *srv = cls;

    if (*con_cls != NULL && *con_cls != &http_mark)
        return http_capture_answer(conn, *con_cls); /* resumed */
    if (*con_cls != NULL) {
        /* A body MHD read anyway (never for ours): drop it unread. */
        *upload_data_size = 0;
        return MHD_YES;
    }
    *con_cls = &http_mark;

    int body = http_body_status(conn);
    int flags = body != 0 ? HTTP_CLOSE : 0;
    if (!http_authorized(srv, conn))
        return http_text(conn, 401, "missing or wrong bearer token\n",
                         flags | HTTP_AUTH);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return http_text(conn, 405, "method not allowed (GET or HEAD)\n",
                         flags | HTTP_ALLOW);
    if (body == 413)
        return http_text(conn, 413, "a GET request takes no body\n", flags);
    if (body != 0)
        return http_text(conn, 400, "a GET request takes no body\n", flags);

    int metrics = strcmp(url, "/metrics") == 0;
    if (strcmp(url, "/capture") == 0)
        return http_capture(srv, conn, con_cls, flags);
    if (!metrics && strcmp(url, "/healthz") != 0)
        return http_text(conn, 404,
                         "not found (/metrics, /healthz or /capture)\n", flags);
    struct http_arg arg = {0};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, http_first_arg,
                              &arg);
    if (arg.found) {
        char line[128];
        snprintf(line, sizeof line, "unknown parameter \"%s\"\n", arg.name);
        return http_text(conn, 400, line, flags);
    }
    if (metrics)
        return http_metrics(conn, flags);
    return http_text(conn, 200, "ok\n", flags);
}

/* ------------------------------------------------------------------------ */
/* Start and stop                                                           */
/* ------------------------------------------------------------------------ */

/* strerror without the shared buffer (the GNU and the XSI strerror_r). */
static const char *http_strerror(int e, char *buf, size_t len)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(e, buf, len);
#else
    if (strerror_r(e, buf, len) != 0)
        snprintf(buf, len, "error %d", e);
    return buf;
#endif
}

/*
 * @host as a socket address with @port: a numeric address as it is, a
 * name through getaddrinfo (its first IPv4 address, else its first IPv6
 * one). Returns 0 or a getaddrinfo error (EAI_*).
 */
static int http_resolve(const char *host, int port, struct sockaddr_storage *ss,
                        socklen_t *sslen)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *sslen = sizeof *s4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *sslen = sizeof *s6;
        return 0;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0)
        return rc;
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
        if (ai->ai_family == AF_INET6 && pick == NULL)
            pick = ai;
    }
    if (pick == NULL || pick->ai_addrlen > sizeof *ss) {
        freeaddrinfo(res);
        return EAI_FAMILY;
    }
    memcpy(ss, pick->ai_addr, pick->ai_addrlen);
    *sslen = (socklen_t)pick->ai_addrlen;
    freeaddrinfo(res);
    if (ss->ss_family == AF_INET)
        s4->sin_port = htons((uint16_t)port);
    else
        s6->sin6_port = htons((uint16_t)port);
    return 0;
}

/*
 * After MHD could not start: bind and listen on the same address ourselves
 * to learn why (errno), with the socket options MHD uses. 0 when that
 * works, which means MHD failed for another reason.
 */
static int http_bind_errno(const struct sockaddr_storage *ss, socklen_t len)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    int on = 1, e = 0;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (ss->ss_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    if (bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, 1) != 0)
        e = errno;
    close(fd);
    return e;
}

static void http_server_free(struct http_server *srv)
{
    if (srv == NULL)
        return;
    if (srv->token != NULL) {
        explicit_bzero(srv->token, srv->token_len);
        stageprof__free(srv->token);
    }
    pthread_mutex_destroy(&srv->msg_lock);
    stageprof__free(srv);
}

/* The numeric form of @ss for messages: "1.2.3.4" or "[::1]". */
static void http_addr_text(const struct sockaddr_storage *ss, char *out,
                           size_t len)
{
    char num[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, num,
                  sizeof num);
        snprintf(out, len, "%s", num);
    } else {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, num,
                  sizeof num);
        snprintf(out, len, "[%s]", num);
    }
}

/* 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104. */
static int http_is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    }
    const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(a))
        return 1;
    return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
}

static int http_start_locked(const struct conf *c)
{
    char host[HTTP_HOST_MAX], shown[HTTP_ADDR_MAX];
    int port;
    if (stageprof__http_parse_addr(c->http, host, sizeof host, &port) != 0) {
        http_printable(c->http, shown, sizeof shown);
        stageprof__log_conf(c, STAGEPROF_LOG_WARN,
                            "http: invalid endpoint address \"%s\" (PORT, "
                            "HOST:PORT or [V6]:PORT, port 0 to 65535): "
                            "metrics endpoint off",
                            shown);
        return STAGEPROF_EINVAL;
    }
    struct sockaddr_storage ss;
    socklen_t sslen;
    int gai = http_resolve(host, port, &ss, &sslen);
    if (gai != 0) {
        stageprof__log_conf(c, STAGEPROF_LOG_WARN,
                            "http: cannot resolve \"%s\": %s: metrics "
                            "endpoint off",
                            host, gai_strerror(gai));
        return STAGEPROF_EINVAL;
    }
    char where[INET6_ADDRSTRLEN + 4];
    http_addr_text(&ss, where, sizeof where);

    struct http_server *srv = stageprof__calloc(1, sizeof *srv);
    if (srv == NULL)
        goto oom;
    pthread_mutex_init(&srv->msg_lock, NULL);
    if (c->http_token != NULL) {
        srv->token_len = strlen(c->http_token);
        if ((srv->token = stageprof__strdup(c->http_token)) == NULL)
            goto oom;
    }

    /* ITC: stop and resume wake the thread at once. */
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
                     MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    long long maxc =
        c->http_max_connections > 0 ? c->http_max_connections : 256;
    long long idle = c->http_idle_timeout_s > 0 ? c->http_idle_timeout_s : 10;
    srv->cap = (unsigned)maxc;
    srv->loopback = http_is_loopback(&ss);
    STORE_RELEASE(&http_cap_cancel, 0);
    STORE_RELAXED(&http_open, 0);
    STORE_RELEASE(&srv->starting, 1);
    /*
     * Port 0 given here: the address, port included, comes from SOCK_ADDR.
     * MHD's own limit is one above the cap, so that the accept policy, not
     * MHD, meets the connections beyond it (MHD would stop accepting).
     */
    srv->daemon = MHD_start_daemon(
        flags, 0, http_accept, srv, http_handler, srv,
        MHD_OPTION_EXTERNAL_LOGGER, http_mhd_log, srv,
        MHD_OPTION_NOTIFY_CONNECTION, http_notify, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, http_completed, NULL, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, (unsigned)maxc + 1,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)idle,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, HTTP_BACKLOG, MHD_OPTION_END);
    STORE_RELEASE(&srv->starting, 0);
    if (srv->daemon == NULL) {
        char ebuf[sizeof srv->start_msg];
        int e = http_bind_errno(&ss, sslen);
        if (e != 0) {
            stageprof__log_conf(c, STAGEPROF_LOG_WARN,
                                "http: cannot listen on %s:%d: %s: metrics "
                                "endpoint off",
                                where, port,
                                http_strerror(e, ebuf, sizeof ebuf));
        } else {
            pthread_mutex_lock(&srv->msg_lock);
            snprintf(ebuf, sizeof ebuf, "%s",
                     srv->start_msg[0] ? srv->start_msg : "no reason given");
            pthread_mutex_unlock(&srv->msg_lock);
            stageprof__log_conf(c, STAGEPROF_LOG_WARN,
                                "http: cannot start the server on %s:%d "
                                "(libmicrohttpd: %s): metrics endpoint off",
                                where, port, ebuf);
        }
        http_server_free(srv);
        if (e == EADDRINUSE)
            return STAGEPROF_EBUSY;
        return e != 0 ? stageprof__translate_errno(e) : STAGEPROF_ETHREAD;
    }

    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    int bound = info != NULL ? (int)info->port : port;
    pthread_mutex_lock(&http_state);
    http_srv = srv;
    STORE_RELEASE(&http_bound_port, bound);
    pthread_mutex_unlock(&http_state);
    stageprof__log_conf(c, STAGEPROF_LOG_INFO,
                        "metrics endpoint on http://%s:%d/metrics", where,
                        bound);
    return 0;
oom:
    http_server_free(srv);
    stageprof__log_conf(c, STAGEPROF_LOG_WARN,
                        "http: out of memory: metrics endpoint off");
    return STAGEPROF_ENOMEM;
}

int stageprof__http_start(const struct conf *c)
{
    if (c == NULL || c->http == NULL)
        return STAGEPROF_EINVAL;
    pthread_mutex_lock(&http_life);
    int rc;
    pthread_mutex_lock(&http_state);
    int running = http_srv != NULL;
    pthread_mutex_unlock(&http_state);
    if (running)
        rc = STAGEPROF_EALREADY;
    else
        rc = http_start_locked(c);
    pthread_mutex_unlock(&http_life);
    return rc;
}

void stageprof__http_stop(void)
{
    pthread_mutex_lock(&http_life);
    pthread_mutex_lock(&http_state);
    struct http_server *srv = http_srv;
    http_srv = NULL;
    STORE_RELEASE(&http_bound_port, 0);
    pthread_mutex_unlock(&http_state);
    if (srv != NULL) {
        /*
         * A capture thread resumes its connection before it ends: wait for
         * them (told to give up at once) while the daemon still runs.
         */
        STORE_RELEASE(&http_cap_cancel, 1);
        pthread_mutex_lock(&http_cap_lock);
        while (http_cap_running > 0)
            pthread_cond_wait(&http_cap_cond, &http_cap_lock);
        pthread_mutex_unlock(&http_cap_lock);
        /* Closes every connection and joins the server thread. */
        MHD_stop_daemon(srv->daemon);
        http_server_free(srv);
        STORE_RELAXED(&http_open, 0);
    }
    pthread_mutex_unlock(&http_life);
}

int stageprof__http_port(void)
{
    return LOAD_ACQUIRE(&http_bound_port);
}

void stageprof__http_render(struct strbuf *sb)
{
    /* Counted by http_notify rather than asked of MHD
     * (MHD_DAEMON_INFO_CURRENT_CONNECTIONS), which reads the server
     * thread's own count without a lock. */
    unsigned conns = LOAD_RELAXED(&http_open);

    stageprof__sb_adds(sb, "# HELP stageprof_http_requests_total Requests "
                           "the metrics endpoint answered, by status code "
                           "(not the malformed ones libmicrohttpd answers "
                           "itself).\n"
                           "# TYPE stageprof_http_requests_total counter\n");
    for (size_t i = 0; i < HTTP_NCODES; i++)
        stageprof__sb_addf(
            sb, "stageprof_http_requests_total{code=\"%d\"} %llu\n",
            http_codes[i], (unsigned long long)LOAD_RELAXED(&http_answered[i]));
    stageprof__sb_addf(sb,
                       "# HELP stageprof_http_connections_refused_total "
                       "Connections closed at once: the endpoint had its "
                       "maximum open.\n"
                       "# TYPE stageprof_http_connections_refused_total "
                       "counter\n"
                       "stageprof_http_connections_refused_total %llu\n",
                       (unsigned long long)LOAD_RELAXED(&http_refused));
    stageprof__sb_addf(sb,
                       "# HELP stageprof_http_connections Connections open "
                       "to the metrics endpoint.\n"
                       "# TYPE stageprof_http_connections gauge\n"
                       "stageprof_http_connections %u\n",
                       conns);
}

void stageprof__http_fork(int phase)
{
    /*
     * Only http_state is held across fork(): it is never held while
     * waiting for anything. http_life may be held by a start or a stop in
     * progress (a stop joins the server thread, which may wait for locks
     * the fork handlers hold), so it is not taken, only re-created in the
     * child; a server that thread had not yet published, or had already
     * unpublished, is not seen by the child.
     */
    if (phase == 0) {
        pthread_mutex_lock(&http_state);
        return;
    }
    if (phase == 1) {
        pthread_mutex_unlock(&http_state);
        return;
    }
    pthread_mutex_init(&http_life, NULL);
    pthread_mutex_init(&http_state, NULL);
    pthread_mutex_init(&http_log_lock, NULL);
    /* Capture threads stayed in the parent; so does the slot's owner. */
    pthread_mutex_init(&http_cap_lock, NULL);
    pthread_cond_init(&http_cap_cond, NULL);
    http_cap_running = 0;
    stageprof__capture_release();
    if (http_srv != NULL) {
        /* The server thread stayed in the parent: stopping would join a
         * thread that is not there. Give the port back and forget the
         * server (its memory is the parent's to free). */
        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(http_srv->daemon, MHD_DAEMON_INFO_LISTEN_FD);
        if (info != NULL && info->listen_fd >= 0)
            close(info->listen_fd);
        http_srv = NULL;
        STORE_RELAXED(&http_bound_port, 0);
        STORE_RELAXED(&http_open, 0);
    }
}

#else /* !STAGEPROF_WITH_HTTP */

int stageprof__http_start(const struct conf *c)
{
    if (c == NULL || c->http == NULL)
        return STAGEPROF_EINVAL;
    stageprof__log_conf(c, STAGEPROF_LOG_WARN,
                        "stageprof was built without the HTTP endpoint: "
                        "STAGEPROF_HTTP ignored");
    return STAGEPROF_EINVAL;
}

void stageprof__http_stop(void)
{
}

int stageprof__http_port(void)
{
    return 0;
}

void stageprof__http_render(struct strbuf *sb)
{
    (void)sb;
}

void stageprof__http_fork(int phase)
{
    (void)phase;
}

#endif /* STAGEPROF_WITH_HTTP */

int stageprof_http_get_port(void)
{
    return stageprof__http_port();
}
