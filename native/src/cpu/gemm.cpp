// Blocked single-precision GEMM driver (contract in include/lmcl/gemm.h).
//
//   C[m x n] = alpha * op(A)[m x k] * op(B)[k x n] + beta * C      (row-major)
//
// Loop nest (BLIS order): jc over n in NC blocks -> pc over k in KC blocks (pack B block into
// kc x NR panels) -> ic over m in MC blocks (pack A block into kc x MR panels) -> jr over NR
// panels (the kc x NR B panel stays in L1) -> ir over MR panels (A panels stream from L2) ->
// micro-kernel. The first k block applies the caller's beta, later ones accumulate (beta 1).
// Threads split C into disjoint column (or row) ranges aligned to NR (MR), each computing its
// full k reduction in order, so results are deterministic for a given thread count.
// Reference: test/reference/gemm_reference.ts (float64 triple loop), test/native/gemm.test.ts.
#include "lmcl/gemm.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "lmcl/allocator.h"
#include "lmcl/parallel.h"

namespace lmcl {

Status validate_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                     int64_t ldb, const float* c, int64_t ldc) {
  auto shapes = [&]() {
    return std::string(" (m=") + std::to_string(m) + ", n=" + std::to_string(n) + ", k=" + std::to_string(k) +
           ", transposeA=" + (ta ? "true" : "false") + ", transposeB=" + (tb ? "true" : "false") +
           ", lda=" + std::to_string(lda) + ", ldb=" + std::to_string(ldb) + ", ldc=" + std::to_string(ldc) + ")";
  };
  if (m < 0 || n < 0 || k < 0) return invalid_argument("gemm: sizes must be >= 0" + shapes());
  const int64_t a_cols = ta ? m : k, b_cols = tb ? k : n;
  if (lda < std::max<int64_t>(1, a_cols)) return invalid_argument("gemm: lda too small" + shapes());
  if (ldb < std::max<int64_t>(1, b_cols)) return invalid_argument("gemm: ldb too small" + shapes());
  if (ldc < std::max<int64_t>(1, n)) return invalid_argument("gemm: ldc too small" + shapes());
  if (m > 0 && n > 0) {
    if (!c) return invalid_argument("gemm: C is null" + shapes());
    if (k > 0 && (!a || !b)) return invalid_argument("gemm: A or B is null" + shapes());
  }
  return Status::ok();
}

namespace cpu {
namespace gemm_detail {

const MicroKernels* avx512_micro_kernels();
const MicroKernels* avx2_micro_kernels();
const MicroKernels* portable_micro_kernels();

const MicroKernels& micro_kernels_for(SimdLevel level) {
  if (level == SimdLevel::kAvx512) {
    if (const MicroKernels* kernels = avx512_micro_kernels()) return *kernels;
    level = SimdLevel::kAvx2;
  }
  if (level == SimdLevel::kAvx2) {
    if (const MicroKernels* kernels = avx2_micro_kernels()) return *kernels;
  }
  return *portable_micro_kernels();
}

const MicroKernels& micro_kernels() {
  static const MicroKernels& kernels = micro_kernels_for(simd_level());
  return kernels;
}

void pack_a(const float* a, int64_t row_stride, int64_t col_stride, int64_t m, int64_t kc, int mr, float* out) {
  for (int64_t i0 = 0; i0 < m; i0 += mr) {
    const int rows = static_cast<int>(std::min<int64_t>(mr, m - i0));
    float* panel = out + i0 * kc;
    if (col_stride == 1) {
      for (int i = 0; i < rows; ++i) {
        const float* src = a + (i0 + i) * row_stride;
        for (int64_t p = 0; p < kc; ++p) panel[p * mr + i] = src[p];
      }
    } else {
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = a + p * col_stride + i0 * row_stride;
        for (int i = 0; i < rows; ++i) panel[p * mr + i] = src[i * row_stride];
      }
    }
    for (int i = rows; i < mr; ++i)
      for (int64_t p = 0; p < kc; ++p) panel[p * mr + i] = 0.0f;
  }
}

void pack_b(const float* b, int64_t row_stride, int64_t col_stride, int64_t kc, int64_t n, int nr, float* out) {
  for (int64_t j0 = 0; j0 < n; j0 += nr) {
    const int cols = static_cast<int>(std::min<int64_t>(nr, n - j0));
    float* panel = out + j0 * kc;
    if (col_stride == 1) {
      for (int64_t p = 0; p < kc; ++p) {
        std::memcpy(panel + p * nr, b + p * row_stride + j0, sizeof(float) * cols);
        for (int j = cols; j < nr; ++j) panel[p * nr + j] = 0.0f;
      }
    } else {
      for (int j = 0; j < cols; ++j) {
        const float* src = b + (j0 + j) * col_stride;
        for (int64_t p = 0; p < kc; ++p) panel[p * nr + j] = src[p * row_stride];
      }
      for (int64_t p = 0; p < kc; ++p)
        for (int j = cols; j < nr; ++j) panel[p * nr + j] = 0.0f;
    }
  }
}

}  // namespace gemm_detail

namespace {

using gemm_detail::MicroKernels;

constexpr int64_t kKc = 256;
constexpr int64_t kMc = 192;
constexpr int64_t kNc = 2048;

struct Operands {
  const float* a;
  int64_t a_rs, a_cs;  // element (i, p) of op(A) at a[i*a_rs + p*a_cs]
  const float* b;
  int64_t b_rs, b_cs;  // element (p, j) of op(B) at b[p*b_rs + j*b_cs]
  float* c;
  int64_t ldc;
};

// One thread's block: rows [m0, m1) x columns [n0, n1) of C, full k.
void gemm_block(const MicroKernels& mk, const Operands& op, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                int64_t k, float alpha, float beta, float* a_pack, float* b_pack) {
  const int mr = mk.mr, nr = mk.nr;
  for (int64_t jc = n0; jc < n1; jc += kNc) {
    const int64_t nc = std::min(kNc, n1 - jc);
    for (int64_t pc = 0; pc < k; pc += kKc) {
      const int64_t kc = std::min(kKc, k - pc);
      const float beta_block = pc == 0 ? beta : 1.0f;
      gemm_detail::pack_b(op.b + pc * op.b_rs + jc * op.b_cs, op.b_rs, op.b_cs, kc, nc, nr, b_pack);
      for (int64_t ic = m0; ic < m1; ic += kMc) {
        const int64_t mc = std::min(kMc, m1 - ic);
        gemm_detail::pack_a(op.a + ic * op.a_rs + pc * op.a_cs, op.a_rs, op.a_cs, mc, kc, mr, a_pack);
        for (int64_t jr = 0; jr < nc; jr += nr) {
          const int n_eff = static_cast<int>(std::min<int64_t>(nr, nc - jr));
          const float* bp = b_pack + jr * kc;
          for (int64_t ir = 0; ir < mc; ir += mr) {
            const int m_eff = static_cast<int>(std::min<int64_t>(mr, mc - ir));
            mk.packed(kc, a_pack + ir * kc, bp, op.c + (ic + ir) * op.ldc + jc + jr, op.ldc, m_eff, n_eff, alpha,
                      beta_block);
          }
        }
      }
    }
  }
}

void scale_c(int64_t m, int64_t n, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    if (beta == 0.0f) std::memset(row, 0, sizeof(float) * n);
    else if (beta != 1.0f)
      for (int64_t j = 0; j < n; ++j) row[j] *= beta;
  }
}


}  // namespace

Status gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
            int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  LMCL_RETURN_IF_ERROR(validate_gemm(transpose_a, transpose_b, m, n, k, a, lda, b, ldb, c, ldc));
  if (m == 0 || n == 0) return Status::ok();
  if (k == 0 || alpha == 0.0f) {
    scale_c(m, n, beta, c, ldc);
    return Status::ok();
  }
  const MicroKernels& mk = gemm_detail::micro_kernels();
  Operands op{a, transpose_a ? 1 : lda, transpose_a ? lda : 1, b, transpose_b ? 1 : ldb, transpose_b ? ldb : 1,
              c, ldc};

  // Split C along its longer side, in whole register tiles, into parts: one with a single
  // thread, else up to kChunksPerThread per thread, claimed dynamically (parallel_parts), so a
  // thread sharing its core with another process does fewer. Every element of C is computed the
  // same way whatever the split (the k order is fixed), so the bits do not depend on it.
  const double flops = 2.0 * m * n * k;
  const int pool_threads = flops < 2.0e6 ? 1 : num_threads();
  const bool split_n = n >= m;
  const int64_t unit = split_n ? mk.nr : mk.mr;
  const int64_t units = ((split_n ? n : m) + unit - 1) / unit;
  const int64_t wanted_parts = pool_threads > 1 ? static_cast<int64_t>(pool_threads) * kChunksPerThread : 1;
  // Parts of at least two tiles each, so that the A panel a part packs is shared by some work.
  const int parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(wanted_parts, std::max<int64_t>(
      std::min<int64_t>(pool_threads, units), units / 2))));

  const int64_t kc_max = std::min(kKc, k);
  const int64_t a_floats = ((std::min(kMc, m) + mk.mr - 1) / mk.mr) * mk.mr * kc_max;
  const int64_t b_floats = ((std::min(kNc, n) + mk.nr - 1) / mk.nr) * mk.nr * kc_max;
  ScratchBuffer workspace(sizeof(float) * static_cast<size_t>(parts) * (a_floats + b_floats));
  if (!workspace.ok()) return out_of_memory("gemm: cannot allocate packing workspace");

  auto body = [&](int part) {
    float* a_pack = workspace.floats() + part * (a_floats + b_floats);
    float* b_pack = a_pack + a_floats;
    const int64_t per = units / parts, extra = units % parts;
    const int64_t u0 = part * per + std::min<int64_t>(part, extra);
    const int64_t u1 = u0 + per + (part < extra ? 1 : 0);
    if (split_n) {
      const int64_t n0 = u0 * unit, n1 = std::min(n, u1 * unit);
      if (n0 < n1) gemm_block(mk, op, 0, m, n0, n1, k, alpha, beta, a_pack, b_pack);
    } else {
      const int64_t m0 = u0 * unit, m1 = std::min(m, u1 * unit);
      if (m0 < m1) gemm_block(mk, op, m0, m1, 0, n, k, alpha, beta, a_pack, b_pack);
    }
  };
  if (parts == 1) body(0);
  else parallel_parts(parts, body);
  return Status::ok();
}

Status gemm_strided_batched(bool transpose_a, bool transpose_b, int64_t batch, int64_t m, int64_t n, int64_t k,
                            float alpha, const float* a, int64_t lda, int64_t stride_a, const float* b,
                            int64_t ldb, int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c) {
  if (batch < 0) return invalid_argument("gemm_strided_batched: batch must be >= 0, got " + std::to_string(batch));
  for (int64_t i = 0; i < batch; ++i) {
    LMCL_RETURN_IF_ERROR(gemm(transpose_a, transpose_b, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb,
                              beta, c + i * stride_c, ldc));
  }
  return Status::ok();
}

}  // namespace cpu
}  // namespace lmcl
