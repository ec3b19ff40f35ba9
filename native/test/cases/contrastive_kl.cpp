// Parity cases for the contrastive_kl kernels (native/src/cpu/contrastive_kl.cpp, native/src/cuda/contrastive_kl.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
// The reference is the formula of native/include/lmcl/contrastive_kl.h in double
// (KL_u = Σ_v q log(q/p) from explicit softmaxes); the gradients are central finite differences of
// that double loss with the teacher held fixed. Odd sizes (B = 9, D = 11; distill B = 7, C = 37)
// exercise the warp and block tails; a D = 300 backward covers more than one 256-float chunk.
// Tolerances: rtol 1e-4, atol 2e-5.
#include <algorithm>

#include "../driver.h"

namespace lmcl {
namespace driver {
namespace {

constexpr float kTemperature = 0.5f, kKlTemperature = 1.5f;
constexpr int64_t kBatch = 9, kDim = 11, kWideDim = 300;  // 300: more than one 256-float chunk of D
constexpr int64_t kRows = 7, kClasses = 37;
constexpr float kDistillTemperature = 2.0f;

std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }
std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

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

struct KlReference {
  std::vector<double> stats;      // [rows, 3]
  std::vector<double> direction;  // [rows, columns]: p − q
  double loss = 0;
};

// Row KLs of logits student/teacher [rows, columns] at `scale`; loss = factor·Σ w·KL / rows.
KlReference kl_rows(int64_t rows, int64_t columns, const std::vector<double>& student, const std::vector<double>& teacher,
                    const std::vector<double>& weights, double scale, double factor) {
  KlReference r;
  double total = 0;
  for (int64_t u = 0; u < rows; ++u) {
    double top_s = -INFINITY, top_t = -INFINITY;
    for (int64_t v = 0; v < columns; ++v) {
      top_s = std::max(top_s, scale * student[u * columns + v]);
      top_t = std::max(top_t, scale * teacher[u * columns + v]);
    }
    double sum_s = 0, sum_t = 0;
    for (int64_t v = 0; v < columns; ++v) {
      sum_s += std::exp(scale * student[u * columns + v] - top_s);
      sum_t += std::exp(scale * teacher[u * columns + v] - top_t);
    }
    const double lse_s = top_s + std::log(sum_s), lse_t = top_t + std::log(sum_t);
    double kl = 0;
    for (int64_t v = 0; v < columns; ++v) {
      const double log_p = scale * student[u * columns + v] - lse_s, log_q = scale * teacher[u * columns + v] - lse_t;
      kl += std::exp(log_q) * (log_q - log_p);
      r.direction.push_back(std::exp(log_p) - std::exp(log_q));
    }
    r.stats.insert(r.stats.end(), {lse_s, lse_t, kl});
    total += (weights.empty() ? 1.0 : weights[u]) * kl;
  }
  r.loss = factor * total / rows;
  return r;
}

// Raw similarities of [kBatch, dim] embeddings (dim from the sizes).
std::vector<double> similarities(const std::vector<double>& a, const std::vector<double>& c) {
  const int64_t dim = static_cast<int64_t>(a.size()) / kBatch;
  std::vector<double> s(kBatch * kBatch, 0);
  for (int64_t u = 0; u < kBatch; ++u)
    for (int64_t v = 0; v < kBatch; ++v)
      for (int64_t d = 0; d < dim; ++d) s[u * kBatch + v] += a[u * dim + d] * c[v * dim + d];
  return s;
}

KlReference contrastive_reference(const std::vector<double>& sa, const std::vector<double>& sc, const std::vector<double>& ta,
                                  const std::vector<double>& tc, const std::vector<double>& weights) {
  return kl_rows(kBatch, kBatch, similarities(sa, sc), similarities(ta, tc), weights,
                 1.0 / (double(kTemperature) * kKlTemperature), double(kKlTemperature) * kKlTemperature);
}

// Contrastive forward operands: sA, sC, tA, tC, weights, loss, row_stats, direction.
std::vector<HostOperand> contrastive_forward_inputs(Rng& rng, int64_t dim = kDim) {
  const size_t n = kBatch * dim;
  const float r = dim > 64 ? 0.25f : 1.0f;  // keep the logits O(1) for wide rows
  return {input("student_anchor", random_floats(rng, n, -r, r)), input("student_contrast", random_floats(rng, n, -r, r)),
          input("teacher_anchor", random_floats(rng, n, -r, r)), input("teacher_contrast", random_floats(rng, n, -r, r)),
          input("weights", random_floats(rng, kBatch, 0.25f, 1.5f)), output("loss", 1), output("row_stats", 3 * kBatch),
          output("direction", kBatch * kBatch)};
}

// Contrastive backward operands: sA, sC, tA, tC, weights, row_stats, direction, grad,
// grad_student_anchor, grad_student_contrast, grad_weights.
std::vector<HostOperand> contrastive_backward_inputs(Rng& rng, int64_t dim = kDim) {
  std::vector<HostOperand> o = contrastive_forward_inputs(rng, dim);
  const KlReference r = contrastive_reference(to_double(o[0].data), to_double(o[1].data), to_double(o[2].data),
                                              to_double(o[3].data), to_double(o[4].data));
  std::vector<HostOperand> b(o.begin(), o.begin() + 5);
  b.push_back(input("row_stats", to_float(r.stats)));
  b.push_back(input("direction", to_float(r.direction)));
  b.push_back(input("grad", random_floats(rng, 1, 0.5f, 1.5f)));
  b.push_back(output("grad_student_anchor", kBatch * dim));
  b.push_back(output("grad_student_contrast", kBatch * dim));
  b.push_back(output("grad_weights", kBatch));
  return b;
}

void contrastive_backward_reference(const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
  const std::vector<double> sa = to_double(o[0].data), sc = to_double(o[1].data), ta = to_double(o[2].data),
                            tc = to_double(o[3].data), w = to_double(o[4].data);
  const double g = o[7].data[0];
  want[8] = finite_difference([&](const std::vector<double>& x) { return g * contrastive_reference(x, sc, ta, tc, w).loss; }, sa);
  want[9] = finite_difference([&](const std::vector<double>& x) { return g * contrastive_reference(sa, x, ta, tc, w).loss; }, sc);
  want[10] = finite_difference([&](const std::vector<double>& x) { return g * contrastive_reference(sa, sc, ta, tc, x).loss; }, w);
}

KlReference distill_reference(const std::vector<double>& student, const std::vector<double>& teacher,
                              const std::vector<double>& weights) {
  return kl_rows(kRows, kClasses, student, teacher, weights, 1.0 / kDistillTemperature,
                 double(kDistillTemperature) * kDistillTemperature);
}

}  // namespace

void add_contrastive_kl_cases(std::vector<OpCase>& list) {
  list.push_back({"contrastive_kl_forward weighted+direction", 1e-4, 2e-5, [](Rng& rng) { return contrastive_forward_inputs(rng); },
                  LMCL_KERNEL_CALL(contrastive_kl_forward(kBatch, kDim, p[0], p[1], p[2], p[3], p[4], kTemperature, kKlTemperature, p[5], p[6], p[7])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    const KlReference r = contrastive_reference(to_double(o[0].data), to_double(o[1].data),
                                                                to_double(o[2].data), to_double(o[3].data), to_double(o[4].data));
                    want[5] = {r.loss};
                    want[6] = r.stats;
                    want[7] = r.direction;
                  }});
  list.push_back({"contrastive_kl_forward plain", 1e-4, 2e-5,
                  [](Rng& rng) {
                    std::vector<HostOperand> o = contrastive_forward_inputs(rng);
                    o[7].output = false;  // direction not requested
                    return o;
                  },
                  LMCL_KERNEL_CALL(contrastive_kl_forward(kBatch, kDim, p[0], p[1], p[2], p[3], nullptr, kTemperature, kKlTemperature, p[5], p[6], nullptr)),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    const KlReference r = contrastive_reference(to_double(o[0].data), to_double(o[1].data),
                                                                to_double(o[2].data), to_double(o[3].data), {});
                    want[5] = {r.loss};
                    want[6] = r.stats;
                  }});
  list.push_back({"contrastive_kl_backward recompute", 1e-4, 2e-5, [](Rng& rng) { return contrastive_backward_inputs(rng); },
                  LMCL_KERNEL_CALL(contrastive_kl_backward(kBatch, kDim, p[0], p[1], p[2], p[3], p[4], kTemperature, kKlTemperature, p[5], nullptr, p[7], p[8], p[9], p[10])),
                  contrastive_backward_reference});
  list.push_back({"contrastive_kl_backward direction", 1e-4, 2e-5, [](Rng& rng) { return contrastive_backward_inputs(rng); },
                  LMCL_KERNEL_CALL(contrastive_kl_backward(kBatch, kDim, p[0], p[1], p[2], p[3], p[4], kTemperature, kKlTemperature, p[5], p[6], p[7], p[8], p[9], p[10])),
                  contrastive_backward_reference});
  list.push_back({"contrastive_kl_backward wide", 1e-4, 2e-5, [](Rng& rng) { return contrastive_backward_inputs(rng, kWideDim); },
                  LMCL_KERNEL_CALL(contrastive_kl_backward(kBatch, kWideDim, p[0], p[1], p[2], p[3], p[4], kTemperature, kKlTemperature, p[5], nullptr, p[7], p[8], p[9], p[10])),
                  contrastive_backward_reference});
  // distillKL: student, teacher, weights, loss, row_stats.
  list.push_back({"distill_kl_forward", 1e-4, 2e-5,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("student", random_floats(rng, kRows * kClasses, -4, 4)),
                                                    input("teacher", random_floats(rng, kRows * kClasses, -4, 4)),
                                                    input("weights", random_floats(rng, kRows, 0.25f, 1.5f)),
                                                    output("loss", 1), output("row_stats", 3 * kRows)};
                  },
                  LMCL_KERNEL_CALL(distill_kl_forward(kRows, kClasses, p[0], p[1], p[2], kDistillTemperature, p[3], p[4])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    const KlReference r = distill_reference(to_double(o[0].data), to_double(o[1].data), to_double(o[2].data));
                    want[3] = {r.loss};
                    want[4] = r.stats;
                  }});
  // distillKL backward: student, teacher, weights, row_stats, grad, grad_student, grad_weights.
  list.push_back({"distill_kl_backward", 1e-4, 2e-5,
                  [](Rng& rng) {
                    std::vector<float> student = random_floats(rng, kRows * kClasses, -4, 4);
                    std::vector<float> teacher = random_floats(rng, kRows * kClasses, -4, 4);
                    std::vector<float> weights = random_floats(rng, kRows, 0.25f, 1.5f);
                    const KlReference r = distill_reference(to_double(student), to_double(teacher), to_double(weights));
                    return std::vector<HostOperand>{input("student", student), input("teacher", teacher),
                                                    input("weights", weights), input("row_stats", to_float(r.stats)),
                                                    input("grad", random_floats(rng, 1, 0.5f, 1.5f)),
                                                    output("grad_student", kRows * kClasses), output("grad_weights", kRows)};
                  },
                  LMCL_KERNEL_CALL(distill_kl_backward(kRows, kClasses, p[0], p[1], p[2], kDistillTemperature, p[3], p[4], p[5], p[6])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    const std::vector<double> s = to_double(o[0].data), t = to_double(o[1].data), w = to_double(o[2].data);
                    const double g = o[4].data[0];
                    want[5] = finite_difference([&](const std::vector<double>& x) { return g * distill_reference(x, t, w).loss; }, s);
                    want[6] = finite_difference([&](const std::vector<double>& x) { return g * distill_reference(s, t, x).loss; }, w);
                  }});
}

}  // namespace driver
}  // namespace lmcl
