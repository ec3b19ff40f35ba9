// Parity cases for the pool kernels (native/src/cpu/pool.cpp, native/src/cuda/pool.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
#include "../driver.h"

namespace lmcl {
namespace driver {

void add_pool_cases(std::vector<OpCase>& list) {
  (void)list;  // no cases yet
}

}  // namespace driver
}  // namespace lmcl
