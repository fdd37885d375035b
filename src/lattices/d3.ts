import { invertIntegerMatrix } from './integerMatrix.js';
import { withVoronoiCodes } from './withVoronoiCodes.js';
import { nearestDnReal, type Lattice } from './lattice.js';
import { nearestDnRational } from './rationalRounding.js';

// Generator columns (1,−1,0), (0,1,−1), (0,1,1) ([1]'s D3), row-major with basis vectors in columns.
const d3Basis = /*#__PURE__*/ Int32Array.from([
  1, 0, 0,
  -1, 1, 1,
  0, -1, 1,
]);

/**
 * D3 = {x ∈ Z³ : x₁ + x₂ + x₃ even}, the face-centred cubic lattice (covolume 2). Nearest point by
 * the Conway–Sloane D_n rule.
 *
 * @example
 * D3.nearest([0.9, 0.2, 0]) // Float64Array [1, 1, 0]: (1, 0, 0) has an odd sum, so the
 *                            // coordinate that rounded worst (0.2) goes the other way
 */
export const D3: Lattice = /*#__PURE__*/ withVoronoiCodes({
  name: 'D3',
  dimension: 3,
  pointScale: 1,
  basis: d3Basis,
  basisInverse: /*#__PURE__*/ invertIntegerMatrix(d3Basis, 3),
  covolume: 2,
  nearestScaled(p, den, out) {
    nearestDnRational(p, den, out);
    return out;
  },
  nearestDithered(p, den, out) {
    return this.nearestScaled(p, den, out); // D_n's rules commute with lattice shifts already
  },
  nearest(x) {
    return nearestDnReal(x, new Float64Array(3));
  },
  contains(P) {
    // The parity of Σ P_i from each coordinate's own (exact) remainder: a float64 sum of the
    // coordinates rounds past 2^53 (contains([2^53, 1, 0]) was true).
    let parity = 0;
    for (let i = 0; i < 3; i++) {
      if (!Number.isInteger(P[i])) return false;
      parity += Math.abs((P[i] as number) % 2);
    }
    return parity % 2 === 0;
  },
});
