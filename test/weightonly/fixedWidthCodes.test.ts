import { describe, expect, it } from 'vitest';
import { fixedCodeBits, fixedWidthCodes } from '../../src/weightonly/packedCodes.js';
import { LatticeMatmulError } from '../../src/errors.js';

/*
 * The fixed-width code layout of the weight-only GEMV's fast path (fixedWidthCodes): with
 * P = ⌊32/bits⌋, code i of row j is the two's complement field of `bits` bits at bit bits·(i mod P) of
 * word ⌊i/P⌋ of the row, rows padded with zero codes to whole vec4s. The expected words are written
 * out by hand here.
 */
describe('fixedWidthCodes', () => {
  it('4 bits: eight codes per word, low nibble first, two rows padded to a vec4 each', () => {
    // Row 0: −8, 7, −1, 0, 1, 2, 3, 4, −2; row 1: 5, 0, …
    const n = 9;
    const codes = new Int32Array(2 * n);
    codes.set([-8, 7, -1, 0, 1, 2, 3, 4, -2], 0);
    codes.set([5], n);
    const fixed = fixedWidthCodes(codes, n, 2, 4);
    expect(fixed.rowVec4s).toBe(1);
    expect(fixed.words.length).toBe(8);
    // Nibbles of row 0, word 0 from the low end: 8 (−8), 7, F (−1), 0, 1, 2, 3, 4 → 0x4321_0F78.
    expect(fixed.words[0]).toBe(0x43210f78);
    expect(fixed.words[1]).toBe(0xe); // −2
    expect(Array.from(fixed.words.subarray(2, 4))).toEqual([0, 0]);
    expect(fixed.words[4]).toBe(5);
  });

  it('8 bits: four codes per word; 33 codes of 4 bits take two vec4s', () => {
    const codes = Int32Array.from([-128, 127, -1, 3, 100]);
    const fixed = fixedWidthCodes(codes, 5, 1, 8);
    expect(fixed.rowVec4s).toBe(1);
    expect(Array.from(fixed.words)).toEqual([0x03ff7f80, 100, 0, 0]);
    expect(fixedWidthCodes(new Int32Array(33), 33, 1, 4).rowVec4s).toBe(2);
    expect(fixedWidthCodes(new Int32Array(32), 32, 1, 4).rowVec4s).toBe(1);
  });

  it('5 bits: six codes per word in its low 30 bits; 3 bits: ten per word', () => {
    // Row of 7 codes: 15, −16, −1, 0, 1, 2 | 3 → word 0 = 2·2^25 + 1·2^20 + 0·2^15 + 31·2^10 + 16·2^5 + 15.
    const five = fixedWidthCodes(Int32Array.from([15, -16, -1, 0, 1, 2, 3]), 7, 1, 5);
    expect(five.rowVec4s).toBe(1);
    expect(Array.from(five.words)).toEqual([2 * 2 ** 25 + 2 ** 20 + 31 * 2 ** 10 + 16 * 2 ** 5 + 15, 3, 0, 0]);
    // Eleven 3-bit codes −4, 3, −1, 0, … : ten in word 0, the eleventh alone in word 1.
    const three = fixedWidthCodes(Int32Array.from([-4, 3, -1, 0, 0, 0, 0, 0, 0, 1, -2]), 11, 1, 3);
    expect(Array.from(three.words)).toEqual([4 + 3 * 8 + 7 * 64 + 1 * 2 ** 27, 6, 0, 0]);
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
