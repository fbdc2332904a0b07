/*
 * test_trace_file.c - trace files beyond the plain case: gzip output (a
 * strict gzip stream holding the whole trace, written atomically, events
 * kept when the disk fails part way) and retention (the oldest files this
 * process wrote are removed until STAGEPROF_MAX_FILES and
 * STAGEPROF_MAX_DIR_BYTES hold, the newest never, other files never).
 */
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "helpers.h"

static char *tmpdir(void)
{
    return temp_dir("stageprof-tf");
}

/* Diagnostics of the library, one line each. */
static char logged[64][600];
static int nlogged;

static void log_cb(int level, const char *msg, void *ud)
{
    (void)ud;
    if (nlogged < 64)
        snprintf(logged[nlogged++], sizeof logged[0], "%d %s", level, msg);
}

static int logged_with(const char *needle)
{
    int n = 0;
    for (int i = 0; i < nlogged; i++)
        n += strstr(logged[i], needle) != NULL;
    return n;
}

/* Start tracing into @dir (fake clock, fixed ids, logging to log_cb). */
static void start_files(const char *dir, int gzip, long long max_files,
                        long long max_bytes)
{
    stageprof__clock_set_fake(fake_clock);
    stageprof__writer_set_fixed_ids(1);
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 1;
    c.dir = dir;
    c.gzip = gzip;
    c.max_files = max_files;
    c.max_dir_bytes = max_bytes;
    c.log_cb = log_cb;
    ASSERT_EQ(stageprof_start(&c), 0);
}

/* A strict gunzip of the whole file: one gzip member, nothing after it. */
static char *gunzip_file(const char *path)
{
    size_t len;
    unsigned char *in = (unsigned char *)read_file(path, &len);
    ASSERT_TRUE(len > 18 && in[0] == 0x1f && in[1] == 0x8b);
    z_stream z;
    memset(&z, 0, sizeof z);
    ASSERT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = in;
    z.avail_in = (uInt)len;
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    unsigned char out[65536];
    int zr;
    do {
        z.next_out = out;
        z.avail_out = sizeof out;
        zr = inflate(&z, Z_NO_FLUSH);
        ASSERT_TRUE(zr == Z_OK || zr == Z_STREAM_END);
        stageprof__sb_add(&sb, out, sizeof out - z.avail_out);
    } while (zr != Z_STREAM_END);
    ASSERT_EQ(z.avail_in, 0); /* no trailing bytes */
    inflateEnd(&z);
    free(in);
    stageprof__sb_add(&sb, "", 1);
    return sb.buf;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static long long size_of(const char *path)
{
    struct stat st;
    ASSERT_EQ(stat(path, &st), 0);
    return (long long)st.st_size;
}

static void last_path(char *buf, size_t len)
{
    ASSERT_EQ(stageprof_get_last_path(buf, len), 0);
}

/* ------------------------------------------------------------------------ */
/* gzip                                                                     */
/* ------------------------------------------------------------------------ */

STAGEPROF_TEST(gzip_round_trip)
{
    char *dir = tmpdir();
    start_files(dir, 1, 0, 0);
    record_some(3000);
    ASSERT_EQ(stageprof_snapshot(), 0);
    char snap[4096], fin[4096];
    last_path(snap, sizeof snap);
    ASSERT_TRUE(ends_with(snap, ".json.gz"));
    record_some(1000);
    ASSERT_EQ(stageprof_stop(), 0);
    last_path(fin, sizeof fin);
    ASSERT_TRUE(ends_with(fin, ".json.gz"));
    ASSERT_EQ(files_in(dir, ".json.gz"), 2);
    ASSERT_EQ(files_in(dir, ".json"), 0);
    ASSERT_EQ(files_in(dir, ".tmp"), 0);

    char *a = gunzip_file(snap);
    ASSERT_EQ(count_of(a, "\"name\":\"stage\""), 3000);
    ASSERT_CONTAINS(a, "\"stageprof_summary\":{\"complete\":true");
    ASSERT_TRUE(ends_with(a, "}}\n"));
    char *b = gunzip_file(fin);
    ASSERT_EQ(count_of(b, "\"name\":\"stage\""), 4000);
    ASSERT_CONTAINS(b, "\"final\":true");
    ASSERT_TRUE(ends_with(b, "}}\n"));
    /* Compressed for real: JSON text shrinks several times. */
    ASSERT_LT(size_of(fin) * 4, (long long)strlen(b));
    /* The counters agree with what the files hold. */
    stageprof_stats_t st = stats();
    ASSERT_EQ(st.traces_written, 2);
    ASSERT_EQ(st.write_errors, 0);
    free(a);
    free(b);
}

STAGEPROF_TEST(gzip_from_the_environment)
{
    setenv("STAGEPROF_GZIP", "yes", 1);
    char *dir = tmpdir();
    start_files(dir, STAGEPROF_UNSET, 0, 0);
    record_some(10);
    ASSERT_EQ(stageprof_flush(), 0);
    char p[4096];
    last_path(p, sizeof p);
    ASSERT_TRUE(ends_with(p, ".json.gz"));
    char *t = gunzip_file(p);
    ASSERT_EQ(count_of(t, "\"name\":\"stage\""), 10);
    free(t);
    ASSERT_EQ(stageprof_stop(), 0);
    /* The API wins over the environment. */
    start_files(dir, 0, 0, 0);
    record_some(1);
    ASSERT_EQ(stageprof_stop(), 0);
    last_path(p, sizeof p);
    ASSERT_TRUE(ends_with(p, ".json"));
}

STAGEPROF_TEST(gzip_failure_mid_stream_keeps_events)
{
    char *dir = tmpdir();
    start_files(dir, 1, 0, 0);
    record_some(20000);
    /* The disk fills after 4 KiB of compressed output (inside the
     * events), after the first byte, and at the rename. */
    stageprof__trace_file_set_fail(STAGEPROF_ENOSPC, 4096);
    ASSERT_EQ(stageprof_flush(), STAGEPROF_ENOSPC);
    stageprof__trace_file_set_fail(STAGEPROF_EIO, 1);
    ASSERT_EQ(stageprof_snapshot(), STAGEPROF_EIO);
    stageprof__trace_file_set_fail(STAGEPROF_EIO, -2);
    ASSERT_EQ(stageprof_flush(), STAGEPROF_EIO);
    ASSERT_EQ(files_in(dir, ".gz"), 0);
    ASSERT_EQ(files_in(dir, ".tmp"), 0);
    stageprof_stats_t st = stats();
    ASSERT_EQ(st.write_errors, 3);
    ASSERT_EQ(st.traces_written, 0);
    ASSERT_EQ(st.events_written, 0);

    stageprof__trace_file_set_fail(0, 0);
    ASSERT_EQ(stageprof_stop(), 0);
    char p[4096];
    last_path(p, sizeof p);
    char *t = gunzip_file(p);
    ASSERT_EQ(count_of(t, "\"name\":\"stage\""), 20000);
    free(t);
    stageprof_get_stats(&st);
    ASSERT_EQ(st.traces_written, 1);
}

/* ------------------------------------------------------------------------ */
/* Retention                                                                */
/* ------------------------------------------------------------------------ */

/* A file that is not ours, named like a trace or not. */
static void foreign(const char *dir, const char *name, char *path, size_t len)
{
    snprintf(path, len, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ASSERT_NOT_NULL(f);
    fputs("{\"traceEvents\":[]}\n", f);
    fclose(f);
}

#define NFILES 6

STAGEPROF_TEST(retention_by_count_removes_only_our_oldest)
{
    char *dir = tmpdir();
    char f1[256], f2[256];
    foreign(dir, "workflow_execution_2000_01_01_00_00_00_1.json", f1,
            sizeof f1);
    foreign(dir, "notes.txt", f2, sizeof f2);
    start_files(dir, 0, 3, 0);
    char paths[NFILES][4096];
    for (int i = 0; i < NFILES; i++) {
        record_some(5);
        ASSERT_EQ(stageprof_flush(), 0);
        last_path(paths[i], sizeof paths[i]);
    }
    for (int i = 0; i < NFILES; i++)
        ASSERT_EQ(exists(paths[i]), i >= NFILES - 3);
    ASSERT_TRUE(exists(f1));
    ASSERT_TRUE(exists(f2));
    ASSERT_EQ(files_in(dir, ".json"), 4); /* ours and the foreign one */
    /* Every removal is logged, naming the file. */
    ASSERT_EQ(logged_with("removed old trace"), 3);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(logged_with(paths[i]), 2); /* written, then removed */
}

STAGEPROF_TEST(retention_by_bytes_keeps_the_newest_within_the_limit)
{
    char *dir = tmpdir();
    char f1[256];
    foreign(dir, "other.json", f1, sizeof f1);
    const long long limit = 12000;
    start_files(dir, 0, 0, limit);
    char paths[NFILES][4096];
    long long sizes[NFILES];
    int removed = 0;
    for (int i = 0; i < NFILES; i++) {
        record_some(20 + 10 * i); /* growing files */
        ASSERT_EQ(stageprof_flush(), 0);
        last_path(paths[i], sizeof paths[i]);
        sizes[i] = size_of(paths[i]);
        /* What is left: the newest files paths[first..i], nothing older,
         * within the limit together. */
        int first = i;
        while (first > 0 && exists(paths[first - 1]))
            first--;
        long long total = 0;
        for (int k = 0; k <= i; k++) {
            ASSERT_EQ(exists(paths[k]), k >= first);
            if (k >= first)
                total += sizes[k];
        }
        ASSERT_LE(total, limit);
        /* The next older one left only because it did not fit. */
        if (first > 0)
            ASSERT_GT(total + sizes[first - 1], limit);
        removed = first;
    }
    ASSERT_GE(removed, 2);
    ASSERT_EQ(logged_with("removed old trace"), removed);
    ASSERT_TRUE(exists(f1));
}

STAGEPROF_TEST(newest_file_kept_even_over_the_byte_limit)
{
    char *dir = tmpdir();
    start_files(dir, 0, 0, 1);
    char paths[3][4096];
    for (int i = 0; i < 3; i++) {
        record_some(50);
        ASSERT_EQ(stageprof_flush(), 0);
        last_path(paths[i], sizeof paths[i]);
        ASSERT_TRUE(exists(paths[i]));
        ASSERT_EQ(files_in(dir, ".json"), 1);
    }
}

STAGEPROF_TEST(failed_write_removes_nothing)
{
    char *dir = tmpdir();
    start_files(dir, 0, 1, 0);
    record_some(5);
    ASSERT_EQ(stageprof_flush(), 0);
    char a[4096], b[4096];
    last_path(a, sizeof a);
    record_some(5);
    stageprof__trace_file_set_fail(STAGEPROF_ENOSPC, 100);
    ASSERT_EQ(stageprof_flush(), STAGEPROF_ENOSPC);
    ASSERT_TRUE(exists(a));
    stageprof__trace_file_set_fail(0, 0);
    ASSERT_EQ(stageprof_flush(), 0);
    last_path(b, sizeof b);
    ASSERT_TRUE(!exists(a));
    ASSERT_TRUE(exists(b));
}

STAGEPROF_TEST(retention_counts_snapshots_and_gzip_files)
{
    char *dir = tmpdir();
    start_files(dir, 1, 2, 0);
    char paths[5][4096];
    for (int i = 0; i < 5; i++) {
        record_some(3);
        ASSERT_EQ(stageprof_snapshot(), 0);
        last_path(paths[i], sizeof paths[i]);
    }
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(exists(paths[i]), i >= 3);
    ASSERT_EQ(files_in(dir, ".json.gz"), 2);
    ASSERT_EQ(stageprof_stop(), 0);
    ASSERT_EQ(files_in(dir, ".json.gz"), 2);
}

STAGEPROF_TEST(existing_file_with_our_name_is_never_replaced)
{
    char *dir = tmpdir();
    start_files(dir, 0, 0, 0);
    /* Files named as ours would be, this second and the next two. */
    char names[3][256];
    time_t now = time(NULL);
    for (int i = 0; i < 3; i++) {
        time_t t = now + i;
        struct tm tm;
        localtime_r(&t, &tm);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y_%m_%d_%H_%M_%S", &tm);
        char name[128];
        snprintf(name, sizeof name, "workflow_execution_%s_%d.json", stamp,
                 (int)getpid());
        foreign(dir, name, names[i], sizeof names[i]);
    }
    record_some(5);
    ASSERT_EQ(stageprof_flush(), 0);
    char p[4096];
    last_path(p, sizeof p);
    for (int i = 0; i < 3; i++) {
        ASSERT_TRUE(strcmp(p, names[i]) != 0);
        size_t len;
        char *text = read_file(names[i], &len);
        ASSERT_EQ(len, strlen("{\"traceEvents\":[]}\n"));
        free(text);
    }
    ASSERT_EQ(files_in(dir, ".json"), 4);
}

STAGEPROF_TEST(no_limit_removes_nothing)
{
    char *dir = tmpdir();
    start_files(dir, 0, 0, 0);
    for (int i = 0; i < NFILES; i++) {
        record_some(2);
        ASSERT_EQ(stageprof_flush(), 0);
    }
    ASSERT_EQ(files_in(dir, ".json"), NFILES);
    ASSERT_EQ(logged_with("removed"), 0);
}

STAGEPROF_TEST_LIST(
    STAGEPROF_CASE(gzip_round_trip), STAGEPROF_CASE(gzip_from_the_environment),
    STAGEPROF_CASE(gzip_failure_mid_stream_keeps_events),
    STAGEPROF_CASE(retention_by_count_removes_only_our_oldest),
    STAGEPROF_CASE(retention_by_bytes_keeps_the_newest_within_the_limit),
    STAGEPROF_CASE(newest_file_kept_even_over_the_byte_limit),
    STAGEPROF_CASE(failed_write_removes_nothing),
    STAGEPROF_CASE(retention_counts_snapshots_and_gzip_files),
    STAGEPROF_CASE(existing_file_with_our_name_is_never_replaced),
    STAGEPROF_CASE(no_limit_removes_nothing))
