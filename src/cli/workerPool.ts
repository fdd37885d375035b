import { Worker } from 'node:worker_threads';
import { abortedError, LatticeMatmulError } from '../errors.js';
import { throwIfAborted } from '../quantize/options.js';
import type { QuantizedMatrix } from '../quantize/quantizedMatrix.js';
import type { QuantizeJob, QuantizeWorkerMessage } from './quantizeWorker.js';

/*
 * A pool of CPU quantizer threads for the CLI: jobs (one matrix each) go to idle workers; a matrix's
 * columns are quantized by one worker (its dither keys are per column of the whole matrix), so a model
 * with many tensors keeps every worker busy.
 */

/**
 * A worker running the module next to this one: quantizeWorker.js when built; under tsx (the sources
 * themselves, in tests) a small bootstrap registers tsx in the worker before importing the .ts module,
 * since loader flags do not reach worker threads.
 */
export function startQuantizerThread(): Worker {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL('./quantizeWorker.js', here));
  const module = new URL('./quantizeWorker.ts', here).href;
  return new Worker(`import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(module)}); });`, { eval: true });
}

/**
 * A job lost with its thread (the thread failed or exited), as opposed to the quantizer's own refusal
 * of the matrix: what the CLI reports is the thread's failure, and for running out of memory, what to do.
 */
export class QuantizerThreadError extends LatticeMatmulError {}

/** The thread's failure as a QuantizerThreadError (Node's ERR_WORKER_OUT_OF_MEMORY printed its stack trace). */
function threadError(error: Error): QuantizerThreadError {
  if ((error as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY') {
    return new QuantizerThreadError(`a quantizer thread ran out of memory (${error.message}); try fewer --workers`, { cause: error });
  }
  return new QuantizerThreadError(`a quantizer thread failed: ${error.message}`, { cause: error });
}

interface Pending {
  readonly job: QuantizeJob;
  readonly onProgress: (done: number) => void;
  readonly resolve: (matrix: QuantizedMatrix) => void;
  readonly reject: (error: Error) => void;
}

/** Worker threads quantizing matrices on the CPU. `close()` when done. */
export class QuantizeWorkerPool {
  private readonly idle: Worker[] = [];
  private readonly queue: Pending[] = [];
  private readonly running = new Map<number, { worker: Worker; pending: Pending }>();
  private readonly workers: Worker[] = [];
  private nextId = 1;
  private closed = false;

  /** Number of worker threads. */
  readonly size: number;

  /** `size` threads, each made by `startThread` (tests pass a thread that fails). */
  constructor(
    size: number,
    private readonly startThread: () => Worker = startQuantizerThread,
  ) {
    this.size = Math.max(1, size);
    for (let i = 0; i < this.size; i++) this.idle.push(this.start());
  }

  private start(): Worker {
    const worker = this.startThread();
    worker.on('message', (message: QuantizeWorkerMessage) => this.onMessage(worker, message));
    // A thread that fails (an uncaught exception, ERR_WORKER_OUT_OF_MEMORY) or exits on its own takes
    // only its own job down; the others go on and a later job gets a new thread.
    worker.on('error', (error) => this.lose(worker, threadError(error)));
    worker.on('exit', (code) => this.lose(worker, new QuantizerThreadError(`a quantizer thread stopped (exit code ${code})`)));
    worker.unref();
    this.workers.push(worker);
    return worker;
  }

  /** Drops a failed thread: its job (if any) rejects with `error`, the queue goes on. */
  private lose(worker: Worker, error: Error): void {
    const at = this.workers.indexOf(worker);
    if (at < 0) return; // terminated by the pool (an abort), or already dropped (an 'error' then its 'exit')
    this.workers.splice(at, 1);
    const idleAt = this.idle.indexOf(worker);
    if (idleAt >= 0) this.idle.splice(idleAt, 1);
    for (const [id, entry] of this.running) {
      if (entry.worker !== worker) continue;
      this.running.delete(id);
      entry.pending.reject(error);
    }
    void worker.terminate();
    if (!this.closed) this.schedule();
  }

  /**
   * Quantizes a matrix in a worker (its data buffer is transferred, so the caller must not reuse it).
   * `signal` aborts the job: a queued one is dropped, a running one's worker is terminated (a worker
   * runs the synchronous `quantize` and reads no message until it returns), to be replaced when a
   * later job needs it.
   */
  run(job: Omit<QuantizeJob, 'id'>, onProgress: (done: number) => void, signal?: AbortSignal): Promise<QuantizedMatrix> {
    if (this.closed) return Promise.reject(new LatticeMatmulError('the worker pool was closed'));
    return new Promise((resolve, reject) => {
      throwIfAborted(signal ?? null, 'quantize');
      const onAbort = (): void => this.cancel(pending, abortedError(signal as AbortSignal, 'quantize'));
      const settle = (): void => signal?.removeEventListener('abort', onAbort);
      const pending: Pending = {
        job: { ...job, id: this.nextId++ },
        onProgress,
        resolve: (matrix) => {
          settle();
          resolve(matrix);
        },
        reject: (error) => {
          settle();
          reject(error);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(pending);
      this.schedule();
    });
  }

  /** Rejects a job with `error`: out of the queue, or by terminating its worker. */
  private cancel(pending: Pending, error: Error): void {
    const queued = this.queue.indexOf(pending);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
    } else {
      const entry = this.running.get(pending.job.id);
      if (entry === undefined) return; // already settled
      this.running.delete(pending.job.id);
      this.workers.splice(this.workers.indexOf(entry.worker), 1);
      void entry.worker.terminate();
    }
    pending.reject(error);
    this.schedule();
  }

  private schedule(): void {
    while (this.queue.length > 0 && (this.idle.length > 0 || this.workers.length < this.size)) {
      // A worker terminated by an abort is replaced only now, when there is work for it.
      const worker = this.idle.pop() ?? this.start();
      const pending = this.queue.shift() as Pending;
      worker.ref();
      this.running.set(pending.job.id, { worker, pending });
      worker.postMessage(pending.job, [pending.job.data.buffer as ArrayBuffer]);
    }
  }

  private onMessage(worker: Worker, message: QuantizeWorkerMessage): void {
    const entry = this.running.get(message.id);
    if (entry === undefined) return;
    if (message.kind === 'progress') {
      entry.pending.onProgress(message.done);
      return;
    }
    this.running.delete(message.id);
    worker.unref();
    this.idle.push(worker);
    if (message.kind === 'result') entry.pending.resolve(message.matrix);
    else entry.pending.reject(message.refusal ? new LatticeMatmulError(message.message) : new Error(message.message));
    this.schedule();
  }

  /** Stops the workers; pending jobs reject. */
  async close(): Promise<void> {
    this.closed = true;
    const error = new LatticeMatmulError('the worker pool was closed');
    for (const { pending } of this.running.values()) pending.reject(error);
    for (const pending of this.queue.splice(0)) pending.reject(error);
    this.running.clear();
    const workers = this.workers.splice(0);
    this.idle.length = 0;
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
}
