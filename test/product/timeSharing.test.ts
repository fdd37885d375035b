import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { productNmse } from '../../src/matrix.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { LatticeQuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { timeSharingFraction } from '../../src/theory/timeSharing.js';

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

describe('time-sharing (keepFraction) with d3-q6 at n = 768', () => {
  const n = 768;
  const a = gaussianMatrix(n, 64, 1);
  const b = gaussianMatrix(n, 64, 2);
  const full = quantize(a, { scheme: 'd3-q6' });
  const fullNmse = productNmse(matmulAT(full, quantize(b, { scheme: 'd3-q6' })), a, b);
  const side = 64 / n; // fp32 norm + fp32 gain per column

  it.each([0.25, 0.5, 0.75])('κ = %s: bits = κ·(code bits) + side bits; NMSE ≈ 1 − κ·(1 − NMSE_full)', (kappa) => {
    const qa = quantize(a, { scheme: 'd3-q6', keepFraction: kappa }) as LatticeQuantizedMatrix;
    const qb = quantize(b, { scheme: 'd3-q6', keepFraction: kappa });
    expect(qa.keptLength).toBe(kappa * n);
    expect(qa.blocksPerColumn).toBe((kappa * n) / 3);
    expect(qa.bitsStored).toBeCloseTo(kappa * (10 / 3) + side, 12);
    expect(qa.bitsStored - side).toBeCloseTo(kappa * (full.bitsStored - side), 12);
    // The entropy of the ladder index is measured on fewer blocks: close, not equal.
    expect(Math.abs(qa.bitsEntropy - side - kappa * (full.bitsEntropy - side))).toBeLessThan(0.02);
    // Dropped coordinates contribute (1 − κ) of ‖a‖²‖b‖²/n, kept ones κ·NMSE_full.
    const nmse = productNmse(matmulAT(qa, qb), a, b);
    expect(Math.abs(nmse - (1 - kappa * (1 - fullNmse)))).toBeLessThan(0.03);
  });

  it('dropped coordinates decode to zero', () => {
    const q = quantize(a, { scheme: 'd3-q6', keepFraction: 0.5 });
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
    const q = quantize(a, { scheme: 'd3-q6', keepFraction: kappa });
    expect(Math.abs(q.bitsStored - side - 0.5)).toBeLessThan(0.02);
  });

  it('keeps at least one block', () => {
    const q = quantize(a, { scheme: 'd3-q6', keepFraction: 1e-9 }) as LatticeQuantizedMatrix;
    expect([q.keptLength, q.blocksPerColumn]).toEqual([3, 1]);
  });
});
