/*
 * it_threads.c - many threads recording everything at once.
 *
 *   it_threads DIR
 *
 * Workload (checked by check_threads.py against the trace in DIR):
 *
 *   early-0..2  record nested spans with int, double and string args, a
 *               run of their own and a counter, then exit before any other
 *               worker starts: their buffers outlive them until the write.
 *   prod-0..3   JOBS jobs each: the job is a run begun here; "produce"
 *               holds "encode" and "push", and the flow to a consumer
 *               begins inside "push"; the queue depth is a counter.
 *   cons-0..3   "pop" (the flow ends inside it, the run is adopted there),
 *               then "consume" > "infer" > "kernel" with an instant, a
 *               span with a run-time name, "finish", and the run ends here,
 *               on another thread than it began.
 *   it-main     "setup", a span recorded with explicit times ("manual").
 *
 * Every span gets an "expect_run" argument: the run it must carry in the
 * trace (0: none), so the checker can verify args.run event by event.
 */
#include "it_common.h"

#include <pthread.h>

#define NEARLY 3
#define NPROD 4
#define NCONS 4
#define JOBS 50
#define QCAP 16

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    uint64_t items[QCAP];
    int head, count, producers_left;
} q = {.lock = PTHREAD_MUTEX_INITIALIZER,
       .not_empty = PTHREAD_COND_INITIALIZER,
       .not_full = PTHREAD_COND_INITIALIZER};

static _Thread_local volatile double sink; /* keeps busy() from vanishing */

static void busy(int n)
{
    double acc = 0;
    for (int i = 1; i <= n; i++)
        acc += 1.0 / i;
    sink = acc;
}

static void *early_main(void *arg)
{
    int k = (int)(intptr_t)arg;
    char name[16];
    snprintf(name, sizeof name, "early-%d", k);
    stageprof_thread_set_name(name);
    stageprof_thread_set_sort_index(10 + k);
    {
        STAGEPROF_SCOPE(outer, "early_outer", "data");
        STAGEPROF_ARG_INT(outer, "expect_run", 0);
        STAGEPROF_ARG_INT(outer, "k", k);
        {
            STAGEPROF_SCOPE(mid, "early_mid", "preprocess");
            STAGEPROF_ARG_INT(mid, "expect_run", 0);
            STAGEPROF_ARG_DOUBLE(mid, "third", 1.0 / 3.0 + k);
            {
                STAGEPROF_SCOPE(inner, "early_inner", "compute");
                STAGEPROF_ARG_INT(inner, "expect_run", 0);
                STAGEPROF_ARG_STR(inner, "text",
                                  "quote\" back\\ nl\n tab\t \xc3\xa9 end");
                busy(2000);
            }
        }
    }
    uint64_t run = 900000 + (uint64_t)k;
    STAGEPROF_RUN_BEGIN("early_run", run);
    {
        STAGEPROF_SCOPE(job, "early_job", "serve");
        STAGEPROF_ARG_INT(job, "expect_run", run);
        busy(1000);
    }
    STAGEPROF_RUN_END("early_run", run);
    STAGEPROF_COUNTER_INT("early_progress", k + 1);
    return NULL;
}

static void push(uint64_t id)
{
    pthread_mutex_lock(&q.lock);
    while (q.count == QCAP)
        pthread_cond_wait(&q.not_full, &q.lock);
    q.items[(q.head + q.count) % QCAP] = id;
    q.count++;
    STAGEPROF_COUNTER_INT("queue_depth", q.count);
    pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.lock);
}

/* The next job id, or 0 once every producer is done and the queue empty. */
static uint64_t pop(void)
{
    pthread_mutex_lock(&q.lock);
    while (q.count == 0 && q.producers_left > 0)
        pthread_cond_wait(&q.not_empty, &q.lock);
    uint64_t id = 0;
    if (q.count > 0) {
        id = q.items[q.head];
        q.head = (q.head + 1) % QCAP;
        q.count--;
        STAGEPROF_COUNTER_INT("queue_depth", q.count);
        pthread_cond_signal(&q.not_full);
    }
    pthread_mutex_unlock(&q.lock);
    return id;
}

static void *producer_main(void *arg)
{
    int p = (int)(intptr_t)arg;
    char name[16];
    snprintf(name, sizeof name, "prod-%d", p);
    stageprof_thread_set_name(name);
    for (int j = 0; j < JOBS; j++) {
        uint64_t id = 1000 * (uint64_t)(p + 1) + (uint64_t)j + 1;
        STAGEPROF_RUN_BEGIN("job", id);
        {
            STAGEPROF_SCOPE(produce, "produce", "data");
            STAGEPROF_ARG_INT(produce, "expect_run", id);
            STAGEPROF_ARG_INT(produce, "producer", p);
            {
                STAGEPROF_SCOPE(encode, "encode", "preprocess");
                STAGEPROF_ARG_INT(encode, "expect_run", id);
                busy(300);
            }
            {
                STAGEPROF_SCOPE(span, "push", "queue");
                STAGEPROF_ARG_INT(span, "expect_run", id);
                STAGEPROF_FLOW_BEGIN("handoff", id);
                push(id);
            }
        }
        /* The job is the consumer's now. */
        STAGEPROF_RUN_SET(0);
    }
    pthread_mutex_lock(&q.lock);
    if (--q.producers_left == 0)
        pthread_cond_broadcast(&q.not_empty);
    pthread_mutex_unlock(&q.lock);
    return NULL;
}

static void *consumer_main(void *arg)
{
    int c = (int)(intptr_t)arg;
    char name[16];
    snprintf(name, sizeof name, "cons-%d", c);
    stageprof_thread_set_name(name);
    stageprof_thread_set_sort_index(20 + c);
    for (;;) {
        uint64_t id;
        {
            /* Begun before the job is known: it belongs to no run. */
            STAGEPROF_SCOPE(span, "pop", "queue");
            STAGEPROF_ARG_INT(span, "expect_run", 0);
            id = pop();
            if (id != 0) {
                STAGEPROF_RUN_SET(id);
                STAGEPROF_FLOW_END("handoff", id);
            }
        }
        if (id == 0)
            break;
        {
            STAGEPROF_SCOPE(consume, "consume", "compute");
            STAGEPROF_ARG_INT(consume, "expect_run", id);
            {
                STAGEPROF_SCOPE(infer, "infer", "compute");
                STAGEPROF_ARG_INT(infer, "expect_run", id);
                {
                    STAGEPROF_SCOPE(kernel, "kernel", "compute");
                    STAGEPROF_ARG_INT(kernel, "expect_run", id);
                    busy(500);
                }
            }
            /* An instant with an argument needs the function form. */
            static stageprof_site_t checkpoint =
                STAGEPROF_SITE_INIT("checkpoint", "compute");
            stageprof_span_t inst = stageprof_instant(&checkpoint);
            STAGEPROF_ARG_INT(inst, "expect_run", id);
            char dyn[32];
            snprintf(dyn, sizeof dyn, "dyn_p%d", (int)(id / 1000) - 1);
            {
                STAGEPROF_SCOPE_DYN(d, dyn, "postprocess");
                STAGEPROF_ARG_INT(d, "expect_run", id);
                busy(100);
            }
            STAGEPROF_COUNTER_DOUBLE("consumed", (double)id + 0.5);
        }
        {
            STAGEPROF_SCOPE(finish, "finish", "serve");
            STAGEPROF_ARG_INT(finish, "expect_run", id);
        }
        STAGEPROF_RUN_END("job", id);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        it_fail("usage: it_threads DIR");
    it_start(argv[1]);
    stageprof_process_set_name("it_threads");
    stageprof_thread_set_name("it-main");
    {
        STAGEPROF_SCOPE(setup, "setup", "engine");
        STAGEPROF_ARG_INT(setup, "expect_run", 0);
        /* A span with explicit times, lying inside "setup". */
        uint64_t t0 = stageprof_now_ns();
        while (stageprof_now_ns() - t0 < 20000)
            busy(10);
        STAGEPROF_SPAN_COMPLETE("manual", "io", t0, 12345);
    }

    pthread_t early[NEARLY], prod[NPROD], cons[NCONS];
    for (int i = 0; i < NEARLY; i++)
        IT_CHECK(pthread_create(&early[i], NULL, early_main,
                                (void *)(intptr_t)i) == 0);
    for (int i = 0; i < NEARLY; i++)
        IT_CHECK(pthread_join(early[i], NULL) == 0);

    q.producers_left = NPROD;
    for (int i = 0; i < NCONS; i++)
        IT_CHECK(pthread_create(&cons[i], NULL, consumer_main,
                                (void *)(intptr_t)i) == 0);
    for (int i = 0; i < NPROD; i++)
        IT_CHECK(pthread_create(&prod[i], NULL, producer_main,
                                (void *)(intptr_t)i) == 0);
    for (int i = 0; i < NPROD; i++)
        IT_CHECK(pthread_join(prod[i], NULL) == 0);
    for (int i = 0; i < NCONS; i++)
        IT_CHECK(pthread_join(cons[i], NULL) == 0);

    IT_CHECK_RC(stageprof_stop(), 0);
    IT_CHECK(!stageprof_is_tracing());

    printf("{\"version\":\"%s\",\"nearly\":%d,\"nprod\":%d,\"ncons\":%d,"
           "\"jobs\":%d,\"qcap\":%d,",
           stageprof_version_string(), NEARLY, NPROD, NCONS, JOBS, QCAP);
    it_print_last_path("last_path");
    printf(",");
    it_print_stats("stats");
    printf("}\n");
    return 0;
}
