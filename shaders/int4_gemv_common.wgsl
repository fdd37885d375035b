// What the two int4 g32 GEMVs share (src/gpu/kernels/int4Gemv.ts compiles the generated params
// struct, this file, then shaders/int4_gemv.wgsl (f32 x) or shaders/int4_gemv_i8.wgsl (x rounded to
// int8)): the work split and its loop, the weight and output bindings, where a column's codes and
// scales start, the fp16 scale of a group, and the store of a column total. The layout of the codes
// and scales and the work split are described in shaders/int4_gemv.wgsl. The variant file defines
//   struct WordInputs                                  (what one code word's 8 entries of x need)
//   fn word_inputs(i: u32) -> WordInputs               (loaded once per word, for the 8 columns)
//   fn word_dot(word: u32, scale_word: u32, odd: bool, inputs: WordInputs) -> f32
//                                                      (scale·Σ level·x over the word's 8 entries)

const THREADS: u32 = 256u;
const COLUMNS: u32 = 8u;

struct ColumnSums {
  lo: vec4<f32>,
  hi: vec4<f32>,
}

// struct Int4GemvParams is declared once, in src/gpu/kernels/int4Gemv.ts (a UniformLayout), which
// generates its WGSL in front of this file.
@group(0) @binding(0) var<uniform> params: Int4GemvParams;
@group(0) @binding(1) var<storage, read> codes: array<u32>;
@group(0) @binding(2) var<storage, read> scales: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// Word index of word 0 of column `first + c`, clamped to the last column (see f32_gemv.wgsl).
fn code_base(first: u32, c: u32) -> u32 {
  return params.codes_first + 4u * min(first + c, params.cols - 1u) * params.groups;
}

fn scale_base(first: u32, c: u32) -> u32 {
  return params.scales_first + min(first + c, params.cols - 1u) * params.scale_words;
}

// The fp16 scale of group g from its scale word (half g % 2: `odd`), decoded with the core builtin
// unpack2x16float (no shader-f16 needed); selecting the half first saves an unpack.
fn group_scale(scale_word: u32, odd: bool) -> f32 {
  return unpack2x16float(select(scale_word, scale_word >> 16u, odd)).x;
}

fn store_column(workgroup_index: u32, c: u32, value: f32) {
  let column = workgroup_index * COLUMNS + c;
  if (column < params.cols) {
    y[params.y_first + column] = value;
  }
}

fn column_partials(workgroup_index: u32, thread: u32) -> ColumnSums {
  let first = workgroup_index * COLUMNS;
  let cl = vec4<u32>(code_base(first, 0u), code_base(first, 1u), code_base(first, 2u), code_base(first, 3u));
  let ch = vec4<u32>(code_base(first, 4u), code_base(first, 5u), code_base(first, 6u), code_base(first, 7u));
  let sl = vec4<u32>(scale_base(first, 0u), scale_base(first, 1u), scale_base(first, 2u), scale_base(first, 3u));
  let sh = vec4<u32>(scale_base(first, 4u), scale_base(first, 5u), scale_base(first, 6u), scale_base(first, 7u));
  var lo = vec4<f32>(0.0);
  var hi = vec4<f32>(0.0);
  for (var i = thread; i < 4u * params.groups; i = i + THREADS) {
    // Word i of a column: word i % 4 of group i / 4, entries 8i … 8i + 7 of the padded column.
    let inputs = word_inputs(i);
    let g = i >> 2u;
    let sw = g >> 1u;
    let odd = (g & 1u) == 1u;
    lo = lo + vec4<f32>(
      word_dot(codes[cl.x + i], scales[sl.x + sw], odd, inputs),
      word_dot(codes[cl.y + i], scales[sl.y + sw], odd, inputs),
      word_dot(codes[cl.z + i], scales[sl.z + sw], odd, inputs),
      word_dot(codes[cl.w + i], scales[sl.w + sw], odd, inputs));
    hi = hi + vec4<f32>(
      word_dot(codes[ch.x + i], scales[sh.x + sw], odd, inputs),
      word_dot(codes[ch.y + i], scales[sh.y + sw], odd, inputs),
      word_dot(codes[ch.z + i], scales[sh.z + sw], odd, inputs),
      word_dot(codes[ch.w + i], scales[sh.w + sw], odd, inputs));
  }
  return ColumnSums(lo, hi);
}
