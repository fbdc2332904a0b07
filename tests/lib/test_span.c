/*
 * test_span.c - spans, instants and arguments as they appear in the trace.
 *
 * The fake clock advances 1 µs per reading, ids are fixed (pid 1, tid =
 * thread registration order), so expected JSON is written out by hand from
 * the trace-format contract.
 */
#include <pthread.h>

#include "helpers.h"
#include "tbuf.h"

static void names(void)
{
    stageprof_process_set_name("unit");
    stageprof_thread_set_name("main");
}

static const char *const META =
    "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":1,\"tid\":0,"
    "\"args\":{\"name\":\"unit\"}},\n"
    "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":1,"
    "\"args\":{\"name\":\"main\"}}";

static void expect_events(const char *body)
{
    char *trace = write_to_string(NULL);
    char *ev = events_of(trace);
    char *want = malloc(strlen(META) + strlen(body) + 4);
    strcpy(want, META); /* test code: sizes computed above */
    if (body[0]) {
        strcat(want, ",\n");
        strcat(want, body);
    }
    ASSERT_STREQ(ev, want);
    free(want);
    free(ev);
    free(trace);
}

STAGEPROF_TEST(nested_spans_become_x_events)
{
    names();
    start_fake(NULL, 0);
    STAGEPROF_SPAN_BEGIN(outer, "outer", "compute"); /* t = 1 µs */
    STAGEPROF_ARG_INT(outer, "n", 7);
    {
        STAGEPROF_SCOPE(inner, "inner", "preprocess"); /* 2 µs .. 3 µs */
    }
    STAGEPROF_SPAN_END(outer); /* 4 µs */
    expect_events(
        "{\"ph\":\"X\",\"name\":\"inner\",\"cat\":\"preprocess\",\"ts\":2.000,"
        "\"dur\":1.000,\"pid\":1,\"tid\":1},\n"
        "{\"ph\":\"X\",\"name\":\"outer\",\"cat\":\"compute\",\"ts\":1.000,"
        "\"dur\":3.000,\"pid\":1,\"tid\":1,\"args\":{\"n\":7}}");
}

STAGEPROF_TEST(typed_args_late_args_and_escaping)
{
    names();
    start_fake(NULL, 0);
    STAGEPROF_SPAN_BEGIN(s, "we\"ird\n", NULL); /* 1 µs */
    STAGEPROF_ARG_DOUBLE(s, "ratio", 0.5);
    {
        STAGEPROF_SCOPE(c, "child", "io"); /* 2 .. 3 */
    }
    /* An argument added after a child still belongs to the outer span. */
    STAGEPROF_ARG_STR(s, "file", "a\tb\xff");
    STAGEPROF_SPAN_END(s); /* 4 */
    expect_events(
        "{\"ph\":\"X\",\"name\":\"child\",\"cat\":\"io\",\"ts\":2.000,"
        "\"dur\":1.000,\"pid\":1,\"tid\":1},\n"
        "{\"ph\":\"X\",\"name\":\"we\\\"ird\\n\",\"cat\":\"default\","
        "\"ts\":1.000,\"dur\":3.000,\"pid\":1,\"tid\":1,"
        "\"args\":{\"ratio\":0.5,\"file\":\"a\\tb\\ufffd\"}}");
}

STAGEPROF_TEST(dynamic_name_is_copied)
{
    names();
    start_fake(NULL, 0);
    char name[16] = "model-A";
    {
        STAGEPROF_SCOPE_DYN(s, name, "compute"); /* 1 .. 2 */
        memcpy(name, "XXXXXXX", 7); /* the library kept its own copy */
    }
    expect_events(
        "{\"ph\":\"X\",\"name\":\"model-A\",\"cat\":\"compute\",\"ts\":1.000,"
        "\"dur\":1.000,\"pid\":1,\"tid\":1}");
}

STAGEPROF_TEST(long_dynamic_string_truncated_and_counted)
{
    names();
    start_fake(NULL, 0);
    char big[5000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    stageprof_site_t site = STAGEPROF_SITE_INIT("", "io");
    stageprof_span_t s = stageprof_span_begin_name(&site, big);
    stageprof_span_arg_str(&s, "v", big);
    stageprof_span_end(&s);
    char *trace = write_to_string(NULL);
    ASSERT_CONTAINS(trace, "\"strings_truncated\":2");
    /* Exactly STAGEPROF_MAX_STRING bytes of the name survive. */
    char want[STAGEPROF_MAX_STRING + 16] = "\"name\":\"";
    memset(want + 8, 'a', STAGEPROF_MAX_STRING);
    memcpy(want + 8 + STAGEPROF_MAX_STRING, "\",", 3);
    ASSERT_CONTAINS(trace, want);
    free(trace);
}

STAGEPROF_TEST(complete_span_with_explicit_times)
{
    names();
    start_fake(NULL, 0);
    /* base is 1 000 000 ns; start 10 µs after it, last 2.5 µs. */
    STAGEPROF_SPAN_COMPLETE("gpu", "compute", 1010000, 2500);
    expect_events(
        "{\"ph\":\"X\",\"name\":\"gpu\",\"cat\":\"compute\",\"ts\":10.000,"
        "\"dur\":2.500,\"pid\":1,\"tid\":1}");
}

STAGEPROF_TEST(instant_with_args)
{
    names();
    start_fake(NULL, 0);
    stageprof_site_t site = STAGEPROF_SITE_INIT("drop", "data");
    stageprof_span_t ev = stageprof_instant(&site); /* 1 µs */
    stageprof_span_arg_str(&ev, "reason", "queue full");
    stageprof_span_arg_int(&ev, "frame", -3);
    STAGEPROF_INSTANT("tick", "io"); /* 2 µs */
    /* Too late: another event was recorded since. */
    stageprof_span_arg_int(&ev, "late", 1);
    expect_events(
        "{\"ph\":\"i\",\"s\":\"t\",\"name\":\"drop\",\"cat\":\"data\","
        "\"ts\":1.000,\"pid\":1,\"tid\":1,"
        "\"args\":{\"reason\":\"queue full\",\"frame\":-3}},\n"
        "{\"ph\":\"i\",\"s\":\"t\",\"name\":\"tick\",\"cat\":\"io\","
        "\"ts\":2.000,\"pid\":1,\"tid\":1}");
    stageprof_stats_t st = stats();
    ASSERT_EQ(st.misuse, 1);
}

STAGEPROF_TEST(end_twice_is_counted_not_recorded)
{
    names();
    start_fake(NULL, 0);
    STAGEPROF_SPAN_BEGIN(s, "a", "x");
    stageprof_span_t copy = s;
    STAGEPROF_SPAN_END(s);
    STAGEPROF_SPAN_END(s);
    stageprof_span_end(&copy);
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"ph\":\"X\""), 1);
    ASSERT_CONTAINS(trace, "\"span_end_without_begin\":2");
    free(trace);
}

STAGEPROF_TEST(parent_end_closes_children)
{
    names();
    start_fake(NULL, 0);
    STAGEPROF_SPAN_BEGIN(a, "a", "x"); /* 1 */
    STAGEPROF_SPAN_BEGIN(b, "b", "x"); /* 2 */
    STAGEPROF_SPAN_END(a);             /* 3: b closes at 3 too */
    STAGEPROF_SPAN_END(b);             /* misuse: already closed */
    expect_events("{\"ph\":\"X\",\"name\":\"b\",\"cat\":\"x\",\"ts\":2.000,"
                  "\"dur\":1.000,\"pid\":1,\"tid\":1},\n"
                  "{\"ph\":\"X\",\"name\":\"a\",\"cat\":\"x\",\"ts\":1.000,"
                  "\"dur\":2.000,\"pid\":1,\"tid\":1}");
    stageprof_stats_t st = stats();
    ASSERT_EQ(st.misuse, 2);
}

static void *end_elsewhere(void *arg)
{
    stageprof_span_end(arg);
    /* This thread now records, then ends the span again: still refused. */
    STAGEPROF_INSTANT("other", "x");
    stageprof_span_end(arg);
    return NULL;
}

STAGEPROF_TEST(end_on_other_thread_is_refused)
{
    names();
    start_fake(NULL, 0);
    STAGEPROF_SPAN_BEGIN(s, "a", "x");
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, end_elsewhere, &s), 0);
    pthread_join(t, NULL);
    STAGEPROF_SPAN_END(s); /* the real end still works */
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"ph\":\"X\""), 1);
    ASSERT_CONTAINS(trace, "\"span_end_other_thread\":2");
    free(trace);
}

STAGEPROF_TEST(nesting_deeper_than_supported)
{
    names();
    start_fake(NULL, 0);
    stageprof_site_t site = STAGEPROF_SITE_INIT("deep", "x");
    stageprof_span_t s[STAGEPROF_MAX_DEPTH + 5];
    for (int i = 0; i < (int)STAGEPROF_MAX_DEPTH + 5; i++)
        s[i] = stageprof_span_begin(&site);
    for (int i = (int)STAGEPROF_MAX_DEPTH + 4; i >= 0; i--)
        stageprof_span_end(&s[i]);
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"name\":\"deep\""), STAGEPROF_MAX_DEPTH);
    ASSERT_CONTAINS(trace, "\"span_too_deep\":5");
    ASSERT_CONTAINS(trace, "\"span_end_without_begin\":0");
    free(trace);
}

STAGEPROF_TEST(open_span_written_as_b_then_e)
{
    names();
    start_fake(NULL, 0);
    STAGEPROF_SPAN_BEGIN(s, "long", "serve"); /* 1 */
    STAGEPROF_ARG_INT(s, "early", 1);
    expect_events("{\"ph\":\"B\",\"name\":\"long\",\"cat\":\"serve\","
                  "\"ts\":1.000,\"pid\":1,\"tid\":1,\"args\":{\"early\":1}}");
    STAGEPROF_ARG_INT(s, "late", 2);
    STAGEPROF_SPAN_END(s); /* 2 */
    expect_events("{\"ph\":\"E\",\"ts\":2.000,\"pid\":1,\"tid\":1,"
                  "\"args\":{\"late\":2}}");
}

STAGEPROF_TEST(end_in_later_file_keeps_run)
{
    names();
    start_fake(NULL, 0);
    stageprof_site_t run = STAGEPROF_SITE_INIT("req", "run");
    stageprof_run_begin(&run, 9);             /* 1 */
    STAGEPROF_SPAN_BEGIN(s, "long", "serve"); /* 2 */
    stageprof_run_set_current(0);             /* 3 */
    expect_events("{\"ph\":\"b\",\"name\":\"req\",\"cat\":\"run\","
                  "\"id\":\"0x9\",\"ts\":1.000,\"pid\":1,\"tid\":1,"
                  "\"args\":{\"run\":9}},\n"
                  "{\"ph\":\"B\",\"name\":\"long\",\"cat\":\"serve\","
                  "\"ts\":2.000,\"pid\":1,\"tid\":1,\"args\":{\"run\":9}}");
    STAGEPROF_SPAN_END(s); /* 4 */
    expect_events("{\"ph\":\"E\",\"ts\":4.000,\"pid\":1,\"tid\":1,"
                  "\"args\":{\"run\":9}}");
}

STAGEPROF_TEST(open_span_makes_trace_incomplete)
{
    names();
    start_fake(NULL, 0);
    STAGEPROF_SPAN_BEGIN(s, "long", "serve");
    char *trace = write_to_string(NULL);
    ASSERT_CONTAINS(trace, "\"complete\":false");
    ASSERT_CONTAINS(trace, "\"open_spans\":1");
    free(trace);
    STAGEPROF_SPAN_END(s);
    trace = write_to_string(NULL);
    ASSERT_CONTAINS(trace, "\"complete\":true");
    free(trace);
}

STAGEPROF_TEST(off_records_nothing)
{
    names();
    stageprof__clock_set_fake(fake_clock);
    stageprof__writer_set_fixed_ids(1);
    {
        STAGEPROF_SCOPE(s, "never", "x");
        ASSERT_NULL(s.owner);
    }
    ASSERT_NULL(stageprof__tls); /* not even a buffer was made */
    stageprof_config_t c;
    stageprof_config_init(&c);
    c.enable = 0;
    ASSERT_EQ(stageprof_start(&c), 0);
    {
        STAGEPROF_SCOPE(s, "never", "x");
        ASSERT_NULL(s.owner);
    }
    ASSERT_EQ(stageprof_is_tracing(), 0);
    ASSERT_NULL(stageprof__tls);
}

STAGEPROF_TEST(categories_filter_sites)
{
    names();
    setenv("STAGEPROF_CATEGORIES", "compute,io,-io", 1);
    start_fake(NULL, 0);
    for (int i = 0; i < 2; i++) {
        STAGEPROF_SCOPE(a, "kept", "compute");
        STAGEPROF_SCOPE(b, "gone", "data");
        STAGEPROF_SCOPE(c, "excluded", "io");
    }
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"name\":\"kept\""), 2);
    ASSERT_EQ(count_of(trace, "\"name\":\"gone\""), 0);
    ASSERT_EQ(count_of(trace, "\"name\":\"excluded\""), 0);
    free(trace);
}

STAGEPROF_TEST(stop_then_restart_records_again)
{
    names();
    start_fake("/tmp/stageprof-unit-restart", 0);
    {
        STAGEPROF_SCOPE(a, "first", "x");
    }
    ASSERT_EQ(stageprof_stop(), 0);
    {
        STAGEPROF_SCOPE(a, "between", "x");
    }
    start_fake("/tmp/stageprof-unit-restart", 0);
    {
        STAGEPROF_SCOPE(a, "second", "x");
    }
    char *trace = write_to_string(NULL);
    ASSERT_EQ(count_of(trace, "\"name\":\"first\""), 0); /* already written */
    ASSERT_EQ(count_of(trace, "\"name\":\"between\""), 0);
    ASSERT_EQ(count_of(trace, "\"name\":\"second\""), 1);
    free(trace);
}

STAGEPROF_TEST_LIST(STAGEPROF_CASE(nested_spans_become_x_events),
                    STAGEPROF_CASE(typed_args_late_args_and_escaping),
                    STAGEPROF_CASE(dynamic_name_is_copied),
                    STAGEPROF_CASE(long_dynamic_string_truncated_and_counted),
                    STAGEPROF_CASE(complete_span_with_explicit_times),
                    STAGEPROF_CASE(instant_with_args),
                    STAGEPROF_CASE(end_twice_is_counted_not_recorded),
                    STAGEPROF_CASE(parent_end_closes_children),
                    STAGEPROF_CASE(end_on_other_thread_is_refused),
                    STAGEPROF_CASE(nesting_deeper_than_supported),
                    STAGEPROF_CASE(open_span_written_as_b_then_e),
                    STAGEPROF_CASE(end_in_later_file_keeps_run),
                    STAGEPROF_CASE(open_span_makes_trace_incomplete),
                    STAGEPROF_CASE(off_records_nothing),
                    STAGEPROF_CASE(categories_filter_sites),
                    STAGEPROF_CASE(stop_then_restart_records_again))
