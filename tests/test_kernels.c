/*
 * test_kernels.c - every forward-pass kernel against a plain double-precision
 * TabM written here from TABM.md, on random models with awkward widths,
 * member counts and batch sizes, with and without adapters.
 */
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

/* Member i's logit for one encoded row, all in double. */
static double naive_logit(const opecom_tabm *net, const float *x, uint32_t i)
{
    uint32_t width = net->d_in > net->d_block ? net->d_in : net->d_block;
    double *h = calloc(width, sizeof *h), *next = calloc(width, sizeof *next);
    for (uint32_t c = 0; c < net->d_in; c++)
        h[c] = x[c];
    for (uint32_t l = 0; l < net->n_blocks; l++) {
        const opecom_tabm_layer *L = &net->layers[l];
        for (uint32_t o = 0; o < L->d_out; o++) {
            double v = 0;
            for (uint32_t c = 0; c < L->d_in; c++)
                v += (double)L->w[o * L->d_in + c] * h[c] *
                     (L->r ? (double)L->r[i * L->d_in + c] : 1.0);
            v = v * (L->s ? (double)L->s[i * L->d_out + o] : 1.0) + (double)L->b[i * L->d_out + o];
            next[o] = v > 0 ? v : 0;
        }
        memcpy(h, next, sizeof *h * L->d_out);
    }
    double y = net->head_b[i];
    for (uint32_t c = 0; c < net->d_block; c++)
        y += (double)net->head_w[i * net->d_block + c] * h[c];
    free(h);
    free(next);
    return y;
}

/* Runs `kern` (and the scalar oracle) on random rows of a random model and
 * checks both against the double-precision TabM, and each other. */
static void check_kernel(const opecom_kernel *kern, const tu_model_shape *shape, uint64_t seed,
                         size_t n_rows)
{
    tu_model d;
    tu_model_make(&d, shape, seed);
    opecom_model *m = tu_model_load_desc(&d.desc, kern->name);
    assert_non_null(m);
    const opecom_tabm *net = &m->net;
    tu_rng r = {seed};
    float *x = malloc(sizeof(float) * n_rows * net->d_in);
    for (size_t i = 0; i < n_rows * net->d_in; i++) /* a third zeros, as one-hot rows have */
        x[i] = tu_next(&r) % 3 == 0 ? 0.0f : (float)tu_uniform(&r, -2, 2);
    size_t n_scratch = kern->scratch_floats(net, n_rows);
    size_t n_ref = opecom_kernel_scalar.scratch_floats(net, n_rows);
    float *scratch = NULL;
    assert_int_equal(posix_memalign((void **)&scratch, 64,
                                    (n_scratch > n_ref ? n_scratch : n_ref) * sizeof(float)), 0);
    float *logits = malloc(sizeof(float) * n_rows * net->k);
    float *oracle = malloc(sizeof(float) * n_rows * net->k);
    opecom_kernel_scalar.forward(net, NULL, x, n_rows, oracle, scratch);
    kern->forward(net, m->packed, x, n_rows, logits, scratch);
    for (size_t n = 0; n < n_rows; n++)
        for (uint32_t i = 0; i < net->k; i++) {
            double want = naive_logit(net, x + n * net->d_in, i);
            double got = logits[n * net->k + i], ref = oracle[n * net->k + i];
            if (fabs(got - want) > 1e-5 * (1 + fabs(want)) || fabs(got - ref) > 1e-5 * (1 + fabs(ref)))
                fail_msg("%s: d_in %u d_block %u k %u blocks %u rows %zu, row %zu member %u: "
                         "%.9g, scalar %.9g, double %.9g",
                         kern->name, net->d_in, net->d_block, net->k, net->n_blocks, n_rows, n, i,
                         got, ref, want);
        }
    free(oracle);
    free(logits);
    free(scratch);
    free(x);
    opecom_model_free(m);
    tu_model_free(&d);
}

static const uint32_t widths[] = {1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 64, 100, 257};
#define N_WIDTHS (sizeof widths / sizeof widths[0])

static void run_sweep(const opecom_kernel *kern)
{
    uint64_t seed = tu_seed(kern->name, 2024);
    tu_rng r = {seed};
    for (size_t a = 0; a < N_WIDTHS; a++) {
        for (size_t b = 0; b < N_WIDTHS; b += 3) {
            /* d_in = numerics + one categorical block of 1 */
            uint32_t d_in = widths[a];
            tu_model_shape s = {(uint32_t)(1 + tu_next(&r) % 8), (uint32_t)(1 + tu_next(&r) % 3),
                                widths[b], d_in > 1 ? d_in - 1 : 0, 1, 1,
                                (int)(tu_next(&r) & 1)};
            if (d_in == 1) {
                s.n_numeric = 1;
                s.n_categorical = 0;
            }
            check_kernel(kern, &s, tu_next(&r), (size_t)(1 + tu_next(&r) % 67));
        }
    }
    /* Hidden widths on either side of the SIMD panels (24, 48 and 64 columns)
     * and of the 4-row tiles, where zero-padded columns and tails meet. */
    static const uint32_t edges[] = {23, 24, 25, 47, 48, 49, 63, 64, 65, 95, 129, 256};
    for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++) {
        tu_model_shape s = {(uint32_t)(1 + e % 5), 2, edges[e], 9, 2, 4, (int)(e & 1)};
        check_kernel(kern, &s, tu_next(&r), (size_t)(1 + tu_next(&r) % 37));
    }
}

static void sweep_or_skip(const opecom_kernel *kern)
{
    if (!kern->supported()) {
        print_message("%s kernel: this CPU lacks the instructions, skipped\n", kern->name);
        skip();
    }
    run_sweep(kern);
}

static void test_scalar_matches_naive_tabm(void **state)
{
    (void)state;
    sweep_or_skip(&opecom_kernel_scalar);
}

static void test_avx2_matches_scalar(void **state)
{
    (void)state;
    sweep_or_skip(&opecom_kernel_avx2);
}

static void test_avx512_matches_scalar(void **state)
{
    (void)state;
    sweep_or_skip(&opecom_kernel_avx512);
}

static void test_kernel_names(void **state)
{
    (void)state;
    assert_ptr_equal(opecom_kernel_find("scalar"), &opecom_kernel_scalar);
    assert_non_null(opecom_kernel_find("auto"));
    assert_ptr_equal(opecom_kernel_find("avx2"), opecom_cpu_has_avx2() ? &opecom_kernel_avx2 : NULL);
    assert_ptr_equal(opecom_kernel_find("avx512"),
                     opecom_cpu_has_avx512() ? &opecom_kernel_avx512 : NULL);
    const opecom_kernel *best = opecom_cpu_has_avx512() ? &opecom_kernel_avx512
                                : opecom_cpu_has_avx2() ? &opecom_kernel_avx2
                                                        : &opecom_kernel_scalar;
    assert_ptr_equal(opecom_kernel_find("auto"), best);
    assert_null(opecom_kernel_find("gpu"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_matches_naive_tabm),
        cmocka_unit_test(test_avx2_matches_scalar),
        cmocka_unit_test(test_avx512_matches_scalar),
        cmocka_unit_test(test_kernel_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
