// Fused SGD step throughput (native/src/cpu/sgd.cpp) and the per-step cost of optim.SGD.
//
//   npx tsc -p tsconfig.json && node bench/sgd.bench.mjs [--threads 2] [--repeats 41]
//
// GB/s counts the compulsory traffic of one pass: read p and g, write p (12 bytes/element)
// without momentum; also read and write the momentum buffer b (20 bytes/element) with it.
// "kernel" rows call the native entry point on preallocated buffers (hot: the same buffers every
// call, so sizes that fit in L2 can exceed DRAM bandwidth); the reference row is a plain copy
// of the same number of floats (8 bytes/element, native copy = parallel memcpy). The optimizer
// row times optim.SGD.step() over the parameter list of a CIFAR ResNet-32 (~0.46M parameters in
// 95 tensors), so it shows the per-tensor overhead (JS checks + one N-API call per parameter).
// Every number is the median of --repeats timed calls after a warm-up.
import { engineInfo, optim, randn, setNumThreads } from '../dist/src/index.js';
import { native } from '../dist/src/native/index.js';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? Number(args[index + 1]) : fallback;
};
const repeats = option('repeats', 41);
const threadList = args.includes('--threads') ? [option('threads', 2)] : [1, 2];

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function time(fn) {
  for (let i = 0; i < 5; i += 1) fn();
  const samples = [];
  for (let i = 0; i < repeats; i += 1) {
    const start = process.hrtime.bigint();
    fn();
    samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return median(samples);
}

const addon = native();
const h = (t) => t.storage.handle;
const variants = [
  // name, bytes/element, momentum, dampening, weightDecay, nesterov
  ['plain (lr only)', 12, 0, 0, 0, false],
  ['momentum 0.9', 20, 0.9, 0, 0, false],
  ['momentum 0.9 + nesterov + wd 5e-4', 20, 0.9, 0, 5e-4, true],
];
const sizes = [1 << 16, 471_000, 1 << 22, 1 << 24];

const info = engineInfo();
console.log(`lmcl fused SGD bench: simd ${info.simd}, median of ${repeats}`);
for (const threads of threadList) {
  setNumThreads(threads);
  console.log(`\n${threads} thread(s)`);
  console.log(`| elements | copy ref GB/s | ${variants.map(([name]) => `${name} ms (GB/s)`).join(' | ')} |`);
  console.log(`|---|---|${variants.map(() => '---').join('|')}|`);
  for (const count of sizes) {
    const p = randn([count]);
    const g = randn([count]);
    const b = randn([count]);
    const scratch = randn([count]);
    const gbps = (bytes, ms) => ((bytes * count) / (ms * 1e-3) / 1e9).toFixed(1);
    const copyMs = time(() => addon.copy(h(scratch), h(p), count * 4));
    const cells = variants.map(([, bytes, momentum, dampening, weightDecay, nesterov]) => {
      // Tiny lr keeps p finite over thousands of calls.
      const ms = time(() => addon.sgdStep(h(p), h(g), momentum ? h(b) : null, count, 1e-6, momentum, dampening, weightDecay, nesterov, false, false));
      return `${ms.toFixed(3)} (${gbps(bytes, ms)})`;
    });
    console.log(`| ${count} | ${gbps(8, copyMs)} | ${cells.join(' | ')} |`);
    for (const t of [p, g, b, scratch]) t.dispose();
  }

  // optim.SGD over ResNet-32's parameters: conv weights, BN weight/bias per conv, the fc layer.
  const shapes = [[16, 3, 3, 3]];
  for (const [cin, cout, blocks] of [[16, 16, 5], [16, 32, 5], [32, 64, 5]]) {
    for (let block = 0; block < blocks; block += 1) {
      shapes.push([cout, block === 0 ? cin : cout, 3, 3], [cout, cout, 3, 3]);
    }
  }
  const bn = shapes.map((shape) => shape[0]);
  for (const channels of bn) shapes.push([channels], [channels]);
  shapes.push([10, 64], [10]);
  const params = shapes.map((shape) => {
    const t = randn(shape);
    t.requiresGrad = true;
    t.grad = randn(shape);
    return t;
  });
  const total = params.reduce((sum, t) => sum + t.size, 0);
  for (const [name, options, bytes] of [
    ['plain', { lr: 1e-6 }, 12],
    ['momentum 0.9 + nesterov + wd 5e-4', { lr: 1e-6, momentum: 0.9, nesterov: true, weightDecay: 5e-4 }, 20],
  ]) {
    const optimizer = new optim.SGD(params, options);
    const ms = time(() => optimizer.step());
    console.log(`optim.SGD.step, ResNet-32 params (${params.length} tensors, ${total} elements), ${name}: ` +
      `${ms.toFixed(3)} ms/step (${((bytes * total) / (ms * 1e-3) / 1e9).toFixed(1)} GB/s effective)`);
    optimizer.dispose();
  }
  for (const t of params) t.dispose();
}
