// Activations in and out of the GEMVs (src/gpu/kernels/activationIo.ts): f16 inputs widened to f32,
// and the epilogue y = t + b (bias optional) written as f32 or packed to f16. f16 values are read and
// written as halves of u32 words, with f16_value and f16_bits (shaders/f16_convert.wgsl, prepended by
// the host: exact on every GPU, subnormal halves included), so these kernels need no 'shader-f16' feature. CPU twins: src/matrix.ts (f16 → f32, exact) and
// `float16Bits` (f32 → f16, round to nearest even) of src/scalar/floatFormats.ts.
//
// Element e of an f16 array that starts at half index `first` is half (first + e) & 1 of word
// (first + e) >> 1. An f16 output must start at an even half index (a 4-byte aligned byte offset):
// invocation t then owns the word holding elements 2t and 2t + 1 and no two invocations share one.

const THREADS: u32 = 256u;

@group(0) @binding(0) var<uniform> params: ActivationIoParams;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<u32>;

fn invocation_index(group: vec3<u32>, groups: vec3<u32>, thread: u32) -> u32 {
  return (group.y * groups.x + group.x) * THREADS + thread;
}

fn half_value(first: u32, e: u32) -> f32 {
  let h = first + e;
  return f16_value(input[h >> 1u] >> ((h & 1u) * 16u));
}

// The epilogue value of element e: t[e] (+ b[e mod rows]).
fn epilogue_value(e: u32) -> f32 {
  var value = bitcast<f32>(input[params.in_first + e]);
  if (params.has_bias != 0u) {
    value = value + bias[e % params.rows];
  }
  return value;
}

@compute @workgroup_size(256, 1, 1)
fn f16_to_f32(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) thread: u32) {
  let e = invocation_index(group, groups, thread);
  if (e >= params.count) {
    return;
  }
  output[params.out_first + e] = bitcast<u32>(half_value(params.in_first, e));
}

@compute @workgroup_size(256, 1, 1)
fn epilogue_f32(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) thread: u32) {
  let e = invocation_index(group, groups, thread);
  if (e >= params.count) {
    return;
  }
  output[params.out_first + e] = bitcast<u32>(epilogue_value(e));
}

@compute @workgroup_size(256, 1, 1)
fn epilogue_f16(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) thread: u32) {
  let e = 2u * invocation_index(group, groups, thread);
  if (e >= params.count) {
    return;
  }
  let word = (params.out_first >> 1u) + (e >> 1u);
  if (e + 1u < params.count) {
    output[word] = f16_bits(epilogue_value(e)) | (f16_bits(epilogue_value(e + 1u)) << 16u);
  } else {
    // The last element of an odd count: the word's high half is not Y's, so its bits are kept as
    // they are (a round trip through f32 would change NaN payloads, and WGSL allows more).
    output[word] = (output[word] & 0xffff0000u) | f16_bits(epilogue_value(e));
  }
}
