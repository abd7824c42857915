/*
 * tabm_scalar.c - the reference TabM forward pass: portable C, the oracle the
 * fast kernels are tested against. One loop nest per step of TABM.md 1.2-1.3;
 * sums are accumulated in double so the oracle sits as close to the exact
 * value as float32 weights allow.
 *
 * Activations are laid out [n_rows, k, d]; the first layer reads the shared
 * input row [d_in] once per member (no copies).
 */
#include "tabm.h"

static size_t max_u32(size_t a, size_t b) { return a > b ? a : b; }

static size_t scalar_scratch_floats(const opecom_tabm *net, size_t n_rows)
{
    size_t width = max_u32(net->d_in, net->d_block);
    /* two activation buffers [n, k, d_block] + one input row [width] */
    return 2 * n_rows * net->k * (size_t)net->d_block + width;
}

/* One block for one (row, member): out = relu(s * (W (r * in)) + b). */
static void block_row(const opecom_tabm_layer *L, uint32_t i, const float *in /* [d_in] */,
                      float *u /* [d_in] scratch */, float *out /* [d_out] */)
{
    const float *r = L->r ? L->r + (size_t)i * L->d_in : NULL;   /* [d_in] */
    const float *s = L->s ? L->s + (size_t)i * L->d_out : NULL;  /* [d_out] */
    const float *b = L->b + (size_t)i * L->d_out;                /* [d_out] */

    for (uint32_t c = 0; c < L->d_in; c++)
        u[c] = r ? in[c] * r[c] : in[c];
    for (uint32_t o = 0; o < L->d_out; o++) {
        const float *w = L->w + (size_t)o * L->d_in; /* [d_in] */
        double acc = 0.0;
        for (uint32_t c = 0; c < L->d_in; c++)
            acc += (double)w[c] * (double)u[c];
        float z = (float)acc;
        if (s)
            z *= s[o];
        z += b[o];
        out[o] = z > 0.0f ? z : 0.0f;
    }
}

static void scalar_forward(const opecom_tabm *net, const void *packed, const float *x,
                           size_t n_rows, float *logits, float *scratch)
{
    (void)packed;
    const size_t k = net->k;
    const size_t d = net->d_block;
    float *h0 = scratch;                 /* [n, k, d] */
    float *h1 = scratch + n_rows * k * d; /* [n, k, d] */
    float *u = h1 + n_rows * k * d;       /* [max(d_in, d)] */

    /* Block 0: every member reads the same encoded row. */
    for (size_t n = 0; n < n_rows; n++)
        for (uint32_t i = 0; i < k; i++)
            block_row(&net->layers[0], i, x + n * net->d_in, u, h0 + (n * k + i) * d);

    for (uint32_t l = 1; l < net->n_blocks; l++) {
        for (size_t n = 0; n < n_rows; n++)
            for (uint32_t i = 0; i < k; i++)
                block_row(&net->layers[l], i, h0 + (n * k + i) * d, u, h1 + (n * k + i) * d);
        float *t = h0;
        h0 = h1;
        h1 = t;
    }

    /* Head: one logit per member, each member with its own weights. */
    for (size_t n = 0; n < n_rows; n++) {
        for (uint32_t i = 0; i < k; i++) {
            const float *h = h0 + (n * k + i) * d;   /* [d] */
            const float *hw = net->head_w + i * d;   /* [d] */
            double acc = 0.0;
            for (size_t c = 0; c < d; c++)
                acc += (double)hw[c] * (double)h[c];
            logits[n * k + i] = (float)acc + net->head_b[i];
        }
    }
}

static int scalar_supported(void) { return 1; }

const opecom_kernel opecom_kernel_scalar = {
    "scalar",
    scalar_supported,
    NULL,
    scalar_scratch_floats,
    scalar_forward,
};
