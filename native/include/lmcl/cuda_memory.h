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
Status fill(float* device_destination, float value, int64_t count);
Status synchronize();
int64_t live_bytes();

}  // namespace cuda
}  // namespace lmcl
