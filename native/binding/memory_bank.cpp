// Bindings for the memory-bank contrast kernels (native/src/cpu/memory_bank.cpp). The binding
// checks every storage holds what the shapes claim and that the index tensors have the right
// length; the kernels check the index values (in range, rows unique) before any work.
#include <cmath>

#include "args.h"
#include "lmcl/memory_bank.h"

namespace lmcl {
namespace binding {
namespace {

// The trailing (batch, columns, dim, bankRows, scale) arguments, checked.
struct BankGeometry {
  int64_t batch, columns, dim, bank_rows;
  float scale;
  int64_t query_count, bank_count, logit_count;
};

BankGeometry read_geometry(const Napi::CallbackInfo& info, size_t first, const char* op) {
  BankGeometry g{};
  g.batch = get_int(info, first, op, "batch");
  g.columns = get_int(info, first + 1, op, "columns");
  g.dim = get_int(info, first + 2, op, "dim");
  g.bank_rows = get_int(info, first + 3, op, "bankRows");
  const double scale = get_number(info, first + 4, op, "scale");
  if (!std::isfinite(scale) || !(scale > 0) || !std::isfinite(static_cast<float>(scale))) {
    throw_error(info.Env(), std::string(op) + ": scale (1/temperature) must be a finite number > 0");
  }
  g.scale = static_cast<float>(scale);
  g.query_count = element_count(info.Env(), op, {g.batch, g.dim});
  g.bank_count = element_count(info.Env(), op, {g.bank_rows, g.dim});
  g.logit_count = element_count(info.Env(), op, {g.batch, g.columns});
  return g;
}

IndexOperand indices_of(const Napi::CallbackInfo& info, size_t index, const BankGeometry& g, const char* op) {
  IndexOperand indices = get_indices(info, index, op, "indices");
  if (indices.length != g.logit_count) {
    throw_error(info.Env(), std::string(op) + ": indices has length " + std::to_string(indices.length) +
                                " but batch · columns = " + std::to_string(g.logit_count));
  }
  return indices;
}

int64_t positives_of(const Napi::CallbackInfo& info, size_t index, const BankGeometry& g, const char* op) {
  const int64_t positives = get_int(info, index, op, "positives");
  if (positives < 1 || positives > g.columns) {
    throw_error(info.Env(), std::string(op) + ": positives must be in [1, columns = " + std::to_string(g.columns) + "], got " +
                                std::to_string(positives));
  }
  return positives;
}

// The trailing `queries` of the logits ops (query [queries, batch, dim], logits [queries, batch,
// columns]; the indices stay [batch · columns], shared by every query).
int64_t queries_of(const Napi::CallbackInfo& info, size_t index, const char* op) {
  const int64_t queries = get_int(info, index, op, "queries");
  if (queries < 1) throw_error(info.Env(), std::string(op) + ": queries must be >= 1, got " + std::to_string(queries));
  return queries;
}

// memoryLogitsForward(query, bank, indices, logits, batch, columns, dim, bankRows, scale, queries)
Napi::Value memory_logits_forward_op(const Napi::CallbackInfo& info) {
  const char* name = "memoryLogits";
  const BankGeometry g = read_geometry(info, 4, name);
  const int64_t queries = queries_of(info, 9, name);
  const Operand query = floats(info, 0, element_count(info.Env(), name, {queries, g.batch, g.dim}), name, "query");
  const Operand bank = floats(info, 1, g.bank_count, name, "bank");
  const IndexOperand indices = indices_of(info, 2, g, name);
  const Operand logits = floats(info, 3, element_count(info.Env(), name, {queries, g.batch, g.columns}), name, "logits");
  const Device device = same_device(info.Env(), name, {indices.operand, query, bank, logits});
  throw_if_error(info.Env(), dispatch(device, cpu::memory_logits_forward, cuda::memory_logits_forward, queries, g.batch, g.columns, g.dim,
                                      g.bank_rows, query, bank, indices.array, g.scale, logits), name);
  return info.Env().Undefined();
}

// memoryLogitsTranspose(grad, bank, indices, out, batch, columns, dim, bankRows, scale, queries)
Napi::Value memory_logits_transpose_op(const Napi::CallbackInfo& info) {
  const char* name = "memoryLogitsTranspose";
  const BankGeometry g = read_geometry(info, 4, name);
  const int64_t queries = queries_of(info, 9, name);
  const Operand grad = floats(info, 0, element_count(info.Env(), name, {queries, g.batch, g.columns}), name, "grad");
  const Operand bank = floats(info, 1, g.bank_count, name, "bank");
  const IndexOperand indices = indices_of(info, 2, g, name);
  const Operand out = floats(info, 3, element_count(info.Env(), name, {queries, g.batch, g.dim}), name, "out");
  const Device device = same_device(info.Env(), name, {indices.operand, grad, bank, out});
  throw_if_error(info.Env(), dispatch(device, cpu::memory_logits_transpose, cuda::memory_logits_transpose, queries, g.batch, g.columns, g.dim,
                                      g.bank_rows, grad, bank, indices.array, g.scale, out), name);
  return info.Env().Undefined();
}

// memoryInfoNceForward(query, bank, indices, weights | null, loss, logits, stats, batch, columns, dim, bankRows,
//                      scale, positives)
Napi::Value memory_info_nce_forward_op(const Napi::CallbackInfo& info) {
  const char* name = "memoryInfoNCE";
  const BankGeometry g = read_geometry(info, 7, name);
  const int64_t positives = positives_of(info, 12, g, name);
  const Operand query = floats(info, 0, g.query_count, name, "query");
  const Operand bank = floats(info, 1, g.bank_count, name, "bank");
  const IndexOperand indices = indices_of(info, 2, g, name);
  const Operand weights = optional_floats(info, 3, g.batch, name, "weights");
  const Operand loss = floats(info, 4, 1, name, "loss");
  const Operand logits = floats(info, 5, g.logit_count, name, "logits");
  const Operand stats = floats(info, 6, 2 * g.batch, name, "stats");
  const Device device = same_device(info.Env(), name, {indices.operand, query, bank, weights, loss, logits, stats});
  throw_if_error(info.Env(), dispatch(device, cpu::memory_info_nce_forward, cuda::memory_info_nce_forward, g.batch, g.columns, g.dim, g.bank_rows, positives, query, bank, indices.array,
                                                     weights, g.scale, loss, logits, stats), name);
  return info.Env().Undefined();
}

// memoryInfoNceBackward(bank, indices, logits, stats, weights | null, grad, gradQuery | null, gradWeights | null,
//                       batch, columns, dim, bankRows, scale, positives)
Napi::Value memory_info_nce_backward_op(const Napi::CallbackInfo& info) {
  const char* name = "memoryInfoNCEBackward";
  const BankGeometry g = read_geometry(info, 8, name);
  const int64_t positives = positives_of(info, 13, g, name);
  const Operand bank = floats(info, 0, g.bank_count, name, "bank");
  const IndexOperand indices = indices_of(info, 1, g, name);
  const Operand logits = floats(info, 2, g.logit_count, name, "logits");
  const Operand stats = floats(info, 3, 2 * g.batch, name, "stats");
  const Operand weights = optional_floats(info, 4, g.batch, name, "weights");
  const Operand grad = floats(info, 5, 1, name, "grad");
  const Operand grad_query = optional_floats(info, 6, g.query_count, name, "gradQuery");
  const Operand grad_weights = optional_floats(info, 7, g.batch, name, "gradWeights");
  const Device device = same_device(info.Env(), name, {indices.operand, bank, logits, stats, weights, grad, grad_query, grad_weights});
  throw_if_error(info.Env(), dispatch(device, cpu::memory_info_nce_backward, cuda::memory_info_nce_backward, g.batch, g.columns, g.dim, g.bank_rows, positives, bank, indices.array,
                                                      logits, stats, weights, grad, g.scale, grad_query, grad_weights),
                 name);
  return info.Env().Undefined();
}

// memoryUpdate(bank, rows, z, bankRows, dim, momentum): bank[rows[i]] ← normalize(m·bank[rows[i]] + (1−m)·z[i])
Napi::Value memory_update_op(const Napi::CallbackInfo& info) {
  const char* name = "memoryUpdate";
  const int64_t bank_rows = get_int(info, 3, name, "bankRows");
  const int64_t dim = get_int(info, 4, name, "dim");
  const double momentum = get_number(info, 5, name, "momentum");
  if (!(momentum >= 0.0 && momentum <= 1.0)) throw_error(info.Env(), std::string(name) + ": momentum must be in [0, 1]");
  const IndexOperand rows = get_indices(info, 1, name, "rows");
  const int64_t count = rows.length;
  const Operand bank = floats(info, 0, element_count(info.Env(), name, {bank_rows, dim}), name, "bank");
  const Operand z = floats(info, 2, element_count(info.Env(), name, {count, dim}), name, "z");
  // z must not alias the bank: rows are rewritten in parallel while z is read.
  if (get_storage(info, 0, name, "bank") == get_storage(info, 2, name, "z")) {
    throw_error(info.Env(), std::string(name) + ": z must not share storage with the bank");
  }
  const Device device = same_device(info.Env(), name, {bank, rows.operand, z});
  throw_if_error(info.Env(), dispatch(device, cpu::memory_update, cuda::memory_update, bank_rows, dim, count, bank, rows.array, z, momentum), name);
  return info.Env().Undefined();
}

}  // namespace

void register_memory_bank(Napi::Env env, Napi::Object exports) {
  exports.Set("memoryLogitsForward", Napi::Function::New(env, memory_logits_forward_op, "memoryLogitsForward"));
  exports.Set("memoryLogitsTranspose", Napi::Function::New(env, memory_logits_transpose_op, "memoryLogitsTranspose"));
  exports.Set("memoryInfoNceForward", Napi::Function::New(env, memory_info_nce_forward_op, "memoryInfoNceForward"));
  exports.Set("memoryInfoNceBackward", Napi::Function::New(env, memory_info_nce_backward_op, "memoryInfoNceBackward"));
  exports.Set("memoryUpdate", Napi::Function::New(env, memory_update_op, "memoryUpdate"));
}

}  // namespace binding
}  // namespace lmcl
