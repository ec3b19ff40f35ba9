// Memory-bank contrast kernels (method.md §1.2, §2.6): logits of queries against gathered rows of
// a memory bank, the fused InfoNCE over them, and the momentum update of bank rows. Float32,
// contiguous row-major; every kernel overwrites its outputs. See native/src/cpu/memory_bank.cpp.
//
// Shapes: query [batch, dim] (the logits: [queries, batch, dim]), bank [bank_rows, dim], indices
// int32 [batch · columns] (row u's columns are indices[u·columns .. (u+1)·columns)), logits
// [batch, columns] (the logits: [queries, batch, columns]). Every index must be
// in [0, bank_rows); the kernels check that before any work and return an error naming the first
// bad one (position order), so they never read outside the bank.
#pragma once

#include <cstdint>

#include "lmcl/index_array.h"
#include "lmcl/status.h"

namespace lmcl {

namespace cpu {

// logits[q, u, k] = scale · ⟨bank[indices[u·K + k]], query[q, u]⟩   (scale = 1/τ; no [B, K, D] gather)
// query [queries, batch, dim], logits [queries, batch, columns]: queries ≥ 1 embeddings of the
// same batch items share its key rows, and each gathered row is read once for all of them; every
// logit has the bits of a queries = 1 call on its own query.
Status memory_logits_forward(int64_t queries, int64_t batch, int64_t columns, int64_t dim, int64_t bank_rows,
                             const float* query, const float* bank, IndexArray indices, float scale, float* logits);

// The transpose (the query gradient of memory_logits_forward):
//   out[q, u] = scale · Σ_k grad[q, u, k] · bank[indices[u·K + k]]     (grad [queries, batch, columns],
//   out [queries, batch, dim]; again each out[q, u] has the bits of a queries = 1 call)
Status memory_logits_transpose(int64_t queries, int64_t batch, int64_t columns, int64_t dim, int64_t bank_rows,
                               const float* grad, const float* bank, IndexArray indices, float scale, float* out);

// Fused InfoNCE over memory logits, with P = positives (1 <= P <= K) and weights w (null: w ≡ 1):
//   logits[u, k] as memory_logits_forward                         ([batch, columns], kept for backward)
//   stats[u] = (lse_u = log Σ_k exp(logits[u, k]),  term_u = −(1/P) Σ_{k<P} (logits[u, k] − lse_u))
//   loss = (1/B) Σ_u w_u · term_u                                 (1 float)
Status memory_info_nce_forward(int64_t batch, int64_t columns, int64_t dim, int64_t bank_rows, int64_t positives,
                               const float* query, const float* bank, IndexArray indices, const float* weights,
                               float scale, float* loss, float* logits, float* stats);

// Its backward for the scalar upstream gradient g (*grad), from the forward's logits and stats:
//   c[u, k]        = (w_u / B) · (exp(logits[u, k] − lse_u) − [k < P] / P) · g
//   grad_query[u]  = scale · Σ_k c[u, k] · bank[indices[u·K + k]]          (skipped when null)
//   grad_weights[u] = term_u / B · g                                         (skipped when null)
Status memory_info_nce_backward(int64_t batch, int64_t columns, int64_t dim, int64_t bank_rows, int64_t positives,
                                const float* bank, IndexArray indices, const float* logits, const float* stats,
                                const float* weights, const float* grad, float scale, float* grad_query,
                                float* grad_weights);

// In place: bank[rows[i]] ← normalize(momentum · bank[rows[i]] + (1 − momentum) · z[i]) for i < count,
// normalize(x) = x / ‖x‖₂ with no epsilon (the mix and the norm in double precision). Rows must be
// in [0, bank_rows) and unique, momentum in [0, 1]; a mixed row whose norm is 0 or not finite is an
// error naming it. Everything is checked before the first write: on error the bank is unchanged.
Status memory_update(int64_t bank_rows, int64_t dim, int64_t count, float* bank, IndexArray rows, const float* z,
                     double momentum);

}  // namespace cpu

}  // namespace lmcl
