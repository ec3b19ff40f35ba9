// tensor() and in-place writes from host data backed by a SharedArrayBuffer (as the data workers
// produce): copied into a plain buffer first, since the addon cannot read a SharedArrayBuffer.
import { describe, expect, it } from 'vitest';
import { nn, tensor } from '../../src/index.js';
import { randomArray } from '../helpers/random.js';

function sharedCopy(values: Float32Array, leadingFloats = 0): Float32Array {
  const shared = new Float32Array(new SharedArrayBuffer(4 * (leadingFloats + values.length)), 4 * leadingFloats, values.length);
  shared.set(values);
  return shared;
}

describe('host data in a SharedArrayBuffer', () => {
  it('tensor() copies it, whole or as a view at an offset, and later writes to it do not leak in', () => {
    const values = randomArray(12);
    for (const leading of [0, 5]) {
      const shared = sharedCopy(values, leading);
      const t = tensor(shared, [3, 4]);
      expect(Array.from(t.toFloat32Array())).toEqual(Array.from(values));
      shared.fill(7);
      expect(Array.from(t.toFloat32Array())).toEqual(Array.from(values));
      t.dispose();
    }
  });

  it('loadStateDict (writeInPlace) accepts SharedArrayBuffer-backed entries', () => {
    const layer = new nn.Linear(3, 2);
    const weight = randomArray(6);
    const bias = randomArray(2);
    layer.loadStateDict(new Map([['weight', { shape: [2, 3], data: sharedCopy(weight, 1) }], ['bias', { shape: [2], data: sharedCopy(bias) }]]));
    const state = layer.stateDict();
    expect(Array.from(state.get('weight')!.data)).toEqual(Array.from(weight));
    expect(Array.from(state.get('bias')!.data)).toEqual(Array.from(bias));
    layer.dispose();
  });
});
