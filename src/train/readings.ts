// Per-step numbers the loop needs on the host (loss parts, training top-1) wait here as device
// scalars until the next read: once per log interval, before a checkpoint and at the end of an
// epoch. A read downloads every waiting scalar in ONE transfer (stacked on the device), then adds
// the steps into the epoch meters in step order — the same float64 sums as reading each step at
// once, so metrics and checkpoints do not depend on when reads happen.
// A step whose 'total' is NaN/±Inf stops the read there: the steps before it are counted, it
// and later ones are not, and the caller learns which step it was.
import * as F from '../ops/functional.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { LossParts } from '../losses/parts.js';
import type { EpochMeters } from './state.js';

export interface PendingStep {
  /** Zero-based epoch, batch index in it, and global step of the step. */
  epoch: number;
  batchIndex: number;
  step: number;
  batchSize: number;
  parts: LossParts;
  /** Per network: correct top-1 of the final head on this batch (device scalar). */
  correct: Tensor[];
}

export interface NonFiniteStep {
  step: PendingStep;
  values: Record<string, number>;
}

export class PendingReadings {
  private pending: PendingStep[] = [];

  get size(): number {
    return this.pending.length;
  }

  push(step: PendingStep): void {
    this.pending.push(step);
  }

  /** Reads every pending step into `meters`; returns the first step with a non-finite total (not counted), or null. */
  readInto(meters: EpochMeters): NonFiniteStep | null {
    if (this.pending.length === 0) return null;
    const steps = this.takeAll();
    try {
      return countInto(steps, tidy(() => stackScalars(steps).toFloat32Array()), meters);
    } finally {
      release(steps);
    }
  }

  /**
   * readInto without blocking the event loop while the device finishes the queued steps (the
   * data loader's messages and signal handlers run meanwhile). The copy is queued at the call, so
   * it holds these steps' values whatever runs after; the meters change when the promise resolves.
   */
  async readIntoAsync(meters: EpochMeters): Promise<NonFiniteStep | null> {
    if (this.pending.length === 0) return null;
    const steps = this.takeAll();
    try {
      const stacked = tidy(() => stackScalars(steps));
      let values: Promise<Float32Array>;
      try {
        values = stacked.toFloat32ArrayAsync();
      } finally {
        stacked.dispose();
      }
      return countInto(steps, await values, meters);
    } finally {
      release(steps);
    }
  }

  private takeAll(): PendingStep[] {
    const steps = this.pending;
    this.pending = [];
    return steps;
  }

  /** Drops every pending step unread (the run is stopping). */
  discard(): void {
    release(this.takeAll());
  }
}

/** Every step's scalars (loss parts, then per-network correct counts) stacked into one vector. */
function stackScalars(steps: readonly PendingStep[]): Tensor {
  const scalars = steps.flatMap((step) => [...step.parts.tensors(), ...step.correct]);
  return F.stack(scalars.map((scalar) => F.reshape(scalar, [1])), 0);
}

/** Adds the steps' values into the meters in step order, up to the first non-finite total. */
function countInto(steps: readonly PendingStep[], values: Float32Array, meters: EpochMeters): NonFiniteStep | null {
  let offset = 0;
  for (const step of steps) {
    const parts = step.parts.valuesFrom(values, offset);
    offset += step.parts.tensors().length;
    const correct = step.correct.map((_, n) => values[offset + n]!);
    offset += step.correct.length;
    if (!Number.isFinite(parts.total)) return { step, values: parts };
    for (const [key, value] of Object.entries(parts)) meters.lossSums[key] = (meters.lossSums[key] ?? 0) + value * step.batchSize;
    correct.forEach((count, n) => {
      meters.correct[n]! += count;
    });
  }
  return null;
}

function release(steps: readonly PendingStep[]): void {
  for (const step of steps) {
    step.parts.dispose();
    for (const count of step.correct) count.dispose();
  }
}
