// `lmcl profile`: builds a cohort and a method exactly as `lmcl train` does, feeds them synthetic
// batches of the dataset's shape (random normal images, labels two per class like MCL's
// m-per-class sampler), runs warm-up steps unrecorded (first-call allocations, JIT, the thread
// pool coming up), then records `steps` training steps and measures the FMA peak for the % column.
// The steps are real training steps (forward, loss, backward, SGD update), only the data is fake:
// kernel times depend on shapes, not on pixel values. Batch indices count from 0 through the
// warm-up, so L-MCL's meta phase (batch index % meta frequency = 0) falls in the first warm-up
// step and the recorded steps are its main updates; --warmup 0 puts it in the first recorded one.
// The method's own modules (embedding heads, ...) get module timers as well as the networks.
import '../autograd/engine.js';
import { tidy, keep } from '../tensor/scope.js';
import { manualSeed, defaultGenerator } from '../tensor/random.js';
import { randn } from '../tensor/creation.js';
import type { Device } from '../tensor/tensor.js';
import { IndexTensor } from '../tensor/index_tensor.js';
import { SGD } from '../optim/sgd.js';
import { createCohort } from '../models/registry.js';
import { getMethod, readMethodOptions } from '../losses/registry.js';
import { resolveTrainConfig } from './config.js';
import { runStep, stepContext } from './step.js';
import { placeCohort, requireDevice } from './device.js';
import { unwrappedNative } from '../native/index.js';
import { profileStep, startProfiling, stopProfiling } from '../profiler/profiler.js';
import { attachModuleTimers } from '../profiler/modules.js';
import { measureFmaPeak } from '../profiler/peak.js';
import { buildReport, type ProfileReport } from '../profiler/report.js';

/** Image shape and class count of each dataset the synthetic batches imitate. */
export const SYNTHETIC_SHAPES: Readonly<Record<string, { channels: number; size: number; classes: number }>> = {
  cifar100: { channels: 3, size: 32, classes: 100 },
  cifar10: { channels: 3, size: 32, classes: 10 },
  'fashion-mnist': { channels: 1, size: 28, classes: 10 },
  mnist: { channels: 1, size: 28, classes: 10 },
};

export interface ProfileTrainingOptions {
  arch: string;
  method: string;
  numberNet?: number;
  batchSize?: number;
  /** Recorded steps (default 5). */
  steps?: number;
  /** Unrecorded steps first (default 2). */
  warmup?: number;
  /** Which dataset's image shape and classes (default cifar100: 3×32×32, 100 classes). */
  dataset?: string;
  /** Per-module attribution (default true). */
  modules?: boolean;
  /** Measure the FMA peak for the % column (default true). */
  peak?: boolean;
  seed?: number;
  /**
   * Where the networks, the method's modules and the batch live (default 'cpu'). On 'cuda' every
   * step ends with a device read (a synchronisation), so the step time is the device's; the
   * per-op times are then only the host-side launch times of the asynchronous kernels.
   */
  device?: Device;
}

export function profileTraining(options: ProfileTrainingOptions): ProfileReport {
  const steps = options.steps ?? 5;
  const warmup = options.warmup ?? 2;
  if (!Number.isInteger(steps) || steps < 1) throw new Error(`profile: steps must be an integer ≥ 1, got ${String(steps)}`);
  if (!Number.isInteger(warmup) || warmup < 0) throw new Error(`profile: warmup must be an integer ≥ 0, got ${String(warmup)}`);
  const dataset = options.dataset ?? 'cifar100';
  const shape = SYNTHETIC_SHAPES[dataset];
  if (!shape) throw new Error(`profile: no synthetic shape for dataset '${dataset}' (known: ${Object.keys(SYNTHETIC_SHAPES).join(', ')})`);
  const config = resolveTrainConfig({
    arch: options.arch, method: options.method, numberNet: options.numberNet, batchSize: options.batchSize, dataset, seed: options.seed ?? 0,
  });
  const batchSize = config.batchSize;
  const device = options.device ?? 'cpu';
  if (device !== 'cpu' && device !== 'cuda') throw new Error(`profile: device must be 'cpu' or 'cuda', got ${String(device)}`);
  requireDevice(device, 'profile');
  manualSeed(config.seed);
  const networks = createCohort(config.arch, config.numberNet, {
    numClasses: shape.classes, inChannels: shape.channels, imageSize: shape.size, auxiliary: config.auxiliary,
  });
  // Labels two per class (MCL's m-per-class batches have positives); a "training split" of
  // max(batch, 1024) images for the methods that keep one memory-bank row per image.
  const trainCount = Math.max(batchSize, 1024);
  const trainLabels = Int32Array.from({ length: trainCount }, (_, index) => Math.floor(index / 2) % shape.classes);
  const entry = getMethod(config.method);
  const method = entry.create({ networks, classes: shape.classes, options: readMethodOptions(entry, config), trainLabels, seed: config.seed });
  // Before the optimizers take the parameter tensors: moving replaces them (train/device.ts).
  placeCohort(networks, method, device);
  const optimizers = new Map<string, SGD>(method.parameterSets().map((set) => [set.name, new SGD(set.parameters,
    { lr: config.lr, momentum: config.momentum, nesterov: config.nesterov, weightDecay: config.weightDecay, ...set.optimizer })]));
  const images = randn([batchSize, shape.channels, shape.size, shape.size], { generator: defaultGenerator });
  const batch = {
    x: keep(device === 'cpu' ? images : images.to(device)),
    y: IndexTensor.from(trainLabels.subarray(0, batchSize), device),
    indices: Int32Array.from({ length: batchSize }, (_, index) => index),
  };
  const detachModules = options.modules === false ? () => {} : attachModuleTimers([...networks, ...(method.criterion ? [method.criterion] : [])]);
  const trainingStep = (step: number): void => {
    const context = stepContext(method, {
      epoch: 0, step, batchIndex: step, batchesPerEpoch: warmup + steps, lr: config.lr, classes: shape.classes, networks, optimizers,
    });
    const parts = tidy(() => runStep(method, batch, context).parts);
    parts.dispose();
    // Wait for the device: a one-value read of a parameter the step updated.
    if (device !== 'cpu') networks[0]!.parameters()[0]!.toFloat32Array();
    for (const optimizer of optimizers.values()) optimizer.zeroGrad();
  };
  try {
    for (const net of networks) net.train();
    method.train();
    for (let step = 0; step < warmup; step += 1) trainingStep(step);
    startProfiling();
    for (let step = warmup; step < warmup + steps; step += 1) profileStep(() => trainingStep(step));
    const records = stopProfiling();
    const peak = options.peak === false ? null : measureFmaPeak();
    const threads = unwrappedNative().info().threads;
    const description = `${config.arch} ×${config.numberNet}, ${config.method}, batch ${batchSize}, synthetic ${dataset} ` +
      `${shape.channels}×${shape.size}×${shape.size}, ${threads} thread${threads === 1 ? '' : 's'}, after ${warmup} warm-up step${warmup === 1 ? '' : 's'}`;
    return buildReport(records, { description, peak: peak && { gflops: peak.gflops, threads: peak.threads, simd: peak.simd } });
  } finally {
    detachModules();
    batch.x.dispose();
    batch.y.dispose();
    if (images !== batch.x) images.dispose();
    for (const optimizer of optimizers.values()) optimizer.dispose();
    method.dispose();
    for (const net of networks) net.dispose();
  }
}
