// Parity cases for the memory_bank kernels (native/src/cpu/memory_bank.cpp, native/src/cuda/memory_bank.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
// The references gather the bank rows explicitly (the kernels never do) and follow the formulas
// of native/include/lmcl/memory_bank.h in double; the InfoNCE query gradient is central finite
// differences of the double loss. Indices and rows are index operands (index_view),
// with repeats across queries; D = 37 and D = 300 (> one 256-float chunk) exercise the tails.
// memory_update works in place: the bank operand is an output that starts random, and rows not
// updated must come back unchanged. Tolerances: rtol 1e-4, atol 2e-5 (memory_update 1e-6, 1e-7).
#include <algorithm>

#include "../driver.h"

namespace lmcl {
namespace driver {
namespace {

constexpr int64_t kBatch = 5, kColumns = 11, kDim = 37, kBankRows = 23, kPositives = 3;
constexpr int64_t kWideDim = 300;
constexpr int64_t kQueries = 3;  // the logits cases: three queries share each row's keys
constexpr float kScale = 1.0f / 0.7f;
// Row u's columns: indices[u·K .. (u+1)·K) (repeats within and across rows).
const int32_t kIndices[kBatch * kColumns] = {
    3, 17, 0, 22, 5, 9, 9, 12, 1, 20, 7,   14, 2, 18, 6, 6, 11, 21, 4, 8, 13, 19,
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,      22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12,
    10, 3, 17, 3, 11, 0, 22, 5, 16, 2, 15};
constexpr int64_t kUpdateCount = 6, kUpdateDim = 19;
const int32_t kRows[kUpdateCount] = {4, 0, 22, 13, 7, 18};
constexpr double kMomentum = 0.75;

std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

// logits[u, k] = scale·⟨bank[idx], query[u]⟩ in double.
std::vector<double> logits_of(int64_t dim, const std::vector<double>& query, const std::vector<double>& bank) {
  std::vector<double> logits(kBatch * kColumns, 0);
  for (int64_t u = 0; u < kBatch; ++u)
    for (int64_t k = 0; k < kColumns; ++k) {
      const int64_t row = kIndices[u * kColumns + k];
      double dot = 0;
      for (int64_t d = 0; d < dim; ++d) dot += bank[row * dim + d] * query[u * dim + d];
      logits[u * kColumns + k] = kScale * dot;
    }
  return logits;
}

struct InfoNceReference {
  std::vector<double> logits, stats;
  double loss = 0;
};

InfoNceReference info_nce(int64_t dim, const std::vector<double>& query, const std::vector<double>& bank,
                          const std::vector<double>& weights) {
  InfoNceReference r;
  r.logits = logits_of(dim, query, bank);
  double total = 0;
  for (int64_t u = 0; u < kBatch; ++u) {
    const double* x = r.logits.data() + u * kColumns;
    const double top = *std::max_element(x, x + kColumns);
    double sum = 0, positive = 0;
    for (int64_t k = 0; k < kColumns; ++k) sum += std::exp(x[k] - top);
    for (int64_t k = 0; k < kPositives; ++k) positive += x[k];
    const double lse = top + std::log(sum), term = lse - positive / kPositives;
    r.stats.insert(r.stats.end(), {lse, term});
    total += (weights.empty() ? 1.0 : weights[u]) * term;
  }
  r.loss = total / kBatch;
  return r;
}

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

// InfoNCE backward operands: bank, logits, stats, weights, grad, grad_query, grad_weights (+ query
// as the last, unused-by-the-kernel operand the reference differentiates at).
std::function<std::vector<HostOperand>(Rng&)> info_nce_backward_inputs(int64_t dim) {
  return [dim](Rng& rng) {
    std::vector<float> query = random_floats(rng, kBatch * dim, -0.3f, 0.3f);
    std::vector<float> bank = random_floats(rng, kBankRows * dim, -0.3f, 0.3f);
    std::vector<float> weights = random_floats(rng, kBatch, 0.25f, 1.5f);
    const InfoNceReference r = info_nce(dim, to_double(query), to_double(bank), to_double(weights));
    return std::vector<HostOperand>{input("bank", bank), input("logits", std::vector<float>(r.logits.begin(), r.logits.end())),
                                    input("stats", std::vector<float>(r.stats.begin(), r.stats.end())),
                                    input("weights", weights), input("grad", random_floats(rng, 1, 0.5f, 1.5f)),
                                    output("grad_query", kBatch * dim), output("grad_weights", kBatch), input("query", query)};
  };
}

std::function<void(const std::vector<HostOperand>&, std::vector<std::vector<double>>&)> info_nce_backward_reference(int64_t dim) {
  return [dim](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
    const std::vector<double> bank = to_double(o[0].data), weights = to_double(o[3].data), query = to_double(o[7].data);
    const double g = o[4].data[0];
    want[5] = finite_difference([&](const std::vector<double>& x) { return g * info_nce(dim, x, bank, weights).loss; }, query);
    want[6] = finite_difference([&](const std::vector<double>& x) { return g * info_nce(dim, query, bank, x).loss; }, weights);
  };
}

// The logits forward and transpose cases with Q queries sharing each row's keys.
template <int64_t Q>
void add_logits_cases(std::vector<OpCase>& list, const char* forward_name, const char* transpose_name) {
  list.push_back({forward_name, 1e-4, 2e-5,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("query", random_floats(rng, Q * kBatch * kDim, -1, 1)),
                                                    input("bank", random_floats(rng, kBankRows * kDim, -1, 1)),
                                                    output("logits", Q * kBatch * kColumns)};
                  },
                  LMCL_KERNEL_CALL(memory_logits_forward(Q, kBatch, kColumns, kDim, kBankRows, p[0], p[1], index_view(kOnCuda, kIndices), kScale, p[2])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    const std::vector<double> query = to_double(o[0].data), bank = to_double(o[1].data);
                    want[2].clear();
                    for (int64_t q = 0; q < Q; ++q) {
                      const std::vector<double> slice(query.begin() + q * kBatch * kDim, query.begin() + (q + 1) * kBatch * kDim);
                      const std::vector<double> logits = logits_of(kDim, slice, bank);
                      want[2].insert(want[2].end(), logits.begin(), logits.end());
                    }
                  }});
  list.push_back({transpose_name, 1e-4, 2e-5,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("grad", random_floats(rng, Q * kBatch * kColumns, -1, 1)),
                                                    input("bank", random_floats(rng, kBankRows * kWideDim, -1, 1)),
                                                    output("out", Q * kBatch * kWideDim)};
                  },
                  LMCL_KERNEL_CALL(memory_logits_transpose(Q, kBatch, kColumns, kWideDim, kBankRows, p[0], p[1], index_view(kOnCuda, kIndices), kScale, p[2])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    want[2].assign(Q * kBatch * kWideDim, 0);
                    for (int64_t q = 0; q < Q; ++q)
                      for (int64_t u = 0; u < kBatch; ++u)
                        for (int64_t k = 0; k < kColumns; ++k) {
                          const double c = double(kScale) * o[0].data[(q * kBatch + u) * kColumns + k];
                          const int64_t row = kIndices[u * kColumns + k];
                          for (int64_t d = 0; d < kWideDim; ++d)
                            want[2][(q * kBatch + u) * kWideDim + d] += c * o[1].data[row * kWideDim + d];
                        }
                  }});
}

}  // namespace

void add_memory_bank_cases(std::vector<OpCase>& list) {
  // The logits ops with one query and with kQueries (query [Q, B, D] → logits [Q, B, K] and back).
  add_logits_cases<1>(list, "memory_logits_forward", "memory_logits_transpose");
  add_logits_cases<kQueries>(list, "memory_logits_forward Q=3", "memory_logits_transpose Q=3");
  // InfoNCE forward: query, bank, weights, loss, logits, stats.
  list.push_back({"memory_info_nce_forward", 1e-4, 2e-5,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("query", random_floats(rng, kBatch * kDim, -0.3f, 0.3f)),
                                                    input("bank", random_floats(rng, kBankRows * kDim, -0.3f, 0.3f)),
                                                    input("weights", random_floats(rng, kBatch, 0.25f, 1.5f)),
                                                    output("loss", 1), output("logits", kBatch * kColumns),
                                                    output("stats", 2 * kBatch)};
                  },
                  LMCL_KERNEL_CALL(memory_info_nce_forward(kBatch, kColumns, kDim, kBankRows, kPositives, p[0], p[1], index_view(kOnCuda, kIndices), p[2], kScale, p[3], p[4], p[5])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    const InfoNceReference r = info_nce(kDim, to_double(o[0].data), to_double(o[1].data), to_double(o[2].data));
                    want[3] = {r.loss};
                    want[4] = r.logits;
                    want[5] = r.stats;
                  }});
  list.push_back({"memory_info_nce_backward", 1e-4, 2e-5, info_nce_backward_inputs(kDim),
                  LMCL_KERNEL_CALL(memory_info_nce_backward(kBatch, kColumns, kDim, kBankRows, kPositives, p[0], index_view(kOnCuda, kIndices), p[1], p[2], p[3], p[4], kScale, p[5], p[6])),
                  info_nce_backward_reference(kDim)});
  list.push_back({"memory_info_nce_backward wide", 1e-4, 2e-5, info_nce_backward_inputs(kWideDim),
                  LMCL_KERNEL_CALL(memory_info_nce_backward(kBatch, kColumns, kWideDim, kBankRows, kPositives, p[0], index_view(kOnCuda, kIndices), p[1], p[2], nullptr, p[4], kScale, p[5], p[6])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    const std::vector<double> bank = to_double(o[0].data), query = to_double(o[7].data);
                    const double g = o[4].data[0];
                    want[5] = finite_difference([&](const std::vector<double>& x) { return g * info_nce(kWideDim, x, bank, {}).loss; }, query);
                    want[6] = finite_difference([&](const std::vector<double>& x) { return g * info_nce(kWideDim, query, bank, x).loss; },
                                                std::vector<double>(kBatch, 1.0));
                  }});
  // memory_update with a row whose mix has norm 0 (momentum 0, z's row at position 1 zero): the
  // CPU's error at the call; on CUDA a deferred check (reported at the next synchronisation) —
  // on both, the bank must come back unchanged (nothing written half).
  list.push_back({"memory_update zero row", 0, 0,
                  [](Rng& rng) {
                    std::vector<float> z = random_floats(rng, kUpdateCount * kUpdateDim, -1, 1);
                    std::fill(z.begin() + kUpdateDim, z.begin() + 2 * kUpdateDim, 0.0f);
                    return std::vector<HostOperand>{{"bank", random_floats(rng, kBankRows * kUpdateDim, -1, 1), true},
                                                    input("z", z)};
                  },
                  LMCL_KERNEL_CALL(expect_deferred_error(kOnCuda, memory_update(kBankRows, kUpdateDim, kUpdateCount, p[0], index_view(kOnCuda, kRows), p[1], 0.0),
                                                         "memory_update", "the updated bank row 0 (position 1) has norm 0.000000; normalising it would write a non-finite row (the bank is unchanged)")),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) { want[0] = to_double(o[0].data); }});
  // memory_update: bank (in place, starts random), z.
  list.push_back({"memory_update", 1e-6, 1e-7,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{{"bank", random_floats(rng, kBankRows * kUpdateDim, -1, 1), true},
                                                    input("z", random_floats(rng, kUpdateCount * kUpdateDim, -1, 1))};
                  },
                  LMCL_KERNEL_CALL(memory_update(kBankRows, kUpdateDim, kUpdateCount, p[0], index_view(kOnCuda, kRows), p[1], kMomentum)),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    want[0] = to_double(o[0].data);
                    for (int64_t i = 0; i < kUpdateCount; ++i) {
                      double squares = 0;
                      std::vector<double> v(kUpdateDim);
                      for (int64_t d = 0; d < kUpdateDim; ++d) {
                        v[d] = kMomentum * o[0].data[kRows[i] * kUpdateDim + d] + (1 - kMomentum) * o[1].data[i * kUpdateDim + d];
                        squares += v[d] * v[d];
                      }
                      for (int64_t d = 0; d < kUpdateDim; ++d) want[0][kRows[i] * kUpdateDim + d] = v[d] / std::sqrt(squares);
                    }
                  }});
}

}  // namespace driver
}  // namespace lmcl
