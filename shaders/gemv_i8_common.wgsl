// The shared part of the int8-input GEMV kernels (shaders/universal_gemv_i8.wgsl and
// shaders/lattice_gemv_i8.wgsl): D3 codes of 8 bits, 4 blocks per code word, so a group is one code
// word (4 blocks, 12 coordinates: one int8 scale group of x̃) plus a few side bits per block (escape
// nibbles, or scale indices). Holds the packed leader table and `gemv`, the streaming loop: the 32
// lanes of a column slot read 32 consecutive code words per load; each lane serves LANE_COLUMNS
// columns (slot s of the workgroup: columns s, s + COLUMNS, …), loads the x̂ of a group once for all of
// them, and loads STEP_GROUPS words per column and their side bits before decoding any; then
// `column_totals` (shaders/universal_gemv_lanes.wgsl) per column.
//
// Why several columns per lane: x̂ of a group (16 bytes and a 4-byte scale per right-hand side) is
// 5× the bytes of the group's code word. Read once per column it would load the SM's L1 with ≈ 5 bytes
// per code byte — at an H200's bandwidth share per SM (≈ 18 code bytes per clock) about 90 of its
// ≈ 128 bytes per clock; two columns per lane halve that (x̂ held in registers across them).
//
// A library, compiled after shaders/universal_gemv_lanes.wgsl, `gemv_leader` (gemvDecode.ts) and the
// constants LEADER_COUNT and LANE_COLUMNS (src/gpu/kernels/gemvI8Common.ts), in front of a kernel that
// declares `params` (cols, code_words, rhs, x_codes_first and x_scales_first: where the dispatch's x̂
// levels (a vec4 index) and scales (a u32 index) start in their binding, has_bias, output_f16),
// `codes: array<u32>`, the int8 inputs `x_inputs: array<vec4<u32>>` (a vec4 of levels per group and
// right-hand side, and elsewhere in the same binding the scales as f32 bits,
// shaders/gemv_i8_inputs.wgsl), `bias: array<f32>`, `y: array<atomic<u32>>` (written with
// `store_output`, shaders/gemv_output.wgsl) and these functions:
//   fill_tables(thread)                       fill_leader_table, the kernel's own tables, a barrier;
//   column_side_base(index) -> u32            first side word of local column `index`;
//   column_dither(index) -> vec2<u32>         universal: the column's dither key and its first global
//                                             block (deterministic: zeros);
//   group_side_bits(column, g) -> u32         group g's side bits in the low bits;
//   add_group(word, side_bits, g, column, inputs, acc)   adds group g (x̂ in `inputs`) for the tile
//                                             of right-hand sides;
//   write_totals(column, totals, r0, poison)  lane 0 writes the column's results.

const GROUP_BLOCKS: u32 = 4u;      // 8-bit codes: one code word
// Code words each lane loads before decoding them. With a tile of right-hand sides each word already
// carries 8× the work, so 1 (4 would also multiply the compile time of the tile variant).
const STEP_GROUPS: u32 = select(4u, 1u, RHS_TILE > 1u);
const LUT_ENTRIES: u32 = 256u;     // every 8-bit code (entries from LEADER_COUNT on are 0, never read)
// Lane l reads copy l mod LUT_REPLICAS: 8 lanes of a column hit 8 different banks for one entry. A tile
// of right-hand sides keeps 4 (4 KB), so the table and its 8 KB of partial sums fit WebGPU's minimum
// of 16 KB of workgroup memory.
const LUT_REPLICAS: u32 = select(8u, 4u, RHS_TILE > 1u);

// Leaders as packed i8 (the leader's three coordinates in the low three bytes), LUT_REPLICAS copies
// side by side.
var<workgroup> leader_table: array<u32, LUT_ENTRIES * LUT_REPLICAS>;

// The invocation's column: what `gemv` and the kernel's functions share.
struct GemvColumn {
  index: u32,               // local column of the dispatch
  in_range: bool,
  lane: u32,
  replica: u32,             // leader-table copy of this lane
  code_base: u32,           // first code word of the column in `codes`
  side_base: u32,           // first side word of the column (the kernel's own binding)
  key: u32,                 // universal: the column's dither key (else 0)
  first_global_block: u32,  // universal: global index of the column's first block (else 0)
}

fn pack_i8x3(p: vec3<i32>) -> u32 {
  return (u32(p.x) & 0xffu) | ((u32(p.y) & 0xffu) << 8u) | ((u32(p.z) & 0xffu) << 16u);
}

// Lane `lane` (0…3) of a packed word, sign-extended.
fn i8_lane(word: u32, lane: u32) -> i32 {
  return extractBits(bitcast<i32>(word), 8u * lane, 8u);
}

// x̂ of one group for the tile of right-hand sides: four words (block b's three levels in word b) and
// the group's scale (zeros for right-hand sides past params.rhs).
struct InputGroup {
  words: array<vec4<u32>, RHS_TILE>,
  scales: array<f32, RHS_TILE>,
}

fn input_group(g: u32, r0: u32) -> InputGroup {
  var inputs = InputGroup();
  for (var r = 0u; r < RHS_TILE; r = r + 1u) {
    if (RHS_TILE == 1u || r0 + r < params.rhs) {
      let at = (r0 + r) * params.code_words + g;
      inputs.words[r] = x_inputs[params.x_codes_first + at];
      let scale_at = params.x_scales_first + at;
      inputs.scales[r] = bitcast<f32>(x_inputs[scale_at >> 2u][scale_at & 3u]);
    }
  }
  return inputs;
}

// Decodes the LEADER_COUNT leaders into `leader_table` (every copy); the caller adds a barrier.
fn fill_leader_table(thread: u32) {
  for (var e = thread; e < LUT_ENTRIES; e = e + THREADS) {
    var entry = 0u;
    if (e < LEADER_COUNT) {
      let p = gemv_leader(e, 0u);
      entry = pack_i8x3(vec3<i32>(p[0], p[1], p[2]));
    }
    for (var k = 0u; k < LUT_REPLICAS; k = k + 1u) {
      leader_table[e * LUT_REPLICAS + k] = entry;
    }
  }
}

// Columns per workgroup: COLUMNS slots of LANES lanes, LANE_COLUMNS columns per slot.
const WORKGROUP_COLUMNS: u32 = COLUMNS * LANE_COLUMNS;

// Column c of the invocation's slot (local column group_x·WORKGROUP_COLUMNS + c·COLUMNS + slot).
fn gemv_column(group_x: u32, thread: u32, c: u32) -> GemvColumn {
  let index = group_x * WORKGROUP_COLUMNS + c * COLUMNS + thread / LANES;
  let lane = thread % LANES;
  let dither = column_dither(index);
  return GemvColumn(
    index,
    index < params.cols,
    lane,
    lane % LUT_REPLICAS,
    params.code_first + index * params.code_words,
    column_side_base(index),
    dither.x,
    dither.y,
  );
}

// The product for the workgroup's columns (see universal_gemv_lanes.wgsl for `width` and `poison`).
fn gemv(group_x: u32, thread: u32, width: u32, poison: bool) {
  fill_tables(thread);
  var columns = array<GemvColumn, LANE_COLUMNS>();
  for (var c = 0u; c < LANE_COLUMNS; c = c + 1u) {
    columns[c] = gemv_column(group_x, thread, c);
  }
  let lane = thread % LANES;
  let groups = params.code_words;
  for (var r0 = 0u; r0 < params.rhs; r0 = r0 + RHS_TILE) {
    var acc = array<array<f32, RHS_TILE>, LANE_COLUMNS>();
    // Column 0 of a slot is the first to run past params.cols (the others are COLUMNS further on).
    if (columns[0].in_range) {
      for (var g0 = lane; g0 < groups; g0 = g0 + LANES * STEP_GROUPS) {
        // The step's groups of every column, loaded before any is decoded (constant trip counts:
        // unrolled by the driver, LANE_COLUMNS·STEP_GROUPS loads in flight per lane).
        var words = array<array<u32, STEP_GROUPS>, LANE_COLUMNS>();
        var sides = array<array<u32, STEP_GROUPS>, LANE_COLUMNS>();
        for (var k = 0u; k < STEP_GROUPS; k = k + 1u) {
          let g = g0 + k * LANES;
          for (var c = 0u; c < LANE_COLUMNS; c = c + 1u) {
            if (g < groups && columns[c].in_range) {
              words[c][k] = codes[columns[c].code_base + g];
              sides[c][k] = group_side_bits(columns[c], g);
            }
          }
        }
        for (var k = 0u; k < STEP_GROUPS; k = k + 1u) {
          let g = g0 + k * LANES;
          if (g < groups) {
            let inputs = input_group(g, r0);
            for (var c = 0u; c < LANE_COLUMNS; c = c + 1u) {
              if (columns[c].in_range) {
                add_group(words[c][k], sides[c][k], g, columns[c], inputs, &acc[c]);
              }
            }
          }
        }
      }
    }
    for (var c = 0u; c < LANE_COLUMNS; c = c + 1u) {
      let totals = column_totals(acc[c], thread, lane, width);
      if (columns[c].in_range && lane == 0u) {
        write_totals(columns[c], totals, r0, poison);
      }
    }
  }
}
