/*
 * fma_peak.h - single-core FMA peak micro-benchmarks (tools/bench only).
 *
 * Each function runs independent chains of packed single-precision FMAs
 * (enough chains to cover the FMA latency on every port) for at least
 * `seconds` and returns the achieved GFLOP/s (one FMA = 2 FLOPs per lane).
 * fma_avx2.c is compiled with -mavx2 -mfma and fma_avx512.c with -mavx512f;
 * bench_read_bw_avx2 measures how fast one core streams a buffer of a given
 * size (the weights of a model) from whichever cache level holds it;
 * call them only after __builtin_cpu_supports says the CPU has the ISA.
 */
#ifndef OPECOM_BENCH_FMA_PEAK_H
#define OPECOM_BENCH_FMA_PEAK_H

#include <stddef.h>

double bench_fma_peak_avx2(double seconds);
double bench_fma_peak_avx512(double seconds);

/* Read bandwidth (GB/s) of one core over n floats, 64-byte aligned, n a
 * multiple of 32 (fma_avx2.c: needs AVX2). */
double bench_read_bw_avx2(const float *buf, size_t n, double seconds);

/* Monotonic clock in seconds (bench.c). */
double bench_now(void);

#endif
