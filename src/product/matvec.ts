import { check } from '../errors.js';
import { checkMatrix, type Matrix } from '../matrix.js';
import type { QuantizedMatrix } from '../quantize/quantizedMatrix.js';
import { RandomizedHadamard } from '../rotation/randomizedHadamard.js';
import { checkQuantizedMatrix } from '../quantize/checkQuantized.js';
import { checkProductRange } from '../quantize/prepareColumn.js';
import { columnNormBound, decodeRotated } from './decodeRotated.js';

/**
 * Weight-only product Ŵᵀx on the CPU: the quantized matrix Ŵ (n × cols, any scheme: universal or
 * deterministic lattice, scalar) times full-precision right-hand sides x (n × k), a cols × k matrix.
 * This is the public CPU GEMV and the CPU twin of the GPU kernel `universalGemv`.
 *
 * Math: Ŵ's column j is Rᵀŵ_j (first n entries) + μ_j·1, with ŵ_j its rotated-domain decode
 * (`decodeRotated`, float64, zero past keptLength) and R the randomized Hadamard rotation of the
 * quantizer (orthogonal up to f32 rounding), so
 *
 *     (Ŵᵀx)_j = ⟨ŵ_j, x̃⟩ + μ_j · Σ_i x_i,   x̃ = R·pad(x) = `new RandomizedHadamard(n, q.seed).forward(x)`,
 *
 * with x̃ = x when `q.rotate` is false. x is rotated once in f32 (bit for bit what the GPU Hadamard
 * kernel produces), then every inner product and Σx are float64, and each result is rounded to f32
 * once. It stays in the rotated domain, so it never forms Ŵ: equal to `matmulATExact(dequantize(q),
 * x)` up to the f32 roundings of the two rotations (test/product/matvec.test.ts states the bound).
 * Memory: the whole rotated decode (cols × length float64) is formed at once.
 *
 * @throws LatticeMatmulError when x is not a finite matrix with q.rows rows, or when an unrotated q has
 *   length ≠ rows.
 * @example
 * const qW = quantize(w, { scheme: 'e8-q16', seed: 7 }); // w: n × cols
 * const y = matvecAT(qW, { rows: n, cols: 1, data: x }); // cols × 1, ≈ wᵀx
 */
export function matvecAT(q: QuantizedMatrix, x: Matrix): Matrix {
  checkQuantizedMatrix(q, 'matvecAT q');
  checkMatrix(x, 'matvecAT x');
  check(x.rows === q.rows, () => `matvecAT: x has ${x.rows} rows, but the quantized matrix has ${q.rows}`);
  check(q.rotate || q.length === q.rows, () => `matvecAT: an unrotated matrix has length = rows, got length ${q.length} and rows ${q.rows}`);
  const { rows, cols, length } = q;
  const rotated = decodeRotated(q);
  checkProductRange(columnNormBound(q, rotated), largestColumnNorm(x));
  const rotation = q.rotate ? new RandomizedHadamard(rows, q.seed) : null;
  const out = new Float32Array(cols * x.cols);
  const xRotated = new Float32Array(length);
  for (let r = 0; r < x.cols; r++) {
    const xr = x.data.subarray(r * rows, (r + 1) * rows);
    if (rotation) rotation.forward(xr, xRotated);
    else xRotated.set(xr);
    let xSum = 0;
    if (q.means) for (let i = 0; i < rows; i++) xSum += xr[i] as number;
    for (let j = 0; j < cols; j++) {
      const base = j * length;
      let sum = 0;
      for (let i = 0; i < length; i++) sum += (rotated[base + i] as number) * (xRotated[i] as number);
      if (q.means) sum += (q.means[j] as number) * xSum;
      out[r * cols + j] = sum;
    }
  }
  return { rows: cols, cols: x.cols, data: out };
}

function largestColumnNorm(x: Matrix): number {
  let largest = 0;
  for (let j = 0; j < x.cols; j++) {
    let sum = 0;
    for (let i = j * x.rows; i < (j + 1) * x.rows; i++) sum += (x.data[i] as number) ** 2;
    largest = Math.max(largest, Math.sqrt(sum));
  }
  return largest;
}
