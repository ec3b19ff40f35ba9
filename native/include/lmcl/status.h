// Status codes returned by every native entry point.
//
// Kernels never throw across the C++/Node boundary and never abort: they return a Status.
// The binding layer turns a non-Ok Status into a JavaScript Error whose message names the op
// and the offending shapes (built here with describe_shape), so the message is written once,
// where the problem is detected.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace lmcl {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad shapes, sizes, parameters
  kOutOfMemory,      // allocation failed
  kNotCompiled,      // e.g. CUDA entry point in a CPU-only build
  kDeviceError,      // CUDA runtime error or no device
  kInternal,         // a bug: an invariant of ours was broken
};

class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return Status(); }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string message) {
  return Status(StatusCode::kInvalidArgument, std::move(message));
}
inline Status out_of_memory(std::string message) {
  return Status(StatusCode::kOutOfMemory, std::move(message));
}
inline Status internal_error(std::string message) {
  return Status(StatusCode::kInternal, std::move(message));
}

// "[128, 3, 32, 32]" — used in error messages so users see the shapes they passed.
inline std::string describe_shape(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + "]";
}
inline std::string describe_shape(std::initializer_list<int64_t> shape) {
  return describe_shape(std::vector<int64_t>(shape));
}

}  // namespace lmcl

// Early-return helpers for kernel argument checks.
#define LMCL_RETURN_IF_ERROR(expression)          \
  do {                                            \
    ::lmcl::Status status_ = (expression);        \
    if (!status_.is_ok()) return status_;         \
  } while (0)

#define LMCL_CHECK_ARG(condition, message)                          \
  do {                                                              \
    if (!(condition)) return ::lmcl::invalid_argument(message);     \
  } while (0)
