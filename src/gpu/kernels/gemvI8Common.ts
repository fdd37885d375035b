import commonSource from '../../../shaders/gemv_i8_common.wgsl?raw';
import outputSource from '../../../shaders/gemv_output.wgsl?raw';

/*
 * The host side of shaders/gemv_i8_common.wgsl, the streaming loop of both int8-input GEMVs
 * (universalGemvI8.ts, latticeGemvI8.ts): how many columns a lane serves, hence a workgroup.
 */

/** Columns per lane: x̂ of a group is loaded once for all of them (see the shader's header). */
const LANE_COLUMNS = 2;

/** Columns per workgroup: 8 slots of 32 lanes (shaders/universal_gemv_lanes.wgsl), LANE_COLUMNS columns each. */
export const I8_WORKGROUP_COLUMNS = 8 * LANE_COLUMNS;

/** shaders/gemv_i8_common.wgsl with its generated constant, and shaders/gemv_output.wgsl (`store_output`). */
export function gemvI8CommonWgsl(): string {
  return `const LANE_COLUMNS: u32 = ${LANE_COLUMNS}u;\n${commonSource}\n${outputSource}`;
}
