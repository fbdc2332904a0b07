/*
 * trace_file.c - trace files: the directory, names that never collide,
 * atomic appearance, gzip, retention, and failures that keep the events.
 *
 * A trace is written as <dir>/workflow_execution_<stamp>_<pid>[_<n>].json
 * (".json.gz" with STAGEPROF_GZIP) under a temporary name (".tmp"
 * appended), then closed and renamed; only then do its events count as
 * written (the sink's finish step), so a full disk, a closed file
 * descriptor limit or RLIMIT_FSIZE leave everything in memory for the next
 * attempt. Writing past RLIMIT_FSIZE is refused before the kernel would
 * raise SIGXFSZ in the host program.
 *
 * The sink chain of one file:
 *
 *   writer --JSON--> file_write --(gzip: deflate, 64 KiB pieces)--> raw_write
 *                                                                  (fd)
 *   finish: deflate(Z_FINISH) -> close -> rename
 *
 * gzip streams: zlib keeps its window (about 256 KiB, from the library's
 * allocator), never the whole trace. Sizes and RLIMIT_FSIZE apply to the
 * bytes on disk.
 *
 * Retention (STAGEPROF_MAX_FILES, STAGEPROF_MAX_DIR_BYTES): while a limit
 * is in force, every file this process writes is remembered with its size
 * (at most RETAIN_MAX files, oldest forgotten first). After each successful
 * file the oldest remembered ones are removed until both limits hold; the
 * newest is never removed, even when it alone exceeds the byte limit. No
 * other file in the directory is ever looked at.
 *
 * A snapshot (WRITE_KEEP) is written only while a session is tracing,
 * checked under wlock: racing stageprof_stop(), it either comes before the
 * final trace or finds the session over (STAGEPROF_ENOTSTARTED).
 *
 * One file at a time (stageprof__g.wlock); the retention list is under it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "internal.h"

/* Compressed output is written in pieces of this size. */
#define ZBUF_SIZE (64u << 10)
/* Most files remembered for retention. */
#define RETAIN_MAX 1024

static int fail_err;
static long long fail_after = -1;

void stageprof__trace_file_set_fail(int err, long long after)
{
    fail_err = err;
    fail_after = err ? after : -1;
}

struct file_sink {
    int fd;
    uint64_t written;     /* bytes in the file */
    uint64_t fsize_limit; /* RLIMIT_FSIZE, or UINT64_MAX */
    const char *tmp;      /* rename tmp to path when finishing; NULL: no */
    const char *path;
    z_stream *z;         /* gzip stream; NULL: plain JSON */
    unsigned char *zbuf; /* compressed bytes on their way to the file */
};

/* @len bytes to the file itself. */
static int raw_write(struct file_sink *fs, const void *data, size_t len)
{
    if (fail_after >= 0 && fs->written + len > (uint64_t)fail_after)
        return fail_err;
    /* Writing past RLIMIT_FSIZE would raise SIGXFSZ in the host: refuse. */
    if (fs->written + len > fs->fsize_limit)
        return STAGEPROF_EFBIG;
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fs->fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return stageprof__translate_errno(errno);
        }
        if (n == 0)
            return STAGEPROF_EIO;
        p += n;
        len -= (size_t)n;
        fs->written += (uint64_t)n;
    }
    return 0;
}

/*
 * Run deflate over what the stream holds with @flush, writing every full
 * or final piece. Z_NO_FLUSH returns once the input is consumed, Z_FINISH
 * once the gzip trailer is out.
 */
static int gz_pump(struct file_sink *fs, int flush)
{
    z_stream *z = fs->z;
    for (;;) {
        z->next_out = fs->zbuf;
        z->avail_out = ZBUF_SIZE;
        int zr = deflate(z, flush);
        if (zr == Z_STREAM_ERROR)
            return STAGEPROF_EIO;
        size_t have = ZBUF_SIZE - z->avail_out;
        if (have > 0) {
            int rc = raw_write(fs, fs->zbuf, have);
            if (rc != 0)
                return rc;
        }
        if (flush == Z_FINISH ? zr == Z_STREAM_END
                              : z->avail_out != 0 && z->avail_in == 0)
            return 0;
    }
}

static int file_write(void *ud, const void *data, size_t len)
{
    struct file_sink *fs = ud;
    if (fs->z == NULL)
        return raw_write(fs, data, len);
    const unsigned char *p = data;
    while (len > 0) {
        /* avail_in is 32 bits wide. */
        uInt k = len > (1u << 30) ? (1u << 30) : (uInt)len;
        fs->z->next_in = (Bytef *)(uintptr_t)p; /* zlib never writes it */
        fs->z->avail_in = k;
        int rc = gz_pump(fs, Z_NO_FLUSH);
        if (rc != 0)
            return rc;
        p += k;
        len -= k;
    }
    return 0;
}

/* Close the file and give it its final name; the fd is closed either way. */
static int file_finish(void *ud)
{
    struct file_sink *fs = ud;
    int rc = 0;
    if (fs->z != NULL) {
        fs->z->next_in = Z_NULL;
        fs->z->avail_in = 0;
        rc = gz_pump(fs, Z_FINISH);
    }
    if (close(fs->fd) != 0 && rc == 0)
        rc = stageprof__translate_errno(errno);
    fs->fd = -1;
    if (rc == 0 && fail_err && fail_after == -2)
        rc = fail_err; /* test hook: the rename fails */
    if (rc == 0 && rename(fs->tmp, fs->path) != 0)
        rc = stageprof__translate_errno(errno);
    return rc;
}

/* zlib's memory comes from the library's allocator too. */
void *stageprof__z_alloc(void *opaque, unsigned items, unsigned size)
{
    (void)opaque;
    return stageprof__calloc(items, size);
}

void stageprof__z_free(void *opaque, void *p)
{
    (void)opaque;
    stageprof__free(p);
}

/* mkdir -p; returns 0 or a STAGEPROF_E* code. */
int stageprof__make_dirs(const char *dir)
{
    char path[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path)
        return STAGEPROF_EINVAL;
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return stageprof__translate_errno(errno);
        path[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) != 0)
        return stageprof__translate_errno(errno);
    if (!S_ISDIR(st.st_mode))
        return STAGEPROF_ENOTDIR;
    return 0;
}

/*
 * workflow_execution_<YYYY_MM_DD_HH_MM_SS>_<pid>[_<n>]<ext>, unused. Within
 * one second the suffix only grows, so a name freed by retention is not
 * given again and names sort in the order the files were written.
 */
static int pick_name(const char *dir, const char *ext, char *path, size_t len)
{
    static char last_stamp[32]; /* under wlock */
    static int last_n;
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y_%m_%d_%H_%M_%S", &tm);
    int n = strcmp(stamp, last_stamp) == 0 ? last_n + 1 : 0;
    for (; n < 100000; n++) {
        int k;
        if (n == 0)
            k = snprintf(path, len, "%s/workflow_execution_%s_%d%s", dir, stamp,
                         (int)getpid(), ext);
        else
            k = snprintf(path, len, "%s/workflow_execution_%s_%d_%d%s", dir,
                         stamp, (int)getpid(), n, ext);
        if (k < 0 || (size_t)k >= len)
            return STAGEPROF_ERANGE;
        struct stat st;
        if (lstat(path, &st) != 0 && errno == ENOENT) {
            memcpy(last_stamp, stamp, sizeof stamp);
            last_n = n;
            return 0;
        }
    }
    return STAGEPROF_EIO;
}

/*
 * The trace into @fd; with @tmp, @fd is closed and @tmp renamed to @path
 * before the events count as written. With @gzip the bytes are compressed.
 * *@bytes gets the file's size; *@ran is set when the writer ran (it
 * counts its own failures).
 */
static int write_fd(int fd, int flags, const char *tmp, const char *path,
                    int gzip, uint64_t *bytes, int *ran)
{
    *bytes = 0;
    *ran = 0;
    struct rlimit rl;
    struct file_sink fs = {fd, 0, UINT64_MAX, tmp, path, NULL, NULL};
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        fs.fsize_limit = (uint64_t)rl.rlim_cur;
    z_stream z;
    if (gzip) {
        memset(&z, 0, sizeof z);
        z.zalloc = stageprof__z_alloc;
        z.zfree = stageprof__z_free;
        fs.zbuf = stageprof__malloc(ZBUF_SIZE);
        /* windowBits 15 + 16: a gzip header and trailer, not zlib's. */
        int zr = fs.zbuf == NULL ? Z_MEM_ERROR
                                 : deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED,
                                                15 + 16, 8, Z_DEFAULT_STRATEGY);
        if (zr != Z_OK) {
            stageprof__free(fs.zbuf);
            if (tmp != NULL)
                close(fd);
            return zr == Z_MEM_ERROR ? STAGEPROF_ENOMEM : STAGEPROF_EIO;
        }
        fs.z = &z;
    }
    struct sink sink = {file_write, tmp ? file_finish : NULL, &fs};
    int rc = stageprof__writer_write(&sink, flags);
    *ran = 1;
    if (fs.fd >= 0 && tmp != NULL)
        close(fs.fd);
    if (gzip) {
        deflateEnd(&z);
        stageprof__free(fs.zbuf);
    }
    *bytes = fs.written;
    return rc;
}

int stageprof__trace_file_write_fd(int fd, int flags)
{
    uint64_t bytes;
    int ran;
    return write_fd(fd, flags, NULL, NULL, 0, &bytes, &ran);
}

/* ------------------------------------------------------------------------ */
/* Retention                                                                */
/* ------------------------------------------------------------------------ */

/* Files this process wrote while a limit was in force, oldest first. */
static struct kept_file {
    char *path; /* owned */
    uint64_t bytes;
} kept[RETAIN_MAX];
static size_t nkept;

static void kept_drop_oldest(void)
{
    stageprof__free(kept[0].path);
    memmove(&kept[0], &kept[1], (nkept - 1) * sizeof kept[0]);
    nkept--;
}

/* Remember @path, then remove the oldest files until both limits hold. */
static void retain(const char *path, uint64_t bytes, long long max_files,
                   long long max_bytes)
{
    if (max_files <= 0 && max_bytes <= 0)
        return;
    if (nkept == RETAIN_MAX)
        kept_drop_oldest(); /* forgotten, not removed */
    char *copy = stageprof__strdup(path);
    if (copy == NULL) {
        stageprof__log(STAGEPROF_LOG_WARN,
                       "no memory to remember %s: retention will not remove "
                       "it",
                       path);
        return;
    }
    kept[nkept].path = copy;
    kept[nkept].bytes = bytes;
    nkept++;
    uint64_t total = 0;
    for (size_t i = 0; i < nkept; i++)
        total += kept[i].bytes;
    /* The newest file (the last) always stays. */
    while (nkept > 1 && ((max_files > 0 && nkept > (uint64_t)max_files) ||
                         (max_bytes > 0 && total > (uint64_t)max_bytes))) {
        const char *old = kept[0].path;
        if (unlink(old) == 0 || errno == ENOENT)
            stageprof__log(STAGEPROF_LOG_INFO,
                           "removed old trace %s (%llu bytes): %d trace "
                           "files, %llu bytes kept",
                           old, (unsigned long long)kept[0].bytes,
                           (int)nkept - 1,
                           (unsigned long long)(total - kept[0].bytes));
        else
            stageprof__log(
                STAGEPROF_LOG_ERROR,
                "cannot remove old trace %s: %s (no longer "
                "tracked)",
                old, stageprof_strerror(stageprof__translate_errno(errno)));
        total -= kept[0].bytes;
        kept_drop_oldest();
    }
}

/* ------------------------------------------------------------------------ */
/* One trace file                                                           */
/* ------------------------------------------------------------------------ */

int stageprof__trace_file_write(int flags)
{
    pthread_mutex_lock(&stageprof__g.wlock);
    char dir[3072], path[sizeof stageprof__g.last_path], tmp[4200];
    pthread_mutex_lock(&stageprof__g.lock);
    int tracing = stageprof__g.started && stageprof__g.conf.enable;
    snprintf(dir, sizeof dir, "%s",
             stageprof__g.conf.dir ? stageprof__g.conf.dir
                                   : STAGEPROF_DEFAULT_DIR);
    int gzip = stageprof__g.conf.gzip == 1;
    long long max_files = stageprof__g.conf.max_files;
    long long max_bytes = stageprof__g.conf.max_dir_bytes;
    uint64_t events_before = stageprof__g.events_written;
    pthread_mutex_unlock(&stageprof__g.lock);
    if ((flags & WRITE_KEEP) && !tracing) {
        /* Not an error of the write: there is no session to snapshot. */
        pthread_mutex_unlock(&stageprof__g.wlock);
        return STAGEPROF_ENOTSTARTED;
    }

    int rc = stageprof__make_dirs(dir);
    if (rc == 0)
        rc = pick_name(dir, gzip ? ".json.gz" : ".json", path, sizeof path);
    int fd = -1;
    if (rc == 0) {
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
            rc = stageprof__translate_errno(errno);
    }
    int counted = 0; /* the writer counts its own failures */
    uint64_t bytes = 0;
    if (rc == 0) {
        rc = write_fd(fd, flags, tmp, path, gzip, &bytes, &counted);
        if (rc != 0)
            unlink(tmp);
    }
    if (rc != 0 && !counted) {
        pthread_mutex_lock(&stageprof__g.lock);
        stageprof__g.write_errors++;
        pthread_mutex_unlock(&stageprof__g.lock);
    }
    if (rc == 0) {
        pthread_mutex_lock(&stageprof__g.lock);
        memcpy(stageprof__g.last_path, path, strlen(path) + 1);
        uint64_t events = stageprof__g.events_written - events_before;
        pthread_mutex_unlock(&stageprof__g.lock);
        if (!(flags & WRITE_KEEP))
            stageprof__overhead_note(events);
        stageprof__log(STAGEPROF_LOG_INFO, "trace written to %s", path);
        retain(path, bytes, max_files, max_bytes);
    } else {
        stageprof__log(STAGEPROF_LOG_ERROR,
                       "cannot write a trace into %s: %s (events kept for a "
                       "later %s)",
                       dir, stageprof_strerror(rc),
                       (flags & WRITE_KEEP) ? "snapshot or stageprof_flush"
                                            : "stageprof_flush");
    }
    pthread_mutex_unlock(&stageprof__g.wlock);
    return rc;
}
