// Memory-bank contrast (method.md §1.2 MCL ImageNet, §2.6 L-MCL ImageNet): queries against rows
// of a memory bank picked by per-query index lists, the InfoNCE over those logits, and the
// momentum update of the bank. Native kernels: native/src/cpu/memory_bank.cpp.
// Tests: test/ops/memory_bank.test.ts (against test/reference/memory_bank_reference.ts).
//
//   memoryLogits   l[u, k] = ⟨bank[idx[u, k]], query[u]⟩ / τ,   idx[u, k] = indices[u·K + k],  K = indices.length / B
//                  (or query [Q, B, D] → l [Q, B, K]: Q embeddings of the same batch items, e.g. L-MCL's
//                  stages against one bank, share the keys; the kernels read each gathered row once for
//                  all Q, and each l[q] has the bits of memoryLogits(query[q]))
//   memoryInfoNCE  (1/B) Σ_u w_u · (−(1/P) Σ_{k<P} log softmax(l[u, ·])_k)   (P = positives, w ≡ 1 by default)
//   memoryUpdate_  bank[r_i] ← normalize(m · bank[r_i] + (1 − m) · z[i])      (in place, no grad)
//
// The [B, K, D] gather of the reference (index_select + bmm) is never materialised: the kernels
// read each bank row where it lies. The bank is a buffer, never a parameter: a bank that requires
// grad is rejected (pass bank.detach()), so it can never receive a gradient. The op nodes save
// the bank, so their backward reads the rows as they were in the forward: memoryUpdate_ bumps the
// bank's version, and a backward through a node that saved it then raises the engine's in-place
// modification error. Update after backward (the reference's gathered copy gives the same
// gradients then).
//
// Backward: memoryLogits' query gradient is its transpose, dquery[u] = (1/τ) Σ_k g[u, k] ·
// bank[idx[u, k]] (memoryLogitsTranspose, again without a gather buffer), recorded as an op whose
// own backward is memoryLogits: the pair is differentiable to any order (like conv2d and
// conv2dBackwardInput). memoryInfoNCE has one fused native forward (logits, log-sum-exp, positive
// mean, weighted sum) and a fused native backward; under createGraph its backward is composed
// from memoryLogits, softmax / logSoftmax, slice and mean (fusedOrComposite).
import { native } from '../native/index.js';
import { fusedOrComposite } from '../autograd/fused.js';
import { recordOperation, type BackwardContext } from '../autograd/node.js';
import { Tensor, formatShape } from '../tensor/tensor.js';
import type { Storage } from '../tensor/storage.js';
import { tensor } from '../tensor/creation.js';
import { checkRank, checkSameDevice, checkTensor, describeValue, firstOutOfRange, holdIndices, readOptions, type HeldIndices, type IndexInput } from './checks.js';
import { checkTemperature, checkWeights } from './contrastive_checks.js';
import { affine, mul, neg, sub } from './elementwise.js';
import { reshape, slice } from './layout.js';
import { mean } from './reduce.js';
import { logSoftmax, softmax } from './softmax.js';

export interface MemoryLogitsOptions {
  /** τ > 0: the logits are divided by it (ImageNet MCL: 0.07). */
  temperature: number;
}

export interface MemoryInfoNceOptions {
  /** P in [1, K]: the first P columns of every row are its positives. */
  positives: number;
  /** τ > 0. */
  temperature: number;
  /** Per-row weights w [B] (L-MCL's layer-matching weights); may require grad. Default w ≡ 1. */
  weights?: Tensor | null;
}

export interface MemoryUpdateOptions {
  /** m in [0, 1]: the share of the old row kept (MCL: nce_m = 0.5). */
  momentum: number;
}

/** Shapes and the private index copy shared by a forward and every backward derived from it. */
interface BankGeometry {
  /** Queries sharing the keys (memoryLogits with a [Q, B, D] query; otherwise 1). */
  queries: number;
  /** The query's shape ([B, D] or [Q, B, D]): the transpose's output has it. */
  queryShape: readonly number[];
  batch: number;
  columns: number;
  dim: number;
  bankRows: number;
  /** 1/τ as the kernels use it. */
  scale: number;
  /** The index block (an IndexTensor's storage): every node that keeps this geometry holds a
   *  reference to it (retainIndices), so its backward reads this call's indices whatever the
   *  caller does with its tensor or array afterwards. */
  indexStorage: Storage;
}

/** A reference to the geometry's index block for a graph node; returns its onRelease. */
function retainIndices(geometry: BankGeometry): () => void {
  geometry.indexStorage.retain();
  return () => geometry.indexStorage.release();
}

function scaleOf(value: unknown, op: string): number {
  const temperature = checkTemperature(value, op, 'temperature');
  const scale = Math.fround(1 / temperature);
  if (!Number.isFinite(scale) || scale === 0) {
    throw new Error(`${op}: temperature ${temperature} is out of range (1/temperature must be a finite, nonzero float32)`);
  }
  return 1 / temperature;
}

function checkBank(bank: unknown, op: string): asserts bank is Tensor {
  checkTensor(bank, op, 'bank');
  checkRank(bank, 2, op, 'bank', '[bankRows, dim]');
  if (bank.requiresGrad) {
    throw new Error(`${op}: argument 'bank' must not require grad (the memory bank is a buffer and gets no gradient; pass bank.detach())`);
  }
}

/**
 * Checks query, bank and indices; returns the geometry and the call's hold on the indices (an
 * IndexTensor on the query's device, or an Int32Array copied there), which the caller releases
 * once its nodes are recorded (each node retains the block itself).
 */
function geometryOf(query: unknown, bank: unknown, indices: unknown, temperature: unknown, op: string,
  allowQueries = false): [BankGeometry, HeldIndices] {
  checkTensor(query, op, 'query');
  if (allowQueries && query.dim === 3) {
    if (query.shape[0] === 0) throw new Error(`${op}: argument 'query' [queries, batch, dim] must hold at least one query, got shape ${formatShape(query.shape)}`);
  } else {
    checkRank(query, 2, op, 'query', allowQueries ? '[batch, dim] or [queries, batch, dim]' : '[batch, dim]');
  }
  checkBank(bank, op);
  checkSameDevice(op, query, bank);
  const [queries, batch, dim] = (query.dim === 3 ? query.shape : [1, ...query.shape]) as [number, number, number];
  const [bankRows, bankDim] = bank.shape as [number, number];
  if (bankDim !== dim) {
    throw new Error(`${op}: argument 'bank' ${formatShape(bank.shape)} has rows of ${bankDim} but query ${formatShape(query.shape)} has dim ${dim}`);
  }
  if (batch === 0) throw new Error(`${op}: argument 'query' must have at least one row, got shape ${formatShape(query.shape)}`);
  const scale = scaleOf(temperature, op);
  const held = holdIndices(indices, query.device, op, 'indices');
  try {
    if (held.length === 0 || held.length % batch !== 0) {
      throw new Error(`${op}: argument 'indices' has length ${held.length}, which is not a positive multiple of the batch size ${batch}`);
    }
    const position = firstOutOfRange(indices, held.values, bankRows);
    if (position >= 0) {
      throw new Error(`${op}: argument 'indices' holds ${held.values[position]} at position ${position}, out of range for a bank of ${bankRows} rows`);
    }
  } catch (error) {
    held.release();
    throw error;
  }
  const geometry = { queries, queryShape: query.shape, batch, columns: held.length / batch, dim, bankRows, scale,
    indexStorage: held.tensor.storage };
  return [geometry, held];
}

// ---- the two linear ops, each the other's backward -----------------------------------------------

function memoryLogitsRecorded(query: Tensor, bank: Tensor, geometry: BankGeometry): Tensor {
  const { queries, queryShape, batch, columns, dim, bankRows, scale, indexStorage } = geometry;
  const out = Tensor.empty(queryShape.length === 3 ? [queries, batch, columns] : [batch, columns], query.device);
  native().memoryLogitsForward(query.storage.handle, bank.storage.handle, indexStorage.handle, out.storage.handle, batch, columns,
    dim, bankRows, scale, queries);
  return recordOperation('memoryLogits', out, [query], [bank], (grad, context) => [
    memoryLogitsTransposeRecorded(grad, context.saved[0]!, geometry),
  ], retainIndices(geometry));
}

/** (1/τ) Σ_k g[u, k] · bank[idx[u, k]]: the query gradient of memoryLogits, as a recorded op. */
function memoryLogitsTransposeRecorded(grad: Tensor, bank: Tensor, geometry: BankGeometry): Tensor {
  const { queries, queryShape, batch, columns, dim, bankRows, scale, indexStorage } = geometry;
  const out = Tensor.empty(queryShape, grad.device);
  native().memoryLogitsTranspose(grad.storage.handle, bank.storage.handle, indexStorage.handle, out.storage.handle, batch, columns,
    dim, bankRows, scale, queries);
  return recordOperation('memoryLogitsTranspose', out, [grad], [bank], (gradOut, context) => [
    memoryLogitsRecorded(gradOut, context.saved[0]!, geometry),
  ], retainIndices(geometry));
}

/**
 * logits[u, k] = ⟨bank[indices[u·K + k]], query[u]⟩ / temperature: query [B, D], bank [M, D]
 * (must not require grad), indices: B·K values in [0, M) (an IndexTensor on the query's device,
 * or an Int32Array copied there for this call) → [B, K]. A query
 * [Q, B, D] (Q embeddings of the same B items, sharing the keys) gives [Q, B, K], each slice q
 * bit-identical to memoryLogits(query[q]) and each gathered bank row read once for all Q.
 */
export function memoryLogits(query: Tensor, bank: Tensor, indices: IndexInput, options: MemoryLogitsOptions): Tensor {
  const op = 'memoryLogits';
  const { temperature } = readOptions(options, ['temperature'], op);
  const [geometry, held] = geometryOf(query, bank, indices, temperature, op, true);
  try {
    return memoryLogitsRecorded(query, bank, geometry);
  } finally {
    held.release();
  }
}

// ---- InfoNCE ------------------------------------------------------------------------------------

/**
 * Σ_u w_u · (mean over the first `positives` columns of −log softmax(logits[u, ·])) / B over the
 * memory logits (a scalar). weights [B] is optional and may require grad.
 */
export function memoryInfoNCE(query: Tensor, bank: Tensor, indices: IndexInput, options: MemoryInfoNceOptions): Tensor {
  const op = 'memoryInfoNCE';
  const { positives, temperature, weights: weightOption } = readOptions(options, ['positives', 'temperature', 'weights'], op);
  const [geometry, held] = geometryOf(query, bank, indices, temperature, op);
  try {
    const { batch, columns, dim, bankRows, scale } = geometry;
    if (typeof positives !== 'number' || !Number.isInteger(positives) || positives < 1 || positives > columns) {
      throw new Error(`${op}: positives must be an integer in [1, K = ${columns}], got ${describeValue(positives)}`);
    }
    const weights = checkWeights(weightOption, [batch], query.device, op);
    const loss = Tensor.empty([], query.device);
    const logits = Tensor.empty([batch, columns], query.device);
    const stats = Tensor.empty([batch, 2], query.device);
    native().memoryInfoNceForward(query.storage.handle, bank.storage.handle, geometry.indexStorage.handle,
      weights ? weights.storage.handle : null, loss.storage.handle, logits.storage.handle, stats.storage.handle, batch, columns, dim,
      bankRows, scale, positives);
    const inputs = weights ? [query, weights] : [query];
    const saved = weights ? [bank, query, logits, stats, weights] : [bank, query, logits, stats];
    const result = recordOperation(op, loss, inputs, saved, (grad, context) =>
      memoryInfoNceBackward(grad, context, geometry, positives), retainIndices(geometry));
    logits.dispose();
    stats.dispose();
    return result;
  } finally {
    held.release();
  }
}

function memoryInfoNceBackward(grad: Tensor, context: BackwardContext, geometry: BankGeometry, positives: number): (Tensor | null)[] {
  const [bank, query, logits, stats, weights] = context.saved as [Tensor, Tensor, Tensor, Tensor, Tensor | undefined];
  const needQuery = context.needsInputGrad[0] ?? false;
  const needWeights = context.needsInputGrad[1] ?? false;
  const gradients = fusedOrComposite('memoryInfoNCE', context, {
    fused: () => {
      const { batch, columns, dim, bankRows, scale, indexStorage } = geometry;
      const gradQuery = needQuery ? Tensor.empty([batch, dim], query.device) : null;
      const gradWeights = needWeights ? Tensor.empty([batch], query.device) : null;
      native().memoryInfoNceBackward(bank.storage.handle, indexStorage.handle, logits.storage.handle, stats.storage.handle,
        weights ? weights.storage.handle : null, grad.storage.handle, gradQuery ? gradQuery.storage.handle : null,
        gradWeights ? gradWeights.storage.handle : null, batch, columns, dim, bankRows, scale, positives);
      return [gradQuery, gradWeights];
    },
    composite: () => memoryInfoNceBackwardComposite(grad, query, bank, weights ?? null, geometry, positives, needQuery, needWeights),
  });
  return weights ? gradients : [gradients[0]!];
}

/**
 * The InfoNCE gradients in differentiable ops, recomputing the logits from query (so the result
 * is differentiable in query, weights and grad):
 *   dquery = memoryLogitsTranspose((softmax(l) − T) · w_u · g / B),  T[u, k] = [k < P] / P
 *   dweights = −mean_{k<P} logSoftmax(l)[u, k] · g / B
 */
function memoryInfoNceBackwardComposite(grad: Tensor, query: Tensor, bank: Tensor, weights: Tensor | null, geometry: BankGeometry,
  positives: number, needQuery: boolean, needWeights: boolean): [Tensor | null, Tensor | null] {
  const { batch, columns } = geometry;
  const logits = memoryLogitsRecorded(query, bank, geometry);
  const perRow = affine(grad, 1 / batch, 0);
  let gradQuery: Tensor | null = null;
  if (needQuery) {
    const targetValues = new Float32Array(batch * columns);
    for (let u = 0; u < batch; u += 1) targetValues.fill(1 / positives, u * columns, u * columns + positives);
    const targets = tensor(targetValues, [batch, columns], { device: query.device });
    const probabilities = softmax(logits, 1);
    const difference = sub(probabilities, targets);
    const columnWeights = weights ? reshape(weights, [batch, 1]) : null;
    const rowScale = columnWeights ? mul(columnWeights, perRow) : perRow;
    const coefficients = mul(difference, rowScale);
    gradQuery = memoryLogitsTransposeRecorded(coefficients, bank, geometry);
    for (const intermediate of [targets, probabilities, difference, coefficients]) intermediate.dispose();
    if (columnWeights) {
      columnWeights.dispose();
      rowScale.dispose();
    }
  }
  let gradWeights: Tensor | null = null;
  if (needWeights) {
    const logProbabilities = logSoftmax(logits, 1);
    const positiveColumns = slice(logProbabilities, 1, 0, positives);
    const positiveMean = mean(positiveColumns, 1);
    const rowTerms = neg(positiveMean);
    gradWeights = mul(rowTerms, perRow);
    for (const intermediate of [logProbabilities, positiveColumns, positiveMean, rowTerms]) intermediate.dispose();
  }
  logits.dispose();
  perRow.dispose();
  return [gradQuery, gradWeights];
}

// ---- the momentum update ------------------------------------------------------------------------

/**
 * In place, no grad: bank[rows[i]] ← normalize(momentum · bank[rows[i]] + (1 − momentum) · z[i]),
 * normalize(x) = x / ‖x‖₂ with no epsilon (as the reference). rows: unique values in [0, M) (an
 * IndexTensor on the bank's device, or an Int32Array), one per row of z [rows.length, D]; z may require grad (it is read detached). Bumps the
 * bank's version, so a pending backward that saved the bank raises the in-place modification
 * error. A mixed row of norm 0 (or non-finite) is an Error naming the row, and the bank is left
 * unchanged: 0/0 would write a NaN row that poisons every later logit against it. On CUDA the
 * norms are device values, so that check is deferred (no host wait per step): the Error is thrown
 * by the next host read (`toFloat32Array()`, `item()`; the trainer reads once per log interval and
 * before every checkpoint), and the version is bumped although the bank stayed unchanged.
 */
export function memoryUpdate_(bank: Tensor, rows: IndexInput, z: Tensor, options: MemoryUpdateOptions): void {
  const op = 'memoryUpdate_';
  const { momentum } = readOptions(options, ['momentum'], op);
  checkBank(bank, op);
  checkTensor(z, op, 'z');
  checkRank(z, 2, op, 'z', '[rows, dim]');
  checkSameDevice(op, bank, z);
  const [bankRows, dim] = bank.shape as [number, number];
  if (z.shape[1] !== dim) {
    throw new Error(`${op}: argument 'z' ${formatShape(z.shape)} has rows of ${z.shape[1]} but bank ${formatShape(bank.shape)} has dim ${dim}`);
  }
  if (z.storage === bank.storage) throw new Error(`${op}: argument 'z' must not share storage with the bank`);
  if (typeof momentum !== 'number' || !Number.isFinite(momentum) || momentum < 0 || momentum > 1) {
    throw new Error(`${op}: momentum must be a number in [0, 1], got ${describeValue(momentum)}`);
  }
  const held = holdIndices(rows, bank.device, op, 'rows');
  try {
    if (held.length !== z.shape[0]) {
      throw new Error(`${op}: argument 'rows' has length ${held.length} but z ${formatShape(z.shape)} has ${z.shape[0]} rows`);
    }
    const seen = new Uint8Array(bankRows);
    held.values.forEach((row, position) => {
      if (row < 0 || row >= bankRows) {
        throw new Error(`${op}: argument 'rows' holds ${row} at position ${position}, out of range for a bank of ${bankRows} rows`);
      }
      if (seen[row]) throw new Error(`${op}: argument 'rows' holds ${row} more than once (again at position ${position}); rows must be unique`);
      seen[row] = 1;
    });
    native().memoryUpdate(bank.storage.handle, held.handle, z.storage.handle, bankRows, dim, momentum);
  } finally {
    held.release();
  }
  bank.storage.version += 1;
}
