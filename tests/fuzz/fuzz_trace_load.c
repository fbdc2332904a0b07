/*
 * fuzz_trace_load.c - libFuzzer target for the trace reader of
 * `stageprof report`: cli/trace_load.c feeding cli/agg.c.
 *
 * Each input is a trace file as `stageprof report` would read it. It is
 * written to one anonymous file (a memfd, or an unlinked file under
 * /tmp), opened by tl_read() through /proc/self/fd/N, and every event is
 * folded into two fresh aggregates: one with default options (as
 * `stageprof report TRACE`) and one windowed, filtered and with
 * approximate percentiles past two durations (as `stageprof report
 * --from=1us --to=1s --thread=1 --exact-limit=2 TRACE`); both are then
 * finished and released. An input that is not already gzip is, one time in
 * four (chosen by its content, so a run is reproducible), also read
 * gzip-compressed, and the two readings must agree on everything they
 * report: a difference aborts.
 *
 * Build and run (clang with libFuzzer, ASan and UBSan):
 *
 *   make fuzz                          600 s on the corpus, FUZZ_SECONDS=N
 *   build-fuzz/tests/fuzz/fuzz_trace_load -dict=tests/fuzz/trace.dict DIR...
 *   build-fuzz/tests/fuzz/fuzz_trace_load FILE...   replay inputs once
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "agg.h"
#include "trace_load.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int trace_fd = -1;
static char trace_path[64];
static unsigned char *gz_buf;
static size_t gz_cap;

/* Everything one reading reports, compared between plain and gzip. */
struct reading {
    int rc;
    struct tl_result res;
    char err[1024];
    uint64_t events, nstages, nthreads, ncounters, tally;
};

static void die(const char *what)
{
    fprintf(stderr, "fuzz_trace_load: %s\n", what);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
#ifdef MFD_CLOEXEC
    trace_fd = memfd_create("fuzz_trace_load", MFD_CLOEXEC);
#endif
    if (trace_fd < 0) {
        char tmpl[] = "/tmp/fuzz_trace_load.XXXXXX";
        trace_fd = mkstemp(tmpl);
        if (trace_fd < 0)
            die("cannot create a temporary file");
        unlink(tmpl); /* still readable through /proc/self/fd */
    }
    snprintf(trace_path, sizeof trace_path, "/proc/self/fd/%d", trace_fd);
    return 0;
}

static void put_file(const void *data, size_t size)
{
    if (ftruncate(trace_fd, 0) != 0)
        die("cannot truncate the trace file");
    const unsigned char *p = data;
    off_t at = 0;
    while (size > 0) {
        ssize_t n = pwrite(trace_fd, p, size, at);
        if (n <= 0)
            die("cannot write the trace file");
        p += n;
        at += n;
        size -= (size_t)n;
    }
}

/* Both aggregates see every event, as they would in two reports. */
static int two_aggs(void *arg, const struct tl_event *ev)
{
    struct agg *a = arg;
    agg_event(&a[0], ev);
    agg_event(&a[1], ev);
    return 0;
}

static void read_once(struct reading *r)
{
    static const struct agg_opts window = {.from_ns = 1000,
                                           .to_ns = 1000000000,
                                           .has_from = 1,
                                           .has_to = 1,
                                           .thread = "1",
                                           .exact_limit = 2};
    struct agg a[2];
    memset(r, 0, sizeof *r);
    if (agg_init(&a[0], NULL) != 0 || agg_init(&a[1], &window) != 0)
        die("out of memory");
    r->rc = tl_read(trace_path, two_aggs, a, &r->res, r->err, sizeof r->err);
    for (int i = 0; i < 2; i++) {
        agg_finish(&a[i]);
        for (size_t j = 0; j < a[i].nstages; j++)
            r->tally += a[i].stages[j]->count;
    }
    r->nstages = a[0].nstages;
    r->nthreads = a[0].nthreads;
    r->ncounters = a[0].ncounters;
    r->tally += a[0].no_dur + a[0].bad_dur + a[0].no_ts + a[0].open_b +
                a[0].orphan_e + a[0].open_async + a[0].orphan_async +
                a[0].no_ph;
    agg_fini(&a[0]);
    agg_fini(&a[1]);
}

/* @data as one gzip member into gz_buf; its size, 0 on failure. */
static size_t gzip(const uint8_t *data, size_t size)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    size_t need = deflateBound(&z, (uLong)size) + 32;
    if (need > gz_cap) {
        unsigned char *b = realloc(gz_buf, need);
        if (b == NULL) {
            deflateEnd(&z);
            return 0;
        }
        gz_buf = b;
        gz_cap = need;
    }
    z.next_in = (Bytef *)(uintptr_t)data;
    z.avail_in = (uInt)size;
    z.next_out = gz_buf;
    z.avail_out = (uInt)gz_cap;
    int rc = deflate(&z, Z_FINISH);
    size_t n = gz_cap - z.avail_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? n : 0;
}

static int same(const struct reading *x, const struct reading *y)
{
    return x->rc == y->rc && strcmp(x->err, y->err) == 0 &&
           x->res.events == y->res.events &&
           x->res.truncated == y->res.truncated &&
           x->res.unclosed == y->res.unclosed &&
           x->res.ts_rounded == y->res.ts_rounded &&
           strcmp(x->res.producer, y->res.producer) == 0 &&
           x->res.has_summary == y->res.has_summary &&
           x->res.dropped == y->res.dropped &&
           x->res.complete == y->res.complete && x->nstages == y->nstages &&
           x->nthreads == y->nthreads && x->ncounters == y->ncounters &&
           x->tally == y->tally;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct reading plain, packed;
    put_file(data, size);
    read_once(&plain);

    /* Not for inputs zlib would already take for gzip, nor huge ones. */
    int is_gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    if (is_gzip || size > (1u << 20) || (h & 3) != 0)
        return 0;
    size_t n = gzip(data, size);
    if (n == 0)
        return 0;
    put_file(gz_buf, n);
    read_once(&packed);
    if (!same(&plain, &packed)) {
        fprintf(stderr,
                "fuzz_trace_load: plain and gzip readings differ\n"
                "  plain: rc %d, %llu events, truncated %d: %s\n"
                "  gzip:  rc %d, %llu events, truncated %d: %s\n",
                plain.rc, (unsigned long long)plain.res.events,
                plain.res.truncated, plain.err, packed.rc,
                (unsigned long long)packed.res.events, packed.res.truncated,
                packed.err);
        abort();
    }
    return 0;
}
