// C = ÂᵀB̂ for two D3, q = 6 quantized matrices through the 216 × 216 inner-product table held in
// workgroup memory: the GPU twin of the table path of src/product/matmulAT.ts.
//
// Compiled with three constants prepended (src/gpu/kernels/tableMatmul.ts, layouts in
// src/gpu/tableLayout.ts):
//   TABLE_LAYOUT: u32  0 = full table (a·216 + b), 1 = upper triangle (lo·(431 − lo)/2 + hi),
//                      2 = the 216 leaders (3 int8 per word; the pair's entry is their dot product)
//   TABLE_WORDS: u32   u32 words of that table (int8 entries, 4 per word, little-endian)
//   SLICE: u32         blocks per code slice (16, 8 or 4; a multiple of 4)
// then shaders/d3_leader_packed.wgsl or shaders/d3_leader_plain.wgsl (`Leader`, `slice_leader`,
// `leader_dot`: how the leaders layout holds a leader; the dot path), the uniform struct and
// shaders/product_tile.wgsl (the scale multiples and the output of a tile, shared with
// shaders/e8_matmul.wgsl).
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
// workgroup memory (one u32 per block: code | index << 8; in the leaders layout the code's packed
// leader, and beside it the block's scale multiple k in a second slice), where each is read by 16
// invocations.
//
// Why the leaders layout decodes at the copy: each slice entry is read by 16 invocations and meets
// 4 pairs in each, so what is done at the copy (the leader's lookup, the scale index's field and
// its multiple's lookup in the uniform) is done once per block and column instead of 16 times. A pair
// then costs one dot4I8Packed and two integer multiplies (on an NVIDIA GPU all on its FMA pipe) and
// no workgroup-memory read, where the full and triangle layouts read one random table byte per pair
// (several passes through the banks per warp-wide read), extract it and take both multiples per
// operand from their indices (bench/README.md, "Products: what bounds them on an H200").
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
const LAYOUT_LEADERS: u32 = 2u;
// The slices of scale multiples: SLICE · TILE entries in the leaders layout, one unused entry in the
// others (which take k from the index in the code slice). src/gpu/tableLayout.ts counts them.
const K_SLICE: u32 = select(1u, SLICE * TILE, TABLE_LAYOUT == LAYOUT_LEADERS);

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
// [t][column]: code | scale index << 8 of block t0 + t of the tile's column (leaders layout: the
// code's packed leader).
var<workgroup> a_slice: array<u32, SLICE * TILE>;
var<workgroup> b_slice: array<u32, SLICE * TILE>;
// [t][column]: k of block t0 + t of the tile's column (leaders layout).
var<workgroup> a_k_slice: array<i32, K_SLICE>;
var<workgroup> b_k_slice: array<i32, K_SLICE>;

// Sign-extended int8 entry `index` of the table.
fn table_byte(index: u32) -> i32 {
  return extractBits(bitcast<i32>(table[index >> 2u]), 8u * (index & 3u), 8u);
}

// T[a][b] from the table (full and triangle layouts).
fn pair_entry(a: u32, b: u32) -> i32 {
  if (TABLE_LAYOUT == LAYOUT_FULL) {
    return table_byte(a * CODES + b);
  }
  let lo = min(a, b);
  let hi = max(a, b);
  return table_byte(lo * (2u * CODES - 1u - lo) / 2u + hi);
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
      var b_value = 0u;
      if (t < params.slice_blocks && block < params.blocks && j0 + column < params.b_cols) {
        b_value = b_entry(j0 + column, block);
      }
      let at = t * TILE + column;
      if (TABLE_LAYOUT == LAYOUT_LEADERS) {
        // The table is in place: the copy follows a barrier.
        a_slice[at] = table[a_value & 0xffu];
        a_k_slice[at] = a_multiple(a_value >> 8u);
        b_slice[at] = table[b_value & 0xffu];
        b_k_slice[at] = b_multiple(b_value >> 8u);
      } else {
        a_slice[at] = a_value;
        b_slice[at] = b_value;
      }
    }
    workgroupBarrier(); // slices (and, the first time, the table) are in place

    let count = min(params.slice_blocks, params.blocks - t0);
    for (var t = 0u; t < count; t = t + 1u) {
      var a_word: array<u32, 4>;
      var b_word: array<u32, 4>;
      var a_k: array<i32, 4>;
      var b_k: array<i32, 4>;
      var a_leader: array<Leader, 4>; // leaders layout only
      var b_leader: array<Leader, 4>;
      for (var r = 0u; r < PER_THREAD; r = r + 1u) {
        let a_at = t * TILE + local.x + THREADS_EDGE * r;
        let b_at = t * TILE + local.y + THREADS_EDGE * r;
        a_word[r] = a_slice[a_at];
        b_word[r] = b_slice[b_at];
        if (TABLE_LAYOUT == LAYOUT_LEADERS) {
          a_leader[r] = slice_leader(a_word[r]);
          b_leader[r] = slice_leader(b_word[r]);
          a_k[r] = a_k_slice[a_at];
          b_k[r] = b_k_slice[b_at];
        } else {
          a_k[r] = a_multiple(a_word[r] >> 8u);
          b_k[r] = b_multiple(b_word[r] >> 8u);
        }
      }
      for (var r = 0u; r < PER_THREAD; r = r + 1u) {
        for (var s = 0u; s < PER_THREAD; s = s + 1u) {
          var entry: i32;
          if (TABLE_LAYOUT == LAYOUT_LEADERS) {
            entry = leader_dot(a_leader[r], b_leader[s]);
          } else {
            entry = pair_entry(a_word[r] & 0xffu, b_word[s] & 0xffu);
          }
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
