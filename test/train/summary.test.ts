// summary.csv holds every metric of metrics.jsonl: each number of an epoch record (losses by
// part, per-network and per-head accuracies, the ensemble, test losses, times, memory, best) has
// a column, and a column per metric appears once.
import { describe, expect, it } from 'vitest';
import { flattenRecord, summaryHeader, summaryRow, summaryShape, type EpochRecord } from '../../src/train/rundir.js';
import type { EvalResult, HeadAccuracy } from '../../src/train/metrics.js';

/** Distinct numbers, exact at one decimal (no column's rounding changes them). */
function counter(): () => number {
  let next = 10;
  return () => (next += 1) + 0.5;
}

function head(value: () => number): HeadAccuracy {
  return { top1: value(), top5: value() };
}

/** Every number in a JSON value, with its path. */
function leaves(value: unknown, at = ''): [string, number][] {
  if (typeof value === 'number') return [[at, value]];
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, inner]) => leaves(inner, at ? `${at}.${key}` : key));
}

/** A record of two networks with an auxiliary head each and a method head, every field set. */
function fullRecord(): Required<EpochRecord> {
  const value = counter();
  const heads = [[head(value), head(value)], [head(value), head(value)]];
  const test: Required<EvalResult> = {
    networks: heads.map((list) => list[list.length - 1]!),
    heads,
    methodHeads: { aggregator: [head(value), head(value)] },
    ensemble: head(value),
    meanTop1: value(),
    loss: [value(), value()],
    count: 2000,
  };
  return {
    epoch: 3, lr: value(),
    train: { total: value(), ce: value(), kd: value(), 'ce/net0': value(), 'ce/net1/aux0': value(), vcl: value(), meta_hypergrad_norm: value() },
    trainTop1: [value(), value()],
    test,
    imagesPerSecond: value(), trainSeconds: value(), evalSeconds: value(), dataSeconds: value(), rssMegabytes: 812,
    elapsedSeconds: value(), bestMeanTop1: value(), bestEpoch: 2,
  };
}

describe('summary.csv', () => {
  it('has a cell for every number of the epoch record', () => {
    const record = fullRecord();
    const shape = summaryShape([record]);
    const header = summaryHeader(shape.networks, shape.heads, shape.methodHeads, shape.trainParts);
    const row = summaryRow(record, shape);
    expect(row).toHaveLength(header.length);
    expect(new Set(header).size).toBe(header.length);
    const cells = new Set(row.map(Number));
    const missing = leaves(JSON.parse(JSON.stringify(record))).filter(([, value]) => !cells.has(value)).map(([at]) => at);
    expect(missing).toEqual([]);
    // A few by name, where the value is easy to state.
    const cell = (column: string): string => row[header.indexOf(column)]!;
    expect(cell('test_loss_net1')).toBe(String(record.test.loss[1]));
    expect(cell('test_top5_net0_aux0')).toBe(String(record.test.heads[0]![0]!.top5));
    expect(cell('test_top5_net1_aggregator')).toBe(String(record.test.methodHeads.aggregator![1]!.top5));
    expect(cell('train_ce_net1_aux0')).toBe(String(record.train['ce/net1/aux0']));
    expect(cell('train_meta_hypergrad_norm')).toBe(String(record.train.meta_hypergrad_norm));
    expect(cell('rss_mb')).toBe('812');
    expect(cell('best_epoch')).toBe('2');
    expect(cell('test_count')).toBe('2000');
    // The original columns keep their positions (readers that go by index).
    expect(header.slice(0, 6)).toEqual(['epoch', 'lr', 'train_loss', 'train_ce', 'train_kd', 'train_top1_net0']);
    expect(header.indexOf('elapsed_seconds')).toBe(header.indexOf('epoch_seconds') + 1);
  });

  it('leaves the test cells of an epoch --eval-every skipped empty, and the plot rows follow the columns', () => {
    const evaluated = fullRecord();
    const skipped: EpochRecord = { ...fullRecord(), epoch: 2, test: null };
    const shape = summaryShape([skipped, evaluated]);
    const header = summaryHeader(shape.networks, shape.heads, shape.methodHeads, shape.trainParts);
    const row = summaryRow(skipped, shape);
    expect(row).toHaveLength(header.length);
    for (const column of ['test_top1_net0', 'test_loss_net0', 'test_top5_net1_aux0', 'test_count']) expect(row[header.indexOf(column)]).toBe('');
    const flat = flattenRecord(evaluated);
    expect(Object.keys(flat).sort()).toEqual([...header].sort());
  });
});
