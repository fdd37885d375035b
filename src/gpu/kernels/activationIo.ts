import { checkOutputNotRead } from '../latticeOperand.js';
import { checkDispatch } from './dispatchChecks.js';
import { checkOptionsObject } from '../../quantize/strictOptions.js';
import ioSource from '../../../shaders/activation_io.wgsl?raw';
import f16ConvertSource from '../../../shaders/f16_convert.wgsl?raw';
import { check, checkPositiveInteger } from '../../errors.js';
import { checkBufferRange } from '../bufferRange.js';
import { BufferUsage } from '../buffers.js';
import { createKernelBindGroup, KernelPipelines, windowBinding } from '../pipelines.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { bindingCap, bindingWindow, itemsPerBinding, valuesWindow, workgroupGrid } from '../workSplit.js';

/*
 * Activation input and output for the decode path (shaders/activation_io.wgsl): f16 → f32 widening of
 * inputs and the epilogue y = t + b written as f32 or f16. f16 data are u32 words on the GPU, so these
 * run on every device (no 'shader-f16' feature needed).
 */

/** Invocations per workgroup of every entry of shaders/activation_io.wgsl. */
export const ACTIVATION_IO_THREADS = 256;

/** The element types of activations in GPU buffers. */
export const ACTIVATION_FORMATS = ['f32', 'f16'] as const;

/**
 * The element type of activations in GPU buffers.
 *
 * @useDeclaredType
 */
export type ActivationFormat = (typeof ACTIVATION_FORMATS)[number];

/** Bytes per element of an activation format. */
export function activationBytes(format: ActivationFormat): 2 | 4 {
  return format === 'f16' ? 2 : 4;
}

const Params = /*#__PURE__*/ new UniformLayout('ActivationIoParams', {
  count: 'u32', // elements
  rows: 'u32', // bias period (the output features)
  in_first: 'u32', // f16: half index of element 0 in its binding; f32: element index
  out_first: 'u32', // f32: element index; f16: half index (even)
  has_bias: 'u32',
});

const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'activation io',
  bindings: ['uniform', 'read-only-storage', 'read-only-storage', 'storage'],
  key: (entry: 'f16_to_f32' | 'epilogue_f32' | 'epilogue_f16') => entry,
  compile: (device, pipelineLayout, entry: 'f16_to_f32' | 'epilogue_f32' | 'epilogue_f16') => {
    const module = device.createShaderModule({ label: `activation io (${entry})`, code: `${Params.wgsl()}\n${f16ConvertSource}\n${ioSource}` });
    return device.createComputePipeline({ label: `activation io (${entry})`, layout: pipelineLayout, compute: { module, entryPoint: entry } });
  },
});

/** A placeholder storage buffer for an unused binding. */
function placeholder(scratch: GpuScratch): GPUBuffer {
  return scratch.buffer('activation io (no bias)', 4, BufferUsage.STORAGE);
}

/** Arguments of {@link dispatchF16ToF32}. Offsets in bytes. */
export interface F16ToF32Args {
  /** `count` f16 values (2 bytes each) from byte `inputOffset` (a multiple of 2). */
  readonly input: GPUBuffer;
  readonly inputOffset?: number;
  /** `count` f32 values written from byte `outputOffset` (a multiple of 4). */
  readonly output: GPUBuffer;
  readonly outputOffset?: number;
  readonly count: number;
  /**
   * Largest storage binding to use, in bytes (default and upper bound: the device's
   * `maxStorageBufferBindingSize`): tests set it small to make the conversion take several chunks.
   */
  readonly maxBindingBytes?: number;
}

const F16_TO_F32_ARG_KEYS = ['input', 'inputOffset', 'output', 'outputOffset', 'count', 'maxBindingBytes'] as const satisfies readonly (keyof F16ToF32Args)[];

/**
 * Records the exact widening of `count` f16 values to f32. The values are converted a chunk at a time
 * when the f16 input or the f32 output is larger than one storage binding (each chunk binds a window of
 * both), and each chunk's workgroups are laid out on a 2-D grid: any count whose buffers the device can
 * create works, with the same bits as one dispatch.
 *
 * @example
 * dispatchF16ToF32(device, encoder, scratch, { input: xHalf, output: xFloat, count: n });
 */
export function dispatchF16ToF32(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: F16ToF32Args): void {
  checkDispatch(device, encoder, scratch, args, 'dispatchF16ToF32');
  checkOptionsObject(args, F16_TO_F32_ARG_KEYS, 'dispatchF16ToF32 arguments');
  checkPositiveInteger(args.count, 'f16 → f32 count');
  const inputOffset = args.inputOffset ?? 0;
  const outputOffset = args.outputOffset ?? 0;
  checkBufferRange(args.input, inputOffset, 2 * args.count, 'f16 → f32 input', 2);
  checkBufferRange(args.output, outputOffset, 4 * args.count, 'f16 → f32 output');
  // One buffer bound as read and as written in a dispatch is a WebGPU validation error, even for disjoint ranges.
  checkOutputNotRead(args.output, [['the input', args.input]], 'f16 → f32 output');
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = bindingCap(device, args.maxBindingBytes, 'f16 → f32');
  const maxGroups = device.limits.maxComputeWorkgroupsPerDimension;
  // The f32 output window (4 bytes per value plus the alignment slack) is the larger of the two: a
  // chunk whose output fits also has an f16 window that fits (at most 2·count + 4 bytes of halves in
  // whole words, plus the same slack). The grid caps a chunk at maxGroups² workgroups.
  const perChunk = Math.min(itemsPerBinding(4, maxBinding, alignment), maxGroups * maxGroups * ACTIVATION_IO_THREADS);
  const { layout, pipeline } = pipelines.get(device, 'f16_to_f32');
  const unusedBias = placeholder(scratch);
  const pass = encoder.beginComputePass({ label: 'f16 → f32' });
  pass.setPipeline(pipeline);
  for (let first = 0; first < args.count; first += perChunk) {
    const count = Math.min(perChunk, args.count - first);
    const input = valuesWindow(inputOffset + 2 * first, count, 2, alignment);
    const outWindow = bindingWindow(outputOffset + 4 * first, 4 * count, alignment);
    check(input.size <= maxBinding && outWindow.size <= maxBinding, () => `f16 → f32: a chunk of ${count} values does not fit a storage binding of ${maxBinding} bytes`);
    const label = count === args.count ? 'f16 → f32' : `f16 → f32 (values ${first}…${first + count - 1})`;
    const params = Params.pack({ count, rows: 1, in_first: input.firstElement, out_first: outWindow.firstElement, has_bias: 0 });
    pass.setBindGroup(0, createKernelBindGroup(device, layout, label, [
      { buffer: scratch.uniform(label, params) },
      windowBinding(args.input, input),
      { buffer: unusedBias },
      windowBinding(args.output, outWindow),
    ]));
    const [x, y] = workgroupGrid(Math.ceil(count / ACTIVATION_IO_THREADS), maxGroups);
    pass.dispatchWorkgroups(x, y);
  }
  pass.end();
}

/** Arguments of {@link dispatchEpilogue}. Offsets in bytes. */
export interface EpilogueArgs {
  /** t: `rows × columns` f32 from byte `inputOffset`. */
  readonly input: GPUBuffer;
  readonly inputOffset?: number;
  /** b: `rows` f32 added to every column, or null. */
  readonly bias: GPUBuffer | null;
  /** Byte offset of b (a multiple of the storage offset alignment); refused without a bias. */
  readonly biasOffset?: number;
  readonly rows: number;
  readonly columns: number;
  /** y = t + b in `format`, from byte `outputOffset` (a multiple of 4). */
  readonly output: GPUBuffer;
  readonly outputOffset?: number;
  readonly format: ActivationFormat;
}

const EPILOGUE_ARG_KEYS = ['input', 'inputOffset', 'bias', 'biasOffset', 'rows', 'columns', 'output', 'outputOffset', 'format'] as const satisfies readonly (keyof EpilogueArgs)[];

/**
 * Records y = t + b (bias optional) into `output` as f32 or f16 (rounded to nearest).
 *
 * @example
 * dispatchEpilogue(device, encoder, scratch, { input: y32, bias, rows: out, columns: tokens, output: yHalf, format: 'f16' });
 */
export function dispatchEpilogue(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: EpilogueArgs): void {
  checkDispatch(device, encoder, scratch, args, 'dispatchEpilogue');
  checkOptionsObject(args, EPILOGUE_ARG_KEYS, 'dispatchEpilogue arguments');
  checkPositiveInteger(args.rows, 'epilogue rows');
  checkPositiveInteger(args.columns, 'epilogue columns');
  const count = args.rows * args.columns;
  const inputOffset = args.inputOffset ?? 0;
  const outputOffset = args.outputOffset ?? 0;
  checkBufferRange(args.input, inputOffset, 4 * count, 'epilogue input');
  if (args.bias) checkBufferRange(args.bias, args.biasOffset ?? 0, 4 * args.rows, 'epilogue bias');
  else check(args.biasOffset === undefined, 'epilogue: biasOffset without bias');
  const bytes = activationBytes(args.format);
  checkBufferRange(args.output, outputOffset, bytes * count, 'epilogue output');
  checkOutputNotRead(args.output, [['the input', args.input], ['the bias', args.bias]], 'epilogue output');
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const inWindow = bindingWindow(inputOffset, 4 * count, alignment);
  const biasWindow = args.bias ? bindingWindow(args.biasOffset ?? 0, 4 * args.rows, alignment) : null;
  const out = valuesWindow(outputOffset, count, bytes, alignment);
  check(biasWindow === null || biasWindow.firstElement === 0, 'epilogue bias offset must be a multiple of the storage offset alignment');
  // One binding each (the library's GEMVs write their own epilogue; this standalone pass is not split).
  const maxBinding = device.limits.maxStorageBufferBindingSize;
  check(
    inWindow.size <= maxBinding && out.size <= maxBinding,
    () => `epilogue: ${args.rows} × ${args.columns} values (${Math.max(inWindow.size, out.size)} bytes) exceed one storage binding (${maxBinding}); call it for at most ${Math.floor((maxBinding - alignment) / (4 * args.rows))} columns at a time`,
  );
  const entry = args.format === 'f16' ? 'epilogue_f16' : 'epilogue_f32';
  const { layout, pipeline } = pipelines.get(device, entry);
  const label = `epilogue (${args.format}${args.bias ? ', bias' : ''})`;
  const params = Params.pack({
    count,
    rows: args.rows,
    in_first: inWindow.firstElement,
    out_first: out.firstElement,
    has_bias: args.bias ? 1 : 0,
  });
  const pass = encoder.beginComputePass({ label });
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, createKernelBindGroup(device, layout, label, [
    { buffer: scratch.uniform(label, params) },
    windowBinding(args.input, inWindow),
    args.bias && biasWindow ? windowBinding(args.bias, biasWindow) : { buffer: placeholder(scratch) },
    windowBinding(args.output, out),
  ]));
  const invocations = args.format === 'f16' ? Math.ceil(count / 2) : count;
  const [x, y] = workgroupGrid(Math.ceil(invocations / ACTIVATION_IO_THREADS), device.limits.maxComputeWorkgroupsPerDimension);
  pass.dispatchWorkgroups(x, y);
  pass.end();
}
