import type { GpuFailure, GpuStatus, RunRequest, RunResult, Stage, WorkerMessage, WorkerRequest } from './runProtocol.js';

/** Thrown (as a rejection) by `RunClient.run` when the run was cancelled. */
export class RunCancelled extends Error {
  override readonly name = 'RunCancelled';
  constructor() {
    super('The run was cancelled.');
  }
}

/** Thrown (as a rejection) by `RunClient.run` when the worker reports a failed run. */
export class RunFailed extends Error {
  override readonly name = 'RunFailed';
  constructor(
    message: string,
    /** Set when the GPU itself failed (its device was lost, or no new one could start). */
    readonly gpu: GpuFailure | null,
  ) {
    super(message);
  }
}

interface PendingRun {
  readonly id: number;
  readonly resolve: (result: RunResult) => void;
  readonly reject: (error: Error) => void;
  readonly onStage: (stage: Stage) => void;
}

/**
 * The page's side of the run worker: one run at a time, progress by stage, and cancellation that
 * terminates the worker (a synchronous CPU loop or queued GPU work cannot be interrupted any other way).
 * A new worker starts on the next request.
 */
export class RunClient {
  private worker: Worker | null = null;
  private nextId = 1;
  private pending: PendingRun | null = null;
  private statusWaiters: Array<(status: GpuStatus) => void> = [];

  /** Runs one request; rejects with `RunCancelled` when `cancel()` is called meanwhile. */
  run(request: RunRequest, onStage: (stage: Stage) => void): Promise<RunResult> {
    if (this.pending) return Promise.reject(new Error('A run is already in progress.'));
    const id = this.nextId++;
    return new Promise<RunResult>((resolve, reject) => {
      this.pending = { id, resolve, reject, onStage };
      this.send({ type: 'run', id, request });
    });
  }

  /** Starts the worker's GPU engine (if not yet) and reports its adapter and table layout, or why not. */
  gpuStatus(): Promise<GpuStatus> {
    return new Promise<GpuStatus>((resolve) => {
      this.statusWaiters.push(resolve);
      this.send({ type: 'gpu-status' });
    });
  }

  get running(): boolean {
    return this.pending !== null;
  }

  /** Stops the current run at once (terminates the worker). */
  cancel(): void {
    const pending = this.pending;
    const waiters = this.statusWaiters;
    this.stopWorker();
    pending?.reject(new RunCancelled());
    // A status request that was waiting goes to the fresh worker instead of being lost.
    if (waiters.length > 0) {
      this.statusWaiters = waiters;
      this.send({ type: 'gpu-status' });
    }
  }

  private send(message: WorkerRequest): void {
    this.ensureWorker().postMessage(message);
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    // Vite bundles the worker from this exact `new Worker(new URL(…), …)` form.
    const worker = new Worker(new URL('./runWorker.ts', import.meta.url), { type: 'module', name: 'lattice-matmul run' });
    worker.addEventListener('message', (event: MessageEvent<WorkerMessage>) => this.receive(event.data));
    worker.addEventListener('error', (event: ErrorEvent) => {
      event.preventDefault();
      this.fail(`The run worker failed: ${event.message || 'it could not start'}`);
    });
    this.worker = worker;
    return worker;
  }

  private receive(message: WorkerMessage): void {
    if (message.type === 'gpu-status') {
      const waiters = this.statusWaiters;
      this.statusWaiters = [];
      for (const resolve of waiters) resolve(message.status);
      return;
    }
    const pending = this.pending;
    if (!pending || pending.id !== message.id) return;
    if (message.type === 'progress') {
      pending.onStage(message.stage);
    } else if (message.type === 'result') {
      this.pending = null;
      pending.resolve(message.result);
    } else {
      this.pending = null;
      pending.reject(new RunFailed(message.message, message.gpu ?? null));
    }
  }

  /** The worker died: fail the run and the status requests, start afresh next time. */
  private fail(reason: string): void {
    const pending = this.pending;
    const waiters = this.statusWaiters;
    this.stopWorker();
    pending?.reject(new Error(reason));
    for (const resolve of waiters) resolve({ available: false, reason });
  }

  private stopWorker(): void {
    this.worker?.terminate();
    this.worker = null;
    this.pending = null;
    this.statusWaiters = [];
  }
}
