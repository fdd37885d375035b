// y = Wᵀx with W quantized to INT4, symmetric, one fp16 scale per group of 32 entries along n: the
// int4 baseline, stored the way WebLLM (q4f16_1) and llama.cpp (Q4_0) store it, and read with several
// invocations per group, as llama.cpp's CUDA mat-vec reads a Q4_0 block (consecutive lanes on
// consecutive code words and x entries), the x slice in registers reused across several output
// columns, subgroup reduction.
//
// Layout (src/gpu/kernels/int4Gemv.ts packs it): W is n × cols column-major and column j gives output
// y[j]. Each column is cut into G = ⌈n/32⌉ groups of 32 entries (the last one padded with level 0).
//   codes:  group g of column j is the 4 words from codes[codes_first + 4·(j·G + g)]; entry e
//           (0..31) of the group is nibble e % 8 (bits 4·(e % 8) …) of word e / 8. A nibble holds
//           level + 8, level ∈ [−8, 7] (quantizeInt4Weights writes q4f16_1's −7..7; Q4_0 blocks,
//           repacked, also use −8, and their fp16 scales may be negative).
//   scales: column j owns S = ⌈G/2⌉ words from scales_first + j·S; the fp16 scale of group g is
//           half g % 2 (low half first) of word g / 2, decoded with the core builtin unpack2x16float
//           (no shader-f16 needed).
//   x:      32·G floats from vec4 index x_first, zero past n (so the padding contributes 0·0).
//   y:      y[y_first + j].
//
// Work split: 256 invocations, COLUMNS = 8 output columns per workgroup. Invocation t takes the code
// words t, t + 256, … of each column (word i = 4g + w: word w of group g, entries 32g + 8w … + 7): per
// word it loads its 8 x values once (2 vec4) into registers and then, for each of its 8 columns, one
// code word and one scale word (16 independent loads in flight). Consecutive invocations read
// consecutive code words and consecutive 32-byte slices of x, so a warp's load touches 1 cache line
// of codes (2 where a column's codes do not start on a 128-byte line: G not a multiple of 8) and 8
// of x. Why not a whole group (16 bytes of codes) per invocation, as this kernel did
// before: then each invocation read 128 bytes of x, 128 bytes from its neighbour's, and each of its 8
// vec4 loads of x touched 32 lines — ≈ 296 passes of an SM's load/store path per 4 KB of codes against
// ≈ 128 now (bench/README.md, "An H200's budget per byte"), for ≈ 1.3× the instructions per code
// byte (a scale and an accumulation per word instead of per group; RADV's RDNA3 count 9.7 against
// 7.4). The invocation sums go through shaders/column_gemv_reduce.wgsl.
//
// Nibble decode without shifts per nibble or conversions (the magic-number trick): for the nibble at
// bits 4k of a 16-bit half-word (k = 0..3), (word & (0xF << 4k)) | 0x4B000000 is the f32 2^23 + 16^k·v
// (v the stored nibble), and subtracting 2^23 + 8·16^k leaves 16^k·(v − 8) = 16^k·level exactly (both
// in [2^23, 2^24): the difference is exact). The 16^−k is folded into x once per word (x·16^−k, exact
// powers of two unless x underflows below 2^−114), so a nibble costs one and-or (a single LOP3 on
// NVIDIA), one subtraction and one multiply-add: about 25 instructions per 4-byte word (≈ 6.3 per
// code byte) against ≈ 11 for shift/mask/convert per nibble, and no int→float conversion (a
// quarter-rate pipe on NVIDIA). No division or modulo in the loop (word / 4, g / 2, g % 2 are shifts).

// The constants, the codes/scales/y bindings and the column addressing come from
// shaders/int4_gemv_common.wgsl, compiled in front of this file.
@group(0) @binding(3) var<storage, read> x: array<vec4<f32>>;

const NIBBLE_MASKS = vec4<u32>(0xFu, 0xF0u, 0xF00u, 0xF000u);
const EXPONENT_BITS = vec4<u32>(0x4B000000u);
// 2^23 + 8·16^k: the magic float of a nibble holding the zero level 8 at position k.
const ZERO_LEVELS = vec4<f32>(8388616.0, 8388736.0, 8390656.0, 8421376.0);
// 16^−k for the 4 nibble positions of a half-word.
const POSITION_SCALES = vec4<f32>(1.0, 0.0625, 0.00390625, 0.000244140625);

// Σ level_k·x_k·16^k over the 4 nibbles of the low half of `word` (x_scaled = x·16^−k): Σ level·x.
fn half_word_dot(word: u32, x_scaled: vec4<f32>) -> f32 {
  let magic = bitcast<vec4<f32>>((vec4<u32>(word) & NIBBLE_MASKS) | EXPONENT_BITS);
  return dot(magic - ZERO_LEVELS, x_scaled);
}

// The 8 x values of code word i (vec4s 2i and 2i + 1), pre-scaled by POSITION_SCALES.
struct WordInputs {
  low: vec4<f32>,
  high: vec4<f32>,
}

fn word_inputs(i: u32) -> WordInputs {
  let xb = params.x_first + 2u * i;
  return WordInputs(x[xb] * POSITION_SCALES, x[xb + 1u] * POSITION_SCALES);
}

// scale·Σ level·x over one code word (8 entries) of one column.
fn word_dot(word: u32, scale_word: u32, odd: bool, inputs: WordInputs) -> f32 {
  return group_scale(scale_word, odd) * (half_word_dot(word, inputs.low) + half_word_dot(word >> 16u, inputs.high));
}
