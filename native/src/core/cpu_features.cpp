// Run-time SIMD level detection (see include/lmcl/cpu_features.h).
#include "lmcl/cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace lmcl {
namespace {

SimdLevel detect() {
  SimdLevel level = SimdLevel::kPortable;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) level = SimdLevel::kAvx2;
  if (level == SimdLevel::kAvx2 && __builtin_cpu_supports("avx512f")) level = SimdLevel::kAvx512;
#endif
  if (const char* forced = std::getenv("LMCL_CPU_KERNELS")) {
    SimdLevel wanted = level;
    if (std::strcmp(forced, "portable") == 0) wanted = SimdLevel::kPortable;
    if (std::strcmp(forced, "avx2") == 0) wanted = SimdLevel::kAvx2;
    if (std::strcmp(forced, "avx512") == 0) wanted = SimdLevel::kAvx512;
    if (wanted < level) level = wanted;  // can only lower, never claim what the CPU lacks
  }
  return level;
}

}  // namespace

SimdLevel simd_level() {
  static const SimdLevel level = detect();
  return level;
}

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512: return "avx512";
    case SimdLevel::kAvx2: return "avx2";
    default: return "portable";
  }
}

}  // namespace lmcl
