// CUDA memory entry points for builds without nvcc: every call fails with a clear message.
#include "lmcl/cuda_memory.h"

namespace lmcl {
namespace cuda {
namespace {
Status not_compiled() {
  return Status(StatusCode::kNotCompiled,
                "lmcl was built without CUDA; install the CUDA toolkit (nvcc) and run "
                "`npm run build:cuda` to use device 'cuda'");
}
}  // namespace

bool compiled_with_cuda() { return false; }
Status device_count(int* count) {
  *count = 0;
  return not_compiled();
}
Status allocate(size_t, void** pointer) {
  *pointer = nullptr;
  return not_compiled();
}
Status free(void*) { return not_compiled(); }
Status copy_host_to_device(void*, const void*, size_t) { return not_compiled(); }
Status copy_device_to_host(void*, const void*, size_t) { return not_compiled(); }
Status copy_device_to_device(void*, const void*, size_t) { return not_compiled(); }
Status begin_copy_to_host(const void*, size_t, PendingCopy** copy) {
  *copy = nullptr;
  return not_compiled();
}
Status finish_copy_to_host(PendingCopy*, void*) { return not_compiled(); }
Status fill(float*, float, int64_t) { return not_compiled(); }
Status synchronize() { return not_compiled(); }
int64_t live_bytes() { return 0; }
int64_t cached_bytes() { return 0; }
int64_t peak_live_bytes() { return 0; }
void reset_peak_live_bytes() {}
Status empty_cache() { return Status::ok(); }  // nothing is cached without CUDA

}  // namespace cuda
}  // namespace lmcl
