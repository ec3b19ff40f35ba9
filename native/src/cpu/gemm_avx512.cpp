// AVX-512 micro-kernels for gemm.cpp and conv2d.cpp (contracts in include/lmcl/gemm.h).
//
// Register tile MR x NR = 8 x 32: 16 zmm accumulators; per k step 2 vector loads of B and 8
// broadcasts of A feed 16 FMAs, which the two FMA pipes retire in 8 cycles while the loads need
// 5. 8 rows divide the conv channel counts (16/32/64) exactly. The edge columns of a tile use
// masked loads/stores, so the indirect kernel never reads past the n_eff floats of a B row.
// Dot kernel: 4 x 6 tile of 16-lane accumulators over the contiguous reduction axis.
// Row-gather kernel (conv2d weight gradient): the same 8 x 32 tile, A broadcast from 8 rows read
// in place through an offset table, B from a packed 32-wide panel; AVX-512 only (other levels
// leave it null and conv2d falls back to the dot kernel).
// Compiled with function target attributes so the rest of the build stays portable; only called
// when simd_level() == kAvx512. Tested against float64 references in test/native/gemm.test.ts and
// test/native/conv2d.test.ts (LMCL_CPU_KERNELS=avx512).
// GCC 12 warns about the intentionally undefined vectors inside some AVX-512 intrinsics.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <utility>

#include "lmcl/gemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LMCL_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,fma")))

namespace lmcl {
namespace cpu {
namespace gemm_detail {
namespace {

constexpr int kMr = 8;
constexpr int kNv = 2;
constexpr int kNr = 16 * kNv;

LMCL_AVX512 inline __mmask16 tail_mask(int remaining) {
  if (remaining >= 16) return 0xFFFF;
  if (remaining <= 0) return 0;
  return static_cast<__mmask16>((1u << remaining) - 1u);
}

template <bool kIndirect, bool kFull>
LMCL_AVX512 inline void kernel_body(int64_t kc, const float* a, const float* b, const int64_t* offsets, float* c,
                                    int64_t ldc, int m_eff, int n_eff, float alpha, float beta) {
  __m512 acc[kMr][kNv];
#pragma GCC unroll 8
  for (int i = 0; i < kMr; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < kNv; ++v) acc[i][v] = _mm512_setzero_ps();
  __mmask16 masks[kNv];
#pragma GCC unroll 2
  for (int v = 0; v < kNv; ++v) masks[v] = tail_mask(n_eff - 16 * v);

  for (int64_t p = 0; p < kc; ++p) {
    const float* row = kIndirect ? b + offsets[p] : b + p * kNr;
    __m512 bv[kNv];
#pragma GCC unroll 2
    for (int v = 0; v < kNv; ++v) {
      bv[v] = kFull ? _mm512_loadu_ps(row + 16 * v) : _mm512_maskz_loadu_ps(masks[v], row + 16 * v);
    }
    const float* ap = a + p * kMr;
#pragma GCC unroll 8
    for (int i = 0; i < kMr; ++i) {
      __m512 av = _mm512_set1_ps(ap[i]);
#pragma GCC unroll 2
      for (int v = 0; v < kNv; ++v) acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
    }
  }

  const __m512 alpha_v = _mm512_set1_ps(alpha);
  const __m512 beta_v = _mm512_set1_ps(beta);
#pragma GCC unroll 8
  for (int i = 0; i < kMr; ++i) {
    if (i >= m_eff) break;
    float* cr = c + i * ldc;
#pragma GCC unroll 2
    for (int v = 0; v < kNv; ++v) {
      __m512 r = alpha == 1.0f ? acc[i][v] : _mm512_mul_ps(alpha_v, acc[i][v]);
      if (kFull) {
        if (beta != 0.0f) r = _mm512_fmadd_ps(beta_v, _mm512_loadu_ps(cr + 16 * v), r);
        _mm512_storeu_ps(cr + 16 * v, r);
      } else {
        if (masks[v] == 0) continue;
        if (beta != 0.0f) r = _mm512_fmadd_ps(beta_v, _mm512_maskz_loadu_ps(masks[v], cr + 16 * v), r);
        _mm512_mask_storeu_ps(cr + 16 * v, masks[v], r);
      }
    }
  }
}

LMCL_AVX512 void packed_kernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m_eff,
                               int n_eff, float alpha, float beta) {
  if (n_eff == kNr) kernel_body<false, true>(kc, a, b, nullptr, c, ldc, m_eff, n_eff, alpha, beta);
  else kernel_body<false, false>(kc, a, b, nullptr, c, ldc, m_eff, n_eff, alpha, beta);
}

LMCL_AVX512 void indirect_kernel(int64_t kc, const float* a, const float* b, const int64_t* offsets, float* c,
                                 int64_t ldc, int m_eff, int n_eff, float alpha, float beta) {
  if (n_eff == kNr) kernel_body<true, true>(kc, a, b, offsets, c, ldc, m_eff, n_eff, alpha, beta);
  else kernel_body<true, false>(kc, a, b, offsets, c, ldc, m_eff, n_eff, alpha, beta);
}

// ---- row-gather kernel ------------------------------------------------------------------------

template <int MR, int NV>
LMCL_AVX512 inline void rows_body(int64_t length, int64_t images, const float* a, const int64_t* a_offsets,
                                  int64_t a_image, const float* b, float* c, int64_t ldc, int m_eff, int n_eff) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  const float* rows[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) rows[i] = a + a_offsets[i < m_eff ? i : 0];  // missing rows: re-read row 0
  for (int64_t image = 0; image < images; ++image) {
    for (int64_t l = 0; l < length; ++l) {
      __m512 bv[NV];
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b + 16 * v);
      b += 16 * NV;
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m512 av = _mm512_set1_ps(rows[i][l]);
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) rows[i] += a_image;
  }
  __mmask16 masks[NV];
#pragma GCC unroll 2
  for (int v = 0; v < NV; ++v) masks[v] = tail_mask(n_eff - 16 * v);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    if (i >= m_eff) break;
    float* cr = c + i * ldc;
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) {
      if (masks[v] == 0) continue;
      const __m512 r = _mm512_add_ps(_mm512_maskz_loadu_ps(masks[v], cr + 16 * v), acc[i][v]);
      _mm512_mask_storeu_ps(cr + 16 * v, masks[v], r);
    }
  }
}

LMCL_AVX512 void rows_kernel(int64_t length, int64_t images, const float* a, const int64_t* a_offsets,
                             int64_t a_image, const float* b, float* c, int64_t ldc, int m_eff, int n_eff) {
  rows_body<kMr, kNv>(length, images, a, a_offsets, a_image, b, c, ldc, m_eff, n_eff);
}

// ---- dot kernel ---------------------------------------------------------------------------

constexpr int kDotRa = 4;
constexpr int kDotRb = 6;

template <int RA, int RB>
LMCL_AVX512 void dot_tile(int64_t length, int64_t images, const float* a, int64_t a_row, int64_t a_image,
                          const float* b, const int64_t* offsets, int64_t b_image, float* out, int64_t ldo) {
  __m512 acc[RA][RB];
#pragma GCC unroll 4
  for (int i = 0; i < RA; ++i)
#pragma GCC unroll 6
    for (int j = 0; j < RB; ++j) acc[i][j] = _mm512_setzero_ps();
  const int64_t full = length & ~int64_t(15);
  const __mmask16 tail = tail_mask(static_cast<int>(length - full));
  for (int64_t image = 0; image < images; ++image) {
    const float* pa[RA];
    const float* pb[RB];
#pragma GCC unroll 4
    for (int i = 0; i < RA; ++i) pa[i] = a + i * a_row + image * a_image;
#pragma GCC unroll 6
    for (int j = 0; j < RB; ++j) pb[j] = b + offsets[j] + image * b_image;
    for (int64_t l = 0; l < full; l += 16) {
      __m512 av[RA];
#pragma GCC unroll 4
      for (int i = 0; i < RA; ++i) av[i] = _mm512_loadu_ps(pa[i] + l);
#pragma GCC unroll 6
      for (int j = 0; j < RB; ++j) {
        __m512 bv = _mm512_loadu_ps(pb[j] + l);
#pragma GCC unroll 4
        for (int i = 0; i < RA; ++i) acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
      }
    }
    if (full < length) {
      __m512 av[RA];
#pragma GCC unroll 4
      for (int i = 0; i < RA; ++i) av[i] = _mm512_maskz_loadu_ps(tail, pa[i] + full);
#pragma GCC unroll 6
      for (int j = 0; j < RB; ++j) {
        __m512 bv = _mm512_maskz_loadu_ps(tail, pb[j] + full);
#pragma GCC unroll 4
        for (int i = 0; i < RA; ++i) acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
      }
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < RA; ++i)
#pragma GCC unroll 6
    for (int j = 0; j < RB; ++j) out[i * ldo + j] += _mm512_reduce_add_ps(acc[i][j]);
}

using DotTile = void (*)(int64_t, int64_t, const float*, int64_t, int64_t, const float*, const int64_t*, int64_t,
                         float*, int64_t);

template <int RA, int... RB>
constexpr void fill_row(DotTile* row, std::integer_sequence<int, RB...>) {
  ((row[RB] = &dot_tile<RA, RB + 1>), ...);
}

struct DotTable {
  DotTile tiles[kDotRa][kDotRb];
  DotTable() {
    fill_row<1>(tiles[0], std::make_integer_sequence<int, kDotRb>());
    fill_row<2>(tiles[1], std::make_integer_sequence<int, kDotRb>());
    fill_row<3>(tiles[2], std::make_integer_sequence<int, kDotRb>());
    fill_row<4>(tiles[3], std::make_integer_sequence<int, kDotRb>());
  }
};

void dot_kernel(int64_t length, int64_t images, const float* a, int64_t a_row, int64_t a_image, const float* b,
                const int64_t* offsets, int64_t b_image, float* out, int64_t ldo, int ra, int rb) {
  static const DotTable table;
  table.tiles[ra - 1][rb - 1](length, images, a, a_row, a_image, b, offsets, b_image, out, ldo);
}

}  // namespace

const MicroKernels* avx512_micro_kernels() {
  static const MicroKernels kernels{SimdLevel::kAvx512, kMr, kNr, kDotRa, kDotRb, &packed_kernel,
                                    &indirect_kernel, &dot_kernel, &rows_kernel};
  return &kernels;
}

}  // namespace gemm_detail
}  // namespace cpu
}  // namespace lmcl

#else  // not x86-64 GCC/Clang: no AVX-512 kernels

namespace lmcl {
namespace cpu {
namespace gemm_detail {
const MicroKernels* avx512_micro_kernels() { return nullptr; }
}  // namespace gemm_detail
}  // namespace cpu
}  // namespace lmcl

#endif
