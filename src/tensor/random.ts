// Seeded pseudo-random numbers for initialisation and data order (xoshiro128** + Box–Muller).
// One global generator (manualSeed) like torch.manual_seed; pass a Generator for independence.
export class Generator {
  private state = new Uint32Array(4);
  private spareNormal: number | null = null;

  constructor(seed = 0) {
    this.seed(seed);
  }

  /**
   * Resets the stream (splitmix32 expands the seed into the 128-bit state). Seeds are 32-bit
   * integers, 0 … 2^32 − 1: the expansion reads 32 bits, so 1 and 1 + 2^32 (or −1 and 2^32 − 1, or
   * 1.5 and 1) would give the same stream; such seeds are refused, never silently aliased.
   */
  seed(seed: number): void {
    if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new RangeError(`Generator.seed: seed must be an integer in [0, 2^32 - 1] (the generator is seeded with 32 bits), got ${String(seed)}`);
    }
    let value = seed >>> 0;
    for (let index = 0; index < 4; index += 1) {
      value = (value + 0x9e3779b9) >>> 0;
      let mixed = value;
      mixed = Math.imul(mixed ^ (mixed >>> 16), 0x85ebca6b) >>> 0;
      mixed = Math.imul(mixed ^ (mixed >>> 13), 0xc2b2ae35) >>> 0;
      this.state[index] = (mixed ^ (mixed >>> 16)) >>> 0;
    }
    if (this.state.every((word) => word === 0)) this.state[0] = 1;
    this.spareNormal = null;
  }

  /** Serialisable state, for exact resume. */
  getState(): number[] {
    return [...this.state, this.spareNormal === null ? Number.NaN : this.spareNormal];
  }

  setState(saved: readonly number[]): void {
    if (!Array.isArray(saved) || saved.length !== 5) throw new Error('Generator.setState: expected the array from getState()');
    for (let index = 0; index < 4; index += 1) this.state[index] = saved[index]! >>> 0;
    this.spareNormal = Number.isNaN(saved[4]!) ? null : saved[4]!;
  }

  /** Next 32 random bits. */
  nextUint32(): number {
    const state = this.state;
    const result = Math.imul(rotateLeft(Math.imul(state[1]!, 5) >>> 0, 7), 9) >>> 0;
    const shifted = (state[1]! << 9) >>> 0;
    state[2]! ^= state[0]!;
    state[3]! ^= state[1]!;
    state[1]! ^= state[2]!;
    state[0]! ^= state[3]!;
    state[2]! ^= shifted;
    state[3] = rotateLeft(state[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return (this.nextUint32() >>> 8) / 16777216;
  }

  /** Uniform integer in [0, bound). */
  integer(bound: number): number {
    return Math.floor(this.uniform() * bound);
  }

  /** Standard normal. */
  normal(): number {
    if (this.spareNormal !== null) {
      const value = this.spareNormal;
      this.spareNormal = null;
      return value;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const radius = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = radius * Math.sin(2 * Math.PI * v);
    return radius * Math.cos(2 * Math.PI * v);
  }
}

function rotateLeft(value: number, bits: number): number {
  return ((value << bits) | (value >>> (32 - bits))) >>> 0;
}

export const defaultGenerator = new Generator(0);

/** Seeds the default generator (like torch.manual_seed; seeds are integers in [0, 2^32 − 1]). */
export function manualSeed(seed: number): void {
  defaultGenerator.seed(seed);
}
