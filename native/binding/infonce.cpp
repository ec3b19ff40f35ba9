// Binding for the supervised InfoNCE kernels (native/src/cpu/infonce.cpp).
#include "args.h"
#include "lmcl/infonce.h"

namespace lmcl {
namespace binding {
namespace {

// supConInfoNCEForward(anchor, contrast, labels, weights|null, loss, rowStats, direction|null, batch, dim,
//                      temperature)
Napi::Value supcon_infonce_forward_op(const Napi::CallbackInfo& info) {
  const char* name = "supConInfoNCE";
  const int64_t batch = get_int(info, 7, name, "batch");
  const int64_t dim = get_int(info, 8, name, "dim");
  const float temperature = static_cast<float>(get_number(info, 9, name, "temperature"));
  const int64_t count = element_count(info.Env(), name, {batch, dim});
  const int64_t square = element_count(info.Env(), name, {batch, batch});
  const Operand anchor = floats(info, 0, count, name, "anchor");
  const Operand contrast = floats(info, 1, count, name, "contrast");
  const IndexOperand labels = get_labels(info, 2, batch, name);
  const Operand weights = optional_floats(info, 3, batch, name, "weights");
  const Operand loss = floats(info, 4, 1, name, "loss");
  const Operand row_stats = floats(info, 5, 2 * batch, name, "rowStats");
  const Operand direction = optional_floats(info, 6, square, name, "direction");
  const Device device = same_device(info.Env(), name, {labels.operand, anchor, contrast, weights, loss, row_stats, direction});
  throw_if_error(info.Env(),
                 dispatch(device, cpu::supcon_infonce_forward, cuda::supcon_infonce_forward, batch, dim, anchor, contrast, labels.array, weights, temperature, loss, row_stats, direction),
                 name);
  return info.Env().Undefined();
}

// supConInfoNCEBackward(anchor, contrast, labels, weights|null, rowStats, direction|null, grad, gradAnchor|null,
//                       gradContrast|null, gradWeights|null, batch, dim, temperature)
Napi::Value supcon_infonce_backward_op(const Napi::CallbackInfo& info) {
  const char* name = "supConInfoNCEBackward";
  const int64_t batch = get_int(info, 10, name, "batch");
  const int64_t dim = get_int(info, 11, name, "dim");
  const float temperature = static_cast<float>(get_number(info, 12, name, "temperature"));
  const int64_t count = element_count(info.Env(), name, {batch, dim});
  const int64_t square = element_count(info.Env(), name, {batch, batch});
  const Operand anchor = floats(info, 0, count, name, "anchor");
  const Operand contrast = floats(info, 1, count, name, "contrast");
  const IndexOperand labels = get_labels(info, 2, batch, name);
  const Operand weights = optional_floats(info, 3, batch, name, "weights");
  const Operand row_stats = floats(info, 4, 2 * batch, name, "rowStats");
  const Operand direction = optional_floats(info, 5, square, name, "direction");
  const Operand grad = floats(info, 6, 1, name, "grad");
  const Operand grad_anchor = optional_floats(info, 7, count, name, "gradAnchor");
  const Operand grad_contrast = optional_floats(info, 8, count, name, "gradContrast");
  const Operand grad_weights = optional_floats(info, 9, batch, name, "gradWeights");
  const Device device = same_device(info.Env(), name, {labels.operand, anchor, contrast, weights, row_stats, direction, grad, grad_anchor, grad_contrast, grad_weights});
  throw_if_error(info.Env(),
                 dispatch(device, cpu::supcon_infonce_backward, cuda::supcon_infonce_backward, batch, dim, anchor, contrast, labels.array, weights, temperature, row_stats, direction,
                                         grad, grad_anchor, grad_contrast, grad_weights),
                 name);
  return info.Env().Undefined();
}

}  // namespace

void register_infonce(Napi::Env env, Napi::Object exports) {
  exports.Set("supConInfoNCEForward", Napi::Function::New(env, supcon_infonce_forward_op, "supConInfoNCEForward"));
  exports.Set("supConInfoNCEBackward", Napi::Function::New(env, supcon_infonce_backward_op, "supConInfoNCEBackward"));
}

}  // namespace binding
}  // namespace lmcl
