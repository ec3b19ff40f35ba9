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
// "Compact" variant of the layout (column-shift planes): one plane per (kh%sh, kw),
// plane[c][i][ow] = xpad[c][i*sh + kh%sh][ow*sw + kw], rows exactly out_width wide, so the grid
// is the dense q = oh*out_width + ow (no garbage columns, full register tiles at 8x8) and
//   offset(k) = plane(kh%sh, kw) + ci*Hq*out_width + (kh/sh)*out_width.
// It costs kernel_w/stride_w times the phase memory and fill (a block copy per channel and kw at
// stride 1 with "same" width).
//   forward          Y = W (Cout_g x Cin_g*kh*kw, packed once) * B, per image, threads over images.
//                    Compact layout when Cout_g >= 8 (written straight into the output), else the
//                    padded-width one (use_compact).
//   backward input   stride 1 (padding <= kernel-1): the forward of grad_output with the
//                    spatially flipped, in/out-swapped weights and padding kernel-1-padding;
//                    other strides (or larger padding): split grad_input by stride phase; each
//                    phase is a stride-1 correlation of grad_output with a slice of the taps, the
//                    forward GEMM over compact zero-padded grad_output planes, scattered into
//                    grad_input with the stride (backward_input_phases). Threads over images.
//   backward weight  AVX-512, Cout_g panels >= 3/4 full and Cin_g*kh*kw >= 64: the gemm.h
//                    row-gather kernel on the compact layout, dW_g^T[k][co] += sum_p B_k[p] *
//                    dY^T[p][co], A rows read in place, dY^T packed per unit of 256 positions;
//                    no garbage columns, so no input value enters a gradient it does not belong
//                    to. Otherwise: dW[co][k] = sum_{n,q} dYq[n][co][q] * B_k[n][q] with the gemm.h
//                    dot kernel (both operands contiguous along q; dYq is grad_output on the
//                    padded-width grid with zeros in the garbage columns; compact layout when the
//                    padded grid is >= 10% longer). Both: threads split the batch; each thread's
//                    partial is summed in thread order (deterministic for a given thread count).
//   depthwise        (groups == in == out channels): direct per-channel loops on the same
//                    phase layout, threads over (image, channel) or channels.
// Known limitation of the padded-width paths: a garbage column multiplies a real input value by
// zero, so an Inf/NaN input can turn such a term into NaN (not in the compact paths).
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

std::string describe_conv2d(const Conv2dShape& s) {
  return "input " + describe_shape({s.batch, s.in_channels, s.in_height, s.in_width}) + ", weight " +
         describe_shape({s.out_channels, s.groups > 0 ? s.in_channels / s.groups : 0, s.kernel_height,
                         s.kernel_width}) +
         ", stride " + describe_shape({s.stride_height, s.stride_width}) + ", padding " +
         describe_shape({s.padding_height, s.padding_width}) + ", groups " + std::to_string(s.groups);
}

Status validate(const Conv2dShape& s) {
  if (s.batch < 1 || s.in_channels < 1 || s.in_height < 1 || s.in_width < 1 || s.out_channels < 1 ||
      s.kernel_height < 1 || s.kernel_width < 1) {
    return invalid_argument("conv2d: sizes must be >= 1 (" + describe_conv2d(s) + ")");
  }
  if (s.stride_height < 1 || s.stride_width < 1) return invalid_argument("conv2d: stride must be >= 1 (" + describe_conv2d(s) + ")");
  if (s.padding_height < 0 || s.padding_width < 0) {
    return invalid_argument("conv2d: padding must be >= 0 (" + describe_conv2d(s) + ")");
  }
  if (s.groups < 1 || s.in_channels % s.groups != 0 || s.out_channels % s.groups != 0) {
    return invalid_argument("conv2d: groups must divide in_channels (" + std::to_string(s.in_channels) +
                            ") and out_channels (" + std::to_string(s.out_channels) + ") (" + describe_conv2d(s) + ")");
  }
  if (s.in_height + 2 * s.padding_height < s.kernel_height || s.in_width + 2 * s.padding_width < s.kernel_width) {
    return invalid_argument("conv2d: kernel larger than the padded input, output size would be < 1 (" + describe_conv2d(s) +
                            ")");
  }
  const double elements = double(s.batch) * s.in_channels * (s.in_height + 2.0 * s.padding_height) *
                          (s.in_width + 2.0 * s.padding_width);
  if (elements > 4.0e18 || double(s.output_numel()) > 4.0e18) return invalid_argument("conv2d: sizes too large (" + describe_conv2d(s) + ")");
  return Status::ok();
}

Status validate_buffers(const char* op, const Conv2dShape& s, std::initializer_list<const void*> buffers) {
  for (const void* buffer : buffers)
    if (!buffer) return invalid_argument(std::string(op) + ": null buffer (" + describe_conv2d(s) + ")");
  return Status::ok();
}

namespace cpu {

using gemm_detail::MicroKernels;

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
  int64_t phases_h, phases_w;  // phases actually used: min(stride, kernel) (compact: phases_w = kernel_w)
  int64_t hq, wq, plane, phase_stride, floats, nq;
  bool direct;                 // 1x1, stride 1, no padding: the input itself is the only phase
  bool compact;                // one plane per kernel column kw, rows exactly out_w wide (no garbage)
};

PhaseLayout make_layout(int64_t channels, int64_t height, int64_t width, int64_t pad_h, int64_t pad_w,
                        int64_t stride_h, int64_t stride_w, int64_t kernel_h, int64_t kernel_w,
                        bool compact = false) {
  PhaseLayout l;
  l.compact = false;
  if (compact) {
    // "Column-shift" layout: plane (rh, kw)[c][i][ow] = xpad[c][i*sh + rh][ow*sw + kw], each
    // hq x out_w. Row k = (ci, kh, kw) of the operand is the contiguous slice starting at
    // plane(kh%sh, kw) + ci*plane + (kh/sh)*out_w, over the dense output grid q = oh*out_w + ow.
    l = make_layout(channels, height, width, pad_h, pad_w, stride_h, stride_w, kernel_h, kernel_w, false);
    l.compact = true;
    l.direct = false;
    l.phases_w = kernel_w;
    l.wq = l.out_w;
    l.plane = l.hq * l.wq;
    l.phase_stride = channels * l.plane;
    l.floats = l.phases_h * l.phases_w * l.phase_stride + 16;
    l.nq = l.out_h * l.out_w;
    return l;
  }
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
        if (l.compact) {
          const int64_t phase = (kh % l.stride_h) * l.phases_w + kw;
          offsets.push_back(phase * l.phase_stride + ci * l.plane + (kh / l.stride_h) * l.wq);
          continue;
        }
        const int64_t phase = (kh % l.stride_h) * l.phases_w + (kw % l.stride_w);
        offsets.push_back(phase * l.phase_stride + ci * l.plane + (kh / l.stride_h) * l.wq + kw / l.stride_w);
      }
  return offsets;
}


// rows x width block: dst[r][j] = src[r][j + shift] where 0 <= j + shift < width, else 0 (src rows
// are width floats apart; only src[0, rows*width) is read).
void shifted_rows(float* dst, const float* src, int64_t rows, int64_t width, int64_t shift) {
  const int64_t n = rows * width, a = shift < 0 ? -shift : shift;
  if (n <= 0) return;
  if (a >= width) {
    std::memset(dst, 0, sizeof(float) * n);
    return;
  }
  if (shift >= 0) {
    std::memcpy(dst, src + a, sizeof(float) * (n - a));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = width - a; j < width; ++j) dst[r * width + j] = 0.0f;
  } else {
    std::memcpy(dst + a, src, sizeof(float) * (n - a));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < a; ++j) dst[r * width + j] = 0.0f;
  }
}

// Compact layout: writes the planes of channels [c0, c1) of one image. (Compiled per ISA so the
// short row copies are inlined vector moves.)
LMCL_CLONES void fill_compact(const PhaseLayout& l, const float* x, float* buffer, int64_t c0, int64_t c1) {
  const int64_t sw = l.stride_w, ow_n = l.out_w;
  if (l.stride_h == 1 && sw == 1 && ow_n == l.width) {
    // Plane rows are the input rows shifted by kw - pad_w: one block copy per channel and kw.
    const int64_t i_lo = std::min(l.hq, l.pad_h), i_hi = std::max(i_lo, std::min(l.hq, l.pad_h + l.height));
    for (int64_t kw = 0; kw < l.kernel_w; ++kw) {
      float* phase = buffer + kw * l.phase_stride;
      for (int64_t c = c0; c < c1; ++c) {
        float* plane = phase + c * l.plane;
        std::memset(plane, 0, sizeof(float) * i_lo * ow_n);
        shifted_rows(plane + i_lo * ow_n, x + c * l.height * l.width + (i_lo - l.pad_h) * l.width, i_hi - i_lo,
                     ow_n, kw - l.pad_w);
        std::memset(plane + i_hi * ow_n, 0, sizeof(float) * (l.hq - i_hi) * ow_n);
      }
    }
    const int64_t used = l.phases_h * l.phases_w * l.phase_stride;
    std::memset(buffer + used, 0, sizeof(float) * (l.floats - used));
    return;
  }
  for (int64_t rh = 0; rh < l.phases_h; ++rh)
    for (int64_t kw = 0; kw < l.kernel_w; ++kw) {
      float* phase = buffer + (rh * l.phases_w + kw) * l.phase_stride;
      // in-bounds columns: 0 <= ow*sw + kw - pw < width  <=>  ow in [lo, hi)
      const int64_t shift = kw - l.pad_w;
      const int64_t lo = std::min(ow_n, shift >= 0 ? 0 : (-shift + sw - 1) / sw);
      const int64_t hi = std::max(lo, std::min(ow_n, (l.width - shift + sw - 1) / sw));
      for (int64_t c = c0; c < c1; ++c) {
        const float* source = x + c * l.height * l.width;
        float* plane = phase + c * l.plane;
        for (int64_t i = 0; i < l.hq; ++i) {
          float* row = plane + i * ow_n;
          const int64_t ih = i * l.stride_h + rh - l.pad_h;
          if (ih < 0 || ih >= l.height) {
            std::memset(row, 0, sizeof(float) * ow_n);
            continue;
          }
          const float* base = source + ih * l.width + shift;
          for (int64_t j = 0; j < lo; ++j) row[j] = 0.0f;
          if (sw == 1)
            for (int64_t j = lo; j < hi; ++j) row[j] = base[j];
          else if (sw == 2)
            for (int64_t j = lo; j < hi; ++j) row[j] = base[2 * j];
          else
            for (int64_t j = lo; j < hi; ++j) row[j] = base[j * sw];
          for (int64_t j = hi; j < ow_n; ++j) row[j] = 0.0f;
        }
      }
    }
  const int64_t used = l.phases_h * l.phases_w * l.phase_stride;
  std::memset(buffer + used, 0, sizeof(float) * (l.floats - used));
}

// Writes the phases of channels [c0, c1) of one image (x points at channel 0 of the image).
void fill_phases(const PhaseLayout& l, const float* x, float* buffer, int64_t c0, int64_t c1) {
  if (l.compact) {
    fill_compact(l, x, buffer, c0, c1);
    return;
  }
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

// Layout choice for the padded-width paths (forward; weight gradient through the dot kernel).
// Forward (pass 0): compact whenever there are >= 8 output channels per group to amortise its
// kernel_w-times larger fill (measured faster for every 3x3 ResNet shape, 32x32 included). Dot
// weight gradient (pass 1): compact when the padded-width grid is >= 10% longer than the rows.
bool use_compact(const Conv2dShape& s, int pass) {
  if (s.kernel_height == 1 && s.kernel_width == 1 && s.stride_height == 1 && s.stride_width == 1 &&
      s.padding_height == 0 && s.padding_width == 0)
    return false;
  const int64_t ow = s.out_width();
  const int64_t wq = (s.in_width + 2 * s.padding_width + s.stride_width - 1) / s.stride_width;
  if (wq == ow) return false;
  if (pass == 0) return s.out_channels / s.groups >= 8;
  return ow * 10 < wq * 9;
}

// ---- forward ------------------------------------------------------------------------------------

Status forward_general(const Conv2dShape& s, const float* input, const float* weight, const float* bias,
                       float* output) {
  const MicroKernels& mk = gemm_detail::micro_kernels();
  const PhaseLayout l = make_layout(s.in_channels, s.in_height, s.in_width, s.padding_height, s.padding_width,
                                    s.stride_height, s.stride_width, s.kernel_height, s.kernel_width,
                                    use_compact(s, 0));
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

int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Any stride (and stride 1 with padding > kernel-1): split grad_input by stride phase. Input
// position u = ih + ph = ud*sh + rh receives the taps kh = rh + sh*t (t < Th), from output row
// oh = ud - t, and the same along the width, so each phase (rh, rw) is a stride-1 correlation
//   dx_phase[ci][a][b] = sum_{co,t,s} W[co][ci][rh+sh*t][rw+sw*s] * dY[co][ud_lo+a-t][vd_lo+b-s]
// done as the forward GEMM: A = that weight slice (packed once per phase), B rows read in place
// from a compact zero-padded copy of grad_output, plane s [co][rho][b] = dY[co][ud_lo-(Th-1)+rho][vd_lo+b-s],
// row k = (co, t, s) at plane(s) + co*plane + (Th-1-t)*nv. The GEMM result is scattered into
// grad_input with the stride; phases with no taps are zero. Every element is written once.
struct InputPhase {
  int64_t rh, rw, th, tw, ud_lo, vd_lo, nu, nv, rows, plane, kp;
  std::vector<int64_t> offsets;
  int64_t packed_at;  // float offset of this phase's packed weights (groups x panel_rows x kp)
};

// The compact zero-padded planes of one image's grad_output for phase q.
LMCL_CLONES void fill_output_planes(const InputPhase& q, const float* dy, int64_t channels, int64_t oh_n,
                                    int64_t ow_n, float* out) {
  if (q.nv == ow_n) {
    // Plane rows are grad_output rows shifted by vd_lo - u: one block copy per channel and u.
    const int64_t r_lo = std::min(q.rows, std::max<int64_t>(0, q.th - 1 - q.ud_lo));
    const int64_t r_hi = std::max(r_lo, std::min(q.rows, q.th - 1 - q.ud_lo + oh_n));
    for (int64_t u = 0; u < q.tw; ++u)
      for (int64_t co = 0; co < channels; ++co) {
        float* plane = out + (u * channels + co) * q.plane;
        std::memset(plane, 0, sizeof(float) * r_lo * q.nv);
        shifted_rows(plane + r_lo * q.nv, dy + (co * oh_n + q.ud_lo - (q.th - 1) + r_lo) * ow_n, r_hi - r_lo, q.nv,
                     q.vd_lo - u);
        std::memset(plane + r_hi * q.nv, 0, sizeof(float) * (q.rows - r_hi) * q.nv);
      }
    return;
  }
  for (int64_t u = 0; u < q.tw; ++u) {
    const int64_t lo = std::min(q.nv, std::max<int64_t>(0, u - q.vd_lo));
    const int64_t hi = std::max(lo, std::min(q.nv, ow_n + u - q.vd_lo));
    for (int64_t co = 0; co < channels; ++co)
      for (int64_t rho = 0; rho < q.rows; ++rho) {
        float* row = out + (u * channels + co) * q.plane + rho * q.nv;
        const int64_t oh = q.ud_lo - (q.th - 1) + rho;
        if (oh < 0 || oh >= oh_n) {
          for (int64_t b = 0; b < q.nv; ++b) row[b] = 0.0f;
          continue;
        }
        const float* src = dy + (co * oh_n + oh) * ow_n + q.vd_lo - u;
        for (int64_t b = 0; b < lo; ++b) row[b] = 0.0f;
        for (int64_t b = lo; b < hi; ++b) row[b] = src[b];
        for (int64_t b = hi; b < q.nv; ++b) row[b] = 0.0f;
      }
  }
}

Status backward_input_phases(const Conv2dShape& s, const float* grad_output, const float* weight, float* grad_input) {
  const MicroKernels& mk = gemm_detail::micro_kernels();
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t kh_n = s.kernel_height, kw_n = s.kernel_width, kk = kh_n * kw_n;
  const int64_t oh_n = s.out_height(), ow_n = s.out_width(), p_n = oh_n * ow_n;
  const int64_t sh = s.stride_height, sw = s.stride_width, ph = s.padding_height, pw = s.padding_width;
  const int64_t h = s.in_height, w = s.in_width;
  const int64_t panel_rows = (cin_g + mk.mr - 1) / mk.mr * mk.mr;

  std::vector<InputPhase> phases;
  int64_t packed_floats = 0, b_floats = 1, c_floats = 1;
  for (int64_t rh = 0; rh < sh; ++rh)
    for (int64_t rw = 0; rw < sw; ++rw) {
      InputPhase q;
      q.rh = rh;
      q.rw = rw;
      q.th = rh < kh_n ? (kh_n - rh + sh - 1) / sh : 0;
      q.tw = rw < kw_n ? (kw_n - rw + sw - 1) / sw : 0;
      q.ud_lo = -floor_div(rh - ph, sh);
      q.vd_lo = -floor_div(rw - pw, sw);
      q.nu = floor_div(h + ph - 1 - rh, sh) + 1 - q.ud_lo;
      q.nv = floor_div(w + pw - 1 - rw, sw) + 1 - q.vd_lo;
      if (q.nu <= 0 || q.nv <= 0) continue;
      q.rows = q.nu + std::max<int64_t>(q.th, 1) - 1;
      q.plane = q.rows * q.nv;
      q.kp = cout_g * q.th * q.tw;
      q.packed_at = packed_floats;
      if (q.kp > 0) {
        for (int64_t co = 0; co < cout_g; ++co)
          for (int64_t t = 0; t < q.th; ++t)
            for (int64_t u = 0; u < q.tw; ++u) q.offsets.push_back(u * s.out_channels * q.plane + co * q.plane + (q.th - 1 - t) * q.nv);
        packed_floats += s.groups * panel_rows * q.kp;
        b_floats = std::max(b_floats, q.tw * s.out_channels * q.plane);
        c_floats = std::max(c_floats, s.in_channels * q.nu * q.nv);
      }
      phases.push_back(std::move(q));
    }
  bool zero_phases = false;
  for (const InputPhase& q : phases) zero_phases = zero_phases || q.kp == 0;
  ScratchBuffer packed(sizeof(float) * std::max<int64_t>(1, packed_floats));
  if (!packed.ok()) return out_of_memory("conv2d_backward_input: cannot allocate packed weights");
  {
    int64_t dense_floats = 1;
    for (const InputPhase& q : phases) dense_floats = std::max(dense_floats, cin_g * q.kp);
    ScratchBuffer dense(sizeof(float) * dense_floats);
    if (!dense.ok()) return out_of_memory("conv2d_backward_input: cannot allocate packed weights");
    for (const InputPhase& q : phases) {
      if (q.kp == 0) continue;
      for (int64_t g = 0; g < s.groups; ++g) {
        // dense[ci][k], k = (co, t, u): W[g*cout_g + co][ci][rh + sh*t][rw + sw*u]
        float* d = dense.floats();
        for (int64_t ci = 0; ci < cin_g; ++ci)
          for (int64_t co = 0; co < cout_g; ++co)
            for (int64_t t = 0; t < q.th; ++t)
              for (int64_t u = 0; u < q.tw; ++u)
                d[ci * q.kp + (co * q.th + t) * q.tw + u] =
                    weight[((g * cout_g + co) * cin_g + ci) * kk + (q.rh + sh * t) * kw_n + q.rw + sw * u];
        gemm_detail::pack_a(d, q.kp, 1, cin_g, q.kp, mk.mr, packed.floats() + q.packed_at + g * panel_rows * q.kp);
      }
    }
  }
  Status failure;
  parallel_for(0, s.batch, 1, [&](int64_t n0, int64_t n1) {
    ScratchBuffer bbuf(sizeof(float) * b_floats);
    ScratchBuffer cbuf(sizeof(float) * c_floats);
    if (!bbuf.ok() || !cbuf.ok()) {
      failure = out_of_memory("conv2d_backward_input: cannot allocate workspace");
      return;
    }
    for (int64_t n = n0; n < n1; ++n) {
      const float* dy = grad_output + n * s.out_channels * p_n;
      float* dx = grad_input + n * s.in_channels * h * w;
      if (zero_phases) std::memset(dx, 0, sizeof(float) * s.in_channels * h * w);
      for (const InputPhase& q : phases) {
        const int64_t nq = q.nu * q.nv;
        float* c = cbuf.floats();
        if (q.kp == 0) continue;  // no taps: zero (set above)
        {
          fill_output_planes(q, dy, s.out_channels, oh_n, ow_n, bbuf.floats());
          for (int64_t g = 0; g < s.groups; ++g) {
            const float* a = packed.floats() + q.packed_at + g * panel_rows * q.kp;
            const float* b = bbuf.floats() + g * cout_g * q.plane;
            float* cg = c + g * cin_g * nq;
            for (int64_t j0 = 0; j0 < nq; j0 += mk.nr) {
              const int n_eff = static_cast<int>(std::min<int64_t>(mk.nr, nq - j0));
              for (int64_t i0 = 0; i0 < cin_g; i0 += mk.mr) {
                const int m_eff = static_cast<int>(std::min<int64_t>(mk.mr, cin_g - i0));
                mk.indirect(q.kp, a + i0 * q.kp, b + j0, q.offsets.data(), cg + i0 * nq + j0, nq, m_eff, n_eff, 1.0f,
                            0.0f);
              }
            }
          }
        }
        // scatter: ih = (ud_lo + a)*sh + rh - ph, iw = (vd_lo + b)*sw + rw - pw
        const int64_t ih0 = q.ud_lo * sh + q.rh - ph, iw0 = q.vd_lo * sw + q.rw - pw;
        for (int64_t ci = 0; ci < s.in_channels; ++ci)
          for (int64_t a = 0; a < q.nu; ++a) {
            const float* src = c + (ci * q.nu + a) * q.nv;
            float* dst = dx + (ci * h + ih0 + a * sh) * w + iw0;
            if (sw == 1) std::memcpy(dst, src, sizeof(float) * q.nv);
            else
              for (int64_t b = 0; b < q.nv; ++b) dst[b * sw] = src[b];
          }
      }
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

// The batch split of both weight-gradient kernels below: chunk c sums images
// [c·N/C, (c+1)·N/C) in image order into its own partial (chunk 0 into grad_weight), and the
// partials are added in chunk order. C depends on the shape only, never on the thread count, so
// dW has the same bits for any --threads (a run resumed with another thread count continues bit
// for bit). Each chunk costs a pass over its dW-sized partial, so a chunk gets at least
// kMinPositions output positions of work (small planes: fewer, larger chunks); at most kMaxChunks
// (parallelism for 16 threads); fewer when the partials would pass kPartialFloats (a big
// ImageNet layer's dW, 2.4M floats, gets 4).
int64_t weight_gradient_chunks(const Conv2dShape& s) {
  constexpr int64_t kMaxChunks = 16, kMinPositions = 2048;
  constexpr int64_t kPartialFloats = int64_t(8) << 20;  // 32 MiB of partial sums
  const int64_t positions = std::max<int64_t>(1, s.out_height() * s.out_width());
  const int64_t by_work = std::max<int64_t>(1, s.batch * positions / kMinPositions);
  const int64_t by_memory = 1 + kPartialFloats / std::max<int64_t>(1, s.weight_numel());
  return std::max<int64_t>(1, std::min({s.batch, kMaxChunks, by_work, by_memory}));
}

// Runs body(chunk, n0, n1) for every chunk of weight_gradient_chunks, spread over the threads.
template <typename Body>
void for_each_weight_chunk(int64_t batch, int64_t chunks, const Body& body) {
  parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t chunk = c0; chunk < c1; ++chunk) body(chunk, chunk * batch / chunks, (chunk + 1) * batch / chunks);
  });
}

// dW_g^T[k][co] = sum_{n,p} X_k[n][p] * dY[n][g*cout_g + co][p] with the gemm.h row-gather kernel:
// A rows X_k are read in place from the compact layout (contiguous over p = oh*out_w + ow, no
// garbage columns), B = dY^T is packed per unit of ~kUnit grid positions into nr-wide panels
// (amortised over all kg/mr row tiles). The batch is split by weight_gradient_chunks; each chunk
// sums its units in order into its own dW^T buffer, and the partials are added in chunk order.
Status backward_weight_rows(const Conv2dShape& s, const float* input, const float* grad_output, float* grad_weight) {
  const MicroKernels& mk = gemm_detail::micro_kernels();
  const bool direct_shape = s.kernel_height == 1 && s.kernel_width == 1 && s.stride_height == 1 &&
                            s.stride_width == 1 && s.padding_height == 0 && s.padding_width == 0;
  const PhaseLayout l = make_layout(s.in_channels, s.in_height, s.in_width, s.padding_height, s.padding_width,
                                    s.stride_height, s.stride_width, s.kernel_height, s.kernel_width, !direct_shape);
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t kg = cin_g * s.kernel_height * s.kernel_width;
  const int64_t plen = l.out_h * l.out_w, in_image = s.in_channels * s.in_height * s.in_width;
  const int64_t dy_image = s.out_channels * plen;
  const std::vector<int64_t> offsets = make_offsets(l, cin_g);
  const int64_t nr = mk.nr, mr = mk.mr;
  const int64_t panels = (cout_g + nr - 1) / nr, co_pad = panels * nr;
  constexpr int64_t kUnit = 256;  // grid positions per unit: the packed dY^T panel (kUnit x nr) stays in L1
  // A unit is `images` whole images (short planes) or one `length` slice of one image.
  const int64_t unit_images = plen >= kUnit ? 1 : std::max<int64_t>(1, kUnit / plen);
  const int64_t unit_length = std::min(plen, kUnit);
  const int64_t x_floats = l.direct ? 0 : l.floats;

  const int64_t chunks = weight_gradient_chunks(s);
  const int64_t weight_numel = s.weight_numel();
  ScratchBuffer partials(sizeof(float) * std::max<int64_t>(0, chunks - 1) * weight_numel);
  if (!partials.ok()) return out_of_memory("conv2d_backward_weight: cannot allocate partial sums");
  Status failure;
  for_each_weight_chunk(s.batch, chunks, [&](int64_t chunk, int64_t n0, int64_t n1) {
    float* partial = chunk == 0 ? grad_weight : partials.floats() + (chunk - 1) * weight_numel;
    const int64_t images_here = std::min(unit_images, n1 - n0);
    ScratchBuffer xbuf(sizeof(float) * std::max<int64_t>(1, x_floats * images_here));
    ScratchBuffer bbuf(sizeof(float) * images_here * unit_length * co_pad);
    ScratchBuffer cbuf(sizeof(float) * s.groups * kg * co_pad);
    if (!xbuf.ok() || !bbuf.ok() || !cbuf.ok()) {
      failure = out_of_memory("conv2d_backward_weight: cannot allocate workspace");
      return;
    }
    float* ct = cbuf.floats();  // [groups][kg][co_pad]
    std::memset(ct, 0, sizeof(float) * s.groups * kg * co_pad);
    for (int64_t n = n0; n < n1; n += images_here) {
      const int64_t count = std::min(images_here, n1 - n);
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
      for (int64_t p0 = 0; p0 < plen; p0 += unit_length) {
        const int64_t length = std::min(unit_length, plen - p0);
        for (int64_t g = 0; g < s.groups; ++g) {
          // B panels: bp[panel][(img*length + l)*nr + j] = dY[n+img][g*cout_g + panel*nr + j][p0 + l]
          float* bp = bbuf.floats();
          for (int64_t panel = 0; panel < panels; ++panel) {
            float* dst = bp + panel * count * length * nr;
            for (int64_t img = 0; img < count; ++img) {
              const float* dy = grad_output + (n + img) * dy_image + (g * cout_g) * plen + p0;
              float* d = dst + img * length * nr;
              for (int64_t j = 0; j < nr; ++j) {
                const int64_t co = panel * nr + j;
                if (co < cout_g) {
                  const float* src = dy + co * plen;
                  for (int64_t t = 0; t < length; ++t) d[t * nr + j] = src[t];
                } else {
                  for (int64_t t = 0; t < length; ++t) d[t * nr + j] = 0.0f;
                }
              }
            }
          }
          const float* a = xb + g * cin_g * l.plane + p0;
          for (int64_t panel = 0; panel < panels; ++panel) {
            const int n_eff = static_cast<int>(std::min<int64_t>(nr, cout_g - panel * nr));
            const float* b = bp + panel * count * length * nr;
            for (int64_t k0 = 0; k0 < kg; k0 += mr) {
              const int m_eff = static_cast<int>(std::min<int64_t>(mr, kg - k0));
              mk.rows(length, count, a, offsets.data() + k0, x_image, b, ct + (g * kg + k0) * co_pad + panel * nr,
                      co_pad, m_eff, n_eff);
            }
          }
        }
      }
    }
    for (int64_t g = 0; g < s.groups; ++g)
      for (int64_t co = 0; co < cout_g; ++co) {
        float* dst = partial + (g * cout_g + co) * kg;
        const float* src = ct + g * kg * co_pad + co;
        for (int64_t k = 0; k < kg; ++k) dst[k] = src[k * co_pad];
      }
  });
  if (!failure.is_ok()) return failure;
  for (int64_t chunk = 1; chunk < chunks; ++chunk) {
    const float* partial = partials.floats() + (chunk - 1) * weight_numel;
    for (int64_t i = 0; i < weight_numel; ++i) grad_weight[i] += partial[i];
  }
  return Status::ok();
}

Status backward_weight_general(const Conv2dShape& s, const float* input, const float* grad_output,
                               float* grad_weight) {
  const MicroKernels& mk = gemm_detail::micro_kernels();
  const PhaseLayout l = make_layout(s.in_channels, s.in_height, s.in_width, s.padding_height, s.padding_width,
                                    s.stride_height, s.stride_width, s.kernel_height, s.kernel_width,
                                    use_compact(s, 1));
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t kg = cin_g * s.kernel_height * s.kernel_width;
  const int64_t out_plane = l.out_h * l.out_w, in_image = s.in_channels * s.in_height * s.in_width;
  const std::vector<int64_t> offsets = make_offsets(l, cin_g);
  const bool expand = l.wq != l.out_w;  // grad_output needs zero garbage columns
  const int64_t x_floats = l.direct ? 0 : l.floats;
  const int64_t dy_floats = expand ? s.out_channels * l.nq : 0;

  const int64_t chunks = weight_gradient_chunks(s);
  const int64_t weight_numel = s.weight_numel();
  ScratchBuffer partials(sizeof(float) * std::max<int64_t>(0, chunks - 1) * weight_numel);
  if (!partials.ok()) return out_of_memory("conv2d_backward_weight: cannot allocate partial sums");
  Status failure;
  for_each_weight_chunk(s.batch, chunks, [&](int64_t chunk, int64_t n0, int64_t n1) {
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

Status conv2d_forward(const Conv2dShape& shape, const float* input, const float* weight, const float* bias,
                      float* output) {
  LMCL_RETURN_IF_ERROR(validate(shape));
  LMCL_RETURN_IF_ERROR(validate_buffers("conv2d_forward", shape, {input, weight, output}));
  return forward_impl(shape, input, weight, bias, output);
}

Status conv2d_backward_input(const Conv2dShape& shape, const float* grad_output, const float* weight,
                             float* grad_input) {
  LMCL_RETURN_IF_ERROR(validate(shape));
  LMCL_RETURN_IF_ERROR(validate_buffers("conv2d_backward_input", shape, {grad_output, weight, grad_input}));
  if (shape.stride_height == 1 && shape.stride_width == 1 && shape.padding_height <= shape.kernel_height - 1 &&
      shape.padding_width <= shape.kernel_width - 1) {
    return backward_input_as_forward(shape, grad_output, weight, grad_input);
  }
  if (is_depthwise(shape)) return backward_input_depthwise(shape, grad_output, weight, grad_input);
  return backward_input_phases(shape, grad_output, weight, grad_input);
}

Status conv2d_backward_weight(const Conv2dShape& shape, const float* input, const float* grad_output,
                              float* grad_weight) {
  LMCL_RETURN_IF_ERROR(validate(shape));
  LMCL_RETURN_IF_ERROR(validate_buffers("conv2d_backward_weight", shape, {input, grad_output, grad_weight}));
  if (is_depthwise(shape)) return backward_weight_depthwise(shape, input, grad_output, grad_weight);
  // Row-gather kernel where it exists and pays: column panels at least 3/4 full, and enough row
  // tiles (kg / mr >= 8) to amortise the dY^T packing. Otherwise the dot kernel.
  const int64_t cout_g = shape.out_channels / shape.groups, nr = gemm_detail::micro_kernels().nr;
  const int64_t kg = shape.in_channels / shape.groups * shape.kernel_height * shape.kernel_width;
  if (gemm_detail::micro_kernels().rows && cout_g * 4 >= (cout_g + nr - 1) / nr * nr * 3 &&
      kg >= 8 * gemm_detail::micro_kernels().mr)
    return backward_weight_rows(shape, input, grad_output, grad_weight);
  return backward_weight_general(shape, input, grad_output, grad_weight);
}

Status conv2d_backward_bias(const Conv2dShape& shape, const float* grad_output, float* grad_bias) {
  LMCL_RETURN_IF_ERROR(validate(shape));
  LMCL_RETURN_IF_ERROR(validate_buffers("conv2d_backward_bias", shape, {grad_output, grad_bias}));
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

}  // namespace cpu
}  // namespace lmcl
