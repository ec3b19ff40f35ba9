// The backward shared by the fused row-wise contrastive kernels (infonce.cu, contrastive_kl.cu):
// for a coefficient G(u, k) of the B x B similarity matrix (recomputed from the dot, or read from
// what the forward stored),
//   grad_anchor_u = Σ_k G(u, k)·contrast_k      grad_contrast_k = Σ_u G(u, k)·anchor_u,
// both by one kernel: a block per (output row r, 256-float chunk of D); its warps take the other
// side's rows j in turn, each accumulating a partial row in shared memory; the partials are summed
// in warp order. No float atomics: the same bits on every run. (The CPU references are the
// kernels' own lmcl::cpu:: backward; parity cases in native/test/cases/infonce.cpp and
// contrastive_kl.cpp.)
//
// A Coefficient provides
//   static constexpr bool kNeedsDot   pass ⟨self_r, other_j⟩ (one warp dot) to the call
//   static constexpr bool kSkipZero   a zero coefficient (warp-uniform) adds nothing: skip its row
//                                     (InfoNCE: the diagonal, rows without positives); false keeps
//                                     every product, so a NaN in `other` propagates as on the CPU
//   __device__ float operator()(int64_t u, int64_t k, float dot, int lane) const
// called by the whole warp with (u, k) = (r, j) for the anchor gradient, (j, r) for the contrast's.
#pragma once

#include <string>

#include "common.cuh"

namespace lmcl {
namespace cuda {
namespace detail {

constexpr int kGradientWarps = kThreads / 32;
constexpr int kGradientChunk = 256;  // floats of an output row per block

template <bool kSelfIsAnchor, typename Coefficient>
__global__ void gradient_rows(int64_t batch, int64_t dim, const float* __restrict__ self, const float* __restrict__ other,
                              Coefficient coefficient, float* __restrict__ out) {
  __shared__ float partial[kGradientWarps][kGradientChunk];
  const int64_t r = blockIdx.x;
  const int64_t d0 = int64_t{blockIdx.y} * kGradientChunk;
  const int64_t width = dim - d0 < kGradientChunk ? dim - d0 : kGradientChunk;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int64_t d = lane; d < width; d += 32) partial[warp][d] = 0.0f;
  const float* s = self + r * dim;
  for (int64_t j = warp; j < batch; j += kGradientWarps) {
    const float* o = other + j * dim;
    const float dot = Coefficient::kNeedsDot ? warp_dot(s, o, dim, lane) : 0.0f;
    const float c = kSelfIsAnchor ? coefficient(r, j, dot, lane) : coefficient(j, r, dot, lane);
    if (Coefficient::kSkipZero && c == 0.0f) continue;
    for (int64_t d = lane; d < width; d += 32) partial[warp][d] += c * o[d0 + d];
  }
  __syncthreads();
  for (int64_t d = threadIdx.x; d < width; d += blockDim.x) {
    float total = partial[0][d];
    for (int w = 1; w < kGradientWarps; ++w) total += partial[w][d];
    out[r * dim + d0 + d] = total;
  }
}

// Both gradients (either may be null); `op` names the launch errors ("<op> (anchor)", "<op> (contrast)").
template <typename Coefficient>
Status launch_gradient_rows(int64_t batch, int64_t dim, const float* anchor, const float* contrast, const Coefficient& c,
                            float* grad_anchor, float* grad_contrast, const char* op) {
  const dim3 grid(static_cast<unsigned int>(batch), static_cast<unsigned int>((dim + kGradientChunk - 1) / kGradientChunk));
  if (grad_anchor) {
    gradient_rows<true><<<grid, kThreads>>>(batch, dim, anchor, contrast, c, grad_anchor);
    LMCL_RETURN_IF_ERROR(launch_status((std::string(op) + " (anchor)").c_str()));
  }
  if (grad_contrast) {
    gradient_rows<false><<<grid, kThreads>>>(batch, dim, contrast, anchor, c, grad_contrast);
    LMCL_RETURN_IF_ERROR(launch_status((std::string(op) + " (contrast)").c_str()));
  }
  return Status::ok();
}

}  // namespace detail
}  // namespace cuda
}  // namespace lmcl
