// Layout ops (permute/transpose, concat/stack, slice/chunk/split, indexSelect/indexAdd): forward
// vs the plain-JS references in test/reference/layout_reference.ts over ranks 1..5, negative
// dims, empty slices and steps > 1; first- and second-order gradients by finite differences;
// bad input. Tolerances: copies must be bit-exact; indexAdd sums repeated rows in float32, so
// rtol 1e-6 / atol 1e-6 against float64; gradients see test/helpers/gradcheck.ts.
import { describe, expect, it } from 'vitest';
import { F, Tensor, grad, memory, setNumThreads, tensor, tidy } from '../../src/index.js';
import { native } from '../../src/native/index.js';
import { gradcheck, gradgradcheck } from '../helpers/gradcheck.js';
import { expectClose, randomTensor } from '../helpers/random.js';
import { indexStorage } from '../helpers/indices.js';
import {
  type Dense,
  dense,
  pythonSliceIndices,
  referenceConcat,
  referenceIndexAdd,
  referenceIndexSelect,
  referencePermute,
  referenceSlice,
  referenceSliceBackward,
  referenceStack,
} from '../reference/layout_reference.js';

function asDense(x: Tensor): Dense {
  return dense(x.toFloat32Array(), x.shape);
}

/** Copies move float32 values unchanged: every element must be bit-identical. */
function expectExact(actual: Tensor, expected: Dense, label: string): void {
  expect(actual.shape, `${label}: shape`).toEqual(expected.shape);
  const values = actual.toFloat32Array();
  expect(values.length).toBe(expected.values.length);
  for (let index = 0; index < values.length; index += 1) {
    if (values[index] !== expected.values[index]) {
      throw new Error(`${label}: element ${index} is ${values[index]}, expected ${expected.values[index]}`);
    }
  }
}

function randomInt(low: number, high: number): number {
  return low + Math.floor(Math.random() * (high - low + 1));
}

function randomPermutation(rank: number): number[] {
  const order = Array.from({ length: rank }, (_, index) => index);
  for (let index = rank - 1; index > 0; index -= 1) {
    const other = randomInt(0, index);
    [order[index], order[other]] = [order[other]!, order[index]!];
  }
  return order;
}

const sameBits = (a: Float32Array, b: Float32Array): boolean => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));

describe('permute and transpose', () => {
  it('match the reference for ranks 1..5, every kind of permutation, negative dims', () => {
    const cases: [number[], number[]][] = [
      [[7], [0]],
      [[7], [-1]],
      [[3, 5], [1, 0]],
      [[37, 45], [-1, -2]],
      [[3, 37, 45], [0, 2, 1]],
      [[4, 1, 6], [2, 1, 0]],
      [[2, 3, 4, 5], [0, 2, 3, 1]],
      [[2, 3, 4, 5], [3, 1, 0, 2]],
      [[2, 3, 4, 5, 6], [4, 0, 3, 1, 2]],
      [[2, 3, 1, 5, 6], [0, 1, 3, 2, 4]],
      [[16, 3, 33, 35], [0, 2, 3, 1]],   // NCHW -> NHWC, threaded transpose tiles
      [[16, 33, 35, 3], [0, 3, 1, 2]],   // NHWC -> NCHW
      [[5, 0, 3], [2, 0, 1]],
    ];
    for (let trial = 0; trial < 6; trial += 1) {
      const rank = randomInt(1, 5);
      const shape = Array.from({ length: rank }, () => randomInt(1, 6));
      cases.push([shape, randomPermutation(rank).map((dim) => (Math.random() < 0.5 ? dim - rank : dim))]);
    }
    for (const [shape, dims] of cases) {
      const x = randomTensor(shape);
      expectExact(F.permute(x, dims), referencePermute(asDense(x), dims), `permute ${JSON.stringify([shape, dims])}`);
    }
  });

  it('a large permute is exact on every thread count', () => {
    const x = randomTensor([64, 32, 40, 24]);
    const dims = [0, 3, 1, 2];
    const expected = referencePermute(asDense(x), dims);
    setNumThreads(1);
    try {
      expectExact(F.permute(x, dims), expected, 'permute 1 thread');
    } finally {
      setNumThreads(2);
    }
    expectExact(F.permute(x, dims), expected, 'permute 2 threads');
    expectExact(F.permute(x, [3, 2, 1, 0]), referencePermute(asDense(x), [3, 2, 1, 0]), 'reverse');
  });

  it('rank-0 permute and transpose copy the scalar', () => {
    const x = tensor([2.5], []);
    expect(F.permute(x, []).item()).toBe(2.5);
    expect(F.transpose(x, 0, 0).item()).toBe(2.5);
  });

  it('transpose swaps two dims (negative dims allowed; same dim is a copy)', () => {
    const x = randomTensor([2, 3, 4, 5]);
    expectExact(F.transpose(x, 1, -1), referencePermute(asDense(x), [0, 3, 2, 1]), 'transpose 1,-1');
    expectExact(F.transpose(x, -4, 2), referencePermute(asDense(x), [2, 1, 0, 3]), 'transpose -4,2');
    const same = F.transpose(x, 2, 2);
    expectExact(same, asDense(x), 'transpose 2,2');
    expect(same.storage).not.toBe(x.storage);
  });

  it('gradients: first and second order', () => {
    const x = randomTensor([2, 3, 4], { requiresGrad: true });
    gradcheck((t) => F.permute(t, [2, 0, 1]), [x]);
    gradcheck((t) => F.transpose(t, 0, -1), [x]);
    gradgradcheck((t) => F.square(F.permute(t, [1, 2, 0])), [x]);
    const y = randomTensor([3, 2, 4], { requiresGrad: true });
    gradgradcheck((a, b) => F.mul(F.transpose(a, 0, 1), b), [x, y]);
  });

  it('rejects bad dims', () => {
    const x = randomTensor([2, 3, 4]);
    expect(() => F.permute(x, [0, 1])).toThrow(/permute: dims \[0,1\] has 2 entries but x has shape \[2, 3, 4\]/);
    expect(() => F.permute(x, [0, 1, 1])).toThrow(/permute: dims \[0,1,1\] is not a permutation/);
    expect(() => F.permute(x, [0, 1, 3])).toThrow(/permute: dim 3 is out of range for a 3-D tensor/);
    expect(() => F.permute(x, [0, 1, 1.5])).toThrow(/permute: dim must be an integer/);
    expect(() => F.permute(x, 'abc' as never)).toThrow(/permute: dims must be an array/);
    expect(() => F.transpose(x, 0, 3)).toThrow(/transpose: dim 3 is out of range/);
    expect(() => F.permute(randomTensor(new Array(9).fill(1)), [0, 1, 2, 3, 4, 5, 6, 7, 8])).toThrow(/permute: tensors of rank 9/);
    const gone = randomTensor([2, 2]);
    gone.dispose();
    expect(() => F.permute(gone, [1, 0])).toThrow(/permute.*was disposed/);
  });
});

describe('concat and stack', () => {
  it('concat matches the reference (ranks 1..5, negative dims, empty parts, one part)', () => {
    const cases: [number[][], number][] = [
      [[[3], [5], [1]], 0],
      [[[3, 4], [2, 4]], 0],
      [[[3, 4], [3, 1], [3, 6]], 1],
      [[[3, 4], [3, 2]], -1],
      [[[2, 3, 4], [2, 0, 4], [2, 5, 4]], 1],
      [[[2, 3, 4, 5], [2, 3, 4, 2]], 3],
      [[[2, 3, 4, 5, 2], [2, 3, 1, 5, 2], [2, 3, 2, 5, 2]], -3],
      [[[4, 5]], 1],
      [[[0, 5], [0, 5]], 0],
      [[[300, 200], [300, 100], [300, 50]], 1],
      [[[1000, 70], [500, 70]], 0],
    ];
    for (const [shapes, dim] of cases) {
      const parts = shapes.map((shape) => randomTensor(shape));
      const label = `concat ${JSON.stringify([shapes, dim])}`;
      expectExact(F.concat(parts, dim), referenceConcat(parts.map(asDense), dim), label);
    }
    expect(F.cat).toBe(F.concat);
  });

  it('stack matches the reference for every position of the new dim', () => {
    for (const shape of [[5], [2, 3], [2, 3, 4], [1, 2, 3, 2]]) {
      const parts = [randomTensor(shape), randomTensor(shape), randomTensor(shape)];
      for (let dim = -(shape.length + 1); dim <= shape.length; dim += 1) {
        expectExact(F.stack(parts, dim), referenceStack(parts.map(asDense), dim), `stack ${JSON.stringify([shape, dim])}`);
      }
    }
    const scalars = [tensor([1], []), tensor([2], [])];
    expect(Array.from(F.stack(scalars).toFloat32Array())).toEqual([1, 2]);
  });

  it('stack leaves no tensors behind (its reshaped views are disposed)', () => {
    const parts = [randomTensor([3, 4]), randomTensor([3, 4])];
    const before = memory().liveTensors;
    const out = F.stack(parts, 1);
    expect(memory().liveTensors).toBe(before + 1);
    out.dispose();
    tidy(() => {
      F.sum(F.stack(parts, 0));
    });
    expect(memory().liveTensors).toBe(before);
  });

  it('gradients: first and second order', () => {
    const a = randomTensor([2, 3], { requiresGrad: true });
    const b = randomTensor([2, 1], { requiresGrad: true });
    const c = randomTensor([2, 4], { requiresGrad: true });
    gradcheck((p, q, r) => F.concat([p, q, r], 1), [a, b, c]);
    gradgradcheck((p, q, r) => F.square(F.concat([p, q, r], -1)), [a, b, c]);
    const d = randomTensor([2, 3], { requiresGrad: true });
    gradcheck((p, q) => F.stack([p, q, p], 1), [a, d]);
    gradgradcheck((p, q) => F.mul(F.stack([p, q], 0), F.stack([q, p], 0)), [a, d]);
    // A part that does not need a gradient gets none.
    const constant = randomTensor([2, 3]);
    const [g] = grad(F.sum(F.square(F.concat([constant, a], 0))), [a]);
    expectClose(g!.toFloat32Array(), Array.from(a.toFloat32Array(), (v) => 2 * v), { rtol: 1e-6 });
  });

  it('rejects bad inputs', () => {
    const a = randomTensor([2, 3]);
    expect(() => F.concat([], 0)).toThrow(/concat: expected a non-empty array of tensors/);
    expect(() => F.concat([a, randomTensor([3, 3])], 1)).toThrow(/concat: tensors\[1\] has shape \[3, 3\] but tensors\[0\] has \[2, 3\]; they must match in every dimension except dim 1/);
    expect(() => F.concat([a, randomTensor([2, 3, 1])], 0)).toThrow(/concat: tensors\[1\] has shape \[2, 3, 1\]/);
    expect(() => F.concat([a, a], 2)).toThrow(/concat: dim 2 is out of range for a 2-D tensor/);
    expect(() => F.concat([tensor([1], [])], 0)).toThrow(/concat: zero-dimensional tensors cannot be concatenated/);
    expect(() => F.concat([a, 3 as never], 0)).toThrow(/concat: argument 'tensors\[1\]' must be a Tensor/);
    expect(() => F.stack([a, randomTensor([3, 2])], 0)).toThrow(/stack: every tensor must have the same shape, got \[2, 3\] at entry 0 and \[3, 2\] at entry 1/);
    expect(() => F.stack([a], 3)).toThrow(/stack: dim 3 is out of range for a 3-D tensor/);
  });
});

describe('slice, chunk and split', () => {
  it('slice matches Python slicing (negative and clamped bounds, empty results, steps > 1)', () => {
    const cases: [number[], number, number, number | undefined, number][] = [
      [[10], 0, 2, 7, 1],
      [[10], 0, -3, undefined, 1],
      [[10], 0, -30, 30, 1],
      [[10], 0, 1, 9, 3],
      [[10], -1, 0, undefined, 4],
      [[10], 0, 7, 2, 1],      // empty
      [[10], 0, 12, 20, 1],    // empty, clamped
      [[10], 0, -2, -5, 2],    // empty
      [[4, 9], 1, 2, -1, 2],
      [[4, 9], 0, 1, 3, 1],
      [[4, 9], -2, -4, undefined, 1],
      [[3, 4, 5], 1, 0, 4, 3],
      [[3, 4, 5], -1, 1, 5, 2],
      [[2, 3, 4, 5], 2, 1, 3, 1],
      [[2, 3, 4, 5, 6], 4, -5, -1, 2],
      [[2, 3, 4, 5, 6], 0, 1, 2, 1],
      [[2, 0, 4], 2, 1, 3, 1],
      [[600, 300], 0, 3, 597, 2],
      [[300, 600], 1, 5, undefined, 3],
    ];
    for (let trial = 0; trial < 20; trial += 1) {
      const rank = randomInt(1, 5);
      const shape = Array.from({ length: rank }, () => randomInt(1, 7));
      const dim = randomInt(-rank, rank - 1);
      const extent = shape[dim < 0 ? dim + rank : dim]!;
      cases.push([shape, dim, randomInt(-extent - 2, extent + 2), Math.random() < 0.2 ? undefined : randomInt(-extent - 2, extent + 2), randomInt(1, 4)]);
    }
    for (const [shape, dim, start, end, step] of cases) {
      const x = randomTensor(shape);
      const label = `slice ${JSON.stringify([shape, dim, start, end ?? null, step])}`;
      expectExact(F.slice(x, dim, start, end, step), referenceSlice(asDense(x), dim, start, end, step), label);
    }
    expect(F.slice(randomTensor([5, 3]), 0, 4, 1).shape).toEqual([0, 3]);
  });

  it('sliceBackward places the gradient in zeros of the input shape', () => {
    const cases: [number[], number, number, number | undefined, number][] = [
      [[10], 0, 1, 9, 3],
      [[4, 9], 1, -7, undefined, 2],
      [[3, 4, 5], 0, 1, 3, 1],
      [[3, 4, 5], 2, 2, 2, 1],
    ];
    for (const [shape, dim, start, end, step] of cases) {
      const gradShape = [...shape];
      gradShape[dim] = pythonSliceIndices(shape[dim]!, start, end, step).length;
      const g = randomTensor(gradShape);
      expectExact(F.sliceBackward(g, shape, dim, start, end, step), referenceSliceBackward(asDense(g), shape, dim, start, end, step),
        `sliceBackward ${JSON.stringify([shape, dim, start, end ?? null, step])}`);
    }
  });

  it('slice gradients: first and second order, and sliceBackward is differentiable', () => {
    const x = randomTensor([4, 7, 3], { requiresGrad: true });
    gradcheck((t) => F.slice(t, 1, 1, -1, 2), [x]);
    gradcheck((t) => F.slice(t, -1, -2), [x]);
    gradgradcheck((t) => F.square(F.slice(t, 1, -6, 6, 3)), [x]);
    gradgradcheck((t) => F.mul(F.slice(t, 0, 0, 2), F.slice(t, 0, 2, 4)), [x]);
    const g = randomTensor([4, 3, 3], { requiresGrad: true });
    gradcheck((t) => F.sliceBackward(t, [4, 7, 3], 1, 1, -1, 2), [g]);
    gradgradcheck((t) => F.square(F.sliceBackward(t, [4, 7, 3], 1, 1, -1, 2)), [g]);
    // Gradient of the gradient: the backward of slice is recorded as sliceBackward, whose own
    // backward is slice again.
    const [first] = grad(F.sum(F.square(F.slice(x, 1, 2, 5))), [x], { createGraph: true });
    expect(first!.gradFn?.name).toBe('sliceBackward');
    const [second] = grad(F.sum(F.mul(first!, x)), [x]);
    // d/dx Σ x·(2x on the slice) = 4x on the slice, 0 elsewhere.
    const values = x.toFloat32Array();
    const expected = referenceSliceBackward(
      dense(referenceSlice(dense(values, [4, 7, 3]), 1, 2, 5, 1).values.map((v) => 4 * v), [4, 3, 3]), [4, 7, 3], 1, 2, 5, 1);
    expectClose(second!.toFloat32Array(), expected.values, { rtol: 1e-6, atol: 1e-7 });
  });

  it('chunk and split follow torch.chunk / torch.split', () => {
    const x = randomTensor([5, 6]);
    const sizes = (pieces: Tensor[], dim: number) => pieces.map((piece) => piece.shape[dim]);
    expect(sizes(F.chunk(x, 3, 0), 0)).toEqual([2, 2, 1]);
    expect(sizes(F.chunk(x, 4, 1), 1)).toEqual([2, 2, 2]);        // ceil(6/4) = 2: three pieces
    expect(sizes(F.chunk(x, 10, -1), 1)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(sizes(F.chunk(x, 1, 0), 0)).toEqual([5]);
    expect(sizes(F.chunk(randomTensor([0, 3]), 3, 0), 0)).toEqual([0, 0, 0]);
    expect(sizes(F.split(x, 2, 0), 0)).toEqual([2, 2, 1]);
    expect(sizes(F.split(x, 7, 0), 0)).toEqual([5]);
    expect(sizes(F.split(x, [1, 0, 5], 1), 1)).toEqual([1, 0, 5]);
    expect(sizes(F.split(randomTensor([0, 2]), 0, 0), 0)).toEqual([0]);
    const pieces = F.split(x, [2, 3, 1], -1);
    let start = 0;
    for (const piece of pieces) {
      expectExact(piece, referenceSlice(asDense(x), 1, start, start + piece.shape[1]!, 1), 'split piece');
      start += piece.shape[1]!;
    }
    expectExact(F.concat(F.chunk(x, 3, 1), 1), asDense(x), 'chunks reassemble');
    const y = randomTensor([4, 6], { requiresGrad: true });
    gradcheck((t) => { const [p, q] = F.chunk(t, 2, 1); return F.mul(p!, q!); }, [y]);
    gradgradcheck((t) => { const [p, q, r] = F.split(t, [1, 2, 1], 0); return F.concat([F.square(p!), q!, F.mul(r!, p!)], 0); }, [y]);
  });

  it('rejects bad inputs', () => {
    const x = randomTensor([4, 5]);
    expect(() => F.slice(x, 0, 0, 4, 0)).toThrow(/slice: step must be a positive integer, got number 0/);
    expect(() => F.slice(x, 0, 0, 4, -1)).toThrow(/slice: step must be a positive integer/);
    expect(() => F.slice(x, 0, 0.5, 4)).toThrow(/slice: start must be an integer/);
    expect(() => F.slice(x, 0, 0, 'x' as never)).toThrow(/slice: end must be an integer/);
    expect(() => F.slice(x, 2, 0, 1)).toThrow(/slice: dim 2 is out of range for a 2-D tensor/);
    expect(() => F.slice(tensor([1], []), 0, 0, 1)).toThrow(/slice: cannot slice a zero-dimensional tensor/);
    expect(() => F.sliceBackward(randomTensor([2, 5]), [4, 5], 0, 0, 3)).toThrow(/sliceBackward: grad has shape \[2, 5\] but the slice of \[4, 5\] has \[3, 5\]/);
    expect(() => F.chunk(x, 0, 0)).toThrow(/chunk: chunks must be a positive integer/);
    expect(() => F.split(x, [1, 2], 0)).toThrow(/split: sizes \[1,2\] add up to 3 but dim 0 of \[4, 5\] has extent 4/);
    expect(() => F.split(x, 0, 0)).toThrow(/split: size can only be 0 if the dimension is empty/);
    expect(() => F.split(x, -1, 0)).toThrow(/split: size must be a non-negative integer/);
  });
});

describe('indexSelect and indexAdd', () => {
  it('indexSelect matches the reference (repeats, every dim, negative dims, empty index)', () => {
    const cases: [number[], number, number[]][] = [
      [[7], 0, [6, 0, 3, 3]],
      [[5, 4], 0, [4, 4, 1]],
      [[5, 4], -1, [0, 3, 2, 1, 0]],
      [[2, 3, 4], 1, [2, 2, 2, 0]],
      [[2, 3, 4, 5], 3, [1]],
      [[2, 3, 4, 5, 2], 2, [3, 0, 1, 2, 3, 0]],
      [[3, 4], 1, []],
      [[1000, 64], 0, Array.from({ length: 3000 }, () => randomInt(0, 999))],
    ];
    for (const [shape, dim, list] of cases) {
      const x = randomTensor(shape);
      expectExact(F.indexSelect(x, dim, Int32Array.from(list)), referenceIndexSelect(asDense(x), dim, list), `indexSelect ${JSON.stringify([shape, dim])}`);
    }
    const x = randomTensor([3, 4]);
    expectExact(F.indexSelect(x, 0, [2, 0]), referenceIndexSelect(asDense(x), 0, [2, 0]), 'indexSelect with a plain array');
  });

  it('indexAdd sums repeated rows (float32, in index order) and zero-fills the rest', () => {
    const cases: [number[], number, number[], number][] = [
      [[4], 0, [1, 1, 3, 1], 5],
      [[3, 5], 0, [2, 0, 2], 4],
      [[2, 6, 3], 1, [0, 0, 0, 4, 4, 1], 7],
      [[2, 3, 4, 5], -2, [3, 3, 3, 3], 4],
      [[3000, 16], 0, Array.from({ length: 3000 }, () => randomInt(0, 99)), 100],
      [[2, 0], 1, [], 3],
    ];
    for (const [shape, dim, list, size] of cases) {
      const source = randomTensor(shape);
      const out = F.indexAdd(source, dim, Int32Array.from(list), size);
      const expected = referenceIndexAdd(asDense(source), dim, list, size);
      expect(out.shape).toEqual(expected.shape);
      expectClose(out.toFloat32Array(), expected.values, { rtol: 1e-6, atol: 1e-6, label: `indexAdd ${JSON.stringify([shape, dim, size])}` });
    }
  });

  it('the indexSelect backward is deterministic: identical bits on 1 and 2 threads', () => {
    const list = Int32Array.from({ length: 20000 }, () => randomInt(0, 49));
    const source = randomTensor([20000, 24]);
    const twoThreads = F.indexAdd(source, 0, list, 50).toFloat32Array();
    expect(sameBits(twoThreads, F.indexAdd(source, 0, list, 50).toFloat32Array())).toBe(true);
    setNumThreads(1);
    try {
      expect(sameBits(twoThreads, F.indexAdd(source, 0, list, 50).toFloat32Array())).toBe(true);
    } finally {
      setNumThreads(2);
    }
  });

  it('gradients: first and second order', () => {
    const x = randomTensor([5, 3], { requiresGrad: true });
    const list = Int32Array.from([4, 0, 4, 2, 4]);
    gradcheck((t) => F.indexSelect(t, 0, list), [x]);
    gradcheck((t) => F.indexSelect(t, -1, [2, 2, 0]), [x]);
    gradgradcheck((t) => F.square(F.indexSelect(t, 0, list)), [x]);
    const s = randomTensor([5, 3], { requiresGrad: true });
    gradcheck((t) => F.indexAdd(t, 0, list, 6), [s]);
    gradgradcheck((t) => F.mul(F.indexAdd(t, 0, list, 6), F.indexAdd(F.square(t), 0, list, 6)), [s]);
  });

  it('rejects bad indices', () => {
    const x = randomTensor([4, 5]);
    expect(() => F.indexSelect(x, 0, Int32Array.from([0, 4]))).toThrow(/indexSelect: index 4 at position 1 is out of range for dim 0 of extent 4/);
    expect(() => F.indexSelect(x, 1, Int32Array.from([-1]))).toThrow(/indexSelect: index -1 at position 0 is out of range/);
    expect(() => F.indexSelect(x, 0, new Float32Array([1]) as never)).toThrow(/indexSelect: indices must be an IndexTensor, an Int32Array or an array of integers/);
    expect(() => F.indexSelect(x, 0, [0.5] as never)).toThrow(/indexSelect: indices must be an IndexTensor, an Int32Array or an array of integers/);
    expect(() => F.indexSelect(x, 2, [0])).toThrow(/indexSelect: dim 2 is out of range/);
    expect(() => F.indexAdd(x, 0, [0, 1], 3)).toThrow(/indexAdd: source has extent 4 along dim 0 but 2 indices were given/);
    expect(() => F.indexAdd(x, 0, [0, 1, 2, 3], 3)).toThrow(/indexAdd: index 3 at position 3 is out of range/);
  });
});

describe('native stridedCopy / indexSelect guard their memory', () => {
  it('rejects boxes that reach past a storage, overlapping destinations and aliasing', () => {
    const src = randomTensor([4, 4]);
    const dst = randomTensor([4, 4]);
    const addon = native();
    expect(() => addon.stridedCopy(src.storage.handle, 1, [4, 1], dst.storage.handle, 0, [4, 1], [4, 4])).toThrow(/stridedCopy: argument 'src' holds 16 floats but the op needs 17/);
    expect(() => addon.stridedCopy(src.storage.handle, 0, [4, 1], dst.storage.handle, 0, [5, 1], [4, 4])).toThrow(/stridedCopy: argument 'dst' holds 16 floats but the op needs 19/);
    expect(() => addon.stridedCopy(src.storage.handle, 0, [4, 1], dst.storage.handle, 0, [2, 1], [4, 4])).toThrow(/stridedCopy: destination strides overlap/);
    expect(() => addon.stridedCopy(src.storage.handle, 0, [4, -1], dst.storage.handle, 0, [4, 1], [4, 4])).toThrow(/stridedCopy: argument 'src' has a negative stride/);
    expect(() => addon.stridedCopy(src.storage.handle, 0, [4, 1], src.storage.handle, 0, [4, 1], [4, 4])).toThrow(/different storages/);
    expect(() => addon.stridedCopy(src.storage.handle, 0, [1], dst.storage.handle, 0, [4, 1], [4, 4])).toThrow(/same rank/);
    expect(() => addon.indexSelect(src.storage.handle, dst.storage.handle, 1, 4, 4, indexStorage(Int32Array.from([0, 1, 2, 3, 0])))).toThrow(/indexSelect: argument 'out' holds 16 floats but the op needs 20/);
    expect(() => addon.indexSelect(src.storage.handle, dst.storage.handle, 1, 4, 4, indexStorage(Int32Array.from([7])))).toThrow(/indexSelect: index 7 at position 0 is out of range for a dimension of size 4/);
    expect(() => addon.indexAdd(src.storage.handle, dst.storage.handle, 1, 4, 4, indexStorage(Int32Array.from([9, 0, 0, 0])))).toThrow(/indexAdd: index 9/);
  });
});
