import { check } from '../../src/errors.js';
import { createBuffer, createBufferWithData, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import type { GpuContext } from '../../src/gpu/device.js';
import type { ProductKernel } from '../../src/gpu/engine.js';
import { withValidation } from '../../src/gpu/errorScopes.js';
import { prepareCommands, type PreparedCommands } from '../../src/gpu/prepared.js';
import type { GpuScratch } from '../../src/gpu/scratch.js';
import { dispatchStreamRead } from '../../src/gpu/kernels/streamRead.js';
import { timeGpuWork, type GpuTiming } from '../../src/gpu/timing.js';
import type { Matrix } from '../../src/matrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';

/*
 * What every part of the GPU benchmark shares: the settings, the row it reports, the GEMV problem
 * (a Gaussian W built from a distinct column tile, its exact product with x), GPU copies of weights
 * (the working set of distinct matrices), prepared recordings, and the timing of a stream of calls.
 */

/** How the benchmark runs (from the command line). */
export interface BenchSettings {
  readonly quick: boolean;
  readonly seed: number;
  readonly warmup: number;
  /** Warm-up time before each row's samples, at least (the GPU's clock rises only after work). */
  readonly warmupMs: number;
  /**
   * Milliseconds of streaming reads (`primeClock`) before each timing's warm-up: a row of tiny
   * dispatches (the rotations, the dispatch chain) keeps the GPU busy too little of its warm-up to
   * raise an idling clock.
   */
  readonly primeMs: number;
  /** Timings of one row at most: more than 1 retimes an unsteady row (`timeCalls`, UNSTEADY_SPREAD). */
  readonly maxTimings: number;
  readonly samples: number;
  /** Bytes of distinct weight matrices each GEMV row streams over (each call reads the next copy). */
  readonly workingSetBytes: number;
  /** Fewest calls per timed sample (copies repeat to reach it). */
  readonly minCalls: number;
  /** Most copies of one matrix (memory cap). */
  readonly maxCopies: number;
  /** Distinct Gaussian columns of W; wider W repeats them (bandwidth does not care; it saves CPU time). */
  readonly tileCols: number;
  readonly timestampQuery: boolean;
}

/** A checked result: the metric, its value and the limit it must stay under. */
export interface RowCheck {
  readonly metric: string;
  readonly value: number;
  readonly limit: number;
  readonly ok: boolean;
}

/** One row of the report (the JSON schema's `rows`). Null where a figure has no meaning. */
/** A row that ran and whose check (where it has one) passed: the only rows ratios and verdicts may use. */
export function measuredOk(r: BenchRow): boolean {
  return r.status === 'ok' && r.ms !== null && (r.check === null || r.check.ok);
}

/** Whether a decode-step row recorded its whole step into one compute pass (its baseline must too). */
export function onePassStep(r: Pick<BenchRow, 'kernel'>): boolean {
  return r.kernel.includes('one compute pass');
}

/** A row's alternative to a default: what is chosen, and the kernel (row name) of the default. */
export interface AlternativeTo {
  /** The choice, e.g. "leader-table copies". */
  readonly choice: string;
  /** `kernel` of the row that times the library's default. */
  readonly defaultKernel: string;
}

export interface BenchRow {
  readonly kernel: string;
  readonly family: 'stream' | 'gemv' | 'batched' | 'host' | 'decode-step' | 'product';
  /** GEMV: "out × in" (PyTorch's weight shape); products "n × a × b"; stream: the bytes. */
  readonly shape: string;
  readonly k: number | null;
  readonly status: 'ok' | 'unsupported' | 'failed';
  readonly note: string | null;
  readonly bitsPerEntry: number | null;
  /** Bytes one call must read from memory: weights (codes, scales, side fields) and the activations. */
  readonly bytesRead: number | null;
  /** GPU milliseconds per call (median over the samples). */
  readonly ms: number | null;
  readonly gbps: number | null;
  /** gbps / the streaming-read kernel's gbps in the same run. */
  fractionOfStream: number | null;
  /** f16 GEMV ms / this ms at the same shape (null: not a GEMV row, or no f16 GEMV on the adapter). */
  vsF16: number | null;
  /** f32 kernel ms / this ms (f32 GEMV at the same shape, f32 matmul for products). */
  vsF32: number | null;
  readonly gflops: number | null;
  readonly hostUsPerCall: number | null;
  /** Dispatches one call (decode step: one layer) records; each dependent one costs about a `dispatch chain` row's ms. */
  readonly dispatchesPerCall: number | null;
  /** GPU objects created by the steady-state recording calls (0 is the goal). */
  readonly allocationsAfterFirst: number | null;
  readonly copies: number | null;
  readonly workingSetBytes: number | null;
  readonly callsPerSample: number | null;
  /** Per-call milliseconds of every sample. */
  readonly samplesMs: readonly number[];
  /**
   * Earlier timings of the row set aside because their samples spread by more than UNSTEADY_SPREAD
   * (a clock still rising), per-call milliseconds, oldest first; empty for a steady row.
   */
  readonly unsteadySamplesMs: readonly (readonly number[])[];
  readonly timing: string | null;
  readonly check: RowCheck | null;
  /** Filled from the SPIR-V statistics (bench/gpu/spirv.ts). */
  instrPerCodeByte: number | null;
  /** Filled from the same kernel's RDNA3 machine code (bench/gpu/rdnaIsa.ts), where it was compiled. */
  rdna3PerCodeByte: number | null;
  /** Key of the kernel's SPIR-V statistics. */
  readonly spirvKey: string | null;
  /** Product rows: RDNA3 instructions per multiply-accumulate of the kernel's slice loop (bench/gpu/instructionStats.ts, productSubjects), where it was compiled. */
  rdna3PerMac: number | null;
  /** Key of the product kernel's per-MAC statistics. */
  readonly macKey: string | null;
  /** Engine product rows: the kernel `GpuEngine.productKernel` chose for the pair (null: the f32 baseline, and every other family). */
  readonly productKernel: ProductKernel | null;
  /**
   * GEMV rows of the int8-input kernels: x rotated and rounded to int8 once, before the timed calls,
   * which then run the GEMV kernel alone (what each layer of a group pays when the group shares x̂).
   * false: every call does all its work (rotation and rounding included).
   */
  readonly xPrepared: boolean;
  /**
   * A row that times an alternative to one of the library's defaults chosen by instruction counts
   * (bench/gpu/defaults.ts): the choice and the default's row, which the report sets it against at the
   * same shape. null: not such a row.
   */
  readonly alternativeTo: AlternativeTo | null;
}

/** A row with every optional figure null. */
export function row(fields: Partial<BenchRow> & Pick<BenchRow, 'kernel' | 'family' | 'shape'>): BenchRow {
  return {
    k: null,
    status: 'ok',
    note: null,
    bitsPerEntry: null,
    bytesRead: null,
    ms: null,
    gbps: null,
    fractionOfStream: null,
    vsF16: null,
    vsF32: null,
    gflops: null,
    hostUsPerCall: null,
    dispatchesPerCall: null,
    allocationsAfterFirst: null,
    copies: null,
    workingSetBytes: null,
    callsPerSample: null,
    samplesMs: [],
    unsteadySamplesMs: [],
    timing: null,
    check: null,
    instrPerCodeByte: null,
    rdna3PerCodeByte: null,
    spirvKey: null,
    rdna3PerMac: null,
    macKey: null,
    productKernel: null,
    xPrepared: false,
    alternativeTo: null,
    ...fields,
  };
}

/** A failed row: the error's first line. */
export function failedRow(fields: Pick<BenchRow, 'kernel' | 'family' | 'shape'> & Partial<BenchRow>, error: unknown): BenchRow {
  const message = error instanceof Error ? error.message : String(error);
  return row({ ...fields, status: 'failed', note: message.split('\n')[0]?.slice(0, 300) ?? message });
}

/**
 * The GEMV problem y = Wᵀx for a layer of PyTorch shape (out, in): W is n = in rows × cols = out
 * columns (column j gives output j), built from `tile` (n × tileCols Gaussian columns) repeated; the
 * exact products and norms come from the tile.
 */
export interface GemvProblem {
  readonly out: number;
  readonly in: number;
  readonly n: number;
  readonly cols: number;
  readonly tile: Matrix;
  /** k right-hand sides (column-major n × k), each N(0, 1). */
  readonly x: Matrix;
  /** Tileᵀ·X in float64: tile.cols × k. */
  readonly yTile: Float64Array;
  /** ‖W‖²_F (of the whole W) and ‖X‖²_F. */
  readonly wNorm2: number;
  readonly xNorm2: number;
}

/** The label of a GEMV shape: "out × in". */
export function gemvShape(problem: Pick<GemvProblem, 'out' | 'in'>): string {
  return `${problem.out} × ${problem.in}`;
}

export function gemvProblem(out: number, inFeatures: number, k: number, tileCols: number, seed: number, scale = 1): GemvProblem {
  const n = inFeatures;
  const cols = out;
  const tCols = Math.min(cols, tileCols);
  const tile = gaussianMatrix(n, tCols, seed);
  if (scale !== 1) for (let i = 0; i < tile.data.length; i++) tile.data[i] = Math.fround((tile.data[i] as number) * scale);
  const x = gaussianMatrix(n, k, seed + 1);
  const yTile = new Float64Array(tCols * k);
  const columnNorms = new Float64Array(tCols);
  for (let j = 0; j < tCols; j++) {
    let norm = 0;
    for (let i = 0; i < n; i++) norm += (tile.data[j * n + i] as number) ** 2;
    columnNorms[j] = norm;
    for (let r = 0; r < k; r++) {
      let sum = 0;
      for (let i = 0; i < n; i++) sum += (tile.data[j * n + i] as number) * (x.data[r * n + i] as number);
      yTile[r * tCols + j] = sum;
    }
  }
  let wNorm2 = 0;
  for (let j = 0; j < cols; j++) wNorm2 += columnNorms[j % tCols] as number;
  let xNorm2 = 0;
  for (const value of x.data) xNorm2 += value * value;
  return { out, in: inFeatures, n, cols, tile, x, yTile, wNorm2, xNorm2 };
}

/**
 * NMSE of a GEMV result Ŷ (cols × k, column-major) against the exact WᵀX:
 * n·‖Ŷ − WᵀX‖² / (‖W‖²‖X‖²) (≈ the per-entry relative error of the weights; 0 for an exact kernel).
 */
export function gemvNmse(y: Float32Array, problem: GemvProblem, reference: ArrayLike<number> = problem.yTile): number {
  const { cols, n } = problem;
  const k = problem.x.cols;
  // The reference's columns repeat over y's: the problem's tile columns (yTile), or a twin's y of
  // them or of every column.
  const period = reference.length / k;
  check(Number.isInteger(period) && period > 0, 'bench: a GEMV reference holds whole columns for every right-hand side');
  let error = 0;
  for (let r = 0; r < k; r++) {
    for (let j = 0; j < cols; j++) {
      const d = (y[r * cols + j] as number) - (reference[r * period + (j % period)] as number);
      error += d * d;
    }
  }
  return Number.isFinite(error) ? (n * error) / (problem.wNorm2 * problem.xNorm2) : Number.POSITIVE_INFINITY;
}

export function nmseCheck(value: number, limit: number, metric = 'nmse vs exact float64'): RowCheck {
  return { metric, value, limit, ok: value <= limit };
}

/**
 * A buffer of `columns` column-major columns of `columnBytes` bytes (of `bufferBytes` in all, at least
 * their bytes: e.g. codes rounded up to whole 16-byte quads), filled by repeating the columns of
 * `tile` (tileColumns of them): GPU copies, no CPU work per column.
 */
export function tiledColumns(device: GPUDevice, encoder: GPUCommandEncoder, label: string, tile: GPUBuffer, tileColumns: number, columnBytes: number, columns: number, bufferBytes = columnBytes * columns): GPUBuffer {
  const full = createBuffer(device, label, bufferBytes, STORAGE_USAGE);
  for (let j0 = 0; j0 < columns; j0 += tileColumns) {
    const count = Math.min(tileColumns, columns - j0);
    encoder.copyBufferToBuffer(tile, 0, full, columnBytes * j0, columnBytes * count);
  }
  return full;
}

/** Uploads `data` (columns of `columnBytes`) and repeats it to `columns` columns on the GPU. */
export async function uploadTiled(device: GPUDevice, label: string, data: ArrayBufferView, tileColumns: number, columnBytes: number, columns: number): Promise<GPUBuffer> {
  return withValidation(device, `bench upload ${label}`, async () => {
    const tile = createBufferWithData(device, `${label} (tile)`, data, STORAGE_USAGE);
    const encoder = device.createCommandEncoder({ label: `${label} (tiling)` });
    const full = tiledColumns(device, encoder, label, tile, tileColumns, columnBytes, columns);
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
    tile.destroy();
    return full;
  });
}

/** A GPU copy of `buffer` (same size), recorded into `encoder`. */
export function copyOf(device: GPUDevice, encoder: GPUCommandEncoder, buffer: GPUBuffer, label: string): GPUBuffer {
  const copy = createBuffer(device, label, buffer.size, STORAGE_USAGE);
  encoder.copyBufferToBuffer(buffer, 0, copy, 0, buffer.size);
  return copy;
}

/** Copies of a weight (count − 1 new ones plus the original), so calls can stream over distinct memory. */
export async function makeCopies<T>(device: GPUDevice, original: T, count: number, copy: (encoder: GPUCommandEncoder, index: number) => T): Promise<T[]> {
  return withValidation(device, 'bench weight copies', async () => {
    const copies: T[] = [original];
    const encoder = device.createCommandEncoder({ label: 'bench weight copies' });
    for (let i = 1; i < count; i++) copies.push(copy(encoder, i));
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
    return copies;
  });
}

/** How many distinct copies of a weight of `bytes` bytes make the working set. */
export function copiesFor(bytes: number, settings: BenchSettings): number {
  return Math.max(1, Math.min(settings.maxCopies, Math.ceil(settings.workingSetBytes / bytes)));
}

/** Prepared commands of `record` (uniforms and bind groups created once). */
export function prepared(device: GPUDevice, label: string, record: (encoder: GPUCommandEncoder, scratch: GpuScratch) => void): PreparedCommands {
  return prepareCommands(device, label, record);
}

/**
 * A timing whose slowest sample exceeds its fastest by more than this factor is taken again. On the
 * H200 (bench/results/nvidia-h200-2026-12-04-f16.json) three rows ran at a lower clock for their
 * first samples despite the warm-up and then at full speed (the int4 GEMV: five samples of 172 µs,
 * then 119 and 72; two model steps, spread 1.7× and 3.4×), so their medians were 1.5–3× too slow
 * against the primed rerun; every other row spread by less than 1.15×.
 */
export const UNSTEADY_SPREAD = 1.2;
/** Per-call figures of `timeCalls`. */
export interface CallTiming extends GpuTiming {
  readonly perCallMs: number;
  readonly perCallSamples: number[];
  /** Per-call samples of earlier timings set aside as unsteady (UNSTEADY_SPREAD), oldest first. */
  readonly unsteadyPerCallSamples: number[][];
}

/** Slowest over fastest sample (NaN samples, from a clock that went backwards, make it infinite). */
export function sampleSpread(samples: readonly number[]): number {
  if (samples.some((sample) => !Number.isFinite(sample))) return Number.POSITIVE_INFINITY;
  return samples.reduce((a, b) => Math.max(a, b), 0) / samples.reduce((a, b) => Math.min(a, b), Number.POSITIVE_INFINITY);
}

/** Bytes the clock primer reads per call (at most the device's largest buffer). */
const PRIMER_BYTES = 256 * 2 ** 20;
/** Primer calls per submission: ≈ 0.5 ms of reading on an H200, so the host's round trip leaves it busy. */
const PRIMER_CALLS = 8;
/** Per device, the primer's buffer and its prepared streaming read. */
const primers = new WeakMap<GPUDevice, PreparedCommands>();

/**
 * Keeps the GPU reading memory for `settings.primeMs` (nothing when 0), so that the row timed next
 * starts at a raised clock whatever its own work: on the H200 (bench/results/nvidia-h200-2026-12-04-f16.md)
 * the first rotation row after the dispatch chain's rows of microsecond dispatches took 39 µs where
 * the same plan's rotation alone took 10.5.
 */
export async function primeClock(context: GpuContext, settings: BenchSettings): Promise<void> {
  if (settings.primeMs <= 0) return;
  const { device } = context;
  let primer = primers.get(device);
  if (primer === undefined) {
    const bytes = Math.min(PRIMER_BYTES, device.limits.maxBufferSize - (device.limits.maxBufferSize % 16));
    // Never destroyed: it lives as long as the benchmark's device (zero-filled: what it holds does not matter).
    const data = device.createBuffer({ label: 'bench clock primer', size: bytes, usage: STORAGE_USAGE });
    primer = prepared(device, 'bench clock primer', (encoder, scratch) => dispatchStreamRead(device, encoder, scratch, { data, bytes }));
    primers.set(device, primer);
  }
  for (const started = performance.now(); performance.now() - started < settings.primeMs; ) {
    const encoder = device.createCommandEncoder({ label: 'bench clock primer' });
    for (let i = 0; i < PRIMER_CALLS; i++) primer.record(encoder);
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
  }
}

/** Whether a timing's samples spread by more than UNSTEADY_SPREAD (then `timeCalls` times it again). */
export function unsteady(samples: readonly number[]): boolean {
  return sampleSpread(samples) > UNSTEADY_SPREAD;
}

/** Index of the timing (its samples) with the smallest spread, the latest of equals. */
export function steadiestTiming(timings: readonly (readonly number[])[]): number {
  let kept = timings.length - 1;
  for (let i = timings.length - 2; i >= 0; i--) {
    if (sampleSpread(timings[i] as readonly number[]) < sampleSpread(timings[kept] as readonly number[])) kept = i;
  }
  return kept;
}

/**
 * Times `calls` replays per sample (call i records `record(encoder, i)`); returns per-call figures.
 * A timing whose samples spread by more than UNSTEADY_SPREAD is taken again (priming and warm-up
 * included), up to `settings.maxTimings` in all; the steadiest is kept (the latest of equals) and the others are returned as
 * `unsteadyPerCallSamples`, which the row reports.
 */
export async function timeCalls(
  context: GpuContext,
  label: string,
  calls: number,
  record: (encoder: GPUCommandEncoder, call: number) => void,
  settings: BenchSettings,
  options: { warmup?: number; samples?: number } = {},
): Promise<CallTiming> {
  const timings: GpuTiming[] = [];
  do {
    await primeClock(context, settings);
    timings.push(
      await timeGpuWork(
        context.device,
        (encoder) => {
          for (let call = 0; call < calls; call++) record(encoder, call);
        },
        {
          warmup: options.warmup ?? settings.warmup,
          warmupMs: settings.warmupMs,
          samples: options.samples ?? settings.samples,
          timestampQuery: settings.timestampQuery && context.features.timestampQuery,
          label,
        },
      ),
    );
  } while (timings.length < settings.maxTimings && unsteady((timings.at(-1) as GpuTiming).samplesMs));
  const kept = steadiestTiming(timings.map((t) => t.samplesMs));
  const timing = timings[kept] as GpuTiming;
  const perCall = (t: GpuTiming): number[] => t.samplesMs.map((ms) => ms / calls);
  return {
    ...timing,
    perCallMs: timing.medianMs / calls,
    perCallSamples: perCall(timing),
    unsteadyPerCallSamples: timings.filter((_, i) => i !== kept).map(perCall),
  };
}

/** A row's `samplesMs` and `unsteadySamplesMs` from `timeCalls`, each per-call sample times `scale`. */
export function rowSamples(timing: CallTiming, scale = 1): Pick<BenchRow, 'samplesMs' | 'unsteadySamplesMs'> {
  return {
    samplesMs: timing.perCallSamples.map((ms) => ms * scale),
    unsteadySamplesMs: timing.unsteadyPerCallSamples.map((samples) => samples.map((ms) => ms * scale)),
  };
}

/** Calls per sample for `copies` distinct weights: every copy once, repeated to at least minCalls. */
export function callsFor(copies: number, settings: BenchSettings): number {
  return copies * Math.max(1, Math.ceil(settings.minCalls / copies));
}

/**
 * The dispatches `record` records into an encoder (which is then finished and dropped), by the label of
 * the pipeline each runs (prepared commands merge passes, so pass labels would not say which kernel ran).
 */
export function dispatchesByPipeline(device: GPUDevice, record: (encoder: GPUCommandEncoder) => void): Map<string, number> {
  const real = device.createCommandEncoder({ label: 'dispatch counter' });
  const dispatches = new Map<string, number>();
  const forward = <T extends object>(target: T, property: string | symbol): unknown => {
    const value = Reflect.get(target, property) as unknown;
    return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
  };
  const counting = new Proxy(real, {
    get(target, property) {
      if (property !== 'beginComputePass') return forward(target, property);
      return (descriptor?: GPUComputePassDescriptor) => {
        let pipelineLabel = '';
        return new Proxy(target.beginComputePass(descriptor), {
          get(pass, name) {
            if (name === 'setPipeline') {
              return (pipeline: GPUComputePipeline) => {
                pipelineLabel = pipeline.label;
                pass.setPipeline(pipeline);
              };
            }
            if (name !== 'dispatchWorkgroups') return forward(pass, name);
            return (...size: [number, number?, number?]) => {
              dispatches.set(pipelineLabel, (dispatches.get(pipelineLabel) ?? 0) + 1);
              pass.dispatchWorkgroups(...size);
            };
          },
        });
      };
    },
  });
  record(counting);
  real.finish();
  return dispatches;
}

/** Counts the dispatches `record` records into an encoder (which is then finished and dropped). */
export function countDispatches(device: GPUDevice, record: (encoder: GPUCommandEncoder) => void): number {
  return [...dispatchesByPipeline(device, record).values()].reduce((sum, n) => sum + n, 0);
}

/** Counts the GPU objects `device` creates while `body` runs (buffers, bind groups, layouts, pipelines, modules, query sets). */
export function countAllocations<T>(device: GPUDevice, body: () => T): { result: T; allocations: number } {
  const methods = ['createBuffer', 'createBindGroup', 'createBindGroupLayout', 'createPipelineLayout', 'createComputePipeline', 'createShaderModule', 'createQuerySet'] as const;
  const target = device as unknown as Record<string, unknown>;
  const saved = methods.map((name) => [name, Object.getOwnPropertyDescriptor(target, name)] as const);
  let allocations = 0;
  for (const name of methods) {
    const original = target[name] as (...args: unknown[]) => unknown;
    Object.defineProperty(target, name, {
      configurable: true,
      writable: true,
      value: (...args: unknown[]) => {
        allocations++;
        return original.apply(device, args);
      },
    });
  }
  try {
    return { result: body(), allocations };
  } finally {
    for (const [name, descriptor] of saved) {
      if (descriptor === undefined) delete target[name];
      else Object.defineProperty(target, name, descriptor);
    }
  }
}

/**
 * `amount` (bytes read, or FLOP) per call of `ms` GPU milliseconds, in 10⁹ per second: the rows' GB/s
 * and GFLOP/s, decimal as memory bandwidth is stated (an H200's 4.8 TB/s), not 2³⁰.
 */
export function gigaPerSecond(amount: number, ms: number): number {
  return amount / (ms / 1000) / 1e9;
}

/** Median of values. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
