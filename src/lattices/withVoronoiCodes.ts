import { LatticeMatmulError, check, describeValue } from '../errors.js';
import type { Lattice, LatticeGeometry } from './lattice.js';
import { VoronoiCode } from './voronoiCode.js';

/**
 * Completes a lattice's geometry with `encode(P, q)` and `decode(code, q)`, backed by one
 * `VoronoiCode` per nesting ratio q, built on first use, and checks `nearest`'s argument (the
 * quantizer's fixed-point primitives stay unchecked: they run per block, on vectors it made).
 */
export function withVoronoiCodes(geometry: LatticeGeometry): Lattice {
  const codes = new Map<number, VoronoiCode>();
  const codeFor = (q: number): VoronoiCode => {
    let code = codes.get(q);
    if (!code) {
      code = new VoronoiCode(lattice, q);
      codes.set(q, code);
    }
    return code;
  };
  const lattice: Lattice = {
    ...geometry,
    nearest: (x) => {
      checkRealVector(x, geometry.dimension, `${geometry.name}.nearest`);
      return geometry.nearest(x);
    },
    encode: (P, q) => codeFor(q).encode(P),
    decode: (code, q) => {
      const voronoi = codeFor(q);
      if (!(Number.isInteger(code) && code >= 0 && code < voronoi.size)) {
        throw new LatticeMatmulError(`${geometry.name} code must be an integer in [0, ${voronoi.size}) for q = ${q}, got ${describeValue(code)}`);
      }
      return voronoi.decode(code);
    },
  };
  return lattice;
}

/**
 * The largest |coordinate| `nearest` takes (λ units): 2^50. Below it float64 holds every half-integer
 * and every integer's neighbours, so D_n's parity fix (±1 on one coordinate) and E8's shift by ½ are
 * exact. Beyond it they were not: D3.nearest([2^53, 1, 0]) returned (2^53, 1, 0), whose sum is odd
 * (the parity fix's +1 rounded away). The quantizer's fixed-point primitives never come near it.
 */
const MAX_LATTICE_COORDINATE = 2 ** 50;

/** Refuses anything but `dimension` finite numbers within ±2^50 (a shorter vector read undefined as NaN). */
function checkRealVector(x: unknown, dimension: number, what: string): asserts x is ArrayLike<number> {
  const length = typeof x === 'object' && x !== null ? (x as { length?: unknown }).length : undefined;
  check(length === dimension, () => `${what} needs a vector of ${dimension} numbers, got ${typeof length === 'number' ? `one of ${length}` : describeValue(x)}`);
  for (let i = 0; i < dimension; i++) {
    const v = (x as ArrayLike<unknown>)[i];
    check(typeof v === 'number' && Number.isFinite(v), () => `${what}: coordinate ${i} must be a finite number, got ${describeValue(v)}`);
    check(Math.abs(v) <= MAX_LATTICE_COORDINATE, () => `${what}: coordinate ${i} is ${describeValue(v)}, beyond ±2^50, where float64 no longer holds its lattice neighbours exactly`);
  }
}
