/*
 * handoff.c - the queue between the receiving thread and the workers of
 * the detection programs; see handoff.h.
 */
#include "handoff.h"

#include "stages.h"

#include <stageprof.h>

void handoff_put(struct handoff *q, void *item)
{
    q->items[(q->head + q->count) % q->cap] = item;
    q->count++;
    STAGEPROF_COUNTER_INT("queue_depth", q->count);
    pthread_cond_signal(&q->not_empty);
}

void *handoff_pop(struct handoff *q, void (*adopt)(void *item))
{
    STAGEPROF_SCOPE(span, "queue_pop", "queue");
    struct stage_clock clk = stage_clock_start(STAGE_QUEUE_POP);
    pthread_mutex_lock(&q->lock);
    while (q->count == 0 && !q->closed)
        pthread_cond_wait(&q->not_empty, &q->lock);
    void *item = NULL;
    if (q->count > 0) {
        item = q->items[q->head];
        q->head = (q->head + 1) % q->cap;
        q->count--;
        STAGEPROF_COUNTER_INT("queue_depth", q->count);
        pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->lock);
    /* The item's run begins here, after the wait, not before it. */
    if (item != NULL)
        adopt(item);
    stage_clock_stop(&clk);
    return item;
}

void handoff_close(struct handoff *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = 1;
    pthread_cond_broadcast(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
}
