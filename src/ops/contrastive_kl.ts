// KL divergences between row softmaxes, fused: the soft contrastive terms (KL_w of method.md §0.1)
// and logit KD. Native kernels: native/src/cpu/contrastive_kl.cpp. Tests: test/ops/contrastive_kl.test.ts.
//
//   contrastiveKL: p = softmax_row(sA·sCᵀ/(τ·T)), q = softmax_row(tA·tCᵀ/(τ·T)) (all columns,
//                  diagonal included; the teacher side is detached), loss = T²·Σ_u w_u·KL(q_u ‖ p_u)/B
//   distillKL:     p = softmax(student/T), q = softmax(teacher/T) (detached), same reduction
// Gradients reach the student side and the weights, never the teacher (stop-gradient). First
// order: the fused native backward; under createGraph the derivative of the composite forward.
import { native } from '../native/index.js';
import { fusedOrComposite } from '../autograd/fused.js';
import { noGrad } from '../autograd/mode.js';
import { recordOperation } from '../autograd/node.js';
import { Tensor } from '../tensor/tensor.js';
import { readOptions } from './checks.js';
import { gradientOfComposite } from './composite.js';
import { checkMatrices, checkTemperature, checkWeights, keepsDirection } from './contrastive_checks.js';
import { affine, mul, sub } from './elementwise.js';
import { linear } from './gemm.js';
import { reshape } from './layout.js';
import { sum } from './reduce.js';
import { logSoftmax, softmax } from './softmax.js';

export interface ContrastiveKLOptions {
  /** τ > 0 of the similarity logits. */
  temperature: number;
  /** T > 0 of the soft distributions (the effective temperature is τ·T). */
  klTemperature: number;
  /** Per-anchor weights [B] (default 1); may require grad. */
  weights?: Tensor | null;
}

export interface DistillKLOptions {
  /** T > 0. */
  temperature: number;
  /** Per-row weights [B] (default 1); may require grad. */
  weights?: Tensor | null;
}

/** KL_w(L_s ‖ stopgrad L_t), L_s = studentAnchor·studentContrastᵀ/τ, L_t likewise (a scalar). */
export function contrastiveKL(studentAnchor: Tensor, studentContrast: Tensor, teacherAnchor: Tensor, teacherContrast: Tensor,
  options: ContrastiveKLOptions): Tensor {
  const op = 'contrastiveKL';
  const [batch, dim] = checkMatrices(op, { studentAnchor, studentContrast, teacherAnchor, teacherContrast }, '[batch, dim]');
  const values = readOptions(options, ['temperature', 'klTemperature', 'weights'], op);
  const temperature = checkTemperature(values.temperature, op, 'temperature');
  const klTemperature = checkTemperature(values.klTemperature, op, 'klTemperature');
  const weights = checkWeights(values.weights, [batch], studentAnchor.device, op);
  // The teacher is saved, not an input: no gradient can reach it.
  const inputs = weights ? [studentAnchor, studentContrast, weights] : [studentAnchor, studentContrast];
  const out = Tensor.empty([], studentAnchor.device);
  const rowStats = Tensor.empty([batch, 3], studentAnchor.device);
  const direction = keepsDirection(batch, inputs) ? Tensor.empty([batch, batch], studentAnchor.device) : null;
  try {
    native().contrastiveKLForward(studentAnchor.storage.handle, studentContrast.storage.handle, teacherAnchor.storage.handle,
      teacherContrast.storage.handle, weights?.storage.handle ?? null, out.storage.handle, rowStats.storage.handle,
      direction?.storage.handle ?? null, batch, dim, temperature, klTemperature);
  } catch (error) {
    for (const owned of [out, rowStats, direction]) owned?.dispose();
    throw error;
  }
  const extras = direction ? [rowStats, direction] : [rowStats];
  const result = recordOperation(op, out, inputs, [...inputs, teacherAnchor, teacherContrast, ...extras], (grad, context) => {
    const saved = context.saved as Tensor[];
    const [savedAnchor, savedContrast] = saved as [Tensor, Tensor];
    const savedWeights = weights ? saved[2]! : null;
    const [savedTeacherAnchor, savedTeacherContrast, savedStats, savedDirection] =
      saved.slice(inputs.length) as [Tensor, Tensor, Tensor, Tensor | undefined];
    const [needAnchor, needContrast, needWeights] = context.needsInputGrad;
    return fusedOrComposite('contrastiveKL', context, {
      fused: () => {
        const gradAnchor = needAnchor ? Tensor.empty([batch, dim], studentAnchor.device) : null;
        const gradContrast = needContrast ? Tensor.empty([batch, dim], studentAnchor.device) : null;
        const gradWeights = weights && needWeights ? Tensor.empty([batch], studentAnchor.device) : null;
        native().contrastiveKLBackward(savedAnchor.storage.handle, savedContrast.storage.handle,
          savedTeacherAnchor.storage.handle, savedTeacherContrast.storage.handle, savedWeights?.storage.handle ?? null,
          savedStats.storage.handle, savedDirection?.storage.handle ?? null, grad.storage.handle, gradAnchor?.storage.handle ?? null,
          gradContrast?.storage.handle ?? null, gradWeights?.storage.handle ?? null, batch, dim, temperature, klTemperature);
        return weights ? [gradAnchor, gradContrast, gradWeights] : [gradAnchor, gradContrast];
      },
      composite: () => gradientOfComposite(context, saved.slice(0, inputs.length), grad, (a, c, w) =>
        contrastiveKLComposite(a!, c!, savedTeacherAnchor, savedTeacherContrast, { temperature, klTemperature, weights: w ?? null })),
    });
  });
  rowStats.dispose();
  direction?.dispose();
  return result;
}

/** The same loss composed from differentiable ops (materialises both B×B similarity matrices). */
export function contrastiveKLComposite(studentAnchor: Tensor, studentContrast: Tensor, teacherAnchor: Tensor,
  teacherContrast: Tensor, options: ContrastiveKLOptions): Tensor {
  const studentLogits = affine(linear(studentAnchor, studentContrast), 1 / options.temperature, 0);
  const teacherLogits = noGrad(() => affine(linear(teacherAnchor, teacherContrast), 1 / options.temperature, 0));
  return klFromLogits(studentLogits, teacherLogits, options.klTemperature, options.weights ?? null);
}

/** T²·Σ_u w_u·KL(softmax(teacher_u/T) ‖ softmax(student_u/T))/B of logits (a scalar). */
export function distillKL(studentLogits: Tensor, teacherLogits: Tensor, options: DistillKLOptions): Tensor {
  const op = 'distillKL';
  const [batch, classes] = checkMatrices(op, { studentLogits, teacherLogits }, '[batch, classes]');
  const values = readOptions(options, ['temperature', 'weights'], op);
  const temperature = checkTemperature(values.temperature, op, 'temperature');
  const weights = checkWeights(values.weights, [batch], studentLogits.device, op);
  const out = Tensor.empty([], studentLogits.device);
  const rowStats = Tensor.empty([batch, 3], studentLogits.device);
  try {
    native().distillKLForward(studentLogits.storage.handle, teacherLogits.storage.handle, weights?.storage.handle ?? null,
      out.storage.handle, rowStats.storage.handle, batch, classes, temperature);
  } catch (error) {
    out.dispose();
    rowStats.dispose();
    throw error;
  }
  const inputs = weights ? [studentLogits, weights] : [studentLogits];
  const result = recordOperation(op, out, inputs, [...inputs, teacherLogits, rowStats], (grad, context) => {
    const saved = context.saved as Tensor[];
    const savedStudent = saved[0]!;
    const savedWeights = weights ? saved[1]! : null;
    const [savedTeacher, savedStats] = saved.slice(inputs.length) as [Tensor, Tensor];
    const [needStudent, needWeights] = context.needsInputGrad;
    return fusedOrComposite('distillKL', context, {
      fused: () => {
        const gradStudent = needStudent ? Tensor.empty([batch, classes], studentLogits.device) : null;
        const gradWeights = weights && needWeights ? Tensor.empty([batch], studentLogits.device) : null;
        native().distillKLBackward(savedStudent.storage.handle, savedTeacher.storage.handle, savedWeights?.storage.handle ?? null,
          savedStats.storage.handle, grad.storage.handle, gradStudent?.storage.handle ?? null,
          gradWeights?.storage.handle ?? null, batch, classes, temperature);
        return weights ? [gradStudent, gradWeights] : [gradStudent];
      },
      composite: () => gradientOfComposite(context, saved.slice(0, inputs.length), grad, (s, w) =>
        distillKLComposite(s!, savedTeacher, { temperature, weights: w ?? null })),
    });
  });
  rowStats.dispose();
  return result;
}

/** The same logit KD composed from differentiable ops. */
export function distillKLComposite(studentLogits: Tensor, teacherLogits: Tensor, options: DistillKLOptions): Tensor {
  const teacher = noGrad(() => teacherLogits.detach());
  return klFromLogits(studentLogits, teacher, options.temperature, options.weights ?? null);
}

/** T²·Σ_u w_u·Σ_v q_uv (log q_uv − log p_uv)/B with p, q the row softmaxes at T; the teacher is detached. */
export function klFromLogits(studentLogits: Tensor, teacherLogits: Tensor, temperature: number, weights: Tensor | null): Tensor {
  const batch = studentLogits.shape[0]!;
  const [teacherProbabilities, teacherLogProbabilities] = noGrad(() => {
    const scaled = affine(teacherLogits, 1 / temperature, 0);
    return [softmax(scaled, 1), logSoftmax(scaled, 1)];
  });
  const studentLogProbabilities = logSoftmax(affine(studentLogits, 1 / temperature, 0), 1);
  const rowKL = sum(mul(teacherProbabilities!, sub(teacherLogProbabilities!, studentLogProbabilities)), 1);
  const weighted = weights ? mul(rowKL, reshape(weights, [batch])) : rowKL;
  return affine(sum(weighted), batch > 0 ? (temperature * temperature) / batch : 0, 0);
}
