/*
 * Counts the calls of the fast Hadamard transform, for tests that check how many a rotation makes
 * rather than how long it takes. A test file installs it with
 *
 *   vi.mock('../../src/rotation/hadamard.js', async (importOriginal) =>
 *     (await import('./transformCounter.js')).countingHadamard(await importOriginal()));
 *
 * and reads (and resets) `transforms`.
 */

/** Calls of `hadamardTransformInPlace` since the last reset, the entries they covered, the longest. */
export const transforms = { calls: 0, entries: 0, longest: 0 };

/** The module `original` (src/rotation/hadamard.js) with a pass-through transform that counts into `transforms`. */
export function countingHadamard<T extends { hadamardTransformInPlace(x: Float32Array, N: number): void }>(original: T): T {
  return {
    ...original,
    hadamardTransformInPlace: (x: Float32Array, N: number): void => {
      transforms.calls++;
      transforms.entries += N;
      transforms.longest = Math.max(transforms.longest, N);
      original.hadamardTransformInPlace(x, N);
    },
  };
}
