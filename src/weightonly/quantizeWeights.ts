import { check, LatticeMatmulError, describeValue } from '../errors.js';
import { checkMatrix, type Matrix } from '../matrix.js';
import { checkKnownKeys, checkOptionalBoolean, isPlainObject } from '../quantize/strictOptions.js';
import { rotationKindFor, WeightBasis } from './basis.js';
import { checkCovariance, checkSemidefinite, dampCovariance } from './covariance.js';
import { feedbackPenaltyBits } from './feedbackPenalty.js';
import { meanSquaredEntry } from './limit.js';
import { choleskyLower, choleskyPivots, logDetFromCholesky } from './linalg.js';
import { checkMethod, type WeightOnlyMethod } from './method.js';
import { columnCodeWidths, MAX_CODE } from './packedCodes.js';
import { checkU32 } from '../rotation/random.js';
import { MAX_COLUMN_MAGNITUDE, WeightOnlyQuantized, scalesOutOfRange, sideInfoBits, type WeightOnlyAnalysis } from './quantized.js';
import { searchStepForRate } from './rateSearch.js';
import { checkStep, quantizeAtStep, type CodeOverflow, type StepQuantization, type WorkingProblem } from './recursion.js';
import { fitRescalers } from './rescalers.js';
import { amGmBits, predictedGapBits } from './theory.js';

/**
 * The options of {@link quantizeWeights} every call may give (see {@link QuantizeWeightsOptions}).
 *
 * @inline
 */
interface QuantizeWeightsCommonOptions {
  readonly method: WeightOnlyMethod;
  /** Quantize in a random basis (randomized Hadamard, or a dense random rotation for n ≤ 256 that is not m·2^k). Default false. */
  readonly rotate?: boolean;
  /** u32 seed of the rotation. Default 0. Without `rotate` it draws nothing, and the matrix stores 0. */
  readonly seed?: number;
  /**
   * Relative damping δ: H = Σ_X + δ·mean(diag Σ_X)·I. Default 1e−4 (GPTQ's reference code uses 1e−2). For a rank-deficient Σ_X (a LayerNorm's input, fewer calibration samples than features), 1e−2 is the better choice for WaterSIC, rotated or not unless the null directions are dead channels (README).
   */
  readonly damping?: number;
}

/**
 * A target rate (the step is searched), or a fixed step: exactly one of the two.
 *
 * @inline
 */
type QuantizeWeightsRateOrStep =
  | {
      /** Target rate in bits per entry of W, side information included; the step is searched to hit it. */
      readonly rate: number;
      readonly step?: undefined;
      /** How close the rate must come to `rate`, in bits. Default 0.01 (the search aims at half of it). */
      readonly rateTolerance?: number;
    }
  | {
      readonly rate?: undefined;
      /**
       * A fixed step instead of a rate: c (error level of W·L) for WaterSIC, Δ for GPTQ and RTN (then a
       * positive f32 value: it is stored as every input feature's scale). Refused when so small that a
       * code overflows ±2^24; a `rate` search never picks such a step.
       */
      readonly step: number;
      /** A fixed step has no rate search, hence no tolerance. */
      readonly rateTolerance?: undefined;
    };

/**
 * The rescaler fit, and its rounds only with it.
 *
 * @inline
 */
type QuantizeWeightsRescale =
  | {
      /** Fit diagonal row and column rescalers after quantizing (alternating least squares). */
      readonly rescale: true;
      /** Alternating least-squares rounds of the rescaler fit, at most 100. Default 2. */
      readonly rescaleIterations?: number;
    }
  | {
      /** Fit diagonal row and column rescalers after quantizing (alternating least squares). Default false. */
      readonly rescale?: boolean;
      /** Only with `rescale: true`. */
      readonly rescaleIterations?: undefined;
    };

/**
 * Options of {@link quantizeWeights}: a `method`, and exactly one of `rate` (then optionally
 * `rateTolerance`) and `step`; `rescaleIterations` only with `rescale: true`. The type says so, and
 * the run-time checks refuse the same misuse from JavaScript.
 */
export type QuantizeWeightsOptions = QuantizeWeightsCommonOptions & QuantizeWeightsRateOrStep & QuantizeWeightsRescale;

/**
 * The options of RTN without Σ_X: no `rescale` (fitted to tr(ΔΣ_XΔᵀ)) and no `damping` (of Σ_X), which
 * need Σ_X; only RTN works without it.
 */
export type QuantizeWeightsOptionsWithoutSigma = QuantizeWeightsOptions & {
  readonly method: 'rtn';
  readonly rescale?: false;
  readonly damping?: undefined;
};

/**
 * The options {@link quantizeWeights} takes with a Σ_X of type `M`: any with a matrix, RTN's without
 * Σ_X (`QuantizeWeightsOptionsWithoutSigma`) with `null` or `undefined`, and any when `M` may be either
 * (then the run-time checks decide).
 */
export type QuantizeWeightsOptionsFor<M extends Matrix | null | undefined> = [M] extends [null | undefined]
  ? QuantizeWeightsOptionsWithoutSigma
  : QuantizeWeightsOptions;

/** The keys of {@link QuantizeWeightsOptions}: any other key is refused (a typo must not fall back to a default). */
const QUANTIZE_WEIGHTS_OPTION_KEYS = ['method', 'rate', 'step', 'rotate', 'seed', 'damping', 'rescale', 'rescaleIterations', 'rateTolerance'] as const;

/** The default relative damping, 1e−4 · mean diagonal (GPTQ's reference code uses 1e−2). */
export const DEFAULT_DAMPING = 1e-4;
const DEFAULT_RATE_TOLERANCE = 0.01;
const MAX_RATE = 20;
/** Rounds of the rescaler fit: each is O(outputs·n² + n³), and a few converge. */
const DEFAULT_RESCALE_ITERATIONS = 2;
const MAX_RESCALE_ITERATIONS = 100;

/**
 * Quantizes a weight matrix knowing only the second moment Σ_X = E[x·xᵀ] of its inputs, minimizing
 * tr((W − Ŵ)·Σ_X·(W − Ŵ)ᵀ) — WaterSIC, GPTQ/LDLQ or RTN (see `WeightOnlyMethod`).
 *
 * Convention: `w` is in this library's layout, rows = n input features, one column per output
 * feature (a PyTorch weight of shape (out, in) in row-major order is exactly this), and `sigmaX` is
 * n × n. Pipeline: rotate (optional) → H = Σ' + damping → Cholesky H = L·Lᵀ → find the step that
 * hits `rate` (code entropy + side information) → quantize → rescale (optional).
 *
 * Σ_X may be null (or left out) for RTN, which rounds W alone: the analysis then has NaN for the
 * terms that need Σ_X, and `rescale` (fitted to tr(ΔΣ_XΔᵀ)) is refused. WaterSIC and GPTQ refuse a
 * missing Σ_X: their error feedback is built from it.
 *
 * Errors: a `LatticeMatmulError` for a malformed W, an entry of W (after the rotation, if any) beyond
 * MAX_COLUMN_MAGNITUDE = 2^48, a missing Σ_X for WaterSIC or GPTQ, a Σ_X of the wrong size,
 * non-finite, not symmetric, provably not positive semidefinite (`checkSemidefinite`, whatever the
 * damping) or not positive definite after damping, a step that is not positive and
 * finite (for GPTQ and RTN: not a positive f32 value, since it is their stored scale) or so small that
 * a code overflows ±2^24, or a rate that cannot be reached.
 *
 * @example
 * const q = quantizeWeights(w, sigmaX, { method: 'watersic', rate: 4, rotate: true, seed: 1 });
 * q.rate;                      // ≈ 4 bits per entry
 * const wHat = q.decode();     // n × outputs, like w
 * q.distortion(w, sigmaX);     // tr(ΔΣ_XΔᵀ)
 * const rtn = quantizeWeights(w, { method: 'rtn', rate: 3 }); // no Σ_X needed
 */
export function quantizeWeights(w: Matrix, options: QuantizeWeightsOptionsWithoutSigma): WeightOnlyQuantized;
export function quantizeWeights<M extends Matrix | null | undefined>(w: Matrix, sigmaX: M, options: QuantizeWeightsOptionsFor<M>): WeightOnlyQuantized;
export function quantizeWeights(
  w: Matrix,
  second: Matrix | QuantizeWeightsOptions | null | undefined,
  third?: QuantizeWeightsOptions,
): WeightOnlyQuantized {
  const optionsOnly = third === undefined && typeof second === 'object' && second !== null && 'method' in second && !('data' in second);
  const sigmaX = optionsOnly ? null : ((second ?? null) as Matrix | null);
  const options = (optionsOnly ? second : third) as QuantizeWeightsOptions;
  checkMatrix(w, 'W');
  check(isPlainObject(options), () => `quantizeWeights options must be an object { method, rate | step, … }, got ${describeValue(options)}`);
  checkKnownKeys(options, QUANTIZE_WEIGHTS_OPTION_KEYS, 'quantizeWeights options');
  const { method } = options;
  checkMethod(method);
  const n = w.rows;
  const outputs = w.cols;
  check(
    sigmaX !== null || method === 'rtn',
    () => `method '${method}' needs sigmaX, the n × n second moment of the layer's inputs (its error feedback is built from it); only 'rtn' works without it`,
  );
  const sigma = sigmaX === null ? null : checkCovariance(sigmaX, n);
  const rotate = checkOptionalBoolean(options.rotate, 'rotate') ?? false;
  const givenSeed = options.seed === undefined ? 0 : options.seed;
  checkU32(givenSeed, 'seed');
  // Without a rotation no signs are drawn: the stored seed is 0, so the same weights give the same file.
  const seed = rotate ? givenSeed : 0;
  const damping = options.damping === undefined ? DEFAULT_DAMPING : options.damping;
  check(Number.isFinite(damping) && damping >= 0, () => `damping must be a finite number ≥ 0, got ${describeValue(damping)}`);
  const rescale = checkOptionalBoolean(options.rescale, 'rescale') ?? false;
  check(
    !rescale || sigma !== null,
    'rescale: true fits the rescalers to tr(ΔΣ_XΔᵀ) and needs sigmaX; pass Σ_X or leave rescale off',
  );
  // Options that only act with another one are refused without it, as `quantize` refuses a nonce
  // for a scheme without dither: a setting that silently does nothing reads as one that worked.
  check(
    options.damping === undefined || sigma !== null,
    'damping sets H = Σ_X + damping·mean(diag Σ_X)·I, which needs sigmaX; pass Σ_X or leave damping out',
  );
  check(
    options.rescaleIterations === undefined || rescale,
    'rescaleIterations sets the rounds of the rescaler fit, which runs only with rescale: true',
  );
  const rescaleIterations = options.rescaleIterations === undefined ? DEFAULT_RESCALE_ITERATIONS : options.rescaleIterations;
  check(
    Number.isInteger(rescaleIterations) && rescaleIterations >= 0 && rescaleIterations <= MAX_RESCALE_ITERATIONS,
    () => `rescaleIterations must be an integer in [0, ${MAX_RESCALE_ITERATIONS}], got ${describeValue(rescaleIterations)}`,
  );
  check(
    (options.rate === undefined) !== (options.step === undefined),
    'give exactly one of rate (bits per entry, searched) and step (fixed)',
  );
  check(options.rateTolerance === undefined || options.rate !== undefined, 'rateTolerance is the tolerance of the rate search; a fixed step has none');
  const tolerance = options.rateTolerance === undefined ? DEFAULT_RATE_TOLERANCE : options.rateTolerance;
  check(Number.isFinite(tolerance) && tolerance > 0, () => `rateTolerance must be a positive number of bits, got ${describeValue(tolerance)}`);
  if (options.step !== undefined) checkStep(method, options.step);

  const sigmaW2 = meanSquaredEntry(w);
  check(sigmaW2 > 0, 'W is all zeros: there is nothing to quantize');

  const basis = new WeightBasis(n, rotationKindFor(n, rotate), seed);
  const weights = inRotation('W', () => basis.rotateWeights(w));
  const largestWeight = checkWeightMagnitudes(weights, n, rotate);
  let covariance: { h: Float64Array; cholesky: Float64Array; logDetH: number; logDetSigmaX: number } | null = null;
  if (sigma !== null) {
    // First, in the basis given: a Σ_X that is provably no covariance is refused whatever the damping
    // (the refusal below, of a damped H that is not positive definite, advises raising it).
    const logDetSigmaX = logDetOrMinusInfinity(sigma, n);
    // Σ_X rotates at any scale (rotateCovariance takes a power of two out first).
    const h = dampCovariance(inRotation('sigmaX', () => basis.rotateCovariance(sigma)), n, damping);
    let cholesky: Float64Array;
    try {
      cholesky = choleskyLower(h, n, `sigmaX (after damping ${damping}·mean diagonal${rotate ? ', rotated' : ''})`);
    } catch (error) {
      // What to do about it: a covariance measured from data is positive semidefinite, so only rounding or too few samples leave a pivot ≤ 0.
      if (!(error instanceof LatticeMatmulError)) throw error;
      throw new LatticeMatmulError(
        `${error.message}: a covariance of activations is positive semidefinite, so this one is not one (an error in how it was formed) or is singular beyond what damping ${damping} covers; ` +
          'check it, or raise damping (1e-2 is GPTQ\'s usual)',
        { cause: error },
      );
    }
    covariance = { h, cholesky, logDetH: logDetFromCholesky(cholesky, n), logDetSigmaX };
  }
  const problem: WorkingProblem = { method, n, outputs, weights, cholesky: covariance?.cholesky ?? null };

  const sideRate = sideInfoBits(method, n, outputs, rescale) / (n * outputs);
  let quantization: StepQuantization;
  let step: number;
  let evaluations = 1;
  if (options.rate !== undefined) {
    const rate = options.rate;
    check(Number.isFinite(rate) && rate > 0 && rate <= MAX_RATE, () => `rate must be a number of bits per entry in (0, ${MAX_RATE}], got ${describeValue(rate)}`);
    const codeRate = rate - sideRate;
    check(
      codeRate > 0,
      () => `rate ${rate} is not above the side information alone (${sideRate.toFixed(4)} bits per entry for ${method} with ${outputs} outputs)`,
    );
    // The code rate is the mean empirical entropy of each input feature's `outputs` codes: at most
    // log2(outputs), reached only with every code distinct. Beyond it the search would shrink the step
    // until the codes overflow.
    check(
      codeRate < Math.log2(outputs),
      () => `rate ${rate} cannot be reached with ${outputs} outputs: the code rate (${codeRate.toFixed(3)} bits after the side information) is the empirical entropy of each input feature's ${outputs} codes, at most log2(${outputs}) = ${Math.log2(outputs).toFixed(3)}; use more outputs, a lower rate, or a fixed step`,
    );
    // High-rate guess (theory.ts): entropy ≈ ½·log2(2πe·σ_W²/Δ²), plus (1/2n)·log2|H| for WaterSIC.
    const gaussianSpread = Math.sqrt(2 * Math.PI * Math.E * sigmaW2) * 2 ** -codeRate;
    const initialStep = method === 'watersic' && covariance !== null ? gaussianSpread * Math.exp(covariance.logDetH / (2 * n)) : gaussianSpread;
    const found = searchStepForRate(
      (s) => {
        const q = stepFromSearch(problem, s, rate, sigmaW2);
        // A code overflow only says this step is too small: the search takes a larger one.
        return 'overflow' in q ? null : { quantization: q, rate: q.codeRate + sideRate };
      },
      { target: rate, tolerance, initialStep },
    );
    quantization = found.result.quantization;
    step = found.step;
    evaluations = found.evaluations;
  } else {
    step = options.step as number;
    // GPTQ and RTN store the step as every input feature's scale, and a scale decodes to at most 2^48
    // (checked after W's own magnitudes, the likelier cause).
    check(
      method === 'watersic' || Math.fround(step) <= MAX_COLUMN_MAGNITUDE,
      () => `step ${step} is above 2^48 ≈ 2.8e14, the largest magnitude a weight-only code decodes to (${method} stores the step as every input feature's scale); use a smaller step, or give a rate instead`,
    );
    const q = quantizeAtStep(problem, step);
    if ('overflow' in q) throw new LatticeMatmulError(stepTooSmallMessage(step, q, method, rotate));
    quantization = q;
  }

  let columnScales = quantization.columnScales;
  let rowScales: Float32Array | null = null;
  let rescaleObjective: { before: number; after: number } | undefined;
  if (rescale && covariance !== null) {
    const fit = fitRescalers(weights, covariance.h, quantization.codes, columnScales, n, outputs, rescaleIterations);
    columnScales = fit.columnScales;
    rowScales = fit.rowScales;
    rescaleObjective = { before: fit.objectiveBefore, after: fit.objectiveAfter };
  }

  const widths = columnCodeWidths(quantization.codes, n, outputs);
  checkDecodedRange(columnScales, widths, largestWeight, rotate);
  const entropyUnderstatementBits = rateUnderstatementBits(quantization.featureEntropies, widths, outputs);
  if (options.rate !== undefined) {
    check(
      entropyUnderstatementBits <= MAX_RATE_UNDERSTATEMENT,
      () =>
        `rate ${options.rate} with ${outputs} outputs: the step that reaches it gives input features codes whose empirical entropy is within ` +
        `${ENTROPY_SATURATION_MARGIN} bits of log2(${outputs}) = ${Math.log2(outputs).toFixed(3)}, the most ${outputs} codes can show, so the rate would understate ` +
        `their cost by about ${entropyUnderstatementBits.toFixed(3)} bits per entry (their codes are wider); use more outputs, a lower rate, or a fixed step`,
    );
  }
  const analysis: WeightOnlyAnalysis = {
    step,
    evaluations,
    sigmaW2,
    entropyUnderstatementBits,
    ...covarianceTerms(method, sigma, covariance, n, sideRate),
    feedbackPenaltyBits: covariance === null ? 0 : feedbackPenaltyBits(method, covariance.cholesky, n, step, sigmaW2),
    ...(rescaleObjective === undefined ? {} : { rescaleObjective }),
  };
  return new WeightOnlyQuantized({
    method,
    n,
    outputs,
    codes: quantization.codes,
    columnScales,
    rowScales,
    rotation: basis.kind,
    seed,
    analysis,
  });
}

/**
 * The rate counts each input feature's codes at their empirical entropy, which cannot exceed
 * log2(outputs) and understates the true entropy as it nears that cap (few codes, most of them
 * distinct). Within this many bits of the cap a feature's entropy is not trusted.
 */
export const ENTROPY_SATURATION_MARGIN = 1;
/** The largest understatement estimate (bits per entry) a rate search may settle on. */
export const MAX_RATE_UNDERSTATEMENT = 0.5;

/**
 * An estimate (not a bound) of how far the rate understates the codes' cost, where it does so grossly:
 * over the input features whose empirical entropy H_i is within ENTROPY_SATURATION_MARGIN bits of
 * log2(outputs), the code width b_i (what a fixed-width code spends) minus H_i, per entry of W. 0 when
 * no feature is near the cap; features below it, whose entropy is biased low too but by a fraction of
 * a bit, are not counted.
 */
function rateUnderstatementBits(featureEntropies: Float64Array, widths: Uint8Array, outputs: number): number {
  const cap = Math.log2(outputs) - ENTROPY_SATURATION_MARGIN;
  let sum = 0;
  featureEntropies.forEach((entropy, i) => {
    if (entropy > cap) sum += Math.max(0, (widths[i] as number) - entropy);
  });
  return sum / featureEntropies.length;
}

/** Runs a rotation of `what` (W or Σ_X), naming it in a refusal (W's f32 sums overflow for entries near f32's limit). */
function inRotation<T>(what: string, rotate: () => T): T {
  try {
    return rotate();
  } catch (error) {
    if (error instanceof LatticeMatmulError) throw new LatticeMatmulError(`${what} cannot be rotated (rotate: true): ${error.message}`, { cause: error });
    throw error;
  }
}

/**
 * Refuses, before any quantizing, weights the format cannot decode to: a code decodes to at most
 * MAX_COLUMN_MAGNITUDE = 2^48 in the quantization basis, so an entry of W' (W itself without
 * rotation) beyond it cannot be represented at any rate. Entries just below the limit may still be
 * refused once the code widths are known (`checkDecodedRange`); this one names the entry of W.
 */
function checkWeightMagnitudes(weights: Float64Array, n: number, rotate: boolean): number {
  let largest = 0;
  let at = 0;
  for (let k = 0; k < weights.length; k++) {
    const magnitude = Math.abs(weights[k] as number);
    if (magnitude > largest) {
      largest = magnitude;
      at = k;
    }
  }
  if (largest <= MAX_COLUMN_MAGNITUDE) return largest;
  const input = at % n;
  const output = Math.floor(at / n);
  // A power of two scales W exactly in f32; the quantization then scales with it.
  const shift = Math.ceil(Math.log2(largest));
  // Nine digits identify an f32 and print beyond 2^48 in exponent form.
  const entry = rotate
    ? `W in the rotated basis (rotate: true) has an entry of magnitude ${largest.toPrecision(9)} (input feature ${input}, output ${output})`
    : `W has an entry ${(weights[at] as number).toPrecision(9)} at row ${input}, column ${output}`;
  throw new LatticeMatmulError(
    `${entry}, beyond 2^48 ≈ 2.8e14 (MAX_COLUMN_MAGNITUDE), the largest magnitude a weight-only code decodes to; ` +
      `multiply W by 2^-${shift} and the layer's output by 2^${shift}`,
  );
}

/**
 * Refuses, naming W, codes whose scales decode beyond MAX_COLUMN_MAGNITUDE: W passed
 * `checkWeightMagnitudes` but lies within a few times 2^48, and an input feature's widest code
 * (|s_i|·2^(b_i − 1), up to about twice its largest decoded weight) crosses it. The constructor
 * would refuse the same scales without saying what to do.
 */
function checkDecodedRange(columnScales: Float32Array, widths: Uint8Array, largestWeight: number, rotate: boolean): void {
  // The column scales only: a row scale beyond 2^16 has nothing to do with W's size (the constructor names it).
  const problem = scalesOutOfRange(columnScales, widths, null);
  if (problem === null) return;
  // Down to 2^46: a quarter of the limit, the margin a code's width and the error feedback take.
  const shift = Math.max(1, Math.ceil(Math.log2(largestWeight)) - 46);
  throw new LatticeMatmulError(
    `W's largest entry${rotate ? ' in the rotated basis' : ''}, ${largestWeight.toPrecision(9)}, is too close to 2^48 ≈ 2.8e14 (MAX_COLUMN_MAGNITUDE) for its codes: ` +
      `${problem}; multiply W by 2^-${shift} and the layer's output by 2^${shift}`,
  );
}

/**
 * `quantizeAtStep` for a step the rate search tried. A step f32 cannot hold (or a WaterSIC feature
 * step that it cannot) comes from W's scale, not from anything the caller gave as a step: for W far
 * from unit scale the refusal says so, with the power of two that brings it near 1.
 */
function stepFromSearch(problem: WorkingProblem, step: number, rate: number, sigmaW2: number): StepQuantization | CodeOverflow {
  try {
    return quantizeAtStep(problem, step);
  } catch (error) {
    const shift = -Math.round(Math.log2(sigmaW2) / 2);
    if (!(error instanceof LatticeMatmulError) || Math.abs(shift) < 32) throw error;
    throw new LatticeMatmulError(
      `rate ${rate}: W's entries (root mean square ${Math.sqrt(sigmaW2).toExponential(2)}) need steps that f32 cannot hold (${error.message}); ` +
        `multiply W by 2^${shift} and the layer's output by 2^${-shift}`,
      { cause: error },
    );
  }
}

/**
 * Why a fixed `step` was refused for overflowing a code, with about the smallest step that keeps that
 * code in range (a lower bound only: other codes may be larger, and the error feedback of WaterSIC
 * and GPTQ moves with the step).
 */
function stepTooSmallMessage(step: number, overflow: CodeOverflow, method: WeightOnlyMethod, rotate: boolean): string {
  const where = `output ${overflow.output}, input feature ${overflow.input}${rotate ? ' (in the rotated basis)' : ''}`;
  // GPTQ and RTN divide by fround(step), which differs from step for a subnormal one.
  const needed = ((method === 'watersic' ? step : Math.fround(step)) * Math.abs(overflow.code)) / MAX_CODE;
  // A step near the smallest double makes the code Infinity itself: no lower bound to name then.
  const advice = Number.isFinite(needed) ? `use a step of at least about ${needed.toPrecision(3)}` : 'use a far larger step';
  return (
    `step ${step} is too small for W: the ${method} code of ${where} is ${overflow.code}, beyond ±${MAX_CODE} ` +
    `(codes must be exact in f32); ${advice}, or give a rate instead`
  );
}

/** The analysis terms that need Σ_X (NaN without it). */
function covarianceTerms(
  method: WeightOnlyMethod,
  sigma: Float64Array | null,
  covariance: { cholesky: Float64Array; logDetH: number; logDetSigmaX: number } | null,
  n: number,
  sideInfoRate: number,
): Pick<WeightOnlyAnalysis, 'logDetSigmaX' | 'pivotAmGmBits' | 'dampingBits' | 'diagonalAmGmBits' | 'predictedGapBits'> {
  if (sigma === null || covariance === null) {
    return { logDetSigmaX: NaN, pivotAmGmBits: NaN, dampingBits: NaN, diagonalAmGmBits: NaN, predictedGapBits: NaN };
  }
  let diagonalMean = 0;
  for (let i = 0; i < n; i++) diagonalMean += (sigma[i * n + i] as number) / n;
  const logDetPerDimensionBits = covariance.logDetSigmaX / n / Math.LN2;
  const terms = {
    pivotAmGmBits: amGmBits(choleskyPivots(covariance.cholesky, n)),
    dampingBits: 0.5 * (covariance.logDetH / n / Math.LN2 - logDetPerDimensionBits),
    diagonalAmGmBits: 0.5 * (Math.log2(diagonalMean) - logDetPerDimensionBits),
    sideInfoRate,
  };
  return {
    logDetSigmaX: covariance.logDetSigmaX,
    pivotAmGmBits: terms.pivotAmGmBits,
    dampingBits: terms.dampingBits,
    diagonalAmGmBits: terms.diagonalAmGmBits,
    predictedGapBits: predictedGapBits(method, terms),
  };
}

/**
 * ln|Σ|, or −∞ when Σ is singular (positive semidefinite: damping makes it usable); a Σ that is
 * provably indefinite is refused (`checkSemidefinite`).
 */
function logDetOrMinusInfinity(sigma: Float64Array, n: number): number {
  try {
    return logDetFromCholesky(choleskyLower(sigma, n), n);
  } catch (error) {
    if (!(error instanceof LatticeMatmulError)) throw error;
    checkSemidefinite(sigma, n);
    return -Infinity;
  }
}
