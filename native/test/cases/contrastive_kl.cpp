// Parity cases for the contrastive_kl kernels (native/src/cpu/contrastive_kl.cpp, native/src/cuda/contrastive_kl.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
#include "../driver.h"

namespace lmcl {
namespace driver {

void add_contrastive_kl_cases(std::vector<OpCase>& list) {
  (void)list;  // no cases yet
}

}  // namespace driver
}  // namespace lmcl
