// The E8 residue GEMV (src/quantize/e8Residues.ts): Y = ŴᵀX for an e8-q16-deterministic matrix
// repacked at upload as a residue word and a side byte per block, with x̃ rounded to int8 per group of
// 32 coordinates (shaders/e8_inputs_i8.wgsl): the int8-input form of the scheme's GEMV
// (lattice_gemv.wgsl's E8 decode: ≈ 46 instructions per code byte), `int8Inputs` of QuantizedLinear.
// CPU twin: `e8ResidueGemvReference` (src/gpu/kernels/e8ResidueGemvI8.ts).
// Module (e8ResidueGemvI8.ts): [enable subgroups;]  const RHS_TILE (1, or 8 for a tile of right-hand
// sides)  the generated E8ResidueGemvParams  dot_i8 (packed or plain)  shaders/multiple_cubic.wgsl
// shaders/universal_gemv_lanes.wgsl  shaders/e8_gemv_totals.wgsl  this file  shaders/quad_word_side.wgsl
// shaders/quad_gemv_loop.wgsl (the loop: this file gives its hooks)  shaders/f16_convert.wgsl + shaders/gemv_output.wgsl
// (store_output: bias, f32 or f16)  shaders/gemv_x_sums.wgsl (Σx for a centred W)  one entry file
// (universal_gemv_plain.wgsl or universal_gemv_subgroup.wgsl).
//
// Math. Block b of column j decodes to (ν_j·γ_j)·column_unit·k_b·ℓ_b, and the leader is ℓ_i = v_i −
// 16 + f_i (e8Residues.ts): v_i = 2·n_i + p in [0, 32) from the residue nibbles as bytes, f_i ∈ {0,
// ±32} on at most one coordinate. With x̃ ≈ s_g·x̂ (s_g per group of 4 blocks) and o_b = 16·Σ_i x̂_i
// (made with x̂), per block
//   2·⟨ℓ, x̂⟩ = 2·(dot(v_even, x̂_even) + dot(v_odd, x̂_odd) − o_b) + dot(fix, x̂_word)
// where fix is the side byte masked by 0xc0 (2·f_i as i8: 0, +64 or −64) shifted into the fixed
// coordinate's lane of the word (even or odd) that holds it. Each block's 6·k_b comes from its 2-bit
// scale index by the cubic of multipleCubic (latticeGemvI8.ts); a group's Σ 6k_b·2⟨ℓ_b, x̂_b⟩ is an
// i32 (the host bounds the multiples), scaled by s_g once. column_unit carries the 1/12. A centred W
// adds μ_j·Σx_r (Σx from the `column_sums` entry, dispatched first), then the bias.
//
// Layout. A workgroup's 256 invocations are 8 column slots of 32 lanes, each lane serving LANE_COLUMNS
// = 2 columns (slot s: columns s and s + 8 of the workgroup's 16). Lane l reads quads l and l + 32,
// then l + 64 and l + 96, … of its columns (STEP_QUADS = 2 per column before decoding): a quad is 4
// blocks, 16 bytes of residue words (one vec4 load) and one word of side bytes; the 32 lanes of a slot
// read 512 consecutive bytes per load. A quad's blocks are decoded once (decode_quad) for every
// right-hand side of the tile; x̂ of the quad's group (3 vec4: the levels, the offsets) and its scale
// are loaded once per right-hand side for both columns. Columns are padded to whole quads with the
// origin's blocks, and x̂ past keptLength is 0, so no test but the column's.
//
// Cost per block (4 bytes of residues and a side byte), counted by hand for what a GPU runs after
// unrolling and constant folding: the side byte 2, the parity's lanes 2 (a mask and a multiply), the
// residue bytes 4 (a shift, and a mask-and-or, per word), the fix word 4 and its x̂ word 2, the scale
// index 2 and its cubic 3 (integer multiply-adds), three dot products accumulating with the offset and
// the doubling 5, the multiply-add into the quad's sum 1: ≈ 25, ≈ 16 of them on an NVIDIA GPU's ALU
// pipe; per quad and column (¼ per block) the residue and side loads, x̂'s 4 loads shared by the two
// columns, their addresses (with the right-hand side's), the scale's word and component, the
// conversion and f32 multiply-add, the loop ≈ 15: ≈ 29 per block, ≈ 5.7 per byte read (≈ 3.8 on the
// ALU pipe), against ≈ 7 an H200 issues per byte of bandwidth (≈ 3.5 on the ALU pipe:
// bench/README.md, "An H200's budget per byte"), so by that budget it is bound by the ALU near 90 % of
// HBM (an estimate). The nearest-point rule is gone from the loop: the repack at upload did it
// (lattice_gemv.wgsl's E8 decode: ≈ 185 per block).


@group(0) @binding(0) var<uniform> params: E8ResidueGemvParams;
// Bindings 1 and 2, the quad's residue words and its 4 side bytes: shaders/quad_word_side.wgsl.
@group(0) @binding(3) var<storage, read> side: array<f32>;             // ν_j·γ_j of every column, then μ_j when centred
@group(0) @binding(4) var<storage, read> x_inputs: array<vec4<u32>>;   // x̂: 3 per group and right-hand side, then the scales (e8_inputs_i8.wgsl)
@group(0) @binding(5) var<storage, read> x: array<f32>;                // x (for Σx)
@group(0) @binding(6) var<storage, read_write> sums: array<f32>;       // Σx per right-hand side
@group(0) @binding(7) var<storage, read> bias: array<u32>;             // b (all columns) when params.has_bias
@group(0) @binding(8) var<storage, read_write> y: array<atomic<u32>>;  // f32 bits, or f16 halves (store_output)

// One block decoded for the dot products: its residues as bytes v = 2n + p (coordinates 0, 2, 4, 6
// and 1, 3, 5, 7), the fix as the byte 2·f in the lane of the fixed coordinate's word (even or odd)
// and 6k.
struct ResidueBlock {
  v_even: u32,
  v_odd: u32,
  fix: u32,
  fix_odd: bool,
  multiple6: i32,
}

fn decode_block(word: u32, side_byte: u32) -> ResidueBlock {
  let parity = (side_byte & 1u) * 0x01010101u;
  // The fix: byte 2·f (side & 0xc0) in lane (i >> 1) of the word of coordinate i = (side >> 1) & 7.
  return ResidueBlock(
    ((word << 1u) & 0x1e1e1e1eu) | parity,
    ((word >> 3u) & 0x1e1e1e1eu) | parity,
    (side_byte & 0xc0u) << ((side_byte << 1u) & 0x18u),
    (side_byte & 2u) != 0u,
    multiple_cubic((side_byte >> 4u) & 3u),
  );
}

fn decode_block_quad(words: vec4<u32>, side_word: u32) -> array<ResidueBlock, 4> {
  return array<ResidueBlock, 4>(
    decode_block(words.x, side_word & 0xffu),
    decode_block(words.y, (side_word >> 8u) & 0xffu),
    decode_block(words.z, (side_word >> 16u) & 0xffu),
    decode_block(words.w, side_word >> 24u),
  );
}

// 6k·2⟨ℓ, x̂⟩ of one block: x̂ words `xe` (coordinates 0, 2, 4, 6) and `xo` (1, 3, 5, 7) and the
// offset o = 16·Σx̂.
fn block_dot(b: ResidueBlock, xe: u32, xo: u32, offset: i32) -> i32 {
  let x_fixed = select(xe, xo, b.fix_odd);
  let twice = 2 * (dot_i8x4(b.v_even, xe) + dot_i8x4(b.v_odd, xo) - offset) + dot_i8x4(b.fix, x_fixed);
  return b.multiple6 * twice;
}

// Σ_b 6k_b·2⟨ℓ_b, x̂_b⟩ over the 4 blocks of a quad.
fn quad_dot(blocks: array<ResidueBlock, 4>, x0: vec4<u32>, x1: vec4<u32>, offsets: vec4<u32>) -> i32 {
  let o = bitcast<vec4<i32>>(offsets);
  return block_dot(blocks[0], x0.x, x0.y, o.x) + block_dot(blocks[1], x0.z, x0.w, o.y)
    + block_dot(blocks[2], x1.x, x1.y, o.z) + block_dot(blocks[3], x1.z, x1.w, o.w);
}

// Y[j, r] = ν_jγ_j·column_unit·total (+ μ_j·Σx_r) (+ b_j) of local column `column`, as f32 or f16.
fn write_totals(column: u32, totals: array<f32, RHS_TILE>, r0: u32, poison: bool) {
  write_scaled_totals(column, side[params.column_first + column] * params.column_unit, totals, r0, poison);
}

// The hooks of shaders/quad_gemv_loop.wgsl (the loop, compiled after this file).

fn begin_workgroup(thread: u32) {}

alias ColumnState = u32;   // nothing per column

fn column_state(column: u32, lane: u32) -> ColumnState {
  return 0u;
}

// QuadWords and load_quad: shaders/quad_word_side.wgsl (the residue words, the side word).

alias QuadDecoded = array<ResidueBlock, 4>;

fn decode_quad(words: QuadWords, state: ColumnState, k: u32) -> QuadDecoded {
  return decode_block_quad(words.words, words.side);
}

// x̂ of a quad's group for one right-hand side: its levels (coordinates 0, 2, … and 1, 3, … of each
// block), the blocks' offsets 16·Σx̂ and the scale.
struct QuadInputs {
  x0: vec4<u32>,
  x1: vec4<u32>,
  offsets: vec4<u32>,
  scale: f32,
}

fn quad_inputs(at: u32) -> QuadInputs {
  let scale_at = params.x_scales_first + at;
  return QuadInputs(x_inputs[3u * at], x_inputs[3u * at + 1u], x_inputs[3u * at + 2u], bitcast<f32>(x_inputs[scale_at >> 2u][scale_at & 3u]));
}

fn quad_sum(blocks: QuadDecoded, x: QuadInputs) -> f32 {
  return f32(quad_dot(blocks, x.x0, x.x1, x.offsets)) * x.scale;
}
