// The loaded native addon, shared by every op. Loading happens on first use.
import { loadAddon, type LoadedAddon } from './load.js';
import type { NativeAddon } from './addon.js';

export type { NativeAddon, NativeStorage, NativeDevice, NativeEngineInfo, NativeMemoryStats } from './addon.js';

let cached: NativeAddon | null = null;

/** The native addon (loads it on first call). */
export function native(): NativeAddon {
  if (!cached) cached = loadAddon().addon;
  return cached;
}

/** Which binary was loaded and why, plus what the engine found on this machine. */
export function nativeInfo(): { path: string; reason: string } & ReturnType<NativeAddon['info']> {
  const loaded: LoadedAddon = loadAddon();
  return { path: loaded.path, reason: loaded.reason, ...loaded.addon.info() };
}
