/*
 * flow.c - flows (hand-offs between threads) and runs.
 *
 * Both are a record plus a payload slot {id, phase}. A run also changes the
 * calling thread's current run, which the writer replays from the records
 * (and from each chunk's run_at_start) to put args.run on every event.
 * Whether a run end matches a begin is checked by the writer, which sees
 * all threads; recording stays lock-free.
 */
#include "tbuf.h"

static void pair_put(struct tbuf *tb, stageprof_site_t *site, unsigned kind,
                     uint64_t id, uint64_t phase)
{
    struct rec *r = tbuf_reserve(tb, 2 * REC_SIZE);
    if (r == NULL)
        return;
    r[0].a = clock_ticks();
    r[0].b = (uintptr_t)site | kind;
    r[1].a = id;
    r[1].b = phase;
    tbuf_commit(tb);
}

static void flow_put(stageprof_site_t *site, uint64_t id, uint64_t phase)
{
    if (unlikely(!record_gate(site)))
        return;
    struct tbuf *tb = tbuf_get();
    if (likely(tb != NULL))
        pair_put(tb, site, REC_FLOW, id, phase);
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

void stageprof_run_begin(stageprof_site_t *site, uint64_t run_id)
{
    struct tbuf *tb = run_gate();
    if (tb == NULL || run_id == 0)
        return;
    tb->run = run_id;
    pair_put(tb, site, REC_RUN, run_id, RUN_BEGIN);
}

void stageprof_run_end(stageprof_site_t *site, uint64_t run_id)
{
    struct tbuf *tb = run_gate();
    if (tb == NULL || run_id == 0)
        return;
    if (tb->run == run_id)
        tb->run = 0;
    pair_put(tb, site, REC_RUN, run_id, RUN_END);
}

void stageprof_run_set_current(uint64_t run_id)
{
    struct tbuf *tb = run_gate();
    if (tb == NULL || tb->run == run_id)
        return;
    tb->run = run_id;
    pair_put(tb, NULL, REC_RUN, run_id, RUN_SET);
}

uint64_t stageprof_run_get_current(void)
{
    struct tbuf *tb = stageprof__tls;
    return tb ? tb->run : 0;
}
