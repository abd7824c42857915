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

/* Acklam's rational approximation (relative error < 1.2e-9), polished by one
 * Halley step on erfc, which brings it to full double precision. */
double opecom_ndtri(double p)
{
    static const double a[6] = {-3.969683028665376e+01, 2.209460984245205e+02,
                                -2.759285104469687e+02, 1.383577518672690e+02,
                                -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[5] = {-5.447609879822406e+01, 1.615858368580409e+02,
                                -1.556989798598866e+02, 6.680131188771972e+01,
                                -1.328068155288572e+01};
    static const double c[6] = {-7.784894002430293e-03, -3.223964580411365e-01,
                                -2.400758277161838e+00, -2.549732539343734e+00,
                                4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[4] = {7.784695709041462e-03, 3.224671290700398e-01,
                                2.445134137142996e+00, 3.754408661907416e+00};
    const double p_low = 0.02425;

    if (!(p > 0.0))
        return p == 0.0 ? -HUGE_VAL : (double)NAN;
    if (!(p < 1.0))
        return p == 1.0 ? HUGE_VAL : (double)NAN;
    /* Upper half by symmetry: 1 - p is exact there, and the refinement below
     * is only accurate where the tail mass is p itself. */
    if (p > 0.5)
        return -opecom_ndtri(1.0 - p);

    double x;
    if (p < p_low) {
        double q = sqrt(-2.0 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
    } else {
        double q = p - 0.5, r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
    }
    double e = 0.5 * erfc(-x / sqrt(2.0)) - p;
    double u = e * 2.50662827463100050242 * exp(x * x / 2.0); /* sqrt(2 pi) */
    return x - u / (1.0 + x * u / 2.0);
}

/* ========================================================================= *
 * Quantile transform
 * ========================================================================= */

/* The reference level i / (n - 1), as numpy.linspace(0, 1, n) computes it. */
static double level(uint32_t i, uint32_t n) { return i == n - 1 ? 1.0 : (double)i * (1.0 / (double)(n - 1)); }

double opecom_quantile_normal(const double *q, uint32_t n, double x)
{
    const double bound = 1e-7;
    double u;
    if (x - bound < q[0]) {
        u = 0.0;
    } else if (x + bound > q[n - 1]) {
        u = 1.0;
    } else {
        /* q[0] < x < q[n-1]. sklearn averages numpy.interp(x, q, levels) with
         * -numpy.interp(-x, -q reversed, -levels reversed): the two differ only
         * when x hits repeated quantiles. j: the last index with q[j] <= x;
         * m: the first index with q[m] >= x. */
        uint32_t lo = 0, hi = n - 1;
        while (hi - lo > 1) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (q[mid] <= x)
                lo = mid;
            else
                hi = mid;
        }
        uint32_t j = lo, m = j + 1;
        if (q[j] == x) {
            for (lo = 0, hi = j; lo < hi;) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (q[mid] < x)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            m = lo;
        }
        /* numpy.interp's formula: slope * (x - xp[j]) + fp[j]. */
        double up = (level(j + 1, n) - level(j, n)) / (q[j + 1] - q[j]) * (x - q[j]) + level(j, n);
        double down = (-level(m - 1, n) + level(m, n)) / (-q[m - 1] + q[m]) * (-x + q[m]) -
                      level(m, n);
        u = 0.5 * (up - down);
    }
    /* Phi^-1(1e-7 - eps) and Phi^-1(1 - (1e-7 - eps)), eps = DBL_EPSILON:
     * sklearn's clip bounds (test_preprocess checks them). */
    const double lo = -5.199337582605575, hi = 5.19933758270342;
    double z = opecom_ndtri(u);
    return z < lo ? lo : z > hi ? hi : z;
}

/* ========================================================================= *
 * Row encoding
 * ========================================================================= */

static opecom_status encode_numeric(const opecom_feature *F, int32_t f, const opecom_value *v,
                                    int64_t row, float *x, opecom_error *err)
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
    switch (F->transform) {
    case OPECOM_TRANSFORM_LOG1P:
        if (!(t > -1.0))
            return opecom_fail(err, OPECOM_EINVAL, f, row, -1,
                               "feature '%s' is %g; log1p needs a value > -1", F->name, t);
        t = log1p(t);
        break;
    case OPECOM_TRANSFORM_QUANTILE_NORMAL:
        t = opecom_quantile_normal(F->quantiles, F->n_items, t);
        break;
    default:
        break;
    }
    x[F->col] = (float)((t - F->mean) / F->std);
    return OPECOM_OK;
}

/* @return the category index of v, or -1 when it is not a known category. */
static int64_t find_category(const opecom_feature *F, const opecom_value *v)
{
    for (uint32_t c = 0; c < F->n_items; c++) {
        if (v->str != NULL ? strcmp(F->cat_text[c], v->str) == 0 : F->cat_num[c] == v->num)
            return c;
    }
    return -1;
}

opecom_status opecom_encode_row(const opecom_model *m, const opecom_value *row, int64_t row_index,
                                float *x, opecom_result *res, opecom_error *err)
{
    res->n_unknown = 0;
    res->unknown_mask = 0;
    for (uint32_t f = 0; f < m->n_features; f++) {
        const opecom_feature *F = &m->features[f];
        if (F->type == OPECOM_FEATURE_NUMERIC) {
            opecom_status s = encode_numeric(F, (int32_t)f, &row[f], row_index, x, err);
            if (s != OPECOM_OK)
                return s;
            continue;
        }
        memset(x + F->col, 0, sizeof(float) * F->n_items);
        if (row[f].str == NULL && !isfinite(row[f].num))
            return opecom_fail(err, OPECOM_EINVAL, (int32_t)f, row_index, -1,
                               "feature '%s' is categorical: got %s and no text", F->name,
                               isnan(row[f].num) ? "NaN" : "an infinite number");
        int64_t c = find_category(F, &row[f]);
        if (c >= 0) {
            x[F->col + (uint32_t)c] = 1.0f;
        } else {
            res->n_unknown++;
            if (f < 64)
                res->unknown_mask |= (uint64_t)1 << f;
        }
    }
    return OPECOM_OK;
}
