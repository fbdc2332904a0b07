/*
 * demo.c - a small instrumented inference pipeline; `make run` runs it.
 *
 *   STAGEPROF_ENABLE=1 ./stageprof_demo [--frames N] [--workers W]
 *
 *   main:    load_model (engine, outside any run), starts the threads
 *   reader:  per frame: run begins, decode, queue_push --+ flow
 *   worker:  queue_pop (adopts the run) <----------------+
 *            preprocess, infer, postprocess, serialize, run ends
 *
 * Each frame is a run (id = frame number), so every span of a frame carries
 * args.run whichever thread recorded it. The queue is bounded (mutex and
 * condition variables); its depth is a counter. Every stage does real CPU
 * work of its own cost; infer, three dense layers, dominates by design.
 * Without STAGEPROF_ENABLE the instrumentation is compiled in but off.
 * Exit status: 0 done, 1 failure, 2 bad usage.
 */
#include <stageprof.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IMG_W 128 /* decoded frame: 8-bit RGB, twice the network input */
#define IMG_H 128
#define ROWS 64       /* network input: 64 rows of 64 RGB pixels */
#define FEAT (64 * 3) /* features per row */
#define HIDDEN 320    /* width of both hidden layers */
#define OUTS 20       /* per row: 4 candidate boxes of score, x, y, w, h */
#define NCAND (ROWS * OUTS / 5)
#define QUEUE_CAP 8
#define MAX_WORKERS 64

struct box {
    float score, x, y, w, h;
};

struct frame {
    uint64_t id; /* frame number, also the run id (nonzero) */
    unsigned char pixels[IMG_H][IMG_W][3];
    float input[ROWS][FEAT];
    float h1[HIDDEN], h2[HIDDEN]; /* one row's activations */
    float out[ROWS][OUTS];
    struct box cand[NCAND]; /* after NMS the kept boxes come first */
    int ndet;
    char text[1024]; /* the serialized answer */
};

/* Bounded FIFO of frames; closed by the reader after the last one. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    struct frame *items[QUEUE_CAP];
    int head, count, closed;
} queue = {.lock = PTHREAD_MUTEX_INITIALIZER,
           .not_empty = PTHREAD_COND_INITIALIZER,
           .not_full = PTHREAD_COND_INITIALIZER};

/* The model: written by load_model() before any thread starts. */
static float w1[FEAT][HIDDEN], w2[HIDDEN][HIDDEN], w3[HIDDEN][OUTS];
static int nframes = 200, nworkers = 4;
static pthread_mutex_t totals_lock = PTHREAD_MUTEX_INITIALIZER;
static long total_frames, total_detections;

/* Deterministic pseudo-random numbers (xorshift32); @s is never 0. */
static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Uniform weights in [-scale, scale]. */
static void fill(float *w, size_t n, float scale, uint32_t *s)
{
    for (size_t i = 0; i < n; i++)
        w[i] = ((float)(rnd(s) % 2001) - 1000.0f) * scale / 1000.0f;
}

static void load_model(void)
{
    STAGEPROF_SCOPE(span, "load_model", "engine");
    uint32_t s = 12345;
    fill(&w1[0][0], sizeof w1 / sizeof(float), 0.08f, &s);
    fill(&w2[0][0], sizeof w2 / sizeof(float), 0.06f, &s);
    fill(&w3[0][0], sizeof w3 / sizeof(float), 0.3f, &s);
    STAGEPROF_ARG_INT(span, "parameters",
                      (sizeof w1 + sizeof w2 + sizeof w3) / sizeof(float));
}

/* "Decode" a frame: a moving gradient plus sensor noise. */
static void decode(struct frame *f)
{
    STAGEPROF_SCOPE(span, "decode", "data");
    STAGEPROF_ARG_INT(span, "frame", f->id);
    uint32_t s = (uint32_t)f->id * 2654435761u + 1;
    for (int y = 0; y < IMG_H; y++)
        for (int x = 0; x < IMG_W; x++)
            for (int c = 0; c < 3; c++)
                f->pixels[y][x][c] =
                    (unsigned char)(x * 2 + y + c * 40 + (int)f->id * 3 +
                                    (int)(rnd(&s) & 15));
}

/* 2x2 box downscale to the network input, then per-channel normalising. */
static void preprocess(struct frame *f)
{
    STAGEPROF_SCOPE(span, "preprocess", "preprocess");
    static const float mean[3] = {0.485f, 0.456f, 0.406f};
    static const float stdv[3] = {0.229f, 0.224f, 0.225f};
    for (int y = 0; y < ROWS; y++)
        for (int x = 0; x < FEAT / 3; x++)
            for (int c = 0; c < 3; c++) {
                int sum = f->pixels[2 * y][2 * x][c] +
                          f->pixels[2 * y][2 * x + 1][c] +
                          f->pixels[2 * y + 1][2 * x][c] +
                          f->pixels[2 * y + 1][2 * x + 1][c];
                float v = (float)sum / (4 * 255.0f);
                f->input[y][x * 3 + c] = (v - mean[c]) / stdv[c];
            }
}

/* out = in x w (w is n_in rows of n_out), with an optional ReLU. */
static void dense(const float *in, int n_in, const float *w, int n_out,
                  float *out, int relu)
{
    for (int j = 0; j < n_out; j++)
        out[j] = 0;
    /* i outer, j inner: both w's row and out are walked contiguously. */
    for (int i = 0; i < n_in; i++)
        for (int j = 0; j < n_out; j++)
            out[j] += in[i] * w[i * n_out + j];
    for (int j = 0; relu && j < n_out; j++)
        out[j] = out[j] > 0 ? out[j] : 0;
}

/* Three dense layers per row: by far the most expensive stage. */
static void infer(struct frame *f)
{
    STAGEPROF_SCOPE(span, "infer", "compute");
    STAGEPROF_ARG_INT(span, "macs",
                      ROWS * (FEAT * HIDDEN + HIDDEN * HIDDEN + HIDDEN * OUTS));
    for (int r = 0; r < ROWS; r++) {
        dense(f->input[r], FEAT, &w1[0][0], HIDDEN, f->h1, 1);
        dense(f->h1, HIDDEN, &w2[0][0], HIDDEN, f->h2, 1);
        dense(f->h2, HIDDEN, &w3[0][0], OUTS, f->out[r], 0);
    }
}

static int by_score_desc(const void *a, const void *b)
{
    float x = ((const struct box *)a)->score;
    float y = ((const struct box *)b)->score;
    return (x < y) - (x > y);
}

static float overlap(float a0, float a1, float b0, float b1)
{
    float d = (a1 < b1 ? a1 : b1) - (a0 > b0 ? a0 : b0);
    return d > 0 ? d : 0;
}

/* Candidate boxes from the raw outputs, sorted by score, greedy NMS. */
static void postprocess(struct frame *f)
{
    STAGEPROF_SCOPE(span, "postprocess", "postprocess");
    for (int i = 0; i < NCAND; i++) {
        const float *o = &f->out[i / 4][(i % 4) * 5];
        struct box b = {o[0], (float)(i % 16) * 4 + o[1], (float)(i / 16) * 4,
                        6 + o[3] * o[3], 6 + o[4] * o[4]};
        f->cand[i] = b;
    }
    qsort(f->cand, NCAND, sizeof f->cand[0], by_score_desc);
    int kept = 0;
    for (int i = 0; i < NCAND; i++) {
        const struct box *b = &f->cand[i];
        int keep = 1;
        for (int k = 0; k < kept && keep; k++) {
            const struct box *a = &f->cand[k];
            float inter = overlap(a->x, a->x + a->w, b->x, b->x + b->w) *
                          overlap(a->y, a->y + a->h, b->y, b->y + b->h);
            keep = inter <= 0.3f * (a->w * a->h + b->w * b->h - inter);
        }
        if (keep)
            f->cand[kept++] = *b;
    }
    f->ndet = kept;
    STAGEPROF_ARG_INT(span, "detections", kept);
}

/* The answer a server would send: the best boxes as JSON text. */
static void serialize(struct frame *f)
{
    STAGEPROF_SCOPE(span, "serialize", "serve");
    size_t n =
        (size_t)snprintf(f->text, sizeof f->text, "{\"frame\":%llu,\"boxes\":[",
                         (unsigned long long)f->id);
    /* %.4g keeps every entry under 80 bytes, so the text cannot overflow. */
    for (int i = 0; i < f->ndet && n + 96 < sizeof f->text; i++)
        n += (size_t)snprintf(f->text + n, sizeof f->text - n,
                              "%s[%.4g,%.4g,%.4g,%.4g,%.4g]", i ? "," : "",
                              f->cand[i].x, f->cand[i].y, f->cand[i].w,
                              f->cand[i].h, f->cand[i].score);
    n += (size_t)snprintf(f->text + n, sizeof f->text - n, "]}");
    pthread_mutex_lock(&totals_lock);
    total_frames++;
    total_detections += f->ndet;
    pthread_mutex_unlock(&totals_lock);
}

/* The flow begins inside the span that hands the frame over. */
static void queue_push(struct frame *f)
{
    STAGEPROF_SCOPE(span, "queue_push", "queue");
    STAGEPROF_FLOW_BEGIN("frame_handoff", f->id);
    pthread_mutex_lock(&queue.lock);
    while (queue.count == QUEUE_CAP)
        pthread_cond_wait(&queue.not_full, &queue.lock);
    queue.items[(queue.head + queue.count) % QUEUE_CAP] = f;
    queue.count++;
    STAGEPROF_COUNTER_INT("queue_depth", queue.count);
    pthread_cond_signal(&queue.not_empty);
    pthread_mutex_unlock(&queue.lock);
}

/*
 * Next frame, or NULL once the queue is closed and empty. The wait is in
 * the span (it shows starved workers) but in no run: the frame's run is
 * adopted once the frame is in hand, and the flow ends there.
 */
static struct frame *queue_pop(void)
{
    STAGEPROF_SCOPE(span, "queue_pop", "queue");
    pthread_mutex_lock(&queue.lock);
    while (queue.count == 0 && !queue.closed)
        pthread_cond_wait(&queue.not_empty, &queue.lock);
    struct frame *f = NULL;
    if (queue.count > 0) {
        f = queue.items[queue.head];
        queue.head = (queue.head + 1) % QUEUE_CAP;
        queue.count--;
        STAGEPROF_COUNTER_INT("queue_depth", queue.count);
        pthread_cond_signal(&queue.not_full);
    }
    pthread_mutex_unlock(&queue.lock);
    if (f != NULL) {
        STAGEPROF_RUN_SET(f->id);
        STAGEPROF_FLOW_END("frame_handoff", f->id);
    }
    return f;
}

static void *reader_main(void *arg)
{
    (void)arg;
    stageprof_thread_set_name("reader");
    stageprof_thread_set_sort_index(1);
    for (int i = 1; i <= nframes; i++) {
        struct frame *f = malloc(sizeof *f);
        if (f == NULL)
            break; /* fewer frames: main's summary shows it */
        f->id = (uint64_t)i;
        STAGEPROF_RUN_BEGIN("frame", f->id);
        decode(f);
        queue_push(f);
        /* The frame belongs to a worker now: stop charging it here. */
        STAGEPROF_RUN_SET(0);
    }
    pthread_mutex_lock(&queue.lock);
    queue.closed = 1;
    pthread_cond_broadcast(&queue.not_empty);
    pthread_mutex_unlock(&queue.lock);
    return NULL;
}

static void *worker_main(void *arg)
{
    char name[32];
    snprintf(name, sizeof name, "worker-%d", (int)(intptr_t)arg);
    stageprof_thread_set_name(name);
    stageprof_thread_set_sort_index(2 + (int)(intptr_t)arg);
    struct frame *f;
    while ((f = queue_pop()) != NULL) {
        preprocess(f);
        infer(f);
        postprocess(f);
        serialize(f);
        /* Ends the frame's run and clears this thread's current run. */
        STAGEPROF_RUN_END("frame", f->id);
        free(f);
    }
    return NULL;
}

static void usage(FILE *to)
{
    fprintf(to, "usage: stageprof_demo [--frames N] [--workers W]\n"
                "  --frames N   frames to process, 1..1000000 (default 200)\n"
                "  --workers W  worker threads, 1..64 (default 4)\n"
                "Set STAGEPROF_ENABLE=1 to write a trace (into STAGEPROF_DIR, "
                "default ./inference_profiling).\n");
}

/* A whole-string decimal in [lo, hi], or -1. */
static long parse_count(const char *s, long lo, long hi)
{
    char *end;
    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || errno != 0 || v < lo || v > hi)
        return -1;
    return v;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        int *dst = strcmp(argv[i], "--frames") == 0    ? &nframes
                   : strcmp(argv[i], "--workers") == 0 ? &nworkers
                                                       : NULL;
        long v = -1;
        if (dst != NULL && i + 1 < argc)
            v = parse_count(argv[i + 1], 1,
                            dst == &nframes ? 1000000 : MAX_WORKERS);
        if (v < 0) {
            fprintf(stderr, "stageprof_demo: bad argument '%s%s%s'\n", argv[i],
                    dst && i + 1 < argc ? " " : "",
                    dst && i + 1 < argc ? argv[i + 1] : "");
            usage(stderr);
            return 2;
        }
        *dst = (int)v;
        i++;
    }

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    stageprof_process_set_name("stageprof_demo");
    stageprof_thread_set_name("main");
    load_model();

    pthread_t reader, workers[MAX_WORKERS];
    int started = 0;
    while (started < nworkers &&
           pthread_create(&workers[started], NULL, worker_main,
                          (void *)(intptr_t)started) == 0)
        started++;
    if (started == 0 || pthread_create(&reader, NULL, reader_main, NULL)) {
        fprintf(stderr, "stageprof_demo: cannot start threads\n");
        return 1;
    }
    pthread_join(reader, NULL);
    for (int i = 0; i < started; i++)
        pthread_join(workers[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);

    printf("stageprof_demo: %ld frames, %d workers, %.3f s, %ld detections\n",
           total_frames, started,
           (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
           total_detections);
    if (!stageprof_is_tracing()) {
        printf("stageprof_demo: tracing is off (STAGEPROF_ENABLE=1 turns it "
               "on)\n");
        return 0;
    }
    char path[4096];
    int rc = stageprof_stop();
    if (rc == 0)
        rc = stageprof_get_last_path(path, sizeof path);
    if (rc != 0) {
        fprintf(stderr, "stageprof_demo: trace not written: %s\n",
                stageprof_strerror(rc));
        return 1;
    }
    printf("stageprof_demo: trace written to %s\n", path);
    printf("stageprof_demo: open it in https://ui.perfetto.dev or "
           "chrome://tracing\n");
    return 0;
}
