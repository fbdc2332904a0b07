/*
 * test_json.c - JSON escaping (valid output whatever the bytes) and the
 * number formatting used by the trace writer.
 */
#include <math.h>

#include "test.h"
#include "util/json.h"
#include "util/strbuf.h"

static char *esc(const char *s, size_t len)
{
    static char out[8192];
    size_t n = stageprof__json_escape(out, s, len);
    out[n] = '\0';
    return out;
}

STAGEPROF_TEST(escapes_quotes_backslash_controls)
{
    ASSERT_STREQ(esc("a\"b\\c", 5), "a\\\"b\\\\c");
    ASSERT_STREQ(esc("\n\r\t\b\f", 5), "\\n\\r\\t\\b\\f");
    ASSERT_STREQ(esc("\x01\x1f", 2), "\\u0001\\u001f");
    /* An embedded NUL is part of the string, not its end. */
    ASSERT_STREQ(esc("a\0b", 3), "a\\u0000b");
    ASSERT_STREQ(esc("/<>'", 4), "/<>'");
}

STAGEPROF_TEST(valid_utf8_passes_through)
{
    ASSERT_STREQ(esc("caf\xc3\xa9", 5), "caf\xc3\xa9");
    ASSERT_STREQ(esc("\xe6\x97\xa5", 3), "\xe6\x97\xa5");
    ASSERT_STREQ(esc("\xf0\x9f\x98\x80", 4), "\xf0\x9f\x98\x80");
    ASSERT_STREQ(esc("\xf4\x8f\xbf\xbf", 4), "\xf4\x8f\xbf\xbf"); /* U+10FFFF */
    /* Line and paragraph separators are escaped for JavaScript. */
    ASSERT_STREQ(esc("\xe2\x80\xa8\xe2\x80\xa9", 6), "\\u2028\\u2029");
}

STAGEPROF_TEST(invalid_utf8_replaced_byte_by_byte)
{
    ASSERT_STREQ(esc("\xff", 1), "\\ufffd");
    ASSERT_STREQ(esc("\x80", 1), "\\ufffd");            /* stray continuation */
    ASSERT_STREQ(esc("\xc0\xaf", 2), "\\ufffd\\ufffd"); /* overlong '/' */
    ASSERT_STREQ(esc("\xe0\x80\xaf", 3), "\\ufffd\\ufffd\\ufffd");
    ASSERT_STREQ(esc("\xed\xa0\x80", 3),
                 "\\ufffd\\ufffd\\ufffd"); /* surrogate */
    ASSERT_STREQ(esc("\xf4\x90\x80\x80", 4),
                 "\\ufffd\\ufffd\\ufffd\\ufffd");           /* above U+10FFFF */
    ASSERT_STREQ(esc("ok\xe6\x97", 4), "ok\\ufffd\\ufffd"); /* truncated */
    ASSERT_STREQ(esc("\xc3"
                     "A",
                     2),
                 "\\ufffdA");
}

STAGEPROF_TEST(worst_case_fits_six_times)
{
    char in[256], out[256 * 6];
    for (int i = 0; i < 256; i++)
        in[i] = (char)0x01;
    ASSERT_EQ(stageprof__json_escape(out, in, 256), 256 * 6);
}

STAGEPROF_TEST(json_str_appends_quoted)
{
    struct strbuf sb;
    stageprof__sb_init(&sb, NULL, NULL);
    stageprof__json_str(&sb, "x\"", 2);
    ASSERT_STREQ(sb.buf, "\"x\\\"\"");
    stageprof__sb_fini(&sb);
}

STAGEPROF_TEST(integers)
{
    char b[32];
    b[stageprof__fmt_u64(b, 0)] = '\0';
    ASSERT_STREQ(b, "0");
    b[stageprof__fmt_u64(b, UINT64_MAX)] = '\0';
    ASSERT_STREQ(b, "18446744073709551615");
    b[stageprof__fmt_i64(b, INT64_MIN)] = '\0';
    ASSERT_STREQ(b, "-9223372036854775808");
    b[stageprof__fmt_i64(b, -42)] = '\0';
    ASSERT_STREQ(b, "-42");
    b[stageprof__fmt_hex(b, 0)] = '\0';
    ASSERT_STREQ(b, "0");
    b[stageprof__fmt_hex(b, 255)] = '\0';
    ASSERT_STREQ(b, "ff");
    b[stageprof__fmt_hex(b, UINT64_MAX)] = '\0';
    ASSERT_STREQ(b, "ffffffffffffffff");
}

STAGEPROF_TEST(microseconds_three_decimals)
{
    char b[32];
    b[stageprof__fmt_us3(b, 0)] = '\0';
    ASSERT_STREQ(b, "0.000");
    b[stageprof__fmt_us3(b, 1)] = '\0';
    ASSERT_STREQ(b, "0.001");
    b[stageprof__fmt_us3(b, 1234567)] = '\0';
    ASSERT_STREQ(b, "1234.567");
    /* A Unix-epoch time in ns keeps every digit (a double would not). */
    b[stageprof__fmt_us3(b, 1795299757129003361ull)] = '\0';
    ASSERT_STREQ(b, "1795299757129003.361");
}

STAGEPROF_TEST(doubles_round_trip_and_specials)
{
    char b[64];
    b[stageprof__fmt_double(b, 0.25)] = '\0';
    ASSERT_STREQ(b, "0.25");
    b[stageprof__fmt_double(b, 0.1)] = '\0';
    ASSERT_STREQ(b, "0.1");
    b[stageprof__fmt_double(b, NAN)] = '\0';
    ASSERT_STREQ(b, "\"NaN\"");
    b[stageprof__fmt_double(b, -INFINITY)] = '\0';
    ASSERT_STREQ(b, "\"-Infinity\"");
    double v = 1.0 / 3.0;
    b[stageprof__fmt_double(b, v)] = '\0';
    ASSERT_TRUE(strtod(b, NULL) == v);
}

STAGEPROF_TEST_LIST(STAGEPROF_CASE(escapes_quotes_backslash_controls),
                    STAGEPROF_CASE(valid_utf8_passes_through),
                    STAGEPROF_CASE(invalid_utf8_replaced_byte_by_byte),
                    STAGEPROF_CASE(worst_case_fits_six_times),
                    STAGEPROF_CASE(json_str_appends_quoted),
                    STAGEPROF_CASE(integers),
                    STAGEPROF_CASE(microseconds_three_decimals),
                    STAGEPROF_CASE(doubles_round_trip_and_specials))
