// The loader: LMCL_NATIVE_PATH override (and a clear error when it points nowhere), otherwise
// build-cuda/ when present, otherwise node-gyp-build; engineInfo() says which and why.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { engineInfo } from '../../src/index.js';

const root = join(import.meta.dirname, '..', '..');
const loaderScript = `import('${join(root, 'dist', 'src', 'index.js')}').then((lmcl) => { const info = lmcl.engineInfo(); console.log(JSON.stringify({ path: info.path, reason: info.reason })); }).catch((error) => { console.error(error.message); process.exit(3); });`;

function runLoader(environment: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', loaderScript], {
    env: { ...process.env, ...environment },
    encoding: 'utf8',
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('native loader', () => {
  it('reports the loaded binary and the reason', () => {
    const info = engineInfo();
    expect(existsSync(info.path) || info.reason.includes('node-gyp-build')).toBe(true);
    expect(info.reason.length).toBeGreaterThan(0);
    expect(['avx512', 'avx2', 'portable']).toContain(info.simd);
    expect(info.threads).toBeGreaterThan(0);
  });

  const compiled = existsSync(join(root, 'dist', 'src', 'index.js'));
  it.runIf(compiled)('LMCL_NATIVE_PATH wins, and a missing file is a clear error', () => {
    const binary = engineInfo().path;
    const overridden = runLoader({ LMCL_NATIVE_PATH: binary });
    expect(overridden.status).toBe(0);
    expect(JSON.parse(overridden.stdout).reason).toBe('LMCL_NATIVE_PATH override');
    const missing = runLoader({ LMCL_NATIVE_PATH: join(root, 'no-such-addon.node') });
    expect(missing.status).toBe(3);
    expect(missing.stderr).toMatch(/LMCL_NATIVE_PATH points to a missing file/);
  });

  it.runIf(compiled)('LMCL_NUM_THREADS sets the pool size', () => {
    const result = spawnSync(process.execPath, ['--input-type=module', '-e',
      `import('${join(root, 'dist', 'src', 'index.js')}').then((lmcl) => console.log(lmcl.engineInfo().threads));`], {
      env: { ...process.env, LMCL_NUM_THREADS: '1' }, encoding: 'utf8' });
    expect(result.stdout.trim()).toBe('1');
  });

  it.runIf(compiled)('LMCL_MATMUL_PRECISION sets the matmul precision; a bad value is an Error naming it', () => {
    const under = (value: string) => spawnSync(process.execPath, ['--input-type=module', '-e',
      `import('${join(root, 'dist', 'src', 'index.js')}').then((lmcl) => console.log(lmcl.getFloat32MatmulPrecision())).catch((error) => { console.error(error.message); process.exit(3); });`], {
      env: { ...process.env, LMCL_MATMUL_PRECISION: value }, encoding: 'utf8' });
    expect(under('high').stdout.trim()).toBe('high');
    expect(under('highest').stdout.trim()).toBe('highest');
    const bad = under('medium');
    expect(bad.status).toBe(3);
    expect(bad.stderr).toMatch(/LMCL_MATMUL_PRECISION: setMatmulPrecision: matmul precision 'medium' \(BF16 tensor cores\) is not implemented/);
  });
});
