import { resolve } from 'node:path';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import type { Matrix } from '../../src/matrix.js';
import type { QuantizeOptions } from '../../src/quantize/options.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { DeterministicLatticeMatrix, QuantizedMatrix, ScalarQuantizedMatrix, UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { resolveScheme, SCHEME_NAMES, SCHEMES, type IntScheme, type Scheme, type SchemeName, type UniversalLatticeScheme } from '../../src/quantize/schemes.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { quantizeWeights, type QuantizeWeightsOptions, type WeightOnlyMethod } from '../../src/weightonly/index.js';
import { spreadSpectrumCovariance } from '../../src/weightonly/syntheticCovariance.js';
import { typeCheckMessages } from './typeCheckFile.js';

/*
 * Misuse of the option types that every run is refused for fails to compile: each `// @ts-expect-error`
 * line below is such a call, so if one compiles again (a type loosened), `tsc --noEmit -p .` (tsconfig
 * includes test/) reports "Unused '@ts-expect-error' directive" — and so does the last test here, which
 * type-checks this file with the compiler API, so `vitest run` alone catches it too. At run time the
 * same calls are still refused (JavaScript callers have no types), and the correct calls, wide types
 * included, compile and run.
 */

const a = gaussianMatrix(32, 2, 1);

describe('quantize: options that the scheme refuses do not compile', () => {
  it('gain other than none: deterministic lattice schemes only', () => {
    // @ts-expect-error a universal scheme has no gain (it would break its guarantee)
    expect(() => quantize(a, { scheme: 'e8-q16', gain: 'mmse' })).toThrow(/gain applies to deterministic lattice schemes only/);
    // @ts-expect-error a universal scheme has no gain
    expect(() => quantize(a, { scheme: 'd3-q6', gain: 'unbiased' })).toThrow(/gain applies to deterministic lattice schemes only/);
    // @ts-expect-error an int scheme has no gain
    expect(() => quantize(a, { scheme: 'int4-g32', gain: 'mmse' })).toThrow(/a gain applies to lattice schemes only/);
    // @ts-expect-error nvfp4 has no gain
    expect(() => quantize(a, { scheme: 'nvfp4', gain: 'unbiased' })).toThrow(/a gain applies to lattice schemes only/);
    // @ts-expect-error a scheme object's kind counts as a name's does
    expect(() => quantize(a, { scheme: { kind: 'int', bits: 4, groupSize: 32, grid: 'symmetric', scaleFormat: 'fp16' }, gain: 'mmse' })).toThrow(/a gain applies to lattice schemes only/);
    const universal: UniversalLatticeScheme = { kind: 'lattice', mode: 'universal', lattice: 'E8', q: 12, beta: 0.3 };
    // @ts-expect-error a variable of a universal scheme type
    expect(() => quantize(a, { scheme: universal, gain: 'mmse' })).toThrow(/gain applies to deterministic lattice schemes only/);

    // Allowed: a deterministic scheme's gain, and 'none' (γ = 1) anywhere.
    expectTypeOf(quantize(a, { scheme: 'd3-q6-deterministic', gain: 'mmse' })).toEqualTypeOf<DeterministicLatticeMatrix>();
    expect(quantize(a, { scheme: 'e8-q16-deterministic', gain: 'none' }).gains).toBeNull();
    expectTypeOf(quantize(a, { scheme: 'e8-q16', gain: 'none' })).toEqualTypeOf<UniversalLatticeMatrix>();
    expectTypeOf(quantize(a, { scheme: 'int4-g32', gain: 'none' })).toEqualTypeOf<ScalarQuantizedMatrix>();
  });

  it('nonce: universal lattice schemes only', () => {
    // @ts-expect-error a deterministic scheme has no dither
    expect(() => quantize(a, { scheme: 'd3-q6-deterministic', nonce: 5 })).toThrow(/nonce applies to universal lattice schemes only/);
    // @ts-expect-error an int scheme has no dither
    expect(() => quantize(a, { scheme: 'int4-g32', nonce: 5n })).toThrow(/nonce applies to universal lattice schemes only/);
    // @ts-expect-error nvfp4 has no dither
    expect(() => quantize(a, { scheme: 'nvfp4', nonce: 1 })).toThrow(/nonce applies to universal lattice schemes only/);

    const q = quantize(a, { scheme: 'e8-q16', nonce: 5 });
    expectTypeOf(q).toEqualTypeOf<UniversalLatticeMatrix>();
    expect(q.nonce).toBe(5n);
  });

  it('keepFraction other than 1: lattice schemes only', () => {
    // @ts-expect-error nvfp4 has no time-sharing
    expect(() => quantize(a, { scheme: 'nvfp4', keepFraction: 0.5 })).toThrow(/keepFraction \(time-sharing\) applies to lattice schemes only/);
    // @ts-expect-error an int scheme has no time-sharing
    expect(() => quantize(a, { scheme: 'int3-absmax', keepFraction: 0.25 })).toThrow(/keepFraction \(time-sharing\) applies to lattice schemes only/);

    expectTypeOf(quantize(a, { scheme: 'e8-2bit', keepFraction: 0.5 })).toEqualTypeOf<UniversalLatticeMatrix>();
    expectTypeOf(quantize(a, { scheme: 'd3-q6-deterministic', keepFraction: 0.5 })).toEqualTypeOf<DeterministicLatticeMatrix>();
    expectTypeOf(quantize(a, { scheme: 'nvfp4', keepFraction: 1 })).toEqualTypeOf<ScalarQuantizedMatrix>();
  });

  it('a scheme known only as SchemeName or Scheme, a scheme object and a prebuilt QuantizeOptions keep every option (checked at run time)', () => {
    const name = 'nvfp4' as SchemeName;
    // Compiles: the name might be a lattice scheme's. At run time nvfp4 refuses it.
    expect(() => quantize(a, { scheme: name, gain: 'mmse', keepFraction: 0.5 })).toThrow(LatticeMatmulError);
    expectTypeOf(quantize(a, { scheme: 'e8-q16' as SchemeName, nonce: 3, gain: 'none', keepFraction: 1 })).toEqualTypeOf<QuantizedMatrix>();
    const wide: Scheme = SCHEMES['d3-q6-deterministic'];
    expect(quantize(a, { scheme: wide, gain: 'mmse', keepFraction: 0.5 }).scheme).toEqual(wide);
    const int: IntScheme = { kind: 'int', bits: 4, groupSize: 32, grid: 'symmetric', scaleFormat: 'fp16' };
    expectTypeOf(quantize(a, { scheme: int, seed: 3, center: true })).toEqualTypeOf<ScalarQuantizedMatrix>();
    const prebuilt: QuantizeOptions = { scheme: 'int4-g32', nonce: 5 };
    expect(() => quantize(a, prebuilt)).toThrow(/nonce applies to universal lattice schemes only/);
    const options: QuantizeOptions = { scheme: 'e8-q16', seed: 2, nonce: 9n };
    expect(quantize(a, options).scheme).toEqual(SCHEMES['e8-q16']);
    // A union of names keeps an option one of them takes.
    const either = 'e8-q16-deterministic' as 'e8-q16-deterministic' | 'int4-g32';
    expect(quantize(a, { scheme: either, gain: 'mmse' }).scheme).toEqual(SCHEMES['e8-q16-deterministic']);
  });
});

describe('quantizeWeights: exactly one of rate and step, and options only with what they need', () => {
  const n = 16;
  const w = gaussianMatrix(n, 64, 7);
  const sigma = spreadSpectrumCovariance(n, 2, 1).sigma;

  it('neither or both of rate and step', () => {
    // @ts-expect-error neither rate nor step
    expect(() => quantizeWeights(w, sigma, { method: 'watersic' })).toThrow(/give exactly one of rate .* and step/);
    // @ts-expect-error both rate and step
    expect(() => quantizeWeights(w, sigma, { method: 'gptq', rate: 4, step: 0.1 })).toThrow(/give exactly one of rate .* and step/);
    // @ts-expect-error neither, without Σ_X
    expect(() => quantizeWeights(w, { method: 'rtn' })).toThrow(/give exactly one of rate .* and step/);
    // @ts-expect-error both, without Σ_X
    expect(() => quantizeWeights(w, null, { method: 'rtn', rate: 3, step: 0.2 })).toThrow(/give exactly one of rate .* and step/);
  });

  it('rateTolerance only with rate; rescaleIterations only with rescale: true', () => {
    // @ts-expect-error a fixed step has no rate search
    expect(() => quantizeWeights(w, sigma, { method: 'gptq', step: 0.1, rateTolerance: 0.01 })).toThrow(/rateTolerance is the tolerance of the rate search/);
    // @ts-expect-error no rescaler fit without rescale
    expect(() => quantizeWeights(w, sigma, { method: 'gptq', rate: 3, rescaleIterations: 3 })).toThrow(/rescaleIterations sets the rounds of the rescaler fit/);
    // @ts-expect-error no rescaler fit with rescale: false
    expect(() => quantizeWeights(w, sigma, { method: 'watersic', rate: 3, rescale: false, rescaleIterations: 3 })).toThrow(/rescaleIterations sets the rounds/);
  });

  it('WaterSIC and GPTQ need Σ_X; without it RTN takes neither rescale nor damping', () => {
    // @ts-expect-error WaterSIC's error feedback is built from Σ_X
    expect(() => quantizeWeights(w, null, { method: 'watersic', rate: 3 })).toThrow(/method 'watersic' needs sigmaX/);
    // @ts-expect-error GPTQ's too
    expect(() => quantizeWeights(w, undefined, { method: 'gptq', step: 0.1 })).toThrow(/method 'gptq' needs sigmaX/);
    // @ts-expect-error the two-argument form is RTN's
    expect(() => quantizeWeights(w, { method: 'gptq', rate: 3 })).toThrow(/method 'gptq' needs sigmaX/);
    // @ts-expect-error the rescalers are fitted to Σ_X
    expect(() => quantizeWeights(w, { method: 'rtn', rate: 3, rescale: true })).toThrow(/rescale: true .* needs sigmaX/);
    // @ts-expect-error damping is Σ_X's
    expect(() => quantizeWeights(w, null, { method: 'rtn', rate: 3, damping: 0.01 })).toThrow(/damping sets H = .* which needs sigmaX/);
  });

  it('correct calls compile, wide types included', () => {
    expect(quantizeWeights(w, sigma, { method: 'watersic', rate: 3, rateTolerance: 0.05 }).rate).toBeGreaterThan(2);
    expect(quantizeWeights(w, sigma, { method: 'gptq', step: 0.3, rescale: true, rescaleIterations: 1, damping: 0.01 }).method).toBe('gptq');
    expect(quantizeWeights(w, { method: 'rtn', step: 0.25, rotate: true, seed: 2 }).method).toBe('rtn');
    expect(quantizeWeights(w, null, { method: 'rtn', rate: 3, rescale: false }).method).toBe('rtn');
    // Σ_X that may be null, a method known only as WeightOnlyMethod, a flag for rescale, a prebuilt options object.
    const maybeSigma = sigma as Matrix | null;
    const method = 'watersic' as WeightOnlyMethod;
    const rescale = Boolean(maybeSigma);
    expect(quantizeWeights(w, maybeSigma, { method, rate: 3, rescale }).method).toBe('watersic');
    const options: QuantizeWeightsOptions = { method: 'gptq', rate: 3 };
    expect(quantizeWeights(w, sigma, options).method).toBe('gptq');
    // A Σ_X typed null or undefined takes RTN's options only: a method known only as WeightOnlyMethod
    // needs a Σ_X typed Matrix | null (as maybeSigma above).
    // @ts-expect-error options whose method may be GPTQ, with no Σ_X
    expect(() => quantizeWeights(w, null, options)).toThrow(/method 'gptq' needs sigmaX/);
  });
});

describe('SCHEME_NAMES is read-only', () => {
  it('its type has no push, and the array is frozen', () => {
    expect(Object.isFrozen(SCHEME_NAMES)).toBe(true);
    // @ts-expect-error a readonly array
    expect(() => SCHEME_NAMES.push('nvfp4')).toThrow(TypeError);
    // @ts-expect-error a readonly array
    expect(() => (SCHEME_NAMES[0] = 'nvfp4')).toThrow(TypeError);
    expectTypeOf(SCHEME_NAMES).toEqualTypeOf<readonly SchemeName[]>();
  });
});

describe('resolveScheme of a preset name is typed as that preset', () => {
  it('so its fields need no narrowing (a scheme object still gives the wide Scheme)', () => {
    expect(resolveScheme('e8-q16').beta).toBe(SCHEMES['e8-q16'].beta);
    expectTypeOf(resolveScheme('d3-q6-deterministic').overload).toEqualTypeOf<(typeof SCHEMES)['d3-q6-deterministic']['overload']>();
    expectTypeOf(resolveScheme(SCHEMES['int4-g32'] as Scheme)).toEqualTypeOf<Scheme>();
  });
});

describe('this file type-checks (so `vitest run` alone fails when a misuse above compiles again)', () => {
  it('the TypeScript compiler reports no error in it, an unused @ts-expect-error included', () => {
    expect(typeCheckMessages(resolve(import.meta.dirname, 'quantizeOptions.test.ts'))).toEqual([]);
  }, 60_000);
});
