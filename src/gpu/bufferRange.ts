import { check, describeValue } from '../errors.js';
import { BufferUsage, checkBufferUsable } from './buffers.js';

/**
 * Throws a `LatticeMatmulError` unless `buffer` can be bound as storage (a GPUBuffer with STORAGE
 * usage, not mapped), `offset` is a non-negative multiple of `offsetMultiple` and `byteLength` bytes
 * from `offset` lie inside `buffer`, up to the end of the 4-byte word holding the last one (what a
 * storage binding covers; it matters for 2-byte f16 data). Every kernel checks its storage bindings
 * with it before recording: a binding WebGPU refuses would otherwise surface only as an uncaptured
 * validation error, and the caller's whole command buffer would be rejected at submit. `what` starts
 * the message and names the kernel and the operand, e.g. `'matmul: A'`; `sizeNote`, if given, ends the
 * message of a range past the buffer's end with what the length counts ("inFeatures 4096 × 1 token × 4 bytes").
 *
 * @example
 * checkBufferRange(args.a, aOffset, 4 * n * aCols, 'matmul: A'); // "matmul: A needs … bytes at offset …"
 */
export function checkBufferRange(buffer: GPUBuffer, offset: number, byteLength: number, what: string, offsetMultiple = 4, sizeNote?: string): void {
  checkBufferUsable(buffer, BufferUsage.STORAGE, what);
  check(
    Number.isInteger(offset) && offset >= 0 && offset % offsetMultiple === 0,
    () => `${what} offset must be a non-negative multiple of ${offsetMultiple}, got ${describeValue(offset)}`,
  );
  check(
    offset + byteLength <= buffer.size,
    () => `${what} needs ${byteLength} bytes at offset ${offset}, but its buffer has ${buffer.size}${sizeNote === undefined ? '' : ` (${sizeNote})`}`,
  );
  // f16 values are bound as whole u32 words (storage bindings are 4-byte multiples): the word holding
  // the last value must lie inside the buffer too.
  const wordEnd = Math.ceil((offset + byteLength) / 4) * 4;
  check(
    wordEnd <= buffer.size,
    () => `${what}: ${byteLength} bytes at offset ${offset} end inside a 4-byte word that its buffer (${buffer.size} bytes) does not hold whole; make the buffer ${wordEnd} bytes`,
  );
}
