/*
 * handoff.h - the bounded queue on which the detection programs hand work
 * (a frame, a request) from the thread that receives it to the workers.
 *
 * The producer side differs between the programs (the workflow's reader
 * waits for room, the server answers 503 instead), so the producer locks
 * the queue and calls handoff_put itself; the consumer side, the
 * workers' wait, is handoff_pop. The queue's depth is the counter
 * "queue_depth".
 */
#ifndef DETECT_HANDOFF_H
#define DETECT_HANDOFF_H

#include <pthread.h>

struct handoff {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    void **items; /* cap slots, owned by the program */
    int cap;
    int head, count; /* under lock */
    int closed;      /* under lock: no more puts, pops drain */
};

/*
 * handoff_put - append @item. The caller holds the lock and has checked
 * that the queue is open and has room.
 */
void handoff_put(struct handoff *q, void *item);

/*
 * handoff_pop - the next item, or NULL once the queue is closed and empty.
 * The wait is the span "queue_pop" (queue) and stage_clock STAGE_QUEUE_POP,
 * in no run: @adopt, called with the item before the span ends, adopts
 * the item's run and ends its hand-off flow.
 */
void *handoff_pop(struct handoff *q, void (*adopt)(void *item));

/* handoff_close - no more items: waiting workers return NULL once empty. */
void handoff_close(struct handoff *q);

#endif
