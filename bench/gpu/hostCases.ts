import { createBuffer, createBufferWithData, readBufferExclusive, STORAGE_USAGE, uploadToBuffer } from '../../src/gpu/buffers.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { dispatchEpilogue } from '../../src/gpu/kernels/activationIo.js';
import launchProbeSource from './launch_probe.wgsl?raw';
import { dispatchF16Gemv, f16GemvSupported, f16PaddedLength, f16WeightBytes, packF16Weights } from '../../src/gpu/kernels/f16Gemv.js';
import type { CommandTarget, PreparedCommands } from '../../src/gpu/prepared.js';
import { dispatchUniversalGemv } from '../../src/gpu/kernels/universalGemv.js';
import { QuantizedLinear, type LinearWeight, type QuantizedLinearGroup } from '../../src/gpu/quantizedLinear.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { dispatchHadamard } from '../../src/gpu/kernels/hadamard.js';
import { dispatchRotatedInputsI8 } from '../../src/gpu/kernels/inputsI8.js';
import { quantize } from '../../src/quantize/quantize.js';
import { float16Bits } from '../../src/scalar/floatFormats.js';
import type { GpuUniversalMatrix } from '../../src/gpu/universalOperand.js';
import type { GpuDeterministicMatrix } from '../../src/gpu/latticeOperand.js';
import type { DotPath } from '../../src/gpu/kernels/e8Matmul.js';
import type { SchemeName } from '../../src/quantize/schemes.js';
import {
  copyOf,
  countAllocations,
  countDispatches,
  failedRow,
  gemvShape,
  gigaPerSecond,
  makeCopies,
  median,
  prepared,
  row,
  rowSamples,
  timeCalls,
  uploadTiled,
  type BenchRow,
  type BenchSettings,
  type RowCheck,
  type GemvProblem,
} from './common.js';
import { deterministicBuffers, deterministicCopy, deterministicGemvBytes, quantizedW, universalBuffers, universalCopy, universalGemvBytes } from './gemvCases.js';

/*
 * Host cost of recording GEMVs, and a decode step.
 * - `hostRows`: µs of host time per `QuantizedLinear.record` call (the prepared path: the first call
 *   with a given x/y prepares uniforms and bind groups, every later one replays them), and per plain
 *   `dispatchUniversalGemv` call with a fresh scratch (what a caller without the prepared path pays);
 *   GPU objects created by the steady-state calls are counted by wrapping the device's create methods.
 *   Calls are recorded into an encoder that is finished but never submitted (host time only).
 * - `decodeStepRow`: `layers` distinct QuantizedLinear layers (copies of one quantized square W, scaled
 *   by 1/√n so activations keep their size), recorded into ONE command encoder, x → y → x …
 *   (ping-pong: each layer reads the previous one's output), ONE submit: GPU time per step and host µs
 *   per layer record.
 * - `f16DecodeStepRow`: the same step with f16 weights (the f16 GEMV, one dispatch per layer): the
 *   baseline of the decode steps' "vs f16" (same shape and layer count), dispatch overheads included.
 */

/**
 * Host time of `call(i)` for i = 0 … 5 · calls − 1, in 5 timed rounds of `calls` calls: the median µs
 * per call, and the GPU objects created over all 5 · calls calls. `i` runs on across rounds: a call
 * cycling through outputs by it continues its cycle (restarted each round, a round of a count that is
 * not a multiple of the cycle began on outputs still prepared).
 */
function timedRounds(device: GPUDevice, calls: number, call: (i: number) => void): { usPerCall: number; allocations: number } {
  const timesUs: number[] = [];
  const { allocations } = countAllocations(device, () => {
    for (let round = 0; round < 5; round++) {
      const start = performance.now();
      for (let i = 0; i < calls; i++) call(round * calls + i);
      timesUs.push(((performance.now() - start) * 1000) / calls);
    }
  });
  return { usPerCall: median(timesUs), allocations };
}

/**
 * The README's cost of a record that cycles through more (x, y, offsets, tokens) sets than the layer's
 * `maxPrepared`: each call prepares again (uniforms and bind groups, freed by the garbage collector).
 * A layer keeping 2 sets records into 3 outputs in turn; the row's µs per call compares with the
 * prepared row's replay, and `allocationsAfterFirst` counts GPU objects per call.
 */
function repreparingRow(device: GPUDevice, w: LinearWeight, x: GPUBuffer, outputs: number, calls: number, kernel: string, shape: string): BenchRow {
  const maxPrepared = 2;
  const ys = Array.from({ length: maxPrepared + 1 }, (_, i) => createBuffer(device, `bench host re-prepare y ${i}`, 4 * outputs, STORAGE_USAGE));
  const layer = QuantizedLinear.create(device, w, { label: 'bench host re-preparing layer', maxTokens: 1, maxPrepared });
  try {
    const repreparedCalls = Math.max(ys.length, Math.round(calls / 10));
    const encoder = device.createCommandEncoder({ label: 'bench host re-preparing records' });
    for (const y of ys) layer.record(encoder, x, y); // the first preparations, not timed
    const { usPerCall, allocations } = timedRounds(device, repreparedCalls, (i) => layer.record(encoder, x, ys[i % ys.length] as GPUBuffer));
    encoder.finish();
    return row({ kernel, family: 'host', shape, k: 1, hostUsPerCall: usPerCall, allocationsAfterFirst: allocations / (5 * repreparedCalls), callsPerSample: repreparedCalls, note: `maxPrepared ${maxPrepared}, ${ys.length} outputs in turn; allocationsAfterFirst: GPU objects per call (not submitted)` });
  } catch (error) {
    return failedRow({ kernel, family: 'host', shape }, error);
  } finally {
    layer.destroy();
    for (const y of ys) y.destroy();
  }
}

export async function hostRows(context: GpuContext, problem: GemvProblem, scheme: SchemeName, calls: number, settings: BenchSettings): Promise<BenchRow[]> {
  const { device } = context;
  const shape = gemvShape(problem);
  const preparedName = `host: QuantizedLinear.record (prepared), ${scheme}`;
  const plainName = `host: dispatchUniversalGemv (fresh scratch per call), ${scheme}`;
  let q: Awaited<ReturnType<typeof quantizedW>> | undefined;
  const buffers: GPUBuffer[] = [];
  try {
    q = await quantizedW(device, problem, scheme, settings.seed);
    if (q.mode !== 'universal') throw new Error(`${scheme} is not universal`);
    const w = q;
    const x = createBuffer(device, 'bench host x', 4 * problem.n, STORAGE_USAGE);
    const y = createBuffer(device, 'bench host y', 4 * problem.cols, STORAGE_USAGE);
    buffers.push(x, y);
    const layer = QuantizedLinear.create(device, w, { label: 'bench host layer', maxTokens: 1 });
    const rows: BenchRow[] = [];
    try {
      const first = device.createCommandEncoder({ label: 'bench host first record' });
      layer.record(first, x, y); // prepares
      first.finish();
      // 5 rounds of `calls` records into `target`: the median µs per call and the GPU objects created.
      const timedRecords = (target: CommandTarget, kernel: string, into: string): BenchRow => {
        const { usPerCall, allocations } = timedRounds(device, calls, () => layer.record(target, x, y));
        return row({ kernel, family: 'host', shape, k: 1, hostUsPerCall: usPerCall, allocationsAfterFirst: allocations, callsPerSample: calls, note: `median of 5 rounds of ${calls} calls into ${into} (not submitted)` });
      };
      const encoder = device.createCommandEncoder({ label: 'bench host records' });
      rows.push(timedRecords(encoder, preparedName, 'one encoder'));
      encoder.finish();
      // The same calls into one compute pass of the caller's: no pass per call.
      const passEncoder = device.createCommandEncoder({ label: 'bench host records in one pass' });
      const pass = passEncoder.beginComputePass({ label: 'bench host pass' });
      rows.push(timedRecords(pass, `${preparedName}, into one compute pass`, 'one compute pass'));
      pass.end();
      passEncoder.finish();
    } finally {
      layer.destroy();
    }
    rows.push(repreparingRow(device, w, x, problem.cols, calls, `host: QuantizedLinear.record cycling through maxPrepared + 1 outputs (re-prepares every call), ${scheme}`, shape));
    const plainCalls = Math.max(1, Math.round(calls / 10));
    const encoder = device.createCommandEncoder({ label: 'bench host plain dispatches' });
    const scratches: GpuScratch[] = [];
    const { usPerCall, allocations } = timedRounds(device, plainCalls, () => {
      const scratch = new GpuScratch(device);
      dispatchUniversalGemv(device, encoder, scratch, { w, x, y, rhs: 1 });
      scratches.push(scratch);
    });
    encoder.finish();
    for (const scratch of scratches) scratch.destroy();
    rows.push(row({ kernel: plainName, family: 'host', shape, k: 1, hostUsPerCall: usPerCall, allocationsAfterFirst: allocations / (5 * plainCalls), callsPerSample: plainCalls, note: 'allocationsAfterFirst: GPU objects per call' }));
    return rows;
  } catch (error) {
    return [failedRow({ kernel: preparedName, family: 'host', shape }, error)];
  } finally {
    q?.destroy();
    for (const buffer of buffers) buffer.destroy();
  }
}

/** The timing of the rows whose samples each hold many calls (steps, chains, rotations): one warm-up, at most 5 samples (2 when quick). */
function fewSamples(settings: BenchSettings): { warmup: number; samples: number } {
  return { warmup: 1, samples: Math.min(settings.samples, settings.quick ? 2 : 5) };
}

/** What a decode-step row reports besides its timing (see {@link measureStep}). */
export interface StepFigures {
  readonly kernel: string;
  readonly shape: string;
  /** Layers one step records (host µs and dispatches are per layer). */
  readonly layers: number;
  /** Bytes of every layer's weights. */
  readonly weightBytes: number;
  /** Bytes one step reads: the weights and the activations. */
  readonly bytesRead: number;
  /** Weights of every layer (for bits per entry). */
  readonly parameters: number;
  readonly note: string;
  readonly spirvKey?: string;
}

/**
 * The row of a decode step: `recordStep` recorded once to prepare (first recording), then host µs per
 * layer (median of 9 recordings: the first ones still warm up the JavaScript engine), GPU objects created
 * by those recordings, dispatches per layer, and GPU time of the whole step.
 */
export async function measureStep(context: GpuContext, recordStep: (encoder: GPUCommandEncoder) => void, figures: StepFigures, settings: BenchSettings): Promise<BenchRow> {
  const { device } = context;
  const { kernel, layers } = figures;
  const first = device.createCommandEncoder({ label: 'bench step first recording' });
  recordStep(first); // prepares every layer's commands
  first.finish();
  const hostUs: number[] = [];
  const { allocations } = countAllocations(device, () => {
    for (let round = 0; round < 9; round++) {
      const encoder = device.createCommandEncoder({ label: 'bench step host timing' });
      const start = performance.now();
      recordStep(encoder);
      hostUs.push(((performance.now() - start) * 1000) / layers);
      encoder.finish();
    }
  });
  const dispatches = countDispatches(device, recordStep);
  const timing = await timeCalls(context, kernel, 1, recordStep, settings, fewSamples(settings));
  const ms = timing.perCallMs;
  return row({
    kernel,
    family: 'decode-step',
    shape: figures.shape,
    k: 1,
    bitsPerEntry: (8 * figures.weightBytes) / figures.parameters,
    bytesRead: figures.bytesRead,
    ms,
    gbps: gigaPerSecond(figures.bytesRead, ms),
    hostUsPerCall: median(hostUs),
    dispatchesPerCall: dispatches / layers,
    allocationsAfterFirst: allocations,
    copies: layers,
    workingSetBytes: figures.weightBytes,
    callsPerSample: layers,
    ...rowSamples(timing),
    timing: timing.method,
    note: figures.note,
    spirvKey: figures.spirvKey ?? null,
  });
}

/** Variants of {@link decodeStepRow}. */
export interface DecodeStepOptions {
  /** The layers take int8 inputs (`int8Inputs`: d3-q6, d3-q6-deterministic, e8-q16-deterministic) with this dot path; default null. */
  readonly int8?: DotPath | null;
  /** Consecutive layers read one input in groups of this size (`QuantizedLinear.group`); default 1. */
  readonly groupSize?: number;
  /** The layers' activation format (f16: converted on the way in and out, as an LLM runs); default f32. */
  readonly activations?: 'f32' | 'f16';
  /** Record the whole step into one compute pass (`record(pass, …)`) instead of a pass per layer; default false. */
  readonly onePass?: boolean;
}

/**
 * A decode step: `layers` square QuantizedLinear layers of `scheme` (distinct weights) recorded into one
 * encoder and submitted once (see {@link DecodeStepOptions}: int8 inputs, groups of layers reading one
 * input — an attention block's q, k and v, recorded with `QuantizedLinear.group`: one rotation and one
 * int8 rounding per group — and f16 activations).
 */
export async function decodeStepRow(
  context: GpuContext,
  problem: GemvProblem,
  scheme: SchemeName,
  layers: number,
  settings: BenchSettings,
  options: DecodeStepOptions = {},
): Promise<BenchRow> {
  const { device } = context;
  const int8 = options.int8 ?? null;
  const groupSize = options.groupSize ?? 1;
  const activationFormat = options.activations ?? 'f32';
  const onePass = options.onePass ?? false;
  const grouping = groupSize > 1 ? `, groups of ${groupSize} reading one input` : '';
  const kernel = `decode step: ${layers} × QuantizedLinear ${scheme}${int8 === null ? '' : ', int8 inputs'}${grouping}${activationFormat === 'f16' ? ', f16 activations' : ''}, ${onePass ? 'one compute pass' : 'one encoder'}, one submit`;
  const shape = gemvShape(problem);
  const owned: GPUBuffer[] = [];
  const linears: QuantizedLinear[] = [];
  const groups: QuantizedLinearGroup[] = [];
  let q: Awaited<ReturnType<typeof quantizedW>> | undefined;
  try {
    if (problem.n !== problem.cols) throw new Error('the decode step chains square layers');
    q = await quantizedW(device, problem, scheme, settings.seed);
    const original = q;
    // Distinct copies of the weights, as a model's layers are (universal or deterministic codes).
    let weights: LinearWeight[];
    let layerBytes: number;
    if (original.mode === 'universal') {
      const copies = await makeCopies<GpuUniversalMatrix>(device, original, layers, (encoder, i) => universalCopy(device, encoder, original, i));
      for (const w of copies.slice(1)) owned.push(...universalBuffers(w));
      layerBytes = universalGemvBytes(device, original, int8 !== null);
      weights = copies;
    } else {
      const copies = await makeCopies<GpuDeterministicMatrix>(device, original, layers, (encoder, i) => deterministicCopy(device, encoder, original, i));
      for (const w of copies.slice(1)) owned.push(...deterministicBuffers(w));
      layerBytes = deterministicGemvBytes(original, int8 !== null);
      weights = copies;
    }
    const activations = [0, 1].map((i) => createBuffer(device, `bench decode activations ${i}`, 4 * problem.n, STORAGE_USAGE));
    // The other outputs of a group (only its first output feeds the next group).
    const sideOutputs = Array.from({ length: groupSize - 1 }, (_, i) => createBuffer(device, `bench decode side output ${i}`, 4 * problem.n, STORAGE_USAGE));
    owned.push(...activations, ...sideOutputs);
    const x = problem.x.data.subarray(0, problem.n);
    uploadToBuffer(device, activations[0] as GPUBuffer, activationFormat === 'f16' ? Uint16Array.from(x, (v) => float16Bits(v)) : x);
    for (const [i, w] of weights.entries()) {
      linears.push(QuantizedLinear.create(device, w, { label: `bench decode layer ${i}`, maxTokens: 1, int8Inputs: int8, activations: activationFormat }));
    }
    for (let first = 0; groupSize > 1 && first < linears.length; first += groupSize) groups.push(QuantizedLinear.group(linears.slice(first, first + groupSize)));
    const recordLayers = (target: CommandTarget): void => {
      if (groupSize === 1) {
        for (const [i, layer] of linears.entries()) layer.record(target, activations[i % 2] as GPUBuffer, activations[(i + 1) % 2] as GPUBuffer);
        return;
      }
      for (const [g, group] of groups.entries()) {
        group.record(target, activations[g % 2] as GPUBuffer, [activations[(g + 1) % 2] as GPUBuffer, ...sideOutputs].slice(0, group.layers.length));
      }
    };
    const recordStep = (encoder: GPUCommandEncoder): void => {
      if (!onePass) {
        recordLayers(encoder);
        return;
      }
      const pass = encoder.beginComputePass({ label: 'bench decode step' });
      recordLayers(pass);
      pass.end();
    };
    return await measureStep(context, recordStep, {
      kernel,
      shape,
      layers,
      weightBytes: layers * layerBytes,
      bytesRead: layers * (layerBytes + 4 * problem.n),
      parameters: layers * problem.n * problem.cols,
      note: 'ms is the GPU time of the whole step; host µs and dispatches are per layer',
    }, settings);
  } catch (error) {
    return failedRow({ kernel, family: 'decode-step', shape }, error);
  } finally {
    for (const group of groups) group.destroy();
    for (const layer of linears) layer.destroy();
    q?.destroy();
    for (const buffer of owned) buffer.destroy();
  }
}

/**
 * How a dispatch chain row records its `dispatches` dispatches, in one encoder:
 * - 'dependent passes': each in a pass of its own, reading what the previous one wrote (the 256-entry
 *   f32 epilogue, ping-ponging between two buffers);
 * - 'dependent, one pass': the same dispatches in one compute pass;
 * - 'independent, one pass': each reads one input and writes a buffer of its own, in one compute pass
 *   (no data dependence, but WebGPU implementations synchronize storage writes between dispatches);
 * - 'no memory, one pass' / 'no memory, 1024 workgroups, one pass': the launch probe
 *   (launch_probe.wgsl), which binds and touches no memory, so nothing asks for a barrier: one
 *   workgroup, or 1024, per dispatch.
 */
export type DispatchChainForm = 'dependent passes' | 'dependent, one pass' | 'independent, one pass' | 'no memory, one pass' | 'no memory, 1024 workgroups, one pass';

/** Every dispatch chain form, in the order the benchmark records them. */
export const DISPATCH_CHAIN_FORMS: readonly DispatchChainForm[] = ['dependent passes', 'dependent, one pass', 'independent, one pass', 'no memory, one pass', 'no memory, 1024 workgroups, one pass'];

/**
 * What one more dispatch costs on the GPU: `dispatches` dispatches of a tiny kernel recorded as
 * `form` says (DispatchChainForm). A layer's call is a chain of dependent passes (rotation, int8
 * rounding, product, epilogue), so the first form is the floor under a small layer's time and what
 * fusing or sharing a pass saves; the others say where that floor comes from (the pass, the barrier
 * before a dispatch that writes storage, or launching itself). `ms` is GPU time per dispatch.
 */
export async function dispatchChainRow(context: GpuContext, dispatches: number, settings: BenchSettings, form: DispatchChainForm = 'dependent passes'): Promise<BenchRow> {
  const { device } = context;
  const kernel =
    form === 'dependent passes'
      ? `dispatch chain: ${dispatches} dependent passes of a 256-entry kernel, one encoder`
      : form.startsWith('no memory')
        ? `dispatch chain: ${dispatches} dispatches of an empty kernel (${form.includes('1024') ? '1024 workgroups' : 'one workgroup'} of 64, no memory, no barrier), one compute pass`
        : `dispatch chain: ${dispatches} ${form === 'independent, one pass' ? 'independent dispatches (each writes its own buffer)' : 'dependent dispatches'} of a 256-entry kernel, one compute pass`;
  const shape = '256';
  const owned: GPUBuffer[] = [];
  const calls: PreparedCommands[] = [];
  try {
    let recordChain: (target: CommandTarget, call: number) => void;
    if (form.startsWith('no memory')) {
      const module = device.createShaderModule({ label: 'bench launch probe', code: launchProbeSource });
      const pipeline = device.createComputePipeline({ label: 'bench launch probe', layout: device.createPipelineLayout({ label: 'bench launch probe', bindGroupLayouts: [] }), compute: { module, entryPoint: 'main' } });
      const workgroups = form.includes('1024') ? 1024 : 1;
      recordChain = (target) => {
        const pass = target as GPUComputePassEncoder;
        pass.setPipeline(pipeline);
        pass.dispatchWorkgroups(workgroups);
      };
    } else {
      const independent = form === 'independent, one pass';
      const buffers = Array.from({ length: independent ? dispatches + 1 : 2 }, (_, i) => createBuffer(device, `bench dispatch chain ${i}`, 4 * 256, STORAGE_USAGE));
      owned.push(...buffers);
      for (let i = 0; i < (independent ? dispatches : 2); i++) {
        const input = buffers[independent ? dispatches : i % 2] as GPUBuffer;
        const output = buffers[independent ? i : (i + 1) % 2] as GPUBuffer;
        calls.push(prepared(device, `bench dispatch chain call ${i}`, (encoder, scratch) => dispatchEpilogue(device, encoder, scratch, { input, bias: null, rows: 256, columns: 1, output, format: 'f32' })));
      }
      recordChain = (target, call) => (calls[call % calls.length] as PreparedCommands).record(target);
    }
    const onePass = form !== 'dependent passes';
    const timing = await timeCalls(
      context,
      kernel,
      1,
      (encoder) => {
        if (!onePass) {
          for (let call = 0; call < dispatches; call++) recordChain(encoder, call);
          return;
        }
        const pass = encoder.beginComputePass({ label: `bench dispatch chain (${form})` });
        for (let call = 0; call < dispatches; call++) recordChain(pass, call);
        pass.end();
      },
      settings,
      fewSamples(settings),
    );
    return row({
      kernel,
      family: 'host',
      shape,
      k: 1,
      bytesRead: form.startsWith('no memory') ? 0 : 4 * 256,
      ms: timing.perCallMs / dispatches,
      copies: 1,
      callsPerSample: dispatches,
      ...rowSamples(timing, 1 / dispatches),
      timing: timing.method,
      note: form === 'dependent passes' ? 'ms is the GPU time per dispatch (launch and barrier between dependent passes)' : `ms is the GPU time per dispatch (${form})`,
    });
  } catch (error) {
    return failedRow({ kernel, family: 'host', shape }, error);
  } finally {
    for (const call of calls) call.destroy();
    for (const buffer of owned) buffer.destroy();
  }
}

/**
 * What a rotation row times: x → x̂ as a layer records it (the library's defaults), or the same in the
 * fewest passes (`spread: false`: the default before windows of ≥ 4096 entries of one column were
 * spread over passes), or the rotation alone in the fewest passes on one of its two paths, or split
 * into passes of at most SPLIT_ELEMENTS values (workgroup memory path) whatever the window.
 */
export type RotationRowKind = 'x̂' | 'x̂ fewest passes' | 'x̂ batched loads' | 'workgroup memory' | 'subgroups' | 'split';

/**
 * Workgroup memory of the 'split' rotation rows: a window that would take one pass on one workgroup
 * takes several on tens of workgroups (12288 = 12·2^10 values: 2 passes of 16 and 20 workgroups).
 */
const SPLIT_ELEMENTS = 1024;

/** The 'x̂' row's name at `calls` calls: what the 'x̂ fewest passes' row is an alternative to. */
function rotatedInputsRowName(calls: number): string {
  return `x → x̂: rotation and int8 rounding of one column (dispatchRotatedInputsI8), ${calls} in one encoder`;
}

/**
 * The GPU time of what an int8-input layer (or a group of them) does to x before its products, for
 * one column of `n` entries (a d3-q6-deterministic W of n rows), prepared, `calls` in a row in one
 * encoder: 'x̂' the rotation and the rounding to int8 (`dispatchRotatedInputsI8`, the library's
 * defaults: a window of 8192 entries or more spread over passes on tens of workgroups, the rounding
 * then in a dispatch of its own), 'x̂ fewest passes' the same with `spread: false` (one pass on one
 * workgroup where the window fits, rounding in it); 'workgroup memory' / 'subgroups' the rotation
 * alone (`dispatchHadamard`) in the fewest passes, with every butterfly level in workgroup memory, or
 * the levels inside a subgroup shuffled, or 'split': in passes of at most SPLIT_ELEMENTS values even
 * where the window is shorter than 8192 — the same bits every way, so a run says which is faster on
 * its GPU. At the model widths this is the part of a decode step that does not stream weights.
 */
export async function rotationRow(context: GpuContext, n: number, kind: RotationRowKind, calls: number, settings: BenchSettings): Promise<BenchRow> {
  const { device } = context;
  const kernel =
    kind === 'x̂'
      ? rotatedInputsRowName(calls)
      : kind === 'x̂ fewest passes'
        ? `x → x̂: rotation and int8 rounding of one column (dispatchRotatedInputsI8), in the fewest passes (spread: false), ${calls} in one encoder`
        : kind === 'x̂ batched loads'
          ? `x → x̂: rotation and int8 rounding of one column (dispatchRotatedInputsI8), loads batched (batchedLoads: true), ${calls} in one encoder`
          : kind === 'split'
          ? `rotation of one column split into passes of ≤ ${SPLIT_ELEMENTS} values, every level in workgroup memory (dispatchHadamard), ${calls} in one encoder`
          : `rotation of one column in the fewest passes, ${kind === 'subgroups' ? 'levels within a subgroup shuffled' : 'every level in workgroup memory'} (dispatchHadamard), ${calls} in one encoder`;
  const shape = String(n);
  if (kind === 'subgroups' && !context.features.subgroups) return row({ kernel, family: 'host', shape, status: 'unsupported', note: "no 'subgroups' on this adapter" });
  const owned: GPUBuffer[] = [];
  let call: PreparedCommands | undefined;
  try {
    // W's shape as the quantizer makes it (rotated length, kept coordinates, blocks): one column is enough.
    const w = quantize({ rows: n, cols: 1, data: new Float32Array(n).fill(1) }, { scheme: 'd3-q6-deterministic', seed: settings.seed });
    if (w.kind !== 'lattice') throw new Error('d3-q6-deterministic is a lattice scheme');
    // A Gaussian x, so that the check below compares real rotations (a zero x rotates to zeros on any path).
    const xData = gaussianMatrix(n, 1, settings.seed).data;
    const x = createBufferWithData(device, 'bench rotation x', xData, STORAGE_USAGE);
    const xRotated = createBuffer(device, 'bench rotation x̃', 4 * w.length, STORAGE_USAGE);
    owned.push(x, xRotated);
    const record = (encoder: GPUCommandEncoder, scratch: GpuScratch): void => {
      if (kind === 'x̂' || kind === 'x̂ fewest passes' || kind === 'x̂ batched loads') {
        dispatchRotatedInputsI8(device, encoder, scratch, { w, x, xRotated, rhs: 1, spread: kind !== 'x̂ fewest passes', batchedLoads: kind === 'x̂ batched loads' });
      }
      else dispatchHadamard(device, encoder, scratch, { input: x, output: xRotated, rows: n, length: w.length, cols: 1, seed: w.seed, subgroups: kind === 'subgroups', ...(kind === 'split' ? { workgroupElements: SPLIT_ELEMENTS } : { spread: false }) });
    };
    call = prepared(device, `bench rotation (${kind})`, record);
    const timing = await timeCalls(context, kernel, calls, (encoder) => (call as PreparedCommands).record(encoder), settings, fewSamples(settings));
    return row({
      kernel,
      family: 'host',
      shape,
      k: 1,
      bytesRead: 4 * n,
      ms: timing.perCallMs,
      dispatchesPerCall: countDispatches(device, (encoder) => (call as PreparedCommands).record(encoder)),
      copies: 1,
      callsPerSample: calls,
      ...rowSamples(timing),
      timing: timing.method,
      note: 'ms is the GPU time per call (all its dispatches)',
      check: await rotationCheck(device, xRotated, new RandomizedHadamard(n, w.seed, w.length).forward(xData)),
      alternativeTo:
        kind === 'x̂ fewest passes'
          ? { choice: "one column's rotation spread over passes", defaultKernel: rotatedInputsRowName(calls) }
          : kind === 'x̂ batched loads'
            ? { choice: "the rotation's loads one element at a time (batchedLoads: false)", defaultKernel: rotatedInputsRowName(calls) }
            : null,
    });
  } catch (error) {
    return failedRow({ kernel, family: 'host', shape }, error);
  } finally {
    call?.destroy();
    for (const buffer of owned) buffer.destroy();
  }
}

/**
 * A rotation row's check: x̃ as the last timed call left it against the CPU's rotation of the same x,
 * bit for bit (the GPU rotation's contract), counted in entries that differ.
 */
async function rotationCheck(device: GPUDevice, xRotated: GPUBuffer, expected: Float32Array): Promise<RowCheck> {
  const got = new Uint32Array(await readBufferExclusive(device, xRotated, 4 * expected.length));
  const want = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  let differing = 0;
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) differing++;
  return { metric: 'entries of x̃ differing from the CPU rotation (bits)', value: differing, limit: 0, ok: differing === 0 };
}

/**
 * The f16 baseline of the decode steps: `layers` distinct f16 copies of the square W, one f16 GEMV each
 * (prepared, so recording creates nothing), chained x → y → x … in one encoder and one submit (with
 * `onePass`, in one compute pass: the baseline of the steps recorded that way); "unsupported" without
 * `shader-f16`. Its GPU time per step is what the quantized steps' "vs f16" divides.
 */
export async function f16DecodeStepRow(context: GpuContext, problem: GemvProblem, layers: number, settings: BenchSettings, onePass = false): Promise<BenchRow> {
  const { device } = context;
  const kernel = `decode step: ${layers} × f16 GEMV (baseline), ${onePass ? 'one compute pass' : 'one encoder'}, one submit`;
  const shape = gemvShape(problem);
  if (!f16GemvSupported(device)) return row({ kernel, family: 'decode-step', shape, status: 'unsupported', note: "unsupported on this adapter (no 'shader-f16')", spirvKey: 'f16' });
  const owned: GPUBuffer[] = [];
  const calls: PreparedCommands[] = [];
  try {
    const { n, cols } = problem;
    if (n !== cols) throw new Error('the decode step chains square layers');
    const packed = packF16Weights(problem.tile);
    const layerBytes = f16WeightBytes(n, cols);
    const w = await uploadTiled(device, 'bench f16 decode W', packed.words, problem.tile.cols, 16 * packed.chunks, cols);
    const weights = await makeCopies(device, w, layers, (encoder, i) => copyOf(device, encoder, w, `bench f16 decode W copy ${i}`));
    owned.push(...weights);
    // x is read padded (zeros past n); each layer writes the first n entries of the other buffer.
    const activations = [0, 1].map((i) => createBuffer(device, `bench f16 decode activations ${i}`, 4 * f16PaddedLength(n), STORAGE_USAGE));
    owned.push(...activations);
    uploadToBuffer(device, activations[0] as GPUBuffer, problem.x.data.subarray(0, n));
    for (const [i, weight] of weights.entries()) {
      calls.push(prepared(device, `bench f16 decode layer ${i}`, (encoder, scratch) => dispatchF16Gemv(device, encoder, scratch, { w: weight, x: activations[i % 2] as GPUBuffer, y: activations[(i + 1) % 2] as GPUBuffer, n, cols })));
    }
    // One compute pass for the whole step where the quantized step it is the baseline of records one
    // (else a pass per layer, as each prepared call opens its own).
    const recordStep = (encoder: GPUCommandEncoder): void => {
      if (!onePass) {
        for (const call of calls) call.record(encoder);
        return;
      }
      const pass = encoder.beginComputePass({ label: 'bench f16 decode step' });
      for (const call of calls) call.record(pass);
      pass.end();
    };
    return await measureStep(context, recordStep, {
      kernel,
      shape,
      layers,
      weightBytes: layers * layerBytes,
      bytesRead: layers * (layerBytes + 4 * n),
      parameters: layers * n * cols,
      note: 'the baseline of the decode steps\' "vs f16"; ms is the GPU time of the whole step',
      spirvKey: 'f16',
    }, settings);
  } catch (error) {
    return failedRow({ kernel, family: 'decode-step', shape, spirvKey: 'f16' }, error);
  } finally {
    for (const call of calls) call.destroy();
    for (const buffer of owned) buffer.destroy();
  }
}
