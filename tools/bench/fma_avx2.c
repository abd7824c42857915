/*
 * fma_avx2.c - AVX2 FMA peak of one core: 12 independent chains of
 * vfmadd (8 floats each), more than latency x ports on any current x86
 * core, so the loop is bound by FMA throughput only. Built with
 * -mavx2 -mfma for this file alone.
 */
#include <immintrin.h>

#include "fma_peak.h"

#define CHAINS 12
#define INNER 1000

static volatile float sink;

double bench_fma_peak_avx2(double seconds)
{
    /* a <- a * m + c converges to c / (1 - m) = 1: no overflow, no denormals */
    const __m256 m = _mm256_set1_ps(0.999999f);
    const __m256 c = _mm256_set1_ps(0.000001f);
    __m256 a0 = _mm256_set1_ps(0.5f), a1 = _mm256_set1_ps(0.6f), a2 = _mm256_set1_ps(0.7f);
    __m256 a3 = _mm256_set1_ps(0.8f), a4 = _mm256_set1_ps(0.9f), a5 = _mm256_set1_ps(1.1f);
    __m256 a6 = _mm256_set1_ps(1.2f), a7 = _mm256_set1_ps(1.3f), a8 = _mm256_set1_ps(1.4f);
    __m256 a9 = _mm256_set1_ps(1.5f), a10 = _mm256_set1_ps(1.6f), a11 = _mm256_set1_ps(1.7f);
    double fmas = 0.0;
    double t0 = bench_now(), t = t0;
    do {
        for (int i = 0; i < INNER; i++) {
            a0 = _mm256_fmadd_ps(a0, m, c);
            a1 = _mm256_fmadd_ps(a1, m, c);
            a2 = _mm256_fmadd_ps(a2, m, c);
            a3 = _mm256_fmadd_ps(a3, m, c);
            a4 = _mm256_fmadd_ps(a4, m, c);
            a5 = _mm256_fmadd_ps(a5, m, c);
            a6 = _mm256_fmadd_ps(a6, m, c);
            a7 = _mm256_fmadd_ps(a7, m, c);
            a8 = _mm256_fmadd_ps(a8, m, c);
            a9 = _mm256_fmadd_ps(a9, m, c);
            a10 = _mm256_fmadd_ps(a10, m, c);
            a11 = _mm256_fmadd_ps(a11, m, c);
        }
        fmas += (double)INNER * CHAINS * 8;
        t = bench_now();
    } while (t - t0 < seconds);
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    sink = out[0] + out[7];
    return 2.0 * fmas / (t - t0) / 1e9;
}

/* Read bandwidth of one core over a buffer of n floats (64-byte aligned, n a
 * multiple of 32), as a forward pass streams its weights: 8-wide loads into
 * four independent sums, repeated for at least `seconds`. GB/s. */
double bench_read_bw_avx2(const float *buf, size_t n, double seconds)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    double bytes = 0.0;
    double t0 = bench_now(), t = t0;
    do {
        for (size_t i = 0; i < n; i += 32) {
            s0 = _mm256_add_ps(s0, _mm256_load_ps(buf + i));
            s1 = _mm256_add_ps(s1, _mm256_load_ps(buf + i + 8));
            s2 = _mm256_add_ps(s2, _mm256_load_ps(buf + i + 16));
            s3 = _mm256_add_ps(s3, _mm256_load_ps(buf + i + 24));
        }
        bytes += (double)n * 4.0;
        t = bench_now();
    } while (t - t0 < seconds);
    float out[8];
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    sink = out[0] + out[7];
    return bytes / (t - t0) / 1e9;
}
