// The D3 quad GEMV: Y = ŴᵀX for a d3-q6-deterministic matrix whose codes were laid out at upload in
// whole quads per column (shaders/d3_quad_repack.wgsl: 16 blocks per quad, 4 code words and one word
// of their 2-bit scale indices), with x̃ rounded to int8 per group of 12 coordinates as for the other
// D3 int8-input GEMVs (shaders/gemv_i8_inputs.wgsl, one group per code word). The same codes, the same
// 3.33 bits per entry and the same sums as shaders/lattice_gemv_i8.wgsl, in a loop with nothing to
// align: CPU twin `d3QuadGemvReference` (src/gpu/kernels/d3QuadGemvI8.ts).
// Module (d3QuadGemvI8.ts): [enable subgroups;]  const RHS_TILE  the generated D3QuadGemvParams
// dot_i8 (packed or plain)  the decode of D3 with q a constant (gemvDecode.ts) and LEADER_COUNT,
// LEADER_COPIES  shaders/universal_gemv_lanes.wgsl  shaders/e8_gemv_totals.wgsl  this file
// shaders/quad_word_side.wgsl  shaders/quad_gemv_loop.wgsl (the loop: this file gives its hooks)
// store_output  Σx  one entry file (universal_gemv_plain.wgsl or universal_gemv_subgroup.wgsl).
//
// Math. Block b of column j decodes to (ν_j·γ_j)·column_unit·k_b·P_b (P the leader, k_b the multiple
// of the block's scale index). With x̃ ≈ s_g·x̂ per group g of 4 blocks, y_j = ν_jγ_j·column_unit·
// Σ_g s_g·Σ_{b∈g} k_b·⟨P_b, x̂_b⟩ (+ μ_j·Σx) (+ b_j); a group's Σ k_b·⟨P_b, x̂_b⟩ is an i32 (|·| ≤
// 4·max k·3·6·127: the host refuses multiples past 255), scaled by s_g once.
//
// The table. One workgroup-memory word per (code, scale index): the leader as packed i8 in the low
// three bytes and k in the high byte (k ≤ 255), at entry index·256 + code (the index in the high bits:
// most blocks have index 0, and code·4 + index would put them in a quarter of the banks). The x̂ word of a block has
// its high byte 0, so the packed dot product of the entry with it is ⟨P, x̂⟩ whatever k is, and k is
// the entry shifted right by 24: a block costs its two fields, their join, the lookup, one dot
// product and one multiply-add, where the per-block cubic of lattice_gemv_i8.wgsl took three integer
// multiply-adds more. The table holds LEADER_COPIES copies interleaved (entry e of copy c at word
// e·LEADER_COPIES + c) and lane l reads copy l mod LEADER_COPIES, so that the lanes of different
// copies never meet in a bank: a warp's 32 lookups fall into LEADER_COPIES sets of 32/LEADER_COPIES
// lanes, each spread over its own 32/LEADER_COPIES banks (shaders/gemv_i8_common.wgsl). On real codes
// that takes 3.3 passes per warp-wide lookup with one copy, 3.2 with 4 and 2.9 with 8 (bench/README.md,
// "D3: codes in whole quads": copies buy little here, so one is the default).
//
// Layout. A workgroup's 256 invocations are 8 column slots of 32 lanes, each lane serving LANE_COLUMNS
// = 2 columns (slot s: columns s and s + 8 of the workgroup's 16), as in
// shaders/e8_residue_gemv_i8.wgsl. Lane l reads quads l and l + 32, then l + 64 and l + 96, … of its
// columns (STEP_QUADS = 2 per column before decoding): per quad one 16-byte code load and one index
// word; x̂ of the quad's 4 groups (4 vec4 of levels and one vec4 of their 4 scales, which start on a
// vec4 since the groups per right-hand side are 4·quads) is loaded once per right-hand side for both
// columns. Padding blocks past a column's blocks have code 0 (the origin) and x̂ past keptLength is
// 0, so only the quads past the column are dropped.

// Entries per copy: every (code byte, 2-bit index) pair, index·256 + code.
const TABLE_ENTRIES: u32 = 1024u;

var<workgroup> leader_table: array<u32, TABLE_ENTRIES * LEADER_COPIES>;

@group(0) @binding(0) var<uniform> params: D3QuadGemvParams;
// Bindings 1 and 2, the quad's 4 code words and its 16 scale indices (2 bits each): shaders/quad_word_side.wgsl.
@group(0) @binding(3) var<storage, read> side: array<f32>;           // ν_j·γ_j of every column, then μ_j when centred
@group(0) @binding(4) var<storage, read> x_inputs: array<vec4<u32>>; // x̂: a vec4 of levels per group and right-hand side, then the scales
@group(0) @binding(5) var<storage, read> x: array<f32>;              // x (for Σx)
@group(0) @binding(6) var<storage, read_write> sums: array<f32>;     // Σx per right-hand side
@group(0) @binding(7) var<storage, read> bias: array<f32>;           // b (all columns) when params.has_bias
@group(0) @binding(8) var<storage, read_write> y: array<atomic<u32>>;  // f32 bits, or f16 halves (store_output)

// Decodes the leaders into every copy of the table (k of each scale index beside them; entries past
// LEADER_COUNT or the multiples are 0), then waits for the whole workgroup.
fn fill_table(thread: u32) {
  for (var e = thread; e < TABLE_ENTRIES; e = e + THREADS) {
    let code = e & 0xffu;
    let k = params.multiples[0][e >> 8u];
    var entry = 0u;
    if (code < LEADER_COUNT) {
      let p = gemv_leader(code, 0u);
      entry = (u32(p[0]) & 0xffu) | ((u32(p[1]) & 0xffu) << 8u) | ((u32(p[2]) & 0xffu) << 16u) | (u32(k) << 24u);
    }
    for (var c = 0u; c < LEADER_COPIES; c = c + 1u) {
      leader_table[e * LEADER_COPIES + c] = entry;
    }
  }
  workgroupBarrier();
}

// k·⟨P, x̂⟩ of one block: its code byte, its 2-bit scale index, its x̂ word, the lane's copy.
fn block_dot(code: u32, index: u32, x_word: u32, copy: u32) -> i32 {
  let entry = leader_table[(((index << 8u) | code) * LEADER_COPIES) | copy];
  return i32(entry >> 24u) * dot_i8x4(entry, x_word);
}

// Σ k_b·⟨P_b, x̂_b⟩ over the 4 blocks of one code word (group t of its quad), whose scale indices are
// bits 8t … 8t + 7 of the quad's index word (taken with one constant bit-field extract per block once
// the loop over t is unrolled).
fn group_dot(word: u32, index_word: u32, t: u32, xs: vec4<u32>, copy: u32) -> i32 {
  return block_dot(word & 0xffu, (index_word >> (8u * t)) & 3u, xs.x, copy)
    + block_dot((word >> 8u) & 0xffu, (index_word >> (8u * t + 2u)) & 3u, xs.y, copy)
    + block_dot((word >> 16u) & 0xffu, (index_word >> (8u * t + 4u)) & 3u, xs.z, copy)
    + block_dot(word >> 24u, (index_word >> (8u * t + 6u)) & 3u, xs.w, copy);
}

// The hooks of shaders/quad_gemv_loop.wgsl (the loop, compiled after this file).

fn begin_workgroup(thread: u32) {
  fill_table(thread);
}

// The lane's copy of the table (the same for both columns).
alias ColumnState = u32;

fn column_state(column: u32, lane: u32) -> ColumnState {
  return lane % LEADER_COPIES;
}

// QuadWords and load_quad: shaders/quad_word_side.wgsl (the code words, the index word).

// Nothing to decode ahead: each right-hand side's sum looks the blocks up (the words and the copy).
struct QuadDecoded {
  words: QuadWords,
  copy: u32,
}

fn decode_quad(words: QuadWords, copy: ColumnState, k: u32) -> QuadDecoded {
  return QuadDecoded(words, copy);
}

// x̂ of a quad's 4 groups for one right-hand side: 4 vec4 of levels and one vec4 of their scales (the
// groups per right-hand side are 4·quads, so a quad's scales start on a vec4).
struct QuadInputs {
  levels: array<vec4<u32>, 4>,
  scales: vec4<f32>,
}

fn quad_inputs(at: u32) -> QuadInputs {
  let first = 4u * at;
  return QuadInputs(
    array<vec4<u32>, 4>(x_inputs[first], x_inputs[first + 1u], x_inputs[first + 2u], x_inputs[first + 3u]),
    bitcast<vec4<f32>>(x_inputs[params.x_scales_first / 4u + at]),
  );
}

// Σ_g s_g·Σ_{b∈g} k_b·⟨P_b, x̂_b⟩ over the 4 groups of a quad.
fn quad_sum(q: QuadDecoded, inputs: QuadInputs) -> f32 {
  let sums = vec4<f32>(
    f32(group_dot(q.words.words.x, q.words.side, 0u, inputs.levels[0], q.copy)),
    f32(group_dot(q.words.words.y, q.words.side, 1u, inputs.levels[1], q.copy)),
    f32(group_dot(q.words.words.z, q.words.side, 2u, inputs.levels[2], q.copy)),
    f32(group_dot(q.words.words.w, q.words.side, 3u, inputs.levels[3], q.copy)),
  );
  return dot(sums, inputs.scales);
}

// Y[j, r] = ν_jγ_j·column_unit·total (+ μ_j·Σx_r) (+ b_j) of local column `column`, as f32 or f16.
fn write_totals(column: u32, totals: array<f32, RHS_TILE>, r0: u32, poison: bool) {
  write_scaled_totals(column, side[params.column_first + column] * params.column_unit, totals, r0, poison);
}
