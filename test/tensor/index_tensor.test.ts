// IndexTensor: the int32 operand of labels, gather indices and bank indices / rows. Checks that
// it holds a private copy of its values on its device, that the native block is read-only and
// refused by float readers, that ops accept it (the same bits as an Int32Array operand) and keep
// it alive for their backward after the caller disposes it, and that a device mismatch or a
// disposed tensor is a clear Error. Runs on every device (forEachDevice).
import { describe, expect, it } from 'vitest';
import { F, IndexTensor, memory, tensor } from '../../src/index.js';
import { native } from '../../src/native/index.js';
import { forEachDevice } from '../helpers/devices.js';
import { randomTensor } from '../helpers/random.js';

function randomLabels(batch: number, classes: number, seed: number): Int32Array {
  let state = seed;
  return Int32Array.from({ length: batch }, () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state % classes;
  });
}

describe('IndexTensor', () => {
  it('copies its values (later writes to the source do not reach it) and reports them', () => {
    const source = Int32Array.of(3, -1, 7, 0);
    const indices = IndexTensor.from(source);
    source[0] = 99;
    expect(Array.from(indices.toInt32Array())).toEqual([3, -1, 7, 0]);
    expect(indices.length).toBe(4);
    expect(indices.at(2)).toBe(7);
    expect(indices.min()).toBe(-1);
    expect(indices.max()).toBe(7);
    expect(indices.firstOutOfRange(8)).toBe(1);
    expect(IndexTensor.from([0, 1, 2]).firstOutOfRange(3)).toBe(-1);
    expect(IndexTensor.from([0, 5, 2]).firstOutOfRange(3)).toBe(1);
    const copy = indices.toInt32Array();
    copy[1] = 42;
    expect(indices.at(1)).toBe(-1);
    expect(Array.from(native().indexValues(indices.storage.handle))).toEqual([3, -1, 7, 0]);
    indices.dispose();
  });

  it('rejects values that are not int32 integers, and use after dispose', () => {
    expect(() => IndexTensor.from([1, 2.5])).toThrow(/value 2.5 at position 1 is not an int32 integer/);
    expect(() => IndexTensor.from([2 ** 31])).toThrow(/not an int32 integer/);
    expect(() => IndexTensor.from(new Float32Array(2) as never)).toThrow(/must be an Int32Array or an array of integers, got Float32Array/);
    expect(() => IndexTensor.from([1], 'tpu' as never)).toThrow(/unknown device 'tpu'/);
    const indices = IndexTensor.from([1, 2]);
    indices.dispose();
    expect(indices.alive).toBe(false);
    expect(() => indices.toInt32Array()).toThrow(/index tensor of length 2 was disposed/);
    const logits = randomTensor([2, 3]);
    expect(() => F.crossEntropy(logits, indices)).toThrow(/crossEntropy \(argument 'labels'\): index tensor of length 2 was disposed/);
    logits.dispose();
  });

  it('is read-only in the addon, and float readers refuse it', () => {
    const indices = IndexTensor.from([0, 1, 2, 3]);
    const handle = indices.storage.handle;
    expect(() => native().upload(handle, Int32Array.of(5), 0)).toThrow(/upload: argument 'storage' is an index tensor \(int32 values, read-only\)/);
    expect(() => native().fill(handle, 1, 1)).toThrow(/fill: argument 'storage' is an index tensor/);
    expect(() => native().download(handle, 0, 4)).toThrow(/download: argument 'storage' is an index tensor/);
    const floats = native().alloc('cpu', 16);
    expect(() => native().copy(floats, handle, 16)).toThrow(/copy: argument 'source' is an index tensor/);
    expect(() => native().copy(handle, floats, 16)).toThrow(/copy: argument 'destination' is an index tensor/);
    expect(() => native().softmaxForward(handle, floats, 1, 4, 1, false)).toThrow(/argument 'x' must be a float tensor, got an index tensor/);
    expect(() => native().indexValues(floats)).toThrow(/must be an index tensor \(int32 values, made by allocIndices\), got a float storage/);
    native().free(floats);
    indices.dispose();
  });

  it('frees its block on dispose, unless an op still holds it', () => {
    const before = memory().nativeHandles;
    const labels = IndexTensor.from(randomLabels(6, 4, 1));
    const logits = randomTensor([6, 4], { requiresGrad: true });
    const loss = F.crossEntropy(logits, labels);
    labels.dispose();  // the graph node keeps its own reference
    expect(memory().nativeHandles).toBeGreaterThan(before);
    loss.backward();
    const gradient = logits.grad!.toFloat32Array();
    expect(gradient.every(Number.isFinite)).toBe(true);
    loss.dispose();
    logits.dispose();
    expect(memory().nativeHandles).toBe(before);
  });
});

forEachDevice('ops with IndexTensor operands', (device) => {
  it('give the same bits as Int32Array operands (forward and gradient)', () => {
    const values = randomLabels(10, 5, 7);
    const labels = IndexTensor.from(values, device);
    const logitValues = randomTensor([10, 5]).toFloat32Array();
    const anchorValues = randomTensor([10, 6]).toFloat32Array();
    const bankValues = randomTensor([12, 6]).toFloat32Array();
    const run = (operand: IndexTensor | Int32Array) => {
      const logits = tensor(logitValues, [10, 5], { device, requiresGrad: true });
      const anchor = tensor(anchorValues, [10, 6], { device, requiresGrad: true });
      const bank = tensor(bankValues, [12, 6], { device });
      const bankIndices = Int32Array.from({ length: 30 }, (_, index) => (index * 7) % 12);
      const bankOperand = operand instanceof IndexTensor ? IndexTensor.from(bankIndices, device) : bankIndices;
      const picks = operand instanceof IndexTensor ? IndexTensor.from([2, 0, 2, 9], device) : Int32Array.of(2, 0, 2, 9);
      const terms = [
        F.crossEntropy(logits, operand),
        F.supConInfoNCE(anchor, anchor, operand, { temperature: 0.5 }),
        F.sum(F.memoryLogits(anchor, bank, bankOperand, { temperature: 0.5 })),
        F.sum(F.indexSelect(anchor, 0, picks)),
      ];
      const total = F.add(F.add(terms[0]!, terms[1]!), F.add(terms[2]!, terms[3]!));
      total.backward();
      const result = [total.toFloat32Array(), logits.grad!.toFloat32Array(), anchor.grad!.toFloat32Array()];
      for (const item of [...terms, total, logits, anchor, bank]) item.dispose();
      if (bankOperand instanceof IndexTensor) bankOperand.dispose();
      if (picks instanceof IndexTensor) picks.dispose();
      return result;
    };
    const fromTensor = run(labels);
    const fromArray = run(values);
    fromTensor.forEach((part, index) => expect(Array.from(part)).toEqual(Array.from(fromArray[index]!)));
    labels.dispose();
  });

  it('refuses an IndexTensor on another device, and bad lengths or values, naming the argument', () => {
    const logits = randomTensor([4, 3], { device });
    const labels = IndexTensor.from([0, 1, 2, 1], device);
    const short = IndexTensor.from([0, 1, 2], device);
    const outOfRange = IndexTensor.from([0, 1, 3, 1], device);
    expect(() => F.crossEntropy(logits, short)).toThrow(/labels has length 3 but logits \[4, 3\] has batch size 4/);
    expect(() => F.crossEntropy(logits, outOfRange)).toThrow(/label 3 at index 2 is out of range for 3 classes/);
    expect(() => F.memoryUpdate_(randomTensor([5, 3], { device }), outOfRange, randomTensor([4, 3], { device }), { momentum: 0.5 }))
      .toThrow(/argument 'rows' holds 1 more than once/);
    if (device === 'cuda') {
      const onCpu = labels.to('cpu');
      expect(() => F.crossEntropy(logits, onCpu)).toThrow(/argument 'labels' is on 'cpu' but the tensors are on 'cuda' \(use labels.to\('cuda'\)\)/);
      onCpu.dispose();
    }
    for (const item of [short, outOfRange]) item.dispose();
    expect(F.crossEntropy(logits, labels).toFloat32Array()[0]).toBeGreaterThan(0);
    labels.dispose();
    logits.dispose();
  });
});
