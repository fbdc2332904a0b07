/*
 * trace_load.h - read Chrome Trace Event Format files as a stream of
 * events, whoever wrote them.
 *
 * A file is read once, front to back, through a fixed-size buffer: plain
 * or gzip (told apart by content), object form {"traceEvents":[...], ...}
 * or bare array [...], the closing bracket of a bare array optional. Each
 * event is handed to a callback with its fields decoded: strings
 * unescaped (with their length: a \u0000 inside a name is part of it),
 * times as exact integer nanoseconds. Values the reader does not need are
 * skipped without recursion, so depth costs nothing. Memory stays within
 * the buffer and the largest single event.
 *
 * Errors name the file, the byte offset, the line and column where the
 * file has lines, and what was expected. A file that ends in the middle
 * of its events is not an error: the events before the cut are delivered
 * and the result says it was truncated.
 */
#ifndef STAGEPROF_TRACE_LOAD_H
#define STAGEPROF_TRACE_LOAD_H

#include <stddef.h>
#include <stdint.h>

#define TL_MAX_STRING (1u << 20) /* longest name, category, id kept */
#define TL_MAX_ARGS 16           /* numeric args kept per event */
/* Times accepted, in ns: ts from -2^60 (36 years before 1970, or before
 * any trace's start) to 2^62 (the year 2116), durations up to 2^61 (73
 * years). A sum or difference of two never overflows 64 bits. */
#define TL_MIN_NS (-((int64_t)1 << 60))
#define TL_MAX_NS ((int64_t)1 << 62)
#define TL_MAX_DUR_NS ((int64_t)1 << 61)

/* A decoded string; p is NUL-terminated, len excludes the NUL. */
struct tl_str {
    const char *p;
    size_t len;
};

struct tl_arg {
    struct tl_str key;
    double value;
};

/* One event; everything borrowed until the callback returns. */
struct tl_event {
    char ph;            /* phase letter; '?' when longer than one byte */
    struct tl_str name; /* "" when absent */
    struct tl_str cat;
    struct tl_str pid, tid; /* numbers in decimal, strings as they are */
    struct tl_str id;       /* "id", or "local:X" / "global:X" from id2 */
    int has_ts, has_dur;    /* present and numeric */
    int64_t ts_ns, dur_ns;
    struct tl_str arg_name;          /* args.name when a string, p NULL
                                        otherwise (thread_name events) */
    int has_run;                     /* args.run, a whole number > 0 */
    uint64_t run;                    /* (stageprof's run id) */
    int nargs;                       /* numeric members of "args" */
    struct tl_arg args[TL_MAX_ARGS]; /* the first TL_MAX_ARGS of them */
    uint64_t offset;                 /* byte offset of the event's '{' */
};

/* Called once per event; return 0 to go on, nonzero to stop reading. */
typedef int (*tl_event_cb)(void *arg, const struct tl_event *ev);

/*
 * stageprof's header (the top-level "stageprof" member), for telling the
 * environments of two traces apart. Text fields are "" when absent and
 * cut to their size.
 */
struct tl_meta {
    int present;
    char version[64], host[256], cpu_model[256], kernel[256], arch[64];
    char clock[32];          /* clock.source: "tsc", "monotonic" */
    long long cores;         /* -1 unknown */
    char command_line[1024]; /* argv joined by spaces */
    char config[2048];       /* the scalar members of config but dir,
                                "k=v, ..." */
};

/* What a whole file said about itself. */
struct tl_result {
    uint64_t events;      /* events delivered */
    int truncated;        /* the file ended inside its events */
    int unclosed;         /* a bare array without its closing bracket */
    int ts_rounded;       /* a time had digits below 1 ns (rounded) */
    const char *producer; /* "stageprof", "pytorch", "chrome" (unknown) */
    /* From stageprof's trailer, when there is one. */
    int has_summary;
    int64_t dropped; /* events_dropped_total; -1 unknown */
    int complete;    /* 1, 0, or -1 unknown */
    struct tl_meta meta;
    char display_unit[8]; /* displayTimeUnit ("ms", "ns"); "" absent. It
                             changes how viewers show times, not ts. */
};

/*
 * tl_read - read the trace @path ("-" for standard input), calling @cb
 * for each event. Returns 0 (the file was read, maybe truncated: see
 * @res), or -1 with "<path>: <what>" in @err.
 */
/* tl_read_opts flags. */
enum {
    TL_ALL_ARGS = 1 /* every event's numeric args (the first TL_MAX_ARGS),
                       values converted; default: counters' only, and
                       args.run of the others */
};
int tl_read_opts(const char *path, tl_event_cb cb, void *arg, unsigned flags,
                 struct tl_result *res, char *err, size_t errlen);
int tl_read(const char *path, tl_event_cb cb, void *arg, struct tl_result *res,
            char *err, size_t errlen);

#endif
