// Argument checking and conversion shared by every binding file.
//
// This is the only place (with the other files in native/binding/) that includes napi.h.
// Binding functions: check arguments, convert them, call one core function, turn its Status
// into a JavaScript Error. No math here. C++ exceptions (NAPI_CPP_EXCEPTIONS) carry the
// Napi::Error back to JavaScript, so a thrown check never crashes the process.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "lmcl/status.h"

namespace lmcl {
namespace binding {

enum class Device { kCpu = 0, kCuda = 1 };

const char* device_name(Device device);

// A block of device memory owned by JavaScript through this handle. Freed by free() from
// JavaScript (deterministic) or, as a safety net, when the handle is garbage collected.
class StorageHandle : public Napi::ObjectWrap<StorageHandle> {
 public:
  static Napi::Function define_class(Napi::Env env);
  static Napi::Object create(Napi::Env env, Device device, size_t bytes);
  // Native handle objects alive in this process (constructed, not yet deleted by free() or a finalizer).
  static int64_t live_handles();
  explicit StorageHandle(const Napi::CallbackInfo& info);
  ~StorageHandle() override;

  void release();
  bool is_freed() const { return data_ == nullptr && bytes_ != 0; }
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_ = Device::kCpu;
  bool released_ = false;
};

// Per-environment state (worker threads each get their own), stored with SetInstanceData.
struct AddonData {
  Napi::FunctionReference storage_constructor;
};

// Throws a JavaScript Error "op: message" when status is not ok.
void throw_if_error(Napi::Env env, const Status& status, const char* op);
[[noreturn]] void throw_error(Napi::Env env, const std::string& message);

// Argument readers; each throws a JavaScript TypeError/Error naming the op and the argument.
StorageHandle* get_storage(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);
// The storage at `index` must be a live CPU block holding at least `count` floats.
float* cpu_floats(const Napi::CallbackInfo& info, size_t index, int64_t count, const char* op, const char* name);
// The same checks for a value that is not a direct argument (an entry of an array argument).
StorageHandle* storage_of(Napi::Env env, const Napi::Value& value, const char* op, const char* name);
float* cpu_floats_of(Napi::Env env, const Napi::Value& value, int64_t count, const char* op, const char* name);
// Same, but null/undefined is allowed and gives nullptr (optional operands such as bias).
float* optional_cpu_floats(const Napi::CallbackInfo& info, size_t index, int64_t count, const char* op,
                           const char* name);
int64_t get_int(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);
double get_number(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);
bool get_bool(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);
std::vector<int64_t> get_int_array(const Napi::CallbackInfo& info, size_t index, const char* op,
                                   const char* name);
// An Int32Array argument (labels, indices); returns its data and length.
const int32_t* get_int32_array(const Napi::CallbackInfo& info, size_t index, int64_t* length, const char* op,
                               const char* name);
// Class labels: an Int32Array of exactly `batch` entries ("labels has length 3 but the batch size is 4").
const int32_t* get_labels(const Napi::CallbackInfo& info, size_t index, int64_t batch, const char* op);

// The product of the extents, after checking each is >= 0 and the product stays an exact
// integer in a double (< 2^53); throws an Error naming op otherwise.
int64_t element_count(Napi::Env env, const char* op, std::initializer_list<int64_t> extents);

// Registration functions, one per binding file (same stem as the kernel files).
void register_storage(Napi::Env env, Napi::Object exports);
void register_gemm(Napi::Env env, Napi::Object exports);
void register_conv2d(Napi::Env env, Napi::Object exports);
void register_batchnorm(Napi::Env env, Napi::Object exports);
void register_pool(Napi::Env env, Napi::Object exports);
void register_peak(Napi::Env env, Napi::Object exports);
void register_softmax(Napi::Env env, Napi::Object exports);
void register_elementwise(Napi::Env env, Napi::Object exports);
void register_reduce(Napi::Env env, Napi::Object exports);
void register_normalize(Napi::Env env, Napi::Object exports);
void register_layout(Napi::Env env, Napi::Object exports);
void register_sgd(Napi::Env env, Napi::Object exports);
void register_infonce(Napi::Env env, Napi::Object exports);
void register_contrastive_kl(Napi::Env env, Napi::Object exports);
void register_cohort_contrastive(Napi::Env env, Napi::Object exports);
void register_memory_bank(Napi::Env env, Napi::Object exports);

}  // namespace binding
}  // namespace lmcl
