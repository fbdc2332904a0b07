/*
 * drain.h - consume what a benchmark recorded, untimed: the writer turns
 * every buffered event into JSON for a sink that only counts the bytes, so
 * the buffers are released and the next repetition starts from the same
 * state. For the programs that include the library's private headers.
 */
#ifndef STAGEPROF_BENCH_DRAIN_H
#define STAGEPROF_BENCH_DRAIN_H

#include "bench.h"
#include "internal.h"

static uint64_t drained_bytes __attribute__((unused));

static int discard_write(void *ud, const void *data, size_t len)
{
    (void)data;
    *(uint64_t *)ud += len;
    return 0;
}

/* Write everything recorded into a discarding sink: buffers are released. */
BENCH_FN void drain(void)
{
    struct sink s = {discard_write, NULL, &drained_bytes};
    pthread_mutex_lock(&stageprof__g.wlock);
    int rc = stageprof__writer_write(&s, 0);
    pthread_mutex_unlock(&stageprof__g.wlock);
    if (rc != 0)
        bench_die("writing the recorded events failed");
}

#endif /* STAGEPROF_BENCH_DRAIN_H */
