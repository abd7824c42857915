/*
 * test_drift.c - the drift reference: the DRIFT section written and read
 * back, every malformed section rejected with its own message, binning and
 * PSI on a hand-built model against values computed by hand, and the shipped
 * model telling shifted rows from rows drawn from its own reference.
 *
 * The hand-built model is tests/testutil's small random TabM (f0..f3
 * numeric, f4 and f5 categorical with categories c1..c3) with this
 * reference, bins per dim and their offsets in a counts array:
 *   f0  edges 1, 2, 5     fractions .4 .2 .3 .1      offset 0
 *   f1  (one bin)         1                          offset 4
 *   f2  edges 0, 10       .5 .25 .25                 offset 5
 *   f3  edges 0.5         .5 .5                      offset 8
 *   f4  c1 c2 c3 other    .2 .3 .5 0                 offset 10
 *   f5  c1 c2 c3 other    .25 .25 .5 0               offset 14
 *   score edges .2 .5 .8  .25 .25 .25 .25            offset 18 (22 bins)
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "format.h"
#include "internal.h"
#include "testutil.h"

#define DEFAULT_MODEL "models/shoppers-tabm-k4.opm"

/* ========================================================================= *
 * Fixture
 * ========================================================================= */

static const tu_model_shape small = {3, 2, 5, 4, 2, 3, 0};

static const double e0[] = {1, 2, 5}, q0[] = {.4, .2, .3, .1};
static const double q1[] = {1};
static const double e2[] = {0, 10}, q2[] = {.5, .25, .25};
static const double e3[] = {0.5}, q3[] = {.5, .5};
static const double q4[] = {.2, .3, .5, 0};
static const double q5[] = {.25, .25, .5, 0};
static const double es[] = {.2, .5, .8}, qs[] = {.25, .25, .25, .25};

static const opecom_drift_dim_desc dims[7] = {
    {4, e0, q0}, {1, NULL, q1}, {3, e2, q2}, {2, e3, q3},
    {4, NULL, q4}, {4, NULL, q5}, {4, es, qs},
};
static const opecom_drift_desc reference = {1234, dims};

typedef struct fixture {
    tu_model desc;
    unsigned char *bytes; /* with the DRIFT section */
    size_t size;
    opecom_model *m;
} fixture;

static unsigned char *saved(const opecom_model_desc *d, size_t *size, opecom_error *err)
{
    const char *path = tu_tmp_path("drift");
    if (opecom_model_save(d, path, err) != OPECOM_OK)
        return NULL;
    unsigned char *b = tu_read_file(path, size);
    unlink(path);
    return b;
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    opecom_error err;
    tu_model_make(&fx->desc, &small, 42);
    fx->desc.desc.drift = &reference;
    fx->bytes = saved(&fx->desc.desc, &fx->size, &err);
    *state = fx;
    if (fx->bytes == NULL) {
        fprintf(stderr, "save: %s\n", err.message);
        return -1;
    }
    return opecom_model_load_buffer(fx->bytes, fx->size, NULL, &fx->m, NULL) == OPECOM_OK ? 0
                                                                                          : -1;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    opecom_model_free(fx->m);
    tu_model_free(&fx->desc);
    free(fx->bytes);
    free(fx);
    return 0;
}

/* ========================================================================= *
 * Round trip and layout
 * ========================================================================= */

static void test_reference_round_trips(void **state)
{
    fixture *fx = *state;
    opecom_drift_info info;
    opecom_model_info mi;
    assert_int_equal(opecom_drift_describe(fx->m, &info, NULL), OPECOM_OK);
    assert_int_equal(info.n_dims, 7);
    assert_int_equal(info.n_counts, 22);
    assert_int_equal(info.n_rows, 1234);
    opecom_model_describe(fx->m, &mi);
    assert_int_equal(mi.n_drift_dims, 7);
    static const uint32_t offsets[7] = {0, 4, 5, 8, 10, 14, 18};
    for (uint32_t d = 0; d < 7; d++) {
        const char *name;
        uint32_t n, off;
        const double *edges, *fr;
        char want[8];
        snprintf(want, sizeof want, "f%u", d);
        assert_int_equal(opecom_drift_dim(fx->m, d, &name, &n, &off, NULL), OPECOM_OK);
        assert_string_equal(name, d < 6 ? want : "score");
        assert_int_equal(n, dims[d].n_bins);
        assert_int_equal(off, offsets[d]);
        assert_int_equal(opecom_drift_reference(fx->m, d, &edges, &fr, NULL), OPECOM_OK);
        assert_memory_equal(fr, dims[d].fractions, n * sizeof(double));
        if (d == 4 || d == 5) {
            assert_null(edges);
        } else {
            assert_non_null(edges);
            if (n > 1)
                assert_memory_equal(edges, dims[d].edges, (n - 1) * sizeof(double));
        }
    }
    opecom_error err;
    assert_int_equal(opecom_drift_dim(fx->m, 7, NULL, NULL, NULL, &err), OPECOM_EINVAL);
    assert_non_null(strstr(err.message, "out of range"));
    assert_int_equal(opecom_drift_reference(fx->m, 99, NULL, NULL, NULL), OPECOM_EINVAL);
    /* all outputs optional */
    assert_int_equal(opecom_drift_dim(fx->m, 0, NULL, NULL, NULL, NULL), OPECOM_OK);
}

static void test_section_follows_the_required_ones(void **state)
{
    fixture *fx = *state;
    /* no baseline: the table is ids 1..5 then 7 */
    assert_int_equal(opm_rd32(fx->bytes + OPM_HDR_N_SECTIONS), 6);
    assert_int_equal(opm_rd32(fx->bytes + OPM_HDR_SIZE + 5 * OPM_SEC_SIZE), OPM_SECTION_DRIFT);
    uint64_t len = opm_rd64(fx->bytes + OPM_HDR_SIZE + 5 * OPM_SEC_SIZE + OPM_SEC_LENGTH);
    assert_int_equal(len, 64 + 7 * 16 + 8 * (22 + 9));
}

static void test_model_without_reference_is_enodrift(void **state)
{
    fixture *fx = *state;
    opecom_model_desc d = fx->desc.desc;
    d.drift = NULL;
    opecom_model *m = tu_model_load_desc(&d, NULL);
    assert_non_null(m);
    opecom_error err;
    opecom_drift_info info;
    uint64_t counts[22] = {0};
    uint32_t index[7];
    double psi[7];
    opecom_value row[6];
    tu_rng r = {5};
    tu_random_row(m, &r, row, 0);
    assert_int_equal(opecom_drift_describe(m, &info, &err), OPECOM_ENODRIFT);
    assert_non_null(strstr(err.message, "no drift reference"));
    assert_int_equal(opecom_drift_dim(m, 0, NULL, NULL, NULL, NULL), OPECOM_ENODRIFT);
    assert_int_equal(opecom_drift_reference(m, 0, NULL, NULL, NULL), OPECOM_ENODRIFT);
    assert_int_equal(opecom_drift_bin(m, row, 0.5, index, NULL), OPECOM_ENODRIFT);
    assert_int_equal(opecom_drift_psi(m, counts, psi, NULL), OPECOM_ENODRIFT);
    assert_string_equal(opecom_strerror(OPECOM_ENODRIFT), "model has no drift reference");
    opecom_model_info mi;
    opecom_model_describe(m, &mi);
    assert_int_equal(mi.n_drift_dims, 0);
    assert_int_equal(opecom_drift_describe(NULL, &info, NULL), OPECOM_EINVAL);
    opecom_model_free(m);
}

/* ========================================================================= *
 * Binning
 * ========================================================================= */

static void set_row(opecom_value *row, double f0, double f1, double f2, double f3,
                    const char *f4, const char *f5)
{
    const double num[4] = {f0, f1, f2, f3};
    for (int i = 0; i < 4; i++)
        row[i] = (opecom_value){num[i], NULL};
    row[4] = (opecom_value){0, f4};
    row[5] = (opecom_value){0, f5};
}

static void expect_bins(const opecom_model *m, const opecom_value *row, double p,
                        const uint32_t want[7])
{
    uint32_t index[7];
    opecom_error err;
    opecom_status s = opecom_drift_bin(m, row, p, index, &err);
    if (s != OPECOM_OK)
        fail_msg("bin: %s", err.message);
    assert_memory_equal(index, want, sizeof index);
}

static void test_bins_follow_the_edge_rule(void **state)
{
    fixture *fx = *state;
    opecom_value row[6];
    /* f0 = 2 is an edge: it goes left (bin 1); f3 0.75 > 0.5: bin 1; c3 is
     * category 2; "zzz" is other; 0.5 is an edge: score bin 1. */
    set_row(row, 2, 7, 0, 0.75, "c3", "zzz");
    expect_bins(fx->m, row, 0.5, (const uint32_t[7]){0 + 1, 4, 5 + 0, 8 + 1, 10 + 2, 14 + 3, 18 + 1});
    set_row(row, 0, 0, 10, 0.5, "c1", "c2");
    expect_bins(fx->m, row, 0.0, (const uint32_t[7]){0, 4, 5 + 1, 8, 10, 15, 18});
    set_row(row, 1, 100, 10.000001, 0.5000001, "c2", "c1");
    expect_bins(fx->m, row, 0.2000001, (const uint32_t[7]){0, 4, 5 + 2, 9, 11, 14, 19});
    set_row(row, 5, 3, 3, 100, "c3", "c3");
    expect_bins(fx->m, row, 0.8, (const uint32_t[7]){2, 4, 6, 9, 12, 16, 20});
    set_row(row, 5.5, 3, 3, 100, "c3", "c3");
    expect_bins(fx->m, row, 1.0, (const uint32_t[7]){3, 4, 6, 9, 12, 16, 21});
}

static void test_unknown_category_goes_to_other(void **state)
{
    fixture *fx = *state;
    opecom_value row[6];
    set_row(row, 0, 0, 0, 0, "C1", "");
    expect_bins(fx->m, row, 0.1, (const uint32_t[7]){0, 4, 5, 8, 13, 17, 18});
    /* a number matches only categories whose text is that number: none here */
    row[4] = (opecom_value){2.0, NULL};
    expect_bins(fx->m, row, 0.1, (const uint32_t[7]){0, 4, 5, 8, 13, 17, 18});
}

static void test_bin_refuses_what_predict_refuses(void **state)
{
    fixture *fx = *state;
    opecom_value row[6];
    uint32_t index[7];
    opecom_error err;
    set_row(row, (double)NAN, 0, 0, 0, "c1", "c1");
    assert_int_equal(opecom_drift_bin(fx->m, row, 0.5, index, &err), OPECOM_EINVAL);
    assert_int_equal(err.feature, 0);
    assert_non_null(strstr(err.message, "'f0' is NaN"));
    set_row(row, 0, 101, 0, 0, "c1", "c1"); /* f1 has max 100 */
    assert_int_equal(opecom_drift_bin(fx->m, row, 0.5, index, &err), OPECOM_EINVAL);
    assert_non_null(strstr(err.message, "f1"));
    set_row(row, 0, 0, 0, 0, "c1", "c1");
    row[2].str = "3";
    assert_int_equal(opecom_drift_bin(fx->m, row, 0.5, index, &err), OPECOM_EINVAL);
    assert_non_null(strstr(err.message, "'f2' is numeric"));
    set_row(row, 0, 0, 0, 0, "c1", NULL);
    row[5].num = (double)INFINITY;
    assert_int_equal(opecom_drift_bin(fx->m, row, 0.5, index, &err), OPECOM_EINVAL);
    assert_int_equal(err.feature, 5);
    set_row(row, 0, 0, 0, 0, "c1", "c1");
    assert_int_equal(opecom_drift_bin(fx->m, row, 1.5, index, &err), OPECOM_EINVAL);
    assert_int_equal(err.feature, 6);
    assert_non_null(strstr(err.message, "probability 1.5"));
    assert_int_equal(opecom_drift_bin(fx->m, row, (double)NAN, index, &err), OPECOM_EINVAL);
    assert_int_equal(opecom_drift_bin(fx->m, row, -0.01, index, &err), OPECOM_EINVAL);
    assert_int_equal(opecom_drift_bin(fx->m, NULL, 0.5, index, &err), OPECOM_EINVAL);
    assert_int_equal(opecom_drift_bin(fx->m, row, 0.5, NULL, &err), OPECOM_EINVAL);
}

/* ========================================================================= *
 * PSI
 * ========================================================================= */

static void test_psi_is_zero_for_the_training_fractions(void **state)
{
    fixture *fx = *state;
    uint64_t counts[22];
    double psi[7];
    for (uint32_t d = 0, at = 0; d < 7; d++)
        for (uint32_t i = 0; i < dims[d].n_bins; i++)
            counts[at++] = (uint64_t)llround(dims[d].fractions[i] * 100);
    assert_int_equal(opecom_drift_psi(fx->m, counts, psi, NULL), OPECOM_OK);
    for (uint32_t d = 0; d < 7; d++)
        assert_true(psi[d] == 0.0);
    /* scale does not matter, only fractions */
    for (int i = 0; i < 22; i++)
        counts[i] *= 1000003;
    assert_int_equal(opecom_drift_psi(fx->m, counts, psi, NULL), OPECOM_OK);
    for (uint32_t d = 0; d < 7; d++)
        assert_true(fabs(psi[d]) < 1e-15);
}

static void test_psi_of_known_shifts(void **state)
{
    fixture *fx = *state;
    uint64_t counts[22] = {0};
    double psi[7];
    const double eps = OPECOM_DRIFT_EPSILON;
    /* f0: .4 .2 .3 .1 observed as .1 .2 .3 .4 */
    counts[0] = 1, counts[1] = 2, counts[2] = 3, counts[3] = 4;
    /* f1: nothing observed */
    /* f2: as trained */
    counts[5] = 2, counts[6] = 1, counts[7] = 1;
    /* f3: .5 .5 observed as .8 .2 */
    counts[8] = 80, counts[9] = 20;
    /* f4: .2 .3 .5 0 observed as .2 .3 .4 .1 (a tenth unknown categories) */
    counts[10] = 20, counts[11] = 30, counts[12] = 40, counts[13] = 10;
    /* f5: everything in c3 */
    counts[16] = 7;
    /* score: everything above .8 */
    counts[21] = 100;
    assert_int_equal(opecom_drift_psi(fx->m, counts, psi, NULL), OPECOM_OK);
    double want[7] = {
        2 * 0.3 * log(4.0),
        (double)NAN,
        0.0,
        (0.8 - 0.5) * log(0.8 / 0.5) + (0.2 - 0.5) * log(0.2 / 0.5),
        (0.4 - 0.5) * log(0.4 / 0.5) + (0.1 - eps) * log(0.1 / eps),
        2 * (eps - 0.25) * log(eps / 0.25) + 0.5 * log(2.0),
        3 * (eps - 0.25) * log(eps / 0.25) + 0.75 * log(4.0),
    };
    assert_true(fabs(want[3] - 0.3 * log(4.0)) < 1e-15); /* = .3 ln 4 */
    for (uint32_t d = 0; d < 7; d++) {
        if (isnan(want[d])) {
            assert_true(isnan(psi[d]));
            continue;
        }
        if (!(fabs(psi[d] - want[d]) <= 1e-12))
            fail_msg("dim %u: psi %.17g, by hand %.17g", d, psi[d], want[d]);
    }
    /* the rule of thumb bands */
    assert_true(psi[0] > 0.25 && psi[3] > 0.25 && psi[2] < 0.1);
    assert_int_equal(opecom_drift_psi(fx->m, NULL, psi, NULL), OPECOM_EINVAL);
    assert_int_equal(opecom_drift_psi(fx->m, counts, NULL, NULL), OPECOM_EINVAL);
}

static void test_binned_rows_give_the_psi(void **state)
{
    fixture *fx = *state;
    uint64_t counts[22] = {0};
    uint32_t index[7];
    double psi[7];
    opecom_value row[6];
    /* 4 rows: f3 always 0.9 (bin 1), f4 two c1 and two other */
    for (int i = 0; i < 4; i++) {
        set_row(row, 0, 0, 0, 0.9, i < 2 ? "c1" : "nope", "c3");
        assert_int_equal(opecom_drift_bin(fx->m, row, 0.3, index, NULL), OPECOM_OK);
        for (int d = 0; d < 7; d++)
            counts[index[d]]++;
    }
    assert_int_equal(opecom_drift_psi(fx->m, counts, psi, NULL), OPECOM_OK);
    const double eps = OPECOM_DRIFT_EPSILON;
    double f3 = (eps - 0.5) * log(eps / 0.5) + 0.5 * log(2.0);
    double f4 = 0.3 * log(0.5 / 0.2) + (eps - 0.3) * log(eps / 0.3) + (eps - 0.5) * log(eps / 0.5) +
                (0.5 - eps) * log(0.5 / eps);
    assert_true(fabs(psi[3] - f3) < 1e-12);
    assert_true(fabs(psi[4] - f4) < 1e-12);
    assert_true(psi[1] == 0.0); /* one bin: never drifts */
}

/* ========================================================================= *
 * Malformed sections
 * ========================================================================= */

static uint64_t drift_at(const fixture *fx)
{
    return opm_rd64(fx->bytes + OPM_HDR_SIZE + 5 * OPM_SEC_SIZE + OPM_SEC_OFFSET);
}

/* Patches a u32/u64 (width 4/8) of a copy, fixes the CRC, loads it. */
static void expect_patch(const fixture *fx, uint64_t at, uint64_t value, int width,
                         opecom_status want, const char *needle)
{
    unsigned char *b = malloc(fx->size);
    memcpy(b, fx->bytes, fx->size);
    if (width == 4)
        opm_wr32(b + at, (uint32_t)value);
    else
        opm_wr64(b + at, value);
    opm_wr32(b + OPM_HDR_CRC, opecom_opm_crc(b, fx->size));
    opecom_model *m = NULL;
    opecom_error err;
    memset(&err, 0, sizeof err);
    opecom_status s = opecom_model_load_buffer(b, fx->size, NULL, &m, &err);
    if (s != want || strstr(err.message, needle) == NULL)
        fail_msg("patch at %llu: got %d '%s', want %d with '%s'", (unsigned long long)at, s,
                 err.message, want, needle);
    assert_null(m);
    assert_true(err.offset >= 0);
    free(b);
}

static uint64_t f64_bits(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

static void test_bad_drift_section_is_rejected(void **state)
{
    fixture *fx = *state;
    uint64_t at = drift_at(fx), entry = OPM_HDR_SIZE + 5 * OPM_SEC_SIZE;
    uint64_t dim = at + OPM_DRIFT_HDR_SIZE;     /* dim records */
    uint64_t fr = dim + 7 * OPM_DRIFT_DIM_SIZE; /* fractions */
    uint64_t ed = fr + 22 * 8;                  /* edges */
    uint64_t len = opm_rd64(fx->bytes + entry + OPM_SEC_LENGTH);

    /* header */
    expect_patch(fx, at + OPM_DRIFT_N_DIMS, 6, 4, OPECOM_ESECTION, "n_dims at offset");
    expect_patch(fx, at + OPM_DRIFT_N_COUNTS, 23, 4, OPECOM_ESECTION, "23 bins and 9 edges take");
    expect_patch(fx, at + OPM_DRIFT_N_EDGES, 0xffffffffu, 4, OPECOM_ESECTION, "take");
    expect_patch(fx, at + OPM_DRIFT_RESERVED0, 1, 4, OPECOM_ESECTION, "reserved field");
    expect_patch(fx, at + OPM_DRIFT_RESERVED + 5, 1, 4, OPECOM_ESECTION, "reserved byte");
    expect_patch(fx, at + OPM_DRIFT_N_ROWS, 0, 8, OPECOM_ESECTION, "n_rows");
    expect_patch(fx, entry + OPM_SEC_LENGTH, len - 8, 8, OPECOM_ESECTION, "drift section is");
    expect_patch(fx, entry + OPM_SEC_LENGTH, 40, 8, OPECOM_ESECTION, "shorter than its");
    /* dims */
    expect_patch(fx, dim + OPM_DRIFT_DIM_KIND, OPM_DRIFT_CATEGORY, 4, OPECOM_ESECTION,
                 "dim 0 ('f0'): kind");
    expect_patch(fx, dim + 4 * 16 + OPM_DRIFT_DIM_KIND, OPM_DRIFT_QUANTILE, 4, OPECOM_ESECTION,
                 "dim 4 ('f4'): kind");
    expect_patch(fx, dim + 6 * 16 + OPM_DRIFT_DIM_KIND, 9, 4, OPECOM_ESECTION, "('score'): kind");
    expect_patch(fx, dim + 4 * 16 + OPM_DRIFT_DIM_N_BINS, 3, 4, OPECOM_ESECTION,
                 "expected 4 (3 categories + other)");
    expect_patch(fx, dim + OPM_DRIFT_DIM_N_BINS, 0, 4, OPECOM_ESECTION, "allowed 1..1024");
    expect_patch(fx, dim + OPM_DRIFT_DIM_N_BINS, 2000, 4, OPECOM_ESECTION, "allowed 1..1024");
    expect_patch(fx, dim + OPM_DRIFT_DIM_N_BINS, 1000, 4, OPECOM_ESECTION,
                 "more than the header's");
    expect_patch(fx, dim + OPM_DRIFT_DIM_N_BINS, 3, 4, OPECOM_ESECTION,
                 "the dims hold 21 bins and 8 edges");
    expect_patch(fx, dim + 2 * 16 + OPM_DRIFT_DIM_RESERVED, 1, 8, OPECOM_ESECTION,
                 "dim 2 ('f2'): reserved");
    /* fractions: f3's first is at 8 */
    expect_patch(fx, fr + 8 * 8, f64_bits((double)NAN), 8, OPECOM_EVALUE,
                 "dim 3 ('f3'): fraction 0");
    expect_patch(fx, fr + 9 * 8, f64_bits((double)INFINITY), 8, OPECOM_EVALUE,
                 "fraction 1 (offset");
    expect_patch(fx, fr + 9 * 8, f64_bits(-0.5), 8, OPECOM_ESECTION, "must be >= 0");
    expect_patch(fx, fr + 9 * 8, f64_bits(0.6), 8, OPECOM_ESECTION, "sum to 1.1");
    expect_patch(fx, fr + 13 * 8, f64_bits(1e-3), 8, OPECOM_ESECTION, "dim 4 ('f4'): fractions sum");
    /* edges: f0 1 2 5 | f2 0 10 | f3 0.5 | score .2 .5 .8 */
    expect_patch(fx, ed + 1 * 8, f64_bits((double)NAN), 8, OPECOM_EVALUE, "dim 0 ('f0'): edge 1");
    expect_patch(fx, ed + 1 * 8, f64_bits(1.0), 8, OPECOM_ESECTION, "not above edge 0");
    expect_patch(fx, ed + 4 * 8, f64_bits(-1.0), 8, OPECOM_ESECTION, "dim 2 ('f2'): edge 1");
    expect_patch(fx, ed + 8 * 8, f64_bits(1.5), 8, OPECOM_ESECTION, "outside [0, 1]");
    expect_patch(fx, ed + 6 * 8, f64_bits(-0.1), 8, OPECOM_ESECTION, "edge 0 (offset");
}

static void test_save_rejects_bad_references(void **state)
{
    fixture *fx = *state;
    const char *path = tu_tmp_path("baddrift");
    opecom_model_desc d = fx->desc.desc;
    opecom_drift_dim_desc bad[7];
    opecom_drift_desc ref = {10, bad};
    opecom_error err;
    d.drift = &ref;

    memcpy(bad, dims, sizeof bad);
    bad[4].n_bins = 3;
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_ESPEC);
    assert_non_null(strstr(err.message, "dim 4 ('f4') has 3 bins, expected 4"));
    memcpy(bad, dims, sizeof bad);
    bad[6].n_bins = 0;
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_ESPEC);
    assert_non_null(strstr(err.message, "'score'"));
    memcpy(bad, dims, sizeof bad);
    bad[0].edges = NULL;
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_ESPEC);
    assert_non_null(strstr(err.message, "edges is NULL"));
    memcpy(bad, dims, sizeof bad);
    bad[5].fractions = NULL;
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_ESPEC);
    memcpy(bad, dims, sizeof bad);
    const double sum_off[4] = {.5, .5, .5, 0};
    bad[4].fractions = sum_off; /* the loader's own check, run before writing */
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_ESECTION);
    assert_non_null(strstr(err.message, "fractions sum to 1.5"));
    memcpy(bad, dims, sizeof bad);
    ref.n_rows = 0;
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_ESECTION);
    ref.dims = NULL;
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_ESPEC);
    assert_int_equal(access(path, F_OK), -1); /* nothing was written */
}

/* ========================================================================= *
 * The shipped model: shifted rows stand out
 * ========================================================================= */

/* A raw value in bin b of quantile dim D (edges e, n bins): the bin's upper
 * edge, or above the last edge for the top bin (inside the valid range). */
static double value_in_bin(const opecom_feature_info *fi, const double *e, uint32_t n,
                           uint32_t b)
{
    if (n == 1)
        return fi->has_min ? fi->min : 0.0;
    if (b < n - 1)
        return e[b];
    return fi->has_max ? (e[n - 2] + fi->max) / 2 : e[n - 2] * 2 + 1;
}

/* n rows whose every feature is drawn independently from the stored
 * reference; texts point into the model. */
static void draw_rows(const opecom_model *m, tu_rng *r, opecom_value *rows, size_t n)
{
    opecom_model_info mi;
    opecom_model_describe(m, &mi);
    for (size_t i = 0; i < n; i++) {
        for (uint32_t f = 0; f < mi.n_features; f++) {
            opecom_feature_info fi;
            const double *e, *q;
            uint32_t nb, b = 0;
            opecom_model_feature(m, f, &fi);
            opecom_drift_dim(m, f, NULL, &nb, NULL, NULL);
            opecom_drift_reference(m, f, &e, &q, NULL);
            double u = tu_uniform(r, 0, 1), c = q[0];
            while (b + 1 < nb && u >= c)
                c += q[++b];
            opecom_value *v = &rows[i * mi.n_features + f];
            if (fi.type == OPECOM_FEATURE_CATEGORICAL)
                *v = (opecom_value){0, b < fi.n_categories ? opecom_model_category(m, f, b)
                                                           : "not-a-category"};
            else
                *v = (opecom_value){value_in_bin(&fi, e, nb, b), NULL};
        }
    }
}

/* Scores the rows, bins each with its probability, returns the PSI per dim. */
static void psi_of_rows(const opecom_model *m, const opecom_value *rows, size_t n, double *psi)
{
    opecom_model_info mi;
    opecom_drift_info di;
    opecom_model_describe(m, &mi);
    assert_int_equal(opecom_drift_describe(m, &di, NULL), OPECOM_OK);
    uint64_t *counts = calloc(di.n_counts, sizeof *counts);
    opecom_result *res = calloc(n, sizeof *res);
    uint32_t index[64];
    opecom_workspace *ws = NULL;
    opecom_error err;
    assert_int_equal(opecom_workspace_create(m, 64, &ws, NULL), OPECOM_OK);
    if (opecom_predict_batch(m, ws, rows, n, res, &err) != OPECOM_OK)
        fail_msg("predict: %s", err.message);
    for (size_t i = 0; i < n; i++) {
        if (opecom_drift_bin(m, rows + i * mi.n_features, res[i].probability, index, &err) !=
            OPECOM_OK)
            fail_msg("bin: %s", err.message);
        for (uint32_t d = 0; d < di.n_dims; d++)
            counts[index[d]]++;
    }
    assert_int_equal(opecom_drift_psi(m, counts, psi, NULL), OPECOM_OK);
    opecom_workspace_free(ws);
    free(res);
    free(counts);
}

static void test_shipped_model_flags_exactly_the_shifted_features(void **state)
{
    (void)state;
    opecom_model *m = NULL;
    opecom_error err;
    if (opecom_model_load(DEFAULT_MODEL, NULL, &m, &err) != OPECOM_OK)
        fail_msg("%s: %s", DEFAULT_MODEL, err.message);
    opecom_model_info mi;
    opecom_drift_info di;
    opecom_model_describe(m, &mi);
    assert_int_equal(opecom_drift_describe(m, &di, NULL), OPECOM_OK);
    assert_int_equal(di.n_dims, mi.n_features + 1);
    const size_t n = 4000;
    opecom_value *rows = calloc(n * mi.n_features, sizeof *rows);
    double base[64], shifted[64];
    tu_rng r = {tu_seed("drift", 20261203)};
    int32_t pv = opecom_feature_index(m, "PageValues"), month = opecom_feature_index(m, "Month");
    assert_true(pv >= 0 && month >= 0);

    draw_rows(m, &r, rows, n);
    psi_of_rows(m, rows, n, base);
    for (size_t i = 0; i < n; i++) {
        rows[i * mi.n_features + (uint32_t)pv].num *= 10;
        rows[i * mi.n_features + (uint32_t)month].str = "Nov";
    }
    psi_of_rows(m, rows, n, shifted);

    for (uint32_t d = 0; d < di.n_dims; d++) {
        const char *name;
        opecom_drift_dim(m, d, &name, NULL, NULL, NULL);
        print_message("# PSI %-24s drawn from the reference %.4f, PageValues x10 and Month "
                      "Nov %.4f\n",
                      name, base[d], shifted[d]);
    }
    for (uint32_t d = 0; d < mi.n_features; d++) {
        int moved = d == (uint32_t)pv || d == (uint32_t)month;
        assert_true(base[d] < 0.1);
        if (moved)
            assert_true(shifted[d] > 0.25);
        else
            assert_true(shifted[d] < 0.1);
    }
    /* Both shifts raise the purchase probability: the score moves with them. */
    assert_true(shifted[mi.n_features] > base[mi.n_features] + 0.25);
    free(rows);
    opecom_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_round_trips),
        cmocka_unit_test(test_section_follows_the_required_ones),
        cmocka_unit_test(test_model_without_reference_is_enodrift),
        cmocka_unit_test(test_bins_follow_the_edge_rule),
        cmocka_unit_test(test_unknown_category_goes_to_other),
        cmocka_unit_test(test_bin_refuses_what_predict_refuses),
        cmocka_unit_test(test_psi_is_zero_for_the_training_fractions),
        cmocka_unit_test(test_psi_of_known_shifts),
        cmocka_unit_test(test_binned_rows_give_the_psi),
        cmocka_unit_test(test_bad_drift_section_is_rejected),
        cmocka_unit_test(test_save_rejects_bad_references),
        cmocka_unit_test(test_shipped_model_flags_exactly_the_shifted_features),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
