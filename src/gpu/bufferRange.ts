import { check } from '../errors.js';

/**
 * Throws a `LatticeMatmulError` unless `offset` is a non-negative multiple of `offsetMultiple` and
 * `byteLength` bytes from `offset` lie inside `buffer`, up to the end of the 4-byte word holding the
 * last one (what a storage binding covers; it matters for 2-byte f16 data). `what` starts the message and names the
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
  // f16 values are bound as whole u32 words (storage bindings are 4-byte multiples): the word holding
  // the last value must lie inside the buffer too.
  const wordEnd = Math.ceil((offset + byteLength) / 4) * 4;
  check(
    wordEnd <= buffer.size,
    () => `${what}: ${byteLength} bytes at offset ${offset} end inside a 4-byte word that its buffer (${buffer.size} bytes) does not hold whole; make the buffer ${wordEnd} bytes`,
  );
}
