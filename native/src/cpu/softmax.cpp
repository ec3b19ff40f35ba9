// Softmax, log-softmax and cross-entropy (CPU).
//
//   softmax:        y_k = exp(x_k − m) / Σ_j exp(x_j − m),   m = max_j x_j   (no overflow)
//   log-softmax:    y_k = (x_k − m) − log Σ_j exp(x_j − m)
//   backward:       softmax dx = y ⊙ (g − Σ g ⊙ y);   log-softmax dx = g − exp(y) · Σ g
//   cross-entropy:  stats_i = (m_i, ls_i = log Σ_j exp(x_ij − m_i)),
//                   loss_i = ls_i − (x_{i,label_i} − m_i)       (= logsumexp_i − x_{i,label_i})
//                   dx_ij  = (exp((x_ij − m_i) − ls_i) − [j = label_i]) · scale · g_i
// Layouts: x is contiguous and viewed as [outer, dim, inner]; the reduction runs along dim.
//   inner == 1 (logits [B, C], similarity matrices [B, B]): one row per task; maxima and sums in
//     16 independent lanes in a fixed order (one vector step per 16 elements), combined by a fixed
//     tree; the last partial block of the exp-sum is a masked step, other tails are added last.
//   inner > 1: tasks are (outer index, block of 64 columns); per-column max/sum vectors,
//     accumulated over dim in order, vectorised across the columns.
//   Cross-entropy: logits [batch, classes] rows, labels int32 [batch], stats [batch, 2].
// Every output element is computed by one thread in a fixed order, so the bits do not depend on
// the thread count. exp is the Cephes expf polynomial (reduction to [−ln2/2, ln2/2], evaluated by
// Estrin's scheme, ~1-2 ulp), branch-free so it vectorises; −inf → 0, NaN → NaN, overflow → inf,
// results below FLT_MIN come out as denormals (2^n applied in two halves). The loops are
// plain C++ compiled three times (SSE2, AVX2, AVX-512 via target attributes) and picked by
// simd_level(); with -ffp-contract=off and no reassociation the three give identical bits.
// Non-finite logits propagate like PyTorch: a row holding NaN or +inf, or only −inf, gives NaN.
// Tested against float64 references (test/reference/softmax_reference.ts) in
// test/ops/softmax.test.ts and test/ops/cross_entropy.test.ts.
#include "lmcl/softmax.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "lmcl/allocator.h"
#include "lmcl/cpu_features.h"
#include "lmcl/parallel.h"
#include "row_math.h"
#include "simd_variants.h"

namespace lmcl {
namespace cpu {
namespace {

constexpr int64_t kColumnBlock = 64;
constexpr int64_t kGrainElements = 1 << 14;

// ---- softmax / log-softmax forward ---------------------------------------------------------------

struct SoftmaxArgs {
  bool log;
  int64_t dim, inner, column_blocks;
  const float* x;
  float* y;
};

LMCL_INLINE void softmax_rows_body(int64_t begin, int64_t end, const SoftmaxArgs& args) {
  const int64_t n = args.dim;
  for (int64_t row = begin; row < end; ++row) {
    const float* __restrict x = args.x + row * n;
    float* __restrict y = args.y + row * n;
    const float m = row_max(x, n);
    if (args.log) {
      const float log_sum = std::log(row_exp_sum(x, m, n, nullptr));
      for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) - log_sum;
    } else {
      const float inverse = 1.0f / row_exp_sum(x, m, n, y);
      for (int64_t i = 0; i < n; ++i) y[i] *= inverse;
    }
  }
}

LMCL_INLINE void softmax_columns_body(int64_t begin, int64_t end, const SoftmaxArgs& args) {
  const int64_t dim = args.dim, inner = args.inner;
  float m[kColumnBlock], s[kColumnBlock];
  for (int64_t task = begin; task < end; ++task) {
    const int64_t o = task / args.column_blocks;
    const int64_t c0 = (task % args.column_blocks) * kColumnBlock;
    const int64_t width = std::min(kColumnBlock, inner - c0);
    const float* __restrict x = args.x + o * dim * inner + c0;
    float* __restrict y = args.y + o * dim * inner + c0;
    for (int64_t c = 0; c < width; ++c) m[c] = -kInfinity;
    for (int64_t d = 0; d < dim; ++d) {
      const float* __restrict row = x + d * inner;
      for (int64_t c = 0; c < width; ++c) m[c] = row[c] > m[c] ? row[c] : m[c];
    }
    for (int64_t c = 0; c < width; ++c) s[c] = 0.0f;
    if (args.log) {
      for (int64_t d = 0; d < dim; ++d) {
        const float* __restrict row = x + d * inner;
        for (int64_t c = 0; c < width; ++c) s[c] += exp_approx(row[c] - m[c]);
      }
      for (int64_t c = 0; c < width; ++c) s[c] = std::log(s[c]);
      for (int64_t d = 0; d < dim; ++d) {
        const float* __restrict row = x + d * inner;
        float* __restrict out = y + d * inner;
        for (int64_t c = 0; c < width; ++c) out[c] = (row[c] - m[c]) - s[c];
      }
    } else {
      for (int64_t d = 0; d < dim; ++d) {
        const float* __restrict row = x + d * inner;
        float* __restrict out = y + d * inner;
        for (int64_t c = 0; c < width; ++c) {
          const float e = exp_approx(row[c] - m[c]);
          out[c] = e;
          s[c] += e;
        }
      }
      for (int64_t c = 0; c < width; ++c) s[c] = 1.0f / s[c];
      for (int64_t d = 0; d < dim; ++d) {
        float* __restrict out = y + d * inner;
        for (int64_t c = 0; c < width; ++c) out[c] *= s[c];
      }
    }
  }
}

LMCL_DEFINE_VARIANTS(softmax_rows, SoftmaxArgs)
LMCL_DEFINE_VARIANTS(softmax_columns, SoftmaxArgs)

// ---- softmax / log-softmax backward --------------------------------------------------------------

struct SoftmaxBackwardArgs {
  bool log;
  int64_t dim, inner, column_blocks;
  const float* y;
  const float* g;
  float* dx;
};

LMCL_INLINE void softmax_backward_rows_body(int64_t begin, int64_t end, const SoftmaxBackwardArgs& args) {
  const int64_t n = args.dim;
  for (int64_t row = begin; row < end; ++row) {
    const float* __restrict y = args.y + row * n;
    const float* __restrict g = args.g + row * n;
    float* __restrict dx = args.dx + row * n;
    if (args.log) {
      const float total = row_sum(g, n);
      for (int64_t i = 0; i < n; ++i) dx[i] = g[i] - exp_approx(y[i]) * total;
    } else {
      const float dot = row_dot(g, y, n);
      for (int64_t i = 0; i < n; ++i) dx[i] = y[i] * (g[i] - dot);
    }
  }
}

LMCL_INLINE void softmax_backward_columns_body(int64_t begin, int64_t end, const SoftmaxBackwardArgs& args) {
  const int64_t dim = args.dim, inner = args.inner;
  float s[kColumnBlock];
  for (int64_t task = begin; task < end; ++task) {
    const int64_t o = task / args.column_blocks;
    const int64_t c0 = (task % args.column_blocks) * kColumnBlock;
    const int64_t width = std::min(kColumnBlock, inner - c0);
    const int64_t base = o * dim * inner + c0;
    const float* __restrict y = args.y + base;
    const float* __restrict g = args.g + base;
    float* __restrict dx = args.dx + base;
    for (int64_t c = 0; c < width; ++c) s[c] = 0.0f;
    if (args.log) {
      for (int64_t d = 0; d < dim; ++d)
        for (int64_t c = 0; c < width; ++c) s[c] += g[d * inner + c];
      for (int64_t d = 0; d < dim; ++d)
        for (int64_t c = 0; c < width; ++c) dx[d * inner + c] = g[d * inner + c] - exp_approx(y[d * inner + c]) * s[c];
    } else {
      for (int64_t d = 0; d < dim; ++d)
        for (int64_t c = 0; c < width; ++c) s[c] += g[d * inner + c] * y[d * inner + c];
      for (int64_t d = 0; d < dim; ++d)
        for (int64_t c = 0; c < width; ++c) dx[d * inner + c] = y[d * inner + c] * (g[d * inner + c] - s[c]);
    }
  }
}

LMCL_DEFINE_VARIANTS(softmax_backward_rows, SoftmaxBackwardArgs)
LMCL_DEFINE_VARIANTS(softmax_backward_columns, SoftmaxBackwardArgs)

// ---- cross-entropy -------------------------------------------------------------------------------

struct CrossEntropyArgs {
  int64_t classes;
  const float* logits;
  const int32_t* labels;
  float* losses;       // forward
  float* stats;        // forward writes, backward reads: [max, log-sum] per row
  const float* grad;   // backward
  bool grad_per_row;
  float scale;
  float* dx;
};

LMCL_INLINE void cross_entropy_forward_body(int64_t begin, int64_t end, const CrossEntropyArgs& args) {
  const int64_t n = args.classes;
  for (int64_t row = begin; row < end; ++row) {
    const float* __restrict x = args.logits + row * n;
    const float m = row_max(x, n);
    const float log_sum = std::log(row_exp_sum(x, m, n, nullptr));
    args.stats[2 * row] = m;
    args.stats[2 * row + 1] = log_sum;
    args.losses[row] = log_sum - (x[args.labels[row]] - m);
  }
}

LMCL_INLINE void cross_entropy_backward_body(int64_t begin, int64_t end, const CrossEntropyArgs& args) {
  const int64_t n = args.classes;
  for (int64_t row = begin; row < end; ++row) {
    const float* __restrict x = args.logits + row * n;
    float* __restrict dx = args.dx + row * n;
    const float m = args.stats[2 * row];
    const float log_sum = args.stats[2 * row + 1];
    const float c = args.scale * args.grad[args.grad_per_row ? row : 0];
    for (int64_t j = 0; j < n; ++j) dx[j] = exp_approx((x[j] - m) - log_sum) * c;
    const int32_t label = args.labels[row];
    dx[label] = (exp_approx((x[label] - m) - log_sum) - 1.0f) * c;
  }
}

LMCL_DEFINE_VARIANTS(cross_entropy_forward, CrossEntropyArgs)
LMCL_DEFINE_VARIANTS(cross_entropy_backward, CrossEntropyArgs)

// ---- shared checks -------------------------------------------------------------------------------

Status check_view(int64_t outer, int64_t dim, int64_t inner) {
  LMCL_CHECK_ARG(outer >= 0 && dim >= 0 && inner >= 0,
                 "negative extent in view " + describe_shape({outer, dim, inner}));
  return Status::ok();
}

Status check_labels(int64_t batch, int64_t classes, const int32_t* labels) {
  for (int64_t i = 0; i < batch; ++i) {
    if (labels[i] < 0 || labels[i] >= classes) {
      return invalid_argument("label " + std::to_string(labels[i]) + " at index " + std::to_string(i) +
                              " is out of range for " + std::to_string(classes) + " classes");
    }
  }
  return Status::ok();
}

int64_t row_grain(int64_t length) { return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, length)); }

}  // namespace

Status softmax_forward(bool log, int64_t outer, int64_t dim, int64_t inner, const float* x, float* y) {
  LMCL_RETURN_IF_ERROR(check_view(outer, dim, inner));
  if (outer == 0 || dim == 0 || inner == 0) return Status::ok();
  SoftmaxArgs args{log, dim, inner, (inner + kColumnBlock - 1) / kColumnBlock, x, y};
  if (inner == 1) {
    auto body = softmax_rows_pick();
    parallel_for(0, outer, row_grain(dim), [&](int64_t begin, int64_t end) { body(begin, end, args); });
  } else {
    auto body = softmax_columns_pick();
    parallel_for(0, outer * args.column_blocks, row_grain(dim * std::min(inner, kColumnBlock)),
                 [&](int64_t begin, int64_t end) { body(begin, end, args); });
  }
  return Status::ok();
}

Status softmax_backward(bool log, int64_t outer, int64_t dim, int64_t inner, const float* y, const float* g,
                        float* dx) {
  LMCL_RETURN_IF_ERROR(check_view(outer, dim, inner));
  if (outer == 0 || dim == 0 || inner == 0) return Status::ok();
  SoftmaxBackwardArgs args{log, dim, inner, (inner + kColumnBlock - 1) / kColumnBlock, y, g, dx};
  if (inner == 1) {
    auto body = softmax_backward_rows_pick();
    parallel_for(0, outer, row_grain(dim), [&](int64_t begin, int64_t end) { body(begin, end, args); });
  } else {
    auto body = softmax_backward_columns_pick();
    parallel_for(0, outer * args.column_blocks, row_grain(dim * std::min(inner, kColumnBlock)),
                 [&](int64_t begin, int64_t end) { body(begin, end, args); });
  }
  return Status::ok();
}

Status cross_entropy_forward(int64_t batch, int64_t classes, const float* logits, IndexArray labels_array,
                             CrossEntropyReduction reduction, float* out, float* stats) {
  const int32_t* labels = labels_array.host;
  LMCL_CHECK_ARG(batch >= 0 && classes >= 0, "negative extent in logits shape " + describe_shape({batch, classes}));
  LMCL_CHECK_ARG(reduction == CrossEntropyReduction::kNone || reduction == CrossEntropyReduction::kSum ||
                     reduction == CrossEntropyReduction::kMean,
                 "unknown reduction " + std::to_string(static_cast<int>(reduction)));
  LMCL_RETURN_IF_ERROR(check_labels(batch, classes, labels));
  ScratchBuffer scratch(reduction == CrossEntropyReduction::kNone ? 0 : sizeof(float) * static_cast<size_t>(batch));
  if (!scratch.ok()) return out_of_memory("cross-entropy workspace of " + std::to_string(batch) + " floats");
  float* losses = reduction == CrossEntropyReduction::kNone ? out : scratch.floats();
  if (batch > 0) {
    CrossEntropyArgs args{classes, logits, labels, losses, stats, nullptr, false, 0.0f, nullptr};
    auto body = cross_entropy_forward_pick();
    parallel_for(0, batch, row_grain(classes), [&](int64_t begin, int64_t end) { body(begin, end, args); });
  }
  if (reduction != CrossEntropyReduction::kNone) {
    const float total = row_sum(losses, batch);
    out[0] = reduction == CrossEntropyReduction::kMean ? total / static_cast<float>(batch) : total;  // mean of none: NaN
  }
  return Status::ok();
}

Status cross_entropy_backward(int64_t batch, int64_t classes, const float* logits, IndexArray labels_array,
                              const float* stats, const float* grad, bool grad_per_row, float scale, float* dx) {
  const int32_t* labels = labels_array.host;
  LMCL_CHECK_ARG(batch >= 0 && classes >= 0, "negative extent in logits shape " + describe_shape({batch, classes}));
  LMCL_RETURN_IF_ERROR(check_labels(batch, classes, labels));
  if (batch == 0) return Status::ok();
  CrossEntropyArgs args{classes, logits, labels, nullptr, const_cast<float*>(stats), grad, grad_per_row, scale, dx};
  auto body = cross_entropy_backward_pick();
  parallel_for(0, batch, row_grain(classes), [&](int64_t begin, int64_t end) { body(begin, end, args); });
  return Status::ok();
}

}  // namespace cpu
}  // namespace lmcl
