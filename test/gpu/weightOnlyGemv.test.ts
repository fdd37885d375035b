import { beforeAll, describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { BufferUsage, createBuffer, createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { withValidation } from '../../src/gpu/errorScopes.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import {
  dispatchWeightOnlyGemv,
  uploadScaleExponent,
  uploadWeightOnly,
  weightOnlyGemm,
  weightOnlyCodeBits,
  weightOnlyGemv,
  type WeightOnlyCodeBits,
  type WeightOnlyGemvOptions,
  type WeightOnlyGpuMatrix,
  type WeightOnlyMatrixGemvArgs,
} from '../../src/gpu/kernels/weightOnlyGemv.js';
import { WeightBasis } from '../../src/weightonly/basis.js';
import { quantizeWeights, WeightOnlyQuantized, type QuantizeWeightsOptions } from '../../src/weightonly/index.js';
import { fixedRowVec4s, fixedWidthCodes, weightCodeLayout, type FixedCodeBits } from '../../src/weightonly/packedCodes.js';
import { dispatchWeightOnlyInputsI8, weightOnlyGemvI8Reference, weightOnlyI8ByteWords, weightOnlyI8RecordWords, weightOnlyInputsI8, weightOnlyInputsI8Bytes } from '../../src/gpu/kernels/weightOnlyInputsI8.js';
import { spreadSpectrumCovariance } from '../../src/weightonly/syntheticCovariance.js';
import { acceptedMutants } from '../weightonly/fuzzProperty.js';
import { toFloat32Matrix } from '../../src/matrix.js';
import { float16Bits } from '../../src/scalar/floatFormats.js';
import { contextOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';
import { relativeSquaredError } from '../relativeError.js';

/*
 * The weight-only GEMV against the CPU decode: y_ref = Ŵ·x in float64 with Ŵ = q.decode() (the
 * inverse rotation included), for WaterSIC / GPTQ / RTN matrices with and without rotation and
 * rescalers, every code width 1 … 25 (uniform and mixed in one row, so codes cross word and vec4
 * boundaries at every offset), several vectors, split bindings, the extreme scales a file may hold,
 * and files the fuzz test accepted.
 *
 * Tolerance (derived, not tuned), u = 2^−24, γ_k = k·u/(1 − k·u), w' = q.decodeRotated(), x̃ = Q·x,
 * L = ⌈log2 n⌉, C = the most codes one lane of the kernel owns (recomputed below from the layout's
 * definition: code i belongs to the vec4 that holds its last bit, vec4 c to lane c mod 64):
 *   GPU kernel: s·x̃, z·(s·x̃), the lane's chain of C additions, 7 + 7 reduction additions, ·t:
 *     K = C + 16 roundings per term                                            γ_K·Σ_i |w'_ji x̃_i|
 *   CPU decode: fround(fround(z·s)·t)                                          γ_2·Σ_i |w'_ji x̃_i|
 *   Hadamard (GPU forward on x, CPU inverse on Ŵ): L + 1 roundings of each entry,
 *     each bounded by the rotated vector's norm      (L + 1)·u·(‖w'_j‖₁·‖x‖₂ + ‖w'_j‖₂·‖x‖₁)
 *   Haar (both sides float64 rounded to f32 once)    u·(Σ_i |w'_ji x̃_i| + Σ_i |ŵ_ji x_i|)
 * plus 1e−30 for y = 0. For n = 128 at 4 bits this is ≈ 1e−5·‖w'_j‖·‖x‖, while one code off by one
 * moves y_j by s_i·|x̃_i| ≈ 2e−3·‖w'_j‖·‖x‖ (the "one wrong code" test checks that it is caught).
 */

const noGpu = await gpuUnavailableReason();

/** One call of `yOfTwoCalls`: its x data and its dispatch options (x, y and vectors are the helper's). */
interface TwoCallsInput {
  readonly x: Float32Array | Uint16Array;
  readonly options: Omit<WeightOnlyMatrixGemvArgs, 'x' | 'y' | 'vectors'>;
}
const U = 2 ** -24;

/** About 4 bits per code for N(0, 1) weights (a fixed step: a rate target would count side information, which dominates at small sizes). */
const STEP = { watersic: 0.05, gptq: 0.25, rtn: 0.25 } as const;

function quantized(n: number, outputs: number, options: Pick<QuantizeWeightsOptions, 'method' | 'rotate' | 'rescale' | 'seed'> & { readonly step?: number }, seed = 1): WeightOnlyQuantized {
  const step = options.step ?? STEP[options.method];
  return quantizeWeights(gaussianMatrix(n, outputs, 100 * n + outputs + seed), spreadSpectrumCovariance(n, 2, seed).sigma, { ...options, step });
}

/** `vectors` columns of n Gaussian entries (column-major). */
function activations(n: number, vectors: number, seed: number): Float32Array {
  return gaussianMatrix(n, vectors, 7919 + seed).data;
}

/**
 * A matrix whose input feature i has codes of exactly widths[i] bits: the column holds both extremes
 * −2^(b−1) and 2^(b−1) − 1 (one of them when there is one output) and random codes between;
 * s_i = magnitude / 2^(b−1), so |z·s_i| ≤ magnitude.
 */
function craftedMatrix(
  widths: readonly number[],
  outputs: number,
  seed: number,
  options: { magnitude?: number; rowScales?: Float32Array | null; rotation?: 'none' | 'hadamard' | 'haar' } = {},
): WeightOnlyQuantized {
  const n = widths.length;
  const rng = new Rng(seed);
  const codes = new Int32Array(n * outputs);
  for (let i = 0; i < n; i++) {
    const b = widths[i] as number;
    const low = -(2 ** (b - 1));
    const high = 2 ** (b - 1) - 1;
    for (let j = 0; j < outputs; j++) {
      const extreme = j === i % outputs ? (outputs === 1 && i % 2 === 1 ? high : low) : j === (i + 1) % outputs ? high : null;
      codes[j * n + i] = extreme ?? low + Math.floor(rng.nextFloat() * 2 ** b);
    }
  }
  const magnitude = options.magnitude ?? 1;
  const columnScales = Float32Array.from(widths, (b) => magnitude / 2 ** (b - 1));
  const q = new WeightOnlyQuantized({
    method: 'watersic',
    n,
    outputs,
    codes,
    columnScales,
    rowScales: options.rowScales ?? null,
    rotation: options.rotation ?? 'none',
    seed,
  });
  expect(Array.from(q.codeWidths)).toEqual(Array.from(widths));
  return q;
}

/**
 * C: the most codes one lane owns, from the layouts' definitions (not from the kernel module): packed,
 * code i belongs to the vec4 that holds its last bit, and vec4 c to lane c mod 64; fixed width b, a
 * row has W = 4·⌈n / (4·⌊32/b⌋)⌉ words, code i lies in word i mod W, and word w belongs to lane w mod 64.
 */
function mostCodesPerLane(widths: Uint8Array, codeBits: WeightOnlyCodeBits): number {
  const perLane = new Map<number, number>();
  const rowWords = codeBits === 'packed' ? 0 : 4 * Math.max(1, Math.ceil(widths.length / (4 * Math.floor(32 / codeBits))));
  let bit = 0;
  for (const [i, width] of widths.entries()) {
    bit += width;
    const lane = codeBits === 'packed' ? (Math.ceil(bit / 128) - 1) % 64 : (i % rowWords) % 64;
    perLane.set(lane, (perLane.get(lane) ?? 0) + 1);
  }
  return Math.max(...perLane.values());
}

/** The layouts a matrix can be uploaded in: packed, and fixed width where its codes fit 8 bits. */
function layoutsOf(q: WeightOnlyQuantized): ('packed' | 'fixed')[] {
  return Math.max(...q.codeWidths) <= 8 ? ['packed', 'fixed'] : ['packed'];
}

function gamma(k: number): number {
  return (k * U) / (1 - k * U);
}

/** Y = Ŵ·X in float64 from the CPU decode, with the per-entry tolerance of the header. */
function reference(q: WeightOnlyQuantized, x: Float32Array, vectors: number, codeBits: WeightOnlyCodeBits): { y: Float64Array; tolerance: Float64Array } {
  const { n, outputs } = q;
  const wHat = q.decode().data;
  const wRot = q.decodeRotated().data;
  const rotated = new WeightBasis(n, q.rotation, q.seed).rotateWeights({ rows: n, cols: vectors, data: x });
  const kernelRoundings = mostCodesPerLane(q.codeWidths, codeBits) + 16;
  const levels = Math.ceil(Math.log2(n));
  // The row scales as uploaded (times 2^−e): where an intermediate is subnormal, each of the kernel's
  // roundings may lose up to 2^−150 in absolute terms, scaled by t_j at the end.
  const rowScales = q.rowScales ?? new Float32Array(outputs).fill(1);
  const uploadedT = 2 ** -uploadScaleExponent(q.columnScales, rowScales);
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
      let bound = (gamma(kernelRoundings) + gamma(2)) * rotatedTerms;
      if (q.rotation === 'hadamard') bound += (levels + 1) * U * (wNorm1 * xNorm2 + wNorm2 * xNorm1);
      if (q.rotation === 'haar') bound += U * (rotatedTerms + originalTerms);
      y[v * outputs + j] = sum;
      const subnormalSlack = (kernelRoundings + 2) * 2 ** -149 * Math.max(1, Math.abs((rowScales[j] as number) * uploadedT));
      tolerance[v * outputs + j] = bound + subnormalSlack;
    }
  }
  return { y, tolerance };
}

/** The column and row scales of `tinyColumnScales`: within the class's invariants, s·x̃ subnormal for x ≈ 2^−40. */
const TINY_SCALES = { s: 2 ** -100, t: 2 ** 16 };

/** 4-bit codes in [−7, 7], n = 128, 4 outputs, column scales 2^−100 and row scales 2^16 (audit helper-135's case). */
function tinyColumnScales(): WeightOnlyQuantized {
  const n = 128;
  const outputs = 4;
  const rng = new Rng(12345);
  const codes = Int32Array.from({ length: n * outputs }, () => rng.nextInt(15) - 7);
  return new WeightOnlyQuantized({ method: 'rtn', n, outputs, codes, columnScales: new Float32Array(n).fill(TINY_SCALES.s), rowScales: new Float32Array(outputs).fill(TINY_SCALES.t), rotation: 'none', seed: 1 });
}

/** Entries outside the tolerance or not finite, as messages (empty when all agree). */
function mismatches(got: Float32Array, expected: { y: Float64Array; tolerance: Float64Array }, outputs: number, limit = 5): string[] {
  const out: string[] = [];
  expect(got.length).toBe(expected.y.length);
  for (let k = 0; k < got.length && out.length < limit; k++) {
    const g = got[k] as number;
    const e = expected.y[k] as number;
    const tol = expected.tolerance[k] as number;
    if (!(Number.isFinite(g) && Math.abs(g - e) <= tol)) out.push(`output ${k % outputs}, vector ${Math.floor(k / outputs)}: got ${g}, expected ${e} ± ${tol}`);
  }
  return out;
}

describe.skipIf(noGpu !== undefined)('weight-only GEMV on the GPU', () => {
  const suite = contextOnTestDevice();
  let device: GPUDevice;
  beforeAll(() => {
    device = suite.context.device;
  });

  /** The GEMV of q in each layout it can take (or `options.layout`) against the CPU decode. */
  async function check(q: WeightOnlyQuantized, vectors: number, options: WeightOnlyGemvOptions = {}, seed = 0): Promise<void> {
    const x = activations(q.n, vectors, q.n + q.outputs + vectors + seed);
    for (const layout of options.layout === undefined ? layoutsOf(q) : [options.layout]) {
      const got = vectors === 1 && options.vectorBlock === undefined
        ? await weightOnlyGemv(device, q, x, { ...options, layout })
        : (await weightOnlyGemm(device, q, { rows: q.n, cols: vectors, data: x }, { ...options, layout })).data;
      expect(mismatches(got, reference(q, x, vectors, weightOnlyCodeBits(q, layout)), q.outputs), layout).toEqual([]);
    }
  }

  /**
   * Y of two `matrix.dispatch` calls, each on its own x (uploaded from `x`) with its own options, in one
   * submit inside a validation section: what the tests that compare two input paths bit for bit run.
   */
  async function yOfTwoCalls(matrix: WeightOnlyGpuMatrix, label: string, vectors: number, calls: readonly [TwoCallsInput, TwoCallsInput]): Promise<[Float32Array, Float32Array]> {
    const bytes = 4 * matrix.outputs * vectors;
    const xs = calls.map((call, i) => createBufferWithData(device, `${label} x ${i}`, call.x, STORAGE_USAGE));
    const ys = calls.map((_, i) => createBuffer(device, `${label} y ${i}`, bytes, STORAGE_USAGE));
    const scratch = new GpuScratch(device);
    try {
      return await withValidation(device, label, async () => {
        const encoder = device.createCommandEncoder({ label });
        calls.forEach((call, i) => matrix.dispatch(encoder, scratch, { ...call.options, x: xs[i] as GPUBuffer, y: ys[i] as GPUBuffer, vectors }));
        device.queue.submit([encoder.finish()]);
        const read = async (y: GPUBuffer): Promise<Float32Array> => new Float32Array(await readBuffer(device, y, bytes));
        return [await read(ys[0] as GPUBuffer), await read(ys[1] as GPUBuffer)];
      });
    } finally {
      scratch.destroy();
      for (const buffer of [...xs, ...ys]) buffer.destroy();
    }
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

  it.each(Array.from({ length: 25 }, (_, k) => k + 1))('every code %i bits wide (n = 37, 11 outputs, and n = 1)', async (bits) => {
    await check(craftedMatrix(Array.from({ length: 37 }, () => bits), 11, bits), 1);
    await check(craftedMatrix([bits], 3, bits + 100, { rowScales: new Float32Array([0.5, -2, 3]) }), 1);
  });

  it.each([1, 4, 6, 8])('long rows at %i bits: several words per lane, the last fields of some words past n (n = 600 and 1201; 1 and 2 vectors)', async (bits) => {
    // n = 600 at 4 bits: W = 76 words, so lanes 0 … 11 own two and words 68 … 75 end at field 6.
    for (const n of [600, 1201]) {
      const q = craftedMatrix(Array.from({ length: n }, () => bits), 9, bits + n);
      await check(q, 1, { layout: 'fixed' });
      await check(q, 2, { layout: 'fixed', vectorBlock: 4 });
    }
  });

  it('mixed widths 1 … 25 in one row (codes cross words and vec4s at every offset), with row scales and 5 vectors', async () => {
    const rng = new Rng(5);
    const widths = Array.from({ length: 700 }, (_, i) => (i < 25 ? i + 1 : 1 + Math.floor(rng.nextFloat() * 25)));
    const rowScales = Float32Array.from({ length: 65 }, (_, j) => 0.25 + j / 16);
    const q = craftedMatrix(widths, 65, 9, { rowScales });
    expect(q.packedCodes.rowVec4s).toBeGreaterThan(64); // some lanes own two vec4s
    await check(q, 1);
    await check(q, 5, { vectorBlock: 4 });
  });

  it('quantized matrices with wide codes (small steps: 10 to 22 bits)', async () => {
    for (const [n, method, step] of [[128, 'rtn', 1e-3], [24, 'rtn', 1e-6], [100, 'watersic', 1e-7], [16, 'gptq', 1e-4]] as const) {
      const q = quantized(n, 65, { method, step, rotate: n !== 100, rescale: method === 'watersic' });
      expect(Math.max(...q.codeWidths)).toBeGreaterThanOrEqual(10);
      await check(q, 1);
    }
  });

  it('the extreme scales a file may hold (|s|·2^(b−1) = 2^48, |t| = 2^16, codes at both ends): finite and ≈ Ŵ·x', async () => {
    const widths = Array.from({ length: 200 }, (_, i) => [1, 25, 7, 16][i % 4] as number);
    const rowScales = Float32Array.from({ length: 9 }, (_, j) => (j % 2 === 0 ? 2 ** 16 : -(2 ** 16)));
    const q = craftedMatrix(widths, 9, 3, { magnitude: 2 ** 48, rowScales });
    const back = WeightOnlyQuantized.deserialize(q.serialize());
    expect(back.decode().data.every(Number.isFinite)).toBe(true);
    await check(back, 1);
    await check(craftedMatrix(widths.slice(0, 128), 9, 4, { magnitude: 2 ** 48, rowScales, rotation: 'hadamard' }), 2);
  });

  it.each([42, 46, 47])('tiny column scales with large row scales (s = 2^−100, t = 2^16), x ≈ 2^−%i: within the bound (s·x̃ was subnormal: 133 times the relative bound at 2^−42, then y = 0)', async (kx) => {
    const q = tinyColumnScales();
    const { n, outputs } = q;
    const x = Float32Array.from(gaussianMatrix(n, 1, 9).data, (v) => v * 2 ** -kx);
    for (const layout of layoutsOf(q)) {
      const got = await weightOnlyGemv(device, q, x, { layout });
      expect(mismatches(got, reference(q, x, 1, weightOnlyCodeBits(q, layout)), outputs), layout).toEqual([]);
    }
  });

  it('files the fuzz test accepted after a mutation with a recomputed checksum: finite and ≈ Ŵ·x', async () => {
    const mutants = acceptedMutants(24, 2024);
    expect(mutants.length).toBe(24);
    for (const q of mutants) await check(q, 1);
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
    // Output 1, towards zero so the column's width stays the same and the layout is unchanged.
    codes[128 + target] = (codes[128 + target] as number) + ((codes[128 + target] as number) > 0 ? -1 : 1);
    const wrong = new WeightOnlyQuantized({ method: q.method, n: q.n, outputs: q.outputs, codes, columnScales: q.columnScales, rowScales: q.rowScales, rotation: q.rotation, seed: q.seed });
    for (const layout of layoutsOf(q)) {
      const got = await weightOnlyGemv(device, wrong, x, { layout });
      const expected = reference(q, x, 1, weightOnlyCodeBits(q, layout));
      expect(mismatches(got, expected, 3).map((m) => m.split(',')[0]), layout).toEqual(['output 1']);
    }
  });

  it('x rotated on the host (inputBasis quantization) gives bit for bit the products of the GPU rotation', async () => {
    const q = quantized(128, 65, { method: 'gptq', rotate: true, rescale: true, seed: 4 });
    expect(q.rotation).toBe('hadamard');
    const vectors = 3;
    const x = activations(128, vectors, 21);
    const matrix = uploadWeightOnly(device, q);
    try {
      const [onGpu, onHost] = await yOfTwoCalls(matrix, 'rotation test', vectors, [
        { x, options: {} },
        { x: matrix.rotateOnHost(x, vectors), options: { inputBasis: 'quantization' } },
      ]);
      expect(Array.from(onGpu)).toEqual(Array.from(onHost));
      expect(mismatches(onGpu, reference(q, x, vectors, matrix.codeBits), 65)).toEqual([]);
    } finally {
      matrix.destroy();
    }
  });

  /**
   * f16 activations read as they are: by the GEMV itself (no rotation; 1 and 3 vectors: both vector
   * blocks) or by the rotation (Hadamard), at an odd half offset, give the products of their f32
   * values bit for bit (the widening is exact).
   */
  it.each([
    ['no rotation, 1 vector', false, 1],
    ['no rotation, 3 vectors', false, 3],
    ['Hadamard rotation, 3 vectors', true, 3],
  ] as [string, boolean, number][])('f16 x (%s) equals the f32 run on its values, bit for bit', async (_name, rotate, vectors) => {
    const n = 128;
    const q = quantized(n, 65, { method: 'rtn', rotate, seed: 5 });
    expect(q.rotation).toBe(rotate ? 'hadamard' : 'none');
    const x = activations(n, vectors, 31);
    const bits = Uint16Array.from(x, (v) => float16Bits(v));
    const values = toFloat32Matrix({ rows: n, cols: vectors, data: bits }).data;
    const halfOffset = 3; // x from byte 6, the middle of a word
    const raw = new Uint16Array(halfOffset + bits.length + 3).fill(0x7e00); // NaN halves around x
    raw.set(bits, halfOffset);
    const matrix = uploadWeightOnly(device, q);
    const f16X = createBufferWithData(device, 'test f16 x', raw, STORAGE_USAGE);
    const y = createBuffer(device, 'test y', 4 * 65 * vectors, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const [fromF16, fromF32] = await yOfTwoCalls(matrix, 'f16 x test', vectors, [
        { x: raw, options: { xOffset: 2 * halfOffset, inputFormat: 'f16' } },
        { x: values, options: {} },
      ]);
      expect(Array.from(fromF16)).toEqual(Array.from(fromF32));
      expect(mismatches(fromF16, reference(q, values, vectors, matrix.codeBits), 65)).toEqual([]);
      const encoder = device.createCommandEncoder();
      expect(() => matrix.dispatch(encoder, scratch, { x: f16X, xOffset: 3, inputFormat: 'f16', y, vectors })).toThrow(/multiple of 2/);
      expect(() => matrix.dispatch(encoder, scratch, { x: f16X, inputFormat: 'bf16' as 'f16', y, vectors })).toThrow(/inputFormat/);
    } finally {
      scratch.destroy();
      matrix.destroy();
      f16X.destroy();
      y.destroy();
    }
  });

  it('adds a bias and writes f16 itself (the QuantizedLinear epilogue): f32 + b bit for bit, f16 a neighbour of it, at an odd half offset, touching nothing else', async () => {
    const q = quantized(128, 65, { method: 'gptq', rotate: true, rescale: true, seed: 5 });
    const vectors = 3;
    const outputs = 65 * vectors;
    const matrix = uploadWeightOnly(device, q);
    const biasValues = Float32Array.from({ length: 65 }, (_, j) => (j - 30) / 7);
    const xBuffer = createBufferWithData(device, 'test x', activations(128, vectors, 31), STORAGE_USAGE);
    const biasBuffer = createBuffer(device, 'test bias', 256 + 4 * 65, BufferUsage.STORAGE | BufferUsage.COPY_DST);
    device.queue.writeBuffer(biasBuffer, 256, biasValues);
    const SENTINEL = 0xabcd;
    const run = async (extra: { bias?: GPUBuffer; biasOffset?: number; outputFormat?: 'f32' | 'f16'; yOffset?: number; maxBindingBytes?: number }, bytes: number): Promise<Uint8Array> => {
      const y = createBuffer(device, 'test y', bytes, BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC);
      device.queue.writeBuffer(y, 0, new Uint16Array(bytes / 2).fill(SENTINEL));
      const scratch = new GpuScratch(device);
      try {
        await withValidation(device, 'bias test', async () => {
          const encoder = device.createCommandEncoder({ label: 'bias test' });
          matrix.dispatch(encoder, scratch, { x: xBuffer, y, vectors, ...extra });
          device.queue.submit([encoder.finish()]);
          await device.queue.onSubmittedWorkDone();
        });
        return new Uint8Array(await readBuffer(device, y, bytes));
      } finally {
        scratch.destroy();
        y.destroy();
      }
    };
    try {
      // 2 KB bindings split the outputs (codes) and the vectors (y) into several dispatches.
      for (const limits of [{}, { maxBindingBytes: 2048 }]) {
        const what = 'maxBindingBytes' in limits ? '2 KB bindings' : 'whole';
        const plain = new Float32Array((await run({ ...limits }, 4 * outputs)).buffer);
        const withBias = new Float32Array((await run({ ...limits, bias: biasBuffer, biasOffset: 256 }, 4 * outputs)).buffer);
        for (let i = 0; i < outputs; i++) expect(withBias[i], `${what}: f32 + bias, output ${i}`).toBe(Math.fround((plain[i] as number) + (biasValues[i % 65] as number)));
        const halves = new Uint16Array((await run({ ...limits, bias: biasBuffer, biasOffset: 256, outputFormat: 'f16', yOffset: 258 }, 4 * Math.ceil((512 + 2 * outputs) / 4))).buffer);
        for (let h = 0; h < halves.length; h++) {
          const i = h - 129;
          if (i < 0 || i >= outputs) expect(halves[h], `${what}: half ${h} outside y`).toBe(SENTINEL);
          else expect(halves[h], `${what}: f16 output ${i}`).toBe(float16Bits(Math.fround((plain[i] as number) + (biasValues[i % 65] as number))));
        }
      }
    } finally {
      matrix.destroy();
      xBuffer.destroy();
      biasBuffer.destroy();
    }
  });

  it('dispatchWeightOnlyGemv with every buffer at an offset, the codes straight from serialized bytes', async () => {
    const q = quantized(24, 20, { method: 'watersic', rescale: true });
    const vectors = 3;
    const x = activations(24, vectors, 11);
    // The file's code section is the GPU buffer: bytes 48 … 48 + 16·R·outputs, no repacking.
    const { rowVec4s, widths } = q.packedCodes;
    const bytes = q.serialize();
    const fileCodes = new Uint32Array(bytes.slice(48, 48 + 16 * rowVec4s * q.outputs).buffer);
    const pad = (data: Float32Array | Uint32Array, words: number): Uint32Array => {
      const out = new Uint32Array(words + data.length).fill(0x7fc00000); // NaN before the data
      out.set(new Uint32Array(data.buffer, data.byteOffset, data.length), words);
      return out;
    };
    const buffers = [
      createBufferWithData(device, 'test codes', pad(fileCodes, 68), STORAGE_USAGE),
      createBufferWithData(device, 'test code layout', pad(weightCodeLayout(widths, rowVec4s), 9), STORAGE_USAGE),
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
          codeLayout: buffers[1],
          columnScales: buffers[2],
          rowScales: buffers[3],
          x: buffers[4],
          y: buffers[5],
          n: q.n,
          outputs: q.outputs,
          rowVec4s,
          vectors,
          codesOffset: 4 * 68,
          codeLayoutOffset: 4 * 9,
          columnScalesOffset: 4 * 3,
          rowScalesOffset: 4 * 5,
          xOffset: 4 * 7,
          yOffset: 4 * 11,
        });
        device.queue.submit([encoder.finish()]);
        return new Float32Array(await readBuffer(device, buffers[5], 4 * q.outputs * vectors, 4 * 11));
      });
      expect(mismatches(got, reference(q, x, vectors, 'packed'), q.outputs)).toEqual([]);
      // The fixed-width codes at an offset too, without a layout table.
      const fixed = fixedWidthCodes(q.codes, q.n, q.outputs, 8);
      const fixedCodes = createBufferWithData(device, 'test fixed-width codes', pad(fixed.words, 68), STORAGE_USAGE);
      try {
        const fromFixed = await withValidation(device, 'offset test (fixed width)', async () => {
          const encoder = device.createCommandEncoder({ label: 'offset test (fixed width)' });
          dispatchWeightOnlyGemv(device, encoder, scratch, {
            codes: fixedCodes, codeBits: 8, columnScales: buffers[2], rowScales: buffers[3], x: buffers[4], y: buffers[5],
            n: q.n, outputs: q.outputs, rowVec4s: fixed.rowVec4s, vectors,
            codesOffset: 4 * 68, columnScalesOffset: 4 * 3, rowScalesOffset: 4 * 5, xOffset: 4 * 7, yOffset: 4 * 11,
          });
          device.queue.submit([encoder.finish()]);
          return new Float32Array(await readBuffer(device, buffers[5], 4 * q.outputs * vectors, 4 * 11));
        });
        expect(mismatches(fromFixed, reference(q, x, vectors, 8), q.outputs)).toEqual([]);
        const encoder = device.createCommandEncoder();
        const base = { columnScales: buffers[2], rowScales: buffers[3], x: buffers[4], y: buffers[5], n: q.n, outputs: q.outputs, vectors };
        expect(() => dispatchWeightOnlyGemv(device, encoder, scratch, { ...base, codes: fixedCodes, codeBits: 8, rowVec4s: fixed.rowVec4s + 1 })).toThrow(/8-bit codes of n = \d+ take rowVec4s = \d+, got \d+/);
        expect(() => dispatchWeightOnlyGemv(device, encoder, scratch, { ...base, codes: buffers[0], rowVec4s })).toThrow(/packed codes need their codeLayout table/);
        expect(() => dispatchWeightOnlyGemv(device, encoder, scratch, { ...base, codes: fixedCodes, codeBits: 9 as 8, rowVec4s })).toThrow(/codeBits/);
      } finally {
        fixedCodes.destroy();
      }
    } finally {
      scratch.destroy();
      for (const buffer of buffers) buffer.destroy();
    }
  });

  it('a layout table that does not match the codes gives a result, not a hang (the shader clamps its entries to n)', async () => {
    const q = quantized(100, 9, { method: 'rtn' });
    const matrix = uploadWeightOnly(device, q);
    const { rowVec4s } = matrix;
    const table = new Uint32Array(q.n + rowVec4s + 2);
    table.fill(0xffffffff, q.n + 2); // every vec4 after the first owns codes 0 … 2^32 − 2
    const buffers = [
      createBufferWithData(device, 'test garbage layout', table, STORAGE_USAGE),
      createBufferWithData(device, 'test x', activations(q.n, 1, 3), STORAGE_USAGE),
      createBuffer(device, 'test y', 4 * q.outputs, STORAGE_USAGE),
    ] as const;
    const scratch = new GpuScratch(device);
    try {
      const start = performance.now();
      const got = await withValidation(device, 'garbage layout test', async () => {
        const encoder = device.createCommandEncoder({ label: 'garbage layout test' });
        dispatchWeightOnlyGemv(device, encoder, scratch, {
          codes: matrix.codes, codeLayout: buffers[0], columnScales: matrix.columnScales, rowScales: matrix.rowScales,
          x: buffers[1], y: buffers[2], n: q.n, outputs: q.outputs, rowVec4s,
        });
        device.queue.submit([encoder.finish()]);
        return new Float32Array(await readBuffer(device, buffers[2], 4 * q.outputs));
      });
      expect(got.length).toBe(q.outputs);
      expect(performance.now() - start).toBeLessThan(10_000);
    } finally {
      scratch.destroy();
      matrix.destroy();
      for (const buffer of buffers) buffer.destroy();
    }
  });

  it('an x beyond ‖x‖₂ = 2^31 (where its f32 sums could overflow into NaN) is refused, naming the power of two; just below it the result is finite', async () => {
    // W×1e-12 in a Hadamard basis with a constant x of norm 1.6e38: the rotation's sums overflowed and
    // the GEMV returned NaN where the true product is ≈ 1e26.
    const n = 64;
    const q = quantized(n, 3, { method: 'rtn', rotate: true, seed: 1 });
    const constant = (norm: number): Float32Array => new Float32Array(n).fill(norm / Math.sqrt(n));
    await expect(weightOnlyGemv(device, q, constant(1.6e38))).rejects.toThrow(
      /weight-only gemv: x has ‖x‖₂ = 1\.6\d*e\+38, above 2\^31, the norm for which the GEMV is finite; multiply x by 2\^-96 and y by 2\^96/,
    );
    const twoColumns = new Float32Array(2 * n);
    twoColumns.set(constant(2 ** 32), n);
    await expect(weightOnlyGemm(device, q, { rows: n, cols: 2, data: twoColumns })).rejects.toThrow(/weight-only gemv: x column 1 has ‖x‖₂ = 4\.29\d*e\+9, above 2\^31/);
    const y = await weightOnlyGemv(device, q, constant(2 ** 31 * (1 - 2 ** -20)));
    expect(y.every(Number.isFinite)).toBe(true);
  });

  it("the codes' layout: 'auto' picks the widest code's bits (≤ 8) where that costs at most 1.5× the packed bytes; 'fixed' refuses codes over 8 bits", () => {
    const rtn4 = craftedMatrix(Array.from({ length: 128 }, (_, i) => 1 + (i % 4)), 3, 1);
    expect(weightOnlyCodeBits(rtn4, 'auto')).toBe(4);
    expect(weightOnlyCodeBits(rtn4, 'packed')).toBe('packed');
    // The widest code's bits where the other features are not much narrower; one wide feature among 1-bit ones stays packed.
    expect(weightOnlyCodeBits(craftedMatrix(Array.from({ length: 64 }, () => 6), 2, 1), 'auto')).toBe(6);
    expect(weightOnlyCodeBits(craftedMatrix(Array.from({ length: 64 }, (_, i) => (i % 10 === 0 ? 5 : 4)), 2, 1), 'auto')).toBe(5);
    const mostlyNarrow = craftedMatrix(Array.from({ length: 256 }, (_, i) => (i === 0 ? 8 : 1)), 2, 1);
    expect(weightOnlyCodeBits(mostlyNarrow, 'auto')).toBe('packed');
    expect(weightOnlyCodeBits(mostlyNarrow, 'fixed')).toBe(8);
    // What the quantizers write at the usual rates: widths a bit or two apart between features.
    for (const method of ['rtn', 'gptq', 'watersic'] as const) {
      for (const rate of [2, 3, 4]) {
        const q = quantizeWeights(gaussianMatrix(256, 128, 3), method === 'rtn' ? null : spreadSpectrumCovariance(256, 2, 1).sigma, { method, rate, rotate: true });
        const widest = q.codeWidths.reduce((a, b) => Math.max(a, b), 0);
        expect(widest, `${method} at rate ${rate}`).toBeLessThanOrEqual(8);
        expect(weightOnlyCodeBits(q, 'auto'), `${method} at rate ${rate}`).toBe(widest);
      }
    }
    const wide = craftedMatrix([9, 3], 2, 1);
    expect(weightOnlyCodeBits(wide, 'auto')).toBe('packed');
    expect(() => weightOnlyCodeBits(wide, 'fixed')).toThrow(/layout 'fixed' holds codes of at most 8 bits; this matrix has codes of 9 bits/);
    expect(() => uploadWeightOnly(device, rtn4, { layout: 'nibbles' as 'fixed' })).toThrow(/layout/);
    const matrix = uploadWeightOnly(device, rtn4);
    try {
      expect([matrix.codeBits, matrix.codeLayout, matrix.rowVec4s, matrix.codes.size]).toEqual([4, null, 4, 3 * 4 * 16]);
      expect(matrix.namedBuffers('W').map(([name]) => name)).toEqual(["W's codes", "W's columnScales", "W's rowScales"]);
    } finally {
      matrix.destroy();
    }
  });

  it('refuses bad input with LatticeMatmulError', async () => {
    const q = quantized(16, 3, { method: 'gptq' });
    await expect(weightOnlyGemv(device, q, new Float32Array(15))).rejects.toThrow(LatticeMatmulError);
    const withNaN = new Float32Array(16);
    withNaN[4] = Number.NaN;
    await expect(weightOnlyGemv(device, q, withNaN)).rejects.toThrow(/non-finite/);
    const haar = uploadWeightOnly(device, quantized(100, 3, { method: 'rtn', rotate: true }), { layout: 'packed' });
    const scratch = new GpuScratch(device);
    const x = createBuffer(device, 'test x', 400, STORAGE_USAGE);
    const y = createBuffer(device, 'test y', 12, STORAGE_USAGE);
    try {
      expect(() => haar.dispatch(device.createCommandEncoder(), scratch, { x, y })).toThrow(/host/);
      expect(() => haar.dispatch(device.createCommandEncoder(), scratch, { x, y, vectors: 2, inputBasis: 'quantization' })).toThrow(/x needs 800 bytes/);
      expect(() =>
        dispatchWeightOnlyGemv(device, device.createCommandEncoder(), scratch, {
          codes: haar.codes, codeLayout: haar.codeLayout ?? undefined, columnScales: haar.columnScales, rowScales: haar.rowScales, x, y,
          n: 100, outputs: 3, rowVec4s: haar.rowVec4s + 1,
        }),
      ).toThrow(/codes needs/);
      // Argument objects are strict: `{ vector: 3 }` computed one vector and left the rest of y unwritten.
      expect(() => haar.dispatch(device.createCommandEncoder(), scratch, { x, y, inputBasis: 'quantization', vector: 3 } as never)).toThrow(
        /WeightOnlyGpuMatrix\.dispatch arguments: unknown option 'vector' \(did you mean 'vectors'\?\)/,
      );
      expect(() =>
        dispatchWeightOnlyGemv(device, device.createCommandEncoder(), scratch, {
          codes: haar.codes, codeLayout: haar.codeLayout ?? undefined, columnScales: haar.columnScales, rowScales: haar.rowScales, x, y,
          n: 100, outputs: 3, rowVec4s: haar.rowVec4s, vectorblock: 4,
        } as never),
      ).toThrow(/dispatchWeightOnlyGemv arguments: unknown option 'vectorblock' \(did you mean 'vectorBlock'\?\)/);
      expect(() => uploadWeightOnly(device, q, { lable: 'layer' } as never)).toThrow(/uploadWeightOnly options: unknown option 'lable'/);
      await expect(weightOnlyGemv(device, q, new Float32Array(16), { vectorblock: 4 } as never)).rejects.toThrow(/weightOnlyGemv options: unknown option/);
      await expect(weightOnlyGemm(device, q, { rows: 16, cols: 2, data: new Float32Array(32) }, { maxBindingByte: 256 } as never)).rejects.toThrow(
        /weightOnlyGemm options: unknown option 'maxBindingByte'/,
      );
    } finally {
      haar.destroy();
      scratch.destroy();
      x.destroy();
      y.destroy();
    }
  });
});

/*
 * The int8-input path (`int8Inputs`): x̂ (shaders/weightonly_inputs_i8.wgsl) against its CPU twin
 * `weightOnlyInputsI8`, and the GEMV on x̂ (shaders/weightonly_codes_fixed_i8.wgsl) against its twin
 * `weightOnlyGemvI8Reference` on the same x̂ and against the CPU decode.
 * Tolerances (derived): the GEMV on x̂ forms each word's Σ z·level exactly, then one fused
 * multiply-add per word along the lane's chain (its words), 7 + 7 additions and ·t: K = words per lane
 * + 16 roundings of each term, γ_K·Σ|terms| (`magnitudes`). Against Ŵ·x: x̂·scale is within
 * scale·(½ + 10⁻⁴) of x' = s·x̃ per input (shaders/int8_group.wgsl), so y moves by at most
 * |t_j|·Σ_w scale_w·(½ + 10⁻⁴)·Σ_t |z|, beside the f32 path's own tolerance (`reference`).
 */
describe.skipIf(noGpu !== undefined)('weight-only GEMV with int8 inputs on the GPU', () => {
  const suite = contextOnTestDevice();
  let device: GPUDevice;
  beforeAll(() => {
    device = suite.context.device;
  });

  /** The records x̂ of X̃ (`vectors` columns of n, f32 or f16 bits) for q's column scales and codes of `bits` bits, made on the GPU. */
  async function gpuRecords(q: WeightOnlyQuantized, bits: FixedCodeBits, xRotated: Float32Array | Uint16Array, vectors: number, maxBindingBytes?: number): Promise<Uint32Array> {
    const scratch = new GpuScratch(device);
    const x = createBufferWithData(device, 'int8 inputs test x̃', xRotated, STORAGE_USAGE);
    const scales = createBufferWithData(device, 'int8 inputs test s', q.columnScales, STORAGE_USAGE);
    try {
      return await withValidation(device, 'int8 inputs test', async () => {
        const encoder = device.createCommandEncoder({ label: 'int8 inputs test' });
        const inputFormat = xRotated instanceof Uint16Array ? 'f16' : 'f32';
        const records = dispatchWeightOnlyInputsI8(device, encoder, scratch, { x, inputFormat, columnScales: scales, n: q.n, codeBits: bits, vectors, ...(maxBindingBytes === undefined ? {} : { maxBindingBytes }) });
        device.queue.submit([encoder.finish()]);
        return new Uint32Array(await readBuffer(device, records.inputs, weightOnlyInputsI8Bytes(q.n, bits, vectors)));
      });
    } finally {
      scratch.destroy();
      x.destroy();
      scales.destroy();
    }
  }

  /** Y of `matrix.dispatch` with `int8Inputs` on x (in `inputBasis`). */
  async function int8Y(matrix: WeightOnlyGpuMatrix, x: Float32Array, vectors: number, options: Omit<WeightOnlyMatrixGemvArgs, 'x' | 'y' | 'vectors'>): Promise<Float32Array> {
    const bytes = 4 * matrix.outputs * vectors;
    const xBuffer = createBufferWithData(device, 'int8 test x', x, STORAGE_USAGE);
    const y = createBuffer(device, 'int8 test y', bytes, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      return await withValidation(device, 'int8 test', async () => {
        const encoder = device.createCommandEncoder({ label: 'int8 test' });
        matrix.dispatch(encoder, scratch, { ...options, x: xBuffer, y, vectors });
        device.queue.submit([encoder.finish()]);
        return new Float32Array(await readBuffer(device, y, bytes));
      });
    } finally {
      scratch.destroy();
      xBuffer.destroy();
      y.destroy();
    }
  }

  /**
   * Records equal word for word. lavapipe divides as the twin does; a GPU whose f32 division is within
   * 2.5 ULP (WGSL's allowance) may round a level at a near-tie the other way, which would show here.
   */
  function expectRecordsMatch(got: Uint32Array, expected: Uint32Array): void {
    expect(got.length).toBe(expected.length);
    let differing = 0;
    for (let k = 0; k < got.length; k++) if (got[k] !== expected[k]) differing++;
    expect(differing).toBe(0);
  }

  const bitsCases = [1, 2, 3, 4, 5, 6, 7, 8] as const;

  it.each(bitsCases)('%i-bit codes: x̂ equals its CPU twin (n = 1, 37, 600; 1 and 3 vectors; f32 and f16 x̃, and f16 subnormals)', async (bits) => {
    for (const [n, vectors] of [[1, 1], [37, 3], [600, 1]] as const) {
      const q = craftedMatrix(Array.from({ length: n }, () => bits), 3, 10 * bits + n);
      const x = activations(n, vectors, bits + n);
      expectRecordsMatch(await gpuRecords(q, bits, x, vectors), weightOnlyInputsI8(x, q.columnScales, n, bits, vectors));
      const halves = Uint16Array.from(x, (v) => float16Bits(v));
      const widened = toFloat32Matrix({ rows: n, cols: vectors, data: halves }).data;
      expectRecordsMatch(await gpuRecords(q, bits, halves, vectors), weightOnlyInputsI8(widened, q.columnScales, n, bits, vectors));
      // Subnormal halves only (|x̃| < 2^-14, ±0 among them), which WGSL lets unpack2x16float read as
      // ±0: every group's levels come from them, so one read as 0 changes its record.
      const subnormal = Uint16Array.from(x, (v, k) => (v < 0 ? 0x8000 : 0) | ((181 * k + 7) % 0x400));
      const subnormalValues = toFloat32Matrix({ rows: n, cols: vectors, data: subnormal }).data;
      expectRecordsMatch(await gpuRecords(q, bits, subnormal, vectors), weightOnlyInputsI8(subnormalValues, q.columnScales, n, bits, vectors));
    }
  });

  it('f16 x̃ split across bindings by vectors (maxBindingBytes): x̂ equals its CPU twin', async () => {
    const [n, vectors, bits] = [64, 5, 4] as const;
    const q = craftedMatrix(Array.from({ length: n }, () => bits), 3, 41);
    const halves = Uint16Array.from(activations(n, vectors, 42), (v) => float16Bits(v));
    const widened = toFloat32Matrix({ rows: n, cols: vectors, data: halves }).data;
    // Room for the column scales (4n bytes) with the alignment slack: two vectors of x̃ (2n bytes each), not five.
    const maxBindingBytes = device.limits.minStorageBufferOffsetAlignment - 4 + 4 * n;
    expectRecordsMatch(await gpuRecords(q, bits, halves, vectors, maxBindingBytes), weightOnlyInputsI8(widened, q.columnScales, n, bits, vectors));
  });

  const gemvCases = bitsCases.flatMap((bits) =>
    (['packed', 'plain'] as const).map((dotPath, k) => ({ bits, dotPath, n: [37, 600, 1201][(bits + k) % 3] as number, outputs: [11, 9, 1][(bits + k) % 3] as number, vectors: 1 + ((bits + k) % 2) * 2 })),
  );

  it.each(gemvCases)('$bits-bit codes, $dotPath dot: n = $n, $outputs outputs, $vectors vectors (several words per lane at 600 and 1201): equals its twin on the same x̂, and Ŵ·x within x̂’s rounding', async ({ bits, dotPath, n, outputs, vectors }) => {
    const rowScales = Float32Array.from({ length: outputs }, (_, j) => (j % 2 === 0 ? 0.75 : -1.5));
    const q = craftedMatrix(Array.from({ length: n }, () => bits), outputs, bits + 7 * n, { rowScales, rotation: 'none' });
    const matrix = uploadWeightOnly(device, q, { layout: 'fixed' });
    try {
      expect(matrix.codeBits).toBe(bits);
      const x = activations(n, vectors, 3 * bits + n);
      const got = await int8Y(matrix, x, vectors, { int8Inputs: dotPath });
      const records = await gpuRecords(q, bits, x, vectors);
      const twin = weightOnlyGemvI8Reference(q, bits, records, vectors);
      const rowWords = 4 * fixedRowVec4s(n, bits);
      const roundings = Math.ceil(rowWords / 64) + 16;
      const decoded = reference(q, x, vectors, bits);
      const recordWords = weightOnlyI8RecordWords(bits);
      const fields = Math.floor(32 / bits);
      for (let v = 0; v < vectors; v++) {
        for (let j = 0; j < outputs; j++) {
          const k = v * outputs + j;
          expect(Math.abs((got[k] as number) - (twin.y[k] as number)), `twin, output ${j}, vector ${v}`).toBeLessThanOrEqual(gamma(roundings) * (twin.magnitudes[k] as number) + 1e-30);
          // x̂'s rounding: ½ + 10⁻⁴ of each group's scale per input, times |z| and |t|.
          let rounding = 0;
          for (let w = 0; w < rowWords; w++) {
            const scale = new Float32Array(new Uint32Array([records[(v * rowWords + w) * recordWords + weightOnlyI8ByteWords(bits)] as number]).buffer)[0] as number;
            let codes = 0;
            for (let t = 0; t < fields && t * rowWords + w < n; t++) codes += Math.abs(q.codes[j * n + t * rowWords + w] as number);
            rounding += scale * (0.5 + 1e-4) * codes;
          }
          rounding *= Math.abs(rowScales[j] as number);
          expect(Math.abs((got[k] as number) - (decoded.y[k] as number)), `Ŵ·x, output ${j}, vector ${v}`).toBeLessThanOrEqual((decoded.tolerance[k] as number) + rounding + gamma(roundings) * (twin.magnitudes[k] as number));
        }
      }
    } finally {
      matrix.destroy();
    }
  });

  it.each([42, 46])('tiny column scales with large row scales (s = 2^−100, t = 2^16), x ≈ 2^−%i: within the bound of x̂’s rounding (max|s·x̃| was subnormal: 5–18 times it, then y = 0)', async (kx) => {
    const bits = 4;
    const q = tinyColumnScales();
    const { n, outputs, codes } = q;
    const [s, t] = [TINY_SCALES.s, TINY_SCALES.t];
    const matrix = uploadWeightOnly(device, q, { layout: 'fixed' });
    try {
      const x = Float32Array.from(gaussianMatrix(n, 1, 9).data, (v) => v * 2 ** -kx);
      const got = await int8Y(matrix, x, 1, { int8Inputs: 'plain' });
      const rowWords = 4 * fixedRowVec4s(n, bits);
      const fields = Math.floor(32 / bits);
      const roundings = Math.ceil(rowWords / 64) + 16;
      for (let j = 0; j < outputs; j++) {
        let exact = 0;
        let magnitude = 0;
        for (let i = 0; i < n; i++) {
          const term = t * (codes[j * n + i] as number) * s * (x[i] as number);
          exact += term;
          magnitude += Math.abs(term);
        }
        // x̂'s rounding per word w (inputs w, w + rowWords, …): (½ + 10⁻⁴)·max|s·x̃|/127 per input, times |z| and |t|.
        let rounding = 0;
        for (let w = 0; w < rowWords; w++) {
          let largest = 0;
          let codeSum = 0;
          for (let f = 0; f < fields && f * rowWords + w < n; f++) {
            largest = Math.max(largest, Math.abs(s * (x[f * rowWords + w] as number)));
            codeSum += Math.abs(codes[j * n + f * rowWords + w] as number);
          }
          rounding += (0.5 + 1e-4) * (largest / 127) * codeSum * t;
        }
        expect(Math.abs((got[j] as number) - exact), `output ${j}`).toBeLessThanOrEqual(rounding + 2 * gamma(roundings) * magnitude + (roundings + 2) * 2 ** -149);
      }
    } finally {
      matrix.destroy();
    }
  });

  it.each([
    ['rtn', 4, true],
    ['gptq', 3, true],
    ['watersic', 2, false],
  ] as const)('%s at rate %i (rotate %s): the GPU rotation feeds x̂ bit for bit as the host rotation does, and y is within 10⁻³ NMSE of the f32-input GEMV', async (method, rate, rotate) => {
    const n = 256;
    const q = quantizeWeights(gaussianMatrix(n, 96, 17), spreadSpectrumCovariance(n, 2, 3).sigma, { method, rate, rotate });
    const matrix = uploadWeightOnly(device, q, { layout: 'fixed' });
    try {
      expect(matrix.codeBits).not.toBe('packed');
      const x = activations(n, 2, 41);
      const onHost = matrix.rotateOnHost(x, 2);
      const fromOriginal = await int8Y(matrix, x, 2, { int8Inputs: 'packed' });
      const fromRotated = await int8Y(matrix, onHost, 2, { int8Inputs: 'packed', inputBasis: 'quantization' });
      expect(Array.from(fromOriginal)).toEqual(Array.from(fromRotated));
      const f32 = (await weightOnlyGemm(device, q, { rows: n, cols: 2, data: x }, { layout: 'fixed' })).data;
      // x̂'s rounding alone: ≈ 10⁻⁵ on Gaussian x (a scale per ≤ 32 inputs).
      const nmse = relativeSquaredError(fromOriginal, f32);
      expect(nmse).toBeLessThan(1e-3);
      expect(nmse).toBeGreaterThan(0);
    } finally {
      matrix.destroy();
    }
  });

  it('work split over several bindings (outputs and vectors) gives the same bytes as one binding', async () => {
    const maxBindingBytes = Math.max(1024, 4 * device.limits.minStorageBufferOffsetAlignment);
    const q = quantized(128, 65, { method: 'rtn', rotate: true });
    const x = { rows: 128, cols: 5, data: activations(128, 5, 3) };
    const whole = await weightOnlyGemm(device, q, x, { layout: 'fixed', int8Inputs: 'packed' });
    const split = await weightOnlyGemm(device, q, x, { layout: 'fixed', int8Inputs: 'packed', maxBindingBytes });
    expect(Array.from(split.data)).toEqual(Array.from(whole.data));
    // The split really splits: 65 outputs of codes and 5 vectors of x̂ exceed one such binding.
    const bits = weightOnlyCodeBits(q, 'fixed');
    expect(bits).not.toBe('packed');
    expect(16 * fixedRowVec4s(128, bits as FixedCodeBits) * 65).toBeGreaterThan(maxBindingBytes);
  });

  it('a non-finite x̃ entry makes its vector NaN (never a finite guess), the other vectors unchanged; a zero x gives exact zeros', async () => {
    const n = 64;
    const q = craftedMatrix(Array.from({ length: n }, () => 4), 5, 3);
    const matrix = uploadWeightOnly(device, q, { layout: 'fixed' });
    try {
      const x = activations(n, 3, 5);
      const clean = await int8Y(matrix, x, 3, { int8Inputs: 'plain', inputBasis: 'quantization' });
      const poisoned = Float32Array.from(x);
      poisoned[n + 17] = Number.POSITIVE_INFINITY;
      const y = await int8Y(matrix, poisoned, 3, { int8Inputs: 'plain', inputBasis: 'quantization' });
      expect(Array.from(y.subarray(5, 10)).every(Number.isNaN)).toBe(true);
      expect(Array.from(y.subarray(0, 5))).toEqual(Array.from(clean.subarray(0, 5)));
      expect(Array.from(y.subarray(10, 15))).toEqual(Array.from(clean.subarray(10, 15)));
      expect(Array.from(await int8Y(matrix, new Float32Array(n), 1, { int8Inputs: 'packed' }))).toEqual([0, 0, 0, 0, 0]);
    } finally {
      matrix.destroy();
    }
  });

  it('refuses what it cannot do, by name', async () => {
    const q = craftedMatrix(Array.from({ length: 40 }, () => 4), 3, 9);
    const packed = uploadWeightOnly(device, q, { layout: 'packed' });
    const fixed = uploadWeightOnly(device, q, { layout: 'fixed' });
    const scratch = new GpuScratch(device);
    const x = createBuffer(device, 'refusal x', 4 * 40, STORAGE_USAGE);
    const y = createBuffer(device, 'refusal y', 12, STORAGE_USAGE);
    try {
      expect(() => packed.dispatch(device.createCommandEncoder(), scratch, { x, y, int8Inputs: 'packed' })).toThrow(/fixed-width layout .* upload it with layout 'fixed'/);
      expect(() => fixed.dispatch(device.createCommandEncoder(), scratch, { x, y, int8Inputs: 'fast' as 'packed' })).toThrow(/int8Inputs/);
      const encoder = device.createCommandEncoder();
      const fixedArgs = { codes: fixed.codes, codeBits: fixed.codeBits, columnScales: fixed.columnScales, rowScales: fixed.rowScales, y, n: 40, outputs: 3, rowVec4s: fixed.rowVec4s };
      const inputsI8 = dispatchWeightOnlyInputsI8(device, encoder, scratch, { x, columnScales: fixed.columnScales, n: 40, codeBits: 4, vectors: 1 });
      // @ts-expect-error int8Dot without inputsI8 does not compile (WeightOnlyGemvArgs)
      expect(() => dispatchWeightOnlyGemv(device, encoder, scratch, { ...fixedArgs, x, int8Dot: 'plain' })).toThrow(/inputsI8 and int8Dot go together/);
      // @ts-expect-error x and inputsI8 together do not compile
      expect(() => dispatchWeightOnlyGemv(device, encoder, scratch, { ...fixedArgs, x, inputsI8, int8Dot: 'plain' })).toThrow(/give x .* or inputsI8 .*, one of them/);
      // Records made for other codes or other column scales would multiply into a wrong y without a sign.
      expect(() =>
        dispatchWeightOnlyGemv(device, encoder, scratch, { codes: packed.codes, codeLayout: packed.codeLayout ?? undefined, columnScales: packed.columnScales, rowScales: packed.rowScales, y, n: 40, outputs: 3, rowVec4s: packed.rowVec4s, inputsI8, int8Dot: 'plain' }),
      ).toThrow(/inputsI8 were made for 4-bit codes, n = 40, 1 vectors; this call has packed codes/);
      const eightBit = uploadWeightOnly(device, craftedMatrix(Array.from({ length: 40 }, () => 8), 3, 10), { layout: 'fixed' });
      expect(() => dispatchWeightOnlyGemv(device, encoder, scratch, { codes: eightBit.codes, codeBits: eightBit.codeBits, columnScales: eightBit.columnScales, rowScales: eightBit.rowScales, y, n: 40, outputs: 3, rowVec4s: eightBit.rowVec4s, inputsI8, int8Dot: 'plain' })).toThrow(
        /inputsI8 were made for 4-bit codes, n = 40, 1 vectors; this call has 8-bit codes/,
      );
      expect(() => dispatchWeightOnlyGemv(device, encoder, scratch, { ...fixedArgs, columnScales: packed.columnScales, inputsI8, int8Dot: 'plain' })).toThrow(/other column scales/);
      expect(() => dispatchWeightOnlyGemv(device, encoder, scratch, { ...fixedArgs, vectors: 2, inputsI8, int8Dot: 'plain' })).toThrow(/made for 4-bit codes, n = 40, 1 vectors; this call has 4-bit codes, n = 40, 2 vectors/);
      eightBit.destroy();
      await expect(weightOnlyGemv(device, q, new Float32Array(40), { layout: 'packed', int8Inputs: 'plain' })).rejects.toThrow(/fixed-width layout/);
    } finally {
      scratch.destroy();
      packed.destroy();
      fixed.destroy();
      x.destroy();
      y.destroy();
    }
  });
});
