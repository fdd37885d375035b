import { createBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { dispatchF16Gemv, f16GemvSupported, f16PaddedLength, f16WeightBytes, packF16Weights } from '../../src/gpu/kernels/f16Gemv.js';
import type { DotPath } from '../../src/gpu/kernels/e8Matmul.js';
import type { GpuDeterministicMatrix } from '../../src/gpu/latticeOperand.js';
import type { PreparedCommands } from '../../src/gpu/prepared.js';
import { QuantizedLinear, type LinearWeight, type QuantizedLinearGroup } from '../../src/gpu/quantizedLinear.js';
import type { GpuUniversalMatrix } from '../../src/gpu/universalOperand.js';
import type { SchemeName } from '../../src/quantize/schemes.js';
import { copyOf, countAllocations, countDispatches, failedRow, gemvProblem, makeCopies, median, prepared, row, timeCalls, uploadTiled, type BenchRow, type BenchSettings } from './common.js';
import { deterministicBuffers, deterministicCopy, quantizedW, universalBuffers, universalCopy } from './gemvCases.js';

/*
 * A decode step with a transformer's layer shapes, the closest the benchmark comes to "the LLM decode
 * step" of the speed promise: per block the q, k, v projections (hidden → hidden, kv, kv) read one
 * input, o (hidden → hidden) reads q's output (standing in for attention's), gate and up (hidden → ffn)
 * read o's output, down (ffn → hidden) reads gate's output and feeds the next block. Every layer has
 * its own weights (GPU copies of one quantized matrix per shape, so the step streams the whole model
 * from memory, as decoding does), and the step is recorded into one compute pass and submitted once.
 * The quantized steps run `QuantizedLinear` with q, k, v and gate, up in `QuantizedLinear.group`s and
 * f16 activations; the baseline runs the f16 GEMV per layer on f16 weights (f32 activations: the
 * activations are a rounding error of the bytes read). Attention, norms and activations are left out:
 * what is timed is the linear layers and what they need (rotations, int8 roundings, dispatches).
 */

/** The layer shapes of a model. */
export interface ModelShape {
  readonly name: string;
  readonly hidden: number;
  /** Outputs of the k and v projections (grouped-query attention). */
  readonly kv: number;
  readonly ffn: number;
  readonly blocks: number;
}

/** Llama-3-8B's linear layers: 32 blocks, hidden 4096, k/v 1024, FFN 14336 (7 B weights). */
export const LLAMA_3_8B: ModelShape = { name: 'Llama-3-8B shapes', hidden: 4096, kv: 1024, ffn: 14336, blocks: 32 };

/** The quick run's model: small, and an FFN width (1100) whose rotation takes two windows, as 14336's does. */
export const SMALL_MODEL: ModelShape = { name: 'small model shapes', hidden: 256, kv: 64, ffn: 1100, blocks: 2 };

type Role = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down';

/** The layers of one block, in order, as (in, out). */
function blockLayers(m: ModelShape): { readonly role: Role; readonly in: number; readonly out: number }[] {
  return [
    { role: 'q', in: m.hidden, out: m.hidden },
    { role: 'k', in: m.hidden, out: m.kv },
    { role: 'v', in: m.hidden, out: m.kv },
    { role: 'o', in: m.hidden, out: m.hidden },
    { role: 'gate', in: m.hidden, out: m.ffn },
    { role: 'up', in: m.hidden, out: m.ffn },
    { role: 'down', in: m.ffn, out: m.hidden },
  ];
}

/** "hidden/kv/ffn × blocks": the rows' shape (the baseline and the quantized steps share it). */
export function modelShapeName(m: ModelShape): string {
  return `${m.hidden}/${m.kv}/${m.ffn} × ${m.blocks}`;
}

/** The distinct (in, out) shapes of a block. */
function distinctShapes(m: ModelShape): string[] {
  return [...new Set(blockLayers(m).map((l) => `${l.in}x${l.out}`))];
}

/** Options of {@link modelStepRow}. */
export interface ModelStepOptions {
  /** int8 inputs with this dot path (d3-q6 and d3-q6-deterministic); default null. */
  readonly int8?: DotPath | null;
}

/** Timing and counting shared by the baseline and the quantized steps. */
async function measureStep(
  context: GpuContext,
  kernel: string,
  model: ModelShape,
  settings: BenchSettings,
  recordStep: (encoder: GPUCommandEncoder) => void,
  weightBytes: number,
  activationBytes: number,
  extra: Partial<BenchRow>,
): Promise<BenchRow> {
  const { device } = context;
  const layers = 7 * model.blocks;
  const hostUs: number[] = [];
  const { allocations } = countAllocations(device, () => {
    for (let round = 0; round < 9; round++) {
      const encoder = device.createCommandEncoder({ label: 'bench model step host timing' });
      const start = performance.now();
      recordStep(encoder);
      hostUs.push(((performance.now() - start) * 1000) / layers);
      encoder.finish();
    }
  });
  const dispatches = countDispatches(device, recordStep);
  const timing = await timeCalls(context, kernel, 1, recordStep, settings, { warmup: 1, samples: Math.min(settings.samples, settings.quick ? 2 : 5) });
  const parameters = blockLayers(model).reduce((sum, l) => sum + l.in * l.out, 0) * model.blocks;
  const bytesRead = weightBytes + model.blocks * blockLayers(model).reduce((sum, l) => sum + activationBytes * (l.in + l.out), 0);
  return row({
    kernel,
    family: 'decode-step',
    shape: modelShapeName(model),
    k: 1,
    bitsPerEntry: (8 * weightBytes) / parameters,
    bytesRead,
    ms: timing.perCallMs,
    gbps: bytesRead / (timing.perCallMs / 1000) / 1e9,
    hostUsPerCall: median(hostUs),
    dispatchesPerCall: dispatches / layers,
    allocationsAfterFirst: allocations,
    copies: layers,
    workingSetBytes: weightBytes,
    callsPerSample: layers,
    samplesMs: timing.perCallSamples,
    timing: timing.method,
    note: `${model.name}: ${layers} layers, one compute pass; ms is the GPU time of the whole step; host µs and dispatches are per layer`,
    ...extra,
  });
}

/**
 * The model step with quantized weights of `scheme`: `QuantizedLinear` layers with f16 activations,
 * q/k/v and gate/up grouped, recorded into one compute pass.
 */
export async function modelStepRow(context: GpuContext, model: ModelShape, scheme: SchemeName, settings: BenchSettings, options: ModelStepOptions = {}): Promise<BenchRow> {
  const { device } = context;
  const int8 = options.int8 ?? null;
  const kernel = `model step: ${model.name}, QuantizedLinear ${scheme}${int8 === null ? '' : ', int8 inputs'}, q/k/v and gate/up grouped, f16 activations, one compute pass`;
  const shape = modelShapeName(model);
  const owned: GPUBuffer[] = [];
  const originals: { destroy(): void }[] = [];
  const linears: QuantizedLinear[] = [];
  const groups: QuantizedLinearGroup[] = [];
  try {
    // One quantized matrix per distinct shape, then a GPU copy per layer.
    const copies = new Map<string, LinearWeight[]>();
    let weightBytes = 0;
    for (const key of distinctShapes(model)) {
      const [inFeatures, out] = key.split('x').map(Number) as [number, number];
      const count = model.blocks * blockLayers(model).filter((l) => `${l.in}x${l.out}` === key).length;
      const problem = gemvProblem(out, inFeatures, 1, settings.tileCols, settings.seed + inFeatures + out, 1 / Math.sqrt(inFeatures));
      const q = await quantizedW(device, problem, scheme, settings.seed);
      originals.push(q);
      if (q.mode === 'universal') {
        const original: GpuUniversalMatrix = q;
        const made = await makeCopies<GpuUniversalMatrix>(device, original, count, (encoder, i) => universalCopy(device, encoder, original, i));
        for (const w of made.slice(1)) owned.push(...universalBuffers(w));
        weightBytes += count * universalBuffers(original).reduce((sum, b) => sum + b.size, 0);
        copies.set(key, made);
      } else {
        const original: GpuDeterministicMatrix = q;
        const made = await makeCopies<GpuDeterministicMatrix>(device, original, count, (encoder, i) => deterministicCopy(device, encoder, original, i));
        for (const w of made.slice(1)) owned.push(...deterministicBuffers(w));
        weightBytes += count * deterministicBuffers(original).reduce((sum, b) => sum + b.size, 0);
        copies.set(key, made);
      }
    }
    const next = new Map<string, number>();
    const layer = (inFeatures: number, out: number, label: string): QuantizedLinear => {
      const key = `${inFeatures}x${out}`;
      const index = next.get(key) ?? 0;
      next.set(key, index + 1);
      const weight = (copies.get(key) as LinearWeight[])[index] as LinearWeight;
      const linear = QuantizedLinear.create(device, weight, { label, maxTokens: 1, int8Inputs: int8, activations: 'f16' });
      linears.push(linear);
      return linear;
    };
    const half = (entries: number, label: string): GPUBuffer => {
      const buffer = createBuffer(device, label, 4 * Math.ceil(entries / 2), STORAGE_USAGE);
      owned.push(buffer);
      return buffer;
    };
    const hiddenStates = [half(model.hidden, 'bench model h0'), half(model.hidden, 'bench model h1')];
    const q = half(model.hidden, 'bench model q');
    const k = half(model.kv, 'bench model k');
    const v = half(model.kv, 'bench model v');
    const o = half(model.hidden, 'bench model o');
    const gate = half(model.ffn, 'bench model gate');
    const up = half(model.ffn, 'bench model up');
    const blocks = Array.from({ length: model.blocks }, (_, b) => {
      const qkv = QuantizedLinear.group([layer(model.hidden, model.hidden, `block ${b} q`), layer(model.hidden, model.kv, `block ${b} k`), layer(model.hidden, model.kv, `block ${b} v`)]);
      const oProj = layer(model.hidden, model.hidden, `block ${b} o`);
      const gateUp = QuantizedLinear.group([layer(model.hidden, model.ffn, `block ${b} gate`), layer(model.hidden, model.ffn, `block ${b} up`)]);
      const down = layer(model.ffn, model.hidden, `block ${b} down`);
      groups.push(qkv, gateUp);
      return { qkv, oProj, gateUp, down };
    });
    const recordStep = (encoder: GPUCommandEncoder): void => {
      const pass = encoder.beginComputePass({ label: 'bench model step' });
      blocks.forEach((block, b) => {
        const input = hiddenStates[b % 2] as GPUBuffer;
        block.qkv.record(pass, input, [q, k, v]);
        block.oProj.record(pass, q, o);
        block.gateUp.record(pass, o, [gate, up]);
        block.down.record(pass, gate, hiddenStates[(b + 1) % 2] as GPUBuffer);
      });
      pass.end();
    };
    const first = device.createCommandEncoder({ label: 'bench model step first recording' });
    recordStep(first); // prepares every layer's commands
    first.finish();
    return await measureStep(context, kernel, model, settings, recordStep, weightBytes, 2, {});
  } catch (error) {
    return failedRow({ kernel, family: 'decode-step', shape }, error);
  } finally {
    for (const group of groups) group.destroy();
    for (const linear of linears) linear.destroy();
    for (const original of originals) original.destroy();
    for (const buffer of owned) buffer.destroy();
  }
}

/** The model step's baseline: f16 weights, the f16 GEMV per layer (one dispatch each), one compute pass. */
export async function f16ModelStepRow(context: GpuContext, model: ModelShape, settings: BenchSettings): Promise<BenchRow> {
  const { device } = context;
  const kernel = `model step: ${model.name}, f16 GEMV per layer (baseline), one compute pass`;
  const shape = modelShapeName(model);
  if (!f16GemvSupported(device)) return row({ kernel, family: 'decode-step', shape, status: 'unsupported', note: "unsupported on this adapter (no 'shader-f16')", spirvKey: 'f16' });
  const owned: GPUBuffer[] = [];
  const calls: PreparedCommands[] = [];
  try {
    const copies = new Map<string, GPUBuffer[]>();
    let weightBytes = 0;
    for (const key of distinctShapes(model)) {
      const [inFeatures, out] = key.split('x').map(Number) as [number, number];
      const count = model.blocks * blockLayers(model).filter((l) => `${l.in}x${l.out}` === key).length;
      const problem = gemvProblem(out, inFeatures, 1, settings.tileCols, settings.seed + inFeatures + out, 1 / Math.sqrt(inFeatures));
      const packed = packF16Weights(problem.tile);
      const w = await uploadTiled(device, `bench model f16 W ${key}`, packed.words, problem.tile.cols, 16 * packed.chunks, out);
      const made = await makeCopies(device, w, count, (encoder, i) => copyOf(device, encoder, w, `bench model f16 W ${key} copy ${i}`));
      owned.push(...made);
      weightBytes += count * f16WeightBytes(inFeatures, out);
      copies.set(key, made);
    }
    const next = new Map<string, number>();
    // x is read padded (zeros past n): each activation buffer holds one width, padded, never written past it.
    const vector = (entries: number, label: string): GPUBuffer => {
      const buffer = createBuffer(device, label, 4 * f16PaddedLength(entries), STORAGE_USAGE);
      owned.push(buffer);
      return buffer;
    };
    const hiddenStates = [vector(model.hidden, 'bench model f16 h0'), vector(model.hidden, 'bench model f16 h1')];
    const outputs: Record<Role, GPUBuffer> = {
      q: vector(model.hidden, 'bench model f16 q'),
      k: vector(model.kv, 'bench model f16 k'),
      v: vector(model.kv, 'bench model f16 v'),
      o: vector(model.hidden, 'bench model f16 o'),
      gate: vector(model.ffn, 'bench model f16 gate'),
      up: vector(model.ffn, 'bench model f16 up'),
      down: hiddenStates[1] as GPUBuffer,
    };
    for (let b = 0; b < model.blocks; b++) {
      const input = hiddenStates[b % 2] as GPUBuffer;
      const inputs: Record<Role, GPUBuffer> = { q: input, k: input, v: input, o: outputs.q, gate: outputs.o, up: outputs.o, down: outputs.gate };
      for (const l of blockLayers(model)) {
        const key = `${l.in}x${l.out}`;
        const index = next.get(key) ?? 0;
        next.set(key, index + 1);
        const w = (copies.get(key) as GPUBuffer[])[index] as GPUBuffer;
        const y = l.role === 'down' ? (hiddenStates[(b + 1) % 2] as GPUBuffer) : outputs[l.role];
        calls.push(prepared(device, `bench model f16 block ${b} ${l.role}`, (encoder, scratch) => dispatchF16Gemv(device, encoder, scratch, { w, x: inputs[l.role], y, n: l.in, cols: l.out })));
      }
    }
    const recordStep = (encoder: GPUCommandEncoder): void => {
      const pass = encoder.beginComputePass({ label: 'bench model f16 step' });
      for (const call of calls) call.record(pass);
      pass.end();
    };
    return await measureStep(context, kernel, model, settings, recordStep, weightBytes, 4, { spirvKey: 'f16', note: `${model.name}: the baseline of the model steps' "vs f16"; one compute pass, ms is the GPU time of the whole step` });
  } catch (error) {
    return failedRow({ kernel, family: 'decode-step', shape, spirvKey: 'f16' }, error);
  } finally {
    for (const call of calls) call.destroy();
    for (const buffer of owned) buffer.destroy();
  }
}
