// Bindings for the sgd kernels (native/src/cpu/sgd.cpp).
#include "args.h"

namespace lmcl {
namespace binding {

void register_sgd(Napi::Env, Napi::Object) {}

}  // namespace binding
}  // namespace lmcl
