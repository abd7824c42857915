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

/* One dim of the drift reference; arrays point into the model's bytes. */
typedef struct opecom_drift_ref {
    uint32_t kind;          /* format.h's opm_drift_kind */
    uint32_t n_bins;
    uint32_t offset;        /* first bin in a counts array */
    const double *edges;    /* [n_bins - 1], quantile dims only (else NULL) */
    const double *fraction; /* [n_bins] training fractions */
} opecom_drift_ref;

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

    /* explanation baseline (BASELINE section), or n_baseline = 0 */
    uint32_t n_baseline;
    const double *baseline_w; /* [n_baseline], summing to 1 within 1e-6 */
    double baseline_wsum;     /* their sum: weights are used as w_b / wsum */
    const float *baseline_x;  /* [n_baseline, d_in] encoded rows */

    /* drift reference (DRIFT section), or n_drift_dims = 0 */
    uint32_t n_drift_dims;         /* n_features + 1 */
    uint32_t n_drift_counts;       /* bins over all dims */
    uint64_t drift_rows;           /* training rows behind it */
    opecom_drift_ref *drift;       /* [n_drift_dims], in the model's block */
};

/* Per-row bookkeeping of explain.c for the rows queued in a workspace. */
typedef struct opecom_explain_rec {
    uint32_t who;   /* permutation: feature added; exact: coalition mask */
    uint32_t base;  /* baseline row, or n_baseline for f(x) */
    uint32_t tail;  /* permutation: feature that completes the walk, or UINT32_MAX */
    uint32_t flags; /* explain.c's REC_* bits */
} opecom_explain_rec;

struct opecom_workspace {
    const opecom_model *model;
    size_t max_rows;
    int owned;        /* 1: allocated by opecom_workspace_create */
    float *x;         /* [max_rows, d_in] encoded inputs */
    float *logits;    /* [max_rows, k] */
    float *scratch;   /* kernel scratch for max_rows */
    /* opecom_explain's scratch */
    float *ex_x;                /* [d_in] the encoded input */
    float *ex_row;              /* [d_in] the coalition being built */
    opecom_explain_rec *ex_rec; /* [max_rows] what each queued row is */
    uint32_t *ex_players;       /* [n_features] producer: differing features */
    uint32_t *ex_perm;          /* [n_features] consumer: differing features */
    double *ex_coef;            /* [n_features + 1] exact: Shapley weights */
    double *ex_phi;             /* [n_features] contributions (importance) */
    double *ex_fb;              /* [max(n_baseline, 1)] f(z_b) */
    double *ex_wf;              /* [max(n_baseline, 1)] weight per walk of row b */
};

/* Bytes of stack opecom_predict and opecom_explain use when given no workspace. */
#define OPECOM_STACK_WORKSPACE (64 * 1024)

/* Builds in `mem` the workspace with the most rows (up to 64) that fits.
 * @return OPECOM_OK, or OPECOM_EWORKSPACE when not even one row fits. */
opecom_status opecom_workspace_fit(const opecom_model *m, void *mem, size_t size,
                                   opecom_workspace **out, opecom_error *err);

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

/* Validates the DRIFT section (offset and length within the file, entry the
 * file offset of its table entry) against the resolved features and points
 * the model at it, filling dims [n_features + 1]. drift.c. */
opecom_status opecom_drift_parse(const unsigned char *bytes, uint64_t offset, uint64_t length,
                                 uint64_t entry, opecom_model *m, opecom_drift_ref *dims,
                                 opecom_error *err);

/* Encodes one raw row into x [d_in]; flags unknown categories into res.
 * @return OPECOM_OK or OPECOM_EINVAL naming the feature (and `row`). */
opecom_status opecom_encode_row(const opecom_model *m, const opecom_value *row, int64_t row_index,
                                float *x, opecom_result *res, opecom_error *err);

/* Checks one raw value of feature f as opecom_predict does (kind, NaN/Inf,
 * valid range, transform domain; categorical: text or a finite number).
 * @return OPECOM_OK or OPECOM_EINVAL naming the feature (and `row`). */
opecom_status opecom_check_value(const opecom_model *m, uint32_t f, const opecom_value *v,
                                 int64_t row, opecom_error *err);

/* @return the category index of a categorical value, or -1 when it is not
 * one of the feature's categories. */
int64_t opecom_find_category(const opecom_feature *F, const opecom_value *v);

/* The standard normal quantile function Phi^-1(p), full double precision. */
double opecom_ndtri(double p);

/* sklearn QuantileTransformer(output_distribution="normal") for one value. */
double opecom_quantile_normal(const double *q, uint32_t n, double x);

#endif
