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
});
