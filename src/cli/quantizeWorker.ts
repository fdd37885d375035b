import { parentPort } from 'node:worker_threads';
import { LatticeMatmulError } from '../errors.js';
import { quantize, type QuantizeOptions } from '../quantize/quantize.js';
import type { QuantizedMatrix } from '../quantize/quantizedMatrix.js';
import type { MatrixInput } from '../matrix.js';

/*
 * A CLI worker thread: quantizes one matrix per message with the CPU quantizer and posts it back, its
 * typed arrays transferred (not copied). Progress messages go out every few columns.
 */

/**
 * A job: a column-major matrix, f32 or the 16-bit data of an F16/BF16 tensor with its `format`, and the
 * quantize options (structured-clone safe: no callbacks).
 */
export interface QuantizeJob {
  readonly id: number;
  readonly rows: number;
  readonly cols: number;
  readonly data: Float32Array | Uint16Array;
  readonly format?: 'f16' | 'bf16';
  readonly options: Omit<QuantizeOptions, 'onProgress' | 'signal'>;
}

/** What a worker posts: progress, a result, or an error message. */
export type QuantizeWorkerMessage =
  | { readonly id: number; readonly kind: 'progress'; readonly done: number }
  | { readonly id: number; readonly kind: 'result'; readonly matrix: QuantizedMatrix }
  | { readonly id: number; readonly kind: 'error'; readonly message: string; readonly refusal: boolean };

/** The transferable buffers of a quantized matrix. */
function transferables(matrix: QuantizedMatrix): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const value of Object.values(matrix)) {
    if (ArrayBuffer.isView(value) && value.buffer instanceof ArrayBuffer) buffers.add(value.buffer);
  }
  return [...buffers];
}

parentPort?.on('message', (job: QuantizeJob) => {
  const port = parentPort;
  if (port === null) return;
  try {
    let lastReported = 0;
    const input: MatrixInput = job.data instanceof Float32Array ? { rows: job.rows, cols: job.cols, data: job.data } : { rows: job.rows, cols: job.cols, data: job.data, ...(job.format === undefined ? {} : { format: job.format }) };
    const matrix = quantize(
      input,
      {
        ...job.options,
        onProgress: (done) => {
          if (done - lastReported >= 16 || done === job.cols) {
            lastReported = done;
            port.postMessage({ id: job.id, kind: 'progress', done } satisfies QuantizeWorkerMessage);
          }
        },
      },
    );
    port.postMessage({ id: job.id, kind: 'result', matrix } satisfies QuantizeWorkerMessage, transferables(matrix));
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    // `refusal`: a LatticeMatmulError (or a subclass), which the pool rethrows as one.
    port.postMessage({ id: job.id, kind: 'error', message: e.message, refusal: e instanceof LatticeMatmulError } satisfies QuantizeWorkerMessage);
  }
});
