// Parity cases for the softmax kernels (native/src/cpu/softmax.cpp, native/src/cuda/softmax.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
#include "../driver.h"

namespace lmcl {
namespace driver {
namespace {
constexpr int64_t kRows = 7, kCols = 33;
}  // namespace

void add_softmax_cases(std::vector<OpCase>& list) {
  list.push_back({"softmax_forward rows", 1e-5, 1e-7,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("x", random_floats(rng, kRows * kCols, -8, 8)),
                                                    output("y", kRows * kCols)};
                  },
                  LMCL_KERNEL_CALL(softmax_forward(false, kRows, kCols, 1, p[0], p[1])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    for (int64_t r = 0; r < kRows; ++r) {
                      const float* x = o[0].data.data() + r * kCols;
                      double top = -INFINITY, sum = 0;
                      for (int64_t c = 0; c < kCols; ++c) top = std::max(top, double(x[c]));
                      for (int64_t c = 0; c < kCols; ++c) sum += std::exp(double(x[c]) - top);
                      for (int64_t c = 0; c < kCols; ++c) want[1].push_back(std::exp(double(x[c]) - top) / sum);
                    }
                  }});
}

}  // namespace driver
}  // namespace lmcl
