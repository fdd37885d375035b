// The frame of a repack into a quad form (shaders/e8_residue_repack.wgsl, shaders/d3_quad_repack.wgsl;
// the host: src/gpu/kernels/quadRepack.ts): the bindings, one invocation per (column, quad) of a range
// of columns (the host splits the matrix into ranges whose fields fit a binding), and the column side
// (ν_j·γ_j of every column, then μ_j when centred) written by each column's quad 0. Compiled after
// the generated QuadRepackParams and the form's body, which defines `repack_quad(column, quad)`: it
// writes the quad's words into `quad_words` (from params.quad_first) and `quad_sides` (from
// params.side_first).

const THREADS: u32 = 256u;

@group(0) @binding(0) var<uniform> params: QuadRepackParams;
@group(0) @binding(1) var<storage, read> codes: array<u32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read> column_side: array<f32>;   // the range's norms, then gains and means (cols apart)
@group(0) @binding(4) var<storage, read_write> quad_words: array<u32>;
@group(0) @binding(5) var<storage, read_write> quad_sides: array<u32>;
@group(0) @binding(6) var<storage, read_write> out_side: array<f32>;  // ν_j·γ_j of every column, then μ_j

// ν_j·γ_j of local column `column` of the range (then μ_j when centred) into the form's side buffer.
fn write_column_side(column: u32) {
  var scale = column_side[column];
  if (params.has_gains != 0u) {
    scale = scale * column_side[params.cols + column];
  }
  out_side[params.column_first + column] = scale;
  if (params.has_means != 0u) {
    out_side[params.means_first + column] = column_side[2u * params.cols + column];
  }
}

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let invocation = (group.y * groups.x + group.x) * THREADS + thread;
  if (invocation >= params.cols * params.quads) {
    return;
  }
  let column = invocation / params.quads;
  let quad = invocation % params.quads;
  repack_quad(column, quad);
  if (quad == 0u) {
    write_column_side(column);
  }
}
