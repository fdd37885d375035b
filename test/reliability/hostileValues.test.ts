import { describe, expect, it } from 'vitest';
import { describeValue, LatticeMatmulError } from '../../src/errors.js';
import { crc32, crc32Continue } from '../../src/format/crc32.js';
import { tableLayout } from '../../src/gpu/tableLayout.js';
import { D3, E8, zLattice } from '../../src/lattices/index.js';

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
