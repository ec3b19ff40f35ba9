// Memory-bank contrast kernels (CUDA). The reference is lmcl::cpu::memory_logits_forward,
// memory_logits_transpose, memory_info_nce_forward, memory_info_nce_backward and memory_update
// (native/src/cpu/memory_bank.cpp, contract in native/include/lmcl/memory_bank.h); the parity cases
// are native/test/cases/memory_bank.cpp.
//
//   logits     l[q, u, k] = s · ⟨bank[idx[u, k]], query[q, u]⟩,   idx[u, k] = indices[u·K + k]
//   transpose  out[q, u]  = s · Σ_k g[q, u, k] · bank[idx[u, k]]      (q < Q queries share the rows)
//   InfoNCE    lse_u = log Σ_k exp(l[u, k]),  term_u = lse_u − (1/P) Σ_{k<P} l[u, k],
//              loss = (1/B) Σ_u w_u · term_u;  c[u, k] = (w_u/B)·(exp(l[u, k] − lse_u) − [k < P]/P)·g,
//              ∂query[u] = s · Σ_k c[u, k] · bank[idx[u, k]],  ∂w_u = term_u / B · g
//   update     bank[r_i] ← v_i / ‖v_i‖₂,  v_i = m · bank[r_i] + (1 − m) · z[i]   (double; no epsilon)
// Layouts: query [Q, B, D], bank [M, D], logits / grad [Q, B, K] (the InfoNCE: Q = 1), stats
// [B, 2] = (lse_u, term_u) as on the CPU, z [R, D]; all device memory. indices int32 [B·K] and rows
// int32 [R] are IndexArrays (lmcl/index_array.h): the kernels read their device side; the host side
// is validated with the CPU's checks and messages first (so nothing is read outside the bank), and
// no call copies indices to the device.
//
// Launch geometry:
//  - logits: one warp per (u, k) entry, grid-stride over the entries; the warp reads the gathered
//    bank row and the query row coalesced (lanes stride D) and reduces by a fixed shuffle tree.
//  - transpose and the InfoNCE backward: one 256-thread block per query row (and per 256 floats of
//    D); its 8 warps take the columns k in turn and accumulate c[u, k]·bank row into per-warp
//    partial rows in shared memory, summed in warp order. No [B, K, D] gather, no atomics.
//  - InfoNCE forward: one block per query row: warps over k compute and write the logits and keep
//    an online (max, Σ exp) and the positive sum, merged in warp order; the loss is one block
//    summing w_u·term_u in double by a fixed tree.
//  - update: one block per updated row: the squared norm of the mix in double (fixed tree) into a
//    scratch; one thread checks the norms in position order (the CPU's first failure, recorded as
//    a deferred check: reported at the next host read, common.cuh — no host wait per step); then
//    one block per row writes it, unless the check failed (the CPU's contract: the bank unchanged).
// Bound: memory (random bank rows: ≈ B·K·D·4 bytes per pass, read through L2).
#include <cmath>
#include <string>
#include <vector>

#include "common.cuh"
#include "lmcl/cuda_ops.h"

namespace lmcl {
namespace cuda {
namespace {

using detail::warp_dot;
using detail::warp_sum;

constexpr int kWarps = detail::kThreads / 32;
constexpr int kChunk = 256;

// The warp of entry (u, k) dots the gathered row with every query q (the row is in L1 after q = 0).
__global__ void memory_logits(int64_t queries, int64_t batch, int64_t columns, int64_t dim, const float* __restrict__ query,
                              const float* __restrict__ bank, const int32_t* __restrict__ indices, float scale,
                              float* __restrict__ logits) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t{gridDim.x} * (blockDim.x / 32);
  const int64_t total = batch * columns;
  for (int64_t e = (blockIdx.x * int64_t{blockDim.x} + threadIdx.x) / 32; e < total; e += warps) {
    const int64_t u = e / columns;
    const float* row = bank + int64_t{indices[e]} * dim;
    for (int64_t q = 0; q < queries; ++q) {
      const float dot = warp_dot(row, query + (q * batch + u) * dim, dim, lane);
      if (lane == 0) logits[q * total + e] = scale * dot;
    }
  }
}

struct PlainCoefficient {  // the transpose: c[u, k] = grad[u, k]
  const float* grad;
  int64_t columns;
  __device__ float operator()(int64_t u, int64_t k) const { return grad[u * columns + k]; }
};

struct InfoNceCoefficient {  // (w_u/B)·(exp(l − lse_u) − [k < P]/P)·g
  const float* logits;
  const float* stats;
  const float* weights;
  const float* grad;
  int64_t batch, columns, positives;
  __device__ float operator()(int64_t u, int64_t k) const {
    const float factor = (weights ? weights[u] : 1.0f) * (1.0f / static_cast<float>(batch)) * grad[0];
    const float e = expf(logits[u * columns + k] - stats[2 * u]);
    return (k < positives ? e - 1.0f / static_cast<float>(positives) : e) * factor;
  }
};

// out[u] = scale · Σ_k c(u, k) · bank[idx[u, k]]; block (u, chunk of D), warps over k.
template <typename Coefficient>
__global__ void accumulate_bank_rows(int64_t columns, int64_t dim, const float* __restrict__ bank,
                                     const int32_t* __restrict__ indices, Coefficient coefficient, float scale,
                                     float* __restrict__ out) {
  __shared__ float partial[kWarps][kChunk];
  const int64_t u = blockIdx.x;
  const int64_t d0 = int64_t{blockIdx.y} * kChunk;
  const int64_t width = dim - d0 < kChunk ? dim - d0 : kChunk;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int64_t d = lane; d < width; d += 32) partial[warp][d] = 0.0f;
  for (int64_t k = warp; k < columns; k += kWarps) {
    const float c = coefficient(u, k);
    const float* row = bank + int64_t{indices[u * columns + k]} * dim + d0;
    for (int64_t d = lane; d < width; d += 32) partial[warp][d] += c * row[d];
  }
  __syncthreads();
  for (int64_t d = threadIdx.x; d < width; d += blockDim.x) {
    float total = partial[0][d];
    for (int w = 1; w < kWarps; ++w) total += partial[w][d];
    out[u * dim + d0 + d] = scale * total;
  }
}

struct RowState {
  float maximum, total, positive;
};

__global__ void memory_info_nce_rows(int64_t columns, int64_t dim, int64_t positives, const float* __restrict__ query,
                                     const float* __restrict__ bank, const int32_t* __restrict__ indices, float scale,
                                     float* __restrict__ logits, float* __restrict__ stats) {
  __shared__ RowState warp_states[kWarps];
  const int64_t u = blockIdx.x;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  RowState state{-INFINITY, 0.0f, 0.0f};
  for (int64_t k = warp; k < columns; k += kWarps) {
    const int64_t e = u * columns + k;
    const float x = scale * warp_dot(bank + int64_t{indices[e]} * dim, query + u * dim, dim, lane);
    if (lane == 0) logits[e] = x;
    if (x > state.maximum) {
      state.total = state.total * expf(state.maximum - x) + 1.0f;
      state.maximum = x;
    } else {
      state.total += expf(x - state.maximum);
    }
    if (k < positives) state.positive += x;
  }
  if (lane == 0) warp_states[warp] = state;
  __syncthreads();
  if (threadIdx.x == 0) {
    RowState row = warp_states[0];
    for (int w = 1; w < kWarps; ++w) {
      const RowState& b = warp_states[w];
      const float m = fmaxf(row.maximum, b.maximum);
      row.total = (row.maximum == -INFINITY ? 0.0f : row.total * expf(row.maximum - m)) +
                  (b.maximum == -INFINITY ? 0.0f : b.total * expf(b.maximum - m));
      row.maximum = m;
      row.positive += b.positive;
    }
    const float lse = row.maximum + logf(row.total);
    stats[2 * u] = lse;
    stats[2 * u + 1] = lse - row.positive / static_cast<float>(positives);
  }
}

__global__ void memory_info_nce_loss(int64_t batch, const float* __restrict__ weights, const float* __restrict__ stats,
                                     float* __restrict__ loss) {
  __shared__ double shared[detail::kThreads];
  double partial = 0.0;
  for (int64_t u = threadIdx.x; u < batch; u += blockDim.x) {
    partial += static_cast<double>(weights ? weights[u] : 1.0f) * stats[2 * u + 1];
  }
  const double total = detail::block_sum(partial, shared);
  if (threadIdx.x == 0) loss[0] = static_cast<float>(total / static_cast<double>(batch));
}

__global__ void memory_grad_weights(int64_t batch, const float* __restrict__ stats, const float* __restrict__ grad,
                                    float* __restrict__ grad_weights) {
  const float g = grad[0];
  for (int64_t u = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; u < batch; u += int64_t{gridDim.x} * blockDim.x) {
    grad_weights[u] = stats[2 * u + 1] / static_cast<float>(batch) * g;
  }
}

__global__ void memory_update_norms(int64_t dim, const float* __restrict__ bank, const int32_t* __restrict__ rows,
                                    const float* __restrict__ z, double keep, double take, double* __restrict__ norms) {
  __shared__ double shared[detail::kThreads];
  const int64_t i = blockIdx.x;
  const float* old_row = bank + int64_t{rows[i]} * dim;
  const float* new_row = z + i * dim;
  double squares = 0.0;
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    const double v = keep * old_row[d] + take * new_row[d];
    squares += v * v;
  }
  const double total = detail::block_sum(squares, shared);
  if (threadIdx.x == 0) norms[i] = sqrt(total);
}

// The norms in position order by one thread (count is a batch: small): the first bad one is the
// CPU's error, recorded in the deferred slot; `failed` then makes memory_update_rows skip itself.
__global__ void memory_update_verdict(int64_t count, const int32_t* __restrict__ rows, const double* __restrict__ norms,
                                      int32_t* __restrict__ failed, detail::DeferredError* slot) {
  for (int64_t i = 0; i < count; ++i) {
    const double norm = norms[i];
    if (!(isfinite(norm) && norm > 0.0)) {
      *failed = 1;
      detail::report_deferred(slot, detail::DeferredCheck::kBankRowNorm, detail::DeferredOp::kMemoryUpdate, rows[i], i,
                              norm);
      return;
    }
  }
  *failed = 0;
}

__global__ void memory_update_rows(int64_t dim, float* __restrict__ bank, const int32_t* __restrict__ rows,
                                   const float* __restrict__ z, double keep, double take,
                                   const double* __restrict__ norms, const int32_t* __restrict__ failed) {
  if (*failed) return;  // the verdict kernel found a bad norm: the bank stays as it was
  const int64_t i = blockIdx.x;
  float* old_row = bank + int64_t{rows[i]} * dim;
  const float* new_row = z + i * dim;
  const double norm = norms[i];
  for (int64_t d = threadIdx.x; d < dim; d += blockDim.x) {
    old_row[d] = static_cast<float>((keep * old_row[d] + take * new_row[d]) / norm);
  }
}

Status check_geometry(int64_t batch, int64_t columns, int64_t dim, int64_t bank_rows) {
  LMCL_CHECK_ARG(batch >= 0 && columns >= 0 && dim >= 0 && bank_rows >= 0,
                 "negative extent in [batch, columns, dim, bankRows] = " + describe_shape({batch, columns, dim, bank_rows}));
  return Status::ok();
}

Status check_queries(int64_t queries) {
  LMCL_CHECK_ARG(queries >= 1, "queries must be >= 1, got " + std::to_string(queries));
  return Status::ok();
}

Status check_scale(float scale) {
  LMCL_CHECK_ARG(std::isfinite(scale) && scale > 0.0f, "scale (1/temperature) must be finite and > 0, got " + std::to_string(scale));
  return Status::ok();
}

// Every (host) index in [0, bank_rows), the first bad position reported (as the CPU).
Status check_indices(int64_t count, const int32_t* indices, int64_t bank_rows) {
  for (int64_t e = 0; e < count; ++e) {
    if (indices[e] < 0 || indices[e] >= bank_rows) {
      return invalid_argument("index " + std::to_string(indices[e]) + " at position " + std::to_string(e) +
                              " is out of range for a bank of " + std::to_string(bank_rows) + " rows");
    }
  }
  return Status::ok();
}

unsigned int warp_blocks(int64_t entries) {
  return detail::blocks_for(entries * 32);  // one warp per entry, grid-stride beyond the cap
}

dim3 row_chunks(int64_t batch, int64_t dim) {
  return dim3(static_cast<unsigned int>(batch), static_cast<unsigned int>((dim + kChunk - 1) / kChunk));
}

}  // namespace

Status memory_logits_forward(int64_t queries, int64_t batch, int64_t columns, int64_t dim, int64_t bank_rows,
                             const float* query, const float* bank, IndexArray indices, float scale, float* logits) {
  LMCL_RETURN_IF_ERROR(check_queries(queries));
  LMCL_RETURN_IF_ERROR(check_geometry(batch, columns, dim, bank_rows));
  LMCL_RETURN_IF_ERROR(check_scale(scale));
  LMCL_RETURN_IF_ERROR(check_indices(batch * columns, indices.host, bank_rows));
  if (batch == 0 || columns == 0) return Status::ok();
  memory_logits<<<warp_blocks(batch * columns), detail::kThreads>>>(queries, batch, columns, dim, query, bank,
                                                                    indices.device, scale, logits);
  return detail::launch_status("memoryLogits");
}

// One launch per query (each re-reads the gathered rows; a shared-row version is still to write).
Status memory_logits_transpose(int64_t queries, int64_t batch, int64_t columns, int64_t dim, int64_t bank_rows,
                               const float* grad, const float* bank, IndexArray indices, float scale, float* out) {
  LMCL_RETURN_IF_ERROR(check_queries(queries));
  LMCL_RETURN_IF_ERROR(check_geometry(batch, columns, dim, bank_rows));
  LMCL_RETURN_IF_ERROR(check_scale(scale));
  LMCL_RETURN_IF_ERROR(check_indices(batch * columns, indices.host, bank_rows));
  if (batch == 0 || dim == 0) return Status::ok();
  for (int64_t q = 0; q < queries; ++q) {
    accumulate_bank_rows<<<row_chunks(batch, dim), detail::kThreads>>>(
        columns, dim, bank, indices.device, PlainCoefficient{grad + q * batch * columns, columns}, scale, out + q * batch * dim);
    LMCL_RETURN_IF_ERROR(detail::launch_status("memoryLogitsTranspose"));
  }
  return Status::ok();
}

Status memory_info_nce_forward(int64_t batch, int64_t columns, int64_t dim, int64_t bank_rows, int64_t positives,
                               const float* query, const float* bank, IndexArray indices, const float* weights,
                               float scale, float* loss, float* logits, float* stats) {
  LMCL_RETURN_IF_ERROR(check_geometry(batch, columns, dim, bank_rows));
  LMCL_RETURN_IF_ERROR(check_scale(scale));
  LMCL_CHECK_ARG(positives >= 1 && positives <= columns,
                 "positives must be in [1, columns = " + std::to_string(columns) + "], got " + std::to_string(positives));
  LMCL_CHECK_ARG(batch >= 1, "the batch must not be empty (the loss is a mean over it)");
  LMCL_RETURN_IF_ERROR(check_indices(batch * columns, indices.host, bank_rows));
  memory_info_nce_rows<<<static_cast<unsigned int>(batch), detail::kThreads>>>(columns, dim, positives, query, bank,
                                                                               indices.device, scale, logits, stats);
  LMCL_RETURN_IF_ERROR(detail::launch_status("memoryInfoNCE"));
  memory_info_nce_loss<<<1, detail::kThreads>>>(batch, weights, stats, loss);
  return detail::launch_status("memoryInfoNCE (loss)");
}

Status memory_info_nce_backward(int64_t batch, int64_t columns, int64_t dim, int64_t bank_rows, int64_t positives,
                                const float* bank, IndexArray indices, const float* logits, const float* stats,
                                const float* weights, const float* grad, float scale, float* grad_query,
                                float* grad_weights) {
  LMCL_RETURN_IF_ERROR(check_geometry(batch, columns, dim, bank_rows));
  LMCL_RETURN_IF_ERROR(check_scale(scale));
  LMCL_CHECK_ARG(positives >= 1 && positives <= columns,
                 "positives must be in [1, columns = " + std::to_string(columns) + "], got " + std::to_string(positives));
  LMCL_CHECK_ARG(batch >= 1, "the batch must not be empty (the loss is a mean over it)");
  LMCL_RETURN_IF_ERROR(check_indices(batch * columns, indices.host, bank_rows));
  if (grad_weights) {
    memory_grad_weights<<<detail::blocks_for(batch), detail::kThreads>>>(batch, stats, grad, grad_weights);
    LMCL_RETURN_IF_ERROR(detail::launch_status("memoryInfoNCE backward (weights)"));
  }
  if (!grad_query || dim == 0) return Status::ok();
  const InfoNceCoefficient c{logits, stats, weights, grad, batch, columns, positives};
  accumulate_bank_rows<<<row_chunks(batch, dim), detail::kThreads>>>(columns, dim, bank, indices.device, c, scale,
                                                                     grad_query);
  return detail::launch_status("memoryInfoNCE backward");
}

Status memory_update(int64_t bank_rows, int64_t dim, int64_t count, float* bank, IndexArray rows, const float* z,
                     double momentum) {
  LMCL_CHECK_ARG(bank_rows >= 0 && dim >= 0 && count >= 0,
                 "negative extent in [bankRows, dim, count] = " + describe_shape({bank_rows, dim, count}));
  LMCL_CHECK_ARG(momentum >= 0.0 && momentum <= 1.0, "momentum must be in [0, 1], got " + std::to_string(momentum));
  if (count == 0) return Status::ok();
  LMCL_CHECK_ARG(dim >= 1, "dim must be >= 1 to normalise rows, got " + std::to_string(dim));
  std::vector<unsigned char> seen(static_cast<size_t>(bank_rows), 0);
  for (int64_t i = 0; i < count; ++i) {
    const int32_t row = rows.host[i];
    LMCL_CHECK_ARG(row >= 0 && row < bank_rows, "row " + std::to_string(row) + " at position " + std::to_string(i) +
                                                    " is out of range for a bank of " + std::to_string(bank_rows) + " rows");
    LMCL_CHECK_ARG(!seen[row], "row " + std::to_string(row) + " appears more than once (at position " + std::to_string(i) +
                                   "); rows must be unique");
    seen[row] = 1;
  }
  // The norm check needs the device's values: it is deferred (common.cuh), so no host wait here.
  detail::DeferredError* slot = nullptr;
  LMCL_RETURN_IF_ERROR(detail::deferred_error_slot(&slot));
  detail::DeviceScratch norms(sizeof(double) * static_cast<size_t>(count) + sizeof(double));
  if (!norms.ok()) return norms.status();
  int32_t* failed = reinterpret_cast<int32_t*>(norms.doubles() + count);
  const double keep = momentum, take = 1.0 - momentum;
  memory_update_norms<<<static_cast<unsigned int>(count), detail::kThreads>>>(dim, bank, rows.device, z, keep, take,
                                                                              norms.doubles());
  LMCL_RETURN_IF_ERROR(detail::launch_status("memoryUpdate (norms)"));
  memory_update_verdict<<<1, 1>>>(count, rows.device, norms.doubles(), failed, slot);
  LMCL_RETURN_IF_ERROR(detail::launch_status("memoryUpdate (norm check)"));
  memory_update_rows<<<static_cast<unsigned int>(count), detail::kThreads>>>(dim, bank, rows.device, z, keep, take,
                                                                             norms.doubles(), failed);
  return detail::launch_status("memoryUpdate");
}

}  // namespace cuda
}  // namespace lmcl
