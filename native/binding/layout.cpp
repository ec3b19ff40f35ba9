// Bindings for the layout kernels (native/src/cpu/layout.cpp).
#include "args.h"
#include "lmcl/layout.h"

namespace lmcl {
namespace binding {
namespace {

// Floats an operand must hold: offset + 1 + Σ (extent−1)·stride (just offset for an empty box).
// Throws on negative or overflowing values.
int64_t needed_floats(Napi::Env env, const char* op, const char* name, int64_t offset, const std::vector<int64_t>& shape,
                      const std::vector<int64_t>& strides) {
  if (offset < 0) throw_error(env, std::string(op) + ": argument '" + name + "' has a negative offset");
  bool empty = false;
  int64_t span = 0;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 0) throw_error(env, std::string(op) + ": negative extent in shape " + describe_shape(shape));
    if (strides[d] < 0) throw_error(env, std::string(op) + ": argument '" + name + "' has a negative stride");
    if (shape[d] == 0) empty = true;
  }
  if (empty) return offset;
  for (size_t d = 0; d < shape.size(); ++d) {
    int64_t term = 0;
    if (__builtin_mul_overflow(shape[d] - 1, strides[d], &term) || __builtin_add_overflow(span, term, &span)) {
      throw_error(env, std::string(op) + ": argument '" + name + "' spans too many elements");
    }
  }
  int64_t total = 0;
  if (__builtin_add_overflow(offset, span + 1, &total)) {
    throw_error(env, std::string(op) + ": argument '" + name + "' spans too many elements");
  }
  return total;
}

// stridedCopy(src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape)
Napi::Value strided_copy_op(const Napi::CallbackInfo& info) {
  const char* name = "stridedCopy";
  Napi::Env env = info.Env();
  int64_t src_offset = get_int(info, 1, name, "srcOffset");
  std::vector<int64_t> src_strides = get_int_array(info, 2, name, "srcStrides");
  int64_t dst_offset = get_int(info, 4, name, "dstOffset");
  std::vector<int64_t> dst_strides = get_int_array(info, 5, name, "dstStrides");
  std::vector<int64_t> shape = get_int_array(info, 6, name, "shape");
  if (shape.size() > static_cast<size_t>(kLayoutMaxRank) || src_strides.size() != shape.size() ||
      dst_strides.size() != shape.size()) {
    throw_error(env, "stridedCopy: shape and strides must have the same rank (<= 8)");
  }
  StorageHandle* src_storage = get_storage(info, 0, name, "src");
  StorageHandle* dst_storage = get_storage(info, 3, name, "dst");
  if (src_storage == dst_storage) throw_error(env, "stridedCopy: source and destination must be different storages");
  const Operand src = floats(info, 0, needed_floats(env, name, "src", src_offset, shape, src_strides), name, "src");
  const Operand dst = floats(info, 3, needed_floats(env, name, "dst", dst_offset, shape, dst_strides), name, "dst");
  const Device device = same_device(env, name, {src, dst});
  throw_if_error(env, dispatch(device, cpu::strided_copy, cuda::strided_copy, static_cast<int>(shape.size()), shape.data(), src.data + src_offset, src_strides.data(),
                                   dst.data + dst_offset, dst_strides.data()), name);
  return env.Undefined();
}

struct RowGeometry {
  int64_t outer, n, inner, k;
  IndexOperand indices;
};

RowGeometry read_geometry(const Napi::CallbackInfo& info, const char* name) {
  RowGeometry g{};
  if (get_storage(info, 0, name, "input") == get_storage(info, 1, name, "out")) {
    throw_error(info.Env(), std::string(name) + ": input and output must be different storages");
  }
  g.outer = get_int(info, 2, name, "outer");
  g.n = get_int(info, 3, name, "n");
  g.inner = get_int(info, 4, name, "inner");
  g.indices = get_indices(info, 5, name, "indices");
  g.k = g.indices.length;
  if (g.outer < 0 || g.n < 0 || g.inner < 0) throw_error(info.Env(), std::string(name) + ": negative extent");
  int64_t a = 0, b = 0;
  if (__builtin_mul_overflow(g.outer, g.n, &a) || __builtin_mul_overflow(a, g.inner, &a) ||
      __builtin_mul_overflow(g.outer, g.k, &b) || __builtin_mul_overflow(b, g.inner, &b)) {
    throw_error(info.Env(), std::string(name) + ": sizes overflow");
  }
  return g;
}

// indexSelect(x, out, outer, n, inner, indices): x [outer, n, inner] → out [outer, k, inner]
Napi::Value index_select_op(const Napi::CallbackInfo& info) {
  const char* name = "indexSelect";
  RowGeometry g = read_geometry(info, name);
  const Operand x = floats(info, 0, g.outer * g.n * g.inner, name, "x");
  const Operand out = floats(info, 1, g.outer * g.k * g.inner, name, "out");
  const Device device = same_device(info.Env(), name, {x, g.indices.operand, out});
  throw_if_error(info.Env(), dispatch(device, cpu::index_select, cuda::index_select, g.outer, g.n, g.inner, x, g.k, g.indices.array, out), name);
  return info.Env().Undefined();
}

// indexAdd(grad, out, outer, n, inner, indices): grad [outer, k, inner] → out [outer, n, inner]
Napi::Value index_add_op(const Napi::CallbackInfo& info) {
  const char* name = "indexAdd";
  RowGeometry g = read_geometry(info, name);
  const Operand grad = floats(info, 0, g.outer * g.k * g.inner, name, "grad");
  const Operand out = floats(info, 1, g.outer * g.n * g.inner, name, "out");
  const Device device = same_device(info.Env(), name, {grad, g.indices.operand, out});
  throw_if_error(info.Env(), dispatch(device, cpu::index_add, cuda::index_add, g.outer, g.n, g.inner, grad, g.k, g.indices.array, out), name);
  return info.Env().Undefined();
}

}  // namespace

void register_layout(Napi::Env env, Napi::Object exports) {
  exports.Set("stridedCopy", Napi::Function::New(env, strided_copy_op, "stridedCopy"));
  exports.Set("indexSelect", Napi::Function::New(env, index_select_op, "indexSelect"));
  exports.Set("indexAdd", Napi::Function::New(env, index_add_op, "indexAdd"));
}

}  // namespace binding
}  // namespace lmcl
