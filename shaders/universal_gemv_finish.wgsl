// The per-call parts of the universal GEMV (src/gpu/kernels/universalGemv.ts; see
// shaders/universal_gemv.wgsl for the math): compiled after the generated `UniversalGemvParams` and a
// header with U_DIM and G_DITHER_OFFSETS (offset_v = 2^(bits_v − 1) of the lattice's dither fields).
//   call_sums  one workgroup per right-hand side r (on a 2-D grid; workgroups from r = params.rhs on do
//              nothing): sums[f + r] = Σ_{b,v} offset_v·x̃_r[b·d + v] over kept coordinates (0 when
//              params.dither_offsets is 0: the int8-input kernel, whose T already holds the whole
//              dither term), and sums[m + f + r] = Σ_i x_r[i] when W is centred (else 0),
//              f = params.sums_first, m = params.sums_means (sums recorded once for several layers
//              hold every right-hand side of the call: a range of them starts at f);
//   finish     one invocation per output: Y[j, r] = ν_j·unit·(T[j, r] + sums[f + r]) + μ_j·sums[m + f + r]
//              (+ b_j), written as f32 or f16 by `store_output` (shaders/gemv_output.wgsl: the
//              QuantizedLinear epilogue), T[j, r] being what the product kernel left in Y (f32 output)
//              or in the f32 buffer `t` (params.t_staged: f16 output, or Y accumulated).
// Both sum in a fixed order (strided per invocation, then `sum_partials`, shaders/partial_sums.wgsl,
// compiled after this file).

const THREADS: u32 = 256u;

@group(0) @binding(0) var<uniform> params: UniversalGemvParams;
@group(0) @binding(1) var<storage, read> x_rotated: array<f32>; // x̃ (or x when unrotated)
@group(0) @binding(2) var<storage, read> x: array<f32>;         // x (for Σx)
@group(0) @binding(3) var<storage, read> side: array<f32>;      // norms, then means (all columns)
@group(0) @binding(4) var<storage, read_write> sums: array<f32>;
@group(0) @binding(5) var<storage, read> t: array<f32>;         // T when staged (f16 output, or Y accumulated), else unused
@group(0) @binding(6) var<storage, read> bias: array<u32>;      // b when params.has_bias
@group(0) @binding(7) var<storage, read_write> y: array<atomic<u32>>;  // T in place (f32 output), then Y

var<workgroup> partials: array<f32, 2u * THREADS>;

@compute @workgroup_size(256, 1, 1)
fn call_sums(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  // Right-hand side r of this dispatch: workgroups on a 2-D grid (more than 65535 right-hand sides),
  // the last row partly unused. r is uniform over the workgroup, so the early return is too.
  let r = group.y * groups.x + group.x;
  if (r >= params.rhs) {
    return;
  }
  let x_rotated_base = params.x_rotated_first + r * params.x_stride;
  var dither = 0.0;
  let blocks = select(0u, params.blocks, params.dither_offsets != 0u);
  for (var b = thread; b < blocks; b = b + THREADS) {
    let k0 = b * U_DIM;
    for (var v = 0u; v < U_DIM; v = v + 1u) {
      if (k0 + v < params.kept) {
        dither = dither + G_DITHER_OFFSETS[v] * x_rotated[x_rotated_base + k0 + v];
      }
    }
  }
  var total = 0.0;
  if (params.has_means != 0u) {
    let x_base = params.x_first + r * params.rows;
    for (var i = thread; i < params.rows; i = i + THREADS) {
      total = total + x[x_base + i];
    }
  }
  partials[thread] = dither;
  partials[THREADS + thread] = total;
  sum_partials(2u, thread);
  if (thread == 0u) {
    sums[params.sums_first + r] = partials[0];
    sums[params.sums_means + params.sums_first + r] = partials[THREADS];
  }
}

@compute @workgroup_size(256, 1, 1)
fn finish(
  @builtin(workgroup_id) group: vec3<u32>,
  @builtin(num_workgroups) groups: vec3<u32>,
  @builtin(local_invocation_index) thread: u32,
) {
  let index = (group.y * groups.x + group.x) * THREADS + thread;
  if (index >= params.total_cols * params.rhs) {
    return;
  }
  let r = index / params.total_cols;
  let j = index - r * params.total_cols;
  let scale = side[j] * params.unit;
  var mean = 0.0;
  if (params.has_means != 0u) {
    mean = side[params.total_cols + j];
  }
  let at = params.y_first + index;
  var product = 0.0;
  if (params.t_staged != 0u) {
    product = t[index];
  } else {
    product = bitcast<f32>(atomicLoad(&y[at]));
  }
  let s = params.sums_first + r;
  store_output(at, params.bias_first + j, scale * (product + sums[s]) + mean * sums[params.sums_means + s]);
}
