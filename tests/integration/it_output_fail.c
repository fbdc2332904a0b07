/*
 * it_output_fail.c - trace writes that fail, also for root, and recovery.
 *
 *   it_output_fail MODE BASE
 *
 * MODE picks the failure; BASE is an empty directory of the checker's:
 *
 *   enotdir  the trace directory is BASE/blocker/traces and BASE/blocker a
 *            regular file: STAGEPROF_ENOTDIR (twice); then the file is
 *            replaced by a directory and stageprof_flush() succeeds
 *   fsize    RLIMIT_FSIZE below the trace's size, SIGXFSZ at its default
 *            (it would kill the process): STAGEPROF_EFBIG; then the limit
 *            is raised and the flush succeeds
 *   nofile   RLIMIT_NOFILE leaves no free descriptor: STAGEPROF_EIO; then
 *            the limit is restored and the flush succeeds
 *
 * Recording happens on main and two threads, one of which exits before the
 * first write. Every event recorded must reach the trace of the successful
 * flush (check_output_fail.py), no partial or temporary file may be left.
 */
#include "it_common.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define THREAD_SPANS 600
#define MAIN_SPANS 1400

/* Spans with strings, so that the trace is large (over 2 MiB). */
static void record(const char *name_prefix, int n)
{
    static const char pad[] = "0123456789abcdef0123456789abcdef"
                              "0123456789abcdef0123456789abcdef";
    for (int i = 0; i < n; i++) {
        STAGEPROF_SCOPE(outer, "work", "compute");
        STAGEPROF_ARG_INT(outer, "i", i);
        STAGEPROF_ARG_STR(outer, "who", name_prefix);
        for (int k = 0; k < 4; k++) {
            STAGEPROF_SCOPE(inner, "step", "compute");
            STAGEPROF_ARG_STR(inner, "pad", pad);
        }
    }
}

static void *worker(void *arg)
{
    const char *name = arg;
    stageprof_thread_set_name(name);
    record(name, THREAD_SPANS);
    return NULL;
}

/* Number of entries in @dir besides . and .. */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        it_fail("usage: it_output_fail enotdir|fsize|nofile BASE");
    const char *mode = argv[1], *base = argv[2];
    char blocker[4096], dir[4096];
    snprintf(blocker, sizeof blocker, "%s/blocker", base);
    int enotdir = strcmp(mode, "enotdir") == 0;
    snprintf(dir, sizeof dir, enotdir ? "%s/blocker/traces" : "%s/traces",
             base);
    if (enotdir) {
        FILE *f = fopen(blocker, "w");
        IT_CHECK(f != NULL && fclose(f) == 0);
    }

    it_start(dir);
    stageprof_thread_set_name("fail-main");
    pthread_t early, late;
    IT_CHECK(pthread_create(&early, NULL, worker, "early") == 0);
    IT_CHECK(pthread_join(early, NULL) == 0);
    IT_CHECK(pthread_create(&late, NULL, worker, "late") == 0);
    record("fail-main", MAIN_SPANS);
    IT_CHECK(pthread_join(late, NULL) == 0);

    int first = 0, second = 0, want = 0;
    struct rlimit saved;
    if (enotdir) {
        want = STAGEPROF_ENOTDIR;
        first = stageprof_stop();
        second = stageprof_flush(); /* still broken: the data stays */
        IT_CHECK(unlink(blocker) == 0 && mkdir(blocker, 0755) == 0);
    } else if (strcmp(mode, "fsize") == 0) {
        want = STAGEPROF_EFBIG;
        IT_CHECK(signal(SIGXFSZ, SIG_DFL) != SIG_ERR);
        IT_CHECK(getrlimit(RLIMIT_FSIZE, &saved) == 0);
        struct rlimit low = saved;
        /* Inside the trace, past the writer's first 1 MiB piece. */
        low.rlim_cur = 1536 << 10;
        IT_CHECK(setrlimit(RLIMIT_FSIZE, &low) == 0);
        first = stageprof_stop();
        second = stageprof_flush();
        IT_CHECK(setrlimit(RLIMIT_FSIZE, &saved) == 0);
    } else if (strcmp(mode, "nofile") == 0) {
        want = STAGEPROF_EIO;
        int fd = dup(0);
        IT_CHECK(fd >= 0 && close(fd) == 0);
        IT_CHECK(getrlimit(RLIMIT_NOFILE, &saved) == 0);
        struct rlimit low = saved;
        low.rlim_cur = (rlim_t)fd; /* every descriptor below is in use */
        IT_CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
        first = stageprof_stop();
        second = stageprof_flush();
        IT_CHECK(setrlimit(RLIMIT_NOFILE, &saved) == 0);
    } else {
        it_fail("unknown mode %s", mode);
    }
    IT_CHECK_RC(first, want);
    IT_CHECK_RC(second, want);
    IT_CHECK(!stageprof_is_tracing());
    /* Nothing half-written may be left behind. */
    int left = enotdir ? 0 : dir_entries(dir);
    char path[16];
    IT_CHECK_RC(stageprof_get_last_path(path, sizeof path), STAGEPROF_ENOENT);

    IT_CHECK_RC(stageprof_flush(), 0);
    printf("{\"first\":\"%s\",\"second\":\"%s\",\"left_after_failure\":%d,"
           "\"thread_spans\":%d,\"main_spans\":%d,\"dir\":\"%s\",",
           stageprof_err_name(first), stageprof_err_name(second), left,
           THREAD_SPANS, MAIN_SPANS, dir);
    it_print_last_path("last_path");
    printf(",");
    it_print_stats("stats");
    printf("}\n");
    return 0;
}
