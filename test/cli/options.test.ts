// CLI behaviour around the options (issue 12): failed starts leave nothing behind, --version,
// short errors with suggestions, a run's config.json as --config, --resume auto.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const bin = path.join(repo, 'bin', 'lmcl.js');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-cli-options-'));
const tiny = ['--method', 'dml', '--arch', 'resnet8', '--epochs', '1', '--limit-train', '64', '--limit-test', '32', '--batch-size', '32', '--eval-batch-size', '64',
  '--threads', '1', '--workers', '0'];

function lmcl(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [bin, ...args], { cwd: work, encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

beforeAll(() => {
  // Build the TypeScript the launcher runs (type errors elsewhere do not block emitting).
  spawnSync(process.execPath, [path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(repo, 'tsconfig.json')], { cwd: repo, stdio: 'ignore' });
}, 120_000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('lmcl train: a failed start', () => {
  it('leaves no run directory behind (bad architecture, missing data, data that does not fit the flags)', () => {
    const failures: [string[], RegExp][] = [
      [['--arch', 'resnet9'], /unknown architecture 'resnet9'/],
      [['--dataset', 'cifar10', '--data', path.join(work, 'no-such-folder')], /no-such-folder/],
      [['--image-size', '32'], /--image-size 32: fashion-mnist images are 28×28/],
      [['--sampler', 'm-per-class', '--batch-size', '1000'], /--batch-size 1000: DataLoader: .*fewer than one m-per-class batch/],
    ];
    for (const [args, message] of failures) {
      const out = path.join(work, 'failed-start');
      const { status, stderr } = lmcl(['train', ...tiny, ...args, '--out', out]);
      expect(status, args.join(' ')).toBe(1);
      expect(stderr, args.join(' ')).toMatch(message);
      expect(fs.existsSync(out), `${args.join(' ')} left ${out}`).toBe(false);
    }
  });
});
