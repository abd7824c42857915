/*
 * test_explain.c - opecom_explain, opecom_explain_importance and
 * opecom_reason.
 *
 * The reference is computed here, independently of src/explain.c: exact
 * Shapley values by brute force over every coalition of raw features, each
 * coalition's value the weighted mean over the baseline rows of
 * opecom_predict on a RAW row mixing the input's and the baseline row's
 * values. Random models come from tu_model_make (at most 10 features).
 * The shipped model is used for the efficiency, kernel and timing-free
 * properties on tests/data/reference.csv.
 *
 * Linked with -Wl,--wrap=malloc,... so a test can count allocations.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#define DEFAULT_MODEL "models/shoppers-tabm-k4.opm"
#define REFERENCE_CSV "tests/data/reference.csv"
#define MAXF 32

/* ========================================================================= *
 * Allocation counting
 * ========================================================================= */

static long n_allocs;
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
int __wrap_posix_memalign(void **p, size_t a, size_t n);
void *__wrap_malloc(size_t n) { n_allocs++; return __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { n_allocs++; return __real_calloc(n, m); }
int __wrap_posix_memalign(void **p, size_t a, size_t n)
{
    n_allocs++;
    return __real_posix_memalign(p, a, n);
}

/* ========================================================================= *
 * Random models with a baseline, and brute-force Shapley values
 * ========================================================================= */

typedef struct rmodel {
    tu_model desc;
    opecom_model *plain;  /* without baseline: owns the category texts of base[] */
    opecom_model *model;  /* with the baseline */
    uint32_t n_features, n_base;
    opecom_value base[8 * MAXF];
    double w[8];          /* normalised */
} rmodel;

static void rmodel_make(rmodel *rm, const tu_model_shape *shape, uint32_t n_base, uint64_t seed,
                        const char *kernel)
{
    tu_rng r = {seed};
    double raw_w[8], sum = 0;
    memset(rm, 0, sizeof *rm);
    tu_model_make(&rm->desc, shape, seed);
    rm->plain = tu_model_load_desc(&rm->desc.desc, "scalar");
    assert_non_null(rm->plain);
    rm->n_features = shape->n_numeric + shape->n_categorical;
    rm->n_base = n_base;
    for (uint32_t b = 0; b < n_base; b++) {
        tu_random_row(rm->plain, &r, rm->base + b * rm->n_features, 0);
        raw_w[b] = tu_uniform(&r, 0.5, 2.0);
        sum += raw_w[b];
    }
    for (uint32_t b = 0; b < n_base; b++)
        rm->w[b] = raw_w[b] / sum;
    rm->desc.desc.baseline_rows = rm->base;
    rm->desc.desc.baseline_weights = raw_w;
    rm->desc.desc.n_baseline = n_base;
    rm->model = tu_model_load_desc(&rm->desc.desc, kernel);
    assert_non_null(rm->model);
}

static void rmodel_free(rmodel *rm)
{
    opecom_model_free(rm->model);
    opecom_model_free(rm->plain);
    tu_model_free(&rm->desc);
}

/* v(S) for every coalition S (bit j: feature j from x), by the public API. */
static void coalition_values(const opecom_model *m, const opecom_value *x,
                             const opecom_value *base, const double *w, uint32_t n_base,
                             uint32_t F, double *v)
{
    uint32_t n_coal = 1u << F;
    opecom_value *rows = malloc(sizeof *rows * n_coal * F);
    opecom_result *res = malloc(sizeof *res * n_coal);
    opecom_workspace *ws = NULL;
    assert_int_equal(opecom_workspace_create(m, 256, &ws, NULL), OPECOM_OK);
    for (uint32_t S = 0; S < n_coal; S++)
        v[S] = 0;
    for (uint32_t b = 0; b < n_base; b++) {
        for (uint32_t S = 0; S < n_coal; S++)
            for (uint32_t j = 0; j < F; j++)
                rows[S * F + j] = (S >> j & 1) ? x[j] : base[b * F + j];
        assert_int_equal(opecom_predict_batch(m, ws, rows, n_coal, res, NULL), OPECOM_OK);
        for (uint32_t S = 0; S < n_coal; S++)
            v[S] += w[b] * (double)res[S].probability;
    }
    opecom_workspace_free(ws);
    free(res);
    free(rows);
}

/* Exact Shapley values from all coalition values. */
static void brute_shapley(const double *v, uint32_t F, double *phi)
{
    double fact[MAXF + 1];
    fact[0] = 1;
    for (uint32_t i = 1; i <= F; i++)
        fact[i] = fact[i - 1] * i;
    for (uint32_t j = 0; j < F; j++) {
        phi[j] = 0;
        for (uint32_t S = 0; S < (1u << F); S++) {
            if (S >> j & 1)
                continue;
            uint32_t s = (uint32_t)__builtin_popcount(S);
            phi[j] += fact[s] * fact[F - s - 1] / fact[F] * (v[S | 1u << j] - v[S]);
        }
    }
}

static uint32_t argmax_abs(const double *a, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (fabs(a[i]) > fabs(a[best]))
            best = i;
    return best;
}

/* Error of opecom_explain with `opts` against brute force on `n_inputs` random
 * inputs of several random models: the mean over inputs of mean|err| /
 * |f(x) - f(baseline)|, the worst such ratio, and the share of inputs whose
 * most important feature agrees. */
typedef struct accuracy {
    double mean_rel, worst_rel, top_agree;
    uint64_t evals;
    size_t n;
} accuracy;

static accuracy measure(const opecom_explain_options *opts, uint64_t seed, int n_models,
                        int n_inputs)
{
    static const tu_model_shape shapes[] = {
        {4, 2, 16, 6, 4, 3, 0}, {3, 3, 12, 5, 3, 4, 1}, {4, 1, 24, 8, 2, 2, 0},
        {2, 2, 8, 3, 3, 5, 0},  {4, 2, 32, 10, 0, 0, 0},
    };
    accuracy a = {0, 0, 0, 0, 0};
    size_t agree = 0;
    double *v = malloc(sizeof *v << 10);
    for (int mi = 0; mi < n_models; mi++) {
        const tu_model_shape *sh = &shapes[mi % 5];
        rmodel rm;
        rmodel_make(&rm, sh, 2 + (uint32_t)mi % 4, seed + 977 * (uint64_t)mi, "scalar");
        uint32_t F = rm.n_features;
        tu_rng r = {seed * 31 + (uint64_t)mi};
        for (int i = 0; i < n_inputs; i++) {
            opecom_value x[MAXF];
            double want[MAXF], got[MAXF];
            opecom_explanation e;
            tu_random_row(rm.model, &r, x, 0);
            coalition_values(rm.model, x, rm.base, rm.w, rm.n_base, F, v);
            brute_shapley(v, F, want);
            assert_int_equal(opecom_explain(rm.model, NULL, x, opts, &e, got, NULL), OPECOM_OK);
            double diff = fabs(v[(1u << F) - 1] - v[0]), err = 0;
            assert_true(fabs(e.probability - v[(1u << F) - 1]) < 1e-6);
            assert_true(fabs(e.baseline - v[0]) < 1e-6);
            for (uint32_t j = 0; j < F; j++)
                err += fabs(got[j] - want[j]) / F;
            if (diff < 1e-3)
                continue; /* nothing to explain: the ratio means nothing */
            a.mean_rel += err / diff;
            a.worst_rel = err / diff > a.worst_rel ? err / diff : a.worst_rel;
            agree += argmax_abs(got, F) == argmax_abs(want, F);
            a.evals += e.evaluations;
            a.n++;
        }
        rmodel_free(&rm);
    }
    free(v);
    a.mean_rel /= (double)a.n;
    a.top_agree = (double)agree / (double)a.n;
    a.evals /= a.n;
    return a;
}

/* ========================================================================= *
 * Accuracy against brute force
 * ========================================================================= */

static void test_default_settings_match_brute_force(void **state)
{
    (void)state;
    uint64_t seed = tu_seed("default_settings_match_brute_force", 11);
    accuracy a = measure(NULL, seed, 5, 40);
    print_message("defaults: %zu inputs, mean |error| / |f(x) - f(base)| = %.2e (worst %.2e), "
                  "top feature agrees %.1f%%, %llu evaluations per explanation\n",
                  a.n, a.mean_rel, a.worst_rel, 100 * a.top_agree, (unsigned long long)a.evals);
    assert_true(a.n >= 100);
    assert_true(a.mean_rel <= 0.02);
    assert_true(a.worst_rel <= 0.02);
    assert_true(a.top_agree >= 0.95);
}

static void test_permutation_sampling_matches_brute_force(void **state)
{
    (void)state;
    uint64_t seed = tu_seed("permutation_sampling_matches_brute_force", 12);
    opecom_explain_options o = {OPECOM_ESTIMATOR_PERMUTATION, 0, 5};
    accuracy a = measure(&o, seed, 5, 10); /* ~50,000 evaluations each */
    print_message("permutation, default budget: mean rel. error %.2e (worst %.2e), top agrees "
                  "%.1f%%, %llu evaluations\n",
                  a.mean_rel, a.worst_rel, 100 * a.top_agree, (unsigned long long)a.evals);
    assert_true(a.mean_rel <= 0.02);
    assert_true(a.top_agree >= 0.95);
    /* A small budget, one antithetic pair per baseline row or a few more:
     * still unbiased, just noisier. The bound is loose on purpose. */
    o.max_evals = 64;
    a = measure(&o, seed, 5, 40);
    print_message("permutation, 64 evaluations: mean rel. error %.2e (worst %.2e), top agrees "
                  "%.1f%%, %llu evaluations\n",
                  a.mean_rel, a.worst_rel, 100 * a.top_agree, (unsigned long long)a.evals);
    assert_true(a.mean_rel <= 0.15);
    assert_true(a.top_agree >= 0.75);
}

static void test_exact_is_exact(void **state)
{
    (void)state;
    opecom_explain_options o = {OPECOM_ESTIMATOR_EXACT, 1, 0};
    accuracy a = measure(&o, 21, 3, 10);
    assert_true(a.worst_rel <= 1e-6);
    assert_true(a.top_agree == 1.0);
}

/* ========================================================================= *
 * Properties on one random model
 * ========================================================================= */

static void test_contributions_sum_to_the_difference(void **state)
{
    (void)state;
    static const tu_model_shape sh = {4, 2, 16, 6, 4, 3, 0};
    rmodel rm;
    rmodel_make(&rm, &sh, 4, 5, NULL);
    tu_rng r = {9};
    for (int i = 0; i < 200; i++) {
        opecom_value x[MAXF];
        double phi[MAXF], sum = 0;
        opecom_explanation e;
        opecom_explain_options o = {(opecom_estimator)(i % 3), (uint64_t)(i % 7) * 40, (uint64_t)i};
        tu_random_row(rm.model, &r, x, i % 5 == 0);
        assert_int_equal(opecom_explain(rm.model, NULL, x, &o, &e, phi, NULL), OPECOM_OK);
        for (uint32_t j = 0; j < rm.n_features; j++)
            sum += phi[j];
        assert_true(fabs(sum - (e.probability - e.baseline)) <= 1e-12);
        opecom_result res;
        assert_int_equal(opecom_predict(rm.model, NULL, x, &res, NULL), OPECOM_OK);
        assert_true(fabs(e.probability - (double)res.probability) <= 1e-6);
        assert_int_equal(e.n_unknown, res.n_unknown);
    }
    rmodel_free(&rm);
}

static void test_a_feature_equal_to_every_baseline_row_gets_zero(void **state)
{
    (void)state;
    static const tu_model_shape sh = {4, 2, 16, 6, 4, 3, 0};
    tu_model d;
    tu_model_make(&d, &sh, 8);
    opecom_model *plain = tu_model_load_desc(&d.desc, NULL);
    assert_non_null(plain);
    tu_rng r = {10};
    opecom_value x[10], base[3 * 10];
    tu_random_row(plain, &r, x, 0);
    for (uint32_t b = 0; b < 3; b++) {
        tu_random_row(plain, &r, base + b * 10, 0);
        base[b * 10 + 2] = x[2]; /* numeric */
        base[b * 10 + 7] = x[7]; /* categorical */
    }
    d.desc.baseline_rows = base;
    d.desc.n_baseline = 3;
    opecom_model *m = tu_model_load_desc(&d.desc, NULL);
    assert_non_null(m);
    double phi[10];
    opecom_explanation e;
    for (int est = 0; est < 3; est++) {
        opecom_explain_options o = {(opecom_estimator)est, 200, 1};
        assert_int_equal(opecom_explain(m, NULL, x, &o, &e, phi, NULL), OPECOM_OK);
        assert_true(phi[2] == 0.0 && phi[7] == 0.0);
    }
    opecom_model_free(m);
    opecom_model_free(plain);
    tu_model_free(&d);
}

static void test_explanations_are_deterministic_per_seed(void **state)
{
    (void)state;
    static const tu_model_shape sh = {4, 2, 16, 6, 4, 3, 0};
    rmodel rm;
    rmodel_make(&rm, &sh, 4, 6, NULL);
    tu_rng r = {4};
    opecom_value x[MAXF];
    double a[MAXF], b[MAXF], c[MAXF];
    opecom_explanation e;
    opecom_workspace *ws = NULL;
    assert_int_equal(opecom_workspace_create(rm.model, 7, &ws, NULL), OPECOM_OK);
    tu_random_row(rm.model, &r, x, 0);
    opecom_explain_options o = {OPECOM_ESTIMATOR_PERMUTATION, 100, 42};
    assert_int_equal(opecom_explain(rm.model, NULL, x, &o, &e, a, NULL), OPECOM_OK);
    assert_int_equal(e.estimator, OPECOM_ESTIMATOR_PERMUTATION);
    /* same seed, another workspace (other batch sizes): the same bits */
    assert_int_equal(opecom_explain(rm.model, ws, x, &o, &e, b, NULL), OPECOM_OK);
    assert_memory_equal(a, b, sizeof(double) * rm.n_features);
    o.seed = 43;
    assert_int_equal(opecom_explain(rm.model, ws, x, &o, &e, c, NULL), OPECOM_OK);
    assert_true(memcmp(a, c, sizeof(double) * rm.n_features) != 0);
    opecom_workspace_free(ws);
    rmodel_free(&rm);
}

static void test_auto_picks_exact_only_within_budget(void **state)
{
    (void)state;
    static const tu_model_shape sh = {4, 2, 16, 6, 4, 3, 0};
    rmodel rm;
    rmodel_make(&rm, &sh, 2, 7, NULL);
    tu_rng r = {5};
    opecom_value x[MAXF];
    double phi[MAXF];
    opecom_explanation e;
    tu_random_row(rm.model, &r, x, 0);
    assert_int_equal(opecom_explain(rm.model, NULL, x, NULL, &e, phi, NULL), OPECOM_OK);
    assert_int_equal(e.estimator, OPECOM_ESTIMATOR_EXACT);
    assert_true(e.evaluations <= 1 + 2 * 1024);
    opecom_explain_options o = {OPECOM_ESTIMATOR_AUTO, 100, 0};
    assert_int_equal(opecom_explain(rm.model, NULL, x, &o, &e, phi, NULL), OPECOM_OK);
    assert_int_equal(e.estimator, OPECOM_ESTIMATOR_PERMUTATION);
    assert_true(e.evaluations <= 130);
    o.estimator = (opecom_estimator)9;
    assert_int_equal(opecom_explain(rm.model, NULL, x, &o, &e, phi, NULL), OPECOM_EINVAL);
    rmodel_free(&rm);
}

static void test_model_without_baseline_is_enobaseline(void **state)
{
    (void)state;
    static const tu_model_shape sh = {2, 1, 8, 3, 1, 2, 0};
    tu_model d;
    tu_model_make(&d, &sh, 3);
    opecom_model *m = tu_model_load_desc(&d.desc, NULL);
    assert_non_null(m);
    tu_rng r = {1};
    opecom_value x[4];
    double phi[4], imp[4];
    opecom_explanation e;
    opecom_error err;
    tu_random_row(m, &r, x, 0);
    assert_int_equal(opecom_explain(m, NULL, x, NULL, &e, phi, &err), OPECOM_ENOBASELINE);
    assert_non_null(strstr(err.message, "no explanation baseline"));
    assert_int_equal(e.status, OPECOM_ENOBASELINE);
    assert_int_equal(opecom_explain_importance(m, NULL, x, 1, NULL, imp, &err),
                     OPECOM_ENOBASELINE);
    opecom_model_free(m);
    tu_model_free(&d);
}

static void test_bad_input_is_named(void **state)
{
    (void)state;
    static const tu_model_shape sh = {4, 2, 16, 6, 4, 3, 0};
    rmodel rm;
    rmodel_make(&rm, &sh, 2, 7, NULL);
    tu_rng r = {5};
    opecom_value x[MAXF];
    double phi[MAXF];
    opecom_explanation e;
    opecom_error err;
    tu_random_row(rm.model, &r, x, 0);
    x[3].num = (double)NAN;
    assert_int_equal(opecom_explain(rm.model, NULL, x, NULL, &e, phi, &err), OPECOM_EINVAL);
    assert_int_equal(err.feature, 3);
    assert_non_null(strstr(err.message, "f3"));
    assert_int_equal(opecom_explain(rm.model, NULL, NULL, NULL, &e, phi, &err), OPECOM_EINVAL);
    assert_int_equal(opecom_explain(rm.model, NULL, x, NULL, &e, NULL, &err), OPECOM_EINVAL);
    /* a workspace of another model */
    opecom_workspace *ws = NULL;
    assert_int_equal(opecom_workspace_create(rm.plain, 4, &ws, NULL), OPECOM_OK);
    tu_random_row(rm.model, &r, x, 0);
    assert_int_equal(opecom_explain(rm.model, ws, x, NULL, &e, phi, &err), OPECOM_EWORKSPACE);
    opecom_workspace_free(ws);
    rmodel_free(&rm);
}

static void test_importance_is_the_mean_absolute_contribution(void **state)
{
    (void)state;
    static const tu_model_shape sh = {4, 2, 16, 6, 4, 3, 0};
    rmodel rm;
    rmodel_make(&rm, &sh, 3, 12, NULL);
    tu_rng r = {12};
    enum { N = 20 };
    opecom_value rows[N * MAXF];
    double want[MAXF] = {0}, imp[MAXF], phi[MAXF];
    opecom_explanation e;
    opecom_error err;
    for (int i = 0; i < N; i++)
        tu_random_row(rm.model, &r, rows + i * rm.n_features, 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(opecom_explain(rm.model, NULL, rows + i * rm.n_features, NULL, &e, phi,
                                        NULL),
                         OPECOM_OK);
        for (uint32_t j = 0; j < rm.n_features; j++)
            want[j] += fabs(phi[j]) / N;
    }
    assert_int_equal(opecom_explain_importance(rm.model, NULL, rows, N, NULL, imp, NULL),
                     OPECOM_OK);
    for (uint32_t j = 0; j < rm.n_features; j++)
        assert_true(fabs(imp[j] - want[j]) < 1e-12);
    rows[7 * rm.n_features + 1].num = -5; /* below min 0 */
    assert_int_equal(opecom_explain_importance(rm.model, NULL, rows, N, NULL, imp, &err),
                     OPECOM_EINVAL);
    assert_int_equal(err.row, 7);
    rmodel_free(&rm);
}

/* ========================================================================= *
 * The shipped model on the reference rows
 * ========================================================================= */

typedef struct refset {
    opecom_value *rows; /* [n, F] */
    char *text;         /* category texts */
    size_t n;
    uint32_t F;
} refset;

/* Reads the raw feature columns of tests/data/reference.csv for model m. */
static void read_reference(const opecom_model *m, refset *rs)
{
    size_t size = 0;
    opecom_model_info info;
    opecom_model_describe(m, &info);
    rs->F = info.n_features;
    rs->text = (char *)tu_read_file(REFERENCE_CSV, &size);
    assert_non_null(rs->text);
    rs->text = realloc(rs->text, size + 1);
    rs->text[size] = '\0';
    size_t lines = 0;
    for (size_t i = 0; i < size; i++)
        lines += rs->text[i] == '\n';
    rs->rows = calloc(lines * rs->F, sizeof *rs->rows);
    int32_t col_of[64];
    char *save = NULL, *line = strtok_r(rs->text, "\n", &save);
    char *fields[64];
    size_t nc = 0;
    for (char *p = line;; p++) { /* header */
        fields[nc++] = p;
        p = strchr(p, ',');
        if (!p)
            break;
        *p = '\0';
    }
    for (uint32_t f = 0; f < rs->F; f++) {
        opecom_feature_info fi;
        opecom_model_feature(m, f, &fi);
        col_of[f] = -1;
        for (size_t c = 0; c < nc; c++)
            if (strcmp(fields[c], fi.name) == 0)
                col_of[f] = (int32_t)c;
        assert_true(col_of[f] >= 0);
    }
    rs->n = 0;
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        size_t k = 0;
        for (char *p = line; k < 64; p++) {
            fields[k++] = p;
            p = strchr(p, ',');
            if (!p)
                break;
            *p = '\0';
        }
        assert_int_equal(k, nc);
        for (uint32_t f = 0; f < rs->F; f++) {
            opecom_feature_info fi;
            opecom_model_feature(m, f, &fi);
            opecom_value *v = &rs->rows[rs->n * rs->F + f];
            if (fi.type == OPECOM_FEATURE_NUMERIC)
                *v = (opecom_value){strtod(fields[col_of[f]], NULL), NULL};
            else
                *v = (opecom_value){0, fields[col_of[f]]};
        }
        rs->n++;
    }
}

static void free_reference(refset *rs)
{
    free(rs->rows);
    free(rs->text);
}

static opecom_model *load_default(const char *kernel)
{
    opecom_load_options o = {kernel};
    opecom_model *m = NULL;
    opecom_error err;
    opecom_status s = opecom_model_load(DEFAULT_MODEL, &o, &m, &err);
    if (s == OPECOM_EKERNEL)
        return NULL;
    if (s != OPECOM_OK)
        fail_msg("%s: %s", DEFAULT_MODEL, err.message);
    return m;
}

static void test_shipped_model_efficiency_on_reference_rows(void **state)
{
    (void)state;
    opecom_model *m = load_default(NULL);
    opecom_model_info info;
    opecom_model_describe(m, &info);
    assert_true(info.n_baseline > 0);
    refset rs;
    read_reference(m, &rs);
    assert_true(rs.n >= 1000);
    opecom_workspace *ws = NULL;
    assert_int_equal(opecom_workspace_create(m, 128, &ws, NULL), OPECOM_OK);
    double worst = 0, phi[MAXF];
    for (size_t i = 0; i < rs.n; i++) {
        opecom_explanation e;
        opecom_result res;
        const opecom_value *x = rs.rows + i * rs.F;
        assert_int_equal(opecom_explain(m, ws, x, NULL, &e, phi, NULL), OPECOM_OK);
        assert_int_equal(opecom_predict(m, ws, x, &res, NULL), OPECOM_OK);
        double sum = 0;
        for (uint32_t j = 0; j < rs.F; j++)
            sum += phi[j];
        double d = fabs(sum - ((double)res.probability - e.baseline));
        worst = d > worst ? d : worst;
        assert_true(fabs(e.probability - (double)res.probability) < 1e-6);
    }
    print_message("%zu reference rows: max |sum(phi) - (p - baseline)| = %.2e\n", rs.n, worst);
    assert_true(worst <= 1e-5);
    opecom_workspace_free(ws);
    free_reference(&rs);
    opecom_model_free(m);
}

static void test_every_kernel_gives_the_same_contributions(void **state)
{
    (void)state;
    static const char *const kernels[] = {"scalar", "avx2", "avx512"};
    opecom_model *ref = load_default("scalar");
    refset rs;
    read_reference(ref, &rs);
    size_t n = 20; /* the scalar kernel is slow */
    double *want = malloc(sizeof(double) * n * rs.F);
    opecom_explanation e;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(opecom_explain(ref, NULL, rs.rows + i * rs.F, NULL, &e,
                                        want + i * rs.F, NULL),
                         OPECOM_OK);
    for (size_t k = 1; k < 3; k++) {
        opecom_model *m = load_default(kernels[k]);
        if (m == NULL) {
            print_message("kernel %s: not supported here, skipped\n", kernels[k]);
            continue;
        }
        opecom_workspace *ws = NULL;
        assert_int_equal(opecom_workspace_create(m, 64, &ws, NULL), OPECOM_OK);
        double worst = 0, phi[MAXF];
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(opecom_explain(m, ws, rs.rows + i * rs.F, NULL, &e, phi, NULL),
                             OPECOM_OK);
            for (uint32_t j = 0; j < rs.F; j++) {
                double d = fabs(phi[j] - want[i * rs.F + j]);
                worst = d > worst ? d : worst;
            }
        }
        print_message("kernel %s vs scalar: max |contribution difference| = %.2e\n",
                      kernels[k], worst);
        assert_true(worst <= 1e-5);
        opecom_workspace_free(ws);
        opecom_model_free(m);
    }
    free(want);
    free_reference(&rs);
    opecom_model_free(ref);
}

static void test_explain_does_not_allocate(void **state)
{
    (void)state;
    opecom_model *m = load_default(NULL);
    refset rs;
    read_reference(m, &rs);
    opecom_workspace *ws = NULL;
    assert_int_equal(opecom_workspace_create(m, 64, &ws, NULL), OPECOM_OK);
    double phi[MAXF], imp[MAXF];
    char text[OPECOM_REASON_MAX];
    opecom_explanation e;
    long before = n_allocs;
    for (size_t i = 0; i < 20; i++) {
        opecom_explain_options o = {(opecom_estimator)(i % 3), 0, i};
        if (o.estimator == OPECOM_ESTIMATOR_EXACT)
            o.estimator = OPECOM_ESTIMATOR_AUTO;
        assert_int_equal(opecom_explain(m, ws, rs.rows + i * rs.F, &o, &e, phi, NULL), OPECOM_OK);
        assert_int_equal(opecom_explain(m, NULL, rs.rows + i * rs.F, &o, &e, phi, NULL),
                         OPECOM_OK);
        assert_int_equal(opecom_reason(m, rs.rows + i * rs.F, (uint32_t)i % rs.F, phi[i % rs.F],
                                       text, sizeof text, NULL),
                         OPECOM_OK);
    }
    assert_int_equal(opecom_explain_importance(m, ws, rs.rows, 10, NULL, imp, NULL), OPECOM_OK);
    assert_int_equal(n_allocs, before);
    opecom_workspace_free(ws);
    free_reference(&rs);
    opecom_model_free(m);
}

/* ========================================================================= *
 * Reason texts
 * ========================================================================= */

static const char *reason_of(const opecom_model *m, const opecom_value *row, const char *name,
                             double contribution)
{
    static char buf[OPECOM_REASON_MAX];
    int32_t f = opecom_feature_index(m, name);
    assert_true(f >= 0);
    assert_int_equal(opecom_reason(m, row, (uint32_t)f, contribution, buf, sizeof buf, NULL),
                     OPECOM_OK);
    return buf;
}

static void test_reasons_follow_the_template_table(void **state)
{
    (void)state;
    opecom_model *m = load_default(NULL);
    opecom_model_info info;
    opecom_model_describe(m, &info);
    opecom_value row[MAXF];
    for (uint32_t f = 0; f < info.n_features; f++)
        row[f] = (opecom_value){0, NULL};
    row[opecom_feature_index(m, "Month")].str = "Nov";
    row[opecom_feature_index(m, "VisitorType")].str = "New_Visitor";
    row[opecom_feature_index(m, "Weekend")].str = "TRUE";
    row[opecom_feature_index(m, "OperatingSystems")].str = "2";
    row[opecom_feature_index(m, "Browser")].num = 4; /* a code as a number */
    row[opecom_feature_index(m, "Region")].str = "Atlantis";
    row[opecom_feature_index(m, "TrafficType")].str = "3";
    row[opecom_feature_index(m, "PageValues")].num = 38.5;
    row[opecom_feature_index(m, "ProductRelated")].num = 120;
    row[opecom_feature_index(m, "ProductRelated_Duration")].num = 1500;
    row[opecom_feature_index(m, "BounceRates")].num = 0.2;
    row[opecom_feature_index(m, "ExitRates")].num = 0.0;

    assert_string_equal(reason_of(m, row, "PageValues", 0.3),
                        "viewed pages with high page value (38)");
    assert_string_equal(reason_of(m, row, "ProductRelated", 0.1), "many product pages (120)");
    assert_string_equal(reason_of(m, row, "ProductRelated_Duration", 0.1),
                        "long time on product pages (25 min)");
    assert_string_equal(reason_of(m, row, "BounceRates", -0.02),
                        "left quickly (high bounce rate, 20%)");
    assert_string_equal(reason_of(m, row, "BounceRates", 0.02), "high bounce rate (20%)");
    assert_string_equal(reason_of(m, row, "Administrative", -0.01),
                        "no account or checkout pages");
    assert_string_equal(reason_of(m, row, "SpecialDay", -0.01), "not near a special day");
    assert_string_equal(reason_of(m, row, "Month", 0.05), "visited in November");
    assert_string_equal(reason_of(m, row, "VisitorType", 0.05), "new visitor");
    assert_string_equal(reason_of(m, row, "Weekend", 0.01), "visited at the weekend");
    assert_string_equal(reason_of(m, row, "OperatingSystems", 0.01), "uses operating system 2");
    assert_string_equal(reason_of(m, row, "Browser", 0.01), "uses browser 4");
    assert_string_equal(reason_of(m, row, "Region", 0.01),
                        "visitor from region Atlantis (not seen in training)");
    assert_string_equal(reason_of(m, row, "TrafficType", 0.01), "came from traffic source 3");

    row[opecom_feature_index(m, "PageValues")].num = 0;
    assert_string_equal(reason_of(m, row, "PageValues", -0.1), "viewed no pages with page value");
    row[opecom_feature_index(m, "ProductRelated_Duration")].num = 4;
    assert_string_equal(reason_of(m, row, "ProductRelated_Duration", -0.1),
                        "left product pages quickly (4 s)");

    /* truncation, bad arguments */
    char small[8];
    assert_int_equal(opecom_reason(m, row, 0, 0.1, small, sizeof small, NULL), OPECOM_OK);
    assert_int_equal(strlen(small), 7);
    opecom_error err;
    assert_int_equal(opecom_reason(m, row, 99, 0.1, small, sizeof small, &err), OPECOM_EINVAL);
    row[0].str = "x";
    assert_int_equal(opecom_reason(m, row, 0, 0.1, small, sizeof small, &err), OPECOM_EINVAL);
    opecom_model_free(m);
}

static void test_features_without_template_get_a_generic_reason(void **state)
{
    (void)state;
    static const tu_model_shape sh = {2, 1, 8, 3, 1, 2, 0};
    rmodel rm;
    rmodel_make(&rm, &sh, 2, 4, NULL);
    opecom_value row[4] = {{0, NULL}, {500, NULL}, {7, NULL}, {0, "c2"}};
    char buf[OPECOM_REASON_MAX];
    assert_int_equal(opecom_reason(rm.model, row, 0, 0.1, buf, sizeof buf, NULL), OPECOM_OK);
    assert_string_equal(buf, "f0 is 0");
    assert_int_equal(opecom_reason(rm.model, row, 3, 0.1, buf, sizeof buf, NULL), OPECOM_OK);
    assert_string_equal(buf, "f3 is c2");
    assert_int_equal(opecom_reason(rm.model, row, 1, 0.1, buf, sizeof buf, NULL), OPECOM_OK);
    assert_non_null(strstr(buf, "f1 is "));
    assert_non_null(strstr(buf, "(500)"));
    rmodel_free(&rm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_settings_match_brute_force),
        cmocka_unit_test(test_permutation_sampling_matches_brute_force),
        cmocka_unit_test(test_exact_is_exact),
        cmocka_unit_test(test_contributions_sum_to_the_difference),
        cmocka_unit_test(test_a_feature_equal_to_every_baseline_row_gets_zero),
        cmocka_unit_test(test_explanations_are_deterministic_per_seed),
        cmocka_unit_test(test_auto_picks_exact_only_within_budget),
        cmocka_unit_test(test_model_without_baseline_is_enobaseline),
        cmocka_unit_test(test_bad_input_is_named),
        cmocka_unit_test(test_importance_is_the_mean_absolute_contribution),
        cmocka_unit_test(test_shipped_model_efficiency_on_reference_rows),
        cmocka_unit_test(test_every_kernel_gives_the_same_contributions),
        cmocka_unit_test(test_explain_does_not_allocate),
        cmocka_unit_test(test_reasons_follow_the_template_table),
        cmocka_unit_test(test_features_without_template_get_a_generic_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
