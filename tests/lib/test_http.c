/*
 * test_http.c - the embedded HTTP endpoint: the address parser, then a
 * server started on 127.0.0.1:0 and spoken to over plain sockets (routes,
 * status codes, headers, token, restarts, addresses that cannot be served).
 *
 * The endpoint is started through stageprof_start() with cfg.http set;
 * when that leaves no port (core.c not starting the endpoint), the test
 * starts it itself from the same resolved configuration.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "http.h"
#include "net.h"

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                 */
/* ------------------------------------------------------------------------ */

/* Log messages, possibly from the server thread. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char logs[8192];
static int nlogs;

static void log_cb(int level, const char *msg, void *ud)
{
    (void)ud;
    pthread_mutex_lock(&log_lock);
    size_t n = strlen(logs);
    snprintf(logs + n, sizeof logs - n, "%d %s\n", level, msg);
    nlogs++;
    pthread_mutex_unlock(&log_lock);
}

/* A copy of the log so far (caller frees). */
static char *logged(void)
{
    pthread_mutex_lock(&log_lock);
    char *s = strdup(logs);
    pthread_mutex_unlock(&log_lock);
    return s;
}

static void config_for(stageprof_config_t *cfg, const char *addr,
                       const char *token)
{
    stageprof_config_init(cfg);
    cfg->enable = 0;
    cfg->http = addr;
    cfg->http_token = token;
    cfg->log_cb = log_cb;
}

static void require_http(void)
{
    if (!http_built())
        STAGEPROF_SKIP("built without STAGEPROF_WITH_HTTP");
}

/* Start the library serving @addr; returns the bound port. */
static int start_http(const char *addr, const char *token)
{
    require_http();
    stageprof_config_t cfg;
    config_for(&cfg, addr, token);
    ASSERT_EQ(stageprof_start(&cfg), 0);
    if (stageprof_http_get_port() == 0) {
        struct conf c;
        ASSERT_EQ(stageprof__config_resolve(&cfg, &c), 0);
        ASSERT_EQ(stageprof__http_start(&c), 0);
        stageprof__config_fini(&c);
    }
    int port = stageprof_http_get_port();
    ASSERT_GT(port, 0);
    ASSERT_EQ(port, stageprof__http_port());
    return port;
}

static void stop_http(void)
{
    stageprof_stop();
    stageprof__http_stop(); /* no-op when core.c stopped it */
    ASSERT_EQ(stageprof_http_get_port(), 0);
}

/* Send @req as is and read the answer until the server closes. */
static char *exchange(int port, const char *req)
{
    int fd = dial_timeout(port, 10);
    ASSERT_GE(fd, 0);
    size_t n = strlen(req), off = 0;
    while (off < n) {
        ssize_t w = send(fd, req + off, n - off, MSG_NOSIGNAL);
        ASSERT_GT(w, 0);
        off += (size_t)w;
    }
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    char buf[4096];
    ssize_t r;
    while ((r = recv(fd, buf, sizeof buf, 0)) > 0)
        stageprof__sb_add(&sb, buf, (size_t)r);
    ASSERT_EQ(r, 0); /* closed by the server, not timed out */
    close(fd);
    stageprof__sb_add(&sb, "", 1);
    return sb.buf;
}

/* One request with @method, @target and @extra header lines. */
static char *request(int port, const char *method, const char *target,
                     const char *extra)
{
    char req[2048];
    snprintf(req, sizeof req,
             "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n",
             method, target, extra ? extra : "");
    return exchange(port, req);
}

/* The status code of an answer. */
static int status_of(const char *resp)
{
    ASSERT_TRUE(strncmp(resp, "HTTP/1.1 ", 9) == 0 ||
                strncmp(resp, "HTTP/1.0 ", 9) == 0);
    return (int)strtol(resp + 9, NULL, 10);
}

/* The body of an answer (after the blank line). */
static const char *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    ASSERT_NOT_NULL(b);
    return b + 4;
}

/* Whether the header block of @resp has the line "@line" (case as sent). */
static int has_header(const char *resp, const char *line)
{
    const char *end = strstr(resp, "\r\n\r\n");
    const char *p = strstr(resp, line);
    return p != NULL && end != NULL && p < end && p[-1] == '\n' &&
           p[strlen(line)] == '\r';
}

/* ------------------------------------------------------------------------ */
/* Address parsing                                                          */
/* ------------------------------------------------------------------------ */

STAGEPROF_TEST(parse_addr_accepts)
{
    static const struct {
        const char *in, *host;
        int port;
    } ok[] = {
        {"9090", "127.0.0.1", 9090},
        {"0", "127.0.0.1", 0},
        {"65535", "127.0.0.1", 65535},
        {"127.0.0.1:8080", "127.0.0.1", 8080},
        {"0.0.0.0:80", "0.0.0.0", 80},
        {"10.1.2.3:0", "10.1.2.3", 0},
        {"localhost:9100", "localhost", 9100},
        {"metrics-host.example.com:1", "metrics-host.example.com", 1},
        {"[::1]:9090", "::1", 9090},
        {"[::]:0", "::", 0},
        {"[2001:db8::1]:443", "2001:db8::1", 443},
        {"[::ffff:127.0.0.1]:9", "::ffff:127.0.0.1", 9},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char host[256] = "unchanged";
        int port = -1;
        int rc = stageprof__http_parse_addr(ok[i].in, host, sizeof host, &port);
        if (rc != 0)
            TEST_FAIL_("\"%s\" rejected", ok[i].in);
        ASSERT_STREQ(host, ok[i].host);
        ASSERT_EQ(port, ok[i].port);
    }
}

STAGEPROF_TEST(parse_addr_rejects)
{
    char longname[400];
    memset(longname, 'a', sizeof longname);
    memcpy(longname + sizeof longname - 6, ":8080", 6);
    char longlabel[80];
    memset(longlabel, 'b', sizeof longlabel);
    memcpy(longlabel + sizeof longlabel - 4, ":80", 4);
    const char *bad[] = {
        "",
        "junk",
        "localhost",
        ":8080",
        "127.0.0.1:",
        "127.0.0.1",
        "99999",
        "65536",
        "-1",
        "+80",
        " 80",
        "80 ",
        "8 0",
        "0x50",
        "127.0.0.1:-1",
        "127.0.0.1:+80",
        "127.0.0.1:99999",
        "127.0.0.1:080x",
        "1.2.3.4.5:80",
        "256.1.1.1:80",
        "1.2.3:80",
        "::1:80",
        "[::1]",
        "[::1]80",
        "[::1:80",
        "[]:80",
        "[junk]:80",
        "[127.0.0.1]:80",
        "host_name:80",
        "-host:80",
        "host-:80",
        "a..b:80",
        ".:80",
        "http://127.0.0.1:80",
        "127.0.0.1:80/metrics",
        "local\nhost:80",
        "localhost:80\r",
        "\t80",
        "h\xc3\xa9:80",
        "127.0.0.1:0000080",
        longname,
        longlabel,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char host[256] = "unchanged";
        int port = -1;
        if (stageprof__http_parse_addr(bad[i], host, sizeof host, &port) !=
            STAGEPROF_EINVAL)
            TEST_FAIL_("\"%s\" accepted (host %s, port %d)", bad[i], host,
                       port);
    }
    /* Arguments that cannot hold an answer. */
    char host[10];
    int port;
    ASSERT_EQ(stageprof__http_parse_addr(NULL, host, sizeof host, &port),
              STAGEPROF_EINVAL);
    ASSERT_EQ(stageprof__http_parse_addr("80", NULL, 10, &port),
              STAGEPROF_EINVAL);
    ASSERT_EQ(stageprof__http_parse_addr("80", host, 0, &port),
              STAGEPROF_EINVAL);
    ASSERT_EQ(stageprof__http_parse_addr("localhostname:80", host, sizeof host,
                                         &port),
              STAGEPROF_EINVAL); /* host does not fit in 10 bytes */
}

/* ------------------------------------------------------------------------ */
/* Serving                                                                  */
/* ------------------------------------------------------------------------ */

STAGEPROF_TEST(metrics_served)
{
    int port = start_http("127.0.0.1:0", NULL);
    char *r = request(port, "GET", "/metrics", NULL);
    ASSERT_EQ(status_of(r), 200);
    ASSERT_TRUE(has_header(
        r, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    ASSERT_TRUE(has_header(r, "Cache-Control: no-store"));
    ASSERT_CONTAINS(body_of(r),
                    "# TYPE stageprof_http_requests_total counter\n");
    ASSERT_CONTAINS(body_of(r), "# TYPE stageprof_http_connections gauge\n");
    /* This request is open while the body is rendered. */
    ASSERT_CONTAINS(body_of(r), "\nstageprof_http_connections 1\n");
    free(r);
    stop_http();
}

STAGEPROF_TEST(start_logs_the_url)
{
    int port = start_http("127.0.0.1:0", NULL);
    char want[128];
    snprintf(want, sizeof want,
             "2 metrics endpoint on http://127.0.0.1:%d/metrics\n", port);
    char *l = logged();
    ASSERT_CONTAINS(l, want);
    free(l);
    stop_http();
}

STAGEPROF_TEST(healthz_ok)
{
    int port = start_http("127.0.0.1:0", NULL);
    char *r = request(port, "GET", "/healthz", NULL);
    ASSERT_EQ(status_of(r), 200);
    ASSERT_STREQ(body_of(r), "ok\n");
    ASSERT_TRUE(has_header(r, "Cache-Control: no-store"));
    free(r);
    stop_http();
}

STAGEPROF_TEST(head_has_no_body)
{
    int port = start_http("127.0.0.1:0", NULL);
    char *r = request(port, "HEAD", "/metrics", NULL);
    ASSERT_EQ(status_of(r), 200);
    ASSERT_TRUE(has_header(
        r, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    ASSERT_STREQ(body_of(r), "");
    free(r);
    stop_http();
}

STAGEPROF_TEST(unknown_path_404)
{
    int port = start_http("127.0.0.1:0", NULL);
    const char *paths[] = {"/",          "/metric",  "/metrics/",
                           "/healthz/x", "/METRICS", "/captures"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        char *r = request(port, "GET", paths[i], NULL);
        ASSERT_EQ(status_of(r), 404);
        ASSERT_TRUE(has_header(r, "Content-Type: text/plain; charset=utf-8"));
        const char *b = body_of(r);
        ASSERT_TRUE(ends_with(b, "\n") && strchr(b, '\n') == b + strlen(b) - 1);
        free(r);
    }
    stop_http();
}

STAGEPROF_TEST(other_methods_405)
{
    int port = start_http("127.0.0.1:0", NULL);
    const char *methods[] = {"DELETE", "PUT", "OPTIONS", "PATCH", "BREW"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        char *r = request(port, methods[i], "/metrics", NULL);
        ASSERT_EQ(status_of(r), 405);
        ASSERT_TRUE(has_header(r, "Allow: GET, HEAD"));
        ASSERT_TRUE(ends_with(body_of(r), "\n"));
        free(r);
    }
    /* POST without a body is still the wrong method. */
    char *r = request(port, "POST", "/metrics", "Content-Length: 0\r\n");
    ASSERT_EQ(status_of(r), 405);
    free(r);
    stop_http();
}

STAGEPROF_TEST(query_parameter_400)
{
    int port = start_http("127.0.0.1:0", NULL);
    char *r = request(port, "GET", "/metrics?x=1", NULL);
    ASSERT_EQ(status_of(r), 400);
    ASSERT_STREQ(body_of(r), "unknown parameter \"x\"\n");
    free(r);
    r = request(port, "GET", "/healthz?verbose", NULL);
    ASSERT_EQ(status_of(r), 400);
    ASSERT_STREQ(body_of(r), "unknown parameter \"verbose\"\n");
    free(r);
    /* A name that would break the line is shown with '?' in its place. */
    r = request(port, "GET", "/metrics?a%0Ab%22=1", NULL);
    ASSERT_EQ(status_of(r), 400);
    ASSERT_STREQ(body_of(r), "unknown parameter \"a?b?\"\n");
    free(r);
    stop_http();
}

STAGEPROF_TEST(body_on_get_refused)
{
    int port = start_http("127.0.0.1:0", NULL);
    /* The body is announced but never sent: the answer must not wait. */
    char *r = request(port, "GET", "/metrics", "Content-Length: 1000000\r\n");
    ASSERT_EQ(status_of(r), 413);
    ASSERT_TRUE(has_header(r, "Connection: close"));
    free(r);
    r = request(port, "GET", "/metrics", "Transfer-Encoding: chunked\r\n");
    ASSERT_EQ(status_of(r), 400);
    free(r);
    stop_http();
}

STAGEPROF_TEST(huge_header_refused)
{
    int port = start_http("127.0.0.1:0", NULL);
    size_t n = 100000;
    char *big = malloc(n + 64);
    ASSERT_NOT_NULL(big);
    memcpy(big, "X-Big: ", 7);
    memset(big + 7, 'a', n);
    memcpy(big + 7 + n, "\r\n", 3);
    char *req = malloc(n + 256);
    snprintf(req, n + 256, "GET /metrics HTTP/1.1\r\nHost: x\r\n%s\r\n", big);
    int fd = dial_timeout(port, 10);
    ASSERT_GE(fd, 0);
    /* The server may answer and close before all of it is sent. */
    (void)send(fd, req, strlen(req), MSG_NOSIGNAL);
    char buf[512] = "";
    ssize_t got = recv(fd, buf, sizeof buf - 1, 0);
    ASSERT_GT(got, 12);
    int code = (int)strtol(buf + 9, NULL, 10);
    ASSERT_TRUE(code == 431 || code == 413 || code == 400);
    close(fd);
    free(big);
    free(req);
    /* Still serving. */
    char *r = request(port, "GET", "/healthz", NULL);
    ASSERT_EQ(status_of(r), 200);
    free(r);
    stop_http();
}

STAGEPROF_TEST(requests_counted)
{
    int port = start_http("127.0.0.1:0", NULL);
    free(request(port, "GET", "/nowhere", NULL));
    free(request(port, "GET", "/nowhere", NULL));
    free(request(port, "GET", "/healthz", NULL));
    char *r = request(port, "GET", "/metrics", NULL);
    ASSERT_CONTAINS(body_of(r),
                    "stageprof_http_requests_total{code=\"404\"} 2\n");
    /* The request being answered is counted after its body is made. */
    ASSERT_CONTAINS(body_of(r),
                    "stageprof_http_requests_total{code=\"200\"} 1\n");
    free(r);
    stop_http();
}

STAGEPROF_TEST(connections_over_cap_closed)
{
    require_http();
    stageprof_config_t cfg;
    config_for(&cfg, "127.0.0.1:0", NULL);
    cfg.http_max_connections = 2;
    ASSERT_EQ(stageprof_start(&cfg), 0);
    if (stageprof_http_get_port() == 0) {
        struct conf c;
        ASSERT_EQ(stageprof__config_resolve(&cfg, &c), 0);
        ASSERT_EQ(stageprof__http_start(&c), 0);
        stageprof__config_fini(&c);
    }
    int port = stageprof_http_get_port();
    int a = dial_timeout(port, 10), b = dial_timeout(port, 10);
    ASSERT_GE(a, 0);
    ASSERT_GE(b, 0);
    /* The third is accepted by the kernel, then closed at once: EOF (or a
     * reset) before the 10 s receive timeout, without a request. */
    int c3 = dial_timeout(port, 10);
    ASSERT_GE(c3, 0);
    char ch;
    ssize_t r = recv(c3, &ch, 1, 0);
    ASSERT_TRUE(r == 0 || (r < 0 && errno == ECONNRESET));
    close(c3);
    close(a);
    close(b);
    /* Slots free once the server has seen the closes. */
    char *resp = NULL;
    for (int i = 0; i < 100 && resp == NULL; i++) {
        int fd = dial_timeout(port, 10);
        ASSERT_GE(fd, 0);
        const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\n"
                          "Connection: close\r\n\r\n";
        ASSERT_EQ(send(fd, req, strlen(req), MSG_NOSIGNAL),
                  (ssize_t)strlen(req));
        struct strbuf sb;
        stageprof__sb_init(&sb, NULL, NULL);
        char buf[4096];
        while ((r = recv(fd, buf, sizeof buf, 0)) > 0)
            stageprof__sb_add(&sb, buf, (size_t)r);
        close(fd);
        if (sb.len > 0) {
            stageprof__sb_add(&sb, "", 1);
            resp = sb.buf;
        } else {
            stageprof__sb_fini(&sb);
            usleep(20000);
        }
    }
    ASSERT_NOT_NULL(resp);
    ASSERT_EQ(status_of(resp), 200);
    ASSERT_CONTAINS(body_of(resp),
                    "\nstageprof_http_connections_refused_total ");
    ASSERT_TRUE(strstr(body_of(resp),
                       "\nstageprof_http_connections_refused_total 0\n") ==
                NULL);
    free(resp);
    stop_http();
}

STAGEPROF_TEST(token_required)
{
    int port = start_http("127.0.0.1:0", "s3cret-token");
    const char *bad[] = {
        NULL,
        "Authorization: Bearer wrong\r\n",
        "Authorization: Bearer s3cret\r\n",
        "Authorization: Bearer s3cret-token-and-more\r\n",
        "Authorization: Bearer \r\n",
        "Authorization: Basic czNjcmV0LXRva2Vu\r\n",
        "Authorization: s3cret-token\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *paths[] = {"/metrics", "/healthz", "/nowhere"};
        for (size_t j = 0; j < 3; j++) {
            char *r = request(port, "GET", paths[j], bad[i]);
            ASSERT_EQ(status_of(r), 401);
            ASSERT_TRUE(has_header(r, "WWW-Authenticate: Bearer"));
            ASSERT_TRUE(ends_with(body_of(r), "\n"));
            free(r);
        }
    }
    stop_http();
}

STAGEPROF_TEST(token_accepted)
{
    int port = start_http("127.0.0.1:0", "s3cret-token");
    char *r = request(port, "GET", "/metrics",
                      "Authorization: Bearer s3cret-token\r\n");
    ASSERT_EQ(status_of(r), 200);
    free(r);
    /* The scheme is case-insensitive (RFC 7235). */
    r = request(port, "GET", "/healthz",
                "Authorization: bearer s3cret-token\r\n");
    ASSERT_EQ(status_of(r), 200);
    ASSERT_STREQ(body_of(r), "ok\n");
    free(r);
    stop_http();
}

STAGEPROF_TEST(start_stop_twice)
{
    for (int round = 0; round < 2; round++) {
        int port = start_http("127.0.0.1:0", NULL);
        char *r = request(port, "GET", "/healthz", NULL);
        ASSERT_EQ(status_of(r), 200);
        free(r);
        stop_http();
        /* Nothing listens there any more. */
        ASSERT_EQ(dial_timeout(port, 10), -1);
        ASSERT_EQ(errno, ECONNREFUSED);
        stageprof__http_stop(); /* again: a no-op */
    }
}

STAGEPROF_TEST(start_twice_refused)
{
    int port = start_http("127.0.0.1:0", NULL);
    stageprof_config_t cfg;
    config_for(&cfg, "127.0.0.1:0", NULL);
    struct conf c;
    ASSERT_EQ(stageprof__config_resolve(&cfg, &c), 0);
    ASSERT_EQ(stageprof__http_start(&c), STAGEPROF_EALREADY);
    stageprof__config_fini(&c);
    ASSERT_EQ(stageprof_http_get_port(), port);
    stop_http();
}

STAGEPROF_TEST(bad_address_not_served)
{
    require_http();
    const char *bad[] = {"junk", "99999", "-1", "1.2.3.4.5:80",
                         "127.0.0.1:80\nX"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        stageprof_config_t cfg;
        config_for(&cfg, bad[i], NULL);
        struct conf c;
        ASSERT_EQ(stageprof__config_resolve(&cfg, &c), 0);
        int before = nlogs;
        ASSERT_EQ(stageprof__http_start(&c), STAGEPROF_EINVAL);
        stageprof__config_fini(&c);
        ASSERT_EQ(stageprof_http_get_port(), 0);
        ASSERT_EQ(nlogs, before + 1);
    }
    char *l = logged();
    ASSERT_CONTAINS(l, "1 http: invalid endpoint address \"junk\"");
    ASSERT_CONTAINS(l, "\"127.0.0.1:80?X\""); /* one line in the log */
    free(l);
    stageprof__http_stop();
}

STAGEPROF_TEST(port_in_use_not_served)
{
    require_http();
    /* Another listener holds the port. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ASSERT_EQ(listen(fd, 4), 0);
    socklen_t sl = sizeof sa;
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    int port = ntohs(sa.sin_port);

    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    stageprof_config_t cfg;
    config_for(&cfg, addr, NULL);
    struct conf c;
    ASSERT_EQ(stageprof__config_resolve(&cfg, &c), 0);
    ASSERT_EQ(stageprof__http_start(&c), STAGEPROF_EBUSY);
    stageprof__config_fini(&c);
    ASSERT_EQ(stageprof_http_get_port(), 0);
    char want[128];
    snprintf(want, sizeof want,
             "1 http: cannot listen on 127.0.0.1:%d: Address already in use",
             port);
    char *l = logged();
    ASSERT_CONTAINS(l, want);
    free(l);
    close(fd);
}

STAGEPROF_TEST(ipv6_loopback_served)
{
    require_http();
    int probe = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 sa;
    memset(&sa, 0, sizeof sa);
    sa.sin6_family = AF_INET6;
    sa.sin6_addr = in6addr_loopback;
    if (probe < 0 || bind(probe, (struct sockaddr *)&sa, sizeof sa) != 0)
        STAGEPROF_SKIP("no IPv6 loopback here");
    close(probe);

    int port = start_http("[::1]:0", NULL);
    char want[128];
    snprintf(want, sizeof want,
             "2 metrics endpoint on http://[::1]:%d/metrics\n", port);
    char *l = logged();
    ASSERT_CONTAINS(l, want);
    free(l);
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sa.sin6_port = htons((uint16_t)port);
    ASSERT_EQ(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n"
                      "Connection: close\r\n\r\n";
    ASSERT_EQ(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    char buf[512] = "";
    ASSERT_GT(recv(fd, buf, sizeof buf - 1, MSG_WAITALL), 12);
    ASSERT_EQ(status_of(buf), 200);
    close(fd);
    /* Bound to ::1 only: nothing on the IPv4 loopback. */
    ASSERT_EQ(dial_timeout(port, 10), -1);
    stop_http();
}

STAGEPROF_TEST(host_name_resolved)
{
    int port = start_http("localhost:0", NULL);
    char *r = request(port, "GET", "/healthz", NULL);
    ASSERT_EQ(status_of(r), 200);
    free(r);
    stop_http();
}

STAGEPROF_TEST(forked_child_forgets_server)
{
    int port = start_http("127.0.0.1:0", NULL);
    /* What the child's fork handler does (phases 0 and 1 are left out:
     * taken here, before fork() runs the library's own handlers, they
     * would nest the locks in the wrong order). */
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        stageprof__http_fork(2);
        int bad = stageprof_http_get_port() != 0;
        stageprof__http_stop(); /* must not join a thread that is not here */
        _exit(bad ? 1 : 0);
    }
    int status = -1;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The parent still serves. */
    ASSERT_EQ(stageprof_http_get_port(), port);
    char *r = request(port, "GET", "/healthz", NULL);
    ASSERT_EQ(status_of(r), 200);
    free(r);
    stop_http();
}

STAGEPROF_TEST(render_without_server)
{
    require_http();
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    stageprof__http_render(&sb);
    ASSERT_CONTAINS(sb.buf, "stageprof_http_requests_total{code=\"200\"} 0\n");
    ASSERT_CONTAINS(sb.buf, "\nstageprof_http_connections 0\n");
    stageprof__sb_fini(&sb);
}

STAGEPROF_TEST(without_http_says_so)
{
    if (http_built())
        STAGEPROF_SKIP("built with the endpoint");
    stageprof_config_t cfg;
    config_for(&cfg, "127.0.0.1:0", NULL);
    struct conf c;
    ASSERT_EQ(stageprof__config_resolve(&cfg, &c), 0);
    ASSERT_EQ(stageprof__http_start(&c), STAGEPROF_EINVAL);
    stageprof__config_fini(&c);
    ASSERT_EQ(stageprof_http_get_port(), 0);
    char *l = logged();
    ASSERT_CONTAINS(l, "1 stageprof was built without the HTTP endpoint");
    free(l);
    stageprof__http_stop();
}

STAGEPROF_TEST_LIST(
    STAGEPROF_CASE(parse_addr_accepts), STAGEPROF_CASE(parse_addr_rejects),
    STAGEPROF_CASE(metrics_served), STAGEPROF_CASE(start_logs_the_url),
    STAGEPROF_CASE(healthz_ok), STAGEPROF_CASE(head_has_no_body),
    STAGEPROF_CASE(unknown_path_404), STAGEPROF_CASE(other_methods_405),
    STAGEPROF_CASE(query_parameter_400), STAGEPROF_CASE(body_on_get_refused),
    STAGEPROF_CASE(huge_header_refused), STAGEPROF_CASE(requests_counted),
    STAGEPROF_CASE(connections_over_cap_closed), STAGEPROF_CASE(token_required),
    STAGEPROF_CASE(token_accepted), STAGEPROF_CASE(start_stop_twice),
    STAGEPROF_CASE(start_twice_refused), STAGEPROF_CASE(bad_address_not_served),
    STAGEPROF_CASE(port_in_use_not_served),
    STAGEPROF_CASE(ipv6_loopback_served), STAGEPROF_CASE(host_name_resolved),
    STAGEPROF_CASE(forked_child_forgets_server),
    STAGEPROF_CASE(render_without_server), STAGEPROF_CASE(without_http_says_so))
