/*
 * model_save.c - writes an opecom_model_desc as a .opm file.
 *
 * The image is laid out in memory (header, section table, ARCH, FEATURES,
 * TENSORS, SPEC, DATA and the optional BASELINE and DRIFT; see format.h), then run
 * through the loader's own checks (opecom_model_parse), so a file this
 * function writes is by construction one the loader accepts. A baseline is
 * given as raw rows and encoded by the model itself, so the image is built
 * twice then: without the baseline, to get a model that encodes it, and
 * with it. Only then is the file written, to a temporary name in the same
 * directory and renamed into place.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format.h"
#include "internal.h"

_Static_assert(OPM_MAX_BASELINE == OPECOM_MAX_BASELINE, "baseline limits differ");
_Static_assert(OPM_MAX_DRIFT_BINS == OPECOM_DRIFT_MAX_BINS, "drift limits differ");

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* Size of the FEATURES section; also checks the pointers it will follow. */
static opecom_status features_size(const opecom_model_desc *d, uint64_t *size, uint32_t *d_in,
                                   opecom_error *err)
{
    uint64_t items = 0, strings = 0;
    *d_in = 0;
    for (uint32_t f = 0; f < d->n_features; f++) {
        const opecom_feature_desc *F = &d->features[f];
        if (F->name == NULL || F->name[0] == '\0')
            return opecom_fail(err, OPECOM_ESPEC, (int32_t)f, -1, -1,
                               "features[%u]: name is missing", f);
        strings += strlen(F->name) + 1;
        if (F->type == OPECOM_FEATURE_NUMERIC) {
            *d_in += 1;
            if (F->transform == OPECOM_TRANSFORM_QUANTILE_NORMAL) {
                if (F->quantiles == NULL || F->n_quantiles < 2)
                    return opecom_fail(err, OPECOM_ESPEC, (int32_t)f, -1, -1,
                                       "feature '%s': quantile_normal needs >= 2 quantiles",
                                       F->name);
                items += (uint64_t)F->n_quantiles * 8;
            }
        } else if (F->type == OPECOM_FEATURE_CATEGORICAL) {
            if (F->categories == NULL || F->n_categories == 0 ||
                F->n_categories > OPM_MAX_CATEGORIES)
                return opecom_fail(err, OPECOM_ESPEC, (int32_t)f, -1, -1,
                                   "feature '%s': needs 1..%u categories", F->name,
                                   OPM_MAX_CATEGORIES);
            *d_in += F->n_categories;
            items += (uint64_t)F->n_categories * 8;
            for (uint32_t c = 0; c < F->n_categories; c++) {
                if (F->categories[c] == NULL)
                    return opecom_fail(err, OPECOM_ESPEC, (int32_t)f, -1, -1,
                                       "feature '%s': category %u is NULL", F->name, c);
                strings += strlen(F->categories[c]) + 1;
            }
        } else {
            return opecom_fail(err, OPECOM_ESPEC, (int32_t)f, -1, -1,
                               "feature '%s': unknown type %d", F->name, (int)F->type);
        }
    }
    *size = (uint64_t)d->n_features * OPM_FEAT_SIZE + items + strings;
    if (*size > UINT32_MAX)
        return opecom_fail(err, OPECOM_ESPEC, -1, -1, -1, "feature table too large");
    return OPECOM_OK;
}

static uint32_t put_string(unsigned char *sec, uint64_t *at, const char *s)
{
    size_t n = strlen(s);
    uint32_t off = (uint32_t)*at;
    memcpy(sec + off, s, n + 1);
    *at += n + 1;
    return off;
}

static void write_features(const opecom_model_desc *d, unsigned char *sec)
{
    uint64_t items = (uint64_t)d->n_features * OPM_FEAT_SIZE; /* 8-aligned */
    uint64_t strings = items;
    for (uint32_t f = 0; f < d->n_features; f++) {
        const opecom_feature_desc *F = &d->features[f];
        if (F->type == OPECOM_FEATURE_CATEGORICAL)
            strings += (uint64_t)F->n_categories * 8;
        else if (F->transform == OPECOM_TRANSFORM_QUANTILE_NORMAL)
            strings += (uint64_t)F->n_quantiles * 8;
    }
    for (uint32_t f = 0; f < d->n_features; f++) {
        const opecom_feature_desc *F = &d->features[f];
        unsigned char *r = sec + (uint64_t)f * OPM_FEAT_SIZE;
        opm_wr32(r + OPM_FEAT_TYPE, (uint32_t)F->type);
        opm_wr32(r + OPM_FEAT_NAME_LEN, (uint32_t)strlen(F->name));
        opm_wr32(r + OPM_FEAT_NAME_OFF, put_string(sec, &strings, F->name));
        if (F->type == OPECOM_FEATURE_CATEGORICAL) {
            opm_wr32(r + OPM_FEAT_N_ITEMS, F->n_categories);
            opm_wr32(r + OPM_FEAT_ITEMS_OFF, (uint32_t)items);
            for (uint32_t c = 0; c < F->n_categories; c++) {
                opm_wr32(sec + items + 4, (uint32_t)strlen(F->categories[c]));
                opm_wr32(sec + items, put_string(sec, &strings, F->categories[c]));
                items += 8;
            }
            continue;
        }
        uint32_t flags = (F->has_min ? OPM_FEAT_HAS_MIN : 0) | (F->has_max ? OPM_FEAT_HAS_MAX : 0);
        opm_wr32(r + OPM_FEAT_TRANSFORM, (uint32_t)F->transform);
        opm_wr32(r + OPM_FEAT_FLAGS, flags);
        opm_wrf64(r + OPM_FEAT_MEAN, F->mean);
        opm_wrf64(r + OPM_FEAT_STD, F->std);
        opm_wrf64(r + OPM_FEAT_MIN, F->has_min ? F->min : 0.0);
        opm_wrf64(r + OPM_FEAT_MAX, F->has_max ? F->max : 0.0);
        if (F->transform == OPECOM_TRANSFORM_QUANTILE_NORMAL) {
            opm_wr32(r + OPM_FEAT_N_ITEMS, F->n_quantiles);
            opm_wr32(r + OPM_FEAT_ITEMS_OFF, (uint32_t)items);
            for (uint32_t i = 0; i < F->n_quantiles; i++, items += 8)
                opm_wrf64(sec + items, F->quantiles[i]);
        }
    }
}

typedef struct tensor_ref {
    uint32_t kind;
    uint32_t layer;
    uint32_t ndim;
    uint32_t shape[4];
    const float *data;
} tensor_ref;

static uint32_t collect_tensors(const opecom_model_desc *d, uint32_t d_in, tensor_ref *t)
{
    uint32_t n = 0;
    for (uint32_t l = 0; l < d->n_blocks; l++) {
        const opecom_block_desc *B = &d->blocks[l];
        uint32_t in = l == 0 ? d_in : d->d_block;
        t[n++] = (tensor_ref){OPM_T_BLOCK_WEIGHT, l, 2, {d->d_block, in, 0, 0}, B->weight};
        if (B->r)
            t[n++] = (tensor_ref){OPM_T_BLOCK_R, l, 2, {d->k, in, 0, 0}, B->r};
        if (B->s)
            t[n++] = (tensor_ref){OPM_T_BLOCK_S, l, 2, {d->k, d->d_block, 0, 0}, B->s};
        t[n++] = (tensor_ref){OPM_T_BLOCK_BIAS, l, 2, {d->k, d->d_block, 0, 0}, B->bias};
    }
    t[n++] = (tensor_ref){OPM_T_HEAD_WEIGHT, 0, 3, {d->k, 1, d->d_block, 0}, d->head_weight};
    t[n++] = (tensor_ref){OPM_T_HEAD_BIAS, 0, 2, {d->k, 1, 0, 0}, d->head_bias};
    return n;
}

static uint64_t tensor_bytes(const tensor_ref *t)
{
    uint64_t n = 4;
    for (uint32_t i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

static opecom_status write_file(const char *path, const unsigned char *img, uint64_t size,
                                opecom_error *err)
{
    /* A temporary name beside the target, created with O_EXCL so that the
     * file gets the usual 0666 & ~umask permissions (mkstemp forces 0600). */
    size_t cap = strlen(path) + 40;
    char *tmp = malloc(cap);
    if (tmp == NULL)
        return opecom_fail(err, OPECOM_ENOMEM, -1, -1, -1, "out of memory");
    int fd = -1;
    for (unsigned attempt = 0; fd < 0 && attempt < 100; attempt++) {
        snprintf(tmp, cap, "%s.tmp.%ld.%u", path, (long)getpid(), attempt);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        opecom_status s = opecom_fail(err, OPECOM_EIO, -1, -1, -1, "%s: %s", tmp, strerror(errno));
        free(tmp);
        return s;
    }
    uint64_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, img + done, (size_t)(size - done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (uint64_t)w;
    }
    int ok = done == size && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        opecom_status s = opecom_fail(err, OPECOM_EIO, -1, -1, -1, "%s: %s", path,
                                      strerror(errno ? errno : EIO));
        unlink(tmp);
        free(tmp);
        return s;
    }
    free(tmp);
    return OPECOM_OK;
}

/* Everything the image is made of, gathered and checked beforehand. */
typedef struct image_parts {
    const opecom_model_desc *d;
    uint32_t d_in;
    uint64_t feat_size;
    const tensor_ref *t;
    uint32_t n_t;
    uint64_t data_size;
    /* baseline, encoded; n_base = 0 for none */
    uint32_t n_base;
    const double *base_w; /* [n_base], normalised */
    const float *base_x;  /* [n_base, d_in] */
    /* drift reference, or NULL; its totals */
    const opecom_drift_desc *drift;
    uint32_t drift_counts;
    uint32_t drift_edges;
} image_parts;

/* The drift dim kind of dim d of desc (format.h's opm_drift_kind). */
static uint32_t drift_kind(const opecom_model_desc *d, uint32_t dim)
{
    return dim < d->n_features && d->features[dim].type == OPECOM_FEATURE_CATEGORICAL
               ? OPM_DRIFT_CATEGORY
               : OPM_DRIFT_QUANTILE;
}

/* Checks what the DRIFT writer will read (arrays present, bin counts in
 * range) and totals the bins and edges; the values are checked by the
 * loader's own code when the image is parsed. */
static opecom_status drift_totals(const opecom_model_desc *d, image_parts *ip, opecom_error *err)
{
    const opecom_drift_desc *dr = d->drift;
    uint64_t counts = 0, edges = 0;
    if (dr->dims == NULL)
        return opecom_fail(err, OPECOM_ESPEC, -1, -1, -1, "drift: dims is NULL");
    for (uint32_t dim = 0; dim <= d->n_features; dim++) {
        const opecom_drift_dim_desc *D = &dr->dims[dim];
        const char *name = dim < d->n_features ? d->features[dim].name : "score";
        if (drift_kind(d, dim) == OPM_DRIFT_CATEGORY) {
            if (D->n_bins != d->features[dim].n_categories + 1)
                return opecom_fail(err, OPECOM_ESPEC, (int32_t)dim, -1, -1,
                                   "drift: dim %u ('%s') has %u bins, expected %u (%u "
                                   "categories + other)",
                                   dim, name, D->n_bins, d->features[dim].n_categories + 1,
                                   d->features[dim].n_categories);
        } else {
            if (D->n_bins < 1 || D->n_bins > OPM_MAX_DRIFT_BINS)
                return opecom_fail(err, OPECOM_ESPEC, (int32_t)dim, -1, -1,
                                   "drift: dim %u ('%s') has %u bins, allowed 1..%d", dim, name,
                                   D->n_bins, OPM_MAX_DRIFT_BINS);
            if (D->n_bins > 1 && D->edges == NULL)
                return opecom_fail(err, OPECOM_ESPEC, (int32_t)dim, -1, -1,
                                   "drift: dim %u ('%s'): edges is NULL", dim, name);
            edges += D->n_bins - 1;
        }
        if (D->fractions == NULL)
            return opecom_fail(err, OPECOM_ESPEC, (int32_t)dim, -1, -1,
                               "drift: dim %u ('%s'): fractions is NULL", dim, name);
        counts += D->n_bins;
    }
    if (counts + edges > UINT32_MAX)
        return opecom_fail(err, OPECOM_ESPEC, -1, -1, -1, "drift: too many bins (%llu)",
                           (unsigned long long)counts);
    ip->drift = dr;
    ip->drift_counts = (uint32_t)counts;
    ip->drift_edges = (uint32_t)edges;
    return OPECOM_OK;
}

static void write_drift(const image_parts *ip, unsigned char *sec)
{
    const opecom_model_desc *d = ip->d;
    uint32_t n_dims = d->n_features + 1;
    unsigned char *frac = sec + OPM_DRIFT_HDR_SIZE + (uint64_t)n_dims * OPM_DRIFT_DIM_SIZE;
    unsigned char *edge = frac + (uint64_t)ip->drift_counts * 8;
    opm_wr32(sec + OPM_DRIFT_N_DIMS, n_dims);
    opm_wr32(sec + OPM_DRIFT_N_COUNTS, ip->drift_counts);
    opm_wr32(sec + OPM_DRIFT_N_EDGES, ip->drift_edges);
    opm_wr64(sec + OPM_DRIFT_N_ROWS, ip->drift->n_rows);
    for (uint32_t dim = 0; dim < n_dims; dim++) {
        const opecom_drift_dim_desc *D = &ip->drift->dims[dim];
        unsigned char *r = sec + OPM_DRIFT_HDR_SIZE + (uint64_t)dim * OPM_DRIFT_DIM_SIZE;
        uint32_t kind = drift_kind(d, dim);
        opm_wr32(r + OPM_DRIFT_DIM_KIND, kind);
        opm_wr32(r + OPM_DRIFT_DIM_N_BINS, D->n_bins);
        for (uint32_t i = 0; i < D->n_bins; i++, frac += 8)
            opm_wrf64(frac, D->fractions[i]);
        if (kind == OPM_DRIFT_QUANTILE)
            for (uint32_t i = 0; i + 1 < D->n_bins; i++, edge += 8)
                opm_wrf64(edge, D->edges[i]);
    }
}

/* Lays the whole file out in one aligned allocation, CRC included. */
static opecom_status build_image(const image_parts *ip, unsigned char **img_out,
                                 uint64_t *size_out, opecom_error *err)
{
    const opecom_model_desc *d = ip->d;
    const char *spec = d->spec_json ? d->spec_json : "";
    uint32_t ids[OPM_N_SECTIONS], n_sec = 0;
    for (uint32_t id = 1; id <= OPM_N_REQUIRED; id++)
        ids[n_sec++] = id;
    if (ip->n_base)
        ids[n_sec++] = OPM_SECTION_BASELINE;
    if (ip->drift)
        ids[n_sec++] = OPM_SECTION_DRIFT;
    uint64_t base_rows_at = OPM_BASE_HDR_SIZE + align_up((uint64_t)ip->n_base * 8, OPM_ALIGN);
    uint64_t off[OPM_N_SECTIONS + 1], len[OPM_N_SECTIONS + 1];
    len[OPM_SECTION_ARCH] = OPM_ARCH_SIZE;
    len[OPM_SECTION_FEATURES] = ip->feat_size;
    len[OPM_SECTION_TENSORS] = (uint64_t)ip->n_t * OPM_TENSOR_SIZE;
    len[OPM_SECTION_SPEC] = strlen(spec) + 1;
    len[OPM_SECTION_DATA] = ip->data_size;
    len[OPM_SECTION_BASELINE] = base_rows_at + (uint64_t)ip->n_base * ip->d_in * 4;
    len[OPM_SECTION_DRIFT] = OPM_DRIFT_HDR_SIZE +
                             (uint64_t)(d->n_features + 1) * OPM_DRIFT_DIM_SIZE +
                             ((uint64_t)ip->drift_counts + ip->drift_edges) * 8;
    uint64_t size = OPM_HDR_SIZE + (uint64_t)n_sec * OPM_SEC_SIZE;
    for (uint32_t i = 0; i < n_sec; i++) {
        off[ids[i]] = align_up(size, OPM_ALIGN);
        size = off[ids[i]] + len[ids[i]];
    }

    unsigned char *img = NULL;
    if (posix_memalign((void **)&img, OPM_ALIGN, (size_t)size) != 0)
        return opecom_fail(err, OPECOM_ENOMEM, -1, -1, -1, "out of memory (%llu bytes)",
                           (unsigned long long)size);
    memset(img, 0, (size_t)size);

    memcpy(img + OPM_HDR_MAGIC, OPM_MAGIC, OPM_MAGIC_LEN);
    opm_wr32(img + OPM_HDR_VERSION, OPM_VERSION);
    opm_wr32(img + OPM_HDR_HEADER_SIZE, OPM_HDR_SIZE);
    opm_wr64(img + OPM_HDR_FILE_SIZE, size);
    opm_wr32(img + OPM_HDR_N_SECTIONS, n_sec);
    for (uint32_t i = 0; i < n_sec; i++) {
        unsigned char *e = img + OPM_HDR_SIZE + (uint64_t)i * OPM_SEC_SIZE;
        opm_wr32(e + OPM_SEC_ID, ids[i]);
        opm_wr64(e + OPM_SEC_OFFSET, off[ids[i]]);
        opm_wr64(e + OPM_SEC_LENGTH, len[ids[i]]);
    }

    unsigned char *a = img + off[OPM_SECTION_ARCH];
    opm_wr32(a + OPM_ARCH_TASK, OPM_TASK_BINARY);
    opm_wr32(a + OPM_ARCH_TYPE, OPM_ARCH_TABM);
    opm_wr32(a + OPM_ARCH_K, d->k);
    opm_wr32(a + OPM_ARCH_N_BLOCKS, d->n_blocks);
    opm_wr32(a + OPM_ARCH_D_IN, ip->d_in);
    opm_wr32(a + OPM_ARCH_D_BLOCK, d->d_block);
    opm_wr32(a + OPM_ARCH_N_OUT, 1);
    opm_wr32(a + OPM_ARCH_ACTIVATION, OPM_ACT_RELU);
    opm_wrf32(a + OPM_ARCH_THRESHOLD, d->threshold);
    opm_wr32(a + OPM_ARCH_N_FEATURES, d->n_features);

    write_features(d, img + off[OPM_SECTION_FEATURES]);

    uint64_t at = 0;
    for (uint32_t i = 0; i < ip->n_t; i++) {
        const tensor_ref *t = &ip->t[i];
        unsigned char *r = img + off[OPM_SECTION_TENSORS] + (uint64_t)i * OPM_TENSOR_SIZE;
        uint64_t bytes = tensor_bytes(t);
        at = align_up(at, OPM_ALIGN);
        opm_wr32(r + OPM_TENSOR_KIND, t->kind);
        opm_wr32(r + OPM_TENSOR_LAYER, t->layer);
        opm_wr32(r + OPM_TENSOR_DTYPE, OPM_DTYPE_F32);
        opm_wr32(r + OPM_TENSOR_NDIM, t->ndim);
        for (int k = 0; k < 4; k++)
            opm_wr32(r + OPM_TENSOR_SHAPE + 4 * k, t->shape[k]);
        opm_wr64(r + OPM_TENSOR_OFFSET, at);
        opm_wr64(r + OPM_TENSOR_LENGTH, bytes);
        memcpy(img + off[OPM_SECTION_DATA] + at, t->data, (size_t)bytes);
        at += bytes;
    }
    memcpy(img + off[OPM_SECTION_SPEC], spec, (size_t)len[OPM_SECTION_SPEC]);

    if (ip->n_base > 0) {
        unsigned char *bs = img + off[OPM_SECTION_BASELINE];
        opm_wr32(bs + OPM_BASE_N_ROWS, ip->n_base);
        opm_wr32(bs + OPM_BASE_D_IN, ip->d_in);
        for (uint32_t r = 0; r < ip->n_base; r++)
            opm_wrf64(bs + OPM_BASE_HDR_SIZE + 8 * (uint64_t)r, ip->base_w[r]);
        for (uint64_t i = 0; i < (uint64_t)ip->n_base * ip->d_in; i++)
            opm_wrf32(bs + base_rows_at + 4 * i, ip->base_x[i]);
    }
    if (ip->drift)
        write_drift(ip, img + off[OPM_SECTION_DRIFT]);
    opm_wr32(img + OPM_HDR_CRC, opecom_opm_crc(img, size));
    *img_out = img;
    *size_out = size;
    return OPECOM_OK;
}

/* Encodes the raw baseline rows with the model's own preprocessing (m is the
 * model without a baseline) and normalises the weights. On success *x and *w
 * are malloc'd. */
static opecom_status encode_baseline(const opecom_model_desc *d, const opecom_model *m,
                                     float **x_out, double **w_out, opecom_error *err)
{
    uint32_t n = d->n_baseline;
    if (n > OPM_MAX_BASELINE || d->baseline_rows == NULL)
        return opecom_fail(err, OPECOM_ESPEC, -1, -1, -1,
                           "baseline: %u rows%s; allowed 1..%d rows", n,
                           d->baseline_rows == NULL ? " but no row values" : "",
                           OPM_MAX_BASELINE);
    double sum = 0.0;
    for (uint32_t r = 0; r < n; r++) {
        double w = d->baseline_weights ? d->baseline_weights[r] : 1.0;
        if (!isfinite(w) || !(w > 0.0))
            return opecom_fail(err, OPECOM_ESPEC, -1, r, -1,
                               "baseline row %u: weight %g must be finite and > 0", r, w);
        sum += w;
    }
    if (!isfinite(sum))
        return opecom_fail(err, OPECOM_ESPEC, -1, -1, -1, "baseline: weights overflow");
    float *x = malloc(sizeof(float) * (size_t)n * m->d_in);
    double *w = malloc(sizeof(double) * n);
    if (x == NULL || w == NULL) {
        free(x);
        free(w);
        return opecom_fail(err, OPECOM_ENOMEM, -1, -1, -1, "out of memory");
    }
    for (uint32_t r = 0; r < n; r++) {
        const opecom_value *row = d->baseline_rows + (size_t)r * d->n_features;
        opecom_result res;
        opecom_error e2;
        opecom_status st = opecom_encode_row(m, row, r, x + (size_t)r * m->d_in, &res, &e2);
        if (st == OPECOM_OK && res.n_unknown > 0) {
            uint32_t f = 0;
            while (f < 63 && !(res.unknown_mask >> f & 1))
                f++;
            st = opecom_fail(&e2, OPECOM_ESPEC, (int32_t)f, r, -1,
                             "feature '%s': '%.40s' is not one of its categories",
                             m->features[f].name, row[f].str ? row[f].str : "(number)");
        }
        if (st != OPECOM_OK) {
            free(x);
            free(w);
            return opecom_fail(err, OPECOM_ESPEC, e2.feature, r, -1, "baseline row %u: %s", r,
                               e2.message);
        }
        w[r] = (d->baseline_weights ? d->baseline_weights[r] : 1.0) / sum;
    }
    *x_out = x;
    *w_out = w;
    return OPECOM_OK;
}

opecom_status opecom_model_save(const opecom_model_desc *d, const char *path, opecom_error *err)
{
    if (d == NULL || path == NULL)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "desc and path must not be NULL");
    if (d->k < 1 || d->k > OPECOM_MAX_K || d->n_blocks < 1 || d->n_blocks > OPM_MAX_BLOCKS ||
        d->d_block < 1 || d->d_block > OPM_MAX_WIDTH || d->n_features < 1 ||
        d->n_features > OPM_MAX_FEATURES || d->features == NULL || d->blocks == NULL)
        return opecom_fail(err, OPECOM_EARCH, -1, -1, -1,
                           "architecture out of range: k=%u (1..%d), n_blocks=%u (1..%d), "
                           "d_block=%u, n_features=%u",
                           d->k, OPECOM_MAX_K, d->n_blocks, OPM_MAX_BLOCKS, d->d_block,
                           d->n_features);
    if (!(d->threshold > 0.0f && d->threshold < 1.0f))
        return opecom_fail(err, OPECOM_EARCH, -1, -1, -1, "threshold %g must be in (0, 1)",
                           (double)d->threshold);

    image_parts ip;
    memset(&ip, 0, sizeof ip);
    ip.d = d;
    opecom_status st = features_size(d, &ip.feat_size, &ip.d_in, err);
    if (st == OPECOM_OK && d->drift != NULL)
        st = drift_totals(d, &ip, err);
    if (st != OPECOM_OK)
        return st;

    tensor_ref *t = malloc(sizeof *t * (4 * (size_t)d->n_blocks + 2));
    if (t == NULL)
        return opecom_fail(err, OPECOM_ENOMEM, -1, -1, -1, "out of memory");
    ip.t = t;
    ip.n_t = collect_tensors(d, ip.d_in, t);
    for (uint32_t i = 0; i < ip.n_t; i++) {
        if (t[i].data == NULL) {
            char name[48];
            snprintf(name, sizeof name, t[i].kind == OPM_T_HEAD_WEIGHT ? "head.weight"
                                        : t[i].kind == OPM_T_HEAD_BIAS ? "head.bias"
                                        : t[i].kind == OPM_T_BLOCK_WEIGHT ? "blocks.%u.weight"
                                                                          : "blocks.%u.bias",
                     t[i].layer);
            free(t);
            return opecom_fail(err, OPECOM_ESHAPE, -1, -1, -1, "tensor '%s' is missing", name);
        }
        ip.data_size = align_up(ip.data_size, OPM_ALIGN) + tensor_bytes(&t[i]);
    }

    /* Validate with the loader itself; the scalar kernel always exists. A
     * baseline is encoded by the model it belongs to: first the model without
     * it, then the whole file again with it. */
    opecom_load_options opts = {"scalar"};
    opecom_model *m = NULL;
    unsigned char *img = NULL;
    uint64_t size = 0;
    st = build_image(&ip, &img, &size, err);
    if (st == OPECOM_OK && (st = opecom_model_parse(img, size, 0, &opts, &m, err)) != OPECOM_OK)
        free(img);
    if (st == OPECOM_OK && d->n_baseline > 0) {
        float *bx = NULL;
        double *bw = NULL;
        st = encode_baseline(d, m, &bx, &bw, err);
        opecom_model_free(m); /* frees img */
        m = NULL;
        if (st == OPECOM_OK) {
            ip.n_base = d->n_baseline;
            ip.base_x = bx;
            ip.base_w = bw;
            st = build_image(&ip, &img, &size, err);
            if (st == OPECOM_OK &&
                (st = opecom_model_parse(img, size, 0, &opts, &m, err)) != OPECOM_OK)
                free(img);
        }
        free(bx);
        free(bw);
    }
    free(t);
    if (st != OPECOM_OK)
        return st;
    st = write_file(path, img, size, err);
    opecom_model_free(m); /* frees img */
    return st;
}
