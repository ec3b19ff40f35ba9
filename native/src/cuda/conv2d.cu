// 2-D convolution on the GPU, NCHW, forward and backward (contract: native/include/lmcl/conv2d.h;
// reference: the CPU kernels lmcl::cpu::conv2d_*; parity cases: native/test/cases/conv2d.cpp).
//
//   out[n,co,oh,ow] = bias[co] + sum_{ci<Cg, kh, kw} w[co,ci,kh,kw] * x[n, g*Cg+ci, oh*sh-ph+kh, ow*sw-pw+kw]
//   (g = co / (Cout/groups); taps outside the image are zero padding)
//
// Layouts: input [N, Cin, H, W], weight [Cout, Cin/groups, KH, KW], output [N, Cout, OH, OW], all
// contiguous device memory; bias / grad_bias [Cout] (bias nullable). Every entry OVERWRITES its
// output. No scratch copy of an activation is ever made: the GEMM operands are gathered from the
// tensors while shared memory is loaded (implicit GEMM, no im2col buffer).
//
// Kernels (all deterministic: every output element is summed by one thread, or by fixed per-block
// partials that a second kernel adds in split order; no atomics):
//   forward          implicit GEMM per group: C[M = Cout_g][N = batch*OH*OW] = W_g[M][K] * B[K][N],
//                    K = Cin_g*KH*KW, B[(ci,kh,kw)][(n,oh,ow)] gathered from the input with the
//                    padding checks. Grid (N tiles, M tiles, groups). The bias is added in the
//                    epilogue.
//   backward input   split by stride phase (rh, rw) = ((ih+ph) % sh, (iw+pw) % sw): the input pixels
//                    of one phase receive exactly the taps kh = rh + a*sh, kw = rw + b*sw, from
//                    grad_output at (oh, ow) = (qh - a, qw - b). Per phase the same implicit GEMM
//                    with M = Cin_g, K = Cout_g * taps, N = batch * phase pixels, A = the phase's
//                    weights regrouped once into scratch [g][ci][(co,a,b)] (a tiny kernel), B gathered
//                    from grad_output. Stride 1 is one phase; stride 2 does no multiply-by-zero work;
//                    a phase with no taps (1x1 stride 2) is written as zeros by the same kernel (K=0).
//   backward weight  implicit GEMM dW_g[M = Cout_g][N = Cin_g*KH*KW] = dY_g[M][P] * B[P][N] over the
//                    reduction P = batch*OH*OW, B gathered from the input like the forward's. P is cut
//                    into `splits` fixed chunks (chosen from the shape only, so the bits do not depend
//                    on the card): block (n tile, m tile, split) writes its partial tile to scratch and
//                    sum_partials adds the splits in order (one split: written in place).
//   backward bias    per channel: blocks (channel, split) reduce grad_output over (n, pixel) with the
//                    block tree (detail::block_sum), then sum_partials in split order.
//   depthwise        (groups == in == out channels) direct kernels, because its GEMMs are 1 x KH*KW:
//                    forward one thread per output element, backward input one thread per input
//                    element (gather over the taps whose window covers it, stride respected),
//                    backward weight blocks (channel, split) with one accumulator per tap and the
//                    block tree, then sum_partials.
// Accumulation is float everywhere (as the CPU kernels).
//
// GEMM tiles: 256 threads, K step 16, shared memory double-buffered (one __syncthreads per step;
// the next step's global loads are in registers while the current step multiplies). Tile (BM x BN,
// thread micro-tile TM x TN) picked by the per-group M:
//   M >= 64: 64 x 128 (8 x 4) when that still gives >= 264 blocks, else 64 x 64 (4 x 4);
//   33..63: 64 x 64; 17..32: 32 x 128 (4 x 4); <= 16: 16 x 256 (4 x 4).
// The CIFAR ResNet layers (Cout 16/32/64 at 32x32/16x16/8x8, batch 128) land on M exactly, so no
// row of a tile is wasted. Compute bound: the 4 x 4 / 8 x 4 register tiles read 5-6 shared words
// per 16-32 FMAs; intended share of FP32 peak ~30-50% on the large CIFAR layers (not measured here:
// the code was written on a machine without a GPU), less on 8x8 planes (fewer blocks than SMs x 2)
// and on the gathered 3-channel stem. Bias / depthwise / sum_partials are memory bound.
// Indices: 64-bit for element offsets, 32-bit inside a plane and for K (check_int_ranges refuses
// larger shapes with an error); every edge (M, N, K tails, padding) is bounds-checked and loads
// outside it read 0.
// Known difference from the formula (like the CPU's padded-width paths): a padding tap is a 0 in
// the gathered operand, so an Inf/NaN in the other operand (a weight in the forward, a grad_output
// element in the weight gradient) can turn that absent term into NaN. Finite inputs are unaffected.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "common.cuh"
#include "lmcl/cuda_ops.h"

namespace lmcl {
namespace cuda {
namespace {

constexpr int kGemmThreads = 256;
constexpr int kTileK = 16;

// ---- shared helpers ---------------------------------------------------------------------------

bool is_depthwise(const Conv2dShape& s) { return s.groups == s.in_channels && s.out_channels == s.in_channels; }

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// acc[i][j] += sum_k as[k][ty*TM + i] * bs[k][tx + j*(BN/TN)] over one K step. The A fragment is
// read as float4 (TM consecutive rows, broadcast within a warp); the B fragment strided by BN/TN so
// consecutive threads read consecutive words (no bank conflicts) and later store adjacent columns.
template <int BN, int TM, int TN, int kStrideA, int kStrideB>
__device__ __forceinline__ void multiply_step(const float* as, const float* bs, float (&acc)[TM][TN], int ty, int tx) {
  constexpr int kThreadsN = BN / TN;
#pragma unroll
  for (int k = 0; k < kTileK; ++k) {
    float a[TM], b[TN];
#pragma unroll
    for (int i = 0; i < TM; i += 4) {
      const float4 quad = *reinterpret_cast<const float4*>(as + k * kStrideA + ty * TM + i);
      a[i] = quad.x;
      a[i + 1] = quad.y;
      a[i + 2] = quad.z;
      a[i + 3] = quad.w;
    }
#pragma unroll
    for (int j = 0; j < TN; ++j) b[j] = bs[k * kStrideB + tx + j * kThreadsN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
  }
}

// ---- implicit GEMM with a gathered B (forward; backward input per stride phase) ---------------
//
// Per group g: dst[n, g*M + m, y*dst_step_h + dst_off_h, x*dst_step_w + dst_off_w] =
//   (bias ? bias[g*M + m] : 0) + sum_k a[g][m][k] * B[k][(n, y, x)],
//   k = (c*taps_u + u)*taps_v + v,
//   B[k][(n,y,x)] = src[n, g*src_group_channels + c, h0 + sign*u, w0 + sign*v] (0 outside),
//   h0 = y*col_step_h + col_off_h, w0 = x*col_step_w + col_off_w, columns (n, y, x) over
//   batch x cols_y x cols_x.
struct GatherGemm {
  const float* a;     // [groups][m][k]
  const float* src;   // [batch][src_channels][src_h][src_w]
  const float* bias;  // nullable, [groups * m]
  float* dst;         // [batch][dst_channels][dst_h][dst_w]
  int m, k, taps_u, taps_v, tap_sign;
  int64_t src_channels, src_group_channels, src_h, src_w;
  int64_t dst_channels, dst_h, dst_w;
  int64_t cols;
  int cols_y, cols_x;
  int col_step_h, col_off_h, col_step_w, col_off_w;
  int dst_step_h, dst_off_h, dst_step_w, dst_off_w;
  int group_begin;
};

template <int BM, int BN, int TM, int TN>
__global__ void __launch_bounds__(kGemmThreads) gather_gemm_kernel(const GatherGemm p) {
  constexpr int kThreadsN = BN / TN;
  static_assert((BM / TM) * kThreadsN == kGemmThreads, "one micro-tile per thread");
  static_assert(TM % 4 == 0 && BN <= kGemmThreads && kGemmThreads % BN == 0, "tile shape");
  constexpr int kRunsK = kGemmThreads / BN;  // B loader: thread = (column, run of K rows)
  constexpr int kRunK = kTileK / kRunsK;
  constexpr int kLoadsA = BM * kTileK / kGemmThreads;
  static_assert(kLoadsA >= 1 && kRunK >= 1, "loader shape");
  constexpr int kStrideA = BM + 4;  // +4: fewer bank conflicts on the transposed store, float4-aligned rows
  constexpr int kStrideB = BN;
  __shared__ __align__(16) float as[2][kTileK * kStrideA];
  __shared__ __align__(16) float bs[2][kTileK * kStrideB];

  const int tid = threadIdx.x;
  const int g = p.group_begin + static_cast<int>(blockIdx.z);
  const int m0 = static_cast<int>(blockIdx.y) * BM;
  const int64_t col0 = static_cast<int64_t>(blockIdx.x) * BN;
  const float* a = p.a + static_cast<int64_t>(g) * p.m * p.k;

  // This thread's B column, decoded once: its source image, h0 and w0.
  const int load_col = tid % BN, load_run = tid / BN;
  const int64_t plane_cols = static_cast<int64_t>(p.cols_y) * p.cols_x;
  const int64_t src_plane = p.src_h * p.src_w;
  bool col_valid = col0 + load_col < p.cols;
  const float* src_col = p.src;
  int h0 = 0, w0 = 0;
  if (col_valid) {
    const int64_t col = col0 + load_col;
    const int64_t n = col / plane_cols;
    const int rest = static_cast<int>(col - n * plane_cols);
    const int y = rest / p.cols_x, x = rest - y * p.cols_x;
    h0 = y * p.col_step_h + p.col_off_h;
    w0 = x * p.col_step_w + p.col_off_w;
    src_col = p.src + (n * p.src_channels + static_cast<int64_t>(g) * p.src_group_channels) * src_plane;
  }
  const int taps = p.taps_u * p.taps_v;
  const int src_h = static_cast<int>(p.src_h), src_w = static_cast<int>(p.src_w);

  float a_next[kLoadsA], b_next[kRunK];
  auto load = [&](int k0) {
#pragma unroll
    for (int r = 0; r < kLoadsA; ++r) {
      const int e = tid + r * kGemmThreads, row = e / kTileK, kk = e % kTileK;
      a_next[r] = (m0 + row < p.m && k0 + kk < p.k) ? __ldg(a + static_cast<int64_t>(m0 + row) * p.k + k0 + kk) : 0.0f;
    }
    int k = k0 + load_run * kRunK;
    // k -> (c, u, v) once per step, then stepped: the divisions are off the per-element path.
    int c = 0, u = 0, v = 0;
    if (k < p.k) {
      c = k / taps;
      const int rest = k - c * taps;
      u = rest / p.taps_v;
      v = rest - u * p.taps_v;
    }
#pragma unroll
    for (int r = 0; r < kRunK; ++r) {
      float value = 0.0f;
      if (col_valid && k < p.k) {
        const int h = h0 + p.tap_sign * u, w = w0 + p.tap_sign * v;
        if (h >= 0 && h < src_h && w >= 0 && w < src_w)
          value = __ldg(src_col + static_cast<int64_t>(c) * src_plane + h * src_w + w);
      }
      b_next[r] = value;
      ++k;
      if (++v == p.taps_v) {
        v = 0;
        if (++u == p.taps_u) {
          u = 0;
          ++c;
        }
      }
    }
  };
  auto store = [&](int buffer) {
#pragma unroll
    for (int r = 0; r < kLoadsA; ++r) {
      const int e = tid + r * kGemmThreads, row = e / kTileK, kk = e % kTileK;
      as[buffer][kk * kStrideA + row] = a_next[r];
    }
#pragma unroll
    for (int r = 0; r < kRunK; ++r) bs[buffer][(load_run * kRunK + r) * kStrideB + load_col] = b_next[r];
  };

  const int ty = tid / kThreadsN, tx = tid % kThreadsN;
  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  const int steps = (p.k + kTileK - 1) / kTileK;
  if (steps > 0) {
    load(0);
    store(0);
  }
  __syncthreads();
  for (int step = 0; step < steps; ++step) {
    const int buffer = step & 1;
    const bool more = step + 1 < steps;
    if (more) load((step + 1) * kTileK);
    multiply_step<BN, TM, TN, kStrideA, kStrideB>(as[buffer], bs[buffer], acc, ty, tx);
    // The other buffer was last read in the previous step, before the barrier that ended it.
    if (more) store(buffer ^ 1);
    __syncthreads();
  }

  const int64_t dst_plane = p.dst_h * p.dst_w;
#pragma unroll
  for (int j = 0; j < TN; ++j) {
    const int64_t col = col0 + tx + j * kThreadsN;
    if (col >= p.cols) continue;
    const int64_t n = col / plane_cols;
    const int rest = static_cast<int>(col - n * plane_cols);
    const int y = rest / p.cols_x, x = rest - y * p.cols_x;
    const int64_t pixel = static_cast<int64_t>(y * p.dst_step_h + p.dst_off_h) * p.dst_w + x * p.dst_step_w + p.dst_off_w;
    float* dst = p.dst + (n * p.dst_channels + static_cast<int64_t>(g) * p.m) * dst_plane + pixel;
#pragma unroll
    for (int i = 0; i < TM; ++i) {
      const int row = m0 + ty * TM + i;
      if (row >= p.m) continue;
      const float shift = p.bias ? __ldg(p.bias + static_cast<int64_t>(g) * p.m + row) : 0.0f;
      dst[static_cast<int64_t>(row) * dst_plane] = acc[i][j] + shift;
    }
  }
}

// The tile configurations (see the header); dispatch on the per-group M and the block count.
enum class Tile { k64x128, k64x64, k32x128, k16x256 };

Tile pick_tile(int64_t m, int64_t n) {
  if (m >= 64) return ceil_div(m, 64) * ceil_div(n, 128) >= 264 ? Tile::k64x128 : Tile::k64x64;
  if (m > 32) return Tile::k64x64;
  if (m > 16) return Tile::k32x128;
  return Tile::k16x256;
}
int tile_m(Tile t) { return t == Tile::k32x128 ? 32 : t == Tile::k16x256 ? 16 : 64; }
int tile_n(Tile t) { return t == Tile::k64x64 ? 64 : t == Tile::k16x256 ? 256 : 128; }

Status launch_gather_gemm(GatherGemm p, int64_t groups, const char* op) {
  if (p.cols == 0) return Status::ok();
  const Tile tile = pick_tile(p.m, p.cols);
  const int64_t blocks_n = ceil_div(p.cols, tile_n(tile)), blocks_m = ceil_div(p.m, tile_m(tile));
  if (blocks_n > 0x7fffffffLL || blocks_m > 65535)
    return invalid_argument(std::string(op) + ": problem too large for the CUDA kernel's grid");
  for (int64_t g0 = 0; g0 < groups; g0 += 65535) {
    const dim3 grid(static_cast<unsigned>(blocks_n), static_cast<unsigned>(blocks_m),
                    static_cast<unsigned>(std::min<int64_t>(65535, groups - g0)));
    p.group_begin = static_cast<int>(g0);
    switch (tile) {
      case Tile::k64x128: gather_gemm_kernel<64, 128, 8, 4><<<grid, kGemmThreads>>>(p); break;
      case Tile::k64x64: gather_gemm_kernel<64, 64, 4, 4><<<grid, kGemmThreads>>>(p); break;
      case Tile::k32x128: gather_gemm_kernel<32, 128, 4, 4><<<grid, kGemmThreads>>>(p); break;
      case Tile::k16x256: gather_gemm_kernel<16, 256, 4, 4><<<grid, kGemmThreads>>>(p); break;
    }
    LMCL_RETURN_IF_ERROR(detail::launch_status(op));
  }
  return Status::ok();
}

// ---- backward input: the weights of one stride phase, regrouped as the GEMM's A ---------------
//
// phase_weight[g][ci][(co*taps_u + a)*taps_v + b] = w[g*cout_g + co][ci][rh + a*sh][rw + b*sw]
__global__ void phase_weight_kernel(const float* weight, float* phase_weight, int64_t count, int cin_g, int cout_g,
                                    int kernel_h, int kernel_w, int taps_u, int taps_v, int rh, int rw, int sh,
                                    int sw) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int taps = taps_u * taps_v;
  const int64_t row_length = static_cast<int64_t>(cout_g) * taps;
  for (int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; index < count; index += stride) {
    const int64_t row = index / row_length;  // g*cin_g + ci
    const int k = static_cast<int>(index - row * row_length);
    const int64_t g = row / cin_g;
    const int ci = static_cast<int>(row - g * cin_g);
    const int co = k / taps, rest = k - co * taps, a = rest / taps_v, b = rest - a * taps_v;
    const int kh = rh + a * sh, kw = rw + b * sw;
    phase_weight[index] =
        weight[(((g * cout_g + co) * cin_g + ci) * kernel_h + kh) * static_cast<int64_t>(kernel_w) + kw];
  }
}

// ---- backward weight: implicit GEMM over the batch*OH*OW reduction, split in fixed chunks -------
struct WeightGemm {
  const float* input;        // [batch][in_channels][in_h][in_w]
  const float* grad_output;  // [batch][out_channels][out_h][out_w]
  float* partial;            // [splits][weight numel]
  int m, n;                  // cout_g, cin_g*kh*kw
  int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
  int64_t in_channels, cin_g, in_h, in_w, out_channels, out_h, out_w;
  int64_t reduction, split_length, weight_numel;
  int group_begin, blocks_m;
};

template <int BM, int BN, int TM, int TN>
__global__ void __launch_bounds__(kGemmThreads) weight_gemm_kernel(const WeightGemm p) {
  constexpr int kThreadsN = BN / TN;
  static_assert((BM / TM) * kThreadsN == kGemmThreads, "one micro-tile per thread");
  static_assert(TM % 4 == 0 && BN % (kGemmThreads / kTileK) == 0 && BN <= kGemmThreads, "tile shape");
  constexpr int kLanes = kGemmThreads / kTileK;  // loader: thread = (reduction row tid % 16, lane tid / 16)
  constexpr int kLoadsA = BM / kLanes;
  constexpr int kLoadsB = BN / kLanes;
  static_assert(kLoadsA >= 1 && kLoadsB >= 1, "loader shape");
  constexpr int kStrideA = BM + 4;  // float4-aligned rows, 2-way conflicts at most on the store
  constexpr int kStrideB = BN + 1;  // the store walks down a column: an odd stride spreads the banks
  __shared__ __align__(16) float as[2][kTileK * kStrideA];
  __shared__ __align__(16) float bs[2][kTileK * kStrideB];
  // The block's B columns j = (ci, kh, kw), decoded once: offset ci*H*W + kh*W + kw and (kh, kw);
  // a column past n gets kh = -2^30 so every bounds check fails.
  __shared__ int64_t col_offset[BN];
  __shared__ int col_kh[BN], col_kw[BN];

  const int tid = threadIdx.x;
  const int g = p.group_begin + static_cast<int>(blockIdx.y) / p.blocks_m;
  const int m0 = (static_cast<int>(blockIdx.y) % p.blocks_m) * BM;
  const int n0 = static_cast<int>(blockIdx.x) * BN;
  const int64_t split_begin = static_cast<int64_t>(blockIdx.z) * p.split_length;
  const int64_t split_end = std::min(split_begin + p.split_length, p.reduction);
  const int64_t in_plane = p.in_h * p.in_w, out_plane = p.out_h * p.out_w;

  if (tid < BN) {
    const int j = n0 + tid;
    if (j < p.n) {
      const int taps = p.kernel_h * p.kernel_w;
      const int ci = j / taps, rest = j - ci * taps, kh = rest / p.kernel_w, kw = rest - kh * p.kernel_w;
      col_offset[tid] = ci * in_plane + static_cast<int64_t>(kh) * p.in_w + kw;
      col_kh[tid] = kh;
      col_kw[tid] = kw;
    } else {
      col_offset[tid] = 0;
      col_kh[tid] = -(1 << 30);
      col_kw[tid] = 0;
    }
  }
  __syncthreads();

  const int load_row = tid % kTileK, load_lane = tid / kTileK;
  const float* input_group = p.input + static_cast<int64_t>(g) * p.cin_g * in_plane;
  const float* grad_group = p.grad_output + static_cast<int64_t>(g) * p.m * out_plane;
  float a_next[kLoadsA], b_next[kLoadsB];
  auto load = [&](int64_t r0) {
    const int64_t r = r0 + load_row;  // reduction index (n, oh, ow)
    const bool valid = r < split_end;
    int64_t n = 0;
    int oh = 0, ow = 0;
    if (valid) {
      n = r / out_plane;
      const int pixel = static_cast<int>(r - n * out_plane);
      oh = pixel / static_cast<int>(p.out_w);
      ow = pixel - oh * static_cast<int>(p.out_w);
    }
    const float* dy = grad_group + n * p.out_channels * out_plane + static_cast<int64_t>(oh) * p.out_w + ow;
#pragma unroll
    for (int i = 0; i < kLoadsA; ++i) {
      const int row = m0 + load_lane + i * kLanes;
      a_next[i] = (valid && row < p.m) ? __ldg(dy + static_cast<int64_t>(row) * out_plane) : 0.0f;
    }
    const int h0 = oh * p.stride_h - p.pad_h, w0 = ow * p.stride_w - p.pad_w;
    const float* x = input_group + n * p.in_channels * in_plane + static_cast<int64_t>(h0) * p.in_w + w0;
#pragma unroll
    for (int i = 0; i < kLoadsB; ++i) {
      const int column = load_lane + i * kLanes;
      const int h = h0 + col_kh[column], w = w0 + col_kw[column];
      b_next[i] = (valid && h >= 0 && h < p.in_h && w >= 0 && w < p.in_w) ? __ldg(x + col_offset[column]) : 0.0f;
    }
  };
  auto store = [&](int buffer) {
#pragma unroll
    for (int i = 0; i < kLoadsA; ++i) as[buffer][load_row * kStrideA + load_lane + i * kLanes] = a_next[i];
#pragma unroll
    for (int i = 0; i < kLoadsB; ++i) bs[buffer][load_row * kStrideB + load_lane + i * kLanes] = b_next[i];
  };

  const int ty = tid / kThreadsN, tx = tid % kThreadsN;
  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  const int64_t steps = split_end > split_begin ? (split_end - split_begin + kTileK - 1) / kTileK : 0;
  if (steps > 0) {
    load(split_begin);
    store(0);
  }
  __syncthreads();
  for (int64_t step = 0; step < steps; ++step) {
    const int buffer = static_cast<int>(step & 1);
    const bool more = step + 1 < steps;
    if (more) load(split_begin + (step + 1) * kTileK);
    multiply_step<BN, TM, TN, kStrideA, kStrideB>(as[buffer], bs[buffer], acc, ty, tx);
    if (more) store(buffer ^ 1);
    __syncthreads();
  }

  float* out = p.partial + static_cast<int64_t>(blockIdx.z) * p.weight_numel + static_cast<int64_t>(g) * p.m * p.n;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int row = m0 + ty * TM + i;
    if (row >= p.m) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int column = n0 + tx + j * kThreadsN;
      if (column < p.n) out[static_cast<int64_t>(row) * p.n + column] = acc[i][j];
    }
  }
}

// out[i] = sum over s < splits, in order, of partial[s*count + i]: the fixed-order second pass.
__global__ void sum_partials_kernel(const float* partial, int64_t splits, int64_t count, float* out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    float sum = partial[i];
    for (int64_t s = 1; s < splits; ++s) sum += partial[s * count + i];
    out[i] = sum;
  }
}

Status sum_partials(const float* partial, int64_t splits, int64_t count, float* out, const char* op) {
  sum_partials_kernel<<<detail::blocks_for(count), detail::kThreads>>>(partial, splits, count, out);
  return detail::launch_status(op);
}

// Splits of a reduction of `length` terms when `tiles` blocks already cover the output: about
// kTargetBlocks blocks in all, each split at least `min_length` long. Depends on the shape only.
constexpr int64_t kTargetBlocks = 1024;
int64_t split_count(int64_t tiles, int64_t length, int64_t min_length) {
  int64_t splits = std::max<int64_t>(1, kTargetBlocks / std::max<int64_t>(1, tiles));
  splits = std::min(splits, std::max<int64_t>(1, length / min_length));
  return std::min<int64_t>(splits, 65535);
}

// ---- per-channel reductions: backward bias, depthwise backward weight ---------------------------

// Block (c, s): sum over e in split s of [0, batch*plane) of grad_output[n, c, pixel] (e = n*plane +
// pixel), thread partials in float, the block tree, one value per block.
__global__ void bias_partial_kernel(const float* grad_output, int64_t channels, int64_t plane, int64_t length,
                                    int64_t split_length, float* partial) {
  __shared__ float shared[detail::kThreads];
  const int64_t c = blockIdx.x;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * split_length;
  const int64_t end = std::min(begin + split_length, length);
  // (n, pixel) stepped by blockDim.x without a division per element.
  const int64_t step_n = blockDim.x / plane, step_pixel = blockDim.x % plane;
  int64_t e = begin + threadIdx.x;
  int64_t n = e / plane, pixel = e - n * plane;
  float sum = 0.0f;
  for (; e < end; e += blockDim.x) {
    sum += grad_output[(n * channels + c) * plane + pixel];
    n += step_n;
    pixel += step_pixel;
    if (pixel >= plane) {
      pixel -= plane;
      ++n;
    }
  }
  const float total = detail::block_sum(sum, shared);
  if (threadIdx.x == 0) partial[static_cast<int64_t>(blockIdx.y) * channels + c] = total;
}

// Depthwise weight gradient partials: block (c, s), one accumulator per tap (taps in chunks of
// kDepthwiseTaps), e over split s of [0, batch*OH*OW).
constexpr int kDepthwiseTaps = 16;
struct DepthwiseShape {
  int64_t channels, in_h, in_w, out_h, out_w;
  int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
};

__global__ void depthwise_weight_partial_kernel(const DepthwiseShape s, const float* input, const float* grad_output,
                                                int64_t length, int64_t split_length, float* partial) {
  __shared__ float shared[detail::kThreads];
  const int64_t c = blockIdx.x;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * split_length;
  const int64_t end = std::min(begin + split_length, length);
  const int64_t out_plane = s.out_h * s.out_w, in_plane = s.in_h * s.in_w;
  const int taps = s.kernel_h * s.kernel_w;
  for (int t0 = 0; t0 < taps; t0 += kDepthwiseTaps) {
    float acc[kDepthwiseTaps];
#pragma unroll
    for (int t = 0; t < kDepthwiseTaps; ++t) acc[t] = 0.0f;
    for (int64_t e = begin + threadIdx.x; e < end; e += blockDim.x) {
      const int64_t n = e / out_plane;
      const int pixel = static_cast<int>(e - n * out_plane);
      const int oh = pixel / static_cast<int>(s.out_w), ow = pixel - oh * static_cast<int>(s.out_w);
      const float dy = grad_output[(n * s.channels + c) * out_plane + pixel];
      const float* x = input + (n * s.channels + c) * in_plane;
      const int h0 = oh * s.stride_h - s.pad_h, w0 = ow * s.stride_w - s.pad_w;
      int kh = t0 / s.kernel_w, kw = t0 - kh * s.kernel_w;
#pragma unroll
      for (int t = 0; t < kDepthwiseTaps; ++t) {
        if (t0 + t < taps) {
          const int h = h0 + kh, w = w0 + kw;
          if (h >= 0 && h < s.in_h && w >= 0 && w < s.in_w) acc[t] = fmaf(dy, x[static_cast<int64_t>(h) * s.in_w + w], acc[t]);
        }
        if (++kw == s.kernel_w) {
          kw = 0;
          ++kh;
        }
      }
    }
#pragma unroll
    for (int t = 0; t < kDepthwiseTaps; ++t) {
      if (t0 + t < taps) {  // uniform over the block: every thread reaches the tree's barriers
        const float total = detail::block_sum(acc[t], shared);
        if (threadIdx.x == 0) partial[(static_cast<int64_t>(blockIdx.y) * s.channels + c) * taps + t0 + t] = total;
      }
    }
  }
}

// ---- depthwise direct kernels -----------------------------------------------------------------

// One thread per output element: out[n,c,oh,ow] = bias[c] + sum_{kh,kw} w[c,kh,kw] * x[n,c,ih,iw].
__global__ void depthwise_forward_kernel(const DepthwiseShape s, const float* input, const float* weight,
                                         const float* bias, float* output, int64_t count) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t out_plane = s.out_h * s.out_w, in_plane = s.in_h * s.in_w;
  for (int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; index < count; index += stride) {
    const int64_t nc = index / out_plane;
    const int pixel = static_cast<int>(index - nc * out_plane);
    const int oh = pixel / static_cast<int>(s.out_w), ow = pixel - oh * static_cast<int>(s.out_w);
    const int64_t c = nc % s.channels;
    const float* x = input + nc * in_plane;
    const float* w = weight + c * s.kernel_h * s.kernel_w;
    const int h0 = oh * s.stride_h - s.pad_h, w0 = ow * s.stride_w - s.pad_w;
    float sum = 0.0f;
    for (int kh = 0; kh < s.kernel_h; ++kh) {
      const int h = h0 + kh;
      if (h < 0 || h >= s.in_h) continue;
      for (int kw = 0; kw < s.kernel_w; ++kw) {
        const int iw = w0 + kw;
        if (iw >= 0 && iw < s.in_w) sum = fmaf(__ldg(w + kh * s.kernel_w + kw), __ldg(x + static_cast<int64_t>(h) * s.in_w + iw), sum);
      }
    }
    output[index] = sum + (bias ? __ldg(bias + c) : 0.0f);
  }
}

// One thread per input element: grad_input[n,c,ih,iw] = sum over the taps (kh, kw) with
// ih + ph - kh = oh*sh, 0 <= oh < OH (and the same for the width) of w[c,kh,kw] * dy[n,c,oh,ow].
__global__ void depthwise_backward_input_kernel(const DepthwiseShape s, const float* grad_output,
                                                const float* weight, float* grad_input, int64_t count) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t out_plane = s.out_h * s.out_w, in_plane = s.in_h * s.in_w;
  for (int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; index < count; index += stride) {
    const int64_t nc = index / in_plane;
    const int pixel = static_cast<int>(index - nc * in_plane);
    const int ih = pixel / static_cast<int>(s.in_w), iw = pixel - ih * static_cast<int>(s.in_w);
    const int64_t c = nc % s.channels;
    const float* dy = grad_output + nc * out_plane;
    const float* w = weight + c * s.kernel_h * s.kernel_w;
    float sum = 0.0f;
    for (int kh = 0; kh < s.kernel_h; ++kh) {
      const int th = ih + s.pad_h - kh;
      if (th < 0) break;  // th only decreases with kh
      if (th % s.stride_h != 0) continue;
      const int oh = th / s.stride_h;
      if (oh >= s.out_h) continue;
      for (int kw = 0; kw < s.kernel_w; ++kw) {
        const int tw = iw + s.pad_w - kw;
        if (tw < 0) break;
        if (tw % s.stride_w != 0) continue;
        const int ow = tw / s.stride_w;
        if (ow < s.out_w) sum = fmaf(__ldg(w + kh * s.kernel_w + kw), __ldg(dy + static_cast<int64_t>(oh) * s.out_w + ow), sum);
      }
    }
    grad_input[index] = sum;
  }
}

DepthwiseShape depthwise_shape(const Conv2dShape& s) {
  DepthwiseShape d;
  d.channels = s.in_channels;
  d.in_h = s.in_height;
  d.in_w = s.in_width;
  d.out_h = s.out_height();
  d.out_w = s.out_width();
  d.kernel_h = static_cast<int>(s.kernel_height);
  d.kernel_w = static_cast<int>(s.kernel_width);
  d.stride_h = static_cast<int>(s.stride_height);
  d.stride_w = static_cast<int>(s.stride_width);
  d.pad_h = static_cast<int>(s.padding_height);
  d.pad_w = static_cast<int>(s.padding_width);
  return d;
}

// The kernels keep kernel sizes, strides, paddings, per-plane offsets and per-group K in 32 bits.
Status check_int_ranges(const char* op, const Conv2dShape& s) {
  const int64_t limit = 1LL << 30;
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t kk = s.kernel_height * s.kernel_width;
  const int64_t plane = std::max((s.in_height + 2 * s.padding_height) * (s.in_width + 2 * s.padding_width),
                                 s.out_height() * s.out_width());
  if (s.kernel_height > limit || s.kernel_width > limit || s.stride_height > limit || s.stride_width > limit ||
      s.padding_height > limit || s.padding_width > limit || plane > limit || cin_g * kk > limit ||
      cout_g * kk > limit || cout_g > limit || s.groups > limit) {
    return invalid_argument(std::string(op) + ": sizes beyond the CUDA kernel's 32-bit index range (" + describe_conv2d(s) +
                            ")");
  }
  return Status::ok();
}

}  // namespace

// ---- entry points -------------------------------------------------------------------------------

Status conv2d_forward(const Conv2dShape& shape, const float* input, const float* weight, const float* bias,
                      float* output) {
  const char* op = "conv2d_forward";
  LMCL_RETURN_IF_ERROR(validate(shape));
  LMCL_RETURN_IF_ERROR(validate_buffers(op, shape, {input, weight, output}));
  LMCL_RETURN_IF_ERROR(check_int_ranges(op, shape));
  if (is_depthwise(shape)) {
    const int64_t count = shape.output_numel();
    depthwise_forward_kernel<<<detail::blocks_for(count), detail::kThreads>>>(depthwise_shape(shape), input, weight,
                                                                              bias, output, count);
    return detail::launch_status(op);
  }
  const int64_t cin_g = shape.in_channels / shape.groups, cout_g = shape.out_channels / shape.groups;
  GatherGemm p{};
  p.a = weight;
  p.src = input;
  p.bias = bias;
  p.dst = output;
  p.m = static_cast<int>(cout_g);
  p.k = static_cast<int>(cin_g * shape.kernel_height * shape.kernel_width);
  p.taps_u = static_cast<int>(shape.kernel_height);
  p.taps_v = static_cast<int>(shape.kernel_width);
  p.tap_sign = 1;
  p.src_channels = shape.in_channels;
  p.src_group_channels = cin_g;
  p.src_h = shape.in_height;
  p.src_w = shape.in_width;
  p.dst_channels = shape.out_channels;
  p.dst_h = shape.out_height();
  p.dst_w = shape.out_width();
  p.cols_y = static_cast<int>(shape.out_height());
  p.cols_x = static_cast<int>(shape.out_width());
  p.cols = shape.batch * p.cols_y * p.cols_x;
  p.col_step_h = static_cast<int>(shape.stride_height);
  p.col_off_h = -static_cast<int>(shape.padding_height);
  p.col_step_w = static_cast<int>(shape.stride_width);
  p.col_off_w = -static_cast<int>(shape.padding_width);
  p.dst_step_h = 1;
  p.dst_off_h = 0;
  p.dst_step_w = 1;
  p.dst_off_w = 0;
  return launch_gather_gemm(p, shape.groups, op);
}

Status conv2d_backward_input(const Conv2dShape& shape, const float* grad_output, const float* weight,
                             float* grad_input) {
  const char* op = "conv2d_backward_input";
  LMCL_RETURN_IF_ERROR(validate(shape));
  LMCL_RETURN_IF_ERROR(validate_buffers(op, shape, {grad_output, weight, grad_input}));
  LMCL_RETURN_IF_ERROR(check_int_ranges(op, shape));
  if (is_depthwise(shape)) {
    const int64_t count = shape.input_numel();
    depthwise_backward_input_kernel<<<detail::blocks_for(count), detail::kThreads>>>(depthwise_shape(shape),
                                                                                     grad_output, weight, grad_input,
                                                                                     count);
    return detail::launch_status(op);
  }
  const int64_t cin_g = shape.in_channels / shape.groups, cout_g = shape.out_channels / shape.groups;
  const int sh = static_cast<int>(shape.stride_height), sw = static_cast<int>(shape.stride_width);
  const int ph = static_cast<int>(shape.padding_height), pw = static_cast<int>(shape.padding_width);
  const int kernel_h = static_cast<int>(shape.kernel_height), kernel_w = static_cast<int>(shape.kernel_width);
  // Phases (rh, rw) for rh < min(sh, H) (and the width): rh >= H or rw >= W holds no pixel.
  auto taps_of = [](int r, int kernel, int stride) { return r < kernel ? (kernel - r + stride - 1) / stride : 0; };
  int64_t scratch_floats = 0;
  for (int rh = 0; rh < sh; ++rh)
    for (int rw = 0; rw < sw; ++rw)
      scratch_floats = std::max<int64_t>(scratch_floats, shape.in_channels * cout_g * taps_of(rh, kernel_h, sh) *
                                                             taps_of(rw, kernel_w, sw));
  // One buffer per phase is not needed: the stream orders each phase's regrouping after the
  // previous phase's GEMM. Only phases with taps need it.
  detail::DeviceScratch phase_weight(sizeof(float) * static_cast<size_t>(scratch_floats));
  if (!phase_weight.ok()) return phase_weight.status();
  for (int rh = 0; rh < sh; ++rh) {
    // Input rows of this phase: ih = ih_first + y*sh with (ih + ph) % sh == rh.
    const int ih_first = ((rh - ph) % sh + sh) % sh;
    if (ih_first >= shape.in_height) continue;
    const int rows = static_cast<int>((shape.in_height - ih_first + sh - 1) / sh);
    const int taps_u = taps_of(rh, kernel_h, sh);
    for (int rw = 0; rw < sw; ++rw) {
      const int iw_first = ((rw - pw) % sw + sw) % sw;
      if (iw_first >= shape.in_width) continue;
      const int columns = static_cast<int>((shape.in_width - iw_first + sw - 1) / sw);
      const int taps_v = taps_of(rw, kernel_w, sw);
      const int64_t k = cout_g * taps_u * taps_v;
      if (k > 0) {
        const int64_t count = shape.in_channels * k;
        phase_weight_kernel<<<detail::blocks_for(count), detail::kThreads>>>(
            weight, phase_weight.floats(), count, static_cast<int>(cin_g), static_cast<int>(cout_g), kernel_h, kernel_w,
            taps_u, taps_v, rh, rw, sh, sw);
        LMCL_RETURN_IF_ERROR(detail::launch_status(op));
      }
      GatherGemm p{};
      p.a = phase_weight.floats();
      p.src = grad_output;
      p.bias = nullptr;
      p.dst = grad_input;
      p.m = static_cast<int>(cin_g);
      p.k = static_cast<int>(k);
      p.taps_u = taps_u;
      p.taps_v = taps_v;
      p.tap_sign = -1;
      p.src_channels = shape.out_channels;
      p.src_group_channels = cout_g;
      p.src_h = shape.out_height();
      p.src_w = shape.out_width();
      p.dst_channels = shape.in_channels;
      p.dst_h = shape.in_height;
      p.dst_w = shape.in_width;
      p.cols_y = rows;
      p.cols_x = columns;
      p.cols = shape.batch * rows * columns;
      // grad_output row of tap a for input row ih: (ih + ph - rh)/sh - a, exact by the phase.
      p.col_step_h = 1;
      p.col_off_h = (ih_first + ph - rh) / sh;
      p.col_step_w = 1;
      p.col_off_w = (iw_first + pw - rw) / sw;
      p.dst_step_h = sh;
      p.dst_off_h = ih_first;
      p.dst_step_w = sw;
      p.dst_off_w = iw_first;
      LMCL_RETURN_IF_ERROR(launch_gather_gemm(p, shape.groups, op));
    }
  }
  return Status::ok();
}

Status conv2d_backward_weight(const Conv2dShape& shape, const float* input, const float* grad_output,
                              float* grad_weight) {
  const char* op = "conv2d_backward_weight";
  LMCL_RETURN_IF_ERROR(validate(shape));
  LMCL_RETURN_IF_ERROR(validate_buffers(op, shape, {input, grad_output, grad_weight}));
  LMCL_RETURN_IF_ERROR(check_int_ranges(op, shape));
  const int64_t reduction = shape.batch * shape.out_height() * shape.out_width();
  const int64_t weight_numel = shape.weight_numel();
  if (is_depthwise(shape)) {
    const int64_t channels = shape.in_channels;
    const int64_t splits = split_count(channels, reduction, 4096);
    const int64_t split_length = ceil_div(reduction, splits);
    detail::DeviceScratch partial(splits > 1 ? sizeof(float) * static_cast<size_t>(splits * weight_numel) : 0);
    if (!partial.ok()) return partial.status();
    float* target = splits > 1 ? partial.floats() : grad_weight;
    if (channels > 0x7fffffffLL) return invalid_argument(std::string(op) + ": too many channels for the CUDA grid");
    depthwise_weight_partial_kernel<<<dim3(static_cast<unsigned>(channels), static_cast<unsigned>(splits)),
                                      detail::kThreads>>>(depthwise_shape(shape), input, grad_output, reduction,
                                                          split_length, target);
    LMCL_RETURN_IF_ERROR(detail::launch_status(op));
    if (splits > 1) return sum_partials(partial.floats(), splits, weight_numel, grad_weight, op);
    return Status::ok();
  }
  const int64_t cin_g = shape.in_channels / shape.groups, cout_g = shape.out_channels / shape.groups;
  WeightGemm p{};
  p.input = input;
  p.grad_output = grad_output;
  p.m = static_cast<int>(cout_g);
  p.n = static_cast<int>(cin_g * shape.kernel_height * shape.kernel_width);
  p.kernel_h = static_cast<int>(shape.kernel_height);
  p.kernel_w = static_cast<int>(shape.kernel_width);
  p.stride_h = static_cast<int>(shape.stride_height);
  p.stride_w = static_cast<int>(shape.stride_width);
  p.pad_h = static_cast<int>(shape.padding_height);
  p.pad_w = static_cast<int>(shape.padding_width);
  p.in_channels = shape.in_channels;
  p.cin_g = cin_g;
  p.in_h = shape.in_height;
  p.in_w = shape.in_width;
  p.out_channels = shape.out_channels;
  p.out_h = shape.out_height();
  p.out_w = shape.out_width();
  p.reduction = reduction;
  p.weight_numel = weight_numel;
  const Tile tile = pick_tile(p.m, p.n);
  const int64_t blocks_n = ceil_div(p.n, tile_n(tile)), blocks_m = ceil_div(p.m, tile_m(tile));
  const int64_t splits = split_count(blocks_n * blocks_m * shape.groups, reduction, 256);
  p.split_length = ceil_div(ceil_div(reduction, splits), kTileK) * kTileK;
  const int64_t used_splits = ceil_div(reduction, p.split_length);  // every split non-empty
  p.blocks_m = static_cast<int>(blocks_m);
  if (blocks_n > 0x7fffffffLL || blocks_m > 65535)
    return invalid_argument(std::string(op) + ": problem too large for the CUDA kernel's grid");
  detail::DeviceScratch partial(used_splits > 1 ? sizeof(float) * static_cast<size_t>(used_splits * weight_numel) : 0);
  if (!partial.ok()) return partial.status();
  p.partial = used_splits > 1 ? partial.floats() : grad_weight;
  const int64_t groups_per_launch = std::max<int64_t>(1, 65535 / blocks_m);
  for (int64_t g0 = 0; g0 < shape.groups; g0 += groups_per_launch) {
    const int64_t groups_here = std::min(groups_per_launch, shape.groups - g0);
    const dim3 grid(static_cast<unsigned>(blocks_n), static_cast<unsigned>(blocks_m * groups_here),
                    static_cast<unsigned>(used_splits));
    p.group_begin = static_cast<int>(g0);
    switch (tile) {
      case Tile::k64x128: weight_gemm_kernel<64, 128, 8, 4><<<grid, kGemmThreads>>>(p); break;
      case Tile::k64x64: weight_gemm_kernel<64, 64, 4, 4><<<grid, kGemmThreads>>>(p); break;
      case Tile::k32x128: weight_gemm_kernel<32, 128, 4, 4><<<grid, kGemmThreads>>>(p); break;
      case Tile::k16x256: weight_gemm_kernel<16, 256, 4, 4><<<grid, kGemmThreads>>>(p); break;
    }
    LMCL_RETURN_IF_ERROR(detail::launch_status(op));
  }
  if (used_splits > 1) return sum_partials(partial.floats(), used_splits, weight_numel, grad_weight, op);
  return Status::ok();
}

Status conv2d_backward_bias(const Conv2dShape& shape, const float* grad_output, float* grad_bias) {
  const char* op = "conv2d_backward_bias";
  LMCL_RETURN_IF_ERROR(validate(shape));
  LMCL_RETURN_IF_ERROR(validate_buffers(op, shape, {grad_output, grad_bias}));
  const int64_t channels = shape.out_channels, plane = shape.out_height() * shape.out_width();
  const int64_t length = shape.batch * plane;
  if (channels > 0x7fffffffLL) return invalid_argument(std::string(op) + ": too many channels for the CUDA grid");
  const int64_t splits = split_count(channels, length, 8192);
  const int64_t split_length = ceil_div(length, splits);
  detail::DeviceScratch partial(splits > 1 ? sizeof(float) * static_cast<size_t>(splits * channels) : 0);
  if (!partial.ok()) return partial.status();
  float* target = splits > 1 ? partial.floats() : grad_bias;
  bias_partial_kernel<<<dim3(static_cast<unsigned>(channels), static_cast<unsigned>(splits)), detail::kThreads>>>(
      grad_output, channels, plane, length, split_length, target);
  LMCL_RETURN_IF_ERROR(detail::launch_status(op));
  if (splits > 1) return sum_partials(partial.floats(), splits, channels, grad_bias, op);
  return Status::ok();
}

}  // namespace cuda
}  // namespace lmcl
