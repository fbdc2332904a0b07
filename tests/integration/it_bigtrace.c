/*
 * it_bigtrace.c - a trace of several MiB with long names and arguments.
 *
 *   it_bigtrace DIR
 *
 * The writer builds its output in pieces of about 1 MiB and renews its
 * room between the arguments of one event. This program makes events that
 * cross those boundaries at many different points, so check_bigtrace.py
 * can find any event damaged by a flush in its middle:
 *
 *   named    NAMED spans with 1000-byte run-time names, unique per span
 *            (they start with the span's number), one int argument, no run
 *   in_run   RUN_SPANS spans of run 7 with an int argument
 *   fat      FAT spans with 8 string arguments of 1000 bytes (one event is
 *            larger than the writer's largest single piece)
 *   trunc    TRUNC spans with a 1500-byte string argument (1024 kept) and
 *            one span whose 1500-byte name is cut to 1024: strings_truncated
 *   tick     TICKS instants with an int and a string argument
 */
#include "it_common.h"

#define NAMED 3000
#define RUN_SPANS 300
#define FAT 20
#define TRUNC 10
#define TICKS 500

/*
 * @len (>= 8) bytes that identify @seed: "%06d-" then letters, which
 * check_bigtrace.py rebuilds. NUL-terminated.
 */
static void pattern(char *buf, size_t len, int seed)
{
    snprintf(buf, 8, "%06d-", seed);
    for (size_t i = 7; i < len; i++)
        buf[i] = (char)('a' + (i * 7 + (size_t)seed) % 26);
    buf[len] = '\0';
}

int main(int argc, char **argv)
{
    if (argc != 2)
        it_fail("usage: it_bigtrace DIR");
    it_start(argv[1]);
    stageprof_thread_set_name("big-main");
    static char name[1501], value[1501];

    for (int i = 0; i < NAMED; i++) {
        pattern(name, 1000, i);
        STAGEPROF_SCOPE_DYN(span, name, "compute");
        STAGEPROF_ARG_INT(span, "i", i);
    }

    STAGEPROF_RUN_BEGIN("big_run", 7);
    for (int i = 0; i < RUN_SPANS; i++) {
        STAGEPROF_SCOPE(span, "in_run", "serve");
        STAGEPROF_ARG_INT(span, "i", i);
    }
    STAGEPROF_RUN_END("big_run", 7);

    static const char *const keys[8] = {"k0", "k1", "k2", "k3",
                                        "k4", "k5", "k6", "k7"};
    for (int i = 0; i < FAT; i++) {
        STAGEPROF_SCOPE(span, "fat", "data");
        for (int k = 0; k < 8; k++) {
            pattern(value, 1000, i * 8 + k);
            stageprof_span_arg_str(&span, keys[k], value);
        }
    }

    for (int i = 0; i < TRUNC; i++) {
        STAGEPROF_SCOPE(span, "trunc", "io");
        pattern(value, 1500, i);
        STAGEPROF_ARG_STR(span, "long", value);
    }
    pattern(name, 1500, 99);
    {
        STAGEPROF_SCOPE_DYN(span, name, "io");
    }

    static stageprof_site_t tick = STAGEPROF_SITE_INIT("tick", "postprocess");
    for (int i = 0; i < TICKS; i++) {
        stageprof_span_t inst = stageprof_instant(&tick);
        STAGEPROF_ARG_INT(inst, "i", i);
        STAGEPROF_ARG_STR(inst, "s", "x\"y");
    }

    IT_CHECK_RC(stageprof_stop(), 0);
    printf("{\"named\":%d,\"run_spans\":%d,\"fat\":%d,\"trunc\":%d,"
           "\"ticks\":%d,",
           NAMED, RUN_SPANS, FAT, TRUNC, TICKS);
    it_print_last_path("last_path");
    printf("}\n");
    return 0;
}
