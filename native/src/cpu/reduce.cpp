// Sum over axes (CPU).
//
//   out[k] = Σ_{r} x[k ⊕ r], k over the kept axes, r over the reduced axes, in row-major order.
//
// Adjacent axes of the same kind are merged first, so the common cases become
//   [outer, R]        → row sums (a fixed-shape pairwise-ish 8-lane accumulation per row),
//   [R, inner]        → column sums (accumulate rows into the output vector),
//   [outer, R, inner] → both,
// Anything else uses an odometer loop per output; when the innermost axis is reduced (e.g.
// [R, C, R] of batchnorm) it sums contiguous innermost runs with row_sum instead of elements.
// Determinism: each output element is summed in a fixed order by one thread; the split over
// threads is over output elements only, so the bits never depend on the thread count.
// Float32 accumulation in several lanes keeps the error ~sqrt(R)·eps for long rows.
// Tested against float64 references in test/ops/reduce.test.ts.
#include "lmcl/reduce.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "lmcl/elementwise.h"
#include "lmcl/parallel.h"

namespace lmcl {
namespace cpu {
namespace {

// Sum of a contiguous row in 16 independent lanes (vectorisable, fixed order).
inline float row_sum(const float* x, int64_t length) {
  float lanes[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= length; i += 16)
    for (int lane = 0; lane < 16; ++lane) lanes[lane] += x[i + lane];
  float tail = 0.0f;
  for (; i < length; ++i) tail += x[i];
  for (int width = 8; width >= 1; width /= 2)
    for (int lane = 0; lane < width; ++lane) lanes[lane] += lanes[lane + width];
  return lanes[0] + tail;
}

}  // namespace

Status sum_axes(int rank, const int64_t* shape, const uint8_t* reduce_axis, const float* x, float* out) {
  LMCL_CHECK_ARG(rank >= 0 && rank <= kMaxRank, "rank must be 0.." + std::to_string(kMaxRank));
  // Merge adjacent axes of the same kind; drop extent-1 axes.
  std::vector<int64_t> extents;
  std::vector<bool> reduced;
  int64_t out_count = 1, total = 1;
  for (int d = 0; d < rank; ++d) {
    LMCL_CHECK_ARG(shape[d] >= 0, "negative extent");
    total *= shape[d];
    if (!reduce_axis[d]) out_count *= shape[d];
    if (shape[d] == 1) continue;
    bool is_reduced = reduce_axis[d] != 0;
    if (!extents.empty() && reduced.back() == is_reduced) extents.back() *= shape[d];
    else {
      extents.push_back(shape[d]);
      reduced.push_back(is_reduced);
    }
  }
  if (out_count == 0) return Status::ok();
  if (total == 0) {
    std::fill(out, out + out_count, 0.0f);
    return Status::ok();
  }
  const size_t dims = extents.size();
  if (dims == 0 || (dims == 1 && !reduced[0])) {  // nothing to reduce
    std::memcpy(out, x, sizeof(float) * out_count);
    return Status::ok();
  }
  if (dims == 1 && reduced[0]) {  // full reduction: 16-lane chunks by fixed blocks, combined in order
    const int64_t block = 1 << 16;
    const int64_t blocks = (extents[0] + block - 1) / block;
    std::vector<float> partial(blocks);
    parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) partial[b] = row_sum(x + b * block, std::min(block, extents[0] - b * block));
    });
    float sum = 0.0f;
    for (float value : partial) sum += value;
    out[0] = sum;
    return Status::ok();
  }
  // Pattern [outer?, R, inner?]
  if (dims <= 3) {
    int64_t outer = 1, length = 1, inner = 1;
    bool matches = true;
    if (dims == 2) {
      if (reduced[0]) { length = extents[0]; inner = extents[1]; }
      else { outer = extents[0]; length = extents[1]; }
    } else if (dims == 3) {
      if (!reduced[0] && reduced[1] && !reduced[2]) { outer = extents[0]; length = extents[1]; inner = extents[2]; }
      else matches = false;
    }
    if (matches) {
      if (inner == 1) {
        parallel_for(0, outer, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, length)), [&](int64_t begin, int64_t end) {
          for (int64_t o = begin; o < end; ++o) out[o] = row_sum(x + o * length, length);
        });
      } else {
        // Split over (outer, inner column blocks); each output column summed in row order.
        const int64_t column_block = 256;
        const int64_t column_blocks = (inner + column_block - 1) / column_block;
        parallel_for(0, outer * column_blocks, 1, [&](int64_t begin, int64_t end) {
          for (int64_t task = begin; task < end; ++task) {
            int64_t o = task / column_blocks, c0 = (task % column_blocks) * column_block;
            int64_t c1 = std::min(inner, c0 + column_block);
            float* destination = out + o * inner;
            const float* source = x + o * length * inner;
            for (int64_t c = c0; c < c1; ++c) destination[c] = 0.0f;
            for (int64_t r = 0; r < length; ++r) {
              const float* row = source + r * inner;
              for (int64_t c = c0; c < c1; ++c) destination[c] += row[c];
            }
          }
        });
      }
      return Status::ok();
    }
  }
  // Everything else: per output element (odometer over the kept axes), the reduced positions in
  // row-major order. When the innermost axis is reduced (e.g. [R, C, R]: batchnorm's per-channel
  // sums of NCHW over N and H·W) they come as contiguous runs summed with row_sum, so the odometer
  // steps once per run, not per element; otherwise a run is one element. The split is over outputs
  // with a grain that gives each task ~64 Ki elements.
  const bool innermost_reduced = reduced.back();
  const int64_t run = innermost_reduced ? extents.back() : 1;
  const size_t outer_dims = innermost_reduced ? dims - 1 : dims;
  std::vector<int64_t> strides(outer_dims);
  int64_t stride = run;
  for (size_t d = outer_dims; d-- > 0;) { strides[d] = stride; stride *= extents[d]; }
  std::vector<size_t> kept_axes, reduced_axes;
  for (size_t d = 0; d < outer_dims; ++d) (reduced[d] ? reduced_axes : kept_axes).push_back(d);
  // Offset of the index'th position of `axes` (row-major over those axes) from the start.
  auto offset_of = [&](int64_t index, const std::vector<size_t>& axes) {
    int64_t offset = 0;
    for (size_t i = axes.size(); i-- > 0;) {
      const size_t d = axes[i];
      offset += (index % extents[d]) * strides[d];
      index /= extents[d];
    }
    return offset;
  };
  int64_t runs = 1;
  for (size_t d : reduced_axes) runs *= extents[d];
  const int64_t per_output = runs * run;
  parallel_for(0, out_count, std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, per_output)), [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      const int64_t base = offset_of(o, kept_axes);
      float sum = 0.0f;
      for (int64_t r = 0; r < runs; ++r) {
        const float* start = x + base + offset_of(r, reduced_axes);
        sum += run == 1 ? *start : row_sum(start, run);
      }
      out[o] = sum;
    }
  });
  return Status::ok();
}

}  // namespace cpu
}  // namespace lmcl
