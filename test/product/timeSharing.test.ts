import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { productConcentration, productNmse, type Matrix } from '../../src/matrix.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { expectedNmse } from '../../src/product/expectedError.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { DeterministicLatticeMatrix, QuantizedMatrix, UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { rotationLength } from '../../src/rotation/hadamard.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { timeSharedProductNmse, timeSharingFraction } from '../../src/theory/timeSharing.js';
import { expectMeanNearOne } from '../meanRatio.js';

/** Draws (data seeds or nonce pairs) averaged per time-sharing NMSE check. */
const TIME_SHARING_DRAWS = 6;

function deterministic(q: QuantizedMatrix): DeterministicLatticeMatrix {
  if (q.kind !== 'lattice' || q.mode !== 'deterministic') throw new Error('expected a deterministic lattice matrix');
  return q;
}

function universal(q: QuantizedMatrix): UniversalLatticeMatrix {
  if (q.kind !== 'lattice' || q.mode !== 'universal') throw new Error('expected a universal lattice matrix');
  return q;
}

/** The expected product NMSE of A and B time-shared at kept fraction f (no padding: n = N). */
function timeSharedNmse(f: number, fullNmse: number, a: Matrix, b: Matrix): number {
  return timeSharedProductNmse({ keptFraction: f, fullNmse, concentration: productConcentration(a, b), rows: a.rows, rotatedLength: a.rows });
}

/** Blocks of d kept at fraction κ of `length` rotated coordinates: κ·length rounded to whole blocks, at least one. */
function keptBlocks(kappa: number, length: number, d: number): number {
  return Math.max(1, Math.min(Math.ceil(length / d), Math.round((kappa * length) / d)));
}

describe('timeSharedProductNmse', () => {
  it('is 1 − f(1 − NMSE_full) + f(1 − f)/n at ρ = 1 without padding, and grows with ρ and shrinks with padding', () => {
    const base = { keptFraction: 0.25, fullNmse: 0.06, rows: 4096, rotatedLength: 4096 };
    expect(timeSharedProductNmse({ ...base, concentration: 1 })).toBeCloseTo(1 - 0.25 * 0.94 + (0.25 * 0.75) / 4096, 14);
    // Kept whole, the error is the full codes' whatever ρ.
    expect(timeSharedProductNmse({ ...base, keptFraction: 1, concentration: 13 })).toBeCloseTo(0.06, 14);
    // A = B of one column (ρ = n): the dropped part's mean, (1 − f)²·n, dominates.
    expect(timeSharedProductNmse({ ...base, concentration: 4096 })).toBeCloseTo(0.25 * 0.06 + 0.75 ** 2 * 4096 + 0.25 * 0.75 * 2, 10);
    // Padding to N = 2n halves the dropped part's variance term.
    expect(timeSharedProductNmse({ ...base, concentration: 0, rotatedLength: 8192 })).toBeCloseTo(0.25 * 0.06 + (0.25 * 0.75) / 2, 14);
    expect(() => timeSharedProductNmse({ ...base, concentration: 1, keptFraction: 0 })).toThrow(LatticeMatmulError);
    expect(() => timeSharedProductNmse({ ...base, concentration: 1, rotatedLength: 100 })).toThrow(LatticeMatmulError);
  });

  it('productConcentration: n for one column against itself, 0 for orthogonal columns, ≈ 1 on average for independent Gaussian columns', () => {
    const a = gaussianMatrix(64, 1, 3);
    expect(productConcentration(a, a)).toBeCloseTo(64, 4);
    const e1 = { rows: 2, cols: 1, data: new Float32Array([1, 0]) };
    const e2 = { rows: 2, cols: 1, data: new Float32Array([0, 3]) };
    expect(productConcentration(e1, e2)).toBe(0);
    // ρ of 256 × 64 independent Gaussian pairs: 1.004 ± 0.025 over 60 seed pairs (measured), so 0.15 is
    // 6 standard deviations (this pair: 0.946).
    expect(Math.abs(productConcentration(gaussianMatrix(256, 64, 5), gaussianMatrix(256, 64, 6)) - 1)).toBeLessThan(0.15);
    expect(() => productConcentration({ rows: 2, cols: 1, data: new Float32Array(2) }, e1)).toThrow(LatticeMatmulError);
  });
});

describe('timeSharingFraction', () => {
  it('is targetRate / schemeRate, capped at 1', () => {
    expect(timeSharingFraction(1.5, 3)).toBe(0.5);
    expect(timeSharingFraction(0.9, 3.6)).toBe(0.25);
    expect(timeSharingFraction(4, 3)).toBe(1);
  });

  it.each([
    [0, 3],
    [-1, 3],
    [Number.NaN, 3],
    [Infinity, 3],
    [1, 0],
    [1, Number.NaN],
  ])('refuses targetRate %s, schemeRate %s', (target, scheme) => {
    expect(() => timeSharingFraction(target, scheme)).toThrow(LatticeMatmulError);
  });
});

describe('time-sharing (keepFraction) with d3-q6-deterministic at n = 768', () => {
  const n = 768;
  const scheme = 'd3-q6-deterministic';
  const length = rotationLength(n);
  const a = gaussianMatrix(n, 64, 1);
  const full = quantize(a, { scheme });
  const side = 64 / n; // fp32 norm + fp32 gain per column

  it.each([0.25, 0.5, 0.75])('κ = %s: bits = κ·(code bits) + side bits; NMSE averages to 1 − κ·(1 − NMSE_full) over data seeds', (kappa) => {
    const qa = deterministic(quantize(a, { scheme, keepFraction: kappa }));
    const kept = keptBlocks(kappa, length, 3) * 3;
    expect(qa.keptLength).toBe(kept);
    expect(qa.blocksPerColumn).toBe(kept / 3);
    expect(qa.bitsStored).toBeCloseTo(((kept / 3) * 10) / n + side, 12);
    if (length === n) expect(qa.bitsStored - side).toBeCloseTo(kappa * (full.bitsStored - side), 12);
    // The entropy of the ladder index is measured on fewer blocks: close, not equal.
    expect(Math.abs(qa.bitsEntropy - side - (kept / length) * (full.bitsEntropy - side))).toBeLessThan(0.02);
    // Dropped coordinates contribute (1 − κ) of ‖a‖²‖b‖²/n, kept ones κ·NMSE_full — in expectation over
    // the data (the deterministic scheme's only randomness), so it is averaged over m data seeds: per
    // seed r = NMSE / (1 − f·(1 − NMSE_full)) with f = kept / length and that seed's NMSE_full, and
    // |mean r − 1| ≤ 5·max(s, 0.02)/√m + 0.01 (s the sample std of r).
    const ratios: number[] = [];
    for (let t = 0; t < TIME_SHARING_DRAWS; t++) {
      const x = gaussianMatrix(n, 64, 100 + 2 * t);
      const y = gaussianMatrix(n, 64, 101 + 2 * t);
      const xFull = productNmse(matmulAT(quantize(x, { scheme }), quantize(y, { scheme })), x, y);
      const xq = deterministic(quantize(x, { scheme, keepFraction: kappa }));
      const f = xq.keptLength / length;
      ratios.push(productNmse(matmulAT(xq, quantize(y, { scheme, keepFraction: kappa })), x, y) / (1 - f * (1 - xFull)));
    }
    expectMeanNearOne(ratios, 0.01, `NMSE / (1 − κ(1 − NMSE_full)), κ = ${kappa}`);
  });

  it('dropped coordinates decode to zero', () => {
    const q = quantize(a, { scheme, keepFraction: 0.5 });
    const decoded = decodeRotated(q);
    for (let j = 0; j < q.cols; j++) {
      let kept = 0;
      for (let k = 0; k < q.length; k++) {
        const v = decoded[j * q.length + k] as number;
        if (k >= q.keptLength) expect(v).toBe(0);
        else kept += v * v;
      }
      expect(kept).toBeGreaterThan(0);
    }
  });

  it('a rate below R* ≈ 0.906: κ = timeSharingFraction(0.5, rate) lands near 0.5 bit per entry', () => {
    const kappa = timeSharingFraction(0.5, full.bitsStored - side);
    const q = quantize(a, { scheme, keepFraction: kappa });
    expect(Math.abs(q.bitsStored - side - 0.5)).toBeLessThan(0.02);
  });

  it('keeps at least one block', () => {
    const q = deterministic(quantize(a, { scheme, keepFraction: 1e-9 }));
    expect([q.keptLength, q.blocksPerColumn]).toEqual([3, 1]);
  });
});

describe('time-sharing (keepFraction) with universal schemes at n = 768', () => {
  const n = 768;
  const length = rotationLength(n);
  const a = gaussianMatrix(n, 64, 1);
  const b = gaussianMatrix(n, 64, 2);
  const side = 32 / n; // fp32 norm per column

  for (const scheme of ['d3-q6', 'e8-q16'] as const) {
    const d = scheme === 'd3-q6' ? 3 : 8;
    const full = quantize(a, { scheme, nonce: 1 });
    const fullNmse = expectedNmse(full, quantize(b, { scheme, nonce: 2 }));

    it.each([0.25, 0.5, 0.75])(`${scheme}, κ = %s: kept blocks, bits ≈ κ·(full bits − side) + side; NMSE averages to f·E NMSE_full + (1 − f)²ρ + f(1 − f)(1 + ρ/n)`, (kappa) => {
      const qa = universal(quantize(a, { scheme, keepFraction: kappa, nonce: 3 }));
      const blocks = keptBlocks(kappa, length, d);
      expect([qa.keptLength, qa.blocksPerColumn]).toEqual([Math.min(length, blocks * d), blocks]);
      expect(qa.codes.length).toBe(blocks * a.cols);
      // The code and escape-bit streams scale with κ; the escape streams vary with the data and the
      // streams' padding to whole words adds up to 2 words per column: within 0.05 bit.
      const fraction = qa.keptLength / length;
      expect(Math.abs(qa.bitsStored - side - fraction * (full.bitsStored - side))).toBeLessThan(0.05);
      expect(qa.bitsEntropy).toBeLessThanOrEqual(qa.bitsStored);
      // Each of the m draws takes a fresh nonce pair and rotation seed (fixed data): the kept part's
      // error is an expectation over the dither, the dropped part's over the rotation's signs. Per draw
      // r = NMSE / prediction, and |mean r − 1| ≤ 5·max(s, 0.02)/√m + 0.003 (s the sample std of r;
      // the slack covers the closed form's approximation of the dropped part's variance).
      const ratios: number[] = [];
      for (let t = 0; t < TIME_SHARING_DRAWS; t++) {
        const xa = quantize(a, { scheme, keepFraction: kappa, seed: 20 + t, nonce: 100 + 2 * t });
        const xb = quantize(b, { scheme, keepFraction: kappa, seed: 20 + t, nonce: 101 + 2 * t });
        ratios.push(productNmse(matmulAT(xa, xb), a, b) / timeSharedNmse(fraction, fullNmse, a, b));
      }
      expectMeanNearOne(ratios, 0.003, `${scheme}: NMSE / its time-sharing prediction, κ = ${kappa}`);
    });

    it(`${scheme}, κ = 0.25 and 0.5, A = B (two nonces): the error is not data-independent; (1 − f)²ρ dominates`, () => {
      // ρ = n‖AᵀA‖²/‖A‖⁴ ≈ 13 here: the prediction is 7–10× 1 − f(1 − NMSE_full), the formula that
      // holds only where ρ = 1 (independent Gaussian columns on average).
      for (const kappa of [0.25, 0.5]) {
        const ratios: number[] = [];
        let fraction = 0;
        for (let t = 0; t < TIME_SHARING_DRAWS; t++) {
          const xa = quantize(a, { scheme, keepFraction: kappa, seed: 40 + t, nonce: 300 + 2 * t });
          const xb = quantize(a, { scheme, keepFraction: kappa, seed: 40 + t, nonce: 301 + 2 * t });
          fraction = xa.keptLength / length;
          ratios.push(productNmse(matmulAT(xa, xb), a, a) / timeSharedNmse(fraction, fullNmse, a, a));
        }
        expect(timeSharedNmse(fraction, fullNmse, a, a) / (1 - fraction * (1 - fullNmse))).toBeGreaterThan(5);
        expectMeanNearOne(ratios, 0.003, `${scheme}: A = B, NMSE / its time-sharing prediction, κ = ${kappa}`);
      }
    });

    it(`${scheme}: dropped coordinates decode to zero`, () => {
      const q = quantize(a, { scheme, keepFraction: 0.5, nonce: 5 });
      const decoded = decodeRotated(q);
      for (let j = 0; j < q.cols; j++) {
        let kept = 0;
        for (let k = 0; k < q.length; k++) {
          const v = decoded[j * q.length + k] as number;
          if (k >= q.keptLength) expect(v).toBe(0);
          else kept += v * v;
        }
        expect(kept).toBeGreaterThan(0);
      }
    });

    it(`${scheme}: keeps at least one block`, () => {
      const q = universal(quantize(a, { scheme, keepFraction: 1e-9 }));
      expect([q.keptLength, q.blocksPerColumn]).toEqual([d, 1]);
    });
  }
});
