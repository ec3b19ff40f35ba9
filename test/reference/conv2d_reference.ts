// Float64 direct-loop reference for 2-D convolution (test-only), NCHW, PyTorch semantics,
// dilation 1, zero padding, groups. Straight from the definition:
//   out[n,co,oh,ow] = bias[co] + sum_{ci<Cin/groups,kh,kw} w[co,ci,kh,kw] * x[n, g*Cin/groups+ci, oh*sh-ph+kh, ow*sw-pw+kw]
// and the backward passes are the same sums with the roles of the operands exchanged.
export interface Conv2dParams {
  batch: number; inChannels: number; inHeight: number; inWidth: number; outChannels: number;
  kernelHeight: number; kernelWidth: number; strideHeight: number; strideWidth: number;
  paddingHeight: number; paddingWidth: number; groups: number;
}

export function toParamArray(p: Conv2dParams): number[] {
  return [p.batch, p.inChannels, p.inHeight, p.inWidth, p.outChannels, p.kernelHeight, p.kernelWidth,
    p.strideHeight, p.strideWidth, p.paddingHeight, p.paddingWidth, p.groups];
}

export function outSize(p: Conv2dParams): [number, number] {
  return [Math.floor((p.inHeight + 2 * p.paddingHeight - p.kernelHeight) / p.strideHeight) + 1,
    Math.floor((p.inWidth + 2 * p.paddingWidth - p.kernelWidth) / p.strideWidth) + 1];
}

// Calls visit(xIndex, wIndex, yIndex) for every multiply-add term of the convolution.
function forEachTerm(p: Conv2dParams, visit: (x: number, w: number, y: number) => void): void {
  const [oh, ow] = outSize(p);
  const cinG = p.inChannels / p.groups, coutG = p.outChannels / p.groups;
  for (let n = 0; n < p.batch; n++)
    for (let co = 0; co < p.outChannels; co++) {
      const g = Math.floor(co / coutG);
      for (let y = 0; y < oh; y++)
        for (let x = 0; x < ow; x++) {
          const yIndex = ((n * p.outChannels + co) * oh + y) * ow + x;
          for (let ci = 0; ci < cinG; ci++)
            for (let kh = 0; kh < p.kernelHeight; kh++) {
              const ih = y * p.strideHeight - p.paddingHeight + kh;
              if (ih < 0 || ih >= p.inHeight) continue;
              for (let kw = 0; kw < p.kernelWidth; kw++) {
                const iw = x * p.strideWidth - p.paddingWidth + kw;
                if (iw < 0 || iw >= p.inWidth) continue;
                const xIndex = ((n * p.inChannels + g * cinG + ci) * p.inHeight + ih) * p.inWidth + iw;
                const wIndex = ((co * cinG + ci) * p.kernelHeight + kh) * p.kernelWidth + kw;
                visit(xIndex, wIndex, yIndex);
              }
            }
        }
    }
}

export function conv2dForwardReference(p: Conv2dParams, input: Float32Array, weight: Float32Array,
  bias: Float32Array | null): Float64Array {
  const [oh, ow] = outSize(p);
  const out = new Float64Array(p.batch * p.outChannels * oh * ow);
  if (bias) for (let i = 0; i < out.length; i++) out[i] = bias[Math.floor(i / (oh * ow)) % p.outChannels];
  forEachTerm(p, (x, w, y) => { out[y] += input[x] * weight[w]; });
  return out;
}

export function conv2dBackwardInputReference(p: Conv2dParams, gradOutput: Float32Array, weight: Float32Array): Float64Array {
  const out = new Float64Array(p.batch * p.inChannels * p.inHeight * p.inWidth);
  forEachTerm(p, (x, w, y) => { out[x] += gradOutput[y] * weight[w]; });
  return out;
}

export function conv2dBackwardWeightReference(p: Conv2dParams, input: Float32Array, gradOutput: Float32Array): Float64Array {
  const out = new Float64Array(p.outChannels * (p.inChannels / p.groups) * p.kernelHeight * p.kernelWidth);
  forEachTerm(p, (x, w, y) => { out[w] += gradOutput[y] * input[x]; });
  return out;
}

export function conv2dBackwardBiasReference(p: Conv2dParams, gradOutput: Float32Array): Float64Array {
  const [oh, ow] = outSize(p);
  const out = new Float64Array(p.outChannels);
  for (let i = 0; i < gradOutput.length; i++) out[Math.floor(i / (oh * ow)) % p.outChannels] += gradOutput[i];
  return out;
}
