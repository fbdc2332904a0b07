/*
 * hello.c - the smallest stageprof program: three stages of a fake
 * inference pipeline, run for a few frames.
 *
 *   STAGEPROF_ENABLE=1 ./hello
 *
 * writes a Chrome trace to ./inference_profiling/ (STAGEPROF_DIR moves it)
 * that opens in Perfetto UI or chrome://tracing.
 */
#include <stageprof.h>

#include <stdio.h>

/* Stand-in for real work, so each stage takes visible time. */
static double work(int n)
{
    volatile double acc = 0.0;
    for (int i = 1; i <= n; i++)
        acc = acc + 1.0 / i;
    return acc;
}

static double preprocess(int frame)
{
    STAGEPROF_SCOPE(span, "resize", "preprocess");
    STAGEPROF_ARG_INT(span, "frame", frame);
    return work(20000);
}

static double infer(double input)
{
    STAGEPROF_SCOPE(span, "detector", "compute");
    return input + work(100000);
}

static void postprocess(double output)
{
    STAGEPROF_SCOPE(span, "nms", "postprocess");
    STAGEPROF_ARG_DOUBLE(span, "output", output);
    work(10000);
}

int main(void)
{
    char path[4096];

    for (int frame = 1; frame <= 5; frame++) {
        STAGEPROF_RUN_BEGIN("frame", (uint64_t)frame);
        postprocess(infer(preprocess(frame)));
        STAGEPROF_RUN_END("frame", (uint64_t)frame);
    }

    /* Write the trace now rather than at exit, to say where it went. */
    if (stageprof_is_tracing() && stageprof_stop() == 0 &&
        stageprof_get_last_path(path, sizeof path) == 0)
        printf("hello: trace written to %s\n", path);
    else
        printf("hello: done (set STAGEPROF_ENABLE=1 to write a trace)\n");
    return 0;
}
