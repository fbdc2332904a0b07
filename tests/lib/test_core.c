/*
 * test_core.c - lifecycle, error codes, the allocator hook (failing the Nth
 * allocation during start leaks nothing), STAGEPROF_ENABLE arming, and the
 * getters.
 */
#include <limits.h>
#include <unistd.h>

#include "helpers.h"
#include "tbuf.h"

/* Counting allocator that fails exactly the Nth call. */
static long calls, fail_at = -1, live;

static void *count_malloc(size_t n, void *ud)
{
    (void)ud;
    if (++calls == fail_at)
        return NULL;
    void *p = malloc(n);
    if (p)
        live++;
    return p;
}

static void count_free(void *p, void *ud)
{
    (void)ud;
    live--;
    free(p);
}

STAGEPROF_TEST(error_names_and_messages)
{
    ASSERT_STREQ(stageprof_err_name(0), "OK");
    ASSERT_STREQ(stageprof_strerror(0), "success");
    ASSERT_STREQ(stageprof_err_name(STAGEPROF_ENOMEM), "ENOMEM");
    ASSERT_STREQ(stageprof_err_name(STAGEPROF_EALREADY), "EALREADY");
    ASSERT_STREQ(stageprof_err_name(12345), "UNKNOWN");
    ASSERT_STREQ(stageprof_strerror(-99999), "unknown error");
    ASSERT_STREQ(stageprof_err_name(INT_MIN), "UNKNOWN");
    /* Every code from -1 to the last has its own name and message. */
    for (int e = -1; e > STAGEPROF_ERRNO_END_; e--) {
        ASSERT_TRUE(strcmp(stageprof_err_name(e), "UNKNOWN") != 0);
        ASSERT_TRUE(strcmp(stageprof_strerror(e), "unknown error") != 0);
        for (int f = e - 1; f > STAGEPROF_ERRNO_END_; f--)
            ASSERT_TRUE(strcmp(stageprof_err_name(e), stageprof_err_name(f)) !=
                        0);
    }
}

STAGEPROF_TEST(version_matches_header)
{
    ASSERT_EQ(stageprof_version(), STAGEPROF_VERSION_HEX);
    ASSERT_STREQ(stageprof_version_string(), STAGEPROF_VERSION_STRING);
}

STAGEPROF_TEST(start_twice_and_stop_without_start)
{
    ASSERT_EQ(stageprof_stop(), STAGEPROF_ENOTSTARTED);
    ASSERT_EQ(stageprof_flush(), STAGEPROF_ENOTSTARTED);
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 0;
    ASSERT_EQ(stageprof_start(&c), 0);
    ASSERT_EQ(stageprof_start(&c), STAGEPROF_EALREADY);
    ASSERT_EQ(stageprof_stop(), 0);
    ASSERT_EQ(stageprof_stop(), STAGEPROF_ENOTSTARTED);
    ASSERT_EQ(stageprof_start(NULL), 0); /* again, from the environment */
    ASSERT_EQ(stageprof_stop(), 0);
}

STAGEPROF_TEST(config_size_checked)
{
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.size = 4;
    ASSERT_EQ(stageprof_start(&c), STAGEPROF_EINVAL);
    stageprof_config_init(&c);
    c.malloc_fn = count_malloc; /* without its free */
    ASSERT_EQ(stageprof_start(&c), STAGEPROF_EINVAL);
    ASSERT_EQ(calls, 0);
}

STAGEPROF_TEST(allocation_failure_during_start_leaks_nothing)
{
    int succeeded = 0;
    for (long n = 1; n < 200 && !succeeded; n++) {
        calls = 0;
        fail_at = n;
        stageprof_config_t c;
        stageprof_config_init(&c);
        c.enable = 1;
        c.dir = "/tmp/stageprof-unit-alloc";
        c.categories = "compute,io,-data";
        c.log_file = "/dev/null";
        c.process_name = "alloc-test";
        c.malloc_fn = count_malloc;
        c.free_fn = count_free;
        int rc = stageprof_start(&c);
        if (rc == 0) {
            succeeded = 1;
            ASSERT_GT(n, 3); /* start did allocate before succeeding */
            break;
        }
        ASSERT_EQ(rc, STAGEPROF_ENOMEM);
        ASSERT_EQ(live, 0);
        ASSERT_EQ(stageprof_is_tracing(), 0);
    }
    ASSERT_TRUE(succeeded);
    fail_at = -1;
    {
        STAGEPROF_SCOPE(s, "after", "compute");
    }
    char *trace = write_to_string(NULL);
    ASSERT_CONTAINS(trace, "\"name\":\"after\"");
    free(trace);
}

STAGEPROF_TEST(allocation_failure_of_thread_buffer_counts_drops)
{
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 1;
    c.malloc_fn = count_malloc;
    c.free_fn = count_free;
    ASSERT_EQ(stageprof_start(&c), 0);
    fail_at = calls + 1; /* the thread buffer */
    {
        STAGEPROF_SCOPE(s, "lost", "x");
    }
    {
        STAGEPROF_SCOPE(s, "lost", "x");
    }
    ASSERT_NULL(stageprof__tls);
    stageprof_stats_t st = stats();
    ASSERT_EQ(st.events_dropped, 2);
}

STAGEPROF_TEST(allocator_change_refused_while_memory_held)
{
    start_fake(NULL, 0);
    {
        STAGEPROF_SCOPE(s, "x", "x");
    }
    ASSERT_EQ(stageprof_stop(), 0);
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.malloc_fn = count_malloc;
    c.free_fn = count_free;
    ASSERT_EQ(stageprof_start(&c), STAGEPROF_EBUSY);
}

STAGEPROF_TEST(armed_by_environment_starts_at_first_event)
{
    char *dir = temp_dir("stageprof-armed");
    setenv("STAGEPROF_ENABLE", "1", 1);
    setenv("STAGEPROF_DIR", dir, 1);
    /* What the load-time constructor does when the variable is present. */
    __atomic_store_n(&stageprof_hot_state, STATE_ARMED, __ATOMIC_RELEASE);
    ASSERT_EQ(stageprof_is_tracing(), 0);
    {
        STAGEPROF_SCOPE(s, "first", "x");
    }
    ASSERT_EQ(stageprof_is_tracing(), 1);
    ASSERT_EQ(stageprof_start(NULL), STAGEPROF_EALREADY);
    ASSERT_EQ(stageprof_stop(), 0);
    char path[4096];
    ASSERT_EQ(stageprof_get_last_path(path, sizeof path), 0);
    ASSERT_TRUE(strncmp(path, dir, strlen(dir)) == 0);
    ASSERT_CONTAINS(path, "/workflow_execution_");
}

STAGEPROF_TEST(armed_with_disable_value_stays_off)
{
    setenv("STAGEPROF_ENABLE", "0", 1);
    __atomic_store_n(&stageprof_hot_state, STATE_ARMED, __ATOMIC_RELEASE);
    {
        STAGEPROF_SCOPE(s, "first", "x");
    }
    ASSERT_EQ(stageprof_is_tracing(), 0);
    ASSERT_EQ(__atomic_load_n(&stageprof_hot_state, __ATOMIC_RELAXED),
              STATE_OFF);
    ASSERT_NULL(stageprof__tls);
}

STAGEPROF_TEST(explicit_start_before_first_event_wins)
{
    setenv("STAGEPROF_ENABLE", "1", 1);
    setenv("STAGEPROF_DIR", "/tmp/from-env", 1);
    __atomic_store_n(&stageprof_hot_state, STATE_ARMED, __ATOMIC_RELEASE);
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.dir = "/tmp/from-api";
    ASSERT_EQ(stageprof_start(&c), 0);
    ASSERT_EQ(stageprof_is_tracing(), 1); /* enable from the environment */
    ASSERT_STREQ(stageprof__g.conf.dir, "/tmp/from-api");
}

STAGEPROF_TEST(last_path_errors)
{
    char small[4];
    ASSERT_EQ(stageprof_get_last_path(NULL, 10), STAGEPROF_EINVAL);
    ASSERT_EQ(stageprof_get_last_path(small, sizeof small), STAGEPROF_ENOENT);
    start_fake("/tmp/stageprof-unit-path", 0);
    ASSERT_EQ(stageprof_stop(), 0);
    ASSERT_EQ(stageprof_get_last_path(small, sizeof small), STAGEPROF_ERANGE);
    char path[4096];
    ASSERT_EQ(stageprof_get_last_path(path, sizeof path), 0);
    ASSERT_EQ(access(path, R_OK), 0);
    unlink(path);
}

STAGEPROF_TEST(stats_size_checked)
{
    stageprof_stats_t st = {.size = 1};
    ASSERT_EQ(stageprof_get_stats(&st), STAGEPROF_EINVAL);
    ASSERT_EQ(stageprof_get_stats(NULL), STAGEPROF_EINVAL);
    /* An older, smaller struct gets only its fields. */
    struct {
        stageprof_stats_t st;
        uint64_t guard;
    } s2;
    s2.guard = 0xabcdef;
    s2.st.size = sizeof(size_t) + sizeof(uint64_t);
    ASSERT_EQ(stageprof_get_stats(&s2.st), 0);
    ASSERT_EQ(s2.guard, 0xabcdef);
}

STAGEPROF_TEST(now_is_monotonic_ns)
{
    uint64_t a = stageprof_now_ns();
    uint64_t b = stageprof_now_ns();
    ASSERT_TRUE(b >= a);
    ASSERT_TRUE(a > 0);
}

STAGEPROF_TEST_LIST(
    STAGEPROF_CASE(error_names_and_messages),
    STAGEPROF_CASE(version_matches_header),
    STAGEPROF_CASE(start_twice_and_stop_without_start),
    STAGEPROF_CASE(config_size_checked),
    STAGEPROF_CASE(allocation_failure_during_start_leaks_nothing),
    STAGEPROF_CASE(allocation_failure_of_thread_buffer_counts_drops),
    STAGEPROF_CASE(allocator_change_refused_while_memory_held),
    STAGEPROF_CASE(armed_by_environment_starts_at_first_event),
    STAGEPROF_CASE(armed_with_disable_value_stays_off),
    STAGEPROF_CASE(explicit_start_before_first_event_wins),
    STAGEPROF_CASE(last_path_errors), STAGEPROF_CASE(stats_size_checked),
    STAGEPROF_CASE(now_is_monotonic_ns))
