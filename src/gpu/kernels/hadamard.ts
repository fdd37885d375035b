import hadamardSource from '../../../shaders/hadamard.wgsl?raw';
import { check, checkPositiveInteger } from '../../errors.js';
import { checkMatrix, type Matrix } from '../../matrix.js';
import { hadamard12, hadamard20, hadamardFactors, rotationLength } from '../../rotation/hadamard.js';
import { RandomStream } from '../../rotation/random.js';
import { checkBufferRange } from '../bufferRange.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import { runAndRead } from '../runAndRead.js';
import type { GpuScratch } from '../scratch.js';
import { UniformPacker } from '../uniforms.js';
import { bindingWindow, itemsPerBinding, workgroupGrid } from '../workSplit.js';

/*
 * The randomized Hadamard rotation of columns on the GPU (shaders/hadamard.wgsl): column j of the
 * output is `new RandomizedHadamard(rows, seed).forward(column j of the input)`, bit for bit. The
 * shader documents the f32 order and how the work is split into passes.
 */

/** Smallest workgroup-memory size the planner picks on its own: 8 values for each of the 256 invocations. */
const PREFERRED_MIN_ELEMENTS = 2048;
/** Smallest `workgroupElements` accepted (a whole H_20 block must fit). */
const MIN_ELEMENTS = 32;

/** The WGSL of one variant: the workgroup-memory size is the only compile-time choice. */
export function hadamardShaderSource(workgroupElements: number): string {
  return `const WORKGROUP_ELEMENTS: u32 = ${workgroupElements}u;\n${hadamardSource}`;
}

/** Pipelines per device, one per workgroup-memory size, built on first use. */
const pipelines = new KernelPipelines({
  label: 'hadamard',
  bindings: ['uniform', 'read-only-storage', 'storage'],
  compile: (device, pipelineLayout, workgroupElements: number) =>
    createKernelPipeline(device, pipelineLayout, {
      label: `hadamard (${workgroupElements} workgroup elements)`,
      code: hadamardShaderSource(workgroupElements),
    }),
});

/** One pass of the rotation: the butterfly levels h = levelStride · 2^t for t < log2(groupBlocks). */
export interface HadamardPass {
  /** P: the first level of this pass, in blocks. */
  readonly levelStride: number;
  /** Q: blocks per group (a power of two); the pass runs log2(Q) levels. */
  readonly groupBlocks: number;
}

/** How a rotation of length N is computed: the workgroup-memory variant and the passes. */
export interface HadamardPlan {
  readonly length: number;
  readonly block: 1 | 12 | 20;
  /** f32 values per workgroup (a power of two): the pipeline variant. */
  readonly workgroupElements: number;
  readonly passes: readonly HadamardPass[];
}

/**
 * Plans the rotation of columns of length `length` (= rotationLength(n)) for a device that grants
 * `maxWorkgroupStorageBytes` of workgroup memory: one pass when the column fits, else passes of as
 * many butterfly levels as fit. `workgroupElements` forces a smaller workgroup memory (tests).
 *
 * @example
 * planHadamard(1024, 32768);  // one pass, Q = 1024
 * planHadamard(16384, 32768); // passes { P: 1, Q: 8192 }, { P: 8192, Q: 2 }
 */
export function planHadamard(length: number, maxWorkgroupStorageBytes: number, workgroupElements?: number): HadamardPlan {
  const { m, pow2 } = hadamardFactors(length);
  const largest = largestPowerOfTwoAtMost(Math.floor(maxWorkgroupStorageBytes / 4));
  let elements: number;
  if (workgroupElements === undefined) {
    elements = Math.min(largest, Math.max(PREFERRED_MIN_ELEMENTS, nextPowerOfTwo(length)));
  } else {
    check(
      Number.isInteger(workgroupElements) &&
        workgroupElements >= MIN_ELEMENTS &&
        workgroupElements <= largest &&
        nextPowerOfTwo(workgroupElements) === workgroupElements,
      () => `workgroupElements must be a power of two in [${MIN_ELEMENTS}, ${largest}], got ${workgroupElements}`,
    );
    elements = workgroupElements;
  }
  const maxGroupBlocks = largestPowerOfTwoAtMost(Math.floor(elements / m));
  // A pass must hold two blocks to run a level (one block suffices when there are no levels).
  check(
    elements >= (pow2 > 1 ? 2 * m : m),
    () => `workgroup memory of ${elements} f32 cannot hold two Hadamard blocks of ${m}`,
  );
  const passes: HadamardPass[] = [];
  let levelStride = 1;
  do {
    const groupBlocks = Math.min(pow2 / levelStride, maxGroupBlocks);
    passes.push({ levelStride, groupBlocks });
    levelStride *= groupBlocks;
  } while (levelStride < pow2);
  return { length, block: m, workgroupElements: elements, passes };
}

/** Arguments of `dispatchHadamard`. Offsets are in bytes (multiples of 4). */
export interface HadamardArgs {
  /** rows × cols column-major f32. */
  readonly input: GPUBuffer;
  /** N × cols column-major f32 (written), N = rotationLength(rows). A different buffer from `input`. */
  readonly output: GPUBuffer;
  readonly rows: number;
  readonly cols: number;
  /** The u32 seed of the signs (shared by the encoders of A and B). */
  readonly seed: number;
  readonly inputOffset?: number;
  readonly outputOffset?: number;
  /** Force a smaller workgroup memory (a power of two ≥ 32 f32), to exercise the multi-pass path. */
  readonly workgroupElements?: number;
  /** Largest storage binding to use, in bytes (default: the device's limit). */
  readonly maxBindingBytes?: number;
}

/**
 * Records the randomized Hadamard rotation of every column into `encoder`: output column j =
 * c · H_N · D · pad(input column j), identical bit for bit to `RandomizedHadamard.forward` (up to the
 * sign of zero, which WGSL does not promise to keep). Columns are split across dispatches when they
 * exceed one storage binding; columns longer than the workgroup memory take several passes.
 * Parameter buffers go into `scratch` (destroy it after submitting).
 *
 * @example
 * const scratch = new GpuScratch(device);
 * const encoder = device.createCommandEncoder({ label: 'rotate A' });
 * dispatchHadamard(device, encoder, scratch, { input, output, rows: 1000, cols: 64, seed: 42 }); // output 1024 × 64
 * device.queue.submit([encoder.finish()]);
 * scratch.destroy();
 */
export function dispatchHadamard(
  device: GPUDevice,
  encoder: GPUCommandEncoder,
  scratch: GpuScratch,
  args: HadamardArgs,
): void {
  const { rows, cols, seed } = args;
  checkPositiveInteger(rows, 'hadamard rows');
  checkPositiveInteger(cols, 'hadamard cols');
  check(
    Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff,
    () => `hadamard seed must be an integer in [0, 2^32 - 1], got ${seed}`,
  );
  check(args.input !== args.output, 'hadamard: input and output must be different buffers');
  const length = rotationLength(rows);
  const inputOffset = args.inputOffset ?? 0;
  const outputOffset = args.outputOffset ?? 0;
  checkBufferRange(args.input, inputOffset, 4 * rows * cols, 'hadamard: input');
  checkBufferRange(args.output, outputOffset, 4 * length * cols, 'hadamard: output');

  const plan = planHadamard(length, device.limits.maxComputeWorkgroupStorageSize, args.workgroupElements);
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = Math.min(args.maxBindingBytes ?? Infinity, device.limits.maxStorageBufferBindingSize);
  const columnsPerChunk = Math.min(
    itemsPerBinding(4 * rows, maxBinding, alignment),
    itemsPerBinding(4 * length, maxBinding, alignment),
  );
  const rowMasks = hadamardRowMasks(plan.block);
  const scale = Math.fround(1 / Math.sqrt(length));
  const { layout, pipeline } = pipelines.get(device, plan.workgroupElements);

  const pass = encoder.beginComputePass({ label: `hadamard N = ${length}` });
  pass.setPipeline(pipeline);
  for (let j0 = 0; j0 < cols; j0 += columnsPerChunk) {
    const chunkCols = Math.min(columnsPerChunk, cols - j0);
    const inputWindow = bindingWindow(inputOffset + 4 * rows * j0, 4 * rows * chunkCols, alignment);
    const outputWindow = bindingWindow(outputOffset + 4 * length * j0, 4 * length * chunkCols, alignment);
    plan.passes.forEach(({ levelStride, groupBlocks }, passIndex) => {
      const groupElements = groupBlocks * plan.block;
      const totalGroups = chunkCols * (length / groupElements);
      const groupsPerWorkgroup = Math.min(Math.floor(plan.workgroupElements / groupElements), totalGroups);
      const label = `hadamard N = ${length}, columns ${j0}…${j0 + chunkCols - 1}, pass ${passIndex + 1}/${plan.passes.length}`;
      const params = new UniformPacker()
        .u32(rows, 'rows')
        .u32(length, 'length')
        .u32(plan.block, 'block')
        .u32(chunkCols, 'cols')
        .u32(inputWindow.firstElement, 'input_first')
        .u32(outputWindow.firstElement, 'output_first')
        .u32(seed, 'seed')
        .u32(RandomStream.rotationSigns, 'sign_stream')
        .u32(levelStride, 'level_stride')
        .u32(groupBlocks, 'group_blocks')
        .u32(groupsPerWorkgroup, 'groups_per_workgroup')
        .u32(passIndex === 0 ? 1 : 0, 'first_pass')
        .u32(passIndex === plan.passes.length - 1 ? 1 : 0, 'last_pass')
        .f32(scale, 'scale')
        .u32(0, 'padding')
        .u32(0, 'padding');
      for (const mask of rowMasks) params.u32(mask, 'row_negative');
      const bindGroup = createKernelBindGroup(device, layout, label, [
        { buffer: scratch.uniform(label, params) },
        windowBinding(args.input, inputWindow),
        windowBinding(args.output, outputWindow),
      ]);
      pass.setBindGroup(0, bindGroup);
      const [x, y] = workgroupGrid(
        Math.ceil(totalGroups / groupsPerWorkgroup),
        device.limits.maxComputeWorkgroupsPerDimension,
      );
      pass.dispatchWorkgroups(x, y);
    });
  }
  pass.end();
}

/**
 * `RandomizedHadamard(m.rows, seed).forwardColumns(m)` on the GPU: uploads, dispatches inside
 * validation error scopes, reads back and destroys its buffers. For tests and benchmarks.
 *
 * @example
 * const rotated = await hadamardColumns(device, a, 42); // rotationLength(a.rows) × a.cols
 */
export async function hadamardColumns(
  device: GPUDevice,
  m: Matrix,
  seed: number,
  options: Pick<HadamardArgs, 'workgroupElements' | 'maxBindingBytes'> = {},
): Promise<Matrix> {
  checkMatrix(m, 'hadamard input');
  const length = rotationLength(m.rows);
  const outputBytes = 4 * length * m.cols;
  const data = await runAndRead(device, 'hadamard', outputBytes, (run) => {
    const input = run.upload('hadamard input', m.data);
    const output = run.storage('hadamard output', outputBytes);
    dispatchHadamard(device, run.encoder, run.scratch, { input, output, rows: m.rows, cols: m.cols, seed, ...options });
    return output;
  });
  return { rows: length, cols: m.cols, data: new Float32Array(data) };
}

/** 20 words: bit b' of word b is set when H_m[b][b'] = −1 (zeros past m, and for m = 1). */
function hadamardRowMasks(m: 1 | 12 | 20): number[] {
  const masks = new Array<number>(20).fill(0);
  const table = m === 12 ? hadamard12 : m === 20 ? hadamard20 : undefined;
  if (table === undefined) return masks;
  for (let b = 0; b < m; b++) {
    let mask = 0;
    for (let b2 = 0; b2 < m; b2++) if ((table[b * m + b2] as number) < 0) mask |= 1 << b2;
    masks[b] = mask >>> 0;
  }
  return masks;
}

function nextPowerOfTwo(v: number): number {
  let p = 1;
  while (p < v) p *= 2;
  return p;
}

function largestPowerOfTwoAtMost(v: number): number {
  let p = 1;
  while (p * 2 <= v) p *= 2;
  return p;
}
