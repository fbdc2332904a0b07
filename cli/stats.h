/*
 * stats.h - the statistics behind `stageprof diff`: a seeded PRNG, order
 * statistics, bootstrap intervals for a relative change, the Mann-Whitney U
 * test, Holm's correction, and the per-stage verdict and gate rules built
 * on them.
 *
 * The unit of inference is the repetition (one whole execution of the
 * workload): the diff command computes one value per repetition and stage
 * (its p50, p95, ...) and hands the two arrays, base `a` and new `b`, to
 * stats_compare(). With a single trace per side it falls back to
 * stats_block_boot_change() over the runs of each trace, whose interval
 * is optimistic (runs inside one execution are not independent) and must
 * be reported as such.
 *
 * Depends on libc and libm only. No global state: every random choice
 * comes from a struct stats_rng or a seed passed in, so equal inputs and
 * seeds give equal outputs. The bootstraps use only integer draws and
 * basic IEEE arithmetic, so their intervals also agree across platforms;
 * normal and log-normal deviates go through libm (log, exp) and may
 * differ in the last bits between C libraries. Functions are thread-safe
 * on distinct arguments. Inputs are borrowed and never
 * modified; NaN or infinite input values are rejected.
 *
 * Functions that can fail return 0 or a negative STATS_E* code.
 */
#ifndef STAGEPROF_CLI_STATS_H
#define STAGEPROF_CLI_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Error codes, all negative. */
enum stats_error {
    STATS_EINVAL = -1,     /* NULL pointer or parameter out of range */
    STATS_ENOTFINITE = -2, /* a NaN or infinite input value */
    STATS_ETOOFEW = -3,    /* fewer values than the method needs */
    STATS_ENONPOS = -4,    /* base statistic <= 0: no relative change */
    STATS_ERANGE = -5,     /* a result overflowed */
    STATS_ENOMEM = -6      /* allocation failed */
};

/* stats_strerror - a short English message for a STATS_E* code. */
const char *stats_strerror(int err);

/* ------------------------------------------------------------------------
 * Pseudo-random numbers
 */

/*
 * xoshiro256** (Blackman and Vigna), its 256-bit state filled from the
 * seed by splitmix64. Period 2^256 - 1, fast, passes the usual test
 * batteries; not cryptographic. Caller's storage; one generator per thread.
 */
struct stats_rng {
    uint64_t s[4]; /* private: state, never all zero */
    double spare;  /* private: second normal deviate of the polar method */
    int has_spare; /* private */
};

/* stats_rng_seed - initialise @rng; every seed (0 too) gives a stream. */
void stats_rng_seed(struct stats_rng *rng, uint64_t seed);

/* stats_rng_u64 - 64 uniformly random bits. */
uint64_t stats_rng_u64(struct stats_rng *rng);

/* stats_rng_double - uniform on [0, 1), a multiple of 2^-53. */
double stats_rng_double(struct stats_rng *rng);

/*
 * stats_rng_below - uniform integer in [0, @n), without modulo bias: draws
 * below 2^64 mod @n are rejected (fewer than one in two, usually none).
 * @n: at least 1; 0 returns 0.
 */
uint64_t stats_rng_below(struct stats_rng *rng, uint64_t n);

/*
 * stats_rng_normal - standard normal deviate, Marsaglia's polar method.
 * Deviates come in pairs; the second is kept in @rng for the next call.
 */
double stats_rng_normal(struct stats_rng *rng);

/* stats_rng_lognormal - exp(@mu + @sigma * Z): median exp(@mu). */
double stats_rng_lognormal(struct stats_rng *rng, double mu, double sigma);

/* ------------------------------------------------------------------------
 * Order statistics
 */

/*
 * stats_quantile - the @q quantile of @x[0..@n), "type 7" of Hyndman and
 * Fan (R's default, numpy's "linear"): with the values sorted x(0) <= ...
 * <= x(n-1), h = (n - 1) q, the result is x(floor h) + (h - floor h) *
 * (x(floor h + 1) - x(floor h)). So q = 0 is the minimum, q = 1 the
 * maximum, and the median of an even count is the mean of the middle two.
 * Found by selection (expected linear time), not a full sort.
 * @q: in [0, 1].
 * @scratch: @n doubles the call may overwrite, or NULL to have one
 *     allocated and freed inside; pass one in loops. It may be @x itself,
 *     which is then reordered (the one exception to "never modified").
 * @out: the quantile.
 * Returns 0, STATS_EINVAL, STATS_ETOOFEW (@n = 0), STATS_ENOTFINITE,
 * STATS_ENOMEM.
 */
int stats_quantile(const double *x, size_t n, double q, double *scratch,
                   double *out);

/* stats_median - stats_quantile() with @q = 0.5. */
int stats_median(const double *x, size_t n, double *scratch, double *out);

/* The statistic a bootstrap compares, or a repetition is reduced to. */
enum stats_stat {
    STATS_STAT_MEDIAN = 0, /* type 7 quantile 0.5 */
    STATS_STAT_P95,        /* type 7 quantile 0.95 */
    STATS_STAT_P99,        /* type 7 quantile 0.99 */
    STATS_STAT_MEAN        /* arithmetic mean */
};

/*
 * stats_stat_eval - statistic @stat of @x[0..@n); @scratch as for
 * stats_quantile() (unused for the mean). Same return codes.
 */
int stats_stat_eval(enum stats_stat stat, const double *x, size_t n,
                    double *scratch, double *out);

/* ------------------------------------------------------------------------
 * Bootstrap intervals for a relative change
 */

/* Resamples per bootstrap interval by default. With 2000 the Monte Carlo
 * error of a 2.5% / 97.5% percentile is well under its sampling error. */
#define STATS_BOOT_RESAMPLES 2000u
/* Confidence of the intervals by default. */
#define STATS_CONF 0.95

struct stats_boot_opts {
    unsigned resamples; /* 0: STATS_BOOT_RESAMPLES */
    double conf;        /* 0: STATS_CONF; else in (0, 1) */
    uint64_t seed;      /* equal seeds, equal intervals */
    size_t block_len;   /* block bootstrap only; 0: stats_block_len(n) */
};

/* A relative change new/base - 1 and its interval; +0.05 is 5% larger. */
struct stats_change {
    double point; /* on the data as given */
    double lo;    /* lower end of the percentile interval */
    double hi;    /* upper end */
};

/*
 * stats_boot_median_change - relative change of the median from @a (base)
 * to @b (new) with a percentile bootstrap interval. Each side's values
 * are resampled with replacement (same count), and median(b*)/median(a*)
 * - 1 is taken for each resample; the interval is the (1 - conf)/2 and
 * (1 + conf)/2 type 7 quantiles of those. point = median(b)/median(a) - 1.
 * Meant for repetition-level values, which are independent; the
 * percentile interval is somewhat narrow for fewer than about 10 values.
 * @opts: NULL for all defaults; block_len is ignored.
 * Allocates O(@na + @nb + resamples) once per call.
 * Returns 0, STATS_EINVAL, STATS_ETOOFEW (a side with fewer than 2
 * values), STATS_ENOTFINITE, STATS_ENONPOS (median of @a, or of a resample
 * of it, <= 0), STATS_ERANGE, STATS_ENOMEM; on error @out is untouched.
 */
int stats_boot_median_change(const double *a, size_t na, const double *b,
                             size_t nb, const struct stats_boot_opts *opts,
                             struct stats_change *out);

/*
 * stats_block_len - block length for a series of @n: round(n^(1/3)), at
 * least 1. n^(1/3) is the order that minimises the error of block
 * bootstrap variance and distribution estimates (Hall, Horowitz and Jing,
 * 1995); the constant 1 is our choice. 2 for 8 runs, 5 for 125, 10 for
 * 1000: dependence longer than that is not captured.
 */
size_t stats_block_len(size_t n);

/*
 * stats_block_boot_change - the single-trace fallback: relative change of
 * statistic @stat from series @a to series @b (one per side, durations in
 * run order) with a circular block bootstrap interval. Each resampled
 * series is made of blocks of block_len consecutive runs (wrapping at the
 * end) starting at uniformly random runs, cut to the original length;
 * the interval is the percentile interval of stat(b*)/stat(a*) - 1.
 * Blocks keep short-range dependence between neighbouring runs, so the
 * interval is wider than an iid bootstrap's on correlated series, but it
 * still only describes the noise within one execution, never between
 * executions: the interval is optimistic and the caller must say so.
 * block_len = 1 is the plain iid bootstrap.
 * @opts: NULL for all defaults.
 * Returns as stats_boot_median_change(); STATS_ENONPOS when the statistic
 * of @a or of a resample of it is <= 0.
 */
int stats_block_boot_change(const double *a, size_t na, const double *b,
                            size_t nb, enum stats_stat stat,
                            const struct stats_boot_opts *opts,
                            struct stats_change *out);

/*
 * stats_block_boot_changes - stats_block_boot_change() for @nstat (at most
 * 16) statistics at once: each resample is drawn once and every statistic
 * read from it, so the intervals share their resamples (and cost about
 * one interval's resampling). @out[k] is for @stats[k]. On an error the
 * contents of @out are unspecified.
 */
int stats_block_boot_changes(const double *a, size_t na, const double *b,
                             size_t nb, const enum stats_stat *stats,
                             size_t nstat, const struct stats_boot_opts *opts,
                             struct stats_change *out);

/* ------------------------------------------------------------------------
 * Tests
 */

/* Largest side for which the exact Mann-Whitney distribution is used. */
#define STATS_MW_EXACT_MAX 20

struct stats_mw {
    double u;  /* U of @a: pairs with a > b, plus half the pairs a == b */
    double p;  /* two-sided p-value, in [0, 1] */
    int exact; /* 1: exact distribution; 0: normal approximation */
};

/*
 * stats_mann_whitney - two-sided Mann-Whitney U (Wilcoxon rank-sum) test
 * of @a against @b: does one side tend to hold larger values? U is
 * computed with midranks for ties; U of @b is na * nb - u. Without ties
 * and with both sides at most STATS_MW_EXACT_MAX, p comes from the exact
 * null distribution (stats_mw_exact_p()); otherwise from the normal
 * approximation with tie and continuity corrections (stats_mw_normal_p()).
 * All values equal gives p = 1. With 3 values per side the smallest
 * possible p is 0.1, with 4 it is 0.029.
 * Allocates O(@na + @nb) once per call.
 * Returns 0, STATS_EINVAL, STATS_ETOOFEW (an empty side), STATS_ENOTFINITE,
 * STATS_ENOMEM.
 */
int stats_mann_whitney(const double *a, size_t na, const double *b, size_t nb,
                       struct stats_mw *out);

/*
 * stats_mw_exact_p - exact two-sided p of U = @u for sides of @n1 and @n2
 * values without ties: 2 P(U <= min(u, n1 n2 - u)), at most 1. The null
 * counts of U are the coefficients of the Gaussian binomial coefficient
 * [n1 + n2 choose n1]_q, built by polynomial products in integers.
 * Returns 0, STATS_EINVAL (a side of 0 or above STATS_MW_EXACT_MAX, @u
 * outside [0, n1 n2]).
 */
int stats_mw_exact_p(size_t n1, size_t n2, double u, double *p);

/*
 * stats_mw_normal_p - two-sided p of U = @u by the normal approximation:
 * z = (|u - n1 n2 / 2| - 1/2) / sigma, floored at 0, with sigma^2 =
 * n1 n2 / 12 * ((N + 1) - @ties / (N (N - 1))), N = n1 + n2 and @ties the
 * sum of t^3 - t over groups of t tied values (0 without ties). p =
 * erfc(z / sqrt 2); 1 when sigma is 0.
 */
double stats_mw_normal_p(size_t n1, size_t n2, double u, double ties);

/*
 * stats_holm - Holm-Bonferroni adjusted p-values of @p[0..@m): with the
 * p sorted ascending p(1) <= ... <= p(m), adj(i) = min(1, max over j <= i
 * of (m - j + 1) p(j)), written back in the input order to @adj (may be
 * @p). "adj[i] < alpha" is then exactly Holm's step-down rejection at
 * level alpha, which holds the family-wise error rate at alpha for any
 * dependence between the tests.
 * Returns 0, STATS_EINVAL (NULL, or a p outside [0, 1] or NaN),
 * STATS_ENOMEM.
 */
int stats_holm(const double *p, size_t m, double *adj);

/* ------------------------------------------------------------------------
 * Verdicts and gates
 */

/* Fewest repetitions per side for a verdict. */
#define STATS_MIN_REPS 3
/* Level of the verdicts, after Holm's correction. */
#define STATS_ALPHA 0.05

enum stats_verdict {
    STATS_NO_CHANGE = 0, /* no change beyond noise */
    STATS_SLOWER,        /* new is larger */
    STATS_FASTER,        /* new is smaller */
    STATS_TOO_FEW,       /* fewer than STATS_MIN_REPS on a side */
    STATS_INVALID        /* the comparison failed; status says why */
};

/* stats_verdict_name - "no change", "slower", "faster", "too few to
 * judge", "invalid". */
const char *stats_verdict_name(enum stats_verdict v);

/* One stage (and statistic) compared across repetitions. */
struct stats_compare {
    size_t na, nb;              /* repetitions per side */
    struct stats_change change; /* median change and bootstrap interval */
    struct stats_mw mw;         /* test on the repetition-level values */
    double p_adj;               /* mw.p after Holm (stats_verdicts()) */
    enum stats_verdict verdict;
    int status; /* 0, or the STATS_E* code that made it STATS_INVALID */
};

/*
 * stats_compare - compare one stage's repetition-level values @a (base)
 * and @b (new): stats_boot_median_change() and stats_mann_whitney(), and
 * the verdict for this stage alone (p_adj = mw.p), which stats_verdicts()
 * revises across stages.
 *
 * The rule: a stage has changed iff its Holm-adjusted Mann-Whitney p is
 * below STATS_ALPHA AND the bootstrap interval of the median change
 * excludes 0. The test controls how often noise is called a change; the
 * interval makes the verdict agree with the number shown beside it. The
 * direction is the sign of the point estimate: SLOWER iff point > 0 and
 * lo > 0, FASTER iff point < 0 and hi < 0 (values are durations).
 *
 * With fewer than STATS_MIN_REPS values on a side the verdict is
 * STATS_TOO_FEW, mw.p and p_adj are 1 and the change fields are NaN (so
 * stats_gate_fires() never fires on it); 0 is returned.
 * @opts: NULL for the defaults; the diff command passes a fixed seed.
 * Returns 0, or STATS_EINVAL for NULL arguments; for a failure of the
 * methods (e.g. STATS_ENONPOS, STATS_ENOTFINITE) it returns the code and
 * also fills @out with verdict STATS_INVALID, status the code and the
 * change fields NaN.
 */
int stats_compare(const double *a, size_t na, const double *b, size_t nb,
                  const struct stats_boot_opts *opts,
                  struct stats_compare *out);

/*
 * stats_verdicts - the verdicts of @m stages compared with stats_compare():
 * Holm's correction over the stages that have a test (not TOO_FEW, not
 * INVALID), then the rule of stats_compare() with the adjusted p.
 * @alpha: 0 for STATS_ALPHA.
 * Returns 0, STATS_EINVAL, STATS_ENOMEM (nothing changed then).
 */
int stats_verdicts(struct stats_compare *c, size_t m, double alpha);

/*
 * stats_gate_fires - does a `--fail-on` rule with relative @threshold
 * fire on @c? It fires iff the whole interval lies beyond the threshold:
 * lo > threshold for a positive one (+0.05 is "+5%": slower by more than
 * 5%), hi < threshold for a negative one (-0.03: dropped by more than 3%).
 * The sign of a zero threshold picks the side (+0.0 or -0.0). Noise alone
 * cannot fire it unless the interval misses. Never fires on NaN.
 * Returns 1 or 0.
 */
int stats_gate_fires(const struct stats_change *c, double threshold);

#endif /* STAGEPROF_CLI_STATS_H */
