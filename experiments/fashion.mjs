// The evidence tables (issue "Evidence: does MCL / L-MCL beat independent training?"): one table
// per regime, every regime on Fashion-MNIST (the full 10k test split), batch 128, SGD 0.1 Nesterov
// 0.9, wd 5e-4, cosine, crop pad 2 + flip, cohorts of 2, seeds 0, 1, 2.
//
//   npm run build && node experiments/fashion.mjs run --regime NAME [--methods baseline,dml,mcl,lmcl] [--seeds 0,1,2] [--threads 2]
//   node experiments/fashion.mjs report [--regime NAME]   # → experiments/results/<regime>.md and .svg (every regime without --regime)
//   node experiments/fashion.mjs ensemble --regime NAME   # the baseline's two-run ensembles (also at the end of `run`)
//
// Regimes (name: training subset, student, epochs, contrast):
//   fashion5k          — 500/class (5k), ResNet-8, 30 epochs, in-batch contrast (the reproduction row);
//   fashion2k-resnet20 — 200/class (2k), ResNet-20, 60 epochs, in-batch contrast (a bigger student
//                        that overfits a small subset over a longer schedule);
//   fashion60k-bank    — the full 60k, ResNet-8, 8 epochs; MCL and L-MCL contrast against the memory
//                        bank (--contrast bank, 8192 negatives, 1 positive besides the own row).
// Needs the full Fashion-MNIST: `apt-get install dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist).
// Runs per seed s:
//   baseline — independent training with independent data orders: two single-network runs
//              (--seed s and --seed 100 + s), each its own init and shuffle;
//   dml      — the DML cohort, shuffled batches;
//   mcl      — MCL (final layer), two images per class per batch (the reference's sampler);
//   lmcl     — L-MCL with auxiliary heads and the meta step (meta phase every 50 batches).
// Resumable: every run has a fixed name under experiments/runs/<regime>/ (git-ignored); a finished
// run (all epochs in metrics.jsonl) is skipped, an interrupted one resumes from its last checkpoint
// (--resume; bit-exact; with --save-every-steps 200 at most 200 steps are lost). Each finished run's
// metrics.jsonl, config.json and summary.csv are copied to experiments/results/<regime>/<run>/
// (committed), which is all `report` reads.
// Chunks (2-core AMD EPYC Zen 5 VM, 2026-12-02; one run at a time, every chunk well under two hours):
//   fashion5k, 2 threads: a cohort run ≈ 3–5 min (lmcl ≈ 10), a baseline single-network run ≈ 2 min;
//     `--methods baseline,dml,mcl` ≈ 45 min, lmcl's three seeds ≈ 30 min.
//   fashion2k-resnet20, 1 thread (measured 2026-12-02/03 on the Zen 3 and the Xeon VM, the other
//     core busy with development): a baseline single-network run 11–15 min, a DML or MCL cohort
//     run 23–26 min; L-MCL not yet measured (≈ 2.5× a cohort run by the fashion5k ratio, ≈ 1 h).
//     Chunks: `--methods baseline,dml,mcl --seeds S` ≈ 75 min per seed; `--methods lmcl --seeds S`
//     ≈ 1 h per seed.
//   fashion60k-bank, 1 thread (measured 2026-12-03 on the Xeon VM, the other core busy): a
//     baseline single-network run ≈ 15 min, an MCL cohort run 52 min, L-MCL ≈ 3–4 h (the first
//     epoch's ETA; it checkpoints every 200 steps, so it spans sessions by resuming). Run it one
//     `--methods M --seeds S` pair at a time. 2026-12-04, same VM with the other core idle: a DML
//     run 13.7 min on one thread; L-MCL on two threads ≈ 1.5–2 h (≈ 10–14 min per epoch, slower
//     while the machine builds or tests) — start it early in a session: its bank makes a
//     checkpoint ~60 MB, too large to carry across sessions in the repository.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

const args = process.argv.slice(2);
const command = args[0] ?? 'run';
const option = (name, fallback) => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? args[index + 1] : fallback;
};
const methods = option('methods', 'baseline,dml,mcl,lmcl').split(',');
const seeds = option('seeds', '0,1,2').split(',').map(Number);

/** name → the regime's own options (on top of `common`) and its title. */
const regimes = {
  fashion5k: {
    title: 'Fashion-MNIST 5k (500/class), ResNet-8, 30 epochs',
    options: { arch: 'resnet8', trainPerClass: 500, epochs: 30, evalEvery: 1 },
  },
  'fashion2k-resnet20': {
    title: 'Fashion-MNIST 2k (200/class), ResNet-20, 60 epochs',
    // Evaluating the 10k test images costs more than an epoch of 2k training images: every 5th epoch.
    options: { arch: 'resnet20', trainPerClass: 200, epochs: 60, evalEvery: 5 },
  },
  'fashion60k-bank': {
    title: 'Fashion-MNIST full 60k, ResNet-8, 8 epochs, MCL / L-MCL against the memory bank',
    options: { arch: 'resnet8', trainPerClass: 0, epochs: 8, evalEvery: 1 },
    contrastive: { contrast: 'bank', negK: 8192, posK: 1, nceM: 0.5 },
  },
};

const regimeName = option('regime', command === 'run' ? undefined : null);
if (command === 'run' && (regimeName === undefined || !(regimeName in regimes))) {
  throw new Error(`run needs --regime with one of: ${Object.keys(regimes).join(', ')}`);
}
if (regimeName !== null && regimeName !== undefined && !(regimeName in regimes)) {
  throw new Error(`unknown regime '${regimeName}' (${Object.keys(regimes).join(', ')})`);
}
const threads = Number(option('threads', '2'));

const common = {
  dataset: 'fashion-mnist', limitTest: 0, batchSize: 128, evalBatchSize: 500,
  lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4, lrType: 'cosine', threads, workers: 1, keepLast: 1, logInterval: 60, saveEverySteps: 200,
};
const runsDirOf = (regime) => path.join(here, 'runs', regime);
const resultsDirOf = (regime) => path.join(here, 'results', regime);

/** Every run of the table: name → config. */
function plannedRuns(regime) {
  const { options, contrastive = {} } = regimes[regime];
  const base = { ...common, ...options };
  const runs = [];
  for (const seed of seeds) {
    for (const method of methods) {
      if (method === 'baseline') {
        for (const member of [0, 1]) {
          const runSeed = member === 0 ? seed : 100 + seed;
          runs.push({ name: `baseline_seed${seed}_member${member}`, method, seed, member, config: { ...base, method, numberNet: 1, seed: runSeed, sampler: 'shuffle' } });
        }
      } else {
        const extra = method === 'dml' ? { sampler: 'shuffle' } : method === 'mcl' ? { sampler: 'm-per-class', ...contrastive } : { sampler: 'm-per-class', auxiliary: true, ...contrastive };
        runs.push({ name: `${method}_seed${seed}`, method, seed, member: null, config: { ...base, method, numberNet: 2, seed, ...extra } });
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

async function run(regime) {
  const runsDir = runsDirOf(regime);
  const resultsDir = resultsDirOf(regime);
  const epochCount = regimes[regime].options.epochs;
  if (!fs.existsSync('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz')) {
    throw new Error('the full Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist');
  }
  const { train } = await import('../dist/src/train/trainer.js');
  const { findResumeCheckpoint } = await import('../dist/src/train/checkpoint.js');
  fs.mkdirSync(runsDir, { recursive: true });
  for (const planned of plannedRuns(regime)) {
    const dir = path.join(runsDir, planned.name);
    const kept = path.join(resultsDir, planned.name);
    if (readEpochs(kept).length >= epochCount) {
      console.log(`${planned.name}: done (results kept)`);
      continue;
    }
    const started = Date.now();
    // A run killed before its first checkpoint leaves a folder with nothing to resume from: start it
    // over under the same name (the trainer would otherwise pick <name>_2).
    const resume = findResumeCheckpoint(dir) ? dir : null;
    if (!resume && fs.existsSync(dir)) fs.rmSync(dir, { recursive: true, force: true });
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

/**
 * The fair baseline for a cohort's ensemble: per seed, the mean-softmax ensemble of the two
 * independent single-network runs (their final checkpoints evaluated together on the same test
 * images, `lmcl eval A B`), written once to results/<regime>/baseline_seed<s>_ensemble.json.
 * Needs the runs' checkpoints (experiments/runs/, not committed); a seed whose runs are not both
 * finished is skipped.
 */
async function baselineEnsembles(regime) {
  const { evaluateCheckpoint } = await import('../dist/src/train/evaluate.js');
  const epochCount = regimes[regime].options.epochs;
  for (const seed of seeds) {
    const file = path.join(resultsDirOf(regime), `baseline_seed${seed}_ensemble.json`);
    if (fs.existsSync(file)) continue;
    const members = [0, 1].map((member) => `baseline_seed${seed}_member${member}`);
    if (!members.every((name) => readEpochs(path.join(resultsDirOf(regime), name)).length >= epochCount)) continue;
    const dirs = members.map((name) => path.join(runsDirOf(regime), name));
    if (!dirs.every((dir) => fs.existsSync(path.join(dir, 'checkpoints')))) {
      console.log(`baseline seed ${seed}: ensemble not computed (the runs' checkpoints are not on this machine)`);
      continue;
    }
    const { result, checkpoints } = await evaluateCheckpoint(dirs);
    if (!checkpoints.every((checkpoint) => path.basename(checkpoint).startsWith(`checkpoint-e${String(epochCount).padStart(4, '0')}`))) {
      throw new Error(`baseline seed ${seed}: the latest checkpoints are not the final epoch's: ${checkpoints.join(', ')}`);
    }
    // The runs on this machine may be reruns of the committed ones (same config, another CPU: the
    // SIMD level changes the rounding, so the networks differ a little): say so in the record.
    const committed = members.map((name) => readEpochs(path.join(resultsDirOf(regime), name))[epochCount - 1].test.networks[0].top1);
    const rerun = committed.some((top1, index) => top1 !== result.networks[index].top1);
    const record = {
      seed, ensemble: result.ensemble, networks: result.networks, count: result.count, checkpoints: checkpoints.map((c) => path.relative(here, c)),
      ...(rerun ? { rerun: true, committedNetworksTop1: committed } : {}),
    };
    fs.writeFileSync(file, `${JSON.stringify(record, null, 1)}\n`);
    console.log(`baseline seed ${seed}: ensemble of the two independent runs ${result.ensemble.top1.toFixed(2)}% (networks ${result.networks.map((n) => n.top1.toFixed(2)).join(', ')}` +
      `${rerun ? `; reruns of the committed runs, which ended at ${committed.map((v) => v.toFixed(2)).join(', ')}` : ''})`);
  }
}

const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length;
const std = (values) => (values.length < 2 ? 0 : Math.sqrt(values.reduce((a, v) => a + (v - mean(values)) ** 2, 0) / (values.length - 1)));
const format = (values) => (values.length === 0 ? '—' : `${mean(values).toFixed(2)} ± ${std(values).toFixed(2)}`);

async function report(regime) {
  const { plotRunsSvg } = await import('../dist/src/io/plot.js');
  const resultsDir = resultsDirOf(regime);
  const EPOCHS = regimes[regime].options.epochs;
  const finals = new Map(); // method → { nets: number[], ensembles: number[], perSeed: Map<seed, mean of its nets>, curves: Map<seed, number[]> , seconds }
  const missing = [];
  for (const planned of plannedRuns(regime)) {
    const epochs = readEpochs(path.join(resultsDir, planned.name));
    if (epochs.length < EPOCHS) {
      missing.push(planned.name);
      continue;
    }
    const entry = finals.get(planned.method) ?? { nets: [], ensembles: [], perSeed: new Map(), curves: new Map(), coreSeconds: 0 };
    finals.set(planned.method, entry);
    const last = epochs[EPOCHS - 1];
    const nets = last.test.networks.map((head) => head.top1);
    entry.nets.push(...nets);
    if (planned.member === null) entry.ensembles.push(last.test.ensemble.top1);
    const seedNets = entry.perSeed.get(planned.seed) ?? [];
    seedNets.push(...nets);
    entry.perSeed.set(planned.seed, seedNets);
    // Epochs that --eval-every skipped have no test record: null, left out of the curve.
    const curve = epochs.map((record) => (record.test ? mean(record.test.networks.map((head) => head.top1)) : null));
    const curves = entry.curves.get(planned.seed) ?? [];
    curves.push(curve);
    entry.curves.set(planned.seed, curves);
    // CPU time: wall seconds × the native threads the run used (recorded in its config.json).
    const recorded = JSON.parse(fs.readFileSync(path.join(resultsDir, planned.name, 'config.json'), 'utf8'));
    entry.coreSeconds += last.elapsedSeconds * ((recorded.config ?? recorded).threads || 2);
  }
  const order = methods.filter((method) => finals.has(method));
  const lines = [
    '| method | networks (final head, last epoch) | ensemble (mean softmax) | paired difference to baseline (per seed) | CPU-hours |',
    '|---|---|---|---|---|',
  ];
  const baseline = finals.get('baseline');
  const baselineEnsembleRecords = seeds.map((seed) => path.join(resultsDir, `baseline_seed${seed}_ensemble.json`))
    .filter((file) => fs.existsSync(file)).map((file) => JSON.parse(fs.readFileSync(file, 'utf8')));
  const baselineEnsembleValues = baselineEnsembleRecords.map((record) => record.ensemble.top1);
  const rerunNotes = baselineEnsembleRecords.filter((record) => record.rerun).map((record) =>
    `seed ${record.seed}'s baseline ensemble is of reruns of its two runs (same configs, another CPU: networks ${record.networks.map((n) => n.top1.toFixed(2)).join(' / ')} ` +
    `against the committed ${record.committedNetworksTop1.map((v) => v.toFixed(2)).join(' / ')}), the originals' checkpoints being gone.`);
  for (const method of order) {
    const entry = finals.get(method);
    let paired = '—';
    if (baseline && method !== 'baseline') {
      const differences = [...entry.perSeed].filter(([seed]) => baseline.perSeed.has(seed))
        .map(([seed, nets]) => mean(nets) - mean(baseline.perSeed.get(seed)));
      paired = `${differences.map((d) => (d >= 0 ? '+' : '') + d.toFixed(2)).join(', ')} (mean ${(mean(differences) >= 0 ? '+' : '') + mean(differences).toFixed(2)})`;
    }
    const ensembleCell = method !== 'baseline' ? format(entry.ensembles)
      : baselineEnsembleValues.length > 0 ? `${format(baselineEnsembleValues)} (the two independent runs, n = ${baselineEnsembleValues.length})` : '— (independent runs)';
    lines.push(`| ${method} | ${format(entry.nets)} (n = ${entry.nets.length}) | ${ensembleCell} | ${paired} | ${(entry.coreSeconds / 3600).toFixed(2)} |`);
  }
  const markdown = [
    `# ${regimes[regime].title} — test top-1 (%) on the 10k test images`,
    '',
    `Seeds ${seeds.join(', ')}; mean ± std over every network of every seed (baseline: two independent single-network runs per seed;`,
    'its ensemble: the mean softmax of those two runs\' final networks, the same rule as a cohort\'s ensemble).',
    `Generated by \`node experiments/fashion.mjs report --regime ${regime}\` from experiments/results/${regime}/*/metrics.jsonl.`,
    'CPU-hours: wall time × native threads, summed over the method\'s runs.',
    '',
    ...lines,
    '',
    ...rerunNotes.map((note) => `Note: ${note}`),
    missing.length > 0 ? `Not yet run: ${missing.join(', ')}.` : 'All planned runs are in.',
    '',
  ].join('\n');
  fs.mkdirSync(path.join(here, 'results'), { recursive: true });
  fs.writeFileSync(path.join(here, 'results', `${regime}.md`), markdown);
  // Mean over seeds of the per-epoch network mean, with ± one std as dashed lines.
  const plotRuns = order.map((method) => {
    const perSeed = [...finals.get(method).curves.values()].map((curves) => curves[0].map((_, e) => (curves.some((c) => c[e] === null) ? null : mean(curves.map((c) => c[e])))));
    const rows = perSeed[0].map((_, e) => {
      const values = perSeed.map((curve) => curve[e]);
      if (values.some((value) => value === null || Number.isNaN(value))) return null;
      return { epoch: e + 1, mean: mean(values), 'mean - std': mean(values) - std(values), 'mean + std': mean(values) + std(values) };
    }).filter((row) => row !== null);
    return { label: method, rows };
  });
  if (plotRuns.length > 0) {
    fs.writeFileSync(path.join(here, 'results', `${regime}.svg`),
      plotRunsSvg(plotRuns, { x: 'epoch', ys: ['mean', 'mean - std', 'mean + std'], title: `${regimes[regime].title}: test top-1 per epoch (mean of networks, mean ± std over seeds)` }));
  }
  console.log(markdown);
}

if (command === 'run') {
  await run(regimeName);
  await baselineEnsembles(regimeName);
} else if (command === 'ensemble') await baselineEnsembles(regimeName);
else if (command === 'report') {
  for (const regime of regimeName ? [regimeName] : Object.keys(regimes)) {
    if (fs.existsSync(resultsDirOf(regime))) await report(regime);
  }
}
else throw new Error(`unknown command '${command}' (run | report)`);
