/*
 * it_http.c - a small pipeline that keeps running while check_http.py
 * talks (and misbehaves) at its /metrics endpoint.
 *
 *   STAGEPROF_HTTP=127.0.0.1:0 it_http HEARTBEAT_FILE [SECONDS]
 *
 * Everything comes from the environment: the first instrumented event
 * starts the profiler, and with it the endpoint. The program prints
 * "port N" once on stdout (0 when the endpoint is not serving), then
 * NWORKERS threads loop over runs of four stages in four categories while
 * main writes the number of completed iterations to HEARTBEAT_FILE every
 * 20 ms (written beside it and renamed, so a reader never sees half a
 * number). It stops the workers and the profiler and exits 0 when its
 * stdin closes, or after SECONDS (default 120) so it never outlives a
 * checker that died.
 */
#include "it_common.h"

#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#define NWORKERS 4

static int stopping;        /* atomic: workers leave their loop */
static uint64_t iterations; /* atomic: iterations completed, all workers */

/* A little CPU work, so stages take measurable time. */
static void spin(unsigned n)
{
    volatile unsigned x = 0;
    for (unsigned i = 0; i < n; i++)
        x += i * 2654435761u;
}

static void *worker(void *arg)
{
    int w = (int)(intptr_t)arg;
    char name[16];
    snprintf(name, sizeof name, "worker-%d", w);
    stageprof_thread_set_name(name);
    for (uint64_t i = 1; !__atomic_load_n(&stopping, __ATOMIC_RELAXED); i++) {
        uint64_t run = (uint64_t)(w + 1) * 1000000000ull + i;
        STAGEPROF_RUN_BEGIN("frame", run);
        {
            STAGEPROF_SCOPE(s, "decode", "data");
            spin(2000);
        }
        {
            STAGEPROF_SCOPE(s, "resize", "preprocess");
            spin(1000);
        }
        {
            STAGEPROF_SCOPE(s, "infer", "compute");
            spin(4000);
        }
        {
            STAGEPROF_SCOPE(s, "format", "postprocess");
            spin(500);
        }
        STAGEPROF_RUN_END("frame", run);
        __atomic_fetch_add(&iterations, 1, __ATOMIC_RELAXED);
        /* Yield now and then: the sanitizer builds share two cores. */
        if (i % 16 == 0) {
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

static void heartbeat(const char *path, uint64_t n)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    IT_CHECK(f != NULL);
    fprintf(f, "%" PRIu64 "\n", n);
    IT_CHECK(fclose(f) == 0);
    IT_CHECK(rename(tmp, path) == 0);
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3)
        it_fail("usage: it_http HEARTBEAT_FILE [SECONDS]");
    long seconds = argc == 3 ? strtol(argv[2], NULL, 10) : 120;
    IT_CHECK(seconds > 0);
    stageprof_thread_set_name("it-main");
    {
        /* The first event: starts the profiler from the environment. */
        STAGEPROF_SCOPE(s, "setup", "engine");
    }
    printf("port %d\n", stageprof_http_get_port());
    fflush(stdout);

    heartbeat(argv[1], 0);
    pthread_t th[NWORKERS];
    for (int i = 0; i < NWORKERS; i++)
        IT_CHECK(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) ==
                 0);

    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd p = {.fd = 0, .events = POLLIN};
        int r = poll(&p, 1, 20);
        if (r > 0) {
            char buf[256];
            if (read(0, buf, sizeof buf) <= 0)
                break; /* stdin closed: the checker is done */
        }
        heartbeat(argv[1], __atomic_load_n(&iterations, __ATOMIC_RELAXED));
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec >= seconds)
            break;
    }

    __atomic_store_n(&stopping, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < NWORKERS; i++)
        IT_CHECK(pthread_join(th[i], NULL) == 0);
    int rc = stageprof_stop();
    IT_CHECK(rc == 0 || rc == STAGEPROF_ENOTSTARTED);
    IT_CHECK(stageprof_http_get_port() == 0);
    printf("iterations %" PRIu64 "\n",
           __atomic_load_n(&iterations, __ATOMIC_RELAXED));
    return 0;
}
