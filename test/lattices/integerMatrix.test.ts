import { describe, expect, it } from 'vitest';
import { D3 } from '../../src/lattices/d3.js';
import { E8 } from '../../src/lattices/e8.js';
import { invertIntegerMatrix } from '../../src/lattices/integerMatrix.js';
import type { Lattice } from '../../src/lattices/lattice.js';
import { zLattice } from '../../src/lattices/zLattice.js';
import { Rng } from '../../src/rotation/random.js';

/** Determinant of a row-major integer matrix by fraction-free (Bareiss) elimination, in BigInt. */
function determinant(matrix: ArrayLike<number>, d: number): number {
  const a = Array.from({ length: d }, (_, i) => Array.from({ length: d }, (_, j) => BigInt(matrix[i * d + j] as number)));
  let sign = 1n;
  let previous = 1n;
  for (let k = 0; k < d - 1; k++) {
    let pivot = k;
    while (pivot < d && a[pivot]![k] === 0n) pivot++;
    if (pivot === d) return 0;
    if (pivot !== k) {
      [a[k], a[pivot]] = [a[pivot]!, a[k]!];
      sign = -sign;
    }
    for (let i = k + 1; i < d; i++) {
      for (let j = k + 1; j < d; j++) a[i]![j] = (a[i]![j]! * a[k]![k]! - a[i]![k]! * a[k]![j]!) / previous;
    }
    previous = a[k]![k]!;
  }
  return Number(sign * a[d - 1]![d - 1]!);
}

/** M · numerators, row-major. */
function multiply(m: ArrayLike<number>, n: ArrayLike<number>, d: number): number[] {
  const out = new Array<number>(d * d).fill(0);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) for (let k = 0; k < d; k++) out[i * d + j]! += (m[i * d + k] as number) * (n[k * d + j] as number);
  return out;
}

function scaledIdentity(d: number, scale: number): number[] {
  return Array.from({ length: d * d }, (_, k) => (Math.floor(k / d) === k % d ? scale : 0));
}

describe('invertIntegerMatrix', () => {
  it('the determinant helper agrees with hand-computed cases', () => {
    expect(determinant([1, 2, 3, 4], 2)).toBe(-2);
    expect(determinant([2, 0, 0, 0, 3, 0, 0, 0, 4], 3)).toBe(24);
    expect(determinant([0, 1, 1, 0], 2)).toBe(-1);
    expect(determinant([1, 2, 2, 4], 2)).toBe(0);
  });

  it.each([
    ['Z8', zLattice(8)],
    ['D3', D3],
    ['E8', E8],
  ] as [string, Lattice][])('%s basis: basis · numerators = determinant · I, determinant = |det basis| = covolume · pointScale^d', (_name, lattice) => {
    const d = lattice.dimension;
    const { numerators, determinant: det } = lattice.basisInverse;
    expect(det).toBe(Math.abs(determinant(lattice.basis, d)));
    expect(det).toBe(lattice.covolume * lattice.pointScale ** d);
    expect(multiply(lattice.basis, numerators, d)).toEqual(scaledIdentity(d, det));
    expect(multiply(numerators, lattice.basis, d)).toEqual(scaledIdentity(d, det));
    // The basis vectors (columns) are lattice points.
    for (let j = 0; j < d; j++) expect(lattice.contains(Array.from({ length: d }, (_, i) => lattice.basis[i * d + j] as number))).toBe(true);
  });

  it('random small integer matrices (d = 1 … 6): exact inverse with a positive determinant', () => {
    const rng = new Rng(3);
    let tested = 0;
    for (let trial = 0; trial < 300; trial++) {
      const d = 1 + (trial % 6);
      const m = Array.from({ length: d * d }, () => rng.nextInt(7) - 3);
      const det = determinant(m, d);
      if (det === 0) {
        expect(() => invertIntegerMatrix(m, d)).toThrow(/singular/);
        continue;
      }
      const inverse = invertIntegerMatrix(m, d);
      expect(inverse.determinant).toBe(Math.abs(det));
      expect(multiply(m, inverse.numerators, d)).toEqual(scaledIdentity(d, Math.abs(det)));
      tested++;
    }
    expect(tested).toBeGreaterThan(200);
  });

  it('a unimodular matrix has an integer inverse (determinant 1)', () => {
    const m = [2, 1, 1, 1]; // det 1
    const inverse = invertIntegerMatrix(m, 2);
    expect(inverse.determinant).toBe(1);
    expect([...inverse.numerators]).toEqual([1, -1, -1, 2]);
  });

  it.each([
    [[0, 0, 0, 0], 2],
    [[1, 2, 2, 4], 2],
    [[1, 2, 3, 4, 5, 6, 7, 8, 9], 3],
    [[1, 0, 1, 0, 1, 0, 1, 0, 1], 3],
  ])('singular %j is refused', (m, d) => {
    expect(() => invertIntegerMatrix(m, d)).toThrow(/singular/);
  });
});
