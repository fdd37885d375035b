import { check, checkPositiveInteger } from '../errors.js';
import { checkMatrix, type Matrix } from '../matrix.js';
import { BufferUsage, checkBufferUsable } from './buffers.js';

/** A matrix already on the GPU: `rows × cols` column-major f32 in `buffer`, from byte `offset`. */
export interface GpuMatrixInput {
  readonly buffer: GPUBuffer;
  readonly rows: number;
  readonly cols: number;
  /** Byte offset of entry (0, 0); a multiple of 4. Default 0. */
  readonly offset?: number;
}

/** True for a CPU `Matrix` (it has `data`), false for a `GpuMatrixInput`. */
export function isCpuMatrix(input: Matrix | GpuMatrixInput): input is Matrix {
  return typeof input === 'object' && input !== null && 'data' in input;
}

/** Checks a CPU matrix or a GPU matrix input (shape, offset, size, STORAGE usage), naming it `name`. */
export function checkMatrixInput(input: Matrix | GpuMatrixInput, name: string): void {
  if (isCpuMatrix(input)) {
    checkMatrix(input, name);
    return;
  }
  check(typeof input === 'object' && input !== null, () => `${name} must be a Matrix or { buffer, rows, cols, offset? }`);
  checkPositiveInteger(input.rows, `${name} rows`);
  checkPositiveInteger(input.cols, `${name} cols`);
  checkBufferUsable(input.buffer, BufferUsage.STORAGE, `${name} buffer`);
  const offset = input.offset ?? 0;
  check(Number.isInteger(offset) && offset >= 0 && offset % 4 === 0, () => `${name} offset must be a non-negative multiple of 4, got ${offset}`);
  const bytes = 4 * input.rows * input.cols;
  check(offset + bytes <= input.buffer.size, () => `${name} needs ${bytes} bytes at offset ${offset}, but its buffer has ${input.buffer.size}`);
}
