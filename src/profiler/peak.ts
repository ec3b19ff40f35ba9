// The machine's FP32 FMA peak, measured now (native/src/cpu/peak.cpp has the loop and the formula).
// Measured rather than written down because it differs between machines, and on one machine
// whenever another process shares the cores or the clock changes: the profiler's "% of peak"
// column divides by the peak of this machine, at this moment, on the engine's thread count.
import { unwrappedNative, type NativeFmaPeak } from '../native/index.js';

export type FmaPeak = NativeFmaPeak;

export interface FmaPeakOptions {
  /** Threads running the loop at once (default: the engine's thread count). */
  threads?: number;
  /** Minimum seconds of one repeat (default 0.05; best of 3 repeats is reported). */
  minSeconds?: number;
}

/** FP32 FMA peak in GFLOP/s (`gflops`) for `threads` threads at the build's widest SIMD level. */
export function measureFmaPeak(options: FmaPeakOptions = {}): FmaPeak {
  const addon = unwrappedNative();
  const threads = options.threads ?? addon.info().threads;
  const minSeconds = options.minSeconds ?? 0.05;
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`measureFmaPeak: threads must be a positive integer, got ${String(threads)}`);
  if (!(minSeconds > 0 && minSeconds <= 10)) throw new Error(`measureFmaPeak: minSeconds must be in (0, 10], got ${String(minSeconds)}`);
  return addon.measureFmaPeak(threads, minSeconds);
}
