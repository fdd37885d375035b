import reduceSource from '../../../shaders/column_gemv_reduce.wgsl?raw';
import plainEntrySource from '../../../shaders/column_gemv_plain.wgsl?raw';
import subgroupEntrySource from '../../../shaders/column_gemv_subgroup.wgsl?raw';
import { check, checkOneOf } from '../../errors.js';
import { checkOptionalBoolean } from '../../quantize/strictOptions.js';
import { firstNonFinite } from '../../matrix.js';
import { createKernelBindGroup, windowBinding } from '../pipelines.js';
import type { GpuScratch } from '../scratch.js';
import type { UniformPacker } from '../uniforms.js';
import { bindingCap, bindingWindow, type BindingWindow, itemsPerBinding, workgroupGrid } from '../workSplit.js';

/*
 * What the column GEMV baselines (f32Gemv.ts, f16Gemv.ts, int4Gemv.ts) share: 8 output columns per
 * workgroup of 256 invocations, each invocation's 8 column sums added by
 * shaders/column_gemv_reduce.wgsl and one of two entry files (subgroup shuffles where the device has
 * 'subgroups', a workgroup-memory tree otherwise; both of depth 8, so the error bounds are the same),
 * and `recordColumnGemv`, which splits the columns into chunks that fit a storage binding and records
 * them.
 */

/** Output columns per workgroup of every column GEMV (the shaders' COLUMNS). */
export const COLUMN_GEMV_COLUMNS = 8;

/** Levels of additions in the workgroup reduction (log2 of the 256 invocations), whatever the path. */
export const COLUMN_GEMV_REDUCTION_DEPTH = 8;

/** Invocations per workgroup of every column GEMV (the shaders' THREADS): each strides over a column's chunks by this. */
export const COLUMN_GEMV_THREADS = 2 ** COLUMN_GEMV_REDUCTION_DEPTH;

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
  readonly subgroupTestMode?: (typeof SUBGROUP_TEST_MODES)[number];
}

/** The values of `ColumnGemvOptions.subgroupTestMode`. */
const SUBGROUP_TEST_MODES = ['fallback', 'require-shuffles'] as const;

/** The `subgroup_mode` uniform of a column GEMV. */
export function columnGemvSubgroupMode(options: ColumnGemvOptions): number {
  return options.subgroupTestMode === 'fallback' ? 1 : options.subgroupTestMode === 'require-shuffles' ? 2 : 0;
}

/** Whether a call uses the subgroup variant (checks the options against the device). */
export function columnGemvUsesSubgroups(device: GPUDevice, options: ColumnGemvOptions, kernel: string): boolean {
  const available = device.features.has('subgroups');
  // Not coerced: `subgroups: 'yes'` (or 0) must not pick a variant by its truthiness.
  const subgroups = checkOptionalBoolean(options.subgroups, `${kernel}: subgroups`) ?? available;
  if (options.subgroupTestMode !== undefined) checkOneOf(options.subgroupTestMode, SUBGROUP_TEST_MODES, `${kernel}: subgroupTestMode`);
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

/** A per-column weight stream of a column GEMV: `bytesPerColumn` bytes per column from byte `offset`. */
export interface ColumnStream {
  readonly buffer: GPUBuffer;
  readonly offset: number;
  readonly bytesPerColumn: number;
}

/** One column GEMV call for {@link recordColumnGemv}. Offsets are in bytes. */
export interface ColumnGemvCall {
  /** The kernel's name in labels and errors ('f32 gemv'). */
  readonly kernel: string;
  readonly layout: GPUBindGroupLayout;
  readonly pipeline: GPUComputePipeline;
  readonly cols: number;
  /** The weight streams, bound in this order after the parameters (then x, then y). */
  readonly weights: readonly ColumnStream[];
  /** x: `bytes` from `offset`, one binding for every chunk of columns. */
  readonly x: { readonly buffer: GPUBuffer; readonly offset: number; readonly bytes: number };
  /** y: cols f32 from `offset`. */
  readonly y: { readonly buffer: GPUBuffer; readonly offset: number };
  readonly maxBindingBytes?: number;
  /** The uniforms of `cols` columns, given the windows of the weight streams, x and y of that chunk. */
  readonly params: (chunk: { readonly cols: number; readonly weights: readonly BindingWindow[]; readonly x: BindingWindow; readonly y: BindingWindow }) => UniformPacker;
}

/**
 * Records a column GEMV into one pass: columns split into chunks whose weight streams and y each fit a
 * storage binding (x must fit one), each chunk's parameters and bind group (params, weight streams, x,
 * y) and a dispatch of COLUMN_GEMV_COLUMNS columns per workgroup.
 */
export function recordColumnGemv(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, call: ColumnGemvCall): void {
  const { kernel, cols } = call;
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = bindingCap(device, call.maxBindingBytes, kernel);
  const xWindow = bindingWindow(call.x.offset, call.x.bytes, alignment);
  check(xWindow.size <= maxBinding, () => `${kernel}: x (${call.x.bytes / 4} f32) is larger than one storage binding (${maxBinding} bytes)`);
  const columnsPerChunk = call.weights.reduce((fewest, stream) => Math.min(fewest, itemsPerBinding(stream.bytesPerColumn, maxBinding, alignment)), itemsPerBinding(4, maxBinding, alignment));
  const pass = encoder.beginComputePass({ label: kernel });
  pass.setPipeline(call.pipeline);
  for (let j0 = 0; j0 < cols; j0 += columnsPerChunk) {
    const chunkCols = Math.min(columnsPerChunk, cols - j0);
    const weightWindows = call.weights.map((stream) => bindingWindow(stream.offset + stream.bytesPerColumn * j0, stream.bytesPerColumn * chunkCols, alignment));
    const yWindow = bindingWindow(call.y.offset + 4 * j0, 4 * chunkCols, alignment);
    const range = `columns ${j0}…${j0 + chunkCols - 1}`;
    const params = scratch.uniform(`${kernel} params (${range})`, call.params({ cols: chunkCols, weights: weightWindows, x: xWindow, y: yWindow }));
    pass.setBindGroup(
      0,
      createKernelBindGroup(device, call.layout, `${kernel} (${range})`, [
        { buffer: params },
        ...call.weights.map((stream, i) => windowBinding(stream.buffer, weightWindows[i] as BindingWindow)),
        windowBinding(call.x.buffer, xWindow),
        windowBinding(call.y.buffer, yWindow),
      ]),
    );
    const [gx, gy] = workgroupGrid(Math.ceil(chunkCols / COLUMN_GEMV_COLUMNS), device.limits.maxComputeWorkgroupsPerDimension);
    pass.dispatchWorkgroups(gx, gy);
  }
  pass.end();
}
