import { check } from '../errors.js';
import { createBuffer, createBufferWithData, recordReadback, STORAGE_USAGE } from './buffers.js';
import { withValidation } from './errorScopes.js';
import { GpuScratch } from './scratch.js';

/*
 * The skeleton of the kernels' convenience functions (tests, benchmarks): create buffers, record into
 * one encoder, submit, read one buffer back, all inside one exclusive validation section
 * (`withValidation`), and destroy everything created whatever happens.
 *
 * The readback is recorded into the same encoder as the work, after it, so the submission check of
 * `recordReadback` confirms the work too: when WebGPU rejects the submission (an input buffer was
 * destroyed before the submit, a buffer lacks STORAGE usage, …) the call rejects instead of
 * returning the zeros of an untouched output buffer, even when some other code disturbed the error
 * scopes.
 */

/** What a `runAndRead` recording gets: the encoder, a scratch, and buffers that are destroyed afterwards. */
export interface OneShotRecording {
  readonly encoder: GPUCommandEncoder;
  /** Destroyed after the run (pass it to `dispatch…`). */
  readonly scratch: GpuScratch;
  /** A storage buffer holding a copy of `data`. */
  upload(label: string, data: ArrayBufferView): GPUBuffer;
  /** An empty storage buffer of `byteLength` bytes (WebGPU fills new buffers with zeros). */
  storage(label: string, byteLength: number): GPUBuffer;
  /** Destroys `resource` after the run (for objects that own GPU buffers). */
  own<T extends { destroy(): void }>(resource: T): T;
}

/** Labels of a one-shot run: the error scopes' name and the command encoder's label. */
export interface OneShotLabels {
  readonly scope: string;
  readonly encoder: string;
}

/**
 * Runs `record` (which creates its buffers through the recording and returns the buffer to read)
 * inside an exclusive validation section (`withValidation`), records the readback of `outputBytes`
 * bytes of the returned buffer into the same encoder, submits it once and returns the bytes.
 * Buffers, owned resources and the scratch are destroyed afterwards, also on error. `label` names
 * both the section and the encoder unless they are given apart.
 *
 * `record` runs inside the section: it must not call `runAndRead`, `withValidation` or another entry
 * point (see src/gpu/errorScopes.ts); such a call is refused with a `LatticeMatmulError`.
 *
 * @throws LatticeMatmulError when `record` throws one, when a WebGPU error scope caught an error, or
 *   when the submission was rejected; GpuDeviceLostError when the device is or gets lost.
 * @example
 * const c = new Float32Array(await runAndRead(device, 'matmul f32', 4 * a.cols * b.cols, (run) => {
 *   const cBuffer = run.storage('matmul C', 4 * a.cols * b.cols);
 *   dispatchMatmulF32(device, run.encoder, run.scratch, { a: run.upload('matmul A', a.data), b: run.upload('matmul B', b.data), c: cBuffer, n, aCols, bCols });
 *   return cBuffer;
 * }));
 */
export async function runAndRead(
  device: GPUDevice,
  label: string | OneShotLabels,
  outputBytes: number,
  record: (recording: OneShotRecording) => GPUBuffer,
): Promise<ArrayBuffer> {
  const labels = typeof label === 'string' ? { scope: label, encoder: label } : label;
  const scratch = new GpuScratch(device);
  const owned: { destroy(): void }[] = [];
  const own = <T extends { destroy(): void }>(resource: T): T => {
    owned.push(resource);
    return resource;
  };
  try {
    return await withValidation(device, labels.scope, async () => {
      const encoder = device.createCommandEncoder({ label: labels.encoder });
      const output = record({
        encoder,
        scratch,
        upload: (bufferLabel, data) => own(createBufferWithData(device, bufferLabel, data, STORAGE_USAGE)),
        storage: (bufferLabel, byteLength) => own(createBuffer(device, bufferLabel, byteLength, STORAGE_USAGE)),
        own,
      });
      check(
        typeof output === 'object' && output !== null && 'mapAsync' in output,
        () => `${labels.scope}: the recording must return the GPUBuffer to read, got ${output === null ? 'null' : typeof output}`,
      );
      const readback = own(recordReadback(device, encoder, output, outputBytes));
      device.queue.submit([encoder.finish()]);
      return readback.result();
    });
  } finally {
    scratch.destroy();
    for (const resource of owned) resource.destroy();
  }
}
