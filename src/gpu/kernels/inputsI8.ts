import { checkDispatch } from './dispatchChecks.js';
import { checkOptionsObject } from '../../quantize/strictOptions.js';
import inputSource from '../../../shaders/gemv_i8_inputs.wgsl?raw';
import int8GroupSource from '../../../shaders/int8_group.wgsl?raw';
import { check, checkPositiveInteger, counted } from '../../errors.js';
import { int8Level, int8Scale } from './int8Rounding.js';
import { checkBufferRange } from '../bufferRange.js';
import { STORAGE_USAGE } from '../buffers.js';
import { columnRanges } from '../latticeOperand.js';
import { createKernelBindGroup, createKernelPipeline, KernelPipelines, windowBinding } from '../pipelines.js';
import type { GpuScratch } from '../scratch.js';
import { UniformLayout } from '../uniformLayout.js';
import { bindingWindow, itemsPerBinding, workgroupGrid } from '../workSplit.js';
import type { ActivationFormat } from './activationIo.js';
import { beginGemv, type GemvCall, type GemvCallArgs, type GemvCallShape, type GemvOperand } from './gemvCall.js';
import { dispatchHadamard, rotationRoundsInPass, type HadamardInt8Output } from './hadamard.js';
import { INPUT_BYTES_PER_GROUP, INPUT_GROUP, inputsI8Bytes, inputsI8ScalesFirst } from './inputsI8Layout.js';

/*
 * x̃ rounded to int8 for the int8-input GEMVs (the universal one, universalGemvI8.ts, and the
 * deterministic one, latticeGemvI8.ts; both read D3 codes of 8 bits, so one group of 12 rotated
 * coordinates per code word): the kernel (shaders/gemv_i8_inputs.wgsl), its CPU twin
 * `quantizeInputsI8`, and two ways to use it:
 *   - per call: each GEMV rounds the x̃ of each of its ranges of right-hand sides (`inputsI8ForRange`);
 *   - shared: `dispatchInputsI8` rounds x̃ once and every GEMV that reads the same x̃ (layers of one
 *     seed and length reading one input: an attention block's q, k and v) takes the result as
 *     `inputsI8`, so a layer's call is its product alone. The result names the operand shape it was
 *     rounded for (rotation, keptLength, groups), and a GEMV refuses x̂ of another shape.
 */

export { INPUT_GROUP } from './inputsI8Layout.js';

/** What the rounding of x̃ needs of W (a universal or deterministic D3 matrix on the GPU). */
export interface InputsI8Operand {
  readonly rows: number;
  readonly length: number;
  readonly keptLength: number;
  readonly blocksPerColumn: number;
  readonly rotate: boolean;
  readonly seed: number;
}

/** Int8 groups per right-hand side: one per 8-bit code word of 4 D3 blocks. */
export function inputGroupsOf(w: InputsI8Operand): number {
  return Math.ceil(w.blocksPerColumn / 4);
}

/**
 * The x̃ a matrix reads and how it is grouped: inputs rounded for one operand serve another exactly
 * when their keys agree. The rotation plan depends on (rows, length) (`rotationPlan`): n = 1000 padded
 * to 1024 and n = 1024 share a length, not a plan.
 */
export function inputsI8Key(w: InputsI8Operand): string {
  const rotation = w.rotate ? `rotated (${w.rows} rows, length ${w.length}, seed ${w.seed})` : `unrotated (${w.rows} rows)`;
  return `${rotation}, keptLength ${w.keptLength}, ${inputGroupsOf(w)} groups`;
}

/**
 * x̃ rounded to int8 once (by {@link dispatchInputsI8}), for every int8-input GEMV whose W reads the
 * same x̃: pass it as `inputsI8`. Its buffers belong to the scratch it was recorded with.
 */
export interface RecordedInputsI8 {
  /** A vec4<u32> per group and right-hand side (block b's three levels in word b), then a scale (f32 bits) per group and right-hand side. */
  readonly inputs: GPUBuffer;
  readonly rhs: number;
  /** The operand shape it was rounded for (rotation, keptLength, groups), compared by the GEMVs. */
  readonly operand: string;
}

/** The argument of the int8-input GEMVs (`dispatchUniversalGemvI8`, `dispatchLatticeGemvI8`) that takes shared inputs. */
export interface SharedInputsI8Arg {
  /**
   * x̃ already rounded to int8 for W (`dispatchInputsI8`, shared by the layers that read the same x̃);
   * then the call neither rotates nor rounds (and takes no `xRotated`). X is still read for Σx when W
   * is centred.
   */
  readonly inputsI8?: RecordedInputsI8;
}

/** Arguments of {@link dispatchInputsI8}. */
export interface InputsI8Args {
  /** A matrix the inputs are for: any int8-input GEMV operand with the same rotation, keptLength and groups may use them. */
  readonly w: InputsI8Operand;
  /** x̃ = R·X rotated with W's seed (`dispatchHadamard`), or X itself when W is not rotated: N × rhs f32 (N = W.length). */
  readonly xRotated: GPUBuffer;
  readonly xRotatedOffset?: number;
  readonly rhs: number;
}

/** The keys of {@link InputsI8Args}, which the E8 and D3 quad forms of the call share. */
export const INPUTS_I8_ARG_KEYS = ['w', 'xRotated', 'xRotatedOffset', 'rhs'] as const satisfies readonly (keyof InputsI8Args)[];

/**
 * Records x̃ → int8 (groups of 12, scale max|x̃|/127) into `encoder` in a pass of its own, into two
 * scratch buffers, once for several int8-input GEMVs that read the same x̃. x̃ and the rounded inputs
 * of all `rhs` right-hand sides must each fit one storage binding (every realistic decode batch does).
 *
 * @example
 * dispatchHadamard(device, encoder, scratch, { input: x, output: xRotated, rows: q.rows, cols: 1, seed: q.seed });
 * const inputsI8 = dispatchInputsI8(device, encoder, scratch, { w: q, xRotated, rhs: 1 });
 * for (const [w, y] of [[q, qOut], [k, kOut], [v, vOut]] as const) dispatchLatticeGemvI8(device, encoder, scratch, { w, x, y, rhs: 1, inputsI8, dotPath });
 */
export function dispatchInputsI8(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: InputsI8Args): RecordedInputsI8 {
  checkDispatch(device, encoder, scratch, args, 'dispatchInputsI8');
  checkOptionsObject(args, INPUTS_I8_ARG_KEYS, 'dispatchInputsI8 arguments');
  const { w, rhs } = args;
  checkPositiveInteger(rhs, 'int8 inputs: rhs');
  const offset = args.xRotatedOffset ?? 0;
  checkBufferRange(args.xRotated, offset, 4 * w.length * rhs, 'int8 inputs: xRotated');
  const groups = inputGroupsOf(w);
  checkInputsFitBinding(device, w, rhs);
  const window = bindingWindow(offset, 4 * w.length * rhs, device.limits.minStorageBufferOffsetAlignment);
  const label = `int8 inputs (${inputsI8Key(w)}, ${counted(rhs, 'right-hand side')})`;
  const pass = encoder.beginComputePass({ label });
  const inputs = recordInputsI8(device, pass, scratch, {
    xRotated: windowBinding(args.xRotated, window),
    xRotatedFirst: window.firstElement,
    length: w.length,
    kept: w.keptLength,
    groups,
    rhs,
    label,
  });
  pass.end();
  return { inputs, rhs, operand: inputsI8Key(w) };
}

/** Arguments of {@link dispatchRotatedInputsI8} (and, with its operand, `dispatchRotatedE8InputsI8`). */
export interface RotatedInputsI8Args<W extends Pick<InputsI8Operand, 'rows' | 'keptLength' | 'rotate' | 'seed'> = InputsI8Operand> {
  /** A rotated matrix the inputs are for (its rows, length, seed, keptLength and groups). */
  readonly w: W;
  /** X: rows × rhs in the original basis, f32 or f16 (`inputFormat`). */
  readonly x: GPUBuffer;
  readonly xOffset?: number;
  readonly inputFormat?: ActivationFormat;
  /** Receives x̃ = R·X (N × rhs f32), for the layers that read it in f32. */
  readonly xRotated: GPUBuffer;
  readonly rhs: number;
  /** The rotation's `HadamardOptions.spread` (default true; benchmarks compare both). */
  readonly spread?: boolean;
  /** The rotation's `HadamardOptions.batchedLoads` (default false; an experiment the benchmark times). */
  readonly batchedLoads?: boolean;
}

/** The keys of {@link RotatedInputsI8Args}. */
export const ROTATED_INPUTS_I8_ARG_KEYS = ['w', 'x', 'xOffset', 'inputFormat', 'xRotated', 'rhs', 'spread', 'batchedLoads'] as const satisfies readonly (keyof RotatedInputsI8Args)[];

/**
 * Records x̃ = R·X with W's seed into `xRotated` and x̃ rounded to int8 for W (as `dispatchHadamard`
 * then `dispatchInputsI8`, bit for bit): in the rotation's own dispatches where its last stage takes
 * one pass (`rotationRoundsInPass`: the rounding runs while that stage's window of the rotated column
 * is in workgroup memory), else in the rotation's and one more. What a decode step pays per group of int8-input layers before their products.
 *
 * @example
 * const inputsI8 = dispatchRotatedInputsI8(device, encoder, scratch, { w: q, x, xRotated, rhs: 1 });
 * for (const [w, y] of [[q, qOut], [k, kOut], [v, vOut]] as const) dispatchLatticeGemvI8(device, encoder, scratch, { w, y, rhs: 1, inputsI8, dotPath });
 */
export function dispatchRotatedInputsI8(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, args: RotatedInputsI8Args): RecordedInputsI8 {
  checkDispatch(device, encoder, scratch, args, 'dispatchRotatedInputsI8');
  checkOptionsObject(args, ROTATED_INPUTS_I8_ARG_KEYS, 'dispatchRotatedInputsI8 arguments');
  const { w, rhs } = args;
  const groups = inputGroupsOf(w);
  return rotateAndRound(device, encoder, scratch, args, 'int8 inputs: dispatchRotatedInputsI8', {
    groups,
    groupSize: INPUT_GROUP,
    bytes: inputsI8Bytes(groups, rhs),
    operand: inputsI8Key(w),
    checkFit: () => checkInputsFitBinding(device, w, rhs),
    apart: (xRotated) => dispatchInputsI8(device, encoder, scratch, { w, xRotated, rhs }),
  });
}

/** An x̂ layout as {@link rotateAndRound} makes it: D3's groups of 12 here, E8's groups of 32 in e8ResidueGemvI8.ts. */
export interface RotationRounding {
  readonly groups: number;
  readonly groupSize: NonNullable<HadamardInt8Output['groupSize']>;
  /** Bytes of x̂ for the call's right-hand sides. */
  readonly bytes: number;
  /** The operand key the result carries. */
  readonly operand: string;
  /** Refuses right-hand sides whose x̃ or x̂ would not fit one storage binding. */
  readonly checkFit: () => void;
  /** Rounds x̃ (already rotated into `xRotated`) in a dispatch of its own. */
  readonly apart: (xRotated: GPUBuffer) => RecordedInputsI8;
}

/**
 * Records x̃ = R·X with W's seed into `args.xRotated` and x̃ rounded to int8 in `layout`: in the
 * rotation's own last pass where its last stage takes one (`rotationRoundsInPass`), else the rotation
 * and then `layout.apart`. `what` names the caller in errors.
 */
export function rotateAndRound(
  device: GPUDevice,
  encoder: GPUCommandEncoder,
  scratch: GpuScratch,
  args: RotatedInputsI8Args<Pick<InputsI8Operand, 'rows' | 'length' | 'keptLength' | 'rotate' | 'seed'>>,
  what: string,
  layout: RotationRounding,
): RecordedInputsI8 {
  const { w, rhs } = args;
  check(w.rotate, () => `${what} is for rotated matrices (round an unrotated x in a dispatch of its own)`);
  checkPositiveInteger(rhs, `${what}: rhs`);
  const spread = args.spread ?? true;
  const rotation = { input: args.x, inputOffset: args.xOffset ?? 0, inputFormat: args.inputFormat ?? 'f32', output: args.xRotated, rows: w.rows, length: w.length, cols: rhs, seed: w.seed, spread, ...(args.batchedLoads === undefined ? {} : { batchedLoads: args.batchedLoads }) };
  if (!rotationRoundsInPass(device, w.rows, { columns: rhs, spread, length: w.length })) {
    dispatchHadamard(device, encoder, scratch, rotation);
    return layout.apart(args.xRotated);
  }
  layout.checkFit();
  const inputs = scratch.intermediate(`int8 inputs (${layout.operand}, rounded in the rotation): levels and scales`, layout.bytes, STORAGE_USAGE);
  dispatchHadamard(device, encoder, scratch, { ...rotation, int8Output: { buffer: inputs, kept: w.keptLength, groups: layout.groups, groupSize: layout.groupSize } });
  return { inputs, rhs, operand: layout.operand };
}

/**
 * The most right-hand sides whose x̃ (from any 4-byte aligned offset) and x̂ fit one storage binding of
 * `device`: what `dispatchInputsI8` takes in one call (QuantizedLinear records more tokens in chunks of it).
 */
export function largestInputsRhs(device: GPUDevice, w: InputsI8Operand): number {
  const alignment = device.limits.minStorageBufferOffsetAlignment;
  const maxBinding = device.limits.maxStorageBufferBindingSize;
  return Math.min(itemsPerBinding(INPUT_BYTES_PER_GROUP * inputGroupsOf(w), maxBinding - 16, alignment), itemsPerBinding(4 * w.length, maxBinding, alignment));
}

/** Refuses right-hand sides whose x̃ or x̂ would not fit one storage binding. */
function checkInputsFitBinding(device: GPUDevice, w: InputsI8Operand, rhs: number): void {
  const largest = largestInputsRhs(device, w);
  check(rhs <= largest, () => `int8 inputs: ${rhs} right-hand sides of ${w.length} entries do not fit one storage binding; round at most ${largest} at a time`);
}

/**
 * What `beginGemvI8` needs of a matrix's x̂: D3's groups of 12 (`d3InputsI8Form`), or the E8 residue
 * GEMV's groups of 32 (`e8InputsI8Form`, e8ResidueGemvI8.ts).
 */
export interface InputsI8Form {
  /** The key of x̂ rounded for this matrix (`inputsI8Key`, `e8InputsKey`). */
  readonly operand: string;
  /** The function that rounds x̃ once for several calls, named when other `inputsI8` are refused. */
  readonly source: string;
  /** The most right-hand sides whose x̃ and x̂ fit one storage binding of the device. */
  readonly largestRhs: number;
  /** Rotates X into `xRotated` and rounds it (`rotateAndRound`: in the rotation's last pass). */
  readonly rotateAndRound: (args: Omit<RotatedInputsI8Args, 'w'>) => RecordedInputsI8;
}

/** The x̂ form of a D3 matrix (groups of 12), for `beginGemvI8`. */
export function d3InputsI8Form(device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, w: InputsI8Operand): InputsI8Form {
  return {
    operand: inputsI8Key(w),
    source: 'dispatchInputsI8',
    largestRhs: largestInputsRhs(device, w),
    rotateAndRound: (args) => dispatchRotatedInputsI8(device, encoder, scratch, { ...args, w }),
  };
}

/**
 * Whether an int8-input GEMV call can round x̃ inside its rotation's last pass (`form.rotateAndRound`,
 * one dispatch fewer than rotating and then rounding, with the same bits): W rotated, X given (no
 * `xRotated`, no `inputsI8`), a rotation whose last stage takes one pass on this device, every
 * right-hand side's x̂ in one binding, no binding-size override.
 */
function roundsInRotation(device: GPUDevice, w: GemvOperand, args: GemvCallArgs & SharedInputsI8Arg, form: InputsI8Form): boolean {
  return (
    args.inputsI8 === undefined &&
    w.rotate &&
    args.x !== undefined &&
    args.xRotated === undefined &&
    args.maxBindingBytes === undefined &&
    Number.isInteger(args.rhs) &&
    args.rhs >= 1 &&
    args.rhs <= form.largestRhs &&
    rotationRoundsInPass(device, w.rows, { columns: args.rhs, length: w.length })
  );
}

/**
 * `beginGemv` for an int8-input GEMV, with the x̂ the kernel reads: `inputsI8` as given (checked
 * against W's `form` and the call), or, where the call rotates X itself and the rotation can round x̃
 * in its last pass, x̂ recorded here by `form.rotateAndRound`; else undefined, and the kernel rounds
 * the call's x̃ itself (D3: per range of right-hand sides, `inputsI8ForRange`).
 */
export function beginGemvI8(
  device: GPUDevice,
  encoder: GPUCommandEncoder,
  scratch: GpuScratch,
  w: GemvOperand,
  args: GemvCallArgs & SharedInputsI8Arg,
  what: string,
  shape: Omit<GemvCallShape, 'readsXRotated'>,
  form: InputsI8Form,
): { readonly call: GemvCall; readonly shared: RecordedInputsI8 | undefined } {
  const inRotation = roundsInRotation(device, w, args, form);
  const call = beginGemv(device, encoder, scratch, w, args, what, { ...shape, readsXRotated: args.inputsI8 === undefined && !inRotation });
  let shared = args.inputsI8;
  if (inRotation && args.x !== undefined) {
    const xRotated = scratch.intermediate(`${what}: R·x (${form.operand})`, 4 * w.length * call.rhs, STORAGE_USAGE);
    shared = form.rotateAndRound({ x: args.x, xOffset: args.xOffset ?? 0, xRotated, rhs: call.rhs });
  }
  if (shared !== undefined) checkRecordedInputsI8(shared, form, call.rhs, what);
  return { call, shared };
}

/** Checks that `inputs` (a GEMV's `inputsI8`) were rounded for W's x̃ (`form`) and the call's right-hand sides. */
function checkRecordedInputsI8(inputs: RecordedInputsI8, form: InputsI8Form, rhs: number, what: string): void {
  check(typeof inputs === 'object' && inputs !== null && inputs.inputs !== undefined, () => `${what}: inputsI8 must come from ${form.source}`);
  check(inputs.operand === form.operand, () => `${what}: inputsI8 were rounded for ${inputs.operand}, but W reads ${form.operand}`);
  check(inputs.rhs === rhs, () => `${what}: inputsI8 hold ${inputs.rhs} right-hand sides, the call has ${rhs}`);
}

/**
 * x̂ of one range of right-hand sides as a product dispatch binds it: one binding, the range's first
 * level word as a vec4 index (`codesFirst`) and its first scale as a u32 index (`scalesFirst`).
 */
export interface InputsI8Range {
  readonly binding: GPUBufferBinding;
  readonly codesFirst: number;
  readonly scalesFirst: number;
}

/**
 * The x̂ of right-hand sides [range.first, +range.count) of a call: the caller's shared inputs (the
 * whole buffer, which `dispatchInputsI8` keeps within one binding), or x̃ of the range rounded now
 * (into `pass`, before the product that reads it).
 */
export function inputsI8ForRange(device: GPUDevice, pass: GPUComputePassEncoder, scratch: GpuScratch, call: GemvCall, w: InputsI8Operand, shared: RecordedInputsI8 | undefined, range: { readonly first: number; readonly count: number }, label: string): InputsI8Range {
  const groups = inputGroupsOf(w);
  if (shared !== undefined) {
    return { binding: { buffer: shared.inputs }, codesFirst: groups * range.first, scalesFirst: inputsI8ScalesFirst(groups, shared.rhs) + groups * range.first };
  }
  const window = bindingWindow(call.xRotatedOffset + 4 * call.length * range.first, 4 * call.length * range.count, call.alignment);
  const inputs = recordInputsI8(device, pass, scratch, {
    xRotated: windowBinding(call.xRotated, window),
    xRotatedFirst: window.firstElement,
    length: call.length,
    kept: w.keptLength,
    groups,
    rhs: range.count,
    label,
  });
  return { binding: { buffer: inputs }, codesFirst: 0, scalesFirst: inputsI8ScalesFirst(groups, range.count) };
}

/** Invocations per workgroup of shaders/gemv_i8_inputs.wgsl: one per group of 12. */
export const INPUTS_I8_THREADS = 256;

const InputParams = /*#__PURE__*/ new UniformLayout('InputI8Params', {
  groups: 'u32', // int8 groups per right-hand side (= code words per column)
  rhs: 'u32',
  kept: 'u32', // keptLength: coordinates from here on are 0
  x_rotated_first: 'u32', // element of x̃[0, first rhs] in its binding
  x_stride: 'u32', // elements between x̃ columns
  scales_first: 'u32', // word of the first scale in the output (after 4·groups·rhs level words)
});


/** The WGSL of x̃ → int8 (shaders/gemv_i8_inputs.wgsl with its parameters). */
export function inputsI8ShaderSource(): string {
  return `${InputParams.wgsl()}\n${int8GroupSource}\n${inputSource}`;
}


const inputPipelines = /*#__PURE__*/ new KernelPipelines({
  label: 'gemv int8 inputs',
  bindings: ['uniform', 'read-only-storage', 'storage'],
  compile: (device, pipelineLayout) => createKernelPipeline(device, pipelineLayout, { label: 'gemv int8 inputs', code: inputsI8ShaderSource() }),
});


/** The call's ranges of right-hand sides, split further so that x̂ of a range (4 words and a scale per group, padded to 16 bytes) fits a binding. */
export function inputRangesI8(call: GemvCall, groups: number): { first: number; count: number }[] {
  return call.rhsRanges.flatMap((range) =>
    columnRanges(range.count, Math.min(itemsPerBinding(INPUT_BYTES_PER_GROUP * groups, call.maxBinding - 16, call.alignment), call.maxGroups)).map((part) => ({ first: range.first + part.first, count: part.count })),
  );
}


/** Where {@link recordInputsI8} reads x̃ and how much of it. */
interface RecordInputsI8Args {
  /** x̃: `rhs` columns of `length` f32 from element `xRotatedFirst` of the binding. */
  readonly xRotated: GPUBufferBinding;
  readonly xRotatedFirst: number;
  readonly length: number;
  /** keptLength: coordinates from here on round to 0. */
  readonly kept: number;
  /** Groups of INPUT_GROUP coordinates per right-hand side (the matrix's code words per column). */
  readonly groups: number;
  readonly rhs: number;
  readonly label: string;
}


/**
 * Records x̃ → int8 (shaders/gemv_i8_inputs.wgsl; CPU twin `quantizeInputsI8`) into `pass`, into one
 * scratch buffer: a vec4<u32> per group and right-hand side (block b's three levels in word b), then
 * the scales (f32 bits, one per group and right-hand side, from word 4·groups·rhs), padded to 16 bytes
 * so that a vec4 view covers the last scale. Shared by the int8-input universal and deterministic GEMVs.
 */
export function recordInputsI8(device: GPUDevice, pass: GPUComputePassEncoder, scratch: GpuScratch, args: RecordInputsI8Args): GPUBuffer {
  const { groups, rhs, label } = args;
  const inputs = scratch.intermediate(`${label}: levels and scales`, inputsI8Bytes(groups, rhs), STORAGE_USAGE);
  const { layout, pipeline } = inputPipelines.get(device, undefined);
  const params = InputParams.pack({ groups, rhs, kept: args.kept, x_rotated_first: args.xRotatedFirst, x_stride: args.length, scales_first: inputsI8ScalesFirst(groups, rhs) });
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, createKernelBindGroup(device, layout, label, [{ buffer: scratch.uniform(`${label} params`, params) }, args.xRotated, { buffer: inputs }]));
  const [gx, gy] = workgroupGrid(Math.ceil((groups * rhs) / INPUTS_I8_THREADS), device.limits.maxComputeWorkgroupsPerDimension);
  pass.dispatchWorkgroups(gx, gy);
  return inputs;
}


/** x̃ rounded as shaders/gemv_i8_inputs.wgsl does: levels (one per coordinate of the groups) and a scale per group. */
export interface InputsI8 {
  /** groupSize · groups levels in [−127, 127] (0 past keptLength). */
  readonly levels: Int8Array;
  /** Per group s = f32(max|x̃| / 127), as the GPU stores it (0 for a zero group, NaN for a group with a non-finite entry). */
  readonly scales: Float64Array;
}

/**
 * CPU twin of shaders/gemv_i8_inputs.wgsl for one right-hand side: x̃ (at least `kept` entries)
 * rounded to int8 per group of `groupSize` coordinates ({@link INPUT_GROUP} by default; the E8
 * residue GEMV's groups are 32), `groups` groups, by the shader's f32 expressions (`int8Level`,
 * `int8Scale`). The GPU divides within 2.5 ULP, so a level may differ by one where 127·x̃/m is within
 * 10⁻⁴ of a half-integer.
 *
 * @example
 * quantizeInputsI8(new RandomizedHadamard(q.rows, q.seed, q.length).forward(x), q.keptLength, Math.ceil(q.blocksPerColumn / 4));
 */
export function quantizeInputsI8(xRotated: ArrayLike<number>, kept: number, groups: number, groupSize: number = INPUT_GROUP): InputsI8 {
  check(Number.isInteger(groups) && groups >= 0 && kept <= groups * groupSize && kept <= xRotated.length, 'quantizeInputsI8: kept must fit both x̃ and the groups');
  const levels = new Int8Array(groups * groupSize);
  const scales = new Float64Array(groups);
  for (let g = 0; g < groups; g++) {
    let m = 0;
    let finite = true;
    const end = Math.min(kept, (g + 1) * groupSize);
    for (let k = g * groupSize; k < end; k++) {
      const v = xRotated[k] as number;
      finite &&= Number.isFinite(v);
      m = Math.max(m, Math.abs(v));
    }
    scales[g] = int8Scale(m, finite);
    if (!(m > 0) || !finite) continue;
    for (let k = g * groupSize; k < end; k++) {
      levels[k] = int8Level(xRotated[k] as number, m);
    }
  }
  return { levels, scales };
}
