import { describe, expect, expectTypeOf, it } from 'vitest';
import type { GpuEngine } from '../../src/gpu/engine.js';
import { gpuQuantizeLattice, type GpuLatticeQuantized, type GpuLatticeQuantizedMatrix, type GpuQuantizedFor } from '../../src/gpu/gpuQuantize.js';
import { GpuE8PointMatrix } from '../../src/gpu/kernels/e8PointGemvI8.js';
import { GpuE8ResidueMatrix } from '../../src/gpu/kernels/e8ResidueGemvI8.js';
import type { GpuUniversalQuantizedMatrix } from '../../src/gpu/universalOperand.js';
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

  it("GpuEngine.quantize's result type follows its scheme too, so a universal E8 matrix goes to GpuE8PointMatrix.repack without narrowing", () => {
    // Types only (npm run typecheck): the function is never called, so no GPU is needed.
    const typeChecks = (engine: GpuEngine, device: GPUDevice, name: SchemeName) => {
      expectTypeOf(engine.quantize(a, { scheme: 'e8-4bit' })).resolves.toEqualTypeOf<GpuUniversalQuantizedMatrix>();
      expectTypeOf(engine.quantize(a, { scheme: 'd3-q6', seed: 3 })).resolves.toEqualTypeOf<GpuUniversalQuantizedMatrix>();
      expectTypeOf(engine.quantize(a, { scheme: 'e8-q16-deterministic' })).resolves.toEqualTypeOf<GpuLatticeQuantizedMatrix>();
      expectTypeOf(engine.quantize(a, { scheme: name })).resolves.toEqualTypeOf<GpuLatticeQuantized>();
      // @ts-expect-error a scalar scheme does not compile (GpuSchemeRefused): the GPU quantizer refuses it at run time
      expectTypeOf(engine.quantize(a, { scheme: 'int4-g32' })).resolves.toEqualTypeOf<never>();
      expectTypeOf(gpuQuantizeLattice(device, a, { scheme: 'e8-5bit' })).resolves.toEqualTypeOf<GpuQuantizedFor<'e8-5bit'>>();
      expectTypeOf<GpuQuantizedFor<'e8-5bit'>>().toEqualTypeOf<GpuUniversalQuantizedMatrix>();
      return async () => {
        GpuE8PointMatrix.repack(device, await engine.quantize(a, { scheme: 'e8-4bit' }), 'W');
        GpuE8ResidueMatrix.repack(device, await engine.quantize(a, { scheme: 'e8-q16-deterministic' }), 'W');
      };
    };
    // What this test checks is the types above, which `npm run typecheck` (tsc over test/) fails on;
    // at run time there is nothing to check beyond the function existing.
    expect(typeof typeChecks).toBe('function');
  });

  it.each(SCHEME_NAMES)('%s: the matrix is of the kind QuantizedMatrixFor names', (schemeName) => {
    const q: QuantizedMatrixFor<typeof schemeName> = quantize(a, { scheme: schemeName });
    const scheme = SCHEMES[schemeName] as Scheme;
    if (scheme.kind === 'lattice') expect([q.kind, q.kind === 'lattice' ? q.mode : null]).toEqual(['lattice', scheme.mode]);
    else expect(q.kind).toBe('scalar');
  });
});
