/*
 * test_model.c - the .opm writer and loader: round trips (with and without
 * the optional explanation baseline and drift reference), and every way a
 * damaged or hostile file is rejected with its own status, a message naming
 * the field or offset, no crash and no leak (the sanitizer run checks that).
 * The fixture carries both optional sections, so the truncation and bit-flip
 * walks cross them too; test_drift.c checks the DRIFT section field by field.
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

/* ========================================================================= *
 * Allocation failure injection (linked with -Wl,--wrap=malloc,...)
 * ========================================================================= */

static long alloc_count;
static long alloc_fail_at; /* 0: never fail */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
int __wrap_posix_memalign(void **p, size_t a, size_t n);

static int should_fail(void) { return alloc_fail_at > 0 && ++alloc_count == alloc_fail_at; }
void *__wrap_malloc(size_t n) { return should_fail() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { return should_fail() ? NULL : __real_calloc(n, m); }
int __wrap_posix_memalign(void **p, size_t a, size_t n)
{
    return should_fail() ? 12 /* ENOMEM */ : __real_posix_memalign(p, a, n);
}

/* ========================================================================= *
 * Fixtures
 * ========================================================================= */

static const tu_model_shape small = {3, 2, 5, 4, 2, 3, 0};

/* The fixture's explanation baseline: 3 raw rows (features f0..f3 numeric,
 * f4, f5 categorical with categories c1..c3), weights 1:2:1. */
static const opecom_value base_rows[3 * 6] = {
    {0, NULL}, {1.5, NULL}, {2, NULL}, {0.25, NULL}, {0, "c1"}, {0, "c2"},
    {3, NULL}, {0, NULL},   {7, NULL}, {1, NULL},    {0, "c3"}, {0, "c3"},
    {9, NULL}, {4, NULL},   {0, NULL}, {50, NULL},   {0, "c2"}, {0, "c1"},
};
static const double base_weights[3] = {1, 2, 1};

/* The fixture's drift reference: quantile bins for f0..f3 and the score,
 * c1..c3 + other for f4 and f5. */
static const double d_edges[] = {1, 2, 0.5};
static const double d_half[] = {.5, .5}, d_one[] = {1}, d_cat[] = {.25, .25, .5, 0};
static const opecom_drift_dim_desc drift_dims[7] = {
    {2, d_edges, d_half}, {1, NULL, d_one}, {2, d_edges + 1, d_half}, {1, NULL, d_one},
    {4, NULL, d_cat},     {4, NULL, d_cat}, {2, d_edges + 2, d_half},
};
static const opecom_drift_desc drift_ref = {100, drift_dims};

typedef struct fixture {
    tu_model desc;
    unsigned char *bytes; /* with the baseline section */
    size_t size;
    unsigned char *plain; /* the same model without a baseline */
    size_t plain_size;
} fixture;

static unsigned char *saved(const opecom_model_desc *d, size_t *size)
{
    const char *path = tu_tmp_path("fixture");
    opecom_error err;
    if (opecom_model_save(d, path, &err) != OPECOM_OK) {
        fprintf(stderr, "save: %s\n", err.message);
        return NULL;
    }
    unsigned char *b = tu_read_file(path, size);
    unlink(path);
    return b;
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    tu_model_make(&fx->desc, &small, 42);
    fx->plain = saved(&fx->desc.desc, &fx->plain_size);
    fx->desc.desc.baseline_rows = base_rows;
    fx->desc.desc.baseline_weights = base_weights;
    fx->desc.desc.n_baseline = 3;
    fx->desc.desc.drift = &drift_ref;
    fx->bytes = saved(&fx->desc.desc, &fx->size);
    *state = fx;
    return fx->bytes && fx->plain ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    tu_model_free(&fx->desc);
    free(fx->bytes);
    free(fx->plain);
    free(fx);
    return 0;
}

static opecom_status load(const unsigned char *b, size_t n, opecom_error *err)
{
    opecom_model *m = NULL;
    memset(err, 0, sizeof *err);
    opecom_status s = opecom_model_load_buffer(b, n, NULL, &m, err);
    opecom_model_free(m);
    return s;
}

/* A copy of the fixture with a u32/u64 field patched and the CRC fixed, so
 * only the structural checks can catch it. */
static unsigned char *patched(const fixture *fx, size_t at, uint64_t value, int width)
{
    unsigned char *b = malloc(fx->size);
    memcpy(b, fx->bytes, fx->size);
    if (width == 4)
        opm_wr32(b + at, (uint32_t)value);
    else
        opm_wr64(b + at, value);
    opm_wr32(b + OPM_HDR_CRC, opecom_opm_crc(b, fx->size));
    return b;
}

static uint64_t section_offset(const unsigned char *b, uint32_t id)
{
    for (uint32_t i = 0; i < OPM_N_SECTIONS; i++) {
        const unsigned char *e = b + OPM_HDR_SIZE + i * OPM_SEC_SIZE;
        if (opm_rd32(e) == id)
            return opm_rd64(e + OPM_SEC_OFFSET);
    }
    return 0;
}

static void expect_patch(const fixture *fx, size_t at, uint64_t value, int width,
                         opecom_status want, const char *needle)
{
    unsigned char *b = patched(fx, at, value, width);
    opecom_error err;
    opecom_status s = load(b, fx->size, &err);
    if (s != want || strstr(err.message, needle) == NULL)
        fprintf(stderr, "patch at %zu: got %d '%s', want %d with '%s'\n", at, s, err.message,
                want, needle);
    assert_int_equal(s, want);
    assert_non_null(strstr(err.message, needle));
    free(b);
}

/* The same for a 32-bit float written at `at`. */
static void expect_patch_f32(const fixture *fx, size_t at, float value, opecom_status want,
                             const char *needle)
{
    uint32_t u;
    memcpy(&u, &value, sizeof u);
    expect_patch(fx, at, u, 4, want, needle);
}

/* ========================================================================= *
 * Round trips
 * ========================================================================= */

static void test_round_trip_keeps_architecture_and_schema(void **state)
{
    fixture *fx = *state;
    opecom_model *m = NULL;
    opecom_error err;
    assert_int_equal(opecom_model_load_buffer(fx->bytes, fx->size, NULL, &m, &err), OPECOM_OK);
    opecom_model_info info;
    assert_int_equal(opecom_model_describe(m, &info), OPECOM_OK);
    assert_int_equal(info.k, 3);
    assert_int_equal(info.n_blocks, 2);
    assert_int_equal(info.d_block, 5);
    assert_int_equal(info.d_in, 4 + 2 * 3);
    assert_int_equal(info.n_features, 6);
    assert_int_equal(info.n_drift_dims, 7);
    assert_int_equal(info.file_size, fx->size);
    assert_string_equal(info.spec_json, fx->desc.desc.spec_json);
    for (uint32_t f = 0; f < info.n_features; f++) {
        opecom_feature_info fi;
        const opecom_feature_desc *want = &fx->desc.features[f];
        assert_int_equal(opecom_model_feature(m, f, &fi), OPECOM_OK);
        assert_string_equal(fi.name, want->name);
        assert_int_equal(opecom_feature_index(m, want->name), (int32_t)f);
        assert_int_equal(fi.type, want->type);
        if (fi.type == OPECOM_FEATURE_CATEGORICAL) {
            assert_int_equal(fi.n_categories, want->n_categories);
            for (uint32_t c = 0; c < fi.n_categories; c++)
                assert_string_equal(opecom_model_category(m, f, c), want->categories[c]);
            assert_null(opecom_model_category(m, f, fi.n_categories));
        } else {
            assert_int_equal(fi.transform, want->transform);
            assert_true(fi.mean == want->mean && fi.std == want->std);
            assert_int_equal(fi.has_min, want->has_min);
        }
    }
    assert_int_equal(opecom_feature_index(m, "no-such-feature"), -1);
    assert_int_equal(opecom_model_feature(m, info.n_features, &(opecom_feature_info){0}),
                     OPECOM_EINVAL);
    opecom_model_free(m);
}

static void test_file_and_buffer_loads_agree(void **state)
{
    fixture *fx = *state;
    const char *path = tu_tmp_path("agree");
    assert_int_equal(tu_write_file(path, fx->bytes, fx->size), 0);
    opecom_model *a = NULL, *b = NULL;
    assert_int_equal(opecom_model_load(path, NULL, &a, NULL), OPECOM_OK);
    assert_int_equal(opecom_model_load_buffer(fx->bytes, fx->size, NULL, &b, NULL), OPECOM_OK);
    tu_rng r = {7};
    opecom_value row[6];
    tu_random_row(a, &r, row, 0);
    opecom_result ra, rb;
    assert_int_equal(opecom_predict(a, NULL, row, &ra, NULL), OPECOM_OK);
    assert_int_equal(opecom_predict(b, NULL, row, &rb, NULL), OPECOM_OK);
    assert_memory_equal(ra.member, rb.member, sizeof ra.member);
    opecom_model_free(a);
    opecom_model_free(b);
    unlink(path);
}

static void test_save_is_deterministic(void **state)
{
    fixture *fx = *state;
    const char *path = tu_tmp_path("again");
    assert_int_equal(opecom_model_save(&fx->desc.desc, path, NULL), OPECOM_OK);
    size_t n;
    unsigned char *again = tu_read_file(path, &n);
    assert_int_equal(n, fx->size);
    assert_memory_equal(again, fx->bytes, n);
    free(again);
    unlink(path);
}

/* ========================================================================= *
 * Damaged files
 * ========================================================================= */

static void test_missing_file_is_eio(void **state)
{
    (void)state;
    opecom_model *m = NULL;
    opecom_error err;
    assert_int_equal(opecom_model_load("/nonexistent/model.opm", NULL, &m, &err), OPECOM_EIO);
    assert_null(m);
    assert_non_null(strstr(err.message, "/nonexistent/model.opm"));
}

static void test_wrong_magic(void **state)
{
    fixture *fx = *state;
    unsigned char *b = malloc(fx->size);
    memcpy(b, fx->bytes, fx->size);
    b[1] = 'X';
    opecom_error err;
    assert_int_equal(load(b, fx->size, &err), OPECOM_EMAGIC);
    assert_int_equal(err.offset, 0);
    free(b);
}

static void test_unknown_version(void **state)
{
    fixture *fx = *state;
    unsigned char *b = malloc(fx->size);
    memcpy(b, fx->bytes, fx->size);
    opm_wr32(b + OPM_HDR_VERSION, 2);
    opecom_error err;
    assert_int_equal(load(b, fx->size, &err), OPECOM_EVERSION);
    assert_int_equal(err.offset, OPM_HDR_VERSION);
    assert_non_null(strstr(err.message, "version 2"));
    free(b);
}

static void test_every_truncation_is_rejected(void **state)
{
    fixture *fx = *state;
    opecom_error err;
    for (size_t n = 0; n < fx->size; n++) {
        opecom_status s = load(fx->bytes, n, &err);
        if (s != OPECOM_ETRUNCATED)
            fail_msg("truncated to %zu bytes: status %d (%s)", n, s, err.message);
    }
    /* One byte too many is not silently ignored either. */
    unsigned char *b = calloc(1, fx->size + 1);
    memcpy(b, fx->bytes, fx->size);
    assert_int_equal(load(b, fx->size + 1, &err), OPECOM_EHEADER);
    assert_non_null(strstr(err.message, "unexpected bytes"));
    free(b);
}

static void test_every_bit_flip_is_rejected(void **state)
{
    fixture *fx = *state;
    unsigned char *b = malloc(fx->size);
    memcpy(b, fx->bytes, fx->size);
    opecom_error err;
    for (size_t i = 0; i < fx->size; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (unsigned char)(1u << bit);
            opecom_status s = load(b, fx->size, &err);
            b[i] ^= (unsigned char)(1u << bit);
            opecom_status want = i < OPM_HDR_VERSION ? OPECOM_EMAGIC
                                 : i < OPM_HDR_HEADER_SIZE ? OPECOM_EVERSION
                                 : i < OPM_HDR_FILE_SIZE ? OPECOM_EHEADER
                                 : i < OPM_HDR_N_SECTIONS ? OPECOM_ETRUNCATED
                                                          : OPECOM_ECRC;
            /* A flipped size bit may shrink the declared size instead. */
            if (want == OPECOM_ETRUNCATED && s == OPECOM_EHEADER)
                want = OPECOM_EHEADER;
            if (s != want)
                fail_msg("bit %d of byte %zu: status %d, want %d (%s)", bit, i, s, want,
                         err.message);
        }
    }
    free(b);
}

static void test_structural_errors_with_valid_crc(void **state)
{
    fixture *fx = *state;
    const unsigned char *b = fx->bytes;
    uint64_t arch = section_offset(b, OPM_SECTION_ARCH);
    uint64_t feat = section_offset(b, OPM_SECTION_FEATURES);
    uint64_t tens = section_offset(b, OPM_SECTION_TENSORS);

    expect_patch(fx, OPM_HDR_N_SECTIONS, 8, 4, OPECOM_ESECTION, "expected 5..7");
    expect_patch(fx, OPM_HDR_N_SECTIONS, 4, 4, OPECOM_ESECTION, "n_sections");
    expect_patch(fx, OPM_HDR_SIZE + OPM_SEC_ID, 9, 4, OPECOM_ESECTION, "unknown id 9");
    expect_patch(fx, OPM_HDR_SIZE + OPM_SEC_ID, 2, 4, OPECOM_ESECTION, "appears twice");
    expect_patch(fx, OPM_HDR_SIZE + OPM_SEC_OFFSET, fx->size + 64, 8, OPECOM_ESECTION,
                 "outside the payload");
    expect_patch(fx, OPM_HDR_SIZE + OPM_SEC_LENGTH, UINT64_MAX, 8, OPECOM_ESECTION,
                 "outside the payload");
    expect_patch(fx, OPM_HDR_SIZE + OPM_SEC_OFFSET, 0, 8, OPECOM_ESECTION, "outside");
    expect_patch(fx, OPM_HDR_SIZE + OPM_SEC_OFFSET, feat, 8, OPECOM_ESECTION, "overlap");
    expect_patch(fx, OPM_HDR_RESERVED + 3, 1, 4, OPECOM_EHEADER, "reserved");
    expect_patch(fx, arch + OPM_ARCH_K, 1000, 4, OPECOM_EARCH, "'k'");
    expect_patch(fx, arch + OPM_ARCH_K, 0, 4, OPECOM_EARCH, "'k'");
    expect_patch(fx, arch + OPM_ARCH_D_BLOCK, 0x7fffffff, 4, OPECOM_EARCH, "d_block");
    expect_patch(fx, arch + OPM_ARCH_N_BLOCKS, 200, 4, OPECOM_EARCH, "n_blocks");
    expect_patch(fx, arch + OPM_ARCH_D_IN, 11, 4, OPECOM_EARCH, "d_in = 11");
    expect_patch(fx, arch + OPM_ARCH_N_FEATURES, 0xffffff, 4, OPECOM_EARCH, "n_features");
    expect_patch(fx, arch + OPM_ARCH_ACTIVATION, 7, 4, OPECOM_EARCH, "activation");
    expect_patch(fx, arch + OPM_ARCH_THRESHOLD, 0x3fc00000 /* 1.5f */, 4, OPECOM_EARCH,
                 "threshold");
    expect_patch(fx, arch + OPM_ARCH_D_BLOCK, 6, 4, OPECOM_ESHAPE, "does not match");
    expect_patch(fx, feat + OPM_FEAT_TYPE, 9, 4, OPECOM_ESPEC, "unknown type 9");
    expect_patch(fx, feat + OPM_FEAT_NAME_LEN, 1000, 4, OPECOM_ESPEC, "name");
    expect_patch(fx, feat + OPM_FEAT_NAME_OFF, 0xfffffff0u, 4, OPECOM_ESPEC, "name");
    expect_patch(fx, feat + OPM_FEAT_TRANSFORM, 4, 4, OPECOM_ESPEC, "unknown transform 4");
    expect_patch(fx, feat + OPM_FEAT_STD, 0, 8, OPECOM_ESPEC, "std");
    /* feature 5 is categorical */
    expect_patch(fx, feat + 5 * OPM_FEAT_SIZE + OPM_FEAT_N_ITEMS, 0, 4, OPECOM_ESPEC,
                 "category table");
    expect_patch(fx, feat + 5 * OPM_FEAT_SIZE + OPM_FEAT_N_ITEMS, 0xffffffffu, 4,
                 OPECOM_ESPEC, "category table");
    expect_patch(fx, tens + OPM_TENSOR_SHAPE, 6, 4, OPECOM_ESHAPE, "blocks.0.weight");
    expect_patch(fx, tens + OPM_TENSOR_DTYPE, 2, 4, OPECOM_ESHAPE, "not float32");
    expect_patch(fx, tens + OPM_TENSOR_OFFSET, fx->size, 8, OPECOM_ESHAPE, "outside the data");
    expect_patch(fx, tens + OPM_TENSOR_OFFSET, 64 * 1000003ull, 8, OPECOM_ESHAPE, "outside");
    expect_patch(fx, tens + OPM_TENSOR_LENGTH, UINT64_MAX - 3, 8, OPECOM_ESHAPE, "wrong size");
    expect_patch(fx, tens + OPM_TENSOR_KIND, 77, 4, OPECOM_ESHAPE, "unknown tensor");
    expect_patch(fx, tens + OPM_TENSOR_LAYER, 5, 4, OPECOM_ESHAPE, "unknown tensor");
    /* record 1 is blocks.0.r: make it a second blocks.0.weight */
    expect_patch(fx, tens + OPM_TENSOR_SIZE + OPM_TENSOR_KIND, OPM_T_BLOCK_WEIGHT, 4,
                 OPECOM_ESHAPE, "");
    /* make record 1 (blocks.0.r) share bytes with record 0 */
    expect_patch(fx, tens + OPM_TENSOR_SIZE + OPM_TENSOR_OFFSET, 0, 8, OPECOM_ESHAPE,
                 "overlaps");
}

static void test_non_finite_weight_is_evalue(void **state)
{
    fixture *fx = *state;
    uint64_t data = section_offset(fx->bytes, OPM_SECTION_DATA);
    expect_patch(fx, data + 8, 0x7fc00000u /* NaN */, 4, OPECOM_EVALUE, "blocks.0.weight");
    expect_patch(fx, data + 8, 0x7f800000u /* +Inf */, 4, OPECOM_EVALUE, "element 2");
}

static void test_missing_tensor_is_named(void **state)
{
    fixture *fx = *state;
    /* Drop the last directory record (head.bias) by shortening the section. */
    for (uint32_t i = 0; i < OPM_N_SECTIONS; i++) {
        size_t e = OPM_HDR_SIZE + i * OPM_SEC_SIZE;
        if (opm_rd32(fx->bytes + e) != OPM_SECTION_TENSORS)
            continue;
        uint64_t len = opm_rd64(fx->bytes + e + OPM_SEC_LENGTH);
        expect_patch(fx, e + OPM_SEC_LENGTH, len - OPM_TENSOR_SIZE, 8, OPECOM_ESHAPE,
                     "'head.bias' is missing");
        expect_patch(fx, e + OPM_SEC_LENGTH, len - 1, 8, OPECOM_ESECTION, "whole number");
    }
}

static void test_every_allocation_failure_is_clean(void **state)
{
    fixture *fx = *state;
    opecom_status s = OPECOM_ENOMEM;
    long n;
    for (n = 1; s == OPECOM_ENOMEM && n < 100; n++) {
        opecom_model *m = NULL;
        opecom_error err;
        alloc_count = 0;
        alloc_fail_at = n;
        s = opecom_model_load_buffer(fx->bytes, fx->size, NULL, &m, &err);
        alloc_fail_at = 0;
        if (s == OPECOM_ENOMEM) {
            assert_null(m);
            assert_non_null(strstr(err.message, "out of memory"));
        } else {
            assert_int_equal(s, OPECOM_OK);
        }
        opecom_model_free(m);
    }
    assert_int_equal(s, OPECOM_OK);
    assert_true(n > 2); /* at least one injected failure was exercised */

    /* The same for workspaces. */
    opecom_model *m = NULL;
    assert_int_equal(opecom_model_load_buffer(fx->bytes, fx->size, NULL, &m, NULL), OPECOM_OK);
    opecom_workspace *ws = NULL;
    alloc_count = 0;
    alloc_fail_at = 1;
    assert_int_equal(opecom_workspace_create(m, 8, &ws, NULL), OPECOM_ENOMEM);
    alloc_fail_at = 0;
    assert_null(ws);
    opecom_model_free(m);
}

static void test_save_rejects_bad_descriptions(void **state)
{
    fixture *fx = *state;
    const char *path = tu_tmp_path("bad");
    opecom_model_desc d = fx->desc.desc;
    opecom_error err;

    d.k = 0;
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_EARCH);
    d.k = OPECOM_MAX_K + 1;
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_EARCH);
    d = fx->desc.desc;
    d.threshold = 1.5f;
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_EARCH);
    d = fx->desc.desc;
    d.head_bias = NULL;
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_ESHAPE);
    assert_non_null(strstr(err.message, "head.bias"));

    opecom_feature_desc feats[6];
    memcpy(feats, fx->desc.features, sizeof feats);
    d = fx->desc.desc;
    d.features = feats;
    feats[1].name = feats[0].name;
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_ESPEC);
    assert_non_null(strstr(err.message, "already used"));
    memcpy(feats, fx->desc.features, sizeof feats);
    feats[0].std = -1;
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_ESPEC);
    assert_non_null(strstr(err.message, "f0"));

    opecom_block_desc blocks[2];
    memcpy(blocks, fx->desc.blocks, sizeof blocks);
    float *w = malloc(sizeof(float) * 5 * 10);
    memcpy(w, blocks[0].weight, sizeof(float) * 5 * 10);
    w[3] = (float)NAN;
    blocks[0].weight = w;
    d = fx->desc.desc;
    d.blocks = blocks;
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_EVALUE);
    assert_non_null(strstr(err.message, "blocks.0.weight"));
    free(w);
    assert_int_equal(access(path, F_OK), -1); /* nothing was written */
}

/* ========================================================================= *
 * Explanation baseline
 * ========================================================================= */

static void test_baseline_round_trips_encoded_by_the_model(void **state)
{
    fixture *fx = *state;
    opecom_model *m = NULL;
    assert_int_equal(opecom_model_load_buffer(fx->bytes, fx->size, NULL, &m, NULL), OPECOM_OK);
    opecom_model_info info;
    opecom_model_describe(m, &info);
    assert_int_equal(info.n_baseline, 3);
    assert_int_equal(opm_rd32(fx->bytes + OPM_HDR_N_SECTIONS), OPM_N_SECTIONS);
    assert_int_equal(m->n_baseline, 3);
    assert_true(m->baseline_w[0] == 0.25 && m->baseline_w[1] == 0.5 && m->baseline_w[2] == 0.25);
    float x[4 + 2 * 3];
    for (uint32_t r = 0; r < 3; r++) {
        opecom_result res;
        assert_int_equal(opecom_encode_row(m, base_rows + r * 6, r, x, &res, NULL), OPECOM_OK);
        assert_memory_equal(x, m->baseline_x + r * m->d_in, sizeof x);
    }
    opecom_model_free(m);
}

/* The checksum names the file: the CRC32 of its bytes, different for the
 * same model with and without a baseline. */
static void test_describe_checksum_is_the_files_crc(void **state)
{
    fixture *fx = *state;
    opecom_model *a = NULL, *b = NULL;
    assert_int_equal(opecom_model_load_buffer(fx->bytes, fx->size, NULL, &a, NULL), OPECOM_OK);
    assert_int_equal(opecom_model_load_buffer(fx->plain, fx->plain_size, NULL, &b, NULL),
                     OPECOM_OK);
    opecom_model_info ia, ib;
    opecom_model_describe(a, &ia);
    opecom_model_describe(b, &ib);
    assert_int_equal(ia.checksum, opecom_opm_crc(fx->bytes, fx->size));
    assert_int_equal(ib.checksum, opecom_opm_crc(fx->plain, fx->plain_size));
    assert_int_not_equal(ia.checksum, ib.checksum);
    opecom_model_free(a);
    opecom_model_free(b);
}

static void test_model_without_baseline_has_five_sections(void **state)
{
    fixture *fx = *state;
    opecom_model *m = NULL;
    assert_int_equal(opm_rd32(fx->plain + OPM_HDR_N_SECTIONS), OPM_N_REQUIRED);
    assert_int_equal(opecom_model_load_buffer(fx->plain, fx->plain_size, NULL, &m, NULL),
                     OPECOM_OK);
    opecom_model_info info;
    opecom_model_describe(m, &info);
    assert_int_equal(info.n_baseline, 0);
    assert_int_equal(info.n_drift_dims, 0);
    /* The baseline and the drift reference add sections and nothing else: the
     * rest is the same model. */
    opecom_model *b = NULL;
    assert_int_equal(opecom_model_load_buffer(fx->bytes, fx->size, NULL, &b, NULL), OPECOM_OK);
    tu_rng r = {3};
    opecom_value row[6];
    tu_random_row(m, &r, row, 0);
    opecom_result ra, rb;
    assert_int_equal(opecom_predict(m, NULL, row, &ra, NULL), OPECOM_OK);
    assert_int_equal(opecom_predict(b, NULL, row, &rb, NULL), OPECOM_OK);
    assert_memory_equal(ra.member, rb.member, sizeof ra.member);
    opecom_model_free(m);
    opecom_model_free(b);
}

static void test_required_section_missing_is_named(void **state)
{
    fixture *fx = *state;
    unsigned char *b = malloc(fx->plain_size);
    memcpy(b, fx->plain, fx->plain_size);
    opm_wr32(b + OPM_HDR_SIZE + OPM_SEC_ID, OPM_SECTION_BASELINE); /* ARCH's entry */
    opm_wr32(b + OPM_HDR_CRC, opecom_opm_crc(b, fx->plain_size));
    opecom_error err;
    assert_int_equal(load(b, fx->plain_size, &err), OPECOM_ESECTION);
    assert_non_null(strstr(err.message, "required section 1 is missing"));
    free(b);
}

static void test_bad_baseline_section_is_rejected(void **state)
{
    fixture *fx = *state;
    uint64_t bs = section_offset(fx->bytes, OPM_SECTION_BASELINE);
    uint64_t w = bs + OPM_BASE_HDR_SIZE, rows = bs + OPM_BASE_HDR_SIZE + 64;
    size_t entry = OPM_HDR_SIZE + (OPM_SECTION_BASELINE - 1) * OPM_SEC_SIZE;
    assert_int_equal(opm_rd32(fx->bytes + entry), OPM_SECTION_BASELINE);
    uint64_t len = opm_rd64(fx->bytes + entry + OPM_SEC_LENGTH);

    expect_patch(fx, bs + OPM_BASE_N_ROWS, 0, 4, OPECOM_ESECTION, "baseline section: n_rows");
    expect_patch(fx, bs + OPM_BASE_N_ROWS, 5000, 4, OPECOM_ESECTION, "n_rows");
    expect_patch(fx, bs + OPM_BASE_N_ROWS, 2, 4, OPECOM_ESECTION, "2 rows of 10 columns");
    expect_patch(fx, bs + OPM_BASE_D_IN, 11, 4, OPECOM_ESECTION, "d_in");
    expect_patch(fx, bs + OPM_BASE_RESERVED + 8, 1, 4, OPECOM_ESECTION, "reserved");
    expect_patch(fx, entry + OPM_SEC_LENGTH, len - 4, 8, OPECOM_ESECTION, "baseline section is");
    expect_patch(fx, entry + OPM_SEC_LENGTH, 10, 8, OPECOM_ESECTION, "shorter than its");
    expect_patch(fx, w + 8, 0xbff0000000000000ull /* -1.0 */, 8, OPECOM_ESECTION,
                 "weight 1");
    expect_patch(fx, w + 8, 0x7ff8000000000000ull /* NaN */, 8, OPECOM_EVALUE,
                 "weight 1");
    expect_patch(fx, w + 8, 0x3fe8000000000000ull /* 0.75 */, 8, OPECOM_ESECTION,
                 "sum to 1.25");
    /* row 1: numeric f1 is column 1; categorical f4 is columns 4..6 (c3 is 6) */
    expect_patch_f32(fx, rows + (10 + 1) * 4, (float)NAN, OPECOM_EVALUE,
                     "row 1, feature 'f1'");
    expect_patch_f32(fx, rows + (10 + 6) * 4, 0.0f, OPECOM_ESECTION,
                     "row 1, feature 'f4'");
    expect_patch_f32(fx, rows + (10 + 4) * 4, 1.0f, OPECOM_ESECTION, "one-hot");
    expect_patch_f32(fx, rows + (10 + 6) * 4, 0.5f, OPECOM_ESECTION, "one-hot");
}

static void test_save_rejects_bad_baselines(void **state)
{
    fixture *fx = *state;
    const char *path = tu_tmp_path("badbase");
    opecom_model_desc d = fx->desc.desc;
    opecom_value rows[3 * 6];
    double weights[3] = {1, 2, 1};
    opecom_error err;
    memcpy(rows, base_rows, sizeof rows);
    d.baseline_rows = rows;
    d.baseline_weights = weights;

    rows[6 + 5].str = "c9";
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_ESPEC);
    assert_non_null(strstr(err.message, "baseline row 1"));
    assert_non_null(strstr(err.message, "'c9' is not one of its categories"));
    assert_int_equal(err.feature, 5);
    memcpy(rows, base_rows, sizeof rows);
    rows[12 + 1].num = (double)NAN;
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_ESPEC);
    assert_non_null(strstr(err.message, "baseline row 2: feature 'f1' is NaN"));
    memcpy(rows, base_rows, sizeof rows);
    rows[3].num = 500; /* f3 has max 100 */
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_ESPEC);
    assert_non_null(strstr(err.message, "outside its valid range"));
    memcpy(rows, base_rows, sizeof rows);
    weights[2] = 0;
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_ESPEC);
    assert_non_null(strstr(err.message, "baseline row 2: weight"));
    weights[2] = 1;
    d.baseline_rows = NULL;
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_ESPEC);
    d.baseline_rows = rows;
    d.n_baseline = OPECOM_MAX_BASELINE + 1;
    assert_int_equal(opecom_model_save(&d, path, &err), OPECOM_ESPEC);
    assert_int_equal(access(path, F_OK), -1); /* nothing was written */
}

static void test_strerror_is_total(void **state)
{
    (void)state;
#define CHECK_TEXT_(name, value, text) assert_string_equal(opecom_strerror(value), text);
    OPECOM_STATUS_LIST(CHECK_TEXT_)
#undef CHECK_TEXT_
    assert_string_equal(opecom_strerror(-1), "unknown status");
    assert_string_equal(opecom_strerror(9999), "unknown status");
    assert_int_equal(opecom_version(), OPECOM_VERSION_NUMBER);
    assert_string_equal(opecom_version_string(), OPECOM_VERSION_STRING);
    opecom_model_free(NULL);
    opecom_workspace_free(NULL);
}

static void test_unknown_kernel_is_ekernel(void **state)
{
    fixture *fx = *state;
    opecom_load_options opts = {"quantum"};
    opecom_model *m = NULL;
    opecom_error err;
    assert_int_equal(opecom_model_load_buffer(fx->bytes, fx->size, &opts, &m, &err),
                     OPECOM_EKERNEL);
    assert_non_null(strstr(err.message, "quantum"));
    assert_null(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_keeps_architecture_and_schema),
        cmocka_unit_test(test_describe_checksum_is_the_files_crc),
        cmocka_unit_test(test_file_and_buffer_loads_agree),
        cmocka_unit_test(test_save_is_deterministic),
        cmocka_unit_test(test_missing_file_is_eio),
        cmocka_unit_test(test_wrong_magic),
        cmocka_unit_test(test_unknown_version),
        cmocka_unit_test(test_every_truncation_is_rejected),
        cmocka_unit_test(test_every_bit_flip_is_rejected),
        cmocka_unit_test(test_structural_errors_with_valid_crc),
        cmocka_unit_test(test_non_finite_weight_is_evalue),
        cmocka_unit_test(test_missing_tensor_is_named),
        cmocka_unit_test(test_every_allocation_failure_is_clean),
        cmocka_unit_test(test_save_rejects_bad_descriptions),
        cmocka_unit_test(test_baseline_round_trips_encoded_by_the_model),
        cmocka_unit_test(test_model_without_baseline_has_five_sections),
        cmocka_unit_test(test_required_section_missing_is_named),
        cmocka_unit_test(test_bad_baseline_section_is_rejected),
        cmocka_unit_test(test_save_rejects_bad_baselines),
        cmocka_unit_test(test_strerror_is_total),
        cmocka_unit_test(test_unknown_kernel_is_ekernel),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
