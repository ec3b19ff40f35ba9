// L2 normalisation and cosine similarity (CPU).
//
//   normalize:   n = ‖x‖₂ along dim, y = x / max(n, eps)           (torch.nn.functional.normalize, p=2)
//     backward:  dx = (g − [n ≥ eps] · y · Σ g ⊙ y) / max(n, eps)  (the exact derivative; at n < eps
//                the clamp is constant and dx = g / eps, like PyTorch)
//   cosine:      n_a = max(‖a‖, eps), n_b = max(‖b‖, eps), out = Σ (a / n_a) ⊙ (b / n_b)
//                (PyTorch 1.13 cosine_similarity: norms clamped separately, as measured against
//                the Debian torch 1.13 build; not the older (a·b)/sqrt(max(‖a‖²‖b‖², eps²)))
//     backward:  ga = g / n_a · (b / n_b − out · a / n_a),  gb = g / n_b · (a / n_a − out · b / n_b)
//                (1.13 clamps its norms in place under no_grad, so the clamp is never
//                differentiated: this is its gradient at every n, and the true one for n ≥ eps)
// Layouts: contiguous, viewed as [outer, dim, inner]; norms and cosine outputs are [outer, inner].
//   inner == 1 (embeddings [B, d]): one row per task, sums of squares / dot products in 16
//     independent lanes in a fixed order (vectorised), tail elements added last.
//   inner > 1: tasks are (outer index, block of 64 columns), per-column accumulators summed over
//     dim in order, vectorised across the columns.
// Every output is computed by one thread in a fixed order: bits do not depend on the thread
// count. The loops are plain C++ compiled for SSE2, AVX2 and AVX-512 (target attributes) and
// picked by simd_level(); with -ffp-contract=off the three give identical bits.
// NaN propagates (a NaN norm is not clamped). Tested against float64 references
// (test/reference/normalize_reference.ts) in test/ops/normalize.test.ts.
#include "lmcl/normalize.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "lmcl/cpu_features.h"
#include "lmcl/parallel.h"
#include "simd_variants.h"

namespace lmcl {
namespace cpu {
namespace {

constexpr int kLanes = 16;
constexpr int64_t kColumnBlock = 64;
constexpr int64_t kGrainElements = 1 << 14;

LMCL_INLINE float combine_sum(float* lanes) {
  for (int width = kLanes / 2; width >= 1; width /= 2)
    for (int lane = 0; lane < width; ++lane) lanes[lane] += lanes[lane + width];
  return lanes[0];
}

LMCL_INLINE float row_dot(const float* __restrict a, const float* __restrict b, int64_t n) {
  float lanes[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    LMCL_NO_UNROLL  // kept rolled: GCC then vectorises it as one vector step (see softmax.cpp)
    for (int lane = 0; lane < kLanes; ++lane) lanes[lane] += a[i + lane] * b[i + lane];
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += a[i] * b[i];
  return combine_sum(lanes) + tail;
}

// max(n, eps) that keeps NaN (like clamp_min).
LMCL_INLINE float clamp_min(float n, float eps) { return n < eps ? eps : n; }

// ---- normalize -----------------------------------------------------------------------------------

struct NormalizeArgs {
  int64_t dim, inner, column_blocks;
  float eps;
  const float* x;     // forward input
  const float* y;     // backward: forward output
  const float* g;     // backward: incoming gradient
  float* out;         // forward: y; backward: dx
  float* norms;       // forward writes, backward reads
};

LMCL_INLINE void normalize_rows_body(int64_t begin, int64_t end, const NormalizeArgs& args) {
  const int64_t n = args.dim;
  for (int64_t row = begin; row < end; ++row) {
    const float* __restrict x = args.x + row * n;
    float* __restrict y = args.out + row * n;
    const float norm = std::sqrt(row_dot(x, x, n));
    args.norms[row] = norm;
    const float inverse = 1.0f / clamp_min(norm, args.eps);
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * inverse;
  }
}

LMCL_INLINE void normalize_columns_body(int64_t begin, int64_t end, const NormalizeArgs& args) {
  const int64_t dim = args.dim, inner = args.inner;
  float s[kColumnBlock];
  for (int64_t task = begin; task < end; ++task) {
    const int64_t o = task / args.column_blocks;
    const int64_t c0 = (task % args.column_blocks) * kColumnBlock;
    const int64_t width = std::min(kColumnBlock, inner - c0);
    const float* __restrict x = args.x + o * dim * inner + c0;
    float* __restrict y = args.out + o * dim * inner + c0;
    for (int64_t c = 0; c < width; ++c) s[c] = 0.0f;
    for (int64_t d = 0; d < dim; ++d)
      for (int64_t c = 0; c < width; ++c) s[c] += x[d * inner + c] * x[d * inner + c];
    for (int64_t c = 0; c < width; ++c) {
      const float norm = std::sqrt(s[c]);
      args.norms[o * inner + c0 + c] = norm;
      s[c] = 1.0f / clamp_min(norm, args.eps);
    }
    for (int64_t d = 0; d < dim; ++d)
      for (int64_t c = 0; c < width; ++c) y[d * inner + c] = x[d * inner + c] * s[c];
  }
}

LMCL_INLINE void normalize_backward_rows_body(int64_t begin, int64_t end, const NormalizeArgs& args) {
  const int64_t n = args.dim;
  for (int64_t row = begin; row < end; ++row) {
    const float* __restrict y = args.y + row * n;
    const float* __restrict g = args.g + row * n;
    float* __restrict dx = args.out + row * n;
    const float norm = args.norms[row];
    const float dot = norm >= args.eps ? row_dot(g, y, n) : 0.0f;
    const float inverse = 1.0f / clamp_min(norm, args.eps);
    for (int64_t i = 0; i < n; ++i) dx[i] = (g[i] - y[i] * dot) * inverse;
  }
}

LMCL_INLINE void normalize_backward_columns_body(int64_t begin, int64_t end, const NormalizeArgs& args) {
  const int64_t dim = args.dim, inner = args.inner;
  float s[kColumnBlock], inverse[kColumnBlock];
  for (int64_t task = begin; task < end; ++task) {
    const int64_t o = task / args.column_blocks;
    const int64_t c0 = (task % args.column_blocks) * kColumnBlock;
    const int64_t width = std::min(kColumnBlock, inner - c0);
    const int64_t base = o * dim * inner + c0;
    const float* __restrict y = args.y + base;
    const float* __restrict g = args.g + base;
    float* __restrict dx = args.out + base;
    const float* norms = args.norms + o * inner + c0;
    for (int64_t c = 0; c < width; ++c) s[c] = 0.0f;
    for (int64_t d = 0; d < dim; ++d)
      for (int64_t c = 0; c < width; ++c) s[c] += g[d * inner + c] * y[d * inner + c];
    for (int64_t c = 0; c < width; ++c) {
      if (!(norms[c] >= args.eps)) s[c] = 0.0f;
      inverse[c] = 1.0f / clamp_min(norms[c], args.eps);
    }
    for (int64_t d = 0; d < dim; ++d)
      for (int64_t c = 0; c < width; ++c)
        dx[d * inner + c] = (g[d * inner + c] - y[d * inner + c] * s[c]) * inverse[c];
  }
}

LMCL_DEFINE_VARIANTS(normalize_rows, NormalizeArgs)
LMCL_DEFINE_VARIANTS(normalize_columns, NormalizeArgs)
LMCL_DEFINE_VARIANTS(normalize_backward_rows, NormalizeArgs)
LMCL_DEFINE_VARIANTS(normalize_backward_columns, NormalizeArgs)

// ---- cosine similarity ---------------------------------------------------------------------------

struct CosineArgs {
  int64_t dim, inner, column_blocks;
  float eps;
  const float* a;
  const float* b;
  float* out;          // forward writes, backward reads
  float* norms_a;      // forward writes, backward reads
  float* norms_b;
  const float* g;      // backward
  float* ga;           // backward, may be null
  float* gb;           // backward, may be null
};

LMCL_INLINE void cosine_rows_body(int64_t begin, int64_t end, const CosineArgs& args) {
  const int64_t n = args.dim;
  for (int64_t row = begin; row < end; ++row) {
    const float* __restrict a = args.a + row * n;
    const float* __restrict b = args.b + row * n;
    float ab[kLanes] = {0}, aa[kLanes] = {0}, bb[kLanes] = {0};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      LMCL_NO_UNROLL
      for (int lane = 0; lane < kLanes; ++lane) {
        const float p = a[i + lane], q = b[i + lane];
        ab[lane] += p * q;
        aa[lane] += p * p;
        bb[lane] += q * q;
      }
    }
    float ab_tail = 0.0f, aa_tail = 0.0f, bb_tail = 0.0f;
    for (; i < n; ++i) {
      ab_tail += a[i] * b[i];
      aa_tail += a[i] * a[i];
      bb_tail += b[i] * b[i];
    }
    const float dot = combine_sum(ab) + ab_tail;
    const float norm_a = std::sqrt(combine_sum(aa) + aa_tail);
    const float norm_b = std::sqrt(combine_sum(bb) + bb_tail);
    args.norms_a[row] = norm_a;
    args.norms_b[row] = norm_b;
    args.out[row] = dot / clamp_min(norm_a, args.eps) / clamp_min(norm_b, args.eps);
  }
}

LMCL_INLINE void cosine_columns_body(int64_t begin, int64_t end, const CosineArgs& args) {
  const int64_t dim = args.dim, inner = args.inner;
  float ab[kColumnBlock], aa[kColumnBlock], bb[kColumnBlock];
  for (int64_t task = begin; task < end; ++task) {
    const int64_t o = task / args.column_blocks;
    const int64_t c0 = (task % args.column_blocks) * kColumnBlock;
    const int64_t width = std::min(kColumnBlock, inner - c0);
    const float* __restrict a = args.a + o * dim * inner + c0;
    const float* __restrict b = args.b + o * dim * inner + c0;
    for (int64_t c = 0; c < width; ++c) ab[c] = aa[c] = bb[c] = 0.0f;
    for (int64_t d = 0; d < dim; ++d)
      for (int64_t c = 0; c < width; ++c) {
        const float p = a[d * inner + c], q = b[d * inner + c];
        ab[c] += p * q;
        aa[c] += p * p;
        bb[c] += q * q;
      }
    const int64_t base = o * inner + c0;
    for (int64_t c = 0; c < width; ++c) {
      const float norm_a = std::sqrt(aa[c]), norm_b = std::sqrt(bb[c]);
      args.norms_a[base + c] = norm_a;
      args.norms_b[base + c] = norm_b;
      args.out[base + c] = ab[c] / clamp_min(norm_a, args.eps) / clamp_min(norm_b, args.eps);
    }
  }
}

LMCL_INLINE void cosine_backward_rows_body(int64_t begin, int64_t end, const CosineArgs& args) {
  const int64_t n = args.dim;
  for (int64_t row = begin; row < end; ++row) {
    const float* __restrict a = args.a + row * n;
    const float* __restrict b = args.b + row * n;
    const float inverse_a = 1.0f / clamp_min(args.norms_a[row], args.eps);
    const float inverse_b = 1.0f / clamp_min(args.norms_b[row], args.eps);
    const float out = args.out[row], g = args.g[row];
    if (args.ga) {
      float* __restrict ga = args.ga + row * n;
      const float scale = g * inverse_a;
      for (int64_t i = 0; i < n; ++i) ga[i] = scale * (b[i] * inverse_b - out * (a[i] * inverse_a));
    }
    if (args.gb) {
      float* __restrict gb = args.gb + row * n;
      const float scale = g * inverse_b;
      for (int64_t i = 0; i < n; ++i) gb[i] = scale * (a[i] * inverse_a - out * (b[i] * inverse_b));
    }
  }
}

LMCL_INLINE void cosine_backward_columns_body(int64_t begin, int64_t end, const CosineArgs& args) {
  const int64_t dim = args.dim, inner = args.inner;
  float inverse_a[kColumnBlock], inverse_b[kColumnBlock], scale_a[kColumnBlock], scale_b[kColumnBlock],
      out[kColumnBlock];
  for (int64_t task = begin; task < end; ++task) {
    const int64_t o = task / args.column_blocks;
    const int64_t c0 = (task % args.column_blocks) * kColumnBlock;
    const int64_t width = std::min(kColumnBlock, inner - c0);
    const int64_t base = o * inner + c0;
    for (int64_t c = 0; c < width; ++c) {
      inverse_a[c] = 1.0f / clamp_min(args.norms_a[base + c], args.eps);
      inverse_b[c] = 1.0f / clamp_min(args.norms_b[base + c], args.eps);
      scale_a[c] = args.g[base + c] * inverse_a[c];
      scale_b[c] = args.g[base + c] * inverse_b[c];
      out[c] = args.out[base + c];
    }
    const int64_t offset = o * dim * inner + c0;
    const float* __restrict a = args.a + offset;
    const float* __restrict b = args.b + offset;
    if (args.ga) {
      float* __restrict ga = args.ga + offset;
      for (int64_t d = 0; d < dim; ++d)
        for (int64_t c = 0; c < width; ++c) {
          const int64_t k = d * inner + c;
          ga[k] = scale_a[c] * (b[k] * inverse_b[c] - out[c] * (a[k] * inverse_a[c]));
        }
    }
    if (args.gb) {
      float* __restrict gb = args.gb + offset;
      for (int64_t d = 0; d < dim; ++d)
        for (int64_t c = 0; c < width; ++c) {
          const int64_t k = d * inner + c;
          gb[k] = scale_b[c] * (a[k] * inverse_a[c] - out[c] * (b[k] * inverse_b[c]));
        }
    }
  }
}

LMCL_DEFINE_VARIANTS(cosine_rows, CosineArgs)
LMCL_DEFINE_VARIANTS(cosine_columns, CosineArgs)
LMCL_DEFINE_VARIANTS(cosine_backward_rows, CosineArgs)
LMCL_DEFINE_VARIANTS(cosine_backward_columns, CosineArgs)

// ---- dispatch ------------------------------------------------------------------------------------

Status check_view(int64_t outer, int64_t dim, int64_t inner, float eps) {
  LMCL_CHECK_ARG(outer >= 0 && dim >= 0 && inner >= 0, "negative extent in view " + describe_shape({outer, dim, inner}));
  LMCL_CHECK_ARG(eps >= 0.0f && std::isfinite(eps), "eps must be a finite number >= 0, got " + std::to_string(eps));
  return Status::ok();
}

int64_t column_blocks_of(int64_t inner) { return (inner + kColumnBlock - 1) / kColumnBlock; }

// Runs rows(begin, end) over outer rows when inner == 1, else columns() over (outer, column block).
template <typename Args, typename RowsFn, typename ColumnsFn>
void run(const Args& args, int64_t outer, RowsFn rows, ColumnsFn columns) {
  const int64_t dim = std::max<int64_t>(1, args.dim);
  if (args.inner == 1) {
    parallel_for(0, outer, std::max<int64_t>(1, kGrainElements / dim),
                 [&](int64_t begin, int64_t end) { rows(begin, end, args); });
  } else {
    const int64_t width = std::min(args.inner, kColumnBlock);
    parallel_for(0, outer * args.column_blocks, std::max<int64_t>(1, kGrainElements / (dim * width)),
                 [&](int64_t begin, int64_t end) { columns(begin, end, args); });
  }
}

}  // namespace

Status l2_normalize_forward(int64_t outer, int64_t dim, int64_t inner, float eps, const float* x, float* y,
                            float* norms) {
  LMCL_RETURN_IF_ERROR(check_view(outer, dim, inner, eps));
  if (outer == 0 || inner == 0) return Status::ok();
  NormalizeArgs args{dim, inner, column_blocks_of(inner), eps, x, nullptr, nullptr, y, norms};
  run(args, outer, normalize_rows_pick(), normalize_columns_pick());
  return Status::ok();
}

Status l2_normalize_backward(int64_t outer, int64_t dim, int64_t inner, float eps, const float* y,
                             const float* norms, const float* g, float* dx) {
  LMCL_RETURN_IF_ERROR(check_view(outer, dim, inner, eps));
  if (outer == 0 || dim == 0 || inner == 0) return Status::ok();
  NormalizeArgs args{dim, inner, column_blocks_of(inner), eps, nullptr, y, g, dx, const_cast<float*>(norms)};
  run(args, outer, normalize_backward_rows_pick(), normalize_backward_columns_pick());
  return Status::ok();
}

Status cosine_similarity_forward(int64_t outer, int64_t dim, int64_t inner, float eps, const float* a,
                                 const float* b, float* out, float* norms_a, float* norms_b) {
  LMCL_RETURN_IF_ERROR(check_view(outer, dim, inner, eps));
  if (outer == 0 || inner == 0) return Status::ok();
  CosineArgs args{dim, inner, column_blocks_of(inner), eps, a, b, out, norms_a, norms_b, nullptr, nullptr, nullptr};
  run(args, outer, cosine_rows_pick(), cosine_columns_pick());
  return Status::ok();
}

Status cosine_similarity_backward(int64_t outer, int64_t dim, int64_t inner, float eps, const float* a,
                                  const float* b, const float* out, const float* norms_a, const float* norms_b,
                                  const float* g, float* ga, float* gb) {
  LMCL_RETURN_IF_ERROR(check_view(outer, dim, inner, eps));
  if (outer == 0 || dim == 0 || inner == 0 || (!ga && !gb)) return Status::ok();
  CosineArgs args{dim, inner, column_blocks_of(inner), eps, a, b, const_cast<float*>(out),
                  const_cast<float*>(norms_a), const_cast<float*>(norms_b), g, ga, gb};
  run(args, outer, cosine_backward_rows_pick(), cosine_backward_columns_pick());
  return Status::ok();
}

}  // namespace cpu
}  // namespace lmcl
