// The reproduction row of the evidence table (issue "Evidence: does MCL / L-MCL beat independent
// training?"): Fashion-MNIST, a class-balanced 5k subset (the first 500 training images of each
// class), the full 10k test split, ResNet-8 (CIFAR style, 1-channel stem), batch 128, SGD 0.1
// Nesterov 0.9, wd 5e-4, cosine, crop pad 2 + flip, 30 epochs, cohorts of 2, seeds 0, 1, 2.
//
//   npm run build && node experiments/fashion5k.mjs run [--methods baseline,dml,mcl,lmcl] [--seeds 0,1,2]
//   node experiments/fashion5k.mjs report      # → experiments/results/fashion5k.md and .svg
//
// Needs the full Fashion-MNIST: `apt-get install dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).
// Runs:
//   baseline — independent training with independent data orders: two single-network runs per
//              seed s (--seed s and --seed 100 + s), each its own init and shuffle;
//   dml      — the DML cohort, shuffled batches;
//   mcl      — final-layer MCL, two images per class per batch (the reference's sampler);
//   lmcl     — L-MCL with auxiliary heads and the meta step (meta phase every 50 batches).
// Resumable: every run has a fixed name under experiments/runs/ (git-ignored); a finished run
// (30 epochs in metrics.jsonl) is skipped, an interrupted one resumes from its last checkpoint
// (--resume; bit-exact). Each finished run's metrics.jsonl and config.json are copied to
// experiments/results/fashion5k/<run>/ (committed), which is all `report` reads.
// Chunks (2-core AMD EPYC Zen 5 VM, 2 threads, 2026-12-02): one cohort run ≈ 3–5 min (lmcl ≈ 2×),
// a baseline single-network run ≈ 1.5–2 min; `run --methods baseline,dml,mcl` ≈ 45 min, lmcl's
// three seeds ≈ 30 min — each chunk well under two hours.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const runsDir = path.join(here, 'runs', 'fashion5k');
const resultsDir = path.join(here, 'results', 'fashion5k');
const EPOCHS = 30;

const args = process.argv.slice(2);
const command = args[0] ?? 'run';
const option = (name, fallback) => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? args[index + 1] : fallback;
};
const methods = option('methods', 'baseline,dml,mcl,lmcl').split(',');
const seeds = option('seeds', '0,1,2').split(',').map(Number);

const common = {
  dataset: 'fashion-mnist', arch: 'resnet8', trainPerClass: 500, limitTest: 0, epochs: EPOCHS, batchSize: 128, evalBatchSize: 500,
  lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4, lrType: 'cosine', threads: 2, workers: 1, keepLast: 1, logInterval: 60,
};

/** Every run of the table: name → config. */
function plannedRuns() {
  const runs = [];
  for (const seed of seeds) {
    for (const method of methods) {
      if (method === 'baseline') {
        for (const member of [0, 1]) {
          const runSeed = member === 0 ? seed : 100 + seed;
          runs.push({ name: `baseline_seed${seed}_member${member}`, method, seed, member, config: { ...common, method, numberNet: 1, seed: runSeed, sampler: 'shuffle' } });
        }
      } else {
        const extra = method === 'dml' ? { sampler: 'shuffle' } : method === 'mcl' ? { sampler: 'm-per-class' } : { sampler: 'm-per-class', auxiliary: true };
        runs.push({ name: `${method}_seed${seed}`, method, seed, member: null, config: { ...common, method, numberNet: 2, seed, ...extra } });
      }
    }
  }
  return runs;
}

function readEpochs(dir) {
  const file = path.join(dir, 'metrics.jsonl');
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line));
}

async function run() {
  if (!fs.existsSync('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz')) {
    throw new Error('the full Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist');
  }
  const { train } = await import('../dist/src/train/trainer.js');
  fs.mkdirSync(runsDir, { recursive: true });
  for (const planned of plannedRuns()) {
    const dir = path.join(runsDir, planned.name);
    const kept = path.join(resultsDir, planned.name);
    if (readEpochs(kept).length >= EPOCHS) {
      console.log(`${planned.name}: done (results kept)`);
      continue;
    }
    const started = Date.now();
    const resume = fs.existsSync(path.join(dir, 'checkpoints')) ? dir : null;
    console.log(`${planned.name}: ${resume ? 'resuming' : 'starting'} (${new Date().toISOString()})`);
    const result = await train({ config: { ...planned.config, out: runsDir, name: planned.name, resume }, console: (line) => console.log(`  ${line}`) });
    for (const net of result.networks) net.dispose();
    result.method.dispose();
    if (result.status !== 'completed') throw new Error(`${planned.name}: ${result.status} (${result.message})`);
    fs.mkdirSync(kept, { recursive: true });
    for (const file of ['metrics.jsonl', 'config.json', 'summary.csv']) fs.copyFileSync(path.join(result.runDir, file), path.join(kept, file));
    console.log(`${planned.name}: finished in ${((Date.now() - started) / 60000).toFixed(1)} min`);
  }
}

const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length;
const std = (values) => (values.length < 2 ? 0 : Math.sqrt(values.reduce((a, v) => a + (v - mean(values)) ** 2, 0) / (values.length - 1)));
const format = (values) => (values.length === 0 ? '—' : `${mean(values).toFixed(2)} ± ${std(values).toFixed(2)}`);

async function report() {
  const { plotRunsSvg } = await import('../dist/src/io/plot.js');
  const finals = new Map(); // method → { nets: number[], ensembles: number[], perSeed: Map<seed, mean of its nets>, curves: Map<seed, number[]> , seconds }
  const missing = [];
  for (const planned of plannedRuns()) {
    const epochs = readEpochs(path.join(resultsDir, planned.name));
    if (epochs.length < EPOCHS) {
      missing.push(planned.name);
      continue;
    }
    const entry = finals.get(planned.method) ?? { nets: [], ensembles: [], perSeed: new Map(), curves: new Map(), seconds: 0 };
    finals.set(planned.method, entry);
    const last = epochs[EPOCHS - 1];
    const nets = last.test.networks.map((head) => head.top1);
    entry.nets.push(...nets);
    if (planned.member === null) entry.ensembles.push(last.test.ensemble.top1);
    const seedNets = entry.perSeed.get(planned.seed) ?? [];
    seedNets.push(...nets);
    entry.perSeed.set(planned.seed, seedNets);
    const curve = epochs.map((record) => mean(record.test.networks.map((head) => head.top1)));
    const curves = entry.curves.get(planned.seed) ?? [];
    curves.push(curve);
    entry.curves.set(planned.seed, curves);
    entry.seconds += last.elapsedSeconds;
  }
  const order = methods.filter((method) => finals.has(method));
  const lines = [
    '| method | networks (final head, last epoch) | ensemble (mean softmax) | paired difference to baseline (per seed) | CPU time |',
    '|---|---|---|---|---|',
  ];
  const baseline = finals.get('baseline');
  for (const method of order) {
    const entry = finals.get(method);
    let paired = '—';
    if (baseline && method !== 'baseline') {
      const differences = [...entry.perSeed].filter(([seed]) => baseline.perSeed.has(seed))
        .map(([seed, nets]) => mean(nets) - mean(baseline.perSeed.get(seed)));
      paired = `${differences.map((d) => (d >= 0 ? '+' : '') + d.toFixed(2)).join(', ')} (mean ${(mean(differences) >= 0 ? '+' : '') + mean(differences).toFixed(2)})`;
    }
    lines.push(`| ${method} | ${format(entry.nets)} (n = ${entry.nets.length}) | ${method === 'baseline' ? '— (independent runs)' : format(entry.ensembles)} | ${paired} | ${(entry.seconds / 3600).toFixed(2)} h on 2 cores |`);
  }
  const markdown = [
    '# Fashion-MNIST 5k (500/class), ResNet-8, 30 epochs — test top-1 (%) on the 10k test images',
    '',
    `Seeds ${seeds.join(', ')}; mean ± std over every network of every seed (baseline: two independent single-network runs per seed).`,
    'Generated by `node experiments/fashion5k.mjs report` from experiments/results/fashion5k/*/metrics.jsonl.',
    '',
    ...lines,
    '',
    missing.length > 0 ? `Not yet run: ${missing.join(', ')}.` : 'All planned runs are in.',
    '',
  ].join('\n');
  fs.mkdirSync(path.join(here, 'results'), { recursive: true });
  fs.writeFileSync(path.join(here, 'results', 'fashion5k.md'), markdown);
  // Mean over seeds of the per-epoch network mean, with ± one std as dashed lines.
  const plotRuns = order.map((method) => {
    const perSeed = [...finals.get(method).curves.values()].map((curves) => curves[0].map((_, e) => mean(curves.map((c) => c[e]))));
    const rows = perSeed[0].map((_, e) => {
      const values = perSeed.map((curve) => curve[e]);
      return { epoch: e + 1, mean: mean(values), 'mean - std': mean(values) - std(values), 'mean + std': mean(values) + std(values) };
    });
    return { label: method, rows };
  });
  if (plotRuns.length > 0) {
    fs.writeFileSync(path.join(here, 'results', 'fashion5k.svg'),
      plotRunsSvg(plotRuns, { x: 'epoch', ys: ['mean', 'mean - std', 'mean + std'], title: 'Fashion-MNIST 5k, ResNet-8: test top-1 per epoch (mean of networks, mean ± std over seeds)' }));
  }
  console.log(markdown);
}

if (command === 'run') await run();
else if (command === 'report') await report();
else throw new Error(`unknown command '${command}' (run | report)`);
