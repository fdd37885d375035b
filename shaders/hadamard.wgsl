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
// and BLOCK (m) are the variant's other constants, generated in front of the uniform struct, with
// H_m's signs as bit masks (BLOCK_SIGNS, and BLOCK_SIGNS_T for H_mᵀ).
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
// s^(k)_p = ±1 from counterHash(seed, stream, p, k), read packed (binding 4, from sign_word_first).
// The first pass of a stage loads the positions in [input_from, input_to) from the input binding and
// the others, in place, from the output binding (where an earlier stage left its results); later
// passes work in place.
//
// The f32 operations and their order are those of the CPU reference (hadamard.ts documents the
// contract):
// - forward, per stage in order: each loaded element times s^(k)_p (a sign flip, exact; +0 for the
//   padding n ≤ p < N, which only one-stage plans have); then H_length on the window; then one
//   multiplication by c = scale = fround(1/√length).
// - inverse, per stage from the last: H_lengthᵀ on the window; then per kept element t_p · c, then the
//   sign flip s^(k)_p.
// - H_length (H_lengthᵀ): for m > 1, per block, acc = ±x[a·m], then acc = acc + (±x[a·m + b']) for
//   b' = 1 … m−1, left to right, the signs from row b of H_m (of H_mᵀ: BLOCK_SIGNS_T); then the
//   butterflies (u, v) → (u + v, u − v) between blocks a and a + h for h = 1, 2, 4, …, 2^(k−1), level
//   by level (the Sylvester factor is symmetric).
// The only multiplies feeding adds are by ±1 (exact), so fused multiply-adds cannot change a bit, and each butterfly level
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
@group(0) @binding(4) var<storage, read> sign_bits: array<u32>;  // s^(k)_p packed per stage (src/gpu/rotationSigns.ts)

var<workgroup> values: array<f32, WORKGROUP_ELEMENTS>;

// s^(k)_p = −1 ⇔ bit 31 of counterHash(seed, stream, p, k) is set (k = 0: counterSign). The host
// hashes each position once per device and seed (packedStageSigns, src/gpu/rotationSigns.ts); this
// reads bit i = p − stage_offset of the stage's words: a load and a few shifts instead of the hash's
// four mix32 rounds per element.
fn rotation_sign_is_negative(p: u32) -> bool {
  let i = p - params.stage_offset;
  return ((sign_bits[params.sign_word_first + (i >> 5u)] >> (i & 31u)) & 1u) == 1u;
}

// Entry `col` of a row of H_m (or H_mᵀ) given as its sign mask (bit col set ⇔ −1), as ±1.0.
//
// Why masks in constants and not a table in the uniform: the table was the uniform's one dynamically
// indexed member, and only m > 1 variants read it. A driver may serve a uniform block indexed at run
// time from memory instead of its constant bank, for every member; m = 12 passes ran 2.5–3× as long
// as m = 1 ones on an H200 for the same work (bench/README.md). With the loops unrolled, a constant
// mask makes every sign a constant.
fn block_sign(row_signs: u32, col: u32) -> f32 {
  return select(1.0, -1.0, ((row_signs >> col) & 1u) == 1u);
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

// Global group of the workgroup's local block `local_block` (Q = group_blocks blocks per group); at or
// past shape.total_groups for the blocks of a last workgroup that the dispatch's groups do not fill.
fn block_group(shape: WorkgroupShape, local_block: u32) -> u32 {
  return shape.first_group + (local_block >> countTrailingZeros(params.group_blocks));
}

// Where element e of the workgroup's `values` belongs: its column and its position in the column,
// or `inside` false for an element of a group past the dispatch's.
struct ElementPlace {
  column: u32,
  position: u32,
  inside: bool,
}

fn element_place(shape: WorkgroupShape, e: u32) -> ElementPlace {
  let local_block = e / BLOCK;
  let group = block_group(shape, local_block);
  if (group >= shape.total_groups) {
    return ElementPlace(0u, 0u, false);
  }
  let at = group_column(shape, group);
  return ElementPlace(at.x, column_position(at.y, local_block & (params.group_blocks - 1u), e % BLOCK), true);
}

// Element `at` of the input binding: an f32, or (params.input_f16: `at` counts halves) an f16 widened
// to f32 exactly on every GPU (f16_value of shaders/f16_convert.wgsl, prepended by the host), so a
// rotation of f16 activations equals the rotation of their f32 values.
fn input_value(at: u32) -> f32 {
  if (params.input_f16 != 0u) {
    return f16_value(input[at >> 1u] >> ((at & 1u) * 16u));
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

// `input_value` with no branch around its load (BATCHED_LOADS): the word is read either way, and
// select keeps the f32 or the half of it.
fn input_value_unbranched(at: u32) -> f32 {
  let f16 = params.input_f16 != 0u;
  let word = input[select(at, at >> 1u, f16)];
  return select(bitcast<f32>(word), f16_value(word >> ((at & 1u) * 16u)), f16);
}

// `loaded_value` with no branch around a load (BATCHED_LOADS): both bindings and the sign word are
// read at valid addresses (a column's first element where the element does not come from there, or
// where it is not `inside` the dispatch), and select keeps what the element takes: the same value,
// the padding's +0 included. Non-short-circuit `&` keeps the sign load out of a branch too.
fn loaded_value_unbranched(column: u32, p: u32, inside: bool) -> f32 {
  let fresh = (p >= params.input_from) & (p < params.input_to);
  let padding = fresh & (p >= params.input_rows);
  let from_input = input_value_unbranched(select(params.input_first, params.input_first + column * params.input_rows + p, inside & fresh & !padding));
  let from_output = output[select(params.output_first, params.output_first + column * params.output_rows + p, inside & !fresh)];
  let x = select(select(from_output, from_input, fresh), 0.0, padding);
  let negative = (params.sign_on_load == 1u) & !padding & rotation_sign_is_negative(select(params.stage_offset, p, inside));
  return select(x, -x, negative);
}

// The matrix whose rows have the sign masks `signs` times the block x, into values[slot ..].
fn multiply_block_by(x: array<f32, BLOCK>, slot: u32, signs: array<u32, BLOCK>) {
  // acc ± x as one fused multiply-add by ±1 (the product is exact, so it rounds as the add does).
  for (var b = 0u; b < BLOCK; b = b + 1u) {
    let row = signs[b];
    var acc = x[0] * block_sign(row, 0u);
    for (var b2 = 1u; b2 < BLOCK; b2 = b2 + 1u) {
      acc = fma(block_sign(row, b2), x[b2], acc);
    }
    values[slot + b] = acc;
  }
}

// H_m (forward) or H_mᵀ (inverse: params.block_transposed) times the block x, into values[slot ..]:
// one call per direction, each with constant masks.
fn multiply_block(x: array<f32, BLOCK>, slot: u32) {
  if (params.block_transposed == 1u) {
    multiply_block_by(x, slot, BLOCK_SIGNS_T);
  } else {
    multiply_block_by(x, slot, BLOCK_SIGNS);
  }
}

// One block (m elements from `first`) into values[slot ..], multiplied by H_m in the forward's first
// pass of a stage (transform_blocks).
fn load_block(column: u32, first: u32, slot: u32) {
  var x: array<f32, BLOCK>;
  for (var b = 0u; b < BLOCK; b = b + 1u) {
    x[b] = loaded_value(column, first + b);
  }
  if (params.transform_blocks == 0u || BLOCK == 1u) {
    for (var b = 0u; b < BLOCK; b = b + 1u) {
      values[slot + b] = x[b];
    }
  } else {
    multiply_block(x, slot);
  }
}

// Copies the workgroup's groups into `values`, then waits for the workgroup. With a block or more
// per invocation, each loads its blocks whole (and multiplies them by H_m in registers). With fewer
// blocks than invocations (m = 12 or 20 in a spread pass: 64 blocks of 12 for 256 invocations) a
// block per invocation would leave most idle and give the others m loads in a row, so every
// invocation loads elements (fewer in a row), and then the blocks are multiplied in workgroup memory.
// Same operations either way, so the same bits. On an H200 (bench/results/nvidia-h200-2026-12-04-rotation.md
// against …-rerun.md) element loads for every pass made one column's spread rotation of 14336 entries
// 5 % faster and its 28672 one 6 %, but the one-workgroup pass of a 12288 window (1024 blocks for 1024
// invocations: 12 loads in a row either way, plus the multiply's round trip) 9 % slower, hence the
// rule. One-pass windows with fewer blocks than invocations (6144 or 10240 on 1024 invocations, 3072)
// take element loads by the same rule; none of them has been timed.
fn load_groups(workgroup: u32, thread: u32) {
  if (BATCHED_LOADS) {
    load_groups_batched(workgroup, thread);
    return;
  }
  let shape = workgroup_shape(workgroup);
  if (BLOCK == 1u || shape.local_blocks >= THREADS) {
    for (var local_block = thread; local_block < shape.local_blocks; local_block = local_block + THREADS) {
      let place = element_place(shape, local_block * BLOCK);
      if (place.inside) {
        load_block(place.column, place.position, local_block * BLOCK);
      }
    }
  } else {
    for (var e = thread; e < shape.local_blocks * BLOCK; e = e + THREADS) {
      let place = element_place(shape, e);
      if (place.inside) {
        values[e] = loaded_value(place.column, place.position);
      }
    }
    if (params.transform_blocks != 0u) {
      workgroupBarrier();
      // One block per invocation at most (fewer blocks than invocations).
      let local_block = thread;
      if (local_block < shape.local_blocks && block_group(shape, local_block) < shape.total_groups) {
        var x: array<f32, BLOCK>;
        for (var b = 0u; b < BLOCK; b = b + 1u) {
          x[b] = values[local_block * BLOCK + b];
        }
        multiply_block(x, local_block * BLOCK);
      }
    }
  }
  workgroupBarrier();
}

// Values of `values` each invocation loads in the batched variant (a constant, so its loop unrolls).
const LOADS_PER_THREAD: u32 = (WORKGROUP_ELEMENTS + THREADS - 1u) / THREADS;

// `load_groups` of the batched variant (BATCHED_LOADS, an experiment the benchmark times against the
// default; same operations, so the same bits). Every invocation issues all of its loads before it
// uses any: a loop of constant length over `loaded_value_unbranched`, whose loads sit under no branch,
// into registers, then into workgroup memory; blocks of m > 1 are then multiplied by H_m in workgroup
// memory. Why: the H200's one-workgroup passes grew by ≈ 1.6 µs per element each invocation loads
// (bench/README.md), as if each element's load waited for the one before it — which a load under a
// branch in a loop of run-time length does.
fn load_groups_batched(workgroup: u32, thread: u32) {
  let shape = workgroup_shape(workgroup);
  let count = shape.local_blocks * BLOCK;
  var staged: array<f32, LOADS_PER_THREAD>;
  for (var k = 0u; k < LOADS_PER_THREAD; k = k + 1u) {
    let e = thread + k * THREADS;
    let place = element_place(shape, e);
    staged[k] = loaded_value_unbranched(place.column, place.position, place.inside & (e < count));
  }
  for (var k = 0u; k < LOADS_PER_THREAD; k = k + 1u) {
    let e = thread + k * THREADS;
    if (e < count) {
      values[e] = staged[k];
    }
  }
  if (BLOCK > 1u && params.transform_blocks != 0u) {
    workgroupBarrier();
    for (var local_block = thread; local_block < shape.local_blocks; local_block = local_block + THREADS) {
      if (block_group(shape, local_block) < shape.total_groups) {
        var x: array<f32, BLOCK>;
        for (var b = 0u; b < BLOCK; b = b + 1u) {
          x[b] = values[local_block * BLOCK + b];
        }
        multiply_block(x, local_block * BLOCK);
      }
    }
  }
  workgroupBarrier();
}

// Butterflies between local blocks t and t + h for h = first_level, 2·first_level, …, Q/2
// (first_level: a power of two; ≥ Q runs none), in rounds of up to three levels with a barrier after
// each round. A round of levels h, 2h, 4h gives each work item the 8 elements t₀ + j·h (j < 8, one
// position b in the block) in registers and runs the three levels on them there (level d·h pairs j and
// j + d for j without bit d), so a value goes through workgroup memory once per three levels instead
// of once per level, and the index arithmetic is per 8 elements. Each level's butterflies are those of
// the level-by-level order, on the same operands, so the bits are the same.
fn workgroup_levels(first_level: u32, thread: u32) {
  let q_levels = countTrailingZeros(params.group_blocks);
  var h = first_level;
  loop {
    let levels_left = select(0u, q_levels - countTrailingZeros(h), h < params.group_blocks);
    if (levels_left == 0u) {
      break;
    }
    if (levels_left >= 3u) {
      levels_round8(h, thread);
      h = h << 3u;
    } else if (levels_left == 2u) {
      levels_round4(h, thread);
      h = h << 2u;
    } else {
      levels_round2(h, thread);
      h = h << 1u;
    }
    workgroupBarrier();
  }
}

// Work items of a round of `levels` levels: one per local group, block t₀ (the Q / 2^levels blocks
// whose bits h … h·2^(levels−1) are clear) and position b.
fn round_items(levels: u32) -> u32 {
  return params.groups_per_workgroup * (params.group_blocks >> levels) * BLOCK;
}

// The values[] slot of element j = 0 of work item `item` of a round of `levels` levels from level h
// (element j is `levels` bits of the block index above log2(h), so it sits j·h·m further on).
fn round_first_slot(item: u32, h: u32, levels: u32) -> u32 {
  let b = item % BLOCK;
  let item_block = item / BLOCK; // local group · (Q / 2^levels) + low
  let blocks_shift = countTrailingZeros(params.group_blocks) - levels;
  let local_group = item_block >> blocks_shift;
  let low = item_block & ((1u << blocks_shift) - 1u);
  // Insert `levels` zero bits into low at bit log2(h).
  let h_shift = countTrailingZeros(h);
  let t = ((low >> h_shift) << (h_shift + levels)) | (low & (h - 1u));
  return (local_group * params.group_blocks + t) * BLOCK + b;
}

fn levels_round8(h: u32, thread: u32) {
  let stride = h * BLOCK;
  for (var item = thread; item < round_items(3u); item = item + THREADS) {
    let at = round_first_slot(item, h, 3u);
    // Level h: pairs (0,1) (2,3) (4,5) (6,7), the even and odd elements.
    let even = vec4<f32>(values[at], values[at + 2u * stride], values[at + 4u * stride], values[at + 6u * stride]);
    let odd = vec4<f32>(values[at + stride], values[at + 3u * stride], values[at + 5u * stride], values[at + 7u * stride]);
    let e1 = even + odd; // new 0, 2, 4, 6
    let o1 = even - odd; // new 1, 3, 5, 7
    // Level 2h: pairs (0,2) (1,3) (4,6) (5,7).
    let low2 = vec4<f32>(e1.x, o1.x, e1.z, o1.z); // 0, 1, 4, 5
    let high2 = vec4<f32>(e1.y, o1.y, e1.w, o1.w); // 2, 3, 6, 7
    let l2 = low2 + high2; // new 0, 1, 4, 5
    let h2 = low2 - high2; // new 2, 3, 6, 7
    // Level 4h: pairs (0,4) (1,5) (2,6) (3,7).
    let first_half = vec4<f32>(l2.x, l2.y, h2.x, h2.y); // 0, 1, 2, 3
    let second_half = vec4<f32>(l2.z, l2.w, h2.z, h2.w); // 4, 5, 6, 7
    let f3 = first_half + second_half;
    let s3 = first_half - second_half;
    values[at] = f3.x;
    values[at + stride] = f3.y;
    values[at + 2u * stride] = f3.z;
    values[at + 3u * stride] = f3.w;
    values[at + 4u * stride] = s3.x;
    values[at + 5u * stride] = s3.y;
    values[at + 6u * stride] = s3.z;
    values[at + 7u * stride] = s3.w;
  }
}

fn levels_round4(h: u32, thread: u32) {
  let stride = h * BLOCK;
  for (var item = thread; item < round_items(2u); item = item + THREADS) {
    let at = round_first_slot(item, h, 2u);
    // Level h: pairs (0,1) (2,3); level 2h: pairs (0,2) (1,3).
    let even = vec2<f32>(values[at], values[at + 2u * stride]);
    let odd = vec2<f32>(values[at + stride], values[at + 3u * stride]);
    let e1 = even + odd; // new 0, 2
    let o1 = even - odd; // new 1, 3
    let first_half = vec2<f32>(e1.x, o1.x); // 0, 1
    let second_half = vec2<f32>(e1.y, o1.y); // 2, 3
    let f2 = first_half + second_half;
    let s2 = first_half - second_half;
    values[at] = f2.x;
    values[at + stride] = f2.y;
    values[at + 2u * stride] = s2.x;
    values[at + 3u * stride] = s2.y;
  }
}

fn levels_round2(h: u32, thread: u32) {
  let stride = h * BLOCK;
  for (var item = thread; item < round_items(1u); item = item + THREADS) {
    let at = round_first_slot(item, h, 1u);
    let u = values[at];
    let v = values[at + stride];
    values[at] = u + v;
    values[at + stride] = u - v;
  }
}

// Writes `values` back to the output: scaled (and, for the inverse, sign-flipped) in the last pass;
// positions ≥ output_rows are dropped.
fn store_groups(workgroup: u32, thread: u32) {
  let shape = workgroup_shape(workgroup);
  for (var e = thread; e < shape.local_blocks * BLOCK; e = e + THREADS) {
    let place = element_place(shape, e);
    let column = place.column;
    let position = place.position;
    if (!place.inside || position >= params.output_rows) {
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

// The int8 form of x̃ (shaders/int8_group.wgsl, compiled in front of this file), written by the one
// pass of a forward rotation's last stage when params.int8_out is set: 1, D3's groups of 12
// (`round_int8_group`) in the layout of shaders/gemv_i8_inputs.wgsl (level words of column r from
// word r·4·int8_groups, the scales from word int8_scales_first); 2, the E8 residue GEMV's groups of 32
// (`round_int8_group_e8`) in the layout of shaders/e8_inputs_i8.wgsl (12 words per group), so that the
// int8-input GEMVs need no rounding dispatch. Such a pass holds
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
  let e8 = params.int8_out == 2u;
  let size = select(12u, 32u, e8);   // coordinates per group
  for (var e = thread; e < params.groups_per_workgroup * groups; e = e + THREADS) {
    let local_column = e / groups;
    let column = shape.first_group + local_column;
    if (column >= shape.total_groups) {
      continue;
    }
    let g = e - local_column * groups;
    var v = array<f32, 32>();
    for (var i = 0u; i < size; i = i + 1u) {
      let p = g * size + i;
      if (p < params.int8_kept) {
        v[i] = rotated_value(local_column, column, p);
      }
    }
    let slot = (params.int8_first_column + column) * groups + g;
    if (e8) {
      let rounded = round_int8_group_e8(v);
      for (var w = 0u; w < 12u; w = w + 1u) {
        x_inputs[12u * slot + w] = rounded.words[w];
      }
      x_inputs[params.int8_scales_first + slot] = rounded.scale_bits;
    } else {
      var first = array<f32, 12>();
      for (var i = 0u; i < 12u; i = i + 1u) {
        first[i] = v[i];
      }
      let rounded = round_int8_group(first);
      for (var b = 0u; b < 4u; b = b + 1u) {
        x_inputs[4u * slot + b] = rounded.words[b];
      }
      x_inputs[params.int8_scales_first + slot] = rounded.scale_bits;
    }
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
