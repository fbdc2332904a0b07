/*
 * api.c - every public macro and function of <stageprof.h>, used the way an
 * application would.
 *
 * compile.sh builds this file as C11 and as C++11/C++17, with and without
 * STAGEPROF_DISABLE, under -Wall -Wextra -Werror -Wpedantic. It must also
 * compile cleanly when the instrumentation is compiled out: variables that
 * only feed a macro must not become "unused". The linked builds run it,
 * once with tracing off and once on.
 */
#include <stageprof.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int busy(int n)
{
    volatile int acc = 0;
    for (int i = 0; i < n; i++)
        acc = acc + i;
    return acc;
}

static void on_log(int level, const char *message, void *user_data)
{
    (void)user_data;
    fprintf(stderr, "stageprof[%d]: %s\n", level, message);
}

static void stage(uint64_t frame, const char *model)
{
    STAGEPROF_SCOPE(span, "stage", "compute");
    STAGEPROF_ARG_INT(span, "frame", frame);
    STAGEPROF_ARG_DOUBLE(span, "score", 0.5);
    STAGEPROF_ARG_STR(span, "model", model);
    {
        STAGEPROF_SCOPE_DYN(inner, model, "compute");
        busy(1000);
    }
    STAGEPROF_FLOW_STEP("handoff", frame);
}

static void pipeline(uint64_t frame)
{
    uint64_t start_ns;
    uint64_t queue_depth = frame % 4;
    double load = 0.25;

    STAGEPROF_RUN_BEGIN("frame", frame);

    STAGEPROF_SPAN_BEGIN(load_span, "load", "data");
    busy(100);
    STAGEPROF_SPAN_END(load_span);

    STAGEPROF_FLOW_BEGIN("handoff", frame);
    stage(frame, "detector");
    STAGEPROF_FLOW_END("handoff", frame);

    start_ns = stageprof_now_ns();
    busy(100);
    STAGEPROF_SPAN_COMPLETE("post", "postprocess", start_ns,
                            stageprof_now_ns() - start_ns);

    STAGEPROF_INSTANT("frame_done", "serve");
    STAGEPROF_COUNTER_INT("queue_depth", queue_depth);
    STAGEPROF_COUNTER_DOUBLE("load", load);

    STAGEPROF_RUN_SET(0);
    STAGEPROF_RUN_SET(frame);
    STAGEPROF_RUN_END("frame", frame);
}

/* The functions behind the macros, called directly. */
static int direct_calls(void)
{
    static stageprof_site_t site = STAGEPROF_SITE_INIT("direct", "engine");
    static stageprof_site_t counter = STAGEPROF_SITE_INIT("direct_count", NULL);
    stageprof_span_t span = stageprof_span_begin(&site);
    stageprof_span_t named = stageprof_span_begin_name(&site, "direct_named");
    stageprof_span_t instant;

    stageprof_span_arg_int(&named, "n", 1);
    stageprof_span_end(&named);
    stageprof_span_arg_str(&span, "k", "v");
    stageprof_span_arg_double(&span, "d", 1.5);
    stageprof_span_end(&span);
    instant = stageprof_instant(&site);
    stageprof_span_arg_int(&instant, "i", 2);
    stageprof_span_complete(&site, stageprof_now_ns(), 10);
    stageprof_counter_set_int(&counter, 3);
    stageprof_counter_set_double(&counter, 3.5);
    stageprof_flow_begin(&site, 7);
    stageprof_flow_step(&site, 7);
    stageprof_flow_end(&site, 7);
    stageprof_run_begin(&site, 9);
    if (stageprof_run_get_current() != 9 && stageprof_is_tracing())
        return 1;
    stageprof_run_set_current(0);
    stageprof_run_set_current(9);
    stageprof_run_end(&site, 9);
    return 0;
}

int main(void)
{
    stageprof_config_t cfg;
    stageprof_stats_t stats;
    char path[4096];
    int err;
    int failures = 0;

    if (stageprof_version() != (unsigned)STAGEPROF_VERSION_HEX ||
        strcmp(stageprof_version_string(), STAGEPROF_VERSION_STRING) != 0) {
        fprintf(stderr, "header %s, library %s\n", STAGEPROF_VERSION_STRING,
                stageprof_version_string());
        failures++;
    }
    if (strcmp(stageprof_err_name(STAGEPROF_EINVAL), "EINVAL") != 0 ||
        stageprof_strerror(STAGEPROF_ENOMEM) == NULL) {
        fprintf(stderr, "error names\n");
        failures++;
    }

    stageprof_config_init(&cfg);
    cfg.log_cb = on_log;
    cfg.process_name = "api";
    err = stageprof_start(&cfg);
    if (err != 0) {
        fprintf(stderr, "stageprof_start: %s\n", stageprof_strerror(err));
        failures++;
    }
    stageprof_process_set_name("api");
    stageprof_thread_set_name("main");
    stageprof_thread_set_sort_index(0);

    for (uint64_t frame = 1; frame <= 3; frame++)
        pipeline(frame);
    failures += direct_calls();
    (void)stageprof_is_active();
    (void)stageprof_span_none();

    memset(&stats, 0, sizeof stats);
    stats.size = sizeof stats;
    if (stageprof_get_stats(&stats) != 0) {
        fprintf(stderr, "stageprof_get_stats failed\n");
        failures++;
    }
    err = stageprof_snapshot();
    if (err != 0 && err != STAGEPROF_ENOTSTARTED) {
        fprintf(stderr, "stageprof_snapshot: %s\n", stageprof_strerror(err));
        failures++;
    }
    err = stageprof_flush();
    if (err != 0 && err != STAGEPROF_ENOTSTARTED) {
        fprintf(stderr, "stageprof_flush: %s\n", stageprof_strerror(err));
        failures++;
    }
    err = stageprof_stop();
    if (err != 0 && err != STAGEPROF_ENOTSTARTED) {
        fprintf(stderr, "stageprof_stop: %s\n", stageprof_strerror(err));
        failures++;
    }
    if (stageprof_get_last_path(path, sizeof path) == 0)
        printf("trace: %s\n", path);
    stageprof_free(NULL);

    printf("events dropped: %llu\n", (unsigned long long)stats.events_dropped);
    return failures == 0 ? 0 : 1;
}
