import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { dequantize } from '../../src/product/dequantize.js';
import { checkQuantizedMatrix } from '../../src/quantize/checkQuantized.js';
import { isSupportedColumnNorm, MAX_COLUMN_NORM, MIN_COLUMN_NORM } from '../../src/quantize/prepareColumn.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { QuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/*
 * checkQuantizedMatrix holds a lattice matrix's norms to the range quantize writes (0 or
 * [2^-100, 2^100], isSupportedColumnNorm): a hand-built or edited matrix with 0 < ν < 2^-100 would
 * decode subnormally on the GPU, so every function that takes a quantized matrix refuses it.
 */

describe('checkQuantizedMatrix: norms', () => {
  it('isSupportedColumnNorm is 0 or [MIN_COLUMN_NORM, MAX_COLUMN_NORM], false for NaN', () => {
    for (const v of [0, MIN_COLUMN_NORM, 1, MAX_COLUMN_NORM]) expect(isSupportedColumnNorm(v)).toBe(true);
    for (const v of [NaN, -1, Infinity, 2 ** -101, 1e-40, 2 ** 101, -0.5 * MIN_COLUMN_NORM]) expect(isSupportedColumnNorm(v)).toBe(false);
  });

  it.each(['d3-q6', 'e8-q16-deterministic'] as const)('%s: accepts norms 0, 2^-100 and 2^100; refuses 2^-101 and a subnormal, naming the column', (scheme) => {
    const q = quantize(gaussianMatrix(32, 3, 1), scheme === 'd3-q6' ? { scheme, seed: 1, nonce: 2 } : { scheme, seed: 1 }) as QuantizedMatrix & { norms: Float32Array };
    const withNorms = (values: number[]): QuantizedMatrix => ({ ...q, norms: Float32Array.from(values) }) as QuantizedMatrix;
    expect(() => checkQuantizedMatrix(withNorms([0, 2 ** -100, 2 ** 100]), 'q')).not.toThrow();
    expect(() => checkQuantizedMatrix(withNorms([1, 1, 2 ** -101]), 'q')).toThrow(/q\.norms\[2\] = 3\.944304526105059e-31 is neither 0 nor in \[2\^-100, 2\^100\]/);
    expect(() => dequantize(withNorms([1, 1e-40, 1]))).toThrow(LatticeMatmulError);
    expect(() => dequantize(withNorms([1, 1e-40, 1]))).toThrow(/norms\[1\] = 9\.99994610111476e-41 is neither 0 nor/);
    expect(() => checkQuantizedMatrix(withNorms([NaN, 1, 1]), 'q')).toThrow(/q\.norms\[0\] = NaN/);
  });
});
