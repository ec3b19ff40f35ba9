// CUDA device memory: caching allocator over cudaMalloc, and host/device copies.
//
// Freed blocks are cached per rounded size (like the CPU allocator) because cudaMalloc/cudaFree
// synchronise the device. Plain cudaMalloc, never managed memory (see docs/gpu-host.md).
// Host-to-device copies go through a pinned staging ring (StagingRing below): the host bytes are
// copied into page-locked memory and an async copy is queued on the default stream, so an upload
// (a batch, a parameter) does not wait for the kernels already queued — a plain cudaMemcpy from
// pageable memory synchronises the stream first. Device-to-host copies stay synchronous: the
// host reads the values right after. Every synchronising call (a copy to the host, synchronize)
// then reports a deferred device check that failed in the work before it (deferred_error.cu).
// Every CUDA error becomes a Status; nothing here aborts the process.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common.cuh"
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
  int64_t cached_bytes = 0;  // in the free lists
  int64_t peak_live_bytes = 0;

  // Callers hold `mutex`.
  void note_live(size_t size) {
    live_bytes += static_cast<int64_t>(size);
    if (live_bytes > peak_live_bytes) peak_live_bytes = live_bytes;
  }
  void release_cached() {
    for (auto& entry : free_lists)
      for (void* block : entry.second) cudaFree(block);  // cudaFree waits for the device first
    free_lists.clear();
    cached_bytes = 0;
  }
};

Cache& cache() {
  static Cache* instance = new Cache();
  return *instance;
}

// A fixed ring of pinned host memory. Each upload takes the next region (256-byte aligned, at
// most kChunk bytes; larger copies go piece by piece), memcpys the source into it, queues
// cudaMemcpyAsync to the device and records an event. A region is reused only after its event
// has completed: when a new region would overlap regions still in flight, the oldest are waited
// for first (they are the ones just ahead of the write position). The source can be reused as
// soon as copy_host_to_device returns. If pinned memory cannot be had (a locked-down host), every
// upload falls back to a synchronous cudaMemcpy.
class StagingRing {
 public:
  static constexpr size_t kCapacity = size_t(32) << 20;
  static constexpr size_t kChunk = size_t(8) << 20;
  static constexpr size_t kAlignment = 256;

  Status upload(void* destination, const void* source, size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!ready()) return from_cuda(cudaMemcpy(destination, source, bytes, cudaMemcpyHostToDevice), "copy to device");
    char* target = static_cast<char*>(destination);
    const char* from = static_cast<const char*>(source);
    for (size_t done = 0; done < bytes;) {
      const size_t piece = std::min(kChunk, bytes - done);
      size_t begin = 0;
      Status status = reserve(piece, &begin);
      if (!status.is_ok()) return status;
      std::memcpy(base_ + begin, from + done, piece);
      status = from_cuda(cudaMemcpyAsync(target + done, base_ + begin, piece, cudaMemcpyHostToDevice, 0),
                         "copy to device (queued from the pinned staging ring)");
      if (!status.is_ok()) return status;
      cudaEvent_t event = nullptr;
      status = take_event(&event);
      if (status.is_ok()) status = from_cuda(cudaEventRecord(event, 0), "record a staging event");
      if (!status.is_ok()) {
        // Without an event the region cannot be tracked: finish this copy before going on.
        if (event) spare_events_.push_back(event);
        return from_cuda(cudaStreamSynchronize(0), "copy to device (synchronised)");
      }
      in_flight_.push_back({begin, begin + piece, event});
      head_ = begin + piece;
      done += piece;
    }
    return Status::ok();
  }

 private:
  struct Region {
    size_t begin, end;
    cudaEvent_t event;
  };

  bool ready() {
    if (base_) return true;
    if (unavailable_) return false;
    void* pinned = nullptr;
    if (cudaHostAlloc(&pinned, kCapacity, cudaHostAllocDefault) != cudaSuccess) {
      cudaGetLastError();
      unavailable_ = true;
      return false;
    }
    base_ = static_cast<char*>(pinned);
    return true;
  }

  // The region [begin, begin + bytes) after the write position, wrapping to the start when it
  // does not fit before the end; waits for the in-flight regions it overlaps, oldest first.
  Status reserve(size_t bytes, size_t* begin) {
    size_t start = (head_ + kAlignment - 1) / kAlignment * kAlignment;
    if (start + bytes > kCapacity) start = 0;
    const size_t end = start + bytes;
    while (!in_flight_.empty()) {
      bool overlapping = false;
      for (const Region& region : in_flight_)
        if (region.begin < end && start < region.end) overlapping = true;
      if (!overlapping) break;
      Region oldest = in_flight_.front();
      in_flight_.pop_front();
      const Status status = from_cuda(cudaEventSynchronize(oldest.event), "wait for a staged copy");
      spare_events_.push_back(oldest.event);
      if (!status.is_ok()) return status;
    }
    *begin = start;
    return Status::ok();
  }

  Status take_event(cudaEvent_t* event) {
    if (!spare_events_.empty()) {
      *event = spare_events_.back();
      spare_events_.pop_back();
      return Status::ok();
    }
    return from_cuda(cudaEventCreateWithFlags(event, cudaEventDisableTiming), "create a staging event");
  }

  std::mutex mutex_;
  char* base_ = nullptr;
  bool unavailable_ = false;
  size_t head_ = 0;
  std::deque<Region> in_flight_;
  std::vector<cudaEvent_t> spare_events_;
};

StagingRing& staging_ring() {
  static StagingRing* instance = new StagingRing();  // never destroyed: the driver may be gone at exit
  return *instance;
}

// Pinned host blocks for the copies read without a wait (begin/finish_copy_to_host). Blocks up to
// kKeptBytes are kept for reuse (cudaHostAlloc is slow, and cudaFreeHost may synchronise the
// device); larger ones are made for the copy and freed after it. Events record with
// cudaEventBlockingSync, so the finishing thread sleeps instead of spinning.
class PinnedReads {
 public:
  static constexpr size_t kKeptBytes = size_t(16) << 20;

  Status take(size_t bytes, PendingCopy** copy);
  void give(PendingCopy* copy);

 private:
  std::mutex mutex_;
  std::vector<PendingCopy*> free_;
};

PinnedReads& pinned_reads() {
  static PinnedReads* instance = new PinnedReads();  // never destroyed, like the staging ring
  return *instance;
}

__global__ void fill_kernel(float* destination, float value, int64_t count) {
  int64_t index = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (; index < count; index += stride) destination[index] = value;
}

}  // namespace

// The data at the start of the block, the deferred-check slot's copy after it (256-aligned).
struct PendingCopy {
  char* pinned = nullptr;
  size_t capacity = 0;
  size_t bytes = 0;
  bool with_slot = false;
  cudaEvent_t event = nullptr;
};

namespace {

size_t slot_offset(size_t bytes) { return (bytes + 255) / 256 * 256; }

Status PinnedReads::take(size_t bytes, PendingCopy** copy) {
  const size_t needed = slot_offset(bytes) + sizeof(detail::DeferredError);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < free_.size(); ++i) {
      if (free_[i]->capacity < needed) continue;
      *copy = free_[i];
      free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
      return Status::ok();
    }
  }
  auto* made = new PendingCopy();
  made->capacity = needed <= kKeptBytes ? std::max<size_t>(4096, size_t(1) << (64 - __builtin_clzll(needed - 1))) : needed;
  Status status = from_cuda(cudaHostAlloc(reinterpret_cast<void**>(&made->pinned), made->capacity, cudaHostAllocDefault),
                            "pinned memory for a copy to the host");
  if (status.is_ok())
    status = from_cuda(cudaEventCreateWithFlags(&made->event, cudaEventDisableTiming | cudaEventBlockingSync),
                       "an event for a copy to the host");
  if (!status.is_ok()) {
    if (made->pinned) cudaFreeHost(made->pinned);
    delete made;
    cudaGetLastError();
    return status;
  }
  *copy = made;
  return Status::ok();
}

void PinnedReads::give(PendingCopy* copy) {
  if (copy->capacity <= kKeptBytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_.push_back(copy);
    return;
  }
  cudaFreeHost(copy->pinned);
  cudaEventDestroy(copy->event);
  delete copy;
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
      state.cached_bytes -= static_cast<int64_t>(size);
      state.live[*pointer] = size;
      state.note_live(size);
      return Status::ok();
    }
  }
  cudaError_t error = cudaMalloc(pointer, size);
  if (error != cudaSuccess) {
    cudaGetLastError();
    // Release the cache and retry once before reporting out-of-memory.
    std::lock_guard<std::mutex> lock(state.mutex);
    state.release_cached();
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
  state.note_live(size);
  return Status::ok();
}

Status free(void* pointer) {
  Cache& state = cache();
  std::lock_guard<std::mutex> lock(state.mutex);
  auto found = state.live.find(pointer);
  if (found == state.live.end()) return Status::ok();
  state.free_lists[found->second].push_back(pointer);
  state.cached_bytes += static_cast<int64_t>(found->second);
  state.live_bytes -= static_cast<int64_t>(found->second);
  state.live.erase(found);
  return Status::ok();
}

Status copy_host_to_device(void* destination, const void* source, size_t bytes) {
  if (bytes == 0) return Status::ok();
  return staging_ring().upload(destination, source, bytes);
}
Status copy_device_to_host(void* destination, const void* source, size_t bytes) {
  LMCL_RETURN_IF_ERROR(from_cuda(cudaMemcpy(destination, source, bytes, cudaMemcpyDeviceToHost), "copy to host"));
  return detail::take_deferred_error();
}
Status begin_copy_to_host(const void* source, size_t bytes, PendingCopy** copy) {
  *copy = nullptr;
  PendingCopy* pending = nullptr;
  LMCL_RETURN_IF_ERROR(pinned_reads().take(bytes, &pending));
  pending->bytes = bytes;
  detail::DeferredError* slot = detail::existing_deferred_slot();
  pending->with_slot = slot != nullptr;
  Status status = Status::ok();
  if (bytes > 0)
    status = from_cuda(cudaMemcpyAsync(pending->pinned, source, bytes, cudaMemcpyDeviceToHost, 0), "copy to host (queued)");
  if (status.is_ok() && slot)
    status = from_cuda(cudaMemcpyAsync(pending->pinned + slot_offset(bytes), slot, sizeof(detail::DeferredError),
                                       cudaMemcpyDeviceToHost, 0),
                       "copy to host (queued: the deferred-check slot)");
  if (status.is_ok()) status = from_cuda(cudaEventRecord(pending->event, 0), "copy to host (recording its event)");
  if (!status.is_ok()) {
    pinned_reads().give(pending);
    return status;
  }
  *copy = pending;
  return Status::ok();
}

Status finish_copy_to_host(PendingCopy* copy, void* destination) {
  if (!copy) return Status(StatusCode::kInvalidArgument, "finish_copy_to_host: no copy was begun");
  Status status = from_cuda(cudaEventSynchronize(copy->event), "copy to host (waiting)");
  detail::DeferredError failure{};
  if (status.is_ok()) {
    if (copy->bytes > 0) std::memcpy(destination, copy->pinned, copy->bytes);
    if (copy->with_slot) std::memcpy(&failure, copy->pinned + slot_offset(copy->bytes), sizeof(failure));
  }
  pinned_reads().give(copy);
  LMCL_RETURN_IF_ERROR(status);
  if (failure.check == static_cast<int32_t>(detail::DeferredCheck::kNone)) return Status::ok();
  LMCL_RETURN_IF_ERROR(detail::clear_deferred_error());
  return detail::deferred_status(failure);
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
Status synchronize() {
  LMCL_RETURN_IF_ERROR(from_cuda(cudaDeviceSynchronize(), "synchronize"));
  return detail::take_deferred_error();
}
int64_t live_bytes() {
  std::lock_guard<std::mutex> lock(cache().mutex);
  return cache().live_bytes;
}
int64_t cached_bytes() {
  std::lock_guard<std::mutex> lock(cache().mutex);
  return cache().cached_bytes;
}
int64_t peak_live_bytes() {
  std::lock_guard<std::mutex> lock(cache().mutex);
  return cache().peak_live_bytes;
}
void reset_peak_live_bytes() {
  std::lock_guard<std::mutex> lock(cache().mutex);
  cache().peak_live_bytes = cache().live_bytes;
}
Status empty_cache() {
  std::lock_guard<std::mutex> lock(cache().mutex);
  cache().release_cached();
  return from_cuda(cudaGetLastError(), "empty the device cache");
}

}  // namespace cuda
}  // namespace lmcl
