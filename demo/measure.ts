import {
  column,
  dequantize,
  HUGE_ESCAPE,
  latticeSpec,
  LONG_ESCAPE,
  productNmse,
  RandomizedHadamard,
  Rng,
  type Matrix,
  type QuantizedMatrix,
  type UniversalLatticeMatrix,
} from '../src/index.js';
import { ERROR_SAMPLE_POINTS, EXACT_NMSE_MAX_MACS, NMSE_SAMPLE_ENTRIES } from './limits.js';
import type { CpuCheck, ErrorSample } from './runProtocol.js';

/** Seed of the product entries drawn for a sampled NMSE (fixed, so a run is reproducible). */
const NMSE_SAMPLE_SEED = 0x5eed;

/**
 * The normalized product error of `estimate` ≈ AᵀB. Exact (the library's `productNmse`) while the exact
 * product is cheap; beyond that, n·‖Ĉ − AᵀB‖²_F is estimated from `NMSE_SAMPLE_ENTRIES` entries drawn
 * uniformly (with replacement): the mean squared error of the drawn entries times the number of
 * entries is an unbiased estimate of the squared Frobenius error.
 */
export function measureNmse(estimate: Matrix, a: Matrix, b: Matrix): { nmse: number; sampledEntries: number | null } {
  const n = a.rows;
  if (n * a.cols * b.cols <= EXACT_NMSE_MAX_MACS) return { nmse: productNmse(estimate, a, b), sampledEntries: null };
  const rng = new Rng(NMSE_SAMPLE_SEED);
  let squaredError = 0;
  for (let s = 0; s < NMSE_SAMPLE_ENTRIES; s++) {
    const i = rng.nextInt(a.cols);
    const j = rng.nextInt(b.cols);
    const exact = dot(column(a, i), column(b, j));
    const difference = (estimate.data[j * estimate.rows + i] as number) - exact;
    squaredError += difference * difference;
  }
  const frobeniusError = (squaredError / NMSE_SAMPLE_ENTRIES) * a.cols * b.cols;
  return { nmse: (n * frobeniusError) / (sumOfSquares(a.data) * sumOfSquares(b.data)), sampledEntries: NMSE_SAMPLE_ENTRIES };
}

/**
 * The first column of a quantized matrix as a one-column quantized matrix, by slicing the documented
 * layout of `QuantizedMatrix` (per-column blocks, groups and side information), so the error picture
 * decodes one column instead of the whole matrix.
 */
export function firstColumn(q: QuantizedMatrix): QuantizedMatrix {
  const means = q.means ? q.means.subarray(0, 1) : null;
  if (q.kind === 'lattice' && q.mode === 'universal') return firstUniversalColumn(q, means);
  if (q.kind === 'lattice') {
    return {
      ...q,
      cols: 1,
      means,
      norms: q.norms.subarray(0, 1),
      gains: q.gains ? q.gains.subarray(0, 1) : null,
      codes: q.codes.subarray(0, q.blocksPerColumn),
      scaleIndices: q.scaleIndices.subarray(0, q.blocksPerColumn),
    };
  }
  return {
    ...q,
    cols: 1,
    means,
    codes: q.codes.subarray(0, q.length),
    scales: q.scales.subarray(0, q.groupsPerColumn),
  };
}

/**
 * Column 0 of a universal matrix: its blocks' codes and escape symbols, and the long and explicit
 * escapes those symbols announce (they come first in the escape streams, which are in block order).
 * The nonce stays: column 0's dither is regenerated from (nonce, 0) either way.
 */
function firstUniversalColumn(q: UniversalLatticeMatrix, means: Float32Array | null): UniversalLatticeMatrix {
  const blocks = q.blocksPerColumn;
  const escapes = q.escapes.subarray(0, blocks);
  let longCount = 0;
  for (const symbol of escapes) if (symbol === LONG_ESCAPE) longCount++;
  const longEscapes = q.longEscapes.subarray(0, longCount);
  let hugeCount = 0;
  for (const index of longEscapes) if (index === HUGE_ESCAPE) hugeCount++;
  return {
    ...q,
    cols: 1,
    means,
    norms: q.norms.subarray(0, 1),
    codes: q.codes.subarray(0, blocks),
    codesHigh: q.codesHigh ? q.codesHigh.subarray(0, blocks) : null,
    escapes,
    longEscapes,
    hugeEscapes: q.hugeEscapes.subarray(0, hugeCount * latticeSpec(q.scheme.lattice).dimension),
  };
}

/**
 * The first `ERROR_SAMPLE_POINTS` rotated coordinates of A's first column and of its reconstruction,
 * in units of the column's RMS. The reconstruction is `dequantize` (original domain) rotated again
 * with the shared rotation; where n is padded to a longer rotation length that is the projection of
 * the decoded rotated vector, which differs from it only in the dropped padding.
 */
export function errorSample(a: Matrix, qa: QuantizedMatrix, rotationSeed: number): ErrorSample {
  const rotation = new RandomizedHadamard(a.rows, rotationSeed, qa.rotate ? qa.length : undefined);
  const input = rotation.forward(column(a, 0));
  const decoded = rotation.forward(dequantize(firstColumn(qa)).data);
  const rms = Math.sqrt(sumOfSquares(input) / input.length);
  const unit = rms > 0 ? 1 / rms : 1;
  const count = Math.min(ERROR_SAMPLE_POINTS, input.length);
  const inputs: number[] = [];
  const outputs: number[] = [];
  let squaredError = 0;
  for (let i = 0; i < count; i++) {
    const x = (input[i] as number) * unit;
    const y = (decoded[i] as number) * unit;
    inputs.push(x);
    outputs.push(y);
    squaredError += (y - x) ** 2;
  }
  return { input: inputs, decoded: outputs, rmsError: Math.sqrt(squaredError / count) };
}

/**
 * Compares two quantizations of the same matrices (with the same nonces, for universal schemes): the
 * values that decide the decoded matrix bit for bit (codes, escapes or scale indices or scales, norms,
 * means), the gains of deterministic schemes by relative difference, and the two products entry by
 * entry.
 */
export function compareRuns(
  gpu: readonly [QuantizedMatrix, QuantizedMatrix],
  cpu: readonly [QuantizedMatrix, QuantizedMatrix],
  gpuProduct: Matrix,
  cpuProduct: Matrix,
): CpuCheck {
  let valuesCompared = 0;
  let valuesDiffering = 0;
  let gainsRelativeDifference: number | null = null;
  for (let m = 0; m < 2; m++) {
    const g = gpu[m] as QuantizedMatrix;
    const c = cpu[m] as QuantizedMatrix;
    for (const [x, y] of exactFields(g, c)) {
      const length = Math.max(x?.length ?? 0, y?.length ?? 0);
      valuesCompared += length;
      for (let i = 0; i < length; i++) if (x?.[i] !== y?.[i]) valuesDiffering++; // ±0 decode alike
    }
    const gGains = g.kind === 'lattice' && g.mode === 'deterministic' ? g.gains : null;
    const cGains = c.kind === 'lattice' && c.mode === 'deterministic' ? c.gains : null;
    if (gGains || cGains) {
      let worst = 0;
      const count = Math.max(gGains?.length ?? 0, cGains?.length ?? 0);
      for (let j = 0; j < count; j++) {
        const reference = cGains?.[j] ?? Number.NaN;
        const difference = Math.abs((gGains?.[j] ?? Number.NaN) - reference) / Math.abs(reference);
        worst = Number.isNaN(difference) ? Infinity : Math.max(worst, difference);
      }
      gainsRelativeDifference = Math.max(gainsRelativeDifference ?? 0, worst);
    }
  }
  let largest = 0;
  let maxDifference = 0;
  for (let i = 0; i < cpuProduct.data.length; i++) {
    const reference = cpuProduct.data[i] as number;
    largest = Math.max(largest, Math.abs(reference));
    maxDifference = Math.max(maxDifference, Math.abs((gpuProduct.data[i] ?? Number.NaN) - reference));
  }
  if (Number.isNaN(maxDifference) || gpuProduct.data.length !== cpuProduct.data.length) maxDifference = Infinity;
  return {
    valuesCompared,
    valuesDiffering,
    gainsRelativeDifference,
    productRelativeDifference: largest > 0 ? maxDifference / largest : maxDifference,
  };
}

type NumericArray = ArrayLike<number> | null;

/** The arrays that must agree bit for bit between two quantizations of the same matrix. */
function exactFields(g: QuantizedMatrix, c: QuantizedMatrix): Array<[NumericArray, NumericArray]> {
  const pairs: Array<[NumericArray, NumericArray]> = [
    [g.codes, c.codes],
    [g.means, c.means],
  ];
  if (g.kind === 'lattice' && c.kind === 'lattice' && g.mode === 'universal' && c.mode === 'universal') {
    pairs.push(
      [g.codesHigh, c.codesHigh],
      [g.escapes, c.escapes],
      [g.longEscapes, c.longEscapes],
      [g.hugeEscapes, c.hugeEscapes],
      [g.norms, c.norms],
      // The nonces decide the dither: two runs with different nonces decode differently.
      [nonceWords(g.nonce), nonceWords(c.nonce)],
    );
  } else if (g.kind === 'lattice' && c.kind === 'lattice' && g.mode === 'deterministic' && c.mode === 'deterministic') {
    pairs.push([g.scaleIndices, c.scaleIndices], [g.norms, c.norms]);
  } else if (g.kind === 'scalar' && c.kind === 'scalar') {
    pairs.push([g.scales, c.scales], [[g.tensorScale], [c.tensorScale]]);
  } else {
    // Different kinds or lattice modes: nothing corresponds; every code counts as different.
    pairs.push([g.codes, null]);
  }
  return pairs;
}

/** A 64-bit nonce as its two 32-bit halves, for the bit-for-bit comparison. */
function nonceWords(nonce: bigint): number[] {
  return [Number(nonce & 0xffffffffn), Number(nonce >> 32n)];
}

function dot(x: Float32Array, y: Float32Array): number {
  let sum = 0;
  for (let k = 0; k < x.length; k++) sum += (x[k] as number) * (y[k] as number);
  return sum;
}

function sumOfSquares(data: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < data.length; i++) sum += (data[i] as number) ** 2;
  return sum;
}
