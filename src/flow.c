/*
 * flow.c - flows (hand-offs between threads) and runs.
 *
 * Both are a record plus a payload slot {id, phase}. A run also changes the
 * calling thread's current run, which the writer replays from the records
 * (and from each chunk's run_at_start) to put args.run on every event.
 * Whether a run end matches a begin is checked by the writer, which sees
 * all threads; recording stays lock-free. With metrics on, begin and end
 * also pair up by id for the run and queue-wait histograms.
 */
#include "metrics.h"
#include "ring.h"
#include "tbuf.h"

static inline int metrics_on(void)
{
    return LOAD_RELAXED(&stageprof__metrics_on);
}

static void flow_put(stageprof_site_t *site, uint64_t id, uint64_t phase)
{
    struct tbuf *tb = tbuf_for(site);
    if (unlikely(metrics_on()) && site != NULL)
        stageprof__metrics_flow(site, id, (int)phase);
    if (likely(tb != NULL))
        tbuf_put_pair(tb, site, REC_FLOW, clock_ticks(), id, phase);
}

void stageprof_flow_begin(stageprof_site_t *site, uint64_t id)
{
    flow_put(site, id, FLOW_BEGIN);
}

void stageprof_flow_step(stageprof_site_t *site, uint64_t id)
{
    flow_put(site, id, FLOW_STEP);
}

void stageprof_flow_end(stageprof_site_t *site, uint64_t id)
{
    flow_put(site, id, FLOW_END);
}

/*
 * Runs are not filtered by category: the run id must reach every event even
 * when only some stages are recorded.
 */
static struct tbuf *run_gate(void)
{
    if (unlikely(!record_gate(NULL)))
        return NULL;
    return tbuf_get();
}

/*
 * Make @run_id the thread's current run. With head sampling, a run not
 * sampled mutes the thread (nothing recorded) until its current run
 * changes; the writer is told the thread left its previous run, so that
 * the events after the muted stretch are attributed right.
 */
static int enter_run(struct tbuf *tb, uint64_t run_id)
{
    int muted = run_id != 0 && !stageprof__ring_sampled(run_id);
    if (muted && !tb->muted && tb->run != 0)
        tbuf_put_pair(tb, NULL, REC_RUN, clock_ticks(), 0, RUN_SET);
    tb->run = run_id;
    tb->muted = muted;
    if (run_id != 0 && !muted)
        stageprof__tbuf_mark_run(tb);
    return !muted;
}

void stageprof_run_begin(stageprof_site_t *site, uint64_t run_id)
{
    struct tbuf *tb = run_gate();
    if (unlikely(metrics_on()) && site != NULL && run_id != 0)
        stageprof__metrics_run(site, run_id, 0);
    if (tb == NULL || run_id == 0)
        return;
    if (!enter_run(tb, run_id)) {
        stageprof__ring_sampled_out();
        return;
    }
    uint64_t now = clock_ticks();
    /* Registered before its first record: the ring protects it from then. */
    stageprof__ring_run_begin(run_id, now);
    tbuf_put_pair(tb, site, REC_RUN, now, run_id, RUN_BEGIN);
}

void stageprof_run_end(stageprof_site_t *site, uint64_t run_id)
{
    struct tbuf *tb = run_gate();
    if (unlikely(metrics_on()) && site != NULL && run_id != 0)
        stageprof__metrics_run(site, run_id, 1);
    if (tb == NULL || run_id == 0)
        return;
    int current = tb->run == run_id;
    if (current) {
        tb->run = 0;
        tb->muted = 0;
    }
    if (!stageprof__ring_sampled(run_id))
        return;
    uint64_t now = clock_ticks();
    tbuf_put_pair(tb, site, REC_RUN, now, run_id, RUN_END);
    stageprof__ring_run_end(run_id, now);
}

void stageprof_run_set_current(uint64_t run_id)
{
    struct tbuf *tb = run_gate();
    if (tb == NULL || tb->run == run_id)
        return;
    if (enter_run(tb, run_id))
        tbuf_put_pair(tb, NULL, REC_RUN, clock_ticks(), run_id, RUN_SET);
}

uint64_t stageprof_run_get_current(void)
{
    struct tbuf *tb = stageprof__tls;
    return tb ? tb->run : 0;
}
