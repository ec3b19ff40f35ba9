// What every CUDA kernel file shares (native/src/cuda/<stem>.cu): turning CUDA errors into a
// Status (nothing here aborts the process), launch geometry, device scratch memory from the
// caching allocator, host → device staging of small host tables (cohort pair plans, sort tables),
// deferred device checks (a check of device data reported at the next host read), and
// deterministic block reductions.
//
// Conventions of the CUDA kernels (see native/include/lmcl/ops.def for the mechanism):
// - the entry point is `Status lmcl::cuda::<name>(<the ops.def parameters>)`, defined qualified so a
//   signature that drifts from the op list is a compile error; it validates like the CPU kernel
//   (the same shape helpers, the same messages) before launching anything;
// - every pointer operand is device memory (the binding checked the devices), every scalar and
//   shape struct is on the host; the legacy default stream orders the kernels, so an entry point
//   returns without synchronising; copies to the host (cuda::copy_device_to_host) synchronise;
// - results are run-to-run deterministic: reductions are fixed-order trees (no float atomics),
//   so the same inputs give the same bits on the same card, as on the CPU;
// - the CPU kernel of the same name is the reference (native/test/cases/<stem>.cpp runs both on
//   random inputs; test/ops/*.test.ts through forEachDevice).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "lmcl/cuda_memory.h"
#include "lmcl/status.h"

namespace lmcl {
namespace cuda {
namespace detail {

inline Status from_cuda_error(cudaError_t error, const char* op) {
  if (error == cudaSuccess) return Status::ok();
  return Status(StatusCode::kDeviceError,
                std::string(op) + ": CUDA error " + cudaGetErrorName(error) + " (" + cudaGetErrorString(error) + ")");
}

// After a launch: a bad configuration or an earlier asynchronous fault becomes the op's error.
inline Status launch_status(const char* op) { return from_cuda_error(cudaGetLastError(), op); }

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over `count` elements: enough to fill the card, never zero.
inline unsigned int blocks_for(int64_t count, int threads = kThreads) {
  int64_t blocks = (count + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  if (blocks > 65535LL * 8) blocks = 65535LL * 8;
  return static_cast<unsigned int>(blocks);
}

// Device scratch memory from the caching allocator (cuda::allocate), freed at scope exit.
class DeviceScratch {
 public:
  DeviceScratch() = default;
  explicit DeviceScratch(size_t bytes) : bytes_(bytes) {
    if (bytes > 0) status_ = allocate(bytes, &pointer_);
  }
  ~DeviceScratch() {
    if (pointer_) (void)free(pointer_);
  }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  const Status& status() const { return status_; }
  bool ok() const { return status_.is_ok(); }
  void* data() const { return pointer_; }
  float* floats() const { return static_cast<float*>(pointer_); }
  double* doubles() const { return static_cast<double*>(pointer_); }
  int32_t* ints() const { return static_cast<int32_t*>(pointer_); }
  int64_t* longs() const { return static_cast<int64_t*>(pointer_); }
  size_t bytes() const { return bytes_; }
  // Copies `bytes` (at most bytes()) host bytes into the block: host arrays (labels, offsets,
  // small tables) staged for a kernel, e.g.
  //   DeviceScratch labels(batch * sizeof(int32_t)); LMCL_RETURN_IF_ERROR(labels.upload(host, ...));
  Status upload(const void* host, size_t bytes) {
    if (!ok()) return status_;
    if (bytes == 0) return Status::ok();
    if (bytes > bytes_) return Status(StatusCode::kInvalidArgument, "DeviceScratch::upload: more bytes than the block holds");
    return copy_host_to_device(pointer_, host, bytes);
  }

 private:
  void* pointer_ = nullptr;
  size_t bytes_ = 0;
  Status status_ = Status::ok();
};

// ---- deferred device checks ----------------------------------------------------------------------
// Some checks can only look at device data (argmax indices, the norm of an updated bank row).
// Copying their verdict back would make the host wait for the whole queue at every call (a
// training step would drain the pipeline per op). Instead the op records a failure in one
// device-resident slot and returns; the next synchronising call (copy_device_to_host, i.e. any
// host read, and synchronize) reads the slot and returns the failure as its Status — an
// invalid_argument naming the op, reported at the next host read (the trainer reads once per log
// interval and before every checkpoint, so a failed check never reaches a saved file). The slot
// keeps the first failure until it is read, then is cleared. An op that must write nothing on
// failure (memory_update) makes its writing kernel skip itself after a failed check.
enum class DeferredCheck : int32_t {
  kNone = 0,
  kArgmaxOutOfRange,     // first: the plane size
  kArgmaxOutsideWindow,  // an in-range argmax outside its own window
  kBankRowNorm,          // first: the row, second: its position, value: the norm
};
enum class DeferredOp : int32_t { kMaxPool2dBackward = 0, kMaxPool2dGather, kMemoryUpdate };

struct DeferredError {
  int32_t check;  // a DeferredCheck; kNone while nothing failed
  int32_t op;     // a DeferredOp
  int64_t first, second;
  double value;
};

// The slot (device memory, zeroed on creation), made on first use outside the caching allocator.
Status deferred_error_slot(DeferredError** slot);

// Device side: records the failure unless an earlier one is still unread (the first one wins).
__device__ inline void report_deferred(DeferredError* slot, DeferredCheck check, DeferredOp op, int64_t first,
                                       int64_t second, double value) {
  if (atomicCAS(&slot->check, 0, static_cast<int32_t>(check)) != 0) return;
  slot->op = static_cast<int32_t>(op);
  slot->first = first;
  slot->second = second;
  slot->value = value;
}

// Host side, after the device has finished the queued work: a recorded failure becomes the
// returned Status (and the slot is cleared); Status::ok() when nothing failed or no slot exists.
Status take_deferred_error();
// The pieces of take_deferred_error for a copy read without a wait (begin/finish_copy_to_host):
// the slot if one was made (else nullptr), the Status a slot's contents stand for, and a queued
// clear of the slot.
DeferredError* existing_deferred_slot();
Status deferred_status(const DeferredError& failure);
Status clear_deferred_error();

// Deterministic sum over a block (blockDim.x a power of two <= 1024, every thread calls it with
// its partial): a fixed shared-memory tree, the same order on every run; every thread gets the
// total. `shared` holds blockDim.x values.
template <typename T>
__device__ inline T block_sum(T value, T* shared) {
  const int tid = threadIdx.x;
  shared[tid] = value;
  __syncthreads();
  for (int width = blockDim.x / 2; width > 0; width /= 2) {
    if (tid < width) shared[tid] += shared[tid + width];
    __syncthreads();
  }
  const T total = shared[0];
  __syncthreads();  // shared may be reused by the caller right away
  return total;
}

// The same tree for a maximum.
template <typename T>
__device__ inline T block_max(T value, T* shared) {
  const int tid = threadIdx.x;
  shared[tid] = value;
  __syncthreads();
  for (int width = blockDim.x / 2; width > 0; width /= 2) {
    if (tid < width) shared[tid] = shared[tid] > shared[tid + width] ? shared[tid] : shared[tid + width];
    __syncthreads();
  }
  const T total = shared[0];
  __syncthreads();
  return total;
}

// ---- row reductions shared by the row-wise kernels (softmax, normalize, reduce, contrastive) ----

constexpr int kWarp = 32;
constexpr int64_t kWarpRowLimit = 1024;  // rows up to this length get a warp, longer ones a block

// Sum over a full warp by the xor butterfly: every lane gets the same bits (float + commutes).
__device__ inline float warp_sum(float value) {
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

// <a, b> over dim floats by one warp (lanes stride the vector, coalesced), the same in every lane.
__device__ inline float warp_dot(const float* __restrict__ a, const float* __restrict__ b, int64_t dim, int lane) {
  float partial = 0.0f;
  for (int64_t d = lane; d < dim; d += 32) partial += a[d] * b[d];
  return warp_sum(partial);
}

// Sum over a row group of kGroup lanes (a warp, or the whole block); every lane gets the same bits.
template <int kGroup>
__device__ inline float group_sum(float value, float* shared) {
  if constexpr (kGroup == kWarp) {
    for (int offset = kWarp / 2; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
    return __shfl_sync(0xffffffffu, value, 0);
  } else {
    return block_sum(value, shared);
  }
}

// Max over the group; callers keep NaN out of the partials, so the tree is order-safe.
template <int kGroup>
__device__ inline float group_max(float value, float* shared) {
  if constexpr (kGroup == kWarp) {
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      const float other = __shfl_xor_sync(0xffffffffu, value, offset);
      value = other > value ? other : value;
    }
    return __shfl_sync(0xffffffffu, value, 0);
  } else {
    return block_max(value, shared);
  }
}

// First row, row stride and lane of this thread's group. Rows are uniform within a group, so the
// group's __syncthreads / full-mask shuffles are reached by all of it.
template <int kGroup>
struct RowGroup {
  int64_t first, stride;
  int lane;
  __device__ RowGroup() {
    if constexpr (kGroup == kWarp) {
      const int groups_per_block = blockDim.x / kWarp;
      first = static_cast<int64_t>(blockIdx.x) * groups_per_block + threadIdx.x / kWarp;
      stride = static_cast<int64_t>(gridDim.x) * groups_per_block;
      lane = threadIdx.x % kWarp;
    } else {
      first = blockIdx.x;
      stride = gridDim.x;
      lane = threadIdx.x;
    }
  }
};

// Blocks for one group per row.
template <int kGroup>
inline unsigned int row_blocks(int64_t rows) {
  return blocks_for(rows * kGroup, kThreads);
}

}  // namespace detail
}  // namespace cuda
}  // namespace lmcl
