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
  const float* anchor = cpu_floats(info, 0, count, name, "anchor");
  const float* contrast = cpu_floats(info, 1, count, name, "contrast");
  const int32_t* labels = get_labels(info, 2, batch, name);
  const float* weights = optional_cpu_floats(info, 3, batch, name, "weights");
  float* loss = cpu_floats(info, 4, 1, name, "loss");
  float* row_stats = cpu_floats(info, 5, 2 * batch, name, "rowStats");
  float* direction = optional_cpu_floats(info, 6, square, name, "direction");
  throw_if_error(info.Env(),
                 cpu::supcon_infonce_forward(batch, dim, anchor, contrast, labels, weights, temperature, loss, row_stats, direction),
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
  const float* anchor = cpu_floats(info, 0, count, name, "anchor");
  const float* contrast = cpu_floats(info, 1, count, name, "contrast");
  const int32_t* labels = get_labels(info, 2, batch, name);
  const float* weights = optional_cpu_floats(info, 3, batch, name, "weights");
  const float* row_stats = cpu_floats(info, 4, 2 * batch, name, "rowStats");
  const float* direction = optional_cpu_floats(info, 5, square, name, "direction");
  const float* grad = cpu_floats(info, 6, 1, name, "grad");
  float* grad_anchor = optional_cpu_floats(info, 7, count, name, "gradAnchor");
  float* grad_contrast = optional_cpu_floats(info, 8, count, name, "gradContrast");
  float* grad_weights = optional_cpu_floats(info, 9, batch, name, "gradWeights");
  throw_if_error(info.Env(),
                 cpu::supcon_infonce_backward(batch, dim, anchor, contrast, labels, weights, temperature, row_stats, direction,
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
