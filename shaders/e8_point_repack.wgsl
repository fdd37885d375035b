// A universal E8 matrix on the GPU → the point form of src/quantize/e8Points.ts (`e8PointForm` is the
// CPU twin, word for word): each block's lattice point λ (universal_point of shaders/universal_decode.wgsl)
// as two words of packed i8 (coordinates 0, 2, 4, 6 and 1, 3, 5, 7), and each column's dither keys
// (dither_key). Compiled after the universal decode library (universalDecodeWgsl) and the generated
// `E8PointRepackParams` (which carries the operand's members). A coordinate beyond ±127 is not
// representable: the block's words are left 0 and the `overflow` word (after the keys) is set, which
// makes the GEMV write NaN for the whole call (shaders/e8_point_gemv_i8.wgsl) and `GpuE8PointMatrix.check`
// reject. One invocation per (column, block).

const THREADS: u32 = 256u;

@group(0) @binding(0) var<uniform> params: E8PointRepackParams;
@group(0) @binding(1) var<storage, read> codes: array<u32>;
@group(0) @binding(2) var<storage, read> escape_bits: array<u32>;
@group(0) @binding(3) var<storage, read> escape_starts: array<u32>;
@group(0) @binding(4) var<storage, read> escape_ids: array<u32>;
@group(0) @binding(5) var<storage, read> escape_table: array<i32>;
@group(0) @binding(6) var<storage, read_write> points: array<u32>;
@group(0) @binding(7) var<storage, read_write> keys: array<u32>;   // 2 per column, then the overflow word

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let invocation = (group.y * groups.x + group.x) * THREADS + thread;
  if (invocation >= params.cols * params.blocks) {
    return;
  }
  let column = invocation / params.blocks;
  let block = invocation - column * params.blocks;
  let global_column = params.column_offset + column;
  if (block == 0u) {
    let key = dither_key(global_column);
    keys[2u * global_column] = key.x;
    keys[2u * global_column + 1u] = key.y;
  }
  let point = universal_point(column, block);
  var even = 0u;
  var odd = 0u;
  var fits = true;
  for (var i = 0u; i < 4u; i = i + 1u) {
    let a = point[2u * i];
    let b = point[2u * i + 1u];
    fits = fits && abs(a) <= 127 && abs(b) <= 127;
    even = even | ((bitcast<u32>(a) & 0xffu) << (8u * i));
    odd = odd | ((bitcast<u32>(b) & 0xffu) << (8u * i));
  }
  if (!fits) {
    keys[2u * params.total_cols] = 1u;
    return;
  }
  let at = params.point_first + column * params.column_words + 2u * block;
  points[at] = even;
  points[at + 1u] = odd;
}
