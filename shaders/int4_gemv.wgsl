// y = Wᵀx with W quantized to INT4, symmetric, one fp16 scale per group of 32 entries along n: the
// int4 baseline, stored the way WebLLM (q4f16_1) and llama.cpp (Q4_0) store it and read the way
// llama.cpp's WebGPU mat-vec reads it (16-byte weight loads, the x slice in registers reused across
// several output columns, subgroup reduction).
//
// Layout (src/gpu/kernels/int4Gemv.ts packs it): W is n × cols column-major and column j gives output
// y[j]. Each column is cut into G = ⌈n/32⌉ groups of 32 entries (the last one padded with level 0).
//   codes:  group g of column j is the vec4<u32> codes[codes_first + j·G + g]; entry e (0..31) of
//           the group is nibble e % 8 (bits 4·(e % 8) …) of word e / 8. A nibble holds level + 8,
//           level ∈ [−7, 7].
//   scales: column j owns S = ⌈G/2⌉ words from scales_first + j·S; the fp16 scale of group g is
//           half g % 2 (low half first) of word g / 2, decoded with the core builtin unpack2x16float
//           (no shader-f16 needed).
//   x:      32·G floats from vec4 index x_first, zero past n (so the padding contributes 0·0).
//   y:      y[y_first + j].
//
// Work split: 256 invocations, COLUMNS = 8 output columns per workgroup. Invocation t takes groups
// t, t + 256, …: per group it loads the 32 x values once (8 vec4) into registers and then, for each
// of its 8 columns, one 16-byte code vector and one scale word (8 independent 16-byte loads in flight),
// so x costs 8 loads per 8 groups of weights. Consecutive invocations read consecutive code vectors of
// a column (coalesced). The invocation sums go through shaders/column_gemv_reduce.wgsl.
//
// Nibble decode without shifts per nibble or conversions (the magic-number trick): for the nibble at
// bits 4k of a 16-bit half-word (k = 0..3), (word & (0xF << 4k)) | 0x4B000000 is the f32 2^23 + 16^k·v
// (v the stored nibble), and subtracting 2^23 + 8·16^k leaves 16^k·(v − 8) = 16^k·level exactly (both
// in [2^23, 2^24): the difference is exact). The 16^−k is folded into x once per group (x·16^−k, exact
// powers of two unless x underflows below 2^−114), so a nibble costs one and-or (a single LOP3 on
// NVIDIA), one subtraction and one multiply-add: about 25 instructions per 4-byte word (≈ 6.3 per
// code byte) against ≈ 11 for shift/mask/convert per nibble, and no int→float conversion (a
// quarter-rate pipe on NVIDIA). No division or modulo in the loop (g / 2 and g % 2 are shifts).

const THREADS: u32 = 256u;
const COLUMNS: u32 = 8u;

struct ColumnSums {
  lo: vec4<f32>,
  hi: vec4<f32>,
}

// struct Int4GemvParams is declared once, in src/gpu/kernels/int4Gemv.ts (a UniformLayout), which
// generates its WGSL in front of this file.
@group(0) @binding(0) var<uniform> params: Int4GemvParams;
@group(0) @binding(1) var<storage, read> codes: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> scales: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

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

// scale·Σ level·x over one group of one column (x0..x7 the group's x, pre-scaled by POSITION_SCALES).
fn group_dot(words: vec4<u32>, scale_word: u32, odd: bool,
             x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>,
             x4: vec4<f32>, x5: vec4<f32>, x6: vec4<f32>, x7: vec4<f32>) -> f32 {
  let pair = unpack2x16float(scale_word);
  let scale = select(pair.x, pair.y, odd);
  var sum = half_word_dot(words.x, x0) + half_word_dot(words.x >> 16u, x1);
  sum = sum + half_word_dot(words.y, x2) + half_word_dot(words.y >> 16u, x3);
  sum = sum + half_word_dot(words.z, x4) + half_word_dot(words.z >> 16u, x5);
  sum = sum + half_word_dot(words.w, x6) + half_word_dot(words.w >> 16u, x7);
  return scale * sum;
}

// Vector index of group 0 of column `first + c`, clamped to the last column (see f32_gemv.wgsl).
fn code_base(first: u32, c: u32) -> u32 {
  return params.codes_first + min(first + c, params.cols - 1u) * params.groups;
}

fn scale_base(first: u32, c: u32) -> u32 {
  return params.scales_first + min(first + c, params.cols - 1u) * params.scale_words;
}

fn column_partials(workgroup_index: u32, thread: u32) -> ColumnSums {
  let first = workgroup_index * COLUMNS;
  let cl = vec4<u32>(code_base(first, 0u), code_base(first, 1u), code_base(first, 2u), code_base(first, 3u));
  let ch = vec4<u32>(code_base(first, 4u), code_base(first, 5u), code_base(first, 6u), code_base(first, 7u));
  let sl = vec4<u32>(scale_base(first, 0u), scale_base(first, 1u), scale_base(first, 2u), scale_base(first, 3u));
  let sh = vec4<u32>(scale_base(first, 4u), scale_base(first, 5u), scale_base(first, 6u), scale_base(first, 7u));
  var lo = vec4<f32>(0.0);
  var hi = vec4<f32>(0.0);
  for (var g = thread; g < params.groups; g = g + THREADS) {
    let xb = params.x_first + 8u * g;
    let x0 = x[xb] * POSITION_SCALES;
    let x1 = x[xb + 1u] * POSITION_SCALES;
    let x2 = x[xb + 2u] * POSITION_SCALES;
    let x3 = x[xb + 3u] * POSITION_SCALES;
    let x4 = x[xb + 4u] * POSITION_SCALES;
    let x5 = x[xb + 5u] * POSITION_SCALES;
    let x6 = x[xb + 6u] * POSITION_SCALES;
    let x7 = x[xb + 7u] * POSITION_SCALES;
    let sw = g >> 1u;
    let odd = (g & 1u) == 1u;
    lo = lo + vec4<f32>(
      group_dot(codes[cl.x + g], scales[sl.x + sw], odd, x0, x1, x2, x3, x4, x5, x6, x7),
      group_dot(codes[cl.y + g], scales[sl.y + sw], odd, x0, x1, x2, x3, x4, x5, x6, x7),
      group_dot(codes[cl.z + g], scales[sl.z + sw], odd, x0, x1, x2, x3, x4, x5, x6, x7),
      group_dot(codes[cl.w + g], scales[sl.w + sw], odd, x0, x1, x2, x3, x4, x5, x6, x7));
    hi = hi + vec4<f32>(
      group_dot(codes[ch.x + g], scales[sh.x + sw], odd, x0, x1, x2, x3, x4, x5, x6, x7),
      group_dot(codes[ch.y + g], scales[sh.y + sw], odd, x0, x1, x2, x3, x4, x5, x6, x7),
      group_dot(codes[ch.z + g], scales[sh.z + sw], odd, x0, x1, x2, x3, x4, x5, x6, x7),
      group_dot(codes[ch.w + g], scales[sh.w + sw], odd, x0, x1, x2, x3, x4, x5, x6, x7));
  }
  return ColumnSums(lo, hi);
}

fn store_column(workgroup_index: u32, c: u32, value: f32) {
  let column = workgroup_index * COLUMNS + c;
  if (column < params.cols) {
    y[params.y_first + column] = value;
  }
}
