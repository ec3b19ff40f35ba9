// Parity cases for the elementwise kernels (native/src/cpu/elementwise.cpp, native/src/cuda/elementwise.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
// Sizes are odd (1000 is a multiple of 4 for the float4 body; 1001 and 4099 leave a tail).
// Tolerances: exact ops (neg, relu, |x|, sign, step, x², select, +, −, ×, ÷, max, min, affine)
// are one float rounding of the double result (rtol 1e-6); exp, log, tanh, sigmoid, pow come from
// the platform's math library (a few ulp: rtol 2e-6 … 4e-6).
#include <algorithm>

#include "../driver.h"

namespace lmcl {
namespace driver {
namespace {
constexpr int64_t kAffineCount = 1000;
constexpr int64_t kUnaryCount = 1001;
constexpr int64_t kCountFinite = 4099;

// Random values of magnitude in [low, high], with a random sign when `signed_values` (never 0).
std::vector<float> magnitudes(Rng& rng, size_t count, float low, float high, bool signed_values) {
  std::vector<float> values = random_floats(rng, count, low, high);
  if (signed_values) {
    std::bernoulli_distribution negative(0.5);
    for (float& v : values) v = negative(rng) ? -v : v;
  }
  return values;
}

// ---- unary: one case per op --------------------------------------------------------------------

template <UnaryOp kOp>
void add_unary_case(std::vector<OpCase>& list, const char* name, double rtol, float low, float high, bool signed_values,
                    double (*formula)(double)) {
  list.push_back({name, rtol, 1e-7,
                  [=](Rng& rng) {
                    return std::vector<HostOperand>{input("x", magnitudes(rng, kUnaryCount, low, high, signed_values)),
                                                    output("out", kUnaryCount)};
                  },
                  LMCL_KERNEL_CALL(unary(kOp, kUnaryCount, p[0], p[1])),
                  [=](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    for (float x : o[0].data) want[1].push_back(formula(x));
                  }});
}

// ---- binary_broadcast: geometries × ops ----------------------------------------------------------

// out [kBroadcastShape] = a [5, 1, 7] ∘ b [1, 6, 7] (both broadcast, neither contiguous with out).
constexpr int kBroadcastRank = 3;
constexpr int64_t kBroadcastShape[kBroadcastRank] = {5, 6, 7};
constexpr int64_t kBroadcastA[kBroadcastRank] = {7, 0, 1};
constexpr int64_t kBroadcastB[kBroadcastRank] = {0, 7, 1};
constexpr int64_t kBroadcastCount = 5 * 6 * 7, kBroadcastASize = 5 * 7, kBroadcastBSize = 6 * 7;
// out [37, 53] = a ∘ b, both contiguous (the vectorised same-shape path; 1961 leaves a tail).
constexpr int64_t kSameShape[2] = {37, 53};
constexpr int64_t kSameStrides[2] = {53, 1};
constexpr int64_t kSameCount = 37 * 53;
// out [4, 9, 3] = a ∘ b with a a transposed view ([3, 9, 4] storage, strides [1, 4, 36]) and b a
// scalar (all strides 0): the general decode with nothing to merge.
constexpr int64_t kViewShape[3] = {4, 9, 3};
constexpr int64_t kViewA[3] = {1, 4, 36};
constexpr int64_t kViewB[3] = {0, 0, 0};
constexpr int64_t kViewCount = 4 * 9 * 3;
// out [2, 3, 4, 5] = a [2, 3, 4, 5] ∘ b [1, 3, 1, 1]: the channel broadcast of batch-norm style ops
// (the last two dims merge).
constexpr int64_t kChannelShape[4] = {2, 3, 4, 5};
constexpr int64_t kChannelA[4] = {60, 20, 5, 1};
constexpr int64_t kChannelB[4] = {0, 1, 0, 0};
constexpr int64_t kChannelCount = 120;

double apply_binary(BinaryOp op, double x, double y) {
  switch (op) {
    case BinaryOp::kAdd: return x + y;
    case BinaryOp::kSub: return x - y;
    case BinaryOp::kMul: return x * y;
    case BinaryOp::kDiv: return x / y;
    case BinaryOp::kMaximum: return std::max(x, y);
    default: return std::min(x, y);
  }
}

// want[out] from the formula: an odometer over `shape` with the given element strides.
void broadcast_reference(BinaryOp op, int rank, const int64_t* shape, const int64_t* a_strides, const int64_t* b_strides,
                         const std::vector<float>& a, const std::vector<float>& b, std::vector<double>& want) {
  int64_t count = 1;
  for (int d = 0; d < rank; ++d) count *= shape[d];
  for (int64_t i = 0; i < count; ++i) {
    int64_t rest = i, a_offset = 0, b_offset = 0;
    for (int d = rank - 1; d >= 0; --d) {
      const int64_t index = rest % shape[d];
      rest /= shape[d];
      a_offset += index * a_strides[d];
      b_offset += index * b_strides[d];
    }
    want.push_back(apply_binary(op, a[a_offset], b[b_offset]));
  }
}

// b of magnitude [0.5, 2] with random signs, so ÷ stays well conditioned and max/min see both signs.
template <BinaryOp kOp>
void add_binary_cases(std::vector<OpCase>& list, const char* broadcast_name, const char* same_name, const char* view_name,
                      const char* channel_name) {
  const double rtol = 1e-6, atol = 1e-7;
  list.push_back({broadcast_name, rtol, atol,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("a", random_floats(rng, kBroadcastASize)),
                                                    input("b", magnitudes(rng, kBroadcastBSize, 0.5f, 2.0f, true)),
                                                    output("out", kBroadcastCount)};
                  },
                  LMCL_KERNEL_CALL(binary_broadcast(kOp, kBroadcastRank, kBroadcastShape, kBroadcastA, kBroadcastB, p[0], p[1], p[2])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    broadcast_reference(kOp, kBroadcastRank, kBroadcastShape, kBroadcastA, kBroadcastB, o[0].data, o[1].data, want[2]);
                  }});
  list.push_back({same_name, rtol, atol,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("a", random_floats(rng, kSameCount)),
                                                    input("b", magnitudes(rng, kSameCount, 0.5f, 2.0f, true)),
                                                    output("out", kSameCount)};
                  },
                  LMCL_KERNEL_CALL(binary_broadcast(kOp, 2, kSameShape, kSameStrides, kSameStrides, p[0], p[1], p[2])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    broadcast_reference(kOp, 2, kSameShape, kSameStrides, kSameStrides, o[0].data, o[1].data, want[2]);
                  }});
  list.push_back({view_name, rtol, atol,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("a", random_floats(rng, kViewCount)),
                                                    input("b", magnitudes(rng, 1, 0.5f, 2.0f, true)), output("out", kViewCount)};
                  },
                  LMCL_KERNEL_CALL(binary_broadcast(kOp, 3, kViewShape, kViewA, kViewB, p[0], p[1], p[2])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    broadcast_reference(kOp, 3, kViewShape, kViewA, kViewB, o[0].data, o[1].data, want[2]);
                  }});
  list.push_back({channel_name, rtol, atol,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("a", random_floats(rng, kChannelCount)),
                                                    input("b", magnitudes(rng, 3, 0.5f, 2.0f, true)), output("out", kChannelCount)};
                  },
                  LMCL_KERNEL_CALL(binary_broadcast(kOp, 4, kChannelShape, kChannelA, kChannelB, p[0], p[1], p[2])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    broadcast_reference(kOp, 4, kChannelShape, kChannelA, kChannelB, o[0].data, o[1].data, want[2]);
                  }});
}

// ---- power: the special-cased exponents and pow itself ------------------------------------------

template <int kExponentTimes10>
void add_power_case(std::vector<OpCase>& list, const char* name, double rtol, bool signed_values) {
  list.push_back({name, rtol, 1e-7,
                  [=](Rng& rng) {
                    return std::vector<HostOperand>{input("x", magnitudes(rng, kUnaryCount, 0.1f, 2.5f, signed_values)),
                                                    output("out", kUnaryCount)};
                  },
                  LMCL_KERNEL_CALL(power(kUnaryCount, p[0], static_cast<float>(kExponentTimes10) / 10.0f, p[1])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    const double exponent = static_cast<double>(static_cast<float>(kExponentTimes10) / 10.0f);
                    for (float x : o[0].data) want[1].push_back(std::pow(double(x), exponent));
                  }});
}

// count_non_finite's result is a host int64 (the binding's local): each side writes it, as a float,
// into the one-element output operand (for CUDA with a copy to the device).
Status count_non_finite_cpu(float* const* p) {
  int64_t found = -1;
  Status status = cpu::count_non_finite(kCountFinite, p[0], &found);
  p[1][0] = static_cast<float>(found);
  return status;
}
Status count_non_finite_cuda(float* const* p) {
  int64_t found = -1;
  LMCL_RETURN_IF_ERROR(cuda::count_non_finite(kCountFinite, p[0], &found));
  const float value = static_cast<float>(found);
  return cuda::copy_host_to_device(p[1], &value, sizeof(value));
}

}  // namespace

void add_elementwise_cases(std::vector<OpCase>& list) {
  list.push_back({"affine", 1e-6, 1e-6,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("x", random_floats(rng, kAffineCount)), output("out", kAffineCount)};
                  },
                  LMCL_KERNEL_CALL(affine(kAffineCount, p[0], 1.5f, -0.25f, p[1])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    for (float x : o[0].data) want[1].push_back(double(x) * 1.5 - 0.25);
                  }});

  // x one float past an aligned block: the kernel must take its scalar (not float4) path.
  list.push_back({"affine unaligned", 1e-6, 1e-6,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("x", random_floats(rng, kAffineCount + 1)), output("out", kAffineCount)};
                  },
                  LMCL_KERNEL_CALL(affine(kAffineCount, p[0] + 1, -0.75f, 0.5f, p[1])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    for (int64_t i = 1; i <= kAffineCount; ++i) want[1].push_back(double(o[0].data[i]) * -0.75 + 0.5);
                  }});

  add_unary_case<UnaryOp::kNeg>(list, "unary neg", 1e-6, 0.01f, 3.0f, true, [](double x) { return -x; });
  add_unary_case<UnaryOp::kExp>(list, "unary exp", 2e-6, 0.01f, 3.0f, true, [](double x) { return std::exp(x); });
  add_unary_case<UnaryOp::kLog>(list, "unary log", 2e-6, 0.05f, 4.0f, false, [](double x) { return std::log(x); });
  add_unary_case<UnaryOp::kSqrt>(list, "unary sqrt", 1e-6, 0.05f, 4.0f, false, [](double x) { return std::sqrt(x); });
  add_unary_case<UnaryOp::kRsqrt>(list, "unary rsqrt", 2e-6, 0.05f, 4.0f, false, [](double x) { return 1.0 / std::sqrt(x); });
  add_unary_case<UnaryOp::kRelu>(list, "unary relu", 1e-6, 0.01f, 3.0f, true, [](double x) { return x > 0 ? x : 0.0; });
  add_unary_case<UnaryOp::kSigmoid>(list, "unary sigmoid", 4e-6, 0.01f, 12.0f, true,
                                    [](double x) { return 1.0 / (1.0 + std::exp(-x)); });
  add_unary_case<UnaryOp::kReciprocal>(list, "unary reciprocal", 1e-6, 0.1f, 3.0f, true, [](double x) { return 1.0 / x; });
  add_unary_case<UnaryOp::kSquare>(list, "unary square", 1e-6, 0.01f, 3.0f, true, [](double x) { return x * x; });
  add_unary_case<UnaryOp::kAbs>(list, "unary abs", 1e-6, 0.01f, 3.0f, true, [](double x) { return std::fabs(x); });
  add_unary_case<UnaryOp::kTanh>(list, "unary tanh", 2e-6, 0.01f, 5.0f, true, [](double x) { return std::tanh(x); });
  add_unary_case<UnaryOp::kSign>(list, "unary sign", 0, 0.01f, 3.0f, true, [](double x) { return x > 0 ? 1.0 : -1.0; });
  add_unary_case<UnaryOp::kStep>(list, "unary step", 0, 0.01f, 3.0f, true, [](double x) { return x > 0 ? 1.0 : 0.0; });

  add_power_case<20>(list, "power 2", 1e-6, true);
  add_power_case<10>(list, "power 1", 0, true);
  add_power_case<5>(list, "power 0.5", 1e-6, false);
  add_power_case<30>(list, "power 3 (signed base)", 4e-6, true);
  add_power_case<-13>(list, "power -1.3", 4e-6, false);

  list.push_back({"relu_mask", 0, 0,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("grad", random_floats(rng, kUnaryCount)),
                                                    input("mask", magnitudes(rng, kUnaryCount, 0.01f, 2.0f, true)),
                                                    output("out", kUnaryCount)};
                  },
                  LMCL_KERNEL_CALL(relu_mask(kUnaryCount, p[0], p[1], p[2])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    for (int64_t i = 0; i < kUnaryCount; ++i) want[2].push_back(o[1].data[i] > 0 ? o[0].data[i] : 0.0);
                  }});

  // Some NaN and ±inf scattered over x (a multiple-of-4 body and a tail); the count is exact.
  list.push_back({"count_non_finite", 0, 0,
                  [](Rng& rng) {
                    std::vector<float> x = random_floats(rng, kCountFinite);
                    const float specials[3] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                                               -std::numeric_limits<float>::infinity()};
                    std::uniform_int_distribution<int64_t> position(0, kCountFinite - 1);
                    for (int i = 0; i < 40; ++i) x[position(rng)] = specials[i % 3];
                    x[kCountFinite - 1] = specials[1];  // the tail
                    return std::vector<HostOperand>{input("x", std::move(x)), output("count", 1)};
                  },
                  count_non_finite_cpu, count_non_finite_cuda,
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    double found = 0;
                    for (float x : o[0].data) found += std::isfinite(x) ? 0 : 1;
                    want[1].push_back(found);
                  }});

  add_binary_cases<BinaryOp::kAdd>(list, "binary add broadcast", "binary add same", "binary add view", "binary add channel");
  add_binary_cases<BinaryOp::kSub>(list, "binary sub broadcast", "binary sub same", "binary sub view", "binary sub channel");
  add_binary_cases<BinaryOp::kMul>(list, "binary mul broadcast", "binary mul same", "binary mul view", "binary mul channel");
  add_binary_cases<BinaryOp::kDiv>(list, "binary div broadcast", "binary div same", "binary div view", "binary div channel");
  add_binary_cases<BinaryOp::kMaximum>(list, "binary max broadcast", "binary max same", "binary max view", "binary max channel");
  add_binary_cases<BinaryOp::kMinimum>(list, "binary min broadcast", "binary min same", "binary min view", "binary min channel");

  // Rank 0: one element.
  list.push_back({"binary mul rank 0", 1e-6, 1e-7,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("a", random_floats(rng, 1)), input("b", random_floats(rng, 1)),
                                                    output("out", 1)};
                  },
                  LMCL_KERNEL_CALL(binary_broadcast(BinaryOp::kMul, 0, nullptr, nullptr, nullptr, p[0], p[1], p[2])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    want[2].push_back(double(o[0].data[0]) * o[1].data[0]);
                  }});
}

}  // namespace driver
}  // namespace lmcl
