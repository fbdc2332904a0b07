/*
 * counter.c - counters: a named value over time (queue depth, batch size).
 *
 * One COUNTER record plus a payload slot holding the value's bits and its
 * type. Written as a Chrome "C" event; the site's name names the series.
 * With metrics on, the last value is also a gauge in /metrics.
 */
#include <string.h>

#include "metrics.h"
#include "tbuf.h"

static void counter_put(stageprof_site_t *site, uint64_t bits, uint64_t type,
                        double value)
{
    struct tbuf *tb = tbuf_for(site);
    if (unlikely(LOAD_RELAXED(&stageprof__metrics_on)) && site != NULL)
        stageprof__metrics_counter(site, value);
    if (unlikely(tb == NULL))
        return;
    tbuf_put_pair(tb, site, REC_COUNTER, clock_ticks(), bits, type);
}

void stageprof__counter_trace(stageprof_site_t *site, double value)
{
    struct tbuf *tb = tbuf_for(site);
    if (unlikely(tb == NULL))
        return;
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    tbuf_put_pair(tb, site, REC_COUNTER, clock_ticks(), bits, 1);
}

void stageprof_counter_set_int(stageprof_site_t *site, int64_t value)
{
    counter_put(site, (uint64_t)value, 0, (double)value);
}

void stageprof_counter_set_double(stageprof_site_t *site, double value)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    counter_put(site, bits, 1, value);
}
