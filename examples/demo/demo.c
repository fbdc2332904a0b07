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
 * condition variables); its depth is a counter. The stages themselves, real
 * CPU work of different costs, are in stages.c. Without STAGEPROF_ENABLE
 * the instrumentation is compiled in but off.
 * Exit status: 0 done, 1 failure, 2 bad usage.
 */
#include "stages.h"

#include <stageprof.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QUEUE_CAP 8
#define MAX_WORKERS 64

/* Bounded FIFO of frames; closed by the reader after the last one. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    struct frame *items[QUEUE_CAP];
    int head, count, closed;
} queue = {.lock = PTHREAD_MUTEX_INITIALIZER,
           .not_empty = PTHREAD_COND_INITIALIZER,
           .not_full = PTHREAD_COND_INITIALIZER};

static int nframes = 200, nworkers = 4;
static pthread_mutex_t totals_lock = PTHREAD_MUTEX_INITIALIZER;
static long total_frames, total_detections;

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
        pthread_mutex_lock(&totals_lock);
        total_frames++;
        total_detections += f->ndet;
        pthread_mutex_unlock(&totals_lock);
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
    /* Every option but --help takes a value: two arguments per step. */
    for (int i = 1; i < argc; i += 2) {
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
           (double)(t1.tv_sec - t0.tv_sec) +
               (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
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
