// --resume auto picks the newest run whose resume-relevant options match this command's (and
// says which), starts fresh when none does (naming each run passed over and why), and refuses to
// extend a run beyond the epochs its schedule was made for, saying why and what to do instead.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { train, type TrainResult } from '../../src/train/trainer.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-resume-auto-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

// 160 images / batch 32 = 5 steps per epoch.
const tiny = { arch: 'resnet8', numberNet: 2, method: 'dml', epochs: 2, batchSize: 32, limitTrain: 160, limitTest: 64, evalBatchSize: 64, workers: 0, threads: 1 };
const name = 'dml_resnet8x2_fashion-mnist_seed0';

async function run(config: Record<string, unknown>, stopAfterSteps?: number): Promise<{ result: TrainResult; lines: string[] }> {
  const lines: string[] = [];
  const result = await train({ config: { ...tiny, ...config }, console: (line) => lines.push(line), handleSignals: false, stopAfterSteps });
  for (const net of result.networks) net.dispose();
  result.method.dispose();
  return { result, lines };
}

describe('--resume auto', () => {
  const out = path.join(root, 'runs');

  it('starts fresh when there is no run, and says so', async () => {
    const { result, lines } = await run({ out, resume: 'auto', lr: 0.1 }, 3);
    expect(result.status).toBe('interrupted');
    expect(result.runDir).toBe(path.join(out, name));
    expect(lines).toContain(`--resume auto: no run in ${out} has these options; starting a fresh run in ${path.join(out, name)}`);
  });

  it('picks the newest run with the same options, passing over a newer one with another --lr', async () => {
    // A second, newer run of the same name with another lr (its folder gets the _2 suffix).
    const other = await run({ out, lr: 0.05 }, 3);
    expect(other.result.runDir).toBe(path.join(out, `${name}_2`));
    const { result, lines } = await run({ out, resume: 'auto', lr: 0.1 });
    expect(result.status).toBe('completed');
    expect(result.runDir).toBe(path.join(out, name));
    expect(lines).toContain(`--resume auto: picked ${path.join(out, name)} (0/2 epochs done), the newest of 1 run in ${out} with these options`);
    // The other run, by its own options.
    const second = await run({ out, resume: 'auto', lr: 0.05 });
    expect(second.result.runDir).toBe(path.join(out, `${name}_2`));
    expect(second.lines.some((line) => line.startsWith(`--resume auto: picked ${path.join(out, `${name}_2`)}`))).toBe(true);
  });

  it('starts fresh when no run has these options, naming each run it passed over and why', async () => {
    const { result, lines } = await run({ out, resume: 'auto', lr: 0.2 }, 1);
    expect(result.runDir).toBe(path.join(out, `${name}_3`));
    expect(lines).toContain(`--resume auto: passed over ${path.join(out, name)}: lr (checkpoint 0.1, now 0.2) differ`);
    expect(lines).toContain(`--resume auto: passed over ${path.join(out, `${name}_2`)}: lr (checkpoint 0.05, now 0.2) differ`);
    expect(lines).toContain(`--resume auto: no run in ${out} has these options; starting a fresh run in ${path.join(out, `${name}_3`)}`);
  });

  it('resuming a finished run says there is nothing left to train', async () => {
    const { result, lines } = await run({ out, resume: 'auto', lr: 0.1 });
    expect(result.status).toBe('completed');
    expect(lines).toContain(`--resume auto: picked ${path.join(out, name)} (finished, 2/2 epochs: nothing left to train), the newest of 1 run in ${out} with these options`);
  });

  it('refuses to extend a finished cosine run to more epochs, saying why and what to do', async () => {
    const finished = path.join(out, name);
    const expected = new RegExp(`^--resume: ${finished.replace(/[.+]/g, '\\$&')} finished its 2 epochs and cannot be extended to 3: its cosine schedule spans exactly 2 epochs ` +
      '\\(the lr reaches ~0 at the end\\), so 3 epochs would be a different schedule, changing the lr of the epochs already trained and raising it again after they end\\. ' +
      'To train for 3 epochs, start a new run with --epochs 3 \\(without --resume, or with another --name\\)\\.$');
    await expect(run({ out, resume: 'auto', lr: 0.1, epochs: 3 })).rejects.toThrow(expected);
    await expect(run({ resume: finished, epochs: 3 })).rejects.toThrow(expected);
    expect(fs.readdirSync(out).sort()).toEqual([name, `${name}_2`, `${name}_3`]);
  });
});
