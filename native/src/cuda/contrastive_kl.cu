// KL divergences between row softmaxes (CUDA), fused row-wise: the reference is lmcl::cpu::
// contrastive_kl_forward / contrastive_kl_backward / distill_kl_forward / distill_kl_backward
// (native/src/cpu/contrastive_kl.cpp, contract in native/include/lmcl/contrastive_kl.h); the parity
// cases are native/test/cases/contrastive_kl.cpp.
//
//   contrastive KL: S = sA·sCᵀ, T = tA·tCᵀ ([B, B], never stored whole), s = 1/(τ·T_kl)
//     lse^S_u = log Σ_v exp(s·S_uv), lse^T_u likewise (all columns, diagonal included)
//     KL_u = s·Σ_v q_uv (T_uv − S_uv) + lse^S_u − lse^T_u,  q_u = softmax(s·T_u), p_u = softmax(s·S_u)
//     loss = T_kl²·Σ_u w_u·KL_u / B,  ∂S_uv = g·w_u·T_kl²·s·(p_uv − q_uv)/B,  ∂w_u = g·T_kl²·KL_u/B
//     ∂sA = ∂S·sC, ∂sC = ∂Sᵀ·sA (the teacher is detached)
//   distill KL: the same row formula on logits [B, C] with s = 1/T (loss T²·Σ w·KL / B).
// Layouts: embeddings [B, D], logits [B, C] row-major; weights [B] or null; row_stats [B, 3] =
// (lse^S, lse^T, KL) exactly as the CPU stores them; direction [B, B] optional (rows p − q);
// loss and grad_output are 1-float device arrays. No host arrays in these signatures.
//
// Launch geometry:
//  - contrastive forward: one 256-thread block per anchor row u; its 8 warps take the columns v in
//    turn, the two dots ⟨sA_u, sC_v⟩ and ⟨tA_u, tC_v⟩ each by one warp (coalesced, fixed shuffle
//    tree), the student lse, the teacher lse and Σ q·(T − S) kept online (running max, rescaled
//    sums), merged in warp order. With direction, a second sweep recomputes the two dots and writes
//    p − q (the row cannot park two values in one direction slot).
//  - distill forward: one block per row, threads over the C classes (coalesced), the same online
//    state merged by a fixed shared-memory tree. Backward: one thread per element, grid-stride.
//  - contrastive backward (gradient_rows.cuh, shared with infonce.cu): one block per output row
//    (and per 256-float chunk of D), warps over the other side's rows, ∂S recomputed from the two
//    dots and the saved lses (or read from direction), per-warp partial rows summed in warp order.
//  - the loss: one block, Σ w_u·KL_u in double by a fixed tree. No float atomics.
// Bound: contrastive — compute (≈ 4·B²·D flops per pass, warp dots); distill — memory (2 reads of
// the [B, C] logits).
#include <cmath>
#include <string>

#include "common.cuh"
#include "gradient_rows.cuh"
#include "lmcl/cuda_ops.h"

namespace lmcl {
namespace cuda {
namespace {

using detail::warp_dot;
using detail::warp_sum;

constexpr int kWarps = detail::kThreads / 32;

// Online state of one KL row: the student (max, Σ exp) at scale s, the teacher's, and
// Σ exp(s·t − teacher max)·(t − x) (rescaled with the teacher sum).
struct KlState {
  float student_max, student_total, teacher_max, teacher_total, cross;
};

__device__ inline KlState kl_identity() { return {-INFINITY, 0.0f, -INFINITY, 0.0f, 0.0f}; }

__device__ inline float rescale(float maximum, float target) {
  return maximum == -INFINITY ? 0.0f : expf(maximum - target);
}

__device__ inline KlState merge(const KlState& a, const KlState& b) {
  KlState out;
  out.student_max = fmaxf(a.student_max, b.student_max);
  out.student_total = a.student_total * rescale(a.student_max, out.student_max) +
                      b.student_total * rescale(b.student_max, out.student_max);
  out.teacher_max = fmaxf(a.teacher_max, b.teacher_max);
  const float ra = rescale(a.teacher_max, out.teacher_max), rb = rescale(b.teacher_max, out.teacher_max);
  out.teacher_total = a.teacher_total * ra + b.teacher_total * rb;
  out.cross = a.cross * ra + b.cross * rb;
  return out;
}

// One column: raw student value x and teacher value t (logits are s·x, s·t).
__device__ inline void add_column(KlState& state, float scale, float x, float t) {
  const float xs = scale * x, ts = scale * t;
  if (xs > state.student_max) {
    state.student_total = state.student_total * expf(state.student_max - xs) + 1.0f;
    state.student_max = xs;
  } else {
    state.student_total += expf(xs - state.student_max);
  }
  if (ts > state.teacher_max) {
    const float r = expf(state.teacher_max - ts);
    state.teacher_total = state.teacher_total * r + 1.0f;
    state.cross = state.cross * r + (t - x);
    state.teacher_max = ts;
  } else {
    const float e = expf(ts - state.teacher_max);
    state.teacher_total += e;
    state.cross += e * (t - x);
  }
}

// (lse^S, lse^T, KL) of a finished row.
__device__ inline void write_row_stats(const KlState& row, float scale, float* stats) {
  const float lse_student = row.student_max == -INFINITY ? -INFINITY : row.student_max + logf(row.student_total);
  const float lse_teacher = row.teacher_max == -INFINITY ? -INFINITY : row.teacher_max + logf(row.teacher_total);
  stats[0] = lse_student;
  stats[1] = lse_teacher;
  stats[2] = scale * (row.cross / row.teacher_total) + (lse_student - lse_teacher);
}

// A fixed shared-memory tree over the block's states (blockDim.x a power of two).
__device__ inline KlState block_merge(KlState value, KlState* shared) {
  const int tid = threadIdx.x;
  shared[tid] = value;
  __syncthreads();
  for (int width = blockDim.x / 2; width > 0; width /= 2) {
    if (tid < width) shared[tid] = merge(shared[tid], shared[tid + width]);
    __syncthreads();
  }
  const KlState total = shared[0];
  __syncthreads();
  return total;
}

__global__ void contrastive_kl_forward_rows(int64_t batch, int64_t dim, const float* __restrict__ student_anchor,
                                            const float* __restrict__ student_contrast,
                                            const float* __restrict__ teacher_anchor,
                                            const float* __restrict__ teacher_contrast, float scale,
                                            float* __restrict__ row_stats, float* __restrict__ direction) {
  __shared__ KlState warp_states[kWarps];
  const int64_t u = blockIdx.x;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const float* sa = student_anchor + u * dim;
  const float* ta = teacher_anchor + u * dim;
  KlState state = kl_identity();
  for (int64_t v = warp; v < batch; v += kWarps) {
    const float x = warp_dot(sa, student_contrast + v * dim, dim, lane);
    const float t = warp_dot(ta, teacher_contrast + v * dim, dim, lane);
    add_column(state, scale, x, t);
  }
  if (lane == 0) warp_states[warp] = state;
  __syncthreads();
  if (threadIdx.x == 0) {
    KlState row = warp_states[0];
    for (int w = 1; w < kWarps; ++w) row = merge(row, warp_states[w]);
    write_row_stats(row, scale, row_stats + 3 * u);
  }
  if (!direction) return;
  __syncthreads();  // row_stats of this row written (global memory, visible within the block)
  const float lse_student = row_stats[3 * u], lse_teacher = row_stats[3 * u + 1];
  for (int64_t v = warp; v < batch; v += kWarps) {
    const float x = warp_dot(sa, student_contrast + v * dim, dim, lane);
    const float t = warp_dot(ta, teacher_contrast + v * dim, dim, lane);
    if (lane == 0) direction[u * batch + v] = expf(scale * x - lse_student) - expf(scale * t - lse_teacher);
  }
}

__global__ void distill_kl_forward_rows(int64_t classes, const float* __restrict__ student,
                                        const float* __restrict__ teacher, float scale, float* __restrict__ row_stats) {
  __shared__ KlState shared[detail::kThreads];
  const int64_t u = blockIdx.x;
  KlState state = kl_identity();
  for (int64_t v = threadIdx.x; v < classes; v += blockDim.x) {
    add_column(state, scale, student[u * classes + v], teacher[u * classes + v]);
  }
  const KlState row = block_merge(state, shared);
  if (threadIdx.x == 0) write_row_stats(row, scale, row_stats + 3 * u);
}

// loss = factor·Σ_u w_u·KL_u / B (factor = T²), double tree, one block.
__global__ void kl_loss(int64_t batch, const float* __restrict__ weights, const float* __restrict__ row_stats,
                        float squared, float* __restrict__ loss) {
  __shared__ double shared[detail::kThreads];
  double partial = 0.0;
  for (int64_t u = threadIdx.x; u < batch; u += blockDim.x) {
    partial += static_cast<double>(weights ? weights[u] : 1.0f) * row_stats[3 * u + 2];
  }
  const double total = detail::block_sum(partial, shared);
  if (threadIdx.x == 0) loss[0] = squared * static_cast<float>(total) / static_cast<float>(batch);
}

__global__ void kl_grad_weights(int64_t batch, const float* __restrict__ row_stats, const float* __restrict__ grad_output,
                                float squared, float* __restrict__ grad_weights) {
  const float g = grad_output[0];
  for (int64_t u = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; u < batch; u += int64_t{gridDim.x} * blockDim.x) {
    grad_weights[u] = g * squared * row_stats[3 * u + 2] / static_cast<float>(batch);
  }
}

// ∂student_uv = g·w_u·(T/B)·(p_uv − q_uv), element by element.
__global__ void distill_kl_gradient(int64_t batch, int64_t classes, const float* __restrict__ student,
                                    const float* __restrict__ teacher, const float* __restrict__ weights, float scale,
                                    float temperature, const float* __restrict__ row_stats,
                                    const float* __restrict__ grad_output, float* __restrict__ grad_student) {
  const float factor = grad_output[0] * temperature / static_cast<float>(batch);
  const int64_t total = batch * classes;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total; e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t u = e / classes;
    const float c = factor * (weights ? weights[u] : 1.0f);
    grad_student[e] = c * (expf(scale * student[e] - row_stats[3 * u]) - expf(scale * teacher[e] - row_stats[3 * u + 1]));
  }
}

// ∂S_uv recomputed: the student dot comes from the gradient kernel, the teacher dot here (warp-wide).
struct RecomputedCoefficient {
  static constexpr bool kNeedsDot = true;
  static constexpr bool kSkipZero = false;
  int64_t dim;
  float scale, factor;  // factor = T_kl²·s/B (times g and w_u below)
  const float* teacher_anchor;
  const float* teacher_contrast;
  const float* weights;
  const float* row_stats;
  const float* grad_output;
  __device__ float operator()(int64_t u, int64_t v, float student_dot, int lane) const {
    const float t = warp_dot(teacher_anchor + u * dim, teacher_contrast + v * dim, dim, lane);
    const float c = grad_output[0] * factor * (weights ? weights[u] : 1.0f);
    return c * (expf(scale * student_dot - row_stats[3 * u]) - expf(scale * t - row_stats[3 * u + 1]));
  }
};

struct StoredCoefficient {
  static constexpr bool kNeedsDot = false;
  static constexpr bool kSkipZero = false;
  int64_t batch;
  float factor;
  const float* weights;
  const float* direction;
  const float* grad_output;
  __device__ float operator()(int64_t u, int64_t v, float, int) const {
    return grad_output[0] * factor * (weights ? weights[u] : 1.0f) * direction[u * batch + v];
  }
};

Status check_temperature(float value, const char* name) {
  LMCL_CHECK_ARG(std::isfinite(value) && value > 0.0f,
                 std::string(name) + " must be a finite number > 0, got " + std::to_string(value));
  return Status::ok();
}

}  // namespace

Status contrastive_kl_forward(int64_t batch, int64_t dim, const float* student_anchor, const float* student_contrast,
                              const float* teacher_anchor, const float* teacher_contrast, const float* weights,
                              float temperature, float kl_temperature, float* loss, float* row_stats,
                              float* direction) {
  LMCL_CHECK_ARG(batch >= 0 && dim >= 0, "negative extent in embedding shape " + describe_shape({batch, dim}));
  LMCL_RETURN_IF_ERROR(check_temperature(temperature, "temperature"));
  LMCL_RETURN_IF_ERROR(check_temperature(kl_temperature, "klTemperature"));
  if (batch == 0) return fill(loss, 0.0f, 1);
  const float scale = 1.0f / (temperature * kl_temperature);
  contrastive_kl_forward_rows<<<static_cast<unsigned int>(batch), detail::kThreads>>>(
      batch, dim, student_anchor, student_contrast, teacher_anchor, teacher_contrast, scale, row_stats, direction);
  LMCL_RETURN_IF_ERROR(detail::launch_status("contrastiveKL"));
  kl_loss<<<1, detail::kThreads>>>(batch, weights, row_stats, kl_temperature * kl_temperature, loss);
  return detail::launch_status("contrastiveKL (loss)");
}

Status contrastive_kl_backward(int64_t batch, int64_t dim, const float* student_anchor, const float* student_contrast,
                               const float* teacher_anchor, const float* teacher_contrast, const float* weights,
                               float temperature, float kl_temperature, const float* row_stats,
                               const float* direction, const float* grad_output, float* grad_student_anchor,
                               float* grad_student_contrast, float* grad_weights) {
  LMCL_CHECK_ARG(batch >= 0 && dim >= 0, "negative extent in embedding shape " + describe_shape({batch, dim}));
  LMCL_RETURN_IF_ERROR(check_temperature(temperature, "temperature"));
  LMCL_RETURN_IF_ERROR(check_temperature(kl_temperature, "klTemperature"));
  if (batch == 0) return Status::ok();
  const float squared = kl_temperature * kl_temperature;
  if (grad_weights) {
    kl_grad_weights<<<detail::blocks_for(batch), detail::kThreads>>>(batch, row_stats, grad_output, squared, grad_weights);
    LMCL_RETURN_IF_ERROR(detail::launch_status("contrastiveKL backward (weights)"));
  }
  if ((!grad_student_anchor && !grad_student_contrast) || dim == 0) return Status::ok();
  const float scale = 1.0f / (temperature * kl_temperature);
  const float factor = squared * scale / static_cast<float>(batch);
  if (direction) {
    const StoredCoefficient c{batch, factor, weights, direction, grad_output};
    return detail::launch_gradient_rows(batch, dim, student_anchor, student_contrast, c, grad_student_anchor, grad_student_contrast, "contrastiveKL backward");
  }
  const RecomputedCoefficient c{dim, scale, factor, teacher_anchor, teacher_contrast, weights, row_stats, grad_output};
  return detail::launch_gradient_rows(batch, dim, student_anchor, student_contrast, c, grad_student_anchor, grad_student_contrast, "contrastiveKL backward");
}

Status distill_kl_forward(int64_t batch, int64_t classes, const float* student, const float* teacher,
                          const float* weights, float temperature, float* loss, float* row_stats) {
  LMCL_CHECK_ARG(batch >= 0 && classes >= 0, "negative extent in logits shape " + describe_shape({batch, classes}));
  LMCL_RETURN_IF_ERROR(check_temperature(temperature, "temperature"));
  if (batch == 0) return fill(loss, 0.0f, 1);
  distill_kl_forward_rows<<<static_cast<unsigned int>(batch), detail::kThreads>>>(classes, student, teacher,
                                                                                  1.0f / temperature, row_stats);
  LMCL_RETURN_IF_ERROR(detail::launch_status("distillKL"));
  kl_loss<<<1, detail::kThreads>>>(batch, weights, row_stats, temperature * temperature, loss);
  return detail::launch_status("distillKL (loss)");
}

Status distill_kl_backward(int64_t batch, int64_t classes, const float* student, const float* teacher,
                           const float* weights, float temperature, const float* row_stats, const float* grad_output,
                           float* grad_student, float* grad_weights) {
  LMCL_CHECK_ARG(batch >= 0 && classes >= 0, "negative extent in logits shape " + describe_shape({batch, classes}));
  LMCL_RETURN_IF_ERROR(check_temperature(temperature, "temperature"));
  if (batch == 0) return Status::ok();
  if (grad_weights) {
    kl_grad_weights<<<detail::blocks_for(batch), detail::kThreads>>>(batch, row_stats, grad_output,
                                                                     temperature * temperature, grad_weights);
    LMCL_RETURN_IF_ERROR(detail::launch_status("distillKL backward (weights)"));
  }
  if (!grad_student || classes == 0) return Status::ok();
  distill_kl_gradient<<<detail::blocks_for(batch * classes), detail::kThreads>>>(
      batch, classes, student, teacher, weights, 1.0f / temperature, temperature, row_stats, grad_output, grad_student);
  return detail::launch_status("distillKL backward");
}

}  // namespace cuda
}  // namespace lmcl
