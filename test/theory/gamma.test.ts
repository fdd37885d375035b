import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { GAMMA_AT_R_STAR, R_STAR, TIME_SHARING_SLOPE, gamma, gammaInverse, rateLoss } from '../../src/theory/gamma.js';

// Independent forms: the curve as t·(2 − t), t = 2^{−2R} (algebraically 2·2^{−2R} − 2^{−4R} and
// 1 − (1 − t)², without the latter's cancellation at high rate), and the low-rate piece as linear
// interpolation between (0, 1) and (R*, curve(R*)).
const curve = (rate: number): number => 2 ** (-2 * rate) * (2 - 2 ** (-2 * rate));
const expectedGamma = (rate: number): number =>
  rate >= R_STAR ? curve(rate) : (1 - rate / R_STAR) * 1 + (rate / R_STAR) * curve(R_STAR);

/** Inverse of a decreasing function by bisection: an oracle that knows no closed form. */
function bisectInverse(f: (r: number) => number, target: number): number {
  let low = 0;
  let high = 64;
  for (let i = 0; i < 200; i++) {
    const mid = 0.5 * (low + high);
    if (f(mid) > target) low = mid;
    else high = mid;
  }
  return 0.5 * (low + high);
}

describe('R*', () => {
  it('solves R = ½·log2(1 + 4R·ln 2) to 1e-12 and is the non-trivial root', () => {
    expect(Math.abs(R_STAR - 0.5 * Math.log2(1 + 4 * R_STAR * Math.LN2))).toBeLessThan(1e-12);
    expect(R_STAR).toBeCloseTo(0.906324, 6);
    // A genuine sign change, not a near miss.
    const residual = (r: number): number => r - 0.5 * Math.log2(1 + 4 * r * Math.LN2);
    expect(residual(R_STAR - 1e-9)).toBeLessThan(0);
    expect(residual(R_STAR + 1e-9)).toBeGreaterThan(0);
  });

  it('gives the constants the seed paper quotes', () => {
    expect(GAMMA_AT_R_STAR).toBeCloseTo(0.4883, 4);
    expect(TIME_SHARING_SLOPE).toBeCloseTo(0.564588, 6);
  });
});

describe('gamma', () => {
  it.each([0, 0.1, 0.45, 0.9, R_STAR, 0.91, 1, 1.5, 2, 2.585, 3, 3.015, 4.25, 6, 10, 30])(
    'matches the closed form at R = %s',
    (rate) => {
      const expected = expectedGamma(rate);
      expect(Math.abs(gamma(rate) - expected)).toBeLessThanOrEqual(1e-12 * expected);
    },
  );

  it('reproduces the bounds quoted by the seeds', () => {
    expect(gamma(3.015)).toBeCloseTo(0.0304, 4);
    expect(gamma(4.25)).toBeCloseTo(0.0055, 4);
    expect(gamma(0)).toBe(1);
    expect(gamma(Infinity)).toBe(0);
  });

  // The presets' range, 2 to 5 bits: at half-integer R, t = 2^−2R is a power of two, so Γ = 2t − t² is an
  // exact dyadic rational (Γ(2) = 2/16 − 1/256); the second value is Γ as rate-distortion tables print
  // it, to 4 decimals.
  it.each([
    [2, 2 / 16 - 1 / 256, 0.1211],
    [2.5, 2 / 32 - 1 / 1024, 0.0615],
    [3, 2 / 64 - 1 / 4096, 0.031],
    [3.5, 2 / 128 - 1 / 16384, 0.0156],
    [4, 2 / 256 - 1 / 65536, 0.0078],
    [4.5, 2 / 512 - 1 / 262144, 0.0039],
    [5, 2 / 1024 - 1 / 1048576, 0.002],
  ])('Γ(%s) is exactly %s (≈ %s)', (rate, exact, quoted) => {
    expect(gamma(rate)).toBe(exact);
    expect(Math.abs(gamma(rate) - quoted)).toBeLessThanOrEqual(0.00005);
  });

  it('is continuous at R* and the line is tangent to the curve there', () => {
    expect(Math.abs(gamma(R_STAR - 1e-12) - gamma(R_STAR + 1e-12))).toBeLessThan(1e-11);
    const h = 1e-6;
    const rightSlope = (gamma(R_STAR + h) - gamma(R_STAR)) / h;
    const leftSlope = (gamma(R_STAR) - gamma(R_STAR - h)) / h;
    expect(leftSlope).toBeCloseTo(-TIME_SHARING_SLOPE, 9);
    expect(rightSlope).toBeCloseTo(-TIME_SHARING_SLOPE, 5);
    // The curve's analytic derivative −4·ln2·t(1 − t), t = 2^{−2R*}, equals the line's slope.
    const t = 2 ** (-2 * R_STAR);
    expect(-4 * Math.LN2 * t * (1 - t)).toBeCloseTo(-TIME_SHARING_SLOPE, 12);
  });

  it('is the convex envelope: the line lies below the curve for R < R*', () => {
    for (let rate = 0.01; rate < R_STAR; rate += 0.01) expect(gamma(rate)).toBeLessThan(curve(rate));
    for (let rate = 0.02; rate < 8; rate += 0.01) {
      const secondDifference = gamma(rate - 0.01) - 2 * gamma(rate) + gamma(rate + 0.01);
      expect(secondDifference).toBeGreaterThanOrEqual(-1e-15);
    }
  });

  it('is strictly decreasing', () => {
    let previous = gamma(0);
    for (let rate = 0.005; rate <= 20; rate += 0.005) {
      const value = gamma(rate);
      expect(value).toBeLessThan(previous);
      previous = value;
    }
  });

  it.each([Number.NaN, -1, -1e-9, -Infinity])('refuses rate %s', (rate) => {
    expect(() => gamma(rate)).toThrow(LatticeMatmulError);
  });
});

describe('gammaInverse', () => {
  it.each([0, 1e-6, 0.3, 0.9, R_STAR, 0.95, 1, 2, 3.015, 4.25, 8, 15, 25])('inverts gamma at R = %s', (rate) => {
    expect(gammaInverse(gamma(rate))).toBeCloseTo(rate, 9);
  });

  it.each([1, 0.9, 0.6, GAMMA_AT_R_STAR, 0.3, 0.0593, 0.0304, 1e-3, 1e-8, 1e-15])(
    'agrees with a bisection of gamma at NMSE = %s',
    (nmse) => {
      const oracle = bisectInverse(expectedGamma, nmse);
      expect(gammaInverse(nmse)).toBeCloseTo(oracle, 9);
      expect(Math.abs(gamma(gammaInverse(nmse)) - nmse)).toBeLessThanOrEqual(1e-12 * nmse);
    },
  );

  it('keeps precision at tiny errors (no cancellation in 1 − √(1 − d))', () => {
    // For small d, Γ⁻¹(d) = −½·log2(t), t = 1 − √(1 − d) = d/2 + d²/8 + …
    const d = 1e-14;
    expect(gammaInverse(d)).toBeCloseTo(-0.5 * Math.log2(d / 2 + (d * d) / 8), 9);
  });

  it.each([0, -0.1, 1.0000001, 2, Number.NaN, Infinity])('refuses NMSE %s', (nmse) => {
    expect(() => gammaInverse(nmse)).toThrow(LatticeMatmulError);
  });
});

describe('rateLoss', () => {
  it('measures the seed D3 scheme at ≈ 0.49 bit and the 3-bit ℓ∞ scalar at ≈ 1.24 bits', () => {
    expect(rateLoss(3.015, 0.0593)).toBeCloseTo(3.015 - bisectInverse(expectedGamma, 0.0593), 9);
    expect(rateLoss(3.015, 0.0593)).toBeCloseTo(0.488, 2);
    expect(rateLoss(3, 0.1668)).toBeCloseTo(1.24, 2);
  });

  it('is zero on the bound and negative below it', () => {
    expect(rateLoss(2, gamma(2))).toBeCloseTo(0, 12);
    expect(rateLoss(0.5, gamma(0.5))).toBeCloseTo(0, 12);
    expect(rateLoss(2, gamma(2.5))).toBeLessThan(0);
  });

  it('stays finite down to the smallest positive double (t = nmse/(1 + √(1 − nmse)) underflowed to 0)', () => {
    // Γ(R) ≈ 2·2^−2R for large R, so Γ⁻¹(d) ≈ ½·log2(2/d): d = 2^−1074 gives 537.5.
    expect(gammaInverse(Number.MIN_VALUE)).toBeCloseTo(537.5, 10);
    expect(gammaInverse(2 ** -1000)).toBeCloseTo(500.5, 10);
    expect(rateLoss(3, Number.MIN_VALUE)).toBeCloseTo(3 - 537.5, 10);
  });

  it('refuses bad arguments', () => {
    expect(() => rateLoss(-1, 0.1)).toThrow(LatticeMatmulError);
    expect(() => rateLoss(Infinity, 0.1)).toThrow(LatticeMatmulError);
    expect(() => rateLoss(Number.NaN, 0.1)).toThrow(LatticeMatmulError);
    expect(() => rateLoss(3, 0)).toThrow(LatticeMatmulError);
    expect(() => rateLoss(3, 1.5)).toThrow(LatticeMatmulError);
  });
});
