import { beforeAll, describe, expect, it } from 'vitest';
import { createBuffer, createBufferWithData, readBufferExclusive, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import { dispatchEpilogue, dispatchF16ToF32 } from '../../src/gpu/kernels/activationIo.js';
import { dotPathFor } from '../../src/gpu/kernels/e8Matmul.js';
import { uploadWeightOnly } from '../../src/gpu/kernels/weightOnlyGemv.js';
import { QuantizedLinear, type LinearWeight, type QuantizedLinearOptions } from '../../src/gpu/quantizedLinear.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import type { Matrix } from '../../src/matrix.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { LatticeQuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { float16Bits, float16BitsToFloat32Bits, fromFloat16Bits } from '../../src/scalar/floatFormats.js';
import { quantizeWeights } from '../../src/weightonly/quantizeWeights.js';
import { contextOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * f16 outputs at the edges of f16's range: every kernel that writes f16 activations (the epilogue
 * kernel and the GEMVs' `store_output`) must write what the CPU's `float16Bits` gives for the same f32
 * value — round to nearest up to 65504, 65504 for (65504, 65520), ±Infinity from 65520 — and a NaN
 * for a NaN. WGSL leaves `pack2x16float` indeterminate outside f16's range and for NaN, so these
 * cases are encoded by the shaders themselves (shaders/f16_convert.wgsl); the tests pin them on every
 * adapter. An odd count of f16 outputs must also leave the other half of the last word as it was.
 */

const noGpu = await gpuUnavailableReason();

/** f32 values around f16's limits (and ordinary ones), as the GPU holds them. */
const EDGE_VALUES = Float32Array.of(
  0, -0, 1.5, -2.75, 2 ** -24, 2 ** -25, 3 * 2 ** -26, -(2 ** -14), 1000.3,
  65504, -65504, 65505, 65519.99, -65519.99, 65520, -65520, 65536, 1e5, -3e38, 3.4e38, Infinity, -Infinity, NaN, -NaN,
);

/** True when `bits` is an f16 NaN pattern. */
function isF16NaN(bits: number): boolean {
  return (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0;
}

/** Checks f16 `bits` against the f32 `values` they were written from: `float16Bits`, or a NaN for a NaN. */
function expectF16Of(bits: Uint16Array, values: ArrayLike<number>, what: string): void {
  expect(bits.length).toBe(values.length);
  for (let i = 0; i < values.length; i++) {
    const value = values[i] as number;
    const got = bits[i] as number;
    if (Number.isNaN(value)) expect(isF16NaN(got), `${what} [${i}]: NaN written as 0x${got.toString(16)}`).toBe(true);
    else expect(got, `${what} [${i}] = ${value}`).toBe(float16Bits(value));
  }
}

describe.skipIf(noGpu !== undefined)('f16 outputs at the edges of f16', () => {
  const suite = contextOnTestDevice();
  let device: GPUDevice;
  beforeAll(() => {
    device = suite.context.device;
  });

  // Sentinels after an odd count: NaN payloads (which a round trip through f32 may change), ±Infinity,
  // a subnormal, −0 and an ordinary value.
  const sentinels = [0x7c01, 0x7fff, 0xfe01, 0x7c00, 0xfc00, 0x0001, 0x8000, 0x3c00];

  it.each([false, true])('the epilogue kernel writes float16Bits(t + b) and keeps the half after an odd count (bias %s)', async (withBias) => {
    const count = EDGE_VALUES.length;
    for (const [length, sentinel] of [[count, 0], ...sentinels.map((s) => [count - 1, s] as const)] as const) {
      const bias = withBias ? Float32Array.from({ length }, (_, i) => (i % 3 === 0 ? 0.5 : i % 3 === 1 ? -8 : 16)) : null;
      const input = createBufferWithData(device, 'epilogue t', EDGE_VALUES.subarray(0, length), STORAGE_USAGE);
      const biasBuffer = bias === null ? null : createBufferWithData(device, 'epilogue b', bias, STORAGE_USAGE);
      const words = Math.ceil(length / 2);
      const initial = new Uint16Array(2 * words).fill(0x1234);
      if (length % 2 === 1) initial[length] = sentinel;
      const output = createBufferWithData(device, 'epilogue y', initial, STORAGE_USAGE);
      const scratch = new GpuScratch(device);
      try {
        const encoder = device.createCommandEncoder({ label: 'f16 epilogue test' });
        // rows = length: one bias value per element (the bias period is the output features).
        dispatchEpilogue(device, encoder, scratch, { input, bias: biasBuffer, rows: length, columns: 1, output, format: 'f16' });
        device.queue.submit([encoder.finish()]);
        const halves = new Uint16Array(await readBufferExclusive(device, output, 4 * words));
        const expected = Array.from(EDGE_VALUES.subarray(0, length), (t, i) => (bias === null ? t : Math.fround(t + (bias[i] as number))));
        expectF16Of(halves.subarray(0, length), expected, `epilogue, ${length} values`);
        if (length % 2 === 1) expect(halves[length], `the half after Y (0x${sentinel.toString(16)})`).toBe(sentinel);
      } finally {
        for (const buffer of [input, biasBuffer, output]) buffer?.destroy();
        scratch.destroy();
      }
    }
  });

  // dispatchEpilogue's offsets other than 0: y at a word past a binding boundary (its first element
  // then a word, or an even half, into the binding), sentinel bytes around it; b at one alignment in,
  // NaN before it.
  it.each(['f32', 'f16'] as const)('the epilogue kernel writes from outputOffset and reads the bias from biasOffset, touching nothing around y; an offset between alignments is refused (%s output)', async (format) => {
    const alignment = device.limits.minStorageBufferOffsetAlignment;
    const rows = 5;
    const columns = 3;
    const t = Float32Array.from({ length: rows * columns }, (_, i) => 0.75 * i - 4.5);
    const biasValues = Float32Array.of(0.5, -8, 16, 1.25, -0.125);
    const held = new Float32Array(alignment / 4 + rows).fill(Number.NaN);
    held.set(biasValues, alignment / 4);
    const outputOffset = alignment + 4;
    const yBytes = (format === 'f16' ? 2 : 4) * rows * columns;
    const initial = new Uint8Array(4 * Math.ceil((outputOffset + yBytes + 8) / 4)).fill(0x5a);
    const input = createBufferWithData(device, 'epilogue t', t, STORAGE_USAGE);
    const biasBuffer = createBufferWithData(device, 'epilogue b at an offset', held, STORAGE_USAGE);
    const output = createBufferWithData(device, 'epilogue y at an offset', initial, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const args = { input, bias: biasBuffer, rows, columns, output, outputOffset, format };
      const encoder = device.createCommandEncoder({ label: 'epilogue offsets' });
      expect(alignment).toBeGreaterThan(4);
      expect(() => dispatchEpilogue(device, encoder, scratch, { ...args, biasOffset: 4 })).toThrow(/epilogue bias offset must be a multiple of the storage offset alignment/);
      dispatchEpilogue(device, encoder, scratch, { ...args, biasOffset: alignment });
      device.queue.submit([encoder.finish()]);
      const bytes = new Uint8Array(await readBufferExclusive(device, output, initial.byteLength));
      expect(Array.from(bytes.subarray(0, outputOffset)), 'bytes before y').toEqual(Array.from(initial.subarray(0, outputOffset)));
      expect(Array.from(bytes.subarray(outputOffset + yBytes)), 'bytes after y').toEqual(Array.from(initial.subarray(outputOffset + yBytes)));
      const expected = Array.from(t, (v, i) => Math.fround(v + (biasValues[i % rows] as number)));
      const y = bytes.slice(outputOffset, outputOffset + yBytes).buffer;
      if (format === 'f16') expectF16Of(new Uint16Array(y), expected, 'epilogue at offsets');
      else expect(Array.from(new Float32Array(y))).toEqual(expected);
    } finally {
      for (const buffer of [input, biasBuffer, output]) buffer.destroy();
      scratch.destroy();
    }
  });

  // f16_value and f16_bits (shaders/f16_convert.wgsl) convert in integer arithmetic of their own where
  // WGSL's builtins may differ between GPUs (subnormal halves flushed to ±0; pack2x16float rounding to
  // either neighbour, toward zero on Mesa's RADV): every half widened, and every rounding class, against
  // the CPU twins. (Lavapipe's own builtins round to nearest and keep subnormals, so these pin the
  // library's arithmetic, not another GPU's.)
  it('widens every f16 bit pattern as float16BitsToFloat32Bits (subnormals, ±0, ±Infinity; NaN a NaN), from an odd half', async () => {
    const halves = Uint16Array.from({ length: 65536 + 2 }, (_, i) => (i === 0 ? 0x7c01 : (i - 1) & 0xffff)); // pattern h at half h + 1
    const input = createBufferWithData(device, 'f16 patterns', halves, STORAGE_USAGE);
    const output = createBuffer(device, 'f16 patterns widened', 4 * 65536, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const encoder = device.createCommandEncoder({ label: 'f16 widening test' });
      dispatchF16ToF32(device, encoder, scratch, { input, inputOffset: 2, output, count: 65536 });
      device.queue.submit([encoder.finish()]);
      const got = new Uint32Array(await readBufferExclusive(device, output, 4 * 65536));
      const wrong: string[] = [];
      for (let h = 0; h < 65536; h++) {
        const expected = float16BitsToFloat32Bits(h);
        const bits = got[h] as number;
        const nan = (expected & 0x7fffffff) > 0x7f800000;
        if (nan ? (bits & 0x7fffffff) <= 0x7f800000 : bits !== expected) wrong.push(`0x${h.toString(16)} → 0x${bits.toString(16)} (expected 0x${expected.toString(16)})`);
      }
      expect(wrong.slice(0, 10), `${wrong.length} halves widened wrong`).toEqual([]);
    } finally {
      scratch.destroy();
      input.destroy();
      output.destroy();
    }
  });

  it('rounds as float16Bits across the whole range: every finite half, each tie between neighbours and an f32 step either side (ties to even, up to 65520)', async () => {
    // Built from the halves' own values, both signs: 254,000 f32 values, the subnormal range included.
    const values: number[] = [];
    for (let h = 0; h < 0x7c00; h++) {
      const value = fromFloat16Bits(h);
      const next = h === 0x7bff ? 65536 : fromFloat16Bits(h + 1);
      const tie = Math.fround((value + next) / 2); // exact: one more bit than the half holds
      values.push(value, tie, Math.fround(tie * (1 - 2 ** -23)), Math.fround(tie * (1 + 2 ** -23)));
    }
    values.push(2 ** -126, 2 ** -149); // f32's smallest normal and subnormal
    const inputValues = Float32Array.from([...values, ...values.map((v) => -v)]);
    const input = createBufferWithData(device, 'f16 rounding t', inputValues, STORAGE_USAGE);
    const words = Math.ceil(inputValues.length / 2);
    const output = createBuffer(device, 'f16 rounding y', 4 * words, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const encoder = device.createCommandEncoder({ label: 'f16 rounding test' });
      dispatchEpilogue(device, encoder, scratch, { input, bias: null, rows: inputValues.length, columns: 1, output, format: 'f16' });
      device.queue.submit([encoder.finish()]);
      const halves = new Uint16Array(await readBufferExclusive(device, output, 4 * words));
      expectF16Of(halves.subarray(0, inputValues.length), inputValues, 'f16 rounding');
    } finally {
      scratch.destroy();
      input.destroy();
      output.destroy();
    }
  });

  // Every GEMV that writes f16 itself (store_output): the universal GEMV's finish, the deterministic
  // GEMV, the int8-input GEMVs (D3, and E8's residue GEMV) and the weight-only GEMV. A bias pushes outputs W·x + b across f16's
  // limits; a NaN in the second token's x makes that token's outputs NaN. The f16 layer reads the
  // same values as the f32 one (x is exact in f16), so its output must be float16Bits of the f32
  // layer's, bit for bit.
  const n = 100; // not a multiple of the block or of the workgroup
  const out = 22;
  const w = gaussianMatrix(n, out, 3);
  const biasValues = Float32Array.from({ length: out }, (_, j) => [65500, -65515, 65530, -7e4, 1e38, -3e38, 65504, 0][j % 8] as number);
  interface Kind {
    readonly weight: LinearWeight;
    readonly destroy: () => void;
    readonly options?: QuantizedLinearOptions;
  }
  const lattice = (q: LatticeQuantizedMatrix, options?: QuantizedLinearOptions): Kind => {
    const uploaded = uploadLatticeMatrix(device, q);
    return { weight: uploaded as LinearWeight, destroy: () => uploaded.destroy(), ...(options === undefined ? {} : { options }) };
  };
  const kinds: Record<string, () => Kind> = {
    'universal e8-4bit': () => lattice(quantize(w, { scheme: 'e8-4bit', seed: 2, nonce: 5 }) as LatticeQuantizedMatrix),
    'deterministic d3-q6': () => lattice(quantize(w, { scheme: 'd3-q6-deterministic', seed: 2 }) as LatticeQuantizedMatrix),
    'int8 inputs d3-q6': () => lattice(quantize(w, { scheme: 'd3-q6', seed: 2, nonce: 5 }) as LatticeQuantizedMatrix, { int8Inputs: dotPathFor(suite.context.features) }),
    'int8 inputs e8-q16-deterministic, centred (E8 residues)': () =>
      lattice(quantize(w, { scheme: 'e8-q16-deterministic', seed: 2, center: true }) as LatticeQuantizedMatrix, { int8Inputs: dotPathFor(suite.context.features) }),
    'weight-only rtn': () => {
      const uploaded = uploadWeightOnly(device, quantizeWeights(w, null, { method: 'rtn', rate: 3, rotate: false }));
      return { weight: uploaded, destroy: () => uploaded.destroy() };
    },
  };

  it.each(Object.keys(kinds))('the GEMV writes float16Bits of the f32 layer’s output past 65504, and NaN for NaN (%s)', async (kind) => {
    const { weight, destroy, options } = (kinds[kind] as () => Kind)();
    const tokens = 3;
    const x: Matrix = gaussianMatrix(n, tokens, 7);
    const xValues = Float32Array.from(x.data, (v) => Math.round(v * 64) / 256); // exact in f16; |W·x| of a few units
    xValues[n + 5] = NaN;
    const halves = Uint16Array.from(xValues, (v) => (Number.isNaN(v) ? 0x7e00 : float16Bits(v)));
    const layers = (['f32', 'f16'] as const).map((activations) => QuantizedLinear.create(device, weight, { ...options, bias: biasValues, activations, maxTokens: tokens }));
    const x32 = createBufferWithData(device, 'x f32', xValues, STORAGE_USAGE);
    const x16 = createBufferWithData(device, 'x f16', halves, STORAGE_USAGE);
    const y32 = createBuffer(device, 'y f32', 4 * out * tokens, STORAGE_USAGE);
    const y16 = createBuffer(device, 'y f16', 2 * out * tokens, STORAGE_USAGE);
    try {
      const encoder = device.createCommandEncoder({ label: 'f16 output test' });
      layers[0]?.record(encoder, x32, y32, { tokens });
      layers[1]?.record(encoder, x16, y16, { tokens });
      device.queue.submit([encoder.finish()]);
      const f32 = new Float32Array(await readBufferExclusive(device, y32, 4 * out * tokens));
      const f16 = new Uint16Array(await readBufferExclusive(device, y16, 2 * out * tokens));
      // The case this is about: outputs past f16's range, and a NaN token.
      expect(f32.some((v) => Math.abs(v) >= 65520 && Number.isFinite(v))).toBe(true);
      expect(f32.some((v) => Math.abs(v) > 65504 && Math.abs(v) < 65520)).toBe(true);
      expect(f32.subarray(out, 2 * out).every((v) => Number.isNaN(v))).toBe(true);
      expect(f32.subarray(0, out).every((v) => !Number.isNaN(v))).toBe(true);
      expectF16Of(f16, f32, kind);
    } finally {
      for (const layer of layers) layer.destroy();
      for (const buffer of [x32, x16, y32, y16]) buffer.destroy();
      destroy();
    }
  });
});
