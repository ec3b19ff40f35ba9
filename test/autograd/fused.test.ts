// fusedOrComposite: every op that declares a fused native backward and a composite one gets the
// same first-order gradients from both (forced with withBackwardPath), and the composite path is
// the one taken under createGraph. The op list is read from the source: a new
// `fusedOrComposite('<op>', ...)` without a case here fails the coverage test.
// Tolerance: rtol 1e-4 / atol 1e-5 relative to the gradient's scale (float32; the paths sum in
// different orders and the fused kernels use a polynomial exp).
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { F, Tensor, grad, tensor } from '../../src/index.js';
import { withBackwardPath } from '../../src/autograd/fused.js';
import { expectClose, randomArray, randomTensor } from '../helpers/random.js';

type Case = () => { inputs: Tensor[]; output: () => Tensor };

function labelsOf(batch: number, classes: number): Int32Array {
  return Int32Array.from({ length: batch }, () => Math.floor(Math.random() * classes));
}

/** One case per op name passed to fusedOrComposite; each returns fresh random inputs. */
export const agreementCases: Record<string, Case> = {
  softmax: () => {
    const x = randomTensor([6, 9], { requiresGrad: true, scale: 2 });
    return { inputs: [x], output: () => F.softmax(x, 1) };
  },
  logSoftmax: () => {
    const x = randomTensor([3, 5, 4], { requiresGrad: true, scale: 2 });
    return { inputs: [x], output: () => F.logSoftmax(x, 1) };
  },
  crossEntropy: () => {
    const x = randomTensor([7, 5], { requiresGrad: true, scale: 2 });
    const labels = labelsOf(7, 5);
    return { inputs: [x], output: () => F.crossEntropy(x, labels, { reduction: 'none' }) };
  },
  batchNorm: () => {
    const x = randomTensor([4, 3, 5, 5], { requiresGrad: true });
    const weight = randomTensor([3], { requiresGrad: true });
    const bias = randomTensor([3], { requiresGrad: true });
    return { inputs: [x, weight, bias], output: () => F.batchNorm(x, null, null, weight, bias, { training: true }) };
  },
  conv2dBias: () => {
    const x = randomTensor([2, 3, 6, 6]);
    const weight = randomTensor([4, 3, 3, 3]);
    const bias = randomTensor([4], { requiresGrad: true });
    return { inputs: [bias], output: () => F.conv2d(x, weight, bias, { padding: 1 }) };
  },
  normalize: () => {
    const x = randomTensor([5, 8], { requiresGrad: true });
    return { inputs: [x], output: () => F.normalize(x, { dim: 1 }) };
  },
  cosineSimilarity: () => {
    const a = randomTensor([5, 8], { requiresGrad: true });
    const b = randomTensor([5, 8], { requiresGrad: true });
    return { inputs: [a, b], output: () => F.cosineSimilarity(a, b, { dim: 1 }) };
  },
  supConInfoNCE: () => {
    const anchor = randomTensor([9, 6], { requiresGrad: true });
    const contrast = randomTensor([9, 6], { requiresGrad: true });
    const weights = randomTensor([9], { requiresGrad: true });
    const labels = labelsOf(9, 3);
    return { inputs: [anchor, contrast, weights], output: () => F.supConInfoNCE(anchor, contrast, labels, { temperature: 0.3, weights }) };
  },
  contrastiveKL: () => {
    const [sa, sc] = [randomTensor([7, 5], { requiresGrad: true }), randomTensor([7, 5], { requiresGrad: true })];
    const [ta, tc] = [randomTensor([7, 5]), randomTensor([7, 5])];
    const weights = randomTensor([7], { requiresGrad: true });
    return { inputs: [sa, sc, weights], output: () => F.contrastiveKL(sa, sc, ta, tc, { temperature: 0.3, klTemperature: 2, weights }) };
  },
  distillKL: () => {
    const student = randomTensor([6, 10], { requiresGrad: true, scale: 3 });
    const teacher = randomTensor([6, 10], { scale: 3 });
    const weights = randomTensor([6], { requiresGrad: true });
    return { inputs: [student, weights], output: () => F.distillKL(student, teacher, { temperature: 3, weights }) };
  },
  cohortContrastive: () => {
    const z = [0, 1, 2].map(() => randomTensor([8, 4], { requiresGrad: true }));
    const weights = randomTensor([3, 8], { requiresGrad: true });
    const labels = labelsOf(8, 3);
    return {
      inputs: [...z, weights],
      output: () => F.cohortContrastive(z, labels, { pairs: [[0, 1], [1, 2], [2, 0]], temperature: 0.3, klTemperature: 2, weights }),
    };
  },
  memoryInfoNCE: () => {
    const query = randomTensor([6, 8], { requiresGrad: true });
    const bank = randomTensor([20, 8]);
    const indices = Int32Array.from({ length: 6 * 11 }, () => Math.floor(Math.random() * 20));
    const weights = randomTensor([6], { requiresGrad: true });
    return { inputs: [query, weights], output: () => F.memoryInfoNCE(query, bank, indices, { positives: 2, temperature: 0.2, weights }) };
  },
};

/** Op names declared in src/ through fusedOrComposite('<name>' (or a conditional of names). */
function declaredOps(): Set<string> {
  const names = new Set<string>();
  const visit = (directory: string): void => {
    for (const entry of readdirSync(directory, { withFileTypes: true })) {
      const path = join(directory, entry.name);
      if (entry.isDirectory()) visit(path);
      else if (entry.name.endsWith('.ts') && !path.endsWith(join('autograd', 'fused.ts'))) {
        const source = readFileSync(path, 'utf8');
        for (const match of source.matchAll(/fusedOrComposite\(([^,]+),/g)) {
          for (const name of match[1]!.matchAll(/'([A-Za-z0-9_]+)'/g)) names.add(name[1]!);
        }
      }
    }
  };
  visit(new URL('../../src', import.meta.url).pathname);
  return names;
}

function gradientsOn(path: 'fused' | 'composite', make: ReturnType<Case>, projection: Float32Array): Float32Array[] {
  return withBackwardPath(path, () => {
    const out = make.output();
    const weights = tensor(projection, out.shape);
    return grad(F.sum(F.mul(out, weights)), make.inputs).map((g) => g.toFloat32Array());
  });
}

describe('fusedOrComposite', () => {
  it('every op that declares both paths has an agreement case', () => {
    const declared = declaredOps();
    expect(declared.size).toBeGreaterThanOrEqual(12);
    const missing = [...declared].filter((name) => !(name in agreementCases));
    expect(missing).toEqual([]);
  });

  for (const [name, makeCase] of Object.entries(agreementCases)) {
    it(`${name}: the fused and composite backward give the same gradients`, () => {
      const made = makeCase();
      const probe = made.output();
      const projection = randomArray(probe.size);
      const fused = gradientsOn('fused', made, projection);
      const composite = gradientsOn('composite', made, projection);
      expect(fused.length).toBe(composite.length);
      fused.forEach((values, index) => {
        const scale = composite[index]!.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expectClose(values, composite[index]!, { rtol: 1e-4, atol: 1e-5 * Math.max(1, scale), label: `${name} input ${index}` });
      });
      // The composite path really is different work: it records a graph under createGraph.
      const out = made.output();
      const gradients = grad(F.sum(F.mul(out, tensor(projection, out.shape))), made.inputs, { createGraph: true });
      expect(gradients.some((g) => g.requiresGrad) || name === 'conv2dBias').toBe(true);
    });
  }
});
