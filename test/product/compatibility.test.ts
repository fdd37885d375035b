import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { productNmse } from '../../src/matrix.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { QuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

function expectError(qa: QuantizedMatrix, qb: QuantizedMatrix, message: RegExp): void {
  expect(() => matmulAT(qa, qb)).toThrow(LatticeMatmulError);
  expect(() => matmulAT(qa, qb)).toThrow(message);
}

describe('matmulAT refuses incompatible operands', () => {
  const a = gaussianMatrix(768, 3, 1);
  const b = gaussianMatrix(768, 2, 2);

  it.each(['d3-q6', 'e8-q16', 'int3-absmax', 'nvfp4'] as const)('%s: mismatched rows', (scheme) => {
    const other = gaussianMatrix(769, 2, 3);
    expectError(quantize(a, { scheme }), quantize(other, { scheme }), /same number of rows \(got 768 and 769\)/);
  });

  it.each(['d3-q6', 'e8-q16', 'int4-g32'] as const)('%s: different rotation seeds', (scheme) => {
    expectError(quantize(a, { scheme, seed: 1 }), quantize(b, { scheme, seed: 2 }), /different seeds \(1 and 2\); quantize both with the same seed/);
  });

  it.each(['d3-q6', 'int3-absmax'] as const)('%s: centred × uncentred', (scheme) => {
    expectError(quantize(a, { scheme, center: true }), quantize(b, { scheme }), /both be centred or both not/);
    expectError(quantize(a, { scheme }), quantize(b, { scheme, center: true }), /both be centred or both not/);
  });

  it('rotated × unrotated', () => {
    expectError(quantize(a, { scheme: 'd3-q6' }), quantize(b, { scheme: 'd3-q6', rotate: false }), /both be rotated or both not/);
  });

  it('different time-sharing fractions', () => {
    expectError(quantize(a, { scheme: 'd3-q6', keepFraction: 0.5 }), quantize(b, { scheme: 'd3-q6' }), /keep different numbers of rotated coordinates \(384 and 768\)/);
  });

  it('different seeds are fine without rotation (the seed is unused)', () => {
    const c = matmulAT(quantize(a, { scheme: 'd3-q6', rotate: false, seed: 1 }), quantize(b, { scheme: 'd3-q6', rotate: false, seed: 2 }));
    expect([c.rows, c.cols]).toEqual([3, 2]);
  });

  it('different schemes with a shared seed multiply (decoded path)', () => {
    const pairs = [
      ['d3-q6', 'e8-q16'],
      ['e8-q16', 'int4-g32'],
      ['nvfp4', 'd3-q6'],
    ] as const;
    const wide = gaussianMatrix(768, 16, 4);
    const other = gaussianMatrix(768, 16, 5);
    for (const [sa, sb] of pairs) {
      const nmse = productNmse(matmulAT(quantize(wide, { scheme: sa }), quantize(other, { scheme: sb })), wide, other);
      expect(nmse, `${sa} × ${sb}`).toBeLessThan(0.2);
    }
  });
});
