/**
 * Every error this library throws on purpose is a `LatticeMatmulError`, so an application can tell a
 * bad argument (or an adapter that cannot run a kernel) from a bug. The message names the argument
 * and the value that was refused.
 */
export class LatticeMatmulError extends Error {
  override readonly name = 'LatticeMatmulError';
}

/** Throws a `LatticeMatmulError` with `message` unless `condition` holds. */
export function check(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) throw new LatticeMatmulError(typeof message === 'string' ? message : message());
}

/** A positive integer (sizes, counts), or a clear error naming `what`. */
export function checkPositiveInteger(value: number, what: string): void {
  check(Number.isInteger(value) && value > 0, () => `${what} must be a positive integer, got ${value}`);
}
