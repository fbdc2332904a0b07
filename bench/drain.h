/*
 * drain.h - consume what a benchmark recorded, untimed: the writer turns
 * every buffered event into JSON for a sink that keeps nothing, so the
 * buffers are released and the next repetition starts from the same state.
 * For the programs that include the library's private headers.
 */
#ifndef STAGEPROF_BENCH_DRAIN_H
#define STAGEPROF_BENCH_DRAIN_H

#include "bench.h"
#include "internal.h"

/* Write everything recorded into nothing: buffers are released. */
BENCH_FN void drain(void)
{
    pthread_mutex_lock(&stageprof__g.wlock);
    int rc = stageprof__writer_discard();
    pthread_mutex_unlock(&stageprof__g.wlock);
    if (rc != 0)
        bench_die("writing the recorded events failed");
}

#endif /* STAGEPROF_BENCH_DRAIN_H */
