import { check } from '../errors.js';

/*
 * Buffer helpers: every buffer gets a label (validation messages name it), sizes are rounded up to
 * the 4-byte multiple WebGPU requires for copies and mapping, and reads go through a staging buffer
 * that is destroyed afterwards.
 */

/**
 * WebGPU's buffer usage bits. The values are fixed by the spec; the `GPUBufferUsage` global exists
 * only once WebGPU is loaded (Dawn installs it in Node on `nodeGpu()`), so modules that are imported
 * before that use these.
 */
export const BufferUsage = {
  MAP_READ: 0x0001,
  MAP_WRITE: 0x0002,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  INDEX: 0x0010,
  VERTEX: 0x0020,
  UNIFORM: 0x0040,
  STORAGE: 0x0080,
  INDIRECT: 0x0100,
  QUERY_RESOLVE: 0x0200,
} as const;

/** `GPUMapMode.READ` (spec value), for the same reason as `BufferUsage`. */
const MAP_MODE_READ = 0x0001;

/** Usage of buffers the kernels read and write, and that can be uploaded to and read back. */
export const STORAGE_USAGE = BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC;

/** Usage of uniform buffers (written with `queue.writeBuffer` or at creation). */
export const UNIFORM_USAGE = BufferUsage.UNIFORM | BufferUsage.COPY_DST;

/** `byteLength` rounded up to a multiple of 4 (and at least 4: zero-sized bindings are invalid). */
export function paddedByteLength(byteLength: number): number {
  check(Number.isInteger(byteLength) && byteLength >= 0, () => `byteLength must be a non-negative integer, got ${byteLength}`);
  return Math.max(4, Math.ceil(byteLength / 4) * 4);
}

/**
 * A labelled buffer of at least `byteLength` bytes (rounded up to a multiple of 4).
 *
 * @example
 * const out = createBuffer(device, 'hadamard output', 4 * n, STORAGE_USAGE);
 */
export function createBuffer(device: GPUDevice, label: string, byteLength: number, usage: number): GPUBuffer {
  const size = paddedByteLength(byteLength);
  check(
    size <= device.limits.maxBufferSize,
    () => `${label}: ${size} bytes is more than this device's maxBufferSize (${device.limits.maxBufferSize})`,
  );
  return device.createBuffer({ label, size, usage });
}

/**
 * A labelled buffer holding a copy of `data` (written while mapped at creation, so no queue write is
 * pending). Its size is `data.byteLength` rounded up to a multiple of 4; the padding is zero.
 *
 * @example
 * const input = createBufferWithData(device, 'matmul A', a.data, STORAGE_USAGE);
 */
export function createBufferWithData(
  device: GPUDevice,
  label: string,
  data: ArrayBufferView,
  usage: number,
): GPUBuffer {
  const buffer = device.createBuffer({ label, size: paddedByteLength(data.byteLength), usage, mappedAtCreation: true });
  new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  buffer.unmap();
  return buffer;
}

/** Writes `data` into `buffer` at `byteOffset` through the queue (sizes padded to 4 bytes). */
export function uploadToBuffer(device: GPUDevice, buffer: GPUBuffer, data: ArrayBufferView, byteOffset = 0): void {
  check(byteOffset % 4 === 0, () => `${buffer.label}: upload offset ${byteOffset} is not a multiple of 4`);
  // WebGPU accepts views of any ArrayBuffer; @webgpu/types only types non-shared ones.
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength) as Uint8Array<ArrayBuffer>;
  if (bytes.byteLength % 4 === 0) {
    device.queue.writeBuffer(buffer, byteOffset, bytes);
  } else {
    const padded = new Uint8Array(paddedByteLength(bytes.byteLength));
    padded.set(bytes);
    device.queue.writeBuffer(buffer, byteOffset, padded);
  }
}

/**
 * Copies `byteLength` bytes of `buffer` (from `byteOffset`) to the CPU. The buffer needs `COPY_SRC`
 * usage; the copy goes through a temporary `MAP_READ` buffer that is destroyed afterwards. Work
 * submitted earlier is finished first (the queue runs in order).
 *
 * @example
 * const c = new Float32Array(await readBuffer(device, cBuffer, 4 * a * b));
 */
export async function readBuffer(
  device: GPUDevice,
  buffer: GPUBuffer,
  byteLength: number,
  byteOffset = 0,
): Promise<ArrayBuffer> {
  check(byteOffset % 4 === 0, () => `${buffer.label}: read offset ${byteOffset} is not a multiple of 4`);
  check(
    Number.isInteger(byteLength) && byteLength >= 0 && byteOffset + byteLength <= buffer.size,
    () => `${buffer.label}: cannot read ${byteLength} bytes at offset ${byteOffset} from a ${buffer.size}-byte buffer`,
  );
  if (byteLength === 0) return new ArrayBuffer(0);
  const size = paddedByteLength(byteLength);
  const staging = device.createBuffer({
    label: `${buffer.label} (readback)`,
    size,
    usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST,
  });
  try {
    const encoder = device.createCommandEncoder({ label: `${buffer.label} (readback copy)` });
    encoder.copyBufferToBuffer(buffer, byteOffset, staging, 0, Math.min(size, buffer.size - byteOffset));
    device.queue.submit([encoder.finish()]);
    await staging.mapAsync(MAP_MODE_READ);
    return staging.getMappedRange(0, size).slice(0, byteLength);
  } finally {
    staging.destroy();
  }
}
