import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createBufferWithData, readBuffer, readBufferExclusive, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { withValidation } from '../../src/gpu/errorScopes.js';
import { uploadLatticeMatrix, type GpuLatticeQuantizedMatrix } from '../../src/gpu/gpuQuantize.js';
import type { GpuUniversalQuantizedMatrix } from '../../src/gpu/universalOperand.js';
import { dotPathFor } from '../../src/gpu/kernels/e8Matmul.js';
import { dispatchLatticeGemv } from '../../src/gpu/kernels/latticeGemv.js';
import { dispatchUniversalGemv, fusedFinishSupported } from '../../src/gpu/kernels/universalGemv.js';
import { uploadWeightOnly } from '../../src/gpu/kernels/weightOnlyGemv.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { QuantizedLinear, type LinearWeight, type QuantizedLinearOptions } from '../../src/gpu/quantizedLinear.js';
import type { ActivationFormat } from '../../src/gpu/kernels/activationIo.js';
import type { BiasFormat } from '../../src/gpu/kernels/gemvCall.js';
import type { Matrix } from '../../src/matrix.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { DeterministicLatticeMatrix, LatticeQuantizedMatrix, UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { float16Bits, float16BitsToFloat32Bits } from '../../src/scalar/floatFormats.js';
import { quantizeWeights } from '../../src/weightonly/quantizeWeights.js';
import { contextOnTestDevice, defaultLimitsDevice, gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * The GEMV kernels' epilogue (`store_output` of shaders/gemv_output.wgsl) on every GEMV path a layer
 * takes: `accumulate` and the bias's format.
 *
 * QuantizedLinear's `accumulate` (y ← y + W·x + b, in the GEMV kernels' epilogue), on every GEMV path a layer takes. The twin is the same layer without
 * `accumulate`, run on the same x into a y holding the same old values (so a layer that adds when it
 * should not is caught too): with f32 activations the accumulated y must be, bit for bit,
 * fround(y_plain + y_old) (the kernel forms v = W·x + b in f32, as the plain layer stores it, and adds
 * the old value in f32). With f16 activations the kernel rounds v + old once while the plain layer
 * rounded v, so |y − (y_plain + old)| ≤ ulp(y) + ulp(y_plain) (f16 ulps; each rounding to either
 * neighbour, as WGSL allows). Old values include NaN, +Infinity and -65504, which must come through the
 * sum as IEEE arithmetic gives.
 */

const noGpu = await gpuUnavailableReason();

const n = 128;
const out = 40;
const tokens = 3;
const w = gaussianMatrix(n, out, 11);
const bias = Float32Array.from({ length: out }, (_, j) => 0.125 * (j - out / 2));

/** A weight for one GEMV path, built on a device, and the layer options the path needs. */
interface PathCase {
  readonly weight: (device: GPUDevice) => LinearWeight & { destroy(): void };
  readonly int8: boolean;
}

function lattice(scheme: string, extra: Record<string, unknown> = {}): (device: GPUDevice) => LinearWeight & { destroy(): void } {
  return (device) => uploadLatticeMatrix(device, quantize(w, { scheme, seed: 4, ...(scheme.endsWith('deterministic') ? {} : { nonce: 9 }), ...extra } as Parameters<typeof quantize>[1]) as LatticeQuantizedMatrix);
}

function weightOnly(layout: 'auto' | 'packed'): (device: GPUDevice) => LinearWeight & { destroy(): void } {
  return (device) => uploadWeightOnly(device, quantizeWeights(w, null, { method: 'rtn', rate: 4, rotate: true, seed: 3 }), { layout });
}

// Each case reaches a different kernel (or a different store in it) through QuantizedLinear.
const paths: Record<string, PathCase> = {
  'd3-q6 (universal GEMV)': { weight: lattice('d3-q6'), int8: false },
  'd3-q6 centred (Σx)': { weight: lattice('d3-q6', { center: true }), int8: false },
  'e8-q16 (universal GEMV)': { weight: lattice('e8-q16'), int8: false },
  'd3-q6, int8 inputs (universal int8 GEMV)': { weight: lattice('d3-q6'), int8: true },
  'e8-4bit, int8 inputs (E8 point GEMV)': { weight: lattice('e8-4bit'), int8: true },
  'd3-q6-deterministic (deterministic GEMV)': { weight: lattice('d3-q6-deterministic'), int8: false },
  // Keeping fewer coordinates than its rows, so the call records the non-finite tail check after the GEMV.
  'd3-q6-deterministic unrotated, time-shared (non-finite tail check)': { weight: lattice('d3-q6-deterministic', { rotate: false, keepFraction: 0.5 }), int8: false },
  'd3-q6-deterministic, int8 inputs (D3 quad GEMV)': { weight: lattice('d3-q6-deterministic'), int8: true },
  'D3 ladder past a byte, int8 inputs (codes as stored)': {
    weight: (device) => uploadLatticeMatrix(device, quantize(w, { scheme: { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 6, overload: { kind: 'ladder', beta: 0.4, ratio: 8, steps: 4 } }, seed: 4 }) as LatticeQuantizedMatrix),
    int8: true,
  },
  'e8-q16-deterministic (deterministic GEMV)': { weight: lattice('e8-q16-deterministic'), int8: false },
  'e8-q16-deterministic, int8 inputs (E8 residue GEMV)': { weight: lattice('e8-q16-deterministic'), int8: true },
  'weight-only, fixed-width codes': { weight: weightOnly('auto'), int8: false },
  'weight-only, packed codes': { weight: weightOnly('packed'), int8: false },
  'weight-only, int8 inputs': { weight: weightOnly('auto'), int8: true },
};

/** The weight of the path named `name` on `device` (a name that is not a path is a mistake in the test). */
function pathWeight(device: GPUDevice, name: string): LinearWeight & { destroy(): void } {
  const path = paths[name];
  if (path === undefined) throw new Error(`no path named ${JSON.stringify(name)}`);
  return path.weight(device);
}

/** y's old values: Gaussian with NaN, +Infinity and f16's largest negative finite value up front (representable in f16). */
function oldValues(count: number, seed: number): Float32Array {
  const values = Float32Array.from(gaussianMatrix(count, 1, seed).data, (v) => 4 * v);
  values[0] = Number.NaN;
  values[1] = Number.POSITIVE_INFINITY;
  values[2] = -65504;
  return values;
}

/** f16 bits of v rounded to nearest (NaN: the quiet NaN 0x7e00, which `float16Bits` refuses). */
function halfBits(v: number): number {
  return Number.isNaN(v) ? 0x7e00 : float16Bits(v);
}

/** `values` in the activation format's bytes (f16: rounded to nearest). */
function encoded(values: Float32Array, format: ActivationFormat): Float32Array | Uint16Array {
  return format === 'f16' ? Uint16Array.from(values, halfBits) : values;
}

/**
 * The values of f16 or bf16 bits, widened exactly as `toFloat32Matrix` widens a model's 16-bit tensors
 * (`float16BitsToFloat32Bits`; bf16 bits are an f32's top half), NaN bits too (which it refuses).
 */
function widened(bits: Uint16Array, format: 'f16' | 'bf16'): Float32Array {
  return new Float32Array(Uint32Array.from(bits, (b) => (format === 'f16' ? float16BitsToFloat32Bits(b) : b << 16)).buffer);
}

/** bf16 bits of v: the top half of its f32 bits. */
function bf16Bits(v: number): number {
  return new Uint32Array(new Float32Array([v]).buffer)[0]! >>> 16;
}

/** The values a buffer in the activation format holds. */
function decoded(raw: ArrayBuffer, format: ActivationFormat): Float32Array {
  return format === 'f16' ? widened(new Uint16Array(raw), 'f16') : new Float32Array(raw);
}

/** The spacing of f16 values at |v| (subnormal spacing below 2^-14). */
function f16Ulp(v: number): number {
  const magnitude = Math.abs(v);
  return magnitude < 2 ** -14 ? 2 ** -24 : 2 ** (Math.floor(Math.log2(magnitude)) - 10);
}

/**
 * `accumulated` is `plain` + `old` as the kernel forms it: bit for bit fround(plain + old) for f32;
 * within an f16 rounding of each for f16 (the same non-finite value where the sum is one).
 */
function expectAccumulated(accumulated: Float32Array, plain: Float32Array, old: Float32Array, format: ActivationFormat, what: string): void {
  if (format === 'f32') {
    expect(Array.from(accumulated), what).toEqual(Array.from(plain, (p, i) => Math.fround(p + (old[i] as number))));
    return;
  }
  for (let i = 0; i < plain.length; i++) {
    const p = plain[i] as number;
    const sum = p + (old[i] as number);
    const a = accumulated[i] as number;
    if (!Number.isFinite(sum)) {
      expect(a, `${what}: entry ${i}`).toBe(sum);
      continue;
    }
    expect(Math.abs(a - sum), `${what}: entry ${i} (${a} against ${p} + ${old[i]})`).toBeLessThanOrEqual(f16Ulp(a) + f16Ulp(p));
  }
}

/** Runs `layer` on x into a y that holds `old` (in the layer's format) and returns y's values afterwards. */
async function runOnto(device: GPUDevice, layer: QuantizedLinear, x: Matrix, old: Float32Array, records = 1): Promise<Float32Array> {
  const format = layer.activations;
  const xBuffer = createBufferWithData(device, 'accumulate test x', encoded(x.data, format), STORAGE_USAGE);
  const yBuffer = createBufferWithData(device, 'accumulate test y', encoded(old, format), STORAGE_USAGE);
  try {
    const encoder = device.createCommandEncoder({ label: 'accumulate test' });
    for (let r = 0; r < records; r++) layer.record(encoder, xBuffer, yBuffer, { tokens: x.cols });
    device.queue.submit([encoder.finish()]);
    return decoded(await readBufferExclusive(device, yBuffer, yBuffer.size), format);
  } finally {
    xBuffer.destroy();
    yBuffer.destroy();
  }
}

/** Old values as the layer's y holds them (f16: rounded). */
function heldAs(old: Float32Array, format: ActivationFormat): Float32Array {
  return format === 'f16' ? widened(Uint16Array.from(old, halfBits), 'f16') : old;
}

/** The plain and the accumulating layer over `weight` with `options`, the accumulated y against the plain one. */
async function expectAccumulatingLayer(device: GPUDevice, weight: LinearWeight, options: QuantizedLinearOptions, seed: number, what: string, columns = tokens): Promise<void> {
  const format = options.activations ?? 'f32';
  const x = gaussianMatrix(n, columns, seed);
  const old = heldAs(oldValues(out * columns, seed + 100), format);
  const plain = QuantizedLinear.create(device, weight, options);
  const adding = QuantizedLinear.create(device, weight, { ...options, accumulate: true });
  try {
    const yPlain = await runOnto(device, plain, x, old);
    expect(yPlain.every(Number.isFinite), `${what}: the plain layer writes over y's old values`).toBe(true);
    expectAccumulated(await runOnto(device, adding, x, old), yPlain, old, format, what);
  } finally {
    plain.destroy();
    adding.destroy();
  }
}

describe.skipIf(noGpu !== undefined)('QuantizedLinear accumulate: y ← y + W·x + b', () => {
  const suite = contextOnTestDevice();

  for (const [name, path] of Object.entries(paths)) {
    for (const activations of ['f32', 'f16'] as const) {
      it(`${name}, ${activations} activations, bias: the plain layer's y plus y's old values`, async () => {
        const { device, features } = suite.context;
        const weight = path.weight(device);
        try {
          const options = { bias, activations, ...(path.int8 ? { int8Inputs: dotPathFor(features) } : {}) };
          await expectAccumulatingLayer(device, weight, options, 21, name);
        } finally {
          weight.destroy();
        }
      });
    }
    // One token (a decode step, where a residual connection is most common) takes each GEMV's
    // one-right-hand-side variant: another kernel, whose store must add once too.
    it(`${name}, one token, f32 then f16 activations: the plain layer's y plus y's old values`, async () => {
      const { device, features } = suite.context;
      const weight = path.weight(device);
      try {
        for (const activations of ['f32', 'f16'] as const) {
          const options = { bias, activations, ...(path.int8 ? { int8Inputs: dotPathFor(features) } : {}) };
          await expectAccumulatingLayer(device, weight, options, 23, `${name}, one token, ${activations}`, 1);
        }
      } finally {
        weight.destroy();
      }
    });
  }

  // Subnormal halves (|v| < 2^-14, which WGSL lets unpack2x16float and pack2x16float flush to ±0) in
  // the old y and in an f16 bias, x = 0: y = b + old, two multiples of 2^-24 below 2^-14 whose sum
  // f16 holds exactly (its spacing is 2^-24 up to 2^-13), so the twin is that sum and a kernel that
  // read either half as ±0, or wrote the sum flushed, shows whichever way it rounds. The tests above
  // cannot: their outputs are ≈ 1, where a subnormal is far below the f16 tolerance.
  for (const [name, path] of Object.entries(paths)) {
    it(`${name}, f16 activations: subnormal halves of the old y and of an f16 bias add exactly (x = 0)`, async () => {
      const { device, features } = suite.context;
      const subnormal = (k: number, multiplier: number, offset: number): number => 1 + ((multiplier * k + offset) % 0x3ff);
      const biasBits = Uint16Array.from({ length: out }, (_, j) => (j % 3 === 0 ? 0x8000 : 0) | subnormal(j, 37, 5));
      const oldBits = Uint16Array.from({ length: out * tokens }, (_, k) => {
        const b = biasBits[k % out] as number;
        const fraction = subnormal(k, 101, 11);
        const sign = k % 2 === 0 ? 0 : 0x8000;
        // A sum of 0 would leave its sign to the rounding: never b = −old.
        return sign | (fraction === (b & 0x3ff) && sign !== (b & 0x8000) ? fraction + 1 : fraction);
      });
      oldBits[4] = 0x0400; // the smallest normal half beside them: sums that cross 2^-14
      const value = (bits: number): number => new Float32Array(new Uint32Array([float16BitsToFloat32Bits(bits)]).buffer)[0] as number;
      const expected = Uint16Array.from(oldBits, (o, k) => float16Bits(value(biasBits[k % out] as number) + value(o)));
      expect(Array.from(expected, value), 'the sums are exact in f16').toEqual(Array.from(oldBits, (o, k) => value(biasBits[k % out] as number) + value(o)));
      const weight = path.weight(device);
      const layer = QuantizedLinear.create(device, weight, { bias: biasBits, biasFormat: 'f16', activations: 'f16', accumulate: true, ...(path.int8 ? { int8Inputs: dotPathFor(features) } : {}) });
      const xBuffer = createBufferWithData(device, 'subnormal accumulate x', new Uint16Array(n * tokens), STORAGE_USAGE);
      const yBuffer = createBufferWithData(device, 'subnormal accumulate y', oldBits, STORAGE_USAGE);
      try {
        const encoder = device.createCommandEncoder({ label: 'subnormal accumulate' });
        layer.record(encoder, xBuffer, yBuffer, { tokens });
        device.queue.submit([encoder.finish()]);
        const got = new Uint16Array(await readBufferExclusive(device, yBuffer, yBuffer.size));
        const hex = (bits: Uint16Array): string[] => Array.from(bits, (b) => b.toString(16));
        expect(hex(got), name).toEqual(hex(expected));
      } finally {
        layer.destroy();
        weight.destroy();
        xBuffer.destroy();
        yBuffer.destroy();
      }
    });
  }

  it('every record adds once more (two records in one encoder add twice); without a bias too', async () => {
    const { device } = suite.context;
    const weight = pathWeight(device, 'd3-q6-deterministic (deterministic GEMV)');
    const x = gaussianMatrix(n, tokens, 31);
    const old = oldValues(out * tokens, 32);
    const plain = QuantizedLinear.create(device, weight);
    const adding = QuantizedLinear.create(device, weight, { accumulate: true });
    try {
      const yPlain = await runOnto(device, plain, x, old);
      const twice = await runOnto(device, adding, x, old, 2);
      expect(Array.from(twice)).toEqual(Array.from(yPlain, (p, i) => Math.fround(Math.fround(p + (old[i] as number)) + p)));
    } finally {
      plain.destroy();
      adding.destroy();
      weight.destroy();
    }
  });

  // The README's residual-connection figure ("Residual connections"): the fused add rounds
  // W·x + b + h once, an app's add kernel after an f16 layer rounds twice, f16(h + f16(W·x + b)).
  // Twin: the same layer with f32 activations on the same (f16-valued) x gives W·x + b in f32; the f16
  // layer must write f16(W·x + b) and the accumulating one f16(f32(W·x + b + h)), to nearest even as
  // float16Bits. The two results then differ by at most half an f16 ulp of W·x + b plus half an ulp of
  // each, and in a share of the entries that falls as h grows against W·x + b (W·x + b's rounding
  // then matters at fewer of the sum's rounding points): the README quotes the shares measured here
  // (256 × 256, 8 tokens: 2048 entries), within three standard errors of a share over that many.
  it('f16: a residual add rounds once where an add kernel rounds twice: within half an ulp of each rounding, differing in the share of entries the README quotes', async () => {
    const { device, features } = suite.context;
    const [inputs, outputs, columns] = [256, 256, 8];
    const asHalf = (v: number): number => widened(Uint16Array.of(halfBits(v)), 'f16')[0] as number;
    const x: Matrix = { rows: inputs, cols: columns, data: Float32Array.from(gaussianMatrix(inputs, columns, 61).data, asHalf) };
    const layerBias = Float32Array.from({ length: outputs }, (_, j) => 0.25 * (j - outputs / 2));
    const weight = uploadLatticeMatrix(device, quantize(gaussianMatrix(inputs, outputs, 62), { scheme: 'e8-4bit', seed: 4, nonce: 9 }) as LatticeQuantizedMatrix);
    const options = { bias: layerBias, int8Inputs: dotPathFor(features) };
    const exact = QuantizedLinear.create(device, weight, options);
    const plain = QuantizedLinear.create(device, weight, { ...options, activations: 'f16' });
    const adding = QuantizedLinear.create(device, weight, { ...options, activations: 'f16', accumulate: true });
    try {
      const zeros = new Float32Array(outputs * columns);
      const v = await runOnto(device, exact, x, zeros);
      const rounded = await runOnto(device, plain, x, zeros);
      expect(Array.from(rounded), 'the f16 layer writes f16(W·x + b)').toEqual(Array.from(v, asHalf));
      const rms = Math.sqrt(v.reduce((sum, value) => sum + value * value, 0) / v.length);
      for (const [scale, documentedShare] of [[1, 0.3], [4, 0.17], [16, 0.075]] as const) {
        const h = Float32Array.from(gaussianMatrix(outputs, columns, 63).data, (g) => asHalf(scale * rms * g));
        const fused = await runOnto(device, adding, x, h);
        expect(Array.from(fused), `h of ${scale}× the RMS: the sum rounded once`).toEqual(Array.from(v, (value, i) => asHalf(Math.fround(value + (h[i] as number)))));
        let differing = 0;
        for (let i = 0; i < fused.length; i++) {
          const twice = asHalf((h[i] as number) + (rounded[i] as number));
          const once = fused[i] as number;
          if (once !== twice) differing++;
          const bound = (f16Ulp(v[i] as number) + f16Ulp(once) + f16Ulp(twice)) / 2;
          expect(Math.abs(once - twice), `h of ${scale}× the RMS, entry ${i}`).toBeLessThanOrEqual(bound);
        }
        const share = differing / fused.length;
        const standardError = Math.sqrt((documentedShare * (1 - documentedShare)) / fused.length);
        expect(Math.abs(share - documentedShare), `h of ${scale}× the RMS: ${differing} of ${fused.length} entries differ`).toBeLessThanOrEqual(3 * standardError);
      }
    } finally {
      exact.destroy();
      plain.destroy();
      adding.destroy();
      weight.destroy();
    }
  });

  it('in place, as a residual connection: h ← h + W·h with x and y one buffer (a square layer)', async () => {
    const { device, features } = suite.context;
    const square = quantize(gaussianMatrix(n, n, 41), { scheme: 'd3-q6', seed: 4, nonce: 9 }) as LatticeQuantizedMatrix;
    const weight = uploadLatticeMatrix(device, square);
    for (const options of [{}, { int8Inputs: dotPathFor(features) }, { activations: 'f16' as const }]) {
      const format = options.activations ?? 'f32';
      const h = heldAs(Float32Array.from(gaussianMatrix(n, tokens, 42).data), format);
      const plain = QuantizedLinear.create(device, weight, options);
      const adding = QuantizedLinear.create(device, weight, { ...options, accumulate: true });
      const hBuffer = createBufferWithData(device, 'residual stream', encoded(h, format), STORAGE_USAGE);
      try {
        const yPlain = await runOnto(device, plain, { rows: n, cols: tokens, data: h }, new Float32Array(n * tokens));
        const encoder = device.createCommandEncoder({ label: 'residual in place' });
        adding.record(encoder, hBuffer, hBuffer, { tokens });
        device.queue.submit([encoder.finish()]);
        const after = decoded(await readBufferExclusive(device, hBuffer, hBuffer.size), format);
        expectAccumulated(after, yPlain, h, format, `in place ${JSON.stringify(options)}`);
      } finally {
        plain.destroy();
        adding.destroy();
        hBuffer.destroy();
      }
    }
    weight.destroy();
  });

  it('in a group, each member adds or writes as it was created', async () => {
    const { device } = suite.context;
    const weight = pathWeight(device, 'e8-q16 (universal GEMV)');
    const x = gaussianMatrix(n, tokens, 51);
    const old = oldValues(out * tokens, 52);
    const plain = QuantizedLinear.create(device, weight, { bias });
    const adding = QuantizedLinear.create(device, weight, { bias, accumulate: true });
    const group = QuantizedLinear.group([adding, plain]);
    const xBuffer = createBufferWithData(device, 'group x', x.data, STORAGE_USAGE);
    const ys = [0, 1].map((i) => createBufferWithData(device, `group y ${i}`, old, STORAGE_USAGE));
    try {
      const yPlain = await runOnto(device, plain, x, old);
      const encoder = device.createCommandEncoder({ label: 'group' });
      group.record(encoder, xBuffer, ys, { tokens });
      device.queue.submit([encoder.finish()]);
      const [added, written] = await Promise.all(ys.map(async (y) => new Float32Array(await readBufferExclusive(device, y, y.size))));
      expectAccumulated(added as Float32Array, yPlain, old, 'f32', 'the accumulating member');
      expect(Array.from(written as Float32Array)).toEqual(Array.from(yPlain));
    } finally {
      group.destroy();
      plain.destroy();
      adding.destroy();
      xBuffer.destroy();
      for (const y of ys) y.destroy();
      weight.destroy();
    }
  });

  it('a NaN in x past keptLength (unrotated, time-shared W) makes its token NaN on an accumulated y too; the others and their halves as without it', async () => {
    const { device } = suite.context;
    const odd = 41; // f16: token 1's first half shares a word with token 0's last
    const oddBias = Float32Array.from({ length: odd }, (_, j) => 0.125 * (j - odd / 2));
    const weight = uploadLatticeMatrix(device, quantize(gaussianMatrix(n, odd, 91), { scheme: 'd3-q6-deterministic', seed: 4, rotate: false, keepFraction: 0.5 }) as LatticeQuantizedMatrix);
    const clean = gaussianMatrix(n, tokens, 92);
    const poisoned = { ...clean, data: Float32Array.from(clean.data) };
    poisoned.data[2 * n - 1] = Number.NaN; // token 1's last row: past keptLength (n / 2)
    try {
      for (const activations of ['f32', 'f16'] as const) {
        const old = heldAs(oldValues(odd * tokens, 93), activations);
        const plain = QuantizedLinear.create(device, weight, { bias: oddBias, activations });
        const adding = QuantizedLinear.create(device, weight, { bias: oddBias, activations, accumulate: true });
        try {
          const yPlain = await runOnto(device, plain, clean, old);
          const got = await runOnto(device, adding, poisoned, old);
          expect(Array.from(got.subarray(odd, 2 * odd)).every(Number.isNaN), `${activations}: token 1 all NaN`).toBe(true);
          for (const r of [0, 2]) {
            const part = (values: Float32Array): Float32Array => values.subarray(r * odd, (r + 1) * odd);
            expectAccumulated(part(got), part(yPlain), part(old), activations, `${activations}, token ${r}`);
          }
        } finally {
          plain.destroy();
          adding.destroy();
        }
      }
    } finally {
      weight.destroy();
    }
  });

  it('refuses an accumulate that is not a boolean', () => {
    const { device } = suite.context;
    const weight = pathWeight(device, 'd3-q6-deterministic (deterministic GEMV)');
    try {
      // @ts-expect-error a string is not a boolean
      expect(() => QuantizedLinear.create(device, weight, { accumulate: 'yes' })).toThrow(/accumulate must be true or false, got "yes"/);
    } finally {
      weight.destroy();
    }
  });
});

// WebGPU's default limits allow 8 storage buffers per stage: the universal GEMV's split form, whose
// product leaves T in Y for its finishing pass (f32 output), must stage T when Y's old values count.
describe.skipIf(noGpu !== undefined)("QuantizedLinear accumulate on a device with WebGPU's default limits (the universal GEMV's split form)", () => {
  let device: GPUDevice;
  beforeAll(async () => {
    device = await defaultLimitsDevice();
  });
  afterAll(() => {
    device.destroy();
  });

  for (const name of ['d3-q6 (universal GEMV)', 'd3-q6 centred (Σx)', 'e8-q16 (universal GEMV)'] as const) {
    for (const activations of ['f32', 'f16'] as const) {
      it(`${name}, ${activations} activations, bias`, async () => {
        expect(fusedFinishSupported(device)).toBe(false);
        const weight = pathWeight(device, name);
        try {
          await expectAccumulatingLayer(device, weight, { bias, activations }, 61, name);
        } finally {
          weight.destroy();
        }
      });
    }
  }
});

/*
 * The low-level dispatches a user may call with `accumulate` themselves, with Y at an offset in a
 * larger buffer (f32 at a word past the binding alignment; f16 at an odd half, so that Y's first and
 * last halves share words with values outside Y) and a binding cap that splits W's columns and the
 * right-hand sides across dispatches (each writes its part of Y; with f16 and an odd column count,
 * ranges of right-hand sides meet inside words). Twin: the same call without `accumulate` on a buffer
 * of the same bytes. Outside Y every byte must stay as it was: a neighbour's half is neither written
 * nor added to.
 */

const lowN = 64;
const lowCols = 37;
const lowRhs = 5;
const lowW = gaussianMatrix(lowN, lowCols, 71);
const lowX = gaussianMatrix(lowN, lowRhs, 72);
const lowBiasOffset = 12;
const lowBias = Float32Array.from({ length: lowBiasOffset / 4 + lowCols }, (_, k) => 0.25 * (k % 7) - 0.75);
/** Y's byte offset per format: f32 one word past a 256-byte boundary, f16 one half past that. */
const lowYOffset = { f32: 1028, f16: 1030 } as const;

/** The output arguments a recorded call gets (y, its window and format, a bias at an offset; `accumulate` or not). */
interface LowOutput {
  readonly y: GPUBuffer;
  readonly yOffset: number;
  readonly outputFormat: ActivationFormat;
  readonly bias: GPUBuffer;
  readonly biasOffset: number;
  readonly biasFormat?: BiasFormat;
  readonly accumulate?: boolean;
  /** x in place of the case's own (x = 0: Y = b exactly). */
  readonly x?: GPUBuffer;
}

/** A low-level call of `rhs` right-hand sides into `output`, with its own x and weight. */
interface LowCase {
  readonly rhs: number;
  /** Outputs per right-hand side. */
  readonly cols: number;
  readonly record: (device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, output: LowOutput) => void;
  /** Bind-group labels of which the call must create one at least (a range of columns or right-hand sides not starting at 0: a split). */
  readonly splits: readonly RegExp[];
}

/** Runs `record` on a y buffer holding `initial` and returns its bytes afterwards, with the labels of the bind groups it created. */
async function runLow(device: GPUDevice, initial: Uint8Array, lowCase: LowCase, output: Omit<LowOutput, 'y'>): Promise<{ bytes: Uint8Array; labels: string[] }> {
  const y = createBufferWithData(device, 'accumulate dispatch y', initial, STORAGE_USAGE);
  const scratch = new GpuScratch(device);
  const spy = vi.spyOn(device, 'createBindGroup');
  try {
    const bytes = await withValidation(device, 'accumulate dispatch', async () => {
      const encoder = device.createCommandEncoder({ label: 'accumulate dispatch' });
      lowCase.record(device, encoder, scratch, { ...output, y });
      device.queue.submit([encoder.finish()]);
      return readBuffer(device, y, initial.byteLength);
    });
    return { bytes: new Uint8Array(bytes), labels: spy.mock.calls.map(([descriptor]) => descriptor.label ?? '') };
  } finally {
    spy.mockRestore();
    scratch.destroy();
    y.destroy();
  }
}

/** The call with and without `accumulate` on Y at `lowYOffset[format]`, sentinels around it: see above. */
async function expectAccumulatingDispatch(device: GPUDevice, lowCase: LowCase, format: ActivationFormat, seed: number, what: string): Promise<void> {
  const count = lowCase.cols * lowCase.rhs;
  const yOffset = lowYOffset[format];
  const end = yOffset + (format === 'f16' ? 2 : 4) * count;
  const old = heldAs(oldValues(count, seed), format);
  // Sentinels: distinct finite f16 values (every half), then Y's old values over Y.
  const initial = new Uint8Array(4 * Math.ceil((end + 8) / 4));
  const halves = new Uint16Array(initial.buffer);
  for (let k = 0; k < halves.length; k++) halves[k] = 0x4000 | (k & 0x3ff);
  const oldBytes = encoded(old, format);
  initial.set(new Uint8Array(oldBytes.buffer, oldBytes.byteOffset, oldBytes.byteLength), yOffset);
  const bias = createBufferWithData(device, 'accumulate dispatch bias', lowBias, STORAGE_USAGE);
  try {
    const output = { yOffset, outputFormat: format, bias, biasOffset: lowBiasOffset };
    const plain = await runLow(device, initial, lowCase, output);
    const added = await runLow(device, initial, lowCase, { ...output, accumulate: true });
    for (const split of lowCase.splits) expect(added.labels.some((label) => split.test(label)), `${what}: a dispatch ${split.source} (${added.labels.join('; ')})`).toBe(true);
    for (const [name, run] of [['plain', plain], ['accumulating', added]] as const) {
      expect(Array.from(run.bytes.subarray(0, yOffset)), `${what}: the ${name} call, bytes before Y`).toEqual(Array.from(initial.subarray(0, yOffset)));
      expect(Array.from(run.bytes.subarray(end)), `${what}: the ${name} call, bytes past Y`).toEqual(Array.from(initial.subarray(end)));
    }
    const yPlain = decoded(plain.bytes.slice(yOffset, end).buffer, format);
    expect(yPlain.every(Number.isFinite), `${what}: the plain call writes over y's old values`).toBe(true);
    expectAccumulated(decoded(added.bytes.slice(yOffset, end).buffer, format), yPlain, old, format, what);
  } finally {
    bias.destroy();
  }
}

describe.skipIf(noGpu !== undefined)('accumulate through the low-level dispatches: Y at an offset, split across dispatches', () => {
  const suite = contextOnTestDevice();
  const owned: { destroy(): void }[] = [];
  afterAll(() => {
    for (const resource of owned) resource.destroy();
  });
  /** x (lowN × rhs f32) on the device, destroyed after the block. */
  function xOnDevice(device: GPUDevice, rhs: number): GPUBuffer {
    const buffer = createBufferWithData(device, 'accumulate dispatch x', lowX.data.subarray(0, lowN * rhs), STORAGE_USAGE);
    owned.push(buffer);
    return buffer;
  }
  function universal(device: GPUDevice, center: boolean): GpuUniversalQuantizedMatrix {
    const w = uploadLatticeMatrix(device, quantize(lowW, { scheme: 'd3-q6', seed: 4, nonce: 9, center }) as UniversalLatticeMatrix);
    owned.push(w);
    return w;
  }
  function deterministic(device: GPUDevice): GpuLatticeQuantizedMatrix {
    const w = uploadLatticeMatrix(device, quantize(lowW, { scheme: 'd3-q6-deterministic', seed: 4 }) as DeterministicLatticeMatrix);
    owned.push(w);
    return w;
  }
  function weightOnlyMatrix(device: GPUDevice): ReturnType<typeof uploadWeightOnly> {
    const w = uploadWeightOnly(device, quantizeWeights(lowW, null, { method: 'rtn', rate: 4, rotate: true, seed: 3 }), { layout: 'auto' });
    owned.push(w);
    return w;
  }

  // Binding caps that split W's columns and the right-hand sides (the labels say so: `splits`).
  const universalCase = (options: { readonly fusedFinish: boolean; readonly center?: boolean; readonly subgroups?: boolean; readonly subgroupTestMode?: 'fallback' }): LowCase => ({
    rhs: lowRhs,
    cols: lowCols,
    record: (device, encoder, scratch, output) => {
      const { center = false, ...rest } = options;
      dispatchUniversalGemv(device, encoder, scratch, { w: universal(device, center), x: xOnDevice(device, lowRhs), rhs: lowRhs, maxBindingBytes: 764, ...rest, ...output });
    },
    splits: [/W columns [1-9]\d*…/, /right-hand sides [1-9]\d*…/],
  });
  const cases: Record<string, LowCase> = {
    'dispatchUniversalGemv, fusedFinish: true': universalCase({ fusedFinish: true }),
    'dispatchUniversalGemv, fusedFinish: false (T staged)': universalCase({ fusedFinish: false }),
    'dispatchUniversalGemv, fusedFinish: false, centred (Σx in the finishing pass)': universalCase({ fusedFinish: false, center: true }),
    'dispatchUniversalGemv, fusedFinish: true, no subgroups': universalCase({ fusedFinish: true, subgroups: false }),
    "dispatchUniversalGemv, fusedFinish: true, subgroupTestMode 'fallback'": universalCase({ fusedFinish: true, subgroupTestMode: 'fallback' }),
    dispatchLatticeGemv: {
      rhs: lowRhs,
      cols: lowCols,
      record: (device, encoder, scratch, output) => dispatchLatticeGemv(device, encoder, scratch, { w: deterministic(device), x: xOnDevice(device, lowRhs), rhs: lowRhs, maxBindingBytes: 764, ...output }),
      splits: [/W columns [1-9]\d*…/, /right-hand sides [1-9]\d*…/],
    },
    'dispatchLatticeGemv, one right-hand side': {
      rhs: 1,
      cols: lowCols,
      record: (device, encoder, scratch, output) => dispatchLatticeGemv(device, encoder, scratch, { w: deterministic(device), x: xOnDevice(device, 1), maxBindingBytes: 764, ...output }),
      splits: [/W columns [1-9]\d*…/],
    },
    'WeightOnlyGpuMatrix.dispatch (the weight-only GEMV)': {
      rhs: lowRhs,
      cols: lowCols,
      record: (device, encoder, scratch, output) => weightOnlyMatrix(device).dispatch(encoder, scratch, { x: xOnDevice(device, lowRhs), vectors: lowRhs, maxBindingBytes: 764, ...output }),
      splits: [/outputs [1-9]\d*…/, /vectors [1-9]\d*…/],
    },
  };

  for (const [name, lowCase] of Object.entries(cases)) {
    it(`${name}: f32 Y at a word past a binding boundary, f16 Y at an odd half; the call's own twin plus y's old values, bytes around Y kept`, async () => {
      const { device } = suite.context;
      for (const format of ['f32', 'f16'] as const) await expectAccumulatingDispatch(device, lowCase, format, 81, `${name}, ${format}`);
    });
    it(`${name}: an f16 and a bf16 bias at an odd half give the bytes of the same values as an f32 bias`, async () => {
      const { device } = suite.context;
      for (const biasFormat of ['f16', 'bf16'] as const) await expectBiasFormatDispatch(device, lowCase, biasFormat, `${name}, ${biasFormat} bias`);
    });
    it(`${name}: accumulating with an f16 bias that ends inside its buffer's last word, as with an f32 bias`, async () => {
      const { device } = suite.context;
      await expectAccumulatingHalfBias(device, lowCase, `${name}, f16 bias, accumulate`);
    });
  }

  it('refuses a 16-bit bias whose last word its buffer does not hold whole, naming the size it needs', () => {
    const { device } = suite.context;
    const scratch = new GpuScratch(device);
    // 37 halves end at byte 74, inside the word of bytes 72–75: storage bindings are whole words.
    const short = device.createBuffer({ label: 'bias ending mid-word', size: 2 * lowCols, usage: STORAGE_USAGE });
    const y = device.createBuffer({ label: 'y', size: 4 * lowCols, usage: STORAGE_USAGE });
    try {
      const record = (biasFormat: BiasFormat): void => {
        const encoder = device.createCommandEncoder({ label: 'refused' });
        dispatchLatticeGemv(device, encoder, scratch, { w: deterministic(device), x: xOnDevice(device, 1), y, bias: short, biasFormat });
      };
      for (const biasFormat of ['f16', 'bf16'] as const) {
        expect(() => record(biasFormat), biasFormat).toThrow(/gemv: bias: 74 bytes at offset 0 end inside a 4-byte word that its buffer \(74 bytes\) does not hold whole; make the buffer 76 bytes/);
      }
      expect(() => record('f32')).toThrow(/gemv: bias needs 148 bytes at offset 0, but its buffer has 74/);
    } finally {
      short.destroy();
      y.destroy();
      scratch.destroy();
    }
  });

  // x = 0 makes every kernel's product exactly 0, so Y = b bit for bit: a twin for the bias entries each
  // dispatch of a split call reads (its first W column's, `bias_first`). The comparisons above (a call
  // against the same call in another form) read them alike, right or wrong.
  for (const [name, lowCase] of Object.entries(cases)) {
    it(`${name}: x = 0 gives Y = b exactly in every range of columns and right-hand sides (an f32 bias, and a bf16 one at an odd half)`, async () => {
      const { device } = suite.context;
      await expectBiasOnZeroX(device, lowCase, name);
    });
  }

  it('refuses a bias that is Y itself and a bias format it does not have, naming them', () => {
    const { device } = suite.context;
    const scratch = new GpuScratch(device);
    const y = device.createBuffer({ label: 'y and bias', size: 4 * lowCols, usage: STORAGE_USAGE });
    try {
      const encoder = device.createCommandEncoder({ label: 'refused' });
      const record = (output: { readonly bias?: GPUBuffer; readonly biasFormat?: BiasFormat }): void => {
        dispatchLatticeGemv(device, encoder, scratch, { w: deterministic(device), x: xOnDevice(device, 1), y, ...output });
      };
      // Unchecked, one buffer bound for reading and for writing is WebGPU's validation error, at submit.
      expect(() => record({ bias: y })).toThrow(/gemv: bias and y must be different buffers/);
      expect(() => record({ biasFormat: 'fp16' as BiasFormat })).toThrow(/gemv: biasFormat must be 'f32', 'f16' or 'bf16', got "fp16"/);
    } finally {
      y.destroy();
      scratch.destroy();
    }
  });
});

/**
 * The call on x = 0 (lowN × rhs zeros) with a bias of distinct values (j − 20)/8 (lowBias repeats every 7
 * columns, as a split may), as f32 at byte 12 and as bf16 halves at byte 2 (an odd half), NaN around
 * each, f32 Y: every output must be its column's bias value (exact in bf16), whichever dispatch of the
 * split call wrote it.
 */
async function expectBiasOnZeroX(device: GPUDevice, lowCase: LowCase, what: string): Promise<void> {
  const { cols, rhs } = lowCase;
  const values = Float32Array.from({ length: cols }, (_, j) => (j - 20) / 8);
  const words = new Float32Array(3 + cols + 1).fill(Number.NaN);
  words.set(values, 3);
  const halves = new Uint16Array(2 * Math.ceil((1 + cols + 1) / 2)).fill(0x7fc0);
  values.forEach((v, j) => (halves[1 + j] = bitsIn('bf16', v)));
  const zero = createBufferWithData(device, 'bias on x = 0: x', new Float32Array(lowN * rhs), STORAGE_USAGE);
  const wide = createBufferWithData(device, 'bias on x = 0: f32 bias', words, STORAGE_USAGE);
  const narrow = createBufferWithData(device, 'bias on x = 0: bf16 bias', halves, STORAGE_USAGE);
  const yOffset = lowYOffset.f32;
  const initial = new Uint8Array(yOffset + 4 * cols * rhs + 8);
  // + 0: a product of −0 plus a bias of 0 is +0.
  const expected = Array.from({ length: cols * rhs }, (_, k) => (values[k % cols] as number) + 0);
  try {
    for (const bias of [{ bias: wide, biasOffset: 12 }, { bias: narrow, biasOffset: 2, biasFormat: 'bf16' as const }]) {
      const run = await runLow(device, initial, lowCase, { x: zero, yOffset, outputFormat: 'f32', ...bias });
      const y = new Float32Array(run.bytes.slice(yOffset, yOffset + 4 * cols * rhs).buffer);
      expect(Array.from(y, (v) => v + 0), `${what}, ${bias.biasFormat ?? 'f32'} bias`).toEqual(expected);
    }
  } finally {
    zero.destroy();
    wide.destroy();
    narrow.destroy();
  }
}

/**
 * `accumulate` with an f16 bias of lowCols (odd) halves from byte 0, so that it ends inside its
 * buffer's last word (the other half a NaN: read, it would show), against the same values as an f32
 * bias: Y's bytes must be equal, f32 and f16 Y (the kernel widens the half, then adds as for an f32
 * bias; the old value is added after it either way).
 */
async function expectAccumulatingHalfBias(device: GPUDevice, lowCase: LowCase, what: string): Promise<void> {
  const cols = lowCase.cols;
  expect(cols % 2, 'an odd count of bias values').toBe(1);
  const halves = new Uint16Array(cols + 1).fill(0x7e00);
  for (let j = 0; j < cols; j++) halves[j] = bitsIn('f16', lowBias[lowBiasOffset / 4 + j]!);
  const wide = createBufferWithData(device, 'accumulate f32 bias', lowBias, STORAGE_USAGE);
  const narrow = createBufferWithData(device, 'accumulate f16 bias', halves, STORAGE_USAGE);
  try {
    for (const format of ['f32', 'f16'] as const) {
      const yOffset = lowYOffset[format];
      const old = encoded(heldAs(oldValues(cols * lowCase.rhs, 83), format), format);
      const initial = new Uint8Array(4 * Math.ceil((yOffset + old.byteLength + 8) / 4));
      initial.set(new Uint8Array(old.buffer, old.byteOffset, old.byteLength), yOffset);
      const common = { yOffset, outputFormat: format, accumulate: true };
      const f32Bias = await runLow(device, initial, lowCase, { ...common, bias: wide, biasOffset: lowBiasOffset });
      const halfBias = await runLow(device, initial, lowCase, { ...common, bias: narrow, biasOffset: 0, biasFormat: 'f16' });
      expect(Array.from(halfBias.bytes), `${what}, ${format} Y`).toEqual(Array.from(f32Bias.bytes));
    }
  } finally {
    wide.destroy();
    narrow.destroy();
  }
}

/** f16 or bf16 bits of v, which must be exact in the format. */
function bitsIn(format: 'f16' | 'bf16', v: number): number {
  const bits = format === 'f16' ? float16Bits(v) : bf16Bits(v);
  expect(widened(Uint16Array.of(bits), format)[0], `${v} is exact in ${format}`).toBe(Math.fround(v));
  return bits;
}

/**
 * The call with lowBias as f32 (at byte 12) against the same values as 16-bit halves at byte 2 (an odd
 * half: the bias's first half shares a word with a value outside it), in a buffer that ends with the
 * bias's last word: Y's bytes must be equal (f32 Y, Y at an offset, split across dispatches).
 */
async function expectBiasFormatDispatch(device: GPUDevice, lowCase: LowCase, format: 'f16' | 'bf16', what: string): Promise<void> {
  const cols = lowCase.cols;
  const halves = new Uint16Array(2 * Math.ceil((1 + cols) / 2));
  halves.fill(0x7e00); // NaN in f16 (a huge value in bf16) around the bias: read, it would show
  for (let j = 0; j < cols; j++) halves[1 + j] = bitsIn(format, lowBias[lowBiasOffset / 4 + j]!);
  const wide = createBufferWithData(device, 'bias format dispatch f32 bias', lowBias, STORAGE_USAGE);
  const narrow = createBufferWithData(device, `bias format dispatch ${format} bias`, halves, STORAGE_USAGE);
  const initial = new Uint8Array(4 * cols * lowCase.rhs + lowYOffset.f32 + 8);
  try {
    const f32Bias = await runLow(device, initial, lowCase, { yOffset: lowYOffset.f32, outputFormat: 'f32', bias: wide, biasOffset: lowBiasOffset });
    const halfBias = await runLow(device, initial, lowCase, { yOffset: lowYOffset.f32, outputFormat: 'f32', bias: narrow, biasOffset: 2, biasFormat: format });
    expect(Array.from(halfBias.bytes), what).toEqual(Array.from(f32Bias.bytes));
  } finally {
    wide.destroy();
    narrow.destroy();
  }
}

/*
 * QuantizedLinear's `biasFormat` on every path: a Uint16Array of f16 or bf16 bits gives, bit for bit,
 * the outputs of the Float32Array of the same values widened (exact: the kernel widens the half, then
 * adds as for an f32 bias), with f32 and f16 activations. The bits include f16 subnormals, ±0 and the
 * largest finite values (so a flushed subnormal or a wrong shift shows); bf16 takes Gaussian values'
 * top halves, its smallest normal and its largest finite value.
 */
function layerBiasBits(format: 'f16' | 'bf16', seed: number): Uint16Array {
  const values = gaussianMatrix(out, 1, seed).data;
  const bits = Uint16Array.from(values, (v) => (format === 'f16' ? float16Bits(v) : bf16Bits(v)));
  const specials = format === 'f16' ? [0x0001, 0x03ff, 0x8000, 0x7bff, 0xfbff, 0x8001, 0x0400] : [0x0080, 0x8000, 0x7f7f, 0xff7f, 0x3f80];
  specials.forEach((special, k) => (bits[3 * k + 1] = special));
  return bits;
}

describe.skipIf(noGpu !== undefined)('QuantizedLinear biasFormat: f16 and bf16 biases read as they are', () => {
  const suite = contextOnTestDevice();

  /** y of `layer` on x (activations in the layer's format), as bytes. */
  async function outputBytes(device: GPUDevice, layer: QuantizedLinear, x: Matrix): Promise<Uint8Array> {
    const format = layer.activations;
    const xBuffer = createBufferWithData(device, 'bias format x', encoded(x.data, format), STORAGE_USAGE);
    const bytes = (format === 'f16' ? 2 : 4) * out * x.cols;
    const yBuffer = createBufferWithData(device, 'bias format y', new Uint8Array(bytes), STORAGE_USAGE);
    try {
      const encoder = device.createCommandEncoder({ label: 'bias format' });
      layer.record(encoder, xBuffer, yBuffer, { tokens: x.cols });
      device.queue.submit([encoder.finish()]);
      return new Uint8Array(await readBufferExclusive(device, yBuffer, bytes));
    } finally {
      xBuffer.destroy();
      yBuffer.destroy();
    }
  }

  for (const [name, path] of Object.entries(paths)) {
    it(`${name}: f16 and bf16 bias bits (f32 activations), f16 bits (f16 activations), as a Float32Array of their values`, async () => {
      const { device, features } = suite.context;
      const weight = path.weight(device);
      const x = gaussianMatrix(n, tokens, 91);
      try {
        for (const [biasFormat, activations] of [['f16', 'f32'], ['bf16', 'f32'], ['f16', 'f16']] as const) {
          const bits = layerBiasBits(biasFormat, 92);
          const common = { activations, ...(path.int8 ? { int8Inputs: dotPathFor(features) } : {}) };
          const wide = QuantizedLinear.create(device, weight, { ...common, bias: widened(bits, biasFormat) });
          const narrow = QuantizedLinear.create(device, weight, { ...common, bias: bits, biasFormat });
          try {
            expect(Array.from(await outputBytes(device, narrow, x)), `${biasFormat} bias, ${activations} activations`).toEqual(Array.from(await outputBytes(device, wide, x)));
          } finally {
            wide.destroy();
            narrow.destroy();
          }
        }
      } finally {
        weight.destroy();
      }
    });
  }

  it('reads f16 biases side by side in one buffer as slices (in place, 4-byte offsets)', async () => {
    const { device } = suite.context;
    const weight = pathWeight(device, 'd3-q6-deterministic (deterministic GEMV)');
    const first = layerBiasBits('f16', 93);
    const second = layerBiasBits('f16', 94);
    const both = new Uint16Array(2 * out + 2);
    both.set(first, 0);
    both.set(second, out + 2); // byte 84: a 4-byte offset past a 2-half gap
    const buffer = createBufferWithData(device, 'two f16 biases', both, STORAGE_USAGE);
    const x = gaussianMatrix(n, tokens, 95);
    const layers: QuantizedLinear[] = [];
    try {
      for (const [bits, offset] of [[first, 0], [second, 2 * (out + 2)]] as const) {
        const sliced = QuantizedLinear.create(device, weight, { bias: { buffer, offset }, biasFormat: 'f16' });
        const uploaded = QuantizedLinear.create(device, weight, { bias: widened(bits, 'f16') });
        layers.push(sliced, uploaded);
        expect(Array.from(await outputBytes(device, sliced, x))).toEqual(Array.from(await outputBytes(device, uploaded, x)));
      }
    } finally {
      for (const layer of layers) layer.destroy();
      buffer.destroy();
      weight.destroy();
    }
  });

  it('a group of an f16 Uint16Array bias, a bf16 slice at an odd half (with its size) and an f32 bias: each member as the layer with the widened Float32Array', async () => {
    const { device } = suite.context;
    const weight = pathWeight(device, 'd3-q6-deterministic (deterministic GEMV)');
    const f16Bias = layerBiasBits('f16', 97);
    const bf16Bias = layerBiasBits('bf16', 98);
    // The bf16 bias from byte 2 (an odd half), between NaN halves in f16 and bf16 (read, they would show).
    const held = new Uint16Array(out + 2).fill(0x7fc0);
    held.set(bf16Bias, 1);
    const buffer = createBufferWithData(device, 'bf16 bias at an odd half', held, STORAGE_USAGE);
    const f32Values = Float32Array.from({ length: out }, (_, j) => 0.375 * (j % 5) - 0.5);
    const x = gaussianMatrix(n, tokens, 99);
    const members = [
      QuantizedLinear.create(device, weight, { bias: f16Bias, biasFormat: 'f16' }),
      QuantizedLinear.create(device, weight, { bias: { buffer, offset: 2, size: 2 * out }, biasFormat: 'bf16' }),
      QuantizedLinear.create(device, weight, { bias: f32Values }),
    ];
    const twins = [widened(f16Bias, 'f16'), widened(bf16Bias, 'bf16'), f32Values].map((values) => QuantizedLinear.create(device, weight, { bias: values }));
    const group = QuantizedLinear.group(members);
    const xBuffer = createBufferWithData(device, 'group x', x.data, STORAGE_USAGE);
    const ys = members.map((_, i) => createBufferWithData(device, `group y ${i}`, new Float32Array(out * tokens), STORAGE_USAGE));
    try {
      const encoder = device.createCommandEncoder({ label: 'mixed bias formats' });
      group.record(encoder, xBuffer, ys, { tokens });
      device.queue.submit([encoder.finish()]);
      for (const [i, y] of ys.entries()) {
        const twin = twins[i] as QuantizedLinear;
        expect(Array.from(new Uint8Array(await readBufferExclusive(device, y, y.size))), `member ${i}`).toEqual(Array.from(await outputBytes(device, twin, x)));
      }
    } finally {
      group.destroy();
      for (const layer of [...members, ...twins]) layer.destroy();
      xBuffer.destroy();
      for (const y of ys) y.destroy();
      buffer.destroy();
      weight.destroy();
    }
  });

  it('refuses a 16-bit bias slice whose size is too small for outFeatures halves, or whose offset is not a multiple of 2 (f32: of 4)', () => {
    const { device } = suite.context;
    const weight = pathWeight(device, 'd3-q6-deterministic (deterministic GEMV)');
    const buffer = createBufferWithData(device, 'bias slices', new Float32Array(2 * out), STORAGE_USAGE);
    try {
      QuantizedLinear.create(device, weight, { bias: { buffer, offset: 2, size: 2 * out }, biasFormat: 'f16' }).destroy();
      expect(() => QuantizedLinear.create(device, weight, { bias: { buffer, offset: 2, size: 2 * out - 2 }, biasFormat: 'bf16' })).toThrow(/bias needs 80 bytes, but its size is 78/);
      expect(() => QuantizedLinear.create(device, weight, { bias: { buffer, offset: 1 }, biasFormat: 'f16' })).toThrow(/bias offset must be a non-negative multiple of 2, got 1/);
      expect(() => QuantizedLinear.create(device, weight, { bias: { buffer, offset: 2 } })).toThrow(/bias offset must be a non-negative multiple of 4, got 2/);
    } finally {
      buffer.destroy();
      weight.destroy();
    }
  });

  it('refuses what does not say its format, a non-finite 16-bit entry, an unknown format and a slice too small', () => {
    const { device } = suite.context;
    const weight = pathWeight(device, 'd3-q6-deterministic (deterministic GEMV)');
    const buffer = createBufferWithData(device, 'small bias', new Uint16Array(out), STORAGE_USAGE);
    try {
      const bits = layerBiasBits('f16', 96);
      // @ts-expect-error a Uint16Array bias without its format does not compile (LinearOptionsFor); JS callers are refused at run time
      expect(() => QuantizedLinear.create(device, weight, { bias: bits })).toThrow(/a Uint16Array bias holds f16 or bf16 bits: say which with biasFormat: 'f16' or 'bf16'/);
      // @ts-expect-error a Float32Array bias is f32 (LinearOptionsFor)
      expect(() => QuantizedLinear.create(device, weight, { bias: new Float32Array(out), biasFormat: 'bf16' })).toThrow(/a Float32Array bias is f32, but biasFormat is "bf16"/);
      const infinite = Uint16Array.from(bits);
      infinite[7] = 0x7c00;
      expect(() => QuantizedLinear.create(device, weight, { bias: infinite, biasFormat: 'f16' })).toThrow(/bias has a non-finite entry \(f16 bits 0x7c00 at 7\)/);
      const bf16Nan = Uint16Array.from(bits, () => 0x3f80);
      bf16Nan[3] = 0x7fc0;
      expect(() => QuantizedLinear.create(device, weight, { bias: bf16Nan, biasFormat: 'bf16' })).toThrow(/bias has a non-finite entry \(bf16 bits 0x7fc0 at 3\)/);
      // ±Infinity (all exponent bits, no fraction) is refused as a NaN is, as the first entry too.
      const bf16Infinite = Uint16Array.from(bits, () => 0x3f80);
      bf16Infinite[0] = 0xff80;
      expect(() => QuantizedLinear.create(device, weight, { bias: bf16Infinite, biasFormat: 'bf16' })).toThrow(/bias has a non-finite entry \(bf16 bits 0xff80 at 0\)/);
      // @ts-expect-error not a format
      expect(() => QuantizedLinear.create(device, weight, { bias: bits, biasFormat: 'fp16' })).toThrow(/biasFormat must be 'f32', 'f16' or 'bf16', got "fp16"/);
      // 40 f16 values fit in 80 bytes; as f32 they need 160.
      QuantizedLinear.create(device, weight, { bias: buffer, biasFormat: 'f16' }).destroy();
      expect(() => QuantizedLinear.create(device, weight, { bias: buffer })).toThrow(/bias needs 160 bytes at offset 0, but its buffer has 80/);
      expect(() => QuantizedLinear.create(device, weight, { bias: { buffer, offset: 4 }, biasFormat: 'f16' })).toThrow(/bias needs 80 bytes at offset 4, but its buffer has 80/);
    } finally {
      buffer.destroy();
      weight.destroy();
    }
  });
});
