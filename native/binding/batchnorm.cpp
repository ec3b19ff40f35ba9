// Bindings for the batchnorm kernels (native/src/cpu/batchnorm.cpp).
//
//   batchNormForwardTraining(x, weight|null, bias|null, runningMean|null, runningVar|null,
//                            y, saveMean, saveInvstd, [N, C, S], momentum, eps[, residual|null, relu])
//   batchNormForwardEval(x, weight|null, bias|null, runningMean, runningVar,
//                        y, saveMean, saveInvstd, [N, C, S], eps[, residual|null, relu])
//   batchNormBackward(gradOut, x, weight|null, saveMean, saveInvstd,
//                     gradInput|null, gradWeight|null, gradBias|null, [N, C, S], training
//                     [, output|null, gradResidual|null])
//   batchNormDoubleBackward(gradOut, x, weight|null, saveMean, saveInvstd, upstreamInput|null,
//                           upstreamWeight|null, gradGradOut|null, gradX|null, gradWeight|null, [N, C, S])
// x, y, gradOut, gradInput, residual, output, gradResidual, upstreamInput, gradGradOut, gradX hold
// N·C·S floats; every per-channel
// storage holds C floats. The trailing arguments are the fused epilogue (lmcl/batchnorm.h):
// omitted, the plain batch norm.
#include "args.h"
#include "lmcl/batchnorm.h"

namespace lmcl {
namespace binding {
namespace {

bool given(const Napi::CallbackInfo& info, size_t index) {
  return info.Length() > index && !info[index].IsUndefined() && !info[index].IsNull();
}

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
  const Operand x = floats(info, 0, count, op, "x");
  const Operand weight = optional_floats(info, 1, C, op, "weight");
  const Operand bias = optional_floats(info, 2, C, op, "bias");
  const Operand running_mean = optional_floats(info, 3, C, op, "runningMean");
  const Operand running_var = optional_floats(info, 4, C, op, "runningVar");
  const Operand y = floats(info, 5, count, op, "y");
  const Operand save_mean = floats(info, 6, C, op, "saveMean");
  const Operand save_invstd = floats(info, 7, C, op, "saveInvstd");
  const double momentum = get_number(info, 9, op, "momentum");
  const double eps = get_number(info, 10, op, "eps");
  const Operand residual = optional_floats(info, 11, count, op, "residual");
  BatchNormEpilogue epilogue;
  epilogue.residual = residual;
  epilogue.relu = given(info, 12) && get_bool(info, 12, op, "relu");
  const Device device = same_device(info.Env(), op, {x, weight, bias, running_mean, running_var, y, save_mean, save_invstd, residual});
  throw_if_error(info.Env(),
                 dispatch(device, cpu::batch_norm_forward_training, cuda::batch_norm_forward_training, shape, x, weight, bias, running_mean, running_var, momentum, eps,
                          epilogue, y, save_mean, save_invstd),
                 op);
  return info.Env().Undefined();
}

Napi::Value forward_eval(const Napi::CallbackInfo& info) {
  const char* op = "batchNormForwardEval";
  const BatchNormShape shape = get_shape(info, 8, op);
  const int64_t count = shape.numel(), C = shape.channels;
  const Operand x = floats(info, 0, count, op, "x");
  const Operand weight = optional_floats(info, 1, C, op, "weight");
  const Operand bias = optional_floats(info, 2, C, op, "bias");
  const Operand running_mean = floats(info, 3, C, op, "runningMean");
  const Operand running_var = floats(info, 4, C, op, "runningVar");
  const Operand y = floats(info, 5, count, op, "y");
  const Operand save_mean = floats(info, 6, C, op, "saveMean");
  const Operand save_invstd = floats(info, 7, C, op, "saveInvstd");
  const double eps = get_number(info, 9, op, "eps");
  const Operand residual = optional_floats(info, 10, count, op, "residual");
  BatchNormEpilogue epilogue;
  epilogue.residual = residual;
  epilogue.relu = given(info, 11) && get_bool(info, 11, op, "relu");
  const Device device = same_device(info.Env(), op, {x, weight, bias, running_mean, running_var, y, save_mean, save_invstd, residual});
  throw_if_error(info.Env(),
                 dispatch(device, cpu::batch_norm_forward_eval, cuda::batch_norm_forward_eval, shape, x, weight, bias, running_mean, running_var, eps, epilogue, y,
                          save_mean, save_invstd),
                 op);
  return info.Env().Undefined();
}

Napi::Value backward(const Napi::CallbackInfo& info) {
  const char* op = "batchNormBackward";
  const BatchNormShape shape = get_shape(info, 8, op);
  const int64_t count = shape.numel(), C = shape.channels;
  const Operand grad_out = floats(info, 0, count, op, "gradOut");
  const Operand x = floats(info, 1, count, op, "x");
  const Operand weight = optional_floats(info, 2, C, op, "weight");
  const Operand save_mean = floats(info, 3, C, op, "saveMean");
  const Operand save_invstd = floats(info, 4, C, op, "saveInvstd");
  const Operand grad_input = optional_floats(info, 5, count, op, "gradInput");
  const Operand grad_weight = optional_floats(info, 6, C, op, "gradWeight");
  const Operand grad_bias = optional_floats(info, 7, C, op, "gradBias");
  const bool training = get_bool(info, 9, op, "training");
  const Operand output = optional_floats(info, 10, count, op, "output");
  const Operand grad_residual = optional_floats(info, 11, count, op, "gradResidual");
  BatchNormEpilogueGrad epilogue;
  epilogue.output = output;
  epilogue.grad_residual = grad_residual;
  const Device device = same_device(info.Env(), op, {grad_out, x, weight, save_mean, save_invstd, grad_input, grad_weight, grad_bias,
                                                     output, grad_residual});
  throw_if_error(info.Env(),
                 dispatch(device, cpu::batch_norm_backward, cuda::batch_norm_backward, shape, grad_out, x, weight, save_mean, save_invstd, training, epilogue,
                          grad_input, grad_weight, grad_bias),
                 op);
  return info.Env().Undefined();
}

Napi::Value double_backward(const Napi::CallbackInfo& info) {
  const char* op = "batchNormDoubleBackward";
  const BatchNormShape shape = get_shape(info, 10, op);
  const int64_t count = shape.numel(), C = shape.channels;
  const Operand grad_out = floats(info, 0, count, op, "gradOut");
  const Operand x = floats(info, 1, count, op, "x");
  const Operand weight = optional_floats(info, 2, C, op, "weight");
  const Operand save_mean = floats(info, 3, C, op, "saveMean");
  const Operand save_invstd = floats(info, 4, C, op, "saveInvstd");
  const Operand upstream_input = optional_floats(info, 5, count, op, "upstreamInput");
  const Operand upstream_weight = optional_floats(info, 6, C, op, "upstreamWeight");
  const Operand grad_grad_out = optional_floats(info, 7, count, op, "gradGradOut");
  const Operand grad_x = optional_floats(info, 8, count, op, "gradX");
  const Operand grad_weight = optional_floats(info, 9, C, op, "gradWeight");
  const Device device = same_device(info.Env(), op, {grad_out, x, weight, save_mean, save_invstd, upstream_input, upstream_weight,
                                                     grad_grad_out, grad_x, grad_weight});
  throw_if_error(info.Env(),
                 dispatch(device, cpu::batch_norm_double_backward, cuda::batch_norm_double_backward, shape, grad_out, x, weight, save_mean,
                          save_invstd, upstream_input, upstream_weight, grad_grad_out, grad_x, grad_weight),
                 op);
  return info.Env().Undefined();
}

}  // namespace

void register_batchnorm(Napi::Env env, Napi::Object exports) {
  exports.Set("batchNormForwardTraining", Napi::Function::New(env, forward_training, "batchNormForwardTraining"));
  exports.Set("batchNormForwardEval", Napi::Function::New(env, forward_eval, "batchNormForwardEval"));
  exports.Set("batchNormBackward", Napi::Function::New(env, backward, "batchNormBackward"));
  exports.Set("batchNormDoubleBackward", Napi::Function::New(env, double_backward, "batchNormDoubleBackward"));
}

}  // namespace binding
}  // namespace lmcl
