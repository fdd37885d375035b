// The D3 quad GEMV: Y = ŴᵀX for a d3-q6-deterministic matrix whose codes were laid out at upload in
// whole quads per column (shaders/d3_quad_repack.wgsl: 16 blocks per quad, 4 code words and one word
// of their 2-bit scale indices), with x̃ rounded to int8 per group of 12 coordinates as for the other
// D3 int8-input GEMVs (shaders/gemv_i8_inputs.wgsl, one group per code word). The same codes, the same
// 3.33 bits per entry and the same sums as shaders/lattice_gemv_i8.wgsl, in a loop with nothing to
// align: CPU twin `d3QuadGemvReference` (src/gpu/kernels/d3QuadGemvI8.ts).
// Module (d3QuadGemvI8.ts): [enable subgroups;]  const RHS_TILE  the generated D3QuadGemvParams
// dot_i8 (packed or plain)  the decode of D3 with q a constant (gemvDecode.ts), LEADER_COUNT and
// shaders/leader_table.wgsl with its constants  shaders/universal_gemv_lanes.wgsl  shaders/e8_gemv_totals.wgsl  this file
// shaders/quad_word_side.wgsl  shaders/quad_gemv_loop.wgsl (the loop: this file gives its hooks)
// store_output  Σx  one entry file (universal_gemv_plain.wgsl or universal_gemv_subgroup.wgsl).
//
// Math. Block b of column j decodes to (ν_j·γ_j)·column_unit·k_b·P_b (P the leader, k_b the multiple
// of the block's scale index). With x̃ ≈ s_g·x̂ per group g of 4 blocks, y_j = ν_jγ_j·column_unit·
// Σ_g s_g·Σ_{b∈g} k_b·⟨P_b, x̂_b⟩ (+ μ_j·Σx) (+ b_j); a group's Σ k_b·⟨P_b, x̂_b⟩ is an i32 (|·| ≤
// 4·max k·3·6·127: the host refuses multiples past 255), scaled by s_g once.
//
// The table. The leaders as packed i8 (shaders/leader_table.wgsl: LEADER_COPIES copies of the 216,
// each padded with zeros to 256 entries so that a code byte past them adds 0, lane l reading copy
// l mod LEADER_COPIES), and each block's scale multiple k from its 2-bit index as
// a byte of one word the lane keeps (`multiple_bytes`, packed by the host: k ≤ 255), so a block costs its two fields, the
// lookup, the byte of k, one dot product and one multiply-add. With 32 copies (the default, 32 KB,
// where the workgroup memory holds them beside the staged x̂, as an H200's 48 KB do; 16 in 32 KB, 8
// in 16 KB) every warp-wide lookup takes one pass through the banks, where the table of stop 50 (one word per (scale index, code) pair: 1024 entries, k in the
// high byte, room for one copy) took 3.3 on real codes. Why that matters (an estimate; the H200 has
// not run this yet): an SM's load/store path takes one pass per clock, for workgroup memory and the
// L1 cache alike, and per step of a warp (2 columns, one quad of each per lane: 1280 code bytes) the
// kernel of stop 50 took ≈ 106 passes for its lookups, ≈ 68 for x̂ (a lane's 64 bytes of levels lie
// 64 bytes from its neighbour's, so each 16-byte load of a warp touches 16 lines) and ≈ 10 for its
// codes: ≈ 184 clocks, ≈ 7 code bytes per clock per SM, ≈ 1.8 TB/s on 132 SMs at 1.98 GHz, the
// order of the 1.46 TB/s it measured (67.1 µs at 8192 × 28672). With one pass per lookup the step
// takes ≈ 110 passes, about as many clocks as its ≈ 32 blocks × 14 instructions take to issue, and
// with x̂ staged (below) ≈ 71.

// Layout. A workgroup's 256 invocations are 8 column slots of 32 lanes, each lane serving LANE_COLUMNS
// = 2 columns (slot s: columns s and s + 8 of the workgroup's 16), as in
// shaders/e8_residue_gemv_i8.wgsl. Lane l reads quads l and l + 32, then l + 64 and l + 96, … of its
// columns (STEP_QUADS = 2 per column before decoding): per quad one 16-byte code load and one index
// word; x̂ of the quad's 4 groups (4 vec4 of levels and one vec4 of their 4 scales, which start on a
// vec4 since the groups per right-hand side are 4·quads) is read once per right-hand side for both
// columns, from workgroup memory where the step staged it (one right-hand side), else from its binding. Padding blocks past a column's blocks have code 0 (the origin) and x̂ past keptLength is
// 0, so only the quads past the column are dropped.

@group(0) @binding(0) var<uniform> params: D3QuadGemvParams;
// Bindings 1 and 2, the quad's 4 code words and its 16 scale indices (2 bits each): shaders/quad_word_side.wgsl.
@group(0) @binding(3) var<storage, read> side: array<f32>;           // ν_j·γ_j of every column, then μ_j when centred
@group(0) @binding(4) var<storage, read> x_inputs: array<vec4<u32>>; // x̂: a vec4 of levels per group and right-hand side, then the scales
@group(0) @binding(5) var<storage, read> x: array<f32>;              // x (for Σx)
@group(0) @binding(6) var<storage, read_write> sums: array<f32>;     // Σx per right-hand side
@group(0) @binding(7) var<storage, read> bias: array<u32>;           // b (all columns) when params.has_bias
@group(0) @binding(8) var<storage, read_write> y: array<atomic<u32>>;  // f32 bits, or f16 halves (store_output)

// What a lane keeps for its blocks: its copy of the table, and k of scale index i as byte i of a word.
struct BlockTables {
  copy: u32,
  multiple_bytes: u32,
}

// k·⟨P, x̂⟩ of one block: its code byte, its 2-bit scale index, its x̂ word.
fn block_dot(code: u32, index: u32, x_word: u32, tables: BlockTables) -> i32 {
  let entry = leader_table[code * LEADER_COPIES + tables.copy];
  let k = (tables.multiple_bytes >> (8u * index)) & 0xffu;
  return i32(k) * dot_i8x4(entry, x_word);
}

// Σ k_b·⟨P_b, x̂_b⟩ over the 4 blocks of one code word (group t of its quad), whose scale indices are
// bits 8t … 8t + 7 of the quad's index word (taken with one constant bit-field extract per block once
// the loop over t is unrolled).
fn group_dot(word: u32, index_word: u32, t: u32, xs: vec4<u32>, tables: BlockTables) -> i32 {
  return block_dot(word & 0xffu, (index_word >> (8u * t)) & 3u, xs.x, tables)
    + block_dot((word >> 8u) & 0xffu, (index_word >> (8u * t + 2u)) & 3u, xs.y, tables)
    + block_dot((word >> 16u) & 0xffu, (index_word >> (8u * t + 4u)) & 3u, xs.z, tables)
    + block_dot(word >> 24u, (index_word >> (8u * t + 6u)) & 3u, xs.w, tables);
}

// The hooks of shaders/quad_gemv_loop.wgsl (the loop, compiled after this file).

fn begin_workgroup(thread: u32) {
  fill_leader_table(thread);
  workgroupBarrier();
}

// The lane's copy of the table and the matrix's multiples (the same for both columns).
alias ColumnState = BlockTables;

fn column_state(column: u32, lane: u32) -> ColumnState {
  return BlockTables(lane % LEADER_COPIES, params.multiple_bytes);
}

// QuadWords and load_quad: shaders/quad_word_side.wgsl (the code words, the index word).

// Nothing to decode ahead: each right-hand side's sum looks the blocks up (the words and the copy).
struct QuadDecoded {
  words: QuadWords,
  tables: BlockTables,
}

fn decode_quad(words: QuadWords, tables: ColumnState, k: u32) -> QuadDecoded {
  return QuadDecoded(words, tables);
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

// Staged x̂ (one right-hand side: RHS_TILE = 1). The 8 column slots of a workgroup read the same
// quads' x̂; read from the binding, each slot loads it again, and a lane's 4 vec4 of levels lie 64
// bytes from its neighbour's, so each 16-byte load of a warp touches 16 cache lines. Staged, the
// workgroup loads a step's x̂ once, consecutive invocations reading consecutive vec4s, into
// workgroup memory laid out group-major (vec4 j of the step's quad q at j·STAGE_QUADS + q), so that
// the 32 lanes of a slot read 32 consecutive vec4s (the bench/README.md estimate: ≈ 68 passes of the
// load/store path per warp step fall to ≈ 29). With a tile of right-hand sides (8× the work per
// quad) x̂ is read from the binding as before.
const STAGED_INPUTS: bool = RHS_TILE == 1u;
// Quads of a step (STAGE_QUADS, generated: the host counts the staged bytes from it; it must be the
// loop's step, shaders/quad_gemv_loop.wgsl), and the vec4 of levels and of scales they hold.
const_assert !STAGED_INPUTS || STAGE_QUADS == LANES * STEP_QUADS;
var<workgroup> staged_levels: array<vec4<u32>, select(1u, 4u * STAGE_QUADS, STAGED_INPUTS)>;
var<workgroup> staged_scales: array<vec4<u32>, select(1u, STAGE_QUADS, STAGED_INPUTS)>;

// x̂ of right-hand side r0 for the quads base … base + STAGE_QUADS − 1 (those past the column repeat
// its last quad, whose sums the loop drops) into workgroup memory; the loop adds the barrier.
fn stage_inputs(r0: u32, base: u32, thread: u32) {
  let first = r0 * params.quads;
  for (var v = thread; v < 5u * STAGE_QUADS; v = v + THREADS) {
    if (v < 4u * STAGE_QUADS) {
      let quad = min(base + (v >> 2u), params.quads - 1u);
      staged_levels[(v & 3u) * STAGE_QUADS + (v >> 2u)] = x_inputs[4u * (first + quad) + (v & 3u)];
    } else {
      let q = v - 4u * STAGE_QUADS;
      staged_scales[q] = x_inputs[params.x_scales_first / 4u + first + min(base + q, params.quads - 1u)];
    }
  }
}

// x̂ of quad k (local = k − base in the step) for right-hand side r.
fn step_inputs(r: u32, k: u32, local: u32) -> QuadInputs {
  if (STAGED_INPUTS) {
    return QuadInputs(
      array<vec4<u32>, 4>(staged_levels[local], staged_levels[STAGE_QUADS + local], staged_levels[2u * STAGE_QUADS + local], staged_levels[3u * STAGE_QUADS + local]),
      bitcast<vec4<f32>>(staged_scales[local]),
    );
  }
  return quad_inputs(r * params.quads + k);
}

// Σ_g s_g·Σ_{b∈g} k_b·⟨P_b, x̂_b⟩ over the 4 groups of a quad.
fn quad_sum(q: QuadDecoded, inputs: QuadInputs) -> f32 {
  let sums = vec4<f32>(
    f32(group_dot(q.words.words.x, q.words.side, 0u, inputs.levels[0], q.tables)),
    f32(group_dot(q.words.words.y, q.words.side, 1u, inputs.levels[1], q.tables)),
    f32(group_dot(q.words.words.z, q.words.side, 2u, inputs.levels[2], q.tables)),
    f32(group_dot(q.words.words.w, q.words.side, 3u, inputs.levels[3], q.tables)),
  );
  return dot(sums, inputs.scales);
}

// Y[j, r] = ν_jγ_j·column_unit·total (+ μ_j·Σx_r) (+ b_j) of local column `column`, as f32 or f16.
fn write_totals(column: u32, totals: array<f32, RHS_TILE>, r0: u32, poison: bool) {
  write_scaled_totals(column, side[params.column_first + column] * params.column_unit, totals, r0, poison);
}
