// Parity cases for the sgd kernels (native/src/cpu/sgd.cpp, native/src/cuda/sgd.cu): each runs
// through lmcl::cpu:: and lmcl::cuda:: against a float64 reference (native/test/driver.h).
// One case per branch of the update: plain, weight decay + maximize, momentum on the first step
// (the buffer is NaN-poisoned: it must be written, never read), momentum with dampening and decay,
// Nesterov, Nesterov on a first maximising step. param (and buffer after the first step) are
// updated in place, so they are in-out operands holding random values. 1003 elements: a float4 body
// and a 3-element tail; one case with a misaligned grad (the scalar path). The reference is the
// formula in float64 on the given options; the kernels round the scalars and every step to
// float32, so rtol 1e-6, atol 1e-6 (|p| <= 2, |update| < 1).
#include "../driver.h"

namespace lmcl {
namespace driver {
namespace {

constexpr int64_t kSgdCount = 1003;

SgdOptions make_options(double lr, double momentum, double dampening, double weight_decay, bool nesterov, bool maximize) {
  SgdOptions o;
  o.lr = lr;
  o.momentum = momentum;
  o.dampening = dampening;
  o.weight_decay = weight_decay;
  o.nesterov = nesterov;
  o.maximize = maximize;
  return o;
}

#define LMCL_SGD_CASE(Name, First, ...)                                                \
  struct Name {                                                                        \
    static const SgdOptions& options() {                                               \
      static const SgdOptions value = make_options(__VA_ARGS__);                       \
      return value;                                                                    \
    }                                                                                  \
    static constexpr bool kFirst = First;                                              \
  }

// (name, first_step, lr, momentum, dampening, weight_decay, nesterov, maximize)
LMCL_SGD_CASE(SgdPlain, false, 0.1, 0.0, 0.0, 0.0, false, false);
LMCL_SGD_CASE(SgdDecayMaximize, false, 0.05, 0.0, 0.0, 0.01, false, true);
LMCL_SGD_CASE(SgdMomentumFirst, true, 0.05, 0.9, 0.1, 0.0, false, false);
LMCL_SGD_CASE(SgdMomentum, false, 0.05, 0.9, 0.1, 5e-4, false, false);
LMCL_SGD_CASE(SgdNesterov, false, 0.1, 0.9, 0.0, 1e-4, true, false);
LMCL_SGD_CASE(SgdNesterovFirstMaximize, true, 0.1, 0.8, 0.0, 0.01, true, true);

#undef LMCL_SGD_CASE

// kGradOffset = 1 reads grad one float past an aligned block (the kernel's scalar path).
template <typename C, int kGradOffset = 0>
void add_sgd_case(std::vector<OpCase>& list, const char* name) {
  list.push_back({name, 1e-6, 1e-6,
                  [](Rng& rng) {
                    const bool momentum = C::options().momentum != 0.0;
                    HostOperand buffer = momentum && C::kFirst ? output("buffer", kSgdCount)
                                                               : HostOperand{"buffer", random_floats(rng, kSgdCount), momentum};
                    return std::vector<HostOperand>{HostOperand{"param", random_floats(rng, kSgdCount), true},
                                                    input("grad", random_floats(rng, kSgdCount + kGradOffset)), std::move(buffer)};
                  },
                  // Without momentum the buffer is not passed (null), as the binding does.
                  LMCL_KERNEL_CALL(sgd_step(kSgdCount, p[0], p[1] + kGradOffset, C::options().momentum != 0.0 ? p[2] : nullptr,
                                            C::options(), C::kFirst)),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    const SgdOptions& s = C::options();
                    for (int64_t i = 0; i < kSgdCount; ++i) {
                      const double p = o[0].data[i], g = o[1].data[i + kGradOffset];
                      double d = s.maximize ? -g : g;
                      d += s.weight_decay * p;
                      if (s.momentum != 0.0) {
                        const double b = C::kFirst ? d : s.momentum * o[2].data[i] + (1.0 - s.dampening) * d;
                        want[2].push_back(b);
                        d = s.nesterov ? d + s.momentum * b : b;
                      }
                      want[0].push_back(p - s.lr * d);
                    }
                  }});
}

}  // namespace

void add_sgd_cases(std::vector<OpCase>& list) {
  add_sgd_case<SgdPlain>(list, "sgd plain");
  add_sgd_case<SgdDecayMaximize>(list, "sgd decay maximize");
  add_sgd_case<SgdMomentumFirst>(list, "sgd momentum first step");
  add_sgd_case<SgdMomentum>(list, "sgd momentum dampening");
  add_sgd_case<SgdNesterov>(list, "sgd nesterov");
  add_sgd_case<SgdNesterovFirstMaximize>(list, "sgd nesterov first max");
  add_sgd_case<SgdMomentum, 1>(list, "sgd momentum unaligned");
}

}  // namespace driver
}  // namespace lmcl
