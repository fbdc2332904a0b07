/*
 * counter.c - counters: a named value over time (queue depth, batch size).
 *
 * One COUNTER record plus a payload slot holding the value's bits and its
 * type. Written as a Chrome "C" event; the site's name names the series.
 */
#include <string.h>

#include "tbuf.h"

static void counter_put(stageprof_site_t *site, uint64_t bits, uint64_t type)
{
    struct tbuf *tb = tbuf_for(site);
    if (unlikely(tb == NULL))
        return;
    struct rec *r = tbuf_reserve(tb, 2 * REC_SIZE);
    if (r == NULL)
        return;
    r[0].a = clock_ticks();
    r[0].b = (uintptr_t)site | REC_COUNTER;
    r[1].a = bits;
    r[1].b = type;
    tbuf_commit(tb);
}

void stageprof_counter_set_int(stageprof_site_t *site, int64_t value)
{
    counter_put(site, (uint64_t)value, 0);
}

void stageprof_counter_set_double(stageprof_site_t *site, double value)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    counter_put(site, bits, 1);
}
