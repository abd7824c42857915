/*
 * internal.h - the library's private types and helpers, shared by the files in src/.
 * Never installed; tools and examples must not include it.
 */
#ifndef OPECOM_INTERNAL_H
#define OPECOM_INTERNAL_H

#include <stdarg.h>

#include "opecom.h"
#include "tabm.h"

/* A raw feature resolved for fast encoding. Strings and arrays point into the
 * model's bytes. */
typedef struct opecom_feature {
    const char *name;
    opecom_feature_type type;
    opecom_transform transform;
    double mean;
    double std;
    int has_min;
    int has_max;
    double min;
    double max;
    uint32_t col;                /* first column in the encoded row */
    uint32_t n_items;            /* categories or quantiles */
    const double *quantiles;     /* [n_items], quantile_normal only */
    const char **cat_text;       /* [n_items], categorical only */
    double *cat_num;             /* [n_items]: numeric value of the text, or NaN */
} opecom_feature;

struct opecom_model {
    unsigned char *bytes;  /* the whole file, mapped or copied */
    uint64_t size;
    int mapped;            /* 1: munmap, 0: free */

    uint32_t k;
    uint32_t n_blocks;
    uint32_t d_in;
    uint32_t d_block;
    uint32_t n_features;
    float threshold;
    uint64_t n_params;
    const char *spec_json;

    opecom_feature *features; /* [n_features] */
    opecom_tabm net;
    const opecom_kernel *kernel;
    void *packed; /* the kernel's repacked weights, or NULL */
};

struct opecom_workspace {
    const opecom_model *model;
    size_t max_rows;
    int owned;        /* 1: allocated by opecom_workspace_create */
    float *x;         /* [max_rows, d_in] encoded inputs */
    float *logits;    /* [max_rows, k] */
    float *scratch;   /* kernel scratch for max_rows */
};

/* Fills err (if not NULL) with status, indices and a formatted message.
 * @return status, so callers can `return opecom_fail(...)`. */
opecom_status opecom_fail(opecom_error *err, opecom_status status, int32_t feature,
                          int64_t row, int64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Parses and validates a model image; on success *out owns `bytes`.
 * model_save.c runs the same checks on what it is about to write. */
opecom_status opecom_model_parse(unsigned char *bytes, uint64_t size, int mapped,
                                 const opecom_load_options *opts, opecom_model **out,
                                 opecom_error *err);

/* Encodes one raw row into x [d_in]; flags unknown categories into res.
 * @return OPECOM_OK or OPECOM_EINVAL naming the feature (and `row`). */
opecom_status opecom_encode_row(const opecom_model *m, const opecom_value *row, int64_t row_index,
                                float *x, opecom_result *res, opecom_error *err);

/* The standard normal quantile function Phi^-1(p), full double precision. */
double opecom_ndtri(double p);

/* sklearn QuantileTransformer(output_distribution="normal") for one value. */
double opecom_quantile_normal(const double *q, uint32_t n, double x);

#endif
