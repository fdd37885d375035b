import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { matmulATExact, productNmse, toFloat32Matrix, type Matrix } from '../../src/matrix.js';
import { matvecAT } from '../../src/product/matvec.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import { resolveScheme, SCHEME_NAMES, SCHEMES, type DeterministicLatticeScheme, type Scheme } from '../../src/quantize/schemes.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { float16Bits } from '../../src/scalar/floatFormats.js';
import { countAllocations } from '../weightonly/fuzzProperty.js';

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
/** An explicit deterministic lattice scheme (the seed paper's D3 ladder) with some fields replaced. */
const deterministicScheme = (overrides: Record<string, unknown>): Scheme =>
  ({ kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 6, overload: { kind: 'ladder', beta: 0.4, ratio: Math.SQRT2, steps: 4 }, ...overrides }) as unknown as Scheme;
/** An explicit universal lattice scheme (E8, q = 16, β = 0.25) with some fields replaced. */
const universalScheme = (overrides: Record<string, unknown>): Scheme =>
  ({ kind: 'lattice', mode: 'universal', lattice: 'E8', q: 16, beta: 0.25, ...overrides }) as unknown as Scheme;

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
    // Before: the tag was ignored, and f16 bits widened into a Float32Array were quantized as 15360, 49152, …
    ['a Float32Array tagged f16', () => ({ rows: 2, cols: 1, data: Float32Array.of(0x3c00, 0xc000), format: 'f16' }) as unknown as Matrix, /matrix\.format is "f16", but matrix\.data is a Float32Array of f32 values/],
    ['a Float32Array tagged bf16', () => ({ rows: 2, cols: 1, data: Float32Array.of(0x3f80, 1), format: 'bf16' }) as unknown as Matrix, /matrix\.format is "bf16"/],
    ['a Float32Array tagged 16', () => ({ rows: 2, cols: 1, data: Float32Array.of(1, 2), format: 16 }) as unknown as Matrix, /matrix\.format is 16/],
  ];
  for (const scheme of ['d3-q6', 'e8-q16', 'd3-q6-deterministic', 'e8-q16-deterministic', 'int3-absmax', 'nvfp4'] as const) {
    it.each(cases)(`${scheme}: %s`, (_name, make, message) => expectError(() => quantize(make(), { scheme }), message));
  }

  it.each(['d3-q6', 'd3-q6-deterministic'] as const)('%s: a column whose norm exceeds the f32 range', (scheme) => {
    const huge: Matrix = { rows: 768, cols: 1, data: new Float32Array(768).fill(3e38) };
    expectError(() => quantize(huge, { scheme }), /norm of column 0 .* exceeds the f32 range/);
  });
});

describe('every function taking a Matrix refuses a Float32Array tagged as 16-bit data', () => {
  const tagged = { rows: 12, cols: 1, data: Float32Array.from({ length: 12 }, (_, i) => 0x3c00 + i), format: 'f16' } as unknown as Matrix;
  it.each([
    ['matvecAT', () => matvecAT(quantize(good, { scheme: 'd3-q6' }), tagged)],
    ['matmulATExact', () => matmulATExact(tagged, tagged)],
    ['productNmse', () => productNmse(tagged, good, good)],
  ])('%s', (_name, action) => {
    // Before: only quantize refused it; these computed on 15360, 15361, … as values.
    expectError(action, /\.format is "f16", but .*\.data is a Float32Array of f32 values/);
  });
});

describe('a 16-bit matrix (Uint16Array data) refuses keys outside rows, cols, data, format', () => {
  const bf16Bits = Uint16Array.of(0x3f80, 0xc000); // bf16 1, −2
  it.each(['d3-q6', 'd3-q6-deterministic'] as const)('%s: fromat: \'bf16\' is refused, not decoded as f16', (scheme) => {
    // Before: the typo was ignored and the bf16 bits were read as f16 (0x3f80 as 1.875).
    expectError(() => quantize({ rows: 2, cols: 1, data: bf16Bits, fromat: 'bf16' } as never, { scheme }), /^matrix: unknown option 'fromat' \(did you mean 'format'\?\); known: rows, cols, data, format$/);
    expectError(() => quantize({ rows: 2, cols: 1, data: bf16Bits, format: null } as never, { scheme }), /^matrix\.format must be 'f16' or 'bf16', got null$/);
    expect(quantize({ rows: 2, cols: 1, data: bf16Bits, format: 'bf16' }, { scheme }).rows).toBe(2);
  });

  it('an f32 matrix may still carry keys of its own', () => {
    expect(quantize({ ...good, name: 'layer 0' } as Matrix, { scheme: 'd3-q6' }).rows).toBe(12);
  });
});

describe('quantize refuses bad options', () => {
  // Options that are wrong whatever the scheme: checked with the universal default and the deterministic opt-in.
  const generic: [string, Record<string, unknown>, RegExp][] = [
    ['an unknown scheme name', { scheme: 'd3-q7' }, /unknown scheme 'd3-q7'; known: .*d3-q6, e8-q16, d3-q6-deterministic/],
    ["an inherited property name as the scheme ('toString')", { scheme: 'toString' }, /unknown scheme 'toString'/],
    ['a scheme that is neither a name nor an object', { scheme: 3 }, /scheme must be a scheme name .* or a scheme object, got 3/],
    ['a null scheme', { scheme: null }, /scheme must be a scheme name .* got null/],
    ['an array as the scheme', { scheme: [] }, /scheme must be a scheme name .* got an array/],
    ['an unknown scheme kind', { scheme: { kind: 'float' } }, /unknown scheme kind "float"/],
    ['a misspelled option (centre)', { centre: true }, /quantize options: unknown option 'centre' \(did you mean 'center'\?\)/],
    ['a misspelled option (sede)', { sede: 3 }, /unknown option 'sede' \(did you mean 'seed'\?\)/],
    ['an unknown option far from every known one', { zzzzzzzz: 1 }, /unknown option 'zzzzzzzz'; known: scheme, seed, nonce, center/],
    ['center not a boolean', { center: 'yes' }, /center must be true or false, got "yes"/],
    ['rotate not a boolean', { rotate: 1 }, /rotate must be true or false, got 1/],
    ['onProgress not a function', { onProgress: 3 }, /onProgress must be a function/],
    ['signal not an AbortSignal', { signal: {} }, /signal must be an AbortSignal/],
    ['keepFraction 0', { keepFraction: 0 }, /keepFraction must be a number in \(0, 1\], got 0/],
    ['keepFraction 1.5', { keepFraction: 1.5 }, /keepFraction must be a number in \(0, 1\], got 1.5/],
    ['keepFraction −0.5', { keepFraction: -0.5 }, /keepFraction must be a number in \(0, 1\], got -0.5/],
    ['keepFraction NaN', { keepFraction: Number.NaN }, /keepFraction must be a number in \(0, 1\], got NaN/],
    // null is refused like any other wrong value (it meant the default before).
    ['seed null', { seed: null }, /seed must be an integer in \[0, 2\^32 − 1\], got null/],
    ['keepFraction null', { keepFraction: null }, /keepFraction must be a number in \(0, 1\], got null/],
    ['onProgress null', { onProgress: null }, /onProgress must be a function/],
    ['signal null', { signal: null }, /signal must be an AbortSignal/],
    ['seed −1', { seed: -1 }, /seed must be an integer in \[0, 2\^32 − 1\], got -1/],
    ['seed 1.5', { seed: 1.5 }, /seed must be an integer in \[0, 2\^32 − 1\], got 1.5/],
    ['seed 2^32', { seed: 2 ** 32 }, /seed must be an integer in \[0, 2\^32 − 1\], got 4294967296/],
    ['seed NaN', { seed: Number.NaN }, /seed must be an integer in \[0, 2\^32 − 1\], got NaN/],
    ['an unknown gain', { gain: 'max' }, /gain must be 'unbiased', 'mmse' or 'none', got "max"/],
  ];
  for (const scheme of ['d3-q6', 'd3-q6-deterministic'] as const) {
    it.each(generic)(`${scheme}: %s`, (_name, options, message) => {
      expectError(() => quantize(good, { scheme, ...options } as unknown as QuantizeOptions), message);
    });
  }

  it.each([
    ['no options', null],
    ['an array', []],
    ['a string', 'd3-q6'],
  ])('%s instead of an options object', (_name, options) => {
    expectError(() => quantize(good, options as unknown as QuantizeOptions), /quantize options must be an object with at least a scheme/);
  });

  it('options without a scheme', () => {
    expectError(() => quantize(good, {} as QuantizeOptions), /quantize options need a scheme/);
  });

  const schemeCases: [string, Scheme, RegExp][] = [
    // Lattice scheme objects written before the universal quantizer had no mode: refused, not guessed.
    ['a lattice scheme without mode', deterministicScheme({ mode: undefined }), /a lattice scheme needs mode 'universal' or 'deterministic'/],
    ['an unknown mode', universalScheme({ mode: 'dithered' }), /needs mode 'universal' or 'deterministic', got "dithered"/],
    ['deterministic: an unsupported lattice', deterministicScheme({ lattice: 'A2' }), /unknown lattice "A2"/],
    ['deterministic: q = 1', deterministicScheme({ q: 1 }), /lattice scheme q must be an integer ≥ 3, got 1$/],
    ['deterministic: q = 2 (overloads half the shortest vectors)', deterministicScheme({ q: 2 }), /lattice scheme q must be an integer ≥ 3, got 2$/],
    ['deterministic: q = 2.5', deterministicScheme({ q: 2.5 }), /lattice scheme q must be an integer ≥ 3, got 2.5$/],
    ['deterministic: E8 with q = 17 (17^8 > 2^32)', deterministicScheme({ lattice: 'E8', q: 17 }), /17\^8 codes per E8 block, more than a 32-bit code holds/],
    ['deterministic: ladder beta 0', deterministicScheme({ overload: { kind: 'ladder', beta: 0, ratio: 2, steps: 2 } }), /ladder beta must be a number in \[2\^−14, 64\] .*, got 0$/],
    // Outside [2^−14, 64] the CPU and the GPU parted: β = 1e24 gave NaN products on the GPU (0 on the
    // CPU), β = 1e-38 an f32 unit that is subnormal (the GPU encoder refused an internal uniform).
    ['deterministic: ladder beta 1e24', deterministicScheme({ overload: { kind: 'ladder', beta: 1e24, ratio: 2, steps: 2 } }), /ladder beta must be a number in \[2\^−14, 64\] .*, got 1e\+24$/],
    ['deterministic: ladder beta 65', deterministicScheme({ overload: { kind: 'ladder', beta: 65, ratio: 2, steps: 2 } }), /ladder beta must be a number in \[2\^−14, 64\] .*, got 65$/],
    ['deterministic: ladder beta 1e-38', deterministicScheme({ overload: { kind: 'ladder', beta: 1e-38, ratio: 2, steps: 2 } }), /ladder beta must be a number in \[2\^−14, 64\] .*, got 1e-38$/],
    ['deterministic: betaSet starting below 2^−14', deterministicScheme({ overload: { kind: 'betaSet', betas: [2 ** -15, 0.2] } }), /the first betaSet beta must be a number in \[2\^−14, 64\] .*, got 0\.000030517578125$/],
    ['deterministic: betaSet starting beyond 64', deterministicScheme({ overload: { kind: 'betaSet', betas: [100, 200] } }), /the first betaSet beta must be a number in \[2\^−14, 64\] .*, got 100$/],
    ['deterministic: ladder ratio 1', deterministicScheme({ overload: { kind: 'ladder', beta: 0.4, ratio: 1, steps: 2 } }), /ladder ratio must be > 1, got 1/],
    ['deterministic: ladder steps 17', deterministicScheme({ overload: { kind: 'ladder', beta: 0.4, ratio: 2, steps: 17 } }), /ladder steps must be an integer in 1\.\.16, got 17/],
    ['deterministic: a misspelled ladder field', deterministicScheme({ overload: { kind: 'ladder', beta: 0.4, ratio: 2, steps: 2, step: 3 } }), /ladder overload rule: unknown option 'step' \(did you mean 'steps'\?\)/],
    ['deterministic: empty betaSet', deterministicScheme({ overload: { kind: 'betaSet', betas: [] } }), /betaSet needs an array of 1\.\.16 betas/],
    ['deterministic: decreasing betaSet', deterministicScheme({ overload: { kind: 'betaSet', betas: [0.4, 0.2] } }), /betas must be increasing/],
    ['deterministic: unknown overload rule', deterministicScheme({ overload: { kind: 'clip' } }), /unknown overload rule kind "clip"/],
    ['deterministic: no overload rule', deterministicScheme({ overload: undefined }), /needs an overload rule object/],
    ['deterministic: too-close betas', deterministicScheme({ overload: { kind: 'betaSet', betas: [0.2, 0.201] } }), /closer than the fixed-point grid/],
    ['deterministic: a universal field (beta)', deterministicScheme({ beta: 0.3 }), /deterministic lattice scheme: unknown option 'beta'/],
    ['universal: a deterministic field (overload)', universalScheme({ overload: { kind: 'ladder', beta: 0.4, ratio: 2, steps: 2 } }), /universal lattice scheme: unknown option 'overload'/],
    ['universal: lattice Z', universalScheme({ lattice: 'Z' }), /universal lattice schemes use 'D3' or 'E8', got "Z"/],
    ['universal: q = 2', universalScheme({ q: 2 }), /lattice scheme q must be an integer in \[3, 64\], got 2$/],
    ['universal: q = 65', universalScheme({ q: 65 }), /lattice scheme q must be an integer in \[3, 64\], got 65$/],
    ['universal: q = 6.5', universalScheme({ lattice: 'D3', q: 6.5 }), /lattice scheme q must be an integer in \[3, 64\], got 6.5$/],
    ['universal: beta 0', universalScheme({ beta: 0 }), /lattice scheme beta must be a positive number ≤ 64, got 0$/],
    ['universal: beta −0.25', universalScheme({ beta: -0.25 }), /lattice scheme beta must be a positive number ≤ 64, got -0.25$/],
    ['universal: beta NaN', universalScheme({ beta: Number.NaN }), /lattice scheme beta must be a positive number ≤ 64, got NaN$/],
    ['universal: beta 65', universalScheme({ beta: 65 }), /lattice scheme beta must be a positive number ≤ 64, got 65$/],
    ['universal: beta as a string', universalScheme({ beta: '0.25' }), /lattice scheme beta must be a positive number ≤ 64, got "0.25"$/],
    ['int bits 9', { kind: 'int', bits: 9, groupSize: 32, grid: 'symmetric', scaleFormat: 'fp16' } as Scheme, /int scheme bits must be an integer in 2\.\.8, got 9/],
    ['int groupSize 0', { kind: 'int', bits: 4, groupSize: 0, grid: 'symmetric', scaleFormat: 'fp16' } as Scheme, /groupSize must be a positive integer or 'column', got 0/],
    ['an nvfp4 scheme with an extra field', { kind: 'nvfp4', bits: 4 } as unknown as Scheme, /nvfp4 scheme: unknown option 'bits'/],
  ];
  it.each(schemeCases)('%s', (_name, scheme, message) => {
    expectError(() => quantize(good, { scheme }), message);
    // The fixed-point grid of a β set is built by quantize (scaleGrid), not by resolveScheme.
    if (!message.source.includes('fixed-point grid')) expectError(() => resolveScheme(scheme), message);
  });

  const schemeSpecific: [string, Record<string, unknown>, RegExp][] = [
    ['keepFraction on a scalar scheme', { scheme: 'int3-absmax', keepFraction: 0.5 }, /keepFraction \(time-sharing\) applies to lattice schemes only/],
    ['a gain on a scalar scheme', { scheme: 'nvfp4', gain: 'mmse' }, /a gain applies to lattice schemes only/],
    ['a gain on a universal scheme', { scheme: 'd3-q6', gain: 'mmse' }, /gain applies to deterministic lattice schemes only: a per-column gain would break the universal code's guarantee/],
    ["gain 'unbiased' on a universal scheme", { scheme: 'e8-3bit', gain: 'unbiased' }, /gain applies to deterministic lattice schemes only/],
    ['a nonce on a deterministic scheme', { scheme: 'd3-q6-deterministic', nonce: 1 }, /nonce applies to universal lattice schemes only \('d3-q6-deterministic' has no dither\)/],
    ['a nonce on a deterministic scheme object', { scheme: resolveScheme('e8-q16-deterministic'), nonce: 1 }, /nonce applies to universal lattice schemes only \(a deterministic lattice scheme has no dither\)/],
    ['a nonce on a scalar scheme', { scheme: 'int3-absmax', nonce: 1 }, /nonce applies to universal lattice schemes only \('int3-absmax' has no dither\)/],
    ['a nonce on a scalar scheme object', { scheme: resolveScheme('int4-g32'), nonce: 1 }, /nonce applies to universal lattice schemes only \(an int scheme has no dither\)/],
    ['nonce −1', { scheme: 'd3-q6', nonce: -1 }, /nonce must be a non-negative safe integer or a bigint below 2\^64, got -1/],
    ['nonce 1.5', { scheme: 'd3-q6', nonce: 1.5 }, /nonce must be a non-negative safe integer or a bigint below 2\^64, got 1.5/],
    ['nonce 2^53 (not a safe integer)', { scheme: 'd3-q6', nonce: 2 ** 53 }, /nonce must be a non-negative safe integer/],
    ['nonce 2^64 as a bigint', { scheme: 'd3-q6', nonce: 2n ** 64n }, /nonce must be .* a bigint below 2\^64, got 18446744073709551616/],
    ['nonce −1n', { scheme: 'd3-q6', nonce: -1n }, /nonce must be .* a bigint below 2\^64, got -1/],
    ['nonce as a string', { scheme: 'd3-q6', nonce: '1' }, /nonce must be a non-negative safe integer or a bigint below 2\^64/],
  ];
  it.each(schemeSpecific)('%s', (_name, options, message) => {
    expectError(() => quantize(good, options as unknown as QuantizeOptions), message);
  });

  it('deterministic schemes whose first scale is at the ends of [2^−14, 64] are accepted', () => {
    for (const beta of [2 ** -14, 64]) {
      const ladder = quantize(good, { scheme: deterministicScheme({ overload: { kind: 'ladder', beta, ratio: 2, steps: 4 } }) as DeterministicLatticeScheme });
      const betaSet = quantize(good, { scheme: deterministicScheme({ lattice: 'E8', q: 16, overload: { kind: 'betaSet', betas: [beta, 4 * beta] } }) as DeterministicLatticeScheme });
      for (const q of [ladder, betaSet]) expect(q.kind === 'lattice' ? q.unit : null).toBe(Math.fround(beta / 16));
    }
  });

  it('a universal scheme at the β cap (64, as the deterministic first scale) is accepted', () => {
    const q = quantize(good, { scheme: universalScheme({ beta: 64 }), nonce: 1 });
    expect(q.kind === 'lattice' && q.mode === 'universal' ? q.scheme.beta : null).toBe(64);
  });

  it("gain 'none' is accepted on a universal scheme (it changes nothing there)", () => {
    const q = quantize(good, { scheme: 'd3-q6', gain: 'none', nonce: 3 });
    expect(q).toEqual(quantize(good, { scheme: 'd3-q6', nonce: 3 }));
  });

  it('nonce limits: 0, 2^53 − 1 and 2^64 − 1 (bigint) are accepted; a number and the equal bigint give the same result', () => {
    for (const nonce of [0, Number.MAX_SAFE_INTEGER, 2n ** 64n - 1n]) {
      const q = quantize(good, { scheme: 'e8-q16', nonce });
      expect(q.kind === 'lattice' && q.mode === 'universal' ? q.nonce : null).toBe(BigInt(nonce));
    }
    expect(quantize(good, { scheme: 'e8-q16', nonce: 77 })).toEqual(quantize(good, { scheme: 'e8-q16', nonce: 77n }));
  });

  it('resolveScheme accepts every named scheme and valid explicit ones, and returns frozen copies', () => {
    for (const name of SCHEME_NAMES) {
      const resolved = resolveScheme(name);
      expect(resolved).toEqual(SCHEMES[name]);
      expect(resolved).not.toBe(SCHEMES[name]);
      expect(Object.isFrozen(resolved)).toBe(true);
    }
    const explicit = { kind: 'lattice', mode: 'deterministic', lattice: 'Z', q: 16, overload: { kind: 'ladder', beta: 0.2, ratio: 2, steps: 4 } } as const;
    const copy = resolveScheme(explicit);
    expect(copy).toEqual(explicit);
    expect(Object.isFrozen(copy) && Object.isFrozen((copy as typeof explicit).overload)).toBe(true);
    expect(resolveScheme({ kind: 'lattice', mode: 'universal', lattice: 'E8', q: 24, beta: 0.142 })).toMatchObject({ mode: 'universal', q: 24 });
    expect(quantize(good, { scheme: 'd3-q6-deterministic', gain: 'none', keepFraction: 1, seed: 0 }).kind).toBe('lattice');
  });

  it('a later change to the caller’s scheme object changes neither the resolved scheme nor the quantized matrix', () => {
    const mine = { kind: 'lattice', mode: 'universal', lattice: 'E8', q: 16, beta: 0.25 };
    const q = quantize(good, { scheme: mine as Scheme, nonce: 1 });
    const resolved = resolveScheme(mine as Scheme);
    mine.beta = 0.5;
    expect(q.scheme).toMatchObject({ beta: 0.25 });
    expect(resolved).toMatchObject({ beta: 0.25 });
  });

  it('SCHEMES is frozen, presets and their overload rules included', () => {
    expect(Object.isFrozen(SCHEMES)).toBe(true);
    for (const name of SCHEME_NAMES) expect(Object.isFrozen(SCHEMES[name])).toBe(true);
    expect(Object.isFrozen(SCHEMES['e8-q16-deterministic'].overload.betas)).toBe(true);
    expect(() => {
      (SCHEMES['d3-q6'] as { beta: number }).beta = 1;
    }).toThrow(TypeError);
    expect(SCHEMES['d3-q6'].beta).toBe(0.45);
  });

  it('lattice presets are universal unless their name ends in -deterministic', () => {
    for (const name of SCHEME_NAMES) {
      const scheme = SCHEMES[name];
      if (scheme.kind !== 'lattice') continue;
      expect(scheme.mode).toBe(name.endsWith('-deterministic') ? 'deterministic' : 'universal');
    }
    for (const name of ['e8-2bit', 'e8-2.5bit', 'e8-3bit', 'e8-3.5bit', 'e8-4bit', 'e8-4.5bit', 'e8-5bit'] as const) {
      expect(SCHEMES[name]).toMatchObject({ kind: 'lattice', mode: 'universal', lattice: 'E8' });
    }
  });
});

describe('bf16 bits widen to f32 exactly', () => {
  it('1, −2, 1 + 2^−7, the smallest subnormal, −0, the largest finite', () => {
    const bits = Uint16Array.of(0x3f80, 0xc000, 0x3f81, 0x0001, 0x8000, 0x7f7f);
    const values = toFloat32Matrix({ rows: 6, cols: 1, data: bits, format: 'bf16' }).data;
    expect(Array.from(values)).toEqual([1, -2, 1 + 2 ** -7, 2 ** -133, -0, (2 - 2 ** -7) * 2 ** 127]);
    expect(Object.is(values[4], -0)).toBe(true);
  });
});

describe('a 16-bit matrix is quantized column by column', () => {
  // f16 and bf16 bits of a Gaussian 300 × 40 matrix (no entry rounds past either format's range).
  const source = gaussianMatrix(300, 40, 11);
  const f16 = { rows: 300, cols: 40, data: Uint16Array.from(source.data, (v) => float16Bits(v)) };
  const bf16 = { rows: 300, cols: 40, data: Uint16Array.from(source.data, (v) => new Uint32Array(Float32Array.of(v).buffer)[0] as number >>> 16), format: 'bf16' as const };

  it.each(['e8-4bit', 'd3-q6-deterministic', 'int4-g32', 'nvfp4'] as const)('%s: the same matrix as from its f32 widening, bit for bit, without an f32 copy of the whole', (scheme) => {
    for (const half of [f16, bf16]) {
      const options = { scheme, seed: 5, ...(scheme === 'e8-4bit' ? { nonce: 9 } : {}) };
      const expected = quantize(toFloat32Matrix(half), options);
      const { result, bytes } = countAllocations(() => quantize(half, options));
      if (!result.ok) throw result.error;
      expect(result.value).toEqual(expected);
      // Before: the whole matrix widened to f32 first (4·300·40 = 48000 bytes) beside the output.
      const outputBytes = Object.values(expected).reduce((sum: number, value) => sum + (ArrayBuffer.isView(value) ? value.byteLength : 0), 0);
      expect(bytes).toBeLessThan(outputBytes + 4 * 300 * 40 - 4 * 300 * 8);
    }
  });

  it('a non-finite 16-bit entry is refused before any work, named as for f32 input', () => {
    const data = Uint16Array.from(f16.data);
    data[2 * 300 + 17] = 0x7c00; // +Infinity
    expectError(() => quantize({ ...f16, data }, { scheme: 'd3-q6' }), /^matrix has a non-finite entry Infinity at row 17, column 2$/);
    const bfData = Uint16Array.from(bf16.data);
    bfData[39 * 300 + 299] = 0xffc1; // a NaN
    expectError(() => quantize({ ...bf16, data: bfData }, { scheme: 'd3-q6' }), /^matrix has a non-finite entry NaN at row 299, column 39$/);
  });
});
