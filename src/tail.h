/*
 * tail.h - tail keeping: slow runs kept whole beyond the ring.
 *
 * A run is kept when it took at least STAGEPROF_KEEP_SLOWER_THAN_MS, or
 * when it is among the STAGEPROF_KEEP_SLOWEST slowest runs that ended in
 * its window of STAGEPROF_KEEP_WINDOW_S seconds. The ring decides at the
 * run's end (stageprof__tail_consider, under ring.lock). A kept run waits
 * in a short queue, its begin holding back the ring's eviction of its
 * chunks (stageprof__tail_horizon), until the keeper thread writes its
 * events as a fragment: the run's events only, each line starting with
 * ",\n", so that a fragment can follow any event of a trace.
 *
 *   run end --consider--> queue (<= 64) --keeper--> fragments (the share)
 *                                                      |
 *   trace written whole (file, snapshot, mode=recent) <-+ runs the ring
 *                                                         no longer holds
 *
 * Fragments live in their own share of the byte budget
 * (STAGEPROF_KEEP_BYTES, taken out of the buffers' budget); when it is
 * full the oldest fragment goes (counted). A run displaced from its
 * window's K slowest, and not kept by the threshold, goes when the keeper
 * next runs.
 *
 * A trace written whole ends its events with the fragments of the kept
 * runs the ring no longer holds, and lists every kept run in its metadata
 * (stageprof.tail). A consuming write (a trace file) first writes what is
 * still queued, then forgets the fragments: they are in that file.
 *
 * With head sampling (STAGEPROF_SAMPLE_RUNS) and tail keeping together,
 * every run is recorded, and a run not sampled is dropped at its end
 * unless it is kept: slow runs are never missed, and sampling no longer
 * saves the recording cost, only the ring's room and the files' size.
 *
 * Locks: g.wlock (outermost), ring.lock, tail's own lock. The fragments
 * change only under wlock; the queue and the window under tail's lock.
 */
#ifndef STAGEPROF_TAIL_H
#define STAGEPROF_TAIL_H

#include "internal.h"
#include "util/strbuf.h"

struct ring_view;

/* Why a run was kept (bits). */
enum { TAIL_SLOWER = 1u, TAIL_SLOWEST = 2u };

/* Start keeping per @c (g.lock held); the keeper thread when it is on. */
int stageprof__tail_open(const struct conf *c);
/* Stop: write what is queued, end the keeper. The fragments stay for the
 * last trace (stageprof__tail_forget). */
void stageprof__tail_close(void);
/* 1 while keeping is in force (every run is then recorded). */
int stageprof__tail_on(void);
/*
 * The run @id ended (ticks @begin, @end; ring.lock held): keep it? Queues
 * it and returns 1 when yes.
 */
int stageprof__tail_consider(uint64_t id, uint64_t begin, uint64_t end);
/* Earliest begin (ticks) of a run queued or being written; UINT64_MAX
 * when none (ring.lock held). */
uint64_t stageprof__tail_horizon(void);
/* Write every queued run now (wlock held). */
void stageprof__tail_drain(void);

/* For a trace written whole (wlock held). */
struct tail_frag {
    uint64_t id;
    uint64_t begin_ns; /* monotonic */
    uint64_t dur_ns;
    unsigned why;    /* TAIL_* */
    uint64_t events; /* events, metadata left out */
    uint64_t lines;  /* trace lines, metadata included */
    size_t len;
    char *text;
};
/* The fragments, oldest first (wlock held; valid until it is released). */
const struct tail_frag *stageprof__tail_frags(size_t *n);
/*
 * The "tail" member of the trace's metadata: the policy, the share, what
 * it lost, and every kept run (in the ring or appended). @v says which
 * runs the ring holds; @appended whether the trace carries the fragments.
 */
void stageprof__tail_json(struct strbuf *sb, struct ring_view *v,
                          uint64_t base_ns, int appended);
/* Free the fragments (wlock held): a consuming write reached its sink,
 * so they are in it, or the session ended. */
void stageprof__tail_forget(void);
void stageprof__tail_fork(int phase);

#endif /* STAGEPROF_TAIL_H */
