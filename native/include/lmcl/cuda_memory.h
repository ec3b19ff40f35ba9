// CUDA device memory entry points used by the storage layer.
//
// Implemented by src/cuda/memory.cu in a CUDA build and by src/cuda_stub/memory.cpp otherwise,
// where every call returns kNotCompiled with a message that says how to build with CUDA.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lmcl/status.h"

namespace lmcl {
namespace cuda {

bool compiled_with_cuda();
// Number of usable devices; 0 (and a reason) when the driver or device is missing.
Status device_count(int* count);
Status allocate(size_t bytes, void** pointer);
Status free(void* pointer);
// Queued on the default stream through a pinned staging ring (ordered with the kernels; it does
// not wait for them); host_source may be reused or freed as soon as this returns.
Status copy_host_to_device(void* device_destination, const void* host_source, size_t bytes);
// Synchronous: waits for the queued work, then the values are in host_destination. A device
// check that failed in that work (argmax indices, a bank row's norm) is returned here as an
// invalid_argument naming its op (src/cuda/deferred_error.cu); so is it by synchronize.
Status copy_device_to_host(void* host_destination, const void* device_source, size_t bytes);
Status copy_device_to_device(void* destination, const void* source, size_t bytes);
// A copy to the host in two halves, so a host read need not block the thread that queues work:
// begin_copy_to_host queues the copy on the stream (ordered after the work queued before it, so
// it reads the values as of this call; the source may be overwritten or freed right after) into
// pinned memory and returns at once; finish_copy_to_host waits for it — it may block, and may be
// called from any thread — puts the bytes in host_destination, reports a deferred check that
// failed before the copy (as copy_device_to_host does) and releases the copy. Every begun copy is
// finished exactly once (on error too).
struct PendingCopy;
Status begin_copy_to_host(const void* device_source, size_t bytes, PendingCopy** copy);
Status finish_copy_to_host(PendingCopy* copy, void* host_destination);
Status fill(float* device_destination, float value, int64_t count);
Status synchronize();
int64_t live_bytes();
// Bytes of freed blocks the caching allocator keeps for reuse; the high-water mark of live_bytes
// (since the last reset_peak_live_bytes); empty_cache gives the kept blocks back to the driver
// (cudaFree, which waits for the device: for an explicit call, as torch.cuda.empty_cache).
int64_t cached_bytes();
int64_t peak_live_bytes();
void reset_peak_live_bytes();
Status empty_cache();

}  // namespace cuda
}  // namespace lmcl
