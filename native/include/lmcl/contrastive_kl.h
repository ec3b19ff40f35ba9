// KL divergences between row softmaxes: of similarity matrices (the soft contrastive terms of
// method.md §0.1) and of logits (logit KD). Float32, contiguous row-major; kernels overwrite their
// outputs. See native/src/cpu/contrastive_kl.cpp.
#pragma once

#include <cstdint>

#include "lmcl/status.h"

namespace lmcl {

namespace cpu {

// Student similarities S = student_anchor·student_contrastᵀ, teacher T = teacher_anchor·teacher_contrastᵀ
// (all [batch, dim]); logits S/(τ·T_kl), every column (diagonal included); teacher detached:
//   p_u = softmax(S_u/(τ·T_kl)), q_u = softmax(T_u/(τ·T_kl)), KL_u = Σ_v q_uv (log q_uv − log p_uv)
//   loss = T_kl² · Σ_u w_u·KL_u / batch          (weights nullptr: w = 1)
// row_stats: [batch, 3] = (lse of the student row, lse of the teacher row, KL_u). direction:
// nullptr, or [batch, batch] to receive the rows p_u − q_u for a backward without recomputation.
Status contrastive_kl_forward(int64_t batch, int64_t dim, const float* student_anchor, const float* student_contrast,
                              const float* teacher_anchor, const float* teacher_contrast, const float* weights,
                              float temperature, float kl_temperature, float* loss, float* row_stats,
                              float* direction);

// Gradients of g·loss to the student side and the weights (each nullptr when not needed):
//   ∂S_uv = g·w_u·(T_kl/(τ·batch))·(p_uv − q_uv) — multiplied back by two GEMMs; ∂w_u = g·T_kl²·KL_u/batch.
Status contrastive_kl_backward(int64_t batch, int64_t dim, const float* student_anchor, const float* student_contrast,
                               const float* teacher_anchor, const float* teacher_contrast, const float* weights,
                               float temperature, float kl_temperature, const float* row_stats,
                               const float* direction, const float* grad_output, float* grad_student_anchor,
                               float* grad_student_contrast, float* grad_weights);

// Logit KD over [batch, classes] logits: p = softmax(student/T), q = softmax(teacher/T) (detached),
//   loss = T² · Σ_u w_u·KL(q_u ‖ p_u) / batch;  row_stats [batch, 3] as above.
Status distill_kl_forward(int64_t batch, int64_t classes, const float* student, const float* teacher,
                          const float* weights, float temperature, float* loss, float* row_stats);

// ∂student_uv = g·w_u·(T/batch)·(p_uv − q_uv); ∂w_u = g·T²·KL_u/batch (either output may be nullptr).
Status distill_kl_backward(int64_t batch, int64_t classes, const float* student, const float* teacher,
                           const float* weights, float temperature, const float* row_stats, const float* grad_output,
                           float* grad_student, float* grad_weights);

}  // namespace cpu

}  // namespace lmcl
