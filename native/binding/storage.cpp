// Storage bindings: allocate/free device blocks and index storages, copy data in and out, fill, memory stats,
// engine information. Dispatches on the storage's device (cpu or cuda).
#include <cstring>
#include <vector>

#include "args.h"
#include "lmcl/allocator.h"
#include "lmcl/cpu_features.h"
#include "lmcl/cuda_memory.h"
#include "lmcl/matmul_precision.h"
#include "lmcl/parallel.h"

namespace lmcl {
namespace binding {
namespace {

Device parse_device(const Napi::CallbackInfo& info, size_t index, const char* op) {
  if (index < info.Length() && info[index].IsString()) {
    std::string name = info[index].As<Napi::String>().Utf8Value();
    if (name == "cpu") return Device::kCpu;
    if (name == "cuda") return Device::kCuda;
    throw Napi::TypeError::New(info.Env(), std::string(op) + ": unknown device '" + name + "' (expected 'cpu' or 'cuda')");
  }
  throw Napi::TypeError::New(info.Env(), std::string(op) + ": device must be 'cpu' or 'cuda'");
}

// alloc(device, bytes) -> storage
Napi::Value alloc(const Napi::CallbackInfo& info) {
  Device device = parse_device(info, 0, "alloc");
  int64_t bytes = get_int(info, 1, "alloc", "bytes");
  if (bytes < 0) throw_error(info.Env(), "alloc: byte count must be >= 0, got " + std::to_string(bytes));
  return StorageHandle::create(info.Env(), device, static_cast<size_t>(bytes));
}

// allocIndices(device, Int32Array) -> an index storage holding a copy of the values (read-only).
Napi::Value alloc_indices(const Napi::CallbackInfo& info) {
  Device device = parse_device(info, 0, "allocIndices");
  int64_t count = 0;
  const int32_t* values = get_int32_array(info, 1, &count, "allocIndices", "values");
  return StorageHandle::create_indices(info.Env(), device, values, count);
}

// indexValues(storage) -> Int32Array: a copy of an index storage's values, from its host side
// (no device read, no synchronisation).
Napi::Value index_values(const Napi::CallbackInfo& info) {
  IndexOperand operand = get_indices(info, 0, "indexValues", "storage");
  Napi::Int32Array result = Napi::Int32Array::New(info.Env(), static_cast<size_t>(operand.length));
  if (operand.length > 0) std::memcpy(result.Data(), operand.array.host, sizeof(int32_t) * static_cast<size_t>(operand.length));
  return result;
}

// indexLength(storage) -> the value count of an index storage.
Napi::Value index_length(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(get_indices(info, 0, "indexLength", "storage").length));
}

// Index storages are written once, at creation: writers refuse them, and float readers too.
void refuse_indices(Napi::Env env, const StorageHandle* storage, const char* op, const char* name) {
  if (storage->holds_indices()) {
    throw_error(env, std::string(op) + ": argument '" + name +
                         "' is an index tensor (int32 values, read-only); read it with indexValues, or make a new one with allocIndices");
  }
}

// free(storage): returns the block to its caching allocator and deletes the native handle now.
// Idempotent. The wrap is removed first, so no Node-API finalizer stays queued for it: finalizers
// run only when the event loop turns, and a synchronous training loop that freed its tensors would
// otherwise grow the process by ~180 bytes per tensor until it yields (measured: 38 MiB over 200k
// allocations). A freed storage object stays a valid JS object; ops refuse it as disposed.
Napi::Value free_storage(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "free: expected a storage");
  auto* data = info.Env().GetInstanceData<AddonData>();
  Napi::Object object = info[0].As<Napi::Object>();
  if (!object.InstanceOf(data->storage_constructor.Value())) throw Napi::TypeError::New(info.Env(), "free: expected a storage");
  void* native = nullptr;
  if (napi_remove_wrap(info.Env(), object, &native) != napi_ok || native == nullptr) return info.Env().Undefined();  // freed before
  auto* handle = static_cast<StorageHandle*>(native);
  handle->release();
  delete handle;
  return info.Env().Undefined();
}

// upload(storage, Float32Array | Int32Array, byteOffset): copies host data into the block.
Napi::Value upload(const Napi::CallbackInfo& info) {
  StorageHandle* storage = get_storage(info, 0, "upload", "storage");
  refuse_indices(info.Env(), storage, "upload", "storage");
  if (info.Length() < 2 || !info[1].IsTypedArray()) throw Napi::TypeError::New(info.Env(), "upload: source must be a typed array");
  Napi::TypedArray source = info[1].As<Napi::TypedArray>();
  int64_t offset = get_int(info, 2, "upload", "byteOffset");
  size_t bytes = source.ByteLength();
  const uint8_t* host = static_cast<const uint8_t*>(source.ArrayBuffer().Data()) + source.ByteOffset();
  if (offset < 0 || static_cast<uint64_t>(offset) + bytes > storage->bytes()) {
    throw_error(info.Env(), "upload: " + std::to_string(bytes) + " bytes at offset " + std::to_string(offset) +
                                " do not fit a block of " + std::to_string(storage->bytes()) + " bytes");
  }
  if (bytes == 0) return info.Env().Undefined();
  uint8_t* destination = static_cast<uint8_t*>(storage->data()) + offset;
  if (storage->device() == Device::kCpu) std::memcpy(destination, host, bytes);
  else throw_if_error(info.Env(), cuda::copy_host_to_device(destination, host, bytes), "upload");
  return info.Env().Undefined();
}

// The (storage, byteOffset, floatCount) arguments of download / downloadAsync, checked.
struct DownloadRange {
  StorageHandle* storage;
  const uint8_t* source;
  size_t count;
};
DownloadRange download_range(const Napi::CallbackInfo& info, const char* op) {
  StorageHandle* storage = get_storage(info, 0, op, "storage");
  refuse_indices(info.Env(), storage, op, "storage");
  int64_t offset = get_int(info, 1, op, "byteOffset");
  int64_t count = get_int(info, 2, op, "count");
  if (offset < 0 || count < 0 || static_cast<uint64_t>(offset) + static_cast<uint64_t>(count) * 4 > storage->bytes()) {
    throw_error(info.Env(), std::string(op) + ": range outside the block");
  }
  return {storage, static_cast<const uint8_t*>(storage->data()) + offset, static_cast<size_t>(count)};
}

// download(storage, byteOffset, floatCount) -> Float32Array (a copy)
Napi::Value download(const Napi::CallbackInfo& info) {
  const DownloadRange range = download_range(info, "download");
  Napi::Float32Array result = Napi::Float32Array::New(info.Env(), range.count);
  if (range.count == 0) return result;
  if (range.storage->device() == Device::kCpu) std::memcpy(result.Data(), range.source, range.count * 4);
  else throw_if_error(info.Env(), cuda::copy_device_to_host(result.Data(), range.source, range.count * 4), "download");
  return result;
}

// Finishes a device copy begun on the main thread (queued on the stream in order with the work
// before it) on a libuv worker thread, so the event loop keeps running while the device catches
// up; then resolves the promise with the values (or rejects it with the error, a deferred device
// check included).
class FinishDownload : public Napi::AsyncWorker {
 public:
  FinishDownload(Napi::Env env, cuda::PendingCopy* copy, size_t count)
      : Napi::AsyncWorker(env, "lmcl.downloadAsync"), copy_(copy), values_(count), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() const { return deferred_.Promise(); }

  void Execute() override {
    const Status status = cuda::finish_copy_to_host(copy_, values_.data());
    copy_ = nullptr;
    if (!status.is_ok()) SetError("downloadAsync: " + status.message());
  }
  void OnOK() override {
    Napi::Float32Array result = Napi::Float32Array::New(Env(), values_.size());
    if (!values_.empty()) std::memcpy(result.Data(), values_.data(), values_.size() * 4);
    deferred_.Resolve(result);
  }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  cuda::PendingCopy* copy_;
  std::vector<float> values_;
  Napi::Promise::Deferred deferred_;
};

// downloadAsync(storage, byteOffset, floatCount) -> Promise<Float32Array>: the values as of this
// call (a CPU block is copied now; a device copy is queued now and waited for off the main
// thread), so the caller may overwrite or free the block right after.
Napi::Value download_async(const Napi::CallbackInfo& info) {
  const DownloadRange range = download_range(info, "downloadAsync");
  if (range.storage->device() == Device::kCpu) {
    Napi::Float32Array result = Napi::Float32Array::New(info.Env(), range.count);
    if (range.count > 0) std::memcpy(result.Data(), range.source, range.count * 4);
    Napi::Promise::Deferred done = Napi::Promise::Deferred::New(info.Env());
    done.Resolve(result);
    return done.Promise();
  }
  cuda::PendingCopy* copy = nullptr;
  throw_if_error(info.Env(), cuda::begin_copy_to_host(range.source, range.count * 4, &copy), "downloadAsync");
  auto* worker = new FinishDownload(info.Env(), copy, range.count);  // deletes itself after OnOK/OnError
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

// fill(storage, value, count): sets the first count floats.
Napi::Value fill(const Napi::CallbackInfo& info) {
  StorageHandle* storage = get_storage(info, 0, "fill", "storage");
  refuse_indices(info.Env(), storage, "fill", "storage");
  double value = get_number(info, 1, "fill", "value");
  int64_t count = get_int(info, 2, "fill", "count");
  if (count < 0 || static_cast<uint64_t>(count) * 4 > storage->bytes()) throw_error(info.Env(), "fill: count exceeds the block");
  float* destination = static_cast<float*>(storage->data());
  if (storage->device() == Device::kCpu) {
    float fill_value = static_cast<float>(value);
    parallel_for(0, count, 1 << 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) destination[i] = fill_value;
    });
  } else {
    throw_if_error(info.Env(), cuda::fill(destination, static_cast<float>(value), count), "fill");
  }
  return info.Env().Undefined();
}

// copy(destination, source, bytes): same-device or cross-device copy of the first bytes.
Napi::Value copy(const Napi::CallbackInfo& info) {
  StorageHandle* destination = get_storage(info, 0, "copy", "destination");
  StorageHandle* source = get_storage(info, 1, "copy", "source");
  refuse_indices(info.Env(), destination, "copy", "destination");
  refuse_indices(info.Env(), source, "copy", "source");
  int64_t bytes = get_int(info, 2, "copy", "bytes");
  if (bytes < 0 || static_cast<uint64_t>(bytes) > destination->bytes() || static_cast<uint64_t>(bytes) > source->bytes()) {
    throw_error(info.Env(), "copy: byte count exceeds a block");
  }
  if (bytes == 0) return info.Env().Undefined();
  Status status;
  if (destination->device() == Device::kCpu && source->device() == Device::kCpu) {
    const char* from = static_cast<const char*>(source->data());
    char* to = static_cast<char*>(destination->data());
    parallel_for(0, bytes, 1 << 20, [&](int64_t begin, int64_t end) { std::memcpy(to + begin, from + begin, end - begin); });
  } else if (destination->device() == Device::kCuda && source->device() == Device::kCpu) {
    status = cuda::copy_host_to_device(destination->data(), source->data(), bytes);
  } else if (destination->device() == Device::kCpu && source->device() == Device::kCuda) {
    status = cuda::copy_device_to_host(destination->data(), source->data(), bytes);
  } else {
    status = cuda::copy_device_to_device(destination->data(), source->data(), bytes);
  }
  throw_if_error(info.Env(), status, "copy");
  return info.Env().Undefined();
}

Napi::Value memory_stats(const Napi::CallbackInfo& info) {
  AllocatorStats stats = cpu_allocator_stats();
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("cpuLiveBytes", Napi::Number::New(info.Env(), static_cast<double>(stats.live_bytes)));
  result.Set("cpuLiveBlocks", Napi::Number::New(info.Env(), static_cast<double>(stats.live_blocks)));
  result.Set("cpuCachedBytes", Napi::Number::New(info.Env(), static_cast<double>(stats.cached_bytes)));
  result.Set("cpuPeakLiveBytes", Napi::Number::New(info.Env(), static_cast<double>(stats.peak_live_bytes)));
  result.Set("cudaLiveBytes", Napi::Number::New(info.Env(), static_cast<double>(cuda::live_bytes())));
  result.Set("cudaCachedBytes", Napi::Number::New(info.Env(), static_cast<double>(cuda::cached_bytes())));
  result.Set("cudaPeakLiveBytes", Napi::Number::New(info.Env(), static_cast<double>(cuda::peak_live_bytes())));
  result.Set("nativeHandles", Napi::Number::New(info.Env(), static_cast<double>(StorageHandle::live_handles())));
  return result;
}

Napi::Value reset_memory_peak(const Napi::CallbackInfo& info) {
  cpu_reset_peak_live_bytes();
  cuda::reset_peak_live_bytes();
  return info.Env().Undefined();
}

// Both caching allocators give their kept blocks back (the CPU's to the system, CUDA's to the driver).
Napi::Value empty_cache(const Napi::CallbackInfo& info) {
  cpu_empty_cache();
  throw_if_error(info.Env(), cuda::empty_cache(), "emptyCache");
  return info.Env().Undefined();
}

Napi::Value engine_info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("simd", Napi::String::New(env, simd_level_name(simd_level())));
  result.Set("threads", Napi::Number::New(env, num_threads()));
  result.Set("cudaCompiled", Napi::Boolean::New(env, cuda::compiled_with_cuda()));
  int count = 0;
  Status status = cuda::device_count(&count);
  result.Set("cudaDevices", Napi::Number::New(env, count));
  result.Set("cudaStatus", Napi::String::New(env, status.is_ok() ? "ok" : status.message()));
  result.Set("matmulPrecision", Napi::String::New(env, matmul_precision_name(matmul_precision())));
  return result;
}

// setMatmulPrecision('highest' | 'high'): the CUDA GEMM's float32 precision (lmcl/matmul_precision.h).
Napi::Value set_precision(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsString())
    throw Napi::TypeError::New(info.Env(), "setMatmulPrecision: precision must be a string ('highest' or 'high')");
  MatmulPrecision precision = MatmulPrecision::kHighest;
  throw_if_error(info.Env(), parse_matmul_precision(info[0].As<Napi::String>().Utf8Value(), &precision), "setMatmulPrecision");
  set_matmul_precision(precision);
  return info.Env().Undefined();
}

Napi::Value set_threads(const Napi::CallbackInfo& info) {
  int64_t count = get_int(info, 0, "setNumThreads", "count");
  if (count < 1 || count > 1024) throw_error(info.Env(), "setNumThreads: count must be in 1..1024, got " + std::to_string(count));
  set_num_threads(static_cast<int>(count));
  return info.Env().Undefined();
}

}  // namespace

void register_storage(Napi::Env env, Napi::Object exports) {
  exports.Set("alloc", Napi::Function::New(env, alloc, "alloc"));
  exports.Set("allocIndices", Napi::Function::New(env, alloc_indices, "allocIndices"));
  exports.Set("indexValues", Napi::Function::New(env, index_values, "indexValues"));
  exports.Set("indexLength", Napi::Function::New(env, index_length, "indexLength"));
  exports.Set("free", Napi::Function::New(env, free_storage, "free"));
  exports.Set("upload", Napi::Function::New(env, upload, "upload"));
  exports.Set("download", Napi::Function::New(env, download, "download"));
  exports.Set("downloadAsync", Napi::Function::New(env, download_async, "downloadAsync"));
  exports.Set("fill", Napi::Function::New(env, fill, "fill"));
  exports.Set("copy", Napi::Function::New(env, copy, "copy"));
  exports.Set("memoryStats", Napi::Function::New(env, memory_stats, "memoryStats"));
  exports.Set("emptyCache", Napi::Function::New(env, empty_cache, "emptyCache"));
  exports.Set("resetMemoryPeak", Napi::Function::New(env, reset_memory_peak, "resetMemoryPeak"));
  exports.Set("info", Napi::Function::New(env, engine_info, "info"));
  exports.Set("setNumThreads", Napi::Function::New(env, set_threads, "setNumThreads"));
  exports.Set("setMatmulPrecision", Napi::Function::New(env, set_precision, "setMatmulPrecision"));
}

}  // namespace binding
}  // namespace lmcl
