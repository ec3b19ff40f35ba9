// Float64 references for the op-level conv2d tests (test/ops/conv2d.test.ts), test-only.
//
// Direct loops from the definition (NCHW, PyTorch semantics, dilation 1, zero padding, groups):
//   y[n,co,oh,ow] = b[co] + Σ_{ci<Cin/g, kh, kw} w[co,ci,kh,kw] · x[n, g(co)·Cin/g + ci, oh·sh − ph + kh, ow·sw − pw + kw]
// with the two adjoints (input and weight gradients) as the same sum with the roles exchanged,
// on plain number arrays (Float32Array or Float64Array in, Float64Array out), so they can also
// evaluate perturbed float64 parameters. On top of that: a float64 ReLU conv network and its
// exact gradient, used for finite differences of the gradient in the Hessian-vector tests.
export interface ConvSpec {
  inputShape: readonly number[];
  weightShape: readonly number[];
  stride: readonly [number, number];
  padding: readonly [number, number];
  groups: number;
}

export function convOutputShape(spec: ConvSpec): number[] {
  const [n, , h, w] = spec.inputShape as [number, number, number, number];
  const [co, , kh, kw] = spec.weightShape as [number, number, number, number];
  return [n, co, Math.floor((h + 2 * spec.padding[0] - kh) / spec.stride[0]) + 1, Math.floor((w + 2 * spec.padding[1] - kw) / spec.stride[1]) + 1];
}

/** Number of products summed into one output element (for error bounds). */
export function convTerms(spec: ConvSpec): number {
  const [, cinG, kh, kw] = spec.weightShape as [number, number, number, number];
  return cinG * kh * kw;
}

function forEachTerm(spec: ConvSpec, visit: (xIndex: number, wIndex: number, yIndex: number) => void): void {
  const [batch, cin, h, w] = spec.inputShape as [number, number, number, number];
  const [cout, cinG, kh, kw] = spec.weightShape as [number, number, number, number];
  const [, , oh, ow] = convOutputShape(spec) as [number, number, number, number];
  const coutG = cout / spec.groups;
  for (let n = 0; n < batch; n++)
    for (let co = 0; co < cout; co++) {
      const group = Math.floor(co / coutG);
      for (let oy = 0; oy < oh; oy++)
        for (let ox = 0; ox < ow; ox++) {
          const yIndex = ((n * cout + co) * oh + oy) * ow + ox;
          for (let ci = 0; ci < cinG; ci++)
            for (let ky = 0; ky < kh; ky++) {
              const iy = oy * spec.stride[0] - spec.padding[0] + ky;
              if (iy < 0 || iy >= h) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ix = ox * spec.stride[1] - spec.padding[1] + kx;
                if (ix < 0 || ix >= w) continue;
                visit(((n * cin + group * cinG + ci) * h + iy) * w + ix, ((co * cinG + ci) * kh + ky) * kw + kx, yIndex);
              }
            }
        }
    }
}

const size = (shape: readonly number[]): number => shape.reduce((p, e) => p * e, 1);

export function convForward(spec: ConvSpec, x: ArrayLike<number>, weight: ArrayLike<number>, bias: ArrayLike<number> | null): Float64Array {
  const outShape = convOutputShape(spec);
  const out = new Float64Array(size(outShape));
  const plane = outShape[2]! * outShape[3]!;
  if (bias) for (let i = 0; i < out.length; i++) out[i] = bias[Math.floor(i / plane) % outShape[1]!]!;
  forEachTerm(spec, (xi, wi, yi) => { out[yi] += x[xi]! * weight[wi]!; });
  return out;
}

export function convBackwardInput(spec: ConvSpec, gradOutput: ArrayLike<number>, weight: ArrayLike<number>): Float64Array {
  const out = new Float64Array(size(spec.inputShape));
  forEachTerm(spec, (xi, wi, yi) => { out[xi] += gradOutput[yi]! * weight[wi]!; });
  return out;
}

export function convBackwardWeight(spec: ConvSpec, x: ArrayLike<number>, gradOutput: ArrayLike<number>): Float64Array {
  const out = new Float64Array(size(spec.weightShape));
  forEachTerm(spec, (xi, wi, yi) => { out[wi] += gradOutput[yi]! * x[xi]!; });
  return out;
}

export function convBackwardBias(spec: ConvSpec, gradOutput: ArrayLike<number>): Float64Array {
  const outShape = convOutputShape(spec);
  const plane = outShape[2]! * outShape[3]!;
  const out = new Float64Array(outShape[1]!);
  for (let i = 0; i < gradOutput.length; i++) out[Math.floor(i / plane) % outShape[1]!] += gradOutput[i]!;
  return out;
}

// ---- a ReLU conv network in float64 --------------------------------------------------------

export interface ReluConvLayer {
  spec: ConvSpec;
  weight: ArrayLike<number>;
  bias: ArrayLike<number>;
}

export interface ReluConvNetResult {
  loss: number;
  gradInput: Float64Array;
  /** Per layer: [gradWeight, gradBias]. */
  gradLayers: [Float64Array, Float64Array][];
  /** Per layer: the sign pattern of the pre-activations (1 where > 0). */
  masks: Uint8Array[];
}

/**
 * loss = Σ relu(conv_L(… relu(conv_1(x, w_1) + b_1) …) + b_L) · R, and its exact gradient with
 * respect to x and every weight and bias (ReLU' = [z > 0]).
 */
export function reluConvNet(x: ArrayLike<number>, layers: readonly ReluConvLayer[], projection: ArrayLike<number>): ReluConvNetResult {
  const activations: ArrayLike<number>[] = [x];
  const masks: Uint8Array[] = [];
  for (const layer of layers) {
    const z = convForward(layer.spec, activations[activations.length - 1]!, layer.weight, layer.bias);
    const mask = new Uint8Array(z.length);
    for (let i = 0; i < z.length; i++) {
      mask[i] = z[i]! > 0 ? 1 : 0;
      z[i] = mask[i] ? z[i]! : 0;
    }
    masks.push(mask);
    activations.push(z);
  }
  const top = activations[activations.length - 1]!;
  let loss = 0;
  for (let i = 0; i < top.length; i++) loss += top[i]! * projection[i]!;
  const gradLayers: [Float64Array, Float64Array][] = new Array(layers.length);
  let upstream: Float64Array = Float64Array.from(projection as ArrayLike<number>);
  for (let index = layers.length - 1; index >= 0; index--) {
    const layer = layers[index]!;
    const mask = masks[index]!;
    const gz = new Float64Array(upstream.length);
    for (let i = 0; i < gz.length; i++) gz[i] = mask[i] ? upstream[i]! : 0;
    gradLayers[index] = [convBackwardWeight(layer.spec, activations[index]!, gz), convBackwardBias(layer.spec, gz)];
    upstream = convBackwardInput(layer.spec, gz, layer.weight);
  }
  return { loss, gradInput: upstream, gradLayers, masks };
}

/** a + scale·b elementwise, in float64. */
export function axpy(a: ArrayLike<number>, scale: number, b: ArrayLike<number>): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! + scale * b[i]!;
  return out;
}
