/*
 * CRC-32 (IEEE 802.3: reflected polynomial 0xEDB88320, initial value and final XOR 0xFFFFFFFF), the
 * checksum of zlib, gzip and PNG, so any tool can verify a file (`zlib.crc32` in Node ≥ 20.15,
 * Python's `zlib.crc32`, `binascii.crc32`).
 *
 * Why this checksum for the library's file formats (the weight-only format, the quantized container):
 * it detects every single flipped bit in data of any length, every error of up to 3 flipped bits in
 * data up to 91,607 bits (about 11 KB) and of up to 2 bits up to 2^32 bits (512 MB) (Koopman 2002:
 * Hamming distance 4, resp. 3, of the IEEE polynomial), every burst of up to 32 bits, and other random
 * damage with probability 1 − 2^−32, for one table look-up per byte. It is not a signature: whoever can
 * write a file can write a matching checksum, so the readers' checks of sizes and values do not rely
 * on it.
 */

import { check, describeValue } from '../errors.js';

/** The 256-entry table of the byte-at-a-time algorithm. */
const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let c = byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[byte] = c >>> 0;
  }
  return table;
})();

/**
 * CRC-32 of `bytes[start … end)`, as an unsigned 32-bit integer.
 *
 * @example
 * crc32(new TextEncoder().encode('123456789')); // 0xCBF43926, the standard check value
 */
export function crc32(bytes: Uint8Array, start = 0, end = bytes?.length): number {
  return crc32Continue(0, bytes, start, end);
}

/**
 * The CRC-32 of the concatenation of what `previous` was computed over and `bytes[start … end)`
 * (zlib's `crc32(previous, bytes)`): checksums data that arrives in pieces. `previous` = 0 starts.
 *
 * @example
 * const whole = crc32Continue(crc32(first), second); // = crc32 of first followed by second
 */
export function crc32Continue(previous: number, bytes: Uint8Array, start = 0, end = bytes?.length): number {
  check(bytes instanceof Uint8Array, () => `crc32: bytes must be a Uint8Array, got ${describeValue(bytes)}`);
  check(Number.isInteger(previous) && previous >= 0 && previous <= 0xffffffff, () => `crc32Continue: previous must be a CRC-32 (an integer in [0, 2^32 − 1]), got ${describeValue(previous)}`);
  // Past the end, bytes[k] would read undefined, as 0: the CRC of bytes that are not there.
  check(
    Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start <= end && end <= bytes.length,
    () => `crc32: the range [${describeValue(start)}, ${describeValue(end)}) is not within the ${bytes.length} bytes`,
  );
  let c = (previous ^ 0xffffffff) >>> 0;
  for (let k = start; k < end; k++) c = (TABLE[(c ^ (bytes[k] as number)) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
