// Dataset formats: round-trips on files written to a temp dir (CIFAR-10/100 binary, IDX raw and
// gzip, an image folder of tiny PNG/JPEG files) and the errors for broken files, each naming the file.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelStats, checkSplitsAgree, loadDataset } from '../../src/data/datasets.js';
import { encodeIdx, readCifar10, readCifar100, readIdxPair, resizeCenterCropRgb } from '../../src/data/formats.js';

const { PNG } = createRequire(import.meta.url)('pngjs') as { PNG: { sync: { write(png: { width: number; height: number; data: Buffer }): Buffer } } };

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'lmcl-data-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function randomBytes(n: number): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i += 1) bytes[i] = Math.floor(Math.random() * 256);
  return bytes;
}

function cifarRecords(labels: number[][], pixels: Uint8Array): Buffer {
  const labelBytes = labels[0]!.length;
  const out = Buffer.alloc(labels.length * (labelBytes + 3072));
  labels.forEach((label, i) => {
    const start = i * (labelBytes + 3072);
    label.forEach((value, k) => (out[start + k] = value));
    out.set(pixels.subarray(i * 3072, (i + 1) * 3072), start + labelBytes);
  });
  return out;
}

describe('CIFAR binary', () => {
  it('CIFAR-10: reads data_batch_1..5 + test_batch in order, NCHW as stored', () => {
    const dir = join(root, 'cifar10', 'cifar-10-batches-bin');
    mkdirSync(dir, { recursive: true });
    const perFile = 3;
    const all = randomBytes(6 * perFile * 3072);
    const labels = Array.from({ length: 6 * perFile }, (_, i) => (i * 7) % 10);
    const names = ['data_batch_1', 'data_batch_2', 'data_batch_3', 'data_batch_4', 'data_batch_5', 'test_batch'];
    names.forEach((name, f) => {
      const slice = labels.slice(f * perFile, (f + 1) * perFile).map((l) => [l]);
      writeFileSync(join(dir, `${name}.bin`), cifarRecords(slice, all.subarray(f * perFile * 3072)));
    });
    const train = readCifar10(join(root, 'cifar10'), 'train'); // finds the cifar-10-batches-bin/ subfolder
    expect(train.count).toBe(5 * perFile);
    expect([train.channels, train.height, train.width, train.classes]).toEqual([3, 32, 32, 10]);
    expect(Array.from(train.labels)).toEqual(labels.slice(0, 5 * perFile));
    expect(Buffer.from(train.pixels).equals(Buffer.from(all.subarray(0, 5 * perFile * 3072)))).toBe(true);
    const splits = loadDataset('cifar10', { data: dir });
    expect(splits.test.count).toBe(perFile);
    expect(Array.from(splits.test.labels)).toEqual(labels.slice(5 * perFile));
    expect(Buffer.from(splits.test.pixels).equals(Buffer.from(all.subarray(5 * perFile * 3072)))).toBe(true);
    expect(splits.mean).toEqual([0.4914, 0.4822, 0.4465]);
  });

  it('CIFAR-100: uses the fine label', () => {
    const dir = join(root, 'cifar100');
    mkdirSync(dir, { recursive: true });
    const pixels = randomBytes(4 * 3072);
    const labels = [[3, 99], [19, 0], [0, 42], [7, 7]];
    writeFileSync(join(dir, 'train.bin'), cifarRecords(labels, pixels));
    writeFileSync(join(dir, 'test.bin'), cifarRecords(labels.slice(0, 2), pixels));
    const splits = loadDataset('cifar100', { data: dir });
    expect(Array.from(splits.train.labels)).toEqual([99, 0, 42, 7]);
    expect(splits.train.classes).toBe(100);
    expect(Buffer.from(splits.train.pixels).equals(Buffer.from(pixels))).toBe(true);
    expect(splits.test.count).toBe(2);
    expect(splits.std).toEqual([0.2675, 0.2565, 0.2761]);
  });

  it('truncated file, label out of range and a missing file are errors naming the file', () => {
    const dir = join(root, 'cifar100-bad');
    mkdirSync(dir, { recursive: true });
    const good = cifarRecords([[1, 2], [3, 4]], randomBytes(2 * 3072));
    writeFileSync(join(dir, 'train.bin'), good.subarray(0, good.length - 10));
    expect(() => readCifar100(dir, 'train')).toThrow(/cifar100: .*train\.bin is truncated or corrupt/);
    writeFileSync(join(dir, 'train.bin'), cifarRecords([[1, 2], [3, 100]], randomBytes(2 * 3072)));
    expect(() => readCifar100(dir, 'train')).toThrow(/train\.bin: record 1 has label 100, outside 0\.\.99/);
    expect(() => readCifar100(dir, 'test')).toThrow(/test\.bin not found/);
    const dir10 = join(root, 'cifar10-bad');
    mkdirSync(dir10, { recursive: true });
    writeFileSync(join(dir10, 'test_batch.bin'), cifarRecords([[10]], randomBytes(3072)));
    expect(() => readCifar10(dir10, 'test')).toThrow(/test_batch\.bin: record 0 has label 10, outside 0\.\.9/);
    expect(() => readCifar10(dir10, 'train')).toThrow(/data_batch_1\.bin/);
  });
});

describe('IDX', () => {
  function writeIdxSet(dir: string, prefix: string, count: number, gz: boolean): { pixels: Uint8Array; labels: Uint8Array } {
    mkdirSync(dir, { recursive: true });
    const pixels = randomBytes(count * 28 * 28);
    const labels = Uint8Array.from({ length: count }, (_, i) => (i * 3) % 10);
    const images = encodeIdx([count, 28, 28], pixels);
    const labelFile = encodeIdx([count], labels);
    writeFileSync(join(dir, `${prefix}-images-idx3-ubyte${gz ? '.gz' : ''}`), gz ? gzipSync(images) : images);
    writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte${gz ? '.gz' : ''}`), gz ? gzipSync(labelFile) : labelFile);
    return { pixels, labels };
  }

  it('raw and .gz files round-trip (mnist / fashion-mnist layout)', () => {
    for (const gz of [false, true]) {
      const dir = join(root, gz ? 'idx-gz' : 'idx-raw');
      const train = writeIdxSet(dir, 'train', 12, gz);
      const test = writeIdxSet(dir, 't10k', 5, gz);
      for (const name of ['mnist', 'fashion-mnist'] as const) {
        const splits = loadDataset(name, { data: dir });
        expect(splits.source).toBe(dir);
        expect([splits.train.count, splits.train.channels, splits.train.height, splits.train.width]).toEqual([12, 1, 28, 28]);
        expect(Buffer.from(splits.train.pixels).equals(Buffer.from(train.pixels))).toBe(true);
        expect(Array.from(splits.train.labels)).toEqual(Array.from(train.labels));
        expect(Buffer.from(splits.test.pixels).equals(Buffer.from(test.pixels))).toBe(true);
        expect(splits.mean.length).toBe(1);
      }
    }
  });

  it('wrong magic, truncation, count mismatch, bad labels and corrupt gzip are errors naming the file', () => {
    const dir = join(root, 'idx-bad');
    mkdirSync(dir, { recursive: true });
    const images = join(dir, 'images');
    const labels = join(dir, 'labels');
    const goodImages = encodeIdx([3, 4, 4], randomBytes(48));
    writeFileSync(labels, encodeIdx([3], Uint8Array.from([1, 2, 3])));
    writeFileSync(images, encodeIdx([3], Uint8Array.from([1, 2, 3])));
    expect(() => readIdxPair(images, labels)).toThrow(new RegExp(`${images} has wrong magic number 0x00000801, expected 0x00000803`));
    writeFileSync(images, goodImages.subarray(0, goodImages.length - 1));
    expect(() => readIdxPair(images, labels)).toThrow(new RegExp(`${images} is truncated: header says \\[3, 4, 4\\]`));
    writeFileSync(images, goodImages.subarray(0, 10));
    expect(() => readIdxPair(images, labels)).toThrow(new RegExp(`${images} is truncated: 10 bytes, shorter than the 16-byte IDX header`));
    writeFileSync(images, goodImages);
    writeFileSync(labels, encodeIdx([2], Uint8Array.from([1, 2])));
    expect(() => readIdxPair(images, labels)).toThrow(/count mismatch: .*images holds 3 images but .*labels holds 2 labels/);
    writeFileSync(labels, encodeIdx([3], Uint8Array.from([1, 12, 3])));
    expect(() => readIdxPair(images, labels, { name: 'mnist' })).toThrow(new RegExp(`mnist: ${labels}: label 1 is 12, outside 0\\.\\.9`));
    const gz = join(dir, 'images.gz');
    writeFileSync(gz, gzipSync(goodImages).subarray(0, 30));
    writeFileSync(labels, encodeIdx([3], Uint8Array.from([1, 2, 3])));
    expect(() => readIdxPair(gz, labels)).toThrow(new RegExp(`${gz} is not valid gzip data`));
    expect(() => readIdxPair(join(dir, 'nope'), labels)).toThrow(/file not found: .*nope/);
    expect(() => loadDataset('mnist', { data: join(dir, 'missing') })).toThrow(/mnist: data directory not found/);
    expect(() => loadDataset('mnist', { data: dir })).toThrow(/mnist: none of .*train-images-idx3-ubyte/);
  });
});

describe('train and test splits must agree', () => {
  it('a test split with another image size is refused at load time, naming both splits', () => {
    const dir = join(root, 'idx-mismatch');
    mkdirSync(dir, { recursive: true });
    const write = (prefix: string, count: number, side: number): void => {
      writeFileSync(join(dir, `${prefix}-images-idx3-ubyte`), encodeIdx([count, side, side], randomBytes(count * side * side)));
      writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte`), encodeIdx([count], Uint8Array.from({ length: count }, (_, i) => i % 10)));
    };
    write('train', 6, 28);
    write('t10k', 3, 32);
    expect(() => loadDataset('mnist', { data: dir })).toThrow(
      /mnist: the test split "mnist test" does not match the train split "mnist train" .*image size 32×32 \(train: 28×28\)/,
    );
    write('t10k', 3, 28);
    expect(loadDataset('mnist', { data: dir }).test.count).toBe(3);
  });

  it('differing channels and class counts are each named', () => {
    const split = (name: string, channels: number, classes: number) => ({
      name, pixels: new Uint8Array(channels * 4), labels: new Int32Array(1), count: 1, channels, height: 2, width: 2, classes,
    });
    const splits = { train: split('a train', 3, 10), test: split('a test', 1, 100), mean: [0], std: [1], source: '/data/a' };
    expect(() => checkSplitsAgree('imagefolder', splits)).toThrow(
      /imagefolder: the test split "a test" does not match the train split "a train" \(data: \/data\/a\): test has 1 channels \(train: 3\), 100 classes \(train: 10\)/,
    );
  });
});

describe('image folder', () => {
  function writePng(file: string, width: number, height: number, rgb: (x: number, y: number) => [number, number, number]): void {
    const data = Buffer.alloc(width * height * 4);
    for (let y = 0; y < height; y += 1) {
      for (let x = 0; x < width; x += 1) {
        const [r, g, b] = rgb(x, y);
        data.set([r, g, b, 255], (y * width + x) * 4);
      }
    }
    writeFileSync(file, PNG.sync.write({ width, height, data }));
  }

  it('decodes PNG and JPEG, resizes (shorter side) + center-crops to the image size, classes sorted', () => {
    const base = join(root, 'folder');
    for (const split of ['train', 'val']) for (const cls of ['cat', 'dog']) mkdirSync(join(base, split, cls), { recursive: true });
    // 8×8 with a constant colour per class: any resize keeps it exactly.
    writePng(join(base, 'train', 'cat', 'a.png'), 8, 8, () => [200, 10, 30]);
    writePng(join(base, 'train', 'cat', 'b.png'), 12, 8, (x) => (x < 2 || x >= 10 ? [0, 0, 0] : [200, 10, 30])); // crop removes the black sides
    writePng(join(base, 'train', 'dog', 'c.png'), 4, 4, () => [5, 250, 100]);
    const jpg = jpeg.encode({ width: 8, height: 8, data: Buffer.alloc(8 * 8 * 4, 128) }, 100);
    writeFileSync(join(base, 'val', 'dog', 'd.jpg'), jpg.data);
    writePng(join(base, 'val', 'cat', 'e.png'), 8, 8, () => [200, 10, 30]);
    const splits = loadDataset('imagefolder', { data: base, imageSize: 4 });
    expect(splits.train.classNames).toEqual(['cat', 'dog']);
    expect(Array.from(splits.train.labels)).toEqual([0, 0, 1]);
    expect([splits.train.count, splits.train.channels, splits.train.height, splits.train.width]).toEqual([3, 3, 4, 4]);
    const plane = 16;
    for (const image of [0, 1]) {
      for (const [c, value] of [200, 10, 30].entries()) {
        expect(Array.from(splits.train.pixels.subarray((image * 3 + c) * plane, (image * 3 + c + 1) * plane))).toEqual(new Array(16).fill(value));
      }
    }
    expect(Array.from(splits.test.labels)).toEqual([0, 1]);
    const gray = Array.from(splits.test.pixels.subarray(3 * plane, 6 * plane));
    expect(Math.max(...gray.map((v) => Math.abs(v - 128)))).toBeLessThanOrEqual(2); // JPEG at quality 100
    expect(splits.mean.length).toBe(3);
    const stats = channelStats(splits.train);
    expect(stats.mean[0]).toBeCloseTo((200 * 2 + 5) / 3 / 255, 6);
  });

  it('bilinear resize of a gradient matches the half-pixel formula', () => {
    // 4×2 image, values along x: 0, 80, 160, 240 → shorter side 2 → scaled 4×2 → crop 2×2 at left 1.
    const rgba = new Uint8Array(4 * 2 * 4);
    for (let y = 0; y < 2; y += 1) for (let x = 0; x < 4; x += 1) rgba.set([80 * x, 80 * x, 80 * x, 255], (y * 4 + x) * 4);
    const out = new Uint8Array(3 * 4);
    resizeCenterCropRgb({ width: 4, height: 2, rgba }, 2, out, 0);
    expect(Array.from(out.subarray(0, 4))).toEqual([80, 160, 80, 160]);
  });

  it('a corrupt image and a class missing from train are errors naming the file', () => {
    const base = join(root, 'folder-bad');
    mkdirSync(join(base, 'train', 'a'), { recursive: true });
    mkdirSync(join(base, 'test', 'b'), { recursive: true });
    writeFileSync(join(base, 'train', 'a', 'x.png'), Buffer.from('not a png at all'));
    expect(() => loadDataset('imagefolder', { data: base, imageSize: 4 })).toThrow(/cannot decode .*x\.png/);
    writePng(join(base, 'train', 'a', 'x.png'), 2, 2, () => [1, 2, 3]);
    writePng(join(base, 'test', 'b', 'y.png'), 2, 2, () => [1, 2, 3]);
    expect(() => loadDataset('imagefolder', { data: base, imageSize: 4 })).toThrow(/class directory .*test\/b is not a class of the training split/);
  });
});
