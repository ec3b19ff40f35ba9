// Supervised InfoNCE over a batch similarity matrix (method.md §0.1), fused and tiled.
// Float32, contiguous row-major; kernels overwrite their outputs. See native/src/cpu/infonce.cpp.
#pragma once

#include <cstdint>

#include "lmcl/index_array.h"
#include "lmcl/status.h"

namespace lmcl {

namespace cpu {

// anchor, contrast: [batch, dim]; labels: [batch] (compared only for equality); weights: [batch]
// or nullptr (all 1). With L = anchor·contrastᵀ / temperature, P_u = {v ≠ u : labels_v = labels_u}:
//   lse_u  = log Σ_{k≠u} exp(L_uk)
//   term_u = lse_u − (1/|P_u|) Σ_{v∈P_u} L_uv                         (rows with P_u = ∅: 0)
//   loss   = Σ_{u: P_u≠∅} w_u·term_u / #{u : P_u ≠ ∅}                 (0 when no row has a positive)
// row_stats: [batch, 2] = (lse_u, term_u), kept for the backward. direction: nullptr, or [batch,
// batch] to receive the rows softmax_{k≠u}(L_u) − [k∈P_u]/|P_u| (zero rows without positives) that
// let the backward skip recomputing the similarities.
Status supcon_infonce_forward(int64_t batch, int64_t dim, const float* anchor, const float* contrast,
                              IndexArray labels, const float* weights, float temperature, float* loss,
                              float* row_stats, float* direction);

// Gradients of g·loss (g = grad_output[0]) from the forward's row_stats (and its direction rows
// when it wrote them; nullptr: recompute); each output may be nullptr (not needed).
// grad_anchor, grad_contrast: [batch, dim]; grad_weights: [batch].
Status supcon_infonce_backward(int64_t batch, int64_t dim, const float* anchor, const float* contrast,
                               IndexArray labels, const float* weights, float temperature,
                               const float* row_stats, const float* direction, const float* grad_output,
                               float* grad_anchor, float* grad_contrast, float* grad_weights);

}  // namespace cpu

}  // namespace lmcl
