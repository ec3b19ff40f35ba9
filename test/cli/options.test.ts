// CLI behaviour around the options (issue 12): failed starts leave nothing behind, --version,
// short errors with suggestions, a run's config.json as --config, --resume auto.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { didYouMean, editDistance } from '../../src/suggest.js';

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

describe('lmcl: version, short errors, suggestions', () => {
  it('--version prints the package version', () => {
    const version = (JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string }).version;
    for (const flag of ['--version', '-V']) {
      const { status, stdout } = lmcl([flag]);
      expect(status).toBe(0);
      expect(stdout).toBe(`${version}\n`);
    }
  });

  it('an unknown flag prints the error and one hint line, not the whole help', () => {
    const { status, stderr } = lmcl(['train', '--lr-typ', 'cosine']);
    expect(status).toBe(1);
    expect(stderr).toBe("error: unknown option '--lr-typ'\n(Did you mean --lr-type?)\nrun 'lmcl train --help' for the options\n");
    const badValue = lmcl(['train', '--lr', 'abc']);
    expect(badValue.stderr.trim().split('\n')).toEqual(["error: option '--lr <x>' argument 'abc' is invalid. --lr expects a number, got 'abc'", "run 'lmcl train --help' for the options"]);
    const plot = lmcl(['plot', '--bogus', 'x']);
    expect(plot.stderr).toMatch(/^error: unknown option '--bogus'\nrun 'lmcl plot --help' for the options\n$/);
  });

  it("suggests the nearest --method, --arch and config-file key (edit distance, case-insensitive)", () => {
    const method = lmcl(['train', '--method', 'DLM']);
    expect(method.status).toBe(1);
    expect(method.stderr).toMatch(/Allowed choices are baseline, dml, mcl, lmcl\. \(did you mean 'dml'\?\)/);
    const arch = lmcl(['train', '--arch', 'ResNet8', '--out', 'suggested']);
    expect(arch.status).toBe(1);
    expect(arch.stderr).toMatch(/^lmcl: --arch: unknown architecture 'ResNet8' \(did you mean 'resnet8'\?\)/);
    const cohort = lmcl(['train', '--arch', 'resnet14,wrn_16_3', '--out', 'suggested']);
    expect(cohort.stderr).toMatch(/unknown architecture 'wrn_16_3' \(did you mean 'wrn_16_2'\?\)/);
    fs.writeFileSync(path.join(work, 'typo.yaml'), 'lr-typ: cosine\n');
    expect(lmcl(['train', '--config', 'typo.yaml']).stderr).toBe("lmcl: config file 'typo.yaml': unknown option 'lr-typ' (did you mean 'lr-type'?)\n");
    fs.writeFileSync(path.join(work, 'typo.json'), '{"weightDecy": 0.001}');
    expect(lmcl(['train', '--config', 'typo.json']).stderr).toBe("lmcl: config file 'typo.json': unknown option 'weightDecy' (did you mean 'weightDecay'?)\n");
    fs.writeFileSync(path.join(work, 'method.yaml'), 'method: lmlc\n');
    expect(lmcl(['train', '--config', 'method.yaml']).stderr).toMatch(/--method must be one of baseline, dml, mcl, lmcl, got 'lmlc' \(did you mean 'lmcl'\?\)/);
    expect(fs.existsSync(path.join(work, 'suggested'))).toBe(false);
  });
});

describe('didYouMean', () => {
  it('counts an adjacent swap as one edit, ignores case, lists ties, and stays quiet when nothing is close', () => {
    expect(editDistance('dlm', 'dml')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(didYouMean('DML', ['baseline', 'dml'])).toBe(" (did you mean 'dml'?)");
    expect(didYouMean('resnet', ['resnet8', 'resnet14', 'wrn_16_2'])).toBe(" (did you mean 'resnet8'?)");
    expect(didYouMean('resnet3', ['resnet8', 'resnet32'])).toBe(" (did you mean 'resnet8' or 'resnet32'?)");
    expect(didYouMean('crd', ['baseline', 'dml', 'mcl', 'lmcl'])).toBe('');
  });
});

/** metrics.jsonl without the fields that are wall-clock times or memory readings. */
function metricsWithoutTimes(run: string): unknown[] {
  return fs.readFileSync(path.join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => {
    const record = JSON.parse(line) as Record<string, unknown>;
    for (const key of ['imagesPerSecond', 'trainSeconds', 'evalSeconds', 'elapsedSeconds', 'dataSeconds', 'rssMegabytes']) delete record[key];
    return record;
  });
}

describe("lmcl train --config <run>/config.json (reproduce a run)", () => {
  it("accepts a run's own config.json and trains the same run again", () => {
    const first = lmcl(['train', ...tiny, '--out', 'original', '--quiet']);
    expect(first.status).toBe(0);
    const original = path.join(work, 'original', 'dml_resnet8x2_fashion-mnist_seed0');
    const again = lmcl(['train', '--config', path.join(original, 'config.json'), '--out', 'again']);
    expect(again.stderr).not.toMatch(/^lmcl:/m);
    expect(again.status).toBe(0);
    expect(again.stderr).toMatch(/config file '.*config\.json' is a run's config\.json: reusing its options; its records \(runDir, ensemble, selection, networks, parameterSets, engine, node, resumedFrom\) are not options and are ignored/);
    const reproduced = path.join(work, 'again', 'dml_resnet8x2_fashion-mnist_seed0');
    const options = (run: string): Record<string, unknown> => {
      const record = JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8')) as Record<string, unknown>;
      for (const key of ['runDir', 'out', 'engine', 'node', 'resumedFrom']) delete record[key];
      return record;
    };
    expect(options(reproduced)).toEqual(options(original));
    expect(metricsWithoutTimes(reproduced)).toEqual(metricsWithoutTimes(original));
  });

  it("ignores, with a note, the recorded run's resume and the absolute paths that do not exist on this host", () => {
    const original = path.join(work, 'original', 'dml_resnet8x2_fashion-mnist_seed0');
    const record = JSON.parse(fs.readFileSync(path.join(original, 'config.json'), 'utf8')) as Record<string, unknown>;
    const elsewhere = { ...record, out: '/home/someone-else/runs', resume: 'auto', runDir: '/home/someone-else/runs/x', resumedFrom: '/home/someone-else/runs/x/checkpoints/checkpoint-e0001-s2' };
    fs.writeFileSync(path.join(work, 'elsewhere.json'), JSON.stringify(elsewhere));
    const { status, stderr } = lmcl(['train', '--config', 'elsewhere.json']);
    expect(status).toBe(0);
    expect(stderr).toMatch(/config file 'elsewhere\.json': not resuming as the recorded run did \(resume "auto"\): this is a fresh run/);
    expect(stderr).toMatch(/config file 'elsewhere\.json': out "\/home\/someone-else\/runs" does not exist on this host; using the default \(give --out to choose\)/);
    expect(fs.existsSync(path.join(work, 'runs', 'dml_resnet8x2_fashion-mnist_seed0', 'config.json'))).toBe(true);
    // A flag replaces the path anyway: no note about it.
    const flagged = lmcl(['train', '--config', 'elsewhere.json', '--out', 'flagged']);
    expect(flagged.status).toBe(0);
    expect(flagged.stderr).toMatch(/not resuming as the recorded run did/);
    expect(flagged.stderr).not.toMatch(/does not exist on this host/);
  });
});

describe('lmcl plot', () => {
  it('-o curves.svg writes that one file: train and test panels, legend naming network and head, seeds as mean ± std', () => {
    for (const seed of ['0', '1']) expect(lmcl(['train', ...tiny, '--epochs', '2', '--seed', seed, '--out', 'seeds', '--quiet']).status).toBe(0);
    const runs = ['seed0', 'seed1'].map((seed) => path.join('seeds', `dml_resnet8x2_fashion-mnist_${seed}`));
    const { status, stdout, stderr } = lmcl(['plot', ...runs, '-o', 'curves.svg', '--logy']);
    expect(stderr).toBe('');
    expect(status).toBe(0);
    expect(stdout).toBe('wrote curves.svg: train loss, test loss (final heads), test top-1 (%)\n');
    expect(fs.readdirSync(work).filter((name) => name.endsWith('.svg'))).toEqual(['curves.svg']);
    const svg = fs.readFileSync(path.join(work, 'curves.svg'), 'utf8');
    expect([...svg.matchAll(/<g class="panel" data-title="([^"]*)"/g)].map((m) => m[1])).toEqual(['train loss', 'test loss (final heads)', 'test top-1 (%)']);
    // One group (the two seeds): the legend names only the metric, the title the runs.
    for (const words of ['net0 test top-1', 'net1 test top-1', 'ensemble test top-1', 'net0 test loss', 'train loss (total)', 'train KD']) expect(svg).toContain(`>${words}</text>`);
    expect(svg).toContain('dml_resnet8x2_fashion-mnist_seed* (mean ± std, seeds 0,1)');
    expect(svg).toMatch(/<path class="band" d="M /);
    const ids = [...svg.matchAll(/ id="([^"]+)"/g)].map((m) => m[1]);
    expect(new Set(ids).size).toBe(3);
    for (const label of [...svg.matchAll(/<text class="x-tick"[^>]*>([^<]*)</g)].map((m) => m[1])) expect(label).toMatch(/^\d+$/);
  });
});
