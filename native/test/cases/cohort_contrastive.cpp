// Parity cases for the cohort_contrastive kernels (native/src/cpu/cohort_contrastive.cpp, native/src/cuda/cohort_contrastive.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
// The reference is the formula of native/include/lmcl/cohort_contrastive.h in double: every
// used block's logits, row softmaxes, InfoNCE terms and KLs from scratch, the pair outputs as
// their weighted sums; the backward is central finite differences of Σ g·out (teachers detached
// by construction: the KL teacher rows are recomputed from the fixed inputs only through the
// stop-gradient copy, see kl_total). The stats layout (blocks x = i·E + j, distinct KL terms in
// (student, teacher) order) is the one the header documents.
// Forward cases use pair sets that touch every block, so every softmax/probability entry and every
// stats row is written; the backward cases include a mirrored pair (two pairs sharing KL terms)
// and an embedding in no pair (its gradient must be 0). Tolerances: rtol 1e-4, atol 2e-5.
#include <algorithm>
#include <map>
#include <unordered_map>

#include "../driver.h"

namespace lmcl {
namespace driver {
namespace {

constexpr float kTemperature = 0.5f, kKlTemperature = 2.0f;

constexpr int64_t kCount = 3, kBatch = 8, kDim = 7;
const int32_t kLabels[kBatch] = {0, 1, 0, 1, 2, 0, 3, 1};  // 2 and 3: rows without positives
constexpr int64_t kPairCount = 3;
const int32_t kPairs[2 * kPairCount] = {0, 1, 0, 2, 1, 2};
constexpr int64_t kMirrorPairCount = 2;
const int32_t kMirrorPairs[2 * kMirrorPairCount] = {0, 1, 1, 0};  // embedding 2 in no pair

constexpr int64_t kPairBatch = 11, kPairDim = 5;
const int32_t kPairLabels[kPairBatch] = {4, 4, 7, 7, 7, 1, 4, 9, 1, 7, 4};
const int32_t kSinglePair[2] = {1, 0};

struct Geometry {
  int64_t count, batch, dim, pair_count;
  const int32_t* labels;
  const int32_t* pairs;
};

struct CohortReference {
  std::vector<double> out, softmax, probabilities, stats;
};

// z: count arrays [batch, dim]; weights [pair_count, batch] or empty.
// `teacher`: when not null, the KL teachers' probabilities come from these embeddings instead (a
// stop-gradient copy, so finite differences through z leave the teachers fixed).
CohortReference reference(const Geometry& g, const std::vector<std::vector<double>>& z, const std::vector<double>& weights,
                          const std::vector<std::vector<double>>* teacher = nullptr) {
  const int64_t e = g.count, n = g.batch, width = e * n;
  const double info_scale = 1.0 / kTemperature, kl_scale = 1.0 / (double(kTemperature) * kKlTemperature);
  std::unordered_map<int32_t, int> per_label;
  for (int64_t u = 0; u < n; ++u) per_label[g.labels[u]] += 1;
  int64_t rows_with_positives = 0;
  for (int64_t u = 0; u < n; ++u) rows_with_positives += per_label[g.labels[u]] > 1 ? 1 : 0;
  std::vector<char> needed(e * e, 0);
  std::map<std::pair<int32_t, int32_t>, int32_t> kl_index;
  for (int64_t p = 0; p < g.pair_count; ++p) {
    const int32_t a = g.pairs[2 * p], b = g.pairs[2 * p + 1];
    const int32_t blocks[4] = {int32_t(a * e + a), int32_t(b * e + b), int32_t(a * e + b), int32_t(b * e + a)};
    for (int32_t x : blocks) needed[x] = 1;
    kl_index.emplace(std::make_pair(blocks[0], blocks[1]), 0);
    kl_index.emplace(std::make_pair(blocks[1], blocks[0]), 0);
    kl_index.emplace(std::make_pair(blocks[2], blocks[3]), 0);
    kl_index.emplace(std::make_pair(blocks[3], blocks[2]), 0);
  }
  int32_t next = 0;
  for (auto& entry : kl_index) entry.second = next++;
  CohortReference r;
  r.softmax.assign(width * width, 0);
  r.probabilities.assign(width * width, 0);
  r.stats.assign((3 * e * e + 4 * g.pair_count) * n, 0);
  // Per block: raw similarities S[u, v], the log of the KL softmax rows (from z, and from the
  // teacher copy when given), the InfoNCE terms.
  std::vector<std::vector<double>> log_p(e * e), log_q(e * e), term(e * e);
  auto similarity = [&](const std::vector<std::vector<double>>& emb, int64_t i, int64_t j, int64_t u, int64_t v) {
    double dot = 0;
    for (int64_t d = 0; d < g.dim; ++d) dot += emb[i][u * g.dim + d] * emb[j][v * g.dim + d];
    return dot;
  };
  for (int64_t x = 0; x < e * e; ++x) {
    if (!needed[x]) continue;
    const int64_t i = x / e, j = x % e;
    log_p[x].assign(n * n, 0);
    log_q[x].assign(n * n, 0);
    term[x].assign(n, 0);
    for (int64_t u = 0; u < n; ++u) {
      std::vector<double> s(n), t(n);
      for (int64_t v = 0; v < n; ++v) {
        s[v] = similarity(z, i, j, u, v);
        t[v] = teacher ? similarity(*teacher, i, j, u, v) : s[v];
      }
      double top = -INFINITY, top_all = -INFINITY, top_t = -INFINITY;
      for (int64_t v = 0; v < n; ++v) {
        if (v != u) top = std::max(top, info_scale * s[v]);
        top_all = std::max(top_all, kl_scale * s[v]);
        top_t = std::max(top_t, kl_scale * t[v]);
      }
      double sum = 0, sum_all = 0, sum_t = 0, positive = 0;
      for (int64_t v = 0; v < n; ++v) {
        if (v != u) sum += std::exp(info_scale * s[v] - top);
        if (v != u && g.labels[v] == g.labels[u]) positive += info_scale * s[v];
        sum_all += std::exp(kl_scale * s[v] - top_all);
        sum_t += std::exp(kl_scale * t[v] - top_t);
      }
      const double lse = top + std::log(sum), lse_all = top_all + std::log(sum_all), lse_t = top_t + std::log(sum_t);
      const int positives = per_label[g.labels[u]] - 1;
      term[x][u] = positives > 0 ? lse - positive / positives : 0.0;
      r.stats[x * n + u] = lse;
      r.stats[(e * e + x) * n + u] = term[x][u];
      r.stats[(2 * e * e + x) * n + u] = lse_all;
      const int64_t row = (i * n + u) * width + j * n;
      for (int64_t v = 0; v < n; ++v) {
        r.softmax[row + v] = v != u ? std::exp(info_scale * s[v] - lse) : 0.0;
        r.probabilities[row + v] = std::exp(kl_scale * s[v] - lse_all);
        log_p[x][u * n + v] = kl_scale * s[v] - lse_all;
        log_q[x][u * n + v] = kl_scale * t[v] - lse_t;
      }
    }
  }
  // KL(student x ‖ teacher y)[u] = Σ_v q_y log(q_y / p_x).
  std::vector<std::vector<double>> kl(kl_index.size());
  for (const auto& entry : kl_index) {
    const int32_t x = entry.first.first, y = entry.first.second, k = entry.second;
    kl[k].assign(n, 0);
    for (int64_t u = 0; u < n; ++u) {
      double value = 0;
      for (int64_t v = 0; v < n; ++v) value += std::exp(log_q[y][u * n + v]) * (log_q[y][u * n + v] - log_p[x][u * n + v]);
      kl[k][u] = value;
      r.stats[(3 * e * e + k) * n + u] = value;
    }
  }
  const double info_divisor = rows_with_positives > 0 ? double(rows_with_positives) : 1.0;
  const double kl_factor = double(kKlTemperature) * kKlTemperature / n;
  for (int64_t p = 0; p < g.pair_count; ++p) {
    const int32_t a = g.pairs[2 * p], b = g.pairs[2 * p + 1];
    const int32_t aa = a * e + a, bb = b * e + b, ab = a * e + b, ba = b * e + a;
    double total[4] = {0, 0, 0, 0};
    for (int64_t u = 0; u < n; ++u) {
      const double w = weights.empty() ? 1.0 : weights[p * n + u];
      total[0] += w * (term[aa][u] + term[bb][u]);
      total[1] += w * (term[ab][u] + term[ba][u]);
      total[2] += w * (kl[kl_index[{aa, bb}]][u] + kl[kl_index[{bb, aa}]][u]);
      total[3] += w * (kl[kl_index[{ab, ba}]][u] + kl[kl_index[{ba, ab}]][u]);
    }
    r.out.insert(r.out.end(), {total[0] / info_divisor, total[1] / info_divisor, total[2] * kl_factor, total[3] * kl_factor});
  }
  return r;
}

std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }
std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

// Operands: z_0 .. z_{E−1}, weights, then the op's outputs.
std::vector<HostOperand> embeddings_and_weights(Rng& rng, const Geometry& g) {
  static const char* names[] = {"z0", "z1", "z2", "z3"};
  std::vector<HostOperand> o;
  for (int64_t i = 0; i < g.count; ++i) o.push_back(input(names[i], random_floats(rng, g.batch * g.dim, -1, 1)));
  o.push_back(input("weights", random_floats(rng, g.pair_count * g.batch, 0.25f, 1.5f)));
  return o;
}

std::vector<std::vector<double>> embeddings_of(const std::vector<HostOperand>& o, const Geometry& g) {
  std::vector<std::vector<double>> z;
  for (int64_t i = 0; i < g.count; ++i) z.push_back(to_double(o[i].data));
  return z;
}

std::function<std::vector<HostOperand>(Rng&)> forward_inputs(Geometry g) {
  return [g](Rng& rng) {
    std::vector<HostOperand> o = embeddings_and_weights(rng, g);
    const int64_t width = g.count * g.batch;
    o.push_back(output("out", 4 * g.pair_count));
    o.push_back(output("softmax", width * width));
    o.push_back(output("probabilities", width * width));
    o.push_back(output("stats", (3 * g.count * g.count + 4 * g.pair_count) * g.batch));
    return o;
  };
}

void forward_reference(const Geometry& g, bool weighted, const std::vector<HostOperand>& o,
                       std::vector<std::vector<double>>& want) {
  const CohortReference r = reference(g, embeddings_of(o, g), weighted ? to_double(o[g.count].data) : std::vector<double>{});
  want[g.count + 1] = r.out;
  want[g.count + 2] = r.softmax;
  want[g.count + 3] = r.probabilities;
  want[g.count + 4] = r.stats;
}

// Backward operands: z_0 .. z_{E−1}, weights, softmax, probabilities, stats, grad, grad_z_0 ..
// grad_z_{E−1}, grad_weights.
std::function<std::vector<HostOperand>(Rng&)> backward_inputs(Geometry g, bool weighted) {
  return [g, weighted](Rng& rng) {
    std::vector<HostOperand> o = embeddings_and_weights(rng, g);
    const CohortReference r = reference(g, embeddings_of(o, g), weighted ? to_double(o[g.count].data) : std::vector<double>{});
    o.push_back(input("softmax", to_float(r.softmax)));
    o.push_back(input("probabilities", to_float(r.probabilities)));
    o.push_back(input("stats", to_float(r.stats)));
    o.push_back(input("grad", random_floats(rng, 4 * g.pair_count, 0.5f, 1.5f)));
    static const char* names[] = {"grad_z0", "grad_z1", "grad_z2", "grad_z3"};
    for (int64_t i = 0; i < g.count; ++i) o.push_back(output(names[i], g.batch * g.dim));
    o.push_back(output("grad_weights", g.pair_count * g.batch));
    return o;
  };
}

void backward_reference(const Geometry& g, bool weighted, const std::vector<HostOperand>& o,
                        std::vector<std::vector<double>>& want) {
  const std::vector<std::vector<double>> z = embeddings_of(o, g);
  const std::vector<double> weights = weighted ? to_double(o[g.count].data) : std::vector<double>{};
  const std::vector<float>& grad = o[g.count + 4].data;
  auto objective = [&](const std::vector<std::vector<double>>& embeddings, const std::vector<double>& w) {
    const CohortReference r = reference(g, embeddings, w, &z);  // teachers: the fixed inputs
    double total = 0;
    for (size_t t = 0; t < r.out.size(); ++t) total += grad[t] * r.out[t];
    return total;
  };
  const double h = 1e-5;
  for (int64_t i = 0; i < g.count; ++i) {
    std::vector<std::vector<double>> x = z;
    std::vector<double>& gradient = want[g.count + 5 + i];
    for (size_t k = 0; k < x[i].size(); ++k) {
      const double keep = x[i][k];
      x[i][k] = keep + h;
      const double up = objective(x, weights);
      x[i][k] = keep - h;
      const double down = objective(x, weights);
      x[i][k] = keep;
      gradient.push_back((up - down) / (2 * h));
    }
  }
  std::vector<double>& grad_weights = want[2 * g.count + 5];
  std::vector<double> w = weights.empty() ? std::vector<double>(g.pair_count * g.batch, 1.0) : weights;
  for (size_t k = 0; k < w.size(); ++k) {
    const double keep = w[k];
    w[k] = keep + h;
    const double up = objective(z, w);
    w[k] = keep - h;
    const double down = objective(z, w);
    w[k] = keep;
    grad_weights.push_back((up - down) / (2 * h));
  }
}

const Geometry kTriple{kCount, kBatch, kDim, kPairCount, kLabels, kPairs};
const Geometry kMirror{kCount, kBatch, kDim, kMirrorPairCount, kLabels, kMirrorPairs};
const Geometry kSingle{2, kPairBatch, kPairDim, 1, kPairLabels, kSinglePair};

}  // namespace

void add_cohort_contrastive_cases(std::vector<OpCase>& list) {
  list.push_back({"cohort_contrastive_forward 3 embeddings", 1e-4, 2e-5, forward_inputs(kTriple),
                  LMCL_KERNEL_CALL([&] {
                    const float* z[kCount] = {p[0], p[1], p[2]};
                    return cohort_contrastive_forward(kCount, kBatch, kDim, z, index_view(kOnCuda, kLabels), kPairCount, kPairs, p[3], kTemperature,
                                                      kKlTemperature, p[4], p[5], p[6], p[7]);
                  }()),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    forward_reference(kTriple, true, o, want);
                  }});
  list.push_back({"cohort_contrastive_forward 1 pair", 1e-4, 2e-5, forward_inputs(kSingle),
                  LMCL_KERNEL_CALL([&] {
                    const float* z[2] = {p[0], p[1]};
                    return cohort_contrastive_forward(2, kPairBatch, kPairDim, z, index_view(kOnCuda, kPairLabels), 1, kSinglePair, nullptr,
                                                      kTemperature, kKlTemperature, p[3], p[4], p[5], p[6]);
                  }()),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    forward_reference(kSingle, false, o, want);
                  }});
  list.push_back({"cohort_contrastive_backward 3 embeddings", 1e-4, 2e-5, backward_inputs(kTriple, true),
                  LMCL_KERNEL_CALL([&] {
                    const float* z[kCount] = {p[0], p[1], p[2]};
                    float* grad_z[kCount] = {p[8], p[9], p[10]};
                    return cohort_contrastive_backward(kCount, kBatch, kDim, z, index_view(kOnCuda, kLabels), kPairCount, kPairs, p[3], kTemperature,
                                                       kKlTemperature, p[4], p[5], p[6], p[7], grad_z, p[11]);
                  }()),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    backward_reference(kTriple, true, o, want);
                  }});
  list.push_back({"cohort_contrastive_backward mirror+idle", 1e-4, 2e-5, backward_inputs(kMirror, false),
                  LMCL_KERNEL_CALL([&] {
                    const float* z[kCount] = {p[0], p[1], p[2]};
                    float* grad_z[kCount] = {p[8], p[9], p[10]};
                    return cohort_contrastive_backward(kCount, kBatch, kDim, z, index_view(kOnCuda, kLabels), kMirrorPairCount, kMirrorPairs, nullptr,
                                                       kTemperature, kKlTemperature, p[4], p[5], p[6], p[7], grad_z, p[11]);
                  }()),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    backward_reference(kMirror, false, o, want);
                  }});
}

}  // namespace driver
}  // namespace lmcl
