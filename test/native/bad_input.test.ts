// Every native entry point, called with wrong arguments, must throw a JavaScript Error that
// names the problem, and never crash the process (this suite runs in a forked process: a
// segfault or abort fails it). Arguments: nothing, wrong types, NaN/huge numbers, disposed
// storages, storages far too small for the shapes claimed.
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native/index.js';

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
