// Bindings for the pool kernels (native/src/cpu/pool.cpp).
#include "args.h"

namespace lmcl {
namespace binding {

void register_pool(Napi::Env, Napi::Object) {}

}  // namespace binding
}  // namespace lmcl
