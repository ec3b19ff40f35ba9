#!/usr/bin/env node
// Regenerates data/fashion-mnist-sample/: a class-balanced subset of Fashion-MNIST in IDX format,
// gzip-compressed. Source: Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist),
// which installs the original Zalando Research files under /usr/share/datasets/fashion-mnist.
//
// Choice (deterministic, no randomness): for each class 0..9, the first 1,000 images of the
// training file and the first 200 images of the t10k file, in file order; the chosen images keep
// their original relative order. Output: 10,000 train + 2,000 test images.
//
//   node scripts/make-fashion-mnist-sample.mjs [SOURCE_DIR] [OUT_DIR]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const source = resolve(process.argv[2] ?? '/usr/share/datasets/fashion-mnist');
const out = resolve(process.argv[3] ?? join(here, '..', 'data', 'fashion-mnist-sample'));
const PER_CLASS = { train: 1000, t10k: 200 };

function readIdx(file, dims) {
  const data = gunzipSync(readFileSync(file));
  const magic = data.readUInt32BE(0);
  if (magic !== 0x800 + dims) throw new Error(`${file}: wrong magic 0x${magic.toString(16)}`);
  const shape = Array.from({ length: dims }, (_, d) => data.readUInt32BE(4 + 4 * d));
  const header = 4 + 4 * dims;
  if (data.length !== header + shape.reduce((a, b) => a * b, 1)) throw new Error(`${file}: size does not match header`);
  return { shape, body: data.subarray(header) };
}

function writeIdx(file, shape, body) {
  const header = Buffer.alloc(4 + 4 * shape.length);
  header.writeUInt32BE(0x800 + shape.length, 0);
  shape.forEach((size, d) => header.writeUInt32BE(size, 4 + 4 * d));
  writeFileSync(file, gzipSync(Buffer.concat([header, body]), { level: 9 }));
}

mkdirSync(out, { recursive: true });
for (const split of ['train', 't10k']) {
  const images = readIdx(join(source, `${split}-images-idx3-ubyte.gz`), 3);
  const labels = readIdx(join(source, `${split}-labels-idx1-ubyte.gz`), 1);
  const [count, rows, cols] = images.shape;
  if (labels.shape[0] !== count) throw new Error(`${split}: ${count} images but ${labels.shape[0]} labels`);
  const taken = new Array(10).fill(0);
  const chosen = [];
  for (let i = 0; i < count; i += 1) {
    const label = labels.body[i];
    if (taken[label] < PER_CLASS[split]) {
      taken[label] += 1;
      chosen.push(i);
    }
  }
  if (taken.some((k) => k !== PER_CLASS[split])) throw new Error(`${split}: not enough images per class: ${taken}`);
  const plane = rows * cols;
  const outImages = Buffer.alloc(chosen.length * plane);
  const outLabels = Buffer.alloc(chosen.length);
  chosen.forEach((index, k) => {
    images.body.copy(outImages, k * plane, index * plane, (index + 1) * plane);
    outLabels[k] = labels.body[index];
  });
  writeIdx(join(out, `${split}-images-idx3-ubyte.gz`), [chosen.length, rows, cols], outImages);
  writeIdx(join(out, `${split}-labels-idx1-ubyte.gz`), [chosen.length], outLabels);
  console.log(`${split}: ${chosen.length} images (${PER_CLASS[split]} per class), last source index used ${chosen[chosen.length - 1]}`);
}
console.log(`wrote ${out}`);
