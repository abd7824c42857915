/*
 * predict.c - workspaces and the prediction entry points.
 *
 * A workspace is one block of memory: its header, then the encoded rows
 * [max_rows, d_in], the logits [max_rows, k], the kernel's scratch and
 * opecom_explain's scratch (explain.c; small: a few arrays of d_in,
 * n_features, max_rows and n_baseline entries), each 64-byte aligned.
 * opecom_predict_batch walks the rows in steps of max_rows: encode, run the
 * kernel once for the whole step, then turn each row's k logits into
 * probabilities. Nothing here allocates except
 * opecom_workspace_create.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define ALIGN 64

static size_t align_up(size_t v) { return (v + ALIGN - 1) / ALIGN * ALIGN; }

static size_t x_bytes(const opecom_model *m, size_t rows) { return align_up(rows * m->d_in * 4); }
static size_t logit_bytes(const opecom_model *m, size_t rows) { return align_up(rows * m->k * 4); }
static size_t scratch_bytes(const opecom_model *m, size_t rows)
{
    return align_up(m->kernel->scratch_floats(&m->net, rows) * 4);
}

static size_t explain_bytes(const opecom_model *m, size_t rows)
{
    size_t nb = m->n_baseline ? m->n_baseline : 1;
    return 2 * align_up(m->d_in * sizeof(float)) + align_up(rows * sizeof(opecom_explain_rec)) +
           2 * align_up(m->n_features * sizeof(uint32_t)) +
           align_up((m->n_features + 1) * sizeof(double)) +
           align_up(m->n_features * sizeof(double)) + 2 * align_up(nb * sizeof(double));
}

size_t opecom_workspace_size(const opecom_model *m, size_t max_rows)
{
    if (m == NULL || max_rows == 0 || max_rows > ((size_t)1 << 24))
        return 0;
    return ALIGN /* slack to align caller memory */ + align_up(sizeof(opecom_workspace)) +
           x_bytes(m, max_rows) + logit_bytes(m, max_rows) + scratch_bytes(m, max_rows) +
           explain_bytes(m, max_rows);
}

/* Carves `bytes` (64-aligned) off *p. */
static void *take(unsigned char **p, size_t bytes)
{
    void *at = *p;
    *p += align_up(bytes);
    return at;
}

opecom_status opecom_workspace_init(const opecom_model *m, size_t max_rows, void *mem,
                                    size_t size, opecom_workspace **out, opecom_error *err)
{
    if (m == NULL || mem == NULL || out == NULL)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "model, mem and out must not be NULL");
    size_t need = opecom_workspace_size(m, max_rows);
    if (need == 0)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1,
                           "max_rows %zu is out of range (1 .. 2^24)", max_rows);
    if (size < need)
        return opecom_fail(err, OPECOM_EWORKSPACE, -1, -1, -1,
                           "workspace of %zu bytes is too small: %zu rows need %zu bytes", size,
                           max_rows, need);
    unsigned char *p = (unsigned char *)mem;
    p += (ALIGN - (uintptr_t)p % ALIGN) % ALIGN;
    opecom_workspace *ws = (opecom_workspace *)(void *)p;
    p += align_up(sizeof *ws);
    ws->model = m;
    ws->max_rows = max_rows;
    ws->owned = 0;
    ws->x = (float *)(void *)p;
    p += x_bytes(m, max_rows);
    ws->logits = (float *)(void *)p;
    p += logit_bytes(m, max_rows);
    ws->scratch = (float *)(void *)p;
    p += scratch_bytes(m, max_rows);
    size_t nb = m->n_baseline ? m->n_baseline : 1;
    ws->ex_x = take(&p, m->d_in * sizeof(float));
    ws->ex_row = take(&p, m->d_in * sizeof(float));
    ws->ex_rec = take(&p, max_rows * sizeof(opecom_explain_rec));
    ws->ex_players = take(&p, m->n_features * sizeof(uint32_t));
    ws->ex_perm = take(&p, m->n_features * sizeof(uint32_t));
    ws->ex_coef = take(&p, (m->n_features + 1) * sizeof(double));
    ws->ex_phi = take(&p, m->n_features * sizeof(double));
    ws->ex_fb = take(&p, nb * sizeof(double));
    ws->ex_wf = take(&p, nb * sizeof(double));
    *out = ws;
    return OPECOM_OK;
}

opecom_status opecom_workspace_create(const opecom_model *m, size_t max_rows,
                                      opecom_workspace **out, opecom_error *err)
{
    if (m == NULL || out == NULL)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "model and out must not be NULL");
    *out = NULL;
    size_t size = opecom_workspace_size(m, max_rows);
    if (size == 0)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1,
                           "max_rows %zu is out of range (1 .. 2^24)", max_rows);
    void *mem = NULL;
    if (posix_memalign(&mem, ALIGN, size) != 0)
        return opecom_fail(err, OPECOM_ENOMEM, -1, -1, -1, "out of memory (%zu bytes)", size);
    /* mem is aligned, so the header lands at mem itself and free(ws) is right. */
    opecom_status s = opecom_workspace_init(m, max_rows, mem, size, out, err);
    if (s != OPECOM_OK) {
        free(mem);
        return s;
    }
    (*out)->owned = 1;
    return OPECOM_OK;
}

void opecom_workspace_free(opecom_workspace *ws)
{
    if (ws != NULL && ws->owned)
        free(ws);
}

opecom_status opecom_workspace_fit(const opecom_model *m, void *mem, size_t size,
                                   opecom_workspace **out, opecom_error *err)
{
    size_t one = opecom_workspace_size(m, 1), fit = 1;
    if (one > size)
        return opecom_fail(err, OPECOM_EWORKSPACE, -1, -1, -1,
                           "model needs %zu bytes of scratch, more than the %zu on the stack: "
                           "pass a workspace",
                           one, size);
    while (fit < 64 && opecom_workspace_size(m, fit * 2) <= size)
        fit *= 2;
    return opecom_workspace_init(m, fit, mem, size, out, err);
}

/* Probabilities, mean and spread of one row's k logits. */
/* The confidence documented at opecom_result, from the members' mean and
 * population variance (both in double, before rounding to float). */
static double opecom_confidence_of(double mean, double var)
{
    double total = mean * (1.0 - mean);
    if (!(total > 0.0))
        return 1.0;
    double c = 1.0 - sqrt(var / total);
    return c < 0.0 ? 0.0 : c > 1.0 ? 1.0 : c;
}

static void finish_row(const opecom_model *m, const float *logits, opecom_result *r)
{
    double sum = 0.0;
    r->k = m->k;
    for (uint32_t i = 0; i < m->k; i++) {
        double p = 1.0 / (1.0 + exp(-(double)logits[i]));
        r->member[i] = (float)p;
        sum += p;
    }
    for (uint32_t i = m->k; i < OPECOM_MAX_K; i++)
        r->member[i] = 0.0f;
    double mean = sum / m->k, var = 0.0;
    for (uint32_t i = 0; i < m->k; i++) {
        double dv = (double)r->member[i] - mean;
        var += dv * dv;
    }
    r->probability = (float)mean;
    r->spread = (float)sqrt(var / m->k);
    r->confidence = (float)opecom_confidence_of(mean, var / m->k);
    r->reserved = 0;
    r->label = r->probability >= m->threshold;
    r->status = OPECOM_OK;
}

static opecom_status run_batch(const opecom_model *m, opecom_workspace *ws,
                               const opecom_value *rows, size_t n_rows, opecom_result *out,
                               opecom_error *err)
{
    opecom_status first = OPECOM_OK;
    for (size_t start = 0; start < n_rows; start += ws->max_rows) {
        size_t n = n_rows - start < ws->max_rows ? n_rows - start : ws->max_rows;
        for (size_t i = 0; i < n; i++) {
            size_t row = start + i;
            float *x = ws->x + i * m->d_in;
            opecom_status s = opecom_encode_row(m, rows + row * m->n_features, (int64_t)row, x,
                                                &out[row], first == OPECOM_OK ? err : NULL);
            out[row].status = s;
            if (s != OPECOM_OK) {
                memset(x, 0, sizeof(float) * m->d_in); /* run, then discard */
                if (first == OPECOM_OK)
                    first = s;
            }
        }
        m->kernel->forward(&m->net, m->packed, ws->x, n, ws->logits, ws->scratch);
        for (size_t i = 0; i < n; i++) {
            size_t row = start + i;
            opecom_result *r = &out[row];
            const float *logits = ws->logits + i * m->k;
            if (r->status == OPECOM_OK) {
                /* Finite weights can still overflow float32 on a hostile model. */
                uint32_t j = 0;
                while (j < m->k && isfinite(logits[j]))
                    j++;
                if (j == m->k) {
                    finish_row(m, logits, r);
                    continue;
                }
                r->status = OPECOM_EVALUE;
                if (first == OPECOM_OK)
                    first = opecom_fail(err, OPECOM_EVALUE, -1, (int64_t)row, -1,
                                        "row %zu: member %u's output is not finite (the model's "
                                        "weights overflow float32 on this input)",
                                        row, j);
            }
            opecom_status s = r->status;
            memset(r->member, 0, sizeof r->member);
            r->probability = r->spread = r->confidence = NAN;
            r->reserved = 0;
            r->label = 0;
            r->k = m->k;
            r->status = s;
        }
    }
    return first;
}

opecom_status opecom_predict_batch(const opecom_model *m, opecom_workspace *ws,
                                   const opecom_value *rows, size_t n_rows, opecom_result *out,
                                   opecom_error *err)
{
    if (m == NULL || (rows == NULL && n_rows > 0) || (out == NULL && n_rows > 0))
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "model, rows and out must not be NULL");
    if (ws == NULL) {
        _Alignas(ALIGN) unsigned char stack[OPECOM_STACK_WORKSPACE];
        opecom_status s = opecom_workspace_fit(m, stack, sizeof stack, &ws, err);
        if (s != OPECOM_OK)
            return s;
        return run_batch(m, ws, rows, n_rows, out, err);
    }
    if (ws->model != m)
        return opecom_fail(err, OPECOM_EWORKSPACE, -1, -1, -1,
                           "workspace was made for another model");
    return run_batch(m, ws, rows, n_rows, out, err);
}

opecom_status opecom_predict(const opecom_model *m, opecom_workspace *ws, const opecom_value *row,
                             opecom_result *out, opecom_error *err)
{
    if (row == NULL || out == NULL)
        return opecom_fail(err, OPECOM_EINVAL, -1, -1, -1, "row and out must not be NULL");
    opecom_status s = opecom_predict_batch(m, ws, row, 1, out, err);
    if (s != OPECOM_OK && err != NULL)
        err->row = -1;
    return s;
}
