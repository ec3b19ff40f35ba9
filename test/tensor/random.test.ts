// Seeds the generator cannot tell apart are refused: the state is expanded from 32 bits, so
// 1 and 1 + 2^32 (or −1 and 2^32 − 1, or 1.5 and 1) used to give the same stream.
import { describe, expect, it } from 'vitest';
import { Generator, defaultGenerator, manualSeed } from '../../src/tensor/random.js';

function draws(generator: Generator): number[] {
  return Array.from({ length: 8 }, () => generator.nextUint32());
}

describe('Generator seeds', () => {
  it('every seed in [0, 2^32 - 1] is its own stream, the largest included', () => {
    expect(draws(new Generator(1))).not.toEqual(draws(new Generator(2)));
    expect(draws(new Generator(0xffffffff))).not.toEqual(draws(new Generator(0)));
    expect(draws(new Generator(7))).toEqual(draws(new Generator(7)));
  });

  it('refuses seeds that would alias a 32-bit one (≥ 2^32, negative, fractional, not a number)', () => {
    for (const seed of [2 ** 32, 1 + 2 ** 32, 2 ** 53 - 1, -1, 1.5, Number.NaN, Infinity]) {
      expect(() => new Generator(seed)).toThrow(/Generator\.seed: seed must be an integer in \[0, 2\^32 - 1\]/);
      expect(() => manualSeed(seed)).toThrow(RangeError);
    }
    expect(() => manualSeed('1' as unknown as number)).toThrow(/got 1/);
    // A refused seed leaves the default generator as it was.
    manualSeed(5);
    const before = defaultGenerator.getState();
    expect(() => manualSeed(5 + 2 ** 32)).toThrow();
    expect(defaultGenerator.getState()).toEqual(before);
  });
});
