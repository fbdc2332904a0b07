/*
 * bench_writer.c - throughput of the Chrome JSON writer, on one core.
 *
 *   bench_writer [--events N] [--threads T] [--reps R] [--fake-clock]
 *                [--workload spans|pipeline] [--sink discard|memcpy|shm|tmp|
 *                flush] [--quick]
 *
 * Each repetition records about N events (default 2 000 000) on T threads
 * (default 2) into buffers with a 1 GiB budget, untimed, then times one call
 * of the writer (stageprof__writer_write, the function behind
 * stageprof_flush and stageprof_stop) into one sink:
 *
 *   discard     a memory sink whose write only counts the bytes
 *   memcpy      a memory sink that copies every piece into a 4 MiB ring
 *   /dev/shm    a file on tmpfs: write(2) into the page cache
 *   /tmp        a file on the disk's file system: write(2) into the page
 *               cache (no fsync, so the disk is not part of it)
 *   flush()     the public stageprof_flush() into a directory on /dev/shm
 *               (file naming, open, write, close, rename)
 *
 * Workloads:
 *
 *   spans       two nested spans per iteration, no run, no args: "X" only
 *   pipeline    one run per frame ("b"/"e"), six spans carrying args.run,
 *               one with an int argument, a counter and a flow ("s"/"f")
 *
 * Events are counted by the writer (stageprof_get_stats events_written), so
 * metadata events are included. The writer runs on the main thread, pinned
 * to one CPU; the recording threads have finished before it starts. The
 * clock is the real one (TSC when trusted, converted through the anchors),
 * or with --fake-clock a counter (no conversion).
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "bench.h"
#include "stageprof.h"
#include "tbuf.h"

/* ------------------------------------------------------------------------ */
/* Workloads                                                                */
/* ------------------------------------------------------------------------ */

static void record_spans(uint64_t events)
{
    for (uint64_t i = 0; i < events / 2; i++) {
        STAGEPROF_SCOPE(outer, "detector", "compute");
        {
            STAGEPROF_SCOPE(inner, "conv2d", "compute");
        }
    }
}

/* Events written per frame of record_pipeline. */
#define PIPELINE_EVENTS 11

static uint64_t frame_ids;

static void record_pipeline(uint64_t events)
{
    for (uint64_t i = 0; i < events / PIPELINE_EVENTS; i++) {
        uint64_t id = __atomic_add_fetch(&frame_ids, 1, __ATOMIC_RELAXED);
        STAGEPROF_RUN_BEGIN("frame", id);
        {
            STAGEPROF_SCOPE(s, "decode", "data");
            STAGEPROF_FLOW_BEGIN("frame", id);
        }
        {
            STAGEPROF_SCOPE(s, "resize", "preprocess");
            STAGEPROF_ARG_INT(s, "width", 640);
        }
        {
            STAGEPROF_SCOPE(s, "detector", "compute");
            STAGEPROF_FLOW_END("frame", id);
            {
                STAGEPROF_SCOPE(c1, "backbone", "compute");
            }
            {
                STAGEPROF_SCOPE(c2, "head", "compute");
            }
        }
        {
            STAGEPROF_SCOPE(s, "nms", "postprocess");
        }
        STAGEPROF_COUNTER_INT("queue_depth", i & 7);
        STAGEPROF_RUN_END("frame", id);
    }
}

struct job {
    void (*fn)(uint64_t);
    uint64_t events;
};

static void *record_thread(void *arg)
{
    struct job *j = arg;
    j->fn(j->events);
    return NULL;
}

/* Record @events in total on @threads new threads (they exit after). */
static void record(void (*fn)(uint64_t), uint64_t events, int threads)
{
    pthread_t th[64];
    struct job j = {fn, events / (uint64_t)threads};
    for (int i = 0; i < threads; i++)
        if (pthread_create(&th[i], NULL, record_thread, &j) != 0)
            bench_die("pthread_create failed");
    for (int i = 0; i < threads; i++)
        pthread_join(th[i], NULL);
}

/* ------------------------------------------------------------------------ */
/* Sinks                                                                    */
/* ------------------------------------------------------------------------ */

struct count_sink {
    uint64_t bytes;
};

static int discard_write(void *ud, const void *data, size_t len)
{
    (void)data;
    ((struct count_sink *)ud)->bytes += len;
    return 0;
}

#define RING_BYTES (4u << 20)

struct ring_sink {
    uint64_t bytes;
    unsigned char *ring;
    size_t at;
};

static int ring_write(void *ud, const void *data, size_t len)
{
    struct ring_sink *r = ud;
    const unsigned char *p = data;
    r->bytes += len;
    while (len > 0) {
        size_t k = RING_BYTES - r->at;
        if (k > len)
            k = len;
        memcpy(r->ring + r->at, p, k);
        r->at = (r->at + k) % RING_BYTES;
        p += k;
        len -= k;
    }
    return 0;
}

struct fd_sink {
    uint64_t bytes;
    int fd;
};

static int fd_write(void *ud, const void *data, size_t len)
{
    struct fd_sink *f = ud;
    const char *p = data;
    f->bytes += len;
    while (len > 0) {
        ssize_t n = write(f->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return STAGEPROF_EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Timed writes                                                             */
/* ------------------------------------------------------------------------ */

enum { SINK_DISCARD, SINK_MEMCPY, SINK_SHM, SINK_TMP, SINK_FLUSH, NSINKS };

static const char *const sink_keys[NSINKS] = {"discard", "memcpy", "shm", "tmp",
                                              "flush"};
static const char *const sink_names[NSINKS] = {
    "memory: discard", "memory: memcpy to a 4 MiB ring",
    "file on /dev/shm (tmpfs)", "file on /tmp (page cache)",
    "stageprof_flush() to /dev/shm"};

static char shm_dir[128], file_shm[160], file_tmp[160];
static unsigned char *ring;

struct result {
    double wall_s, cpu_s;
    uint64_t events, bytes;
};

static uint64_t events_written(void)
{
    stageprof_stats_t st = {.size = sizeof st};
    stageprof_get_stats(&st);
    return st.events_written;
}

/* Write everything recorded to sink @k; one timed call. */
static struct result timed_write(int k)
{
    struct result r = {0, 0, 0, 0};
    struct count_sink cs = {0};
    struct ring_sink rs = {0, ring, 0};
    struct fd_sink fs = {0, -1};
    struct sink s = {discard_write, NULL, &cs};
    uint64_t *bytes = &cs.bytes;
    const char *path = NULL;
    if (k == SINK_MEMCPY) {
        s.write = ring_write;
        s.ud = &rs;
        bytes = &rs.bytes;
    } else if (k == SINK_SHM || k == SINK_TMP) {
        path = k == SINK_SHM ? file_shm : file_tmp;
        s.write = fd_write;
        s.ud = &fs;
        bytes = &fs.bytes;
    }
    uint64_t ev0 = events_written();
    uint64_t c0 = bench_cpu_ns(), t0 = bench_now_ns();
    int rc;
    if (k == SINK_FLUSH) {
        rc = stageprof_flush();
    } else {
        if (path != NULL) {
            fs.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fs.fd < 0)
                bench_die("cannot create the trace file");
        }
        pthread_mutex_lock(&stageprof__g.wlock);
        rc = stageprof__writer_write(&s, 0);
        pthread_mutex_unlock(&stageprof__g.wlock);
        if (path != NULL && close(fs.fd) != 0)
            rc = STAGEPROF_EIO;
    }
    uint64_t t1 = bench_now_ns(), c1 = bench_cpu_ns();
    if (rc != 0)
        bench_die("the writer failed");
    if (path != NULL)
        unlink(path);
    if (k == SINK_FLUSH) {
        char p[4096];
        struct stat st;
        if (stageprof_get_last_path(p, sizeof p) == 0 && stat(p, &st) == 0) {
            *bytes = (uint64_t)st.st_size;
            unlink(p);
        }
    }
    r.wall_s = (double)(t1 - t0) / 1e9;
    r.cpu_s = (double)(c1 - c0) / 1e9;
    r.events = events_written() - ev0;
    r.bytes = *bytes;
    return r;
}

static uint64_t fake_t = 1000000;

static uint64_t fake_clock(void)
{
    return __atomic_add_fetch(&fake_t, 137, __ATOMIC_RELAXED);
}

int main(int argc, char **argv)
{
    uint64_t events = 2000000;
    int threads = 2, reps = 5, fake = 0;
    const char *only_load = NULL, *only_sink = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--events") == 0 && i + 1 < argc) {
            events = bench_parse_u64(argv[++i], "bad --events");
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = (int)bench_parse_u64(argv[++i], "bad --threads");
            if (threads < 1 || threads > 64)
                bench_die("--threads must be 1..64");
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = (int)bench_parse_u64(argv[++i], "bad --reps");
            if (reps < 1)
                bench_die("--reps must be at least 1");
        } else if (strcmp(argv[i], "--workload") == 0 && i + 1 < argc) {
            only_load = argv[++i];
        } else if (strcmp(argv[i], "--sink") == 0 && i + 1 < argc) {
            only_sink = argv[++i];
        } else if (strcmp(argv[i], "--fake-clock") == 0) {
            fake = 1;
        } else if (strcmp(argv[i], "--quick") == 0) {
            events = 200000;
            reps = 2;
        } else {
            printf("usage: %s [--events N] [--threads T] [--reps R] "
                   "[--fake-clock] [--workload spans|pipeline] "
                   "[--sink discard|memcpy|shm|tmp|flush] [--quick]\n",
                   argv[0]);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (stageprof_is_active())
        bench_die("unset STAGEPROF_ENABLE: this program starts tracing");

    uint64_t t_start = bench_now_ns();
    bench_cpus_init();
    bench_machine("bench_writer");
    bench_pin(0);
    ring = malloc(RING_BYTES);
    if (ring == NULL)
        bench_die("out of memory");
    memset(ring, 0, RING_BYTES);
    snprintf(shm_dir, sizeof shm_dir, "/dev/shm/stageprof-bench-%d",
             (int)getpid());
    snprintf(file_shm, sizeof file_shm, "/dev/shm/stageprof-bench-%d.json",
             (int)getpid());
    snprintf(file_tmp, sizeof file_tmp, "/tmp/stageprof-bench-%d.json",
             (int)getpid());

    if (fake)
        stageprof__clock_set_fake(fake_clock);
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 1;
    c.buffer_bytes = 1ll << 30;
    c.dir = shm_dir;
    if (stageprof_start(&c) != 0)
        bench_die("stageprof_start failed");

    printf("writer on the main thread (pinned); %llu events recorded per "
           "repetition on %d threads; best of %d; clock %s\n",
           (unsigned long long)events, threads, reps, stageprof__clock_name());

    struct {
        const char *name;
        void (*fn)(uint64_t);
    } loads[] = {{"spans", record_spans}, {"pipeline", record_pipeline}};
    double worst_rate = 1e30;
    for (size_t w = 0; w < sizeof loads / sizeof loads[0]; w++) {
        if (only_load != NULL && strcmp(only_load, loads[w].name) != 0)
            continue;
        struct result best[NSINKS];
        memset(best, 0, sizeof best);
        double rec_ns = 0;
        uint64_t buffered = 0;
        for (int r = 0; r < reps; r++) {
            for (int k = 0; k < NSINKS; k++) {
                if (only_sink != NULL && strcmp(only_sink, sink_keys[k]) != 0)
                    continue;
                stageprof_stats_t st = {.size = sizeof st};
                uint64_t t0 = bench_now_ns();
                record(loads[w].fn, events, threads);
                uint64_t dt = bench_now_ns() - t0;
                stageprof_get_stats(&st);
                if (rec_ns == 0) {
                    rec_ns = (double)dt;
                    buffered = st.bytes_buffered;
                }
                struct result x = timed_write(k);
                if (best[k].wall_s == 0 || x.wall_s < best[k].wall_s)
                    best[k] = x;
            }
        }
        int k0 = 0;
        while (k0 < NSINKS - 1 && best[k0].events == 0)
            k0++;
        double ev = (double)(best[k0].events ? best[k0].events : 1);
        printf("\nworkload %s: %llu events per write, %.1f bytes of JSON per "
               "event, %.1f buffer bytes per event; recording (wall, thread "
               "start and first-touch page faults included) %.1f ns per "
               "event\n",
               loads[w].name, (unsigned long long)best[k0].events,
               (double)best[k0].bytes / ev, (double)buffered / ev, rec_ns / ev);
        printf("  %-34s %12s %10s %10s %9s\n", "sink", "Mevents/s", "MB/s",
               "ns/event", "cpu/wall");
        for (int k = 0; k < NSINKS; k++) {
            if (best[k].events == 0)
                continue;
            double rate = (double)best[k].events / best[k].wall_s;
            printf("  %-34s %12.2f %10.0f %10.1f %9.2f\n", sink_names[k],
                   rate / 1e6, (double)best[k].bytes / best[k].wall_s / 1e6,
                   1e9 / rate, best[k].cpu_s / best[k].wall_s);
            if (rate < worst_rate)
                worst_rate = rate;
        }
    }
    printf("\ntarget: >= 10 million events/s to a memory sink and to the "
           "page cache: slowest row above %.2f M/s %s\n",
           worst_rate / 1e6, worst_rate >= 10e6 ? "met" : "MISSED");

    stageprof_stop();
    char p[4096];
    if (stageprof_get_last_path(p, sizeof p) == 0)
        unlink(p);
    rmdir(shm_dir);
    free(ring);
    printf("\n(%.1f s)\n", (double)(bench_now_ns() - t_start) / 1e9);
    return 0;
}
