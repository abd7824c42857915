/*
 * util.c - small helpers shared by the converter's readers: error text,
 * the growable tensor list, and shape arithmetic that cannot overflow.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"

int cv_fail(cv_err *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

void cv_tensors_free(cv_tensors *ts) {
    if (ts == NULL)
        return;
    for (size_t i = 0; i < ts->n; i++) {
        free(ts->items[i].name);
        free(ts->items[i].data);
    }
    free(ts->items);
    free(ts->spec);
    memset(ts, 0, sizeof *ts);
}

int cv_tensors_add(cv_tensors *ts, char *name, uint32_t ndim, const uint64_t *shape,
                   size_t count, float *data, cv_err *e) {
    if (cv_tensors_find(ts, name) != NULL) {
        cv_fail(e, "%s: tensor appears twice", name);
        free(name);
        free(data);
        return -1;
    }
    if (ndim > CV_MAX_NDIM) {
        cv_fail(e, "%s: %u dimensions, at most %d supported", name, (unsigned)ndim,
                CV_MAX_NDIM);
        free(name);
        free(data);
        return -1;
    }
    if (ts->n == ts->cap) {
        size_t cap = ts->cap ? ts->cap * 2 : 16;
        cv_tensor *items = realloc(ts->items, cap * sizeof *items);
        if (items == NULL) {
            free(name);
            free(data);
            return cv_fail(e, "out of memory");
        }
        ts->items = items;
        ts->cap = cap;
    }
    cv_tensor *t = &ts->items[ts->n++];
    memset(t, 0, sizeof *t);
    t->name = name;
    t->ndim = ndim;
    for (uint32_t i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->count = count;
    t->data = data;
    return 0;
}

const cv_tensor *cv_tensors_find(const cv_tensors *ts, const char *name) {
    for (size_t i = 0; i < ts->n; i++)
        if (strcmp(ts->items[i].name, name) == 0)
            return &ts->items[i];
    return NULL;
}

int cv_shape_count(uint32_t ndim, const uint64_t *shape, uint64_t max_count, size_t *count) {
    uint64_t n = 1;
    for (uint32_t i = 0; i < ndim; i++) {
        if (shape[i] > max_count)
            return -1;
        n *= shape[i];
        if (n > max_count)
            return -1;
    }
    *count = (size_t)n;
    return 0;
}

void cv_shape_str(uint32_t ndim, const uint64_t *shape, char *buf, size_t size) {
    size_t used = 0;
    if (size == 0)
        return;
    buf[0] = '\0';
    for (uint32_t i = 0; i <= ndim && used < size; i++) {
        int w;
        if (i == ndim)
            w = snprintf(buf + used, size - used, "]");
        else
            w = snprintf(buf + used, size - used, "%s%llu", i ? ", " : "[",
                         (unsigned long long)shape[i]);
        if (w < 0)
            return;
        used += (size_t)w;
    }
    if (ndim == 0 && size > 2)
        snprintf(buf, size, "[]");
}
