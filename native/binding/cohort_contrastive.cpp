// Binding for the all-pairs cohort contrastive kernels (native/src/cpu/cohort_contrastive.cpp).
#include <vector>

#include "args.h"
#include "lmcl/cohort_contrastive.h"

namespace lmcl {
namespace binding {
namespace {

struct CohortGeometry {
  int64_t count, batch, dim, pair_count, embedding_floats, similarity_floats, stats_floats;  // embedding_floats: one z
  float temperature, kl_temperature;
  IndexOperand labels;
  const int32_t* pairs;
};

// Reads (count, batch, dim, temperature, klTemperature) from `first` on, labels and pairs at the
// given positions.
CohortGeometry read_geometry(const Napi::CallbackInfo& info, size_t first, size_t labels_index, size_t pairs_index,
                             const char* op) {
  CohortGeometry g{};
  g.count = get_int(info, first, op, "count");
  g.batch = get_int(info, first + 1, op, "batch");
  g.dim = get_int(info, first + 2, op, "dim");
  g.temperature = static_cast<float>(get_number(info, first + 3, op, "temperature"));
  g.kl_temperature = static_cast<float>(get_number(info, first + 4, op, "klTemperature"));
  g.embedding_floats = element_count(info.Env(), op, {g.batch, g.dim});
  g.similarity_floats = element_count(info.Env(), op, {g.count, g.batch, g.count, g.batch});
  g.labels = get_labels(info, labels_index, g.batch, op);
  int64_t pairs_length = 0;
  g.pairs = get_int32_array(info, pairs_index, &pairs_length, op, "pairs");
  if (pairs_length % 2 != 0) throw_error(info.Env(), std::string(op) + ": pairs must hold two indices per pair");
  g.pair_count = pairs_length / 2;
  g.stats_floats = cohort_stats_floats(g.count, g.batch, g.pair_count);
  return g;
}

// An array of `count` storages of `floats` floats each (optional: entries may be null → nullptr).
struct OperandList {
  std::vector<Operand> operands;  // for the device check
  std::vector<float*> pointers;   // for the kernel
};

OperandList storage_list(const Napi::CallbackInfo& info, size_t index, int64_t count, int64_t floats,
                         bool optional, const char* op, const char* name) {
  if (index >= info.Length() || !info[index].IsArray()) throw_error(info.Env(), std::string(op) + ": argument '" + name + "' must be an array of storages");
  Napi::Array array = info[index].As<Napi::Array>();
  if (static_cast<int64_t>(array.Length()) != count) {
    throw_error(info.Env(), std::string(op) + ": argument '" + name + "' has " + std::to_string(array.Length()) +
                                " entries but count is " + std::to_string(count));
  }
  OperandList list;
  list.pointers.assign(static_cast<size_t>(count), nullptr);
  for (uint32_t e = 0; e < array.Length(); ++e) {
    Napi::Value entry = array.Get(e);
    if (optional && (entry.IsNull() || entry.IsUndefined())) continue;
    list.operands.push_back(floats_of(info.Env(), entry, floats, op, name));
    list.pointers[e] = list.operands.back().data;
  }
  return list;
}

// cohortContrastiveForward(embeddings, labels, pairs, weights|null, out, softmax, probabilities, stats,
//                          count, batch, dim, temperature, klTemperature)
Napi::Value cohort_contrastive_forward_op(const Napi::CallbackInfo& info) {
  const char* name = "cohortContrastive";
  const CohortGeometry g = read_geometry(info, 8, 1, 2, name);
  const OperandList embeddings = storage_list(info, 0, g.count, g.embedding_floats, false, name, "embeddings");
  const Operand weights = optional_floats(info, 3, g.pair_count * g.batch, name, "weights");
  const Operand out = floats(info, 4, 4 * g.pair_count, name, "out");
  const Operand softmax = floats(info, 5, g.similarity_floats, name, "softmax");
  const Operand probabilities = floats(info, 6, g.similarity_floats, name, "probabilities");
  const Operand stats = floats(info, 7, g.stats_floats, name, "stats");
  std::vector<Operand> operands = embeddings.operands;
  operands.push_back(g.labels.operand);
  operands.insert(operands.end(), {weights, out, softmax, probabilities, stats});
  const Device device = same_device(info.Env(), name, operands);
  throw_if_error(info.Env(),
                 dispatch(device, cpu::cohort_contrastive_forward, cuda::cohort_contrastive_forward, g.count, g.batch, g.dim, embeddings.pointers.data(), g.labels.array, g.pair_count, g.pairs, weights,
                                            g.temperature, g.kl_temperature, out, softmax, probabilities, stats),
                 name);
  return info.Env().Undefined();
}

// cohortContrastiveBackward(embeddings, labels, pairs, weights|null, softmax, probabilities, stats, grad,
//                           gradEmbeddings (array, entries may be null), gradWeights|null, count, batch, dim, temperature, klTemperature)
Napi::Value cohort_contrastive_backward_op(const Napi::CallbackInfo& info) {
  const char* name = "cohortContrastiveBackward";
  const CohortGeometry g = read_geometry(info, 10, 1, 2, name);
  const OperandList embeddings = storage_list(info, 0, g.count, g.embedding_floats, false, name, "embeddings");
  const Operand weights = optional_floats(info, 3, g.pair_count * g.batch, name, "weights");
  const Operand softmax = floats(info, 4, g.similarity_floats, name, "softmax");
  const Operand probabilities = floats(info, 5, g.similarity_floats, name, "probabilities");
  const Operand stats = floats(info, 6, g.stats_floats, name, "stats");
  const Operand grad = floats(info, 7, 4 * g.pair_count, name, "grad");
  const OperandList grad_embeddings = storage_list(info, 8, g.count, g.embedding_floats, true, name, "gradEmbeddings");
  const Operand grad_weights = optional_floats(info, 9, g.pair_count * g.batch, name, "gradWeights");
  std::vector<Operand> operands = embeddings.operands;
  operands.push_back(g.labels.operand);
  operands.insert(operands.end(), grad_embeddings.operands.begin(), grad_embeddings.operands.end());
  operands.insert(operands.end(), {weights, softmax, probabilities, stats, grad, grad_weights});
  const Device device = same_device(info.Env(), name, operands);
  throw_if_error(info.Env(),
                 dispatch(device, cpu::cohort_contrastive_backward, cuda::cohort_contrastive_backward, g.count, g.batch, g.dim, embeddings.pointers.data(), g.labels.array, g.pair_count, g.pairs,
                                             weights, g.temperature, g.kl_temperature, softmax, probabilities, stats,
                                             grad, grad_embeddings.pointers.data(), grad_weights),
                 name);
  return info.Env().Undefined();
}

// cohortStatsFloats(count, batch, pairCount): the size of the forward's stats buffer.
Napi::Value cohort_stats_floats_op(const Napi::CallbackInfo& info) {
  const char* name = "cohortStatsFloats";
  const int64_t count = get_int(info, 0, name, "count");
  const int64_t batch = get_int(info, 1, name, "batch");
  const int64_t pair_count = get_int(info, 2, name, "pairCount");
  element_count(info.Env(), name, {count, count, batch});
  element_count(info.Env(), name, {pair_count, batch});
  return Napi::Number::New(info.Env(), static_cast<double>(cohort_stats_floats(count, batch, pair_count)));
}

}  // namespace

void register_cohort_contrastive(Napi::Env env, Napi::Object exports) {
  exports.Set("cohortContrastiveForward", Napi::Function::New(env, cohort_contrastive_forward_op, "cohortContrastiveForward"));
  exports.Set("cohortContrastiveBackward", Napi::Function::New(env, cohort_contrastive_backward_op, "cohortContrastiveBackward"));
  exports.Set("cohortStatsFloats", Napi::Function::New(env, cohort_stats_floats_op, "cohortStatsFloats"));
}

}  // namespace binding
}  // namespace lmcl
