// 2-D convolution (CPU), NCHW, PyTorch semantics with dilation 1.
//
//   input  [batch, in_channels, in_height, in_width]
//   weight [out_channels, in_channels / groups, kernel_height, kernel_width]
//   output [batch, out_channels, out_height, out_width]
//   out[n, co, oh, ow] = bias[co] + sum_{ci in group(co), kh, kw}
//                        weight[co, ci, kh, kw] * input[n, ci, oh*sh - ph + kh, ow*sw - pw + kw]
//   (terms whose input index falls outside the image are zero: zero padding)
//   out_height = (in_height + 2*ph - kernel_height) / sh + 1 (floor), same for the width.
//
// Every entry point OVERWRITES its output (no accumulation). Results are deterministic for a
// given thread count and SIMD level. Implementation notes in src/cpu/conv2d.cpp.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "lmcl/status.h"

namespace lmcl {

struct Conv2dShape {
  int64_t batch = 0, in_channels = 0, in_height = 0, in_width = 0;
  int64_t out_channels = 0, kernel_height = 0, kernel_width = 0;
  int64_t stride_height = 1, stride_width = 1, padding_height = 0, padding_width = 0;
  int64_t groups = 1;

  int64_t out_height() const { return (in_height + 2 * padding_height - kernel_height) / stride_height + 1; }
  int64_t out_width() const { return (in_width + 2 * padding_width - kernel_width) / stride_width + 1; }
  int64_t input_numel() const { return batch * in_channels * in_height * in_width; }
  int64_t weight_numel() const { return out_channels * (in_channels / groups) * kernel_height * kernel_width; }
  int64_t output_numel() const { return batch * out_channels * out_height() * out_width(); }
};

// Positive sizes and strides, padding >= 0, channels divisible by groups, output size >= 1.
// The message names the shapes.
Status validate(const Conv2dShape& shape);

// The shapes as error messages name them ("input [N, C, H, W], weight [...], stride ..., ..."),
// and the null-buffer check both devices' entry points make: "<op>: null buffer (<shapes>)".
std::string describe_conv2d(const Conv2dShape& shape);
Status validate_buffers(const char* op, const Conv2dShape& shape, std::initializer_list<const void*> buffers);

namespace cpu {

Status conv2d_forward(const Conv2dShape& shape, const float* input, const float* weight,
                      const float* bias /* nullable */, float* output);
// grad_input = d(sum(output * grad_output)) / d(input): the transposed convolution.
Status conv2d_backward_input(const Conv2dShape& shape, const float* grad_output, const float* weight,
                             float* grad_input);
Status conv2d_backward_weight(const Conv2dShape& shape, const float* input, const float* grad_output,
                              float* grad_weight);
// grad_bias[co] = sum over n, oh, ow of grad_output[n, co, oh, ow].
Status conv2d_backward_bias(const Conv2dShape& shape, const float* grad_output, float* grad_bias);

}  // namespace cpu

}  // namespace lmcl
