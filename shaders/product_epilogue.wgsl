// The epilogue of a decoded product ÂᵀB̂ (src/gpu/kernels/productEpilogue.ts), after the f32 product
// of the decoded rotated columns: the twin of the end of `matmulAT` (src/product/matmulAT.ts):
//   - columns decoded with normalized norms (`rescale`): C[i, j] ·= 2^(e_a[i]) · 2^(e_b[j]), exact
//     (two ldexp steps, each exponent within ±128, so no intermediate leaves f32);
//   - centred operands: C[i, j] += rows · m_a[i] · m_b[j];
//   - a Gram matrix (both operands one quantization): C[i, i] = ν_i² + rows · m_i² (exact; both factors
//     of a diagonal entry share one error, which the stored norm replaces).
// One invocation per entry of one chunk of C's columns: columns b_first … b_first + chunk_cols − 1 of
// the a_cols × b_cols column-major C, bound from element `c_first` (C is split by columns so each
// chunk fits one storage binding). `side_a` and `side_b` hold the norms (cols f32) and, when centred,
// the means (cols f32 after them); `exponents_b` and `side_b` are indexed by the global column j.

const THREADS: u32 = 256u;

@group(0) @binding(0) var<uniform> params: ProductEpilogueParams;
@group(0) @binding(1) var<storage, read> side_a: array<f32>;
@group(0) @binding(2) var<storage, read> side_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> exponents_a: array<i32>;
@group(0) @binding(5) var<storage, read> exponents_b: array<i32>;

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let index = (group.y * groups.x + group.x) * THREADS + thread;
  if (index >= params.a_cols * params.chunk_cols) {
    return;
  }
  let column = index / params.a_cols;
  let i = index - column * params.a_cols;
  let j = params.b_first + column;
  let at = params.c_first + index;
  var value = c[at];
  if (params.rescale != 0u) {
    value = ldexp(ldexp(value, exponents_a[i]), exponents_b[j]);
  }
  var mean_term = 0.0;
  if (params.centred != 0u) {
    mean_term = params.rows * side_a[params.a_cols + i] * side_b[params.b_cols + j];
    value = value + mean_term;
  }
  if (params.gram != 0u && i == j) {
    let norm = side_a[i];
    value = norm * norm + select(0.0, params.rows * side_a[params.a_cols + i] * side_a[params.a_cols + i], params.centred != 0u);
  }
  c[at] = value;
}
