// Universal codes → the pair form of the int8 product (src/quantize/universalPairs.ts says what the
// form is; its `universalPairColumns` is this kernel's CPU twin, bit for bit). Compiled after the
// generated `UniversalPairsParams`, shaders/lattice_decode.wgsl, the generated lattice header and
// shaders/universal_decode.wgsl, then shaders/pair_split.wgsl (src/gpu/kernels/universalPairs.ts).
//
// One workgroup of 64 per column (a column of N coordinates has N/8 units: 256 invocations left most of
// a short column's idle, and a product of 128 columns of 128 spent twice the f32 matmul's time here
// on lavapipe). Each invocation takes units (8 rotated coordinates) thread, thread + 64, …: it forms
// c = λ·DITHER_GRID/pointScale − Z of each coordinate (zero at and past `kept`), writes the unit split
// unshifted (c = R·h + l, R = 2^radix_bits) and keeps the largest |c|. The workgroup's largest sets the column's shift
// s; a column that needs one (rare: an escape far above its RMS) is decoded again and rewritten by the
// same invocations, so no unit is written by two. Invocation 0 writes the column's factor f·2^s and
// exponent e (ν = f·2^e, frexp).

const THREADS: u32 = 64u;
const POINT_FACTOR: i32 = U_DITHER_GRID / U_POINT_SCALE;

@group(0) @binding(0) var<uniform> params: UniversalPairsParams;
@group(0) @binding(1) var<storage, read> codes: array<u32>;
@group(0) @binding(2) var<storage, read> escape_bits: array<u32>;
@group(0) @binding(3) var<storage, read> escape_starts: array<u32>;
@group(0) @binding(4) var<storage, read> escape_ids: array<u32>;
@group(0) @binding(5) var<storage, read> escape_table: array<i32>;
@group(0) @binding(6) var<storage, read> side: array<f32>;             // norms (all columns)
@group(0) @binding(7) var<storage, read_write> pairs: array<vec4<u32>>;
// All columns: factor j (f32 bits) at j, exponent j (i32 bits) at total_cols + j. One buffer, not two,
// so the kernel binds 8 storage buffers, WebGPU's default limit per stage.
@group(0) @binding(8) var<storage, read_write> scales: array<u32>;

var<workgroup> largest_atomic: atomic<u32>;
var<workgroup> largest: u32;

// The integers c of unit `unit` of local column `column` (keys: the column's dither keys).
fn unit_integers(column: u32, keys: vec2<u32>, unit: u32) -> array<i32, PAIR_UNIT> {
  var c = array<i32, PAIR_UNIT>();
  var current = 0xffffffffu;
  var point = LatticePoint();
  var dither = LatticePoint();
  for (var i = 0u; i < PAIR_UNIT; i = i + 1u) {
    let k = unit * PAIR_UNIT + i;
    if (k >= params.kept) {
      break;
    }
    let block = k / U_DIM;
    if (block != current) {
      point = universal_point(column, block);
      dither = block_dither(keys, block);
      current = block;
    }
    let v = k - block * U_DIM;
    c[i] = POINT_FACTOR * point[v] - dither[v];
  }
  return c;
}

@compute @workgroup_size(64, 1, 1)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let column = group.y * groups.x + group.x;
  if (column >= params.cols) {
    return; // the whole workgroup
  }
  if (thread == 0u) {
    atomicStore(&largest_atomic, 0u);
  }
  workgroupBarrier();
  let global_column = params.column_offset + column;
  let keys = dither_key(global_column);
  let base = params.out_first + column * params.units;
  var top = 0u;
  for (var u = thread; u < params.units; u = u + THREADS) {
    let c = unit_integers(column, keys, u);
    for (var i = 0u; i < PAIR_UNIT; i = i + 1u) {
      top = max(top, u32(abs(c[i])));
    }
    pairs[base + u] = pack_unit(c, 0u, params.radix_bits);
  }
  atomicMax(&largest_atomic, top);
  workgroupBarrier();
  if (thread == 0u) {
    largest = atomicLoad(&largest_atomic);
  }
  let s = pair_shift(workgroupUniformLoad(&largest), params.radix_bits);
  if (s > 0u) {
    for (var u = thread; u < params.units; u = u + THREADS) {
      pairs[base + u] = pack_unit(unit_integers(column, keys, u), s, params.radix_bits);
    }
  }
  if (thread == 0u) {
    let split = frexp(side[global_column]);
    let global_index = params.factor_first + column;
    scales[global_index] = bitcast<u32>(ldexp(split.fract, i32(s)));
    scales[params.total_cols + global_index] = bitcast<u32>(split.exp);
  }
}
