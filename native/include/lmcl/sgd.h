// Fused SGD step (PyTorch 1.13 torch.optim.SGD semantics), in place. See native/src/cpu/sgd.cpp.
#pragma once

#include <cstdint>

#include "lmcl/status.h"

namespace lmcl {

struct SgdOptions {
  double lr = 0.0;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  bool maximize = false;
};

namespace cpu {

// Over `count` elements of a parameter p, its gradient g and momentum buffer b:
//   d = (maximize ? −g : g) + wd·p                      (the wd term only when wd ≠ 0)
//   if momentum ≠ 0:  b = first_step ? d : momentum·b + (1 − dampening)·d
//                     d = nesterov ? d + momentum·b : b
//   p = p − lr·d
// p and b are updated in place; b may be null when momentum == 0 (it is not touched then).
// Scalars are rounded to float32 as PyTorch does for float tensors (1 − dampening and −lr are
// formed in double first). Elementwise, so the result does not depend on the thread count.
Status sgd_step(int64_t count, float* param, const float* grad, float* buffer, const SgdOptions& options,
                bool first_step);

}  // namespace cpu

}  // namespace lmcl
