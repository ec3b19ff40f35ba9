// Every document the repository refers to is in it: no tracked source, script or document names
// a path outside the checkout (the architecture and method notes live in docs/).
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const textFile = /\.(ts|mjs|js|cjs|md|cpp|cu|cuh|h|sh|py|json|gypi|gyp|txt)$|^\.ci\/run$/;
// A sibling folder of the checkout, or this workplace's absolute paths.
const outside = /\.\.\/shared\/|\/work\/(shared|main)\b/;

describe('paths named in the repository', () => {
  it('no tracked text file names a path outside the checkout', () => {
    const files = execFileSync('git', ['ls-files'], { cwd: root, encoding: 'utf8' })
      .split('\n')
      .filter((file) => textFile.test(file) && !file.startsWith('experiments/results/'));
    expect(files.length).toBeGreaterThan(50);
    const offenders = files.flatMap((file) =>
      readFileSync(join(root, file), 'utf8')
        .split('\n')
        .flatMap((line, index) => (outside.test(line) ? [`${file}:${index + 1}: ${line.trim()}`] : [])),
    );
    expect(offenders).toEqual([]);
  });
});
