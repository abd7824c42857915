/*
 * testutil.h - helpers shared by the cmocka test binaries: a seeded random
 * generator, random TabM models built in memory, file helpers.
 */
#ifndef OPECOM_TESTUTIL_H
#define OPECOM_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "opecom.h"

/* xorshift64*; seeded per test so failures replay. */
typedef struct tu_rng {
    uint64_t s;
} tu_rng;
uint64_t tu_next(tu_rng *r);
double tu_uniform(tu_rng *r, double lo, double hi);

/* The seed for randomised tests: $OPECOM_TEST_SEED or `fallback`; printed. */
uint64_t tu_seed(const char *test, uint64_t fallback);

/* A random model description that owns all of its arrays. */
typedef struct tu_model {
    opecom_model_desc desc;
    opecom_feature_desc *features;
    opecom_block_desc *blocks;
    float *floats;     /* every tensor, one allocation */
    char **names;      /* feature names and category texts */
    size_t n_names;
    const char **cat_ptrs;
    double *quantiles;
} tu_model;

typedef struct tu_model_shape {
    uint32_t k, n_blocks, d_block;
    uint32_t n_numeric;   /* numeric features, transforms cycling none/log1p/quantile */
    uint32_t n_categorical;
    uint32_t n_categories; /* per categorical feature */
    int omit_adapters;    /* 1: block 0 without s, blocks >= 1 without r */
} tu_model_shape;

void tu_model_make(tu_model *m, const tu_model_shape *shape, uint64_t seed);
void tu_model_free(tu_model *m);

/* Writes desc to a fresh temporary .opm path (static buffer) and loads it. */
opecom_model *tu_model_load_desc(const opecom_model_desc *desc, const char *kernel);

/* A random raw row valid for `model` (values inside bounds, known categories;
 * `unknown` makes the categorical values unseen ones). Strings are static. */
void tu_random_row(const opecom_model *model, tu_rng *r, opecom_value *row, int unknown);

/* Whole file into malloc'd memory, with a NUL after its last byte (so text
 * files can be used as strings); NULL on failure. */
unsigned char *tu_read_file(const char *path, size_t *size);
int tu_write_file(const char *path, const void *data, size_t size);

/* A path under $BUILD/tmp (created), unique per call: "<dir>/<tag>-<n>". */
const char *tu_tmp_path(const char *tag);

/* $BUILD or "build". */
const char *tu_build_dir(void);

#endif

/* Scores every row of a reference CSV written by tools/train_tabm.py
 * (raw feature columns, p_member_0.., probability, unknown) with the model
 * and kernel given, and returns the largest |C - PyTorch| over the mean and
 * member probabilities; -1 on a read or predict failure (printed). */
double tu_reference_max_diff(const char *model_path, const char *csv, const char *kernel,
                             size_t *n_rows);
