// Randomized Hadamard rotation of columns, forward and inverse, reproducing RandomizedHadamard
// (src/rotation/randomizedHadamard.ts) bit for bit: forward out = the rotation of pad(x), inverse out =
// the first output_rows entries of its transpose applied to y. A rotation has one stage (c·H_N·D on the
// whole padded column) or two stages on overlapping windows (rotationPlan in src/rotation/hadamard.ts);
// one dispatch runs one pass of one stage.
//
// This file holds what both entry points share (parameters, bindings, loading, the workgroup-memory
// butterflies, storing); no entry point. src/gpu/kernels/hadamard.ts builds a module as
//   [enable subgroups;]  const WORKGROUP_ELEMENTS: u32 = …;  struct HadamardParams  +  this file  +
//   one entry point file:
//   hadamard_plain.wgsl (every butterfly level in workgroup memory) or hadamard_subgroup.wgsl (the
//   levels whose partners lie in one subgroup with subgroupShuffleXor, the rest in workgroup memory).
// WORKGROUP_ELEMENTS is the number of f32 values a workgroup holds, chosen from the device's limit (a
// power of two, or m times one: the window itself when it fits). THREADS (invocations per workgroup)
// and BLOCK (m) are the variant's other constants, generated in front of the uniform struct.
//
// Layout: input column j is input[input_first + j·input_rows ..][0 .. input_rows), output column j is
// output[output_first + j·output_rows ..][0 .. output_rows), both column-major f32 (the forward's
// input may be f16 instead: params.input_f16, input_first then counts halves). Forward:
// input_rows = n, output_rows = N (the whole rotated length). Inverse: input_rows = N, output_rows = rows
// kept.
//
// One dispatch works on one stage, whose window is the column positions stage_offset …
// stage_offset + length − 1, with length = m · 2^k, m = block ∈ {1, 12, 20}; its element i = a·m + b
// (i < length) lies in block a ∈ [0, 2^k) (of m elements) at position b ∈ [0, m), and sits at column
// position p = stage_offset + i. Padding (p ≥ input_rows), the signs s_p and the dropped rows
// (p ≥ output_rows) all use p, so a stage is exactly the single-length rotation of `length` entries
// shifted by stage_offset (offset 0 and length N for a one-stage plan). The signs of stage k are
// s^(k)_p = ±1 from counterHash(seed, stream, p, k) (sign_sub = k). The first pass of a stage loads the
// positions in [input_from, input_to) from the input binding and the others, in place, from the output
// binding (where an earlier stage left its results); later passes work in place.
//
// The f32 operations and their order are those of the CPU reference (hadamard.ts documents the
// contract):
// - forward, per stage in order: each loaded element times s^(k)_p (a sign flip, exact; +0 for the
//   padding n ≤ p < N, which only one-stage plans have); then H_length on the window; then one
//   multiplication by c = scale = fround(1/√length).
// - inverse, per stage from the last: H_lengthᵀ on the window; then per kept element t_p · c, then the
//   sign flip s^(k)_p.
// - H_length (H_lengthᵀ): for m > 1, per block, acc = ±x[a·m], then acc = acc + (±x[a·m + b']) for
//   b' = 1 … m−1, left to right, the signs from row b of H_m (of H_mᵀ: the host uploads the transposed
//   table); then the butterflies (u, v) → (u + v, u − v) between blocks a and a + h for
//   h = 1, 2, 4, …, 2^(k−1), level by level (the Sylvester factor is symmetric).
// No multiply feeds an add, so fused multiply-adds cannot change a bit, and each butterfly level
// reads only the previous level's values, so doing the pairs of a level in parallel (or exchanging
// them between the invocations of a subgroup) gives the same bits as the CPU's loop.
//
// Passes: the block index a is split into bit fields. One pass owns the levels h = P, 2P, …, P·Q/2
// (level_stride P, group_blocks Q, both powers of two): a "group" is the Q blocks
// a = low + t·P + high·P·Q (t ∈ [0, Q), fixed low < P and high), which those levels only combine among
// themselves. A workgroup copies groups_per_workgroup groups into workgroup memory (slot
// local group · Q·m + t·m + b), runs their levels, and writes them back. The first pass of a stage
// (transform_blocks) loads as described above and applies signs (forward), padding and H_m / H_mᵀ;
// later passes work in place, except that the last pass of a padded inverse reads a work copy through
// the input binding; the last pass scales (scale_on_store) and, for the inverse, applies the signs and
// drops rows past output_rows. When the window fits in workgroup memory there is one pass with
// Q = 2^k, and a workgroup holds the window of one or more columns.

// Why m is a constant: element and pair indices are divided by m and taken modulo m in every loop
// here; a constant divisor compiles to a multiply and shifts, a runtime one to a division routine of
// tens of instructions (GPUs have no integer divider). Every other divisor of an index is a power of
// two (P, Q, Q/2, the groups per column), so indices are split with shifts and masks.

// struct HadamardParams is declared once, in src/gpu/kernels/hadamard.ts (a UniformLayout), which
// generates its WGSL into the module before this file.
@group(0) @binding(0) var<uniform> params: HadamardParams;
@group(0) @binding(1) var<storage, read> input: array<u32>;  // f32 bits, or f16 halves (params.input_f16)
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<storage, read_write> x_inputs: array<u32>;  // int8 x̃ (params.int8_out), else a placeholder

var<workgroup> values: array<f32, WORKGROUP_ELEMENTS>;

// counter_hash: shaders/counter_hash.wgsl, compiled in front of this file (src/gpu/kernels/hadamard.ts).
// s^(k)_p = −1 ⇔ bit 31 of counterHash(seed, stream, p, k) is set (k = 0: counterSign).
fn rotation_sign_is_negative(p: u32) -> bool {
  return (counter_hash(params.seed, params.sign_stream, p, params.sign_sub) >> 31u) == 1u;
}

fn hadamard_entry_is_negative(row: u32, col: u32) -> bool {
  return ((params.row_negative[row / 4u][row % 4u] >> col) & 1u) == 1u;
}

// Groups of one workgroup: which groups, and how many values they hold.
struct WorkgroupShape {
  first_group: u32,          // global index of the workgroup's first group (over all columns)
  total_groups: u32,         // groups in this dispatch
  column_shift: u32,         // log2 of the groups per column (2^k / Q)
  local_blocks: u32,         // groups_per_workgroup · Q
}

fn workgroup_shape(workgroup: u32) -> WorkgroupShape {
  let groups_per_column = params.length / (params.group_blocks * BLOCK);
  return WorkgroupShape(
    workgroup * params.groups_per_workgroup,
    params.cols * groups_per_column,
    countTrailingZeros(groups_per_column),
    params.groups_per_workgroup * params.group_blocks,
  );
}

// Column and group within it of global group `group`.
fn group_column(shape: WorkgroupShape, group: u32) -> vec2<u32> {
  return vec2<u32>(group >> shape.column_shift, group & ((1u << shape.column_shift) - 1u));
}

// Position inside its column of element b of block t of group `group_in_column` (of this stage's
// window): block a = low + (t + high·Q)·P with low = group mod P and high = group / P.
fn column_position(group_in_column: u32, t: u32, b: u32) -> u32 {
  let p_shift = countTrailingZeros(params.level_stride);
  let low = group_in_column & (params.level_stride - 1u);
  let high = group_in_column >> p_shift;
  let a = low + ((t + high * params.group_blocks) << p_shift);
  return params.stage_offset + a * BLOCK + b;
}

// Element `at` of the input binding: an f32, or (params.input_f16: `at` counts halves) an f16 widened
// to f32, exactly, so a rotation of f16 activations equals the rotation of their f32 values.
fn input_value(at: u32) -> f32 {
  if (params.input_f16 != 0u) {
    return unpack2x16float(input[at >> 1u])[at & 1u];
  }
  return bitcast<f32>(input[at]);
}

// Element at column position p of `column` as loaded: from the input (+0 in the padding, as the CPU's
// fill(0)) or, in place, from the output; times s^(k)_p in the forward's first pass of a stage.
fn loaded_value(column: u32, p: u32) -> f32 {
  var x = 0.0;
  if (p >= params.input_from && p < params.input_to) {
    if (p >= params.input_rows) {
      return 0.0;
    }
    x = input_value(params.input_first + column * params.input_rows + p);
  } else {
    x = output[params.output_first + column * params.output_rows + p];
  }
  if (params.sign_on_load == 1u && rotation_sign_is_negative(p)) {
    return -x;
  }
  return x;
}

// One block (m elements from `first`) into values[slot ..], multiplied by the uploaded H_m (or H_mᵀ)
// in the first pass.
fn load_block(column: u32, first: u32, slot: u32) {
  let m = BLOCK;
  if (params.transform_blocks == 0u || m == 1u) {
    for (var b = 0u; b < m; b = b + 1u) {
      values[slot + b] = loaded_value(column, first + b);
    }
    return;
  }
  var x: array<f32, 20>;
  for (var b = 0u; b < m; b = b + 1u) {
    x[b] = loaded_value(column, first + b);
  }
  for (var b = 0u; b < m; b = b + 1u) {
    var acc = select(x[0], -x[0], hadamard_entry_is_negative(b, 0u));
    for (var b2 = 1u; b2 < m; b2 = b2 + 1u) {
      acc = acc + select(x[b2], -x[b2], hadamard_entry_is_negative(b, b2));
    }
    values[slot + b] = acc;
  }
}

// Copies the workgroup's groups into `values` (one block per step), then waits for the workgroup.
fn load_groups(workgroup: u32, thread: u32) {
  let shape = workgroup_shape(workgroup);
  let q = params.group_blocks;
  let q_shift = countTrailingZeros(q);
  for (var local_block = thread; local_block < shape.local_blocks; local_block = local_block + THREADS) {
    let group = shape.first_group + (local_block >> q_shift);
    if (group >= shape.total_groups) {
      continue;
    }
    let at = group_column(shape, group);
    let first = column_position(at.y, local_block & (q - 1u), 0u);
    load_block(at.x, first, local_block * BLOCK);
  }
  workgroupBarrier();
}

// Butterflies between local blocks t and t + h for h = first_level, 2·first_level, …, Q/2, element
// by element, with a barrier after each level (first_level: a power of two; ≥ Q runs none).
fn workgroup_levels(first_level: u32, thread: u32) {
  let q = params.group_blocks;
  let group_elements = q * BLOCK;
  // Pair = (local group, low_half, b) with low_half < Q/2 and b < m, b fastest.
  let half_blocks = q >> 1u;
  let half_shift = countTrailingZeros(max(half_blocks, 1u));
  let pairs = params.groups_per_workgroup * half_blocks * BLOCK;
  for (var h = first_level; h < q; h = h << 1u) {
    for (var pair = thread; pair < pairs; pair = pair + THREADS) {
      let b = pair % BLOCK;
      let pair_block = pair / BLOCK;
      let local_group = pair_block >> half_shift;
      let low_half = pair_block & (half_blocks - 1u); // index among the Q/2 blocks whose bit h is clear
      let t = ((low_half & ~(h - 1u)) << 1u) | (low_half & (h - 1u));
      let i = local_group * group_elements + t * BLOCK + b;
      let j = i + h * BLOCK;
      let u = values[i];
      let v = values[j];
      values[i] = u + v;
      values[j] = u - v;
    }
    workgroupBarrier();
  }
}

// Writes `values` back to the output: scaled (and, for the inverse, sign-flipped) in the last pass;
// positions ≥ output_rows are dropped.
fn store_groups(workgroup: u32, thread: u32) {
  let shape = workgroup_shape(workgroup);
  let q = params.group_blocks;
  let q_shift = countTrailingZeros(q);
  for (var e = thread; e < shape.local_blocks * BLOCK; e = e + THREADS) {
    let local_block = e / BLOCK;
    let group = shape.first_group + (local_block >> q_shift);
    if (group >= shape.total_groups) {
      continue;
    }
    let at = group_column(shape, group);
    let column = at.x;
    let position = column_position(at.y, local_block & (q - 1u), e % BLOCK);
    if (position >= params.output_rows) {
      continue;
    }
    var value = values[e];
    if (params.scale_on_store == 1u) {
      value = value * params.scale;
    }
    if (params.sign_on_store == 1u && rotation_sign_is_negative(position)) {
      value = -value;
    }
    output[params.output_first + column * params.output_rows + position] = value;
  }
}

// The int8 form of x̃ (`round_int8_group`, shaders/int8_group.wgsl, compiled in front of this file),
// written by the one pass of a forward rotation's last stage when params.int8_out is 1, in the layout
// of shaders/gemv_i8_inputs.wgsl (level words of column r from word r·4·int8_groups, the scales from
// word int8_scales_first), so that the int8-input GEMVs need no rounding dispatch. Such a pass holds
// the stage's whole window of each of its columns: position p ≥ stage_offset of the workgroup's local
// column c is values[c·length + p − stage_offset], and x̃_p = values[…]·scale is the f32 value
// `store_groups` writes; the positions before the window (a two-stage plan's [0, N − L)) are final
// since the first stage's dispatches and are read back from the output, which this pass does not
// write there. So the levels equal those the rounding kernel computes from the stored x̃, bit for
// bit. Coordinates at or past int8_kept count as 0.
fn rotated_value(local_column: u32, column: u32, p: u32) -> f32 {
  if (p >= params.stage_offset) {
    return values[local_column * params.length + p - params.stage_offset] * params.scale;
  }
  return output[params.output_first + column * params.output_rows + p];
}

fn store_int8_groups(workgroup: u32, thread: u32) {
  let shape = workgroup_shape(workgroup);
  let groups = params.int8_groups;
  for (var e = thread; e < params.groups_per_workgroup * groups; e = e + THREADS) {
    let local_column = e / groups;
    let column = shape.first_group + local_column;
    if (column >= shape.total_groups) {
      continue;
    }
    let g = e - local_column * groups;
    var v = array<f32, 12>();
    for (var i = 0u; i < 12u; i = i + 1u) {
      let p = g * 12u + i;
      if (p < params.int8_kept) {
        v[i] = rotated_value(local_column, column, p);
      }
    }
    let rounded = round_int8_group(v);
    let r = params.int8_first_column + column;
    let out = (r * groups + g) * 4u;
    for (var b = 0u; b < 4u; b = b + 1u) {
      x_inputs[out + b] = rounded.words[b];
    }
    x_inputs[params.int8_scales_first + r * groups + g] = rounded.scale_bits;
  }
}

// The pass's results: `store_groups`, and in a fused last pass the int8 form of x̃ too.
fn store_results(workgroup: u32, thread: u32) {
  store_groups(workgroup, thread);
  if (params.int8_out != 0u) {
    store_int8_groups(workgroup, thread);
  }
}

fn linear_workgroup(workgroup_id: vec3<u32>, workgroup_count: vec3<u32>) -> u32 {
  return workgroup_id.y * workgroup_count.x + workgroup_id.x;
}
