// The E8 point GEMV (src/quantize/e8Points.ts): Y = ŴᵀX for a universal E8 matrix whose lattice points
// λ were stored as int8 at upload (8 bytes per block), with x̃ rounded to int8 per group of 32
// coordinates (shaders/e8_inputs_i8.wgsl): the int8-input form of the scheme's GEMV
// (shaders/universal_gemv.wgsl: ≈ 310–525 instructions per block), `int8Inputs` of QuantizedLinear.
// CPU twin: `e8PointGemvReference` (src/gpu/kernels/e8PointGemvI8.ts).
// Module (e8PointGemvI8.ts): [enable subgroups;]  const RHS_TILE (1, or 8 for a tile of right-hand
// sides)  the generated E8PointGemvParams  dot_i8 (packed or plain)  shaders/counter_hash.wgsl (mix32)
// shaders/universal_gemv_lanes.wgsl  shaders/e8_gemv_totals.wgsl  this file  shaders/quad_gemv_loop.wgsl (the
// loop: this file gives its hooks)  shaders/f16_convert.wgsl + shaders/gemv_output.wgsl
// (store_output: bias, f32 or f16)  shaders/gemv_x_sums.wgsl (Σx for a centred W)  one entry file
// (universal_gemv_plain.wgsl or universal_gemv_subgroup.wgsl).
//
// Math. Block b of column j decodes to ν_j·column_unit·(λ_v·M/s − Z_v) (M = DITHER_GRID, s = 2, so
// M/s = POINT_FACTOR = 128), where Z are the fields of the block's two dither hash words h_t =
// mix32(key_t ^ (2b + t)) less their offsets (src/quantize/universalCode.ts, blockDither; the layout is
// latticeSpec('E8').dither, a box that is a fundamental domain of E8): Z_0 = 7 bits of h_1 from bit 16
// less 64, Z_1 … Z_4 = the bytes of h_0 less 128, Z_5 and Z_6 = bytes 0 and 1 of h_1 less 128, Z_7 = 9
// bits of h_1 from bit 23 less 256. So h_0 ^ 0x80808080 is Z_1 … Z_4 as packed i8, and the low half of
// h_1 ^ 0x80808080 is Z_5, Z_6: two packed dot products against x̂ regrouped as (x̂_1 … x̂_4) and (x̂_5,
// x̂_6, 0, 0) (`x_block`, once per x̂ load for both columns), and two integer multiply-adds for Z_0 and
// Z_7. With x̃ ≈ s_g·x̂ (s_g per group of 4 blocks), per block
//   Σ_v (λ_v·M/s − Z_v)·x̂_v = 128·(dot(λ_even, x̂_even) + dot(λ_odd, x̂_odd)) − ⟨Z, x̂⟩,
// an i32 (|λ| ≤ 127: a quad's sum stays below 4·(128·8·127² + (6·128 + 64 + 256)·127) < 2^27), scaled
// by s_g once per group. A centred W adds μ_j·Σx_r (Σx from the `column_sums` entry, dispatched
// first), then the bias.
//
// Layout. As shaders/e8_residue_gemv_i8.wgsl: a workgroup's 256 invocations are 8 column slots of 32
// lanes, each lane serving LANE_COLUMNS = 2 columns (slot s: columns s and s + 8 of the workgroup's
// 16); lane l reads quads l and l + 32, then l + 64 and l + 96, … of its columns (STEP_QUADS = 2 per
// column before using any): a quad is 4 blocks, 32 bytes of points (two vec4 loads); the 32 lanes of
// a slot read 1 KB per pair of loads. x̂ of the quad's group (2 vec4 of levels) and its scale are loaded
// once per right-hand side for both columns; a quad's dither is hashed once for every right-hand
// side of the tile. Columns are padded to whole quads with zero points, and x̂ past keptLength is 0,
// so no test but the column's.
//
// Cost per block (8 bytes of points), counted by hand for what a GPU runs after unrolling and constant
// folding: the two hash inputs (the counter 2b + t and its xors with the keys) 3, two mix32 of three
// shift-xors (6) and two integer multiplies each 16, the xors with 0x80808080 2, Z_0 and Z_7 5, six dot
// products and multiply-adds 6 (λ's two, Z's two and two scalar), 128·(…) and the subtraction 2, the
// add into the quad's sum 1: ≈ 35, ≈ 24 on an NVIDIA GPU's ALU pipe and ≈ 10 on its FMA pipe; x̂
// regrouped (`x_block`) ≈ 15 per block and right-hand side, shared by the two columns: ≈ 7.5; per quad
// and column (¼ per block) the two point loads, x̂'s two loads shared by the two columns, their
// addresses, the scale, the conversion and f32 multiply-add, the loop ≈ 14: ≈ 46 per block, ≈ 5.8
// per byte read (≈ 4 on the ALU pipe), against the ≈ 7 (≈ 3.5 on the ALU pipe) an H200 issues per
// byte of bandwidth (bench/README.md, "An H200's budget per byte"): by that budget bound by its ALU
// pipe near 85 % of HBM (an estimate), reading 8 bits per entry.

const POINT_FACTOR: i32 = 128;
const DITHER_BIAS: u32 = 0x80808080u;

@group(0) @binding(0) var<uniform> params: E8PointGemvParams;
@group(0) @binding(1) var<storage, read> points: array<vec4<u32>>;     // a quad per 2 vec4
@group(0) @binding(2) var<storage, read> keys: array<vec2<u32>>;       // per column the dither hash words' keys, then the overflow word
@group(0) @binding(3) var<storage, read> side: array<f32>;             // ν_j of every column, then μ_j when centred
@group(0) @binding(4) var<storage, read> x_inputs: array<vec4<u32>>;   // x̂: 3 per group and right-hand side, then the scales (e8_inputs_i8.wgsl)
@group(0) @binding(5) var<storage, read> x: array<f32>;                // x (for Σx)
@group(0) @binding(6) var<storage, read_write> sums: array<f32>;       // Σx per right-hand side
@group(0) @binding(7) var<storage, read> bias: array<u32>;             // b (all columns) when params.has_bias
@group(0) @binding(8) var<storage, read_write> y: array<atomic<u32>>;  // f32 bits, or f16 halves (store_output)

// A quad's points (blocks 0 and 1 in `a`, 2 and 3 in `b`: even and odd words) and its dither hash
// words h_t ^ 0x80808080 (blocks 0 and 1 in `ha`, 2 and 3 in `hb`: h_0, h_1 of each).
struct PointQuad {
  a: vec4<u32>,
  b: vec4<u32>,
  ha: vec4<u32>,
  hb: vec4<u32>,
}

// The dither hash words of block `block` (global index within its column), xored with 0x80808080.
fn block_hashes(key: vec2<u32>, block: u32) -> vec2<u32> {
  let counter = 2u * block;
  return vec2<u32>(mix32(key.x ^ counter), mix32(key.y ^ (counter + 1u))) ^ vec2<u32>(DITHER_BIAS);
}

fn point_quad(a: vec4<u32>, b: vec4<u32>, key: vec2<u32>, quad: u32) -> PointQuad {
  let first = 4u * quad;
  return PointQuad(
    a,
    b,
    vec4<u32>(block_hashes(key, first), block_hashes(key, first + 1u)),
    vec4<u32>(block_hashes(key, first + 2u), block_hashes(key, first + 3u)),
  );
}

// One block of x̂ for the dot products: its even and odd words, and regrouped for the dither's fields:
// (x̂_1, x̂_2, x̂_3, x̂_4), (x̂_5, x̂_6, 0, 0), x̂_0 and x̂_7.
struct XBlock {
  even: u32,
  odd: u32,
  middle: u32,
  pair: u32,
  first: i32,
  last: i32,
}

fn x_block(even: u32, odd: u32) -> XBlock {
  return XBlock(
    even,
    odd,
    (odd & 0xffu) | (even & 0xff00u) | ((odd << 8u) & 0xff0000u) | ((even << 8u) & 0xff000000u),
    ((odd >> 16u) & 0xffu) | ((even >> 16u) & 0xff00u),
    (bitcast<i32>(even) << 24u) >> 24u,
    bitcast<i32>(odd) >> 24u,
  );
}

// Σ_v (λ_v·128 − Z_v)·x̂_v of one block: points (pe, po), hash words h0 and h1 (xored with 0x80808080).
fn block_dot(pe: u32, po: u32, h0: u32, h1: u32, x: XBlock) -> i32 {
  // h1 ^ 0x80808080: bits 16–22 are Z_0's field with bit 23 (Z_7's low bit) flipped back by the mask,
  // and bits 23–31 are Z_7's field with its top bit flipped: undo the bias before reading them.
  let raw = h1 ^ DITHER_BIAS;
  let z_first = i32((raw >> 16u) & 0x7fu) - 64;
  let z_last = i32(raw >> 23u) - 256;
  let dither = dot_i8x4(h0, x.middle) + dot_i8x4(h1, x.pair) + z_first * x.first + z_last * x.last;
  return POINT_FACTOR * (dot_i8x4(pe, x.even) + dot_i8x4(po, x.odd)) - dither;
}

fn quad_dot(q: PointQuad, x: array<XBlock, 4>) -> i32 {
  return block_dot(q.a.x, q.a.y, q.ha.x, q.ha.y, x[0]) + block_dot(q.a.z, q.a.w, q.ha.z, q.ha.w, x[1])
    + block_dot(q.b.x, q.b.y, q.hb.x, q.hb.y, x[2]) + block_dot(q.b.z, q.b.w, q.hb.z, q.hb.w, x[3]);
}

// Y[j, r] = ν_j·column_unit·total (+ μ_j·Σx_r) (+ b_j) of local column `column`, as f32 or f16; NaN
// for every output when the repack found a point beyond int8 (shaders/e8_point_repack.wgsl), so such
// a matrix never gives a plausible wrong answer.
fn write_totals(column: u32, totals: array<f32, RHS_TILE>, r0: u32, poison: bool) {
  let overflow = keys[params.overflow_at].x;
  // A quiet NaN made from the run-time word (a constant NaN is not a valid WGSL f32 value).
  let scale = select(side[params.column_first + column] * params.column_unit, bitcast<f32>(0x7fc00000u | overflow), overflow != 0u);
  write_scaled_totals(column, scale, totals, r0, poison);
}

// The hooks of shaders/quad_gemv_loop.wgsl (the loop, compiled after this file).

fn begin_workgroup(thread: u32) {}

// The column's dither hash keys (like ν, per global column).
alias ColumnState = vec2<u32>;

fn column_state(column: u32, lane: u32) -> ColumnState {
  return keys[params.column_first + column];
}

// A quad as loaded: its two vec4 of points.
struct QuadWords {
  a: vec4<u32>,
  b: vec4<u32>,
}

fn load_quad(column: u32, k: u32) -> QuadWords {
  let at = min(params.point_first + 2u * (column * params.quads + k), arrayLength(&points) - 2u);   // a quad is 2 vec4 (the binding holds whole quads)
  return QuadWords(points[at], points[at + 1u]);
}

alias QuadDecoded = PointQuad;

// The quad's points with its blocks' dither hash words (once for every right-hand side of the tile).
fn decode_quad(words: QuadWords, key: ColumnState, k: u32) -> QuadDecoded {
  return point_quad(words.a, words.b, key, k);
}

// x̂ of a quad's group for one right-hand side, regrouped per block (`x_block`, once for both columns), and its scale.
struct QuadInputs {
  blocks: array<XBlock, 4>,
  scale: f32,
}

fn quad_inputs(at: u32) -> QuadInputs {
  let x0 = x_inputs[3u * at];
  let x1 = x_inputs[3u * at + 1u];
  let scale_at = params.x_scales_first + at;
  return QuadInputs(array<XBlock, 4>(x_block(x0.x, x0.y), x_block(x0.z, x0.w), x_block(x1.x, x1.y), x_block(x1.z, x1.w)), bitcast<f32>(x_inputs[scale_at >> 2u][scale_at & 3u]));
}

fn quad_sum(q: QuadDecoded, x: QuadInputs) -> f32 {
  return f32(quad_dot(q, x.blocks)) * x.scale;
}
