/*
 * test_counter.c - counter values of both types, including values JSON
 * cannot hold as numbers.
 */
#include <math.h>

#include "helpers.h"

STAGEPROF_TEST(int_and_double_values)
{
    start_fake(NULL, 0);
    STAGEPROF_COUNTER_INT("queue", INT64_MIN);
    STAGEPROF_COUNTER_INT("queue", 9);
    STAGEPROF_COUNTER_DOUBLE("util", 1e-300);
    STAGEPROF_COUNTER_DOUBLE("util", NAN);
    STAGEPROF_COUNTER_DOUBLE("util", INFINITY);
    char *trace = write_to_string(NULL);
    ASSERT_CONTAINS(trace, "\"args\":{\"value\":-9223372036854775808}}");
    ASSERT_CONTAINS(trace, "\"args\":{\"value\":9}}");
    ASSERT_CONTAINS(trace, "\"args\":{\"value\":1e-300}}");
    ASSERT_CONTAINS(trace, "\"args\":{\"value\":\"NaN\"}}");
    ASSERT_CONTAINS(trace, "\"args\":{\"value\":\"Infinity\"}}");
    /* Counters never carry a run: their args are their series. */
    STAGEPROF_RUN_BEGIN("frame", 3);
    STAGEPROF_COUNTER_INT("queue", 1);
    free(trace);
    trace = write_to_string(NULL);
    const char *c = strstr(trace, "{\"ph\":\"C\",\"name\":\"queue\"");
    ASSERT_NOT_NULL(c);
    ASSERT_CONTAINS(c, "\"args\":{\"value\":1}}");
    ASSERT_EQ(count_of(trace, "\"run\":3"), 1); /* the b event only */
    free(trace);
}

STAGEPROF_TEST(counter_respects_filter)
{
    setenv("STAGEPROF_CATEGORIES", "-counter", 1);
    start_fake(NULL, 0);
    STAGEPROF_COUNTER_INT("queue", 1);
    STAGEPROF_INSTANT("still_recorded", "io");
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"ph\":\"C\""), 0);
    ASSERT_EQ(count_of(trace, "\"name\":\"still_recorded\""), 1);
    free(trace);
}

STAGEPROF_TEST_LIST(STAGEPROF_CASE(int_and_double_values),
                    STAGEPROF_CASE(counter_respects_filter))
