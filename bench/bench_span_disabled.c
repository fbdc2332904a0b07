/*
 * bench_span_disabled.c - the compiled-out cost level: the same span loops
 * as bench_span.c, in a translation unit that defines STAGEPROF_DISABLE, so
 * every macro expands to nothing. The loops should cost what the empty loop
 * costs; the table shows both, measured in the same rounds.
 *
 *   bench_span_disabled                 the table
 *   bench_span_disabled --count V N     one fixed run (bench/callgrind.sh)
 */
#define STAGEPROF_DISABLE 1

#include "bench.h"
#include "stageprof.h"

#define SPAN_LOOP(name) out_##name
#include "span_loops.h"

int main(int argc, char **argv)
{
    struct bench_opts o;
    int prc = bench_parse(argc, argv, &o,
                          "  variants for --count: empty out_scope "
                          "out_begin_end\n");
    if (prc != 0)
        return prc == 1 ? 0 : 2;
    if (o.count != NULL) {
        bench_loop_fn fn = strcmp(o.count, "empty") == 0 ? bench_loop_empty
                           : strcmp(o.count, "out_scope") == 0 ? out_scope
                           : strcmp(o.count, "out_begin_end") == 0
                               ? out_begin_end
                               : NULL;
        if (fn == NULL) {
            fprintf(stderr, "bench_span_disabled: --count takes empty, "
                            "out_scope, out_begin_end\n");
            return 2;
        }
        printf("%s %llu %llu\n", o.count, (unsigned long long)o.count_n,
               (unsigned long long)fn(o.count_n) & 1);
        return 0;
    }

    uint64_t t_start = bench_now_ns();
    bench_machine("bench_span_disabled");
    int two = o.threads2 && bench_ncpus() >= 2;
    bench_pin(0);
    printf("best of %d repetitions of about %.0f ms each; STAGEPROF_DISABLE "
           "defined in this file\n",
           o.reps, o.rep_ms);

    struct bench_variant v1[] = {
        {.key = "empty",
         .label = "empty loop",
         .fn = bench_loop_empty,
         .threads = 1},
        {.key = "rdtsc2",
         .label = "two rdtsc",
         .fn = bench_loop_rdtsc2,
         .threads = 1},
        {.key = "out_scope",
         .label = "compiled out: STAGEPROF_SCOPE",
         .fn = out_scope,
         .threads = 1},
        {.key = "out_begin_end",
         .label = "compiled out: SPAN_BEGIN/END",
         .fn = out_begin_end,
         .threads = 1},
    };
    int n1 = (int)(sizeof v1 / sizeof v1[0]);
    bench_rounds(v1, n1, &o);
    bench_table("compiled out - 1 thread", v1, n1, "empty", "rdtsc2");

    struct bench_variant v2[] = {
        {.key = "empty_2t",
         .label = "empty loop",
         .fn = bench_loop_empty,
         .threads = 2},
        {.key = "out_scope_2t",
         .label = "compiled out: STAGEPROF_SCOPE",
         .fn = out_scope,
         .threads = 2},
    };
    int n2 = (int)(sizeof v2 / sizeof v2[0]);
    if (two) {
        bench_pool_start();
        bench_rounds(v2, n2, &o);
        bench_table("compiled out - 2 threads, ns/op per thread", v2, n2,
                    "empty_2t", NULL);
        bench_pool_stop();
    }

    struct bench_variant *e = bench_find(v1, n1, "empty");
    struct bench_variant *s = bench_find(v1, n1, "out_scope");
    double q = s->best_ns / e->best_ns;
    printf("\ntarget: compiled out = empty loop: %.3f x empty (%+.3f ns) "
           "%s\n",
           q, s->best_ns - e->best_ns,
           q <= 1.05 ? "met"
                     : "MISSED (check noise: the loops are "
                       "identical, see bench/callgrind.sh)");
    printf("\n(%.1f s, checksum %llu)\n",
           (double)(bench_now_ns() - t_start) / 1e9,
           (unsigned long long)(bench_sink + bench_pool.sink) & 1);
    return 0;
}
