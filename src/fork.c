/*
 * fork.c - what a fork() does to the profiler.
 *
 * The child of a process that traces starts with empty buffers of its own
 * (the parent's events stay the parent's: written once, by the parent), the
 * parent's configuration and time base (so their traces align), and its own
 * trace file name (the pid is part of it). With STAGEPROF_FOLLOW_FORK=0 the
 * child records nothing. The endpoint, the sampler and the metrics are the
 * parent's: a child of a metrics-only process records nothing.
 *
 * Locks: the prepare handler takes the profiler's locks in the order
 * stageprof_start() nests them (global, ring, chunk pool, clock, snapshot,
 * metrics, endpoint, log; the evictor's ring-then-global is a try-lock), so no
 * lock is copied in the middle of a critical section; the parent releases them,
 * the child re-creates them. The writer lock is not taken (a long write would
 * stall fork()): the child re-creates it, as it does each thread buffer's lock,
 * whose owners do not exist in the child.
 */
#include <string.h>

#include "http.h"
#include "metrics.h"
#include "ring.h"
#include "tail.h"
#include "tbuf.h"

static void prepare(void)
{
    pthread_mutex_lock(&stageprof__g.lock);
    stageprof__ring_fork(0);
    stageprof__tail_fork(0);
    stageprof__tbuf_fork(0);
    stageprof__clock_fork(0);
    stageprof__snapshot_fork(0);
    stageprof__metrics_fork(0);
    stageprof__http_fork(0);
    stageprof__log_fork(0);
}

static void parent(void)
{
    stageprof__log_fork(1);
    stageprof__http_fork(1);
    stageprof__metrics_fork(1);
    stageprof__snapshot_fork(1);
    stageprof__clock_fork(1);
    stageprof__tbuf_fork(1);
    stageprof__tail_fork(1);
    stageprof__ring_fork(1);
    pthread_mutex_unlock(&stageprof__g.lock);
}

static void child(void)
{
    stageprof__log_fork(2);
    stageprof__metrics_fork(2);
    stageprof__http_fork(2);
    stageprof__clock_fork(2);
    pthread_mutex_init(&stageprof__g.lock, NULL);
    pthread_mutex_init(&stageprof__g.wlock, NULL);
    /* Buffers, counters and written-trace bookkeeping start afresh. */
    stageprof__tbuf_fork(2);
    memset(&stageprof__g.retired, 0, sizeof stageprof__g.retired);
    stageprof__g.lost_no_tbuf = 0;
    stageprof__g.misuse_no_tbuf = 0;
    stageprof__g.misuse_run_end = 0;
    stageprof__g.threads_seen = 0;
    stageprof__g.events_written = 0;
    stageprof__g.traces_written = 0;
    stageprof__g.write_errors = 0;
    stageprof__g.dropped_reported = 0;
    stageprof__g.last_path[0] = '\0';
    stageprof__free(stageprof__g.open_runs);
    stageprof__g.open_runs = NULL;
    stageprof__g.nopen_runs = 0;
    stageprof__ring_fork(2);
    stageprof__tail_fork(2);
    stageprof__snapshot_fork(2);
    /* The endpoint and the sampler stay the parent's; so do the metrics. */
    stageprof__g.live = 0;
    if (LOAD_RELAXED(&stageprof_hot_state) == STATE_METRICS) {
        stageprof__g.started = 0;
        STORE_RELEASE(&stageprof_hot_state, STATE_OFF);
    }
    if (stageprof__g.started && !stageprof__g.conf.follow_fork) {
        stageprof__g.started = 0;
        STORE_RELEASE(&stageprof_hot_state, STATE_OFF);
    }
}

void stageprof__fork_register(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    (void)pthread_once(&once, stageprof__fork_install);
}

void stageprof__fork_install(void)
{
    (void)pthread_atfork(prepare, parent, child);
}
