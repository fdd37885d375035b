import { describe, expect, it } from 'vitest';
import { fixedCodeBits, fixedWidthCodes } from '../../src/weightonly/packedCodes.js';
import { LatticeMatmulError } from '../../src/errors.js';

/*
 * The fixed-width code layout of the weight-only GEMV's fast path (fixedWidthCodes): with
 * P = ⌊32/bits⌋ and W = 4·rowVec4s words per row, code i of row j is the two's complement field of
 * `bits` bits at bit bits·⌊i/W⌋ of word i mod W of the row (strided), rows padded with zero codes to
 * whole vec4s. The expected words are written out by hand here.
 */
describe('fixedWidthCodes', () => {
  it('4 bits: W = 4 words per row, code i in word i mod 4, field ⌊i/4⌋; two rows padded to a vec4 each', () => {
    // Row 0: −8, 7, −1, 0, 1, 2, 3, 4, −2; row 1: 5, 0, …
    const n = 9;
    const codes = new Int32Array(2 * n);
    codes.set([-8, 7, -1, 0, 1, 2, 3, 4, -2], 0);
    codes.set([5], n);
    const fixed = fixedWidthCodes(codes, n, 2, 4);
    expect(fixed.rowVec4s).toBe(1);
    expect(fixed.words.length).toBe(8);
    // Word 0 holds codes 0, 4, 8 from the low nibble: 8 (−8), 1, E (−2) → 0xE18.
    expect(fixed.words[0]).toBe(0xe18);
    expect(fixed.words[1]).toBe(0x27); // codes 1, 5: 7, 2
    expect(fixed.words[2]).toBe(0x3f); // codes 2, 6: −1, 3
    expect(fixed.words[3]).toBe(0x40); // codes 3, 7: 0, 4
    expect(fixed.words[4]).toBe(5);
    expect(Array.from(fixed.words.subarray(5))).toEqual([0, 0, 0]);
  });

  it('4 bits, two vec4s (W = 8): code 32 is field 4 of word 0', () => {
    const codes = new Int32Array(33);
    codes[32] = 1;
    codes[9] = -1; // word 1, field 1
    const fixed = fixedWidthCodes(codes, 33, 1, 4);
    expect(fixed.rowVec4s).toBe(2);
    expect(Array.from(fixed.words)).toEqual([0x10000, 0xf0, 0, 0, 0, 0, 0, 0]);
  });

  it('8 bits: four codes per word; 33 codes of 4 bits take two vec4s', () => {
    const codes = Int32Array.from([-128, 127, -1, 3, 100]);
    const fixed = fixedWidthCodes(codes, 5, 1, 8);
    expect(fixed.rowVec4s).toBe(1);
    // Word 0: codes 0 and 4 (0x80, then 100 = 0x64 in the second byte).
    expect(Array.from(fixed.words)).toEqual([0x6480, 0x7f, 0xff, 0x03]);
    expect(fixedWidthCodes(new Int32Array(33), 33, 1, 4).rowVec4s).toBe(2);
    expect(fixedWidthCodes(new Int32Array(32), 32, 1, 4).rowVec4s).toBe(1);
  });

  it('5 bits: six codes per word in its low 30 bits; 3 bits: ten per word', () => {
    // Row of 7 codes 15, −16, −1, 0, 1, 2, 3 in W = 4 words: word 0 = 15 + 1·2^5, word 1 = 16 + 2·2^5,
    // word 2 = 31 + 3·2^5, word 3 = 0.
    const five = fixedWidthCodes(Int32Array.from([15, -16, -1, 0, 1, 2, 3]), 7, 1, 5);
    expect(five.rowVec4s).toBe(1);
    expect(Array.from(five.words)).toEqual([15 + 32, 16 + 64, 31 + 96, 0]);
    // Eleven 3-bit codes −4, 3, −1, 0, 0, 0, 0, 0, 0, 1, −2: word 1 holds codes 1, 5, 9 (3, 0, 1), word 2
    // codes 2, 6, 10 (7, 0, 6).
    const three = fixedWidthCodes(Int32Array.from([-4, 3, -1, 0, 0, 0, 0, 0, 0, 1, -2]), 11, 1, 3);
    expect(Array.from(three.words)).toEqual([4, 3 + 1 * 64, 7 + 6 * 64, 0]);
    // 24 codes of 5 bits fill a vec4; the 25th opens another.
    expect(fixedWidthCodes(new Int32Array(24), 24, 1, 5).rowVec4s).toBe(1);
    expect(fixedWidthCodes(new Int32Array(25), 25, 1, 5).rowVec4s).toBe(2);
  });

  it('refuses a code that does not fit, and a width outside 1 … 8', () => {
    expect(() => fixedWidthCodes(Int32Array.from([8]), 1, 1, 4)).toThrow(LatticeMatmulError);
    expect(() => fixedWidthCodes(Int32Array.from([-9]), 1, 1, 4)).toThrow(/does not fit 4 bits/);
    expect(() => fixedWidthCodes(Int32Array.from([128]), 1, 1, 8)).toThrow(/does not fit 8 bits/);
    expect(() => fixedWidthCodes(Int32Array.from([1]), 1, 1, 9 as 8)).toThrow(/1 … 8 bits/);
    expect(() => fixedWidthCodes(Int32Array.from([1]), 1, 1, 0 as 1)).toThrow(/1 … 8 bits/);
    expect(() => fixedWidthCodes(Int32Array.from([2]), 1, 1, 2)).toThrow(/does not fit 2 bits/);
    expect(() => fixedWidthCodes(Int32Array.from([1, 2]), 1, 1, 4)).toThrow(/expected n·outputs = 1 codes/);
  });

  it('fixedCodeBits: the widest code, null beyond 8 bits', () => {
    expect(fixedCodeBits(Uint8Array.from([1, 4, 2]))).toBe(4);
    expect(fixedCodeBits(Uint8Array.from([5, 1]))).toBe(5);
    expect(fixedCodeBits(Uint8Array.from([8]))).toBe(8);
    expect(fixedCodeBits(Uint8Array.from([9, 1]))).toBeNull();
  });
});
