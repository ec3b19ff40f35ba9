// Layout kernels (CUDA). The reference is the CPU kernel of the same name in
// native/src/cpu/layout.cpp (lmcl::cpu::strided_copy, index_select, index_add); the parity cases
// are native/test/cases/layout.cpp. All three are memory-bound copies.
//
//   strided_copy:  dst[Σ i_d·dst_stride_d] = src[Σ i_d·src_stride_d] for every i in the box `shape`
//                  (rank <= 8; shape and strides are HOST arrays, src/dst device pointers already
//                  offset to the box origin).
//   index_select:  x [outer, n, inner] → out [outer, k, inner], out[o, j, :] = x[o, idx[j], :]
//   index_add:     grad [outer, k, inner] → out [outer, n, inner] (overwritten),
//                  out[o, r, :] = Σ_{j: idx[j] = r, increasing j} grad[o, j, :]  (0 where none)
//                  idx is a HOST int32 array (the binding's Int32Array) for both: validated on the
//                  host (same message as the CPU), then staged to the device with DeviceScratch.
//
// strided_copy validates and simplifies the box exactly as the CPU (drop extent-1 dimensions,
// stable-sort by destination stride, the no-self-overlap check, merge neighbours contiguous in both)
// and then launches one of two kernels:
//   transpose: the destination contiguous along the last dimension q and the source along another
//              one p (both >= 8 long): 32×32 tiles through shared memory (padded against bank
//              conflicts), a 32×8 block reads along p and writes along q, so both sides are
//              coalesced; grid (q tiles, p tiles, the other dimensions), grid-stride in each;
//   generic:   a thread per element in destination order (writes coalesced when the innermost
//              destination stride is 1), decoding the index over the merged dims.
// indices are an IndexArray (lmcl/index_array.h): checked on its host side with the CPU's message.
// index_select: a thread per output element, grid-stride (coalesced along inner), reading the
// indices' device side.
// index_add: the stable counting sort of the CPU is built from the indices' host side: start[r]..start[r+1] lists the j with idx[j] == r in increasing j. A thread per output
// element then sums its contributions in that order, starting from the first one exactly like the
// CPU (copy, then +=), so the result equals the CPU bit for bit and is deterministic (no atomics);
// a row hit many times costs its threads that many reads (the contributions of one row are serial).
// Index math is 32-bit when every offset fits in int32 (64-bit division is slow on the GPU).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "common.cuh"
#include "lmcl/cuda_ops.h"
#include "lmcl/layout.h"

namespace lmcl {
namespace cuda {
namespace {

using detail::kThreads;

constexpr int64_t kInt32Limit = std::numeric_limits<int32_t>::max();
constexpr int kTile = 32;
constexpr int kTileRows = 8;
constexpr int64_t kTransposeMinExtent = 8;  // shorter sides waste most of a 32×32 tile

struct Dim {
  int64_t extent;
  int64_t src;
  int64_t dst;
};

// ---- strided_copy ------------------------------------------------------------------------------

template <typename Index>
struct CopyGeometry {
  int rank;
  Index extent[kLayoutMaxRank];
  Index src[kLayoutMaxRank];
  Index dst[kLayoutMaxRank];
};

template <typename Index>
__global__ void strided_copy_kernel(Index total, CopyGeometry<Index> g, const float* src, float* dst) {
  const Index stride = Index(gridDim.x) * blockDim.x;
  for (Index i = Index(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    Index rest = i, src_offset = 0, dst_offset = 0;
#pragma unroll  // constant indices: the geometry stays in the parameter bank (no local copy)
    for (int d = kLayoutMaxRank - 1; d > 0; --d) {
      if (d < g.rank) {
        const Index position = rest % g.extent[d];
        rest /= g.extent[d];
        src_offset += position * g.src[d];
        dst_offset += position * g.dst[d];
      }
    }
    src_offset += rest * g.src[0];  // rank >= 1 here; the outermost index needs no modulo
    dst_offset += rest * g.dst[0];
    dst[dst_offset] = src[src_offset];
  }
}

template <typename Index>
Status launch_strided_copy(int rank, const Dim* dims, int64_t total, const float* src, float* dst) {
  CopyGeometry<Index> g{};
  g.rank = rank;
  for (int d = 0; d < rank; ++d) {
    g.extent[d] = static_cast<Index>(dims[d].extent);
    g.src[d] = static_cast<Index>(dims[d].src);
    g.dst[d] = static_cast<Index>(dims[d].dst);
  }
  strided_copy_kernel<Index><<<detail::blocks_for(total), kThreads>>>(static_cast<Index>(total), g, src, dst);
  return detail::launch_status("strided_copy");
}

// Element (outer…, i_p, i_q): src offset outer_src + i_p + i_q·src_q, dst offset outer_dst + i_p·dst_p + i_q.
struct TransposeGeometry {
  int outer_rank;
  int64_t outer_extent[kLayoutMaxRank];
  int64_t outer_src[kLayoutMaxRank];
  int64_t outer_dst[kLayoutMaxRank];
  int64_t outer_count;
  int64_t extent_p, extent_q, src_q, dst_p;
};

__global__ void transpose_copy_kernel(TransposeGeometry g, const float* src, float* dst) {
  __shared__ float tile[kTile][kTile + 1];  // [q − q0][p − p0]
  const int64_t tiles_p = (g.extent_p + kTile - 1) / kTile, tiles_q = (g.extent_q + kTile - 1) / kTile;
  for (int64_t outer = blockIdx.z; outer < g.outer_count; outer += gridDim.z) {
    int64_t rest = outer, src_base = 0, dst_base = 0;
    for (int d = g.outer_rank - 1; d >= 0; --d) {
      const int64_t position = rest % g.outer_extent[d];
      rest /= g.outer_extent[d];
      src_base += position * g.outer_src[d];
      dst_base += position * g.outer_dst[d];
    }
    for (int64_t tp = blockIdx.y; tp < tiles_p; tp += gridDim.y) {
      for (int64_t tq = blockIdx.x; tq < tiles_q; tq += gridDim.x) {
        const int64_t p0 = tp * kTile, q0 = tq * kTile;
        for (int row = threadIdx.y; row < kTile; row += kTileRows) {  // read along p (source-contiguous)
          const int64_t p = p0 + threadIdx.x, q = q0 + row;
          if (p < g.extent_p && q < g.extent_q) tile[row][threadIdx.x] = src[src_base + q * g.src_q + p];
        }
        __syncthreads();
        for (int row = threadIdx.y; row < kTile; row += kTileRows) {  // write along q (destination-contiguous)
          const int64_t p = p0 + row, q = q0 + threadIdx.x;
          if (p < g.extent_p && q < g.extent_q) dst[dst_base + p * g.dst_p + q] = tile[threadIdx.x][row];
        }
        __syncthreads();
      }
    }
  }
}

Status launch_transpose_copy(int rank, const Dim* dims, int p, const float* src, float* dst) {
  const int q = rank - 1;
  TransposeGeometry g{};
  g.outer_count = 1;
  for (int d = 0; d < q; ++d) {
    if (d == p) continue;
    g.outer_extent[g.outer_rank] = dims[d].extent;
    g.outer_src[g.outer_rank] = dims[d].src;
    g.outer_dst[g.outer_rank] = dims[d].dst;
    ++g.outer_rank;
    g.outer_count *= dims[d].extent;
  }
  g.extent_p = dims[p].extent;
  g.extent_q = dims[q].extent;
  g.src_q = dims[q].src;
  g.dst_p = dims[p].dst;
  const int64_t tiles_p = (g.extent_p + kTile - 1) / kTile, tiles_q = (g.extent_q + kTile - 1) / kTile;
  const dim3 grid(static_cast<unsigned int>(std::min<int64_t>(tiles_q, 65535)),
                  static_cast<unsigned int>(std::min<int64_t>(tiles_p, 65535)),
                  static_cast<unsigned int>(std::min<int64_t>(g.outer_count, 65535)));
  transpose_copy_kernel<<<grid, dim3(kTile, kTileRows)>>>(g, src, dst);
  return detail::launch_status("strided_copy");
}

bool checked_span(int rank, const Dim* dims, bool use_dst, int64_t* span) {
  int64_t total = 0;
  for (int d = 0; d < rank; ++d) {
    int64_t term = 0;
    if (__builtin_mul_overflow(dims[d].extent - 1, use_dst ? dims[d].dst : dims[d].src, &term)) return false;
    if (__builtin_add_overflow(total, term, &total)) return false;
  }
  *span = total;
  return true;
}

// ---- index_select / index_add --------------------------------------------------------------------

Status check_indices(int64_t n, int64_t k, const int32_t* indices) {
  for (int64_t j = 0; j < k; ++j) {
    if (indices[j] < 0 || indices[j] >= n) {
      return invalid_argument("index " + std::to_string(indices[j]) + " at position " + std::to_string(j) +
                              " is out of range for a dimension of size " + std::to_string(n));
    }
  }
  return Status::ok();
}

template <typename Index>
__global__ void index_select_kernel(Index total, Index n, Index k, Index inner, const float* x, const int32_t* indices,
                                    float* out) {
  const Index stride = Index(gridDim.x) * blockDim.x;
  for (Index e = Index(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const Index row = e / inner, t = e - row * inner;
    const Index o = row / k, j = row - o * k;
    out[e] = x[(o * n + static_cast<Index>(indices[j])) * inner + t];
  }
}

// start[r]..start[r+1]: the positions in `order` of the j with idx[j] == r, in increasing j.
template <typename Index>
__global__ void index_add_kernel(Index total, Index n, Index k, Index inner, const float* grad, const int64_t* start,
                                 const int64_t* order, float* out) {
  const Index stride = Index(gridDim.x) * blockDim.x;
  for (Index e = Index(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const Index row = e / inner, t = e - row * inner;
    const Index o = row / n, r = row - o * n;
    const int64_t first = start[r], stop = start[r + 1];
    if (first == stop) {
      out[e] = 0.0f;
      continue;
    }
    const float* base = grad + o * k * inner + t;
    float sum = base[static_cast<Index>(order[first]) * inner];  // the CPU copies the first row, then adds
    for (int64_t c = first + 1; c < stop; ++c) sum += base[static_cast<Index>(order[c]) * inner];
    out[e] = sum;
  }
}

}  // namespace

Status strided_copy(int rank, const int64_t* shape, const float* src, const int64_t* src_strides, float* dst,
                    const int64_t* dst_strides) {
  LMCL_CHECK_ARG(rank >= 0 && rank <= kLayoutMaxRank,
                 "rank must be 0.." + std::to_string(kLayoutMaxRank) + ", got " + std::to_string(rank));
  int64_t total = 1;
  for (int d = 0; d < rank; ++d) {
    LMCL_CHECK_ARG(shape[d] >= 0, "negative extent in shape");
    LMCL_CHECK_ARG(src_strides[d] >= 0 && dst_strides[d] >= 0, "negative stride");
    if (__builtin_mul_overflow(total, shape[d], &total)) return invalid_argument("box too large");
  }
  if (total == 0) return Status::ok();

  // Keep the dimensions that matter, outermost destination stride first (stable for ties).
  Dim dims[kLayoutMaxRank];
  int kept = 0;
  for (int d = 0; d < rank; ++d) {
    if (shape[d] != 1) dims[kept++] = Dim{shape[d], src_strides[d], dst_strides[d]};
  }
  if (kept == 0) return copy_device_to_device(dst, src, sizeof(float));  // one element
  std::stable_sort(dims, dims + kept, [](const Dim& a, const Dim& b) { return a.dst > b.dst; });

  // The destination must not overlap itself: ascending by stride, each stride must clear the span
  // of the smaller ones (then every element has its own address).
  int64_t src_span = 0, dst_span = 0;
  {
    int64_t reach = 0;
    for (int d = kept - 1; d >= 0; --d) {
      LMCL_CHECK_ARG(dims[d].dst > reach, "destination strides overlap (each element must be written once)");
      int64_t term = 0;
      if (__builtin_mul_overflow(dims[d].extent - 1, dims[d].dst, &term) || __builtin_add_overflow(reach, term, &reach)) {
        return invalid_argument("destination span overflows");
      }
    }
    dst_span = reach;
    LMCL_CHECK_ARG(checked_span(kept, dims, false, &src_span), "source span overflows");
  }

  // Merge neighbours that are contiguous in both operands.
  int rank_merged = 0;
  for (int d = 0; d < kept; ++d) {
    if (rank_merged > 0) {
      Dim& previous = dims[rank_merged - 1];
      if (previous.src == dims[d].extent * dims[d].src && previous.dst == dims[d].extent * dims[d].dst) {
        previous = Dim{previous.extent * dims[d].extent, dims[d].src, dims[d].dst};
        continue;
      }
    }
    dims[rank_merged++] = dims[d];
  }

  const int last = rank_merged - 1;
  if (dims[last].dst == 1 && dims[last].src != 1 && dims[last].extent >= kTransposeMinExtent) {
    for (int p = last - 1; p >= 0; --p) {
      if (dims[p].src == 1) {
        if (dims[p].extent >= kTransposeMinExtent) return launch_transpose_copy(rank_merged, dims, p, src, dst);
        break;
      }
    }
  }
  if (total <= kInt32Limit && src_span <= kInt32Limit && dst_span <= kInt32Limit)
    return launch_strided_copy<uint32_t>(rank_merged, dims, total, src, dst);
  return launch_strided_copy<int64_t>(rank_merged, dims, total, src, dst);
}

Status index_select(int64_t outer, int64_t n, int64_t inner, const float* x, int64_t k, IndexArray indices,
                    float* out) {
  LMCL_CHECK_ARG(outer >= 0 && n >= 0 && inner >= 0 && k >= 0, "negative extent");
  LMCL_RETURN_IF_ERROR(check_indices(n, k, indices.host));  // before any work
  const int64_t rows = outer * k;
  if (rows == 0 || inner == 0) return Status::ok();
  const int64_t total = rows * inner;
  if (total <= kInt32Limit && outer * n * inner <= kInt32Limit) {
    index_select_kernel<uint32_t><<<detail::blocks_for(total), kThreads>>>(
        uint32_t(total), uint32_t(n), uint32_t(k), uint32_t(inner), x, indices.device, out);
  } else {
    index_select_kernel<int64_t><<<detail::blocks_for(total), kThreads>>>(total, n, k, inner, x, indices.device, out);
  }
  return detail::launch_status("index_select");
}

Status index_add(int64_t outer, int64_t n, int64_t inner, const float* grad, int64_t k, IndexArray indices,
                 float* out) {
  LMCL_CHECK_ARG(outer >= 0 && n >= 0 && inner >= 0 && k >= 0, "negative extent");
  LMCL_RETURN_IF_ERROR(check_indices(n, k, indices.host));
  const int64_t rows = outer * n;
  if (rows == 0 || inner == 0) return Status::ok();
  // The CPU's stable counting sort, on the host: table = [start (n + 1) | order (k)].
  std::vector<int64_t> table, cursor;
  try {
    table.assign(static_cast<size_t>(n + 1 + k), 0);
    cursor.resize(static_cast<size_t>(n));
  } catch (const std::bad_alloc&) {
    return out_of_memory("index_add: no memory for the index table");
  }
  int64_t* start = table.data();
  int64_t* order = start + n + 1;
  for (int64_t j = 0; j < k; ++j) ++start[indices.host[j] + 1];
  for (int64_t r = 0; r < n; ++r) start[r + 1] += start[r];
  std::copy(start, start + n, cursor.begin());
  for (int64_t j = 0; j < k; ++j) order[cursor[indices.host[j]]++] = j;
  const size_t table_bytes = table.size() * sizeof(int64_t);
  detail::DeviceScratch device_table(table_bytes);
  LMCL_RETURN_IF_ERROR(device_table.upload(table.data(), table_bytes));
  const int64_t* device_start = device_table.longs();
  const int64_t* device_order = device_start + n + 1;
  const int64_t total = rows * inner;
  if (total <= kInt32Limit && outer * k * inner <= kInt32Limit) {
    index_add_kernel<uint32_t><<<detail::blocks_for(total), kThreads>>>(
        uint32_t(total), uint32_t(n), uint32_t(k), uint32_t(inner), grad, device_start, device_order, out);
  } else {
    index_add_kernel<int64_t><<<detail::blocks_for(total), kThreads>>>(total, n, k, inner, grad, device_start, device_order,
                                                                         out);
  }
  return detail::launch_status("index_add");
}

}  // namespace cuda
}  // namespace lmcl
