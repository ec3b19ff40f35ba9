// Layout kernels: one strided n-d box copy (serves permute/transpose, concat, slice and
// slice-backward) and the row gather / deterministic row scatter-add behind indexSelect.
// Float32. Kernels overwrite their outputs. See native/src/cpu/layout.cpp.
#pragma once

#include <cstdint>

#include "lmcl/index_array.h"
#include "lmcl/status.h"

namespace lmcl {

constexpr int kLayoutMaxRank = 8;

namespace cpu {

// For every index i in the box `shape` (rank <= kLayoutMaxRank):
//   dst[Σ_d i_d·dst_strides[d]] = src[Σ_d i_d·src_strides[d]].
// Strides are in elements and must be >= 0; src and dst are already offset to the box origin.
// dst must not overlap itself (checked) and must not overlap src (the caller's duty). The
// innermost contiguous run is copied with memcpy; a box whose source is contiguous along another
// dimension than the destination (a transpose) is copied in cache tiles.
Status strided_copy(int rank, const int64_t* shape, const float* src, const int64_t* src_strides, float* dst,
                    const int64_t* dst_strides);

// x viewed as [outer, n, inner], out as [outer, k, inner]:
//   out[o, j, :] = x[o, indices[j], :]           (0 <= indices[j] < n, checked)
Status index_select(int64_t outer, int64_t n, int64_t inner, const float* x, int64_t k, IndexArray indices,
                    float* out);

// grad viewed as [outer, k, inner], out as [outer, n, inner] (overwritten):
//   out[o, r, :] = Σ_{j : indices[j] = r, in increasing j} grad[o, j, :]   (0 where no j hits r)
// Deterministic: each output row sums its contributions in index order, whatever the threads.
Status index_add(int64_t outer, int64_t n, int64_t inner, const float* grad, int64_t k, IndexArray indices,
                 float* out);

}  // namespace cpu

}  // namespace lmcl
