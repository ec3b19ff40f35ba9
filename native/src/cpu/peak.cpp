// FP32 FMA peak, measured: the denominator of the profiler's "% of peak" column.
//
// What it measures: how many single-precision floating-point operations per second this machine
// retires when it does nothing but fused multiply-adds, at the widest vector width the build
// dispatches to (simd_level(): AVX-512 zmm, AVX2 ymm, else scalar), on `threads` threads at once.
//
// Formula: GFLOP/s = threads · chains · lanes · 2 · iterations / seconds / 1e9
//   (one FMA = 2 flops per lane; `seconds` is the wall time of the whole parallel repeat, so
//   thread start-up skew and a core shared with another process lower the number, as they would
//   for a real kernel.)
//
// Why independent chains: an FMA has a latency of ~4 cycles and a machine retires up to 2 per
// cycle, so one accumulator chain would measure latency, not throughput. kChains = 16
// accumulators (≥ 2 pipes × 4 cycles, with headroom for 5-cycle parts) fit in the 32 zmm / 16 ymm
// registers without spilling. acc = acc · m + a with m < 1 converges (to a / (1 − m)), so the
// values stay finite and normal (no denormal slow path) however long the loop runs, and the sum
// of the accumulators is returned so the compiler cannot drop the loop.
//
// The portable level has no FMA instruction to rely on (the build is compiled without -mfma and
// with -ffp-contract=off), so it times the same chains as separate scalar multiply and add — the
// operations the portable kernels actually execute — and still counts 2 flops per step.
#include "lmcl/peak.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "lmcl/cpu_features.h"
#include "lmcl/parallel.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// GCC 12 warns about the intentionally undefined vectors inside _mm512_reduce_add_ps.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#define LMCL_PEAK_X86 1
#define LMCL_PEAK_AVX512 __attribute__((target("avx512f,fma")))
#define LMCL_PEAK_AVX2 __attribute__((target("avx2,fma")))
#else
#define LMCL_PEAK_X86 0
#endif

namespace lmcl {
namespace cpu {
namespace {

constexpr int kChains = 16;
constexpr float kMultiplier = 0.999999f;
constexpr float kAddend = 1e-6f;

#if LMCL_PEAK_X86
LMCL_PEAK_AVX512 float fma_loop_avx512(int64_t iterations) {
  const __m512 m = _mm512_set1_ps(kMultiplier);
  const __m512 a = _mm512_set1_ps(kAddend);
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(static_cast<float>(c));
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], m, a);
  }
  __m512 total = acc[0];
  for (int c = 1; c < kChains; ++c) total = _mm512_add_ps(total, acc[c]);
  return _mm512_reduce_add_ps(total);
}

LMCL_PEAK_AVX2 float fma_loop_avx2(int64_t iterations) {
  const __m256 m = _mm256_set1_ps(kMultiplier);
  const __m256 a = _mm256_set1_ps(kAddend);
  __m256 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(static_cast<float>(c));
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 16
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], m, a);
  }
  __m256 total = acc[0];
  for (int c = 1; c < kChains; ++c) total = _mm256_add_ps(total, acc[c]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, total);
  float sum = 0.0f;
  for (float lane : lanes) sum += lane;
  return sum;
}
#endif

float multiply_add_loop_portable(int64_t iterations) {
  float acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = static_cast<float>(c);
  for (int64_t i = 0; i < iterations; ++i) {
    for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * kMultiplier + kAddend;
  }
  float sum = 0.0f;
  for (float value : acc) sum += value;
  return sum;
}

struct LoopChoice {
  float (*loop)(int64_t);
  int lanes;
};

LoopChoice pick_loop() {
#if LMCL_PEAK_X86
  switch (simd_level()) {
    case SimdLevel::kAvx512: return {fma_loop_avx512, 16};
    case SimdLevel::kAvx2: return {fma_loop_avx2, 8};
    default: break;
  }
#endif
  return {multiply_add_loop_portable, 1};
}

// Keeps the loops' results observable (so they are not optimised away) without a data race.
std::atomic<float> sink{0.0f};

// Wall seconds of one parallel repeat of `iterations` loop trips on every thread.
double time_repeat(const LoopChoice& choice, int threads, int64_t iterations) {
  std::vector<float> results(static_cast<size_t>(threads), 0.0f);
  auto start = std::chrono::steady_clock::now();
  parallel_run(threads, [&](int thread) { results[static_cast<size_t>(thread)] = choice.loop(iterations); });
  auto stop = std::chrono::steady_clock::now();
  float total = 0.0f;
  for (float value : results) total += value;
  sink.store(total, std::memory_order_relaxed);
  return std::chrono::duration<double>(stop - start).count();
}

}  // namespace

Status measure_fma_peak(int threads, double min_seconds, FmaPeakResult* result) {
  LMCL_CHECK_ARG(result != nullptr, "result must not be null");
  LMCL_CHECK_ARG(threads >= 1 && threads <= num_threads(),
                 "threads must be in 1.." + std::to_string(num_threads()) + " (the engine's thread count), got " +
                     std::to_string(threads));
  LMCL_CHECK_ARG(min_seconds > 0.0 && min_seconds <= 10.0,
                 "minSeconds must be in (0, 10], got " + std::to_string(min_seconds));
  const LoopChoice choice = pick_loop();
  // Calibrate: double the trip count until one repeat lasts min_seconds (also warms the clock up
  // out of its idle state and brings the pool's threads in).
  int64_t iterations = 1024;
  double seconds = time_repeat(choice, threads, iterations);
  while (seconds < min_seconds && iterations < (int64_t{1} << 40)) {
    iterations *= 2;
    seconds = time_repeat(choice, threads, iterations);
  }
  // Best of three: interruptions only ever make a repeat slower.
  constexpr int kRepeats = 3;
  double best = seconds;
  for (int r = 0; r < kRepeats; ++r) best = std::min(best, time_repeat(choice, threads, iterations));
  if (!(best > 0.0)) return internal_error("the FMA loop took no measurable time");
  const double flops = static_cast<double>(threads) * kChains * choice.lanes * 2.0 * static_cast<double>(iterations);
  result->gflops = flops / best / 1e9;
  result->seconds = best;
  result->iterations = iterations;
  result->threads = threads;
  result->lanes = choice.lanes;
  result->chains = kChains;
  result->simd = simd_level_name(simd_level());
  return Status::ok();
}

}  // namespace cpu
}  // namespace lmcl
