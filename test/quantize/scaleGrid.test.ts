import { gaussianMatrix } from '../../src/rotation/random.js';
import { quantize } from '../../src/quantize/quantize.js';
import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { BASE_MULTIPLE, MAX_BETA_SET_MULTIPLE, scaleGrid } from '../../src/quantize/scaleGrid.js';
import { SCHEMES, type OverloadRule } from '../../src/quantize/schemes.js';

/** The β values a rule describes, from its definition. */
function betasOf(rule: OverloadRule): number[] {
  return rule.kind === 'ladder' ? Array.from({ length: rule.steps }, (_, t) => rule.beta * rule.ratio ** t) : [...rule.betas];
}

const RULES: [string, OverloadRule][] = [
  ['d3-q6-deterministic ladder', SCHEMES['d3-q6-deterministic'].overload],
  ['e8-q16-deterministic betaSet', SCHEMES['e8-q16-deterministic'].overload],
  ['one-step ladder', { kind: 'ladder', beta: 0.3, ratio: 2, steps: 1 }],
  ['16-step ladder', { kind: 'ladder', beta: 0.05, ratio: 1.25, steps: 16 }],
  ['three betas', { kind: 'betaSet', betas: [0.1, 0.5, 1.6] }],
  ['five betas', { kind: 'betaSet', betas: [1, 2, 3, 4, 5] }],
];

describe('scaleGrid', () => {
  it.each(RULES)('%s: unit = fround(β₀/16), integer multiples strictly increasing and within ½ unit of each β', (_name, rule) => {
    const grid = scaleGrid(rule);
    const betas = betasOf(rule);
    expect(grid.unit).toBe(Math.fround((betas[0] as number) / 16));
    expect(grid.multiples.length).toBe(betas.length);
    expect(grid.multiples[0]).toBe(BASE_MULTIPLE);
    for (let j = 0; j < betas.length; j++) {
      const k = grid.multiples[j] as number;
      expect(Number.isInteger(k)).toBe(true);
      if (j > 0) expect(k).toBeGreaterThan(grid.multiples[j - 1] as number);
      expect(Math.abs(k * grid.unit - (betas[j] as number))).toBeLessThanOrEqual(grid.unit / 2 + 1e-12);
    }
    expect(grid.indexBits).toBe(betas.length === 1 ? 0 : Math.ceil(Math.log2(betas.length)));
    expect(grid.leastError).toBe(rule.kind === 'betaSet');
  });

  it('d3-q6-deterministic: multiples 16, 23, 32, 45 (0.4·√2^t in units of 0.025)', () => {
    expect([...scaleGrid(SCHEMES['d3-q6-deterministic'].overload).multiples]).toEqual([16, 23, 32, 45]);
    expect(scaleGrid(SCHEMES['d3-q6-deterministic'].overload).indexBits).toBe(2);
  });

  it.each<[string, OverloadRule]>([
    ['betaSet [0.2, 0.201]', { kind: 'betaSet', betas: [0.2, 0.201] }],
    ['ladder ratio 1.01', { kind: 'ladder', beta: 0.4, ratio: 1.01, steps: 4 }],
  ])('%s: scales closer than the fixed-point grid are refused', (_name, rule) => {
    expect(() => scaleGrid(rule)).toThrow(LatticeMatmulError);
    expect(() => scaleGrid(rule)).toThrow(/closer than the fixed-point grid/);
  });

  it(`a betaSet wider than ${MAX_BETA_SET_MULTIPLE / BASE_MULTIPLE}× is refused; exactly ${MAX_BETA_SET_MULTIPLE / BASE_MULTIPLE}× is accepted`, () => {
    expect(() => scaleGrid({ kind: 'betaSet', betas: [0.1, 1.7] })).toThrow(/betaSet spans a ratio/);
    expect([...scaleGrid({ kind: 'betaSet', betas: [0.125, 2] }).multiples]).toEqual([16, 256]);
    // A ladder has no such bound (first fit needs no error comparison).
    expect(scaleGrid({ kind: 'ladder', beta: 0.1, ratio: 4, steps: 4 }).multiples[3]).toBe(1024);
  });

  it('the span bound is strict and its message says so: β = 1 (unit 1/16, multiples 16·ratio) at a ratio of exactly 2^19 is refused, 2^19 − 1 accepted', () => {
    // 16 · 2^19 · 2^6 = 2^29, the bound itself; 16 · (2^19 − 1) · 2^6 < 2^29.
    expect(() => scaleGrid({ kind: 'ladder', beta: 1, ratio: 2 ** 19, steps: 2 })).toThrow(/span a ratio of 524288; it must stay below 524288/);
    expect([...scaleGrid({ kind: 'ladder', beta: 1, ratio: 2 ** 19 - 1, steps: 2 }).multiples]).toEqual([16, 16 * (2 ** 19 - 1)]);
    // E8's bound 2^24: a ratio of 2^14 reaches it.
    expect(() => scaleGrid({ kind: 'ladder', beta: 1, ratio: 2 ** 14, steps: 2 }, 2 ** 24)).toThrow(/it must stay below 16384/);
    expect(scaleGrid({ kind: 'ladder', beta: 1, ratio: 2 ** 14 - 1, steps: 2 }, 2 ** 24).multiples[1]).toBe(16 * (2 ** 14 - 1));
  });

  it.each(Array.from({ length: 16 }, (_, i) => i + 1))('%i scales take the fewest bits that count them (2^bits ≥ scales)', (steps) => {
    let bits = 0;
    while (2 ** bits < steps) bits++;
    expect(scaleGrid({ kind: 'ladder', beta: 0.4, ratio: 1.25, steps }).indexBits).toBe(bits);
  });

  it('a ladder whose largest denominator k·2^F reaches 2^29 is refused; E8 (through quantize) stops at 2^24', () => {
    // 16 · 4^11 · 2^6 = 2^32 ≥ 2^29; 16 · 2^15 · 2^6 = 2^25 < 2^29.
    expect(() => scaleGrid({ kind: 'ladder', beta: 0.4, ratio: 4, steps: 12 })).toThrow(/span a ratio/);
    expect(scaleGrid({ kind: 'ladder', beta: 0.4, ratio: 2, steps: 16 }).multiples[15]).toBe(16 * 2 ** 15);
    const wideE8 = { kind: 'lattice', mode: 'deterministic', lattice: 'E8', q: 16, overload: { kind: 'ladder', beta: 0.2, ratio: 2, steps: 16 } } as const;
    const wideD3 = { ...wideE8, lattice: 'D3', q: 6 } as const;
    const a = gaussianMatrix(16, 1, 1);
    expect(() => quantize(a, { scheme: wideE8 })).toThrow(/span a ratio/);
    expect(quantize(a, { scheme: wideD3 }).kind).toBe('lattice');
  });
});
