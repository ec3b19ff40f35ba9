// Caching allocator for device memory (CPU here; the CUDA build has its own in src/cuda).
//
// Why: on the target machines a first touch of a fresh 4 KiB page costs ~11.5 us, so an engine
// that returns activation buffers to the OS every step spends much of its time in the kernel.
// Freed blocks are kept in size-class free lists and reused; large blocks are requested with
// madvise(MADV_HUGEPAGE). All blocks are 64-byte aligned (one AVX-512 register / cache line).
//
// Thread-safe. live_bytes counts bytes handed out and not yet freed (not the cached reserve).
#pragma once

#include <cstddef>
#include <cstdint>

namespace lmcl {

struct AllocatorStats {
  int64_t live_bytes = 0;      // bytes currently handed out (rounded block sizes)
  int64_t live_blocks = 0;     // blocks currently handed out
  int64_t cached_bytes = 0;    // bytes held in free lists, ready for reuse
  int64_t peak_live_bytes = 0; // high-water mark of live_bytes
};

// Returns nullptr when the system is out of memory (callers turn that into a Status).
void* cpu_allocate(size_t bytes);
void cpu_free(void* pointer);
AllocatorStats cpu_allocator_stats();
// Sets peak_live_bytes to the current live_bytes (to measure the peak of one region of work).
void cpu_reset_peak_live_bytes();
// Returns every cached block to the system.
void cpu_empty_cache();

// RAII scratch buffer from the caching allocator, for kernel workspaces (im2col, partials).
class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  explicit ScratchBuffer(size_t bytes) : pointer_(bytes ? cpu_allocate(bytes) : nullptr), bytes_(bytes) {}
  ~ScratchBuffer() { if (pointer_) cpu_free(pointer_); }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  ScratchBuffer(ScratchBuffer&& other) noexcept : pointer_(other.pointer_), bytes_(other.bytes_) {
    other.pointer_ = nullptr;
    other.bytes_ = 0;
  }
  // False when the allocation failed; callers return out_of_memory.
  bool ok() const { return bytes_ == 0 || pointer_ != nullptr; }
  float* floats() const { return static_cast<float*>(pointer_); }
  void* data() const { return pointer_; }
  size_t bytes() const { return bytes_; }

 private:
  void* pointer_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace lmcl
