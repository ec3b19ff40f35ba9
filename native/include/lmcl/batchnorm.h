// Batch normalisation kernels (forward in training and eval mode, fused backward, training-mode
// double backward). Float32,
// layout [N, C, S] row-major, where S is the product of the spatial extents (NCHW: S = H·W;
// [N, C] input: S = 1). Per-channel vectors (weight, bias, running stats, saved stats) are [C].
// See native/src/cpu/batchnorm.cpp for the accumulation scheme. Tested against the float64
// reference test/reference/batchnorm_reference.ts (test/ops/batchnorm.test.ts).
#pragma once

#include <cstdint>

#include "lmcl/status.h"

namespace lmcl {

struct BatchNormShape {
  int64_t batch = 0;     // N
  int64_t channels = 0;  // C
  int64_t spatial = 0;   // S = H·W (1 for [N, C])
  int64_t numel() const { return batch * channels * spatial; }
};

// Checks extents (N >= 0, C >= 1, S >= 0) and that the element count fits comfortably in int64.
Status validate_batch_norm_shape(const BatchNormShape& shape);

// What the forward map may be followed by, in the same pass (a ResNet's "BN → ReLU" and
// "BN → + shortcut → ReLU" without writing and re-reading the intermediate tensors):
//   out = relu?(bn(x) + residual?)
// in exactly the float operations of the separate ops (bn's y, then y + residual, then relu), so
// the fused and unfused results have the same bits. relu(v) = v > 0 ? v : 0, NaN passed through.
struct BatchNormEpilogue {
  const float* residual = nullptr;  // [N, C, S] added after the affine map; null: none
  bool relu = false;                // the ReLU last
};

// The epilogue's part of the backward: dy is first masked by the ReLU, g = output > 0 ? dy : 0
// (the relu op's backward), then g is the residual's gradient and the input of the batch-norm
// backward.
struct BatchNormEpilogueGrad {
  const float* output = nullptr;  // the fused forward's output when it had the ReLU; null: g = dy
  float* grad_residual = nullptr; // receives g when the forward had a residual; null: not wanted
};

namespace cpu {

// Training mode. Per channel c over the M = N·S values x[n, c, s]:
//   mean_c = Σ x / M,  var_c = Σ (x − mean_c)² / M (biased),  invstd_c = 1/sqrt(var_c + eps)
//   y = (x − mean_c)·invstd_c·weight_c + bias_c   (weight/bias may be null: 1 and 0)
// Writes save_mean[c] = mean_c and save_invstd[c] = invstd_c (for backward). When running_mean
// and running_var are given (both or neither) they are updated in place:
//   running_mean = (1 − momentum)·running_mean + momentum·mean_c
//   running_var  = (1 − momentum)·running_var  + momentum·var_c·M/(M − 1)   (unbiased)
// Requires M > 1. The epilogue (residual add, ReLU) is applied to y in the same pass.
Status batch_norm_forward_training(const BatchNormShape& shape, const float* x, const float* weight,
                                   const float* bias, float* running_mean, float* running_var, double momentum,
                                   double eps, const BatchNormEpilogue& epilogue, float* y, float* save_mean,
                                   float* save_invstd);

// Eval mode: y = (x − running_mean_c)·invstd_c·weight_c + bias_c with invstd_c = 1/sqrt(running_var_c + eps).
// Also writes save_mean = running_mean and save_invstd = invstd (the constants backward needs).
Status batch_norm_forward_eval(const BatchNormShape& shape, const float* x, const float* weight, const float* bias,
                               const float* running_mean, const float* running_var, double eps,
                               const BatchNormEpilogue& epilogue, float* y, float* save_mean, float* save_invstd);

// Backward from grad_out (= dy), x and the saved mean/invstd. With x̂ = (x − mean_c)·invstd_c:
//   grad_bias_c   = Σ dy
//   grad_weight_c = Σ dy·x̂
//   training:  grad_input = weight_c·invstd_c·(dy − Σdy/M − x̂·Σ(dy·x̂)/M)
//   eval:      grad_input = weight_c·invstd_c·dy          (the statistics are constants)
// Any of grad_input, grad_weight, grad_bias may be null (not computed). weight may be null (1).
// With an epilogue, dy above is g, the ReLU-masked grad_out (BatchNormEpilogueGrad), and g is
// also written to epilogue.grad_residual when that is given.
Status batch_norm_backward(const BatchNormShape& shape, const float* grad_out, const float* x, const float* weight,
                           const float* save_mean, const float* save_invstd, bool training,
                           const BatchNormEpilogueGrad& epilogue, float* grad_input, float* grad_weight,
                           float* grad_bias);

// Training-mode double backward: the vector-Jacobian product of batch_norm_backward's grad_input
// (dx) and grad_weight (dγ) maps, as functions of grad_out (g), x and weight (γ; null: 1), with
// the statistics recomputed from x (so they depend on it). Per channel, M = N·S, s = invstd,
// xc = x − mean, x̂ = s·xc, ⟨·⟩ = Σ/M, upstream_input u (the gradient flowing into dx; null: 0) and
// upstream_weight γ̄ ([C], into dγ; null: 0). With P(H) = s·(H − ⟨H⟩ − x̂·⟨H·x̂⟩):
//   dx = γ·P(g),  dγ = Σ g·x̂
//   B             = Σ u·g − ⟨g⟩·Σ u − ⟨g·x̂⟩·Σ u·x̂
//   grad_grad_out = γ·P(u) + γ̄·x̂                              (into g)
//   grad_x        = P(H) − (γ·B·s²/M)·x̂,  H = γ̄·g − γ·s·(⟨u·x̂⟩·g + ⟨g·x̂⟩·u)   (into x)
//   grad_weight   = s·B                                          (into γ; from u only)
// Any output may be null. Requires M > 1. A fused ReLU is the caller's: g is the masked gradient.
Status batch_norm_double_backward(const BatchNormShape& shape, const float* grad_out, const float* x, const float* weight,
                                  const float* save_mean, const float* save_invstd, const float* upstream_input,
                                  const float* upstream_weight, float* grad_grad_out, float* grad_x,
                                  float* grad_weight);

}  // namespace cpu

}  // namespace lmcl
