// Parity cases for the conv2d kernels (native/src/cpu/conv2d.cpp, native/src/cuda/conv2d.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
//
// The references are direct loops in double written from the formula in lmcl/conv2d.h: the
// forward and the weight gradient as sums over the window, the input gradient as the scatter of
// every grad_output element through the window (the opposite formulation to the kernels' gathers).
// The shapes cover each GPU path: every GEMM tile (per-group M of 5, 20, 36, 64, 70 and a 64 x 128
// weight-gradient case), K tails, stride 2, padding 0/1/2, 1x1 and empty backward phases (1x1
// stride 2, kernel 2 stride 3), asymmetric kernel/stride/padding, groups 2 and 4, depthwise (3x3
// stride 2, 5x5 = two tap chunks, a split reduction), channel multiplier 2, split reductions in the
// weight and bias gradients, bias and no bias. Inputs uniform in [-1, 1].
// Tolerance: rtol 1e-5, atol 1e-6 * (terms per output + 1): float accumulation over L terms of
// size <= 1 is off by well under L ulps of the partial sums' size.
#include <deque>
#include <string>
#include <utility>

#include "../driver.h"
#include "lmcl/conv2d.h"

namespace lmcl {
namespace driver {
namespace {

//                              batch, cin, h, w, cout, kh, kw, sh, sw, ph, pw, groups
constexpr Conv2dShape kShapes[] = {
    {2, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1},        // 0 odd sizes, pad 1, M = 5 (16 x 256 tile)
    {3, 6, 9, 8, 20, 3, 3, 2, 2, 1, 1, 1},       // 1 stride 2, M = 20 (32 x 128)
    {2, 8, 7, 7, 70, 1, 1, 2, 2, 0, 0, 1},       // 2 1x1 stride 2 shortcut, M = 70 (64 x 64, M tail), empty phases
    {2, 6, 8, 7, 10, 3, 3, 2, 2, 1, 1, 2},       // 3 groups 2, stride 2
    {2, 8, 6, 5, 12, 1, 1, 1, 1, 0, 0, 4},       // 4 groups 4, 1x1
    {2, 4, 10, 6, 36, 5, 3, 2, 1, 2, 0, 1},      // 5 5x3, stride (2, 1), padding (2, 0), M = 36
    {2, 3, 5, 5, 4, 2, 2, 3, 3, 2, 2, 1},        // 6 kernel 2 stride 3 padding 2: a phase with no taps
    {2, 5, 9, 7, 5, 3, 3, 2, 2, 1, 1, 5},        // 7 depthwise 3x3 stride 2
    {2, 4, 11, 10, 4, 5, 5, 1, 1, 2, 2, 4},      // 8 depthwise 5x5 (two tap chunks)
    {2, 3, 64, 64, 3, 3, 3, 1, 1, 1, 1, 3},      // 9 depthwise, split weight reduction
    {2, 3, 6, 6, 6, 3, 3, 1, 1, 1, 1, 3},        // 10 channel multiplier 2 (GEMM path, M = 2)
    {4, 16, 16, 16, 16, 3, 3, 1, 1, 1, 1, 1},    // 11 CIFAR-like 16 -> 16, split weight reduction
    {4, 32, 12, 12, 32, 3, 3, 1, 1, 1, 1, 1},    // 12 CIFAR-like 32 -> 32 (32 x 128), split reduction
    {2, 4, 130, 130, 64, 3, 3, 1, 1, 1, 1, 1},   // 13 M = 64 on >= 264 blocks: the 64 x 128 forward tile; split bias
    {1, 3760, 3, 3, 64, 3, 3, 1, 1, 1, 1, 1},    // 14 long K; weight gradient N = 33840 (64 x 128 tile)
};
constexpr int kShapeCount = sizeof(kShapes) / sizeof(kShapes[0]);

std::deque<std::string>& names() {
  static std::deque<std::string> storage;  // OpCase names are const char*: kept alive here
  return storage;
}
const char* name_of(int index, const char* what) {
  names().push_back("conv2d " + std::string(what) + " #" + std::to_string(index));
  return names().back().c_str();
}

HostOperand random_input(Rng& rng, const char* name, int64_t count) { return input(name, random_floats(rng, count, -1.0f, 1.0f)); }

// Visits every (window tap, output) pair: f(input index, weight index, output index).
template <typename F>
void for_each_term(const Conv2dShape& s, F f) {
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t oh_count = s.out_height(), ow_count = s.out_width();
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t co = 0; co < s.out_channels; ++co) {
      const int64_t g = co / cout_g;
      for (int64_t oh = 0; oh < oh_count; ++oh)
        for (int64_t ow = 0; ow < ow_count; ++ow) {
          const int64_t out_index = ((n * s.out_channels + co) * oh_count + oh) * ow_count + ow;
          for (int64_t ci = 0; ci < cin_g; ++ci)
            for (int64_t kh = 0; kh < s.kernel_height; ++kh) {
              const int64_t ih = oh * s.stride_height - s.padding_height + kh;
              if (ih < 0 || ih >= s.in_height) continue;
              for (int64_t kw = 0; kw < s.kernel_width; ++kw) {
                const int64_t iw = ow * s.stride_width - s.padding_width + kw;
                if (iw < 0 || iw >= s.in_width) continue;
                const int64_t in_index = ((n * s.in_channels + g * cin_g + ci) * s.in_height + ih) * s.in_width + iw;
                const int64_t weight_index = ((co * cin_g + ci) * s.kernel_height + kh) * s.kernel_width + kw;
                f(in_index, weight_index, out_index);
              }
            }
        }
    }
}

double tolerance(int64_t terms) { return 1e-6 * double(terms + 1); }

template <int I>
void add_shape_cases(std::vector<OpCase>& list) {
  static constexpr Conv2dShape s = kShapes[I];  // static: the captureless lambdas below may name it
  const int64_t window = s.in_channels / s.groups * s.kernel_height * s.kernel_width;
  const int64_t positions = s.batch * s.out_height() * s.out_width();
  // Terms per grad_input element: at most cout_g * ceil(kh/sh) * ceil(kw/sw).
  const int64_t scatter = s.out_channels / s.groups * ((s.kernel_height + s.stride_height - 1) / s.stride_height) *
                          ((s.kernel_width + s.stride_width - 1) / s.stride_width);

  list.push_back({name_of(I, "forward+bias"), 1e-5, tolerance(window),
                  [](Rng& rng) {
                    return std::vector<HostOperand>{random_input(rng, "input", s.input_numel()),
                                                    random_input(rng, "weight", s.weight_numel()),
                                                    random_input(rng, "bias", s.out_channels),
                                                    output("output", s.output_numel())};
                  },
                  LMCL_KERNEL_CALL(conv2d_forward(kShapes[I], p[0], p[1], p[2], p[3])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    std::vector<double>& out = want[3];
                    out.assign(s.output_numel(), 0.0);
                    const int64_t plane = s.out_height() * s.out_width();
                    for (int64_t i = 0; i < s.output_numel(); ++i) out[i] = o[2].data[(i / plane) % s.out_channels];
                    for_each_term(s, [&](int64_t x, int64_t w, int64_t y) { out[y] += double(o[0].data[x]) * o[1].data[w]; });
                  }});
  list.push_back({name_of(I, "forward"), 1e-5, tolerance(window),
                  [](Rng& rng) {
                    return std::vector<HostOperand>{random_input(rng, "input", s.input_numel()),
                                                    random_input(rng, "weight", s.weight_numel()),
                                                    output("output", s.output_numel())};
                  },
                  LMCL_KERNEL_CALL(conv2d_forward(kShapes[I], p[0], p[1], nullptr, p[2])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    std::vector<double>& out = want[2];
                    out.assign(s.output_numel(), 0.0);
                    for_each_term(s, [&](int64_t x, int64_t w, int64_t y) { out[y] += double(o[0].data[x]) * o[1].data[w]; });
                  }});
  list.push_back({name_of(I, "backward_input"), 1e-5, tolerance(scatter),
                  [](Rng& rng) {
                    return std::vector<HostOperand>{random_input(rng, "grad_output", s.output_numel()),
                                                    random_input(rng, "weight", s.weight_numel()),
                                                    output("grad_input", s.input_numel())};
                  },
                  LMCL_KERNEL_CALL(conv2d_backward_input(kShapes[I], p[0], p[1], p[2])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    std::vector<double>& grad = want[2];
                    grad.assign(s.input_numel(), 0.0);  // pixels no window reaches stay 0
                    for_each_term(s, [&](int64_t x, int64_t w, int64_t y) { grad[x] += double(o[0].data[y]) * o[1].data[w]; });
                  }});
  list.push_back({name_of(I, "backward_weight"), 1e-5, tolerance(positions),
                  [](Rng& rng) {
                    return std::vector<HostOperand>{random_input(rng, "input", s.input_numel()),
                                                    random_input(rng, "grad_output", s.output_numel()),
                                                    output("grad_weight", s.weight_numel())};
                  },
                  LMCL_KERNEL_CALL(conv2d_backward_weight(kShapes[I], p[0], p[1], p[2])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    std::vector<double>& grad = want[2];
                    grad.assign(s.weight_numel(), 0.0);
                    for_each_term(s, [&](int64_t x, int64_t w, int64_t y) { grad[w] += double(o[0].data[x]) * o[1].data[y]; });
                  }});
  list.push_back({name_of(I, "backward_bias"), 1e-5, tolerance(positions),
                  [](Rng& rng) {
                    return std::vector<HostOperand>{random_input(rng, "grad_output", s.output_numel()),
                                                    output("grad_bias", s.out_channels)};
                  },
                  LMCL_KERNEL_CALL(conv2d_backward_bias(kShapes[I], p[0], p[1])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    std::vector<double>& grad = want[1];
                    grad.assign(s.out_channels, 0.0);
                    const int64_t plane = s.out_height() * s.out_width();
                    for (int64_t i = 0; i < s.output_numel(); ++i) grad[(i / plane) % s.out_channels] += o[0].data[i];
                  }});
}

template <int... I>
void add_all(std::vector<OpCase>& list, std::integer_sequence<int, I...>) {
  (add_shape_cases<I>(list), ...);
}

}  // namespace

void add_conv2d_cases(std::vector<OpCase>& list) { add_all(list, std::make_integer_sequence<int, kShapeCount>{}); }

}  // namespace driver
}  // namespace lmcl
