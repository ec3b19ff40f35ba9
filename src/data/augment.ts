// Augmentation and normalisation in float32: RandomCrop(size, padding) with zero padding,
// RandomHorizontalFlip, then per-channel Normalize — torchvision's order (crop, flip, ToTensor,
// Normalize). Test time: normalisation only.
//
// The random parameters of a batch (crop offsets, flip bits) come from a Generator seeded by
// (seed, epoch, batch index) alone, drawn on the main thread; the pixel work (prepareBatch) is a
// pure function run inline or in a worker. So the bits of a batch never depend on worker timing
// or count.
import { Generator } from '../tensor/random.js';
import { CROP_UNIFORMS } from './image_pipeline.js';

/** 32-bit mix of (seed, a, b, salt) — murmur3's finaliser over a running combination. */
export function mixSeed(seed: number, a: number, b: number, salt: number): number {
  let h = (Math.floor(seed) ^ 0x9e3779b9) >>> 0;
  for (const word of [a, b, salt]) {
    h = (h ^ (Math.floor(word) >>> 0)) >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
    h = (h + 0x7f4a7c15) >>> 0;
  }
  return h;
}

export const ORDER_SALT = 0x0bde4;
export const AUGMENT_SALT = 0xa06e;

/** The generator that draws epoch `epoch`'s batch order. */
export function epochGenerator(seed: number, epoch: number): Generator {
  return new Generator(mixSeed(seed, epoch, 0, ORDER_SALT));
}

export interface AugmentParams {
  /** Crop offsets into the padded image, in [0, 2·padding]; null when not cropping. */
  offY: Int32Array | null;
  offX: Int32Array | null;
  /** 1 = flip horizontally; null when flipping is disabled. */
  flips: Uint8Array | null;
}

/** Random parameters for batch `batch` of epoch `epoch` (count items). */
export function drawAugmentParams(seed: number, epoch: number, batch: number, count: number, padding: number, flip: boolean): AugmentParams {
  const rng = new Generator(mixSeed(seed, epoch, batch, AUGMENT_SALT));
  const span = 2 * padding + 1;
  const offY = padding > 0 ? new Int32Array(count) : null;
  const offX = padding > 0 ? new Int32Array(count) : null;
  const flips = flip ? new Uint8Array(count) : null;
  for (let i = 0; i < count; i += 1) {
    if (offY && offX) {
      offY[i] = rng.integer(span);
      offX[i] = rng.integer(span);
    }
    if (flips) flips[i] = rng.uniform() < 0.5 ? 1 : 0;
  }
  return { offY, offX, flips };
}

/** Random numbers of an image-folder batch: RandomResizedCrop's uniforms and the flip bits. */
export interface ImageParams {
  /** count × CROP_UNIFORMS uniforms in [0, 1) (image i's at i·CROP_UNIFORMS); null at eval. */
  uniforms: Float64Array | null;
  /** 1 = flip horizontally; null when flipping is disabled or at eval. */
  flips: Uint8Array | null;
}

export const IMAGE_SALT = 0x1a6e;

/**
 * Random numbers for image-folder batch `batch` of epoch `epoch`: CROP_UNIFORMS (40) uniforms per
 * image for RandomResizedCrop (drawn whatever the image's size, so the stream never depends on
 * it), then a flip bit per image.
 */
export function drawImageParams(seed: number, epoch: number, batch: number, count: number, flip: boolean): ImageParams {
  const rng = new Generator(mixSeed(seed, epoch, batch, IMAGE_SALT));
  const uniforms = new Float64Array(count * CROP_UNIFORMS);
  for (let i = 0; i < uniforms.length; i += 1) uniforms[i] = rng.uniform();
  const flips = flip ? new Uint8Array(count) : null;
  if (flips) for (let i = 0; i < count; i += 1) flips[i] = rng.uniform() < 0.5 ? 1 : 0;
  return { uniforms, flips };
}

/** lut[c·256 + v] = (v/255 − mean[c]) / std[c] in float32: the whole per-pixel normalisation. */
export function normalizationTable(mean: readonly number[], std: readonly number[]): Float32Array {
  if (mean.length !== std.length || mean.length === 0) throw new Error(`normalization: mean (${mean.length}) and std (${std.length}) must have one value per channel`);
  const lut = new Float32Array(mean.length * 256);
  for (let c = 0; c < mean.length; c += 1) {
    if (!(std[c]! > 0)) throw new Error(`normalization: std[${c}] must be > 0, got ${std[c]}`);
    for (let v = 0; v < 256; v += 1) lut[c * 256 + v] = (Math.fround(v / 255) - mean[c]!) / std[c]!;
  }
  return lut;
}

/**
 * Writes count items [C, H, W] into out: item i is dataset image indices[i], cropped at
 * (offY[i], offX[i]) from the image zero-padded by `padding`, flipped when flips[i], normalised
 * by lut. Self-contained (no free variables): its source is also run in the worker threads.
 */
export function prepareBatch(
  pixels: Uint8Array,
  channels: number,
  height: number,
  width: number,
  indices: Int32Array,
  count: number,
  offY: Int32Array | null,
  offX: Int32Array | null,
  flips: Uint8Array | null,
  padding: number,
  lut: Float32Array,
  out: Float32Array,
): void {
  const plane = height * width;
  for (let i = 0; i < count; i += 1) {
    const oy = offY ? offY[i]! - padding : 0;
    const ox = offX ? offX[i]! - padding : 0;
    const flip = flips !== null && flips[i] === 1;
    for (let c = 0; c < channels; c += 1) {
      const source = (indices[i]! * channels + c) * plane;
      const target = (i * channels + c) * plane;
      const table = c * 256;
      const pad = lut[table]!;
      for (let y = 0; y < height; y += 1) {
        const sy = y + oy;
        const row = target + y * width;
        if (sy < 0 || sy >= height) {
          out.fill(pad, row, row + width);
          continue;
        }
        const sourceRow = source + sy * width;
        for (let x = 0; x < width; x += 1) {
          const sx = (flip ? width - 1 - x : x) + ox;
          out[row + x] = sx >= 0 && sx < width ? lut[table + pixels[sourceRow + sx]!]! : pad;
        }
      }
    }
  }
}
