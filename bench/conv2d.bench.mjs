// Conv2d kernel benchmark (raw addon): forward, backward input, backward weight and
// forward+backward(input+weight) at the CIFAR ResNet shapes, batch 128, 1 and 2 threads.
// flops per pass = 2 * N * Cout * Hout * Wout * (Cin/groups) * kh * kw; fwd+bwd = 3 passes.
// Medians over repeats after a warm-up; the shapes are interleaved round-robin so that slow
// phases of a noisy core hit every shape alike.
//   node bench/conv2d.bench.mjs [--threads 1,2] [--rounds 7] [--batch 128] [--json out.json]
import { createRequire } from 'node:module';
import { existsSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
async function loadAddon() {
  const dist = new URL('../dist/src/native/index.js', import.meta.url);
  if (existsSync(fileURLToPath(dist))) {
    try { return (await import(dist.href)).native(); } catch { /* fall through to the raw build */ }
  }
  return createRequire(import.meta.url)('node-gyp-build')(root);
}
const addon = await loadAddon();

const args = process.argv.slice(2);
const option = (name, fallback) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : fallback; };
const threadCounts = option('threads', '1,2').split(',').map(Number);
const rounds = Number(option('rounds', '7'));
const batch = Number(option('batch', '128'));
const jsonPath = option('json', null);

// [name, Cin, H, W, Cout, k, stride, pad, groups]
export const SHAPES = [
  ['3->16 32x32 3x3', 3, 32, 32, 16, 3, 1, 1, 1],
  ['16->16 32x32 3x3', 16, 32, 32, 16, 3, 1, 1, 1],
  ['16->32 32x32 3x3 s2', 16, 32, 32, 32, 3, 2, 1, 1],
  ['32->32 16x16 3x3', 32, 16, 16, 32, 3, 1, 1, 1],
  ['32->64 16x16 3x3 s2', 32, 16, 16, 64, 3, 2, 1, 1],
  ['64->64 8x8 3x3', 64, 8, 8, 64, 3, 1, 1, 1],
  ['16->32 1x1 s2', 16, 32, 32, 32, 1, 2, 0, 1],
  ['32->64 1x1 s2', 32, 16, 16, 64, 1, 2, 0, 1],
  ['dw 116 16x16 3x3', 116, 16, 16, 116, 3, 1, 1, 116],
];

function setup([name, cin, h, w, cout, k, stride, pad, groups]) {
  const oh = Math.floor((h + 2 * pad - k) / stride) + 1, ow = Math.floor((w + 2 * pad - k) / stride) + 1;
  const params = [batch, cin, h, w, cout, k, k, stride, stride, pad, pad, groups];
  const sizes = { x: batch * cin * h * w, w: cout * (cin / groups) * k * k, y: batch * cout * oh * ow };
  const make = (count) => {
    const s = addon.alloc('cpu', count * 4);
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = Math.random() * 2 - 1;
    addon.upload(s, data, 0);
    return s;
  };
  const st = { x: make(sizes.x), w: make(sizes.w), b: make(cout), y: make(sizes.y), dy: make(sizes.y), dx: make(sizes.x), dw: make(sizes.w) };
  const flops = 2 * batch * cout * oh * ow * (cin / groups) * k * k;
  const ops = {
    fwd: () => addon.conv2dForward(st.x, st.w, st.b, st.y, params),
    bwdInput: () => addon.conv2dBackwardInput(st.dy, st.w, st.dx, params),
    bwdWeight: () => addon.conv2dBackwardWeight(st.x, st.dy, st.dw, params),
  };
  ops.fwdBwd = () => { ops.fwd(); ops.bwdInput(); ops.bwdWeight(); };
  return { name, flops, ops };
}

const now = () => Number(process.hrtime.bigint()) / 1e6;
const median = (v) => { const s = [...v].sort((a, b) => a - b); return s[s.length >> 1]; };

const results = [];
for (const threads of threadCounts) {
  addon.setNumThreads(threads);
  const cases = SHAPES.map(setup);
  for (const c of cases) for (let i = 0; i < 2; i++) c.ops.fwdBwd();  // warm-up (pools, page faults)
  const times = cases.map(() => ({ fwd: [], bwdInput: [], bwdWeight: [], fwdBwd: [] }));
  for (let r = 0; r < rounds; r++) {
    cases.forEach((c, i) => {
      for (const op of ['fwd', 'bwdInput', 'bwdWeight', 'fwdBwd']) {
        const t0 = now();
        c.ops[op]();
        times[i][op].push(now() - t0);
      }
    });
  }
  cases.forEach((c, i) => {
    const t = Object.fromEntries(Object.entries(times[i]).map(([op, v]) => [op, median(v)]));
    const row = {
      threads, shape: c.name, mflopPerPass: c.flops / 1e6,
      fwdMs: t.fwd, bwdInputMs: t.bwdInput, bwdWeightMs: t.bwdWeight, fwdBwdMs: t.fwdBwd,
      fwdGflops: c.flops / t.fwd / 1e6, bwdInputGflops: c.flops / t.bwdInput / 1e6,
      bwdWeightGflops: c.flops / t.bwdWeight / 1e6, fwdBwdGflops: 3 * c.flops / t.fwdBwd / 1e6,
    };
    results.push(row);
  });
}

console.log(`conv2d, batch ${batch}, simd ${addon.info().simd}, medians of ${rounds} interleaved rounds`);
console.log('threads | shape                  | fwd ms (GFLOP/s) | bwd-in ms (GFLOP/s) | bwd-w ms (GFLOP/s) | fwd+bwd ms (GFLOP/s)');
for (const r of results) {
  const f = (ms, g) => `${ms.toFixed(2).padStart(7)} (${g.toFixed(0).padStart(3)})`;
  console.log(`${String(r.threads).padStart(7)} | ${r.shape.padEnd(22)} | ${f(r.fwdMs, r.fwdGflops).padEnd(16)} | ${f(r.bwdInputMs, r.bwdInputGflops).padEnd(19)} | ${f(r.bwdWeightMs, r.bwdWeightGflops).padEnd(18)} | ${f(r.fwdBwdMs, r.fwdBwdGflops)}`);
}
if (jsonPath) writeFileSync(jsonPath, JSON.stringify(results, null, 2));
