// Turns what the profiler recorded into a report (rows with shares, rates and % of peak), and the
// report into a text table or JSON. Pure functions: the tests feed them records directly.
import type { CostKind } from './costs.js';
import type { ProfilePhase, ProfileRecords } from './profiler.js';

export interface KernelRow {
  phase: ProfilePhase;
  op: string;
  kind: CostKind;
  calls: number;
  totalMs: number;
  msPerStep: number | null;
  /** totalMs as a percentage of the recorded wall time. */
  sharePercent: number;
  /** Compute-bound ops (GEMM, conv2d, memory-bank products): FLOPs from the shapes; else null. */
  flops: number | null;
  gflops: number | null;
  /** gflops / the measured FMA peak, in percent (null without a peak or FLOP count). */
  peakPercent: number | null;
  /** Memory-bound ops: compulsory bytes (profiler/costs.ts); else null. */
  bytes: number | null;
  gbps: number | null;
}

export interface NamedTimeRow {
  name: string;
  calls: number;
  totalMs: number;
  msPerStep: number | null;
  sharePercent: number;
}

export interface ProfileReport {
  /** Free-form description of what ran (model, method, batch...). */
  description: string;
  steps: number;
  wallMs: number;
  /** wallMs / steps (null when no steps were counted). */
  stepMs: number | null;
  peak: { gflops: number; threads: number; simd: string } | null;
  /** Sorted by totalMs, descending. */
  kernels: KernelRow[];
  /** Per phase: kernel time, its share, and what was left between kernels. */
  phases: { phase: ProfilePhase; kernelMs: number; sharePercent: number }[];
  totals: { kernelMs: number; kernelSharePercent: number; flops: number; gflops: number; peakPercent: number | null };
  /** Inclusive times of the backward nodes by name; their shares sum to at most the backward phase's. */
  backwardNodes: NamedTimeRow[];
  /** Inclusive forward times by module class (nested: a block includes its convolutions); empty when not attached. */
  modules: NamedTimeRow[];
}

export interface ReportOptions {
  description?: string;
  peak?: { gflops: number; threads: number; simd: string } | null;
}

const PHASE_ORDER: readonly ProfilePhase[] = ['forward', 'backward', 'update'];

function rate(amount: number, ms: number): number | null {
  return ms > 0 ? amount / ms / 1e6 : null; // per ms → per s, and 1e9 for giga
}

export function buildReport(records: ProfileRecords, options: ReportOptions = {}): ProfileReport {
  const wallMs = records.wallMs;
  const share = (ms: number): number => (wallMs > 0 ? (100 * ms) / wallMs : 0);
  const perStep = (value: number): number | null => (records.steps > 0 ? value / records.steps : null);
  const peak = options.peak ?? null;
  const kernels: KernelRow[] = records.kernels.map((record) => {
    const flops = record.kind === 'compute' ? record.flops : null;
    const bytes = record.kind === 'memory' ? record.bytes : null;
    const gflops = flops === null ? null : rate(flops, record.ms);
    return {
      phase: record.phase,
      op: record.op,
      kind: record.kind,
      calls: record.calls,
      totalMs: record.ms,
      msPerStep: perStep(record.ms),
      sharePercent: share(record.ms),
      flops,
      gflops,
      peakPercent: gflops !== null && peak && peak.gflops > 0 ? (100 * gflops) / peak.gflops : null,
      bytes,
      gbps: bytes === null ? null : rate(bytes, record.ms),
    };
  });
  kernels.sort((a, b) => b.totalMs - a.totalMs);
  const kernelMs = kernels.reduce((sum, row) => sum + row.totalMs, 0);
  const computeRows = kernels.filter((row) => row.flops !== null);
  const flops = computeRows.reduce((sum, row) => sum + row.flops!, 0);
  const computeMs = computeRows.reduce((sum, row) => sum + row.totalMs, 0);
  const computeGflops = rate(flops, computeMs) ?? 0;
  const named = (rows: { name: string; calls: number; ms: number }[]): NamedTimeRow[] =>
    rows.map((row) => ({ name: row.name, calls: row.calls, totalMs: row.ms, msPerStep: perStep(row.ms), sharePercent: share(row.ms) }))
      .sort((a, b) => b.totalMs - a.totalMs);
  return {
    description: options.description ?? '',
    steps: records.steps,
    wallMs,
    stepMs: perStep(wallMs),
    peak,
    kernels,
    phases: PHASE_ORDER.map((phase) => {
      const ms = kernels.filter((row) => row.phase === phase).reduce((sum, row) => sum + row.totalMs, 0);
      return { phase, kernelMs: ms, sharePercent: share(ms) };
    }),
    totals: {
      kernelMs,
      kernelSharePercent: share(kernelMs),
      flops,
      gflops: computeGflops,
      peakPercent: peak && peak.gflops > 0 ? (100 * computeGflops) / peak.gflops : null,
    },
    backwardNodes: named(records.backwardNodes),
    modules: named(records.modules),
  };
}

// ---- text -------------------------------------------------------------------------------------

function fixed(value: number | null, digits: number): string {
  return value === null ? '' : value.toFixed(digits);
}

function table(header: string[], rows: string[][], leftColumns: number): string[] {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]): string =>
    cells.map((cell, column) => (column < leftColumns ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ').trimEnd();
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)];
}

/** The report as the table `lmcl profile` and `lmcl train --profile` print. */
export function formatReport(report: ProfileReport): string {
  const lines: string[] = [];
  const steps = report.steps > 0 ? `${report.steps} step${report.steps === 1 ? '' : 's'}, ${fixed(report.stepMs, 1)} ms/step` : `${fixed(report.wallMs, 1)} ms recorded`;
  lines.push(`${report.description ? `${report.description}: ` : ''}${steps}`);
  lines.push(report.peak
    ? `FMA peak, measured now: ${report.peak.gflops.toFixed(1)} GFLOP/s (${report.peak.threads} thread${report.peak.threads === 1 ? '' : 's'}, ${report.peak.simd})`
    : 'FMA peak: not measured');
  lines.push('');
  // Text columns are per step when steps were counted (the JSON keeps the totals as well).
  const divide = (value: number): number => (report.steps > 0 ? value / report.steps : value);
  const perStepHeader = report.steps > 0 ? 'ms/step' : 'ms';
  const unit = report.steps > 0 ? '/step' : '';
  const count = (value: number): string => (Number.isInteger(divide(value)) ? String(divide(value)) : divide(value).toFixed(1));
  lines.push(...table(
    ['phase', 'op', `calls${unit}`, perStepHeader, 'share', `GFLOP${unit}`, 'GFLOP/s', '% peak', `MB${unit}`, 'GB/s'],
    report.kernels.map((row) => [
      row.phase, row.op, count(row.calls), divide(row.totalMs).toFixed(2), `${row.sharePercent.toFixed(1)}%`,
      row.flops === null ? '' : (divide(row.flops) / 1e9).toFixed(2), fixed(row.gflops, 1), row.peakPercent === null ? '' : `${row.peakPercent.toFixed(0)}%`,
      row.bytes === null ? '' : (divide(row.bytes) / 1e6).toFixed(1), fixed(row.gbps, 1),
    ]),
    2,
  ));
  lines.push('');
  for (const phase of report.phases) {
    if (phase.kernelMs === 0) continue;
    lines.push(`${phase.phase.padEnd(8)} kernels ${divide(phase.kernelMs).toFixed(1)} ${perStepHeader} (${phase.sharePercent.toFixed(1)}%)`);
  }
  lines.push(`all kernels ${divide(report.totals.kernelMs).toFixed(1)} ${perStepHeader} (${report.totals.kernelSharePercent.toFixed(1)}%); ` +
    `the other ${(100 - report.totals.kernelSharePercent).toFixed(1)}% is outside kernels (JavaScript: op dispatch, autograd, scopes)`);
  lines.push(`compute-bound kernels: ${(report.totals.flops / 1e9).toFixed(2)} GFLOP at ${report.totals.gflops.toFixed(1)} GFLOP/s` +
    (report.totals.peakPercent === null ? '' : ` (${report.totals.peakPercent.toFixed(0)}% of peak)`));
  if (report.backwardNodes.length > 0) {
    lines.push('');
    lines.push('backward nodes (inclusive: the node\'s kernels and its JavaScript)');
    lines.push(...table(['node', `calls${unit}`, perStepHeader, 'share'],
      report.backwardNodes.map((row) => [row.name, count(row.calls), divide(row.totalMs).toFixed(2), `${row.sharePercent.toFixed(1)}%`]), 1));
  }
  if (report.modules.length > 0) {
    lines.push('');
    lines.push('module forwards by class (inclusive and nested: a block includes its layers)');
    lines.push(...table(['module', `calls${unit}`, perStepHeader, 'share'],
      report.modules.map((row) => [row.name, count(row.calls), divide(row.totalMs).toFixed(2), `${row.sharePercent.toFixed(1)}%`]), 1));
  }
  return lines.join('\n');
}

/** The report as JSON (what --json prints). */
export function reportJson(report: ProfileReport): string {
  return JSON.stringify(report, null, 2);
}
