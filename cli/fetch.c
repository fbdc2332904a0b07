/*
 * fetch.c - one HTTP GET through libcurl's easy interface (see fetch.h).
 *
 * A handle per call: the commands fetch at most once a second, so keeping
 * connections alive is not worth the state. The body goes into a buffer
 * that doubles up to the size cap; a body beyond it aborts the transfer
 * (the write callback refuses the data) and is reported as too large.
 * CURLOPT_NOSIGNAL keeps libcurl's name resolution from using SIGALRM,
 * which the commands' own signal handling must not see.
 */
#include "fetch.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "stageprof/version.h"

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct cli_fetch_result *r = arg;
    size_t n = size * nmemb;
    if (n > r->max - r->len) {
        r->too_big = 1;
        return 0;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 16384;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *p = realloc(r->body, cap);
        if (p == NULL)
            return 0;
        r->body = p;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

/* Header lines of the answer; a new status line (after a 100) restarts. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct cli_fetch_result *r = arg;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0)
        r->hlen = 0;
    size_t room = sizeof r->headers - 1 - r->hlen;
    size_t k = n < room ? n : room;
    memcpy(r->headers + r->hlen, data, k);
    r->hlen += k;
    r->headers[r->hlen] = '\0';
    return n;
}

int cli_fetch_header(const struct cli_fetch_result *r, const char *name,
                     char *buf, size_t len)
{
    size_t k = strlen(name);
    if (len > 0)
        buf[0] = '\0';
    for (const char *p = r->headers; *p;) {
        const char *eol = strchr(p, '\n');
        const char *end = eol ? eol : p + strlen(p);
        if ((size_t)(end - p) > k && p[k] == ':' &&
            strncasecmp(p, name, k) == 0) {
            const char *v = p + k + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            const char *e = end;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            size_t n = (size_t)(e - v);
            if (len > 0) {
                if (n >= len)
                    n = len - 1;
                memcpy(buf, v, n);
                buf[n] = '\0';
            }
            return 1;
        }
        p = eol ? eol + 1 : end;
    }
    return 0;
}

struct progress {
    const struct cli_fetch_opts *o;
    struct cli_fetch_result *r;
};

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    struct progress *p = arg;
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    if (p->o->cancel(p->o->cancel_arg) == 0)
        return 0;
    p->r->cancelled = 1;
    return 1;
}

/* @r->error = @what [": " @detail], on one line. */
static void set_error(struct cli_fetch_result *r, const char *what,
                      const char *detail)
{
    snprintf(r->error, sizeof r->error, "%s%s%s", what,
             detail && *detail ? ": " : "", detail ? detail : "");
    for (char *p = r->error; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    size_t n = strlen(r->error);
    while (n > 0 && (r->error[n - 1] == ' ' || r->error[n - 1] == '.'))
        r->error[--n] = '\0';
}

int cli_fetch(const char *url, const struct cli_fetch_opts *o,
              struct cli_fetch_result *r)
{
    static const struct cli_fetch_opts defaults = {0};
    if (o == NULL)
        o = &defaults;
    memset(r, 0, sizeof *r);
    r->max = o->max_bytes ? o->max_bytes : CLI_FETCH_MAX_BYTES_DEFAULT;

    if (o->token != NULL && strpbrk(o->token, "\r\n") != NULL) {
        set_error(r, "the token holds a line break", NULL);
        return -1;
    }
    CURL *h = curl_easy_init();
    if (h == NULL) {
        set_error(r, "cannot start libcurl", NULL);
        return -1;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    char *auth = NULL;
    int rc = -1;

    curl_easy_setopt(h, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS,
                     (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(h, CURLOPT_USERAGENT,
                     "stageprof/" STAGEPROF_VERSION_STRING);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max);
    struct progress prog = {o, r};
    if (o->cancel != NULL) {
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, &prog);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    }
    if (o->timeout_s > 0) {
        double ms = o->timeout_s * 1000.0;
        long lms = ms > 2e9 ? 2000000000L : ms < 1 ? 1L : (long)ms;
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, lms);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, lms);
    }
    if (o->token != NULL) {
        size_t n = strlen(o->token) + sizeof "Authorization: Bearer ";
        auth = malloc(n);
        if (auth == NULL) {
            set_error(r, "out of memory", NULL);
            goto out;
        }
        snprintf(auth, n, "Authorization: Bearer %s", o->token);
        headers = curl_slist_append(NULL, auth);
        if (headers == NULL) {
            set_error(r, "out of memory", NULL);
            goto out;
        }
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    }

    CURLcode res = curl_easy_perform(h);
    if (res == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
        rc = 0;
    } else if (r->cancelled) {
        set_error(r, "cancelled", NULL);
    } else if (r->too_big) {
        char cap[64];
        snprintf(cap, sizeof cap, "more than %zu bytes", r->max);
        set_error(r, "answer too large", cap);
    } else {
        /* libcurl's own line is the more precise when it wrote one. */
        set_error(r, errbuf[0] ? errbuf : curl_easy_strerror(res), NULL);
    }
out:
    curl_slist_free_all(headers);
    free(auth);
    curl_easy_cleanup(h);
    return rc;
}

char *cli_fetch_url(const char *arg, const char *default_path, char *err,
                    size_t errlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *path = NULL, *full = NULL, *out = NULL;
    if (u == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* No scheme: http (libcurl's own default would be https). */
    char *with = NULL;
    if (strstr(arg, "://") == NULL &&
        (with = malloc(strlen(arg) + sizeof "http://")) != NULL) {
        memcpy(with, "http://", 7);
        memcpy(with + 7, arg, strlen(arg) + 1);
    }
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, with ? with : arg, 0);
    free(with);
    if (uc != CURLUE_OK) {
        snprintf(err, errlen, "%s", curl_url_strerror(uc));
    } else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
               (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        snprintf(err, errlen, "not http:// or https://");
    } else {
        if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK ||
            strcmp(path, "/") == 0)
            curl_url_set(u, CURLUPART_PATH, default_path, 0);
        if (curl_url_get(u, CURLUPART_URL, &full, 0) == CURLUE_OK &&
            (out = malloc(strlen(full) + 1)) != NULL)
            memcpy(out, full, strlen(full) + 1);
        else
            snprintf(err, errlen, "out of memory");
    }
    curl_free(scheme);
    curl_free(path);
    curl_free(full);
    curl_url_cleanup(u);
    return out;
}

void cli_fetch_result_fini(struct cli_fetch_result *r)
{
    free(r->body);
    r->body = NULL;
    r->len = r->cap = 0;
}
