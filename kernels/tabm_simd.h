/*
 * tabm_simd.h - the body of the fast TabM kernels, written once over a small
 * vector vocabulary and included by tabm_avx2.c (8 lanes) and tabm_avx512.c
 * (16 lanes), each of which defines, before including it:
 *
 *   LANES            floats per vector
 *   vec              the vector type
 *   vzero vload vloadu vstoreu vbcast vfma vmul vadd vmax
 *   vloadu_n(p, n)   the first n lanes from p, zeros after (n < LANES)
 *   vstoreu_n(p, n, v)  store the first n lanes only
 *   vhsum(v)         sum of the lanes
 *
 * Everything here is static, so each including file gets its own copy built
 * for its own instruction set and nothing leaks into the scalar path.
 *
 * Design
 *   - Rows: a batch of n sessions is M = n*k member rows. Because W is shared,
 *     every member row goes through the same matrix: one GEMM per layer,
 *     C[M, d_out] = A[M, d_in] . W^T, with A = h (.) r (applied while packing A)
 *     and s, bias and ReLU fused into the epilogue.
 *   - Weights are repacked once at load into panels of NR = NV vectors of
 *     output columns ([d_in][NR] per panel, zero-padded), so the micro-kernel
 *     streams one panel row per input column and broadcasts one A value per
 *     row: an MR x NR tile in MR x NV accumulators. NV is 3 at AVX2 (16
 *     registers); AVX-512 has 32 and takes NV = 4, whose 64 columns divide the
 *     usual widths (d_block 256 in 48-column panels would compute 288).
 *   - Layer 0 reads the encoded input, mostly one-hot zeros: only its non-zero
 *     columns are visited (a categorical feature adds one r-scaled column of W
 *     instead of a dense dot product).
 *   - Rows are processed in blocks of RB so that a block's A stays in L1/L2
 *     while every panel of W streams past it.
 */
#include <stdlib.h>
#include <string.h>

#include "tabm.h"

#ifndef MR
#define MR 4 /* rows per micro-tile: MR x NV accumulators + NV weights + 1 broadcast */
#endif
#ifndef NV
#define NV 3 /* vectors per panel: what MR x NV + NV + 1 registers allow */
#endif
#define NR (NV * LANES) /* output columns per panel */
#define RB 32 /* rows per cache block */

/* ========================================================================= *
 * Packed weights
 * ========================================================================= */

typedef struct packed_layer {
    const float *w; /* [n_panels][d_in][NR] */
    uint32_t n_panels;
} packed_layer;

static size_t panels(uint32_t d_out) { return (d_out + NR - 1) / NR; }

static int simd_prepare(const opecom_tabm *net, void **out)
{
    size_t head = sizeof(packed_layer) * net->n_blocks;
    size_t head_aligned = (head + 63) / 64 * 64;
    size_t floats = 0;
    for (uint32_t l = 0; l < net->n_blocks; l++)
        floats += panels(net->layers[l].d_out) * net->layers[l].d_in * NR;
    void *mem = NULL;
    if (posix_memalign(&mem, 64, head_aligned + floats * sizeof(float)) != 0)
        return -1;
    packed_layer *p = mem; /* [n_blocks], then the panels */
    float *dst = (float *)(void *)((unsigned char *)mem + head_aligned);
    for (uint32_t l = 0; l < net->n_blocks; l++) {
        const opecom_tabm_layer *L = &net->layers[l];
        size_t np = panels(L->d_out);
        p[l].w = dst;
        p[l].n_panels = (uint32_t)np;
        for (size_t pn = 0; pn < np; pn++)
            for (uint32_t c = 0; c < L->d_in; c++)
                for (uint32_t j = 0; j < NR; j++) {
                    size_t o = pn * NR + j;
                    *dst++ = o < L->d_out ? L->w[o * L->d_in + c] : 0.0f;
                }
    }
    *out = mem;
    return 0;
}

/* ========================================================================= *
 * Micro-kernels: an MR x NR tile
 * ========================================================================= */

/* acc[r] += sum over t of a[r][t] * w[col(t)][0..NR); rows r >= mr read row
 * 0 (harmless duplicate work, discarded by the caller). cols == NULL means
 * col(t) = t (dense). The row loops are fully unrolled, so the MR x 3
 * accumulators live in registers. */
static inline __attribute__((always_inline)) void
tile(int mr, const float *a, size_t lda, const int32_t *cols, size_t n, const float *w,
     vec acc[MR][NV])
{
    const float *ar[MR];
    vec c[MR][NV];
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
        ar[r] = a + (size_t)(r < mr ? r : 0) * lda;
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++)
            c[r][j] = vzero();
    }
    for (size_t t = 0; t < n; t++) {
        const float *wr = w + (size_t)(cols ? (size_t)cols[t] : t) * NR;
        vec b[NV];
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++)
            b[j] = vload(wr + j * LANES);
#pragma GCC unroll 16
        for (int r = 0; r < MR; r++) {
            vec x = vbcast(ar[r] + t);
#pragma GCC unroll 8
            for (int j = 0; j < NV; j++)
                c[r][j] = vfma(x, b[j], c[r][j]);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 8
        for (int j = 0; j < NV; j++)
            acc[r][j] = c[r][j];
}

static void tile_dense(int mr, const float *a, size_t lda, size_t n, const float *w,
                       vec acc[MR][NV])
{
    tile(mr, a, lda, NULL, n, w, acc);
}

static void tile_sparse(int mr, const float *a, size_t lda, const int32_t *cols, size_t n,
                        const float *w, vec acc[MR][NV])
{
    tile(mr, a, lda, cols, n, w, acc);
}

/* out[o0 .. o0+NR) of one row = relu(acc * s + b), clipped to d_out. */
static inline void epilogue(const vec acc[NV], const float *s, const float *b, uint32_t o0,
                            uint32_t d_out, float *out)
{
    for (int j = 0; j < NV; j++) {
        uint32_t o = o0 + LANES * (uint32_t)j;
        if (o >= d_out)
            return;
        vec v = acc[j];
        if (o + LANES <= d_out) {
            if (s)
                v = vmul(v, vloadu(s + o));
            v = vmax(vadd(v, vloadu(b + o)), vzero());
            vstoreu(out + o, v);
        } else {
            int n = (int)(d_out - o);
            if (s)
                v = vmul(v, vloadu_n(s + o, n));
            v = vmax(vadd(v, vloadu_n(b + o, n)), vzero());
            vstoreu_n(out + o, n, v);
        }
    }
}

/* ========================================================================= *
 * Layers
 * ========================================================================= */

/* Layer 0 for one session: k member rows from one shared encoded row x,
 * visiting only its non-zero columns. av: [k, d_in] scratch, cols: [d_in]. */
static void layer0(const opecom_tabm_layer *L, const packed_layer *P, uint32_t k, const float *x,
                   float *av, int32_t *cols, float *out /* [k, d_out] */)
{
    size_t nnz = 0;
    for (uint32_t c = 0; c < L->d_in; c++)
        if (x[c] != 0.0f)
            cols[nnz++] = (int32_t)c;
    for (uint32_t i = 0; i < k; i++) {
        const float *r = L->r ? L->r + (size_t)i * L->d_in : NULL;
        for (size_t t = 0; t < nnz; t++)
            av[i * nnz + t] = r ? x[cols[t]] * r[cols[t]] : x[cols[t]];
    }
    for (uint32_t i0 = 0; i0 < k; i0 += MR) {
        uint32_t mr = k - i0 < MR ? k - i0 : MR;
        for (uint32_t p = 0; p < P->n_panels; p++) {
            vec acc[MR][NV];
            tile_sparse((int)mr, av + i0 * nnz, nnz, cols, nnz, P->w + (size_t)p * L->d_in * NR,
                        acc);
            for (uint32_t r = 0; r < mr; r++) {
                uint32_t i = i0 + r;
                epilogue(acc[r], L->s ? L->s + (size_t)i * L->d_out : NULL,
                         L->b + (size_t)i * L->d_out, p * NR, L->d_out,
                         out + (size_t)i * L->d_out);
            }
        }
    }
}

/* A dense layer over M member rows (row m is member m % k). */
static void layer_dense(const opecom_tabm_layer *L, const packed_layer *P, uint32_t k,
                        const float *h /* [M, d_in] */, size_t M, float *a /* [RB, d_in] */,
                        float *out /* [M, d_out] */)
{
    const size_t din = L->d_in;
    for (size_t m0 = 0; m0 < M; m0 += RB) {
        size_t mb = M - m0 < RB ? M - m0 : RB;
        const float *A = h + m0 * din;
        if (L->r) { /* A = h (.) r_member, packed once per block */
            for (size_t m = 0; m < mb; m++) {
                const float *hr = h + (m0 + m) * din;
                const float *r = L->r + ((m0 + m) % k) * din;
                float *ar = a + m * din;
                size_t c = 0;
                for (; c + LANES <= din; c += LANES)
                    vstoreu(ar + c, vmul(vloadu(hr + c),
                                                           vloadu(r + c)));
                for (; c < din; c++)
                    ar[c] = hr[c] * r[c];
            }
            A = a;
        }
        for (uint32_t p = 0; p < P->n_panels; p++) {
            const float *w = P->w + (size_t)p * din * NR;
            for (size_t t0 = 0; t0 < mb; t0 += MR) {
                size_t mr = mb - t0 < MR ? mb - t0 : MR;
                vec acc[MR][NV];
                tile_dense((int)mr, A + t0 * din, din, din, w, acc);
                for (size_t r = 0; r < mr; r++) {
                    size_t row = m0 + t0 + r;
                    uint32_t i = (uint32_t)(row % k);
                    epilogue(acc[r], L->s ? L->s + (size_t)i * L->d_out : NULL,
                             L->b + (size_t)i * L->d_out, p * NR, L->d_out,
                             out + row * L->d_out);
                }
            }
        }
    }
}

static float dot(const float *a, const float *b, size_t n)
{
    vec s0 = vzero(), s1 = s0;
    size_t c = 0;
    for (; c + 2 * LANES <= n; c += 2 * LANES) {
        s0 = vfma(vloadu(a + c), vloadu(b + c), s0);
        s1 = vfma(vloadu(a + c + LANES), vloadu(b + c + LANES), s1);
    }
    float s = vhsum(vadd(s0, s1));
    for (; c < n; c++)
        s += a[c] * b[c];
    return s;
}

/* ========================================================================= *
 * Forward pass
 * ========================================================================= */

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }
static size_t up16(size_t n) { return (n + 15) / 16 * 16; } /* keep blocks 64-byte aligned */

/* Sessions per chunk: a chunk goes through every layer before the next one
 * starts, so its activations (2 x CH_ROWS x d floats) stay in L2 instead of
 * streaming a whole batch's worth through memory at every layer. */
#define CH_ROWS 128

static size_t chunk_sessions(const opecom_tabm *net, size_t n_rows)
{
    size_t s = CH_ROWS / net->k;
    s = s ? s : 1;
    return n_rows < s ? n_rows : s;
}

static size_t simd_scratch_floats(const opecom_tabm *net, size_t n_rows)
{
    size_t M = chunk_sessions(net, n_rows) * net->k, d = net->d_block;
    return 2 * up16(M * d) + up16(RB * max_sz(d, net->d_in)) + up16((size_t)net->k * net->d_in) +
           up16(net->d_in);
}

static void simd_forward(const opecom_tabm *net, const void *packed, const float *x,
                         size_t n_rows, float *logits, float *scratch)
{
    const packed_layer *P = packed; /* [n_blocks] */
    const size_t k = net->k, d = net->d_block, chunk = chunk_sessions(net, n_rows);
    float *h0 = scratch;                               /* [chunk * k, d] */
    float *h1 = h0 + up16(chunk * k * d);              /* [chunk * k, d] */
    float *a = h1 + up16(chunk * k * d);               /* [RB, max(d, d_in)] */
    float *av = a + up16(RB * max_sz(d, net->d_in));   /* [k, d_in] */
    int32_t *cols = (int32_t *)(void *)(av + up16(k * net->d_in)); /* [d_in] */

    for (size_t n0 = 0; n0 < n_rows; n0 += chunk) {
        size_t ns = n_rows - n0 < chunk ? n_rows - n0 : chunk, M = ns * k;
        float *in = h0, *out = h1;
        for (size_t n = 0; n < ns; n++)
            layer0(&net->layers[0], &P[0], net->k, x + (n0 + n) * net->d_in, av, cols,
                   in + n * k * d);
        for (uint32_t l = 1; l < net->n_blocks; l++) {
            layer_dense(&net->layers[l], &P[l], net->k, in, M, a, out);
            float *t = in;
            in = out;
            out = t;
        }
        for (size_t m = 0; m < M; m++)
            logits[n0 * k + m] = dot(net->head_w + (m % k) * d, in + m * d, d) + net->head_b[m % k];
    }
}
