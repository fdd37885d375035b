import { describe, expect, expectTypeOf, it } from 'vitest';
import type { GpuEngine } from '../../src/gpu/engine.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { DeterministicLatticeMatrix, QuantizedMatrix, QuantizedMatrixFor, ScalarQuantizedMatrix, UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { SCHEME_NAMES, SCHEMES, type Scheme, type SchemeName, type UniversalLatticeScheme } from '../../src/quantize/schemes.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/*
 * `quantize`'s result type follows its scheme (checked by `npm run typecheck`, which covers test/):
 * before, it was always the QuantizedMatrix union, so the README's `engine.upload(quantize(w, { scheme:
 * 'e8-4bit' }))` did not compile without a cast. At run time, every preset's matrix is of the kind its
 * type says.
 */

const a = gaussianMatrix(24, 2, 1);

describe('quantize: the result type of a scheme', () => {
  it('a preset name or scheme object gives its own matrix type; a name known only as SchemeName gives the union', () => {
    expectTypeOf(quantize(a, { scheme: 'e8-4bit' })).toEqualTypeOf<UniversalLatticeMatrix>();
    expectTypeOf(quantize(a, { scheme: 'd3-q6' })).toEqualTypeOf<UniversalLatticeMatrix>();
    expectTypeOf(quantize(a, { scheme: 'd3-q6-deterministic' })).toEqualTypeOf<DeterministicLatticeMatrix>();
    expectTypeOf(quantize(a, { scheme: 'int4-g32' })).toEqualTypeOf<ScalarQuantizedMatrix>();
    expectTypeOf(quantize(a, { scheme: 'nvfp4' })).toEqualTypeOf<ScalarQuantizedMatrix>();
    const explicit: UniversalLatticeScheme = { kind: 'lattice', mode: 'universal', lattice: 'E8', q: 12, beta: 0.3 };
    expectTypeOf(quantize(a, { scheme: explicit })).toEqualTypeOf<UniversalLatticeMatrix>();
    const name = 'e8-q16' as SchemeName;
    expectTypeOf(quantize(a, { scheme: name })).toEqualTypeOf<QuantizedMatrix>();
    const scheme = SCHEMES['d3-q6'] as Scheme;
    expectTypeOf(quantize(a, { scheme })).toEqualTypeOf<QuantizedMatrix>();
    // Every preset, not only those above, gets a type narrower than the union (a new preset whose
    // object the mapping does not recognize would be listed here).
    type Unnarrowed = { [K in SchemeName]: QuantizedMatrix extends QuantizedMatrixFor<K> ? K : never }[SchemeName];
    expectTypeOf<Unnarrowed>().toEqualTypeOf<never>();
    // What the README does: a lattice preset's matrix goes straight to the GPU engine.
    expectTypeOf<GpuEngine['upload']>().toBeCallableWith(quantize(a, { scheme: 'e8-4bit' }));
    expectTypeOf<GpuEngine['upload']>().toBeCallableWith(quantize(a, { scheme: 'e8-q16-deterministic' }));
  });

  it.each(SCHEME_NAMES)('%s: the matrix is of the kind QuantizedMatrixFor names', (schemeName) => {
    const q: QuantizedMatrixFor<typeof schemeName> = quantize(a, { scheme: schemeName });
    const scheme = SCHEMES[schemeName] as Scheme;
    if (scheme.kind === 'lattice') expect([q.kind, q.kind === 'lattice' ? q.mode : null]).toEqual(['lattice', scheme.mode]);
    else expect(q.kind).toBe('scalar');
  });
});
