// Matrix products on the native GEMM: matmul and linear (torch.matmul / torch.nn.functional.linear
// semantics), with autograd of any order. Native kernel: native/src/cpu/gemm.cpp (binding
// native/binding/gemm.cpp). Tests: test/ops/gemm.test.ts.
//
// Everything goes through one recorded op, product(A, B, tA, tB) = op(A)·op(B), whose operands
// are dense row-major matrices read straight from their storages (a tensor [..., r, c] is the
// matrix [Π(...)·r, c], so folding leading dims needs no copy). Its backward is the same op with
// other transpose flags, so gradients of gradients stay inside it. With G = dL/dC:
//   dL/dop(A) = G·op(B)ᵀ   →  dA = tA ? op(B)·Gᵀ : G·op(B)ᵀ
//   dL/dop(B) = op(A)ᵀ·G   →  dB = tB ? Gᵀ·op(A) : op(A)ᵀ·G
import { native } from '../native/index.js';
import { recordOperation, type BackwardContext } from '../autograd/node.js';
import { Tensor, formatShape, shapeSize } from '../tensor/tensor.js';
import { noGrad } from '../autograd/mode.js';
import { checkSameDevice, checkTensor } from './checks.js';
import { expand } from './elementwise.js';
import { sum } from './reduce.js';
import { reshape } from './layout.js';

/** A tensor read as a dense row-major matrix [rows, cols] (rows·cols = its size). */
type Dims = readonly [number, number];

function savedAt(context: BackwardContext, flags: readonly boolean[], index: number): Tensor {
  let position = 0;
  for (let i = 0; i < index; i += 1) if (flags[i]) position += 1;
  return context.saved[position]!;
}

/**
 * op(A)·op(B) with A read as aDims and B as bDims (op = transpose when the flag is set); the
 * result, m×n, gets `outShape` (any shape of m·n elements). Optionally + bias[n] on every row.
 */
function product(
  a: Tensor, aDims: Dims, transposeA: boolean,
  b: Tensor, bDims: Dims, transposeB: boolean,
  outShape: readonly number[], bias: Tensor | null = null,
): Tensor {
  const m = transposeA ? aDims[1] : aDims[0];
  const k = transposeA ? aDims[0] : aDims[1];
  const n = transposeB ? bDims[0] : bDims[1];
  if ((transposeB ? bDims[1] : bDims[0]) !== k || shapeSize(outShape) !== m * n) {
    throw new Error(`lmcl internal: product of ${formatShape(aDims)}${transposeA ? 'ᵀ' : ''} and ${formatShape(bDims)}${transposeB ? 'ᵀ' : ''} into ${formatShape(outShape)}`);
  }
  let out: Tensor;
  if (bias) {
    // C starts as the bias broadcast over rows; the GEMM adds op(A)·op(B) onto it (beta = 1).
    out = noGrad(() => {
      const row = reshape(bias, [1, n]);
      const expanded = expand(row, [m, n]);
      row.dispose();
      return expanded;
    });
    if (!sameShape(outShape, [m, n])) {
      const view = out.viewAs(outShape);
      out.dispose();
      out = view;
    }
  } else {
    out = Tensor.empty(outShape, a.device);
  }
  if (m * n > 0) {
    native().gemm(a.storage.handle, b.storage.handle, out.storage.handle, transposeA, transposeB, m, n, k, 1, bias ? 1 : 0);
  }
  const gDims: Dims = [m, n];
  // A is needed for dB, B for dA.
  const flags = [b.requiresGrad, a.requiresGrad];
  const saved = [a, b].filter((_, index) => flags[index]);
  const inputs = bias ? [a, b, bias] : [a, b];
  return recordOperation(bias ? 'linear' : 'matmul', out, inputs, saved, (grad, context) => {
    const [needA, needB, needBias] = context.needsInputGrad;
    let gradA: Tensor | null = null;
    let gradB: Tensor | null = null;
    if (needA) {
      const savedB = savedAt(context, flags, 1);
      gradA = transposeA
        ? product(savedB, bDims, transposeB, grad, gDims, true, a.shape)
        : product(grad, gDims, false, savedB, bDims, !transposeB, a.shape);
    }
    if (needB) {
      const savedA = savedAt(context, flags, 0);
      gradB = transposeB
        ? product(grad, gDims, true, savedA, aDims, transposeA, b.shape)
        : product(savedA, aDims, !transposeA, grad, gDims, false, b.shape);
    }
    const result: (Tensor | null)[] = [gradA, gradB];
    if (bias) result.push(needBias ? rowSum(grad, m, n) : null);
    return result;
  });
}

/** Σ over the rows of grad read as [m, n] (the bias gradient), shaped [n]. */
function rowSum(grad: Tensor, m: number, n: number): Tensor {
  if (grad.shape.length >= 1 && grad.shape[grad.shape.length - 1] === n) {
    if (grad.shape.length === 1) return reshape(grad, [n]);
    return sum(grad, grad.shape.slice(0, -1).map((_, index) => index));
  }
  const matrix = reshape(grad, [m, n]);
  const result = sum(matrix, 0);
  matrix.dispose();
  return result;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((extent, index) => extent === b[index]);
}

/**
 * Matrix product like torch.matmul for these cases:
 *   [k]·[k] → [] (dot);  [m, k]·[k] → [m];  [k]·[k, n] → [n];  [m, k]·[k, n] → [m, n];
 *   [..., m, k]·[k, n] or [k] → [..., m, n] or [..., m] (leading dims of a folded into rows).
 * Batched products with leading dims on b are not supported (no batched GEMM binding yet).
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  const op = 'matmul';
  checkTensor(a, op, 'a');
  checkTensor(b, op, 'b');
  checkSameDevice(op, a, b);
  if (a.shape.length === 0 || b.shape.length === 0) {
    throw new Error(`${op}: both arguments must be at least 1-D, got shapes ${formatShape(a.shape)} and ${formatShape(b.shape)} (use mul for scalars)`);
  }
  if (b.shape.length > 2) {
    throw new Error(`${op}: batched products with a ${b.shape.length}-D second argument are not supported (shapes ${formatShape(a.shape)} and ${formatShape(b.shape)}); b must be 1-D or 2-D`);
  }
  const k = a.shape[a.shape.length - 1]!;
  const bRows = b.shape[0]!;
  if (k !== bRows) {
    throw new Error(`${op}: shapes ${formatShape(a.shape)} and ${formatShape(b.shape)} cannot be multiplied (${k} ≠ ${bRows})`);
  }
  const leading = a.shape.slice(0, -1);
  const rows = shapeSize(leading);
  if (b.shape.length === 1) {
    return product(a, [rows, k], false, b, [k, 1], false, leading);
  }
  const n = b.shape[1]!;
  return product(a, [rows, k], false, b, [k, n], false, [...leading, n]);
}

/**
 * y = x·weightᵀ + bias, like torch.nn.functional.linear: x [..., in] (at least 1-D),
 * weight [out, in], bias [out] → [..., out].
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const op = 'linear';
  checkTensor(x, op, 'input');
  checkTensor(weight, op, 'weight');
  if (bias !== undefined && bias !== null) checkTensor(bias, op, 'bias');
  if (x.shape.length === 0) throw new Error(`${op}: argument 'input' must be at least 1-D ([..., in]), got shape []`);
  if (weight.shape.length !== 2) {
    throw new Error(`${op}: argument 'weight' must be 2-D ([out, in]), got shape ${formatShape(weight.shape)}`);
  }
  const [outFeatures, inFeatures] = weight.shape as [number, number];
  if (x.shape[x.shape.length - 1] !== inFeatures) {
    throw new Error(`${op}: input ${formatShape(x.shape)} has ${x.shape[x.shape.length - 1]} features in its last dim, but weight ${formatShape(weight.shape)} expects ${inFeatures}`);
  }
  if (bias && (bias.shape.length !== 1 || bias.shape[0] !== outFeatures)) {
    throw new Error(`${op}: argument 'bias' must have shape [${outFeatures}] (weight ${formatShape(weight.shape)}), got ${formatShape(bias.shape)}`);
  }
  checkSameDevice(op, x, weight, bias);
  const leading = x.shape.slice(0, -1);
  return product(x, [shapeSize(leading), inFeatures], false, weight, [outFeatures, inFeatures], true, [...leading, outFeatures], bias ?? null);
}
