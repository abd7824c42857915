/*
 * experiment.c - model variants: which visitor sees which model, and the
 * statistics of GET /api/experiments.
 *
 * Assignment is sticky without any stored state: FNV-1a 64 of the visitor
 * id, modulo the sum of the weights (each scaled to an integer by 1000),
 * walked through the variants in order. The statistics per variant are its
 * conversion rate with a 95% Wilson score interval, and against the control
 * (variant 0) the pooled two-proportion z-test with its two-sided p-value.
 * Figures that are undefined (no sessions, zero pooled variance) are null.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "server.h"

/* ===================================================================== *
 * Assignment
 * ===================================================================== */

static uint64_t fnv1a64(const char *str) {
    uint64_t h = 14695981039346656037ULL;
    const unsigned char *p = (const unsigned char *)str;
    for (; *p != '\0'; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t scaled_weight(double w) {
    double x = w * 1000.0;
    if (!(x >= 1.0))
        return 1; /* a tiny positive weight still gets a slot */
    if (x > 1e15)
        return (uint64_t)1e15;
    return (uint64_t)llround(x);
}

int srv_variant_for(const srv *s, const char *visitor_id) {
    uint64_t total = 0;
    uint64_t h;
    int i;
    if (visitor_id == NULL || visitor_id[0] == '\0' || s->cfg.n_variants <= 1)
        return 0;
    for (i = 0; i < s->cfg.n_variants; i++)
        total += scaled_weight(s->cfg.variants[i].weight);
    h = fnv1a64(visitor_id) % total;
    for (i = 0; i < s->cfg.n_variants; i++) {
        uint64_t w = scaled_weight(s->cfg.variants[i].weight);
        if (h < w)
            return i;
        h -= w;
    }
    return 0; /* unreachable: h < total */
}

int srv_variant_index(const srv *s, const char *name) {
    int i;
    if (name == NULL)
        return -1;
    for (i = 0; i < s->cfg.n_variants; i++)
        if (strcmp(s->cfg.variants[i].name, name) == 0)
            return i;
    return -1;
}

/* ===================================================================== *
 * Statistics
 * ===================================================================== */

#define Z95 1.959963984540054 /* the 97.5th percentile of the standard normal */

static json_t *number_or_null(double x) {
    return isfinite(x) ? json_real(x) : json_null();
}

void srv_experiments(srv *s, srv_reply *out) {
    int64_t n[SRV_MAX_VARIANTS], c[SRV_MAX_VARIANTS];
    json_t *root, *list;
    int i;
    for (i = 0; i < s->cfg.n_variants; i++) {
        if (db_variant_counts(s, s->cfg.variants[i].name, &n[i], &c[i]) != 0) {
            srv_reply_error(out, 503, NULL, "the database failed; try again");
            return;
        }
    }
    root = json_object();
    list = json_array();
    if (root == NULL || list == NULL ||
        json_object_set_new(root, "control", json_string(s->cfg.variants[0].name)) != 0) {
        json_decref(root);
        json_decref(list);
        srv_reply_json(out, 500, NULL);
        return;
    }
    if (json_object_set_new(root, "variants", list) != 0)
        goto oom;
    for (i = 0; i < s->cfg.n_variants; i++) {
        const srv_variant *v = &s->cfg.variants[i];
        double rate = NAN, lo = NAN, hi = NAN, z = NAN, p = NAN;
        json_t *o;
        if (n[i] > 0) {
            double nn = (double)n[i];
            double k = Z95 * Z95 / nn;
            double centre, half;
            rate = (double)c[i] / nn;
            centre = (rate + k / 2) / (1 + k);
            half = Z95 * sqrt(rate * (1 - rate) / nn + k / (4 * nn)) / (1 + k);
            lo = centre - half;
            hi = centre + half;
            if (lo < 0)
                lo = 0;
            if (hi > 1)
                hi = 1;
        }
        if (i > 0 && n[i] > 0 && n[0] > 0) {
            double pooled = (double)(c[i] + c[0]) / (double)(n[i] + n[0]);
            double se = sqrt(pooled * (1 - pooled) * (1.0 / (double)n[i] + 1.0 / (double)n[0]));
            if (se > 0) {
                z = ((double)c[i] / (double)n[i] - (double)c[0] / (double)n[0]) / se;
                p = erfc(fabs(z) / sqrt(2.0));
            }
        }
        o = json_pack("{s:s, s:s, s:f, s:I, s:I, s:o, s:o, s:o, s:o, s:o}", "name", v->name,
                      "model", v->model_name, "weight", v->weight, "sessions",
                      (json_int_t)n[i], "conversions", (json_int_t)c[i], "rate",
                      number_or_null(rate), "ci_low", number_or_null(lo), "ci_high",
                      number_or_null(hi), "z", number_or_null(z), "p_value", number_or_null(p));
        if (o == NULL || json_array_append_new(list, o) != 0)
            goto oom;
    }
    srv_reply_json(out, 200, json_dumps(root, JSON_COMPACT));
    json_decref(root);
    return;
oom:
    json_decref(root);
    srv_reply_json(out, 500, NULL);
}
