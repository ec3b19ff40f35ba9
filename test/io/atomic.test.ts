// writeFileAtomic: the target is always either the old or the new complete file.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { isTemporaryName, makeDirectories, writeFileAtomic } from '../../src/io/atomic.js';
import { RunDirectory } from '../../src/train/rundir.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';

const here = path.dirname(fileURLToPath(import.meta.url));
let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-atomic-'));
});
afterEach(() => {
  vi.restoreAllMocks();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Compiles src/io/{atomic,safetensors}.ts to plain ES modules a child `node` can run. */
function compileIoModules(outDir: string): void {
  fs.writeFileSync(path.join(outDir, 'package.json'), '{"type":"module"}');
  for (const stem of ['atomic', 'safetensors']) {
    const source = fs.readFileSync(path.join(here, '../../src/io', `${stem}.ts`), 'utf8');
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    });
    fs.writeFileSync(path.join(outDir, `${stem}.js`), outputText);
  }
}

describe('makeDirectories', () => {
  it('creates missing parents and accepts existing directories', () => {
    const deep = path.join(dir, 'a', 'b', 'c');
    makeDirectories(deep, 'test');
    makeDirectories(deep, 'test');
    expect(fs.statSync(deep).isDirectory()).toBe(true);
  });

  it('a file in the way is named (ENOTDIR)', () => {
    fs.writeFileSync(path.join(dir, 'file'), 'x');
    expect(() => makeDirectories(path.join(dir, 'file'), 'test')).toThrow(new RegExp(`test: cannot create directory .*file: .*file exists and is not a directory \\(ENOTDIR\\)`));
    expect(() => makeDirectories(path.join(dir, 'file', 'sub'), 'test')).toThrow(/ENOTDIR/);
  });

  it('under /proc: an error with ENOENT and the path, not a hang (Node\'s recursive mkdir loops forever there)', () => {
    expect(() => makeDirectories('/proc/lmcl-test/run/checkpoints', '--out /proc/lmcl-test')).toThrow(
      /--out \/proc\/lmcl-test: cannot create directory \/proc\/lmcl-test: ENOENT: .*mkdir '\/proc\/lmcl-test' \(its parent \/proc exists: that filesystem does not allow creating directories there/,
    );
  });

  it('a read-only filesystem is reported as EROFS with the directory (simulated), for a run directory too', () => {
    const readOnly = Object.assign(new Error(`EROFS: read-only file system, mkdir '${path.join(dir, 'runs')}'`), { code: 'EROFS', errno: -30, syscall: 'mkdir' });
    vi.spyOn(fs, 'mkdirSync').mockImplementation(() => {
      throw readOnly;
    });
    expect(() => makeDirectories(path.join(dir, 'runs', 'x'), 'test')).toThrow(new RegExp(`test: cannot create directory ${dir}/runs: EROFS: read-only file system`));
    const runDir = path.join(dir, 'runs', 'dml_resnet8x2_fashion-mnist_seed0');
    expect(() => new RunDirectory(runDir, null)).toThrow(new RegExp(`run directory ${runDir}: cannot create directory ${dir}/runs: EROFS`));
  });
});

describe('writeFileAtomic', () => {
  it('creates and replaces files, leaving no temporary files', () => {
    const target = path.join(dir, 'a.json');
    writeFileAtomic(target, '{"v":1}');
    writeFileAtomic(target, Buffer.from('{"v":2}'));
    expect(fs.readFileSync(target, 'utf8')).toBe('{"v":2}');
    expect(fs.readdirSync(dir)).toEqual(['a.json']);
  });

  it('writes large buffers completely', () => {
    const target = path.join(dir, 'big.bin');
    const data = Buffer.alloc(20 * 1024 * 1024 + 3);
    for (let index = 0; index < data.length; index += 4093) data[index] = index % 251;
    writeFileAtomic(target, data);
    expect(fs.readFileSync(target).equals(data)).toBe(true);
  });

  for (const step of ['writeSync', 'fsyncSync', 'renameSync'] as const) {
    it(`a failure in ${step} leaves the previous file intact and removes the temporary file`, () => {
      const target = path.join(dir, 'net0.safetensors');
      const previous = new Map([['w', { shape: [2], data: new Float32Array([1, 2]) }]]);
      writeSafetensors(target, previous);
      vi.spyOn(fs, step).mockImplementationOnce(() => {
        throw Object.assign(new Error('injected I/O error'), { code: 'EIO' });
      });
      expect(() => writeSafetensors(target, new Map([['w', { shape: [3], data: new Float32Array([7, 8, 9]) }]]))).toThrow(
        /writeFileAtomic: could not write '.*net0\.safetensors': injected I\/O error/,
      );
      expect(fs.readdirSync(dir)).toEqual(['net0.safetensors']);
      expect(Array.from(readSafetensors(target).tensors.get('w')!.data)).toEqual([1, 2]);
    });
  }

  it('a process SIGKILLed while rewriting a file leaves a complete, loadable file', async () => {
    const moduleDir = path.join(dir, 'modules');
    fs.mkdirSync(moduleDir);
    compileIoModules(moduleDir);
    const target = path.join(dir, 'data', 'net0.safetensors');
    fs.mkdirSync(path.dirname(target));
    const size = 4 * 1024 * 1024; // 16 MB per file: many write(2) chunks, so kills land mid-write
    writeSafetensors(target, new Map([['w', { shape: [size], data: new Float32Array(size).fill(-1) }]]), { generation: '-1' });
    const child = spawn(process.execPath, ['--input-type=module', '-e', `
      import { writeSafetensors } from ${JSON.stringify(path.join(moduleDir, 'safetensors.js'))};
      const size = ${size};
      for (let generation = 0; ; generation += 1) {
        writeSafetensors(${JSON.stringify(target)}, new Map([['w', { shape: [size], data: new Float32Array(size).fill(generation) }]]), { generation: String(generation) });
        if (generation === 1) process.stdout.write('two files written\\n');
      }
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    // Wait until the child has replaced the file at least twice, then kill it at a random moment
    // of a later write.
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`child exited early with ${code}`)));
    });
    await new Promise((resolve) => setTimeout(resolve, 30 + Math.random() * 120));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const { tensors, metadata } = readSafetensors(target);
    const generation = Number(metadata.generation);
    expect(generation).toBeGreaterThanOrEqual(1);
    const data = tensors.get('w')!.data;
    expect(data.length).toBe(size);
    expect(data.every((value) => value === generation)).toBe(true);
    // Whatever is left over is a recognisable temporary file, never the target.
    for (const name of fs.readdirSync(path.dirname(target))) {
      if (name !== 'net0.safetensors') expect(isTemporaryName(name)).toBe(true);
    }
  });
});
