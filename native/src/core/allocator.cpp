// CPU caching allocator (see include/lmcl/allocator.h for why).
//
// Size classes: requests are rounded up to a multiple of 64 bytes below 1 MiB, to a multiple of
// 1 MiB up to 2 MiB and to a multiple of 2 MiB above, so that activation buffers of one training
// step map onto the same classes in the next step. Blocks of 2 MiB and more are 2 MiB aligned so
// madvise(MADV_HUGEPAGE) can back them with huge pages (it needs page-aligned ranges). Free blocks are kept per exact rounded size. The cache is bounded
// (LMCL_CPU_CACHE_MB, default 4096 MiB): beyond it freed blocks go back to the system.
#include "lmcl/allocator.h"

#include <sys/mman.h>

#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace lmcl {
namespace {

constexpr size_t kAlignment = 64;
constexpr size_t kLargeBlock = size_t(1) << 20;
constexpr size_t kHugePage = size_t(2) << 20;

size_t round_size(size_t bytes) {
  if (bytes == 0) bytes = 1;
  if (bytes < kLargeBlock) return (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (bytes < kHugePage) return (bytes + kLargeBlock - 1) / kLargeBlock * kLargeBlock;
  return (bytes + kHugePage - 1) / kHugePage * kHugePage;
}

int64_t cache_limit_bytes() {
  if (const char* text = std::getenv("LMCL_CPU_CACHE_MB")) {
    long long megabytes = std::atoll(text);
    if (megabytes >= 0) return megabytes << 20;
  }
  return int64_t(4096) << 20;
}

class CachingAllocator {
 public:
  void* allocate(size_t bytes) {
    size_t size = round_size(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto found = free_lists_.find(size);
      if (found != free_lists_.end() && !found->second.empty()) {
        void* pointer = found->second.back();
        found->second.pop_back();
        stats_.cached_bytes -= size;
        record_live(pointer, size);
        return pointer;
      }
    }
    void* pointer = system_allocate(size);
    if (!pointer) {
      // Out of memory: give the cache back and try once more.
      empty_cache();
      pointer = system_allocate(size);
      if (!pointer) return nullptr;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    record_live(pointer, size);
    return pointer;
  }

  void free(void* pointer) {
    if (!pointer) return;
    std::unique_lock<std::mutex> lock(mutex_);
    auto found = live_sizes_.find(pointer);
    if (found == live_sizes_.end()) return;  // not ours or already freed: ignore, never crash
    size_t size = found->second;
    live_sizes_.erase(found);
    stats_.live_bytes -= size;
    stats_.live_blocks -= 1;
    if (stats_.cached_bytes + int64_t(size) <= limit_) {
      free_lists_[size].push_back(pointer);
      stats_.cached_bytes += size;
      return;
    }
    lock.unlock();
    std::free(pointer);
  }

  void empty_cache() {
    std::vector<void*> to_release;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& entry : free_lists_) {
        for (void* pointer : entry.second) to_release.push_back(pointer);
        entry.second.clear();
      }
      stats_.cached_bytes = 0;
    }
    for (void* pointer : to_release) std::free(pointer);
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.peak_live_bytes = stats_.live_bytes;
  }

 private:
  static void* system_allocate(size_t size) {
    // size is a multiple of the alignment chosen here (see round_size), as aligned_alloc requires.
    void* pointer = std::aligned_alloc(size >= kHugePage ? kHugePage : kAlignment, size);
#if defined(MADV_HUGEPAGE)
    if (pointer && size >= kHugePage) madvise(pointer, size, MADV_HUGEPAGE);  // a hint; failure is harmless
#endif
    return pointer;
  }

  void record_live(void* pointer, size_t size) {
    live_sizes_[pointer] = size;
    stats_.live_bytes += size;
    stats_.live_blocks += 1;
    if (stats_.live_bytes > stats_.peak_live_bytes) stats_.peak_live_bytes = stats_.live_bytes;
  }

  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_lists_;
  std::unordered_map<void*, size_t> live_sizes_;
  AllocatorStats stats_;
  int64_t limit_ = cache_limit_bytes();
};

CachingAllocator& allocator() {
  static CachingAllocator* instance = new CachingAllocator();  // leaked on purpose, see parallel.cpp
  return *instance;
}

}  // namespace

void* cpu_allocate(size_t bytes) { return allocator().allocate(bytes); }
void cpu_free(void* pointer) { allocator().free(pointer); }
AllocatorStats cpu_allocator_stats() { return allocator().stats(); }
void cpu_reset_peak_live_bytes() { allocator().reset_peak(); }
void cpu_empty_cache() { allocator().empty_cache(); }

}  // namespace lmcl
