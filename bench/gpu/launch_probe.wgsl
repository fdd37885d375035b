// The benchmark's launch probe (bench/gpu/hostCases.ts, the dispatch chain rows): a dispatch that
// reads and writes no memory, so that the WebGPU implementation needs no barrier before it. A chain of
// them times what launching workgroups costs alone, against the chains of dependent dispatches.
@compute @workgroup_size(64)
fn main() {}
