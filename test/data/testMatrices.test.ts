import { describe, expect, it } from 'vitest';
import { DATA_KINDS, testMatrixPair, type DataKind } from '../../src/data/testMatrices.js';
import { LatticeMatmulError } from '../../src/errors.js';
import { column, matmulATExact, type Matrix } from '../../src/matrix.js';
import { rotationLength } from '../../src/rotation/hadamard.js';

function moments(data: Float32Array): { mean: number; variance: number; kurtosis: number } {
  const n = data.length;
  const mean = data.reduce((s, v) => s + v, 0) / n;
  let m2 = 0;
  let m4 = 0;
  for (const v of data) {
    m2 += (v - mean) ** 2;
    m4 += (v - mean) ** 4;
  }
  m2 /= n;
  m4 /= n;
  return { mean, variance: m2, kurtosis: m4 / (m2 * m2) };
}

/** Mean of |cos| between columns of A and columns of B. */
function meanAbsCosine(a: Matrix, b: Matrix): number {
  const c = matmulATExact(a, b);
  const norm = (m: Matrix, j: number): number => Math.sqrt(column(m, j).reduce((s, v) => s + v * v, 0));
  let total = 0;
  for (let j = 0; j < b.cols; j++) for (let i = 0; i < a.cols; i++) total += Math.abs(c.data[j * a.cols + i] as number) / (norm(a, i) * norm(b, j));
  return total / (a.cols * b.cols);
}

describe('testMatrixPair', () => {
  it('knows the eight kinds (the seed paper\'s four and the universality study\'s four)', () => {
    expect([...DATA_KINDS]).toEqual(['gaussian', 'heavy-tailed', 'outlier-rows', 'low-rank', 'parallel', 'spikes', 'two-spikes', 'permuted']);
  });

  // 'permuted' swaps rotated coordinates, so it needs an n the rotation does not pad: the smallest
  // such n ≥ 97 (rotationLength decides which lengths exist); the others take the odd n = 97.
  const unpadded = (from: number): number => {
    let n = from;
    while (rotationLength(n) !== n) n++;
    return n;
  };

  it.each(DATA_KINDS)('%s: shapes, finite Float32 data, deterministic in the seed', (kind) => {
    const n = kind === 'permuted' ? unpadded(97) : 97;
    const { a, b } = testMatrixPair(kind, n, 5, 3, 11);
    expect([a.rows, a.cols, a.data.length]).toEqual([n, 5, 5 * n]);
    expect([b.rows, b.cols, b.data.length]).toEqual([n, 3, 3 * n]);
    expect(a.data).toBeInstanceOf(Float32Array);
    expect(a.data.every(Number.isFinite) && b.data.every(Number.isFinite)).toBe(true);
    const again = testMatrixPair(kind, n, 5, 3, 11);
    expect(again.a.data).toEqual(a.data);
    expect(again.b.data).toEqual(b.data);
    const other = testMatrixPair(kind, n, 5, 3, 12);
    expect(other.a.data).not.toEqual(a.data);
    expect(b.data).not.toEqual(a.data.subarray(0, b.data.length));
  });

  it("'permuted' refuses an n that the rotation pads, naming it", () => {
    const padded = [97, 100, 1000].find((n) => rotationLength(n) !== n) as number;
    expect(() => testMatrixPair('permuted', padded, 2, 2, 1)).toThrow(LatticeMatmulError);
    expect(() => testMatrixPair('permuted', padded, 2, 2, 1)).toThrow(new RegExp(`got n = ${padded}`));
  });

  it('n = 1, one column each', () => {
    for (const kind of DATA_KINDS) {
      const { a, b } = testMatrixPair(kind, 1, 1, 1, 1);
      expect([a.data.length, b.data.length]).toEqual([1, 1]);
    }
  });

  it('gaussian: mean ≈ 0, variance ≈ 1, kurtosis ≈ 3', () => {
    const { a } = testMatrixPair('gaussian', 1000, 50, 1, 1);
    const m = moments(a.data);
    expect(Math.abs(m.mean)).toBeLessThan(0.02);
    expect(Math.abs(m.variance - 1)).toBeLessThan(0.03);
    expect(Math.abs(m.kurtosis - 3)).toBeLessThan(0.15);
  });

  it('heavy-tailed: Student-t(3) has variance ≈ 3 and a much larger kurtosis', () => {
    const { a } = testMatrixPair('heavy-tailed', 1000, 50, 1, 2);
    const m = moments(a.data);
    expect(m.kurtosis).toBeGreaterThan(8);
    expect(m.variance).toBeGreaterThan(2);
    expect(m.variance).toBeLessThan(4.5);
  });

  it('outlier-rows: 1% of the rows, the same in A and B, have about 400× the variance', () => {
    const n = 1000;
    const { a, b } = testMatrixPair('outlier-rows', n, 40, 40, 3);
    const rowVariance = (m: Matrix, i: number): number => {
      let s = 0;
      for (let j = 0; j < m.cols; j++) s += (m.data[j * n + i] as number) ** 2;
      return s / m.cols;
    };
    const loud = (m: Matrix): number[] => Array.from({ length: n }, (_, i) => i).filter((i) => rowVariance(m, i) > 50);
    expect(loud(a).length).toBe(10);
    expect(loud(b)).toEqual(loud(a));
    const quiet = Array.from({ length: n }, (_, i) => i).filter((i) => !loud(a).includes(i));
    const quietVariance = quiet.reduce((s, i) => s + rowVariance(a, i), 0) / quiet.length;
    const loudVariance = loud(a).reduce((s, i) => s + rowVariance(a, i), 0) / 10;
    expect(loudVariance / quietVariance).toBeGreaterThan(200);
    expect(loudVariance / quietVariance).toBeLessThan(800);
  });

  it('low-rank: columns of A and B share a 4-dimensional space, so inner products are large', () => {
    const low = testMatrixPair('low-rank', 500, 20, 20, 4);
    const gauss = testMatrixPair('gaussian', 500, 20, 20, 4);
    // Independent Gaussian columns: |cos| ≈ √(2/(πn)) ≈ 0.036; a shared rank-4 space: ≈ 0.4.
    expect(meanAbsCosine(gauss.a, gauss.b)).toBeLessThan(0.06);
    expect(meanAbsCosine(low.a, low.b)).toBeGreaterThan(0.25);
  });

  it.each([
    ['spikes', 1],
    ['two-spikes', 2],
  ] as const)('%s: exactly %d entries of 40 in every column (two at one row were a single spike)', (kind, spikes) => {
    // 64 rows, 200 columns of each: two random rows of 64 coincide in ≈ 3 of 200 columns.
    const { a, b } = testMatrixPair(kind, 64, 200, 200, 3);
    for (const m of [a, b]) {
      for (let j = 0; j < m.cols; j++) expect(column(m, j).filter((v) => v === 40).length, `column ${j}`).toBe(spikes);
    }
    expect(column(testMatrixPair('two-spikes', 1, 1, 1, 3).a, 0)[0]).toBe(40);
  });

  it.each([
    ['an unknown kind', () => testMatrixPair('uniform' as DataKind, 4, 1, 1, 1), /unknown data kind 'uniform'; known: gaussian, heavy-tailed/],
    ['n = 0', () => testMatrixPair('gaussian', 0, 1, 1, 1), /n must be a positive integer, got 0/],
    ['aCols = 0', () => testMatrixPair('gaussian', 4, 0, 1, 1), /aCols must be a positive integer/],
    ['bCols = 1.5', () => testMatrixPair('gaussian', 4, 1, 1.5, 1), /bCols must be a positive integer/],
    ['seed −1', () => testMatrixPair('gaussian', 4, 1, 1, -1), /seed must be an integer/],
  ])('refuses %s', (_name, action, message) => {
    expect(action).toThrow(LatticeMatmulError);
    expect(action).toThrow(message);
  });
});
