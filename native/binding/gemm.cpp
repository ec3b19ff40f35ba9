// Bindings for the gemm kernels (native/src/cpu/gemm.cpp). Checks and conversions only.
#include "args.h"
#include "lmcl/gemm.h"

namespace lmcl {
namespace binding {
namespace {

// gemm(a, b, c, transposeA, transposeB, m, n, k, alpha, beta): dense row-major operands,
// lda = transposeA ? m : k, ldb = transposeB ? k : n, ldc = n. C = alpha*op(A)*op(B) + beta*C.
Napi::Value gemm_binding(const Napi::CallbackInfo& info) {
  const char* op = "gemm";
  if (info.Length() != 10) throw_error(info.Env(), "gemm: expected 10 arguments (a, b, c, transposeA, transposeB, m, n, k, alpha, beta), got " + std::to_string(info.Length()));
  const bool ta = get_bool(info, 3, op, "transposeA");
  const bool tb = get_bool(info, 4, op, "transposeB");
  const int64_t m = get_int(info, 5, op, "m");
  const int64_t n = get_int(info, 6, op, "n");
  const int64_t k = get_int(info, 7, op, "k");
  const double alpha = get_number(info, 8, op, "alpha");
  const double beta = get_number(info, 9, op, "beta");
  if (m < 0 || n < 0 || k < 0) {
    throw_error(info.Env(), "gemm: sizes must be >= 0, got m=" + std::to_string(m) + ", n=" + std::to_string(n) +
                                ", k=" + std::to_string(k));
  }
  const Operand a = floats(info, 0, m * k, op, "a");
  const Operand b = floats(info, 1, k * n, op, "b");
  const Operand c = floats(info, 2, m * n, op, "c");
  const int64_t lda = std::max<int64_t>(1, ta ? m : k);
  const int64_t ldb = std::max<int64_t>(1, tb ? k : n);
  const int64_t ldc = std::max<int64_t>(1, n);
  const Device device = same_device(info.Env(), op, {a, b, c});
  throw_if_error(info.Env(),
                 dispatch(device, cpu::gemm, cuda::gemm, ta, tb, m, n, k, static_cast<float>(alpha), a, lda, b, ldb, static_cast<float>(beta), c, ldc),
                 op);
  return info.Env().Undefined();
}

}  // namespace

void register_gemm(Napi::Env env, Napi::Object exports) {
  exports.Set("gemm", Napi::Function::New(env, gemm_binding, "gemm"));
}

}  // namespace binding
}  // namespace lmcl
