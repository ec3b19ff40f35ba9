// Batch normalisation (torch.nn.functional.batch_norm semantics), layout [N, C, ...] (NCHW).
// Native kernels: native/src/cpu/batchnorm.cpp. Tests: test/ops/batchnorm.test.ts against the
// float64 reference test/reference/batchnorm_reference.ts.
//
//   y = (x − μ_c)·rsqrt(σ²_c + eps)·γ_c + β_c
// training: μ, σ² are the batch statistics over N and the spatial axes (biased σ²), and the
// running stats (when given) are updated in place with the unbiased σ²·M/(M−1), like PyTorch.
// eval: μ, σ² are the running stats.
//
// Epilogue (options.residual, options.relu): out = relu(bn(x) + residual) in the same native pass
// (a ResNet block's "BN → ReLU" and "BN → + shortcut → ReLU"), with the same float operations and
// so the same bits as batchNorm → add → relu; the backward masks the incoming gradient by out > 0
// inside the batch-norm backward kernel and hands the masked gradient to the residual. Neither the
// BN output nor the sum is kept for backward, only the (ReLU) output.
//
// Backward: without createGraph, one fused native kernel gives dx, dγ, dβ. With createGraph (e.g.
// Hessian-vector products through batchnorm, L-MCL's virtual steps) the same gradients are
// recorded so that they can be differentiated again with respect to x, γ and the incoming
// gradient: in training mode as two recorded ops whose forward is that same native kernel and
// whose backward is the analytic double backward, one native kernel too (batchNormDoubleBackward;
// differentiableTrainingBackward; nothing but the inputs is saved, where a composite of
// elementwise ops saved ~5 full-size tensors per layer), in eval mode as a composite of
// differentiable ops (compositeBackward). Second order only: createGraph through the
// training-mode double backward throws.
import { native } from '../native/index.js';
import { fusedOrComposite } from '../autograd/fused.js';
import { recordOperation, type BackwardContext } from '../autograd/node.js';
import { Tensor, formatShape, shapeSize } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { checkSameDevice, checkTensor, describeValue } from './checks.js';
import { add, mul, reluMask, rsqrt, square, sub } from './elementwise.js';
import { mean, sum } from './reduce.js';
import { reshape } from './layout.js';

export interface BatchNormOptions {
  /** Use batch statistics and update the running stats (default false, like PyTorch). */
  training?: boolean;
  /** Running-stat update factor (default 0.1). */
  momentum?: number;
  /** Added to the variance (default 1e-5). */
  eps?: number;
  /** Added to the normalised output before the ReLU (same shape as x; default none). */
  residual?: Tensor | null;
  /** Apply a ReLU last (default false). */
  relu?: boolean;
}

const op = 'batchNorm';

function checkChannelVector(value: unknown, name: string, channels: number, x: Tensor): value is Tensor {
  if (value === null || value === undefined) return false;
  checkTensor(value, op, name);
  if (value.shape.length !== 1 || value.shape[0] !== channels) {
    throw new Error(
      `${op}: argument '${name}' must have shape [${channels}] (the channel count of x ${formatShape(x.shape)}), got ${formatShape(value.shape)}`,
    );
  }
  return true;
}

/**
 * Batch normalisation over axis 1 of x ([N, C], [N, C, L] or [N, C, H, W]). weight, bias,
 * runningMean and runningVar are [C] tensors or null.
 */
export function batchNorm(
  x: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  weight: Tensor | null = null,
  bias: Tensor | null = null,
  options: BatchNormOptions = {},
): Tensor {
  checkTensor(x, op, 'x');
  if (x.shape.length < 2) {
    throw new Error(`${op}: argument 'x' must be at least 2-D ([N, C] or [N, C, H, W]), got shape ${formatShape(x.shape)}`);
  }
  if (options === null || typeof options !== 'object') throw new TypeError(`${op}: options must be an object, got ${describeValue(options)}`);
  const training = options.training ?? false;
  const momentum = options.momentum ?? 0.1;
  const eps = options.eps ?? 1e-5;
  if (typeof training !== 'boolean') throw new TypeError(`${op}: options.training must be a boolean, got ${describeValue(training)}`);
  if (typeof momentum !== 'number' || !Number.isFinite(momentum)) {
    throw new TypeError(`${op}: options.momentum must be a finite number, got ${describeValue(momentum)}`);
  }
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps < 0) {
    throw new TypeError(`${op}: options.eps must be a finite number >= 0, got ${describeValue(eps)}`);
  }
  const relu = options.relu ?? false;
  if (typeof relu !== 'boolean') throw new TypeError(`${op}: options.relu must be a boolean, got ${describeValue(relu)}`);
  const residual = options.residual ?? null;
  if (residual !== null) {
    checkTensor(residual, op, 'residual');
    if (residual.shape.length !== x.shape.length || residual.shape.some((extent, axis) => extent !== x.shape[axis])) {
      throw new Error(`${op}: options.residual must have the shape of x ${formatShape(x.shape)}, got ${formatShape(residual.shape)}`);
    }
  }
  const batch = x.shape[0]!;
  const channels = x.shape[1]!;
  const spatial = shapeSize(x.shape.slice(2));
  if (channels < 1) throw new Error(`${op}: x ${formatShape(x.shape)} has no channels`);
  const hasWeight = checkChannelVector(weight, 'weight', channels, x);
  const hasBias = checkChannelVector(bias, 'bias', channels, x);
  const hasMean = checkChannelVector(runningMean, 'runningMean', channels, x);
  const hasVar = checkChannelVector(runningVar, 'runningVar', channels, x);
  checkSameDevice(op, x, weight, bias, runningMean, runningVar, residual);
  if (hasMean !== hasVar) throw new Error(`${op}: runningMean and runningVar must be given together (or both null)`);
  for (const [stat, name] of [[runningMean, 'runningMean'], [runningVar, 'runningVar']] as const) {
    if (stat && stat.requiresGrad) throw new Error(`${op}: argument '${name}' must not require grad (running stats are buffers)`);
  }
  if (!training && !hasMean) {
    throw new Error(`${op}: eval mode (training: false) needs runningMean and runningVar; pass them or use training: true`);
  }
  const count = batch * spatial;
  if (training && count <= 1) {
    throw new Error(`${op}: expected more than 1 value per channel when training, got input of shape ${formatShape(x.shape)}`);
  }

  const shape = [batch, channels, spatial];
  const y = Tensor.empty(x.shape, x.device);
  const saveMean = Tensor.empty([channels], x.device);
  const saveInvstd = Tensor.empty([channels], x.device);
  const w = hasWeight ? weight!.storage.handle : null;
  const b = hasBias ? bias!.storage.handle : null;
  try {
    if (training) {
      native().batchNormForwardTraining(x.storage.handle, w, b, hasMean ? runningMean!.storage.handle : null,
        hasVar ? runningVar!.storage.handle : null, y.storage.handle, saveMean.storage.handle, saveInvstd.storage.handle,
        shape, momentum, eps, residual?.storage.handle ?? null, relu);
      if (hasMean) {
        runningMean!.storage.version += 1;
        runningVar!.storage.version += 1;
      }
    } else {
      native().batchNormForwardEval(x.storage.handle, w, b, runningMean!.storage.handle, runningVar!.storage.handle,
        y.storage.handle, saveMean.storage.handle, saveInvstd.storage.handle, shape, eps, residual?.storage.handle ?? null, relu);
    }
  } catch (error) {
    y.dispose();
    saveMean.dispose();
    saveInvstd.dispose();
    throw error;
  }

  // Inputs and saved tensors, with the optional ones left out.
  const inputs: Tensor[] = [x];
  if (hasWeight) inputs.push(weight!);
  if (hasBias) inputs.push(bias!);
  if (residual) inputs.push(residual);
  const saved: Tensor[] = [x, saveMean, saveInvstd];
  if (hasWeight) saved.push(weight!);
  if (relu) saved.push(y);
  const geometry: Geometry = { shape: x.shape, channels, spatial, count, training, eps, hasWeight, hasBias, hasResidual: residual !== null, relu };
  const result = recordOperation(op, y, inputs, saved, (gradOutput, context) => batchNormBackward(gradOutput, context, geometry));
  // The graph node (if any) holds its own references to the statistics.
  saveMean.dispose();
  saveInvstd.dispose();
  return result;
}

interface Geometry {
  shape: readonly number[];
  channels: number;
  /** Product of the spatial extents (1 for [N, C]). */
  spatial: number;
  /** Values per channel: N·spatial. */
  count: number;
  training: boolean;
  eps: number;
  hasWeight: boolean;
  hasBias: boolean;
  hasResidual: boolean;
  /** The output went through a ReLU (the output is the last saved tensor). */
  relu: boolean;
}

function batchNormBackward(gradOutput: Tensor, context: BackwardContext, g: Geometry): (Tensor | null)[] {
  const [x, saveMean, saveInvstd] = context.saved as [Tensor, Tensor, Tensor];
  const weight = g.hasWeight ? context.saved[3]! : null;
  const output = g.relu ? context.saved[g.hasWeight ? 4 : 3]! : null;
  const needs = context.needsInputGrad;
  const needX = needs[0]!;
  const needWeight = g.hasWeight && needs[1]!;
  const biasIndex = g.hasWeight ? 2 : 1;
  const needBias = g.hasBias && needs[biasIndex]!;
  const needResidual = g.hasResidual && needs[biasIndex + (g.hasBias ? 1 : 0)]!;
  const grads = fusedOrComposite('batchNorm', context, {
    fused: () => fusedBackward(gradOutput, x, saveMean, saveInvstd, weight, output, g, needX, needWeight, needBias, needResidual),
    // The ReLU's backward (as the relu op records it), then the batch norm's on the masked gradient.
    composite: () => tidy(() => {
      const masked = output ? reluMask(gradOutput, output) : reshape(gradOutput, g.shape);
      const result = g.training
        ? differentiableTrainingBackward(masked, x, saveMean, saveInvstd, weight, g, needX, needWeight, needBias)
        : compositeBackward(masked, x, saveMean, saveInvstd, weight, g, needX, needWeight, needBias);
      return { ...result, residual: needResidual ? masked : null };
    }),
  });
  const result: (Tensor | null)[] = [grads.x];
  if (g.hasWeight) result.push(grads.weight);
  if (g.hasBias) result.push(grads.bias);
  if (g.hasResidual) result.push(grads.residual);
  return result;
}

interface Gradients {
  x: Tensor | null;
  weight: Tensor | null;
  bias: Tensor | null;
}

function fusedBackward(gradOutput: Tensor, x: Tensor, saveMean: Tensor, saveInvstd: Tensor, weight: Tensor | null,
  output: Tensor | null, g: Geometry, needX: boolean, needWeight: boolean, needBias: boolean,
  needResidual: boolean): Gradients & { residual: Tensor | null } {
  const gradX = needX ? Tensor.empty(g.shape, x.device) : null;
  const gradWeight = needWeight ? Tensor.empty([g.channels], x.device) : null;
  const gradBias = needBias ? Tensor.empty([g.channels], x.device) : null;
  // Without a ReLU the residual's gradient is the incoming one itself (as the add op passes it on).
  const gradResidual = needResidual && output ? Tensor.empty(g.shape, x.device) : null;
  try {
    native().batchNormBackward(gradOutput.storage.handle, x.storage.handle, weight ? weight.storage.handle : null,
      saveMean.storage.handle, saveInvstd.storage.handle, gradX?.storage.handle ?? null, gradWeight?.storage.handle ?? null,
      gradBias?.storage.handle ?? null, [g.shape[0]!, g.channels, g.spatial], g.training, output?.storage.handle ?? null,
      gradResidual?.storage.handle ?? null);
  } catch (error) {
    gradX?.dispose();
    gradWeight?.dispose();
    gradBias?.dispose();
    gradResidual?.dispose();
    throw error;
  }
  const residual = needResidual ? (gradResidual ?? reshape(gradOutput, g.shape)) : null;
  return { x: gradX, weight: gradWeight, bias: gradBias, residual };
}

/**
 * Training-mode gradients as recorded ops whose forward is the fused native kernel (one pass, no
 * intermediate tensors saved) and whose backward is the analytic double backward, also one native
 * kernel (batchNormDoubleBackward; formulas in native/include/lmcl/batchnorm.h); used when the
 * backward itself is recorded (createGraph: L-MCL's virtual steps). Per channel, M = N·S,
 * s = invstd, x̂ = (x − μ)·s, γ the weight (1 without one), g the incoming gradient, ⟨·⟩ the mean:
 *   dx = γ·s·(g − ⟨g⟩ − x̂·⟨g·x̂⟩),  dγ = Σ g·x̂,  dβ = Σ g  (a differentiable sum).
 * With upstream gradients ḡx (for dx) and ḡγ (for dγ), using ∂x̂_j/∂x_i = s·(δ_ij − 1/M − x̂_i·x̂_j/M)
 * and ∂s/∂x_i = −s²·x̂_i/M, and P_s(G) = s·(G − ⟨G⟩ − x̂·⟨G·x̂⟩) (what the native backward computes
 * for an incoming G with no weight):
 *   dx's VJP:  to g:  γ·P_s(ḡx)   (P_s is symmetric)
 *              to γ:  s·B,  B = Σ ḡx·g − ⟨g⟩·Σ ḡx − ⟨g·x̂⟩·Σ ḡx·x̂
 *              to x:  P_s(G) − (γ·B·s²/M)·x̂,  G = −γ·s·(g·⟨ḡx·x̂⟩ + ḡx·⟨g·x̂⟩)
 *   dγ's VJP:  to g:  ḡγ·x̂;  to x:  P_s(ḡγ·g)
 * The kernel computes each VJP in two passes (per-channel sums, then one elementwise map) where a
 * composite of elementwise ops made ~10 full-size temporaries. Third order (createGraph through
 * this double backward) is refused with an error. Checked by gradgradcheck in
 * test/ops/batchnorm.test.ts (and against the float64 formulas above in the same file) and by the
 * meta-step tests against finite differences.
 */
function differentiableTrainingBackward(gradOutput: Tensor, x: Tensor, saveMean: Tensor, saveInvstd: Tensor,
  weight: Tensor | null, g: Geometry, needX: boolean, needWeight: boolean, needBias: boolean): Gradients {
  return tidy(() => {
    const dy = reshape(gradOutput, g.shape);
    const rank = g.shape.length;
    const axes = [0, ...Array.from({ length: rank - 2 }, (_, index) => index + 2)];
    // One native pass: dx and dγ = Σ g·x̂.
    const first = fusedBackward(dy, x, saveMean, saveInvstd, weight, null, g, needX, needWeight, false, false);
    const thirdOrder = (context: BackwardContext): void => {
      if (context.createGraph) throw new Error(`${op}: gradients of third order (createGraph through batch norm's double backward) are not supported`);
    };
    // The native double backward for the upstream of dx (upstreamInput) or of dγ (upstreamWeight).
    const doubleBackward = (upstreamInput: Tensor | null, upstreamWeight: Tensor | null, withWeight: boolean,
      want: { grad: boolean; x: boolean; weight: boolean }): { grad: Tensor | null; x: Tensor | null; weight: Tensor | null } => {
      const gradGrad = want.grad ? Tensor.empty(g.shape, x.device) : null;
      const gradX = want.x ? Tensor.empty(g.shape, x.device) : null;
      const gradWeight = want.weight ? Tensor.empty([g.channels], x.device) : null;
      try {
        native().batchNormDoubleBackward(dy.storage.handle, x.storage.handle, withWeight && weight ? weight.storage.handle : null,
          saveMean.storage.handle, saveInvstd.storage.handle, upstreamInput?.storage.handle ?? null, upstreamWeight?.storage.handle ?? null,
          gradGrad?.storage.handle ?? null, gradX?.storage.handle ?? null, gradWeight?.storage.handle ?? null,
          [g.shape[0]!, g.channels, g.spatial]);
      } catch (error) {
        gradGrad?.dispose();
        gradX?.dispose();
        gradWeight?.dispose();
        throw error;
      }
      return { grad: gradGrad, x: gradX, weight: gradWeight };
    };

    let gradX: Tensor | null = null;
    if (needX) {
      const inputs = weight ? [dy, x, weight] : [dy, x];
      const saved = weight ? [dy, x, saveMean, saveInvstd, weight] : [dy, x, saveMean, saveInvstd];
      gradX = recordOperation('batchNormBackward', first.x!, inputs, saved, (upstream, context) => {
        thirdOrder(context);
        const needs = context.needsInputGrad;
        const result = doubleBackward(reshape(upstream, g.shape), null, true,
          { grad: needs[0]!, x: needs[1]!, weight: weight !== null && needs[2]! });
        return weight ? [result.grad, result.x, result.weight] : [result.grad, result.x];
      });
    }
    let gradWeight: Tensor | null = null;
    if (needWeight) {
      gradWeight = recordOperation('batchNormWeightGradient', first.weight!, [dy, x], [dy, x, saveMean, saveInvstd], (upstream, context) => {
        thirdOrder(context);
        const needs = context.needsInputGrad;
        const result = doubleBackward(null, upstream, false, { grad: needs[0]!, x: needs[1]!, weight: false });
        return [result.grad, result.x];
      });
    }
    return { x: gradX, weight: gradWeight, bias: needBias ? reshape(sum(dy, axes), [g.channels]) : null };
  });
}

/**
 * The same gradients from differentiable ops (used when the backward itself is recorded):
 *   x̂ = (x − μ)·invstd,  dβ = Σ dy,  dγ = Σ dy·x̂,
 *   training: dx = γ·invstd·(dy − mean(dy) − x̂·mean(dy·x̂)), with μ and invstd recomputed from x;
 *   eval:     dx = γ·invstd·dy, μ and invstd the saved (constant) running statistics.
 */
function compositeBackward(gradOutput: Tensor, x: Tensor, saveMean: Tensor, saveInvstd: Tensor,
  weight: Tensor | null, g: Geometry, needX: boolean, needWeight: boolean, needBias: boolean): Gradients {
  return tidy(() => {
    const rank = g.shape.length;
    const axes = [0, ...Array.from({ length: rank - 2 }, (_, index) => index + 2)];
    const channelShape = [1, g.channels, ...new Array<number>(rank - 2).fill(1)];
    const dy = reshape(gradOutput, g.shape);
    let xHat: Tensor;
    let invstd: Tensor;
    if (g.training) {
      const mu = mean(x, axes, true);
      const centred = sub(x, mu);
      const variance = mean(square(centred), axes, true);
      invstd = rsqrt(add(variance, g.eps));
      xHat = mul(centred, invstd);
    } else {
      invstd = reshape(saveInvstd, channelShape);
      xHat = mul(sub(x, reshape(saveMean, channelShape)), invstd);
    }
    const needSums = needWeight || needBias || (g.training && needX);
    const sumDy = needSums ? sum(dy, axes, true) : null;
    const sumDyXHat = needSums ? sum(mul(dy, xHat), axes, true) : null;
    let gradX: Tensor | null = null;
    if (needX) {
      const scale = weight ? mul(invstd, reshape(weight, channelShape)) : invstd;
      if (g.training) {
        const inner = sub(sub(dy, mul(sumDy!, 1 / g.count)), mul(xHat, mul(sumDyXHat!, 1 / g.count)));
        gradX = mul(inner, scale);
      } else {
        gradX = mul(dy, scale);
      }
    }
    return {
      x: gradX,
      weight: needWeight ? reshape(sumDyXHat!, [g.channels]) : null,
      bias: needBias ? reshape(sumDy!, [g.channels]) : null,
    };
  });
}
