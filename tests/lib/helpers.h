/*
 * helpers.h - shared fixtures of the library unit tests: a fake clock, a
 * memory sink, a one-call "start with this config", temporary directories,
 * and reading back files, traces and statistics.
 *
 * Each case runs in its own process, so global library state starts clean.
 */
#ifndef STAGEPROF_TEST_HELPERS_H
#define STAGEPROF_TEST_HELPERS_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "test.h"
#include "util/strbuf.h"

/* Fake clock: every reading advances by 1000 ns, starting at 1 000 000. */
static uint64_t fake_now = 1000000;
static inline uint64_t fake_clock(void)
{
    return __atomic_fetch_add(&fake_now, 1000, __ATOMIC_RELAXED);
}

/* A sink that appends to a strbuf, or fails after `fail_after` bytes. */
struct mem_sink {
    struct strbuf sb;
    long long fail_after; /* -1: never */
    int fail_err;
};

static inline int mem_write(void *ud, const void *data, size_t len)
{
    struct mem_sink *m = ud;
    if (m->fail_after >= 0 && (long long)(m->sb.len + len) > m->fail_after)
        return m->fail_err;
    stageprof__sb_add(&m->sb, data, len);
    return m->sb.oom ? STAGEPROF_ENOMEM : 0;
}

static inline void mem_init(struct mem_sink *m)
{
    stageprof__sb_init(&m->sb, NULL, NULL);
    m->fail_after = -1;
    m->fail_err = STAGEPROF_EIO;
}

/* Write everything unwritten into a fresh string (caller frees). */
static inline char *write_to_string(int *rc_out)
{
    struct mem_sink m;
    mem_init(&m);
    struct sink s = {mem_write, NULL, &m};
    /* As trace files do: the library's own writers (the tail keeper) may
     * be at work. */
    pthread_mutex_lock(&stageprof__g.wlock);
    int rc = stageprof__writer_write(&s, 1);
    pthread_mutex_unlock(&stageprof__g.wlock);
    if (rc_out)
        *rc_out = rc;
    if (m.sb.buf == NULL)
        return strdup("");
    return m.sb.buf;
}

/*
 * Start tracing with the fake clock and fixed ids into @dir, without the
 * resource sampler (its counter tracks would change the exact traces).
 */
static inline void start_fake(const char *dir, long long buffer_bytes)
{
    stageprof__clock_set_fake(fake_clock);
    stageprof__writer_set_fixed_ids(1);
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 1;
    c.sample_hz = 0;
    c.dir = dir ? dir : "/tmp/stageprof-unit";
    if (buffer_bytes > 0)
        c.buffer_bytes = buffer_bytes;
    ASSERT_EQ(stageprof_start(&c), 0);
}

/* Number of non-overlapping occurrences of @needle in @hay. */
static inline int count_of(const char *hay, const char *needle)
{
    int n = 0;
    size_t k = strlen(needle);
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += k)
        n++;
    return n;
}

/* Events carrying args.run == @id: spans ("run":ID,...) and b/e
 * ("run":ID}). */
static inline int events_of_run(const char *trace, uint64_t id)
{
    char a[64], b[64];
    snprintf(a, sizeof a, "\"args\":{\"run\":%llu,", (unsigned long long)id);
    snprintf(b, sizeof b, "\"args\":{\"run\":%llu}", (unsigned long long)id);
    return count_of(trace, a) + count_of(trace, b);
}

/* The events array: from after "traceEvents":[ to the closing ]. */
static inline char *events_of(const char *trace)
{
    const char *b = strstr(trace, "\"traceEvents\":[\n");
    const char *e = strstr(trace, "\n],\n\"stageprof_summary\"");
    if (b == NULL || e == NULL)
        return strdup("");
    b += strlen("\"traceEvents\":[\n");
    return strndup(b, (size_t)(e - b));
}

/* @n spans "stage" (category "compute"), each with the argument "i". */
static inline void record_some(int n)
{
    for (int i = 0; i < n; i++) {
        STAGEPROF_SCOPE(s, "stage", "compute");
        STAGEPROF_ARG_INT(s, "i", i);
    }
}

/* The library's statistics (full-size struct; the call must succeed). */
static inline stageprof_stats_t stats(void)
{
    stageprof_stats_t st = {.size = sizeof st};
    ASSERT_EQ(stageprof_get_stats(&st), 0);
    return st;
}

/* Whether @s ends with @suffix. */
static inline int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Entries of @dir whose names end with @suffix; -1 when it cannot be read. */
static inline int files_in(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += ends_with(e->d_name, suffix);
    closedir(d);
    return n;
}

/*
 * The whole file at @path, NUL-terminated (caller frees); its length
 * without the NUL goes to *@len unless @len is NULL.
 */
static inline char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ASSERT_NOT_NULL(f);
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        stageprof__sb_add(&sb, buf, n);
    fclose(f);
    if (len != NULL)
        *len = sb.len;
    stageprof__sb_add(&sb, "", 1);
    return sb.buf;
}

/* The last trace file written: its path into @path, its text returned. */
static inline char *last_trace(char *path, size_t len)
{
    ASSERT_EQ(stageprof_get_last_path(path, len), 0);
    return read_file(path, NULL);
}

/* Remove @dir and the files in it (one level: trace directories). */
static inline void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        char path[4096];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/*
 * A fresh directory /tmp/<prefix>-XXXXXX, removed at exit with what is in
 * it (after the library's own exit handler has written its last trace,
 * when the first one is made before stageprof_start()). Returns static
 * storage: the last directory made.
 */
static char temp_dirs_[16][64];
static int ntemp_dirs_;
static inline void temp_dirs_remove_(void)
{
    for (int i = 0; i < ntemp_dirs_; i++)
        remove_dir(temp_dirs_[i]);
}
static inline char *temp_dir(const char *prefix)
{
    ASSERT_TRUE(ntemp_dirs_ < 16);
    char *dir = temp_dirs_[ntemp_dirs_];
    snprintf(dir, sizeof temp_dirs_[0], "/tmp/%s-XXXXXX", prefix);
    ASSERT_NOT_NULL(mkdtemp(dir));
    if (ntemp_dirs_++ == 0)
        atexit(temp_dirs_remove_);
    return dir;
}

#endif /* STAGEPROF_TEST_HELPERS_H */
