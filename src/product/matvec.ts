import { check, describeValue } from '../errors.js';
import { checkMatrix, largestColumnNorm, vectorOrMatrix, type Matrix } from '../matrix.js';
import type { QuantizedMatrix } from '../quantize/quantizedMatrix.js';
import { RandomizedHadamard } from '../rotation/randomizedHadamard.js';
import { checkQuantizedMatrix } from '../quantize/checkQuantized.js';
import { checkProductRange } from '../quantize/prepareColumn.js';
import { absMax, normalizingExponent } from '../quantize/columnScaling.js';
import { decodedColumnNorm, rotatedColumnDecoder } from './decodeRotated.js';

/**
 * Weight-only product Ŵᵀx on the CPU: the quantized matrix Ŵ (n × cols, any scheme: universal or
 * deterministic lattice, scalar) times full-precision right-hand sides x (n × k; a Float32Array of n
 * entries is one), a cols × k matrix.
 * This is the public CPU GEMV and the CPU twin of the GPU kernel `universalGemv`.
 *
 * Math: Ŵ's column j is Rᵀŵ_j (first n entries) + μ_j·1, with ŵ_j its rotated-domain decode
 * (`decodeRotated`, float64, zero past keptLength) and R the randomized Hadamard rotation of the
 * quantizer (orthogonal up to f32 rounding), so
 *
 *     (Ŵᵀx)_j = ⟨ŵ_j, x̃⟩ + μ_j · Σ_i x_i,   x̃ = R·pad(x) = `new RandomizedHadamard(n, q.seed, q.length).forward(x)`,
 *
 * with x̃ = x when `q.rotate` is false. x is rotated once in f32, scaled by a power of two so that
 * no finite x overflows (bit for bit what the GPU Hadamard kernel produces for x whose rotation stays
 * in f32's normal range), then every inner product and Σx are float64, and each result is rounded to
 * f32 once. It stays in the rotated domain, so it never forms Ŵ: equal to `matmulATExact(dequantize(q),
 * x)` up to the f32 roundings of the two rotations (test/product/matvec.test.ts states the bound).
 * Memory: x̃ of every right-hand side (k × length f32) and one decoded column (length float64) at a
 * time, not the whole decode (cols × length float64: 470 MB for a 14336 × 4096 weight); the product
 * range is checked on the decoded norms before anything is returned.
 *
 * @throws LatticeMatmulError when x is not a finite matrix with q.rows rows, when an unrotated q has
 *   length ≠ rows, or when a bound on q's decoded column norms times x's largest column norm passes
 *   2^126 (an output could leave f32's range).
 * @example
 * const qW = quantize(w, { scheme: 'e8-q16', seed: 7 }); // w: n × cols
 * const y = matvecAT(qW, x); // x: a Float32Array of n entries; y: cols × 1, ≈ wᵀx
 * const ys = matvecAT(qW, { rows: n, cols: k, data: xs }); // k right-hand sides: cols × k
 */
export function matvecAT(q: QuantizedMatrix, given: Float32Array | Matrix): Matrix {
  checkQuantizedMatrix(q, 'matvecAT q');
  // Before vectorOrMatrix, which takes any other typed array or an array for a Matrix.
  check(
    given instanceof Float32Array || (typeof given === 'object' && given !== null && !ArrayBuffer.isView(given) && !Array.isArray(given)),
    () => `matvecAT: x must be a Float32Array or a Matrix { rows, cols, data }, got ${describeValue(given)}`,
  );
  const x = vectorOrMatrix(given);
  checkMatrix(x, 'matvecAT x');
  check(x.rows === q.rows, () => `matvecAT: x has ${x.rows} rows, but the quantized matrix has ${q.rows}`);
  check(q.rotate || q.length === q.rows, () => `matvecAT: an unrotated matrix has length = rows, got length ${q.length} and rows ${q.rows}`);
  const { rows, cols, length } = q;
  const rotation = q.rotate ? new RandomizedHadamard(rows, q.seed, length) : null;
  const out = new Float32Array(cols * x.cols);
  // Every right-hand side rotated first (x̃_r, its 2^−e and Σx_r), then Ŵ decoded one column at a time.
  const xRotatedAll = new Float32Array(length * x.cols);
  const unscales = new Float64Array(x.cols);
  const xSums = new Float64Array(x.cols);
  const xScaled = new Float32Array(rows);
  for (let r = 0; r < x.cols; r++) {
    const xr = x.data.subarray(r * rows, (r + 1) * rows);
    const xRotated = xRotatedAll.subarray(r * length, (r + 1) * length);
    // The f32 rotation of a finite x can overflow (64 entries of 1e38: the Hadamard sums reach 6.4e39)
    // or lose bits to subnormals. Rotate x·2^e with max |x_i·2^e| ∈ [1, 2), as quantize does with its
    // columns (prepareColumn.ts), and take the 2^−e back in float64: scaling by a power of two is exact,
    // so in f32's normal range this is bit for bit the rotation of x itself. Without rotation x is
    // used as it is (products and sums are float64).
    let unscale = 1;
    if (rotation) {
      const amax = absMax(xr);
      const exponent = normalizingExponent(amax);
      const factor = 2 ** exponent;
      for (let i = 0; i < rows; i++) xScaled[i] = (xr[i] as number) * factor;
      rotation.forward(xScaled, xRotated);
      unscale = 2 ** -exponent;
    } else {
      xRotated.set(xr);
    }
    let xSum = 0;
    if (q.means) for (let i = 0; i < rows; i++) xSum += xr[i] as number;
    unscales[r] = unscale;
    xSums[r] = xSum;
  }
  const decodeNext = rotatedColumnDecoder(q);
  const decoded = new Float64Array(length);
  let normBound = 0;
  for (let j = 0; j < cols; j++) {
    decodeNext(decoded);
    normBound = Math.max(normBound, decodedColumnNorm(q, j, decoded));
    for (let r = 0; r < x.cols; r++) {
      const base = r * length;
      let sum = 0;
      for (let i = 0; i < length; i++) sum += (decoded[i] as number) * (xRotatedAll[base + i] as number);
      sum *= unscales[r] as number;
      if (q.means) sum += (q.means[j] as number) * (xSums[r] as number);
      out[r * cols + j] = sum;
    }
  }
  // The whole decode's norms, as before (a refused product is computed, but never returned).
  checkProductRange(normBound, largestColumnNorm(x));
  return { rows: cols, cols: x.cols, data: out };
}
