/*
 * fma_avx512.c - AVX-512 FMA peak of one core: 16 independent chains of
 * vfmadd on zmm registers (16 floats each), enough to cover two FMA ports
 * of latency 4-6. Built with -mavx512f for this file alone.
 */
#include <immintrin.h>

#include "fma_peak.h"

#define CHAINS 16
#define INNER 1000

static volatile float sink;

double bench_fma_peak_avx512(double seconds)
{
    const __m512 m = _mm512_set1_ps(0.999999f);
    const __m512 c = _mm512_set1_ps(0.000001f);
    __m512 a[CHAINS];
    for (int j = 0; j < CHAINS; j++)
        a[j] = _mm512_set1_ps(0.5f + 0.0625f * (float)j);
    __m512 a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], a4 = a[4], a5 = a[5], a6 = a[6],
           a7 = a[7], a8 = a[8], a9 = a[9], a10 = a[10], a11 = a[11], a12 = a[12],
           a13 = a[13], a14 = a[14], a15 = a[15];
    double fmas = 0.0;
    double t0 = bench_now(), t = t0;
    do {
        for (int i = 0; i < INNER; i++) {
            a0 = _mm512_fmadd_ps(a0, m, c);
            a1 = _mm512_fmadd_ps(a1, m, c);
            a2 = _mm512_fmadd_ps(a2, m, c);
            a3 = _mm512_fmadd_ps(a3, m, c);
            a4 = _mm512_fmadd_ps(a4, m, c);
            a5 = _mm512_fmadd_ps(a5, m, c);
            a6 = _mm512_fmadd_ps(a6, m, c);
            a7 = _mm512_fmadd_ps(a7, m, c);
            a8 = _mm512_fmadd_ps(a8, m, c);
            a9 = _mm512_fmadd_ps(a9, m, c);
            a10 = _mm512_fmadd_ps(a10, m, c);
            a11 = _mm512_fmadd_ps(a11, m, c);
            a12 = _mm512_fmadd_ps(a12, m, c);
            a13 = _mm512_fmadd_ps(a13, m, c);
            a14 = _mm512_fmadd_ps(a14, m, c);
            a15 = _mm512_fmadd_ps(a15, m, c);
        }
        fmas += (double)INNER * CHAINS * 16;
        t = bench_now();
    } while (t - t0 < seconds);
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15)));
    sink = _mm512_reduce_add_ps(s);
    return 2.0 * fmas / (t - t0) / 1e9;
}
