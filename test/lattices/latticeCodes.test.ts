import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { D3, E8, zLattice, VoronoiCode } from '../../src/index.js';
import type { Lattice } from '../../src/lattices/lattice.js';

/*
 * The lattice objects' own encode/decode (the public `D3.encode(point, q)` form) agree with a
 * VoronoiCode built independently, and decode gives points of the right coset.
 */

const lattices: readonly [Lattice, number][] = [
  [D3, 6],
  [D3, 5],
  [E8, 4],
  [zLattice(2), 7],
];

describe.each(lattices)('%o with q = %i: encode/decode on the lattice object', (lattice, q) => {
  const reference = new VoronoiCode(lattice, q);
  it('decode(code, q) equals VoronoiCode.decode, and encode inverts it, for every code (or 4096 of them)', () => {
    const count = Math.min(reference.size, 4096);
    for (let k = 0; k < count; k++) {
      const code = Math.floor((k * reference.size) / count);
      const leader = lattice.decode(code, q);
      expect(Array.from(leader)).toEqual(Array.from(reference.decode(code)));
      expect(lattice.contains(leader)).toBe(true);
      expect(lattice.encode(leader, q)).toBe(code);
    }
  });
  it('refuses codes outside [0, q^d) and non-integers', () => {
    expect(() => lattice.decode(reference.size, q)).toThrow(LatticeMatmulError);
    expect(() => lattice.decode(-1, q)).toThrow(LatticeMatmulError);
    expect(() => lattice.decode(1.5, q)).toThrow(LatticeMatmulError);
  });
});

describe('the public form', () => {
  it('D3.decode(D3.encode(p, 6), 6) returns p for a point inside the Voronoi region of 6·D3, and its leader otherwise', () => {
    expect(Array.from(D3.decode(D3.encode([1, 1, 0], 6), 6))).toEqual([1, 1, 0]);
    // (6, 6, 0) ≡ (0, 0, 0) mod 6·D3: same code, leader 0.
    expect(D3.encode([6, 6, 0], 6)).toBe(D3.encode([0, 0, 0], 6));
    expect(Array.from(D3.decode(D3.encode([6, 6, 0], 6), 6))).toEqual([0, 0, 0]);
  });
  it('encode refuses a vector that is not a lattice point, and q < 2', () => {
    expect(() => D3.encode([1, 0, 0], 6)).toThrow(LatticeMatmulError);
    expect(() => E8.encode([1, 0, 0, 0, 0, 0, 0, 0], 4)).toThrow(LatticeMatmulError);
    // nearest() returns λ; encode takes point coordinates (2·λ for E8): the message says so.
    const half = E8.nearest([0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]);
    expect(() => E8.encode(half, 4)).toThrow(/\[0\.5, .*0\.5\] is not a lattice point of E8 \(point coordinates P = 2·λ: pass 2 times what nearest\(\) returns\)/);
    expect(E8.decode(E8.encode(half.map((v) => 2 * v), 4), 4)).toEqual(Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1]));
    expect(() => D3.encode([0, 0, 0], 1)).toThrow(LatticeMatmulError);
  });
});
