// Run-time CPU feature detection, so one binary picks the AVX-512, AVX2 or portable kernels.
// LMCL_CPU_KERNELS=portable|avx2|avx512 forces a lower level (for testing every path here).
#pragma once

namespace lmcl {

enum class SimdLevel { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

SimdLevel simd_level();
const char* simd_level_name(SimdLevel level);

}  // namespace lmcl
