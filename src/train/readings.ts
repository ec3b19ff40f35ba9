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
    const steps = this.pending;
    this.pending = [];
    try {
      const scalars = steps.flatMap((step) => [...step.parts.tensors(), ...step.correct]);
      const values = tidy(() => F.stack(scalars.map((scalar) => F.reshape(scalar, [1])), 0).toFloat32Array());
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
    } finally {
      for (const step of steps) {
        step.parts.dispose();
        for (const count of step.correct) count.dispose();
      }
    }
  }

  /** Drops every pending step unread (the run is stopping). */
  discard(): void {
    for (const step of this.pending) {
      step.parts.dispose();
      for (const count of step.correct) count.dispose();
    }
    this.pending = [];
  }
}
