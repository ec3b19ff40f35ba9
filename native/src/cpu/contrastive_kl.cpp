// KL divergences between row softmaxes (CPU): the soft contrastive terms (KL_w of method.md §0.1,
// fused and tiled over anchor rows like infonce.cpp) and logit KD (distillKL, row-wise).
//
//   contrastive KL: S = sA·sCᵀ, T = tA·tCᵀ ([B, B], never stored whole), s = 1/(τ·T_kl)
//     lse^S_u = log Σ_v exp(s·S_uv), lse^T_u likewise (all columns, diagonal included)
//     KL_u = Σ_v q_uv (log q_uv − log p_uv) = s·Σ_v q_uv (T_uv − S_uv) + lse^S_u − lse^T_u
//     loss = T_kl²·Σ_u w_u·KL_u / B,   ∂S_uv = w_u·T_kl²·s·(p_uv − q_uv)/B,   ∂w_u = T_kl²·KL_u/B
//     ∂sA = ∂S·sC, ∂sC = ∂Sᵀ·sA; the teacher side gets nothing (stop-gradient).
//   distill KL: the same row formula on logits [B, C] with s = 1/T.
// Layout: embeddings [B, D] and logits [B, C] row-major; weights [B] or none; row_stats [B, 3] =
// (lse^S, lse^T, KL). Contrastive KL: blocks of rows_per_block(B) anchors, the student and teacher
// similarity rows of a block from two GEMMs into two 8 MiB scratch blocks; the backward turns the
// student block into gradient rows in place and multiplies back (contrastive_rows.h). Extra memory
// O(B + 16 MiB). When the op asks for it (B ≤ 2048) the forward also writes the direction rows
// p − q ([B, B]) and the backward is two GEMMs with per-row factors (no recomputation, no exp).
// Deterministic (rows reduced by one thread each, sequential double loss sum,
// ∂sC accumulated block by block in order).
// Tested against a float64 reference (test/reference/contrastive_reference.ts) in
// test/ops/contrastive_kl.test.ts, with finite differences and second-order checks.
#include "lmcl/contrastive_kl.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "lmcl/allocator.h"
#include "lmcl/parallel.h"
#include "contrastive_rows.h"
#include "simd_variants.h"

namespace lmcl {
namespace cpu {
namespace {

struct KlArgs {
  int64_t first, columns;
  float scale;
  float* student;          // [rows, columns]; backward: overwritten by gradient rows
  const float* teacher;    // [rows, columns]
  float* row_stats;        // [batch, 3]
  const float* weights;    // backward
  float coefficient;       // backward: the factor of (p − q), before w_u
  float* direction;        // forward, optional: [batch, columns] rows p_u − q_u
};

LMCL_INLINE void kl_forward_rows_body(int64_t begin, int64_t end, const KlArgs& args) {
  const int64_t n = args.columns;
  for (int64_t r = begin; r < end; ++r) {
    const int64_t u = args.first + r;
    const float* s = args.student + r * n;
    const float* t = args.teacher + r * n;
    const float lse_student = log_sum_exp(s, n, -1, args.scale);
    const float lse_teacher = log_sum_exp(t, n, -1, args.scale);
    args.row_stats[3 * u] = lse_student;
    args.row_stats[3 * u + 1] = lse_teacher;
    args.row_stats[3 * u + 2] = kl_cross(s, t, n, args.scale, lse_student, lse_teacher);
  }
}

// gradient row (written over the student row, or into `out` for distillKL): c_u·(p − q).
LMCL_INLINE void kl_backward_rows_body(int64_t begin, int64_t end, const KlArgs& args) {
  const int64_t n = args.columns;
  for (int64_t r = begin; r < end; ++r) {
    const int64_t u = args.first + r;
    float* s = args.student + r * n;
    const float* t = args.teacher + r * n;
    const float lse_student = args.row_stats[3 * u];
    const float lse_teacher = args.row_stats[3 * u + 1];
    const float c = args.coefficient * (args.weights ? args.weights[u] : 1.0f);
    for (int64_t v = 0; v < n; ++v) {
      s[v] = c * (exp_approx(args.scale * s[v] - lse_student) - exp_approx(args.scale * t[v] - lse_teacher));
    }
  }
}

// The forward that also writes the direction rows p − q (p stored while summing, q recomputed in
// the final pass: 3 exps per element, as the plain forward, and the backward then needs none).
LMCL_INLINE void kl_forward_direction_rows_body(int64_t begin, int64_t end, const KlArgs& args) {
  const int64_t n = args.columns;
  for (int64_t r = begin; r < end; ++r) {
    const int64_t u = args.first + r;
    const float* __restrict s = args.student + r * n;
    const float* __restrict t = args.teacher + r * n;
    float* __restrict direction = args.direction + u * n;
    const float shift_student = args.scale * max_except(s, n, -1);
    const float total_student = exp_sum_except(s, n, -1, args.scale, shift_student, direction);
    const float lse_student = shift_student + std::log(total_student);
    const float lse_teacher = log_sum_exp(t, n, -1, args.scale);
    args.row_stats[3 * u] = lse_student;
    args.row_stats[3 * u + 1] = lse_teacher;
    args.row_stats[3 * u + 2] = kl_cross(s, t, n, args.scale, lse_student, lse_teacher);
    const float inverse_student = 1.0f / total_student;
    for (int64_t v = 0; v < n; ++v) {
      direction[v] = direction[v] * inverse_student - exp_approx(args.scale * t[v] - lse_teacher);
    }
  }
}

LMCL_DEFINE_VARIANTS(kl_forward_rows, KlArgs)
LMCL_DEFINE_VARIANTS(kl_forward_direction_rows, KlArgs)
LMCL_DEFINE_VARIANTS(kl_backward_rows, KlArgs)

Status check_temperature(float value, const char* name) {
  LMCL_CHECK_ARG(std::isfinite(value) && value > 0.0f,
                 std::string(name) + " must be a finite number > 0, got " + std::to_string(value));
  return Status::ok();
}

float weighted_kl_sum(int64_t batch, const float* weights, const float* row_stats) {
  double total = 0.0;
  for (int64_t u = 0; u < batch; ++u) total += static_cast<double>(weights ? weights[u] : 1.0f) * row_stats[3 * u + 2];
  return static_cast<float>(total);
}

}  // namespace

Status contrastive_kl_forward(int64_t batch, int64_t dim, const float* student_anchor, const float* student_contrast,
                              const float* teacher_anchor, const float* teacher_contrast, const float* weights,
                              float temperature, float kl_temperature, float* loss, float* row_stats,
                              float* direction) {
  LMCL_CHECK_ARG(batch >= 0 && dim >= 0, "negative extent in embedding shape " + describe_shape({batch, dim}));
  LMCL_RETURN_IF_ERROR(check_temperature(temperature, "temperature"));
  LMCL_RETURN_IF_ERROR(check_temperature(kl_temperature, "klTemperature"));
  const int64_t block_rows = rows_per_block(batch);
  const size_t block_bytes = sizeof(float) * static_cast<size_t>(block_rows * batch);
  ScratchBuffer student(block_bytes), teacher(block_bytes);
  if (!student.ok() || !teacher.ok()) return out_of_memory("contrastiveKL: similarity blocks of " + describe_shape({block_rows, batch}));
  KlArgs args{0, batch, 1.0f / (temperature * kl_temperature), student.floats(), teacher.floats(), row_stats, nullptr, 0.0f,
              direction};
  auto body = direction ? kl_forward_direction_rows_pick() : kl_forward_rows_pick();
  for (int64_t first = 0; first < batch; first += block_rows) {
    const int64_t rows = std::min(block_rows, batch - first);
    LMCL_RETURN_IF_ERROR(similarity_block(first, rows, batch, dim, student_anchor, student_contrast, student.floats()));
    LMCL_RETURN_IF_ERROR(similarity_block(first, rows, batch, dim, teacher_anchor, teacher_contrast, teacher.floats()));
    args.first = first;
    parallel_for(0, rows, contrastive_row_grain(batch), [&](int64_t begin, int64_t end) { body(begin, end, args); });
  }
  loss[0] = batch > 0 ? kl_temperature * kl_temperature * weighted_kl_sum(batch, weights, row_stats) / static_cast<float>(batch) : 0.0f;
  return Status::ok();
}

Status contrastive_kl_backward(int64_t batch, int64_t dim, const float* student_anchor, const float* student_contrast,
                               const float* teacher_anchor, const float* teacher_contrast, const float* weights,
                               float temperature, float kl_temperature, const float* row_stats,
                               const float* direction, const float* grad_output, float* grad_student_anchor,
                               float* grad_student_contrast, float* grad_weights) {
  LMCL_CHECK_ARG(batch >= 0 && dim >= 0, "negative extent in embedding shape " + describe_shape({batch, dim}));
  LMCL_RETURN_IF_ERROR(check_temperature(temperature, "temperature"));
  LMCL_RETURN_IF_ERROR(check_temperature(kl_temperature, "klTemperature"));
  if (batch == 0) return Status::ok();
  const float g = grad_output[0];
  const float squared = kl_temperature * kl_temperature;
  if (grad_weights) {
    for (int64_t u = 0; u < batch; ++u) grad_weights[u] = g * squared * row_stats[3 * u + 2] / static_cast<float>(batch);
  }
  if (!grad_student_anchor && !grad_student_contrast) return Status::ok();
  const float scale = 1.0f / (temperature * kl_temperature);
  if (direction) {
    std::vector<float> row_factor(static_cast<size_t>(batch));
    const float factor = g * squared * scale / static_cast<float>(batch);
    for (int64_t u = 0; u < batch; ++u) row_factor[u] = factor * (weights ? weights[u] : 1.0f);
    return similarity_backward_from_direction(batch, dim, direction, row_factor.data(), student_anchor, student_contrast,
                                              grad_student_anchor, grad_student_contrast);
  }
  const int64_t block_rows = rows_per_block(batch);
  const size_t block_bytes = sizeof(float) * static_cast<size_t>(block_rows * batch);
  ScratchBuffer student(block_bytes), teacher(block_bytes);
  if (!student.ok() || !teacher.ok()) {
    return out_of_memory("contrastiveKL backward: similarity blocks of " + describe_shape({block_rows, batch}));
  }
  KlArgs args{0, batch, scale, student.floats(), teacher.floats(), const_cast<float*>(row_stats), weights,
              g * squared * scale / static_cast<float>(batch), nullptr};
  auto body = kl_backward_rows_pick();
  for (int64_t first = 0; first < batch; first += block_rows) {
    const int64_t rows = std::min(block_rows, batch - first);
    LMCL_RETURN_IF_ERROR(similarity_block(first, rows, batch, dim, student_anchor, student_contrast, student.floats()));
    LMCL_RETURN_IF_ERROR(similarity_block(first, rows, batch, dim, teacher_anchor, teacher_contrast, teacher.floats()));
    args.first = first;
    parallel_for(0, rows, contrastive_row_grain(batch), [&](int64_t begin, int64_t end) { body(begin, end, args); });
    LMCL_RETURN_IF_ERROR(similarity_block_backward(first, rows, batch, dim, student.floats(), student_anchor,
                                                   student_contrast, grad_student_anchor, grad_student_contrast));
  }
  return Status::ok();
}

Status distill_kl_forward(int64_t batch, int64_t classes, const float* student, const float* teacher,
                          const float* weights, float temperature, float* loss, float* row_stats) {
  LMCL_CHECK_ARG(batch >= 0 && classes >= 0, "negative extent in logits shape " + describe_shape({batch, classes}));
  LMCL_RETURN_IF_ERROR(check_temperature(temperature, "temperature"));
  KlArgs args{0, classes, 1.0f / temperature, const_cast<float*>(student), teacher, row_stats, nullptr, 0.0f, nullptr};
  auto body = kl_forward_rows_pick();
  parallel_for(0, batch, contrastive_row_grain(classes), [&](int64_t begin, int64_t end) { body(begin, end, args); });
  loss[0] = batch > 0 ? temperature * temperature * weighted_kl_sum(batch, weights, row_stats) / static_cast<float>(batch) : 0.0f;
  return Status::ok();
}

Status distill_kl_backward(int64_t batch, int64_t classes, const float* student, const float* teacher,
                           const float* weights, float temperature, const float* row_stats, const float* grad_output,
                           float* grad_student, float* grad_weights) {
  LMCL_CHECK_ARG(batch >= 0 && classes >= 0, "negative extent in logits shape " + describe_shape({batch, classes}));
  LMCL_RETURN_IF_ERROR(check_temperature(temperature, "temperature"));
  if (batch == 0) return Status::ok();
  const float g = grad_output[0];
  if (grad_weights) {
    for (int64_t u = 0; u < batch; ++u) {
      grad_weights[u] = g * temperature * temperature * row_stats[3 * u + 2] / static_cast<float>(batch);
    }
  }
  if (!grad_student) return Status::ok();
  // The row body works in place: copy the student logits into the output, then overwrite.
  std::copy(student, student + batch * classes, grad_student);
  KlArgs args{0, classes, 1.0f / temperature, grad_student, teacher, const_cast<float*>(row_stats), weights,
              g * temperature / static_cast<float>(batch), nullptr};
  auto body = kl_backward_rows_pick();
  parallel_for(0, batch, contrastive_row_grain(classes), [&](int64_t begin, int64_t end) { body(begin, end, args); });
  return Status::ok();
}

}  // namespace cpu
}  // namespace lmcl
