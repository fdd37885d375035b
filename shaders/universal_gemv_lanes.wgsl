// The lanes-per-column layout shared by the universal GEMV kernels (shaders/universal_gemv.wgsl and
// shaders/universal_gemv_i8.wgsl): a workgroup of THREADS = 256 invocations owns COLUMNS = 8 columns,
// the LANES = 32 consecutive invocations of a column each sum part of it, and `column_totals` adds
// those 32 partial sums. Both kernels end in one entry file (universal_gemv_plain.wgsl or
// universal_gemv_subgroup.wgsl), which defines `main` and `subgroup_partial_sum` and calls the
// kernel's `gemv(group_x, thread, width, poison)`.
//
// A library, compiled after the constant RHS_TILE, in front of the kernel.

const THREADS: u32 = 256u;
const LANES: u32 = 32u;                  // invocations per column
const COLUMNS: u32 = THREADS / LANES;    // columns per workgroup
// What test mode 2 writes when the subgroup path did not run (a finite value no test produces).
const POISON: f32 = 1.0e30;

var<workgroup> partials: array<f32, RHS_TILE * THREADS>;
// Subgroup variant: invocations whose subgroup is not the expected block vote here.
var<workgroup> layout_votes: atomic<u32>;
var<workgroup> shared_width: u32;

// The column's totals over its 32 lanes (valid at lane 0), per right-hand side of the tile.
// `subgroup_partial_sum` first adds the lanes of each aligned group of `width` lanes (subgroup
// shuffles; width = 1 in the plain variant), then a tree in workgroup memory adds the groups (no tree
// when width = 32). Runs in uniform control flow (`width` is workgroup-uniform).
fn column_totals(acc: array<f32, RHS_TILE>, thread: u32, lane: u32, width: u32) -> array<f32, RHS_TILE> {
  var totals = array<f32, RHS_TILE>();
  for (var r = 0u; r < RHS_TILE; r = r + 1u) {
    totals[r] = subgroup_partial_sum(acc[r], width);
  }
  if (width < LANES) {
    for (var r = 0u; r < RHS_TILE; r = r + 1u) {
      partials[r * THREADS + thread] = totals[r];
    }
    workgroupBarrier();
    for (var h = width; h < LANES; h = h << 1u) {
      if ((lane & (2u * h - 1u)) == 0u) {
        for (var r = 0u; r < RHS_TILE; r = r + 1u) {
          partials[r * THREADS + thread] = partials[r * THREADS + thread] + partials[r * THREADS + thread + h];
        }
      }
      workgroupBarrier();
    }
    // Lane 0 reads back its own slots only, which no invocation writes before the next tile's
    // barrier: no barrier needed before the next tile.
    for (var r = 0u; r < RHS_TILE; r = r + 1u) {
      totals[r] = partials[r * THREADS + thread];
    }
  }
  return totals;
}
