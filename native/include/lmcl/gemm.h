// Single-precision matrix multiply (CPU), and the micro-kernels that conv2d reuses.
//
//   C[m x n] = alpha * op(A)[m x k] * op(B)[k x n] + beta * C        (row-major)
//
// op(A) = A (stored m x k, leading dimension lda >= k) or A^T (A stored k x m, lda >= m);
// op(B) = B (stored k x n, ldb >= n) or B^T (B stored n x k, ldb >= k); ldc >= n.
// beta == 0 ignores C's previous contents (NaN included). Blocked BLIS-style: A and B panels are
// packed (MC/KC/NC cache blocking) and an MR x NR register-tile micro-kernel (AVX-512, AVX2 or
// portable, chosen at run time by lmcl::simd_level()) does the arithmetic. Threaded over disjoint
// blocks of C; every element's k-reduction runs on one thread in a fixed order, so results are
// bit-identical across runs with the same inputs, SIMD level and thread count.
#pragma once

#include <cstdint>

#include "lmcl/cpu_features.h"
#include "lmcl/status.h"

namespace lmcl {

// The argument checks both devices' gemm make first (sizes >= 0, leading dimensions, null
// operands where they are read), with the messages the tests match.
Status validate_gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                     const float* b, int64_t ldb, const float* c, int64_t ldc);

namespace cpu {

Status gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
            int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// batch independent products: matrix i uses a + i*stride_a, b + i*stride_b, c + i*stride_c.
Status gemm_strided_batched(bool transpose_a, bool transpose_b, int64_t batch, int64_t m, int64_t n, int64_t k,
                            float alpha, const float* a, int64_t lda, int64_t stride_a, const float* b,
                            int64_t ldb, int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c);

// ---- internal: micro-kernels shared with conv2d (not part of the public op surface) ----------
namespace gemm_detail {

// C[m_eff x n_eff] (row stride ldc) = alpha * sum_{p<kc} Apack[p][0..m_eff) (x) Brow_p[0..n_eff)
//                                     + beta * C            (beta == 0: C is not read)
// Apack: kc rows of `mr` floats (rows >= m_eff zero-padded). Packed kernel: B row p at b + p*nr.
// Indirect kernel: B row p at b + b_offsets[p]; only the first n_eff floats of a row are read.
using PackedKernel = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int m_eff,
                              int n_eff, float alpha, float beta);
using IndirectKernel = void (*)(int64_t kc, const float* a, const float* b, const int64_t* b_offsets, float* c,
                                int64_t ldc, int m_eff, int n_eff, float alpha, float beta);
// Inner-product tile: out[i*ldo + j] += sum_{img<images} sum_{l<length} A_i[l] * B_j[l] for
// i < ra, j < rb, where A_i = a + i*a_row + img*a_image and B_j = b + b_offsets[j] + img*b_image.
// Each output element's sum is formed in a fixed order (deterministic).
using DotKernel = void (*)(int64_t length, int64_t images, const float* a, int64_t a_row, int64_t a_image,
                           const float* b, const int64_t* b_offsets, int64_t b_image, float* out, int64_t ldo,
                           int ra, int rb);

// Row-gather kernel (long reductions, e.g. the conv2d weight gradient):
//   C[i*ldc + j] += sum_{img<images} sum_{l<length} A_i[img*a_image + l] * Bpack[(img*length + l)*nr + j]
// for i < m_eff (<= mr), j < n_eff (<= nr), A_i = a + a_offsets[i]. A rows are read in place (no
// packing; only rows i < m_eff, only their first `length` floats per image); Bpack rows are nr
// floats wide. Each C element's sum is formed in a fixed order, then added to C once.
using RowsKernel = void (*)(int64_t length, int64_t images, const float* a, const int64_t* a_offsets,
                            int64_t a_image, const float* b, float* c, int64_t ldc, int m_eff, int n_eff);

struct MicroKernels {
  SimdLevel level;
  int mr, nr;          // register tile of the packed/indirect kernels
  int dot_ra, dot_rb;  // largest tile of the dot kernel
  PackedKernel packed;
  IndirectKernel indirect;
  DotKernel dot;
  RowsKernel rows;     // nullptr where the level has none (conv2d then uses the dot kernel)
};

// The kernels for lmcl::simd_level() (or an explicit level, for tests/benchmarks).
const MicroKernels& micro_kernels();
const MicroKernels& micro_kernels_for(SimdLevel level);

// Packs op(A)[i0.., p0..] (element (i, p) at a[i*row_stride + p*col_stride]) for m rows and kc
// columns into ceil(m/mr) panels of kc x mr floats, zero-padding the last panel.
void pack_a(const float* a, int64_t row_stride, int64_t col_stride, int64_t m, int64_t kc, int mr, float* out);
// Packs op(B) (element (p, j) at b[p*row_stride + j*col_stride]) for kc rows and n columns into
// ceil(n/nr) panels of kc x nr floats, zero-padding the last panel.
void pack_b(const float* b, int64_t row_stride, int64_t col_stride, int64_t kc, int64_t n, int nr, float* out);

}  // namespace gemm_detail
}  // namespace cpu
}  // namespace lmcl
