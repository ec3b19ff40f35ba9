// Bindings for the reduction kernels (native/src/cpu/reduce.cpp).
#include "args.h"
#include "lmcl/elementwise.h"
#include "lmcl/reduce.h"

namespace lmcl {
namespace binding {
namespace {

// sumAxes(x, out, shape, axes): out = sum of x over `axes` (distinct, in range).
Napi::Value sum_axes_op(const Napi::CallbackInfo& info) {
  const char* name = "sumAxes";
  std::vector<int64_t> shape = get_int_array(info, 2, name, "shape");
  std::vector<int64_t> axes = get_int_array(info, 3, name, "axes");
  if (shape.size() > static_cast<size_t>(kMaxRank)) throw_error(info.Env(), "sumAxes: rank above 8");
  uint8_t reduce[kMaxRank] = {0};
  for (int64_t axis : axes) {
    if (axis < 0 || axis >= static_cast<int64_t>(shape.size()) || reduce[axis]) {
      throw_error(info.Env(), "sumAxes: axis " + std::to_string(axis) + " out of range or repeated for rank " +
                                  std::to_string(shape.size()));
    }
    reduce[axis] = 1;
  }
  int64_t count = 1, kept = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 0) throw_error(info.Env(), "sumAxes: negative extent");
    count *= shape[d];
    if (!reduce[d]) kept *= shape[d];
  }
  const Operand x = floats(info, 0, count, name, "x");
  const Operand out = floats(info, 1, kept, name, "out");
  const Device device = same_device(info.Env(), name, {x, out});
  throw_if_error(info.Env(), dispatch(device, cpu::sum_axes, cuda::sum_axes, static_cast<int>(shape.size()), shape.data(), reduce, x, out), name);
  return info.Env().Undefined();
}

}  // namespace

void register_reduce(Napi::Env env, Napi::Object exports) {
  exports.Set("sumAxes", Napi::Function::New(env, sum_axes_op, "sumAxes"));
}

}  // namespace binding
}  // namespace lmcl
