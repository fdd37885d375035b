// The loop of the quad GEMVs (shaders/e8_residue_gemv_i8.wgsl, shaders/e8_point_gemv_i8.wgsl,
// shaders/d3_quad_gemv_i8.wgsl): int8-input GEMVs whose weights were laid out at upload in whole quads
// per column, so that lane l of a column reads quads l, l + 32, … of it with nothing to align.
//
// Layout. A workgroup's 256 invocations are 8 column slots of 32 lanes, each lane serving LANE_COLUMNS
// = 2 columns (slot s: columns s and s + 8 of the workgroup's 16). Lane l reads quads l and l + 32,
// then l + 64 and l + 96, … of its columns: STEP_QUADS quads of each column are loaded before any is
// used (2, so that a lane keeps 4 quads of weights in flight: shaders/gemv_i8_common.wgsl says why; 1
// with a tile of right-hand sides, where each quad already carries 8× the work). A quad is decoded
// once per column for every right-hand side of the tile, and x̂ of a quad is loaded once per
// right-hand side for both columns. Columns are padded to whole quads with blocks that add nothing
// (the origin, or zero points) and x̂ past keptLength is 0, so no test but the column's.
//
// A library compiled after the kernel's file, which defines `params` (cols, quads, rhs, …) and:
//   begin_workgroup(thread)                       before anything else (the D3 quad GEMV fills its table);
//   ColumnState, column_state(column, lane)       what a lane keeps per column (the E8 points' dither
//                                                 keys), for a column below params.cols;
//   QuadWords, load_quad(column, k)               quad k of local column `column` as loaded: loads
//                                                 only, unconditional, at indices clamped to the
//                                                 bindings (a quad past the column or a column past
//                                                 params.cols reads words whose sums are dropped);
//   QuadDecoded, decode_quad(words, state, k)     what the quad's sums need of it for every
//                                                 right-hand side;
//   QuadInputs, quad_inputs(at)                   x̂ of quad at = rhs·params.quads + k;
//   STAGED_INPUTS, stage_inputs(r0, base, thread), step_inputs(r, k, local)
//                                                 x̂ of quad k (local = k − base within the step) for
//                                                 right-hand side r: shaders/quad_inputs_direct.wgsl
//                                                 reads it with quad_inputs; the D3 quad GEMV stages a
//                                                 step's x̂ in workgroup memory first (STAGED_INPUTS:
//                                                 a barrier before and after each step);
//   quad_sum(decoded, inputs) -> f32              the quad's sum for one right-hand side;
//   write_totals(column, totals, r0, poison)      the column's outputs.

const LANE_COLUMNS: u32 = 2u;
const WORKGROUP_COLUMNS: u32 = COLUMNS * LANE_COLUMNS;
// Quads of each column a lane loads before using any (see above).
const STEP_QUADS: u32 = select(2u, 1u, RHS_TILE > 1u);

// `width` and `poison`: see shaders/universal_gemv_lanes.wgsl.
fn gemv(group_x: u32, thread: u32, width: u32, poison: bool) {
  begin_workgroup(thread);
  let lane = thread % LANES;
  let slot = thread / LANES;
  var columns = array<u32, LANE_COLUMNS>();
  var states = array<ColumnState, LANE_COLUMNS>();
  for (var c = 0u; c < LANE_COLUMNS; c = c + 1u) {
    columns[c] = group_x * WORKGROUP_COLUMNS + c * COLUMNS + slot;
    if (columns[c] < params.cols) {
      states[c] = column_state(columns[c], lane);
    }
  }
  for (var r0 = 0u; r0 < params.rhs; r0 = r0 + RHS_TILE) {
    var acc = array<array<f32, RHS_TILE>, LANE_COLUMNS>();
    // Steps of LANES·STEP_QUADS quads from `base`, the same for the whole workgroup (the barriers of
    // staged inputs need it); lane l takes quads base + l, base + l + 32, …
    for (var base = 0u; base < params.quads; base = base + LANES * STEP_QUADS) {
      if (STAGED_INPUTS) {
        stage_inputs(r0, base, thread);
        workgroupBarrier();
      }
      // Column 0 of a slot is the first to run past params.cols.
      if (columns[0] < params.cols) {
        let k0 = base + lane;
        // The step's quads of both columns first (LANE_COLUMNS·STEP_QUADS quads in flight), then each
        // quad's x̂ once for both columns; the loads are unconditional, so that none waits for another
        // (shaders/gemv_i8_common.wgsl says why).
        var words = array<array<QuadWords, STEP_QUADS>, LANE_COLUMNS>();
        for (var s = 0u; s < STEP_QUADS; s = s + 1u) {
          for (var c = 0u; c < LANE_COLUMNS; c = c + 1u) {
            words[c][s] = load_quad(columns[c], k0 + s * LANES);
          }
        }
        // Branch-free: a quad past the column is summed with the x̂ of the column's last quad and
        // dropped by a select, and a column past params.cols is summed and never written, so that the
        // step has no branch for a compiler to sink the loads above into.
        for (var s = 0u; s < STEP_QUADS; s = s + 1u) {
          let k = k0 + s * LANES;
          let inside = k < params.quads;
          let kx = min(k, params.quads - 1u);
          var decoded = array<QuadDecoded, LANE_COLUMNS>();
          for (var c = 0u; c < LANE_COLUMNS; c = c + 1u) {
            decoded[c] = decode_quad(words[c][s], states[c], k);
          }
          for (var r = 0u; r < RHS_TILE; r = r + 1u) {
            if (RHS_TILE == 1u || r0 + r < params.rhs) {
              let inputs = step_inputs(r0 + r, kx, kx - base);
              for (var c = 0u; c < LANE_COLUMNS; c = c + 1u) {
                acc[c][r] = acc[c][r] + select(0.0, quad_sum(decoded[c], inputs), inside);
              }
            }
          }
        }
      }
      if (STAGED_INPUTS) {
        workgroupBarrier();
      }
    }
    for (var c = 0u; c < LANE_COLUMNS; c = c + 1u) {
      let totals = column_totals(acc[c], thread, lane, width);
      if (columns[c] < params.cols && lane == 0u) {
        write_totals(columns[c], totals, r0, poison);
      }
    }
  }
}
