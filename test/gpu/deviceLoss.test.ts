import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { matmulATExact, type Matrix } from '../../src/matrix.js';
import {
  createBuffer,
  createBufferWithData,
  readBuffer,
  readBufferExclusive,
  recordReadback,
  STORAGE_USAGE,
  submitAndConfirm,
} from '../../src/gpu/buffers.js';
import { GpuDeviceLostError, gpuFailure, isDeviceLost, withValidation } from '../../src/gpu/errorScopes.js';
import { dispatchMatmulF32, matmulF32 } from '../../src/gpu/kernels/matmulF32.js';
import { requestNodeGpuDevice } from '../../src/gpu/nodeGpu.js';
import { runAndRead } from '../../src/gpu/runAndRead.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { timeGpuWork } from '../../src/gpu/timing.js';
import { gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * The device-loss policy (src/gpu/errorScopes.ts): once `device.lost` resolves, every pending call
 * of this library on the device and every later one rejects with a GpuDeviceLostError (a
 * LatticeMatmulError) naming the reason and message of the loss, never an empty AbortError and never
 * a hang; a new device works normally. `npx vitest run test/gpu/deviceLoss.test.ts` prints the counts
 * that docs/RELIABILITY.md quotes.
 */

const noGpu = await gpuUnavailableReason();

/** A pending call that has not settled after this long counts as a hang. */
const HANG_MS = 20_000;

/** Resolves to how `promise` settled, or 'hung'. */
async function settleWithin(promise: Promise<unknown>, ms = HANG_MS): Promise<{ value: unknown } | { error: unknown } | 'hung'> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<'hung'>((resolve) => {
    timer = setTimeout(() => resolve('hung'), ms);
  });
  try {
    return await Promise.race([promise.then((value) => ({ value }), (error: unknown) => ({ error })), hung]);
  } finally {
    clearTimeout(timer);
  }
}

/** A stand-in device whose loss the test controls: only what errorScopes.ts touches. */
function fakeDevice(label: string): { device: GPUDevice; lose: (info: GPUDeviceLostInfo) => void; scopes: () => number } {
  let lose: (info: GPUDeviceLostInfo) => void = () => undefined;
  const lost = new Promise<GPUDeviceLostInfo>((resolve) => {
    lose = resolve;
  });
  let depth = 0;
  const device = {
    label,
    lost,
    pushErrorScope: () => {
      depth++;
    },
    popErrorScope: async () => {
      depth--;
      return null;
    },
  } as unknown as GPUDevice;
  return { device, lose, scopes: () => depth };
}

const lostInfo = (reason: GPUDeviceLostReason, message: string): GPUDeviceLostInfo => ({ reason, message }) as GPUDeviceLostInfo;

function integerMatrix(rows: number, cols: number, offset: number): Matrix {
  return { rows, cols, data: Float32Array.from({ length: rows * cols }, (_, i) => ((i * 7 + offset) % 9) - 4) };
}

describe('device-loss policy (stand-in device)', () => {
  it('a loss rejects the running call, the queued ones and every later one, with the reason and message', async () => {
    const { device, lose } = fakeDevice('stand-in');
    let started = 0;
    // The first call's work never finishes (a GPU that hung); two more wait for their turn.
    const running = withValidation(device, 'hung call', () => {
      started++;
      return new Promise<never>(() => undefined);
    });
    const queued = [1, 2].map((i) =>
      withValidation(device, `queued call ${i}`, () => {
        started++;
        return i;
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(started).toBe(1);
    expect(isDeviceLost(device)).toBe(false);

    lose(lostInfo('unknown', 'the GPU stopped responding (test)'));
    const outcomes = await Promise.all([running, ...queued].map((call) => settleWithin(call, 2000)));
    for (const outcome of outcomes) {
      expect(outcome).not.toBe('hung');
      const error = (outcome as { error: unknown }).error;
      expect(error).toBeInstanceOf(GpuDeviceLostError);
      expect(error).toBeInstanceOf(LatticeMatmulError);
      expect((error as GpuDeviceLostError).reason).toBe('unknown');
      expect((error as GpuDeviceLostError).lostMessage).toBe('the GPU stopped responding (test)');
      expect(String(error)).toMatch(/the WebGPU device "stand-in" was lost \(reason: unknown\): the GPU stopped responding \(test\)/);
    }
    expect(started).toBe(1); // the queued work never ran
    expect(isDeviceLost(device)).toBe(true);
    await expect(withValidation(device, 'later call', () => 1)).rejects.toThrow(/later call: the WebGPU device "stand-in" was lost/);
  });

  it('an empty AbortError is reported as the loss when the loss follows within the grace period', async () => {
    const abort = new DOMException('', 'AbortError');
    const { device, lose } = fakeDevice('stand-in 2');
    // Dawn's own message ends with a period: the sentence that follows does not add a second one.
    setTimeout(() => lose(lostInfo('destroyed', 'Device was destroyed.')), 20);
    const explained = await gpuFailure(device, 'reading C: mapAsync', abort);
    expect(explained).toBeInstanceOf(GpuDeviceLostError);
    expect(explained.message).toMatch(/^reading C: mapAsync: the WebGPU device "stand-in 2" was lost \(reason: destroyed\): Device was destroyed\. Every call/);

    // Without a loss it stays a clear LatticeMatmulError that keeps the original error.
    const { device: alive } = fakeDevice('stand-in 3');
    const plain = await gpuFailure(alive, 'reading C: mapAsync', abort);
    expect(plain).not.toBeInstanceOf(GpuDeviceLostError);
    expect(plain.message).toBe('reading C: mapAsync failed: AbortError: (no message)');
    expect(plain.cause).toBe(abort);
  });

  it("the work's own AbortError inside a section becomes the loss", async () => {
    const { device, lose } = fakeDevice('stand-in 4');
    const call = withValidation(device, 'map in section', async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      throw new DOMException('', 'AbortError');
    });
    setTimeout(() => lose(lostInfo('destroyed', 'device was destroyed')), 30);
    await expect(call).rejects.toThrow(/map in section: the WebGPU device "stand-in 4" was lost \(reason: destroyed\)/);
  });
});

describe.skipIf(noGpu !== undefined)('device-loss policy (Dawn)', () => {
  /** One call of each entry point and of the lock-free primitives, on `device`. */
  function mixedCalls(device: GPUDevice, count: number, offset: number): { what: string; call: () => Promise<unknown> }[] {
    const calls: { what: string; call: () => Promise<unknown> }[] = [];
    for (let i = 0; i < count; i++) {
      const a = integerMatrix(8, 8, i + offset);
      switch (i % 6) {
        case 0:
          calls.push({ what: 'matmulF32', call: () => matmulF32(device, a, a) });
          break;
        case 1:
          calls.push({
            what: 'runAndRead',
            call: () =>
              runAndRead(device, 'loss AᵀB', 256, (run) => {
                const c = run.storage('loss C', 256);
                dispatchMatmulF32(device, run.encoder, run.scratch, { a: run.upload('loss A', a.data), b: run.upload('loss B', a.data), c, n: 8, aCols: 8, bCols: 8 });
                return c;
              }),
          });
          break;
        case 2:
          calls.push({
            what: 'readBufferExclusive',
            call: async () => {
              const buffer = createBufferWithData(device, 'loss read', a.data, STORAGE_USAGE);
              try {
                return await readBufferExclusive(device, buffer, 256);
              } finally {
                buffer.destroy();
              }
            },
          });
          break;
        case 3:
          calls.push({
            what: 'timeGpuWork',
            call: () =>
              timeGpuWork(device, (encoder) => encoder.clearBuffer(createBuffer(device, 'loss timed', 16, STORAGE_USAGE)), {
                timestampQuery: false,
                warmup: 0,
                samples: 2,
              }),
          });
          break;
        case 4:
          calls.push({
            what: 'withValidation + submitAndConfirm',
            call: () =>
              withValidation(device, 'loss confirm', async () => {
                const scratch = new GpuScratch(device);
                const buffer = createBufferWithData(device, 'loss operand', a.data, STORAGE_USAGE);
                const c = createBuffer(device, 'loss C', 256, STORAGE_USAGE);
                try {
                  const encoder = device.createCommandEncoder({ label: 'loss confirm' });
                  dispatchMatmulF32(device, encoder, scratch, { a: buffer, b: buffer, c, n: 8, aCols: 8, bCols: 8 });
                  await submitAndConfirm(device, encoder, 'loss confirm');
                } finally {
                  scratch.destroy();
                  buffer.destroy();
                  c.destroy();
                }
              }),
          });
          break;
        default:
          calls.push({
            what: 'readBuffer (lock-free, outside sections)',
            call: async () => {
              const buffer = createBufferWithData(device, 'loss lock-free read', a.data, STORAGE_USAGE);
              try {
                return await readBuffer(device, buffer, 256);
              } finally {
                buffer.destroy();
              }
            },
          });
      }
    }
    return calls;
  }

  const lostPattern = /the WebGPU device "loss test device" was lost \(reason: destroyed\): device was destroyed\. Every call on a lost device fails/;

  it('destroy() while calls are pending: every pending and every later call rejects with the loss, none hangs', async () => {
    const { device } = await requestNodeGpuDevice({ label: 'loss test device' });
    // Warm up the pipeline so pending calls are really in flight on the GPU.
    await matmulF32(device, integerMatrix(8, 8, 0), integerMatrix(8, 8, 1));

    // Each promise gets its handler at once (settleWithin), so no rejection is ever unhandled.
    const pending = mixedCalls(device, 60, 1).map(({ what, call }) => ({ what, promise: settleWithin(call()) }));
    device.destroy();
    // Before device.lost has resolved (it resolves asynchronously) …
    const immediatelyAfter = mixedCalls(device, 24, 2).map(({ what, call }) => ({ what, promise: settleWithin(call()) }));
    await device.lost;
    // … and after.
    expect(isDeviceLost(device)).toBe(true);
    const later = mixedCalls(device, 24, 3).map(({ what, call }) => ({ what, promise: settleWithin(call()) }));

    let rejectedWithLoss = 0;
    let resolved = 0;
    let hung = 0;
    const problems: string[] = [];
    for (const { what, promise } of [...pending, ...immediatelyAfter, ...later]) {
      const outcome = await promise;
      if (outcome === 'hung') {
        hung++;
        problems.push(`${what}: hung`);
      } else if ('value' in outcome) {
        resolved++;
        problems.push(`${what}: resolved after destroy()`);
      } else if (!(outcome.error instanceof GpuDeviceLostError) || !lostPattern.test(outcome.error.message)) {
        problems.push(`${what}: ${String(outcome.error)}`);
      } else rejectedWithLoss++;
    }
    const tried = pending.length + immediatelyAfter.length + later.length;
    console.log(
      `device destroyed with ${pending.length} calls pending, ${immediatelyAfter.length} started before device.lost resolved, ` +
        `${later.length} after: tried ${tried}, refused clearly (lost-device error) ${rejectedWithLoss}, ` +
        `resolved ${resolved}, hung ${hung}, other errors ${problems.length - resolved - hung}`,
    );
    expect(problems).toEqual([]);
    expect(rejectedWithLoss).toBe(tried);
  });

  it('destroy() part-way through a run: answers before the loss are right, everything after is refused', async () => {
    const { device } = await requestNodeGpuDevice({ label: 'loss test device' });
    const cases = Array.from({ length: 300 }, (_, i) => ({ a: integerMatrix(8, 8, 10 + i), b: integerMatrix(8, 8, 20 + i) }));
    let settledCount = 0;
    let destroyedAfter = -1;
    const outcomes = await Promise.all(
      cases.map(async ({ a, b }) => {
        const outcome = await settleWithin(matmulF32(device, a, b));
        settledCount++;
        if (settledCount === 100) {
          destroyedAfter = settledCount;
          device.destroy();
        }
        return outcome;
      }),
    );
    let answeredCorrectly = 0;
    let refusedClearly = 0;
    let silentWrong = 0;
    const problems: string[] = [];
    outcomes.forEach((outcome, i) => {
      const { a, b } = cases[i] as { a: Matrix; b: Matrix };
      if (outcome === 'hung') problems.push(`#${i} hung`);
      else if ('value' in outcome) {
        const got = (outcome.value as Matrix).data;
        const expected = matmulATExact(a, b).data;
        if (got.every((x, k) => x === expected[k])) answeredCorrectly++;
        else silentWrong++;
      } else if (outcome.error instanceof GpuDeviceLostError && lostPattern.test(outcome.error.message)) refusedClearly++;
      else problems.push(`#${i} ${String(outcome.error)}`);
    });
    console.log(
      `device destroyed after ${destroyedAfter} of ${cases.length} overlapping calls settled: tried ${cases.length}, ` +
        `refused clearly ${refusedClearly}, answered correctly ${answeredCorrectly}, silent wrong ${silentWrong}`,
    );
    expect(problems).toEqual([]);
    expect(silentWrong).toBe(0);
    // Sections run in call order, so the first 100 settled are answers and the rest are refusals.
    expect(answeredCorrectly).toBe(100);
    expect(refusedClearly).toBe(cases.length - 100);
  });

  it('a lost device leaves other devices alone, and a new device (and new work on it) runs normally', async () => {
    const first = await requestNodeGpuDevice({ label: 'loss test device' });
    const second = await requestNodeGpuDevice({ label: 'bystander device' });
    const a = integerMatrix(7, 5, 4);
    const b = integerMatrix(7, 3, 9);
    try {
      const onSecond = matmulF32(second.device, a, b); // pending on the other device while the first is lost
      first.device.destroy();
      await expect(matmulF32(first.device, a, b)).rejects.toThrow(GpuDeviceLostError);
      expect(Array.from((await onSecond).data)).toEqual(Array.from(matmulATExact(a, b).data));
      expect(isDeviceLost(first.device)).toBe(true);
      expect(isDeviceLost(second.device)).toBe(false);

      // Lock-free primitives on the lost device also refuse with the loss.
      const encoder = first.device.createCommandEncoder();
      const buffer = createBufferWithData(first.device, 'after loss', a.data, STORAGE_USAGE);
      expect(() => recordReadback(first.device, encoder, buffer, 4)).toThrow(GpuDeviceLostError);
      await expect(readBuffer(first.device, buffer, 4)).rejects.toThrow(lostPattern);
      await expect(submitAndConfirm(first.device, encoder, 'after loss')).rejects.toThrow(lostPattern);

      const fresh = await requestNodeGpuDevice({ label: 'replacement device' });
      try {
        expect(isDeviceLost(fresh.device)).toBe(false);
        const got = await Promise.all([matmulF32(fresh.device, a, b), matmulF32(fresh.device, b, a)]);
        expect(Array.from(got[0].data)).toEqual(Array.from(matmulATExact(a, b).data));
        expect(Array.from(got[1].data)).toEqual(Array.from(matmulATExact(b, a).data));
      } finally {
        fresh.device.destroy();
      }
    } finally {
      second.device.destroy();
    }
  });
});
