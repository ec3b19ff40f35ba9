// Memory-bank contrast (CPU): method.md §1.2 (MCL ImageNet) and §2.6 (L-MCL ImageNet).
//
//   logits     l[q, u, k] = s · ⟨bank[idx[u, k]], query[q, u]⟩,   s = 1/τ,   idx[u, k] = indices[u·K + k]
//   transpose  out[q, u]  = s · Σ_k g[q, u, k] · bank[idx[u, k]]      (the query gradient of the logits)
//   (q < Q: queries that share the batch's key rows — L-MCL's stage embeddings against one bank —
//   read each gathered row once for all of them; every (q, u, k) has the bits of a Q = 1 call)
//   InfoNCE    lse_u = log Σ_k exp(l[u, k]),  term_u = lse_u − (1/P) Σ_{k<P} l[u, k],
//              loss = (1/B) Σ_u w_u · term_u
//              c[u, k] = (w_u / B) · (exp(l[u, k] − lse_u) − [k < P] / P) · g,
//              d query[u] = s · Σ_k c[u, k] · bank[idx[u, k]],   d w_u = term_u / B · g
//   update     bank[r_i] ← v_i / ‖v_i‖₂,  v_i = m · bank[r_i] + (1 − m) · z[i]   (double; no epsilon)
// Layouts: query [Q, B, D], bank [M, D], indices int32 [B·K], logits / g [Q, B, K] (the InfoNCE:
// Q = 1), c [B, K], stats [B, 2] =
// (lse_u, term_u), z [R, D], rows int32 [R]; all contiguous row-major float32.
//
// The [B, K, D] gather is never materialised: every logit reads its bank row straight from the
// bank (software-prefetched a few entries ahead, since the rows are random and the hardware
// prefetcher cannot guess them: without it the transpose is ~4× slower), and the transposes
// accumulate the bank rows into one [D] output row per query. At the benchmark size (B = 256, K = 8194, D = 128, M = 100 000) one pass reads
// 1 GiB of bank rows out of a 51 MB bank (each row ~21 times): on the 2-core target VM the logits
// take ~25 ms (~43 GB/s) against ~10 ms when the bank fits in L2, the transpose ~24 ms.
// Tried and dropped: sorting the entries by bank block (a stable counting sort on idx >> 11, so
// each 1 MB block is processed while it sits in L2). The sort costs ~4.5 ms and the blocked pass
// ~22 ms, no faster than the direct one: the scattered logit writes and index reads it trades the
// random row reads for cost as much (the L3 here is large enough to hold the whole bank).
// Threads: the logits split the flat (u, k) entries into fixed chunks (balanced even for B = 1);
// the transposes and the InfoNCE split the rows u. Every output element is computed by one
// thread in a fixed order and the loss sums the rows in row order, so the bits do not depend on
// the thread count. Dots and sums use the 16-lane reductions of row_math.h (identical bits at
// every SIMD level; the bodies are compiled three times by LMCL_DEFINE_VARIANTS).
// Tested against float64 references that do the gather explicitly
// (test/reference/memory_bank_reference.ts) in test/ops/memory_bank.test.ts.
#include "lmcl/memory_bank.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "lmcl/allocator.h"
#include "lmcl/parallel.h"
#include "row_math.h"
#include "simd_variants.h"

namespace lmcl {
namespace cpu {
namespace {

// Entries ahead whose bank row is prefetched: enough to cover the memory latency with ~8 rows in
// flight per core, few enough that the rows are still in L1/L2 when they are used.
constexpr int64_t kPrefetchDistance = 8;
constexpr int64_t kGrainElements = 1 << 15;  // floats read per task, at least

#if defined(__GNUC__) || defined(__clang__)
LMCL_INLINE void prefetch_row(const float* row, int64_t dim) {
  for (int64_t offset = 0; offset < dim; offset += 16) __builtin_prefetch(row + offset);
}
#else
LMCL_INLINE void prefetch_row(const float*, int64_t) {}
#endif

// ---- logits --------------------------------------------------------------------------------------

struct LogitsArgs {
  int64_t queries, batch, columns, dim;
  const float* query;
  const float* bank;
  const int32_t* indices;
  float scale;
  float* logits;
};

// Four dots ⟨row_j, q⟩ at once (four independent chains share each load of q), each in exactly
// the order of row_dot (16 lanes, combine_sum, tail last): the bits equal row_dot's, so how the
// entries are grouped (chunk boundaries, row ends) never changes a logit.
LMCL_INLINE void row_dot4(const float* __restrict r0, const float* __restrict r1, const float* __restrict r2,
                          const float* __restrict r3, const float* __restrict q, int64_t n, float* __restrict out) {
  float l0[kLanes] = {0}, l1[kLanes] = {0}, l2[kLanes] = {0}, l3[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    LMCL_NO_UNROLL
    for (int lane = 0; lane < kLanes; ++lane) {
      const float x = q[i + lane];
      l0[lane] += r0[i + lane] * x;
      l1[lane] += r1[i + lane] * x;
      l2[lane] += r2[i + lane] * x;
      l3[lane] += r3[i + lane] * x;
    }
  }
  float t0 = 0.0f, t1 = 0.0f, t2 = 0.0f, t3 = 0.0f;
  for (; i < n; ++i) {
    t0 += r0[i] * q[i];
    t1 += r1[i] * q[i];
    t2 += r2[i] * q[i];
    t3 += r3[i] * q[i];
  }
  out[0] = combine_sum(l0) + t0;
  out[1] = combine_sum(l1) + t1;
  out[2] = combine_sum(l2) + t2;
  out[3] = combine_sum(l3) + t3;
}

// Logits of the flat entries [begin, end) (entry e = u·K + k), four at a time within a row; each
// group of gathered rows is dotted with every query q (its rows are in L1 after the first).
LMCL_INLINE void logit_entries(int64_t begin, int64_t end, const LogitsArgs& args) {
  const int64_t dim = args.dim, columns = args.columns, queries = args.queries;
  const int64_t query_stride = args.batch * dim, logits_stride = args.batch * columns;
  const float* bank = args.bank;
  const int32_t* __restrict indices = args.indices;
  for (int64_t e = begin; e < std::min(end, begin + kPrefetchDistance); ++e) prefetch_row(bank + indices[e] * dim, dim);
  int64_t e = begin;
  while (e < end) {
    const int64_t u = e / columns;
    const int64_t row_end = std::min(end, (u + 1) * columns);
    for (; e + 4 <= row_end; e += 4) {
      for (int64_t ahead = e + kPrefetchDistance; ahead < std::min(end, e + kPrefetchDistance + 4); ++ahead)
        prefetch_row(bank + indices[ahead] * dim, dim);
      for (int64_t q = 0; q < queries; ++q) {
        float* logits = args.logits + q * logits_stride + e;
        row_dot4(bank + indices[e] * dim, bank + indices[e + 1] * dim, bank + indices[e + 2] * dim,
                 bank + indices[e + 3] * dim, args.query + q * query_stride + u * dim, dim, logits);
        for (int64_t j = 0; j < 4; ++j) logits[j] *= args.scale;
      }
    }
    for (; e < row_end; ++e) {
      if (e + kPrefetchDistance < end) prefetch_row(bank + indices[e + kPrefetchDistance] * dim, dim);
      for (int64_t q = 0; q < queries; ++q)
        args.logits[q * logits_stride + e] = args.scale * row_dot(bank + indices[e] * dim, args.query + q * query_stride + u * dim, dim);
    }
  }
}

LMCL_INLINE void memory_logits_body(int64_t begin, int64_t end, const LogitsArgs& args) {
  logit_entries(begin, end, args);
}

LMCL_DEFINE_VARIANTS(memory_logits, LogitsArgs)

// ---- transposes: out[u] = s · Σ_k c[u, k] · bank[idx[u, k]] ---------------------------------------

// out_q (dim floats, q < queries, out_q = out + q·out_stride) = scale · Σ_k coefficients_q[k] ·
// bank[indices[k]] (coefficients_q = coefficients + q·coefficient_stride), k in order: each gathered
// row is read once for every q, and each out_q sees the same operations as with queries = 1.
LMCL_INLINE void accumulate_bank_rows(int64_t queries, const float* __restrict coefficients, int64_t coefficient_stride,
                                      const int32_t* __restrict indices, int64_t columns, const float* bank, int64_t dim,
                                      float scale, float* __restrict out, int64_t out_stride) {
  for (int64_t q = 0; q < queries; ++q)
    for (int64_t d = 0; d < dim; ++d) out[q * out_stride + d] = 0.0f;
  for (int64_t k = 0; k < std::min(columns, kPrefetchDistance); ++k) prefetch_row(bank + indices[k] * dim, dim);
  for (int64_t k = 0; k < columns; ++k) {
    if (k + kPrefetchDistance < columns) prefetch_row(bank + indices[k + kPrefetchDistance] * dim, dim);
    const float* __restrict row = bank + indices[k] * dim;
    for (int64_t q = 0; q < queries; ++q) {
      const float c = coefficients[q * coefficient_stride + k];
      float* __restrict target = out + q * out_stride;
      for (int64_t d = 0; d < dim; ++d) target[d] += c * row[d];
    }
  }
  for (int64_t q = 0; q < queries; ++q)
    for (int64_t d = 0; d < dim; ++d) out[q * out_stride + d] *= scale;
}

struct TransposeArgs {
  int64_t queries, batch, columns, dim;
  const float* grad;
  const float* bank;
  const int32_t* indices;
  float scale;
  float* out;
};

LMCL_INLINE void memory_transpose_body(int64_t begin, int64_t end, const TransposeArgs& args) {
  for (int64_t u = begin; u < end; ++u) {
    accumulate_bank_rows(args.queries, args.grad + u * args.columns, args.batch * args.columns, args.indices + u * args.columns,
                         args.columns, args.bank, args.dim, args.scale, args.out + u * args.dim, args.batch * args.dim);
  }
}

LMCL_DEFINE_VARIANTS(memory_transpose, TransposeArgs)

// ---- InfoNCE -------------------------------------------------------------------------------------

struct InfoNceArgs {
  int64_t batch, columns, dim, positives;
  const float* query;
  const float* bank;
  const int32_t* indices;
  const float* weights;  // null: w ≡ 1
  float scale;
  float* logits;
  float* stats;          // forward writes, backward reads: (lse_u, term_u)
  // backward
  float grad;
  float* coefficients;   // one [columns] row per chunk
  float* grad_query;
  float* grad_weights;
};

LMCL_INLINE void memory_info_nce_forward_body(int64_t begin, int64_t end, const InfoNceArgs& args) {
  const int64_t columns = args.columns;
  const LogitsArgs logits{1, args.batch, columns, args.dim, args.query, args.bank, args.indices, args.scale, args.logits};
  for (int64_t u = begin; u < end; ++u) {
    logit_entries(u * columns, (u + 1) * columns, logits);
    const float* __restrict x = args.logits + u * columns;
    const float m = row_max(x, columns);
    const float log_sum = std::log(row_exp_sum(x, m, columns, nullptr));
    float positive_sum = 0.0f;
    for (int64_t k = 0; k < args.positives; ++k) positive_sum += x[k] - m;
    args.stats[2 * u] = m + log_sum;
    args.stats[2 * u + 1] = log_sum - positive_sum / static_cast<float>(args.positives);
  }
}

LMCL_INLINE void memory_info_nce_backward_body(int64_t chunk, int64_t begin, int64_t end, const InfoNceArgs& args) {
  const int64_t columns = args.columns;
  float* __restrict c = args.coefficients + chunk * columns;
  const float inverse_batch = 1.0f / static_cast<float>(args.batch);
  const float positive_share = 1.0f / static_cast<float>(args.positives);
  for (int64_t u = begin; u < end; ++u) {
    const float* __restrict x = args.logits + u * columns;
    const float lse = args.stats[2 * u];
    const float weight = args.weights ? args.weights[u] : 1.0f;
    const float factor = weight * inverse_batch * args.grad;
    for (int64_t k = 0; k < columns; ++k) c[k] = exp_approx(x[k] - lse) * factor;
    for (int64_t k = 0; k < args.positives; ++k) c[k] = (exp_approx(x[k] - lse) - positive_share) * factor;
    accumulate_bank_rows(1, c, 0, args.indices + u * columns, columns, args.bank, args.dim, args.scale,
                         args.grad_query + u * args.dim, 0);
  }
}

// The chunked body has an extra argument, so it gets its own three variants.
LMCL_DEFINE_CHUNK_VARIANTS(memory_info_nce_backward, InfoNceArgs)

LMCL_DEFINE_VARIANTS(memory_info_nce_forward, InfoNceArgs)

// ---- checks --------------------------------------------------------------------------------------

Status check_geometry(int64_t batch, int64_t columns, int64_t dim, int64_t bank_rows) {
  LMCL_CHECK_ARG(batch >= 0 && columns >= 0 && dim >= 0 && bank_rows >= 0,
                 "negative extent in [batch, columns, dim, bankRows] = " + describe_shape({batch, columns, dim, bank_rows}));
  return Status::ok();
}

Status check_scale(float scale) {
  LMCL_CHECK_ARG(std::isfinite(scale) && scale > 0.0f, "scale (1/temperature) must be finite and > 0, got " + std::to_string(scale));
  return Status::ok();
}

// Every index in [0, bank_rows): checked in parallel chunks, the first bad position reported.
Status check_indices(int64_t count, const int32_t* indices, int64_t bank_rows) {
  if (count == 0) return Status::ok();
  const int64_t grain = 1 << 16;
  const int64_t chunks = chunk_count_for(0, count, grain);
  ScratchBuffer scratch(sizeof(int64_t) * static_cast<size_t>(chunks));
  if (!scratch.ok()) return out_of_memory("index check workspace");
  int64_t* first_bad = static_cast<int64_t*>(scratch.data());
  parallel_for_chunks(0, count, grain, [&](int64_t chunk, int64_t begin, int64_t end) {
    first_bad[chunk] = -1;
    for (int64_t e = begin; e < end; ++e) {
      if (indices[e] < 0 || indices[e] >= bank_rows) {
        first_bad[chunk] = e;
        return;
      }
    }
  });
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t e = first_bad[chunk];
    if (e >= 0) {
      return invalid_argument("index " + std::to_string(indices[e]) + " at position " + std::to_string(e) +
                              " is out of range for a bank of " + std::to_string(bank_rows) + " rows");
    }
  }
  return Status::ok();
}

int64_t grain_for(int64_t floats_per_task) {
  return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, floats_per_task));
}

Status check_queries(int64_t queries) {
  LMCL_CHECK_ARG(queries >= 1, "queries must be >= 1, got " + std::to_string(queries));
  return Status::ok();
}

}  // namespace

Status memory_logits_forward(int64_t queries, int64_t batch, int64_t columns, int64_t dim, int64_t bank_rows,
                             const float* query, const float* bank, IndexArray indices_array, float scale, float* logits) {
  const int32_t* indices = indices_array.host;
  LMCL_RETURN_IF_ERROR(check_queries(queries));
  LMCL_RETURN_IF_ERROR(check_geometry(batch, columns, dim, bank_rows));
  LMCL_RETURN_IF_ERROR(check_scale(scale));
  LMCL_RETURN_IF_ERROR(check_indices(batch * columns, indices, bank_rows));
  if (batch == 0 || columns == 0) return Status::ok();
  LogitsArgs args{queries, batch, columns, dim, query, bank, indices, scale, logits};
  auto body = memory_logits_pick();
  parallel_for(0, batch * columns, grain_for(queries * dim), [&](int64_t begin, int64_t end) { body(begin, end, args); });
  return Status::ok();
}

Status memory_logits_transpose(int64_t queries, int64_t batch, int64_t columns, int64_t dim, int64_t bank_rows,
                               const float* grad, const float* bank, IndexArray indices_array, float scale, float* out) {
  const int32_t* indices = indices_array.host;
  LMCL_RETURN_IF_ERROR(check_queries(queries));
  LMCL_RETURN_IF_ERROR(check_geometry(batch, columns, dim, bank_rows));
  LMCL_RETURN_IF_ERROR(check_scale(scale));
  LMCL_RETURN_IF_ERROR(check_indices(batch * columns, indices, bank_rows));
  if (batch == 0 || dim == 0) return Status::ok();
  TransposeArgs args{queries, batch, columns, dim, grad, bank, indices, scale, out};
  auto body = memory_transpose_pick();
  parallel_for(0, batch, grain_for(queries * columns * dim), [&](int64_t begin, int64_t end) { body(begin, end, args); });
  return Status::ok();
}

Status memory_info_nce_forward(int64_t batch, int64_t columns, int64_t dim, int64_t bank_rows, int64_t positives,
                               const float* query, const float* bank, IndexArray indices_array, const float* weights,
                               float scale, float* loss, float* logits, float* stats) {
  const int32_t* indices = indices_array.host;
  LMCL_RETURN_IF_ERROR(check_geometry(batch, columns, dim, bank_rows));
  LMCL_RETURN_IF_ERROR(check_scale(scale));
  LMCL_CHECK_ARG(positives >= 1 && positives <= columns,
                 "positives must be in [1, columns = " + std::to_string(columns) + "], got " + std::to_string(positives));
  LMCL_CHECK_ARG(batch >= 1, "the batch must not be empty (the loss is a mean over it)");
  LMCL_RETURN_IF_ERROR(check_indices(batch * columns, indices, bank_rows));
  InfoNceArgs args{batch, columns, dim, positives, query, bank, indices, weights, scale, logits, stats,
                   0.0f, nullptr, nullptr, nullptr};
  auto body = memory_info_nce_forward_pick();
  parallel_for(0, batch, grain_for(columns * dim), [&](int64_t begin, int64_t end) { body(begin, end, args); });
  // (1/B) Σ_u w_u · term_u, rows in order (the same bits for every thread count).
  float total = 0.0f;
  for (int64_t u = 0; u < batch; ++u) total += (weights ? weights[u] : 1.0f) * stats[2 * u + 1];
  loss[0] = total / static_cast<float>(batch);
  return Status::ok();
}

Status memory_info_nce_backward(int64_t batch, int64_t columns, int64_t dim, int64_t bank_rows, int64_t positives,
                                const float* bank, IndexArray indices_array, const float* logits, const float* stats,
                                const float* weights, const float* grad, float scale, float* grad_query,
                                float* grad_weights) {
  const int32_t* indices = indices_array.host;
  LMCL_RETURN_IF_ERROR(check_geometry(batch, columns, dim, bank_rows));
  LMCL_RETURN_IF_ERROR(check_scale(scale));
  LMCL_CHECK_ARG(positives >= 1 && positives <= columns,
                 "positives must be in [1, columns = " + std::to_string(columns) + "], got " + std::to_string(positives));
  LMCL_CHECK_ARG(batch >= 1, "the batch must not be empty (the loss is a mean over it)");
  LMCL_RETURN_IF_ERROR(check_indices(batch * columns, indices, bank_rows));
  const float g = grad[0];
  if (grad_weights) {
    for (int64_t u = 0; u < batch; ++u) grad_weights[u] = stats[2 * u + 1] / static_cast<float>(batch) * g;
  }
  if (!grad_query || dim == 0) return Status::ok();
  const int64_t grain = grain_for(columns * dim);
  const int64_t chunks = chunk_count_for(0, batch, grain);
  ScratchBuffer scratch(sizeof(float) * static_cast<size_t>(chunks * columns));
  if (!scratch.ok()) return out_of_memory("memoryInfoNCE backward workspace of " + std::to_string(chunks * columns) + " floats");
  InfoNceArgs args{batch, columns, dim, positives, nullptr, bank, indices, weights, scale, const_cast<float*>(logits),
                   const_cast<float*>(stats), g, scratch.floats(), grad_query, grad_weights};
  auto body = memory_info_nce_backward_pick();
  parallel_for_chunks(0, batch, grain, [&](int64_t chunk, int64_t begin, int64_t end) { body(chunk, begin, end, args); });
  return Status::ok();
}

Status memory_update(int64_t bank_rows, int64_t dim, int64_t count, float* bank, IndexArray rows_array, const float* z,
                     double momentum) {
  const int32_t* rows = rows_array.host;
  LMCL_CHECK_ARG(bank_rows >= 0 && dim >= 0 && count >= 0,
                 "negative extent in [bankRows, dim, count] = " + describe_shape({bank_rows, dim, count}));
  LMCL_CHECK_ARG(momentum >= 0.0 && momentum <= 1.0, "momentum must be in [0, 1], got " + std::to_string(momentum));
  if (count == 0) return Status::ok();
  // dim 0 would make every row 0/0, and would let bank_rows (sized below) escape the storage check.
  LMCL_CHECK_ARG(dim >= 1, "dim must be >= 1 to normalise rows, got " + std::to_string(dim));
  // Rows in range and unique (rows updated in parallel must not alias), before any write.
  ScratchBuffer seen_buffer(static_cast<size_t>(bank_rows));
  ScratchBuffer norm_buffer(sizeof(double) * static_cast<size_t>(count));
  if (!seen_buffer.ok() || !norm_buffer.ok()) return out_of_memory("memoryUpdate workspace");
  unsigned char* seen = static_cast<unsigned char*>(seen_buffer.data());
  if (bank_rows > 0) std::memset(seen, 0, static_cast<size_t>(bank_rows));
  for (int64_t i = 0; i < count; ++i) {
    const int32_t row = rows[i];
    LMCL_CHECK_ARG(row >= 0 && row < bank_rows, "row " + std::to_string(row) + " at position " + std::to_string(i) +
                                                    " is out of range for a bank of " + std::to_string(bank_rows) + " rows");
    LMCL_CHECK_ARG(!seen[row], "row " + std::to_string(row) + " appears more than once (at position " + std::to_string(i) +
                                   "); rows must be unique");
    seen[row] = 1;
  }
  const double keep = momentum, take = 1.0 - momentum;
  double* norms = static_cast<double*>(norm_buffer.data());
  const int64_t grain = grain_for(dim);
  parallel_for(0, count, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* old_row = bank + static_cast<int64_t>(rows[i]) * dim;
      const float* new_row = z + i * dim;
      double squares = 0.0;
      for (int64_t d = 0; d < dim; ++d) {
        const double v = keep * old_row[d] + take * new_row[d];
        squares += v * v;
      }
      norms[i] = std::sqrt(squares);
    }
  });
  for (int64_t i = 0; i < count; ++i) {
    LMCL_CHECK_ARG(std::isfinite(norms[i]) && norms[i] > 0.0,
                   "the updated bank row " + std::to_string(rows[i]) + " (position " + std::to_string(i) + ") has norm " +
                       std::to_string(norms[i]) + "; normalising it would write a non-finite row (the bank is unchanged)");
  }
  parallel_for(0, count, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* old_row = bank + static_cast<int64_t>(rows[i]) * dim;
      const float* new_row = z + i * dim;
      for (int64_t d = 0; d < dim; ++d) old_row[d] = static_cast<float>((keep * old_row[d] + take * new_row[d]) / norms[i]);
    }
  });
  return Status::ok();
}

}  // namespace cpu
}  // namespace lmcl
