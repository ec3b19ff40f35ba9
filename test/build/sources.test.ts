// The one native source list (native/sources.gypi) must name every file under native/src and
// native/binding, and the layering rule must hold: napi.h only in native/binding.
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const nativeDir = join(root, 'native');

function walk(directory: string): string[] {
  return readdirSync(directory).flatMap((entry) => {
    const path = join(directory, entry);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

describe('native source list', () => {
  const list = JSON.parse(readFileSync(join(nativeDir, 'sources.gypi'), 'utf8')) as {
    sources: string[];
    variables: { cuda_sources: string[]; cuda_stub_sources: string[] };
  };
  const listed = new Set([...list.sources, ...list.variables.cuda_sources, ...list.variables.cuda_stub_sources]);

  it('is strict JSON with the expected keys', () => {
    expect(Array.isArray(list.sources)).toBe(true);
    expect(Array.isArray(list.variables.cuda_sources)).toBe(true);
    expect(Array.isArray(list.variables.cuda_stub_sources)).toBe(true);
  });

  it('lists every file under native/src and native/binding', () => {
    const files = [...walk(join(nativeDir, 'src')), ...walk(join(nativeDir, 'binding'))]
      .map((path) => relative(nativeDir, path))
      .filter((path) => /\.(cpp|cu|h|cuh|hpp)$/.test(path));
    const missing = files.filter((path) => !listed.has(path));
    expect(missing, `not in native/sources.gypi: ${missing.join(', ')}`).toEqual([]);
  });

  it('lists only files that exist', () => {
    const present = new Set(
      [...walk(join(nativeDir, 'src')), ...walk(join(nativeDir, 'binding'))].map((path) => relative(nativeDir, path)),
    );
    expect([...listed].filter((path) => !present.has(path))).toEqual([]);
  });

  it('CUDA sources are .cu files under src/cuda, stubs under src/cuda_stub, neither in the CPU list twice', () => {
    for (const path of list.variables.cuda_sources) expect(path.startsWith('src/cuda/')).toBe(true);
    for (const path of list.variables.cuda_stub_sources) {
      expect(path.startsWith('src/cuda_stub/')).toBe(true);
      expect(list.sources).toContain(path); // the CPU build compiles the stubs
    }
    for (const path of list.variables.cuda_sources) expect(list.sources).not.toContain(path);
  });

  it('both build files read it', () => {
    expect(readFileSync(join(root, 'binding.gyp'), 'utf8')).toContain('native/sources.gypi');
    expect(readFileSync(join(root, 'CMakeLists.txt'), 'utf8')).toContain('native/sources.gypi');
  });

  it('only native/binding includes napi.h', () => {
    const offenders = walk(nativeDir)
      .filter((path) => !relative(nativeDir, path).startsWith('binding'))
      .filter((path) => /\.(cpp|cu|h|cuh)$/.test(path))
      .filter((path) => /#include\s*[<"]napi\.h[>"]/.test(readFileSync(path, 'utf8')));
    expect(offenders.map((path) => relative(root, path))).toEqual([]);
  });
});

// Data flows one way (design.md): cli → train → losses → models → data/io → nn/optim →
// ops/autograd/tensor/profiler → native (the profiler's core sits with autograd, which times
// backward nodes through it; `lmcl profile`'s session is in train/). A module may import its own layer or any layer below; peers
// within a rank (ops/autograd/tensor, nn/optim, data/io) may import each other.
describe('TypeScript layering', () => {
  const rank: Record<string, number> = {
    native: 0, tensor: 1, autograd: 1, ops: 1, profiler: 1, nn: 2, optim: 2, data: 3, io: 3, models: 4, losses: 5, train: 6, cli: 7,
  };
  const srcDir = join(root, 'src');
  const imports = walk(srcDir)
    .filter((path) => path.endsWith('.ts'))
    .flatMap((path) => {
      const layer = relative(srcDir, path).split(/[\\/]/)[0]!;
      const text = readFileSync(path, 'utf8');
      return [...text.matchAll(/(?:from|import)\s*\(?\s*'\.\.\/([a-z_]+)\//g)].map((match) => ({ file: relative(srcDir, path), layer, target: match[1]! }));
    })
    .filter(({ layer }) => layer in rank);

  it('every src/ folder has a rank', () => {
    const folders = readdirSync(srcDir).filter((entry) => statSync(join(srcDir, entry)).isDirectory());
    expect(folders.filter((folder) => !(folder in rank))).toEqual([]);
  });

  it('nothing imports a layer above its own', () => {
    const upward = imports.filter(({ layer, target }) => rank[target]! > rank[layer]!).map(({ file, target }) => `${file} → ${target}`);
    expect(upward).toEqual([]);
  });

  it('src/losses imports neither src/train nor src/cli (and is imported by train and cli only)', () => {
    expect(imports.filter(({ layer, target }) => layer === 'losses' && (target === 'train' || target === 'cli'))).toEqual([]);
    expect(imports.some(({ layer, target }) => layer === 'losses' && target === 'ops')).toBe(true); // the scan sees this layer's imports
    expect([...new Set(imports.filter(({ target, layer }) => target === 'losses' && layer !== 'losses').map(({ layer }) => layer))].sort()).toEqual(['cli', 'train']);
  });
});
