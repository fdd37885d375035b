// 6·k of a 2-bit scale index (0…3): the integer cubic through a deterministic scheme's (at most 4)
// multiples, 6k(i) = x + y·i + z·i² + w·i³ with the coefficients of `multipleCubic`
// (src/gpu/kernels/latticeGemvI8.ts), in Horner form: three integer multiply-adds, which an NVIDIA GPU
// runs on its FMA pipe, instead of a table lookup. Compiled after a kernel's params struct with the
// member `multiple_cubic: array<vec4<i32>, 1>` (shaders/d3_scale_per_block.wgsl's int8-input D3 GEMV
// and shaders/e8_residue_gemv_i8.wgsl).
fn multiple_cubic(index: u32) -> i32 {
  let i = i32(index);
  let c = params.multiple_cubic[0];
  return ((c.w * i + c.z) * i + c.y) * i + c.x;
}
