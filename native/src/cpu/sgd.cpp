// Fused SGD step (CPU), exactly the update of PyTorch 1.13's torch.optim.SGD (_single_tensor_sgd):
//
//   d = g (or −g with maximize);  if wd ≠ 0: d = d + wd·p
//   if momentum ≠ 0:
//     b = d                                   on the first step (buffer not yet initialised)
//     b = momentum·b + (1 − dampening)·d      afterwards
//     d = nesterov ? d + momentum·b : b
//   p = p + (−lr)·d
//
// One pass over memory: each element reads p, g (and b) once and writes p (and b) once, so the
// step moves 12 bytes/element without momentum and 20 with it. Specialised at compile time on
// the flags (weight decay, momentum, first step, nesterov, maximize) so the inner loop is
// branch-free and vectorises. Float32 arithmetic in PyTorch's order of operations (its
// non-vectorised path; with -ffp-contract=off there is no FMA). Threaded over fixed chunks;
// every element is independent, so the bits do not depend on the thread count.
// Tested against a float64 reimplementation of the formula in test/optim/sgd.test.ts.
#include "lmcl/sgd.h"

#include <cmath>
#include <string>

#include "lmcl/parallel.h"

namespace lmcl {
namespace cpu {
namespace {

constexpr int64_t kGrain = 1 << 15;

struct Scalars {
  float weight_decay, momentum, one_minus_dampening, negative_lr;
};

template <bool kDecay, bool kMomentum, bool kFirst, bool kNesterov, bool kMaximize>
void step_range(int64_t begin, int64_t end, float* __restrict param, const float* __restrict grad,
                float* __restrict buffer, Scalars s) {
  for (int64_t i = begin; i < end; ++i) {
    const float p = param[i];
    float d = kMaximize ? -grad[i] : grad[i];
    if (kDecay) d = d + s.weight_decay * p;
    if (kMomentum) {
      float b;
      if (kFirst) b = d;
      else b = buffer[i] * s.momentum + s.one_minus_dampening * d;
      buffer[i] = b;
      d = kNesterov ? d + s.momentum * b : b;
    }
    param[i] = p + s.negative_lr * d;
  }
}

template <bool kDecay, bool kMomentum, bool kFirst, bool kNesterov, bool kMaximize>
void run(int64_t count, float* param, const float* grad, float* buffer, Scalars s) {
  parallel_for(0, count, kGrain, [&](int64_t begin, int64_t end) {
    step_range<kDecay, kMomentum, kFirst, kNesterov, kMaximize>(begin, end, param, grad, buffer, s);
  });
}

template <bool kDecay, bool kMomentum, bool kFirst, bool kNesterov>
void dispatch_maximize(bool maximize, int64_t count, float* param, const float* grad, float* buffer, Scalars s) {
  if (maximize) run<kDecay, kMomentum, kFirst, kNesterov, true>(count, param, grad, buffer, s);
  else run<kDecay, kMomentum, kFirst, kNesterov, false>(count, param, grad, buffer, s);
}

template <bool kDecay>
void dispatch_momentum(const SgdOptions& o, bool first, int64_t count, float* param, const float* grad, float* buffer,
                       Scalars s) {
  if (o.momentum == 0.0) {
    dispatch_maximize<kDecay, false, false, false>(o.maximize, count, param, grad, buffer, s);
  } else if (first) {
    if (o.nesterov) dispatch_maximize<kDecay, true, true, true>(o.maximize, count, param, grad, buffer, s);
    else dispatch_maximize<kDecay, true, true, false>(o.maximize, count, param, grad, buffer, s);
  } else {
    if (o.nesterov) dispatch_maximize<kDecay, true, false, true>(o.maximize, count, param, grad, buffer, s);
    else dispatch_maximize<kDecay, true, false, false>(o.maximize, count, param, grad, buffer, s);
  }
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
  Scalars s{static_cast<float>(options.weight_decay), static_cast<float>(options.momentum),
            static_cast<float>(1.0 - options.dampening), static_cast<float>(-options.lr)};
  if (options.weight_decay != 0.0) dispatch_momentum<true>(options, first_step, count, param, grad, buffer, s);
  else dispatch_momentum<false>(options, first_step, count, param, grad, buffer, s);
  return Status::ok();
}

}  // namespace cpu
}  // namespace lmcl
