import { check, describeValue } from '../errors.js';

/*
 * Splitting work that exceeds one dispatch or one binding. A dispatch has at most
 * `maxComputeWorkgroupsPerDimension` (65535 by default) workgroups per dimension, and a storage
 * binding covers at most `maxStorageBufferBindingSize` bytes (128 MiB by default) starting at a
 * multiple of `minStorageBufferOffsetAlignment` (256 on most GPUs).
 */

/**
 * A 2-D dispatch size `[x, y]` with `x · y ≥ workgroupCount` and both within `maxPerDimension`. The
 * kernel recovers its linear workgroup index as `wid.y * nwg.x + wid.x` (with
 * `@builtin(num_workgroups) nwg`) and returns early when it is `≥ workgroupCount` (the last row may be
 * partly unused).
 *
 * @example
 * workgroupGrid(100_000, 65535); // [50000, 2]
 */
export function workgroupGrid(workgroupCount: number, maxPerDimension: number): [number, number] {
  check(
    Number.isInteger(workgroupCount) && workgroupCount >= 0,
    () => `workgroup count must be a non-negative integer, got ${describeValue(workgroupCount)}`,
  );
  if (workgroupCount === 0) return [0, 0];
  // Balance the two dimensions' ceilings so the waste in the last row stays below one row.
  const y = Math.ceil(workgroupCount / maxPerDimension);
  const x = Math.ceil(workgroupCount / y);
  check(
    y <= maxPerDimension,
    () => `${workgroupCount} workgroups do not fit a ${maxPerDimension} × ${maxPerDimension} dispatch`,
  );
  return [x, y];
}

/** A byte range of a buffer as a binding: where the binding starts, how long it is, and where the data starts inside it. */
export interface BindingWindow {
  /** Binding offset in bytes: a multiple of the alignment, at most the data's start. */
  readonly offset: number;
  /** Binding size in bytes (covers the data; a multiple of 4). */
  readonly size: number;
  /** Index of the data's first 4-byte element inside the binding (pass it to the kernel). */
  readonly firstElement: number;
}

/**
 * The binding that covers bytes `[start, start + byteLength)` of a buffer when bindings must start at
 * a multiple of `alignment`: it starts at the aligned offset at or below `start`, and the kernel skips
 * `firstElement` words. `start` and `byteLength` must be multiples of 4.
 *
 * @example
 * bindingWindow(1000, 400, 256); // { offset: 768, size: 632, firstElement: 58 }
 */
export function bindingWindow(start: number, byteLength: number, alignment: number): BindingWindow {
  check(start % 4 === 0 && byteLength % 4 === 0, () => `binding window [${start}, +${byteLength}) is not 4-byte aligned`);
  const offset = Math.floor(start / alignment) * alignment;
  return { offset, size: start - offset + byteLength, firstElement: (start - offset) / 4 };
}

/**
 * The window over `count` values of `bytes` each from byte `byteOffset`, with `firstElement` the index
 * the shader uses: f32 (or any 4-byte) values bound as words (`bindingWindow`); 16-bit values (f16,
 * bf16; `byteOffset` a multiple of 2) as halves of u32 words, the binding covering the whole words
 * around them (the last value's too) and `firstElement` counting halves.
 *
 * @example
 * valuesWindow(1002, 3, 2, 256); // { offset: 768, size: 240, firstElement: 117 }: words from 1000, half 2·58 + 1
 * valuesWindow(1000, 3, 4, 256).firstElement; // 58, a word index
 */
export function valuesWindow(byteOffset: number, count: number, bytes: 2 | 4, alignment: number): BindingWindow {
  if (bytes === 4) return bindingWindow(byteOffset, 4 * count, alignment);
  const start = Math.floor(byteOffset / 4) * 4;
  const end = Math.ceil((byteOffset + 2 * count) / 4) * 4;
  const words = bindingWindow(start, end - start, alignment);
  return { ...words, firstElement: 2 * words.firstElement + (byteOffset - start) / 2 };
}

/**
 * How many items (columns, rows, …) of `bytesPerItem` bytes one binding can hold: the largest count
 * whose bytes plus the worst-case alignment slack (`alignment − 4`) fit in `maxBindingBytes`.
 *
 * @example
 * itemsPerBinding(4096, 134217728, 256); // 32767
 */
export function itemsPerBinding(bytesPerItem: number, maxBindingBytes: number, alignment: number): number {
  const items = Math.floor((maxBindingBytes - (alignment - 4)) / bytesPerItem);
  check(
    items >= 1,
    () =>
      `one item of ${bytesPerItem} bytes does not fit a storage binding of at most ${maxBindingBytes} bytes ` +
      `with the ${alignment - 4} bytes of slack that a binding at a ${alignment}-byte aligned offset may need: allow at least ${bytesPerItem + alignment - 4}`,
  );
  return items;
}

/** GPU quantization allocates its scratch (prepared and rotated columns) in chunks of about this many bytes. */
const SCRATCH_CHUNK_BYTES = 64 * 2 ** 20;

/**
 * The binding cap for GPU quantization's per-chunk scratch of columns of `length` f32: 64 MiB, or one
 * column when that is larger (n ≥ 2^24 still quantizes while one column fits a binding), never more
 * than `maxBinding`.
 *
 * @example
 * scratchChunkBytes(4096, 2 ** 27, 256);   // 67108864: chunks of 64 MiB
 * scratchChunkBytes(2 ** 24 + 1, 2 ** 27, 256); // 67109120: one column and its alignment slack
 */
export function scratchChunkBytes(length: number, maxBinding: number, alignment: number): number {
  return Math.min(maxBinding, Math.max(SCRATCH_CHUNK_BYTES, 4 * length + alignment - 4));
}

/**
 * The largest storage binding a kernel uses: the device's maxStorageBufferBindingSize, or a smaller
 * `maxBindingBytes` (a test knob that forces splitting), which must be a positive integer.
 *
 * @example
 * const maxBinding = bindingCap(device, args.maxBindingBytes, 'f16 → f32');
 */
export function bindingCap(device: GPUDevice, maxBindingBytes: number | undefined, what: string): number {
  check(
    maxBindingBytes === undefined || (Number.isInteger(maxBindingBytes) && maxBindingBytes > 0),
    () => `${what}: maxBindingBytes must be a positive integer, got ${describeValue(maxBindingBytes)}`,
  );
  return Math.min(maxBindingBytes ?? Infinity, device.limits.maxStorageBufferBindingSize);
}
