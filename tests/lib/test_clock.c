/*
 * test_clock.c - when the TSC is trusted, and the piecewise-linear mapping
 * from ticks to CLOCK_MONOTONIC nanoseconds.
 */
#include <time.h>

#include "helpers.h"

static const char *const CPU_OK =
    "processor\t: 0\nvendor_id\t: GenuineIntel\n"
    "flags\t\t: fpu tsc msr constant_tsc rep_good nopl nonstop_tsc cpuid\n"
    "bogomips\t: 5200.00\n";

STAGEPROF_TEST(tsc_trust_rules)
{
    const char *why;
    ASSERT_EQ(stageprof__clock_tsc_trusted(CPU_OK, "tsc\n", &why), 1);
    ASSERT_NULL(why);
    ASSERT_EQ(stageprof__clock_tsc_trusted(CPU_OK, "kvm-clock\n", &why), 0);
    ASSERT_CONTAINS(why, "clocksource");
    ASSERT_EQ(stageprof__clock_tsc_trusted(CPU_OK, "tsc-early", &why), 0);
    ASSERT_EQ(stageprof__clock_tsc_trusted(CPU_OK, NULL, &why), 0);
    ASSERT_EQ(stageprof__clock_tsc_trusted("flags\t: fpu tsc constant_tsc\n",
                                           "tsc", &why),
              0);
    ASSERT_CONTAINS(why, "nonstop_tsc");
    ASSERT_EQ(stageprof__clock_tsc_trusted("flags\t: fpu tsc nonstop_tsc\n",
                                           "tsc", &why),
              0);
    ASSERT_CONTAINS(why, "constant_tsc");
    /* A flag name inside a longer word does not count. */
    ASSERT_EQ(stageprof__clock_tsc_trusted(
                  "flags\t: xconstant_tsc nonstop_tscx\n", "tsc", &why),
              0);
    ASSERT_EQ(stageprof__clock_tsc_trusted("", "tsc", &why), 0);
    ASSERT_EQ(stageprof__clock_tsc_trusted(NULL, "tsc", &why), 0);
}

STAGEPROF_TEST(piecewise_mapping)
{
    /* Three anchors: 1 tick = 1 ns, then 1 tick = 2 ns. */
    struct clock_anchor a[3] = {{1000, 5000}, {2000, 6000}, {3000, 8000}};
    struct clock_map m;
    memset(&m, 0, sizeof m);
    m.mode = CLOCK_MODE_TSC;
    m.a = a;
    m.n = 3;
    m.seg = -1;
    m.default_mult = 1ull << 32;
    ASSERT_UEQ(stageprof__clock_map_ns(&m, 1000), 5000);
    ASSERT_UEQ(stageprof__clock_map_ns(&m, 1500), 5500);
    ASSERT_UEQ(stageprof__clock_map_ns(&m, 2000), 6000);
    ASSERT_UEQ(stageprof__clock_map_ns(&m, 2500), 7000);
    /* Out of order look-ups re-seek the segment. */
    ASSERT_UEQ(stageprof__clock_map_ns(&m, 1999), 5999);
    /* Past the last anchor the last slope goes on. */
    ASSERT_UEQ(stageprof__clock_map_ns(&m, 4000), 10000);
    /* Before the first, the calibrated slope backwards. */
    ASSERT_UEQ(stageprof__clock_map_ns(&m, 900), 4900);
    ASSERT_UEQ(stageprof__clock_map_ns(&m, 0), 4000);
}

STAGEPROF_TEST(mapping_identity_without_tsc)
{
    struct clock_map m;
    memset(&m, 0, sizeof m);
    m.mode = CLOCK_MODE_MONO;
    ASSERT_UEQ(stageprof__clock_map_ns(&m, 123456789), 123456789);
}

STAGEPROF_TEST(monotonic_requested)
{
    const char *why;
    ASSERT_EQ(stageprof__clock_open(STAGEPROF_CLOCK_MONOTONIC, &why), 0);
    ASSERT_STREQ(stageprof__clock_name(), "monotonic");
    ASSERT_CONTAINS(why, "requested");
    uint64_t t = stageprof__clock_slow_ticks();
    ASSERT_TRUE(t > 0);
    ASSERT_UEQ(stageprof__clock_to_ns(t), t);
    stageprof__clock_close();
}

STAGEPROF_TEST(tsc_follows_monotonic)
{
    const char *why;
    ASSERT_EQ(stageprof__clock_open(STAGEPROF_CLOCK_AUTO, &why), 0);
    if (strcmp(stageprof__clock_name(), "tsc") != 0)
        STAGEPROF_SKIP(why ? why : "TSC not trusted on this machine");
    ASSERT_TRUE(stageprof__clock_tsc_hz() > 1e8);
    /* A TSC reading converted must land between two monotonic readings
     * taken around it (allowing the calibration's error, 20 µs). */
    for (int i = 0; i < 5; i++) {
        struct timespec pause = {0, 30 * 1000 * 1000};
        nanosleep(&pause, NULL);
        uint64_t before = stageprof__clock_mono_ns();
        uint64_t ticks = __builtin_ia32_rdtsc();
        uint64_t after = stageprof__clock_mono_ns();
        uint64_t ns = stageprof__clock_to_ns(ticks);
        ASSERT_TRUE(ns + 20000 >= before);
        ASSERT_TRUE(ns <= after + 20000);
    }
    int n = stageprof__clock_anchor_count();
    ASSERT_GE(n, 2);
    stageprof__clock_close();
}

STAGEPROF_TEST(fake_clock_hook)
{
    stageprof__clock_set_fake(fake_clock);
    ASSERT_STREQ(stageprof__clock_name(), "fake");
    uint64_t a = stageprof_now_ns();
    uint64_t b = stageprof_now_ns();
    ASSERT_UEQ(b - a, 1000);
    stageprof__clock_set_fake(NULL);
    ASSERT_STREQ(stageprof__clock_name(), "monotonic");
}

STAGEPROF_TEST_LIST(STAGEPROF_CASE(tsc_trust_rules),
                    STAGEPROF_CASE(piecewise_mapping),
                    STAGEPROF_CASE(mapping_identity_without_tsc),
                    STAGEPROF_CASE(monotonic_requested),
                    STAGEPROF_CASE(tsc_follows_monotonic),
                    STAGEPROF_CASE(fake_clock_hook))
