import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { createBuffer, createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { withValidation } from '../../src/gpu/errorScopes.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import {
  dispatchWeightOnlyGemv,
  packWeightOnlyCodes,
  uploadWeightOnly,
  weightOnlyCodeBits,
  weightOnlyGemm,
  weightOnlyGemv,
  weightOnlyRowVec4s,
  type WeightOnlyCodeBits,
  type WeightOnlyGemvOptions,
} from '../../src/gpu/kernels/weightOnlyGemv.js';
import { WeightBasis } from '../../src/weightonly/basis.js';
import { quantizeWeights, WeightOnlyQuantized, type QuantizeWeightsOptions } from '../../src/weightonly/index.js';
import { spreadSpectrumCovariance } from '../../src/weightonly/syntheticCovariance.js';
import { gpuUnavailableReason, testDevice } from './gpuTestDevice.js';

/*
 * The weight-only GEMV against the CPU decode: y_ref = Ŵ·x in float64 with Ŵ = q.decode() (the
 * inverse rotation included), for WaterSIC / GPTQ / RTN matrices with and without rotation and
 * rescalers, every code width, several vectors and split bindings.
 *
 * Tolerance (derived, not tuned), u = 2^−24, w' = q.decodeRotated(), x̃ = Q·x, L = ⌈log2 n⌉:
 *   GPU kernel: K = 23 + (32/b)·⌈R/64⌉ roundings per term (module comment)       K·u·Σ_i |w'_ji x̃_i|
 *   CPU decode: fround(fround(z·s)·t)                                              2·u·Σ_i |w'_ji x̃_i|
 *   Hadamard (GPU forward on x, CPU inverse on Ŵ): L + 1 roundings of each entry,
 *     each bounded by the rotated vector's norm      (L + 1)·u·(‖w'_j‖₁·‖x‖₂ + ‖w'_j‖₂·‖x‖₁)
 *   Haar (both sides float64 rounded to f32 once)    u·(Σ_i |w'_ji x̃_i| + Σ_i |ŵ_ji x_i|)
 * plus 1e−30 for y = 0. For n = 128 at 4 bits this is ≈ 1e−5·‖w'_j‖·‖x‖, while one code off by one
 * moves y_j by s_i·|x̃_i| ≈ 2e−3·‖w'_j‖·‖x‖ (the "one wrong code" test checks that it is caught).
 */

const noGpu = await gpuUnavailableReason();
const U = 2 ** -24;

/** About 4 bits per code for N(0, 1) weights (a fixed step: a rate target would count side information, which dominates at small sizes). */
const STEP = { watersic: 0.05, gptq: 0.25, rtn: 0.25 } as const;

function quantized(n: number, outputs: number, options: Partial<QuantizeWeightsOptions> & Pick<QuantizeWeightsOptions, 'method'>, seed = 1): WeightOnlyQuantized {
  const step = options.step ?? STEP[options.method];
  return quantizeWeights(gaussianMatrix(n, outputs, 100 * n + outputs + seed), spreadSpectrumCovariance(n, 2, seed).sigma, { ...options, step });
}

/** `vectors` columns of n Gaussian entries (column-major). */
function activations(n: number, vectors: number, seed: number): Float32Array {
  return gaussianMatrix(n, vectors, 7919 + seed).data;
}

/** Y = Ŵ·X in float64 from the CPU decode, with the per-entry tolerance of the header. */
function reference(q: WeightOnlyQuantized, x: Float32Array, vectors: number, codeBits: WeightOnlyCodeBits): { y: Float64Array; tolerance: Float64Array } {
  const { n, outputs } = q;
  const wHat = q.decode().data;
  const wRot = q.decodeRotated().data;
  const rotated = new WeightBasis(n, q.rotation, q.seed).rotateWeights({ rows: n, cols: vectors, data: x });
  const chain = (32 / codeBits) * Math.ceil(weightOnlyRowVec4s(n, codeBits) / 64);
  const kernelRoundings = 23 + chain + 2;
  const levels = Math.ceil(Math.log2(n));
  const y = new Float64Array(outputs * vectors);
  const tolerance = new Float64Array(outputs * vectors);
  for (let v = 0; v < vectors; v++) {
    let xNorm1 = 0;
    let xNorm2 = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[v * n + i] as number;
      xNorm1 += Math.abs(xi);
      xNorm2 += xi * xi;
    }
    xNorm2 = Math.sqrt(xNorm2);
    for (let j = 0; j < outputs; j++) {
      let sum = 0;
      let rotatedTerms = 0;
      let originalTerms = 0;
      let wNorm1 = 0;
      let wNorm2 = 0;
      for (let i = 0; i < n; i++) {
        const xi = x[v * n + i] as number;
        const w = wHat[j * n + i] as number;
        const wr = wRot[j * n + i] as number;
        sum += w * xi;
        originalTerms += Math.abs(w * xi);
        rotatedTerms += Math.abs(wr * (rotated[v * n + i] as number));
        wNorm1 += Math.abs(wr);
        wNorm2 += wr * wr;
      }
      wNorm2 = Math.sqrt(wNorm2);
      let bound = kernelRoundings * rotatedTerms;
      if (q.rotation === 'hadamard') bound += (levels + 1) * (wNorm1 * xNorm2 + wNorm2 * xNorm1);
      if (q.rotation === 'haar') bound += rotatedTerms + originalTerms;
      y[v * outputs + j] = sum;
      tolerance[v * outputs + j] = U * bound + 1e-30;
    }
  }
  return { y, tolerance };
}

/** Entries outside the tolerance, as messages (empty when all agree). */
function mismatches(got: Float32Array, expected: { y: Float64Array; tolerance: Float64Array }, outputs: number, limit = 5): string[] {
  const out: string[] = [];
  expect(got.length).toBe(expected.y.length);
  for (let k = 0; k < got.length && out.length < limit; k++) {
    const g = got[k] as number;
    const e = expected.y[k] as number;
    const tol = expected.tolerance[k] as number;
    if (!(Math.abs(g - e) <= tol)) out.push(`output ${k % outputs}, vector ${Math.floor(k / outputs)}: got ${g}, expected ${e} ± ${tol}`);
  }
  return out;
}

/** The largest |code| in bits of two's complement, computed directly from the values. */
function widthOf(q: WeightOnlyQuantized): number {
  const largest = q.codes.reduce((m, z) => Math.max(m, z < 0 ? -z - 1 : z), 0);
  return largest < 2 ** 7 ? 8 : largest < 2 ** 15 ? 16 : 32;
}

describe('code packing (CPU)', () => {
  it('int8: four codes per word, code i at bits 8·(i % 4), two\'s complement', () => {
    const words = packWeightOnlyCodes(new Int32Array([1, -1, 127, -128, 5]), 5, 1, 8);
    expect(words.length).toBe(4); // one vec4 per row
    expect(Array.from(words)).toEqual([0x807fff01, 0x00000005, 0, 0]);
  });

  it('int16: two codes per word; int32: the code itself; rows start at whole vec4', () => {
    expect(Array.from(packWeightOnlyCodes(new Int32Array([-2, 300, 7, -32768, 32767]), 5, 1, 16))).toEqual([0x012cfffe, 0x80000007, 0x7fff, 0]);
    const codes = new Int32Array([-1, 2 ** 31 - 1, -(2 ** 31), 3, 4, 5]); // 2 rows of n = 3
    expect(Array.from(packWeightOnlyCodes(codes, 3, 2, 32))).toEqual([0xffffffff, 0x7fffffff, 0x80000000, 0, 3, 4, 5, 0]);
  });

  it.each([
    [[0, 127, -128], 8],
    [[128], 16],
    [[-129], 16],
    [[32767, -32768], 16],
    [[32768], 32],
    [[-32769], 32],
  ])('weightOnlyCodeBits(%j) = %i', (codes, bits) => {
    expect(weightOnlyCodeBits(new Int32Array(codes))).toBe(bits);
  });

  it('refuses a width too narrow for the codes', () => {
    expect(() => packWeightOnlyCodes(new Int32Array([200]), 1, 1, 8)).toThrow(LatticeMatmulError);
  });
});

describe.skipIf(noGpu !== undefined)('weight-only GEMV on the GPU', () => {
  let context: GpuContext;
  let device: GPUDevice;

  beforeAll(async () => {
    context = await testDevice();
    device = context.device;
  });

  afterAll(() => {
    device.destroy();
  });

  async function check(q: WeightOnlyQuantized, vectors: number, options: WeightOnlyGemvOptions = {}): Promise<void> {
    const x = activations(q.n, vectors, q.n + q.outputs + vectors);
    const bits = options.codeBits ?? weightOnlyCodeBits(q.codes);
    const got = vectors === 1 && options.vectorBlock === undefined
      ? await weightOnlyGemv(device, q, x, options)
      : (await weightOnlyGemm(device, q, { rows: q.n, cols: vectors, data: x }, options)).data;
    expect(mismatches(got, reference(q, x, vectors, bits), q.outputs)).toEqual([]);
  }

  const methods = ['watersic', 'gptq', 'rtn'] as const;
  const sizes = [1, 3, 16, 24, 100, 128];
  const outputCounts = [1, 3, 65];
  const cases = sizes.flatMap((n, a) =>
    methods.flatMap((method, b) =>
      [false, true].map((rotate, c) => ({ n, method, rotate, outputs: outputCounts[(a + b + c) % 3] as number, rescale: (a + b + c) % 2 === 1 })),
    ),
  );

  it.each(cases)('$method n = $n, outputs = $outputs, rotate $rotate, rescale $rescale: GPU ≈ Ŵ·x', async ({ n, method, rotate, outputs, rescale }) => {
    const q = quantized(n, outputs, { method, rotate, rescale, seed: 3 });
    expect(q.rotation).toBe(!rotate ? 'none' : [3, 100].includes(n) ? 'haar' : 'hadamard');
    expect(q.rowScales !== null).toBe(rescale);
    await check(q, 1);
  });

  it.each([
    [16, 'gptq', 0.2, 8],
    [128, 'rtn', 1e-3, 16],
    [24, 'rtn', 1e-6, 32],
    [100, 'watersic', 1e-7, 32],
  ] as const)('codes of n = %i, %s at step %f: stored at their serialized width (%i bits)', async (n, method, step, bits) => {
    const q = quantized(n, 65, { method, step, rotate: n !== 100, rescale: method === 'watersic' });
    expect(widthOf(q)).toBe(bits);
    expect(weightOnlyCodeBits(q.codes)).toBe(bits);
    expect(new DataView(q.serialize().buffer).getUint32(16, true)).toBe(bits);
    await check(q, 1);
  });

  it.each([8, 16, 32] as const)('the extreme codes of each width, read back from a crafted serialized matrix (int%i)', async (bits) => {
    const n = 37;
    const outputs = 3;
    const low = -(2 ** (bits - 1));
    const high = 2 ** (bits - 1) - 1;
    const bytes = new Uint8Array(36 + 4 * n + 4 * outputs + (bits / 8) * n * outputs);
    const view = new DataView(bytes.buffer);
    [0x51574d4c, 1, n, outputs, bits, 0, 0, 0, 1].forEach((v, k) => view.setUint32(4 * k, v, true));
    let offset = 36;
    for (let i = 0; i < n; i++, offset += 4) view.setFloat32(offset, 2 ** -(bits - 2) * (1 + i / n), true);
    for (let j = 0; j < outputs; j++, offset += 4) view.setFloat32(offset, 0.5 + j, true);
    for (let k = 0; k < n * outputs; k++, offset += bits / 8) {
      const z = k % 3 === 0 ? low : k % 3 === 1 ? high : (k % 5) - 2;
      if (bits === 8) view.setInt8(offset, z);
      else if (bits === 16) view.setInt16(offset, z, true);
      else view.setInt32(offset, z, true);
    }
    const q = WeightOnlyQuantized.deserialize(bytes);
    expect(q.codes[0]).toBe(low);
    expect(q.codes[1]).toBe(high);
    await check(q, 1);
  });

  it.each([16, 32] as const)('int8 codes stored at %i bits give the same products', async (codeBits) => {
    await check(quantized(100, 65, { method: 'watersic' }), 1, { codeBits });
    await check(quantized(128, 3, { method: 'gptq', rotate: true }), 2, { codeBits });
  });

  it.each([
    [1, 1],
    [3, 4],
    [4, 4],
    [9, 4],
    [5, 1],
  ] as const)('%i vectors with %i per workgroup (Hadamard, Haar and no rotation)', async (vectors, vectorBlock) => {
    await check(quantized(128, 65, { method: 'watersic', rotate: true, rescale: true }), vectors, { vectorBlock });
    await check(quantized(100, 3, { method: 'gptq', rotate: true }), vectors, { vectorBlock });
    await check(quantized(24, 17, { method: 'rtn' }), vectors, { vectorBlock });
  });

  it('work split over several bindings (outputs and vectors) gives the same products', async () => {
    const maxBindingBytes = Math.max(1024, 4 * device.limits.minStorageBufferOffsetAlignment);
    await check(quantized(128, 65, { method: 'watersic', rotate: true }), 5, { maxBindingBytes });
    await check(quantized(100, 65, { method: 'rtn', step: 1e-3 }), 3, { maxBindingBytes });
  });

  it('one wrong code is caught by the tolerance', async () => {
    const q = quantized(128, 3, { method: 'rtn' });
    const x = activations(128, 1, 5);
    let target = 0;
    for (let i = 1; i < 128; i++) {
      if (Math.abs((q.columnScales[i] as number) * (x[i] as number)) > Math.abs((q.columnScales[target] as number) * (x[target] as number))) target = i;
    }
    const codes = Int32Array.from(q.codes);
    codes[128 + target] = (codes[128 + target] as number) + 1; // output 1
    const wrong = new WeightOnlyQuantized({ method: q.method, n: q.n, outputs: q.outputs, codes, columnScales: q.columnScales, rowScales: q.rowScales, rotation: q.rotation, seed: q.seed });
    const got = await weightOnlyGemv(device, wrong, x);
    const expected = reference(q, x, 1, 8);
    expect(mismatches(got, expected, 3).map((m) => m.split(',')[0])).toEqual(['output 1']);
  });

  it('x rotated on the host (inputBasis quantization) gives bit for bit the products of the GPU rotation', async () => {
    const q = quantized(128, 65, { method: 'gptq', rotate: true, rescale: true, seed: 4 });
    expect(q.rotation).toBe('hadamard');
    const vectors = 3;
    const x = activations(128, vectors, 21);
    const matrix = uploadWeightOnly(device, q);
    const rotated = matrix.rotateOnHost(x, vectors);
    const buffers = [
      createBufferWithData(device, 'test x', x, STORAGE_USAGE),
      createBufferWithData(device, 'test rotated x', rotated, STORAGE_USAGE),
      createBuffer(device, 'test y', 4 * 65 * vectors, STORAGE_USAGE),
      createBuffer(device, 'test y (host rotation)', 4 * 65 * vectors, STORAGE_USAGE),
    ] as const;
    const scratch = new GpuScratch(device);
    try {
      const [onGpu, onHost] = await withValidation(device, 'rotation test', async () => {
        const encoder = device.createCommandEncoder({ label: 'rotation test' });
        matrix.dispatch(encoder, scratch, { x: buffers[0], y: buffers[2], vectors });
        matrix.dispatch(encoder, scratch, { x: buffers[1], y: buffers[3], vectors, inputBasis: 'quantization' });
        device.queue.submit([encoder.finish()]);
        return [new Float32Array(await readBuffer(device, buffers[2], 4 * 65 * vectors)), new Float32Array(await readBuffer(device, buffers[3], 4 * 65 * vectors))];
      });
      expect(Array.from(onGpu)).toEqual(Array.from(onHost));
      expect(mismatches(onGpu, reference(q, x, vectors, 8), 65)).toEqual([]);
    } finally {
      scratch.destroy();
      matrix.destroy();
      for (const buffer of buffers) buffer.destroy();
    }
  });

  it('dispatchWeightOnlyGemv with every buffer at an offset', async () => {
    const q = quantized(24, 20, { method: 'watersic', rescale: true });
    const vectors = 3;
    const x = activations(24, vectors, 11);
    const bits = weightOnlyCodeBits(q.codes);
    const packed = packWeightOnlyCodes(q.codes, q.n, q.outputs, bits);
    const pad = (data: Float32Array | Uint32Array, words: number): Uint32Array => {
      const out = new Uint32Array(words + data.length).fill(0x7fc00000); // NaN before the data
      out.set(new Uint32Array(data.buffer, data.byteOffset, data.length), words);
      return out;
    };
    const buffers = [
      createBufferWithData(device, 'test codes', pad(packed, 68), STORAGE_USAGE),
      createBufferWithData(device, 'test column scales', pad(q.columnScales, 3), STORAGE_USAGE),
      createBufferWithData(device, 'test row scales', pad(q.rowScales as Float32Array, 5), STORAGE_USAGE),
      createBufferWithData(device, 'test x', pad(x, 7), STORAGE_USAGE),
      createBuffer(device, 'test y', 4 * (11 + q.outputs * vectors), STORAGE_USAGE),
    ] as const;
    const scratch = new GpuScratch(device);
    try {
      const got = await withValidation(device, 'offset test', async () => {
        const encoder = device.createCommandEncoder({ label: 'offset test' });
        dispatchWeightOnlyGemv(device, encoder, scratch, {
          codes: buffers[0],
          columnScales: buffers[1],
          rowScales: buffers[2],
          x: buffers[3],
          y: buffers[4],
          n: q.n,
          outputs: q.outputs,
          codeBits: bits,
          vectors,
          codesOffset: 4 * 68,
          columnScalesOffset: 4 * 3,
          rowScalesOffset: 4 * 5,
          xOffset: 4 * 7,
          yOffset: 4 * 11,
        });
        device.queue.submit([encoder.finish()]);
        return new Float32Array(await readBuffer(device, buffers[4], 4 * q.outputs * vectors, 4 * 11));
      });
      expect(mismatches(got, reference(q, x, vectors, bits), q.outputs)).toEqual([]);
    } finally {
      scratch.destroy();
      for (const buffer of buffers) buffer.destroy();
    }
  });

  it('refuses bad input with LatticeMatmulError', async () => {
    const q = quantized(16, 3, { method: 'gptq' });
    await expect(weightOnlyGemv(device, q, new Float32Array(15))).rejects.toThrow(LatticeMatmulError);
    const withNaN = new Float32Array(16);
    withNaN[4] = Number.NaN;
    await expect(weightOnlyGemv(device, q, withNaN)).rejects.toThrow(/non-finite/);
    const wide = quantized(16, 3, { method: 'rtn', step: 1e-3 });
    expect(() => uploadWeightOnly(device, wide, { codeBits: 8 })).toThrow(/too narrow/);
    const haar = uploadWeightOnly(device, quantized(100, 3, { method: 'rtn', rotate: true }));
    const scratch = new GpuScratch(device);
    const x = createBuffer(device, 'test x', 400, STORAGE_USAGE);
    const y = createBuffer(device, 'test y', 12, STORAGE_USAGE);
    try {
      expect(() => haar.dispatch(device.createCommandEncoder(), scratch, { x, y })).toThrow(/host/);
      expect(() => haar.dispatch(device.createCommandEncoder(), scratch, { x, y, vectors: 2, inputBasis: 'quantization' })).toThrow(/x needs 800 bytes/);
    } finally {
      haar.destroy();
      scratch.destroy();
      x.destroy();
      y.destroy();
    }
  });
});
