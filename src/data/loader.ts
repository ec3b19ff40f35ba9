// DataLoader: sampler + augmentation + batches as Tensors, with exact mid-epoch resume.
//
// Epoch e's batch order comes from a Generator seeded by (seed, e); its state at the start of the
// epoch is LoaderState.epochRngState, so loadState() regenerates the same plan and continues at
// `position`. The augmentation of batch b of epoch e is drawn from (seed, e, b) alone. The pixel
// work runs inline (workers: 0) or in worker threads with `prefetch` batches in flight; both give
// the same bits. Image folders (split.files): each batch's files are read, decoded and resized
// per batch — training RandomResizedCrop + flip, eval Resize + CenterCrop (image_pipeline.ts) —
// by the workers (pngjs / jpeg-js, or sharp when installed: `decoder`), or inline with the JS
// decoders (workers 0). sharp and jpeg-js may decode a JPEG a step apart, so the decoder is part
// of a run's bits: `decoder` records which one ran.
//
//   const loader = new DataLoader(splits.train, { batchSize: 128, sampler: 'm-per-class', augment: true,
//     flip: true, padding: 4, mean: splits.mean, std: splits.std, seed: 0, workers: 1 });
//   for (let epoch = 0; epoch < epochs; epoch++) for (const { x, y } of loader.epoch(epoch)) { ...; x.dispose(); }
//   loader.close();
//
// Each Batch.x is a new tensor on the loader's device (default CPU) the caller owns (dispose it,
// or create it inside tidy()).
import { createRequire } from 'node:module';
import { tensor } from '../tensor/creation.js';
import type { Device } from '../tensor/tensor.js';
import type { Generator as RandomGenerator } from '../tensor/random.js';
import { drawAugmentParams, drawImageParams, epochGenerator, normalizationTable, prepareBatch, type AugmentParams, type ImageParams } from './augment.js';
import { decodeImage } from './formats.js';
import { prepareImageItem, type ImageDecoderName } from './image_pipeline.js';
import { batchesPerEpoch, mPerClassPlan, resolveM, shufflePlan, type EpochPlan, type SamplerKind } from './sampler.js';
import type { Batch, ImageDataset, LoaderState } from './types.js';
import { WorkerPool, type PoolJob } from './workers.js';
import { allocateFloats } from './buffers.js';

export interface DataLoaderOptions {
  batchSize: number;
  sampler: SamplerKind;
  /** m-per-class only: images per class (default: see resolveM — 2, or floor(B/classes) for few classes). */
  m?: number;
  /** Random crop (with `padding`) and flip (if `flip`); false: normalisation only. */
  augment: boolean;
  flip: boolean;
  padding: number;
  mean: readonly number[];
  std: readonly number[];
  seed: number;
  /** Worker threads for batch preparation (0 = inline; default 1). */
  workers?: number;
  /** Batches prepared ahead of the one being consumed (default 2; with workers only). */
  prefetch?: number;
  /** shuffle only: drop the last partial batch (default false). m-per-class always gives full batches. */
  dropLast?: boolean;
  /**
   * Image folders: who decodes the files. 'auto' (default): sharp when it is installed and there
   * are workers, else 'js' (pngjs / jpeg-js; the only choice inline).
   */
  decoder?: ImageDecoderName | 'auto';
  /** Where each batch's image tensor is made (default 'cpu'): uploaded once, no host tensor. */
  device?: Device;
}

interface Job {
  indices: Int32Array;
  params: AugmentParams;
  padding: number;
  /** Image folders: the random numbers of RandomResizedCrop and flip (null uniforms: eval). */
  image: ImageParams | null;
}

let sharpLoads: boolean | null = null;
/** Whether the optional dependency sharp is installed and loads on this platform. */
export function sharpAvailable(): boolean {
  if (sharpLoads === null) {
    try {
      createRequire(import.meta.url)('sharp');
      sharpLoads = true;
    } catch {
      sharpLoads = false;
    }
  }
  return sharpLoads;
}

const NO_AUGMENT: AugmentParams = { offY: null, offX: null, flips: null };
const NO_IMAGE_AUGMENT: ImageParams = { uniforms: null, flips: null };

export class DataLoader {
  readonly split: ImageDataset;
  readonly batchSize: number;
  readonly sampler: SamplerKind;
  /** Resolved images per class (m-per-class), else undefined. */
  readonly m: number | undefined;
  readonly seed: number;
  /** Image folders: the decoder that runs ('js' or 'sharp'); null for in-memory datasets. */
  readonly decoder: ImageDecoderName | null;
  private readonly options: DataLoaderOptions;
  private readonly dropLast: boolean;
  private readonly lut: Float32Array;
  private readonly itemFloats: number;
  private readonly pool: WorkerPool | null;
  private readonly staging: Float32Array;
  private readonly device: Device;
  private current: LoaderState | null = null;
  private pendingResume: LoaderState | null = null;
  private generation = 0;
  private closed = false;

  constructor(split: ImageDataset, options: DataLoaderOptions) {
    const { batchSize, sampler, padding, seed } = options;
    if (!split || !(split.pixels instanceof Uint8Array) || !(split.labels instanceof Int32Array)) throw new TypeError('DataLoader: split must be an ImageDataset');
    const held = split.files ? split.files.length : split.pixels.length / (split.channels * split.height * split.width);
    if (held !== split.count || split.labels.length !== split.count) {
      throw new Error(`DataLoader: ${split.name}: ${split.files ? 'files' : 'pixels'}/labels do not match count ${split.count} × [${split.channels}, ${split.height}, ${split.width}]`);
    }
    if (split.files && (split.channels !== 3 || split.height !== split.width)) {
      throw new Error(`DataLoader: ${split.name}: an image folder gives square RGB images, not ${split.channels}×${split.height}×${split.width}`);
    }
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`DataLoader: batchSize must be a positive integer, got ${batchSize}`);
    if (sampler !== 'shuffle' && sampler !== 'm-per-class') throw new Error(`DataLoader: sampler must be 'shuffle' or 'm-per-class', got ${JSON.stringify(sampler)}`);
    if (!Number.isInteger(padding) || padding < 0) throw new Error(`DataLoader: padding must be a non-negative integer, got ${padding}`);
    if (!Number.isFinite(seed)) throw new Error(`DataLoader: seed must be a finite number, got ${seed}`);
    if (options.mean.length !== split.channels || options.std.length !== split.channels) {
      throw new Error(`DataLoader: mean/std have ${options.mean.length}/${options.std.length} values but ${split.name} has ${split.channels} channels`);
    }
    const workers = options.workers ?? 1;
    if (!Number.isInteger(workers) || workers < 0) throw new Error(`DataLoader: workers must be a non-negative integer, got ${workers}`);
    const decoder = options.decoder ?? 'auto';
    if (decoder !== 'auto' && decoder !== 'js' && decoder !== 'sharp') throw new Error(`DataLoader: decoder must be 'auto', 'js' or 'sharp', got ${JSON.stringify(decoder)}`);
    if (decoder === 'sharp' && split.files && workers === 0) throw new Error('DataLoader: the sharp decoder runs in the worker threads only (asynchronous); use workers >= 1 or decoder js');
    if (decoder === 'sharp' && split.files && !sharpAvailable()) throw new Error('DataLoader: decoder sharp: the optional dependency sharp is not installed or does not load here (npm install sharp)');
    const device = options.device ?? 'cpu';
    if (device !== 'cpu' && device !== 'cuda') throw new Error(`DataLoader: device must be 'cpu' or 'cuda', got ${JSON.stringify(device)}`);
    const prefetch = options.prefetch ?? 2;
    if (!Number.isInteger(prefetch) || prefetch < 1) throw new Error(`DataLoader: prefetch must be a positive integer, got ${prefetch}`);
    this.split = split;
    this.options = options;
    this.device = device;
    this.batchSize = batchSize;
    this.sampler = sampler;
    this.seed = seed;
    this.dropLast = options.dropLast ?? false;
    this.decoder = split.files ? (decoder === 'auto' ? (workers > 0 && sharpAvailable() ? 'sharp' : 'js') : decoder) : null;
    this.m = sampler === 'm-per-class' ? resolveM(batchSize, split.classes, options.m) : undefined;
    if (sampler === 'm-per-class' && split.count < batchSize) {
      throw new Error(`DataLoader: ${split.name} has ${split.count} images, fewer than one m-per-class batch of ${batchSize}`);
    }
    this.lut = normalizationTable(options.mean, options.std);
    this.itemFloats = split.channels * split.height * split.width;
    // Buffers are sized by the largest batch this loader yields: a batch size beyond the split is
    // one batch of the whole split (--batch-size 1e9 on 64 images allocates for 64). Allocated
    // here, so a batch too big for memory is an error now, naming the split and the size.
    const largestBatch = Math.min(batchSize, split.count);
    const what = `DataLoader: ${split.name}: a batch of ${largestBatch} images of ${split.channels}×${split.height}×${split.width}`;
    this.staging = allocateFloats(largestBatch * this.itemFloats, what);
    this.pool =
      workers > 0
        ? new WorkerPool({ pixels: split.pixels, channels: split.channels, height: split.height, width: split.width, lut: this.lut, maxBatch: largestBatch,
            ...(this.decoder ? { files: { decoder: this.decoder } } : {}) }, workers, prefetch, undefined, what)
        : null;
  }

  /** Training batches per epoch (m-per-class: floor(N/B); shuffle: ceil, or floor with dropLast). */
  get batchesPerEpoch(): number {
    return batchesPerEpoch(this.sampler, this.split.count, this.batchSize, this.dropLast);
  }

  /** Batches of the eval iterator (sequential, last partial batch kept). */
  get evalBatchCount(): number {
    return Math.ceil(this.split.count / this.batchSize);
  }

  /** Position for a checkpoint: the epoch and the next batch to yield within it. */
  state(): LoaderState {
    const state = this.current ?? this.pendingResume ?? { epoch: 0, position: 0, epochRngState: epochGenerator(this.seed, 0).getState() };
    return { epoch: state.epoch, position: state.position, epochRngState: [...state.epochRngState] };
  }

  /** Resume: the next epoch(state.epoch) continues at batch state.position, with the same bits. */
  loadState(state: LoaderState): void {
    if (!state || !Number.isInteger(state.epoch) || state.epoch < 0 || !Number.isInteger(state.position) || state.position < 0) {
      throw new Error(`DataLoader.loadState: expected { epoch, position, epochRngState } from state(), got ${JSON.stringify(state)}`);
    }
    if (!Array.isArray(state.epochRngState) || state.epochRngState.length !== 5) {
      throw new Error('DataLoader.loadState: epochRngState must be the 5-number array from Generator.getState()');
    }
    if (state.position > this.batchesPerEpoch) {
      throw new Error(`DataLoader.loadState: position ${state.position} is beyond the ${this.batchesPerEpoch} batches of an epoch`);
    }
    this.pendingResume = { epoch: state.epoch, position: state.position, epochRngState: [...state.epochRngState] };
    this.current = null;
  }

  /** The batch order of an epoch (from a generator positioned at the epoch start). */
  plan(rng: RandomGenerator): EpochPlan {
    return this.sampler === 'shuffle'
      ? shufflePlan(this.split.count, this.batchSize, this.dropLast, rng)
      : mPerClassPlan(this.split.labels, this.split.classes, this.batchSize, this.m!, rng);
  }

  /**
   * Training batches of epoch `epochIndex`, from batch `startBatch` (default: the position given
   * to loadState() when it is for this epoch, else 0). Batches before startBatch are skipped
   * without being prepared; the ones yielded are bit-identical to an uninterrupted epoch.
   */
  *epoch(epochIndex: number, startBatch?: number): Generator<Batch, void, undefined> {
    if (!Number.isInteger(epochIndex) || epochIndex < 0) throw new Error(`DataLoader.epoch: epoch must be a non-negative integer, got ${epochIndex}`);
    const rng = epochGenerator(this.seed, epochIndex);
    let start = 0;
    const resume = this.pendingResume;
    if (resume && resume.epoch === epochIndex) {
      rng.setState(resume.epochRngState);
      start = resume.position;
    }
    if (startBatch !== undefined) {
      if (!Number.isInteger(startBatch) || startBatch < 0) throw new Error(`DataLoader.epoch: startBatch must be a non-negative integer, got ${startBatch}`);
      start = startBatch;
    }
    this.pendingResume = null;
    const epochRngState = rng.getState();
    const plan = this.plan(rng);
    const total = plan.starts.length;
    if (start > total) throw new Error(`DataLoader.epoch: start batch ${start} is beyond the ${total} batches of epoch ${epochIndex}`);
    this.current = { epoch: epochIndex, position: start, epochRngState };
    const { augment, flip, padding } = this.options;
    const job = (b: number): Job => {
      const indices = plan.order.slice(plan.starts[b]!, plan.starts[b]! + plan.sizes[b]!);
      if (this.split.files) {
        const image = augment ? drawImageParams(this.seed, epochIndex, b, indices.length, flip) : NO_IMAGE_AUGMENT;
        return { indices, params: NO_AUGMENT, padding: 0, image };
      }
      const params = augment ? drawAugmentParams(this.seed, epochIndex, b, indices.length, padding, flip) : NO_AUGMENT;
      return { indices, params, padding: augment ? padding : 0, image: null };
    };
    const current = this.current;
    for (const batch of this.pipeline(start, total, job)) {
      current.position += 1;
      yield batch;
    }
    if (this.current === current) {
      this.current = { epoch: epochIndex + 1, position: 0, epochRngState: epochGenerator(this.seed, epochIndex + 1).getState() };
    }
  }

  /** Evaluation batches: the split in order, no augmentation, the last partial batch kept. */
  *evalBatches(): Generator<Batch, void, undefined> {
    const count = this.split.count;
    const job = (b: number): Job => {
      const first = b * this.batchSize;
      const indices = new Int32Array(Math.min(this.batchSize, count - first));
      for (let i = 0; i < indices.length; i += 1) indices[i] = first + i;
      return { indices, params: NO_AUGMENT, padding: 0, image: this.split.files ? NO_IMAGE_AUGMENT : null };
    };
    yield* this.pipeline(0, this.evalBatchCount, job);
  }

  private *pipeline(start: number, total: number, job: (b: number) => Job): Generator<Batch, void, undefined> {
    if (this.closed) throw new Error('DataLoader: used after close()');
    const generation = ++this.generation;
    const pool = this.pool;
    const jobs = new Map<number, Job>();
    const submit = (b: number): void => {
      if (b >= total || !pool) return;
      const next = job(b);
      jobs.set(b, next);
      pool.submit(b % pool.slots, this.poolJob(next));
    };
    pool?.drain(); // an earlier iteration left abandoned may still have jobs in flight
    try {
      if (pool) for (let b = start; b < Math.min(total, start + pool.slots); b += 1) submit(b);
      for (let b = start; b < total; b += 1) {
        if (generation !== this.generation) throw new Error('DataLoader: this iterator was superseded by a newer epoch()/evalBatches() call');
        let current: Job;
        let floats: Float32Array;
        if (pool) {
          current = jobs.get(b)!;
          jobs.delete(b);
          // Node-API does not accept typed arrays over a SharedArrayBuffer: copy the slot into
          // the reused staging array (a memcpy of one batch), which also frees the slot at once.
          const shared = pool.collect(b % pool.slots, current.indices.length * this.itemFloats);
          floats = this.stagingArray(shared.length);
          floats.set(shared);
        } else {
          current = job(b);
          floats = this.prepareInline(current);
        }
        const batch = this.toBatch(current, floats);
        submit(b + (pool?.slots ?? 0));
        yield batch;
      }
    } finally {
      if (generation === this.generation) pool?.drain();
    }
  }

  private stagingArray(floats: number): Float32Array {
    // Sized in the constructor for the largest batch; a longer request is a bug here, not bad input.
    if (floats > this.staging.length) throw new Error(`DataLoader internal: a batch of ${floats} floats exceeds the staging array (${this.staging.length})`);
    return this.staging.subarray(0, floats);
  }

  private poolJob(job: Job): PoolJob {
    const files = this.split.files;
    if (files && job.image) return { kind: 'files', files: Array.from(job.indices, (index) => files[index]!), params: job.image };
    return { kind: 'pixels', indices: job.indices, params: job.params, padding: job.padding };
  }

  private prepareInline(job: Job): Float32Array {
    const out = this.stagingArray(job.indices.length * this.itemFloats);
    const files = this.split.files;
    if (files && job.image) {
      const { uniforms, flips } = job.image;
      job.indices.forEach((index, item) => prepareImageItem(decodeImage(files[index]!), item, uniforms, flips, this.split.height, this.lut, out));
      return out;
    }
    const { channels, height, width, pixels } = this.split;
    prepareBatch(pixels, channels, height, width, job.indices, job.indices.length, job.params.offY, job.params.offX, job.params.flips, job.padding, this.lut, out);
    return out;
  }

  private toBatch(job: Job, floats: Float32Array): Batch {
    const { channels, height, width, labels } = this.split;
    const y = new Int32Array(job.indices.length);
    for (let i = 0; i < y.length; i += 1) y[i] = labels[job.indices[i]!]!;
    const x = tensor(floats, [job.indices.length, channels, height, width], { device: this.device });
    return { x, y, indices: job.indices };
  }

  /** Terminates the worker threads (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.generation += 1;
    this.pool?.close();
  }
}
