import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { productNmse } from '../../src/matrix.js';
import { dequantize } from '../../src/product/dequantize.js';
import { expectedNmse } from '../../src/product/expectedError.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { QuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { SCHEMES, type SchemeName } from '../../src/quantize/schemes.js';
import { rotationLength } from '../../src/rotation/hadamard.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { HUGE_ESCAPE } from '../../src/lattices/escapes.js';
import { spikyMatrix as spiky } from '../format/containerFuzzProperty.js';
import { fiveStandardErrors, meanAndStd } from '../meanRatio.js';
import { relativeSquaredError } from '../relativeError.js';


function expectError(qa: QuantizedMatrix, qb: QuantizedMatrix, message: RegExp): void {
  expect(() => matmulAT(qa, qb)).toThrow(LatticeMatmulError);
  expect(() => matmulAT(qa, qb)).toThrow(message);
}

describe('matmulAT refuses incompatible operands', () => {
  const a = gaussianMatrix(768, 3, 1);
  const b = gaussianMatrix(768, 2, 2);

  it.each(['d3-q6', 'e8-q16', 'd3-q6-deterministic', 'e8-q16-deterministic', 'int3-absmax', 'nvfp4'] as const)('%s: mismatched rows', (scheme) => {
    const other = gaussianMatrix(769, 2, 3);
    expectError(quantize(a, { scheme }), quantize(other, { scheme }), /same number of rows \(got 768 and 769\)/);
  });

  it.each(['d3-q6', 'e8-q16', 'd3-q6-deterministic', 'int4-g32'] as const)('%s: different rotation seeds', (scheme) => {
    expectError(quantize(a, { scheme, seed: 1 }), quantize(b, { scheme, seed: 2 }), /different seeds \(1 and 2\); quantize both with the same seed/);
  });

  it.each(['d3-q6', 'd3-q6-deterministic', 'int3-absmax'] as const)('%s: centred × uncentred', (scheme) => {
    expectError(quantize(a, { scheme, center: true }), quantize(b, { scheme }), /both be centred or both not/);
    expectError(quantize(a, { scheme }), quantize(b, { scheme, center: true }), /both be centred or both not/);
  });

  it.each(['d3-q6', 'd3-q6-deterministic'] as const)('%s: rotated × unrotated', (scheme) => {
    expectError(quantize(a, { scheme }), quantize(b, { scheme, rotate: false }), /both be rotated or both not/);
  });

  it.each(['d3-q6', 'd3-q6-deterministic'] as const)('%s: different time-sharing fractions', (scheme) => {
    const length = rotationLength(768);
    const half = Math.round(length / 2 / 3) * 3;
    expectError(quantize(a, { scheme, keepFraction: 0.5 }), quantize(b, { scheme }), new RegExp(`keep different numbers of rotated coordinates \\(${half} and ${length}\\)`));
  });

  it.each(['d3-q6', 'd3-q6-deterministic'] as const)('%s: different seeds are fine without rotation (the seed is unused)', (scheme) => {
    const c = matmulAT(quantize(a, { scheme, rotate: false, seed: 1 }), quantize(b, { scheme, rotate: false, seed: 2 }));
    expect([c.rows, c.cols]).toEqual([3, 2]);
  });

  it('two different universal matrices quantized with the same nonce are refused (their errors are not independent)', () => {
    expectError(quantize(a, { scheme: 'e8-q16', nonce: 7 }), quantize(b, { scheme: 'e8-q16', nonce: 7 }), /same nonce/);
    // Different schemes with one nonce are still two quantizations with related dither.
    expectError(quantize(a, { scheme: 'e8-q16', nonce: 7 }), quantize(a, { scheme: 'e8-4bit', nonce: 7 }), /same nonce/);
    // The same quantization, as one object or twice with one nonce, is a Gram matrix ÂᵀÂ.
    const q = quantize(a, { scheme: 'e8-q16', nonce: 7 });
    expect(matmulAT(q, quantize(a, { scheme: 'e8-q16', nonce: 7 }))).toEqual(matmulAT(q, q));
    expect(matmulAT(quantize(a, { scheme: 'e8-q16', nonce: 7 }), quantize(b, { scheme: 'e8-q16', nonce: 8 })).cols).toBe(2);
  });

  it('two centred matrices with one nonce that differ only in their means are refused, not taken for a Gram pair', () => {
    // B = A + 3: the same centred columns, so (here, exactly) the same norms, codes and escapes; only the means differ.
    const base = gaussianMatrix(256, 4, 1);
    const qa = quantize(base, { scheme: 'e8-q16', center: true, nonce: 42 });
    const qb = quantize({ ...base, data: base.data.map((v) => v + 3) }, { scheme: 'e8-q16', center: true, nonce: 42 });
    if (qa.kind !== 'lattice' || qa.mode !== 'universal' || qb.kind !== 'lattice' || qb.mode !== 'universal') throw new Error('expected universal matrices');
    expect([qb.norms, qb.codes, qb.escapes]).toEqual([qa.norms, qa.codes, qa.escapes]);
    expectError(qa, qb, /same nonce/);
  });

  it('a same-nonce twin that differs in any field defining the matrix is refused (means, norms, codes, codesHigh, long and huge escapes)', () => {
    // E8 q = 24 (37-bit codes: codesHigh), β = 0.01 on unrotated spikes: long escapes (indices) and huge ones.
    const scheme = { kind: 'lattice', mode: 'universal', lattice: 'E8', q: 24, beta: 0.01 } as const;
    const q = quantize(spiky(64, 3, 5), { scheme, nonce: 3, rotate: false, center: true });
    if (q.kind !== 'lattice' || q.mode !== 'universal' || q.means === null || q.codesHigh === null) throw new Error('expected a centred universal matrix with codesHigh');
    const longIndex = q.longEscapes.findIndex((v) => v !== HUGE_ESCAPE);
    expect(longIndex).toBeGreaterThanOrEqual(0);
    expect(q.hugeEscapes.length).toBeGreaterThan(0);
    // Each twin passes checkQuantizedMatrix (values that only select among valid outcomes).
    const twins: Record<string, QuantizedMatrix> = {
      means: { ...q, means: q.means.map((v, j) => (j === 0 ? v + 1 : v)) },
      norms: { ...q, norms: q.norms.map((v, j) => (j === 0 ? 2 * v : v)) },
      codes: { ...q, codes: q.codes.map((v, i) => (i === 0 ? v ^ 1 : v)) },
      codesHigh: { ...q, codesHigh: q.codesHigh.map((v, i) => (i === 0 ? v ^ 1 : v)) },
      longEscapes: { ...q, longEscapes: q.longEscapes.map((v, i) => (i === longIndex ? v - 1 : v)) },
      hugeEscapes: { ...q, hugeEscapes: q.hugeEscapes.map((v, i) => (i === 0 ? v + 2 : v)) },
    };
    for (const [field, twin] of Object.entries(twins)) {
      expect(() => matmulAT(q, twin), field).toThrow(/same nonce/);
      expect(() => matmulAT(twin, q), field).toThrow(/same nonce/);
    }
    // An equal copy is still the same quantization: a Gram matrix.
    expect(matmulAT(q, { ...q })).toEqual(matmulAT(q, q));
  });

  // Each norm is within [2^−100, 2^100], but ‖a_i‖·‖b_j‖ ≈ 2^(94.8 + 44.8) is beyond f32 (2^128):
  // refused instead of returning Infinity; 2^(94.8 − 44.8) is fine.
  it.each(['d3-q6', 'd3-q6-deterministic', 'e8-q16-deterministic', 'int3-absmax'] as const)('%s: a product whose entries could leave the f32 range is refused', (scheme) => {
    const scaled = (m: typeof a, factor: number) => ({ ...m, data: m.data.map((v) => v * factor) });
    const big = quantize(scaled(a, 2 ** 90), { scheme });
    expectError(big, quantize(scaled(b, 2 ** 40), { scheme }), /beyond the f32 range; scale A or B down by a power of two/);
    expect(matmulAT(big, quantize(scaled(b, 2 ** -40), { scheme })).data.every(Number.isFinite)).toBe(true);
  });

  it('different schemes with a shared seed multiply (decoded path), each pair at its predicted NMSE', () => {
    // Per pair, the predicted NMSE is expectedNmse when both operands are universal (exact over the
    // dither) and otherwise D_a + D_b + D_a·D_b from the operands' measured per-entry errors (the identity
    // dequantize.test.ts checks for every scheme; it holds in expectation over the data). m draws — fresh
    // nonces, and fresh data unless both are universal — give r = NMSE / prediction, and
    // |mean r − 1| ≤ 5·max(s, 0.02)/√m + 0.02 (s the sample std of r; 0.02 for the identity's dropped
    // second-order terms). A pair decoded with the wrong scheme or rotation is off by far more.
    const pairs = [
      ['d3-q6', 'e8-q16'],
      ['e8-q16', 'int4-g32'],
      ['nvfp4', 'd3-q6'],
      ['e8-2bit', 'e8-5bit'],
      ['d3-q6', 'd3-q6-deterministic'],
      ['e8-q16-deterministic', 'e8-q16'],
      ['d3-q6-deterministic', 'e8-q16-deterministic'],
    ] as const;
    const m = 10;
    const results: { name: string; mean: number; std: number; tolerance: number }[] = [];
    const isUniversal = (scheme: SchemeName): boolean => SCHEMES[scheme].kind === 'lattice' && SCHEMES[scheme].mode === 'universal';
    for (const [sa, sb] of pairs) {
      const bothUniversal = isUniversal(sa) && isUniversal(sb);
      const ratios: number[] = [];
      for (let t = 0; t < m; t++) {
        const wide = gaussianMatrix(768, 16, bothUniversal ? 4 : 40 + 2 * t);
        const other = gaussianMatrix(768, 16, bothUniversal ? 5 : 41 + 2 * t);
        const qa = quantize(wide, isUniversal(sa) ? { scheme: sa, nonce: 2 * t + 1 } : { scheme: sa });
        const qb = quantize(other, isUniversal(sb) ? { scheme: sb, nonce: 2 * t + 2 } : { scheme: sb });
        const nmse = productNmse(matmulAT(qa, qb), wide, other);
        const da = relativeSquaredError(dequantize(qa).data, wide.data);
        const db = relativeSquaredError(dequantize(qb).data, other.data);
        const predicted = bothUniversal ? expectedNmse(qa, qb) : da + db + da * db;
        ratios.push(nmse / predicted);
      }
      const { mean, std } = meanAndStd(ratios);
      results.push({ name: `${sa} × ${sb}`, mean, std, tolerance: fiveStandardErrors(std, m) + 0.02 });
    }
    const report = results.map((r) => `${r.name}: ${r.mean.toFixed(4)} (s ${r.std.toFixed(4)}) ± ${r.tolerance.toFixed(4)}`).join('; ');
    for (const r of results) expect(Math.abs(r.mean - 1), `${r.name} over ${m} draws (${report})`).toBeLessThanOrEqual(r.tolerance);
  });

});
