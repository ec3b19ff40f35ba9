// Native test driver: runs kernels on fresh random inputs against naive float64 references, with
// no Node (it links the lmcl_core static library: src/core + src/cpu; CMakeLists.txt target
// lmcl_driver). It is the seed of the CUDA-vs-CPU parity driver: every case runs on each device
// this build can reach, through lmcl::cpu:: and lmcl::cuda:: (the CUDA side skips, saying why,
// when the build has no CUDA, no device is visible, or the op's kernel is still a stub).
//
//   lmcl_driver [--seed N] [case-name-substring]
//
// A case: named operands made on the host (inputs random, outputs POISONED with NaN so an element
// a kernel fails to write is caught), one kernel call written once for both namespaces
// (LMCL_KERNEL_CALL), a naive reference, and a tolerance |got − want| <= atol + rtol·|want|.
// Exit status 0 when every case that ran passed, 1 otherwise.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "lmcl/cuda_memory.h"
#include "lmcl/cuda_ops.h"

namespace lmcl {
namespace driver {
namespace {

struct HostOperand {
  const char* name;
  std::vector<float> data;
  bool output;
};

using Rng = std::mt19937_64;
using KernelCall = Status (*)(float* const* operands);

struct OpCase {
  const char* name;
  double rtol, atol;
  std::function<std::vector<HostOperand>(Rng&)> make;
  KernelCall cpu_call, cuda_call;
  // Fills want[i] for every output operand i (want has one entry per operand).
  std::function<void(const std::vector<HostOperand>&, std::vector<std::vector<double>>&)> reference;
};

// The same call expression against lmcl::cpu:: and lmcl::cuda::; `p[i]` is operand i.
#define LMCL_KERNEL_CALL(...)                                                        \
  [](float* const* p) -> Status { using namespace ::lmcl::cpu; return __VA_ARGS__; }, \
  [](float* const* p) -> Status { using namespace ::lmcl::cuda; return __VA_ARGS__; }

std::vector<float> random_floats(Rng& rng, size_t count, float low = -2.0f, float high = 2.0f) {
  std::uniform_real_distribution<float> uniform(low, high);
  std::vector<float> values(count);
  for (float& v : values) v = uniform(rng);
  return values;
}
HostOperand input(const char* name, std::vector<float> data) { return {name, std::move(data), false}; }
HostOperand output(const char* name, size_t count) {
  return {name, std::vector<float>(count, std::numeric_limits<float>::quiet_NaN()), true};
}

// ---- the cases ------------------------------------------------------------------------------

constexpr int64_t kAffineCount = 1000;
constexpr int64_t kRows = 7, kCols = 33;
constexpr int64_t kM = 13, kN = 17, kK = 29;

std::vector<OpCase> cases() {
  std::vector<OpCase> list;
  list.push_back({"affine", 1e-6, 1e-6,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("x", random_floats(rng, kAffineCount)), output("out", kAffineCount)};
                  },
                  LMCL_KERNEL_CALL(affine(kAffineCount, p[0], 1.5f, -0.25f, p[1])),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    for (float x : o[0].data) want[1].push_back(double(x) * 1.5 - 0.25);
                  }});
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
  list.push_back({"gemm transpose_b", 1e-5, 1e-5,
                  [](Rng& rng) {
                    return std::vector<HostOperand>{input("a", random_floats(rng, kM * kK)), input("b", random_floats(rng, kN * kK)),
                                                    output("c", kM * kN)};
                  },
                  // beta = 0: C's NaN poison must be ignored, not propagated
                  LMCL_KERNEL_CALL(gemm(false, true, kM, kN, kK, 1.0f, p[0], kK, p[1], kK, 0.0f, p[2], kN)),
                  [](const std::vector<HostOperand>& o, std::vector<std::vector<double>>& want) {
                    for (int64_t i = 0; i < kM; ++i)
                      for (int64_t j = 0; j < kN; ++j) {
                        double sum = 0;
                        for (int64_t k = 0; k < kK; ++k) sum += double(o[0].data[i * kK + k]) * o[1].data[j * kK + k];
                        want[2].push_back(sum);
                      }
                  }});
  return list;
}

// ---- running a case on a device ----------------------------------------------------------------

enum class Outcome { kPassed, kFailed, kSkipped };

Outcome compare(const OpCase& c, const char* device, const std::vector<HostOperand>& got,
                const std::vector<std::vector<double>>& want) {
  bool ok = true;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!got[i].output) continue;
    double worst = 0;
    size_t bad = 0, first_bad = 0;
    for (size_t e = 0; e < got[i].data.size(); ++e) {
      const double g = got[i].data[e], w = want[i][e];
      const double error = std::fabs(g - w);
      if (!(error <= c.atol + c.rtol * std::fabs(w))) {  // NaN (an unwritten element) fails here
        if (bad++ == 0) first_bad = e;
      }
      if (error > worst || std::isnan(error)) worst = error;
    }
    if (bad) {
      std::printf("  FAIL %-24s %-5s %s: %zu of %zu elements off (first at %zu: got %.9g, want %.9g); max |error| %.3g\n",
                  c.name, device, got[i].name, bad, got[i].data.size(), first_bad, got[i].data[first_bad],
                  want[i][first_bad], worst);
      ok = false;
    } else {
      std::printf("  ok   %-24s %-5s %s: max |error| %.3g (rtol %.0e, atol %.0e)\n", c.name, device, got[i].name, worst,
                  c.rtol, c.atol);
    }
  }
  return ok ? Outcome::kPassed : Outcome::kFailed;
}

Outcome run_cpu(const OpCase& c, std::vector<HostOperand> operands, const std::vector<std::vector<double>>& want) {
  std::vector<float*> pointers;
  for (HostOperand& o : operands) pointers.push_back(o.data.data());
  Status status = c.cpu_call(pointers.data());
  if (!status.is_ok()) {
    std::printf("  FAIL %-24s cpu   returned an error: %s\n", c.name, status.message().c_str());
    return Outcome::kFailed;
  }
  return compare(c, "cpu", operands, want);
}

// Copies the operands (outputs still poisoned) to the device, runs lmcl::cuda::, copies back.
Outcome run_cuda(const OpCase& c, std::vector<HostOperand> operands, const std::vector<std::vector<double>>& want) {
  std::vector<float*> pointers(operands.size(), nullptr);
  Status status;
  for (size_t i = 0; i < operands.size() && status.is_ok(); ++i) {
    const size_t bytes = operands[i].data.size() * sizeof(float);
    void* block = nullptr;
    status = cuda::allocate(bytes, &block);
    pointers[i] = static_cast<float*>(block);
    if (status.is_ok()) status = cuda::copy_host_to_device(block, operands[i].data.data(), bytes);
  }
  if (status.is_ok()) status = c.cuda_call(pointers.data());
  if (status.is_ok()) status = cuda::synchronize();
  for (size_t i = 0; i < operands.size() && status.is_ok(); ++i) {
    if (operands[i].output)
      status = cuda::copy_device_to_host(operands[i].data.data(), pointers[i], operands[i].data.size() * sizeof(float));
  }
  for (float* block : pointers)
    if (block) cuda::free(block);
  if (status.code() == StatusCode::kNotCompiled) {
    std::printf("  skip %-24s cuda  %s\n", c.name, status.message().c_str());
    return Outcome::kSkipped;
  }
  if (!status.is_ok()) {
    std::printf("  FAIL %-24s cuda  %s\n", c.name, status.message().c_str());
    return Outcome::kFailed;
  }
  return compare(c, "cuda", operands, want);
}

}  // namespace
}  // namespace driver
}  // namespace lmcl

int main(int argc, char** argv) {
  using namespace lmcl;
  using namespace lmcl::driver;
  uint64_t seed = std::random_device{}();
  const char* filter = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--seed") == 0 && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else filter = argv[i];
  }
  int devices = 0;
  Status cuda_status = cuda::device_count(&devices);
  const bool with_cuda = cuda_status.is_ok() && devices > 0;
  std::printf("lmcl_driver: seed %llu; cuda: %s\n", static_cast<unsigned long long>(seed),
              with_cuda ? (std::to_string(devices) + " device(s)").c_str() : cuda_status.message().c_str());
  Rng rng(seed);
  int passed = 0, failed = 0, skipped = 0;
  for (const OpCase& c : cases()) {
    if (filter && !std::strstr(c.name, filter)) continue;
    std::vector<HostOperand> operands = c.make(rng);
    std::vector<std::vector<double>> want(operands.size());
    c.reference(operands, want);
    std::vector<Outcome> outcomes{run_cpu(c, operands, want)};
    if (with_cuda) outcomes.push_back(run_cuda(c, operands, want));
    else std::printf("  skip %-24s cuda  (%s)\n", c.name, cuda_status.is_ok() ? "no CUDA device" : cuda_status.message().c_str());
    for (Outcome o : outcomes) (o == Outcome::kPassed ? passed : o == Outcome::kFailed ? failed : skipped) += 1;
    if (!with_cuda) skipped += 1;
  }
  std::printf("lmcl_driver: %d passed, %d failed, %d skipped (seed %llu)\n", passed, failed, skipped,
              static_cast<unsigned long long>(seed));
  return failed == 0 && passed > 0 ? 0 : 1;
}
