import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { packedLayout, packField, unpackField } from '../../src/format/packing.js';
import { Rng } from '../../src/rotation/random.js';

/** Random values of `bits` bits, including the extremes 0 and 2^bits − 1. */
function randomValues(count: number, bits: number, seed: number): number[] {
  const rng = new Rng(seed);
  const top = 2 ** bits - 1;
  return Array.from({ length: count }, (_, i) => (i % 7 === 0 ? top : i % 11 === 0 ? 0 : bits === 32 ? rng.nextU32() : rng.nextInt(top + 1)));
}

describe('packedLayout', () => {
  it.each([
    [1, 32],
    [2, 16],
    [3, 10],
    [8, 4],
    [10, 3],
    [16, 2],
    [17, 1],
    [32, 1],
  ])('%i bits: %i values per word', (bits, perWord) => {
    expect(packedLayout(bits, 100).perWord).toBe(perWord);
    expect(packedLayout(bits, 100).wordsPerColumn).toBe(Math.ceil(100 / perWord));
  });

  it.each([0, 33, 2.5, -1, Number.NaN])('refuses %s bits', (bits) => {
    expect(() => packedLayout(bits, 4)).toThrow(LatticeMatmulError);
    expect(() => packedLayout(bits, 4)).toThrow(/packed field bits must be 1\.\.32/);
  });
});

describe('packField / unpackField', () => {
  for (let bits = 1; bits <= 32; bits++) {
    it(`round trip, ${bits} bits, ragged column ends`, () => {
      const perWord = Math.floor(32 / bits);
      for (const blocksPerColumn of [1, perWord - 1, perWord, perWord + 1, 3 * perWord + 2, 97].filter((b) => b >= 1)) {
        for (const cols of [1, 3]) {
          const values = randomValues(blocksPerColumn * cols, bits, bits * 1000 + blocksPerColumn);
          const field = packField(values, bits, blocksPerColumn, cols);
          expect(field.bits).toBe(bits);
          expect(field.perWord).toBe(perWord);
          expect(field.wordsPerColumn).toBe(Math.ceil(blocksPerColumn / perWord));
          expect(field.words.length).toBe(field.wordsPerColumn * cols);
          expect([...unpackField(field, blocksPerColumn, cols)]).toEqual(values);
        }
      }
    });
  }

  it('8 bits: four codes per word, little end first; each column starts a fresh word', () => {
    const field = packField([1, 2, 3, 4, 5, 0xff, 7, 8, 9, 10], 8, 5, 2);
    expect(field.wordsPerColumn).toBe(2);
    expect([...field.words]).toEqual([0x04030201, 0x00000005, 0x090807ff, 0x0000000a]);
  });

  it('2 bits: sixteen indices per word at bit offsets 0, 2, 4, …', () => {
    const values = Array.from({ length: 16 }, (_, i) => i % 4);
    const field = packField(values, 2, 16, 1);
    let expected = 0;
    for (let i = 0; i < 16; i++) expected += (i % 4) * 2 ** (2 * i);
    expect([...field.words]).toEqual([expected]);
  });

  it('32 bits: one value per word, the full u32 range', () => {
    const values = [0, 1, 0xffffffff, 0x80000000, 123456789];
    const field = packField(values, 32, 5, 1);
    expect([...field.words]).toEqual(values);
    expect([...unpackField(field, 5, 1)]).toEqual(values);
  });

  it.each([
    [[4], 2, /value 4 does not fit 2 bits/],
    [[256], 8, /value 256 does not fit 8 bits/],
    [[2 ** 32], 32, /does not fit 32 bits/],
    [[-1], 8, /value -1 does not fit/],
    [[1.5], 8, /value 1.5 does not fit/],
    [[Number.NaN], 8, /value NaN does not fit/],
  ])('refuses %j at %i bits', (values, bits, message) => {
    expect(() => packField(values, bits, 1, 1)).toThrow(LatticeMatmulError);
    expect(() => packField(values, bits, 1, 1)).toThrow(message);
  });

  it('refuses a values array of the wrong length, and words of the wrong length', () => {
    expect(() => packField([1, 2, 3], 8, 2, 2)).toThrow(/3 values, expected 4/);
    const field = packField([1, 2, 3, 4], 8, 2, 2);
    expect(() => unpackField(field, 5, 2)).toThrow(LatticeMatmulError);
    expect(() => unpackField({ ...field, words: new Uint32Array(1) }, 2, 2)).toThrow(/1 words, expected 2/);
  });
});
