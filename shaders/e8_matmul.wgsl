// C = ÂᵀB̂ for two quantized matrices with 8-dimensional blocks (E8 or Z^8, any q ≤ 16), decoding the
// coset leaders on the fly: the GPU twin of the decoded path of src/product/matmulAT.ts.
//
// Compiled as shaders/dot_i8_packed.wgsl or shaders/dot_i8_plain.wgsl (fn dot_i8x8, pack_i8x4), then
// shaders/lattice_decode.wgsl (fn decode_leader), the decode with q compiled in when both operands
// share their lattice and q (gemvDecode.ts: gemv_leader), the E8MatmulParams struct, a generated
// header (src/gpu/kernels/e8Matmul.ts: each operand's A_/B_ CODE_BITS, CODES_PER_WORD, INDEX_BITS and
// INDICES_PER_WORD, and `operand_leader(is_b, code)`: gemv_leader, or decode_leader with the lattice
// and q from the uniforms), shaders/product_tile.wgsl (the scale multiples and the output of a tile,
// shared with shaders/d3_table_matmul.wgsl), then this file.
//
// Operands (src/gpu/latticeOperand.ts): codes packed `code_bits` bits per value (E8 q = 16: one per
// word), scale indices `index_bits` bits per value; each column starts on a fresh word. Column side
// buffers hold norms at [0, cols), gains at [cols, 2·cols), means at [2·cols, 3·cols).
//
// Estimate: C[i, j] = common_scale · (ν_i γ_i) · (ν_j γ_j) · Σ_t k_a(t)·k_b(t)·⟨P_a(t), P_b(t)⟩
// (+ rows · μ_i · μ_j when centred), P the leader in point coordinates (E8: doubled, so the leader
// itself is P/2), common_scale = unit_a·unit_b / (s_a·s_b·N) from the host. Coordinates at or past
// keptLength are zeroed when decoding, as decodeRotated does.
//
// Tiling as shaders/d3_table_matmul.wgsl: 16 × 16 invocations, a 64 × 64 block of C, 4 × 4 per
// invocation, blocks walked in slices of SLICE. Each slice's leaders of the tile's 64 A and 64 B
// columns are decoded once (two per invocation per operand) into workgroup memory as 8 int8 lanes in
// a vec2<u32> (|P| ≤ 2q ≤ 32 fits int8), where each is used by 16 invocations through dot_i8x8.
//
// Accumulation: the terms k_a·k_b·⟨P_a, P_b⟩ of a run of flush_blocks blocks are summed exactly in
// i32 and each run's sum is added to an f32 accumulator. The host sets flush_blocks = min(SLICE,
// floor((2^31 − 1) / (max k_a · max k_b · max|⟨P_a, P_b⟩|))), with max|⟨P_a, P_b⟩| ≤ ‖P_a‖‖P_b‖ bounded
// by the code (E8: ‖P‖ ≤ 2q, the covering radius 1 doubled; Z^8: ‖P‖² ≤ 8⌊q/2⌋²), so no i32
// overflow can occur for any number of blocks.

const TILE: u32 = 64u;
const SLICE: u32 = 8u;
const THREADS_EDGE: u32 = 16u;
const PER_THREAD: u32 = 4u;
const THREADS: u32 = 256u;

// struct E8MatmulParams is declared once, in src/gpu/kernels/e8Matmul.ts (a UniformLayout: the
// products' shared members, productParamsLayout in productCommon.ts, and its own), which generates
// its WGSL in front of this file.
@group(0) @binding(0) var<uniform> params: E8MatmulParams;
@group(0) @binding(1) var<storage, read> a_codes: array<u32>;
@group(0) @binding(2) var<storage, read> a_indices: array<u32>;
@group(0) @binding(3) var<storage, read> a_side: array<f32>;
@group(0) @binding(4) var<storage, read> b_codes: array<u32>;
@group(0) @binding(5) var<storage, read> b_indices: array<u32>;
@group(0) @binding(6) var<storage, read> b_side: array<f32>;
@group(0) @binding(7) var<storage, read_write> c: array<f32>;

// [t][column]: the leader of block t0 + t as 8 int8 lanes, and its scale multiple.
var<workgroup> a_points: array<vec2<u32>, SLICE * TILE>;
var<workgroup> a_ks: array<i32, SLICE * TILE>;
var<workgroup> b_points: array<vec2<u32>, SLICE * TILE>;
var<workgroup> b_ks: array<i32, SLICE * TILE>;

// Value `slot` of a packed field: `bits` bits per value, floor(32 / bits) values per word.
fn packed_value(word: u32, slot: u32, bits: u32) -> u32 {
  return extractBits(word, slot * bits, bits);
}

// The 8 coordinates of a leader as int8 lanes (pack_i8x4 of the dot library); lanes whose rotated
// coordinate index block·8 + lane is ≥ kept are zero (only a column's last block can have any).
fn pack_leader(p: LatticePoint, block: u32) -> vec2<u32> {
  var lanes = p;
  let first = block * 8u;
  if (first + 8u > params.kept) {
    for (var lane = 0u; lane < 8u; lane = lane + 1u) {
      lanes[lane] = select(0, p[lane], first + lane < params.kept);
    }
  }
  return vec2<u32>(
    pack_i8x4(vec4<i32>(lanes[0], lanes[1], lanes[2], lanes[3])),
    pack_i8x4(vec4<i32>(lanes[4], lanes[5], lanes[6], lanes[7])),
  );
}

@compute @workgroup_size(16, 16, 1)
fn main(
  @builtin(workgroup_id) tile: vec3<u32>,
  @builtin(local_invocation_id) local: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let i0 = tile.x * TILE;
  let j0 = tile.y * TILE;
  var acc: array<f32, 16>; // [r · 4 + s], zero-initialized
  // The current run's exact sums, zeroed explicitly after each flush (a zero-initialized `var` declared
  // inside a loop was observed to keep its previous values on Dawn + lavapipe).
  var chunk: array<i32, 16>;

  for (var t0 = 0u; t0 < params.blocks; t0 = t0 + SLICE) {
    workgroupBarrier(); // the previous slice has been read by everyone
    // Decode the slice: entries [0, SLICE·TILE) are A's, the next SLICE·TILE are B's. Consecutive
    // invocations take consecutive blocks of one column (adjacent code words). Columns past the edge
    // and blocks past the end decode as zero. The loop bound is a uniform so that the compiler keeps
    // one copy of the decoder (unrolling it quadrupled lavapipe's compile time).
    for (var step = 0u; step < params.decode_steps; step = step + 1u) {
      let e = thread + step * THREADS;
      let is_b = e >= SLICE * TILE;
      let f = e % (SLICE * TILE);
      let column = f / SLICE;
      let t = f % SLICE;
      let block = t0 + t;
      let global_column = select(i0, j0, is_b) + column;
      var point = vec2<u32>(0u, 0u);
      var k = 0;
      if (block < params.blocks && global_column < select(params.a_cols, params.b_cols, is_b)) {
        // The block's code and scale index: word and slot by constants (the generated header).
        var code: u32;
        var index: u32;
        if (is_b) {
          let word = b_codes[params.b_code_first + global_column * params.b_code_words + block / B_CODES_PER_WORD];
          let index_word = b_indices[params.b_index_first + global_column * params.b_index_words + block / B_INDICES_PER_WORD];
          code = packed_value(word, block % B_CODES_PER_WORD, B_CODE_BITS);
          index = packed_value(index_word, block % B_INDICES_PER_WORD, B_INDEX_BITS);
        } else {
          let word = a_codes[params.a_code_first + global_column * params.a_code_words + block / A_CODES_PER_WORD];
          let index_word = a_indices[params.a_index_first + global_column * params.a_index_words + block / A_INDICES_PER_WORD];
          code = packed_value(word, block % A_CODES_PER_WORD, A_CODE_BITS);
          index = packed_value(index_word, block % A_INDICES_PER_WORD, A_INDEX_BITS);
        }
        let leader = operand_leader(is_b, code);
        point = pack_leader(leader, block);
        k = select(a_multiple(index), b_multiple(index), is_b);
      }
      if (is_b) {
        b_points[t * TILE + column] = point;
        b_ks[t * TILE + column] = k;
      } else {
        a_points[t * TILE + column] = point;
        a_ks[t * TILE + column] = k;
      }
    }
    workgroupBarrier(); // the slice is decoded

    // The slice in runs of flush_blocks blocks, each summed exactly in i32 and then added in f32.
    let count = min(SLICE, params.blocks - t0);
    for (var run_start = 0u; run_start < count; run_start = run_start + params.flush_blocks) {
      let run_end = min(count, run_start + params.flush_blocks);
      for (var t = run_start; t < run_end; t = t + 1u) {
        var a_point: array<vec2<u32>, 4>;
        var b_point: array<vec2<u32>, 4>;
        var a_k: array<i32, 4>;
        var b_k: array<i32, 4>;
        for (var r = 0u; r < PER_THREAD; r = r + 1u) {
          let slot_a = t * TILE + local.x + THREADS_EDGE * r;
          a_point[r] = a_points[slot_a];
          a_k[r] = a_ks[slot_a];
          let slot_b = t * TILE + local.y + THREADS_EDGE * r;
          b_point[r] = b_points[slot_b];
          b_k[r] = b_ks[slot_b];
        }
        for (var r = 0u; r < PER_THREAD; r = r + 1u) {
          for (var s = 0u; s < PER_THREAD; s = s + 1u) {
            let rs = r * PER_THREAD + s;
            chunk[rs] = chunk[rs] + a_k[r] * b_k[s] * dot_i8x8(a_point[r], b_point[s]);
          }
        }
      }
      for (var rs = 0u; rs < PER_THREAD * PER_THREAD; rs = rs + 1u) {
        acc[rs] = acc[rs] + f32(chunk[rs]);
        chunk[rs] = 0;
      }
    }
  }

  write_tile(i0, j0, local, acc);
}
