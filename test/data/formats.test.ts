// Dataset formats: round-trips on files written to a temp dir (CIFAR-10/100 binary, IDX raw and
// gzip, an image folder of tiny PNG/JPEG files) and the errors for broken files, each naming the file.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync, gzipSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMAGENET_NORMALIZATION, checkSplitsAgree, loadDataset } from '../../src/data/datasets.js';
import { DataLoader } from '../../src/data/loader.js';
import { MAX_IMAGE_PIXELS, decodeImage, encodeIdx, readCifar10, readCifar100, readIdxPair, readImageFolder } from '../../src/data/formats.js';

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

  it('lists the files (classes sorted), then decodes PNG and JPEG per batch: constant colours survive any resize exactly', () => {
    const base = join(root, 'folder');
    for (const split of ['train', 'val']) for (const cls of ['cat', 'dog']) mkdirSync(join(base, split, cls), { recursive: true });
    // Constant colour per image: any crop and resize keeps it exactly.
    writePng(join(base, 'train', 'cat', 'a.png'), 8, 8, () => [200, 10, 30]);
    writePng(join(base, 'train', 'cat', 'b.png'), 12, 8, () => [200, 10, 30]);
    writePng(join(base, 'train', 'dog', 'c.png'), 4, 4, () => [5, 250, 100]);
    const jpg = jpeg.encode({ width: 8, height: 8, data: Buffer.alloc(8 * 8 * 4, 128) }, 100);
    writeFileSync(join(base, 'val', 'dog', 'd.jpg'), jpg.data);
    writePng(join(base, 'val', 'cat', 'e.png'), 8, 8, () => [200, 10, 30]);
    const splits = loadDataset('imagefolder', { data: base, imageSize: 4 });
    expect(splits.train.classNames).toEqual(['cat', 'dog']);
    expect(Array.from(splits.train.labels)).toEqual([0, 0, 1]);
    expect(splits.train.files).toEqual(['cat/a.png', 'cat/b.png', 'dog/c.png'].map((file) => join(base, 'train', file)));
    expect([splits.train.count, splits.train.channels, splits.train.height, splits.train.width, splits.train.pixels.length]).toEqual([3, 3, 4, 4, 0]);
    expect([splits.mean, splits.std]).toEqual([IMAGENET_NORMALIZATION.mean, IMAGENET_NORMALIZATION.std]);
    // Identity normalisation (mean 0, std 1/255): the batch holds the uint8 values.
    const identity = { mean: [0, 0, 0], std: [1 / 255, 1 / 255, 1 / 255] };
    const loader = new DataLoader(splits.train, { batchSize: 3, sampler: 'shuffle', augment: true, flip: true, padding: 0, ...identity, seed: 3, workers: 0 });
    const [batch] = [...loader.epoch(0)];
    const plane = 16;
    for (let item = 0; item < 3; item += 1) {
      const colour = splits.train.labels[batch!.indices[item]!] === 0 ? [200, 10, 30] : [5, 250, 100];
      for (const [c, value] of colour.entries()) {
        expect(Array.from(batch!.x.toFloat32Array().subarray((item * 3 + c) * plane, (item * 3 + c + 1) * plane)).map(Math.round)).toEqual(new Array(16).fill(value));
      }
    }
    batch!.x.dispose();
    loader.close();
    expect(Array.from(splits.test.labels)).toEqual([0, 1]);
    const testLoader = new DataLoader(splits.test, { batchSize: 2, sampler: 'shuffle', augment: false, flip: false, padding: 0, ...identity, seed: 0, workers: 0 });
    const [testBatch] = [...testLoader.evalBatches()];
    const gray = Array.from(testBatch!.x.toFloat32Array().subarray(3 * plane, 6 * plane));
    expect(Math.max(...gray.map((v) => Math.abs(v - 128)))).toBeLessThanOrEqual(2); // JPEG at quality 100
    testBatch!.x.dispose();
    testLoader.close();
  });

  /** A PNG built by hand: any header (even a lying one), the given scanline bytes deflated as one IDAT. */
  function handmadePng(header: { width: number; height: number; bitDepth: number; colorType: number; interlace: number }, scanlines: Uint8Array): Buffer {
    const chunk = (type: string, body: Buffer): Buffer => {
      const typeAndBody = Buffer.concat([Buffer.from(type, 'latin1'), body]);
      const length = Buffer.alloc(4);
      length.writeUInt32BE(body.length);
      const crc = Buffer.alloc(4);
      crc.writeUInt32BE(crc32(typeAndBody));
      return Buffer.concat([length, typeAndBody, crc]);
    };
    const ihdr = Buffer.alloc(13);
    ihdr.writeUInt32BE(header.width, 0);
    ihdr.writeUInt32BE(header.height, 4);
    ihdr.set([header.bitDepth, header.colorType, 0, 0, header.interlace], 8);
    return Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk('IHDR', ihdr), chunk('IDAT', deflateSync(scanlines)), chunk('IEND', Buffer.alloc(0)),
    ]);
  }

  it('an empty class folder is an error naming the folder, in either split', () => {
    const base = join(root, 'folder-empty-class');
    for (const cls of ['a', 'b']) mkdirSync(join(base, 'train', cls), { recursive: true });
    mkdirSync(join(base, 'val', 'a'), { recursive: true });
    writePng(join(base, 'train', 'a', 'x.png'), 2, 2, () => [1, 2, 3]);
    writeFileSync(join(base, 'train', 'b', 'notes.txt'), 'not an image');
    writePng(join(base, 'val', 'a', 'y.png'), 2, 2, () => [1, 2, 3]);
    expect(() => loadDataset('imagefolder', { data: base, imageSize: 2 })).toThrow(new RegExp(`class folder ${join(base, 'train', 'b')} holds no \\.png/\\.jpg/\\.jpeg images`));
    writePng(join(base, 'train', 'b', 'z.png'), 2, 2, () => [4, 5, 6]);
    mkdirSync(join(base, 'val', 'b'));
    expect(() => loadDataset('imagefolder', { data: base, imageSize: 2 })).toThrow(new RegExp(`class folder ${join(base, 'val', 'b')} holds no`));
    writePng(join(base, 'val', 'b', 'w.png'), 2, 2, () => [4, 5, 6]);
    expect(loadDataset('imagefolder', { data: base, imageSize: 2 }).test.count).toBe(2);
  });

  it('a PNG whose header claims more pixels than MAX_IMAGE_PIXELS is refused before decoding, naming the file', () => {
    const file = join(root, 'bomb.png');
    writeFileSync(file, handmadePng({ width: 30_000, height: 30_000, bitDepth: 8, colorType: 6, interlace: 0 }, new Uint8Array(16)));
    expect(MAX_IMAGE_PIXELS).toBe(89_478_485);
    expect(() => decodeImage(file)).toThrow(new RegExp(`${file}: the PNG header says 30000×30000 \\(900,000,000 pixels\\), more than the 89,478,485-pixel limit`));
  });

  it('a PNG whose data inflates to less or more than its header implies is refused before pngjs allocates, naming the file', () => {
    // 4000×4000 RGBA is under the pixel cap; pngjs would allocate 64 MB for it from the header alone.
    const file = join(root, 'short.png');
    writeFileSync(file, handmadePng({ width: 4000, height: 4000, bitDepth: 8, colorType: 6, interlace: 0 }, new Uint8Array(64)));
    expect(() => decodeImage(file)).toThrow(new RegExp(`${file}: the PNG is truncated or corrupt: its header says 4000×4000, which needs 64004000 bytes of image data, but the data inflates to 64 bytes`));
    writeFileSync(file, handmadePng({ width: 2, height: 2, bitDepth: 8, colorType: 2, interlace: 0 }, new Uint8Array(100)));
    expect(() => decodeImage(file)).toThrow(new RegExp(`${file}: the PNG image data is corrupt or truncated: it inflates to more than the 14 bytes`));
  });

  it('exact-length PNGs still decode: 16-bit grey and Adam7-interlaced RGB', () => {
    const grey = join(root, 'grey16.png');
    // 3×2, 16-bit grey: per row a filter byte (0) + 3 big-endian samples; values v*257 rescale to v.
    const values = [[10, 20, 30], [40, 50, 60]];
    writeFileSync(grey, handmadePng({ width: 3, height: 2, bitDepth: 16, colorType: 0, interlace: 0 },
      Uint8Array.from(values.flatMap((row) => [0, ...row.flatMap((v) => [v, v])]))));
    expect(Array.from(decodeImage(grey).data.filter((_, i) => i % 4 === 0))).toEqual(values.flat());
    // 5×3 RGB interlaced: each Adam7 pass's reduced image, filter 0, pixel (x, y) = [x, y, 7].
    const passes = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];
    const bytes: number[] = [];
    for (const [x0, y0, dx, dy] of passes) {
      const xs = Array.from({ length: 5 }, (_, x) => x).filter((x) => x >= x0! && (x - x0!) % dx! === 0);
      for (let y = y0!; y < 3; y += dy!) if (xs.length > 0) bytes.push(0, ...xs.flatMap((x) => [x, y, 7]));
    }
    const interlaced = join(root, 'adam7.png');
    writeFileSync(interlaced, handmadePng({ width: 5, height: 3, bitDepth: 8, colorType: 2, interlace: 1 }, Uint8Array.from(bytes)));
    const decoded = decodeImage(interlaced);
    const expected = Array.from({ length: 15 }, (_, i) => [i % 5, Math.floor(i / 5), 7, 255]).flat();
    expect([decoded.width, decoded.height, Array.from(decoded.data)]).toEqual([5, 3, expected]);
  });

  it('a corrupt image and a class missing from train are errors naming the file', () => {
    const base = join(root, 'folder-bad');
    mkdirSync(join(base, 'train', 'a'), { recursive: true });
    mkdirSync(join(base, 'test', 'b'), { recursive: true });
    writeFileSync(join(base, 'train', 'a', 'x.png'), Buffer.from('not a png at all'));
    const broken = readImageFolder(join(base, 'train'), 4, ['a']);
    const loader = new DataLoader(broken, { batchSize: 1, sampler: 'shuffle', augment: false, flip: false, padding: 0, ...IMAGENET_NORMALIZATION, seed: 0, workers: 0 });
    expect(() => [...loader.evalBatches()]).toThrow(/cannot decode .*x\.png/);
    loader.close();
    writePng(join(base, 'train', 'a', 'x.png'), 2, 2, () => [1, 2, 3]);
    writePng(join(base, 'test', 'b', 'y.png'), 2, 2, () => [1, 2, 3]);
    expect(() => loadDataset('imagefolder', { data: base, imageSize: 4 })).toThrow(/class directory .*test\/b is not a class of the training split/);
  });
});
