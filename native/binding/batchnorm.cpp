// Bindings for the batchnorm kernels (native/src/cpu/batchnorm.cpp).
//
//   batchNormForwardTraining(x, weight|null, bias|null, runningMean|null, runningVar|null,
//                            y, saveMean, saveInvstd, [N, C, S], momentum, eps)
//   batchNormForwardEval(x, weight|null, bias|null, runningMean, runningVar,
//                        y, saveMean, saveInvstd, [N, C, S], eps)
//   batchNormBackward(gradOut, x, weight|null, saveMean, saveInvstd,
//                     gradInput|null, gradWeight|null, gradBias|null, [N, C, S], training)
// x, y, gradOut, gradInput hold N·C·S floats; every per-channel storage holds C floats.
#include "args.h"
#include "lmcl/batchnorm.h"

namespace lmcl {
namespace binding {
namespace {

BatchNormShape get_shape(const Napi::CallbackInfo& info, size_t index, const char* op) {
  std::vector<int64_t> values = get_int_array(info, index, op, "shape");
  if (values.size() != 3) throw_error(info.Env(), std::string(op) + ": argument 'shape' must be [N, C, S]");
  BatchNormShape shape;
  shape.batch = values[0];
  shape.channels = values[1];
  shape.spatial = values[2];
  throw_if_error(info.Env(), validate_batch_norm_shape(shape), op);
  return shape;
}

Napi::Value forward_training(const Napi::CallbackInfo& info) {
  const char* op = "batchNormForwardTraining";
  const BatchNormShape shape = get_shape(info, 8, op);
  const int64_t count = shape.numel(), C = shape.channels;
  const float* x = cpu_floats(info, 0, count, op, "x");
  const float* weight = optional_cpu_floats(info, 1, C, op, "weight");
  const float* bias = optional_cpu_floats(info, 2, C, op, "bias");
  float* running_mean = optional_cpu_floats(info, 3, C, op, "runningMean");
  float* running_var = optional_cpu_floats(info, 4, C, op, "runningVar");
  float* y = cpu_floats(info, 5, count, op, "y");
  float* save_mean = cpu_floats(info, 6, C, op, "saveMean");
  float* save_invstd = cpu_floats(info, 7, C, op, "saveInvstd");
  const double momentum = get_number(info, 9, op, "momentum");
  const double eps = get_number(info, 10, op, "eps");
  throw_if_error(info.Env(),
                 cpu::batch_norm_forward_training(shape, x, weight, bias, running_mean, running_var, momentum, eps, y,
                                             save_mean, save_invstd),
                 op);
  return info.Env().Undefined();
}

Napi::Value forward_eval(const Napi::CallbackInfo& info) {
  const char* op = "batchNormForwardEval";
  const BatchNormShape shape = get_shape(info, 8, op);
  const int64_t count = shape.numel(), C = shape.channels;
  const float* x = cpu_floats(info, 0, count, op, "x");
  const float* weight = optional_cpu_floats(info, 1, C, op, "weight");
  const float* bias = optional_cpu_floats(info, 2, C, op, "bias");
  const float* running_mean = cpu_floats(info, 3, C, op, "runningMean");
  const float* running_var = cpu_floats(info, 4, C, op, "runningVar");
  float* y = cpu_floats(info, 5, count, op, "y");
  float* save_mean = cpu_floats(info, 6, C, op, "saveMean");
  float* save_invstd = cpu_floats(info, 7, C, op, "saveInvstd");
  const double eps = get_number(info, 9, op, "eps");
  throw_if_error(info.Env(),
                 cpu::batch_norm_forward_eval(shape, x, weight, bias, running_mean, running_var, eps, y, save_mean,
                                         save_invstd),
                 op);
  return info.Env().Undefined();
}

Napi::Value backward(const Napi::CallbackInfo& info) {
  const char* op = "batchNormBackward";
  const BatchNormShape shape = get_shape(info, 8, op);
  const int64_t count = shape.numel(), C = shape.channels;
  const float* grad_out = cpu_floats(info, 0, count, op, "gradOut");
  const float* x = cpu_floats(info, 1, count, op, "x");
  const float* weight = optional_cpu_floats(info, 2, C, op, "weight");
  const float* save_mean = cpu_floats(info, 3, C, op, "saveMean");
  const float* save_invstd = cpu_floats(info, 4, C, op, "saveInvstd");
  float* grad_input = optional_cpu_floats(info, 5, count, op, "gradInput");
  float* grad_weight = optional_cpu_floats(info, 6, C, op, "gradWeight");
  float* grad_bias = optional_cpu_floats(info, 7, C, op, "gradBias");
  const bool training = get_bool(info, 9, op, "training");
  throw_if_error(info.Env(),
                 cpu::batch_norm_backward(shape, grad_out, x, weight, save_mean, save_invstd, training, grad_input,
                                     grad_weight, grad_bias),
                 op);
  return info.Env().Undefined();
}

}  // namespace

void register_batchnorm(Napi::Env env, Napi::Object exports) {
  exports.Set("batchNormForwardTraining", Napi::Function::New(env, forward_training, "batchNormForwardTraining"));
  exports.Set("batchNormForwardEval", Napi::Function::New(env, forward_eval, "batchNormForwardEval"));
  exports.Set("batchNormBackward", Napi::Function::New(env, backward, "batchNormBackward"));
}

}  // namespace binding
}  // namespace lmcl
