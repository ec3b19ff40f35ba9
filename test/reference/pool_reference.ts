// Slow, obviously-correct float64 references for 2-D pooling (torch.nn.functional semantics:
// avg_pool2d with count_include_pad = true, max_pool2d with −inf padding, adaptive_avg_pool2d).
// Inputs are [planes, H, W] flattened (an NCHW tensor is N·C planes).

export interface PoolConfig {
  planes: number;
  height: number;
  width: number;
  kernel: [number, number];
  stride: [number, number];
  padding: [number, number];
}

export function poolOutputSize(c: PoolConfig): [number, number] {
  return [
    Math.floor((c.height + 2 * c.padding[0] - c.kernel[0]) / c.stride[0]) + 1,
    Math.floor((c.width + 2 * c.padding[1] - c.kernel[1]) / c.stride[1]) + 1,
  ];
}

/** Visits every (plane, output position, input position inside the window and the input). */
function forEachWindow(c: PoolConfig, visit: (plane: number, o: number, windowElements: number[]) => void): void {
  const [outH, outW] = poolOutputSize(c);
  for (let p = 0; p < c.planes; p += 1) {
    for (let oh = 0; oh < outH; oh += 1) {
      for (let ow = 0; ow < outW; ow += 1) {
        const elements: number[] = [];
        for (let kh = 0; kh < c.kernel[0]; kh += 1) {
          for (let kw = 0; kw < c.kernel[1]; kw += 1) {
            const h = oh * c.stride[0] - c.padding[0] + kh;
            const w = ow * c.stride[1] - c.padding[1] + kw;
            if (h >= 0 && h < c.height && w >= 0 && w < c.width) elements.push(h * c.width + w);
          }
        }
        visit(p, (p * outH + oh) * outW + ow, elements);
      }
    }
  }
}

export function referenceAvgPool(x: ArrayLike<number>, c: PoolConfig): Float64Array {
  const [outH, outW] = poolOutputSize(c);
  const out = new Float64Array(c.planes * outH * outW);
  const area = c.kernel[0] * c.kernel[1];
  forEachWindow(c, (p, o, elements) => {
    let sum = 0;
    for (const i of elements) sum += x[p * c.height * c.width + i]!;
    out[o] = sum / area;
  });
  return out;
}

export function referenceAvgPoolBackward(gradOut: ArrayLike<number>, c: PoolConfig): Float64Array {
  const gradIn = new Float64Array(c.planes * c.height * c.width);
  const area = c.kernel[0] * c.kernel[1];
  forEachWindow(c, (p, o, elements) => {
    for (const i of elements) gradIn[p * c.height * c.width + i] += gradOut[o]! / area;
  });
  return gradIn;
}

/**
 * Max over each window and its argmax within the plane, PyTorch's rule: visit the window in
 * row-major order and take v when v > best or v is NaN (so the first maximum wins ties and NaN
 * propagates, its index being the last NaN's).
 */
export function referenceMaxPool(x: ArrayLike<number>, c: PoolConfig): { values: Float64Array; indices: Int32Array } {
  const [outH, outW] = poolOutputSize(c);
  const values = new Float64Array(c.planes * outH * outW);
  const indices = new Int32Array(values.length);
  forEachWindow(c, (p, o, elements) => {
    let best = Number.NEGATIVE_INFINITY;
    let bestIndex = elements[0]!;
    for (const i of elements) {
      const v = x[p * c.height * c.width + i]!;
      if (v > best || Number.isNaN(v)) {
        best = v;
        bestIndex = i;
      }
    }
    values[o] = best;
    indices[o] = bestIndex;
  });
  return { values, indices };
}

export function referenceMaxPoolBackward(gradOut: ArrayLike<number>, indices: Int32Array, c: PoolConfig): Float64Array {
  const gradIn = new Float64Array(c.planes * c.height * c.width);
  const perPlane = indices.length / c.planes;
  for (let o = 0; o < indices.length; o += 1) {
    const p = Math.floor(o / perPlane);
    gradIn[p * c.height * c.width + indices[o]!] += gradOut[o]!;
  }
  return gradIn;
}

function bins(input: number, output: number): [number, number][] {
  return Array.from({ length: output }, (_, i) => [Math.floor((i * input) / output), Math.ceil(((i + 1) * input) / output)]);
}

export function referenceAdaptiveAvgPool(x: ArrayLike<number>, planes: number, height: number, width: number, outH: number, outW: number): Float64Array {
  const out = new Float64Array(planes * outH * outW);
  const rows = bins(height, outH);
  const columns = bins(width, outW);
  for (let p = 0; p < planes; p += 1) {
    rows.forEach(([h0, h1], oh) => {
      columns.forEach(([w0, w1], ow) => {
        let sum = 0;
        for (let h = h0; h < h1; h += 1) for (let w = w0; w < w1; w += 1) sum += x[(p * height + h) * width + w]!;
        out[(p * outH + oh) * outW + ow] = sum / ((h1 - h0) * (w1 - w0));
      });
    });
  }
  return out;
}

export function referenceAdaptiveAvgPoolBackward(gradOut: ArrayLike<number>, planes: number, height: number, width: number, outH: number, outW: number): Float64Array {
  const gradIn = new Float64Array(planes * height * width);
  const rows = bins(height, outH);
  const columns = bins(width, outW);
  for (let p = 0; p < planes; p += 1) {
    rows.forEach(([h0, h1], oh) => {
      columns.forEach(([w0, w1], ow) => {
        const g = gradOut[(p * outH + oh) * outW + ow]! / ((h1 - h0) * (w1 - w0));
        for (let h = h0; h < h1; h += 1) for (let w = w0; w < w1; w += 1) gradIn[(p * height + h) * width + w] += g;
      });
    });
  }
  return gradIn;
}
