// Parity cases for the softmax kernels (native/src/cpu/softmax.cpp, native/src/cuda/softmax.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
// Sizes: rows shorter than a warp's stride and not a multiple of 16 (the CPU's lane tails), rows
// longer than 1024 (the CUDA block-per-row path), column views with inner > 64 and a partial
// column block. Cross-entropy labels are index operands (index_view over a host array), so each
// case keeps them in a file-level vector that its make() fills and its call reads.
// Tolerances: rtol 1e-5 / atol 1e-6 (float sums of up to ~1500 terms; exp within a few ulps).
#include <algorithm>

#include "../driver.h"

namespace lmcl {
namespace driver {
namespace {
constexpr int64_t kRows = 7, kCols = 33;

// Helpers for a [outer, dim, inner] view: element (o, d, c).
inline size_t at(int64_t o, int64_t d, int64_t c, int64_t dim, int64_t inner) {
  return static_cast<size_t>((o * dim + d) * inner + c);
}

// Reference softmax / log-softmax along dim.
void softmax_reference(bool log, int64_t outer, int64_t dim, int64_t inner, const std::vector<float>& x,
                       std::vector<double>& y) {
  y.assign(x.size(), 0.0);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < inner; ++c) {
      double top = -INFINITY, sum = 0;
      for (int64_t d = 0; d < dim; ++d) top = std::max(top, double(x[at(o, d, c, dim, inner)]));
      for (int64_t d = 0; d < dim; ++d) sum += std::exp(double(x[at(o, d, c, dim, inner)]) - top);
      for (int64_t d = 0; d < dim; ++d) {
        const double v = double(x[at(o, d, c, dim, inner)]) - top;
        y[at(o, d, c, dim, inner)] = log ? v - std::log(sum) : std::exp(v) / sum;
      }
    }
}

// Reference backward from y and g.
void softmax_backward_reference(bool log, int64_t outer, int64_t dim, int64_t inner, const std::vector<float>& y,
                                const std::vector<float>& g, std::vector<double>& dx) {
  dx.assign(y.size(), 0.0);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < inner; ++c) {
      double s = 0;
      for (int64_t d = 0; d < dim; ++d) {
        const size_t k = at(o, d, c, dim, inner);
        s += log ? double(g[k]) : double(g[k]) * y[k];
      }
      for (int64_t d = 0; d < dim; ++d) {
        const size_t k = at(o, d, c, dim, inner);
        dx[k] = log ? double(g[k]) - std::exp(double(y[k])) * s : double(y[k]) * (double(g[k]) - s);
      }
    }
}

// Forward cases: x random in [-8, 8].
#define LMCL_SOFTMAX_FORWARD_CASE(title, LOG, OUTER, DIM, INNER)                                             \
  list.push_back({title, 1e-5, 1e-6,                                                                        \
                  [](Rng& rng) {                                                                            \
                    return std::vector<HostOperand>{input("x", random_floats(rng, OUTER * DIM * INNER, -8, 8)), \
                                                    output("y", OUTER * DIM * INNER)};                      \
                  },                                                                                        \
                  LMCL_KERNEL_CALL(softmax_forward(LOG, OUTER, DIM, INNER, p[0], p[1])),                    \
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {           \
                    softmax_reference(LOG, OUTER, DIM, INNER, o[0].data, want[1]);                          \
                  }})

// Backward cases: y is a real (log-)softmax of x in [-4, 4] (rounded to float), so exp(y) sums to
// 1 along dim as in training; g in [-2, 2].
inline std::vector<float> softmax_of_random(Rng& rng, bool log, int64_t outer, int64_t dim, int64_t inner) {
  std::vector<double> y;
  softmax_reference(log, outer, dim, inner, random_floats(rng, static_cast<size_t>(outer * dim * inner), -4, 4), y);
  return std::vector<float>(y.begin(), y.end());
}
#define LMCL_SOFTMAX_BACKWARD_CASE(title, LOG, OUTER, DIM, INNER)                                                    \
  list.push_back({title, 1e-5, 1e-6,                                                                                \
                  [](Rng& rng) {                                                                                    \
                    const size_t n = OUTER * DIM * INNER;                                                           \
                    return std::vector<HostOperand>{input("y", softmax_of_random(rng, LOG, OUTER, DIM, INNER)),     \
                                                    input("g", random_floats(rng, n)), output("dx", n)};            \
                  },                                                                                                \
                  LMCL_KERNEL_CALL(softmax_backward(LOG, OUTER, DIM, INNER, p[0], p[1], p[2])),                     \
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {                   \
                    softmax_backward_reference(LOG, OUTER, DIM, INNER, o[0].data, o[1].data, want[2]);              \
                  }})

// ---- cross-entropy ------------------------------------------------------------------------------

std::vector<int32_t> random_labels(Rng& rng, int64_t batch, int64_t classes) {
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(classes - 1));
  std::vector<int32_t> labels(static_cast<size_t>(batch));
  for (int32_t& l : labels) l = pick(rng);
  return labels;
}

// Reference stats (m, log Σ exp(x − m)) and per-row losses.
void cross_entropy_reference(int64_t batch, int64_t classes, const std::vector<float>& x,
                             const std::vector<int32_t>& labels, std::vector<double>& stats, std::vector<double>& losses) {
  for (int64_t i = 0; i < batch; ++i) {
    double top = -INFINITY, sum = 0;
    for (int64_t j = 0; j < classes; ++j) top = std::max(top, double(x[i * classes + j]));
    for (int64_t j = 0; j < classes; ++j) sum += std::exp(double(x[i * classes + j]) - top);
    stats.push_back(top);
    stats.push_back(std::log(sum));
    losses.push_back(std::log(sum) - (double(x[i * classes + labels[i]]) - top));
  }
}

// Host label arrays, one per case (filled by make(), read by the call and the reference).
std::vector<int32_t> ce_none_labels, ce_sum_labels, ce_mean_labels, ce_back_labels, ce_back_wide_labels;

constexpr int64_t kCeBatch = 37, kCeClasses = 29;          // warp per row
constexpr int64_t kCeWideBatch = 5, kCeWideClasses = 1100;  // block per row
constexpr int64_t kCeMeanBatch = 23, kCeMeanClasses = 10;

const int32_t kBadLabels[4] = {0, 2, 1, 105};

}  // namespace

void add_softmax_cases(std::vector<OpCase>& list) {
  list.push_back({"softmax_forward rows", 1e-5, 1e-7,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("x", random_floats(rng, kRows * kCols, -8, 8)),
                                                    output("y", kRows * kCols)};
                  },
                  LMCL_KERNEL_CALL(softmax_forward(false, kRows, kCols, 1, p[0], p[1])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    for (int64_t r = 0; r < kRows; ++r) {
                      const float* x = o[0].data.data() + r * kCols;
                      double top = -INFINITY, sum = 0;
                      for (int64_t c = 0; c < kCols; ++c) top = std::max(top, double(x[c]));
                      for (int64_t c = 0; c < kCols; ++c) sum += std::exp(double(x[c]) - top);
                      for (int64_t c = 0; c < kCols; ++c) want[1].push_back(std::exp(double(x[c]) - top) / sum);
                    }
                  }});
  LMCL_SOFTMAX_FORWARD_CASE("log_softmax_forward rows", true, 11, 45, 1);
  LMCL_SOFTMAX_FORWARD_CASE("softmax_forward wide", false, 3, 1537, 1);
  LMCL_SOFTMAX_FORWARD_CASE("log_softmax_forward wide", true, 2, 1100, 1);
  LMCL_SOFTMAX_FORWARD_CASE("softmax_forward columns", false, 3, 9, 70);
  LMCL_SOFTMAX_FORWARD_CASE("log_softmax_fwd columns", true, 2, 17, 5);
  LMCL_SOFTMAX_BACKWARD_CASE("softmax_backward rows", false, 9, 37, 1);
  LMCL_SOFTMAX_BACKWARD_CASE("log_softmax_bwd rows", true, 6, 50, 1);
  LMCL_SOFTMAX_BACKWARD_CASE("softmax_backward wide", false, 2, 1300, 1);
  LMCL_SOFTMAX_BACKWARD_CASE("log_softmax_bwd wide", true, 3, 1025, 1);
  LMCL_SOFTMAX_BACKWARD_CASE("softmax_bwd columns", false, 3, 11, 67);
  LMCL_SOFTMAX_BACKWARD_CASE("log_softmax_bwd columns", true, 2, 6, 3);

  list.push_back({"cross_entropy_fwd none", 1e-5, 1e-6,
                  [](Rng& rng) {
                    ce_none_labels = random_labels(rng, kCeBatch, kCeClasses);
                    return std::vector<HostOperand>{input("logits", random_floats(rng, kCeBatch * kCeClasses, -6, 6)),
                                                    output("out", kCeBatch), output("stats", 2 * kCeBatch)};
                  },
                  LMCL_KERNEL_CALL(cross_entropy_forward(kCeBatch, kCeClasses, p[0], index_view(kOnCuda, ce_none_labels),
                                                         CrossEntropyReduction::kNone, p[1], p[2])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    cross_entropy_reference(kCeBatch, kCeClasses, o[0].data, ce_none_labels, want[2], want[1]);
                  }});
  list.push_back({"cross_entropy_fwd sum wide", 1e-5, 1e-5,
                  [](Rng& rng) {
                    ce_sum_labels = random_labels(rng, kCeWideBatch, kCeWideClasses);
                    return std::vector<HostOperand>{
                        input("logits", random_floats(rng, kCeWideBatch * kCeWideClasses, -6, 6)), output("out", 1),
                        output("stats", 2 * kCeWideBatch)};
                  },
                  LMCL_KERNEL_CALL(cross_entropy_forward(kCeWideBatch, kCeWideClasses, p[0], index_view(kOnCuda, ce_sum_labels),
                                                         CrossEntropyReduction::kSum, p[1], p[2])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    std::vector<double> losses;
                    cross_entropy_reference(kCeWideBatch, kCeWideClasses, o[0].data, ce_sum_labels, want[2], losses);
                    double total = 0;
                    for (double l : losses) total += l;
                    want[1].push_back(total);
                  }});
  list.push_back({"cross_entropy_fwd mean", 1e-5, 1e-6,
                  [](Rng& rng) {
                    ce_mean_labels = random_labels(rng, kCeMeanBatch, kCeMeanClasses);
                    return std::vector<HostOperand>{
                        input("logits", random_floats(rng, kCeMeanBatch * kCeMeanClasses, -6, 6)), output("out", 1),
                        output("stats", 2 * kCeMeanBatch)};
                  },
                  LMCL_KERNEL_CALL(cross_entropy_forward(kCeMeanBatch, kCeMeanClasses, p[0], index_view(kOnCuda, ce_mean_labels),
                                                         CrossEntropyReduction::kMean, p[1], p[2])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    std::vector<double> losses;
                    cross_entropy_reference(kCeMeanBatch, kCeMeanClasses, o[0].data, ce_mean_labels, want[2], losses);
                    double total = 0;
                    for (double l : losses) total += l;
                    want[1].push_back(total / kCeMeanBatch);
                  }});
  // Backward: stats are the forward's (computed here in double, rounded to float), grad per row.
  list.push_back({"cross_entropy_backward", 1e-5, 1e-6,
                  [](Rng& rng) {
                    ce_back_labels = random_labels(rng, kCeBatch, kCeClasses);
                    std::vector<float> logits = random_floats(rng, kCeBatch * kCeClasses, -6, 6);
                    std::vector<double> stats, losses;
                    cross_entropy_reference(kCeBatch, kCeClasses, logits, ce_back_labels, stats, losses);
                    return std::vector<HostOperand>{input("logits", logits),
                                                    input("stats", std::vector<float>(stats.begin(), stats.end())),
                                                    input("grad", random_floats(rng, kCeBatch)),
                                                    output("dx", kCeBatch * kCeClasses)};
                  },
                  LMCL_KERNEL_CALL(cross_entropy_backward(kCeBatch, kCeClasses, p[0], index_view(kOnCuda, ce_back_labels), p[1], p[2],
                                                          true, 0.37f, p[3])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    for (int64_t i = 0; i < kCeBatch; ++i)
                      for (int64_t j = 0; j < kCeClasses; ++j) {
                        const double prob = std::exp(double(o[0].data[i * kCeClasses + j]) - o[1].data[2 * i] - o[1].data[2 * i + 1]);
                        want[3].push_back((prob - (j == ce_back_labels[i] ? 1.0 : 0.0)) * double(0.37f) * o[2].data[i]);
                      }
                  }});
  // One shared grad (grad_per_row false), wide rows.
  list.push_back({"cross_entropy_bwd wide", 1e-5, 1e-6,
                  [](Rng& rng) {
                    ce_back_wide_labels = random_labels(rng, kCeWideBatch, kCeWideClasses);
                    std::vector<float> logits = random_floats(rng, kCeWideBatch * kCeWideClasses, -6, 6);
                    std::vector<double> stats, losses;
                    cross_entropy_reference(kCeWideBatch, kCeWideClasses, logits, ce_back_wide_labels, stats, losses);
                    return std::vector<HostOperand>{input("logits", logits),
                                                    input("stats", std::vector<float>(stats.begin(), stats.end())),
                                                    input("grad", random_floats(rng, 1, 0.5f, 2)),
                                                    output("dx", kCeWideBatch * kCeWideClasses)};
                  },
                  LMCL_KERNEL_CALL(cross_entropy_backward(kCeWideBatch, kCeWideClasses, p[0], index_view(kOnCuda, ce_back_wide_labels),
                                                          p[1], p[2], false, 1.0f / kCeWideBatch, p[3])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    for (int64_t i = 0; i < kCeWideBatch; ++i)
                      for (int64_t j = 0; j < kCeWideClasses; ++j) {
                        const double prob =
                            std::exp(double(o[0].data[i * kCeWideClasses + j]) - o[1].data[2 * i] - o[1].data[2 * i + 1]);
                        want[3].push_back((prob - (j == ce_back_wide_labels[i] ? 1.0 : 0.0)) *
                                          double(1.0f / kCeWideBatch) * o[2].data[0]);
                      }
                  }});
  // An empty batch still writes the reduced loss (0 for kSum; kMean would be 0/0 = NaN, which the
  // driver's comparison cannot accept, so only kSum is checked).
  list.push_back({"cross_entropy_fwd empty sum", 0, 0,
                  [](Rng&) { return std::vector<HostOperand>{output("out", 1)}; },
                  LMCL_KERNEL_CALL(cross_entropy_forward(0, 10, nullptr, IndexArray{}, CrossEntropyReduction::kSum, p[0], nullptr)),
                  [](const std::vector<HostOperand>&, std::vector<std::vector<double>>& want) { want[0] = {0.0}; }});
  // Validation: an out-of-range label fails before any work, with the CPU's message, on both
  // devices (no outputs: the call itself checks the Status).
  list.push_back({"cross_entropy bad label", 0, 0,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("logits", random_floats(rng, 4 * 100)),
                                                    input("stats", random_floats(rng, 2 * 4)), input("grad", {1.0f})};
                  },
                  LMCL_KERNEL_CALL(expect_error(cross_entropy_forward(4, 100, p[0], index_view(kOnCuda, kBadLabels), CrossEntropyReduction::kMean,
                                                                      p[2], p[1]),
                                                "label 105 at index 3 is out of range for 100 classes")),
                  [](const std::vector<HostOperand>&, std::vector<std::vector<double>>&) {}});
  list.push_back({"cross_entropy_bwd bad label", 0, 0,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("logits", random_floats(rng, 4 * 100)),
                                                    input("stats", random_floats(rng, 2 * 4)), input("grad", {1.0f}),
                                                    input("dx", random_floats(rng, 4 * 100))};
                  },
                  LMCL_KERNEL_CALL(expect_error(cross_entropy_backward(4, 100, p[0], index_view(kOnCuda, kBadLabels), p[1], p[2], false, 1.0f, p[3]),
                                                "label 105 at index 3 is out of range for 100 classes")),
                  [](const std::vector<HostOperand>&, std::vector<std::vector<double>>&) {}});
}

#undef LMCL_SOFTMAX_FORWARD_CASE
#undef LMCL_SOFTMAX_BACKWARD_CASE

}  // namespace driver
}  // namespace lmcl
