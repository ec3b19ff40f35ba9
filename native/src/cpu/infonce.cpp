// Supervised InfoNCE (CPU), fused and tiled over anchor rows (method.md §0.1; the SupCon-"out"
// form of the MCL/L-MCL reference, with per-anchor weights).
//
//   L = anchor·contrastᵀ / τ   ([B, B], never stored whole)
//   P_u = {v ≠ u : y_v = y_u},  lse_u = log Σ_{k≠u} exp(L_uk),  term_u = lse_u − mean_{v∈P_u} L_uv
//   loss = Σ_{u: P_u≠∅} w_u·term_u / R,   R = #{u : P_u ≠ ∅}
//   ∂loss/∂L_uk = (w_u/R)·(softmax_{k≠u}(L_u)_k − [k∈P_u]/|P_u|)  (k ≠ u; 0 on the diagonal and
//                 for rows without positives),  ∂loss/∂w_u = term_u / R
//   ∂anchor = (1/τ)·G·contrast,  ∂contrast = (1/τ)·Gᵀ·anchor
// Layout: anchor, contrast [B, D] row-major; labels int32 [B]; weights [B] or none; row_stats
// [B, 2] = (lse_u, term_u). Work: anchors in blocks of rows_per_block(B) rows; each block's
// similarity rows come from one GEMM into an 8 MiB scratch, are reduced row by row (forward) or
// turned into gradient rows in place and multiplied back by two GEMMs (backward). Extra memory is
// O(B + 8 MiB) whatever B is (B = 16,384: a composition needs 1 GiB for L alone). The row
// log-sum-exp is exact in two sweeps (max, then Σ exp) because a block holds whole rows.
// Optionally (the op asks for it when B² floats are affordable, B ≤ 2048) the forward also writes
// the gradient direction rows softmax_{≠u}(L_u) − P_u/|P_u| ([B, B]); the backward is then two
// GEMMs with per-row factors, without recomputing the similarities or any exp.
// Deterministic: every row is reduced by one thread in a fixed order, the loss is a sequential
// double sum, and ∂contrast accumulates block by block in order.
// Tested against a float64 reference (test/reference/contrastive_reference.ts) in
// test/ops/infonce.test.ts, with finite differences and second-order checks.
#include "lmcl/infonce.h"

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

struct InfonceArgs {
  int64_t first, batch;
  float scale;
  const int32_t* labels;
  const int32_t* positives;
  float* block;            // [rows, batch] similarities; backward: overwritten by gradient rows
  float* row_stats;        // [batch, 2]
  float* direction;        // forward, optional: [batch, batch] rows softmax_{≠u} − P_u/|P_u| (0 without positives)
  const float* weights;    // backward: per-row coefficient factor (nullptr: 1)
  float coefficient;       // backward: g / R · scale
};

LMCL_INLINE void infonce_forward_rows_body(int64_t begin, int64_t end, const InfonceArgs& args) {
  const int64_t n = args.batch;
  for (int64_t r = begin; r < end; ++r) {
    const int64_t u = args.first + r;
    const float* row = args.block + r * n;
    const int32_t count = args.positives[u];
    float lse;
    if (args.direction) {
      // The softmax row is stored while summing (no extra exp), then turned into the direction.
      float* direction = args.direction + u * n;
      const float maximum = max_except(row, n, u);
      const float shift = args.scale * maximum;
      const float total = maximum == -kInfinity ? 0.0f : exp_sum_except(row, n, u, args.scale, shift, direction);
      lse = maximum == -kInfinity ? -kInfinity : shift + std::log(total);
      if (count > 0) {
        const float inverse = 1.0f / total, positive = 1.0f / count;
        const int32_t label = args.labels[u];
        for (int64_t k = 0; k < n; ++k) direction[k] = direction[k] * inverse - (args.labels[k] == label ? positive : 0.0f);
        direction[u] = 0.0f;
      } else {
        for (int64_t k = 0; k < n; ++k) direction[k] = 0.0f;
      }
    } else {
      lse = log_sum_exp(row, n, u, args.scale);
    }
    const float term = count > 0 ? lse - args.scale * positive_sum(row, n, u, args.labels, args.labels[u]) / count : 0.0f;
    args.row_stats[2 * u] = lse;
    args.row_stats[2 * u + 1] = term;
  }
}

LMCL_INLINE void infonce_backward_rows_body(int64_t begin, int64_t end, const InfonceArgs& args) {
  const int64_t n = args.batch;
  for (int64_t r = begin; r < end; ++r) {
    const int64_t u = args.first + r;
    float* row = args.block + r * n;
    const int32_t count = args.positives[u];
    if (count == 0) {
      for (int64_t k = 0; k < n; ++k) row[k] = 0.0f;
      continue;
    }
    const float coefficient = args.coefficient * (args.weights ? args.weights[u] : 1.0f);
    infonce_gradient(row, n, u, args.scale, args.row_stats[2 * u], args.labels, args.labels[u], 1.0f / count,
                     coefficient, row);
  }
}

LMCL_DEFINE_VARIANTS(infonce_forward_rows, InfonceArgs)
LMCL_DEFINE_VARIANTS(infonce_backward_rows, InfonceArgs)

Status check_arguments(int64_t batch, int64_t dim, float temperature) {
  LMCL_CHECK_ARG(batch >= 0 && dim >= 0, "negative extent in embedding shape " + describe_shape({batch, dim}));
  LMCL_CHECK_ARG(std::isfinite(temperature) && temperature > 0.0f,
                 "temperature must be a finite number > 0, got " + std::to_string(temperature));
  return Status::ok();
}

}  // namespace

Status supcon_infonce_forward(int64_t batch, int64_t dim, const float* anchor, const float* contrast,
                              IndexArray labels_array, const float* weights, float temperature, float* loss,
                              float* row_stats, float* direction) {
  const int32_t* labels = labels_array.host;
  LMCL_RETURN_IF_ERROR(check_arguments(batch, dim, temperature));
  std::vector<int32_t> positives(static_cast<size_t>(batch));
  const int64_t rows_with_positives = count_positives(batch, labels, positives.data());
  const int64_t block_rows = rows_per_block(batch);
  ScratchBuffer block(sizeof(float) * static_cast<size_t>(block_rows * batch));
  if (!block.ok()) return out_of_memory("supConInfoNCE: similarity block of " + describe_shape({block_rows, batch}));
  InfonceArgs args{0, batch, 1.0f / temperature, labels, positives.data(), block.floats(), row_stats, direction, nullptr, 0.0f};
  auto body = infonce_forward_rows_pick();
  for (int64_t first = 0; first < batch; first += block_rows) {
    const int64_t rows = std::min(block_rows, batch - first);
    LMCL_RETURN_IF_ERROR(similarity_block(first, rows, batch, dim, anchor, contrast, block.floats()));
    args.first = first;
    parallel_for(0, rows, contrastive_row_grain(batch), [&](int64_t begin, int64_t end) { body(begin, end, args); });
  }
  double total = 0.0;
  for (int64_t u = 0; u < batch; ++u) {
    if (positives[u] > 0) total += static_cast<double>(weights ? weights[u] : 1.0f) * row_stats[2 * u + 1];
  }
  loss[0] = rows_with_positives > 0 ? static_cast<float>(total / static_cast<double>(rows_with_positives)) : 0.0f;
  return Status::ok();
}

Status supcon_infonce_backward(int64_t batch, int64_t dim, const float* anchor, const float* contrast,
                               IndexArray labels_array, const float* weights, float temperature,
                               const float* row_stats, const float* direction, const float* grad_output,
                               float* grad_anchor, float* grad_contrast, float* grad_weights) {
  const int32_t* labels = labels_array.host;
  LMCL_RETURN_IF_ERROR(check_arguments(batch, dim, temperature));
  std::vector<int32_t> positives(static_cast<size_t>(batch));
  const int64_t rows_with_positives = count_positives(batch, labels, positives.data());
  const float g = grad_output[0];
  const float per_row = rows_with_positives > 0 ? g / static_cast<float>(rows_with_positives) : 0.0f;
  if (grad_weights) {
    for (int64_t u = 0; u < batch; ++u) grad_weights[u] = positives[u] > 0 ? per_row * row_stats[2 * u + 1] : 0.0f;
  }
  if (!grad_anchor && !grad_contrast) return Status::ok();
  const float scale = 1.0f / temperature;
  if (direction) {
    std::vector<float> row_factor(static_cast<size_t>(batch));
    for (int64_t u = 0; u < batch; ++u) row_factor[u] = per_row * scale * (weights ? weights[u] : 1.0f);
    return similarity_backward_from_direction(batch, dim, direction, row_factor.data(), anchor, contrast, grad_anchor,
                                              grad_contrast);
  }
  const int64_t block_rows = rows_per_block(batch);
  ScratchBuffer block(sizeof(float) * static_cast<size_t>(block_rows * batch));
  if (!block.ok()) return out_of_memory("supConInfoNCE backward: similarity block of " + describe_shape({block_rows, batch}));
  // Gradient rows carry 1/τ so the two GEMMs below give ∂anchor and ∂contrast directly.
  InfonceArgs args{0, batch, scale, labels, positives.data(), block.floats(), const_cast<float*>(row_stats), nullptr,
                   weights, per_row * scale};
  auto body = infonce_backward_rows_pick();
  for (int64_t first = 0; first < batch; first += block_rows) {
    const int64_t rows = std::min(block_rows, batch - first);
    LMCL_RETURN_IF_ERROR(similarity_block(first, rows, batch, dim, anchor, contrast, block.floats()));
    args.first = first;
    parallel_for(0, rows, contrastive_row_grain(batch), [&](int64_t begin, int64_t end) { body(begin, end, args); });
    LMCL_RETURN_IF_ERROR(similarity_block_backward(first, rows, batch, dim, block.floats(), anchor, contrast,
                                                   grad_anchor, grad_contrast));
  }
  return Status::ok();
}

}  // namespace cpu
}  // namespace lmcl
