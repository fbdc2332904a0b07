/*
 * trace_file.c - trace files: the directory, names that never collide,
 * atomic appearance, and failures that keep the events.
 *
 * A trace is written as <dir>/.../workflow_execution_<stamp>_<pid>[_<n>].json
 * under a temporary name (".tmp" appended), then closed and renamed; only
 * then do its events count as written (the sink's finish step), so a full
 * disk, a closed file descriptor limit or RLIMIT_FSIZE leave everything in
 * memory for the next attempt. Writing past RLIMIT_FSIZE is refused before
 * the kernel would raise SIGXFSZ in the host program.
 *
 * One file at a time (stageprof__g.wlock).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static int fail_err;
static long long fail_after = -1;

void stageprof__trace_file_set_fail(int err, long long after)
{
    fail_err = err;
    fail_after = err ? after : -1;
}

struct file_sink {
    int fd;
    uint64_t written;
    uint64_t fsize_limit; /* RLIMIT_FSIZE, or UINT64_MAX */
    const char *tmp;      /* rename tmp to path when finishing; NULL: no */
    const char *path;
};

static int file_write(void *ud, const void *data, size_t len)
{
    struct file_sink *fs = ud;
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

/* Close the file and give it its final name; the fd is closed either way. */
static int file_finish(void *ud)
{
    struct file_sink *fs = ud;
    int rc = close(fs->fd) == 0 ? 0 : stageprof__translate_errno(errno);
    fs->fd = -1;
    if (rc == 0 && fail_err && fail_after == -2)
        rc = fail_err; /* test hook: the rename fails */
    if (rc == 0 && rename(fs->tmp, fs->path) != 0)
        rc = stageprof__translate_errno(errno);
    return rc;
}

/* mkdir -p; returns 0 or a STAGEPROF_E* code. */
static int make_dirs(const char *dir)
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

/* workflow_execution_<YYYY_MM_DD_HH_MM_SS>_<pid>[_<n>].json, unused. */
static int pick_name(const char *dir, char *path, size_t len)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y_%m_%d_%H_%M_%S", &tm);
    for (int n = 0; n < 100000; n++) {
        int k;
        if (n == 0)
            k = snprintf(path, len, "%s/workflow_execution_%s_%d.json", dir,
                         stamp, (int)getpid());
        else
            k = snprintf(path, len, "%s/workflow_execution_%s_%d_%d.json", dir,
                         stamp, (int)getpid(), n);
        if (k < 0 || (size_t)k >= len)
            return STAGEPROF_ERANGE;
        struct stat st;
        if (lstat(path, &st) != 0 && errno == ENOENT)
            return 0;
    }
    return STAGEPROF_EIO;
}

/* The trace into @fd; with @tmp, @fd is closed and @tmp renamed to @path
 * before the events count as written. */
static int write_fd(int fd, int flags, const char *tmp, const char *path)
{
    struct rlimit rl;
    struct file_sink fs = {fd, 0, UINT64_MAX, tmp, path};
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        fs.fsize_limit = (uint64_t)rl.rlim_cur;
    struct sink sink = {file_write, tmp ? file_finish : NULL, &fs};
    int rc = stageprof__writer_write(&sink, flags);
    if (fs.fd >= 0 && tmp != NULL)
        close(fs.fd);
    return rc;
}

int stageprof__trace_file_write_fd(int fd, int flags)
{
    return write_fd(fd, flags, NULL, NULL);
}

int stageprof__trace_file_write(int flags)
{
    pthread_mutex_lock(&stageprof__g.wlock);
    char dir[3072], path[sizeof stageprof__g.last_path], tmp[4200];
    pthread_mutex_lock(&stageprof__g.lock);
    snprintf(dir, sizeof dir, "%s",
             stageprof__g.conf.dir ? stageprof__g.conf.dir
                                   : STAGEPROF_DEFAULT_DIR);
    pthread_mutex_unlock(&stageprof__g.lock);

    int rc = make_dirs(dir);
    if (rc == 0)
        rc = pick_name(dir, path, sizeof path);
    int fd = -1;
    if (rc == 0) {
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
            rc = stageprof__translate_errno(errno);
    }
    int counted = 0; /* the writer counts its own failures */
    if (rc == 0) {
        rc = write_fd(fd, flags, tmp, path);
        counted = rc != 0;
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
        pthread_mutex_unlock(&stageprof__g.lock);
        stageprof__log(STAGEPROF_LOG_INFO, "trace written to %s", path);
    } else {
        stageprof__log(STAGEPROF_LOG_ERROR,
                       "cannot write a trace into %s: %s (events kept for a "
                       "later stageprof_flush)",
                       dir, stageprof_strerror(rc));
    }
    pthread_mutex_unlock(&stageprof__g.wlock);
    return rc;
}
