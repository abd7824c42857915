/*
 * drift.c - the drift reference: validating the optional DRIFT section when a
 * model loads, and the drift API on top of it (describe a dim, bin a live
 * row, population stability index from counts).
 *
 * The section (format.h, docs/model-format.md 3.7) holds, per dim (each
 * feature in model order, then the score), the training fraction of each bin
 * and, for quantile dims, the inner edges. The loader checks every count
 * against the section length before reading an array, then every value; the
 * model then points straight into the file's bytes. Binning and PSI never
 * allocate: a server calls them on every scored row and every scrape.
 */
#include <math.h>
#include <string.h>

#include "format.h"
#include "internal.h"

static const char score_name[] = "score";

/* ========================================================================= *
 * Loading
 * ========================================================================= */

static const char *dim_name(const opecom_model *m, uint32_t d)
{
    return d < m->n_features ? m->features[d].name : score_name;
}

/* Walks the dim records: kinds and bin counts against the model's features,
 * offsets into the counts array, and totals against the header's. */
static opecom_status read_dims(const unsigned char *sec, int64_t at, opecom_model *m,
                               opecom_drift_ref *dims, uint32_t n_counts, uint32_t n_edges,
                               opecom_error *err)
{
    uint64_t counts = 0, edges = 0;
    for (uint32_t d = 0; d < m->n_features + 1; d++) {
        const unsigned char *r = sec + OPM_DRIFT_HDR_SIZE + (uint64_t)d * OPM_DRIFT_DIM_SIZE;
        int64_t rat = at + OPM_DRIFT_HDR_SIZE + (int64_t)d * OPM_DRIFT_DIM_SIZE;
        uint32_t kind = opm_rd32(r + OPM_DRIFT_DIM_KIND), n = opm_rd32(r + OPM_DRIFT_DIM_N_BINS);
        const char *name = dim_name(m, d);
        const opecom_feature *F = d < m->n_features ? &m->features[d] : NULL;
        uint32_t want = F && F->type == OPECOM_FEATURE_CATEGORICAL ? OPM_DRIFT_CATEGORY
                                                                   : OPM_DRIFT_QUANTILE;
        if (kind != want)
            return opecom_fail(err, OPECOM_ESECTION, (int32_t)d, -1, rat + OPM_DRIFT_DIM_KIND,
                               "drift section: dim %u ('%s'): kind at offset %lld is %u, "
                               "expected %u (%s)",
                               d, name, (long long)(rat + OPM_DRIFT_DIM_KIND), kind, want,
                               want == OPM_DRIFT_CATEGORY ? "categories" : "quantile bins");
        if (opm_rd64(r + OPM_DRIFT_DIM_RESERVED) != 0)
            return opecom_fail(err, OPECOM_ESECTION, (int32_t)d, -1,
                               rat + OPM_DRIFT_DIM_RESERVED,
                               "drift section: dim %u ('%s'): reserved bytes at offset %lld "
                               "are not zero",
                               d, name, (long long)(rat + OPM_DRIFT_DIM_RESERVED));
        if (kind == OPM_DRIFT_CATEGORY ? n != F->n_items + 1 : (n < 1 || n > OPM_MAX_DRIFT_BINS)) {
            if (kind == OPM_DRIFT_CATEGORY)
                return opecom_fail(err, OPECOM_ESECTION, (int32_t)d, -1,
                                   rat + OPM_DRIFT_DIM_N_BINS,
                                   "drift section: dim %u ('%s'): n_bins at offset %lld is %u, "
                                   "expected %u (%u categories + other)",
                                   d, name, (long long)(rat + OPM_DRIFT_DIM_N_BINS), n,
                                   F->n_items + 1, F->n_items);
            return opecom_fail(err, OPECOM_ESECTION, (int32_t)d, -1, rat + OPM_DRIFT_DIM_N_BINS,
                               "drift section: dim %u ('%s'): n_bins at offset %lld is %u, "
                               "allowed 1..%d",
                               d, name, (long long)(rat + OPM_DRIFT_DIM_N_BINS), n,
                               OPM_MAX_DRIFT_BINS);
        }
        dims[d].kind = kind;
        dims[d].n_bins = n;
        dims[d].offset = (uint32_t)counts;
        counts += n;
        edges += kind == OPM_DRIFT_QUANTILE ? n - 1 : 0;
        if (counts > n_counts || edges > n_edges)
            return opecom_fail(err, OPECOM_ESECTION, (int32_t)d, -1, rat + OPM_DRIFT_DIM_N_BINS,
                               "drift section: dims 0..%u hold %llu bins and %llu edges, more "
                               "than the header's n_counts %u / n_edges %u",
                               d, (unsigned long long)counts, (unsigned long long)edges,
                               n_counts, n_edges);
    }
    if (counts != n_counts || edges != n_edges)
        return opecom_fail(err, OPECOM_ESECTION, -1, -1, at + OPM_DRIFT_N_COUNTS,
                           "drift section: the dims hold %llu bins and %llu edges, the header "
                           "(offset %lld) says n_counts %u, n_edges %u",
                           (unsigned long long)counts, (unsigned long long)edges,
                           (long long)(at + OPM_DRIFT_N_COUNTS), n_counts, n_edges);
    return OPECOM_OK;
}

/* Fractions of each dim (finite, >= 0, summing to 1) and edges of each
 * quantile dim (finite, strictly ascending, the score's within [0, 1]). */
static opecom_status read_values(const unsigned char *sec, int64_t at, const opecom_model *m,
                                 opecom_drift_ref *dims, uint64_t frac_at, uint64_t edge_at,
                                 opecom_error *err)
{
    const double *frac = (const double *)(const void *)(sec + frac_at);
    const double *edge = (const double *)(const void *)(sec + edge_at);
    uint64_t e_next = 0;
    for (uint32_t d = 0; d < m->n_features + 1; d++) {
        opecom_drift_ref *D = &dims[d];
        const char *name = dim_name(m, d);
        double sum = 0.0;
        D->fraction = frac + D->offset;
        for (uint32_t i = 0; i < D->n_bins; i++) {
            double v = D->fraction[i];
            int64_t vat = at + (int64_t)(frac_at + 8 * ((uint64_t)D->offset + i));
            if (!isfinite(v))
                return opecom_fail(err, OPECOM_EVALUE, (int32_t)d, -1, vat,
                                   "drift section: dim %u ('%s'): fraction %u (offset %lld) is "
                                   "not finite",
                                   d, name, i, (long long)vat);
            if (!(v >= 0.0))
                return opecom_fail(err, OPECOM_ESECTION, (int32_t)d, -1, vat,
                                   "drift section: dim %u ('%s'): fraction %u (offset %lld) is "
                                   "%g, must be >= 0",
                                   d, name, i, (long long)vat, v);
            sum += v;
        }
        if (fabs(sum - 1.0) > OPM_DRIFT_SUM_TOL)
            return opecom_fail(err, OPECOM_ESECTION, (int32_t)d, -1,
                               at + (int64_t)(frac_at + 8 * (uint64_t)D->offset),
                               "drift section: dim %u ('%s'): fractions sum to %.9g, not 1", d,
                               name, sum);
        if (D->kind != OPM_DRIFT_QUANTILE) {
            D->edges = NULL;
            continue;
        }
        D->edges = edge + e_next;
        for (uint32_t i = 0; i + 1 < D->n_bins; i++) {
            double v = D->edges[i];
            int64_t vat = at + (int64_t)(edge_at + 8 * (e_next + i));
            if (!isfinite(v))
                return opecom_fail(err, OPECOM_EVALUE, (int32_t)d, -1, vat,
                                   "drift section: dim %u ('%s'): edge %u (offset %lld) is not "
                                   "finite",
                                   d, name, i, (long long)vat);
            if (i > 0 && !(v > D->edges[i - 1]))
                return opecom_fail(err, OPECOM_ESECTION, (int32_t)d, -1, vat,
                                   "drift section: dim %u ('%s'): edge %u (offset %lld) is %.17g, "
                                   "not above edge %u (%.17g)",
                                   d, name, i, (long long)vat, v, i - 1, D->edges[i - 1]);
            if (d == m->n_features && !(v >= 0.0 && v <= 1.0))
                return opecom_fail(err, OPECOM_ESECTION, (int32_t)d, -1, vat,
                                   "drift section: dim %u ('score'): edge %u (offset %lld) is "
                                   "%g, outside [0, 1]",
                                   d, i, (long long)vat, v);
        }
        e_next += D->n_bins - 1;
    }
    return OPECOM_OK;
}

opecom_status opecom_drift_parse(const unsigned char *bytes, uint64_t offset, uint64_t length,
                                 uint64_t entry, opecom_model *m, opecom_drift_ref *dims,
                                 opecom_error *err)
{
    const unsigned char *sec = bytes + offset;
    int64_t at = (int64_t)offset;
    if (length < OPM_DRIFT_HDR_SIZE)
        return opecom_fail(err, OPECOM_ESECTION, -1, -1, (int64_t)entry,
                           "drift section is %llu bytes, shorter than its %d-byte header",
                           (unsigned long long)length, OPM_DRIFT_HDR_SIZE);
    uint32_t n_dims = opm_rd32(sec + OPM_DRIFT_N_DIMS);
    uint32_t n_counts = opm_rd32(sec + OPM_DRIFT_N_COUNTS);
    uint32_t n_edges = opm_rd32(sec + OPM_DRIFT_N_EDGES);
    uint64_t n_rows = opm_rd64(sec + OPM_DRIFT_N_ROWS);
    if (n_dims != m->n_features + 1)
        return opecom_fail(err, OPECOM_ESECTION, -1, -1, at + OPM_DRIFT_N_DIMS,
                           "drift section: n_dims at offset %lld is %u, expected %u (%u "
                           "features + the score)",
                           (long long)(at + OPM_DRIFT_N_DIMS), n_dims, m->n_features + 1,
                           m->n_features);
    if (opm_rd32(sec + OPM_DRIFT_RESERVED0) != 0)
        return opecom_fail(err, OPECOM_ESECTION, -1, -1, at + OPM_DRIFT_RESERVED0,
                           "drift section: reserved field at offset %lld is not zero",
                           (long long)(at + OPM_DRIFT_RESERVED0));
    for (int i = OPM_DRIFT_RESERVED; i < OPM_DRIFT_HDR_SIZE; i++)
        if (sec[i] != 0)
            return opecom_fail(err, OPECOM_ESECTION, -1, -1, at + i,
                               "drift section: reserved byte at offset %lld is not zero",
                               (long long)(at + i));
    if (n_rows < 1)
        return opecom_fail(err, OPECOM_ESECTION, -1, -1, at + OPM_DRIFT_N_ROWS,
                           "drift section: n_rows at offset %lld is 0, must be >= 1",
                           (long long)(at + OPM_DRIFT_N_ROWS));
    uint64_t frac_at = OPM_DRIFT_HDR_SIZE + (uint64_t)n_dims * OPM_DRIFT_DIM_SIZE;
    uint64_t edge_at = frac_at + (uint64_t)n_counts * 8;
    uint64_t want = edge_at + (uint64_t)n_edges * 8;
    if (length != want)
        return opecom_fail(err, OPECOM_ESECTION, -1, -1, (int64_t)entry,
                           "drift section is %llu bytes; %u dims, %u bins and %u edges take "
                           "%llu",
                           (unsigned long long)length, n_dims, n_counts, n_edges,
                           (unsigned long long)want);
    opecom_status st = read_dims(sec, at, m, dims, n_counts, n_edges, err);
    if (st == OPECOM_OK)
        st = read_values(sec, at, m, dims, frac_at, edge_at, err);
    if (st != OPECOM_OK)
        return st;
    m->n_drift_dims = n_dims;
    m->n_drift_counts = n_counts;
    m->drift_rows = n_rows;
    m->drift = dims;
    return OPECOM_OK;
}

/* ========================================================================= *
 * Queries
 * ========================================================================= */

static opecom_status no_drift(const opecom_model *m, opecom_error *err)
{
    if (m == NULL)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "model must not be NULL");
    return opecom_fail(err, OPECOM_ENODRIFT, -1, -1, -1,
                       "the model carries no drift reference (convert it from a spec with a "
                       "\"drift\" key)");
}

opecom_status opecom_drift_describe(const opecom_model *m, opecom_drift_info *out,
                                    opecom_error *err)
{
    if (m == NULL || m->n_drift_dims == 0)
        return no_drift(m, err);
    if (out == NULL)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "out must not be NULL");
    memset(out, 0, sizeof *out);
    out->n_dims = m->n_drift_dims;
    out->n_counts = m->n_drift_counts;
    out->n_rows = m->drift_rows;
    return OPECOM_OK;
}

static opecom_status check_dim(const opecom_model *m, uint32_t d, opecom_error *err)
{
    if (m == NULL || m->n_drift_dims == 0)
        return no_drift(m, err);
    if (d >= m->n_drift_dims)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1,
                           "drift dim %u is out of range (the model has %u)", d,
                           m->n_drift_dims);
    return OPECOM_OK;
}

opecom_status opecom_drift_dim(const opecom_model *m, uint32_t d, const char **name,
                               uint32_t *n_bins, uint32_t *offset, opecom_error *err)
{
    opecom_status st = check_dim(m, d, err);
    if (st != OPECOM_OK)
        return st;
    if (name)
        *name = dim_name(m, d);
    if (n_bins)
        *n_bins = m->drift[d].n_bins;
    if (offset)
        *offset = m->drift[d].offset;
    return OPECOM_OK;
}

opecom_status opecom_drift_reference(const opecom_model *m, uint32_t d, const double **edges,
                                     const double **fractions, opecom_error *err)
{
    opecom_status st = check_dim(m, d, err);
    if (st != OPECOM_OK)
        return st;
    if (edges)
        *edges = m->drift[d].edges;
    if (fractions)
        *fractions = m->drift[d].fraction;
    return OPECOM_OK;
}

/* ========================================================================= *
 * Binning and PSI
 * ========================================================================= */

/* The first bin whose edge is >= x (x <= edge goes left): the number of
 * edges below x. */
static uint32_t quantile_bin(const opecom_drift_ref *D, double x)
{
    uint32_t lo = 0, hi = D->n_bins - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (D->edges[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

opecom_status opecom_drift_bin(const opecom_model *m, const opecom_value *row,
                               double probability, uint32_t *index, opecom_error *err)
{
    if (m == NULL || m->n_drift_dims == 0)
        return no_drift(m, err);
    if (row == NULL || index == NULL)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "row and index must not be NULL");
    for (uint32_t f = 0; f < m->n_features; f++) {
        const opecom_drift_ref *D = &m->drift[f];
        opecom_status st = opecom_check_value(m, f, &row[f], -1, err);
        if (st != OPECOM_OK)
            return st;
        uint32_t bin;
        if (D->kind == OPM_DRIFT_QUANTILE) {
            bin = quantile_bin(D, row[f].num);
        } else {
            int64_t c = opecom_find_category(&m->features[f], &row[f]);
            bin = c >= 0 ? (uint32_t)c : D->n_bins - 1; /* "other" */
        }
        index[f] = D->offset + bin;
    }
    if (!(probability >= 0.0 && probability <= 1.0))
        return opecom_fail(err, OPECOM_EINVAL, (int32_t)m->n_features, -1, -1,
                           "probability %g is outside [0, 1]", probability);
    const opecom_drift_ref *S = &m->drift[m->n_features];
    index[m->n_features] = S->offset + quantile_bin(S, probability);
    return OPECOM_OK;
}

opecom_status opecom_drift_psi(const opecom_model *m, const uint64_t *counts, double *psi,
                               opecom_error *err)
{
    if (m == NULL || m->n_drift_dims == 0)
        return no_drift(m, err);
    if (counts == NULL || psi == NULL)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "counts and psi must not be NULL");
    for (uint32_t d = 0; d < m->n_drift_dims; d++) {
        const opecom_drift_ref *D = &m->drift[d];
        const uint64_t *c = counts + D->offset;
        uint64_t total = 0;
        for (uint32_t i = 0; i < D->n_bins; i++)
            total += c[i];
        if (total == 0) {
            psi[d] = (double)NAN;
            continue;
        }
        double sum = 0.0;
        for (uint32_t i = 0; i < D->n_bins; i++) {
            double a = (double)c[i] / (double)total, e = D->fraction[i];
            a = a > OPECOM_DRIFT_EPSILON ? a : OPECOM_DRIFT_EPSILON;
            e = e > OPECOM_DRIFT_EPSILON ? e : OPECOM_DRIFT_EPSILON;
            sum += (a - e) * log(a / e);
        }
        psi[d] = sum;
    }
    return OPECOM_OK;
}
