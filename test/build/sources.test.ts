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
  // One list per layer; "sources" (what node-gyp compiles) is the CPU build: everything but the
  // CUDA sources and the driver. CMakeLists.txt reads the lists themselves.
  const list = JSON.parse(readFileSync(join(nativeDir, 'sources.gypi'), 'utf8')) as {
    sources: string[];
    variables: Record<'core_files' | 'cpu_files' | 'binding_files' | 'cuda_stub_files' | 'cuda_files' | 'driver_files', string[]>;
  };
  const v = list.variables;
  const listed = [...v.core_files, ...v.cpu_files, ...v.binding_files, ...v.cuda_stub_files, ...v.cuda_files, ...v.driver_files];
  const nativeFiles = () =>
    [...walk(join(nativeDir, 'src')), ...walk(join(nativeDir, 'binding')), ...walk(join(nativeDir, 'test'))].map((path) =>
      relative(nativeDir, path),
    );

  it('is strict JSON with the expected keys', () => {
    for (const key of ['core_files', 'cpu_files', 'binding_files', 'cuda_stub_files', 'cuda_files', 'driver_files'] as const) {
      expect(Array.isArray(v[key]), key).toBe(true);
    }
    expect(list.sources).toEqual(['<@(core_files)', '<@(cpu_files)', '<@(binding_files)', '<@(cuda_stub_files)']);
  });

  it('lists every file under native/src, native/binding and native/test, each once', () => {
    const files = nativeFiles().filter((path) => /\.(cpp|cu|h|cuh|hpp)$/.test(path));
    const missing = files.filter((path) => !listed.includes(path));
    expect(missing, `not in native/sources.gypi: ${missing.join(', ')}`).toEqual([]);
    expect(listed.filter((path, index) => listed.indexOf(path) !== index)).toEqual([]);
  });

  it('lists only files that exist', () => {
    const present = new Set(nativeFiles());
    expect(listed.filter((path) => !present.has(path))).toEqual([]);
  });

  it('each list holds its own folder: core, cpu, binding, cuda (.cu and its .cuh), cuda_stub, driver', () => {
    const folders: Record<keyof typeof v, RegExp> = {
      core_files: /^src\/core\//, cpu_files: /^src\/cpu\//, binding_files: /^binding\//,
      cuda_files: /^src\/cuda\/.*\.cuh?$/, cuda_stub_files: /^src\/cuda_stub\//, driver_files: /^test\//,
    };
    for (const [key, pattern] of Object.entries(folders)) {
      for (const path of v[key as keyof typeof v]) expect(path, key).toMatch(pattern);
    }
  });

  it('both build files read it, and CMake reads every list', () => {
    expect(readFileSync(join(root, 'binding.gyp'), 'utf8')).toContain('native/sources.gypi');
    const cmake = readFileSync(join(root, 'CMakeLists.txt'), 'utf8');
    expect(cmake).toContain('native/sources.gypi');
    for (const key of Object.keys(v)) expect(cmake).toContain(`variables ${key}`);
  });

  it('only native/binding includes napi.h', () => {
    const offenders = walk(nativeDir)
      .filter((path) => !relative(nativeDir, path).startsWith('binding'))
      .filter((path) => /\.(cpp|cu|h|cuh)$/.test(path))
      .filter((path) => /#include\s*[<"]napi\.h[>"]/.test(readFileSync(path, 'utf8')));
    expect(offenders.map((path) => relative(root, path))).toEqual([]);
  });

  it('every lmcl::cpu kernel entry point is in the op list (native/include/lmcl/ops.def)', () => {
    const ops = readFileSync(join(nativeDir, 'include', 'lmcl', 'ops.def'), 'utf8');
    const listedOps = new Set([...ops.matchAll(/^LMCL_OP\(\w+, (\w+),/gm)].map((match) => match[1]));
    const cpuOnly = new Set(['measure_fma_peak']); // peak.h: measures this machine, not a tensor op
    const declared = readdirSync(join(nativeDir, 'include', 'lmcl'))
      .filter((name) => name.endsWith('.h'))
      .flatMap((name) => {
        const text = readFileSync(join(nativeDir, 'include', 'lmcl', name), 'utf8').replace(/namespace gemm_detail \{[\s\S]*?\}  \/\/ namespace gemm_detail/g, '');
        return [...text.matchAll(/namespace cpu \{([\s\S]*?)\}  \/\/ namespace cpu/g)].flatMap((block) =>
          [...block[1]!.matchAll(/^Status (\w+)\(/gm)].map((match) => match[1]!),
        );
      });
    expect(declared.length).toBeGreaterThan(40);
    expect(declared.filter((name) => !listedOps.has(name) && !cpuOnly.has(name))).toEqual([]);
    expect([...listedOps].filter((name) => !declared.includes(name!))).toEqual([]);
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
