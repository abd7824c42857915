/*
 * opecom.h - the whole public API of libopecom.
 *
 * libopecom predicts, while a visitor is still browsing, the probability that
 * an online-shop session ends in a purchase. A model file (.opm, written by
 * opecom-convert) holds a TabM network (a BatchEnsemble MLP of k members that
 * share their weight matrices) and the preprocessing it was trained with.
 * Callers pass raw session features (numbers as numbers, categories as their
 * text) and get back the mean of the members' probabilities, each member's
 * probability and their spread.
 *
 * Anything not declared here is not part of the API.
 *
 * Conventions
 *   - Every fallible function returns an opecom_status; 0 (OPECOM_OK) is
 *     success. Outputs come last and are marked "out".
 *   - Functions that can fail take an optional opecom_error *err (may be NULL)
 *     that receives a detailed message: which feature, which row, which byte
 *     offset of the file. The library never prints, exits or aborts on
 *     anything a caller or a file can cause.
 *   - Every *_free function accepts NULL.
 *   - Threads: a loaded opecom_model is immutable and may be used by any
 *     number of threads at once. An opecom_workspace holds the mutable scratch
 *     memory of one call at a time: use one per thread.
 *   - opecom_predict, opecom_predict_batch and opecom_explain never allocate
 *     heap memory.
 */
#ifndef OPECOM_H
#define OPECOM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define OPECOM_API __attribute__((visibility("default")))
#else
#define OPECOM_API
#endif

/* ===================================================================== *
 * Version
 * ===================================================================== */

#define OPECOM_VERSION_MAJOR 0
#define OPECOM_VERSION_MINOR 2
#define OPECOM_VERSION_PATCH 0
#define OPECOM_VERSION_NUMBER \
    (OPECOM_VERSION_MAJOR * 10000 + OPECOM_VERSION_MINOR * 100 + OPECOM_VERSION_PATCH)
#define OPECOM_VERSION_STRING "0.2.0"

/* @return OPECOM_VERSION_NUMBER of the library actually linked. */
OPECOM_API unsigned opecom_version(void);
/* @return OPECOM_VERSION_STRING of the library actually linked. */
OPECOM_API const char *opecom_version_string(void);

/* ===================================================================== *
 * Status codes
 *
 * Values are pinned: they are never renumbered or reused.
 * ===================================================================== */

#define OPECOM_STATUS_LIST(X)                                                  \
    X(OPECOM_OK, 0, "success")                                                 \
    X(OPECOM_EINVAL, 1, "invalid argument or input value")                     \
    X(OPECOM_ENOMEM, 2, "out of memory")                                       \
    X(OPECOM_EIO, 3, "cannot open, read or write the file")                    \
    X(OPECOM_EMAGIC, 10, "not a model file (bad magic)")                       \
    X(OPECOM_EVERSION, 11, "unsupported model format version")                 \
    X(OPECOM_ETRUNCATED, 12, "model file is truncated")                        \
    X(OPECOM_ECRC, 13, "model file checksum mismatch")                         \
    X(OPECOM_ESECTION, 14, "bad section in model file")                        \
    X(OPECOM_ESHAPE, 15, "tensor missing or shape does not match")             \
    X(OPECOM_EARCH, 16, "invalid or unsupported architecture")                 \
    X(OPECOM_ESPEC, 17, "invalid feature specification")                       \
    X(OPECOM_EVALUE, 18, "non-finite value in the model's weights or outputs") \
    X(OPECOM_EHEADER, 19, "bad model file header")                             \
    X(OPECOM_EWORKSPACE, 20, "workspace too small or made for another model")  \
    X(OPECOM_EKERNEL, 21, "requested kernel is unknown or not supported")     \
    X(OPECOM_ENOBASELINE, 22, "model has no explanation baseline")            \
    X(OPECOM_ENODRIFT, 23, "model has no drift reference")

typedef enum opecom_status {
#define OPECOM_STATUS_ENUM_(name, value, text) name = value,
    OPECOM_STATUS_LIST(OPECOM_STATUS_ENUM_)
#undef OPECOM_STATUS_ENUM_
} opecom_status;

/* @return a static English description of status; total over all ints
 * (unknown values give "unknown status"). Never NULL. */
OPECOM_API const char *opecom_strerror(int status);

/* Detailed error record filled by a failing call (left untouched on success).
 * Owned by the caller; one per call site or thread, never shared. */
typedef struct opecom_error {
    opecom_status status;
    int32_t feature;  /* feature index at fault, or -1 */
    int64_t row;      /* batch row at fault, or -1 */
    int64_t offset;   /* byte offset in the model file at fault, or -1 */
    char message[256]; /* NUL-terminated, names the field/feature/offset */
} opecom_error;

/* ===================================================================== *
 * Models
 * ===================================================================== */

typedef struct opecom_model opecom_model; /* opaque, immutable once loaded */

typedef struct opecom_load_options {
    /* Forward-pass kernel: "scalar", "auto" or NULL. NULL means the value of
     * the OPECOM_KERNEL environment variable if set, else "auto" (the fastest
     * kernel this CPU supports). An unknown name or a kernel the CPU lacks is
     * OPECOM_EKERNEL. */
    const char *kernel;
} opecom_load_options;

/* Maps and validates a model file. Every offset, size and shape is checked
 * against the file length and the architecture, and the CRC32 over the
 * payload is verified, before anything is trusted. The model reads the
 * mapped file for as long as it lives: replace a model file by renaming a
 * new one over it, never by writing into it (a file changed in place
 * changes a loaded model; one cut short makes its reads fault). A program
 * that cannot control that loads a copy with opecom_model_load_buffer.
 * @param opts may be NULL (defaults).
 * @param out  receives the model; free it with opecom_model_free.
 * @return OPECOM_OK, or OPECOM_EIO, OPECOM_EMAGIC, OPECOM_EVERSION,
 *         OPECOM_EHEADER, OPECOM_ETRUNCATED, OPECOM_ECRC, OPECOM_ESECTION,
 *         OPECOM_ESHAPE, OPECOM_EARCH, OPECOM_ESPEC, OPECOM_EVALUE,
 *         OPECOM_EKERNEL, OPECOM_ENOMEM; err->offset names the byte at fault. */
OPECOM_API opecom_status opecom_model_load(const char *path, const opecom_load_options *opts,
                                           opecom_model **out, opecom_error *err);

/* Same as opecom_model_load, from bytes in memory. The bytes are copied; the
 * caller may free data as soon as the call returns. */
OPECOM_API opecom_status opecom_model_load_buffer(const void *data, size_t size,
                                                  const opecom_load_options *opts,
                                                  opecom_model **out, opecom_error *err);

/* Releases a model. Accepts NULL. No workspace made for it may be used after. */
OPECOM_API void opecom_model_free(opecom_model *model);

typedef enum opecom_feature_type {
    OPECOM_FEATURE_NUMERIC = 1,
    OPECOM_FEATURE_CATEGORICAL = 2
} opecom_feature_type;

typedef enum opecom_transform {
    OPECOM_TRANSFORM_NONE = 1,            /* z = (x - mean) / std */
    OPECOM_TRANSFORM_LOG1P = 2,           /* z = (log1p(x) - mean) / std */
    OPECOM_TRANSFORM_QUANTILE_NORMAL = 3  /* z = (Phi^-1(F(x)) - mean) / std */
} opecom_transform;

/* Summary of a loaded model. Strings point into the model and live as long
 * as it does. */
typedef struct opecom_model_info {
    uint32_t format_version; /* .opm format version */
    uint32_t k;              /* ensemble members */
    uint32_t n_blocks;       /* hidden layers */
    uint32_t d_block;        /* hidden width */
    uint32_t d_in;           /* encoded input width (numerics + one-hot) */
    uint32_t n_features;     /* raw features */
    float threshold;         /* decision threshold chosen at training */
    uint64_t file_size;      /* bytes */
    uint64_t n_params;       /* float parameters */
    const char *kernel;      /* kernel in use: "scalar", ... */
    const char *spec_json;   /* the spec JSON the model was made from (NUL-terminated) */
    uint32_t n_baseline;     /* rows of the explanation baseline; 0: none (see
                                opecom_explain) */
    uint32_t checksum;       /* the file's CRC32, as its header stores it and the
                                loader verified: tells one model file from another */
    uint32_t n_drift_dims;   /* dims of the drift reference; 0: none (see
                                opecom_drift_describe) */
} opecom_model_info;

/* @param out receives the summary. @return OPECOM_OK or OPECOM_EINVAL. */
OPECOM_API opecom_status opecom_model_describe(const opecom_model *model, opecom_model_info *out);

/* One raw input feature, in model order (index 0 .. n_features-1). */
typedef struct opecom_feature_info {
    const char *name;
    opecom_feature_type type;
    opecom_transform transform;  /* numeric only */
    double mean, std;            /* numeric only: standardisation after transform */
    int has_min, has_max;        /* numeric only: valid range present? */
    double min, max;             /* numeric only: valid range (inclusive) */
    uint32_t n_categories;       /* categorical only */
    uint32_t n_quantiles;        /* quantile_normal only */
} opecom_feature_info;

/* @return OPECOM_OK, or OPECOM_EINVAL if index is out of range. */
OPECOM_API opecom_status opecom_model_feature(const opecom_model *model, uint32_t index,
                                              opecom_feature_info *out);

/* @return the text of category c of categorical feature `feature`, or NULL
 * when either index is out of range. */
OPECOM_API const char *opecom_model_category(const opecom_model *model, uint32_t feature,
                                             uint32_t c);

/* Looks a feature up by its name (as in the training CSV header). Do it once,
 * not per prediction.
 * @return the feature's index, or -1 when the model has no such feature. */
OPECOM_API int32_t opecom_feature_index(const opecom_model *model, const char *name);

/* ===================================================================== *
 * Workspaces: per-thread scratch memory
 * ===================================================================== */

typedef struct opecom_workspace opecom_workspace; /* opaque */

/* @return the bytes a workspace for this model needs to score up to max_rows
 * rows per internal step (max_rows >= 1), including alignment slack. Every
 * workspace can also run opecom_explain, which sends its coalitions through
 * the network max_rows at a time (64 or more keeps the fast kernels busy). */
OPECOM_API size_t opecom_workspace_size(const opecom_model *model, size_t max_rows);

/* Allocates a workspace for `model` able to score max_rows rows per step.
 * Larger batches are simply processed in steps. Free it with
 * opecom_workspace_free. */
OPECOM_API opecom_status opecom_workspace_create(const opecom_model *model, size_t max_rows,
                                                 opecom_workspace **out, opecom_error *err);

/* Builds a workspace inside caller memory `mem` of `size` bytes (at least
 * opecom_workspace_size(model, max_rows)); nothing is allocated. The memory
 * stays the caller's; opecom_workspace_free on such a workspace does nothing. */
OPECOM_API opecom_status opecom_workspace_init(const opecom_model *model, size_t max_rows,
                                               void *mem, size_t size,
                                               opecom_workspace **out, opecom_error *err);

/* Releases a workspace made by opecom_workspace_create. Accepts NULL. */
OPECOM_API void opecom_workspace_free(opecom_workspace *ws);

/* ===================================================================== *
 * Prediction
 * ===================================================================== */

/* One raw feature value. Numeric features read `num` (str must be NULL).
 * Categorical features read `str`, the category's text ("Nov",
 * "Returning_Visitor", "2"); when str is NULL, `num` is matched against the
 * categories whose text is a number ("2" matches 2.0). */
typedef struct opecom_value {
    double num;
    const char *str;
} opecom_value;

#define OPECOM_MAX_K 32

/* Confidence: how much the k members agree, on a 0..1 scale.
 *
 *   confidence = 1 - spread / sqrt(p (1 - p)),   p = probability,
 *
 * and 1 when p (1 - p) is 0. sqrt(p (1 - p)) is the largest spread k
 * probabilities with mean p can have (reached when each member says 0 or 1),
 * so confidence is 1 when every member gives the same probability and 0 when
 * the members disagree as much as they possibly can; for a given p it falls
 * as the spread grows. Equivalently spread^2 / (p (1 - p)) is the share of
 * the score's Bernoulli variance that comes from the members disagreeing.
 * docs/model-card.md ("Confidence") shows how often low-confidence scores are
 * wrong on held-out data. */
typedef struct opecom_result {
    opecom_status status;   /* this row's status (batch: rows fail one by one) */
    float probability;      /* mean of the members' probabilities; NaN on error */
    float spread;           /* population standard deviation of member[]; NaN on error */
    float confidence;       /* 1 - spread / sqrt(p (1 - p)), in [0, 1] (see
                               above); NaN on error */
    uint32_t k;             /* members filled in member[] */
    uint32_t n_unknown;     /* categorical values not among the model's categories */
    uint32_t label;         /* 1 when probability >= the model's threshold, else 0 */
    uint32_t reserved;      /* always 0 (keeps the struct free of padding) */
    uint64_t unknown_mask;  /* bit i: feature i (< 64) had an unknown category;
                               such a value encodes as all zeros */
    float member[OPECOM_MAX_K]; /* each member's probability */
} opecom_result;

/* Scores one raw session.
 * @param ws  workspace made for this model, or NULL: then a bounded buffer on
 *            the stack is used (OPECOM_EWORKSPACE if the model is too large
 *            for it).
 * @param row model->n_features values in model feature order (see
 *            opecom_feature_index); borrowed for the call only.
 * @param out receives the result.
 * @return OPECOM_OK; OPECOM_EINVAL naming the feature when a value is NaN,
 *         infinite, outside the feature's valid range, or of the wrong kind;
 *         OPECOM_EVALUE when the network's output overflows (only a model
 *         with absurdly large weights can do that). */
OPECOM_API opecom_status opecom_predict(const opecom_model *model, opecom_workspace *ws,
                                        const opecom_value *row, opecom_result *out,
                                        opecom_error *err);

/* Scores n_rows raw sessions (rows is n_rows * n_features values, row-major);
 * the fast path. Every row gets its own out[i].status; an invalid row does
 * not stop the others.
 * @return OPECOM_OK when every row succeeded, otherwise the first failing
 *         row's status, with err naming that row and feature. */
OPECOM_API opecom_status opecom_predict_batch(const opecom_model *model, opecom_workspace *ws,
                                              const opecom_value *rows, size_t n_rows,
                                              opecom_result *out, opecom_error *err);

/* ===================================================================== *
 * Explanations
 *
 * opecom_explain splits one prediction into a contribution per raw feature:
 * the Shapley values of the features, on the probability scale, relative to
 * the baseline stored in the model (a few weighted rows summarising the
 * training data; a model converted without one gives OPECOM_ENOBASELINE).
 * A categorical feature is one player: its whole one-hot block switches
 * together. The value of a coalition S is interventional,
 *     v(S) = sum_b w_b * f(x on the features of S, baseline row b elsewhere),
 * so v(all) = f(x), the probability opecom_predict returns, and v(none) =
 * f(baseline) = sum_b w_b f(z_b). The contributions always add up to
 * f(x) - f(baseline) (to rounding, far below 1e-5): each estimator below
 * splits that difference exactly by construction.
 *
 * A feature whose encoded value equals baseline row b's changes nothing
 * against that row (a null player there) and is left out of its game: only
 * the features that differ are enumerated or permuted.
 *
 * Estimators:
 *   exact        enumerates every coalition of the differing features, per
 *                baseline row: sum_b (2^m_b - 2) network rows for m_b
 *                differing features. No sampling error.
 *   permutation  per baseline row, random orderings of its differing
 *                features each walked forwards and backwards (antithetic
 *                pairs: exact whenever features interact at most in pairs),
 *                at least one pair per row, pairs shared out by weight.
 *                Each walk costs m_b - 1 network rows.
 *   auto         exact when it fits in max_evals, else permutation.
 * Coalitions go through the model's kernel max_rows (the workspace's) at a
 * time. docs/explanations.md gives the measured error of each setting.
 * ===================================================================== */

#define OPECOM_MAX_BASELINE 1024 /* baseline rows in a model */
#define OPECOM_EXPLAIN_MAX_EXACT 24 /* exact: at most 2^24 coalitions per row */
/* The default budget: about this many floating-point operations of network
 * work (125 evaluations of the default 3 x 256, k = 4 model: about 0.8 ms
 * on one core with the AVX-512 kernel, 1.4 ms with AVX2); a smaller network
 * gets proportionally more evaluations, up to OPECOM_EXPLAIN_MAX_DEFAULT_EVALS. */
#define OPECOM_EXPLAIN_DEFAULT_FLOPS 1.5e8
#define OPECOM_EXPLAIN_MAX_DEFAULT_EVALS 65536u

typedef enum opecom_estimator {
    OPECOM_ESTIMATOR_AUTO = 0,
    OPECOM_ESTIMATOR_EXACT = 1,
    OPECOM_ESTIMATOR_PERMUTATION = 2
} opecom_estimator;

typedef struct opecom_explain_options {
    opecom_estimator estimator; /* default OPECOM_ESTIMATOR_AUTO */
    /* Budget of network evaluations (rows run through the model), including
     * f(x) and the baseline rows; 0 = the default above. auto picks exact
     * when it fits. Permutation sampling spends about this many, but always
     * runs at least one antithetic pair per baseline row. exact ignores it. */
    uint64_t max_evals;
    /* Permutation sampling: the same seed gives the same contributions. */
    uint64_t seed;
} opecom_explain_options;

/* The figures of one explanation; the contributions go to a caller array. */
typedef struct opecom_explanation {
    opecom_status status;
    double probability;         /* f(x); as a float, opecom_predict's probability */
    double baseline;            /* f(baseline) = sum_b w_b f(z_b) */
    opecom_estimator estimator; /* the one used: EXACT or PERMUTATION */
    uint64_t evaluations;       /* network rows run, f(x) and baseline included */
    uint32_t n_unknown;         /* as in opecom_result */
    uint64_t unknown_mask;
} opecom_explanation;

/* Explains one raw session.
 * @param ws   workspace made for this model, or NULL: then a bounded buffer
 *             on the stack is used (a few rows per network call: slower).
 * @param row  model->n_features raw values, as for opecom_predict.
 * @param opts NULL for the defaults (auto, default budget, seed 0).
 * @param out  receives the figures.
 * @param contribution receives n_features values in feature order,
 *             summing to out->probability - out->baseline.
 * @return OPECOM_OK; OPECOM_ENOBASELINE when the model has no baseline;
 *         OPECOM_EINVAL naming the feature for a value opecom_predict
 *         refuses, or for an exact request with more than
 *         OPECOM_EXPLAIN_MAX_EXACT differing features; OPECOM_EWORKSPACE;
 *         OPECOM_EVALUE when the network's output overflows. */
OPECOM_API opecom_status opecom_explain(const opecom_model *model, opecom_workspace *ws,
                                        const opecom_value *row,
                                        const opecom_explain_options *opts,
                                        opecom_explanation *out, double *contribution,
                                        opecom_error *err);

/* Global importance: the mean |contribution| of each feature over n_rows
 * raw sessions (rows is n_rows * n_features values, row-major), each
 * explained as opecom_explain does with `opts`. Call it on batches and
 * average the results weighted by n_rows for a stream.
 * @param importance receives n_features values.
 * @return OPECOM_OK, or the first failing row's status with err naming
 *         that row and feature (importance is then unspecified). */
OPECOM_API opecom_status opecom_explain_importance(const opecom_model *model,
                                                   opecom_workspace *ws,
                                                   const opecom_value *rows, size_t n_rows,
                                                   const opecom_explain_options *opts,
                                                   double *importance, opecom_error *err);

#define OPECOM_REASON_MAX 128 /* bytes that hold any reason text, NUL included */

/* Writes a short plain-language reason for feature `feature` of `row` into
 * buf ("viewed pages with high page value", "new visitor", "visited in
 * November"), from the documented template table (docs/explanations.md),
 * keyed by the feature's UCI name, the sign of `contribution` and the value
 * bucket (zero; above or below the baseline's weighted mean, or the training
 * mean without a baseline; the category). A feature without a template gets
 * a generic text from its name and value ("Browser is 4"). Static English.
 * @param size bytes at buf; the text is truncated to fit, NUL-terminated.
 * @return OPECOM_OK; OPECOM_EINVAL for a NULL argument, a feature out of
 *         range or a value of the wrong kind. */
OPECOM_API opecom_status opecom_reason(const opecom_model *model, const opecom_value *row,
                                       uint32_t feature, double contribution, char *buf,
                                       size_t size, opecom_error *err);

/* ===================================================================== *
 * Drift monitoring
 *
 * A model file may carry a drift reference: the distribution of each raw
 * feature and of the model's score on the rows it was trained on. A server
 * bins the live rows it scores with opecom_drift_bin, keeps counts (one
 * uint64_t per bin, e.g. over a sliding window) and turns them into the
 * population stability index of each dim with opecom_drift_psi.
 *
 * Dims: 0 .. n_features-1 are the model's features in model order; dim
 * n_features is the score (the mean probability, as opecom_predict returns
 * it). Each dim owns n_bins consecutive slots of one counts array, starting
 * at its offset (opecom_drift_dim).
 *   numeric feature, score  quantile bins: the inner edges e_0 < ... <
 *       e_{n-2} are the training deciles with repeated values merged, so a
 *       heavy tie (e.g. most sessions have PageValues 0) is one bin holding
 *       more than 10%. A value x goes to the first bin whose edge is >= x
 *       ("x <= edge goes left"): bin 0 is x <= e_0, bin i is
 *       e_{i-1} < x <= e_i, the last bin is x > e_{n-2}.
 *   categorical feature     one bin per category in the model's category
 *       order, then one "other" bin for values not among them (its training
 *       fraction is 0 when the categories come from the training rows).
 * PSI of a dim = sum over its bins of (a - e) ln(a / e), a the observed
 * fraction (counts / the dim's total), e the training fraction, both floored
 * at OPECOM_DRIFT_EPSILON so that an empty bin gives a large but finite
 * term. Rules of thumb: below 0.1 no change, 0.1 to 0.25 a moderate shift,
 * above 0.25 a major one. These functions only read the model: any number
 * of threads may call them; the counts are the caller's. docs/model-format.md
 * (2.5, 3.7) gives the bins' making and the stored layout; tools/drift.py
 * computes the reference.
 * ===================================================================== */

#define OPECOM_DRIFT_EPSILON 1e-4 /* floor of both fractions in the PSI */
#define OPECOM_DRIFT_MAX_BINS 1024u /* bins of a numeric or score dim, at most */

/* The drift reference of a model, in numbers. */
typedef struct opecom_drift_info {
    uint32_t n_dims;   /* n_features + 1 */
    uint32_t n_counts; /* total bins over all dims: the length of a counts array */
    uint64_t n_rows;   /* training rows the reference was computed on */
} opecom_drift_info;

/* @param out receives the figures.
 * @return OPECOM_OK; OPECOM_ENODRIFT when the model carries no drift
 *         reference; OPECOM_EINVAL for a NULL argument. */
OPECOM_API opecom_status opecom_drift_describe(const opecom_model *model, opecom_drift_info *out,
                                               opecom_error *err);

/* One dim of the reference. Each out pointer may be NULL.
 * @param name   receives the feature's name, or "score" for dim n_features;
 *               it lives as long as the model.
 * @param n_bins receives the dim's number of bins (categorical: categories
 *               + 1, the last being "other").
 * @param offset receives the index of the dim's first bin in a counts array.
 * @return OPECOM_OK; OPECOM_ENODRIFT; OPECOM_EINVAL when d >= n_dims. */
OPECOM_API opecom_status opecom_drift_dim(const opecom_model *model, uint32_t d,
                                          const char **name, uint32_t *n_bins,
                                          uint32_t *offset, opecom_error *err);

/* What dim d was binned by and what training looked like, for labelling bins
 * or plotting live against training. Pointers into the model; each out
 * pointer may be NULL.
 * @param edges     receives the n_bins - 1 inner edges, strictly ascending
 *                  (see the bin rule above), or NULL for a categorical
 *                  feature (bins: its categories in order, then "other").
 * @param fractions receives the n_bins training fractions (each >= 0, summing
 *                  to 1).
 * @return OPECOM_OK; OPECOM_ENODRIFT; OPECOM_EINVAL when d >= n_dims. */
OPECOM_API opecom_status opecom_drift_reference(const opecom_model *model, uint32_t d,
                                                const double **edges, const double **fractions,
                                                opecom_error *err);

/* Bins one raw row and its score: writes n_dims absolute indices into a
 * counts array (the dim's offset + its bin), so a caller adds 1 at each.
 * A category not among the model's goes to its dim's "other" bin. Never
 * allocates.
 * @param row         n_features raw values, as for opecom_predict.
 * @param probability the row's score (opecom_result.probability), in [0, 1].
 * @param index       receives n_dims indices, each < n_counts.
 * @return OPECOM_OK; OPECOM_ENODRIFT; OPECOM_EINVAL naming the feature for a
 *         value opecom_predict refuses (NaN, infinite, outside the valid
 *         range, of the wrong kind) or for a probability outside [0, 1]
 *         (err->feature = n_features then); index is then unspecified. */
OPECOM_API opecom_status opecom_drift_bin(const opecom_model *model, const opecom_value *row,
                                          double probability, uint32_t *index,
                                          opecom_error *err);

/* The PSI of each dim from observed counts (as opecom_drift_bin fills them).
 * Never allocates.
 * @param counts n_counts observations per bin.
 * @param psi    receives n_dims values, each >= 0; NaN for a dim with no
 *               observation at all.
 * @return OPECOM_OK; OPECOM_ENODRIFT; OPECOM_EINVAL for a NULL argument. */
OPECOM_API opecom_status opecom_drift_psi(const opecom_model *model, const uint64_t *counts,
                                          double *psi, opecom_error *err);

/* ===================================================================== *
 * Sessions from raw events
 *
 * A sessionizer turns a stream of raw shop events (page views, purchases)
 * into sessions carrying the 17 features of the UCI "Online Shoppers
 * Purchasing Intention" data plus Revenue, ready for opecom_predict or for
 * retraining. docs/features.md defines every feature. In short:
 *   - events are grouped by (visitor_id, session_id); without a session id,
 *     a visitor's events are split into sessions by the idle timeout. A gap
 *     longer than the timeout also splits a session that has an id.
 *   - events may arrive out of order. The watermark is the largest event
 *     time seen; a session closes once the watermark passes its last event
 *     + the idle timeout. An event that would belong to a session already
 *     closed (or that is more than the idle timeout behind the watermark
 *     with no open session to join) is late: counted and dropped.
 *   - BounceRates, ExitRates and PageValues come from per-page statistics of
 *     the sessions closed BEFORE this one (causal, as a live server must),
 *     averaged over the session's page views. VisitorType is New_Visitor for
 *     a visitor's first closed session, Returning_Visitor after, Other when
 *     the visitor id is empty.
 * Memory: the open sessions (their events), the per-page statistics and 16
 * bytes per distinct visitor; never the input size. After warm-up, adding
 * an event allocates nothing. A sessionizer is used by one thread at a time.
 * ===================================================================== */

typedef struct opecom_sessionizer opecom_sessionizer; /* opaque */

#define OPECOM_ID_MAX 128      /* bytes of visitor and session ids, NUL included */
#define OPECOM_PAGE_ID_MAX 256 /* bytes of a page id, NUL included */
#define OPECOM_CODE_TEXT_MAX 64 /* bytes of an os/browser/region/traffic_type text */

typedef enum opecom_event_kind {
    OPECOM_EVENT_PAGE_VIEW = 1,
    OPECOM_EVENT_PURCHASE = 2
} opecom_event_kind;

typedef enum opecom_page_type {
    OPECOM_PAGE_ADMINISTRATIVE = 1, /* account, cart, checkout, ... */
    OPECOM_PAGE_INFORMATIONAL = 2,  /* about, contact, FAQ, ... */
    OPECOM_PAGE_PRODUCT_RELATED = 3 /* product and category pages */
} opecom_page_type;

/* The fields of opecom_event, as named in error messages; a failing
 * opecom_sessionizer_add stores the one at fault in err->feature. */
typedef enum opecom_event_field {
    OPECOM_FIELD_VISITOR_ID = 0,
    OPECOM_FIELD_SESSION_ID = 1,
    OPECOM_FIELD_TIME = 2,
    OPECOM_FIELD_KIND = 3,
    OPECOM_FIELD_PAGE_TYPE = 4,
    OPECOM_FIELD_PAGE_ID = 5,
    OPECOM_FIELD_DURATION = 6,
    OPECOM_FIELD_REVENUE = 7,
    OPECOM_FIELD_OS = 8,
    OPECOM_FIELD_BROWSER = 9,
    OPECOM_FIELD_REGION = 10,
    OPECOM_FIELD_TRAFFIC_TYPE = 11
} opecom_event_field;

/* One raw event. Strings are borrowed for the call only. */
typedef struct opecom_event {
    const char *visitor_id;  /* NULL or "": unknown visitor (VisitorType Other) */
    const char *session_id;  /* NULL or "": sessions split by the idle timeout */
    int64_t time_ms;         /* Unix time in milliseconds, UTC; 0 .. year 9999 */
    opecom_event_kind kind;
    /* page views */
    opecom_page_type page_type;
    const char *page_id;     /* non-empty */
    int has_duration;        /* 1: duration_s is the time on the page; 0: the
                                gap to the session's next event is used */
    double duration_s;       /* finite, >= 0 */
    /* purchases */
    double revenue;          /* finite, >= 0 */
    /* any event; NULL or "" when unknown. A number 1..999 is the UCI code
     * itself; other text is looked up in the configured code table. A
     * session takes the value of its earliest event that has one. */
    const char *os;
    const char *browser;
    const char *region;
    const char *traffic_type;
} opecom_event;

/* A day that raises SpecialDay in the days before it: a fixed date (day
 * 1..31) or, with day 0, the nth weekday of the month; then offset_days
 * added (Black Friday: 4th Thursday of November + 1). */
typedef struct opecom_special_day {
    uint8_t month;      /* 1..12 */
    uint8_t day;        /* 1..31, or 0 for the weekday rule */
    uint8_t weekday;    /* weekday rule: 0 Sunday .. 6 Saturday */
    int8_t nth;         /* weekday rule: 1..5, or -1 for the last */
    int8_t offset_days; /* -31..31 */
} opecom_special_day;

typedef enum opecom_code_field {
    OPECOM_CODE_OS = 0,
    OPECOM_CODE_BROWSER = 1,
    OPECOM_CODE_REGION = 2,
    OPECOM_CODE_TRAFFIC_TYPE = 3
} opecom_code_field;

/* One row of a code table: event text (exact, case-sensitive) -> UCI code. */
typedef struct opecom_code_entry {
    opecom_code_field field;
    const char *text;   /* 1 .. OPECOM_CODE_TEXT_MAX-1 bytes */
    uint16_t code;      /* 1..999 */
} opecom_code_entry;

typedef struct opecom_session_config {
    int64_t idle_timeout_s;  /* 1 .. 1 year; default 1800 */
    int32_t utc_offset_min;  /* local time for Month, Weekend and SpecialDay:
                                -1440 .. 1440; default 0 (UTC) */
    /* special-day calendar; NULL with n = 0 means no special days at all.
     * Default: the UCI data's two, Valentine's Day (Feb 14) and US Mother's
     * Day (2nd Sunday of May). */
    const opecom_special_day *special_days;
    uint32_t n_special_days;  /* <= 64 */
    /* text -> code tables; default none (numbers 1..999 pass through) */
    const opecom_code_entry *codes;
    uint32_t n_codes;         /* <= 4096 */
    /* code used when an event text is unknown or a session has none, per
     * opecom_code_field; default the UCI data's most frequent code:
     * OperatingSystems 2, Browser 2, Region 1, TrafficType 2. 1..999. */
    uint16_t unknown_code[4];
} opecom_session_config;

/* Fills cfg with the defaults above (the calendar points to a static table). */
OPECOM_API void opecom_session_config_default(opecom_session_config *cfg);

/* A closed session: the UCI features and what it was made of. */
typedef struct opecom_session {
    char visitor_id[OPECOM_ID_MAX];
    char session_id[OPECOM_ID_MAX];
    uint32_t part;          /* 0, or n for the nth idle split under one id */
    uint32_t n_events;      /* page views + purchases */
    int64_t start_ms;       /* first event time */
    int64_t end_ms;         /* last event time */
    double revenue_total;   /* sum of the purchases */
    /* the 17 UCI features and the label */
    double administrative;           /* page views of that type */
    double administrative_duration;  /* seconds on those pages */
    double informational;
    double informational_duration;
    double product_related;
    double product_related_duration;
    double bounce_rates;    /* mean over page views of the page's bounce rate */
    double exit_rates;      /* mean over page views of the page's exit rate */
    double page_values;     /* mean over page views of the page's value */
    double special_day;     /* 0, 0.2, ... 1 */
    const char *month;      /* "Jan" .. "Dec", June spelled "June"; static */
    uint16_t operating_systems;
    uint16_t browser;
    uint16_t region;
    uint16_t traffic_type;
    const char *visitor_type; /* "New_Visitor", "Returning_Visitor", "Other"; static */
    int weekend;            /* 1 on Saturday and Sunday */
    int revenue;            /* 1 when the session has a purchase */
} opecom_session;

typedef struct opecom_session_stats {
    uint64_t events;         /* events accepted */
    uint64_t late_events;    /* events dropped as late */
    uint64_t sessions;       /* sessions closed */
    uint64_t open_sessions;  /* sessions open now */
    uint64_t idle_splits;    /* sessions started by an idle gap under a session id */
    uint64_t pages;          /* distinct pages in the statistics */
    uint64_t visitors;       /* distinct visitors in the history */
    uint64_t memory_bytes;   /* heap memory held now */
} opecom_session_stats;

/* Makes a sessionizer. The configuration is copied (tables and texts too).
 * @param cfg NULL for the defaults.
 * @param out receives it; free with opecom_sessionizer_free.
 * @return OPECOM_OK, OPECOM_EINVAL naming the configuration field at fault,
 *         OPECOM_ENOMEM. */
OPECOM_API opecom_status opecom_sessionizer_create(const opecom_session_config *cfg,
                                                   opecom_sessionizer **out, opecom_error *err);

/* Releases a sessionizer and every session still open or queued. Accepts NULL. */
OPECOM_API void opecom_sessionizer_free(opecom_sessionizer *s);

/* What opecom_sessionizer_add did with an event. */
typedef enum opecom_event_outcome {
    OPECOM_EVENT_JOINED = 1,  /* joined a session that was open */
    OPECOM_EVENT_STARTED = 2, /* opened a new session (a new part after an idle split too) */
    OPECOM_EVENT_LATE = 3     /* dropped as late (counted in late_events) */
} opecom_event_outcome;

/* Adds one event, in any order. It joins its open session, starts a new one,
 * or is dropped as late (counted in the statistics; still OPECOM_OK, and
 * *outcome says so). May close sessions (the watermark moved): fetch them
 * with opecom_sessionizer_next. The event is borrowed for the call only.
 * @param outcome NULL, or receives what became of the event
 *        (opecom_event_outcome); written only when the call returns
 *        OPECOM_OK, left as it was otherwise.
 * @return OPECOM_OK; OPECOM_EINVAL with err->feature = the
 *         opecom_event_field at fault and the message naming it (the
 *         sessionizer is unchanged then); OPECOM_ENOMEM (unchanged too). */
OPECOM_API opecom_status opecom_sessionizer_add(opecom_sessionizer *s, const opecom_event *ev,
                                                opecom_event_outcome *outcome, opecom_error *err);

/* Checks an event by exactly the rules of opecom_sessionizer_add, with the
 * same status and message, and adds nothing: a server validates with it
 * before it acknowledges what it will feed later. It reads only what the
 * configuration fixed (the code tables), so it may run on any number of
 * threads while one thread adds to the same sessionizer.
 * @return OPECOM_OK; OPECOM_EINVAL with err->feature = the
 *         opecom_event_field at fault and the message naming it. */
OPECOM_API opecom_status opecom_sessionizer_check(const opecom_sessionizer *s,
                                                  const opecom_event *ev, opecom_error *err);

/* Closes every open session (end of input). The history (page statistics,
 * visitors, watermark) is kept: later events continue it.
 * @return OPECOM_OK or OPECOM_ENOMEM. */
OPECOM_API opecom_status opecom_sessionizer_finish(opecom_sessionizer *s, opecom_error *err);

/* Moves the watermark to time_ms when that is later (a live server calls it
 * with its clock, so sessions close after the idle timeout even when no
 * event comes), closing the sessions it passes: fetch them with
 * opecom_sessionizer_next. Never allocates.
 * @return OPECOM_OK, or OPECOM_EINVAL for a time outside 1970 .. 9999. */
OPECOM_API opecom_status opecom_sessionizer_advance(opecom_sessionizer *s, int64_t time_ms,
                                                    opecom_error *err);

/* Computes the features of an open session as if it closed now: from the
 * page statistics and visitor history as they stand, with its page views so
 * far (a last page view without a duration counts 0 s). Changes nothing a
 * later call can see, but uses the sessionizer's scratch memory: like every
 * call, one thread at a time.
 * @param visitor_id, session_id the session's key, as given to
 *        opecom_sessionizer_add (NULL is "").
 * @param out receives the session.
 * @return 1 when the session is open (out written), 0 otherwise. */
OPECOM_API int opecom_sessionizer_peek(opecom_sessionizer *s, const char *visitor_id,
                                       const char *session_id, opecom_session *out);

/* Takes the next closed session, in closing order (by last event + idle
 * timeout, then start time).
 * @param out receives it (a copy; the caller owns it).
 * @return 1 when a session was written to out, 0 when none is waiting. */
OPECOM_API int opecom_sessionizer_next(opecom_sessionizer *s, opecom_session *out);

/* One open session as opecom_sessionizer_open_next yields it. The strings
 * point into the sessionizer and stay valid until the next call that changes
 * it (add, advance, finish, next). */
typedef struct opecom_open_session {
    const char *visitor_id; /* "" when the events had none */
    const char *session_id; /* "" when the events had none */
    uint32_t part;          /* 0, or n for the nth idle split under one id */
    uint32_t n_events;      /* page views + purchases so far */
    int64_t start_ms;       /* first event time */
    int64_t end_ms;         /* last event time */
} opecom_open_session;

/* Walks the open sessions, in no particular order, so that a live server
 * need not keep its own copy of what is open (opecom_sessionizer_peek then
 * gives a session's features). Start with *cursor = 0; each call writes the
 * next session to out and advances *cursor. The walk is valid while nothing
 * changes the sessionizer (add, advance, finish, next); peek and stats do
 * not change it. Never allocates; O(1) per call.
 * @param cursor the walk's position, 0 at the start; owned by the caller.
 * @param out receives the session (its strings are borrowed, see above).
 * @return 1 when a session was written to out, 0 at the end of the walk
 *         (and for a NULL argument or a cursor past the end). */
OPECOM_API int opecom_sessionizer_open_next(const opecom_sessionizer *s, uint64_t *cursor,
                                            opecom_open_session *out);

/* @param out receives the counters. */
OPECOM_API void opecom_sessionizer_stats(const opecom_sessionizer *s, opecom_session_stats *out);

/* Session columns, in the UCI CSV order: 0 Administrative .. 16 Weekend,
 * 17 Revenue. */
#define OPECOM_SESSION_COLUMNS 18

/* @return the column index 0..17 of a UCI column name (exact), or -1. */
OPECOM_API int32_t opecom_session_column(const char *name);

/* @return the UCI name of column col, or NULL when col is out of range. */
OPECOM_API const char *opecom_session_column_name(int32_t col);

/* Maps each feature of `model` to its session column, by name. Do it once.
 * @param cols receives opecom_model_info.n_features column indices.
 * @return OPECOM_OK, or OPECOM_EINVAL naming the first feature that is not a
 *         UCI column (err->feature is its index). */
OPECOM_API opecom_status opecom_session_bind(const opecom_model *model, int32_t *cols,
                                             opecom_error *err);

/* Fills row[i] with the value of column cols[i] of session s, for i < n:
 * counts, durations, rates, SpecialDay and the four codes in num (str NULL:
 * opecom_predict matches a code against the categories "1", "2", ...);
 * Month, VisitorType, Weekend and Revenue ("TRUE"/"FALSE") as static text
 * in str.
 * @return OPECOM_OK, or OPECOM_EINVAL for a column out of range. */
OPECOM_API opecom_status opecom_session_row(const opecom_session *s, const int32_t *cols,
                                            uint32_t n, opecom_value *row, opecom_error *err);

/* ===================================================================== *
 * Writing model files (used by opecom-convert)
 * ===================================================================== */

typedef struct opecom_feature_desc {
    const char *name;
    opecom_feature_type type;
    /* numeric */
    opecom_transform transform;
    double mean, std;
    int has_min, has_max;
    double min, max;
    const double *quantiles;  /* quantile_normal: n_quantiles values, non-decreasing */
    uint32_t n_quantiles;
    /* categorical */
    const char *const *categories;
    uint32_t n_categories;
} opecom_feature_desc;

typedef struct opecom_block_desc {
    const float *weight; /* [d_out, d_in], shared by the members */
    const float *r;      /* [k, d_in] input multipliers, or NULL (all ones) */
    const float *s;      /* [k, d_out] output multipliers, or NULL (all ones) */
    const float *bias;   /* [k, d_out] */
} opecom_block_desc;

/* One dim of a drift reference (the layout opecom_drift_reference returns). */
typedef struct opecom_drift_dim_desc {
    uint32_t n_bins;         /* numeric, score: 1 .. OPECOM_DRIFT_MAX_BINS;
                                categorical: the feature's categories + 1 */
    const double *edges;     /* numeric, score: [n_bins - 1] finite, strictly
                                ascending (score: within [0, 1]); categorical:
                                ignored */
    const double *fractions; /* [n_bins] finite, >= 0, summing to 1 within 1e-6 */
} opecom_drift_dim_desc;

typedef struct opecom_drift_desc {
    uint64_t n_rows;                   /* training rows behind it, >= 1 */
    const opecom_drift_dim_desc *dims; /* [n_features + 1]: features, then the score */
} opecom_drift_desc;

typedef struct opecom_model_desc {
    uint32_t k;          /* 1 .. OPECOM_MAX_K */
    uint32_t n_blocks;   /* >= 1 */
    uint32_t d_block;    /* hidden width */
    uint32_t n_features;
    const opecom_feature_desc *features; /* n_features; encoded width d_in follows */
    const opecom_block_desc *blocks;     /* n_blocks; block 0 is [d_block, d_in] */
    const float *head_weight;            /* [k, 1, d_block] */
    const float *head_bias;              /* [k, 1] */
    float threshold;                     /* in (0, 1) */
    const char *spec_json;               /* original spec text, or NULL */
    /* Explanation baseline (optional; see opecom_explain): n_baseline raw
     * rows of n_features values each, row-major in feature order, with a
     * positive weight each (NULL: equal weights; stored normalised to sum
     * 1). They are encoded by the model's own preprocessing when saved: a
     * value opecom_predict refuses or a category not in the feature's list
     * is OPECOM_ESPEC naming the baseline row and feature. */
    const opecom_value *baseline_rows;   /* [n_baseline, n_features], or NULL */
    const double *baseline_weights;      /* [n_baseline], or NULL */
    uint32_t n_baseline;                 /* 0 (none) .. OPECOM_MAX_BASELINE */
    /* Drift reference (optional; see "Drift monitoring"), or NULL. */
    const opecom_drift_desc *drift;
} opecom_model_desc;

/* Validates desc exactly as the loader would and writes it as a .opm file
 * (written to a temporary name, then renamed: a crash never leaves half a
 * file under `path`).
 * @return OPECOM_OK, OPECOM_EARCH / OPECOM_ESPEC / OPECOM_EVALUE naming the
 *         field at fault (a drift reference: OPECOM_ESPEC for a missing
 *         array or a bin count out of range, then the loader's
 *         OPECOM_ESECTION / OPECOM_EVALUE naming the dim and bin), OPECOM_EIO,
 *         OPECOM_ENOMEM. */
OPECOM_API opecom_status opecom_model_save(const opecom_model_desc *desc, const char *path,
                                           opecom_error *err);

#ifdef __cplusplus
}
#endif
#endif /* OPECOM_H */
