import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { forEachInOrder } from '../../src/cli/commands.js';

/*
 * The CLI's ordered pipeline (quantize: workers quantize tensors, the container writer takes them in
 * order): every result consumed once, in item order; never more than `limit` calls of work pending,
 * nor more than `window` results started and not yet consumed; the first failure thrown once the
 * pending work has settled, nothing consumed from it on.
 */

/** Resolves after `ticks` turns of the microtask queue: a delay that fast-check can vary cheaply. */
async function ticks(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await Promise.resolve();
}

describe('forEachInOrder', () => {
  it('consumes every result in order, within its limit and window (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.nat(20), { minLength: 0, maxLength: 30 }),
        fc.array(fc.nat(20), { minLength: 30, maxLength: 30 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 8 }),
        async (workTicks, consumeTicks, limit, window) => {
          let pending = 0;
          let mostPending = 0;
          let started = 0;
          let mostAhead = 0;
          const consumed: number[] = [];
          await forEachInOrder(
            workTicks,
            limit,
            window,
            async (delay, index) => {
              started++;
              pending++;
              mostPending = Math.max(mostPending, pending);
              mostAhead = Math.max(mostAhead, started - consumed.length);
              await ticks(delay);
              pending--;
              return index * 10;
            },
            async (result, index) => {
              await ticks(consumeTicks[index] ?? 0);
              expect(result).toBe(index * 10);
              consumed.push(index);
            },
          );
          expect(consumed).toEqual(workTicks.map((_, i) => i));
          expect(started).toBe(workTicks.length);
          expect(mostPending).toBeLessThanOrEqual(limit);
          expect(mostAhead).toBeLessThanOrEqual(window);
        },
      ),
      { seed: 20261202, numRuns: 300 },
    );
  });

  it('throws the first failure of work or of consume once the pending work has settled, consuming nothing from it on', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.nat(10), { minLength: 1, maxLength: 20 }),
        fc.nat(19),
        fc.boolean(),
        fc.integer({ min: 1, max: 4 }),
        async (workTicks, at, inConsume, limit) => {
          const failing = at % workTicks.length;
          const consumed: number[] = [];
          let started = 0;
          let pending = 0;
          const refusal = forEachInOrder(
            workTicks,
            limit,
            2 * limit,
            async (delay, index) => {
              started++;
              pending++;
              await ticks(delay);
              pending--;
              if (!inConsume && index === failing) throw new Error(`work ${index}`);
              return index;
            },
            async (index) => {
              if (inConsume && index === failing) throw new Error(`consume ${index}`);
              consumed.push(index);
            },
          );
          await expect(refusal).rejects.toThrow(`${inConsume ? 'consume' : 'work'} ${failing}`);
          expect(pending).toBe(0);
          // A prefix of the items before the failing one (the failure may be seen before they finish).
          expect(consumed).toEqual(Array.from({ length: consumed.length }, (_, i) => i));
          expect(consumed.length).toBeLessThanOrEqual(failing);
          // Nothing starts once it has thrown.
          const startedThen = started;
          await ticks(50);
          expect(started).toBe(startedThen);
        },
      ),
      { seed: 20261203, numRuns: 300 },
    );
  });

  it('aborts the signal of every pending call at the first failure, so that they stop early', async () => {
    const signals: AbortSignal[] = [];
    const refusal = forEachInOrder(
      [0, 1, 2, 3],
      4,
      4,
      async (item, _, signal) => {
        signals.push(signal);
        if (item === 2) {
          await ticks(3);
          throw new Error('tensor 2 refused');
        }
        // A long quantization that only its signal ends (before: it ran to its end first).
        await new Promise<void>((_, reject) => signal.addEventListener('abort', () => reject(new Error('stopped')), { once: true }));
        return item;
      },
      async () => {},
    );
    await expect(refusal).rejects.toThrow('tensor 2 refused');
    expect(signals).toHaveLength(4);
    expect(signals.every((signal) => signal.aborted)).toBe(true);
  });

  it.each([
    [0, 1, /forEachInOrder limit must be a positive integer, got 0/],
    [1, 0, /forEachInOrder window must be a positive integer, got 0/],
    [Number.NaN, 2, /forEachInOrder limit must be a positive integer, got NaN/],
    [2, 1.5, /forEachInOrder window must be a positive integer, got 1\.5/],
  ])('refuses limit %s and window %s (they would never settle)', async (limit, window, message) => {
    await expect(forEachInOrder([1, 2], limit, window, async (x) => x, async () => {})).rejects.toThrow(message);
  });
});
