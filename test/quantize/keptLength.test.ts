import { describe, expect, it } from 'vitest';
import { keptRotatedLength } from '../../src/quantize/quantize.js';

/*
 * The rotated coordinates a lattice scheme keeps (time-sharing): all of them at κ = 1, else κ·N rounded
 * to whole blocks of d, at least one block (keepFraction may be any number in (0, 1]).
 */
describe('keptRotatedLength', () => {
  it.each([
    // [N, d, κ, kept]: worked by hand.
    [64, 8, 1, 64],
    [100, 3, 1, 100], // κ = 1 keeps a last partial block's coordinates as they are
    [64, 8, 0.5, 32],
    [64, 3, 0.5, 33], // 32/3 = 10.67 → 11 blocks
    [64, 3, 0.99, 63], // 63.36/3 = 21.12 → 21 blocks
    [64, 8, 0.001, 8], // 0.064 blocks round to 0: still one block
    [64, 3, 1e-9, 3],
    [2, 3, 0.5, 2], // one block is more than N: N
  ])('N = %i, d = %i, κ = %s keeps %i', (length, d, keepFraction, kept) => {
    expect(keptRotatedLength(length, d, keepFraction)).toBe(kept);
  });
});
