// resolveTrainConfig refuses input it used to accept and turn into something else: two spellings
// of one option, empty entries in --arch, non-numbers in milestones, hidden or parent run names,
// empty folders, and seeds the generators cannot tell apart.
import { describe, expect, it } from 'vitest';
import { MAX_SEED, resolveTrainConfig } from '../../src/train/config.js';

describe('resolveTrainConfig: input that is refused', () => {
  it('--decoder: auto by default; a bad name, and sharp without data workers, are refused', () => {
    expect(resolveTrainConfig({}).decoder).toBe('auto');
    expect(resolveTrainConfig({ decoder: 'js', workers: 0 }).decoder).toBe('js');
    expect(() => resolveTrainConfig({ decoder: 'pillow' })).toThrow("--decoder must be auto, js or sharp, got 'pillow'");
    expect(() => resolveTrainConfig({ decoder: 'sharp', workers: 0 })).toThrow(/--decoder sharp decodes in the data workers/);
  });

  it('one option given twice under two spellings', () => {
    expect(() => resolveTrainConfig({ 'limit-train': 64, limit_train: 32 })).toThrow("options 'limit-train' and 'limit_train' both set limitTrain: give it once");
    expect(() => resolveTrainConfig({ batchSize: 8, 'batch-size': 8 })).toThrow(/both set batchSize/);
    expect(resolveTrainConfig({ 'limit-train': 64 }).limitTrain).toBe(64);
  });

  it("an empty name in --arch ('resnet8,,resnet14' is not a cohort of two)", () => {
    for (const arch of ['resnet8,,resnet14', 'resnet8,', ',resnet8', 'resnet8, ,resnet14']) {
      expect(() => resolveTrainConfig({ arch })).toThrow(`--arch: an empty name in '${arch}'`);
    }
    expect(resolveTrainConfig({ arch: 'resnet8,resnet14' }).numberNet).toBe(2);
  });

  it('milestones that are not numbers (true used to become 1, "" 0)', () => {
    for (const milestones of [[true], [''], ['3'], [null]]) {
      expect(() => resolveTrainConfig({ lrType: 'multistep', milestones })).toThrow(/--milestones: expected a list of epoch numbers/);
    }
    expect(() => resolveTrainConfig({ milestones: '150,225' })).toThrow(/--milestones: expected a list of epoch numbers, got "150,225"/);
    expect(resolveTrainConfig({ lrType: 'multistep', milestones: [3, 5] }).milestones).toEqual([3, 5]);
  });

  it("run names '.', '..' and hidden ones; empty --data", () => {
    for (const name of ['..', '.', '.hidden', ' ', '']) {
      expect(() => resolveTrainConfig({ name })).toThrow(/--name: expected a plain folder name/);
    }
    expect(resolveTrainConfig({ name: 'a..b' }).name).toBe('a..b');
    for (const data of ['', '  ']) expect(() => resolveTrainConfig({ data })).toThrow(/--data: expected a folder/);
  });

  it('seeds beyond 32 bits (the generators would repeat a smaller seed)', () => {
    expect(MAX_SEED).toBe(2 ** 32 - 1);
    expect(resolveTrainConfig({ seed: MAX_SEED }).seed).toBe(MAX_SEED);
    for (const seed of [2 ** 32, 1 + 2 ** 32, 2 ** 53 - 1]) {
      expect(() => resolveTrainConfig({ seed })).toThrow(`--seed must be an integer in [0, 4294967295] (the generators take 32-bit seeds), got ${seed}`);
    }
  });
});
