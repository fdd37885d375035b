import f32ScalingSource from '../../../shaders/f32_scaling.wgsl?raw';
import { exactF32Wgsl } from './exactF32.js';

/**
 * WGSL library (no bindings, no entry points): shaders/exact_f32.wgsl followed by
 * shaders/f32_scaling.wgsl, i.e. `exact_div`, `exact_sqrt` (and their `_bits` forms),
 * `scale_by_power_of_two_bits(x, e)` (the CPU's `Math.fround(x · 2^e)` on bit patterns) and
 * `unfused(x, runtime_zero)` (keeps a rounded product out of a fused multiply-add).
 *
 * @example
 * const code = `${f32ScalingWgsl()}\n${kernelSource}`;
 */
export function f32ScalingWgsl(): string {
  return `${exactF32Wgsl}\n${f32ScalingSource}`;
}
