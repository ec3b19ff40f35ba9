// memory(), resetMemoryPeak() and emptyCache() on every device: a disposed tensor's block goes to
// its device's cache (not back to the system or the driver), the peak records the most that was
// live, emptyCache gives the cached blocks back and leaves live tensors alone.
import { expect, it } from 'vitest';
import { emptyCache, memory, resetMemoryPeak, tensor } from '../../src/index.js';
import { forEachDevice } from '../helpers/devices.js';
import { randomArray } from '../helpers/random.js';

forEachDevice('memory report', (device) => {
  const live = () => (device === 'cpu' ? memory().nativeLiveBytes : memory().cudaLiveBytes);
  const cached = () => (device === 'cpu' ? memory().nativeCachedBytes : memory().cudaCachedBytes);
  const peak = () => (device === 'cpu' ? memory().nativePeakLiveBytes : memory().cudaPeakLiveBytes);

  it('disposed blocks are cached, the peak counts them while live, emptyCache returns them and keeps live tensors', () => {
    emptyCache();
    resetMemoryPeak();
    const keptValues = randomArray(1000);
    const kept = tensor(keptValues, [1000], { device });
    const before = live();
    expect(peak()).toBeGreaterThanOrEqual(before);
    const bytes = 4 << 20;
    const big = tensor(new Float32Array(bytes / 4).fill(1.5), [bytes / 4], { device });
    expect(live()).toBeGreaterThanOrEqual(before + bytes);
    const high = peak();
    expect(high).toBeGreaterThanOrEqual(before + bytes);
    big.dispose();
    expect(live()).toBe(before);
    expect(cached()).toBeGreaterThanOrEqual(bytes);
    expect(peak()).toBe(high);
    resetMemoryPeak();
    expect(peak()).toBe(live());
    emptyCache();
    expect(cached()).toBe(0);
    expect(live()).toBe(before);
    expect(kept.toFloat32Array()).toEqual(keptValues);
    kept.dispose();
  });
});
