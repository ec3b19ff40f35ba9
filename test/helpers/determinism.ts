// Bit-determinism check shared by the op suites: `run` recomputes the same results from the same
// inputs; they must be bit-identical when repeated on 2 threads and when run on 1 thread (the
// kernels split work by a fixed rule and combine partials in order).
import { expect } from 'vitest';
import { engineInfo, setNumThreads } from '../../src/index.js';

export function expectSameBitsAcrossRunsAndThreads(run: () => Float32Array[]): void {
  const threads = engineInfo().threads;
  try {
    setNumThreads(2);
    const first = run();
    const second = run();
    setNumThreads(1);
    const single = run();
    first.forEach((result, index) => {
      expect(Buffer.from(result.buffer).equals(Buffer.from(second[index]!.buffer)), `result ${index}, repeated`).toBe(true);
      expect(Buffer.from(result.buffer).equals(Buffer.from(single[index]!.buffer)), `result ${index}, 1 thread`).toBe(true);
    });
  } finally {
    setNumThreads(threads);
  }
}
