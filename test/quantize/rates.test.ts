import { describe, expect, it } from 'vitest';
import { universalRates } from '../../src/quantize/rates.js';

/*
 * The universal rate accounting on a small case counted by hand: 2 columns of 30 rows, 10 D3 blocks per
 * column, 8-bit codes; escape symbols 0 ×17, rank 3 ×1, LONG_ESCAPE ×2, one of the long escapes huge.
 */
describe('universalRates', () => {
  const inputs = {
    rows: 30,
    cols: 2,
    blocksPerColumn: 10,
    codeBits: 8,
    codeEntropyBits: Math.log2(216),
    symbolCounts: Object.assign(new Array<number>(17).fill(0), { 0: 17, 3: 1, 16: 2 }),
    longCount: 2,
    hugeCount: 1,
    dimension: 3,
    sideFloatsPerColumn: 1,
  };

  it('bitsStored counts the packed words: codes, escape bits, ranks, long escapes, explicit escapes, side floats', () => {
    // Words: codes 2·⌈80/32⌉ = 6, escape bits 2·⌈10/32⌉ = 2, ranks ⌈3·4/32⌉ = 1, long ⌈2·16/32⌉ = 1,
    // explicit 1·3 = 3: 13 words = 416 bits; side floats 2·32 = 64; over 60 entries: 8 bits.
    expect(universalRates(inputs).bitsStored).toBe(8);
  });

  it('bitsEntropy: codes at log2(q^d), the symbol by its empirical entropy, 16 bits per long escape, 32 per explicit coordinate', () => {
    const p = [17 / 20, 1 / 20, 2 / 20];
    const symbolEntropy = -p.reduce((s, v) => s + v * Math.log2(v), 0);
    const explicitBits = 2 * 16 + 1 * 3 * 32;
    const expected = (20 * (Math.log2(216) + symbolEntropy) + explicitBits + 64) / 60;
    expect(universalRates(inputs).bitsEntropy).toBeCloseTo(expected, 12);
  });
});
