// Parity cases for the memory_bank kernels (native/src/cpu/memory_bank.cpp, native/src/cuda/memory_bank.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
#include "../driver.h"

namespace lmcl {
namespace driver {

void add_memory_bank_cases(std::vector<OpCase>& list) {
  (void)list;  // no cases yet
}

}  // namespace driver
}  // namespace lmcl
