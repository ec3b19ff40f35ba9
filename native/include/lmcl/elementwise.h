// Elementwise kernels: broadcasting binary ops, unary ops, the ReLU mask and scalar affine maps.
// Float32, contiguous outputs. See native/src/cpu/elementwise.cpp.
#pragma once

#include <cstdint>

#include "lmcl/status.h"

namespace lmcl {

enum class BinaryOp { kAdd = 0, kSub = 1, kMul = 2, kDiv = 3, kMaximum = 4, kMinimum = 5 };

enum class UnaryOp {
  kNeg = 0,
  kExp = 1,
  kLog = 2,
  kSqrt = 3,
  kRsqrt = 4,
  kRelu = 5,
  kSigmoid = 6,
  kReciprocal = 7,
  kSquare = 8,
  kAbs = 9,
  kTanh = 10,
  kSign = 11,
  kStep = 12,  // 1 where x > 0, else 0 (the derivative of ReLU)
};

constexpr int kMaxRank = 8;

namespace cpu {

// out[i] = a[a_offset(i)] op b[b_offset(i)], where offsets come from per-dimension element
// strides (0 on broadcast dimensions) over out_shape (rank <= kMaxRank).
Status binary_broadcast(BinaryOp op, int rank, const int64_t* out_shape, const int64_t* a_strides,
                        const int64_t* b_strides, const float* a, const float* b, float* out);

// out[i] = f(x[i]).
Status unary(UnaryOp op, int64_t count, const float* x, float* out);

// out[i] = x[i] * scale + shift.
Status affine(int64_t count, const float* x, float scale, float shift, float* out);

// out[i] = pow(x[i], exponent).
Status power(int64_t count, const float* x, float exponent, float* out);

// out[i] = mask[i] > 0 ? grad[i] : 0 (ReLU backward with mask = the ReLU input or output).
Status relu_mask(int64_t count, const float* grad, const float* mask, float* out);

// *result = the number of elements in x that are NaN or infinite.
Status count_non_finite(int64_t count, const float* x, int64_t* result);

}  // namespace cpu

}  // namespace lmcl
