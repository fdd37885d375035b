// The weight-only GEMV's lane loop for the packed layout (the serialized format's bit stream, b_i bits
// for input feature i; shaders/weightonly_gemv.wgsl describes the layout and the work split): appended
// to that file by src/gpu/kernels/weightOnlyGemv.ts when the codes are uploaded as they are.

@group(0) @binding(1) var<storage, read> codes: array<vec4<u32>>;

// Code vec4 c of each of the 4 rows (entry r: row r's).
fn row_words(bases: vec4<u32>, c: u32) -> array<vec4<u32>, 4> {
  return array<vec4<u32>, 4>(codes[bases.x + c], codes[bases.y + c], codes[bases.z + c], codes[bases.w + c]);
}

// Word k (0 … 4) of the 160-bit window of the 4 rows; 0 for k ≥ 5.
fn window_word(k: u32, w0: vec4<u32>, w1: vec4<u32>, w2: vec4<u32>, w3: vec4<u32>, w4: vec4<u32>) -> vec4<u32> {
  let low = select(select(w0, w1, k == 1u), select(w2, w3, k == 3u), k >= 2u);
  return select(select(low, w4, k == 4u), vec4<u32>(0u), k >= 5u);
}

// The code of `width` bits at bit `bit` of the window, for the 4 rows, sign-extended, as floats.
fn window_code(bit: u32, width: u32, w0: vec4<u32>, w1: vec4<u32>, w2: vec4<u32>, w3: vec4<u32>, w4: vec4<u32>) -> vec4<f32> {
  let k = bit >> 5u;
  let shift = bit & 31u;
  let low = window_word(k, w0, w1, w2, w3, w4) >> vec4<u32>(shift);
  // A code that crosses a word boundary takes its top bits from the next word (the shift by
  // 32 − shift is taken modulo 32 in WGSL, so the select, not the shift, discards the shift = 0 case).
  let high = select(vec4<u32>(0u), window_word(k + 1u, w0, w1, w2, w3, w4) << vec4<u32>(32u - shift), shift + width > 32u);
  let top = bitcast<vec4<i32>>((low | high) << vec4<u32>(32u - width));
  return vec4<f32>(top >> vec4<u32>(32u - width));
}

// The VECTOR_BLOCK sums of lane `lane` for the 4 rows from `first_row` (vec4 lanes = rows): the codes
// its vec4s own, each extracted for the 4 rows at once.
fn lane_accumulators(first_row: u32, lane: u32, first_vector: u32) -> array<vec4<f32>, VECTOR_BLOCK> {
  let bases = row_bases(first_row);
  let offsets = params.layout_first;
  let owners = params.layout_first + params.n + 1u;
  var acc = array<vec4<f32>, VECTOR_BLOCK>();
  for (var c = lane; c < params.row_vec4s; c = c + LANES) {
    let rows = row_words(bases, c);
    // Window word 0: the last word of vec4 c − 1 (nothing before the row's first vec4).
    var before = vec4<u32>(0u);
    if (c > 0u) {
      let previous = row_words(bases, c - 1u);
      before = vec4<u32>(previous[0].w, previous[1].w, previous[2].w, previous[3].w);
    }
    let w1 = vec4<u32>(rows[0].x, rows[1].x, rows[2].x, rows[3].x);
    let w2 = vec4<u32>(rows[0].y, rows[1].y, rows[2].y, rows[3].y);
    let w3 = vec4<u32>(rows[0].z, rows[1].z, rows[2].z, rows[3].z);
    let w4 = vec4<u32>(rows[0].w, rows[1].w, rows[2].w, rows[3].w);
    // Clamped to n: a table that does not match the codes (only a caller of the dispatch can pass
    // one) gives wrong products but no more than n codes of work per vec4.
    let first_code = min(code_layout[owners + c], params.n);
    let end_code = min(code_layout[owners + c + 1u], params.n);
    // Bit P_i relative to the window, which starts 32 bits before vec4 c.
    let window_start = 128u * c;
    var bit = code_layout[offsets + first_code];
    for (var i = first_code; i < end_code; i = i + 1u) {
      let next_bit = code_layout[offsets + i + 1u];
      let z = window_code(bit + 32u - window_start, next_bit - bit, before, w1, w2, w3, w4);
      bit = next_bit;
      let s = column_scales[params.column_scales_first + i];
      for (var v = 0u; v < VECTOR_BLOCK; v = v + 1u) {
        acc[v] = acc[v] + z * scaled_input(s, i, first_vector, v);
      }
    }
  }

  return acc;
}
