import { check } from '../errors.js';
import type { Matrix } from '../matrix.js';
import { checkQuantizedMatrix } from '../quantize/checkQuantized.js';
import { checkProductRange } from '../quantize/prepareColumn.js';
import type { QuantizedMatrix } from '../quantize/quantizedMatrix.js';
import { pairProductReference, pairRadixBits, universalPairColumns } from '../quantize/universalPairs.js';
import { streamedColumnNormBound } from './decodeRotated.js';
import { checkCompatible, isSameQuantization } from './operands.js';

/**
 * ÂᵀB̂ of two universal matrices as the WebGPU pair product computes it (GpuEngine's 'universal-i8'
 * kernel: src/quantize/universalPairs.ts), for checking a GPU result on the CPU: `matmulAT` with the
 * term Σ l_a·l_b replaced by its mean N/4 for pairs of unshifted columns (zero-mean noise, at most
 * 0.02 % of the product's error variance), and with a shifted column's c rounded to a multiple of 2^s. Refuses
 * what `matmulAT` refuses, and operands that are not both universal. The engine takes the pair path
 * where WGSL has packed 8-bit dot products (`engine.productKernel(ga, gb)` is 'universal-i8'); its
 * decoding path ('universal-decode') computes `matmulAT` instead. The engine also takes that path for
 * operands whose pair form could shift a column by more than 6 bits (small β, or columns longer than
 * 2.1·10⁵–10⁶ for the presets), where this rounding stops being the dither's and this product's error
 * can exceed the guarantee's many times over.
 *
 * @example
 * const c = universalPairProduct(qa, qb); // a.cols × b.cols, ≈ matmulAT(qa, qb)
 * // = engine.matmulAT(ga, gb) up to f32 rounding when engine.productKernel(ga, gb) === 'universal-i8'
 */
export function universalPairProduct(qa: QuantizedMatrix, qb: QuantizedMatrix): Matrix {
  checkQuantizedMatrix(qa, 'A');
  checkQuantizedMatrix(qb, 'B');
  check(qa.kind === 'lattice' && qa.mode === 'universal' && qb.kind === 'lattice' && qb.mode === 'universal', 'universalPairProduct multiplies two universal lattice matrices; use matmulAT for other schemes');
  checkCompatible(qa, qb);
  const gram = isSameQuantization(qa, qb);
  checkProductRange(streamedColumnNormBound(qa), streamedColumnNormBound(qb));
  const radixBits = pairRadixBits(qa.scheme.q, qb.scheme.q);
  const pa = universalPairColumns(qa, radixBits);
  const pb = gram !== null ? pa : universalPairColumns(qb, radixBits);
  return { rows: qa.cols, cols: qb.cols, data: Float32Array.from(pairProductReference(qa, pa, qb, pb, gram !== null)) };
}
