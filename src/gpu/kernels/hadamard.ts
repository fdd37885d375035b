import hadamardSource from '../../../shaders/hadamard.wgsl?raw';
import plainEntrySource from '../../../shaders/hadamard_plain.wgsl?raw';
import subgroupEntrySource from '../../../shaders/hadamard_subgroup.wgsl?raw';
import { check, checkPositiveInteger } from '../../errors.js';
import { checkMatrix, type Matrix } from '../../matrix.js';
import { hadamard12, hadamard20, hadamardFactors, rotationLength } from '../../rotation/hadamard.js';
import { RandomStream } from '../../rotation/random.js';
import { checkBufferRange } from '../bufferRange.js';
import { BufferUsage } from '../buffers.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import { runAndRead } from '../runAndRead.js';
import type { GpuScratch } from '../scratch.js';
import { UniformPacker } from '../uniforms.js';
import { bindingWindow, itemsPerBinding, workgroupGrid, type BindingWindow } from '../workSplit.js';

/*
 * The randomized Hadamard rotation of columns on the GPU (shaders/hadamard*.wgsl), both directions,
 * bit for bit equal to the CPU: forward output column j = `new RandomizedHadamard(rows,
 * seed).forward(column j)`, inverse output column j = `….inverse(column j)`. The shader documents the
 * f32 order and how the work is split into passes.
 *
 * Compile-time variants: the workgroup-memory size, and whether the butterfly levels inside a
 * subgroup use `subgroupShuffleXor` (devices with the `subgroups` feature; the results are the same
 * bits either way).
 */

/** Smallest workgroup-memory size the planner picks on its own: 8 values for each of the 256 invocations. */
const PREFERRED_MIN_ELEMENTS = 2048;
/** Smallest `workgroupElements` accepted (a whole H_20 block must fit). */
const MIN_ELEMENTS = 32;

/** A compiled variant of the rotation kernel. */
export interface HadamardVariant {
  /** f32 values per workgroup (a power of two). */
  readonly workgroupElements: number;
  /** Levels inside a subgroup with `subgroupShuffleXor` (needs the device feature `subgroups`). */
  readonly subgroups: boolean;
}

/**
 * The WGSL of one variant: `enable subgroups;` first when `subgroups` (an enable directive must
 * precede every declaration), the workgroup-memory size as a constant, the shared code of
 * shaders/hadamard.wgsl, and the entry point of hadamard_subgroup.wgsl or hadamard_plain.wgsl.
 *
 * @example
 * hadamardShaderSource(2048);       // workgroup memory only
 * hadamardShaderSource(2048, true); // with subgroup shuffles
 */
export function hadamardShaderSource(workgroupElements: number, subgroups = false): string {
  const enable = subgroups ? 'enable subgroups;\n' : '';
  const entry = subgroups ? subgroupEntrySource : plainEntrySource;
  return `${enable}const WORKGROUP_ELEMENTS: u32 = ${workgroupElements}u;\n${hadamardSource}\n${entry}`;
}

/** Pipelines per device, one per variant, built on first use (both directions share them). */
const pipelines = new KernelPipelines({
  label: 'hadamard',
  bindings: ['uniform', 'read-only-storage', 'storage'],
  compile: (device, pipelineLayout, variant: HadamardVariant) =>
    createKernelPipeline(device, pipelineLayout, {
      label: `hadamard (${variant.workgroupElements} workgroup elements${variant.subgroups ? ', subgroups' : ''})`,
      code: hadamardShaderSource(variant.workgroupElements, variant.subgroups),
    }),
  key: (variant) => `${variant.workgroupElements}${variant.subgroups ? '+subgroups' : ''}`,
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

/** How a rotation runs, in either direction; the defaults suit every device. */
export interface HadamardOptions {
  /** Force a smaller workgroup memory (a power of two ≥ 32 f32), to exercise the multi-pass path. */
  readonly workgroupElements?: number;
  /** Largest storage binding to use, in bytes (default: the device's limit). */
  readonly maxBindingBytes?: number;
  /**
   * Do the butterfly levels inside a subgroup with `subgroupShuffleXor`. Default: whenever the device
   * has the `subgroups` feature; `false` forces the workgroup-memory path (same bits); `true` on a
   * device without the feature is an error.
   */
  readonly subgroups?: boolean;
  /**
   * Tests only, for the subgroup variant. 'fallback': run it as if its subgroups were not blocks of
   * consecutive invocations, so the levels inside a subgroup take its per-invocation fallback (same
   * bits). 'require-shuffles': that fallback writes a poison value (1e30) instead, so a result equal to the CPU's shows
   * that the shuffles ran on this device.
   */
  readonly subgroupTestMode?: 'fallback' | 'require-shuffles';
}

/** Arguments of `dispatchHadamard`. Offsets are in bytes (multiples of 4). */
export interface HadamardArgs extends HadamardOptions {
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
}

/** Arguments of `dispatchHadamardInverse`. Offsets are in bytes (multiples of 4). */
export interface HadamardInverseArgs extends HadamardOptions {
  /** N × cols column-major f32: rotated columns, N = rotationLength(rows). */
  readonly input: GPUBuffer;
  /** rows × cols column-major f32 (written). A different buffer from `input`. */
  readonly output: GPUBuffer;
  /** n: entries kept of each column (the rows of the matrix before it was rotated). */
  readonly rows: number;
  readonly cols: number;
  /** The u32 seed the forward rotation used. */
  readonly seed: number;
  readonly inputOffset?: number;
  readonly outputOffset?: number;
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
  recordRotation(device, encoder, scratch, args, false);
}

/**
 * Records the inverse rotation of every column into `encoder`: output column j = the first `rows`
 * entries of D · c · H_Nᵀ · (input column j), identical bit for bit to `RandomizedHadamard.inverse`
 * (`inverseColumns`) up to the sign of zero. Splits and passes as `dispatchHadamard`; with several
 * passes the intermediate N × cols values live in a work buffer in `scratch`.
 *
 * @example
 * const scratch = new GpuScratch(device);
 * const encoder = device.createCommandEncoder({ label: 'unrotate' });
 * dispatchHadamardInverse(device, encoder, scratch, { input: rotated, output, rows: 1000, cols: 64, seed: 42 }); // 1024 × 64 → 1000 × 64
 * device.queue.submit([encoder.finish()]);
 * scratch.destroy();
 */
export function dispatchHadamardInverse(
  device: GPUDevice,
  encoder: GPUCommandEncoder,
  scratch: GpuScratch,
  args: HadamardInverseArgs,
): void {
  recordRotation(device, encoder, scratch, args, true);
}

/** `subgroup_test_mode` of the shader. */
const SUBGROUP_TEST_MODES = { none: 0, fallback: 1, 'require-shuffles': 2 } as const;

/** Where one pass reads: a binding of `rows`-entry columns, or (null) the output binding in place. */
interface PassSource {
  readonly buffer: GPUBuffer;
  readonly window: BindingWindow;
  readonly rows: number;
}

function recordRotation(
  device: GPUDevice,
  encoder: GPUCommandEncoder,
  scratch: GpuScratch,
  args: HadamardArgs | HadamardInverseArgs,
  inverse: boolean,
): void {
  const what = inverse ? 'inverse hadamard' : 'hadamard';
  const { rows, cols, seed } = args;
  checkPositiveInteger(rows, `${what} rows`);
  checkPositiveInteger(cols, `${what} cols`);
  check(
    Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff,
    () => `${what} seed must be an integer in [0, 2^32 - 1], got ${seed}`,
  );
  check(args.input !== args.output, () => `${what}: input and output must be different buffers`);
  const length = rotationLength(rows);
  // Entries per column (and column stride) of the input and of the output.
  const inputRows = inverse ? length : rows;
  const outputRows = inverse ? rows : length;
  const inputOffset = args.inputOffset ?? 0;
  const outputOffset = args.outputOffset ?? 0;
  checkBufferRange(args.input, inputOffset, 4 * inputRows * cols, `${what}: input`);
  checkBufferRange(args.output, outputOffset, 4 * outputRows * cols, `${what}: output`);
  const subgroups = resolveSubgroups(device, args, what);

  const plan = planHadamard(length, device.limits.maxComputeWorkgroupStorageSize, args.workgroupElements);
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = Math.min(args.maxBindingBytes ?? Infinity, device.limits.maxStorageBufferBindingSize);
  const columnsPerChunk = Math.min(
    itemsPerBinding(4 * rows, maxBinding, alignment),
    itemsPerBinding(4 * length, maxBinding, alignment),
  );
  // The inverse keeps fewer rows than it transforms: with several passes, the passes before the last
  // work in place on an N-row copy (reused by every chunk: dispatches of a pass run in order).
  const passCount = plan.passes.length;
  const work =
    inverse && passCount > 1
      ? scratch.buffer(`${what} work`, 4 * length * Math.min(columnsPerChunk, cols), BufferUsage.STORAGE)
      : undefined;
  const rowMasks = hadamardRowMasks(plan.block, inverse);
  const scale = Math.fround(1 / Math.sqrt(length));
  const { layout, pipeline } = pipelines.get(device, { workgroupElements: plan.workgroupElements, subgroups });

  const pass = encoder.beginComputePass({ label: `${what} N = ${length}` });
  pass.setPipeline(pipeline);
  for (let j0 = 0; j0 < cols; j0 += columnsPerChunk) {
    const chunkCols = Math.min(columnsPerChunk, cols - j0);
    const inputWindow = bindingWindow(inputOffset + 4 * inputRows * j0, 4 * inputRows * chunkCols, alignment);
    const outputWindow = bindingWindow(outputOffset + 4 * outputRows * j0, 4 * outputRows * chunkCols, alignment);
    const workWindow: BindingWindow = { offset: 0, size: 4 * length * chunkCols, firstElement: 0 };
    plan.passes.forEach(({ levelStride, groupBlocks }, passIndex) => {
      const first = passIndex === 0;
      const last = passIndex === passCount - 1;
      // Forward: input → output, then in place on the output. Inverse: input → work, in place on
      // work, work → output (one pass: input → output).
      const target =
        work !== undefined && !last
          ? { buffer: work, window: workWindow, rows: length }
          : { buffer: args.output, window: outputWindow, rows: outputRows };
      let source: PassSource | null = null;
      if (first) source = { buffer: args.input, window: inputWindow, rows: inputRows };
      else if (work !== undefined && last) source = { buffer: work, window: workWindow, rows: length };
      const groupElements = groupBlocks * plan.block;
      const totalGroups = chunkCols * (length / groupElements);
      const groupsPerWorkgroup = Math.min(Math.floor(plan.workgroupElements / groupElements), totalGroups);
      const label = `${what} N = ${length}, columns ${j0}…${j0 + chunkCols - 1}, pass ${passIndex + 1}/${passCount}`;
      const params = new UniformPacker()
        .u32(length, 'length')
        .u32(plan.block, 'block')
        .u32(chunkCols, 'cols')
        .u32(source?.rows ?? inputRows, 'input_rows')
        .u32(target.rows, 'output_rows')
        .u32(source?.window.firstElement ?? inputWindow.firstElement, 'input_first')
        .u32(target.window.firstElement, 'output_first')
        .u32(seed, 'seed')
        .u32(RandomStream.rotationSigns, 'sign_stream')
        .u32(levelStride, 'level_stride')
        .u32(groupBlocks, 'group_blocks')
        .u32(groupsPerWorkgroup, 'groups_per_workgroup')
        .u32(source === null ? 0 : 1, 'read_input')
        .u32(first ? 1 : 0, 'transform_blocks')
        .u32(first && !inverse ? 1 : 0, 'sign_on_load')
        .u32(last ? 1 : 0, 'scale_on_store')
        .u32(last && inverse ? 1 : 0, 'sign_on_store')
        .f32(scale, 'scale')
        .u32(SUBGROUP_TEST_MODES[args.subgroupTestMode ?? 'none'], 'subgroup_test_mode')
        .u32(0, 'padding');
      for (const mask of rowMasks) params.u32(mask, 'row_negative');
      const bindGroup = createKernelBindGroup(device, layout, label, [
        { buffer: scratch.uniform(label, params) },
        // In-place passes read nothing from binding 1; it keeps the input bound.
        windowBinding(source?.buffer ?? args.input, source?.window ?? inputWindow),
        windowBinding(target.buffer, target.window),
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

/** Whether to compile the subgroup variant: the option, else the device feature. */
function resolveSubgroups(device: GPUDevice, options: HadamardOptions, what: string): boolean {
  const available = device.features.has('subgroups');
  const subgroups = options.subgroups ?? available;
  check(
    !subgroups || available,
    () => `${what}: subgroups: true needs a device with the 'subgroups' feature, which this one lacks`,
  );
  check(
    options.subgroupTestMode === undefined || subgroups,
    () => `${what}: subgroupTestMode applies to the subgroup variant; this rotation runs without subgroups`,
  );
  return subgroups;
}

/**
 * `RandomizedHadamard(m.rows, seed).forwardColumns(m)` on the GPU: uploads, dispatches inside
 * validation error scopes, reads back and destroys its buffers. For tests and benchmarks.
 *
 * @example
 * const rotated = await hadamardColumns(device, a, 42); // rotationLength(a.rows) × a.cols
 */
export async function hadamardColumns(device: GPUDevice, m: Matrix, seed: number, options: HadamardOptions = {}): Promise<Matrix> {
  checkMatrix(m, 'hadamard input');
  const length = rotationLength(m.rows);
  const outputBytes = 4 * length * m.cols;
  const data = await runAndRead(device, 'hadamard', outputBytes, (run) => {
    const input = run.upload('hadamard input', m.data);
    const output = run.storage('hadamard output', outputBytes);
    dispatchHadamard(device, run.encoder, run.scratch, { ...options, input, output, rows: m.rows, cols: m.cols, seed });
    return output;
  });
  return { rows: length, cols: m.cols, data: new Float32Array(data) };
}

/**
 * `RandomizedHadamard(rows, seed).inverseColumns(m)` on the GPU, for an N × cols matrix `m` with
 * N = rotationLength(rows): a rows × cols matrix. For tests and benchmarks.
 *
 * @example
 * const back = await hadamardInverseColumns(device, await hadamardColumns(device, a, 42), 42, a.rows); // ≈ a
 */
export async function hadamardInverseColumns(
  device: GPUDevice,
  m: Matrix,
  seed: number,
  rows: number,
  options: HadamardOptions = {},
): Promise<Matrix> {
  checkMatrix(m, 'inverse hadamard input');
  checkPositiveInteger(rows, 'inverse hadamard rows');
  check(
    m.rows === rotationLength(rows),
    () => `inverse hadamard: the input has ${m.rows} rows, expected rotationLength(${rows}) = ${rotationLength(rows)}`,
  );
  const outputBytes = 4 * rows * m.cols;
  const data = await runAndRead(device, 'inverse hadamard', outputBytes, (run) => {
    const input = run.upload('inverse hadamard input', m.data);
    const output = run.storage('inverse hadamard output', outputBytes);
    dispatchHadamardInverse(device, run.encoder, run.scratch, { ...options, input, output, rows, cols: m.cols, seed });
    return output;
  });
  return { rows, cols: m.cols, data: new Float32Array(data) };
}

/**
 * 20 words: bit b' of word b is set when H_m[b][b'] = −1, or H_m[b'][b] = −1 when `transpose` (the
 * inverse multiplies by H_mᵀ); zeros past m, and for m = 1.
 */
function hadamardRowMasks(m: 1 | 12 | 20, transpose: boolean): number[] {
  const masks = new Array<number>(20).fill(0);
  const table = m === 12 ? hadamard12 : m === 20 ? hadamard20 : undefined;
  if (table === undefined) return masks;
  for (let b = 0; b < m; b++) {
    let mask = 0;
    for (let b2 = 0; b2 < m; b2++) {
      const entry = transpose ? table[b2 * m + b] : table[b * m + b2];
      if ((entry as number) < 0) mask |= 1 << b2;
    }
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
