// All four L-MCL contrastive terms of every listed embedding pair in one fused call
// (method.md §2.2). Float32, contiguous row-major; kernels overwrite their outputs.
// See native/src/cpu/cohort_contrastive.cpp.
#pragma once

#include <cstdint>

#include "lmcl/index_array.h"
#include "lmcl/status.h"

namespace lmcl {

namespace cpu {

// embeddings: count pointers to [batch, dim] arrays (z_0 .. z_{count−1}); labels [batch]; pairs [pair_count, 2]
// int32, each (a, b) with a ≠ b in [0, count); weights [pair_count, batch] or nullptr (all 1).
// With L_ij = z_i·z_jᵀ/τ, ℓ the weighted supervised InfoNCE and KL_w the weighted KL of
// infonce.h / contrastive_kl.h, out[p] = (VCL, ICL, SoftVCL, SoftICL) of pair p = (a, b):
//   VCL = ℓ(L_aa, w_p) + ℓ(L_bb, w_p)          ICL = ℓ(L_ab, w_p) + ℓ(L_ba, w_p)
//   SoftVCL = KL_w(L_aa ‖ sg L_bb) + KL_w(L_bb ‖ sg L_aa)
//   SoftICL = KL_w(L_ab ‖ sg L_ba) + KL_w(L_ba ‖ sg L_ab)
// softmax, probabilities: [count·batch, count·batch], the row softmaxes of every block the pairs
// use (InfoNCE at 1/τ with the diagonal 0; KL at 1/(τ·T)), kept for the backward (other blocks are
// not written); stats: cohort_stats_floats(...) floats.
Status cohort_contrastive_forward(int64_t count, int64_t batch, int64_t dim, const float* const* embeddings,
                                  IndexArray labels, int64_t pair_count, const int32_t* pairs,
                                  const float* weights, float temperature, float kl_temperature, float* out,
                                  float* softmax, float* probabilities, float* stats);

}  // namespace cpu

// The size of the forward's per-row statistics: (3·count² + 4·pair_count)·batch floats.
int64_t cohort_stats_floats(int64_t count, int64_t batch, int64_t pair_count);

namespace cpu {

// Gradients of Σ_{p,t} grad_output[p, t]·out[p, t] (grad_output [pair_count, 4]) to the embeddings
// (count pointers to [batch, dim], each nullptr when not needed; embeddings in no pair get 0) and
// the weights ([pair_count, batch], or nullptr). Reads the forward's softmax, probabilities and stats.
Status cohort_contrastive_backward(int64_t count, int64_t batch, int64_t dim, const float* const* embeddings,
                                   IndexArray labels, int64_t pair_count, const int32_t* pairs,
                                   const float* weights, float temperature, float kl_temperature,
                                   const float* softmax, const float* probabilities, const float* stats,
                                   const float* grad_output, float* const* grad_embeddings, float* grad_weights);

}  // namespace cpu

}  // namespace lmcl
