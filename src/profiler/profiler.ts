// The per-op profiler: times every native kernel call and every backward node while it records.
//
// How it stays free when off: every kernel call goes through native() (src/native/index.ts). While
// recording, native() hands out a wrapper of the addon whose functions read the clock around the
// real call and add the call's cost (profiler/costs.ts: FLOPs or bytes from the arguments) to a row
// keyed by (phase, op). When recording stops, native() hands out the addon itself again, so a
// run that never records executes the same calls as before the profiler existed. The autograd
// engine tests one flag per backward node (profilerFlags.recording) to time the node by name.
//
// Phases: 'backward' while the autograd engine runs (backward() / grad()), 'update' inside
// SGD.step, 'forward' for everything else (the forward pass, the loss, metric bookkeeping).
//
// Recording is a window: start() clears the rows and opens it, step(fn) runs fn with it open and
// counts a step, pause()/resume() close and reopen it; the wall time of the open window is the
// denominator of the share column, so kernel shares always sum to at most 100%.
//
// LMCL_PROFILE=1 (or =json) records the whole process from the moment the engine loads and
// prints the table (or JSON) to stderr at exit; shares are then of the wall time since loading.
// A window started later (lmcl train --profile, lmcl profile) replaces that session, and once it
// is stopped nothing is printed at exit.
//
// Timing: kernels are synchronous on the CPU (they return when the work is done), so the wall
// time around a call is the kernel's time. Memory ops on CUDA storages would need a device
// synchronisation to be timed this way; no training op runs on CUDA yet.
import { writeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { replaceNative, unwrappedNative, type NativeAddon } from '../native/index.js';
import { callCost, setIndexLengthReader, type CostKind } from './costs.js';
import { measureFmaPeak } from './peak.js';
import { buildReport, formatReport, reportJson } from './report.js';

export type ProfilePhase = 'forward' | 'backward' | 'update';

/** Totals of one (phase, op) pair over the recorded window. */
export interface KernelRecord {
  phase: ProfilePhase;
  /** Addon function, with the elementwise op appended ('binary.add', 'unary.relu'). */
  op: string;
  kind: CostKind;
  calls: number;
  ms: number;
  flops: number;
  bytes: number;
}

/** Totals of one backward node name ('conv2d.backward'): inclusive of its kernels and its JavaScript. */
export interface BackwardNodeRecord {
  name: string;
  calls: number;
  ms: number;
}

/** Totals of one module class's forward (inclusive of its children), when modules were attached. */
export interface ModuleRecord {
  name: string;
  calls: number;
  ms: number;
}

/** What the window recorded (a copy; the profiler keeps recording into its own). */
export interface ProfileRecords {
  /** Wall time the window was open. */
  wallMs: number;
  /** Steps recorded through step(fn) (0 when the window was driven by start/pause only). */
  steps: number;
  kernels: KernelRecord[];
  backwardNodes: BackwardNodeRecord[];
  modules: ModuleRecord[];
}

/** Read by the autograd engine once per backward node: one property load when the profiler is off. */
export const profilerFlags = { recording: false };

let currentPhase: ProfilePhase = 'forward';
let kernels = new Map<ProfilePhase, Map<string, KernelRecord>>();
let backwardNodes = new Map<string, BackwardNodeRecord>();
let modules = new Map<string, ModuleRecord>();
let wallMs = 0;
let steps = 0;
let openedAt = 0;
let started = false;
let wrapper: NativeAddon | null = null;

function recordKernel(name: string, args: readonly unknown[], ms: number): void {
  const cost = callCost(name, args);
  // One map per phase: no key string to build per call.
  let rows = kernels.get(currentPhase);
  if (!rows) {
    rows = new Map();
    kernels.set(currentPhase, rows);
  }
  let record = rows.get(cost.label);
  if (!record) {
    record = { phase: currentPhase, op: cost.label, kind: cost.kind, calls: 0, ms: 0, flops: 0, bytes: 0 };
    rows.set(cost.label, record);
  }
  record.calls += 1;
  record.ms += ms;
  record.flops += cost.flops;
  record.bytes += cost.bytes;
}

/** The addon with every function timed (built once: the addon's functions never change). */
function timingWrapper(): NativeAddon {
  if (wrapper) return wrapper;
  const addon = unwrappedNative() as unknown as Record<string, unknown>;
  const native = unwrappedNative();
  // Index operands are storages: the cost models read their length through the unwrapped addon.
  setIndexLengthReader((storage) => native.indexLength(storage as Parameters<NativeAddon['indexLength']>[0]));
  const timed: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(addon)) {
    if (typeof value !== 'function') {
      timed[name] = value;
      continue;
    }
    const kernel = value as (...args: unknown[]) => unknown;
    timed[name] = (...args: unknown[]): unknown => {
      const begin = performance.now();
      try {
        return kernel(...args);
      } finally {
        recordKernel(name, args, performance.now() - begin);
      }
    };
  }
  wrapper = timed as unknown as NativeAddon;
  return wrapper;
}

function open(): void {
  if (profilerFlags.recording) return;
  replaceNative(timingWrapper());
  profilerFlags.recording = true;
  openedAt = performance.now();
}

function close(): void {
  if (!profilerFlags.recording) return;
  wallMs += performance.now() - openedAt;
  profilerFlags.recording = false;
  replaceNative(null);
}

/** Clears every row and opens the recording window. */
export function startProfiling(): void {
  close();
  kernels = new Map();
  backwardNodes = new Map();
  modules = new Map();
  wallMs = 0;
  steps = 0;
  started = true;
  open();
}

/** Closes the window (rows are kept; resumeProfiling reopens it). */
export function pauseProfiling(): void {
  close();
}

/** Reopens the window after pauseProfiling (no-op before startProfiling). */
export function resumeProfiling(): void {
  if (started) open();
}

/** Runs one step with the window open and counts it (the window is closed again afterwards). */
export function profileStep<T>(step: () => T): T {
  if (!started) throw new Error('profileStep: call startProfiling() first');
  open();
  try {
    return step();
  } finally {
    close();
    steps += 1;
  }
}

/** Closes the window for good and returns what it recorded. */
export function stopProfiling(): ProfileRecords {
  close();
  const records = profileRecords();
  started = false;
  return records;
}

/** Whether a window was started and not stopped (it may be paused). */
export function profilingStarted(): boolean {
  return started;
}

/** A copy of the rows so far (the window keeps its state). */
export function profileRecords(): ProfileRecords {
  const openMs = profilerFlags.recording ? performance.now() - openedAt : 0;
  return {
    wallMs: wallMs + openMs,
    steps,
    kernels: [...kernels.values()].flatMap((rows) => [...rows.values()].map((record) => ({ ...record }))),
    backwardNodes: [...backwardNodes.values()].map((record) => ({ ...record })),
    modules: [...modules.values()].map((record) => ({ ...record })),
  };
}

/** Runs fn with kernels attributed to `phase` (always sets it, so a window opened midway is right). */
export function withProfilePhase<T>(phase: ProfilePhase, fn: () => T): T {
  const previous = currentPhase;
  currentPhase = phase;
  try {
    return fn();
  } finally {
    currentPhase = previous;
  }
}

/** The autograd engine's timer for one backward node (called only while recording). */
export function timeBackwardNode<T>(nodeName: string, apply: () => T): T {
  const begin = performance.now();
  try {
    return apply();
  } finally {
    const name = `${nodeName}.backward`;
    let record = backwardNodes.get(name);
    if (!record) {
      record = { name, calls: 0, ms: 0 };
      backwardNodes.set(name, record);
    }
    record.calls += 1;
    record.ms += performance.now() - begin;
  }
}

/** Adds one module forward's inclusive time (profiler/modules.ts). */
export function recordModuleForward(name: string, ms: number): void {
  let record = modules.get(name);
  if (!record) {
    record = { name, calls: 0, ms: 0 };
    modules.set(name, record);
  }
  record.calls += 1;
  record.ms += ms;
}

// ---- LMCL_PROFILE ------------------------------------------------------------------------------

const environmentSetting = process.env.LMCL_PROFILE;
if (environmentSetting !== undefined && environmentSetting !== '' && environmentSetting !== '0') {
  const asJson = environmentSetting === 'json';
  startProfiling();
  process.on('exit', () => {
    if (!profilingStarted()) return;
    try {
      const records = stopProfiling();
      const peak = measureFmaPeak();
      const report = buildReport(records, {
        description: `LMCL_PROFILE: the whole process (pid ${process.pid})`,
        peak: { gflops: peak.gflops, threads: peak.threads, simd: peak.simd },
      });
      writeSync(2, `${asJson ? reportJson(report) : formatReport(report)}\n`);
    } catch (error) {
      writeSync(2, `LMCL_PROFILE: could not write the profile (${error instanceof Error ? error.message : String(error)})\n`);
    }
  });
}
