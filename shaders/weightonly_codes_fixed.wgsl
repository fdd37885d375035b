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

// The VECTOR_BLOCK sums of lane `lane` for the 4 rows from `first_row` (vec4 lanes = rows).
fn lane_accumulators(first_row: u32, lane: u32, first_vector: u32) -> array<vec4<f32>, VECTOR_BLOCK> {
  // Rows and vectors past the end repeat the last one (in-bounds reads); their sums are not stored.
  let last_row = params.outputs - 1u;
  let base0 = params.codes_first + min(first_row, last_row) * params.row_vec4s;
  let base1 = params.codes_first + min(first_row + 1u, last_row) * params.row_vec4s;
  let base2 = params.codes_first + min(first_row + 2u, last_row) * params.row_vec4s;
  let base3 = params.codes_first + min(first_row + 3u, last_row) * params.row_vec4s;
  var acc = array<vec4<f32>, VECTOR_BLOCK>();
  for (var c = lane; c < params.row_vec4s; c = c + LANES) {
    let words0 = codes[base0 + c];
    let words1 = codes[base1 + c];
    let words2 = codes[base2 + c];
    let words3 = codes[base3 + c];
    for (var k = 0u; k < 4u; k = k + 1u) {
      let words = vec4<i32>(bitcast<i32>(words0[k]), bitcast<i32>(words1[k]), bitcast<i32>(words2[k]), bitcast<i32>(words3[k]));
      let first_code = (4u * c + k) * CODES_PER_WORD;
      // Only a row's last word holds codes past n (zeros): the scales and x end at n.
      let codes_here = min(CODES_PER_WORD, params.n - min(first_code, params.n));
      for (var t = 0u; t < CODES_PER_WORD; t = t + 1u) {
        if (t >= codes_here) {
          break;
        }
        let i = first_code + t;
        let z = vec4<f32>(extractBits(words, CODE_BITS * t, CODE_BITS));
        let s = column_scales[params.column_scales_first + i];
        for (var v = 0u; v < VECTOR_BLOCK; v = v + 1u) {
          let vector = min(first_vector + v, params.vectors - 1u);
          let sx = s * x_value(params.x_first + vector * params.x_stride + i);
          acc[v] = fma(z, vec4<f32>(sx), acc[v]);
        }
      }
    }
  }
  return acc;
}
