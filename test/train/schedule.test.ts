import { describe, expect, it } from 'vitest';
import { checkSchedule, learningRate } from '../../src/train/schedule.js';
import { resolveTrainConfig, defaultRunName } from '../../src/train/config.js';

describe('learning-rate schedules', () => {
  it('cosine per epoch: lr·½(1+cos(π·e/E)), set at epoch start (reference adjust_lr)', () => {
    const options = { lr: 0.1, epochs: 300, type: 'cosine' as const };
    expect(learningRate(options, 0)).toBe(0.1);
    expect(learningRate(options, 150)).toBeCloseTo(0.05, 12);
    expect(learningRate(options, 299)).toBeCloseTo(0.1 * 0.5 * (1 + Math.cos((Math.PI * 299) / 300)), 15);
    expect(learningRate({ lr: 0.2, epochs: 4, type: 'cosine' }, 1)).toBeCloseTo(0.2 * 0.5 * (1 + Math.SQRT1_2), 15);
  });

  it('multistep: ×gamma at each milestone (reference [150, 225], 0.1)', () => {
    const options = { lr: 0.1, epochs: 300, type: 'multistep' as const, milestones: [150, 225], gamma: 0.1 };
    expect(learningRate(options, 149)).toBe(0.1);
    expect(learningRate(options, 150)).toBeCloseTo(0.01, 15);
    expect(learningRate(options, 224)).toBeCloseTo(0.01, 15);
    expect(learningRate(options, 225)).toBeCloseTo(0.001, 15);
  });

  it('linear warm-up, then the schedule over the remaining epochs', () => {
    const options = { lr: 0.4, epochs: 10, type: 'cosine' as const, warmupEpochs: 3 };
    expect(learningRate(options, 0)).toBeCloseTo(0.1, 15);
    expect(learningRate(options, 1)).toBeCloseTo(0.2, 15);
    expect(learningRate(options, 2)).toBeCloseTo(0.3, 15);
    expect(learningRate(options, 3)).toBe(0.4);
    expect(learningRate(options, 9)).toBeCloseTo(0.4 * 0.5 * (1 + Math.cos((Math.PI * 6) / 7)), 15);
  });

  it('rejects bad schedules', () => {
    expect(() => checkSchedule({ lr: 0.1, epochs: 0, type: 'cosine' })).toThrow(/--epochs/);
    expect(() => checkSchedule({ lr: 0.1, epochs: 5, type: 'cosine', warmupEpochs: 5 })).toThrow(/--warmup-epochs/);
    expect(() => checkSchedule({ lr: 0.1, epochs: 5, type: 'step' as never })).toThrow(/--lr-type/);
  });
});

describe('training config', () => {
  it('fills every default and the bundled sample for the main job', () => {
    const config = resolveTrainConfig({});
    expect(config.method).toBe('lmcl');
    expect(config.auxiliary).toBe(true);
    expect(config.sampler).toBe('m-per-class');
    expect(config.numberNet).toBe(2);
    expect(config.data).toBe('bundled');
    expect(config.nesterov).toBe(true);
    expect(config.weightDecay).toBe(5e-4);
    expect(config.arch).toBe('resnet14');
    expect(config.epochs).toBe(12);
    expect(defaultRunName(config)).toBe('lmcl_resnet14x2_fashion-mnist_seed0');
    expect(resolveTrainConfig({ dataset: 'fashion-mnist' }).data).toBeNull();
  });

  it('accepts kebab-case keys (config files), infers --number-net from a list, rejects unknown keys', () => {
    const config = resolveTrainConfig({ 'batch-size': 32, 'kd-T': 4, arch: 'resnet8,resnet14' });
    expect(config.batchSize).toBe(32);
    expect(config.kdT).toBe(4);
    expect(config.numberNet).toBe(2);
    expect(() => resolveTrainConfig({ bogus: 1 })).toThrow(/unknown option 'bogus'/);
    expect(() => resolveTrainConfig({ method: 'crd' })).toThrow(/--method/);
    expect(() => resolveTrainConfig({ keepLast: -1 })).toThrow(/--keep-last/);
    expect(resolveTrainConfig({ keepLast: 0 }).keepLast).toBe(0); // 0 = keep every checkpoint
  });
});
