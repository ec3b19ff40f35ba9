// Fused SGD step (CUDA), in place. The reference is lmcl::cpu::sgd_step (native/src/cpu/sgd.cpp,
// PyTorch 1.13 torch.optim.SGD's _single_tensor_sgd); the parity cases are native/test/cases/sgd.cpp.
//
//   d = g (or −g with maximize);  if wd ≠ 0: d = d + wd·p
//   if momentum ≠ 0:  b = first_step ? d : momentum·b + (1 − dampening)·d
//                     d = nesterov ? d + momentum·b : b
//   p = p + (−lr)·d
//
// param, grad, buffer: device pointers (buffer may be null when momentum == 0 and is not touched
// then); options is a host struct. The scalars are rounded to float32 on the host as the CPU does
// (1 − dampening and −lr formed in double first), and every multiply and add is a separately
// rounded __fmul_rn / __fadd_rn, so nvcc cannot contract them into FMAs: the same float32
// operations in the same order as the CPU (built with -ffp-contract=off), the same bits.
// Memory-bound (12 bytes/element without momentum, 20 with): one grid-stride pass of 256-thread
// blocks, float4 loads and stores when all pointers are 16-byte aligned (scalar tail). Specialised
// at compile time on the flags, as on the CPU, so the loop is branch-free.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "common.cuh"
#include "lmcl/cuda_ops.h"
#include "lmcl/sgd.h"

namespace lmcl {
namespace cuda {
namespace {

using detail::kThreads;

struct Scalars {
  float weight_decay, momentum, one_minus_dampening, negative_lr;
};

// One element; `b` is read only when !kFirst and written when kMomentum.
template <bool kDecay, bool kMomentum, bool kFirst, bool kNesterov, bool kMaximize>
__device__ inline void step_element(float& p, float g, float& b, const Scalars& s) {
  float d = kMaximize ? -g : g;
  if (kDecay) d = __fadd_rn(d, __fmul_rn(s.weight_decay, p));
  if (kMomentum) {
    const float next = kFirst ? d : __fadd_rn(__fmul_rn(b, s.momentum), __fmul_rn(s.one_minus_dampening, d));
    b = next;
    d = kNesterov ? __fadd_rn(d, __fmul_rn(s.momentum, next)) : next;
  }
  p = __fadd_rn(p, __fmul_rn(s.negative_lr, d));
}

template <bool kDecay, bool kMomentum, bool kFirst, bool kNesterov, bool kMaximize>
__global__ void sgd_kernel(int64_t count, float* param, const float* grad, float* buffer, Scalars s, bool vectorized) {
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t quads = vectorized ? count / 4 : 0;
  for (int64_t i = first; i < quads; i += stride) {
    float4 p = reinterpret_cast<float4*>(param)[i];
    const float4 g = reinterpret_cast<const float4*>(grad)[i];
    float4 b = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (kMomentum && !kFirst) b = reinterpret_cast<float4*>(buffer)[i];
    step_element<kDecay, kMomentum, kFirst, kNesterov, kMaximize>(p.x, g.x, b.x, s);
    step_element<kDecay, kMomentum, kFirst, kNesterov, kMaximize>(p.y, g.y, b.y, s);
    step_element<kDecay, kMomentum, kFirst, kNesterov, kMaximize>(p.z, g.z, b.z, s);
    step_element<kDecay, kMomentum, kFirst, kNesterov, kMaximize>(p.w, g.w, b.w, s);
    if (kMomentum) reinterpret_cast<float4*>(buffer)[i] = b;
    reinterpret_cast<float4*>(param)[i] = p;
  }
  for (int64_t i = quads * 4 + first; i < count; i += stride) {
    float p = param[i];
    float b = kMomentum && !kFirst ? buffer[i] : 0.0f;
    step_element<kDecay, kMomentum, kFirst, kNesterov, kMaximize>(p, grad[i], b, s);
    if (kMomentum) buffer[i] = b;
    param[i] = p;
  }
}

bool aligned16(const void* pointer) { return (reinterpret_cast<uintptr_t>(pointer) & 15u) == 0; }

template <bool kDecay, bool kMomentum, bool kFirst, bool kNesterov, bool kMaximize>
Status launch(int64_t count, float* param, const float* grad, float* buffer, Scalars s) {
  const bool vectorized = aligned16(param) && aligned16(grad) && (!kMomentum || aligned16(buffer));
  sgd_kernel<kDecay, kMomentum, kFirst, kNesterov, kMaximize>
      <<<detail::blocks_for(vectorized ? (count + 3) / 4 : count), kThreads>>>(count, param, grad, buffer, s, vectorized);
  return detail::launch_status("sgd_step");
}

template <bool kDecay, bool kMomentum, bool kFirst, bool kNesterov>
Status dispatch_maximize(bool maximize, int64_t count, float* param, const float* grad, float* buffer, Scalars s) {
  if (maximize) return launch<kDecay, kMomentum, kFirst, kNesterov, true>(count, param, grad, buffer, s);
  return launch<kDecay, kMomentum, kFirst, kNesterov, false>(count, param, grad, buffer, s);
}

template <bool kDecay>
Status dispatch_momentum(const SgdOptions& o, bool first, int64_t count, float* param, const float* grad, float* buffer,
                         Scalars s) {
  if (o.momentum == 0.0) return dispatch_maximize<kDecay, false, false, false>(o.maximize, count, param, grad, buffer, s);
  if (first) {
    if (o.nesterov) return dispatch_maximize<kDecay, true, true, true>(o.maximize, count, param, grad, buffer, s);
    return dispatch_maximize<kDecay, true, true, false>(o.maximize, count, param, grad, buffer, s);
  }
  if (o.nesterov) return dispatch_maximize<kDecay, true, false, true>(o.maximize, count, param, grad, buffer, s);
  return dispatch_maximize<kDecay, true, false, false>(o.maximize, count, param, grad, buffer, s);
}

}  // namespace

Status sgd_step(int64_t count, float* param, const float* grad, float* buffer, const SgdOptions& options,
                bool first_step) {
  LMCL_CHECK_ARG(count >= 0, "negative element count");
  LMCL_CHECK_ARG(std::isfinite(options.lr) && options.lr >= 0.0, "lr must be a finite number >= 0, got " + std::to_string(options.lr));
  LMCL_CHECK_ARG(std::isfinite(options.momentum) && options.momentum >= 0.0, "momentum must be a finite number >= 0");
  LMCL_CHECK_ARG(std::isfinite(options.dampening), "dampening must be finite");
  LMCL_CHECK_ARG(std::isfinite(options.weight_decay) && options.weight_decay >= 0.0, "weight_decay must be a finite number >= 0");
  LMCL_CHECK_ARG(!options.nesterov || (options.momentum > 0.0 && options.dampening == 0.0),
                 "Nesterov momentum requires a momentum and zero dampening");
  LMCL_CHECK_ARG(options.momentum == 0.0 || buffer != nullptr, "momentum needs a momentum buffer");
  if (count == 0) return Status::ok();
  const Scalars s{static_cast<float>(options.weight_decay), static_cast<float>(options.momentum),
                  static_cast<float>(1.0 - options.dampening), static_cast<float>(-options.lr)};
  if (options.weight_decay != 0.0) return dispatch_momentum<true>(options, first_step, count, param, grad, buffer, s);
  return dispatch_momentum<false>(options, first_step, count, param, grad, buffer, s);
}

}  // namespace cuda
}  // namespace lmcl
