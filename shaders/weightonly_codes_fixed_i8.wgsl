// The weight-only GEMV's lane loop for fixed-width codes and int8 inputs: the codes of
// shaders/weightonly_codes_fixed.wgsl (code i of a row in field t = ⌊i / W⌋ of word w = i mod W,
// CODE_BITS two's complement bits), and in place of s·x̃ the records x̂ of
// shaders/weightonly_inputs_i8.wgsl in the `x` binding (one record of RECORD_WORDS u32 per code
// word: BYTE_WORDS words of packed int8 levels, the group's scale, ZERO_CODE·Σ level). Appended to
// shaders/weightonly_gemv.wgsl (work split, reduction, ·t, the output) after shaders/dot_i8_packed.wgsl or
// dot_i8_plain.wgsl (dot_i8x4) by src/gpu/kernels/weightOnlyGemv.ts, which generates the constants
// (those of the inputs' file, CODE_FLIP and BYTE_FIELD_MASK) in front; `code_layout` and
// `column_scales` are not read.
//
// Per word of the 4 rows: a field xor its top bit (CODE_FLIP; none at 8 bits, whose bytes are the
// int8 codes themselves) is z + ZERO_CODE ≥ 0, so
//   Σ_t z_t·level_t = Σ_k dot(code bytes k, record word k) − ZERO_CODE·Σ_t level_t,
// an exact i32 (|Σ| < 2^22), taken to f32 exactly by the magic-number trick (NVIDIA converts
// integers at a fraction of the multiply-add rate) and multiplied by the group's scale into the
// accumulator with one fused multiply-add. Where 8 is a multiple of CODE_BITS a word's bytes take
// one shift and one mask per packed dot product: ≈ 10 instructions per word and row at 4 bits
// (8 codes), against ≈ 32 for the f32-input loop, and 4 loads of x̂ per word shared by the 4 rows
// (16 loads of s and x̃ there).
//
// f32 order of one term: f32(Σ) exact, then acc + f32(Σ)·scale fused (one rounding), along the
// lane's chain of its words, 7 + 7 additions of the reduction, the final ·t. The inputs' own
// rounding (½ level of each group, shaders/int8_group.wgsl) is the approximation this path adds.

@group(0) @binding(1) var<storage, read> codes: array<u32>;

// 2^23 + 2^22 as f32 and as its bits: v + MAGIC_BITS, seen as f32, is MAGIC + v exactly for |v| < 2^22.
const MAGIC: f32 = 12582912.0;
const MAGIC_BITS: i32 = 0x4B400000;

fn exact_f32(v: vec4<i32>) -> vec4<f32> {
  return bitcast<vec4<f32>>(v + vec4<i32>(MAGIC_BITS)) - vec4<f32>(MAGIC);
}

// Byte word k of a flipped code word: its fields in the order the records pack their levels
// (shaders/weightonly_inputs_i8.wgsl, field_word and field_lane).
fn code_bytes(flipped: u32, k: u32) -> u32 {
  if (SPREAD_FIELDS) {
    return (flipped >> (CODE_BITS * k)) & BYTE_FIELD_MASK;
  }
  var bytes = 0u;
  for (var lane = 0u; lane < 4u; lane = lane + 1u) {
    let t = 4u * k + lane;
    if (t < CODES_PER_WORD) {
      bytes = bytes | (((flipped >> (CODE_BITS * t)) & FIELD_MASK) << (8u * lane));
    }
  }
  return bytes;
}

// The VECTOR_BLOCK sums of lane `lane` for the 4 rows from `first_row` (vec4 lanes = rows): every
// word it owns (words l, l + 64, …); fields at i ≥ n hold zero codes and zero levels.
fn lane_accumulators(first_row: u32, lane: u32, first_vector: u32) -> array<vec4<f32>, VECTOR_BLOCK> {
  let bases = 4u * row_bases(first_row);
  let row_words = 4u * params.row_vec4s;
  var acc = array<vec4<f32>, VECTOR_BLOCK>();
  for (var w = lane; w < row_words; w = w + LANES) {
    let flipped = vec4<u32>(codes[bases.x + w], codes[bases.y + w], codes[bases.z + w], codes[bases.w + w]) ^ vec4<u32>(CODE_FLIP);
    for (var v = 0u; v < VECTOR_BLOCK; v = v + 1u) {
      let vector = min(first_vector + v, params.vectors - 1u);
      let record = params.x_first + vector * params.x_stride + w * RECORD_WORDS;
      var sums = vec4<i32>(-bitcast<i32>(x[record + BYTE_WORDS + 1u]));
      for (var k = 0u; k < BYTE_WORDS; k = k + 1u) {
        let levels = x[record + k];
        sums = sums + vec4<i32>(
          dot_i8x4(code_bytes(flipped.x, k), levels),
          dot_i8x4(code_bytes(flipped.y, k), levels),
          dot_i8x4(code_bytes(flipped.z, k), levels),
          dot_i8x4(code_bytes(flipped.w, k), levels),
        );
      }
      acc[v] = fma(exact_f32(sums), vec4<f32>(bitcast<f32>(x[record + BYTE_WORDS])), acc[v]);
    }
  }
  return acc;
}
