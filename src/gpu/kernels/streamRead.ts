import streamReadSource from '../../../shaders/stream_read.wgsl?raw';
import { check, checkPositiveInteger, describeValue } from '../../errors.js';
import { checkBufferRange } from '../bufferRange.js';
import { STORAGE_USAGE } from '../buffers.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import { runAndRead } from '../runAndRead.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { bindingCap, bindingWindow } from '../workSplit.js';

/*
 * The streaming-read kernel (shaders/stream_read.wgsl): reads a buffer once, 16 bytes per load, 4
 * loads in flight per invocation, and XORs the words: its GB/s is the achievable read bandwidth
 * the GEMV benchmark compares every kernel with. CPU twin: `streamXor` (the XOR of every 16-byte
 * word, lane by lane), which equals the XOR of the per-workgroup results the kernel writes.
 */

/** Invocations per workgroup (the shader's THREADS). */
export const STREAM_READ_THREADS = 256;
/** Loads per loop step (the shader's UNROLL). */
export const STREAM_READ_UNROLL = 4;
/** Default persistent grid: enough workgroups to fill a large GPU (132 SMs × 8 resident workgroups of 256 on an H200 is 1056). */
export const STREAM_READ_DEFAULT_WORKGROUPS = 2048;
/**
 * Fewest unrolled loop steps per invocation before the grid grows: keeps the per-workgroup XOR tree
 * (8 barriers) small against the reads on small buffers (and on CPU adapters, where barriers are dear).
 */
const MIN_STEPS = 8;

const Params = /*#__PURE__*/ new UniformLayout('StreamReadParams', {
  words: 'u32', // vec4<u32> words to read in this dispatch
  data_first: 'u32', // vec4 index of the first word inside the binding (alignment slack)
  sink_first: 'u32', // vec4 index of this dispatch's first workgroup result in `sink`
});

/**
 * The WGSL of the kernel (no variants).
 *
 * @example
 * streamReadShaderSource();
 */
export function streamReadShaderSource(): string {
  return `${Params.wgsl()}\n${streamReadSource}`;
}

const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'stream read',
  bindings: ['uniform', 'read-only-storage', 'storage'],
  compile: (device, pipelineLayout) => createKernelPipeline(device, pipelineLayout, { label: 'stream read', code: streamReadShaderSource() }),
});

/** Arguments of `dispatchStreamRead`. Offsets and sizes in bytes. */
export interface StreamReadArgs {
  /** The buffer to read (STORAGE usage). */
  readonly data: GPUBuffer;
  /** Bytes to read from `offset`: a positive multiple of 16. */
  readonly bytes: number;
  /** A multiple of 16. Default 0. */
  readonly offset?: number;
  /**
   * Where the per-workgroup XORs go (one vec4<u32> per workgroup of every dispatch, in order):
   * `streamReadSinkBytes(…)` bytes. Omitted: a scratch buffer.
   */
  readonly sink?: GPUBuffer;
  /** Workgroups per dispatch (a persistent grid). Default {@link STREAM_READ_DEFAULT_WORKGROUPS}. */
  readonly workgroups?: number;
  /** Largest storage binding to use, in bytes (default: the device's limit; tests pass less to exercise splitting). */
  readonly maxBindingBytes?: number;
}

/** The dispatches of a read: word ranges, each within one binding. */
function streamReadPlan(device: GPUDevice, args: Pick<StreamReadArgs, 'bytes' | 'offset' | 'workgroups' | 'maxBindingBytes'>): { first: number; words: number; groups: number }[] {
  const offset = args.offset ?? 0;
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = bindingCap(device, args.maxBindingBytes, 'stream read');
  // Words per dispatch: what one binding holds after the alignment slack, and what u32 indices allow.
  const perDispatch = Math.min(Math.floor((maxBinding - (alignment - 16)) / 16), 2 ** 30);
  check(perDispatch >= 1, () => `stream read: a storage binding of ${maxBinding} bytes is too small`);
  const maxGroups = Math.min(args.workgroups ?? STREAM_READ_DEFAULT_WORKGROUPS, device.limits.maxComputeWorkgroupsPerDimension);
  const plan: { first: number; words: number; groups: number }[] = [];
  const total = args.bytes / 16;
  for (let first = 0; first < total; first += perDispatch) {
    const words = Math.min(perDispatch, total - first);
    plan.push({ first: offset / 16 + first, words, groups: Math.min(maxGroups, Math.ceil(words / (STREAM_READ_THREADS * STREAM_READ_UNROLL * MIN_STEPS))) });
  }
  return plan;
}

/** Bytes of the sink a read writes: 16 per workgroup of every dispatch. */
export function streamReadSinkBytes(device: GPUDevice, args: Pick<StreamReadArgs, 'bytes' | 'offset' | 'workgroups' | 'maxBindingBytes'>): number {
  return 16 * streamReadPlan(device, args).reduce((sum, step) => sum + step.groups, 0);
}

/**
 * Records a read of `bytes` bytes of `data` (the XOR of its 16-byte words, per workgroup, into the
 * sink). Splits the read into dispatches of one storage binding each.
 *
 * @example
 * const scratch = new GpuScratch(device);
 * const encoder = device.createCommandEncoder({ label: 'bandwidth' });
 * dispatchStreamRead(device, encoder, scratch, { data: big, bytes: big.size });
 * device.queue.submit([encoder.finish()]);
 * scratch.destroy();
 */
export function dispatchStreamRead(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: StreamReadArgs): void {
  const offset = args.offset ?? 0;
  checkPositiveInteger(args.bytes, 'stream read bytes');
  check(args.bytes % 16 === 0, () => `stream read: bytes must be a multiple of 16, got ${describeValue(args.bytes)}`);
  if (args.workgroups !== undefined) checkPositiveInteger(args.workgroups, 'stream read workgroups');
  checkBufferRange(args.data, offset, args.bytes, 'stream read: data', 16);
  const plan = streamReadPlan(device, args);
  const sinkBytes = 16 * plan.reduce((sum, step) => sum + step.groups, 0);
  const sink = args.sink ?? scratch.buffer('stream read sink', sinkBytes, STORAGE_USAGE);
  checkBufferRange(sink, 0, sinkBytes, 'stream read: sink', 16);
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const { layout, pipeline } = pipelines.get(device);
  const pass = encoder.beginComputePass({ label: 'stream read' });
  pass.setPipeline(pipeline);
  let sinkFirst = 0;
  for (const step of plan) {
    const window = bindingWindow(16 * step.first, 16 * step.words, alignment);
    const label = `stream read (words ${step.first}…${step.first + step.words - 1})`;
    const params = scratch.uniform(`${label} params`, Params.pack({ words: step.words, data_first: window.firstElement / 4, sink_first: sinkFirst }));
    pass.setBindGroup(0, createKernelBindGroup(device, layout, label, [{ buffer: params }, windowBinding(args.data, window), { buffer: sink }]));
    pass.dispatchWorkgroups(step.groups);
    sinkFirst += step.groups;
  }
  pass.end();
}

/**
 * The XOR of every 16-byte word of `words` (length a multiple of 4), lane by lane: what the kernel's
 * per-workgroup results XOR to.
 *
 * @example
 * streamXor(new Uint32Array([1, 2, 3, 4, 1, 0, 0, 0])); // [0, 2, 3, 4]
 */
export function streamXor(words: Uint32Array): Uint32Array {
  check(words instanceof Uint32Array && words.length % 4 === 0, 'streamXor: words must be a Uint32Array of a multiple of 4 entries');
  const out = new Uint32Array(4);
  for (let i = 0; i < words.length; i += 4) {
    out[0] = (out[0] as number) ^ (words[i] as number);
    out[1] = (out[1] as number) ^ (words[i + 1] as number);
    out[2] = (out[2] as number) ^ (words[i + 2] as number);
    out[3] = (out[3] as number) ^ (words[i + 3] as number);
  }
  return out;
}

/**
 * Runs the kernel over CPU data and returns the XOR of its per-workgroup results (to compare with
 * `streamXor(words)`). For tests.
 *
 * @example
 * const xor = await streamRead(device, words); // equals streamXor(words)
 */
export async function streamRead(device: GPUDevice, words: Uint32Array, options: Pick<StreamReadArgs, 'workgroups' | 'maxBindingBytes'> & { offsetWords?: number } = {}): Promise<Uint32Array> {
  check(words instanceof Uint32Array && words.length > 0 && words.length % 4 === 0, 'stream read: words must be a non-empty Uint32Array of a multiple of 4 entries');
  const offsetWords = options.offsetWords ?? 0;
  check(Number.isInteger(offsetWords) && offsetWords >= 0 && offsetWords % 4 === 0, () => `stream read: offsetWords must be a non-negative multiple of 4, got ${describeValue(offsetWords)}`);
  const bytes = 4 * words.length;
  const args = { bytes, offset: 4 * offsetWords, ...(options.workgroups === undefined ? {} : { workgroups: options.workgroups }), ...(options.maxBindingBytes === undefined ? {} : { maxBindingBytes: options.maxBindingBytes }) };
  const sinkBytes = streamReadSinkBytes(device, args);
  const padded = new Uint32Array(offsetWords + words.length);
  padded.set(words, offsetWords);
  const data = await runAndRead(device, 'stream read', sinkBytes, (run) => {
    const buffer = run.upload('stream read data', padded);
    const sink = run.storage('stream read sink', sinkBytes);
    dispatchStreamRead(device, run.encoder, run.scratch, { ...args, data: buffer, sink });
    return sink;
  });
  return streamXor(new Uint32Array(data));
}
