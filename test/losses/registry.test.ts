// The method registry: entries are checked when read (option keys, shared options, resume keys),
// and resolveTrainConfig fills and validates every method option from it.
import { describe, expect, it } from 'vitest';
import { defineMethod, type MethodEntry } from '../../src/losses/entry.js';
import { methodOptions, methods, readMethodOptions, getMethod } from '../../src/losses/registry.js';
import { booleanOption, integerOption, numberOption, optionKey } from '../../src/losses/options.js';
import { BaselineMethod } from '../../src/losses/baseline.js';
import { defaultTrainConfig, resolveTrainConfig } from '../../src/train/config.js';

function entry(name: string, options: MethodEntry['options'], resumeKeys: string[] = []): MethodEntry {
  return defineMethod({ name, description: name, options, resumeKeys, create: ({ networks }) => new BaselineMethod(networks) });
}

describe('method registry', () => {
  it('option keys are the camelCase of their flags, as commander names them', () => {
    expect(optionKey('--kd-T')).toBe('kdT');
    expect(optionKey('--meta-freq')).toBe('metaFreq');
    expect(optionKey('--logit-distill')).toBe('logitDistill');
  });

  it('options validate defaults, flags and config values, naming the flag', () => {
    const tau = numberOption({ flag: '--tau', description: 'temperature', default: 0.1, greaterThan: 0 });
    expect(tau.parse('0.07')).toBe(0.07);
    expect(() => tau.parse('abc')).toThrow(/--tau must be a finite number > 0/);
    expect(() => tau.validate(0)).toThrow(/--tau/);
    const freq = integerOption({ flag: '--meta-freq', description: 'k', default: 50, min: 1 });
    expect(() => freq.validate(1.5)).toThrow(/--meta-freq must be an integer ≥ 1/);
    expect(() => numberOption({ flag: '--x', description: 'x', default: -1, atLeast: 0 })).toThrow(/--x/);
    expect(() => booleanOption({ flag: '--logit-distill', description: 'kd', default: false }).validate('yes')).toThrow(/true or false/);
  });

  it('refuses inconsistent entries: key ≠ flag, a shared key declared differently, a trainer key, an unknown resume key', () => {
    const kd = (value: number) => numberOption({ flag: '--kd-T', description: 'T', default: value, greaterThan: 0 });
    expect(() => methodOptions([entry('a', { kd: kd(3) })])).toThrow(/config key is 'kdT'/);
    expect(() => methodOptions([entry('a', { kdT: kd(3) }), entry('b', { kdT: kd(4) })])).toThrow(/declare 'kdT' differently/);
    expect(methodOptions([entry('a', { kdT: kd(3) }), entry('b', { kdT: kd(3) })]).get('kdT')!.methods).toEqual(['a', 'b']);
    const gamma = numberOption({ flag: '--gamma', description: 'soft VCL weight', default: 1, atLeast: 0 });
    expect(() => methodOptions([entry('mcl', { gamma })], new Set(['gamma']))).toThrow(/--gamma collides with the trainer's own 'gamma'/);
    expect(() => methodOptions([entry('a', { kdT: kd(3) }, ['tau'])])).toThrow(/resume key 'tau'/);
  });

  it('the registered entries are consistent with each other and with the trainer options', () => {
    expect(methods.map((m) => m.name)).toEqual(['baseline', 'dml', 'mcl', 'lmcl']);
    expect(getMethod('lmcl').resumeKeys).toContain('metaFreq');
    expect(getMethod('mcl').resumeKeys).toEqual(['vclWeight', 'iclWeight', 'softVclWeight', 'softIclWeight', 'tau', 'featDim', 'kdT', 'logitDistill',
      'contrast', 'negK', 'posK', 'nceM']);
    expect(getMethod('lmcl').resumeKeys).toEqual(expect.arrayContaining(['contrast', 'negK', 'posK', 'nceM']));
    expect(getMethod('dml').resumeKeys).toEqual(['kdT']);
    expect(getMethod('baseline').resumeKeys).toEqual([]);
    expect(defaultTrainConfig.kdT).toBe(3);
  });

  it('contrastive methods default to two images per class, lmcl to the auxiliary stages; given values win', () => {
    expect(resolveTrainConfig({ method: 'mcl' }).sampler).toBe('m-per-class');
    expect(resolveTrainConfig({ method: 'lmcl' })).toMatchObject({ sampler: 'm-per-class', auxiliary: true });
    expect(resolveTrainConfig({ method: 'dml' })).toMatchObject({ sampler: 'shuffle', auxiliary: false });
    expect(resolveTrainConfig({ method: 'mcl', sampler: 'shuffle' }).sampler).toBe('shuffle');
    expect(resolveTrainConfig({ method: 'lmcl', auxiliary: false }).auxiliary).toBe(false);
    expect(() => resolveTrainConfig({ method: 'mcl', contrast: 'queue' })).toThrow(/--contrast must be one of batch, bank, got queue/);
    expect(() => resolveTrainConfig({ method: 'mcl', nceM: 1.5 })).toThrow(/--nce-m must be a finite number ≥ 0 and ≤ 1/);
  });

  it('resolveTrainConfig fills method options for every method and validates them', () => {
    expect(resolveTrainConfig({ method: 'baseline' }).kdT).toBe(3);
    expect(resolveTrainConfig({ 'kd-T': 4 }).kdT).toBe(4);
    expect(resolveTrainConfig({ kd_T: 2 }).kdT).toBe(2);
    expect(() => resolveTrainConfig({ kdT: 0 })).toThrow(/--kd-T must be a finite number > 0/);
    expect(() => resolveTrainConfig({ method: 'crd' })).toThrow(/--method must be one of baseline, dml, mcl, lmcl, got 'crd'/);
    expect(resolveTrainConfig({ method: 'lmcl', 'meta-freq': 7 }).metaFreq).toBe(7);
    expect(resolveTrainConfig({ method: 'mcl', 'soft-vcl-weight': 0.5 }).softVclWeight).toBe(0.5);
    expect(() => resolveTrainConfig({ method: 'mcl', tau: 0 })).toThrow(/--tau must be a finite number > 0/);
    expect(readMethodOptions(getMethod('dml'), resolveTrainConfig({ kdT: 5 }))).toEqual({ kdT: 5 });
    expect(readMethodOptions(getMethod('baseline'), resolveTrainConfig({ kdT: 5 }))).toEqual({});
  });
});
