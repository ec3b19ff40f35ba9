// CLI interop smoke tests (the compiled `lmcl`, bin/lmcl.js → dist/, on tiny jobs of the bundled
// sample): export's model card, `eval --weights` of a bare state dict giving the accuracy of the
// network it was exported from (also under the authors' names), and `train --init-from`.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSafetensors, readSafetensors } from '../../src/io/safetensors.js';

const repo = path.resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const bin = path.join(repo, 'bin', 'lmcl.js');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-interop-cli-'));
const tiny = ['--method', 'dml', '--arch', 'resnet8', '--epochs', '1', '--limit-train', '96', '--limit-test', '64', '--batch-size', '32',
  '--eval-batch-size', '64', '--threads', '2', '--workers', '0', '--out', 'runs'];

function lmcl(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [bin, ...args], { cwd: work, encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function json(args: string[]): Record<string, unknown> {
  const { status, stdout, stderr } = lmcl(args);
  expect(stderr).toBe('');
  expect(status).toBe(0);
  return JSON.parse(stdout) as Record<string, unknown>;
}

beforeAll(() => {
  // Build the TypeScript the launcher runs (type errors elsewhere do not block emitting).
  spawnSync(process.execPath, [path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(repo, 'tsconfig.json')], { cwd: repo, stdio: 'ignore' });
  expect(fs.existsSync(path.join(repo, 'dist', 'src', 'cli', 'main.js'))).toBe(true);
}, 120_000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('lmcl CLI: PyTorch interop', () => {
  const runDir = path.join(work, 'runs', 'source');
  const exported = path.join(work, 'net1.safetensors');

  it('export writes a model card in __metadata__ and num_batches_tracked as I64', () => {
    expect(lmcl(['train', ...tiny, '--name', 'source']).status).toBe(0);
    expect(lmcl(['export', runDir, '--net', '1', '-o', exported]).status).toBe(0);
    const { metadata, dtypes } = readSafetensors(exported);
    expect(metadata).toMatchObject({
      format: 'pt', architecture: 'resnet8', num_classes: '10', input_size: '[1,28,28]', in_channels: '1', image_size: '28',
      mean: '[0.286]', std: '[0.353]', dataset: 'fashion-mnist', auxiliary: 'false',
    });
    expect(JSON.parse(metadata.class_names!)).toEqual(['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']);
    expect(dtypes.get('bn1.num_batches_tracked')).toBe('I64');
    expect(dtypes.get('fc.weight')).toBe('F32');
  });

  it('eval --weights of the exported file gives the accuracy and loss of the network in its run', () => {
    const fromRun = json(['eval', runDir, '--limit-test', '64', '--json']) as { networks: unknown[]; heads: unknown[][]; loss: number[]; count: number };
    const fromFile = json(['eval', '--weights', exported, '--arch', 'resnet8', '--dataset', 'fashion-mnist', '--data', 'bundled', '--limit-test', '64', '--json']) as
      { architecture: string; networks: unknown[]; heads: unknown[][]; loss: number[]; count: number; renamed: unknown[] };
    expect(fromFile.count).toBe(64);
    expect(fromFile.architecture).toBe('resnet8');
    expect(fromFile.networks[0]).toEqual(fromRun.networks[1]);
    expect(fromFile.heads[0]).toEqual(fromRun.heads[1]);
    expect(fromFile.loss[0]).toBe(fromRun.loss[1]);
    expect(fromFile.renamed).toEqual([]);
    // Without --arch and --dataset: the file's metadata and train's defaults (the bundled sample).
    const text = lmcl(['eval', '--weights', exported, '--limit-test', '64']);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^weights .*net1\.safetensors \(resnet8, 56 tensors\) on 64 test images of fashion-mnist \(bundled\)/);
    expect(text.stdout).toContain(`net0 final head top-1 ${(fromRun.networks[1] as { top1: number }).top1.toFixed(2)}%`);
  });

  it("eval --weights of the same weights under the reference's head name (classifier.*) gives the same result", () => {
    const { tensors } = readSafetensors(exported);
    const foreign = new Map([...tensors].map(([name, entry]) => [name.replace(/^fc\./, 'classifier.'), entry]));
    const file = path.join(work, 'reference-names.safetensors');
    fs.writeFileSync(file, encodeSafetensors(foreign, { format: 'pt' }));
    const fromFile = json(['eval', '--weights', file, '--arch', 'resnet8', '--limit-test', '64', '--json']) as { networks: unknown[]; renamed: unknown[] };
    const original = json(['eval', '--weights', exported, '--limit-test', '64', '--json']) as { networks: unknown[] };
    expect(fromFile.renamed).toEqual([['classifier.weight', 'fc.weight'], ['classifier.bias', 'fc.bias']]);
    expect(fromFile.networks).toEqual(original.networks);
    // Without metadata the architecture must be given.
    expect(lmcl(['eval', '--weights', file]).stderr).toMatch(/the file's metadata names no architecture; give --arch/);
  });

  it('eval: --weights errors (wrong architecture, both sources, --arch without --weights)', () => {
    const wrong = lmcl(['eval', '--weights', exported, '--arch', 'resnet14', '--limit-test', '8']);
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toMatch(/net1\.safetensors' does not fit resnet14 \(strict loading\):\n {2}36 missing \(in the model, not in the file\): layer1\.1\.conv1\.weight, .*\.\.\. and 31 more/);
    expect(lmcl(['eval', runDir, '--weights', exported]).stderr).toMatch(/give a checkpoint or --weights, not both/);
    expect(lmcl(['eval', runDir, '--arch', 'resnet8']).stderr).toMatch(/--arch only go with --weights/);
    expect(lmcl(['eval']).stderr).toMatch(/give a run or checkpoint directory, or --weights FILE/);
  });

  it('train --init-from: one file for every network, or one per network; recorded in config.json', () => {
    const one = lmcl(['train', ...tiny, '--name', 'init-one', '--init-from', exported]);
    expect(one.stderr).not.toMatch(/^lmcl:/m); // (the progress line goes to stderr)
    expect(one.status).toBe(0);
    expect(one.stdout).toContain(`net0 (resnet8) initialised from ${exported}: 56 tensors`);
    expect(one.stdout).toContain(`net1 (resnet8) initialised from ${exported}: 56 tensors`);
    const config = JSON.parse(fs.readFileSync(path.join(work, 'runs', 'init-one', 'config.json'), 'utf8')) as { initFrom: string[]; initNonStrict: boolean };
    expect(config.initFrom).toEqual([exported]);
    expect(config.initNonStrict).toBe(false);
    const reference = path.join(work, 'reference-names.safetensors');
    const list = lmcl(['train', ...tiny, '--name', 'init-list', '--init-from', `${exported},${reference}`]);
    expect(list.status).toBe(0);
    expect(list.stdout).toContain(`net1 (resnet8) initialised from ${reference}: 56 tensors; 2 renamed by the alias table (e.g. classifier.weight → fc.weight)`);
  });

  it('train --init-from: a count mismatch or a missing file is an error before any run directory; a misfit is strict unless --init-non-strict', () => {
    const count = lmcl(['train', ...tiny, '--name', 'init-three', '--init-from', `${exported},${exported},${exported}`]);
    expect(count.status).toBe(1);
    expect(count.stderr).toMatch(/--init-from: 3 files for a cohort of 2 networks \(give one file for every network, or exactly one per network\)/);
    expect(fs.existsSync(path.join(work, 'runs', 'init-three'))).toBe(false);
    expect(lmcl(['train', ...tiny, '--name', 'init-none', '--init-from', 'missing.safetensors']).stderr).toMatch(/--init-from: missing\.safetensors does not exist/);
    expect(lmcl(['train', ...tiny, '--name', 'init-empty', '--init-from', `${exported},`]).stderr).toMatch(/--init-from: an empty file name/);

    const strict = lmcl(['train', ...tiny, '--arch', 'resnet14', '--name', 'init-misfit', '--init-from', exported]);
    expect(strict.status).toBe(1);
    expect(strict.stderr).toMatch(/--init-from: net0 \(resnet14\): '.*net1\.safetensors' does not fit resnet14 \(strict loading\):\n {2}36 missing/);
    expect(strict.stderr).toMatch(/--init-non-strict loads the tensors that fit/);
    const loose = lmcl(['train', ...tiny, '--arch', 'resnet14', '--name', 'init-loose', '--init-from', exported, '--init-non-strict']);
    expect(loose.status).toBe(0);
    expect(loose.stdout).toContain('net0 (resnet14) initialised from');
    expect(loose.stdout).toContain(`note: ${exported} says architecture resnet8`);
    expect(loose.stdout).toMatch(/not loaded \(non-strict\): 36 missing \(in the model, not in the file\): layer1\.1\.conv1\.weight/);
  });
});
