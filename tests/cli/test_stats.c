/*
 * test_stats.c - the statistics module of `stageprof diff` (cli/stats.c).
 *
 * Known values worked by hand (quantiles, Mann-Whitney U and p, Holm),
 * the exact Mann-Whitney distribution against brute-force enumeration,
 * PRNG sanity, bad input, and the statistical bars of issue 9 measured on
 * seeded synthetic durations (normal, log-normal, bimodal): false change
 * rate of one stage and of ten under Holm, power for a 5% shift, the gate
 * on identical data, and the block bootstrap on correlated and iid runs.
 * Every simulation is seeded, so a run is reproducible; measured rates are
 * printed to stderr.
 */
#include "stats.h"

#include <math.h>

#include "test.h"

/* ------------------------------------------------------------------------
 * Synthetic durations
 */

enum dist { DIST_NORMAL, DIST_LOGNORMAL, DIST_BIMODAL, DIST_COUNT };

/* One run's duration in ms, median about 10 * @scale. */
static double draw(struct stats_rng *rng, enum dist d, double scale)
{
    switch (d) {
    case DIST_NORMAL:
        /* sd 1: a negative value is 10 sd away */
        return scale * (10.0 + stats_rng_normal(rng));
    case DIST_LOGNORMAL:
        return scale * stats_rng_lognormal(rng, log(10.0), 0.25);
    default:
        /* a fast and a slow mode, e.g. cache hit and miss */
        if (stats_rng_double(rng) < 0.7)
            return scale * stats_rng_lognormal(rng, log(10.0), 0.05);
        return scale * stats_rng_lognormal(rng, log(14.0), 0.05);
    }
}

/* Repetition-level values: each is statistic @stat of @nruns runs. */
static void gen_reps(struct stats_rng *rng, enum dist d, double scale,
                     enum stats_stat stat, size_t nreps, size_t nruns,
                     double *runs, double *out)
{
    for (size_t r = 0; r < nreps; r++) {
        for (size_t i = 0; i < nruns; i++)
            runs[i] = draw(rng, d, scale);
        /* @runs is its own scratch: it is not needed afterwards */
        ASSERT_EQ(stats_stat_eval(stat, runs, nruns, runs, &out[r]), 0);
    }
}

/* ------------------------------------------------------------------------
 * Known values
 */

STAGEPROF_TEST(quantile_known_values)
{
    /*
     * {3, 1, 4, 1, 5} sorted is {1, 1, 3, 4, 5}, n = 5, h = 4q:
     * q = 0.5: h = 2, x(2) = 3. q = 0.25: h = 1, x(1) = 1.
     * q = 0.9: h = 3.6, 4 + 0.6 (5 - 4) = 4.6. q = 0.95: h = 3.8, 4.8.
     * q = 0: 1, q = 1: 5.
     */
    const double x[] = {3, 1, 4, 1, 5};
    double s[5], v;
    ASSERT_EQ(stats_median(x, 5, s, &v), 0);
    ASSERT_DBL_NEAR(v, 3, 0);
    ASSERT_EQ(stats_quantile(x, 5, 0.25, s, &v), 0);
    ASSERT_DBL_NEAR(v, 1, 0);
    ASSERT_EQ(stats_quantile(x, 5, 0.9, s, &v), 0);
    ASSERT_DBL_NEAR(v, 4.6, 1e-12);
    ASSERT_EQ(stats_quantile(x, 5, 0.95, NULL, &v), 0);
    ASSERT_DBL_NEAR(v, 4.8, 1e-12);
    ASSERT_EQ(stats_quantile(x, 5, 0, s, &v), 0);
    ASSERT_DBL_NEAR(v, 1, 0);
    ASSERT_EQ(stats_quantile(x, 5, 1, s, &v), 0);
    ASSERT_DBL_NEAR(v, 5, 0);
    /* The input is untouched. */
    ASSERT_DBL_NEAR(x[0], 3, 0);

    /*
     * {2, 8, 4, 6} sorted {2, 4, 6, 8}, h = 3q: median h = 1.5,
     * 4 + 0.5 (6 - 4) = 5; q = 0.1: h = 0.3, 2 + 0.3 * 2 = 2.6;
     * mean 5; p99: h = 2.97, 6 + 0.97 * 2 = 7.94.
     */
    const double y[] = {2, 8, 4, 6};
    double t[4];
    ASSERT_EQ(stats_median(y, 4, t, &v), 0);
    ASSERT_DBL_NEAR(v, 5, 1e-12);
    ASSERT_EQ(stats_quantile(y, 4, 0.1, t, &v), 0);
    ASSERT_DBL_NEAR(v, 2.6, 1e-12);
    ASSERT_EQ(stats_stat_eval(STATS_STAT_MEAN, y, 4, NULL, &v), 0);
    ASSERT_DBL_NEAR(v, 5, 0);
    ASSERT_EQ(stats_stat_eval(STATS_STAT_P99, y, 4, t, &v), 0);
    ASSERT_DBL_NEAR(v, 7.94, 1e-12);

    /* One value is every quantile of itself. */
    const double one = 7;
    ASSERT_EQ(stats_quantile(&one, 1, 0.3, NULL, &v), 0);
    ASSERT_DBL_NEAR(v, 7, 0);
}

/* Selection against a full sort, on sizes and patterns that reach the
 * partitioning (more than the insertion-sort cut) and many ties. */
STAGEPROF_TEST(quantile_matches_sort)
{
    struct stats_rng rng;
    stats_rng_seed(&rng, 11);
    double x[300], s[300], sorted[300];
    for (int trial = 0; trial < 200; trial++) {
        size_t n = 1 + (size_t)stats_rng_below(&rng, 300);
        int ties = trial % 3 == 0;
        for (size_t i = 0; i < n; i++)
            x[i] = ties ? (double)stats_rng_below(&rng, 5)
                        : stats_rng_normal(&rng);
        if (trial % 7 == 0) /* already sorted: a classic bad case */
            for (size_t i = 0; i < n; i++)
                x[i] = (double)i;
        memcpy(sorted, x, n * sizeof *x);
        for (size_t i = 1; i < n; i++) /* insertion sort, obviously right */
            for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
                double tmp = sorted[j];
                sorted[j] = sorted[j - 1];
                sorted[j - 1] = tmp;
            }
        const double qs[] = {0, 0.01, 0.25, 0.5, 0.95, 0.99, 1};
        for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
            double h = (double)(n - 1) * qs[k], v;
            size_t lo = (size_t)h;
            double want = lo + 1 < n
                              ? sorted[lo] + (h - (double)lo) *
                                                 (sorted[lo + 1] - sorted[lo])
                              : sorted[lo];
            ASSERT_EQ(stats_quantile(x, n, qs[k], s, &v), 0);
            ASSERT_DBL_NEAR(v, want, 1e-12);
        }
    }
}

STAGEPROF_TEST(mann_whitney_known_values)
{
    struct stats_mw mw;
    /* Complete separation, 3 vs 3: U = 0; P(U = 0) = 1 / C(6,3) = 1/20,
     * two-sided p = 2/20 = 0.1. */
    const double a[] = {1, 2, 3}, b[] = {4, 5, 6};
    ASSERT_EQ(stats_mann_whitney(a, 3, b, 3, &mw), 0);
    ASSERT_DBL_NEAR(mw.u, 0, 0);
    ASSERT_DBL_NEAR(mw.p, 0.1, 1e-12);
    ASSERT_EQ(mw.exact, 1);
    /* Swapped: U of the first side is 3 * 3 = 9, same p. */
    ASSERT_EQ(stats_mann_whitney(b, 3, a, 3, &mw), 0);
    ASSERT_DBL_NEAR(mw.u, 9, 0);
    ASSERT_DBL_NEAR(mw.p, 0.1, 1e-12);

    /*
     * a = {1, 2, 4}, b = {3, 5, 6}: only 4 > 3, U = 1. Null counts of U
     * for 3 vs 3 (partitions in a 3x3 box): 1 1 2 3 3 3 3 2 1 1, so
     * P(U <= 1) = 2/20 and p = 0.2.
     */
    const double c[] = {1, 2, 4}, d[] = {3, 5, 6};
    ASSERT_EQ(stats_mann_whitney(c, 3, d, 3, &mw), 0);
    ASSERT_DBL_NEAR(mw.u, 1, 0);
    ASSERT_DBL_NEAR(mw.p, 0.2, 1e-12);
    double p;
    ASSERT_EQ(stats_mw_exact_p(3, 3, 3, &p), 0); /* 2 (1+1+2+3)/20 */
    ASSERT_DBL_NEAR(p, 0.7, 1e-12);
    ASSERT_EQ(stats_mw_exact_p(3, 3, 4.5, &p), 0); /* the centre */
    ASSERT_DBL_NEAR(p, 1, 0);

    /*
     * Ties: a = {1, 2, 2}, b = {2, 3, 4}. The three 2s share ranks 2..4,
     * midrank 3; rank sum of a = 1 + 3 + 3 = 7, U = 7 - 3*4/2 = 1 (the
     * same as 0 pairs a > b plus half of the two ties). Tie term: one
     * group of 3, 3^3 - 3 = 24. N = 6: sigma^2 = 9/12 (7 - 24/30) = 4.65;
     * z = (|1 - 4.5| - 0.5) / sqrt(4.65) = 1.39122; p = erfc(z / sqrt 2)
     * = 0.164160 (python: math.erfc(3 / math.sqrt(4.65) / math.sqrt(2))).
     */
    const double e[] = {1, 2, 2}, f[] = {2, 3, 4};
    ASSERT_EQ(stats_mann_whitney(e, 3, f, 3, &mw), 0);
    ASSERT_DBL_NEAR(mw.u, 1, 0);
    ASSERT_EQ(mw.exact, 0);
    ASSERT_DBL_NEAR(mw.p, 0.164160, 1e-6);
    ASSERT_DBL_NEAR(stats_mw_normal_p(3, 3, 1, 24), mw.p, 0);
}

/* The exact p against enumeration of every way to split ranks 1..N into
 * the two sides, for all sizes up to 6 x 8. */
STAGEPROF_TEST(mann_whitney_exact_vs_enumeration)
{
    for (size_t n1 = 1; n1 <= 6; n1++) {
        for (size_t n2 = 1; n2 <= 8; n2++) {
            size_t nn = n1 + n2, mn = n1 * n2;
            double count[6 * 8 + 1] = {0}, total = 0;
            for (unsigned mask = 0; mask < (1u << nn); mask++) {
                size_t ones = 0;
                for (unsigned m = mask; m; m >>= 1)
                    ones += m & 1;
                if (ones != n1)
                    continue;
                /* U of side 1: pairs where its rank is above side 2's */
                size_t u = 0, below = 0;
                for (size_t r = 0; r < nn; r++) {
                    if (mask >> r & 1)
                        u += below;
                    else
                        below++;
                }
                count[u]++;
                total++;
            }
            for (size_t u = 0; u <= mn; u++) {
                size_t small = u < mn - u ? u : mn - u;
                double tail = 0;
                for (size_t k = 0; k <= small; k++)
                    tail += count[k];
                double want = fmin(1.0, 2 * tail / total), p;
                ASSERT_EQ(stats_mw_exact_p(n1, n2, (double)u, &p), 0);
                ASSERT_DBL_NEAR(p, want, 1e-12);
            }
        }
    }
}

/* For 20 vs 20 (the largest exact size) the normal approximation with
 * continuity correction is within 0.005 of the exact p across the range. */
STAGEPROF_TEST(mann_whitney_normal_close_to_exact)
{
    double worst = 0;
    for (size_t u = 0; u <= 200; u += 5) {
        double exact;
        ASSERT_EQ(stats_mw_exact_p(20, 20, (double)u, &exact), 0);
        double approx = stats_mw_normal_p(20, 20, (double)u, 0);
        worst = fmax(worst, fabs(exact - approx));
        ASSERT_DBL_NEAR(approx, exact, 0.005);
    }
    double p110;
    ASSERT_EQ(stats_mw_exact_p(20, 20, 110, &p110), 0);
    fprintf(stderr,
            "MW 20 vs 20: max |exact - normal| = %.5f; p(U=110): exact "
            "%.5f normal %.5f\n",
            worst, p110, stats_mw_normal_p(20, 20, 110, 0));
    /* Above the cut the test switches to the approximation. */
    double a[21], b[21];
    for (int i = 0; i < 21; i++) {
        a[i] = i;
        b[i] = i + 100;
    }
    struct stats_mw mw;
    ASSERT_EQ(stats_mann_whitney(a, 21, b, 21, &mw), 0);
    ASSERT_EQ(mw.exact, 0);
    ASSERT_TRUE(mw.p < 1e-6);
    ASSERT_EQ(stats_mann_whitney(a, 20, b, 20, &mw), 0);
    ASSERT_EQ(mw.exact, 1);
}

STAGEPROF_TEST(holm_known_values)
{
    /*
     * p = {0.01, 0.04, 0.03, 0.005, 0.5}, m = 5. Ascending: 0.005 (i3),
     * 0.01 (i0), 0.03 (i2), 0.04 (i1), 0.5 (i4); times 5, 4, 3, 2, 1:
     * 0.025, 0.04, 0.09, 0.08, 0.5; running max: 0.025, 0.04, 0.09,
     * 0.09, 0.5. At alpha 0.05 Holm rejects the first two and stops at
     * 0.03 * 3 = 0.09; 0.04 * 2 = 0.08 is lifted to 0.09 by the running
     * maximum (the step-down never resumes).
     */
    const double p[] = {0.01, 0.04, 0.03, 0.005, 0.5};
    const double want[] = {0.04, 0.09, 0.09, 0.025, 0.5};
    double adj[5];
    ASSERT_EQ(stats_holm(p, 5, adj), 0);
    for (int i = 0; i < 5; i++)
        ASSERT_DBL_NEAR(adj[i], want[i], 1e-12);
    /* In place; ties adjusted alike: {0.2, 0.2, 0.9} gives 0.6, max(0.4,
     * 0.6), 0.9. Capped: {0.5, 0.9} gives min(1, 1.0), max(0.9, 1). */
    double q[] = {0.2, 0.2, 0.9};
    ASSERT_EQ(stats_holm(q, 3, q), 0);
    ASSERT_DBL_NEAR(q[0], 0.6, 1e-12);
    ASSERT_DBL_NEAR(q[1], 0.6, 1e-12);
    ASSERT_DBL_NEAR(q[2], 0.9, 1e-12);
    double cap[] = {0.9, 0.5};
    ASSERT_EQ(stats_holm(cap, 2, cap), 0);
    ASSERT_DBL_NEAR(cap[0], 1, 0);
    ASSERT_DBL_NEAR(cap[1], 1, 0);
    ASSERT_EQ(stats_holm(NULL, 0, NULL), 0);
    const double bad[] = {0.1, NAN};
    ASSERT_EQ(stats_holm(bad, 2, adj), STATS_EINVAL);
    const double neg[] = {-0.1};
    ASSERT_EQ(stats_holm(neg, 1, adj), STATS_EINVAL);
}

/* ------------------------------------------------------------------------
 * PRNG
 */

STAGEPROF_TEST(rng_sanity)
{
    struct stats_rng r1, r2;
    stats_rng_seed(&r1, 42);
    stats_rng_seed(&r2, 42);
    for (int i = 0; i < 100; i++)
        ASSERT_UEQ(stats_rng_u64(&r1), stats_rng_u64(&r2));
    stats_rng_seed(&r2, 43);
    ASSERT_TRUE(stats_rng_u64(&r1) != stats_rng_u64(&r2));
    stats_rng_seed(&r1, 0); /* seed 0 is a stream like any other */
    stats_rng_seed(&r2, 1);
    ASSERT_TRUE(stats_rng_u64(&r1) != stats_rng_u64(&r2));

    /* 100k normals: mean sd 0.0032, variance sd 0.0045. */
    const int n = 100000;
    stats_rng_seed(&r1, 7);
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++) {
        double z = stats_rng_normal(&r1);
        sum += z;
        sq += z * z;
    }
    double mean = sum / n, var = sq / n - mean * mean;
    fprintf(stderr, "100k normals: mean %.5f variance %.5f\n", mean, var);
    ASSERT_DBL_NEAR(mean, 0, 0.015);
    ASSERT_DBL_NEAR(var, 1, 0.025);

    /* Uniform doubles in [0, 1). */
    double lo = 1, hi = 0;
    sum = 0;
    for (int i = 0; i < n; i++) {
        double u = stats_rng_double(&r1);
        lo = fmin(lo, u);
        hi = fmax(hi, u);
        sum += u;
    }
    ASSERT_TRUE(lo >= 0 && hi < 1);
    ASSERT_DBL_NEAR(sum / n, 0.5, 0.005);

    /* Log-normal median exp(mu). */
    static double ln[100000];
    for (int i = 0; i < n; i++)
        ln[i] = stats_rng_lognormal(&r1, log(10.0), 0.08);
    double med;
    ASSERT_EQ(stats_median(ln, (size_t)n, NULL, &med), 0);
    ASSERT_DBL_NEAR(med, 10, 0.02);

    /* Bounded integers: in range, and uniform by a chi-square test over
     * 10 cells (9 df; 99.9% point 27.9). */
    long cells[10] = {0};
    for (int i = 0; i < n; i++) {
        uint64_t k = stats_rng_below(&r1, 10);
        ASSERT_TRUE(k < 10);
        cells[k]++;
    }
    double chi2 = 0;
    for (int k = 0; k < 10; k++)
        chi2 += (cells[k] - n / 10.0) * (cells[k] - n / 10.0) / (n / 10.0);
    fprintf(stderr, "below(10) x 100k: chi-square %.2f (9 df)\n", chi2);
    ASSERT_TRUE(chi2 < 27.9);
    for (int i = 0; i < 1000; i++) {
        ASSERT_UEQ(stats_rng_below(&r1, 1), 0);
        /* about half of all 64-bit draws are rejected for this bound */
        uint64_t big = (UINT64_C(1) << 63) + 1;
        ASSERT_TRUE(stats_rng_below(&r1, big) < big);
    }
    /*
     * A bound where modulo bias would be gross: n = 3 * 2^62. A plain
     * x % n maps x in [n, 2^64) onto [0, 2^62) again, so a third of the
     * range would get half the draws; unbiased, it gets a third.
     */
    const uint64_t n3 = UINT64_C(3) << 62;
    int low = 0;
    for (int i = 0; i < 30000; i++) {
        uint64_t k = stats_rng_below(&r1, n3);
        ASSERT_TRUE(k < n3);
        low += k < (UINT64_C(1) << 62);
    }
    ASSERT_DBL_NEAR(low / 30000.0, 1.0 / 3.0, 0.015);
    /* A bound of 3 over 2^64 is biased by modulo only at 1e-19; here the
     * low bits just must not repeat a short cycle. */
    long c3[3] = {0};
    for (int i = 0; i < 30000; i++)
        c3[stats_rng_below(&r1, 3)]++;
    for (int k = 0; k < 3; k++)
        ASSERT_TRUE(c3[k] > 9600 && c3[k] < 10400);
}

/* ------------------------------------------------------------------------
 * Bootstrap and verdict mechanics on fixed data
 */

STAGEPROF_TEST(bootstrap_known_cases)
{
    struct stats_change ch;
    struct stats_boot_opts o = {0, 0, 1, 0};
    /*
     * a = {1, 1, 1}: every resample median is 1. b = {1, 2}: a resample
     * is {1,1}, {1,2}, {2,1} or {2,2}, medians 1, 1.5, 1.5, 2, so the
     * change is 0, 0.5 or 1 with chances 1/4, 1/2, 1/4. Point: 0.5.
     * The 2.5% and 97.5% points are then 0 and 1; at 40% confidence the
     * 30% and 70% points are both 0.5.
     */
    const double a[] = {1, 1, 1}, b[] = {1, 2};
    ASSERT_EQ(stats_boot_median_change(a, 3, b, 2, &o, &ch), 0);
    ASSERT_DBL_NEAR(ch.point, 0.5, 0);
    ASSERT_DBL_NEAR(ch.lo, 0, 0);
    ASSERT_DBL_NEAR(ch.hi, 1, 0);
    o.conf = 0.4;
    ASSERT_EQ(stats_boot_median_change(a, 3, b, 2, &o, &ch), 0);
    ASSERT_DBL_NEAR(ch.lo, 0.5, 0);
    ASSERT_DBL_NEAR(ch.hi, 0.5, 0);

    /* Same seed, same interval; another seed, another. */
    struct stats_rng rng;
    stats_rng_seed(&rng, 5);
    double x[40], y[40];
    for (int i = 0; i < 40; i++) {
        x[i] = stats_rng_lognormal(&rng, 0, 0.1);
        y[i] = stats_rng_lognormal(&rng, 0, 0.1);
    }
    struct stats_change c1, c2, c3;
    struct stats_boot_opts o1 = {0, 0, 99, 0}, o2 = {0, 0, 100, 0};
    ASSERT_EQ(stats_boot_median_change(x, 40, y, 40, &o1, &c1), 0);
    ASSERT_EQ(stats_boot_median_change(x, 40, y, 40, &o1, &c2), 0);
    ASSERT_EQ(stats_boot_median_change(x, 40, y, 40, &o2, &c3), 0);
    ASSERT_TRUE(c1.lo == c2.lo && c1.hi == c2.hi);
    ASSERT_TRUE(c1.lo != c3.lo || c1.hi != c3.hi);
    ASSERT_TRUE(c1.lo <= c1.point && c1.point <= c1.hi);

    /*
     * A circular block as long as the series is a rotation of it: every
     * resample holds the same values, so for every statistic the interval
     * collapses onto the point estimate. This checks the resample counts
     * against the direct computation.
     */
    for (int s = STATS_STAT_MEDIAN; s <= STATS_STAT_MEAN; s++) {
        struct stats_boot_opts ob = {200, 0, 3, 40};
        ASSERT_EQ(
            stats_block_boot_change(x, 40, y, 40, (enum stats_stat)s, &ob, &c1),
            0);
        double sa, sb;
        ASSERT_EQ(stats_stat_eval((enum stats_stat)s, x, 40, NULL, &sa), 0);
        ASSERT_EQ(stats_stat_eval((enum stats_stat)s, y, 40, NULL, &sb), 0);
        ASSERT_DBL_NEAR(c1.point, sb / sa - 1, 1e-12);
        ASSERT_DBL_NEAR(c1.lo, c1.point, 1e-12);
        ASSERT_DBL_NEAR(c1.hi, c1.point, 1e-12);
    }
    ASSERT_EQ(stats_block_len(1), 1);
    ASSERT_EQ(stats_block_len(8), 2);
    ASSERT_EQ(stats_block_len(125), 5);
    ASSERT_EQ(stats_block_len(1000), 10);
}

STAGEPROF_TEST(verdict_rules)
{
    /* Ten values each side, no overlap: exact p = 2 / C(20,10) ~ 1.1e-5;
     * every resample ratio lies in [12/10.9 - 1, 12.9/10 - 1] > 0. */
    double a[10], b[10];
    for (int i = 0; i < 10; i++) {
        a[i] = 10.0 + 0.1 * i;
        b[i] = 12.0 + 0.1 * i;
    }
    struct stats_compare c;
    ASSERT_EQ(stats_compare(a, 10, b, 10, NULL, &c), 0);
    ASSERT_EQ(c.verdict, STATS_SLOWER);
    ASSERT_DBL_NEAR(c.mw.p, 2.0 / 184756.0, 1e-12);
    ASSERT_TRUE(c.change.lo > 0.1 && c.change.hi < 0.29);
    ASSERT_DBL_NEAR(c.change.point, 12.45 / 10.45 - 1, 1e-12);
    ASSERT_EQ(stats_compare(b, 10, a, 10, NULL, &c), 0);
    ASSERT_EQ(c.verdict, STATS_FASTER);
    ASSERT_EQ(stats_compare(a, 10, a, 10, NULL, &c), 0);
    ASSERT_EQ(c.verdict, STATS_NO_CHANGE);
    ASSERT_STREQ(stats_verdict_name(STATS_SLOWER), "slower");
    ASSERT_STREQ(stats_verdict_name(STATS_TOO_FEW), "too few to judge");

    /*
     * The test alone is not enough. a = 1..9, 100, 100, 101..109; b =
     * 51..59, 101, 101, 151..159: b is larger in both tails, so U of a is
     * small: its 100s beat b's nine low values (18), its 101 beats nine
     * and ties two (10), 102..109 beat eleven each (88): U = 116 of 400,
     * normal approximation (ties) p = 0.024. But the medians are 100 and
     * 101 and resampled medians swing between the tails, so the interval
     * holds 0: no change.
     */
    double ta[20], tb[20];
    for (int i = 0; i < 9; i++) {
        ta[i] = 1 + i;
        tb[i] = 51 + i;
        ta[11 + i] = 101 + i;
        tb[11 + i] = 151 + i;
    }
    ta[9] = ta[10] = 100;
    tb[9] = tb[10] = 101;
    ASSERT_EQ(stats_compare(ta, 20, tb, 20, NULL, &c), 0);
    ASSERT_DBL_NEAR(c.mw.u, 116, 0);
    ASSERT_TRUE(c.mw.p < 0.05);
    ASSERT_DBL_NEAR(c.change.point, 0.01, 1e-12);
    ASSERT_TRUE(c.change.lo < 0 && c.change.hi > 0);
    ASSERT_EQ(c.verdict, STATS_NO_CHANGE);

    /* Two repetitions: too few; nothing computed, the gate cannot fire. */
    ASSERT_EQ(stats_compare(a, 2, b, 10, NULL, &c), 0);
    ASSERT_EQ(c.verdict, STATS_TOO_FEW);
    ASSERT_TRUE(isnan(c.change.lo) && isnan(c.change.hi));
    ASSERT_EQ(stats_gate_fires(&c.change, 0.05), 0);
    ASSERT_EQ(stats_gate_fires(&c.change, -0.05), 0);

    /*
     * 3 vs 3 complete separation: p = 0.1, never a change however large.
     * 4 vs 4: p = 2/70 = 0.029, a change alone, but not among ten stages:
     * Holm multiplies the smallest p by 10 (0.29).
     */
    const double a3[] = {1, 1.1, 1.2}, b3[] = {3, 3.1, 3.2};
    ASSERT_EQ(stats_compare(a3, 3, b3, 3, NULL, &c), 0);
    ASSERT_DBL_NEAR(c.mw.p, 0.1, 1e-12);
    ASSERT_EQ(c.verdict, STATS_NO_CHANGE);
    struct stats_compare fam[10];
    ASSERT_EQ(stats_compare(a, 4, b, 4, NULL, &fam[0]), 0);
    ASSERT_DBL_NEAR(fam[0].mw.p, 2.0 / 70.0, 1e-12);
    ASSERT_EQ(fam[0].verdict, STATS_SLOWER);
    for (int i = 1; i < 10; i++) /* same values both sides: p = 1 */
        ASSERT_EQ(stats_compare(a, 5, a, 5, NULL, &fam[i]), 0);
    ASSERT_EQ(stats_compare(a, 2, b, 2, NULL, &fam[9]), 0); /* too few */
    ASSERT_EQ(stats_verdicts(fam, 10, 0), 0);
    /* nine stages have a test: 9 * 2/70 */
    ASSERT_DBL_NEAR(fam[0].p_adj, 9 * 2.0 / 70.0, 1e-12);
    ASSERT_EQ(fam[0].verdict, STATS_NO_CHANGE);
    ASSERT_EQ(fam[9].verdict, STATS_TOO_FEW);
    ASSERT_DBL_NEAR(fam[9].p_adj, 1, 0);
    /* With the strong stage alone in its family it is a change again. */
    ASSERT_EQ(stats_verdicts(fam, 1, 0), 0);
    ASSERT_EQ(fam[0].verdict, STATS_SLOWER);
}

STAGEPROF_TEST(gate_rule)
{
    struct stats_change c = {0.08, 0.06, 0.10};
    ASSERT_EQ(stats_gate_fires(&c, 0.05), 1);
    ASSERT_EQ(stats_gate_fires(&c, 0.06), 0); /* touching is not beyond */
    ASSERT_EQ(stats_gate_fires(&c, 0.10), 0);
    ASSERT_EQ(stats_gate_fires(&c, -0.03), 0);
    c = (struct stats_change){0.08, 0.04, 0.12};
    ASSERT_EQ(stats_gate_fires(&c, 0.05), 0); /* point beyond, CI not */
    c = (struct stats_change){-0.05, -0.07, -0.04};
    ASSERT_EQ(stats_gate_fires(&c, -0.03), 1);
    ASSERT_EQ(stats_gate_fires(&c, -0.04), 0);
    ASSERT_EQ(stats_gate_fires(&c, 0.05), 0);
    /* Zero thresholds: the sign picks the side. */
    ASSERT_EQ(stats_gate_fires(&c, 0.0), 0);
    ASSERT_EQ(stats_gate_fires(&c, -0.0), 1);
    c = (struct stats_change){0.01, 0.005, 0.02};
    ASSERT_EQ(stats_gate_fires(&c, 0.0), 1);
    ASSERT_EQ(stats_gate_fires(&c, NAN), 0);
    ASSERT_EQ(stats_gate_fires(NULL, 0.05), 0);
}

STAGEPROF_TEST(bad_input)
{
    const double x[] = {1, 2, 3, 4};
    double v = -1, s[4];
    struct stats_change ch = {9, 9, 9};
    struct stats_mw mw;
    struct stats_compare c;

    /* n = 0 */
    ASSERT_EQ(stats_quantile(x, 0, 0.5, s, &v), STATS_ETOOFEW);
    ASSERT_EQ(stats_quantile(NULL, 0, 0.5, NULL, &v), STATS_ETOOFEW);
    ASSERT_EQ(stats_stat_eval(STATS_STAT_MEAN, x, 0, NULL, &v), STATS_ETOOFEW);
    ASSERT_EQ(stats_mann_whitney(x, 0, x, 4, &mw), STATS_ETOOFEW);
    ASSERT_EQ(stats_boot_median_change(x, 4, NULL, 0, NULL, &ch),
              STATS_ETOOFEW);
    ASSERT_EQ(stats_compare(NULL, 0, x, 4, NULL, &c), 0);
    ASSERT_EQ(c.verdict, STATS_TOO_FEW);
    /* n = 1: a quantile and a test exist, a bootstrap does not. */
    ASSERT_EQ(stats_median(x + 2, 1, NULL, &v), 0);
    ASSERT_DBL_NEAR(v, 3, 0);
    ASSERT_EQ(stats_mann_whitney(x, 1, x + 1, 1, &mw), 0);
    ASSERT_DBL_NEAR(mw.p, 1, 0);
    ASSERT_EQ(stats_boot_median_change(x, 1, x, 4, NULL, &ch), STATS_ETOOFEW);
    ASSERT_EQ(stats_block_boot_change(x, 4, x, 1, STATS_STAT_P95, NULL, &ch),
              STATS_ETOOFEW);
    ASSERT_DBL_NEAR(ch.point, 9, 0); /* untouched on error */
    ASSERT_EQ(stats_compare(x, 1, x, 1, NULL, &c), 0);
    ASSERT_EQ(c.verdict, STATS_TOO_FEW);

    /* Parameters out of range. */
    ASSERT_EQ(stats_quantile(x, 4, 1.5, s, &v), STATS_EINVAL);
    ASSERT_EQ(stats_quantile(x, 4, NAN, s, &v), STATS_EINVAL);
    ASSERT_EQ(stats_quantile(x, 4, 0.5, s, NULL), STATS_EINVAL);
    struct stats_boot_opts bad = {0, 1.0, 0, 0};
    ASSERT_EQ(stats_boot_median_change(x, 4, x, 4, &bad, &ch), STATS_EINVAL);
    ASSERT_EQ(
        stats_block_boot_change(x, 4, x, 4, (enum stats_stat)9, NULL, &ch),
        STATS_EINVAL);
    ASSERT_EQ(stats_mw_exact_p(21, 3, 0, &v), STATS_EINVAL);
    ASSERT_EQ(stats_mw_exact_p(3, 3, 10, &v), STATS_EINVAL);
    ASSERT_EQ(stats_verdicts(&c, 1, 2.0), STATS_EINVAL);

    /* All equal: no spread. MW p = 1; the interval is [0, 0], finite. */
    const double k[] = {5, 5, 5, 5, 5, 5};
    ASSERT_EQ(stats_mann_whitney(k, 6, k, 6, &mw), 0);
    ASSERT_DBL_NEAR(mw.p, 1, 0);
    ASSERT_DBL_NEAR(mw.u, 18, 0);
    ASSERT_EQ(stats_boot_median_change(k, 6, k, 6, NULL, &ch), 0);
    ASSERT_TRUE(ch.point == 0 && ch.lo == 0 && ch.hi == 0);
    ASSERT_EQ(stats_block_boot_change(k, 6, k, 6, STATS_STAT_P99, NULL, &ch),
              0);
    ASSERT_TRUE(ch.point == 0 && ch.lo == 0 && ch.hi == 0);
    ASSERT_EQ(stats_compare(k, 6, k, 6, NULL, &c), 0);
    ASSERT_EQ(c.verdict, STATS_NO_CHANGE);
    /* Each side constant, the sides apart: finite, a degenerate interval. */
    const double k2[] = {6, 6, 6, 6, 6, 6};
    ASSERT_EQ(stats_compare(k, 6, k2, 6, NULL, &c), 0);
    ASSERT_TRUE(c.change.lo == c.change.hi);
    ASSERT_DBL_NEAR(c.change.point, 0.2, 1e-12);
    ASSERT_EQ(c.verdict, STATS_SLOWER); /* normal approx: p = 0.0013 */

    /* NaN and infinity are rejected. */
    const double withnan[] = {1, NAN, 3}, withinf[] = {1, 2, INFINITY};
    ASSERT_EQ(stats_median(withnan, 3, NULL, &v), STATS_ENOTFINITE);
    ASSERT_EQ(stats_stat_eval(STATS_STAT_MEAN, withinf, 3, NULL, &v),
              STATS_ENOTFINITE);
    ASSERT_EQ(stats_mann_whitney(x, 4, withinf, 3, &mw), STATS_ENOTFINITE);
    ASSERT_EQ(stats_boot_median_change(withnan, 3, x, 4, NULL, &ch),
              STATS_ENOTFINITE);
    ASSERT_EQ(
        stats_block_boot_change(x, 4, withinf, 3, STATS_STAT_MEAN, NULL, &ch),
        STATS_ENOTFINITE);
    ASSERT_EQ(stats_compare(withnan, 3, x, 4, NULL, &c), STATS_ENOTFINITE);
    ASSERT_EQ(c.verdict, STATS_INVALID);
    ASSERT_EQ(c.status, STATS_ENOTFINITE);
    ASSERT_TRUE(isnan(c.change.point));

    /* Medians of zero (or below): no relative change. */
    const double z[] = {0, 0, 0, 1}, neg[] = {-2, -1, -1, 3};
    ASSERT_EQ(stats_boot_median_change(z, 4, x, 4, NULL, &ch), STATS_ENONPOS);
    ASSERT_EQ(stats_boot_median_change(neg, 4, x, 4, NULL, &ch), STATS_ENONPOS);
    ASSERT_EQ(stats_compare(z, 4, x, 4, NULL, &c), STATS_ENONPOS);
    ASSERT_EQ(c.verdict, STATS_INVALID);
    ASSERT_EQ(stats_gate_fires(&c.change, 0.05), 0);
    /* A positive median whose resamples can reach zero: refused too. */
    const double z2[] = {0, 0, 1, 1, 1};
    ASSERT_EQ(stats_boot_median_change(z2, 5, x, 4, NULL, &ch), STATS_ENONPOS);
    /* The new side may be zero: a change of -100%. */
    ASSERT_EQ(stats_boot_median_change(x, 4, z, 4, NULL, &ch), 0);
    ASSERT_DBL_NEAR(ch.point, -1, 0);
    /* An overflowing ratio is an error, not infinity. */
    const double tiny[] = {1e-300, 1e-300}, huge[] = {1e300, 1e300};
    ASSERT_EQ(stats_boot_median_change(tiny, 2, huge, 2, NULL, &ch),
              STATS_ERANGE);
    /* Verdicts across stages skip the invalid ones. */
    struct stats_compare fam[2];
    ASSERT_EQ(stats_compare(z, 4, x, 4, NULL, &fam[0]), STATS_ENONPOS);
    ASSERT_EQ(stats_compare(x, 4, x, 4, NULL, &fam[1]), 0);
    ASSERT_EQ(stats_verdicts(fam, 2, 0), 0);
    ASSERT_EQ(fam[0].verdict, STATS_INVALID);
    ASSERT_EQ(fam[1].verdict, STATS_NO_CHANGE);
    ASSERT_STREQ(stats_strerror(STATS_ENONPOS),
                 "base statistic is zero or negative");
}

/* ------------------------------------------------------------------------
 * The statistical bars of issue 9
 *
 * Repetition-level values are what the diff command compares: each is a
 * statistic (p50 or p95) of 100 simulated runs. Ten repetitions per side,
 * as a CI job might afford. The simulations use the production default
 * of STATS_BOOT_RESAMPLES resamples, so they measure what users get.
 */

#define SIM_RESAMPLES STATS_BOOT_RESAMPLES
#define SIM_REPS 10
#define SIM_RUNS 100

static enum stats_stat sim_stat(int i)
{
    return i % 2 ? STATS_STAT_P95 : STATS_STAT_MEDIAN;
}

/* 1000 trials for each distribution, half of them comparing p50s and
 * half p95s; each distribution must meet the bar on its own. */
STAGEPROF_TEST(identical_one_stage_false_change_rate)
{
    static const char *const names[DIST_COUNT] = {"normal", "log-normal",
                                                  "bimodal"};
    struct stats_rng rng;
    stats_rng_seed(&rng, 2024);
    double runs[SIM_RUNS], a[SIM_REPS], b[SIM_REPS];
    const int trials = 1000;
    for (int d = 0; d < DIST_COUNT; d++) {
        int changed = 0, mw_sig = 0, ci_excl = 0;
        for (int t = 0; t < trials; t++) {
            enum stats_stat st = sim_stat(t);
            gen_reps(&rng, (enum dist)d, 1.0, st, SIM_REPS, SIM_RUNS, runs, a);
            gen_reps(&rng, (enum dist)d, 1.0, st, SIM_REPS, SIM_RUNS, runs, b);
            struct stats_boot_opts o = {SIM_RESAMPLES, 0,
                                        (uint64_t)(d * trials + t), 0};
            struct stats_compare c;
            ASSERT_EQ(stats_compare(a, SIM_REPS, b, SIM_REPS, &o, &c), 0);
            ASSERT_TRUE(c.mw.exact);
            mw_sig += c.mw.p < STATS_ALPHA;
            ci_excl += c.change.lo > 0 || c.change.hi < 0;
            changed += c.verdict != STATS_NO_CHANGE;
        }
        fprintf(stderr,
                "identical %s, one stage, %d trials (%d reps x %d runs): "
                "called changed %.1f%%; MW p < 0.05 alone %.1f%%, CI "
                "excludes 0 alone %.1f%%\n",
                names[d], trials, SIM_REPS, SIM_RUNS, 100.0 * changed / trials,
                100.0 * mw_sig / trials, 100.0 * ci_excl / trials);
        ASSERT_LE(changed * 1000, 65 * trials);
    }
}

STAGEPROF_TEST(identical_ten_stages_holm_any_change_rate)
{
    struct stats_rng rng;
    stats_rng_seed(&rng, 77);
    double runs[SIM_RUNS], a[SIM_REPS], b[SIM_REPS];
    const int trials = 1000, stages = 10;
    int any = 0, any_raw = 0;
    for (int t = 0; t < trials; t++) {
        struct stats_compare c[10];
        int raw = 0;
        for (int s = 0; s < stages; s++) {
            enum dist d = (enum dist)(s % DIST_COUNT);
            enum stats_stat st = sim_stat(s / DIST_COUNT + t);
            /* stages of different speed, as in a pipeline */
            double scale = 1.0 + 0.5 * s;
            gen_reps(&rng, d, scale, st, SIM_REPS, SIM_RUNS, runs, a);
            gen_reps(&rng, d, scale, st, SIM_REPS, SIM_RUNS, runs, b);
            struct stats_boot_opts o = {SIM_RESAMPLES, 0,
                                        (uint64_t)(t * stages + s), 0};
            ASSERT_EQ(stats_compare(a, SIM_REPS, b, SIM_REPS, &o, &c[s]), 0);
            raw |= c[s].verdict != STATS_NO_CHANGE;
        }
        ASSERT_EQ(stats_verdicts(c, (size_t)stages, 0), 0);
        int hit = 0;
        for (int s = 0; s < stages; s++)
            hit |= c[s].verdict != STATS_NO_CHANGE;
        any += hit;
        any_raw += raw;
    }
    fprintf(stderr,
            "identical, %d stages, %d trials: any stage called changed "
            "%.1f%% with Holm (%.1f%% without)\n",
            stages, trials, 100.0 * any / trials, 100.0 * any_raw / trials);
    ASSERT_LE(any, 65);
    /* Without the correction the family would be wrong far more often:
     * shows Holm is what holds the rate down. */
    ASSERT_GT(any_raw, 2 * any);
}

/*
 * A real 5% shift of the median, 50 repetitions per side, log-normal run
 * durations with sigma = 0.08. Two readings:
 *  - as in real use, each repetition is the median of 100 such runs
 *    (repetition-level spread about 1%): the bar of issue 9, at least 80%
 *    called SLOWER, is asserted;
 *  - the hard one: each repetition-level value is itself log-normal with
 *    sigma = 0.08 (whole executions differing by 8%). There the test half
 *    of the rule has the power (Mann-Whitney alone: about 84%), but the
 *    median's interval excludes 0 only about 65% of the time: the sample
 *    median is about 64% as efficient as the mean on such data, and the
 *    rule needs both. 80% is out of reach for any rule that requires the
 *    median's interval to exclude 0, so this reading asserts the test's
 *    power and a floor that catches regressions, and prints the rates.
 */
STAGEPROF_TEST(shift_5pct_detected)
{
    struct stats_rng rng;
    stats_rng_seed(&rng, 5);
    enum { REPS = 50, RUNS = 100 };
    double runs[RUNS], a[REPS], b[REPS];
    const int trials = 200;
    int slower_runs = 0, slower_direct = 0, wrong = 0;
    int mw_direct = 0, ci_direct = 0;
    for (int t = 0; t < trials; t++) {
        struct stats_boot_opts o = {SIM_RESAMPLES, 0, (uint64_t)t, 0};
        struct stats_compare c;
        for (int r = 0; r < REPS; r++) {
            for (int i = 0; i < RUNS; i++)
                runs[i] = stats_rng_lognormal(&rng, log(10.0), 0.08);
            ASSERT_EQ(stats_median(runs, RUNS, runs, &a[r]), 0);
            for (int i = 0; i < RUNS; i++)
                runs[i] = stats_rng_lognormal(&rng, log(10.5), 0.08);
            ASSERT_EQ(stats_median(runs, RUNS, runs, &b[r]), 0);
        }
        ASSERT_EQ(stats_compare(a, REPS, b, REPS, &o, &c), 0);
        slower_runs += c.verdict == STATS_SLOWER;
        wrong += c.verdict == STATS_FASTER;

        for (int r = 0; r < REPS; r++) {
            a[r] = stats_rng_lognormal(&rng, log(10.0), 0.08);
            b[r] = stats_rng_lognormal(&rng, log(10.5), 0.08);
        }
        ASSERT_EQ(stats_compare(a, REPS, b, REPS, &o, &c), 0);
        slower_direct += c.verdict == STATS_SLOWER;
        mw_direct += c.mw.p < STATS_ALPHA;
        ci_direct += c.change.lo > 0;
        wrong += c.verdict == STATS_FASTER;
    }
    fprintf(stderr,
            "5%% shift, %d reps/side, %d trials: reps = median of %d runs: "
            "SLOWER %.1f%%; reps log-normal sigma 0.08: SLOWER %.1f%% (MW "
            "p < 0.05 alone %.1f%%, CI lo > 0 alone %.1f%%); FASTER %d\n",
            REPS, trials, RUNS, 100.0 * slower_runs / trials,
            100.0 * slower_direct / trials, 100.0 * mw_direct / trials,
            100.0 * ci_direct / trials, wrong);
    ASSERT_GE(slower_runs * 100, 80 * trials);
    ASSERT_GE(mw_direct * 100, 80 * trials);
    ASSERT_GE(slower_direct * 100, 55 * trials);
    ASSERT_EQ(wrong, 0);
}

/* 1000 trials for each distribution, p50s and p95s alternating. */
STAGEPROF_TEST(gate_never_fires_on_identical)
{
    struct stats_rng rng;
    stats_rng_seed(&rng, 31337);
    double runs[SIM_RUNS], a[SIM_REPS], b[SIM_REPS];
    const int trials = 1000;
    int fired = 0, fired_shift = 0, controls = 0;
    double widest = 0;
    for (int d = 0; d < DIST_COUNT; d++) {
        for (int t = 0; t < trials; t++) {
            enum stats_stat st = sim_stat(t);
            struct stats_boot_opts o = {SIM_RESAMPLES, 0,
                                        (uint64_t)(d * trials + t), 0};
            struct stats_compare c;
            gen_reps(&rng, (enum dist)d, 1.0, st, SIM_REPS, SIM_RUNS, runs, a);
            gen_reps(&rng, (enum dist)d, 1.0, st, SIM_REPS, SIM_RUNS, runs, b);
            ASSERT_EQ(stats_compare(a, SIM_REPS, b, SIM_REPS, &o, &c), 0);
            fired += stats_gate_fires(&c.change, 0.05);
            widest = fmax(widest, c.change.hi - c.change.lo);
            /* Control, on a tenth of the trials: the same gate on a real
             * 15% slowdown does fire, so the zero above means something. */
            if (t % 10 == 0) {
                gen_reps(&rng, (enum dist)d, 1.15, st, SIM_REPS, SIM_RUNS, runs,
                         b);
                ASSERT_EQ(stats_compare(a, SIM_REPS, b, SIM_REPS, &o, &c), 0);
                fired_shift += stats_gate_fires(&c.change, 0.05);
                controls++;
            }
        }
    }
    fprintf(stderr,
            "gate +5%%, identical, %d trials x %d distributions: fired %d "
            "(widest interval %.3f); on a 15%% slowdown fired %d of %d\n",
            trials, (int)DIST_COUNT, fired, widest, fired_shift, controls);
    ASSERT_EQ(fired, 0);
    ASSERT_GE(fired_shift * 10, 9 * controls);
}

/* x_t = phi x_(t-1) + sqrt(1 - phi^2) sigma e_t, durations exp(ln 10 + x),
 * started from the stationary distribution. */
static void ar1_series(struct stats_rng *rng, double phi, double sigma,
                       double *out, size_t n)
{
    double x = sigma * stats_rng_normal(rng);
    double k = sqrt(1 - phi * phi) * sigma;
    for (size_t i = 0; i < n; i++) {
        out[i] = exp(log(10.0) + x);
        x = phi * x + k * stats_rng_normal(rng);
    }
}

STAGEPROF_TEST(block_bootstrap_wider_on_correlated_runs)
{
    struct stats_rng rng;
    stats_rng_seed(&rng, 8);
    enum { N = 400 };
    double a[N], b[N];
    const int trials = 100;
    double wsum_block = 0, wsum_iid = 0;
    int wider = 0, cover_block = 0, cover_iid = 0;
    for (int t = 0; t < trials; t++) {
        ar1_series(&rng, 0.8, 0.1, a, N);
        ar1_series(&rng, 0.8, 0.1, b, N);
        enum stats_stat st = t % 2 ? STATS_STAT_MEAN : STATS_STAT_MEDIAN;
        struct stats_boot_opts blk = {SIM_RESAMPLES, 0, (uint64_t)t, 0};
        struct stats_boot_opts iid = {SIM_RESAMPLES, 0, (uint64_t)t, 1};
        struct stats_change cb, ci;
        ASSERT_EQ(stats_block_boot_change(a, N, b, N, st, &blk, &cb), 0);
        ASSERT_EQ(stats_block_boot_change(a, N, b, N, st, &iid, &ci), 0);
        ASSERT_DBL_NEAR(cb.point, ci.point, 0);
        double wb = cb.hi - cb.lo, wi = ci.hi - ci.lo;
        wsum_block += wb;
        wsum_iid += wi;
        wider += wb > wi;
        cover_block += cb.lo <= 0 && 0 <= cb.hi;
        cover_iid += ci.lo <= 0 && 0 <= ci.hi;
    }
    double ratio = wsum_block / wsum_iid;
    fprintf(stderr,
            "AR(1) phi 0.8, %d runs/side, block %zu, %d trials: mean width "
            "block/iid %.2f, block wider in %d; covers 0: block %d, iid "
            "%d\n",
            (int)N, stats_block_len(N), trials, ratio, wider, cover_block,
            cover_iid);
    ASSERT_TRUE(ratio > 1.4);
    ASSERT_GE(wider, 90);
    ASSERT_GT(cover_block, cover_iid);
}

STAGEPROF_TEST(block_bootstrap_covers_zero_on_iid)
{
    struct stats_rng rng;
    stats_rng_seed(&rng, 9);
    enum { N = 300 };
    double a[N], b[N];
    const int trials = 200;
    int covered = 0;
    for (int t = 0; t < trials; t++) {
        enum dist d = (enum dist)(t % DIST_COUNT);
        static const enum stats_stat sts[] = {STATS_STAT_MEDIAN, STATS_STAT_P95,
                                              STATS_STAT_MEAN};
        enum stats_stat st = sts[(t / DIST_COUNT) % 3];
        for (int i = 0; i < N; i++) {
            a[i] = draw(&rng, d, 1.0);
            b[i] = draw(&rng, d, 1.0);
        }
        struct stats_boot_opts o = {SIM_RESAMPLES, 0, (uint64_t)t, 0};
        struct stats_change c;
        ASSERT_EQ(stats_block_boot_change(a, N, b, N, st, &o, &c), 0);
        covered += c.lo <= 0 && 0 <= c.hi;
    }
    fprintf(stderr,
            "identical iid runs, %d/side, block %zu, %d trials: interval "
            "covers 0 in %.1f%%\n",
            (int)N, stats_block_len(N), trials, 100.0 * covered / trials);
    ASSERT_GE(covered * 100, 90 * trials);
}

/* The four statistics from shared resamples: each interval is the one a
 * bootstrap of that statistic alone gives with the same seed (the draws do
 * not depend on the statistic). */
STAGEPROF_TEST(block_changes_share_resamples)
{
    struct stats_rng rng;
    stats_rng_seed(&rng, 77);
    double a[300], b[280];
    for (size_t i = 0; i < 300; i++)
        a[i] = stats_rng_lognormal(&rng, 3.0, 0.3);
    for (size_t i = 0; i < 280; i++)
        b[i] = stats_rng_lognormal(&rng, 3.1, 0.3);
    const enum stats_stat all[4] = {STATS_STAT_MEAN, STATS_STAT_MEDIAN,
                                    STATS_STAT_P95, STATS_STAT_P99};
    struct stats_boot_opts o = {500, 0.0, 9, 0};
    struct stats_change many[4];
    ASSERT_EQ(stats_block_boot_changes(a, 300, b, 280, all, 4, &o, many), 0);
    for (int k = 0; k < 4; k++) {
        struct stats_change one;
        ASSERT_EQ(stats_block_boot_change(a, 300, b, 280, all[k], &o, &one), 0);
        ASSERT_TRUE(one.point == many[k].point && one.lo == many[k].lo &&
                    one.hi == many[k].hi);
        ASSERT_TRUE(many[k].lo < many[k].point && many[k].point < many[k].hi);
    }
    /* The statistics differ, so the intervals do. */
    ASSERT_TRUE(many[1].lo != many[3].lo);
    ASSERT_EQ(stats_block_boot_changes(a, 300, b, 280, all, 0, &o, many),
              STATS_EINVAL);
    ASSERT_EQ(stats_block_boot_changes(a, 1, b, 280, all, 4, &o, many),
              STATS_ETOOFEW);
}

STAGEPROF_TEST_LIST(STAGEPROF_CASE(quantile_known_values),
                    STAGEPROF_CASE(quantile_matches_sort),
                    STAGEPROF_CASE(mann_whitney_known_values),
                    STAGEPROF_CASE(mann_whitney_exact_vs_enumeration),
                    STAGEPROF_CASE(mann_whitney_normal_close_to_exact),
                    STAGEPROF_CASE(holm_known_values),
                    STAGEPROF_CASE(rng_sanity),
                    STAGEPROF_CASE(bootstrap_known_cases),
                    STAGEPROF_CASE(verdict_rules), STAGEPROF_CASE(gate_rule),
                    STAGEPROF_CASE(bad_input),
                    STAGEPROF_CASE(identical_one_stage_false_change_rate),
                    STAGEPROF_CASE(identical_ten_stages_holm_any_change_rate),
                    STAGEPROF_CASE(shift_5pct_detected),
                    STAGEPROF_CASE(gate_never_fires_on_identical),
                    STAGEPROF_CASE(block_bootstrap_wider_on_correlated_runs),
                    STAGEPROF_CASE(block_bootstrap_covers_zero_on_iid),
                    STAGEPROF_CASE(block_changes_share_resamples))
