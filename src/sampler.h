/*
 * sampler.h - the resource sampler: a background thread that reads the
 * process's and the system's figures from /proc and getrusage() a number
 * of times a second (STAGEPROF_SAMPLE_HZ), records them as counter tracks
 * in the trace when tracing, and keeps the latest values for /metrics.
 *
 * The parsers below are pure (a buffer in, numbers out, no I/O) so they can
 * be tested on fixture strings. They share one rule: a number counts only
 * when a delimiter follows it inside the buffer, so a read cut short in the
 * middle of a number never yields a smaller number, and a number too large
 * for 64 bits is refused rather than wrapped.
 */
#ifndef STAGEPROF_SAMPLER_H
#define STAGEPROF_SAMPLER_H

#include "internal.h"

struct strbuf;

/* ------------------------------------------------------------------------ */
/* Parsers                                                                  */
/* ------------------------------------------------------------------------ */

#define SAMPLER_COMM_MAX 64

/* The fields of /proc/<pid>/stat (or task/<tid>/stat) the sampler uses. */
struct sampler_stat {
    char comm[SAMPLER_COMM_MAX]; /* between the first '(' and the last ')' */
    uint64_t minflt, majflt;     /* page faults */
    uint64_t utime, stime;       /* CPU time, clock ticks */
    uint64_t num_threads;
    uint64_t starttime; /* clock ticks after boot */
    uint64_t vsize;     /* bytes */
    uint64_t rss;       /* pages */
};

/*
 * stageprof__sampler_parse_stat - parse one stat line.
 * @s, @len: the file's bytes (need not be NUL-terminated).
 * @out: filled on success; comm is cut to SAMPLER_COMM_MAX - 1 bytes.
 *
 * The command name may hold spaces and parentheses: it ends at the last
 * ')' of the line. Returns 0, or STAGEPROF_EINVAL when a field up to rss
 * (the 24th) is missing or malformed.
 */
int stageprof__sampler_parse_stat(const char *s, size_t len,
                                  struct sampler_stat *out);

enum {
    SAMPLER_STATUS_VMRSS = 1,
    SAMPLER_STATUS_VOLUNTARY = 2,
    SAMPLER_STATUS_INVOLUNTARY = 4,
    SAMPLER_STATUS_THREADS = 8
};

/* The first two fields of /proc/<pid>/statm, in pages. */
struct sampler_statm {
    uint64_t size;     /* virtual memory size */
    uint64_t resident; /* resident set size, as the rss field of stat */
};

/*
 * stageprof__sampler_parse_statm - parse /proc/<pid>/statm. Only size and
 * resident are kept; the fields after them need not be there. Returns 0,
 * or STAGEPROF_EINVAL when either is missing or malformed.
 */
int stageprof__sampler_parse_statm(const char *s, size_t len,
                                   struct sampler_statm *out);

/*
 * The fields of /proc/<pid>/status the sampler once used. Its context
 * switch counts are the main thread's only; the sampler takes the whole
 * process's from getrusage() now.
 */
struct sampler_status {
    uint64_t vm_rss_bytes; /* VmRSS, kB converted to bytes */
    uint64_t voluntary;    /* voluntary_ctxt_switches */
    uint64_t involuntary;  /* nonvoluntary_ctxt_switches */
    uint64_t threads;      /* Threads */
};

/*
 * stageprof__sampler_parse_status - parse /proc/<pid>/status.
 * Returns the SAMPLER_STATUS_* bits of the fields found well-formed (0:
 * none); the others are left 0 in @out.
 */
unsigned stageprof__sampler_parse_status(const char *s, size_t len,
                                         struct sampler_status *out);

enum {
    SAMPLER_IO_RCHAR = 1,
    SAMPLER_IO_WCHAR = 2,
    SAMPLER_IO_READ_BYTES = 4,
    SAMPLER_IO_WRITE_BYTES = 8
};

/* /proc/<pid>/io. */
struct sampler_io {
    uint64_t rchar, wchar;            /* bytes through read/write calls */
    uint64_t read_bytes, write_bytes; /* bytes to and from storage */
};

/* stageprof__sampler_parse_io - parse /proc/<pid>/io; SAMPLER_IO_* bits. */
unsigned stageprof__sampler_parse_io(const char *s, size_t len,
                                     struct sampler_io *out);

/* The first line of /proc/stat, in USER_HZ ticks. */
struct sampler_cpu {
    uint64_t user, nice, system, idle, iowait, irq, softirq, steal;
};

/*
 * stageprof__sampler_parse_cpu - parse the aggregate "cpu" line that opens
 * /proc/stat. At least user, nice, system and idle must be there; fields
 * an old kernel lacks stay 0. Returns 0 or STAGEPROF_EINVAL.
 */
int stageprof__sampler_parse_cpu(const char *s, size_t len,
                                 struct sampler_cpu *out);

/*
 * stageprof__sampler_parse_btime - the "btime" line of /proc/stat (boot
 * time, seconds since the epoch) into @out. Returns 0 or STAGEPROF_EINVAL.
 */
int stageprof__sampler_parse_btime(const char *s, size_t len, uint64_t *out);

enum { SAMPLER_PSI_SOME = 1, SAMPLER_PSI_FULL = 2 };

/* One /proc/pressure/<resource> file. */
struct sampler_psi {
    double some_avg10, full_avg10;   /* percent of the last 10 s */
    uint64_t some_total, full_total; /* stalled time, microseconds */
};

/*
 * stageprof__sampler_parse_pressure - parse a PSI file. A line counts when
 * it has both avg10 and total. Returns SAMPLER_PSI_* bits (0: nothing).
 */
unsigned stageprof__sampler_parse_pressure(const char *s, size_t len,
                                           struct sampler_psi *out);

/*
 * stageprof__sampler_clean_name - a thread name made fit for a label:
 * bytes that are not valid UTF-8 and control characters become '?'.
 * @out holds @cap bytes (>= 1) and is always NUL-terminated. Pure.
 */
void stageprof__sampler_clean_name(const char *in, char *out, size_t cap);

/* ------------------------------------------------------------------------ */
/* The thread                                                               */
/* ------------------------------------------------------------------------ */

/* Distinct thread names kept for thread CPU; later names go to "other". */
#define SAMPLER_MAX_NAMES 64
/* Live threads tracked for thread CPU at one time. */
#define SAMPLER_MAX_TIDS 1024
/*
 * The thread walks /proc/self/task and reads the slow figures (thread
 * count, pressure, the I/O totals of /proc/self/io) at most this often (ns).
 */
#define SAMPLER_WALK_NS 1000000000ull
/* Highest rate accepted; a larger sample_hz is capped. */
#define SAMPLER_MAX_HZ 1000

/*
 * stageprof__sampler_start - start the sampler thread.
 * @c: configuration; only c->sample_hz is read (0 or less: no thread).
 *
 * The thread takes one sample at once and then one every 1/hz seconds
 * (thread CPU by name, thread count, pressure and I/O totals at most once
 * a second, their latest values kept between), keeps the latest figures
 * for stageprof__sampler_render(), and records them as counters into the
 * trace while stageprof_is_tracing(). It never prints and skips a figure
 * whose file cannot be read.
 *
 * Thread-safe against stop and render. Returns 0 (also with nothing to
 * start), STAGEPROF_EALREADY when the thread already runs, or
 * STAGEPROF_ETHREAD when it cannot be created (logged as a warning).
 */
int stageprof__sampler_start(const struct conf *c);

/*
 * stageprof__sampler_stop - wake the thread, join it, close the files the
 * sampler keeps open. No-op when not running; safe from atexit and in a
 * forked child (which has no thread to join). A later start works.
 *
 * Call without stageprof__g.lock held: the thread may be recording a
 * counter, which can need that lock.
 */
void stageprof__sampler_stop(void);

/*
 * Append the process_* metrics (read now, so they are right even with the
 * sampler off) and the sampler's latest gauges to @sb, in Prometheus text
 * format 0.0.4 with HELP and TYPE lines. Thread-safe.
 */
void stageprof__sampler_render(struct strbuf *sb);

/*
 * stageprof__sampler_sample_now - take one sample on the calling thread,
 * as the thread does (also recording counters when tracing), for tests
 * and the benchmark. With @threads, or when they were never read, the
 * once-a-second figures are read too (thread CPU by name, thread count,
 * pressure, I/O totals); otherwise their latest values are kept. The files it
 * opens stay open until the next stageprof__sampler_stop(). Returns 0, or
 * STAGEPROF_EBUSY while the thread runs.
 */
int stageprof__sampler_sample_now(int threads);

/* Samples taken since the process started (thread and sample_now). */
uint64_t stageprof__sampler_samples(void);

#endif /* STAGEPROF_SAMPLER_H */
