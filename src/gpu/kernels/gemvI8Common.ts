import commonSource from '../../../shaders/gemv_i8_common.wgsl?raw';
import { check } from '../../errors.js';
import { checkBufferRange } from '../bufferRange.js';
import { STORAGE_USAGE } from '../buffers.js';
import { windowBinding } from '../pipelines.js';
import type { GpuScratch } from '../scratch.js';
import { bindingWindow, halfWindow } from '../workSplit.js';
import type { ActivationFormat } from './activationIo.js';

/*
 * The host side of shaders/gemv_i8_common.wgsl, the streaming loop of both int8-input GEMVs
 * (universalGemvI8.ts, latticeGemvI8.ts): how many columns a lane serves, hence a workgroup, and the
 * output (`store_output`: f32 or f16, bias) both kernels write.
 */

/** Columns per lane: x̂ of a group is loaded once for all of them (see the shader's header). */
const LANE_COLUMNS = 2;

/** Columns per workgroup: 8 slots of 32 lanes (shaders/universal_gemv_lanes.wgsl), LANE_COLUMNS columns each. */
export const I8_WORKGROUP_COLUMNS = 8 * LANE_COLUMNS;

/** shaders/gemv_i8_common.wgsl with its generated constant. */
export function gemvI8CommonWgsl(): string {
  return `const LANE_COLUMNS: u32 = ${LANE_COLUMNS}u;\n${commonSource}`;
}

/** What the int8-input GEMVs write: Y as f32 or f16, with a bias added (a QuantizedLinear's epilogue, done in the GEMV's own pass). */
export interface I8OutputArgs {
  /** b: one f32 per column of W (output), added to every right-hand side's output; omitted or null: none. */
  readonly bias?: GPUBuffer | null;
  /** Byte offset of b (a multiple of 4). */
  readonly biasOffset?: number;
  /**
   * Y's format: 'f32' (default) or 'f16' (rounded to nearest even, as `float16Bits`; written as halves
   * of u32 words, so no 'shader-f16' is needed; `yOffset` a multiple of 2).
   */
  readonly outputFormat?: ActivationFormat;
}

/** The output of a call, resolved once: the bias binding and the Y window of each range of right-hand sides. */
export interface I8Output {
  readonly hasBias: boolean;
  readonly f16: boolean;
  /** The bias binding (a 4-byte placeholder without bias) and the element of b[0] in it. */
  readonly bias: GPUBufferBinding;
  readonly biasFirst: number;
  /** Y of right-hand sides [first, first + count): the binding and the element (f32) or half (f16) index of Y[0, first] in it. */
  yWindow(first: number, count: number): { readonly binding: GPUBufferBinding; readonly first: number };
}

/** The checked output format of a call (first, so that `beginGemv` checks Y with its element size). */
export function i8OutputFormat(args: I8OutputArgs, what: string): ActivationFormat {
  const format = args.outputFormat ?? 'f32';
  check(format === 'f32' || format === 'f16', () => `${what}: outputFormat must be 'f32' or 'f16', got ${String(format)}`);
  return format;
}

/**
 * Checks the output arguments of an int8-input GEMV and resolves them (Y of `cols` × rhs elements: its
 * range and offset are `beginGemv`'s checks, with `yBytes: activationBytes(format)`).
 */
export function resolveI8Output(device: GPUDevice, scratch: GpuScratch, args: I8OutputArgs & { readonly y: GPUBuffer; readonly yOffset?: number }, format: ActivationFormat, cols: number, what: string): I8Output {
  const f16 = format === 'f16';
  const yOffset = args.yOffset ?? 0;
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const bias = args.bias ?? null;
  let biasBinding: GPUBufferBinding = { buffer: scratch.buffer(`${what}: no bias`, 4, STORAGE_USAGE) };
  let biasFirst = 0;
  if (bias !== null) {
    checkBufferRange(bias, args.biasOffset ?? 0, 4 * cols, `${what}: bias`);
    check(bias !== args.y, `${what}: bias and y must be different buffers`);
    const window = bindingWindow(args.biasOffset ?? 0, 4 * cols, alignment);
    biasBinding = windowBinding(bias, window);
    biasFirst = window.firstElement;
  }
  return {
    hasBias: bias !== null,
    f16,
    bias: biasBinding,
    biasFirst,
    yWindow(first, count) {
      if (f16) {
        const { window, firstHalf } = halfWindow(yOffset + 2 * cols * first, 2 * cols * count, alignment);
        return { binding: windowBinding(args.y, window), first: firstHalf };
      }
      const window = bindingWindow(yOffset + 4 * cols * first, 4 * cols * count, alignment);
      return { binding: windowBinding(args.y, window), first: window.firstElement };
    },
  };
}
