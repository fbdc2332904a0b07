/*
 * test.h - the whole unit-test harness.
 *
 * A test file defines cases with STAGEPROF_TEST(name) { ... } and ends with a
 * case table:
 *
 *     STAGEPROF_TEST_LIST(
 *         STAGEPROF_CASE(first_case),
 *         STAGEPROF_CASE(second_case))
 *
 * which expands to main(). `prog NAME` runs one case, `prog` runs all of them
 * in order. CMake (cmake/stageprof_tests.cmake) scans each file for
 * STAGEPROF_TEST( and registers every case as its own CTest test, so a crash
 * or a hang is isolated to its case.
 *
 * Assertions print the expression and both operand values, then exit 1.
 * STAGEPROF_SKIP(reason) exits 77, which CTest reports as skipped.
 */
#ifndef STAGEPROF_TEST_H
#define STAGEPROF_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*stageprof_test_fn)(void);

struct stageprof_test_case {
    const char *name;
    stageprof_test_fn fn;
};

#define STAGEPROF_TEST(name) static void test_##name(void)
#define STAGEPROF_CASE(name)                                                   \
    {                                                                          \
#name, test_##name                                                     \
    }

#define TEST_FAIL_(fmt, ...)                                                   \
    do {                                                                       \
        fprintf(stderr, "%s:%d: " fmt "\n", __FILE__, __LINE__, __VA_ARGS__);  \
        exit(1);                                                               \
    } while (0)

#define ASSERT_CMP_INT_(a, op, b)                                              \
    do {                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                    \
        if (!(a_ op b_))                                                       \
            TEST_FAIL_("assertion failed: %s %s %s (%lld %s %lld)", #a, #op,   \
                       #b, a_, #op, b_);                                       \
    } while (0)

#define ASSERT_EQ(a, b) ASSERT_CMP_INT_(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_CMP_INT_(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_CMP_INT_(a, <, b)
#define ASSERT_LE(a, b) ASSERT_CMP_INT_(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_CMP_INT_(a, >, b)
#define ASSERT_GE(a, b) ASSERT_CMP_INT_(a, >=, b)

#define ASSERT_UEQ(a, b)                                                       \
    do {                                                                       \
        unsigned long long a_ = (unsigned long long)(a);                       \
        unsigned long long b_ = (unsigned long long)(b);                       \
        if (a_ != b_)                                                          \
            TEST_FAIL_("assertion failed: %s == %s (%llu != %llu)", #a, #b,    \
                       a_, b_);                                                \
    } while (0)

#define ASSERT_TRUE(e)                                                         \
    do {                                                                       \
        if (!(e))                                                              \
            TEST_FAIL_("assertion failed: %s", #e);                            \
    } while (0)

#define ASSERT_NULL(p) ASSERT_TRUE((p) == NULL)
#define ASSERT_NOT_NULL(p) ASSERT_TRUE((p) != NULL)

#define ASSERT_DBL_NEAR(a, b, eps)                                             \
    do {                                                                       \
        double a_ = (a), b_ = (b);                                             \
        if (!(a_ - b_ <= (eps) && b_ - a_ <= (eps)))                           \
            TEST_FAIL_("assertion failed: %s ~= %s (%.9g vs %.9g)", #a, #b,    \
                       a_, b_);                                                \
    } while (0)

#define ASSERT_STREQ(a, b)                                                     \
    do {                                                                       \
        const char *a_ = (a), *b_ = (b);                                       \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                   \
            TEST_FAIL_("assertion failed: %s == %s (\"%s\" != \"%s\")", #a,    \
                       #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");            \
    } while (0)

/* Substring check: haystack contains needle. */
#define ASSERT_CONTAINS(hay, needle)                                           \
    do {                                                                       \
        const char *h_ = (hay), *n_ = (needle);                                \
        if (h_ == NULL || strstr(h_, n_) == NULL)                              \
            TEST_FAIL_(                                                        \
                "assertion failed: %s contains \"%s\" (got \"%.400s\")", #hay, \
                n_, h_ ? h_ : "(null)");                                       \
    } while (0)

#define STAGEPROF_SKIP(reason)                                                 \
    do {                                                                       \
        fprintf(stderr, "SKIP: %s\n", reason);                                 \
        exit(77);                                                              \
    } while (0)

#define STAGEPROF_TEST_LIST(...)                                               \
    static const struct stageprof_test_case stageprof_test_cases_[] = {        \
        __VA_ARGS__};                                                          \
    int main(int argc, char **argv)                                            \
    {                                                                          \
        size_t n_ =                                                            \
            sizeof stageprof_test_cases_ / sizeof stageprof_test_cases_[0];    \
        for (size_t i_ = 0; i_ < n_; i_++) {                                   \
            if (argc > 1 && strcmp(argv[1], stageprof_test_cases_[i_].name))   \
                continue;                                                      \
            stageprof_test_cases_[i_].fn();                                    \
            if (argc > 1)                                                      \
                return 0;                                                      \
        }                                                                      \
        if (argc > 1) {                                                        \
            fprintf(stderr, "no test case named %s\n", argv[1]);               \
            return 2;                                                          \
        }                                                                      \
        return 0;                                                              \
    }

#endif /* STAGEPROF_TEST_H */
