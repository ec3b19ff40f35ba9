// What the per-op profiler costs (src/profiler/), off and on.
//   node bench/profiler_overhead.bench.mjs [--steps 3] [--arch resnet20] [--batch 32]
// 1. Per kernel call: a 1-element `unary` through native() with the profiler off (the addon itself)
//    and on (the timing wrapper: two clock reads, the cost model, one Map update).
// 2. Per backward node, off: the engine's extra work per node (a closure and one flag read),
//    timed on a chain of 1-element multiplications, against the node's whole backward time.
// 3. Whole training steps, alternating off and on, medians: the relative cost on a real model.
import { performance } from 'node:perf_hooks';
const lmcl = await import('../dist/src/index.js');
await import('../dist/src/models/index.js');
const { native, unwrappedNative } = await import('../dist/src/native/index.js');
const profiler = await import('../dist/src/profiler/profiler.js');
const { createCohort } = await import('../dist/src/models/registry.js');

const args = process.argv.slice(2);
const option = (name, fallback) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : fallback; };
const steps = Number(option('steps', '3'));
const arch = option('arch', 'resnet20');
const batch = Number(option('batch', '32'));
const median = (values) => { const sorted = [...values].sort((a, b) => a - b); return sorted[sorted.length >> 1]; };

// ---- 1. per kernel call ----
const x = unwrappedNative().alloc('cpu', 4);
const y = unwrappedNative().alloc('cpu', 4);
const calls = 200_000;
const perCall = () => {
  const begin = performance.now();
  for (let i = 0; i < calls; i += 1) native().unary(5, x, y, 1);
  return ((performance.now() - begin) * 1e6) / calls;
};
const offCall = [], onCall = [];
for (let round = 0; round < 5; round += 1) {
  offCall.push(perCall());
  profiler.startProfiling();
  onCall.push(perCall());
  profiler.stopProfiling();
}
console.log(`kernel call (1-element unary): off ${median(offCall).toFixed(0)} ns, on ${median(onCall).toFixed(0)} ns ` +
  `→ the profiler adds ${(median(onCall) - median(offCall)).toFixed(0)} ns per call while recording, 0 when off (same function object)`);

// ---- 2. per backward node, off ----
const chain = 2000;
const nodeTimes = [];
for (let round = 0; round < 5; round += 1) {
  lmcl.tidy(() => {
    const leaf = lmcl.tensor([1.0001], [1], { requiresGrad: true });
    let value = leaf;
    for (let i = 0; i < chain; i += 1) value = lmcl.F.mul(value, leaf);
    const begin = performance.now();
    value.backward();
    nodeTimes.push(((performance.now() - begin) * 1e6) / chain);
    leaf.dispose();
  });
}
const flags = profiler.profilerFlags;
const checks = 5_000_000;
let sink = 0;
const work = () => { sink += 1; return sink; };
let begin = performance.now();
for (let i = 0; i < checks; i += 1) { const apply = () => work(); sink += flags.recording ? profiler.timeBackwardNode('x', apply) : apply(); }
const withCheck = ((performance.now() - begin) * 1e6) / checks;
begin = performance.now();
for (let i = 0; i < checks; i += 1) sink += work();
const direct = ((performance.now() - begin) * 1e6) / checks;
console.log(`backward node (1-element mul): ${median(nodeTimes).toFixed(0)} ns per node in all; the off-path check costs ` +
  `${Math.max(0, withCheck - direct).toFixed(1)} ns of it (closure + flag read, measured in isolation)`);

// ---- 3. whole steps ----
lmcl.manualSeed(0);
const nets = createCohort(arch, 1, { numClasses: 100, inChannels: 3, imageSize: 32 });
const net = nets[0];
const sgd = new lmcl.optim.SGD(net.parameters(), { lr: 0.01, momentum: 0.9 });
const input = lmcl.keep(lmcl.randn([batch, 3, 32, 32]));
const labels = Int32Array.from({ length: batch }, (_, i) => i % 100);
const step = () => lmcl.tidy(() => {
  const out = net.forward(input);
  const loss = lmcl.F.crossEntropy(out.logits[out.logits.length - 1], labels);
  net.zeroGrad();
  loss.backward();
  sgd.step();
});
step();
step();
const off = [], on = [];
const timeOff = () => { const t = performance.now(); step(); off.push(performance.now() - t); };
const timeOn = () => {
  profiler.startProfiling();
  const t = performance.now(); profiler.profileStep(step); on.push(performance.now() - t);
  profiler.stopProfiling();
};
// ABBA order, so a slower second step of a pair (allocator, GC) does not count against one side.
for (let i = 0; i < steps; i += 1) {
  if (i % 2 === 0) { timeOff(); timeOn(); } else { timeOn(); timeOff(); }
}
profiler.startProfiling();
profiler.profileStep(step);
const recorded = profiler.stopProfiling();
const callsPerStep = recorded.kernels.reduce((sum, row) => sum + row.calls, 0);
const nodesPerStep = recorded.backwardNodes.reduce((sum, row) => sum + row.calls, 0);
const estimateMs = (callsPerStep * (median(onCall) - median(offCall))) / 1e6;
console.log(`${arch} batch ${batch}: ${callsPerStep} kernel calls and ${nodesPerStep} backward nodes per step → estimated cost on ` +
  `${estimateMs.toFixed(2)} ms per step (${(100 * estimateMs / median(off)).toFixed(2)}% of ${median(off).toFixed(1)} ms)`);
console.log(`${arch} batch ${batch} training step, medians of ${steps}: off ${median(off).toFixed(1)} ms, on ${median(on).toFixed(1)} ms ` +
  `(${(100 * (median(on) / median(off) - 1)).toFixed(1)}%; the machine is shared, so differences under a few % are noise)`);
sgd.dispose();
net.dispose();
input.dispose();
