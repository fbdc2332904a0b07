/*
 * it_env.c - an instrumented program that never calls stageprof_start().
 *
 *   [STAGEPROF_ENABLE=1] it_env [idle]
 *
 * Tracing, when on, comes from the environment alone and the trace is
 * written at normal exit. A thread records and exits before main returns;
 * main records a run with a span inside, more spans and a counter. The
 * program prints whether tracing was on, for check_env.py. With "idle" it
 * records nothing at all.
 */
#include "it_common.h"

#include <pthread.h>
#include <string.h>

#define THREAD_SPANS 5
#define MAIN_SPANS 3

static void *worker(void *arg)
{
    (void)arg;
    stageprof_thread_set_name("env-worker");
    for (int i = 0; i < THREAD_SPANS; i++) {
        STAGEPROF_SCOPE(span, "env_thread_work", "compute");
        STAGEPROF_ARG_INT(span, "i", i);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "idle") == 0) {
        printf("{\"tracing\":%d}\n", stageprof_is_tracing());
        return 0;
    }
    stageprof_thread_set_name("env-main");
    pthread_t th;
    IT_CHECK(pthread_create(&th, NULL, worker, NULL) == 0);
    IT_CHECK(pthread_join(th, NULL) == 0);
    STAGEPROF_RUN_BEGIN("env_run", 42);
    {
        STAGEPROF_SCOPE(span, "env_in_run", "serve");
        STAGEPROF_ARG_INT(span, "expect_run", 42);
    }
    STAGEPROF_RUN_END("env_run", 42);
    for (int i = 0; i < MAIN_SPANS; i++) {
        STAGEPROF_SCOPE(span, "env_main_work", "data");
        STAGEPROF_ARG_INT(span, "expect_run", 0);
        STAGEPROF_COUNTER_INT("env_counter", i);
    }
    printf("{\"tracing\":%d,\"thread_spans\":%d,\"main_spans\":%d}\n",
           stageprof_is_tracing(), THREAD_SPANS, MAIN_SPANS);
    return 0;
}
