import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { beforeAll, describe, expect, it } from 'vitest';
import { createBuffer, createBufferWithData, readBufferExclusive, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import { QuantizedLinear, type LinearWeight, type QuantizedLinearOptions } from '../../src/gpu/quantizedLinear.js';
import { prepareCommands } from '../../src/gpu/prepared.js';
import { GpuScratch, sharedIntermediateBuffers, sharingScratch } from '../../src/gpu/scratch.js';
import { uploadWeightOnly } from '../../src/gpu/kernels/weightOnlyGemv.js';
import { fusedFinishSupported } from '../../src/gpu/kernels/universalGemv.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { QuantizeOptions } from '../../src/quantize/options.js';
import type { LatticeQuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { float16Bits } from '../../src/scalar/floatFormats.js';
import { quantizeWeights } from '../../src/weightonly/quantizeWeights.js';
import { contextOnTestDevice, defaultLimitsDevice, gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * QuantizedLinear's prepared sets share their intermediate buffers (rotated input, its int8 rounding,
 * staged copies of x, the split universal GEMV's T) through the device's pool (GpuScratch's
 * `intermediate`). That is only sound if every command set writes each intermediate in full before it
 * reads it. The check: run every GEMV family once, overwrite every pooled buffer with garbage (all
 * bytes 0xFF: f32 NaN, int8 −1; then 0x7F: a huge finite f32, int8 127), replay, and expect the same
 * output bytes. A kernel that read a word its commands had not written (a padding group, a scale
 * past the last group, coordinates past keptLength) would change them. Also: a model's layers at one
 * token count hold one buffer of each kind between them, layers chained in one encoder through the
 * shared buffers equal the same layers submitted one at a time, and destroying the layers empties the
 * pool.
 */

const noGpu = await gpuUnavailableReason();

const n = 300; // not a multiple of 12 (D3's input groups) nor of 32 (E8's), nor a power of two
const out = 40;
/** W of `rows` × out (300 by default; 8192: a decode step's rotation spreads over passes and rounds x̃ apart). */
const weightsOf = (rows: number) => gaussianMatrix(rows, out, 1);
const bias = Float32Array.from({ length: out }, (_, j) => 0.25 * (j - out / 2));

type Family = readonly [name: string, scheme: string, form: Partial<QuantizeOptions>, options: QuantizedLinearOptions];

/** One weight of every GEMV family, with the options that select each input path. */
const families: readonly Family[] = [
  ['universal D3, f32', 'd3-q6', {}, {}],
  ['universal D3, f16 activations', 'd3-q6', {}, { activations: 'f16' }],
  ['universal E8, centred, f16 activations (x staged as f32 for Σx)', 'e8-q16', { center: true }, { activations: 'f16' }],
  ['universal D3, unrotated', 'd3-q6', { rotate: false }, {}],
  ['universal D3, int8 inputs', 'd3-q6', {}, { int8Inputs: 'plain' }],
  ['deterministic D3, int8 inputs, f16', 'd3-q6-deterministic', {}, { int8Inputs: 'plain', activations: 'f16' }],
  ['deterministic D3, f32 inputs', 'd3-q6-deterministic', {}, {}],
  ['deterministic E8 residues, int8 inputs', 'e8-q16-deterministic', {}, { int8Inputs: 'plain' }],
  ['universal E8 points, int8 inputs', 'e8-4bit', {}, { int8Inputs: 'plain' }],
  ['weight-only RTN', 'weight-only', {}, {}],
];

function upload(device: GPUDevice, scheme: string, form: Partial<QuantizeOptions>, rows = n): LinearWeight & { destroy(): void } {
  const w = weightsOf(rows);
  if (scheme === 'weight-only') return uploadWeightOnly(device, quantizeWeights(w, null, { method: 'rtn', rate: 4 }));
  const deterministic = scheme.endsWith('deterministic');
  return uploadLatticeMatrix(device, quantize(w, { scheme, seed: 4, ...form, ...(deterministic ? {} : { nonce: 9 }) } as QuantizeOptions) as LatticeQuantizedMatrix);
}

function inputBytes(activations: 'f32' | 'f16' | undefined, tokens: number, seed: number, rows = n): Float32Array | Uint16Array {
  const x = gaussianMatrix(rows, tokens, seed);
  return activations === 'f16' ? Uint16Array.from(x.data, (v) => float16Bits(v)) : x.data;
}

/** The buffers of `buffers` destroyed from now on (each buffer's destroy() wrapped). */
function recordDestroys(buffers: readonly GPUBuffer[]): Set<GPUBuffer> {
  const destroyed = new Set<GPUBuffer>();
  for (const buffer of buffers) {
    const destroy = buffer.destroy.bind(buffer);
    buffer.destroy = () => {
      destroyed.add(buffer);
      destroy();
    };
  }
  return destroyed;
}

/** Writes `byte` over every buffer the device's sharing scratches hold. */
function poisonPool(device: GPUDevice, byte: number): number {
  const buffers = sharedIntermediateBuffers(device);
  for (const buffer of buffers) device.queue.writeBuffer(buffer, 0, new Uint8Array(buffer.size).fill(byte));
  return buffers.length;
}

/**
 * Every family's layer (and the arena case, x and y in one buffer) recorded after the pool was
 * overwritten with zeros, 0xFF and 0x7F: the same output bytes each time.
 */
async function poisonedReplaysMatch(device: GPUDevice, tokens: number, rows = n): Promise<void> {
  const weights = families.map(([, scheme, form]) => upload(device, scheme, form, rows));
  const layers = families.map(([, , , options], i) => QuantizedLinear.create(device, weights[i] as LinearWeight, { bias, maxTokens: tokens, ...options }));
  const bytesOf = (layer: QuantizedLinear) => (layer.activations === 'f16' ? 2 : 4);
  const xs = layers.map((layer, i) => createBufferWithData(device, `x ${i}`, inputBytes(layer.activations, tokens, 10 + i, rows), STORAGE_USAGE));
  const ys = layers.map((layer, i) => createBuffer(device, `y ${i}`, bytesOf(layer) * out * tokens, STORAGE_USAGE));
  // The arena: x, then y right after it, in one buffer (the record stages x in an intermediate).
  const arena = createBuffer(device, 'arena', 4 * (rows + out) * tokens, STORAGE_USAGE);
  device.queue.writeBuffer(arena, 0, inputBytes('f32', tokens, 99, rows).slice());
  const arenaLayer = layers[4] as QuantizedLinear;
  const arenaY = { buffer: arena, offset: 4 * rows * tokens };
  // Each record alone in a submit, right after the pool was overwritten with `byte`: nothing else
  // writes the pool between the poison and the record.
  const outputsAfterPoison = async (byte: number): Promise<Uint8Array[]> => {
    const records = [...layers.map((layer, i) => (encoder: GPUCommandEncoder) => layer.record(encoder, xs[i] as GPUBuffer, ys[i] as GPUBuffer, { tokens })), (encoder: GPUCommandEncoder) => arenaLayer.record(encoder, { buffer: arena, offset: 0 }, arenaY, { tokens })];
    for (const record of records) {
      const encoder = device.createCommandEncoder({ label: 'one family' });
      record(encoder); // prepares the set first (its pool buffers exist from then on)
      expect(poisonPool(device, byte)).toBeGreaterThan(0);
      device.queue.submit([encoder.finish()]);
    }
    const outputs = await Promise.all(layers.map(async (layer, i) => new Uint8Array(await readBufferExclusive(device, ys[i] as GPUBuffer, bytesOf(layer) * out * tokens))));
    outputs.push(new Uint8Array(await readBufferExclusive(device, arena, 4 * (rows + out) * tokens)).slice(4 * rows * tokens));
    return outputs;
  };
  try {
    const zeros = await outputsAfterPoison(0);
    for (const byte of [0xff, 0x7f]) {
      const poisoned = await outputsAfterPoison(byte);
      for (const [i, bytes] of poisoned.entries()) expect(bytes, `${families[i]?.[0] ?? 'arena (x and y in one buffer)'}, pool overwritten with 0x${byte.toString(16)}`).toEqual(zeros[i]);
    }
  } finally {
    for (const layer of layers) layer.destroy();
    for (const weight of weights) weight.destroy();
    for (const buffer of [...xs, ...ys, arena]) buffer.destroy();
  }
  expect(sharedIntermediateBuffers(device)).toEqual([]);
}

describe.skipIf(noGpu !== undefined)('shared intermediates of QuantizedLinear', () => {
  const suite = contextOnTestDevice();
  let device: GPUDevice;
  beforeAll(() => {
    device = suite.context.device;
  });

  // 64 tokens: the GEMVs' right-hand sides in several tiles and ranges.
  it.each([
    [1, n],
    [3, n],
    [64, n],
    [1, 8192],
  ])('every GEMV family writes its intermediates before reading them: replays over a poisoned pool give the same bytes (tokens: %i, n = %i)', async (tokens, rows) => {
    await poisonedReplaysMatch(device, tokens, rows);
  });

  it('on a device with default limits too (the universal GEMV in its split form, T staged for f16 outputs)', async () => {
    const small = await defaultLimitsDevice();
    try {
      expect(fusedFinishSupported(small)).toBe(false);
      await poisonedReplaysMatch(small, 3);
    } finally {
      small.destroy();
    }
  });

  it("a model's layers at one token count hold one intermediate of each kind between them; more token counts add theirs; destroying the layers empties the pool", async () => {
    const weight = upload(device, 'd3-q6', {});
    const layers = Array.from({ length: 12 }, () => QuantizedLinear.create(device, weight, { int8Inputs: 'plain', maxTokens: 8 }));
    const x = createBufferWithData(device, 'x', gaussianMatrix(n, 8, 3).data, STORAGE_USAGE);
    const y = createBuffer(device, 'y', 4 * out * 8, STORAGE_USAGE);
    const pooledBytes = () => sharedIntermediateBuffers(device).reduce((sum, buffer) => sum + buffer.size, 0);
    try {
      const recordAll = (tokens: number, count: number) => {
        const encoder = device.createCommandEncoder();
        for (const layer of layers.slice(0, count)) layer.record(encoder, x, y, { tokens });
        device.queue.submit([encoder.finish()]);
      };
      recordAll(2, 1);
      const one = pooledBytes();
      // R·x (4·n·tokens bytes) and x̂ at least.
      expect(one).toBeGreaterThanOrEqual(4 * n * 2 + n * 2);
      recordAll(2, 12);
      expect(pooledBytes()).toBe(one);
      recordAll(8, 12);
      expect(pooledBytes()).toBeGreaterThan(one);
      const pooled = sharedIntermediateBuffers(device);
      const destroyed = recordDestroys(pooled);
      for (const layer of layers.slice(0, 11)) layer.destroy();
      // The last layer's sets still hold every buffer.
      expect(destroyed.size).toBe(0);
      expect(sharedIntermediateBuffers(device)).toHaveLength(pooled.length);
      layers[11]?.destroy();
      expect(sharedIntermediateBuffers(device)).toEqual([]);
      expect(destroyed.size).toBe(pooled.length);
    } finally {
      for (const layer of layers) layer.destroy();
      weight.destroy();
      x.destroy();
      y.destroy();
    }
  });

  it('one record that needs two buffers of one size (a group with two seeds) gets two; layers chained in one encoder equal the same layers submitted one at a time', async () => {
    const square = gaussianMatrix(n, n, 5);
    const seeds = [4, 7, 4, 7];
    const weights = seeds.map((seed, i) =>
      uploadLatticeMatrix(device, quantize(square, { scheme: i % 2 === 0 ? 'd3-q6' : 'e8-q16', seed, nonce: 3 + i }) as LatticeQuantizedMatrix),
    );
    const options: QuantizedLinearOptions[] = [{ int8Inputs: 'plain' }, {}, {}, { int8Inputs: 'plain' }];
    const layers = weights.map((weight, i) => QuantizedLinear.create(device, weight, options[i]));
    const buffers = Array.from({ length: layers.length + 1 }, (_, i) => createBuffer(device, `h${i}`, 4 * n * 2, STORAGE_USAGE));
    const stepwise = Array.from({ length: layers.length }, (_, i) => createBuffer(device, `stepwise h${i + 1}`, 4 * n * 2, STORAGE_USAGE));
    const grouped = [createBuffer(device, 'group y0', 4 * n * 2, STORAGE_USAGE), createBuffer(device, 'group y1', 4 * n * 2, STORAGE_USAGE)];
    const alone = [createBuffer(device, 'alone y0', 4 * n * 2, STORAGE_USAGE), createBuffer(device, 'alone y1', 4 * n * 2, STORAGE_USAGE)];
    const group = QuantizedLinear.group(layers.slice(0, 2));
    try {
      const x = buffers[0] as GPUBuffer;
      device.queue.writeBuffer(x, 0, gaussianMatrix(n, 2, 8).data.slice());
      // One at a time: a submit per layer (nothing else can be between them).
      for (const [i, layer] of layers.entries()) {
        const encoder = device.createCommandEncoder();
        layer.record(encoder, i === 0 ? x : (stepwise[i - 1] as GPUBuffer), stepwise[i] as GPUBuffer, { tokens: 2 });
        device.queue.submit([encoder.finish()]);
      }
      for (const [i, layer] of layers.slice(0, 2).entries()) {
        const encoder = device.createCommandEncoder();
        layer.record(encoder, x, alone[i] as GPUBuffer, { tokens: 2 });
        device.queue.submit([encoder.finish()]);
      }
      const chained = device.createCommandEncoder();
      for (const [i, layer] of layers.entries()) layer.record(chained, buffers[i] as GPUBuffer, buffers[i + 1] as GPUBuffer, { tokens: 2 });
      // The first two layers as a group: two seeds, two R·x of one size, alive at once.
      group.record(chained, x, grouped, { tokens: 2 });
      device.queue.submit([chained.finish()]);
      const sizes = sharedIntermediateBuffers(device).map((buffer) => buffer.size);
      expect(new Set(sizes).size, 'two R·x of one size').toBeLessThan(sizes.length);
      for (const [i] of layers.entries()) {
        const a = new Uint8Array(await readBufferExclusive(device, stepwise[i] as GPUBuffer, 4 * n * 2));
        expect(new Uint8Array(await readBufferExclusive(device, buffers[i + 1] as GPUBuffer, 4 * n * 2)), `layer ${i}`).toEqual(a);
      }
      for (const i of [0, 1]) {
        const a = new Uint8Array(await readBufferExclusive(device, alone[i] as GPUBuffer, 4 * n * 2));
        expect(new Uint8Array(await readBufferExclusive(device, grouped[i] as GPUBuffer, 4 * n * 2)), `group member ${i}`).toEqual(a);
      }
    } finally {
      group.destroy();
      for (const layer of layers) layer.destroy();
      for (const weight of weights) weight.destroy();
      for (const buffer of [...buffers, ...stepwise, ...grouped, ...alone]) buffer.destroy();
    }
  });

  it('a set the cache dropped gives its intermediates back when collected, without destroying them: commands recorded from it before still run', async () => {
    // V8's own collector, reachable without --expose-gc on the command line.
    setFlagsFromString('--expose-gc');
    const collect = runInNewContext('gc') as () => void;
    const weight = upload(device, 'd3-q6', {});
    const layer = QuantizedLinear.create(device, weight, { int8Inputs: 'plain', maxPrepared: 1, maxTokens: 8 });
    const x = createBufferWithData(device, 'x', gaussianMatrix(n, 8, 6).data, STORAGE_USAGE);
    const [early, reference, later] = ['early y', 'reference y', 'later y'].map((label) => createBuffer(device, label, 4 * out * 7, STORAGE_USAGE)) as [GPUBuffer, GPUBuffer, GPUBuffer];
    try {
      const pending = device.createCommandEncoder({ label: 'recorded before its set was dropped' });
      layer.record(pending, x, early, { tokens: 7 });
      const held = sharedIntermediateBuffers(device);
      const destroyed = recordDestroys(held);
      // Another combination drops the first set (maxPrepared 1) without destroying it.
      const other = device.createCommandEncoder();
      layer.record(other, x, later, { tokens: 3 });
      device.queue.submit([other.finish()]);
      for (let attempt = 0; attempt < 50 && held.some((buffer) => sharedIntermediateBuffers(device).includes(buffer)); attempt++) {
        collect();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(held.filter((buffer) => sharedIntermediateBuffers(device).includes(buffer)), 'still pooled after collection').toEqual([]);
      expect([...destroyed]).toEqual([]);
      device.queue.submit([pending.finish()]);
      const again = device.createCommandEncoder();
      layer.record(again, x, reference, { tokens: 7 });
      device.queue.submit([again.finish()]);
      expect(new Uint8Array(await readBufferExclusive(device, early, 4 * out * 7))).toEqual(new Uint8Array(await readBufferExclusive(device, reference, 4 * out * 7)));
    } finally {
      layer.destroy();
      weight.destroy();
      for (const buffer of [x, early, reference, later]) buffer.destroy();
    }
  });

  it("a caller's scratch and prepared commands keep their intermediates to themselves; sharing scratches share by size and ordinal", () => {
    // Sets an earlier test let its cache drop may still hold theirs (until collected).
    const before = sharedIntermediateBuffers(device).length;
    const own = new GpuScratch(device);
    const shared = sharingScratch(device);
    const other = sharingScratch(device);
    try {
      const a = own.intermediate('a', 64, STORAGE_USAGE);
      const b = shared.intermediate('b', 64, STORAGE_USAGE);
      const b2 = shared.intermediate('b2', 64, STORAGE_USAGE);
      const c = other.intermediate('c', 64, STORAGE_USAGE);
      expect(a).not.toBe(b);
      expect(b2).not.toBe(b);
      expect(c).toBe(b);
      expect(other.intermediate('d', 64, STORAGE_USAGE)).toBe(b2);
      expect(other.intermediate('e', 128, STORAGE_USAGE)).not.toBe(b);
      expect(sharedIntermediateBuffers(device)).toHaveLength(before + 3);
      // A caller's prepareCommands does not share either: the x̂ dispatchInputsI8 returns is read by
      // later calls, which a layer recorded in between would overwrite in a shared buffer.
      const mine = prepareCommands(device, 'a caller’s commands', (_encoder, scratch) => void scratch.intermediate('mine', 64, STORAGE_USAGE));
      expect(sharedIntermediateBuffers(device)).toHaveLength(before + 3);
      mine.destroy();
    } finally {
      own.destroy();
      shared.destroy();
      other.destroy();
    }
    expect(sharedIntermediateBuffers(device)).toHaveLength(before);
  });
});

/*
 * The README's figure for a model ("Recording and replays"): Llama-3-8B's 32 blocks at 64 tokens, with
 * int8Inputs, f16 activations, q, k and v in one group, gate and up in another, o and down adding into
 * the residual stream. Each record set needs, per input size, the rotated input R·x (4 bytes per
 * input and token) and its int8 rounding x̂ (inputsI8Layout.ts: per group of coordinates and token,
 * the level words and an f32 scale, the buffer padded to 16 bytes); the pool holds one of each per
 * size, where one buffer per set would hold 32 blocks' worth. The layers' output widths do not enter
 * (these GEMVs stage nothing on the output side), so the weights have 8 outputs.
 */
describe.skipIf(noGpu !== undefined)("shared intermediates at Llama-3-8B's shapes (the README's figure)", () => {
  // A device of its own: the pool starts empty, with no set an earlier test's cache dropped in it.
  const suite = contextOnTestDevice();
  const hidden = 4096;
  const intermediate = 14336;
  const blocks = 32;
  const tokens = 64;
  const outputs = 8;
  const mebibyte = 2 ** 20;

  /** Bytes of x̂: `bytesPerGroup` per group of `groupSize` inputs and token, the buffer padded to 16. */
  const roundedBytes = (inputs: number, groupSize: number, bytesPerGroup: number): number => 16 * Math.ceil((bytesPerGroup * Math.ceil(inputs / groupSize) * tokens) / 16);

  it.each([
    // E8 points: per group of 32 coordinates, 12 level words (8 for the levels, 4 for the blocks' offsets) and a scale.
    ['e8-4bit', 6.3, 32, 4 * 13],
    // D3: per group of 12 coordinates, 4 level words and a scale.
    ['d3-q6', 6.4, 12, 4 * 5],
  ] as const)('%s: one R·x and one x̂ per input size for the whole model (≈ %s MiB), against one per layer or group (≈ 290 MiB)', (scheme, sharedMiB, groupSize, bytesPerGroup) => {
    const { device } = suite.context;
    const perSet = (inputs: number): number => 4 * inputs * tokens + roundedBytes(inputs, groupSize, bytesPerGroup);
    const weightOf = (inputs: number) => uploadLatticeMatrix(device, quantize(gaussianMatrix(inputs, outputs, 1), { scheme, seed: 4, nonce: 9 }) as LatticeQuantizedMatrix);
    const weights = { hidden: weightOf(hidden), intermediate: weightOf(intermediate) };
    const x = createBuffer(device, 'x (f16)', 2 * intermediate * tokens, STORAGE_USAGE);
    const ys = [0, 1, 2].map((i) => createBuffer(device, `y ${i} (f16)`, 2 * outputs * tokens, STORAGE_USAGE));
    const pooledBytes = () => sharedIntermediateBuffers(device).reduce((sum, buffer) => sum + buffer.size, 0);
    const layer = (inputs: 'hidden' | 'intermediate', accumulate = false) => QuantizedLinear.create(device, weights[inputs], { int8Inputs: 'plain', activations: 'f16', accumulate, maxTokens: tokens });
    /** A group's record and a destroy of it and its layers. */
    const grouped = (members: QuantizedLinear[], inputs: number) => {
      const group = QuantizedLinear.group(members);
      return {
        inputs,
        record: (encoder: GPUCommandEncoder) => group.record(encoder, x, ys.slice(0, members.length), { tokens }),
        destroy: () => {
          group.destroy();
          for (const member of members) member.destroy();
        },
      };
    };
    const single = (alone: QuantizedLinear, inputs: number) => ({
      inputs,
      record: (encoder: GPUCommandEncoder) => alone.record(encoder, x, ys[0] as GPUBuffer, { tokens }),
      destroy: () => alone.destroy(),
    });
    /** One transformer block's record sets: q/k/v, o, gate/up, down. */
    const block = () => [
      grouped([layer('hidden'), layer('hidden'), layer('hidden')], hidden),
      single(layer('hidden', true), hidden),
      grouped([layer('hidden'), layer('hidden')], hidden),
      single(layer('intermediate', true), intermediate),
    ];
    try {
      // Each set alone: what it would hold if nothing were shared.
      let unshared = 0;
      for (const set of block()) {
        expect(pooledBytes()).toBe(0);
        set.record(device.createCommandEncoder());
        expect(pooledBytes(), `a set of ${set.inputs} inputs`).toBe(perSet(set.inputs));
        unshared += blocks * pooledBytes();
        set.destroy();
      }
      expect(pooledBytes()).toBe(0);
      // The whole model recorded (prepared; nothing needs to run for the pool to hold its buffers).
      const model = Array.from({ length: blocks }, block).flat();
      const encoder = device.createCommandEncoder();
      for (const set of model) set.record(encoder);
      const shared = pooledBytes();
      expect(shared).toBe(perSet(hidden) + perSet(intermediate));
      for (const set of model) set.destroy();
      expect(pooledBytes()).toBe(0);
      // The README's figures, to the digits it gives.
      expect(shared / mebibyte).toBeCloseTo(sharedMiB, 1);
      expect(10 * Math.round(unshared / mebibyte / 10)).toBe(290);
    } finally {
      weights.hidden.destroy();
      weights.intermediate.destroy();
      x.destroy();
      for (const y of ys) y.destroy();
    }
  });
});
