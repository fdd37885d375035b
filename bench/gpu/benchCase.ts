import type { GpuContext } from '../../src/gpu/device.js';
import type { Matrix } from '../../src/matrix.js';

/*
 * What one measured kernel of the GPU benchmark is. bench/gpu.ts runs a list of `BenchCase`s in
 * order; each prepares its data on the GPU, is timed, reports its NMSE and frees what it made.
 */

/** The GEMV problem every GEMV case computes: y = Wᵀx, W n × cols (column j gives y[j]). */
export interface GemvProblem {
  readonly n: number;
  readonly cols: number;
  readonly w: Matrix;
  readonly x: Float32Array;
  /** Wᵀx in float64. */
  readonly yExact: Float64Array;
  /** ‖W‖²_F and ‖x‖² in float64 (the NMSE's normalization). */
  readonly wNorm2: number;
  readonly xNorm2: number;
}

/** The product problem every product case computes: C = AᵀB, A n × aCols, B n × bCols. */
export interface ProductProblem {
  readonly n: number;
  readonly a: Matrix;
  readonly b: Matrix;
}

/** What every case gets. */
export interface BenchContext {
  readonly gpu: GpuContext;
  readonly seed: number;
  readonly gemv: GemvProblem;
  readonly product: ProductProblem;
  /**
   * Results shared between cases (e.g. W encoded once for several GEMV cases), by key. Each entry's
   * `destroy` runs when the benchmark ends.
   */
  readonly shared: Map<string, { readonly value: Promise<unknown>; readonly destroy: () => void }>;
}

/** A case ready to be timed. */
export interface PreparedCase {
  /** e.g. "4096 × 4096" or "1024 × 256 × 256". */
  readonly shape: string;
  /**
   * Bits the kernel reads per matrix entry (weights, or both operands for products): codes, scales and
   * per-column fields, as stored. Null for encode (its input is f32).
   */
  readonly bitsPerEntry: number | null;
  /** Bytes the kernel must move: weights/codes (and scales) read, plus the vector for GEMV. */
  readonly bytes: number;
  /** Floating-point operations of the equivalent dense computation, or null (encode). */
  readonly flops: number | null;
  /**
   * Records the work into an encoder (timed with GPU timestamps when available); may return a
   * cleanup called after the submission.
   */
  readonly record?: (encoder: GPUCommandEncoder) => (() => void) | void;
  /** The whole call, timed with the wall clock: for work that cannot be recorded into an encoder. */
  readonly run?: () => Promise<void>;
  /** The NMSE of the last run's result against the exact float64 result (null where it has no meaning). */
  readonly nmse: () => Promise<number | null>;
  /** Facts worth printing under the table (layout chosen, dot path, correctness checks). */
  readonly notes: string[];
  /** Wrong results found while checking (filled by `nmse`): printed, and the benchmark exits with 1. */
  readonly problems: string[];
  readonly destroy: () => void;
}

/** One measured kernel. */
export interface BenchCase {
  readonly name: string;
  readonly kind: 'gemv' | 'product' | 'encode';
  /** Name of the f32 case of the same shape this one is compared with. */
  readonly baseline: string | null;
  readonly prepare: (context: BenchContext) => Promise<PreparedCase>;
}

/** GEMV NMSE, defined like the product's: n‖ŷ − y‖² / (‖W‖²_F ‖x‖²). */
export function gemvNmse(estimate: Float32Array, problem: GemvProblem): number {
  let error = 0;
  for (let j = 0; j < problem.cols; j++) {
    const d = (estimate[j] as number) - (problem.yExact[j] as number);
    error += d * d;
  }
  return (problem.n * error) / (problem.wNorm2 * problem.xNorm2);
}

/** Builds a GEMV problem: the exact result and norms in float64. */
export function gemvProblem(w: Matrix, x: Float32Array): GemvProblem {
  const { rows: n, cols } = w;
  const yExact = new Float64Array(cols);
  let wNorm2 = 0;
  for (let j = 0; j < cols; j++) {
    let sum = 0;
    for (let k = 0; k < n; k++) {
      const value = w.data[j * n + k] as number;
      sum += value * (x[k] as number);
      wNorm2 += value * value;
    }
    yExact[j] = sum;
  }
  let xNorm2 = 0;
  for (const value of x) xNorm2 += value * value;
  return { n, cols, w, x, yExact, wNorm2, xNorm2 };
}
