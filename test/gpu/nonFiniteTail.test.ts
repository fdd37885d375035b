import { beforeAll, describe, expect, it } from 'vitest';
import { createBuffer, createBufferWithData, readBufferExclusive, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { GpuEngine } from '../../src/gpu/engine.js';
import { uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import { dotPathFor } from '../../src/gpu/kernels/e8Matmul.js';
import { dispatchInputsI8 } from '../../src/gpu/kernels/inputsI8.js';
import { dispatchLatticeGemvI8 } from '../../src/gpu/kernels/latticeGemvI8.js';
import { dispatchNonFiniteTail, nonFiniteTailReference } from '../../src/gpu/kernels/nonFiniteTail.js';
import { dispatchUniversalGemvI8, UniversalGemvI8Weights } from '../../src/gpu/kernels/universalGemvI8.js';
import { QuantizedLinear, type LinearWeight, type QuantizedLinearOptions } from '../../src/gpu/quantizedLinear.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { LatticeMatmulError } from '../../src/errors.js';
import type { Matrix } from '../../src/matrix.js';
import { dequantize } from '../../src/product/dequantize.js';
import { checkQuantizedMatrix } from '../../src/quantize/checkQuantized.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import type { DeterministicLatticeMatrix, LatticeQuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { float16Bits } from '../../src/scalar/floatFormats.js';
import { contextOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * A NaN or ±Infinity in x where W keeps no coordinate. An unrotated, time-shared W (rotate: false,
 * keepFraction < 1) is 0 past keptLength, so its GEMVs never read x there; but Ŵᵀx of such an x is NaN
 * (0·NaN), as the CPU's decode-and-multiply gives, and a finite output would be a silent wrong answer.
 * Every GEMV that can take such a W (f32 and int8 inputs, every code form) is run through a
 * QuantizedLinear (f32 and f16 activations) and through GpuEngine.matvec on a GPU-buffer x: the
 * tokens with a non-finite entry past keptLength must come out all NaN, and the clean token must be
 * bit for bit what the same layer gives for a clean x (the check touches nothing else, also not the
 * f16 halves that share a word with a poisoned token's).
 */

const noGpu = await gpuUnavailableReason();

describe.skipIf(noGpu !== undefined)('a non-finite x past keptLength of an unrotated, time-shared W', () => {
  const suite = contextOnTestDevice();
  let device: GPUDevice;
  beforeAll(() => {
    device = suite.context.device;
  });

  const n = 100; // keepFraction 0.5: keptLength 51 (D3 blocks) or 48 (E8); not a multiple of a block or a workgroup
  const out = 21; // odd: f16 outputs of neighbouring tokens share a word
  const tokens = 3;
  const w = gaussianMatrix(n, out, 3);
  const unrotated = { rotate: false, keepFraction: 0.5 } as const;

  interface Kind {
    readonly options: QuantizeOptions;
    readonly layer?: QuantizedLinearOptions;
  }
  const int8 = (): QuantizedLinearOptions => ({ int8Inputs: dotPathFor(suite.context.features) });
  const kinds: Record<string, () => Kind> = {
    'universal e8-4bit (f32 inputs)': () => ({ options: { scheme: 'e8-4bit', seed: 1, nonce: 5n, ...unrotated } }),
    'universal d3-q6 (f32 inputs)': () => ({ options: { scheme: 'd3-q6', seed: 1, nonce: 5n, ...unrotated } }),
    'deterministic d3-q6 (f32 inputs)': () => ({ options: { scheme: 'd3-q6-deterministic', seed: 1, ...unrotated } }),
    'deterministic e8-q16 (f32 inputs)': () => ({ options: { scheme: 'e8-q16-deterministic', seed: 1, ...unrotated } }),
    'universal d3-q6, int8 inputs': () => ({ options: { scheme: 'd3-q6', seed: 1, nonce: 5n, ...unrotated }, layer: int8() }),
    'universal e8-4bit, int8 inputs (E8 points)': () => ({ options: { scheme: 'e8-4bit', seed: 1, nonce: 5n, ...unrotated }, layer: int8() }),
    'deterministic d3-q6, int8 inputs (D3 quads)': () => ({ options: { scheme: 'd3-q6-deterministic', seed: 1, ...unrotated }, layer: int8() }),
    'deterministic e8-q16, int8 inputs (E8 residues)': () => ({ options: { scheme: 'e8-q16-deterministic', seed: 1, ...unrotated }, layer: int8() }),
  };

  /** x with 3 tokens: token 0 clean; token 1 a NaN at the last row, token 2 −Infinity at keptLength, the first coordinate W does not keep (all finite for `kept` null). */
  function inputs(kept: number | null): Float32Array<ArrayBuffer> {
    const x: Matrix = gaussianMatrix(n, tokens, 7);
    const values = Float32Array.from(x.data, (v) => Math.round(v * 64) / 256); // exact in f16
    if (kept !== null) {
      values[n + (n - 1)] = NaN;
      values[2 * n + kept] = -Infinity;
    }
    return values;
  }

  /** Y (as f32, or f16 bits widened) of a layer of `kind` on x, f32 or f16 activations. */
  async function layerOutput(weight: LinearWeight, layerOptions: QuantizedLinearOptions | undefined, activations: 'f32' | 'f16', x: Float32Array): Promise<Uint32Array> {
    const layer = QuantizedLinear.create(device, weight, { ...layerOptions, activations, maxTokens: tokens });
    const xBuffer =
      activations === 'f32'
        ? createBufferWithData(device, 'x f32', x, STORAGE_USAGE)
        : createBufferWithData(device, 'x f16', Uint16Array.from(x, float16BitsOrNaN), STORAGE_USAGE);
    const bytes = (activations === 'f32' ? 4 : 2) * out * tokens;
    const y = createBuffer(device, 'y', bytes + 2, STORAGE_USAGE); // whole words for f16
    try {
      const encoder = device.createCommandEncoder({ label: 'non-finite tail test' });
      layer.record(encoder, xBuffer, y, { tokens });
      device.queue.submit([encoder.finish()]);
      const raw = await readBufferExclusive(device, y, bytes + 2);
      return activations === 'f32' ? new Uint32Array(raw, 0, out * tokens) : Uint32Array.from(new Uint16Array(raw, 0, out * tokens));
    } finally {
      layer.destroy();
      xBuffer.destroy();
      y.destroy();
    }
  }

  const float16BitsOrNaN = (v: number): number => (Number.isNaN(v) ? 0x7e00 : float16Bits(v));
  const isNaNBits = (bits: number, f16: boolean): boolean => (f16 ? (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0 : (bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0);

  it.each(Object.keys(kinds).flatMap((kind) => (['f32', 'f16'] as const).map((activations) => [kind, activations] as const)))('QuantizedLinear, %s, %s activations', async (kind, activations) => {
    const { options, layer } = (kinds[kind] as () => Kind)();
    const q = quantize(w, options) as LatticeQuantizedMatrix;
    expect(q.keptLength).toBeLessThan(n);
    const weight = uploadLatticeMatrix(device, q);
    try {
      const clean = await layerOutput(weight as LinearWeight, layer, activations, inputs(null));
      const poisoned = await layerOutput(weight as LinearWeight, layer, activations, inputs(q.keptLength));
      const f16 = activations === 'f16';
      for (let i = 0; i < out; i++) expect(isNaNBits(clean[i] as number, f16), `clean token, output ${i}`).toBe(false);
      expect(Array.from(poisoned.subarray(0, out)), 'the clean token is untouched').toEqual(Array.from(clean.subarray(0, out)));
      for (let i = out; i < tokens * out; i++) expect(isNaNBits(poisoned[i] as number, f16), `token ${Math.floor(i / out)}, output ${i % out}: 0x${(poisoned[i] as number).toString(16)}`).toBe(true);
    } finally {
      weight.destroy();
    }
  });

  it('a layer’s prepared commands replayed on x rewritten in place: clean, then poisoned, then clean again', async () => {
    const q = quantize(w, { scheme: 'd3-q6-deterministic', seed: 1, ...unrotated }) as LatticeQuantizedMatrix;
    const weight = uploadLatticeMatrix(device, q);
    const layer = QuantizedLinear.create(device, weight as LinearWeight, { activations: 'f32', maxTokens: tokens, int8Inputs: dotPathFor(suite.context.features) });
    const xBuffer = createBuffer(device, 'x', 4 * n * tokens, STORAGE_USAGE);
    const y = createBuffer(device, 'y', 4 * out * tokens, STORAGE_USAGE);
    try {
      const outputs: Float32Array[] = [];
      for (const kept of [null, q.keptLength, null]) {
        device.queue.writeBuffer(xBuffer, 0, inputs(kept));
        const encoder = device.createCommandEncoder({ label: 'replay' });
        layer.record(encoder, xBuffer, y, { tokens });
        device.queue.submit([encoder.finish()]);
        outputs.push(new Float32Array(await readBufferExclusive(device, y, 4 * out * tokens)));
      }
      expect(layer.preparedCount).toBe(1);
      const [clean, poisoned, again] = outputs as [Float32Array, Float32Array, Float32Array];
      expect(clean.every((v) => Number.isFinite(v))).toBe(true);
      expect(Array.from(poisoned.subarray(0, out))).toEqual(Array.from(clean.subarray(0, out)));
      expect(poisoned.subarray(out).every((v) => Number.isNaN(v))).toBe(true);
      expect(Array.from(again)).toEqual(Array.from(clean));
    } finally {
      layer.destroy();
      weight.destroy();
      xBuffer.destroy();
      y.destroy();
    }
  });

  it.each(['e8-4bit', 'd3-q6-deterministic', 'e8-q16-deterministic'] as const)('GpuEngine.matvec on a GPU-buffer x (%s)', async (scheme) => {
    const engine = GpuEngine.create(suite.context);
    const q = quantize(w, { scheme, seed: 1, ...(scheme === 'e8-4bit' ? { nonce: 5n } : {}), ...unrotated }) as LatticeQuantizedMatrix;
    const weight = uploadLatticeMatrix(device, q);
    const xBuffer = createBufferWithData(device, 'x', inputs(q.keptLength), STORAGE_USAGE);
    try {
      const y = await engine.matvec(weight, { buffer: xBuffer, rows: n, cols: tokens });
      expect(y.data.subarray(0, out).every((v) => Number.isFinite(v))).toBe(true);
      for (let i = out; i < tokens * out; i++) expect(Number.isNaN(y.data[i]), `token ${Math.floor(i / out)}, output ${i % out}`).toBe(true);
    } finally {
      xBuffer.destroy();
      weight.destroy();
      engine.destroy();
    }
  });

  it.each([
    ['f32 x at byte offset 16, y by matvecInto at byte offset 8', 'f32'],
    ['f16 x at byte offset 6', 'f16'],
  ] as const)('GpuEngine on a GPU x with offsets: %s', async (_, format) => {
    const engine = GpuEngine.create(suite.context);
    const q = quantize(w, { scheme: 'e8-q16-deterministic', seed: 1, ...unrotated }) as LatticeQuantizedMatrix;
    const weight = uploadLatticeMatrix(device, q);
    const values = inputs(q.keptLength);
    // Around x: NaN (f32) or f16 NaN halves, which a check reading the wrong window would find.
    const xBytes = format === 'f32' ? 16 : 6;
    const data =
      format === 'f32'
        ? Float32Array.from({ length: 4 + n * tokens + 4 }, (_, i) => (i >= 4 && i < 4 + n * tokens ? (values[i - 4] as number) : NaN))
        : Uint16Array.from({ length: 3 + n * tokens + 5 }, (_, i) => (i >= 3 && i < 3 + n * tokens ? float16BitsOrNaN(values[i - 3] as number) : 0x7e00));
    const xBuffer = createBufferWithData(device, 'x', data, STORAGE_USAGE);
    const output = createBuffer(device, 'y', 8 + 4 * out * tokens, STORAGE_USAGE);
    const clean = inputs(null);
    const cleanBuffer = createBufferWithData(device, 'clean x', format === 'f32' ? clean : Uint16Array.from(clean, float16BitsOrNaN), STORAGE_USAGE);
    try {
      const x = { buffer: xBuffer, rows: n, cols: tokens, offset: xBytes, format };
      const reference = await engine.matvec(weight, { buffer: cleanBuffer, rows: n, cols: tokens, format });
      const results = [(await engine.matvec(weight, x)).data];
      if (format === 'f32') {
        await engine.matvecInto(weight, x, output, 8);
        results.push(new Float32Array(await readBufferExclusive(device, output, 8 + 4 * out * tokens), 8, out * tokens));
      }
      for (const y of results) {
        expect(Array.from(y.subarray(0, out)), 'the clean token').toEqual(Array.from(reference.data.subarray(0, out)));
        for (let i = out; i < tokens * out; i++) expect(Number.isNaN(y[i]), `token ${Math.floor(i / out)}, output ${i % out}`).toBe(true);
      }
    } finally {
      for (const buffer of [xBuffer, output, cleanBuffer]) buffer.destroy();
      weight.destroy();
      engine.destroy();
    }
  });

  it('dispatchLatticeGemvI8 (the int8-input D3 GEMV on its own, not the quad form)', async () => {
    const q = quantize(w, { scheme: 'd3-q6-deterministic', seed: 1, ...unrotated }) as DeterministicLatticeMatrix;
    const weight = uploadLatticeMatrix(device, q);
    const xBuffer = createBufferWithData(device, 'x', inputs(q.keptLength), STORAGE_USAGE);
    const y = createBuffer(device, 'y', 4 * out * tokens, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const encoder = device.createCommandEncoder({ label: 'lattice gemv i8' });
      dispatchLatticeGemvI8(device, encoder, scratch, { w: weight, x: xBuffer, y, rhs: tokens, dotPath: dotPathFor(suite.context.features) });
      device.queue.submit([encoder.finish()]);
      const got = new Float32Array(await readBufferExclusive(device, y, 4 * out * tokens));
      expect(got.subarray(0, out).every((v) => Number.isFinite(v))).toBe(true);
      expect(got.subarray(out).every((v) => Number.isNaN(v))).toBe(true);
    } finally {
      scratch.destroy();
      xBuffer.destroy();
      y.destroy();
      weight.destroy();
    }
  });

  // A centred W is its means past keptLength, not 0: decoding and multiplying gives ±Infinity for an
  // infinite entry there (NaN for a NaN), and the GEMVs' Σx (over all rows) gives the same; the
  // check must not turn those ±Infinity into NaN.
  const centred: Record<string, () => Kind> = {
    'universal e8-4bit centred (f32 inputs)': () => ({ options: { scheme: 'e8-4bit', seed: 1, nonce: 5n, center: true, ...unrotated } }),
    'deterministic d3-q6 centred (f32 inputs)': () => ({ options: { scheme: 'd3-q6-deterministic', seed: 1, center: true, ...unrotated } }),
    'deterministic d3-q6 centred, int8 inputs': () => ({ options: { scheme: 'd3-q6-deterministic', seed: 1, center: true, ...unrotated }, layer: int8() }),
    'deterministic e8-q16 centred, int8 inputs (E8 residues)': () => ({ options: { scheme: 'e8-q16-deterministic', seed: 1, center: true, ...unrotated }, layer: int8() }),
  };
  it.each(Object.keys(centred))('a centred W keeps the ±Infinity that decoding and multiplying gives (%s)', async (kind) => {
    const { options, layer } = (centred[kind] as () => Kind)();
    const q = quantize(w, options) as LatticeQuantizedMatrix;
    const weight = uploadLatticeMatrix(device, q);
    const x = inputs(q.keptLength);
    x[2 * n + q.keptLength] = Infinity; // token 2: +Infinity past keptLength; token 1 keeps its NaN
    try {
      const bits = await layerOutput(weight as LinearWeight, layer, 'f32', x);
      const got = new Float32Array(bits.buffer, bits.byteOffset, bits.length);
      const wHat = dequantize(q);
      const classOf = (v: number): string => (Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : 'finite');
      const expected: string[] = [];
      for (let r = 0; r < tokens; r++) {
        for (let j = 0; j < out; j++) {
          let sum = 0;
          for (let i = 0; i < n; i++) sum += (wHat.data[j * n + i] as number) * (x[r * n + i] as number);
          expected.push(classOf(sum));
        }
      }
      expect(expected.slice(2 * out).some((c) => c === '+Inf') && expected.slice(2 * out).some((c) => c === '-Inf')).toBe(true);
      expect(Array.from(got, classOf)).toEqual(expected);
    } finally {
      weight.destroy();
    }
  });

  it('refuses time-sharing over a two-window rotation in a matrix made elsewhere (a prefix would never read x past the first window)', () => {
    const q = quantize(gaussianMatrix(2000, 2, 5), { scheme: 'd3-q6-deterministic', seed: 1 }) as DeterministicLatticeMatrix;
    const crafted = { ...q, keptLength: 300, blocksPerColumn: 100 };
    expect(() => checkQuantizedMatrix(crafted, 'W')).toThrow(LatticeMatmulError);
    expect(() => checkQuantizedMatrix(crafted, 'W')).toThrow(/^W\.keptLength 300 < length \d+ \(time-sharing\) needs a one-stage rotation, but n = 2000 is rotated in 2 overlapping windows/);
    expect(() => uploadLatticeMatrix(device, crafted)).toThrow(/needs a one-stage rotation/);
  });

  // The check itself against its CPU twin: Y's bits kept where x's rest is finite (also the f16 half
  // that shares a word with a poisoned one, and the halves around Y), NaN elsewhere; splits of the
  // right-hand sides over bindings, f16 Y at an odd half offset, n = 1, nothing past keptLength.
  const kernelCases: { name: string; rows: number; kept: number; cols: number; rhs: number; format: 'f32' | 'f16'; yOffset: number; maxBindingBytes?: number }[] = [
    { name: 'f32, 5 right-hand sides', rows: 300, kept: 100, cols: 7, rhs: 5, format: 'f32', yOffset: 8 },
    { name: 'f16 at an odd half, odd cols', rows: 300, kept: 299, cols: 7, rhs: 5, format: 'f16', yOffset: 6 },
    { name: 'n = 1, keptLength 0', rows: 1, kept: 0, cols: 3, rhs: 4, format: 'f16', yOffset: 2 },
    { name: 'right-hand sides split over 2 KB bindings', rows: 200, kept: 50, cols: 9, rhs: 11, format: 'f32', yOffset: 0, maxBindingBytes: 2048 },
    // Each range's Y window from its own first half (ranges meeting inside words: odd cols).
    { name: 'f16 at an odd half, split over 2 KB', rows: 200, kept: 50, cols: 9, rhs: 11, format: 'f16', yOffset: 6, maxBindingBytes: 2048 },
    { name: 'keptLength = rows: nothing to check', rows: 40, kept: 40, cols: 5, rhs: 3, format: 'f32', yOffset: 0 },
  ];
  it.each(kernelCases)('dispatchNonFiniteTail = its CPU twin ($name)', async ({ rows, kept, cols, rhs, format, yOffset, maxBindingBytes }) => {
    const x = gaussianMatrix(rows, rhs, 11);
    const poisons = [NaN, Infinity, -Infinity];
    for (let r = 1; r < rhs; r += 2) if (kept < rows) x.data[r * rows + kept + ((r * 7) % (rows - kept))] = poisons[r % 3] as number;
    if (kept > 0) x.data[2 * rows] = NaN; // a NaN the GEMV read itself (before keptLength) is not this check's
    const y = gaussianMatrix(cols, rhs, 12);
    const f16 = format === 'f16';
    const elementBytes = f16 ? 2 : 4;
    const yWords = Math.ceil((yOffset + elementBytes * cols * rhs) / 4) + 1;
    const initial = new Uint32Array(yWords).fill(0x3c003c00); // 1.0 in f16 halves, a finite f32 sentinel
    const yBits = new DataView(initial.buffer);
    for (let i = 0; i < cols * rhs; i++) {
      const v = y.data[i] as number;
      if (f16) yBits.setUint16(yOffset + 2 * i, float16Bits(v), true);
      else yBits.setFloat32(yOffset + 4 * i, v, true);
    }
    const xBuffer = createBufferWithData(device, 'x', x.data, STORAGE_USAGE);
    const yBuffer = createBufferWithData(device, 'y', initial, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const encoder = device.createCommandEncoder({ label: 'non-finite tail kernel test' });
      dispatchNonFiniteTail(device, encoder, scratch, { x: xBuffer, rows, kept, rhs, y: yBuffer, yOffset, cols, outputFormat: format, ...(maxBindingBytes === undefined ? {} : { maxBindingBytes }) });
      device.queue.submit([encoder.finish()]);
      const got = new DataView(await readBufferExclusive(device, yBuffer, 4 * yWords));
      const expected = nonFiniteTailReference(x, kept, y);
      const poisoned = new Set<number>();
      for (let r = 0; r < rhs; r++) if (Number.isNaN(expected.data[r * cols])) poisoned.add(r);
      expect(poisoned.size).toBe(kept < rows ? Math.floor(rhs / 2) : 0);
      for (let i = 0; i < cols * rhs; i++) {
        const at = yOffset + elementBytes * i;
        const want = expected.data[i] as number;
        if (f16) {
          const bits = got.getUint16(at, true);
          if (Number.isNaN(want)) expect((bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0, `half ${i}: 0x${bits.toString(16)}`).toBe(true);
          else expect(bits, `half ${i}`).toBe(float16Bits(want));
        } else if (Number.isNaN(want)) expect(Number.isNaN(got.getFloat32(at, true)), `element ${i}`).toBe(true);
        else expect(got.getUint32(at, true), `element ${i}`).toBe(yBits.getUint32(at, true));
      }
      // Nothing around Y changed.
      for (let b = 0; b < yOffset; b++) expect(got.getUint8(b), `byte ${b} before Y`).toBe(yBits.getUint8(b));
      for (let b = yOffset + elementBytes * cols * rhs; b < 4 * yWords; b++) expect(got.getUint8(b), `byte ${b} after Y`).toBe(yBits.getUint8(b));
    } finally {
      scratch.destroy();
      xBuffer.destroy();
      yBuffer.destroy();
    }
  });

  it('refuses an int8-input call without x for an unrotated, time-shared W (x̂ alone does not show x past keptLength)', () => {
    const q = quantize(w, { scheme: 'd3-q6', seed: 1, nonce: 5n, ...unrotated }) as LatticeQuantizedMatrix;
    const weight = uploadLatticeMatrix(device, q);
    if (weight.mode !== 'universal') throw new Error('a universal scheme uploads a universal matrix');
    const weights = UniversalGemvI8Weights.create(device, weight);
    const xBuffer = createBufferWithData(device, 'x', inputs(null), STORAGE_USAGE);
    const y = createBuffer(device, 'y', 4 * out * tokens, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const encoder = device.createCommandEncoder({ label: 'refusal' });
      const inputsI8 = dispatchInputsI8(device, encoder, scratch, { w: weight, xRotated: xBuffer, rhs: tokens });
      const call = () => dispatchUniversalGemvI8(device, encoder, scratch, { weights, inputsI8, y, rhs: tokens, dotPath: dotPathFor(suite.context.features) });
      expect(call).toThrow(LatticeMatmulError);
      expect(call).toThrow(/x is needed: W is not rotated and keeps 51 of its 100 rows, so x's entries past keptLength are checked for NaN and ±Infinity/);
    } finally {
      scratch.destroy();
      xBuffer.destroy();
      y.destroy();
      weights.destroy();
      weight.destroy();
    }
  });
});
