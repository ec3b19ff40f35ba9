// The L-MCL contrastive terms of every listed embedding pair in one fused call (CPU; method.md
// §2.2). For pair p = (a, b) with per-anchor weights w_p:
//   VCL_p = ℓ(L_aa) + ℓ(L_bb),  ICL_p = ℓ(L_ab) + ℓ(L_ba),
//   SoftVCL_p = KL(L_aa ‖ sg L_bb) + KL(L_bb ‖ sg L_aa),  SoftICL_p = KL(L_ab ‖ sg L_ba) + KL(L_ba ‖ sg L_ab)
// with ℓ, KL exactly as infonce.cpp / contrastive_kl.cpp (same row functions, contrastive_rows.h).
//
// Shared work, so the cost grows with the distinct embeddings and blocks, not with P × 4:
//  * Z = [z_0; …; z_{E−1}] ([E·B, D]); the similarity S = Z·Zᵀ ([E·B, E·B]) is formed only for the
//    blocks some pair uses (the diagonal blocks of its members and its cross block), upper
//    triangle only, one GEMM per run of consecutive needed blocks in a block row; L_ba = L_abᵀ is
//    a mirror copy. For L-MCL's N = 2, S = 3 (18 pairs) that is 15 of the 36 blocks in 9 GEMMs.
//  * Per ordered block and row: the off-diagonal log-sum-exp, the InfoNCE row term and the
//    all-column log-sum-exp (at 1/(τ·T)) — once, whatever the number of pairs using the block.
//  * Per distinct (student block, teacher block) KL term and row: KL_u — once (a pair and its
//    mirror share all four KL terms).
//  * Pair outputs are weighted sums of those rows (weights only rescale per-row terms).
//  * While forming those statistics each row stores its two softmaxes (InfoNCE at 1/τ without
//    the diagonal, KL at 1/(τ·T)): 2 exps per element in the forward; the KL rows and the whole
//    backward are then exp-free (dot products and axpys over stored rows).
// Backward: per ordered block x, per row u, the gradient row of L_x in one pass from the summed
// coefficients A_x[u] = Σ g_{p,t}·w_p[u] over the InfoNCE terms using x, and C_k[u] over the KL
// terms k = (x ‖ y):
//   ∂S_x[u,·] = A_x[u]/(R·τ)·(softmax_{≠u}(L_x[u]) − P_u/|P_u|) + Σ_k C_k[u]·T/(τ·B)·(p_x[u] − q_y[u])
// then H = ∂S + ∂Sᵀ (block by block, in place) and ∂Z = H·Z by one GEMM per run of needed blocks
// in each block row: 24 block products for the L-MCL cohort — the distinct blocks' own backward
// GEMMs, nothing more. ∂w_p[u] is a weighted sum of the saved row terms.
// Layout: embeddings E separate [B, D] arrays (copied into one [E·B, D] scratch); pairs int32 [P, 2]; weights and ∂weights [P, B]; out and grad
// [P, 4]; softmax and probabilities [E·B, E·B] (saved by the op for the backward; only the used
// blocks are written); stats: per ordered block x = i·E + j the rows lse_off, term, lse_all
// ([3, E², B]), then per distinct KL term its KL rows ([4P, B] at most). Memory: 2·(E·B)² floats
// saved, (E·B)² of scratch in each pass (2.4 MB each for E = 6, B = 128). Deterministic (fixed task split, sequential double sums, GEMMs in fixed order).
// Tested in test/ops/cohort_contrastive.test.ts against the sum of the one-pair ops and against a
// float64 reference (test/reference/contrastive_reference.ts).
#include "lmcl/cohort_contrastive.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "lmcl/allocator.h"
#include "lmcl/parallel.h"
#include "contrastive_rows.h"
#include "simd_variants.h"

namespace lmcl {
namespace cpu {
namespace {

// Which blocks and KL terms the pairs use; a pure function of (count, pairs), so the forward and
// the backward derive the same one.
struct CohortPlan {
  int64_t count = 0;
  std::vector<char> needed;                   // [count·count], symmetric
  std::vector<int32_t> ordered_blocks;        // x = i·count + j, needed, ascending
  std::vector<std::pair<int32_t, int32_t>> kl_terms;  // distinct (student x, teacher y), ascending
  std::vector<std::array<int32_t, 4>> pair_blocks;    // per pair: aa, bb, ab, ba
  std::vector<std::array<int32_t, 4>> pair_kl;        // per pair: (aa‖bb), (bb‖aa), (ab‖ba), (ba‖ab)
  std::vector<std::vector<int32_t>> student_terms;    // per ordered block: KL terms with it as student
};

Status make_plan(int64_t count, int64_t pair_count, const int32_t* pairs, CohortPlan* plan) {
  plan->count = count;
  plan->needed.assign(static_cast<size_t>(count * count), 0);
  std::map<std::pair<int32_t, int32_t>, int32_t> kl_index;
  for (int64_t p = 0; p < pair_count; ++p) {
    const int32_t a = pairs[2 * p], b = pairs[2 * p + 1];
    if (a < 0 || a >= count || b < 0 || b >= count) {
      return invalid_argument("pair " + std::to_string(p) + " = (" + std::to_string(a) + ", " + std::to_string(b) +
                              ") indexes outside the " + std::to_string(count) + " embeddings");
    }
    if (a == b) return invalid_argument("pair " + std::to_string(p) + " = (" + std::to_string(a) + ", " + std::to_string(b) + ") must join two different embeddings");
    const int32_t e = static_cast<int32_t>(count);
    const std::array<int32_t, 4> blocks{a * e + a, b * e + b, a * e + b, b * e + a};
    for (int32_t x : blocks) plan->needed[x] = 1;
    plan->pair_blocks.push_back(blocks);
    const std::array<std::pair<int32_t, int32_t>, 4> terms{
        std::make_pair(blocks[0], blocks[1]), std::make_pair(blocks[1], blocks[0]),
        std::make_pair(blocks[2], blocks[3]), std::make_pair(blocks[3], blocks[2])};
    for (const auto& term : terms) kl_index.emplace(term, 0);
  }
  int32_t next = 0;
  for (auto& entry : kl_index) {
    entry.second = next++;
    plan->kl_terms.push_back(entry.first);
  }
  for (int64_t p = 0; p < pair_count; ++p) {
    const auto& blocks = plan->pair_blocks[p];
    plan->pair_kl.push_back({kl_index[{blocks[0], blocks[1]}], kl_index[{blocks[1], blocks[0]}],
                             kl_index[{blocks[2], blocks[3]}], kl_index[{blocks[3], blocks[2]}]});
  }
  for (int64_t x = 0; x < count * count; ++x) {
    if (plan->needed[x]) plan->ordered_blocks.push_back(static_cast<int32_t>(x));
  }
  plan->student_terms.assign(static_cast<size_t>(count * count), {});
  for (size_t k = 0; k < plan->kl_terms.size(); ++k) plan->student_terms[plan->kl_terms[k].first].push_back(static_cast<int32_t>(k));
  return Status::ok();
}

// Transposed copies and sums go tile by tile: a task owns kTile rows of one block, so the column
// writes of different threads never share a cache line (row-by-row column writes did: 2 threads
// were slower than 1).
constexpr int64_t kTile = 16;

// Calls run(i, j_first, j_count) for every maximal run of consecutive needed blocks in block row
// i, with j ≥ i (upper) or over all j.
template <typename Run>
void for_each_run(const CohortPlan& plan, int64_t i, bool upper_only, Run&& run) {
  const int64_t e = plan.count;
  int64_t j = upper_only ? i : 0;
  while (j < e) {
    if (!plan.needed[i * e + j]) {
      ++j;
      continue;
    }
    const int64_t first = j;
    while (j < e && plan.needed[i * e + j]) ++j;
    run(first, j - first);
  }
}

struct CohortArgs {
  int64_t count, batch, width;  // width = count·batch (the row stride of similarity / gradient)
  float info_scale, kl_scale;   // 1/τ, 1/(τ·T)
  const CohortPlan* plan;
  const int32_t* labels;
  const int32_t* positives;
  const float* similarity;        // forward: [width, width] raw dot products (scratch)
  float* softmax;                 // [width, width]: InfoNCE softmax rows at 1/τ (diagonal 0)
  float* probabilities;           // [width, width]: KL softmax rows at 1/(τ·T)
  float* stats;
  // backward
  const float* info_coefficient;  // [count², batch]: A_x[u]/(R·τ)
  const float* kl_coefficient;    // [terms, batch]: C_k[u]·T/(τ·B)
  float* gradient;                // [width, width]
};

LMCL_INLINE const float* block_row(const CohortArgs& args, const float* base, int32_t x, int64_t u) {
  const int64_t i = x / args.count, j = x % args.count;
  return base + (i * args.batch + u) * args.width + j * args.batch;
}

LMCL_INLINE float* lse_off_of(const CohortArgs& args, int32_t x) { return args.stats + x * args.batch; }
LMCL_INLINE float* term_of(const CohortArgs& args, int32_t x) {
  return args.stats + (args.count * args.count + x) * args.batch;
}
LMCL_INLINE float* lse_all_of(const CohortArgs& args, int32_t x) {
  return args.stats + (2 * args.count * args.count + x) * args.batch;
}
LMCL_INLINE float* kl_of(const CohortArgs& args, int32_t k) {
  return args.stats + (3 * args.count * args.count + k) * args.batch;
}

// Tasks: (ordered block index, row): the row statistics, and the row's two softmaxes stored for
// the KL terms and the backward (2 exps per element; the backward then needs none).
LMCL_INLINE void cohort_row_stats_body(int64_t begin, int64_t end, const CohortArgs& args) {
  const int64_t n = args.batch;
  for (int64_t task = begin; task < end; ++task) {
    const int32_t x = args.plan->ordered_blocks[task / n];
    const int64_t u = task % n;
    const float* row = block_row(args, args.similarity, x, u);
    float* softmax = const_cast<float*>(block_row(args, args.softmax, x, u));
    float* probabilities = const_cast<float*>(block_row(args, args.probabilities, x, u));
    const float off_maximum = max_except(row, n, u);
    const float maximum = row[u] > off_maximum ? row[u] : off_maximum;
    float lse = -kInfinity;
    if (off_maximum != -kInfinity) {
      const float shift = args.info_scale * off_maximum;
      const float total = exp_sum_except(row, n, u, args.info_scale, shift, softmax);
      lse = shift + std::log(total);
      scale_row(softmax, n, 1.0f / total);
    } else {
      for (int64_t v = 0; v < n; ++v) softmax[v] = 0.0f;
    }
    const int32_t count = args.positives[u];
    lse_off_of(args, x)[u] = lse;
    term_of(args, x)[u] = count > 0 ? lse - args.info_scale * positive_sum(row, n, u, args.labels, args.labels[u]) / count : 0.0f;
    const float shift = args.kl_scale * maximum;
    const float total = exp_sum_except(row, n, -1, args.kl_scale, shift, probabilities);
    lse_all_of(args, x)[u] = shift + std::log(total);
    scale_row(probabilities, n, 1.0f / total);
  }
}

// Tasks: (KL term, row): KL(q_teacher ‖ p_student) from the teacher's stored probabilities.
LMCL_INLINE void cohort_kl_rows_body(int64_t begin, int64_t end, const CohortArgs& args) {
  const int64_t n = args.batch;
  for (int64_t task = begin; task < end; ++task) {
    const int32_t k = static_cast<int32_t>(task / n);
    const int64_t u = task % n;
    const int32_t student = args.plan->kl_terms[k].first, teacher = args.plan->kl_terms[k].second;
    kl_of(args, k)[u] = kl_from_probabilities(block_row(args, args.similarity, student, u),
                                              block_row(args, args.similarity, teacher, u),
                                              block_row(args, args.probabilities, teacher, u), n, args.kl_scale,
                                              lse_all_of(args, student)[u], lse_all_of(args, teacher)[u]);
  }
}

// Tasks: (ordered block index, row): the gradient row of S_x[u, ·] from the stored softmaxes.
LMCL_INLINE void cohort_gradient_rows_body(int64_t begin, int64_t end, const CohortArgs& args) {
  const int64_t n = args.batch;
  for (int64_t task = begin; task < end; ++task) {
    const int32_t x = args.plan->ordered_blocks[task / n];
    const int64_t u = task % n;
    float* out = const_cast<float*>(block_row(args, args.gradient, x, u));
    const int32_t count = args.positives[u];
    if (count > 0) {
      infonce_gradient_from_softmax(block_row(args, args.softmax, x, u), n, u, args.labels, args.labels[u],
                                    1.0f / count, args.info_coefficient[x * n + u], out);
    } else {
      for (int64_t v = 0; v < n; ++v) out[v] = 0.0f;
    }
    const auto& terms = args.plan->student_terms[x];
    if (terms.empty()) continue;
    float student_total = 0.0f;
    for (int32_t k : terms) student_total += args.kl_coefficient[k * n + u];
    add_scaled(block_row(args, args.probabilities, x, u), n, student_total, out);
    for (int32_t k : terms) {
      add_scaled(block_row(args, args.probabilities, args.plan->kl_terms[k].second, u), n, -args.kl_coefficient[k * n + u], out);
    }
  }
}

LMCL_DEFINE_VARIANTS(cohort_row_stats, CohortArgs)
LMCL_DEFINE_VARIANTS(cohort_kl_rows, CohortArgs)
LMCL_DEFINE_VARIANTS(cohort_gradient_rows, CohortArgs)

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

// The upper-triangle needed blocks of S = Z·Zᵀ by GEMMs over runs, then the mirror L_ji = L_ijᵀ.
Status similarity_blocks(const CohortPlan& plan, int64_t batch, int64_t dim, const float* z, float* similarity) {
  const int64_t e = plan.count, width = e * batch;
  for (int64_t i = 0; i < e; ++i) {
    Status status;
    for_each_run(plan, i, true, [&](int64_t first, int64_t length) {
      if (!status.is_ok()) return;
      status = gemm(false, true, batch, length * batch, dim, 1.0f, z + i * batch * dim, dim, z + first * batch * dim, dim,
                    0.0f, similarity + i * batch * width + first * batch, width);
    });
    LMCL_RETURN_IF_ERROR(status);
  }
  std::vector<std::pair<int64_t, int64_t>> mirrored;
  for (int64_t i = 0; i < e; ++i)
    for (int64_t j = i + 1; j < e; ++j)
      if (plan.needed[i * e + j]) mirrored.emplace_back(i, j);
  const int64_t tiles = (batch + kTile - 1) / kTile;
  parallel_for(0, static_cast<int64_t>(mirrored.size()) * tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const auto [i, j] = mirrored[task / tiles];
      const int64_t u0 = (task % tiles) * kTile, u1 = std::min(batch, u0 + kTile);
      for (int64_t v0 = 0; v0 < batch; v0 += kTile) {
        const int64_t v1 = std::min(batch, v0 + kTile);
        for (int64_t u = u0; u < u1; ++u)
          for (int64_t v = v0; v < v1; ++v)
            similarity[(j * batch + v) * width + i * batch + u] = similarity[(i * batch + u) * width + j * batch + v];
      }
    }
  });
  return Status::ok();
}

}  // namespace

}  // namespace cpu

int64_t cohort_stats_floats(int64_t count, int64_t batch, int64_t pair_count) {
  return (3 * count * count + 4 * pair_count) * batch;
}

namespace cpu {

// Z = [z_0; …; z_{E−1}] in one contiguous scratch block, so runs of consecutive blocks are one GEMM.
Status stack_embeddings(int64_t count, int64_t batch, int64_t dim, const float* const* embeddings, const ScratchBuffer& out) {
  if (!out.ok()) return out_of_memory("cohortContrastive: embeddings of " + describe_shape({count, batch, dim}));
  for (int64_t e = 0; e < count; ++e) std::copy(embeddings[e], embeddings[e] + batch * dim, out.floats() + e * batch * dim);
  return Status::ok();
}

Status cohort_contrastive_forward(int64_t count, int64_t batch, int64_t dim, const float* const* embeddings,
                                  IndexArray labels_array, int64_t pair_count, const int32_t* pairs,
                                  const float* weights, float temperature, float kl_temperature, float* out,
                                  float* softmax, float* probabilities, float* stats) {
  const int32_t* labels = labels_array.host;
  LMCL_RETURN_IF_ERROR(check_arguments(count, batch, dim, pair_count, temperature, kl_temperature));
  CohortPlan plan;
  LMCL_RETURN_IF_ERROR(make_plan(count, pair_count, pairs, &plan));
  std::vector<int32_t> positives(static_cast<size_t>(batch));
  const int64_t rows_with_positives = count_positives(batch, labels, positives.data());
  if (batch == 0 || pair_count == 0) {
    for (int64_t index = 0; index < 4 * pair_count; ++index) out[index] = 0.0f;
    return Status::ok();
  }
  const int64_t width = count * batch;
  ScratchBuffer similarity(sizeof(float) * static_cast<size_t>(width * width));
  if (!similarity.ok()) return out_of_memory("cohortContrastive: similarity of " + describe_shape({width, width}));
  ScratchBuffer stacked(sizeof(float) * static_cast<size_t>(count * batch * dim));
  LMCL_RETURN_IF_ERROR(stack_embeddings(count, batch, dim, embeddings, stacked));
  LMCL_RETURN_IF_ERROR(similarity_blocks(plan, batch, dim, stacked.floats(), similarity.floats()));
  CohortArgs args{count, batch, width, 1.0f / temperature, 1.0f / (temperature * kl_temperature), &plan, labels,
                  positives.data(), similarity.floats(), softmax, probabilities, stats, nullptr, nullptr, nullptr};
  const int64_t grain = contrastive_row_grain(batch);
  auto stats_body = cohort_row_stats_pick();
  parallel_for(0, static_cast<int64_t>(plan.ordered_blocks.size()) * batch, grain,
               [&](int64_t begin, int64_t end) { stats_body(begin, end, args); });
  auto kl_body = cohort_kl_rows_pick();
  parallel_for(0, static_cast<int64_t>(plan.kl_terms.size()) * batch, grain,
               [&](int64_t begin, int64_t end) { kl_body(begin, end, args); });
  const double info_divisor = rows_with_positives > 0 ? static_cast<double>(rows_with_positives) : 1.0;
  const double kl_factor = static_cast<double>(kl_temperature) * kl_temperature / static_cast<double>(batch);
  for (int64_t p = 0; p < pair_count; ++p) {
    const auto& blocks = plan.pair_blocks[p];
    const auto& kl = plan.pair_kl[p];
    const float* w = weights ? weights + p * batch : nullptr;
    double total[4] = {0.0, 0.0, 0.0, 0.0};
    for (int64_t u = 0; u < batch; ++u) {
      const double weight = w ? w[u] : 1.0;
      total[0] += weight * (static_cast<double>(term_of(args, blocks[0])[u]) + term_of(args, blocks[1])[u]);
      total[1] += weight * (static_cast<double>(term_of(args, blocks[2])[u]) + term_of(args, blocks[3])[u]);
      total[2] += weight * (static_cast<double>(kl_of(args, kl[0])[u]) + kl_of(args, kl[1])[u]);
      total[3] += weight * (static_cast<double>(kl_of(args, kl[2])[u]) + kl_of(args, kl[3])[u]);
    }
    out[4 * p] = static_cast<float>(total[0] / info_divisor);
    out[4 * p + 1] = static_cast<float>(total[1] / info_divisor);
    out[4 * p + 2] = static_cast<float>(total[2] * kl_factor);
    out[4 * p + 3] = static_cast<float>(total[3] * kl_factor);
  }
  return Status::ok();
}

Status cohort_contrastive_backward(int64_t count, int64_t batch, int64_t dim, const float* const* embeddings,
                                   IndexArray labels_array, int64_t pair_count, const int32_t* pairs,
                                   const float* weights, float temperature, float kl_temperature,
                                   const float* softmax, const float* probabilities, const float* stats,
                                   const float* grad_output,
                                   float* const* grad_embeddings, float* grad_weights) {
  const int32_t* labels = labels_array.host;
  LMCL_RETURN_IF_ERROR(check_arguments(count, batch, dim, pair_count, temperature, kl_temperature));
  CohortPlan plan;
  LMCL_RETURN_IF_ERROR(make_plan(count, pair_count, pairs, &plan));
  std::vector<int32_t> positives(static_cast<size_t>(batch));
  const int64_t rows_with_positives = count_positives(batch, labels, positives.data());
  const int64_t width = count * batch;
  CohortArgs args{count, batch, width, 1.0f / temperature, 1.0f / (temperature * kl_temperature), &plan, labels,
                  positives.data(), nullptr, const_cast<float*>(softmax), const_cast<float*>(probabilities),
                  const_cast<float*>(stats), nullptr, nullptr, nullptr};
  const float info_divisor = rows_with_positives > 0 ? static_cast<float>(rows_with_positives) : 1.0f;
  const float kl_factor = kl_temperature * kl_temperature / static_cast<float>(batch > 0 ? batch : 1);
  if (grad_weights) {
    for (int64_t p = 0; p < pair_count; ++p) {
      const auto& blocks = plan.pair_blocks[p];
      const auto& kl = plan.pair_kl[p];
      const float* g = grad_output + 4 * p;
      for (int64_t u = 0; u < batch; ++u) {
        grad_weights[p * batch + u] =
            (g[0] * (term_of(args, blocks[0])[u] + term_of(args, blocks[1])[u]) +
             g[1] * (term_of(args, blocks[2])[u] + term_of(args, blocks[3])[u])) / info_divisor +
            (g[2] * (kl_of(args, kl[0])[u] + kl_of(args, kl[1])[u]) + g[3] * (kl_of(args, kl[2])[u] + kl_of(args, kl[3])[u])) *
                kl_factor;
      }
    }
  }
  bool any_gradient = false;
  for (int64_t e = 0; e < count; ++e) {
    if (!grad_embeddings[e]) continue;
    any_gradient = true;
    std::fill(grad_embeddings[e], grad_embeddings[e] + batch * dim, 0.0f);  // embeddings in no pair get 0
  }
  if (!any_gradient || batch == 0 || pair_count == 0) return Status::ok();

  // Summed coefficients per ordered block (InfoNCE) and per KL term, pairs in order.
  std::vector<float> info_coefficient(static_cast<size_t>(count * count * batch), 0.0f);
  std::vector<float> kl_coefficient(plan.kl_terms.size() * static_cast<size_t>(batch), 0.0f);
  for (int64_t p = 0; p < pair_count; ++p) {
    const auto& blocks = plan.pair_blocks[p];
    const auto& kl = plan.pair_kl[p];
    const float* g = grad_output + 4 * p;
    const float* w = weights ? weights + p * batch : nullptr;
    for (int64_t u = 0; u < batch; ++u) {
      const float weight = w ? w[u] : 1.0f;
      for (int t = 0; t < 4; ++t) info_coefficient[blocks[t] * batch + u] += g[t / 2] * weight;
      for (int t = 0; t < 4; ++t) kl_coefficient[kl[t] * batch + u] += g[2 + t / 2] * weight;
    }
  }
  const float info_factor = 1.0f / (info_divisor * temperature);
  for (float& value : info_coefficient) value *= info_factor;
  const float kl_gradient_factor = kl_factor / (temperature * kl_temperature);  // T²/B · 1/(τT)
  for (float& value : kl_coefficient) value *= kl_gradient_factor;

  ScratchBuffer gradient(sizeof(float) * static_cast<size_t>(width * width));
  if (!gradient.ok()) return out_of_memory("cohortContrastive backward: gradient of " + describe_shape({width, width}));
  args.info_coefficient = info_coefficient.data();
  args.kl_coefficient = kl_coefficient.data();
  args.gradient = gradient.floats();
  const int64_t grain = contrastive_row_grain(batch);
  auto rows_body = cohort_gradient_rows_pick();
  parallel_for(0, static_cast<int64_t>(plan.ordered_blocks.size()) * batch, grain,
               [&](int64_t begin, int64_t end) { rows_body(begin, end, args); });

  // H = ∂S + ∂Sᵀ over the needed blocks, in place, tile by tile: the task of tile row u0 of block
  // (i, j), i ≤ j, owns the entries (u, v) of block (i, j) and (v, u) of block (j, i), u in its
  // tile rows (v ≥ u on the diagonal blocks).
  std::vector<std::pair<int64_t, int64_t>> upper;
  for (int64_t i = 0; i < count; ++i)
    for (int64_t j = i; j < count; ++j)
      if (plan.needed[i * count + j]) upper.emplace_back(i, j);
  float* h = gradient.floats();
  const int64_t tiles = (batch + kTile - 1) / kTile;
  parallel_for(0, static_cast<int64_t>(upper.size()) * tiles, 1, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      const auto [i, j] = upper[task / tiles];
      const int64_t u0 = (task % tiles) * kTile, u1 = std::min(batch, u0 + kTile);
      for (int64_t v0 = i == j ? u0 : 0; v0 < batch; v0 += kTile) {
        const int64_t v1 = std::min(batch, v0 + kTile);
        for (int64_t u = u0; u < u1; ++u) {
          float* row = h + (i * batch + u) * width + j * batch;
          float* column = h + (j * batch) * width + i * batch + u;
          for (int64_t v = (i == j && v0 == u0) ? u : v0; v < v1; ++v) {
            if (i == j && v == u) {
              row[u] += row[u];
              continue;
            }
            const float sum = row[v] + column[v * width];
            row[v] = sum;
            column[v * width] = sum;
          }
        }
      }
    }
  });

  // ∂z_i = Σ_j H_ij·z_j over the needed blocks of block row i.
  ScratchBuffer stacked(sizeof(float) * static_cast<size_t>(count * batch * dim));
  LMCL_RETURN_IF_ERROR(stack_embeddings(count, batch, dim, embeddings, stacked));
  for (int64_t i = 0; i < count; ++i) {
    if (!grad_embeddings[i]) continue;
    Status status;
    bool first_run = true;
    for_each_run(plan, i, false, [&](int64_t first, int64_t length) {
      if (!status.is_ok()) return;
      status = gemm(false, false, batch, dim, length * batch, 1.0f, h + i * batch * width + first * batch, width,
                    stacked.floats() + first * batch * dim, dim, first_run ? 0.0f : 1.0f, grad_embeddings[i], dim);
      first_run = false;
    });
    LMCL_RETURN_IF_ERROR(status);
  }
  return Status::ok();
}

}  // namespace cpu
}  // namespace lmcl
