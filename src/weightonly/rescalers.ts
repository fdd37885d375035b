import { LatticeMatmulError } from '../errors.js';
import { choleskyLower, solveLower, solveLowerTransposed } from './linalg.js';
import { columnCodeWidths } from './packedCodes.js';
import { scalesOutOfRange } from './quantized.js';

/** Column and row scales after the diagonal rescaler fit, with the objective before and after. */
export interface RescalerFit {
  readonly columnScales: Float32Array;
  readonly rowScales: Float32Array;
  readonly objectiveBefore: number;
  readonly objectiveAfter: number;
}

/**
 * Fits the diagonal rescalers of Ŵ' = diag(t)·Z·diag(s) (math orientation, outputs × n) to W' by
 * alternating least squares on the damped objective Σ_j (w_j − ŵ_j)ᵀ·H·(w_j − ŵ_j), the codes Z fixed:
 * - t-step: t_j = ⟨w_j, H·u_j⟩ / ⟨u_j, H·u_j⟩ with u_j = s∘z_j (one scalar per output);
 * - s-step: (H ∘ Σ_j t_j²·z_j·z_jᵀ)·s = Σ_j t_j·z_j∘(H·w_j), a positive definite n × n system
 *   (Schur product of H with a PSD matrix of positive diagonal) over the input features that have a
 *   nonzero code; the others keep their scale.
 * Each step minimizes the objective exactly over its block, so it never increases. `iterations`
 * rounds of (t, s), then a last t-step; the scales are rounded to f32 and the result is kept only if
 * the objective of the f32-decoded weights went down and the format can store the scales
 * (`scalesOutOfRange`), else the input scales come back with t = 1.
 * Cost per round O(outputs·n² + n³).
 */
export function fitRescalers(
  weights: Float64Array,
  h: Float64Array,
  codes: Int32Array,
  columnScales: Float32Array,
  n: number,
  outputs: number,
  iterations: number,
): RescalerFit {
  const ones = new Float32Array(outputs).fill(1);
  const objectiveBefore = dampedObjective(weights, h, codes, columnScales, ones, n, outputs);
  const s = Float64Array.from(columnScales);
  const t = new Float64Array(outputs).fill(1);
  const hw = new Float64Array(n * outputs);
  for (let j = 0; j < outputs; j++) symmetricProduct(h, n, weights.subarray(j * n, (j + 1) * n), hw.subarray(j * n, (j + 1) * n));
  const u = new Float64Array(n);
  const hu = new Float64Array(n);
  const rowStep = (): void => {
    for (let j = 0; j < outputs; j++) {
      const base = j * n;
      for (let i = 0; i < n; i++) u[i] = (s[i] as number) * (codes[base + i] as number);
      symmetricProduct(h, n, u, hu);
      let numerator = 0;
      let denominator = 0;
      for (let i = 0; i < n; i++) {
        numerator += (weights[base + i] as number) * (hu[i] as number);
        denominator += (u[i] as number) * (hu[i] as number);
      }
      t[j] = denominator > 0 ? numerator / denominator : 1;
    }
  };
  const columnStep = (): boolean => {
    const m = new Float64Array(n * n); // lower triangle of Σ_j t_j²·z_j·z_jᵀ
    const b = new Float64Array(n);
    const v = new Float64Array(n);
    for (let j = 0; j < outputs; j++) {
      const base = j * n;
      const tj = t[j] as number;
      for (let i = 0; i < n; i++) v[i] = tj * (codes[base + i] as number);
      for (let i = 0; i < n; i++) {
        const vi = v[i] as number;
        if (vi === 0) continue;
        b[i] = (b[i] as number) + vi * (hw[base + i] as number);
        const row = i * n;
        for (let k = 0; k <= i; k++) m[row + k] = (m[row + k] as number) + vi * (v[k] as number);
      }
    }
    const active: number[] = [];
    for (let i = 0; i < n; i++) if ((m[i * n + i] as number) > 0) active.push(i);
    const size = active.length;
    if (size === 0) return false;
    const system = new Float64Array(size * size);
    const rhs = new Float64Array(size);
    for (let p = 0; p < size; p++) {
      const i = active[p] as number;
      rhs[p] = b[i] as number;
      for (let q = 0; q <= p; q++) {
        const k = active[q] as number;
        system[p * size + q] = (h[i * n + k] as number) * (m[i * n + k] as number);
      }
    }
    let l: Float64Array;
    try {
      l = choleskyLower(system, size, 'rescaler system');
    } catch (error) {
      if (error instanceof LatticeMatmulError) return false; // numerically singular: keep the scales
      throw error;
    }
    const solution = solveLowerTransposed(l, size, solveLower(l, size, rhs));
    for (let p = 0; p < size; p++) s[active[p] as number] = solution[p] as number;
    return true;
  };
  for (let round = 0; round < iterations; round++) {
    rowStep();
    if (!columnStep()) break;
  }
  rowStep();
  const fittedColumns = Float32Array.from(s);
  const fittedRows = Float32Array.from(t);
  const objectiveAfter = dampedObjective(weights, h, codes, fittedColumns, fittedRows, n, outputs);
  // A fit the format cannot store (a row scale beyond 2^16 where a row's codes barely matter, say)
  // is dropped like one that does not help.
  const storable = scalesOutOfRange(fittedColumns, columnCodeWidths(codes, n, outputs), fittedRows) === null;
  if (!(objectiveAfter < objectiveBefore) || !storable) {
    return { columnScales: Float32Array.from(columnScales), rowScales: ones, objectiveBefore, objectiveAfter: objectiveBefore };
  }
  return { columnScales: fittedColumns, rowScales: fittedRows, objectiveBefore, objectiveAfter };
}

/**
 * Σ_j δ_jᵀ·H·δ_j with δ_j = w_j − ŵ_j and ŵ_j decoded exactly like `WeightOnlyQuantized`:
 * fround(fround(z·s_i)·t_j).
 */
export function dampedObjective(
  weights: Float64Array,
  h: Float64Array,
  codes: Int32Array,
  columnScales: Float32Array,
  rowScales: Float32Array,
  n: number,
  outputs: number,
): number {
  const delta = new Float64Array(n);
  let total = 0;
  for (let j = 0; j < outputs; j++) {
    const base = j * n;
    const tj = rowScales[j] as number;
    for (let i = 0; i < n; i++) {
      const decoded = Math.fround(Math.fround((codes[base + i] as number) * (columnScales[i] as number)) * tj);
      delta[i] = (weights[base + i] as number) - decoded;
    }
    for (let i = 0; i < n; i++) {
      const di = delta[i] as number;
      if (di === 0) continue;
      const row = i * n;
      let s = 0;
      for (let k = 0; k < i; k++) s += (h[row + k] as number) * (delta[k] as number);
      total += di * ((h[row + i] as number) * di + 2 * s);
    }
  }
  return total;
}

/** out = H·x for a symmetric row-major H. */
function symmetricProduct(h: Float64Array, n: number, x: ArrayLike<number>, out: Float64Array): void {
  for (let i = 0; i < n; i++) {
    const row = i * n;
    let s = 0;
    for (let k = 0; k < n; k++) s += (h[row + k] as number) * (x[k] as number);
    out[i] = s;
  }
}
