/*
 * safetensors.c - reads .safetensors files.
 *
 * Layout: an 8-byte little-endian header length n, n bytes of JSON, then the
 * data area. The JSON maps tensor names to {"dtype", "shape",
 * "data_offsets": [begin, end]} (offsets relative to the data area) plus an
 * optional "__metadata__" object of string values; its "opecom_spec" entry
 * may carry the converter's spec. Only F32 tensors are accepted. Offsets are
 * checked against the data size, against the shape, and against each other:
 * the tensors must tile the data area exactly, with no overlap, gap or
 * trailing bytes (as the reference implementation requires).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "convert.h"

#define ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024)

typedef struct st_span {
    uint64_t begin, end;
    size_t index; /* into the tensor list */
} st_span;

static int span_cmp(const void *a, const void *b) {
    const st_span *x = a;
    const st_span *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int read_metadata(json_t *meta, cv_tensors *out, cv_err *e) {
    const char *key;
    json_t *v;
    if (!json_is_object(meta))
        return cv_fail(e, "__metadata__ is not an object");
    json_object_foreach(meta, key, v) {
        if (!json_is_string(v))
            return cv_fail(e, "__metadata__: '%s' is not a string", key);
        if (strcmp(key, "opecom_spec") == 0) {
            size_t n = json_string_length(v);
            if (memchr(json_string_value(v), '\0', n) != NULL)
                return cv_fail(e, "__metadata__: opecom_spec holds a NUL character");
            out->spec = malloc(n + 1);
            if (out->spec == NULL)
                return cv_fail(e, "out of memory");
            memcpy(out->spec, json_string_value(v), n + 1);
        }
    }
    return 0;
}

static int get_u64(json_t *v, uint64_t max, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        (uint64_t)json_integer_value(v) > max)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* Parses one tensor entry into its shape and data span. */
static int read_entry(const char *name, json_t *t, uint64_t data_len, uint32_t *ndim,
                      uint64_t *shape, size_t *count, st_span *span, cv_err *e) {
    const char *key;
    json_t *v;
    if (!json_is_object(t))
        return cv_fail(e, "%s: entry is not an object", name);
    json_object_foreach(t, key, v) {
        if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 &&
            strcmp(key, "data_offsets") != 0)
            return cv_fail(e, "%s: unknown key '%s'", name, key);
    }
    json_t *dtype = json_object_get(t, "dtype");
    json_t *jshape = json_object_get(t, "shape");
    json_t *offs = json_object_get(t, "data_offsets");
    if (dtype == NULL || jshape == NULL || offs == NULL)
        return cv_fail(e, "%s: entry lacks '%s'", name,
                       dtype == NULL ? "dtype" : jshape == NULL ? "shape" : "data_offsets");
    if (!json_is_string(dtype))
        return cv_fail(e, "%s: dtype is not a string", name);
    if (strcmp(json_string_value(dtype), "F32") != 0) {
        char d[32];
        snprintf(d, sizeof d, "%s", json_string_value(dtype));
        return cv_fail(e, "%s: dtype '%s', expected 'F32' (float32)", name, d);
    }
    if (!json_is_array(jshape) || json_array_size(jshape) > CV_MAX_NDIM)
        return cv_fail(e, "%s: shape is not an array of at most %d sizes", name, CV_MAX_NDIM);
    *ndim = (uint32_t)json_array_size(jshape);
    for (uint32_t i = 0; i < *ndim; i++)
        if (get_u64(json_array_get(jshape, i), CV_MAX_ELEMENTS, &shape[i]) < 0)
            return cv_fail(e, "%s: shape[%u] is not a size up to %llu", name, (unsigned)i,
                           (unsigned long long)CV_MAX_ELEMENTS);
    char shp[160];
    cv_shape_str(*ndim, shape, shp, sizeof shp);
    if (cv_shape_count(*ndim, shape, CV_MAX_ELEMENTS, count) < 0)
        return cv_fail(e, "%s: shape %s is too large", name, shp);
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        get_u64(json_array_get(offs, 0), UINT64_MAX >> 1, &span->begin) < 0 ||
        get_u64(json_array_get(offs, 1), UINT64_MAX >> 1, &span->end) < 0)
        return cv_fail(e, "%s: data_offsets is not [begin, end]", name);
    if (span->begin > span->end || span->end > data_len)
        return cv_fail(e, "%s: data_offsets [%llu, %llu] out of range (data area is %llu bytes)",
                       name, (unsigned long long)span->begin, (unsigned long long)span->end,
                       (unsigned long long)data_len);
    if (span->end - span->begin != (uint64_t)*count * 4)
        return cv_fail(e, "%s: data_offsets [%llu, %llu] hold %llu bytes, shape %s needs %llu",
                       name, (unsigned long long)span->begin, (unsigned long long)span->end,
                       (unsigned long long)(span->end - span->begin), shp,
                       (unsigned long long)*count * 4);
    return 0;
}

static int check_tiling(st_span *spans, size_t n, const cv_tensors *out, uint64_t data_len,
                        cv_err *e) {
    qsort(spans, n, sizeof *spans, span_cmp);
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = out->items[spans[i].index].name;
        if (spans[i].begin < at)
            return cv_fail(e, "%s: data_offsets [%llu, %llu] overlap %s",
                           name, (unsigned long long)spans[i].begin,
                           (unsigned long long)spans[i].end, out->items[spans[i - 1].index].name);
        if (spans[i].begin > at)
            return cv_fail(e, "%s: data_offsets [%llu, %llu] leave a gap after byte %llu", name,
                           (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end,
                           (unsigned long long)at);
        at = spans[i].end;
    }
    if (at != data_len)
        return cv_fail(e, "%llu bytes of data after the last tensor",
                       (unsigned long long)(data_len - at));
    return 0;
}

int cv_safetensors_read(const unsigned char *buf, size_t len, cv_tensors *out, cv_err *e) {
    if (len < 8)
        return cv_fail(e, "too short for a safetensors file (%zu bytes)", len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
    if (hlen > ST_MAX_HEADER)
        return cv_fail(e, "header length %llu exceeds the %llu byte limit",
                       (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
    if (hlen > len - 8)
        return cv_fail(e, "header length %llu runs past the end of the file (%zu bytes)",
                       (unsigned long long)hlen, len);
    const unsigned char *data = buf + 8 + hlen;
    uint64_t data_len = len - 8 - hlen;

    json_error_t jerr;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return cv_fail(e, "header is not valid JSON: %s (byte %d)", jerr.text, jerr.position);
    if (!json_is_object(root)) {
        json_decref(root);
        return cv_fail(e, "header is not a JSON object");
    }
    size_t n_entries = json_object_size(root);
    st_span *spans = calloc(n_entries ? n_entries : 1, sizeof *spans);
    if (spans == NULL) {
        json_decref(root);
        return cv_fail(e, "out of memory");
    }
    size_t n_spans = 0;
    int rc = 0;
    const char *name;
    json_t *t;
    json_object_foreach(root, name, t) {
        if (strcmp(name, "__metadata__") == 0) {
            rc = read_metadata(t, out, e);
            if (rc < 0)
                break;
            continue;
        }
        char tname[200];
        snprintf(tname, sizeof tname, "%s", name);
        if (strlen(name) >= sizeof tname || name[0] == '\0') {
            rc = cv_fail(e, "tensor name '%s' is empty or longer than %zu bytes", tname,
                         sizeof tname - 1);
            break;
        }
        uint32_t ndim = 0;
        uint64_t shape[CV_MAX_NDIM];
        size_t count = 0;
        rc = read_entry(tname, t, data_len, &ndim, shape, &count, &spans[n_spans], e);
        if (rc < 0)
            break;
        spans[n_spans].index = out->n;
        float *f = NULL;
        if (count > 0) {
            f = malloc(count * sizeof *f);
            if (f == NULL) {
                rc = cv_fail(e, "out of memory");
                break;
            }
            const unsigned char *src = data + spans[n_spans].begin;
            for (size_t i = 0; i < count; i++) {
                uint32_t bits = (uint32_t)src[4 * i] | ((uint32_t)src[4 * i + 1] << 8) |
                                ((uint32_t)src[4 * i + 2] << 16) |
                                ((uint32_t)src[4 * i + 3] << 24);
                memcpy(&f[i], &bits, sizeof bits);
            }
        }
        char *dup = strdup(tname);
        if (dup == NULL) {
            free(f);
            rc = cv_fail(e, "out of memory");
            break;
        }
        rc = cv_tensors_add(out, dup, ndim, shape, count, f, e);
        if (rc < 0)
            break;
        n_spans++;
    }
    if (rc == 0)
        rc = check_tiling(spans, n_spans, out, data_len, e);
    free(spans);
    json_decref(root);
    return rc;
}
