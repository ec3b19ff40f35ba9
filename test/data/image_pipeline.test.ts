// Image-folder transforms (src/data/image_pipeline.ts): the antialiased resampler against a direct
// float64 2-D evaluation of the same triangle filter (tolerance: one uint8 step, for the uint8
// rounding between the two passes), torchvision's RandomResizedCrop and Resize + CenterCrop
// geometry, and the DataLoader on an image folder: inline, one and two workers, the JS decoders
// and sharp give the same bits on PNG files; errors in a worker name the file.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jpeg from 'jpeg-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drawImageParams } from '../../src/data/augment.js';
import { readImageFolder } from '../../src/data/formats.js';
import { centerCropWindow, randomResizedCropWindow, resampleWindow, type DecodedImage, type ImageWindow } from '../../src/data/image_pipeline.js';
import { DataLoader, sharpAvailable } from '../../src/data/loader.js';
import { Generator } from '../../src/tensor/random.js';

const { PNG } = createRequire(import.meta.url)('pngjs') as { PNG: { sync: { write(png: { width: number; height: number; data: Buffer }): Buffer } } };

/** lut = identity on uint8 values (so outputs compare as pixel values). */
const identity = (() => {
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c += 1) for (let v = 0; v < 256; v += 1) lut[c * 256 + v] = v;
  return lut;
})();

function randomImage(width: number, height: number, rng: Generator, stride = 4): DecodedImage {
  const data = new Uint8Array(width * height * stride);
  for (let i = 0; i < data.length; i += 1) data[i] = rng.integer(256);
  return { width, height, stride, data };
}

/** The reference: out(x, y) = Σ wx(i)·wy(j)·pixel(i, j), weights from the triangle filter, in float64, no intermediate rounding. */
function referenceWindow(image: DecodedImage, window: ImageWindow, size: number): Float64Array {
  const weightsAlong = (cropStart: number, cropLength: number, scaled: number, start: number): Map<number, number>[] =>
    Array.from({ length: size }, (_, k) => {
      const scale = cropLength / scaled;
      const spread = Math.max(scale, 1);
      const center = (start + k + 0.5) * scale; // in crop coordinates
      const weights = new Map<number, number>();
      let total = 0;
      for (let i = 0; i < cropLength; i += 1) {
        const weight = Math.max(0, 1 - Math.abs((i + 0.5 - center) / spread));
        if (weight > 0) {
          weights.set(cropStart + i, weight);
          total += weight;
        }
      }
      for (const [i, weight] of weights) weights.set(i, weight / total);
      return weights;
    });
  const columns = weightsAlong(window.x, window.w, window.scaledWidth, window.left);
  const rows = weightsAlong(window.y, window.h, window.scaledHeight, window.top);
  const out = new Float64Array(3 * size * size);
  for (let y = 0; y < size; y += 1) {
    for (let x = 0; x < size; x += 1) {
      for (let c = 0; c < 3; c += 1) {
        let sum = 0;
        for (const [j, wy] of rows[y]!) for (const [i, wx] of columns[x]!) sum += wx * wy * image.data[(j * image.width + i) * image.stride + c]!;
        out[c * size * size + y * size + x] = sum;
      }
    }
  }
  return out;
}

function maxDifference(a: Float32Array, b: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i += 1) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

describe('resampleWindow (Pillow BILINEAR with antialiasing)', () => {
  const rng = new Generator(20261203);
  const cases: { name: string; width: number; height: number; size: number; window: (w: number, h: number, size: number) => ImageWindow }[] = [
    { name: 'downscale a crop ×3.4', width: 61, height: 47, size: 12, window: () => ({ x: 5, y: 3, w: 41, h: 37, scaledWidth: 12, scaledHeight: 12, left: 0, top: 0 }) },
    { name: 'upscale a small crop', width: 20, height: 18, size: 16, window: () => ({ x: 2, y: 9, w: 7, h: 5, scaledWidth: 16, scaledHeight: 16, left: 0, top: 0 }) },
    { name: 'eval resize + center crop (landscape)', width: 75, height: 50, size: 14, window: centerCropWindow },
    { name: 'eval resize + center crop (portrait, RGB stride 3)', width: 33, height: 71, size: 9, window: centerCropWindow },
    { name: 'identity (same size)', width: 10, height: 10, size: 10, window: () => ({ x: 0, y: 0, w: 10, h: 10, scaledWidth: 10, scaledHeight: 10, left: 0, top: 0 }) },
  ];
  for (const testCase of cases) {
    it(`${testCase.name}: within one uint8 step of the float64 reference`, () => {
      const image = randomImage(testCase.width, testCase.height, rng, testCase.name.includes('stride 3') ? 3 : 4);
      const window = testCase.window(testCase.width, testCase.height, testCase.size);
      const out = new Float32Array(3 * testCase.size * testCase.size).fill(Number.NaN);
      resampleWindow(image, window, testCase.size, false, identity, out, 0);
      expect(out.every(Number.isFinite)).toBe(true);
      expect(maxDifference(out, referenceWindow(image, window, testCase.size))).toBeLessThanOrEqual(1);
      if (testCase.name.startsWith('identity')) {
        for (let i = 0; i < 100; i += 1) expect(out[i]).toBe(image.data[i * 4]);
      }
    });
  }

  it('flip mirrors the columns; offset writes after the given floats', () => {
    const image = randomImage(30, 24, rng);
    const window = centerCropWindow(30, 24, 8);
    const plain = new Float32Array(3 * 64);
    const flipped = new Float32Array(3 * 64 + 5);
    resampleWindow(image, window, 8, false, identity, plain, 0);
    resampleWindow(image, window, 8, true, identity, flipped, 5);
    for (let c = 0; c < 3; c += 1) for (let y = 0; y < 8; y += 1) for (let x = 0; x < 8; x += 1) {
      expect(flipped[5 + c * 64 + y * 8 + (7 - x)]).toBe(plain[c * 64 + y * 8 + x]);
    }
  });
});

describe('crop geometry (torchvision)', () => {
  it('centerCropWindow: Resize(256) + CenterCrop(224) of a 500×375 image, and the portrait case', () => {
    // 375 → 256, 500 → int(256·500/375) = 341; left = round((341 − 224)/2) = round(58.5) = 58 (halves to even), top = 16.
    expect(centerCropWindow(500, 375, 224)).toEqual({ x: 0, y: 0, w: 500, h: 375, scaledWidth: 341, scaledHeight: 256, left: 58, top: 16 });
    expect(centerCropWindow(40, 64, 32)).toEqual({ x: 0, y: 0, w: 40, h: 64, scaledWidth: 36, scaledHeight: 57, left: 2, top: 12 });
  });

  it('randomResizedCropWindow: boxes inside the image, area in [0.08, 1], aspect in [3/4, 4/3] (up to rounding)', () => {
    const rng = new Generator(7);
    for (let trial = 0; trial < 500; trial += 1) {
      const width = 8 + rng.integer(300);
      const height = 8 + rng.integer(300);
      const uniforms = Float64Array.from({ length: 40 }, () => rng.uniform());
      const box = randomResizedCropWindow(width, height, 24, uniforms, 0);
      expect(box.x >= 0 && box.y >= 0 && box.x + box.w <= width && box.y + box.h <= height).toBe(true);
      expect([box.scaledWidth, box.scaledHeight, box.left, box.top]).toEqual([24, 24, 0, 0]);
      const area = (box.w * box.h) / (width * height);
      const slack = (box.w + box.h + 1) / (width * height); // one pixel of rounding on each side
      // (The fallback after ten failed attempts, on elongated images, keeps a full side instead.)
      if (box.w !== width && box.h !== height) expect(area).toBeGreaterThanOrEqual(0.08 - slack);
      const aspect = box.w / box.h;
      if (box.w !== width && box.h !== height) expect(aspect > 3 / 4 - 2 / box.h && aspect < 4 / 3 + 2 / box.h).toBe(true);
      expect(area).toBeLessThanOrEqual(1);
    }
  });

  it('randomResizedCropWindow: the first attempt that fits is taken, with its top/left uniforms', () => {
    // Attempt 0: area 0.08 + 0.5·0.92 = 54% of 100×100, ratio exp(0) = 1 → 73×73 (sqrt 5400 = 73.48), top floor(0.25·28), left floor(0.75·28).
    const uniforms = new Float64Array(40).fill(0.5);
    uniforms[2] = 0.25;
    uniforms[3] = 0.75;
    expect(randomResizedCropWindow(100, 100, 16, uniforms, 0)).toMatchObject({ x: 21, y: 7, w: 73, h: 73 });
  });

  it('randomResizedCropWindow: when no attempt fits, the whole image clamped to the ratio range, centred', () => {
    // A 10×200 strip: with area ≥ 0.5 of 2000 and ratio ≥ 1 every attempt is wider than 10.
    const uniforms = new Float64Array(40).fill(0.99);
    // ratio 10/200 < 3/4 → w = 10, h = round(10 / 0.75) = 13, centred: y = floor((200 − 13)/2) = 93.
    expect(randomResizedCropWindow(10, 200, 16, uniforms, 0)).toMatchObject({ x: 0, y: 93, w: 10, h: 13 });
  });

  it('drawImageParams: 40 uniforms per image then the flips, the same for the same (seed, epoch, batch)', () => {
    const a = drawImageParams(5, 2, 7, 3, true);
    const b = drawImageParams(5, 2, 7, 3, true);
    expect(a.uniforms!.length).toBe(120);
    expect(Array.from(a.uniforms!)).toEqual(Array.from(b.uniforms!));
    expect(Array.from(a.flips!)).toEqual(Array.from(b.flips!));
    expect(Array.from(drawImageParams(5, 2, 8, 3, true).uniforms!)).not.toEqual(Array.from(a.uniforms!));
    expect(drawImageParams(5, 2, 7, 3, false).flips).toBeNull();
  });
});

describe('DataLoader on an image folder', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'lmcl-imagefolder-'));
    const rng = new Generator(99);
    for (const [cls, count] of [['ant', 5], ['bee', 4]] as const) {
      mkdirSync(join(root, 'train', cls), { recursive: true });
      for (let i = 0; i < count; i += 1) {
        const width = 20 + rng.integer(30);
        const height = 20 + rng.integer(30);
        const data = Buffer.alloc(width * height * 4);
        for (let p = 0; p < data.length; p += 1) data[p] = p % 4 === 3 ? 255 : rng.integer(256);
        writeFileSync(join(root, 'train', cls, `${i}.png`), PNG.sync.write({ width, height, data }));
      }
    }
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const options = { batchSize: 4, sampler: 'shuffle' as const, augment: true, flip: true, padding: 0, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], seed: 11 };

  function epochBits(workers: number, decoder: 'js' | 'sharp', augment = true): number[][] {
    const split = readImageFolder(join(root, 'train'), 16, ['ant', 'bee']);
    const loader = new DataLoader(split, { ...options, augment, workers, decoder });
    try {
      const batches = augment ? [...loader.epoch(1)] : [...loader.evalBatches()];
      return batches.map((batch) => {
        const values = Array.from(batch.x.toFloat32Array());
        batch.x.dispose();
        return values;
      });
    } finally {
      loader.close();
    }
  }

  it('inline, one worker and two workers give the same bits (train and eval); epochs and batches differ', () => {
    const inline = epochBits(0, 'js');
    expect(inline.length).toBe(3);
    expect(inline.flat().every(Number.isFinite)).toBe(true);
    expect(epochBits(1, 'js')).toEqual(inline);
    expect(epochBits(2, 'js')).toEqual(inline);
    expect(epochBits(1, 'js', false)).toEqual(epochBits(0, 'js', false));
    expect(inline[0]).not.toEqual(inline[1]);
  });

  it.runIf(sharpAvailable())('sharp decodes PNG files to the same bits as pngjs', () => {
    expect(epochBits(1, 'sharp')).toEqual(epochBits(1, 'js'));
  });

  it.runIf(sharpAvailable())('sharp and jpeg-js decode the same JPEG within a few steps', () => {
    const dir = join(root, 'jpeg');
    mkdirSync(join(dir, 'one'), { recursive: true });
    const width = 40;
    const height = 30;
    const data = Buffer.alloc(width * height * 4);
    for (let p = 0; p < width * height; p += 1) data.set([(p * 7) % 256, (p * 3) % 256, 128, 255], p * 4);
    writeFileSync(join(dir, 'one', 'a.jpg'), jpeg.encode({ width, height, data }, 90).data);
    const split = readImageFolder(join(dir), 16, ['one']);
    const run = (decoder: 'js' | 'sharp'): Float32Array => {
      const loader = new DataLoader(split, { ...options, batchSize: 1, augment: false, mean: [0, 0, 0], std: [1 / 255, 1 / 255, 1 / 255], workers: 1, decoder });
      const [batch] = [...loader.evalBatches()];
      const values = batch!.x.toFloat32Array().slice();
      batch!.x.dispose();
      loader.close();
      return values;
    };
    const js = run('js');
    const viaSharp = run('sharp');
    let worst = 0;
    for (let i = 0; i < js.length; i += 1) worst = Math.max(worst, Math.abs(js[i]! - viaSharp[i]!));
    expect(worst).toBeLessThanOrEqual(8);
  });

  it('a corrupt file decoded in a worker is an error naming the file; decoder sharp with no workers is refused', () => {
    const dir = join(root, 'broken');
    mkdirSync(join(dir, 'one'), { recursive: true });
    writeFileSync(join(dir, 'one', 'bad.png'), 'not a png');
    const split = readImageFolder(dir, 8, ['one']);
    for (const decoder of sharpAvailable() ? (['js', 'sharp'] as const) : (['js'] as const)) {
      const loader = new DataLoader(split, { ...options, batchSize: 1, workers: 1, decoder });
      expect(() => [...loader.evalBatches()]).toThrow(/cannot decode .*bad\.png/);
      loader.close();
    }
    expect(() => new DataLoader(split, { ...options, batchSize: 1, workers: 0, decoder: 'sharp' })).toThrow(/sharp decoder runs in the worker threads only/);
  });
});
