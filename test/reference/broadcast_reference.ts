// Slow, obviously-correct float64 references for broadcasting elementwise ops and axis sums.
export function broadcastShape(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  return Array.from({ length: rank }, (_, index) => {
    const x = a[a.length - rank + index] ?? 1;
    const y = b[b.length - rank + index] ?? 1;
    return x === 1 ? y : x;
  });
}

function offsetOf(index: number[], shape: readonly number[]): number {
  // index is over the output shape; shape is right-aligned and broadcast (extent 1 → index 0).
  let offset = 0;
  const lead = index.length - shape.length;
  for (let d = 0; d < shape.length; d += 1) offset = offset * shape[d]! + (shape[d] === 1 ? 0 : index[lead + d]!);
  return offset;
}

export function referenceBinary(a: ArrayLike<number>, aShape: readonly number[], b: ArrayLike<number>, bShape: readonly number[], op: (x: number, y: number) => number): { values: Float64Array; shape: number[] } {
  const shape = broadcastShape(aShape, bShape);
  const size = shape.reduce((p, e) => p * e, 1);
  const values = new Float64Array(size);
  const index = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < size; flat += 1) {
    let remainder = flat;
    for (let d = shape.length - 1; d >= 0; d -= 1) {
      index[d] = remainder % shape[d]!;
      remainder = Math.floor(remainder / shape[d]!);
    }
    values[flat] = op(a[offsetOf(index, aShape)]!, b[offsetOf(index, bShape)]!);
  }
  return { values, shape };
}

export function referenceSum(x: ArrayLike<number>, shape: readonly number[], axes: readonly number[]): Float64Array {
  const keptShape = shape.map((extent, d) => (axes.includes(d) ? 1 : extent));
  const out = new Float64Array(keptShape.reduce((p, e) => p * e, 1));
  const index = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < x.length; flat += 1) {
    let remainder = flat;
    for (let d = shape.length - 1; d >= 0; d -= 1) {
      index[d] = remainder % shape[d]!;
      remainder = Math.floor(remainder / shape[d]!);
    }
    let target = 0;
    for (let d = 0; d < shape.length; d += 1) target = target * keptShape[d]! + (axes.includes(d) ? 0 : index[d]!);
    out[target] += x[flat]!;
  }
  return out;
}
