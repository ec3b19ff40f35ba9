// The loaded native addon, shared by every op. Loading happens on first use.
//
// native() is the one chokepoint every kernel call goes through. The profiler (src/profiler/)
// swaps what it returns for a timing wrapper of the addon while it records, and back when it
// stops, so a run without the profiler executes exactly the code it did before: no flag is
// tested per kernel call.
import { loadAddon, type LoadedAddon } from './load.js';
import type { NativeAddon } from './addon.js';

export type { NativeAddon, NativeStorage, NativeDevice, NativeEngineInfo, NativeMemoryStats, NativeFmaPeak } from './addon.js';

let cached: NativeAddon | null = null;

/** The native addon (loads it on first call), or the profiler's wrapper of it while it records. */
export function native(): NativeAddon {
  if (!cached) cached = loadAddon().addon;
  return cached;
}

/** The addon itself, never a wrapper (the profiler wraps this one). */
export function unwrappedNative(): NativeAddon {
  return loadAddon().addon;
}

/**
 * Internal (src/profiler/): makes native() return `replacement` — an object with the addon's
 * functions — or the addon itself again for null.
 */
export function replaceNative(replacement: NativeAddon | null): void {
  cached = replacement ?? loadAddon().addon;
}

/** Which binary was loaded and why, plus what the engine found on this machine. */
export function nativeInfo(): { path: string; reason: string } & ReturnType<NativeAddon['info']> {
  const loaded: LoadedAddon = loadAddon();
  return { path: loaded.path, reason: loaded.reason, ...loaded.addon.info() };
}
