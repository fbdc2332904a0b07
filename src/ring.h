/*
 * ring.h - the run ring: which runs the buffers keep, and which chunks can
 * go when memory is needed.
 *
 * The ring keeps the last N completed runs (STAGEPROF_BUFFER_RUNS) plus the
 * runs in progress. Memory is reclaimed a whole chunk at a time; a chunk is
 * one of:
 *
 *   pinned    started during start-up (before the first run) outside any
 *             run: model load, warm-up. Never evicted; together limited to
 *             half of the byte budget, beyond which such events drop.
 *   run       holds events of some run. Freed once it is older than the
 *             "horizon": the earliest begin of every run still kept.
 *   outside   only events outside runs after start-up (idle loops,
 *             background threads): freed with the runs they predate, and
 *             oldest first whenever they exceed a quarter of the budget.
 *
 *     pinned | evicted ... | kept runs and what happened between them | now
 *            ^ freed        ^ horizon (begin of the oldest kept run)
 *
 * Chunks are evicted only when a thread needs memory and the budget is
 * full, and never while a writer reads the buffers (it would then drop,
 * counted). The writer filters by run: an event of a run no longer kept is
 * not written even when its chunk is still there, so a trace holds exactly
 * the kept runs.
 *
 * Run begin and end take the ring's lock (twice per run); spans, instants,
 * counters and flows never do.
 */
#ifndef STAGEPROF_RING_H
#define STAGEPROF_RING_H

#include "internal.h"

/* struct chunk.flags */
#define CHUNK_PINNED 1u /* start-up data: never evicted */
#define CHUNK_RUN 2u    /* holds events of some run */

/* What a writer keeps, fixed when it starts (stageprof__ring_view_open). */
struct ring_view {
    int active;    /* the ring is on (else every run is kept) */
    uint64_t *ids; /* sorted ids of the kept and running runs */
    size_t n;
    uint64_t last_id; /* one-entry cache of ring_view_keeps */
    int last_keep;
    /* for the trace */
    uint64_t capacity, kept, running, evicted, sample_rate, sampled_out;
    uint64_t pinned_bytes, pinned_dropped;
    uint64_t unmatched_ends; /* run ends without a begin, since start */
};

/* Start a session: capacity and sampling from the configuration. */
int stageprof__ring_open(const struct conf *c);
/* 1 when the run @id is recorded: under head sampling, or every run while
 * tail keeping is on (the ring then drops the unsampled at their end). */
int stageprof__ring_sampled(uint64_t id);
/* Count a run not recorded because of sampling. */
void stageprof__ring_sampled_out(void);
void stageprof__ring_run_begin(uint64_t id, uint64_t ticks);
void stageprof__ring_run_end(uint64_t id, uint64_t ticks);
/* 1 while no run has begun: outside-run chunks are then pinned. */
int stageprof__ring_is_startup(void);
int stageprof__ring_is_active(void);
/*
 * Pinned share: may a new pinned chunk of @size bytes be taken? Counts it
 * when yes; counts a drop (and logs once) when no.
 */
int stageprof__ring_pin(uint64_t size);
/* Run ends seen without their run in progress (misuse). */
uint64_t stageprof__ring_unmatched_ends(void);
/*
 * Forget every run, completed or in progress (counters stay). After a
 * metrics-mode capture window has been written and consumed, the runs it
 * saw begin may end while nothing is recorded: their ends never come.
 */
void stageprof__ring_forget_runs(void);
/* Completed runs pushed out of the ring (the process's total). */
uint64_t stageprof__ring_evicted(void);
/* A pinned chunk was freed (consumed by a write). */
void stageprof__ring_unpin(uint64_t size);
/*
 * Free chunks the ring no longer needs. Called by a thread that found the
 * budget full; never blocks (gives up when a lock is busy or a writer is
 * reading). Returns the bytes freed.
 */
uint64_t stageprof__ring_evict(void);

/* Writer side: fix what is kept, and keep chunks from being freed. */
int stageprof__ring_view_open(struct ring_view *v);
/* The same for a reader of nothing sealed before @floor (ticks): older
 * chunks may still be freed meanwhile. */
int stageprof__ring_view_open_from(struct ring_view *v, uint64_t floor);
int stageprof__ring_view_keeps(struct ring_view *v, uint64_t run);
void stageprof__ring_view_close(struct ring_view *v);

#endif /* STAGEPROF_RING_H */
