// GEMM kernel benchmark (raw addon): GFLOP/s for square sizes and conv/linear-like shapes on 1
// and 2 threads, against the machine peak. Peak: measured at run time for each thread count by
// the addon's FMA loop (measureFmaPeak, native/src/cpu/peak.cpp: independent FMA chains at the
// dispatched SIMD width), so a busy core or another clock shows up in the denominator too.
// Medians after warm-up; the shapes are interleaved per round.
//   node bench/gemm.bench.mjs [--threads 1,2] [--rounds 5]
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
async function loadAddon() {
  const dist = new URL('../dist/src/native/index.js', import.meta.url);
  if (existsSync(fileURLToPath(dist))) {
    try { return (await import(dist.href)).native(); } catch { /* fall through */ }
  }
  return createRequire(import.meta.url)('node-gyp-build')(root);
}
const addon = await loadAddon();
const args = process.argv.slice(2);
const option = (name, fallback) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : fallback; };
const threadCounts = option('threads', '1,2').split(',').map(Number);
const rounds = Number(option('rounds', '5'));

// [label, transposeA, transposeB, m, n, k]
const SHAPES = [
  ['square 256', false, false, 256, 256, 256],
  ['square 512', false, false, 512, 512, 512],
  ['square 1024', false, false, 1024, 1024, 1024],
  ['square 2048', false, false, 2048, 2048, 2048],
  ['square 1024 A^T', true, false, 1024, 1024, 1024],
  ['square 1024 B^T', false, true, 1024, 1024, 1024],
  ['conv fwd 16x(144)x1024', false, false, 16, 1024, 144],
  ['conv fwd 64x(576)x64 x16', false, false, 64, 1024, 576],
  ['conv wgrad 64x576 (k=8192)', false, true, 64, 576, 8192],
  ['linear 128x10 (k=64)', false, true, 128, 10, 64],
  ['linear 128x100 (k=256)', false, true, 128, 100, 256],
];

const now = () => Number(process.hrtime.bigint()) / 1e6;
const median = (v) => { const s = [...v].sort((a, b) => a - b); return s[s.length >> 1]; };
const make = (count) => {
  const s = addon.alloc('cpu', count * 4);
  const d = new Float32Array(count);
  for (let i = 0; i < count; i++) d[i] = Math.random() * 2 - 1;
  addon.upload(s, d, 0);
  return s;
};

console.log(`gemm, simd ${addon.info().simd}, peak measured per thread count (measureFmaPeak)`);
console.log('threads | shape                        | ms       | GFLOP/s | % of peak');
for (const threads of threadCounts) {
  addon.setNumThreads(threads);
  const peak = addon.measureFmaPeak(threads, 0.05).gflops;
  console.log(`${String(threads).padStart(7)} | FMA peak, measured now       |          | ${peak.toFixed(1).padStart(7)} |`);
  const cases = SHAPES.map(([label, ta, tb, m, n, k]) => {
    const a = make(m * k), b = make(k * n), c = make(m * n);
    const flops = 2 * m * n * k;
    const inner = Math.max(1, Math.round(2e8 / flops));  // repeat tiny products per sample
    const run = () => { for (let i = 0; i < inner; i++) addon.gemm(a, b, c, ta, tb, m, n, k, 1, 0); };
    return { label, flops: flops * inner, inner, run, times: [] };
  });
  for (const c of cases) { c.run(); c.run(); }
  for (let r = 0; r < rounds; r++) for (const c of cases) { const t0 = now(); c.run(); c.times.push(now() - t0); }
  for (const c of cases) {
    const ms = median(c.times);
    const gflops = c.flops / ms / 1e6;
    console.log(`${String(threads).padStart(7)} | ${c.label.padEnd(28)} | ${(ms / c.inner).toFixed(3).padStart(8)} | ${gflops.toFixed(1).padStart(7)} | ${(100 * gflops / peak).toFixed(0).padStart(4)}%`);
  }
}
