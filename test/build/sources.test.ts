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
