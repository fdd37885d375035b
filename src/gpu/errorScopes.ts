import { LatticeMatmulError } from '../errors.js';

/**
 * Runs `work` inside WebGPU `validation` and `out-of-memory` error scopes and throws a
 * `LatticeMatmulError` naming `what` if either caught an error, so a bad bind group, an invalid
 * shader or an allocation failure surfaces where it happened instead of as an uncaptured-error log.
 *
 * Error scopes belong to the device, not to the caller: work that other code submits on the same
 * device while `work` is pending is caught too. Failures reported through promises (`mapAsync`)
 * reject those promises and are not scope errors.
 *
 * @example
 * await withValidation(device, 'matmul f32', () => dispatchMatmulF32(device, encoder, args));
 */
export async function withValidation<T>(device: GPUDevice, what: string, work: () => T | Promise<T>): Promise<T> {
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let outcome: { readonly value: T } | { readonly error: unknown };
  try {
    outcome = { value: await work() };
  } catch (error) {
    outcome = { error };
  }
  // Pop both scopes whatever happened, innermost first, so the device's scope stack stays balanced.
  const validationError = await device.popErrorScope();
  const memoryError = await device.popErrorScope();
  const messages = [validationError, memoryError]
    .filter((error): error is GPUError => error !== null)
    .map((error) => `${error.constructor.name}: ${error.message}`);
  if (messages.length > 0) {
    throw new LatticeMatmulError(`WebGPU error in ${what}: ${messages.join('\n')}`);
  }
  if ('error' in outcome) throw outcome.error;
  return outcome.value;
}
