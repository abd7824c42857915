/*
 * spec.c - parses the converter's JSON spec ("opecom-spec/1") into feature
 * descriptors.
 *
 * The format is the one in DESIGN.md, "Exported tensors": top-level keys
 * format, task, architecture, features, threshold and training, and the
 * optional explanation baseline and drift reference (docs/model-format.md
 * 2.4, 2.5). Everything
 * is checked strictly: any key the converter does not know is an error
 * naming its path (only "training" is free-form), duplicate keys are
 * rejected by the JSON parser, and every message starts with "spec: " and
 * names the field, e.g. "spec: features[3]: unknown key 'scale'".
 * The descriptors point into the parsed JSON tree, which cv_spec owns.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "convert.h"

#define SPEC_FORMAT "opecom-spec/1"
#define SPEC_MAX_BLOCKS 4096
#define SPEC_MAX_WIDTH ((uint64_t)1 << 24)

/* Fails naming the first key of obj not in the NULL-terminated list. */
static int only_keys(json_t *obj, const char *const *known, const char *where, cv_err *e) {
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        int ok = 0;
        for (const char *const *k = known; *k != NULL && !ok; k++)
            ok = strcmp(key, *k) == 0;
        if (!ok)
            return cv_fail(e, "spec: %s: unknown key '%.64s'", where, key);
    }
    return 0;
}

static json_t *need(json_t *obj, const char *key, const char *where, cv_err *e) {
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        cv_fail(e, "spec: %s: missing key '%s'", where, key);
    return v;
}

static int need_string(json_t *obj, const char *key, const char *where, const char **out,
                       cv_err *e) {
    json_t *v = need(obj, key, where, e);
    if (v == NULL)
        return -1;
    if (!json_is_string(v))
        return cv_fail(e, "spec: %s: '%s' must be a string", where, key);
    *out = json_string_value(v);
    return 0;
}

/* A string key that must equal one of the NULL-terminated choices. */
static int need_choice(json_t *obj, const char *key, const char *where,
                       const char *const *choices, int *index, cv_err *e) {
    const char *s = NULL;
    if (need_string(obj, key, where, &s, e) < 0)
        return -1;
    for (int i = 0; choices[i] != NULL; i++) {
        if (strcmp(s, choices[i]) == 0) {
            *index = i;
            return 0;
        }
    }
    char list[128] = "";
    for (int i = 0; choices[i] != NULL; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s'%s'", i ? ", " : "", choices[i]);
    }
    return cv_fail(e, "spec: %s: %s '%.64s' is not supported (expected %s)", where, key, s,
                   list);
}

static int need_uint(json_t *obj, const char *key, const char *where, uint64_t lo,
                     uint64_t hi, uint32_t *out, cv_err *e) {
    json_t *v = need(obj, key, where, e);
    if (v == NULL)
        return -1;
    if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)lo ||
        json_integer_value(v) > (json_int_t)hi)
        return cv_fail(e, "spec: %s: '%s' must be an integer in [%llu, %llu]", where, key,
                       (unsigned long long)lo, (unsigned long long)hi);
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

static int get_number(json_t *obj, const char *key, const char *where, int required,
                      int *present, double *out, cv_err *e) {
    json_t *v = json_object_get(obj, key);
    *present = v != NULL;
    if (v == NULL)
        return required ? cv_fail(e, "spec: %s: missing key '%s'", where, key) : 0;
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return cv_fail(e, "spec: %s: '%s' must be a finite number", where, key);
    *out = json_number_value(v);
    return 0;
}

/* ===================================================================== *
 * Features
 * ===================================================================== */

static int parse_numeric(json_t *f, const char *where, opecom_feature_desc *d, double *qdst,
                         cv_err *e) {
    static const char *const keys[] = {"name", "type", "transform", "mean", "std",
                                       "min", "max", "quantiles", NULL};
    static const char *const transforms[] = {"none", "log1p", "quantile_normal", NULL};
    static const opecom_transform codes[] = {OPECOM_TRANSFORM_NONE, OPECOM_TRANSFORM_LOG1P,
                                             OPECOM_TRANSFORM_QUANTILE_NORMAL};
    int present;
    int t = 0;
    if (only_keys(f, keys, where, e) < 0 || need_choice(f, "transform", where, transforms, &t, e) < 0)
        return -1;
    d->transform = codes[t];
    if (get_number(f, "mean", where, 1, &present, &d->mean, e) < 0 ||
        get_number(f, "std", where, 1, &present, &d->std, e) < 0 ||
        get_number(f, "min", where, 0, &d->has_min, &d->min, e) < 0 ||
        get_number(f, "max", where, 0, &d->has_max, &d->max, e) < 0)
        return -1;
    if (!(d->std > 0))
        return cv_fail(e, "spec: %s: 'std' must be > 0", where);
    if (d->has_min && d->has_max && d->min > d->max)
        return cv_fail(e, "spec: %s: 'min' (%g) is greater than 'max' (%g)", where, d->min,
                       d->max);

    json_t *q = json_object_get(f, "quantiles");
    if (d->transform != OPECOM_TRANSFORM_QUANTILE_NORMAL) {
        if (q != NULL)
            return cv_fail(e, "spec: %s: 'quantiles' is only allowed with transform "
                              "'quantile_normal'", where);
        return 0;
    }
    if (q == NULL)
        return cv_fail(e, "spec: %s: transform 'quantile_normal' needs 'quantiles'", where);
    if (!json_is_array(q) || json_array_size(q) < 2)
        return cv_fail(e, "spec: %s: 'quantiles' must be an array of at least 2 numbers", where);
    for (size_t i = 0; i < json_array_size(q); i++) {
        json_t *v = json_array_get(q, i);
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            return cv_fail(e, "spec: %s: quantiles[%zu] must be a finite number", where, i);
        qdst[i] = json_number_value(v);
        if (i > 0 && qdst[i] < qdst[i - 1])
            return cv_fail(e, "spec: %s: quantiles[%zu] is smaller than quantiles[%zu]", where,
                           i, i - 1);
    }
    d->quantiles = qdst;
    d->n_quantiles = (uint32_t)json_array_size(q);
    return 0;
}

static int parse_categorical(json_t *f, const char *where, opecom_feature_desc *d,
                             const char **cdst, cv_err *e) {
    static const char *const keys[] = {"name", "type", "categories", NULL};
    if (only_keys(f, keys, where, e) < 0)
        return -1;
    json_t *c = need(f, "categories", where, e);
    if (c == NULL)
        return -1;
    if (!json_is_array(c) || json_array_size(c) == 0)
        return cv_fail(e, "spec: %s: 'categories' must be a non-empty array of strings", where);
    size_t n = json_array_size(c);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(c, i);
        if (!json_is_string(v) || json_string_length(v) == 0)
            return cv_fail(e, "spec: %s: categories[%zu] must be a non-empty string", where, i);
        cdst[i] = json_string_value(v);
        for (size_t j = 0; j < i; j++)
            if (strcmp(cdst[j], cdst[i]) == 0)
                return cv_fail(e, "spec: %s: category '%.64s' appears twice", where, cdst[i]);
    }
    d->categories = cdst;
    d->n_categories = (uint32_t)n;
    return 0;
}

static int parse_features(json_t *arr, cv_spec *s, cv_err *e) {
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return cv_fail(e, "spec: 'features' must be a non-empty array");
    size_t n = json_array_size(arr);
    if (n > SPEC_MAX_WIDTH)
        return cv_fail(e, "spec: too many features (%zu)", n);
    /* Room for every category and quantile, counted before parsing. */
    size_t n_cat = 0;
    size_t n_q = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_object_get(json_array_get(arr, i), "categories");
        json_t *q = json_object_get(json_array_get(arr, i), "quantiles");
        n_cat += json_is_array(c) ? json_array_size(c) : 0;
        n_q += json_is_array(q) ? json_array_size(q) : 0;
    }
    s->features = calloc(n, sizeof *s->features);
    s->category_ptrs = calloc(n_cat ? n_cat : 1, sizeof *s->category_ptrs);
    s->quantiles = calloc(n_q ? n_q : 1, sizeof *s->quantiles);
    if (s->features == NULL || s->category_ptrs == NULL || s->quantiles == NULL)
        return cv_fail(e, "out of memory");
    s->n_features = (uint32_t)n;

    static const char *const types[] = {"numeric", "categorical", NULL};
    uint64_t d_in = 0;
    size_t cat_at = 0;
    size_t q_at = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *f = json_array_get(arr, i);
        opecom_feature_desc *d = &s->features[i];
        char where[32];
        snprintf(where, sizeof where, "features[%zu]", i);
        if (!json_is_object(f))
            return cv_fail(e, "spec: %s: must be an object", where);
        int t = 0;
        if (need_string(f, "name", where, &d->name, e) < 0)
            return -1;
        if (d->name[0] == '\0')
            return cv_fail(e, "spec: %s: 'name' is empty", where);
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->features[j].name, d->name) == 0)
                return cv_fail(e, "spec: %s: feature name '%.64s' is already used by "
                                  "features[%zu]", where, d->name, j);
        if (need_choice(f, "type", where, types, &t, e) < 0)
            return -1;
        if (t == 0) {
            d->type = OPECOM_FEATURE_NUMERIC;
            if (parse_numeric(f, where, d, s->quantiles + q_at, e) < 0)
                return -1;
            q_at += d->n_quantiles;
            d_in += 1;
        } else {
            d->type = OPECOM_FEATURE_CATEGORICAL;
            if (parse_categorical(f, where, d, s->category_ptrs + cat_at, e) < 0)
                return -1;
            cat_at += d->n_categories;
            d_in += d->n_categories;
        }
    }
    if (d_in > SPEC_MAX_WIDTH)
        return cv_fail(e, "spec: encoded input width %llu is too large",
                       (unsigned long long)d_in);
    s->d_in = (uint32_t)d_in;
    return 0;
}

/* ===================================================================== *
 * Explanation baseline
 * ===================================================================== */

/* One baseline row: an object holding every feature by name, raw values. */
static int parse_baseline_row(json_t *row, const cv_spec *s, const char *where,
                              opecom_value *out, cv_err *e) {
    const char *key;
    json_t *v;
    if (!json_is_object(row))
        return cv_fail(e, "spec: %s: must be an object of raw feature values", where);
    json_object_foreach(row, key, v) {
        uint32_t f = 0;
        while (f < s->n_features && strcmp(s->features[f].name, key) != 0)
            f++;
        if (f == s->n_features)
            return cv_fail(e, "spec: %s: unknown feature '%.64s'", where, key);
    }
    for (uint32_t f = 0; f < s->n_features; f++) {
        const opecom_feature_desc *F = &s->features[f];
        v = json_object_get(row, F->name);
        if (v == NULL)
            return cv_fail(e, "spec: %s: feature '%s' is missing", where, F->name);
        out[f].str = NULL;
        out[f].num = 0.0;
        if (F->type == OPECOM_FEATURE_NUMERIC) {
            double x = json_is_number(v) ? json_number_value(v) : (double)NAN;
            if (!isfinite(x))
                return cv_fail(e, "spec: %s: '%s' must be a finite number", where, F->name);
            if ((F->has_min && x < F->min) || (F->has_max && x > F->max))
                return cv_fail(e, "spec: %s: '%s' is %g, outside its valid range", where,
                               F->name, x);
            out[f].num = x;
            continue;
        }
        uint32_t c = 0;
        if (json_is_string(v)) {
            out[f].str = json_string_value(v);
            while (c < F->n_categories && strcmp(F->categories[c], out[f].str) != 0)
                c++;
        } else if (json_is_number(v)) {
            out[f].num = json_number_value(v);
            while (c < F->n_categories) {
                char *end;
                double n = strtod(F->categories[c], &end);
                if (*end == '\0' && n == out[f].num)
                    break;
                c++;
            }
        } else {
            return cv_fail(e, "spec: %s: '%s' must be a category (a string)", where, F->name);
        }
        if (c == F->n_categories) {
            char shown[72];
            if (out[f].str)
                snprintf(shown, sizeof shown, "'%.64s'", out[f].str);
            else
                snprintf(shown, sizeof shown, "%g", out[f].num);
            return cv_fail(e, "spec: %s: '%s' value %s is not one of its categories", where,
                           F->name, shown);
        }
    }
    return 0;
}

/* "baseline": {"method": "...", "rows": [{feature: value, ...}, ...],
 * "weights": [w, ...]}: a few weighted raw rows that explanations compare
 * against. The values are checked here; the library encodes them. */
static int parse_baseline(json_t *b, cv_spec *s, cv_err *e) {
    static const char *const keys[] = {"method", "rows", "weights", NULL};
    const char *method = NULL;
    if (!json_is_object(b))
        return cv_fail(e, "spec: 'baseline' must be an object");
    if (only_keys(b, keys, "baseline", e) < 0 || need_string(b, "method", "baseline", &method, e) < 0)
        return -1;
    json_t *rows = need(b, "rows", "baseline", e);
    json_t *weights = need(b, "weights", "baseline", e);
    if (rows == NULL || weights == NULL)
        return -1;
    size_t n = json_is_array(rows) ? json_array_size(rows) : 0;
    if (n == 0 || n > OPECOM_MAX_BASELINE)
        return cv_fail(e, "spec: baseline: 'rows' must be an array of 1..%d rows",
                       OPECOM_MAX_BASELINE);
    if (!json_is_array(weights) || json_array_size(weights) != n)
        return cv_fail(e, "spec: baseline: 'weights' must be an array of %zu numbers, one per "
                          "row", n);
    s->baseline_rows = calloc(n * s->n_features, sizeof *s->baseline_rows);
    s->baseline_weights = calloc(n, sizeof *s->baseline_weights);
    if (s->baseline_rows == NULL || s->baseline_weights == NULL)
        return cv_fail(e, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char where[48];
        json_t *w = json_array_get(weights, i);
        snprintf(where, sizeof where, "baseline.rows[%zu]", i);
        if (parse_baseline_row(json_array_get(rows, i), s, where,
                               s->baseline_rows + i * s->n_features, e) < 0)
            return -1;
        if (!json_is_number(w) || !isfinite(json_number_value(w)) ||
            !(json_number_value(w) > 0))
            return cv_fail(e, "spec: baseline: weights[%zu] must be a finite number > 0", i);
        s->baseline_weights[i] = json_number_value(w);
    }
    s->n_baseline = (uint32_t)n;
    return 0;
}

/* ===================================================================== *
 * Drift reference
 * ===================================================================== */

#define DRIFT_SUM_TOL 1e-6 /* the loader's tolerance on a dim's fractions */

/* "edges": n_edges finite numbers, strictly ascending (the score's within
 * [0, 1]) into dst. */
static int parse_edges(json_t *edges, const char *where, int score, double *dst, cv_err *e) {
    for (size_t i = 0; i < json_array_size(edges); i++) {
        json_t *v = json_array_get(edges, i);
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            return cv_fail(e, "spec: %s: edges[%zu] must be a finite number", where, i);
        dst[i] = json_number_value(v);
        if (i > 0 && !(dst[i] > dst[i - 1]))
            return cv_fail(e, "spec: %s: edges[%zu] is not above edges[%zu] (edges must be "
                              "strictly ascending)", where, i, i - 1);
        if (score && !(dst[i] >= 0 && dst[i] <= 1))
            return cv_fail(e, "spec: %s: edges[%zu] is %g, outside [0, 1]", where, i, dst[i]);
    }
    return 0;
}

/* "fractions": exactly n finite numbers >= 0 summing to 1 into dst. */
static int parse_fractions(json_t *fr, const char *where, size_t n, const char *what,
                           double *dst, cv_err *e) {
    if (!json_is_array(fr) || json_array_size(fr) != n)
        return cv_fail(e, "spec: %s: 'fractions' must be an array of %zu numbers (%s)", where, n,
                       what);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(fr, i);
        if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < 0)
            return cv_fail(e, "spec: %s: fractions[%zu] must be a finite number >= 0", where, i);
        dst[i] = json_number_value(v);
        sum += dst[i];
    }
    if (fabs(sum - 1.0) > DRIFT_SUM_TOL)
        return cv_fail(e, "spec: %s: fractions sum to %.9g, not 1", where, sum);
    return 0;
}

/* One dim: {"name"?, "edges"?, "fractions"}. F is the feature (NULL for the
 * score); *at advances over the values stored in s->drift_values. */
static int parse_drift_dim(json_t *o, const opecom_feature_desc *F, const char *where,
                           opecom_drift_dim_desc *D, double *values, size_t *at, cv_err *e) {
    static const char *const feature_keys[] = {"name", "edges", "fractions", NULL};
    static const char *const score_keys[] = {"edges", "fractions", NULL};
    if (!json_is_object(o))
        return cv_fail(e, "spec: %s: must be an object", where);
    if (only_keys(o, F ? feature_keys : score_keys, where, e) < 0)
        return -1;
    if (F != NULL) {
        const char *name = NULL;
        if (need_string(o, "name", where, &name, e) < 0)
            return -1;
        if (strcmp(name, F->name) != 0)
            return cv_fail(e, "spec: %s: name '%.64s' is not '%s' (one entry per feature, in "
                              "the order of 'features')", where, name, F->name);
    }
    json_t *edges = json_object_get(o, "edges");
    json_t *fr = need(o, "fractions", where, e);
    if (fr == NULL)
        return -1;
    if (F != NULL && F->type == OPECOM_FEATURE_CATEGORICAL) {
        if (edges != NULL)
            return cv_fail(e, "spec: %s: 'edges' is not allowed for a categorical feature",
                           where);
        double *fdst = values + *at;
        D->n_bins = F->n_categories + 1;
        D->fractions = fdst;
        *at += D->n_bins;
        return parse_fractions(fr, where, D->n_bins, "one per category, then other", fdst, e);
    }
    if (edges == NULL)
        return cv_fail(e, "spec: %s: missing key 'edges'", where);
    if (!json_is_array(edges) || json_array_size(edges) >= OPECOM_DRIFT_MAX_BINS)
        return cv_fail(e, "spec: %s: 'edges' must be an array of at most %u numbers", where,
                       OPECOM_DRIFT_MAX_BINS - 1);
    double *edst = values + *at;
    D->n_bins = (uint32_t)json_array_size(edges) + 1;
    D->edges = edst;
    *at += D->n_bins - 1;
    if (parse_edges(edges, where, F == NULL, edst, e) < 0)
        return -1;
    double *fdst = values + *at;
    D->fractions = fdst;
    *at += D->n_bins;
    return parse_fractions(fr, where, D->n_bins, "one more than 'edges'", fdst, e);
}

/* Upper bound of the numbers a dim object holds, counted before parsing. */
static size_t dim_values(json_t *o) {
    json_t *a = json_object_get(o, "edges");
    json_t *b = json_object_get(o, "fractions");
    return (json_is_array(a) ? json_array_size(a) : 0) + (json_is_array(b) ? json_array_size(b) : 0);
}

/* "drift": {"method": "...", "rows": n, "features": [{"name", "edges",
 * "fractions"}, ...], "score": {"edges", "fractions"}}: the training
 * distributions drift monitoring compares live rows with. */
static int parse_drift(json_t *dr, cv_spec *s, cv_err *e) {
    static const char *const keys[] = {"method", "rows", "features", "score", NULL};
    const char *method = NULL;
    if (!json_is_object(dr))
        return cv_fail(e, "spec: 'drift' must be an object");
    if (only_keys(dr, keys, "drift", e) < 0 || need_string(dr, "method", "drift", &method, e) < 0)
        return -1;
    json_t *rows = need(dr, "rows", "drift", e);
    json_t *feats = need(dr, "features", "drift", e);
    json_t *score = need(dr, "score", "drift", e);
    if (rows == NULL || feats == NULL || score == NULL)
        return -1;
    if (!json_is_integer(rows) || json_integer_value(rows) < 1)
        return cv_fail(e, "spec: drift: 'rows' must be an integer >= 1");
    if (!json_is_array(feats) || json_array_size(feats) != s->n_features)
        return cv_fail(e, "spec: drift: 'features' must be an array of %u objects, one per "
                          "feature", s->n_features);
    size_t n_values = dim_values(score);
    for (uint32_t f = 0; f < s->n_features; f++)
        n_values += dim_values(json_array_get(feats, f));
    s->drift_dims = calloc(s->n_features + 1, sizeof *s->drift_dims);
    s->drift_values = calloc(n_values ? n_values : 1, sizeof *s->drift_values);
    if (s->drift_dims == NULL || s->drift_values == NULL)
        return cv_fail(e, "out of memory");
    size_t at = 0;
    for (uint32_t f = 0; f < s->n_features; f++) {
        char where[48];
        snprintf(where, sizeof where, "drift.features[%u]", f);
        if (parse_drift_dim(json_array_get(feats, f), &s->features[f], where, &s->drift_dims[f],
                            s->drift_values, &at, e) < 0)
            return -1;
    }
    if (parse_drift_dim(score, NULL, "drift.score", &s->drift_dims[s->n_features],
                        s->drift_values, &at, e) < 0)
        return -1;
    s->drift.n_rows = (uint64_t)json_integer_value(rows);
    s->drift.dims = s->drift_dims;
    s->has_drift = 1;
    return 0;
}

/* ===================================================================== *
 * Top level
 * ===================================================================== */

static int parse_root(json_t *root, cv_spec *s, cv_err *e) {
    static const char *const top_keys[] = {"format", "task", "architecture", "features",
                                           "threshold", "training", "baseline", "drift",
                                           NULL};
    static const char *const arch_keys[] = {"type", "k", "n_blocks", "d_block",
                                            "activation", NULL};
    static const char *const formats[] = {SPEC_FORMAT, NULL};
    static const char *const tasks[] = {"binary", NULL};
    static const char *const arch_types[] = {"tabm", NULL};
    static const char *const activations[] = {"relu", NULL};
    int which;
    if (!json_is_object(root))
        return cv_fail(e, "spec: the top level must be a JSON object");
    if (only_keys(root, top_keys, "top level", e) < 0 ||
        need_choice(root, "format", "top level", formats, &which, e) < 0 ||
        need_choice(root, "task", "top level", tasks, &which, e) < 0)
        return -1;

    json_t *arch = need(root, "architecture", "top level", e);
    if (arch == NULL)
        return -1;
    if (!json_is_object(arch))
        return cv_fail(e, "spec: 'architecture' must be an object");
    if (only_keys(arch, arch_keys, "architecture", e) < 0 ||
        need_choice(arch, "type", "architecture", arch_types, &which, e) < 0 ||
        need_uint(arch, "k", "architecture", 1, OPECOM_MAX_K, &s->k, e) < 0 ||
        need_uint(arch, "n_blocks", "architecture", 1, SPEC_MAX_BLOCKS, &s->n_blocks, e) < 0 ||
        need_uint(arch, "d_block", "architecture", 1, SPEC_MAX_WIDTH, &s->d_block, e) < 0 ||
        need_choice(arch, "activation", "architecture", activations, &which, e) < 0)
        return -1;

    json_t *feats = need(root, "features", "top level", e);
    if (feats == NULL || parse_features(feats, s, e) < 0)
        return -1;

    int present;
    double t;
    if (get_number(root, "threshold", "top level", 1, &present, &t, e) < 0)
        return -1;
    /* Checked after rounding: 0.99999999 would become 1.0f. */
    s->threshold = (float)t;
    if (!(t > 0 && t < 1) || !(s->threshold > 0.0f && s->threshold < 1.0f))
        return cv_fail(e, "spec: 'threshold' must be in (0, 1), got %.17g", t);

    json_t *training = json_object_get(root, "training");
    if (training != NULL && !json_is_object(training))
        return cv_fail(e, "spec: 'training' must be an object");
    json_t *baseline = json_object_get(root, "baseline");
    if (baseline != NULL && parse_baseline(baseline, s, e) < 0)
        return -1;
    json_t *drift = json_object_get(root, "drift");
    if (drift != NULL && parse_drift(drift, s, e) < 0)
        return -1;
    return 0;
}

int cv_spec_parse(const char *text, size_t len, cv_spec *out, cv_err *e) {
    memset(out, 0, sizeof *out);
    if (memchr(text, '\0', len) != NULL)
        return cv_fail(e, "spec: holds a NUL byte");
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return cv_fail(e, "spec: invalid JSON at line %d, column %d: %s", jerr.line,
                       jerr.column, jerr.text);
    out->root = root;
    if (parse_root(root, out, e) < 0) {
        cv_spec_free(out);
        return -1;
    }
    return 0;
}

void cv_spec_free(cv_spec *spec) {
    if (spec == NULL)
        return;
    free(spec->features);
    free((void *)spec->category_ptrs);
    free(spec->quantiles);
    free(spec->baseline_rows);
    free(spec->baseline_weights);
    free(spec->drift_dims);
    free(spec->drift_values);
    json_decref(spec->root);
    memset(spec, 0, sizeof *spec);
}
