// Parity cases for the layout kernels (native/src/cpu/layout.cpp, native/src/cuda/layout.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
#include "../driver.h"

namespace lmcl {
namespace driver {

void add_layout_cases(std::vector<OpCase>& list) {
  (void)list;  // no cases yet
}

}  // namespace driver
}  // namespace lmcl
