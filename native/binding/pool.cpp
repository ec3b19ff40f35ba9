// Bindings for the pool kernels (native/src/cpu/pool.cpp).
//
// params = [planes, inH, inW, kernelH, kernelW, strideH, strideW, padH, padW] (avg/max);
// adaptive params = [planes, inH, inW, outH, outW]. "input-shaped" storages hold planes·inH·inW
// floats, "output-shaped" ones planes·outH·outW; indices are int32 (4 bytes each) in a storage.
//   avgPool2dForward(x, out, params)            avgPool2dBackward(gradOut, gradIn, params)
//   maxPool2dForward(x, out, indices|null, params)
//   maxPool2dBackward(gradOut, indices, gradIn, params)    (scatter to the argmax)
//   maxPool2dGather(source, indices, out, params)          (read at the argmax)
//   adaptiveAvgPool2dForward(x, out, params)    adaptiveAvgPool2dBackward(gradOut, gradIn, params)
#include "args.h"
#include "lmcl/pool.h"

namespace lmcl {
namespace binding {
namespace {

Pool2dShape get_pool_shape(const Napi::CallbackInfo& info, size_t index, const char* op) {
  std::vector<int64_t> p = get_int_array(info, index, op, "params");
  if (p.size() != 9) {
    throw_error(info.Env(), std::string(op) +
                                ": argument 'params' must be [planes, inH, inW, kernelH, kernelW, strideH, strideW, padH, padW]");
  }
  Pool2dShape shape;
  shape.planes = p[0];
  shape.in_h = p[1];
  shape.in_w = p[2];
  shape.kernel_h = p[3];
  shape.kernel_w = p[4];
  shape.stride_h = p[5];
  shape.stride_w = p[6];
  shape.pad_h = p[7];
  shape.pad_w = p[8];
  throw_if_error(info.Env(), validate_pool2d_shape(shape), op);
  return shape;
}

int64_t input_count(const Pool2dShape& s) { return s.planes * s.in_h * s.in_w; }
int64_t output_count(const Pool2dShape& s) { return s.planes * s.out_h() * s.out_w(); }

// Indices are int32 in a storage: the same 4-byte element size and checks as floats.
// Read with floats() and passed to the kernel as operand.ints().

Napi::Value avg_forward(const Napi::CallbackInfo& info) {
  const char* op = "avgPool2dForward";
  const Pool2dShape s = get_pool_shape(info, 2, op);
  const Operand x = floats(info, 0, input_count(s), op, "x");
  const Operand out = floats(info, 1, output_count(s), op, "out");
  const Device device = same_device(info.Env(), op, {x, out});
  throw_if_error(info.Env(), dispatch(device, cpu::avg_pool2d_forward, cuda::avg_pool2d_forward, s, x, out), op);
  return info.Env().Undefined();
}

Napi::Value avg_backward(const Napi::CallbackInfo& info) {
  const char* op = "avgPool2dBackward";
  const Pool2dShape s = get_pool_shape(info, 2, op);
  const Operand grad_out = floats(info, 0, output_count(s), op, "gradOut");
  const Operand grad_in = floats(info, 1, input_count(s), op, "gradIn");
  const Device device = same_device(info.Env(), op, {grad_out, grad_in});
  throw_if_error(info.Env(), dispatch(device, cpu::avg_pool2d_backward, cuda::avg_pool2d_backward, s, grad_out, grad_in), op);
  return info.Env().Undefined();
}

Napi::Value max_forward(const Napi::CallbackInfo& info) {
  const char* op = "maxPool2dForward";
  const Pool2dShape s = get_pool_shape(info, 3, op);
  const Operand x = floats(info, 0, input_count(s), op, "x");
  const Operand out = floats(info, 1, output_count(s), op, "out");
  const Operand indices = optional_floats(info, 2, output_count(s), op, "indices");
  const Device device = same_device(info.Env(), op, {x, out, indices});
  throw_if_error(info.Env(), dispatch(device, cpu::max_pool2d_forward, cuda::max_pool2d_forward, s, x, out, indices.ints()), op);
  return info.Env().Undefined();
}

Napi::Value max_backward(const Napi::CallbackInfo& info) {
  const char* op = "maxPool2dBackward";
  const Pool2dShape s = get_pool_shape(info, 3, op);
  const Operand grad_out = floats(info, 0, output_count(s), op, "gradOut");
  const Operand indices = floats(info, 1, output_count(s), op, "indices");
  const Operand grad_in = floats(info, 2, input_count(s), op, "gradIn");
  const Device device = same_device(info.Env(), op, {grad_out, indices, grad_in});
  throw_if_error(info.Env(), dispatch(device, cpu::max_pool2d_backward, cuda::max_pool2d_backward, s, grad_out, indices.ints(), grad_in), op);
  return info.Env().Undefined();
}

Napi::Value max_gather(const Napi::CallbackInfo& info) {
  const char* op = "maxPool2dGather";
  const Pool2dShape s = get_pool_shape(info, 3, op);
  const Operand source = floats(info, 0, input_count(s), op, "source");
  const Operand indices = floats(info, 1, output_count(s), op, "indices");
  const Operand out = floats(info, 2, output_count(s), op, "out");
  const Device device = same_device(info.Env(), op, {source, indices, out});
  throw_if_error(info.Env(), dispatch(device, cpu::max_pool2d_gather, cuda::max_pool2d_gather, s, source, indices.ints(), out), op);
  return info.Env().Undefined();
}

AdaptivePool2dShape get_adaptive_shape(const Napi::CallbackInfo& info, size_t index, const char* op) {
  std::vector<int64_t> p = get_int_array(info, index, op, "params");
  if (p.size() != 5) throw_error(info.Env(), std::string(op) + ": argument 'params' must be [planes, inH, inW, outH, outW]");
  AdaptivePool2dShape shape;
  shape.planes = p[0];
  shape.in_h = p[1];
  shape.in_w = p[2];
  shape.out_h = p[3];
  shape.out_w = p[4];
  throw_if_error(info.Env(), validate_adaptive_pool2d_shape(shape), op);
  return shape;
}

Napi::Value adaptive_forward(const Napi::CallbackInfo& info) {
  const char* op = "adaptiveAvgPool2dForward";
  const AdaptivePool2dShape s = get_adaptive_shape(info, 2, op);
  const Operand x = floats(info, 0, s.planes * s.in_h * s.in_w, op, "x");
  const Operand out = floats(info, 1, s.planes * s.out_h * s.out_w, op, "out");
  const Device device = same_device(info.Env(), op, {x, out});
  throw_if_error(info.Env(), dispatch(device, cpu::adaptive_avg_pool2d_forward, cuda::adaptive_avg_pool2d_forward, s, x, out), op);
  return info.Env().Undefined();
}

Napi::Value adaptive_backward(const Napi::CallbackInfo& info) {
  const char* op = "adaptiveAvgPool2dBackward";
  const AdaptivePool2dShape s = get_adaptive_shape(info, 2, op);
  const Operand grad_out = floats(info, 0, s.planes * s.out_h * s.out_w, op, "gradOut");
  const Operand grad_in = floats(info, 1, s.planes * s.in_h * s.in_w, op, "gradIn");
  const Device device = same_device(info.Env(), op, {grad_out, grad_in});
  throw_if_error(info.Env(), dispatch(device, cpu::adaptive_avg_pool2d_backward, cuda::adaptive_avg_pool2d_backward, s, grad_out, grad_in), op);
  return info.Env().Undefined();
}

}  // namespace

void register_pool(Napi::Env env, Napi::Object exports) {
  exports.Set("avgPool2dForward", Napi::Function::New(env, avg_forward, "avgPool2dForward"));
  exports.Set("avgPool2dBackward", Napi::Function::New(env, avg_backward, "avgPool2dBackward"));
  exports.Set("maxPool2dForward", Napi::Function::New(env, max_forward, "maxPool2dForward"));
  exports.Set("maxPool2dBackward", Napi::Function::New(env, max_backward, "maxPool2dBackward"));
  exports.Set("maxPool2dGather", Napi::Function::New(env, max_gather, "maxPool2dGather"));
  exports.Set("adaptiveAvgPool2dForward", Napi::Function::New(env, adaptive_forward, "adaptiveAvgPool2dForward"));
  exports.Set("adaptiveAvgPool2dBackward", Napi::Function::New(env, adaptive_backward, "adaptiveAvgPool2dBackward"));
}

}  // namespace binding
}  // namespace lmcl
