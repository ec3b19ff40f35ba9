// Bindings for the KL kernels: contrastive KL and logit KD (native/src/cpu/contrastive_kl.cpp).
#include "args.h"
#include "lmcl/contrastive_kl.h"

namespace lmcl {
namespace binding {
namespace {

// contrastiveKLForward(studentAnchor, studentContrast, teacherAnchor, teacherContrast, weights|null,
//                      loss, rowStats, direction|null, batch, dim, temperature, klTemperature)
Napi::Value contrastive_kl_forward_op(const Napi::CallbackInfo& info) {
  const char* name = "contrastiveKL";
  const int64_t batch = get_int(info, 8, name, "batch");
  const int64_t dim = get_int(info, 9, name, "dim");
  const float temperature = static_cast<float>(get_number(info, 10, name, "temperature"));
  const float kl_temperature = static_cast<float>(get_number(info, 11, name, "klTemperature"));
  const int64_t count = element_count(info.Env(), name, {batch, dim});
  const int64_t square = element_count(info.Env(), name, {batch, batch});
  const Operand student_anchor = floats(info, 0, count, name, "studentAnchor");
  const Operand student_contrast = floats(info, 1, count, name, "studentContrast");
  const Operand teacher_anchor = floats(info, 2, count, name, "teacherAnchor");
  const Operand teacher_contrast = floats(info, 3, count, name, "teacherContrast");
  const Operand weights = optional_floats(info, 4, batch, name, "weights");
  const Operand loss = floats(info, 5, 1, name, "loss");
  const Operand row_stats = floats(info, 6, 3 * batch, name, "rowStats");
  const Operand direction = optional_floats(info, 7, square, name, "direction");
  const Device device = same_device(info.Env(), name, {student_anchor, student_contrast, teacher_anchor, teacher_contrast, weights, loss, row_stats, direction});
  throw_if_error(info.Env(),
                 dispatch(device, cpu::contrastive_kl_forward, cuda::contrastive_kl_forward, batch, dim, student_anchor, student_contrast, teacher_anchor, teacher_contrast,
                                        weights, temperature, kl_temperature, loss, row_stats, direction),
                 name);
  return info.Env().Undefined();
}

// contrastiveKLBackward(studentAnchor, studentContrast, teacherAnchor, teacherContrast, weights|null,
//                       rowStats, direction|null, grad, gradStudentAnchor|null, gradStudentContrast|null,
//                       gradWeights|null, batch, dim, temperature, klTemperature)
Napi::Value contrastive_kl_backward_op(const Napi::CallbackInfo& info) {
  const char* name = "contrastiveKLBackward";
  const int64_t batch = get_int(info, 11, name, "batch");
  const int64_t dim = get_int(info, 12, name, "dim");
  const float temperature = static_cast<float>(get_number(info, 13, name, "temperature"));
  const float kl_temperature = static_cast<float>(get_number(info, 14, name, "klTemperature"));
  const int64_t count = element_count(info.Env(), name, {batch, dim});
  const int64_t square = element_count(info.Env(), name, {batch, batch});
  const Operand student_anchor = floats(info, 0, count, name, "studentAnchor");
  const Operand student_contrast = floats(info, 1, count, name, "studentContrast");
  const Operand teacher_anchor = floats(info, 2, count, name, "teacherAnchor");
  const Operand teacher_contrast = floats(info, 3, count, name, "teacherContrast");
  const Operand weights = optional_floats(info, 4, batch, name, "weights");
  const Operand row_stats = floats(info, 5, 3 * batch, name, "rowStats");
  const Operand direction = optional_floats(info, 6, square, name, "direction");
  const Operand grad = floats(info, 7, 1, name, "grad");
  const Operand grad_anchor = optional_floats(info, 8, count, name, "gradStudentAnchor");
  const Operand grad_contrast = optional_floats(info, 9, count, name, "gradStudentContrast");
  const Operand grad_weights = optional_floats(info, 10, batch, name, "gradWeights");
  const Device device = same_device(info.Env(), name, {student_anchor, student_contrast, teacher_anchor, teacher_contrast, weights, row_stats, direction, grad, grad_anchor, grad_contrast, grad_weights});
  throw_if_error(info.Env(),
                 dispatch(device, cpu::contrastive_kl_backward, cuda::contrastive_kl_backward, batch, dim, student_anchor, student_contrast, teacher_anchor, teacher_contrast,
                                         weights, temperature, kl_temperature, row_stats, direction, grad, grad_anchor,
                                         grad_contrast, grad_weights),
                 name);
  return info.Env().Undefined();
}

// distillKLForward(student, teacher, weights|null, loss, rowStats, batch, classes, temperature)
Napi::Value distill_kl_forward_op(const Napi::CallbackInfo& info) {
  const char* name = "distillKL";
  const int64_t batch = get_int(info, 5, name, "batch");
  const int64_t classes = get_int(info, 6, name, "classes");
  const float temperature = static_cast<float>(get_number(info, 7, name, "temperature"));
  const int64_t count = element_count(info.Env(), name, {batch, classes});
  const Operand student = floats(info, 0, count, name, "studentLogits");
  const Operand teacher = floats(info, 1, count, name, "teacherLogits");
  const Operand weights = optional_floats(info, 2, batch, name, "weights");
  const Operand loss = floats(info, 3, 1, name, "loss");
  const Operand row_stats = floats(info, 4, 3 * batch, name, "rowStats");
  const Device device = same_device(info.Env(), name, {student, teacher, weights, loss, row_stats});
  throw_if_error(info.Env(), dispatch(device, cpu::distill_kl_forward, cuda::distill_kl_forward, batch, classes, student, teacher, weights, temperature, loss, row_stats),
                 name);
  return info.Env().Undefined();
}

// distillKLBackward(student, teacher, weights|null, rowStats, grad, gradStudent|null, gradWeights|null,
//                   batch, classes, temperature)
Napi::Value distill_kl_backward_op(const Napi::CallbackInfo& info) {
  const char* name = "distillKLBackward";
  const int64_t batch = get_int(info, 7, name, "batch");
  const int64_t classes = get_int(info, 8, name, "classes");
  const float temperature = static_cast<float>(get_number(info, 9, name, "temperature"));
  const int64_t count = element_count(info.Env(), name, {batch, classes});
  const Operand student = floats(info, 0, count, name, "studentLogits");
  const Operand teacher = floats(info, 1, count, name, "teacherLogits");
  const Operand weights = optional_floats(info, 2, batch, name, "weights");
  const Operand row_stats = floats(info, 3, 3 * batch, name, "rowStats");
  const Operand grad = floats(info, 4, 1, name, "grad");
  const Operand grad_student = optional_floats(info, 5, count, name, "gradStudent");
  const Operand grad_weights = optional_floats(info, 6, batch, name, "gradWeights");
  const Device device = same_device(info.Env(), name, {student, teacher, weights, row_stats, grad, grad_student, grad_weights});
  throw_if_error(info.Env(),
                 dispatch(device, cpu::distill_kl_backward, cuda::distill_kl_backward, batch, classes, student, teacher, weights, temperature, row_stats, grad,
                                     grad_student, grad_weights),
                 name);
  return info.Env().Undefined();
}

}  // namespace

void register_contrastive_kl(Napi::Env env, Napi::Object exports) {
  exports.Set("contrastiveKLForward", Napi::Function::New(env, contrastive_kl_forward_op, "contrastiveKLForward"));
  exports.Set("contrastiveKLBackward", Napi::Function::New(env, contrastive_kl_backward_op, "contrastiveKLBackward"));
  exports.Set("distillKLForward", Napi::Function::New(env, distill_kl_forward_op, "distillKLForward"));
  exports.Set("distillKLBackward", Napi::Function::New(env, distill_kl_backward_op, "distillKLBackward"));
}

}  // namespace binding
}  // namespace lmcl
