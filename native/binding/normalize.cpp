// Bindings for the L2-normalize and cosine-similarity kernels (native/src/cpu/normalize.cpp).
#include <cmath>

#include "args.h"
#include "lmcl/normalize.h"

namespace lmcl {
namespace binding {
namespace {


float eps_of(const Napi::CallbackInfo& info, size_t index, const char* op) {
  double eps = get_number(info, index, op, "eps");
  if (!std::isfinite(eps) || eps < 0) throw_error(info.Env(), std::string(op) + ": eps must be a finite number >= 0");
  return static_cast<float>(eps);
}

// normalizeForward(x, out, norms, outer, dim, inner, eps)
Napi::Value normalize_forward_op(const Napi::CallbackInfo& info) {
  const char* name = "normalize";
  int64_t outer = get_int(info, 3, name, "outer");
  int64_t dim = get_int(info, 4, name, "dim");
  int64_t inner = get_int(info, 5, name, "inner");
  float eps = eps_of(info, 6, name);
  int64_t count = element_count(info.Env(), name, {outer, dim, inner});
  int64_t rows = element_count(info.Env(), name, {outer, inner});
  const float* x = cpu_floats(info, 0, count, name, "x");
  float* out = cpu_floats(info, 1, count, name, "out");
  float* norms = cpu_floats(info, 2, rows, name, "norms");
  throw_if_error(info.Env(), l2_normalize_forward(outer, dim, inner, eps, x, out, norms), name);
  return info.Env().Undefined();
}

// normalizeBackward(out, norms, grad, gradInput, outer, dim, inner, eps)
Napi::Value normalize_backward_op(const Napi::CallbackInfo& info) {
  const char* name = "normalizeBackward";
  int64_t outer = get_int(info, 4, name, "outer");
  int64_t dim = get_int(info, 5, name, "dim");
  int64_t inner = get_int(info, 6, name, "inner");
  float eps = eps_of(info, 7, name);
  int64_t count = element_count(info.Env(), name, {outer, dim, inner});
  int64_t rows = element_count(info.Env(), name, {outer, inner});
  const float* y = cpu_floats(info, 0, count, name, "out");
  const float* norms = cpu_floats(info, 1, rows, name, "norms");
  const float* grad = cpu_floats(info, 2, count, name, "grad");
  float* grad_input = cpu_floats(info, 3, count, name, "gradInput");
  throw_if_error(info.Env(), l2_normalize_backward(outer, dim, inner, eps, y, norms, grad, grad_input), name);
  return info.Env().Undefined();
}

// cosineSimilarityForward(a, b, out, normsA, normsB, outer, dim, inner, eps)
Napi::Value cosine_forward_op(const Napi::CallbackInfo& info) {
  const char* name = "cosineSimilarity";
  int64_t outer = get_int(info, 5, name, "outer");
  int64_t dim = get_int(info, 6, name, "dim");
  int64_t inner = get_int(info, 7, name, "inner");
  float eps = eps_of(info, 8, name);
  int64_t count = element_count(info.Env(), name, {outer, dim, inner});
  int64_t rows = element_count(info.Env(), name, {outer, inner});
  const float* a = cpu_floats(info, 0, count, name, "a");
  const float* b = cpu_floats(info, 1, count, name, "b");
  float* out = cpu_floats(info, 2, rows, name, "out");
  float* norms_a = cpu_floats(info, 3, rows, name, "normsA");
  float* norms_b = cpu_floats(info, 4, rows, name, "normsB");
  throw_if_error(info.Env(), cosine_similarity_forward(outer, dim, inner, eps, a, b, out, norms_a, norms_b), name);
  return info.Env().Undefined();
}

// cosineSimilarityBackward(a, b, out, normsA, normsB, grad, gradA | null, gradB | null, outer, dim, inner, eps)
Napi::Value cosine_backward_op(const Napi::CallbackInfo& info) {
  const char* name = "cosineSimilarityBackward";
  int64_t outer = get_int(info, 8, name, "outer");
  int64_t dim = get_int(info, 9, name, "dim");
  int64_t inner = get_int(info, 10, name, "inner");
  float eps = eps_of(info, 11, name);
  int64_t count = element_count(info.Env(), name, {outer, dim, inner});
  int64_t rows = element_count(info.Env(), name, {outer, inner});
  const float* a = cpu_floats(info, 0, count, name, "a");
  const float* b = cpu_floats(info, 1, count, name, "b");
  const float* out = cpu_floats(info, 2, rows, name, "out");
  const float* norms_a = cpu_floats(info, 3, rows, name, "normsA");
  const float* norms_b = cpu_floats(info, 4, rows, name, "normsB");
  const float* grad = cpu_floats(info, 5, rows, name, "grad");
  float* grad_a = optional_cpu_floats(info, 6, count, name, "gradA");
  float* grad_b = optional_cpu_floats(info, 7, count, name, "gradB");
  throw_if_error(info.Env(), cosine_similarity_backward(outer, dim, inner, eps, a, b, out, norms_a, norms_b, grad,
                                                        grad_a, grad_b), name);
  return info.Env().Undefined();
}

}  // namespace

void register_normalize(Napi::Env env, Napi::Object exports) {
  exports.Set("normalizeForward", Napi::Function::New(env, normalize_forward_op, "normalizeForward"));
  exports.Set("normalizeBackward", Napi::Function::New(env, normalize_backward_op, "normalizeBackward"));
  exports.Set("cosineSimilarityForward", Napi::Function::New(env, cosine_forward_op, "cosineSimilarityForward"));
  exports.Set("cosineSimilarityBackward", Napi::Function::New(env, cosine_backward_op, "cosineSimilarityBackward"));
}

}  // namespace binding
}  // namespace lmcl
