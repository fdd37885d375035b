// The shared part of the int8-input GEMV kernels (shaders/universal_gemv_i8.wgsl and
// shaders/lattice_gemv_i8.wgsl): D3 codes of 8 bits, 4 blocks per code word, so a group is one code
// word (4 blocks, 12 coordinates: one int8 scale group of x̃) plus a few side bits per block (escape
// nibbles, or scale indices). Holds the packed leader table and `gemv`, the streaming loop: the 32
// lanes of a column read 32 consecutive code words per load, each lane loading STEP_GROUPS words and
// their side bits before decoding any, then `column_totals` (shaders/universal_gemv_lanes.wgsl).
//
// A library, compiled after shaders/universal_gemv_lanes.wgsl, `gemv_leader` (gemvDecode.ts) and the
// constant LEADER_COUNT, in front of a kernel that declares `params` (code_words, rhs, x_codes_first,
// x_scales_first: where the dispatch's x̂ starts in its two bindings), `codes:
// array<u32>`, the int8 inputs `x_codes: array<vec4<u32>>` and `x_scales: array<u32>` (f32 bits; one
// of each per group and right-hand side, shaders/gemv_i8_inputs.wgsl) and these functions:
//   fill_tables(thread)                       fill_leader_table, the kernel's own tables, a barrier;
//   column_side_base(index) -> u32            first side word of local column `index`;
//   column_dither(index) -> vec2<u32>         universal: the column's dither key and its first global
//                                             block (deterministic: zeros);
//   group_side_bits(column, g) -> u32         group g's side bits in the low bits;
//   add_group(word, side_bits, g, column, r0, acc)   adds group g for the tile of right-hand sides;
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
      inputs.words[r] = x_codes[params.x_codes_first + at];
      inputs.scales[r] = bitcast<f32>(x_scales[params.x_scales_first + at]);
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

// The invocation's column: COLUMNS columns per workgroup, LANES lanes each.
fn gemv_column(group_x: u32, thread: u32) -> GemvColumn {
  let index = group_x * COLUMNS + thread / LANES;
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
  let column = gemv_column(group_x, thread);
  let groups = params.code_words;
  for (var r0 = 0u; r0 < params.rhs; r0 = r0 + RHS_TILE) {
    var acc = array<f32, RHS_TILE>();
    if (column.in_range) {
      for (var g0 = column.lane; g0 < groups; g0 = g0 + LANES * STEP_GROUPS) {
        // The step's groups, loaded before any is decoded (constant trip counts: unrolled by the
        // driver, STEP_GROUPS loads in flight per lane).
        var words = array<u32, STEP_GROUPS>();
        var sides = array<u32, STEP_GROUPS>();
        for (var k = 0u; k < STEP_GROUPS; k = k + 1u) {
          let g = g0 + k * LANES;
          if (g < groups) {
            words[k] = codes[column.code_base + g];
            sides[k] = group_side_bits(column, g);
          }
        }
        for (var k = 0u; k < STEP_GROUPS; k = k + 1u) {
          let g = g0 + k * LANES;
          if (g < groups) {
            add_group(words[k], sides[k], g, column, r0, &acc);
          }
        }
      }
    }
    let totals = column_totals(acc, thread, column.lane, width);
    if (column.in_range && column.lane == 0u) {
      write_totals(column, totals, r0, poison);
    }
  }
}
