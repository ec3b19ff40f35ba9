// Argument checking and conversion shared by every binding file.
//
// This is the only place (with the other files in native/binding/) that includes napi.h.
// Binding functions: check arguments, convert them, check the tensor operands share one device,
// call one kernel through dispatch() (lmcl::cpu:: or lmcl::cuda::), turn its Status into a
// JavaScript Error. No math here. C++ exceptions (NAPI_CPP_EXCEPTIONS) carry the
// Napi::Error back to JavaScript, so a thrown check never crashes the process.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "lmcl/cuda_ops.h"
#include "lmcl/index_array.h"
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
  // An index storage (JavaScript's IndexTensor): `count` int32 values on `device`, read-only from
  // its creation. A 'cuda' one keeps a host copy of the values too, so checks and launch plans
  // never read device memory back.
  static Napi::Object create_indices(Napi::Env env, Device device, const int32_t* values, int64_t count);
  // Native handle objects alive in this process (constructed, not yet deleted by free() or a finalizer).
  static int64_t live_handles();
  explicit StorageHandle(const Napi::CallbackInfo& info);
  ~StorageHandle() override;

  void release();
  bool is_freed() const { return data_ == nullptr && bytes_ != 0; }
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  bool holds_indices() const { return index_count_ >= 0; }
  int64_t index_count() const { return index_count_; }
  // An index storage's values on the host and on its device (the same pointer for 'cpu').
  IndexArray index_array() const;

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_ = Device::kCpu;
  bool released_ = false;
  int64_t index_count_ = -1;                 // >= 0: an index storage of that many int32 values
  std::vector<int32_t> host_index_values_;  // a 'cuda' index storage's host copy
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
StorageHandle* storage_of(Napi::Env env, const Napi::Value& value, const char* op, const char* name);

// A tensor operand: the data pointer of a live storage (host memory for 'cpu', device memory for
// 'cuda') and the storage's device. It converts to float* (or, with .ints(), to int32_t*) so a
// binding passes it straight to a kernel; the pointer is only valid on `device`, which is why
// every binding checks its operands with same_device() and calls the kernel through dispatch().
struct Operand {
  float* data = nullptr;
  Device device = Device::kCpu;
  const char* name = "";
  bool given = false;  // false: an optional operand passed as null/undefined (data is nullptr)
  operator float*() const { return data; }
  int32_t* ints() const { return reinterpret_cast<int32_t*>(data); }  // int32 payloads (argmax indices)
};

// The storage at `index` must be a live float block (any device; not an index storage) holding at
// least `count` floats.
Operand floats(const Napi::CallbackInfo& info, size_t index, int64_t count, const char* op, const char* name);
// The same checks for a value that is not a direct argument (an entry of an array argument).
Operand floats_of(Napi::Env env, const Napi::Value& value, int64_t count, const char* op, const char* name);
// Same, but null/undefined is allowed and gives an operand that is not given (nullptr).
Operand optional_floats(const Napi::CallbackInfo& info, size_t index, int64_t count, const char* op,
                        const char* name);

// The one device of the given operands (those not given are skipped). Operands on different
// devices are an Error naming every operand and its device: ops never copy between devices.
Device same_device(Napi::Env env, const char* op, std::initializer_list<Operand> operands);
Device same_device(Napi::Env env, const char* op, const std::vector<Operand>& operands);

// Calls the kernel for `device`: cpu_kernel (lmcl::cpu::name) or cuda_kernel (lmcl::cuda::name,
// a stub until native/src/cuda/<stem>.cu defines it). Both must have the same signature (the
// template deduces one parameter list from both), so a binding line reads
//   dispatch(device, cpu::softmax_forward, cuda::softmax_forward, log, outer, dim, inner, x, out)
template <typename... Params, typename... Args>
Status dispatch(Device device, Status (*cpu_kernel)(Params...), Status (*cuda_kernel)(Params...), Args&&... args) {
  if (device == Device::kCuda) return cuda_kernel(std::forward<Args>(args)...);
  return cpu_kernel(std::forward<Args>(args)...);
}
int64_t get_int(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);
double get_number(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);
bool get_bool(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);
std::vector<int64_t> get_int_array(const Napi::CallbackInfo& info, size_t index, const char* op,
                                   const char* name);
// An Int32Array argument (a per-call host constant: cohort pairs); returns its data and length.
const int32_t* get_int32_array(const Napi::CallbackInfo& info, size_t index, int64_t* length, const char* op,
                               const char* name);

// An index operand (class labels, gather indices, bank indices and rows): an index storage made by
// allocIndices. `operand` carries its device and name for same_device(); `array` is what the
// kernels take; `length` is its value count.
struct IndexOperand {
  IndexArray array;
  Operand operand;
  int64_t length = 0;
};
IndexOperand get_indices(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name);
// Class labels: an index storage of exactly `batch` values ("labels has length 3 but the batch size is 4").
IndexOperand get_labels(const Napi::CallbackInfo& info, size_t index, int64_t batch, const char* op);

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
