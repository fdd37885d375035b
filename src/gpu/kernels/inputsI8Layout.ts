/*
 * The layout of x̂, x̃ rounded to int8 for the int8-input GEMVs, in one place for its writers (the
 * rounding kernel, inputsI8.ts, and the rotation's last pass, hadamard.ts) and its readers (the GEMVs
 * through `inputsI8ForRange`): per right-hand side r and group g of INPUT_GROUP coordinates, 4 level
 * words at word 4·(r·groups + g) (block b's three levels in word b), then one f32 scale per group and
 * right-hand side from word `inputsI8ScalesFirst(groups, rhs)` (shaders/int8_group.wgsl, the rule).
 */

/** Coordinates per int8 group of x̃: one code word of 4 D3 blocks. */
export const INPUT_GROUP = 12;

/** Bytes of x̂ per group and right-hand side: 4 level words and a scale. */
export const INPUT_BYTES_PER_GROUP = 20;

/** The word where the scales start: after the 4 level words of each group and right-hand side. */
export function inputsI8ScalesFirst(groups: number, rhs: number): number {
  return 4 * groups * rhs;
}

/** Bytes of a buffer of x̂ for `groups` groups and `rhs` right-hand sides, padded to 16 so that a vec4 view covers the last scale. */
export function inputsI8Bytes(groups: number, rhs: number): number {
  return 16 * Math.ceil((INPUT_BYTES_PER_GROUP * groups * rhs) / 16);
}
