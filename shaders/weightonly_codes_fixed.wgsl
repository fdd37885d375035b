// The weight-only GEMV's lane loop for the fixed-width layout (src/weightonly/packedCodes.ts,
// `fixedWidthCodes`: a repacking made at upload when every code fits CODE_BITS ≤ 8 bits): with
// CODES_PER_WORD = ⌊32 / CODE_BITS⌋, code i of output j is the two's complement field of CODE_BITS
// bits at bit CODE_BITS·(i mod CODES_PER_WORD) of word ⌊i / CODES_PER_WORD⌋ of the row (row_vec4s
// vec4<u32> per row, zero codes past n).
// Appended to shaders/weightonly_gemv.wgsl (the work split, the reduction) by
// src/gpu/kernels/weightOnlyGemv.ts, which generates CODE_BITS in front; `code_layout` is not read.
//
// Why: the packed layout's codes start at bit positions read from a table, one per code, and come out
// of a 160-bit window through select chains, tens of instructions per code. Here a code's place is
// known from its index, so it costs one signed bit-field extract for the 4 rows and the conversion
// and multiply-add of each row; the loads of s_i and x̃_i serve the 4 rows as before.
//
// f32 order of one term: s·x̃ (rounded), then acc + z·(s·x̃) as one fused multiply-add (one rounding;
// z is exact in f32), along the lane's chain of its vec4s' codes in order. So a term goes through at
// most C + 16 roundings, C = the codes one lane owns (4·CODES_PER_WORD·⌈row_vec4s / LANES⌉), the
// bound of the packed kernel with its own C.

const CODES_PER_WORD: u32 = 32u / CODE_BITS;

// The first `count` codes of one word of the 4 rows (vec4 lanes = rows), codes first_code … on, into
// `acc`. The lane loop passes count = CODES_PER_WORD, a constant, for every word of a whole vec4, so
// that the check folds away there; only a row's last vec4, which may end past n, passes fewer.
fn add_word(words: vec4<i32>, first_code: u32, count: u32, first_vector: u32, acc: ptr<function, array<vec4<f32>, VECTOR_BLOCK>>) {
  for (var t = 0u; t < CODES_PER_WORD; t = t + 1u) {
    if (t >= count) {
      break;
    }
    let i = first_code + t;
    let z = vec4<f32>(extractBits(words, CODE_BITS * t, CODE_BITS));
    let s = column_scales[params.column_scales_first + i];
    for (var v = 0u; v < VECTOR_BLOCK; v = v + 1u) {
      (*acc)[v] = fma(z, vec4<f32>(scaled_input(s, i, first_vector, v)), (*acc)[v]);
    }
  }
}

// Word k of vec4 c of the 4 rows, as signed lanes.
fn row_word(rows: array<vec4<u32>, 4>, k: u32) -> vec4<i32> {
  return bitcast<vec4<i32>>(vec4<u32>(rows[0][k], rows[1][k], rows[2][k], rows[3][k]));
}

// The VECTOR_BLOCK sums of lane `lane` for the 4 rows from `first_row` (vec4 lanes = rows): its whole
// vec4s (every code below n) without a check per code, then the row's last vec4 if it ends past n.
fn lane_accumulators(first_row: u32, lane: u32, first_vector: u32) -> array<vec4<f32>, VECTOR_BLOCK> {
  let bases = row_bases(first_row);
  let codes_per_vec4 = 4u * CODES_PER_WORD;
  let whole_vec4s = min(params.n / codes_per_vec4, params.row_vec4s);
  var acc = array<vec4<f32>, VECTOR_BLOCK>();
  for (var c = lane; c < whole_vec4s; c = c + LANES) {
    let rows = row_words(bases, c);
    for (var k = 0u; k < 4u; k = k + 1u) {
      add_word(row_word(rows, k), (4u * c + k) * CODES_PER_WORD, CODES_PER_WORD, first_vector, &acc);
    }
  }
  // The last vec4, when n is not a whole number of them: its owner (lane whole_vec4s mod LANES, as
  // the loop above would give it) adds the codes below n. The scales and x end at n.
  if (whole_vec4s < params.row_vec4s && lane == whole_vec4s % LANES) {
    let rows = row_words(bases, whole_vec4s);
    for (var k = 0u; k < 4u; k = k + 1u) {
      let first_code = (4u * whole_vec4s + k) * CODES_PER_WORD;
      add_word(row_word(rows, k), first_code, min(CODES_PER_WORD, params.n - min(first_code, params.n)), first_vector, &acc);
    }
  }
  return acc;
}
