/*
 * test_predict.c - opecom_predict and opecom_predict_batch: agreement with
 * PyTorch on the reference rows, batch = single, threads = single thread,
 * workspaces, and the errors for bad raw values.
 */
#define _DEFAULT_SOURCE /* setenv */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#define DEFAULT_MODEL "models/shoppers-tabm-k4.opm"
#define REFERENCE "tests/data/reference.csv"

static const char *const kernels[] = {"scalar", "avx2", "avx512"};
#define N_KERNELS (sizeof kernels / sizeof kernels[0])

/* Loads a random model with `kernel`; 0 (with a message) if the CPU lacks it. */
static int kernel_available(const char *kernel)
{
    tu_model d;
    static const tu_model_shape shape = {1, 1, 1, 1, 0, 0, 0};
    tu_model_make(&d, &shape, 1);
    opecom_model *m = tu_model_load_desc(&d.desc, kernel);
    tu_model_free(&d);
    if (m == NULL)
        print_message("kernel %s: not supported by this CPU, skipped\n", kernel);
    opecom_model_free(m);
    return m != NULL;
}

/* ========================================================================= *
 * PyTorch reference
 * ========================================================================= */

static void test_default_model_matches_pytorch(void **state)
{
    (void)state;
    if (access(DEFAULT_MODEL, R_OK) != 0 || access(REFERENCE, R_OK) != 0) {
        print_message("default model or reference rows absent: run `make model`\n");
        fail();
    }
    for (size_t i = 0; i < N_KERNELS; i++) {
        size_t n = 0;
        if (!kernel_available(kernels[i]))
            continue;
        double d = tu_reference_max_diff(DEFAULT_MODEL, REFERENCE, kernels[i], &n);
        print_message("kernel %s: %zu reference rows, max |C - PyTorch| = %.3g\n", kernels[i],
                      n, d);
        assert_true(d >= 0.0);
        assert_true(n >= 1000);
        assert_true(d <= 1e-5);
    }
}

/* ========================================================================= *
 * Random models
 * ========================================================================= */

typedef struct fixture {
    tu_model desc;
    opecom_model *model;
    uint32_t n_features;
} fixture;

static int setup(void **state)
{
    static const tu_model_shape shape = {4, 3, 17, 6, 3, 5, 0};
    fixture *fx = calloc(1, sizeof *fx);
    tu_model_make(&fx->desc, &shape, 1234);
    fx->model = tu_model_load_desc(&fx->desc.desc, "scalar");
    fx->n_features = 9;
    *state = fx;
    return fx->model ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    opecom_model_free(fx->model);
    tu_model_free(&fx->desc);
    free(fx);
    return 0;
}

enum { N_ROWS = 203 };

static opecom_value *random_rows(const fixture *fx, uint64_t seed, size_t n)
{
    tu_rng r = {seed};
    opecom_value *rows = calloc(n * fx->n_features, sizeof *rows);
    for (size_t i = 0; i < n; i++)
        tu_random_row(fx->model, &r, rows + i * fx->n_features, i % 17 == 0);
    return rows;
}

static void test_batch_equals_single_on_every_kernel(void **state)
{
    fixture *fx = *state;
    opecom_value *rows = random_rows(fx, tu_seed(__func__, 99), N_ROWS);
    opecom_result *batch = calloc(N_ROWS, sizeof *batch);
    opecom_result *scalar = calloc(N_ROWS, sizeof *scalar);
    for (size_t kn = 0; kn < N_KERNELS; kn++) {
        if (!kernel_available(kernels[kn]))
            continue;
        opecom_model *m = tu_model_load_desc(&fx->desc.desc, kernels[kn]);
        opecom_workspace *ws = NULL;
        assert_int_equal(opecom_workspace_create(m, 16, &ws, NULL), OPECOM_OK);
        assert_int_equal(opecom_predict_batch(m, ws, rows, N_ROWS, batch, NULL), OPECOM_OK);
        if (kn == 0)
            memcpy(scalar, batch, N_ROWS * sizeof *batch);
        for (size_t i = 0; i < N_ROWS; i++) {
            opecom_result one;
            assert_int_equal(opecom_predict(m, NULL, rows + i * fx->n_features, &one, NULL),
                             OPECOM_OK);
            assert_memory_equal(&one, &batch[i], sizeof one);
            assert_true(one.probability > 0.0f && one.probability < 1.0f);
            assert_int_equal(one.k, 4);
            assert_int_equal(one.n_unknown, i % 17 == 0 ? 3 : 0);
            for (uint32_t j = 0; j < 4; j++)
                assert_float_equal(one.member[j], scalar[i].member[j], 1e-5);
        }
        opecom_workspace_free(ws);
        opecom_model_free(m);
    }
    free(scalar);
    free(batch);
    free(rows);
}

static void test_kernel_choice_is_reported_and_overridable(void **state)
{
    fixture *fx = *state;
    opecom_model_info info;
    for (size_t kn = 0; kn < N_KERNELS; kn++) {
        if (!kernel_available(kernels[kn]))
            continue;
        opecom_model *m = tu_model_load_desc(&fx->desc.desc, kernels[kn]);
        opecom_model_describe(m, &info);
        assert_string_equal(info.kernel, kernels[kn]);
        opecom_model_free(m);
    }
    /* OPECOM_KERNEL applies when the options name no kernel. */
    setenv("OPECOM_KERNEL", "scalar", 1);
    opecom_model *m = tu_model_load_desc(&fx->desc.desc, NULL);
    unsetenv("OPECOM_KERNEL");
    opecom_model_describe(m, &info);
    assert_string_equal(info.kernel, "scalar");
    opecom_model_free(m);
    setenv("OPECOM_KERNEL", "no-such-kernel", 1);
    m = tu_model_load_desc(&fx->desc.desc, NULL);
    unsetenv("OPECOM_KERNEL");
    assert_null(m);
}

static void test_result_is_mean_and_spread_of_members(void **state)
{
    fixture *fx = *state;
    opecom_value *rows = random_rows(fx, 5, 1);
    opecom_result r;
    assert_int_equal(opecom_predict(fx->model, NULL, rows, &r, NULL), OPECOM_OK);
    double mean = 0, var = 0;
    for (int i = 0; i < 4; i++)
        mean += (double)r.member[i] / 4.0;
    for (int i = 0; i < 4; i++)
        var += ((double)r.member[i] - mean) * ((double)r.member[i] - mean) / 4.0;
    assert_float_equal(r.probability, mean, 1e-7);
    assert_float_equal(r.spread, sqrt(var), 1e-7);
    assert_true(r.spread > 0.0f); /* members differ: r and s differ per member */
    double p = r.probability, spread = r.spread, want = 1.0 - spread / sqrt(p * (1.0 - p));
    assert_float_equal(r.confidence, want, 1e-5);
    assert_int_equal(r.reserved, 0);
    free(rows);
}

/* Members' probabilities set through the head: zero head weights, so each
 * member's logit is its head bias. Returns the result of any valid row. */
static opecom_result predict_members(const double *member_p)
{
    static const tu_model_shape shape = {4, 1, 8, 2, 0, 0, 0};
    tu_model d;
    tu_model_make(&d, &shape, 21);
    memset((float *)d.desc.head_weight, 0, sizeof(float) * 4 * 8);
    for (int i = 0; i < 4; i++)
        ((float *)d.desc.head_bias)[i] = (float)log(member_p[i] / (1.0 - member_p[i]));
    opecom_model *m = tu_model_load_desc(&d.desc, "scalar");
    assert_non_null(m);
    opecom_value row[2];
    tu_rng rng = {7};
    tu_random_row(m, &rng, row, 0);
    opecom_result r;
    assert_int_equal(opecom_predict(m, NULL, row, &r, NULL), OPECOM_OK);
    opecom_model_free(m);
    tu_model_free(&d);
    return r;
}

static void test_confidence_falls_as_the_spread_grows(void **state)
{
    (void)state;
    static const double means[] = {0.05, 0.2, 0.5, 0.9};
    for (size_t j = 0; j < sizeof means / sizeof means[0]; j++) {
        double mean = means[j], half = mean < 0.5 ? mean : 1.0 - mean;
        float last_spread = -1.0f, last_confidence = 2.0f;
        for (int step = 0; step <= 9; step++) {
            double e = half * 0.1 * step; /* members mean +- e: same mean, growing spread */
            double p[4] = {mean - e, mean + e, mean - e, mean + e};
            opecom_result r = predict_members(p);
            assert_float_equal(r.probability, mean, 1e-6);
            assert_float_equal(r.spread, e, 1e-6);
            double want = 1.0 - (double)r.spread / sqrt(mean * (1.0 - mean));
            assert_float_equal(r.confidence, want, 1e-5);
            assert_true(r.confidence >= 0.0f && r.confidence <= 1.0f);
            if (step == 0)
                assert_float_equal(r.confidence, 1.0, 1e-6);
            assert_true(r.spread > last_spread);
            assert_true(r.confidence < last_confidence);
            last_spread = r.spread;
            last_confidence = r.confidence;
        }
    }
    /* The largest possible spread at a mean (members at 0 and 1) is confidence 0. */
    double extreme[4] = {1e-7, 1 - 1e-7, 1e-7, 1 - 1e-7};
    opecom_result r = predict_members(extreme);
    assert_float_equal(r.confidence, 0.0, 1e-3);
}

typedef struct thread_arg {
    const fixture *fx;
    const opecom_value *rows;
    opecom_result *out;
} thread_arg;

static void *predict_thread(void *p)
{
    thread_arg *a = p;
    opecom_workspace *ws = NULL;
    if (opecom_workspace_create(a->fx->model, 7, &ws, NULL) != OPECOM_OK)
        return NULL;
    for (int rep = 0; rep < 20; rep++)
        opecom_predict_batch(a->fx->model, ws, a->rows, N_ROWS, a->out, NULL);
    opecom_workspace_free(ws);
    return NULL;
}

static void test_four_threads_match_one(void **state)
{
    fixture *fx = *state;
    opecom_value *rows = random_rows(fx, 77, N_ROWS);
    opecom_result *want = calloc(N_ROWS, sizeof *want);
    assert_int_equal(opecom_predict_batch(fx->model, NULL, rows, N_ROWS, want, NULL), OPECOM_OK);
    pthread_t th[4];
    thread_arg args[4];
    for (int t = 0; t < 4; t++) {
        args[t] = (thread_arg){fx, rows, calloc(N_ROWS, sizeof(opecom_result))};
        assert_int_equal(pthread_create(&th[t], NULL, predict_thread, &args[t]), 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        assert_memory_equal(args[t].out, want, N_ROWS * sizeof *want);
        free(args[t].out);
    }
    free(want);
    free(rows);
}

static void test_caller_memory_workspace(void **state)
{
    fixture *fx = *state;
    size_t need = opecom_workspace_size(fx->model, 4);
    assert_true(need > 0);
    unsigned char *mem = malloc(need + 3);
    opecom_workspace *ws = NULL;
    opecom_error err;
    /* Misaligned caller memory is fine; too little is refused. */
    assert_int_equal(opecom_workspace_init(fx->model, 4, mem + 3, need - 1, &ws, &err),
                     OPECOM_EWORKSPACE);
    assert_non_null(strstr(err.message, "too small"));
    assert_int_equal(opecom_workspace_init(fx->model, 4, mem + 3, need, &ws, &err), OPECOM_OK);
    opecom_value *rows = random_rows(fx, 3, 9);
    opecom_result got[9], want[9];
    assert_int_equal(opecom_predict_batch(fx->model, ws, rows, 9, got, NULL), OPECOM_OK);
    assert_int_equal(opecom_predict_batch(fx->model, NULL, rows, 9, want, NULL), OPECOM_OK);
    assert_memory_equal(got, want, sizeof got);
    opecom_workspace_free(ws); /* caller memory: does nothing */

    /* A workspace of another model is refused. */
    tu_model other_desc;
    static const tu_model_shape shape = {2, 1, 3, 6, 3, 5, 1};
    tu_model_make(&other_desc, &shape, 9);
    opecom_model *other = tu_model_load_desc(&other_desc.desc, "scalar");
    assert_int_equal(opecom_predict(other, ws, rows, got, &err), OPECOM_EWORKSPACE);
    opecom_model_free(other);
    tu_model_free(&other_desc);
    free(rows);
    free(mem);
}

/* ========================================================================= *
 * Bad raw values
 * ========================================================================= */

static void expect_einval(fixture *fx, uint32_t feature, opecom_value v, const char *needle)
{
    opecom_value *rows = random_rows(fx, 11, 1);
    rows[feature] = v;
    opecom_result r;
    opecom_error err;
    assert_int_equal(opecom_predict(fx->model, NULL, rows, &r, &err), OPECOM_EINVAL);
    assert_int_equal(err.status, OPECOM_EINVAL);
    assert_int_equal(err.feature, (int32_t)feature);
    char name[16];
    snprintf(name, sizeof name, "'f%u'", feature);
    if (!strstr(err.message, name) || !strstr(err.message, needle))
        fail_msg("message '%s' lacks %s or '%s'", err.message, name, needle);
    assert_true(isnan(r.probability));
    free(rows);
}

static void test_bad_values_name_the_feature(void **state)
{
    fixture *fx = *state;
    expect_einval(fx, 0, (opecom_value){NAN, NULL}, "NaN");
    expect_einval(fx, 1, (opecom_value){INFINITY, NULL}, "infinite");
    expect_einval(fx, 2, (opecom_value){-INFINITY, NULL}, "infinite");
    expect_einval(fx, 0, (opecom_value){-0.5, NULL}, ">= 0");       /* below min */
    expect_einval(fx, 1, (opecom_value){100.5, NULL}, "[0, 100]");  /* above max */
    expect_einval(fx, 3, (opecom_value){1, "12"}, "numeric");        /* text for a number */
    expect_einval(fx, 6, (opecom_value){NAN, NULL}, "categorical");
}

static void test_bad_row_in_batch_spares_the_others(void **state)
{
    fixture *fx = *state;
    opecom_value *rows = random_rows(fx, 21, 40);
    opecom_result *got = calloc(40, sizeof *got), *want = calloc(40, sizeof *want);
    assert_int_equal(opecom_predict_batch(fx->model, NULL, rows, 40, want, NULL), OPECOM_OK);
    rows[23 * fx->n_features + 4].num = NAN;
    rows[31 * fx->n_features + 0].num = -1;
    opecom_error err;
    assert_int_equal(opecom_predict_batch(fx->model, NULL, rows, 40, got, &err), OPECOM_EINVAL);
    assert_int_equal(err.row, 23);
    assert_int_equal(err.feature, 4);
    for (size_t i = 0; i < 40; i++) {
        if (i == 23 || i == 31) {
            assert_int_equal(got[i].status, OPECOM_EINVAL);
            assert_true(isnan(got[i].probability));
        } else {
            assert_memory_equal(&got[i], &want[i], sizeof got[i]);
        }
    }
    free(got);
    free(want);
    free(rows);
}

static void test_overflowing_model_is_evalue_not_nan(void **state)
{
    (void)state;
    /* Finite but absurd weights overflow float32: an error, never a NaN score. */
    static const tu_model_shape shape = {2, 3, 8, 0, 1, 2, 0}; /* one categorical */
    tu_model d;
    tu_model_make(&d, &shape, 3);
    for (uint32_t l = 0; l < shape.n_blocks; l++) {
        uint32_t in = l == 0 ? 2 : 8;
        opecom_block_desc *B = &d.blocks[l];
        for (size_t i = 0; i < 8 * in; i++)
            ((float *)B->weight)[i] = 3e30f;
        for (size_t i = 0; i < 2 * in; i++)
            ((float *)B->r)[i] = 1.0f;
    }
    opecom_model *m = tu_model_load_desc(&d.desc, "scalar");
    assert_non_null(m);
    opecom_value row[1] = {{0, "c1"}};
    opecom_result r;
    opecom_error err;
    assert_int_equal(opecom_predict(m, NULL, row, &r, &err), OPECOM_EVALUE);
    assert_int_equal(r.status, OPECOM_EVALUE);
    assert_true(isnan(r.probability));
    assert_true(isnan(r.spread) && isnan(r.confidence));
    assert_int_equal(r.reserved, 0);
    assert_non_null(strstr(err.message, "not finite"));
    opecom_model_free(m);
    tu_model_free(&d);
}

static void test_categories_match_text_or_number(void **state)
{
    fixture *fx = *state;
    /* Categories are "c1".."c5": text matches, a number matches nothing. */
    opecom_value *all = random_rows(fx, 8, 2), *rows = all + fx->n_features; /* row 1: known */
    opecom_result a, b;
    rows[6] = (opecom_value){0, "c2"};
    assert_int_equal(opecom_predict(fx->model, NULL, rows, &a, NULL), OPECOM_OK);
    assert_int_equal(a.n_unknown, 0);
    rows[6] = (opecom_value){2, NULL};
    assert_int_equal(opecom_predict(fx->model, NULL, rows, &b, NULL), OPECOM_OK);
    assert_int_equal(b.n_unknown, 1);
    assert_int_equal(b.unknown_mask, 1u << 6);
    assert_true(a.probability != b.probability);
    free(all);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_model_matches_pytorch),
        cmocka_unit_test(test_batch_equals_single_on_every_kernel),
        cmocka_unit_test(test_kernel_choice_is_reported_and_overridable),
        cmocka_unit_test(test_result_is_mean_and_spread_of_members),
        cmocka_unit_test(test_confidence_falls_as_the_spread_grows),
        cmocka_unit_test(test_four_threads_match_one),
        cmocka_unit_test(test_caller_memory_workspace),
        cmocka_unit_test(test_bad_values_name_the_feature),
        cmocka_unit_test(test_bad_row_in_batch_spares_the_others),
        cmocka_unit_test(test_categories_match_text_or_number),
        cmocka_unit_test(test_overflowing_model_is_evalue_not_nan),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
