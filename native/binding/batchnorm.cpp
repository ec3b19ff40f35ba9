// Bindings for the batchnorm kernels (native/src/cpu/batchnorm.cpp).
#include "args.h"

namespace lmcl {
namespace binding {

void register_batchnorm(Napi::Env, Napi::Object) {}

}  // namespace binding
}  // namespace lmcl
