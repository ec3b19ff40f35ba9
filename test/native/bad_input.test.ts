// Every native entry point, called with wrong arguments, must throw a JavaScript Error that
// names the problem, and never crash the process (this suite runs in a forked process: a
// segfault or abort fails it). Arguments: nothing, wrong types, NaN/huge numbers, disposed
// storages, storages far too small for the shapes claimed.
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native/index.js';
import { indexStorage } from '../helpers/indices.js';

const addon = native() as unknown as Record<string, (...args: unknown[]) => unknown>;
// Calls that are harmless with valid-looking arguments, or change global state.
const skipped = new Set(['setNumThreads', 'emptyCache', 'info', 'memoryStats']);

function tiny() {
  return native().alloc('cpu', 4);
}

function argumentLists(): unknown[][] {
  const freed = tiny();
  native().free(freed);
  const huge = 2 ** 40;
  return [
    [],
    [1, 2, 3, 4, 5, 6, 7, 8],
    ['x', 'y', 'z'],
    [{}, {}, {}, {}, {}, {}],
    [null, null, null, null, null],
    [tiny(), tiny(), tiny(), tiny(), [huge, huge], [1], [1], huge, huge],
    [tiny(), tiny(), tiny(), tiny(), 64, 64, 64, 64, 64, 64, 64, 64],
    [tiny(), tiny(), tiny(), tiny(), [64, 3, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1], [64, 3, 32, 32], [0, 1]],
    [freed, freed, freed, freed, 1, 1, 1, 1],
    [tiny(), tiny(), tiny(), tiny(), Number.NaN, Number.NaN, Number.NaN, Number.NaN],
    [tiny(), tiny(), tiny(), tiny(), -1, -1, -1, -1, -1, -1, -1, -1],
    [0, tiny(), tiny(), tiny(), [1024], [1], [1]],
    [tiny(), new Int32Array([5, -1, 1e9]), tiny(), tiny(), 3, 3, 3],
  ];
}

describe('native entry points reject bad arguments without crashing', () => {
  const names = Object.keys(addon).filter((name) => typeof addon[name] === 'function' && !skipped.has(name));

  it('exports the expected op families', () => {
    for (const name of ['alloc', 'free', 'upload', 'download', 'binary', 'unary', 'sumAxes', 'gemm', 'conv2dForward']) {
      expect(names).toContain(name);
    }
  });

  for (const name of names) {
    it(`${name}`, () => {
      for (const args of argumentLists()) {
        let outcome: unknown;
        try {
          outcome = addon[name]!(...args);
        } catch (error) {
          expect(error).toBeInstanceOf(Error);
          expect((error as Error).message.length).toBeGreaterThan(5);
          continue;
        }
        // A few calls are legitimately valid for some of these argument lists (e.g. free on a
        // storage, or an op over one element): they must simply return.
        expect(outcome === undefined || typeof outcome === 'object' || typeof outcome === 'number').toBe(true);
      }
    });
  }

  it('setNumThreads validates its count', () => {
    expect(() => native().setNumThreads(0)).toThrow(/1\.\.1024/);
    expect(() => native().setNumThreads(Number.NaN)).toThrow(/integer/);
  });
});

describe('memory-bank entry points check sizes and index values', () => {
  const floats = (count: number) => native().alloc('cpu', 4 * count);
  // batch 2, columns 3, dim 4, bank rows 5
  const query = floats(8);
  const bank = floats(20);
  const logits = floats(6);
  const stats = floats(4);
  const loss = floats(1);
  const out = floats(8);
  const indices = indexStorage(Int32Array.of(0, 1, 2, 3, 4, 0));
  const geometry = [2, 3, 4, 5, 10] as const;  // batch, columns, dim, bankRows, scale
  const logitsGeometry = [...geometry, 1] as const;  // the logits ops end with queries

  it('memoryLogitsForward / memoryLogitsTranspose', () => {
    native().fill(query, 0.5, 8);
    native().fill(bank, 0.25, 20);
    native().fill(logits, 1, 6);
    expect(() => native().memoryLogitsForward(query, bank, indices, logits, ...logitsGeometry)).not.toThrow();
    expect(() => native().memoryLogitsForward(query, floats(19), indices, logits, ...logitsGeometry)).toThrow(/'bank' holds 19 floats but the op needs 20/);
    expect(() => native().memoryLogitsForward(floats(7), bank, indices, logits, ...logitsGeometry)).toThrow(/'query' holds 7 floats/);
    expect(() => native().memoryLogitsForward(query, bank, indices, floats(5), ...logitsGeometry)).toThrow(/'logits' holds 5 floats/);
    expect(() => native().memoryLogitsForward(query, bank, indexStorage(Int32Array.of(0, 1, 2)), logits, ...logitsGeometry)).toThrow(/indices has length 3 but batch · columns = 6/);
    expect(() => native().memoryLogitsForward(query, bank, floats(6), logits, ...logitsGeometry)).toThrow(/'indices' must be an index tensor \(int32 values, made by allocIndices\), got a float storage/);
    expect(() => native().memoryLogitsForward(indices, bank, indices, logits, ...logitsGeometry)).toThrow(/'query' must be a float tensor, got an index tensor/);
    expect(() => native().memoryLogitsForward(query, bank, indexStorage(Int32Array.of(0, 1, 2, 3, 5, 0)), logits, ...logitsGeometry)).toThrow(/index 5 at position 4 is out of range for a bank of 5 rows/);
    expect(() => native().memoryLogitsTranspose(logits, bank, indexStorage(Int32Array.of(0, -1, 2, 3, 4, 0)), out, ...logitsGeometry)).toThrow(/index -1 at position 1/);
    expect(() => native().memoryLogitsTranspose(logits, bank, indices, floats(7), ...logitsGeometry)).toThrow(/'out' holds 7 floats/);
    for (const scale of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 1e300]) {
      expect(() => native().memoryLogitsForward(query, bank, indices, logits, 2, 3, 4, 5, scale, 1)).toThrow(/scale/);
    }
    expect(() => native().memoryLogitsForward(query, bank, indices, logits, 2, 3, 4, 2 ** 40, 10, 1)).toThrow(/'bank' holds 20 floats/);
    expect(() => native().memoryLogitsForward(query, bank, indices, logits, 2, 3, 4, 5, 10, 0)).toThrow(/memoryLogits: queries must be >= 1, got 0/);
    expect(() => native().memoryLogitsForward(query, bank, indices, logits, 2, 3, 4, 5, 10, 2)).toThrow(/'query' holds 8 floats but the op needs 16/);
    expect(() => native().memoryLogitsTranspose(floats(12), bank, indices, out, 2, 3, 4, 5, 10, 2)).toThrow(/'out' holds 8 floats but the op needs 16/);
  });

  it('memoryInfoNceForward / memoryInfoNceBackward', () => {
    native().fill(query, 0.5, 8);
    native().fill(bank, 0.25, 20);
    expect(() => native().memoryInfoNceForward(query, bank, indices, null, loss, logits, stats, ...geometry, 1)).not.toThrow();
    for (const positives of [0, 4, 1.5]) {
      expect(() => native().memoryInfoNceForward(query, bank, indices, null, loss, logits, stats, ...geometry, positives)).toThrow(/positives/);
    }
    expect(() => native().memoryInfoNceForward(query, bank, indices, floats(1), loss, logits, stats, ...geometry, 1)).toThrow(/'weights' holds 1 floats/);
    expect(() => native().memoryInfoNceForward(query, bank, indices, null, loss, logits, floats(3), ...geometry, 1)).toThrow(/'stats' holds 3 floats/);
    expect(() => native().memoryInfoNceForward(query, bank, indexStorage(Int32Array.of(9, 1, 2, 3, 4, 0)), null, loss, logits, stats, ...geometry, 1)).toThrow(/index 9 at position 0/);
    const grad = floats(1);
    native().fill(grad, 1, 1);
    expect(() => native().memoryInfoNceBackward(bank, indices, logits, stats, null, grad, out, null, ...geometry, 2)).not.toThrow();
    expect(() => native().memoryInfoNceBackward(bank, indices, floats(5), stats, null, grad, out, null, ...geometry, 2)).toThrow(/'logits' holds 5 floats/);
    expect(() => native().memoryInfoNceBackward(bank, indices, logits, stats, null, grad, floats(7), null, ...geometry, 2)).toThrow(/'gradQuery' holds 7 floats/);
    expect(() => native().memoryInfoNceBackward(bank, indices, logits, stats, null, grad, null, floats(1), ...geometry, 2)).toThrow(/'gradWeights' holds 1 floats/);
    expect(() => native().memoryInfoNceBackward(bank, indexStorage(Int32Array.of(0, 1, 2, 3, 4, 1e9)), logits, stats, null, grad, out, null, ...geometry, 2)).toThrow(/index 1000000000 at position 5/);
  });

  it('memoryUpdate', () => {
    const z = floats(8);
    native().fill(z, 1, 8);
    native().fill(bank, 0.25, 20);
    expect(() => native().memoryUpdate(bank, indexStorage(Int32Array.of(4, 0)), z, 5, 4, 0.5)).not.toThrow();
    expect(() => native().memoryUpdate(bank, indexStorage(Int32Array.of(4, 4)), z, 5, 4, 0.5)).toThrow(/row 4 appears more than once/);
    expect(() => native().memoryUpdate(bank, indexStorage(Int32Array.of(4, 5)), z, 5, 4, 0.5)).toThrow(/row 5 at position 1 is out of range/);
    expect(() => native().memoryUpdate(bank, indexStorage(Int32Array.of(0, 1, 2)), z, 5, 4, 0.5)).toThrow(/'z' holds 8 floats but the op needs 12/);
    expect(() => native().memoryUpdate(bank, indexStorage(Int32Array.of(0)), z, 6, 4, 0.5)).toThrow(/'bank' holds 20 floats/);
    expect(() => native().memoryUpdate(bank, indexStorage(Int32Array.of(0)), bank, 5, 4, 0.5)).toThrow(/must not share storage/);
    expect(() => native().memoryUpdate(bank, indexStorage(Int32Array.of(0)), z, 2 ** 40, 0, 0.5)).toThrow(/dim must be >= 1/);
    for (const momentum of [-0.5, 2, Number.NaN]) {
      expect(() => native().memoryUpdate(bank, indexStorage(Int32Array.of(0)), z, 5, 4, momentum)).toThrow(/momentum/);
    }
    native().fill(z, 0, 8);
    expect(() => native().memoryUpdate(bank, indexStorage(Int32Array.of(2, 3)), z, 5, 4, 0)).toThrow(/row 2 \(position 0\) has norm 0/);
  });
});
