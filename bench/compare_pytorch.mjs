// Dev-only: lmcl against PyTorch on the CPU-speed issue's three training steps, from one
// interleaved run, with the lmcl/PyTorch ratios printed (bench/RESULTS.md records them).
//
//   npm run build && node bench/compare_pytorch.mjs [--threads 2] [--rounds 3] [--steps 5]
//        [--rows resnet32,mcl,lmcl] [--json out.json]
//
// Rows (batch 128, 3×32×32, 100 classes, forward + backward + SGD, medians of --steps steps after
// the scripts' own warm-up):
//   resnet32  one ResNet-32:                      bench/resnet32_step.bench.mjs  vs bench/pytorch_resnet32_step.py
//   mcl       two ResNet-32, Embed heads, VCL/ICL and the soft terms (the trainer's own step,
//             `lmcl profile --method mcl`, JSON stepMs: the mean of the profiled steps)
//                                                 bin/lmcl.js profile             vs bench/pytorch_mcl_step.py
//   lmcl      the same cohort with L-MCL's auxiliary branches, 6 Embed heads, φ, the aggregators
//             and logit KD, no meta phase on either side (methods_step's "lmcl step")
//                                                 bench/methods_step.bench.mjs    vs bench/pytorch_lmcl_step.py
// PyTorch: Debian's python3-torch (/usr/bin/python3), the same thread count, NCHW and channels_last
// in the same process; tcmalloc preloaded when libgoogle-perftools4 is installed, OPENBLAS_CORETYPE
// and OPENBLAS_L2_SIZE unset (docs/architecture.md: a fair peer). Each round runs, per row, lmcl then
// PyTorch, so a slow phase of the VM hits both sides of a row; the FMA peak is measured at the start
// of every round (the machine's state). Ratio = PyTorch's best layout ms / lmcl ms (lmcl images/s ÷
// PyTorch's; > 1: lmcl is faster); the summary is the median of the per-round ratios. Peak RSS is
// each whole process's (/usr/bin/time), where available: methods_step's process also holds the DML
// cohort it times beside, and PyTorch's ran both layouts.
// Nothing here is asserted: these VMs are noisy, read the rounds.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? args[index + 1] : fallback;
};
const threads = Number(option('threads', '2'));
const rounds = Number(option('rounds', '3'));
const steps = Number(option('steps', '5'));
const rowNames = option('rows', 'resnet32,mcl,lmcl').split(',');
const jsonPath = option('json', null);
const python = '/usr/bin/python3';
const known = ['resnet32', 'mcl', 'lmcl'];
for (const name of rowNames) if (!known.includes(name)) throw new Error(`--rows: unknown row '${name}' (known: ${known.join(', ')})`);
if (!Number.isInteger(threads) || threads < 1 || !Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(steps) || steps < 2) {
  throw new Error('--threads and --rounds must be integers >= 1, --steps an integer >= 2');
}
if (!existsSync(`${root}dist/src/index.js`)) throw new Error('dist/ is missing: run npm run build first');
if (!existsSync(python)) throw new Error(`${python} not found: apt-get install python3-torch (the PyTorch peer)`);

const tcmalloc = ['/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4', '/usr/lib/libtcmalloc.so.4'].find((path) => existsSync(path)) ?? null;
const timeBinary = existsSync('/usr/bin/time') ? '/usr/bin/time' : null;
const torchEnv = { ...process.env, ...(tcmalloc ? { LD_PRELOAD: tcmalloc } : {}) };
delete torchEnv.OPENBLAS_CORETYPE;
delete torchEnv.OPENBLAS_L2_SIZE;

const t = String(threads);
const s = String(steps);
const rows = {
  resnet32: {
    lmcl: { command: process.execPath, args: ['bench/resnet32_step.bench.mjs', '--threads', t, '--steps', s], parse: (out) => match(out, /^median ([\d.]+) ms\/step/m) },
    torch: ['bench/pytorch_resnet32_step.py', '--threads', t, '--steps', s],
  },
  mcl: {
    lmcl: { command: process.execPath, args: ['bin/lmcl.js', 'profile', '--arch', 'resnet32', '--method', 'mcl', '--steps', s, '--threads', t, '--json'], parse: (out) => JSON.parse(out).stepMs },
    torch: ['bench/pytorch_mcl_step.py', '--threads', t, '--steps', s],
  },
  lmcl: {
    lmcl: { command: process.execPath, args: ['bench/methods_step.bench.mjs', '--threads', t, '--rounds', s, '--meta-rounds', '0'], parse: (out) => match(out, /lmcl step ([\d.]+) ms/) },
    torch: ['bench/pytorch_lmcl_step.py', '--threads', t, '--steps', s],
  },
};

function match(text, pattern) {
  const found = pattern.exec(text);
  return found ? Number(found[1]) : Number.NaN;
}

/** Runs a command (under /usr/bin/time when there is one): stdout and the peak RSS in MiB. */
function runTimed(command, commandArgs, env) {
  const [binary, list] = timeBinary ? [timeBinary, ['-f', 'peak-rss-kib %M', command, ...commandArgs]] : [command, commandArgs];
  const result = spawnSync(binary, list, { cwd: root, env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (result.status !== 0) {
    throw new Error(`${command} ${commandArgs.join(' ')} exited with ${result.status}:\n${(result.stderr ?? '').slice(-2000)}`);
  }
  const rss = /peak-rss-kib (\d+)/.exec(result.stderr ?? '');
  return { stdout: result.stdout, rssMiB: rss ? Number(rss[1]) / 1024 : null };
}

function measurePeak() {
  const code = `import('./dist/src/index.js').then((l) => console.log(l.profiler.measureFmaPeak({ threads: ${threads} }).gflops))`;
  const result = spawnSync(process.execPath, ['-e', code], { cwd: root, encoding: 'utf8' });
  return Number(result.stdout.trim());
}

const median = (values) => {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const fixed = (value, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : '—');

const model = (/^model name\s*:\s*(.*)$/m.exec(existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '') ?? [])[1] ?? 'unknown CPU';
console.log(`lmcl vs PyTorch, ${new Date().toISOString()}, ${model}, ${threads} thread(s), ${rounds} round(s) × ${steps} steps; ` +
  `PyTorch with ${tcmalloc ? 'tcmalloc' : 'the system allocator (libgoogle-perftools4 not installed)'}`);
const results = [];
for (let round = 1; round <= rounds; round += 1) {
  const peak = measurePeak();
  for (const name of rowNames) {
    const row = rows[name];
    const ours = runTimed(row.lmcl.command, row.lmcl.args, process.env);
    const lmclMs = row.lmcl.parse(ours.stdout);
    const theirs = runTimed(python, row.torch, torchEnv);
    const torchNchw = match(theirs.stdout, /^torch (?:mcl |lmcl )?(?:nchw|NCHW)\S*: median ([\d.]+) ms\/step/m);
    const torchCl = match(theirs.stdout, /^torch (?:mcl |lmcl )?(?:channels_last|cl)\S*: median ([\d.]+) ms\/step/m);
    const best = Math.min(...[torchNchw, torchCl].filter((v) => Number.isFinite(v)));
    const ratio = best / lmclMs;
    results.push({ round, row: name, peakGflops: peak, lmclMs, torchNchwMs: torchNchw, torchChannelsLastMs: torchCl, ratio, lmclRssMiB: ours.rssMiB, torchRssMiB: theirs.rssMiB });
    console.log(`round ${round} (FMA peak ${fixed(peak, 0)} GFLOP/s) ${name.padEnd(8)} lmcl ${fixed(lmclMs)} ms | torch NCHW ${fixed(torchNchw)} ms, channels_last ${fixed(torchCl)} ms | ` +
      `ratio ${fixed(ratio, 2)} | peak RSS lmcl ${fixed(ours.rssMiB, 0)} MiB, torch ${fixed(theirs.rssMiB, 0)} MiB`);
  }
}
console.log('\n| row | lmcl ms/step | PyTorch NCHW | PyTorch channels_last | lmcl images/s ÷ PyTorch best layout (median of rounds) | per round |');
console.log('|---|---|---|---|---|---|');
for (const name of rowNames) {
  const mine = results.filter((r) => r.row === name);
  console.log(`| ${name} | ${fixed(median(mine.map((r) => r.lmclMs)))} | ${fixed(median(mine.map((r) => r.torchNchwMs)))} | ` +
    `${fixed(median(mine.map((r) => r.torchChannelsLastMs)))} | ${fixed(median(mine.map((r) => r.ratio)), 2)} | ${mine.map((r) => fixed(r.ratio, 2)).join(', ')} |`);
}
if (jsonPath) writeFileSync(jsonPath, `${JSON.stringify({ model, threads, rounds, steps, tcmalloc: tcmalloc !== null, results }, null, 2)}\n`);
