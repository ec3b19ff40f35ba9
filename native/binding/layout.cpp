// Bindings for the layout kernels (native/src/cpu/layout.cpp).
#include "args.h"

namespace lmcl {
namespace binding {

void register_layout(Napi::Env, Napi::Object) {}

}  // namespace binding
}  // namespace lmcl
