// L2 normalisation and cosine similarity kernels. Float32, contiguous row-major; every kernel
// overwrites its outputs. See native/src/cpu/normalize.cpp.
#pragma once

#include <cstdint>

#include "lmcl/status.h"

namespace lmcl {

namespace cpu {

// x is viewed as [outer, dim, inner]; the norm runs along the middle axis (inner == 1: rows).
// norms has outer·inner floats: the unclamped ‖x‖₂ of every (outer, inner) slice.
//   y = x / max(‖x‖₂, eps)                                   (torch.nn.functional.normalize, p=2)
Status l2_normalize_forward(int64_t outer, int64_t dim, int64_t inner, float eps, const float* x, float* y,
                            float* norms);

// Backward from the saved output y and norms:
//   dx = (g − [‖x‖ ≥ eps] · y · Σ_dim g ⊙ y) / max(‖x‖, eps)
Status l2_normalize_backward(int64_t outer, int64_t dim, int64_t inner, float eps, const float* y,
                             const float* norms, const float* g, float* dx);

// PyTorch 1.13 cosine_similarity (a and b have the same shape [outer, dim, inner]):
//   n_a = max(‖a‖, eps), n_b = max(‖b‖, eps), out = Σ_dim (a / n_a) ⊙ (b / n_b)   (outer·inner floats)
// norms_a, norms_b receive the unclamped norms.
Status cosine_similarity_forward(int64_t outer, int64_t dim, int64_t inner, float eps, const float* a,
                                 const float* b, float* out, float* norms_a, float* norms_b);

// The gradient PyTorch 1.13 computes (its norms are clamped under no_grad, so the clamp is not
// differentiated):  ga = g / n_a · (b / n_b − out · a / n_a),  gb = g / n_b · (a / n_a − out · b / n_b).
// ga or gb may be null (not needed).
Status cosine_similarity_backward(int64_t outer, int64_t dim, int64_t inner, float eps, const float* a,
                                  const float* b, const float* out, const float* norms_a, const float* norms_b,
                                  const float* g, float* ga, float* gb);

}  // namespace cpu

}  // namespace lmcl
