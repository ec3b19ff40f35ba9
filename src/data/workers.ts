// Batch preparation in worker_threads, waited on synchronously.
//
// The dataset pixels are copied once into a SharedArrayBuffer that every worker reads. Each of
// the `slots` (= prefetch depth) output buffers is a SharedArrayBuffer too, so nothing is copied
// back: a worker writes a batch into its slot, stores the job id in control[slot] and notifies;
// the main thread waits with Atomics.wait, so the training loop stays synchronous while the next
// batches are prepared in parallel. Jobs go to workers round-robin; the bits of a batch depend
// only on the job (indices + augmentation parameters), never on which worker ran it.
// Image folders: no pixels are shared; a job carries its batch's file paths and random numbers,
// and the worker reads, decodes (pngjs / jpeg-js, or sharp when it is the decoder) and resizes
// them (image_pipeline.ts, the same functions as the inline path).
// Workers are unref()'d (the process never waits for them) and terminated by close().
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { prepareBatch } from './augment.js';
import type { AugmentParams, ImageParams } from './augment.js';
import { allocateSharedFloats } from './buffers.js';
import { MAX_IMAGE_PIXELS } from './formats.js';
import { imagePipelineSource } from './image_pipeline.js';
import type { ImageDecoderName } from './image_pipeline.js';

const WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const control = new Int32Array(workerData.control);
const errorBytes = new Uint8Array(workerData.error);
let prepareBatch = null;
let pixels = null;
let outputs = null;
let image = null; // image folders: the pipeline's functions, the decoders, fs
let setupError = null;
try {
  outputs = workerData.outputs.map((buffer) => new Float32Array(buffer));
  if (workerData.files) {
    // The same functions as the inline path, from their source text.
    const pipeline = (0, eval)('(() => {' + workerData.files.source + '\\n return { decodeImageBytes, prepareImageItem }; })()');
    const paths = workerData.files.modules;
    const sharp = workerData.files.decoder === 'sharp' ? require(paths.sharp) : null;
    if (sharp) {
      sharp.concurrency(1); // one libvips thread per worker: the workers are the parallelism
      sharp.cache(false);
    }
    const decoders = { png: require(paths.pngjs), jpeg: require(paths.jpeg), inflateSync: require('node:zlib').inflateSync, maxPixels: workerData.files.maxPixels };
    image = { pipeline, sharp, decoders, fs: require('node:fs') };
  } else {
    prepareBatch = (0, eval)('(' + workerData.prepareSource + ')');
    pixels = new Uint8Array(workerData.pixels);
  }
} catch (error) {
  setupError = error;
}
const { channels, height, width, lut } = workerData;
async function decode(file) {
  let bytes;
  try {
    bytes = image.fs.readFileSync(file);
  } catch (error) {
    throw new Error('imagefolder: cannot read ' + file + ': ' + error.message);
  }
  if (!image.sharp) return image.pipeline.decodeImageBytes(bytes, file, image.decoders);
  try {
    const { data, info } = await image.sharp(bytes, { limitInputPixels: image.decoders.maxPixels })
      .toColourspace('srgb').removeAlpha().raw().toBuffer({ resolveWithObject: true });
    return { width: info.width, height: info.height, stride: info.channels, data };
  } catch (error) {
    throw new Error('imagefolder: cannot decode ' + file + ' (corrupt or truncated image?): ' + error.message);
  }
}
async function run(job) {
  if (setupError) throw setupError;
  const out = outputs[job.slot];
  if (!image) {
    prepareBatch(pixels, channels, height, width, job.indices, job.count, job.offY, job.offX, job.flips, job.padding, lut, out);
    return;
  }
  for (let item = 0; item < job.files.length; item += 1) {
    image.pipeline.prepareImageItem(await decode(job.files[item]), item, job.uniforms, job.flips, height, lut, out);
  }
}
parentPort.on('message', (job) => {
  run(job).then(() => job.id, (error) => {
    const text = new TextEncoder().encode(String(error && error.stack || error)).subarray(0, errorBytes.length - 4);
    new DataView(errorBytes.buffer).setInt32(0, text.length, true);
    errorBytes.set(text, 4);
    return -job.id;
  }).then((status) => {
    Atomics.store(control, job.slot, status);
    Atomics.notify(control, job.slot);
  });
});
`;

export interface PoolGeometry {
  /** In-memory datasets: the uint8 pixels [N, C, H, W]; image folders: empty (see `files`). */
  pixels: Uint8Array;
  channels: number;
  height: number;
  width: number;
  lut: Float32Array;
  /** Largest batch (floats per slot = maxBatch·C·H·W). */
  maxBatch: number;
  /** Image folders: decode and resize each batch's files in the workers, with this decoder. */
  files?: { decoder: ImageDecoderName };
}

/** A batch of an in-memory dataset (indices + crop/flip) or of an image folder (files + random numbers). */
export type PoolJob =
  | { kind: 'pixels'; indices: Int32Array; params: AugmentParams; padding: number }
  | { kind: 'files'; files: string[]; params: ImageParams };

/** Module paths the image workers require (resolved here, so a worker finds what lmcl found). */
function imageModulePaths(decoder: ImageDecoderName): Record<string, string> {
  const require = createRequire(import.meta.url);
  return { pngjs: require.resolve('pngjs'), jpeg: require.resolve('jpeg-js'), ...(decoder === 'sharp' ? { sharp: require.resolve('sharp') } : {}) };
}

export class WorkerPool {
  private readonly workers: Worker[];
  private readonly control: Int32Array;
  private readonly outputs: Float32Array[];
  private readonly error: Uint8Array;
  private readonly pending = new Map<number, number>(); // slot → job id in flight
  private nextId = 1;
  private closed = false;
  readonly slots: number;

  constructor(geometry: PoolGeometry, workerCount: number, slots: number, private readonly timeoutMs = 120_000, what = 'WorkerPool: one batch') {
    if (!Number.isInteger(workerCount) || workerCount < 1) throw new Error(`WorkerPool: worker count must be >= 1, got ${workerCount}`);
    this.slots = slots;
    // Pixels already in a SharedArrayBuffer (e.g. shared with another loader) are used as they are.
    const source = geometry.files ? new Uint8Array(0) : geometry.pixels;
    let shared: SharedArrayBuffer;
    if (source.buffer instanceof SharedArrayBuffer && source.byteOffset === 0 && source.byteLength === source.buffer.byteLength) {
      shared = source.buffer;
    } else {
      shared = new SharedArrayBuffer(source.length);
      new Uint8Array(shared).set(source);
    }
    const controlBuffer = new SharedArrayBuffer(4 * slots);
    this.control = new Int32Array(controlBuffer);
    const floats = geometry.maxBatch * geometry.channels * geometry.height * geometry.width;
    const outputBuffers = Array.from({ length: slots }, (_, slot) => allocateSharedFloats(floats, `${what} (worker output slot ${slot + 1} of ${slots})`));
    this.outputs = outputBuffers.map((buffer) => new Float32Array(buffer));
    const errorBuffer = new SharedArrayBuffer(4096);
    this.error = new Uint8Array(errorBuffer);
    const workerData = {
      pixels: shared,
      control: controlBuffer,
      outputs: outputBuffers,
      error: errorBuffer,
      channels: geometry.channels,
      height: geometry.height,
      width: geometry.width,
      lut: geometry.lut,
      prepareSource: prepareBatch.toString(),
      files: geometry.files
        ? { decoder: geometry.files.decoder, source: imagePipelineSource(), modules: imageModulePaths(geometry.files.decoder), maxPixels: MAX_IMAGE_PIXELS }
        : null,
    };
    this.workers = Array.from({ length: workerCount }, () => {
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData });
      worker.unref();
      // A crash is reported through the wait timeout; keep the 'error' event from throwing.
      worker.on('error', () => undefined);
      return worker;
    });
  }

  /** Queues a batch for `slot` (which must be free: collected or drained). */
  submit(slot: number, job: PoolJob): void {
    if (this.closed) throw new Error('DataLoader: used after close()');
    if (this.pending.has(slot)) throw new Error(`WorkerPool: slot ${slot} is still in use`);
    const id = this.nextId++;
    this.pending.set(slot, id);
    const worker = this.workers[id % this.workers.length]!;
    if (job.kind === 'pixels') {
      const { indices, params, padding } = job;
      worker.postMessage({ id, slot, indices, count: indices.length, offY: params.offY, offX: params.offX, flips: params.flips, padding });
    } else {
      worker.postMessage({ id, slot, files: job.files, uniforms: job.params.uniforms, flips: job.params.flips });
    }
  }

  /** Waits for the slot's job; returns a view of its output (valid until the slot is reused). */
  collect(slot: number, floats: number): Float32Array {
    const id = this.pending.get(slot);
    if (id === undefined) throw new Error(`WorkerPool: nothing submitted to slot ${slot}`);
    this.wait(slot, id);
    this.pending.delete(slot);
    return this.outputs[slot]!.subarray(0, floats);
  }

  /** Waits for every job in flight (before its slots are reused by another iteration). */
  drain(): void {
    for (const [slot, id] of [...this.pending]) {
      try {
        this.wait(slot, id);
      } finally {
        this.pending.delete(slot);
      }
    }
  }

  private wait(slot: number, id: number): void {
    const started = Date.now();
    for (;;) {
      const value = Atomics.load(this.control, slot);
      if (value === id) return;
      if (value === -id) {
        const length = new DataView(this.error.buffer).getInt32(0, true);
        throw new Error(`DataLoader: a data worker failed: ${new TextDecoder().decode(this.error.slice(4, 4 + length))}`);
      }
      if (Date.now() - started > this.timeoutMs) {
        throw new Error(`DataLoader: a data worker did not deliver batch job ${id} within ${this.timeoutMs / 1000} s (worker crashed?)`);
      }
      Atomics.wait(this.control, slot, value, 500);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pending.clear();
    for (const worker of this.workers) void worker.terminate();
  }
}
