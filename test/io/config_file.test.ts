// readConfigFile: JSON and YAML mappings, with errors that name the file and the place.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readConfigFile } from '../../src/io/config_file.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-config-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function file(name: string, text: string): string {
  const target = path.join(dir, name);
  fs.writeFileSync(target, text);
  return target;
}

const expected = { model: ['resnet32', 'resnet32'], lr: 0.05, weightDecay: 5e-4, nesterov: true, schedule: { type: 'cosine', warmup: 0 }, tag: null };

describe('readConfigFile', () => {
  it('reads JSON', () => {
    expect(readConfigFile(file('a.json', JSON.stringify(expected, null, 2)))).toEqual(expected);
  });

  it('reads YAML (.yaml and .yml) with the core schema', () => {
    const yaml = [
      '# a comment',
      'model: [resnet32, resnet32]',
      'lr: 0.05',
      'weightDecay: 5e-4',
      'nesterov: true',
      'schedule:',
      '  type: cosine',
      '  warmup: 0',
      'tag: ~',
    ].join('\n');
    expect(readConfigFile(file('a.yaml', yaml))).toEqual(expected);
    expect(readConfigFile(file('a.YML', `${yaml}\ndate: 2024-01-01\nanswer: yes\n`))).toEqual({ ...expected, date: '2024-01-01', answer: 'yes' });
  });

  it('names a missing file, a directory and an unknown extension', () => {
    expect(() => readConfigFile(path.join(dir, 'missing.yaml'))).toThrow(/config file '.*missing\.yaml' not found/);
    fs.mkdirSync(path.join(dir, 'folder.json'));
    expect(() => readConfigFile(path.join(dir, 'folder.json'))).toThrow(/is a directory/);
    expect(() => readConfigFile(file('a.toml', 'x = 1'))).toThrow(/unsupported extension '\.toml' \(expected \.json, \.yaml or \.yml\)/);
  });

  it('reports JSON parse errors with line and column', () => {
    expect(() => readConfigFile(file('bad.json', '{\n  "lr": 0.1,\n}\n'))).toThrow(/config file '.*bad\.json': invalid JSON: .*line 3,? column 1/);
  });

  it('reports YAML parse errors with line and column', () => {
    expect(() => readConfigFile(file('bad.yaml', 'lr: 0.1\nmodel: [a,\n b: 3\n'))).toThrow(/config file '.*bad\.yaml': invalid YAML at line \d+, column \d+: /);
    expect(() => readConfigFile(file('dup.yaml', 'lr: 0.1\nlr: 0.2\n'))).toThrow(/invalid YAML at line 2, column 1: Map keys must be unique/);
    expect(() => readConfigFile(file('multi.yaml', 'a: 1\n---\nb: 2\n'))).toThrow(/multiple documents/);
  });

  it('requires a mapping at the top level', () => {
    expect(() => readConfigFile(file('empty.yaml', ''))).toThrow(/top level must be a mapping .* got empty/);
    expect(() => readConfigFile(file('list.yaml', '- a\n- b\n'))).toThrow(/got a list/);
    expect(() => readConfigFile(file('scalar.json', '3'))).toThrow(/got a number/);
  });
});
