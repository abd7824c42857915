/*
 * convert.h - shared declarations of opecom-convert.
 *
 * The converter reads exported TabM weights (.npz or .safetensors) and a JSON
 * spec, checks both against the exported-tensor contract in DESIGN.md, and
 * writes a .opm model file through opecom_model_save. Each reader works on
 * bytes already in memory, so hostile input can be fed to it directly.
 *
 * Errors: every fallible function returns 0 on success and -1 on failure,
 * with a one-line detail in a cv_err (no file name; the caller adds it).
 * Every function frees what it allocated on every path.
 */
#ifndef OPECOM_CONVERT_H
#define OPECOM_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include "opecom.h"

#define CV_MAX_NDIM 8

typedef struct cv_err {
    char msg[512];
} cv_err;

/* Formats e->msg and returns -1, so callers can write `return cv_fail(...)`. */
int cv_fail(cv_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One float32 tensor, decoded into host floats. */
typedef struct cv_tensor {
    char *name;
    uint32_t ndim;
    uint64_t shape[CV_MAX_NDIM];
    size_t count;  /* product of shape */
    float *data;   /* count floats (NULL when count is 0) */
} cv_tensor;

typedef struct cv_tensors {
    cv_tensor *items;
    size_t n;
    size_t cap;
    char *spec;    /* safetensors __metadata__ "opecom_spec", or NULL */
} cv_tensors;

void cv_tensors_free(cv_tensors *ts);
/* Appends a tensor taking ownership of name and data (freed on failure too). */
int cv_tensors_add(cv_tensors *ts, char *name, uint32_t ndim, const uint64_t *shape,
                   size_t count, float *data, cv_err *e);
const cv_tensor *cv_tensors_find(const cv_tensors *ts, const char *name);

/* Product of shape into *count, failing when it exceeds max_count. */
int cv_shape_count(uint32_t ndim, const uint64_t *shape, uint64_t max_count, size_t *count);
/* "[256, 70]" into buf. */
void cv_shape_str(uint32_t ndim, const uint64_t *shape, char *buf, size_t size);

/* Largest tensor accepted, in elements (1 GiB of float32). */
#define CV_MAX_ELEMENTS ((uint64_t)1 << 28)

/* npz.c: a zip archive of NAME.npy entries (stored or deflated). */
int cv_npz_read(const unsigned char *buf, size_t len, cv_tensors *out, cv_err *e);
/* npz.c: one .npy file; `name` is used in messages and becomes the tensor name. */
int cv_npy_parse(const unsigned char *buf, size_t len, const char *name, cv_tensors *out,
                 cv_err *e);

/* safetensors.c: fills out->spec from __metadata__.opecom_spec when present. */
int cv_safetensors_read(const unsigned char *buf, size_t len, cv_tensors *out, cv_err *e);

/* spec.c: the parsed JSON spec, owning everything the descriptors point to. */
typedef struct cv_spec {
    void *root;                   /* json_t * */
    uint32_t k, n_blocks, d_block, d_in;
    float threshold;
    uint32_t n_features;
    opecom_feature_desc *features;
    const char **category_ptrs;   /* all features' category pointers, one array */
    double *quantiles;            /* all features' quantiles, one array */
    /* explanation baseline ("baseline" key), or n_baseline = 0 */
    opecom_value *baseline_rows;  /* [n_baseline, n_features]; texts point into root */
    double *baseline_weights;     /* [n_baseline] */
    uint32_t n_baseline;
    /* drift reference ("drift" key), or has_drift = 0 */
    int has_drift;
    opecom_drift_desc drift;
    opecom_drift_dim_desc *drift_dims; /* [n_features + 1] */
    double *drift_values;              /* every dim's fractions and edges */
} cv_spec;

/* Parses spec text (len bytes, NUL-terminated at text[len]). Messages start
 * with "spec: ". */
int cv_spec_parse(const char *text, size_t len, cv_spec *out, cv_err *e);
void cv_spec_free(cv_spec *spec);

/* model.c: checks the tensors against the spec and fills desc; blocks is
 * an array of spec->n_blocks entries owned by the caller. */
int cv_model_build(const cv_spec *spec, const cv_tensors *ts, const char *spec_text,
                   opecom_block_desc *blocks, opecom_model_desc *desc, cv_err *e);

/* verify.c: prints a loaded model's summary to stdout. */
void cv_print_summary(const opecom_model *model);

#endif /* OPECOM_CONVERT_H */
