import { check, LatticeMatmulError, describeValue } from '../errors.js';

/** One-sided (no bracket yet), the search moves at most this many bits of step per evaluation. */
const ONE_SIDED_MOVE = 8;

/** A secant above −FLAT_SLOPE bits of rate per bit of step counts as a plateau of the rate. */
const FLAT_SLOPE = 1e-3;

/** Bits of step to which the search narrows the gap between a step below the target and an overflowing one. */
const OVERFLOW_RESOLUTION = 1 / 64;

/** What `searchStepForRate` found: the step, what `evaluate` returned there, and how many calls it took. */
export interface RateSearchResult<T> {
  readonly step: number;
  readonly result: T;
  readonly evaluations: number;
}

/**
 * Finds a step whose rate is within `tolerance` of `target`: it aims at half the tolerance and
 * settles for the closest point within the full tolerance when it cannot do better.
 * `evaluate(step)` quantizes at that step and reports `rate`, which decreases with the step: at high
 * rate by about one bit per doubling, so the search runs on x = log2(step) with the secant method,
 * starting from `initialStep` (the high-rate guess) and the slope −1. Once the target is bracketed, a secant point that leaves the
 * bracket is replaced by the bracket's midpoint, so the search converges even where the empirical
 * entropy is not smooth.
 *
 * `evaluate` returns null where the step is too small to quantize at all (a code overflows): that
 * step counts as one whose rate is above the target, so it narrows the bracket from below and the
 * next try is the bracket's midpoint, or 8 bits up while no step below the target is known. A first
 * guess far off (one huge output row inflates σ_W²) thus still reaches a rate that a step in
 * between hits.
 *
 * Where the rate does not move at all between two steps (a plateau: weights that take few distinct
 * values), the next try is 8 bits further; squeezed within 1/64 bit of a step whose codes overflow and
 * still short of the target, the search stops.
 *
 * Throws a `LatticeMatmulError` when `maxEvaluations` calls do not get within the tolerance (the
 * empirical entropy of a small matrix jumps in steps larger than the tolerance), or the rate stops
 * short of the target before the codes overflow.
 *
 * @example
 * const { step } = searchStepForRate((s) => ({ rate: 3 - Math.log2(s) }), { target: 4, tolerance: 0.01, initialStep: 1 });
 * // step ≈ 0.5
 */
export function searchStepForRate<T extends { readonly rate: number }>(
  evaluate: (step: number) => T | null,
  options: { target: number; tolerance: number; initialStep: number; maxEvaluations?: number },
): RateSearchResult<T> {
  const { target, tolerance, initialStep } = options;
  const maxEvaluations = options.maxEvaluations ?? 40;
  check(Number.isFinite(target), () => `target rate must be finite, got ${describeValue(target)}`);
  check(Number.isFinite(tolerance) && tolerance > 0, () => `rate tolerance must be positive, got ${describeValue(tolerance)}`);
  check(Number.isFinite(initialStep) && initialStep > 0, () => `initial step must be positive, got ${describeValue(initialStep)}`);

  let evaluations = 0;
  let best: { x: number; result: T; miss: number } | null = null;
  // Bracket: `low` has rate above the target (step too small), `high` below it.
  let low: { x: number; f: number } | null = null;
  let high: { x: number; f: number } | null = null;
  let previous: { x: number; f: number } | null = null;
  let x = Math.log2(initialStep);
  while (evaluations < maxEvaluations) {
    const result = evaluate(2 ** x);
    evaluations++;
    let next: number;
    if (result === null) {
      // Too small a step: above any target rate. No secant through it (it has no rate), so
      // `previous` stays the last point that had one.
      if (low === null || x > low.x) low = { x, f: Infinity };
      next = high === null ? x + ONE_SIDED_MOVE : (low.x + high.x) / 2;
    } else {
      check(Number.isFinite(result.rate), () => `the rate at step ${2 ** x} is not finite (${result.rate})`);
      const f = result.rate - target;
      if (best === null || Math.abs(f) < best.miss) best = { x, result, miss: Math.abs(f) };
      if (Math.abs(f) <= tolerance / 2) return { step: 2 ** x, result, evaluations };
      if (f > 0 && (low === null || x > low.x)) low = { x, f };
      if (f < 0 && (high === null || x < high.x)) high = { x, f };

      let slope = -1;
      let flat = false;
      if (previous !== null && previous.x !== x) {
        const secant = (f - previous.f) / (x - previous.x);
        // Keep a sane slope: flat stretches of the empirical entropy must not throw x far away.
        if (Number.isFinite(secant) && secant < 0) slope = Math.min(Math.max(secant, -4), -0.1);
        // No change at all over the last move (weights that take few distinct values: once the step
        // is below their spacing, every smaller step gives the same codes up to scale): a secant step
        // of |f| at a time would spend every evaluation on the plateau, so take the largest move.
        flat = Number.isFinite(secant) && secant >= -FLAT_SLOPE;
      }
      previous = { x, f };
      next = flat ? x + Math.sign(f) * ONE_SIDED_MOVE : x - f / slope;
    }
    if (low !== null && high !== null) {
      if (!(next > low.x && next < high.x)) next = (low.x + high.x) / 2;
      if (high.x - low.x < 1e-9) break;
      // Squeezed against steps whose codes overflow, still below the target: a smaller step is not
      // usable and a larger one gives less rate, so more bisection cannot reach it.
      if (low.f === Infinity && high.x - low.x < OVERFLOW_RESOLUTION) break;
    } else {
      next = Math.min(Math.max(next, x - ONE_SIDED_MOVE), x + ONE_SIDED_MOVE);
    }
    x = next;
  }
  const closest = best;
  if (closest === null) {
    throw new LatticeMatmulError(
      `could not reach rate ${target}: every step tried in ${evaluations} evaluations, up to ${2 ** (low?.x ?? x)}, is too small for the weights (their codes overflow)`,
    );
  }
  if (closest.miss <= tolerance) return { step: 2 ** closest.x, result: closest.result, evaluations };
  // Short of the target with the smaller steps overflowing: the cause is the range of the codes, not
  // the coarse entropy the message below blames.
  if (low !== null && low.f === Infinity && closest.result.rate < target) {
    throw new LatticeMatmulError(
      `could not reach rate ${target} ± ${tolerance} bits: the closest was ${closest.result.rate} at step ${2 ** closest.x}, ` +
        `and step ${2 ** low.x} is already too small for the weights (a code beyond ±2^24: the weights take too few ` +
        `distinct values for this rate, or the largest are too far above the typical ones); use a lower rate`,
    );
  }
  throw new LatticeMatmulError(
    `could not reach rate ${target} ± ${tolerance} bits in ${evaluations} evaluations: the closest was ` +
      `${closest.result.rate} at step ${2 ** closest.x} (the empirical entropy of each input feature's codes moves ` +
      `in coarse jumps: few codes per input feature, or weights that take few distinct values; use more outputs, ` +
      `a larger tolerance, or a fixed step)`,
  );
}
