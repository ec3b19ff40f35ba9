// Batch normalisation (and pooling) throughput on the CIFAR ResNet shapes.
//
//   npx tsc -p tsconfig.json && node bench/batchnorm.bench.mjs [--threads 2] [--repeats 41]
//
// GB/s counts the compulsory traffic only: forward (training or eval) reads x and writes y
// (2·4 bytes per element), backward reads dy and x and writes dx (3·4 bytes per element). The
// statistics passes of the training forward re-read x from the cache of the thread that owns the
// channel, so they are not counted. "kernel" rows call the native entry points on preallocated
// buffers; "op" rows go through F.batchNorm / grad() (output allocation from the caching
// allocator, JS checks, autograd bookkeeping). Reference point: an elementwise affine map over
// the same tensor (same 8 bytes per element, the best a read-x/write-y pass can do), and the
// machine's ~74 GB/s two-core memory bandwidth (design.md). Each number is the median of
// --repeats timed calls after a warm-up; hot cache (the same buffers every call): the smaller
// shapes fit in L2/L3, so they can exceed the DRAM figure.
import { F, grad, noGrad, randn, setNumThreads, engineInfo, tensor } from '../dist/src/index.js';
import { native } from '../dist/src/native/index.js';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? Number(args[index + 1]) : fallback;
};
const threads = option('threads', 2);
const repeats = option('repeats', 41);
setNumThreads(threads);

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Median wall time of fn in milliseconds. */
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

const shapes = [
  [128, 16, 32, 32],
  [128, 32, 16, 16],
  [128, 64, 8, 8],
];

const info = engineInfo();
console.log(`lmcl batchnorm bench: ${threads} thread(s), simd ${info.simd}, median of ${repeats}`);
console.log('| shape | affine ref GB/s | fwd train kernel ms (GB/s) | fwd train op ms (GB/s) | fwd eval kernel ms (GB/s) | bwd kernel ms (GB/s) | fwd+bwd op ms |');
console.log('|---|---|---|---|---|---|---|');
for (const shape of shapes) {
  const [N, C] = shape;
  const S = shape[2] * shape[3];
  const count = N * C * S;
  const gb = (bytesPerElement, ms) => ((bytesPerElement * count) / (ms * 1e-3) / 1e9).toFixed(1);
  const x = randn(shape);
  const dy = randn(shape);
  const weight = randn([C]);
  const bias = randn([C]);
  const runningMean = randn([C]);
  const runningVar = tensor(new Float32Array(C).fill(1), [C]);
  const y = randn(shape);
  const dx = randn(shape);
  const saveMean = randn([C]);
  const saveInvstd = randn([C]);
  const gw = randn([C]);
  const gb_ = randn([C]);
  const h = (t) => t.storage.handle;
  const addon = native();
  const params = [N, C, S];

  const affineMs = time(() => addon.affine(h(x), h(y), count, 1.5, 0.25));
  const fwdKernelMs = time(() =>
    addon.batchNormForwardTraining(h(x), h(weight), h(bias), h(runningMean), h(runningVar), h(y), h(saveMean), h(saveInvstd), params, 0.1, 1e-5));
  const fwdOpMs = time(() => noGrad(() => F.batchNorm(x, runningMean, runningVar, weight, bias, { training: true })).dispose());
  const evalKernelMs = time(() =>
    addon.batchNormForwardEval(h(x), h(weight), h(bias), h(runningMean), h(runningVar), h(y), h(saveMean), h(saveInvstd), params, 1e-5));
  const bwdKernelMs = time(() =>
    addon.batchNormBackward(h(dy), h(x), h(weight), h(saveMean), h(saveInvstd), h(dx), h(gw), h(gb_), params, true));
  const xg = randn(shape);
  xg.requiresGrad = true;
  const wg = randn([C]);
  wg.requiresGrad = true;
  const bg = randn([C]);
  bg.requiresGrad = true;
  const fwdBwdOpMs = time(() => {
    const out = F.batchNorm(xg, runningMean, runningVar, wg, bg, { training: true });
    const grads = grad(out, [xg, wg, bg], { gradOutputs: [dy] });
    out.dispose();
    for (const g of grads) g.dispose();
  });
  console.log(`| ${JSON.stringify(shape).replaceAll(',', ', ')} | ${gb(8, affineMs)} | ${fwdKernelMs.toFixed(3)} (${gb(8, fwdKernelMs)}) | ` +
    `${fwdOpMs.toFixed(3)} (${gb(8, fwdOpMs)}) | ${evalKernelMs.toFixed(3)} (${gb(8, evalKernelMs)}) | ` +
    `${bwdKernelMs.toFixed(3)} (${gb(12, bwdKernelMs)}) | ${fwdBwdOpMs.toFixed(3)} |`);
  for (const t of [x, dy, weight, bias, runningMean, runningVar, y, dx, saveMean, saveInvstd, gw, gb_, xg, wg, bg]) t.dispose();
}

// Pooling on the shapes a CIFAR ResNet uses (global average pool head; a 2x2 max/avg pool).
console.log('\n| pooling op | input | fwd ms (GB/s) | bwd ms (GB/s) |');
console.log('|---|---|---|---|');
const poolCases = [
  ['adaptiveAvgPool2d 1x1', [128, 64, 8, 8], (t) => F.adaptiveAvgPool2d(t, 1)],
  ['maxPool2d 2x2', [128, 16, 32, 32], (t) => F.maxPool2d(t, 2)],
  ['avgPool2d 2x2', [128, 16, 32, 32], (t) => F.avgPool2d(t, 2)],
];
for (const [name, shape, op] of poolCases) {
  const x = randn(shape);
  const count = shape.reduce((p, e) => p * e, 1);
  const probe = op(x);
  const outCount = probe.size;
  probe.dispose();
  const fwdMs = time(() => noGrad(() => op(x)).dispose());
  const xg = randn(shape);
  xg.requiresGrad = true;
  const gradOut = randn(op(x).shape);
  const bwdMs = time(() => {
    const out = op(xg);
    const [g] = grad(out, [xg], { gradOutputs: [gradOut] });
    out.dispose();
    g.dispose();
  }) - fwdMs;
  const gbps = (bytes, ms) => (bytes / (ms * 1e-3) / 1e9).toFixed(1);
  console.log(`| ${name} | ${JSON.stringify(shape).replaceAll(',', ', ')} | ${fwdMs.toFixed(3)} (${gbps(4 * (count + outCount), fwdMs)}) | ` +
    `${bwdMs.toFixed(3)} (${gbps(4 * (count + outCount), bwdMs)}) |`);
  x.dispose();
  xg.dispose();
  gradOut.dispose();
}
