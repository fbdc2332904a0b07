/*
 * test_chrome_writer.c - the trace file: format of runs, flows and counters,
 * metadata, file naming, and failures that root also meets (a failing sink,
 * /dev/full, RLIMIT_FSIZE, a directory under a regular file): the error is
 * returned, the process lives, and a later write has every event.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"

static char *tmpdir(void)
{
    return temp_dir("stageprof-cw");
}

STAGEPROF_TEST(runs_flows_counters_format)
{
    stageprof_process_set_name("unit");
    stageprof_thread_set_name("main");
    start_fake(NULL, 0);
    STAGEPROF_RUN_BEGIN("frame", 255);      /* 1 */
    STAGEPROF_FLOW_BEGIN("queue", 255);     /* 2 */
    STAGEPROF_COUNTER_INT("depth", -2);     /* 3 */
    STAGEPROF_COUNTER_DOUBLE("load", 0.25); /* 4 */
    STAGEPROF_FLOW_STEP("queue", 255);      /* 5 */
    STAGEPROF_FLOW_END("queue", 255);       /* 6 */
    STAGEPROF_RUN_END("frame", 255);        /* 7 */
    STAGEPROF_INSTANT("idle", "engine");    /* 8: outside any run */
    char *trace = write_to_string(NULL);
    char *ev = events_of(trace);
    const char *want =
        "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":1,\"tid\":0,"
        "\"args\":{\"name\":\"unit\"}},\n"
        "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":1,"
        "\"args\":{\"name\":\"main\"}},\n"
        "{\"ph\":\"b\",\"name\":\"frame\",\"cat\":\"run\",\"id\":\"0xff\","
        "\"ts\":1.000,\"pid\":1,\"tid\":1,\"args\":{\"run\":255}},\n"
        "{\"ph\":\"s\",\"name\":\"queue\",\"cat\":\"flow\",\"id\":\"0xff\","
        "\"ts\":2.000,\"pid\":1,\"tid\":1,\"args\":{\"run\":255}},\n"
        "{\"ph\":\"C\",\"name\":\"depth\",\"cat\":\"counter\",\"ts\":3.000,"
        "\"pid\":1,\"tid\":1,\"args\":{\"value\":-2}},\n"
        "{\"ph\":\"C\",\"name\":\"load\",\"cat\":\"counter\",\"ts\":4.000,"
        "\"pid\":1,\"tid\":1,\"args\":{\"value\":0.25}},\n"
        "{\"ph\":\"t\",\"name\":\"queue\",\"cat\":\"flow\",\"id\":\"0xff\","
        "\"ts\":5.000,\"pid\":1,\"tid\":1,\"args\":{\"run\":255}},\n"
        "{\"ph\":\"f\",\"bp\":\"e\",\"name\":\"queue\",\"cat\":\"flow\","
        "\"id\":\"0xff\",\"ts\":6.000,\"pid\":1,\"tid\":1,"
        "\"args\":{\"run\":255}},\n"
        "{\"ph\":\"e\",\"name\":\"frame\",\"cat\":\"run\",\"id\":\"0xff\","
        "\"ts\":7.000,\"pid\":1,\"tid\":1,\"args\":{\"run\":255}},\n"
        "{\"ph\":\"i\",\"s\":\"t\",\"name\":\"idle\",\"cat\":\"engine\","
        "\"ts\":8.000,\"pid\":1,\"tid\":1}";
    ASSERT_STREQ(ev, want);
    ASSERT_CONTAINS(trace, "\"events_written\":10,");
    free(ev);
    free(trace);
}

STAGEPROF_TEST(run_end_without_begin_counted_across_files)
{
    start_fake(NULL, 0);
    STAGEPROF_RUN_BEGIN("frame", 1);
    char *t1 = write_to_string(NULL);
    ASSERT_CONTAINS(t1, "\"open_runs\":1");
    free(t1);
    STAGEPROF_RUN_END("frame", 1); /* begun in the previous file: fine */
    STAGEPROF_RUN_END("frame", 2); /* never begun */
    char *t2 = write_to_string(NULL);
    ASSERT_CONTAINS(t2, "\"run_end_without_begin\":1}");
    ASSERT_CONTAINS(t2, "\"open_runs\":0");
    free(t2);
}

STAGEPROF_TEST(metadata_fields)
{
    stageprof__clock_set_fake(NULL);
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 1;
    c.categories = "compute,-io";
    ASSERT_EQ(stageprof_start(&c), 0);
    record_some(3);
    char *trace = write_to_string(NULL);
    const char *keys[] = {"{\"stageprof\":{\"format\":1,\"version\":\"",
                          "\"host\":",
                          "\"cpu_model\":",
                          "\"cores\":",
                          "\"kernel\":",
                          "\"command_line\":[",
                          "\"clock\":{"
                          "\"source\":\"",
                          "\"config\":{\"enable\":1,",
                          "\"categories\":\"compute,-io\"",
                          "\"sources\":{\"enable\":\"api\"",
                          "\"buffer_runs\":64,\"sample_runs\":1,\"gzip\":0,"
                          "\"max_files\":0,\"max_dir_bytes\":0,"
                          "\"snapshot_signal\":0,\"crash_dump\":0,"
                          "\"follow_fork\":1,\"sample_hz\":0,"
                          "\"max_stages\":256,\"keep_slower_than_ms\":0,"
                          "\"keep_slowest\":0,\"keep_window_s\":60,"
                          "\"keep_bytes\":0,\"http\":null},"
                          "\"warnings\":[",
                          "\"time_base\":{\"unix_ns\":",
                          "\"monotonic_ns\":",
                          "\"stageprof_summary\":{"
                          "\"complete\":true,\"events_written\":5,",
                          "\"events_dropped\":0"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        ASSERT_CONTAINS(trace, keys[i]);
    free(trace);
}

STAGEPROF_TEST(failing_sink_keeps_data_for_retry)
{
    start_fake(NULL, 0);
    record_some(50);
    for (long long after = 0; after < 3000; after += 700) {
        struct mem_sink m;
        mem_init(&m);
        m.fail_after = after;
        m.fail_err = STAGEPROF_ENOSPC;
        struct sink s = {mem_write, NULL, &m};
        ASSERT_EQ(stageprof__writer_write(&s, 0), STAGEPROF_ENOSPC);
        stageprof__sb_fini(&m.sb);
    }
    stageprof_stats_t st = stats();
    ASSERT_EQ(st.write_errors, 5);
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"name\":\"stage\""), 50);
    free(trace);
    trace = write_to_string(NULL); /* consumed: nothing twice */
    ASSERT_EQ(count_of(trace, "\"name\":\"stage\""), 0);
    free(trace);
}

STAGEPROF_TEST(dev_full_reports_enospc)
{
    start_fake(NULL, 0);
    record_some(10);
    int fd = open("/dev/full", O_WRONLY);
    if (fd < 0)
        STAGEPROF_SKIP("no /dev/full");
    ASSERT_EQ(stageprof__trace_file_write_fd(fd, 0), STAGEPROF_ENOSPC);
    close(fd);
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"name\":\"stage\""), 10);
    free(trace);
}

STAGEPROF_TEST(rlimit_fsize_returns_efbig_without_signal)
{
    char *dir = tmpdir();
    start_fake(dir, 0);
    record_some(200);
    struct rlimit old, low;
    ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
    low = old;
    low.rlim_cur = 2000;
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &low), 0);
    /* SIGXFSZ would end this process if a write went past the limit. */
    ASSERT_EQ(stageprof_stop(), STAGEPROF_EFBIG);
    ASSERT_EQ(files_in(dir, ".json"), 0);
    ASSERT_EQ(files_in(dir, ".tmp"), 0);
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
    ASSERT_EQ(stageprof_flush(), 0);
    ASSERT_EQ(files_in(dir, ".json"), 1);
    char path[4096];
    char *text = last_trace(path, sizeof path);
    ASSERT_EQ(count_of(text, "\"name\":\"stage\""), 200);
    free(text);
}

STAGEPROF_TEST(directory_under_a_file_reports_enotdir)
{
    char *dir = tmpdir();
    char file[128], sub[160];
    snprintf(file, sizeof file, "%s/plain", dir);
    snprintf(sub, sizeof sub, "%s/plain/traces", dir);
    int fd = open(file, O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    close(fd);
    start_fake(sub, 0);
    record_some(5);
    ASSERT_EQ(stageprof_stop(), STAGEPROF_ENOTDIR);
    stageprof_stats_t st = stats();
    ASSERT_EQ(st.write_errors, 1);
    /* Fix the cause; the kept events go out with the next flush. */
    ASSERT_EQ(unlink(file), 0);
    ASSERT_EQ(stageprof_flush(), 0);
    ASSERT_EQ(files_in(sub, ".json"), 1);
}

STAGEPROF_TEST(names_never_collide)
{
    char *dir = tmpdir();
    start_fake(dir, 0);
    for (int i = 0; i < 5; i++) {
        record_some(1);
        ASSERT_EQ(stageprof_flush(), 0);
    }
    ASSERT_EQ(files_in(dir, ".json"), 5);
    ASSERT_EQ(files_in(dir, ".tmp"), 0);
    char path[4096];
    ASSERT_EQ(stageprof_get_last_path(path, sizeof path), 0);
    /* Five files within a second or two: distinct names, none replaced. */
    const char *base = strrchr(path, '/');
    ASSERT_NOT_NULL(base);
    ASSERT_TRUE(strncmp(base, "/workflow_execution_20", 22) == 0);
}

STAGEPROF_TEST(sink_failure_hook_on_files)
{
    char *dir = tmpdir();
    start_fake(dir, 0);
    record_some(20);
    stageprof__trace_file_set_fail(STAGEPROF_EIO, 100);
    ASSERT_EQ(stageprof_flush(), STAGEPROF_EIO);
    ASSERT_EQ(files_in(dir, ".json"), 0);
    ASSERT_EQ(files_in(dir, ".tmp"), 0);
    stageprof__trace_file_set_fail(0, 0);
    ASSERT_EQ(stageprof_flush(), 0);
    ASSERT_EQ(files_in(dir, ".json"), 1);
}

STAGEPROF_TEST(args_across_output_flushes_stay_valid)
{
    start_fake(NULL, 0);
    char name[1001];
    memset(name, 'n', 1000);
    name[1000] = '\0';
    /*
     * Over 3 MiB of events, each a 1000-byte name and one small argument:
     * the writer's 1 MiB output buffer nearly always fills between the
     * name and the argument.
     */
    for (int i = 0; i < 3000; i++) {
        STAGEPROF_SCOPE_DYN(s, name + i % 7, "compute");
        STAGEPROF_ARG_INT(s, "i", i);
    }
    char *trace = write_to_string(NULL);
    ASSERT_TRUE(strlen(trace) > (3u << 20));
    ASSERT_NULL(strstr(trace, "{,"));
    ASSERT_EQ(count_of(trace, "\"args\":{\"i\":"), 3000);
    free(trace);
}

STAGEPROF_TEST(failed_rename_keeps_events)
{
    char *dir = tmpdir();
    start_fake(dir, 0);
    record_some(7);
    stageprof__trace_file_set_fail(STAGEPROF_EIO, -2); /* rename fails */
    ASSERT_EQ(stageprof_flush(), STAGEPROF_EIO);
    ASSERT_EQ(files_in(dir, ".json"), 0);
    ASSERT_EQ(files_in(dir, ".tmp"), 0);
    stageprof__trace_file_set_fail(0, 0);
    ASSERT_EQ(stageprof_flush(), 0);
    char path[4096];
    char *text = last_trace(path, sizeof path);
    ASSERT_EQ(count_of(text, "\"name\":\"stage\""), 7);
    free(text);
    stageprof_stats_t st = stats();
    ASSERT_EQ(st.write_errors, 1);
    ASSERT_EQ(st.traces_written, 1);
}

STAGEPROF_TEST_LIST(STAGEPROF_CASE(failed_rename_keeps_events),
                    STAGEPROF_CASE(args_across_output_flushes_stay_valid),
                    STAGEPROF_CASE(runs_flows_counters_format),
                    STAGEPROF_CASE(run_end_without_begin_counted_across_files),
                    STAGEPROF_CASE(metadata_fields),
                    STAGEPROF_CASE(failing_sink_keeps_data_for_retry),
                    STAGEPROF_CASE(dev_full_reports_enospc),
                    STAGEPROF_CASE(rlimit_fsize_returns_efbig_without_signal),
                    STAGEPROF_CASE(directory_under_a_file_reports_enotdir),
                    STAGEPROF_CASE(names_never_collide),
                    STAGEPROF_CASE(sink_failure_hook_on_files))
