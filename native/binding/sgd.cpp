// Bindings for the sgd kernels (native/src/cpu/sgd.cpp).
#include "args.h"
#include "lmcl/sgd.h"

namespace lmcl {
namespace binding {
namespace {

// sgdStep(param, grad, buffer | null, count, lr, momentum, dampening, weightDecay, nesterov, maximize, firstStep)
// Updates param (and buffer) in place.
Napi::Value sgd_step_op(const Napi::CallbackInfo& info) {
  const char* name = "sgdStep";
  Napi::Env env = info.Env();
  int64_t count = get_int(info, 3, name, "count");
  SgdOptions options;
  options.lr = get_number(info, 4, name, "lr");
  options.momentum = get_number(info, 5, name, "momentum");
  options.dampening = get_number(info, 6, name, "dampening");
  options.weight_decay = get_number(info, 7, name, "weightDecay");
  options.nesterov = get_bool(info, 8, name, "nesterov");
  options.maximize = get_bool(info, 9, name, "maximize");
  bool first_step = get_bool(info, 10, name, "firstStep");
  StorageHandle* param_storage = get_storage(info, 0, name, "param");
  StorageHandle* grad_storage = get_storage(info, 1, name, "grad");
  if (param_storage == grad_storage) throw_error(env, "sgdStep: param and grad must be different storages");
  const Operand param = floats(info, 0, count, name, "param");
  const Operand grad = floats(info, 1, count, name, "grad");
  Operand buffer;  // not given: momentum == 0
  buffer.name = "buffer";
  if (options.momentum != 0.0) {
    if (info.Length() <= 2 || info[2].IsNull() || info[2].IsUndefined()) {
      throw_error(env, "sgdStep: momentum != 0 needs a momentum buffer");
    }
    StorageHandle* buffer_storage = get_storage(info, 2, name, "buffer");
    if (buffer_storage == param_storage || buffer_storage == grad_storage) {
      throw_error(env, "sgdStep: the momentum buffer must be its own storage");
    }
    buffer = floats(info, 2, count, name, "buffer");
  }
  const Device device = same_device(env, name, {param, grad, buffer});
  throw_if_error(env, dispatch(device, cpu::sgd_step, cuda::sgd_step, count, param, grad, buffer, options, first_step), name);
  return env.Undefined();
}

}  // namespace

void register_sgd(Napi::Env env, Napi::Object exports) {
  exports.Set("sgdStep", Napi::Function::New(env, sgd_step_op, "sgdStep"));
}

}  // namespace binding
}  // namespace lmcl
