import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import type { Matrix } from '../../src/matrix.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import { resolveScheme, type Scheme, type SchemeName } from '../../src/quantize/schemes.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/** Expects `action` to throw a LatticeMatmulError whose message matches `message`. */
function expectError(action: () => unknown, message: RegExp): void {
  let thrown: unknown = null;
  try {
    action();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(LatticeMatmulError);
  expect((thrown as Error).message).toMatch(message);
}

const good = gaussianMatrix(12, 2, 1);
const latticeScheme = (overrides: Record<string, unknown>): Scheme =>
  ({ kind: 'lattice', lattice: 'D3', q: 6, overload: { kind: 'ladder', beta: 0.4, ratio: Math.SQRT2, steps: 4 }, ...overrides }) as unknown as Scheme;

describe('quantize refuses bad matrices with a clear LatticeMatmulError', () => {
  const cases: [string, () => Matrix, RegExp][] = [
    ['rows = 0', () => ({ rows: 0, cols: 2, data: new Float32Array(0) }), /matrix\.rows must be a positive integer, got 0/],
    ['cols = 0', () => ({ rows: 4, cols: 0, data: new Float32Array(0) }), /matrix\.cols must be a positive integer, got 0/],
    ['rows = 2.5', () => ({ rows: 2.5, cols: 2, data: new Float32Array(5) }), /matrix\.rows must be a positive integer/],
    ['a data array of the wrong length', () => ({ rows: 4, cols: 2, data: new Float32Array(7) }), /7 entries, expected rows \* cols = 4 \* 2 = 8/],
    ['a Float64Array', () => ({ rows: 2, cols: 1, data: new Float64Array(2) as unknown as Float32Array }), /must be a Float32Array/],
    ['a plain array', () => ({ rows: 2, cols: 1, data: [1, 2] as unknown as Float32Array }), /must be a Float32Array/],
    ['a NaN entry', () => ({ rows: 3, cols: 2, data: Float32Array.from([0, 1, 2, 3, Number.NaN, 5]) }), /non-finite entry NaN at row 1, column 1/],
    ['+Infinity', () => ({ rows: 3, cols: 1, data: Float32Array.from([Infinity, 1, 2]) }), /non-finite entry Infinity at row 0, column 0/],
    ['−Infinity', () => ({ rows: 2, cols: 2, data: Float32Array.from([0, 1, 2, -Infinity]) }), /non-finite entry -Infinity at row 1, column 1/],
    ['null', () => null as unknown as Matrix, /must be a Matrix/],
  ];
  for (const scheme of ['d3-q6', 'e8-q16', 'int3-absmax', 'nvfp4'] as const) {
    it.each(cases)(`${scheme}: %s`, (_name, make, message) => expectError(() => quantize(make(), { scheme }), message));
  }

  it('a column whose norm exceeds the f32 range', () => {
    const huge: Matrix = { rows: 768, cols: 1, data: new Float32Array(768).fill(3e38) };
    expectError(() => quantize(huge, { scheme: 'd3-q6' }), /norm of column 0 .* exceeds the f32 range/);
  });
});

describe('quantize refuses bad options', () => {
  const cases: [string, Partial<QuantizeOptions> | null, RegExp][] = [
    ['no options', null, /needs an options object/],
    ['an unknown scheme name', { scheme: 'd3-q7' as SchemeName }, /unknown scheme 'd3-q7'; known: d3-q6, e8-q16/],
    ['an unsupported lattice', { scheme: latticeScheme({ lattice: 'A2' }) }, /unsupported lattice 'A2'/],
    ['q = 1', { scheme: latticeScheme({ q: 1 }) }, /lattice scheme q must be an integer ≥ \d, got 1$/],
    ['q = 2.5', { scheme: latticeScheme({ q: 2.5 }) }, /lattice scheme q must be an integer ≥ \d, got 2.5$/],
    ['E8 with q = 17 (17^8 > 2^32)', { scheme: latticeScheme({ lattice: 'E8', q: 17 }) }, /17\^8/],
    ['an unknown scheme kind', { scheme: { kind: 'float' } as unknown as Scheme }, /unknown scheme kind 'float'/],
    ['ladder beta 0', { scheme: latticeScheme({ overload: { kind: 'ladder', beta: 0, ratio: 2, steps: 2 } }) }, /ladder beta must be positive/],
    ['ladder ratio 1', { scheme: latticeScheme({ overload: { kind: 'ladder', beta: 0.4, ratio: 1, steps: 2 } }) }, /ladder ratio must be > 1/],
    ['ladder steps 17', { scheme: latticeScheme({ overload: { kind: 'ladder', beta: 0.4, ratio: 2, steps: 17 } }) }, /ladder steps must be 1\.\.16/],
    ['empty betaSet', { scheme: latticeScheme({ overload: { kind: 'betaSet', betas: [] } }) }, /betaSet needs 1\.\.16 betas/],
    ['decreasing betaSet', { scheme: latticeScheme({ overload: { kind: 'betaSet', betas: [0.4, 0.2] } }) }, /betas must be increasing/],
    ['unknown overload rule', { scheme: latticeScheme({ overload: { kind: 'clip' } }) }, /unknown overload rule 'clip'/],
    ['too-close betas', { scheme: latticeScheme({ overload: { kind: 'betaSet', betas: [0.2, 0.201] } }) }, /closer than the fixed-point grid/],
    ['int bits 9', { scheme: { kind: 'int', bits: 9, groupSize: 32, grid: 'symmetric', scaleFormat: 'fp16' } as Scheme }, /int scheme bits must be 2\.\.8/],
    ['int groupSize 0', { scheme: { kind: 'int', bits: 4, groupSize: 0, grid: 'symmetric', scaleFormat: 'fp16' } as Scheme }, /groupSize must be a positive integer/],
    ['keepFraction 0', { keepFraction: 0 }, /keepFraction must be in \(0, 1\], got 0/],
    ['keepFraction 1.5', { keepFraction: 1.5 }, /keepFraction must be in \(0, 1\], got 1.5/],
    ['keepFraction −0.5', { keepFraction: -0.5 }, /keepFraction must be in \(0, 1\]/],
    ['keepFraction NaN', { keepFraction: Number.NaN }, /keepFraction must be in \(0, 1\], got NaN/],
    ['keepFraction on a scalar scheme', { scheme: 'int3-absmax', keepFraction: 0.5 }, /applies to lattice schemes only/],
    ['seed −1', { seed: -1 }, /seed must be an integer in \[0, 2\^32 − 1\], got -1/],
    ['seed 1.5', { seed: 1.5 }, /seed must be an integer/],
    ['seed 2^32', { seed: 2 ** 32 }, /seed must be an integer/],
    ['seed NaN', { seed: Number.NaN }, /seed must be an integer/],
    ['an unknown gain', { gain: 'max' as 'mmse' }, /gain must be 'unbiased', 'mmse' or 'none', got 'max'/],
    ['a gain on a scalar scheme', { scheme: 'nvfp4', gain: 'mmse' }, /a gain applies to lattice schemes only/],
  ];
  it.each(cases)('%s', (_name, options, message) => {
    const full = options === null ? (null as unknown as QuantizeOptions) : ({ scheme: 'd3-q6', ...options } as QuantizeOptions);
    expectError(() => quantize(good, full), message);
  });

  it('resolveScheme accepts every named scheme and valid explicit ones', () => {
    for (const name of ['d3-q6', 'e8-q16', 'int3-absmax', 'int4-g32', 'int4-g128', 'nvfp4'] as const) expect(resolveScheme(name)).toBeTruthy();
    expect(resolveScheme(latticeScheme({ lattice: 'Z', q: 16 }))).toMatchObject({ lattice: 'Z', q: 16 });
    expect(quantize(good, { scheme: 'd3-q6', gain: 'none', keepFraction: 1, seed: 0 }).kind).toBe('lattice');
  });
});
