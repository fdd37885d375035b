// Randomized Hadamard rotation of columns: out = c · H_N · D · pad(x) for every column x, reproducing
// RandomizedHadamard.forward (src/rotation/randomizedHadamard.ts) bit for bit.
//
// Compiled with `const WORKGROUP_ELEMENTS: u32` prepended (src/gpu/kernels/hadamard.ts): the f32
// values a workgroup holds in workgroup memory, a power of two chosen from the device's limit.
//
// Layout: input column j is x = input[input_first + j·rows ..][0 .. rows), output column j is
// output[output_first + j·length ..][0 .. length), both column-major f32. N = length = m · 2^k,
// m = block ∈ {1, 12, 20}; element i = a·m + b lies in block a ∈ [0, 2^k) at position b ∈ [0, m).
//
// The f32 operations and their order are those of the CPU reference (hadamard.ts documents the
// contract): per element i < rows, x_i · s_i with s_i = ±1 from counterHash(seed, stream, i, 0)
// (a sign flip, exact); zeros for rows ≤ i < N; for m > 1, per block, acc = ±x[a·m], then
// acc = acc + (±x[a·m + b']) for b' = 1 … m−1, left to right; then the butterflies
// (u, v) → (u + v, u − v) between blocks a and a + h for h = 1, 2, 4, …, 2^(k−1), level by level;
// finally one multiplication by c = fround(1/√N). No multiply feeds an add, so fused multiply-adds
// cannot change a bit, and each butterfly level reads only the previous level's values, so doing the
// pairs of a level in parallel gives the same bits as the CPU's loop.
//
// Passes: the block index a is split into bit fields. One pass owns the levels h = P, 2P, …, P·Q/2
// (level_stride P, group_blocks Q, both powers of two): a "group" is the Q blocks
// a = low + t·P + high·P·Q (t ∈ [0, Q), fixed low < P and high), which those levels only combine among
// themselves. A workgroup copies groups_per_workgroup groups into workgroup memory, runs their levels
// with barriers between levels, and writes them back. The first pass (P = 1) reads the input and
// applies signs, padding and H_m; later passes work in place on the output; the last one scales.
// When N fits in workgroup memory there is one pass with Q = 2^k, and a workgroup holds whole columns.

const THREADS: u32 = 256u;

struct HadamardParams {
  rows: u32,                 // n: entries of an input column
  length: u32,               // N: entries of an output column
  block: u32,                // m
  cols: u32,                 // columns in this dispatch
  input_first: u32,          // element offset of input column 0 in its binding
  output_first: u32,         // element offset of output column 0 in its binding
  seed: u32,
  sign_stream: u32,          // RandomStream.rotationSigns
  level_stride: u32,         // P
  group_blocks: u32,         // Q
  groups_per_workgroup: u32,
  first_pass: u32,           // 1: read the input; 0: read the output in place
  last_pass: u32,            // 1: multiply by scale when writing
  scale: f32,                // c = fround(1/√N)
  row_negative: array<vec4<u32>, 5>, // bit b' of row b (word b): H_m[b][b'] = −1
}

@group(0) @binding(0) var<uniform> params: HadamardParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

var<workgroup> values: array<f32, WORKGROUP_ELEMENTS>;

// The counter-based hash of src/rotation/random.ts (mix32 = lowbias32; counterHash chains it).
fn mix32(v: u32) -> u32 {
  var x = v;
  x = x ^ (x >> 16u);
  x = x * 0x7feb352du;
  x = x ^ (x >> 15u);
  x = x * 0x846ca68bu;
  x = x ^ (x >> 16u);
  return x;
}

fn counter_hash(seed: u32, stream: u32, index: u32, sub: u32) -> u32 {
  var h = mix32(seed ^ 0x9e3779b9u);
  h = mix32(h ^ stream);
  h = mix32(h ^ index);
  return mix32(h ^ sub);
}

// counterSign(seed, stream, i) = −1 ⇔ bit 31 of the hash is set.
fn rotation_sign_is_negative(i: u32) -> bool {
  return (counter_hash(params.seed, params.sign_stream, i, 0u) >> 31u) == 1u;
}

fn hadamard_entry_is_negative(row: u32, col: u32) -> bool {
  return ((params.row_negative[row / 4u][row % 4u] >> col) & 1u) == 1u;
}

// Position inside its column of element b of block t of group `group_in_column`.
fn column_position(group_in_column: u32, t: u32, b: u32) -> u32 {
  let low = group_in_column % params.level_stride;
  let high = group_in_column / params.level_stride;
  let a = low + (t + high * params.group_blocks) * params.level_stride;
  return a * params.block + b;
}

// Input element i of `column` times its sign; +0 in the padding (as the CPU's fill(0)).
fn signed_input(column: u32, i: u32) -> f32 {
  if (i >= params.rows) {
    return 0.0;
  }
  let x = input[params.input_first + column * params.rows + i];
  return select(x, -x, rotation_sign_is_negative(i));
}

// First pass: one block (m elements from `first`) signed, padded and multiplied by H_m.
fn load_first_pass_block(column: u32, first: u32, slot: u32) {
  let m = params.block;
  if (m == 1u) {
    values[slot] = signed_input(column, first);
    return;
  }
  var x: array<f32, 20>;
  for (var b = 0u; b < m; b = b + 1u) {
    x[b] = signed_input(column, first + b);
  }
  for (var b = 0u; b < m; b = b + 1u) {
    var acc = select(x[0], -x[0], hadamard_entry_is_negative(b, 0u));
    for (var b2 = 1u; b2 < m; b2 = b2 + 1u) {
      acc = acc + select(x[b2], -x[b2], hadamard_entry_is_negative(b, b2));
    }
    values[slot + b] = acc;
  }
}

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) workgroup_id: vec3<u32>,
  @builtin(num_workgroups) workgroup_count: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let workgroup = workgroup_id.y * workgroup_count.x + workgroup_id.x;
  let m = params.block;
  let q = params.group_blocks;
  let group_elements = q * m;
  let groups_per_column = params.length / group_elements;
  let total_groups = params.cols * groups_per_column;
  let first_group = workgroup * params.groups_per_workgroup;
  let local_blocks = params.groups_per_workgroup * q;

  // Load: one block per step; slot = local group · Q·m + t·m.
  for (var local_block = thread; local_block < local_blocks; local_block = local_block + THREADS) {
    let group = first_group + local_block / q;
    if (group >= total_groups) {
      continue;
    }
    let column = group / groups_per_column;
    let first = column_position(group % groups_per_column, local_block % q, 0u);
    let slot = local_block * m;
    if (params.first_pass == 1u) {
      load_first_pass_block(column, first, slot);
    } else {
      let base = params.output_first + column * params.length + first;
      for (var b = 0u; b < m; b = b + 1u) {
        values[slot + b] = output[base + b];
      }
    }
  }
  workgroupBarrier();

  // Butterflies between local blocks t and t + h (h = 1, 2, …, Q/2), element by element.
  let half_group = group_elements / 2u;
  let pairs = params.groups_per_workgroup * half_group;
  for (var h = 1u; h < q; h = h << 1u) {
    for (var pair = thread; pair < pairs; pair = pair + THREADS) {
      let local_group = pair / half_group;
      let r = pair % half_group;
      let b = r % m;
      let low_half = r / m; // index among the Q/2 blocks whose bit h is clear
      let t = ((low_half & ~(h - 1u)) << 1u) | (low_half & (h - 1u));
      let i = local_group * group_elements + t * m + b;
      let j = i + h * m;
      let u = values[i];
      let v = values[j];
      values[i] = u + v;
      values[j] = u - v;
    }
    workgroupBarrier();
  }

  // Write back (scaled in the last pass).
  for (var e = thread; e < local_blocks * m; e = e + THREADS) {
    let local_block = e / m;
    let group = first_group + local_block / q;
    if (group >= total_groups) {
      continue;
    }
    let column = group / groups_per_column;
    let position = column_position(group % groups_per_column, local_block % q, e % m);
    var value = values[e];
    if (params.last_pass == 1u) {
      value = value * params.scale;
    }
    output[params.output_first + column * params.length + position] = value;
  }
}
