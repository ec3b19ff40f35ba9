// Sum reductions over a set of axes (mean is a sum times 1/count, done by the caller).
// See native/src/cpu/reduce.cpp.
#pragma once

#include <cstdint>

#include "lmcl/status.h"

namespace lmcl {

namespace cpu {

// out = sum of x over the axes where reduce_axis[d] != 0. x is contiguous with `shape`
// (rank <= 8); out is contiguous with the kept extents in order (size = product of kept extents).
Status sum_axes(int rank, const int64_t* shape, const uint8_t* reduce_axis, const float* x, float* out);

}  // namespace cpu

}  // namespace lmcl
