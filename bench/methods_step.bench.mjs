// What L-MCL costs on top of DML: the training step of one cohort under both methods, and the
// meta phase, through the trainer's own step code (src/train/step.ts) and the methods' registry
// entries with their default options (CIFAR: α = β = 0.1, γ = λ = 1, τ = 0.1, T = 3, feat-dim 128).
//
//   npx tsc -p tsconfig.json && node bench/methods_step.bench.mjs [--arch resnet32] [--batch 128] [--threads 2]
//        [--rounds 7] [--meta-rounds 3] [--meta-freq 50] [--steps-between 0] [--profile]
//
// Cohort: two CIFAR networks with L-MCL's auxiliary branches (S = 3 heads each), 100 classes,
// random 3×32×32 inputs, two images per class in the batch (the m-per-class sampler's batches).
// - DML step: forward → Σ CE of every head + KL between the final heads → backward → SGD.
// - lmcl step: the same cohort and SGD, plus 6 Embed heads, the 18 weighted stage pairs of
//   F.cohortContrastive, φ's weights (no grad), the aggregators, their CE and the logit KD.
// - meta phase: LmclMethod.metaPhase (2 virtual contrastive steps + 1 CE step with double backward,
//   φ's Nesterov update, bit-exact restore).
// The two steps are timed interleaved (DML, lmcl, DML, lmcl …) after one warm-up each, so drift of
// the machine hits both; the meta phase is timed separately (--meta-rounds runs; the first is
// slower: the allocator's first sight of the second-order graph's sizes). Reported:
// medians, the lmcl/DML ratio of the step (target ≤ 1.15) and the meta phase amortised over
// --meta-freq steps as a share of the DML step (target ≤ 0.10).
// --profile: one more meta phase with every native function wrapped in a wall-clock timer; prints
// the 15 costliest native functions and the share of the phase spent outside native calls.
import { tidy, manualSeed, randn, setNumThreads, engineInfo, Generator } from '../dist/src/index.js';
import { createCohort } from '../dist/src/models/registry.js';
import { getMethod, readMethodOptions } from '../dist/src/losses/registry.js';
import { defaultTrainConfig } from '../dist/src/train/config.js';
import { runStep, stepContext } from '../dist/src/train/step.js';
import { SGD } from '../dist/src/optim/sgd.js';
import { native } from '../dist/src/native/index.js';
import { installNativeTimers } from './native_timers.mjs';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? args[index + 1] : fallback;
};
const arch = option('arch', 'resnet32');
const batchSize = Number(option('batch', 128));
const threads = Number(option('threads', 2));
const rounds = Number(option('rounds', 7));
const metaRounds = Number(option('meta-rounds', 3));
const metaFreq = Number(option('meta-freq', 50));
const classes = 100;
setNumThreads(threads);

function build(methodName) {
  manualSeed(0);
  const networks = createCohort(arch, 2, { numClasses: classes, inChannels: 3, imageSize: 32, auxiliary: true });
  const entry = getMethod(methodName);
  const options = readMethodOptions(entry, { ...defaultTrainConfig, metaFreq });
  const method = entry.create({ networks, classes, options, trainLabels: new Int32Array(0), seed: 0 });
  const optimizers = new Map(method.parameterSets().map((set) => [set.name,
    new SGD(set.parameters, { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4, ...set.optimizer })]));
  for (const net of networks) net.train();
  method.train();
  return { networks, method, optimizers };
}

const generator = new Generator(1);
const x = randn([batchSize, 3, 32, 32]);
const y = Int32Array.from({ length: batchSize }, (_, index) => Math.floor(index / 2) % classes);
for (let i = y.length - 1; i > 0; i -= 1) {
  const j = generator.integer(i + 1);
  [y[i], y[j]] = [y[j], y[i]];
}
const batch = { x, y, indices: Int32Array.from({ length: batchSize }, (_, index) => index) };

/** One step of `setup`; batchIndex 1 keeps lmcl's meta phase out of it (it runs when batchIndex % metaFreq === 0). */
function timedStep(setup, batchIndex = 1) {
  const context = stepContext(setup.method, { epoch: 0, step: 0, batchIndex, batchesPerEpoch: 1000, lr: 0.1, classes, networks: setup.networks, optimizers: setup.optimizers });
  const started = process.hrtime.bigint();
  tidy(() => {
    const result = runStep(setup.method, batch, context);
    result.parts.values(); // the host read the trainer does once per log interval (CPU ops are synchronous anyway)
    result.parts.dispose();
  });
  for (const optimizer of setup.optimizers.values()) optimizer.zeroGrad();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

function timedMeta(setup) {
  const context = stepContext(setup.method, { epoch: 0, step: 0, batchIndex: 0, batchesPerEpoch: 1000, lr: 0.1, classes, networks: setup.networks, optimizers: setup.optimizers });
  const started = process.hrtime.bigint();
  tidy(() => setup.method.metaPhase(batch, context).item());
  return Number(process.hrtime.bigint() - started) / 1e6;
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

const dml = build('dml');
const lmcl = build('lmcl');
const info = engineInfo();
console.log(`methods step: ${arch} ×2 with auxiliary heads, batch ${batchSize}, ${threads} threads, engine ${info.simd}; ` +
  `${dml.networks.map((net) => net.parameters().reduce((a, p) => a + p.size, 0)).join(' + ')} network parameters`);
timedStep(dml);
timedStep(lmcl);
const dmlTimes = [];
const lmclTimes = [];
for (let round = 0; round < rounds; round += 1) {
  dmlTimes.push(timedStep(dml));
  lmclTimes.push(timedStep(lmcl));
  console.log(`  round ${round + 1}: dml ${dmlTimes.at(-1).toFixed(1)} ms, lmcl ${lmclTimes.at(-1).toFixed(1)} ms`);
}
// --steps-between k: k lmcl steps before every meta phase, as in training (the allocator's cache
// then holds the step's sizes, not the meta phase's).
const stepsBetween = Number(option('steps-between', 0));
const metaTimes = [];
for (let round = 0; round < metaRounds; round += 1) {
  for (let k = 0; k < stepsBetween; k += 1) timedStep(lmcl);
  metaTimes.push(timedMeta(lmcl));
  console.log(`  meta phase ${round + 1}: ${metaTimes.at(-1).toFixed(0)} ms`);
}
const [dmlMs, lmclMs, metaMs] = [median(dmlTimes), median(lmclTimes), median(metaTimes)];
const roundRatios = lmclTimes.map((ms, round) => ms / dmlTimes[round]);
console.log(`median DML step ${dmlMs.toFixed(1)} ms (${(batchSize / dmlMs * 1000).toFixed(1)} img/s), lmcl step ${lmclMs.toFixed(1)} ms: ` +
  `lmcl/DML ${(lmclMs / dmlMs).toFixed(3)} of the medians, ${median(roundRatios).toFixed(3)} median of the per-round ratios (target ≤ 1.15)`);
console.log(`median meta phase ${metaMs.toFixed(0)} ms = ${(metaMs / dmlMs).toFixed(1)} DML steps; amortised over --meta-freq ${metaFreq}: ` +
  `${(metaMs / metaFreq).toFixed(1)} ms/step = ${((100 * metaMs) / metaFreq / dmlMs).toFixed(1)}% of the DML step (target ≤ 10%)`);
console.log(`lmcl with meta phases / DML: ${((lmclMs + metaMs / metaFreq) / dmlMs).toFixed(3)}`);

if (args.includes('--profile')) {
  const timers = installNativeTimers(native());
  const totals = timers.totals;
  timers.recording = true;
  const phaseMs = timedMeta(lmcl);
  timers.recording = false;
  const nativeMs = [...totals.values()].reduce((a, e) => a + e.ms, 0);
  console.log(`\nprofile of one meta phase: ${phaseMs.toFixed(0)} ms, native ${nativeMs.toFixed(0)} ms, outside native ${(100 * (1 - nativeMs / phaseMs)).toFixed(1)}%`);
  console.log('| native function | calls | ms | share |\n|---|---|---|---|');
  for (const [key, entry] of [...totals].sort((a, b) => b[1].ms - a[1].ms).slice(0, 15)) {
    console.log(`| ${key} | ${entry.calls} | ${entry.ms.toFixed(1)} | ${((100 * entry.ms) / phaseMs).toFixed(1)}% |`);
  }
}
