// The weight-only GEMV's lane loop for the fixed-width layout (src/weightonly/packedCodes.ts,
// `fixedWidthCodes`: a repacking made at upload when every code fits CODE_BITS ≤ 8 bits): a row of n
// codes takes W = 4·row_vec4s u32 words, each with CODES_PER_WORD = P = ⌊32 / CODE_BITS⌋ fields, and
// code i of output j is the two's complement field t = ⌊i / W⌋ (bits CODE_BITS·t …) of word i mod W
// of the row: word w holds the codes w, W + w, 2W + w, … (zero codes at i ≥ n).
// Appended to shaders/weightonly_gemv.wgsl (the work split, the reduction) by
// src/gpu/kernels/weightOnlyGemv.ts, which generates CODE_BITS and FIELD_SIGNS (the top bit of each
// of the P fields) in front; `code_layout` is not read.
//
// Why strided: lane l of a team takes the words l, l + 64, … of its 4 rows, and field t of its word w
// needs s_i and x̃_i at i = t·W + w. Consecutive lanes own consecutive words, so each of those loads
// reads 32 consecutive f32 per warp: one or two 128-byte lines. With codes in a word's natural order
// (i = P·w + t), a warp's load of s_i would touch P lines (every lane P·4 bytes from the next) and,
// when a lane owned a whole vec4 (the loop before this one), 32 lines, one L1 wavefront each: about
// one code byte per L1 cycle per SM, ≈ 0.26 TB/s on an H200, which is what it measured
// (bench/results/nvidia-h200-2026-12-04-f16.md: 246 GB/s, 5.7 % of the stream at 8192 × 28672). Here
// a word of the 4 rows (16 code bytes) costs 4 code loads and 2·P scalar loads of s and x̃, each a
// line or two per warp.
//
// Decode without integer-to-float conversion (a slow pipe on NVIDIA): a field xor its top bit is
// z + 2^(b−1) ∈ [0, 2^b); or'ed into the mantissa of 2^23 it is the f32 2^23 + z + 2^(b−1), and
// subtracting 2^23 + 2^(b−1) (both in [2^23, 2^24): the difference is exact) leaves z exactly. So a
// code costs a shift, an and-or and a subtraction per row, then its multiply-add.
//
// f32 order of one term: s·x̃ (rounded), then acc + z·(s·x̃) as one fused multiply-add (one rounding;
// z is exact in f32), along the lane's chain of its words' codes (word by word, field by field). So a
// term goes through at most C + 16 roundings, C = the codes one lane owns (P·⌈W / LANES⌉ at most).

@group(0) @binding(1) var<storage, read> codes: array<u32>;

const CODES_PER_WORD: u32 = 32u / CODE_BITS;
const FIELD_MASK: u32 = (1u << CODE_BITS) - 1u;
// The bits of 2^23 as an f32, and 2^23 + 2^(b−1): a biased field's float and its zero.
const MANTISSA_BASE: u32 = 0x4B000000u;
const BIASED_ZERO: f32 = 8388608.0 + f32(1u << (CODE_BITS - 1u));

// z of field t of the 4 rows' words (already xor'ed with FIELD_SIGNS), exactly, as floats.
fn field_codes(flipped: vec4<u32>, t: u32) -> vec4<f32> {
  let biased = (flipped >> vec4<u32>(CODE_BITS * t)) & vec4<u32>(FIELD_MASK);
  return bitcast<vec4<f32>>(biased | vec4<u32>(MANTISSA_BASE)) - vec4<f32>(BIASED_ZERO);
}

// The codes of the 4 rows' words `w` into `acc`, field by field: all CODES_PER_WORD of them (every
// field below n), or with `checked` those below n. The caller passes `checked` as a constant, so the
// loop of whole words unrolls without a check per field.
fn add_word(bases: vec4<u32>, w: u32, row_words: u32, checked: bool, first_vector: u32, acc: ptr<function, array<vec4<f32>, VECTOR_BLOCK>>) {
  let flipped = vec4<u32>(codes[bases.x + w], codes[bases.y + w], codes[bases.z + w], codes[bases.w + w]) ^ vec4<u32>(FIELD_SIGNS);
  for (var t = 0u; t < CODES_PER_WORD; t = t + 1u) {
    let i = t * row_words + w;
    // Fields at i ≥ n hold zero codes, and s and x̃ end at n: nothing to add past it (i grows with t).
    if (checked && i >= params.n) {
      break;
    }
    let z = field_codes(flipped, t);
    let s = column_scales[params.column_scales_first + i];
    for (var v = 0u; v < VECTOR_BLOCK; v = v + 1u) {
      (*acc)[v] = fma(z, vec4<f32>(scaled_input(s, i, first_vector, v)), (*acc)[v]);
    }
  }
}

// The VECTOR_BLOCK sums of lane `lane` for the 4 rows from `first_row` (vec4 lanes = rows): its words
// whose every field lies below n (w < n − (P − 1)·W) without a check per field, then its others.
fn lane_accumulators(first_row: u32, lane: u32, first_vector: u32) -> array<vec4<f32>, VECTOR_BLOCK> {
  let bases = 4u * row_bases(first_row);
  let row_words = 4u * params.row_vec4s;
  let before_last_field = (CODES_PER_WORD - 1u) * row_words;
  let whole_words = select(0u, min(params.n - before_last_field, row_words), params.n > before_last_field);
  var acc = array<vec4<f32>, VECTOR_BLOCK>();
  var w = lane;
  for (; w < whole_words; w = w + LANES) {
    add_word(bases, w, row_words, false, first_vector, &acc);
  }
  for (; w < row_words; w = w + LANES) {
    add_word(bases, w, row_words, true, first_vector, &acc);
  }
  return acc;
}
