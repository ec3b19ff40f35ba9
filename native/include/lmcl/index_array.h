// An int32 index operand as the kernels receive it: class labels, bank indices, gather indices,
// rows to update. It is one index tensor (JavaScript's IndexTensor, made once per batch by
// allocIndices) seen from both sides:
//   host   — the values in host memory: a 'cpu' tensor's own block, or the host copy a 'cuda'
//            tensor keeps from its creation (index tensors are read-only, so it never goes stale);
//   device — the same values in the memory of the tensor's device (== host for 'cpu').
// CPU kernels read `host`. CUDA kernels read `device` in their kernels and may read `host` for
// what the host decides anyway (range checks with the CPU's messages, launch plans), so no call
// copies indices host → device.
#pragma once

#include <cstdint>

namespace lmcl {

struct IndexArray {
  const int32_t* host = nullptr;
  const int32_t* device = nullptr;
};

// For host-only callers (CPU code, tests): the same pointer on both sides.
inline IndexArray host_indices(const int32_t* values) { return IndexArray{values, values}; }

}  // namespace lmcl
