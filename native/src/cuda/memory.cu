// CUDA device memory: caching allocator over cudaMalloc, and host/device copies.
//
// Freed blocks are cached per rounded size (like the CPU allocator) because cudaMalloc/cudaFree
// synchronise the device. Plain cudaMalloc, never managed memory (see docs/gpu-host.md).
// Every CUDA error becomes a Status; nothing here aborts the process.
#include <cuda_runtime.h>

#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "lmcl/cuda_memory.h"

namespace lmcl {
namespace cuda {
namespace {

Status from_cuda(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return Status::ok();
  return Status(StatusCode::kDeviceError,
                std::string(what) + ": " + cudaGetErrorName(error) + " (" + cudaGetErrorString(error) + ")");
}

size_t round_size(size_t bytes) {
  const size_t small = 512, large = size_t(2) << 20;
  if (bytes == 0) bytes = 1;
  if (bytes < large) return (bytes + small - 1) / small * small;
  return (bytes + large - 1) / large * large;
}

struct Cache {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> free_lists;
  std::unordered_map<void*, size_t> live;
  int64_t live_bytes = 0;
};

Cache& cache() {
  static Cache* instance = new Cache();
  return *instance;
}

__global__ void fill_kernel(float* destination, float value, int64_t count) {
  int64_t index = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (; index < count; index += stride) destination[index] = value;
}

}  // namespace

bool compiled_with_cuda() { return true; }

Status device_count(int* count) {
  *count = 0;
  cudaError_t error = cudaGetDeviceCount(count);
  if (error != cudaSuccess) {
    *count = 0;
    cudaGetLastError();  // clear the sticky error
    return Status(StatusCode::kDeviceError,
                  std::string("no CUDA device: ") + cudaGetErrorString(error));
  }
  return Status::ok();
}

Status allocate(size_t bytes, void** pointer) {
  size_t size = round_size(bytes);
  Cache& state = cache();
  {
    std::lock_guard<std::mutex> lock(state.mutex);
    auto found = state.free_lists.find(size);
    if (found != state.free_lists.end() && !found->second.empty()) {
      *pointer = found->second.back();
      found->second.pop_back();
      state.live[*pointer] = size;
      state.live_bytes += size;
      return Status::ok();
    }
  }
  cudaError_t error = cudaMalloc(pointer, size);
  if (error != cudaSuccess) {
    cudaGetLastError();
    // Release the cache and retry once before reporting out-of-memory.
    std::lock_guard<std::mutex> lock(state.mutex);
    for (auto& entry : state.free_lists)
      for (void* block : entry.second) cudaFree(block);
    state.free_lists.clear();
    error = cudaMalloc(pointer, size);
    if (error != cudaSuccess) {
      cudaGetLastError();
      *pointer = nullptr;
      return Status(StatusCode::kOutOfMemory, "cudaMalloc of " + std::to_string(size) + " bytes failed: " +
                                                  cudaGetErrorString(error));
    }
  }
  std::lock_guard<std::mutex> lock(state.mutex);
  state.live[*pointer] = size;
  state.live_bytes += size;
  return Status::ok();
}

Status free(void* pointer) {
  Cache& state = cache();
  std::lock_guard<std::mutex> lock(state.mutex);
  auto found = state.live.find(pointer);
  if (found == state.live.end()) return Status::ok();
  state.free_lists[found->second].push_back(pointer);
  state.live_bytes -= found->second;
  state.live.erase(found);
  return Status::ok();
}

Status copy_host_to_device(void* destination, const void* source, size_t bytes) {
  return from_cuda(cudaMemcpy(destination, source, bytes, cudaMemcpyHostToDevice), "copy to device");
}
Status copy_device_to_host(void* destination, const void* source, size_t bytes) {
  return from_cuda(cudaMemcpy(destination, source, bytes, cudaMemcpyDeviceToHost), "copy to host");
}
Status copy_device_to_device(void* destination, const void* source, size_t bytes) {
  return from_cuda(cudaMemcpy(destination, source, bytes, cudaMemcpyDeviceToDevice), "device copy");
}
Status fill(float* destination, float value, int64_t count) {
  if (count <= 0) return Status::ok();
  int blocks = static_cast<int>((count + 255) / 256 < 65535 ? (count + 255) / 256 : 65535);
  fill_kernel<<<blocks, 256>>>(destination, value, count);
  return from_cuda(cudaGetLastError(), "fill");
}
Status synchronize() { return from_cuda(cudaDeviceSynchronize(), "synchronize"); }
int64_t live_bytes() {
  std::lock_guard<std::mutex> lock(cache().mutex);
  return cache().live_bytes;
}

}  // namespace cuda
}  // namespace lmcl
