// Parity cases for the batchnorm kernels (forward, backward, training-mode double backward) (native/src/cpu/batchnorm.cpp, native/src/cuda/batchnorm.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
//
// The references are the formulas of native/include/lmcl/batchnorm.h in double: per-channel
// mean and biased variance over the N·S values, y = relu?((x − mean)·invstd·weight + bias
// [+ residual]), the running statistics with the unbiased variance, and the backward sums with
// the ReLU mask g = output > 0 ? dy : 0. Outputs are NaN-poisoned (running stats, which are
// updated in place, start random). Absent operands (null weight, bias, running stats, epilogue
// tensors, unwanted gradients) are passed as null and not compared. Shapes cover C < 16 and
// C >= 16, S = 1 ([N, C] inputs), odd S, and batches split into several statistics blocks.
// Tolerance: rtol 1e-5, atol 1e-5 (float maps of values of size <= ~10; sums in double); the
// backward cases' atol grows with M = N·S (the CPU's float-lane partial sums): 1e-5 below 256,
// 3e-5 below 2048, 2e-4 above. Sized from 300 random seeds (Xeon VM, 2026-12-03): the worst error
// is then <= ~25% of its tolerance in every case (at 1e-5 for every M < 2048 it reached 47%).
#include <utility>

#include "../driver.h"

namespace lmcl {
namespace driver {
namespace {

// ---- forward ---------------------------------------------------------------------------------
// Operands: 0 x, 1 weight, 2 bias, 3 running_mean, 4 running_var, 5 residual, 6 y, 7 save_mean,
// 8 save_invstd.
struct ForwardCase {
  const char* name;
  bool training;
  int64_t batch, channels, spatial;
  bool weight, bias, running, residual, relu;
};

constexpr double kMomentum = 0.1, kEps = 1e-5;

constexpr ForwardCase kForwardCases[] = {
    {"bn train C3 affine", true, 16, 3, 1000, true, true, true, false, false},
    {"bn train C17 bare relu", true, 40, 17, 300, false, false, false, false, true},
    {"bn train C17 w res relu", true, 40, 17, 123, true, false, true, true, true},
    {"bn train C20 S1 b res", true, 300, 20, 1, false, true, false, true, false},
    {"bn train C5 relu", true, 7, 5, 33, true, true, true, false, true},
    {"bn train C2 N1", true, 1, 2, 4097, true, true, true, true, false},
    {"bn eval C3 affine", false, 5, 3, 49, true, true, true, false, false},
    {"bn eval C24 res relu", false, 9, 24, 50, false, false, true, true, true},
    {"bn eval C16 S1 w relu", false, 33, 16, 1, true, false, true, false, true},
};

template <int kIndex>
void add_forward_case(std::vector<OpCase>& list) {
  static constexpr const ForwardCase& F = kForwardCases[kIndex];
  static constexpr int64_t kNumel = F.batch * F.channels * F.spatial, kC = F.channels;
  list.push_back({F.name, 1e-5, 1e-5,
                  [](Rng& rng) {
                    // x with a per-channel offset, so the mean is not ~0
                    std::vector<float> x = random_floats(rng, kNumel);
                    for (int64_t i = 0; i < kNumel; ++i) x[i] += 0.5f * static_cast<float>((i / F.spatial) % kC) - 1.0f;
                    const bool update = F.training && F.running;  // the running stats are outputs
                    return std::vector<HostOperand>{
                        input("x", std::move(x)),
                        input("weight", random_floats(rng, kC, 0.5f, 1.5f)),
                        input("bias", random_floats(rng, kC)),
                        HostOperand{"running_mean", random_floats(rng, kC, -1.0f, 1.0f), update},
                        HostOperand{"running_var", random_floats(rng, kC, 0.5f, 1.5f), update},
                        input("residual", random_floats(rng, kNumel)),
                        output("y", kNumel),
                        output("save_mean", kC),
                        output("save_invstd", kC)};
                  },
                  LMCL_KERNEL_CALL(F.training
                                       ? batch_norm_forward_training(
                                             BatchNormShape{F.batch, F.channels, F.spatial}, p[0], F.weight ? p[1] : nullptr,
                                             F.bias ? p[2] : nullptr, F.running ? p[3] : nullptr, F.running ? p[4] : nullptr,
                                             kMomentum, kEps, BatchNormEpilogue{F.residual ? p[5] : nullptr, F.relu}, p[6], p[7],
                                             p[8])
                                       : batch_norm_forward_eval(BatchNormShape{F.batch, F.channels, F.spatial}, p[0],
                                                                 F.weight ? p[1] : nullptr, F.bias ? p[2] : nullptr, p[3], p[4],
                                                                 kEps, BatchNormEpilogue{F.residual ? p[5] : nullptr, F.relu},
                                                                 p[6], p[7], p[8])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    const std::vector<float>& x = o[0].data;
                    const int64_t S = F.spatial, M = F.batch * F.spatial;
                    want[3].assign(o[3].data.begin(), o[3].data.end());
                    want[4].assign(o[4].data.begin(), o[4].data.end());
                    want[6].assign(kNumel, 0.0);
                    want[7].assign(kC, 0.0);
                    want[8].assign(kC, 0.0);
                    for (int64_t c = 0; c < kC; ++c) {
                      double mean, invstd;
                      if (F.training) {
                        double sum = 0, squares = 0;
                        for (int64_t n = 0; n < F.batch; ++n)
                          for (int64_t s = 0; s < S; ++s) sum += x[(n * kC + c) * S + s];
                        mean = sum / M;
                        for (int64_t n = 0; n < F.batch; ++n)
                          for (int64_t s = 0; s < S; ++s) {
                            const double d = x[(n * kC + c) * S + s] - mean;
                            squares += d * d;
                          }
                        const double variance = squares / M;
                        invstd = 1.0 / std::sqrt(variance + kEps);
                        if (F.running) {
                          want[3][c] = (1 - kMomentum) * o[3].data[c] + kMomentum * mean;
                          want[4][c] = (1 - kMomentum) * o[4].data[c] + kMomentum * squares / (M - 1);
                        }
                      } else {
                        mean = o[3].data[c];
                        invstd = 1.0 / std::sqrt(double(o[4].data[c]) + kEps);
                      }
                      want[7][c] = mean;
                      want[8][c] = invstd;
                      const double w = F.weight ? o[1].data[c] : 1.0, b = F.bias ? o[2].data[c] : 0.0;
                      for (int64_t n = 0; n < F.batch; ++n)
                        for (int64_t s = 0; s < S; ++s) {
                          const int64_t i = (n * kC + c) * S + s;
                          double v = (x[i] - mean) * invstd * w + b;
                          if (F.residual) v += o[5].data[i];
                          if (F.relu) v = v > 0 ? v : 0;
                          want[6][i] = v;
                        }
                    }
                  }});
}

// ---- backward --------------------------------------------------------------------------------
// The saved statistics of x: the batch's own mean and invstd, rounded to float (as the forward
// writes them), so the backward formulas' cancellations are realistic.
void saved_statistics(const std::vector<float>& x, int64_t batch, int64_t channels, int64_t spatial,
                      std::vector<float>* mean, std::vector<float>* invstd) {
  const int64_t M = batch * spatial;
  mean->assign(channels, 0.0f);
  invstd->assign(channels, 0.0f);
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0, squares = 0;
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t s = 0; s < spatial; ++s) sum += x[(n * channels + c) * spatial + s];
    const double m = sum / M;
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t s = 0; s < spatial; ++s) {
        const double d = x[(n * channels + c) * spatial + s] - m;
        squares += d * d;
      }
    (*mean)[c] = static_cast<float>(m);
    (*invstd)[c] = static_cast<float>(1.0 / std::sqrt(squares / M + kEps));
  }
}

// The CPU sums in float lanes (flushed to double every 1024 elements): gradient sums' errors grow
// with the partial sums, ~3e-5 at M ~ 10^4, whatever the final sum.
constexpr double backward_atol(int64_t reduced) { return reduced >= 2048 ? 2e-4 : reduced >= 256 ? 3e-5 : 1e-5; }

// Operands: 0 dy, 1 x, 2 weight, 3 save_mean, 4 save_invstd, 5 output (the fused forward's,
// for the ReLU mask), 6 grad_residual, 7 grad_input, 8 grad_weight, 9 grad_bias.
struct BackwardCase {
  const char* name;
  bool training;
  int64_t batch, channels, spatial;
  bool weight, mask, grad_residual, grad_input, grad_weight, grad_bias;
};

constexpr BackwardCase kBackwardCases[] = {
    {"bn back train C3", true, 16, 3, 700, true, false, false, true, true, true},
    {"bn back train C17 relu res", true, 40, 17, 300, false, true, true, true, true, true},
    {"bn back train C20 S1 relu", true, 300, 20, 1, true, true, false, true, true, false},
    {"bn back train C4 res", true, 12, 4, 700, true, false, true, true, true, false},
    {"bn back train C6 sums", true, 5, 6, 37, true, true, false, false, true, true},
    {"bn back eval C5 res", false, 7, 5, 33, true, false, true, true, false, false},
    {"bn back eval C24 relu res", false, 9, 24, 50, true, true, true, true, false, true},
    {"bn back eval C16 mask only", false, 3, 16, 31, false, true, true, false, false, false},
    {"bn back eval C3 w grads", false, 11, 3, 65, true, true, false, true, true, false},
};

template <int kIndex>
void add_backward_case(std::vector<OpCase>& list) {
  static constexpr const BackwardCase& B = kBackwardCases[kIndex];
  static constexpr int64_t kNumel = B.batch * B.channels * B.spatial, kC = B.channels;
  constexpr double kAtol = backward_atol(B.batch * B.spatial);
  list.push_back({B.name, 1e-5, kAtol,
                  [](Rng& rng) {
                    std::vector<float> x = random_floats(rng, kNumel);
                    std::vector<float> mean, invstd;
                    saved_statistics(x, B.batch, kC, B.spatial, &mean, &invstd);
                    return std::vector<HostOperand>{
                        input("dy", random_floats(rng, kNumel)),
                        input("x", std::move(x)),
                        input("weight", random_floats(rng, kC, 0.5f, 1.5f)),
                        input("save_mean", std::move(mean)),
                        input("save_invstd", std::move(invstd)),
                        input("output", random_floats(rng, kNumel)),  // about half masked
                        HostOperand{"grad_residual", std::vector<float>(kNumel, std::numeric_limits<float>::quiet_NaN()),
                                    B.grad_residual},
                        HostOperand{"grad_input", std::vector<float>(kNumel, std::numeric_limits<float>::quiet_NaN()),
                                    B.grad_input},
                        HostOperand{"grad_weight", std::vector<float>(kC, std::numeric_limits<float>::quiet_NaN()),
                                    B.grad_weight},
                        HostOperand{"grad_bias", std::vector<float>(kC, std::numeric_limits<float>::quiet_NaN()),
                                    B.grad_bias}};
                  },
                  LMCL_KERNEL_CALL(batch_norm_backward(
                      BatchNormShape{B.batch, B.channels, B.spatial}, p[0], p[1], B.weight ? p[2] : nullptr, p[3], p[4],
                      B.training, BatchNormEpilogueGrad{B.mask ? p[5] : nullptr, B.grad_residual ? p[6] : nullptr},
                      B.grad_input ? p[7] : nullptr, B.grad_weight ? p[8] : nullptr, B.grad_bias ? p[9] : nullptr)),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    const std::vector<float>& dy = o[0].data;
                    const std::vector<float>& x = o[1].data;
                    const int64_t S = B.spatial, M = B.batch * B.spatial;
                    for (int i = 6; i <= 9; ++i) want[i].assign(o[i].data.size(), 0.0);
                    std::vector<double> g(kNumel);
                    for (int64_t i = 0; i < kNumel; ++i) g[i] = B.mask ? (o[5].data[i] > 0 ? dy[i] : 0.0) : dy[i];
                    for (int64_t c = 0; c < kC; ++c) {
                      const double mean = o[3].data[c], invstd = o[4].data[c];
                      const double w = B.weight ? o[2].data[c] : 1.0;
                      double sum_g = 0, sum_g_xhat = 0;
                      for (int64_t n = 0; n < B.batch; ++n)
                        for (int64_t s = 0; s < S; ++s) {
                          const int64_t i = (n * kC + c) * S + s;
                          sum_g += g[i];
                          sum_g_xhat += g[i] * (x[i] - mean) * invstd;
                        }
                      want[8][c] = sum_g_xhat;
                      want[9][c] = sum_g;
                      for (int64_t n = 0; n < B.batch; ++n)
                        for (int64_t s = 0; s < S; ++s) {
                          const int64_t i = (n * kC + c) * S + s;
                          const double xhat = (x[i] - mean) * invstd;
                          want[6][i] = g[i];
                          want[7][i] = B.training ? w * invstd * (g[i] - sum_g / M - xhat * sum_g_xhat / M)
                                                  : w * invstd * g[i];
                        }
                    }
                  }});
}

// ---- double backward (training) ----------------------------------------------------------------
// Operands: 0 dy (g), 1 x, 2 weight, 3 save_mean, 4 save_invstd, 5 upstream_input (u),
// 6 upstream_weight (γ̄), 7 grad_grad_out, 8 grad_x, 9 grad_weight. The reference is the closed
// form of lmcl/batchnorm.h in double with the given (float) statistics.
struct DoubleBackwardCase {
  const char* name;
  int64_t batch, channels, spatial;
  bool weight, upstream_input, upstream_weight, grad_grad_out, grad_x, grad_weight;
};

constexpr DoubleBackwardCase kDoubleBackwardCases[] = {
    {"bn double back C3 u", 16, 3, 700, true, true, false, true, true, true},
    {"bn double back C17 u gw", 40, 17, 300, true, true, true, true, true, true},
    {"bn double back C20 S1 gw", 300, 20, 1, true, false, true, true, true, false},
    {"bn double back C5 bare u", 7, 5, 33, false, true, true, true, true, true},
    {"bn double back C2 x only", 64, 2, 256, true, true, false, false, true, false},
};

template <int kIndex>
void add_double_backward_case(std::vector<OpCase>& list) {
  static constexpr const DoubleBackwardCase& D = kDoubleBackwardCases[kIndex];
  static constexpr int64_t kNumel = D.batch * D.channels * D.spatial, kC = D.channels;
  constexpr double kAtol = backward_atol(D.batch * D.spatial);
  list.push_back({D.name, 1e-5, kAtol,
                  [](Rng& rng) {
                    std::vector<float> x = random_floats(rng, kNumel);
                    std::vector<float> mean, invstd;
                    saved_statistics(x, D.batch, kC, D.spatial, &mean, &invstd);
                    const float nan = std::numeric_limits<float>::quiet_NaN();
                    return std::vector<HostOperand>{
                        input("dy", random_floats(rng, kNumel)),
                        input("x", std::move(x)),
                        input("weight", random_floats(rng, kC, 0.5f, 1.5f)),
                        input("save_mean", std::move(mean)),
                        input("save_invstd", std::move(invstd)),
                        input("upstream_input", random_floats(rng, kNumel)),
                        input("upstream_weight", random_floats(rng, kC)),
                        HostOperand{"grad_grad_out", std::vector<float>(kNumel, nan), D.grad_grad_out},
                        HostOperand{"grad_x", std::vector<float>(kNumel, nan), D.grad_x},
                        HostOperand{"grad_weight", std::vector<float>(kC, nan), D.grad_weight}};
                  },
                  LMCL_KERNEL_CALL(batch_norm_double_backward(
                      BatchNormShape{D.batch, D.channels, D.spatial}, p[0], p[1], D.weight ? p[2] : nullptr, p[3], p[4],
                      D.upstream_input ? p[5] : nullptr, D.upstream_weight ? p[6] : nullptr,
                      D.grad_grad_out ? p[7] : nullptr, D.grad_x ? p[8] : nullptr, D.grad_weight ? p[9] : nullptr)),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    const std::vector<float>& g = o[0].data;
                    const std::vector<float>& x = o[1].data;
                    const int64_t S = D.spatial;
                    const double M = static_cast<double>(D.batch * D.spatial);
                    for (int i = 7; i <= 9; ++i) want[i].assign(o[i].data.size(), 0.0);
                    auto u = [&](int64_t i) { return D.upstream_input ? static_cast<double>(o[5].data[i]) : 0.0; };
                    for (int64_t c = 0; c < kC; ++c) {
                      const double mean = o[3].data[c], s = o[4].data[c];
                      const double w = D.weight ? o[2].data[c] : 1.0;
                      const double wbar = D.upstream_weight ? o[6].data[c] : 0.0;
                      auto xhat = [&](int64_t i) { return (x[i] - mean) * s; };
                      double sum_g = 0, sum_gx = 0, sum_u = 0, sum_ux = 0, sum_ug = 0;
                      for (int64_t n = 0; n < D.batch; ++n)
                        for (int64_t k = 0; k < S; ++k) {
                          const int64_t i = (n * kC + c) * S + k;
                          sum_g += g[i];
                          sum_gx += g[i] * xhat(i);
                          sum_u += u(i);
                          sum_ux += u(i) * xhat(i);
                          sum_ug += u(i) * g[i];
                        }
                      const double bracket = sum_ug - sum_g / M * sum_u - sum_gx / M * sum_ux;
                      want[9][c] = s * bracket;
                      // H = γ̄·g − γ·s·(⟨u·x̂⟩·g + ⟨g·x̂⟩·u), and its two means.
                      const double a = wbar - w * s * sum_ux / M, b = -w * s * sum_gx / M;
                      const double mean_h = a * sum_g / M + b * sum_u / M, mean_hx = a * sum_gx / M + b * sum_ux / M;
                      for (int64_t n = 0; n < D.batch; ++n)
                        for (int64_t k = 0; k < S; ++k) {
                          const int64_t i = (n * kC + c) * S + k;
                          want[7][i] = w * s * (u(i) - sum_u / M - xhat(i) * sum_ux / M) + wbar * xhat(i);
                          const double h = a * g[i] + b * u(i);
                          want[8][i] = s * (h - mean_h - xhat(i) * mean_hx) - w * bracket * s * s / M * xhat(i);
                        }
                    }
                  }});
}

template <int... kForward, int... kBackward, int... kDouble>
void add_batchnorm_tables(std::vector<OpCase>& list, std::integer_sequence<int, kForward...>,
                          std::integer_sequence<int, kBackward...>, std::integer_sequence<int, kDouble...>) {
  (add_forward_case<kForward>(list), ...);
  (add_backward_case<kBackward>(list), ...);
  (add_double_backward_case<kDouble>(list), ...);
}

}  // namespace

void add_batchnorm_cases(std::vector<OpCase>& list) {
  add_batchnorm_tables(list, std::make_integer_sequence<int, sizeof(kForwardCases) / sizeof(kForwardCases[0])>(),
                       std::make_integer_sequence<int, sizeof(kBackwardCases) / sizeof(kBackwardCases[0])>(),
                       std::make_integer_sequence<int, sizeof(kDoubleBackwardCases) / sizeof(kDoubleBackwardCases[0])>());
}

}  // namespace driver
}  // namespace lmcl
