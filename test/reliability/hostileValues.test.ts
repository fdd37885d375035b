import { describe, expect, it } from 'vitest';
import { describeValue, LatticeMatmulError } from '../../src/errors.js';
import { crc32, crc32Continue } from '../../src/format/crc32.js';
import { tableLayout } from '../../src/gpu/tableLayout.js';
import { D3, E8, zLattice } from '../../src/lattices/index.js';
import { VoronoiCode } from '../../src/lattices/voronoiCode.js';

/*
 * Values that break the usual ways of printing or looking up a value, and ranges a loop would read
 * past: each is refused with a LatticeMatmulError naming it (test/reliability/apiMisuse.test.ts throws
 * them at every public function; these pin the messages and the answers).
 */

describe('describeValue', () => {
  const revoked = Proxy.revocable({}, {});
  revoked.revoke();
  it.each([
    ['an object without a prototype', Object.create(null) as unknown, 'an object'],
    ['a typed array without a prototype', Object.setPrototypeOf(new Float32Array(4), null) as unknown, 'a Float32Array of 16 bytes'],
    ['a DataView', new DataView(new ArrayBuffer(6)), 'a DataView of 6 bytes'],
    ['a revoked proxy', revoked.proxy, 'an object'],
    ['a symbol', Symbol('s'), 'a symbol'],
    ['a number', 1.5, '1.5'],
  ])('describes %s without throwing', (_, value, text) => {
    expect(describeValue(value)).toBe(text);
  });
});

describe('lookups by name refuse what is not a name', () => {
  it.each(['toString', '__proto__', Object.create(null)])('tableLayout(%s)', (kind) => {
    expect(() => tableLayout(kind as never, 65536)).toThrow(/^tableLayout must be 'full', 'triangle' or 'leaders', got /);
  });
});

describe('crc32 reads only the bytes it is given', () => {
  const bytes = new TextEncoder().encode('123456789');
  it('equals the standard check value over the whole and in pieces', () => {
    expect(crc32(bytes)).toBe(0xcbf43926);
    expect(crc32Continue(crc32(bytes, 0, 4), bytes, 4)).toBe(0xcbf43926);
    expect(crc32(bytes, 2, 2)).toBe(0);
  });
  it.each([
    [0, 100], // past the end: read as zeros before
    [3, 1], // reversed: 0 before
    [-1, 4],
    [0.5, 4],
  ])('refuses the range [%d, %d)', (start, end) => {
    expect(() => crc32(bytes, start, end)).toThrow(/^crc32: the range .* is not within the 9 bytes$/);
  });
  it.each([-1, 2 ** 32, 1.5, Number.NaN])('refuses previous = %d', (previous) => {
    expect(() => crc32Continue(previous, bytes)).toThrow(/^crc32Continue: previous must be a CRC-32/);
  });
  it('refuses bytes that are not a Uint8Array', () => {
    expect(() => crc32([1, 2, 3] as never)).toThrow(/^crc32: bytes must be a Uint8Array, got an array of length 3$/);
    expect(() => crc32(null as never)).toThrow(LatticeMatmulError);
  });
});

describe("lattices' nearest takes d finite numbers", () => {
  it.each([
    ['E8', () => E8.nearest([1, 2]), /^E8\.nearest needs a vector of 8 numbers, got one of 2$/],
    ['D3', () => D3.nearest([1, 2, 3, 4]), /^D3\.nearest needs a vector of 3 numbers, got one of 4$/],
    ['E8 (NaN)', () => E8.nearest(new Float64Array(8).fill(Number.NaN)), /^E8\.nearest: coordinate 0 must be a finite number, got NaN$/],
    ['Z^2 (Infinity)', () => zLattice(2).nearest([1, Infinity]), /^Z2\.nearest: coordinate 1 must be a finite number, got Infinity$/],
    ['D3 (null)', () => D3.nearest(null as never), /^D3\.nearest needs a vector of 3 numbers, got null$/],
  ])('%s is refused', (_, call, message) => {
    expect(call).toThrow(message);
  });
  it('still answers for valid vectors', () => {
    expect(Array.from(D3.nearest([0.9, 0.2, 0]))).toEqual([1, 1, 0]);
    expect(Array.from(E8.nearest([0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]))).toEqual(new Array(8).fill(0.5));
  });
});

describe('lattices: coordinates beyond where float64 decides them are refused, not answered wrong', () => {
  it.each([
    // Before: (2^53, 1, 0), whose sum is odd (the parity fix's +1 rounded away), and contains() agreed.
    ['D3.nearest', () => D3.nearest([2 ** 53, 1, 0]), /^D3\.nearest: coordinate 0 is 9007199254740992, beyond ±2\^50/],
    ['E8.nearest', () => E8.nearest([2 ** 53, 1, 0, 0, 0, 0, 0, 0]), /^E8\.nearest: coordinate 0 is 9007199254740992, beyond ±2\^50/],
    ['Z3.nearest', () => zLattice(3).nearest([0, 0, -(2 ** 51)]), /^Z3\.nearest: coordinate 2 is -2251799813685248, beyond ±2\^50/],
  ])('%s', (_, call, message) => {
    expect(call).toThrow(message);
  });

  it('contains decides the parity exactly at any magnitude', () => {
    expect(D3.contains([2 ** 53, 1, 0])).toBe(false); // its sum is odd: it was true (the float64 sum rounded to 2^53)
    expect(D3.contains([2 ** 53, 1, 1])).toBe(true);
    expect(D3.contains([1e300, 3, -1])).toBe(true);
    expect(E8.contains([2 ** 54, 2, 0, 0, 0, 0, 0, 0])).toBe(false); // ΣP = 2^54 + 2 ≢ 0 (mod 4): it was true
    expect(E8.contains([2 ** 54, 2, 2, 0, 0, 0, 0, 0])).toBe(true);
    expect(E8.contains([2 ** 53 + 2, 1, 1, 1, 1, 1, 1, 1])).toBe(false); // mixed parities
  });

  it('answers exactly up to 2^50: the nearest point is a lattice point at the least distance', () => {
    const d3 = D3.nearest([2 ** 50, 1, 0]); // (2^50 ± 1, 1, 0) and (2^50, 1 ± 1, 0) are all at distance 1
    expect(D3.contains(d3)).toBe(true);
    expect((d3[0] as number) - 2 ** 50 + (d3[1] as number) - 1 + (d3[2] as number)).not.toBe(0);
    expect(((d3[0] as number) - 2 ** 50) ** 2 + ((d3[1] as number) - 1) ** 2 + (d3[2] as number) ** 2).toBe(1);
    const e8 = E8.nearest([2 ** 50, 1, 0, 0, 0, 0, 0, 0]);
    expect(E8.contains(Array.from(e8, (v) => 2 * v))).toBe(true);
    expect(((e8[0] as number) - 2 ** 50) ** 2 + ((e8[1] as number) - 1) ** 2 + e8.slice(2).reduce((sum, v) => sum + v * v, 0)).toBe(1);
  });

  // An E8 point (E8.nearest of a real vector near 2^50, doubled). Before: its code was 1708978314; the
  // exact coset index (BigInt arithmetic) is 1708978298. G⁻¹P's float64 sums stop being exact past
  // 2^53 over E8's largest row sum of |numerators| (≈ 2^42.4).
  const farPoint = [-1746389893790448, -963381922728028, 1712148289597432, -1661465396495844, -1742970281382668, -1559816639678522, -1867900507031744, 2026867950755862];
  it('VoronoiCode.encode refuses a point beyond its exact range, and is exact within it', () => {
    expect(() => E8.encode(farPoint, 16)).toThrow(/^VoronoiCode\.encode: coordinate 0 of the point is -1746389893790448, beyond ±5864062014805 \(2\^42\.4\), where E8's coset index is no longer exact/);
    for (const lattice of [D3, E8]) {
      const code = new VoronoiCode(lattice, 16);
      const { numerators, determinant } = lattice.basisInverse;
      const d = lattice.dimension;
      // Points at the edge of the range, in every coset class: the code must be the exact one.
      for (let t = 0; t < 32; t++) {
        const radius = Math.min(code.maxCoordinate / lattice.pointScale, 2 ** 50) - 2;
        const lambda = lattice.nearest(Array.from({ length: d }, (_, i) => Math.sin(7 * t + i) * radius));
        const P = Array.from(lambda, (v) => v * lattice.pointScale);
        let index = 0n;
        let weight = 1n;
        for (let i = 0; i < d; i++) {
          let sum = 0n;
          for (let j = 0; j < d; j++) sum += BigInt(numerators[i * d + j] as number) * BigInt(P[j] as number);
          index += ((((sum / BigInt(determinant)) % 16n) + 16n) % 16n) * weight;
          weight *= 16n;
        }
        expect(BigInt(code.encode(P)), `${lattice.name} ${P.join(', ')}`).toBe(index);
      }
    }
  });
});
