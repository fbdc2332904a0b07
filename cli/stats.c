/*
 * stats.c - the statistics of `stageprof diff` (see stats.h).
 *
 * Bootstraps never sort a resample. Each side is sorted once, remembering
 * for every input position its rank; a resample is then a vector of
 * counts over the ranks (how often each value was drawn), and a quantile
 * of the resample is read by walking the cumulative counts. That is O(n)
 * per resample, needs no allocation inside the loop, and gives exactly
 * the type 7 quantile of the resampled values. The iid bootstrap of
 * repetitions is the block bootstrap with blocks of one.
 *
 * The exact Mann-Whitney null distribution is the coefficient list of a
 * Gaussian binomial coefficient, built by multiplying and dividing
 * integer polynomials on the stack; no recursion, no table per call.
 */
#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *stats_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case STATS_EINVAL:
        return "invalid argument";
    case STATS_ENOTFINITE:
        return "input holds NaN or infinity";
    case STATS_ETOOFEW:
        return "too few values";
    case STATS_ENONPOS:
        return "base statistic is zero or negative";
    case STATS_ERANGE:
        return "result out of range";
    case STATS_ENOMEM:
        return "out of memory";
    default:
        return "unknown error";
    }
}

static void *alloc_array(size_t count, size_t size)
{
    if (count == 0)
        count = 1;
    if (count > SIZE_MAX / size)
        return NULL;
    return malloc(count * size);
}

static int all_finite(const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* ------------------------------------------------------------------------
 * Pseudo-random numbers
 */

static uint64_t rotl64(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t splitmix64_next(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

void stats_rng_seed(struct stats_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    /* splitmix64 maps a counter through a bijection, so four successive
     * outputs are distinct and at most one is zero: the state never is. */
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64_next(&x);
    rng->spare = 0;
    rng->has_spare = 0;
}

uint64_t stats_rng_u64(struct stats_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

double stats_rng_double(struct stats_rng *rng)
{
    return (double)(stats_rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t stats_rng_below(struct stats_rng *rng, uint64_t n)
{
    if (n == 0)
        return 0;
    /* 2^64 mod n, computed in 64 bits: the draws in [skip, 2^64) are a
     * whole number of runs of n, so x % n is uniform on them. */
    uint64_t skip = (0 - n) % n;
    for (;;) {
        uint64_t x = stats_rng_u64(rng);
        if (x >= skip)
            return x % n;
    }
}

double stats_rng_normal(struct stats_rng *rng)
{
    if (rng->has_spare) {
        rng->has_spare = 0;
        return rng->spare;
    }
    double u, v, s;
    do {
        u = 2.0 * stats_rng_double(rng) - 1.0;
        v = 2.0 * stats_rng_double(rng) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double f = sqrt(-2.0 * log(s) / s);
    rng->spare = v * f;
    rng->has_spare = 1;
    return u * f;
}

double stats_rng_lognormal(struct stats_rng *rng, double mu, double sigma)
{
    return exp(mu + sigma * stats_rng_normal(rng));
}

/* ------------------------------------------------------------------------
 * Order statistics
 */

/* A point between two neighbouring order statistics. The difference form
 * returns @lo itself when the two are equal; the convex form is the
 * fallback when the difference of two huge values overflows. */
static double interp(double lo, double hi, double frac)
{
    double d = hi - lo;
    if (isfinite(d))
        return lo + frac * d;
    return (1.0 - frac) * lo + frac * hi;
}

/* Type 7: the 0-based rank below the quantile and the fraction past it. */
static size_t q_rank(size_t n, double q, double *frac)
{
    double h = (double)(n - 1) * q;
    size_t r = (size_t)h;
    if (r > n - 1)
        r = n - 1;
    *frac = h - (double)r;
    return r;
}

static void swap_dbl(double *x, ptrdiff_t i, ptrdiff_t j)
{
    double t = x[i];
    x[i] = x[j];
    x[j] = t;
}

static double median3(double a, double b, double c)
{
    if (a > b) {
        double t = a;
        a = b;
        b = t;
    }
    /* now a <= b */
    if (c <= a)
        return a;
    return c < b ? c : b;
}

/*
 * Reorder @x so that x[k] holds the value of rank k, everything before it
 * is <= and everything after it >=. Hoare partitioning around the median
 * of three values (Wirth's form); small ranges finish by insertion sort.
 * Indexes are signed because the scans may step one past either end.
 */
static void select_kth(double *x, size_t n, size_t k)
{
    ptrdiff_t l = 0, r = (ptrdiff_t)n - 1, kk = (ptrdiff_t)k;
    while (l < r) {
        if (r - l < 12) {
            for (ptrdiff_t i = l + 1; i <= r; i++) {
                double v = x[i];
                ptrdiff_t j = i - 1;
                while (j >= l && x[j] > v) {
                    x[j + 1] = x[j];
                    j--;
                }
                x[j + 1] = v;
            }
            return;
        }
        /* The pivot is a value of the range, so both scans of the first
         * pass stop inside it, and every swap leaves a stopper behind. */
        double pivot = median3(x[l], x[l + (r - l) / 2], x[r]);
        ptrdiff_t i = l, j = r;
        do {
            while (x[i] < pivot)
                i++;
            while (pivot < x[j])
                j--;
            if (i <= j) {
                swap_dbl(x, i, j);
                i++;
                j--;
            }
        } while (i <= j);
        /* x[l..j] <= pivot <= x[i..r]; between them all equal pivot. */
        if (j < kk)
            l = i;
        if (kk < i)
            r = j;
    }
}

/* Type 7 quantile of @x (finite, n >= 1), reordering it. */
static double quantile_inplace(double *x, size_t n, double q)
{
    double frac;
    size_t k = q_rank(n, q, &frac);
    select_kth(x, n, k);
    if (frac <= 0.0 || k + 1 >= n)
        return x[k];
    double next = x[k + 1];
    for (size_t i = k + 2; i < n; i++)
        if (x[i] < next)
            next = x[i];
    return interp(x[k], next, frac);
}

/* Type 7 quantile of sorted @s (n >= 1). */
static double quantile_sorted(const double *s, size_t n, double q)
{
    double frac;
    size_t k = q_rank(n, q, &frac);
    if (frac <= 0.0 || k + 1 >= n)
        return s[k];
    return interp(s[k], s[k + 1], frac);
}

static double stat_q(enum stats_stat stat)
{
    switch (stat) {
    case STATS_STAT_P95:
        return 0.95;
    case STATS_STAT_P99:
        return 0.99;
    default:
        return 0.5;
    }
}

int stats_quantile(const double *x, size_t n, double q, double *scratch,
                   double *out)
{
    if (!out || !(q >= 0.0 && q <= 1.0))
        return STATS_EINVAL;
    if (n == 0)
        return STATS_ETOOFEW;
    if (!x)
        return STATS_EINVAL;
    if (!all_finite(x, n))
        return STATS_ENOTFINITE;
    double *buf = scratch;
    if (!buf) {
        buf = alloc_array(n, sizeof *buf);
        if (!buf)
            return STATS_ENOMEM;
    }
    if (buf != x)
        memcpy(buf, x, n * sizeof *buf);
    *out = quantile_inplace(buf, n, q);
    if (buf != scratch)
        free(buf);
    return 0;
}

int stats_median(const double *x, size_t n, double *scratch, double *out)
{
    return stats_quantile(x, n, 0.5, scratch, out);
}

int stats_stat_eval(enum stats_stat stat, const double *x, size_t n,
                    double *scratch, double *out)
{
    switch (stat) {
    case STATS_STAT_MEDIAN:
    case STATS_STAT_P95:
    case STATS_STAT_P99:
        return stats_quantile(x, n, stat_q(stat), scratch, out);
    case STATS_STAT_MEAN:
        break;
    default:
        return STATS_EINVAL;
    }
    if (!out)
        return STATS_EINVAL;
    if (n == 0)
        return STATS_ETOOFEW;
    if (!x)
        return STATS_EINVAL;
    if (!all_finite(x, n))
        return STATS_ENOTFINITE;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += x[i];
    if (!isfinite(sum))
        return STATS_ERANGE;
    *out = sum / (double)n;
    return 0;
}

/* ------------------------------------------------------------------------
 * Bootstrap
 */

/* A value with its input position; sorted by value, then position, so
 * the order (and with it every resample, and Holm's ranking of ties)
 * does not depend on qsort. */
struct ranked {
    double v;
    size_t i;
};

static int cmp_ranked(const void *pa, const void *pb)
{
    const struct ranked *a = pa, *b = pb;
    if (a->v < b->v)
        return -1;
    if (a->v > b->v)
        return 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* One side of a bootstrap: its sorted values and the resample counts. */
struct side {
    size_t n;
    size_t block; /* consecutive runs per block; 1: iid */
    double *sorted;
    size_t *rank;  /* rank[i]: position of input value i in sorted */
    size_t *count; /* times each sorted value is in the current resample */
};

/* Sort @x into @sd; @tmp holds n entries. */
static void side_init(struct side *sd, const double *x, struct ranked *tmp)
{
    for (size_t i = 0; i < sd->n; i++) {
        tmp[i].v = x[i];
        tmp[i].i = i;
    }
    qsort(tmp, sd->n, sizeof *tmp, cmp_ranked);
    for (size_t k = 0; k < sd->n; k++) {
        sd->sorted[k] = tmp[k].v;
        sd->rank[tmp[k].i] = k;
    }
}

/* Type 7 quantile of the resample described by the counts (total n). */
static double counts_quantile(const struct side *sd, double q)
{
    double frac;
    size_t r = q_rank(sd->n, q, &frac);
    /* cum: how many resampled values have rank <= k; the value of rank r
     * is the first sorted value whose cum exceeds r. cum reaches n at the
     * last k, and r + 1 < n when it is needed, so k stays in range. */
    size_t k = 0, cum = sd->count[0];
    while (cum <= r)
        cum += sd->count[++k];
    double lo = sd->sorted[k];
    if (frac <= 0.0 || r + 1 >= sd->n)
        return lo;
    while (cum <= r + 1)
        cum += sd->count[++k];
    return interp(lo, sd->sorted[k], frac);
}

static double counts_stat(const struct side *sd, enum stats_stat stat)
{
    if (stat != STATS_STAT_MEAN)
        return counts_quantile(sd, stat_q(stat));
    double sum = 0.0;
    for (size_t k = 0; k < sd->n; k++)
        sum += (double)sd->count[k] * sd->sorted[k];
    return sum / (double)sd->n;
}

static double sorted_stat(const struct side *sd, enum stats_stat stat)
{
    if (stat != STATS_STAT_MEAN)
        return quantile_sorted(sd->sorted, sd->n, stat_q(stat));
    double sum = 0.0;
    for (size_t k = 0; k < sd->n; k++)
        sum += sd->sorted[k];
    return sum / (double)sd->n;
}

/* Draw one circular-block resample of @sd into its counts. */
static void side_resample(struct side *sd, struct stats_rng *rng)
{
    size_t n = sd->n;
    memset(sd->count, 0, n * sizeof *sd->count);
    for (size_t filled = 0; filled < n;) {
        size_t i = (size_t)stats_rng_below(rng, n);
        size_t len = n - filled < sd->block ? n - filled : sd->block;
        for (size_t j = 0; j < len; j++) {
            sd->count[sd->rank[i]]++;
            if (++i == n)
                i = 0;
        }
        filled += len;
    }
}

/* new/base - 1, refusing a base <= 0 and an overflow. */
static int rel_change(double base, double now, double *out)
{
    if (!(base > 0.0))
        return STATS_ENONPOS;
    double r = now / base - 1.0;
    if (!isfinite(r))
        return STATS_ERANGE;
    *out = r;
    return 0;
}

/*
 * The bootstrap behind the public entries; blocks of 1 are iid. @nstat
 * statistics are read from each resample, drawn once: @out[k] for
 * @stats[k].
 */
static int boot_change(const double *a, size_t na, const double *b, size_t nb,
                       const enum stats_stat *stats, size_t nstat, int blocked,
                       const struct stats_boot_opts *opts,
                       struct stats_change *out)
{
    struct stats_boot_opts o = {0, 0.0, 0, 0};
    if (opts)
        o = *opts;
    if (!out || !stats || nstat == 0)
        return STATS_EINVAL;
    if (na < 2 || nb < 2)
        return STATS_ETOOFEW;
    if (!a || !b)
        return STATS_EINVAL;
    if (o.resamples == 0)
        o.resamples = STATS_BOOT_RESAMPLES;
    if (o.conf == 0.0)
        o.conf = STATS_CONF;
    if (!(o.conf > 0.0 && o.conf < 1.0))
        return STATS_EINVAL;
    for (size_t k = 0; k < nstat; k++)
        if (stats[k] != STATS_STAT_MEDIAN && stats[k] != STATS_STAT_P95 &&
            stats[k] != STATS_STAT_P99 && stats[k] != STATS_STAT_MEAN)
            return STATS_EINVAL;
    if (!all_finite(a, na) || !all_finite(b, nb))
        return STATS_ENOTFINITE;

    struct side sa = {na, 1, NULL, NULL, NULL};
    struct side sb = {nb, 1, NULL, NULL, NULL};
    if (blocked) {
        sa.block = o.block_len ? o.block_len : stats_block_len(na);
        sb.block = o.block_len ? o.block_len : stats_block_len(nb);
    }
    size_t nmax = na > nb ? na : nb;
    size_t nreps = o.resamples;
    int err = STATS_ENOMEM;
    double *dbuf = NULL;
    size_t *ibuf = NULL;
    struct ranked *tmp = NULL;
    if (nstat > 16 || na > SIZE_MAX / 4 - nb ||
        nb + na > SIZE_MAX / 4 - 16 * nreps)
        goto done;
    dbuf = alloc_array(na + nb + nstat * nreps, sizeof *dbuf);
    ibuf = alloc_array(2 * (na + nb), sizeof *ibuf);
    tmp = alloc_array(nmax, sizeof *tmp);
    if (!dbuf || !ibuf || !tmp)
        goto done;
    sa.sorted = dbuf;
    sb.sorted = dbuf + na;
    double *reps = dbuf + na + nb; /* statistic k: reps[k * nreps ...] */
    sa.rank = ibuf;
    sa.count = ibuf + na;
    sb.rank = ibuf + 2 * na;
    sb.count = ibuf + 2 * na + nb;
    side_init(&sa, a, tmp);
    side_init(&sb, b, tmp);

    for (size_t k = 0; k < nstat; k++) {
        err = rel_change(sorted_stat(&sa, stats[k]), sorted_stat(&sb, stats[k]),
                         &out[k].point);
        if (err)
            goto done;
    }
    struct stats_rng rng;
    stats_rng_seed(&rng, o.seed);
    for (size_t r = 0; r < nreps; r++) {
        side_resample(&sa, &rng);
        side_resample(&sb, &rng);
        for (size_t k = 0; k < nstat; k++) {
            err = rel_change(counts_stat(&sa, stats[k]),
                             counts_stat(&sb, stats[k]), &reps[k * nreps + r]);
            if (err)
                goto done;
        }
    }
    for (size_t k = 0; k < nstat; k++) {
        out[k].lo =
            quantile_inplace(reps + k * nreps, nreps, (1.0 - o.conf) / 2.0);
        out[k].hi =
            quantile_inplace(reps + k * nreps, nreps, (1.0 + o.conf) / 2.0);
    }
    err = 0;
done:
    free(tmp);
    free(ibuf);
    free(dbuf);
    return err;
}

int stats_boot_median_change(const double *a, size_t na, const double *b,
                             size_t nb, const struct stats_boot_opts *opts,
                             struct stats_change *out)
{
    enum stats_stat stat = STATS_STAT_MEDIAN;
    return boot_change(a, na, b, nb, &stat, 1, 0, opts, out);
}

size_t stats_block_len(size_t n)
{
    size_t len = (size_t)(cbrt((double)n) + 0.5);
    if (len < 1)
        len = 1;
    if (n > 0 && len > n)
        len = n;
    return len;
}

int stats_block_boot_change(const double *a, size_t na, const double *b,
                            size_t nb, enum stats_stat stat,
                            const struct stats_boot_opts *opts,
                            struct stats_change *out)
{
    return boot_change(a, na, b, nb, &stat, 1, 1, opts, out);
}

int stats_block_boot_changes(const double *a, size_t na, const double *b,
                             size_t nb, const enum stats_stat *stats,
                             size_t nstat, const struct stats_boot_opts *opts,
                             struct stats_change *out)
{
    return boot_change(a, na, b, nb, stats, nstat, 1, opts, out);
}

/* ------------------------------------------------------------------------
 * Mann-Whitney U
 */

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

int stats_mw_exact_p(size_t n1, size_t n2, double u, double *p)
{
    if (!p || n1 == 0 || n2 == 0 || n1 > STATS_MW_EXACT_MAX ||
        n2 > STATS_MW_EXACT_MAX)
        return STATS_EINVAL;
    size_t mn = n1 * n2;
    if (!(u >= 0.0 && u <= (double)mn))
        return STATS_EINVAL;
    /*
     * c[k] = how many of the C(n1 + n2, n1) equally likely arrangements
     * give U = k. Their generating function is [n1 + n2 choose n1]_q =
     * prod over i = 1..n1 of (1 - q^(n2 + i)) / (1 - q^i); after step i the
     * product is [n2 + i choose i]_q, a polynomial of degree i n2 with
     * non-negative integer coefficients, so the division is exact. The
     * largest count, C(40, 20) ~ 1.4e11, fits int64_t and doubles exactly.
     */
    int64_t c[STATS_MW_EXACT_MAX * STATS_MW_EXACT_MAX + STATS_MW_EXACT_MAX + 1];
    memset(c, 0, sizeof c);
    c[0] = 1;
    size_t deg = 0;
    for (size_t i = 1; i <= n1; i++) {
        size_t shift = n2 + i;
        for (size_t k = deg + shift; k >= shift; k--)
            c[k] -= c[k - shift];
        deg = i * n2;
        for (size_t k = i; k <= deg; k++)
            c[k] += c[k - i];
        /* The quotient ends at deg; what lies beyond is the remainder of
         * the in-place product, zero in exact arithmetic. */
        for (size_t k = deg + 1; k <= deg + i; k++)
            c[k] = 0;
    }
    double small = u < (double)mn - u ? u : (double)mn - u;
    size_t lim = (size_t)floor(small);
    int64_t total = 0, tail = 0;
    for (size_t k = 0; k <= mn; k++) {
        total += c[k];
        if (k <= lim)
            tail += c[k];
    }
    double pv = 2.0 * (double)tail / (double)total;
    *p = pv > 1.0 ? 1.0 : pv;
    return 0;
}

double stats_mw_normal_p(size_t n1, size_t n2, double u, double ties)
{
    double m1 = (double)n1, m2 = (double)n2, nn = m1 + m2;
    if (n1 == 0 || n2 == 0)
        return 1.0;
    double tie_term = nn > 1.0 ? ties / (nn * (nn - 1.0)) : 0.0;
    double var = m1 * m2 / 12.0 * ((nn + 1.0) - tie_term);
    if (!(var > 0.0))
        return 1.0;
    double z = (fabs(u - m1 * m2 / 2.0) - 0.5) / sqrt(var);
    if (!(z > 0.0))
        return 1.0;
    double p = erfc(z / sqrt(2.0));
    return p > 1.0 ? 1.0 : p;
}

int stats_mann_whitney(const double *a, size_t na, const double *b, size_t nb,
                       struct stats_mw *out)
{
    if (!out)
        return STATS_EINVAL;
    if (na == 0 || nb == 0)
        return STATS_ETOOFEW;
    if (!a || !b)
        return STATS_EINVAL;
    if (!all_finite(a, na) || !all_finite(b, nb))
        return STATS_ENOTFINITE;
    if (na > SIZE_MAX / 2 - nb)
        return STATS_ENOMEM;
    double *sa = alloc_array(na + nb, sizeof *sa);
    if (!sa)
        return STATS_ENOMEM;
    double *sb = sa + na;
    memcpy(sa, a, na * sizeof *sa);
    memcpy(sb, b, nb * sizeof *sb);
    qsort(sa, na, sizeof *sa, cmp_double);
    qsort(sb, nb, sizeof *sb, cmp_double);

    /*
     * One merge over the distinct values in increasing order. With midranks
     * U of a is the number of pairs a > b plus half the pairs a == b: each
     * a equal to v gains the b values below v and half those equal to it.
     * The tie term sums t^3 - t over the groups of equal values, counting
     * both sides.
     */
    double u = 0.0, ties = 0.0;
    size_t i = 0, j = 0, b_below = 0;
    while (i < na || j < nb) {
        double v;
        if (j >= nb || (i < na && sa[i] <= sb[j]))
            v = sa[i];
        else
            v = sb[j];
        size_t ca = 0, cb = 0;
        while (i < na && sa[i] == v) {
            i++;
            ca++;
        }
        while (j < nb && sb[j] == v) {
            j++;
            cb++;
        }
        u += (double)ca * ((double)b_below + 0.5 * (double)cb);
        b_below += cb;
        double t = (double)(ca + cb);
        ties += t * t * t - t;
    }
    free(sa);

    struct stats_mw res = {u, 1.0, 0};
    if (ties == 0.0 && na <= STATS_MW_EXACT_MAX && nb <= STATS_MW_EXACT_MAX) {
        int err = stats_mw_exact_p(na, nb, u, &res.p);
        if (err)
            return err;
        res.exact = 1;
    } else {
        res.p = stats_mw_normal_p(na, nb, u, ties);
    }
    *out = res;
    return 0;
}

/* ------------------------------------------------------------------------
 * Holm
 */

int stats_holm(const double *p, size_t m, double *adj)
{
    if (m == 0)
        return 0;
    if (!p || !adj)
        return STATS_EINVAL;
    for (size_t i = 0; i < m; i++)
        if (!(p[i] >= 0.0 && p[i] <= 1.0))
            return STATS_EINVAL;
    struct ranked *s = alloc_array(m, sizeof *s);
    if (!s)
        return STATS_ENOMEM;
    for (size_t i = 0; i < m; i++) {
        s[i].v = p[i];
        s[i].i = i;
    }
    qsort(s, m, sizeof *s, cmp_ranked);
    /* The running maximum makes the adjusted values monotone in p, so
     * the first adjusted value at or above alpha stops the step-down. */
    double run = 0.0;
    for (size_t k = 0; k < m; k++) {
        double v = (double)(m - k) * s[k].v;
        if (v > 1.0)
            v = 1.0;
        if (v < run)
            v = run;
        run = v;
        adj[s[k].i] = v;
    }
    free(s);
    return 0;
}

/* ------------------------------------------------------------------------
 * Verdicts and gates
 */

const char *stats_verdict_name(enum stats_verdict v)
{
    switch (v) {
    case STATS_NO_CHANGE:
        return "no change";
    case STATS_SLOWER:
        return "slower";
    case STATS_FASTER:
        return "faster";
    case STATS_TOO_FEW:
        return "too few to judge";
    case STATS_INVALID:
        return "invalid";
    }
    return "invalid";
}

static enum stats_verdict decide(const struct stats_compare *c, double alpha)
{
    if (!(c->p_adj < alpha))
        return STATS_NO_CHANGE;
    if (c->change.point > 0.0 && c->change.lo > 0.0)
        return STATS_SLOWER;
    if (c->change.point < 0.0 && c->change.hi < 0.0)
        return STATS_FASTER;
    return STATS_NO_CHANGE;
}

int stats_compare(const double *a, size_t na, const double *b, size_t nb,
                  const struct stats_boot_opts *opts, struct stats_compare *out)
{
    if (!out)
        return STATS_EINVAL;
    memset(out, 0, sizeof *out);
    out->na = na;
    out->nb = nb;
    out->change.point = out->change.lo = out->change.hi = NAN;
    out->mw.u = NAN;
    out->mw.p = 1.0;
    out->p_adj = 1.0;
    if (na < STATS_MIN_REPS || nb < STATS_MIN_REPS) {
        out->verdict = STATS_TOO_FEW;
        return 0;
    }
    int err = STATS_EINVAL;
    if (!a || !b)
        goto fail;
    err = stats_mann_whitney(a, na, b, nb, &out->mw);
    if (err)
        goto fail;
    err = stats_boot_median_change(a, na, b, nb, opts, &out->change);
    if (err)
        goto fail;
    out->p_adj = out->mw.p;
    out->verdict = decide(out, STATS_ALPHA);
    return 0;
fail:
    out->change.point = out->change.lo = out->change.hi = NAN;
    out->mw.u = NAN;
    out->mw.p = 1.0;
    out->mw.exact = 0;
    out->verdict = STATS_INVALID;
    out->status = err;
    return err;
}

static int has_test(const struct stats_compare *c)
{
    return c->status == 0 && c->verdict != STATS_TOO_FEW &&
           c->verdict != STATS_INVALID;
}

int stats_verdicts(struct stats_compare *c, size_t m, double alpha)
{
    if (alpha == 0.0)
        alpha = STATS_ALPHA;
    if (!(alpha > 0.0 && alpha < 1.0))
        return STATS_EINVAL;
    if (m == 0)
        return 0;
    if (!c)
        return STATS_EINVAL;
    double *p = alloc_array(m, sizeof *p);
    if (!p)
        return STATS_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < m; i++)
        if (has_test(&c[i]))
            p[k++] = c[i].mw.p;
    int err = stats_holm(p, k, p);
    if (!err) {
        k = 0;
        for (size_t i = 0; i < m; i++) {
            if (!has_test(&c[i]))
                continue;
            c[i].p_adj = p[k++];
            c[i].verdict = decide(&c[i], alpha);
        }
    }
    free(p);
    return err;
}

int stats_gate_fires(const struct stats_change *c, double threshold)
{
    if (!c || isnan(threshold))
        return 0;
    /* Comparisons with NaN are false, so an interval that could not be
     * computed never fires. */
    if (signbit(threshold))
        return c->hi < threshold;
    return c->lo > threshold;
}
