import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { QuantizerThreadError, QuantizeWorkerPool, startQuantizerThread } from '../../src/cli/workerPool.js';
import { quantize } from '../../src/quantize/quantize.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/*
 * The CLI's pool of quantizer threads when a thread fails: only the job on that thread rejects, the
 * others finish with the in-process quantizer's result, and later jobs get a new thread. Before, one
 * thread's 'error' rejected every running and queued job (those on healthy threads too) and left the
 * pool with no idle thread and a full count, so the next job never started.
 */

/** A thread that dies of an uncaught exception on its first job, as a worker does on ERR_WORKER_OUT_OF_MEMORY. */
function crashingThread(): Worker {
  return new Worker("require('node:worker_threads').parentPort.on('message', () => { throw new Error('thread crashed'); });", { eval: true });
}

/** A thread whose heap is capped at 4 MB and that fills it on its first job: Node's ERR_WORKER_OUT_OF_MEMORY. */
function outOfMemoryThread(): Worker {
  return new Worker("const kept = []; require('node:worker_threads').parentPort.on('message', () => { for (;;) kept.push(new Array(1e5).fill(kept.length)); });", {
    eval: true,
    resourceLimits: { maxOldGenerationSizeMb: 4, maxYoungGenerationSizeMb: 1 },
  });
}

/** A thread that exits on its own (code 3) on its first job. */
function exitingThread(): Worker {
  return new Worker("require('node:worker_threads').parentPort.on('message', () => process.exit(3));", { eval: true });
}

describe('QuantizeWorkerPool', () => {
  for (const [how, failing, message] of [
    ['an uncaught exception', crashingThread, /^a quantizer thread failed: thread crashed$/],
    ['running out of memory', outOfMemoryThread, /^a quantizer thread ran out of memory \(.*\); try fewer --workers$/],
    ['an exit of its own', exitingThread, /^a quantizer thread stopped \(exit code 3\)$/],
  ] as const) {
    it(`a thread lost to ${how} takes only its own job down; the pool goes on with a new thread`, { timeout: 60_000 }, async () => {
      let started = 0;
      // The pool takes idle threads from the end: the first job goes to thread 1, the second to thread 0.
      const pool = new QuantizeWorkerPool(2, () => (started++ === 0 ? failing() : startQuantizerThread()));
      try {
        const options = { scheme: 'd3-q6', seed: 3, nonce: 5 } as const;
        const inputs = [1, 2, 3, 4].map((seed) => gaussianMatrix(48, 6, seed));
        const run = (i: number) => {
          const m = inputs[i] as (typeof inputs)[number];
          return pool.run({ rows: m.rows, cols: m.cols, data: m.data.slice(), options }, () => undefined);
        };
        const settled = await Promise.allSettled([run(0), run(1), run(2)]);
        expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
        expect((settled[1] as PromiseRejectedResult).reason.message).toMatch(message);
        expect((settled[1] as PromiseRejectedResult).reason).toBeInstanceOf(QuantizerThreadError);
        // A later job runs too (before: it never started).
        const later = await run(3);
        for (const [i, result] of [[0, settled[0]], [2, settled[2]]] as const) {
          expect((result as PromiseFulfilledResult<unknown>).value).toEqual(quantize(inputs[i] as (typeof inputs)[number], options));
        }
        expect(later).toEqual(quantize(inputs[3] as (typeof inputs)[number], options));
        expect(started).toBe(3);
      } finally {
        await pool.close();
      }
    });
  }

  it('an abort stops a running job by terminating its thread, drops a queued one unseen, and the pool goes on', { timeout: 60_000 }, async () => {
    const threads: Worker[] = [];
    const pool = new QuantizeWorkerPool(1, () => {
      const thread = startQuantizerThread();
      threads.push(thread);
      return thread;
    });
    try {
      const options = { scheme: 'e8-4bit', seed: 2, nonce: 9 } as const;
      // 2048 columns of 1024: seconds of work, aborted at its first progress report (16 columns in).
      const long = gaussianMatrix(1024, 2048, 7);
      const running = new AbortController();
      const queued = new AbortController();
      let firstProgress: () => void = () => undefined;
      const started = new Promise<void>((resolve) => (firstProgress = resolve));
      const longJob = pool.run({ rows: long.rows, cols: long.cols, data: long.data, options }, () => firstProgress(), running.signal);
      const small = gaussianMatrix(48, 6, 8);
      const queuedProgress: number[] = [];
      const queuedJob = pool.run({ rows: small.rows, cols: small.cols, data: small.data.slice(), options }, (done) => queuedProgress.push(done), queued.signal);
      await started;
      queued.abort('changed my mind');
      running.abort('interrupted');
      await expect(queuedJob).rejects.toThrow(/^quantize was aborted: changed my mind$/);
      await expect(longJob).rejects.toThrow(/^quantize was aborted: interrupted$/);
      // The long job's thread is terminated, not left quantizing the 2000 columns still to go.
      const exited = await Promise.race([once(threads[0] as Worker, 'exit').then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 10_000).unref())]);
      expect(exited).toBe(true);
      // A job whose signal is already aborted is refused without a thread.
      const aborted = AbortSignal.abort('before it started');
      await expect(pool.run({ rows: small.rows, cols: small.cols, data: small.data.slice(), options }, () => undefined, aborted)).rejects.toThrow(/^quantize was aborted: before it started$/);
      expect(threads).toHaveLength(1);
      // The next job gets a new thread and the in-process quantizer's result; the dropped one never ran.
      const later = await pool.run({ rows: small.rows, cols: small.cols, data: small.data.slice(), options }, () => undefined);
      expect(later).toEqual(quantize(small, options));
      expect(threads).toHaveLength(2);
      expect(queuedProgress).toEqual([]);
    } finally {
      await pool.close();
    }
  });

  it('a thread terminated by an abort is dropped alone: close() still stops every other thread', { timeout: 60_000 }, async () => {
    const exited = new Set<Worker>();
    const threads: Worker[] = [];
    const pool = new QuantizeWorkerPool(2, () => {
      const thread = startQuantizerThread();
      thread.once('exit', () => exited.add(thread));
      threads.push(thread);
      return thread;
    });
    /** Whether `done()` holds within `ms` (polled). */
    const within = async (ms: number, done: () => boolean): Promise<boolean> => {
      for (const end = Date.now() + ms; !done() && Date.now() < end; ) await new Promise((resolve) => setTimeout(resolve, 20));
      return done();
    };
    try {
      const options = { scheme: 'e8-4bit', seed: 2, nonce: 9 } as const;
      const long = gaussianMatrix(1024, 2048, 7);
      const small = gaussianMatrix(48, 6, 8);
      const controller = new AbortController();
      let firstProgress: () => void = () => undefined;
      const started = new Promise<void>((resolve) => (firstProgress = resolve));
      const longJob = pool.run({ rows: long.rows, cols: long.cols, data: long.data, options }, () => firstProgress(), controller.signal);
      const smallJob = pool.run({ rows: small.rows, cols: small.cols, data: small.data.slice(), options }, () => undefined);
      await started;
      controller.abort('interrupted');
      await expect(longJob).rejects.toThrow(/was aborted/);
      expect(await smallJob).toEqual(quantize(small, options));
      // The aborted job's thread exits; its exit must not drop the other, healthy thread from the pool.
      expect(await within(10_000, () => exited.size === 1)).toBe(true);
    } finally {
      await pool.close();
    }
    expect(threads).toHaveLength(2);
    expect(await within(10_000, () => exited.size === 2)).toBe(true);
  });
});
