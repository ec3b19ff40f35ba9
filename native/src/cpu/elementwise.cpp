// Elementwise kernels (CPU).
//
//   binary_broadcast: out[i] = a[sum_d idx_d(i)·a_stride_d] ∘ b[sum_d idx_d(i)·b_stride_d],
//                     ∘ ∈ {+, −, ×, ÷, max, min}; stride 0 marks a broadcast dimension.
//   unary:            out[i] = f(x[i]) for neg, exp, log, sqrt, rsqrt, relu, sigmoid, 1/x, x², |x|,
//                     tanh, sign, step.
//   affine:           out[i] = x[i]·scale + shift;  power: out[i] = x[i]^p
//   relu_mask:        out[i] = mask[i] > 0 ? grad[i] : 0
// Layout: contiguous row-major float32. The innermost dimension runs in a tight loop the compiler
// vectorises (both contiguous, or one side broadcast as a scalar); outer dimensions use an index
// odometer. Threaded over the flattened outer index. Every element is computed independently, so
// results do not depend on the thread count.
// Tested against float64 references in test/ops/elementwise.test.ts.
#include "lmcl/elementwise.h"

#include <cmath>
#include <algorithm>
#include <string>
#include <vector>

#include "lmcl/parallel.h"

namespace lmcl {
namespace cpu {
namespace {

constexpr int64_t kGrain = 1 << 15;

template <typename Function>
inline void binary_row(Function function, int64_t length, const float* a, int64_t a_stride, const float* b,
                       int64_t b_stride, float* out) {
  if (a_stride == 1 && b_stride == 1) {
    for (int64_t i = 0; i < length; ++i) out[i] = function(a[i], b[i]);
  } else if (a_stride == 1 && b_stride == 0) {
    const float scalar = *b;
    for (int64_t i = 0; i < length; ++i) out[i] = function(a[i], scalar);
  } else if (a_stride == 0 && b_stride == 1) {
    const float scalar = *a;
    for (int64_t i = 0; i < length; ++i) out[i] = function(scalar, b[i]);
  } else {
    for (int64_t i = 0; i < length; ++i) out[i] = function(a[i * a_stride], b[i * b_stride]);
  }
}

template <typename Function>
void binary_apply(Function function, int rank, const int64_t* shape, const int64_t* a_strides,
                  const int64_t* b_strides, const float* a, const float* b, float* out) {
  const int64_t inner = rank > 0 ? shape[rank - 1] : 1;
  const int64_t inner_a = rank > 0 ? a_strides[rank - 1] : 0;
  const int64_t inner_b = rank > 0 ? b_strides[rank - 1] : 0;
  int64_t rows = 1;
  for (int d = 0; d + 1 < rank; ++d) rows *= shape[d];
  if (inner == 0 || rows == 0) return;
  const int64_t grain_rows = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, inner));
  parallel_for(0, rows, grain_rows, [&](int64_t row_begin, int64_t row_end) {
    int64_t index[kMaxRank] = {0};
    // Decompose row_begin into the outer index.
    int64_t remainder = row_begin;
    for (int d = rank - 2; d >= 0; --d) {
      index[d] = remainder % shape[d];
      remainder /= shape[d];
    }
    for (int64_t row = row_begin; row < row_end; ++row) {
      int64_t a_offset = 0, b_offset = 0;
      for (int d = 0; d + 1 < rank; ++d) {
        a_offset += index[d] * a_strides[d];
        b_offset += index[d] * b_strides[d];
      }
      binary_row(function, inner, a + a_offset, inner_a, b + b_offset, inner_b, out + row * inner);
      for (int d = rank - 2; d >= 0; --d) {
        if (++index[d] < shape[d]) break;
        index[d] = 0;
      }
    }
  });
}

template <typename Function>
void unary_apply(Function function, int64_t count, const float* x, float* out) {
  parallel_for(0, count, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = function(x[i]);
  });
}

}  // namespace

Status binary_broadcast(BinaryOp op, int rank, const int64_t* out_shape, const int64_t* a_strides,
                        const int64_t* b_strides, const float* a, const float* b, float* out) {
  LMCL_CHECK_ARG(rank >= 0 && rank <= kMaxRank, "rank must be 0.." + std::to_string(kMaxRank) + ", got " + std::to_string(rank));
  for (int d = 0; d < rank; ++d) LMCL_CHECK_ARG(out_shape[d] >= 0, "negative extent in output shape");
  switch (op) {
    case BinaryOp::kAdd: binary_apply([](float x, float y) { return x + y; }, rank, out_shape, a_strides, b_strides, a, b, out); break;
    case BinaryOp::kSub: binary_apply([](float x, float y) { return x - y; }, rank, out_shape, a_strides, b_strides, a, b, out); break;
    case BinaryOp::kMul: binary_apply([](float x, float y) { return x * y; }, rank, out_shape, a_strides, b_strides, a, b, out); break;
    case BinaryOp::kDiv: binary_apply([](float x, float y) { return x / y; }, rank, out_shape, a_strides, b_strides, a, b, out); break;
    case BinaryOp::kMaximum: binary_apply([](float x, float y) { return x > y || std::isnan(x) ? x : y; }, rank, out_shape, a_strides, b_strides, a, b, out); break;
    case BinaryOp::kMinimum: binary_apply([](float x, float y) { return x < y || std::isnan(x) ? x : y; }, rank, out_shape, a_strides, b_strides, a, b, out); break;
    default: return invalid_argument("unknown binary op " + std::to_string(static_cast<int>(op)));
  }
  return Status::ok();
}

Status unary(UnaryOp op, int64_t count, const float* x, float* out) {
  LMCL_CHECK_ARG(count >= 0, "negative element count");
  switch (op) {
    case UnaryOp::kNeg: unary_apply([](float v) { return -v; }, count, x, out); break;
    case UnaryOp::kExp: unary_apply([](float v) { return std::exp(v); }, count, x, out); break;
    case UnaryOp::kLog: unary_apply([](float v) { return std::log(v); }, count, x, out); break;
    case UnaryOp::kSqrt: unary_apply([](float v) { return std::sqrt(v); }, count, x, out); break;
    case UnaryOp::kRsqrt: unary_apply([](float v) { return 1.0f / std::sqrt(v); }, count, x, out); break;
    case UnaryOp::kRelu: unary_apply([](float v) { return v > 0.0f ? v : (std::isnan(v) ? v : 0.0f); }, count, x, out); break;
    case UnaryOp::kSigmoid:
      // Split by sign so exp never overflows.
      unary_apply([](float v) {
        if (v >= 0.0f) return 1.0f / (1.0f + std::exp(-v));
        float e = std::exp(v);
        return e / (1.0f + e);
      }, count, x, out);
      break;
    case UnaryOp::kReciprocal: unary_apply([](float v) { return 1.0f / v; }, count, x, out); break;
    case UnaryOp::kSquare: unary_apply([](float v) { return v * v; }, count, x, out); break;
    case UnaryOp::kAbs: unary_apply([](float v) { return std::fabs(v); }, count, x, out); break;
    case UnaryOp::kTanh: unary_apply([](float v) { return std::tanh(v); }, count, x, out); break;
    case UnaryOp::kSign: unary_apply([](float v) { return v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : 0.0f); }, count, x, out); break;
    case UnaryOp::kStep: unary_apply([](float v) { return v > 0.0f ? 1.0f : 0.0f; }, count, x, out); break;
    default: return invalid_argument("unknown unary op " + std::to_string(static_cast<int>(op)));
  }
  return Status::ok();
}

Status affine(int64_t count, const float* x, float scale, float shift, float* out) {
  LMCL_CHECK_ARG(count >= 0, "negative element count");
  unary_apply([scale, shift](float v) { return v * scale + shift; }, count, x, out);
  return Status::ok();
}

Status power(int64_t count, const float* x, float exponent, float* out) {
  LMCL_CHECK_ARG(count >= 0, "negative element count");
  if (exponent == 2.0f) unary_apply([](float v) { return v * v; }, count, x, out);
  else if (exponent == 1.0f) unary_apply([](float v) { return v; }, count, x, out);
  else if (exponent == 0.5f) unary_apply([](float v) { return std::sqrt(v); }, count, x, out);
  else unary_apply([exponent](float v) { return std::pow(v, exponent); }, count, x, out);
  return Status::ok();
}

Status relu_mask(int64_t count, const float* grad, const float* mask, float* out) {
  LMCL_CHECK_ARG(count >= 0, "negative element count");
  parallel_for(0, count, kGrain, [=](int64_t begin, int64_t end) {
    // grad[i] is read unconditionally (a select, not a branch): the mask is a ReLU output with
    // zeros in random places, and a branch here is mispredicted half the time (8× slower).
    for (int64_t i = begin; i < end; ++i) {
      const float value = grad[i];
      out[i] = mask[i] > 0.0f ? value : 0.0f;
    }
  });
  return Status::ok();
}

Status count_non_finite(int64_t count, const float* x, int64_t* result) {
  int64_t chunks = chunk_count_for(0, count, kGrain);
  std::vector<int64_t> partial(static_cast<size_t>(std::max<int64_t>(chunks, 1)), 0);
  parallel_for_chunks(0, count, kGrain, [&](int64_t chunk, int64_t begin, int64_t end) {
    int64_t found = 0;
    for (int64_t i = begin; i < end; ++i) found += std::isfinite(x[i]) ? 0 : 1;
    partial[chunk] = found;
  });
  int64_t total = 0;
  for (int64_t value : partial) total += value;
  *result = total;
  return Status::ok();
}

}  // namespace cpu
}  // namespace lmcl
