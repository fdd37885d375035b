import { timeGpuWork, type GpuTiming } from '../../src/gpu/timing.js';
import type { BenchCase, BenchContext, PreparedCase } from './benchCase.js';

/*
 * Runs one case: prepare, time (GPU timestamps for recorded work, the wall clock for whole calls),
 * read the result for its NMSE, free. A case that throws becomes a row with the error, so one broken
 * kernel does not hide the others' figures.
 */

/** How cases are timed. */
export interface TimingSettings {
  readonly warmup: number;
  readonly samples: number;
  /** Recordings of the work per sample (1 keeps every sample's inputs out of the cache, see `flush`). */
  readonly repeats: number;
  /** Use GPU timestamps for recorded work when the device has them. */
  readonly timestampQuery: boolean;
  /** Recorded before every timed sample (a cache flush). */
  readonly prelude?: (encoder: GPUCommandEncoder) => void;
}

/** One row of the report. */
export interface BenchRow {
  readonly name: string;
  readonly kind: BenchCase['kind'];
  readonly baseline: string | null;
  readonly shape: string;
  readonly bitsPerEntry: number | null;
  /** 'timestamp-query', 'wall-clock', or 'wall-clock (whole call)'. */
  readonly method: string | null;
  readonly medianMs: number | null;
  readonly minMs: number | null;
  readonly maxMs: number | null;
  readonly samples: number;
  readonly bytes: number | null;
  readonly gbPerSecond: number | null;
  readonly gflopPerSecond: number | null;
  /** Baseline time / this time (> 1: faster than the f32 kernel); filled in by `addSpeedups`. */
  speedupVsF32: number | null;
  readonly nmse: number | null;
  readonly notes: readonly string[];
  /** Wrong results the case found (its timing is still reported). */
  readonly problems: readonly string[];
  readonly error: string | null;
}

async function timeWholeCall(run: () => Promise<void>, settings: TimingSettings): Promise<GpuTiming> {
  for (let i = 0; i < settings.warmup; i++) await run();
  const samplesMs: number[] = [];
  for (let i = 0; i < settings.samples; i++) {
    const start = performance.now();
    await run();
    samplesMs.push(performance.now() - start);
  }
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return { method: 'wall-clock', medianMs: median, minMs: sorted[0] as number, maxMs: sorted[sorted.length - 1] as number, samplesMs, repeats: 1 };
}

async function timePrepared(context: BenchContext, benchCase: BenchCase, prepared: PreparedCase, settings: TimingSettings): Promise<{ timing: GpuTiming; method: string }> {
  const { device } = context.gpu;
  if (prepared.record) {
    const timing = await timeGpuWork(device, prepared.record, {
      warmup: settings.warmup,
      samples: settings.samples,
      repeats: settings.repeats,
      timestampQuery: settings.timestampQuery && context.gpu.features.timestampQuery,
      label: benchCase.name,
      prelude: settings.prelude,
    });
    return { timing, method: timing.method };
  }
  if (prepared.run) {
    // Whole calls take much longer than single dispatches (seconds on a software GPU): one warm-up
    // (shader compilation) and at most 3 samples keep the run short.
    const timing = await timeWholeCall(prepared.run, { ...settings, warmup: 1, samples: Math.min(settings.samples, 3) });
    return { timing, method: 'wall-clock (whole call)' };
  }
  throw new Error(`case ${benchCase.name} has neither record nor run`);
}

/** Prepares, times and checks one case. */
export async function measureCase(context: BenchContext, benchCase: BenchCase, settings: TimingSettings): Promise<BenchRow> {
  let prepared: PreparedCase | undefined;
  try {
    prepared = await benchCase.prepare(context);
    const { timing, method } = await timePrepared(context, benchCase, prepared, settings);
    const nmse = await prepared.nmse();
    const seconds = timing.medianMs / 1000;
    return {
      name: benchCase.name,
      kind: benchCase.kind,
      baseline: benchCase.baseline,
      shape: prepared.shape,
      bitsPerEntry: prepared.bitsPerEntry,
      method,
      medianMs: timing.medianMs,
      minMs: timing.minMs,
      maxMs: timing.maxMs,
      samples: timing.samplesMs.length,
      bytes: prepared.bytes,
      gbPerSecond: prepared.bytes / seconds / 1e9,
      gflopPerSecond: prepared.flops === null ? null : prepared.flops / seconds / 1e9,
      speedupVsF32: null,
      nmse,
      notes: prepared.notes,
      problems: prepared.problems,
      error: null,
    };
  } catch (error) {
    return {
      name: benchCase.name,
      kind: benchCase.kind,
      baseline: benchCase.baseline,
      shape: prepared?.shape ?? '',
      bitsPerEntry: prepared?.bitsPerEntry ?? null,
      method: null,
      medianMs: null,
      minMs: null,
      maxMs: null,
      samples: 0,
      bytes: prepared?.bytes ?? null,
      gbPerSecond: null,
      gflopPerSecond: null,
      speedupVsF32: null,
      nmse: null,
      notes: prepared?.notes ?? [],
      problems: prepared?.problems ?? [],
      error: error instanceof Error ? error.message : String(error),
    };
  } finally {
    prepared?.destroy();
  }
}

/** Fills `speedupVsF32` of every row whose baseline was measured in the same run. */
export function addSpeedups(rows: BenchRow[]): void {
  for (const row of rows) {
    if (row.baseline === null || row.medianMs === null) continue;
    const baseline = rows.find((other) => other.name === row.baseline);
    if (baseline?.medianMs != null) row.speedupVsF32 = baseline.medianMs / row.medianMs;
  }
  for (const row of rows) if (row.baseline === null && row.medianMs !== null) row.speedupVsF32 = 1;
}
