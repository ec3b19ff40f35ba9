// Elementwise kernels (CUDA). The reference is the CPU kernel of the same name in
// native/src/cpu/elementwise.cpp (lmcl::cpu::binary_broadcast, unary, affine, power, relu_mask,
// count_non_finite); the parity cases are native/test/cases/elementwise.cpp.
//
//   binary_broadcast: out[i] = a[Σ_d idx_d(i)·a_stride_d] ∘ b[Σ_d idx_d(i)·b_stride_d] over the
//                     contiguous out_shape, ∘ ∈ {+, −, ×, ÷, max, min} (max/min return x when x is
//                     NaN, else the comparison's pick, so a NaN on either side propagates, as on CPU).
//   unary:            out[i] = f(x[i]) for neg, exp, log, sqrt, rsqrt, relu, sigmoid, 1/x, x², |x|,
//                     tanh, sign, step (the same formulas as the CPU, sigmoid split by sign).
//   affine:           out[i] = x[i]·scale + shift;  power: out[i] = x[i]^p (p = 2, 1, ½ special-cased)
//   relu_mask:        out[i] = mask[i] > 0 ? grad[i] : 0
//   count_non_finite: *result = #{i : x[i] is NaN or ±inf}
//
// Host/device: tensors are device pointers; out_shape and the strides of binary_broadcast are host
// arrays (the binding's vectors), passed to the kernel by value; count_non_finite's `result` is a
// HOST int64 (the binding's local), so that entry point copies the count back to the host (a
// synchronising copy: the only one in this file, the caller needs the number at once).
//
// All of these are memory-bound. Launch geometry: grid-stride loops of detail::kThreads (256)
// threads, detail::blocks_for blocks; the 1-in/1-out and 2-in/1-out maps move float4s when every
// pointer is 16-byte aligned (scalar tail at the end), else floats. binary_broadcast first drops
// extent-1 dimensions and merges neighbours that are contiguous in out, a and b (so [N,C,H,W] +
// [1,C,1,1] becomes a rank-3 problem), takes the vectorised same-shape map when both operands are
// contiguous, and otherwise decodes every output index over the merged dims (32-bit index math
// when every offset fits in int32, which avoids the slow 64-bit division).
// Arithmetic matches the CPU bit for bit where the CPU is exact IEEE: affine uses __fmul_rn /
// __fadd_rn so nvcc cannot contract it into an FMA (the CPU is built with -ffp-contract=off);
// exp, log, tanh, pow come from the CUDA math library (a few ulp from the CPU's libm; the parity
// cases allow 2e-6 … 4e-6 relative there).
// count_non_finite: per-block integer counts (fixed tree), then one block sums them in order.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "common.cuh"
#include "lmcl/cuda_ops.h"
#include "lmcl/elementwise.h"

namespace lmcl {
namespace cuda {
namespace {

using detail::kThreads;

// ---- the element functions (the CPU's lambdas, on the device) -----------------------------------

__device__ inline bool is_nan(float v) { return v != v; }

struct AddOp { __device__ float operator()(float x, float y) const { return x + y; } };
struct SubOp { __device__ float operator()(float x, float y) const { return x - y; } };
struct MulOp { __device__ float operator()(float x, float y) const { return x * y; } };
struct DivOp { __device__ float operator()(float x, float y) const { return x / y; } };
struct MaximumOp { __device__ float operator()(float x, float y) const { return x > y || is_nan(x) ? x : y; } };
struct MinimumOp { __device__ float operator()(float x, float y) const { return x < y || is_nan(x) ? x : y; } };

struct NegOp { __device__ float operator()(float v) const { return -v; } };
struct ExpOp { __device__ float operator()(float v) const { return expf(v); } };
struct LogOp { __device__ float operator()(float v) const { return logf(v); } };
struct SqrtOp { __device__ float operator()(float v) const { return sqrtf(v); } };
// 1/sqrt as two correctly rounded operations, like the CPU (rsqrtf is an approximation).
struct RsqrtOp { __device__ float operator()(float v) const { return 1.0f / sqrtf(v); } };
struct ReluOp { __device__ float operator()(float v) const { return v > 0.0f ? v : (is_nan(v) ? v : 0.0f); } };
struct SigmoidOp {
  __device__ float operator()(float v) const {
    if (v >= 0.0f) return 1.0f / (1.0f + expf(-v));  // split by sign so exp never overflows
    const float e = expf(v);
    return e / (1.0f + e);
  }
};
struct ReciprocalOp { __device__ float operator()(float v) const { return 1.0f / v; } };
struct SquareOp { __device__ float operator()(float v) const { return v * v; } };
struct AbsOp { __device__ float operator()(float v) const { return fabsf(v); } };
struct TanhOp { __device__ float operator()(float v) const { return tanhf(v); } };
struct SignOp { __device__ float operator()(float v) const { return v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : 0.0f); } };
struct StepOp { __device__ float operator()(float v) const { return v > 0.0f ? 1.0f : 0.0f; } };
struct IdentityOp { __device__ float operator()(float v) const { return v; } };

struct AffineOp {
  float scale, shift;
  __device__ float operator()(float v) const { return __fadd_rn(__fmul_rn(v, scale), shift); }  // no FMA
};
struct PowOp {
  float exponent;
  __device__ float operator()(float v) const { return powf(v, exponent); }
};
struct ReluMaskOp { __device__ float operator()(float grad, float mask) const { return mask > 0.0f ? grad : 0.0f; } };

// ---- maps over contiguous arrays ------------------------------------------------------------------

bool aligned16(const void* pointer) { return (reinterpret_cast<uintptr_t>(pointer) & 15u) == 0; }

// out[i] = op(x[i]). With `vectorized` (all pointers 16-byte aligned) the body moves float4s and
// the last count % 4 elements are done one by one; in-place (x == out) is fine.
template <typename Op>
__global__ void map1_kernel(int64_t count, const float* x, float* out, Op op, bool vectorized) {
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t quads = vectorized ? count / 4 : 0;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  float4* out4 = reinterpret_cast<float4*>(out);
  for (int64_t i = first; i < quads; i += stride) {
    float4 v = x4[i];
    v.x = op(v.x);
    v.y = op(v.y);
    v.z = op(v.z);
    v.w = op(v.w);
    out4[i] = v;
  }
  for (int64_t i = quads * 4 + first; i < count; i += stride) out[i] = op(x[i]);
}

// out[i] = op(a[i], b[i]), the same scheme.
template <typename Op>
__global__ void map2_kernel(int64_t count, const float* a, const float* b, float* out, Op op, bool vectorized) {
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t quads = vectorized ? count / 4 : 0;
  const float4* a4 = reinterpret_cast<const float4*>(a);
  const float4* b4 = reinterpret_cast<const float4*>(b);
  float4* out4 = reinterpret_cast<float4*>(out);
  for (int64_t i = first; i < quads; i += stride) {
    const float4 u = a4[i], v = b4[i];
    out4[i] = make_float4(op(u.x, v.x), op(u.y, v.y), op(u.z, v.z), op(u.w, v.w));
  }
  for (int64_t i = quads * 4 + first; i < count; i += stride) out[i] = op(a[i], b[i]);
}

template <typename Op>
Status launch_map1(const char* name, int64_t count, const float* x, float* out, Op op) {
  if (count <= 0) return Status::ok();
  const bool vectorized = aligned16(x) && aligned16(out);
  map1_kernel<<<detail::blocks_for(vectorized ? (count + 3) / 4 : count), kThreads>>>(count, x, out, op, vectorized);
  return detail::launch_status(name);
}

template <typename Op>
Status launch_map2(const char* name, int64_t count, const float* a, const float* b, float* out, Op op) {
  if (count <= 0) return Status::ok();
  const bool vectorized = aligned16(a) && aligned16(b) && aligned16(out);
  map2_kernel<<<detail::blocks_for(vectorized ? (count + 3) / 4 : count), kThreads>>>(count, a, b, out, op, vectorized);
  return detail::launch_status(name);
}

// ---- broadcasting binary op --------------------------------------------------------------------

// The merged problem: extents and element strides of a and b, outermost first (out is contiguous).
template <typename Index>
struct BroadcastGeometry {
  int rank;
  Index extent[kMaxRank];
  Index a_stride[kMaxRank];
  Index b_stride[kMaxRank];
};

template <typename Index, typename Op>
__global__ void broadcast_kernel(Index count, BroadcastGeometry<Index> g, const float* a, const float* b, float* out,
                                 Op op) {
  const Index stride = Index(gridDim.x) * blockDim.x;
  for (Index i = Index(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    Index rest = i, a_offset = 0, b_offset = 0;
    // Unrolled with constant indices, so the geometry is read from the parameter bank instead of
    // being copied to local memory; dimensions >= rank are skipped.
#pragma unroll
    for (int d = kMaxRank - 1; d > 0; --d) {
      if (d < g.rank) {
        const Index position = rest % g.extent[d];
        rest /= g.extent[d];
        a_offset += position * g.a_stride[d];
        b_offset += position * g.b_stride[d];
      }
    }
    if (g.rank > 0) {  // the outermost index needs no modulo: it is < extent[0]
      a_offset += rest * g.a_stride[0];
      b_offset += rest * g.b_stride[0];
    }
    out[i] = op(a[a_offset], b[b_offset]);
  }
}

template <typename Index, typename Op>
Status launch_broadcast(int rank, const int64_t* extent, const int64_t* a_stride, const int64_t* b_stride, int64_t count,
                        const float* a, const float* b, float* out, Op op) {
  BroadcastGeometry<Index> g{};
  g.rank = rank;
  for (int d = 0; d < rank; ++d) {
    g.extent[d] = static_cast<Index>(extent[d]);
    g.a_stride[d] = static_cast<Index>(a_stride[d]);
    g.b_stride[d] = static_cast<Index>(b_stride[d]);
  }
  broadcast_kernel<Index, Op><<<detail::blocks_for(count), kThreads>>>(static_cast<Index>(count), g, a, b, out, op);
  return detail::launch_status("binary_broadcast");
}

template <typename Op>
Status broadcast_apply(Op op, int rank, const int64_t* shape, const int64_t* a_strides, const int64_t* b_strides,
                       const float* a, const float* b, float* out) {
  // Drop extent-1 dimensions (their index is always 0) and merge neighbours contiguous in a and b
  // (out is contiguous, so always mergeable there). Outermost first.
  int64_t extent[kMaxRank], a_stride[kMaxRank], b_stride[kMaxRank];
  int merged = 0;
  int64_t count = 1;
  for (int d = 0; d < rank; ++d) {
    count *= shape[d];
    if (shape[d] == 1) continue;
    if (merged > 0 && a_stride[merged - 1] == a_strides[d] * shape[d] && b_stride[merged - 1] == b_strides[d] * shape[d]) {
      extent[merged - 1] *= shape[d];
      a_stride[merged - 1] = a_strides[d];
      b_stride[merged - 1] = b_strides[d];
      continue;
    }
    extent[merged] = shape[d];
    a_stride[merged] = a_strides[d];
    b_stride[merged] = b_strides[d];
    ++merged;
  }
  if (count == 0) return Status::ok();
  if (merged == 1 && a_stride[0] == 1 && b_stride[0] == 1) return launch_map2("binary_broadcast", count, a, b, out, op);
  // Largest offset touched in a and b: 32-bit index math when everything stays below 2^31.
  int64_t a_span = 0, b_span = 0;
  for (int d = 0; d < merged; ++d) {
    a_span += (extent[d] - 1) * a_stride[d];
    b_span += (extent[d] - 1) * b_stride[d];
  }
  const int64_t limit = std::numeric_limits<int32_t>::max();
  if (count <= limit && a_span <= limit && b_span <= limit)
    return launch_broadcast<uint32_t>(merged, extent, a_stride, b_stride, count, a, b, out, op);
  return launch_broadcast<int64_t>(merged, extent, a_stride, b_stride, count, a, b, out, op);
}

// ---- count_non_finite ------------------------------------------------------------------------------

constexpr unsigned int kCountBlocks = 1024;  // partial counts per launch (bounded scratch)

__global__ void count_non_finite_partials(int64_t count, const float* x, unsigned long long* partials) {
  __shared__ unsigned long long shared[kThreads];
  unsigned long long found = 0;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    // NaN or ±inf: the exponent bits all set.
    found += (__float_as_uint(x[i]) & 0x7f800000u) == 0x7f800000u ? 1ull : 0ull;
  }
  const unsigned long long total = detail::block_sum(found, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// One block: the partials in a fixed order.
__global__ void count_non_finite_total(const unsigned long long* partials, unsigned int blocks,
                                       unsigned long long* total) {
  __shared__ unsigned long long shared[kThreads];
  unsigned long long sum = 0;
  for (unsigned int i = threadIdx.x; i < blocks; i += blockDim.x) sum += partials[i];
  sum = detail::block_sum(sum, shared);
  if (threadIdx.x == 0) *total = sum;
}

}  // namespace

Status binary_broadcast(BinaryOp op, int rank, const int64_t* out_shape, const int64_t* a_strides,
                        const int64_t* b_strides, const float* a, const float* b, float* out) {
  LMCL_CHECK_ARG(rank >= 0 && rank <= kMaxRank, "rank must be 0.." + std::to_string(kMaxRank) + ", got " + std::to_string(rank));
  for (int d = 0; d < rank; ++d) LMCL_CHECK_ARG(out_shape[d] >= 0, "negative extent in output shape");
  switch (op) {
    case BinaryOp::kAdd: return broadcast_apply(AddOp{}, rank, out_shape, a_strides, b_strides, a, b, out);
    case BinaryOp::kSub: return broadcast_apply(SubOp{}, rank, out_shape, a_strides, b_strides, a, b, out);
    case BinaryOp::kMul: return broadcast_apply(MulOp{}, rank, out_shape, a_strides, b_strides, a, b, out);
    case BinaryOp::kDiv: return broadcast_apply(DivOp{}, rank, out_shape, a_strides, b_strides, a, b, out);
    case BinaryOp::kMaximum: return broadcast_apply(MaximumOp{}, rank, out_shape, a_strides, b_strides, a, b, out);
    case BinaryOp::kMinimum: return broadcast_apply(MinimumOp{}, rank, out_shape, a_strides, b_strides, a, b, out);
    default: return invalid_argument("unknown binary op " + std::to_string(static_cast<int>(op)));
  }
}

Status unary(UnaryOp op, int64_t count, const float* x, float* out) {
  LMCL_CHECK_ARG(count >= 0, "negative element count");
  const char* name = "unary";
  switch (op) {
    case UnaryOp::kNeg: return launch_map1(name, count, x, out, NegOp{});
    case UnaryOp::kExp: return launch_map1(name, count, x, out, ExpOp{});
    case UnaryOp::kLog: return launch_map1(name, count, x, out, LogOp{});
    case UnaryOp::kSqrt: return launch_map1(name, count, x, out, SqrtOp{});
    case UnaryOp::kRsqrt: return launch_map1(name, count, x, out, RsqrtOp{});
    case UnaryOp::kRelu: return launch_map1(name, count, x, out, ReluOp{});
    case UnaryOp::kSigmoid: return launch_map1(name, count, x, out, SigmoidOp{});
    case UnaryOp::kReciprocal: return launch_map1(name, count, x, out, ReciprocalOp{});
    case UnaryOp::kSquare: return launch_map1(name, count, x, out, SquareOp{});
    case UnaryOp::kAbs: return launch_map1(name, count, x, out, AbsOp{});
    case UnaryOp::kTanh: return launch_map1(name, count, x, out, TanhOp{});
    case UnaryOp::kSign: return launch_map1(name, count, x, out, SignOp{});
    case UnaryOp::kStep: return launch_map1(name, count, x, out, StepOp{});
    default: return invalid_argument("unknown unary op " + std::to_string(static_cast<int>(op)));
  }
}

Status affine(int64_t count, const float* x, float scale, float shift, float* out) {
  LMCL_CHECK_ARG(count >= 0, "negative element count");
  return launch_map1("affine", count, x, out, AffineOp{scale, shift});
}

Status power(int64_t count, const float* x, float exponent, float* out) {
  LMCL_CHECK_ARG(count >= 0, "negative element count");
  // The CPU's special cases (exact, and faster than pow).
  if (exponent == 2.0f) return launch_map1("power", count, x, out, SquareOp{});
  if (exponent == 1.0f) return launch_map1("power", count, x, out, IdentityOp{});
  if (exponent == 0.5f) return launch_map1("power", count, x, out, SqrtOp{});
  return launch_map1("power", count, x, out, PowOp{exponent});
}

Status relu_mask(int64_t count, const float* grad, const float* mask, float* out) {
  LMCL_CHECK_ARG(count >= 0, "negative element count");
  return launch_map2("relu_mask", count, grad, mask, out, ReluMaskOp{});
}

Status count_non_finite(int64_t count, const float* x, int64_t* result) {
  // The CPU counts nothing for count <= 0 (and has no check): the same here, with no launch.
  if (count <= 0) {
    *result = 0;
    return Status::ok();
  }
  const unsigned int blocks = std::min(detail::blocks_for(count), kCountBlocks);
  detail::DeviceScratch scratch((blocks + 1) * sizeof(unsigned long long));
  if (!scratch.ok()) return scratch.status();
  auto* partials = static_cast<unsigned long long*>(scratch.data());
  count_non_finite_partials<<<blocks, kThreads>>>(count, x, partials);
  LMCL_RETURN_IF_ERROR(detail::launch_status("count_non_finite"));
  count_non_finite_total<<<1, kThreads>>>(partials, blocks, partials + blocks);
  LMCL_RETURN_IF_ERROR(detail::launch_status("count_non_finite"));
  unsigned long long total = 0;
  // `result` is a host pointer: this copy waits for the two kernels.
  LMCL_RETURN_IF_ERROR(copy_device_to_host(&total, partials + blocks, sizeof(total)));
  *result = static_cast<int64_t>(total);
  return Status::ok();
}

}  // namespace cuda
}  // namespace lmcl
