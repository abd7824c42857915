/*
 * format.h - the .opm model file layout (format version 1), shared by the
 * writer (model_save.c) and the reader (model_load.c). docs/model-format.md
 * is the user-facing description of the same layout.
 *
 * All integers and floats are little-endian. Offsets are from the start of
 * the file unless said otherwise.
 *
 *   header   64 bytes at 0
 *   sections n_sections entries of 32 bytes at 64 (5 required sections,
 *            plus the optional BASELINE and DRIFT)
 *   payload  sections, each starting on a 64-byte boundary
 *
 * The CRC32 (zlib polynomial) covers the whole file except the 4 bytes of
 * the crc field itself.
 */
#ifndef OPECOM_FORMAT_H
#define OPECOM_FORMAT_H

#include <stdint.h>
#include <string.h>

#define OPM_MAGIC "\x89OPM\r\n\x1a\n"
#define OPM_MAGIC_LEN 8
#define OPM_VERSION 1
#define OPM_ALIGN 64

/* header */
#define OPM_HDR_SIZE 64
#define OPM_HDR_MAGIC 0        /* u8[8] */
#define OPM_HDR_VERSION 8      /* u32 */
#define OPM_HDR_HEADER_SIZE 12 /* u32, = 64 */
#define OPM_HDR_FILE_SIZE 16   /* u64 */
#define OPM_HDR_N_SECTIONS 24  /* u32 */
#define OPM_HDR_CRC 28         /* u32 */
#define OPM_HDR_RESERVED 32    /* 32 zero bytes */

/* section table entry */
#define OPM_SEC_SIZE 32
#define OPM_SEC_ID 0      /* u32 */
#define OPM_SEC_FLAGS 4   /* u32, = 0 */
#define OPM_SEC_OFFSET 8  /* u64 */
#define OPM_SEC_LENGTH 16 /* u64 */
#define OPM_SEC_RESERVED 24 /* u64, = 0 */

enum opm_section_id {
    OPM_SECTION_ARCH = 1,     /* fixed 48-byte record */
    OPM_SECTION_FEATURES = 2, /* feature records + their strings and arrays */
    OPM_SECTION_TENSORS = 3,  /* tensor directory */
    OPM_SECTION_SPEC = 4,     /* original spec JSON text, NUL-terminated */
    OPM_SECTION_DATA = 5,     /* tensor data, 64-byte aligned */
    OPM_SECTION_BASELINE = 6, /* optional: explanation baseline */
    OPM_SECTION_DRIFT = 7     /* optional: drift reference */
};
#define OPM_N_REQUIRED 5 /* sections 1..5 are in every file */
#define OPM_N_SECTIONS 7 /* largest section id and count */

/* ARCH section */
#define OPM_ARCH_SIZE 48
#define OPM_ARCH_TASK 0       /* u32: 1 = binary */
#define OPM_ARCH_TYPE 4       /* u32: 1 = tabm */
#define OPM_ARCH_K 8          /* u32 */
#define OPM_ARCH_N_BLOCKS 12  /* u32 */
#define OPM_ARCH_D_IN 16      /* u32 */
#define OPM_ARCH_D_BLOCK 20   /* u32 */
#define OPM_ARCH_N_OUT 24     /* u32: 1 */
#define OPM_ARCH_ACTIVATION 28 /* u32: 1 = relu */
#define OPM_ARCH_THRESHOLD 32 /* f32 */
#define OPM_ARCH_N_FEATURES 36 /* u32 */
#define OPM_ARCH_RESERVED 40  /* 8 zero bytes */
#define OPM_TASK_BINARY 1
#define OPM_ARCH_TABM 1
#define OPM_ACT_RELU 1

/* FEATURES section: n_features records, then a variable area. Offsets in a
 * record are relative to the section start. */
#define OPM_FEAT_SIZE 64
#define OPM_FEAT_TYPE 0       /* u32: opecom_feature_type */
#define OPM_FEAT_TRANSFORM 4  /* u32: opecom_transform (0 for categorical) */
#define OPM_FEAT_NAME_OFF 8   /* u32: NUL-terminated name */
#define OPM_FEAT_NAME_LEN 12  /* u32: bytes before the NUL */
#define OPM_FEAT_N_ITEMS 16   /* u32: categories or quantiles */
#define OPM_FEAT_ITEMS_OFF 20 /* u32: categorical: n_items x {u32 off, u32 len};
                                   quantile_normal: n_items f64, 8-aligned */
#define OPM_FEAT_FLAGS 24     /* u32: bit 0 has_min, bit 1 has_max */
#define OPM_FEAT_RESERVED 28  /* u32 = 0 */
#define OPM_FEAT_MEAN 32      /* f64 */
#define OPM_FEAT_STD 40       /* f64 */
#define OPM_FEAT_MIN 48       /* f64 */
#define OPM_FEAT_MAX 56       /* f64 */
#define OPM_FEAT_HAS_MIN 1u
#define OPM_FEAT_HAS_MAX 2u

/* TENSORS section: records of 48 bytes. */
#define OPM_TENSOR_SIZE 48
#define OPM_TENSOR_KIND 0   /* u32: opm_tensor_kind */
#define OPM_TENSOR_LAYER 4  /* u32: block index (0 for the head) */
#define OPM_TENSOR_DTYPE 8  /* u32: 1 = float32 */
#define OPM_TENSOR_NDIM 12  /* u32: 1..4 */
#define OPM_TENSOR_SHAPE 16 /* u32[4], unused dims = 0 */
#define OPM_TENSOR_OFFSET 32 /* u64: from the start of the DATA section, 64-aligned */
#define OPM_TENSOR_LENGTH 40 /* u64: bytes */
#define OPM_DTYPE_F32 1

enum opm_tensor_kind {
    OPM_T_BLOCK_WEIGHT = 1, /* blocks.{j}.weight [d_out, d_in] */
    OPM_T_BLOCK_R = 2,      /* blocks.{j}.r [k, d_in] (optional) */
    OPM_T_BLOCK_S = 3,      /* blocks.{j}.s [k, d_out] (optional) */
    OPM_T_BLOCK_BIAS = 4,   /* blocks.{j}.bias [k, d_out] */
    OPM_T_HEAD_WEIGHT = 5,  /* head.weight [k, 1, d_block] */
    OPM_T_HEAD_BIAS = 6     /* head.bias [k, 1] */
};

/* BASELINE section (optional): the explanation baseline, already encoded.
 *   header   64 bytes
 *   weights  n_rows f64 at 64, each finite and > 0, summing to 1
 *   rows     n_rows x d_in f32 at 64 + align64(8 n_rows): encoded rows,
 *            numerics finite, every categorical block exactly one-hot
 * The section is exactly that long. The raw rows it was encoded from are in
 * the spec JSON (key "baseline"), when the model was converted from one. */
#define OPM_BASE_HDR_SIZE 64
#define OPM_BASE_N_ROWS 0   /* u32: 1 .. OPM_MAX_BASELINE */
#define OPM_BASE_D_IN 4     /* u32: = ARCH d_in */
#define OPM_BASE_RESERVED 8 /* 56 zero bytes */
#define OPM_MAX_BASELINE 1024

/* DRIFT section (optional): the training distributions drift is measured
 * against (opecom_drift_*), one dim per feature in model order, then the score.
 *   header     64 bytes
 *   dims       n_dims records of 16 bytes at 64
 *   fractions  n_counts f64 at 64 + 16 n_dims: each dim's bins, dims in order;
 *              finite, >= 0, each dim's summing to 1 within 1e-6
 *   edges      n_edges f64 right after: each quantile dim's n_bins - 1 inner
 *              edges, dims in order; finite, strictly ascending (the score's
 *              within [0, 1])
 * The section is exactly 64 + 16 n_dims + 8 (n_counts + n_edges) bytes. A
 * numeric feature and the score have quantile bins (x <= edge goes left); a
 * categorical feature has n_categories + 1 bins, the last for "other". */
#define OPM_DRIFT_HDR_SIZE 64
#define OPM_DRIFT_N_DIMS 0     /* u32: = ARCH n_features + 1 */
#define OPM_DRIFT_N_COUNTS 4   /* u32: bins over all dims */
#define OPM_DRIFT_N_EDGES 8    /* u32: inner edges over all dims */
#define OPM_DRIFT_RESERVED0 12 /* u32 = 0 */
#define OPM_DRIFT_N_ROWS 16    /* u64: training rows, >= 1 */
#define OPM_DRIFT_RESERVED 24  /* 40 zero bytes */
#define OPM_DRIFT_DIM_SIZE 16
#define OPM_DRIFT_DIM_KIND 0     /* u32: opm_drift_kind */
#define OPM_DRIFT_DIM_N_BINS 4   /* u32 */
#define OPM_DRIFT_DIM_RESERVED 8 /* 8 zero bytes */
#define OPM_MAX_DRIFT_BINS 1024  /* bins of a quantile dim */
#define OPM_DRIFT_SUM_TOL 1e-6   /* |sum of a dim's fractions - 1| */

enum opm_drift_kind {
    OPM_DRIFT_QUANTILE = 1, /* numeric feature or the score: bins between edges */
    OPM_DRIFT_CATEGORY = 2  /* categorical feature: its categories, then "other" */
};

/* Sanity limits: a model outside them is OPECOM_ETOOBIG-like EARCH. */
#define OPM_MAX_BLOCKS 64
#define OPM_MAX_WIDTH (1u << 16)
#define OPM_MAX_FEATURES 4096
#define OPM_MAX_CATEGORIES (1u << 20)

static inline uint32_t opm_rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t opm_rd64(const unsigned char *p)
{
    return (uint64_t)opm_rd32(p) | (uint64_t)opm_rd32(p + 4) << 32;
}

static inline double opm_rdf64(const unsigned char *p)
{
    uint64_t u = opm_rd64(p);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static inline float opm_rdf32(const unsigned char *p)
{
    uint32_t u = opm_rd32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline void opm_wr32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline void opm_wr64(unsigned char *p, uint64_t v)
{
    opm_wr32(p, (uint32_t)v);
    opm_wr32(p + 4, (uint32_t)(v >> 32));
}

static inline void opm_wrf64(unsigned char *p, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    opm_wr64(p, u);
}

static inline void opm_wrf32(unsigned char *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    opm_wr32(p, u);
}

/* CRC32 of a whole file image, skipping the crc field. */
uint32_t opecom_opm_crc(const unsigned char *file, uint64_t size);

#endif
