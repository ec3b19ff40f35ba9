// Bindings for the elementwise kernels (native/src/cpu/elementwise.cpp).
#include "args.h"
#include "lmcl/elementwise.h"

namespace lmcl {
namespace binding {
namespace {

// Number of floats a strided operand spans: 1 + Σ (extent−1)·stride (0 for an empty shape).
int64_t span_of(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  int64_t span = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0) return 0;
    span += (shape[d] - 1) * strides[d];
  }
  return span;
}

// binary(op, a, b, out, outShape, aStrides, bStrides)
Napi::Value binary(const Napi::CallbackInfo& info) {
  const char* name = "binary";
  int64_t op = get_int(info, 0, name, "op");
  std::vector<int64_t> shape = get_int_array(info, 4, name, "outShape");
  std::vector<int64_t> a_strides = get_int_array(info, 5, name, "aStrides");
  std::vector<int64_t> b_strides = get_int_array(info, 6, name, "bStrides");
  if (shape.size() > static_cast<size_t>(kMaxRank) || a_strides.size() != shape.size() || b_strides.size() != shape.size()) {
    throw_error(info.Env(), "binary: shape and strides must have the same rank (<= 8)");
  }
  int64_t count = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 0 || a_strides[d] < 0 || b_strides[d] < 0) throw_error(info.Env(), "binary: negative extent or stride");
    count *= shape[d];
  }
  const Operand a = floats(info, 1, span_of(shape, a_strides), name, "a");
  const Operand b = floats(info, 2, span_of(shape, b_strides), name, "b");
  const Operand out = floats(info, 3, count, name, "out");
  if (op < 0 || op > static_cast<int64_t>(BinaryOp::kMinimum)) throw_error(info.Env(), "binary: unknown op code");
  const Device device = same_device(info.Env(), name, {a, b, out});
  throw_if_error(info.Env(), dispatch(device, cpu::binary_broadcast, cuda::binary_broadcast, static_cast<BinaryOp>(op), static_cast<int>(shape.size()), shape.data(),
                                              a_strides.data(), b_strides.data(), a, b, out), name);
  return info.Env().Undefined();
}

// unary(op, x, out, count)
Napi::Value unary_op(const Napi::CallbackInfo& info) {
  int64_t op = get_int(info, 0, "unary", "op");
  int64_t count = get_int(info, 3, "unary", "count");
  const Operand x = floats(info, 1, count, "unary", "x");
  const Operand out = floats(info, 2, count, "unary", "out");
  if (op < 0 || op > static_cast<int64_t>(UnaryOp::kStep)) throw_error(info.Env(), "unary: unknown op code");
  const Device device = same_device(info.Env(), "unary", {x, out});
  throw_if_error(info.Env(), dispatch(device, cpu::unary, cuda::unary, static_cast<UnaryOp>(op), count, x, out), "unary");
  return info.Env().Undefined();
}

// affine(x, out, count, scale, shift)
Napi::Value affine_op(const Napi::CallbackInfo& info) {
  int64_t count = get_int(info, 2, "affine", "count");
  const Operand x = floats(info, 0, count, "affine", "x");
  const Operand out = floats(info, 1, count, "affine", "out");
  float scale = static_cast<float>(get_number(info, 3, "affine", "scale"));
  float shift = static_cast<float>(get_number(info, 4, "affine", "shift"));
  const Device device = same_device(info.Env(), "affine", {x, out});
  throw_if_error(info.Env(), dispatch(device, cpu::affine, cuda::affine, count, x, scale, shift, out), "affine");
  return info.Env().Undefined();
}

// power(x, out, count, exponent)
Napi::Value power_op(const Napi::CallbackInfo& info) {
  int64_t count = get_int(info, 2, "power", "count");
  const Operand x = floats(info, 0, count, "power", "x");
  const Operand out = floats(info, 1, count, "power", "out");
  float exponent = static_cast<float>(get_number(info, 3, "power", "exponent"));
  const Device device = same_device(info.Env(), "power", {x, out});
  throw_if_error(info.Env(), dispatch(device, cpu::power, cuda::power, count, x, exponent, out), "power");
  return info.Env().Undefined();
}

// reluMask(grad, mask, out, count)
Napi::Value relu_mask_op(const Napi::CallbackInfo& info) {
  int64_t count = get_int(info, 3, "reluMask", "count");
  const Operand grad = floats(info, 0, count, "reluMask", "grad");
  const Operand mask = floats(info, 1, count, "reluMask", "mask");
  const Operand out = floats(info, 2, count, "reluMask", "out");
  const Device device = same_device(info.Env(), "reluMask", {grad, mask, out});
  throw_if_error(info.Env(), dispatch(device, cpu::relu_mask, cuda::relu_mask, count, grad, mask, out), "reluMask");
  return info.Env().Undefined();
}

// countNonFinite(x, count) -> number
Napi::Value count_non_finite_op(const Napi::CallbackInfo& info) {
  int64_t count = get_int(info, 1, "countNonFinite", "count");
  const Operand x = floats(info, 0, count, "countNonFinite", "x");
  int64_t found = 0;
  const Device device = same_device(info.Env(), "countNonFinite", {x});
  throw_if_error(info.Env(), dispatch(device, cpu::count_non_finite, cuda::count_non_finite, count, x, &found), "countNonFinite");
  return Napi::Number::New(info.Env(), static_cast<double>(found));
}

}  // namespace

void register_elementwise(Napi::Env env, Napi::Object exports) {
  exports.Set("binary", Napi::Function::New(env, binary, "binary"));
  exports.Set("unary", Napi::Function::New(env, unary_op, "unary"));
  exports.Set("affine", Napi::Function::New(env, affine_op, "affine"));
  exports.Set("power", Napi::Function::New(env, power_op, "power"));
  exports.Set("reluMask", Napi::Function::New(env, relu_mask_op, "reluMask"));
  exports.Set("countNonFinite", Napi::Function::New(env, count_non_finite_op, "countNonFinite"));
}

}  // namespace binding
}  // namespace lmcl
