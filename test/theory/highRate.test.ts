import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { gamma } from '../../src/theory/gamma.js';
import { effectiveRate, predictedProductNmse, scalarRateLoss } from '../../src/theory/highRate.js';

describe('effectiveRate', () => {
  it.each([0, 1, 2, 3.5, 8])('is %s bits at δ = 2^(−2R)', (rate) => {
    expect(effectiveRate(2 ** (-2 * rate))).toBeCloseTo(rate, 14);
  });

  it('matches the high-rate estimate of [2]: INT4/g32 with δ ≈ 0.009 is worth ≈ 3.4 bits', () => {
    expect(effectiveRate(0.009)).toBeCloseTo(3.398, 3);
  });

  it('puts Γ at R_eff exactly at 2δ − δ² (the curve in t = δ)', () => {
    for (const delta of [0.2, 0.08, 0.009, 1e-4]) {
      expect(gamma(effectiveRate(delta))).toBeCloseTo(2 * delta - delta * delta, 14);
    }
  });

  it.each([0, -0.1, Number.NaN, Infinity])('refuses δ = %s', (delta) => {
    expect(() => effectiveRate(delta)).toThrow(LatticeMatmulError);
  });
});

describe('scalarRateLoss', () => {
  it('is the stored rate minus the effective rate', () => {
    expect(scalarRateLoss(4.5, 2 ** -7)).toBeCloseTo(1, 14);
    expect(scalarRateLoss(4.5, 0.009)).toBeCloseTo(4.5 + 0.5 * Math.log2(0.009), 14);
    expect(scalarRateLoss(4.5, 0.009)).toBeCloseTo(1.1, 1);
  });

  it('refuses bad rates and errors', () => {
    expect(() => scalarRateLoss(-1, 0.01)).toThrow(LatticeMatmulError);
    expect(() => scalarRateLoss(Number.NaN, 0.01)).toThrow(LatticeMatmulError);
    expect(() => scalarRateLoss(4, 0)).toThrow(LatticeMatmulError);
  });
});

describe('predictedProductNmse', () => {
  it('is δ_A + δ_B + δ_A·δ_B', () => {
    expect(predictedProductNmse(0.08, 0.08)).toBeCloseTo(0.1664, 14);
    expect(predictedProductNmse(0.01, 0)).toBeCloseTo(0.01, 14);
    expect(predictedProductNmse(0.1, 0.2)).toBeCloseTo(0.32, 14);
  });

  it('refuses negative or non-finite errors', () => {
    expect(() => predictedProductNmse(-0.1, 0.1)).toThrow(LatticeMatmulError);
    expect(() => predictedProductNmse(0.1, Number.NaN)).toThrow(LatticeMatmulError);
  });
});
