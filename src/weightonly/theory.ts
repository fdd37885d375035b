import { check, describeValue } from '../errors.js';
import type { WeightOnlyMethod } from './method.js';

/*
 * High-rate theory of weight-only quantization ([2]), stated precisely.
 *
 * Setting. The layer computes y = W·x with W of shape (a outputs × n inputs); only W is quantized
 * and x is known through Σ_X = E[x·xᵀ]. The distortion is the expected output error summed over the
 * a outputs, D = E‖(W − Ŵ)·x‖² = tr(Δ·Σ_X·Δᵀ), Δ = W − Ŵ. The rate R is in bits per entry of W
 * (a·n·R bits in all). Model: the entries of W are iid N(0, σ_W²); σ_W² is the mean squared entry
 * of W (`sigmaW2 = ‖W‖²_F / (a·n)`).
 *
 * Limit. Each row w of W is an independent N(0, σ_W²·I_n) vector with the distortion
 * (w − ŵ)ᵀΣ_X(w − ŵ). In the eigenbasis Σ_X = U·diag(λ)·Uᵀ, v = Uᵀw has iid N(0, σ_W²) entries and
 * the distortion is Σ_k λ_k (v_k − v̂_k)², i.e. plain MSE on the independent Gaussians √λ_k·v_k of
 * variance σ_W²·λ_k. Reverse waterfilling gives the exact distortion–rate function of one row:
 *   D_row(R) = Σ_k min(θ, σ_W²·λ_k),   n·R = Σ_k max(0, ½·log2(σ_W²·λ_k / θ)).
 * At high rate (θ ≤ σ_W²·λ_min) every component is active: θ = σ_W²·|Σ_X|^{1/n}·2^{−2R} and, per
 * entry of W (D divided by a·n),
 *   d_limit(R) = D / (a·n) = σ_W² · |Σ_X|^{1/n} · 2^{−2R}.
 * This "weight-only limit" is a lower bound at every rate (it relaxes the rate constraint by letting
 * components take negative rate); it is the exact limit only in the high-rate regime. The exact
 * value at any rate is `reverseWaterfillingDistortion`.
 *
 * Gap. A scheme with distortion D at rate R is ½·log2(D / D_limit(R)) bits above the limit: the
 * rate it wastes, since at high rate one bit divides D by 4.
 *
 * Predictions (high rate, iid Gaussian W, uniform rounding error of variance step²/12, entropy of
 * a finely rounded Gaussian = ½·log2(2πe·variance) − log2(step)). With H = Σ_X (+ damping) = L·Lᵀ:
 * - WaterSIC: every column i of W·L is rounded with the same step c (the step of column i of W is
 *   α_i = c/L_ii), and the LDLQ feedback makes the error of W·L equal to those rounding errors, so
 *   D = a·n·c²/12. Column i's codes have entropy ½·log2(2πe·σ_W²·L_ii²/c²); averaging over i,
 *   R = ½·log2(2πe·σ_W²/c²) + (1/2n)·log2|H|. Eliminating c:
 *   D/(a·n) = (2πe/12)·σ_W²·|H|^{1/n}·2^{−2R}: ½·log2(2πe/12) = 0.2546 bit above the limit (plus
 *   ½·log2(|H|/|Σ_X|)/n for the damping), whatever the basis.
 * - GPTQ/LDLQ: one step Δ for every column; the transformed error of column i is L_ii times a
 *   rounding error, so D/(a·n) = (Δ²/12)·AM(L_ii²), R = ½·log2(2πe·σ_W²/Δ²), and the gap is
 *   0.2546 + ½·log2(AM(L_ii²)/GM(L_ii²)) (GM(L_ii²) = |H|^{1/n}). L_ii depends on the basis.
 * - RTN: iid rounding error in W: D/(a·n) = (Δ²/12)·AM(diag Σ_X), gap 0.2546 +
 *   ½·log2(AM(diag Σ_X)/|Σ_X|^{1/n}) = ½·log2(AM/GM of the eigenvalues), basis-free on average.
 * Side information (the f32 steps) is part of R; a prediction at total rate R therefore adds the
 * side-information rate r_side to the gap (the codes only get R − r_side bits).
 */

/** ½·log2(2πe/12) ≈ 0.2546 bit: the high-rate loss of entropy-coded uniform scalar rounding. */
export const SCALAR_HIGH_RATE_GAP_BITS = 0.5 * Math.log2((2 * Math.PI * Math.E) / 12);

function checkRate(rate: number): void {
  check(Number.isFinite(rate) && rate >= 0, () => `rate must be a finite number of bits per entry ≥ 0, got ${describeValue(rate)}`);
}

/**
 * The weight-only limit per entry of W, σ_W²·|Σ_X|^{1/n}·2^{−2R} (see the derivation above).
 * `logDetSigmaX` is the natural log of |Σ_X|; multiply by a·n for the total tr(ΔΣ_XΔᵀ).
 *
 * @example
 * weightOnlyLimitPerEntry(1, 0, 4, 4); // Σ_X = I₄, 4 bits: 2^−8
 */
export function weightOnlyLimitPerEntry(sigmaW2: number, logDetSigmaX: number, n: number, rate: number): number {
  check(Number.isFinite(sigmaW2) && sigmaW2 > 0, () => `sigmaW2 must be a positive finite number, got ${describeValue(sigmaW2)}`);
  check(Number.isInteger(n) && n > 0, () => `n must be a positive integer, got ${describeValue(n)}`);
  check(!Number.isNaN(logDetSigmaX) && logDetSigmaX < Infinity, () => `logDetSigmaX must be a number < ∞, got ${describeValue(logDetSigmaX)}`);
  checkRate(rate);
  return sigmaW2 * Math.exp(logDetSigmaX / n) * 2 ** (-2 * rate);
}

/**
 * The exact Gaussian distortion–rate function per entry of W at `rate` bits per entry, by reverse
 * waterfilling over the eigenvalues of Σ_X: (1/n)·Σ_k min(θ, σ_W²·λ_k) with θ chosen so that
 * (1/n)·Σ_k max(0, ½·log2(σ_W²·λ_k/θ)) = rate. Equals `weightOnlyLimitPerEntry` at high rate and
 * exceeds it when some component gets no rate. Eigenvalues ≤ 0 count as components that need no
 * rate.
 *
 * @example
 * reverseWaterfillingDistortion([1, 1], 1, 2); // 2^−4 (all components active)
 */
export function reverseWaterfillingDistortion(eigenvalues: ArrayLike<number>, sigmaW2: number, rate: number): number {
  check(eigenvalues.length > 0, 'reverseWaterfillingDistortion needs at least one eigenvalue');
  check(Number.isFinite(sigmaW2) && sigmaW2 > 0, () => `sigmaW2 must be a positive finite number, got ${describeValue(sigmaW2)}`);
  checkRate(rate);
  const n = eigenvalues.length;
  // In logarithms: σ_W²·λ_k itself can overflow or underflow a double (σ_W² = 1e308, λ = 2), and a
  // bisection on infinite bounds would never end.
  const logVariances: number[] = [];
  for (let k = 0; k < n; k++) {
    const l = eigenvalues[k] as number;
    check(Number.isFinite(l), () => `eigenvalue ${k} is not finite: ${l}`);
    if (l > 0) logVariances.push(Math.log(sigmaW2) + Math.log(l));
  }
  if (logVariances.length === 0) return 0;
  /** The rate at water level θ = e^t: (1/n)·Σ_{v_k > θ} ½·log2(v_k/θ). */
  const rateAt = (t: number): number => {
    let r = 0;
    for (const v of logVariances) if (v > t) r += (v - t) / (2 * Math.LN2);
    return r / n;
  };
  // Rate decreases in t; bisection between a t with too much rate and the largest log variance.
  // A loop, not Math.max(...logVariances): spreading overflows the stack past ≈ 125 000 values.
  let hi = -Infinity;
  for (const v of logVariances) hi = Math.max(hi, v);
  let lo = hi - 2 * Math.LN2 * (rate * (n / logVariances.length) + 1) - 1;
  // Steps that double: a fixed step stops moving lo once |lo| passes 2^53 times it (a rate of 1e17 hung).
  for (let step = 10; rateAt(lo) < rate; step *= 2) lo -= step;
  for (let iteration = 0; iteration < 200 && hi - lo > 1e-13 * Math.max(1, Math.abs(hi)); iteration++) {
    const mid = (lo + hi) / 2;
    if (rateAt(mid) > rate) lo = mid;
    else hi = mid;
  }
  // D = (1/n)·Σ min(v_k, θ) = θ·(1/n)·Σ min(v_k/θ, 1), formed in logarithms too.
  const t = (lo + hi) / 2;
  let share = 0;
  for (const v of logVariances) share += Math.exp(Math.min(v - t, 0));
  const distortion = Math.exp(t + Math.log(share / n));
  check(Number.isFinite(distortion) && distortion >= Number.MIN_VALUE * 2 ** 52, () => `the distortion (e^${(t + Math.log(share / n)).toFixed(1)}) is outside the range of a double; scale sigmaW2 or the eigenvalues`);
  return distortion;
}

/** ½·log2(distortion / limit): how many bits of rate a scheme loses against the limit. */
export function gapBits(distortion: number, limit: number): number {
  check(Number.isFinite(distortion) && distortion >= 0, () => `distortion must be finite and ≥ 0, got ${describeValue(distortion)}`);
  check(Number.isFinite(limit) && limit > 0, () => `limit must be finite and > 0, got ${describeValue(limit)}`);
  return 0.5 * Math.log2(distortion / limit);
}

/** ½·log2(AM/GM) of positive values: 0 when they are all equal. */
export function amGmBits(values: ArrayLike<number>): number {
  check(values.length > 0, 'amGmBits needs at least one value');
  let sum = 0;
  let logSum = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    check(Number.isFinite(v) && v > 0, () => `amGmBits: value ${i} must be positive and finite, got ${describeValue(v)}`);
    sum += v;
    logSum += Math.log(v);
  }
  const n = values.length;
  return 0.5 * (Math.log2(sum / n) - logSum / n / Math.LN2);
}

/** The basis- and Σ_X-dependent terms of the high-rate predictions (see the derivation above). */
export interface PredictionTerms {
  /** ½·log2(AM/GM) of the Cholesky pivots L_ii² of the damped H in the quantization basis (GPTQ's loss). */
  readonly pivotAmGmBits: number;
  /** ½·log2(|H|/|Σ_X|)/n: what the damping costs WaterSIC and GPTQ. */
  readonly dampingBits: number;
  /** ½·log2(AM(diag Σ_X)/|Σ_X|^{1/n}): RTN's loss beyond 0.2546 bit. */
  readonly diagonalAmGmBits: number;
  /** Side information in bits per entry of W. */
  readonly sideInfoRate: number;
}

/**
 * The high-rate prediction of `method`'s gap to the weight-only limit at a total rate that includes
 * `terms.sideInfoRate`:
 * - watersic: 0.2546 + damping + side information,
 * - gptq: 0.2546 + ½·log2(AM/GM of L_ii²) + damping + side information,
 * - rtn: 0.2546 + ½·log2(AM(diag Σ_X)/GM(λ)) + side information.
 *
 * @example
 * predictedGapBits('watersic', { pivotAmGmBits: 0.3, dampingBits: 0, diagonalAmGmBits: 0.5, sideInfoRate: 0 }); // 0.2546
 */
export function predictedGapBits(method: WeightOnlyMethod, terms: PredictionTerms): number {
  const base = SCALAR_HIGH_RATE_GAP_BITS + terms.sideInfoRate;
  switch (method) {
    case 'watersic':
      return base + terms.dampingBits;
    case 'gptq':
      return base + terms.pivotAmGmBits + terms.dampingBits;
    case 'rtn':
      return base + terms.diagonalAmGmBits;
  }
}
