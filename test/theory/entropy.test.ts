import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { empiricalEntropy, entropyOfSymbols, symbolCounts } from '../../src/theory/entropy.js';

/** Direct −Σ p·log2 p from a sorted copy: an oracle sharing no code with the library. */
function entropyBySorting(symbols: number[]): number {
  const sorted = [...symbols].sort((a, b) => a - b);
  let h = 0;
  let run = 1;
  for (let i = 1; i <= sorted.length; i++) {
    if (i < sorted.length && sorted[i] === sorted[i - 1]) {
      run++;
      continue;
    }
    const p = run / sorted.length;
    h -= p * Math.log2(p);
    run = 1;
  }
  return h;
}

describe('empiricalEntropy', () => {
  it.each([1, 2, 3, 7, 216, 256])('is log2 k for %s equally frequent symbols', (k) => {
    expect(empiricalEntropy(new Array<number>(k).fill(5))).toBeCloseTo(Math.log2(k), 12);
  });

  it('matches hand values', () => {
    expect(empiricalEntropy([1, 3])).toBeCloseTo(-(0.25 * Math.log2(0.25) + 0.75 * Math.log2(0.75)), 14);
    expect(empiricalEntropy([1, 3])).toBeCloseTo(0.811278, 6);
    expect(empiricalEntropy([2, 1, 1])).toBeCloseTo(1.5, 14);
    expect(empiricalEntropy([0, 9, 0])).toBe(0);
  });

  it('ignores empty bins and is invariant to scaling the counts', () => {
    const counts = [3, 0, 8, 1, 0, 20];
    const h = empiricalEntropy(counts);
    expect(empiricalEntropy(counts.filter((c) => c > 0))).toBeCloseTo(h, 14);
    expect(empiricalEntropy(counts.map((c) => c * 1e9))).toBeCloseTo(h, 12);
    expect(empiricalEntropy(new Float64Array(counts))).toBeCloseTo(h, 14);
  });

  it('counts whose sum overflows a double, though each is far from it: 2^24 counts of 2^1000 is 24 bits (was NaN)', () => {
    expect(empiricalEntropy(new Float64Array(2 ** 24).fill(2 ** 1000))).toBeCloseTo(24, 12);
    expect(empiricalEntropy([2 ** 1023, 2 ** 1023, 2 ** 1022, 2 ** 1022])).toBeCloseTo(Math.log2(3) + 1 / 3, 12); // proportions 1/3, 1/3, 1/6, 1/6
  });

  it('stays accurate and non-negative for very skewed counts', () => {
    const big = 1e15;
    const p = 1 / (big + 1);
    const expected = -(p * Math.log2(p) + (1 - p) * Math.log2(1 - p));
    const h = empiricalEntropy([big, 1]);
    expect(h).toBeGreaterThan(0);
    expect(Math.abs(h - expected) / expected).toBeLessThan(1e-3);
  });

  it.each([
    ['empty', []],
    ['all zero', [0, 0]],
    ['negative', [1, -1]],
    ['NaN', [1, Number.NaN]],
    ['infinite', [1, Infinity]],
  ])('refuses %s counts', (_name, counts) => {
    expect(() => empiricalEntropy(counts as number[])).toThrow(LatticeMatmulError);
  });
});

describe('entropyOfSymbols', () => {
  it.each([
    [1, 10],
    [100, 2],
    [1000, 17],
    [5000, 216],
  ])('matches a sort-and-count oracle (%s symbols, alphabet %s)', (n, alphabet) => {
    let state = 12345 + n;
    const symbols = Array.from({ length: n }, () => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      // Skewed: squaring a uniform makes small symbols more frequent.
      return Math.floor(((state / 2 ** 32) ** 2) * alphabet) - 3;
    });
    expect(entropyOfSymbols(symbols)).toBeCloseTo(entropyBySorting(symbols), 12);
    expect(entropyOfSymbols(Int32Array.from(symbols))).toBeCloseTo(entropyBySorting(symbols), 12);
  });

  it('counts near the largest double give the entropy of their proportions (their sum overflowed to NaN)', () => {
    expect(empiricalEntropy([1e308, 1e308])).toBe(1);
    expect(empiricalEntropy([1.5e308, 0.5e308, 1e308, 1e308])).toBeCloseTo(empiricalEntropy([3, 1, 2, 2]), 12);
  });

  it('gives 1 bit for a balanced pair, 0 for a constant, and treats −0 as 0', () => {
    expect(entropyOfSymbols([0, 1, 0, 1])).toBe(1);
    expect(entropyOfSymbols(new Int32Array(10))).toBe(0);
    expect(entropyOfSymbols([0, -0, 0, -0])).toBe(0);
    expect(symbolCounts([2, 2, 7]).get(2)).toBe(2);
  });

  it('refuses empty and non-finite input', () => {
    expect(() => entropyOfSymbols([])).toThrow(LatticeMatmulError);
    expect(() => entropyOfSymbols([1, Number.NaN])).toThrow(LatticeMatmulError);
    expect(() => entropyOfSymbols([Infinity])).toThrow(LatticeMatmulError);
  });
});
