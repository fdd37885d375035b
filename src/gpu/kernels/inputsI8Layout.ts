/*
 * The layouts of x̂, x̃ rounded to int8 for the int8-input GEMVs, in one place for their writers (the
 * rounding kernels, inputsI8.ts and e8ResidueGemvI8.ts, and the rotation's last pass, hadamard.ts) and
 * their readers (the GEMVs):
 *   - D3 (groups of INPUT_GROUP = 12): per right-hand side r and group g, 4 level words at word
 *     4·(r·groups + g) (block b's three levels in word b), then one f32 scale per group and
 *     right-hand side from word `inputsI8ScalesFirst(groups, rhs)`;
 *   - E8 (groups of E8_INPUT_GROUP = 32, the residue GEMV): per right-hand side and group 12 words
 *     from word 12·(r·groups + g) (block b's even coordinates in word 2b, odd ones in word 2b + 1,
 *     then the 4 blocks' offsets 16·Σx̂), then the scales from word `e8InputsScalesFirst(groups, rhs)`.
 * The rule is shaders/int8_group.wgsl's.
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

/** Coordinates per int8 group of the E8 residue GEMV's x̂: one quad of 4 E8 blocks. */
export const E8_INPUT_GROUP = 32;

/** Words of E8 x̂ levels per group and right-hand side: 3 vec4 (the levels as 8 words, the 4 offsets). */
const E8_LEVEL_WORDS_PER_GROUP = 12;

/** The word where E8 x̂'s scales start: after the level words of every group and right-hand side. */
export function e8InputsScalesFirst(groups: number, rhs: number): number {
  return E8_LEVEL_WORDS_PER_GROUP * groups * rhs;
}

/** Bytes of E8 x̂ for `groups` groups and `rhs` right-hand sides (levels, then scales), padded to 16 so that a vec4 view covers the last scale. */
export function e8InputsBytes(groups: number, rhs: number): number {
  return 16 * Math.ceil((4 * (E8_LEVEL_WORDS_PER_GROUP + 1) * groups * rhs) / 16);
}

/**
 * The two layouts by group size, as the rotation's last pass writes them (hadamard.ts, `int8Output`):
 * the value of its shader's `int8_out`, the bytes it writes for `groups` groups of `cols` columns, and
 * the word where the scales start.
 */
export const INT8_OUTPUT_LAYOUTS = {
  [INPUT_GROUP]: { code: 1, bytes: (groups: number, cols: number): number => INPUT_BYTES_PER_GROUP * groups * cols, scalesFirst: inputsI8ScalesFirst },
  [E8_INPUT_GROUP]: { code: 2, bytes: e8InputsBytes, scalesFirst: e8InputsScalesFirst },
} as const;
