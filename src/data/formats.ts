// Dataset file formats → ImageDataset (uint8, NCHW, held in memory).
//
// - CIFAR-10 binary: data_batch_1..5.bin + test_batch.bin, records of 1 label byte + 3072 pixels
//   (1024 R, 1024 G, 1024 B, row-major 32×32): already NCHW.
// - CIFAR-100 binary: train.bin / test.bin, records of coarse label + fine label + 3072 pixels;
//   the fine label (0..99) is used.
// - IDX (MNIST / Fashion-MNIST): big-endian header, magic 0x00000803 (ubyte, 3 dims) for images
//   and 0x00000801 (ubyte, 1 dim) for labels; raw or gzip (.gz, read with node:zlib).
// - Image folders: root/<split>/<class>/*.png|jpg|jpeg, listed here (file paths + labels); the
//   DataLoader decodes (pngjs / jpeg-js, or sharp) and resizes them per batch (image_pipeline.ts).
// Every problem (missing, corrupt, truncated, wrong magic, count mismatch, label out of range,
// an empty class folder, an image over MAX_IMAGE_PIXELS) is an Error naming the file or folder
// and what is wrong.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { gunzipSync, inflateSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import { decodeImageBytes } from './image_pipeline.js';
import type { DecodedImage, JsDecoders } from './image_pipeline.js';
import type { ImageDataset } from './types.js';

export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];
export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
export const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

function readWhole(file: string, what: string): Buffer {
  if (!existsSync(file)) throw new Error(`${what}: file not found: ${file}`);
  try {
    return readFileSync(file);
  } catch (error) {
    throw new Error(`${what}: cannot read ${file}: ${(error as Error).message}`);
  }
}

/** Reads a file, gunzipping it when its name ends in .gz or it starts with the gzip magic. */
function readMaybeGzip(file: string, what: string): Buffer {
  const raw = readWhole(file, what);
  if (file.endsWith('.gz') || (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b)) {
    try {
      return gunzipSync(raw);
    } catch (error) {
      throw new Error(`${what}: ${file} is not valid gzip data (corrupt or truncated): ${(error as Error).message}`);
    }
  }
  return raw;
}

// ---------------------------------------------------------------------------------------------
// CIFAR binary

function readCifarRecords(files: string[], labelBytes: 1 | 2, classes: number, what: string): { pixels: Uint8Array; labels: Int32Array } {
  const recordBytes = labelBytes + 3072;
  const buffers = files.map((file) => {
    const data = readWhole(file, what);
    if (data.length === 0) throw new Error(`${what}: ${file} is empty`);
    if (data.length % recordBytes !== 0) {
      throw new Error(
        `${what}: ${file} is truncated or corrupt: ${data.length} bytes is not a whole number of ${recordBytes}-byte records ` +
          `(${labelBytes === 1 ? 'label' : 'coarse label + fine label'} + 3072 pixels)`,
      );
    }
    return { file, data };
  });
  const count = buffers.reduce((sum, { data }) => sum + data.length / recordBytes, 0);
  const pixels = new Uint8Array(count * 3072);
  const labels = new Int32Array(count);
  let item = 0;
  for (const { file, data } of buffers) {
    const records = data.length / recordBytes;
    for (let record = 0; record < records; record += 1, item += 1) {
      const start = record * recordBytes;
      if (labelBytes === 2 && data[start]! >= 20) {
        throw new Error(`${what}: ${file}: record ${record} has coarse label ${data[start]}, outside 0..19 (corrupt file?)`);
      }
      const label = data[start + labelBytes - 1]!;
      if (label >= classes) {
        throw new Error(`${what}: ${file}: record ${record} has label ${label}, outside 0..${classes - 1} (corrupt file or wrong format?)`);
      }
      labels[item] = label;
      pixels.set(data.subarray(start + labelBytes, start + recordBytes), item * 3072);
    }
  }
  return { pixels, labels };
}

function findDir(root: string, marker: string, subfolders: string[], what: string): string {
  for (const candidate of [root, ...subfolders.map((sub) => join(root, sub))]) {
    if (existsSync(join(candidate, marker))) return candidate;
  }
  throw new Error(`${what}: ${join(root, marker)} not found (also looked in ${subfolders.map((sub) => join(root, sub)).join(', ')})`);
}

function readNames(file: string, expected: number): string[] | undefined {
  if (!existsSync(file)) return undefined;
  const names = readFileSync(file, 'utf8').split(/\r?\n/).map((line) => line.trim()).filter((line) => line.length > 0);
  return names.length === expected ? names : undefined;
}

/** CIFAR-10 binary version. `root` holds data_batch_*.bin (or a cifar-10-batches-bin/ inside it). */
export function readCifar10(root: string, split: 'train' | 'test'): ImageDataset {
  const what = 'cifar10';
  const dir = findDir(root, 'test_batch.bin', ['cifar-10-batches-bin'], what);
  const files = split === 'train' ? [1, 2, 3, 4, 5].map((k) => join(dir, `data_batch_${k}.bin`)) : [join(dir, 'test_batch.bin')];
  const { pixels, labels } = readCifarRecords(files, 1, 10, what);
  return {
    name: `cifar10 ${split}`,
    pixels,
    labels,
    count: labels.length,
    channels: 3,
    height: 32,
    width: 32,
    classes: 10,
    classNames: readNames(join(dir, 'batches.meta.txt'), 10) ?? CIFAR10_CLASSES,
  };
}

/** CIFAR-100 binary version (fine labels). `root` holds train.bin/test.bin (or cifar-100-binary/). */
export function readCifar100(root: string, split: 'train' | 'test'): ImageDataset {
  const what = 'cifar100';
  const dir = findDir(root, `${split}.bin`, ['cifar-100-binary'], what);
  const { pixels, labels } = readCifarRecords([join(dir, `${split}.bin`)], 2, 100, what);
  return {
    name: `cifar100 ${split}`,
    pixels,
    labels,
    count: labels.length,
    channels: 3,
    height: 32,
    width: 32,
    classes: 100,
    classNames: readNames(join(dir, 'fine_label_names.txt'), 100),
  };
}

// ---------------------------------------------------------------------------------------------
// IDX

function checkIdxHeader(data: Buffer, file: string, dims: number, what: string): number[] {
  const headerBytes = 4 + 4 * dims;
  const magic = data.length >= 4 ? data.readUInt32BE(0) : -1;
  const expected = 0x800 + dims;
  if (magic !== expected && data.length >= 4) {
    throw new Error(
      `${what}: ${file} has wrong magic number 0x${magic.toString(16).padStart(8, '0')}, expected 0x${expected.toString(16).padStart(8, '0')} ` +
        `(IDX unsigned-byte ${dims}-D ${dims === 1 ? 'labels' : 'images'})`,
    );
  }
  if (data.length < headerBytes) throw new Error(`${what}: ${file} is truncated: ${data.length} bytes, shorter than the ${headerBytes}-byte IDX header`);
  const shape: number[] = [];
  for (let d = 0; d < dims; d += 1) shape.push(data.readUInt32BE(4 + 4 * d));
  const payload = shape.reduce((a, b) => a * b, 1);
  if (data.length !== headerBytes + payload) {
    throw new Error(
      `${what}: ${file} is ${data.length < headerBytes + payload ? 'truncated' : 'corrupt (trailing bytes)'}: header says [${shape.join(', ')}] ` +
        `(${headerBytes + payload} bytes) but the file has ${data.length} bytes`,
    );
  }
  return shape;
}

/** Reads an IDX image file (magic 0x803) and label file (magic 0x801), raw or gzip. */
export function readIdxPair(imagesFile: string, labelsFile: string, options: { classes?: number; name?: string; classNames?: string[] } = {}): ImageDataset {
  const what = options.name ?? 'idx';
  const classes = options.classes ?? 10;
  const images = readMaybeGzip(imagesFile, what);
  const [count, height, width] = checkIdxHeader(images, imagesFile, 3, what) as [number, number, number];
  const labelData = readMaybeGzip(labelsFile, what);
  const [labelCount] = checkIdxHeader(labelData, labelsFile, 1, what) as [number];
  if (labelCount !== count) {
    throw new Error(`${what}: count mismatch: ${imagesFile} holds ${count} images but ${labelsFile} holds ${labelCount} labels`);
  }
  if (count === 0) throw new Error(`${what}: ${imagesFile} holds no images`);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i += 1) {
    const label = labelData[8 + i]!;
    if (label >= classes) throw new Error(`${what}: ${labelsFile}: label ${i} is ${label}, outside 0..${classes - 1}`);
    labels[i] = label;
  }
  const pixels = new Uint8Array(images.buffer, images.byteOffset + 16, count * height * width).slice();
  return { name: what, pixels, labels, count, channels: 1, height, width, classes, ...(options.classNames ? { classNames: options.classNames } : {}) };
}

/** Finds an IDX file in `dir` by stem, accepting `stem`, `stem.gz` and the `train-images.idx3-ubyte` spelling. */
export function findIdxFile(dir: string, stem: string, what: string): string {
  const dotted = stem.replace(/-(idx\d-ubyte)$/, '.$1');
  const candidates = [stem, `${stem}.gz`, dotted, `${dotted}.gz`];
  for (const candidate of candidates) {
    const file = join(dir, candidate);
    if (existsSync(file)) return file;
  }
  throw new Error(`${what}: none of ${candidates.map((c) => join(dir, c)).join(', ')} exists`);
}

/** MNIST / Fashion-MNIST layout: train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-… */
export function readIdxDir(dir: string, split: 'train' | 'test', options: { name: string; classNames?: string[] }): ImageDataset {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`${options.name}: data directory not found: ${dir}`);
  const prefix = split === 'train' ? 'train' : 't10k';
  const images = findIdxFile(dir, `${prefix}-images-idx3-ubyte`, options.name);
  const labels = findIdxFile(dir, `${prefix}-labels-idx1-ubyte`, options.name);
  const dataset = readIdxPair(images, labels, { classes: 10, name: options.name, ...(options.classNames ? { classNames: options.classNames } : {}) });
  dataset.name = `${options.name} ${split}`;
  return dataset;
}

/** Writes an IDX file (ubyte) as a Buffer: the inverse of the reader, used by tests and scripts. */
export function encodeIdx(shape: number[], data: Uint8Array): Uint8Array {
  const header = Buffer.alloc(4 + 4 * shape.length);
  header.writeUInt32BE(0x800 + shape.length, 0);
  shape.forEach((size, d) => header.writeUInt32BE(size, 4 + 4 * d));
  return Buffer.concat([header, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

// ---------------------------------------------------------------------------------------------
// Image folders

let pngModule: JsDecoders['png'] | null = null;
/** The pure-JS decoders: pngjs (required through createRequire: it ships no types), jpeg-js, zlib. */
export function jsDecoders(): JsDecoders {
  pngModule ??= createRequire(import.meta.url)('pngjs') as JsDecoders['png'];
  return { png: pngModule, jpeg: jpeg as unknown as JsDecoders['jpeg'], inflateSync, maxPixels: MAX_IMAGE_PIXELS };
}

/**
 * Largest image (width × height) an image folder may hold: Pillow's decompression-bomb limit
 * (Image.MAX_IMAGE_PIXELS, 89,478,485 ≈ 1 GiB / 4 bytes / 3 channels), so what Pillow/torchvision
 * load, we load. Every image is resized down to --image-size, so a bigger one is a mistake or an
 * attack: its RGBA bitmap alone would be over 358 MB, and pngjs allocates from the header's size
 * before looking at the data (a 30000×30000 header with a few bytes of data reached 8.9 GB).
 */
export const MAX_IMAGE_PIXELS = 89_478_485;

/** Reads and decodes one PNG or JPEG file to RGBA (the pure-JS decoders; see decodeImageBytes). */
export function decodeImage(file: string): DecodedImage {
  return decodeImageBytes(readWhole(file, 'imagefolder'), file, jsDecoders());
}

const IMAGE_EXTENSIONS = /\.(png|jpe?g)$/i;

function listDirs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && !entry.name.startsWith('.'))
    .map((entry) => entry.name)
    .sort();
}

/** Class names of an image-folder split: its sorted subdirectory names. */
export function imageFolderClasses(splitDir: string): string[] {
  if (!existsSync(splitDir) || !statSync(splitDir).isDirectory()) throw new Error(`imagefolder: directory not found: ${splitDir}`);
  const classes = listDirs(splitDir);
  if (classes.length === 0) throw new Error(`imagefolder: ${splitDir} has no class subdirectories (expected ${splitDir}/<class>/*.png|jpg)`);
  return classes;
}

/**
 * Lists root/<split>/<class>/*.png|jpg|jpeg: a dataset of files, decoded and resized to
 * size×size per batch by the DataLoader (image_pipeline.ts), never all held in memory.
 * `classNames` fixes the label order (taken from the train split so both splits agree); a class
 * directory not in it is an error.
 */
export function readImageFolder(splitDir: string, size: number, classNames: string[]): ImageDataset {
  if (!Number.isInteger(size) || size < 1) throw new Error(`imagefolder: image size must be a positive integer, got ${size}`);
  const dirs = imageFolderClasses(splitDir);
  const files: string[] = [];
  const labels: number[] = [];
  for (const dir of dirs) {
    const label = classNames.indexOf(dir);
    if (label < 0) throw new Error(`imagefolder: class directory ${join(splitDir, dir)} is not a class of the training split (${classNames.join(', ')})`);
    const names = readdirSync(join(splitDir, dir)).filter((name) => IMAGE_EXTENSIONS.test(name)).sort();
    // Like torchvision's ImageFolder: a class folder without images is a mistake (a failed copy, a
    // wrong extension), and in the train split it would be a class the model never sees.
    if (names.length === 0) throw new Error(`imagefolder: class folder ${join(splitDir, dir)} holds no .png/.jpg/.jpeg images`);
    for (const name of names) {
      files.push(join(splitDir, dir, name));
      labels.push(label);
    }
  }
  return {
    name: `imagefolder ${splitDir}`, pixels: new Uint8Array(0), files, labels: Int32Array.from(labels), count: files.length,
    channels: 3, height: size, width: size, classes: classNames.length, classNames,
  };
}
