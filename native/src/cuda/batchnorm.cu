// Batch normalisation on the GPU: training and eval forward, backward, with the fused epilogue.
//
// Layout [N, C, S] row-major float32 (S = H·W, or 1 for [N, C]): channel c is N rows of S
// contiguous floats, row n at (n·C + c)·S. Per-channel vectors [C]. All pointers are device memory.
//   training forward:  mean_c = Σx/M, var_c = Σ(x − mean_c)²/M, invstd_c = 1/sqrt(var_c + eps), M = N·S
//                      y = relu?((x − mean_c)·(weight_c·invstd_c) + bias_c [+ residual])
//                      running_mean ← (1−m)·running_mean + m·mean_c
//                      running_var  ← (1−m)·running_var  + m·var_c·M/(M−1)   (unbiased)
//   eval forward:      the same map with mean = running_mean, invstd = 1/sqrt(running_var + eps);
//                      save_mean/save_invstd receive those constants
//   backward:          g = output > 0 ? dy : 0 with a fused ReLU (else dy); g → grad_residual
//                      grad_bias = Σg, grad_weight = invstd·Σg·(x − mean)
//                      training: dx = weight·invstd·((g − Σg/M) − (x − mean)·invstd²·Σg(x − mean)/M)
//                      eval:     dx = weight·invstd·g
//   double backward:   (training) the VJP of dx and dγ w.r.t. g, x, γ for upstreams u (of dx), γ̄ (of
//                      dγ): per-channel sums Σg, Σg·xc, Σu, Σu·xc, Σu·g (xc = x − mean), then one
//                      elementwise map; formulas in lmcl/batchnorm.h
// The reference is the CPU kernels lmcl::cpu::batch_norm_* (native/src/cpu/batchnorm.cpp): the
// same validation and messages, the same outputs that may be null, the statistics in double with
// the same corrected two-pass scheme and Chan merge (bits need not match the CPU: the split into
// blocks and the summation order differ). Parity cases: native/test/cases/batchnorm.cpp.
//
// Launch geometry (memory bound: every kernel streams [N, C, S] once or twice, the per-channel
// work is negligible):
// - statistics (forward moments, backward gradient sums): grid (P, C), block (b, c) reduces rows
//   [begin, end) of the batch (a balanced split into P blocks) of channel c. P depends only on the
//   shape (about 1024 blocks in all, each of at least 2048 elements), so few channels still fill
//   the card. Each thread accumulates its elements in double; detail::block_sum trees make the
//   block's totals; the per-block partials [C, P] are merged per channel by a one-thread-per-
//   channel kernel in block order (Chan's formula for the moments, plain sums for gradients).
//   Forward moments are two-pass inside the block (mean, then centred sums; the block's data is
//   re-read from L2), so var is exact up to rounding, as on the CPU.
// - elementwise passes (normalize, dx, residual gradient): grid (row blocks, C), so a block's
//   per-channel constants are loaded once; a row of S floats is spread over L lanes (L = the
//   power of two in [32, 256] that first covers S) and the block's 256 threads take 256/L rows at
//   a time: coalesced along S without a division per element. (S < 32 leaves lanes idle; such
//   tensors are small.)
// The channel axis is launched in chunks of 65535 (the grid's y limit). The elementwise maps use
// explicit _rn intrinsics (no FMA contraction), the float operations of the CPU kernel, so the
// fused epilogue is bn → add → relu exactly.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "common.cuh"
#include "lmcl/cuda_ops.h"

namespace lmcl {
namespace cuda {
namespace {

constexpr int kBlock = detail::kThreads;     // 256, a power of two (block_sum needs one)
constexpr int64_t kTargetBlocks = 1024;      // statistics blocks wanted over all channels
constexpr int64_t kMinBlockElements = 2048;  // ... but no block smaller than this
constexpr int64_t kMaxGridY = 65535;
constexpr int64_t kMaxRowBlocks = 1 << 20;   // grid-stride beyond this

struct Moments {
  double count, mean, m2;  // one block's element count, mean, Σ(x − mean)²
};

struct GradSums {
  double sum_g, sum_g_xc;  // one block's Σg and Σg·(x − mean)
};

struct BackwardCoefficients {
  float a, mean_g, coef;  // dx = a·((g − mean_g) − (x − mean)·coef)
};

// The elementwise map of a block: rows of S floats over L lanes, kBlock / L rows at a time.
struct RowLanes {
  int lanes, rows_per_pass;
};

RowLanes row_lanes(int64_t spatial) {
  int lanes = 32;
  while (lanes < spatial && lanes < kBlock) lanes *= 2;
  return RowLanes{lanes, kBlock / lanes};
}

// Batch blocks per channel for the statistics kernels; depends only on the shape.
int64_t batch_blocks(const BatchNormShape& s) {
  if (s.batch <= 1) return 1;
  int64_t blocks = (kTargetBlocks + s.channels - 1) / s.channels;
  blocks = std::min(blocks, s.batch);
  blocks = std::min(blocks, std::max<int64_t>(1, s.batch * s.spatial / kMinBlockElements));
  return std::max<int64_t>(1, blocks);
}

__device__ __forceinline__ void block_rows(int64_t batch, int64_t blocks, int64_t b, int64_t* begin, int64_t* end) {
  const int64_t base = batch / blocks, extra = batch % blocks;
  *begin = b * base + (b < extra ? b : extra);
  *end = *begin + base + (b < extra ? 1 : 0);
}

// The relu op's map (native/src/cpu/elementwise.cpp): NaN passes through.
__device__ __forceinline__ float relu_value(float v) { return v > 0.0f ? v : (v != v ? v : 0.0f); }

// g = output > 0 ? dy : 0 with a fused ReLU, else dy.
__device__ __forceinline__ float masked_grad(const float* dy, const float* output, int64_t i) {
  return output ? (output[i] > 0.0f ? dy[i] : 0.0f) : dy[i];
}

// ---- forward ---------------------------------------------------------------------------------

// Block (b, c): the corrected two-pass moments of rows [begin, end) of channel c.
__global__ void __launch_bounds__(kBlock)
    moments_kernel(int64_t batch, int64_t channels, int64_t spatial, int64_t blocks, RowLanes map,
                   int64_t channel_offset, const float* __restrict__ x, Moments* __restrict__ parts) {
  __shared__ double shared[kBlock];
  const int64_t c = channel_offset + blockIdx.y, b = blockIdx.x;
  int64_t begin, end;
  block_rows(batch, blocks, b, &begin, &end);
  const int slot = threadIdx.x / map.lanes, lane = threadIdx.x % map.lanes;

  double sum = 0.0;
  for (int64_t n = begin + slot; n < end; n += map.rows_per_pass) {
    const float* row = x + (n * channels + c) * spatial;
    for (int64_t s = lane; s < spatial; s += map.lanes) sum += static_cast<double>(row[s]);
  }
  const double count = static_cast<double>((end - begin) * spatial);
  const double total = detail::block_sum(sum, shared);
  // Centre on the block mean rounded to float, then fold the residual back in (as the CPU).
  const float center = static_cast<float>(count > 0 ? total / count : 0.0);
  double sum1 = 0.0, sum2 = 0.0;
  for (int64_t n = begin + slot; n < end; n += map.rows_per_pass) {
    const float* row = x + (n * channels + c) * spatial;
    for (int64_t s = lane; s < spatial; s += map.lanes) {
      const double d = static_cast<double>(row[s]) - static_cast<double>(center);
      sum1 += d;
      sum2 += d * d;
    }
  }
  sum1 = detail::block_sum(sum1, shared);
  sum2 = detail::block_sum(sum2, shared);
  if (threadIdx.x == 0) {
    Moments part{count, 0.0, 0.0};
    if (count > 0) {
      part.m2 = fmax(0.0, sum2 - sum1 * sum1 / count);
      part.mean = static_cast<double>(center) + sum1 / count;
    }
    parts[c * blocks + b] = part;
  }
}

// Per channel: the blocks' moments merged in block order (Chan et al.), save_mean/save_invstd,
// and the running statistics (when given).
__global__ void finalize_moments_kernel(int64_t channels, int64_t blocks, int64_t count, const Moments* __restrict__ parts,
                                        double momentum, double eps, float* running_mean, float* running_var,
                                        float* __restrict__ save_mean, float* __restrict__ save_invstd) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < channels; c += int64_t(gridDim.x) * blockDim.x) {
    double total = 0.0, mean = 0.0, m2 = 0.0;
    for (int64_t b = 0; b < blocks; ++b) {
      const Moments part = parts[c * blocks + b];
      if (part.count == 0) continue;
      const double merged = total + part.count;
      const double delta = part.mean - mean;
      mean += delta * (part.count / merged);
      m2 += part.m2 + delta * delta * (total * part.count / merged);
      total = merged;
    }
    const double variance = m2 / static_cast<double>(count);
    save_mean[c] = static_cast<float>(mean);
    save_invstd[c] = static_cast<float>(1.0 / sqrt(variance + eps));
    if (running_mean) {
      const double unbiased = m2 / static_cast<double>(count - 1);
      running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mean);
      running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * unbiased);
    }
  }
}

// Eval: the constants are the running statistics.
__global__ void eval_constants_kernel(int64_t channels, const float* __restrict__ running_mean,
                                      const float* __restrict__ running_var, double eps, float* __restrict__ save_mean,
                                      float* __restrict__ save_invstd) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < channels; c += int64_t(gridDim.x) * blockDim.x) {
    save_mean[c] = running_mean[c];
    save_invstd[c] = static_cast<float>(1.0 / sqrt(static_cast<double>(running_var[c]) + eps));
  }
}

// y = relu?((x − mean)·scale + shift [+ residual]), scale = weight·invstd, shift = bias.
__global__ void __launch_bounds__(kBlock)
    normalize_kernel(int64_t batch, int64_t channels, int64_t spatial, RowLanes map, int64_t channel_offset,
                     const float* __restrict__ x, const float* __restrict__ weight, const float* __restrict__ bias,
                     const float* __restrict__ mean_of, const float* __restrict__ invstd_of,
                     const float* __restrict__ residual, bool relu, float* __restrict__ y) {
  const int64_t c = channel_offset + blockIdx.y;
  const float scale = __fmul_rn(weight ? weight[c] : 1.0f, invstd_of[c]);
  const float shift = bias ? bias[c] : 0.0f;
  const float mean = mean_of[c];
  const int slot = threadIdx.x / map.lanes, lane = threadIdx.x % map.lanes;
  const int64_t step = int64_t(gridDim.x) * map.rows_per_pass;
  for (int64_t n = int64_t(blockIdx.x) * map.rows_per_pass + slot; n < batch; n += step) {
    const int64_t row = (n * channels + c) * spatial;
    for (int64_t s = lane; s < spatial; s += map.lanes) {
      const int64_t i = row + s;
      float v = __fadd_rn(__fmul_rn(__fsub_rn(x[i], mean), scale), shift);
      if (residual) v = __fadd_rn(v, residual[i]);
      if (relu) v = relu_value(v);
      y[i] = v;
    }
  }
}

// ---- backward --------------------------------------------------------------------------------

// Block (b, c): Σg and Σg·(x − mean) over rows [begin, end) of channel c; writes g to
// grad_residual as it goes when that is wanted.
__global__ void __launch_bounds__(kBlock)
    grad_sums_kernel(int64_t batch, int64_t channels, int64_t spatial, int64_t blocks, RowLanes map,
                     int64_t channel_offset, const float* __restrict__ dy, const float* __restrict__ output,
                     const float* __restrict__ x, const float* __restrict__ save_mean, float* __restrict__ grad_residual,
                     GradSums* __restrict__ parts) {
  __shared__ double shared[kBlock];
  const int64_t c = channel_offset + blockIdx.y, b = blockIdx.x;
  int64_t begin, end;
  block_rows(batch, blocks, b, &begin, &end);
  const int slot = threadIdx.x / map.lanes, lane = threadIdx.x % map.lanes;
  const double center = static_cast<double>(save_mean[c]);
  double sum_g = 0.0, sum_g_xc = 0.0;
  for (int64_t n = begin + slot; n < end; n += map.rows_per_pass) {
    const int64_t row = (n * channels + c) * spatial;
    for (int64_t s = lane; s < spatial; s += map.lanes) {
      const int64_t i = row + s;
      const float g = masked_grad(dy, output, i);
      if (grad_residual) grad_residual[i] = g;
      sum_g += static_cast<double>(g);
      sum_g_xc += static_cast<double>(g) * (static_cast<double>(x[i]) - center);
    }
  }
  sum_g = detail::block_sum(sum_g, shared);
  sum_g_xc = detail::block_sum(sum_g_xc, shared);
  if (threadIdx.x == 0) parts[c * blocks + b] = GradSums{sum_g, sum_g_xc};
}

// Per channel: the blocks' sums in block order, grad_bias/grad_weight, and dx's coefficients.
__global__ void finalize_grad_kernel(int64_t channels, int64_t blocks, int64_t count, bool training,
                                     const GradSums* __restrict__ parts, const float* __restrict__ weight,
                                     const float* __restrict__ save_invstd, float* __restrict__ grad_weight,
                                     float* __restrict__ grad_bias, BackwardCoefficients* __restrict__ coefficients) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < channels; c += int64_t(gridDim.x) * blockDim.x) {
    const double invstd = save_invstd[c];
    const double gamma = weight ? weight[c] : 1.0;
    double sum_g = 0.0, sum_g_xc = 0.0;
    for (int64_t b = 0; b < blocks; ++b) {
      sum_g += parts[c * blocks + b].sum_g;
      sum_g_xc += parts[c * blocks + b].sum_g_xc;
    }
    if (grad_bias) grad_bias[c] = static_cast<float>(sum_g);
    if (grad_weight) grad_weight[c] = static_cast<float>(sum_g_xc * invstd);
    BackwardCoefficients k;
    k.a = static_cast<float>(gamma * invstd);
    if (training && count > 0) {
      k.mean_g = static_cast<float>(sum_g / static_cast<double>(count));
      k.coef = static_cast<float>(sum_g_xc * invstd * invstd / static_cast<double>(count));
    } else {
      k.mean_g = 0.0f;
      k.coef = 0.0f;
    }
    coefficients[c] = k;
  }
}

// dx = a·((g − mean_g) − (x − mean)·coef) (training) or a·g (eval). g is read from `stored` when
// the sums pass wrote it there, else masked from dy on the fly.
__global__ void __launch_bounds__(kBlock)
    grad_input_kernel(int64_t batch, int64_t channels, int64_t spatial, RowLanes map, int64_t channel_offset,
                      bool training, const float* __restrict__ dy, const float* __restrict__ output,
                      const float* __restrict__ stored, const float* __restrict__ x, const float* __restrict__ save_mean,
                      const BackwardCoefficients* __restrict__ coefficients, float* __restrict__ grad_input) {
  const int64_t c = channel_offset + blockIdx.y;
  const BackwardCoefficients k = coefficients[c];
  const float mean = save_mean[c];
  const int slot = threadIdx.x / map.lanes, lane = threadIdx.x % map.lanes;
  const int64_t step = int64_t(gridDim.x) * map.rows_per_pass;
  for (int64_t n = int64_t(blockIdx.x) * map.rows_per_pass + slot; n < batch; n += step) {
    const int64_t row = (n * channels + c) * spatial;
    for (int64_t s = lane; s < spatial; s += map.lanes) {
      const int64_t i = row + s;
      const float g = stored ? stored[i] : masked_grad(dy, output, i);
      grad_input[i] = training ? __fmul_rn(k.a, __fsub_rn(__fsub_rn(g, k.mean_g), __fmul_rn(__fsub_rn(x[i], mean), k.coef)))
                               : __fmul_rn(k.a, g);
    }
  }
}

// g alone (no sums wanted): grad_residual = output > 0 ? dy : 0, or dy.
__global__ void __launch_bounds__(kBlock)
    residual_grad_kernel(int64_t batch, int64_t channels, int64_t spatial, RowLanes map, int64_t channel_offset,
                         const float* __restrict__ dy, const float* __restrict__ output, float* __restrict__ grad_residual) {
  const int64_t c = channel_offset + blockIdx.y;
  const int slot = threadIdx.x / map.lanes, lane = threadIdx.x % map.lanes;
  const int64_t step = int64_t(gridDim.x) * map.rows_per_pass;
  for (int64_t n = int64_t(blockIdx.x) * map.rows_per_pass + slot; n < batch; n += step) {
    const int64_t row = (n * channels + c) * spatial;
    for (int64_t s = lane; s < spatial; s += map.lanes) grad_residual[row + s] = masked_grad(dy, output, row + s);
  }
}

// ---- double backward (training) ---------------------------------------------------------------

struct DoubleBackwardSums {
  double sum_g, sum_g_xc, sum_u, sum_u_xc, sum_u_g;  // one block's sums (u: the upstream of dx)
};

struct DoubleBackwardCoefficients {
  float k1, k2, k3, k4, k5, k6, k7;  // to_grad = k1·u + k2 + xc·k3, to_x = k4·g + k5·u + k6 + xc·k7
};

// Block (b, c): Σg, Σg·xc and, when u is given, Σu, Σu·xc, Σu·g over rows [begin, end) of channel c.
__global__ void __launch_bounds__(kBlock)
    double_sums_kernel(int64_t batch, int64_t channels, int64_t spatial, int64_t blocks, RowLanes map,
                       int64_t channel_offset, const float* __restrict__ g, const float* __restrict__ u,
                       const float* __restrict__ x, const float* __restrict__ save_mean,
                       DoubleBackwardSums* __restrict__ parts) {
  __shared__ double shared[kBlock];
  const int64_t c = channel_offset + blockIdx.y, b = blockIdx.x;
  int64_t begin, end;
  block_rows(batch, blocks, b, &begin, &end);
  const int slot = threadIdx.x / map.lanes, lane = threadIdx.x % map.lanes;
  const double center = static_cast<double>(save_mean[c]);
  double sum_g = 0.0, sum_g_xc = 0.0, sum_u = 0.0, sum_u_xc = 0.0, sum_u_g = 0.0;
  for (int64_t n = begin + slot; n < end; n += map.rows_per_pass) {
    const int64_t row = (n * channels + c) * spatial;
    for (int64_t s = lane; s < spatial; s += map.lanes) {
      const int64_t i = row + s;
      const double gi = g[i], xc = static_cast<double>(x[i]) - center;
      sum_g += gi;
      sum_g_xc += gi * xc;
      if (u) {
        const double ui = u[i];
        sum_u += ui;
        sum_u_xc += ui * xc;
        sum_u_g += ui * gi;
      }
    }
  }
  sum_g = detail::block_sum(sum_g, shared);
  sum_g_xc = detail::block_sum(sum_g_xc, shared);
  if (u) {
    sum_u = detail::block_sum(sum_u, shared);
    sum_u_xc = detail::block_sum(sum_u_xc, shared);
    sum_u_g = detail::block_sum(sum_u_g, shared);
  }
  if (threadIdx.x == 0) parts[c * blocks + b] = DoubleBackwardSums{sum_g, sum_g_xc, sum_u, sum_u_xc, sum_u_g};
}

// Per channel: the blocks' sums in block order, grad_weight and the coefficients (the formulas of
// lmcl/batchnorm.h, in double, as in the CPU kernel).
__global__ void finalize_double_kernel(int64_t channels, int64_t blocks, int64_t count,
                                       const DoubleBackwardSums* __restrict__ parts, const float* __restrict__ weight,
                                       const float* __restrict__ save_invstd, const float* __restrict__ upstream_weight,
                                       float* __restrict__ grad_weight, DoubleBackwardCoefficients* __restrict__ coefficients) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < channels; c += int64_t(gridDim.x) * blockDim.x) {
    DoubleBackwardSums t{0.0, 0.0, 0.0, 0.0, 0.0};
    for (int64_t b = 0; b < blocks; ++b) {
      const DoubleBackwardSums& part = parts[c * blocks + b];
      t.sum_g += part.sum_g;
      t.sum_g_xc += part.sum_g_xc;
      t.sum_u += part.sum_u;
      t.sum_u_xc += part.sum_u_xc;
      t.sum_u_g += part.sum_u_g;
    }
    const double M = static_cast<double>(count);
    const double invstd = save_invstd[c];
    const double gamma = weight ? weight[c] : 1.0;
    const double gamma_bar = upstream_weight ? upstream_weight[c] : 0.0;
    const double gs = gamma * invstd;
    const double mean_g = t.sum_g / M, mean_g_xhat = invstd * t.sum_g_xc / M;
    const double mean_u = t.sum_u / M, mean_u_xhat = invstd * t.sum_u_xc / M;
    const double bracket = t.sum_u_g - mean_g * t.sum_u - mean_g_xhat * invstd * t.sum_u_xc;
    if (grad_weight) grad_weight[c] = static_cast<float>(invstd * bracket);
    const double a = gamma_bar - gs * mean_u_xhat, bu = -gs * mean_g_xhat;
    const double mean_h = a * mean_g + bu * mean_u, mean_h_xhat = a * mean_g_xhat + bu * mean_u_xhat;
    DoubleBackwardCoefficients k;
    k.k1 = static_cast<float>(gs);
    k.k2 = static_cast<float>(-gs * mean_u);
    k.k3 = static_cast<float>(invstd * (gamma_bar - gs * mean_u_xhat));
    k.k4 = static_cast<float>(invstd * a);
    k.k5 = static_cast<float>(invstd * bu);
    k.k6 = static_cast<float>(-invstd * mean_h);
    k.k7 = static_cast<float>(-(invstd * invstd * mean_h_xhat + gamma * bracket * invstd * invstd * invstd / M));
    coefficients[c] = k;
  }
}

// grad_grad_out = (k1·u + k2) + xc·k3 and grad_x = ((k4·g + k5·u) + k6) + xc·k7 (u null: its terms
// dropped), the CPU kernel's float operations.
__global__ void __launch_bounds__(kBlock)
    double_apply_kernel(int64_t batch, int64_t channels, int64_t spatial, RowLanes map, int64_t channel_offset,
                        const float* __restrict__ g, const float* __restrict__ u, const float* __restrict__ x,
                        const float* __restrict__ save_mean, const DoubleBackwardCoefficients* __restrict__ coefficients,
                        float* __restrict__ grad_grad_out, float* __restrict__ grad_x) {
  const int64_t c = channel_offset + blockIdx.y;
  const DoubleBackwardCoefficients k = coefficients[c];
  const float mean = save_mean[c];
  const int slot = threadIdx.x / map.lanes, lane = threadIdx.x % map.lanes;
  const int64_t step = int64_t(gridDim.x) * map.rows_per_pass;
  for (int64_t n = int64_t(blockIdx.x) * map.rows_per_pass + slot; n < batch; n += step) {
    const int64_t row = (n * channels + c) * spatial;
    for (int64_t s = lane; s < spatial; s += map.lanes) {
      const int64_t i = row + s;
      const float xc = __fsub_rn(x[i], mean);
      if (grad_grad_out) {
        grad_grad_out[i] = u ? __fadd_rn(__fadd_rn(__fmul_rn(k.k1, u[i]), k.k2), __fmul_rn(xc, k.k3)) : __fmul_rn(xc, k.k3);
      }
      if (grad_x) {
        const float gk = __fmul_rn(k.k4, g[i]);
        const float linear = u ? __fadd_rn(gk, __fmul_rn(k.k5, u[i])) : gk;
        grad_x[i] = __fadd_rn(__fadd_rn(linear, k.k6), __fmul_rn(xc, k.k7));
      }
    }
  }
}

// ---- launching -------------------------------------------------------------------------------

// Runs launch(grid, channel_offset) over the channel axis in chunks of kMaxGridY; x_blocks is the
// grid's x extent.
template <typename Launch>
Status for_channel_chunks(int64_t channels, int64_t x_blocks, const char* op, Launch launch) {
  for (int64_t c0 = 0; c0 < channels; c0 += kMaxGridY) {
    const dim3 grid(static_cast<unsigned int>(x_blocks), static_cast<unsigned int>(std::min(kMaxGridY, channels - c0)));
    launch(grid, c0);
    LMCL_RETURN_IF_ERROR(detail::launch_status(op));
  }
  return Status::ok();
}

// Row blocks of an elementwise pass (grid x).
int64_t row_blocks(int64_t batch, const RowLanes& map) {
  return std::max<int64_t>(1, std::min(kMaxRowBlocks, (batch + map.rows_per_pass - 1) / map.rows_per_pass));
}

Status launch_normalize(const BatchNormShape& s, const float* x, const float* weight, const float* bias,
                        const float* mean, const float* invstd, const BatchNormEpilogue& epilogue, float* y,
                        const char* op) {
  if (s.numel() == 0) return Status::ok();
  const RowLanes map = row_lanes(s.spatial);
  return for_channel_chunks(s.channels, row_blocks(s.batch, map), op, [&](dim3 grid, int64_t c0) {
    normalize_kernel<<<grid, kBlock>>>(s.batch, s.channels, s.spatial, map, c0, x, weight, bias, mean, invstd,
                                       epilogue.residual, epilogue.relu, y);
  });
}

}  // namespace

Status batch_norm_forward_training(const BatchNormShape& s, const float* x, const float* weight, const float* bias,
                                   float* running_mean, float* running_var, double momentum, double eps,
                                   const BatchNormEpilogue& epilogue, float* y, float* save_mean, float* save_invstd) {
  const char* op = "batch_norm_forward_training";
  LMCL_RETURN_IF_ERROR(validate_batch_norm_shape(s));
  const int64_t count = s.batch * s.spatial;
  LMCL_CHECK_ARG(count > 1, "expected more than 1 value per channel when training, got shape [N, C, S] = " +
                                describe_shape({s.batch, s.channels, s.spatial}));
  LMCL_CHECK_ARG((running_mean == nullptr) == (running_var == nullptr),
                 "running_mean and running_var must be given together");
  LMCL_CHECK_ARG(std::isfinite(eps) && eps >= 0.0, "eps must be a finite number >= 0, got " + std::to_string(eps));
  LMCL_CHECK_ARG(std::isfinite(momentum), "momentum must be a finite number, got " + std::to_string(momentum));

  const int64_t blocks = batch_blocks(s);
  detail::DeviceScratch parts(static_cast<size_t>(s.channels * blocks) * sizeof(Moments));
  if (!parts.ok()) return parts.status();
  Moments* moments = static_cast<Moments*>(parts.data());
  const RowLanes map = row_lanes(s.spatial);
  LMCL_RETURN_IF_ERROR(for_channel_chunks(s.channels, blocks, op, [&](dim3 grid, int64_t c0) {
    moments_kernel<<<grid, kBlock>>>(s.batch, s.channels, s.spatial, blocks, map, c0, x, moments);
  }));
  finalize_moments_kernel<<<detail::blocks_for(s.channels), kBlock>>>(s.channels, blocks, count, moments, momentum, eps,
                                                                      running_mean, running_var, save_mean, save_invstd);
  LMCL_RETURN_IF_ERROR(detail::launch_status(op));
  return launch_normalize(s, x, weight, bias, save_mean, save_invstd, epilogue, y, op);
}

Status batch_norm_forward_eval(const BatchNormShape& s, const float* x, const float* weight, const float* bias,
                               const float* running_mean, const float* running_var, double eps,
                               const BatchNormEpilogue& epilogue, float* y, float* save_mean, float* save_invstd) {
  const char* op = "batch_norm_forward_eval";
  LMCL_RETURN_IF_ERROR(validate_batch_norm_shape(s));
  LMCL_CHECK_ARG(running_mean != nullptr && running_var != nullptr, "eval mode needs running_mean and running_var");
  LMCL_CHECK_ARG(std::isfinite(eps) && eps >= 0.0, "eps must be a finite number >= 0, got " + std::to_string(eps));
  eval_constants_kernel<<<detail::blocks_for(s.channels), kBlock>>>(s.channels, running_mean, running_var, eps, save_mean,
                                                                    save_invstd);
  LMCL_RETURN_IF_ERROR(detail::launch_status(op));
  return launch_normalize(s, x, weight, bias, save_mean, save_invstd, epilogue, y, op);
}

Status batch_norm_backward(const BatchNormShape& s, const float* grad_out, const float* x, const float* weight,
                           const float* save_mean, const float* save_invstd, bool training,
                           const BatchNormEpilogueGrad& epilogue, float* grad_input, float* grad_weight,
                           float* grad_bias) {
  const char* op = "batch_norm_backward";
  LMCL_RETURN_IF_ERROR(validate_batch_norm_shape(s));
  const int64_t count = s.batch * s.spatial;
  const bool need_sums = grad_weight || grad_bias || (training && grad_input);
  if (!need_sums && !grad_input && !epilogue.grad_residual) return Status::ok();
  const float* output = epilogue.output;
  float* grad_residual = epilogue.grad_residual;
  const bool has_elements = s.numel() > 0;
  const RowLanes map = row_lanes(s.spatial);

  // The per-block sums (none for an empty tensor: the channel totals are then 0, as on the CPU).
  const int64_t blocks = need_sums && has_elements ? batch_blocks(s) : 0;
  detail::DeviceScratch parts(static_cast<size_t>(s.channels * blocks) * sizeof(GradSums));
  detail::DeviceScratch coefficient_scratch(static_cast<size_t>(s.channels) * sizeof(BackwardCoefficients));
  if (!parts.ok()) return parts.status();
  if (!coefficient_scratch.ok()) return coefficient_scratch.status();
  GradSums* sums = static_cast<GradSums*>(parts.data());
  BackwardCoefficients* coefficients = static_cast<BackwardCoefficients*>(coefficient_scratch.data());

  if (blocks > 0) {
    LMCL_RETURN_IF_ERROR(for_channel_chunks(s.channels, blocks, op, [&](dim3 grid, int64_t c0) {
      grad_sums_kernel<<<grid, kBlock>>>(s.batch, s.channels, s.spatial, blocks, map, c0, grad_out, output, x, save_mean,
                                         grad_residual, sums);
    }));
  } else if (grad_residual && has_elements) {
    LMCL_RETURN_IF_ERROR(for_channel_chunks(s.channels, row_blocks(s.batch, map), op, [&](dim3 grid, int64_t c0) {
      residual_grad_kernel<<<grid, kBlock>>>(s.batch, s.channels, s.spatial, map, c0, grad_out, output, grad_residual);
    }));
  }
  finalize_grad_kernel<<<detail::blocks_for(s.channels), kBlock>>>(s.channels, blocks, count, training, sums, weight,
                                                                   save_invstd, grad_weight, grad_bias, coefficients);
  LMCL_RETURN_IF_ERROR(detail::launch_status(op));
  if (!grad_input || !has_elements) return Status::ok();
  // g: the stored masked gradient when there is one, else masked on the fly, else dy itself.
  const float* stored = output && grad_residual ? grad_residual : nullptr;
  return for_channel_chunks(s.channels, row_blocks(s.batch, map), op, [&](dim3 grid, int64_t c0) {
    grad_input_kernel<<<grid, kBlock>>>(s.batch, s.channels, s.spatial, map, c0, training, grad_out, output, stored, x,
                                        save_mean, coefficients, grad_input);
  });
}

Status batch_norm_double_backward(const BatchNormShape& s, const float* grad_out, const float* x, const float* weight,
                                  const float* save_mean, const float* save_invstd, const float* upstream_input,
                                  const float* upstream_weight, float* grad_grad_out, float* grad_x,
                                  float* grad_weight) {
  const char* op = "batch_norm_double_backward";
  LMCL_RETURN_IF_ERROR(validate_batch_norm_shape(s));
  const int64_t count = s.batch * s.spatial;
  LMCL_CHECK_ARG(count > 1, "expected more than 1 value per channel (training mode), got shape [N, C, S] = " +
                                describe_shape({s.batch, s.channels, s.spatial}));
  if (!grad_grad_out && !grad_x && !grad_weight) return Status::ok();
  const RowLanes map = row_lanes(s.spatial);
  const int64_t blocks = batch_blocks(s);
  detail::DeviceScratch parts(static_cast<size_t>(s.channels * blocks) * sizeof(DoubleBackwardSums));
  detail::DeviceScratch coefficient_scratch(static_cast<size_t>(s.channels) * sizeof(DoubleBackwardCoefficients));
  if (!parts.ok()) return parts.status();
  if (!coefficient_scratch.ok()) return coefficient_scratch.status();
  DoubleBackwardSums* sums = static_cast<DoubleBackwardSums*>(parts.data());
  DoubleBackwardCoefficients* coefficients = static_cast<DoubleBackwardCoefficients*>(coefficient_scratch.data());
  LMCL_RETURN_IF_ERROR(for_channel_chunks(s.channels, blocks, op, [&](dim3 grid, int64_t c0) {
    double_sums_kernel<<<grid, kBlock>>>(s.batch, s.channels, s.spatial, blocks, map, c0, grad_out, upstream_input, x,
                                         save_mean, sums);
  }));
  finalize_double_kernel<<<detail::blocks_for(s.channels), kBlock>>>(s.channels, blocks, count, sums, weight, save_invstd,
                                                                     upstream_weight, grad_weight, coefficients);
  LMCL_RETURN_IF_ERROR(detail::launch_status(op));
  if (!grad_grad_out && !grad_x) return Status::ok();
  return for_channel_chunks(s.channels, row_blocks(s.batch, map), op, [&](dim3 grid, int64_t c0) {
    double_apply_kernel<<<grid, kBlock>>>(s.batch, s.channels, s.spatial, map, c0, grad_out, upstream_input, x, save_mean,
                                          coefficients, grad_grad_out, grad_x);
  });
}

}  // namespace cuda
}  // namespace lmcl
