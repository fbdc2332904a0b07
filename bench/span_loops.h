/*
 * span_loops.h - the span loops measured at every cost level. Included by
 * bench_span.c (macros live) and bench_span_disabled.c (STAGEPROF_DISABLE),
 * each defining SPAN_LOOP(name) to give the functions its own prefix, so
 * the compiled-out level runs exactly the code the other levels run.
 */
#ifndef SPAN_LOOP
#error "define SPAN_LOOP(name) before including span_loops.h"
#endif

static BENCH_LOOP uint64_t SPAN_LOOP(scope)(uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        STAGEPROF_SCOPE(span, "bench.scope", "compute");
        BENCH_KEEP(i);
    }
    return n;
}

static BENCH_LOOP uint64_t SPAN_LOOP(begin_end)(uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        STAGEPROF_SPAN_BEGIN(span, "bench.begin_end", "compute");
        BENCH_KEEP(i);
        STAGEPROF_SPAN_END(span);
    }
    return n;
}
