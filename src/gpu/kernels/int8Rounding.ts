import { roundHalfEven } from '../../lattices/lattice.js';

/*
 * The int8 rounding rule of every int8-input GEMV on the CPU, written once for its twins
 * (`quantizeInputsI8`, `weightOnlyInputsI8`): the same f32 expressions, in the same order, as
 * `int8_level` and `int8_scale_bits` in shaders/int8_group.wgsl and shaders/weightonly_inputs_i8.wgsl.
 * Why the f32 order matters: 127·x/m formed in float64 and x/m·127 formed in f32 round to different
 * levels near a half-integer, so a twin that forms it otherwise disagrees with the GPU more often than
 * the GPU's division (within 2.5 ULP) makes it.
 */

/** x̂ of a coordinate `value` of a group whose max |x| is m > 0: clamp(round(f32(f32(value / m) · 127)), −127, 127), ties to even as WGSL's round. */
export function int8Level(value: number, m: number): number {
  return Math.max(-127, Math.min(127, roundHalfEven(Math.fround(Math.fround(value / m) * 127))));
}

/** s = f32(m / 127), the scale a group's levels multiply; NaN for a group with a non-finite entry. */
export function int8Scale(m: number, finite: boolean): number {
  return finite ? Math.fround(m / 127) : NaN;
}
