/*
 * fma_peak.h - single-core FMA peak micro-benchmarks (tools/bench only).
 *
 * Each function runs independent chains of packed single-precision FMAs
 * (enough chains to cover the FMA latency on every port) for at least
 * `seconds` and returns the achieved GFLOP/s (one FMA = 2 FLOPs per lane).
 * fma_avx2.c is compiled with -mavx2 -mfma and fma_avx512.c with -mavx512f;
 * call them only after __builtin_cpu_supports says the CPU has the ISA.
 */
#ifndef OPECOM_BENCH_FMA_PEAK_H
#define OPECOM_BENCH_FMA_PEAK_H

double bench_fma_peak_avx2(double seconds);
double bench_fma_peak_avx512(double seconds);

/* Monotonic clock in seconds (bench.c). */
double bench_now(void);

#endif
