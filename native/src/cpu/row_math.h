// Row building blocks for the CPU kernels that reduce along contiguous rows (softmax,
// cross-entropy, the contrastive losses). Internal to native/src/cpu; every function is
// LMCL_INLINE so it is compiled into each SIMD variant of its caller (simd_variants.h) and keeps
// the same operation order there: the three levels give identical bits.
//
//   exp_approx(x)          the Cephes expf polynomial, branch-free so it vectorises (~1-2 ulp);
//                          −inf → 0, NaN → NaN, overflow → inf, denormal results kept
//   row_max / row_sum / row_dot / row_exp_sum
//                          reductions in 16 independent lanes (one vector step per 16 elements),
//                          combined by a fixed tree; tails added last (row_exp_sum: one masked step)
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "simd_variants.h"

namespace lmcl {
namespace cpu {
namespace {

constexpr int kLanes = 16;
constexpr float kInfinity = std::numeric_limits<float>::infinity();

// ---- scalar building blocks (inlined into every variant) ---------------------------------------

LMCL_INLINE float pow2i(int32_t k) {  // 2^k for k in [-126, 127]
  const int32_t bits = (k + 127) << 23;
  float result;
  std::memcpy(&result, &bits, sizeof(result));
  return result;
}

// exp(x): x = n·ln2 + r with |r| <= ln2/2 (ln2 split in two so n·C1 is exact), e^r by the Cephes
// expf polynomial, 2^n applied in two halves so results down to the denormals come out right.
LMCL_INLINE float exp_approx(float x) {
  const float kHigh = 88.72283f;  // ~ log(FLT_MAX)
  const float kLow = -104.0f;     // below: the result rounds to 0
  float c = x > kLow ? x : kLow;  // maxps / minps; NaN and −inf → kLow (fixed up below)
  c = c < kHigh ? c : kHigh;
  const float kMagic = 12582912.0f;  // 1.5·2^23: (t + magic) − magic rounds t to an integer
  const float n = (c * 1.44269504088896341f + kMagic) - kMagic;
  float r = c - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  // e^r ≈ 1 + r + r²·P(r), P of degree 5 evaluated by Estrin's scheme (short dependency chains).
  const float r2 = r * r;
  const float r4 = r2 * r2;
  const float q0 = 5.0000001201e-1f + 1.6666665459e-1f * r;
  const float q1 = 4.1665795894e-2f + 8.3334519073e-3f * r;
  const float q2 = 1.3981999507e-3f + 1.9875691500e-4f * r;
  const float p = (r2 * ((q0 + r2 * q1) + r4 * q2) + r) + 1.0f;
  const int32_t k = static_cast<int32_t>(n);
  const int32_t k1 = k >> 1;
  const int32_t k2 = k - k1;
  float result = (p * pow2i(k1)) * pow2i(k2);
  result = x > kHigh ? kInfinity : result;
  result = x < kLow ? 0.0f : result;
  return x == x ? result : x;
}

LMCL_INLINE float combine_sum(float* lanes) {
  for (int width = kLanes / 2; width >= 1; width /= 2)
    for (int lane = 0; lane < width; ++lane) lanes[lane] += lanes[lane + width];
  return lanes[0];
}

LMCL_INLINE float combine_max(float* lanes) {
  for (int width = kLanes / 2; width >= 1; width /= 2)
    for (int lane = 0; lane < width; ++lane) lanes[lane] = lanes[lane + width] > lanes[lane] ? lanes[lane + width] : lanes[lane];
  return lanes[0];
}

// Max over a row, NaN ignored (a NaN still poisons the row through exp(NaN − m) later). The lane
// loop is kept rolled so GCC vectorises it as one max per 16 lanes (fully unrolled, the select
// reduction is not vectorised).
LMCL_INLINE float row_max(const float* __restrict x, int64_t n) {
  float lanes[kLanes];
  for (int lane = 0; lane < kLanes; ++lane) lanes[lane] = -kInfinity;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    LMCL_NO_UNROLL
    for (int lane = 0; lane < kLanes; ++lane) {
      const float v = x[i + lane];
      lanes[lane] = v > lanes[lane] ? v : lanes[lane];
    }
  }
  float tail = -kInfinity;
  for (; i < n; ++i) tail = x[i] > tail ? x[i] : tail;
  const float m = combine_max(lanes);
  return tail > m ? tail : m;
}

// Σ exp(x − m) in 16 lanes; stores the exponentials in y when y is not null.
LMCL_INLINE float row_exp_sum(const float* __restrict x, float m, int64_t n, float* __restrict y) {
  float lanes[kLanes] = {0};
  int64_t i = 0;
  if (y) {
    for (; i + kLanes <= n; i += kLanes) {
      LMCL_NO_UNROLL
      for (int lane = 0; lane < kLanes; ++lane) {
        const float e = exp_approx(x[i + lane] - m);
        y[i + lane] = e;
        lanes[lane] += e;
      }
    }
  } else {
    for (; i + kLanes <= n; i += kLanes) {
      LMCL_NO_UNROLL
      for (int lane = 0; lane < kLanes; ++lane) lanes[lane] += exp_approx(x[i + lane] - m);
    }
  }
  if (i < n) {  // the last partial block, as one masked vector step (exp(−inf) adds exactly 0)
    LMCL_NO_UNROLL
    for (int lane = 0; lane < kLanes; ++lane) {
      const bool inside = i + lane < n;
      const float e = exp_approx(inside ? x[i + lane] - m : -kInfinity);
      if (y && inside) y[i + lane] = e;
      lanes[lane] += e;
    }
  }
  return combine_sum(lanes);
}

LMCL_INLINE float row_dot(const float* __restrict a, const float* __restrict b, int64_t n) {
  float lanes[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    LMCL_NO_UNROLL
    for (int lane = 0; lane < kLanes; ++lane) lanes[lane] += a[i + lane] * b[i + lane];
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += a[i] * b[i];
  return combine_sum(lanes) + tail;
}

LMCL_INLINE float row_sum(const float* __restrict a, int64_t n) {
  float lanes[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    LMCL_NO_UNROLL
    for (int lane = 0; lane < kLanes; ++lane) lanes[lane] += a[i + lane];
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += a[i];
  return combine_sum(lanes) + tail;
}

}  // namespace
}  // namespace cpu
}  // namespace lmcl
