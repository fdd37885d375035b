import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { matmulATExact, productNmse, type Matrix } from '../../src/matrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/*
 * The exact references: `matmulATExact` returns f32, so an entry of AᵀB beyond f32 (finite f32 inputs
 * can reach n·(3.4e38)²) is refused instead of returned as ±Infinity; `productNmse` works in float64
 * throughout and stays finite and right there.
 */

function scaled(m: Matrix, factor: number): Matrix {
  return { ...m, data: m.data.map((v) => v * factor) };
}

/** AᵀB in float64, entry (i, j). */
function exactEntry(a: Matrix, b: Matrix, i: number, j: number): number {
  let sum = 0;
  for (let k = 0; k < a.rows; k++) sum += (a.data[i * a.rows + k] as number) * (b.data[j * b.rows + k] as number);
  return sum;
}

describe('exact references beyond the f32 range', () => {
  const a = scaled(gaussianMatrix(64, 2, 1), 1e20);
  const b = scaled(gaussianMatrix(64, 2, 2), 1e20);

  it('matmulATExact refuses an entry beyond f32, naming it, instead of returning ±Infinity', () => {
    expect(() => matmulATExact(a, b)).toThrow(LatticeMatmulError);
    expect(() => matmulATExact(a, b)).toThrow(/matmulATExact: entry \(0, 0\) of AᵀB is .*e\+40, beyond the f32 range/);
    // The same product scaled down by a power of two is returned, and scales back exactly.
    const small = matmulATExact(scaled(a, 2 ** -70), b).data;
    expect(small.every(Number.isFinite)).toBe(true);
    expect(Math.abs((small[1] as number) * 2 ** 70 - exactEntry(a, b, 1, 0))).toBeLessThan(1e-6 * Math.abs(exactEntry(a, b, 1, 0)));
  });

  it('productNmse stays finite and equals the float64 definition when AᵀB is beyond f32', () => {
    const estimate = { rows: 2, cols: 2, data: new Float32Array([1, 2, 3, 4]) };
    let err = 0;
    for (let j = 0; j < 2; j++) for (let i = 0; i < 2; i++) err += ((estimate.data[j * 2 + i] as number) - exactEntry(a, b, i, j)) ** 2;
    const energy = (m: Matrix) => m.data.reduce((s, v) => s + v * v, 0);
    const nmse = productNmse(estimate, a, b);
    expect(Number.isFinite(nmse)).toBe(true);
    expect(nmse).toBeCloseTo((64 * err) / (energy(a) * energy(b)), 12);
  });
});
