/*
 * bench_metrics.c - what the live metrics cost: the histogram update a span
 * end pays, and one scrape of /metrics.
 *
 *   bench_metrics            both tables (about 10 s)
 *   bench_metrics --quick    a fast smoke run
 *
 * Table A (tracing on, 1 GiB budget): a span with metrics off and with
 * metrics on, interleaved, beside the baselines. The metrics are switched
 * between repetitions (the session and its registry stay the same), so the
 * two rows differ only by the histogram update. Target: the update adds at
 * most 0.25 x the plain span's cost.
 *
 * Table B (metrics only, no tracing): a span in that mode beside the same
 * baselines, for the cost of the metrics mode on its own.
 *
 * Scrape: 100 stages x 3 categories observed on two threads, rendered as
 * the endpoint renders them; the best of many renders, beside a memcpy of
 * the same number of bytes. Target: at most 1/1000 of a 1 s scrape
 * interval of one core (1 ms).
 */
#include "bench.h"
#include "drain.h"
#include "metrics.h"
#include "stageprof.h"
#include "tbuf.h"
#include "util/strbuf.h"

#define SPAN_LOOP(name) span_##name
#include "span_loops.h"

static void metrics_off(void)
{
    __atomic_store_n(&stageprof__metrics_on, 0, __ATOMIC_RELEASE);
}

static void metrics_on(void)
{
    __atomic_store_n(&stageprof__metrics_on, 1, __ATOMIC_RELEASE);
}

static void start(int enable)
{
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = enable;
    c.http = "127.0.0.1:0";
    c.sample_hz = 0;
    c.buffer_bytes = 1ll << 30;
    c.buffer_runs = 0;
    c.dir = "/tmp/stageprof-bench-metrics";
    if (stageprof_start(&c) != 0)
        bench_die("stageprof_start failed");
}

/* ------------------------------------------------------------------------ */
/* Scrape                                                                   */
/* ------------------------------------------------------------------------ */

#define NSTAGES 100
#define NCATS 3

static stageprof_site_t sites[NSTAGES * NCATS];
static char names[NSTAGES][16];

static void *observe_all(void *arg)
{
    (void)arg;
    for (int r = 0; r < 10; r++)
        for (int i = 0; i < NSTAGES * NCATS; i++)
            stageprof_span_complete(&sites[i], 0,
                                    (uint64_t)(i + 1) * 37000u * (r + 1));
    return NULL;
}

static void scrape_bench(int reps)
{
    static const char *const cats[NCATS] = {"compute", "preprocess",
                                            "postprocess"};
    for (int s = 0; s < NSTAGES; s++) {
        snprintf(names[s], sizeof names[s], "stage_%03d", s);
        for (int c = 0; c < NCATS; c++) {
            stageprof_site_t *site = &sites[s * NCATS + c];
            site->name = names[s];
            site->category = cats[c];
        }
    }
    pthread_t t;
    if (pthread_create(&t, NULL, observe_all, NULL) != 0)
        bench_die("cannot start a thread");
    observe_all(NULL);
    pthread_join(t, NULL);

    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    double best = 1e30, best_copy = 1e30;
    char *copy = NULL;
    size_t len = 0;
    for (int r = 0; r < reps; r++) {
        stageprof__sb_reset(&sb);
        uint64_t t0 = bench_cpu_ns();
        stageprof__metrics_render(&sb);
        double dt = (double)(bench_cpu_ns() - t0);
        if (dt < best)
            best = dt;
        if (copy == NULL) {
            len = sb.len;
            copy = malloc(len + 1);
            if (copy == NULL)
                bench_die("out of memory");
        }
        t0 = bench_cpu_ns();
        memcpy(copy, sb.buf, len);
        BENCH_KEEP(copy);
        dt = (double)(bench_cpu_ns() - t0);
        if (dt < best_copy)
            best_copy = dt;
    }
    size_t lines = 0;
    for (size_t i = 0; i < sb.len; i++)
        lines += sb.buf[i] == '\n';
    printf("\nC. one scrape of %d stages x %d categories (%zu lines, %zu "
           "bytes), best of %d, thread CPU time\n",
           NSTAGES, NCATS, lines, sb.len, reps);
    printf("  render             %10.1f us  (%.1f ns per line)\n", best / 1e3,
           best / (double)lines);
    printf("  memcpy same bytes  %10.1f us  (render / memcpy %.0fx)\n",
           best_copy / 1e3, best / (best_copy > 0 ? best_copy : 1));
    printf("  share of a 1 s scrape interval of one core: %.5f (target <= "
           "0.001: %s)\n",
           best / 1e9, bench_verdict(best / 1e9 <= 0.001));
    free(copy);
    stageprof__sb_fini(&sb);
}

int main(int argc, char **argv)
{
    struct bench_opts o;
    int prc = bench_parse(argc, argv, &o, "");
    if (prc != 0)
        return prc == 1 ? 0 : 2;
    if (stageprof_is_active())
        bench_die("unset STAGEPROF_ENABLE and STAGEPROF_HTTP first");
    bench_machine("bench_metrics");
    bench_pin(0);
    printf("best of %d repetitions of about %.0f ms each, variants "
           "interleaved; ns per iteration (a span is one begin + one end)\n",
           o.reps, o.rep_ms);

    /* A. Tracing, with and without the histogram update. */
    start(1);
    const uint64_t cap = 250000;
    struct bench_variant a[] = {
        BENCH_BASELINES(1, ""),
        {.key = "trace",
         .label = "tracing: STAGEPROF_SCOPE",
         .fn = span_scope,
         .threads = 1,
         .max_n = cap,
         .before = metrics_off,
         .after = drain},
        {.key = "trace_metrics",
         .label = "tracing + metrics: STAGEPROF_SCOPE",
         .fn = span_scope,
         .threads = 1,
         .max_n = cap,
         .before = metrics_on,
         .after = drain},
    };
    int na = (int)(sizeof a / sizeof a[0]);
    bench_rounds(a, na, &o);
    metrics_on();
    bench_table("A. tracing on, metrics off and on - 1 thread", a, na, "empty",
                "rdtsc2");
    double plain = bench_find(a, na, "trace")->best_ns -
                   bench_find(a, na, "empty")->best_ns;
    double added = bench_find(a, na, "trace_metrics")->best_ns -
                   bench_find(a, na, "trace")->best_ns;
    printf("  histogram update: %.2f ns added to a span of %.2f ns (loop "
           "removed): ratio %.3f (target <= 0.25: %s)\n",
           added, plain, added / plain, bench_verdict(added / plain <= 0.25));
    if (stageprof_stop() != 0)
        bench_die("stageprof_stop failed");

    /* B. Metrics only. */
    start(0);
    struct bench_variant b[] = {
        BENCH_BASELINES(1, ""),
        {.key = "metrics",
         .label = "metrics only: STAGEPROF_SCOPE",
         .fn = span_scope,
         .threads = 1},
    };
    int nb = (int)(sizeof b / sizeof b[0]);
    bench_rounds(b, nb, &o);
    bench_table("B. metrics only (no trace) - 1 thread", b, nb, "empty",
                "rdtsc2");
    double m = bench_find(b, nb, "metrics")->best_ns -
               bench_find(b, nb, "empty")->best_ns;
    printf("  metrics-only span %.2f ns vs traced span %.2f ns (loop "
           "removed): ratio %.3f\n",
           m, plain, m / plain);

    scrape_bench(o.reps * 10);
    if (stageprof_stop() != 0)
        bench_die("stageprof_stop failed");
    return 0;
}
