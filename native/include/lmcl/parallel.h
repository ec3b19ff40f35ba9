// Persistent CPU thread pool and deterministic parallel loops.
//
// One pool per process, sized to the number of cores (LMCL_NUM_THREADS overrides, read once at
// first use; set_num_threads changes it later). Work is split into contiguous chunks by a fixed
// rule that depends only on the range, the grain and the thread count, never on timing, so a
// kernel that reduces per chunk and then combines chunks in chunk order gives the same bits on
// every run with the same thread count.
//
// parallel_for is not re-entrant: a call from inside a worker runs serially on that worker.
#pragma once

#include <cstdint>
#include <functional>

namespace lmcl {

int num_threads();
void set_num_threads(int count);  // count >= 1; takes effect for the next parallel_for

// Chunks per thread when several threads run: the threads claim chunks dynamically, so a
// thread on a core shared with another process takes fewer (see ThreadPool::run).
constexpr int kChunksPerThread = 4;

// Splits [begin, end) into at most kChunksPerThread · num_threads() chunks (one with a single
// thread) of at least `grain` items and calls body(chunk_begin, chunk_end) once per chunk, on
// whichever thread claims it. Chunks are identical for identical arguments.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& body);

// Same split, but also passes the chunk index (0..chunk_count-1) so callers can write per-chunk
// partial results and combine them in a fixed order. Returns nothing; use chunk_count_for to
// size the partial buffers beforehand.
void parallel_for_chunks(int64_t begin, int64_t end, int64_t grain,
                         const std::function<void(int64_t chunk, int64_t, int64_t)>& body);

// How many chunks parallel_for / parallel_for_chunks will use for this range and grain.
int64_t chunk_count_for(int64_t begin, int64_t end, int64_t grain);

// Runs body(thread_index) on exactly `count` (<= num_threads()) threads concurrently (one call
// per thread), for code that needs the threads at once (the FMA peak loop).
void parallel_run(int count, const std::function<void(int)>& body);

// Runs body(part) once for every part in 0..count-1 (count <= kChunksPerThread · num_threads()),
// the parts claimed dynamically by up to num_threads() threads, for kernels with their own
// blocking (GEMM). A part is not a thread: one thread may run several parts, one after another.
void parallel_parts(int count, const std::function<void(int)>& body);

}  // namespace lmcl
