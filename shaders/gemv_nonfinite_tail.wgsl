// Y set to NaN for the right-hand sides whose x has a NaN or ±Infinity at or past keptLength, after
// the GEMV wrote Y (host side: src/gpu/kernels/nonFiniteTail.ts). An unrotated, time-shared W is 0
// there, so no GEMV reads x there; but Ŵᵀx is then NaN (0·NaN), as the CPU's decode-and-multiply
// gives. A rotated W needs no check: its one-stage rotation spreads every entry of x over all of x̃;
// nor does a centred W, whose Σx reads every row.
//
// One workgroup per right-hand side; nothing is written unless a non-finite entry is found. Y is
// poisoned with an atomicOr of a quiet NaN's exponent and top fraction bit: a NaN whatever Y held,
// and only the element's own bits (an f16 Y shares words with the next element, which may be another
// right-hand side's).

@group(0) @binding(0) var<uniform> params: NonFiniteTailParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<atomic<u32>>;

const THREADS: u32 = 256u;

var<workgroup> tail_non_finite: atomic<u32>;

// Whether `value` is NaN or ±Infinity, by its bits (WGSL lets a compiler drop float tests for them).
fn non_finite(value: f32) -> bool {
  return (bitcast<u32>(value) & 0x7fffffffu) >= 0x7f800000u;
}

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) thread: u32) {
  let r = group.x;
  let x_base = params.x_first + r * params.rows;
  var found = false;
  for (var k = params.kept + thread; k < params.rows; k = k + THREADS) {
    found = found || non_finite(x[x_base + k]);
  }
  if (found) {
    atomicOr(&tail_non_finite, 1u);
  }
  workgroupBarrier();
  if (atomicLoad(&tail_non_finite) == 0u) {
    return;
  }
  let y_base = params.y_first + r * params.cols;
  for (var j = thread; j < params.cols; j = j + THREADS) {
    let at = y_base + j;
    if (params.output_f16 == 0u) {
      atomicOr(&y[at], 0x7fc00000u);
    } else {
      atomicOr(&y[at >> 1u], 0x7e00u << ((at & 1u) * 16u));
    }
  }
}
