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
    stageprof_run_set_current(3);
    STAGEPROF_COUNTER_INT("queue", 1);
    free(trace);
    trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"run\""), 0);
    free(trace);
}

STAGEPROF_TEST(counter_respects_filter)
{
    setenv("STAGEPROF_CATEGORIES", "-counter", 1);
    start_fake(NULL, 0);
    STAGEPROF_COUNTER_INT("queue", 1);
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"ph\":\"C\""), 0);
    free(trace);
}

STAGEPROF_TEST_LIST(STAGEPROF_CASE(int_and_double_values),
                    STAGEPROF_CASE(counter_respects_filter))
