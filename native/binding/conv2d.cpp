// Bindings for the conv2d kernels (native/src/cpu/conv2d.cpp). Checks and conversions only.
//
// params = [batch, inChannels, inHeight, inWidth, outChannels, kernelHeight, kernelWidth,
//           strideHeight, strideWidth, paddingHeight, paddingWidth, groups]
#include "args.h"
#include "lmcl/conv2d.h"

namespace lmcl {
namespace binding {
namespace {

Conv2dShape read_shape(const Napi::CallbackInfo& info, size_t index, const char* op) {
  std::vector<int64_t> p = get_int_array(info, index, op, "params");
  if (p.size() != 12) {
    throw_error(info.Env(), std::string(op) + ": params must hold 12 integers [batch, inChannels, inHeight, inWidth, "
                                              "outChannels, kernelHeight, kernelWidth, strideHeight, strideWidth, "
                                              "paddingHeight, paddingWidth, groups], got " +
                                std::to_string(p.size()));
  }
  Conv2dShape s;
  s.batch = p[0];
  s.in_channels = p[1];
  s.in_height = p[2];
  s.in_width = p[3];
  s.out_channels = p[4];
  s.kernel_height = p[5];
  s.kernel_width = p[6];
  s.stride_height = p[7];
  s.stride_width = p[8];
  s.padding_height = p[9];
  s.padding_width = p[10];
  s.groups = p[11];
  throw_if_error(info.Env(), validate(s), op);
  return s;
}

void expect_arguments(const Napi::CallbackInfo& info, size_t count, const char* op, const char* signature) {
  if (info.Length() != count) {
    throw_error(info.Env(), std::string(op) + ": expected " + std::to_string(count) + " arguments " + signature +
                                ", got " + std::to_string(info.Length()));
  }
}

// conv2dForward(input, weight, bias | null, output, params)
Napi::Value forward(const Napi::CallbackInfo& info) {
  const char* op = "conv2dForward";
  expect_arguments(info, 5, op, "(input, weight, bias | null, output, params)");
  const Conv2dShape s = read_shape(info, 4, op);
  const Operand input = floats(info, 0, s.input_numel(), op, "input");
  const Operand weight = floats(info, 1, s.weight_numel(), op, "weight");
  const Operand bias = optional_floats(info, 2, s.out_channels, op, "bias");
  const Operand output = floats(info, 3, s.output_numel(), op, "output");
  const Device device = same_device(info.Env(), op, {input, weight, bias, output});
  throw_if_error(info.Env(), dispatch(device, cpu::conv2d_forward, cuda::conv2d_forward, s, input, weight, bias, output), op);
  return info.Env().Undefined();
}

// conv2dBackwardInput(gradOutput, weight, gradInput, params)
Napi::Value backward_input(const Napi::CallbackInfo& info) {
  const char* op = "conv2dBackwardInput";
  expect_arguments(info, 4, op, "(gradOutput, weight, gradInput, params)");
  const Conv2dShape s = read_shape(info, 3, op);
  const Operand grad_output = floats(info, 0, s.output_numel(), op, "gradOutput");
  const Operand weight = floats(info, 1, s.weight_numel(), op, "weight");
  const Operand grad_input = floats(info, 2, s.input_numel(), op, "gradInput");
  const Device device = same_device(info.Env(), op, {grad_output, weight, grad_input});
  throw_if_error(info.Env(), dispatch(device, cpu::conv2d_backward_input, cuda::conv2d_backward_input, s, grad_output, weight, grad_input), op);
  return info.Env().Undefined();
}

// conv2dBackwardWeight(input, gradOutput, gradWeight, params)
Napi::Value backward_weight(const Napi::CallbackInfo& info) {
  const char* op = "conv2dBackwardWeight";
  expect_arguments(info, 4, op, "(input, gradOutput, gradWeight, params)");
  const Conv2dShape s = read_shape(info, 3, op);
  const Operand input = floats(info, 0, s.input_numel(), op, "input");
  const Operand grad_output = floats(info, 1, s.output_numel(), op, "gradOutput");
  const Operand grad_weight = floats(info, 2, s.weight_numel(), op, "gradWeight");
  const Device device = same_device(info.Env(), op, {input, grad_output, grad_weight});
  throw_if_error(info.Env(), dispatch(device, cpu::conv2d_backward_weight, cuda::conv2d_backward_weight, s, input, grad_output, grad_weight), op);
  return info.Env().Undefined();
}

// conv2dBackwardBias(gradOutput, gradBias, params)
Napi::Value backward_bias(const Napi::CallbackInfo& info) {
  const char* op = "conv2dBackwardBias";
  expect_arguments(info, 3, op, "(gradOutput, gradBias, params)");
  const Conv2dShape s = read_shape(info, 2, op);
  const Operand grad_output = floats(info, 0, s.output_numel(), op, "gradOutput");
  const Operand grad_bias = floats(info, 1, s.out_channels, op, "gradBias");
  const Device device = same_device(info.Env(), op, {grad_output, grad_bias});
  throw_if_error(info.Env(), dispatch(device, cpu::conv2d_backward_bias, cuda::conv2d_backward_bias, s, grad_output, grad_bias), op);
  return info.Env().Undefined();
}

}  // namespace

void register_conv2d(Napi::Env env, Napi::Object exports) {
  exports.Set("conv2dForward", Napi::Function::New(env, forward, "conv2dForward"));
  exports.Set("conv2dBackwardInput", Napi::Function::New(env, backward_input, "conv2dBackwardInput"));
  exports.Set("conv2dBackwardWeight", Napi::Function::New(env, backward_weight, "conv2dBackwardWeight"));
  exports.Set("conv2dBackwardBias", Napi::Function::New(env, backward_bias, "conv2dBackwardBias"));
}

}  // namespace binding
}  // namespace lmcl
