/*
 * it_fork.c - a tracing process that forks children, all recording.
 *
 *   it_fork DIR [off]
 *
 * The parent records spans on two threads, forks CHILDREN children while
 * its worker thread keeps recording, records more, waits for them and
 * stops. Each child records its own spans (arg "who" = its index) and exits
 * normally, so its trace is written at exit. With "off" the children run
 * with STAGEPROF_FOLLOW_FORK=0 set by the parent's configuration.
 * Prints what was recorded, with the children's pids.
 */
#include "it_common.h"

#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILDREN 3
#define PARENT_BEFORE 20
#define PARENT_AFTER 10
#define CHILD_SPANS 15

static volatile int stop_worker;
static int worker_spans;

static void *worker(void *arg)
{
    (void)arg;
    stageprof_thread_set_name("parent-worker");
    while (!__atomic_load_n(&stop_worker, __ATOMIC_ACQUIRE)) {
        STAGEPROF_SCOPE(s, "parent_worker_span", "compute");
        worker_spans++;
        usleep(100);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        it_fail("usage: it_fork DIR [off]");
    int off = argc > 2 && strcmp(argv[2], "off") == 0;
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 1;
    c.dir = argv[1];
    c.follow_fork = off ? 0 : 1;
    IT_CHECK_RC(stageprof_start(&c), 0);
    stageprof_thread_set_name("parent-main");

    for (int i = 0; i < PARENT_BEFORE; i++) {
        STAGEPROF_SCOPE(s, "parent_before", "data");
    }
    pthread_t th;
    IT_CHECK(pthread_create(&th, NULL, worker, NULL) == 0);
    usleep(50000); /* the worker is running (ASan: fork with a thread still
                      starting can hang the child) */

    pid_t pids[CHILDREN];
    for (int k = 0; k < CHILDREN; k++) {
        STAGEPROF_SCOPE(fs, "fork_call", "engine");
        pid_t pid = fork();
        IT_CHECK(pid >= 0);
        if (pid == 0) {
            stageprof_thread_set_name("child-main");
            for (int i = 0; i < CHILD_SPANS; i++) {
                STAGEPROF_SCOPE(s, "child_span", "compute");
                STAGEPROF_ARG_INT(s, "who", k);
            }
            STAGEPROF_RUN_BEGIN("child_run", 100 + (uint64_t)k);
            {
                STAGEPROF_SCOPE(s, "child_in_run", "serve");
            }
            STAGEPROF_RUN_END("child_run", 100 + (uint64_t)k);
            exit(0); /* the trace is written at exit */
        }
        pids[k] = pid;
    }
    for (int i = 0; i < PARENT_AFTER; i++) {
        STAGEPROF_SCOPE(s, "parent_after", "data");
    }
    for (int k = 0; k < CHILDREN; k++) {
        int st;
        IT_CHECK(waitpid(pids[k], &st, 0) == pids[k]);
        IT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    __atomic_store_n(&stop_worker, 1, __ATOMIC_RELEASE);
    IT_CHECK(pthread_join(th, NULL) == 0);
    IT_CHECK_RC(stageprof_stop(), 0);
    printf("{\"parent\":%d,\"children\":[%d,%d,%d],\"before\":%d,"
           "\"after\":%d,\"worker\":%d,\"child_spans\":%d,\"forks\":%d}\n",
           (int)getpid(), (int)pids[0], (int)pids[1], (int)pids[2],
           PARENT_BEFORE, PARENT_AFTER, worker_spans, CHILD_SPANS, CHILDREN);
    return 0;
}
