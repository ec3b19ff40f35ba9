// 2-D pooling (CPU). Contracts in include/lmcl/pool.h.
//
// Layout: planes of [H, W] row-major float32 (NCHW = N·C planes); outputs [planes, out_h, out_w].
//   avg:      out[oh, ow] = Σ_{h,w ∈ window ∩ input} x[h, w] · (1/(kh·kw))   (count_include_pad)
//   max:      out[oh, ow] = max_{h,w ∈ window ∩ input} x[h, w], argmax = h·W + w (int32); the
//             window is visited in row-major order taking v when v > best or v is NaN (PyTorch's
//             rule: first maximum wins ties, NaN propagates)
//   adaptive: bin rows [⌊i·H/oh⌋, ⌈(i+1)·H/oh⌉), columns likewise; out = mean over the bin
// with window rows [oh·sh − ph, oh·sh − ph + kh). Backward: avg/adaptive distribute grad/area
// over the window; max scatters grad to the argmax; gather reads back at the argmax (the adjoint
// of the scatter, used for second-order gradients).
// Windowed pools work one output row at a time: for each window offset (h, kw) one strided,
// vectorisable pass over the outputs whose window contains that column (ranges precomputed per
// call), so every output still sees its window in row-major order.
// Threading: over planes (fixed chunks). Every plane is written by one thread in a fixed order
// (backward scatters accumulate within the plane), so results never depend on the thread count.
// The global-average case (adaptive to 1×1) sums a plane in 16 float lanes per 1024-element chunk,
// chunks combined in double.
// Tested against the float64 reference test/reference/pool_reference.ts in test/ops/pool.test.ts;
// semantics also cross-checked once against PyTorch 1.13 (float64) on random inputs.
#include "lmcl/pool.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
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

constexpr int64_t kGrainElements = 1 << 14;

int64_t plane_grain(int64_t plane_elements) {
  return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, plane_elements));
}

std::string describe(const Pool2dShape& s) {
  return "planes " + std::to_string(s.planes) + ", input " + describe_shape({s.in_h, s.in_w}) + ", kernel " +
         describe_shape({s.kernel_h, s.kernel_w}) + ", stride " + describe_shape({s.stride_h, s.stride_w}) +
         ", padding " + describe_shape({s.pad_h, s.pad_w});
}

LMCL_CLONES double plane_sum(const float* __restrict x, int64_t length) {
  double total = 0.0;
  for (int64_t start = 0; start < length; start += 1024) {
    const int64_t end = std::min<int64_t>(length, start + 1024);
    float lanes[16] = {0};
    int64_t i = start;
    for (; i + 16 <= end; i += 16)
      for (int lane = 0; lane < 16; ++lane) lanes[lane] += x[i + lane];
    float tail = 0.0f;
    for (; i < end; ++i) tail += x[i];
    for (int width = 8; width >= 1; width /= 2)
      for (int lane = 0; lane < width; ++lane) lanes[lane] += lanes[lane + width];
    total += static_cast<double>(lanes[0]) + static_cast<double>(tail);
  }
  return total;
}

LMCL_CLONES void fill_row(float* __restrict out, int64_t length, float value) {
  for (int64_t i = 0; i < length; ++i) out[i] = value;
}

// Clamped window [begin, end) along one axis.
inline void window(int64_t o, int64_t stride, int64_t pad, int64_t kernel, int64_t extent, int64_t* begin,
                   int64_t* end) {
  const int64_t start = o * stride - pad;
  *begin = std::max<int64_t>(start, 0);
  *end = std::min<int64_t>(start + kernel, extent);
}

// Output columns [lo, hi) whose window column kw lies inside the input: 0 <= ow·s + kw − p < W.
inline void column_range(int64_t kw, int64_t stride, int64_t pad, int64_t width, int64_t out_w, int64_t* lo,
                         int64_t* hi) {
  const int64_t low = pad - kw;             // need ow·stride >= low
  const int64_t high = width - 1 + pad - kw;  // need ow·stride <= high
  *lo = low <= 0 ? 0 : (low + stride - 1) / stride;
  *hi = high < 0 ? 0 : std::min(out_w, high / stride + 1);
  if (*lo > *hi) *lo = *hi;
}

// column_range for every kw, computed once per call: [lo_0, hi_0, lo_1, hi_1, ...].
class ColumnRanges {
 public:
  explicit ColumnRanges(const Pool2dShape& s) : buffer_(static_cast<size_t>(2 * s.kernel_w) * sizeof(int64_t)) {
    if (!buffer_.ok()) return;
    int64_t* r = data();
    for (int64_t kw = 0; kw < s.kernel_w; ++kw) column_range(kw, s.stride_w, s.pad_w, s.in_w, s.out_w(), &r[2 * kw], &r[2 * kw + 1]);
  }
  bool ok() const { return buffer_.ok(); }
  int64_t* data() const { return static_cast<int64_t*>(buffer_.data()); }

 private:
  ScratchBuffer buffer_;
};

// acc[i] += src[i·stride]
inline __attribute__((always_inline)) void strided_add(float* __restrict acc, const float* __restrict src, int64_t stride, int64_t count) {
  if (stride == 1) {
    for (int64_t i = 0; i < count; ++i) acc[i] += src[i];
  } else {
    for (int64_t i = 0; i < count; ++i) acc[i] += src[i * stride];
  }
}

// dst[i·stride] += g[i]·inverse_area
inline __attribute__((always_inline)) void strided_scatter_add(float* __restrict dst, int64_t stride, const float* __restrict g, float inverse_area,
                                     int64_t count) {
  if (stride == 1) {
    for (int64_t i = 0; i < count; ++i) dst[i] += g[i] * inverse_area;
  } else {
    for (int64_t i = 0; i < count; ++i) dst[i * stride] += g[i] * inverse_area;
  }
}

inline __attribute__((always_inline)) void scale_row(float* __restrict row, int64_t length, float scale) {
  for (int64_t i = 0; i < length; ++i) row[i] = row[i] * scale;
}

// All ones when v replaces best (v > best, or v is NaN: PyTorch's rule), else 0. Written with
// bitwise ops so that the scalar remainder loops stay branch-free (random data would mispredict).
inline __attribute__((always_inline)) uint32_t take_mask(float v, float best) {
  return 0u - static_cast<uint32_t>((v > best) | (v != v));
}

inline __attribute__((always_inline)) float select(uint32_t mask, float a, float b) {
  uint32_t ua, ub;
  std::memcpy(&ua, &a, 4);
  std::memcpy(&ub, &b, 4);
  const uint32_t bits = (ua & mask) | (ub & ~mask);
  float result;
  std::memcpy(&result, &bits, 4);
  return result;
}

// best[i] = max(best[i], src[i·stride]) with NaN winning (PyTorch: take when v > best or v is NaN).
template <int64_t kStride>
inline __attribute__((always_inline)) void strided_max_fixed(float* __restrict best, const float* __restrict src,
                                                            int64_t stride, int64_t count) {
  const int64_t step = kStride > 0 ? kStride : stride;
  for (int64_t i = 0; i < count; ++i) {
    const float v = src[i * step];
    best[i] = select(take_mask(v, best[i]), v, best[i]);
  }
}

inline __attribute__((always_inline)) void strided_max(float* __restrict best, const float* __restrict src,
                                                      int64_t stride, int64_t count) {
  if (stride == 1) strided_max_fixed<1>(best, src, stride, count);
  else strided_max_fixed<0>(best, src, stride, count);
}

// The same, also tracking the argmax: index[i] = first + i·stride where taken.
template <int64_t kStride>
inline __attribute__((always_inline)) void strided_max_index_fixed(float* __restrict best, int32_t* __restrict index,
                                                                  const float* __restrict src, int64_t stride,
                                                                  int64_t count, int32_t first) {
  const int64_t step = kStride > 0 ? kStride : stride;
  for (int64_t i = 0; i < count; ++i) {
    const float v = src[i * step];
    const uint32_t mask = take_mask(v, best[i]);
    best[i] = select(mask, v, best[i]);
    index[i] = static_cast<int32_t>((static_cast<uint32_t>(first + static_cast<int32_t>(i * step)) & mask) |
                                    (static_cast<uint32_t>(index[i]) & ~mask));
  }
}

inline __attribute__((always_inline)) void strided_max_index(float* __restrict best, int32_t* __restrict index,
                                                            const float* __restrict src, int64_t stride, int64_t count,
                                                            int32_t first) {
  if (stride == 1) strided_max_index_fixed<1>(best, index, src, stride, count, first);
  else strided_max_index_fixed<0>(best, index, src, stride, count, first);
}

// ---- one plane at a time, compiled per ISA --------------------------------------------------

LMCL_CLONES void avg_plane_forward(const Pool2dShape& s, const int64_t* ranges, const float* plane, float* out) {
  const int64_t H = s.in_h, W = s.in_w, OH = s.out_h(), OW = s.out_w();
  const float inverse_area = static_cast<float>(1.0 / static_cast<double>(s.kernel_h * s.kernel_w));
  for (int64_t oh = 0; oh < OH; ++oh) {
    float* row = out + oh * OW;
    int64_t h0, h1;
    window(oh, s.stride_h, s.pad_h, s.kernel_h, H, &h0, &h1);
    for (int64_t i = 0; i < OW; ++i) row[i] = 0.0f;
    // Each output sums its window in row-major order (h, then kw).
    for (int64_t h = h0; h < h1; ++h) {
      for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
        const int64_t lo = ranges[2 * kw], hi = ranges[2 * kw + 1];
        if (lo < hi) strided_add(row + lo, plane + h * W + lo * s.stride_w + kw - s.pad_w, s.stride_w, hi - lo);
      }
    }
    scale_row(row, OW, inverse_area);
  }
}

LMCL_CLONES void avg_plane_backward(const Pool2dShape& s, const int64_t* ranges, const float* grad_out, float* plane) {
  const int64_t H = s.in_h, W = s.in_w, OH = s.out_h(), OW = s.out_w();
  const float inverse_area = static_cast<float>(1.0 / static_cast<double>(s.kernel_h * s.kernel_w));
  for (int64_t i = 0; i < H * W; ++i) plane[i] = 0.0f;
  for (int64_t oh = 0; oh < OH; ++oh) {
    const float* g = grad_out + oh * OW;
    int64_t h0, h1;
    window(oh, s.stride_h, s.pad_h, s.kernel_h, H, &h0, &h1);
    for (int64_t h = h0; h < h1; ++h) {
      for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
        const int64_t lo = ranges[2 * kw], hi = ranges[2 * kw + 1];
        if (lo < hi) strided_scatter_add(plane + h * W + lo * s.stride_w + kw - s.pad_w, s.stride_w, g + lo, inverse_area, hi - lo);
      }
    }
  }
}

// Validation guarantees non-empty windows (2·pad <= kernel, in + 2·pad >= kernel). The candidates
// of each output are visited in row-major window order (h, then kw), so the first maximum wins
// ties; the initial index is the window's first valid element (as in PyTorch).
LMCL_CLONES void max_plane_forward(const Pool2dShape& s, const int64_t* ranges, const float* plane, float* out,
                                   int32_t* indices) {
  const int64_t H = s.in_h, W = s.in_w, OH = s.out_h(), OW = s.out_w();
  for (int64_t oh = 0; oh < OH; ++oh) {
    float* row = out + oh * OW;
    int32_t* index_row = indices ? indices + oh * OW : nullptr;
    int64_t h0, h1;
    window(oh, s.stride_h, s.pad_h, s.kernel_h, H, &h0, &h1);
    for (int64_t i = 0; i < OW; ++i) row[i] = -std::numeric_limits<float>::infinity();
    if (index_row) {
      for (int64_t ow = 0; ow < OW; ++ow) {
        index_row[ow] = static_cast<int32_t>(h0 * W + std::max<int64_t>(ow * s.stride_w - s.pad_w, 0));
      }
    }
    for (int64_t h = h0; h < h1; ++h) {
      for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
        const int64_t lo = ranges[2 * kw], hi = ranges[2 * kw + 1];
        if (lo >= hi) continue;
        const int64_t first = h * W + lo * s.stride_w + kw - s.pad_w;
        if (index_row) strided_max_index(row + lo, index_row + lo, plane + first, s.stride_w, hi - lo, static_cast<int32_t>(first));
        else strided_max(row + lo, plane + first, s.stride_w, hi - lo);
      }
    }
  }
}

inline int64_t bin_begin(int64_t o, int64_t in, int64_t out) { return (o * in) / out; }
inline int64_t bin_end(int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; }

}  // namespace

}  // namespace cpu

Status validate_pool2d_shape(const Pool2dShape& s) {
  LMCL_CHECK_ARG(s.planes >= 0 && s.in_h >= 1 && s.in_w >= 1, "invalid input extents (" + cpu::describe(s) + ")");
  LMCL_CHECK_ARG(s.kernel_h >= 1 && s.kernel_w >= 1, "kernel must be >= 1 (" + cpu::describe(s) + ")");
  LMCL_CHECK_ARG(s.stride_h >= 1 && s.stride_w >= 1, "stride must be >= 1 (" + cpu::describe(s) + ")");
  LMCL_CHECK_ARG(s.pad_h >= 0 && s.pad_w >= 0, "padding must be >= 0 (" + cpu::describe(s) + ")");
  LMCL_CHECK_ARG(s.kernel_h <= (int64_t(1) << 31) && s.kernel_w <= (int64_t(1) << 31) && s.in_h <= (int64_t(1) << 31) &&
                     s.in_w <= (int64_t(1) << 31),
                 "sizes too large (" + cpu::describe(s) + ")");
  LMCL_CHECK_ARG(2 * s.pad_h <= s.kernel_h && 2 * s.pad_w <= s.kernel_w,
                 "padding must be at most half the kernel size (" + cpu::describe(s) + ")");
  LMCL_CHECK_ARG(s.in_h + 2 * s.pad_h >= s.kernel_h && s.in_w + 2 * s.pad_w >= s.kernel_w,
                 "kernel larger than the padded input, output size would be < 1 (" + cpu::describe(s) + ")");
  LMCL_CHECK_ARG(s.in_h * s.in_w < (int64_t(1) << 31), "planes of 2^31 or more elements are not supported (" + cpu::describe(s) + ")");
  LMCL_CHECK_ARG(static_cast<double>(s.planes) * static_cast<double>(s.in_h * s.in_w) < 1.0e18, "sizes too large (" + cpu::describe(s) + ")");
  return Status::ok();
}

namespace cpu {

namespace {

// Validates s, builds the column ranges once, and runs body(plane, ranges) for every plane
// (threaded over planes: each plane is written by one thread, so results never depend on it).
template <typename PlaneBody>
Status for_each_plane(const Pool2dShape& s, PlaneBody body) {
  LMCL_RETURN_IF_ERROR(validate_pool2d_shape(s));
  ColumnRanges columns(s);
  if (!columns.ok()) return out_of_memory("pool2d: out of memory for the column ranges");
  const int64_t* ranges = columns.data();
  parallel_for(0, s.planes, plane_grain(s.in_h * s.in_w), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) body(p, ranges);
  });
  return Status::ok();
}

}  // namespace

Status avg_pool2d_forward(const Pool2dShape& s, const float* x, float* out) {
  const int64_t plane_in = s.in_h * s.in_w, plane_out = s.out_h() * s.out_w();
  return for_each_plane(s, [&](int64_t p, const int64_t* ranges) {
    avg_plane_forward(s, ranges, x + p * plane_in, out + p * plane_out);
  });
}

Status avg_pool2d_backward(const Pool2dShape& s, const float* grad_out, float* grad_in) {
  const int64_t plane_in = s.in_h * s.in_w, plane_out = s.out_h() * s.out_w();
  return for_each_plane(s, [&](int64_t p, const int64_t* ranges) {
    avg_plane_backward(s, ranges, grad_out + p * plane_out, grad_in + p * plane_in);
  });
}

Status max_pool2d_forward(const Pool2dShape& s, const float* x, float* out, int32_t* indices) {
  const int64_t plane_in = s.in_h * s.in_w, plane_out = s.out_h() * s.out_w();
  return for_each_plane(s, [&](int64_t p, const int64_t* ranges) {
    max_plane_forward(s, ranges, x + p * plane_in, out + p * plane_out, indices ? indices + p * plane_out : nullptr);
  });
}

Status max_pool2d_backward(const Pool2dShape& s, const float* grad_out, const int32_t* indices, float* grad_in) {
  LMCL_RETURN_IF_ERROR(validate_pool2d_shape(s));
  const int64_t H = s.in_h, W = s.in_w, plane_out = s.out_h() * s.out_w();
  const int64_t limit = H * W;
  std::atomic<bool> bad_index{false};
  parallel_for(0, s.planes, plane_grain(H * W), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float* plane = grad_in + p * H * W;
      const float* g = grad_out + p * plane_out;
      const int32_t* index = indices + p * plane_out;
      std::memset(plane, 0, sizeof(float) * H * W);
      for (int64_t o = 0; o < plane_out; ++o) {
        const int64_t i = index[o];
        if (i < 0 || i >= limit) {
          bad_index.store(true, std::memory_order_relaxed);
          continue;
        }
        plane[i] += g[o];
      }
    }
  });
  LMCL_CHECK_ARG(!bad_index.load(), "argmax indices out of range for a plane of " + std::to_string(limit) + " elements");
  return Status::ok();
}

Status max_pool2d_gather(const Pool2dShape& s, const float* source, const int32_t* indices, float* out) {
  LMCL_RETURN_IF_ERROR(validate_pool2d_shape(s));
  const int64_t H = s.in_h, W = s.in_w, plane_out = s.out_h() * s.out_w();
  const int64_t limit = H * W;
  std::atomic<bool> bad_index{false};
  parallel_for(0, s.planes, plane_grain(H * W), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float* plane = source + p * H * W;
      const int32_t* index = indices + p * plane_out;
      float* o = out + p * plane_out;
      for (int64_t k = 0; k < plane_out; ++k) {
        const int64_t i = index[k];
        if (i < 0 || i >= limit) {
          bad_index.store(true, std::memory_order_relaxed);
          o[k] = 0.0f;
          continue;
        }
        o[k] = plane[i];
      }
    }
  });
  LMCL_CHECK_ARG(!bad_index.load(), "argmax indices out of range for a plane of " + std::to_string(limit) + " elements");
  return Status::ok();
}

}  // namespace cpu

Status validate_adaptive_pool2d_shape(const AdaptivePool2dShape& s) {
  const std::string text = "planes " + std::to_string(s.planes) + ", input " + describe_shape({s.in_h, s.in_w}) +
                           ", output " + describe_shape({s.out_h, s.out_w});
  LMCL_CHECK_ARG(s.planes >= 0 && s.in_h >= 1 && s.in_w >= 1, "invalid input extents (" + text + ")");
  LMCL_CHECK_ARG(s.out_h >= 1 && s.out_w >= 1, "output size must be >= 1 (" + text + ")");
  LMCL_CHECK_ARG(s.in_h <= (int64_t(1) << 31) && s.in_w <= (int64_t(1) << 31) && s.out_h <= (int64_t(1) << 31) &&
                     s.out_w <= (int64_t(1) << 31),
                 "sizes too large (" + text + ")");
  LMCL_CHECK_ARG(static_cast<double>(s.planes) * static_cast<double>(s.in_h * s.in_w) < 4.0e18 &&
                     static_cast<double>(s.planes) * static_cast<double>(s.out_h * s.out_w) < 4.0e18,
                 "sizes too large (" + text + ")");
  return Status::ok();
}

namespace cpu {

Status adaptive_avg_pool2d_forward(const AdaptivePool2dShape& s, const float* x, float* out) {
  LMCL_RETURN_IF_ERROR(validate_adaptive_pool2d_shape(s));
  const int64_t H = s.in_h, W = s.in_w, OH = s.out_h, OW = s.out_w;
  if (OH == 1 && OW == 1) {  // global average pooling
    const double inverse = 1.0 / static_cast<double>(H * W);
    parallel_for(0, s.planes, plane_grain(H * W), [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) out[p] = static_cast<float>(plane_sum(x + p * H * W, H * W) * inverse);
    });
    return Status::ok();
  }
  parallel_for(0, s.planes, plane_grain(H * W), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float* plane = x + p * H * W;
      float* o = out + p * OH * OW;
      for (int64_t oh = 0; oh < OH; ++oh) {
        const int64_t h0 = bin_begin(oh, H, OH), h1 = bin_end(oh, H, OH);
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t w0 = bin_begin(ow, W, OW), w1 = bin_end(ow, W, OW);
          float sum = 0.0f;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) sum += plane[h * W + w];
          o[oh * OW + ow] = sum / static_cast<float>((h1 - h0) * (w1 - w0));
        }
      }
    }
  });
  return Status::ok();
}

Status adaptive_avg_pool2d_backward(const AdaptivePool2dShape& s, const float* grad_out, float* grad_in) {
  LMCL_RETURN_IF_ERROR(validate_adaptive_pool2d_shape(s));
  const int64_t H = s.in_h, W = s.in_w, OH = s.out_h, OW = s.out_w;
  if (OH == 1 && OW == 1) {
    const float area = static_cast<float>(H * W);
    parallel_for(0, s.planes, plane_grain(H * W), [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) fill_row(grad_in + p * H * W, H * W, grad_out[p] / area);
    });
    return Status::ok();
  }
  parallel_for(0, s.planes, plane_grain(H * W), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      float* plane = grad_in + p * H * W;
      const float* g = grad_out + p * OH * OW;
      std::memset(plane, 0, sizeof(float) * H * W);
      for (int64_t oh = 0; oh < OH; ++oh) {
        const int64_t h0 = bin_begin(oh, H, OH), h1 = bin_end(oh, H, OH);
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t w0 = bin_begin(ow, W, OW), w1 = bin_end(ow, W, OW);
          const float value = g[oh * OW + ow] / static_cast<float>((h1 - h0) * (w1 - w0));
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) plane[h * W + w] += value;
        }
      }
    }
  });
  return Status::ok();
}

}  // namespace cpu
}  // namespace lmcl
