// Every registered architecture trains: a few SGD steps on one tiny batch make the loss fall,
// with the auxiliary branches on (so every head, branch and parameter takes part). Small inputs
// keep this quick: 16×16 for the CIFAR models, 32×32 for the ImageNet layout (stride 32).
import { describe, expect, it } from 'vitest';
import { F, models, optim, tensor, tidy } from '../../src/index.js';
import { randomArray } from '../helpers/random.js';

const imageNetLayout = new Set(['resnet18', 'resnet34', 'resnet50']);

describe('overfit one batch, every architecture', () => {
  for (const name of models.listModels()) {
    it(name, () => {
      const size = imageNetLayout.has(name) ? 32 : 16;
      const model = models.createModel(name, { numClasses: 4, inChannels: 3, imageSize: size, auxiliary: true });
      // A gentle step: batch-4 batch statistics are noisy and the deepest models overshoot at lr 0.02
      // (ResNet-110 and ResNet-50, whose residual sums grow with depth, even at 0.01).
      const optimizer = new optim.SGD(model.parameters(), { lr: imageNetLayout.has(name) || name === 'resnet110' ? 0.002 : 0.01, momentum: 0.5 });
      const x = tensor(randomArray(4 * 3 * size * size), [4, 3, size, size]);
      const labels = Int32Array.of(0, 1, 2, 3);
      const losses: number[] = [];
      const steps = imageNetLayout.has(name) ? 4 : 6;
      for (let step = 0; step < steps; step += 1) {
        losses.push(tidy(() => {
          const out = model.forward(x);
          expect(out.logits.length).toBe(model.stageCount);
          let loss = F.crossEntropy(out.logits[0]!, labels);
          for (const logits of out.logits.slice(1)) loss = F.add(loss, F.crossEntropy(logits, labels));
          optimizer.zeroGrad();
          loss.backward();
          optimizer.step();
          return loss.item();
        }));
      }
      expect(losses.every(Number.isFinite), losses.join(', ')).toBe(true);
      expect(losses[losses.length - 1]!, losses.join(', ')).toBeLessThan(losses[0]!);
      optimizer.dispose();
      model.dispose();
      x.dispose();
    }, 120_000);
  }
});
