// Single-precision GEMM on the GPU: FP32 on the CUDA cores by default; TF32 tensor cores when the
// matmul precision is 'high' (lmcl/matmul_precision.h; a BF16 path is not implemented).
//
//   C[m x n] = alpha * op(A)[m x k] * op(B)[k x n] + beta * C        (row-major)
//
// op(A) = A (stored m x k, lda >= k) or A^T (A stored k x m, lda >= m); op(B) = B (stored k x n,
// ldb >= n) or B^T (B stored n x k, ldb >= k); ldc >= n. gemm_strided_batched: matrix i uses
// a + i*stride_a, b + i*stride_b, c + i*stride_c. All pointers are device memory.
// The reference is the CPU kernel lmcl::cpu::gemm (native/src/cpu/gemm.cpp): the same checks and
// messages, beta == 0 ignores C's contents (NaN poison included), k == 0 or alpha == 0 only
// scales C by beta (0 writes zeros, 1 leaves C alone), as the CPU's scale_c. Parity cases:
// native/test/cases/gemm.cpp.
//
// Launch geometry: classic shared-memory tiled SGEMM. A block computes a BM x BN tile of C with
// 256 threads, each holding a TM x TN register tile (128x128, 8x8 per thread when the problem has
// at least one such tile per SM; else 64x64, 4x4 per thread so small products still spread over
// the card). The k dimension runs in BK = 8 slices through double-buffered shared memory (one
// barrier per slice; the next slice is fetched into registers while the current one is used).
// Global loads are scalar (lda/ldb are arbitrary, no alignment to assume) but coalesced: the
// thread-to-element map of each operand follows its storage order (SliceLoader, a template
// parameter per transpose). __launch_bounds__(256, 2) keeps the 128x128 kernel at <= 128
// registers without spills (ptxas, sm_80 and sm_90), so two blocks share an SM. Shared tiles are k-major and padded by 4 floats so those stores are bank-conflict
// free and the fragment reads stay float4 (float2) aligned. A thread's register tile is two
// halves BM/2 (BN/2) apart, so a warp's C stores cover contiguous runs. Edges are bounds-checked
// (out-of-range operand elements load as 0, out-of-range C elements are not stored).
// grid = (m tiles, n tiles, batch): the batch goes in blockIdx.z; n tiles and batch are launched
// in chunks of 65535 (the grid's y/z limit).
// Each C element is one thread's fmaf chain over p = 0..k-1 in order, whatever the tile size or
// grid, so results are run-to-run deterministic (and the same for either tile configuration).
//
// Bound: compute. Intended share of the FP32 peak: about 60-70% on large, square-ish products
// (m, n, k >= 1024) on A100/H100-class cards, the usual ceiling of a non-tensor-core, non-assembly
// 128x128x8 SGEMM; skinny or small products (few tiles) are latency/occupancy bound and get less.
//
// TF32 path (precision 'high', compute capability >= 8.0; older cards keep the FP32 path): the
// same slice loaders and double-buffered k-major shared tiles (BK = 16) feed nvcuda::wmma
// 16x16x8 TF32 fragments. Block tile 128x128 (8 warps, 64x32 each) or 64x64 (4 warps, 32x32),
// chosen by the same tile count rule. op(A)'s k-major tile is op(A) column-major, op(B)'s is
// op(B) row-major, so both load as fragments in place (rows padded to a multiple of 8 floats: the
// 32-byte alignment wmma needs). Fragment elements are rounded to TF32 (__float_to_tf32, to
// nearest) after loading and the tensor cores sum the products in FP32; each accumulator then
// goes through a per-warp 16x16 staging tile to C with the same alpha/beta and bounds rules.
// Results are run-to-run deterministic but not the FP32 path's bits: inputs lose their low 13
// mantissa bits (relative error ~2^-11 per operand). Parity cases (native/test/cases/gemm.cpp,
// "tf32 ...") use inputs TF32 represents exactly, where both paths and the CPU are exact.
#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "common.cuh"
#include "lmcl/cuda_ops.h"
#include "lmcl/matmul_precision.h"

namespace lmcl {
namespace cuda {
namespace {

constexpr int64_t kMaxGridYZ = 65535;
constexpr int64_t kMaxGridX = 2147483647;

struct GemmArgs {
  int64_t m, n, k;
  float alpha, beta;
  const float* a;
  int64_t lda, stride_a;
  const float* b;
  int64_t ldb, stride_b;
  float* c;
  int64_t ldc, stride_c;
  int64_t batch_offset;   // matrix index of blockIdx.z == 0 in this launch
  int64_t n_tile_offset;  // n tile of blockIdx.y == 0 in this launch
};

// `count` consecutive floats of shared memory into registers, vectorised where the count allows
// (the callers guarantee the alignment: see the padding in sgemm_kernel).
template <int kCount>
__device__ __forceinline__ void load_fragment(const float* source, float* destination) {
  if constexpr (kCount == 4) {
    const float4 v = *reinterpret_cast<const float4*>(source);
    destination[0] = v.x;
    destination[1] = v.y;
    destination[2] = v.z;
    destination[3] = v.w;
  } else if constexpr (kCount == 2) {
    const float2 v = *reinterpret_cast<const float2*>(source);
    destination[0] = v.x;
    destination[1] = v.y;
  } else {
#pragma unroll
    for (int i = 0; i < kCount; ++i) destination[i] = source[i];
  }
}

// One operand's share of a k slice: op(X) element (o, p) (o: row of op(A) or column of op(B),
// p: the reduction index) is x[o*outer_stride + p*k_stride]; the slice is stored in shared memory
// k-major, tile[p][o]. Consecutive threads walk the operand's contiguous direction (p when
// k_stride == 1, else o), so the global loads coalesce; each thread's slots are a fixed step
// apart, walked with one pointer. Elements outside the matrix load as 0.
template <int kTile, int BK, int kBlockThreads, bool kKContiguous>
struct SliceLoader {
  static constexpr int kLoads = kTile * BK / kBlockThreads;
  static constexpr int kOuterStep = kKContiguous ? kBlockThreads / BK : 0;  // between a thread's slots
  static constexpr int kInnerStep = kKContiguous ? 0 : kBlockThreads / kTile;
  static_assert(kTile * BK % kBlockThreads == 0, "slice loads must divide evenly");
  static_assert(kKContiguous ? kBlockThreads % BK == 0 : kBlockThreads % kTile == 0, "slots must be a fixed step apart");

  const float* cursor;  // this thread's first slot in the next slice to fetch
  int64_t slot_stride, slice_stride, outer_left, k_left;
  int o_first, p_first;
  float next[kLoads];

  __device__ __forceinline__ SliceLoader(const float* x, int64_t origin, int64_t extent, int64_t outer_stride,
                                         int64_t k_stride, int64_t k, int tid) {
    o_first = kKContiguous ? tid / BK : tid % kTile;
    p_first = kKContiguous ? tid % BK : tid / kTile;
    outer_left = extent - origin;
    k_left = k;
    // Only dereferenced for elements inside the matrix.
    cursor = x + (origin + o_first) * outer_stride + p_first * k_stride;
    slot_stride = kKContiguous ? kOuterStep * outer_stride : kInnerStep * k_stride;
    slice_stride = BK * k_stride;
  }

  __device__ __forceinline__ void fetch() {
    const float* slot = cursor;
#pragma unroll
    for (int l = 0; l < kLoads; ++l) {
      const bool inside = o_first + l * kOuterStep < outer_left && p_first + l * kInnerStep < k_left;
      next[l] = inside ? *slot : 0.0f;
      slot += slot_stride;
    }
    cursor += slice_stride;
    k_left -= BK;
  }

  template <int kStride>
  __device__ __forceinline__ void stash(float (*tile)[kStride]) const {
#pragma unroll
    for (int l = 0; l < kLoads; ++l) tile[p_first + l * kInnerStep][o_first + l * kOuterStep] = next[l];
  }
};

// A block's BM x BN tile of one matrix: where it starts, its C, and the two operands' slice
// loaders (op(A)(i, p) = a[i*a_rs + p*a_cs]; op(B)(p, j) = b[p*b_rs + j*b_cs]). Shared by the FP32
// and TF32 kernels.
template <int BM, int BN, int BK, int kBlockThreads, bool kTransA, bool kTransB>
struct BlockTile {
  int64_t matrix, row0, col0;
  float* c;
  SliceLoader<BM, BK, kBlockThreads, !kTransA> load_a;
  SliceLoader<BN, BK, kBlockThreads, kTransB> load_b;

  __device__ __forceinline__ BlockTile(const GemmArgs& args, int tid)
      : matrix(args.batch_offset + blockIdx.z),
        row0(static_cast<int64_t>(blockIdx.x) * BM),
        col0((args.n_tile_offset + blockIdx.y) * BN),
        c(args.c + matrix * args.stride_c),
        load_a(args.a + matrix * args.stride_a, row0, args.m, kTransA ? 1 : args.lda, kTransA ? args.lda : 1, args.k, tid),
        load_b(args.b + matrix * args.stride_b, col0, args.n, kTransB ? args.ldb : 1, kTransB ? 1 : args.ldb, args.k, tid) {}
};

template <int BM, int BN, int BK, int TM, int TN, bool kTransA, bool kTransB>
__global__ void __launch_bounds__((BM / TM) * (BN / TN), 2)
    sgemm_kernel(GemmArgs args) {
  constexpr int kThreadsX = BN / TN;  // threads along n
  constexpr int kThreadsY = BM / TM;  // threads along m
  constexpr int kBlockThreads = kThreadsX * kThreadsY;
  constexpr int kPad = 4;  // keeps the k-major stores conflict-free and rows 16-byte aligned
  constexpr int kStrideA = BM + kPad, kStrideB = BN + kPad;
  static_assert(TM % 2 == 0 && TN % 2 == 0, "register tiles are two halves");
  constexpr int kHalfM = TM / 2, kHalfN = TN / 2;

  __shared__ __align__(16) float tile_a[2][BK][kStrideA];  // tile_a[buf][p][i] = op(A)(row0 + i, k0 + p)
  __shared__ __align__(16) float tile_b[2][BK][kStrideB];  // tile_b[buf][p][j] = op(B)(k0 + p, col0 + j)

  const int tid = threadIdx.x;
  const int64_t m = args.m, n = args.n, k = args.k;
  BlockTile<BM, BN, BK, kBlockThreads, kTransA, kTransB> block(args, tid);
  const int64_t row0 = block.row0, col0 = block.col0;
  float* c = block.c;
  auto& load_a = block.load_a;
  auto& load_b = block.load_b;

  const int tx = tid % kThreadsX, ty = tid / kThreadsX;
  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  const int64_t slices = (k + BK - 1) / BK;
  load_a.fetch();
  load_b.fetch();
  load_a.stash(tile_a[0]);
  load_b.stash(tile_b[0]);
  __syncthreads();
  for (int64_t slice = 0; slice < slices; ++slice) {
    const int buffer = static_cast<int>(slice & 1);
    const bool more = slice + 1 < slices;
    if (more) {  // the next slice's global loads are in flight during the FMAs below
      load_a.fetch();
      load_b.fetch();
    }
#pragma unroll
    for (int p = 0; p < BK; ++p) {
      float a_frag[TM], b_frag[TN];
      load_fragment<kHalfM>(&tile_a[buffer][p][ty * kHalfM], a_frag);
      load_fragment<kHalfM>(&tile_a[buffer][p][BM / 2 + ty * kHalfM], a_frag + kHalfM);
      load_fragment<kHalfN>(&tile_b[buffer][p][tx * kHalfN], b_frag);
      load_fragment<kHalfN>(&tile_b[buffer][p][BN / 2 + tx * kHalfN], b_frag + kHalfN);
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a_frag[i], b_frag[j], acc[i][j]);
    }
    // The other buffer was last read in the previous slice, which the barrier below (of that
    // slice) has closed, so it can be refilled while slow threads still read this one.
    if (more) {
      load_a.stash(tile_a[buffer ^ 1]);
      load_b.stash(tile_b[buffer ^ 1]);
    }
    __syncthreads();
  }

  const float alpha = args.alpha, beta = args.beta;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int64_t row = row0 + (i < kHalfM ? ty * kHalfM + i : BM / 2 + ty * kHalfM + (i - kHalfM));
    if (row >= m) continue;
    float* c_row = c + row * args.ldc;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int64_t col = col0 + (j < kHalfN ? tx * kHalfN + j : BN / 2 + tx * kHalfN + (j - kHalfN));
      if (col >= n) continue;
      float value = alpha * acc[i][j];
      if (beta != 0.0f) value += beta * c_row[col];  // beta == 0: C is never read (NaN poison)
      c_row[col] = value;
    }
  }
}

// The TF32 tensor-core tile (see the header): WM x WN warps, each a (BM/WM) x (BN/WN) part of the
// BM x BN block tile as 16x16 accumulator fragments.
template <int BM, int BN, int WM, int WN, bool kTransA, bool kTransB>
__global__ void __launch_bounds__(WM * WN * 32) tf32_gemm_kernel(GemmArgs args) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  constexpr int BK = 16, kFragmentK = 8;
  constexpr int kBlockThreads = WM * WN * 32;
  constexpr int kWarpRows = BM / WM, kWarpCols = BN / WN;
  constexpr int FM = kWarpRows / 16, FN = kWarpCols / 16;
  static_assert(kWarpRows % 16 == 0 && kWarpCols % 16 == 0, "warp parts are whole fragments");
  constexpr int kPad = 8;  // rows a multiple of 8 floats: every fragment pointer is 32-byte aligned
  constexpr int kStrideA = BM + kPad, kStrideB = BN + kPad;

  __shared__ __align__(32) float tile_a[2][BK][kStrideA];  // tile_a[buf][p][i] = op(A)(row0 + i, k0 + p)
  __shared__ __align__(32) float tile_b[2][BK][kStrideB];  // tile_b[buf][p][j] = op(B)(k0 + p, col0 + j)
  __shared__ __align__(32) float staging[WM * WN][16 * 16];

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int warp_m = warp / WN, warp_n = warp % WN;
  const int64_t m = args.m, n = args.n, k = args.k;
  BlockTile<BM, BN, BK, kBlockThreads, kTransA, kTransB> block(args, tid);
  const int64_t row0 = block.row0, col0 = block.col0;
  float* c = block.c;
  auto& load_a = block.load_a;
  auto& load_b = block.load_b;

  wmma::fragment<wmma::accumulator, 16, 16, kFragmentK, float> acc[FM][FN];
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < FN; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  const int64_t slices = (k + BK - 1) / BK;
  load_a.fetch();
  load_b.fetch();
  load_a.stash(tile_a[0]);
  load_b.stash(tile_b[0]);
  __syncthreads();
  for (int64_t slice = 0; slice < slices; ++slice) {
    const int buffer = static_cast<int>(slice & 1);
    const bool more = slice + 1 < slices;
    if (more) {
      load_a.fetch();
      load_b.fetch();
    }
#pragma unroll
    for (int p0 = 0; p0 < BK; p0 += kFragmentK) {
      wmma::fragment<wmma::matrix_a, 16, 16, kFragmentK, wmma::precision::tf32, wmma::col_major> a_frag[FM];
      wmma::fragment<wmma::matrix_b, 16, 16, kFragmentK, wmma::precision::tf32, wmma::row_major> b_frag[FN];
#pragma unroll
      for (int i = 0; i < FM; ++i) {
        wmma::load_matrix_sync(a_frag[i], &tile_a[buffer][p0][warp_m * kWarpRows + i * 16], kStrideA);
#pragma unroll
        for (int t = 0; t < a_frag[i].num_elements; ++t) a_frag[i].x[t] = wmma::__float_to_tf32(a_frag[i].x[t]);
      }
#pragma unroll
      for (int j = 0; j < FN; ++j) {
        wmma::load_matrix_sync(b_frag[j], &tile_b[buffer][p0][warp_n * kWarpCols + j * 16], kStrideB);
#pragma unroll
        for (int t = 0; t < b_frag[j].num_elements; ++t) b_frag[j].x[t] = wmma::__float_to_tf32(b_frag[j].x[t]);
      }
#pragma unroll
      for (int i = 0; i < FM; ++i)
#pragma unroll
        for (int j = 0; j < FN; ++j) wmma::mma_sync(acc[i][j], a_frag[i], b_frag[j], acc[i][j]);
    }
    if (more) {  // as in sgemm_kernel: the other buffer's readers passed the previous barrier
      load_a.stash(tile_a[buffer ^ 1]);
      load_b.stash(tile_b[buffer ^ 1]);
    }
    __syncthreads();
  }

  const float alpha = args.alpha, beta = args.beta;
  float* stage = staging[warp];
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < FN; ++j) {
      wmma::store_matrix_sync(stage, acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      const int64_t fragment_row = row0 + warp_m * kWarpRows + i * 16;
      const int64_t fragment_col = col0 + warp_n * kWarpCols + j * 16;
      for (int e = lane; e < 16 * 16; e += 32) {
        const int64_t row = fragment_row + e / 16, col = fragment_col + e % 16;
        if (row >= m || col >= n) continue;
        float* target = c + row * args.ldc + col;
        float value = alpha * stage[e];
        if (beta != 0.0f) value += beta * *target;  // beta == 0: C is never read (NaN poison)
        *target = value;
      }
      __syncwarp();  // the staging tile is rewritten by the next fragment
    }
#endif
}

// C = beta * C over `batch` matrices (the k == 0 / alpha == 0 case); beta == 0 writes zeros
// without reading C. One block per row (grid-stride over batch*m rows), threads along n.
__global__ void scale_c_kernel(int64_t batch, int64_t m, int64_t n, float beta, float* c, int64_t ldc,
                               int64_t stride_c) {
  for (int64_t r = blockIdx.x; r < batch * m; r += gridDim.x) {
    float* row = c + (r / m) * stride_c + (r % m) * ldc;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) row[j] = beta == 0.0f ? 0.0f : beta * row[j];
  }
}

// Launches kernel(args) over the grid of BM x BN tiles of every matrix, in chunks of the grid's
// y / z limits (n tiles and batch).
template <int BM, int BN, typename Launch>
Status launch_grid(GemmArgs args, int64_t batch, const Launch& launch) {
  const int64_t m_tiles = (args.m + BM - 1) / BM, n_tiles = (args.n + BN - 1) / BN;
  if (m_tiles > kMaxGridX) return invalid_argument("gemm: m=" + std::to_string(args.m) + " is too large for the CUDA grid");
  for (int64_t b0 = 0; b0 < batch; b0 += kMaxGridYZ) {
    for (int64_t t0 = 0; t0 < n_tiles; t0 += kMaxGridYZ) {
      args.batch_offset = b0;
      args.n_tile_offset = t0;
      const dim3 grid(static_cast<unsigned int>(m_tiles), static_cast<unsigned int>(std::min(kMaxGridYZ, n_tiles - t0)),
                      static_cast<unsigned int>(std::min(kMaxGridYZ, batch - b0)));
      launch(grid, args);
      LMCL_RETURN_IF_ERROR(detail::launch_status("gemm"));
    }
  }
  return Status::ok();
}

template <int BM, int BN, int BK, int TM, int TN, bool kTransA, bool kTransB>
Status launch_tiles(const GemmArgs& args, int64_t batch) {
  constexpr int kBlockThreads = (BM / TM) * (BN / TN);
  return launch_grid<BM, BN>(args, batch, [](dim3 grid, const GemmArgs& chunk) {
    sgemm_kernel<BM, BN, BK, TM, TN, kTransA, kTransB><<<grid, kBlockThreads>>>(chunk);
  });
}

template <int BM, int BN, int BK, int TM, int TN>
Status launch_for_transposes(bool transpose_a, bool transpose_b, const GemmArgs& args, int64_t batch) {
  if (!transpose_a && !transpose_b) return launch_tiles<BM, BN, BK, TM, TN, false, false>(args, batch);
  if (!transpose_a && transpose_b) return launch_tiles<BM, BN, BK, TM, TN, false, true>(args, batch);
  if (transpose_a && !transpose_b) return launch_tiles<BM, BN, BK, TM, TN, true, false>(args, batch);
  return launch_tiles<BM, BN, BK, TM, TN, true, true>(args, batch);
}

template <int BM, int BN, int WM, int WN, bool kTransA, bool kTransB>
Status launch_tf32_tiles(const GemmArgs& args, int64_t batch) {
  return launch_grid<BM, BN>(args, batch, [](dim3 grid, const GemmArgs& chunk) {
    tf32_gemm_kernel<BM, BN, WM, WN, kTransA, kTransB><<<grid, WM * WN * 32>>>(chunk);
  });
}

template <int BM, int BN, int WM, int WN>
Status launch_tf32_for_transposes(bool transpose_a, bool transpose_b, const GemmArgs& args, int64_t batch) {
  if (!transpose_a && !transpose_b) return launch_tf32_tiles<BM, BN, WM, WN, false, false>(args, batch);
  if (!transpose_a && transpose_b) return launch_tf32_tiles<BM, BN, WM, WN, false, true>(args, batch);
  if (transpose_a && !transpose_b) return launch_tf32_tiles<BM, BN, WM, WN, true, false>(args, batch);
  return launch_tf32_tiles<BM, BN, WM, WN, true, true>(args, batch);
}

// TF32 tensor cores: compute capability 8.0 and later.
bool has_tf32_tensor_cores() {
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    cudaGetLastError();  // unknown: the FP32 path is always correct
    return false;
  }
  return major >= 8;
}

int multiprocessor_count() {
  int device = 0, count = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess || count <= 0) {
    cudaGetLastError();  // a failed query only affects the tile choice; the launch reports real errors
    count = 108;
  }
  return count;
}


// Shared by both entry points, after validation; batch >= 1.
Status run_gemm(bool transpose_a, bool transpose_b, int64_t batch, int64_t m, int64_t n, int64_t k, float alpha,
                const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b,
                float beta, float* c, int64_t ldc, int64_t stride_c) {
  if (m == 0 || n == 0) return Status::ok();
  if (k == 0 || alpha == 0.0f) {
    if (beta == 1.0f) return Status::ok();
    const int64_t rows = batch * m;
    const unsigned int blocks = static_cast<unsigned int>(std::min<int64_t>(rows, 65535LL * 8));
    scale_c_kernel<<<blocks, detail::kThreads>>>(batch, m, n, beta, c, ldc, stride_c);
    return detail::launch_status("gemm");
  }
  GemmArgs args{m, n, k, alpha, beta, a, lda, stride_a, b, ldb, stride_b, c, ldc, stride_c, 0, 0};
  const int64_t large_tiles = ((m + 127) / 128) * ((n + 127) / 128) * batch;
  if (matmul_precision() == MatmulPrecision::kHigh && has_tf32_tensor_cores()) {
    if (large_tiles >= multiprocessor_count())
      return launch_tf32_for_transposes<128, 128, 2, 4>(transpose_a, transpose_b, args, batch);
    return launch_tf32_for_transposes<64, 64, 2, 2>(transpose_a, transpose_b, args, batch);
  }
  if (large_tiles >= multiprocessor_count())
    return launch_for_transposes<128, 128, 8, 8, 8>(transpose_a, transpose_b, args, batch);
  return launch_for_transposes<64, 64, 8, 4, 4>(transpose_a, transpose_b, args, batch);
}

}  // namespace

Status gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
            int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  LMCL_RETURN_IF_ERROR(validate_gemm(transpose_a, transpose_b, m, n, k, a, lda, b, ldb, c, ldc));
  return run_gemm(transpose_a, transpose_b, 1, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0);
}

Status gemm_strided_batched(bool transpose_a, bool transpose_b, int64_t batch, int64_t m, int64_t n, int64_t k,
                            float alpha, const float* a, int64_t lda, int64_t stride_a, const float* b,
                            int64_t ldb, int64_t stride_b, float beta, float* c, int64_t ldc, int64_t stride_c) {
  if (batch < 0) return invalid_argument("gemm_strided_batched: batch must be >= 0, got " + std::to_string(batch));
  if (batch == 0) return Status::ok();  // the CPU loops over no matrix: nothing is checked
  // The CPU checks every matrix with the same sizes; only matrix 0's pointers can be null.
  LMCL_RETURN_IF_ERROR(validate_gemm(transpose_a, transpose_b, m, n, k, a, lda, b, ldb, c, ldc));
  return run_gemm(transpose_a, transpose_b, batch, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc,
                  stride_c);
}

}  // namespace cuda
}  // namespace lmcl
