import type { Matrix } from '../matrix.js';
import type { QuantizedMatrix } from '../quantize/quantizedMatrix.js';
import { RandomizedHadamard } from '../rotation/randomizedHadamard.js';
import { checkQuantizedMatrix } from '../quantize/checkQuantized.js';
import { checkDecodedSize, rotatedColumnDecoder } from './decodeRotated.js';

/**
 * Reconstructs the matrix from its codes: decode in the rotated domain, undo the rotation, add the
 * column means back. Columns are decoded one at a time (`rotatedColumnDecoder`, float64, as
 * `decodeRotated` holds them all): besides the f32 result it holds a few columns, not a float64 copy.
 *
 * @example
 * const approx = dequantize(quantize(a, { scheme: 'e8-q16' })); // same shape as a
 */
export function dequantize(q: QuantizedMatrix): Matrix {
  checkQuantizedMatrix(q, 'dequantize q');
  checkDecodedSize(q);
  const decodeNext = rotatedColumnDecoder(q);
  const rotated = new Float64Array(q.length);
  const rotation = q.rotate ? new RandomizedHadamard(q.rows, q.seed, q.length) : null;
  const data = new Float32Array(q.rows * q.cols);
  const column = new Float32Array(q.length);
  const restored = new Float32Array(q.rows);
  for (let j = 0; j < q.cols; j++) {
    decodeNext(rotated);
    for (let k = 0; k < q.length; k++) column[k] = rotated[k] as number;
    if (rotation) rotation.inverse(column, restored);
    else restored.set(column.subarray(0, q.rows));
    const mean = q.means ? (q.means[j] as number) : 0;
    for (let i = 0; i < q.rows; i++) data[j * q.rows + i] = (restored[i] as number) + mean;
  }
  return { rows: q.rows, cols: q.cols, data };
}
