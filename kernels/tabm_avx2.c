/*
 * tabm_avx2.c - the TabM forward pass for AVX2 + FMA: the vector vocabulary
 * of tabm_simd.h at 8 lanes. The only file built with -mavx2 -mfma;
 * dispatch.c runs it only on CPUs that have both. tabm_scalar.c is the oracle
 * it is tested against.
 */
#include <immintrin.h>

#define LANES 8
typedef __m256 vec;

static inline vec vzero(void) { return _mm256_setzero_ps(); }
static inline vec vload(const float *p) { return _mm256_load_ps(p); }
static inline vec vloadu(const float *p) { return _mm256_loadu_ps(p); }
static inline void vstoreu(float *p, vec v) { _mm256_storeu_ps(p, v); }
static inline vec vbcast(const float *p) { return _mm256_broadcast_ss(p); }
static inline vec vfma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
static inline vec vmul(vec a, vec b) { return _mm256_mul_ps(a, b); }
static inline vec vadd(vec a, vec b) { return _mm256_add_ps(a, b); }
static inline vec vmax(vec a, vec b) { return _mm256_max_ps(a, b); }

static inline __m256i lanes(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline vec vloadu_n(const float *p, int n) { return _mm256_maskload_ps(p, lanes(n)); }
static inline void vstoreu_n(float *p, int n, vec v) { _mm256_maskstore_ps(p, lanes(n), v); }

static inline float vhsum(vec v)
{
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

#include "tabm_simd.h"

const opecom_kernel opecom_kernel_avx2 = {
    "avx2",
    opecom_cpu_has_avx2,
    simd_prepare,
    simd_scratch_floats,
    simd_forward,
};
