// Universal codes → f32 values in the rotated domain: the GPU twin of decodeRotated
// (src/product/decodeRotated.ts) for universal lattice matrices. Compiled after
// shaders/lattice_decode.wgsl, the generated lattice header and shaders/universal_decode.wgsl
// (src/gpu/kernels/universalDequantize.ts), which also prepends the generated `UniversalDequantizeParams`.
//
// One invocation per (column, block): out[out_first + column·length + block·d + i] =
//   ν_j · (point_unit · λ_i − dither_unit · Z_i) with point_unit = β/(pointScale·√N) and
//   dither_unit = β/(DITHER_GRID·√N), for coordinates below `length` (zero at or past `kept`).
//
// With `normalize` set (products), ν_j is replaced by its mantissa f_j ∈ [0.5, 1) (ν_j = f_j·2^e_j,
// WGSL frexp) and e_j is written to exponents[exponent_first + column]: the f32 product of decoded
// columns then neither overflows nor underflows whatever the norms, and the product epilogue
// multiplies C[i, j] back by 2^(e_i + e_j) exactly (shaders/product_epilogue.wgsl).

const THREADS: u32 = 256u;

@group(0) @binding(0) var<uniform> params: UniversalDequantizeParams;
@group(0) @binding(1) var<storage, read> codes: array<u32>;
@group(0) @binding(2) var<storage, read> escape_bits: array<u32>;
@group(0) @binding(3) var<storage, read> escape_starts: array<u32>;
@group(0) @binding(4) var<storage, read> escape_ids: array<u32>;
@group(0) @binding(5) var<storage, read> escape_table: array<i32>;
@group(0) @binding(6) var<storage, read> side: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
@group(0) @binding(8) var<storage, read_write> exponents: array<i32>;

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
  let point = universal_point(column, block);
  let dither = block_dither(dither_key(global_column), block);
  var norm = side[global_column];
  if (params.normalize != 0u) {
    let split = frexp(norm);
    norm = split.fract;
    if (block == 0u) {
      exponents[params.exponent_first + column] = split.exp;
    }
  }
  let point_step = norm * params.point_unit;
  let dither_step = norm * params.dither_unit;
  for (var i = 0u; i < U_DIM; i = i + 1u) {
    let k = block * U_DIM + i;
    if (k < params.length) {
      let value = point_step * f32(point[i]) - dither_step * f32(dither[i]);
      out[params.out_first + column * params.length + k] = select(0.0, value, k < params.kept);
    }
  }
}
