import { expect } from 'vitest';

/*
 * The suite's test that a measured / predicted ratio averages to 1 over m independent draws (nonce
 * pairs for universal schemes, data seeds for the others, whose only randomness is the data):
 * |mean r − 1| ≤ 5·max(s, 0.02)/√m + slack, s the sample standard deviation of r. The floor keeps a
 * few draws that happen to agree from setting a tolerance far below the true spread; the slack covers
 * what the prediction itself leaves out (second-order terms, an approximate formula).
 */

/** Sample mean and sample standard deviation (n − 1). */
export function meanAndStd(values: readonly number[]): { mean: number; std: number } {
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  return { mean, std: Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (values.length - 1)) };
}

/** Five standard errors of a mean over `m` draws whose sample standard deviation is `std` (floored at 0.02). */
export function fiveStandardErrors(std: number, m: number): number {
  return (5 * Math.max(std, 0.02)) / Math.sqrt(m);
}

/** Asserts |mean r − 1| ≤ fiveStandardErrors + `slack`, naming `what` and the figures. */
export function expectMeanNearOne(ratios: readonly number[], slack: number, what: string): void {
  const { mean, std } = meanAndStd(ratios);
  const m = ratios.length;
  expect(Math.abs(mean - 1), `${what}: mean ${mean.toFixed(4)} ± ${std.toFixed(4)} over ${m} draws`).toBeLessThanOrEqual(fiveStandardErrors(std, m) + slack);
}
