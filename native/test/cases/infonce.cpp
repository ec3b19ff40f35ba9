// Parity cases for the infonce kernels (native/src/cpu/infonce.cpp, native/src/cuda/infonce.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
// The reference is the formula of native/include/lmcl/infonce.h in double; the gradients are
// central finite differences of that double loss (independent of the kernels' derivation).
// Labels (index operands: index_view) have repeats and singletons, so some rows
// have positives and some have none; one forward case has no positive anywhere (loss 0, zero terms and direction).
// A D = 300 backward case covers more than one 256-float chunk of the gradient kernel.
// Tolerances: rtol 1e-4, atol 2e-5 (float32 dots and exps against double).
#include <algorithm>
#include <unordered_map>

#include "../driver.h"

namespace lmcl {
namespace driver {
namespace {

constexpr float kTemperature = 0.5f;

constexpr int64_t kBatch = 10, kDim = 13;
const int32_t kLabels[kBatch] = {0, 1, 0, 2, 1, 3, 0, 2, 1, 4};  // 3 and 4: rows without positives
constexpr int64_t kSmallBatch = 7, kSmallDim = 17;
const int32_t kSmallLabels[kSmallBatch] = {5, 5, 9, 5, 9, 1, 2};
constexpr int64_t kUniqueBatch = 6, kUniqueDim = 5;
const int32_t kUniqueLabels[kUniqueBatch] = {0, 1, 2, 3, 4, 5};

std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }
std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

struct InfonceReference {
  std::vector<double> lse, term, direction;
  double loss = 0;
};

// The formula of infonce.h in double; weights empty: all 1.
InfonceReference reference(int64_t batch, int64_t dim, const int32_t* labels, const std::vector<double>& anchor,
                           const std::vector<double>& contrast, const std::vector<double>& weights) {
  InfonceReference r;
  r.lse.assign(batch, 0);
  r.term.assign(batch, 0);
  r.direction.assign(batch * batch, 0);
  std::unordered_map<int32_t, int> per_label;
  for (int64_t u = 0; u < batch; ++u) per_label[labels[u]] += 1;
  double total = 0;
  int64_t rows = 0;
  for (int64_t u = 0; u < batch; ++u) {
    std::vector<double> logits(batch);
    for (int64_t k = 0; k < batch; ++k) {
      double dot = 0;
      for (int64_t d = 0; d < dim; ++d) dot += anchor[u * dim + d] * contrast[k * dim + d];
      logits[k] = dot / kTemperature;
    }
    double top = -INFINITY;
    for (int64_t k = 0; k < batch; ++k)
      if (k != u) top = std::max(top, logits[k]);
    double sum = 0;
    for (int64_t k = 0; k < batch; ++k)
      if (k != u) sum += std::exp(logits[k] - top);
    const double lse = top + std::log(sum);
    const int positives = per_label[labels[u]] - 1;
    double positive_sum = 0;
    for (int64_t k = 0; k < batch; ++k)
      if (k != u && labels[k] == labels[u]) positive_sum += logits[k];
    r.lse[u] = lse;
    r.term[u] = positives > 0 ? lse - positive_sum / positives : 0.0;
    if (positives > 0) {
      rows += 1;
      total += (weights.empty() ? 1.0 : weights[u]) * r.term[u];
      for (int64_t k = 0; k < batch; ++k) {
        if (k == u) continue;
        r.direction[u * batch + k] = std::exp(logits[k] - lse) - (labels[k] == labels[u] ? 1.0 / positives : 0.0);
      }
    }
  }
  r.loss = rows > 0 ? total / rows : 0.0;
  return r;
}

// d f / d x by central differences.
std::vector<double> finite_difference(const std::function<double(const std::vector<double>&)>& f, std::vector<double> x) {
  const double h = 1e-5;
  std::vector<double> gradient(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double keep = x[i];
    x[i] = keep + h;
    const double up = f(x);
    x[i] = keep - h;
    const double down = f(x);
    x[i] = keep;
    gradient[i] = (up - down) / (2 * h);
  }
  return gradient;
}

// Forward: operands anchor, contrast, weights, loss, row_stats, direction.
std::function<std::vector<HostOperand>(Rng&)> forward_inputs(int64_t batch, int64_t dim) {
  return [batch, dim](Rng& rng) {
    return std::vector<HostOperand>{input("anchor", random_floats(rng, batch * dim, -1, 1)),
                                    input("contrast", random_floats(rng, batch * dim, -1, 1)),
                                    input("weights", random_floats(rng, batch, 0.25f, 1.5f)), output("loss", 1),
                                    output("row_stats", 2 * batch), output("direction", batch * batch)};
  };
}

void forward_reference(int64_t batch, int64_t dim, const int32_t* labels, bool weighted, bool with_direction,
                       const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
  const InfonceReference r = reference(batch, dim, labels, to_double(o[0].data), to_double(o[1].data),
                                       weighted ? to_double(o[2].data) : std::vector<double>{});
  want[3] = {r.loss};
  for (int64_t u = 0; u < batch; ++u) {
    want[4].push_back(r.lse[u]);
    want[4].push_back(r.term[u]);
  }
  // Without direction the kernel leaves the operand alone: it stays poisoned, so it is not an output.
  want[5] = with_direction ? r.direction : std::vector<double>{};
}

// Backward: operands anchor, contrast, weights, row_stats, direction, grad, grad_anchor, grad_contrast,
// grad_weights (B = 10 with kLabels; dim 13, or 300 for more than one 256-float chunk of D).
std::function<std::vector<HostOperand>(Rng&)> backward_inputs(int64_t dim) {
  return [dim](Rng& rng) {
    const float range = dim > 64 ? 0.25f : 1.0f;  // keep the logits O(1) for wide rows
    std::vector<float> anchor = random_floats(rng, kBatch * dim, -range, range);
    std::vector<float> contrast = random_floats(rng, kBatch * dim, -range, range);
    std::vector<float> weights = random_floats(rng, kBatch, 0.25f, 1.5f);
    const InfonceReference r = reference(kBatch, dim, kLabels, to_double(anchor), to_double(contrast), to_double(weights));
    std::vector<float> stats;
    for (int64_t u = 0; u < kBatch; ++u) {
      stats.push_back(static_cast<float>(r.lse[u]));
      stats.push_back(static_cast<float>(r.term[u]));
    }
    return std::vector<HostOperand>{input("anchor", anchor), input("contrast", contrast), input("weights", weights),
                                    input("row_stats", stats), input("direction", to_float(r.direction)),
                                    input("grad", random_floats(rng, 1, 0.5f, 1.5f)), output("grad_anchor", kBatch * dim),
                                    output("grad_contrast", kBatch * dim), output("grad_weights", kBatch)};
  };
}

std::function<void(const std::vector<HostOperand>&, std::vector<std::vector<double>>&)> backward_reference(int64_t dim) {
  return [dim](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
    const std::vector<double> anchor = to_double(o[0].data), contrast = to_double(o[1].data), weights = to_double(o[2].data);
    const double g = o[5].data[0];
    want[6] = finite_difference([&](const std::vector<double>& x) { return g * reference(kBatch, dim, kLabels, x, contrast, weights).loss; }, anchor);
    want[7] = finite_difference([&](const std::vector<double>& x) { return g * reference(kBatch, dim, kLabels, anchor, x, weights).loss; }, contrast);
    want[8] = finite_difference([&](const std::vector<double>& x) { return g * reference(kBatch, dim, kLabels, anchor, contrast, x).loss; }, weights);
  };
}

constexpr int64_t kWideDim = 300;

}  // namespace

void add_infonce_cases(std::vector<OpCase>& list) {
  list.push_back({"supcon_infonce_forward weighted+direction", 1e-4, 2e-5, forward_inputs(kBatch, kDim),
                  LMCL_KERNEL_CALL(supcon_infonce_forward(kBatch, kDim, p[0], p[1], index_view(kOnCuda, kLabels), p[2], kTemperature, p[3], p[4], p[5])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    forward_reference(kBatch, kDim, kLabels, true, true, o, want);
                  }});
  list.push_back({"supcon_infonce_forward plain", 1e-4, 2e-5,
                  [](Rng& rng) {
                    std::vector<HostOperand> o = forward_inputs(kSmallBatch, kSmallDim)(rng);
                    o[5].output = false;  // direction not requested
                    return o;
                  },
                  LMCL_KERNEL_CALL(supcon_infonce_forward(kSmallBatch, kSmallDim, p[0], p[1], index_view(kOnCuda, kSmallLabels), nullptr, kTemperature, p[3], p[4], nullptr)),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    forward_reference(kSmallBatch, kSmallDim, kSmallLabels, false, false, o, want);
                  }});
  list.push_back({"supcon_infonce_forward no positives", 1e-4, 2e-5, forward_inputs(kUniqueBatch, kUniqueDim),
                  LMCL_KERNEL_CALL(supcon_infonce_forward(kUniqueBatch, kUniqueDim, p[0], p[1], index_view(kOnCuda, kUniqueLabels), p[2], kTemperature, p[3], p[4], p[5])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    forward_reference(kUniqueBatch, kUniqueDim, kUniqueLabels, true, true, o, want);
                  }});
  list.push_back({"supcon_infonce_backward recompute", 1e-4, 2e-5, backward_inputs(kDim),
                  LMCL_KERNEL_CALL(supcon_infonce_backward(kBatch, kDim, p[0], p[1], index_view(kOnCuda, kLabels), p[2], kTemperature, p[3], nullptr, p[5], p[6], p[7], p[8])),
                  backward_reference(kDim)});
  list.push_back({"supcon_infonce_backward direction", 1e-4, 2e-5, backward_inputs(kDim),
                  LMCL_KERNEL_CALL(supcon_infonce_backward(kBatch, kDim, p[0], p[1], index_view(kOnCuda, kLabels), p[2], kTemperature, p[3], p[4], p[5], p[6], p[7], p[8])),
                  backward_reference(kDim)});
  list.push_back({"supcon_infonce_backward wide", 1e-4, 2e-5, backward_inputs(kWideDim),
                  LMCL_KERNEL_CALL(supcon_infonce_backward(kBatch, kWideDim, p[0], p[1], index_view(kOnCuda, kLabels), p[2], kTemperature, p[3], nullptr, p[5], p[6], p[7], p[8])),
                  backward_reference(kWideDim)});
}

}  // namespace driver
}  // namespace lmcl
