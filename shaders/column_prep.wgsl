// Column preparation, steps 1–2 of src/quantize/columnScaling.ts (CPU twin: prepareColumn without
// the rotation), bit for bit:
//   1. amax = max |x_i| (on the bit patterns: exact) and the exponent e with amax·2^e ∈ [1, 2),
//      read from amax's f32 exponent field (0 for an all-zero column);
//      x_i·2^e by scale_by_power_of_two_bits (exact, or the CPU's rounding when subnormal);
//   2. optional centring: μ' = fround(S · fround(1/n)) with S the canonical sum of the scaled column
//      (256 lanes, lane l adds the entries i ≡ l (mod 256) in increasing i, then lanes combine
//      pairwise with strides 128, 64, …, 1), and v_i = fround(x_i·2^e − μ').
// Writes v (n entries per column) for the rotation, e per column, and the mean μ'·2^−e.
// The scaling and the unscaled mean are integer operations on the bits, exact even where WGSL lets a
// GPU flush subnormals. f32 arithmetic that meets a subnormal here or in the rotation changes only
// values below 2^−126 (the largest entry is ≥ 1), which round to 0 in the fixed-point step and vanish
// in the norm's sum; only the mean of a column whose sum cancels below 2^−126 may then differ.
//
// Compiled as shaders/exact_f32.wgsl + shaders/f32_scaling.wgsl + the PrepParams struct + this file
// (src/gpu/kernels/columnPrep.ts). One workgroup of 256 invocations per column; invocation l is lane l.
//
// Status words (shared with shaders/lattice_encode.wgsl): a non-finite input entry or a mean beyond
// the f32 range records the column as atomicMax(word, 0xffffffff − column), so the smallest such
// column can be recovered on the host.

// Barrier loops: the pairwise reductions start from `params.first_stride` (always 128) rather than
// a constant, so that the compiler cannot unroll them. Unrolled, their barriers made these kernels
// take 10+ s to compile on lavapipe (Mesa 25, measured); as loops, about a second.

const THREADS: u32 = 256u;
const STATUS_NONFINITE_INPUT: u32 = 1u;
const STATUS_MEAN_OVERFLOW: u32 = 3u;

// struct PrepParams is declared once, in src/gpu/kernels/columnPrep.ts (a UniformLayout), which
// generates its WGSL in front of this file.
@group(0) @binding(0) var<uniform> params: PrepParams;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> prepared: array<f32>;
@group(0) @binding(3) var<storage, read_write> exponents: array<i32>;
@group(0) @binding(4) var<storage, read_write> means: array<f32>;
@group(0) @binding(5) var<storage, read_write> status: array<atomic<u32>, 4>;

var<workgroup> lane_max: array<u32, 256>;
var<workgroup> lane_sum: array<f32, 256>;

// e with a·2^e ∈ [1, 2) for the bit pattern a of a positive finite f32.
fn normalizing_exponent(a: u32) -> i32 {
  let biased = i32(a >> 23u);
  if (biased > 0) {
    return 127 - biased; // a = 1.f · 2^(biased − 127)
  }
  // Subnormal: a = f · 2^−149 with floor(log2 f) = 31 − clz(f).
  return 118 + i32(countLeadingZeros(a));
}

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) workgroup_id: vec3<u32>,
  @builtin(num_workgroups) workgroup_count: vec3<u32>,
  @builtin(local_invocation_index) lane: u32,
) {
  let column = workgroup_id.y * workgroup_count.x + workgroup_id.x;
  if (column >= params.cols) {
    return;
  }
  let n = params.rows;
  let base = params.input_first + column * n;

  // 1. amax: the largest magnitude bit pattern is the largest magnitude (NaN and inf sort above).
  var largest = 0u;
  for (var i = lane; i < n; i = i + THREADS) {
    largest = max(largest, bitcast<u32>(input[base + i]) & 0x7fffffffu);
  }
  lane_max[lane] = largest;
  workgroupBarrier();
  for (var stride = params.first_stride; stride >= 1u; stride = stride / 2u) {
    if (lane < stride) {
      lane_max[lane] = max(lane_max[lane], lane_max[lane + stride]);
    }
    workgroupBarrier();
  }
  let amax = lane_max[0];
  var exponent = 0;
  if (amax >= 0x7f800000u) {
    if (lane == 0u) {
      atomicMax(&status[STATUS_NONFINITE_INPUT], 0xffffffffu - (params.column_offset + column));
    }
  } else if (amax != 0u) {
    exponent = normalizing_exponent(amax);
  }

  // 2. centring: the canonical sum of the scaled column.
  var mean = 0.0;
  if (params.center == 1u) {
    var acc = 0.0;
    for (var i = lane; i < n; i = i + THREADS) {
      acc = acc + bitcast<f32>(scale_by_power_of_two_bits(bitcast<u32>(input[base + i]), exponent));
    }
    lane_sum[lane] = acc;
    workgroupBarrier();
    for (var stride = params.first_stride; stride >= 1u; stride = stride / 2u) {
      if (lane < stride) {
        lane_sum[lane] = lane_sum[lane] + lane_sum[lane + stride];
      }
      workgroupBarrier();
    }
    // μ' is a rounded product: it must not fuse with the subtraction below.
    mean = unfused(lane_sum[0] * params.inverse_rows, params.runtime_zero);
  }

  let out_base = params.prepared_first + column * n;
  for (var i = lane; i < n; i = i + THREADS) {
    let scaled = bitcast<f32>(scale_by_power_of_two_bits(bitcast<u32>(input[base + i]), exponent));
    prepared[out_base + i] = select(scaled, scaled - mean, params.center == 1u);
  }

  if (lane == 0u) {
    exponents[params.exponent_first + column] = exponent;
    if (params.center == 1u) {
      let unscaled = scale_by_power_of_two_bits(bitcast<u32>(mean), -exponent);
      if ((unscaled & 0x7fffffffu) >= 0x7f800000u) {
        atomicMax(&status[STATUS_MEAN_OVERFLOW], 0xffffffffu - (params.column_offset + column));
      }
      means[params.mean_first + column] = bitcast<f32>(unscaled);
    }
  }
}
