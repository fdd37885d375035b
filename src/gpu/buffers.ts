import { check, LatticeMatmulError, describeValue } from '../errors.js';
import { gpuFailure, throwIfDeviceLost, withValidation } from './errorScopes.js';

/*
 * Buffer helpers: every buffer gets a label (validation messages name it), sizes are rounded up to
 * the 4-byte multiple WebGPU requires for copies and mapping, and reads go through a staging buffer
 * that is destroyed afterwards.
 *
 * Submission checks. A submission that WebGPU rejects (a buffer destroyed before `queue.submit`, an
 * invalid bind group, a missing usage flag) runs none of its commands, and nothing but an error
 * scope says so: a staging buffer then maps with whatever it held, zeros for a fresh one. So every
 * readback here ends its command buffer with `clearBuffer` of a marker word that was written
 * non-zero at creation: the marker reads zero exactly when the whole submission ran. This check
 * needs no error scope, so it holds whatever other code does with the device's scopes.
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

// The usages below are pure IIFEs: bundlers treat a bare property read as a possible side effect and
// would keep it (and this module) in an app that never uses them.

/** Usage of buffers the kernels read and write, and that can be uploaded to and read back. */
export const STORAGE_USAGE = /*#__PURE__*/ (() => BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC)();

/** Usage of uniform buffers (written with `queue.writeBuffer` or at creation). */
export const UNIFORM_USAGE = /*#__PURE__*/ (() => BufferUsage.UNIFORM | BufferUsage.COPY_DST)();

/** `byteLength` rounded up to a multiple of 4 (and at least 4: zero-sized bindings are invalid). */
export function paddedByteLength(byteLength: number): number {
  check(Number.isInteger(byteLength) && byteLength >= 0, () => `byteLength must be a non-negative integer, got ${describeValue(byteLength)}`);
  return Math.max(4, Math.ceil(byteLength / 4) * 4);
}

/**
 * Size of a buffer of lattice codes holding `byteLength` bytes of them: whole 16-byte quads (at least
 * one), since the int8-input GEMVs read codes as vec4<u32> and bind the quad of a matrix's last code
 * word (src/gpu/kernels/gemvI8Common.ts). Only codes are padded so: other buffers keep sizes that
 * checks against `buffer.size` can trust.
 */
export function codeBufferByteLength(byteLength: number): number {
  return Math.ceil(paddedByteLength(byteLength) / 16) * 16;
}

/**
 * A labelled buffer of at least `byteLength` bytes (rounded up to a multiple of 4).
 *
 * @example
 * const out = createBuffer(device, 'hadamard output', 4 * n, STORAGE_USAGE);
 */
export function createBuffer(device: GPUDevice, label: string, byteLength: number, usage: number): GPUBuffer {
  const size = paddedByteLength(byteLength);
  checkBufferSize(device, label, size);
  return device.createBuffer({ label, size, usage });
}

/**
 * Refuses a buffer beyond the device's maxBufferSize up front: WebGPU would return an invalid buffer
 * and report it only to an error scope, and the first call that uses it would fail far from here.
 */
export function checkBufferSize(device: GPUDevice, label: string, size: number): void {
  check(
    size <= device.limits.maxBufferSize,
    () =>
      `${label}: ${size} bytes is more than this device's maxBufferSize (${device.limits.maxBufferSize}); ` +
      `request the adapter's maximum (deviceRequirements(adapter), or requestGpuDevice) or split the matrix`,
  );
}

/**
 * A labelled buffer holding a copy of `data` (written while mapped at creation, so no queue write is
 * pending). Its size is `byteLength` (default `data.byteLength`, at least that) rounded up to a
 * multiple of 4; the padding is zero.
 *
 * @example
 * const input = createBufferWithData(device, 'matmul A', a.data, STORAGE_USAGE);
 */
export function createBufferWithData(
  device: GPUDevice,
  label: string,
  data: ArrayBufferView,
  usage: number,
  byteLength = data.byteLength,
): GPUBuffer {
  check(byteLength >= data.byteLength, () => `${label}: a ${byteLength}-byte buffer cannot hold ${data.byteLength} bytes of data`);
  const size = paddedByteLength(byteLength);
  checkBufferSize(device, label, size);
  const buffer = device.createBuffer({ label, size, usage, mappedAtCreation: true });
  new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  buffer.unmap();
  return buffer;
}

/** Writes `data` into `buffer` at `byteOffset` through the queue (sizes padded to 4 bytes). */
export function uploadToBuffer(device: GPUDevice, buffer: GPUBuffer, data: ArrayBufferView, byteOffset = 0): void {
  checkBufferUsable(buffer, BufferUsage.COPY_DST, 'uploadToBuffer: buffer');
  check(
    Number.isInteger(byteOffset) && byteOffset >= 0 && byteOffset % 4 === 0,
    () => `${buffer.label}: upload offset ${byteOffset} is not a non-negative multiple of 4`,
  );
  check(
    byteOffset + Math.ceil(data.byteLength / 4) * 4 <= buffer.size,
    () => `${buffer.label}: cannot upload ${data.byteLength} bytes at offset ${byteOffset} into a ${buffer.size}-byte buffer`,
  );
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


/** Non-zero marker word of a submission check; the submission's last command clears it. */
const MARKER_PENDING = 0x5ab0_7a9e;

/** Names of the usage bits in `usage`, e.g. 'STORAGE | COPY_SRC' ('none' for 0). */
export function usageNames(usage: number): string {
  const names = Object.entries(BufferUsage)
    .filter(([, bit]) => (usage & bit) !== 0)
    .map(([name]) => name);
  return names.length > 0 ? names.join(' | ') : 'none';
}

/**
 * Host-side checks of a buffer before it is recorded into a command: it is a `GPUBuffer`, has every
 * usage bit of `usage`, and is not mapped (a mapped buffer in a submission is a validation error).
 * `what` names the argument, e.g. `'matmul: A'`. A destroyed buffer cannot be recognized here
 * (WebGPU exposes no such state); the submission check of `readBuffer`/`submitAndConfirm` and the
 * section's error scopes catch it.
 *
 * @throws LatticeMatmulError naming `what`, the buffer's label and what is missing.
 * @example
 * checkBufferUsable(args.a, BufferUsage.STORAGE, 'matmul: A');
 */
export function checkBufferUsable(buffer: GPUBuffer, usage: number, what: string): void {
  check(
    typeof buffer === 'object' && buffer !== null && typeof buffer.size === 'number' && typeof buffer.usage === 'number',
    () => `${what} must be a GPUBuffer, got ${buffer === null ? 'null' : typeof buffer}`,
  );
  const missing = usage & ~buffer.usage;
  check(
    missing === 0,
    () => `${what}: buffer "${buffer.label}" lacks ${usageNames(missing)} usage (it was created with ${usageNames(buffer.usage)})`,
  );
  check(
    buffer.mapState === undefined || buffer.mapState === 'unmapped',
    () => `${what}: buffer "${buffer.label}" is ${buffer.mapState}; unmap it before the GPU uses it`,
  );
}

/** A readback recorded into a command encoder by `recordReadback`. */
export interface PendingReadback {
  /**
   * Resolves, once the encoder's submission has finished, with the bytes read; rejects with a
   * `LatticeMatmulError` when the submission was rejected (then no command in it ran) and with a
   * `GpuDeviceLostError` when the device was lost. Call once, after `queue.submit`.
   */
  result(): Promise<ArrayBuffer>;
  /** Destroys the staging buffer (idempotent; after `result()` settled, or when never submitted). */
  destroy(): void;
}

/**
 * Records, at the current end of `encoder`, a copy of `byteLength` bytes of `buffer` (from
 * `byteOffset`) into a staging buffer, followed by the submission check (see the top of this file).
 * Record it last, so it confirms everything else in the same submission: `result()` then resolves
 * only if the whole command buffer ran. A lock-free primitive: use it inside a section
 * (`withValidation`) or with your own error handling.
 *
 * @example
 * const encoder = device.createCommandEncoder({ label: 'AᵀB' });
 * dispatchMatmulF32(device, encoder, scratch, args);
 * const readback = recordReadback(device, encoder, c, 4 * aCols * bCols);
 * device.queue.submit([encoder.finish()]);
 * try { return new Float32Array(await readback.result()); } finally { readback.destroy(); }
 */
export function recordReadback(
  device: GPUDevice,
  encoder: GPUCommandEncoder,
  buffer: GPUBuffer,
  byteLength: number,
  byteOffset = 0,
): PendingReadback {
  checkBufferUsable(buffer, BufferUsage.COPY_SRC, 'readback source');
  check(
    Number.isInteger(byteOffset) && byteOffset >= 0 && byteOffset % 4 === 0,
    () => `${buffer.label}: read offset ${byteOffset} is not a multiple of 4`,
  );
  check(
    Number.isInteger(byteLength) && byteLength >= 0 && byteOffset + byteLength <= buffer.size,
    () => `${buffer.label}: cannot read ${byteLength} bytes at offset ${byteOffset} from a ${buffer.size}-byte buffer`,
  );
  const what = `reading "${buffer.label}"`;
  throwIfDeviceLost(device, what);
  // Whole words are copied: the last one may extend past byteLength, but not past the buffer.
  const copyBytes = Math.min(Math.ceil(byteLength / 4) * 4, buffer.size - byteOffset);
  check(
    copyBytes % 4 === 0,
    () => `${buffer.label}: cannot read its last ${buffer.size - byteOffset} bytes (a ${buffer.size}-byte buffer is not whole 4-byte words)`,
  );
  const markerOffset = Math.ceil(byteLength / 4) * 4;
  const staging = device.createBuffer({
    label: `${buffer.label} (readback)`,
    size: markerOffset + 4,
    usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST,
    mappedAtCreation: true,
  });
  // Whole-range mappings only: getMappedRange offsets must be multiples of 8.
  new Uint32Array(staging.getMappedRange())[markerOffset / 4] = MARKER_PENDING;
  staging.unmap();
  if (copyBytes > 0) encoder.copyBufferToBuffer(buffer, byteOffset, staging, 0, copyBytes);
  encoder.clearBuffer(staging, markerOffset, 4);
  return {
    result: async () => {
      await mapForReading(device, staging, what);
      try {
        const mapped = staging.getMappedRange();
        const marker = new Uint32Array(mapped)[markerOffset / 4];
        if (marker !== 0) {
          throw new LatticeMatmulError(
            `${what}: WebGPU rejected the submission that copies it, so no command in it ran (a buffer it uses was ` +
              'destroyed before the submit, lacks a usage flag, or a command was invalid); its WebGPU validation ' +
              'error names the cause',
          );
        }
        return mapped.slice(0, byteLength);
      } finally {
        staging.unmap();
      }
    },
    destroy: () => staging.destroy(),
  };
}

/**
 * Copies `byteLength` bytes of `buffer` (from `byteOffset`) to the CPU. The buffer needs `COPY_SRC`
 * usage; the copy goes through a temporary `MAP_READ` buffer that is destroyed afterwards. Work
 * submitted earlier is finished first (the queue runs in order). It never resolves with bytes the
 * GPU did not copy: a rejected copy (e.g. `buffer` was destroyed) rejects with a
 * `LatticeMatmulError`, a lost device with a `GpuDeviceLostError`.
 *
 * Lock-free: inside a `withValidation` section call this one; outside any section prefer
 * `readBufferExclusive`, whose validation error cannot land in another call's error scope.
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
  checkBufferUsable(buffer, BufferUsage.COPY_SRC, 'readBuffer: buffer');
  check(
    Number.isSafeInteger(byteLength) && byteLength >= 0 && Number.isSafeInteger(byteOffset) && byteOffset >= 0 && byteOffset + byteLength <= buffer.size,
    () => `${buffer.label}: cannot read ${describeValue(byteLength)} bytes at offset ${describeValue(byteOffset)} from a ${buffer.size}-byte buffer`,
  );
  if (byteLength === 0) return new ArrayBuffer(0);
  const encoder = device.createCommandEncoder({ label: `${buffer.label} (readback copy)` });
  const readback = recordReadback(device, encoder, buffer, byteLength, byteOffset);
  try {
    device.queue.submit([encoder.finish()]);
    return await readback.result();
  } finally {
    readback.destroy();
  }
}

/**
 * `readBuffer` in its own exclusive section (`withValidation`): for reads outside any section, e.g.
 * a result an application reads after the engine wrote it. Do not call it inside a section.
 *
 * @example
 * const y = new Float32Array(await readBufferExclusive(device, yBuffer, 4 * cols));
 */
export async function readBufferExclusive(device: GPUDevice, buffer: GPUBuffer, byteLength: number, byteOffset = 0): Promise<ArrayBuffer> {
  // Before the section's name reads buffer.label (a refusal rejects, as every failure of this call does).
  checkBufferUsable(buffer, BufferUsage.COPY_SRC, 'readBufferExclusive: buffer');
  return withValidation(device, `reading "${buffer.label}"`, () => readBuffer(device, buffer, byteLength, byteOffset));
}

/**
 * Marker words for `count` submissions: `mark(encoder, i)` as the last command of submission `i`,
 * then `verify()` after the last one. A rejected submission runs none of its commands, so its word
 * keeps the non-zero value written at creation (see the top of this file).
 *
 * @example
 * const checks = new SubmissionChecks(device, 'timing', samples);
 * try {
 *   for (let i = 0; i < samples; i++) { record(encoder); checks.mark(encoder, i); device.queue.submit([encoder.finish()]); }
 *   await checks.verify();
 * } finally { checks.destroy(); }
 */
export class SubmissionChecks {
  private readonly markers: GPUBuffer;

  constructor(
    private readonly device: GPUDevice,
    private readonly label: string,
    private readonly count = 1,
  ) {
    check(Number.isInteger(count) && count >= 1, () => `SubmissionChecks count must be a positive integer, got ${describeValue(count)}`);
    this.markers = device.createBuffer({
      label: `${label} (submission check)`,
      size: 4 * count,
      usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST,
      mappedAtCreation: true,
    });
    new Uint32Array(this.markers.getMappedRange()).fill(MARKER_PENDING);
    this.markers.unmap();
  }

  /** Records the marker of submission `index`; record it after everything else in the encoder. */
  mark(encoder: GPUCommandEncoder, index = 0): void {
    check(Number.isInteger(index) && index >= 0 && index < this.count, () => `submission index ${index} is not in [0, ${this.count})`);
    encoder.clearBuffer(this.markers, 4 * index, 4);
  }

  /**
   * Resolves once every marked submission has finished; rejects with a `LatticeMatmulError` naming
   * the first one WebGPU rejected (or one never marked), or a `GpuDeviceLostError`.
   */
  async verify(): Promise<void> {
    const what = `${this.label} (submission check)`;
    await mapForReading(this.device, this.markers, what);
    let rejected: number;
    try {
      rejected = new Uint32Array(this.markers.getMappedRange()).findIndex((word) => word !== 0);
    } finally {
      this.markers.unmap();
    }
    if (rejected >= 0) {
      throw new LatticeMatmulError(
        `${this.label}: WebGPU rejected submission ${rejected + 1} of ${this.count}, so none of its commands ran ` +
          '(a buffer it uses was destroyed before the submit, lacks a usage flag, or a command was invalid); its ' +
          'WebGPU validation error names the cause',
      );
    }
  }

  destroy(): void {
    this.markers.destroy();
  }
}

/**
 * Finishes `encoder` with a submission check, submits it and resolves once the GPU has run it:
 * the replacement for `submit` + `onSubmittedWorkDone()`, which resolves also when WebGPU rejected
 * the submission or the device was lost. A lock-free primitive (use it inside a section).
 *
 * @throws LatticeMatmulError naming `what` when the submission was rejected; GpuDeviceLostError when
 *   the device was lost.
 * @example
 * await withValidation(device, 'GpuEngine.matmulAT', async () => {
 *   const encoder = device.createCommandEncoder({ label: 'GpuEngine.matmulAT' });
 *   engine.recordMatmulAT(encoder, scratch, a, b, output);
 *   await submitAndConfirm(device, encoder, 'GpuEngine.matmulAT');
 * });
 */
export async function submitAndConfirm(device: GPUDevice, encoder: GPUCommandEncoder, what: string): Promise<void> {
  throwIfDeviceLost(device, what);
  const checks = new SubmissionChecks(device, what);
  try {
    checks.mark(encoder);
    device.queue.submit([encoder.finish()]);
    await checks.verify();
  } finally {
    checks.destroy();
  }
}

/** `mapAsync(READ)` whose rejection becomes a `LatticeMatmulError` (or the device's loss) naming `what`. */
async function mapForReading(device: GPUDevice, buffer: GPUBuffer, what: string): Promise<void> {
  try {
    await buffer.mapAsync(MAP_MODE_READ);
  } catch (error) {
    throw await gpuFailure(device, `${what}: mapAsync`, error);
  }
}
