// 2-D pooling kernels: average, max (with argmax indices) and adaptive average. Float32, planes
// of [H, W] row-major: an NCHW tensor is N·C planes. See native/src/cpu/pool.cpp. Tested against
// the float64 reference test/reference/pool_reference.ts (test/ops/pool.test.ts).
#pragma once

#include <cstdint>

#include "lmcl/status.h"

namespace lmcl {

// Window geometry shared by avg and max pooling (PyTorch semantics, ceil_mode = false,
// dilation = 1): out_h = (in_h + 2·pad_h − kernel_h)/stride_h + 1, window rows
// [oh·stride_h − pad_h, oh·stride_h − pad_h + kernel_h), the same for columns.
struct Pool2dShape {
  int64_t planes = 0;  // N·C
  int64_t in_h = 0, in_w = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t out_h() const { return (in_h + 2 * pad_h - kernel_h) / stride_h + 1; }
  int64_t out_w() const { return (in_w + 2 * pad_w - kernel_w) / stride_w + 1; }
};

// planes >= 0; in >= 1; kernel, stride >= 1; 0 <= 2·pad <= kernel; in + 2·pad >= kernel;
// in_h·in_w < 2^31 (argmax indices are int32); sizes bounded.
Status validate_pool2d_shape(const Pool2dShape& shape);

namespace cpu {

// Average pooling with count_include_pad = true: out = Σ_window x / (kernel_h·kernel_w), padding
// counted as zeros.
Status avg_pool2d_forward(const Pool2dShape& shape, const float* x, float* out);
// grad_in[i] = Σ over windows containing i of grad_out / (kernel_h·kernel_w). Overwrites grad_in.
Status avg_pool2d_backward(const Pool2dShape& shape, const float* grad_out, float* grad_in);

// Max pooling, padding = −inf: out = max over the window's valid elements (NaN propagates; the
// first maximum in row-major window order wins ties). indices (nullable) receives the argmax as
// h·in_w + w within the plane.
Status max_pool2d_forward(const Pool2dShape& shape, const float* x, float* out, int32_t* indices);
// Scatter: grad_in = 0, then grad_in[plane][indices[o]] += grad_out[o]. Overwrites grad_in.
// Fails (invalid_argument) on an index outside [0, in_h·in_w).
Status max_pool2d_backward(const Pool2dShape& shape, const float* grad_out, const int32_t* indices, float* grad_in);
// Gather (the adjoint of the scatter): out[o] = source[plane][indices[o]], source shaped like the
// pooling input, out like its output. Fails on an out-of-range index.
Status max_pool2d_gather(const Pool2dShape& shape, const float* source, const int32_t* indices, float* out);

}  // namespace cpu

// Adaptive average pooling to [out_h, out_w]: bin i covers rows [floor(i·in_h/out_h),
// ceil((i+1)·in_h/out_h)) (likewise columns); out = mean over the bin.
struct AdaptivePool2dShape {
  int64_t planes = 0;
  int64_t in_h = 0, in_w = 0;
  int64_t out_h = 1, out_w = 1;
};
Status validate_adaptive_pool2d_shape(const AdaptivePool2dShape& shape);

namespace cpu {

Status adaptive_avg_pool2d_forward(const AdaptivePool2dShape& shape, const float* x, float* out);
// grad_in[i] = Σ over bins containing i of grad_out / bin area. Overwrites grad_in.
Status adaptive_avg_pool2d_backward(const AdaptivePool2dShape& shape, const float* grad_out, float* grad_in);

}  // namespace cpu

}  // namespace lmcl
