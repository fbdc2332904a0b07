/*
 * test_config.c - settings: parsers, precedence (API over environment over
 * default), and bad values reported once and replaced by the default.
 */
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "helpers.h"

static int nlogs;
static char last_log[1024];

static void log_cb(int level, const char *msg, void *ud)
{
    (void)level;
    (void)ud;
    nlogs++;
    snprintf(last_log, sizeof last_log, "%s", msg);
}

/* Resolve the environment into @c, diagnostics going to log_cb. */
static void resolve_logged(struct conf *c)
{
    stageprof_config_t api;
    stageprof_config_init(&api);
    api.log_cb = log_cb;
    ASSERT_EQ(stageprof__config_resolve(&api, c), 0);
}

STAGEPROF_TEST(parse_bool_values)
{
    int v = -1;
    const char *yes[] = {"1", "true", "TRUE", "True", "yes", "on"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        ASSERT_EQ(stageprof__parse_bool(yes[i], &v), 0);
        ASSERT_EQ(v, 1);
    }
    const char *no[] = {"0", "false", "False", "no", "off", ""};
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        ASSERT_EQ(stageprof__parse_bool(no[i], &v), 0);
        ASSERT_EQ(v, 0);
    }
    const char *bad[] = {"2", "tru", " 1", "1 ", "yes!", "-1", "enable"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ASSERT_EQ(stageprof__parse_bool(bad[i], &v), STAGEPROF_EINVAL);
}

STAGEPROF_TEST(parse_size_values)
{
    long long v;
    ASSERT_EQ(stageprof__parse_size("65536", &v), 0);
    ASSERT_EQ(v, 65536);
    ASSERT_EQ(stageprof__parse_size("64K", &v), 0);
    ASSERT_EQ(v, 65536);
    ASSERT_EQ(stageprof__parse_size("64KiB", &v), 0);
    ASSERT_EQ(v, 65536);
    ASSERT_EQ(stageprof__parse_size("3m", &v), 0);
    ASSERT_EQ(v, 3 << 20);
    ASSERT_EQ(stageprof__parse_size("2G", &v), 0);
    ASSERT_EQ(v, 2ll << 30);
    ASSERT_EQ(stageprof__parse_size("1TB", &v), 0);
    ASSERT_EQ(v, 1ll << 40);
    const char *bad[] = {"",     "-1", "+5",   " 5",   "5 ", "5X",
                         "1.5M", "M",  "0x10", "12KK", "abc"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ASSERT_EQ(stageprof__parse_size(bad[i], &v), STAGEPROF_EINVAL);
    ASSERT_EQ(stageprof__parse_size("99999999999999999999999", &v),
              STAGEPROF_ERANGE);
    ASSERT_EQ(stageprof__parse_size("9999999999T", &v), STAGEPROF_ERANGE);
}

STAGEPROF_TEST(category_rules)
{
    struct conf c;
    memset(&c, 0, sizeof c);
    ASSERT_EQ(stageprof__parse_categories("*", &c), 0);
    ASSERT_TRUE(stageprof__config_category_ok(&c, "anything"));
    ASSERT_EQ(stageprof__parse_categories("compute, io", &c), 0);
    ASSERT_TRUE(stageprof__config_category_ok(&c, "compute"));
    ASSERT_TRUE(stageprof__config_category_ok(&c, "io"));
    ASSERT_TRUE(!stageprof__config_category_ok(&c, "data"));
    ASSERT_EQ(stageprof__parse_categories("-data", &c), 0);
    ASSERT_TRUE(stageprof__config_category_ok(&c, "compute"));
    ASSERT_TRUE(!stageprof__config_category_ok(&c, "data"));
    ASSERT_EQ(stageprof__parse_categories("*,-serve", &c), 0);
    ASSERT_TRUE(!stageprof__config_category_ok(&c, "serve"));
    ASSERT_TRUE(stageprof__config_category_ok(&c, NULL)); /* "default" */
    const char *bad[] = {"",   ",",   "a,,b",  "-",  "--x",        "a b",
                         "-*", "a;b", "\"a\"", "a,", "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ASSERT_EQ(stageprof__parse_categories(bad[i], &c), STAGEPROF_EINVAL);
        ASSERT_EQ(c.nrules, 0);
    }
    char many[1024] = "";
    for (int i = 0; i < 70; i++)
        strcat(many, "a,"); /* test code: 140 bytes of 1024 */
    strcat(many, "b");
    ASSERT_EQ(stageprof__parse_categories(many, &c), STAGEPROF_EINVAL);
    stageprof__config_fini(&c);
}

STAGEPROF_TEST(api_wins_over_environment)
{
    setenv("STAGEPROF_DIR", "/tmp/from-env", 1);
    setenv("STAGEPROF_BUFFER_BYTES", "1M", 1);
    setenv("STAGEPROF_ENABLE", "0", 1);
    stageprof_config_t api;
    stageprof_config_init(&api);
    api.dir = "/tmp/from-api";
    api.enable = 1;
    struct conf c;
    ASSERT_EQ(stageprof__config_resolve(&api, &c), 0);
    ASSERT_STREQ(c.dir, "/tmp/from-api");
    ASSERT_STREQ(c.src_dir, "api");
    ASSERT_EQ(c.enable, 1);
    ASSERT_EQ(c.buffer_bytes, 1 << 20);
    ASSERT_STREQ(c.src_buffer_bytes, "env");
    ASSERT_EQ(c.nwarnings, 0);
    stageprof__config_fini(&c);
}

STAGEPROF_TEST(defaults_without_anything)
{
    struct conf c;
    ASSERT_EQ(stageprof__config_resolve(NULL, &c), 0);
    ASSERT_STREQ(c.dir, "./inference_profiling");
    ASSERT_EQ(c.buffer_bytes, 64ll << 20);
    ASSERT_EQ(c.enable, 0);
    ASSERT_STREQ(c.categories, "*");
    ASSERT_EQ(c.clock, STAGEPROF_CLOCK_AUTO);
    stageprof__config_fini(&c);
}

STAGEPROF_TEST(roboflow_alias_enables)
{
    setenv("ENABLE_WORKFLOWS_PROFILING", "True", 1);
    ASSERT_EQ(stageprof__config_env_enabled(), 1);
    struct conf c;
    ASSERT_EQ(stageprof__config_resolve(NULL, &c), 0);
    ASSERT_EQ(c.enable, 1);
    stageprof__config_fini(&c);
    setenv("STAGEPROF_ENABLE", "0", 1); /* the primary name wins */
    ASSERT_EQ(stageprof__config_env_enabled(), 0);
}

STAGEPROF_TEST(bad_values_reported_once_defaults_used)
{
    setenv("STAGEPROF_ENABLE", "maybe", 1);
    setenv("STAGEPROF_BUFFER_BYTES", "-5", 1);
    setenv("STAGEPROF_CATEGORIES", "compute,,io", 1);
    setenv("STAGEPROF_CLOCK", "sundial", 1);
    struct conf c;
    resolve_logged(&c);
    ASSERT_EQ(nlogs, 4);
    ASSERT_EQ(c.nwarnings, 4);
    ASSERT_EQ(c.enable, 0);
    ASSERT_EQ(c.buffer_bytes, 64ll << 20);
    ASSERT_STREQ(c.categories, "*");
    ASSERT_EQ(c.clock, STAGEPROF_CLOCK_AUTO);
    ASSERT_CONTAINS(c.warnings[1], "STAGEPROF_BUFFER_BYTES");
    ASSERT_CONTAINS(c.warnings[1], "\"-5\"");
    stageprof__config_fini(&c);
}

STAGEPROF_TEST(huge_and_hostile_values)
{
    char big[100000];
    memset(big, '9', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    setenv("STAGEPROF_BUFFER_BYTES", big, 1);
    memset(big, 'a', sizeof big - 1);
    setenv("STAGEPROF_DIR", big, 1);
    setenv("STAGEPROF_CATEGORIES", big, 1); /* valid: one long name */
    stageprof_config_t api;
    stageprof_config_init(&api);
    api.log_cb = log_cb;
    api.buffer_bytes = 1; /* API value, too small */
    struct conf c;
    ASSERT_EQ(stageprof__config_resolve(&api, &c), 0);
    ASSERT_EQ(c.buffer_bytes, 64ll << 20);
    ASSERT_STREQ(c.dir, "./inference_profiling");
    ASSERT_EQ(nlogs, 2);
    ASSERT_TRUE(strlen(last_log) < 1024);
    stageprof__config_fini(&c);
}

STAGEPROF_TEST(dir_that_is_a_file_falls_back)
{
    char path[] = "/tmp/stageprof-cfg-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    setenv("STAGEPROF_DIR", path, 1);
    struct conf c;
    resolve_logged(&c);
    ASSERT_STREQ(c.dir, "./inference_profiling");
    ASSERT_EQ(nlogs, 1);
    ASSERT_CONTAINS(last_log, "not a directory");
    stageprof__config_fini(&c);
    unlink(path);
}

STAGEPROF_TEST(log_file_receives_warnings)
{
    char path[] = "/tmp/stageprof-log-XXXXXX";
    int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    setenv("STAGEPROF_LOG_FILE", path, 1);
    setenv("STAGEPROF_CLOCK", "bogus", 1);
    struct conf c;
    ASSERT_EQ(stageprof__config_resolve(NULL, &c), 0);
    stageprof__config_fini(&c);
    char buf[2048] = "";
    ssize_t n = read(fd, buf, sizeof buf - 1);
    ASSERT_GT(n, 0);
    ASSERT_CONTAINS(buf, "STAGEPROF_CLOCK");
    ASSERT_CONTAINS(buf, "bogus");
    close(fd);
    unlink(path);
}

STAGEPROF_TEST(bad_api_values)
{
    stageprof_config_t api;
    stageprof_config_init(&api);
    api.log_cb = log_cb;
    api.enable = 7;
    api.clock = 99;
    api.dir = "";
    api.categories = "-";
    struct conf c;
    ASSERT_EQ(stageprof__config_resolve(&api, &c), 0);
    ASSERT_EQ(nlogs, 4);
    ASSERT_EQ(c.enable, 0);
    ASSERT_EQ(c.clock, STAGEPROF_CLOCK_AUTO);
    ASSERT_STREQ(c.dir, "./inference_profiling");
    ASSERT_STREQ(c.categories, "*");
    stageprof__config_fini(&c);
}

STAGEPROF_TEST(count_and_signal_parsers)
{
    long long v;
    ASSERT_EQ(stageprof__parse_count("0", &v), 0);
    ASSERT_EQ(v, 0);
    ASSERT_EQ(stageprof__parse_count("64", &v), 0);
    ASSERT_EQ(v, 64);
    const char *bad[] = {"", "-1", "6K", " 6", "1e3", "0x40"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ASSERT_EQ(stageprof__parse_count(bad[i], &v), STAGEPROF_EINVAL);
    ASSERT_EQ(stageprof__parse_count("99999999999999999999", &v),
              STAGEPROF_ERANGE);
    int sig = -1;
    ASSERT_EQ(stageprof__parse_signal("SIGUSR2", &sig), 0);
    ASSERT_EQ(sig, SIGUSR2);
    ASSERT_EQ(stageprof__parse_signal("usr1", &sig), 0);
    ASSERT_EQ(sig, SIGUSR1);
    ASSERT_EQ(stageprof__parse_signal("off", &sig), 0);
    ASSERT_EQ(sig, 0);
    char rt[16];
    snprintf(rt, sizeof rt, "%d", SIGRTMIN + 1);
    ASSERT_EQ(stageprof__parse_signal(rt, &sig), 0);
    ASSERT_EQ(sig, SIGRTMIN + 1);
    const char *badsig[] = {"SIGSEGV", "KILL", "9", "SIGUSR3", "-12", "2"};
    for (size_t i = 0; i < sizeof badsig / sizeof *badsig; i++)
        ASSERT_EQ(stageprof__parse_signal(badsig[i], &sig), STAGEPROF_EINVAL);
}

STAGEPROF_TEST(always_on_settings)
{
    struct conf c;
    ASSERT_EQ(stageprof__config_resolve(NULL, &c), 0);
    ASSERT_EQ(c.buffer_runs, 64);
    ASSERT_EQ(c.sample_runs, 1);
    ASSERT_EQ(c.gzip, 0);
    ASSERT_EQ(c.max_files, 0);
    ASSERT_EQ(c.max_dir_bytes, 0);
    ASSERT_EQ(c.snapshot_signal, 0);
    ASSERT_EQ(c.crash_dump, 0);
    ASSERT_EQ(c.follow_fork, 1);
    stageprof__config_fini(&c);

    setenv("WORKFLOWS_PROFILER_BUFFER_SIZE", "16", 1); /* the alias */
    setenv("STAGEPROF_SAMPLE_RUNS", "10", 1);
    setenv("STAGEPROF_GZIP", "yes", 1);
    setenv("STAGEPROF_MAX_FILES", "5", 1);
    setenv("STAGEPROF_MAX_DIR_BYTES", "1G", 1);
    setenv("STAGEPROF_SNAPSHOT_SIGNAL", "SIGUSR2", 1);
    setenv("STAGEPROF_CRASH_DUMP", "1", 1);
    setenv("STAGEPROF_FOLLOW_FORK", "0", 1);
    ASSERT_EQ(stageprof__config_resolve(NULL, &c), 0);
    ASSERT_EQ(c.buffer_runs, 16);
    ASSERT_EQ(c.sample_runs, 10);
    ASSERT_EQ(c.gzip, 1);
    ASSERT_EQ(c.max_files, 5);
    ASSERT_EQ(c.max_dir_bytes, 1ll << 30);
    ASSERT_EQ(c.snapshot_signal, SIGUSR2);
    ASSERT_EQ(c.crash_dump, 1);
    ASSERT_EQ(c.follow_fork, 0);
    ASSERT_EQ(c.nwarnings, 0);
    stageprof__config_fini(&c);

    setenv("STAGEPROF_BUFFER_RUNS", "8", 1); /* the main name wins */
    stageprof_config_t api;
    stageprof_config_init(&api);
    api.sample_runs = 3; /* API wins */
    ASSERT_EQ(stageprof__config_resolve(&api, &c), 0);
    ASSERT_EQ(c.buffer_runs, 8);
    ASSERT_EQ(c.sample_runs, 3);
    stageprof__config_fini(&c);
}

STAGEPROF_TEST(always_on_bad_values)
{
    setenv("STAGEPROF_BUFFER_RUNS", "-3", 1);
    setenv("STAGEPROF_SAMPLE_RUNS", "0", 1);
    setenv("STAGEPROF_GZIP", "maybe", 1);
    setenv("STAGEPROF_MAX_FILES", "ten", 1);
    setenv("STAGEPROF_MAX_DIR_BYTES", "-1M", 1);
    setenv("STAGEPROF_SNAPSHOT_SIGNAL", "SIGKILL", 1);
    setenv("STAGEPROF_CRASH_DUMP", "2", 1);
    setenv("STAGEPROF_FOLLOW_FORK", "", 1); /* empty is "off", valid */
    struct conf c;
    resolve_logged(&c);
    ASSERT_EQ(nlogs, 7);
    ASSERT_EQ(c.buffer_runs, 64);
    ASSERT_EQ(c.sample_runs, 1);
    ASSERT_EQ(c.gzip, 0);
    ASSERT_EQ(c.max_files, 0);
    ASSERT_EQ(c.max_dir_bytes, 0);
    ASSERT_EQ(c.snapshot_signal, 0);
    ASSERT_EQ(c.crash_dump, 0);
    ASSERT_EQ(c.follow_fork, 0);
    stageprof__config_fini(&c);
}

STAGEPROF_TEST_LIST(
    STAGEPROF_CASE(count_and_signal_parsers),
    STAGEPROF_CASE(always_on_settings), STAGEPROF_CASE(always_on_bad_values),
    STAGEPROF_CASE(parse_bool_values), STAGEPROF_CASE(parse_size_values),
    STAGEPROF_CASE(category_rules), STAGEPROF_CASE(api_wins_over_environment),
    STAGEPROF_CASE(defaults_without_anything),
    STAGEPROF_CASE(roboflow_alias_enables),
    STAGEPROF_CASE(bad_values_reported_once_defaults_used),
    STAGEPROF_CASE(huge_and_hostile_values),
    STAGEPROF_CASE(dir_that_is_a_file_falls_back),
    STAGEPROF_CASE(log_file_receives_warnings), STAGEPROF_CASE(bad_api_values))
