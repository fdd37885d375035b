// Entry point of the rotation with subgroups (appended to shaders/hadamard.wgsl; the module starts
// with `enable subgroups;`, which src/gpu/kernels/hadamard.ts writes because an enable directive must
// precede every declaration). The butterfly levels h < L = min(subgroup size, Q) of the pass exchange
// values between the invocations of a subgroup with subgroupShuffleXor, with no barrier between
// levels; the levels h ≥ L run in workgroup memory as in hadamard_plain.wgsl.
//
// Element-to-invocation mapping. The subgroup size S is known only at run time (a power of two;
// lavapipe 8, SwiftShader 4, GPUs 32 or 64). The workgroup's values are viewed as rows of L elements
// that differ only in the low log2(L) bits of the local block index t (a row: local group g, the high
// bits of t, position b in the block), so the partners of levels h < L are in one row. Invocation
// `thread` has the virtual lane thread mod S in the invocation block [⌊thread/S⌋·S, ⌊thread/S⌋·S + S);
// a block holds S/L rows per round, lane ℓ holds element ℓ mod L of row ⌊ℓ/L⌋, and the partner of
// level h is lane ℓ xor h.
//
// WGSL does not promise which invocations form a subgroup, so each subgroup checks that it is exactly
// one such block with subgroup_invocation_id = thread mod S (full, and all its invocations in one
// block). Drivers in practice build subgroups that way (lavapipe does: the tests check it); where a
// subgroup is not such a block, no subgroup is that block (a full subgroup inside one block is all of
// it), so the invocations of that block agree, and they do the levels h < L themselves, one row each,
// in workgroup memory (the same f32 operations). For tests, subgroup_test_mode = 1 forces that path, and 2 makes it write POISON
// instead, so a test can tell that the shuffles ran.
//
// Shuffles run in uniform control flow (loop bounds from params and subgroup_size only); invocations
// without a row shuffle zeros, and nothing they hold is stored.

// What the fallback writes in subgroup_test_mode 2: a finite value no test input produces (a NaN is
// not a WGSL constant, and a fast-math compiler may treat it loosely).
const POISON: f32 = 1.0e30;

// values[] slot of element `t_low` of row `row` (rows of `width` elements, see above).
// A row is (g, r, b) with r < Q/width and b < m, b fastest: row = (g·(Q/width) + r)·m + b.
fn row_slot(row: u32, t_low: u32, width: u32) -> u32 {
  let q = params.group_blocks;
  let width_shift = countTrailingZeros(width);
  let b = row % BLOCK;
  let row_block = row / BLOCK;
  let g = row_block >> (countTrailingZeros(q) - width_shift);
  let r = row_block & ((q >> width_shift) - 1u);
  let t = (r << width_shift) + t_low;
  return (g * q + t) * BLOCK + b;
}

// The butterfly levels h = 1, 2, …, shuffled/2 of every row (shuffled = L ≤ S), between subgroup
// invocations when `expected_layout`, else one row per invocation.
fn subgroup_levels(thread: u32, subgroup_width: u32, shuffled: u32, expected_layout: bool) {
  if (shuffled == 1u) {
    return; // no level (Q = 1 or subgroups of one invocation)
  }
  let rows_per_block = subgroup_width / shuffled;
  let shuffled_shift = countTrailingZeros(shuffled);
  let blocks = THREADS / subgroup_width;
  let rows = params.groups_per_workgroup * (params.group_blocks / shuffled) * BLOCK;
  let rows_per_round = rows_per_block * blocks;
  let rounds = (rows + rows_per_round - 1u) / rows_per_round;
  let lane = thread % subgroup_width;
  let first_row_of_block = (thread / subgroup_width) * rows_per_block;

  for (var round = 0u; round < rounds; round = round + 1u) {
    let row = round * rows_per_round + first_row_of_block + (lane >> shuffled_shift);
    let holds_row = expected_layout && row < rows;
    let slot = row_slot(row, lane & (shuffled - 1u), shuffled);
    var value = 0.0;
    if (holds_row) {
      value = values[slot];
    }
    for (var h = 1u; h < shuffled; h = h << 1u) {
      let partner = subgroupShuffleXor(value, h);
      // Lower index: u + v (own + partner); upper index: u − v (partner − own).
      value = select(value + partner, partner - value, (lane & h) != 0u);
    }
    if (holds_row) {
      values[slot] = value;
    }
  }

  if (!expected_layout) {
    let poison = params.subgroup_test_mode == 2u;
    for (var round = 0u; round < rounds; round = round + 1u) {
      let row = round * rows_per_round + first_row_of_block + lane;
      if (lane >= rows_per_block || row >= rows) {
        continue;
      }
      if (poison) {
        for (var t = 0u; t < shuffled; t = t + 1u) {
          values[row_slot(row, t, shuffled)] = POISON;
        }
        continue;
      }
      for (var h = 1u; h < shuffled; h = h << 1u) {
        for (var t = 0u; t < shuffled; t = t + 1u) {
          if ((t & h) != 0u) {
            continue;
          }
          let i = row_slot(row, t, shuffled);
          let j = row_slot(row, t + h, shuffled);
          let u = values[i];
          let v = values[j];
          values[i] = u + v;
          values[j] = u - v;
        }
      }
    }
  }
}

@compute @workgroup_size(THREADS, 1, 1)
fn main(
  @builtin(workgroup_id) workgroup_id: vec3<u32>,
  @builtin(num_workgroups) workgroup_count: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
  @builtin(subgroup_size) subgroup_size: u32,
  @builtin(subgroup_invocation_id) subgroup_lane: u32,
) {
  let workgroup = linear_workgroup(workgroup_id, workgroup_count);
  // Is this subgroup the full invocation block of `thread`, lanes in thread order? (Computed while
  // every invocation is active.)
  let subgroup_width = min(subgroup_size, THREADS);
  let block_of_first = subgroupBroadcastFirst(thread) / subgroup_width;
  let lanes_in_order = subgroupAll(subgroup_lane == thread % subgroup_width && thread / subgroup_width == block_of_first);
  let subgroup_invocations = subgroupAdd(1u);
  let expected_layout = lanes_in_order && subgroup_invocations == subgroup_size && params.subgroup_test_mode != 1u;

  load_groups(workgroup, thread);
  let shuffled = min(subgroup_width, params.group_blocks);
  subgroup_levels(thread, subgroup_width, shuffled, expected_layout);
  workgroupBarrier();
  workgroup_levels(shuffled, thread);
  store_results(workgroup, thread);
}
