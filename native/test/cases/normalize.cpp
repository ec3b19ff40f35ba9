// Parity cases for the normalize kernels (native/src/cpu/normalize.cpp, native/src/cuda/normalize.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
// Sizes: rows not a multiple of 16 (the CPU's lane tails), rows longer than 1024 (the CUDA
// block-per-row path), column views with inner > 64 and a partial column block. The backward
// cases take their operands as the forward leaves them (unit rows, consistent norms and cosines),
// with eps = 0.5 and slice norms drawn from [0.1, 3], so both sides of the [n ≥ eps] clamp run.
// Tolerances: rtol 1e-5 / atol 1e-6 (float sums of up to ~2000 products).
#include <algorithm>

#include "../driver.h"

namespace lmcl {
namespace driver {
namespace {

inline size_t at(int64_t o, int64_t d, int64_t c, int64_t dim, int64_t inner) {
  return static_cast<size_t>((o * dim + d) * inner + c);
}
inline size_t slice(int64_t o, int64_t c, int64_t inner) { return static_cast<size_t>(o * inner + c); }

constexpr float kEps = 1e-8f;
constexpr float kClampEps = 0.5f;

void normalize_reference(int64_t outer, int64_t dim, int64_t inner, float eps, const std::vector<float>& x,
                         std::vector<double>& y, std::vector<double>& norms) {
  y.assign(x.size(), 0.0);
  norms.assign(static_cast<size_t>(outer * inner), 0.0);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < inner; ++c) {
      double s = 0;
      for (int64_t d = 0; d < dim; ++d) s += double(x[at(o, d, c, dim, inner)]) * x[at(o, d, c, dim, inner)];
      const double n = std::sqrt(s), clamped = std::max(n, double(eps));
      norms[slice(o, c, inner)] = n;
      for (int64_t d = 0; d < dim; ++d) y[at(o, d, c, dim, inner)] = x[at(o, d, c, dim, inner)] / clamped;
    }
}

void normalize_backward_reference(int64_t outer, int64_t dim, int64_t inner, float eps, const std::vector<float>& y,
                                  const std::vector<float>& norms, const std::vector<float>& g, std::vector<double>& dx) {
  dx.assign(y.size(), 0.0);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < inner; ++c) {
      const double n = norms[slice(o, c, inner)];
      double s = 0;
      for (int64_t d = 0; d < dim; ++d) s += double(g[at(o, d, c, dim, inner)]) * y[at(o, d, c, dim, inner)];
      if (!(n >= eps)) s = 0;
      const double clamped = std::max(n, double(eps));
      for (int64_t d = 0; d < dim; ++d) {
        const size_t k = at(o, d, c, dim, inner);
        dx[k] = (double(g[k]) - double(y[k]) * s) / clamped;
      }
    }
}

void cosine_reference(int64_t outer, int64_t dim, int64_t inner, float eps, const std::vector<float>& a,
                      const std::vector<float>& b, std::vector<double>& out, std::vector<double>& na,
                      std::vector<double>& nb) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < inner; ++c) {
      double ab = 0, aa = 0, bb = 0;
      for (int64_t d = 0; d < dim; ++d) {
        const double p = a[at(o, d, c, dim, inner)], q = b[at(o, d, c, dim, inner)];
        ab += p * q;
        aa += p * p;
        bb += q * q;
      }
      na.push_back(std::sqrt(aa));
      nb.push_back(std::sqrt(bb));
      out.push_back(ab / std::max(std::sqrt(aa), double(eps)) / std::max(std::sqrt(bb), double(eps)));
    }
}

// ga = g / n_a · (b / n_b − out · a / n_a), gb = g / n_b · (a / n_a − out · b / n_b), clamped norms.
void cosine_backward_reference(int64_t outer, int64_t dim, int64_t inner, float eps, const std::vector<HostOperand>& o,
                               std::vector<double>* ga, std::vector<double>* gb) {
  const std::vector<float>&a = o[0].data, &b = o[1].data, &out = o[2].data, &na = o[3].data, &nb = o[4].data,
                            &g = o[5].data;
  if (ga) ga->assign(a.size(), 0.0);
  if (gb) gb->assign(a.size(), 0.0);
  for (int64_t q = 0; q < outer; ++q)
    for (int64_t c = 0; c < inner; ++c) {
      const size_t s = slice(q, c, inner);
      const double ca = std::max(double(na[s]), double(eps)), cb = std::max(double(nb[s]), double(eps));
      for (int64_t d = 0; d < dim; ++d) {
        const size_t k = at(q, d, c, dim, inner);
        if (ga) (*ga)[k] = g[s] / ca * (b[k] / cb - out[s] * (a[k] / ca));
        if (gb) (*gb)[k] = g[s] / cb * (a[k] / ca - out[s] * (b[k] / cb));
      }
    }
}

// A random [outer, dim, inner] tensor whose (outer, inner) slices have norms drawn from
// [0.1, 3] (so eps = 0.5 clamps some of them); the exact norms go to *norms.
inline std::vector<float> random_with_norms(Rng& rng, int64_t outer, int64_t dim, int64_t inner, std::vector<float>* norms) {
  std::vector<float> x = random_floats(rng, static_cast<size_t>(outer * dim * inner), -1, 1);
  const std::vector<float> target = random_floats(rng, static_cast<size_t>(outer * inner), 0.1f, 3);
  norms->assign(target.size(), 0.0f);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < inner; ++c) {
      double s = 0;
      for (int64_t d = 0; d < dim; ++d) s += double(x[at(o, d, c, dim, inner)]) * x[at(o, d, c, dim, inner)];
      const double scale = target[slice(o, c, inner)] / std::sqrt(s);
      double t = 0;
      for (int64_t d = 0; d < dim; ++d) {
        float& v = x[at(o, d, c, dim, inner)];
        v = static_cast<float>(v * scale);
        t += double(v) * v;
      }
      (*norms)[slice(o, c, inner)] = static_cast<float>(std::sqrt(t));
    }
  return x;
}

// Backward operands as the forward leaves them: y = x / max(‖x‖, eps), its norms, and g.
inline std::vector<HostOperand> normalize_backward_operands(Rng& rng, int64_t outer, int64_t dim, int64_t inner) {
  std::vector<float> norms;
  std::vector<float> y = random_with_norms(rng, outer, dim, inner, &norms);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < inner; ++c)
      for (int64_t d = 0; d < dim; ++d) y[at(o, d, c, dim, inner)] /= std::max(norms[slice(o, c, inner)], kClampEps);
  const size_t n = y.size();
  return {input("y", y), input("norms", norms), input("g", random_floats(rng, n)), output("dx", n)};
}

#define LMCL_NORMALIZE_FORWARD_CASE(title, OUTER, DIM, INNER)                                                    \
  list.push_back({title, 1e-5, 1e-6,                                                                            \
                  [](Rng& rng) {                                                                                \
                    return std::vector<HostOperand>{input("x", random_floats(rng, OUTER * DIM * INNER)),          \
                                                    output("y", OUTER * DIM * INNER), output("norms", OUTER * INNER)}; \
                  },                                                                                            \
                  LMCL_KERNEL_CALL(l2_normalize_forward(OUTER, DIM, INNER, kEps, p[0], p[1], p[2])),            \
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {               \
                    normalize_reference(OUTER, DIM, INNER, kEps, o[0].data, want[1], want[2]);                  \
                  }})

#define LMCL_NORMALIZE_BACKWARD_CASE(title, OUTER, DIM, INNER)                                                        \
  list.push_back({title, 1e-5, 1e-6, [](Rng& rng) { return normalize_backward_operands(rng, OUTER, DIM, INNER); },      \
                  LMCL_KERNEL_CALL(l2_normalize_backward(OUTER, DIM, INNER, kClampEps, p[0], p[1], p[2], p[3])),     \
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {                    \
                    normalize_backward_reference(OUTER, DIM, INNER, kClampEps, o[0].data, o[1].data, o[2].data, want[3]); \
                  }})

#define LMCL_COSINE_FORWARD_CASE(title, OUTER, DIM, INNER)                                                           \
  list.push_back({title, 1e-5, 1e-6,                                                                                \
                  [](Rng& rng) {                                                                                    \
                    return std::vector<HostOperand>{input("a", random_floats(rng, OUTER * DIM * INNER)),              \
                                                    input("b", random_floats(rng, OUTER * DIM * INNER)),              \
                                                    output("out", OUTER * INNER), output("norms_a", OUTER * INNER),   \
                                                    output("norms_b", OUTER * INNER)};                                \
                  },                                                                                                \
                  LMCL_KERNEL_CALL(cosine_similarity_forward(OUTER, DIM, INNER, kEps, p[0], p[1], p[2], p[3], p[4])), \
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {                   \
                    cosine_reference(OUTER, DIM, INNER, kEps, o[0].data, o[1].data, want[2], want[3], want[4]);     \
                  }})

// Backward operands as the forward leaves them: a, b (slice norms in [0.1, 3] against eps 0.5),
// out, norms_a, norms_b, then g; outputs ga, gb.
inline std::vector<HostOperand> cosine_backward_operands(Rng& rng, int64_t outer, int64_t dim, int64_t inner) {
  std::vector<float> na, nb;
  const std::vector<float> a = random_with_norms(rng, outer, dim, inner, &na);
  const std::vector<float> b = random_with_norms(rng, outer, dim, inner, &nb);
  std::vector<double> out, unused_a, unused_b;
  cosine_reference(outer, dim, inner, kClampEps, a, b, out, unused_a, unused_b);
  const size_t n = a.size();
  return {input("a", a),   input("b", b), input("out", std::vector<float>(out.begin(), out.end())),
          input("norms_a", na), input("norms_b", nb), input("g", random_floats(rng, na.size())),
          output("ga", n), output("gb", n)};
}

#define LMCL_COSINE_BACKWARD_CASE(title, OUTER, DIM, INNER)                                                              \
  list.push_back({title, 1e-5, 1e-6, [](Rng& rng) { return cosine_backward_operands(rng, OUTER, DIM, INNER); },          \
                  LMCL_KERNEL_CALL(cosine_similarity_backward(OUTER, DIM, INNER, kClampEps, p[0], p[1], p[2], p[3], p[4], \
                                                              p[5], p[6], p[7])),                                        \
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {                        \
                    cosine_backward_reference(OUTER, DIM, INNER, kClampEps, o, &want[6], &want[7]);                      \
                  }})

}  // namespace

void add_normalize_cases(std::vector<OpCase>& list) {
  LMCL_NORMALIZE_FORWARD_CASE("l2_normalize_fwd rows", 9, 37, 1);
  LMCL_NORMALIZE_FORWARD_CASE("l2_normalize_fwd wide", 3, 1500, 1);
  LMCL_NORMALIZE_FORWARD_CASE("l2_normalize_fwd columns", 3, 11, 67);
  // dim == 0: no elements, but every slice's norm is written (0).
  list.push_back({"l2_normalize_fwd dim 0", 0, 0, [](Rng&) { return std::vector<HostOperand>{output("norms", 4 * 3)}; },
                  LMCL_KERNEL_CALL(l2_normalize_forward(4, 0, 3, kEps, nullptr, nullptr, p[0])),
                  [](const std::vector<HostOperand>&, std::vector<std::vector<double>>& want) {
                    want[0].assign(12, 0.0);
                  }});
  LMCL_NORMALIZE_BACKWARD_CASE("l2_normalize_bwd rows", 40, 45, 1);
  LMCL_NORMALIZE_BACKWARD_CASE("l2_normalize_bwd wide", 3, 1201, 1);
  LMCL_NORMALIZE_BACKWARD_CASE("l2_normalize_bwd columns", 5, 7, 70);
  LMCL_COSINE_FORWARD_CASE("cosine_fwd rows", 10, 50, 1);
  LMCL_COSINE_FORWARD_CASE("cosine_fwd wide", 2, 2000, 1);
  LMCL_COSINE_FORWARD_CASE("cosine_fwd columns", 3, 13, 66);
  LMCL_COSINE_BACKWARD_CASE("cosine_bwd rows", 12, 29, 1);
  LMCL_COSINE_BACKWARD_CASE("cosine_bwd columns", 3, 5, 70);
  // ga only (gb null): gb is an input here so nothing may touch it.
  list.push_back({"cosine_bwd ga only", 1e-5, 1e-6,
                  [](Rng& rng) {
                    std::vector<HostOperand> operands = cosine_backward_operands(rng, 6, 19, 1);
                    operands.pop_back();  // no gb
                    return operands;
                  },
                  LMCL_KERNEL_CALL(cosine_similarity_backward(6, 19, 1, kClampEps, p[0], p[1], p[2], p[3], p[4], p[5], p[6],
                                                              nullptr)),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    cosine_backward_reference(6, 19, 1, kClampEps, o, &want[6], nullptr);
                  }});
}

#undef LMCL_NORMALIZE_FORWARD_CASE
#undef LMCL_NORMALIZE_BACKWARD_CASE
#undef LMCL_COSINE_FORWARD_CASE
#undef LMCL_COSINE_BACKWARD_CASE

}  // namespace driver
}  // namespace lmcl
