// Learning-rate schedules, set once at the start of each epoch (like the reference's adjust_lr).
//   cosine     lr_e = lr · ½ (1 + cos(π · e / E))                         e = 0 … E−1
//   multistep  lr_e = lr · gamma^(number of milestones ≤ e)
//   warm-up    for e < W (W = warmupEpochs > 0): lr_e = lr · (e + 1) / (W + 1), linear from
//              lr/(W+1) up towards lr; from epoch W the main schedule runs over e' = e − W of
//              E − W epochs (so cosine still starts at lr and ends near 0); multistep milestones
//              count absolute epochs.
export type LrType = 'cosine' | 'multistep';

export interface ScheduleOptions {
  lr: number;
  epochs: number;
  type: LrType;
  milestones?: readonly number[];
  gamma?: number;
  warmupEpochs?: number;
}

export function checkSchedule(options: ScheduleOptions): void {
  const { lr, epochs, type } = options;
  if (!(Number.isFinite(lr) && lr >= 0)) throw new Error(`--lr must be a finite number ≥ 0, got ${lr}`);
  if (!(Number.isSafeInteger(epochs) && epochs >= 1)) throw new Error(`--epochs must be an integer ≥ 1, got ${epochs}`);
  if (type !== 'cosine' && type !== 'multistep') throw new Error(`--lr-type must be cosine or multistep, got '${String(type)}'`);
  const warmup = options.warmupEpochs ?? 0;
  if (!(Number.isSafeInteger(warmup) && warmup >= 0 && warmup < epochs)) {
    throw new Error(`--warmup-epochs must be an integer in [0, epochs), got ${warmup}`);
  }
  for (const m of options.milestones ?? []) {
    if (!(Number.isSafeInteger(m) && m >= 0)) throw new Error(`--milestones must be non-negative integers, got ${m}`);
  }
  const gamma = options.gamma ?? 0.1;
  if (!(Number.isFinite(gamma) && gamma > 0)) throw new Error(`--gamma must be > 0, got ${gamma}`);
}

/** The learning rate of epoch `epoch` (zero-based). */
export function learningRate(options: ScheduleOptions, epoch: number): number {
  const { lr, epochs, type } = options;
  const warmup = options.warmupEpochs ?? 0;
  if (epoch < warmup) return (lr * (epoch + 1)) / (warmup + 1);
  const e = epoch - warmup;
  const total = epochs - warmup;
  if (type === 'cosine') return lr * 0.5 * (1 + Math.cos((Math.PI * e) / total));
  const passed = (options.milestones ?? []).filter((m) => m <= epoch).length;
  return lr * Math.pow(options.gamma ?? 0.1, passed);
}
