import { createBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { dispatchF16Gemv, f16GemvSupported, f16PaddedLength, f16WeightBytes, packF16Weights } from '../../src/gpu/kernels/f16Gemv.js';
import type { DotPath } from '../../src/gpu/kernels/e8Matmul.js';
import type { GpuDeterministicMatrix } from '../../src/gpu/latticeOperand.js';
import type { PreparedCommands } from '../../src/gpu/prepared.js';
import { uploadWeightOnly, type WeightOnlyGpuMatrix } from '../../src/gpu/kernels/weightOnlyGemv.js';
import { WeightBasis } from '../../src/weightonly/basis.js';
import { WeightOnlyQuantized } from '../../src/weightonly/quantized.js';
import { QuantizedLinear, type LinearWeight, type QuantizedLinearGroup } from '../../src/gpu/quantizedLinear.js';
import type { GpuUniversalMatrix } from '../../src/gpu/universalOperand.js';
import type { SchemeName } from '../../src/quantize/schemes.js';
import { copyOf, failedRow, gemvProblem, makeCopies, prepared, row, uploadTiled, type BenchRow, type BenchSettings, type GemvProblem } from './common.js';
import { deterministicBuffers, deterministicCopy, deterministicGemvBytes, quantizedW, universalBuffers, universalCopy, universalGemvBytes } from './gemvCases.js';
import { measureStep } from './hostCases.js';

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

/** A weight shape of the model: its key, how many layers have it, and the W they all copy. */
interface WeightShape {
  readonly key: string;
  readonly in: number;
  readonly out: number;
  readonly count: number;
  readonly problem: () => GemvProblem;
}

/** The key of a layer's weight shape (`weightShapes`). */
function shapeKey(inFeatures: number, out: number): string {
  return `${inFeatures}x${out}`;
}

/** The distinct (in, out) shapes of the model's layers: a Gaussian W scaled by 1/√in for each. */
function weightShapes(m: ModelShape, settings: BenchSettings): WeightShape[] {
  const keys = [...new Set(blockLayers(m).map((l) => shapeKey(l.in, l.out)))];
  return keys.map((key) => {
    const [inFeatures, out] = key.split('x').map(Number) as [number, number];
    return {
      key,
      in: inFeatures,
      out,
      count: m.blocks * blockLayers(m).filter((l) => shapeKey(l.in, l.out) === key).length,
      problem: () => gemvProblem(out, inFeatures, 1, settings.tileCols, settings.seed + inFeatures + out, 1 / Math.sqrt(inFeatures)),
    };
  });
}

/** Hands out the copies of each shape in order, one per layer. */
function copyDealer<T>(copies: ReadonlyMap<string, readonly T[]>): (inFeatures: number, out: number) => T {
  const next = new Map<string, number>();
  return (inFeatures, out) => {
    const key = shapeKey(inFeatures, out);
    const index = next.get(key) ?? 0;
    next.set(key, index + 1);
    return (copies.get(key) as readonly T[])[index] as T;
  };
}

/** The weights of a model step: a lattice scheme, or 4-bit weight-only codes (RTN of the rotated W). */
export type ModelWeights = { readonly scheme: SchemeName } | { readonly weightOnly: 'rtn-4bit' };

/** Options of {@link modelStepRow}. */
export interface ModelStepOptions {
  /** int8 inputs with this dot path (the schemes QuantizedLinear's int8Inputs takes); default null. */
  readonly int8?: DotPath | null;
}

/** Every layer's weights of one shape (`count` distinct ones), their bytes, and what to free. */
interface ShapeWeights {
  readonly weights: LinearWeight[];
  readonly bytes: number;
  readonly owned: { destroy(): void }[];
}

/** One lattice matrix of the shape, quantized on the GPU, and GPU copies of it for the other layers. */
async function latticeWeights(device: GPUDevice, shape: WeightShape, scheme: SchemeName, settings: BenchSettings, int8: boolean): Promise<ShapeWeights> {
  const q = await quantizedW(device, shape.problem(), scheme, settings.seed);
  if (q.mode === 'universal') {
    const original: GpuUniversalMatrix = q;
    const made = await makeCopies<GpuUniversalMatrix>(device, original, shape.count, (encoder, i) => universalCopy(device, encoder, original, i));
    return { weights: made, bytes: shape.count * universalGemvBytes(device, original, int8), owned: [q, ...made.slice(1).flatMap(universalBuffers)] };
  }
  const original: GpuDeterministicMatrix = q;
  const made = await makeCopies<GpuDeterministicMatrix>(device, original, shape.count, (encoder, i) => deterministicCopy(device, encoder, original, i));
  return { weights: made, bytes: shape.count * deterministicGemvBytes(original, int8), owned: [q, ...made.slice(1).flatMap(deterministicBuffers)] };
}

/**
 * 4-bit weight-only codes of the shape: W's distinct columns rotated as the weight-only GEMV rotates x
 * (randomized Hadamard) and rounded with one step (≈ the MSE-optimal 16-level step for N(0, 1/in)),
 * repeated to every output, as RTN codes; then one upload per layer (the packed codes are packed once).
 */
function weightOnlyWeights(device: GPUDevice, shape: WeightShape, settings: BenchSettings): ShapeWeights {
  const { tile } = shape.problem();
  const n = shape.in;
  const seed = settings.seed;
  const rotated = new WeightBasis(n, 'hadamard', seed).rotateWeights(tile);
  const step = 0.34 / Math.sqrt(n);
  const codes = new Int32Array(n * shape.out);
  for (let j = 0; j < shape.out; j++) {
    const source = (j % tile.cols) * n;
    for (let i = 0; i < n; i++) codes[j * n + i] = Math.max(-8, Math.min(7, Math.round((rotated[source + i] as number) / step)));
  }
  const q = new WeightOnlyQuantized({ method: 'rtn', n, outputs: shape.out, codes, columnScales: new Float32Array(n).fill(step), rowScales: null, rotation: 'hadamard', seed });
  const weights = Array.from({ length: shape.count }, (_, i) => uploadWeightOnly(device, q, { label: `bench model weight-only ${shape.key} ${i}` }));
  const one = weights[0] as WeightOnlyGpuMatrix;
  const bytes = shape.count * (one.codes.size + (one.codeLayout?.size ?? 0) + one.columnScales.size + one.rowScales.size);
  return { weights, bytes, owned: weights };
}

/** The row of a model step (weights of `weightBytes`, activations of `activationBytes` per entry). */
function modelRow(context: GpuContext, kernel: string, model: ModelShape, settings: BenchSettings, recordStep: (encoder: GPUCommandEncoder) => void, weightBytes: number, activationBytes: number, note: string, spirvKey?: string): Promise<BenchRow> {
  const layers = blockLayers(model);
  return measureStep(context, recordStep, {
    kernel,
    shape: modelShapeName(model),
    layers: layers.length * model.blocks,
    weightBytes,
    bytesRead: weightBytes + model.blocks * layers.reduce((sum, l) => sum + activationBytes * (l.in + l.out), 0),
    parameters: model.blocks * layers.reduce((sum, l) => sum + l.in * l.out, 0),
    note,
    ...(spirvKey === undefined ? {} : { spirvKey }),
  }, settings);
}

/**
 * The model step with quantized weights: `QuantizedLinear` layers with f16 activations, q/k/v and
 * gate/up grouped (weight-only layers each rotate x themselves), recorded into one compute pass.
 */
export async function modelStepRow(context: GpuContext, model: ModelShape, source: ModelWeights, settings: BenchSettings, options: ModelStepOptions = {}): Promise<BenchRow> {
  const { device } = context;
  const int8 = options.int8 ?? null;
  const weightsName = 'scheme' in source ? source.scheme : 'weight-only 4-bit (RTN codes)';
  const kernel = `model step: ${model.name}, QuantizedLinear ${weightsName}${int8 === null ? '' : ', int8 inputs'}, q/k/v and gate/up grouped, f16 activations, one compute pass`;
  const shape = modelShapeName(model);
  const owned: { destroy(): void }[] = [];
  const linears: QuantizedLinear[] = [];
  const groups: QuantizedLinearGroup[] = [];
  try {
    // Every layer's weights, per distinct shape.
    const copies = new Map<string, LinearWeight[]>();
    let weightBytes = 0;
    for (const weightShape of weightShapes(model, settings)) {
      const made = 'scheme' in source ? await latticeWeights(device, weightShape, source.scheme, settings, int8 !== null) : weightOnlyWeights(device, weightShape, settings);
      owned.push(...made.owned);
      weightBytes += made.bytes;
      copies.set(weightShape.key, made.weights);
    }
    const weightFor = copyDealer(copies);
    const layer = (inFeatures: number, out: number, label: string): QuantizedLinear => {
      const linear = QuantizedLinear.create(device, weightFor(inFeatures, out), { label, maxTokens: 1, int8Inputs: int8, activations: 'f16' });
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
    return await modelRow(context, kernel, model, settings, recordStep, weightBytes, 2, `${model.name}: ${7 * model.blocks} layers, one compute pass; ms is the GPU time of the whole step; host µs and dispatches are per layer`);
  } catch (error) {
    return failedRow({ kernel, family: 'decode-step', shape }, error);
  } finally {
    for (const group of groups) group.destroy();
    for (const linear of linears) linear.destroy();
    for (const item of owned) item.destroy();
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
    for (const { key, in: inFeatures, out, count, problem } of weightShapes(model, settings)) {
      const { tile } = problem();
      const packed = packF16Weights(tile);
      const w = await uploadTiled(device, `bench model f16 W ${key}`, packed.words, tile.cols, 16 * packed.chunks, out);
      const made = await makeCopies(device, w, count, (encoder, i) => copyOf(device, encoder, w, `bench model f16 W ${key} copy ${i}`));
      owned.push(...made);
      weightBytes += count * f16WeightBytes(inFeatures, out);
      copies.set(key, made);
    }
    const weightFor = copyDealer(copies);
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
        const w = weightFor(l.in, l.out);
        const y = l.role === 'down' ? (hiddenStates[(b + 1) % 2] as GPUBuffer) : outputs[l.role];
        calls.push(prepared(device, `bench model f16 block ${b} ${l.role}`, (encoder, scratch) => dispatchF16Gemv(device, encoder, scratch, { w, x: inputs[l.role], y, n: l.in, cols: l.out })));
      }
    }
    const recordStep = (encoder: GPUCommandEncoder): void => {
      const pass = encoder.beginComputePass({ label: 'bench model f16 step' });
      for (const call of calls) call.record(pass);
      pass.end();
    };
    return await modelRow(context, kernel, model, settings, recordStep, weightBytes, 4, `${model.name}: the baseline of the model steps' "vs f16"; one compute pass, ms is the GPU time of the whole step`, 'f16');
  } catch (error) {
    return failedRow({ kernel, family: 'decode-step', shape, spirvKey: 'f16' }, error);
  } finally {
    for (const call of calls) call.destroy();
    for (const buffer of owned) buffer.destroy();
  }
}
