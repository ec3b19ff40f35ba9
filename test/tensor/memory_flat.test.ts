// Disposal frees everything at dispose() time: a synchronous loop (no event-loop turn, so no
// Node-API finalizer can run) that disposes what it creates keeps the process flat, not only the
// engine's counters. Before the fix a freed storage left its native handle to a finalizer queued
// until the loop turned: ~180 bytes per tensor (38 MiB over 200k allocations; ~7 MiB per 1,000
// steps of the README's conv net).
// Two measurements: the native handle count (memory().nativeHandles, deterministic: it must equal
// the live storages after the loop) and the resident size. RSS: V8 grows its JS heap to a working
// size over the first ~100k small allocations (~10 MiB, not a leak) and now and then later, so the
// loop is measured in windows after a warm-up and the smallest window's growth is bounded by
// 3 MiB (after the fix: ~0; the old behaviour grows ~10 MiB in every 50k-allocation window and
// ~7 MiB in every 1,000-step window).
import { describe, expect, it } from 'vitest';
import { F, nn, optim, randn, tidy, zeros, manualSeed, memory } from '../../src/index.js';

const MiB = 2 ** 20;

/**
 * The smallest RSS growth (MiB) over `windows` consecutive windows of `perWindow` calls, after a
 * warm-up of `warmup` calls. A leak grows in every window; V8's heap growth (noise) lands in some.
 */
function leastRssGrowth(body: () => void, warmup: number, perWindow: number, windows: number): number {
  for (let i = 0; i < warmup; i += 1) body();
  const growths: number[] = [];
  for (let window = 0; window < windows; window += 1) {
    const before = process.memoryUsage().rss;
    for (let i = 0; i < perWindow; i += 1) body();
    growths.push((process.memoryUsage().rss - before) / MiB);
  }
  return Math.min(...growths);
}

describe('memory stays flat in a synchronous loop', () => {
  it('allocate/dispose: no native handle outlives dispose(), and RSS stays flat', () => {
    const handlesBefore = memory().nativeHandles;
    for (let i = 0; i < 10_000; i += 1) zeros([4]).dispose();
    expect(memory().nativeHandles).toBe(handlesBefore);
    expect(leastRssGrowth(() => zeros([4]).dispose(), 100_000, 50_000, 3)).toBeLessThan(3);
  });

  it('4,000 training steps of the README example net, each in tidy', () => {
    manualSeed(0);
    const x = randn([8, 3, 16, 16]);
    const labels = Int32Array.from({ length: 8 }, (_, i) => i % 10);
    const net = new nn.Sequential(
      new nn.Conv2d(3, 16, 3, { padding: 1, bias: false }), new nn.BatchNorm2d(16), new nn.ReLU(),
      new nn.AdaptiveAvgPool2d([1, 1]), new nn.Flatten(), new nn.Linear(16, 10),
    );
    const optimizer = new optim.SGD(net.parameters(), { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
    const step = (): void => tidy(() => {
      const loss = F.crossEntropy(net.forward(x), labels);
      optimizer.zeroGrad();
      loss.backward();
      optimizer.step();
    });
    step(); // creates the momentum buffers
    const before = memory();
    const growth = leastRssGrowth(step, 1_000, 1_000, 3);
    const after = memory();
    expect(after.liveTensors).toBe(before.liveTensors);
    expect(after.nativeHandles).toBe(before.nativeHandles);
    expect(growth).toBeLessThan(3);
    net.dispose();
    x.dispose();
  }, 60_000);
});
