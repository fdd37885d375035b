import { check } from '../errors.js';

/**
 * Throws a `LatticeMatmulError` unless `offset` is a non-negative multiple of `offsetMultiple` and
 * `byteLength` bytes from `offset` lie inside `buffer`. `what` starts the message and names the
 * kernel and the operand, e.g. `'matmul: A'`.
 *
 * @example
 * checkBufferRange(args.a, aOffset, 4 * n * aCols, 'matmul: A'); // "matmul: A needs … bytes at offset …"
 */
export function checkBufferRange(buffer: GPUBuffer, offset: number, byteLength: number, what: string, offsetMultiple = 4): void {
  check(
    Number.isInteger(offset) && offset >= 0 && offset % offsetMultiple === 0,
    () => `${what} offset must be a non-negative multiple of ${offsetMultiple}, got ${offset}`,
  );
  check(
    offset + byteLength <= buffer.size,
    () => `${what} needs ${byteLength} bytes at offset ${offset}, but its buffer has ${buffer.size}`,
  );
}
