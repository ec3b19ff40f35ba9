// The progress line fits its width by dropping the less important fields (never by cutting off
// the loss or the accuracies at the end); the epoch line carries data time and memory.
import { describe, expect, it } from 'vitest';
import { Progress, formatProgress, type ProgressState } from '../../src/train/progress.js';
import { formatEpoch } from '../../src/train/trainer.js';

function state(networks: number): ProgressState {
  return { epoch: 11, epochs: 300, batch: 1234, batches: 1563, imagesPerSecond: 261.4, etaSeconds: 3 * 3600 + 125, loss: 0.43219, lr: 0.00171234,
    top1: Array.from({ length: networks }, (_, n) => 88.25 + n) };
}

describe('progress line', () => {
  it('shows every field when there is room', () => {
    expect(formatProgress(state(2))).toBe('epoch 12/300 batch 1234/1563 261 img/s ETA 3:02:05 loss 0.4322 lr 0.00171 top1 net0 88.3% net1 89.3%');
  });

  it('at 80 columns drops lr, then images/s, then shortens the top-1 list, keeping epoch, batch and loss', () => {
    const two = formatProgress(state(2), 80);
    expect(two.length).toBeLessThanOrEqual(80);
    expect(two).toBe('epoch 12/300 batch 1234/1563 ETA 3:02:05 loss 0.4322 top1 net0 88.3% net1 89.3%');
    const four = formatProgress(state(4), 80);
    expect(four).toBe('epoch 12/300 batch 1234/1563 ETA 3:02:05 loss 0.4322 top1 88.3/89.3/90.3/91.3%');
    const many = formatProgress(state(10), 80);
    expect(many.length).toBeLessThanOrEqual(80);
    expect(many).toBe('epoch 12/300 batch 1234/1563 ETA 3:02:05 loss 0.4322');
    expect(formatProgress(state(10), 40)).toBe('epoch 12/300 batch 1234/1563 loss 0.4322');
    // Narrower than the essentials: only then is the line cut.
    expect(formatProgress(state(2), 20)).toBe('epoch 12/300 batch 1');
  });

  it('plain lines (not a terminal) are fitted to 80 columns by default', () => {
    const written: string[] = [];
    const progress = new Progress({ stream: { write: (text: string) => written.push(text) > 0 }, tty: false, intervalSeconds: 0 });
    progress.update(state(4));
    expect(written).toHaveLength(1);
    expect(written[0]!.length).toBeLessThanOrEqual(81);
    expect(written[0]).toMatch(/loss 0\.4322 top1 88\.3\/89\.3\/90\.3\/91\.3%\n$/);
    const wide: string[] = [];
    new Progress({ stream: { write: (text: string) => wide.push(text) > 0 }, tty: false, intervalSeconds: 0, columns: 200 }).update(state(4));
    expect(wide[0]).toContain('lr 0.00171 top1 net0 88.3%');
  });

  it('a terminal line stays one column short of the terminal width', () => {
    const written: string[] = [];
    new Progress({ stream: { write: (text: string) => written.push(text) > 0, isTTY: true, columns: 80 }, intervalSeconds: 0 }).update({ ...state(2), batch: 1563 });
    const line = written[0]!.replace(/^\r/, '').replace(/\x1b\[K$/, '');
    expect(line.length).toBeLessThanOrEqual(79);
    expect(line).toContain('loss 0.4322');
  });
});

describe('epoch line', () => {
  it('shows evaluation progress: a self-updating line on a terminal (the last batch always), a plain line at the interval otherwise', () => {
    const written: string[] = [];
    const terminal = new Progress({ stream: { write: (text: string) => written.push(text) > 0, isTTY: true, columns: 100 }, tty: true });
    for (let batch = 1; batch <= 3; batch += 1) terminal.evaluating(4, 60, batch, 3);
    expect(written[0]).toBe('\repoch 5/60 evaluating: test batch 1/3\x1b[K');
    expect(written.at(-1)).toBe('\repoch 5/60 evaluating: test batch 3/3\x1b[K');
    terminal.log('epoch line');
    expect(written.at(-2)).toBe('\r\x1b[K'); // the evaluation line is cleared before the epoch line
    const plain: string[] = [];
    const log = new Progress({ stream: { write: (text: string) => plain.push(text) > 0 }, tty: false, intervalSeconds: 0 });
    log.evaluating(0, 2, 7, 20);
    expect(plain).toEqual(['epoch 1/2 evaluating: test batch 7/20\n']);
    const quiet: string[] = [];
    new Progress({ stream: { write: (text: string) => quiet.push(text) > 0 }, quiet: true }).evaluating(0, 1, 1, 1);
    expect(quiet).toEqual([]);
  });

  it('names the data time and the memory (RSS)', () => {
    const line = formatEpoch({ epoch: 3, lr: 0.05, train: { total: 1.25, ce: 1 }, trainTop1: [80], test: null, imagesPerSecond: 250, trainSeconds: 30, evalSeconds: 2,
      dataSeconds: 1.25, rssMegabytes: 812, elapsedSeconds: 100, bestMeanTop1: 0, bestEpoch: 0 }, 12);
    expect(line).toMatch(/\| 250 img\/s, 32\.0 s \(data 1\.3 s\), RSS 812 MB$/);
  });
});
