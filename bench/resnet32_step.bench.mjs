// One CIFAR ResNet-32 training step, end to end through the engine (nn → ops → autograd → native).
//
//   npx tsc -p tsconfig.json && node bench/resnet32_step.bench.mjs [--threads 2] [--steps 15] [--batch 128] [--profile]
//
// Network (He et al. 2016, CIFAR variant): conv3×3(3→16)+BN+ReLU; 3 stages × 5 BasicBlocks of
// widths 16/32/64 with strides 1/2/2; each block conv3×3-BN-ReLU-conv3×3-BN plus a shortcut
// (identity, or 1×1 conv stride 2 + BN when the shape changes), ReLU after the add; global
// average pool; Linear(64→100). 0.47 M parameters.
// Step: forward in train mode + F.crossEntropy + zeroGrad + backward + SGD (lr 0.1, momentum 0.9,
// Nesterov, weight decay 5e-4), inside tidy, on one fixed batch of random 3×32×32 inputs with
// random labels in [0, 100). 3 warm-up steps, then the median (and min/max) over --steps steps.
// The same network and step in PyTorch: bench/pytorch_resnet32_step.py.
//
// --profile: after the timed steps, runs --profile-steps more steps with every function of the
// native addon wrapped in a wall-clock timer (the addon object is a plain object; the wrappers
// live in this process only). Prints time per native function (binary/unary split by op code,
// conv2d split by shape), the share of the step spent outside native calls (JS: checks, autograd
// graph, tensor bookkeeping, GC), and GC time seen by a PerformanceObserver. The timer adds two
// hrtime calls per native call (~0.1 µs each): the profiled step is slightly slower than the
// timed steps above.
import { F, nn, optim, randn, tidy, manualSeed, memory, setNumThreads, engineInfo, Generator } from '../dist/src/index.js';
import { native } from '../dist/src/native/index.js';
import { PerformanceObserver } from 'node:perf_hooks';
import { addTiming, installNativeTimers } from './native_timers.mjs';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? Number(args[index + 1]) : fallback;
};
const flag = (name) => args.includes(`--${name}`);
const threads = option('threads', 2);
const steps = option('steps', 15);
const warmup = option('warmup', 3);
const batch = option('batch', 128);
const profile = flag('profile') || process.env.LMCL_BENCH_PROFILE === '1';
const profileSteps = option('profile-steps', 5);
const classes = 100;
setNumThreads(threads);

// ---- the network ------------------------------------------------------------------------------

class BasicBlock extends nn.Module {
  constructor(inPlanes, planes, stride) {
    super();
    this.conv1 = this.registerModule('conv1', new nn.Conv2d(inPlanes, planes, 3, { stride, padding: 1, bias: false }));
    this.bn1 = this.registerModule('bn1', new nn.BatchNorm2d(planes));
    this.conv2 = this.registerModule('conv2', new nn.Conv2d(planes, planes, 3, { stride: 1, padding: 1, bias: false }));
    this.bn2 = this.registerModule('bn2', new nn.BatchNorm2d(planes));
    this.shortcut = this.registerModule(
      'shortcut',
      stride !== 1 || inPlanes !== planes
        ? new nn.Sequential(new nn.Conv2d(inPlanes, planes, 1, { stride, bias: false }), new nn.BatchNorm2d(planes))
        : null,
    );
  }

  forward(x) {
    const out = F.relu(this.bn1.forward(this.conv1.forward(x)));
    const main = this.bn2.forward(this.conv2.forward(out));
    const skip = this.shortcut ? this.shortcut.forward(x) : x;
    return F.relu(F.add(main, skip));
  }
}

class CifarResNet extends nn.Module {
  constructor(blocksPerStage, numClasses) {
    super();
    this.conv1 = this.registerModule('conv1', new nn.Conv2d(3, 16, 3, { padding: 1, bias: false }));
    this.bn1 = this.registerModule('bn1', new nn.BatchNorm2d(16));
    let inPlanes = 16;
    const stage = (planes, stride) => {
      const blocks = [];
      for (let i = 0; i < blocksPerStage; i += 1) {
        blocks.push(new BasicBlock(inPlanes, planes, i === 0 ? stride : 1));
        inPlanes = planes;
      }
      return new nn.Sequential(...blocks);
    };
    this.layer1 = this.registerModule('layer1', stage(16, 1));
    this.layer2 = this.registerModule('layer2', stage(32, 2));
    this.layer3 = this.registerModule('layer3', stage(64, 2));
    this.pool = this.registerModule('pool', new nn.AdaptiveAvgPool2d([1, 1]));
    this.flatten = this.registerModule('flatten', new nn.Flatten());
    this.fc = this.registerModule('fc', new nn.Linear(64, numClasses));
  }

  forward(x) {
    let out = F.relu(this.bn1.forward(this.conv1.forward(x)));
    out = this.layer3.forward(this.layer2.forward(this.layer1.forward(out)));
    return this.fc.forward(this.flatten.forward(this.pool.forward(out)));
  }
}

// ---- set-up -----------------------------------------------------------------------------------

manualSeed(0);
const model = new CifarResNet(5, classes);
model.train();
const parameterCount = model.parameters().reduce((total, p) => total + p.size, 0);
const optimizer = new optim.SGD(model.parameters(), { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
const x = randn([batch, 3, 32, 32]);
const labelGenerator = new Generator(1);
const labels = Int32Array.from({ length: batch }, () => labelGenerator.integer(classes));

let lastLoss = NaN;
function trainStep() {
  tidy(() => {
    const loss = F.crossEntropy(model.forward(x), labels);
    optimizer.zeroGrad();
    loss.backward();
    optimizer.step();
    lastLoss = loss.item();
  });
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const info = engineInfo();
console.log(`lmcl ResNet-32 training step: batch ${batch}, ${threads} thread(s), simd ${info.simd}, ${parameterCount} parameters`);

const losses = [];
for (let i = 0; i < warmup; i += 1) {
  trainStep();
  losses.push(lastLoss);
}
const times = [];
for (let i = 0; i < steps; i += 1) {
  const start = process.hrtime.bigint();
  trainStep();
  times.push(Number(process.hrtime.bigint() - start) / 1e6);
  losses.push(lastLoss);
}
if (!losses.every(Number.isFinite)) throw new Error(`non-finite loss: ${losses.join(', ')}`);
const ms = median(times);
const mem = memory();
const usage = process.memoryUsage();
const MiB = (bytes) => (bytes / 2 ** 20).toFixed(1);
console.log(`median ${ms.toFixed(1)} ms/step (min ${Math.min(...times).toFixed(1)}, max ${Math.max(...times).toFixed(1)}, ${steps} steps after ${warmup} warm-up) = ${(batch / (ms / 1e3)).toFixed(0)} images/s`);
console.log(`all step times ms: ${times.map((t) => t.toFixed(1)).join(' ')}`);
console.log(`loss: first ${losses[0].toFixed(4)}, last ${losses[losses.length - 1].toFixed(4)} (fixed batch, so it falls)`);
console.log(`memory: native peak live ${MiB(mem.nativePeakLiveBytes)} MiB, native cached ${MiB(mem.nativeCachedBytes)} MiB, ` +
  `live tensors after step ${mem.liveTensors} (${MiB(mem.liveBytes)} MiB), RSS ${MiB(usage.rss)} MiB (peak ${MiB(process.resourceUsage().maxRSS * 1024)} MiB)`);

// ---- profile ----------------------------------------------------------------------------------

if (profile) {
  const convShapes = new Map();
  const timers = installNativeTimers(native(), (name, callArgs, elapsed) => {
    if (!name.startsWith('conv2d')) return;
    const p = callArgs[callArgs.length - 1];
    addTiming(convShapes, `${name} ${p[1]}->${p[4]} ${p[2]}x${p[3]} ${p[5]}x${p[6]}${p[7] > 1 ? ` s${p[7]}` : ''}`, elapsed);
  });
  const totals = timers.totals; // key → { ms, calls }
  let gcMs = 0;
  const observer = new PerformanceObserver((list) => {
    if (timers.recording) for (const entry of list.getEntries()) gcMs += entry.duration;
  });
  observer.observe({ entryTypes: ['gc'] });

  trainStep(); // one untimed step through the wrappers
  const stepTimes = [];
  timers.recording = true;
  for (let i = 0; i < profileSteps; i += 1) {
    const start = process.hrtime.bigint();
    trainStep();
    stepTimes.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  timers.recording = false;
  await new Promise((resolve) => setTimeout(resolve, 50)); // let the GC observer deliver
  observer.disconnect();

  const per = (value) => value / profileSteps;
  const stepMs = per(stepTimes.reduce((a, b) => a + b, 0));
  const rows = [...totals.entries()].sort((a, b) => b[1].ms - a[1].ms);
  const nativeMs = per(rows.reduce((total, [, entry]) => total + entry.ms, 0));
  console.log(`\nprofile: mean of ${profileSteps} steps, ${stepMs.toFixed(1)} ms/step with timers ` +
    `(median step ${median(stepTimes).toFixed(1)} ms)`);
  console.log('| native function | calls/step | ms/step | share of step |');
  console.log('|---|---|---|---|');
  for (const [key, entry] of rows) {
    if (per(entry.ms) < 0.005) continue;
    console.log(`| ${key} | ${per(entry.calls)} | ${per(entry.ms).toFixed(2)} | ${((100 * entry.ms) / profileSteps / stepMs).toFixed(1)}% |`);
  }
  console.log(`| all native calls | ${per(rows.reduce((t, [, e]) => t + e.calls, 0))} | ${nativeMs.toFixed(2)} | ${((100 * nativeMs) / stepMs).toFixed(1)}% |`);
  console.log(`| outside native (JS, autograd, GC) | | ${(stepMs - nativeMs).toFixed(2)} | ${((100 * (stepMs - nativeMs)) / stepMs).toFixed(1)}% |`);
  console.log(`GC (PerformanceObserver, part of "outside native"): ${per(gcMs).toFixed(2)} ms/step`);

  const convRows = [...convShapes.entries()].sort((a, b) => b[1].ms - a[1].ms);
  console.log('\nconv2d by kernel and shape (Cin->Cout HxW kernel stride, batch ' + batch + '):');
  console.log('| kernel | shape | calls/step | ms/step | ms/call | GFLOP/s |');
  console.log('|---|---|---|---|---|---|');
  for (const [key, entry] of convRows) {
    const [kernel, ...rest] = key.split(' ');
    const shape = rest.join(' ');
    const m = /^(\d+)->(\d+) (\d+)x(\d+) (\d+)x(\d+)(?: s(\d+))?$/.exec(shape);
    let gflops = '';
    if (m && kernel !== 'conv2dBackwardBias') {
      const [cin, cout, h, w, kh, kw] = m.slice(1, 7).map(Number);
      const stride = Number(m[7] ?? 1);
      const pad = kh === 3 ? 1 : 0;
      const ho = Math.floor((h + 2 * pad - kh) / stride) + 1;
      const wo = Math.floor((w + 2 * pad - kw) / stride) + 1;
      const flop = 2 * batch * cout * ho * wo * cin * kh * kw;
      gflops = ((flop * entry.calls) / (entry.ms * 1e-3) / 1e9).toFixed(0);
    }
    console.log(`| ${kernel} | ${shape} | ${per(entry.calls)} | ${per(entry.ms).toFixed(2)} | ${(entry.ms / entry.calls).toFixed(3)} | ${gflops} |`);
  }
}
