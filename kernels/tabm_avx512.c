/*
 * tabm_avx512.c - the TabM forward pass for AVX-512F: the vector vocabulary
 * of tabm_simd.h at 16 lanes, with mask registers for the tails. The only
 * file built with -mavx512f; dispatch.c runs it only on CPUs that have it.
 * tabm_scalar.c is the oracle it is tested against.
 */
#include <immintrin.h>

#define LANES 16
#define NV 4 /* 4 x 4 accumulators + 4 weights + 1 broadcast of 32 registers */
typedef __m512 vec;

static inline vec vzero(void) { return _mm512_setzero_ps(); }
static inline vec vload(const float *p) { return _mm512_load_ps(p); }
static inline vec vloadu(const float *p) { return _mm512_loadu_ps(p); }
static inline void vstoreu(float *p, vec v) { _mm512_storeu_ps(p, v); }
static inline vec vbcast(const float *p) { return _mm512_set1_ps(*p); }
static inline vec vfma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
static inline vec vmul(vec a, vec b) { return _mm512_mul_ps(a, b); }
static inline vec vadd(vec a, vec b) { return _mm512_add_ps(a, b); }
static inline vec vmax(vec a, vec b) { return _mm512_max_ps(a, b); }

static inline __mmask16 lanes(int n) { return (__mmask16)((1u << n) - 1u); }
static inline vec vloadu_n(const float *p, int n) { return _mm512_maskz_loadu_ps(lanes(n), p); }
static inline void vstoreu_n(float *p, int n, vec v) { _mm512_mask_storeu_ps(p, lanes(n), v); }
static inline float vhsum(vec v) { return _mm512_reduce_add_ps(v); }

#include "tabm_simd.h"

const opecom_kernel opecom_kernel_avx512 = {
    "avx512",
    opecom_cpu_has_avx512,
    simd_prepare,
    simd_scratch_floats,
    simd_forward,
};
