import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RunCancelled, RunClient, RunFailed } from '../../demo/runClient.js';
import type { RunRequest, RunResult, Stage, WorkerMessage, WorkerRequest } from '../../demo/runProtocol.js';

/*
 * The page's side of the run worker protocol (demo/runClient.ts), in Node with a stand-in Worker: a
 * result goes to the run that asked for it and to no other, a cancelled run rejects as cancelled and
 * its worker's late messages are ignored, a failure is never a result, and a GPU failure keeps its kind.
 */

class FakeWorker {
  static created: FakeWorker[] = [];
  readonly sent: WorkerRequest[] = [];
  terminated = false;
  private readonly listeners = new Map<string, Array<(event: unknown) => void>>();

  constructor() {
    FakeWorker.created.push(this);
  }

  addEventListener(type: string, listener: (event: unknown) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }

  postMessage(message: WorkerRequest): void {
    this.sent.push(message);
  }

  terminate(): void {
    this.terminated = true;
  }

  /** The worker posts `message` to the page. */
  reply(message: WorkerMessage): void {
    for (const listener of this.listeners.get('message') ?? []) listener({ data: message });
  }

  /** The worker throws (an uncaught error in its script, or it could not load); whether the page kept the error from the console. */
  crash(message: string): boolean {
    let prevented = false;
    for (const listener of this.listeners.get('error') ?? []) {
      listener({
        message,
        preventDefault: () => {
          prevented = true;
        },
      });
    }
    return prevented;
  }

  /** The id of the last run request sent to this worker. */
  lastRunId(): number {
    const runs = this.sent.filter((message) => message.type === 'run');
    const last = runs[runs.length - 1];
    if (!last) throw new Error('no run was sent');
    return last.id;
  }
}

const REQUEST = { scheme: 'e8-q16', n: 96, cols: 16 } as RunRequest;
/** A result told apart by its NMSE. */
const resultWith = (nmse: number): RunResult => ({ request: REQUEST, nmse }) as RunResult;

beforeEach(() => {
  FakeWorker.created = [];
  vi.stubGlobal('Worker', FakeWorker);
});

afterEach(() => {
  vi.unstubAllGlobals();
});

function only(): FakeWorker {
  expect(FakeWorker.created).toHaveLength(1);
  return FakeWorker.created[0] as FakeWorker;
}

describe('RunClient', () => {
  it('resolves a run with its own result only: a result or progress with another id is ignored', async () => {
    const client = new RunClient();
    const stages: Stage[] = [];
    const first = client.run(REQUEST, (stage) => stages.push(stage));
    const worker = only();
    const id = worker.lastRunId();
    worker.reply({ type: 'progress', id: id + 1, stage: 'product' });
    worker.reply({ type: 'progress', id, stage: 'generate' });
    worker.reply({ type: 'result', id: id - 1, result: resultWith(0.5) });
    expect(client.running).toBe(true);
    worker.reply({ type: 'result', id, result: resultWith(0.01) });
    expect((await first).nmse).toBe(0.01);
    expect(stages).toEqual(['generate']);
    expect(client.running).toBe(false);
    // The next run has a new id: the previous run's result, sent again, is not its result.
    const second = client.run(REQUEST, () => {});
    const nextId = worker.lastRunId();
    expect(nextId).not.toBe(id);
    worker.reply({ type: 'result', id, result: resultWith(0.01) });
    expect(client.running).toBe(true);
    worker.reply({ type: 'result', id: nextId, result: resultWith(0.02) });
    expect((await second).nmse).toBe(0.02);
  });

  it('refuses a second run while one is under way', async () => {
    const client = new RunClient();
    void client.run(REQUEST, () => {});
    await expect(client.run(REQUEST, () => {})).rejects.toThrow(/already in progress/);
    expect(only().sent.filter((message) => message.type === 'run')).toHaveLength(1);
  });

  it('rejects a cancelled run as cancelled, terminates its worker and ignores that worker’s late result', async () => {
    const client = new RunClient();
    const cancelled = client.run(REQUEST, () => {});
    const old = only();
    const oldId = old.lastRunId();
    client.cancel();
    await expect(cancelled).rejects.toBeInstanceOf(RunCancelled);
    expect(old.terminated).toBe(true);
    expect(client.running).toBe(false);
    // The next run starts a fresh worker; the cancelled run's result (a browser drops a terminated
    // worker's undelivered messages; the id is the guard besides) never becomes the next run's result.
    const next = client.run(REQUEST, () => {});
    expect(FakeWorker.created).toHaveLength(2);
    const fresh = FakeWorker.created[1] as FakeWorker;
    old.reply({ type: 'result', id: oldId, result: resultWith(0.9) });
    expect(client.running).toBe(true);
    fresh.reply({ type: 'result', id: fresh.lastRunId(), result: resultWith(0.03) });
    expect((await next).nmse).toBe(0.03);
  });

  it('rejects a failed run with the worker’s message and the GPU failure kind, never a result', async () => {
    const client = new RunClient();
    for (const gpu of ['lost', 'start', undefined] as const) {
      const run = client.run(REQUEST, () => {});
      const worker = only();
      worker.reply({ type: 'error', id: worker.lastRunId(), message: 'it broke', ...(gpu ? { gpu } : {}) });
      const error: unknown = await run.then(
        () => null,
        (reason: unknown) => reason,
      );
      expect(error).toBeInstanceOf(RunFailed);
      expect((error as RunFailed).message).toBe('it broke');
      expect((error as RunFailed).gpu).toBe(gpu ?? null);
    }
  });

  it('fails the run and the waiting status requests when the worker dies, and starts a new worker next time', async () => {
    const client = new RunClient();
    const run = client.run(REQUEST, () => {});
    const status = client.gpuStatus();
    const worker = only();
    expect(worker.crash('boom'), 'the error event handled').toBe(true);
    await expect(run).rejects.toThrow('The run worker failed: boom');
    await expect(status).resolves.toEqual({ available: false, reason: 'The run worker failed: boom' });
    expect(worker.terminated).toBe(true);
    const next = client.run(REQUEST, () => {});
    expect(FakeWorker.created).toHaveLength(2);
    // A worker script that could not load fires an error event without a message.
    (FakeWorker.created[1] as FakeWorker).crash('');
    await expect(next).rejects.toThrow('The run worker failed: it could not start');
  });

  it('sends a status request that was waiting when a run was cancelled to the fresh worker, and answers it from there', async () => {
    const client = new RunClient();
    void client.run(REQUEST, () => {}).catch(() => {});
    const status = client.gpuStatus();
    client.cancel();
    expect(FakeWorker.created).toHaveLength(2);
    const fresh = FakeWorker.created[1] as FakeWorker;
    expect(fresh.sent).toEqual([{ type: 'gpu-status' }]);
    fresh.reply({ type: 'gpu-status', status: { available: false, reason: 'none here' } });
    await expect(status).resolves.toEqual({ available: false, reason: 'none here' });
  });
});
