// Augmentation on a hand-made image: crop offsets with zero padding, horizontal flip,
// normalisation; seeded parameters depend only on (seed, epoch, batch).
import { describe, expect, it } from 'vitest';
import { drawAugmentParams, mixSeed, normalizationTable, prepareBatch } from '../../src/data/augment.js';

// Two images [2 channels, 3, 4]; pixel value = 100·image + 10·channel·... made distinct per position.
const C = 2;
const H = 3;
const W = 4;
const pixels = new Uint8Array(2 * C * H * W);
for (let n = 0; n < 2; n += 1) for (let c = 0; c < C; c += 1) for (let y = 0; y < H; y += 1) for (let x = 0; x < W; x += 1) {
  pixels[((n * C + c) * H + y) * W + x] = 1 + 100 * n + 40 * c + 10 * y + x;
}
const identity = normalizationTable([0, 0], [1 / 255, 1 / 255]); // lut[v] = v (exactly, up to float32)

function run(index: number, oy: number | null, ox: number | null, flip: boolean, padding: number, lut = identity): number[][][] {
  const out = new Float32Array(C * H * W);
  prepareBatch(pixels, C, H, W, Int32Array.from([index]), 1, oy === null ? null : Int32Array.from([oy]), ox === null ? null : Int32Array.from([ox]), Uint8Array.from([flip ? 1 : 0]), padding, lut, out);
  return Array.from({ length: C }, (_, c) => Array.from({ length: H }, (_, y) => Array.from(out.subarray((c * H + y) * W, (c * H + y + 1) * W), Math.round)));
}

function expected(index: number, dy: number, dx: number, flip: boolean): number[][][] {
  // torchvision order: pad, crop at (dy, dx) in padded coordinates shifted by −padding, then flip.
  return Array.from({ length: C }, (_, c) => Array.from({ length: H }, (_, y) => Array.from({ length: W }, (_, x) => {
    const sy = y + dy;
    const sx = (flip ? W - 1 - x : x) + dx;
    return sy >= 0 && sy < H && sx >= 0 && sx < W ? pixels[((index * C + c) * H + sy) * W + sx]! : 0;
  })));
}

describe('prepareBatch', () => {
  it('no augmentation: the image itself', () => {
    expect(run(1, null, null, false, 0)).toEqual(expected(1, 0, 0, false));
  });

  it('every crop offset with padding 2 shifts the image and fills with zeros', () => {
    for (let oy = 0; oy <= 4; oy += 1) for (let ox = 0; ox <= 4; ox += 1) {
      expect(run(0, oy, ox, false, 2)).toEqual(expected(0, oy - 2, ox - 2, false));
    }
    // Offset (2, 2) with padding 2 is the centre: the image itself.
    expect(run(1, 2, 2, false, 2)).toEqual(expected(1, 0, 0, false));
    // A concrete case by hand: shift down-right by one (oy = ox = 1): first row/column are padding.
    expect(run(0, 1, 1, false, 2)[0]).toEqual([[0, 0, 0, 0], [0, 1, 2, 3], [0, 11, 12, 13]]);
  });

  it('flip mirrors the crop (crop, then flip)', () => {
    expect(run(0, null, null, true, 0)[0]).toEqual([[4, 3, 2, 1], [14, 13, 12, 11], [24, 23, 22, 21]]);
    expect(run(0, 2, 3, true, 2)).toEqual(expected(0, 0, 1, true));
    expect(run(0, 2, 3, true, 2)[0]![0]).toEqual([0, 4, 3, 2]);
  });

  it('normalisation per channel, padding normalised as pixel value 0', () => {
    const mean = [0.5, 0.25];
    const std = [0.2, 0.4];
    const lut = normalizationTable(mean, std);
    const out = new Float32Array(C * H * W);
    prepareBatch(pixels, C, H, W, Int32Array.from([1]), 1, Int32Array.from([0]), Int32Array.from([1]), null, 1, lut, out);
    for (let c = 0; c < C; c += 1) {
      expect(out[c * H * W]).toBeCloseTo((0 - mean[c]!) / std[c]!, 6); // padded row
      const v = pixels[((1 * C + c) * H + 0) * W + 0]!; // output (1, 0) ← source (0, 0)
      expect(out[c * H * W + W]).toBeCloseTo((v / 255 - mean[c]!) / std[c]!, 6);
    }
  });
});

describe('augmentation parameters', () => {
  it('depend on (seed, epoch, batch) only, cover the offset range, flip about half', () => {
    const a = drawAugmentParams(0, 3, 7, 4000, 4, true);
    const b = drawAugmentParams(0, 3, 7, 4000, 4, true);
    expect(Array.from(a.offY!)).toEqual(Array.from(b.offY!));
    expect(Array.from(a.flips!)).toEqual(Array.from(b.flips!));
    expect(Array.from(drawAugmentParams(0, 3, 8, 4000, 4, true).offX!)).not.toEqual(Array.from(a.offX!));
    expect(Array.from(drawAugmentParams(0, 4, 7, 4000, 4, true).offX!)).not.toEqual(Array.from(a.offX!));
    expect(Array.from(drawAugmentParams(1, 3, 7, 4000, 4, true).offX!)).not.toEqual(Array.from(a.offX!));
    expect(new Set(a.offY).size).toBe(9);
    expect(Math.min(...a.offX!)).toBe(0);
    expect(Math.max(...a.offX!)).toBe(8);
    const flipped = a.flips!.reduce((s, f) => s + f, 0);
    expect(Math.abs(flipped - 2000)).toBeLessThan(200); // ~6.3 standard deviations
    const noFlip = drawAugmentParams(0, 3, 7, 10, 0, false);
    expect(noFlip).toEqual({ offY: null, offX: null, flips: null });
    expect(mixSeed(0, 1, 2, 3)).not.toBe(mixSeed(0, 2, 1, 3));
  });
});
