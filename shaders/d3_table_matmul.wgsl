// C = ÂᵀB̂ for two D3, q = 6 quantized matrices through the 216 × 216 inner-product table held in
// workgroup memory: the GPU twin of the table path of src/product/matmulAT.ts.
//
// Compiled with three constants prepended (src/gpu/kernels/tableMatmul.ts, layouts in
// src/gpu/tableLayout.ts):
//   TABLE_LAYOUT: u32  0 = full table (a·216 + b), 1 = upper triangle (lo·(431 − lo)/2 + hi),
//                      2 = the 216 leaders (3 int8 per word; the pair's entry is their dot product)
//   TABLE_WORDS: u32   u32 words of that table (int8 entries, 4 per word, little-endian)
//   SLICE: u32         blocks per code slice (16, 8 or 4; a multiple of 4)
// then the uniform struct and shaders/product_tile.wgsl (the scale multiples and the output of a
// tile, shared with shaders/e8_matmul.wgsl).
//
// Operands (src/gpu/latticeOperand.ts): codes packed 4 per word (8 bits), scale indices packed
// `index_bits` bits per value; each column starts on a fresh word. Column side buffers hold norms at
// [0, cols), gains at [cols, 2·cols), means at [2·cols, 3·cols).
//
// Estimate (matmulAT.ts): C[i, j] = common_scale · (ν_i γ_i) · (ν_j γ_j) · Σ_t k_a(t)·k_b(t)·T[code_a(t)][code_b(t)]
// (+ rows · μ_i · μ_j when centred), common_scale = unit_a·unit_b / (s²·N) from the host.
//
// Tiling: a workgroup of 16 × 16 invocations computes a 64 × 64 block of C, each invocation a 4 × 4
// sub-block (rows i0 + x + 16·r, columns j0 + y + 16·s). The blocks are walked in slices of slice_blocks:
// the workgroup copies the slice's codes and scale indices of its 64 A columns and 64 B columns into
// workgroup memory (one u32 per block: code | index << 8), where each is read by 16 invocations.
//
// Accumulation: the terms k_a·k_b·T of one slice are summed exactly in i32 and the slice's sum is
// added to an f32 accumulator. A slice holds slice_blocks ≤ SLICE blocks: the host sets
// slice_blocks = min(SLICE, floor((2^31 − 1) / (max k_a · max k_b · 36))) and refuses multiples with
// max k_a · max k_b · 36 ≥ 2^31, so no i32 overflow can occur for any number of blocks. (One exact
// path only: a second, f32, path for huge multiples doubled the compile time on lavapipe.)

const TILE: u32 = 64u;
const THREADS_EDGE: u32 = 16u;
const PER_THREAD: u32 = 4u;
const THREADS: u32 = 256u;
const CODES: u32 = 216u;
const LAYOUT_FULL: u32 = 0u;
const LAYOUT_TRIANGLE: u32 = 1u;

// struct TableMatmulParams is declared once, in src/gpu/kernels/tableMatmul.ts (a UniformLayout: the
// products' shared members, productParamsLayout in productCommon.ts, and slice_blocks), which
// generates its WGSL in front of this file (after the three constants).
@group(0) @binding(0) var<uniform> params: TableMatmulParams;
@group(0) @binding(1) var<storage, read> table_source: array<u32>;
@group(0) @binding(2) var<storage, read> a_codes: array<u32>;
@group(0) @binding(3) var<storage, read> a_indices: array<u32>;
@group(0) @binding(4) var<storage, read> a_side: array<f32>;
@group(0) @binding(5) var<storage, read> b_codes: array<u32>;
@group(0) @binding(6) var<storage, read> b_indices: array<u32>;
@group(0) @binding(7) var<storage, read> b_side: array<f32>;
@group(0) @binding(8) var<storage, read_write> c: array<f32>;

var<workgroup> table: array<u32, TABLE_WORDS>;
// [t][column]: code | scale index << 8 of block t0 + t of the tile's column.
var<workgroup> a_slice: array<u32, SLICE * TILE>;
var<workgroup> b_slice: array<u32, SLICE * TILE>;

// Sign-extended int8 entry `index` of the table.
fn table_byte(index: u32) -> i32 {
  return extractBits(bitcast<i32>(table[index >> 2u]), 8u * (index & 3u), 8u);
}

// The leader of code `code` (leaders layout) as an integer vector.
fn leader(code: u32) -> vec3<i32> {
  let word = bitcast<i32>(table[code]);
  return vec3<i32>(extractBits(word, 0u, 8u), extractBits(word, 8u, 8u), extractBits(word, 16u, 8u));
}

// T[a][b]; `la`, `lb` are the leaders of a and b (used by the leaders layout only).
fn pair_entry(a: u32, b: u32, la: vec3<i32>, lb: vec3<i32>) -> i32 {
  if (TABLE_LAYOUT == LAYOUT_FULL) {
    return table_byte(a * CODES + b);
  }
  if (TABLE_LAYOUT == LAYOUT_TRIANGLE) {
    let lo = min(a, b);
    let hi = max(a, b);
    return table_byte(lo * (2u * CODES - 1u - lo) / 2u + hi);
  }
  return dot(la, lb);
}

// code | index << 8 of block t of A column `column` (both within range).
fn a_entry(column: u32, t: u32) -> u32 {
  let code = extractBits(a_codes[params.a_code_first + column * params.a_code_words + (t >> 2u)], 8u * (t & 3u), 8u);
  let bits = params.a_index_bits;
  let per_word = 32u / bits;
  let index = extractBits(a_indices[params.a_index_first + column * params.a_index_words + t / per_word], bits * (t % per_word), bits);
  return code | (index << 8u);
}

fn b_entry(column: u32, t: u32) -> u32 {
  let code = extractBits(b_codes[params.b_code_first + column * params.b_code_words + (t >> 2u)], 8u * (t & 3u), 8u);
  let bits = params.b_index_bits;
  let per_word = 32u / bits;
  let index = extractBits(b_indices[params.b_index_first + column * params.b_index_words + t / per_word], bits * (t % per_word), bits);
  return code | (index << 8u);
}

@compute @workgroup_size(16, 16, 1)
fn main(
  @builtin(workgroup_id) tile: vec3<u32>,
  @builtin(local_invocation_id) local: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  for (var w = thread; w < TABLE_WORDS; w = w + THREADS) {
    table[w] = table_source[w];
  }
  let i0 = tile.x * TILE;
  let j0 = tile.y * TILE;
  var acc: array<f32, 16>; // [r · 4 + s], zero-initialized
  // This slice's exact sums. Declared here and zeroed explicitly after each flush: a zero-initialized `var` declared inside the loop was observed (Dawn on lavapipe) to keep
  // the previous iteration's values.
  var chunk: array<i32, 16>;

  for (var t0 = 0u; t0 < params.blocks; t0 = t0 + params.slice_blocks) {
    workgroupBarrier(); // the previous slice has been read by everyone
    // Copy the slices. Consecutive invocations take consecutive blocks of one column, which share
    // code words. Columns past the edge read as entry 0 (their results are never written).
    for (var step = 0u; step < SLICE * TILE / THREADS; step = step + 1u) {
      let e = thread + step * THREADS;
      let column = e / SLICE;
      let t = e % SLICE;
      let block = t0 + t;
      var a_value = 0u;
      if (t < params.slice_blocks && block < params.blocks && i0 + column < params.a_cols) {
        a_value = a_entry(i0 + column, block);
      }
      a_slice[t * TILE + column] = a_value;
      var b_value = 0u;
      if (t < params.slice_blocks && block < params.blocks && j0 + column < params.b_cols) {
        b_value = b_entry(j0 + column, block);
      }
      b_slice[t * TILE + column] = b_value;
    }
    workgroupBarrier(); // slices (and, the first time, the table) are in place

    let count = min(params.slice_blocks, params.blocks - t0);
    for (var t = 0u; t < count; t = t + 1u) {
      var a_code: array<u32, 4>;
      var b_code: array<u32, 4>;
      var a_k: array<i32, 4>;
      var b_k: array<i32, 4>;
      var a_leader: array<vec3<i32>, 4>; // leaders layout only
      var b_leader: array<vec3<i32>, 4>;
      for (var r = 0u; r < PER_THREAD; r = r + 1u) {
        let ea = a_slice[t * TILE + local.x + THREADS_EDGE * r];
        a_code[r] = ea & 0xffu;
        a_k[r] = a_multiple(ea >> 8u);
        let eb = b_slice[t * TILE + local.y + THREADS_EDGE * r];
        b_code[r] = eb & 0xffu;
        b_k[r] = b_multiple(eb >> 8u);
        if (TABLE_LAYOUT != LAYOUT_FULL && TABLE_LAYOUT != LAYOUT_TRIANGLE) {
          a_leader[r] = leader(a_code[r]);
          b_leader[r] = leader(b_code[r]);
        }
      }
      for (var r = 0u; r < PER_THREAD; r = r + 1u) {
        for (var s = 0u; s < PER_THREAD; s = s + 1u) {
          let entry = pair_entry(a_code[r], b_code[s], a_leader[r], b_leader[s]);
          let rs = r * PER_THREAD + s;
          chunk[rs] = chunk[rs] + a_k[r] * b_k[s] * entry;
        }
      }
    }
    for (var rs = 0u; rs < PER_THREAD * PER_THREAD; rs = rs + 1u) {
      acc[rs] = acc[rs] + f32(chunk[rs]);
      chunk[rs] = 0;
    }
  }

  write_tile(i0, j0, local, acc);
}
