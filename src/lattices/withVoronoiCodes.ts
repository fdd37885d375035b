import { LatticeMatmulError, describeValue } from '../errors.js';
import type { Lattice, LatticeGeometry } from './lattice.js';
import { VoronoiCode } from './voronoiCode.js';

/**
 * Completes a lattice's geometry with `encode(P, q)` and `decode(code, q)`, backed by one
 * `VoronoiCode` per nesting ratio q, built on first use.
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
