// Runs a whole test file once per CPU kernel level (avx512, avx2, portable) in child vitest
// processes: the level (LMCL_CPU_KERNELS) is read once per process, so each level needs its own.
// Call at the end of a file: in the parent run it adds one test per level; in a child run it adds
// a check that the child really runs at the requested level.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { native } from '../../src/native/index.js';

const levels = ['portable', 'avx2', 'avx512'];

export function runOnEverySimdLevel(fileUrl: string, suiteName: string): void {
  const childLevel = process.env.LMCL_TEST_SIMD_CHILD;
  it.runIf(childLevel !== undefined)('child process runs at (or below) the requested SIMD level', () => {
    const simd = native().info().simd;
    expect(levels.indexOf(simd)).toBeLessThanOrEqual(levels.indexOf(childLevel ?? 'avx512'));
    if (childLevel !== 'avx512') expect(simd).toBe(childLevel);
  });
  describe.skipIf(childLevel !== undefined)(`${suiteName} on every SIMD path (child processes)`, () => {
    const file = fileURLToPath(fileUrl);
    const root = fileURLToPath(new URL('../../', import.meta.url));
    for (const level of ['avx512', 'avx2', 'portable']) {
      it(`LMCL_CPU_KERNELS=${level}`, () => {
        const child = spawnSync(process.execPath, [`${root}node_modules/vitest/vitest.mjs`, 'run', file], {
          cwd: root,
          env: { ...process.env, LMCL_CPU_KERNELS: level, LMCL_TEST_SIMD_CHILD: level, NO_COLOR: '1' },
          encoding: 'utf8',
        });
        // eslint-disable-next-line no-control-regex
        const output = (child.stdout + child.stderr).replace(/\u001b\[[0-9;]*m/g, '');
        expect(output, output).toMatch(/Tests\s+\d+ passed/);
        expect(child.status, output).toBe(0);
      });
    }
  });
}
