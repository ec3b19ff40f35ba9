// 2-D convolution, NCHW, forward and backward (contract and formula in include/lmcl/conv2d.h):
//
//   out[n,co,oh,ow] = bias[co] + sum_{ci,kh,kw} w[co,ci,kh,kw] * x[n, g*Cg+ci, oh*sh-ph+kh, ow*sw-pw+kw]
//
// Method: "phase-split implicit GEMM". Per image, the zero-padded input is rewritten into
// sh*sw stride phases, phase (rh, rw)[c][i][j] = xpad[c][i*sh+rh][j*sw+rw], each plane Hq x Wq.
// Then input element (oh*sh+kh, ow*sw+kw) of channel c is phase (kh%sh, kw%sw) at
// (oh + kh/sh, ow + kw/sw), so over the "padded-width" output grid q = oh*Wq + ow the operand
// row for k = (ci, kh, kw) is a contiguous slice starting at a fixed offset:
//   B_k[q] = phases[offset(k) + q],  offset(k) = phase(kh%sh,kw%sw) + ci*Hq*Wq + (kh/sh)*Wq + kw/sw
// and Y[co][q] = sum_k W[co][k] * B_k[q] is a GEMM whose B rows are read in place through an
// offset table (the gemm.h indirect micro-kernel): no im2col expansion, no B packing. Columns
// ow >= out_width of the grid are garbage and are dropped when copying out. 1x1/stride-1/pad-0
// convolutions read the input directly (no copy at all).
//   forward          Y = W (Cout_g x Cin_g*kh*kw, packed once) * B, per image, threads over images.
//   backward input   stride 1 (padding <= kernel-1): the forward of grad_output with the
//                    spatially flipped, in/out-swapped weights and padding kernel-1-padding;
//                    other strides: dcol = W^T * grad_output (indirect GEMM), then col2im.
//   backward weight  dW[co][k] = sum_{n,q} dYq[n][co][q] * B_k[n][q] with the gemm.h dot kernel
//                    (both operands contiguous along q; dYq is grad_output on the padded-width
//                    grid with zeros in the garbage columns). Threads split the batch; each
//                    thread's partial is summed in thread order (deterministic).
//   depthwise        (groups == in == out channels): direct per-channel loops on the same
//                    phase layout, threads over (image, channel) or channels.
// Scratch memory comes from the caching allocator (ScratchBuffer).
// Tested against a float64 direct-loop reference (test/reference/conv2d_reference.ts) in
// test/native/conv2d.test.ts, for every SIMD level.
#include "lmcl/conv2d.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "lmcl/allocator.h"
#include "lmcl/gemm.h"
#include "lmcl/parallel.h"

namespace lmcl {

using gemm_detail::MicroKernels;

static std::string describe(const Conv2dShape& s) {
  return "input " + describe_shape({s.batch, s.in_channels, s.in_height, s.in_width}) + ", weight " +
         describe_shape({s.out_channels, s.groups > 0 ? s.in_channels / s.groups : 0, s.kernel_height,
                         s.kernel_width}) +
         ", stride " + describe_shape({s.stride_height, s.stride_width}) + ", padding " +
         describe_shape({s.padding_height, s.padding_width}) + ", groups " + std::to_string(s.groups);
}

Status validate(const Conv2dShape& s) {
  if (s.batch < 1 || s.in_channels < 1 || s.in_height < 1 || s.in_width < 1 || s.out_channels < 1 ||
      s.kernel_height < 1 || s.kernel_width < 1) {
    return invalid_argument("conv2d: sizes must be >= 1 (" + describe(s) + ")");
  }
  if (s.stride_height < 1 || s.stride_width < 1) return invalid_argument("conv2d: stride must be >= 1 (" + describe(s) + ")");
  if (s.padding_height < 0 || s.padding_width < 0) {
    return invalid_argument("conv2d: padding must be >= 0 (" + describe(s) + ")");
  }
  if (s.groups < 1 || s.in_channels % s.groups != 0 || s.out_channels % s.groups != 0) {
    return invalid_argument("conv2d: groups must divide in_channels (" + std::to_string(s.in_channels) +
                            ") and out_channels (" + std::to_string(s.out_channels) + ") (" + describe(s) + ")");
  }
  if (s.in_height + 2 * s.padding_height < s.kernel_height || s.in_width + 2 * s.padding_width < s.kernel_width) {
    return invalid_argument("conv2d: kernel larger than the padded input, output size would be < 1 (" + describe(s) +
                            ")");
  }
  const double elements = double(s.batch) * s.in_channels * (s.in_height + 2.0 * s.padding_height) *
                          (s.in_width + 2.0 * s.padding_width);
  if (elements > 4.0e18 || double(s.output_numel()) > 4.0e18) return invalid_argument("conv2d: sizes too large (" + describe(s) + ")");
  return Status::ok();
}

namespace {

// ---- small vector helpers (compiled per ISA; elementwise results are ISA-independent) --------

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__GLIBC__)  // ifunc needs glibc
#define LMCL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LMCL_CLONES
#endif

// y[i] += a * x[i]
LMCL_CLONES void axpy(int64_t count, float a, const float* __restrict x, float* __restrict y) {
  for (int64_t i = 0; i < count; ++i) y[i] += a * x[i];
}

// y[i*stride] += a * x[i]
void axpy_strided(int64_t count, float a, const float* x, float* y, int64_t stride) {
  for (int64_t i = 0; i < count; ++i) y[i * stride] += a * x[i];
}

// ---- phase layout -------------------------------------------------------------------------------

struct PhaseLayout {
  int64_t channels, height, width, pad_h, pad_w, stride_h, stride_w, kernel_h, kernel_w, out_h, out_w;
  int64_t phases_h, phases_w;  // phases actually used: min(stride, kernel)
  int64_t hq, wq, plane, phase_stride, floats, nq;
  bool direct;                 // 1x1, stride 1, no padding: the input itself is the only phase
};

PhaseLayout make_layout(int64_t channels, int64_t height, int64_t width, int64_t pad_h, int64_t pad_w,
                        int64_t stride_h, int64_t stride_w, int64_t kernel_h, int64_t kernel_w) {
  PhaseLayout l;
  l.channels = channels;
  l.height = height;
  l.width = width;
  l.pad_h = pad_h;
  l.pad_w = pad_w;
  l.stride_h = stride_h;
  l.stride_w = stride_w;
  l.kernel_h = kernel_h;
  l.kernel_w = kernel_w;
  l.out_h = (height + 2 * pad_h - kernel_h) / stride_h + 1;
  l.out_w = (width + 2 * pad_w - kernel_w) / stride_w + 1;
  l.phases_h = std::min(stride_h, kernel_h);
  l.phases_w = std::min(stride_w, kernel_w);
  const int64_t hp = height + 2 * pad_h, wp = width + 2 * pad_w;
  l.hq = (hp + stride_h - 1) / stride_h;
  l.wq = (wp + stride_w - 1) / stride_w;
  l.direct = kernel_h == 1 && kernel_w == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0;
  l.plane = l.hq * l.wq;
  l.phase_stride = channels * l.plane;
  // Garbage columns of the last row may read up to kernel_w/stride_w floats past the last plane.
  l.floats = l.direct ? 0 : l.phases_h * l.phases_w * l.phase_stride + kernel_w + 16;
  l.nq = l.out_h * l.wq;
  return l;
}

// offsets[k] for k = (ci, kh, kw), ci < channels_per_group.
std::vector<int64_t> make_offsets(const PhaseLayout& l, int64_t channels_per_group) {
  std::vector<int64_t> offsets;
  offsets.reserve(channels_per_group * l.kernel_h * l.kernel_w);
  for (int64_t ci = 0; ci < channels_per_group; ++ci)
    for (int64_t kh = 0; kh < l.kernel_h; ++kh)
      for (int64_t kw = 0; kw < l.kernel_w; ++kw) {
        const int64_t phase = (kh % l.stride_h) * l.phases_w + (kw % l.stride_w);
        offsets.push_back(phase * l.phase_stride + ci * l.plane + (kh / l.stride_h) * l.wq + kw / l.stride_w);
      }
  return offsets;
}

// Writes the phases of channels [c0, c1) of one image (x points at channel 0 of the image).
void fill_phases(const PhaseLayout& l, const float* x, float* buffer, int64_t c0, int64_t c1) {
  for (int64_t rh = 0; rh < l.phases_h; ++rh)
    for (int64_t rw = 0; rw < l.phases_w; ++rw) {
      float* phase = buffer + (rh * l.phases_w + rw) * l.phase_stride;
      for (int64_t c = c0; c < c1; ++c) {
        const float* source = x + c * l.height * l.width;
        float* plane = phase + c * l.plane;
        for (int64_t i = 0; i < l.hq; ++i) {
          float* row = plane + i * l.wq;
          const int64_t ih = i * l.stride_h + rh - l.pad_h;
          if (ih < 0 || ih >= l.height) {
            std::memset(row, 0, sizeof(float) * l.wq);
            continue;
          }
          const float* src = source + ih * l.width;
          if (l.stride_w == 1) {
            // iw = j - pad_w
            const int64_t left = std::min(l.pad_w, l.wq);
            std::memset(row, 0, sizeof(float) * left);
            const int64_t count = std::min(l.width, l.wq - left);
            if (count > 0) std::memcpy(row + left, src, sizeof(float) * count);
            for (int64_t j = left + std::max<int64_t>(count, 0); j < l.wq; ++j) row[j] = 0.0f;
          } else {
            // in-bounds columns: 0 <= j*sw + rw - pw < width  <=>  j in [j_lo, j_hi)
            const int64_t sw = l.stride_w, shift = rw - l.pad_w;
            const int64_t j_lo = std::min(l.wq, shift >= 0 ? 0 : (-shift + sw - 1) / sw);
            const int64_t j_hi = std::max(j_lo, std::min(l.wq, (l.width - shift + sw - 1) / sw));
            for (int64_t j = 0; j < j_lo; ++j) row[j] = 0.0f;
            const float* base = src + shift;
            if (sw == 2) {
              for (int64_t j = j_lo; j < j_hi; ++j) row[j] = base[2 * j];
            } else {
              for (int64_t j = j_lo; j < j_hi; ++j) row[j] = base[j * sw];
            }
            for (int64_t j = j_hi; j < l.wq; ++j) row[j] = 0.0f;
          }
        }
      }
    }
  const int64_t used = l.phases_h * l.phases_w * l.phase_stride;
  std::memset(buffer + used, 0, sizeof(float) * (l.floats - used));
}

// grad_output of one image ([channels][out_h*out_w]) onto the padded-width grid, zero garbage.
void expand_rows(const PhaseLayout& l, const float* dy, int64_t channels, float* dyq) {
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t oh = 0; oh < l.out_h; ++oh) {
      float* row = dyq + c * l.nq + oh * l.wq;
      std::memcpy(row, dy + (c * l.out_h + oh) * l.out_w, sizeof(float) * l.out_w);
      for (int64_t j = l.out_w; j < l.wq; ++j) row[j] = 0.0f;
    }
}

bool is_depthwise(const Conv2dShape& s) { return s.groups == s.in_channels && s.out_channels == s.in_channels; }

// ---- forward ------------------------------------------------------------------------------------

Status forward_general(const Conv2dShape& s, const float* input, const float* weight, const float* bias,
                       float* output) {
  const MicroKernels& mk = gemm_detail::micro_kernels();
  const PhaseLayout l = make_layout(s.in_channels, s.in_height, s.in_width, s.padding_height, s.padding_width,
                                    s.stride_height, s.stride_width, s.kernel_height, s.kernel_width);
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t kg = cin_g * s.kernel_height * s.kernel_width;
  const int64_t out_plane = l.out_h * l.out_w;
  const std::vector<int64_t> offsets = make_offsets(l, cin_g);

  const int64_t panel_rows = (cout_g + mk.mr - 1) / mk.mr * mk.mr;
  ScratchBuffer packed(sizeof(float) * s.groups * panel_rows * kg);
  if (!packed.ok()) return out_of_memory("conv2d_forward: cannot allocate packed weights");
  for (int64_t g = 0; g < s.groups; ++g) {
    gemm_detail::pack_a(weight + g * cout_g * kg, kg, 1, cout_g, kg, mk.mr, packed.floats() + g * panel_rows * kg);
  }
  const bool direct_out = l.wq == l.out_w;
  Status failure;
  parallel_for(0, s.batch, 1, [&](int64_t n0, int64_t n1) {
    ScratchBuffer xbuf(sizeof(float) * l.floats);
    ScratchBuffer ybuf(direct_out ? 0 : sizeof(float) * s.out_channels * l.nq);
    if (!xbuf.ok() || !ybuf.ok()) {
      failure = out_of_memory("conv2d_forward: cannot allocate workspace");
      return;
    }
    for (int64_t n = n0; n < n1; ++n) {
      const float* x = input + n * s.in_channels * s.in_height * s.in_width;
      float* out = output + n * s.out_channels * out_plane;
      const float* phases = x;
      if (!l.direct) {
        fill_phases(l, x, xbuf.floats(), 0, s.in_channels);
        phases = xbuf.floats();
      }
      float* y = direct_out ? out : ybuf.floats();
      for (int64_t g = 0; g < s.groups; ++g) {
        const float* b = phases + g * cin_g * l.plane;
        const float* a = packed.floats() + g * panel_rows * kg;
        float* c = y + g * cout_g * l.nq;
        for (int64_t j0 = 0; j0 < l.nq; j0 += mk.nr) {
          const int n_eff = static_cast<int>(std::min<int64_t>(mk.nr, l.nq - j0));
          for (int64_t i0 = 0; i0 < cout_g; i0 += mk.mr) {
            const int m_eff = static_cast<int>(std::min<int64_t>(mk.mr, cout_g - i0));
            mk.indirect(kg, a + i0 * kg, b + j0, offsets.data(), c + i0 * l.nq + j0, l.nq, m_eff, n_eff, 1.0f, 0.0f);
          }
        }
      }
      if (direct_out) {
        if (bias)
          for (int64_t co = 0; co < s.out_channels; ++co) {
            float* row = out + co * out_plane;
            const float value = bias[co];
            for (int64_t p = 0; p < out_plane; ++p) row[p] += value;
          }
      } else {
        for (int64_t co = 0; co < s.out_channels; ++co) {
          const float value = bias ? bias[co] : 0.0f;
          for (int64_t oh = 0; oh < l.out_h; ++oh) {
            const float* src = y + co * l.nq + oh * l.wq;
            float* dst = out + co * out_plane + oh * l.out_w;
            for (int64_t ow = 0; ow < l.out_w; ++ow) dst[ow] = src[ow] + value;
          }
        }
      }
    }
  });
  return failure;
}

Status forward_depthwise(const Conv2dShape& s, const float* input, const float* weight, const float* bias,
                         float* output) {
  const PhaseLayout l = make_layout(1, s.in_height, s.in_width, s.padding_height, s.padding_width, s.stride_height,
                                    s.stride_width, s.kernel_height, s.kernel_width);
  const std::vector<int64_t> offsets = make_offsets(l, 1);
  const int64_t kk = s.kernel_height * s.kernel_width, channels = s.in_channels;
  const int64_t in_plane = s.in_height * s.in_width, out_plane = l.out_h * l.out_w;
  Status failure;
  parallel_for(0, s.batch * channels, 1, [&](int64_t i0, int64_t i1) {
    ScratchBuffer xbuf(sizeof(float) * std::max<int64_t>(l.floats, 1));
    ScratchBuffer ybuf(sizeof(float) * l.nq);
    if (!xbuf.ok() || !ybuf.ok()) {
      failure = out_of_memory("conv2d_forward: cannot allocate workspace");
      return;
    }
    float* y = ybuf.floats();
    for (int64_t index = i0; index < i1; ++index) {
      const int64_t c = index % channels;
      const float* x = input + index * in_plane;
      const float* phases = x;
      if (!l.direct) {
        fill_phases(l, x, xbuf.floats(), 0, 1);
        phases = xbuf.floats();
      }
      std::memset(y, 0, sizeof(float) * l.nq);
      for (int64_t k = 0; k < kk; ++k) axpy(l.nq, weight[c * kk + k], phases + offsets[k], y);
      const float value = bias ? bias[c] : 0.0f;
      float* out = output + index * out_plane;
      for (int64_t oh = 0; oh < l.out_h; ++oh)
        for (int64_t ow = 0; ow < l.out_w; ++ow) out[oh * l.out_w + ow] = y[oh * l.wq + ow] + value;
    }
  });
  return failure;
}

Status forward_impl(const Conv2dShape& s, const float* input, const float* weight, const float* bias, float* output) {
  if (is_depthwise(s)) return forward_depthwise(s, input, weight, bias, output);
  return forward_general(s, input, weight, bias, output);
}

// ---- backward input -----------------------------------------------------------------------------

// Stride 1: grad_input = conv(grad_output, flip(W)^T, padding kernel-1-padding).
Status backward_input_as_forward(const Conv2dShape& s, const float* grad_output, const float* weight,
                                 float* grad_input) {
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t kh = s.kernel_height, kw = s.kernel_width, kk = kh * kw;
  ScratchBuffer flipped(sizeof(float) * s.weight_numel());
  if (!flipped.ok()) return out_of_memory("conv2d_backward_input: cannot allocate flipped weights");
  float* wt = flipped.floats();  // [in_channels][cout_g][kh][kw]
  for (int64_t g = 0; g < s.groups; ++g)
    for (int64_t co = 0; co < cout_g; ++co)
      for (int64_t ci = 0; ci < cin_g; ++ci) {
        const float* src = weight + ((g * cout_g + co) * cin_g + ci) * kk;
        float* dst = wt + ((g * cin_g + ci) * cout_g + co) * kk;
        for (int64_t k = 0; k < kk; ++k) dst[k] = src[kk - 1 - k];
      }
  Conv2dShape t;
  t.batch = s.batch;
  t.in_channels = s.out_channels;
  t.in_height = s.out_height();
  t.in_width = s.out_width();
  t.out_channels = s.in_channels;
  t.kernel_height = kh;
  t.kernel_width = kw;
  t.stride_height = t.stride_width = 1;
  t.padding_height = kh - 1 - s.padding_height;
  t.padding_width = kw - 1 - s.padding_width;
  t.groups = s.groups;
  return forward_impl(t, grad_output, wt, nullptr, grad_input);
}

// Any stride: dcol = W_g^T * dY_g per image and group, then col2im into a padded buffer.
Status backward_input_col2im(const Conv2dShape& s, const float* grad_output, const float* weight, float* grad_input) {
  const MicroKernels& mk = gemm_detail::micro_kernels();
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t kh = s.kernel_height, kw = s.kernel_width, kg = cin_g * kh * kw;
  const int64_t oh_n = s.out_height(), ow_n = s.out_width(), p_n = oh_n * ow_n;
  const int64_t hp = s.in_height + 2 * s.padding_height, wp = s.in_width + 2 * s.padding_width;
  const int64_t sh = s.stride_height, sw = s.stride_width;
  const int64_t panel_rows = (kg + mk.mr - 1) / mk.mr * mk.mr;
  ScratchBuffer packed(sizeof(float) * s.groups * panel_rows * cout_g);
  if (!packed.ok()) return out_of_memory("conv2d_backward_input: cannot allocate packed weights");
  for (int64_t g = 0; g < s.groups; ++g) {
    // element (i = k index, p = co) of W_g^T is weight[(g*cout_g + p)*kg + i]
    gemm_detail::pack_a(weight + g * cout_g * kg, 1, kg, kg, cout_g, mk.mr, packed.floats() + g * panel_rows * cout_g);
  }
  std::vector<int64_t> offsets(cout_g);
  for (int64_t co = 0; co < cout_g; ++co) offsets[co] = co * p_n;
  Status failure;
  parallel_for(0, s.batch, 1, [&](int64_t n0, int64_t n1) {
    ScratchBuffer col(sizeof(float) * kg * p_n);
    ScratchBuffer pad(sizeof(float) * s.in_channels * hp * wp);
    if (!col.ok() || !pad.ok()) {
      failure = out_of_memory("conv2d_backward_input: cannot allocate workspace");
      return;
    }
    for (int64_t n = n0; n < n1; ++n) {
      std::memset(pad.floats(), 0, sizeof(float) * s.in_channels * hp * wp);
      for (int64_t g = 0; g < s.groups; ++g) {
        const float* dy = grad_output + (n * s.out_channels + g * cout_g) * p_n;
        const float* a = packed.floats() + g * panel_rows * cout_g;
        for (int64_t j0 = 0; j0 < p_n; j0 += mk.nr) {
          const int n_eff = static_cast<int>(std::min<int64_t>(mk.nr, p_n - j0));
          for (int64_t i0 = 0; i0 < kg; i0 += mk.mr) {
            const int m_eff = static_cast<int>(std::min<int64_t>(mk.mr, kg - i0));
            mk.indirect(cout_g, a + i0 * cout_g, dy + j0, offsets.data(), col.floats() + i0 * p_n + j0, p_n, m_eff,
                        n_eff, 1.0f, 0.0f);
          }
        }
        for (int64_t ci = 0; ci < cin_g; ++ci) {
          float* plane = pad.floats() + (g * cin_g + ci) * hp * wp;
          for (int64_t r = 0; r < kh; ++r)
            for (int64_t t = 0; t < kw; ++t) {
              const float* row = col.floats() + ((ci * kh + r) * kw + t) * p_n;
              for (int64_t oh = 0; oh < oh_n; ++oh) {
                float* dst = plane + (oh * sh + r) * wp + t;
                const float* src = row + oh * ow_n;
                if (sw == 1) axpy(ow_n, 1.0f, src, dst);
                else axpy_strided(ow_n, 1.0f, src, dst, sw);
              }
            }
        }
      }
      float* dx = grad_input + n * s.in_channels * s.in_height * s.in_width;
      for (int64_t c = 0; c < s.in_channels; ++c)
        for (int64_t ih = 0; ih < s.in_height; ++ih)
          std::memcpy(dx + (c * s.in_height + ih) * s.in_width,
                      pad.floats() + (c * hp + ih + s.padding_height) * wp + s.padding_width, sizeof(float) * s.in_width);
    }
  });
  return failure;
}

Status backward_input_depthwise(const Conv2dShape& s, const float* grad_output, const float* weight,
                                float* grad_input) {
  const int64_t kh = s.kernel_height, kw = s.kernel_width, kk = kh * kw, channels = s.in_channels;
  const int64_t oh_n = s.out_height(), ow_n = s.out_width(), p_n = oh_n * ow_n;
  const int64_t hp = s.in_height + 2 * s.padding_height, wp = s.in_width + 2 * s.padding_width;
  const int64_t sh = s.stride_height, sw = s.stride_width;
  Status failure;
  parallel_for(0, s.batch * channels, 1, [&](int64_t i0, int64_t i1) {
    ScratchBuffer pad(sizeof(float) * hp * wp);
    if (!pad.ok()) {
      failure = out_of_memory("conv2d_backward_input: cannot allocate workspace");
      return;
    }
    for (int64_t index = i0; index < i1; ++index) {
      const int64_t c = index % channels;
      const float* dy = grad_output + index * p_n;
      std::memset(pad.floats(), 0, sizeof(float) * hp * wp);
      for (int64_t r = 0; r < kh; ++r)
        for (int64_t t = 0; t < kw; ++t) {
          const float w = weight[c * kk + r * kw + t];
          for (int64_t oh = 0; oh < oh_n; ++oh) {
            float* dst = pad.floats() + (oh * sh + r) * wp + t;
            if (sw == 1) axpy(ow_n, w, dy + oh * ow_n, dst);
            else axpy_strided(ow_n, w, dy + oh * ow_n, dst, sw);
          }
        }
      float* dx = grad_input + index * s.in_height * s.in_width;
      for (int64_t ih = 0; ih < s.in_height; ++ih)
        std::memcpy(dx + ih * s.in_width, pad.floats() + (ih + s.padding_height) * wp + s.padding_width,
                    sizeof(float) * s.in_width);
    }
  });
  return failure;
}

// ---- backward weight ----------------------------------------------------------------------------

Status backward_weight_general(const Conv2dShape& s, const float* input, const float* grad_output,
                               float* grad_weight) {
  const MicroKernels& mk = gemm_detail::micro_kernels();
  const PhaseLayout l = make_layout(s.in_channels, s.in_height, s.in_width, s.padding_height, s.padding_width,
                                    s.stride_height, s.stride_width, s.kernel_height, s.kernel_width);
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t kg = cin_g * s.kernel_height * s.kernel_width;
  const int64_t out_plane = l.out_h * l.out_w, in_image = s.in_channels * s.in_height * s.in_width;
  const std::vector<int64_t> offsets = make_offsets(l, cin_g);
  const bool expand = l.wq != l.out_w;  // grad_output needs zero garbage columns
  const int64_t x_floats = l.direct ? 0 : l.floats;
  const int64_t dy_floats = expand ? s.out_channels * l.nq : 0;

  const int64_t chunks = chunk_count_for(0, s.batch, 1);
  const int64_t weight_numel = s.weight_numel();
  ScratchBuffer partials(sizeof(float) * std::max<int64_t>(0, chunks - 1) * weight_numel);
  if (!partials.ok()) return out_of_memory("conv2d_backward_weight: cannot allocate partial sums");
  Status failure;
  parallel_for_chunks(0, s.batch, 1, [&](int64_t chunk, int64_t n0, int64_t n1) {
    float* partial = chunk == 0 ? grad_weight : partials.floats() + (chunk - 1) * weight_numel;
    std::memset(partial, 0, sizeof(float) * weight_numel);
    // Images per pass: enough grid positions to amortise the kernel's final reductions, within
    // a workspace that stays in L2.
    const int64_t per_image = x_floats + dy_floats;
    int64_t group_images = std::min<int64_t>(n1 - n0, std::max<int64_t>(1, (2048 + l.nq - 1) / l.nq));
    while (group_images > 1 && per_image * group_images * 4 > (int64_t(3) << 19)) --group_images;
    if (per_image == 0) group_images = n1 - n0;
    ScratchBuffer xbuf(sizeof(float) * x_floats * group_images);
    ScratchBuffer dybuf(sizeof(float) * dy_floats * group_images);
    if (!xbuf.ok() || !dybuf.ok()) {
      failure = out_of_memory("conv2d_backward_weight: cannot allocate workspace");
      return;
    }
    for (int64_t n = n0; n < n1; n += group_images) {
      const int64_t count = std::min(group_images, n1 - n);
      const float* xb;
      int64_t x_image;
      if (l.direct) {
        xb = input + n * in_image;
        x_image = in_image;
      } else {
        for (int64_t i = 0; i < count; ++i)
          fill_phases(l, input + (n + i) * in_image, xbuf.floats() + i * x_floats, 0, s.in_channels);
        xb = xbuf.floats();
        x_image = x_floats;
      }
      const float* dyb;
      int64_t dy_image;
      if (expand) {
        for (int64_t i = 0; i < count; ++i)
          expand_rows(l, grad_output + (n + i) * s.out_channels * out_plane, s.out_channels,
                      dybuf.floats() + i * dy_floats);
        dyb = dybuf.floats();
        dy_image = dy_floats;
      } else {
        dyb = grad_output + n * s.out_channels * out_plane;
        dy_image = s.out_channels * out_plane;
      }
      for (int64_t g = 0; g < s.groups; ++g) {
        const float* b = xb + g * cin_g * l.plane;
        for (int64_t k0 = 0; k0 < kg; k0 += mk.dot_rb) {
          const int rb = static_cast<int>(std::min<int64_t>(mk.dot_rb, kg - k0));
          for (int64_t c0 = 0; c0 < cout_g; c0 += mk.dot_ra) {
            const int ra = static_cast<int>(std::min<int64_t>(mk.dot_ra, cout_g - c0));
            mk.dot(l.nq, count, dyb + (g * cout_g + c0) * l.nq, l.nq, dy_image, b, offsets.data() + k0, x_image,
                   partial + (g * cout_g + c0) * kg + k0, kg, ra, rb);
          }
        }
      }
    }
  });
  if (!failure.is_ok()) return failure;
  for (int64_t chunk = 1; chunk < chunks; ++chunk) {
    const float* partial = partials.floats() + (chunk - 1) * weight_numel;
    for (int64_t i = 0; i < weight_numel; ++i) grad_weight[i] += partial[i];
  }
  return Status::ok();
}

Status backward_weight_depthwise(const Conv2dShape& s, const float* input, const float* grad_output,
                                 float* grad_weight) {
  const MicroKernels& mk = gemm_detail::micro_kernels();
  const PhaseLayout l = make_layout(1, s.in_height, s.in_width, s.padding_height, s.padding_width, s.stride_height,
                                    s.stride_width, s.kernel_height, s.kernel_width);
  const std::vector<int64_t> offsets = make_offsets(l, 1);
  const int64_t kk = s.kernel_height * s.kernel_width, channels = s.in_channels;
  const int64_t in_plane = s.in_height * s.in_width, out_plane = l.out_h * l.out_w;
  const bool expand = l.wq != l.out_w;
  Status failure;
  // Each channel's sums are formed by one thread in image order: deterministic for any thread count.
  parallel_for(0, channels, 1, [&](int64_t c0, int64_t c1) {
    ScratchBuffer xbuf(sizeof(float) * std::max<int64_t>(l.floats, 1));
    ScratchBuffer dybuf(sizeof(float) * l.nq);
    if (!xbuf.ok() || !dybuf.ok()) {
      failure = out_of_memory("conv2d_backward_weight: cannot allocate workspace");
      return;
    }
    for (int64_t c = c0; c < c1; ++c) {
      float* dw = grad_weight + c * kk;
      std::memset(dw, 0, sizeof(float) * kk);
      for (int64_t n = 0; n < s.batch; ++n) {
        const float* x = input + (n * channels + c) * in_plane;
        const float* dy = grad_output + (n * channels + c) * out_plane;
        const float* phases = x;
        if (!l.direct) {
          fill_phases(l, x, xbuf.floats(), 0, 1);
          phases = xbuf.floats();
        }
        if (expand) {
          expand_rows(l, dy, 1, dybuf.floats());
          dy = dybuf.floats();
        }
        for (int64_t k0 = 0; k0 < kk; k0 += mk.dot_rb) {
          const int rb = static_cast<int>(std::min<int64_t>(mk.dot_rb, kk - k0));
          mk.dot(l.nq, 1, dy, 0, 0, phases, offsets.data() + k0, 0, dw + k0, 0, 1, rb);
        }
      }
    }
  });
  return failure;
}

}  // namespace

// ---- entry points -------------------------------------------------------------------------------

static Status check_pointers(const char* op, const Conv2dShape& s, std::initializer_list<const void*> pointers) {
  for (const void* pointer : pointers)
    if (!pointer) return invalid_argument(std::string(op) + ": null buffer (" + describe(s) + ")");
  return Status::ok();
}

Status conv2d_forward(const Conv2dShape& shape, const float* input, const float* weight, const float* bias,
                      float* output) {
  LMCL_RETURN_IF_ERROR(validate(shape));
  LMCL_RETURN_IF_ERROR(check_pointers("conv2d_forward", shape, {input, weight, output}));
  return forward_impl(shape, input, weight, bias, output);
}

Status conv2d_backward_input(const Conv2dShape& shape, const float* grad_output, const float* weight,
                             float* grad_input) {
  LMCL_RETURN_IF_ERROR(validate(shape));
  LMCL_RETURN_IF_ERROR(check_pointers("conv2d_backward_input", shape, {grad_output, weight, grad_input}));
  if (shape.stride_height == 1 && shape.stride_width == 1 && shape.padding_height <= shape.kernel_height - 1 &&
      shape.padding_width <= shape.kernel_width - 1) {
    return backward_input_as_forward(shape, grad_output, weight, grad_input);
  }
  if (is_depthwise(shape)) return backward_input_depthwise(shape, grad_output, weight, grad_input);
  return backward_input_col2im(shape, grad_output, weight, grad_input);
}

Status conv2d_backward_weight(const Conv2dShape& shape, const float* input, const float* grad_output,
                              float* grad_weight) {
  LMCL_RETURN_IF_ERROR(validate(shape));
  LMCL_RETURN_IF_ERROR(check_pointers("conv2d_backward_weight", shape, {input, grad_output, grad_weight}));
  if (is_depthwise(shape)) return backward_weight_depthwise(shape, input, grad_output, grad_weight);
  return backward_weight_general(shape, input, grad_output, grad_weight);
}

Status conv2d_backward_bias(const Conv2dShape& shape, const float* grad_output, float* grad_bias) {
  LMCL_RETURN_IF_ERROR(validate(shape));
  LMCL_RETURN_IF_ERROR(check_pointers("conv2d_backward_bias", shape, {grad_output, grad_bias}));
  const int64_t plane = shape.out_height() * shape.out_width(), channels = shape.out_channels;
  // Each channel summed by one thread, 16 lane partials combined in a fixed order.
  parallel_for(0, channels, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      float lanes[16] = {};
      for (int64_t n = 0; n < shape.batch; ++n) {
        const float* row = grad_output + (n * channels + c) * plane;
        int64_t p = 0;
        for (; p + 16 <= plane; p += 16)
          for (int t = 0; t < 16; ++t) lanes[t] += row[p + t];
        for (; p < plane; ++p) lanes[p & 15] += row[p];
      }
      for (int width = 8; width >= 1; width /= 2)
        for (int t = 0; t < width; ++t) lanes[t] += lanes[t + width];
      grad_bias[c] = lanes[0];
    }
  });
  return Status::ok();
}

}  // namespace lmcl
