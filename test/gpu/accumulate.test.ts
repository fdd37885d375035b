import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBufferWithData, readBufferExclusive, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { nodeGpu } from '../../src/gpu/nodeGpu.js';
import { uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import { dotPathFor } from '../../src/gpu/kernels/e8Matmul.js';
import { fusedFinishSupported } from '../../src/gpu/kernels/universalGemv.js';
import { uploadWeightOnly } from '../../src/gpu/kernels/weightOnlyGemv.js';
import { QuantizedLinear, type LinearWeight, type QuantizedLinearOptions } from '../../src/gpu/quantizedLinear.js';
import type { ActivationFormat } from '../../src/gpu/kernels/activationIo.js';
import type { Matrix } from '../../src/matrix.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { LatticeQuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { float16Bits, fromFloat16Bits } from '../../src/scalar/floatFormats.js';
import { quantizeWeights } from '../../src/weightonly/quantizeWeights.js';
import { contextOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * QuantizedLinear's `accumulate` (y ← y + W·x + b, in the GEMV kernels' epilogue, `store_output` of
 * shaders/gemv_output.wgsl), on every GEMV path a layer takes. The twin is the same layer without
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
  'd3-q6-deterministic unrotated (non-finite tail)': { weight: lattice('d3-q6-deterministic', { rotate: false }), int8: false },
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

/** The value of f16 bits (NaN for every NaN, which `fromFloat16Bits` refuses). */
function halfValue(bits: number): number {
  return (bits & 0x7fff) > 0x7c00 ? Number.NaN : fromFloat16Bits(bits);
}

/** The values a buffer in the activation format holds. */
function decoded(raw: ArrayBuffer, format: ActivationFormat): Float32Array {
  return format === 'f16' ? Float32Array.from(new Uint16Array(raw), halfValue) : new Float32Array(raw);
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
  return format === 'f16' ? Float32Array.from(old, (v) => halfValue(halfBits(v))) : old;
}

/** The plain and the accumulating layer over `weight` with `options`, the accumulated y against the plain one. */
async function expectAccumulatingLayer(device: GPUDevice, weight: LinearWeight, options: QuantizedLinearOptions, seed: number, what: string): Promise<void> {
  const format = options.activations ?? 'f32';
  const x = gaussianMatrix(n, tokens, seed);
  const old = heldAs(oldValues(out * tokens, seed + 100), format);
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
  }

  it('every record adds once more (two records in one encoder add twice); without a bias too', async () => {
    const { device } = suite.context;
    const weight = paths['d3-q6-deterministic (deterministic GEMV)']?.weight(device);
    if (weight === undefined) throw new Error('missing case');
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
    const weight = paths['e8-q16 (universal GEMV)']?.weight(device);
    if (weight === undefined) throw new Error('missing case');
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

  it('refuses an accumulate that is not a boolean', () => {
    const { device } = suite.context;
    const weight = paths['d3-q6-deterministic (deterministic GEMV)']?.weight(device);
    if (weight === undefined) throw new Error('missing case');
    try {
      // @ts-expect-error a string is not a boolean
      expect(() => QuantizedLinear.create(device, weight, { accumulate: 'yes' })).toThrow(/accumulate must be a boolean, got "yes"/);
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
    const adapter = await (await nodeGpu()).requestAdapter();
    if (adapter === null) throw new Error('no adapter');
    device = await adapter.requestDevice({ label: 'default-limits device' });
  });
  afterAll(() => {
    device.destroy();
  });

  for (const name of ['d3-q6 (universal GEMV)', 'd3-q6 centred (Σx)', 'e8-q16 (universal GEMV)'] as const) {
    for (const activations of ['f32', 'f16'] as const) {
      it(`${name}, ${activations} activations, bias`, async () => {
        expect(fusedFinishSupported(device)).toBe(false);
        const weight = paths[name]?.weight(device);
        if (weight === undefined) throw new Error('missing case');
        try {
          await expectAccumulatingLayer(device, weight, { bias, activations }, 61, name);
        } finally {
          weight.destroy();
        }
      });
    }
  }
});
