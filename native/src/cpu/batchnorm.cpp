// Batch normalisation (CPU). Contracts in include/lmcl/batchnorm.h.
//
// Layout: x, y, grad_out, grad_input are [N, C, S] row-major float32 (S = H·W, or 1 for [N, C]);
// channel c is N contiguous rows of S floats, row n at x + (n·C + c)·S. Per-channel vectors [C].
//
//   training forward:  mean_c = Σx/M,  var_c = Σ(x − mean_c)²/M,  invstd_c = 1/sqrt(var_c + eps),
//                      y = (x − mean_c)·(weight_c·invstd_c) + bias_c,   M = N·S;
//                      running_mean ← (1−m)·running_mean + m·mean_c,
//                      running_var  ← (1−m)·running_var  + m·var_c·M/(M−1)  (unbiased, like PyTorch)
//   eval forward:      the same map with mean = running_mean, invstd = 1/sqrt(running_var + eps)
//   backward:          grad_bias = Σdy,  grad_weight = Σdy·x̂ = invstd·Σdy·(x − mean),
//                      training: dx = weight·invstd·(dy − Σdy/M − (x − mean)·invstd²·Σdy·(x − mean)/M)
//                      eval:     dx = weight·invstd·dy
//   double backward:   the vector-Jacobian product of the training-mode dx and dγ maps above with
//                      respect to dy (= g), x and γ, for upstream gradients u (of dx) and γ̄ (of dγ);
//                      formulas in include/lmcl/batchnorm.h (batch_norm_double_backward)
//   epilogue (fused):  out = relu?(y + residual?) in the same pass as y; backward uses
//                      g = out > 0 ? dy : 0 for dy above, masked on the fly in each pass (written
//                      once, in the sums pass, only as grad_residual). Same float operations as bn,
//                      add, relu run apart, so the same bits.
//
// Work split: a task is (channel c, block b of the batch rows). The number of blocks per channel
// depends only on the shape (1 when C >= 16, so a channel's data is read from memory once and
// its second and third passes hit the L2 cache of the thread that owns it). Statistics are exact
// two-pass per block (mean, then centred sums with a mean correction), merged across blocks in
// block order with Chan's formula, in double. Sums run in 32 float lanes (plus a tail lane for
// the last S mod 32 elements of each row) that are flushed into a double total about every 1024
// elements, so long reductions (N·S = 128·32·32) stay accurate to ~1e-7 relative. Everything is
// computed in a fixed order that does not depend on the thread count: same inputs = same bits,
// on any number of threads.
// The row loops are compiled for AVX-512, AVX2 and baseline (target_clones); no FMA contraction
// (-ffp-contract=off) and no reassociation, so every ISA gives the same bits.
//
// Tested against the float64 reference test/reference/batchnorm_reference.ts in
// test/ops/batchnorm.test.ts (forward, running stats, backward, determinism; the epilogue against
// the unfused bn → add → relu ops, bit for bit, and by finite differences); semantics also
// cross-checked once against PyTorch 1.13's F.batch_norm (float64) on random inputs.
#include "lmcl/batchnorm.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "lmcl/allocator.h"
#include "lmcl/parallel.h"

namespace lmcl {
namespace cpu {
namespace {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LMCL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LMCL_CLONES
#endif

constexpr int64_t kChunk = 1024;             // float-lane sums are flushed to double every kChunk elements
constexpr int64_t kTargetTasks = 16;         // split the batch when there are fewer channels than this
constexpr int64_t kMinBlockElements = 8192;  // ... but never into blocks smaller than this

constexpr int kLanes = 32;  // independent float accumulators per sum (2 zmm / 4 ymm / 8 xmm)

inline float tree_sum(float* lanes) {
  for (int width = kLanes / 2; width >= 1; width /= 2)
    for (int lane = 0; lane < width; ++lane) lanes[lane] += lanes[lane + width];
  return lanes[0];
}

// A block of rows of one channel: row r starts at offset r·stride from the base pointers.
struct Rows {
  int64_t count, stride, length;
};

// Two sums over a block of rows, Σ t1 and Σ t2 where term(offset, &t1, &t2) gives the terms of
// the element at `offset`. Elements run through kLanes float lanes (element i of a row goes to
// lane i mod kLanes; the last length mod kLanes of a row to a separate tail accumulator); lanes
// and tail are flushed into double totals, in a fixed tree, about every kChunk elements. The
// order is fixed by the shape alone.
template <typename Term>
inline __attribute__((always_inline)) void sum_rows(const Rows& rows, Term term, double* sum1, double* sum2) {
  double total1 = 0.0, total2 = 0.0;
  float lanes1[kLanes] = {0}, lanes2[kLanes] = {0};
  float tail1 = 0.0f, tail2 = 0.0f;
  int64_t pending = 0;
  auto flush = [&]() {
    total1 += static_cast<double>(tree_sum(lanes1)) + static_cast<double>(tail1);
    total2 += static_cast<double>(tree_sum(lanes2)) + static_cast<double>(tail2);
    for (int lane = 0; lane < kLanes; ++lane) lanes1[lane] = lanes2[lane] = 0.0f;
    tail1 = tail2 = 0.0f;
    pending = 0;
  };
  for (int64_t r = 0; r < rows.count; ++r) {
    const int64_t row = r * rows.stride;
    for (int64_t start = 0; start < rows.length; start += kChunk) {
      const int64_t end = std::min(rows.length, start + kChunk);
      int64_t i = start;
      for (; i + kLanes <= end; i += kLanes) {
        for (int lane = 0; lane < kLanes; ++lane) term(row + i + lane, &lanes1[lane], &lanes2[lane]);
      }
      for (; i < end; ++i) term(row + i, &tail1, &tail2);
      pending += end - start;
      if (pending >= kChunk) flush();
    }
  }
  if (pending > 0) flush();
  *sum1 += total1;
  *sum2 += total2;
}

// Σ x over the rows (the second sum is unused).
LMCL_CLONES double rows_sum(const float* __restrict x, Rows rows) {
  double sum = 0.0, unused = 0.0;
  sum_rows(rows, [x](int64_t i, float* s1, float*) { *s1 += x[i]; }, &sum, &unused);
  return sum;
}

// Σ (x − center) and Σ (x − center)², added to *sum1 and *sum2.
LMCL_CLONES void rows_centred_sums(const float* __restrict x, Rows rows, float center, double* sum1, double* sum2) {
  sum_rows(rows, [x, center](int64_t i, float* s1, float* s2) {
    const float d = x[i] - center;
    *s1 += d;
    *s2 += d * d;
  }, sum1, sum2);
}

// Σ dy and Σ dy·(x − center), added to *sum_dy and *sum_dy_xc.
LMCL_CLONES void rows_grad_sums(const float* __restrict dy, const float* __restrict x, Rows rows, float center,
                                double* sum_dy, double* sum_dy_xc) {
  sum_rows(rows, [dy, x, center](int64_t i, float* s1, float* s2) {
    const float g = dy[i];
    *s1 += g;
    *s2 += g * (x[i] - center);
  }, sum_dy, sum_dy_xc);
}

// The same two sums of the ReLU-masked gradient g = output > 0 ? dy : 0, computed on the fly
// (the masking pass of the relu op's backward, fused); kStore also writes g (the residual's
// gradient) as it goes.
template <bool kStore>
inline __attribute__((always_inline)) void masked_grad_sums(const float* __restrict dy, const float* __restrict output,
                                                            const float* __restrict x, Rows rows, float center,
                                                            double* sum_dy, double* sum_dy_xc, float* __restrict g_out) {
  sum_rows(rows, [=](int64_t i, float* s1, float* s2) {
    const float g = output[i] > 0.0f ? dy[i] : 0.0f;
    if (kStore) g_out[i] = g;
    *s1 += g;
    *s2 += g * (x[i] - center);
  }, sum_dy, sum_dy_xc);
}

LMCL_CLONES void rows_masked_grad_sums(const float* __restrict dy, const float* __restrict output, const float* __restrict x,
                                       Rows rows, float center, double* sum_dy, double* sum_dy_xc) {
  masked_grad_sums<false>(dy, output, x, rows, center, sum_dy, sum_dy_xc, nullptr);
}

LMCL_CLONES void rows_masked_grad_sums_store(const float* __restrict dy, const float* __restrict output,
                                             const float* __restrict x, Rows rows, float center, double* sum_dy,
                                             double* sum_dy_xc, float* __restrict g_out) {
  masked_grad_sums<true>(dy, output, x, rows, center, sum_dy, sum_dy_xc, g_out);
}

// The relu op's map (native/src/cpu/elementwise.cpp): NaN passes through.
inline float relu_value(float v) { return v > 0.0f ? v : (v != v ? v : 0.0f); }

// y = relu?((x − mean)·scale + shift [+ residual]): the epilogue's four variants as separate
// loops, so each vectorises without a per-element branch.
LMCL_CLONES void rows_normalize(const float* __restrict x, Rows rows, float mean, float scale, float shift,
                                const float* __restrict residual, bool relu, float* __restrict y) {
  for (int64_t r = 0; r < rows.count; ++r) {
    const float* xr = x + r * rows.stride;
    float* yr = y + r * rows.stride;
    if (residual) {
      const float* rr = residual + r * rows.stride;
      if (relu) {
        for (int64_t i = 0; i < rows.length; ++i) yr[i] = relu_value(((xr[i] - mean) * scale + shift) + rr[i]);
      } else {
        for (int64_t i = 0; i < rows.length; ++i) yr[i] = ((xr[i] - mean) * scale + shift) + rr[i];
      }
    } else if (relu) {
      for (int64_t i = 0; i < rows.length; ++i) yr[i] = relu_value((xr[i] - mean) * scale + shift);
    } else {
      for (int64_t i = 0; i < rows.length; ++i) yr[i] = (xr[i] - mean) * scale + shift;
    }
  }
}

// g = output > 0 ? dy : 0 (the relu op's backward, reluMask), written over the rows of `g`.
LMCL_CLONES void rows_relu_mask(const float* __restrict dy, const float* __restrict output, Rows rows,
                                float* __restrict g) {
  for (int64_t r = 0; r < rows.count; ++r) {
    const int64_t o = r * rows.stride;
    for (int64_t i = 0; i < rows.length; ++i) g[o + i] = output[o + i] > 0.0f ? dy[o + i] : 0.0f;
  }
}

// dx = a·((dy − mean_dy) − (x − mean)·coef)
LMCL_CLONES void rows_backward(const float* __restrict dy, const float* __restrict x, Rows rows, float mean, float a,
                               float mean_dy, float coef, float* __restrict dx) {
  for (int64_t r = 0; r < rows.count; ++r) {
    const int64_t o = r * rows.stride;
    for (int64_t i = 0; i < rows.length; ++i) dx[o + i] = a * ((dy[o + i] - mean_dy) - (x[o + i] - mean) * coef);
  }
}

// dx = a·dy
LMCL_CLONES void rows_scale(const float* __restrict dy, Rows rows, float a, float* __restrict dx) {
  for (int64_t r = 0; r < rows.count; ++r) {
    const int64_t o = r * rows.stride;
    for (int64_t i = 0; i < rows.length; ++i) dx[o + i] = a * dy[o + i];
  }
}

// dx = a·((g − mean_dy) − (x − mean)·coef) with g = output > 0 ? dy : 0 computed on the fly.
LMCL_CLONES void rows_masked_backward(const float* __restrict dy, const float* __restrict output,
                                      const float* __restrict x, Rows rows, float mean, float a, float mean_dy,
                                      float coef, float* __restrict dx) {
  for (int64_t r = 0; r < rows.count; ++r) {
    const int64_t o = r * rows.stride;
    for (int64_t i = 0; i < rows.length; ++i) {
      const float g = output[o + i] > 0.0f ? dy[o + i] : 0.0f;
      dx[o + i] = a * ((g - mean_dy) - (x[o + i] - mean) * coef);
    }
  }
}

// dx = a·g with g = output > 0 ? dy : 0.
LMCL_CLONES void rows_masked_scale(const float* __restrict dy, const float* __restrict output, Rows rows, float a,
                                   float* __restrict dx) {
  for (int64_t r = 0; r < rows.count; ++r) {
    const int64_t o = r * rows.stride;
    for (int64_t i = 0; i < rows.length; ++i) dx[o + i] = a * (output[o + i] > 0.0f ? dy[o + i] : 0.0f);
  }
}

// Σ a·b over the rows (the second sum is unused).
LMCL_CLONES double rows_dot(const float* __restrict a, const float* __restrict b, Rows rows) {
  double sum = 0.0, unused = 0.0;
  sum_rows(rows, [a, b](int64_t i, float* s1, float*) { *s1 += a[i] * b[i]; }, &sum, &unused);
  return sum;
}

// The double backward's per-channel coefficients (batch_norm_double_backward):
//   to_grad = k1·u + k2 + (x − mean)·k3,   to_x = k4·g + k5·u + k6 + (x − mean)·k7
struct DoubleBackwardCoefficients {
  float k1, k2, k3, k4, k5, k6, k7;
};

// to_grad over the rows; u may be null (then k1 and k2 are 0 and dropped).
LMCL_CLONES void rows_double_backward_grad(const float* __restrict u, const float* __restrict x, Rows rows, float mean,
                                           DoubleBackwardCoefficients k, float* __restrict to_grad) {
  for (int64_t r = 0; r < rows.count; ++r) {
    const int64_t o = r * rows.stride;
    if (u) {
      for (int64_t i = 0; i < rows.length; ++i) to_grad[o + i] = (k.k1 * u[o + i] + k.k2) + (x[o + i] - mean) * k.k3;
    } else {
      for (int64_t i = 0; i < rows.length; ++i) to_grad[o + i] = (x[o + i] - mean) * k.k3;
    }
  }
}

// to_x over the rows; u may be null (then k5 is 0 and dropped).
LMCL_CLONES void rows_double_backward_x(const float* __restrict g, const float* __restrict u, const float* __restrict x,
                                        Rows rows, float mean, DoubleBackwardCoefficients k, float* __restrict to_x) {
  for (int64_t r = 0; r < rows.count; ++r) {
    const int64_t o = r * rows.stride;
    if (u) {
      for (int64_t i = 0; i < rows.length; ++i)
        to_x[o + i] = ((k.k4 * g[o + i] + k.k5 * u[o + i]) + k.k6) + (x[o + i] - mean) * k.k7;
    } else {
      for (int64_t i = 0; i < rows.length; ++i) to_x[o + i] = (k.k4 * g[o + i] + k.k6) + (x[o + i] - mean) * k.k7;
    }
  }
}

// The (channel, block) task split. Depends only on the shape.
struct Plan {
  int64_t batch, channels, spatial, blocks;
  int64_t tasks() const { return channels * blocks; }
  // Rows [begin, end) of block b (balanced split of the batch).
  void rows(int64_t b, int64_t* begin, int64_t* end) const {
    const int64_t base = batch / blocks, extra = batch % blocks;
    *begin = b * base + std::min(b, extra);
    *end = *begin + base + (b < extra ? 1 : 0);
  }
  int64_t row_offset(int64_t n, int64_t c) const { return (n * channels + c) * spatial; }
};

Plan make_plan(const BatchNormShape& s) {
  Plan plan{s.batch, s.channels, s.spatial, 1};
  if (s.channels < kTargetTasks && s.batch > 1) {
    int64_t blocks = (kTargetTasks + s.channels - 1) / s.channels;
    blocks = std::min(blocks, s.batch);
    blocks = std::min(blocks, std::max<int64_t>(1, s.batch * s.spatial / kMinBlockElements));
    plan.blocks = std::max<int64_t>(1, blocks);
  }
  return plan;
}

// Runs per_task over every task, finalize(c) for every channel once all of its tasks ran, then
// apply over every task. With one block per channel all three run for a channel on one thread
// back to back (its data stays in that core's cache); otherwise as three phases.
template <typename PerTask, typename Finalize, typename Apply>
void run_plan(const Plan& plan, PerTask per_task, Finalize finalize, Apply apply) {
  if (plan.blocks == 1) {
    parallel_for(0, plan.channels, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        per_task(c);
        finalize(c);
        apply(c);
      }
    });
    return;
  }
  parallel_for(0, plan.tasks(), 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) per_task(task);
  });
  for (int64_t c = 0; c < plan.channels; ++c) finalize(c);
  parallel_for(0, plan.tasks(), 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) apply(task);
  });
}

struct Moments {
  double count, mean, m2;  // per block: element count, mean, Σ(x − mean)²
};

struct GradSums {
  double sum_dy, sum_dy_xc;
};

struct BackwardCoefficients {
  float a, mean_dy, coef;
};

struct DoubleBackwardSums {
  double sum_g, sum_g_xc, sum_u, sum_u_xc, sum_u_g;
};

}  // namespace

}  // namespace cpu

Status validate_batch_norm_shape(const BatchNormShape& s) {
  LMCL_CHECK_ARG(s.batch >= 0 && s.channels >= 1 && s.spatial >= 0,
                 "invalid shape [N, C, S] = " + describe_shape({s.batch, s.channels, s.spatial}) +
                     " (need N >= 0, C >= 1, S >= 0)");
  LMCL_CHECK_ARG(static_cast<double>(s.batch) * static_cast<double>(s.channels) * static_cast<double>(s.spatial) < 4.0e18,
                 "shape " + describe_shape({s.batch, s.channels, s.spatial}) + " is too large");
  return Status::ok();
}

namespace cpu {

Status batch_norm_forward_training(const BatchNormShape& s, const float* x, const float* weight, const float* bias,
                                   float* running_mean, float* running_var, double momentum, double eps,
                                   const BatchNormEpilogue& epilogue, float* y, float* save_mean, float* save_invstd) {
  LMCL_RETURN_IF_ERROR(validate_batch_norm_shape(s));
  const int64_t count = s.batch * s.spatial;
  LMCL_CHECK_ARG(count > 1, "expected more than 1 value per channel when training, got shape [N, C, S] = " +
                                describe_shape({s.batch, s.channels, s.spatial}));
  LMCL_CHECK_ARG((running_mean == nullptr) == (running_var == nullptr),
                 "running_mean and running_var must be given together");
  LMCL_CHECK_ARG(std::isfinite(eps) && eps >= 0.0, "eps must be a finite number >= 0, got " + std::to_string(eps));
  LMCL_CHECK_ARG(std::isfinite(momentum), "momentum must be a finite number, got " + std::to_string(momentum));
  const Plan plan = make_plan(s);
  ScratchBuffer scratch(static_cast<size_t>(plan.tasks()) * sizeof(Moments));
  if (!scratch.ok()) return out_of_memory("batch_norm: out of memory for the per-block statistics");
  Moments* moments = static_cast<Moments*>(scratch.data());
  const int64_t S = s.spatial;

  auto block_stats = [&](int64_t task) {
    const int64_t c = task / plan.blocks, b = task % plan.blocks;
    int64_t begin, end;
    plan.rows(b, &begin, &end);
    const Rows rows{end - begin, plan.channels * S, S};
    const float* base = x + plan.row_offset(begin, c);
    const double block_count = static_cast<double>((end - begin) * S);
    const double sum = rows_sum(base, rows);
    double mean = block_count > 0 ? sum / block_count : 0.0;
    const float center = static_cast<float>(mean);
    double sum1 = 0.0, sum2 = 0.0;
    rows_centred_sums(base, rows, center, &sum1, &sum2);
    // Corrected two-pass: the centre is mean rounded to float; fold the residual back in.
    double m2 = 0.0;
    if (block_count > 0) {
      m2 = std::max(0.0, sum2 - sum1 * sum1 / block_count);
      mean = static_cast<double>(center) + sum1 / block_count;
    }
    moments[task] = Moments{block_count, mean, m2};
  };

  auto finalize = [&](int64_t c) {
    double total = 0.0, mean = 0.0, m2 = 0.0;
    for (int64_t b = 0; b < plan.blocks; ++b) {  // Chan et al., in block order
      const Moments& part = moments[c * plan.blocks + b];
      if (part.count == 0) continue;
      const double merged = total + part.count;
      const double delta = part.mean - mean;
      mean += delta * (part.count / merged);
      m2 += part.m2 + delta * delta * (total * part.count / merged);
      total = merged;
    }
    const double variance = m2 / static_cast<double>(count);
    save_mean[c] = static_cast<float>(mean);
    save_invstd[c] = static_cast<float>(1.0 / std::sqrt(variance + eps));
    if (running_mean) {
      const double unbiased = m2 / static_cast<double>(count - 1);
      running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mean);
      running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * unbiased);
    }
  };

  auto apply = [&](int64_t task) {
    const int64_t c = task / plan.blocks, b = task % plan.blocks;
    const float scale = (weight ? weight[c] : 1.0f) * save_invstd[c];
    const float shift = bias ? bias[c] : 0.0f;
    const float mean = save_mean[c];
    int64_t begin, end;
    plan.rows(b, &begin, &end);
    const int64_t offset = plan.row_offset(begin, c);
    rows_normalize(x + offset, Rows{end - begin, plan.channels * S, S}, mean, scale, shift,
                   epilogue.residual ? epilogue.residual + offset : nullptr, epilogue.relu, y + offset);
  };

  run_plan(plan, block_stats, finalize, apply);
  return Status::ok();
}

Status batch_norm_forward_eval(const BatchNormShape& s, const float* x, const float* weight, const float* bias,
                               const float* running_mean, const float* running_var, double eps,
                               const BatchNormEpilogue& epilogue, float* y, float* save_mean, float* save_invstd) {
  LMCL_RETURN_IF_ERROR(validate_batch_norm_shape(s));
  LMCL_CHECK_ARG(running_mean != nullptr && running_var != nullptr, "eval mode needs running_mean and running_var");
  LMCL_CHECK_ARG(std::isfinite(eps) && eps >= 0.0, "eps must be a finite number >= 0, got " + std::to_string(eps));
  for (int64_t c = 0; c < s.channels; ++c) {
    save_mean[c] = running_mean[c];
    save_invstd[c] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps));
  }
  const Plan plan = make_plan(s);
  const int64_t S = s.spatial;
  parallel_for(0, plan.tasks(), 1, [&](int64_t task_begin, int64_t task_end) {
    for (int64_t task = task_begin; task < task_end; ++task) {
      const int64_t c = task / plan.blocks, b = task % plan.blocks;
      const float scale = (weight ? weight[c] : 1.0f) * save_invstd[c];
      const float shift = bias ? bias[c] : 0.0f;
      int64_t begin, end;
      plan.rows(b, &begin, &end);
      const int64_t offset = plan.row_offset(begin, c);
      rows_normalize(x + offset, Rows{end - begin, plan.channels * S, S}, save_mean[c], scale, shift,
                     epilogue.residual ? epilogue.residual + offset : nullptr, epilogue.relu, y + offset);
    }
  });
  return Status::ok();
}

Status batch_norm_backward(const BatchNormShape& s, const float* grad_out, const float* x, const float* weight,
                           const float* save_mean, const float* save_invstd, bool training,
                           const BatchNormEpilogueGrad& epilogue, float* grad_input, float* grad_weight,
                           float* grad_bias) {
  LMCL_RETURN_IF_ERROR(validate_batch_norm_shape(s));
  const int64_t count = s.batch * s.spatial;
  const Plan plan = make_plan(s);
  const int64_t S = s.spatial;
  const bool need_sums = grad_weight || grad_bias || (training && grad_input);
  if (!need_sums && !grad_input && !epilogue.grad_residual) return Status::ok();
  // With a fused ReLU the kernel works on g = output > 0 ? dy : 0, computed on the fly in each
  // pass (no g tensor is written unless the residual wants it: then the sums pass writes it into
  // grad_residual and the dx pass reads it back from the task's own cache).
  const float* output = epilogue.output;
  float* grad_residual = epilogue.grad_residual;
  ScratchBuffer sums_scratch(need_sums ? static_cast<size_t>(plan.tasks()) * sizeof(GradSums) : 0);
  ScratchBuffer coefficient_scratch(static_cast<size_t>(s.channels) * sizeof(BackwardCoefficients));
  if (!sums_scratch.ok() || !coefficient_scratch.ok()) return out_of_memory("batch_norm backward: out of memory");
  GradSums* sums = static_cast<GradSums*>(sums_scratch.data());
  BackwardCoefficients* coefficients = static_cast<BackwardCoefficients*>(coefficient_scratch.data());

  auto block_sums = [&](int64_t task) {
    const int64_t c = task / plan.blocks, b = task % plan.blocks;
    int64_t begin, end;
    plan.rows(b, &begin, &end);
    const int64_t offset = plan.row_offset(begin, c);
    const Rows rows{end - begin, plan.channels * S, S};
    if (!need_sums) {
      if (grad_residual && output) rows_relu_mask(grad_out + offset, output + offset, rows, grad_residual + offset);
      else if (grad_residual) rows_scale(grad_out + offset, rows, 1.0f, grad_residual + offset);
      return;
    }
    double sum_dy = 0.0, sum_dy_xc = 0.0;
    if (output && grad_residual) {
      rows_masked_grad_sums_store(grad_out + offset, output + offset, x + offset, rows, save_mean[c], &sum_dy, &sum_dy_xc,
                                  grad_residual + offset);
    } else if (output) {
      rows_masked_grad_sums(grad_out + offset, output + offset, x + offset, rows, save_mean[c], &sum_dy, &sum_dy_xc);
    } else {
      if (grad_residual) rows_scale(grad_out + offset, rows, 1.0f, grad_residual + offset);
      rows_grad_sums(grad_out + offset, x + offset, rows, save_mean[c], &sum_dy, &sum_dy_xc);
    }
    sums[task] = GradSums{sum_dy, sum_dy_xc};
  };

  auto finalize = [&](int64_t c) {
    const double invstd = save_invstd[c];
    const double gamma = weight ? weight[c] : 1.0;
    double sum_dy = 0.0, sum_dy_xc = 0.0;
    if (need_sums) {
      for (int64_t b = 0; b < plan.blocks; ++b) {
        sum_dy += sums[c * plan.blocks + b].sum_dy;
        sum_dy_xc += sums[c * plan.blocks + b].sum_dy_xc;
      }
    }
    if (grad_bias) grad_bias[c] = static_cast<float>(sum_dy);
    if (grad_weight) grad_weight[c] = static_cast<float>(sum_dy_xc * invstd);
    BackwardCoefficients& k = coefficients[c];
    k.a = static_cast<float>(gamma * invstd);
    if (training && count > 0) {
      k.mean_dy = static_cast<float>(sum_dy / static_cast<double>(count));
      k.coef = static_cast<float>(sum_dy_xc * invstd * invstd / static_cast<double>(count));
    } else {
      k.mean_dy = 0.0f;
      k.coef = 0.0f;
    }
  };

  auto apply = [&](int64_t task) {
    if (!grad_input) return;
    const int64_t c = task / plan.blocks, b = task % plan.blocks;
    const BackwardCoefficients k = coefficients[c];
    int64_t begin, end;
    plan.rows(b, &begin, &end);
    const int64_t offset = plan.row_offset(begin, c);
    const Rows rows{end - begin, plan.channels * S, S};
    // g: the stored masked gradient when there is one, else masked on the fly, else dy itself.
    const bool masked_on_the_fly = output && !grad_residual;
    const float* g = output && grad_residual ? grad_residual : grad_out;
    if (training) {
      if (masked_on_the_fly) {
        rows_masked_backward(grad_out + offset, output + offset, x + offset, rows, save_mean[c], k.a, k.mean_dy, k.coef,
                             grad_input + offset);
      } else {
        rows_backward(g + offset, x + offset, rows, save_mean[c], k.a, k.mean_dy, k.coef, grad_input + offset);
      }
    } else if (masked_on_the_fly) {
      rows_masked_scale(grad_out + offset, output + offset, rows, k.a, grad_input + offset);
    } else {
      rows_scale(g + offset, rows, k.a, grad_input + offset);
    }
  };

  run_plan(plan, block_sums, finalize, apply);
  return Status::ok();
}

Status batch_norm_double_backward(const BatchNormShape& s, const float* grad_out, const float* x, const float* weight,
                                  const float* save_mean, const float* save_invstd, const float* upstream_input,
                                  const float* upstream_weight, float* grad_grad_out, float* grad_x,
                                  float* grad_weight) {
  LMCL_RETURN_IF_ERROR(validate_batch_norm_shape(s));
  const int64_t count = s.batch * s.spatial;
  LMCL_CHECK_ARG(count > 1, "expected more than 1 value per channel (training mode), got shape [N, C, S] = " +
                                describe_shape({s.batch, s.channels, s.spatial}));
  if (!grad_grad_out && !grad_x && !grad_weight) return Status::ok();
  const Plan plan = make_plan(s);
  const int64_t S = s.spatial;
  const float* u = upstream_input;
  ScratchBuffer sums_scratch(static_cast<size_t>(plan.tasks()) * sizeof(DoubleBackwardSums));
  ScratchBuffer coefficient_scratch(static_cast<size_t>(s.channels) * sizeof(DoubleBackwardCoefficients));
  if (!sums_scratch.ok() || !coefficient_scratch.ok()) return out_of_memory("batch_norm double backward: out of memory");
  DoubleBackwardSums* sums = static_cast<DoubleBackwardSums*>(sums_scratch.data());
  DoubleBackwardCoefficients* coefficients = static_cast<DoubleBackwardCoefficients*>(coefficient_scratch.data());

  // Σg, Σg·(x − mean), and with an upstream u for dx: Σu, Σu·(x − mean), Σu·g.
  auto block_sums = [&](int64_t task) {
    const int64_t c = task / plan.blocks, b = task % plan.blocks;
    int64_t begin, end;
    plan.rows(b, &begin, &end);
    const int64_t offset = plan.row_offset(begin, c);
    const Rows rows{end - begin, plan.channels * S, S};
    DoubleBackwardSums& part = sums[task];
    part = DoubleBackwardSums{0.0, 0.0, 0.0, 0.0, 0.0};
    rows_grad_sums(grad_out + offset, x + offset, rows, save_mean[c], &part.sum_g, &part.sum_g_xc);
    if (u) {
      rows_grad_sums(u + offset, x + offset, rows, save_mean[c], &part.sum_u, &part.sum_u_xc);
      part.sum_u_g = rows_dot(u + offset, grad_out + offset, rows);
    }
  };

  // The formulas of the header (in double), with xc = x − mean, x̂ = s·xc and ⟨·⟩ = Σ/M.
  auto finalize = [&](int64_t c) {
    DoubleBackwardSums total{0.0, 0.0, 0.0, 0.0, 0.0};
    for (int64_t b = 0; b < plan.blocks; ++b) {
      const DoubleBackwardSums& part = sums[c * plan.blocks + b];
      total.sum_g += part.sum_g;
      total.sum_g_xc += part.sum_g_xc;
      total.sum_u += part.sum_u;
      total.sum_u_xc += part.sum_u_xc;
      total.sum_u_g += part.sum_u_g;
    }
    const double M = static_cast<double>(count);
    const double invstd = save_invstd[c];
    const double gamma = weight ? weight[c] : 1.0;
    const double gamma_bar = upstream_weight ? upstream_weight[c] : 0.0;
    const double gs = gamma * invstd;
    const double mean_g = total.sum_g / M, mean_g_xhat = invstd * total.sum_g_xc / M;
    const double mean_u = total.sum_u / M, mean_u_xhat = invstd * total.sum_u_xc / M;
    const double bracket = total.sum_u_g - mean_g * total.sum_u - mean_g_xhat * invstd * total.sum_u_xc;
    if (grad_weight) grad_weight[c] = static_cast<float>(invstd * bracket);
    const double a = gamma_bar - gs * mean_u_xhat, b = -gs * mean_g_xhat;  // H = a·g + b·u
    const double mean_h = a * mean_g + b * mean_u, mean_h_xhat = a * mean_g_xhat + b * mean_u_xhat;
    DoubleBackwardCoefficients& k = coefficients[c];
    k.k1 = static_cast<float>(gs);
    k.k2 = static_cast<float>(-gs * mean_u);
    k.k3 = static_cast<float>(invstd * (gamma_bar - gs * mean_u_xhat));
    k.k4 = static_cast<float>(invstd * a);
    k.k5 = static_cast<float>(invstd * b);
    k.k6 = static_cast<float>(-invstd * mean_h);
    k.k7 = static_cast<float>(-(invstd * invstd * mean_h_xhat + gamma * bracket * invstd * invstd * invstd / M));
  };

  auto apply = [&](int64_t task) {
    const int64_t c = task / plan.blocks, b = task % plan.blocks;
    const DoubleBackwardCoefficients k = coefficients[c];
    int64_t begin, end;
    plan.rows(b, &begin, &end);
    const int64_t offset = plan.row_offset(begin, c);
    const Rows rows{end - begin, plan.channels * S, S};
    const float* u_rows = u ? u + offset : nullptr;
    if (grad_grad_out) rows_double_backward_grad(u_rows, x + offset, rows, save_mean[c], k, grad_grad_out + offset);
    if (grad_x) rows_double_backward_x(grad_out + offset, u_rows, x + offset, rows, save_mean[c], k, grad_x + offset);
  };

  run_plan(plan, block_sums, finalize, apply);
  return Status::ok();
}

}  // namespace cpu
}  // namespace lmcl
