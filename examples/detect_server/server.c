/*
 * server.c - the detection workflow as an HTTP model server
 * (libmicrohttpd), profiled by stageprof.
 *
 *   STAGEPROF_ENABLE=1 ./detect_server [--port N] [--workers W] ...
 *   curl --data-binary @dog.jpg http://127.0.0.1:8080/v1/detect
 *
 *   main:     load_models (engine, outside every run); starts the workers
 *             and the HTTP daemon; waits for SIGINT/SIGTERM (or for
 *             --requests answers); shuts down; prints the summary
 *   http:     libmicrohttpd's one polling thread: reads requests and
 *             routes them. Once a POST /v1/detect body is complete the run
 *             "request" begins; parse_request (serve) checks the body and
 *             hands it to the queue --+ flow "request_handoff", counter
 *             queue_depth; the connection is suspended. Resumed by a
 *             worker, it sends the answer the worker left.
 *   worker-i: queue_pop <--------------+ adopts the request's run;
 *             decode (data), preprocess (preprocess), inference (compute:
 *             the detector), postprocess (postprocess), crop (preprocess),
 *             classify x K (compute), serialize_response (serve); the run
 *             ends; the connection is resumed
 *
 * Why one polling thread, a queue and W workers, rather than a thread per
 * connection: the model is the scarce resource (each worker owns its own
 * darknet networks, which are not thread-safe, and each forward pass keeps
 * a core busy), so the number of requests computing at once is W however
 * many clients connect; reading bodies and writing answers never waits for
 * a model, so /healthz and refusals stay instant under load; and the
 * queue is the one place where a request waits, so its depth and its
 * hand-offs show in the trace as they do in the workflow.
 *
 * Bounds: at most --max-connections connections (libmicrohttpd refuses
 * more), each holding at most one body of at most --max-body bytes: a
 * larger Content-Length is refused before the body is read (413); a
 * chunked body that grows past the limit is thrown away as it arrives
 * and refused at its end (413), or cut off past twice the limit. At most
 * --queue requests wait (a full queue answers 503 at once) and W compute.
 * Headers larger than libmicrohttpd's memory per connection are refused
 * by it (431). A client silent for --timeout seconds is disconnected.
 *
 * Shutdown (SIGINT, SIGTERM, or --requests N answered): the daemon stops
 * accepting connections; the queue closes (later bodies get 503) and the
 * workers drain it and exit; requests still in flight get a few seconds
 * to finish; the daemon stops; the models are freed; the trace is written.
 * A suspended connection is never left behind: every request in the queue
 * is answered and resumed before the workers exit.
 *
 * Settings come from flags or DETECT_SERVER_* variables; a flag wins.
 * Exit status: 0 after a clean shutdown, 1 when set-up failed, 2 on bad
 * usage.
 *
 * What the workflow (examples/detect_workflow) does the same way comes
 * from its files: the stages (stages.c), the queue (handoff.c), the model
 * settings, loading and labels (models.c) and the parsing of flags and
 * variables (settings.c).
 */
#include "handoff.h"
#include "models.h"
#include "settings.h"
#include "stages.h"

#include <stageprof.h>

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROG "detect_server"
#define MAX_WORKERS 64
#define DRAIN_SECONDS 5 /* for requests in flight at shutdown */

/*
 * The server's stages: span name, category, and the slot of stages.h's
 * own-clock table it is timed in (parse_request takes the workflow's
 * "read": both are the input arriving). --slow names these.
 */
#define SERVER_STAGES(X)                                                       \
    X("parse_request", "serve", STAGE_READ)                                    \
    X("decode", "data", STAGE_DECODE)                                          \
    X("queue_pop", "queue", STAGE_QUEUE_POP)                                   \
    X("preprocess", "preprocess", STAGE_PREPROCESS)                            \
    X("inference", "compute", STAGE_DETECT)                                    \
    X("postprocess", "postprocess", STAGE_POSTPROCESS)                         \
    X("crop", "preprocess", STAGE_CROP)                                        \
    X("classify", "compute", STAGE_CLASSIFY)                                   \
    X("serialize_response", "serve", STAGE_SERIALIZE)

static const struct {
    const char *name, *cat;
    int slot;
} server_stages[] = {
#define X(name, cat, slot) {name, cat, slot},
    SERVER_STAGES(X)
#undef X
};
#define SERVER_STAGE_COUNT (int)(sizeof server_stages / sizeof *server_stages)
static const char *const server_stage_names[] = {
#define X(name, cat, slot) name,
    SERVER_STAGES(X)
#undef X
};

static struct options {
    long port, workers, queue, max_conns, timeout, requests;
    long long max_body;
    const char *bind;
    int slow_stage; /* index into server_stages, or -1 */
    long slow_pct;
    int slow_requests; /* honour X-Slow-Ms */
    struct model_opts m;
} opt = {.port = 8080,
         .workers = 2,
         .queue = 8,
         .max_conns = 32,
         .timeout = 30,
         .max_body = 16ll << 20,
         .bind = "127.0.0.1",
         .slow_stage = -1,
         .m = {.darknet_dir = "/usr/share/darknet",
               .input = 256,
               .topk = 2,
               .thresh = 0.5}};

/* Requests ---------------------------------------------------------------- */

/*
 * One HTTP request, from its headers to the end of its answer: a POST to
 * /v1/detect, or a request answered once its (empty) body is read. Owned
 * by the http thread, except between its hand-off and its resumption,
 * when the worker that popped it owns it.
 */
struct request {
    struct MHD_Connection *conn;
    uint64_t id;         /* run id from 1; 0 until the body is complete */
    unsigned char *body; /* the body so far (moves into the frame) */
    size_t len, cap;
    size_t dropped;                /* body bytes read and thrown away */
    unsigned early;                /* status decided before the body's end */
    const char *allow;             /* Allow header of an early 405 */
    char why[224];                 /* reason of an early error */
    long slow_ms;                  /* X-Slow-Ms (with --slow-requests) */
    struct frame *frame;           /* the work, once handed over */
    int done;                      /* the worker's answer is ready: */
    unsigned status;               /* its status, */
    struct MHD_Response *response; /* and response (NULL: out of memory) */
};

/* Answers by status, counted on the http thread; read after it stopped. */
static const unsigned statuses[] = {200, 400, 404, 405, 413, 500, 503};
#define NSTATUS (sizeof statuses / sizeof *statuses)
static long answered[NSTATUS + 1]; /* the last: any other status */

static _Atomic long completed;     /* requests whose connection is done */
static _Atomic long live_requests; /* struct request allocated */
static uint64_t last_id;           /* http thread only */

static void count_status(unsigned status)
{
    size_t i = 0;
    while (i < NSTATUS && statuses[i] != status)
        i++;
    answered[i]++;
}

/*
 * A response holding @t's text (taken: freed by libmicrohttpd, or here
 * when no response could be made), typed JSON, with the request id when
 * there is one. NULL when out of memory.
 */
static struct MHD_Response *json_response(struct text *t, uint64_t id)
{
    if (t->oom) {
        free(t->p);
        return NULL;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(t->len, t->p, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(t->p);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json");
    if (id != 0) {
        char buf[32];
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)id);
        MHD_add_response_header(resp, "X-Request-Id", buf);
    }
    return resp;
}

/* The one-line JSON error answer: {"status":..,"error":..[,"request":..]}. */
static struct MHD_Response *error_response(unsigned status, uint64_t id,
                                           const char *why)
{
    struct text t = {0};
    text_add(&t, "{\"status\":%u,\"error\":", status);
    text_add_str(&t, why);
    if (id != 0)
        text_add(&t, ",\"request\":%llu", (unsigned long long)id);
    text_add(&t, "}\n");
    return json_response(&t, id);
}

/* Queue @resp (destroyed here) as the answer; MHD_NO closes the line. */
static enum MHD_Result send_response(struct MHD_Connection *conn,
                                     unsigned status, struct MHD_Response *resp)
{
    if (resp == NULL)
        return MHD_NO;
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    if (rc == MHD_YES)
        count_status(status);
    return rc;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status,
                                  uint64_t id, const char *allow,
                                  const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* An error answer; @allow, when set, is the Allow header of a 405. */
static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status,
                                  uint64_t id, const char *allow,
                                  const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    struct MHD_Response *resp = error_response(status, id, why);
    if (resp != NULL && allow != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    return send_response(conn, status, resp);
}

/* Queue ------------------------------------------------------------------- */

/* Bounded FIFO of requests handed from the http thread to the workers;
 * its opt.queue slots are allocated in main. */
static struct handoff queue = {.lock = PTHREAD_MUTEX_INITIALIZER,
                               .not_empty = PTHREAD_COND_INITIALIZER,
                               .not_full = PTHREAD_COND_INITIALIZER};

/*
 * Hand @r to the workers: the end of parse_request, whose @span and own
 * clock @clk this closes. Returns 0, or the status to answer with the
 * reason in @why. Never waits: a full queue is an answer (503), not a
 * stall of the thread that serves every connection. The connection is
 * suspended, and the span ends, under the queue's lock: no worker can
 * take the request (and resume the connection, or end the run) before.
 */
static unsigned queue_push(struct request *r, stageprof_span_t *span,
                           struct stage_clock *clk, char *why, size_t len)
{
    unsigned status = 0;
    pthread_mutex_lock(&queue.lock);
    if (queue.closed) {
        status = MHD_HTTP_SERVICE_UNAVAILABLE;
        snprintf(why, len, "shutting down: no new requests");
    } else if (queue.count == queue.cap) {
        status = MHD_HTTP_SERVICE_UNAVAILABLE;
        snprintf(why, len, "busy: %d requests are waiting already, try again",
                 queue.count);
    } else {
        MHD_suspend_connection(r->conn);
        STAGEPROF_FLOW_BEGIN("request_handoff", r->id);
        handoff_put(&queue, r);
    }
    stage_clock_stop(clk);
    STAGEPROF_SPAN_END(*span);
    pthread_mutex_unlock(&queue.lock);
    return status;
}

/*
 * A request taken off the queue by a worker (handoff_pop: the wait is in
 * the span but in no run): the request's run is adopted once it is in
 * hand, and the hand-off's flow ends there.
 */
static void adopt_request(void *item)
{
    const struct request *r = item;
    STAGEPROF_RUN_SET(r->id);
    STAGEPROF_FLOW_END("request_handoff", r->id);
}

/* The http thread --------------------------------------------------------- */

/*
 * The body is complete: the request becomes a run. parse_request checks
 * it and hands it over; a body that cannot be an image, or no room in the
 * queue, ends the run here with the answer.
 */
static enum MHD_Result hand_over(struct request *r)
{
    char why[256] = "";
    unsigned status = 0;
    r->id = ++last_id;
    STAGEPROF_RUN_BEGIN("request", r->id);
    STAGEPROF_SPAN_BEGIN(span, "parse_request", "serve");
    struct stage_clock clk = stage_clock_start(STAGE_READ);
    STAGEPROF_ARG_INT(span, "bytes", r->len);
    const unsigned char *b = r->body;
    if (r->len == 0) {
        status = MHD_HTTP_BAD_REQUEST;
        snprintf(why, sizeof why, "empty body: send the JPEG's bytes");
    } else if (r->len < 3 || b[0] != 0xFF || b[1] != 0xD8 || b[2] != 0xFF) {
        status = MHD_HTTP_BAD_REQUEST;
        snprintf(why, sizeof why,
                 "not a JPEG: the body does not start with FF D8 FF");
    } else if ((r->frame = calloc(1, sizeof *r->frame)) == NULL) {
        status = MHD_HTTP_SERVICE_UNAVAILABLE;
        snprintf(why, sizeof why, "out of memory");
    }
    if (status != 0) {
        stage_clock_stop(&clk);
        STAGEPROF_SPAN_END(span);
    } else {
        /* The body moves into the frame; decode frees it. */
        r->frame->id = r->id;
        r->frame->path = "request body";
        r->frame->file = r->body;
        r->frame->file_len = r->len;
        r->body = NULL;
        status = queue_push(r, &span, &clk, why, sizeof why);
    }
    if (status == 0) {
        /* The request belongs to a worker now: stop charging it here. */
        STAGEPROF_RUN_SET(0);
        return MHD_YES;
    }
    STAGEPROF_RUN_END("request", r->id);
    return send_error(r->conn, status, r->id, NULL, "%s", why);
}

/* The request says a body follows. */
static int has_body(struct MHD_Connection *conn)
{
    const char *cl = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_TRANSFER_ENCODING) !=
               NULL ||
           (cl != NULL && strcmp(cl, "0") != 0);
}

static const char health_ok[] = "{\"status\":\"ok\"}\n";

/* The answer decided before the body's end: health, or an error. */
static enum MHD_Result send_early(struct request *r)
{
    if (r->early != MHD_HTTP_OK)
        return send_error(r->conn, r->early, 0, r->allow, "%s", r->why);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        sizeof health_ok - 1, (void *)health_ok, MHD_RESPMEM_PERSISTENT);
    if (resp != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "application/json");
    return send_response(r->conn, MHD_HTTP_OK, resp);
}

/*
 * The first call of a request: its headers are in, its body is not. A
 * request for /v1/detect gets a struct request to gather its body in;
 * so does any other request without a body, answered on the next call
 * (libmicrohttpd closes the connection after an answer given now, which a
 * request with a body needs: its body is never read).
 */
static enum MHD_Result route(struct MHD_Connection *conn, const char *url,
                             const char *method, void **con_cls)
{
    unsigned early = 0;
    const char *allow = NULL;
    char why[sizeof((struct request *)0)->why] = "";
    long long slow_ms = 0;
    if (strcmp(url, "/healthz") == 0) {
        if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
            early = MHD_HTTP_OK;
        } else {
            early = MHD_HTTP_METHOD_NOT_ALLOWED;
            allow = "GET, HEAD";
            snprintf(why, sizeof why, "%.64s is not allowed on %s: use GET",
                     method, url);
        }
    } else if (strcmp(url, "/v1/detect") != 0) {
        early = MHD_HTTP_NOT_FOUND;
        snprintf(why, sizeof why,
                 "no such path: %.100s (POST /v1/detect, GET /healthz)", url);
    } else if (strcmp(method, "POST") != 0) {
        early = MHD_HTTP_METHOD_NOT_ALLOWED;
        allow = "POST";
        snprintf(why, sizeof why, "%.64s is not allowed on %s: POST a JPEG",
                 method, url);
    } else {
        const char *cl = MHD_lookup_connection_value(
            conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        long long n =
            cl != NULL ? settings_number(cl, 0, 0x7fffffffffffffffll) : 0;
        if (n > opt.max_body)
            return send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, 0, NULL,
                              "body of %lld bytes is larger than the limit "
                              "of %lld bytes",
                              n, opt.max_body);
        const char *sl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Slow-Ms");
        if (sl != NULL && opt.slow_requests &&
            (slow_ms = settings_number(sl, 1, 10000)) < 0)
            return send_error(conn, MHD_HTTP_BAD_REQUEST, 0, NULL,
                              "X-Slow-Ms must be a whole number of "
                              "milliseconds from 1 to 10000");
    }
    if (early != 0 && has_body(conn))
        return send_error(conn, early, 0, allow, "%s", why);
    struct request *r = calloc(1, sizeof *r);
    if (r == NULL)
        return send_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, 0, NULL,
                          "out of memory");
    r->conn = conn;
    r->slow_ms = (long)slow_ms;
    r->early = early;
    r->allow = allow;
    memcpy(r->why, why, sizeof why);
    atomic_fetch_add(&live_requests, 1);
    *con_cls = r;
    return MHD_YES;
}

/* Append a piece of the body; 0, 1 past the limit, -1 out of memory. */
static int body_add(struct request *r, const char *data, size_t n)
{
    if (n > (size_t)opt.max_body - r->len)
        return 1;
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 65536;
        while (cap < r->len + n)
            cap *= 2;
        if (cap > (size_t)opt.max_body)
            cap = (size_t)opt.max_body;
        unsigned char *p = realloc(r->body, cap);
        if (p == NULL)
            return -1;
        r->body = p;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    return 0;
}

/*
 * A piece of the body. Once the answer is known (the body passed the
 * limit, which only a body without Content-Length can do) the rest is
 * read and thrown away, since libmicrohttpd answers only after the whole
 * request; a body that goes on past twice the limit is cut off.
 */
static enum MHD_Result on_upload(struct request *r, const char *data, size_t n)
{
    if (r->early != 0) {
        r->dropped += n;
        return r->dropped > 2 * (size_t)opt.max_body ? MHD_NO : MHD_YES;
    }
    int rc = body_add(r, data, n);
    if (rc == 0)
        return MHD_YES;
    r->early =
        rc > 0 ? MHD_HTTP_CONTENT_TOO_LARGE : MHD_HTTP_SERVICE_UNAVAILABLE;
    if (rc > 0)
        snprintf(r->why, sizeof r->why,
                 "body longer than the limit of %lld bytes", opt.max_body);
    else
        snprintf(r->why, sizeof r->why, "out of memory for the body");
    r->dropped = r->len + n;
    free(r->body);
    r->body = NULL;
    r->len = r->cap = 0;
    return MHD_YES;
}

/* libmicrohttpd's handler: called for the headers, each piece of the
 * body, its end, and again after a worker resumes the connection. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)version;
    static _Thread_local int named;
    if (!named) {
        stageprof_thread_set_name("http");
        stageprof_thread_set_sort_index(1);
        named = 1;
    }
    struct request *r = *con_cls;
    if (r == NULL)
        return route(conn, url, method, con_cls);
    if (r->done) {
        /* Resumed; without a response the connection is closed. */
        struct MHD_Response *resp = r->response;
        r->response = NULL;
        r->done = 0;
        return send_response(conn, r->status, resp);
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return on_upload(r, upload_data, n);
    }
    if (r->early != 0)
        return send_early(r);
    if (r->id != 0)
        return MHD_YES; /* handed over, not resumed yet */
    return hand_over(r);
}

/* The connection is done with a request (answered, or the client left). */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct request *r = *con_cls;
    if (r != NULL) {
        if (r->response != NULL)
            MHD_destroy_response(r->response);
        frame_release(r->frame);
        free(r->body);
        free(r);
        *con_cls = NULL;
        atomic_fetch_sub(&live_requests, 1);
    }
    atomic_fetch_add(&completed, 1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    fprintf(stderr, PROG ": libmicrohttpd: %s\n", msg);
}

/* Workers ----------------------------------------------------------------- */

/* The detector's forward pass: the workflow's detect, named for serving. */
/* @slow_ms: a deliberate outlier (X-Slow-Ms), slept inside the stage. */
static int run_inference(struct frame *f, const struct models *m, long slow_ms)
{
    STAGEPROF_SCOPE(span, "inference", "compute");
    struct stage_clock clk = stage_clock_start(STAGE_DETECT);
    network_predict(m->det, f->input.data);
    STAGEPROF_ARG_INT(span, "input", m->det->w);
    if (slow_ms > 0) {
        struct timespec ts = {slow_ms / 1000, (slow_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        STAGEPROF_ARG_INT(span, "slow_ms", slow_ms);
    }
    stage_clock_stop(&clk);
    return 0;
}

/*
 * The answer for a resumed connection: the detections as JSON (200), or
 * the reason the picture could not be used (@status, f->err).
 */
static void serialize_response(struct request *r, unsigned status)
{
    STAGEPROF_SCOPE(span, "serialize_response", "serve");
    struct stage_clock clk = stage_clock_start(STAGE_SERIALIZE);
    struct frame *f = r->frame;
    struct MHD_Response *resp = NULL;
    if (status == MHD_HTTP_OK) {
        struct text t = {0};
        text_add(&t, "{\"request\":%llu,", (unsigned long long)r->id);
        f->kept = frame_answer_add(&t, f, 1);
        text_add(&t, "}\n");
        resp = json_response(&t, r->id);
        STAGEPROF_ARG_INT(span, "detections", f->kept);
        if (resp == NULL) {
            status = MHD_HTTP_INTERNAL_SERVER_ERROR;
            snprintf(f->err, sizeof f->err, "out of memory for the answer");
        }
    }
    if (status != MHD_HTTP_OK)
        resp = error_response(status, r->id, f->err);
    STAGEPROF_ARG_INT(span, "status", status);
    r->status = status;
    r->response = resp;
    r->done = 1;
    stage_clock_stop(&clk);
}

static void process(struct request *r, const struct models *m)
{
    struct frame *f = r->frame;
    unsigned status = MHD_HTTP_OK;
    if (stage_decode(f) != 0) {
        status = MHD_HTTP_BAD_REQUEST;
    } else if (stage_preprocess(f, m) != 0 ||
               run_inference(f, m, r->slow_ms) != 0 ||
               stage_postprocess(f, m) != 0 || stage_crop(f, m) != 0) {
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    } else {
        for (int i = 0; i < f->nbest && status == MHD_HTTP_OK; i++)
            if (stage_classify(f, m, i) != 0)
                status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    serialize_response(r, status);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    worker_name_thread(w);
    struct request *r;
    while ((r = handoff_pop(&queue, adopt_request)) != NULL) {
        process(r, &w->models);
        /* The pixels and boxes are not needed for sending. */
        frame_release(r->frame);
        r->frame = NULL;
        /* Ends the run and clears this thread's current run. */
        STAGEPROF_RUN_END("request", r->id);
        /* The last touch: from here the http thread owns @r again. */
        MHD_resume_connection(r->conn);
    }
    return NULL;
}

/* Start-up ---------------------------------------------------------------- */

/* The listening address from --bind and --port; 0, or -1 when bad. */
static int make_address(struct sockaddr_storage *ss, int *v6)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, opt.bind, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)opt.port);
        *v6 = 0;
        return 0;
    }
    if (inet_pton(AF_INET6, opt.bind, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)opt.port);
        *v6 = 1;
        return 0;
    }
    return -1;
}

static struct MHD_Daemon *start_http(void)
{
    struct sockaddr_storage ss;
    int v6 = 0;
    make_address(&ss, &v6); /* checked with the options */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     (v6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)opt.port, NULL, NULL, on_request, NULL,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)opt.max_conns, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)opt.timeout, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_END);
    if (d == NULL)
        fprintf(stderr, PROG ": cannot listen on %s port %ld\n", opt.bind,
                opt.port);
    return d;
}

/* Options ----------------------------------------------------------------- */

static void usage(FILE *to)
{
    fprintf(to,
            "usage: " PROG " [options]\n"
            "  --port N            TCP port, 0..65535; 0 picks a free one "
            "(default 8080)\n"
            "  --bind ADDR         IPv4 or IPv6 address to listen on "
            "(default 127.0.0.1)\n"
            "  --workers W         worker threads, each with its own models, "
            "1..64 (default 2)\n"
            "  --queue N           requests waiting for a worker, 1..1024; "
            "more get 503\n"
            "                      (default 8)\n"
            "  --max-body BYTES    largest body, with an optional K, M or G "
            "suffix, up to 1G\n"
            "                      (default 16M); larger ones get 413\n"
            "  --max-connections N open connections, 1..10000 (default 32)\n"
            "  --timeout S         seconds a silent client is kept, 1..3600 "
            "(default 30)\n"
            "  --requests N        exit after N requests (0: never, the "
            "default)\n"
            "  --input S           detector input side, a multiple of 32 in "
            "64..1024\n"
            "                      (default 256)\n"
            "  --topk K            boxes cropped and classified per request, "
            "0..32 (default 2)\n"
            "  --slow STAGE:PCT    make STAGE slower by PCT%% (1..1000) of its "
            "own CPU time\n"
            "  --thresh T          detection score threshold, 0..1 (default "
            "0.5)\n"
            "  --darknet-dir DIR   darknet's cfg/ and data/ (default "
            "/usr/share/darknet)\n"
            "  --cfg FILE          detector config (default "
            "DIR/cfg/yolov3-tiny.cfg)\n"
            "  --weights FILE      detector weights (default: random "
            "weights)\n"
            "  --classifier-cfg FILE      crop classifier config (default "
            "DIR/cfg/tiny.cfg)\n"
            "  --classifier-weights FILE  its weights (default: random "
            "weights)\n"
            "  --verbose           let darknet print its layer tables\n"
            "  --slow-requests     honour a request's X-Slow-Ms header "
            "(1..10000): its\n"
            "                      inference stage takes that much longer (a "
            "deliberate outlier)\n"
            "Each setting but the model files also comes from DETECT_SERVER_"
            "<NAME>\n(DETECT_SERVER_PORT, DETECT_SERVER_MAX_BODY, ...); a "
            "flag wins.\n"
            "Stages: parse_request decode queue_pop preprocess inference "
            "postprocess crop\n"
            "        classify serialize_response\n"
            "Endpoints: POST /v1/detect (a JPEG body), GET /healthz.\n"
            "Set STAGEPROF_ENABLE=1 to write a trace at exit, STAGEPROF_HTTP="
            "PORT for\n/metrics.\n");
}

/* Digits with an optional K, M or G (powers of 1024); -1 when bad. */
static long long parse_bytes(const char *s)
{
    char digits[32];
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n >= sizeof digits)
        return -1;
    memcpy(digits, s, n);
    digits[n] = '\0';
    long long v = settings_number(digits, 0, 1ll << 30), mult = 1;
    const char *suf = s + n;
    if (strcmp(suf, "K") == 0 || strcmp(suf, "k") == 0)
        mult = 1ll << 10;
    else if (strcmp(suf, "M") == 0 || strcmp(suf, "m") == 0)
        mult = 1ll << 20;
    else if (strcmp(suf, "G") == 0 || strcmp(suf, "g") == 0)
        mult = 1ll << 30;
    else if (*suf != '\0')
        return -1;
    if (v < 1 || v > (1ll << 30) / mult)
        return -1;
    return v * mult;
}

/* Settings that take a number: flag name, variable, range, where. */
static const struct {
    const char *flag, *var;
    long lo, hi;
    long *dst;
} numeric[] = {
    {"port", "DETECT_SERVER_PORT", 0, 65535, &opt.port},
    {"workers", "DETECT_SERVER_WORKERS", 1, MAX_WORKERS, &opt.workers},
    {"queue", "DETECT_SERVER_QUEUE", 1, 1024, &opt.queue},
    {"max-connections", "DETECT_SERVER_MAX_CONNECTIONS", 1, 10000,
     &opt.max_conns},
    {"timeout", "DETECT_SERVER_TIMEOUT", 1, 3600, &opt.timeout},
    {"requests", "DETECT_SERVER_REQUESTS", 0, 1000000000, &opt.requests},
};

/* The model settings that also come from variables: variable, flag. */
static const char *const model_vars[][2] = {
    {"DETECT_SERVER_INPUT", "input"},
    {"DETECT_SERVER_TOPK", "topk"},
    {"DETECT_SERVER_THRESH", "thresh"},
};

/* One setting from flag or variable @what; 0, or -1 when @v is bad. */
static int set_option(const char *what, const char *v)
{
    for (size_t i = 0; i < sizeof numeric / sizeof *numeric; i++)
        if (strcmp(what, numeric[i].flag) == 0 ||
            strcmp(what, numeric[i].var) == 0) {
            long long n = settings_number(v, numeric[i].lo, numeric[i].hi);
            if (n < 0)
                return -1;
            *numeric[i].dst = (long)n;
            return 0;
        }
    if (strcmp(what, "max-body") == 0 ||
        strcmp(what, "DETECT_SERVER_MAX_BODY") == 0)
        return (opt.max_body = parse_bytes(v)) < 0 ? -1 : 0;
    if (strcmp(what, "slow") == 0 || strcmp(what, "DETECT_SERVER_SLOW") == 0)
        return settings_slow(v, server_stage_names, SERVER_STAGE_COUNT,
                             &opt.slow_stage, &opt.slow_pct);
    if (strcmp(what, "bind") == 0 || strcmp(what, "DETECT_SERVER_BIND") == 0) {
        struct sockaddr_storage ss;
        int v6;
        opt.bind = v;
        return make_address(&ss, &v6);
    }
    for (size_t i = 0; i < sizeof model_vars / sizeof *model_vars; i++)
        if (strcmp(what, model_vars[i][0]) == 0)
            what = model_vars[i][1];
    return model_opts_set(&opt.m, what, v) == 0 ? 0 : -1;
}

static int set_switch(const char *flag)
{
    if (strcmp(flag, "--verbose") == 0)
        opt.m.verbose = 1;
    else if (strcmp(flag, "--slow-requests") == 0)
        opt.slow_requests = 1;
    else
        return 0;
    return 1;
}

/* Variables first, flags after: a flag wins. 0, or the exit status. */
static int parse_args(int argc, char **argv)
{
    static const char *const vars[] = {
        "DETECT_SERVER_PORT",     "DETECT_SERVER_BIND",
        "DETECT_SERVER_WORKERS",  "DETECT_SERVER_QUEUE",
        "DETECT_SERVER_MAX_BODY", "DETECT_SERVER_MAX_CONNECTIONS",
        "DETECT_SERVER_TIMEOUT",  "DETECT_SERVER_REQUESTS",
        "DETECT_SERVER_INPUT",    "DETECT_SERVER_TOPK",
        "DETECT_SERVER_SLOW",     "DETECT_SERVER_THRESH"};
    static const struct settings settings = {
        PROG,       vars,       sizeof vars / sizeof vars[0],
        set_option, set_switch, usage};
    return settings_parse(&settings, argc, argv);
}

/* Main -------------------------------------------------------------------- */

/*
 * Until SIGINT or SIGTERM arrives (blocked in every thread, taken here) or
 * --requests requests are done. Returns the signal, or 0.
 */
static int wait_for_stop(const sigset_t *set)
{
    for (;;) {
        struct timespec tick = {0, 50 * 1000000};
        int sig = sigtimedwait(set, NULL, &tick);
        if (sig > 0)
            return sig;
        if (opt.requests > 0 && atomic_load(&completed) >= opt.requests)
            return 0;
    }
}

static void print_summary(int workers, double seconds)
{
    long total = 0;
    for (size_t i = 0; i <= NSTATUS; i++)
        total += answered[i];
    printf(PROG ": %ld requests answered in %.2f s, %d workers, input "
                "%ldx%ld, top-%ld crops; by status:",
           total, seconds, workers, opt.m.input, opt.m.input, opt.m.topk);
    for (size_t i = 0; i <= NSTATUS; i++)
        if (answered[i] > 0) {
            if (i < NSTATUS)
                printf(" %u x%ld", statuses[i], answered[i]);
            else
                printf(" other x%ld", answered[i]);
        }
    printf("\n");
    if (opt.slow_stage >= 0)
        printf(PROG ": %s slowed down by %ld%% (busy work)\n",
               server_stages[opt.slow_stage].name, opt.slow_pct);
    printf(PROG ": own timings (clocks around each stage call; queue_pop "
                "is a wait):\n");
    printf("  %-20s %-12s %7s %10s %10s %10s\n", "stage", "category", "calls",
           "mean ms", "total s", "cpu s");
    for (int i = 0; i < SERVER_STAGE_COUNT; i++) {
        struct stage_totals st;
        stage_totals_get(server_stages[i].slot, &st);
        printf("  %-20s %-12s %7llu %10.2f %10.3f %10.3f\n",
               server_stages[i].name, server_stages[i].cat,
               (unsigned long long)st.calls,
               st.calls ? (double)st.wall_ns / (double)st.calls / 1e6 : 0.0,
               (double)st.wall_ns / 1e9, (double)st.cpu_ns / 1e9);
    }
}

/* Requests in flight finish, or DRAIN_SECONDS pass. */
static void drain(void)
{
    uint64_t end = stage_now_ns() + DRAIN_SECONDS * 1000000000ull;
    while (atomic_load(&live_requests) > 0 && stage_now_ns() < end) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
}

int main(int argc, char **argv)
{
    int status = parse_args(argc, argv);
    if (status != 0)
        return status;

    /* Blocked before any thread starts, so every thread inherits it and
     * only wait_for_stop takes them. */
    sigset_t stop_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
    signal(SIGPIPE, SIG_IGN);

    stageprof_process_set_name(PROG);
    stageprof_thread_set_name("main");
    static struct worker workers[MAX_WORKERS];
    struct labels det_labels, cls_labels;
    model_opts_apply(&opt.m, &det_labels, &cls_labels);
    if (opt.slow_stage >= 0)
        stage_cfg.slow_stage = server_stages[opt.slow_stage].slot;
    stage_cfg.slow_pct = (int)opt.slow_pct;

    int loaded = (int)opt.workers, started = 0, v6 = 0;
    struct MHD_Daemon *d = NULL;
    const union MHD_DaemonInfo *info;
    double seconds = 0.0;
    status = 1;
    for (int i = 0; i < loaded; i++)
        workers[i].index = i;
    queue.items = calloc((size_t)opt.queue, sizeof *queue.items);
    queue.cap = (int)opt.queue;
    if (queue.items == NULL ||
        workers_load_models(workers, loaded, &opt.m, PROG) != 0)
        goto out;
    stage_cfg.crop_side = workers[0].models.cls->w;

    while (started < opt.workers &&
           pthread_create(&workers[started].thread, NULL, worker_main,
                          &workers[started]) == 0)
        started++;
    if (started < opt.workers) {
        fprintf(stderr, PROG ": cannot start the worker threads\n");
        goto stop;
    }
    if ((d = start_http()) == NULL)
        goto stop;
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    v6 = strchr(opt.bind, ':') != NULL;
    printf("listening on %s%s%s:%u\n", v6 ? "[" : "", opt.bind, v6 ? "]" : "",
           info != NULL ? (unsigned)info->port : (unsigned)opt.port);
    fflush(stdout);

    uint64_t t0 = stage_now_ns();
    int sig = wait_for_stop(&stop_set);
    if (sig != 0)
        printf(PROG ": %s, shutting down\n",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
    else
        printf(PROG ": %ld requests done, shutting down\n", opt.requests);
    fflush(stdout);
    MHD_socket listener = MHD_quiesce_daemon(d);
    if (listener != MHD_INVALID_SOCKET)
        close(listener);
    seconds = (double)(stage_now_ns() - t0) / 1e9;
    status = 0;
stop:
    handoff_close(&queue);
    for (int i = 0; i < started; i++)
        pthread_join(workers[i].thread, NULL);
    if (d != NULL) {
        drain();
        MHD_stop_daemon(d);
        print_summary(started, seconds);
    }
    if (stageprof_is_tracing()) {
        char trace[4096];
        int rc = stageprof_stop();
        if (rc == 0)
            rc = stageprof_get_last_path(trace, sizeof trace);
        if (rc == 0) {
            printf(PROG ": trace written to %s\n", trace);
        } else {
            fprintf(stderr, PROG ": trace not written: %s\n",
                    stageprof_strerror(rc));
            status = 1;
        }
    }
out:
    for (int i = 0; i < loaded; i++)
        models_free(&workers[i].models);
    free(queue.items);
    labels_free(&det_labels);
    labels_free(&cls_labels);
    return status;
}
