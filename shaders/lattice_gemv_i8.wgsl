// Weight-only product Y = ŴᵀX for a deterministic D3 matrix with 8-bit codes (d3-q6-deterministic)
// and int8 inputs: the opt-in bandwidth form of shaders/lattice_gemv.wgsl. CPU twin: dequantize(Ŵ)ᵀ·X
// on the same x̃ rounded as `quantizeInputsI8` does (src/gpu/kernels/universalGemvI8.ts), within the
// bound of src/gpu/kernels/latticeGemvI8.ts.
// Module (src/gpu/kernels/latticeGemvI8.ts): [enable subgroups;]  const RHS_TILE  the generated
// LatticeGemvI8Params  dot_i8 (packed or plain)  lattice_decode.wgsl + the decode with q a constant
// (gemvDecode.ts)  the constants LEADER_COUNT, INDEX_BITS, INDEX_MASK, GROUP_INDEX_BITS,
// INDEX_GROUPS_LOG2  shaders/universal_gemv_lanes.wgsl
// shaders/gemv_i8_common.wgsl (the leader table and the streaming loop `gemv`)  this file
// the scale: shaders/d3_scale_per_block.wgsl (fill_tables, group_total: an index per block, as below)
// with the generated multiple6, or shaders/d3_scale_per_group.wgsl (one index per group of 4 blocks:
// the group-scaled prototype, src/quantize/d3GroupScale.ts)
// shaders/gemv_column_sums.wgsl (column_scale, column_mean), shaders/gemv_x_sums.wgsl (the Σx entry)  one entry file (universal_gemv_plain.wgsl or universal_gemv_subgroup.wgsl).
//
// Math. As in lattice_gemv.wgsl, Y[j, r] = (ν_j·γ_j)·column_unit·Σ_b 6k_b·⟨P_b, x̃_b⟩ (+ μ_j·Σx), with P
// the leader (|P_v| ≤ q = 6), k_b the block's scale multiple (an integer) and the host's column_unit
// carrying 1/6. 6k_b comes from the block's scale index i as the integer cubic through the (at most
// 4) multiples, 6k(i) = A + B·i + C·i² + D·i³ (multipleCubic in latticeGemvI8.ts): three integer
// multiply-adds, which an NVIDIA GPU runs on its FMA pipe, instead of a workgroup-memory lookup whose
// address and clamp take the ALU pipe and whose load takes the load/store path — the two resources
// that bound this kernel (bench/README.md, "An H200's budget per byte"). With x̃ ≈ s_g·x̂ per group
// of 12 coordinates (shaders/gemv_i8_inputs.wgsl), a group's Σ 6k_b·⟨P_b, x̂_b⟩ is an i32 (|·| ≤
// 4·6·max k·3·6·127 < 2^31: the host refuses larger multiples; exact in f32 below 2^24, i.e. for
// multiples up to 305, else rounded once, by at most 2^−24 of it) taken with one packed 8-bit dot
// product per block, then scaled by s_g once.
//
// Layout: as shaders/universal_gemv_i8.wgsl — a group is one code word (4 blocks) and a byte of the
// scale-index word (4 × 2 bits: one index word per 4 groups; 4 × 1 bit: per 8 groups), stored as the
// matrix holds them (no repacking); each of the 32 lanes of a column slot serves LANE_COLUMNS = 2
// columns, loads a quad of 4 code words of each (16 bytes) and the two index words its groups fall
// in (a column's quads are the binding's, so its groups straddle index words unless the column starts
// on a quad), joined into the quad's 4 index bytes (quad_sides), and the x̂ of a group once for both
// columns. Padding codes past the column's blocks are
// 0 (the origin) and x̂ past keptLength is 0, so only groups outside the column are dropped.
//
// Cost per block (1 code byte + 2 index bits), counted by hand for what a GPU runs after the driver's
// unrolling and constant folding, rhs = 1: code and index fields 4, leader-table read with its
// address and clamp 3, the multiple 3 (integer multiply-adds), dot product 1 (≈ 12 in the plain
// fallback), multiply-add 1; per group (¼ per block) the x̂ and scale loads (shared by the lane's two
// columns), the group's index bits (one shift), the f32 multiply-add, the group test and, per quad,
// its code load, two index-word loads and their funnel shift ≈ 12: ≈ 15 per block (per code byte)
// ≈ 12 per weight byte (lattice_gemv.wgsl: ≈ 29 per code byte with f32 inputs). An H200 affords ≈ 7
// instructions per byte at full bandwidth, ≈ 3.5 of them on its ALU pipe and ≈ 3.5 integer
// multiply-adds on its FMA pipe: ≈ 7 of the 15 run on the ALU (the fields, the leader's address and
// Tint's clamp on it), ≈ 5.5 on the FMA pipe, so the total issue bounds this kernel near 58 % of the
// HBM bandwidth (bench/README.md, "An H200's budget per byte"; with a table lookup for the multiple,
// as before, the ALU bound it near 48 %). With the leader table padded to 256 entries per copy
// (padLeaderTable, i8LeaderEntries in gemvI8Common.ts) the clamp's bound is one the index can never
// pass, so a driver could drop it: ≈ 14 per block, ≈ 62 % (lavapipe's and RADV's do not). The static SPIR-V
// count, which keeps Tint's loop guards, clamps and one-iteration loops and counts a multiply and its
// add apart, is ≈ 51 per block (41 per weight byte; 46 with the table lookup; 45 and 40 before the
// loads were made unconditional and the decode branch-free; it also counts the rare-block masks of the
// common loop, which the compiler drops here, where group_rare is 0). In RDNA3 machine code (RADV's compiler,
// bench/gpu/rdnaIsa.ts) it is ≈ 19 per block, 4 of them quarter-rate integer multiplies (the cubic's
// three and the multiple's), ≈ 16 with the table lookup (bench/README.md, "RDNA3 machine code").

// Bits of a group's scale indices (generated: GROUP_BLOCKS·INDEX_BITS with an index per block, one
// index per group in the group-scaled prototype) and groups per index word: 4 or 8.
const GROUPS_PER_INDEX_WORD: u32 = 32u / GROUP_INDEX_BITS;     // 1 << INDEX_GROUPS_LOG2

@group(0) @binding(0) var<uniform> params: LatticeGemvI8Params;
@group(0) @binding(1) var<storage, read> codes: array<vec4<u32>>;  // whole quads (gemvI8Common.ts)
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read> side: array<f32>;           // norms, gains, means (from side_first, side_stride apart)
@group(0) @binding(4) var<storage, read> x_inputs: array<vec4<u32>>;  // x̂: levels (a vec4 per group and right-hand side), scales (f32 bits)
@group(0) @binding(5) var<storage, read> x: array<f32>;              // x (for Σx)
@group(0) @binding(6) var<storage, read_write> sums: array<f32>;     // Σx per right-hand side
@group(0) @binding(7) var<storage, read> bias: array<u32>;           // b (all columns) when params.has_bias
@group(0) @binding(8) var<storage, read_write> y: array<atomic<u32>>;  // f32 bits, or f16 halves (store_output)

// The first scale-index word of local column `index`.
fn column_side_base(index: u32) -> u32 {
  return params.index_first + index * params.index_words;
}

// No dither in the deterministic code.
fn column_dither(index: u32) -> vec2<u32> {
  return vec2<u32>();
}

// The two index words that the scale indices of the quad's groups g0 … g0 + 3 lie in: that of g0 (the
// column's first when g0 < 0: the groups before the column are dropped) and the next (clamped to the
// column's last: groups past it are dropped). Loads only (join_quad_sides joins them), at an index
// clamped to the binding: a quad past the column or a column past params.cols reads words the decode
// skips.
fn quad_sides(column: GemvColumn, quad: u32, g0: i32) -> vec2<u32> {
  let first = g0 >> INDEX_GROUPS_LOG2;   // floor(g0 / GROUPS_PER_INDEX_WORD): −1 before the column
  let last_word = arrayLength(&indices) - 1u;
  let lo = indices[min(column.side_base + u32(max(first, 0)), last_word)];
  let hi = indices[min(column.side_base + min(u32(first + 1), params.index_words - 1u), last_word)];
  return vec2<u32>(lo, hi);
}

// The scale indices of the quad's groups in one word (group g0 + t from bit t·GROUP_INDEX_BITS), so
// that each group takes its own with one constant shift (group_side_bits): the two index words joined
// as a funnel shift by g0's bit offset in its word.
fn join_quad_sides(sides: vec2<u32>, g0: i32) -> vec2<u32> {
  let offset = u32(g0 & i32(GROUPS_PER_INDEX_WORD - 1u)) * GROUP_INDEX_BITS;
  // (hi << 32) is not 0 in WGSL (shift amounts are taken mod 32): at offset 0 the word is lo alone.
  return vec2<u32>(select((sides.x >> offset) | (sides.y << (32u - offset)), sides.x, offset == 0u), 0u);
}

// No rare blocks in the deterministic code.
fn group_rare(side_bits: u32) -> u32 {
  return 0u;
}

fn add_rare_blocks(first: u32, second: u32, k0: u32, shift: u32, r0: u32, columns: array<GemvColumn, LANE_COLUMNS>, acc: ptr<function, array<array<f32, RHS_TILE>, LANE_COLUMNS>>) {}

// The scale indices of group g0 + t (4 blocks) in the low bits.
fn group_side_bits(sides: vec2<u32>, g0: i32, t: u32) -> u32 {
  return sides.x >> (t * GROUP_INDEX_BITS);
}

// Y[j, r] = (ν_j·γ_j)·column_unit·total (+ μ_j·Σx_r) (+ b_j) of the column, as f32 or f16.
fn write_totals(column: GemvColumn, totals: array<f32, RHS_TILE>, r0: u32, poison: bool) {
  let scale = column_scale(column.index);
  for (var r = 0u; r < RHS_TILE; r = r + 1u) {
    let rhs_index = r0 + r;
    if (rhs_index < params.rhs) {
      var value = scale * params.column_unit * totals[r];
      if (params.has_means != 0u) {
        value = value + column_mean(column.index) * sums[rhs_index];
      }
      store_output(params.y_first + rhs_index * params.y_stride + column.index, params.bias_first + column.index, select(value, POISON, poison));
    }
  }
}
