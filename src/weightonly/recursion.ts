import { check, describeValue } from '../errors.js';
import { columnCodeEntropy } from './codeRate.js';
import type { WeightOnlyMethod } from './method.js';
import { MAX_CODE } from './packedCodes.js';

/**
 * A weight matrix ready to be quantized at any step: W' in the quantization basis and the Cholesky
 * factor of the damped covariance H' = L·Lᵀ in that basis.
 */
export interface WorkingProblem {
  readonly method: WeightOnlyMethod;
  /** Input features (rows of the stored W). */
  readonly n: number;
  /** Output features (columns of the stored W). */
  readonly outputs: number;
  /** W' in the stored layout: output j, input i at j·n + i (row j of the math a × n matrix). */
  readonly weights: Float64Array;
  /** L, lower-triangular row-major n × n, H' = L·Lᵀ; null for RTN quantized without Σ_X (it needs none). */
  readonly cholesky: Float64Array | null;
}

/** Integer codes and per-input-feature scales of one quantization, with the codes' rate. */
export interface StepQuantization {
  /** z, stored layout (j·n + i); the decoded weight is fround(z · columnScales[i]). */
  readonly codes: Int32Array;
  /** s_i = α_i·γ_i as f32 (α_i = c/L_ii for WaterSIC, 0 where all its codes are 0; Δ for GPTQ and RTN). */
  readonly columnScales: Float32Array;
  /** Empirical entropy of each input feature's codes across the outputs (bits per entry). */
  readonly featureEntropies: Float64Array;
  /** Their mean over input features: the code rate (bits per entry). */
  readonly codeRate: number;
}

/**
 * Quantizing at a step too small for the weights: the first code found beyond ±MAX_CODE (codes must
 * be exact in f32). A value, not an error, because the rate search expects it while it probes small
 * steps; a caller that fixed the step refuses it with a message that fits its call.
 */
export interface CodeOverflow {
  readonly overflow: true;
  /** Input feature (in the quantization basis) and output of the code. */
  readonly input: number;
  readonly output: number;
  readonly code: number;
}

/**
 * A step `quantizeAtStep` accepts for `method`: a positive finite number, and for GPTQ and RTN one
 * whose f32 rounding is too, because they store fround(step) as the scale of every input feature
 * (Infinity would decode to NaN, 0 to nothing). WaterSIC's c only sets the error level of W'·L and
 * may lie outside the f32 range (tiny W with tiny Σ_X needs c < 2^-149); its scales γ_i·c/L_ii are
 * checked as they are computed.
 */
export function checkStep(method: WeightOnlyMethod, step: number): void {
  check(Number.isFinite(step) && step > 0, () => `step must be a positive finite number, got ${describeValue(step)}`);
  check(
    method === 'watersic' || (Number.isFinite(Math.fround(step)) && Math.fround(step) > 0),
    () => `step ${step} is outside the f32 range (2^-149 ≈ 1.4e-45 to 3.4e38): ${method} stores it as the f32 scale of every input feature`,
  );
}

/** |z| beyond the largest code (NaN included, though a valid step and finite weights give none). */
function overflows(z: number): boolean {
  return !(Math.abs(z) <= MAX_CODE);
}

/**
 * Quantizes the working problem with scalar step `step` (for WaterSIC the common error level c of
 * the transformed columns W'·L, for GPTQ and RTN the step Δ of W' itself).
 *
 * WaterSIC and GPTQ run the LDLQ recursion, input features i = n−1 down to 0. With the feedback
 * F_i = Σ_{k>i} (W'_k − Ŵ'_k)·L_ki (all outputs at once) the target of column i is
 * T_i = W'_i·L_ii + F_i, and whatever error column i makes is exactly the error of column i of
 * (W' − Ŵ')·L, because L is lower-triangular. WaterSIC: z = round(T_i/c), γ_i = ⟨z, T_i⟩/(c·⟨z, z⟩)
 * (the least-squares fit of c·γ·z to T_i), s_i = fround(γ_i·c/L_ii) (0 when every code of column i
 * is 0). GPTQ: z = round((T_i/L_ii)/Δ),
 * s_i = fround(Δ). The feedback uses the decoded value fround(z·s_i), so the error it propagates is
 * the error the decoder will see. RTN: z = round(W'/Δ).
 *
 * Cost O(outputs·n²/2) for WaterSIC and GPTQ, O(outputs·n) for RTN. `Math.round` breaks ties
 * upward; ties have probability zero for real-valued weights. Returns a `CodeOverflow` instead when
 * the step is too small for the weights (a code beyond ±MAX_CODE).
 */
export function quantizeAtStep(problem: WorkingProblem, step: number): StepQuantization | CodeOverflow {
  const { method, n, outputs } = problem;
  checkStep(method, step);
  return method === 'rtn' ? roundToNearest(problem.weights, n, outputs, step) : ldlq(problem, step, method === 'watersic');
}

function roundToNearest(weights: Float64Array, n: number, outputs: number, step: number): StepQuantization | CodeOverflow {
  const delta = Math.fround(step);
  const codes = new Int32Array(n * outputs);
  const column = new Int32Array(outputs);
  const featureEntropies = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < outputs; j++) {
      const z = Math.round((weights[j * n + i] as number) / delta);
      if (overflows(z)) return { overflow: true, input: i, output: j, code: z };
      codes[j * n + i] = z;
      column[j] = z;
    }
    featureEntropies[i] = columnCodeEntropy(column);
  }
  return { codes, columnScales: new Float32Array(n).fill(delta), featureEntropies, codeRate: mean(featureEntropies) };
}

function ldlq(problem: WorkingProblem, step: number, waterfilling: boolean): StepQuantization | CodeOverflow {
  const { n, outputs, weights: w, cholesky: l } = problem;
  check(l !== null, () => `${problem.method} needs the Cholesky factor of Σ_X`);
  const delta = Math.fround(step);
  const feedback = new Float64Array(n * outputs);
  const codes = new Int32Array(n * outputs);
  const columnScales = new Float32Array(n);
  const column = new Int32Array(outputs);
  const featureEntropies = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    const lii = l[i * n + i] as number;
    let scale: number;
    if (waterfilling) {
      let zt = 0;
      let zz = 0;
      for (let j = 0; j < outputs; j++) {
        const t = (w[j * n + i] as number) * lii + (feedback[j * n + i] as number);
        const z = Math.round(t / step);
        if (overflows(z)) return { overflow: true, input: i, output: j, code: z };
        column[j] = z;
        zt += z * t;
        zz += z * z;
      }
      if (zz === 0) {
        // Every code is 0 (a quiet input feature: tiny L_ii, or weights far below the step): the
        // scale decodes nothing, and c/L_ii can be far beyond the format's range, so it is 0.
        scale = 0;
      } else {
        // z and T share their sign wherever z ≠ 0, so γ > 0.
        const gamma = zt / (step * zz);
        scale = Math.fround((gamma * step) / lii);
        check(scale > 0 && Number.isFinite(scale), () => `the step of input feature ${i} (${(gamma * step) / lii}) does not fit in f32`);
      }
    } else {
      for (let j = 0; j < outputs; j++) {
        const t = (w[j * n + i] as number) + (feedback[j * n + i] as number) / lii;
        const z = Math.round(t / delta);
        if (overflows(z)) return { overflow: true, input: i, output: j, code: z };
        column[j] = z;
      }
      scale = delta;
    }
    columnScales[i] = scale;
    featureEntropies[i] = columnCodeEntropy(column);
    const rowL = i * n;
    for (let j = 0; j < outputs; j++) {
      const z = column[j] as number;
      const base = j * n;
      codes[base + i] = z;
      const error = (w[base + i] as number) - Math.fround(z * scale);
      if (error === 0) continue;
      // Row i of L times this output's error feeds every input feature k < i still to be quantized.
      for (let k = 0; k < i; k++) feedback[base + k] = (feedback[base + k] as number) + error * (l[rowL + k] as number);
    }
  }
  return { codes, columnScales, featureEntropies, codeRate: mean(featureEntropies) };
}

function mean(values: Float64Array): number {
  let sum = 0;
  for (const value of values) sum += value;
  return sum / values.length;
}
