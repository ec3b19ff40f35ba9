// AVX2/FMA and portable micro-kernels for gemm.cpp and conv2d.cpp (contracts in
// include/lmcl/gemm.h).
//
// AVX2: 6 x 16 register tile (12 ymm accumulators; 2 loads of B + 6 broadcasts of A per 12
// FMAs), masked loads/stores on the edge columns. Portable: plain C++ loops over a 4 x 16 tile of
// float accumulators (the compiler vectorises the 16-wide rows with whatever the baseline ISA has).
// The dot kernel (inner products along a contiguous axis) is written once as lane-parallel C++
// (8 independent partial sums per output, combined in a fixed order) and compiled twice: with the
// AVX2 target attribute and for the baseline ISA.
// Tested against float64 references in test/native/gemm.test.ts and test/native/conv2d.test.ts,
// which run each path through LMCL_CPU_KERNELS=avx2|portable.
#include <cstring>

#include "lmcl/gemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define LMCL_HAVE_X86 1
#define LMCL_AVX2 __attribute__((target("avx2,fma")))
#else
#define LMCL_HAVE_X86 0
#endif

namespace lmcl {
namespace cpu {
namespace gemm_detail {
namespace {

// ---- shared lane-parallel dot tile (inlined into each ISA wrapper) ----------------------------

constexpr int kDotRa = 4;
constexpr int kDotRb = 4;
constexpr int kLanes = 8;

template <int RA, int RB>
__attribute__((always_inline)) inline void dot_tile_generic(int64_t length, int64_t images, const float* a,
                                                            int64_t a_row, int64_t a_image, const float* b,
                                                            const int64_t* offsets, int64_t b_image, float* out,
                                                            int64_t ldo) {
  float acc[RA][RB][kLanes];
  for (int i = 0; i < RA; ++i)
    for (int j = 0; j < RB; ++j)
      for (int t = 0; t < kLanes; ++t) acc[i][j][t] = 0.0f;
  const int64_t full = length / kLanes * kLanes;
  for (int64_t image = 0; image < images; ++image) {
    const float* pa[RA];
    const float* pb[RB];
    for (int i = 0; i < RA; ++i) pa[i] = a + i * a_row + image * a_image;
    for (int j = 0; j < RB; ++j) pb[j] = b + offsets[j] + image * b_image;
    for (int64_t l = 0; l < full; l += kLanes) {
      for (int i = 0; i < RA; ++i)
        for (int j = 0; j < RB; ++j)
          for (int t = 0; t < kLanes; ++t) acc[i][j][t] += pa[i][l + t] * pb[j][l + t];
    }
    for (int64_t l = full; l < length; ++l) {
      for (int i = 0; i < RA; ++i)
        for (int j = 0; j < RB; ++j) acc[i][j][l - full] += pa[i][l] * pb[j][l];
    }
  }
  for (int i = 0; i < RA; ++i)
    for (int j = 0; j < RB; ++j) {
      float s0 = (acc[i][j][0] + acc[i][j][4]) + (acc[i][j][2] + acc[i][j][6]);
      float s1 = (acc[i][j][1] + acc[i][j][5]) + (acc[i][j][3] + acc[i][j][7]);
      out[i * ldo + j] += s0 + s1;
    }
}

template <int RA, int RB>
void dot_tile_portable(int64_t length, int64_t images, const float* a, int64_t a_row, int64_t a_image,
                       const float* b, const int64_t* offsets, int64_t b_image, float* out, int64_t ldo) {
  dot_tile_generic<RA, RB>(length, images, a, a_row, a_image, b, offsets, b_image, out, ldo);
}

using DotTile = void (*)(int64_t, int64_t, const float*, int64_t, int64_t, const float*, const int64_t*, int64_t,
                         float*, int64_t);

#define LMCL_DOT_ROW(F, RA) {&F<RA, 1>, &F<RA, 2>, &F<RA, 3>, &F<RA, 4>}

void dot_kernel_portable(int64_t length, int64_t images, const float* a, int64_t a_row, int64_t a_image,
                         const float* b, const int64_t* offsets, int64_t b_image, float* out, int64_t ldo, int ra,
                         int rb) {
  static const DotTile table[kDotRa][kDotRb] = {
      LMCL_DOT_ROW(dot_tile_portable, 1), LMCL_DOT_ROW(dot_tile_portable, 2),
      LMCL_DOT_ROW(dot_tile_portable, 3), LMCL_DOT_ROW(dot_tile_portable, 4)};
  table[ra - 1][rb - 1](length, images, a, a_row, a_image, b, offsets, b_image, out, ldo);
}

// ---- portable packed / indirect kernels ------------------------------------------------------

constexpr int kPortableMr = 4;
constexpr int kPortableNr = 16;

template <bool kIndirect>
void portable_body(int64_t kc, const float* a, const float* b, const int64_t* offsets, float* c, int64_t ldc,
                   int m_eff, int n_eff, float alpha, float beta) {
  constexpr int MR = kPortableMr, NR = kPortableNr;
  float acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = 0.0f;
  float padded[NR];
  for (int64_t p = 0; p < kc; ++p) {
    const float* row = kIndirect ? b + offsets[p] : b + p * NR;
    if (kIndirect && n_eff < NR) {
      for (int j = 0; j < NR; ++j) padded[j] = j < n_eff ? row[j] : 0.0f;
      row = padded;
    }
    const float* ap = a + p * MR;
    for (int i = 0; i < MR; ++i) {
      const float av = ap[i];
      for (int j = 0; j < NR; ++j) acc[i][j] += av * row[j];
    }
  }
  for (int i = 0; i < m_eff; ++i) {
    float* cr = c + i * ldc;
    for (int j = 0; j < n_eff; ++j) {
      float r = alpha * acc[i][j];
      cr[j] = beta != 0.0f ? r + beta * cr[j] : r;
    }
  }
}

void portable_packed(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m_eff, int n_eff,
                     float alpha, float beta) {
  portable_body<false>(kc, a, b, nullptr, c, ldc, m_eff, n_eff, alpha, beta);
}
void portable_indirect(int64_t kc, const float* a, const float* b, const int64_t* offsets, float* c, int64_t ldc,
                       int m_eff, int n_eff, float alpha, float beta) {
  portable_body<true>(kc, a, b, offsets, c, ldc, m_eff, n_eff, alpha, beta);
}

#if LMCL_HAVE_X86
// ---- AVX2 kernels ------------------------------------------------------------------------------

constexpr int kAvx2Mr = 6;
constexpr int kAvx2Nr = 16;

LMCL_AVX2 inline __m256i avx2_mask(int remaining) {
  alignas(32) static const int32_t table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  if (remaining >= 8) remaining = 8;
  if (remaining <= 0) remaining = 0;
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(table + 8 - remaining));
}

template <bool kIndirect, bool kFull>
LMCL_AVX2 inline void avx2_body(int64_t kc, const float* a, const float* b, const int64_t* offsets, float* c,
                                int64_t ldc, int m_eff, int n_eff, float alpha, float beta) {
  constexpr int MR = kAvx2Mr;
  __m256 acc[MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  const __m256i m0 = avx2_mask(n_eff), m1 = avx2_mask(n_eff - 8);
  for (int64_t p = 0; p < kc; ++p) {
    const float* row = kIndirect ? b + offsets[p] : b + p * kAvx2Nr;
    __m256 b0, b1;
    if (kFull) {
      b0 = _mm256_loadu_ps(row);
      b1 = _mm256_loadu_ps(row + 8);
    } else {
      b0 = _mm256_maskload_ps(row, m0);
      b1 = _mm256_maskload_ps(row + 8, m1);
    }
    const float* ap = a + p * MR;
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      __m256 av = _mm256_broadcast_ss(ap + i);
      acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
    }
  }
  const __m256 alpha_v = _mm256_set1_ps(alpha), beta_v = _mm256_set1_ps(beta);
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    if (i >= m_eff) break;
    float* cr = c + i * ldc;
    __m256 r0 = _mm256_mul_ps(alpha_v, acc[i][0]);
    __m256 r1 = _mm256_mul_ps(alpha_v, acc[i][1]);
    if (kFull) {
      if (beta != 0.0f) {
        r0 = _mm256_fmadd_ps(beta_v, _mm256_loadu_ps(cr), r0);
        r1 = _mm256_fmadd_ps(beta_v, _mm256_loadu_ps(cr + 8), r1);
      }
      _mm256_storeu_ps(cr, r0);
      _mm256_storeu_ps(cr + 8, r1);
    } else {
      if (beta != 0.0f) {
        r0 = _mm256_fmadd_ps(beta_v, _mm256_maskload_ps(cr, m0), r0);
        r1 = _mm256_fmadd_ps(beta_v, _mm256_maskload_ps(cr + 8, m1), r1);
      }
      _mm256_maskstore_ps(cr, m0, r0);
      _mm256_maskstore_ps(cr + 8, m1, r1);
    }
  }
}

LMCL_AVX2 void avx2_packed(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m_eff, int n_eff,
                           float alpha, float beta) {
  if (n_eff == kAvx2Nr) avx2_body<false, true>(kc, a, b, nullptr, c, ldc, m_eff, n_eff, alpha, beta);
  else avx2_body<false, false>(kc, a, b, nullptr, c, ldc, m_eff, n_eff, alpha, beta);
}
LMCL_AVX2 void avx2_indirect(int64_t kc, const float* a, const float* b, const int64_t* offsets, float* c,
                             int64_t ldc, int m_eff, int n_eff, float alpha, float beta) {
  if (n_eff == kAvx2Nr) avx2_body<true, true>(kc, a, b, offsets, c, ldc, m_eff, n_eff, alpha, beta);
  else avx2_body<true, false>(kc, a, b, offsets, c, ldc, m_eff, n_eff, alpha, beta);
}

template <int RA, int RB>
LMCL_AVX2 void dot_tile_avx2(int64_t length, int64_t images, const float* a, int64_t a_row, int64_t a_image,
                             const float* b, const int64_t* offsets, int64_t b_image, float* out, int64_t ldo) {
  dot_tile_generic<RA, RB>(length, images, a, a_row, a_image, b, offsets, b_image, out, ldo);
}

void dot_kernel_avx2(int64_t length, int64_t images, const float* a, int64_t a_row, int64_t a_image,
                     const float* b, const int64_t* offsets, int64_t b_image, float* out, int64_t ldo, int ra,
                     int rb) {
  static const DotTile table[kDotRa][kDotRb] = {LMCL_DOT_ROW(dot_tile_avx2, 1), LMCL_DOT_ROW(dot_tile_avx2, 2),
                                                LMCL_DOT_ROW(dot_tile_avx2, 3), LMCL_DOT_ROW(dot_tile_avx2, 4)};
  table[ra - 1][rb - 1](length, images, a, a_row, a_image, b, offsets, b_image, out, ldo);
}
#endif

}  // namespace

const MicroKernels* portable_micro_kernels() {
  static const MicroKernels kernels{SimdLevel::kPortable, kPortableMr, kPortableNr, kDotRa, kDotRb,
                                    &portable_packed, &portable_indirect, &dot_kernel_portable, nullptr};
  return &kernels;
}

const MicroKernels* avx2_micro_kernels() {
#if LMCL_HAVE_X86
  static const MicroKernels kernels{SimdLevel::kAvx2, kAvx2Mr, kAvx2Nr, kDotRa, kDotRb,
                                    &avx2_packed, &avx2_indirect, &dot_kernel_avx2, nullptr};
  return &kernels;
#else
  return nullptr;
#endif
}

}  // namespace gemm_detail
}  // namespace cpu
}  // namespace lmcl
