import tailSource from '../../../shaders/gemv_nonfinite_tail.wgsl?raw';
import { check, checkPositiveInteger } from '../../errors.js';
import type { Matrix } from '../../matrix.js';
import { checkBufferRange } from '../bufferRange.js';
import { columnRanges } from '../latticeOperand.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { bindingCap, bindingWindow, itemsPerBinding, valuesWindow } from '../workSplit.js';
import { activationBytes, type ActivationFormat } from './activationIo.js';

/*
 * The check that keeps a GEMV of an unrotated, time-shared W (0 past keptLength) from a silently
 * finite answer: Y of the right-hand sides whose x has a NaN or ±Infinity past keptLength set to NaN
 * (shaders/gemv_nonfinite_tail.wgsl), recorded after the GEMV by `beginGemv`'s call. CPU twin:
 * `nonFiniteTailReference`.
 */

const Params = /*#__PURE__*/ new UniformLayout('NonFiniteTailParams', {
  rows: 'u32', // n: entries of one right-hand side of x
  kept: 'u32', // keptLength: the GEMV read x up to here
  cols: 'u32', // outputs per right-hand side
  x_first: 'u32', // element of x[0, first right-hand side] in its binding
  y_first: 'u32', // element (f32) or half (f16) of Y[0, first right-hand side] in its binding
  output_f16: 'u32',
});

/** The WGSL of the check: its uniform struct, then shaders/gemv_nonfinite_tail.wgsl. */
export function nonFiniteTailShaderSource(): string {
  return `${Params.wgsl()}\n${tailSource}`;
}

const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'gemv non-finite tail',
  bindings: ['uniform', 'read-only-storage', 'storage'],
  compile: (device, pipelineLayout) => createKernelPipeline(device, pipelineLayout, { label: 'gemv non-finite tail', code: nonFiniteTailShaderSource() }),
});

/** Arguments of {@link dispatchNonFiniteTail}. Offsets are in bytes. */
export interface NonFiniteTailArgs {
  /** x: rows × rhs column-major f32 (read; offset a multiple of 4). */
  readonly x: GPUBuffer;
  readonly xOffset?: number;
  readonly rows: number;
  /** keptLength: entries [kept, rows) of each right-hand side are checked. */
  readonly kept: number;
  readonly rhs: number;
  /** Y: cols × rhs column-major in `outputFormat` (written by the GEMV before; offset a multiple of 4 for f32, 2 for f16). */
  readonly y: GPUBuffer;
  readonly yOffset?: number;
  readonly cols: number;
  readonly outputFormat?: ActivationFormat;
  /** Largest storage binding to use, in bytes (default: the device's limit; tests pass less to exercise splitting). */
  readonly maxBindingBytes?: number;
}

/**
 * Records the check: each right-hand side r whose x has a non-finite entry in rows [kept, rows) gets
 * Y[·, r] = NaN; other outputs keep their bits. Nothing is recorded when kept = rows.
 *
 * @example
 * dispatchUniversalGemv(device, encoder, scratch, { w, x, y, rhs: 1 }); // W unrotated, keptLength < rows
 * dispatchNonFiniteTail(device, encoder, scratch, { x, rows: w.rows, kept: w.keptLength, rhs: 1, y, cols: w.cols });
 */
export function dispatchNonFiniteTail(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: NonFiniteTailArgs): void {
  const what = 'gemv non-finite tail';
  const { rows, kept, rhs, cols } = args;
  for (const [value, name] of [[rows, 'rows'], [rhs, 'rhs'], [cols, 'cols']] as const) checkPositiveInteger(value, `${what}: ${name}`);
  check(Number.isInteger(kept) && kept >= 0 && kept <= rows, () => `${what}: kept must be an integer in [0, rows = ${rows}], got ${kept}`);
  const format = args.outputFormat ?? 'f32';
  const yBytes = activationBytes(format);
  const xOffset = args.xOffset ?? 0;
  const yOffset = args.yOffset ?? 0;
  checkBufferRange(args.x, xOffset, 4 * rows * rhs, `${what}: x`);
  checkBufferRange(args.y, yOffset, yBytes * cols * rhs, `${what}: y`, yBytes);
  check(args.x !== args.y, `${what}: x and y must be different buffers`);
  if (kept === rows) return;
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = bindingCap(device, args.maxBindingBytes, what);
  // One workgroup per right-hand side; a range's x and Y each fit one binding (Y counted as f32, which
  // leaves room for the whole words around f16 halves, as beginGemv counts it).
  const perDispatch = Math.min(itemsPerBinding(4 * rows, maxBinding, alignment), itemsPerBinding(4 * cols, maxBinding, alignment), device.limits.maxComputeWorkgroupsPerDimension);
  const { layout, pipeline } = pipelines.get(device);
  const pass = encoder.beginComputePass({ label: what });
  pass.setPipeline(pipeline);
  for (const range of columnRanges(rhs, perDispatch)) {
    const xWindow = bindingWindow(xOffset + 4 * rows * range.first, 4 * rows * range.count, alignment);
    const yWindow = valuesWindow(yOffset + yBytes * cols * range.first, cols * range.count, yBytes, alignment);
    const params = scratch.uniform(`${what} params`, Params.pack({ rows, kept, cols, x_first: xWindow.firstElement, y_first: yWindow.firstElement, output_f16: format === 'f16' ? 1 : 0 }));
    pass.setBindGroup(0, createKernelBindGroup(device, layout, `${what}: right-hand sides ${range.first}…${range.first + range.count - 1}`, [{ buffer: params }, windowBinding(args.x, xWindow), windowBinding(args.y, yWindow)]));
    pass.dispatchWorkgroups(range.count);
  }
  pass.end();
}

/**
 * CPU twin: Y (cols × rhs) with the columns of the right-hand sides whose x (rows × rhs) has a NaN
 * or ±Infinity in rows [kept, rows) set to NaN.
 */
export function nonFiniteTailReference(x: Matrix, kept: number, y: Matrix): Matrix {
  check(x.cols === y.cols, () => `nonFiniteTailReference: x has ${x.cols} right-hand sides, y ${y.cols}`);
  const data = Float32Array.from(y.data);
  for (let r = 0; r < x.cols; r++) {
    const tail = x.data.subarray(r * x.rows + kept, (r + 1) * x.rows);
    if (tail.every((v) => Number.isFinite(v))) continue;
    data.fill(NaN, r * y.rows, (r + 1) * y.rows);
  }
  return { rows: y.rows, cols: y.cols, data };
}
