// Bindings for the softmax, log-softmax and cross-entropy kernels (native/src/cpu/softmax.cpp).
#include "args.h"
#include "lmcl/softmax.h"

namespace lmcl {
namespace binding {
namespace {


// softmaxForward(x, out, outer, dim, inner, log)
Napi::Value softmax_forward_op(const Napi::CallbackInfo& info) {
  const char* name = "softmax";
  int64_t outer = get_int(info, 2, name, "outer");
  int64_t dim = get_int(info, 3, name, "dim");
  int64_t inner = get_int(info, 4, name, "inner");
  bool log = get_bool(info, 5, name, "log");
  int64_t count = element_count(info.Env(), name, {outer, dim, inner});
  const Operand x = floats(info, 0, count, name, "x");
  const Operand out = floats(info, 1, count, name, "out");
  const Device device = same_device(info.Env(), name, {x, out});
  throw_if_error(info.Env(), dispatch(device, cpu::softmax_forward, cuda::softmax_forward, log, outer, dim, inner, x, out), log ? "logSoftmax" : "softmax");
  return info.Env().Undefined();
}

// softmaxBackward(out, grad, gradInput, outer, dim, inner, log)
Napi::Value softmax_backward_op(const Napi::CallbackInfo& info) {
  const char* name = "softmaxBackward";
  int64_t outer = get_int(info, 3, name, "outer");
  int64_t dim = get_int(info, 4, name, "dim");
  int64_t inner = get_int(info, 5, name, "inner");
  bool log = get_bool(info, 6, name, "log");
  int64_t count = element_count(info.Env(), name, {outer, dim, inner});
  const Operand y = floats(info, 0, count, name, "out");
  const Operand grad = floats(info, 1, count, name, "grad");
  const Operand grad_input = floats(info, 2, count, name, "gradInput");
  const Device device = same_device(info.Env(), name, {y, grad, grad_input});
  throw_if_error(info.Env(), dispatch(device, cpu::softmax_backward, cuda::softmax_backward, log, outer, dim, inner, y, grad, grad_input), name);
  return info.Env().Undefined();
}

// crossEntropyForward(logits, labels, out, stats, batch, classes, reduction)
Napi::Value cross_entropy_forward_op(const Napi::CallbackInfo& info) {
  const char* name = "crossEntropy";
  int64_t batch = get_int(info, 4, name, "batch");
  int64_t classes = get_int(info, 5, name, "classes");
  int64_t reduction = get_int(info, 6, name, "reduction");
  if (reduction < 0 || reduction > 2) throw_error(info.Env(), "crossEntropy: reduction code must be 0 (none), 1 (sum) or 2 (mean)");
  int64_t count = element_count(info.Env(), name, {batch, classes});
  const Operand logits = floats(info, 0, count, name, "logits");
  const IndexOperand labels = get_labels(info, 1, batch, name);
  const Operand out = floats(info, 2, reduction == 0 ? batch : 1, name, "out");
  const Operand stats = floats(info, 3, 2 * batch, name, "stats");
  const Device device = same_device(info.Env(), name, {labels.operand, logits, out, stats});
  throw_if_error(info.Env(), dispatch(device, cpu::cross_entropy_forward, cuda::cross_entropy_forward, batch, classes, logits, labels.array,
                                                   static_cast<CrossEntropyReduction>(reduction), out, stats), name);
  return info.Env().Undefined();
}

// crossEntropyBackward(logits, labels, stats, grad, gradInput, batch, classes, scale, gradPerRow)
Napi::Value cross_entropy_backward_op(const Napi::CallbackInfo& info) {
  const char* name = "crossEntropyBackward";
  int64_t batch = get_int(info, 5, name, "batch");
  int64_t classes = get_int(info, 6, name, "classes");
  float scale = static_cast<float>(get_number(info, 7, name, "scale"));
  bool per_row = get_bool(info, 8, name, "gradPerRow");
  int64_t count = element_count(info.Env(), name, {batch, classes});
  const Operand logits = floats(info, 0, count, name, "logits");
  const IndexOperand labels = get_labels(info, 1, batch, name);
  const Operand stats = floats(info, 2, 2 * batch, name, "stats");
  const Operand grad = floats(info, 3, per_row ? batch : 1, name, "grad");
  const Operand grad_input = floats(info, 4, count, name, "gradInput");
  const Device device = same_device(info.Env(), name, {labels.operand, logits, stats, grad, grad_input});
  throw_if_error(info.Env(), dispatch(device, cpu::cross_entropy_backward, cuda::cross_entropy_backward, batch, classes, logits, labels.array, stats, grad, per_row, scale,
                                                    grad_input), name);
  return info.Env().Undefined();
}

}  // namespace

void register_softmax(Napi::Env env, Napi::Object exports) {
  exports.Set("softmaxForward", Napi::Function::New(env, softmax_forward_op, "softmaxForward"));
  exports.Set("softmaxBackward", Napi::Function::New(env, softmax_backward_op, "softmaxBackward"));
  exports.Set("crossEntropyForward", Napi::Function::New(env, cross_entropy_forward_op, "crossEntropyForward"));
  exports.Set("crossEntropyBackward", Napi::Function::New(env, cross_entropy_backward_op, "crossEntropyBackward"));
}

}  // namespace binding
}  // namespace lmcl
