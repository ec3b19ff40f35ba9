// L2 normalisation and cosine similarity (CUDA). The reference is the CPU kernel of the same name
// (lmcl::cpu::l2_normalize_forward, ..., native/src/cpu/normalize.cpp); parity cases in
// native/test/cases/normalize.cpp.
//
//   normalize:  n = ‖x‖₂ along dim, y = x / max(n, eps);  dx = (g − [n ≥ eps] · y · Σ g ⊙ y) / max(n, eps)
//   cosine:     n_a = max(‖a‖, eps), n_b = max(‖b‖, eps), out = Σ (a / n_a) ⊙ (b / n_b)  (PyTorch 1.13)
//               ga = g / n_a · (b / n_b − out · a / n_a),  gb = g / n_b · (a / n_a − out · b / n_b)
// Layouts: contiguous, viewed as [outer, dim, inner]; norms and cosine outputs are [outer, inner]
// (the unclamped norms are stored). max(n, eps) keeps NaN (n < eps ? eps : n), as on the CPU.
// Launch geometry (memory-bound: 2-6 flops per element):
//   reductions with inner == 1: one row per group — a warp (8 rows per 256-thread block) when
//     dim <= 1024, else a 256-thread block; lanes stride the row (coalesced), fixed-order trees
//     (warp xor butterfly broadcast from lane 0, or detail::block_sum), grid-stride over rows.
//   reductions with inner > 1: one thread per (outer, column) walking dim in order (neighbouring
//     threads read neighbouring columns: coalesced), like the CPU's column path.
//   cosine backward: purely elementwise once the forward's norms and out are known, so one thread
//     per element (flat grid-stride), each reading its slice's scalars.
// Sums are float, as on the CPU (different association: bits differ by ulps). Deterministic: no
// atomics. Empty views launch nothing; dim == 0 still writes the norms (0) and outputs like the CPU.
#include <cmath>
#include <cstdint>
#include <string>

#include "common.cuh"
#include "lmcl/cuda_ops.h"
#include "lmcl/normalize.h"

namespace lmcl {
namespace cuda {
namespace {

using detail::group_max;
using detail::group_sum;
using detail::kWarp;
using detail::kWarpRowLimit;
using detail::row_blocks;
using detail::RowGroup;

__device__ inline float clamp_min(float n, float eps) { return n < eps ? eps : n; }

// ---- normalize -----------------------------------------------------------------------------------

template <int kGroup>
__global__ void normalize_rows_kernel(int64_t rows, int64_t n, float eps, const float* __restrict__ x,
                                      float* __restrict__ y, float* __restrict__ norms) {
  __shared__ float shared[kGroup == kWarp ? 1 : detail::kThreads];
  const RowGroup<kGroup> group;
  for (int64_t row = group.first; row < rows; row += group.stride) {
    const float* xr = x + row * n;
    float* yr = y + row * n;
    float partial = 0.0f;
    for (int64_t i = group.lane; i < n; i += kGroup) partial += xr[i] * xr[i];
    const float norm = sqrtf(group_sum<kGroup>(partial, shared));
    if (group.lane == 0) norms[row] = norm;
    const float inverse = 1.0f / clamp_min(norm, eps);
    for (int64_t i = group.lane; i < n; i += kGroup) yr[i] = xr[i] * inverse;
  }
}

__global__ void normalize_columns_kernel(int64_t outer, int64_t dim, int64_t inner, float eps,
                                         const float* __restrict__ x, float* __restrict__ y,
                                         float* __restrict__ norms) {
  const int64_t columns = outer * inner;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < columns; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = (t / inner) * dim * inner + t % inner;
    float s = 0.0f;
    for (int64_t d = 0; d < dim; ++d) {
      const float v = x[base + d * inner];
      s += v * v;
    }
    const float norm = sqrtf(s);
    norms[t] = norm;  // t = o·inner + c
    const float inverse = 1.0f / clamp_min(norm, eps);
    for (int64_t d = 0; d < dim; ++d) y[base + d * inner] = x[base + d * inner] * inverse;
  }
}

template <int kGroup>
__global__ void normalize_backward_rows_kernel(int64_t rows, int64_t n, float eps, const float* __restrict__ y,
                                               const float* __restrict__ norms, const float* __restrict__ g,
                                               float* __restrict__ dx) {
  __shared__ float shared[kGroup == kWarp ? 1 : detail::kThreads];
  const RowGroup<kGroup> group;
  for (int64_t row = group.first; row < rows; row += group.stride) {
    const float* yr = y + row * n;
    const float* gr = g + row * n;
    float* dr = dx + row * n;
    const float norm = norms[row];
    float dot = 0.0f;
    if (norm >= eps) {  // uniform over the group; below eps (or NaN) the clamp is constant: no dot
      float partial = 0.0f;
      for (int64_t i = group.lane; i < n; i += kGroup) partial += gr[i] * yr[i];
      dot = group_sum<kGroup>(partial, shared);
    }
    const float inverse = 1.0f / clamp_min(norm, eps);
    for (int64_t i = group.lane; i < n; i += kGroup) dr[i] = (gr[i] - yr[i] * dot) * inverse;
  }
}

__global__ void normalize_backward_columns_kernel(int64_t outer, int64_t dim, int64_t inner, float eps,
                                                  const float* __restrict__ y, const float* __restrict__ norms,
                                                  const float* __restrict__ g, float* __restrict__ dx) {
  const int64_t columns = outer * inner;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < columns; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = (t / inner) * dim * inner + t % inner;
    const float norm = norms[t];
    float s = 0.0f;
    if (norm >= eps)
      for (int64_t d = 0; d < dim; ++d) s += g[base + d * inner] * y[base + d * inner];
    const float inverse = 1.0f / clamp_min(norm, eps);
    for (int64_t d = 0; d < dim; ++d) {
      const int64_t k = base + d * inner;
      dx[k] = (g[k] - y[k] * s) * inverse;
    }
  }
}

// ---- cosine similarity ---------------------------------------------------------------------------

template <int kGroup>
__global__ void cosine_rows_kernel(int64_t rows, int64_t n, float eps, const float* __restrict__ a,
                                   const float* __restrict__ b, float* __restrict__ out, float* __restrict__ norms_a,
                                   float* __restrict__ norms_b) {
  __shared__ float shared[kGroup == kWarp ? 1 : detail::kThreads];
  const RowGroup<kGroup> group;
  for (int64_t row = group.first; row < rows; row += group.stride) {
    const float* ar = a + row * n;
    const float* br = b + row * n;
    float ab = 0.0f, aa = 0.0f, bb = 0.0f;
    for (int64_t i = group.lane; i < n; i += kGroup) {
      const float p = ar[i], q = br[i];
      ab += p * q;
      aa += p * p;
      bb += q * q;
    }
    const float dot = group_sum<kGroup>(ab, shared);
    const float norm_a = sqrtf(group_sum<kGroup>(aa, shared));
    const float norm_b = sqrtf(group_sum<kGroup>(bb, shared));
    if (group.lane == 0) {
      norms_a[row] = norm_a;
      norms_b[row] = norm_b;
      out[row] = dot / clamp_min(norm_a, eps) / clamp_min(norm_b, eps);
    }
  }
}

__global__ void cosine_columns_kernel(int64_t outer, int64_t dim, int64_t inner, float eps, const float* __restrict__ a,
                                      const float* __restrict__ b, float* __restrict__ out,
                                      float* __restrict__ norms_a, float* __restrict__ norms_b) {
  const int64_t columns = outer * inner;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < columns; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = (t / inner) * dim * inner + t % inner;
    float ab = 0.0f, aa = 0.0f, bb = 0.0f;
    for (int64_t d = 0; d < dim; ++d) {
      const float p = a[base + d * inner], q = b[base + d * inner];
      ab += p * q;
      aa += p * p;
      bb += q * q;
    }
    const float norm_a = sqrtf(aa), norm_b = sqrtf(bb);
    norms_a[t] = norm_a;
    norms_b[t] = norm_b;
    out[t] = ab / clamp_min(norm_a, eps) / clamp_min(norm_b, eps);
  }
}

// One thread per element k of a (and b): slice s = (o, c) holds its norms, out and g.
__global__ void cosine_backward_kernel(int64_t count, int64_t dim, int64_t inner, float eps, const float* __restrict__ a,
                                       const float* __restrict__ b, const float* __restrict__ out,
                                       const float* __restrict__ norms_a, const float* __restrict__ norms_b,
                                       const float* __restrict__ g, float* __restrict__ ga, float* __restrict__ gb) {
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < count; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t slice = (k / (dim * inner)) * inner + k % inner;
    const float inverse_a = 1.0f / clamp_min(norms_a[slice], eps);
    const float inverse_b = 1.0f / clamp_min(norms_b[slice], eps);
    const float cosine = out[slice], grad = g[slice];
    const float unit_a = a[k] * inverse_a, unit_b = b[k] * inverse_b;
    if (ga) ga[k] = (grad * inverse_a) * (unit_b - cosine * unit_a);
    if (gb) gb[k] = (grad * inverse_b) * (unit_a - cosine * unit_b);
  }
}

// ---- host side -----------------------------------------------------------------------------------

Status check_view(int64_t outer, int64_t dim, int64_t inner, float eps) {
  LMCL_CHECK_ARG(outer >= 0 && dim >= 0 && inner >= 0, "negative extent in view " + describe_shape({outer, dim, inner}));
  LMCL_CHECK_ARG(eps >= 0.0f && std::isfinite(eps), "eps must be a finite number >= 0, got " + std::to_string(eps));
  return Status::ok();
}

}  // namespace

Status l2_normalize_forward(int64_t outer, int64_t dim, int64_t inner, float eps, const float* x, float* y,
                            float* norms) {
  LMCL_RETURN_IF_ERROR(check_view(outer, dim, inner, eps));
  if (outer == 0 || inner == 0) return Status::ok();  // dim == 0 still writes norms = 0
  if (inner == 1) {
    if (dim <= kWarpRowLimit)
      normalize_rows_kernel<kWarp><<<row_blocks<kWarp>(outer), detail::kThreads>>>(outer, dim, eps, x, y, norms);
    else
      normalize_rows_kernel<detail::kThreads>
          <<<row_blocks<detail::kThreads>(outer), detail::kThreads>>>(outer, dim, eps, x, y, norms);
  } else {
    normalize_columns_kernel<<<detail::blocks_for(outer * inner), detail::kThreads>>>(outer, dim, inner, eps, x, y, norms);
  }
  return detail::launch_status("l2_normalize_forward");
}

Status l2_normalize_backward(int64_t outer, int64_t dim, int64_t inner, float eps, const float* y,
                             const float* norms, const float* g, float* dx) {
  LMCL_RETURN_IF_ERROR(check_view(outer, dim, inner, eps));
  if (outer == 0 || dim == 0 || inner == 0) return Status::ok();
  if (inner == 1) {
    if (dim <= kWarpRowLimit)
      normalize_backward_rows_kernel<kWarp>
          <<<row_blocks<kWarp>(outer), detail::kThreads>>>(outer, dim, eps, y, norms, g, dx);
    else
      normalize_backward_rows_kernel<detail::kThreads>
          <<<row_blocks<detail::kThreads>(outer), detail::kThreads>>>(outer, dim, eps, y, norms, g, dx);
  } else {
    normalize_backward_columns_kernel<<<detail::blocks_for(outer * inner), detail::kThreads>>>(outer, dim, inner, eps, y,
                                                                                                norms, g, dx);
  }
  return detail::launch_status("l2_normalize_backward");
}

Status cosine_similarity_forward(int64_t outer, int64_t dim, int64_t inner, float eps, const float* a,
                                 const float* b, float* out, float* norms_a, float* norms_b) {
  LMCL_RETURN_IF_ERROR(check_view(outer, dim, inner, eps));
  if (outer == 0 || inner == 0) return Status::ok();
  if (inner == 1) {
    if (dim <= kWarpRowLimit)
      cosine_rows_kernel<kWarp>
          <<<row_blocks<kWarp>(outer), detail::kThreads>>>(outer, dim, eps, a, b, out, norms_a, norms_b);
    else
      cosine_rows_kernel<detail::kThreads>
          <<<row_blocks<detail::kThreads>(outer), detail::kThreads>>>(outer, dim, eps, a, b, out, norms_a, norms_b);
  } else {
    cosine_columns_kernel<<<detail::blocks_for(outer * inner), detail::kThreads>>>(outer, dim, inner, eps, a, b, out,
                                                                                    norms_a, norms_b);
  }
  return detail::launch_status("cosine_similarity_forward");
}

Status cosine_similarity_backward(int64_t outer, int64_t dim, int64_t inner, float eps, const float* a,
                                  const float* b, const float* out, const float* norms_a, const float* norms_b,
                                  const float* g, float* ga, float* gb) {
  LMCL_RETURN_IF_ERROR(check_view(outer, dim, inner, eps));
  if (outer == 0 || dim == 0 || inner == 0 || (!ga && !gb)) return Status::ok();
  const int64_t count = outer * dim * inner;
  cosine_backward_kernel<<<detail::blocks_for(count), detail::kThreads>>>(count, dim, inner, eps, a, b, out, norms_a,
                                                                           norms_b, g, ga, gb);
  return detail::launch_status("cosine_similarity_backward");
}

}  // namespace cuda
}  // namespace lmcl
