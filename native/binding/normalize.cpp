// Bindings for the L2-normalize and cosine-similarity kernels (native/src/cpu/normalize.cpp).
#include <cmath>

#include "args.h"
#include "lmcl/normalize.h"

namespace lmcl {
namespace binding {
namespace {

// The trailing (outer, dim, inner, eps) arguments every entry point takes, checked, plus the
// element count of an [outer, dim, inner] operand and of an [outer, inner] per-row operand.
struct RowGeometry {
  int64_t outer, dim, inner;
  float eps;
  int64_t count, rows;
};

RowGeometry read_geometry(const Napi::CallbackInfo& info, size_t first, const char* op) {
  RowGeometry g{};
  g.outer = get_int(info, first, op, "outer");
  g.dim = get_int(info, first + 1, op, "dim");
  g.inner = get_int(info, first + 2, op, "inner");
  double eps = get_number(info, first + 3, op, "eps");
  if (!std::isfinite(eps) || eps < 0) throw_error(info.Env(), std::string(op) + ": eps must be a finite number >= 0");
  g.eps = static_cast<float>(eps);
  g.count = element_count(info.Env(), op, {g.outer, g.dim, g.inner});
  g.rows = element_count(info.Env(), op, {g.outer, g.inner});
  return g;
}

// normalizeForward(x, out, norms, outer, dim, inner, eps)
Napi::Value normalize_forward_op(const Napi::CallbackInfo& info) {
  const char* name = "normalize";
  const RowGeometry g = read_geometry(info, 3, name);
  const Operand x = floats(info, 0, g.count, name, "x");
  const Operand out = floats(info, 1, g.count, name, "out");
  const Operand norms = floats(info, 2, g.rows, name, "norms");
  const Device device = same_device(info.Env(), name, {x, out, norms});
  throw_if_error(info.Env(), dispatch(device, cpu::l2_normalize_forward, cuda::l2_normalize_forward, g.outer, g.dim, g.inner, g.eps, x, out, norms), name);
  return info.Env().Undefined();
}

// normalizeBackward(out, norms, grad, gradInput, outer, dim, inner, eps)
Napi::Value normalize_backward_op(const Napi::CallbackInfo& info) {
  const char* name = "normalizeBackward";
  const RowGeometry g = read_geometry(info, 4, name);
  const Operand y = floats(info, 0, g.count, name, "out");
  const Operand norms = floats(info, 1, g.rows, name, "norms");
  const Operand grad = floats(info, 2, g.count, name, "grad");
  const Operand grad_input = floats(info, 3, g.count, name, "gradInput");
  const Device device = same_device(info.Env(), name, {y, norms, grad, grad_input});
  throw_if_error(info.Env(), dispatch(device, cpu::l2_normalize_backward, cuda::l2_normalize_backward, g.outer, g.dim, g.inner, g.eps, y, norms, grad, grad_input), name);
  return info.Env().Undefined();
}

// cosineSimilarityForward(a, b, out, normsA, normsB, outer, dim, inner, eps)
Napi::Value cosine_forward_op(const Napi::CallbackInfo& info) {
  const char* name = "cosineSimilarity";
  const RowGeometry g = read_geometry(info, 5, name);
  const Operand a = floats(info, 0, g.count, name, "a");
  const Operand b = floats(info, 1, g.count, name, "b");
  const Operand out = floats(info, 2, g.rows, name, "out");
  const Operand norms_a = floats(info, 3, g.rows, name, "normsA");
  const Operand norms_b = floats(info, 4, g.rows, name, "normsB");
  const Device device = same_device(info.Env(), name, {a, b, out, norms_a, norms_b});
  throw_if_error(info.Env(), dispatch(device, cpu::cosine_similarity_forward, cuda::cosine_similarity_forward, g.outer, g.dim, g.inner, g.eps, a, b, out, norms_a, norms_b), name);
  return info.Env().Undefined();
}

// cosineSimilarityBackward(a, b, out, normsA, normsB, grad, gradA | null, gradB | null, outer, dim, inner, eps)
Napi::Value cosine_backward_op(const Napi::CallbackInfo& info) {
  const char* name = "cosineSimilarityBackward";
  const RowGeometry g = read_geometry(info, 8, name);
  const Operand a = floats(info, 0, g.count, name, "a");
  const Operand b = floats(info, 1, g.count, name, "b");
  const Operand out = floats(info, 2, g.rows, name, "out");
  const Operand norms_a = floats(info, 3, g.rows, name, "normsA");
  const Operand norms_b = floats(info, 4, g.rows, name, "normsB");
  const Operand grad = floats(info, 5, g.rows, name, "grad");
  const Operand grad_a = optional_floats(info, 6, g.count, name, "gradA");
  const Operand grad_b = optional_floats(info, 7, g.count, name, "gradB");
  const Device device = same_device(info.Env(), name, {a, b, out, norms_a, norms_b, grad, grad_a, grad_b});
  throw_if_error(info.Env(), dispatch(device, cpu::cosine_similarity_backward, cuda::cosine_similarity_backward, g.outer, g.dim, g.inner, g.eps, a, b, out, norms_a, norms_b, grad,
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
