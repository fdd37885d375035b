// x̂ for the int8-input weight-only GEMV (shaders/weightonly_codes_fixed_i8.wgsl): the scaled inputs
// x'_i = s_i·x̃_i (s the column scales, x̃ already in the quantization basis) rounded to int8 per code
// word of the fixed-width layout, in the order that word's fields are read. CPU twin
// `weightOnlyInputsI8` (src/gpu/kernels/weightOnlyInputsI8.ts).
//
// The fixed-width layout (src/weightonly/packedCodes.ts, `fixedWidthCodes`) stores code i of a row in
// field t = ⌊i / W⌋ of word w = i mod W (W words per row, P = CODES_PER_WORD fields of CODE_BITS bits
// each). One group of the rounding is the P inputs of one word, i = t·W + w for t < P (0 at i ≥ n):
//   m = max |x'_i| over the group, level_t = clamp(round(127·x'_i / m), −127, 127), scale = m / 127
// (shaders/int8_group.wgsl's rule: a group with a non-finite entry gets a NaN scale, zero levels).
// Record w of vector v, RECORD_WORDS u32 from records_first + v·record_stride + w·RECORD_WORDS:
//   words 0 … BYTE_WORDS − 1: the levels as packed i8, field t in byte lane `field_lane(t)` of word
//     `field_word(t)` (generated with the GEMV's `code_bytes`, which extracts a code word's fields in
//     the same order, so that a packed dot product pairs each code with its input);
//   word BYTE_WORDS: scale (f32 bits);
//   word BYTE_WORDS + 1: ZERO_CODE·Σ_t level_t (i32): the GEMV reads fields biased by ZERO_CODE;
//   any further words: 0 (records are whole vec4s).
// The prefix (src/gpu/kernels/weightOnlyInputsI8.ts) declares CODE_BITS, CODES_PER_WORD, BYTE_WORDS,
// RECORD_WORDS, SPREAD_FIELDS, ZERO_CODE, X_F16 and the parameter struct; shaders/int8_group.wgsl
// follows this file.

@group(0) @binding(0) var<uniform> params: WeightOnlyInputsI8Params;
@group(0) @binding(1) var<storage, read> x: array<u32>;  // f32 bits, or f16 halves when X_F16
@group(0) @binding(2) var<storage, read> column_scales: array<f32>;
@group(0) @binding(3) var<storage, read_write> records: array<u32>;

// Element `at` of X̃ (an f32 index, or a half index with X_F16) as f32 (f16 widens exactly: f16_value
// of shaders/f16_convert.wgsl, prepended by the host).
fn input_value(at: u32) -> f32 {
  if (X_F16) {
    return f16_value(x[at >> 1u] >> ((at & 1u) * 16u));
  }
  return bitcast<f32>(x[at]);
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) grid: vec3<u32>) {
  let item = id.y * grid.x * 64u + id.x;
  if (item >= params.row_words * params.vectors) {
    return;
  }
  let v = item / params.row_words;
  let w = item - v * params.row_words;
  var values: array<f32, CODES_PER_WORD>;
  var group = GroupMax(0.0, true);
  for (var t = 0u; t < CODES_PER_WORD; t = t + 1u) {
    let i = t * params.row_words + w;
    var value = 0.0;
    if (i < params.n) {
      // x'_i = s_i·x̃_i: one f32 rounding, as the f32-input GEMV forms it.
      value = column_scales[params.column_scales_first + i] * input_value(params.x_first + v * params.x_stride + i);
    }
    values[t] = value;
    group = group_max_with(group, value);
  }
  let rounds = group.m > 0.0 && group.finite;
  var words: array<u32, BYTE_WORDS>;
  var sum = 0;
  for (var t = 0u; t < CODES_PER_WORD; t = t + 1u) {
    let level = select(0, int8_level(values[t], group.m), rounds);
    sum = sum + level;
    words[field_word(t)] = words[field_word(t)] | ((u32(level) & 0xffu) << (8u * field_lane(t)));
  }
  let first = params.records_first + v * params.record_stride + w * RECORD_WORDS;
  for (var k = 0u; k < BYTE_WORDS; k = k + 1u) {
    records[first + k] = words[k];
  }
  records[first + BYTE_WORDS] = int8_scale_bits(group.m, group.finite);
  records[first + BYTE_WORDS + 1u] = bitcast<u32>(ZERO_CODE * sum);
  for (var k = BYTE_WORDS + 2u; k < RECORD_WORDS; k = k + 1u) {
    records[first + k] = 0u;
  }
}

// Which packed word and byte lane of a record hold field t of a code word. Where 8 is a multiple of
// CODE_BITS (SPREAD_FIELDS), the GEMV takes a word's fields BYTE_WORDS at a time with one shift and
// one mask: shift k gives fields k, k + BYTE_WORDS, k + 2·BYTE_WORDS, k + 3·BYTE_WORDS in byte lanes
// 0 … 3. Other widths extract fields 4k … 4k + 3 into word k one by one.
fn field_word(t: u32) -> u32 {
  if (SPREAD_FIELDS) {
    return t % BYTE_WORDS;
  }
  return t / 4u;
}

fn field_lane(t: u32) -> u32 {
  if (SPREAD_FIELDS) {
    return t / BYTE_WORDS;
  }
  return t % 4u;
}
