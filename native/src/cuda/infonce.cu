// Supervised InfoNCE (CUDA), fused row-wise: the reference is lmcl::cpu::supcon_infonce_forward /
// supcon_infonce_backward (native/src/cpu/infonce.cpp, contract in native/include/lmcl/infonce.h);
// the parity cases are native/test/cases/infonce.cpp.
//
//   L = anchor·contrastᵀ / τ  (never stored whole),  P_u = {v ≠ u : y_v = y_u}
//   lse_u = log Σ_{k≠u} exp(L_uk),  term_u = lse_u − mean_{v∈P_u} L_uv  (0 without positives)
//   loss = Σ_{u: P_u≠∅} w_u·term_u / R,  R = #{u : P_u ≠ ∅}
//   G_uk = (g/R)·(w_u/τ)·(softmax_{k≠u}(L_u)_k − [k∈P_u]/|P_u|)  (0 on the diagonal, 0 without positives)
//   ∂anchor = G·contrast,  ∂contrast = Gᵀ·anchor,  ∂w_u = (g/R)·term_u
// Layouts: anchor, contrast [B, D] row-major; labels int32 [B] (an IndexArray: the kernels read its
// device side; the per-row positive counts |P_u| are computed from its host side as the CPU does
// and staged with DeviceScratch, B ints per call); weights [B] or null; row_stats [B, 2] = (lse_u, term_u) as
// on the CPU; direction [B, B] optional; loss and grad_output are 1-float device arrays.
//
// Launch geometry:
//  - forward: one 256-thread block per anchor row u; its 8 warps take the columns k in turn, each
//    column's dot product is one warp (lanes stride D, coalesced; fixed shuffle tree), and the
//    row's log-sum-exp is an online (max, Σ) per warp merged in warp order — one pass over the
//    contrast rows, no B×B matrix (when direction is asked for, the raw dots are parked in the
//    direction row and turned into softmax − P_u/|P_u| in place after the row's lse is known).
//    The loss is then one block summing w_u·term_u in double by a fixed tree (deterministic).
//  - backward: ∂anchor row u = Σ_k G_uk·contrast_k and ∂contrast row k = Σ_u G_uk·anchor_u, both by
//    the same kernel (gradient_rows.cuh, shared with contrastive_kl.cu): one block per output row (and per 256-float chunk of D), warps over the other
//    side's rows, G recomputed from the dot and the saved lse (or read from direction), per-warp
//    partial rows in shared memory summed in warp order. No float atomics anywhere.
// Bound: compute (≈ 2·B²·D flops per pass, dots of length D by warps); for the B ≤ 2048 of the
// trainer every pass is a few microseconds.
#include <cmath>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.cuh"
#include "gradient_rows.cuh"
#include "lmcl/cuda_ops.h"

namespace lmcl {
namespace cuda {
namespace {

using detail::warp_dot;
using detail::warp_sum;

constexpr int kWarps = detail::kThreads / 32;

// Online log-sum-exp state plus the positive sum of the row.
struct RowState {
  float maximum, total, positive;
};

__device__ inline RowState merge(RowState a, RowState b) {
  const float m = fmaxf(a.maximum, b.maximum);
  RowState out;
  out.maximum = m;
  out.total = (a.maximum == -INFINITY ? 0.0f : a.total * expf(a.maximum - m)) +
              (b.maximum == -INFINITY ? 0.0f : b.total * expf(b.maximum - m));
  out.positive = a.positive + b.positive;
  return out;
}

__device__ inline void add_logit(RowState& state, float x) {
  if (x > state.maximum) {
    state.total = state.total * expf(state.maximum - x) + 1.0f;
    state.maximum = x;
  } else {
    state.total += expf(x - state.maximum);  // NaN propagates through the sum
  }
}

__global__ void infonce_forward_rows(int64_t batch, int64_t dim, const float* __restrict__ anchor,
                                     const float* __restrict__ contrast, const int32_t* __restrict__ labels,
                                     const int32_t* __restrict__ positives, float scale, float* __restrict__ row_stats,
                                     float* __restrict__ direction) {
  __shared__ RowState warp_states[kWarps];
  __shared__ float row_lse;
  const int64_t u = blockIdx.x;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const float* a = anchor + u * dim;
  const int32_t label = labels[u];
  RowState state{-INFINITY, 0.0f, 0.0f};
  for (int64_t k = warp; k < batch; k += kWarps) {
    const float dot = warp_dot(a, contrast + k * dim, dim, lane);
    if (direction && lane == 0) direction[u * batch + k] = dot;
    if (k == u) continue;
    add_logit(state, scale * dot);
    if (labels[k] == label) state.positive += dot;
  }
  if (lane == 0) warp_states[warp] = state;
  __syncthreads();
  if (threadIdx.x == 0) {
    RowState row = warp_states[0];
    for (int w = 1; w < kWarps; ++w) row = merge(row, warp_states[w]);
    const float lse = row.maximum == -INFINITY ? -INFINITY : row.maximum + logf(row.total);
    const int32_t count = positives[u];
    row_stats[2 * u] = lse;
    row_stats[2 * u + 1] = count > 0 ? lse - scale * row.positive / static_cast<float>(count) : 0.0f;
    row_lse = lse;
  }
  __syncthreads();
  if (!direction) return;
  // The raw dots this block parked in its direction row become softmax − [k∈P_u]/|P_u|.
  const int32_t count = positives[u];
  const float lse = row_lse, share = count > 0 ? 1.0f / static_cast<float>(count) : 0.0f;
  float* row = direction + u * batch;
  for (int64_t k = threadIdx.x; k < batch; k += blockDim.x) {
    float value = 0.0f;
    if (count > 0 && k != u) value = expf(scale * row[k] - lse) - (labels[k] == label ? share : 0.0f);
    row[k] = value;
  }
}

// loss = Σ_{u: P_u≠∅} w_u·term_u / R, in double by a fixed tree (one block).
__global__ void infonce_loss(int64_t batch, const float* __restrict__ weights, const int32_t* __restrict__ positives,
                             const float* __restrict__ row_stats, int64_t rows_with_positives, float* __restrict__ loss) {
  __shared__ double shared[detail::kThreads];
  double partial = 0.0;
  for (int64_t u = threadIdx.x; u < batch; u += blockDim.x) {
    if (positives[u] > 0) partial += static_cast<double>(weights ? weights[u] : 1.0f) * row_stats[2 * u + 1];
  }
  const double total = detail::block_sum(partial, shared);
  if (threadIdx.x == 0) loss[0] = rows_with_positives > 0 ? static_cast<float>(total / static_cast<double>(rows_with_positives)) : 0.0f;
}

__global__ void infonce_grad_weights(int64_t batch, const int32_t* __restrict__ positives,
                                     const float* __restrict__ row_stats, const float* __restrict__ grad_output,
                                     int64_t rows_with_positives, float* __restrict__ grad_weights) {
  const float per_row = rows_with_positives > 0 ? grad_output[0] / static_cast<float>(rows_with_positives) : 0.0f;
  for (int64_t u = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; u < batch; u += int64_t{gridDim.x} * blockDim.x) {
    grad_weights[u] = positives[u] > 0 ? per_row * row_stats[2 * u + 1] : 0.0f;
  }
}

// G_uk from the dot ⟨anchor_u, contrast_k⟩ and the saved lse_u.
struct RecomputedCoefficient {
  static constexpr bool kNeedsDot = true;
  static constexpr bool kSkipZero = true;
  int64_t batch, rows_with_positives;
  float scale;
  const int32_t* labels;
  const int32_t* positives;
  const float* weights;
  const float* row_stats;
  const float* grad_output;
  __device__ float operator()(int64_t u, int64_t k, float dot, int) const {
    const int32_t count = positives[u];
    if (count == 0 || k == u) return 0.0f;
    const float per_row = grad_output[0] / static_cast<float>(rows_with_positives);
    const float coefficient = per_row * scale * (weights ? weights[u] : 1.0f);
    const float positive = labels[k] == labels[u] ? 1.0f / static_cast<float>(count) : 0.0f;
    return coefficient * (expf(scale * dot - row_stats[2 * u]) - positive);
  }
};

// G_uk from the forward's direction rows (no dot, no exp).
struct StoredCoefficient {
  static constexpr bool kNeedsDot = false;
  static constexpr bool kSkipZero = true;
  int64_t batch, rows_with_positives;
  float scale;
  const float* weights;
  const float* direction;
  const float* grad_output;
  __device__ float operator()(int64_t u, int64_t k, float, int) const {
    const float per_row = rows_with_positives > 0 ? grad_output[0] / static_cast<float>(rows_with_positives) : 0.0f;
    return per_row * scale * (weights ? weights[u] : 1.0f) * direction[u * batch + k];
  }
};

Status check_arguments(int64_t batch, int64_t dim, float temperature) {
  LMCL_CHECK_ARG(batch >= 0 && dim >= 0, "negative extent in embedding shape " + describe_shape({batch, dim}));
  LMCL_CHECK_ARG(std::isfinite(temperature) && temperature > 0.0f,
                 "temperature must be a finite number > 0, got " + std::to_string(temperature));
  return Status::ok();
}

// |P_u| per anchor (host, as the CPU's count_positives); returns R.
int64_t count_positives(int64_t batch, const int32_t* labels, std::vector<int32_t>& positives) {
  std::unordered_map<int32_t, int32_t> per_label;
  for (int64_t u = 0; u < batch; ++u) per_label[labels[u]] += 1;
  positives.assign(static_cast<size_t>(batch), 0);
  int64_t rows = 0;
  for (int64_t u = 0; u < batch; ++u) {
    positives[u] = per_label[labels[u]] - 1;
    if (positives[u] > 0) rows += 1;
  }
  return rows;
}

// |P_u| staged on the device (B ints).
Status stage_positives(const std::vector<int32_t>& positives, detail::DeviceScratch& staged) {
  if (!staged.ok()) return staged.status();
  return staged.upload(positives.data(), sizeof(int32_t) * positives.size());
}

}  // namespace

Status supcon_infonce_forward(int64_t batch, int64_t dim, const float* anchor, const float* contrast,
                              IndexArray labels, const float* weights, float temperature, float* loss,
                              float* row_stats, float* direction) {
  LMCL_RETURN_IF_ERROR(check_arguments(batch, dim, temperature));
  if (batch == 0) return fill(loss, 0.0f, 1);
  std::vector<int32_t> positives;
  const int64_t rows_with_positives = count_positives(batch, labels.host, positives);
  detail::DeviceScratch staged(sizeof(int32_t) * static_cast<size_t>(batch));
  LMCL_RETURN_IF_ERROR(stage_positives(positives, staged));
  infonce_forward_rows<<<static_cast<unsigned int>(batch), detail::kThreads>>>(
      batch, dim, anchor, contrast, labels.device, staged.ints(), 1.0f / temperature, row_stats, direction);
  LMCL_RETURN_IF_ERROR(detail::launch_status("supConInfoNCE"));
  infonce_loss<<<1, detail::kThreads>>>(batch, weights, staged.ints(), row_stats, rows_with_positives, loss);
  return detail::launch_status("supConInfoNCE (loss)");
}

Status supcon_infonce_backward(int64_t batch, int64_t dim, const float* anchor, const float* contrast,
                               IndexArray labels, const float* weights, float temperature,
                               const float* row_stats, const float* direction, const float* grad_output,
                               float* grad_anchor, float* grad_contrast, float* grad_weights) {
  LMCL_RETURN_IF_ERROR(check_arguments(batch, dim, temperature));
  if (batch == 0) return Status::ok();
  std::vector<int32_t> positives;
  const int64_t rows_with_positives = count_positives(batch, labels.host, positives);
  detail::DeviceScratch staged(sizeof(int32_t) * static_cast<size_t>(batch));
  LMCL_RETURN_IF_ERROR(stage_positives(positives, staged));
  const int32_t* device_labels = labels.device;
  const int32_t* device_positives = staged.ints();
  if (grad_weights) {
    infonce_grad_weights<<<detail::blocks_for(batch), detail::kThreads>>>(batch, device_positives, row_stats, grad_output,
                                                                          rows_with_positives, grad_weights);
    LMCL_RETURN_IF_ERROR(detail::launch_status("supConInfoNCE backward (weights)"));
  }
  if ((!grad_anchor && !grad_contrast) || dim == 0) return Status::ok();
  const float scale = 1.0f / temperature;
  if (direction) {
    const StoredCoefficient c{batch, rows_with_positives, scale, weights, direction, grad_output};
    return detail::launch_gradient_rows(batch, dim, anchor, contrast, c, grad_anchor, grad_contrast, "supConInfoNCE backward");
  }
  if (rows_with_positives == 0) {  // every G row is 0
    if (grad_anchor) LMCL_RETURN_IF_ERROR(fill(grad_anchor, 0.0f, batch * dim));
    if (grad_contrast) LMCL_RETURN_IF_ERROR(fill(grad_contrast, 0.0f, batch * dim));
    return Status::ok();
  }
  const RecomputedCoefficient c{batch,  rows_with_positives, scale,     device_labels,
                                device_positives, weights, row_stats, grad_output};
  return detail::launch_gradient_rows(batch, dim, anchor, contrast, c, grad_anchor, grad_contrast, "supConInfoNCE backward");
}

}  // namespace cuda
}  // namespace lmcl
