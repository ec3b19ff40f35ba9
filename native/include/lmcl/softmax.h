// Softmax, log-softmax and cross-entropy kernels. Float32, contiguous row-major; every kernel
// overwrites its outputs. See native/src/cpu/softmax.cpp.
#pragma once

#include <cstdint>

#include "lmcl/index_array.h"
#include "lmcl/status.h"

namespace lmcl {

namespace cpu {

// x is viewed as [outer, dim, inner] and the softmax runs along the middle axis (inner == 1 is
// a plain row softmax). outer, dim, inner >= 0.
//   log == false: y = exp(x − max) / Σ exp(x − max)
//   log == true:  y = (x − max) − log Σ exp(x − max)
Status softmax_forward(bool log, int64_t outer, int64_t dim, int64_t inner, const float* x, float* y);

// Backward from the saved forward output y and the incoming gradient g (same layout as x):
//   log == false: dx = y ⊙ (g − Σ_dim g ⊙ y)
//   log == true:  dx = g − exp(y) ⊙ Σ_dim g
Status softmax_backward(bool log, int64_t outer, int64_t dim, int64_t inner, const float* y, const float* g,
                        float* dx);

}  // namespace cpu

enum class CrossEntropyReduction { kNone = 0, kSum = 1, kMean = 2 };

namespace cpu {

// Cross-entropy of logits [batch, classes] against labels[batch], each in [0, classes):
//   stats[i] = (m_i = max_j x_ij, ls_i = log Σ_j exp(x_ij − m_i))   ([batch, 2], for the backward)
//   loss[i]  = ls_i − (x[i, label_i] − m_i)                         (= logsumexp − x[i, label_i])
//   out      = loss (kNone: batch floats) | Σ_i loss[i] (kSum: 1 float) | Σ_i loss[i] / batch (kMean)
// Labels are validated before any work ("label 105 at index 3 is out of range for 100 classes").
Status cross_entropy_forward(int64_t batch, int64_t classes, const float* logits, IndexArray labels,
                             CrossEntropyReduction reduction, float* out, float* stats);

// dx[i, j] = (exp(x_ij − m_i − ls_i) − [j == label_i]) · scale · grad[grad_per_row ? i : 0], from the
// forward's stats. Overwrites dx.
Status cross_entropy_backward(int64_t batch, int64_t classes, const float* logits, IndexArray labels,
                              const float* stats, const float* grad, bool grad_per_row, float scale, float* dx);

}  // namespace cpu

}  // namespace lmcl
