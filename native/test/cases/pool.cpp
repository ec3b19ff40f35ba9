// Parity cases for the pool kernels (native/src/cpu/pool.cpp, native/src/cuda/pool.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
// Shapes: odd extents, stride != kernel (overlapping windows: several windows cover one input;
// stride > kernel: some inputs are covered by none), padding on both axes, upsampling and
// overlapping adaptive bins, global averages longer than the 1024-element chunks.
// Tolerances: max pooling forward and gather are copies and must be exact (rtol = atol = 0, which
// also checks the argmax indices bit for bit: their float images are denormals); sums get
// rtol 1e-5 / atol 1e-6.
#include <algorithm>

#include "../driver.h"

namespace lmcl {
namespace driver {
namespace {

//                            planes, in_h, in_w, kernel, stride, pad
const Pool2dShape kPadded{5, 11, 13, 3, 2, 2, 3, 1, 1};   // out 6 × 5
const Pool2dShape kOverlap{4, 9, 10, 3, 3, 2, 2, 1, 1};   // out 5 × 5, ResNet-style 3/2/1
const Pool2dShape kStride1{3, 7, 8, 3, 3, 1, 1, 1, 1};    // out 7 × 8: up to 9 windows per input
const Pool2dShape kGap{3, 10, 9, 2, 3, 3, 2, 0, 0};       // out 3 × 4: rows 2, 5, 8 in no window

const AdaptivePool2dShape kBins{5, 7, 9, 3, 4};       // overlapping bins
const AdaptivePool2dShape kUpsample{3, 5, 5, 7, 8};   // more bins than inputs
const AdaptivePool2dShape kGlobal{6, 13, 11, 1, 1};
const AdaptivePool2dShape kGlobalLong{3, 40, 41, 1, 1};  // 1640 elements: two chunks

size_t in_count(const Pool2dShape& s) { return static_cast<size_t>(s.planes * s.in_h * s.in_w); }
size_t out_count(const Pool2dShape& s) { return static_cast<size_t>(s.planes * s.out_h() * s.out_w()); }
size_t in_count(const AdaptivePool2dShape& s) { return static_cast<size_t>(s.planes * s.in_h * s.in_w); }
size_t out_count(const AdaptivePool2dShape& s) { return static_cast<size_t>(s.planes * s.out_h * s.out_w); }

// Calls f(p, oh, ow, h, w) for every valid input (h, w) of every window, row-major per window.
template <typename F>
void for_each_window_element(const Pool2dShape& s, F f) {
  for (int64_t p = 0; p < s.planes; ++p)
    for (int64_t oh = 0; oh < s.out_h(); ++oh)
      for (int64_t ow = 0; ow < s.out_w(); ++ow)
        for (int64_t kh = 0; kh < s.kernel_h; ++kh)
          for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
            const int64_t h = oh * s.stride_h - s.pad_h + kh, w = ow * s.stride_w - s.pad_w + kw;
            if (h >= 0 && h < s.in_h && w >= 0 && w < s.in_w) f(p, oh, ow, h, w);
          }
}

size_t out_at(const Pool2dShape& s, int64_t p, int64_t oh, int64_t ow) {
  return static_cast<size_t>((p * s.out_h() + oh) * s.out_w() + ow);
}
size_t in_at(const Pool2dShape& s, int64_t p, int64_t h, int64_t w) {
  return static_cast<size_t>((p * s.in_h + h) * s.in_w + w);
}

void avg_forward_reference(const Pool2dShape& s, const std::vector<float>& x, std::vector<double>& out) {
  out.assign(out_count(s), 0.0);
  const double area = double(s.kernel_h * s.kernel_w);
  for_each_window_element(s, [&](int64_t p, int64_t oh, int64_t ow, int64_t h, int64_t w) {
    out[out_at(s, p, oh, ow)] += x[in_at(s, p, h, w)] / area;
  });
}

void avg_backward_reference(const Pool2dShape& s, const std::vector<float>& g, std::vector<double>& grad_in) {
  grad_in.assign(in_count(s), 0.0);
  const double area = double(s.kernel_h * s.kernel_w);
  for_each_window_element(s, [&](int64_t p, int64_t oh, int64_t ow, int64_t h, int64_t w) {
    grad_in[in_at(s, p, h, w)] += g[out_at(s, p, oh, ow)] / area;
  });
}

// Max and first argmax (strictly greater replaces: the first maximum in row-major order wins).
void max_reference(const Pool2dShape& s, const std::vector<float>& x, std::vector<double>* out,
                   std::vector<int32_t>* indices) {
  std::vector<double> best(out_count(s), -INFINITY);
  std::vector<int32_t> arg(out_count(s), -1);
  for_each_window_element(s, [&](int64_t p, int64_t oh, int64_t ow, int64_t h, int64_t w) {
    const size_t o = out_at(s, p, oh, ow);
    const double v = x[in_at(s, p, h, w)];
    if (arg[o] < 0 || v > best[o]) {
      best[o] = v;
      arg[o] = static_cast<int32_t>(h * s.in_w + w);
    }
  });
  if (out) *out = best;
  if (indices) *indices = arg;
}

// The float image of int32 indices, as the driver stores and compares them.
std::vector<double> index_images(const std::vector<int32_t>& indices) {
  const HostOperand image = int_operand("indices", indices);
  return std::vector<double>(image.data.begin(), image.data.end());
}

// Random floats on a grid of 0.5 steps in [-2, 2]: many ties inside a window.
std::vector<float> tied_floats(Rng& rng, size_t count) {
  std::vector<float> x = random_floats(rng, count, -2, 2);
  for (float& v : x) v = std::round(v * 2.0f) / 2.0f;
  return x;
}

// Bin [begin, end) of output o along one axis (the contract's formula).
int64_t bin_begin(int64_t o, int64_t in, int64_t out) { return (o * in) / out; }
int64_t bin_end(int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; }

void adaptive_forward_reference(const AdaptivePool2dShape& s, const std::vector<float>& x, std::vector<double>& out) {
  for (int64_t p = 0; p < s.planes; ++p)
    for (int64_t oh = 0; oh < s.out_h; ++oh)
      for (int64_t ow = 0; ow < s.out_w; ++ow) {
        const int64_t h0 = bin_begin(oh, s.in_h, s.out_h), h1 = bin_end(oh, s.in_h, s.out_h);
        const int64_t w0 = bin_begin(ow, s.in_w, s.out_w), w1 = bin_end(ow, s.in_w, s.out_w);
        double sum = 0;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) sum += x[static_cast<size_t>((p * s.in_h + h) * s.in_w + w)];
        out.push_back(sum / double((h1 - h0) * (w1 - w0)));
      }
}

void adaptive_backward_reference(const AdaptivePool2dShape& s, const std::vector<float>& g, std::vector<double>& grad_in) {
  grad_in.assign(in_count(s), 0.0);
  for (int64_t p = 0; p < s.planes; ++p)
    for (int64_t oh = 0; oh < s.out_h; ++oh)
      for (int64_t ow = 0; ow < s.out_w; ++ow) {
        const int64_t h0 = bin_begin(oh, s.in_h, s.out_h), h1 = bin_end(oh, s.in_h, s.out_h);
        const int64_t w0 = bin_begin(ow, s.in_w, s.out_w), w1 = bin_end(ow, s.in_w, s.out_w);
        const double value = g[static_cast<size_t>((p * s.out_h + oh) * s.out_w + ow)] / double((h1 - h0) * (w1 - w0));
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) grad_in[static_cast<size_t>((p * s.in_h + h) * s.in_w + w)] += value;
      }
}


#define LMCL_AVG_FORWARD_CASE(title, SHAPE)                                                                    \
  list.push_back({title, 1e-5, 1e-6,                                                                          \
                  [](Rng& rng) {                                                                              \
                    return std::vector<HostOperand>{input("x", random_floats(rng, in_count(SHAPE))),           \
                                                    output("out", out_count(SHAPE))};                          \
                  },                                                                                          \
                  LMCL_KERNEL_CALL(avg_pool2d_forward(SHAPE, p[0], p[1])),                                     \
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {             \
                    avg_forward_reference(SHAPE, o[0].data, want[1]);                                          \
                  }})

#define LMCL_AVG_BACKWARD_CASE(title, SHAPE)                                                                   \
  list.push_back({title, 1e-5, 1e-6,                                                                          \
                  [](Rng& rng) {                                                                              \
                    return std::vector<HostOperand>{input("grad_out", random_floats(rng, out_count(SHAPE))),   \
                                                    output("grad_in", in_count(SHAPE))};                       \
                  },                                                                                          \
                  LMCL_KERNEL_CALL(avg_pool2d_backward(SHAPE, p[0], p[1])),                                    \
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {             \
                    avg_backward_reference(SHAPE, o[0].data, want[1]);                                         \
                  }})

#define LMCL_MAX_FORWARD_CASE(title, SHAPE, VALUES)                                                             \
  list.push_back({title, 0, 0,                                                                                 \
                  [](Rng& rng) {                                                                               \
                    return std::vector<HostOperand>{input("x", VALUES(rng, in_count(SHAPE))),                   \
                                                    output("out", out_count(SHAPE)),                            \
                                                    output("indices", out_count(SHAPE))};                       \
                  },                                                                                           \
                  LMCL_KERNEL_CALL(max_pool2d_forward(SHAPE, p[0], p[1], reinterpret_cast<int32_t*>(p[2]))),    \
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {              \
                    std::vector<int32_t> indices;                                                              \
                    max_reference(SHAPE, o[0].data, &want[1], &indices);                                       \
                    want[2] = index_images(indices);                                                           \
                  }})

// grad_out random, indices the argmax of a random x (as the forward makes them).
#define LMCL_MAX_BACKWARD_CASE(title, SHAPE)                                                                     \
  list.push_back({title, 1e-6, 1e-6,                                                                            \
                  [](Rng& rng) {                                                                                \
                    std::vector<int32_t> indices;                                                               \
                    max_reference(SHAPE, random_floats(rng, in_count(SHAPE)), nullptr, &indices);               \
                    return std::vector<HostOperand>{input("grad_out", random_floats(rng, out_count(SHAPE))),     \
                                                    int_operand("indices", indices),                             \
                                                    output("grad_in", in_count(SHAPE))};                         \
                  },                                                                                            \
                  LMCL_KERNEL_CALL(max_pool2d_backward(SHAPE, p[0], reinterpret_cast<const int32_t*>(p[1]), p[2])), \
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {               \
                    want[2].assign(in_count(SHAPE), 0.0);                                                        \
                    const int64_t plane_in = SHAPE.in_h * SHAPE.in_w, plane_out = SHAPE.out_h() * SHAPE.out_w(); \
                    for (size_t k = 0; k < out_count(SHAPE); ++k)                                               \
                      want[2][(k / plane_out) * plane_in + int_at(o[1], k)] += o[0].data[k];                     \
                  }})

#define LMCL_ADAPTIVE_FORWARD_CASE(title, SHAPE)                                                               \
  list.push_back({title, 1e-5, 1e-6,                                                                          \
                  [](Rng& rng) {                                                                              \
                    return std::vector<HostOperand>{input("x", random_floats(rng, in_count(SHAPE))),           \
                                                    output("out", out_count(SHAPE))};                          \
                  },                                                                                          \
                  LMCL_KERNEL_CALL(adaptive_avg_pool2d_forward(SHAPE, p[0], p[1])),                            \
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {             \
                    adaptive_forward_reference(SHAPE, o[0].data, want[1]);                                     \
                  }})

#define LMCL_ADAPTIVE_BACKWARD_CASE(title, SHAPE)                                                              \
  list.push_back({title, 1e-5, 1e-6,                                                                          \
                  [](Rng& rng) {                                                                              \
                    return std::vector<HostOperand>{input("grad_out", random_floats(rng, out_count(SHAPE))),   \
                                                    output("grad_in", in_count(SHAPE))};                       \
                  },                                                                                          \
                  LMCL_KERNEL_CALL(adaptive_avg_pool2d_backward(SHAPE, p[0], p[1])),                           \
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {             \
                    adaptive_backward_reference(SHAPE, o[0].data, want[1]);                                    \
                  }})

std::vector<float> plain_floats(Rng& rng, size_t count) { return random_floats(rng, count); }

}  // namespace

void add_pool_cases(std::vector<OpCase>& list) {
  LMCL_AVG_FORWARD_CASE("avg_pool2d_fwd padded", kPadded);
  LMCL_AVG_FORWARD_CASE("avg_pool2d_fwd overlap", kOverlap);
  LMCL_AVG_BACKWARD_CASE("avg_pool2d_bwd padded", kPadded);
  LMCL_AVG_BACKWARD_CASE("avg_pool2d_bwd stride1", kStride1);
  LMCL_AVG_BACKWARD_CASE("avg_pool2d_bwd gap", kGap);
  LMCL_MAX_FORWARD_CASE("max_pool2d_fwd overlap", kOverlap, plain_floats);
  LMCL_MAX_FORWARD_CASE("max_pool2d_fwd padded", kPadded, plain_floats);
  LMCL_MAX_FORWARD_CASE("max_pool2d_fwd ties", kStride1, tied_floats);
  // indices null: only the maxima.
  list.push_back({"max_pool2d_fwd no indices", 0, 0,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("x", random_floats(rng, in_count(kGap))),
                                                    output("out", out_count(kGap))};
                  },
                  LMCL_KERNEL_CALL(max_pool2d_forward(kGap, p[0], p[1], nullptr)),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    max_reference(kGap, o[0].data, &want[1], nullptr);
                  }});
  LMCL_MAX_BACKWARD_CASE("max_pool2d_bwd overlap", kOverlap);
  LMCL_MAX_BACKWARD_CASE("max_pool2d_bwd stride1", kStride1);
  LMCL_MAX_BACKWARD_CASE("max_pool2d_bwd gap", kGap);
  // Gather: any in-range index (not only argmaxes), out = source[plane][index].
  list.push_back({"max_pool2d_gather", 0, 0,
                  [](Rng& rng) {
                    std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(kOverlap.in_h * kOverlap.in_w - 1));
                    std::vector<int32_t> indices(out_count(kOverlap));
                    for (int32_t& i : indices) i = pick(rng);
                    return std::vector<HostOperand>{input("source", random_floats(rng, in_count(kOverlap))),
                                                    int_operand("indices", indices), output("out", out_count(kOverlap))};
                  },
                  LMCL_KERNEL_CALL(max_pool2d_gather(kOverlap, p[0], reinterpret_cast<const int32_t*>(p[1]), p[2])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    const int64_t plane_in = kOverlap.in_h * kOverlap.in_w, plane_out = kOverlap.out_h() * kOverlap.out_w();
                    for (size_t k = 0; k < out_count(kOverlap); ++k)
                      want[2].push_back(o[0].data[(k / plane_out) * plane_in + int_at(o[1], k)]);
                  }});
  // Validation: an index outside the plane is the CPU's invalid_argument on both devices (on CUDA
  // a deferred check, reported at the next synchronisation; the written gradient is not compared:
  // no outputs).
  list.push_back({"max_pool2d_bwd bad index", 0, 0,
                  [](Rng& rng) {
                    std::vector<int32_t> indices;
                    max_reference(kOverlap, random_floats(rng, in_count(kOverlap)), nullptr, &indices);
                    indices[7] = static_cast<int32_t>(kOverlap.in_h * kOverlap.in_w);
                    return std::vector<HostOperand>{input("grad_out", random_floats(rng, out_count(kOverlap))),
                                                    int_operand("indices", indices),
                                                    input("grad_in", random_floats(rng, in_count(kOverlap)))};
                  },
                  LMCL_KERNEL_CALL(expect_deferred_error(kOnCuda, max_pool2d_backward(kOverlap, p[0], reinterpret_cast<const int32_t*>(p[1]), p[2]),
                                                         "max_pool2d_backward", "argmax indices out of range for a plane of 90 elements")),
                  [](const std::vector<HostOperand>&, std::vector<std::vector<double>>&) {}});
  list.push_back({"max_pool2d_gather bad index", 0, 0,
                  [](Rng& rng) {
                    std::vector<int32_t> indices;
                    max_reference(kOverlap, random_floats(rng, in_count(kOverlap)), nullptr, &indices);
                    indices[11] = -1;
                    return std::vector<HostOperand>{input("source", random_floats(rng, in_count(kOverlap))),
                                                    int_operand("indices", indices),
                                                    input("out", random_floats(rng, out_count(kOverlap)))};
                  },
                  LMCL_KERNEL_CALL(expect_deferred_error(kOnCuda, max_pool2d_gather(kOverlap, p[0], reinterpret_cast<const int32_t*>(p[1]), p[2]),
                                                         "max_pool2d_gather", "argmax indices out of range for a plane of 90 elements")),
                  [](const std::vector<HostOperand>&, std::vector<std::vector<double>>&) {}});
  LMCL_ADAPTIVE_FORWARD_CASE("adaptive_avg_fwd bins", kBins);
  LMCL_ADAPTIVE_FORWARD_CASE("adaptive_avg_fwd upsample", kUpsample);
  LMCL_ADAPTIVE_FORWARD_CASE("adaptive_avg_fwd global", kGlobal);
  LMCL_ADAPTIVE_FORWARD_CASE("adaptive_avg_fwd global long", kGlobalLong);
  LMCL_ADAPTIVE_BACKWARD_CASE("adaptive_avg_bwd bins", kBins);
  LMCL_ADAPTIVE_BACKWARD_CASE("adaptive_avg_bwd upsample", kUpsample);
  LMCL_ADAPTIVE_BACKWARD_CASE("adaptive_avg_bwd global", kGlobal);
}

#undef LMCL_AVG_FORWARD_CASE
#undef LMCL_AVG_BACKWARD_CASE
#undef LMCL_MAX_FORWARD_CASE
#undef LMCL_MAX_BACKWARD_CASE
#undef LMCL_ADAPTIVE_FORWARD_CASE
#undef LMCL_ADAPTIVE_BACKWARD_CASE

}  // namespace driver
}  // namespace lmcl
