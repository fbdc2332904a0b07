/*
 * test_strbuf.c - growth, formatted appends of any length, and the
 * out-of-memory latch.
 */
#include "test.h"
#include "util/strbuf.h"

static int allowed;
static void *limited_alloc(size_t n)
{
    if (allowed-- <= 0)
        return NULL;
    return malloc(n);
}

STAGEPROF_TEST(grows_and_stays_terminated)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    for (int i = 0; i < 1000; i++)
        stageprof__sb_adds(&sb, "abc");
    ASSERT_EQ(sb.len, 3000);
    ASSERT_EQ(strlen(sb.buf), 3000);
    ASSERT_TRUE(sb.cap > sb.len);
    stageprof__sb_reset(&sb);
    ASSERT_EQ(sb.len, 0);
    ASSERT_STREQ(sb.buf, "");
    stageprof__sb_fini(&sb);
    stageprof__sb_fini(&sb); /* twice is harmless */
}

STAGEPROF_TEST(addf_long_output)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    stageprof__sb_addf(&sb, "[%s|%d]", big, 42);
    ASSERT_EQ(sb.len, 1999 + 5);
    ASSERT_CONTAINS(sb.buf, "|42]");
    stageprof__sb_fini(&sb);
}

STAGEPROF_TEST(oom_latches)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, limited_alloc, free);
    allowed = 1;
    stageprof__sb_adds(&sb, "fits");
    ASSERT_EQ(sb.oom, 0);
    char big[1000];
    memset(big, 'y', sizeof big);
    stageprof__sb_add(&sb, big, sizeof big); /* needs a second allocation */
    ASSERT_EQ(sb.oom, 1);
    allowed = 10;
    stageprof__sb_adds(&sb, "ignored");
    ASSERT_STREQ(sb.buf, "fits");
    ASSERT_EQ(stageprof__sb_reserve(&sb, 1), -1);
    stageprof__sb_fini(&sb);
}

STAGEPROF_TEST(size_overflow_refused)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    ASSERT_EQ(stageprof__sb_reserve(&sb, SIZE_MAX - 2), -1);
    ASSERT_EQ(sb.oom, 1);
    stageprof__sb_fini(&sb);
}

STAGEPROF_TEST_LIST(STAGEPROF_CASE(grows_and_stays_terminated),
                    STAGEPROF_CASE(addf_long_output),
                    STAGEPROF_CASE(oom_latches),
                    STAGEPROF_CASE(size_overflow_refused))
