// The parity driver's shared pieces (native/test/driver.cpp runs the cases): a case is named
// operands made on the host (inputs random, outputs POISONED with NaN so an element a kernel
// fails to write is caught), one kernel call written once for both namespaces (LMCL_KERNEL_CALL),
// a naive float64 reference, and a tolerance |got − want| <= atol + rtol·|want|.
// Cases live in native/test/cases/<stem>.cpp, one file per op family, each defining
// add_<stem>_cases (declared below, called by driver.cpp in this order).
// Operands are float vectors; an int32 payload (indices) is stored bit for bit in one (see
// int_operand). Index operands (labels, gather indices, bank rows: IndexArray) are host arrays
// captured by the call and passed through index_view, which gives each device what an index
// tensor gives it: the host values, and on CUDA a device copy beside them.
#pragma once

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "lmcl/cuda_memory.h"
#include "lmcl/cuda_ops.h"
#include "lmcl/index_array.h"

namespace lmcl {
namespace driver {

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

// The same call expression against lmcl::cpu:: and lmcl::cuda::; `p[i]` is operand i and
// kOnCuda says which side this is (for index_view).
#define LMCL_KERNEL_CALL(...)                            \
  [](float* const* p) -> Status {                        \
    using namespace ::lmcl::cpu;                         \
    [[maybe_unused]] constexpr bool kOnCuda = false;     \
    return __VA_ARGS__;                                  \
  },                                                     \
  [](float* const* p) -> Status {                        \
    using namespace ::lmcl::cuda;                        \
    [[maybe_unused]] constexpr bool kOnCuda = true;      \
    return __VA_ARGS__;                                  \
  }

// An index operand as a kernel receives it: on the CPU the values on both sides; on CUDA a device
// copy (made for this call, freed by release_index_copies after the case) beside the host values.
// A failed device copy throws std::runtime_error, which the driver reports as the case's failure.
IndexArray index_view(bool on_cuda, const int32_t* values, size_t count);
inline IndexArray index_view(bool on_cuda, const std::vector<int32_t>& values) {
  return index_view(on_cuda, values.data(), values.size());
}
template <size_t N>
IndexArray index_view(bool on_cuda, const int32_t (&values)[N]) {
  return index_view(on_cuda, values, N);
}
void release_index_copies();

inline std::vector<float> random_floats(Rng& rng, size_t count, float low = -2.0f, float high = 2.0f) {
  std::uniform_real_distribution<float> uniform(low, high);
  std::vector<float> values(count);
  for (float& v : values) v = uniform(rng);
  return values;
}
inline HostOperand input(const char* name, std::vector<float> data) { return {name, std::move(data), false}; }
inline HostOperand output(const char* name, size_t count) {
  return {name, std::vector<float>(count, std::numeric_limits<float>::quiet_NaN()), true};
}

// For validation cases: ok when `status` is invalid_argument with exactly `message`. A
// kNotCompiled status (a build without that device's kernel) is passed through, and the driver
// reports the case as skipped on that device.
inline Status expect_error(const Status& status, const std::string& message) {
  if (status.code() == StatusCode::kNotCompiled) return status;
  if (status.code() == StatusCode::kInvalidArgument && status.message() == message) return Status::ok();
  return internal_error("expected invalid_argument \"" + message + "\", got " +
                        (status.is_ok() ? std::string("ok") : "\"" + status.message() + "\""));
}

// For a check the CUDA kernel defers (native/src/cuda/common.cuh): on the CPU the call returns
// the error; on CUDA the call must succeed, and the next synchronisation returns the same message
// prefixed with the op and followed by where it was found (and clears it, so the case goes on to
// compare its outputs: a deferred check must still leave them as the CPU does).
inline Status expect_deferred_error(bool on_cuda, const Status& status, const char* op, const std::string& message) {
  if (!on_cuda) return expect_error(status, message);
  if (status.code() == StatusCode::kNotCompiled) return status;
  if (!status.is_ok()) return internal_error("expected the check to be deferred (ok at the call), got \"" + status.message() + "\"");
  return expect_error(cuda::synchronize(),
                      std::string(op) + ": " + message + " [checked on the GPU; reported at the next host read]");
}

// int32 values stored bit for bit in a float operand (a kernel reads it through int32_t*).
inline HostOperand int_operand(const char* name, const std::vector<int32_t>& values, bool is_output = false) {
  std::vector<float> data(values.size());
  if (!values.empty()) std::memcpy(data.data(), values.data(), values.size() * sizeof(int32_t));
  return {name, std::move(data), is_output};
}
inline int32_t int_at(const HostOperand& operand, size_t index) {
  int32_t value;
  std::memcpy(&value, &operand.data[index], sizeof(int32_t));
  return value;
}

void add_elementwise_cases(std::vector<OpCase>& list);
void add_reduce_cases(std::vector<OpCase>& list);
void add_layout_cases(std::vector<OpCase>& list);
void add_sgd_cases(std::vector<OpCase>& list);
void add_softmax_cases(std::vector<OpCase>& list);
void add_normalize_cases(std::vector<OpCase>& list);
void add_batchnorm_cases(std::vector<OpCase>& list);
void add_pool_cases(std::vector<OpCase>& list);
void add_gemm_cases(std::vector<OpCase>& list);
void add_conv2d_cases(std::vector<OpCase>& list);
void add_infonce_cases(std::vector<OpCase>& list);
void add_contrastive_kl_cases(std::vector<OpCase>& list);
void add_cohort_contrastive_cases(std::vector<OpCase>& list);
void add_memory_bank_cases(std::vector<OpCase>& list);
void add_memory_cases(std::vector<OpCase>& list);

}  // namespace driver
}  // namespace lmcl
