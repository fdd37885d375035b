import type { Lattice } from '../../src/lattices/lattice.js';

/** λ = basis · u in point coordinates, for integer coefficients u. */
export function latticePoint(lattice: Lattice, u: readonly number[]): number[] {
  const d = lattice.dimension;
  return Array.from({ length: d }, (_, i) => {
    let sum = 0;
    for (let j = 0; j < d; j++) sum += (lattice.basis[i * d + j] as number) * (u[j] as number);
    return sum;
  });
}
