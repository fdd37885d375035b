import { invertIntegerMatrix } from './integerMatrix.js';
import { withVoronoiCodes } from './withVoronoiCodes.js';
import { nearestDnReal, type Lattice } from './lattice.js';
import { nearestDnRational } from './rationalRounding.js';

// Conway–Sloane generator of E8 (rows (2,0,…,0), (−1,1,0,…), …, (0,…,−1,1,0), (½,…,½)), doubled so
// that every entry is an integer, and transposed so that basis vectors are columns.
const e8GeneratorRows = [
  [2, 0, 0, 0, 0, 0, 0, 0],
  [-1, 1, 0, 0, 0, 0, 0, 0],
  [0, -1, 1, 0, 0, 0, 0, 0],
  [0, 0, -1, 1, 0, 0, 0, 0],
  [0, 0, 0, -1, 1, 0, 0, 0],
  [0, 0, 0, 0, -1, 1, 0, 0],
  [0, 0, 0, 0, 0, -1, 1, 0],
  [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
];
// A pure IIFE (not a module-level loop), so that a bundle that does not use E8 drops it.
const e8Basis = /*#__PURE__*/ (() => {
  const basis = new Int32Array(64);
  for (let vector = 0; vector < 8; vector++) {
    for (let coord = 0; coord < 8; coord++) basis[coord * 8 + vector] = 2 * (e8GeneratorRows[vector]?.[coord] ?? 0);
  }
  return basis;
})();

const scratchA = /*#__PURE__*/ new Int32Array(8);
const scratchB = /*#__PURE__*/ new Int32Array(8);
const scratchNum = /*#__PURE__*/ new Float64Array(8);

const scratchE1 = /*#__PURE__*/ new Float64Array(8);
const scratchE2 = /*#__PURE__*/ new Float64Array(8);

/**
 * E8's nearest point to p/den, doubled (nearestScaled and nearestDithered; shaders/lattice_decode.wgsl,
 * nearest_e8_ties, is its twin). Candidate 1: Q_D8(p/den). Candidate 2: Q_D8((2p − den)/(2den)) + ½.
 * Errors are compared in units of 1/(2den): candidate 1's doubled against candidate 2's. On an exact
 * tie the D8 candidate wins (the format's rule), or with `errorTies` the one whose error is smaller in
 * the first coordinate where the two errors differ in magnitude (they never have equal signed entries:
 * the candidates differ by half-integers in every coordinate). That depends on the error vectors only,
 * so Q(y + λ) = Q(y) + λ for every λ ∈ E8 (a shift by ½·1 swaps which candidate is the D8 one): the
 * dither's error is then distributed alike whatever the input (src/lattices/lattice.ts).
 */
function nearestE8Scaled(p: ArrayLike<number>, den: number, out: Int32Array, errorTies: boolean): Int32Array {
  nearestDnRational(p, den, scratchA);
  for (let i = 0; i < 8; i++) scratchNum[i] = 2 * (p[i] as number) - den;
  nearestDnRational(scratchNum, 2 * den, scratchB);
  let d1 = 0;
  let d2 = 0;
  for (let i = 0; i < 8; i++) {
    const e1 = 2 * ((p[i] as number) - den * (scratchA[i] as number));
    const e2 = 2 * (p[i] as number) - den * (2 * (scratchB[i] as number) + 1);
    scratchE1[i] = e1;
    scratchE2[i] = e2;
    d1 += e1 * e1;
    d2 += e2 * e2;
  }
  let useA = d1 <= d2;
  if (errorTies && d1 === d2) {
    // Equal magnitudes everywhere: the errors are opposite (y is the midpoint of the candidates,
    // 2y ∈ E8), and no deterministic rule can be symmetric under negation there; keep the candidate
    // whose error is positive in the first coordinate, which still commutes with shifts (the
    // encoder's mirror bit makes the mean 0: UniversalBlockEncoder).
    useA = (scratchE1[0] as number) > 0;
    for (let i = 0; i < 8; i++) {
      const e1 = Math.abs(scratchE1[i] as number);
      const e2 = Math.abs(scratchE2[i] as number);
      if (e1 !== e2) {
        useA = e1 < e2;
        break;
      }
    }
  }
  for (let i = 0; i < 8; i++) out[i] = useA ? 2 * (scratchA[i] as number) : 2 * (scratchB[i] as number) + 1;
  return out;
}

/**
 * E8 = D8 ∪ (D8 + ½·1), covolume 1. Points are held doubled (`P = 2λ`), all even or all odd.
 * Nearest point: the closer of Q_D8(x) and Q_D8(x − ½) + ½ (Conway–Sloane); on an exact tie the D8
 * candidate wins (`nearestScaled`, the format's rule), or the one with the smaller error in the first
 * coordinate where the errors differ (`nearestDithered`, the universal quantizer's).
 *
 * @example
 * E8.nearest([0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]) // Float64Array(8) [0.5, 0.5, …, 0.5]
 */
export const E8: Lattice = /*#__PURE__*/ withVoronoiCodes({
  name: 'E8',
  dimension: 8,
  pointScale: 2,
  basis: e8Basis,
  basisInverse: /*#__PURE__*/ invertIntegerMatrix(e8Basis, 8),
  covolume: 1,
  nearestScaled(p, den, out) {
    return nearestE8Scaled(p, den, out, false);
  },
  nearestDithered(p, den, out) {
    return nearestE8Scaled(p, den, out, true);
  },
  nearest(x) {
    const a = nearestDnReal(x, new Float64Array(8));
    const shifted = Float64Array.from({ length: 8 }, (_, i) => (x[i] as number) - 0.5);
    const b = nearestDnReal(shifted, new Float64Array(8));
    let d1 = 0;
    let d2 = 0;
    for (let i = 0; i < 8; i++) {
      d1 += ((x[i] as number) - (a[i] as number)) ** 2;
      d2 += ((shifted[i] as number) - (b[i] as number)) ** 2;
    }
    if (d1 <= d2) return a;
    for (let i = 0; i < 8; i++) b[i] = (b[i] as number) + 0.5;
    return b;
  },
  contains(P) {
    // Σλ = ΣP/2 must be even: ΣP ≡ 0 (mod 4), summed from each coordinate's own (exact) remainder,
    // since a float64 sum of the coordinates rounds past 2^53.
    let residue = 0;
    const parity = Math.abs((P[0] as number) % 2);
    for (let i = 0; i < 8; i++) {
      const v = P[i] as number;
      if (!Number.isInteger(v) || Math.abs(v % 2) !== parity) return false;
      residue += ((v % 4) + 4) % 4;
    }
    return residue % 4 === 0;
  },
});
