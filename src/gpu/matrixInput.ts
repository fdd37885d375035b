import { check, checkOneOf, checkPositiveInteger, describeValue } from '../errors.js';
import { checkMatrix, type Matrix } from '../matrix.js';
import { BufferUsage, checkBufferUsable } from './buffers.js';
import { ACTIVATION_FORMATS, type ActivationFormat } from './kernels/activationIo.js';
import { checkKnownKeys } from '../quantize/strictOptions.js';

/** A matrix already on the GPU: `rows × cols` column-major f32 in `buffer`, from byte `offset`. */
export interface GpuMatrixInput {
  readonly buffer: GPUBuffer;
  readonly rows: number;
  readonly cols: number;
  /** Byte offset of entry (0, 0): a multiple of 4 (f32) or 2 (f16). Default 0. */
  readonly offset?: number;
  /** Element type: 'f32' (default) or 'f16' (IEEE binary16, e.g. an app's half-precision activations). */
  readonly format?: ActivationFormat;
}

/** The keys of a {@link GpuMatrixInput}: any other is refused (`fromat: 'f16'` read f16 data as f32). */
const GPU_MATRIX_INPUT_KEYS = ['buffer', 'rows', 'cols', 'offset', 'format'] as const satisfies readonly (keyof GpuMatrixInput)[];

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
  checkKnownKeys(input, GPU_MATRIX_INPUT_KEYS, name);
  checkPositiveInteger(input.rows, `${name} rows`);
  checkPositiveInteger(input.cols, `${name} cols`);
  checkBufferUsable(input.buffer, BufferUsage.STORAGE, `${name} buffer`);
  const format = input.format === undefined ? 'f32' : input.format;
  checkOneOf(format, ACTIVATION_FORMATS, `${name} format`);
  const size = format === 'f16' ? 2 : 4;
  const offset = input.offset === undefined ? 0 : input.offset;
  check(Number.isInteger(offset) && offset >= 0 && offset % size === 0, () => `${name} offset must be a non-negative multiple of ${size}, got ${describeValue(offset)}`);
  const bytes = size * input.rows * input.cols;
  check(offset + bytes <= input.buffer.size, () => `${name} needs ${bytes} bytes at offset ${offset}, but its buffer has ${input.buffer.size}`);
}

/**
 * A GPU matrix input copied field by field when a call is made, checked (`checkMatrixInput`). Calls
 * use their input only when their turn on the device comes, and an app may reuse one descriptor for
 * several un-awaited calls, moving its `offset` or changing `cols` in between: read again at its turn,
 * a call quantized another window than the one it checked, and a `matvec` whose `cols` dropped from 4
 * to 2 resolved with its last two columns all zeros. Unknown keys are refused before the copy drops them.
 */
export function gpuMatrixInputSnapshot(input: GpuMatrixInput, name: string): GpuMatrixInput {
  check(typeof input === 'object' && input !== null, () => `${name} must be a Matrix or { buffer, rows, cols, offset? }`);
  checkKnownKeys(input, GPU_MATRIX_INPUT_KEYS, name);
  const { buffer, rows, cols, offset, format } = input;
  const snapshot: GpuMatrixInput = { buffer, rows, cols, ...(offset === undefined ? {} : { offset }), ...(format === undefined ? {} : { format }) };
  checkMatrixInput(snapshot, name);
  return snapshot;
}
