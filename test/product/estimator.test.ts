import { describe, expect, it } from 'vitest';
import { testMatrixPair, type DataKind } from '../../src/data/testMatrices.js';
import { matmulATExact, productNmse, type Matrix } from '../../src/matrix.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { quantize, type GainMode } from '../../src/quantize/quantize.js';
import type { Scheme, SchemeName } from '../../src/quantize/schemes.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/** z-score (mean / standard error) of a sample. */
function zScore(values: readonly number[]): number {
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / (values.length - 1);
  return mean / Math.sqrt(variance / values.length);
}

/**
 * Normalized errors e_ij = (Ĉ_ij − C_ij) / (‖a_i‖‖b_j‖/√n) of every entry, and the same signed by
 * C_ij: a mean of the second below zero means the estimate shrinks inner products toward zero.
 */
function normalizedErrors(estimate: Matrix, a: Matrix, b: Matrix): { errors: number[]; signed: number[] } {
  const exact = matmulATExact(a, b);
  const n = a.rows;
  const norm = (m: Matrix, j: number): number => Math.sqrt(m.data.subarray(j * n, (j + 1) * n).reduce((s, v) => s + v * v, 0));
  const errors: number[] = [];
  const signed: number[] = [];
  for (let j = 0; j < b.cols; j++) {
    for (let i = 0; i < a.cols; i++) {
      const k = j * a.cols + i;
      const e = ((estimate.data[k] as number) - (exact.data[k] as number)) / ((norm(a, i) * norm(b, j)) / Math.sqrt(n));
      errors.push(e);
      signed.push(e * Math.sign(exact.data[k] as number));
    }
  }
  return { errors, signed };
}

function nmseOf(scheme: SchemeName | Scheme, a: Matrix, b: Matrix, gain?: GainMode): number {
  return productNmse(matmulAT(quantize(a, { scheme, seed: 3, gain }), quantize(b, { scheme, seed: 3, gain })), a, b);
}

describe('the estimator is unbiased enough', () => {
  const kinds: DataKind[] = ['gaussian', 'low-rank'];
  for (const kind of kinds) {
    it.each(['d3-q6', 'e8-q16'] as const)(`${kind}, %s, default (unbiased) gain: mean error and mean signed error within 4 standard errors of 0`, (scheme) => {
      for (const seed of [1, 2]) {
        const { a, b } = testMatrixPair(kind, 768, 32, 32, seed);
        const { errors, signed } = normalizedErrors(matmulAT(quantize(a, { scheme, seed }), quantize(b, { scheme, seed })), a, b);
        expect(Math.abs(zScore(errors)), `${kind} seed ${seed}`).toBeLessThan(4);
        expect(Math.abs(zScore(signed)), `${kind} seed ${seed}`).toBeLessThan(4);
      }
    });
  }

  it('the same statistic detects the shrinkage of the MMSE gain on low-rank data', () => {
    const { a, b } = testMatrixPair('low-rank', 768, 32, 32, 1);
    const { signed } = normalizedErrors(matmulAT(quantize(a, { scheme: 'd3-q6', gain: 'mmse' }), quantize(b, { scheme: 'd3-q6', gain: 'mmse' })), a, b);
    expect(zScore(signed)).toBeLessThan(-10);
  });

  it('on low-rank data the unbiased gain beats both MMSE and no gain', () => {
    const { a, b } = testMatrixPair('low-rank', 768, 32, 32, 2);
    const unbiased = nmseOf('d3-q6', a, b, 'unbiased');
    expect(unbiased).toBeLessThan(nmseOf('d3-q6', a, b, 'mmse'));
    expect(unbiased).toBeLessThan(nmseOf('d3-q6', a, b, 'none'));
  });
});

describe('the product error shrinks as the rate grows', () => {
  const a = gaussianMatrix(768, 24, 1);
  const b = gaussianMatrix(768, 24, 2);

  const sweeps: [string, Scheme[]][] = [
    // β ∝ 1/q keeps the overload probability about constant while the cells shrink.
    ['D3, q = 4, 6, 8, 12', [4, 6, 8, 12].map((q) => ({ kind: 'lattice', lattice: 'D3', q, overload: { kind: 'ladder', beta: 2.4 / q, ratio: Math.SQRT2, steps: 4 } }))],
    ['Z8, q = 4, 8, 16', [4, 8, 16].map((q) => ({ kind: 'lattice', lattice: 'Z', q, overload: { kind: 'ladder', beta: 6 / q, ratio: Math.SQRT2, steps: 4 } }))],
    ['E8, q = 4, 8, 16', [4, 8, 16].map((q) => ({ kind: 'lattice', lattice: 'E8', q, overload: { kind: 'betaSet', betas: [3.2, 4.48, 6.272, 8.7808].map((x) => x / q) } }))],
  ];
  it.each(sweeps)('%s: bits strictly increase, NMSE strictly decreases', (_name, schemes) => {
    let previousBits = 0;
    let previousNmse = Infinity;
    for (const scheme of schemes) {
      const qa = quantize(a, { scheme, seed: 3 });
      const nmse = productNmse(matmulAT(qa, quantize(b, { scheme, seed: 3 })), a, b);
      expect(qa.bitsEntropy).toBeGreaterThan(previousBits);
      expect(nmse).toBeLessThan(previousNmse);
      previousBits = qa.bitsEntropy;
      previousNmse = nmse;
    }
  });

  it('scalar baselines: int3-absmax > int4-g128 > int4-g32 in NMSE', () => {
    const int3 = nmseOf('int3-absmax', a, b);
    const g128 = nmseOf('int4-g128', a, b);
    const g32 = nmseOf('int4-g32', a, b);
    expect(int3).toBeGreaterThan(g128);
    expect(g128).toBeGreaterThan(g32);
  });
});

describe('operating points on iid Gaussian data (n = 768)', () => {
  const a = gaussianMatrix(768, 32, 1);
  const b = gaussianMatrix(768, 32, 2);
  const d3 = nmseOf('d3-q6', a, b);

  it('d3-q6: NMSE in [0.05, 0.07] (the seed paper reports 0.0593 at n = 6144)', () => {
    expect(d3).toBeGreaterThan(0.05);
    expect(d3).toBeLessThan(0.07);
  });

  it('int3-absmax (about 3 bits too) is worse than d3-q6', () => {
    expect(nmseOf('int3-absmax', a, b)).toBeGreaterThan(1.5 * d3);
  });

  it('e8-q16 (4.25 bits) has a lower NMSE than d3-q6, about 0.009', () => {
    const e8 = nmseOf('e8-q16', a, b);
    expect(e8).toBeLessThan(d3);
    expect(e8).toBeGreaterThan(0.006);
    expect(e8).toBeLessThan(0.013);
  });
});
