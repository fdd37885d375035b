import reduceSource from '../../../shaders/column_gemv_reduce.wgsl?raw';
import plainEntrySource from '../../../shaders/column_gemv_plain.wgsl?raw';
import subgroupEntrySource from '../../../shaders/column_gemv_subgroup.wgsl?raw';
import { check } from '../../errors.js';
import { firstNonFinite } from '../../matrix.js';

/*
 * What the column GEMV baselines (f32Gemv.ts, f16Gemv.ts, int4Gemv.ts) share: 8 output columns per
 * workgroup of 256 invocations, each invocation's 8 column sums added by
 * shaders/column_gemv_reduce.wgsl and one of two entry files (subgroup shuffles where the device has
 * 'subgroups', a workgroup-memory tree otherwise; both of depth 8, so the error bounds are the same).
 */

/** Output columns per workgroup of every column GEMV (the shaders' COLUMNS). */
export const COLUMN_GEMV_COLUMNS = 8;

/** Levels of additions in the workgroup reduction (log2 of the 256 invocations), whatever the path. */
export const COLUMN_GEMV_REDUCTION_DEPTH = 8;

/** How a column GEMV reduces; the defaults suit every device. */
export interface ColumnGemvOptions {
  /**
   * Add lanes with subgroup shuffles. Default: whenever the device has 'subgroups'; `false` forces the
   * workgroup-memory tree; `true` on a device without the feature is an error.
   */
  readonly subgroups?: boolean;
  /**
   * Tests only, subgroup variant: 'fallback' runs as if subgroups were not blocks of consecutive
   * invocations (the plain tree); 'require-shuffles' makes that fallback store 1e30·256, so a result
   * equal to the CPU's shows that the shuffles ran.
   */
  readonly subgroupTestMode?: 'fallback' | 'require-shuffles';
}

/** The `subgroup_mode` uniform of a column GEMV. */
export function columnGemvSubgroupMode(options: ColumnGemvOptions): number {
  return options.subgroupTestMode === 'fallback' ? 1 : options.subgroupTestMode === 'require-shuffles' ? 2 : 0;
}

/** Whether a call uses the subgroup variant (checks the options against the device). */
export function columnGemvUsesSubgroups(device: GPUDevice, options: ColumnGemvOptions, kernel: string): boolean {
  const available = device.features.has('subgroups');
  const subgroups = options.subgroups ?? available;
  check(!subgroups || available, () => `${kernel}: subgroups: true needs a device with the 'subgroups' feature, which this one lacks`);
  check(
    options.subgroupTestMode === undefined || subgroups,
    () => `${kernel}: subgroupTestMode applies to the subgroup variant; this call runs without subgroups`,
  );
  return subgroups;
}

/**
 * A column GEMV module: `enable` directives (subgroups when used, plus `extra`), the kernel's header
 * (its params struct and prefix), the kernel file, the shared reduction and the entry file.
 *
 * @example
 * columnGemvSource({ subgroups: true, enables: ['f16'], header: Params.wgsl(), kernel: f16Source });
 */
export function columnGemvSource(parts: { subgroups: boolean; enables?: readonly string[]; header: string; kernel: string }): string {
  const enables = [...(parts.enables ?? []), ...(parts.subgroups ? ['subgroups'] : [])].map((name) => `enable ${name};`);
  return [...enables, parts.header, parts.kernel, reduceSource, parts.subgroups ? subgroupEntrySource : plainEntrySource].join('\n');
}

/** The CPU vector of a column GEMV's host entry point: a Float32Array of `rows` finite entries. */
export function checkGemvVector(x: Float32Array, rows: number, kernel: string): void {
  check(x instanceof Float32Array, () => `${kernel}: x must be a Float32Array`);
  check(x.length === rows, () => `${kernel}: x has ${x.length} entries, W has ${rows} rows`);
  const bad = firstNonFinite(x);
  check(bad < 0, () => `${kernel}: x has a non-finite entry ${x[bad]} at index ${bad}`);
}
