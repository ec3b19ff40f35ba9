// Stubs for every lmcl::cuda:: kernel entry point, generated from lmcl/ops.def. Compiled into
// every build (CPU-only and CUDA); each stub is a weak symbol, so a real kernel in
// native/src/cuda/<stem>.cu replaces it at link time (see the header of lmcl/ops.def).
// A stub returns kNotCompiled and never aborts. LMCL_WITH_CUDA (set by CMakeLists.txt in a
// CUDA build) only changes the message.
#include <string>
#include <type_traits>

#include "lmcl/cuda_ops.h"

namespace lmcl {
namespace cuda {
namespace {

Status missing_kernel(const char* name) {
#if defined(LMCL_WITH_CUDA) && LMCL_WITH_CUDA
  return Status(StatusCode::kNotCompiled, std::string(name) + " has no CUDA kernel yet (lmcl::cuda::" + name +
                                              " is a stub; see native/include/lmcl/ops.def)");
#else
  return Status(StatusCode::kNotCompiled,
                std::string(name) +
                    ": lmcl was built without CUDA; install the CUDA toolkit (nvcc) and run "
                    "`npm run build:cuda` to use device 'cuda'");
#endif
}

}  // namespace

#define LMCL_OP(stem, name, params) \
  LMCL_WEAK Status name params { return missing_kernel(#name); }
#include "lmcl/ops.def"
#undef LMCL_OP

}  // namespace cuda

// Every op list entry has a CPU kernel with exactly the same signature.
#define LMCL_OP(stem, name, params)                                           \
  static_assert(std::is_same<decltype(&cpu::name), decltype(&cuda::name)>::value, \
                #name ": the ops.def signature differs from lmcl::cpu::" #name);
#include "lmcl/ops.def"
#undef LMCL_OP

}  // namespace lmcl
