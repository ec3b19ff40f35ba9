{
  "variables": {
    "core_files": [
      "src/core/allocator.cpp",
      "src/core/cpu_features.cpp",
      "src/core/parallel.cpp"
    ],
    "cpu_files": [
      "src/cpu/batchnorm.cpp",
      "src/cpu/cohort_contrastive.cpp",
      "src/cpu/contrastive_kl.cpp",
      "src/cpu/conv2d.cpp",
      "src/cpu/elementwise.cpp",
      "src/cpu/gemm.cpp",
      "src/cpu/gemm_avx2.cpp",
      "src/cpu/gemm_avx512.cpp",
      "src/cpu/infonce.cpp",
      "src/cpu/layout.cpp",
      "src/cpu/memory_bank.cpp",
      "src/cpu/normalize.cpp",
      "src/cpu/peak.cpp",
      "src/cpu/pool.cpp",
      "src/cpu/reduce.cpp",
      "src/cpu/sgd.cpp",
      "src/cpu/softmax.cpp",
      "src/cpu/contrastive_rows.h",
      "src/cpu/row_math.h",
      "src/cpu/simd_variants.h"
    ],
    "binding_files": [
      "binding/addon.cpp",
      "binding/args.cpp",
      "binding/batchnorm.cpp",
      "binding/cohort_contrastive.cpp",
      "binding/contrastive_kl.cpp",
      "binding/conv2d.cpp",
      "binding/elementwise.cpp",
      "binding/gemm.cpp",
      "binding/infonce.cpp",
      "binding/layout.cpp",
      "binding/memory_bank.cpp",
      "binding/normalize.cpp",
      "binding/peak.cpp",
      "binding/pool.cpp",
      "binding/reduce.cpp",
      "binding/sgd.cpp",
      "binding/softmax.cpp",
      "binding/storage.cpp",
      "binding/args.h"
    ],
    "cuda_stub_files": [
      "src/cuda_stub/memory.cpp",
      "src/cuda_stub/ops.cpp"
    ],
    "cuda_files": [
      "src/cuda/memory.cu",
      "src/cuda/gemm.cu",
      "src/cuda/batchnorm.cu"
    ],
    "driver_files": [
      "test/driver.cpp",
      "test/cases/elementwise.cpp",
      "test/cases/reduce.cpp",
      "test/cases/layout.cpp",
      "test/cases/sgd.cpp",
      "test/cases/softmax.cpp",
      "test/cases/normalize.cpp",
      "test/cases/batchnorm.cpp",
      "test/cases/pool.cpp",
      "test/cases/gemm.cpp",
      "test/cases/conv2d.cpp",
      "test/cases/infonce.cpp",
      "test/cases/contrastive_kl.cpp",
      "test/cases/cohort_contrastive.cpp",
      "test/cases/memory_bank.cpp"
    ]
  },
  "sources": ["<@(core_files)", "<@(cpu_files)", "<@(binding_files)", "<@(cuda_stub_files)"]
}
