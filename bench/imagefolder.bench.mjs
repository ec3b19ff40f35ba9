// Image-folder loading benchmark: images/s of a training epoch (RandomResizedCrop + flip) and an
// eval pass (Resize + CenterCrop) through the DataLoader, decoded per batch — inline with the JS
// decoders, and 1 / 2 worker threads with the JS decoders or sharp — against Pillow doing the
// same transforms on the same files (bench/pillow_imagefolder.py, in this process or 2 worker
// processes), interleaved over rounds, medians. Also checks agreement: our eval outputs (uint8)
// against Pillow's on the first 16 files (max and mean absolute difference, per decoder).
// The files: N JPEGs (quality 90) of ImageNet-like sizes (333–500 × 250–500), smooth colour
// fields plus noise, written once to bench/out/imagefolder-N/ with sharp.
//   npm run build && node bench/imagefolder.bench.mjs [--images 256] [--size 224] [--rounds 3] [--previous OLD_CHECKOUT]
// --previous: a checkout whose dist/ has the eager image folder (every image decoded and resized
// up front in the main thread, before 2026-12-03): its images/s, timed on the same files.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const args = process.argv.slice(2);
const option = (name, fallback) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : fallback; };
const imageCount = Number(option('images', '256'));
const size = Number(option('size', '224'));
const rounds = Number(option('rounds', '3'));
const previous = option('previous', null);
const lmcl = await import(new URL('../dist/src/index.js', import.meta.url).href);
const { DataLoader, sharpAvailable } = await import(new URL('../dist/src/data/loader.js', import.meta.url).href);
const sharp = (await import('sharp')).default;

const root = join(here, 'out', `imagefolder-${imageCount}`);
const trainDir = join(root, 'train');
if (!existsSync(join(root, 'done'))) {
  let seed = 12345;
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (let i = 0; i < imageCount; i += 1) {
    const cls = `class${i % 8}`;
    mkdirSync(join(trainDir, cls), { recursive: true });
    const width = 333 + Math.floor(random() * 168);
    const height = 250 + Math.floor(random() * 251);
    const data = Buffer.alloc(width * height * 3);
    const [a, b, c] = [random() * 6, random() * 6, random() * 6];
    for (let y = 0; y < height; y += 1) for (let x = 0; x < width; x += 1) {
      const p = (y * width + x) * 3;
      data[p] = 128 + 100 * Math.sin(a + x / 37) + 20 * (random() - 0.5);
      data[p + 1] = 128 + 100 * Math.sin(b + y / 29) + 20 * (random() - 0.5);
      data[p + 2] = 128 + 100 * Math.sin(c + (x + y) / 53) + 20 * (random() - 0.5);
    }
    await sharp(data, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toFile(join(trainDir, cls, `${i}.jpg`));
  }
  writeFileSync(join(root, 'done'), '');
}
const classes = lmcl.data.readImageFolder(trainDir, size, Array.from({ length: 8 }, (_, i) => `class${i}`)).classNames;
const split = lmcl.data.readImageFolder(trainDir, size, classes);
const normalisation = lmcl.data.IMAGENET_NORMALIZATION;

function loaderRun(workers, decoder) {
  const loader = new DataLoader(split, { batchSize: 64, sampler: 'shuffle', augment: true, flip: true, padding: 0, ...normalisation, seed: 1, workers, decoder });
  const testLoader = new DataLoader(split, { batchSize: 64, sampler: 'shuffle', augment: false, flip: false, padding: 0, ...normalisation, seed: 1, workers, decoder });
  const time = (batches) => {
    const start = performance.now();
    for (const batch of batches) batch.x.dispose();
    return split.count / ((performance.now() - start) / 1000);
  };
  const result = { train: time(loader.epoch(0)), eval: time(testLoader.evalBatches()) };
  loader.close();
  testLoader.close();
  return result;
}

function pillowRun(workers, dump) {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const extra = dump ? ['--eval-dump', dump, '16'] : [];
  const run = spawnSync('/usr/bin/python3', [join(here, 'pillow_imagefolder.py'), trainDir, String(size), String(workers), ...extra], { encoding: 'utf8', env });
  if (run.status !== 0) throw new Error(`pillow_imagefolder.py failed: ${run.stderr}`);
  const parsed = JSON.parse(run.stdout.trim().split('\n').pop());
  return { train: parsed.train_images_per_second, eval: parsed.eval_images_per_second, version: parsed.pillow };
}

async function previousRun() {
  const formats = await import(join(previous, 'dist', 'src', 'data', 'formats.js'));
  const start = performance.now();
  formats.readImageFolder(trainDir, size, classes);
  return { train: split.count / ((performance.now() - start) / 1000), eval: Number.NaN };
}

const candidates = [
  ['lmcl inline, js decoders', () => loaderRun(0, 'js')],
  ['lmcl 1 worker, js decoders', () => loaderRun(1, 'js')],
  ['lmcl 2 workers, js decoders', () => loaderRun(2, 'js')],
  ...(sharpAvailable() ? [['lmcl 1 worker, sharp', () => loaderRun(1, 'sharp')], ['lmcl 2 workers, sharp', () => loaderRun(2, 'sharp')]] : []),
  ['Pillow, 1 process', () => pillowRun(0)],
  ['Pillow, 2 worker processes', () => pillowRun(2)],
  ...(previous ? [['previous eager path (decode + resize up front)', previousRun]] : []),
];
const samples = new Map(candidates.map(([name]) => [name, { train: [], eval: [] }]));
let pillowVersion = '?';
for (let round = 0; round < rounds; round += 1) {
  for (const [name, run] of candidates) {
    const result = await run();
    if (result.version) pillowVersion = result.version;
    samples.get(name).train.push(result.train);
    samples.get(name).eval.push(result.eval);
  }
}
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

// Agreement with Pillow on the eval transform (uint8), per decoder.
const dump = join(root, 'pillow-eval.bin');
pillowRun(0, dump);
const pillowBytes = new Uint8Array(readFileSync(dump));
const first = { ...split, count: 16, files: split.files.slice(0, 16), labels: split.labels.slice(0, 16) };
const agreement = [];
for (const [decoder, workers] of [['js', 0], ...(sharpAvailable() ? [['sharp', 1]] : [])]) {
  const loader = new DataLoader(first, { batchSize: 16, sampler: 'shuffle', augment: false, flip: false, padding: 0, mean: [0, 0, 0], std: [1 / 255, 1 / 255, 1 / 255], seed: 0, workers, decoder });
  const [batch] = [...loader.evalBatches()];
  const ours = batch.x.toFloat32Array();
  let worst = 0;
  let total = 0;
  for (let i = 0; i < ours.length; i += 1) {
    const difference = Math.abs(Math.round(ours[i]) - pillowBytes[i]);
    worst = Math.max(worst, difference);
    total += difference;
  }
  batch.x.dispose();
  loader.close();
  agreement.push(`${decoder}: max |ours − Pillow| ${worst}, mean ${(total / ours.length).toFixed(3)} (uint8 steps)`);
}

const cpu = (readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) ?? [])[1] ?? cpus()[0]?.model;
console.log(`image folder: ${imageCount} JPEGs (333–500 × 250–500, q90) → ${size}×${size}, batch 64; ${cpu}, ${cpus().length} cores; Pillow ${pillowVersion}; ${rounds} rounds, medians`);
console.log('| loader | train epoch (RandomResizedCrop + flip), images/s | eval (Resize + CenterCrop), images/s |');
console.log('|---|---|---|');
for (const [name] of candidates) {
  const { train, eval: evaluation } = samples.get(name);
  console.log(`| ${name} | ${median(train).toFixed(0)} | ${Number.isNaN(median(evaluation)) ? '—' : median(evaluation).toFixed(0)} |`);
}
console.log(`agreement with Pillow on the eval transform, first 16 files: ${agreement.join('; ')}`);
