import { SCHEMES, type DataKind, type GainMode, type SchemeName } from '../src/index.js';

/*
 * The messages between the page (main thread) and the run worker. The worker does everything heavy
 * (test data, quantization, the product, the error measurement) so the page stays responsive and a
 * cancelled run is really stopped: the page terminates the worker.
 */

/** Where the quantizers and the product run. */
export type Backend = 'webgpu' | 'cpu';

/**
 * Where a scheme asked for on `backend` runs: the GPU engine encodes lattice schemes only, so the
 * scalar baselines (INT, NVFP4) always run on the CPU reference.
 */
export function runsOn(scheme: SchemeName, backend: Backend): Backend {
  return backend === 'webgpu' && SCHEMES[scheme].kind === 'lattice' ? 'webgpu' : 'cpu';
}

/** One run as the visitor chose it. A and B are both n × cols, so the product AᵀB is cols × cols. */
export interface RunRequest {
  readonly scheme: SchemeName;
  /**
   * The gain mode of deterministic lattice schemes; ignored for the others (the universal code refuses
   * a gain: its decoded columns are already unbiased; scalar schemes have none).
   */
  readonly gain: GainMode;
  readonly n: number;
  readonly cols: number;
  readonly dataKind: DataKind;
  /** Seed of `testMatrixPair`. */
  readonly dataSeed: number;
  /** Seed of the shared rotation (`QuantizeOptions.seed`). */
  readonly rotationSeed: number;
  readonly backend: Backend;
  /** WebGPU runs only: also quantize on the CPU and compare codes and product (small sizes). */
  readonly checkAgainstCpu: boolean;
}

/** The stages of a run, in order; progress reports which one is under way. */
export const STAGES = ['init', 'generate', 'quantizeA', 'quantizeB', 'product', 'measure'] as const;
export type Stage = (typeof STAGES)[number];

export const STAGE_LABELS: Readonly<Record<Stage, string>> = {
  init: 'Starting the engine',
  generate: 'Generating test data',
  quantizeA: 'Quantizing A',
  quantizeB: 'Quantizing B',
  product: 'Computing the product AᵀB',
  measure: 'Measuring the error',
};

/** Milliseconds per stage (wall clock in the worker; GPU stages wait for the queue to drain). */
export interface StageTimings {
  readonly generate: number;
  readonly quantizeA: number;
  readonly quantizeB: number;
  readonly product: number;
  readonly measure: number;
  /** The optional check of a WebGPU run against the CPU reference (0 when it did not run). */
  readonly cpuCheck: number;
}

/** What the page shows about the WebGPU adapter the worker's engine runs on. */
export interface AdapterSummary {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  /** The device's granted `maxComputeWorkgroupStorageSize`, which sizes the table product's slices. */
  readonly workgroupStorageBytes: number;
  /** Optional features the device has (subgroups, shader-f16, timestamp-query). */
  readonly features: readonly string[];
  /** The GPU is emulated on the CPU (`isSoftwareRenderer`): runs get lower size caps (demo/limits.ts). */
  readonly softwareRenderer: boolean;
}

/** The worker's GPU engine: ready (with its adapter and table layout) or unavailable (with why). */
export type GpuStatus =
  | {
      readonly available: true;
      readonly adapter: AdapterSummary;
      /** The D3 inner-product table layout of the engine's deterministic products ('leaders' by default). */
      readonly tableLayout: string;
      /** How the deterministic products form integer inner products ('packed' 8-bit dot products or 'plain'). */
      readonly dotPath: string;
    }
  | { readonly available: false; readonly reason: string };

/**
 * Rotated coordinates of A's first column against their reconstruction, both in units of the
 * column's RMS (σ), for the error picture.
 */
export interface ErrorSample {
  readonly input: readonly number[];
  readonly decoded: readonly number[];
  /** RMS of (decoded − input) over the shown coordinates, in σ. */
  readonly rmsError: number;
}

/** A WebGPU run checked against the CPU reference on the same data (and, for universal schemes, the same nonces). */
export interface CpuCheck {
  /**
   * Values that must agree bit for bit: code words, escapes (universal) or scale indices
   * (deterministic) or scales (scalar), norms, means (both matrices).
   */
  readonly valuesCompared: number;
  /** How many of them differ (0: the GPU's codes are the CPU's, bit for bit). */
  readonly valuesDiffering: number;
  /**
   * max |γ_gpu − γ_cpu| / |γ_cpu| over the per-column gains, null without gains: the GPU sums them in
   * f32, the CPU in float64, so they agree to about 1e-7, not bit for bit.
   */
  readonly gainsRelativeDifference: number | null;
  /** max |C_gpu − C_cpu| / max |C_cpu| over the product's entries. */
  readonly productRelativeDifference: number;
}

/** Everything a finished run reports. */
export interface RunResult {
  readonly request: RunRequest;
  /**
   * Where it ran: the request's backend, except that the GPU engine encodes lattice schemes only, so a
   * scalar baseline asked for on WebGPU runs on the CPU reference (`runsOn`).
   */
  readonly ranOn: Backend;
  /** The GPU product kernel ('universal-i8', 'universal-decode', 'd3-table', 'e8-dot', 'decode-f32'), null on the CPU. */
  readonly productKernel: string | null;
  /**
   * The dither nonces of A and B (decimal strings of the 64-bit values), drawn at random for each run
   * of a universal scheme so the two errors are independent; null for the other schemes. With the
   * seeds they reproduce the run exactly (`quantize(a, { scheme, seed, nonce: BigInt(nonces.a) })`).
   */
  readonly nonces: { readonly a: string; readonly b: string } | null;
  /**
   * The universal guarantee's prediction of the NMSE (`expectedNmse`: from the schemes and n/N only, for
   * any data), null for schemes without a guarantee. The measured NMSE fluctuates around it.
   */
  readonly predictedNmse: number | null;
  /** Bits per entry stored (codes + side information), averaged over A and B. */
  readonly bitsStored: number;
  /** Bits per entry with the escape symbols or scale indices at their empirical entropy, averaged over A and B. */
  readonly bitsEntropy: number;
  /** The normalized product error n·‖Ĉ − AᵀB‖²_F / (‖A‖²_F·‖B‖²_F). */
  readonly nmse: number;
  /** null when the NMSE is exact; else how many product entries it was estimated from. */
  readonly nmseSampledEntries: number | null;
  readonly timings: StageTimings;
  /**
   * The first GPU run on its device of its scheme's kernels or of its rotation variant (`pipelineKeys`),
   * not only of the device: its times include compiling GPU pipelines.
   */
  readonly compilesGpuPipelines: boolean;
  /** The first CPU run of a worker (a fresh one after each cancel): its times include warming up the JavaScript engine. */
  readonly firstCpuRun: boolean;
  /** The GPU engine's D3 table layout (WebGPU runs), null on the CPU. */
  readonly tableLayout: string | null;
  readonly adapter: AdapterSummary | null;
  /** The estimated product (column-major, cols × cols) when it is small enough to pass around. */
  readonly product: { readonly rows: number; readonly cols: number; readonly data: readonly number[] } | null;
  readonly errorSample: ErrorSample;
  readonly cpuCheck: CpuCheck | null;
  /** Why a WebGPU run was not checked against the CPU reference (a sentence), null when it was or ran on the CPU. */
  readonly cpuCheckSkipped: string | null;
}

/**
 * Why a WebGPU run failed, when the GPU itself is the reason: 'lost' when the device was lost during
 * the run (a GPU reset, a driver crash; the worker drops that device and the next run requests a new
 * one), 'start' when no new device could be started after such a loss.
 */
export type GpuFailure = 'lost' | 'start';

export type WorkerRequest =
  | { readonly type: 'run'; readonly id: number; readonly request: RunRequest }
  | { readonly type: 'gpu-status' };

export type WorkerMessage =
  | { readonly type: 'progress'; readonly id: number; readonly stage: Stage }
  | { readonly type: 'result'; readonly id: number; readonly result: RunResult }
  | { readonly type: 'error'; readonly id: number; readonly message: string; readonly gpu?: GpuFailure }
  | { readonly type: 'gpu-status'; readonly status: GpuStatus };
