// Contrastive-kernel benchmark suite: lmcl's fused kernels vs the same formulas composed from
// lmcl's plain ops vs PyTorch's composition (bench/pytorch_contrastive.py, a worker process fed
// one request at a time), all interleaved in ONE run: every round times each variant once, in
// turn, and the tables quote medians over rounds and ratios. Sections:
//   ops     supConInfoNCE, contrastiveKL, distillKL for B ∈ {64 … 16384}, D ∈ {64, 128, 256}
//           (distillKL: D = classes), forward and forward+backward; time, GEMM-equivalent
//           GFLOP/s (the similarity GEMMs the loss needs: InfoNCE 2B²D forward, 6B²D with the
//           backward; contrastive KL twice that) against our own GEMM measured for the [B×B×D]
//           shape in the same run, and peak extra memory (allocator peak and peak RSS growth
//           beyond the inputs, their gradients and the output).
//   cohort  the L-MCL cohort terms (N = 2, S = 3 → 18 pairs × 4 terms, B = 128, D = 128, with
//           weights): cohortContrastive vs the 144 one-pair calls vs our composition vs PyTorch's
//           (four similarity GEMMs per pair, as the reference), and the floor: the distinct
//           similarity GEMMs (15 forward, 24 backward block products) at our GEMM rate.
//   memory  the memory bank at ImageNet sizes (B = 256, K = 8,194, D = 128, M = 100,000):
//           memoryLogits / memoryInfoNCE vs PyTorch's index_select + bmm; six queries sharing the
//           keys (L-MCL's stages against one bank) as six calls vs one [6, B, D] call.
//
//   npm run build && node bench/contrastive.bench.mjs [--sections ops,cohort,memory] [--quick]
//       [--sizes 64,128,...] [--dims 64,128,256] [--rounds N] [--threads 2] [--no-torch]
//       [--plot bench/plots] [--json out.json]
// PyTorch peer: Debian python3-torch with libopenblas0-openmp, tcmalloc preloaded
// (libgoogle-perftools4), OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset, OMP_WAIT_POLICY=PASSIVE, same
// thread count.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { F, grad, io, memory, noGrad, resetMemoryPeak, setNumThreads, tensor, tidy, engineInfo } from '../dist/src/index.js';
import { native } from '../dist/src/native/index.js';
import { infoNCEFromLogits, supConInfoNCEComposite } from '../dist/src/ops/infonce.js';
import { contrastiveKLComposite, distillKLComposite, klFromLogits } from '../dist/src/ops/contrastive_kl.js';

const args = process.argv.slice(2);
const option = (name, fallback) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : fallback; };
const flag = (name) => args.includes(`--${name}`);
const quick = flag('quick');
const sections = option('sections', 'ops,cohort,memory').split(',');
const sizes = option('sizes', quick ? '64,256,1024' : '64,128,256,1024,4096,16384').split(',').map(Number);
const dims = option('dims', quick ? '128' : '64,128,256').split(',').map(Number);
const threads = Number(option('threads', '2'));
const roundsOverride = option('rounds', null);
const plotDirectory = option('plot', null);
const jsonPath = option('json', null);
const useTorch = !flag('no-torch');
setNumThreads(threads);

const TEMPERATURE = 0.1;
const KL_TEMPERATURE = 3;
const MiB = 1024 * 1024;
const median = (values) => { const s = [...values].sort((a, b) => a - b); return s.length ? s[s.length >> 1] : Number.NaN; };
const now = () => Number(process.hrtime.bigint()) / 1e6;

// ---- the PyTorch worker ------------------------------------------------------------------------
async function startTorch() {
  if (!useTorch) return null;
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  // With the default (spinning) OpenMP wait policy, the OpenMP OpenBLAS and torch's own OpenMP
  // pool fight over the two cores: an InfoNCE at B = 128 took 1.6 ms median, 25 ms p90; passive:
  // 0.34 / 0.53 ms. PASSIVE is the peer at its best here.
  env.OMP_WAIT_POLICY = env.OMP_WAIT_POLICY ?? 'PASSIVE';
  const tcmalloc = ['/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4', '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4'].find(existsSync);
  if (tcmalloc) env.LD_PRELOAD = tcmalloc;
  const script = fileURLToPath(new URL('./pytorch_contrastive.py', import.meta.url));
  const child = spawn('/usr/bin/python3', [script, '--threads', String(threads)], { env, stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const waiting = [];
  lines.on('line', (line) => waiting.shift()?.(JSON.parse(line)));
  const next = () => new Promise((resolve) => waiting.push(resolve));
  child.on('error', () => waiting.splice(0).forEach((resolve) => resolve({ error: 'no /usr/bin/python3 with torch' })));
  child.on('exit', () => waiting.splice(0).forEach((resolve) => resolve({ error: 'PyTorch worker exited' })));
  const hello = await next();
  if (!hello.ready) {
    console.log(`PyTorch peer unavailable (${hello.error ?? 'no handshake'}); its columns are skipped`);
    return null;
  }
  console.log(`PyTorch peer: torch ${hello.torch}, ${hello.threads} threads, tcmalloc ${tcmalloc ? 'preloaded' : 'not found'}, OPENBLAS_CORETYPE unset, OMP_WAIT_POLICY=${env.OMP_WAIT_POLICY}`);
  return {
    async time(request) {
      child.stdin.write(`${JSON.stringify(request)}\n`);
      const reply = await next();
      if (reply.error) throw new Error(reply.error);
      return reply.ms;
    },
    stop() { child.stdin.end(`${JSON.stringify({ quit: true })}\n`); },
  };
}

// ---- inputs and measurement helpers ----------------------------------------------------------------
function unitRows(batch, dim, requiresGrad = true) {
  const values = new Float32Array(batch * dim);
  for (let u = 0; u < batch; u += 1) {
    let norm = 0;
    for (let k = 0; k < dim; k += 1) { const v = Math.random() * 2 - 1; values[u * dim + k] = v; norm += v * v; }
    for (let k = 0; k < dim; k += 1) values[u * dim + k] /= Math.sqrt(norm);
  }
  return tensor(values, [batch, dim], { requiresGrad });
}
function twoPerClass(batch) {
  const labels = Int32Array.from({ length: batch }, (_, index) => Math.floor(index / 2));
  for (let index = batch - 1; index > 0; index -= 1) {
    const other = Math.floor(Math.random() * (index + 1));
    [labels[index], labels[other]] = [labels[other], labels[index]];
  }
  return labels;
}

/** One timed call of an lmcl variant: forward (no graph) or forward + grad of the leaves. */
function timeLmcl(variant, mode) {
  const start = now();
  if (mode === 'forward') noGrad(() => tidy(() => { variant.loss(); }));
  else tidy(() => { grad(variant.loss(), variant.leaves); });
  return now() - start;
}

function readKib(field) {
  const match = readFileSync('/proc/self/status', 'utf8').match(new RegExp(`${field}:\\s+(\\d+) kB`));
  return match ? Number(match[1]) * 1024 : Number.NaN;
}

/** Peak extra memory of one call: allocator peak and peak RSS growth, minus gradients and output. */
function measureMemory(variant, mode) {
  native().emptyCache();
  const liveBefore = memory().nativeLiveBytes;
  const rssBefore = readKib('VmRSS');
  try { writeFileSync('/proc/self/clear_refs', '5'); } catch { /* not Linux: RSS peak unavailable */ }
  resetMemoryPeak();
  timeLmcl(variant, mode);
  const gradientBytes = mode === 'forward' ? 0 : variant.leaves.reduce((total, leaf) => total + leaf.size * 4, 0);
  const allocatorPeak = memory().nativePeakLiveBytes - liveBefore - gradientBytes;
  const rssPeak = readKib('VmHWM') - rssBefore - gradientBytes;
  native().emptyCache();
  return { allocatorPeak: Math.max(0, allocatorPeak), rssPeak: Math.max(0, rssPeak) };
}

/** Our GEMM's time for C[m×n] = A[m×k]·op(B) (median of a few runs). */
function gemmMs(m, n, k, transposeB) {
  const make = (count) => { const s = native().alloc('cpu', count * 4); native().upload(s, Float32Array.from({ length: count }, () => Math.random() - 0.5), 0); return s; };
  const a = make(m * k), b = make(k * n), c = make(m * n);
  const flops = 2 * m * n * k;
  const inner = Math.max(1, Math.round(5e7 / flops));
  const times = [];
  for (let round = 0; round < 7; round += 1) {
    const start = now();
    for (let i = 0; i < inner; i += 1) native().gemm(a, b, c, false, transposeB, m, n, k, 1, 0);
    times.push((now() - start) / inner);
  }
  for (const s of [a, b, c]) native().free(s);
  return median(times.slice(2));
}

function roundsFor(batch) {
  if (roundsOverride) return Number(roundsOverride);
  if (batch <= 256) return 9;
  if (batch <= 1024) return 5;
  if (batch <= 4096) return 3;
  return 2;
}
/** Calls per sample so that tiny cases are timed over ≥ ~20 ms. */
function innerFor(probeMs) { return Math.max(1, Math.min(200, Math.round(20 / Math.max(probeMs, 0.01)))); }

/** Times every variant of one case, interleaved round by round; returns medians (ms per call). */
async function timeInterleaved(variants, torchRequest, torch, mode, rounds) {
  const results = Object.fromEntries(variants.map((v) => [v.name, []]));
  if (torch && torchRequest) results.pytorch = [];
  const inner = Object.fromEntries(variants.map((v) => [v.name, v.skip ? 0 : innerFor(timeLmcl(v, mode))]));
  let torchInner = 1;
  if (torch && torchRequest) {
    try { torchInner = innerFor(median(await torch.time({ ...torchRequest, mode, reps: 2 }))); } catch (error) { results.pytorch = null; results.pytorchError = String(error.message); }
  }
  for (let round = 0; round < rounds; round += 1) {
    for (const variant of variants) {
      if (variant.skip) continue;
      let total = 0;
      for (let i = 0; i < inner[variant.name]; i += 1) total += timeLmcl(variant, mode);
      results[variant.name].push(total / inner[variant.name]);
    }
    if (torch && torchRequest && results.pytorch) {
      try { results.pytorch.push(median(await torch.time({ ...torchRequest, mode, reps: torchInner }))); } catch (error) { results.pytorch = null; results.pytorchError = String(error.message); }
    }
  }
  const medians = {};
  for (const [name, times] of Object.entries(results)) if (Array.isArray(times)) medians[name] = median(times);
  return { medians, pytorchError: results.pytorchError };
}

const fmt = (value, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : '—');
const report = { machine: {}, ops: [], cohort: null, memory: [] };

// ---- section: one-pair ops ------------------------------------------------------------------------
function opCase(op, batch, dim) {
  const labels = twoPerClass(batch);
  const compositeLimit = 4096 * 4096 * 16;  // our composition materialises ~10 B×B tensors: skip beyond 4096² → 1 GiB each
  if (op === 'supConInfoNCE') {
    const a = unitRows(batch, dim), c = unitRows(batch, dim);
    return {
      flops: { forward: 2 * batch * batch * dim, backward: 6 * batch * batch * dim },
      variants: [
        { name: 'fused', leaves: [a, c], loss: () => F.supConInfoNCE(a, c, labels, { temperature: TEMPERATURE }) },
        { name: 'composed', leaves: [a, c], skip: batch * batch * 4 > compositeLimit, loss: () => supConInfoNCEComposite(a, c, labels, { temperature: TEMPERATURE }) },
      ],
      torch: { case: 'supcon', batch, dim, temperature: TEMPERATURE },
    };
  }
  if (op === 'contrastiveKL') {
    const sa = unitRows(batch, dim), sc = unitRows(batch, dim), ta = unitRows(batch, dim, false), tc = unitRows(batch, dim, false);
    const options = { temperature: TEMPERATURE, klTemperature: KL_TEMPERATURE };
    return {
      flops: { forward: 4 * batch * batch * dim, backward: 8 * batch * batch * dim },
      variants: [
        { name: 'fused', leaves: [sa, sc], loss: () => F.contrastiveKL(sa, sc, ta, tc, options) },
        { name: 'composed', leaves: [sa, sc], skip: batch * batch * 4 > compositeLimit, loss: () => contrastiveKLComposite(sa, sc, ta, tc, options) },
      ],
      torch: { case: 'contrastive_kl', batch, dim, ...options },
    };
  }
  const student = tensor(Float32Array.from({ length: batch * dim }, () => (Math.random() - 0.5) * 6), [batch, dim], { requiresGrad: true });
  const teacher = tensor(Float32Array.from({ length: batch * dim }, () => (Math.random() - 0.5) * 6), [batch, dim]);
  return {
    flops: null,
    bytes: { forward: 2 * batch * dim * 4, backward: 4 * batch * dim * 4 },
    variants: [
      { name: 'fused', leaves: [student], loss: () => F.distillKL(student, teacher, { temperature: KL_TEMPERATURE }) },
      { name: 'composed', leaves: [student], loss: () => distillKLComposite(student, teacher, { temperature: KL_TEMPERATURE }) },
    ],
    torch: { case: 'distill_kl', batch, dim, temperature: KL_TEMPERATURE },
  };
}

async function opsSection(torch) {
  console.log('\n## One-pair ops (ms per call, medians; GF/s = GEMM-equivalent GFLOP/s; mem = peak extra MiB, allocator / RSS)');
  console.log('op            | B     | D   | mode | fused ms | composed ms | pytorch ms | composed/fused | pytorch/fused | fused GF/s | our GEMM GF/s | fused mem      | composed mem');
  for (const op of ['supConInfoNCE', 'contrastiveKL', 'distillKL']) {
    for (const batch of sizes) {
      for (const dim of dims) {
        if (batch >= 16384 && dim !== 128 && op !== 'distillKL') continue;  // the B = 16,384 point is the memory target at D = 128
        const made = opCase(op, batch, dim);
        const gemm = made.flops ? gemmMs(batch, batch, dim, true) : Number.NaN;
        const gemmRate = (2 * batch * batch * dim) / gemm / 1e6;
        for (const mode of ['forward', 'backward']) {
          const memories = Object.fromEntries(made.variants.filter((v) => !v.skip).map((v) => [v.name, measureMemory(v, mode)]));
          const { medians, pytorchError } = await timeInterleaved(made.variants, made.torch, torch, mode, roundsFor(batch));
          const rate = made.flops ? made.flops[mode] / medians.fused / 1e6 : Number.NaN;
          const memText = (m) => (m ? `${fmt(m.allocatorPeak / MiB, 1)} / ${fmt(m.rssPeak / MiB, 1)}` : 'skipped');
          console.log(`${op.padEnd(13)} | ${String(batch).padEnd(5)} | ${String(dim).padEnd(3)} | ${mode === 'forward' ? 'fwd ' : 'f+b '} | ${fmt(medians.fused, 3).padStart(8)} | ${fmt(medians.composed, 3).padStart(11)} | ${fmt(medians.pytorch, 3).padStart(10)} | ${fmt(medians.composed / medians.fused).padStart(14)} | ${fmt(medians.pytorch / medians.fused).padStart(13)} | ${fmt(rate, 1).padStart(10)} | ${fmt(gemmRate, 1).padStart(13)} | ${memText(memories.fused).padEnd(14)} | ${memText(memories.composed)}${pytorchError ? `  (pytorch: ${pytorchError})` : ''}`);
          report.ops.push({ op, batch, dim, mode, medians, gemmMs: gemm, fusedGflops: rate, gemmGflops: gemmRate, memories, pytorchError });
        }
        for (const variant of made.variants) variant.leaves.forEach((leaf) => leaf.dispose());
      }
    }
  }
}

// ---- section: the L-MCL cohort ---------------------------------------------------------------------
function lmclPairs(networks, stages) {
  const pairs = [];
  for (let n = 0; n < networks; n += 1)
    for (let m = 0; m < networks; m += 1)
      if (m !== n) for (let s = 0; s < stages; s += 1) for (let t = 0; t < stages; t += 1) pairs.push([n * stages + s, m * stages + t]);
  return pairs;
}

async function cohortSection(torch) {
  const [networks, stages, batch, dim] = [2, 3, 128, 128];
  const count = networks * stages;
  const pairs = lmclPairs(networks, stages);
  const z = Array.from({ length: count }, () => unitRows(batch, dim));
  const labels = twoPerClass(batch);
  const weightValues = Float32Array.from({ length: pairs.length * batch }, () => 0.27 + 0.46 * Math.random());
  const weights = tensor(weightValues, [pairs.length, batch]);
  const weightRows = pairs.map((_, p) => tensor(weightValues.subarray(p * batch, (p + 1) * batch), [batch]));
  const coefficients = [0.1, 0.1, 1, 1];  // α (VCL), β (ICL), γ (SoftVCL), λ (SoftICL)
  const options = { temperature: TEMPERATURE, klTemperature: KL_TEMPERATURE };
  const combine = (terms) => terms.reduce((total, term, index) => F.add(total, F.mul(term, coefficients[index % 4])));
  const variants = [
    {
      name: 'cohortContrastive', leaves: z,
      loss: () => F.sum(F.mul(F.cohortContrastive(z, labels, { pairs, ...options, weights }), tensor(Float32Array.from({ length: pairs.length * 4 }, (_, i) => coefficients[i % 4]), [pairs.length, 4]))),
    },
    {
      name: 'one-pair calls (144)', leaves: z,
      loss: () => combine(pairs.flatMap(([a, b], p) => {
        const w = weightRows[p];
        const info = (x, y) => F.supConInfoNCE(x, y, labels, { temperature: TEMPERATURE, weights: w });
        const kl = (sa, sc, ta, tc) => F.contrastiveKL(sa, sc, ta, tc, { ...options, weights: w });
        const [za, zb] = [z[a], z[b]];
        return [F.add(info(za, za), info(zb, zb)), F.add(info(za, zb), info(zb, za)),
          F.add(kl(za, za, zb, zb), kl(zb, zb, za, za)), F.add(kl(za, zb, zb, za), kl(zb, za, za, zb))];
      })),
    },
    {
      name: 'our composition', leaves: z,
      loss: () => combine(pairs.flatMap(([a, b], p) => {
        const w = weightRows[p];
        const logits = (x, y) => F.affine(F.linear(x, y), 1 / TEMPERATURE, 0);
        const [aa, bb, ab, ba] = [logits(z[a], z[a]), logits(z[b], z[b]), logits(z[a], z[b]), logits(z[b], z[a])];
        const detached = (x) => noGrad(() => x.detach());
        const kl = (s, t) => klFromLogits(s, detached(t), KL_TEMPERATURE, w);
        return [F.add(infoNCEFromLogits(aa, labels, w), infoNCEFromLogits(bb, labels, w)), F.add(infoNCEFromLogits(ab, labels, w), infoNCEFromLogits(ba, labels, w)),
          F.add(kl(aa, bb), kl(bb, aa)), F.add(kl(ab, ba), kl(ba, ab))];
      })),
    },
  ];
  // The floor: the distinct similarity block GEMMs the cohort needs, at our GEMM rate for that shape.
  const needed = new Set();
  for (const [a, b] of pairs) for (const [i, j] of [[a, a], [b, b], [Math.min(a, b), Math.max(a, b)]]) needed.add(i * count + j);
  const upperBlocks = needed.size;
  const backwardBlocks = [...needed].reduce((total, x) => total + (Math.floor(x / count) === x % count ? 1 : 2), 0);
  const forwardBlockMs = gemmMs(batch, batch, dim, true);
  const backwardBlockMs = gemmMs(batch, dim, batch, false);
  const floor = { forward: upperBlocks * forwardBlockMs, backward: upperBlocks * forwardBlockMs + backwardBlocks * backwardBlockMs };
  const torchRequest = { case: 'cohort', batch, dim, count, pairs, ...options };
  console.log(`\n## L-MCL cohort terms: N = ${networks}, S = ${stages}, ${pairs.length} pairs × 4 terms, B = ${batch}, D = ${dim}, weights [${pairs.length}, ${batch}]`);
  console.log(`floor: ${upperBlocks} forward block GEMMs (${fmt(forwardBlockMs, 4)} ms each) + ${backwardBlocks} backward (${fmt(backwardBlockMs, 4)} ms each) = ${fmt(floor.forward, 3)} ms forward, ${fmt(floor.backward, 3)} ms forward+backward`);
  console.log('mode | cohortContrastive ms | 144 one-pair calls ms | our composition ms | pytorch ms | one-pair/cohort | composition/cohort | pytorch/cohort | cohort/floor');
  const result = { floor, upperBlocks, backwardBlocks, forwardBlockMs, backwardBlockMs, modes: {} };
  for (const mode of ['forward', 'backward']) {
    const { medians, pytorchError } = await timeInterleaved(variants, torchRequest, torch, mode, Number(roundsOverride ?? 9));
    const cohort = medians.cohortContrastive;
    console.log(`${mode === 'forward' ? 'fwd ' : 'f+b '} | ${fmt(cohort, 3).padStart(20)} | ${fmt(medians['one-pair calls (144)'], 3).padStart(21)} | ${fmt(medians['our composition'], 3).padStart(18)} | ${fmt(medians.pytorch, 3).padStart(10)} | ${fmt(medians['one-pair calls (144)'] / cohort).padStart(15)} | ${fmt(medians['our composition'] / cohort).padStart(18)} | ${fmt(medians.pytorch / cohort).padStart(14)} | ${fmt(cohort / floor[mode]).padStart(12)}${pytorchError ? `  (pytorch: ${pytorchError})` : ''}`);
    result.modes[mode] = { medians, pytorchError };
  }
  report.cohort = result;
}

// ---- section: the memory bank -----------------------------------------------------------------------
async function memorySection(torch) {
  if (typeof F.memoryLogits !== 'function' || typeof F.memoryInfoNCE !== 'function') {
    console.log('\n## Memory bank: F.memoryLogits / F.memoryInfoNCE are not in this build; section skipped');
    return;
  }
  const [batch, k, dim, bankRows, positives] = [256, 8194, 128, 100000, 2];
  const query = unitRows(batch, dim);
  const bank = tensor(Float32Array.from({ length: bankRows * dim }, () => Math.random() * 0.306 - 0.153), [bankRows, dim]);
  const indices = Int32Array.from({ length: batch * k }, () => Math.floor(Math.random() * bankRows));
  const cases = [
    { name: 'memoryLogits', variant: { name: 'fused', leaves: [query], loss: () => F.sum(F.memoryLogits(query, bank, indices, { temperature: 0.07 })) }, torch: 'memory_logits' },
    { name: 'memoryInfoNCE', variant: { name: 'fused', leaves: [query], loss: () => F.memoryInfoNCE(query, bank, indices, { positives, temperature: 0.07 }) }, torch: 'memory_infonce' },
  ];
  console.log(`\n## Memory bank: B = ${batch}, K = ${k}, D = ${dim}, M = ${bankRows} (bank ${fmt(bankRows * dim * 4 / MiB, 1)} MiB; a [B, K, D] gather would be ${fmt(batch * k * dim * 4 / MiB, 0)} MiB)`);
  console.log('op            | mode | fused ms | pytorch ms | pytorch/fused | fused GB/s (bank rows read) | fused mem (allocator / RSS MiB)');
  for (const entry of cases) {
    for (const mode of ['forward', 'backward']) {
      const memoryUse = measureMemory(entry.variant, mode);
      const { medians, pytorchError } = await timeInterleaved([entry.variant], { case: entry.torch, batch, dim, k, bankRows, positives, temperature: 0.07 }, torch, mode, Number(roundsOverride ?? 5));
      const bytesRead = batch * k * dim * 4 * (mode === 'forward' ? 1 : 2);
      console.log(`${entry.name.padEnd(13)} | ${mode === 'forward' ? 'fwd ' : 'f+b '} | ${fmt(medians.fused, 2).padStart(8)} | ${fmt(medians.pytorch, 2).padStart(10)} | ${fmt(medians.pytorch / medians.fused).padStart(13)} | ${fmt(bytesRead / medians.fused / 1e6, 1).padStart(27)} | ${fmt(memoryUse.allocatorPeak / MiB, 1)} / ${fmt(memoryUse.rssPeak / MiB, 1)}${pytorchError ? `  (pytorch: ${pytorchError})` : ''}`);
      report.memory.push({ op: entry.name, mode, medians, memory: memoryUse, pytorchError });
    }
  }
  // L-MCL's shape: six embeddings (2 networks × 3 stages) of the same batch against one bank, the
  // same keys: six one-query calls against one call with a [6, B, D] query (each gathered row read
  // once for all six), interleaved.
  const queries = 6;
  const six = Array.from({ length: queries }, () => unitRows(batch, dim));
  const variants = [
    { name: 'six calls', leaves: six, loss: () => six.map((q) => F.sum(F.memoryLogits(q, bank, indices, { temperature: 0.07 }))).reduce((a, b) => F.add(a, b)) },
    { name: 'one [6, B, D] call', leaves: six, loss: () => F.sum(F.memoryLogits(F.stack(six, 0), bank, indices, { temperature: 0.07 })) },
  ];
  console.log(`\n## Six queries sharing the keys (B = ${batch}, K = ${k}, D = ${dim}, M = ${bankRows}): ms, medians of interleaved rounds`);
  console.log('mode | six calls | one [6, B, D] call | ratio');
  for (const mode of ['forward', 'backward']) {
    const { medians } = await timeInterleaved(variants, null, null, mode, Number(roundsOverride ?? 5));
    console.log(`${mode === 'forward' ? 'fwd ' : 'f+b '} | ${fmt(medians['six calls'], 1).padStart(9)} | ${fmt(medians['one [6, B, D] call'], 1).padStart(18)} | ${fmt(medians['six calls'] / medians['one [6, B, D] call'])}`);
    report.memory.push({ op: 'memoryLogits six queries', mode, medians });
  }
}

// ---- plots -------------------------------------------------------------------------------------------
function writePlots(directory) {
  mkdirSync(directory, { recursive: true });
  for (const op of ['supConInfoNCE', 'contrastiveKL']) {
    const rows = report.ops.filter((row) => row.op === op && row.dim === 128 && row.mode === 'backward');
    if (rows.length === 0) continue;
    const series = (name, pick) => ({ label: name, rows: rows.map((row) => ({ log2B: Math.log2(row.batch), value: Math.log10(pick(row)) })) });
    const time = [series('fused', (r) => r.medians.fused), series('our composition', (r) => r.medians.composed), series('PyTorch composition', (r) => r.medians.pytorch)];
    writeFileSync(`${directory}/${op}_time.svg`, io.plotRunsSvg(time, { x: 'log2B', ys: ['value'], title: `${op} forward+backward, D = 128`, xLabel: 'log2(batch)', yLabel: 'log10(ms)' }));
    const memoryRuns = [
      series('fused (allocator peak)', (r) => Math.max(r.memories.fused?.allocatorPeak ?? Number.NaN, 1) / MiB),
      series('our composition (allocator peak)', (r) => (r.memories.composed ? Math.max(r.memories.composed.allocatorPeak, 1) / MiB : Number.NaN)),
    ];
    writeFileSync(`${directory}/${op}_memory.svg`, io.plotRunsSvg(memoryRuns, { x: 'log2B', ys: ['value'], title: `${op} forward+backward peak extra memory, D = 128`, xLabel: 'log2(batch)', yLabel: 'log10(MiB)' }));
  }
  console.log(`\nplots written to ${directory}/`);
}

// ---- main --------------------------------------------------------------------------------------------
const cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown CPU';
const info = engineInfo();
report.machine = { cpu, threads, simd: info.simd, date: new Date().toISOString() };
console.log(`# contrastive kernels — ${report.machine.date.slice(0, 10)}, ${cpu}, ${threads} threads, SIMD ${info.simd}`);
const torch = await startTorch();
try {
  if (sections.includes('ops')) await opsSection(torch);
  if (sections.includes('cohort')) await cohortSection(torch);
  if (sections.includes('memory')) await memorySection(torch);
} finally {
  torch?.stop();
}
if (plotDirectory) writePlots(plotDirectory);
if (jsonPath) writeFileSync(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
