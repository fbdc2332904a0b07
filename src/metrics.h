/*
 * metrics.h - live metrics: per-stage, per-run and per-flow histograms fed
 * by the recording calls, and their Prometheus text exposition.
 *
 * Histograms are kept per thread (shards written only by their thread, with
 * relaxed stores) and summed when /metrics is scraped. A stage (name and
 * category) gets its slot once per call site; the hot path then indexes an
 * array: no lock, no lookup, no allocation per event.
 */
#ifndef STAGEPROF_METRICS_H
#define STAGEPROF_METRICS_H

#include <stdint.h>

#include "internal.h"

struct strbuf;

/* Whether span ends feed the histograms (a relaxed load). */
extern int stageprof__metrics_on;

/* Start metrics with the bounds and caps of @c (g.lock held). 0 or error. */
int stageprof__metrics_open(const struct conf *c);
/* Stop feeding the histograms; the counts stay for a later scrape. */
void stageprof__metrics_close(void);

/*
 * Append the whole /metrics body (text format 0.0.4) to @sb: the pipeline
 * histograms and counters, the library's own counters, the process metrics
 * and the sampler's gauges. Thread-safe; takes the registry lock briefly.
 */
void stageprof__metrics_render(struct strbuf *sb);

/* Fork handler phases as in internal.h; the child keeps no metrics. */
void stageprof__metrics_fork(int phase);

/*
 * The slot of @site's stage series (resolved once per site), or of a
 * stage named at run time (@name with @site's category: a lookup under
 * the registry lock). UINT32_MAX when metrics never started. @site is
 * not NULL.
 */
uint32_t stageprof__metrics_stage_slow(stageprof_site_t *site);
static inline uint32_t stageprof__metrics_stage(stageprof_site_t *site)
{
    unsigned m = __atomic_load_n(&site->metric, __ATOMIC_RELAXED);
    if (__builtin_expect(m != 0, 1))
        return m - 1;
    return stageprof__metrics_stage_slow(site);
}
uint32_t stageprof__metrics_stage_named(stageprof_site_t *site,
                                        const char *name);
/*
 * Count a duration of @ticks (clock ticks) in the histogram of @slot, on
 * the calling thread's shard. No lock; allocates only the first time the
 * thread meets a block of 64 slots. Slots out of range (UINT32_MAX: no
 * series) and negative durations (wrapped to huge ones) are ignored.
 */
void stageprof__metrics_observe(uint32_t slot, uint64_t ticks);
/* The same with a duration in nanoseconds. */
void stageprof__metrics_observe_ns(uint32_t slot, uint64_t ns);
/* A run begins (@end 0) or ends (1): its duration goes to the run name. */
void stageprof__metrics_run(stageprof_site_t *site, uint64_t id, int end);
/* A flow phase (FLOW_*): begin to end is a queue wait. */
void stageprof__metrics_flow(stageprof_site_t *site, uint64_t id, int phase);
/* A counter's new value, shown as a gauge. */
void stageprof__metrics_counter(stageprof_site_t *site, double value);

/*
 * Prometheus text helpers for every module that renders part of /metrics:
 * a family's HELP and TYPE lines, and one sample line "name{labels} value"
 * (@labels: the text between the braces, escaped; NULL for none). Doubles
 * are written in their shortest exact form, NaN and infinities as 0.
 */
void stageprof__prom_family(struct strbuf *sb, const char *name,
                            const char *type, const char *help);
void stageprof__prom_double(struct strbuf *sb, const char *name,
                            const char *labels, double v);
void stageprof__prom_u64(struct strbuf *sb, const char *name,
                         const char *labels, uint64_t v);

/* Append @s to @sb escaped as a Prometheus label value (\\, \", \n). */
void stageprof__metrics_label(struct strbuf *sb, const char *s);

#endif /* STAGEPROF_METRICS_H */
