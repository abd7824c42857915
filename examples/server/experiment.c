/*
 * experiment.c - the experiments service: which visitor sees which model
 * variant, and each variant's statistics (GET /api/experiments renders
 * them).
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

#include "server.h"
#include "store.h"

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

int experiment_stats(srv *s, srv_variant_stats *out) {
    for (int i = 0; i < s->cfg.n_variants; i++) {
        out[i] = (srv_variant_stats){0, 0, NAN, NAN, NAN, NAN, NAN};
        if (srv_store_variant_counts(s->store, s->cfg.variants[i].name, &out[i].sessions,
                                     &out[i].conversions) != 0)
            return -1;
    }
    for (int i = 0; i < s->cfg.n_variants; i++) {
        srv_variant_stats *x = &out[i];
        const srv_variant_stats *ctl = &out[0];
        if (x->sessions > 0) {
            double nn = (double)x->sessions;
            double k = Z95 * Z95 / nn;
            x->rate = (double)x->conversions / nn;
            double centre = (x->rate + k / 2) / (1 + k);
            double half = Z95 * sqrt(x->rate * (1 - x->rate) / nn + k / (4 * nn)) / (1 + k);
            x->ci_low = centre - half < 0 ? 0 : centre - half;
            x->ci_high = centre + half > 1 ? 1 : centre + half;
        }
        if (i > 0 && x->sessions > 0 && ctl->sessions > 0) {
            double pooled = (double)(x->conversions + ctl->conversions) /
                            (double)(x->sessions + ctl->sessions);
            double se = sqrt(pooled * (1 - pooled) *
                             (1.0 / (double)x->sessions + 1.0 / (double)ctl->sessions));
            if (se > 0) {
                x->z = ((double)x->conversions / (double)x->sessions -
                        (double)ctl->conversions / (double)ctl->sessions) / se;
                x->p_value = erfc(fabs(x->z) / sqrt(2.0));
            }
        }
    }
    return 0;
}
