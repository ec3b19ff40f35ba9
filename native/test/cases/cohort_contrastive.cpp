// Parity cases for the cohort_contrastive kernels (native/src/cpu/cohort_contrastive.cpp, native/src/cuda/cohort_contrastive.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
#include "../driver.h"

namespace lmcl {
namespace driver {

void add_cohort_contrastive_cases(std::vector<OpCase>& list) {
  (void)list;  // no cases yet
}

}  // namespace driver
}  // namespace lmcl
