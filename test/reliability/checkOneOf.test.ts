import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkOneOf, LatticeMatmulError } from '../../src/errors.js';

describe('checkOneOf: an option outside its declared values', () => {
  it.each<[readonly (string | number | null)[], string, string, unknown]>([
    [['packed', 'plain'], 'dotPath', "dotPath must be 'packed' or 'plain', got \"fast\"", 'fast'],
    [['packed', 'plain', null], 'int8Inputs', "int8Inputs must be 'packed', 'plain' or null, got undefined", undefined],
    [[32, 16, 8], 'leaderCopies', 'leaderCopies must be 32, 16 or 8, got 3', 3],
    [['f32'], 'format', "format must be 'f32', got a symbol", Symbol('f32')],
    [['a', 'b'], 'x', 'x must be \'a\' or \'b\', got "A"', 'A'],
    [[1, 2], 'n', 'n must be 1 or 2, got "1"', '1'],
  ])('%j (%s) refuses with every choice named', (choices, what, message, value) => {
    expect(() => checkOneOf(value, choices, what)).toThrow(LatticeMatmulError);
    expect(() => checkOneOf(value, choices, what)).toThrow(message);
  });

  it('accepts exactly its choices, whatever else it is given (fast-check)', () => {
    const choices = ['packed', 'plain', null, 0] as const;
    fc.assert(
      fc.property(fc.anything(), (value) => {
        const allowed = (choices as readonly unknown[]).includes(value);
        let refused: unknown = null;
        try {
          checkOneOf(value, choices, 'option');
        } catch (error) {
          refused = error;
        }
        if (allowed) return refused === null;
        return refused instanceof LatticeMatmulError && refused.message.startsWith("option must be 'packed', 'plain', null or 0, got ");
      }),
      { seed: 20261202, numRuns: 2000 },
    );
  });
});
