// L2 normalisation and cosine similarity (torch.nn.functional.normalize with p = 2, and
// cosine_similarity as PyTorch 1.13 computes it). Native kernels: native/src/cpu/normalize.cpp.
// Tests: test/ops/normalize.test.ts.
//
//   normalize:  y = x / max(‖x‖, eps);  dx = (g − [‖x‖ ≥ eps] · y · Σ g ⊙ y) / max(‖x‖, eps)
//   cosine:     n_a = max(‖a‖, eps), n_b = max(‖b‖, eps), out = Σ (a / n_a) ⊙ (b / n_b)
//               ga = g / n_a · (b / n_b − out · a / n_a), gb symmetric. Torch 1.13 clamps the norms
//               in place under no_grad, so its gradient never sees the clamp (only matters when a
//               norm is below eps); we reproduce that. (The older formula (a·b) / sqrt(max(‖a‖²‖b‖²,
//               eps²)) is not what 1.13 computes: with ‖a‖ = ‖b‖ = 1e-5 it gives 0.01, 1.13 gives 1.)
// Without createGraph the backward is a fused native kernel. With createGraph it is written in
// differentiable ops on the saved input and output, with the clamped norm as a small op of its
// own (clampedNorm below), so gradients of gradients work.
import { native } from '../native/index.js';
import { fusedOrComposite } from '../autograd/fused.js';
import { recordOperation } from '../autograd/node.js';
import { Tensor } from '../tensor/tensor.js';
import { full } from '../tensor/creation.js';
import { checkSameDevice, checkTensor, describeValue, normaliseDim, readOptions } from './checks.js';
import { affine, broadcastShapes, div, expand, maximum, mul, step, sub } from './elementwise.js';
import { reshape } from './layout.js';
import { sum } from './reduce.js';
import { axisView } from './softmax.js';

export interface NormalizeOptions {
  /** Axis to normalise along (default 1; may be negative). */
  dim?: number;
  /** Norm order; only 2 is supported. */
  p?: number;
  /** Lower bound of the denominator (default 1e-12). */
  eps?: number;
}

export interface CosineSimilarityOptions {
  /** Axis of the broadcast shape to reduce (default 1; may be negative). */
  dim?: number;
  /** Lower bound of each norm (default 1e-8). */
  eps?: number;
}

function checkEps(eps: unknown, op: string): asserts eps is number {
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps < 0) {
    throw new TypeError(`${op}: eps must be a finite number >= 0, got ${describeValue(eps)}`);
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((extent, index) => extent === b[index]);
}

/** 1 where values ≥ threshold, else 0 (a constant: no gradient). */
function atLeast(values: Tensor, threshold: number): Tensor {
  const gap = affine(values, -1, threshold);
  const below = step(gap);
  const result = affine(below, -1, 1);
  gap.dispose();
  below.dispose();
  return result;
}

/**
 * max(‖x‖, eps) along an axis (keep-dim shape), from the norms the forward kernel computed, as a
 * differentiable function of x: d/dx = m · x / max(‖x‖, eps) with m = [‖x‖ ≥ eps] when `masked`
 * (the true derivative of the clamp) or m = 1 (torch 1.13 cosine_similarity, which does not
 * differentiate its clamp).
 */
function clampedNorm(x: Tensor, norms: Tensor, eps: number, masked: boolean): Tensor {
  const floor = full([], eps, { device: norms.device });
  const value = maximum(norms, floor);
  floor.dispose();
  const mask = masked ? atLeast(norms, eps) : null;
  const result = recordOperation('clampedNorm', value, [x], mask ? [x, value, mask] : [x, value], (grad, context) => {
    const [savedX, savedValue, savedMask] = context.saved as [Tensor, Tensor, Tensor | undefined];
    const direction = div(savedX, savedValue);
    const weight = savedMask ? mul(grad, savedMask) : grad;
    const gradInput = mul(direction, weight);
    direction.dispose();
    if (weight !== grad) weight.dispose();
    return [gradInput];
  });
  mask?.dispose();
  return result;
}

/** x / max(‖x‖₂, eps) along dim (torch.nn.functional.normalize; only p = 2). */
export function normalize(x: Tensor, options?: NormalizeOptions): Tensor {
  checkTensor(x, 'normalize', 'x');
  const { dim = 1, p = 2, eps = 1e-12 } = readOptions(options, ['dim', 'p', 'eps'], 'normalize');
  if (p !== 2) throw new Error(`normalize: only p = 2 is supported, got p = ${describeValue(p)}`);
  checkEps(eps, 'normalize');
  const axis = normaliseDim(dim as number, x.dim, 'normalize');
  if (x.dim === 0) {
    const row = reshape(x, [1]);
    const result = normalize(row, { dim: 0, eps });
    const out = reshape(result, []);
    row.dispose();
    result.dispose();
    return out;
  }
  const { outer, extent, inner } = axisView(x.shape, axis);
  const keptShape = x.shape.map((size, index) => (index === axis ? 1 : size));
  const out = Tensor.empty(x.shape, x.device);
  const norms = Tensor.empty(keptShape, x.device);
  native().normalizeForward(x.storage.handle, out.storage.handle, norms.storage.handle, outer, extent, inner, eps);
  const result = recordOperation('normalize', out, [x], [x, out, norms], (grad, context) => {
    const [savedX, y, savedNorms] = context.saved as [Tensor, Tensor, Tensor];
    return [fusedOrComposite('normalize', context, {
      fused: () => {
        const gradInput = Tensor.empty(y.shape, y.device);
        native().normalizeBackward(y.storage.handle, savedNorms.storage.handle, grad.storage.handle, gradInput.storage.handle,
          outer, extent, inner, eps);
        return gradInput;
      },
      composite: () => {
        const denominator = clampedNorm(savedX, savedNorms, eps, true);
        const mask = atLeast(savedNorms, eps);
        const product = mul(grad, y);
        const total = sum(product, axis, true);
        const masked = mul(total, mask);
        const projection = mul(y, masked);
        const numerator = sub(grad, projection);
        const gradInput = div(numerator, denominator);
        for (const intermediate of [denominator, mask, product, total, masked, projection, numerator]) intermediate.dispose();
        return gradInput;
      },
    })];
  });
  norms.dispose();
  return result;
}

/**
 * Cosine similarity of a and b along dim (torch 1.13 F.cosine_similarity): a and b broadcast to a
 * common shape, dim indexes that shape and is removed from the result.
 */
export function cosineSimilarity(a: Tensor, b: Tensor, options?: CosineSimilarityOptions): Tensor {
  checkTensor(a, 'cosineSimilarity', 'a');
  checkTensor(b, 'cosineSimilarity', 'b');
  checkSameDevice('cosineSimilarity', a, b);
  const { dim = 1, eps = 1e-8 } = readOptions(options, ['dim', 'eps'], 'cosineSimilarity');
  checkEps(eps, 'cosineSimilarity');
  const shape = broadcastShapes(a.shape, b.shape, 'cosineSimilarity');
  const axis = normaliseDim(dim as number, shape.length, 'cosineSimilarity');
  if (shape.length === 0) {
    const left = reshape(a, [1]);
    const right = reshape(b, [1]);
    const result = cosineSimilarity(left, right, { dim: 0, eps });
    left.dispose();
    right.dispose();
    return result;
  }
  const left = sameShape(a.shape, shape) ? a : expand(a, shape);
  const right = sameShape(b.shape, shape) ? b : expand(b, shape);
  const { outer, extent, inner } = axisView(shape, axis);
  const keptShape = shape.map((size, index) => (index === axis ? 1 : size));
  const outShape = shape.filter((_, index) => index !== axis);
  const out = Tensor.empty(outShape, a.device);
  const normsA = Tensor.empty(keptShape, a.device);
  const normsB = Tensor.empty(keptShape, a.device);
  native().cosineSimilarityForward(left.storage.handle, right.storage.handle, out.storage.handle, normsA.storage.handle,
    normsB.storage.handle, outer, extent, inner, eps);
  const result = recordOperation('cosineSimilarity', out, [left, right], [left, right, out, normsA, normsB], (grad, context) => {
    const [savedA, savedB, savedOut, savedNormsA, savedNormsB] = context.saved as [Tensor, Tensor, Tensor, Tensor, Tensor];
    const [needA, needB] = context.needsInputGrad;
    return fusedOrComposite('cosineSimilarity', context, {
      fused: () => {
        const gradA = needA ? Tensor.empty(shape, a.device) : null;
        const gradB = needB ? Tensor.empty(shape, a.device) : null;
        native().cosineSimilarityBackward(savedA.storage.handle, savedB.storage.handle, savedOut.storage.handle,
          savedNormsA.storage.handle, savedNormsB.storage.handle, grad.storage.handle, gradA?.storage.handle ?? null,
          gradB?.storage.handle ?? null, outer, extent, inner, eps);
        return [gradA, gradB];
      },
      composite: () => {
        const normA = clampedNorm(savedA, savedNormsA, eps, false);
        const normB = clampedNorm(savedB, savedNormsB, eps, false);
        const unitA = div(savedA, normA);
        const unitB = div(savedB, normB);
        const similarity = reshape(savedOut, keptShape);
        const gradKept = reshape(grad, keptShape);
        // g / n_self · (unit_other − out · unit_self)
        const side = (unitSelf: Tensor, unitOther: Tensor, normSelf: Tensor): Tensor => {
          const along = mul(similarity, unitSelf);
          const difference = sub(unitOther, along);
          const weight = div(gradKept, normSelf);
          const gradSide = mul(weight, difference);
          along.dispose();
          difference.dispose();
          weight.dispose();
          return gradSide;
        };
        const gradA = needA ? side(unitA, unitB, normA) : null;
        const gradB = needB ? side(unitB, unitA, normB) : null;
        for (const intermediate of [normA, normB, unitA, unitB, similarity, gradKept]) intermediate.dispose();
        return [gradA, gradB];
      },
    });
  });
  normsA.dispose();
  normsB.dispose();
  if (left !== a) left.dispose();
  if (right !== b) right.dispose();
  return result;
}
