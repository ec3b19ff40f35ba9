// Per-SIMD-level variants of one kernel body, chosen at run time (internal to native/src/cpu).
//
// A kernel writes its work as `void name_body(int64_t begin, int64_t end, const Args&)` (inline,
// a range over tasks), then LMCL_DEFINE_VARIANTS(name, Args) compiles it three times — portable,
// AVX2 and AVX-512 target attributes — and defines name_pick(), which returns the variant for
// lmcl::simd_level(). The same source compiled for each level keeps the operation order, so every
// level gives the same bits. Used by softmax.cpp and normalize.cpp.
#pragma once

#include <cstdint>

#include "lmcl/cpu_features.h"

#if defined(__GNUC__) || defined(__clang__)
#define LMCL_INLINE inline __attribute__((always_inline))
#define LMCL_NO_UNROLL _Pragma("GCC unroll 1")
#else
#define LMCL_INLINE inline
#define LMCL_NO_UNROLL
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LMCL_SIMD_VARIANTS 1
#define LMCL_TARGET_AVX2 __attribute__((target("avx2")))
#define LMCL_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw")))
#else
#define LMCL_SIMD_VARIANTS 0
#endif

// Defines name_portable / name_avx2 / name_avx512 (each inlines name_body, a range function
// over tasks [begin, end)) and name_pick(), which returns the one for simd_level().
#if LMCL_SIMD_VARIANTS
#define LMCL_DEFINE_VARIANTS(name, Args)                                                                         \
  void name##_portable(int64_t begin, int64_t end, const Args& args) { name##_body(begin, end, args); }           \
  LMCL_TARGET_AVX2 void name##_avx2(int64_t begin, int64_t end, const Args& args) { name##_body(begin, end, args); } \
  LMCL_TARGET_AVX512 void name##_avx512(int64_t begin, int64_t end, const Args& args) {                          \
    name##_body(begin, end, args);                                                                               \
  }                                                                                                              \
  using name##_fn = void (*)(int64_t, int64_t, const Args&);                                                     \
  name##_fn name##_pick() {                                                                                      \
    switch (simd_level()) {                                                                                      \
      case SimdLevel::kAvx512: return name##_avx512;                                                             \
      case SimdLevel::kAvx2: return name##_avx2;                                                                 \
      default: return name##_portable;                                                                           \
    }                                                                                                            \
  }
#else
#define LMCL_DEFINE_VARIANTS(name, Args)                                                                         \
  void name##_portable(int64_t begin, int64_t end, const Args& args) { name##_body(begin, end, args); }           \
  using name##_fn = void (*)(int64_t, int64_t, const Args&);                                                     \
  name##_fn name##_pick() { return name##_portable; }
#endif

// The same for bodies that also take the chunk index of parallel_for_chunks (per-chunk scratch):
// `void name_body(int64_t chunk, int64_t begin, int64_t end, const Args&)`.
#if LMCL_SIMD_VARIANTS
#define LMCL_DEFINE_CHUNK_VARIANTS(name, Args)                                                                   \
  void name##_portable(int64_t chunk, int64_t begin, int64_t end, const Args& args) {                            \
    name##_body(chunk, begin, end, args);                                                                        \
  }                                                                                                              \
  LMCL_TARGET_AVX2 void name##_avx2(int64_t chunk, int64_t begin, int64_t end, const Args& args) {               \
    name##_body(chunk, begin, end, args);                                                                        \
  }                                                                                                              \
  LMCL_TARGET_AVX512 void name##_avx512(int64_t chunk, int64_t begin, int64_t end, const Args& args) {           \
    name##_body(chunk, begin, end, args);                                                                        \
  }                                                                                                              \
  using name##_fn = void (*)(int64_t, int64_t, int64_t, const Args&);                                            \
  name##_fn name##_pick() {                                                                                      \
    switch (simd_level()) {                                                                                      \
      case SimdLevel::kAvx512: return name##_avx512;                                                             \
      case SimdLevel::kAvx2: return name##_avx2;                                                                 \
      default: return name##_portable;                                                                           \
    }                                                                                                            \
  }
#else
#define LMCL_DEFINE_CHUNK_VARIANTS(name, Args)                                                                   \
  void name##_portable(int64_t chunk, int64_t begin, int64_t end, const Args& args) {                            \
    name##_body(chunk, begin, end, args);                                                                        \
  }                                                                                                              \
  using name##_fn = void (*)(int64_t, int64_t, int64_t, const Args&);                                            \
  name##_fn name##_pick() { return name##_portable; }
#endif
