// Y as the GEMV kernels write it, carrying a QuantizedLinear's epilogue (the int8-input GEMVs of
// shaders/gemv_i8_common.wgsl, the universal GEMV's `finish`, shaders/universal_gemv_finish.wgsl, the
// deterministic GEMV, shaders/lattice_gemv.wgsl, and the weight-only GEMV, shaders/weightonly_gemv.wgsl):
// host side `resolveGemvOutput` (src/gpu/kernels/gemvCall.ts), appended after shaders/f16_convert.wgsl
// (`GEMV_OUTPUT_WGSL`). A library for a kernel that declares
// `params` (GEMV_OUTPUT_MEMBERS of src/gpu/kernels/gemvCall.ts: has_bias, bias_format, output_f16,
// accumulate), `bias: array<u32>` (f32 bits, or f16 or bf16 halves) and `y: array<atomic<u32>>`.

// Element `at` of the bias — an f32 index, or a half index when params.bias_format is 1 (f16, widened
// by f16_value) or 2 (bf16: the top half of an f32, so widened by a shift): exactly on every GPU.
fn bias_value(at: u32) -> f32 {
  if (params.bias_format == 0u) {
    return bitcast<f32>(bias[at]);
  }
  let half_bits = (bias[at >> 1u] >> ((at & 1u) * 16u)) & 0xffffu;
  if (params.bias_format == 1u) {
    return f16_value(half_bits);
  }
  return bitcast<f32>(half_bits << 16u);
}

// Writes Y's element `at` — an f32 index, or a half index when params.output_f16 is set — as `value`
// plus the bias's element bias_at when params.has_bias is set, plus Y's old value there when params.accumulate is
// set (a residual connection: the element is read and written by this invocation alone, so no other
// order exists; an f16 old value is widened and the f32 sum rounded once): the epilogue of a
// QuantizedLinear, done by the kernel that produces Y rather than in a pass of its own. f32 goes in as its bits; f16 (rounded
// by f16_bits of shaders/f16_convert.wgsl, as the epilogue kernel of activation_io.wgsl does, so no
// 'shader-f16' is needed, and overflow, NaN and subnormals are written as the CPU writes them) goes into its half of a word with two atomics, clearing then setting its 16 bits: the invocation
// that owns the other half (another column, another right-hand side, or a value outside Y) may write
// it at the same time, and either order leaves both halves right.
fn store_output(at: u32, bias_at: u32, value: f32) {
  var v = value;
  if (params.has_bias != 0u) {
    v = v + bias_value(bias_at);
  }
  if (params.output_f16 == 0u) {
    if (params.accumulate != 0u) {
      v = v + bitcast<f32>(atomicLoad(&y[at]));
    }
    atomicStore(&y[at], bitcast<u32>(v));
    return;
  }
  let shift = (at & 1u) * 16u;
  if (params.accumulate != 0u) {
    // Only this half: the other may be written meanwhile by the invocation that owns it.
    v = v + f16_value(atomicLoad(&y[at >> 1u]) >> shift);
  }
  let half_bits = f16_bits(v);
  atomicAnd(&y[at >> 1u], ~(0xffffu << shift));
  atomicOr(&y[at >> 1u], half_bits << shift);
}
