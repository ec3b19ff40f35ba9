// Row building blocks of the contrastive losses (internal to native/src/cpu): infonce.cpp,
// contrastive_kl.cpp and cohort_contrastive.cpp reduce similarity rows with these, so the three
// compute the same per-row quantities the same way. Every function is LMCL_INLINE and is compiled
// into each SIMD variant of its caller (simd_variants.h), with the lane reductions of row_math.h.
//
// A row is x[0..n) of raw similarities (dot products); `scale` turns them into logits
// (1/τ for InfoNCE, 1/(τ·T) for the KL terms; > 0). `skip` is the one column left out of the
// InfoNCE row (the anchor itself, u = v), or −1 for none (KL rows keep every column).
//
//   max_except, exp_sum_except       max / Σ exp(s·x_k − shift) over k ≠ skip (the latter can store
//                                    the terms: a softmax row once divided by the sum)
//   log_sum_exp(x, skip, s)          log Σ_{k≠skip} exp(s·x_k), shifted by the row max (no overflow)
//   positive_sum(x, skip, labels, y) Σ_{k≠skip, labels_k = y} x_k
//   kl_cross(x, t, s, lse_x, lse_t)  KL(q ‖ p) = s·Σ_v q_v (t_v − x_v) + lse_x − lse_t,
//                                    p = softmax(s·x), q = softmax(s·t); kl_from_probabilities: the
//                                    same from a stored q
//   infonce_gradient(_from_softmax)  out_k = c·(softmax_k − [labels_k = y]/|P|), out_skip = 0
//   add_scaled, scale_row            out += c·row, row *= c
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <unordered_map>

#include "lmcl/allocator.h"
#include "lmcl/gemm.h"

#include "row_math.h"
#include "simd_variants.h"

namespace lmcl {
namespace cpu {
namespace {

// Every reduction runs over the whole row in 16 lanes (element k in lane k mod 16; the tail
// elements go to their lanes after the full blocks), with the skipped column masked out inside
// the lane loop rather than splitting the row around it: rows of B = 128 have no scalar tails,
// and the order of the sums is the same on every SIMD level.

// max_{k≠skip} x_k (−inf for an empty row).
LMCL_INLINE float max_except(const float* __restrict x, int64_t n, int64_t skip) {
  float lanes[kLanes];
  for (int lane = 0; lane < kLanes; ++lane) lanes[lane] = -kInfinity;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    LMCL_NO_UNROLL
    for (int lane = 0; lane < kLanes; ++lane) {
      const float v = i + lane != skip ? x[i + lane] : -kInfinity;
      lanes[lane] = v > lanes[lane] ? v : lanes[lane];
    }
  }
  for (int lane = 0; i + lane < n; ++lane) {  // the tail, into the same lanes
    const float v = i + lane != skip ? x[i + lane] : -kInfinity;
    lanes[lane] = v > lanes[lane] ? v : lanes[lane];
  }
  return combine_max(lanes);
}

// Σ_{k≠skip} exp(s·x_k − shift); stores each term in out[k] (out_skip = 0) when out is not null.
LMCL_INLINE float exp_sum_except(const float* __restrict x, int64_t n, int64_t skip, float scale, float shift,
                                 float* __restrict out) {
  float lanes[kLanes] = {0};
  int64_t i = 0;
  if (out) {
    for (; i + kLanes <= n; i += kLanes) {
      LMCL_NO_UNROLL
      for (int lane = 0; lane < kLanes; ++lane) {
        const float e = exp_approx(i + lane != skip ? scale * x[i + lane] - shift : -kInfinity);
        out[i + lane] = e;
        lanes[lane] += e;
      }
    }
  } else {
    for (; i + kLanes <= n; i += kLanes) {
      LMCL_NO_UNROLL
      for (int lane = 0; lane < kLanes; ++lane) lanes[lane] += exp_approx(i + lane != skip ? scale * x[i + lane] - shift : -kInfinity);
    }
  }
  if (i < n) {  // the last partial block as one masked step
    LMCL_NO_UNROLL
    for (int lane = 0; lane < kLanes; ++lane) {
      const int64_t k = i + lane;
      const float e = exp_approx(k < n && k != skip ? scale * x[k < n ? k : i] - shift : -kInfinity);
      if (out && k < n) out[k] = e;
      lanes[lane] += e;
    }
  }
  return combine_sum(lanes);
}

// log Σ_{k≠skip} exp(s·x_k), shifted by the row max. An empty row gives −inf; NaN/+inf propagate.
LMCL_INLINE float log_sum_exp(const float* __restrict x, int64_t n, int64_t skip, float scale) {
  const float maximum = max_except(x, n, skip);
  if (maximum == -kInfinity) return -kInfinity;
  const float shift = scale * maximum;
  return shift + std::log(exp_sum_except(x, n, skip, scale, shift, nullptr));
}

// Σ x_k over the columns k ≠ skip whose label equals `label`.
LMCL_INLINE float positive_sum(const float* __restrict x, int64_t n, int64_t skip, const int32_t* __restrict labels,
                               int32_t label) {
  float lanes[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    LMCL_NO_UNROLL
    for (int lane = 0; lane < kLanes; ++lane) {
      lanes[lane] += (labels[i + lane] == label && i + lane != skip) ? x[i + lane] : 0.0f;
    }
  }
  for (int lane = 0; i + lane < n; ++lane) lanes[lane] += (labels[i + lane] == label && i + lane != skip) ? x[i + lane] : 0.0f;
  return combine_sum(lanes);
}

// KL(softmax(s·t) ‖ softmax(s·x)) of one row, from both rows' log-sum-exps (all columns):
// s·Σ_v q_v (t_v − x_v) + lse_x − lse_t.
LMCL_INLINE float kl_cross(const float* __restrict x, const float* __restrict t, int64_t n, float scale, float lse_x,
                           float lse_t) {
  float lanes[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    LMCL_NO_UNROLL
    for (int lane = 0; lane < kLanes; ++lane) {
      const float q = exp_approx(scale * t[i + lane] - lse_t);
      lanes[lane] += q * (t[i + lane] - x[i + lane]);
    }
  }
  for (int lane = 0; i + lane < n; ++lane) lanes[lane] += exp_approx(scale * t[i + lane] - lse_t) * (t[i + lane] - x[i + lane]);
  return scale * combine_sum(lanes) + (lse_x - lse_t);
}

// The same from the teacher's stored probabilities q (no exp).
LMCL_INLINE float kl_from_probabilities(const float* __restrict x, const float* __restrict t,
                                        const float* __restrict q, int64_t n, float scale, float lse_x,
                                        float lse_t) {
  float lanes[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    LMCL_NO_UNROLL
    for (int lane = 0; lane < kLanes; ++lane) lanes[lane] += q[i + lane] * (t[i + lane] - x[i + lane]);
  }
  for (int lane = 0; i + lane < n; ++lane) lanes[lane] += q[i + lane] * (t[i + lane] - x[i + lane]);
  return scale * combine_sum(lanes) + (lse_x - lse_t);
}

// out_k = c·(exp(s·x_k − lse) − [labels_k = label]·inverse_positives) for k ≠ skip, out_skip = 0.
// out may alias x (each element is read, then written).
LMCL_INLINE void infonce_gradient(const float* x, int64_t n, int64_t skip, float scale, float lse,
                                  const int32_t* __restrict labels, int32_t label, float inverse_positives,
                                  float coefficient, float* out) {
  for (int64_t k = 0; k < n; ++k) {
    const float positive = labels[k] == label ? inverse_positives : 0.0f;
    out[k] = coefficient * (exp_approx(scale * x[k] - lse) - positive);
  }
  if (skip >= 0) out[skip] = 0.0f;
}

// The same from a stored softmax row whose skipped column is 0.
LMCL_INLINE void infonce_gradient_from_softmax(const float* __restrict softmax, int64_t n, int64_t skip,
                                               const int32_t* __restrict labels, int32_t label,
                                               float inverse_positives, float coefficient, float* __restrict out) {
  for (int64_t k = 0; k < n; ++k) {
    const float positive = labels[k] == label ? inverse_positives : 0.0f;
    out[k] = coefficient * (softmax[k] - positive);
  }
  out[skip] = 0.0f;
}

// out_k += c·row_k.
LMCL_INLINE void add_scaled(const float* __restrict row, int64_t n, float coefficient, float* __restrict out) {
  for (int64_t k = 0; k < n; ++k) out[k] += coefficient * row[k];
}

// row_k *= factor.
LMCL_INLINE void scale_row(float* __restrict row, int64_t n, float factor) {
  for (int64_t k = 0; k < n; ++k) row[k] *= factor;
}

// Per anchor u: the number of other items with its label (|P_u|). Returns the number of anchors
// with at least one positive (the divisor of the InfoNCE reduction).
inline int64_t count_positives(int64_t batch, const int32_t* labels, int32_t* positives) {
  std::unordered_map<int32_t, int32_t> per_label;
  per_label.reserve(static_cast<size_t>(batch));
  for (int64_t u = 0; u < batch; ++u) per_label[labels[u]] += 1;
  int64_t rows = 0;
  for (int64_t u = 0; u < batch; ++u) {
    positives[u] = per_label[labels[u]] - 1;
    if (positives[u] > 0) rows += 1;
  }
  return rows;
}

// ---- tiling over anchor rows (the one-pair ops) -----------------------------------------------
// The similarity rows of a block of anchors are formed by one GEMM into a scratch block, reduced,
// and (backward) turned into gradient rows in place. The scratch holds at most kBlockFloats floats
// per matrix (8 MiB), so extra memory is O(batch·dim + kBlockFloats), never batch².

constexpr int64_t kBlockFloats = int64_t{1} << 21;

inline int64_t rows_per_block(int64_t batch) {
  const int64_t rows = kBlockFloats / (batch > 0 ? batch : 1);
  return rows < 1 ? 1 : (rows > batch ? batch : rows);
}

// out[rows, batch] = anchor[first .. first+rows) · contrastᵀ (raw dot products).
inline Status similarity_block(int64_t first, int64_t rows, int64_t batch, int64_t dim, const float* anchor,
                               const float* contrast, float* out) {
  return gemm(false, true, rows, batch, dim, 1.0f, anchor + first * dim, dim, contrast, dim, 0.0f, out, batch);
}

// From gradient rows G[rows, batch] of the similarities of anchors first..first+rows:
// grad_anchor[first..] = G·contrast, grad_contrast (+)= Gᵀ·anchor[first..] (overwritten for the
// first block, accumulated after, in block order: deterministic). Either output may be nullptr.
inline Status similarity_block_backward(int64_t first, int64_t rows, int64_t batch, int64_t dim, const float* gradient,
                                        const float* anchor, const float* contrast, float* grad_anchor,
                                        float* grad_contrast) {
  if (grad_anchor) {
    LMCL_RETURN_IF_ERROR(gemm(false, false, rows, dim, batch, 1.0f, gradient, batch, contrast, dim, 0.0f,
                              grad_anchor + first * dim, dim));
  }
  if (grad_contrast) {
    LMCL_RETURN_IF_ERROR(gemm(true, false, batch, dim, rows, 1.0f, gradient, batch, anchor + first * dim, dim,
                              first == 0 ? 0.0f : 1.0f, grad_contrast, dim));
  }
  return Status::ok();
}

// The backward from gradient-direction rows saved by the forward, G = diag(c)·direction:
// grad_anchor = diag(c)·(direction·contrast), grad_contrast = directionᵀ·(diag(c)·anchor). Two
// GEMMs and no recomputation of the similarities; scratch: one [batch, dim] block.
inline Status similarity_backward_from_direction(int64_t batch, int64_t dim, const float* direction,
                                                 const float* row_factor, const float* anchor, const float* contrast,
                                                 float* grad_anchor, float* grad_contrast) {
  if (grad_anchor) {
    LMCL_RETURN_IF_ERROR(gemm(false, false, batch, dim, batch, 1.0f, direction, batch, contrast, dim, 0.0f, grad_anchor, dim));
    for (int64_t u = 0; u < batch; ++u)
      for (int64_t k = 0; k < dim; ++k) grad_anchor[u * dim + k] *= row_factor[u];
  }
  if (grad_contrast) {
    ScratchBuffer scaled(sizeof(float) * static_cast<size_t>(batch * dim));
    if (!scaled.ok()) return out_of_memory("contrastive backward: scaled anchors of " + describe_shape({batch, dim}));
    for (int64_t u = 0; u < batch; ++u)
      for (int64_t k = 0; k < dim; ++k) scaled.floats()[u * dim + k] = row_factor[u] * anchor[u * dim + k];
    LMCL_RETURN_IF_ERROR(gemm(true, false, batch, dim, batch, 1.0f, direction, batch, scaled.floats(), dim, 0.0f,
                              grad_contrast, dim));
  }
  return Status::ok();
}

// Rows per parallel task for row work over rows of `length` floats.
inline int64_t contrastive_row_grain(int64_t length) {
  const int64_t grain = (int64_t{1} << 14) / (length > 0 ? length : 1);
  return grain < 1 ? 1 : grain;
}

}  // namespace
}  // namespace cpu
}  // namespace lmcl
