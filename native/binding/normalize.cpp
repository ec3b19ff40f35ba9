// Bindings for the normalize kernels (native/src/cpu/normalize.cpp).
#include "args.h"

namespace lmcl {
namespace binding {

void register_normalize(Napi::Env, Napi::Object) {}

}  // namespace binding
}  // namespace lmcl
