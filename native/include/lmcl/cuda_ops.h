// The CUDA kernel entry points: lmcl::cuda::<name>, the same names and signatures as the CPU
// kernels in lmcl::cpu::, generated from the one op list (lmcl/ops.def, which also says how a
// .cu replaces a stub). Pointers are device pointers; the shape types are the shared ones in
// namespace lmcl (the op family headers below). Device memory itself: lmcl/cuda_memory.h.
//
// Which pointers are device pointers: every float* / int32_t* that the binding read from a tensor
// storage (native/binding/args.h floats(); max-pool argmax indices included). Index operands
// (class labels, indexSelect / indexAdd indices, memory-bank indices and rows) are IndexArrays
// (lmcl/index_array.h): .device is device memory, .host the host copy the index tensor keeps, for
// checks and launch plans. Still HOST-only: the cohort kernels' `pairs` (a per-call constant
// the binding takes as an Int32Array; the kernel stages it with its plan).
#pragma once

#include <cstdint>

#include "lmcl/batchnorm.h"
#include "lmcl/cohort_contrastive.h"
#include "lmcl/contrastive_kl.h"
#include "lmcl/conv2d.h"
#include "lmcl/elementwise.h"
#include "lmcl/gemm.h"
#include "lmcl/infonce.h"
#include "lmcl/layout.h"
#include "lmcl/memory_bank.h"
#include "lmcl/normalize.h"
#include "lmcl/pool.h"
#include "lmcl/reduce.h"
#include "lmcl/sgd.h"
#include "lmcl/softmax.h"
#include "lmcl/status.h"

// Marks the stubs in native/src/cuda_stub/ops.cpp: a strong definition in a .cu overrides them.
#if defined(__GNUC__) || defined(__clang__)
#define LMCL_WEAK __attribute__((weak))
#else
#define LMCL_WEAK
#endif

namespace lmcl {
namespace cuda {

#define LMCL_OP(stem, name, params) Status name params;
#include "lmcl/ops.def"
#undef LMCL_OP

}  // namespace cuda
}  // namespace lmcl
