import { check, checkPositiveInteger, describeValue } from '../errors.js';
import { BufferUsage, readBuffer, SubmissionChecks } from './buffers.js';
import { insideSection, withValidation } from './errorScopes.js';

/*
 * Timing GPU work. With the `timestamp-query` feature the GPU itself stamps the time: an empty compute
 * pass with a beginning-of-pass timestamp is recorded before the work and one with an end-of-pass
 * timestamp after it, so any `dispatch…` function (which opens its own passes) can be timed without
 * changes. On Vulkan (Dawn) a pass timestamp is written once the commands before it have finished,
 * so the difference covers the recorded work; it also includes the pass boundaries (microseconds),
 * which is why `repeats` can record the work several times between the two stamps.
 *
 * Without the feature the time is wall clock from `queue.submit` to `onSubmittedWorkDone()`, which
 * adds the submission and the callback latency (tens of microseconds to milliseconds).
 *
 * Browsers and Dawn quantize timestamps by default (Chrome: 100 µs; Dawn in Node: 2^16 ns) against
 * timing attacks. In Node pass `TIMESTAMP_QUERY_DAWN_FLAGS` to `nodeGpu({ flags })` for full
 * resolution; a quantized clock shows up here as samples that are multiples of a large power of two.
 *
 * The whole measurement is one exclusive section (`withValidation`, src/gpu/errorScopes.ts), so no
 * other call of this library runs on the device meanwhile. Every submission ends with a submission
 * check (`SubmissionChecks`, after the end timestamp, so outside the timed region in
 * timestamp-query mode; one 4-byte clear inside it in wall-clock mode), so a rejected submission
 * fails the measurement even when some other code disturbed the error scopes.
 */

/** Dawn instance flags that turn off timestamp quantization (Node only; browsers keep it). */
export const TIMESTAMP_QUERY_DAWN_FLAGS: readonly string[] = ['disable-dawn-features=timestamp_quantization'];

/** How a duration was measured. */
export type TimingMethod = 'timestamp-query' | 'wall-clock';

/** The result of `timeGpuWork`. Times are per recording of the work, in milliseconds. */
export interface GpuTiming {
  readonly method: TimingMethod;
  /** Median over the samples: the figure to report. */
  readonly medianMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  /** Every sample, in the order taken (each is one submission, divided by `repeats`). */
  readonly samplesMs: readonly number[];
  /** Recordings of the work per sample. */
  readonly repeats: number;
}

/** Options of `timeGpuWork`. */
export interface TimeGpuWorkOptions {
  /** Use timestamp queries (default: when the device has `timestamp-query`). `true` without the feature is an error. */
  readonly timestampQuery?: boolean;
  /** Untimed submissions first (pipeline compilation, caches, clocks). Default 2. */
  readonly warmup?: number;
  /**
   * Keep submitting warm-ups until this many milliseconds have passed, at least (default 0). A GPU
   * lowers its clock within a second of idling (an H200 measured 1980 → 345 MHz while the host
   * prepared the next kernel's data) and raises it again only after a few hundred milliseconds of
   * work, so two warm-up calls of a microsecond kernel leave it timed at the idle clock.
   */
  readonly warmupMs?: number;
  /** Timed submissions; the median is reported. Default 7. */
  readonly samples?: number;
  /** Recordings of the work per submission (for work of a few microseconds). Default 1. */
  readonly repeats?: number;
  /** Label of the GPU objects the timer creates. */
  readonly label?: string;
  /**
   * Recorded before the timed region of every submission (warm-ups too) and not timed: e.g. a
   * `clearBuffer` of a buffer larger than the GPU's L2 cache, so each sample reads its inputs from
   * memory instead of from the cache the previous sample filled.
   */
  readonly prelude?: (encoder: GPUCommandEncoder) => void;
}

/**
 * Records `record(encoder)` into a command encoder, submits it and returns how long the GPU took,
 * median over several submissions after a warm-up. `record` may return a cleanup function (e.g.
 * `() => scratch.destroy()`), called after each submission. Every submission is awaited, so samples
 * do not overlap. Runs inside one exclusive validation section: invalid recorded work throws a
 * `LatticeMatmulError` instead of producing a time, and a lost device a `GpuDeviceLostError`.
 * `record` runs inside the section: it must only record (dispatch…), never call `timeGpuWork`,
 * `runAndRead` or another entry point (refused with a `LatticeMatmulError`).
 *
 * @example
 * const timing = await timeGpuWork(device, (encoder) => {
 *   const scratch = new GpuScratch(device);
 *   dispatchF32Gemv(device, encoder, scratch, { w, x, y, n, cols });
 *   return () => scratch.destroy();
 * });
 * console.log(`${timing.medianMs.toFixed(3)} ms (${timing.method})`);
 */
export function timeGpuWork(
  device: GPUDevice,
  record: (encoder: GPUCommandEncoder) => (() => void) | void,
  options: TimeGpuWorkOptions = {},
): Promise<GpuTiming> {
  return withValidation(device, `timing ${options.label ?? 'GPU work'}`, () => timeUnchecked(device, record, options));
}

async function timeUnchecked(
  device: GPUDevice,
  record: (encoder: GPUCommandEncoder) => (() => void) | void,
  options: TimeGpuWorkOptions,
): Promise<GpuTiming> {
  const hasTimestamps = device.features.has('timestamp-query');
  const useTimestamps = options.timestampQuery ?? hasTimestamps;
  check(!useTimestamps || hasTimestamps, 'timeGpuWork: timestampQuery requested but the device has no timestamp-query feature');
  const warmup = options.warmup ?? 2;
  const warmupMs = options.warmupMs ?? 0;
  check(Number.isFinite(warmupMs) && warmupMs >= 0, () => `timeGpuWork: warmupMs must be a non-negative number, got ${describeValue(warmupMs)}`);
  const samples = options.samples ?? 7;
  const repeats = options.repeats ?? 1;
  check(Number.isInteger(warmup) && warmup >= 0, () => `timeGpuWork: warmup must be a non-negative integer, got ${describeValue(warmup)}`);
  checkPositiveInteger(samples, 'timeGpuWork samples');
  checkPositiveInteger(repeats, 'timeGpuWork repeats');
  const label = options.label ?? 'timed work';

  // One marker per submission: warm-ups, samples, and (wall clock) preludes or (timestamps) the resolve.
  const submissions = warmup + (useTimestamps ? samples + 1 : samples * (options.prelude ? 2 : 1));
  const checks = new SubmissionChecks(device, label, submissions);
  let submitted = 0;
  const finish = (encoder: GPUCommandEncoder): GPUCommandBuffer => {
    checks.mark(encoder, submitted++);
    return encoder.finish();
  };
  const submit = async (commands: GPUCommandBuffer, cleanups: (() => void)[]): Promise<void> => {
    device.queue.submit([commands]);
    for (const cleanup of cleanups) cleanup();
    await device.queue.onSubmittedWorkDone();
  };
  const recordWork = (encoder: GPUCommandEncoder, cleanups: (() => void)[]): void => {
    for (let r = 0; r < repeats; r++) {
      const cleanup = insideSection(device, label, () => record(encoder));
      if (cleanup) cleanups.push(cleanup);
    }
  };
  const prelude = (encoder: GPUCommandEncoder): void => {
    const recordPrelude = options.prelude;
    if (recordPrelude) insideSection(device, label, () => recordPrelude(encoder));
  };

  const samplesMs: number[] = [];
  try {
    // Until warmupMs has passed (the GPU's clock up). Unchecked: the checked warm-ups and samples that
    // follow record the same work, so a rejected submission is reported by them.
    for (const started = performance.now(); performance.now() - started < warmupMs; ) {
      const cleanups: (() => void)[] = [];
      const encoder = device.createCommandEncoder({ label: `${label} (timed warm-up)` });
      recordWork(encoder, cleanups);
      await submit(encoder.finish(), cleanups);
    }
    for (let i = 0; i < warmup; i++) {
      const cleanups: (() => void)[] = [];
      const encoder = device.createCommandEncoder({ label: `${label} (warm-up)` });
      prelude(encoder);
      recordWork(encoder, cleanups);
      await submit(finish(encoder), cleanups);
    }

    if (useTimestamps) {
      const querySet = device.createQuerySet({ label: `${label} timestamps`, type: 'timestamp', count: 2 * samples });
      const resolved = device.createBuffer({
        label: `${label} timestamps (resolved)`,
        size: 16 * samples,
        usage: BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC,
      });
      try {
        for (let i = 0; i < samples; i++) {
          const cleanups: (() => void)[] = [];
          const encoder = device.createCommandEncoder({ label: `${label} (sample ${i})` });
          prelude(encoder);
          encoder
            .beginComputePass({ label: `${label} start`, timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i } })
            .end();
          recordWork(encoder, cleanups);
          encoder
            .beginComputePass({ label: `${label} end`, timestampWrites: { querySet, endOfPassWriteIndex: 2 * i + 1 } })
            .end();
          await submit(finish(encoder), cleanups);
        }
        // One resolve at the end: resolveQuerySet's destination offset must be a multiple of 256.
        const resolveEncoder = device.createCommandEncoder({ label: `${label} (resolve timestamps)` });
        resolveEncoder.resolveQuerySet(querySet, 0, 2 * samples, resolved, 0);
        device.queue.submit([finish(resolveEncoder)]);
        await checks.verify();
        const stamps = new BigUint64Array(await readBuffer(device, resolved, 16 * samples));
        for (let i = 0; i < samples; i++) {
          const start = stamps[2 * i] as bigint;
          const end = stamps[2 * i + 1] as bigint;
          // A clock that went backwards (some drivers across power states) gives no usable sample.
          samplesMs.push(end >= start ? Number(end - start) / 1e6 / repeats : Number.NaN);
        }
      } finally {
        querySet.destroy();
        resolved.destroy();
      }
    } else {
      for (let i = 0; i < samples; i++) {
        const cleanups: (() => void)[] = [];
        const encoder = device.createCommandEncoder({ label: `${label} (sample ${i})` });
        // The prelude goes in its own submission here, so the wall clock covers only the work.
        if (options.prelude) {
          const preludeEncoder = device.createCommandEncoder({ label: `${label} (prelude ${i})` });
          prelude(preludeEncoder);
          device.queue.submit([finish(preludeEncoder)]);
          await device.queue.onSubmittedWorkDone();
        }
        recordWork(encoder, cleanups);
        const commands = finish(encoder);
        const start = performance.now();
        await submit(commands, cleanups);
        samplesMs.push((performance.now() - start) / repeats);
      }
      await checks.verify();
    }
  } finally {
    checks.destroy();
  }

  const valid = samplesMs.filter((t) => Number.isFinite(t)).sort((a, b) => a - b);
  check(valid.length > 0, () => `timeGpuWork (${label}): every timestamp sample went backwards`);
  return {
    method: useTimestamps ? 'timestamp-query' : 'wall-clock',
    medianMs: median(valid),
    minMs: valid[0] as number,
    maxMs: valid[valid.length - 1] as number,
    samplesMs,
    repeats,
  };
}

/** Median of sorted values (mean of the two middle ones for an even count). */
function median(sorted: readonly number[]): number {
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
