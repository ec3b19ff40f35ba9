// The process-wide float32 matmul precision (native/include/lmcl/matmul_precision.h): one atomic.
// (LMCL_MATMUL_PRECISION is applied by the addon loader, src/native/load.ts, which reports a bad
// value as an Error.)
#include "lmcl/matmul_precision.h"

#include <atomic>

namespace lmcl {
namespace {

std::atomic<int>& setting() {
  static std::atomic<int> value(static_cast<int>(MatmulPrecision::kHighest));
  return value;
}

}  // namespace

MatmulPrecision matmul_precision() { return static_cast<MatmulPrecision>(setting().load(std::memory_order_relaxed)); }

void set_matmul_precision(MatmulPrecision precision) { setting().store(static_cast<int>(precision), std::memory_order_relaxed); }

Status parse_matmul_precision(const std::string& name, MatmulPrecision* precision) {
  if (name == "highest") {
    *precision = MatmulPrecision::kHighest;
    return Status::ok();
  }
  if (name == "high") {
    *precision = MatmulPrecision::kHigh;
    return Status::ok();
  }
  if (name == "medium") {
    return Status(StatusCode::kInvalidArgument,
                  "matmul precision 'medium' (BF16 tensor cores) is not implemented; use 'highest' (FP32) or 'high' (TF32)");
  }
  return Status(StatusCode::kInvalidArgument,
                "unknown matmul precision '" + name + "' (expected 'highest' for FP32 or 'high' for TF32 tensor cores)");
}

const char* matmul_precision_name(MatmulPrecision precision) {
  return precision == MatmulPrecision::kHigh ? "high" : "highest";
}

}  // namespace lmcl
