// Parity cases for the elementwise kernels (native/src/cpu/elementwise.cpp, native/src/cuda/elementwise.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
#include "../driver.h"

namespace lmcl {
namespace driver {
namespace {
constexpr int64_t kAffineCount = 1000;
}  // namespace

void add_elementwise_cases(std::vector<OpCase>& list) {
  list.push_back({"affine", 1e-6, 1e-6,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("x", random_floats(rng, kAffineCount)), output("out", kAffineCount)};
                  },
                  LMCL_KERNEL_CALL(affine(kAffineCount, p[0], 1.5f, -0.25f, p[1])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    for (float x : o[0].data) want[1].push_back(double(x) * 1.5 - 0.25);
                  }});
}

}  // namespace driver
}  // namespace lmcl
