// Parity cases for the conv2d kernels (native/src/cpu/conv2d.cpp, native/src/cuda/conv2d.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
#include "../driver.h"

namespace lmcl {
namespace driver {

void add_conv2d_cases(std::vector<OpCase>& list) {
  (void)list;  // no cases yet
}

}  // namespace driver
}  // namespace lmcl
