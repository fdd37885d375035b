import { describe, expect, it } from 'vitest';
import {
  covarianceFromActivations,
  dequantize,
  gaussianMatrix,
  matmulAT,
  quantize,
  quantizeWeights,
  type Matrix,
  type QuantizeOptions,
  type QuantizeWeightsOptions,
} from '../../src/index.js';

/*
 * The defaults the doc comments of the CPU options state ("Default 1.", "'unbiased' (default)") are
 * the ones the code applies: leaving an option out gives, bit for bit, what passing the stated value
 * gives. Each case also passes another value and sees another result, so the comparison can tell a
 * default that drifted from the documented one.
 */

/** The bytes of a matrix's entries: equal bytes, equal results (NaN and −0 included). */
function bytesOf(m: Matrix): Uint8Array {
  return new Uint8Array(m.data.buffer, m.data.byteOffset, m.data.byteLength);
}

function sameBytes(x: Uint8Array, y: Uint8Array): boolean {
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

describe('documented defaults of QuantizeOptions', () => {
  // 300 rows: the default rotated length ("n itself past 256 rows") differs from the padded one (320).
  const a = gaussianMatrix(300, 6, 1);
  const decoded = (options: QuantizeOptions): Uint8Array => bytesOf(dequantize(quantize(a, options)));
  // A fixed nonce: the universal schemes' random one would make every run differ.
  const universal = { scheme: 'e8-q16', nonce: 5 } as const;
  const cases: [string, QuantizeOptions, QuantizeOptions, QuantizeOptions][] = [
    ['seed: 1', universal, { ...universal, seed: 1 }, { ...universal, seed: 2 }],
    ['center: false', universal, { ...universal, center: false }, { ...universal, center: true }],
    ['rotate: true', universal, { ...universal, rotate: true }, { ...universal, rotate: false }],
    ['keepFraction: 1', universal, { ...universal, keepFraction: 1 }, { ...universal, keepFraction: 0.5 }],
    ['rotatedLength: n past 256 rows', universal, { ...universal, rotatedLength: 300 }, { ...universal, rotatedLength: 320 }],
    ["gain: 'unbiased' (deterministic schemes)", { scheme: 'd3-q6-deterministic' }, { scheme: 'd3-q6-deterministic', gain: 'unbiased' }, { scheme: 'd3-q6-deterministic', gain: 'mmse' }],
  ];
  it.each(cases)('%s', (_name, omitted, stated, other) => {
    expect(sameBytes(decoded(omitted), decoded(stated))).toBe(true);
    expect(sameBytes(decoded(omitted), decoded(other))).toBe(false);
  });

  it("matmulAT: shrink 'none'", () => {
    const qa = quantize(a, { scheme: 'e8-2bit', nonce: 1 });
    const qb = quantize(gaussianMatrix(300, 4, 2), { scheme: 'e8-2bit', nonce: 2 });
    const omitted = bytesOf(matmulAT(qa, qb));
    expect(sameBytes(omitted, bytesOf(matmulAT(qa, qb, { shrink: 'none' })))).toBe(true);
    expect(sameBytes(omitted, bytesOf(matmulAT(qa, qb, { shrink: 'product' })))).toBe(false);
  });
});

describe('documented defaults of QuantizeWeightsOptions', () => {
  // n = 56 (not m·2^k): the rotation is a dense random one, whose seed shows in the codes.
  const n = 56;
  const w = gaussianMatrix(n, 64, 3);
  // Fewer samples than features: Σ_X is rank-deficient, so the damping shows in H.
  const sigmaX = covarianceFromActivations(gaussianMatrix(n, 32, 4));
  const stored = (options: QuantizeWeightsOptions): Uint8Array => quantizeWeights(w, sigmaX, options).serialize();
  const cases: [string, QuantizeWeightsOptions, QuantizeWeightsOptions, QuantizeWeightsOptions][] = [
    ['rotate: false', { method: 'gptq', rate: 3 }, { method: 'gptq', rate: 3, rotate: false }, { method: 'gptq', rate: 3, rotate: true }],
    ['seed: 0', { method: 'gptq', rate: 3, rotate: true }, { method: 'gptq', rate: 3, rotate: true, seed: 0 }, { method: 'gptq', rate: 3, rotate: true, seed: 1 }],
    ['damping: 1e-4', { method: 'watersic', rate: 3 }, { method: 'watersic', rate: 3, damping: 1e-4 }, { method: 'watersic', rate: 3, damping: 1e-2 }],
    ['rateTolerance: 0.01', { method: 'watersic', rate: 3 }, { method: 'watersic', rate: 3, rateTolerance: 0.01 }, { method: 'watersic', rate: 3, rateTolerance: 0.5 }],
    ['rescale: false', { method: 'gptq', step: 0.3 }, { method: 'gptq', step: 0.3, rescale: false }, { method: 'gptq', step: 0.3, rescale: true }],
    [
      'rescaleIterations: 2 (with rescale: true)',
      { method: 'gptq', step: 0.3, rescale: true },
      { method: 'gptq', step: 0.3, rescale: true, rescaleIterations: 2 },
      { method: 'gptq', step: 0.3, rescale: true, rescaleIterations: 1 },
    ],
  ];
  it.each(cases)('%s', (_name, omitted, stated, other) => {
    expect(sameBytes(stored(omitted), stored(stated))).toBe(true);
    expect(sameBytes(stored(omitted), stored(other))).toBe(false);
  });
});
