/**
 * ‖approx − exact‖² / ‖exact‖² in float64 over two arrays of equal length: the normalized squared
 * error the suite measures a reconstruction or a product path against its reference with.
 */
export function relativeSquaredError(approx: ArrayLike<number>, exact: ArrayLike<number>): number {
  if (approx.length !== exact.length) throw new Error(`relativeSquaredError: ${approx.length} values against ${exact.length}`);
  let error = 0;
  let energy = 0;
  for (let i = 0; i < exact.length; i++) {
    error += ((approx[i] as number) - (exact[i] as number)) ** 2;
    energy += (exact[i] as number) ** 2;
  }
  return error / energy;
}
