/*
 * model_load.c - maps a .opm file and validates every byte of it before
 * anything is trusted: header, CRC32, section table, architecture, feature
 * records, tensor directory, tensor values. Each failure has its own status
 * and a message naming the field and the byte offset at fault.
 *
 * The checks run in this order, so that a damaged file is reported by its
 * most telling symptom: magic, version, header size, file size (truncation),
 * CRC (any flipped bit), then the structure, which only a file written with
 * a valid CRC by a buggy or hostile writer can get wrong. The optional
 * BASELINE section (the explanation baseline) and DRIFT section (the drift
 * reference, drift.c) are checked last, against the resolved features.
 *
 * The model then points straight into the mapped bytes (tensors are 64-byte
 * aligned); one allocation holds the resolved feature table and layer list.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "format.h"
#include "internal.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "libopecom maps model tensors directly and needs a little-endian host"
#endif

/* ========================================================================= *
 * Checksum
 * ========================================================================= */

uint32_t opecom_opm_crc(const unsigned char *file, uint64_t size)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, file, OPM_HDR_CRC);
    const unsigned char *p = file + OPM_HDR_CRC + 4;
    uint64_t left = size - (OPM_HDR_CRC + 4);
    while (left > 0) {
        uInt chunk = left > (1u << 30) ? (1u << 30) : (uInt)left;
        crc = crc32(crc, p, chunk);
        p += chunk;
        left -= chunk;
    }
    return (uint32_t)crc;
}

/* ========================================================================= *
 * Header and section table
 * ========================================================================= */

typedef struct section {
    uint64_t offset;
    uint64_t length;
    uint64_t entry; /* file offset of its table entry, for messages */
} section;

static opecom_status check_header(const unsigned char *b, uint64_t size, opecom_error *err)
{
    if (size < OPM_HDR_SIZE)
        return opecom_fail(err, OPECOM_ETRUNCATED, -1, -1, (int64_t)size,
                           "file is %llu bytes, shorter than the %d-byte header",
                           (unsigned long long)size, OPM_HDR_SIZE);
    if (memcmp(b + OPM_HDR_MAGIC, OPM_MAGIC, OPM_MAGIC_LEN) != 0)
        return opecom_fail(err, OPECOM_EMAGIC, -1, -1, 0,
                           "bytes 0-7 are not the .opm magic: not a model file");
    uint32_t version = opm_rd32(b + OPM_HDR_VERSION);
    if (version != OPM_VERSION)
        return opecom_fail(err, OPECOM_EVERSION, -1, -1, OPM_HDR_VERSION,
                           "format version %u at offset %d; this library reads version %d",
                           version, OPM_HDR_VERSION, OPM_VERSION);
    uint32_t hsize = opm_rd32(b + OPM_HDR_HEADER_SIZE);
    if (hsize != OPM_HDR_SIZE)
        return opecom_fail(err, OPECOM_EHEADER, -1, -1, OPM_HDR_HEADER_SIZE,
                           "header_size at offset %d is %u, expected %d", OPM_HDR_HEADER_SIZE,
                           hsize, OPM_HDR_SIZE);
    uint64_t declared = opm_rd64(b + OPM_HDR_FILE_SIZE);
    if (declared > size)
        return opecom_fail(err, OPECOM_ETRUNCATED, -1, -1, (int64_t)size,
                           "file is truncated: %llu bytes, header (offset %d) says %llu",
                           (unsigned long long)size, OPM_HDR_FILE_SIZE,
                           (unsigned long long)declared);
    if (declared < size)
        return opecom_fail(err, OPECOM_EHEADER, -1, -1, (int64_t)declared,
                           "%llu unexpected bytes after the end declared at offset %d (%llu)",
                           (unsigned long long)(size - declared), OPM_HDR_FILE_SIZE,
                           (unsigned long long)declared);
    uint32_t stored = opm_rd32(b + OPM_HDR_CRC);
    uint32_t actual = opecom_opm_crc(b, size);
    if (stored != actual)
        return opecom_fail(err, OPECOM_ECRC, -1, -1, OPM_HDR_CRC,
                           "CRC32 mismatch: stored 0x%08x at offset %d, computed 0x%08x "
                           "(the file is damaged)",
                           stored, OPM_HDR_CRC, actual);
    for (int i = 0; i < 32; i++)
        if (b[OPM_HDR_RESERVED + i] != 0)
            return opecom_fail(err, OPECOM_EHEADER, -1, -1, OPM_HDR_RESERVED + i,
                               "reserved header byte at offset %d is not zero",
                               OPM_HDR_RESERVED + i);
    return OPECOM_OK;
}

static opecom_status read_sections(const unsigned char *b, uint64_t size,
                                   section sec[OPM_N_SECTIONS + 1], opecom_error *err)
{
    uint32_t n = opm_rd32(b + OPM_HDR_N_SECTIONS);
    if (n < OPM_N_REQUIRED || n > OPM_N_SECTIONS)
        return opecom_fail(err, OPECOM_ESECTION, -1, -1, OPM_HDR_N_SECTIONS,
                           "n_sections at offset %d is %u, expected %d..%d", OPM_HDR_N_SECTIONS,
                           n, OPM_N_REQUIRED, OPM_N_SECTIONS);
    uint64_t table_end = OPM_HDR_SIZE + (uint64_t)n * OPM_SEC_SIZE;
    if (table_end > size)
        return opecom_fail(err, OPECOM_ESECTION, -1, -1, OPM_HDR_SIZE,
                           "section table (%u entries) runs past the end of the file", n);
    memset(sec, 0, sizeof(section) * (OPM_N_SECTIONS + 1));
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *e = b + OPM_HDR_SIZE + (uint64_t)i * OPM_SEC_SIZE;
        int64_t at = OPM_HDR_SIZE + (int64_t)i * OPM_SEC_SIZE;
        uint32_t id = opm_rd32(e + OPM_SEC_ID);
        uint64_t off = opm_rd64(e + OPM_SEC_OFFSET);
        uint64_t len = opm_rd64(e + OPM_SEC_LENGTH);
        if (id < 1 || id > OPM_N_SECTIONS)
            return opecom_fail(err, OPECOM_ESECTION, -1, -1, at,
                               "section entry %u (offset %lld) has unknown id %u", i,
                               (long long)at, id);
        if (sec[id].entry != 0)
            return opecom_fail(err, OPECOM_ESECTION, -1, -1, at,
                               "section id %u appears twice (entry %u at offset %lld)", id, i,
                               (long long)at);
        if (opm_rd32(e + OPM_SEC_FLAGS) != 0 || opm_rd64(e + OPM_SEC_RESERVED) != 0)
            return opecom_fail(err, OPECOM_ESECTION, -1, -1, at + OPM_SEC_FLAGS,
                               "section entry %u: flags/reserved fields are not zero", i);
        if (off % OPM_ALIGN != 0 || off < table_end || off > size || len > size - off)
            return opecom_fail(err, OPECOM_ESECTION, -1, -1, at + OPM_SEC_OFFSET,
                               "section %u: offset %llu + length %llu is misaligned or "
                               "outside the payload [%llu, %llu)",
                               id, (unsigned long long)off, (unsigned long long)len,
                               (unsigned long long)table_end, (unsigned long long)size);
        sec[id].offset = off;
        sec[id].length = len;
        sec[id].entry = (uint64_t)at;
    }
    for (uint32_t id = 1; id <= OPM_N_REQUIRED; id++)
        if (sec[id].entry == 0)
            return opecom_fail(err, OPECOM_ESECTION, -1, -1, OPM_HDR_N_SECTIONS,
                               "required section %u is missing from the section table", id);
    for (uint32_t i = 1; i <= OPM_N_SECTIONS; i++)
        for (uint32_t j = i + 1; j <= OPM_N_SECTIONS; j++)
            if (sec[i].offset < sec[j].offset + sec[j].length &&
                sec[j].offset < sec[i].offset + sec[i].length)
                return opecom_fail(err, OPECOM_ESECTION, -1, -1, (int64_t)sec[j].entry,
                                   "sections %u and %u overlap", i, j);
    return OPECOM_OK;
}

/* ========================================================================= *
 * Architecture
 * ========================================================================= */

static opecom_status read_arch(const unsigned char *b, const section *s, opecom_model *m,
                               opecom_error *err)
{
    const unsigned char *a = b + s->offset;
    int64_t at = (int64_t)s->offset;
    if (s->length != OPM_ARCH_SIZE)
        return opecom_fail(err, OPECOM_ESECTION, -1, -1, (int64_t)s->entry,
                           "architecture section is %llu bytes, expected %d",
                           (unsigned long long)s->length, OPM_ARCH_SIZE);
    struct {
        int field;
        uint32_t lo, hi;
        const char *name;
    } limits[] = {
        {OPM_ARCH_TASK, OPM_TASK_BINARY, OPM_TASK_BINARY, "task"},
        {OPM_ARCH_TYPE, OPM_ARCH_TABM, OPM_ARCH_TABM, "architecture type"},
        {OPM_ARCH_K, 1, OPECOM_MAX_K, "k"},
        {OPM_ARCH_N_BLOCKS, 1, OPM_MAX_BLOCKS, "n_blocks"},
        {OPM_ARCH_D_IN, 1, OPM_MAX_WIDTH, "d_in"},
        {OPM_ARCH_D_BLOCK, 1, OPM_MAX_WIDTH, "d_block"},
        {OPM_ARCH_N_OUT, 1, 1, "n_out"},
        {OPM_ARCH_ACTIVATION, OPM_ACT_RELU, OPM_ACT_RELU, "activation"},
        {OPM_ARCH_N_FEATURES, 1, OPM_MAX_FEATURES, "n_features"},
        {OPM_ARCH_RESERVED, 0, 0, "reserved"},
        {OPM_ARCH_RESERVED + 4, 0, 0, "reserved"},
    };
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        uint32_t v = opm_rd32(a + limits[i].field);
        if (v < limits[i].lo || v > limits[i].hi)
            return opecom_fail(err, OPECOM_EARCH, -1, -1, at + limits[i].field,
                               "architecture field '%s' at offset %lld is %u, allowed %u..%u",
                               limits[i].name, (long long)(at + limits[i].field), v,
                               limits[i].lo, limits[i].hi);
    }
    float t = opm_rdf32(a + OPM_ARCH_THRESHOLD);
    if (!(t > 0.0f && t < 1.0f))
        return opecom_fail(err, OPECOM_EARCH, -1, -1, at + OPM_ARCH_THRESHOLD,
                           "threshold at offset %lld is %g, must be in (0, 1)",
                           (long long)(at + OPM_ARCH_THRESHOLD), (double)t);
    m->k = opm_rd32(a + OPM_ARCH_K);
    m->n_blocks = opm_rd32(a + OPM_ARCH_N_BLOCKS);
    m->d_in = opm_rd32(a + OPM_ARCH_D_IN);
    m->d_block = opm_rd32(a + OPM_ARCH_D_BLOCK);
    m->n_features = opm_rd32(a + OPM_ARCH_N_FEATURES);
    m->threshold = t;
    return OPECOM_OK;
}

/* ========================================================================= *
 * Features
 * ========================================================================= */

/* A NUL-terminated, non-empty string of `len` bytes at section offset `off`. */
static int string_ok(const unsigned char *sec, uint64_t sec_len, uint32_t off, uint32_t len)
{
    if (len == 0 || off >= sec_len || len >= sec_len - off)
        return 0;
    return sec[off + len] == '\0' && memchr(sec + off, '\0', len) == NULL;
}

/* Validates every feature record; counts categories. */
static opecom_status check_features(const unsigned char *b, const section *s,
                                    const opecom_model *m, uint64_t *n_cats, opecom_error *err)
{
    const unsigned char *sec = b + s->offset;
    uint64_t cols = 0;
    *n_cats = 0;
    if (s->length < (uint64_t)m->n_features * OPM_FEAT_SIZE)
        return opecom_fail(err, OPECOM_ESECTION, -1, -1, (int64_t)s->entry,
                           "feature section is %llu bytes, too short for %u records",
                           (unsigned long long)s->length, m->n_features);
    for (uint32_t f = 0; f < m->n_features; f++) {
        const unsigned char *r = sec + (uint64_t)f * OPM_FEAT_SIZE;
        int64_t at = (int64_t)(s->offset + (uint64_t)f * OPM_FEAT_SIZE);
        uint32_t type = opm_rd32(r + OPM_FEAT_TYPE);
        uint32_t tr = opm_rd32(r + OPM_FEAT_TRANSFORM);
        uint32_t noff = opm_rd32(r + OPM_FEAT_NAME_OFF);
        uint32_t nlen = opm_rd32(r + OPM_FEAT_NAME_LEN);
        uint32_t n_items = opm_rd32(r + OPM_FEAT_N_ITEMS);
        uint32_t ioff = opm_rd32(r + OPM_FEAT_ITEMS_OFF);
        uint32_t flags = opm_rd32(r + OPM_FEAT_FLAGS);
        double mean = opm_rdf64(r + OPM_FEAT_MEAN), sd = opm_rdf64(r + OPM_FEAT_STD);
        double lo = opm_rdf64(r + OPM_FEAT_MIN), hi = opm_rdf64(r + OPM_FEAT_MAX);

        if (!string_ok(sec, s->length, noff, nlen))
            return opecom_fail(err, OPECOM_ESPEC, (int32_t)f, -1, at + OPM_FEAT_NAME_OFF,
                               "feature %u: name (offset %u, length %u) is empty, "
                               "unterminated or out of the section",
                               f, noff, nlen);
        const char *name = (const char *)sec + noff;
        for (uint32_t g = 0; g < f; g++) {
            const unsigned char *q = sec + (uint64_t)g * OPM_FEAT_SIZE;
            if (strcmp((const char *)sec + opm_rd32(q + OPM_FEAT_NAME_OFF), name) == 0)
                return opecom_fail(err, OPECOM_ESPEC, (int32_t)f, -1, at,
                                   "feature %u: name '%s' already used by feature %u", f, name,
                                   g);
        }
        if (opm_rd32(r + OPM_FEAT_RESERVED) != 0)
            return opecom_fail(err, OPECOM_ESPEC, (int32_t)f, -1, at + OPM_FEAT_RESERVED,
                               "feature '%s': reserved field is not zero", name);
        if (type == OPECOM_FEATURE_NUMERIC) {
            if (tr < OPECOM_TRANSFORM_NONE || tr > OPECOM_TRANSFORM_QUANTILE_NORMAL)
                return opecom_fail(err, OPECOM_ESPEC, (int32_t)f, -1, at + OPM_FEAT_TRANSFORM,
                                   "feature '%s': unknown transform %u", name, tr);
            if (!isfinite(mean) || !isfinite(sd) || !(sd > 0.0))
                return opecom_fail(err, OPECOM_ESPEC, (int32_t)f, -1, at + OPM_FEAT_MEAN,
                                   "feature '%s': mean %g / std %g must be finite, std > 0",
                                   name, mean, sd);
            if (flags > (OPM_FEAT_HAS_MIN | OPM_FEAT_HAS_MAX) ||
                ((flags & OPM_FEAT_HAS_MIN) && !isfinite(lo)) ||
                ((flags & OPM_FEAT_HAS_MAX) && !isfinite(hi)) ||
                (flags == (OPM_FEAT_HAS_MIN | OPM_FEAT_HAS_MAX) && lo > hi))
                return opecom_fail(err, OPECOM_ESPEC, (int32_t)f, -1, at + OPM_FEAT_FLAGS,
                                   "feature '%s': bad valid range (flags %u, min %g, max %g)",
                                   name, flags, lo, hi);
            if (tr == OPECOM_TRANSFORM_QUANTILE_NORMAL) {
                if (n_items < 2 || ioff % 8 != 0 || ioff > s->length ||
                    (uint64_t)n_items * 8 > s->length - ioff)
                    return opecom_fail(err, OPECOM_ESPEC, (int32_t)f, -1,
                                       at + OPM_FEAT_N_ITEMS,
                                       "feature '%s': quantile table (%u values at %u) is "
                                       "too short, misaligned or out of the section",
                                       name, n_items, ioff);
                double prev = -HUGE_VAL;
                for (uint32_t i = 0; i < n_items; i++) {
                    double q = opm_rdf64(sec + ioff + (uint64_t)i * 8);
                    if (!isfinite(q) || q < prev)
                        return opecom_fail(err, OPECOM_ESPEC, (int32_t)f, -1,
                                           (int64_t)(s->offset + ioff + (uint64_t)i * 8),
                                           "feature '%s': quantile %u (%g) is not finite or "
                                           "decreases",
                                           name, i, q);
                    prev = q;
                }
            } else if (n_items != 0 || ioff != 0) {
                return opecom_fail(err, OPECOM_ESPEC, (int32_t)f, -1, at + OPM_FEAT_N_ITEMS,
                                   "feature '%s': items given for a transform without any",
                                   name);
            }
            cols += 1;
        } else if (type == OPECOM_FEATURE_CATEGORICAL) {
            if (tr != 0 || flags != 0 || mean != 0.0 || sd != 0.0 || lo != 0.0 || hi != 0.0)
                return opecom_fail(err, OPECOM_ESPEC, (int32_t)f, -1, at + OPM_FEAT_TRANSFORM,
                                   "feature '%s': categorical record has numeric fields set",
                                   name);
            if (n_items < 1 || n_items > OPM_MAX_CATEGORIES || ioff % 4 != 0 ||
                ioff > s->length || (uint64_t)n_items * 8 > s->length - ioff)
                return opecom_fail(err, OPECOM_ESPEC, (int32_t)f, -1, at + OPM_FEAT_N_ITEMS,
                                   "feature '%s': category table (%u entries at %u) is empty, "
                                   "misaligned or out of the section",
                                   name, n_items, ioff);
            for (uint32_t c = 0; c < n_items; c++) {
                const unsigned char *e = sec + ioff + (uint64_t)c * 8;
                uint32_t coff = opm_rd32(e), clen = opm_rd32(e + 4);
                int64_t cat_at = (int64_t)(s->offset + ioff + (uint64_t)c * 8);
                if (!string_ok(sec, s->length, coff, clen))
                    return opecom_fail(err, OPECOM_ESPEC, (int32_t)f, -1, cat_at,
                                       "feature '%s': category %u (offset %u, length %u) is "
                                       "empty, unterminated or out of the section",
                                       name, c, coff, clen);
                for (uint32_t d = 0; d < c; d++)
                    if (strcmp((const char *)sec + opm_rd32(sec + ioff + (uint64_t)d * 8),
                               (const char *)sec + coff) == 0)
                        return opecom_fail(err, OPECOM_ESPEC, (int32_t)f, -1, cat_at,
                                           "feature '%s': category '%s' appears twice", name,
                                           (const char *)sec + coff);
            }
            cols += n_items;
            *n_cats += n_items;
        } else {
            return opecom_fail(err, OPECOM_ESPEC, (int32_t)f, -1, at + OPM_FEAT_TYPE,
                               "feature %u: unknown type %u", f, type);
        }
    }
    if (cols != m->d_in)
        return opecom_fail(err, OPECOM_EARCH, -1, -1, -1,
                           "features encode to %llu columns but the architecture says "
                           "d_in = %u",
                           (unsigned long long)cols, m->d_in);
    return OPECOM_OK;
}

/* Fills the resolved feature table (everything was checked before). */
static void fill_features(const unsigned char *b, const section *s, opecom_model *m,
                          const char **cat_text, double *cat_num)
{
    const unsigned char *sec = b + s->offset;
    uint32_t col = 0;
    for (uint32_t f = 0; f < m->n_features; f++) {
        const unsigned char *r = sec + (uint64_t)f * OPM_FEAT_SIZE;
        opecom_feature *F = &m->features[f];
        uint32_t flags = opm_rd32(r + OPM_FEAT_FLAGS);
        uint32_t ioff = opm_rd32(r + OPM_FEAT_ITEMS_OFF);
        F->name = (const char *)sec + opm_rd32(r + OPM_FEAT_NAME_OFF);
        F->type = (opecom_feature_type)opm_rd32(r + OPM_FEAT_TYPE);
        F->transform = (opecom_transform)opm_rd32(r + OPM_FEAT_TRANSFORM);
        F->mean = opm_rdf64(r + OPM_FEAT_MEAN);
        F->std = opm_rdf64(r + OPM_FEAT_STD);
        F->has_min = (flags & OPM_FEAT_HAS_MIN) != 0;
        F->has_max = (flags & OPM_FEAT_HAS_MAX) != 0;
        F->min = opm_rdf64(r + OPM_FEAT_MIN);
        F->max = opm_rdf64(r + OPM_FEAT_MAX);
        F->n_items = opm_rd32(r + OPM_FEAT_N_ITEMS);
        F->col = col;
        if (F->type == OPECOM_FEATURE_NUMERIC) {
            if (F->transform == OPECOM_TRANSFORM_QUANTILE_NORMAL)
                F->quantiles = (const double *)(const void *)(sec + ioff);
            col += 1;
            continue;
        }
        F->cat_text = cat_text;
        F->cat_num = cat_num;
        for (uint32_t c = 0; c < F->n_items; c++) {
            const char *text = (const char *)sec + opm_rd32(sec + ioff + (uint64_t)c * 8);
            char *end;
            double v = strtod(text, &end);
            cat_text[c] = text;
            cat_num[c] = (*end == '\0' && isfinite(v)) ? v : (double)NAN;
        }
        cat_text += F->n_items;
        cat_num += F->n_items;
        col += F->n_items;
    }
}

/* ========================================================================= *
 * Tensors
 * ========================================================================= */

static void tensor_name(char *buf, size_t cap, uint32_t kind, uint32_t layer)
{
    static const char *const suffix[] = {"", "weight", "r", "s", "bias"};
    if (kind >= OPM_T_BLOCK_WEIGHT && kind <= OPM_T_BLOCK_BIAS)
        snprintf(buf, cap, "blocks.%u.%s", layer, suffix[kind]);
    else if (kind == OPM_T_HEAD_WEIGHT)
        snprintf(buf, cap, "head.weight");
    else if (kind == OPM_T_HEAD_BIAS)
        snprintf(buf, cap, "head.bias");
    else
        snprintf(buf, cap, "tensor kind %u", kind);
}

/* Expected shape of a tensor; returns ndim. */
static uint32_t tensor_shape(const opecom_model *m, uint32_t kind, uint32_t layer,
                             uint32_t shape[4])
{
    uint32_t d_in = layer == 0 ? m->d_in : m->d_block;
    memset(shape, 0, 4 * sizeof shape[0]);
    switch (kind) {
    case OPM_T_BLOCK_WEIGHT: shape[0] = m->d_block; shape[1] = d_in; return 2;
    case OPM_T_BLOCK_R: shape[0] = m->k; shape[1] = d_in; return 2;
    case OPM_T_BLOCK_S:
    case OPM_T_BLOCK_BIAS: shape[0] = m->k; shape[1] = m->d_block; return 2;
    case OPM_T_HEAD_WEIGHT: shape[0] = m->k; shape[1] = 1; shape[2] = m->d_block; return 3;
    default: shape[0] = m->k; shape[1] = 1; return 2; /* head bias */
    }
}

static opecom_status read_tensors(const unsigned char *b, const section *dir,
                                  const section *data, opecom_model *m,
                                  opecom_tabm_layer *layers, opecom_error *err)
{
    const uint64_t max_n = 4ull * m->n_blocks + 2;
    char name[48];
    if (dir->length % OPM_TENSOR_SIZE != 0 || dir->length / OPM_TENSOR_SIZE > max_n)
        return opecom_fail(err, OPECOM_ESECTION, -1, -1, (int64_t)dir->entry,
                           "tensor directory is %llu bytes: not a whole number of %d-byte "
                           "records, or more than the %llu tensors the architecture has",
                           (unsigned long long)dir->length, OPM_TENSOR_SIZE,
                           (unsigned long long)max_n);
    uint64_t n = dir->length / OPM_TENSOR_SIZE;
    memset(layers, 0, sizeof *layers * m->n_blocks);
    m->net.head_w = m->net.head_b = NULL;
    m->n_params = 0;
    for (uint64_t t = 0; t < n; t++) {
        const unsigned char *r = b + dir->offset + t * OPM_TENSOR_SIZE;
        int64_t at = (int64_t)(dir->offset + t * OPM_TENSOR_SIZE);
        uint32_t kind = opm_rd32(r + OPM_TENSOR_KIND), layer = opm_rd32(r + OPM_TENSOR_LAYER);
        uint32_t ndim = opm_rd32(r + OPM_TENSOR_NDIM);
        uint64_t off = opm_rd64(r + OPM_TENSOR_OFFSET), len = opm_rd64(r + OPM_TENSOR_LENGTH);
        int is_head = kind == OPM_T_HEAD_WEIGHT || kind == OPM_T_HEAD_BIAS;
        tensor_name(name, sizeof name, kind, layer);
        if (kind < OPM_T_BLOCK_WEIGHT || kind > OPM_T_HEAD_BIAS ||
            (is_head ? layer != 0 : layer >= m->n_blocks))
            return opecom_fail(err, OPECOM_ESHAPE, -1, -1, at,
                               "tensor record %llu (offset %lld): unknown tensor '%s' "
                               "for %u blocks",
                               (unsigned long long)t, (long long)at, name, m->n_blocks);
        if (opm_rd32(r + OPM_TENSOR_DTYPE) != OPM_DTYPE_F32)
            return opecom_fail(err, OPECOM_ESHAPE, -1, -1, at + OPM_TENSOR_DTYPE,
                               "tensor '%s': dtype %u is not float32", name,
                               opm_rd32(r + OPM_TENSOR_DTYPE));
        uint32_t want[4];
        uint32_t want_ndim = tensor_shape(m, kind, layer, want);
        uint64_t count = 1;
        for (uint32_t d = 0; d < 4; d++) {
            uint32_t got = opm_rd32(r + OPM_TENSOR_SHAPE + 4 * d);
            if (ndim != want_ndim || got != want[d])
                return opecom_fail(err, OPECOM_ESHAPE, -1, -1, at + OPM_TENSOR_SHAPE,
                                   "tensor '%s': shape (ndim %u) [%u, %u, %u] does not match "
                                   "the architecture's [%u, %u, %u]",
                                   name, ndim, opm_rd32(r + OPM_TENSOR_SHAPE),
                                   opm_rd32(r + OPM_TENSOR_SHAPE + 4),
                                   opm_rd32(r + OPM_TENSOR_SHAPE + 8), want[0], want[1],
                                   want[2]);
            if (d < want_ndim)
                count *= want[d];
        }
        if (len != count * 4 || off % OPM_ALIGN != 0 || off > data->length ||
            len > data->length - off)
            return opecom_fail(err, OPECOM_ESHAPE, -1, -1, at + OPM_TENSOR_OFFSET,
                               "tensor '%s': data at %llu, %llu bytes, is misaligned, the "
                               "wrong size (%llu expected) or outside the data section",
                               name, (unsigned long long)off, (unsigned long long)len,
                               (unsigned long long)(count * 4));
        const float *p = (const float *)(const void *)(b + data->offset + off);
        for (uint64_t i = 0; i < count; i++)
            if (!isfinite(p[i]))
                return opecom_fail(err, OPECOM_EVALUE, -1, -1,
                                   (int64_t)(data->offset + off + 4 * i),
                                   "tensor '%s': element %llu (file offset %llu) is not finite",
                                   name, (unsigned long long)i,
                                   (unsigned long long)(data->offset + off + 4 * i));
        const float **slot = NULL;
        opecom_tabm_layer *L = &layers[layer];
        switch (kind) {
        case OPM_T_BLOCK_WEIGHT: slot = &L->w; break;
        case OPM_T_BLOCK_R: slot = &L->r; break;
        case OPM_T_BLOCK_S: slot = &L->s; break;
        case OPM_T_BLOCK_BIAS: slot = &L->b; break;
        case OPM_T_HEAD_WEIGHT: slot = &m->net.head_w; break;
        default: slot = &m->net.head_b; break;
        }
        if (*slot != NULL)
            return opecom_fail(err, OPECOM_ESHAPE, -1, -1, at,
                               "tensor '%s' appears twice in the directory", name);
        /* Tensors may not share bytes: a writer bug could otherwise alias them. */
        for (uint64_t u = 0; u < t; u++) {
            const unsigned char *q = b + dir->offset + u * OPM_TENSOR_SIZE;
            uint64_t qo = opm_rd64(q + OPM_TENSOR_OFFSET), ql = opm_rd64(q + OPM_TENSOR_LENGTH);
            if (off < qo + ql && qo < off + len)
                return opecom_fail(err, OPECOM_ESHAPE, -1, -1, at + OPM_TENSOR_OFFSET,
                                   "tensor '%s' overlaps tensor record %llu", name,
                                   (unsigned long long)u);
        }
        *slot = p;
        m->n_params += count;
    }
    for (uint32_t l = 0; l < m->n_blocks; l++) {
        layers[l].d_in = l == 0 ? m->d_in : m->d_block;
        layers[l].d_out = m->d_block;
        uint32_t kind = !layers[l].w ? OPM_T_BLOCK_WEIGHT : !layers[l].b ? OPM_T_BLOCK_BIAS : 0;
        if (kind) {
            tensor_name(name, sizeof name, kind, l);
            return opecom_fail(err, OPECOM_ESHAPE, -1, -1, (int64_t)dir->entry,
                               "tensor '%s' is missing", name);
        }
    }
    if (!m->net.head_w || !m->net.head_b)
        return opecom_fail(err, OPECOM_ESHAPE, -1, -1, (int64_t)dir->entry,
                           "tensor '%s' is missing", m->net.head_w ? "head.bias" : "head.weight");
    return OPECOM_OK;
}

/* ========================================================================= *
 * Explanation baseline
 * ========================================================================= */

/* Validates the optional BASELINE section against the resolved features and
 * points the model at it. */
static opecom_status read_baseline(const unsigned char *b, const section *s, opecom_model *m,
                                   opecom_error *err)
{
    const unsigned char *sec = b + s->offset;
    int64_t at = (int64_t)s->offset;
    if (s->entry == 0)
        return OPECOM_OK; /* no baseline: opecom_explain says so */
    if (s->length < OPM_BASE_HDR_SIZE)
        return opecom_fail(err, OPECOM_ESECTION, -1, -1, (int64_t)s->entry,
                           "baseline section is %llu bytes, shorter than its %d-byte header",
                           (unsigned long long)s->length, OPM_BASE_HDR_SIZE);
    uint32_t n = opm_rd32(sec + OPM_BASE_N_ROWS), d_in = opm_rd32(sec + OPM_BASE_D_IN);
    if (n < 1 || n > OPM_MAX_BASELINE)
        return opecom_fail(err, OPECOM_ESECTION, -1, -1, at + OPM_BASE_N_ROWS,
                           "baseline section: n_rows at offset %lld is %u, allowed 1..%d",
                           (long long)(at + OPM_BASE_N_ROWS), n, OPM_MAX_BASELINE);
    if (d_in != m->d_in)
        return opecom_fail(err, OPECOM_ESECTION, -1, -1, at + OPM_BASE_D_IN,
                           "baseline section: d_in at offset %lld is %u, the architecture's "
                           "is %u",
                           (long long)(at + OPM_BASE_D_IN), d_in, m->d_in);
    for (int i = OPM_BASE_RESERVED; i < OPM_BASE_HDR_SIZE; i++)
        if (sec[i] != 0)
            return opecom_fail(err, OPECOM_ESECTION, -1, -1, at + i,
                               "baseline section: reserved byte at offset %lld is not zero",
                               (long long)(at + i));
    uint64_t rows_at = OPM_BASE_HDR_SIZE + ((uint64_t)n * 8 + OPM_ALIGN - 1) / OPM_ALIGN * OPM_ALIGN;
    uint64_t want = rows_at + (uint64_t)n * d_in * 4;
    if (s->length != want)
        return opecom_fail(err, OPECOM_ESECTION, -1, -1, (int64_t)s->entry,
                           "baseline section is %llu bytes; %u rows of %u columns take %llu",
                           (unsigned long long)s->length, n, d_in, (unsigned long long)want);
    const double *w = (const double *)(const void *)(sec + OPM_BASE_HDR_SIZE);
    double sum = 0.0;
    for (uint32_t r = 0; r < n; r++) {
        int64_t wat = at + OPM_BASE_HDR_SIZE + 8 * (int64_t)r;
        if (!isfinite(w[r]))
            return opecom_fail(err, OPECOM_EVALUE, -1, -1, wat,
                               "baseline section: weight %u (offset %lld) is not finite", r,
                               (long long)wat);
        if (!(w[r] > 0.0))
            return opecom_fail(err, OPECOM_ESECTION, -1, -1, wat,
                               "baseline section: weight %u (offset %lld) is %g, must be > 0", r,
                               (long long)wat, w[r]);
        sum += w[r];
    }
    if (fabs(sum - 1.0) > 1e-6)
        return opecom_fail(err, OPECOM_ESECTION, -1, -1, at + OPM_BASE_HDR_SIZE,
                           "baseline section: weights sum to %.9g, not 1", sum);
    const float *x = (const float *)(const void *)(sec + rows_at);
    for (uint32_t r = 0; r < n; r++) {
        const float *row = x + (uint64_t)r * d_in;
        for (uint32_t f = 0; f < m->n_features; f++) {
            const opecom_feature *F = &m->features[f];
            int64_t fat = at + (int64_t)(rows_at + ((uint64_t)r * d_in + F->col) * 4);
            if (F->type == OPECOM_FEATURE_NUMERIC) {
                if (!isfinite(row[F->col]))
                    return opecom_fail(err, OPECOM_EVALUE, (int32_t)f, -1, fat,
                                       "baseline section: row %u, feature '%s' (offset %lld) is "
                                       "not finite",
                                       r, F->name, (long long)fat);
                continue;
            }
            uint32_t ones = 0, others = 0;
            for (uint32_t c = 0; c < F->n_items; c++) {
                ones += row[F->col + c] == 1.0f;
                others += row[F->col + c] != 1.0f && row[F->col + c] != 0.0f;
            }
            if (ones != 1 || others != 0)
                return opecom_fail(err, OPECOM_ESECTION, (int32_t)f, -1, fat,
                                   "baseline section: row %u, feature '%s' (offset %lld) is not "
                                   "one known category (one-hot block)",
                                   r, F->name, (long long)fat);
        }
    }
    m->n_baseline = n;
    m->baseline_w = w;
    m->baseline_wsum = sum;
    m->baseline_x = x;
    return OPECOM_OK;
}

/* ========================================================================= *
 * Putting it together
 * ========================================================================= */

opecom_status opecom_model_parse(unsigned char *bytes, uint64_t size, int mapped,
                                 const opecom_load_options *opts, opecom_model **out,
                                 opecom_error *err)
{
    section sec[OPM_N_SECTIONS + 1];
    opecom_model tmp;
    uint64_t n_cats = 0;
    opecom_status st;

    memset(&tmp, 0, sizeof tmp);
    if ((st = check_header(bytes, size, err)) != OPECOM_OK ||
        (st = read_sections(bytes, size, sec, err)) != OPECOM_OK ||
        (st = read_arch(bytes, &sec[OPM_SECTION_ARCH], &tmp, err)) != OPECOM_OK ||
        (st = check_features(bytes, &sec[OPM_SECTION_FEATURES], &tmp, &n_cats, err)) != OPECOM_OK)
        return st;

    const section *spec = &sec[OPM_SECTION_SPEC];
    if (spec->length == 0 || bytes[spec->offset + spec->length - 1] != '\0' ||
        memchr(bytes + spec->offset, '\0', spec->length - 1) != NULL)
        return opecom_fail(err, OPECOM_ESECTION, -1, -1, (int64_t)spec->entry,
                           "spec section is not one NUL-terminated text");

    const char *name = opts && opts->kernel ? opts->kernel : getenv("OPECOM_KERNEL");
    const opecom_kernel *kernel = opecom_kernel_find(name && *name ? name : "auto");
    if (kernel == NULL)
        return opecom_fail(err, OPECOM_EKERNEL, -1, -1, -1,
                           "kernel '%s' is unknown or not supported by this CPU", name);

    /* One block: model, features, category text pointers and values, layers,
     * drift dims. */
    const section *drift = &sec[OPM_SECTION_DRIFT];
    size_t n_drift = drift->entry != 0 ? (size_t)tmp.n_features + 1 : 0;
    size_t total = sizeof(opecom_model) + sizeof(opecom_feature) * tmp.n_features +
                   (sizeof(double) + sizeof(char *)) * (size_t)n_cats +
                   sizeof(opecom_tabm_layer) * tmp.n_blocks + sizeof(opecom_drift_ref) * n_drift;
    unsigned char *block = calloc(1, total);
    if (block == NULL)
        return opecom_fail(err, OPECOM_ENOMEM, -1, -1, -1, "out of memory (%zu bytes)", total);
    opecom_model *m = (opecom_model *)(void *)block;
    *m = tmp;
    m->features = (opecom_feature *)(void *)(m + 1);
    double *cat_num = (double *)(void *)(m->features + m->n_features);
    const char **cat_text = (const char **)(void *)(cat_num + n_cats);
    opecom_tabm_layer *layers = (opecom_tabm_layer *)(void *)(cat_text + n_cats);
    opecom_drift_ref *drift_dims = (opecom_drift_ref *)(void *)(layers + tmp.n_blocks);

    st = read_tensors(bytes, &sec[OPM_SECTION_TENSORS], &sec[OPM_SECTION_DATA], m, layers, err);
    if (st != OPECOM_OK) {
        free(block);
        return st;
    }
    m->net.k = m->k;
    m->net.n_blocks = m->n_blocks;
    m->net.d_in = m->d_in;
    m->net.d_block = m->d_block;
    m->net.layers = layers;
    fill_features(bytes, &sec[OPM_SECTION_FEATURES], m, cat_text, cat_num);
    st = read_baseline(bytes, &sec[OPM_SECTION_BASELINE], m, err);
    if (st == OPECOM_OK && drift->entry != 0)
        st = opecom_drift_parse(bytes, drift->offset, drift->length, drift->entry, m,
                                drift_dims, err);
    if (st != OPECOM_OK) {
        free(block);
        return st;
    }
    if (kernel->prepare && kernel->prepare(&m->net, &m->packed) != 0) {
        free(block);
        return opecom_fail(err, OPECOM_ENOMEM, -1, -1, -1,
                           "out of memory packing weights for kernel %s", kernel->name);
    }
    m->bytes = bytes;
    m->size = size;
    m->mapped = mapped;
    m->spec_json = (const char *)bytes + spec->offset;
    m->kernel = kernel;
    *out = m;
    return OPECOM_OK;
}

opecom_status opecom_model_load(const char *path, const opecom_load_options *opts,
                                opecom_model **out, opecom_error *err)
{
    if (path == NULL || out == NULL)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "path and out must not be NULL");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return opecom_fail(err, OPECOM_EIO, -1, -1, -1, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return opecom_fail(err, OPECOM_EIO, -1, -1, -1, "%s: not a regular file", path);
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < OPM_HDR_SIZE) {
        close(fd);
        return opecom_fail(err, OPECOM_ETRUNCATED, -1, -1, (int64_t)size,
                           "%s: file is %llu bytes, shorter than the %d-byte header", path,
                           (unsigned long long)size, OPM_HDR_SIZE);
    }
    if (size > SIZE_MAX) {
        close(fd);
        return opecom_fail(err, OPECOM_EIO, -1, -1, -1, "%s: too large to map", path);
    }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return opecom_fail(err, OPECOM_EIO, -1, -1, -1, "%s: mmap: %s", path, strerror(errno));
    opecom_status s = opecom_model_parse(map, size, 1, opts, out, err);
    if (s != OPECOM_OK)
        munmap(map, (size_t)size);
    return s;
}

opecom_status opecom_model_load_buffer(const void *data, size_t size,
                                       const opecom_load_options *opts, opecom_model **out,
                                       opecom_error *err)
{
    if ((data == NULL && size > 0) || out == NULL)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "data and out must not be NULL");
    *out = NULL;
    if (size < OPM_HDR_SIZE)
        return opecom_fail(err, OPECOM_ETRUNCATED, -1, -1, (int64_t)size,
                           "buffer is %zu bytes, shorter than the %d-byte header", size,
                           OPM_HDR_SIZE);
    void *copy = NULL;
    if (posix_memalign(&copy, OPM_ALIGN, size) != 0)
        return opecom_fail(err, OPECOM_ENOMEM, -1, -1, -1, "out of memory (%zu bytes)", size);
    memcpy(copy, data, size);
    opecom_status s = opecom_model_parse(copy, size, 0, opts, out, err);
    if (s != OPECOM_OK)
        free(copy);
    return s;
}

void opecom_model_free(opecom_model *model)
{
    if (model == NULL)
        return;
    if (model->mapped)
        munmap(model->bytes, (size_t)model->size);
    else
        free(model->bytes);
    free(model->packed);
    free(model); /* the model heads the one block allocated in opecom_model_parse */
}
