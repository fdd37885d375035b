import exactF32Source from '../../../shaders/exact_f32.wgsl?raw';

/**
 * WGSL library (no bindings, no entry points) with correctly rounded f32 division and square root
 * computed in integer arithmetic: `exact_div(a, b)`, `exact_sqrt(x)` and their bit-pattern forms
 * `exact_div_bits(a, b)`, `exact_sqrt_bits(x)` (u32 in, u32 out). Their CPU twins are
 * `Math.fround(a / b)` and `Math.fround(Math.sqrt(x))`, bit for bit (docs/ARCHITECTURE.md, exactness
 * rule 2). Domain and special cases are documented in shaders/exact_f32.wgsl.
 *
 * A kernel that needs them is compiled as this source followed by its own.
 *
 * @example
 * const module = device.createShaderModule({ label: 'quantize', code: `${exactF32Wgsl}\n${quantizeSource}` });
 */
export const exactF32Wgsl: string = exactF32Source;
