/*
 * test_sysinfo.c - machine facts for the metadata: present, and valid JSON
 * members even for odd command lines.
 */
#include "helpers.h"

STAGEPROF_TEST(members_present)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    stageprof__sysinfo_json(&sb);
    ASSERT_CONTAINS(sb.buf, ",\"host\":");
    ASSERT_CONTAINS(sb.buf, ",\"cores\":");
    ASSERT_CONTAINS(sb.buf, ",\"kernel\":\"Linux ");
    ASSERT_CONTAINS(sb.buf, ",\"command_line\":[\"");
    ASSERT_CONTAINS(sb.buf, "test_sysinfo");
    stageprof__sb_fini(&sb);
}

STAGEPROF_TEST(tid_and_program)
{
    ASSERT_GT(stageprof__sysinfo_tid(), 0);
    char name[64];
    stageprof__sysinfo_program(name, sizeof name);
    ASSERT_TRUE(strlen(name) > 0);
    ASSERT_NULL(strchr(name, '\n'));
}

STAGEPROF_TEST_LIST(STAGEPROF_CASE(members_present),
                    STAGEPROF_CASE(tid_and_program))
