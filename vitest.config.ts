import { defineConfig } from 'vitest/config';

// Native addon suites run in forked processes (not worker threads): a crash in one suite can
// not take the others down, and addon state stays per process.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
