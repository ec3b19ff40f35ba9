// Native test driver: runs kernels on fresh random inputs against naive float64 references, with
// no Node (it links the lmcl_core static library: src/core + src/cpu; CMakeLists.txt target
// lmcl_driver). It is the seed of the CUDA-vs-CPU parity driver: every case runs on each device
// this build can reach, through lmcl::cpu:: and lmcl::cuda:: (the CUDA side skips, saying why,
// when the build has no CUDA, no device is visible, or the op's kernel is still a stub).
//
//   lmcl_driver [--seed N] [case-name-substring]
//
// The cases: native/test/cases/<stem>.cpp (what a case is: native/test/driver.h).
// Exit status 0 when every case that ran passed, 1 otherwise. Failed cases are listed last, one
// "failed case<TAB>device<TAB>name" line each (scripts/gpu-check.sh reruns them alone).
#include <cstdio>
#include <cstdlib>

#include "driver.h"

namespace lmcl {
namespace driver {
namespace {
std::vector<void*> index_copies;  // the CUDA copies index_view made for the running case
}  // namespace

IndexArray index_view(bool on_cuda, const int32_t* values, size_t count) {
  if (!on_cuda || count == 0) return host_indices(values);
  void* copy = nullptr;
  Status status = cuda::allocate(count * sizeof(int32_t), &copy);
  if (status.is_ok()) index_copies.push_back(copy);
  if (status.is_ok()) status = cuda::copy_host_to_device(copy, values, count * sizeof(int32_t));
  if (!status.is_ok()) throw std::runtime_error("index_view: " + status.message());
  return IndexArray{values, static_cast<const int32_t*>(copy)};
}

void release_index_copies() {
  for (void* copy : index_copies) cuda::free(copy);
  index_copies.clear();
}

namespace {

std::vector<OpCase> cases() {
  std::vector<OpCase> list;
  add_elementwise_cases(list);
  add_reduce_cases(list);
  add_layout_cases(list);
  add_sgd_cases(list);
  add_softmax_cases(list);
  add_normalize_cases(list);
  add_batchnorm_cases(list);
  add_pool_cases(list);
  add_gemm_cases(list);
  add_conv2d_cases(list);
  add_infonce_cases(list);
  add_contrastive_kl_cases(list);
  add_cohort_contrastive_cases(list);
  add_memory_bank_cases(list);
  add_memory_cases(list);
  return list;
}

// ---- running a case on a device ----------------------------------------------------------------

enum class Outcome { kPassed, kFailed, kSkipped };

Outcome compare(const OpCase& c, const char* device, const std::vector<HostOperand>& got,
                const std::vector<std::vector<double>>& want) {
  bool ok = true;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!got[i].output) continue;
    double worst = 0, worst_share = 0;  // worst_share: max error / allowed error, the case's margin
    size_t bad = 0, first_bad = 0;
    for (size_t e = 0; e < got[i].data.size(); ++e) {
      const double g = got[i].data[e], w = want[i][e];
      const double error = std::fabs(g - w);
      if (!(error <= c.atol + c.rtol * std::fabs(w))) {  // NaN (an unwritten element) fails here
        if (bad++ == 0) first_bad = e;
      }
      if (error > worst || std::isnan(error)) worst = error;
      const double allowed = c.atol + c.rtol * std::fabs(w);
      if (allowed > 0 && error / allowed > worst_share) worst_share = error / allowed;
    }
    if (bad) {
      std::printf("  FAIL %-24s %-5s %s: %zu of %zu elements off (first at %zu: got %.9g, want %.9g); max |error| %.3g\n",
                  c.name, device, got[i].name, bad, got[i].data.size(), first_bad, got[i].data[first_bad],
                  want[i][first_bad], worst);
      ok = false;
    } else {
      std::printf("  ok   %-24s %-5s %s: max |error| %.3g (rtol %.0e, atol %.0e; %.0f%% of the tolerance)\n", c.name, device,
                  got[i].name, worst, c.rtol, c.atol, 100 * worst_share);
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
  if (status.is_ok()) {
    try {
      status = c.cuda_call(pointers.data());
    } catch (const std::exception& error) {
      status = internal_error(error.what());
    }
  }
  if (status.is_ok()) status = cuda::synchronize();
  release_index_copies();  // after the synchronisation: the kernels have read them
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
  std::vector<std::string> failed_names;  // "device<TAB>case", listed at the end for scripts
  for (const OpCase& c : cases()) {
    if (filter && !std::strstr(c.name, filter)) continue;
    std::vector<HostOperand> operands = c.make(rng);
    std::vector<std::vector<double>> want(operands.size());
    c.reference(operands, want);
    std::vector<Outcome> outcomes{run_cpu(c, operands, want)};
    if (outcomes.back() == Outcome::kFailed) failed_names.push_back(std::string("cpu\t") + c.name);
    if (with_cuda) {
      outcomes.push_back(run_cuda(c, operands, want));
      if (outcomes.back() == Outcome::kFailed) failed_names.push_back(std::string("cuda\t") + c.name);
    }
    else std::printf("  skip %-24s cuda  (%s)\n", c.name, cuda_status.is_ok() ? "no CUDA device" : cuda_status.message().c_str());
    for (Outcome o : outcomes) (o == Outcome::kPassed ? passed : o == Outcome::kFailed ? failed : skipped) += 1;
    if (!with_cuda) skipped += 1;
  }
  for (const std::string& name : failed_names) std::printf("failed case\t%s\n", name.c_str());
  std::printf("lmcl_driver: %d passed, %d failed, %d skipped (seed %llu)\n", passed, failed, skipped,
              static_cast<unsigned long long>(seed));
  return failed == 0 && passed > 0 ? 0 : 1;
}
