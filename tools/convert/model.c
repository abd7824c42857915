/*
 * model.c - matches the weights against the spec and fills the model
 * descriptor handed to opecom_model_save.
 *
 * The expected tensors follow the exported-tensor contract (PyTorch naming,
 * `weight` is [out, in]): for each block j, blocks.{j}.weight [d_block, d_in_j]
 * and blocks.{j}.bias [k, d_block], optionally blocks.{j}.r [k, d_in_j] and
 * blocks.{j}.s [k, d_block], where d_in_0 is the spec's encoded width and
 * d_in_j = d_block after; then head.weight [k, 1, d_block] and head.bias
 * [k, 1]. A missing tensor, a wrong shape, a non-finite value or a tensor
 * the contract does not name is an error naming the tensor.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"

typedef struct want {
    char name[48];
    uint32_t ndim;
    uint64_t shape[3];
    int optional;
} want;

static void want_set(want *w, const char *name, int optional, uint32_t ndim, uint64_t a,
                     uint64_t b, uint64_t c) {
    snprintf(w->name, sizeof w->name, "%s", name);
    w->optional = optional;
    w->ndim = ndim;
    w->shape[0] = a;
    w->shape[1] = b;
    w->shape[2] = c;
}

/* Finds, shape-checks and finite-checks one tensor; *data is NULL when an
 * optional tensor is absent. */
static int take(const cv_tensors *ts, const want *w, const float **data, cv_err *e) {
    char want_s[96];
    char have_s[160];
    cv_shape_str(w->ndim, w->shape, want_s, sizeof want_s);
    const cv_tensor *t = cv_tensors_find(ts, w->name);
    *data = NULL;
    if (t == NULL) {
        if (w->optional)
            return 0;
        return cv_fail(e, "%s: missing, expected shape %s", w->name, want_s);
    }
    int same = t->ndim == w->ndim;
    for (uint32_t i = 0; same && i < w->ndim; i++)
        same = t->shape[i] == w->shape[i];
    if (!same) {
        cv_shape_str(t->ndim, t->shape, have_s, sizeof have_s);
        return cv_fail(e, "%s: shape %s, expected %s", w->name, have_s, want_s);
    }
    for (size_t i = 0; i < t->count; i++)
        if (!isfinite(t->data[i]))
            return cv_fail(e, "%s: element %zu is not finite", w->name, i);
    *data = t->data;
    return 0;
}

/* Explains why a tensor is not part of the contract. */
static int unexpected(const cv_spec *spec, const cv_tensor *t, cv_err *e) {
    char have_s[160];
    unsigned long j;
    char rest[16];
    cv_shape_str(t->ndim, t->shape, have_s, sizeof have_s);
    if (sscanf(t->name, "blocks.%lu.%15s", &j, rest) == 2 && j >= spec->n_blocks)
        return cv_fail(e, "%s: unexpected tensor (shape %s): the spec says n_blocks = %u",
                       t->name, have_s, (unsigned)spec->n_blocks);
    return cv_fail(e, "%s: unexpected tensor (shape %s): expected only blocks.{j}.weight, "
                      ".r, .s, .bias and head.weight, head.bias", t->name, have_s);
}

int cv_model_build(const cv_spec *spec, const cv_tensors *ts, const char *spec_text,
                   opecom_block_desc *blocks, opecom_model_desc *desc, cv_err *e) {
    uint64_t k = spec->k;
    uint64_t d = spec->d_block;
    size_t matched = 0;
    want w;
    memset(desc, 0, sizeof *desc);
    for (uint32_t j = 0; j < spec->n_blocks; j++) {
        uint64_t din = j == 0 ? spec->d_in : d;
        opecom_block_desc *b = &blocks[j];
        char name[48];
        snprintf(name, sizeof name, "blocks.%u.weight", (unsigned)j);
        want_set(&w, name, 0, 2, d, din, 0);
        if (take(ts, &w, &b->weight, e) < 0)
            return -1;
        snprintf(name, sizeof name, "blocks.%u.r", (unsigned)j);
        want_set(&w, name, 1, 2, k, din, 0);
        if (take(ts, &w, &b->r, e) < 0)
            return -1;
        snprintf(name, sizeof name, "blocks.%u.s", (unsigned)j);
        want_set(&w, name, 1, 2, k, d, 0);
        if (take(ts, &w, &b->s, e) < 0)
            return -1;
        snprintf(name, sizeof name, "blocks.%u.bias", (unsigned)j);
        want_set(&w, name, 0, 2, k, d, 0);
        if (take(ts, &w, &b->bias, e) < 0)
            return -1;
        matched += 2 + (b->r != NULL) + (b->s != NULL);
    }
    want_set(&w, "head.weight", 0, 3, k, 1, d);
    if (take(ts, &w, &desc->head_weight, e) < 0)
        return -1;
    want_set(&w, "head.bias", 0, 2, k, 1, 0);
    if (take(ts, &w, &desc->head_bias, e) < 0)
        return -1;
    matched += 2;

    if (matched != ts->n) {
        /* Some tensor was not consumed: find the first in file order. */
        for (size_t i = 0; i < ts->n; i++) {
            const cv_tensor *t = &ts->items[i];
            int known = strcmp(t->name, "head.weight") == 0 || strcmp(t->name, "head.bias") == 0;
            unsigned long j;
            char part[8];
            char canon[48];
            if (!known && sscanf(t->name, "blocks.%lu.%7s", &j, part) == 2 && j < spec->n_blocks &&
                (strcmp(part, "weight") == 0 || strcmp(part, "r") == 0 ||
                 strcmp(part, "s") == 0 || strcmp(part, "bias") == 0)) {
                snprintf(canon, sizeof canon, "blocks.%lu.%s", j, part);
                known = strcmp(canon, t->name) == 0;
            }
            if (!known)
                return unexpected(spec, t, e);
        }
        return cv_fail(e, "internal error: tensor count mismatch");
    }

    desc->k = spec->k;
    desc->n_blocks = spec->n_blocks;
    desc->d_block = spec->d_block;
    desc->n_features = spec->n_features;
    desc->features = spec->features;
    desc->blocks = blocks;
    desc->threshold = spec->threshold;
    desc->spec_json = spec_text;
    desc->baseline_rows = spec->baseline_rows;
    desc->baseline_weights = spec->baseline_weights;
    desc->n_baseline = spec->n_baseline;
    desc->drift = spec->has_drift ? &spec->drift : NULL;
    return 0;
}
