// Weight-only product Y = ŴᵀX for a universal (dithered) lattice matrix W (n × cols, D3 or E8) and f32
// right-hand sides X (n × rhs): the LLM decode step (rhs = 1, GEMV) and small batches (rhs ≤ 64).
// CPU twin: matvecAT (src/product/matvec.ts). Module (src/gpu/kernels/universalGemv.ts):
//   [enable subgroups;]  const RHS_TILE  the generated UniversalGemvParams  lattice_decode.wgsl + the
//   lattice header + universal_decode.wgsl (universalWgsl.ts)  the GEMV header (G_POINT_FACTOR,
//   block_fields)  the scheme header (code width, group size, leader table: compile-time constants
//   and the code-reading functions, `universalGemvSchemeHeader`)  the decode with q a constant
//   (gemvDecode.ts: a header + shaders/gemv_decode.wgsl)  shaders/universal_gemv_lanes.wgsl  this file
//   one entry file: universal_gemv_plain.wgsl or universal_gemv_subgroup.wgsl (it defines `main` and
//   `subgroup_partial_sum`).
//
// Math. Rotated column j, block b, coordinate v decodes to (ν_j/√N)·β·(λ_v/s − Z_v/M) (M = DITHER_GRID,
// s = pointScale), so with x̃ = R·x (the caller's x when W is not rotated) and unit = β/(M·√N):
//   Y[j, r] = ν_j·unit · Σ_{b,v} (λ_v·M/s − Z_v)·x̃_r[b·d + v]  +  μ_j·Σ_i x_r[i]
// and Z_v = field_v − offset_v (field_v the raw hash bits, offset_v = 2^(bits_v − 1)), hence
//   Σ (λ_v·M/s − Z_v)·x̃_v = T[j, r] + Σ offset_v·x̃_v,   T[j, r] = Σ c_v·x̃_v,  c_v = λ_v·(M/s) − field_v.
// The offset sum does not depend on the column: it is computed once per call and right-hand side
// (`call_sums` of shaders/universal_gemv_finish.wgsl, with Σx for the mean term). Two forms: where a
// shader stage may have 10 storage buffers, the sums are recorded first and this kernel writes Y
// itself (shaders/universal_gemv_finished.wgsl: the norms, the sums and the bias are bindings 8–10);
// elsewhere (WebGPU guarantees only 8) it writes T[j, r] (shaders/universal_gemv_totals.wgsl) and
// `finish` then forms Y = ν_j·unit·(T + Σ offset·x̃) + μ_j·Σx in place, a pass that moves 8 bytes per
// output and costs a dependent dispatch. c_v is an exact
// integer (|λ| ≤ 2^22 for every escape the encoder emits, so |c| < 2^31), rounded to f32 once (exactly:
// |c| < 2^24 but for huge escapes). Coordinates at or past keptLength count as zero (only the last
// block of a column can be partial).
//
// Compile time. Everything that varies per scheme is a constant of the scheme header: q (G_Q), the
// rounding denominator, the code width, GROUP_BLOCKS (blocks per group: 32 / codeBits when codeBits
// divides 32, so a group is one code word, e.g. 4 codes of d3-q6; else 1) and the leader table. So the
// base-q digits are shifts (q a power of two) or divisions by a constant (a multiply-high on every
// GPU compiler), the nearest-point rules divide by constants (gemv_decode.wgsl), and no loop
// in the inner body has a runtime trip count or a dynamically indexed array.
//
// Leader table (D3 with q³ ≤ 1024: d3-q6's 216 leaders). Each workgroup decodes the q³ leaders once
// into workgroup memory as i32 vectors λ·M/s, LUT_REPLICAS copies side by side (entry e, copy k at
// e·LUT_REPLICAS + k; lane l reads copy l mod LUT_REPLICAS): with 8 copies the 8 lanes of a 128-bit
// access phase always hit 8 different 4-bank groups, with fewer the conflicts drop by the number of
// copies (the host picks as many as the workgroup memory allows, up to 8). Next to it, `root_steps`
// holds q·μ·M/s for each root μ (ROOT_COUNT = 12 for D3), so an escape through a root — the common
// kind — costs one more 128-bit workgroup read, no global table reads. Then c_v = table_v + step_v −
// field_v in i32, rounded to f32 once.
//
// Layout. A workgroup of 256 invocations owns COLUMNS = 8 columns; the LANES = 32 consecutive
// invocations of one column walk its groups (GROUP_BLOCKS consecutive blocks) g = lane, lane + 32, …:
// at each step the 32 lanes read 32 consecutive groups (32·GROUP_BLOCKS·codeBits contiguous bits: one
// 128-byte line for E8 q = 16 and for d3-q6) and the matching x̃ entries. The group's escape bits are
// GROUP_BLOCKS consecutive bits of one escape word (GROUP_BLOCKS divides 32). Groups below
// params.full_groups have every coordinate kept; in the last one or two, blocks past the column are
// skipped and coordinates past keptLength masked (the same decode, inlined once). A block is
// decoded once per tile of RHS_TILE right-hand sides and its c reused for each of them; more
// right-hand sides loop over tiles inside the workgroup (rhs = 1 compiles RHS_TILE = 1, else 8).
// Accumulation in f32: per lane, then over the 32 lanes of a column (`column_totals` of
// shaders/universal_gemv_lanes.wgsl).
//
// Cost of the inner loop per full block, counted by hand on this WGSL after constant folding, common
// path (escapes are 20–50 % of blocks at the presets, so a warp takes the root-escape path at nearly
// every step: it is counted; the non-root binary search and the tail are not), robustness clamps of
// storage loads included (the SPIR-V Dawn emits calls a polyfill for each division, which a driver
// inlines and folds for a constant divisor):
//   d3-q6 (leader table, 1 code byte per block): group overhead ≈ 4, escape bit, slot and id ≈ 16,
//   code field 1, block hash (one mix32) 9 and its 3 fields 5, table and root-step reads 5, non-root
//   test 3, c 9, x̃ reads 10 and 4 multiply-adds, loop and branches ≈ 5: ≈ 70 per code byte (before:
//   ≈ 300: 6 runtime u32 divisions and 3 floor divisions per block, a dynamically indexed array, the
//   escape root from global memory), plus ≈ 14 per block for each further right-hand side.
//   E8 q = 16 (32-bit codes, 4 bytes per block): group overhead and escape bit, slot and id ≈ 30, μ of
//   a root 8 loads ≈ 35, the leader ≈ 140 (gemv_decode_e8_bytes.wgsl: digits as bytes 3, lift 15,
//   the two D8 roundings, parities, Σ|e| and the two worst coordinates on 4 coordinates per
//   instruction ≈ 80, the comparison and the leader's bytes ≈ 40; coordinate by coordinate,
//   gemv_leader_e8 of gemv_decode.wgsl, it was ≈ 210), block hash 2 × mix32 + 8 fields ≈ 38, c 32,
//   x̃ reads and multiply-adds ≈ 34: ≈ 310 per block ≈ 77 per code byte (≈ 375 and 94 coordinate by
//   coordinate, ≈ 460 with squared sums and a rounded point kept per candidate; before that ≈ 1240
//   per block ≈ 310 per byte), plus ≈ 34 per block for each further right-hand side.
//   E8 q = 12 (29-bit codes, e8-4bit): digits by the constant 12 (a multiply-high each) placed in
//   their bytes, the byte lanes split by 24 with three compares, codes across words: ≈ 400 per block
//   ≈ 110 per code byte (≈ 485 and 134 coordinate by coordinate, ≈ 570 and 157 before the leader
//   became the rounding error). E8 q = 24 (37-bit codes, e8-5bit; coordinate by coordinate, as every
//   q > 16: gemvDecode.ts, e8ByteLanes): the first two digits in 16-bit limbs: ≈ 525 per
//   block ≈ 114 per code byte (≈ 610, 132). Static SPIR-V counts of the inner loop (bench/results):
//   e8-q16 1161 → 916 instructions per iteration, e8-4bit and e8-3bit 1249 → 1017 (8 code bytes),
//   with the byte-lane decode.
// A GPU reads a byte from memory in the time of ≈ 7 instructions (H200: ≈ 33.5 T instructions/s for
// 4.8 TB/s), so this loop is still instruction-bound, not memory-bound: what remains is the E8
// nearest-point rule (≈ 45 % of an E8 block), the escape bookkeeping (slot, id, μ: ≈ 15 % of E8,
// ≈ 30 % of D3) and the dither hash (≈ 15 instructions per block, a fifth of D3). These are fixed by
// the format (the hash and the escapes are part of the code), so D3 cannot go much below ≈ 50 per
// byte without changing the stored form.
// What a compiler makes of it (RDNA3 machine code from RADV, bench/README.md "RDNA3 machine code"):
// the full groups run in a loop of their own (add_group with `full` a constant: no tail code), and a
// D3 group's non-root escapes (escape_mu's binary search, a loop) are added after its blocks
// (add_rare_blocks), so the loop over a group's blocks unrolls: d3-q6 ≈ 66 instructions per code byte
// on the common path, 8 loads in flight, where with the search and the tail inside the loop RADV
// kept that loop rolled (≈ 129, 28 of them scalar exec-mask bookkeeping, 3 loads in flight).

@group(0) @binding(0) var<uniform> params: UniversalGemvParams;
@group(0) @binding(1) var<storage, read> codes: array<u32>;
@group(0) @binding(2) var<storage, read> escape_bits: array<u32>;
@group(0) @binding(3) var<storage, read> escape_starts: array<u32>;
@group(0) @binding(4) var<storage, read> escape_ids: array<u32>;
@group(0) @binding(5) var<storage, read> escape_table: array<i32>;
@group(0) @binding(6) var<storage, read> x_rotated: array<f32>;     // x̃ (or x when unrotated)
// Binding 7 (Y) and `write_column_total` come from the output file: shaders/universal_gemv_totals.wgsl
// (T, finished by `finish`) or shaders/universal_gemv_finished.wgsl (Y itself, with bindings 8–10).

// The leader table (USE_LUT; one unused entry otherwise): λ·M/s per coordinate, w unused.
var<workgroup> leader_table: array<vec4<i32>, LUT_SIZE>;
// With the leader table: q·μ·M/s of root id (1 + the root's index; entry 0 is zero).
var<workgroup> root_steps: array<vec4<i32>, ROOT_COUNT + 1u>;

// Decodes the LUT_ENTRIES leaders into `leader_table` (every copy) and the roots' steps into
// `root_steps`, then waits for the whole workgroup.
fn fill_leader_table(thread: u32) {
  if (thread <= ROOT_COUNT) {
    var step = vec4<i32>();
    if (thread > 0u) {
      let row = (thread - 1u) * U_DIM;
      step = vec4<i32>(escape_table[row], escape_table[row + 1u], escape_table[row + 2u], 0) * (G_Q * G_POINT_FACTOR);
    }
    root_steps[thread] = step;
  }
  for (var e = thread; e < LUT_ENTRIES; e = e + THREADS) {
    let p = gemv_leader(e, 0u);
    let entry = vec4<i32>(p[0] * G_POINT_FACTOR, p[1] * G_POINT_FACTOR, p[2] * G_POINT_FACTOR, 0);
    for (var k = 0u; k < LUT_REPLICAS; k = k + 1u) {
      leader_table[e * LUT_REPLICAS + k] = entry;
    }
  }
  workgroupBarrier();
}

// Adds c·x̃ of one full block (x̃ of coordinate v at x_index + v) for each right-hand side of the tile.
fn add_full_block(c: array<f32, 8>, x_index: u32, r0: u32, acc: ptr<function, array<f32, RHS_TILE>>) {
  for (var r = 0u; r < RHS_TILE; r = r + 1u) {
    if (RHS_TILE == 1u || r0 + r < params.rhs) {
      let base = x_index + r * params.x_stride;
      var s = 0.0;
      for (var v = 0u; v < U_DIM; v = v + 1u) {
        s = s + c[v] * x_rotated[base + v];
      }
      (*acc)[r] = (*acc)[r] + s;
    }
  }
}

// Adds c·x̃ of the last (possibly partial) block. `at[v]` is the x̃ offset of coordinate v: v itself,
// or a kept coordinate of the block for coordinates past keptLength, whose c is 0 (so no branch, and
// no read outside the right-hand side's kept entries).
fn add_tail_block(c: array<f32, 8>, at: array<u32, 8>, x_index: u32, r0: u32, acc: ptr<function, array<f32, RHS_TILE>>) {
  for (var r = 0u; r < RHS_TILE; r = r + 1u) {
    if (r0 + r < params.rhs) {
      let base = x_index + r * params.x_stride;
      var s = 0.0;
      for (var v = 0u; v < U_DIM; v = v + 1u) {
        s = s + c[v] * x_rotated[base + at[v]];
      }
      (*acc)[r] = (*acc)[r] + s;
    }
  }
}

// c with the leader table: the leader's λ·M/s from the table plus `step` (q·μ·M/s) minus the fields,
// formed in i32 and rounded to f32 once.
fn table_c(code: vec2<u32>, replica: u32, step: vec4<i32>, fields: LatticePoint) -> array<f32, 8> {
  var c = array<f32, 8>();
  let entry = leader_table[code.x * LUT_REPLICAS + replica];
  for (var v = 0u; v < U_DIM; v = v + 1u) {
    c[v] = f32(entry[v] + step[v] - fields[v]);
  }
  return c;
}

// c = λ·M/s − field of a block from its code, hash fields and escape (λ = the leader + q·μ). Escapes
// are common (20–50 % of blocks at the presets), so μ is on the main path: `slot` is the block's escape
// slot and `id` its escape id (1 + the root's index, 0 for a non-root μ; both meaningless when the
// block is not escaped). With the leader table, q·μ·M/s of a root comes from `root_steps` (entry 0 is
// zero: not escaped); a non-root μ (rare) is not taken here: the group loop zeroes such a block's c
// and adds it after the group (add_rare_blocks, with block_c_nonroot). Otherwise μ comes from
// escape_mu. The sum is formed in i32 and rounded to f32 once, as the reference does.
fn block_c(code: vec2<u32>, fields: LatticePoint, replica: u32, escaped: bool, slot: u32, id: u32, global_block: u32) -> array<f32, 8> {
  var c = array<f32, 8>();
  if (USE_LUT) {
    c = table_c(code, replica, root_steps[select(0u, min(id, ROOT_COUNT), escaped)], fields);
  } else {
    var mu = LatticePoint();
    if (escaped) {
      mu = escape_mu(slot, global_block);
    }
    let point = gemv_leader(code.x, code.y);
    for (var v = 0u; v < U_DIM; v = v + 1u) {
      c[v] = f32((point[v] + G_Q * mu[v]) * G_POINT_FACTOR - fields[v]);
    }
  }
  return c;
}

// c of a block whose escape is not a root (leader table only): μ by escape_mu's binary search.
fn block_c_nonroot(code: vec2<u32>, fields: LatticePoint, replica: u32, slot: u32, global_block: u32) -> array<f32, 8> {
  let mu = escape_mu(slot, global_block);
  return table_c(code, replica, vec4<i32>(mu[0], mu[1], mu[2], 0) * (G_Q * G_POINT_FACTOR), fields);
}

// Adds c·x̃ of block b (x̃ of its coordinate v at x_index + v): a full block, or one of the column's
// last blocks, whose coordinates past keptLength get c = 0.
fn add_block(c_in: array<f32, 8>, b: u32, full: bool, x_index: u32, r0: u32, acc: ptr<function, array<f32, RHS_TILE>>) {
  var c = c_in;
  if (full) {
    add_full_block(c, x_index, r0, acc);
  } else {
    // The last blocks (fewer than GROUP_BLOCKS + 1): coordinates past keptLength get c = 0.
    let last = select(params.kept - b * U_DIM, U_DIM, b < params.full_blocks) - 1u;
    var at = array<u32, 8>();
    for (var v = 0u; v < U_DIM; v = v + 1u) {
      c[v] = select(0.0, c[v], v <= last);
      at[v] = min(v, last);
    }
    add_tail_block(c, at, x_index, r0, acc);
  }
}

// What the group loop reads of its column: where its codes and escape words start, its dither keys,
// the leader-table copy of the lane and the global index of its first block.
struct ColumnBases {
  code_base: u32,
  bits_base: u32,
  starts_base: u32,
  keys: vec2<u32>,
  replica: u32,
  first_global_block: u32,
}

// The group's blocks flagged in `rare` (bit i: block first_block + i, a non-root escape; their c was
// zeroed in the group loop), each with its μ found by escape_mu's binary search. Kept out of the
// group loop so that a compiler can unroll that loop: with the search (a loop) inside, RADV kept it
// rolled, with its exec-mask bookkeeping (bench/README.md, "RDNA3 machine code").
fn add_rare_blocks(rare_in: u32, words: vec2<u32>, bases: ColumnBases, first_block: u32, escapes: u32, escape_start: u32, escape_shift: u32, full: bool, x_index: u32, r0: u32, acc: ptr<function, array<f32, RHS_TILE>>) {
  var rare = rare_in;
  while (rare != 0u) {
    let i = firstTrailingBit(rare);
    rare = rare & (rare - 1u);
    let b = first_block + i;
    let bit = escape_shift + i;
    let slot = escape_start + countOneBits(escapes & ((1u << bit) - 1u));
    let c = block_c_nonroot(gemv_group_code(words, i), block_fields(bases.keys, b), bases.replica, slot, bases.first_global_block + b);
    add_block(c, b, full, x_index + i * U_DIM, r0, acc);
  }
}

// Adds c·x̃ of group g of the column for each right-hand side of the tile (x̃ of the group's first
// coordinate at x_index). `full`: every coordinate of the group is kept (g < full_groups); the
// callers pass a constant, so the compiler drops the tail code from the full groups' loop.
fn add_group(bases: ColumnBases, g: u32, full: bool, x_index: u32, r0: u32, acc: ptr<function, array<f32, RHS_TILE>>) {
  let first_block = g * GROUP_BLOCKS;
  let escape_word_index = first_block >> 5u;
  let escapes = escape_bits[bases.bits_base + escape_word_index];
  let escape_start = escape_starts[bases.starts_base + escape_word_index];
  let escape_shift = first_block & 31u;
  let words = gemv_group_words(bases.code_base, g);
  var rare = 0u; // leader table: bit i set for a non-root escape (added after the loop)
  for (var i = 0u; i < GROUP_BLOCKS; i = i + 1u) {
    let b = first_block + i;
    if (full || b < params.blocks) {
      let bit = escape_shift + i;
      let escaped = ((escapes >> bit) & 1u) != 0u;
      let slot = escape_start + countOneBits(escapes & ((1u << bit) - 1u));
      // The table path's escape id (garbage, and unused, when the block is not escaped;
      // escape_mu reads it itself on the other path).
      var id = 0u;
      if (USE_LUT) {
        id = (escape_ids[slot >> 2u] >> ((slot & 3u) * 8u)) & 255u;
      }
      var c = block_c(gemv_group_code(words, i), block_fields(bases.keys, b), bases.replica, escaped, slot, id, bases.first_global_block + b);
      if (USE_LUT) {
        let nonroot = escaped && id == 0u;
        rare = rare | select(0u, 1u << i, nonroot);
        for (var v = 0u; v < U_DIM; v = v + 1u) {
          c[v] = select(c[v], 0.0, nonroot);
        }
      }
      add_block(c, b, full, x_index + i * U_DIM, r0, acc);
    }
  }
  if (USE_LUT) {
    add_rare_blocks(rare, words, bases, first_block, escapes, escape_start, escape_shift, full, x_index, r0, acc);
  }
}

// The product for the workgroup's columns. `width`: lanes whose sums `subgroup_partial_sum` already
// combined (workgroup-uniform); `poison`: write POISON instead of results (subgroup test mode 2).
fn gemv(group_x: u32, thread: u32, width: u32, poison: bool) {
  if (USE_LUT) {
    fill_leader_table(thread);
  }
  let local_column = thread / LANES;
  let lane = thread % LANES;
  let column = group_x * COLUMNS + local_column;
  let in_range = column < params.cols;
  let global_column = params.column_offset + column;
  let bases = ColumnBases(
    params.code_first + column * params.code_words,
    params.bits_first + column * params.bit_words,
    params.starts_first + column * params.bit_words,
    dither_key(global_column),
    lane & (LUT_REPLICAS - 1u),
    global_column * params.blocks,
  );
  // Groups of the column, the last one possibly partial or past keptLength.
  let groups = (params.blocks + GROUP_BLOCKS - 1u) / GROUP_BLOCKS;

  for (var r0 = 0u; r0 < params.rhs; r0 = r0 + RHS_TILE) {
    // The fused form's own per-call sums (0 in the split form: `finish` adds them).
    let dither_sums = tile_dither_sums(r0, thread);
    var acc = array<f32, RHS_TILE>();
    if (in_range) {
      var x_index = params.x_rotated_first + r0 * params.x_stride + lane * (GROUP_BLOCKS * U_DIM);
      // The full groups, then the last one or two: two loops, so that the first carries no tail code.
      var g = lane;
      for (; g < params.full_groups; g = g + LANES) {
        add_group(bases, g, true, x_index, r0, &acc);
        x_index = x_index + LANES * GROUP_BLOCKS * U_DIM;
      }
      for (; g < groups; g = g + LANES) {
        add_group(bases, g, false, x_index, r0, &acc);
        x_index = x_index + LANES * GROUP_BLOCKS * U_DIM;
      }
    }

    let totals = column_totals(acc, thread, lane, width);
    if (in_range && lane == 0u) {
      for (var r = 0u; r < RHS_TILE; r = r + 1u) {
        let rhs_index = r0 + r;
        if (rhs_index < params.rhs) {
          write_column_total(column, rhs_index, totals[r], dither_sums[r], poison);
        }
      }
    }
  }
}
