import { checkDispatch } from './dispatchChecks.js';
import f16ConvertSource from '../../../shaders/f16_convert.wgsl?raw';
import hadamardSource from '../../../shaders/hadamard.wgsl?raw';
import int8GroupSource from '../../../shaders/int8_group.wgsl?raw';
import plainEntrySource from '../../../shaders/hadamard_plain.wgsl?raw';
import subgroupEntrySource from '../../../shaders/hadamard_subgroup.wgsl?raw';
import { check, checkOneOf, checkPositiveInteger, describeValue } from '../../errors.js';
import { checkMatrix, type Matrix } from '../../matrix.js';
import { checkOptionalBoolean, checkOptionsObject } from '../../quantize/strictOptions.js';
import { hadamard12, hadamard20, hadamardFactors, isRotationLength, rotationLength, rotationLengthsText, rotationPlan } from '../../rotation/hadamard.js';
import { rotationSigns } from '../rotationSigns.js';
import { checkBufferRange } from '../bufferRange.js';
import { BufferUsage } from '../buffers.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import { runAndRead } from '../runAndRead.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { bindingCap, bindingWindow, type BindingWindow, itemsPerBinding, valuesWindow, workgroupGrid } from '../workSplit.js';
import { ACTIVATION_FORMATS, activationBytes, type ActivationFormat } from './activationIo.js';
import { E8_INPUT_GROUP, INPUT_GROUP, INT8_OUTPUT_LAYOUTS } from './inputsI8Layout.js';

/*
 * The randomized Hadamard rotation of columns on the GPU (shaders/hadamard*.wgsl), both directions,
 * bit for bit equal to the CPU: forward output column j = `new RandomizedHadamard(rows, seed,
 * length).forward(column j)`, inverse output column j = `….inverse(column j)`. The shader documents the
 * f32 order and how the work is split into passes.
 *
 * Two-stage plans (`rotationPlan(rows, length)` for length = rows > 256 that is not a Hadamard length: windows
 * [0, L) and [rows − L, rows)) run stage after stage, each a single-length rotation of L entries
 * whose positions (loading, signs, storing) are shifted by the window's offset, a uniform. A stage's
 * first pass loads the positions no earlier stage has touched from the input binding and the others,
 * in place, from the output binding; the stage index selects its signs. So every stage reuses the
 * multi-pass and subgroup machinery of a single Hadamard length unchanged, and the bits are those of
 * the CPU's per-stage contract. The stages must run in order (the second reads the first's results),
 * so one dispatch per stage and pass is the natural split; both share one pipeline variant.
 *
 * Compile-time variants: the workgroup-memory size, the invocations per workgroup
 * (`rotationThreads`), the block m (so that indices divide by a constant), and whether the butterfly
 * levels inside a subgroup use `subgroupShuffleXor` (opt-in, devices with the `subgroups` feature). The
 * results are the same bits for every variant.
 *
 * Sized for the decode step, which rotates one column: a one-pass stage is one workgroup per column
 * (as many invocations as the device allows, up to 1024), and a stage that takes several passes
 * shares its levels evenly between them (`planHadamard`), so each pass runs on tens of workgroups
 * rather than two.
 */

/** Smallest workgroup-memory size the planner picks on its own (one-pass stages): 8 values for each of 256 invocations. */
const PREFERRED_MIN_ELEMENTS = 2048;
/**
 * Smallest workgroup-memory size of a stage that takes several passes: 2 values for each of the 256
 * invocations, so that every invocation has a butterfly at every level.
 */
const MULTI_PASS_MIN_ELEMENTS = 512;
/** Smallest `workgroupElements` accepted (a whole H_20 block must fit). */
const MIN_ELEMENTS = 32;

/**
 * A rotation of fewer than SPREAD_BELOW_COLUMNS columns (a decode step rotates one) runs each stage
 * window of SPREAD_MIN_WINDOW entries or more that fits the workgroup memory in passes of at most
 * SPREAD_ELEMENTS values, on tens of workgroups per column, instead of one pass on one workgroup per
 * column, which leaves the GPU all but idle and makes the rotation latency-bound. (A window that does
 * not fit already takes several passes on several workgroups each, `balancedElements`, and keeps them.)
 * A spread rotation rounds x̃ to int8 in a dispatch of its own (`rotationRoundsInPass`). Measured on an
 * NVIDIA H200, x → x̂ of one column, same bits every way (bench/results/nvidia-h200-2026-12-04-rerun.md,
 * every row primed so that none ran at an idle clock): 8192 entries 13.7 µs spread against 20.4 in
 * one pass, 14336 (two windows of 12288) 53.9 against 106.1, but 4096 13.4 against 12.2: there the one
 * pass, rounding included, beats three dispatches (a dependent dispatch costs ≈ 1.7 µs there), so
 * windows of less than 8192 keep one pass. The column threshold is a judgement, not a measurement:
 * with 8 columns or more, the one-pass plan already runs 8 or more workgroups and reads and writes
 * each value once, where the spread one does it once per pass.
 */
const SPREAD_ELEMENTS = 1024;
const SPREAD_MIN_WINDOW = 8192;
const SPREAD_BELOW_COLUMNS = 8;

/** A compiled variant of the rotation kernel. */
export interface HadamardVariant {
  /** f32 values per workgroup (a power of two, or m times one). */
  readonly workgroupElements: number;
  /** Levels inside a subgroup with `subgroupShuffleXor` (needs the device feature `subgroups`). */
  readonly subgroups: boolean;
  /** m: the Hadamard block of the stages (a constant, so that indices divide by it cheaply). */
  readonly block: 1 | 12 | 20;
  /** Invocations per workgroup (`rotationThreads`). */
  readonly threads: number;
  /** `HadamardOptions.batchedLoads` (default false): every load of a pass issued before any is used. */
  readonly batchedLoads?: boolean;
}

/** Fewest invocations per rotation workgroup: WebGPU's minimum of maxComputeInvocationsPerWorkgroup. */
const MIN_THREADS = 256;
/** Most invocations per rotation workgroup. */
const MAX_THREADS = 1024;

/**
 * Invocations per workgroup for a pass of `workgroupElements` values on `device`: one per 4 values
 * (at least 256, at most 1024 and the device's limits), a power of two. Why more than 256: a
 * one-pass stage holds a whole window of a column in one workgroup, and a decode step rotates one
 * column, so that workgroup is all the GPU runs; with 1024 invocations each does a quarter of the
 * work (12 values of a 12288-entry window instead of 48). The bits are the same for any count.
 *
 * @example
 * rotationThreads(device, 12288); // 1024 where the device allows it (requestGpuDevice asks for the adapter's limit)
 * rotationThreads(device, 768);   // 256
 */
export function rotationThreads(device: { readonly limits: Pick<GPUSupportedLimits, 'maxComputeInvocationsPerWorkgroup' | 'maxComputeWorkgroupSizeX'> }, workgroupElements: number): number {
  const limit = Math.min(MAX_THREADS, device.limits.maxComputeInvocationsPerWorkgroup, device.limits.maxComputeWorkgroupSizeX);
  return Math.max(MIN_THREADS, Math.min(largestPowerOfTwoAtMost(limit), largestPowerOfTwoAtMost(Math.max(1, workgroupElements / 4))));
}

/** The kernel's uniform struct (`params`); its WGSL is generated into the module (after the constant). */
const Params = /*#__PURE__*/ new UniformLayout('HadamardParams', {
  length: 'u32', // entries of this stage's window (N for a one-stage plan)
  cols: 'u32', // columns in this dispatch
  input_rows: 'u32', // entries (and stride) of an input column; zeros from here up to N
  output_rows: 'u32', // entries (and stride) of an output column; positions past it are dropped
  input_first: 'u32', // element offset of input column 0 in its binding
  output_first: 'u32', // element offset of output column 0 in its binding
  sign_word_first: 'u32', // word of binding 4 where this stage's packed signs start (rotationSigns.ts)
  level_stride: 'u32', // P
  group_blocks: 'u32', // Q
  groups_per_workgroup: 'u32',
  input_from: 'u32', // positions in [input_from, input_to) load from the input binding,
  input_to: 'u32', //   the others in place from the output binding
  transform_blocks: 'u32', // 1 (first pass): H_m (forward) or H_mᵀ (inverse) on each block on load
  sign_on_load: 'u32', // 1 (forward, first pass): x_p · s^(k)_p on load
  scale_on_store: 'u32', // 1 (last pass): multiply by scale when storing
  sign_on_store: 'u32', // 1 (inverse, last pass): then flip by s^(k)_p
  scale: 'f32', // c = fround(1/√length)
  subgroup_test_mode: 'u32', // hadamard_subgroup.wgsl only (tests): 1 forces its fallback, 2 poisons it
  stage_offset: 'u32', // column position of the window's first element
  block_transposed: 'u32', // 1 (inverse): the first pass multiplies blocks by H_mᵀ (BLOCK_SIGNS_T), else by H_m
  input_f16: 'u32', // 1: binding 1 holds f16 halves (input_first counts halves); 0: f32
  int8_out: 'u32', // this pass (the one pass of the last stage) also writes the int8 form of x̃ into binding 3: 1 in D3's groups of 12, 2 in E8's groups of 32
  int8_kept: 'u32', // keptLength of the int8 groups: coordinates from here on are 0
  int8_groups: 'u32', // int8 groups per column
  int8_first_column: 'u32', // column of the int8 output of this dispatch's column 0
  int8_scales_first: 'u32', // word of the first scale in binding 3 (4·int8_groups·all columns for D3, 12·int8_groups·all columns for E8)
});

/**
 * The WGSL of one variant: `enable subgroups;` first when `subgroups` (an enable directive must
 * precede every declaration), the variant's constants (workgroup-memory size, invocations, block m),
 * the uniform struct, the shared code of shaders/hadamard.wgsl, and the entry point of
 * hadamard_subgroup.wgsl or hadamard_plain.wgsl.
 *
 * @example
 * hadamardShaderSource({ workgroupElements: 2048, subgroups: false, block: 1, threads: 512 }); // workgroup memory only
 * hadamardShaderSource({ workgroupElements: 768, subgroups: true, block: 12, threads: 256 });  // with subgroup shuffles
 */
export function hadamardShaderSource(variant: HadamardVariant): string {
  const enable = variant.subgroups ? 'enable subgroups;\n' : '';
  const entry = variant.subgroups ? subgroupEntrySource : plainEntrySource;
  const constants = [
    `const WORKGROUP_ELEMENTS: u32 = ${variant.workgroupElements}u;`,
    `const THREADS: u32 = ${variant.threads}u;`,
    `const BLOCK: u32 = ${variant.block}u;`,
    `const BATCHED_LOADS: bool = ${variant.batchedLoads === true};`,
    blockSignsWgsl('BLOCK_SIGNS', variant.block, false),
    blockSignsWgsl('BLOCK_SIGNS_T', variant.block, true),
  ].join('\n');
  return `${enable}${constants}\n${Params.wgsl()}\n${f16ConvertSource}\n${int8GroupSource}\n${hadamardSource}\n${entry}`;
}

/** Pipelines per device, one per variant, built on first use (both directions share them). */
const pipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'hadamard',
  bindings: ['uniform', 'read-only-storage', 'storage', 'storage', 'read-only-storage'],
  compile: (device, pipelineLayout, variant: HadamardVariant) =>
    createKernelPipeline(device, pipelineLayout, {
      label: `hadamard (${variant.workgroupElements} workgroup elements, m = ${variant.block}, ${variant.threads} invocations${variant.subgroups ? ', subgroups' : ''}${variant.batchedLoads === true ? ', batched loads' : ''})`,
      code: hadamardShaderSource(variant),
    }),
  key: (variant) => `${variant.workgroupElements}/${variant.block}/${variant.threads}${variant.subgroups ? '+subgroups' : ''}${variant.batchedLoads === true ? '+batched' : ''}`,
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
  /** f32 values per workgroup (a power of two, or m times one): the pipeline variant. */
  readonly workgroupElements: number;
  readonly passes: readonly HadamardPass[];
}

/**
 * Plans one stage of a rotation, a transform of `length` = m·2^k entries (the whole padded column for
 * a one-stage plan, a window of a two-stage one; `planHadamardRotation` plans them all) for a device
 * that grants `maxWorkgroupStorageBytes` of workgroup memory: one pass when the window fits, else
 * the fewest passes that fit, with the butterfly levels shared evenly between them. `workgroupElements`
 * forces a smaller workgroup memory (tests).
 *
 * @example
 * planHadamard(1024, 32768);  // one pass, { levelStride: 1, groupBlocks: 1024 } (P = 1, Q = 1024)
 * planHadamard(16384, 32768); // 512 elements, passes { levelStride: 1, groupBlocks: 512 }, { levelStride: 512, groupBlocks: 32 }
 */
export function planHadamard(length: number, maxWorkgroupStorageBytes: number, workgroupElements?: number): HadamardPlan {
  const { m, pow2 } = hadamardFactors(length);
  const capacity = Math.floor(maxWorkgroupStorageBytes / 4);
  const largest = largestPowerOfTwoAtMost(capacity);
  let elements: number;
  if (workgroupElements === undefined) {
    // The window itself when it fits (m·2^k: 12·1024 = 12288 fills 48 KB in one pass, where the
    // largest power of two, 8192, would take two), at least PREFERRED_MIN_ELEMENTS; else the fewest
    // passes, with the levels shared evenly between them (`balancedElements`).
    const fits = m * largestPowerOfTwoAtMost(Math.floor(capacity / m));
    if (length <= PREFERRED_MIN_ELEMENTS) elements = Math.min(largest, PREFERRED_MIN_ELEMENTS);
    else if (length <= fits) elements = length;
    else elements = balancedElements(m, pow2, fits / m);
  } else {
    check(
      Number.isInteger(workgroupElements) &&
        workgroupElements >= MIN_ELEMENTS &&
        workgroupElements <= largest &&
        nextPowerOfTwo(workgroupElements) === workgroupElements,
      () => `workgroupElements must be a power of two in [${MIN_ELEMENTS}, ${largest}], got ${describeValue(workgroupElements)}`,
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

/**
 * Workgroup memory for a stage of m·`pow2` entries that cannot take one pass (at most `maxBlocks`
 * blocks of m per workgroup): the fewest passes, each running about the same number of levels, and
 * at least MULTI_PASS_MIN_ELEMENTS values. Why not the largest that fits: a pass of Q blocks runs on
 * (stage length)/(Q·m) workgroups per column, so for the one column of a decode step the largest Q
 * leaves the GPU all but idle — 24576 = 12·2^11 at 48 KB would run its first pass on 2 workgroups of
 * 10 levels each and its second on 2 workgroups of 1 level; at 12·2^6 = 768 values both passes run on
 * 32 workgroups of 6 and 5 levels. The passes, and every f32 operation, are the same either way (each
 * level is the same butterflies wherever it runs): only the split of the levels changes.
 */
function balancedElements(m: number, pow2: number, maxBlocks: number): number {
  const levels = Math.log2(pow2);
  const maxLevels = Math.log2(maxBlocks);
  const passes = Math.ceil(levels / maxLevels);
  let passLevels = Math.ceil(levels / passes);
  while (passLevels < maxLevels && m * 2 ** passLevels < MULTI_PASS_MIN_ELEMENTS) passLevels++;
  return m * 2 ** passLevels;
}

/** One stage (window) of a rotation and its passes. */
export interface HadamardStagePlan extends HadamardPlan {
  /** First entry of the stage's window in a rotated column. */
  readonly offset: number;
}

/** How the rotation of n-entry columns runs: every stage of `rotationPlan(n, N)`, on one pipeline variant. */
export interface HadamardRotationPlan {
  /** N, the rotated length. */
  readonly length: number;
  /** f32 values per workgroup (a power of two, or m times one), shared by every stage. */
  readonly workgroupElements: number;
  /** m, shared by every stage (they have one length): with `workgroupElements`, the pipeline variant. */
  readonly block: 1 | 12 | 20;
  readonly stages: readonly HadamardStagePlan[];
}

/** How many columns a rotation plan is for, and whether a few of them spread over passes. */
export interface HadamardPlanOptions {
  /** Force a smaller workgroup memory (`HadamardOptions.workgroupElements`); then nothing spreads. */
  readonly workgroupElements?: number;
  /** Columns rotated by one call (default: many, so nothing spreads). */
  readonly columns?: number;
  /** `HadamardOptions.spread` (default true). */
  readonly spread?: boolean;
  /** N, the rotated length (`HadamardInverseArgs.length`; default `rotationLength(rows)`). */
  readonly length?: number;
}

/**
 * Plans the rotation of columns of `rows` entries: `planHadamard` for each stage of
 * `rotationPlan(rows)` (the stages of a plan have one length, so they share one pipeline variant).
 * With fewer than SPREAD_BELOW_COLUMNS `columns`, windows of SPREAD_MIN_WINDOW entries or more that
 * would take one pass run in passes of at most SPREAD_ELEMENTS values instead (unless `spread` is false).
 *
 * @example
 * planHadamardRotation(11008, 32768); // windows [0, 10240) and [768, 11008), 2 passes each, 640 elements
 * planHadamardRotation(8192, 49152, { columns: 1 }); // passes of 1024 and 8 blocks (8 workgroups each), not one of 8192
 */
export function planHadamardRotation(rows: number, maxWorkgroupStorageBytes: number, options: HadamardPlanOptions = {}): HadamardRotationPlan {
  const rotation = rotationPlan(rows, options.length);
  const spread = options.workgroupElements === undefined && (options.spread ?? true) && options.columns !== undefined && options.columns < SPREAD_BELOW_COLUMNS;
  const stages = rotation.stages.map((stage) => {
    const fewest = planHadamard(stage.length, maxWorkgroupStorageBytes, options.workgroupElements);
    // Only a window the fewest passes would run in one pass (one workgroup per column) spreads: one
    // that takes several passes already runs each on several workgroups (`balancedElements`).
    const spreads = spread && stage.length >= SPREAD_MIN_WINDOW && fewest.passes.length === 1;
    return { offset: stage.offset, ...(spreads ? planHadamard(stage.length, maxWorkgroupStorageBytes, SPREAD_ELEMENTS) : fewest) };
  });
  const [first] = stages;
  check(
    first !== undefined && stages.every((stage) => stage.workgroupElements === first.workgroupElements && stage.block === first.block),
    'planHadamardRotation: the stages of a plan share one workgroup size and block',
  );
  return { length: rotation.length, workgroupElements: first.workgroupElements, block: first.block, stages };
}

/**
 * Positions [from, to) of a stage's window that its first pass loads from the input binding; the
 * other positions of the window hold results of a stage that ran before it (in the direction's order)
 * and are loaded in place from the output binding. Plans have one stage or two windows [0, L) and
 * [N − L, N), so what an earlier stage touched is one interval at one end of the window.
 */
function freshRange(stages: readonly HadamardStagePlan[], index: number, inverse: boolean): { from: number; to: number } {
  const all = { from: 0, to: 0xffffffff };
  const earlier = inverse ? stages.slice(index + 1) : stages.slice(0, index);
  const [done, more] = earlier;
  if (done === undefined) return all;
  check(more === undefined, 'hadamard: a rotation plan has at most two stages');
  const stage = stages[index] as HadamardStagePlan;
  // The earlier window covers the start of this one (forward: [0, L) before [N − L, N)) or its end.
  return done.offset <= stage.offset ? { from: done.offset + done.length, to: all.to } : { from: 0, to: done.offset };
}

/** How a rotation runs, in either direction; the defaults suit every device. */
export interface HadamardOptions {
  /** Force a smaller workgroup memory (a power of two ≥ 32 f32), to exercise the multi-pass path. */
  readonly workgroupElements?: number;
  /**
   * Default true: a call of fewer than 8 columns (a decode step's one) runs each window of 8192
   * entries or more in passes of at most 1024 values, on tens of workgroups, instead of one pass on
   * one workgroup per column (x̂ 1.5–2× faster on an H200; same bits; at 4096 the one pass was 1.10×
   * faster, so shorter windows keep it). false: the fewest passes. Such a
   * rotation's last stage takes several passes, so x̃ is rounded to int8 in a dispatch of its own
   * (`rotationRoundsInPass`).
   */
  readonly spread?: boolean;
  /** Largest storage binding to use, in bytes (default: the device's limit). */
  readonly maxBindingBytes?: number;
  /**
   * Do the butterfly levels inside a subgroup with `subgroupShuffleXor` (same bits). Default false:
   * the workgroup-memory path runs three levels per trip through workgroup memory, in registers, so
   * it issues fewer instructions than shuffles that move one value per level and needs no more
   * barriers (the benchmark's rotation rows time both). `true` on a device without the feature is
   * an error.
   */
  readonly subgroups?: boolean;
  /**
   * An experiment (same bits), default false: each invocation of a pass issues all of its loads before
   * it uses any (no load under a branch, a loop of constant length), instead of one element at a time.
   * The benchmark's rotation rows time both; the default changes only on a real GPU's measurement.
   */
  readonly batchedLoads?: boolean;
  /**
   * Tests only, for the subgroup variant. 'fallback': run it as if its subgroups were not blocks of
   * consecutive invocations, so the levels inside a subgroup take its per-invocation fallback (same
   * bits). 'require-shuffles': that fallback writes a poison value (1e30) instead, so a result equal to the CPU's shows
   * that the shuffles ran on this device.
   */
  readonly subgroupTestMode?: 'fallback' | 'require-shuffles';
}

/** Arguments of `dispatchHadamard`. Offsets are in bytes (multiples of 4; of 2 for f16 input). */
export interface HadamardArgs extends HadamardOptions {
  /** rows × cols column-major, f32 or f16 (`inputFormat`). */
  readonly input: GPUBuffer;
  /**
   * 'f32' (default) or 'f16': f16 activations are widened as they are loaded (exactly), so a model
   * with f16 activations needs no conversion pass before the rotation, and the result equals the
   * rotation of the f32 values bit for bit. No 'shader-f16' needed.
   */
  readonly inputFormat?: ActivationFormat;
  /**
   * Also write x̃ rounded to int8 for the int8-input GEMVs, in the rotation's own last pass (what
   * `dispatchInputsI8`, or `dispatchE8InputsI8` for groups of 32, would compute from the output, bit
   * for bit): only for rotations whose last stage takes one pass (`rotationRoundsInPass`). Used by
   * `dispatchRotatedInputsI8` (inputsI8.ts) and `dispatchRotatedE8InputsI8` (e8ResidueGemvI8.ts).
   */
  readonly int8Output?: HadamardInt8Output;
  /** N × cols column-major f32 (written), N = `length`. A different buffer from `input`. */
  readonly output: GPUBuffer;
  readonly rows: number;
  /**
   * N, the rotated length, which with `rows` fixes the plan (`rotationPlan(rows, length)`): default
   * `rotationLength(rows)`. Pass a quantized matrix's own `length` when rotating x for it.
   */
  readonly length?: number;
  readonly cols: number;
  /** The u32 seed of the signs (shared by the encoders of A and B). */
  readonly seed: number;
  readonly inputOffset?: number;
  readonly outputOffset?: number;
}

/** Where and how a rotation's one-pass last stage writes the int8 form of x̃ (the layouts of inputsI8Layout.ts). */
export interface HadamardInt8Output {
  /** The levels per group and column, then a scale per group and column (one binding). */
  readonly buffer: GPUBuffer;
  /** Coordinates kept (keptLength ≤ N): from here on they round as 0. */
  readonly kept: number;
  /** Groups per column (groupSize·groups ≥ kept). */
  readonly groups: number;
  /**
   * Coordinates per group: 12 (default; the D3 int8-input GEMVs, layout of
   * shaders/gemv_i8_inputs.wgsl) or 32 (the E8 residue GEMV, layout of shaders/e8_inputs_i8.wgsl).
   */
  readonly groupSize?: typeof INPUT_GROUP | typeof E8_INPUT_GROUP;
}

/**
 * Whether the rotation of `columns` columns (default 1) of `rows` entries can also round x̃ to int8 in
 * its own last dispatch (`int8Output`): its last stage takes one pass on this device (the stage's
 * window fits the workgroup memory, and is not spread over passes: `HadamardOptions.spread`), so that
 * pass holds the last window of whole columns; the positions before that window were finished by the
 * first stage's dispatches and are read back from the output. With 8 columns or more: a one-stage
 * plan of one pass (N = 4096 at 16 KB, 8192 at 32 KB), and the two-stage plans of 11008 and 14336
 * (windows of 10240 and 12288) at 48 KB; with fewer, only windows of less than 8192 entries.
 *
 * @example
 * rotationRoundsInPass(device, 2048); // true
 * rotationRoundsInPass(device, 8192); // false: one column's 8192 entries spread over two passes
 * rotationRoundsInPass(device, 8192, { columns: 64 }); // true with 32 KB or more
 */
export function rotationRoundsInPass(device: GPUDevice, rows: number, options: HadamardPlanOptions = {}): boolean {
  // An object (its third argument was workgroupElements, a number, before the column count mattered).
  checkOptionsObject(options, ['workgroupElements', 'columns', 'spread', 'length'], 'rotationRoundsInPass options');
  return lastStagePasses(planHadamardRotation(rows, device.limits.maxComputeWorkgroupStorageSize, { columns: 1, ...options })) === 1;
}

/** Passes of the plan's last stage (in the forward order): 1 where the rotation can round in its pass. */
function lastStagePasses(plan: HadamardRotationPlan): number {
  return plan.stages[plan.stages.length - 1]?.passes.length ?? 0;
}

/** Arguments of `dispatchHadamardInverse`. Offsets are in bytes (multiples of 4). */
export interface HadamardInverseArgs extends HadamardOptions {
  /** N × cols column-major f32: rotated columns, N = `length`. */
  readonly input: GPUBuffer;
  /** rows × cols column-major f32 (written). A different buffer from `input`. */
  readonly output: GPUBuffer;
  /** n: entries kept of each column (the rows of the matrix before it was rotated). */
  readonly rows: number;
  /**
   * N, the rotated length, which with `rows` fixes the plan (`rotationPlan(rows, length)`): default
   * `rotationLength(rows)`. Pass a quantized matrix's own `length`: a time-shared matrix, or one from a
   * container of format version 2 or earlier, with 256 < rows ≤ 1024 has the padded one-stage length.
   */
  readonly length?: number;
  readonly cols: number;
  /** The u32 seed the forward rotation used. */
  readonly seed: number;
  readonly inputOffset?: number;
  readonly outputOffset?: number;
}

/**
 * Records the randomized Hadamard rotation of every column into `encoder`: output column j =
 * the rotation of `RandomizedHadamard(rows, seed, length)` applied to input column j (c · H_N · D · pad(x) for a
 * one-stage plan; the stages of `rotationPlan(rows, length)` in order otherwise), identical bit for bit to
 * `RandomizedHadamard.forward` (up to the sign of zero, which WGSL does not promise to keep). Columns
 * are split across dispatches when they exceed one storage binding; stages longer than the workgroup
 * memory take several passes.
 * Parameter buffers go into `scratch` (destroy it after submitting).
 *
 * @example
 * const scratch = new GpuScratch(device);
 * const encoder = device.createCommandEncoder({ label: 'rotate A' });
 * dispatchHadamard(device, encoder, scratch, { input, output, rows: 1000, cols: 64, seed: 42 }); // output 1000 × 64 (two windows of 768)
 * dispatchHadamard(device, encoder, scratch, { input, output, rows: 1000, length: 1024, cols: 64, seed: 42 }); // 1024 × 64: the padded plan (time-sharing, files of format ≤ 2)
 * device.queue.submit([encoder.finish()]);
 * scratch.destroy();
 */
export function dispatchHadamard(
  device: GPUDevice,
  encoder: GPUCommandEncoder,
  scratch: GpuScratch,
  args: HadamardArgs,
): void {
  checkDispatch(device, encoder, scratch, args, 'dispatchHadamard');
  checkOptionsObject(args, HADAMARD_ARG_KEYS, 'dispatchHadamard arguments');
  recordRotation(device, encoder, scratch, args, false);
}

/**
 * Records the inverse rotation of every column into `encoder`: output column j = the first `rows`
 * entries of the transposed rotation of input column j, identical bit for bit to
 * `RandomizedHadamard.inverse` (`inverseColumns`) up to the sign of zero. Splits and passes as
 * `dispatchHadamard`, stages in reverse order; for a padded plan with several passes the intermediate
 * N × cols values live in a work buffer in `scratch`.
 *
 * @example
 * const scratch = new GpuScratch(device);
 * const encoder = device.createCommandEncoder({ label: 'unrotate' });
 * dispatchHadamardInverse(device, encoder, scratch, { input: rotated, output, rows: 1000, cols: 64, seed: 42 }); // 1000 × 64 → 1000 × 64
 * dispatchHadamardInverse(device, encoder, scratch, { input: padded, output, rows: 1000, length: 1024, cols: 64, seed: 42 }); // 1024 × 64 → 1000 × 64
 * device.queue.submit([encoder.finish()]);
 * scratch.destroy();
 */
export function dispatchHadamardInverse(
  device: GPUDevice,
  encoder: GPUCommandEncoder,
  scratch: GpuScratch,
  args: HadamardInverseArgs,
): void {
  checkDispatch(device, encoder, scratch, args, 'dispatchHadamardInverse');
  checkOptionsObject(args, HADAMARD_INVERSE_ARG_KEYS, 'dispatchHadamardInverse arguments');
  recordRotation(device, encoder, scratch, args, true);
}

/** The keys of {@link HadamardOptions}. */
export const HADAMARD_OPTION_KEYS = ['workgroupElements', 'spread', 'maxBindingBytes', 'subgroups', 'batchedLoads', 'subgroupTestMode'] as const satisfies readonly (keyof HadamardOptions)[];
/** The keys of a dequantize call's `rotation` options (its own `maxBindingBytes` serves both of its kernels). */
const DEQUANTIZE_ROTATION_OPTION_KEYS = HADAMARD_OPTION_KEYS.filter((key) => key !== 'maxBindingBytes');

/** The options a dequantize call (lattice or universal codes) takes: its kernels' binding limit and the inverse rotation's options. */
export interface DequantizeCallOptions {
  readonly maxBindingBytes?: number | undefined;
  readonly rotation?: Omit<HadamardOptions, 'maxBindingBytes'> | undefined;
}

/**
 * A dequantize call's options, checked and copied when the call is made (`what` names the call in
 * errors). The rotation is recorded at the call's turn on the device: unchecked, `rotation:
 * { outputOffset: 16 }` reached the inverse rotation, which wrote the matrix 16 bytes on, into the
 * room of a centred matrix's means (every entry wrong, no error); uncopied, a key added to the
 * caller's object after the call reached it too.
 */
export function dequantizeOptionsSnapshot(
  options: DequantizeCallOptions,
  what: string,
): { readonly maxBindingBytes: number | undefined; readonly rotation: Omit<HadamardOptions, 'maxBindingBytes'> } {
  checkOptionsObject(options, ['maxBindingBytes', 'rotation'], `${what} options`);
  const rotation = options.rotation === undefined ? {} : { ...checkOptionsObject(options.rotation, DEQUANTIZE_ROTATION_OPTION_KEYS, `${what} options: rotation`) };
  return { maxBindingBytes: options.maxBindingBytes, rotation };
}
/** The keys of {@link HadamardInverseArgs}: the inverse refuses any other (a misspelt `seeed` must not run on a default). */
const HADAMARD_INVERSE_ARG_KEYS = [...HADAMARD_OPTION_KEYS, 'input', 'output', 'rows', 'length', 'cols', 'seed', 'inputOffset', 'outputOffset'] as const satisfies readonly (keyof HadamardInverseArgs)[];
/** The keys of {@link HadamardArgs}: the inverse's, with the input format and the int8 output. */
const HADAMARD_ARG_KEYS = [...HADAMARD_INVERSE_ARG_KEYS, 'inputFormat', 'int8Output'] as const satisfies readonly (keyof HadamardArgs)[];

/** `subgroup_test_mode` of the shader. */
const SUBGROUP_TEST_MODES = { none: 0, fallback: 1, 'require-shuffles': 2 } as const;

/** What binding 1 of a pass holds: a buffer window of `rows`-entry columns. */
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
    () => `${what} seed must be an integer in [0, 2^32 - 1], got ${describeValue(seed)}`,
  );
  check(args.input !== args.output, () => `${what}: input and output must be different buffers`);
  const length = args.length ?? rotationLength(rows);
  check(isRotationLength(rows, length), () => `${what}: length ${describeValue(args.length)} is not a rotated length of ${rows} rows (${rotationLengthsText(rows)})`);
  // Entries per column (and column stride) of the input and of the output.
  const inputRows = inverse ? length : rows;
  const outputRows = inverse ? rows : length;
  const inputOffset = args.inputOffset ?? 0;
  const outputOffset = args.outputOffset ?? 0;
  const inputFormat = inverse ? 'f32' : ((args as HadamardArgs).inputFormat ?? 'f32');
  checkOneOf(inputFormat, ACTIVATION_FORMATS, `${what}: inputFormat`);
  const inputBytes = activationBytes(inputFormat);
  checkBufferRange(args.input, inputOffset, inputBytes * inputRows * cols, `${what}: input`, inputBytes);
  checkBufferRange(args.output, outputOffset, 4 * outputRows * cols, `${what}: output`);
  const subgroups = resolveSubgroups(device, args, what);
  const int8 = inverse ? undefined : (args as HadamardArgs).int8Output;

  const plan = planHadamardRotation(rows, device.limits.maxComputeWorkgroupStorageSize, { workgroupElements: args.workgroupElements, columns: cols, spread: args.spread, length });
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = bindingCap(device, args.maxBindingBytes, what);
  const columnsPerChunk = Math.min(
    itemsPerBinding(4 * rows, maxBinding, alignment),
    itemsPerBinding(4 * length, maxBinding, alignment),
  );
  // The inverse of a padded (one-stage) plan keeps fewer rows than it transforms: with several passes,
  // the passes before the last work in place on an N-row copy (reused by every chunk: dispatches of a
  // pass run in order). Two-stage plans have N = rows and work in place on the output.
  const [firstStage] = plan.stages;
  const work =
    inverse && outputRows < length && plan.stages.length === 1 && firstStage !== undefined && firstStage.passes.length > 1
      ? scratch.buffer(`${what} work`, 4 * length * Math.min(columnsPerChunk, cols), BufferUsage.STORAGE)
      : undefined;
  check(plan.stages.length === 1 || outputRows === length, 'hadamard: a two-stage plan has no padding');
  // Stages run in order: forward first to last, inverse last to first.
  const order = plan.stages.map((_, k) => (inverse ? plan.stages.length - 1 - k : k));
  const batchedLoads = checkOptionalBoolean(args.batchedLoads, `${what}: batchedLoads`) ?? false;
  const { layout, pipeline } = pipelines.get(device, {
    workgroupElements: plan.workgroupElements,
    subgroups,
    block: plan.block,
    threads: rotationThreads(device, plan.workgroupElements),
    batchedLoads,
  });
  if (int8 !== undefined) {
    const lastPasses = lastStagePasses(plan);
    check(lastPasses === 1, () => `${what}: int8Output needs a rotation whose last stage takes one pass (rotationRoundsInPass); n = ${rows} takes ${plan.stages.length} stage(s), the last of ${lastPasses} passes on this device`);
    checkPositiveInteger(int8.groups, `${what}: int8Output.groups`);
    const size = int8.groupSize ?? INPUT_GROUP;
    check(size === INPUT_GROUP || size === E8_INPUT_GROUP, () => `${what}: int8Output.groupSize must be ${INPUT_GROUP} or ${E8_INPUT_GROUP}, got ${describeValue(size)}`);
    check(Number.isInteger(int8.kept) && int8.kept >= 1 && int8.kept <= length && int8.kept <= size * int8.groups, () => `${what}: int8Output.kept must be in [1, min(N, ${size}·groups)], got ${describeValue(int8.kept)}`);
    check(int8.buffer !== args.input && int8.buffer !== args.output, `${what}: int8Output needs a buffer of its own`);
    checkBufferRange(int8.buffer, 0, INT8_OUTPUT_LAYOUTS[size].bytes(int8.groups, cols), `${what}: int8Output.buffer`);
  }
  const int8Binding: GPUBufferBinding = { buffer: int8?.buffer ?? scratch.buffer(`${what}: no int8 output`, 4, BufferUsage.STORAGE) };
  const int8Layout = INT8_OUTPUT_LAYOUTS[int8?.groupSize ?? INPUT_GROUP];
  const int8ScalesFirst = int8Layout.scalesFirst(int8?.groups ?? 0, cols);
  // s^(k)_p of every stage, packed (read by the first pass of each forward stage, the last of each inverse one).
  const signs = rotationSigns(device, seed, plan.stages);

  const pass = encoder.beginComputePass({ label: `${what} N = ${length}` });
  pass.setPipeline(pipeline);
  for (let j0 = 0; j0 < cols; j0 += columnsPerChunk) {
    const chunkCols = Math.min(columnsPerChunk, cols - j0);
    const inputWindow = valuesWindow(inputOffset + inputBytes * inputRows * j0, inputRows * chunkCols, inputBytes, alignment);
    const outputWindow = bindingWindow(outputOffset + 4 * outputRows * j0, 4 * outputRows * chunkCols, alignment);
    const workWindow: BindingWindow = { offset: 0, size: 4 * length * chunkCols, firstElement: 0 };
    for (const stageIndex of order) {
      const stage = plan.stages[stageIndex] as HadamardStagePlan;
      const scale = Math.fround(1 / Math.sqrt(stage.length));
      const fresh = freshRange(plan.stages, stageIndex, inverse);
      const passCount = stage.passes.length;
      const stageLabel =
        plan.stages.length === 1 ? '' : `, stage ${stageIndex + 1}/${plan.stages.length} (${stage.offset}…${stage.offset + stage.length - 1})`;
      stage.passes.forEach(({ levelStride, groupBlocks }, passIndex) => {
        const first = passIndex === 0;
        const last = passIndex === passCount - 1;
        // Forward: input → output, then in place on the output. Inverse of a padded plan: input →
        // work, in place on work, work → output. The first pass of a later stage also reads, in
        // place, what the earlier stage left in the output.
        const target =
          work !== undefined && !last
            ? { buffer: work, window: workWindow, rows: length }
            : { buffer: args.output, window: outputWindow, rows: outputRows };
        let source: PassSource = { buffer: args.input, window: inputWindow, rows: inputRows };
        let range = { from: 0, to: 0 }; // in place: nothing from binding 1
        if (first) range = fresh;
        else if (work !== undefined && last) {
          source = { buffer: work, window: workWindow, rows: length };
          range = { from: 0, to: 0xffffffff };
        }
        const groupElements = groupBlocks * stage.block;
        const totalGroups = chunkCols * (stage.length / groupElements);
        const groupsPerWorkgroup = Math.min(Math.floor(plan.workgroupElements / groupElements), totalGroups);
        const label = `${what} N = ${length}${stageLabel}, columns ${j0}…${j0 + chunkCols - 1}, pass ${passIndex + 1}/${passCount}`;
        const params = Params.pack({
          length: stage.length,
          cols: chunkCols,
          input_rows: source.rows,
          output_rows: target.rows,
          input_first: source.window.firstElement,
          output_first: target.window.firstElement,
          sign_word_first: signs.stageFirstWord[stageIndex] as number,
          level_stride: levelStride,
          group_blocks: groupBlocks,
          groups_per_workgroup: groupsPerWorkgroup,
          input_from: range.from,
          input_to: range.to,
          transform_blocks: first ? 1 : 0,
          sign_on_load: first && !inverse ? 1 : 0,
          scale_on_store: last ? 1 : 0,
          sign_on_store: last && inverse ? 1 : 0,
          scale,
          subgroup_test_mode: SUBGROUP_TEST_MODES[args.subgroupTestMode ?? 'none'],
          stage_offset: stage.offset,
          block_transposed: inverse ? 1 : 0,
          input_f16: source.buffer === args.input && inputFormat === 'f16' ? 1 : 0,
          int8_out: int8 !== undefined && last && stageIndex === plan.stages.length - 1 ? int8Layout.code : 0,
          int8_kept: int8?.kept ?? 0,
          int8_groups: int8?.groups ?? 0,
          int8_first_column: j0,
          int8_scales_first: int8ScalesFirst,
        });
        const bindGroup = createKernelBindGroup(device, layout, label, [
          { buffer: scratch.uniform(label, params) },
          // In-place passes read nothing from binding 1; it keeps the input bound.
          windowBinding(source.buffer, source.window),
          windowBinding(target.buffer, target.window),
          int8Binding,
          { buffer: signs.buffer },
        ]);
        pass.setBindGroup(0, bindGroup);
        const [x, y] = workgroupGrid(
          Math.ceil(totalGroups / groupsPerWorkgroup),
          device.limits.maxComputeWorkgroupsPerDimension,
        );
        pass.dispatchWorkgroups(x, y);
      });
    }
  }
  pass.end();
}

/** Whether to compile the subgroup variant: the option (default false), refused where the device lacks the feature. */
function resolveSubgroups(device: GPUDevice, options: HadamardOptions, what: string): boolean {
  const available = device.features.has('subgroups');
  const subgroups = options.subgroups ?? false;
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
 * const padded = await hadamardColumns(device, a, 42, { length: 1024 }); // a.rows = 896: one padded stage
 */
export async function hadamardColumns(device: GPUDevice, m: Matrix, seed: number, options: HadamardOptions & { readonly length?: number } = {}): Promise<Matrix> {
  checkMatrix(m, 'hadamard input');
  const length = options.length ?? rotationLength(m.rows);
  const outputBytes = 4 * length * m.cols;
  const data = await runAndRead(device, 'hadamard', outputBytes, (run) => {
    const input = run.upload('hadamard input', m.data);
    const output = run.storage('hadamard output', outputBytes);
    dispatchHadamard(device, run.encoder, run.scratch, { ...options, input, output, rows: m.rows, length, cols: m.cols, seed });
    return output;
  });
  return { rows: length, cols: m.cols, data: new Float32Array(data) };
}

/**
 * `RandomizedHadamard(rows, seed, N).inverseColumns(m)` on the GPU, for an N × cols matrix `m` (N a
 * rotated length of `rows`, `isRotationLength`): a rows × cols matrix. For tests and benchmarks.
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
    isRotationLength(rows, m.rows),
    () => `inverse hadamard: the input has ${m.rows} rows, expected a rotated length of ${rows} (${rotationLengthsText(rows)})`,
  );
  const outputBytes = 4 * rows * m.cols;
  const data = await runAndRead(device, 'inverse hadamard', outputBytes, (run) => {
    const input = run.upload('inverse hadamard input', m.data);
    const output = run.storage('inverse hadamard output', outputBytes);
    dispatchHadamardInverse(device, run.encoder, run.scratch, { ...options, input, output, rows, length: m.rows, cols: m.cols, seed });
    return output;
  });
  return { rows, cols: m.cols, data: new Float32Array(data) };
}

/**
 * The WGSL constant `name`: H_m's rows (H_mᵀ's when `transpose`: the inverse multiplies by it) as sign
 * masks, bit b' of entry b set ⇔ the matrix's (b, b') entry is −1; `array<u32, 1>(0x0u)` for m = 1
 * (no block transform).
 *
 * @example
 * blockSignsWgsl('BLOCK_SIGNS', 1, false); // 'const BLOCK_SIGNS = array<u32, 1>(0x0u);'
 */
function blockSignsWgsl(name: string, m: 1 | 12 | 20, transpose: boolean): string {
  const table = m === 12 ? hadamard12 : m === 20 ? hadamard20 : Int8Array.of(1);
  const masks: string[] = [];
  for (let b = 0; b < m; b++) {
    let mask = 0;
    for (let b2 = 0; b2 < m; b2++) {
      if (((transpose ? table[b2 * m + b] : table[b * m + b2]) as number) < 0) mask |= 1 << b2;
    }
    masks.push(`0x${mask.toString(16)}u`);
  }
  return `const ${name} = array<u32, ${m}>(${masks.join(', ')});`;
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
