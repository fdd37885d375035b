import { describe, expect, it } from 'vitest';
import { universalCodec } from '../../src/quantize/latticeSpec.js';
import { quantize } from '../../src/quantize/quantize.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { blockDither, columnKeys, DITHER_KEYS, ditherWordKeys } from '../../src/quantize/universalCode.js';

/*
 * The keys of the universal dither's hash words (src/quantize/universalCode.ts, docs/FORMAT.md §11.6).
 * E8 reads two hash words. With one 32-bit key for both (format version 1) a block's 64 dither bits
 * were a function of 32 and its mean error ≈ 10⁻⁵ lattice units, not 0 (docs/ARCHITECTURE.md); with a
 * key per word, each word is mix32 (a bijection) of its own uniform key, so the 64 bits are uniform and
 * the mirror bit's exact cancellation (test/lattices/ditherTies.test.ts) makes the mean exactly 0.
 */

const e8 = universalCodec('E8', 16, 0.25);
const d3 = universalCodec('D3', 6, 0.45);

function dither(codec: typeof e8, keys: { first: number; second: number }, block: number): number[] {
  const out = new Int32Array(codec.spec.dimension);
  blockDither(codec, keys, block, out);
  return Array.from(out);
}

describe('dither keys', () => {
  // The values are FORMAT.md's; docs/decode_container.py, written from the spec apart from the library,
  // computes the same (test/format/referenceDecoder.test.ts checks it, and 40 other cases).
  it('the check values of docs/FORMAT.md §11.6 (nonce 1234567890123456789, column 5, block 3)', () => {
    const keys = columnKeys(1234567890123456789n, 5);
    expect([keys.dither, keys.secondDither]).toEqual([0x4765839b, 0xe5afb4b7]);
    expect(dither(d3, ditherWordKeys(keys, 2), 3)).toEqual([11, 127, -207]);
    expect(dither(d3, ditherWordKeys(keys, 1), 3)).toEqual([11, 127, -207]);
    expect(dither(e8, ditherWordKeys(keys, 2), 3)).toEqual([59, 101, -75, 122, -19, 11, 95, -5]);
    expect(dither(e8, ditherWordKeys(keys, 1), 3)).toEqual([-31, 101, -75, 122, -19, 82, -89, 123]); // format version 1
  });

  it('E8: word 0 (coordinates 1–4) follows the first key only, word 1 (coordinates 0, 5, 6, 7) the second only', () => {
    const base = dither(e8, { first: 0x12345678, second: 0x9abcdef0 }, 7);
    const otherSecond = dither(e8, { first: 0x12345678, second: 0x9abcdef1 }, 7);
    const otherFirst = dither(e8, { first: 0x12345679, second: 0x9abcdef0 }, 7);
    const word1 = [0, 5, 6, 7];
    for (let v = 0; v < 8; v++) {
      if (word1.includes(v)) expect(otherFirst[v], `coordinate ${v}`).toBe(base[v]);
      else expect(otherSecond[v], `coordinate ${v}`).toBe(base[v]);
    }
    expect(word1.some((v) => otherSecond[v] !== base[v])).toBe(true);
    expect([1, 2, 3, 4].some((v) => otherFirst[v] !== base[v])).toBe(true);
  });

  it('E8: with the first key fixed, 2^16 second keys give 2^16 distinct second words (it is not a function of the first)', () => {
    const seen = new Set<string>();
    for (let k = 0; k < 65536; k++) seen.add(dither(e8, { first: 0x0badf00d, second: (k * 0x9e3779b1) >>> 0 }, 11).filter((_, v) => [0, 5, 6, 7].includes(v)).join(','));
    // Word 1's four fields are its 32 bits (7 + 8 + 8 + 9), and distinct keys hash to distinct words.
    expect(seen.size).toBe(65536);
  });

  it('a quantized E8 matrix records two keys', () => {
    expect(quantize(gaussianMatrix(16, 1, 1), { scheme: 'e8-2bit', seed: 1 }).ditherKeys).toBe(DITHER_KEYS);
    expect(DITHER_KEYS).toBe(2);
  });
});
