// Parity cases for the gemm kernels (native/src/cpu/gemm.cpp, native/src/cuda/gemm.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
//
// The reference is the formula C = alpha·op(A)·op(B) + beta·C summed in double. C's elements
// inside the m x n product are NaN-poisoned when beta == 0 (they must be ignored) and random
// otherwise; the padding columns n..ldc-1 of every row and the gaps between batched matrices are
// random and must come back unchanged. Tolerance: |error| <= atol + rtol·|want| with rtol 1e-5
// and atol growing with k (float accumulation over k terms of size <= 4): 1e-5 for k < 30, 5e-5
// for the large batched products with k ~ 30-40 (many elements, so the tail of the error), 1e-4
// up to a few hundred, 5e-4 for k ~ 500 (one float fmaf chain per element on the GPU).
// The batched cases with at least 132 tiles of 128 x 128 (batch · ceil(m/128) · ceil(n/128))
// take the GPU's 128 x 128 path on A100/H100-class cards (one per transpose combination); the
// others the 64 x 64 path. The "tf32 ..." cases repeat them with matmul precision 'high' (the TF32
// tensor-core kernels on CUDA) on exactly representable inputs (see the table).
#include <cmath>
#include <utility>

#include "../driver.h"
#include "lmcl/matmul_precision.h"

namespace lmcl {
namespace driver {
namespace {
constexpr int64_t kM = 13, kN = 17, kK = 29;

// One gemm (batch == 0: the plain entry point) or strided batched product.
struct GemmCase {
  const char* name;
  bool transpose_a, transpose_b;
  int64_t batch, m, n, k;
  float alpha, beta;
  int64_t lda_pad, ldb_pad, ldc_pad;  // leading dimension = stored row length + pad
  int64_t gap;                        // floats between consecutive matrices (batched)
  double atol;
  bool tf32 = false;  // run with matmul precision 'high' (TF32 tensor cores on CUDA; the CPU ignores it)
};

constexpr GemmCase kGemmCases[] = {
    {"gemm nn", false, false, 0, 37, 45, 70, 1.0f, 0.0f, 0, 0, 0, 0, 1e-4},
    {"gemm tn alpha beta", true, false, 0, 33, 65, 19, -0.75f, 0.5f, 0, 0, 0, 0, 1e-5},
    {"gemm nt ld", false, true, 0, 66, 31, 47, 1.5f, -1.25f, 3, 5, 7, 0, 1e-4},
    {"gemm tt ld", true, true, 0, 70, 9, 131, 2.0f, 0.0f, 1, 2, 11, 0, 1e-4},
    {"gemm nn ld beta1", false, false, 0, 129, 130, 17, 1.0f, 1.0f, 4, 1, 3, 0, 1e-5},
    {"gemm tn vector", true, false, 0, 1, 257, 64, 0.5f, 0.0f, 2, 0, 0, 0, 1e-4},
    {"gemm nt column", false, true, 0, 200, 1, 9, 1.0f, 2.0f, 0, 3, 0, 0, 1e-5},
    {"gemm k0 beta", false, false, 0, 11, 19, 0, 1.0f, 0.5f, 1, 2, 3, 0, 1e-6},
    {"gemm alpha0 beta0", true, true, 0, 9, 23, 7, 0.0f, 0.0f, 0, 0, 2, 0, 1e-6},
    {"gemm batched nt beta", false, true, 20, 260, 300, 33, 1.0f, 0.25f, 1, 0, 2, 5, 5e-5},
    {"gemm batched tt", true, true, 24, 130, 257, 40, -1.0f, 0.0f, 0, 3, 0, 0, 5e-5},
    {"gemm batched nn", false, false, 33, 130, 129, 24, 0.75f, -0.5f, 2, 1, 0, 3, 1e-5},
    {"gemm batched tn", true, false, 40, 129, 140, 12, 1.0f, 0.0f, 1, 0, 5, 0, 1e-5},
    {"gemm batched tn long k", true, false, 3, 65, 129, 517, 1.0f, 0.0f, 2, 1, 1, 9, 5e-4},
    // The TF32 path, on inputs it represents exactly (multiples of 1/64 in [-2, 2]: 8 significant
    // bits), where every product and partial sum is exact in FP32 too (|sum| < 2^12 in steps of
    // 2^-12: 24 bits), so CPU, FP32 and TF32 paths all give the exact sum: only alpha/beta round.
    {"tf32 gemm nn", false, false, 0, 37, 45, 70, 1.0f, 0.0f, 0, 0, 0, 0, 1e-5, true},
    {"tf32 gemm tn alpha beta", true, false, 0, 33, 65, 19, -0.75f, 0.5f, 0, 0, 0, 0, 1e-5, true},
    {"tf32 gemm nt ld", false, true, 0, 66, 31, 47, 1.5f, -1.25f, 3, 5, 7, 0, 1e-5, true},
    {"tf32 gemm tt ld", true, true, 0, 70, 9, 131, 2.0f, 0.0f, 1, 2, 11, 0, 1e-5, true},
    {"tf32 batched nt beta", false, true, 20, 260, 300, 33, 1.0f, 0.25f, 1, 0, 2, 5, 1e-5, true},
    {"tf32 batched tt", true, true, 24, 130, 257, 40, -1.0f, 0.0f, 0, 3, 0, 0, 1e-5, true},
    {"tf32 batched nn", false, false, 33, 130, 129, 24, 0.75f, -0.5f, 2, 1, 0, 3, 1e-5, true},
    {"tf32 batched tn", true, false, 40, 129, 140, 12, 1.0f, 0.0f, 1, 0, 5, 0, 1e-5, true},
    {"tf32 batched tn long k", true, false, 3, 65, 129, 517, 1.0f, 0.0f, 2, 1, 1, 9, 1e-4, true},
};

// Operands TF32 holds exactly: multiples of 1/64 (the random values in [-2, 2] rounded).
std::vector<float> tf32_exact(std::vector<float> values) {
  for (float& v : values) v = std::round(v * 64.0f) / 64.0f;
  return values;
}

// Runs `call` with the matmul precision 'high' for a TF32 case, then restores the setting.
template <typename Call>
Status with_precision(bool tf32, const Call& call) {
  const MatmulPrecision before = matmul_precision();
  set_matmul_precision(tf32 ? MatmulPrecision::kHigh : MatmulPrecision::kHighest);
  const Status status = call();
  set_matmul_precision(before);
  return status;
}

template <int kIndex>
void add_gemm_case(std::vector<OpCase>& list) {
  static constexpr const GemmCase& G = kGemmCases[kIndex];
  // Stored shapes: A is m x k (k x m transposed), B is k x n (n x k transposed).
  struct Layout {
    int64_t a_rows, lda, b_rows, ldb, ldc, stride_a, stride_b, stride_c, matrices;
  };
  static constexpr auto layout = []() {
    Layout l{};
    l.a_rows = G.transpose_a ? G.k : G.m;
    l.lda = (G.transpose_a ? G.m : G.k) + G.lda_pad;
    l.b_rows = G.transpose_b ? G.n : G.k;
    l.ldb = (G.transpose_b ? G.k : G.n) + G.ldb_pad;
    l.ldc = G.n + G.ldc_pad;
    l.stride_a = l.a_rows * l.lda + G.gap;
    l.stride_b = l.b_rows * l.ldb + G.gap;
    l.stride_c = G.m * l.ldc + G.gap;
    l.matrices = G.batch > 0 ? G.batch : 1;
    return l;
  };
  static constexpr Layout L = layout();
  list.push_back({G.name, 1e-5, G.atol,
                  [](Rng& rng) {
                    std::vector<float> c = random_floats(rng, static_cast<size_t>(L.matrices * L.stride_c));
                    if (G.beta == 0.0f) {  // inside the product: poison that must be ignored
                      for (int64_t t = 0; t < L.matrices; ++t)
                        for (int64_t i = 0; i < G.m; ++i)
                          for (int64_t j = 0; j < G.n; ++j)
                            c[t * L.stride_c + i * L.ldc + j] = std::numeric_limits<float>::quiet_NaN();
                    }
                    std::vector<float> a = random_floats(rng, static_cast<size_t>(L.matrices * L.stride_a));
                    std::vector<float> b = random_floats(rng, static_cast<size_t>(L.matrices * L.stride_b));
                    if (G.tf32) {
                      a = tf32_exact(std::move(a));
                      b = tf32_exact(std::move(b));
                    }
                    return std::vector<HostOperand>{input("a", std::move(a)), input("b", std::move(b)),
                                                    HostOperand{"c", std::move(c), true}};
                  },
                  LMCL_KERNEL_CALL(with_precision(G.tf32, [&] {
                    return G.batch > 0 ? gemm_strided_batched(G.transpose_a, G.transpose_b, G.batch, G.m, G.n, G.k, G.alpha,
                                                              p[0], L.lda, L.stride_a, p[1], L.ldb, L.stride_b, G.beta, p[2],
                                                              L.ldc, L.stride_c)
                                       : gemm(G.transpose_a, G.transpose_b, G.m, G.n, G.k, G.alpha, p[0], L.lda, p[1], L.ldb,
                                              G.beta, p[2], L.ldc);
                  })),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    const std::vector<float>& a = o[0].data;
                    const std::vector<float>& b = o[1].data;
                    want[2].assign(o[2].data.begin(), o[2].data.end());  // padding and gaps: unchanged
                    for (int64_t t = 0; t < L.matrices; ++t)
                      for (int64_t i = 0; i < G.m; ++i)
                        for (int64_t j = 0; j < G.n; ++j) {
                          double sum = 0;
                          for (int64_t q = 0; q < G.k; ++q) {
                            const double av = a[t * L.stride_a + (G.transpose_a ? q * L.lda + i : i * L.lda + q)];
                            const double bv = b[t * L.stride_b + (G.transpose_b ? j * L.ldb + q : q * L.ldb + j)];
                            sum += av * bv;
                          }
                          const int64_t at = t * L.stride_c + i * L.ldc + j;
                          double value = double(G.alpha) * sum;
                          if (G.beta != 0.0f) value += double(G.beta) * o[2].data[at];
                          want[2][at] = value;
                        }
                  }});
}

template <int... kIndices>
void add_gemm_table(std::vector<OpCase>& list, std::integer_sequence<int, kIndices...>) {
  (add_gemm_case<kIndices>(list), ...);
}

}  // namespace

void add_gemm_cases(std::vector<OpCase>& list) {
  list.push_back({"gemm transpose_b", 1e-5, 1e-5,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("a", random_floats(rng, kM * kK)), input("b", random_floats(rng, kN * kK)),
                                                    output("c", kM * kN)};
                  },
                  // beta = 0: C's NaN poison must be ignored, not propagated
                  LMCL_KERNEL_CALL(gemm(false, true, kM, kN, kK, 1.0f, p[0], kK, p[1], kK, 0.0f, p[2], kN)),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    for (int64_t i = 0; i < kM; ++i)
                      for (int64_t j = 0; j < kN; ++j) {
                        double sum = 0;
                        for (int64_t k = 0; k < kK; ++k) sum += double(o[0].data[i * kK + k]) * o[1].data[j * kK + k];
                        want[2].push_back(sum);
                      }
                  }});
  add_gemm_table(list, std::make_integer_sequence<int, sizeof(kGemmCases) / sizeof(kGemmCases[0])>());
}

}  // namespace driver
}  // namespace lmcl
