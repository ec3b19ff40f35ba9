// Sum over axes (CUDA). The reference is lmcl::cpu::sum_axes (native/src/cpu/reduce.cpp); the
// parity cases are native/test/cases/reduce.cpp.
//
//   out[k] = Σ_r x[k ⊕ r], k over the kept axes, r over the reduced axes.
//   x contiguous with `shape` (rank <= 8), out contiguous with the kept extents in order. shape and
//   reduce_axis are HOST arrays (the binding's), read here and passed to the kernels by value.
//
// As on the CPU, adjacent axes of the same kind are merged and extent-1 axes dropped first; an
// empty output does nothing, an empty input writes zeros, a problem with nothing to reduce is a
// device copy. Every output element is then the sum of `per_output` elements found by decoding an
// index over the kept axes (once per output) and over the reduced axes (per element); 32-bit
// index math when x has < 2^31 elements. Two kernels, chosen by the layout (memory-bound):
//   rows    (innermost axis reduced, >= 16 elements per output: row sums, [outer, R], batchnorm's
//            [R, C, R]): a group of threads per output, a warp for < 2048 elements, else the whole
//            256-thread block; lanes stride over the output's elements (coalesced along the
//            contiguous innermost run), then a fixed shuffle tree (+ a fixed pass over the 8 warp
//            sums). Few long outputs (a full reduction) are split into chunks of >= 16 Ki elements
//            over up to ~2048 blocks, and a second kernel sums each output's chunk partials
//            with a block tree, in chunk order.
//   columns (innermost axis kept: [R, inner], [outer, R, inner]; also tiny rows): a 32 × 8 block
//            takes 32 consecutive outputs (so a warp reads 32 adjacent floats); its 8 thread rows
//            stride over the reduced positions, and the 8 partials of each output are added in row
//            order through shared memory. Few columns with long reductions are split along the
//            reduced positions too (grid.y), the chunk partials summed in order by a second kernel.
// Deterministic: the split, the strides and the trees depend only on the shape, never on timing;
// no atomics. Float accumulation as on the CPU (the CPU sums in a different, also fixed order, so
// the two agree to rounding, not bit for bit).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "common.cuh"
#include "lmcl/cuda_ops.h"
#include "lmcl/elementwise.h"
#include "lmcl/reduce.h"

namespace lmcl {
namespace cuda {
namespace {

using detail::kThreads;

constexpr int64_t kRowsMinLength = 16;       // shorter innermost-reduced outputs go to the columns kernel
constexpr int64_t kBlockGroupLength = 2048;  // from here a whole block sums one output
constexpr int64_t kRowChunk = 16384;         // elements per block when one output is split
constexpr int64_t kRowSplitTarget = 2048;    // blocks to aim for when splitting few outputs
constexpr int kColumnWidth = 32;             // outputs per column block (one warp wide)
constexpr int kColumnRows = 8;               // thread rows sharing the reduced positions
constexpr int64_t kColumnChunk = 512;        // reduced positions per split, at least
constexpr int64_t kColumnSplitTarget = 1024; // column blocks to aim for when splitting

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Axes of x (row-major order, outermost first) with their element strides in x.
template <typename Index>
struct AxisSet {
  int count;
  Index extent[kMaxRank];
  Index stride[kMaxRank];
};

// Offset in x of the index'th position (row-major) over `axes`.
template <typename Index>
__device__ inline Index offset_of(Index index, const AxisSet<Index>& axes) {
  Index offset = 0;
#pragma unroll  // constant indices: the axes stay in the parameter bank (no local copy)
  for (int i = kMaxRank - 1; i > 0; --i) {
    if (i < axes.count) {
      offset += (index % axes.extent[i]) * axes.stride[i];
      index /= axes.extent[i];
    }
  }
  if (axes.count > 0) offset += index * axes.stride[0];  // the outermost index is already < extent[0]
  return offset;
}

using detail::warp_sum;  // fixed butterfly over the warp (every lane gets the total; lane 0's is used)

// Task t = (output o, chunk s) with t = o·splits + s: sums elements [s·chunk, (s+1)·chunk) of
// output o into destination[t] (out itself when splits == 1). kGroup threads per task.
template <typename Index, int kGroup>
__global__ void sum_rows_kernel(Index tasks, Index splits, Index chunk, Index per_output, AxisSet<Index> kept,
                                AxisSet<Index> reduced, const float* x, float* destination) {
  constexpr int kGroupsPerBlock = kThreads / kGroup;
  __shared__ float warp_sums[kThreads / 32];
  const int group = threadIdx.x / kGroup, lane = threadIdx.x % kGroup;
  const Index task_stride = Index(gridDim.x) * kGroupsPerBlock;
  // The loop bound is uniform over a group (a warp, or the block when kGroup == kThreads).
  for (Index task = Index(blockIdx.x) * kGroupsPerBlock + group; task < tasks; task += task_stride) {
    const Index o = task / splits, s = task - o * splits;
    const Index begin = s * chunk;
    const Index end = begin + chunk < per_output ? begin + chunk : per_output;
    const Index base = offset_of(o, kept);
    float sum = 0.0f;
    for (Index e = begin + lane; e < end; e += kGroup) sum += x[base + offset_of(e, reduced)];
    sum = warp_sum(sum);
    if (kGroup > 32) {
      if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x / 32] = sum;
      __syncthreads();
      if (threadIdx.x == 0) {
        float total = 0.0f;
        for (int w = 0; w < kGroup / 32; ++w) total += warp_sums[w];
        destination[task] = total;
      }
      __syncthreads();  // warp_sums is reused by the next task
    } else if (lane == 0) {
      destination[task] = sum;
    }
  }
}

// Outputs [cb·32, cb·32 + 32), reduced positions [s·chunk, (s+1)·chunk) → destination[s·out_count + o].
template <typename Index>
__global__ void sum_columns_kernel(Index out_count, Index splits, Index chunk, Index per_output, AxisSet<Index> kept,
                                   AxisSet<Index> reduced, const float* x, float* destination) {
  __shared__ float partial[kColumnRows][kColumnWidth + 1];
  const Index column_blocks = (out_count + kColumnWidth - 1) / kColumnWidth;
  for (Index cb = blockIdx.x; cb < column_blocks; cb += gridDim.x) {
    for (Index s = blockIdx.y; s < splits; s += gridDim.y) {
      const Index o = cb * kColumnWidth + threadIdx.x;
      float sum = 0.0f;
      if (o < out_count) {
        const Index base = offset_of(o, kept);
        const Index stop = (s + 1) * chunk < per_output ? (s + 1) * chunk : per_output;
        for (Index r = s * chunk + threadIdx.y; r < stop; r += kColumnRows) sum += x[base + offset_of(r, reduced)];
      }
      partial[threadIdx.y][threadIdx.x] = sum;
      __syncthreads();
      if (threadIdx.y == 0 && o < out_count) {
        float total = 0.0f;
        for (int row = 0; row < kColumnRows; ++row) total += partial[row][threadIdx.x];
        destination[s * out_count + o] = total;
      }
      __syncthreads();
    }
  }
}

// out[o] = Σ_s partials[o·splits + s]: one block per output, a block tree.
__global__ void finish_rows_kernel(int64_t out_count, int64_t splits, const float* partials, float* out) {
  __shared__ float shared[kThreads];
  for (int64_t o = blockIdx.x; o < out_count; o += gridDim.x) {
    float sum = 0.0f;
    for (int64_t s = threadIdx.x; s < splits; s += blockDim.x) sum += partials[o * splits + s];
    sum = detail::block_sum(sum, shared);
    if (threadIdx.x == 0) out[o] = sum;
  }
}

// out[o] = Σ_s partials[s·out_count + o], in s order: a thread per output (coalesced over o).
__global__ void finish_columns_kernel(int64_t out_count, int64_t splits, const float* partials, float* out) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; o < out_count; o += stride) {
    float sum = 0.0f;
    for (int64_t s = 0; s < splits; ++s) sum += partials[s * out_count + o];
    out[o] = sum;
  }
}

template <typename Index>
Status run_sum(const std::vector<int64_t>& extents, const std::vector<bool>& reduced, int64_t out_count,
               const float* x, float* out) {
  const char* name = "sum_axes";
  const int dims = static_cast<int>(extents.size());
  AxisSet<Index> kept_axes{}, reduced_axes{};
  int64_t stride = 1, per_output = 1;
  for (int d = dims - 1; d >= 0; --d) {
    AxisSet<Index>& axes = reduced[d] ? reduced_axes : kept_axes;
    axes.extent[axes.count] = static_cast<Index>(extents[d]);
    axes.stride[axes.count] = static_cast<Index>(stride);
    ++axes.count;
    if (reduced[d]) per_output *= extents[d];
    stride *= extents[d];
  }
  // Collected innermost first: flip to outermost first.
  for (AxisSet<Index>* axes : {&kept_axes, &reduced_axes}) {
    std::reverse(axes->extent, axes->extent + axes->count);
    std::reverse(axes->stride, axes->stride + axes->count);
  }

  if (reduced[dims - 1] && per_output >= kRowsMinLength) {
    const bool whole_block = per_output >= kBlockGroupLength;
    int64_t splits = 1;
    if (whole_block && out_count < kRowSplitTarget / 2) {
      splits = std::max<int64_t>(1, std::min(ceil_div(per_output, kRowChunk), ceil_div(kRowSplitTarget, out_count)));
    }
    const int64_t chunk = ceil_div(per_output, splits);
    splits = ceil_div(per_output, chunk);
    detail::DeviceScratch partials(splits > 1 ? static_cast<size_t>(out_count * splits) * sizeof(float) : 0);
    if (!partials.ok()) return partials.status();
    float* destination = splits > 1 ? partials.floats() : out;
    const int64_t tasks = out_count * splits;
    if (whole_block) {
      sum_rows_kernel<Index, kThreads><<<detail::blocks_for(tasks, 1), kThreads>>>(
          Index(tasks), Index(splits), Index(chunk), Index(per_output), kept_axes, reduced_axes, x, destination);
    } else {
      sum_rows_kernel<Index, 32><<<detail::blocks_for(tasks, kThreads / 32), kThreads>>>(
          Index(tasks), Index(splits), Index(chunk), Index(per_output), kept_axes, reduced_axes, x, destination);
    }
    LMCL_RETURN_IF_ERROR(detail::launch_status(name));
    if (splits > 1) {
      finish_rows_kernel<<<detail::blocks_for(out_count, 1), kThreads>>>(out_count, splits, destination, out);
      LMCL_RETURN_IF_ERROR(detail::launch_status(name));
    }
    return Status::ok();
  }

  const int64_t column_blocks = ceil_div(out_count, kColumnWidth);
  int64_t splits = 1;
  if (column_blocks < kColumnSplitTarget / 4 && per_output > 2 * kColumnChunk) {
    splits = std::max<int64_t>(1, std::min(ceil_div(per_output, kColumnChunk), ceil_div(kColumnSplitTarget, column_blocks)));
  }
  const int64_t chunk = ceil_div(per_output, splits);
  splits = ceil_div(per_output, chunk);
  detail::DeviceScratch partials(splits > 1 ? static_cast<size_t>(out_count * splits) * sizeof(float) : 0);
  if (!partials.ok()) return partials.status();
  float* destination = splits > 1 ? partials.floats() : out;
  const dim3 grid(detail::blocks_for(column_blocks, 1), static_cast<unsigned int>(std::min<int64_t>(splits, 65535)));
  sum_columns_kernel<Index><<<grid, dim3(kColumnWidth, kColumnRows)>>>(Index(out_count), Index(splits), Index(chunk),
                                                                      Index(per_output), kept_axes, reduced_axes, x,
                                                                      destination);
  LMCL_RETURN_IF_ERROR(detail::launch_status(name));
  if (splits > 1) {
    finish_columns_kernel<<<detail::blocks_for(out_count), kThreads>>>(out_count, splits, destination, out);
    LMCL_RETURN_IF_ERROR(detail::launch_status(name));
  }
  return Status::ok();
}

}  // namespace

Status sum_axes(int rank, const int64_t* shape, const uint8_t* reduce_axis, const float* x, float* out) {
  LMCL_CHECK_ARG(rank >= 0 && rank <= kMaxRank, "rank must be 0.." + std::to_string(kMaxRank));
  // Merge adjacent axes of the same kind; drop extent-1 axes (as the CPU does).
  std::vector<int64_t> extents;
  std::vector<bool> reduced;
  int64_t out_count = 1, total = 1;
  for (int d = 0; d < rank; ++d) {
    LMCL_CHECK_ARG(shape[d] >= 0, "negative extent");
    total *= shape[d];
    if (!reduce_axis[d]) out_count *= shape[d];
    if (shape[d] == 1) continue;
    const bool is_reduced = reduce_axis[d] != 0;
    if (!extents.empty() && reduced.back() == is_reduced) extents.back() *= shape[d];
    else {
      extents.push_back(shape[d]);
      reduced.push_back(is_reduced);
    }
  }
  if (out_count == 0) return Status::ok();
  if (total == 0) return fill(out, 0.0f, out_count);  // sums over nothing
  if (extents.empty() || (extents.size() == 1 && !reduced[0])) {  // nothing to reduce
    return copy_device_to_device(out, x, static_cast<size_t>(out_count) * sizeof(float));
  }
  // 32-bit index math when x has < 2^31 elements: every offset, output and task number is then
  // below 2^31 too (outputs <= total; a split happens only for a few thousand outputs).
  if (total <= std::numeric_limits<int32_t>::max()) return run_sum<uint32_t>(extents, reduced, out_count, x, out);
  return run_sum<int64_t>(extents, reduced, out_count, x, out);
}

}  // namespace cuda
}  // namespace lmcl
