// Parity cases for the gemm kernels (native/src/cpu/gemm.cpp, native/src/cuda/gemm.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
#include "../driver.h"

namespace lmcl {
namespace driver {
namespace {
constexpr int64_t kM = 13, kN = 17, kK = 29;
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
}

}  // namespace driver
}  // namespace lmcl
