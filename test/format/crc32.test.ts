import { crc32 as zlibCrc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { crc32, crc32Continue } from '../../src/format/crc32.js';

/* CRC-32 of byte ranges and of data in pieces, against node:zlib (an independent implementation). */

const bytes = Uint8Array.from({ length: 300 }, (_, i) => (i * 37 + 11) & 0xff);

describe('crc32 over a range', () => {
  it('the standard check value', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
  });

  it.each([
    [0, 300],
    [0, 0],
    [299, 300],
    [17, 253],
    [300, 300],
  ])('bytes [%i, %i) = zlib of that slice', (start, end) => {
    expect(crc32(bytes, start, end)).toBe(zlibCrc32(bytes.subarray(start, end)));
  });

  it('in pieces: crc32Continue over consecutive slices = the CRC of the whole', () => {
    let crc = 0;
    for (const [start, end] of [
      [0, 1],
      [1, 100],
      [100, 100],
      [100, 300],
    ] as const) {
      crc = crc32Continue(crc, bytes, start, end);
    }
    expect(crc).toBe(zlibCrc32(bytes));
  });

  it.each([
    [0, 301],
    [299, 301],
    [-1, 10],
    [10, 9],
    [0.5, 10],
  ])('refuses the range [%s, %s) of 300 bytes: no CRC of bytes that are not there', (start, end) => {
    expect(() => crc32(bytes, start, end)).toThrow(LatticeMatmulError);
    expect(() => crc32(bytes, start, end)).toThrow(/is not within the 300 bytes/);
    expect(() => crc32Continue(0, bytes, start, end)).toThrow(/is not within the 300 bytes/);
  });

  it('refuses a previous value that is no CRC-32', () => {
    for (const previous of [-1, 2 ** 32, 1.5]) expect(() => crc32Continue(previous, bytes)).toThrow(/previous must be a CRC-32/);
  });
});
