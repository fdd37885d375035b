// Weight-only product Y = ŴᵀX for a universal D3 matrix with 8-bit codes (d3-q6) and int8 inputs: the
// decode-step GEMV built for memory bandwidth (opt-in; the f32-input kernel is
// shaders/universal_gemv.wgsl). CPU twin: matvecAT (src/product/matvec.ts) on the same x̃ rounded as
// `quantizeInputsI8` does, within the bound of src/gpu/kernels/universalGemvI8.ts.
// Module (src/gpu/kernels/universalGemvI8.ts):
//   [enable subgroups;]  const RHS_TILE  the generated UniversalGemvI8Params  dot_i8 (packed or plain)
//   lattice_decode.wgsl + counter_hash.wgsl + the lattice header + universal_escape_table.wgsl
//   (universalWgsl.ts: dither_key, nonroot_mu)  the generated header (G_Q, G_POINT_FACTOR,
//   LEADER_COUNT, ROOT_COUNT, block_hash, dither_lanes, dither_rest)  the decode with q a constant
//   (gemvDecode.ts)  shaders/universal_gemv_lanes.wgsl  shaders/gemv_i8_common.wgsl (the leader table
//   and the streaming loop `gemv`)  this file  one entry file (universal_gemv_plain.wgsl or
//   universal_gemv_subgroup.wgsl).
//
// Math. As in universal_gemv.wgsl, Y[j, r] = ν_j·unit·T[j, r] + μ_j·Σx_r with T = Σ_{b,v} c_v·x̃_v and
// c_v = λ_v·M/s − Z_v (here the dither Z itself, offsets included: no per-call offset sum, so this
// kernel writes Y itself and the f32 GEMV's `finish` pass is not needed; Σx comes from its `call_sums`
// when W is centred).
// x̃ comes as int8 per group of 12 coordinates, x̃ ≈ s_g·x̂ (shaders/gemv_i8_inputs.wgsl), and every
// factor of c is a small integer: λ = leader + q·μ with |λ_v| ≤ 12 for a root escape (d3-q6), Z_v in
// [−128, 128) for the two byte fields and [−256, 256) for the 9-bit one. So per block
//   Σ_v c_v·x̂_v = M/s·(dot(leader, x̂) + dot(q·root, x̂)) − dot(Z₀₁, x̂) − Z₂·x̂₂
// with three packed 8-bit dot products (dot4I8Packed where the WGSL language feature exists): the
// leader and q·root come packed from workgroup tables, Z₀ and Z₁ are the hash's low two bytes with
// their top bits flipped (Z = byte − 128 is the byte read as i8 after that flip). The sum over the 4
// blocks of a group stays in i32 (|·| < 5.2·10⁶ < 2^24, so it converts to f32 exactly) and is scaled
// by s_g once. A non-root escape (rare; μ can be large) adds its q·μ part in f32 after the escape
// table's binary search.
//
// Layout. Escapes come repacked at upload (shaders/universal_escape_nibbles.wgsl): a nibble per block,
// 0 none, 1…12 the root, 15 non-root; so the inner loop reads 8 + 4 bits per block and does no escape
// bookkeeping. A group is one code word (4 blocks) and its nibbles (half a word), laid out beside the
// codes: the nibbles of code word c (counted from the start of the codes buffer) are half c mod 2 of
// nibble word c / 2, so a quad of code words has one aligned vec2 of nibbles whatever the column.
// The 32 lanes of a column slot read 32 consecutive quads of a column per load; each lane serves
// LANE_COLUMNS = 2 columns, loads a quad of each (16 bytes) and its nibbles (8 bytes) before decoding
// any, and the x̂ of a group once for both columns (shaders/gemv_i8_common.wgsl says why).
// Groups past the column or coordinates past keptLength need no test: their x̂ are 0.
//
// Cost per block (1.5 bytes of weights: an 8-bit code and a nibble), counted by hand on this WGSL for
// what a GPU runs after the driver's unrolling and constant folding, rhs = 1: code and nibble fields 4,
// leader and root-step reads with their addresses and clamps 5, block hash ≈ 7 (one mix32 without its
// first xorshift: the group's hash_base ^ t, two shift-xors, two multiplies), dither lanes 2 and the
// 9-bit coordinate 4, three dot products 3 (dot4I8Packed; ≈ 12 more each in the plain fallback),
// combination 3; per group (¼ per block) the non-root flags, the hash base (an xor and a shift-xor),
// the x̂ and scale loads (shared by the lane's two columns), the group's nibbles (a select and a
// shift), the f32 multiply-add, the group test and, per quad, its code and nibble loads ≈ 24: ≈ 34 per
// block (per code byte) ≈ 23 per weight byte (universal_gemv.wgsl: ≈ 70 per code byte). The static
// SPIR-V count, which keeps Tint's loop guards, clamps and one-iteration loops, is ≈ 77 per block with
// the non-root escapes' loop (add_rare_blocks) counted once per step. RADV's compiler makes ≈ 38 of it
// in RDNA3 machine code (bench/README.md, "RDNA3 machine code"; ≈ 107 while the escapes' search sat
// inside the group loop, which it then could not unroll). Of
// the ≈ 34, ≈ 24 run on an H200's ALU pipe (fields, table addresses and clamps, the hash's shifts and
// xors, the 9-bit coordinate), which affords ≈ 3.5 per byte at full bandwidth (bench/README.md "An
// H200's budget per byte"): ≈ 22 % of HBM at best (≈ 20 % with the whole mix32 per block), and the
// per-block dither hash is part of the format.

const STEP_ENTRIES: u32 = 16u;     // one per nibble value
const NONROOT_NIBBLE: u32 = 15u;

@group(0) @binding(0) var<uniform> params: UniversalGemvI8Params;
@group(0) @binding(1) var<storage, read> codes: array<vec4<u32>>;  // whole quads (gemvI8Common.ts)
@group(0) @binding(2) var<storage, read> escape_nibbles: array<vec2<u32>>;  // the nibbles of code quad q at nibbles_first + q
@group(0) @binding(3) var<storage, read> escape_table: array<i32>;
@group(0) @binding(4) var<storage, read> x_inputs: array<vec4<u32>>;  // x̂: levels (a vec4 per group and right-hand side), scales (f32 bits)
@group(0) @binding(5) var<storage, read> side: array<f32>;      // norms (all columns), then means when centred
@group(0) @binding(6) var<storage, read> sums: array<f32>;      // sums[rhs + r] = Σx_r when centred (universal_gemv_finish.wgsl)
@group(0) @binding(7) var<storage, read> bias: array<u32>;      // b (all columns) when params.has_bias
@group(0) @binding(8) var<storage, read_write> y: array<atomic<u32>>;  // f32 bits, or f16 halves (store_output)

// q·μ of the root of each nibble value, packed i8 (0 for 0, for the non-root nibble and past the roots).
var<workgroup> root_steps: array<u32, STEP_ENTRIES>;

// Decodes the leaders and root steps into workgroup memory, then waits for the whole workgroup.
fn fill_tables(thread: u32) {
  if (thread < STEP_ENTRIES) {
    var step = vec3<i32>();
    if (thread >= 1u && thread <= ROOT_COUNT) {
      let row = (thread - 1u) * 3u;
      step = vec3<i32>(escape_table[row], escape_table[row + 1u], escape_table[row + 2u]) * G_Q;
    }
    root_steps[thread] = pack_i8x3(step);
  }
  fill_leader_table(thread);
  workgroupBarrier();
}

// Adds block i of the group (code, escape nibble, x̂ word i) to the group's integer sums `exact`.
fn add_block(code: u32, nibble: u32, i: u32, hash_base: u32, replica: u32, xs: ptr<function, array<vec4<u32>, RHS_TILE>>, exact: ptr<function, array<i32, RHS_TILE>>) {
  let leader = leader_table[code * LEADER_COPIES + replica];
  let step = root_steps[nibble];
  let h = block_hash_in_group(hash_base, i);
  let z = dither_lanes(h);
  for (var r = 0u; r < RHS_TILE; r = r + 1u) {
    let xw = (*xs)[r][i];
    (*exact)[r] = (*exact)[r] + G_POINT_FACTOR * (dot_i8x4(leader, xw) + dot_i8x4(step, xw)) - dot_i8x4(z, xw) - dither_rest(h, xw);
  }
}

// Group g's sum (code word `word`, nibbles in the low 16 bits of `nibble_bits`) times x̂, for each
// right-hand side of the tile (right-hand sides past params.rhs read zeros and are not written).
fn group_total(word: u32, nibble_bits: u32, g: u32, column: GemvColumn, group_inputs: InputGroup) -> array<f32, RHS_TILE> {
  let replica = column.replica;
  var inputs = group_inputs;
  var exact = array<i32, RHS_TILE>();
  let b = g * GROUP_BLOCKS;
  let hash_base = group_hash_base(column.key, b);
  add_block(word & 0xffu, nibble_bits & 0xfu, 0u, hash_base, replica, &inputs.words, &exact);
  add_block((word >> 8u) & 0xffu, (nibble_bits >> 4u) & 0xfu, 1u, hash_base, replica, &inputs.words, &exact);
  add_block((word >> 16u) & 0xffu, (nibble_bits >> 8u) & 0xfu, 2u, hash_base, replica, &inputs.words, &exact);
  add_block(word >> 24u, (nibble_bits >> 12u) & 0xfu, 3u, hash_base, replica, &inputs.words, &exact);
  var total = array<f32, RHS_TILE>();
  for (var r = 0u; r < RHS_TILE; r = r + 1u) {
    total[r] = f32(exact[r]) * inputs.scales[r];
  }
  return total;
}

// The group's blocks with a non-root escape (nibble 15: all four bits set), bit i for block i: rare,
// so their q·μ part is added after the step's decode (add_rare_blocks). The four flags, at bits 0,
// 4, 8 and 12, are gathered into bits 9 … 12 by one multiply (by 1 + 2^3 + 2^6 + 2^9: no two partial
// products meet, so nothing carries into those bits).
fn group_rare(nibble_bits: u32) -> u32 {
  let nonroot = nibble_bits & (nibble_bits >> 1u) & (nibble_bits >> 2u) & (nibble_bits >> 3u) & 0x1111u;
  return ((nonroot * 0x249u) >> 9u) & 0xfu;
}

// Adds the q·μ part of the step's non-root escapes (masks `first` and `second` of the step's two
// quads, as gemv builds them from group_rare), one block at a time: μ from the escape table's binary
// search, times the block's x̂ and its group's scale. Most steps have none.
fn add_rare_blocks(first: u32, second: u32, k0: u32, shift: u32, r0: u32, columns: array<GemvColumn, LANE_COLUMNS>, acc: ptr<function, array<array<f32, RHS_TILE>, LANE_COLUMNS>>) {
  let m = f32(G_POINT_FACTOR * G_Q);
  var pending = first;
  var later = second;
  var quad = 0u;
  loop {
    if (pending == 0u) {
      if (later == 0u) {
        break;
      }
      pending = later;
      later = 0u;
      quad = 1u;
    }
    let bit = firstTrailingBit(pending);
    pending = pending & (pending - 1u);
    let c = bit / RARE_BITS;
    let i = bit % GROUP_BLOCKS;
    let g = u32(i32((k0 + quad * LANES) * QUAD_WORDS) - i32(shift) + i32((bit / GROUP_BLOCKS) % QUAD_WORDS));
    let inputs = input_group(g, r0);
    // Column c by a constant loop (the column arrays stay in registers).
    for (var cc = 0u; cc < LANE_COLUMNS; cc = cc + 1u) {
      if (cc == c) {
        let mu = nonroot_mu(columns[cc].first_global_block + g * GROUP_BLOCKS + i);
        for (var r = 0u; r < RHS_TILE; r = r + 1u) {
          let xw = inputs.words[r][i];
          let dot = f32(mu[0]) * f32(i8_lane(xw, 0u)) + f32(mu[1]) * f32(i8_lane(xw, 1u)) + f32(mu[2]) * f32(i8_lane(xw, 2u));
          (*acc)[cc][r] = (*acc)[cc][r] + m * dot * inputs.scales[r];
        }
      }
    }
  }
}

// No side words per column: the nibbles lie beside the codes (quad_sides).
fn column_side_base(index: u32) -> u32 {
  return 0u;
}

// The dither key and first global block of local column `index`.
fn column_dither(index: u32) -> vec2<u32> {
  let global_column = params.column_offset + index;
  return vec2<u32>(dither_key(global_column).x, global_column * params.blocks);  // D3: one hash word
}

// The escape nibbles of code quad `quad`: 16 bits per code word, two words per u32.
fn quad_sides(column: GemvColumn, quad: u32, g0: i32) -> vec2<u32> {
  return escape_nibbles[min(params.nibbles_first + quad, arrayLength(&escape_nibbles) - 1u)];
}

// The nibbles as loaded.
fn join_quad_sides(sides: vec2<u32>, g0: i32) -> vec2<u32> {
  return sides;
}

// The nibbles of word t of the quad (group g0 + t) in the low 16 bits.
fn group_side_bits(sides: vec2<u32>, g0: i32, t: u32) -> u32 {
  return select(sides.x, sides.y, t >= 2u) >> ((t & 1u) * 16u);
}

// Y[j, r] = ν_j·unit·T[j, r] + μ_j·Σx_r (+ b_j) of the column (the finishing pass of the f32-input
// GEMV, done here: the dither term is whole in T, so nothing else is needed), as f32 or f16.
fn write_totals(column: GemvColumn, totals: array<f32, RHS_TILE>, r0: u32, poison: bool) {
  let j = params.column_offset + column.index;
  let scale = side[j] * params.unit;
  for (var r = 0u; r < RHS_TILE; r = r + 1u) {
    let rhs_index = r0 + r;
    if (rhs_index < params.rhs) {
      var value = scale * totals[r];
      if (params.has_means != 0u) {
        value = value + side[params.total_cols + j] * sums[params.rhs + rhs_index];
      }
      store_output(params.y_first + rhs_index * params.total_cols + column.index, params.bias_first + column.index, select(value, POISON, poison));
    }
  }
}
