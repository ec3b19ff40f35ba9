// Argument readers and the storage handle class (see args.h).
#include "args.h"

#include <cmath>
#include <cstring>

#include "lmcl/allocator.h"
#include "lmcl/cuda_memory.h"

namespace lmcl {
namespace binding {

const char* device_name(Device device) { return device == Device::kCuda ? "cuda" : "cpu"; }

[[noreturn]] void throw_error(Napi::Env env, const std::string& message) {
  throw Napi::Error::New(env, message);
}

void throw_if_error(Napi::Env env, const Status& status, const char* op) {
  if (status.is_ok()) return;
  throw_error(env, std::string(op) + ": " + status.message());
}

// ---- StorageHandle ---------------------------------------------------------------------------

Napi::Function StorageHandle::define_class(Napi::Env env) {
  return DefineClass(env, "NativeStorage", {});
}

// Worker threads share the process: one atomic count for all environments.
static std::atomic<int64_t> live_handle_count{0};

int64_t StorageHandle::live_handles() { return live_handle_count.load(); }

StorageHandle::StorageHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StorageHandle>(info) {
  // Only create() may construct one: it passes a private External carrying the request.
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "NativeStorage cannot be constructed from JavaScript; use alloc()");
  }
  auto* request = info[0].As<Napi::External<std::pair<Device, size_t>>>().Data();
  device_ = request->first;
  bytes_ = request->second;
  if (bytes_ != 0) {
    if (device_ == Device::kCpu) {
      data_ = cpu_allocate(bytes_);
      if (!data_) throw_error(info.Env(), "alloc: out of memory allocating " + std::to_string(bytes_) + " bytes");
    } else {
      Status status = cuda::allocate(bytes_, &data_);
      throw_if_error(info.Env(), status, "alloc");
    }
  }
  // Counted once construction succeeded: a throwing constructor never reaches the destructor.
  live_handle_count += 1;
}

StorageHandle::~StorageHandle() {
  release();
  live_handle_count -= 1;
}

void StorageHandle::release() {
  if (released_) return;
  released_ = true;
  if (data_) {
    if (device_ == Device::kCpu) cpu_free(data_);
    else cuda::free(data_);
  }
  data_ = nullptr;
  if (bytes_ == 0) bytes_ = 1;  // so is_freed() reports true for empty blocks too
}

Napi::Object StorageHandle::create(Napi::Env env, Device device, size_t bytes) {
  std::pair<Device, size_t> request(device, bytes);
  auto* data = env.GetInstanceData<AddonData>();
  return data->storage_constructor.New({Napi::External<std::pair<Device, size_t>>::New(env, &request)});
}

Napi::Object StorageHandle::create_indices(Napi::Env env, Device device, const int32_t* values, int64_t count) {
  const size_t bytes = sizeof(int32_t) * static_cast<size_t>(count);
  Napi::Object object = create(env, device, bytes);
  StorageHandle* handle = Unwrap(object);
  if (device == Device::kCuda) {
    handle->host_index_values_.assign(values, values + count);
    if (bytes > 0) throw_if_error(env, cuda::copy_host_to_device(handle->data_, values, bytes), "allocIndices");
  } else if (bytes > 0) {
    std::memcpy(handle->data_, values, bytes);
  }
  handle->index_count_ = count;
  return object;
}

IndexArray StorageHandle::index_array() const {
  const int32_t* on_device = static_cast<const int32_t*>(data_);
  if (device_ == Device::kCuda) return IndexArray{host_index_values_.data(), on_device};
  return host_indices(on_device);
}

// ---- readers --------------------------------------------------------------------------------

static std::string where(const char* op, const char* name) { return std::string(op) + ": argument '" + name + "'"; }

StorageHandle* get_storage(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  if (index >= info.Length()) throw Napi::TypeError::New(info.Env(), where(op, name) + " must be a tensor storage");
  return storage_of(info.Env(), info[index], op, name);
}

StorageHandle* storage_of(Napi::Env env, const Napi::Value& value, const char* op, const char* name) {
  if (!value.IsObject()) throw Napi::TypeError::New(env, where(op, name) + " must be a tensor storage");
  auto* data = env.GetInstanceData<AddonData>();
  Napi::Object object = value.As<Napi::Object>();
  if (!object.InstanceOf(data->storage_constructor.Value())) {
    throw Napi::TypeError::New(env, where(op, name) + " must be a tensor storage");
  }
  // free() removes the wrap (storage.cpp): an object without one was disposed.
  void* native = nullptr;
  if (napi_unwrap(env, object, &native) != napi_ok || native == nullptr) throw_error(env, where(op, name) + " refers to a tensor that was disposed");
  auto* storage = static_cast<StorageHandle*>(native);
  if (storage->is_freed()) throw_error(env, where(op, name) + " refers to a tensor that was disposed");
  return storage;
}

Operand floats(const Napi::CallbackInfo& info, size_t index, int64_t count, const char* op, const char* name) {
  if (index >= info.Length()) throw Napi::TypeError::New(info.Env(), where(op, name) + " must be a tensor storage");
  return floats_of(info.Env(), info[index], count, op, name);
}

Operand floats_of(Napi::Env env, const Napi::Value& value, int64_t count, const char* op, const char* name) {
  StorageHandle* storage = storage_of(env, value, op, name);
  if (storage->holds_indices()) {
    throw_error(env, where(op, name) + " must be a float tensor, got an index tensor (int32 values)");
  }
  if (count < 0 || static_cast<uint64_t>(count) * sizeof(float) > storage->bytes()) {
    throw_error(env, where(op, name) + " holds " + std::to_string(storage->bytes() / sizeof(float)) +
                         " floats but the op needs " + std::to_string(count));
  }
  Operand operand;
  operand.data = static_cast<float*>(storage->data());
  operand.device = storage->device();
  operand.name = name;
  operand.given = true;
  return operand;
}

Operand optional_floats(const Napi::CallbackInfo& info, size_t index, int64_t count, const char* op,
                        const char* name) {
  if (index >= info.Length() || info[index].IsNull() || info[index].IsUndefined()) {
    Operand absent;
    absent.name = name;
    return absent;
  }
  return floats(info, index, count, op, name);
}

template <typename List>
static Device one_device(Napi::Env env, const char* op, const List& operands) {
  const Operand* first = nullptr;
  bool mixed = false;
  for (const Operand& operand : operands) {
    if (!operand.given) continue;
    if (!first) first = &operand;
    else if (operand.device != first->device) mixed = true;
  }
  if (mixed) {
    std::string list;
    for (const Operand& operand : operands) {
      if (!operand.given) continue;
      if (!list.empty()) list += ", ";
      list += std::string(operand.name) + " on '" + device_name(operand.device) + "'";
    }
    throw_error(env, std::string(op) + ": operands are on different devices (" + list +
                         "); move them to one device first (ops never copy between devices)");
  }
  return first ? first->device : Device::kCpu;
}

Device same_device(Napi::Env env, const char* op, std::initializer_list<Operand> operands) {
  return one_device(env, op, operands);
}
Device same_device(Napi::Env env, const char* op, const std::vector<Operand>& operands) {
  return one_device(env, op, operands);
}

int64_t element_count(Napi::Env env, const char* op, std::initializer_list<int64_t> extents) {
  constexpr int64_t kMaxElements = int64_t{1} << 53;
  int64_t count = 1;
  for (int64_t extent : extents) {
    if (extent < 0) throw_error(env, std::string(op) + ": negative extent " + std::to_string(extent));
    if (extent != 0 && count > kMaxElements / extent) throw_error(env, std::string(op) + ": tensor too large");
    count *= extent;
  }
  return count;
}

int64_t get_int(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  if (index >= info.Length() || !info[index].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), where(op, name) + " must be an integer");
  }
  double value = info[index].As<Napi::Number>().DoubleValue();
  // Range first: converting NaN or a huge double to int64 is undefined behaviour.
  if (!(value >= -9.0e15 && value <= 9.0e15) || value != std::trunc(value)) {
    throw Napi::TypeError::New(info.Env(), where(op, name) + " must be an integer, got " + std::to_string(value));
  }
  return static_cast<int64_t>(value);
}

double get_number(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  if (index >= info.Length() || !info[index].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), where(op, name) + " must be a number");
  }
  return info[index].As<Napi::Number>().DoubleValue();
}

bool get_bool(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  if (index >= info.Length() || !info[index].IsBoolean()) {
    throw Napi::TypeError::New(info.Env(), where(op, name) + " must be a boolean");
  }
  return info[index].As<Napi::Boolean>().Value();
}

std::vector<int64_t> get_int_array(const Napi::CallbackInfo& info, size_t index, const char* op,
                                   const char* name) {
  if (index >= info.Length() || !info[index].IsArray()) {
    throw Napi::TypeError::New(info.Env(), where(op, name) + " must be an array of integers");
  }
  Napi::Array array = info[index].As<Napi::Array>();
  std::vector<int64_t> values(array.Length());
  for (uint32_t i = 0; i < array.Length(); ++i) {
    Napi::Value item = array.Get(i);
    if (!item.IsNumber()) throw Napi::TypeError::New(info.Env(), where(op, name) + " must be an array of integers");
    double value = item.As<Napi::Number>().DoubleValue();
    if (!(value >= -9.0e15 && value <= 9.0e15) || value != std::trunc(value)) {
      throw Napi::TypeError::New(info.Env(), where(op, name) + " must be an array of integers");
    }
    values[i] = static_cast<int64_t>(value);
  }
  return values;
}

const int32_t* get_int32_array(const Napi::CallbackInfo& info, size_t index, int64_t* length, const char* op,
                               const char* name) {
  if (index >= info.Length() || !info[index].IsTypedArray() ||
      info[index].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw Napi::TypeError::New(info.Env(), where(op, name) + " must be an Int32Array");
  }
  Napi::Int32Array array = info[index].As<Napi::Int32Array>();
  *length = static_cast<int64_t>(array.ElementLength());
  return array.Data();
}

IndexOperand get_indices(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  StorageHandle* storage = get_storage(info, index, op, name);
  if (!storage->holds_indices()) {
    throw Napi::TypeError::New(info.Env(), where(op, name) + " must be an index tensor (int32 values, made by allocIndices), got a float storage");
  }
  IndexOperand result;
  result.array = storage->index_array();
  result.operand.data = static_cast<float*>(storage->data());
  result.operand.device = storage->device();
  result.operand.name = name;
  result.operand.given = true;
  result.length = storage->index_count();
  return result;
}

IndexOperand get_labels(const Napi::CallbackInfo& info, size_t index, int64_t batch, const char* op) {
  IndexOperand result = get_indices(info, index, op, "labels");
  if (result.length != batch) {
    throw_error(info.Env(), std::string(op) + ": labels has length " + std::to_string(result.length) +
                                " but the batch size is " + std::to_string(batch));
  }
  return result;
}

}  // namespace binding
}  // namespace lmcl
