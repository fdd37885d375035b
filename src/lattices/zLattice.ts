import { check, checkPositiveInteger, describeValue } from '../errors.js';
import { invertIntegerMatrix } from './integerMatrix.js';
import { withVoronoiCodes } from './withVoronoiCodes.js';
import { roundHalfEven, type Lattice } from './lattice.js';
import { roundRational } from './rationalRounding.js';

/**
 * The integer lattice Z^d: a scalar quantizer applied to d coordinates that share one scale index.
 * Its Voronoi code with ratio q is the uniform grid {−q/2, …, q/2 − 1} (for even q), the nested-lattice
 * form of an asymmetric INT-log2(q) quantizer.
 */
export function zLattice(dimension: number): Lattice {
  checkPositiveInteger(dimension, 'Z lattice dimension');
  check(dimension <= 64, () => `Z lattice dimension must be at most 64, got ${describeValue(dimension)}`);
  const basis = new Int32Array(dimension * dimension);
  for (let i = 0; i < dimension; i++) basis[i * dimension + i] = 1;
  return withVoronoiCodes({
    name: `Z${dimension}`,
    dimension,
    pointScale: 1,
    basis,
    basisInverse: invertIntegerMatrix(basis, dimension),
    covolume: 1,
    nearestScaled(p, den, out) {
      for (let i = 0; i < dimension; i++) out[i] = roundRational(p[i] as number, den);
      return out;
    },
    nearestDithered(p, den, out) {
      return this.nearestScaled(p, den, out); // rounding ties upward commutes with integer shifts
    },
    nearest(x) {
      return Float64Array.from({ length: dimension }, (_, i) => roundHalfEven(x[i] as number));
    },
    contains(P) {
      for (let i = 0; i < dimension; i++) if (!Number.isInteger(P[i])) return false;
      return true;
    },
  });
}
