// Persistent thread pool (see include/lmcl/parallel.h for the contract).
//
// Workers sleep on a condition variable between jobs; after a job they spin for ~100 µs on the
// job generation counter first (plain loads, see worker_loop), because kernels arrive back to back
// during a training step and a futex wake-up costs tens of microseconds. The calling thread always runs part 0 itself.
#include "lmcl/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace lmcl {
namespace {

int default_thread_count() {
  if (const char* text = std::getenv("LMCL_NUM_THREADS")) {
    int value = std::atoi(text);
    if (value >= 1 && value <= 1024) return value;
  }
  unsigned hardware = std::thread::hardware_concurrency();
  return hardware == 0 ? 1 : static_cast<int>(hardware);
}

thread_local bool inside_worker = false;

class ThreadPool {
 public:
  ThreadPool() : thread_count_(default_thread_count()) {}
  ~ThreadPool() { stop_workers(); }

  int thread_count() const { return thread_count_.load(); }
  void set_thread_count(int count) {
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    stop_workers();
    thread_count_.store(std::max(1, count));
  }

  // Runs body(i) for i in [0, count); returns when all are done. claim: parts are claimed
  // dynamically (any thread may run several); else thread t runs parts t, t + threads, ...
  // (with count <= threads: exactly one part per thread, all concurrent).
  void run(int count, const std::function<void(int)>& body, bool claim) {
    if (count <= 1 || inside_worker) {
      for (int i = 0; i < count; ++i) body(i);
      return;
    }
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    ensure_workers(thread_count_.load() - 1);
    // Parts are claimed dynamically: each thread takes the next unclaimed part until none is
    // left, so a thread whose core is shared with another process does fewer parts instead of
    // holding everyone up. A part's work never depends on which thread runs it, so the bits do
    // not either.
    const int parts = count;
    const int threads = std::min(parts, static_cast<int>(workers_.size()) + 1);
    std::atomic<int> next_part{0};
    const std::function<void(int)> claiming = [&body, &next_part, parts, threads, claim](int thread) {
      if (!claim) {
        for (int part = thread; part < parts; part += threads) body(part);
        return;
      }
      for (int part = next_part.fetch_add(1, std::memory_order_relaxed); part < parts;
           part = next_part.fetch_add(1, std::memory_order_relaxed)) {
        body(part);
      }
    };
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &claiming;
      job_parts_ = threads;
      pending_.store(threads - 1);
      generation_.fetch_add(1);
    }
    wake_.notify_all();
    inside_worker = true;
    claiming(0);
    inside_worker = false;
    // Spin, then yield, until every worker part is done.
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins > 2000) std::this_thread::yield();
    }
    job_ = nullptr;
  }

 private:
  void ensure_workers(int wanted) {
    while (static_cast<int>(workers_.size()) < wanted) {
      int index = static_cast<int>(workers_.size()) + 1;
      // The generation is read before the job is posted (not by the new thread, which may start
      // after it), or the worker would miss its first job and run() would wait forever.
      const uint64_t start = generation_.load();
      workers_.emplace_back([this, index, start] { worker_loop(index, start); });
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      generation_.fetch_add(1);
    }
    wake_.notify_all();
    for (auto& worker : workers_) worker.join();
    workers_.clear();
    stopping_ = false;
  }

  void worker_loop(int index, uint64_t seen) {
    inside_worker = true;
    while (true) {
      // Short spin for back-to-back jobs, then sleep.
      // No `pause` in this loop: on the VMs we run on, a pause loop triggers the hypervisor's
      // pause-loop exiting, which deschedules the vCPU, and waking it again costs ~0.25 ms per
      // parallel region (a 128³ GEMM on 2 threads: 0.32 ms with pause, 0.028 ms without). Plain
      // loads, bounded by time (checked every 256 loads), keep the worker hot for ~100 µs.
      const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
      for (int spins = 1; generation_.load(std::memory_order_acquire) == seen; ++spins) {
        if ((spins & 255) == 0 && std::chrono::steady_clock::now() > spin_until) break;
      }
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
      seen = generation_.load();
      if (stopping_) return;
      const std::function<void(int)>* job = job_;
      int parts = job_parts_;
      lock.unlock();
      if (job && index < parts) {
        (*job)(index);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  std::atomic<int> thread_count_;
  std::mutex run_mutex_;  // one job at a time
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  int job_parts_ = 0;
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> generation_{0};
  bool stopping_ = false;
};

ThreadPool& pool() {
  // Intentionally leaked: joining threads during static destruction at process exit can hang
  // when Node tears down; the OS reclaims them.
  static ThreadPool* instance = new ThreadPool();
  return *instance;
}

}  // namespace

int num_threads() { return pool().thread_count(); }
void set_num_threads(int count) { pool().set_thread_count(count); }

int64_t chunk_count_for(int64_t begin, int64_t end, int64_t grain) {
  int64_t range = end - begin;
  if (range <= 0) return 0;
  grain = std::max<int64_t>(1, grain);
  int64_t by_grain = (range + grain - 1) / grain;
  // With several threads, kChunksPerThread chunks each, claimed dynamically (run()): on a shared
  // machine the thread that is descheduled does fewer of them. The count depends only on the
  // range, the grain and the thread count, so per-chunk partial results still combine the same way.
  const int threads = num_threads();
  const int64_t most = threads > 1 ? static_cast<int64_t>(threads) * kChunksPerThread : 1;
  return std::max<int64_t>(1, std::min<int64_t>(most, by_grain));
}

void parallel_for_chunks(int64_t begin, int64_t end, int64_t grain,
                         const std::function<void(int64_t, int64_t, int64_t)>& body) {
  int64_t chunks = chunk_count_for(begin, end, grain);
  if (chunks == 0) return;
  int64_t range = end - begin;
  auto run_chunk = [&](int chunk) {
    // Balanced split: the first (range % chunks) chunks get one extra item.
    int64_t base = range / chunks, extra = range % chunks;
    int64_t start = begin + chunk * base + std::min<int64_t>(chunk, extra);
    int64_t stop = start + base + (chunk < extra ? 1 : 0);
    if (start < stop) body(chunk, start, stop);
  };
  if (chunks == 1) {
    run_chunk(0);
    return;
  }
  pool().run(static_cast<int>(chunks), run_chunk, true);
}

void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& body) {
  parallel_for_chunks(begin, end, grain,
                      [&](int64_t, int64_t start, int64_t stop) { body(start, stop); });
}

void parallel_run(int count, const std::function<void(int)>& body) {
  count = std::max(1, std::min(count, num_threads()));
  pool().run(count, body, false);
}

void parallel_parts(int count, const std::function<void(int)>& body) {
  count = std::max(1, std::min(count, num_threads() * kChunksPerThread));
  pool().run(count, body, true);
}

}  // namespace lmcl
