// Softmax, log-softmax and cross-entropy (CUDA). The reference is the CPU kernel of the same name
// (lmcl::cpu::softmax_forward, ..., native/src/cpu/softmax.cpp); parity cases in
// native/test/cases/softmax.cpp.
//
//   softmax:        y_k = exp(x_k − m) / Σ_j exp(x_j − m),   m = max_j x_j
//   log-softmax:    y_k = (x_k − m) − log Σ_j exp(x_j − m)
//   backward:       softmax dx = y ⊙ (g − Σ g ⊙ y);   log-softmax dx = g − exp(y) · Σ g
//   cross-entropy:  stats_i = (m_i, ls_i = log Σ_j exp(x_ij − m_i)), loss_i = ls_i − (x_{i,label_i} − m_i)
//                   out = loss | Σ loss | Σ loss / batch;  dx_ij = (exp(x_ij − m_i − ls_i) − [j = label_i])·scale·g_i
//
// Layouts: x contiguous, viewed as [outer, dim, inner]; the reduction runs along dim. Logits
// [batch, classes], labels int32 [batch] (an IndexArray: the kernels read its device side, the
// range check runs on its host side before any work, with the CPU's message), stats [batch, 2].
// Launch geometry (all memory-bound: a few flops per element):
//   inner == 1: one row per "group" — a warp (32 lanes, 8 rows per 256-thread block) when
//     dim <= 1024, else a whole 256-thread block; lanes stride the row (coalesced), maxima and
//     sums are fixed-order trees (warp xor butterfly broadcast from lane 0, or detail::block_sum),
//     grid-stride over rows.
//   inner > 1: one thread per (outer, column), walking dim; neighbouring threads read
//     neighbouring columns (coalesced), accumulating in order like the CPU's column path.
//   cross-entropy forward: the row kernel above writes stats and per-row losses; kSum/kMean add
//     the losses in one 256-thread block (fixed tree). Backward: one thread per logit (flat
//     grid-stride), it reads its row's stats and label.
// Labels arrive as HOST pointers (the binding reads a JavaScript Int32Array): they are validated
// on the host with the CPU's message (a device-side check could not become a Status) and then
// staged with detail::DeviceScratch::upload (a synchronous copy, so the host array may go away).
// Non-finite logits behave like the CPU: per-lane maxima skip NaN (v > m ? v : m), so a NaN or
// +inf reaches the sum through exp(NaN) / exp(inf − inf) and the row comes out NaN. exp is CUDA's
// expf (~2 ulp) where the CPU uses its Cephes polynomial, so bits differ from the CPU by ulps.
// Deterministic: every reduction is a fixed tree, no atomics.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common.cuh"
#include "lmcl/cuda_ops.h"
#include "lmcl/softmax.h"

namespace lmcl {
namespace cuda {
namespace {

using detail::group_max;
using detail::group_sum;
using detail::kWarp;
using detail::kWarpRowLimit;
using detail::row_blocks;
using detail::RowGroup;

template <int kGroup>
__device__ inline float row_max(const float* x, int64_t n, int lane, float* shared) {
  float m = -INFINITY;
  for (int64_t i = lane; i < n; i += kGroup) {
    const float v = x[i];
    m = v > m ? v : m;  // NaN skipped, as on the CPU
  }
  return group_max<kGroup>(m, shared);
}

// ---- softmax forward -----------------------------------------------------------------------------

template <int kGroup>
__global__ void softmax_rows_kernel(bool log, int64_t rows, int64_t n, const float* __restrict__ x,
                                    float* __restrict__ y) {
  __shared__ float shared[kGroup == kWarp ? 1 : detail::kThreads];
  const RowGroup<kGroup> group;
  for (int64_t row = group.first; row < rows; row += group.stride) {
    const float* xr = x + row * n;
    float* yr = y + row * n;
    const float m = row_max<kGroup>(xr, n, group.lane, shared);
    float sum = 0.0f;
    if (log) {
      for (int64_t i = group.lane; i < n; i += kGroup) sum += expf(xr[i] - m);
      const float log_sum = logf(group_sum<kGroup>(sum, shared));
      for (int64_t i = group.lane; i < n; i += kGroup) yr[i] = (xr[i] - m) - log_sum;
    } else {
      for (int64_t i = group.lane; i < n; i += kGroup) {
        const float e = expf(xr[i] - m);
        yr[i] = e;  // re-read below by the same thread
        sum += e;
      }
      const float inverse = 1.0f / group_sum<kGroup>(sum, shared);
      for (int64_t i = group.lane; i < n; i += kGroup) yr[i] *= inverse;
    }
  }
}

__global__ void softmax_columns_kernel(bool log, int64_t outer, int64_t dim, int64_t inner,
                                       const float* __restrict__ x, float* __restrict__ y) {
  const int64_t columns = outer * inner;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < columns; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = t / inner, c = t % inner;
    const float* xc = x + o * dim * inner + c;
    float* yc = y + o * dim * inner + c;
    float m = -INFINITY;
    for (int64_t d = 0; d < dim; ++d) {
      const float v = xc[d * inner];
      m = v > m ? v : m;
    }
    float sum = 0.0f;
    if (log) {
      for (int64_t d = 0; d < dim; ++d) sum += expf(xc[d * inner] - m);
      const float log_sum = logf(sum);
      for (int64_t d = 0; d < dim; ++d) yc[d * inner] = (xc[d * inner] - m) - log_sum;
    } else {
      for (int64_t d = 0; d < dim; ++d) {
        const float e = expf(xc[d * inner] - m);
        yc[d * inner] = e;
        sum += e;
      }
      const float inverse = 1.0f / sum;
      for (int64_t d = 0; d < dim; ++d) yc[d * inner] *= inverse;
    }
  }
}

// ---- softmax backward ----------------------------------------------------------------------------

template <int kGroup>
__global__ void softmax_backward_rows_kernel(bool log, int64_t rows, int64_t n, const float* __restrict__ y,
                                             const float* __restrict__ g, float* __restrict__ dx) {
  __shared__ float shared[kGroup == kWarp ? 1 : detail::kThreads];
  const RowGroup<kGroup> group;
  for (int64_t row = group.first; row < rows; row += group.stride) {
    const float* yr = y + row * n;
    const float* gr = g + row * n;
    float* dr = dx + row * n;
    float partial = 0.0f;
    if (log) {
      for (int64_t i = group.lane; i < n; i += kGroup) partial += gr[i];
      const float total = group_sum<kGroup>(partial, shared);
      for (int64_t i = group.lane; i < n; i += kGroup) dr[i] = gr[i] - expf(yr[i]) * total;
    } else {
      for (int64_t i = group.lane; i < n; i += kGroup) partial += gr[i] * yr[i];
      const float dot = group_sum<kGroup>(partial, shared);
      for (int64_t i = group.lane; i < n; i += kGroup) dr[i] = yr[i] * (gr[i] - dot);
    }
  }
}

__global__ void softmax_backward_columns_kernel(bool log, int64_t outer, int64_t dim, int64_t inner,
                                                const float* __restrict__ y, const float* __restrict__ g,
                                                float* __restrict__ dx) {
  const int64_t columns = outer * inner;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < columns; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = (t / inner) * dim * inner + t % inner;
    const float* yc = y + base;
    const float* gc = g + base;
    float* dc = dx + base;
    float s = 0.0f;
    if (log) {
      for (int64_t d = 0; d < dim; ++d) s += gc[d * inner];
      for (int64_t d = 0; d < dim; ++d) dc[d * inner] = gc[d * inner] - expf(yc[d * inner]) * s;
    } else {
      for (int64_t d = 0; d < dim; ++d) s += gc[d * inner] * yc[d * inner];
      for (int64_t d = 0; d < dim; ++d) dc[d * inner] = yc[d * inner] * (gc[d * inner] - s);
    }
  }
}

// ---- cross-entropy -------------------------------------------------------------------------------

template <int kGroup>
__global__ void cross_entropy_rows_kernel(int64_t batch, int64_t classes, const float* __restrict__ logits,
                                          const int32_t* __restrict__ labels, float* __restrict__ losses,
                                          float* __restrict__ stats) {
  __shared__ float shared[kGroup == kWarp ? 1 : detail::kThreads];
  const RowGroup<kGroup> group;
  for (int64_t row = group.first; row < batch; row += group.stride) {
    const float* xr = logits + row * classes;
    const float m = row_max<kGroup>(xr, classes, group.lane, shared);
    float sum = 0.0f;
    for (int64_t i = group.lane; i < classes; i += kGroup) sum += expf(xr[i] - m);
    const float log_sum = logf(group_sum<kGroup>(sum, shared));
    if (group.lane == 0) {
      stats[2 * row] = m;
      stats[2 * row + 1] = log_sum;
      losses[row] = log_sum - (xr[labels[row]] - m);
    }
  }
}

// out[0] = Σ losses (kSum) or Σ losses / batch (kMean; batch 0 gives 0/0 = NaN like the CPU), in
// one block: per-thread strided partials, then the fixed block tree.
__global__ void reduce_losses_kernel(int64_t batch, bool mean, const float* __restrict__ losses, float* __restrict__ out) {
  __shared__ float shared[detail::kThreads];
  float partial = 0.0f;
  for (int64_t i = threadIdx.x; i < batch; i += blockDim.x) partial += losses[i];
  const float total = detail::block_sum(partial, shared);
  if (threadIdx.x == 0) out[0] = mean ? total / static_cast<float>(batch) : total;
}

__global__ void cross_entropy_backward_kernel(int64_t batch, int64_t classes, const float* __restrict__ logits,
                                              const int32_t* __restrict__ labels, const float* __restrict__ stats,
                                              const float* __restrict__ grad, bool grad_per_row, float scale,
                                              float* __restrict__ dx) {
  const int64_t count = batch * classes;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < count; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t row = k / classes, j = k % classes;
    const float m = stats[2 * row], log_sum = stats[2 * row + 1];
    const float c = scale * grad[grad_per_row ? row : 0];
    const float p = expf((logits[k] - m) - log_sum);
    dx[k] = (j == labels[row] ? p - 1.0f : p) * c;
  }
}

// ---- host side -----------------------------------------------------------------------------------

Status check_view(int64_t outer, int64_t dim, int64_t inner) {
  LMCL_CHECK_ARG(outer >= 0 && dim >= 0 && inner >= 0, "negative extent in view " + describe_shape({outer, dim, inner}));
  return Status::ok();
}

// The CPU's label check and message, on the host copy of the labels.
Status check_labels(int64_t batch, int64_t classes, const int32_t* labels) {
  for (int64_t i = 0; i < batch; ++i) {
    if (labels[i] < 0 || labels[i] >= classes) {
      return invalid_argument("label " + std::to_string(labels[i]) + " at index " + std::to_string(i) +
                              " is out of range for " + std::to_string(classes) + " classes");
    }
  }
  return Status::ok();
}

}  // namespace

Status softmax_forward(bool log, int64_t outer, int64_t dim, int64_t inner, const float* x, float* y) {
  LMCL_RETURN_IF_ERROR(check_view(outer, dim, inner));
  if (outer == 0 || dim == 0 || inner == 0) return Status::ok();
  if (inner == 1) {
    if (dim <= kWarpRowLimit)
      softmax_rows_kernel<kWarp><<<row_blocks<kWarp>(outer), detail::kThreads>>>(log, outer, dim, x, y);
    else
      softmax_rows_kernel<detail::kThreads><<<row_blocks<detail::kThreads>(outer), detail::kThreads>>>(log, outer, dim, x, y);
  } else {
    softmax_columns_kernel<<<detail::blocks_for(outer * inner), detail::kThreads>>>(log, outer, dim, inner, x, y);
  }
  return detail::launch_status("softmax_forward");
}

Status softmax_backward(bool log, int64_t outer, int64_t dim, int64_t inner, const float* y, const float* g, float* dx) {
  LMCL_RETURN_IF_ERROR(check_view(outer, dim, inner));
  if (outer == 0 || dim == 0 || inner == 0) return Status::ok();
  if (inner == 1) {
    if (dim <= kWarpRowLimit)
      softmax_backward_rows_kernel<kWarp><<<row_blocks<kWarp>(outer), detail::kThreads>>>(log, outer, dim, y, g, dx);
    else
      softmax_backward_rows_kernel<detail::kThreads>
          <<<row_blocks<detail::kThreads>(outer), detail::kThreads>>>(log, outer, dim, y, g, dx);
  } else {
    softmax_backward_columns_kernel<<<detail::blocks_for(outer * inner), detail::kThreads>>>(log, outer, dim, inner, y, g, dx);
  }
  return detail::launch_status("softmax_backward");
}

Status cross_entropy_forward(int64_t batch, int64_t classes, const float* logits, IndexArray labels,
                             CrossEntropyReduction reduction, float* out, float* stats) {
  LMCL_CHECK_ARG(batch >= 0 && classes >= 0, "negative extent in logits shape " + describe_shape({batch, classes}));
  LMCL_CHECK_ARG(reduction == CrossEntropyReduction::kNone || reduction == CrossEntropyReduction::kSum ||
                     reduction == CrossEntropyReduction::kMean,
                 "unknown reduction " + std::to_string(static_cast<int>(reduction)));
  LMCL_RETURN_IF_ERROR(check_labels(batch, classes, labels.host));  // host labels, before any work
  const bool reduced = reduction != CrossEntropyReduction::kNone;
  if (batch > 0) {  // batch > 0 implies classes > 0: every label passed the range check
    detail::DeviceScratch scratch(reduced ? sizeof(float) * static_cast<size_t>(batch) : 0);
    if (!scratch.ok()) return scratch.status();
    float* losses = reduced ? scratch.floats() : out;
    if (classes <= kWarpRowLimit)
      cross_entropy_rows_kernel<kWarp>
          <<<row_blocks<kWarp>(batch), detail::kThreads>>>(batch, classes, logits, labels.device, losses, stats);
    else
      cross_entropy_rows_kernel<detail::kThreads><<<row_blocks<detail::kThreads>(batch), detail::kThreads>>>(
          batch, classes, logits, labels.device, losses, stats);
    LMCL_RETURN_IF_ERROR(detail::launch_status("cross_entropy_forward"));
    // The scratch blocks go back to the caching allocator at scope exit; a later user of the
    // same block is ordered after these kernels on the legacy default stream.
    if (reduced) {
      reduce_losses_kernel<<<1, detail::kThreads>>>(batch, reduction == CrossEntropyReduction::kMean, losses, out);
      LMCL_RETURN_IF_ERROR(detail::launch_status("cross_entropy_forward"));
    }
    return Status::ok();
  }
  if (reduced) {  // an empty batch still writes out[0]: 0 (sum) or 0/0 = NaN (mean), as on the CPU
    reduce_losses_kernel<<<1, detail::kThreads>>>(0, reduction == CrossEntropyReduction::kMean, nullptr, out);
    return detail::launch_status("cross_entropy_forward");
  }
  return Status::ok();
}

Status cross_entropy_backward(int64_t batch, int64_t classes, const float* logits, IndexArray labels,
                              const float* stats, const float* grad, bool grad_per_row, float scale, float* dx) {
  LMCL_CHECK_ARG(batch >= 0 && classes >= 0, "negative extent in logits shape " + describe_shape({batch, classes}));
  LMCL_RETURN_IF_ERROR(check_labels(batch, classes, labels.host));
  if (batch == 0) return Status::ok();
  cross_entropy_backward_kernel<<<detail::blocks_for(batch * classes), detail::kThreads>>>(
      batch, classes, logits, labels.device, stats, grad, grad_per_row, scale, dx);
  return detail::launch_status("cross_entropy_backward");
}

}  // namespace cuda
}  // namespace lmcl
