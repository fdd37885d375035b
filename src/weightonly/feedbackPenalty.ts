import { check } from '../errors.js';
import type { WeightOnlyMethod } from './method.js';

/**
 * First-order rate cost of the LDLQ error feedback at a finite step, in bits per entry (0 for RTN).
 *
 * The high-rate predictions treat the target of input feature i as W_i·L_ii alone, but the feedback
 * adds F_i = Σ_{k>i} (W − Ŵ)_k·L_ki. Writing the transformed errors E = (W − Ŵ)·L, L lower-triangular,
 * gives F_i = −L_ii·Σ_{m>i} E_m·(L⁻¹)_mi, so with independent errors of variance v_m
 *   Var(F_i) = L_ii²·Σ_{m>i} v_m·(L⁻¹)_mi².
 * A Gaussian target of variance σ_W²·L_ii² + Var(F_i) rounded with the same step costs
 * ½·log2(1 + Var(F_i)/(σ_W²·L_ii²)) more bits than the prediction assumed, at the same distortion.
 * WaterSIC: v_m = c²/12; GPTQ: v_m = L_mm²·Δ²/12. Averaged over the n input features. The penalty
 * shrinks like 4^{−R} and is what separates measurement from the high-rate prediction at 2–3 bits
 * on ill-conditioned Σ_X, whose L⁻¹ has large entries (Σ_m (L⁻¹)_mi² ≤ (H⁻¹)_ii).
 * Cost O(n³/6) (one triangular inverse).
 */
export function feedbackPenaltyBits(
  method: WeightOnlyMethod,
  cholesky: Float64Array,
  n: number,
  step: number,
  sigmaW2: number,
): number {
  check(cholesky.length === n * n, () => `feedbackPenaltyBits: expected an ${n}×${n} Cholesky factor`);
  check(Number.isFinite(step) && step > 0 && Number.isFinite(sigmaW2) && sigmaW2 > 0, 'feedbackPenaltyBits: step and sigmaW2 must be positive');
  if (method === 'rtn') return 0;
  // In logarithms: a fixed WaterSIC step c may be any finite number, and c² overflows past ≈ 1.3e154
  // (then Infinity·0 = NaN for a feature without feedback, and Infinity for one with it).
  const logScale = 2 * Math.log2(step) - Math.log2(12) - Math.log2(sigmaW2);
  const x = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    // Column i of L⁻¹ by forward substitution on e_i: x_i = 1/L_ii, x_m = −(Σ_{i≤k<m} L_mk·x_k)/L_mm.
    x[i] = 1 / (cholesky[i * n + i] as number);
    let weighted = 0;
    for (let m = i + 1; m < n; m++) {
      const row = m * n;
      let s = 0;
      for (let k = i; k < m; k++) s += (cholesky[row + k] as number) * (x[k] as number);
      const lmm = cholesky[row + m] as number;
      const xm = -s / lmm;
      x[m] = xm;
      weighted += (method === 'gptq' ? lmm * lmm : 1) * xm * xm;
    }
    total += halfLog2OnePlus(logScale, weighted);
  }
  return total / n;
}

/** ½·log2(1 + 2^logScale·weighted) for weighted ≥ 0, without forming 2^logScale (which may overflow or underflow). */
function halfLog2OnePlus(logScale: number, weighted: number): number {
  if (!(weighted > 0)) return 0;
  const x = logScale + Math.log2(weighted);
  return x > 0 ? 0.5 * (x + Math.log2(1 + 2 ** -x)) : 0.5 * Math.log2(1 + 2 ** x);
}
