// Plain-JS references for the layout ops (test-only). Values are carried as float64 arrays and
// every output element is found by walking its multi-index back to the input, element by
// element, the slow obvious way (no strides, no coalescing), so they share nothing with the
// native strided-copy kernel.

export interface Dense {
  values: Float64Array;
  shape: number[];
}

export function dense(values: ArrayLike<number>, shape: readonly number[]): Dense {
  return { values: Float64Array.from(values as ArrayLike<number>), shape: [...shape] };
}

function size(shape: readonly number[]): number {
  return shape.reduce((product, extent) => product * extent, 1);
}

function unravel(flat: number, shape: readonly number[]): number[] {
  const index = new Array<number>(shape.length).fill(0);
  for (let d = shape.length - 1; d >= 0; d -= 1) {
    index[d] = flat % shape[d]!;
    flat = Math.floor(flat / shape[d]!);
  }
  return index;
}

function ravel(index: readonly number[], shape: readonly number[]): number {
  let flat = 0;
  for (let d = 0; d < shape.length; d += 1) flat = flat * shape[d]! + index[d]!;
  return flat;
}

function build(shape: number[], valueAt: (index: number[]) => number): Dense {
  const values = new Float64Array(size(shape));
  for (let flat = 0; flat < values.length; flat += 1) values[flat] = valueAt(unravel(flat, shape));
  return { values, shape };
}

const positive = (dim: number, rank: number): number => (dim < 0 ? dim + rank : dim);

export function referencePermute(x: Dense, dims: readonly number[]): Dense {
  const order = dims.map((dim) => positive(dim, x.shape.length));
  const shape = order.map((dim) => x.shape[dim]!);
  return build(shape, (index) => {
    const source = new Array<number>(x.shape.length);
    order.forEach((dim, i) => {
      source[dim] = index[i]!;
    });
    return x.values[ravel(source, x.shape)]!;
  });
}

export function referenceConcat(parts: readonly Dense[], dim: number): Dense {
  const axis = positive(dim, parts[0]!.shape.length);
  const shape = [...parts[0]!.shape];
  shape[axis] = parts.reduce((total, part) => total + part.shape[axis]!, 0);
  return build(shape, (index) => {
    let position = index[axis]!;
    for (const part of parts) {
      if (position < part.shape[axis]!) {
        const source = [...index];
        source[axis] = position;
        return part.values[ravel(source, part.shape)]!;
      }
      position -= part.shape[axis]!;
    }
    throw new Error('referenceConcat: index outside every part');
  });
}

export function referenceStack(parts: readonly Dense[], dim: number): Dense {
  const axis = positive(dim, parts[0]!.shape.length + 1);
  const shape = [...parts[0]!.shape];
  shape.splice(axis, 0, parts.length);
  return build(shape, (index) => {
    const source = [...index];
    const [which] = source.splice(axis, 1);
    return parts[which!]!.values[ravel(source, parts[which!]!.shape)]!;
  });
}

/** The positions Python's range(*slice(start, end, step).indices(extent)) visits (step >= 1). */
export function pythonSliceIndices(extent: number, start: number, end: number | undefined, step: number): number[] {
  const adjust = (value: number): number => {
    if (value < 0) {
      value += extent;
      if (value < 0) value = 0;
    } else if (value >= extent) value = extent;
    return value;
  };
  const first = adjust(start);
  const stop = end === undefined ? extent : adjust(end);
  const visited: number[] = [];
  for (let position = first; position < stop; position += step) visited.push(position);
  return visited;
}

export function referenceSlice(x: Dense, dim: number, start: number, end: number | undefined, step: number): Dense {
  const axis = positive(dim, x.shape.length);
  const picked = pythonSliceIndices(x.shape[axis]!, start, end, step);
  return referenceIndexSelect(x, axis, picked);
}

export function referenceIndexSelect(x: Dense, dim: number, indices: ArrayLike<number>): Dense {
  const axis = positive(dim, x.shape.length);
  const shape = [...x.shape];
  shape[axis] = indices.length;
  return build(shape, (index) => {
    const source = [...index];
    source[axis] = indices[index[axis]!]!;
    return x.values[ravel(source, x.shape)]!;
  });
}

/** zeros with `extent` along dim, then out[..., indices[j], ...] += source[..., j, ...] for each j. */
export function referenceIndexAdd(source: Dense, dim: number, indices: ArrayLike<number>, extent: number): Dense {
  const axis = positive(dim, source.shape.length);
  const shape = [...source.shape];
  shape[axis] = extent;
  const out = new Float64Array(size(shape));
  for (let flat = 0; flat < source.values.length; flat += 1) {
    const index = unravel(flat, source.shape);
    index[axis] = indices[index[axis]!]!;
    out[ravel(index, shape)] += source.values[flat]!;
  }
  return { values: out, shape };
}

/** The gradient of a slice: zeros of inputShape with grad placed at the sliced positions. */
export function referenceSliceBackward(grad: Dense, inputShape: readonly number[], dim: number, start: number, end: number | undefined, step: number): Dense {
  const axis = positive(dim, inputShape.length);
  const picked = pythonSliceIndices(inputShape[axis]!, start, end, step);
  return referenceIndexAdd(grad, axis, picked, inputShape[axis]!);
}
