import { check, describeValue } from '../errors.js';
import type { OverloadRule } from './schemes.js';

/**
 * Fixed-point representation of the scales of one overload rule.
 *
 * A rotated, normalized coordinate u (≈ N(0,1)) is converted once to the integer
 * `X = round(u · 2^FRACTION_BITS / unit)`; scale index j then quantizes the rational `X / (k_j · 2^F)`,
 * i.e. `u / (unit · k_j)`. With integer multiples `k_j` every code decision — nearest point, overload,
 * least-error choice — is exact integer arithmetic, identical on the CPU and the GPU (docs/ARCHITECTURE.md).
 * The base scale is `BASE_MULTIPLE` units, so β values are honoured to about 1/32 relative.
 */
export const FRACTION_BITS = 6;
export const BASE_MULTIPLE = 16;
/** |X| is clamped here; far beyond any scale in use, small enough for i32 arithmetic on 2X ± den. */
export const FIXED_POINT_LIMIT = 2 ** 24;
/** Bound on k_j for least-error selection, so that squared errors of 8 coordinates fit an i32. */
export const MAX_BETA_SET_MULTIPLE = 256;
/**
 * Bound on every denominator k_j · 2^F: 2X ± den and den·P stay exact i32 values (the GPU encoder's
 * arithmetic) for D3 and Z. E8 compares doubled squared distances and needs the tighter
 * `MAX_E8_DENOMINATOR` (its float64 comparison on the CPU is exact below it).
 */
export const MAX_DENOMINATOR = 2 ** 29;
export const MAX_E8_DENOMINATOR = 2 ** 24;

export interface ScaleGrid {
  /** `unit = fround(β₀ / BASE_MULTIPLE)`: the scale of one step of k. */
  readonly unit: number;
  /** `k_j`, strictly increasing; scale j is `unit · k_j`. */
  readonly multiples: Int32Array;
  /** Bits of a stored scale index: ceil(log2(multiples.length)), at least 0. */
  readonly indexBits: number;
  /** Whether index j is chosen by least error (betaSet) or first fit (ladder). */
  readonly leastError: boolean;
}

export function scaleGrid(rule: OverloadRule, maxDenominator = MAX_DENOMINATOR): ScaleGrid {
  const betas =
    rule.kind === 'ladder'
      ? Array.from({ length: rule.steps }, (_, t) => rule.beta * rule.ratio ** t)
      : [...rule.betas];
  const unit = Math.fround((betas[0] as number) / BASE_MULTIPLE);
  const multiples = Int32Array.from(betas, (b) => Math.round(b / unit));
  for (let j = 1; j < multiples.length; j++) {
    check(
      (multiples[j] as number) > (multiples[j - 1] as number),
      () => `scales ${betas[j - 1]} and ${betas[j]} are closer than the fixed-point grid (1/${BASE_MULTIPLE} of the first); spread them further`,
    );
  }
  const largestMultiple = multiples[multiples.length - 1] as number;
  // Strict: every denominator stays below maxDenominator, so a ratio equal to the bound is refused.
  check(
    largestMultiple * 2 ** FRACTION_BITS < maxDenominator,
    () => `the scales span a ratio of ${largestMultiple / BASE_MULTIPLE}; it must stay below ${maxDenominator / 2 ** FRACTION_BITS / BASE_MULTIPLE}`,
  );
  const leastError = rule.kind === 'betaSet';
  if (leastError) {
    const largest = multiples[multiples.length - 1] as number;
    check(
      largest <= MAX_BETA_SET_MULTIPLE,
      () => `betaSet spans a ratio of ${(largest / BASE_MULTIPLE).toFixed(1)}; at most ${MAX_BETA_SET_MULTIPLE / BASE_MULTIPLE} is supported`,
    );
  }
  return { unit, multiples, indexBits: Math.ceil(Math.log2(multiples.length)), leastError };
}

/**
 * Why `unit` and `multiples` are not exactly `grid`'s, or null when they are. A deterministic matrix
 * carries its unit and multiples (for readers in other languages), but they are no free parameters:
 * the decoder and the inner-product table scale every entry by them, so anything but the scheme's own
 * grid (`unit: 1e38`) would decode to another matrix, or to ±Infinity past the product range check.
 * Used by `checkQuantizedMatrix` (an Int32Array) and the container reader (a JSON array) alike.
 */
export function scaleGridMismatch(grid: ScaleGrid, unit: unknown, multiples: unknown): string | null {
  if (unit !== grid.unit) return `unit is ${describeValue(unit)}, but the scheme's scale grid has unit ${grid.unit}`;
  const list = Array.isArray(multiples) || multiples instanceof Int32Array ? (multiples as ArrayLike<unknown>) : null;
  let same = list !== null && list.length === grid.multiples.length;
  for (let i = 0; same && list !== null && i < list.length; i++) same = list[i] === grid.multiples[i];
  return same ? null : `multiples must be the scheme's scale multiples [${grid.multiples.join(', ')}]`;
}
