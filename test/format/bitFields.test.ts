import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { packColumnFields, packStream, readBitsAt, streamWords, unpackColumnFields, unpackStream, writeBitsAt } from '../../src/format/bitFields.js';
import { Rng } from '../../src/rotation/random.js';

/*
 * The dense little-endian bit streams of src/format/bitFields.ts against an independent model: a
 * column's stream is the BigInt Σ value_k · 2^(k·bits), and word w of the column is bits 32w … 32w + 31
 * of it (docs/FORMAT.md: "bit t of the stream is bit t mod 32 of word ⌊t / 32⌋").
 */

/** The words of one column's stream, from the BigInt model. */
function modelWords(values: readonly number[], bits: number): number[] {
  let stream = 0n;
  for (const [k, v] of values.entries()) stream |= BigInt(v) << BigInt(k * bits);
  const count = Math.ceil((values.length * bits) / 32);
  return Array.from({ length: count }, (_, w) => Number((stream >> BigInt(32 * w)) & 0xffffffffn));
}

/** Random `bits`-bit values with the extremes 0 and 2^bits − 1 among them. */
function randomValues(count: number, bits: number, seed: number): number[] {
  const rng = new Rng(seed);
  const top = 2 ** bits - 1;
  return Array.from({ length: count }, (_, i) => (i % 5 === 0 ? top : i % 7 === 0 ? 0 : Math.floor(rng.nextU32() / 2 ** (32 - bits))));
}

describe('packColumnFields / unpackColumnFields', () => {
  for (const bits of [1, 3, 4, 5, 7, 8, 13, 16, 17, 31, 32]) {
    it(`${bits} bits: the words of the BigInt stream model, each column on a fresh word; and back`, () => {
      for (const perColumn of [1, 2, 31, 32, 33, 65]) {
        const cols = 3;
        const values = randomValues(perColumn * cols, bits, bits * 100 + perColumn);
        const { words, wordsPerColumn } = packColumnFields(values, bits, perColumn, cols);
        expect(wordsPerColumn).toBe(Math.ceil((perColumn * bits) / 32));
        const expected: number[] = [];
        for (let j = 0; j < cols; j++) expected.push(...modelWords(values.slice(j * perColumn, (j + 1) * perColumn), bits));
        expect([...words]).toEqual(expected);
        expect([...unpackColumnFields(words, bits, perColumn, cols)]).toEqual(values);
      }
    });
  }

  it('a field that straddles two words: 5-bit field 6 crosses the word boundary at bit 32', () => {
    // Fields 0…5 fill bits 0…29; field 6 (= 0b10111) takes bits 30…34: its low 2 bits end word 0, its high 3 start word 1.
    const values = [0, 0, 0, 0, 0, 0, 0b10111];
    const words = packStream(values, 5);
    expect([...words]).toEqual([(0b11 << 30) >>> 0, 0b101]);
    expect(readBitsAt(words, 0, 30, 5)).toBe(0b10111);
  });

  it.each([
    [1, 2],
    [4, 16],
    [8, 256],
    [16, 65536],
    [31, 2 ** 31],
    [32, 2 ** 32],
  ])('refuses the value 2^%i = %i: it does not fit (it would spill into the next field)', (bits, value) => {
    expect(() => packColumnFields([0, value, 0], bits, 3, 1)).toThrow(LatticeMatmulError);
    expect(() => packColumnFields([0, value, 0], bits, 3, 1)).toThrow(`value ${value} does not fit ${bits} bits`);
    expect(() => packStream([value], bits)).toThrow(LatticeMatmulError);
  });

  it.each([-1, 1.5, Number.NaN])('refuses the value %s', (value) => {
    expect(() => packStream([value], 8)).toThrow(/does not fit 8 bits/);
  });

  it('refuses values and words of the wrong length, and widths outside 1..32', () => {
    expect(() => packColumnFields([1, 2, 3], 4, 2, 2)).toThrow(/3 values, expected 4/);
    // 2 columns of 33 one-bit fields take 2 words each: 3 or 5 words are not that stream.
    expect(() => unpackColumnFields(new Uint32Array(3), 1, 33, 2)).toThrow(/3 words, expected 4/);
    expect(() => unpackColumnFields(new Uint32Array(5), 1, 33, 2)).toThrow(/5 words, expected 4/);
    expect(() => unpackStream(new Uint32Array(1), 16, 3)).toThrow(/1 words, expected 2/);
    for (const bits of [0, 33, 2.5]) expect(() => packStream([0], bits)).toThrow(/field bits must be an integer in 1\.\.32/);
  });

  it('streamWords: ⌈count·bits / 32⌉', () => {
    expect(streamWords(0, 37)).toBe(0);
    expect(streamWords(1, 1)).toBe(1);
    expect(streamWords(32, 1)).toBe(1);
    expect(streamWords(33, 1)).toBe(2);
    expect(streamWords(2, 37)).toBe(3); // 74 bits
  });
});

describe('writeBitsAt / readBitsAt', () => {
  it('a 32-bit value at every shift: written into a zeroed stream and read back, the neighbours untouched', () => {
    for (let bit = 0; bit < 64; bit++) {
      const words = new Uint32Array(4);
      writeBitsAt(words, 1, bit, 32, 0xdeadbeef);
      expect(words[0]).toBe(0);
      expect(readBitsAt(words, 1, bit, 32)).toBe(0xdeadbeef);
      // The same bits from the model: 0xdeadbeef · 2^bit, placed after word 0.
      const stream = 0xdeadbeefn << BigInt(bit);
      for (let w = 1; w < 4; w++) expect(words[w]).toBe(Number((stream >> BigInt(32 * (w - 1))) & 0xffffffffn));
    }
  });

  it('reads only its own bits: all-ones neighbours do not leak into a field', () => {
    const words = new Uint32Array([0xffffffff, 0xffffffff, 0xffffffff]);
    for (const bits of [1, 5, 16, 31, 32]) {
      for (const bit of [0, 1, 27, 31, 32, 33]) expect(readBitsAt(words, 0, bit, bits)).toBe(2 ** bits - 1);
    }
    const zeros = new Uint32Array([0, 0xffffffff, 0]);
    // Bits 32…63 set: a 32-bit field at bit 0 is 0, at bit 32 all ones, at bit 16 the upper half.
    expect(readBitsAt(zeros, 0, 0, 32)).toBe(0);
    expect(readBitsAt(zeros, 0, 32, 32)).toBe(0xffffffff);
    expect(readBitsAt(zeros, 0, 16, 32)).toBe(0xffff0000);
    expect(readBitsAt(zeros, 0, 48, 32)).toBe(0x0000ffff);
  });
});
