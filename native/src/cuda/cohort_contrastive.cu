// The L-MCL contrastive terms of every listed embedding pair in one fused call (CUDA). The
// reference is lmcl::cpu::cohort_contrastive_forward / cohort_contrastive_backward
// (native/src/cpu/cohort_contrastive.cpp, contract in native/include/lmcl/cohort_contrastive.h,
// row formulas in native/src/cpu/contrastive_rows.h); the parity cases are
// native/test/cases/cohort_contrastive.cpp.
//
// For pair p = (a, b), L_ij = z_i·z_jᵀ/τ, per-anchor weights w_p:
//   VCL = ℓ(L_aa) + ℓ(L_bb), ICL = ℓ(L_ab) + ℓ(L_ba),
//   SoftVCL = KL(L_aa ‖ sg L_bb) + KL(L_bb ‖ sg L_aa), SoftICL = KL(L_ab ‖ sg L_ba) + KL(L_ba ‖ sg L_ab)
// with ℓ the supervised InfoNCE row term (infonce.h; the block's diagonal column left out) and KL
// the all-column row KL at 1/(τ·T) (contrastive_kl.h).
// Layouts, as the CPU (the forward's outputs are the backward's inputs, so they must match bit for
// bit in meaning): embeddings and their gradients are HOST arrays of `count` device pointers to
// [B, D] (uploaded here as pointer tables); labels int32 [B] are an IndexArray (the kernels read
// its device side; the plan's |P_u| come from its host side); pairs int32 [P, 2] are a HOST array
// (a JavaScript Int32Array in the binding), validated on the host and staged with DeviceScratch
// together with the plan derived from them; weights and ∂weights [P, B] (weights may
// be null); out and grad_output [P, 4] on the device; softmax and probabilities [E·B, E·B] (only the
// blocks the pairs use are written); stats = per ordered block x = i·E + j the rows lse_off, term,
// lse_all ([3, E², B]), then per distinct KL term k its KL row.
//
// The plan (which blocks, which distinct KL terms, per pair the 4 blocks and 4 KL terms) is the
// CPU's make_plan, repeated here on the host with the same ordering and messages.
// Forward:
//  1. one 256-thread block per (used ordered block x, row u): 8 warps over the columns v, each dot
//     z_i[u]·z_j[v] by one warp (fixed shuffle tree), written to a similarity scratch row (the CPU
//     keeps the same [E·B, E·B] scratch), the off-diagonal lse at 1/τ, the positive sum and the
//     all-column lse at 1/(τT) kept online and merged in warp order; then the block writes its
//     softmax row (diagonal 0) and probability row from the scratch row.
//  2. one block per (KL term, row): KL_u = s·Σ_v q_teacher(T − S) + lse_S − lse_T from the stored
//     teacher probabilities (a fixed block tree).
//  3. one block per pair: the four weighted sums over u in double (fixed tree).
// Backward:
//  1. ∂w (thread per (p, u)); the summed coefficients A_x[u] and C_k[u] (thread per entry, pairs in
//     order, as the CPU).
//  2. one block per (used block, row): the gradient row ∂S_x[u, ·] from the stored softmaxes into
//     an [E·B, E·B] scratch (the CPU's gradient scratch).
//  3. ∂z_i[u] = Σ_{j used} Σ_v (∂S[(i,u),(j,v)] + ∂S[(j,v),(i,u)])·z_j[v]: one block per (row, up
//     to 256 floats of D), a thread per output float (coalesced z reads, the ∂S entries broadcast).
// Deterministic: every output has one writer and fixed-order sums; no float atomics.
// Bound: compute in the similarity pass (E·B·B·D per used block), memory in the others.
#include <array>
#include <cmath>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common.cuh"
#include "lmcl/cuda_ops.h"

namespace lmcl {
namespace cuda {
namespace {

using detail::warp_dot;
using detail::warp_sum;

constexpr int kWarps = detail::kThreads / 32;

struct Lse {
  float maximum, total;
};

__device__ inline void add_logit(Lse& state, float x) {
  if (x > state.maximum) {
    state.total = state.total * expf(state.maximum - x) + 1.0f;
    state.maximum = x;
  } else {
    state.total += expf(x - state.maximum);
  }
}

__device__ inline Lse merge(Lse a, Lse b) {
  const float m = fmaxf(a.maximum, b.maximum);
  return {m, (a.maximum == -INFINITY ? 0.0f : a.total * expf(a.maximum - m)) +
                 (b.maximum == -INFINITY ? 0.0f : b.total * expf(b.maximum - m))};
}

__device__ inline float lse_of(Lse s) { return s.maximum == -INFINITY ? -INFINITY : s.maximum + logf(s.total); }

// Device view of the plan and the staged host arrays (offsets into one int32 table).
struct Plan {
  int64_t count, batch, dim, width;  // width = count·batch
  float info_scale, kl_scale;
  const int32_t* needed;          // [E²]
  const int32_t* ordered_blocks;  // [X]
  const int32_t* kl_terms;        // [K, 2] (student block, teacher block)
  const int32_t* pair_blocks;     // [P, 4]
  const int32_t* pair_kl;         // [P, 4]
  const int32_t* term_offsets;    // [E² + 1]: KL terms with block x as student
  const int32_t* term_list;       // [K]
  const int32_t* labels;          // [B]
  const int32_t* positives;       // [B]
  const float* const* embeddings;  // [E] device pointers
  float* stats;
  __device__ float* lse_off(int32_t x) const { return stats + x * batch; }
  __device__ float* term(int32_t x) const { return stats + (count * count + x) * batch; }
  __device__ float* lse_all(int32_t x) const { return stats + (2 * count * count + x) * batch; }
  __device__ float* kl(int32_t k) const { return stats + (3 * count * count + k) * batch; }
  // Offset of row u of block x in a [width, width] matrix.
  __device__ int64_t row(int32_t x, int64_t u) const {
    return (x / count * batch + u) * width + (x % count) * batch;
  }
};

struct RowState {
  Lse off, all;
  float positive;
};

__global__ void cohort_row_stats(Plan plan, float* __restrict__ similarity, float* __restrict__ softmax,
                                 float* __restrict__ probabilities) {
  __shared__ RowState warp_states[kWarps];
  __shared__ float row_lse[2];
  const int64_t n = plan.batch;
  const int32_t x = plan.ordered_blocks[blockIdx.x / n];
  const int64_t u = blockIdx.x % n;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const float* zi = plan.embeddings[x / plan.count] + u * plan.dim;
  const float* zj = plan.embeddings[x % plan.count];
  const int32_t label = plan.labels[u];
  const int64_t offset = plan.row(x, u);
  RowState state{{-INFINITY, 0.0f}, {-INFINITY, 0.0f}, 0.0f};
  for (int64_t v = warp; v < n; v += kWarps) {
    const float dot = warp_dot(zi, zj + v * plan.dim, plan.dim, lane);
    if (lane == 0) similarity[offset + v] = dot;
    add_logit(state.all, plan.kl_scale * dot);
    if (v == u) continue;
    add_logit(state.off, plan.info_scale * dot);
    if (plan.labels[v] == label) state.positive += dot;
  }
  if (lane == 0) warp_states[warp] = state;
  __syncthreads();
  if (threadIdx.x == 0) {
    RowState row = warp_states[0];
    for (int w = 1; w < kWarps; ++w) {
      row.off = merge(row.off, warp_states[w].off);
      row.all = merge(row.all, warp_states[w].all);
      row.positive += warp_states[w].positive;
    }
    const float lse = lse_of(row.off);
    const int32_t count = plan.positives[u];
    plan.lse_off(x)[u] = lse;
    plan.term(x)[u] = count > 0 ? lse - plan.info_scale * row.positive / static_cast<float>(count) : 0.0f;
    plan.lse_all(x)[u] = lse_of(row.all);
    row_lse[0] = lse;
    row_lse[1] = lse_of(row.all);
  }
  __syncthreads();  // also orders this block's similarity writes before the reads below
  const float lse = row_lse[0], lse_all = row_lse[1];
  for (int64_t v = threadIdx.x; v < n; v += blockDim.x) {
    const float s = similarity[offset + v];
    softmax[offset + v] = (v != u && lse != -INFINITY) ? expf(plan.info_scale * s - lse) : 0.0f;
    probabilities[offset + v] = expf(plan.kl_scale * s - lse_all);
  }
}

__global__ void cohort_kl_rows(Plan plan, const float* __restrict__ similarity, const float* __restrict__ probabilities) {
  __shared__ float shared[detail::kThreads];
  const int64_t n = plan.batch;
  const int32_t k = static_cast<int32_t>(blockIdx.x / n);
  const int64_t u = blockIdx.x % n;
  const int32_t student = plan.kl_terms[2 * k], teacher = plan.kl_terms[2 * k + 1];
  const float* s = similarity + plan.row(student, u);
  const float* t = similarity + plan.row(teacher, u);
  const float* q = probabilities + plan.row(teacher, u);
  float partial = 0.0f;
  for (int64_t v = threadIdx.x; v < n; v += blockDim.x) partial += q[v] * (t[v] - s[v]);
  const float total = detail::block_sum(partial, shared);
  if (threadIdx.x == 0) {
    plan.kl(k)[u] = plan.kl_scale * total + (plan.lse_all(student)[u] - plan.lse_all(teacher)[u]);
  }
}

__global__ void cohort_pair_outputs(Plan plan, const float* __restrict__ weights, double info_divisor, double kl_factor,
                                    float* __restrict__ out) {
  __shared__ double shared[detail::kThreads];
  const int64_t p = blockIdx.x, n = plan.batch;
  const int32_t* blocks = plan.pair_blocks + 4 * p;
  const int32_t* kl = plan.pair_kl + 4 * p;
  double partial[4] = {0.0, 0.0, 0.0, 0.0};
  for (int64_t u = threadIdx.x; u < n; u += blockDim.x) {
    const double weight = weights ? weights[p * n + u] : 1.0;
    partial[0] += weight * (static_cast<double>(plan.term(blocks[0])[u]) + plan.term(blocks[1])[u]);
    partial[1] += weight * (static_cast<double>(plan.term(blocks[2])[u]) + plan.term(blocks[3])[u]);
    partial[2] += weight * (static_cast<double>(plan.kl(kl[0])[u]) + plan.kl(kl[1])[u]);
    partial[3] += weight * (static_cast<double>(plan.kl(kl[2])[u]) + plan.kl(kl[3])[u]);
  }
  double total[4];
  for (int t = 0; t < 4; ++t) total[t] = detail::block_sum(partial[t], shared);
  if (threadIdx.x == 0) {
    out[4 * p] = static_cast<float>(total[0] / info_divisor);
    out[4 * p + 1] = static_cast<float>(total[1] / info_divisor);
    out[4 * p + 2] = static_cast<float>(total[2] * kl_factor);
    out[4 * p + 3] = static_cast<float>(total[3] * kl_factor);
  }
}

__global__ void cohort_grad_weights(Plan plan, int64_t pair_count, const float* __restrict__ grad_output,
                                    float info_divisor, float kl_factor, float* __restrict__ grad_weights) {
  const int64_t n = plan.batch, total = pair_count * n;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total; e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t p = e / n, u = e % n;
    const int32_t* blocks = plan.pair_blocks + 4 * p;
    const int32_t* kl = plan.pair_kl + 4 * p;
    const float* g = grad_output + 4 * p;
    grad_weights[e] = (g[0] * (plan.term(blocks[0])[u] + plan.term(blocks[1])[u]) +
                       g[1] * (plan.term(blocks[2])[u] + plan.term(blocks[3])[u])) / info_divisor +
                      (g[2] * (plan.kl(kl[0])[u] + plan.kl(kl[1])[u]) + g[3] * (plan.kl(kl[2])[u] + plan.kl(kl[3])[u])) *
                          kl_factor;
  }
}

// info[x·B + u] = info_factor·Σ_{p,t: blocks_p[t] = x} g[p, t/2]·w_p[u];
// kl[k·B + u]   = kl_factor·Σ_{p,t: kl_p[t] = k} g[p, 2 + t/2]·w_p[u]   (pairs, then t, in order).
__global__ void cohort_coefficients(Plan plan, int64_t pair_count, int64_t terms, const float* __restrict__ weights,
                                    const float* __restrict__ grad_output, float info_factor, float kl_factor,
                                    float* __restrict__ info, float* __restrict__ kl) {
  const int64_t n = plan.batch, blocks = plan.count * plan.count;
  const int64_t total = (blocks + terms) * n;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total; e += int64_t{gridDim.x} * blockDim.x) {
    const bool is_info = e < blocks * n;
    const int64_t entry = is_info ? e / n : e / n - blocks, u = e % n;
    const int32_t* table = is_info ? plan.pair_blocks : plan.pair_kl;
    const int first_g = is_info ? 0 : 2;
    float sum = 0.0f;
    for (int64_t p = 0; p < pair_count; ++p) {
      const float weight = weights ? weights[p * n + u] : 1.0f;
      for (int t = 0; t < 4; ++t) {
        if (table[4 * p + t] == entry) sum += grad_output[4 * p + first_g + t / 2] * weight;
      }
    }
    if (is_info) info[entry * n + u] = sum * info_factor;
    else kl[entry * n + u] = sum * kl_factor;
  }
}

// ∂S_x[u, ·] = A·(softmax − [label]/|P_u|) (diagonal 0; 0 without positives)
//              + (Σ_k C_k)·p_x[u] − Σ_k C_k·q_{y_k}[u]   (KL terms k with x as student)
__global__ void cohort_gradient_rows(Plan plan, const float* __restrict__ softmax, const float* __restrict__ probabilities,
                                     const float* __restrict__ info, const float* __restrict__ kl,
                                     float* __restrict__ gradient) {
  const int64_t n = plan.batch;
  const int32_t x = plan.ordered_blocks[blockIdx.x / n];
  const int64_t u = blockIdx.x % n;
  const int64_t offset = plan.row(x, u);
  const int32_t count = plan.positives[u], label = plan.labels[u];
  const float a = info[x * n + u];
  const float share = count > 0 ? 1.0f / static_cast<float>(count) : 0.0f;
  const int32_t first = plan.term_offsets[x], last = plan.term_offsets[x + 1];
  float student_total = 0.0f;
  for (int32_t i = first; i < last; ++i) student_total += kl[plan.term_list[i] * n + u];
  for (int64_t v = threadIdx.x; v < n; v += blockDim.x) {
    float value = 0.0f;
    if (count > 0 && v != u) value = a * (softmax[offset + v] - (plan.labels[v] == label ? share : 0.0f));
    if (first < last) {
      value += student_total * probabilities[offset + v];
      for (int32_t i = first; i < last; ++i) {
        const int32_t k = plan.term_list[i];
        value += -kl[k * n + u] * probabilities[plan.row(plan.kl_terms[2 * k + 1], u) + v];
      }
    }
    gradient[offset + v] = value;
  }
}

// ∂z_i[u, d] = Σ_{j used} Σ_v (∂S[r, c] + ∂S[c, r])·z_j[v, d], r = (i, u), c = (j, v).
__global__ void cohort_embedding_gradients(Plan plan, const float* __restrict__ gradient, float* const* grad_embeddings) {
  const int64_t n = plan.batch, width = plan.width;
  const int64_t r = blockIdx.x;
  const int64_t i = r / n, u = r % n;
  float* out = grad_embeddings[i];
  const int64_t d = int64_t{blockIdx.y} * blockDim.x + threadIdx.x;
  if (!out || d >= plan.dim) return;
  float total = 0.0f;
  for (int64_t j = 0; j < plan.count; ++j) {
    if (!plan.needed[i * plan.count + j]) continue;
    const float* z = plan.embeddings[j];
    for (int64_t v = 0; v < n; ++v) {
      const int64_t c = j * n + v;
      const float h = gradient[r * width + c] + gradient[c * width + r];
      total += h * z[v * plan.dim + d];
    }
  }
  out[u * plan.dim + d] = total;
}

Status check_arguments(int64_t count, int64_t batch, int64_t dim, int64_t pair_count, float temperature,
                       float kl_temperature) {
  LMCL_CHECK_ARG(count >= 0 && batch >= 0 && dim >= 0 && pair_count >= 0,
                 "negative extent in embeddings " + describe_shape({count, batch, dim}) + " or pair count " +
                     std::to_string(pair_count));
  LMCL_CHECK_ARG(std::isfinite(temperature) && temperature > 0.0f,
                 "temperature must be a finite number > 0, got " + std::to_string(temperature));
  LMCL_CHECK_ARG(std::isfinite(kl_temperature) && kl_temperature > 0.0f,
                 "klTemperature must be a finite number > 0, got " + std::to_string(kl_temperature));
  return Status::ok();
}

// The CPU's make_plan, flattened into one int32 table (offsets below) for the device.
struct HostPlan {
  std::vector<int32_t> table;
  int64_t needed, ordered, kl_terms, pair_blocks, pair_kl, term_offsets, term_list, positives;
  int64_t ordered_count = 0, term_count = 0, rows_with_positives = 0;
};

Status make_plan(int64_t count, int64_t batch, int64_t pair_count, const int32_t* pairs, const int32_t* labels,
                 HostPlan* plan) {
  std::vector<int32_t> needed(static_cast<size_t>(count * count), 0);
  std::map<std::pair<int32_t, int32_t>, int32_t> kl_index;
  std::vector<std::array<int32_t, 4>> pair_blocks;
  for (int64_t p = 0; p < pair_count; ++p) {
    const int32_t a = pairs[2 * p], b = pairs[2 * p + 1];
    if (a < 0 || a >= count || b < 0 || b >= count) {
      return invalid_argument("pair " + std::to_string(p) + " = (" + std::to_string(a) + ", " + std::to_string(b) +
                              ") indexes outside the " + std::to_string(count) + " embeddings");
    }
    if (a == b) return invalid_argument("pair " + std::to_string(p) + " = (" + std::to_string(a) + ", " + std::to_string(b) + ") must join two different embeddings");
    const int32_t e = static_cast<int32_t>(count);
    const std::array<int32_t, 4> blocks{a * e + a, b * e + b, a * e + b, b * e + a};
    for (int32_t x : blocks) needed[x] = 1;
    pair_blocks.push_back(blocks);
    kl_index.emplace(std::make_pair(blocks[0], blocks[1]), 0);
    kl_index.emplace(std::make_pair(blocks[1], blocks[0]), 0);
    kl_index.emplace(std::make_pair(blocks[2], blocks[3]), 0);
    kl_index.emplace(std::make_pair(blocks[3], blocks[2]), 0);
  }
  std::vector<int32_t> terms;
  int32_t next = 0;
  for (auto& entry : kl_index) {
    entry.second = next++;
    terms.push_back(entry.first.first);
    terms.push_back(entry.first.second);
  }
  std::vector<int32_t> ordered;
  for (int64_t x = 0; x < count * count; ++x)
    if (needed[x]) ordered.push_back(static_cast<int32_t>(x));
  std::vector<int32_t>& t = plan->table;
  t.clear();
  plan->needed = static_cast<int64_t>(t.size());
  t.insert(t.end(), needed.begin(), needed.end());
  plan->ordered = static_cast<int64_t>(t.size());
  t.insert(t.end(), ordered.begin(), ordered.end());
  plan->kl_terms = static_cast<int64_t>(t.size());
  t.insert(t.end(), terms.begin(), terms.end());
  plan->pair_blocks = static_cast<int64_t>(t.size());
  for (const auto& blocks : pair_blocks) t.insert(t.end(), blocks.begin(), blocks.end());
  plan->pair_kl = static_cast<int64_t>(t.size());
  for (const auto& blocks : pair_blocks) {
    t.push_back(kl_index[{blocks[0], blocks[1]}]);
    t.push_back(kl_index[{blocks[1], blocks[0]}]);
    t.push_back(kl_index[{blocks[2], blocks[3]}]);
    t.push_back(kl_index[{blocks[3], blocks[2]}]);
  }
  // KL terms per student block, in term order (the CPU's student_terms).
  plan->term_offsets = static_cast<int64_t>(t.size());
  const int64_t term_count = static_cast<int64_t>(terms.size() / 2);
  int32_t running = 0;
  for (int64_t x = 0; x < count * count; ++x) {
    t.push_back(running);
    for (int64_t k = 0; k < term_count; ++k) running += terms[2 * k] == x ? 1 : 0;
  }
  t.push_back(running);
  plan->term_list = static_cast<int64_t>(t.size());
  for (int64_t x = 0; x < count * count; ++x)
    for (int64_t k = 0; k < term_count; ++k)
      if (terms[2 * k] == x) t.push_back(static_cast<int32_t>(k));
  plan->positives = static_cast<int64_t>(t.size());
  std::unordered_map<int32_t, int32_t> per_label;
  for (int64_t u = 0; u < batch; ++u) per_label[labels[u]] += 1;
  plan->rows_with_positives = 0;
  for (int64_t u = 0; u < batch; ++u) {
    const int32_t positives = per_label[labels[u]] - 1;
    t.push_back(positives);
    if (positives > 0) plan->rows_with_positives += 1;
  }
  plan->ordered_count = static_cast<int64_t>(ordered.size());
  plan->term_count = term_count;
  return Status::ok();
}

// The device view over a staged table and pointer list.
Plan device_plan(const HostPlan& host, const int32_t* table, const int32_t* labels, const float* const* embeddings,
                 int64_t count, int64_t batch, int64_t dim, float temperature, float kl_temperature, float* stats) {
  Plan plan;
  plan.count = count;
  plan.batch = batch;
  plan.dim = dim;
  plan.width = count * batch;
  plan.info_scale = 1.0f / temperature;
  plan.kl_scale = 1.0f / (temperature * kl_temperature);
  plan.needed = table + host.needed;
  plan.ordered_blocks = table + host.ordered;
  plan.kl_terms = table + host.kl_terms;
  plan.pair_blocks = table + host.pair_blocks;
  plan.pair_kl = table + host.pair_kl;
  plan.term_offsets = table + host.term_offsets;
  plan.term_list = table + host.term_list;
  plan.labels = labels;
  plan.positives = table + host.positives;
  plan.embeddings = embeddings;
  plan.stats = stats;
  return plan;
}

// Stages the plan table and the embedding pointer table.
Status stage(const HostPlan& host, const void* pointers, size_t pointer_bytes, detail::DeviceScratch& table,
             detail::DeviceScratch& pointer_table) {
  if (!table.ok()) return table.status();
  if (!pointer_table.ok()) return pointer_table.status();
  LMCL_RETURN_IF_ERROR(table.upload(host.table.data(), sizeof(int32_t) * host.table.size()));
  return pointer_table.upload(pointers, pointer_bytes);
}

}  // namespace

Status cohort_contrastive_forward(int64_t count, int64_t batch, int64_t dim, const float* const* embeddings,
                                  IndexArray labels, int64_t pair_count, const int32_t* pairs,
                                  const float* weights, float temperature, float kl_temperature, float* out,
                                  float* softmax, float* probabilities, float* stats) {
  LMCL_RETURN_IF_ERROR(check_arguments(count, batch, dim, pair_count, temperature, kl_temperature));
  HostPlan host;
  LMCL_RETURN_IF_ERROR(make_plan(count, batch, pair_count, pairs, labels.host, &host));
  if (batch == 0 || pair_count == 0) return pair_count > 0 ? fill(out, 0.0f, 4 * pair_count) : Status::ok();
  const int64_t width = count * batch;
  detail::DeviceScratch table(sizeof(int32_t) * host.table.size());
  detail::DeviceScratch pointer_table(sizeof(const float*) * static_cast<size_t>(count));
  LMCL_RETURN_IF_ERROR(stage(host, embeddings, sizeof(const float*) * static_cast<size_t>(count), table, pointer_table));
  detail::DeviceScratch similarity(sizeof(float) * static_cast<size_t>(width * width));
  if (!similarity.ok()) return similarity.status();
  const Plan plan = device_plan(host, table.ints(), labels.device,
                                static_cast<const float* const*>(pointer_table.data()), count, batch, dim, temperature,
                                kl_temperature, stats);
  cohort_row_stats<<<static_cast<unsigned int>(host.ordered_count * batch), detail::kThreads>>>(
      plan, similarity.floats(), softmax, probabilities);
  LMCL_RETURN_IF_ERROR(detail::launch_status("cohortContrastive (rows)"));
  cohort_kl_rows<<<static_cast<unsigned int>(host.term_count * batch), detail::kThreads>>>(plan, similarity.floats(),
                                                                                           probabilities);
  LMCL_RETURN_IF_ERROR(detail::launch_status("cohortContrastive (KL rows)"));
  const double info_divisor = host.rows_with_positives > 0 ? static_cast<double>(host.rows_with_positives) : 1.0;
  const double kl_factor = static_cast<double>(kl_temperature) * kl_temperature / static_cast<double>(batch);
  cohort_pair_outputs<<<static_cast<unsigned int>(pair_count), detail::kThreads>>>(plan, weights, info_divisor,
                                                                                   kl_factor, out);
  return detail::launch_status("cohortContrastive (pairs)");
}

Status cohort_contrastive_backward(int64_t count, int64_t batch, int64_t dim, const float* const* embeddings,
                                   IndexArray labels, int64_t pair_count, const int32_t* pairs,
                                   const float* weights, float temperature, float kl_temperature,
                                   const float* softmax, const float* probabilities, const float* stats,
                                   const float* grad_output, float* const* grad_embeddings, float* grad_weights) {
  LMCL_RETURN_IF_ERROR(check_arguments(count, batch, dim, pair_count, temperature, kl_temperature));
  HostPlan host;
  LMCL_RETURN_IF_ERROR(make_plan(count, batch, pair_count, pairs, labels.host, &host));
  const int64_t width = count * batch;
  const float info_divisor = host.rows_with_positives > 0 ? static_cast<float>(host.rows_with_positives) : 1.0f;
  const float kl_factor = kl_temperature * kl_temperature / static_cast<float>(batch > 0 ? batch : 1);
  bool any_gradient = false;
  for (int64_t e = 0; e < count; ++e) any_gradient = any_gradient || grad_embeddings[e] != nullptr;
  const bool any_work = (grad_weights && pair_count * batch > 0) || (any_gradient && batch * dim > 0);
  if (!any_work) return Status::ok();
  detail::DeviceScratch table(sizeof(int32_t) * host.table.size());
  detail::DeviceScratch pointer_table(2 * sizeof(float*) * static_cast<size_t>(count));
  std::vector<const void*> pointers(static_cast<size_t>(2 * count));
  for (int64_t e = 0; e < count; ++e) {
    pointers[e] = embeddings[e];
    pointers[count + e] = grad_embeddings[e];
  }
  LMCL_RETURN_IF_ERROR(stage(host, pointers.data(), sizeof(void*) * pointers.size(), table, pointer_table));
  const Plan plan = device_plan(host, table.ints(), labels.device,
                                static_cast<const float* const*>(pointer_table.data()), count, batch, dim, temperature,
                                kl_temperature, const_cast<float*>(stats));
  float* const* device_grads = static_cast<float* const*>(pointer_table.data()) + count;
  if (grad_weights && pair_count * batch > 0) {
    cohort_grad_weights<<<detail::blocks_for(pair_count * batch), detail::kThreads>>>(plan, pair_count, grad_output,
                                                                                      info_divisor, kl_factor, grad_weights);
    LMCL_RETURN_IF_ERROR(detail::launch_status("cohortContrastive backward (weights)"));
  }
  if (!any_gradient || batch * dim == 0) return Status::ok();
  if (pair_count == 0) {  // no pair: every gradient is 0
    for (int64_t e = 0; e < count; ++e)
      if (grad_embeddings[e]) LMCL_RETURN_IF_ERROR(fill(grad_embeddings[e], 0.0f, batch * dim));
    return Status::ok();
  }
  const int64_t coefficient_count = (count * count + host.term_count) * batch;
  detail::DeviceScratch coefficients(sizeof(float) * static_cast<size_t>(coefficient_count));
  detail::DeviceScratch gradient(sizeof(float) * static_cast<size_t>(width * width));
  if (!coefficients.ok()) return coefficients.status();
  if (!gradient.ok()) return gradient.status();
  float* info = coefficients.floats();
  float* kl = info + count * count * batch;
  const float info_factor = 1.0f / (info_divisor * temperature);
  const float kl_gradient_factor = kl_factor / (temperature * kl_temperature);
  cohort_coefficients<<<detail::blocks_for(coefficient_count), detail::kThreads>>>(
      plan, pair_count, host.term_count, weights, grad_output, info_factor, kl_gradient_factor, info, kl);
  LMCL_RETURN_IF_ERROR(detail::launch_status("cohortContrastive backward (coefficients)"));
  cohort_gradient_rows<<<static_cast<unsigned int>(host.ordered_count * batch), detail::kThreads>>>(
      plan, softmax, probabilities, info, kl, gradient.floats());
  LMCL_RETURN_IF_ERROR(detail::launch_status("cohortContrastive backward (gradient rows)"));
  // A thread per output float: D rounded up to whole warps, at most 256 per block (D = 128: 128).
  const int threads = static_cast<int>(dim < detail::kThreads ? (dim + 31) / 32 * 32 : detail::kThreads);
  const dim3 grid(static_cast<unsigned int>(width), static_cast<unsigned int>((dim + threads - 1) / threads));
  cohort_embedding_gradients<<<grid, threads>>>(plan, gradient.floats(), device_grads);
  return detail::launch_status("cohortContrastive backward (embeddings)");
}

}  // namespace cuda
}  // namespace lmcl
