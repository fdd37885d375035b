import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBuffer } from '../../src/gpu/buffers.js';
import { runAndRead } from '../../src/gpu/runAndRead.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import { dispatchEpilogue, dispatchF16ToF32 } from '../../src/gpu/kernels/activationIo.js';
import { dispatchE8InputsI8, type E8InputsOperand } from '../../src/gpu/kernels/e8ResidueGemvI8.js';
import { f32Gemv } from '../../src/gpu/kernels/f32Gemv.js';
import { dispatchInputsI8, inputGroupsOf, type InputsI8Operand } from '../../src/gpu/kernels/inputsI8.js';
import { e8InputsBytes, e8InputsScalesFirst, inputsI8Bytes, inputsI8ScalesFirst } from '../../src/gpu/kernels/inputsI8Layout.js';
import { dispatchProductEpilogue } from '../../src/gpu/kernels/productEpilogue.js';
import { weightOnlyGemm, weightOnlyGemv, type WeightOnlyGemvOptions } from '../../src/gpu/kernels/weightOnlyGemv.js';
import { UniversalGemvI8Weights } from '../../src/gpu/kernels/universalGemvI8.js';
import { universalGemv } from '../../src/gpu/kernels/universalGemv.js';
import { uploadUniversalMatrix } from '../../src/gpu/universalOperand.js';
import { universalPairsOnGpu } from '../../src/gpu/kernels/universalPairs.js';
import { dispatchWeightOnlyInputsI8, weightOnlyInputsI8, weightOnlyInputsI8Bytes } from '../../src/gpu/kernels/weightOnlyInputsI8.js';
import { GpuEngine } from '../../src/gpu/engine.js';
import { dotPathFor } from '../../src/gpu/kernels/e8Matmul.js';
import { QuantizedLinear, type LinearWeight } from '../../src/gpu/quantizedLinear.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { pairRadixBits, universalPairColumns } from '../../src/quantize/universalPairs.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { LatticeQuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { float16Bits, fromFloat16Bits } from '../../src/scalar/floatFormats.js';
import { quantizeWeights } from '../../src/weightonly/index.js';
import { spreadSpectrumCovariance } from '../../src/weightonly/syntheticCovariance.js';
import { asUniversal } from './latticeTestSupport.js';
import { gpuUnavailableReason, testDevice } from './gpuTestDevice.js';

/*
 * Kernels that index their work by a 2-D workgroup grid (workgroupGrid: x · y workgroups where one
 * dimension holds at most maxComputeWorkgroupsPerDimension) flatten it as y · grid.x + x. At the real
 * limit (65535) the tests' shapes never need a second row, so a kernel that read workgroup.x alone
 * passed every other test, and would give a wrong (partly unwritten) answer on a layer with more
 * workgroups than one dimension holds. Here the device is real (Dawn on the test adapter) but reports
 * a limit of 4 workgroups per dimension to the library (7 for the one layer that needs more than 16
 * workgroups in a dispatch), so every grid below has several rows.
 * Twins: exact sums by hand (f32 GEMV), the CPU pair forms, x̂ records, f16 → f32 and f32 epilogue sums
 * bit for bit, and for the rest the same call on a device with the adapter's limits, bit for bit
 * (the kernels' own tests check that one against its CPU twin).
 * Covered (a kernel reading the workgroup's x alone fails here, checked): column_gemv_plain and
 * column_gemv_subgroup (where the adapter has subgroups), universal_pairs, weightonly_inputs_i8,
 * universal_escape_nibbles, lattice_encode, lattice_dequantize, universal_encode, universal_compact,
 * universal_dequantize, column_prep, hadamard, quad_repack (with it the E8 residue repack),
 * e8_point_repack, gemv_i8_inputs, e8_inputs_i8, weightonly_gemv (every code layout and int8 x̂),
 * activation_io (its three entries), product_epilogue and universal_gemv_finish's finish (its call_sums:
 * test/gpu/largeSplits.test.ts).
 */

const noGpu = await gpuUnavailableReason();
const WORKGROUP_LIMIT = 4;

describe.skipIf(noGpu !== undefined)(`kernels on a device reporting ${WORKGROUP_LIMIT} workgroups per dispatch dimension (2-D grids)`, () => {
  let real: GpuContext;
  let small: GpuContext;
  /** A storage binding limit `small` reports while set (for one call that splits its work by it). */
  let bindingLimit: number | undefined;
  /** The workgroups per dimension `small` reports: WORKGROUP_LIMIT but while a test that needs a larger grid sets more. */
  let workgroupLimit = WORKGROUP_LIMIT;
  beforeAll(async () => {
    real = await testDevice();
    small = await testDevice();
    const device = small.device;
    const limits = new Proxy(device.limits, {
      get: (target, name) =>
        name === 'maxComputeWorkgroupsPerDimension' ? workgroupLimit : name === 'maxStorageBufferBindingSize' && bindingLimit !== undefined ? bindingLimit : Reflect.get(target, name),
    });
    Object.defineProperty(device, 'limits', { value: limits, configurable: true });
  });
  afterAll(() => {
    real?.device.destroy();
    small?.device.destroy();
  });

  /** Y of a QuantizedLinear with int8 inputs on W (uploaded to `context`'s device) for X (its columns the tokens). */
  async function int8LayerY(context: GpuContext, w: LatticeQuantizedMatrix, x: { readonly cols: number; readonly data: Float32Array }): Promise<Float32Array> {
    const { device } = context;
    const tokens = x.cols;
    const out = w.cols;
    const weight = uploadLatticeMatrix(device, w);
    const layer = QuantizedLinear.create(device, weight as LinearWeight, { maxTokens: tokens, int8Inputs: dotPathFor(context.features) });
    try {
      return new Float32Array(
        await runAndRead(device, 'grid test layer', 4 * out * tokens, (run) => {
          const y = run.upload('grid test y', new Float32Array(out * tokens).fill(Number.NaN));
          layer.record(run.encoder, run.upload('grid test x', x.data), y, { tokens });
          return y;
        }),
      );
    } finally {
      layer.destroy();
      weight.destroy();
    }
  }

  /** Where `got` first differs from `expected` (word index), or −1: one line in a failure, not two arrays of thousands of words. */
  function firstDifference(got: ArrayLike<number>, expected: ArrayLike<number>): number {
    if (got.length !== expected.length) return Math.min(got.length, expected.length);
    for (let i = 0; i < got.length; i++) if (!Object.is(got[i], expected[i])) return i;
    return -1;
  }

  // 65 columns in workgroups of 8 (COLUMN_GEMV_COLUMNS): 9 workgroups, a 3 × 3 grid.
  it('f32 column GEMV (shaders/column_gemv_plain.wgsl and the subgroup entry), 100 × 65: exact on small integers', async () => {
    const rng = new Rng(5);
    const n = 100;
    const cols = 65;
    const w = { rows: n, cols, data: Float32Array.from({ length: n * cols }, () => rng.nextInt(17) - 8) };
    const x = Float32Array.from({ length: n }, () => rng.nextInt(9) - 4);
    // |Σ| ≤ 100·8·4 = 3200: every partial sum is an exact f32 in any order.
    const expected = Array.from({ length: cols }, (_, j) => {
      let sum = 0;
      for (let i = 0; i < n; i++) sum += (w.data[j * n + i] as number) * (x[i] as number);
      return sum;
    });
    for (const subgroups of small.features.subgroups ? [false, true] : [false]) {
      expect(Array.from(await f32Gemv(small.device, w, x, { subgroups })), `subgroups ${subgroups}`).toEqual(expected);
    }
  });

  // One workgroup per column: 70 columns in ranges of at most 4 · 4 (the grid's capacity).
  it('universal pair forms (shaders/universal_pairs.wgsl), d3-q6, 40 × 70: words, factors and exponents = universalPairColumns', async () => {
    const q = asUniversal(quantize(gaussianMatrix(40, 70, 3), { scheme: 'd3-q6', seed: 4, nonce: 5 }));
    const radixBits = pairRadixBits(q.scheme.q, q.scheme.q);
    const gpuQ = uploadLatticeMatrix(small.device, q);
    try {
      const got = await universalPairsOnGpu(small.device, gpuQ, { radixBits });
      const twin = universalPairColumns(q, radixBits);
      expect(got.words).toEqual(twin.words);
      expect(got.factors).toEqual(twin.factors);
      expect(got.exponents).toEqual(twin.exponents);
    } finally {
      gpuQ.destroy();
    }
  });

  // 8-bit codes: 4 per word, 152 words per vector, 3 vectors: 456 records in workgroups of 64, a 4 × 2 grid.
  it('weight-only x̂ records (shaders/weightonly_inputs_i8.wgsl), n = 600, 3 vectors: = weightOnlyInputsI8', async () => {
    const { device } = small;
    const n = 600;
    const vectors = 3;
    const rng = new Rng(9);
    const xRotated = Float32Array.from({ length: n * vectors }, () => rng.nextGaussian());
    const columnScales = Float32Array.from({ length: n }, () => 2 ** (rng.nextInt(5) - 2));
    const got = new Uint32Array(
      await runAndRead(device, 'grid test x̂', weightOnlyInputsI8Bytes(n, 8, vectors), (run) =>
        dispatchWeightOnlyInputsI8(device, run.encoder, run.scratch, { x: run.upload('grid test x̃', xRotated), columnScales: run.upload('grid test s', columnScales), n, codeBits: 8, vectors }).inputs,
      ),
    );
    expect(Array.from(got)).toEqual(Array.from(weightOnlyInputsI8(xRotated, columnScales, n, 8, vectors)));
  });

  // d3-q6, unrotated with a spike per column (escapes in every column): the escape repack
  // (shaders/universal_escape_nibbles.wgsl) covers 70 columns of 25 code words (100 blocks) in
  // workgroups of 256: 7 workgroups, a 4 × 2 grid. With a binding limit of 752 bytes instead it repacks
  // ranges of 5 columns, which start at odd code words (125, 375, …), so that a range's first half-word
  // is the odd half of a nibble word shared with the range before.
  it('int8-input universal weights (escape nibbles), spiky d3-q6 300 × 70, on a 2-D grid and in ranges starting at odd code words: the nibbles of the device with the real limits', async () => {
    const w = gaussianMatrix(300, 70, 11);
    for (let j = 0; j < w.cols; j++) w.data[j * w.rows + ((7 * j) % w.rows)] = 40;
    const q = asUniversal(quantize(w, { scheme: 'd3-q6', seed: 2, nonce: 3, rotate: false }));
    expect(q.escapes.some((id) => id !== 0)).toBe(true);
    /** The nibbles `device` makes, reporting `limit` as its binding limit while it repacks them. */
    const nibbles = async (device: GPUDevice, limit?: number): Promise<Uint32Array> => {
      const gpuQ = uploadLatticeMatrix(device, q);
      bindingLimit = limit;
      let weights: UniversalGemvI8Weights | undefined;
      try {
        weights = UniversalGemvI8Weights.create(device, gpuQ);
        bindingLimit = undefined;
        return new Uint32Array(await readBuffer(device, weights.nibbles, 4 * weights.nibbleWords));
      } finally {
        bindingLimit = undefined;
        weights?.destroy();
        gpuQ.destroy();
      }
    };
    const expected = Array.from(await nibbles(real.device));
    expect(Array.from(await nibbles(small.device))).toEqual(expected);
    expect(Array.from(await nibbles(small.device, 752))).toEqual(expected);
  });

  // The whole engine, whichever kernels a call takes (GPU quantize with its rotation and column prep,
  // dequantize, the GEMV, the product): a grid of several rows must give the bits of one row. At 2000 × 14
  // a dispatch of one workgroup per column is a 4 × 4 grid, and the deterministic dequantize's one
  // invocation per code word (≈ 2300 of them, 256 a workgroup: 10 workgroups) too; the engine refuses more than a
  // grid holds (16 here, 65535² on a real device).
  it.each(['d3-q6', 'e8-q16', 'd3-q6-deterministic', 'e8-3bit'] as const)(
    'GpuEngine (%s, 2000 × 14): quantize, dequantize, matvec and matmulAT give the bits of the device with the real limits',
    async (scheme) => {
      const a = gaussianMatrix(2000, 14, 21);
      const b = gaussianMatrix(2000, 6, 22);
      const x = gaussianMatrix(2000, 3, 23);
      /** The bytes of each part of the call's results, by name. */
      const run = async (context: GpuContext): Promise<Map<string, Buffer>> => {
        const engine = GpuEngine.create(context);
        const dither = (nonce: number) => (scheme.endsWith('-deterministic') ? {} : { nonce });
        const qa = await engine.quantize(a, { scheme, seed: 3, ...dither(4) });
        const qb = await engine.quantize(b, { scheme, seed: 3, ...dither(5) });
        const bytes = (view: ArrayBufferView): Buffer => Buffer.from(view.buffer, view.byteOffset, view.byteLength);
        try {
          const codes = await qa.read();
          return new Map([
            ['codes', bytes(Uint32Array.from('codes' in codes ? codes.codes : []))],
            ['norms', bytes(Float64Array.from(codes.norms))],
            ['dequantized', bytes((await engine.dequantize(qa)).data)],
            ['matvec', bytes((await engine.matvec(qa, x)).data)],
            ['matmulAT', bytes((await engine.matmulAT(qa, qb)).data)],
          ]);
        } finally {
          qa.destroy();
          qb.destroy();
          engine.destroy();
        }
      };
      const [expected, got] = [await run(real), await run(small)];
      for (const [part, e] of expected) {
        expect(e.length, part).toBeGreaterThan(0);
        expect(got.get(part)?.equals(e), part).toBe(true);
      }
    },
    120_000,
  );

  // The int8-input layers (the rotation, the quad and point repacks, the int8 GEMVs): 6000 inputs, so
  // that the repacks (one invocation per quad or point, 256 a workgroup) need a 2-D grid; quad_repack or
  // e8_point_repack reading the workgroup's x alone fails here. At 8 tokens the rotation rounds x̃ to
  // int8 in its own last pass (hadamard.wgsl, on a 4 × 2 grid), so the rounding kernels of their own
  // (gemv_i8_inputs, e8_inputs_i8) do not run here: the two tests after the next cover them.
  // (The universal D3 layer at 2000: at 6000 its escape repack needs 28 workgroups, more than the 16 a
  // 4 × 4 grid holds, which it refuses by name; the next test runs it on a larger grid.)
  it.each([
    ['d3-q6', 2000],
    ['e8-4bit', 6000],
    ['d3-q6-deterministic', 6000],
    ['e8-q16-deterministic', 6000],
  ] as const)(
    'QuantizedLinear with int8Inputs (%s, %i inputs, 14 outputs, 8 tokens) gives the bits of the device with the real limits',
    async (scheme, n) => {
      const w = quantize(gaussianMatrix(n, 14, 31), { scheme, seed: 6 }) as LatticeQuantizedMatrix;
      const x = gaussianMatrix(n, 8, 32);
      const expected = await int8LayerY(real, w, x);
      expect(expected.some(Number.isNaN)).toBe(false);
      expect(Buffer.from((await int8LayerY(small, w, x)).buffer).equals(Buffer.from(expected.buffer))).toBe(true);
    },
    120_000,
  );

  // The universal D3 layer at 6000 inputs, which the 4 × 4 grid refuses (its escape repack needs 28
  // workgroups), on `small` reporting 7 workgroups per dimension (8 would hold the rotation's 8
  // workgroups in one row): the escape repack is a 7 × 4 grid, the rotation with x̂ rounded in its pass
  // (m = 20) a 4 × 2 one, the GEMV one workgroup. universal_escape_nibbles or hadamard's
  // linear_workgroup reading the workgroup's x alone fails here.
  it('QuantizedLinear with int8Inputs (d3-q6, 6000 inputs, 14 outputs, 8 tokens) on a device reporting 7 workgroups per dimension gives the bits of the device with the real limits', async () => {
    const w = quantize(gaussianMatrix(6000, 14, 31), { scheme: 'd3-q6', seed: 6 }) as LatticeQuantizedMatrix;
    const x = gaussianMatrix(6000, 8, 32);
    const expected = await int8LayerY(real, w, x);
    expect(expected.some(Number.isNaN)).toBe(false);
    workgroupLimit = 7;
    try {
      expect(Buffer.from((await int8LayerY(small, w, x)).buffer).equals(Buffer.from(expected.buffer))).toBe(true);
    } finally {
      workgroupLimit = WORKGROUP_LIMIT;
    }
  }, 120_000);

  /**
   * The x̂ records that `round` writes for x̃ = `x` (`rhs` columns) on `device` and on the device with the
   * real limits: the bits must agree. Every group holds Gaussian entries, so every scale is nonzero: a
   * group the dispatch left unwritten (zero) differs from the real device's, and the check that the real
   * device wrote them all makes that visible.
   */
  async function checkInputRecords(
    label: string,
    x: Float32Array,
    layout: { readonly bytes: number; readonly scalesFirst: number; readonly scales: number },
    round: (device: GPUDevice, encoder: GPUCommandEncoder, scratch: GpuScratch, xRotated: GPUBuffer) => GPUBuffer,
  ): Promise<void> {
    const run = async (device: GPUDevice): Promise<Uint32Array> =>
      new Uint32Array(await runAndRead(device, label, layout.bytes, (recording) => round(device, recording.encoder, recording.scratch, recording.upload('grid test x̃', x))));
    const expected = await run(real.device);
    expect(expected.subarray(layout.scalesFirst, layout.scalesFirst + layout.scales).every((bits) => bits !== 0)).toBe(true);
    expect(firstDifference(await run(small.device), expected), 'first differing word').toBe(-1);
  }

  // x̃ rounded to int8 in groups of 12 in a dispatch of its own (what the int8-input D3 layers record
  // where the rotation does not round in its last pass: an unrotated W, a rotation spread over several
  // passes, x̃ rotated for another layer): one invocation per (group, right-hand side), 256 a
  // workgroup. 50 groups × 21 right-hand sides = 1050 invocations, 5 workgroups, a 3 × 2 grid (the
  // last row partly unused).
  it('x̂ in groups of 12 (shaders/gemv_i8_inputs.wgsl), 600 inputs (590 kept), 21 right-hand sides: the bits of the device with the real limits', async () => {
    const n = 600;
    const rhs = 21;
    const operand: InputsI8Operand = { rows: n, length: n, keptLength: 590, blocksPerColumn: n / 3, rotate: false, seed: 0 };
    const groups = inputGroupsOf(operand);
    const layout = { bytes: inputsI8Bytes(groups, rhs), scalesFirst: inputsI8ScalesFirst(groups, rhs), scales: groups * rhs };
    await checkInputRecords('grid test x̂ (groups of 12)', gaussianMatrix(n, rhs, 41).data, layout, (device, encoder, scratch, xRotated) => dispatchInputsI8(device, encoder, scratch, { w: operand, xRotated, rhs }).inputs);
  });

  // The same for E8's groups of 32 (shaders/e8_inputs_i8.wgsl: one invocation per block of 8, 64 a
  // workgroup, so 16 groups a workgroup): 10 groups × 7 right-hand sides, 5 workgroups, a 3 × 2 grid.
  it('x̂ in groups of 32 (shaders/e8_inputs_i8.wgsl), 320 inputs (300 kept), 7 right-hand sides: the bits of the device with the real limits', async () => {
    const n = 320;
    const rhs = 7;
    const operand: E8InputsOperand = { rows: n, length: n, keptLength: 300, quadsPerColumn: n / 32, rotate: false, seed: 0 };
    const groups = operand.quadsPerColumn;
    const layout = { bytes: e8InputsBytes(groups, rhs), scalesFirst: e8InputsScalesFirst(groups, rhs), scales: groups * rhs };
    await checkInputRecords('grid test x̂ (groups of 32)', gaussianMatrix(n, rhs, 42).data, layout, (device, encoder, scratch, xRotated) => dispatchE8InputsI8(device, encoder, scratch, { w: operand, xRotated, rhs }).inputs);
  });

  // The weight-only GEMV (shaders/weightonly_gemv.wgsl, with each code layout's reader): a workgroup
  // per 8 outputs and block of 1 or 4 vectors. 40 outputs: 5 workgroups for one vector (a 3 × 2
  // grid), 10 for 6 vectors in blocks of 4 (a 4 × 3 grid, the last row partly unused).
  it('weight-only GEMV and GEMM (shaders/weightonly_gemv.wgsl; fixed, packed and int8 x̂), GPTQ 128 × 40 rotated: the bits of the device with the real limits', async () => {
    const n = 128;
    const outputs = 40;
    const q = quantizeWeights(gaussianMatrix(n, outputs, 51), spreadSpectrumCovariance(n, 2, 52).sigma, { method: 'gptq', step: 0.25, rotate: true, seed: 5 });
    const x = gaussianMatrix(n, 6, 53);
    const cases: [string, number, WeightOnlyGemvOptions][] = [
      ['fixed layout', 1, { layout: 'fixed' }],
      ['packed layout', 1, { layout: 'packed' }],
      ['fixed layout', 6, { layout: 'fixed' }],
      ['int8 x̂', 6, { layout: 'fixed', int8Inputs: dotPathFor(small.features) }],
    ];
    for (const [what, vectors, options] of cases) {
      const run = async (device: GPUDevice): Promise<Float32Array> =>
        vectors === 1 ? weightOnlyGemv(device, q, x.data.slice(0, n), options) : (await weightOnlyGemm(device, q, { rows: n, cols: vectors, data: x.data }, options)).data;
      const expected = await run(real.device);
      expect(expected.length, what).toBe(outputs * vectors);
      expect.soft(firstDifference(new Uint32Array((await run(small.device)).buffer), new Uint32Array(expected.buffer)), `${what}, ${vectors} vector${vectors === 1 ? '' : 's'}: first differing output`).toBe(-1);
    }
  });

  // Activation IO (shaders/activation_io.wgsl, one flattening for its three entries): one invocation
  // per value (f16 → f32, the f32 epilogue) or per pair of values (the f16 epilogue), 256 a
  // workgroup: 1500 values, 1100 and 2100 (1050 pairs) are 6, 5 and 5 workgroups, grids of 2 rows.
  // The outputs start as NaN bits, so a value left unwritten differs. Twins: the exact f16 → f32 and
  // f32 sums on the CPU; the f16 epilogue rounds as the device does (within 1 ulp of the CPU's
  // float16Bits on some GPUs), so its twin is the device with the real limits.
  it('activation IO (shaders/activation_io.wgsl): f16 → f32 of 1500 values and the epilogue t + b of 100 × 11 (f32) and 100 × 21 (f16)', async () => {
    const rng = new Rng(61);
    const { device } = small;
    const rows = 100;
    const bias = Float32Array.from({ length: rows }, () => rng.nextGaussian());
    /** `words` words of NaN bits: a dispatch's output, where a value left unwritten shows. */
    const poisoned = (words: number): Uint32Array => new Uint32Array(words).fill(0xffffffff);

    const halves = Uint16Array.from({ length: 1500 }, () => float16Bits(100 * rng.nextGaussian()));
    const got = await runAndRead(device, 'grid test f16 → f32', 4 * halves.length, (run) => {
      const widened = run.upload('grid test f32 x', poisoned(halves.length));
      dispatchF16ToF32(device, run.encoder, run.scratch, { input: run.upload('grid test f16 x', halves), output: widened, count: halves.length });
      return widened;
    });
    expect(firstDifference(new Float32Array(got), Float32Array.from(halves, (h) => fromFloat16Bits(h))), 'f16 → f32: first differing value').toBe(-1);

    /** y = t + b of `columns` columns of `rows` in `format` on `on`, as words. */
    const epilogue = async (on: GPUDevice, t: Float32Array, columns: number, format: 'f32' | 'f16'): Promise<Uint32Array> => {
      const words = format === 'f32' ? t.length : Math.ceil(t.length / 2);
      return new Uint32Array(
        await runAndRead(on, `grid test epilogue (${format})`, 4 * words, (run) => {
          const y = run.upload('grid test y', poisoned(words));
          dispatchEpilogue(on, run.encoder, run.scratch, { input: run.upload('grid test t', t), bias: run.upload('grid test b', bias), rows, columns, output: y, format });
          return y;
        }),
      );
    };
    const t32 = Float32Array.from({ length: rows * 11 }, () => rng.nextGaussian());
    const sums = Float32Array.from(t32, (t, e) => t + (bias[e % rows] as number));
    expect(firstDifference(new Float32Array((await epilogue(device, t32, 11, 'f32')).buffer), sums), 'f32 epilogue: first differing value').toBe(-1);
    const t16 = Float32Array.from({ length: rows * 21 }, () => rng.nextGaussian());
    expect(firstDifference(await epilogue(device, t16, 21, 'f16'), await epilogue(real.device, t16, 21, 'f16')), 'f16 epilogue: first differing word').toBe(-1);
  });

  // The product epilogue (shaders/product_epilogue.wgsl: exponents, mean term, Gram diagonal) on C in
  // place, one invocation per entry, 256 a workgroup: 36 × 36 is 6 workgroups, a 3 × 2 grid, with
  // diagonal entries in both rows. An entry the dispatch missed keeps its value from before.
  it('product epilogue (shaders/product_epilogue.wgsl), centred Gram 36 × 36 with exponents: the bits of the device with the real limits', async () => {
    const rng = new Rng(71);
    const cols = 36;
    const c = Float32Array.from({ length: cols * cols }, () => rng.nextGaussian());
    const side = Float32Array.from({ length: 2 * cols }, () => rng.nextGaussian()); // norms, then means
    const exponents = Int32Array.from({ length: cols }, () => rng.nextInt(9) - 4);
    const run = async (device: GPUDevice): Promise<Uint32Array> =>
      new Uint32Array(
        await runAndRead(device, 'grid test product epilogue', 4 * c.length, (recording) => {
          const [cBuffer, sideBuffer, exponentsBuffer] = [c, side, exponents].map((data) => recording.upload('grid test epilogue', data)) as [GPUBuffer, GPUBuffer, GPUBuffer];
          dispatchProductEpilogue(device, recording.encoder, recording.scratch, {
            c: cBuffer, cOffset: 0, sideA: sideBuffer, sideB: sideBuffer, aCols: cols, bCols: cols, rows: 37, centred: true, gram: true,
            exponents: { a: exponentsBuffer, b: exponentsBuffer },
          });
          return cBuffer;
        }),
      );
    const expected = await run(real.device);
    // Every entry moves (the mean term of Gaussian means), so one left as it was differs.
    expect(Array.from(new Float32Array(expected.buffer)).every((value, i) => value !== c[i])).toBe(true);
    expect(firstDifference(await run(small.device), expected), 'first differing entry').toBe(-1);
  });

  // The split form's finish (an invocation per output, 256 a workgroup): the GEMV takes its right-hand sides
  // in ranges of at most a grid dimension (4 and 2 here), so the first range's 300 × 4 outputs need 5
  // workgroups, a 3 × 2 grid. (Its call_sums, a workgroup per right-hand side, thus stays in one row
  // here; dispatchUniversalCallSums takes any number in one range: test/gpu/largeSplits.test.ts's 70000
  // right-hand sides put it on a 2-D grid of the real limit, and fail when it reads the x alone.)
  it('universal GEMV, split form (shaders/universal_gemv_finish.wgsl): d3-q6 centred 64 × 300, 6 right-hand sides: the bits of the device with the real limits', async () => {
    const q = asUniversal(quantize(gaussianMatrix(64, 300, 51), { scheme: 'd3-q6', seed: 3, nonce: 52, center: true }));
    const x = gaussianMatrix(64, 6, 53);
    const run = async (device: GPUDevice): Promise<Float32Array> => {
      const w = uploadUniversalMatrix(device, q);
      try {
        return (await universalGemv(device, w, x, { fusedFinish: false })).data;
      } finally {
        w.destroy();
      }
    };
    const expected = await run(real.device);
    expect(expected.some(Number.isNaN)).toBe(false);
    expect(firstDifference(new Uint32Array((await run(small.device)).buffer), new Uint32Array(expected.buffer)), 'first differing output').toBe(-1);
  });
});
