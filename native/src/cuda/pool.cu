// 2-D pooling (CUDA): average, max (with argmax indices) and adaptive average. The reference is
// the CPU kernel of the same name (lmcl::cpu::avg_pool2d_forward, ..., native/src/cpu/pool.cpp;
// contracts in include/lmcl/pool.h); parity cases in native/test/cases/pool.cpp.
//
// Layout: planes of [H, W] row-major float32 (NCHW = N·C planes); outputs [planes, out_h, out_w];
// argmax indices int32 h·W + w within the plane (device memory, like every operand here).
//   avg:      out = Σ_{window ∩ input} x · (1/(kh·kw))                 (count_include_pad)
//   max:      out = max_{window ∩ input} x, visited in row-major order, taking v when v > best or
//             v is NaN (first maximum wins ties, NaN propagates); argmax starts at the window's
//             first valid element
//   adaptive: bin rows [⌊i·H/oh⌋, ⌈(i+1)·H/oh⌉), columns likewise; out = mean over the bin
// Launch geometry (memory-bound: windows are small, each input read ≈ kh·kw/(sh·sw) times, from
// cache): one thread per output element for the forwards and the gather, flat grid-stride, so
// neighbouring threads read neighbouring columns. The backwards are GATHERS, one thread per input
// element: each sums over the windows (bins) that cover it, in the order the CPU's scatter adds
// them, so there are no atomics and no races, and the bits match the CPU's sums:
//   avg:      windows in (oh ascending, ow descending) order — the CPU's kw loop visits a column's
//             windows right to left; the products g·(1/area) are rounded before the add (no FMA)
//   max:      outputs o of covering windows in ascending o whose index equals this element
//   adaptive: covering bins in (oh, ow) ascending order
// Global average pooling (adaptive to 1×1): one warp per plane; each 1024-element chunk is summed
// in float (32 lanes), chunks combined in double, then a fixed xor tree (like the CPU: float
// chunks, double across).
// Index validation: the argmax arrays are device memory, so a bad index is flagged by the kernel
// (an integer atomicMax of an error code into a device word, which is order-independent) and a
// one-thread kernel turns the word into a deferred check (common.cuh): the CPU's message,
// reported at the next host read, so the backward does not wait for the queue. The gather
// backward only sees indices that lie inside their own output's window (max_pool2d_forward only
// makes those); an in-range index outside its window — which the CPU's scatter would still add —
// is reported as an invalid_argument rather than dropped silently.
#include <cmath>
#include <cstdint>
#include <string>

#include "common.cuh"
#include "lmcl/cuda_ops.h"
#include "lmcl/pool.h"

namespace lmcl {
namespace cuda {
namespace {

constexpr int kWarp = 32;

// The shape with its output extents, passed by value to the kernels.
struct Geometry {
  int64_t planes, in_h, in_w, out_h, out_w;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
};

Geometry geometry_of(const Pool2dShape& s) {
  return {s.planes, s.in_h, s.in_w, s.out_h(), s.out_w(), s.kernel_h, s.kernel_w, s.stride_h, s.stride_w, s.pad_h, s.pad_w};
}

// Clamped window [begin, end) of output o along one axis.
__device__ inline void window(int64_t o, int64_t stride, int64_t pad, int64_t kernel, int64_t extent, int64_t* begin,
                              int64_t* end) {
  const int64_t start = o * stride - pad;
  *begin = start > 0 ? start : 0;
  *end = start + kernel < extent ? start + kernel : extent;
}

// Outputs [first, last] along one axis whose window covers input position i:
// o·stride − pad <= i < o·stride − pad + kernel.
__device__ inline void covering(int64_t i, int64_t stride, int64_t pad, int64_t kernel, int64_t out, int64_t* first,
                                int64_t* last) {
  const int64_t low = i + pad - kernel + 1;  // o·stride >= low
  *first = low <= 0 ? 0 : (low + stride - 1) / stride;
  const int64_t high = (i + pad) / stride;  // i + pad >= 0
  *last = high < out - 1 ? high : out - 1;
}

enum : int32_t { kIndexOk = 0, kIndexOutsideWindow = 1, kIndexOutOfRange = 2 };

// ---- average pooling -----------------------------------------------------------------------------

__global__ void avg_forward_kernel(Geometry g, float inverse_area, const float* __restrict__ x, float* __restrict__ out) {
  const int64_t plane_out = g.out_h * g.out_w, count = g.planes * plane_out;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < count; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = k / plane_out, r = k % plane_out, oh = r / g.out_w, ow = r % g.out_w;
    int64_t h0, h1, w0, w1;
    window(oh, g.stride_h, g.pad_h, g.kernel_h, g.in_h, &h0, &h1);
    window(ow, g.stride_w, g.pad_w, g.kernel_w, g.in_w, &w0, &w1);
    const float* plane = x + p * g.in_h * g.in_w;
    float sum = 0.0f;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) sum += plane[h * g.in_w + w];
    out[k] = sum * inverse_area;
  }
}

__global__ void avg_backward_kernel(Geometry g, float inverse_area, const float* __restrict__ grad_out,
                                    float* __restrict__ grad_in) {
  const int64_t plane_in = g.in_h * g.in_w, count = g.planes * plane_in;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < count; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = k / plane_in, r = k % plane_in, h = r / g.in_w, w = r % g.in_w;
    int64_t oh0, oh1, ow0, ow1;
    covering(h, g.stride_h, g.pad_h, g.kernel_h, g.out_h, &oh0, &oh1);
    covering(w, g.stride_w, g.pad_w, g.kernel_w, g.out_w, &ow0, &ow1);
    const float* go = grad_out + p * g.out_h * g.out_w;
    float sum = 0.0f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow1; ow >= ow0; --ow) sum += __fmul_rn(go[oh * g.out_w + ow], inverse_area);
    grad_in[k] = sum;
  }
}

// ---- max pooling ---------------------------------------------------------------------------------

__global__ void max_forward_kernel(Geometry g, const float* __restrict__ x, float* __restrict__ out,
                                   int32_t* __restrict__ indices) {
  const int64_t plane_out = g.out_h * g.out_w, count = g.planes * plane_out;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < count; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = k / plane_out, r = k % plane_out, oh = r / g.out_w, ow = r % g.out_w;
    int64_t h0, h1, w0, w1;
    window(oh, g.stride_h, g.pad_h, g.kernel_h, g.in_h, &h0, &h1);
    window(ow, g.stride_w, g.pad_w, g.kernel_w, g.in_w, &w0, &w1);
    const float* plane = x + p * g.in_h * g.in_w;
    float best = -INFINITY;
    int64_t best_index = h0 * g.in_w + w0;  // validation guarantees a non-empty window
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) {
        const float v = plane[h * g.in_w + w];
        if (v > best || v != v) {
          best = v;
          best_index = h * g.in_w + w;
        }
      }
    out[k] = best;
    if (indices) indices[k] = static_cast<int32_t>(best_index);
  }
}

// Flags indices outside the plane (the CPU's error) or outside their own output's window (which
// the gather backward cannot see).
__global__ void check_indices_kernel(Geometry g, const int32_t* __restrict__ indices, int32_t* __restrict__ flag) {
  const int64_t plane_out = g.out_h * g.out_w, count = g.planes * plane_out, limit = g.in_h * g.in_w;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < count; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = indices[k];
    if (i < 0 || i >= limit) {
      atomicMax(flag, int32_t(kIndexOutOfRange));
      continue;
    }
    const int64_t r = k % plane_out, oh = r / g.out_w, ow = r % g.out_w;
    int64_t h0, h1, w0, w1;
    window(oh, g.stride_h, g.pad_h, g.kernel_h, g.in_h, &h0, &h1);
    window(ow, g.stride_w, g.pad_w, g.kernel_w, g.in_w, &w0, &w1);
    const int64_t h = i / g.in_w, w = i % g.in_w;
    if (h < h0 || h >= h1 || w < w0 || w >= w1) atomicMax(flag, int32_t(kIndexOutsideWindow));
  }
}

// grad_in[h, w] = Σ grad_out[o] over the covering windows o (ascending) whose argmax is (h, w).
__global__ void max_backward_kernel(Geometry g, const float* __restrict__ grad_out, const int32_t* __restrict__ indices,
                                    float* __restrict__ grad_in) {
  const int64_t plane_in = g.in_h * g.in_w, count = g.planes * plane_in;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < count; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = k / plane_in, r = k % plane_in, h = r / g.in_w, w = r % g.in_w;
    int64_t oh0, oh1, ow0, ow1;
    covering(h, g.stride_h, g.pad_h, g.kernel_h, g.out_h, &oh0, &oh1);
    covering(w, g.stride_w, g.pad_w, g.kernel_w, g.out_w, &ow0, &ow1);
    const int64_t base = p * g.out_h * g.out_w;
    float sum = 0.0f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const int64_t o = base + oh * g.out_w + ow;
        if (indices[o] == r) sum += grad_out[o];
      }
    grad_in[k] = sum;
  }
}

__global__ void max_gather_kernel(Geometry g, const float* __restrict__ source, const int32_t* __restrict__ indices,
                                  float* __restrict__ out, int32_t* __restrict__ flag) {
  const int64_t plane_out = g.out_h * g.out_w, count = g.planes * plane_out, limit = g.in_h * g.in_w;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < count; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = indices[k];
    if (i < 0 || i >= limit) {
      atomicMax(flag, int32_t(kIndexOutOfRange));
      out[k] = 0.0f;  // as the CPU leaves it
      continue;
    }
    out[k] = source[(k / plane_out) * limit + i];
  }
}

// One thread: the per-call flag (the worst code any index raised) into the deferred slot.
__global__ void index_verdict_kernel(const int32_t* __restrict__ flag, int64_t limit, detail::DeferredOp op,
                                     detail::DeferredError* slot) {
  const int32_t code = *flag;
  if (code == kIndexOutOfRange) detail::report_deferred(slot, detail::DeferredCheck::kArgmaxOutOfRange, op, limit, 0, 0.0);
  if (code == kIndexOutsideWindow) detail::report_deferred(slot, detail::DeferredCheck::kArgmaxOutsideWindow, op, 0, 0, 0.0);
}

// ---- adaptive average pooling --------------------------------------------------------------------

__device__ inline int64_t bin_begin(int64_t o, int64_t in, int64_t out) { return (o * in) / out; }
__device__ inline int64_t bin_end(int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; }

struct AdaptiveGeometry {
  int64_t planes, in_h, in_w, out_h, out_w;
};

__global__ void adaptive_forward_kernel(AdaptiveGeometry g, const float* __restrict__ x, float* __restrict__ out) {
  const int64_t plane_out = g.out_h * g.out_w, count = g.planes * plane_out;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < count; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = k / plane_out, r = k % plane_out, oh = r / g.out_w, ow = r % g.out_w;
    const int64_t h0 = bin_begin(oh, g.in_h, g.out_h), h1 = bin_end(oh, g.in_h, g.out_h);
    const int64_t w0 = bin_begin(ow, g.in_w, g.out_w), w1 = bin_end(ow, g.in_w, g.out_w);
    const float* plane = x + p * g.in_h * g.in_w;
    float sum = 0.0f;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) sum += plane[h * g.in_w + w];
    out[k] = sum / static_cast<float>((h1 - h0) * (w1 - w0));
  }
}

// Bins [first, last] along one axis that contain input position i (a small superset of the exact
// range is scanned and tested, so rounding in the bounds cannot drop a bin).
__device__ inline void covering_bins(int64_t i, int64_t in, int64_t out, int64_t* first, int64_t* last) {
  const int64_t low = (i * out) / in - 1, high = ((i + 1) * out) / in + 1;
  *first = low > 0 ? low : 0;
  *last = high < out - 1 ? high : out - 1;
}

__global__ void adaptive_backward_kernel(AdaptiveGeometry g, const float* __restrict__ grad_out,
                                         float* __restrict__ grad_in) {
  const int64_t plane_in = g.in_h * g.in_w, count = g.planes * plane_in;
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < count; k += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = k / plane_in, r = k % plane_in, h = r / g.in_w, w = r % g.in_w;
    int64_t oh0, oh1, ow0, ow1;
    covering_bins(h, g.in_h, g.out_h, &oh0, &oh1);
    covering_bins(w, g.in_w, g.out_w, &ow0, &ow1);
    const float* go = grad_out + p * g.out_h * g.out_w;
    float sum = 0.0f;
    for (int64_t oh = oh0; oh <= oh1; ++oh) {
      const int64_t h0 = bin_begin(oh, g.in_h, g.out_h), h1 = bin_end(oh, g.in_h, g.out_h);
      if (h < h0 || h >= h1) continue;
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const int64_t w0 = bin_begin(ow, g.in_w, g.out_w), w1 = bin_end(ow, g.in_w, g.out_w);
        if (w < w0 || w >= w1) continue;
        sum += go[oh * g.out_w + ow] / static_cast<float>((h1 - h0) * (w1 - w0));
      }
    }
    grad_in[k] = sum;
  }
}

// Global average: one warp per plane (8 planes per 256-thread block), grid-stride over planes.
__global__ void global_average_kernel(int64_t planes, int64_t length, double inverse, const float* __restrict__ x,
                                      float* __restrict__ out) {
  const int warps_per_block = blockDim.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  for (int64_t p = int64_t(blockIdx.x) * warps_per_block + threadIdx.x / kWarp; p < planes;
       p += int64_t(gridDim.x) * warps_per_block) {
    const float* plane = x + p * length;
    double total = 0.0;
    for (int64_t start = 0; start < length; start += 1024) {
      const int64_t end = start + 1024 < length ? start + 1024 : length;
      float chunk = 0.0f;
      for (int64_t i = start + lane; i < end; i += kWarp) chunk += plane[i];
      total += static_cast<double>(chunk);
    }
    for (int offset = kWarp / 2; offset > 0; offset /= 2) total += __shfl_xor_sync(0xffffffffu, total, offset);
    total = __shfl_sync(0xffffffffu, total, 0);
    if (lane == 0) out[p] = static_cast<float>(total * inverse);
  }
}

__global__ void global_average_backward_kernel(int64_t count, int64_t length, float area, const float* __restrict__ grad_out,
                                               float* __restrict__ grad_in) {
  for (int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; k < count; k += int64_t(gridDim.x) * blockDim.x)
    grad_in[k] = grad_out[k / length] / area;
}

// ---- host side -----------------------------------------------------------------------------------

float inverse_area_of(const Pool2dShape& s) {
  return static_cast<float>(1.0 / static_cast<double>(s.kernel_h * s.kernel_w));  // as the CPU rounds it
}

// A zeroed device word for the index checks.
Status zeroed_flag(detail::DeviceScratch& flag, const char* op) {
  if (!flag.ok()) return flag.status();
  return detail::from_cuda_error(cudaMemsetAsync(flag.data(), 0, sizeof(int32_t), 0), op);
}

// Queues the flag's verdict into the deferred-check slot (no host wait; common.cuh).
Status defer_index_status(const detail::DeviceScratch& flag, const Pool2dShape& s, detail::DeferredOp op,
                          const char* name) {
  detail::DeferredError* slot = nullptr;
  LMCL_RETURN_IF_ERROR(detail::deferred_error_slot(&slot));
  index_verdict_kernel<<<1, 1>>>(flag.ints(), s.in_h * s.in_w, op, slot);
  return detail::launch_status(name);
}

}  // namespace

Status avg_pool2d_forward(const Pool2dShape& shape, const float* x, float* out) {
  LMCL_RETURN_IF_ERROR(validate_pool2d_shape(shape));
  const Geometry g = geometry_of(shape);
  const int64_t count = g.planes * g.out_h * g.out_w;
  if (count == 0) return Status::ok();
  avg_forward_kernel<<<detail::blocks_for(count), detail::kThreads>>>(g, inverse_area_of(shape), x, out);
  return detail::launch_status("avg_pool2d_forward");
}

Status avg_pool2d_backward(const Pool2dShape& shape, const float* grad_out, float* grad_in) {
  LMCL_RETURN_IF_ERROR(validate_pool2d_shape(shape));
  const Geometry g = geometry_of(shape);
  const int64_t count = g.planes * g.in_h * g.in_w;
  if (count == 0) return Status::ok();
  avg_backward_kernel<<<detail::blocks_for(count), detail::kThreads>>>(g, inverse_area_of(shape), grad_out, grad_in);
  return detail::launch_status("avg_pool2d_backward");
}

Status max_pool2d_forward(const Pool2dShape& shape, const float* x, float* out, int32_t* indices) {
  LMCL_RETURN_IF_ERROR(validate_pool2d_shape(shape));
  const Geometry g = geometry_of(shape);
  const int64_t count = g.planes * g.out_h * g.out_w;
  if (count == 0) return Status::ok();
  max_forward_kernel<<<detail::blocks_for(count), detail::kThreads>>>(g, x, out, indices);
  return detail::launch_status("max_pool2d_forward");
}

Status max_pool2d_backward(const Pool2dShape& shape, const float* grad_out, const int32_t* indices, float* grad_in) {
  LMCL_RETURN_IF_ERROR(validate_pool2d_shape(shape));
  const Geometry g = geometry_of(shape);
  if (g.planes == 0) return Status::ok();
  detail::DeviceScratch flag(sizeof(int32_t));
  LMCL_RETURN_IF_ERROR(zeroed_flag(flag, "max_pool2d_backward"));
  check_indices_kernel<<<detail::blocks_for(g.planes * g.out_h * g.out_w), detail::kThreads>>>(g, indices, flag.ints());
  LMCL_RETURN_IF_ERROR(detail::launch_status("max_pool2d_backward"));
  max_backward_kernel<<<detail::blocks_for(g.planes * g.in_h * g.in_w), detail::kThreads>>>(g, grad_out, indices, grad_in);
  LMCL_RETURN_IF_ERROR(detail::launch_status("max_pool2d_backward"));
  return defer_index_status(flag, shape, detail::DeferredOp::kMaxPool2dBackward, "max_pool2d_backward");
}

Status max_pool2d_gather(const Pool2dShape& shape, const float* source, const int32_t* indices, float* out) {
  LMCL_RETURN_IF_ERROR(validate_pool2d_shape(shape));
  const Geometry g = geometry_of(shape);
  const int64_t count = g.planes * g.out_h * g.out_w;
  if (count == 0) return Status::ok();
  detail::DeviceScratch flag(sizeof(int32_t));
  LMCL_RETURN_IF_ERROR(zeroed_flag(flag, "max_pool2d_gather"));
  max_gather_kernel<<<detail::blocks_for(count), detail::kThreads>>>(g, source, indices, out, flag.ints());
  LMCL_RETURN_IF_ERROR(detail::launch_status("max_pool2d_gather"));
  return defer_index_status(flag, shape, detail::DeferredOp::kMaxPool2dGather, "max_pool2d_gather");
}

Status adaptive_avg_pool2d_forward(const AdaptivePool2dShape& shape, const float* x, float* out) {
  LMCL_RETURN_IF_ERROR(validate_adaptive_pool2d_shape(shape));
  const AdaptiveGeometry g{shape.planes, shape.in_h, shape.in_w, shape.out_h, shape.out_w};
  if (g.planes == 0) return Status::ok();
  if (g.out_h == 1 && g.out_w == 1) {
    const int64_t length = g.in_h * g.in_w;
    global_average_kernel<<<detail::blocks_for(g.planes * kWarp), detail::kThreads>>>(
        g.planes, length, 1.0 / static_cast<double>(length), x, out);
  } else {
    adaptive_forward_kernel<<<detail::blocks_for(g.planes * g.out_h * g.out_w), detail::kThreads>>>(g, x, out);
  }
  return detail::launch_status("adaptive_avg_pool2d_forward");
}

Status adaptive_avg_pool2d_backward(const AdaptivePool2dShape& shape, const float* grad_out, float* grad_in) {
  LMCL_RETURN_IF_ERROR(validate_adaptive_pool2d_shape(shape));
  const AdaptiveGeometry g{shape.planes, shape.in_h, shape.in_w, shape.out_h, shape.out_w};
  const int64_t count = g.planes * g.in_h * g.in_w;
  if (count == 0) return Status::ok();
  if (g.out_h == 1 && g.out_w == 1) {
    const int64_t length = g.in_h * g.in_w;
    global_average_backward_kernel<<<detail::blocks_for(count), detail::kThreads>>>(count, length,
                                                                                    static_cast<float>(length), grad_out, grad_in);
  } else {
    adaptive_backward_kernel<<<detail::blocks_for(count), detail::kThreads>>>(g, grad_out, grad_in);
  }
  return detail::launch_status("adaptive_avg_pool2d_backward");
}

}  // namespace cuda
}  // namespace lmcl
