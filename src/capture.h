/*
 * capture.h - what GET /capture does, apart from HTTP: its parameters, the
 * capture itself (wait, record, write into memory) and the answer's body.
 *
 * http.c parses the query with stageprof__capture_param, takes the single
 * capture slot (stageprof__capture_claim), and runs stageprof__capture_run
 * on a thread of its own; the result carries the body and the numbers the
 * answer's headers repeat.
 */
#ifndef STAGEPROF_CAPTURE_H
#define STAGEPROF_CAPTURE_H

#include "internal.h"

/* Bounds of the parameters (inclusive). */
#define CAPTURE_DURATION_DEFAULT_MS 1000
#define CAPTURE_DURATION_MAX_MS 60000
#define CAPTURE_DELAY_MAX_MS 60000
#define CAPTURE_MAX_EVENTS 1000000
#define CAPTURE_CATEGORIES_MAX 256
/* Blanks the body reserves for its "capture" member. */
#define CAPTURE_RESERVE 2048

/* The request, as parsed from the query string. */
struct capture_params {
    int recent;            /* mode=recent */
    long long duration_ms; /* window length */
    long long delay_ms;    /* window start after the request */
    long long max_events;  /* events written at most */
    char categories[CAPTURE_CATEGORIES_MAX + 1]; /* "" when not given */
    unsigned seen; /* parameters given (bit per parameter) */
};

/* The answer of one capture. */
struct capture_result {
    int status;          /* 200; 503 when it could not be made; 0 when
                            the client went away (no answer) */
    char reason[160];    /* one line for a status other than 200 */
    unsigned char *body; /* owned (stageprof__free); JSON, or gzip */
    size_t len;
    int gzipped;              /* body is gzip */
    uint64_t events;          /* events in the trace (metadata excluded) */
    uint64_t dropped;         /* events dropped (buffer full) */
    uint64_t left_out;        /* events beyond max_events */
    const char *empty_reason; /* static text, NULL when not empty */
};

/* Defaults: a 1000 ms window now, max_events at its cap, all categories. */
void stageprof__capture_params_init(struct capture_params *p);

/*
 * Take one query parameter @key=@value (value may be NULL). Returns 0, or
 * STAGEPROF_EINVAL with a one-line reason (no newline) in @why.
 * Pure, for tests.
 */
int stageprof__capture_param(struct capture_params *p, const char *key,
                             const char *value, char *why, size_t len);

/* Checks across parameters once all are in; 0 or EINVAL with @why. */
int stageprof__capture_check(const struct capture_params *p, char *why,
                             size_t len);

/*
 * Claim the single capture slot: 1 when taken, 0 when a capture runs.
 * stageprof__capture_release gives it back. Any thread.
 */
int stageprof__capture_claim(void);
void stageprof__capture_release(void);

/*
 * Run the capture of @p and fill @r. Waits (window mode) in slices,
 * returning early with r->status 0 when *@cancel becomes non-zero or when
 * @fd >= 0 (the client's socket) reports a hang-up. @gzip compresses the
 * body. Never called on the endpoint's thread. Returns r->status.
 */
int stageprof__capture_run(const struct capture_params *p, int gzip,
                           const int *cancel, int fd, struct capture_result *r);

/* Free what @r owns. */
void stageprof__capture_result_fini(struct capture_result *r);

#endif /* STAGEPROF_CAPTURE_H */
