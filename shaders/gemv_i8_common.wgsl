// The shared part of the int8-input GEMV kernels (shaders/universal_gemv_i8.wgsl and
// shaders/lattice_gemv_i8.wgsl): D3 codes of 8 bits, 4 blocks per code word, so a group is one code
// word (4 blocks, 12 coordinates: one int8 scale group of x̃) plus a few side bits per block (escape
// nibbles, or scale indices). Holds the packed leader table and `gemv`, the streaming loop: codes are
// read 16 bytes at a time (`codes: array<vec4<u32>>`, one load per quad of 4 code words), the 32
// lanes of a column slot read 32 consecutive quads of a column per load; each lane serves
// LANE_COLUMNS columns (slot s of the workgroup: columns s, s + COLUMNS, …), loads STEP_QUADS quads
// of each (32 quads apart) and their side bits before decoding any, and the x̂ of a group once for
// all of them; then `column_totals` (shaders/universal_gemv_lanes.wgsl) per column.
//
// Quads are those of the binding (words 4q … 4q + 3), not of the column: a column starts at any word
// (code_words is not a multiple of 4 in general), `shift` words into its first quad, so quad k of a
// column holds groups 4k − shift … 4k + 3 − shift and the words outside [0, code_words) belong to
// the neighbouring columns (their sums dropped: their group index, taken as u32, is ≥ code_words). The columns of
// a lane share `shift`, so they share every group's x̂: their first words are COLUMNS·code_words apart,
// a multiple of 4 (COLUMNS = 8). The host binds the codes in whole quads (gemvI8Common.ts).
//
// Why 2 quads per column per step (64 bytes of codes in flight per lane): a layer's workgroups do not
// fill a large GPU — 16 columns each, so a 4096-wide output is 256 workgroups, ≈ 2 per H200 SM, 512
// invocations of its 2048 — and HBM needs about bandwidth × latency in flight (≈ 4.8 TB/s × 0.6 µs
// ≈ 22 KB per SM): 512 × 32 bytes would be 16 KB, 512 × 64 bytes is 32 KB. Wider layers have more
// workgroups per SM and need it less (the 12 registers it adds per invocation may lower their
// occupancy instead); the benchmark's int8 rows at 4096 and 28672 columns on a GPU will tell.
//
// Why several columns per lane: x̂ of a group (16 bytes and a 4-byte scale per right-hand side) is
// 5× the bytes of the group's code word. Read once per column it would load the SM's L1 with ≈ 5 bytes
// per code byte — at an H200's bandwidth share per SM (≈ 18 code bytes per clock) about 90 of its
// ≈ 128 bytes per clock; two columns per lane halve that (x̂ held in registers across them).
//
// A library, compiled after shaders/universal_gemv_lanes.wgsl, `gemv_leader` (gemvDecode.ts) and the
// constants LEADER_COUNT, LANE_COLUMNS, LEADER_COPIES and LEADER_TABLE_ENTRIES
// (src/gpu/kernels/gemvI8Common.ts), in front of a kernel that declares `params` (cols, code_first (a
// u32 word index), code_words, rhs, x_codes_first and x_scales_first: where the dispatch's x̂ levels
// (a vec4 index) and scales (a u32 index) start in their binding, and store_output's members), `codes:
// array<vec4<u32>>`, the int8 inputs `x_inputs: array<vec4<u32>>` (a vec4 of levels per group and
// right-hand side, and elsewhere in the same binding the scales as f32 bits,
// shaders/gemv_i8_inputs.wgsl), `bias: array<u32>`, `y: array<atomic<u32>>` (written with
// `store_output`, shaders/gemv_output.wgsl) and these functions:
//   fill_tables(thread)                       fill_leader_table, the kernel's own tables, a barrier;
//   column_side_base(index) -> u32            first side word of local column `index`;
//   column_dither(index) -> vec2<u32>         universal: the column's dither key and its first global
//                                             block (deterministic: zeros);
//   quad_sides(column, quad, g0) -> vec2<u32> loads the side words of the column's quad `quad` (a vec4
//                                             index of `codes`), whose first word is group g0 (< 0 in
//                                             a column's first quad when shift > 0): loads only, any
//                                             index (a quad or column past the end reads some word of
//                                             the binding, unused), so that nothing waits for them
//                                             before the step's other loads are issued;
//   join_quad_sides(sides, g0) -> vec2<u32>   what the decode reads of them (e.g. two index words
//                                             joined at g0's offset), once per quad;
//   group_side_bits(sides, g0, t) -> u32      word t's side bits (group g0 + t) in the low bits;
//   group_total(word, side_bits, g, column, inputs) -> array<f32, RHS_TILE>   group g's sum (x̂ in
//                                             `inputs`) per right-hand side of the tile; called for
//                                             every group of a step, those outside the column (g
//                                             wrapped, x̂ of a clamped group) and of a column past
//                                             params.cols included, whose sums are not used;
//   group_rare(side_bits) -> u32              the group's blocks (bit i: block i) that add something
//                                             beyond group_total (the universal code's non-root
//                                             escapes; deterministic: none);
//   add_rare_blocks(first, second, k0, shift, r0, columns, acc)   adds those of the step's two quads
//                                             (masks as `gemv` builds them), after the step's decode,
//                                             so that the decode has no loop in it (deterministic:
//                                             nothing);
//   write_totals(column, totals, r0, poison)  lane 0 writes the column's results.

const GROUP_BLOCKS: u32 = 4u;      // 8-bit codes: one code word
const QUAD_WORDS: u32 = 4u;        // code words per vec4 load
// Bits of a step's rare-block mask per column (QUAD_WORDS groups of GROUP_BLOCKS blocks): the
// columns of a step share one u32.
const RARE_BITS: u32 = QUAD_WORDS * GROUP_BLOCKS;
const_assert LANE_COLUMNS * RARE_BITS <= 32u;
// Quads of each column a lane loads before decoding any: 2 (4 × 16 bytes in flight per lane, see the
// header); 1 with a tile of right-hand sides, where each quad already carries 8× the work (2 would
// also double the compile time of that variant).
const STEP_QUADS: u32 = select(2u, 1u, RHS_TILE > 1u);
// The leader table (`leader_table`, `fill_leader_table`, `pack_i8x3`): shaders/leader_table.wgsl.

// The invocation's column: what `gemv` and the kernel's functions share.
struct GemvColumn {
  index: u32,               // local column of the dispatch
  in_range: bool,
  lane: u32,
  replica: u32,             // leader-table copy of this lane (lane mod LEADER_COPIES)
  code_base: u32,           // first code word of the column (a u32 index: the quad is code_base / 4)
  side_base: u32,           // first side word of the column (the kernel's own binding)
  key: u32,                 // universal: the column's dither key (else 0)
  first_global_block: u32,  // universal: global index of the column's first block (else 0)
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
    lane % LEADER_COPIES,
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
  // Words of the first quad before the column starts: the same for every column of the lane.
  let shift = columns[0].code_base % QUAD_WORDS;
  let quads = (shift + groups + QUAD_WORDS - 1u) / QUAD_WORDS;
  for (var r0 = 0u; r0 < params.rhs; r0 = r0 + RHS_TILE) {
    var acc = array<array<f32, RHS_TILE>, LANE_COLUMNS>();
    // Column 0 of a slot is the first to run past params.cols (the others are COLUMNS further on).
    if (columns[0].in_range) {
      for (var k0 = lane; k0 < quads; k0 = k0 + LANES * STEP_QUADS) {
        // The step's quads of every column and their side words, all loaded before any is decoded
        // (constant trip counts, unrolled by the driver: LANE_COLUMNS·STEP_QUADS 16-byte loads in
        // flight per lane). The loads are unconditional, at an index clamped to the binding: a quad
        // past the column's end or of a column past params.cols reads words that the decode below
        // skips. Loads under a branch into zero-initialized registers made the compiler wait for
        // each quad before the next (the branch's other side writes the load's registers): RADV's
        // code for that form waited after every quad (bench/README.md, "RDNA3 machine code").
        var words = array<array<vec4<u32>, STEP_QUADS>, LANE_COLUMNS>();
        var sides = array<array<vec2<u32>, STEP_QUADS>, LANE_COLUMNS>();
        let last_quad = arrayLength(&codes) - 1u;
        for (var s = 0u; s < STEP_QUADS; s = s + 1u) {
          let k = k0 + s * LANES;
          let g0 = i32(k * QUAD_WORDS) - i32(shift);
          for (var c = 0u; c < LANE_COLUMNS; c = c + 1u) {
            let quad = min(columns[c].code_base / QUAD_WORDS + k, last_quad);
            words[c][s] = codes[quad];
            sides[c][s] = quad_sides(columns[c], quad, g0);
          }
        }
        // The blocks flagged by group_rare, per quad of the step (bit c·RARE_BITS + t·GROUP_BLOCKS + i:
        // column c, group g0 + t, block i): of the first quad and of the second. add_rare_blocks takes
        // them after the straight-line decode, instead of a loop inside it, which kept the compiler
        // from unrolling the group loop (bench/README.md, "RDNA3 machine code").
        var rare_first = 0u;
        var rare_second = 0u;
        for (var s = 0u; s < STEP_QUADS; s = s + 1u) {
          let g0 = i32((k0 + s * LANES) * QUAD_WORDS) - i32(shift);
          var joined = array<vec2<u32>, LANE_COLUMNS>();
          for (var c = 0u; c < LANE_COLUMNS; c = c + 1u) {
            joined[c] = join_quad_sides(sides[c][s], g0);
          }
          for (var t = 0u; t < QUAD_WORDS; t = t + 1u) {
            // Words before the column wrap to large u32 values: one test excludes both ends (and the
            // step's quads past the column). Branch-free: every group is summed (x̂ of a clamped
            // group where g is outside) and the sums outside are dropped by a select, so that the
            // step has no branch for a compiler to sink the loads above into (bench/README.md,
            // "RDNA3 machine code"). A column past params.cols is summed too, and never written.
            let g = u32(g0 + i32(t));
            let inside = g < groups;
            let inputs = input_group(min(g, groups - 1u), r0);
            for (var c = 0u; c < LANE_COLUMNS; c = c + 1u) {
              let side_bits = group_side_bits(joined[c], g0, t);
              let total = group_total(words[c][s][t], side_bits, g, columns[c], inputs);
              for (var r = 0u; r < RHS_TILE; r = r + 1u) {
                acc[c][r] = acc[c][r] + select(0.0, total[r], inside);
              }
              let rare = select(0u, group_rare(side_bits), inside && columns[c].in_range) << (c * RARE_BITS + t * GROUP_BLOCKS);
              if (s == 0u) {
                rare_first = rare_first | rare;
              } else {
                rare_second = rare_second | rare;
              }
            }
          }
        }
        add_rare_blocks(rare_first, rare_second, k0, shift, r0, columns, &acc);
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
