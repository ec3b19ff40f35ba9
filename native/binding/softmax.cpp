// Bindings for the softmax kernels (native/src/cpu/softmax.cpp).
#include "args.h"

namespace lmcl {
namespace binding {

void register_softmax(Napi::Env, Napi::Object) {}

}  // namespace binding
}  // namespace lmcl
