// The sum of THREADS partial sums in workgroup memory, in one fixed order, for the per-call sums of
// the universal GEMV (`call_sums`, shaders/universal_gemv_finish.wgsl, and the fused product's
// `tile_dither_sums`, shaders/universal_gemv_finished.wgsl): both add the same partials in this order,
// so the same bits. Three barriers for any number of regions, where a tree takes log2(THREADS) = 8
// (llvmpipe's compile time grows with every barrier). A library for a module that declares
// `partials: array<f32, ≥ regions·THREADS>` and THREADS = 256.

const PARTIAL_SEGMENT: u32 = 16u;   // THREADS / PARTIAL_SEGMENT = 16 segments per region

// Region g holds partials[g·THREADS + t], t < THREADS. Leaves its sum in partials[g·THREADS]:
// segment sums left to right (s = 0, then + each of 16 partials), then the 16 segment sums left to
// right. Call in uniform control flow once every invocation has written its partials; ends with a
// barrier. `regions` ≤ 16.
fn sum_partials(regions: u32, thread: u32) {
  workgroupBarrier();
  if (thread < regions * (THREADS / PARTIAL_SEGMENT)) {
    let region = thread / (THREADS / PARTIAL_SEGMENT);
    let base = region * THREADS + (thread % (THREADS / PARTIAL_SEGMENT)) * PARTIAL_SEGMENT;
    var s = 0.0;
    for (var k = 0u; k < PARTIAL_SEGMENT; k = k + 1u) {
      s = s + partials[base + k];
    }
    partials[base] = s;
  }
  workgroupBarrier();
  if (thread < regions) {
    let base = thread * THREADS;
    var s = 0.0;
    for (var k = 0u; k < THREADS / PARTIAL_SEGMENT; k = k + 1u) {
      s = s + partials[base + k * PARTIAL_SEGMENT];
    }
    partials[base] = s;
  }
  workgroupBarrier();
}
