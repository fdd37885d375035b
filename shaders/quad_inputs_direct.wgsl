// The quad GEMV loop's input hooks (shaders/quad_gemv_loop.wgsl) for a kernel that reads x̂ straight
// from its binding (the E8 residue and point GEMVs): nothing staged, quad_inputs per quad.

const STAGED_INPUTS: bool = false;

fn stage_inputs(r0: u32, base: u32, thread: u32) {}

fn step_inputs(r: u32, k: u32, local: u32) -> QuadInputs {
  return quad_inputs(r * params.quads + k);
}
