/*
 * preprocess.c - turns one raw session (named features, numbers and category
 * text) into the encoded float row the network reads, exactly as the spec in
 * the model file says: numerics first, each transformed and standardised in
 * double then rounded to float; then each categorical as its one-hot block.
 *
 * Transforms (docs/model-format.md):
 *   none             z = (x - mean) / std
 *   log1p            z = (log1p(x) - mean) / std
 *   quantile_normal  z = (Phi^-1(F(x)) - mean) / std, F the piecewise-linear
 *                    CDF through the stored quantiles, computed as sklearn's
 *                    QuantileTransformer(output_distribution="normal") does.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

/* ========================================================================= *
 * Normal quantile function
 * ========================================================================= */

/* c[0] + c[1] r + ... + c[7] r^7 by Estrin's scheme: the same work as Horner's
 * rule with a third of its dependency chain. The polynomials below have
 * positive coefficients and r >= 0 (to rounding) in their range: nothing
 * cancels, and either order is accurate to a few ulp. */
static inline double poly7(const double c[8], double r)
{
    double r2 = r * r, r4 = r2 * r2;
    return ((c[0] + c[1] * r) + (c[2] + c[3] * r) * r2) +
           ((c[4] + c[5] * r) + (c[6] + c[7] * r) * r2) * r4;
}

/* Wichura's AS 241 (PPND16): three rational approximations of degree 7,
 * relative error about 1e-16 over the whole open interval, so no refinement
 * step (and no erfc or exp) is needed. Against scipy's ndtri the largest
 * relative difference seen over 3e5 points down to p = 1e-300 is 7e-16. */
double opecom_ndtri(double p)
{
    /* |p - 0.5| <= 0.425, in r = 0.180625 - (p - 0.5)^2 */
    static const double a[8] = {3.3871328727963666080e+0, 1.3314166789178437745e+2,
                                1.9715909503065514427e+3, 1.3731693765509461125e+4,
                                4.5921953931549871457e+4, 6.7265770927008700853e+4,
                                3.3430575583588128105e+4, 2.5090809287301226727e+3};
    static const double b[8] = {1.0,
                                4.2313330701600911252e+1, 6.8718700749205790830e+2,
                                5.3941960214247511077e+3, 2.1213794301586595867e+4,
                                3.9307895800092710610e+4, 2.8729085735721942674e+4,
                                5.2264952788528545610e+3};
    /* tails, r = sqrt(-log(tail mass)) - 1.6 up to 5 - 1.6 */
    static const double c[8] = {1.42343711074968357734e+0, 4.63033784615654529590e+0,
                                5.76949722146069140550e+0, 3.64784832476320460504e+0,
                                1.27045825245236838258e+0, 2.41780725177450611770e-1,
                                2.27238449892691845833e-2, 7.74545014278341407640e-4};
    static const double d[8] = {1.0,
                                2.05319162663775882187e+0, 1.67638483018380384940e+0,
                                6.89767334985100004550e-1, 1.48103976427480074590e-1,
                                1.51986665636164571966e-2, 5.47593808499534494600e-4,
                                1.05075007164441684324e-9};
    /* far tails, r = sqrt(-log(tail mass)) - 5 */
    static const double e[8] = {6.65790464350110377720e+0, 5.46378491116411436990e+0,
                                1.78482653991729133580e+0, 2.96560571828504891230e-1,
                                2.65321895265761230930e-2, 1.24266094738807843860e-3,
                                2.71155556874348757815e-5, 2.01033439929228813265e-7};
    static const double f[8] = {1.0,
                                5.99832206555887937690e-1, 1.36929880922735805310e-1,
                                1.48753612908506148525e-2, 7.86869131145613259100e-4,
                                1.84631831751005468180e-5, 1.42151175831644588870e-7,
                                2.04426310338993978564e-15};

    if (!(p > 0.0))
        return p == 0.0 ? -HUGE_VAL : (double)NAN;
    if (!(p < 1.0))
        return p == 1.0 ? HUGE_VAL : (double)NAN;
    double q = p - 0.5;
    if (fabs(q) <= 0.425) {
        double r = 0.180625 - q * q;
        return q * poly7(a, r) / poly7(b, r);
    }
    /* 1 - p is exact for p > 0.5, so the upper tail keeps its precision. */
    double r = sqrt(-log(q < 0.0 ? p : 1.0 - p));
    double z = r <= 5.0 ? poly7(c, r - 1.6) / poly7(d, r - 1.6)  /* p >= ~1.4e-11 */
                        : poly7(e, r - 5.0) / poly7(f, r - 5.0);
    return q < 0.0 ? -z : z;
}

/* ========================================================================= *
 * Quantile transform
 * ========================================================================= */

/* The reference level i / (n - 1), as numpy.linspace(0, 1, n) computes it. */
static double level(uint32_t i, uint32_t n)
{
    return i == n - 1 ? 1.0 : (double)i * (1.0 / (double)(n - 1));
}

/* Phi^-1(1e-7 - eps) and Phi^-1(1 - (1e-7 - eps)), eps = DBL_EPSILON:
 * sklearn's clip bounds (test_preprocess checks them). */
#define Z_LO (-5.199337582605575)
#define Z_HI 5.19933758270342

/* sklearn's BOUNDS_THRESHOLD: x within it of the first (last) quantile maps
 * to u = 0 (1), so to the clip bound. */
#define BOUND 1e-7

/* Phi^-1(F(x)) given j as above, for q[0] + BOUND <= x <= q[n-1] - BOUND
 * (roughly: the exact tests are the caller's). sklearn averages
 * numpy.interp(x, q, levels) with -numpy.interp(-x, -q reversed, -levels
 * reversed): the two differ only when x hits repeated quantiles. */
static double quantile_z(const double *q, uint32_t n, double x, uint32_t j)
{
    double up, down;
    if (q[j] != x) {
        /* q[j] < x < q[j+1]: both interpolations use the same interval, so
         * the same slope; numpy.interp's formula is slope * (x - xp[j]) + fp[j]. */
        double lj = level(j, n), lj1 = level(j + 1, n);
        double slope = (lj1 - lj) / (q[j + 1] - q[j]);
        up = slope * (x - q[j]) + lj;
        down = slope * (q[j + 1] - x) - lj1;
    } else {
        /* x is a quantile: numpy.interp returns fp exactly where x equals an
         * xp, so up is level j and down is minus the level of m, the first
         * index with q[m] == x. */
        uint32_t lo = 0, hi = j;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (q[mid] < x)
                lo = mid + 1;
            else
                hi = mid;
        }
        up = level(j, n);
        down = -level(lo, n);
    }
    double u = 0.5 * (up - down);
    if (u == 0.0)
        return Z_LO;
    if (u == 1.0)
        return Z_HI;
    double z = opecom_ndtri(u);
    return z < Z_LO ? Z_LO : z > Z_HI ? Z_HI : z;
}

double opecom_quantile_normal(const double *q, uint32_t n, double x)
{
    if (x - BOUND < q[0])
        return Z_LO; /* u = 0: Phi^-1 is -inf, clipped */
    if (x + BOUND > q[n - 1])
        return Z_HI;
    /* j: the last index below n - 1 with q[j] <= x. The search has no
     * branch (a mispredicted step costs more than the whole search); b[0] <= x
     * holds throughout. queue_flush runs the same steps. */
    const double *b = q;
    for (uint32_t len = n - 1; len > 1;) {
        uint32_t half = len / 2;
        b = b[half] <= x ? b + half : b;
        len -= half;
    }
    return quantile_z(q, n, x, (uint32_t)(b - q));
}

/* ========================================================================= *
 * Row encoding
 * ========================================================================= */

/* Checks a numeric value against its feature's type, range and transform
 * domain. @return OPECOM_OK or OPECOM_EINVAL naming the feature. */
static opecom_status check_numeric(const opecom_feature *F, int32_t f, const opecom_value *v,
                                   int64_t row, opecom_error *err)
{
    if (v->str != NULL)
        return opecom_fail(err, OPECOM_EINVAL, f, row, -1,
                           "feature '%s' is numeric: got text \"%.40s\"", F->name, v->str);
    double t = v->num;
    if (!isfinite(t))
        return opecom_fail(err, OPECOM_EINVAL, f, row, -1, "feature '%s' is %s", F->name,
                           isnan(t) ? "NaN" : "infinite");
    if ((F->has_min && t < F->min) || (F->has_max && t > F->max)) {
        if (F->has_min && F->has_max)
            return opecom_fail(err, OPECOM_EINVAL, f, row, -1,
                               "feature '%s' is %g, outside its valid range [%g, %g]", F->name,
                               t, F->min, F->max);
        return opecom_fail(err, OPECOM_EINVAL, f, row, -1, "feature '%s' is %g, must be %s %g",
                           F->name, t, F->has_min ? ">=" : "<=", F->has_min ? F->min : F->max);
    }
    if (F->transform == OPECOM_TRANSFORM_LOG1P && !(t > -1.0))
        return opecom_fail(err, OPECOM_EINVAL, f, row, -1,
                           "feature '%s' is %g; log1p needs a value > -1", F->name, t);
    return OPECOM_OK;
}

/* The categorical counterpart: text, or a finite number matched against the
 * categories that are numbers. */
static opecom_status check_categorical(const opecom_feature *F, int32_t f, const opecom_value *v,
                                       int64_t row, opecom_error *err)
{
    if (v->str == NULL && !isfinite(v->num))
        return opecom_fail(err, OPECOM_EINVAL, f, row, -1,
                           "feature '%s' is categorical: got %s and no text", F->name,
                           isnan(v->num) ? "NaN" : "an infinite number");
    return OPECOM_OK;
}

opecom_status opecom_check_value(const opecom_model *m, uint32_t f, const opecom_value *v,
                                 int64_t row, opecom_error *err)
{
    const opecom_feature *F = &m->features[f];
    if (F->type == OPECOM_FEATURE_NUMERIC)
        return check_numeric(F, (int32_t)f, v, row, err);
    return check_categorical(F, (int32_t)f, v, row, err);
}

static void put(const opecom_feature *F, double t, float *x)
{
    x[F->col] = (float)((t - F->mean) / F->std);
}

/* Quantile features of one row whose search is still to run, all with the
 * same number of quantiles. A search is a chain of dependent loads; run one
 * feature at a time, the core mostly waits on that chain, so the searches of
 * up to LANES features run in lockstep, each in its own register. */
#define LANES 8

typedef struct quantile_queue {
    uint32_t n;         /* features queued */
    uint32_t n_items;   /* their number of quantiles */
    const opecom_feature *F[LANES];
    double x[LANES];
} quantile_queue;

static void queue_flush(quantile_queue *qq, float *x)
{
    if (qq->n == 0)
        return;
    /* Unused lanes repeat lane 0: a few wasted loads, no branch per lane. */
    const double *b[LANES];
    double xv[LANES];
    for (uint32_t k = 0; k < LANES; k++) {
        uint32_t i = k < qq->n ? k : 0;
        b[k] = qq->F[i]->quantiles;
        xv[k] = qq->x[i];
    }
    for (uint32_t len = qq->n_items - 1; len > 1;) {
        uint32_t half = len / 2;
#pragma GCC unroll 8
        for (uint32_t k = 0; k < LANES; k++)
            b[k] = b[k][half] <= xv[k] ? b[k] + half : b[k];
        len -= half;
    }
    for (uint32_t i = 0; i < qq->n; i++) {
        const opecom_feature *F = qq->F[i];
        put(F, quantile_z(F->quantiles, F->n_items, xv[i], (uint32_t)(b[i] - F->quantiles)),
            x);
    }
    qq->n = 0;
}

static void encode_numeric(const opecom_feature *F, double t, quantile_queue *qq, float *x)
{
    switch (F->transform) {
    case OPECOM_TRANSFORM_LOG1P:
        t = log1p(t);
        break;
    case OPECOM_TRANSFORM_QUANTILE_NORMAL: {
        const double *q = F->quantiles;
        if (t - BOUND < q[0]) {
            t = Z_LO;
        } else if (t + BOUND > q[F->n_items - 1]) {
            t = Z_HI;
        } else {
            if (qq->n == LANES || (qq->n > 0 && qq->n_items != F->n_items))
                queue_flush(qq, x);
            qq->n_items = F->n_items;
            qq->F[qq->n] = F;
            qq->x[qq->n++] = t;
            return;
        }
        break;
    }
    default:
        break;
    }
    put(F, t, x);
}

/* Category texts are short: comparing inline beats a call to strcmp each. */
int64_t opecom_find_category(const opecom_feature *F, const opecom_value *v)
{
    const char *s = v->str;
    if (s == NULL) {
        for (uint32_t c = 0; c < F->n_items; c++)
            if (F->cat_num[c] == v->num)
                return c;
        return -1;
    }
    for (uint32_t c = 0; c < F->n_items; c++) {
        const char *t = F->cat_text[c];
        size_t i = 0;
        while (t[i] == s[i] && t[i] != '\0')
            i++;
        if (t[i] == s[i])
            return c;
    }
    return -1;
}

opecom_status opecom_encode_row(const opecom_model *m, const opecom_value *row, int64_t row_index,
                                float *x, opecom_result *res, opecom_error *err)
{
    quantile_queue qq;
    qq.n = 0;
    /* One call clears the one-hot blocks (and the numeric columns, which are
     * written below anyway): cheaper than a memset per categorical. */
    memset(x, 0, sizeof(float) * m->d_in);
    res->n_unknown = 0;
    res->unknown_mask = 0;
    for (uint32_t f = 0; f < m->n_features; f++) {
        const opecom_feature *F = &m->features[f];
        if (F->type == OPECOM_FEATURE_NUMERIC) {
            opecom_status s = check_numeric(F, (int32_t)f, &row[f], row_index, err);
            if (s != OPECOM_OK)
                return s;
            encode_numeric(F, row[f].num, &qq, x);
            continue;
        }
        if (row[f].str == NULL && !isfinite(row[f].num))
            return check_categorical(F, (int32_t)f, &row[f], row_index, err);
        int64_t c = opecom_find_category(F, &row[f]);
        if (c >= 0) {
            x[F->col + (uint32_t)c] = 1.0f;
        } else {
            res->n_unknown++;
            if (f < 64)
                res->unknown_mask |= (uint64_t)1 << f;
        }
    }
    queue_flush(&qq, x);
    return OPECOM_OK;
}
