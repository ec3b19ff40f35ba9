{
  "sources": [
    "src/core/allocator.cpp",
    "src/core/cpu_features.cpp",
    "src/core/parallel.cpp",
    "src/cuda_stub/memory.cpp",
    "binding/addon.cpp",
    "binding/args.cpp",
    "binding/args.h",
    "binding/batchnorm.cpp",
    "binding/conv2d.cpp",
    "binding/elementwise.cpp",
    "binding/gemm.cpp",
    "binding/layout.cpp",
    "binding/memory_bank.cpp",
    "binding/normalize.cpp",
    "binding/pool.cpp",
    "binding/reduce.cpp",
    "binding/sgd.cpp",
    "binding/softmax.cpp",
    "binding/storage.cpp",
    "src/cpu/batchnorm.cpp",
    "src/cpu/conv2d.cpp",
    "src/cpu/elementwise.cpp",
    "src/cpu/gemm.cpp",
    "src/cpu/gemm_avx2.cpp",
    "src/cpu/gemm_avx512.cpp",
    "src/cpu/layout.cpp",
    "src/cpu/memory_bank.cpp",
    "src/cpu/normalize.cpp",
    "src/cpu/pool.cpp",
    "src/cpu/reduce.cpp",
    "src/cpu/sgd.cpp",
    "src/cpu/softmax.cpp",
    "src/cpu/simd_variants.h",
    "src/cpu/row_math.h"
  ],
  "variables": {
    "cuda_stub_sources": [
      "src/cuda_stub/memory.cpp"
    ],
    "cuda_sources": [
      "src/cuda/memory.cu"
    ]
  }
}
