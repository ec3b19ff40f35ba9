// lmcl export's check: a checkpoint's network is loaded (strict) into the architecture built from
// the run's config before it is written; a tensor that does not fit is an error naming it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, saveCheckpoint, type TensorMap } from '../../src/io/checkpoint.js';
import { createModel } from '../../src/models/registry.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { modelInputShape, verifiedCriterionTensors, verifiedNetworkTensors } from '../../src/train/export.js';
import { getMethod, readMethodOptions } from '../../src/losses/registry.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'lmcl-export-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

// The run's config as the trainer records it: resnet8 ×2 on Fashion-MNIST (10 classes, 1×28×28).
const config = resolveTrainConfig({ method: 'dml', arch: 'resnet8', numberNet: 2, dataset: 'fashion-mnist', data: 'bundled' });

function networkTensors(): TensorMap {
  const net = createModel('resnet8', { numClasses: 10, inChannels: 1, imageSize: 28 });
  const tensors = net.stateDict();
  net.dispose();
  return tensors;
}

function checkpointOf(name: string, networks: TensorMap[]) {
  const dir = path.join(work, name);
  saveCheckpoint(dir, 'checkpoint-e0001-s3', { networks, state: { config } });
  return loadCheckpoint(path.join(dir, 'checkpoint-e0001-s3'));
}

describe('export: the network must fit the architecture of the run', () => {
  it('a fitting network comes back with the same names, order and values', () => {
    const good = networkTensors();
    const exported = verifiedNetworkTensors(checkpointOf('good', [networkTensors(), good]), 1);
    expect([...exported.keys()]).toEqual([...good.keys()]);
    for (const [name, entry] of good) expect(exported.get(name)).toEqual(entry);
  });

  it('a wrongly shaped, an extra and a missing tensor are errors naming the tensor and the file', () => {
    const wrongShape = networkTensors();
    wrongShape.set('fc.weight', { shape: [100, 64], data: new Float32Array(6400).fill(0.5) });
    expect(() => verifiedNetworkTensors(checkpointOf('shape', [networkTensors(), wrongShape]), 1)).toThrow(
      /export: .*shape\/checkpoint-e0001-s3\/net1\.safetensors does not fit resnet8 built from the run's config \(10 classes, 1×28×28 input, from dataset fashion-mnist\): .*size mismatch for fc\.weight: copying a param with shape \[100, 64\]/s,
    );
    const extra = networkTensors();
    extra.set('fc2.weight', { shape: [2], data: Float32Array.of(1, 2) });
    expect(() => verifiedNetworkTensors(checkpointOf('extra', [extra, networkTensors()]), 0)).toThrow(/net0\.safetensors does not fit resnet8.*Unexpected key\(s\) in state dict: "fc2\.weight"/s);
    const missing = networkTensors();
    missing.delete('bn1.running_var');
    expect(() => verifiedNetworkTensors(checkpointOf('missing', [missing, networkTensors()]), 0)).toThrow(/Missing key\(s\) in state dict: "bn1\.running_var"/);
  });

  it('a network count that differs from the config, or a checkpoint without a config, is refused', () => {
    const one = checkpointOf('one', [networkTensors()]);
    expect(() => verifiedNetworkTensors(one, 0)).toThrow(/holds 1 networks, the run's config says 2/);
    const dir = path.join(work, 'no-config');
    saveCheckpoint(dir, 'c', { networks: [networkTensors()], state: {} });
    expect(() => verifiedNetworkTensors(loadCheckpoint(path.join(dir, 'c')), 0)).toThrow(/has no training state \(state\.json without a config\)/);
  });

  it('image folders: the shape comes from the run directory\'s config.json', () => {
    const run = path.join(work, 'folder-run');
    fs.mkdirSync(path.join(run, 'checkpoints', 'c'), { recursive: true });
    const folderConfig = resolveTrainConfig({ method: 'dml', arch: 'resnet8', dataset: 'imagefolder', data: '/nowhere', imageSize: 16 });
    expect(() => modelInputShape(folderConfig, path.join(run, 'checkpoints', 'c'))).toThrow(/directory not found: \/nowhere\/train/);
    fs.writeFileSync(path.join(run, 'config.json'), JSON.stringify({ dataset: { classes: 7, channels: 3, imageSize: 16 } }));
    expect(modelInputShape(folderConfig, path.join(run, 'checkpoints', 'c'))).toEqual({ classes: 7, channels: 3, imageSize: 16, from: `${path.join(run, 'config.json')} (field 'dataset')` });
  });
});

describe('export --criterion: the method weights must fit the method built from the run config', () => {
  function criterionCheckpoint(name: string, methodConfig: Record<string, unknown>, edit: (tensors: TensorMap) => void = () => {}) {
    const runConfig = resolveTrainConfig({ arch: 'resnet8', numberNet: 2, dataset: 'fashion-mnist', data: 'bundled', ...methodConfig });
    const networks = [0, 1].map(() => createModel('resnet8', { numClasses: 10, inChannels: 1, imageSize: 28, auxiliary: runConfig.auxiliary }));
    const entry = getMethod(runConfig.method);
    const method = entry.create({ networks, classes: 10, options: readMethodOptions(entry, runConfig), seed: 0,
      trainLabels: Int32Array.from({ length: 40 }, (_, row) => row % 10) });
    const criterion: TensorMap = new Map([...method.criterion!.stateDict()].map(([key, value]) => [`criterion.${key}`, value]));
    edit(criterion);
    const dir = path.join(work, name);
    saveCheckpoint(dir, 'checkpoint-e0001-s3', { networks: networks.map((net) => net.stateDict()), tensorFiles: { criterion }, state: { config: runConfig } });
    method.dispose();
    for (const net of networks) net.dispose();
    return { loaded: loadCheckpoint(path.join(dir, 'checkpoint-e0001-s3')), criterion };
  }

  it('fitting weights come back unchanged (mcl in-batch; lmcl with memory banks, whose row count comes from the file)', () => {
    for (const [name, methodConfig] of [['mcl', { method: 'mcl' }], ['lmcl-bank', { method: 'lmcl', contrast: 'bank' }]] as const) {
      const { loaded, criterion } = criterionCheckpoint(`criterion-${name}`, methodConfig);
      const exported = verifiedCriterionTensors(loaded);
      expect([...exported.keys()]).toEqual([...criterion.keys()]);
    }
  });

  it('a wrongly shaped or a missing method tensor is an error naming it; a method without modules has nothing to export', () => {
    const shaped = criterionCheckpoint('criterion-shape', { method: 'mcl' }, (tensors) => {
      tensors.set('criterion.embed.1.0.weight', { shape: [128, 32], data: new Float32Array(128 * 32) });
    });
    expect(() => verifiedCriterionTensors(shaped.loaded)).toThrow(/criterion\.safetensors does not fit method mcl [\s\S]*embed\.1\.0\.weight/);
    const missing = criterionCheckpoint('criterion-missing', { method: 'lmcl' }, (tensors) => tensors.delete('criterion.aggregator.0.0.bias'));
    expect(() => verifiedCriterionTensors(missing.loaded)).toThrow(/does not fit method lmcl [\s\S]*aggregator\.0\.0\.bias/);
    const dmlDir = path.join(work, 'criterion-dml');
    saveCheckpoint(dmlDir, 'checkpoint-e0001-s3', { networks: [networkTensors(), networkTensors()], state: { config } });
    expect(() => verifiedCriterionTensors(loadCheckpoint(path.join(dmlDir, 'checkpoint-e0001-s3')))).toThrow(/holds no method weights \(method dml/);
  });
});
