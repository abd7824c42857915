/*
 * test_preprocess.c - the numeric transforms against their Python
 * definitions (scipy's ndtri, sklearn's QuantileTransformer), computed at
 * test time by Debian's python3, and the encoding of a row.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"
#include "testutil.h"

static const char *python(void)
{
    const char *p = getenv("PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

/* Runs a Python snippet that prints numbers; returns how many were read into
 * out (at most cap), or -1 when Python or a module failed. */
static int run_python(const char *code, double *out, int cap)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s -c '%s' 2>/dev/null", python(), code);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    int n = 0;
    double v;
    while (fscanf(p, "%lf", &v) == 1) /* drain it all: a closed pipe would kill Python */
        if (n < cap)
            out[n++] = v;
    int rc = pclose(p);
    return rc == 0 ? n : -1;
}

static void test_ndtri_matches_scipy(void **state)
{
    (void)state;
    static double want[1000];
    const char *code = "from scipy.special import ndtri\n"
                       "ps = [10.0**-e for e in range(1, 17)] + [i/200 for i in range(1, 200)]\n"
                       "ps += [1 - 10.0**-e for e in range(1, 16)]\n"
                       "[print(repr(p), repr(float(ndtri(p)))) for p in ps]\n";
    int n = run_python(code, want, 1000);
    if (n < 0)
        fail_msg("%s with scipy failed (make test installs python3-scipy)", python());
    assert_true(n >= 2 * 200);
    for (int i = 0; i < n; i += 2) {
        double got = opecom_ndtri(want[i]);
        double tol = 1e-13 * (1.0 + fabs(want[i + 1]));
        if (fabs(got - want[i + 1]) > tol)
            fail_msg("ndtri(%.17g) = %.17g, scipy %.17g", want[i], got, want[i + 1]);
    }
    /* the clip bounds preprocess.c keeps as constants */
    assert_float_equal(opecom_ndtri(1e-7 - DBL_EPSILON), -5.199337582605575, 1e-14);
    assert_float_equal(opecom_ndtri(1.0 - (1e-7 - DBL_EPSILON)), 5.19933758270342, 1e-14);
    assert_true(isinf(opecom_ndtri(0.0)) && opecom_ndtri(0.0) < 0);
    assert_true(isinf(opecom_ndtri(1.0)) && opecom_ndtri(1.0) > 0);
    assert_true(isnan(opecom_ndtri(-0.1)) && isnan(opecom_ndtri(NAN)));
}

static void test_quantile_normal_matches_sklearn(void **state)
{
    (void)state;
    /* Quantiles with ties (as discrete data gives) and x on, between and
     * outside them. */
    static const double q[] = {0, 0, 0, 1, 2, 2, 5, 9, 9, 9, 30};
    const uint32_t nq = sizeof q / sizeof q[0];
    static double want[600];
    const char *code =
        "import numpy as np\n"
        "from sklearn.preprocessing import QuantileTransformer\n"
        "q = np.array([0, 0, 0, 1, 2, 2, 5, 9, 9, 9, 30], dtype=float)\n"
        "t = QuantileTransformer(n_quantiles=len(q), output_distribution=\"normal\")\n"
        "t.fit(q.reshape(-1, 1))\n"
        "t.quantiles_ = q.reshape(-1, 1)\n"
        "xs = np.concatenate([q, np.linspace(-3, 35, 200), [1e-8, 9 - 5e-8, 30 + 5e-8, 1e9]])\n"
        "ys = t.transform(xs.reshape(-1, 1)).ravel()\n"
        "[print(repr(float(x)), repr(float(y))) for x, y in zip(xs, ys)]\n";
    int n = run_python(code, want, 600);
    if (n < 0)
        fail_msg("%s with sklearn failed (make test installs python3-sklearn)", python());
    assert_true(n >= 2 * 200);
    for (int i = 0; i < n; i += 2) {
        double got = opecom_quantile_normal(q, nq, want[i]);
        if (fabs(got - want[i + 1]) > 1e-12)
            fail_msg("quantile_normal(%.17g) = %.17g, sklearn %.17g", want[i], got, want[i + 1]);
    }
}

static void test_encoding_layout(void **state)
{
    (void)state;
    /* f0 none, f1 log1p, f2 quantile, f3 none; then 2 categoricals of 3. */
    static const tu_model_shape shape = {1, 1, 2, 4, 2, 3, 0};
    tu_model d;
    tu_model_make(&d, &shape, 5);
    opecom_model *m = tu_model_load_desc(&d.desc, "scalar");
    assert_non_null(m);
    opecom_value row[6] = {{3, NULL}, {7, NULL}, {20, NULL}, {0, NULL}, {0, "c3"}, {0, "zz"}};
    float x[10];
    opecom_result r;
    assert_int_equal(opecom_encode_row(m, row, 0, x, &r, NULL), OPECOM_OK);
    const opecom_feature_desc *F = d.features;
    assert_float_equal(x[0], (float)((3 - F[0].mean) / F[0].std), 0);
    assert_float_equal(x[1], (float)((log1p(7.0) - F[1].mean) / F[1].std), 0);
    double qn = opecom_quantile_normal(F[2].quantiles, F[2].n_quantiles, 20);
    assert_float_equal(x[2], (float)((qn - F[2].mean) / F[2].std), 0);
    assert_float_equal(x[3], (float)((0 - F[3].mean) / F[3].std), 0);
    static const float onehot[6] = {0, 0, 1, 0, 0, 0};
    assert_memory_equal(x + 4, onehot, sizeof onehot);
    assert_int_equal(r.n_unknown, 1);
    assert_int_equal(r.unknown_mask, 1u << 5);
    opecom_model_free(m);
    tu_model_free(&d);
}

/* encode_row runs the searches of several quantile features in lockstep;
 * each column must still be exactly what opecom_quantile_normal gives alone.
 * Eleven quantile features with table lengths 2 .. 349, in runs of equal and
 * of changing length, with more than eight in a run, and values below, on,
 * between and above the quantiles. */
static void test_encoding_quantiles_in_lockstep(void **state)
{
    (void)state;
    static const uint32_t lens[11] = {349, 349, 349, 349, 349, 349, 349, 349, 349, 2, 17};
    static double tables[11][349];
    static const tu_model_shape shape = {1, 1, 2, 33, 1, 3, 0};
    tu_model d;
    tu_model_make(&d, &shape, 7);
    uint32_t qf[11], n_q = 0;
    for (uint32_t f = 0; f < shape.n_numeric; f++) {
        opecom_feature_desc *F = &d.features[f];
        if (F->transform != OPECOM_TRANSFORM_QUANTILE_NORMAL)
            continue;
        assert_true(n_q < 11);
        double *q = tables[n_q];
        for (uint32_t i = 0; i < lens[n_q]; i++) /* ties: 10, 10, 10, 13, ... */
            q[i] = (double)(i % 10 < 3 ? i - i % 10 : i) * (0.5 + n_q) - 20.0;
        F->quantiles = q;
        F->n_quantiles = lens[n_q];
        F->has_min = F->has_max = 0;
        qf[n_q++] = f;
    }
    assert_int_equal(n_q, 11);
    opecom_model *m = tu_model_load_desc(&d.desc, "scalar");
    assert_non_null(m);
    tu_rng r = {tu_seed("encoding_quantiles_in_lockstep", 11)};
    opecom_value row[34];
    float x[64];
    opecom_result res;
    for (int it = 0; it < 2000; it++) {
        for (uint32_t f = 0; f < 33; f++) {
            row[f].str = NULL;
            row[f].num = tu_uniform(&r, 0, 50);
        }
        row[33].str = "c2";
        for (uint32_t i = 0; i < n_q; i++) {
            const double *q = tables[i];
            uint32_t pick = (uint32_t)(tu_next(&r) % lens[i]);
            switch (tu_next(&r) % 4) {
            case 0: row[qf[i]].num = q[pick]; break;
            case 1: row[qf[i]].num = tu_uniform(&r, q[0] - 5, q[lens[i] - 1] + 5); break;
            case 2: row[qf[i]].num = q[pick] + (tu_next(&r) % 2 ? 1e-8 : -1e-8); break;
            default: row[qf[i]].num = tu_uniform(&r, q[0], q[lens[i] - 1]); break;
            }
        }
        assert_int_equal(opecom_encode_row(m, row, it, x, &res, NULL), OPECOM_OK);
        for (uint32_t i = 0; i < n_q; i++) {
            const opecom_feature_desc *F = &d.features[qf[i]];
            double z = opecom_quantile_normal(F->quantiles, F->n_quantiles, row[qf[i]].num);
            float want = (float)((z - F->mean) / F->std);
            if (memcmp(&x[qf[i]], &want, sizeof want) != 0)
                fail_msg("row %d feature %u (x = %.17g): encoded %.9g, alone %.9g", it, qf[i],
                         row[qf[i]].num, (double)x[qf[i]], (double)want);
        }
    }
    opecom_model_free(m);
    tu_model_free(&d);
}

/* Category texts that are prefixes of one another each match only themselves. */
static void test_category_lookup_exact(void **state)
{
    (void)state;
    static const char *const cats[5] = {"1", "10", "2", "1x", "x10"};
    static const tu_model_shape shape = {1, 1, 2, 1, 1, 5, 0};
    tu_model d;
    tu_model_make(&d, &shape, 3);
    d.features[1].categories = cats;
    opecom_model *m = tu_model_load_desc(&d.desc, "scalar");
    assert_non_null(m);
    static const struct {
        const char *text;
        int want; /* category index, or -1: unknown */
    } cases[] = {{"1", 0}, {"10", 1}, {"2", 2}, {"", -1}, {"1x", 3}, {"x10", 4}, {"100", -1},
                 {"x", -1}, {"1 ", -1}, {"x1", -1}, {"0", -1}, {"10\n", -1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        opecom_value row[2] = {{1, NULL}, {0, cases[i].text}};
        float x[6];
        opecom_result res;
        assert_int_equal(opecom_encode_row(m, row, 0, x, &res, NULL), OPECOM_OK);
        for (int c = 0; c < 5; c++)
            if (x[1 + c] != (c == cases[i].want ? 1.0f : 0.0f))
                fail_msg("\"%s\": column %d is %g", cases[i].text, c, (double)x[1 + c]);
        assert_int_equal(res.n_unknown, cases[i].want < 0);
    }
    opecom_model_free(m);
    tu_model_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ndtri_matches_scipy),
        cmocka_unit_test(test_quantile_normal_matches_sklearn),
        cmocka_unit_test(test_encoding_layout),
        cmocka_unit_test(test_encoding_quantiles_in_lockstep),
        cmocka_unit_test(test_category_lookup_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
