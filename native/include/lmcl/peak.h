// Measured FP32 FMA peak of this machine (kernel in native/src/cpu/peak.cpp).
//
// The profiler divides the GFLOP/s a kernel reached by this number for its "% of peak" column;
// it is measured at run time because a constant would be wrong on the next machine (and on this
// one whenever another process shares the cores or the clock changes).
#pragma once

#include <cstdint>

#include "lmcl/status.h"

namespace lmcl {

struct FmaPeakResult {
  double gflops = 0.0;        // best repeat: threads · chains · lanes · 2 · iterations / seconds / 1e9
  double seconds = 0.0;       // wall time of that repeat
  int64_t iterations = 0;     // loop trips per thread in one repeat
  int threads = 0;            // threads that ran the loop concurrently
  int lanes = 0;              // float lanes per vector of the level used (16 AVX-512, 8 AVX2, 1 portable)
  int chains = 0;             // independent accumulator chains per thread
  const char* simd = "";      // simd_level_name() of the level used
};

namespace cpu {

// Runs `threads` (1..num_threads()) copies of an FMA loop on the thread pool and reports the best
// of a few repeats, each lasting at least min_seconds (0 < min_seconds <= 10). Never aborts:
// bad arguments give kInvalidArgument.
Status measure_fma_peak(int threads, double min_seconds, FmaPeakResult* result);

}  // namespace cpu

}  // namespace lmcl
