import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBuffer, createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { GpuEngine, type GpuEngineOptions, type ProductKernel } from '../../src/gpu/engine.js';
import { uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import { uploadWeightOnly } from '../../src/gpu/kernels/weightOnlyGemv.js';
import { QuantizedLinear, type LinearWeight, type QuantizedLinearOptions } from '../../src/gpu/quantizedLinear.js';
import { createKernelLayout } from '../../src/gpu/pipelines.js';
import type { Matrix } from '../../src/matrix.js';
import { dequantize } from '../../src/product/dequantize.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { universalPairProduct } from '../../src/product/universalPairProduct.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import type { LatticeQuantizedMatrix, QuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { quantizeWeights } from '../../src/weightonly/quantizeWeights.js';
import { defaultLimitsDevice, gpuUnavailableReason, testDevice } from './gpuTestDevice.js';

/*
 * An app's own device, requested with WebGPU's default limits (8 storage buffers per shader stage,
 * 16 KB of workgroup memory): every product kernel the engine can choose runs on it. The pair product
 * ('universal-i8', the default where WGSL has packed dot products) bound 9 storage buffers, so on such
 * a device every universal × universal product failed with a validation error; a kernel that binds
 * more than the device allows is now refused by name before its layout is created.
 */

const noGpu = await gpuUnavailableReason();

/** max over entries of |gpu − cpu| / (‖a_i‖·‖b_j‖), the products' scale (the tests' tolerance: 1e-5). */
function worstRelative(gpu: Matrix, cpu: Matrix, a: Matrix, b: Matrix): number {
  expect([gpu.rows, gpu.cols]).toEqual([cpu.rows, cpu.cols]);
  const norm = (m: Matrix, j: number) => Math.hypot(...m.data.subarray(j * m.rows, (j + 1) * m.rows));
  let worst = 0;
  for (let j = 0; j < cpu.cols; j++) {
    for (let i = 0; i < cpu.rows; i++) {
      const k = j * cpu.rows + i;
      worst = Math.max(worst, Math.abs((gpu.data[k] as number) - (cpu.data[k] as number)) / (norm(a, i) * norm(b, j)));
    }
  }
  return worst;
}

function asLattice(q: QuantizedMatrix): LatticeQuantizedMatrix {
  if (q.kind !== 'lattice') throw new Error('a lattice scheme was expected');
  return q;
}

describe('a kernel binding more storage buffers than the device allows', () => {
  it('is refused by name, with the limit and what to do, before any GPU object is created', () => {
    let layouts = 0;
    const device = {
      lost: new Promise(() => undefined),
      limits: { maxStorageBuffersPerShaderStage: 8 },
      createBindGroupLayout: () => {
        layouts++;
        return {};
      },
      createPipelineLayout: () => ({}),
    } as unknown as GPUDevice;
    const bindings = (storage: number): GPUBufferBindingType[] => ['uniform', ...Array.from({ length: storage }, (): GPUBufferBindingType => 'read-only-storage')];
    expect(() => createKernelLayout(device, 'nine', bindings(9))).toThrow(
      /^nine: the kernel binds 9 storage buffers, more than this device allows per shader stage \(maxStorageBuffersPerShaderStage = 8\); request the adapter's limit/,
    );
    expect(layouts).toBe(0);
    createKernelLayout(device, 'eight', bindings(8));
    expect(layouts).toBe(1);
  });
});

describe.skipIf(noGpu !== undefined)("every product kernel on a device with WebGPU's default limits", () => {
  let device: GPUDevice;
  beforeAll(async () => {
    device = await defaultLimitsDevice();
  });
  afterAll(() => device.destroy());

  const cases: readonly [ProductKernel, GpuEngineOptions, QuantizeOptions][] = [
    // The packed dot path is not in every WGSL implementation (lavapipe's Dawn lacks it): the plain one binds the same buffers.
    ['universal-i8', { universalProduct: 'i8', dotPath: 'plain' }, { scheme: 'e8-q16', seed: 3 }],
    ['universal-i8', { universalProduct: 'i8', dotPath: 'plain' }, { scheme: 'd3-q6', seed: 3, center: true }],
    ['universal-decode', { universalProduct: 'decode' }, { scheme: 'd3-q6', seed: 3 }],
    ['d3-table', {}, { scheme: 'd3-q6-deterministic', seed: 3 }],
    ['e8-dot', { dotPath: 'plain' }, { scheme: 'e8-q16-deterministic', seed: 4 }],
    ['decode-f32', { deterministicProduct: 'decode' }, { scheme: 'e8-q16-deterministic', seed: 4 }],
  ];

  for (const [kernel, engineOptions, options] of cases) {
    for (const [n, aCols, bCols] of [
      [1, 1, 1],
      [100, 17, 9],
    ] as const) {
      it(`${kernel} (${String(options.scheme)}${options.center === true ? ', centred' : ''}), n = ${n}, ${aCols} × ${bCols}: ≈ its CPU twin`, async () => {
        expect(device.limits.maxStorageBuffersPerShaderStage).toBe(8);
        const engine = GpuEngine.create(device, engineOptions);
        const a = gaussianMatrix(n, aCols, n + aCols);
        const b = gaussianMatrix(n, bCols, n + bCols + 1);
        const universal = kernel.startsWith('universal');
        const cpuA = asLattice(quantize(a, universal ? { ...options, nonce: 21 } : options));
        const cpuB = asLattice(quantize(b, universal ? { ...options, nonce: 22 } : options));
        const ga = engine.upload(cpuA);
        const gb = engine.upload(cpuB);
        try {
          expect(engine.productKernel(ga, gb)).toBe(kernel);
          const twin = kernel === 'universal-i8' ? universalPairProduct(cpuA, cpuB) : matmulAT(cpuA, cpuB);
          expect(worstRelative(await engine.matmulAT(ga, gb), twin, a, b)).toBeLessThan(1e-5);
        } finally {
          ga.destroy();
          gb.destroy();
          engine.destroy();
        }
      });
    }
  }
});

describe.skipIf(noGpu !== undefined)("every QuantizedLinear form (lattice and weight-only) on a device with WebGPU's default limits", () => {
  let small: GPUDevice;
  let full: GpuContext;
  beforeAll(async () => {
    small = await defaultLimitsDevice();
    full = await testDevice();
  });
  afterAll(() => {
    small.destroy();
    full.device.destroy();
  });

  /** y of a layer over the weight `upload` makes on `device` for the n × tokens input x (f32 in, f32 out), with a bias, read back. */
  async function layerOutput(device: GPUDevice, upload: (device: GPUDevice) => LinearWeight & { destroy(): void }, cols: number, x: Matrix, options: QuantizedLinearOptions): Promise<Float32Array> {
    const weight = upload(device);
    const bias = Float32Array.from({ length: cols }, (_, j) => 0.25 * j - 1);
    const layer = QuantizedLinear.create(device, weight, { ...options, bias });
    const xBuffer = createBufferWithData(device, 'default limits: x', x.data, STORAGE_USAGE);
    const yBuffer = createBuffer(device, 'default limits: y', 4 * cols * x.cols, STORAGE_USAGE);
    try {
      await layer.check();
      const encoder = device.createCommandEncoder();
      layer.record(encoder, xBuffer, yBuffer, { tokens: x.cols });
      device.queue.submit([encoder.finish()]);
      return new Float32Array(await readBuffer(device, yBuffer, 4 * cols * x.cols));
    } finally {
      layer.destroy();
      weight.destroy();
      xBuffer.destroy();
      yBuffer.destroy();
    }
  }

  for (const [scheme, int8Inputs] of [
    ['d3-q6', null],
    ['d3-q6', 'plain'],
    ['e8-4bit', null],
    ['e8-4bit', 'plain'],
    ['d3-q6-deterministic', null],
    ['d3-q6-deterministic', 'plain'],
    ['e8-q16-deterministic', null],
    ['e8-q16-deterministic', 'plain'],
  ] as const) {
    for (const center of [false, true]) {
      it(`${scheme}${center ? ', centred' : ''}, int8Inputs ${String(int8Inputs)}, 3 tokens: the same outputs as on a device with the adapter's limits`, async () => {
        expect(small.limits.maxStorageBuffersPerShaderStage).toBe(8);
        const n = 200;
        const cols = 37;
        const universal = !scheme.endsWith('-deterministic');
        const q = asLattice(quantize(gaussianMatrix(n, cols, 3), universal ? { scheme, seed: 5, nonce: 9, center } : { scheme, seed: 5, center }));
        const x = gaussianMatrix(n, 3, 4);
        await expectSameLayer((device) => uploadLatticeMatrix(device, q), dequantize(q), x, { int8Inputs });
      });
    }
  }

  // Weight-only layers bind at most 7 storage buffers: their GEMV (fixed-width and packed codes, f32 or
  // int8 inputs) and the rotation they share with lattice layers, Hadamard-rotated or not.
  for (const [layout, rotate, int8Inputs] of [
    ['auto', true, null],
    ['auto', true, 'plain'],
    ['auto', false, null],
    ['auto', false, 'plain'],
    ['packed', true, null],
  ] as const) {
    it(`weight-only, ${layout === 'auto' ? 'fixed-width' : 'packed'} codes, ${rotate ? 'rotated' : 'unrotated'}, int8Inputs ${String(int8Inputs)}, 3 tokens: the same outputs as on a device with the adapter's limits`, async () => {
      expect(small.limits.maxStorageBuffersPerShaderStage).toBe(8);
      // n = 192 = 12 · 16: a Hadamard length (the GPU rotates weight-only inputs only at those).
      const q = quantizeWeights(gaussianMatrix(192, 37, 3), null, { method: 'rtn', rate: 4, rotate, seed: 5 });
      await expectSameLayer((device) => uploadWeightOnly(device, q, { layout }), q.decode(), gaussianMatrix(192, 3, 4), { int8Inputs });
    });
  }

  /**
   * The layer over the weight `upload` makes gives the same outputs on the default-limits device as on
   * the adapter's, and both are Ŵᵀx + b for `decoded` (n × cols, the CPU's Ŵ) within f32 rounding, or
   * with int8 inputs within their rounding.
   */
  async function expectSameLayer(upload: (device: GPUDevice) => LinearWeight & { destroy(): void }, decoded: Matrix, x: Matrix, options: QuantizedLinearOptions): Promise<void> {
    const { rows: n, cols } = decoded;
    const got = await layerOutput(small, upload, cols, x, options);
    const want = await layerOutput(full.device, upload, cols, x, options);
    // The same kernels, except where the adapter's limits allow a fused form (the universal f32-input
    // GEMV writes Y itself with 10 storage buffers): f32 sums in another order, far below 1e-5.
    const scale = Math.max(...want.map(Math.abs));
    for (let k = 0; k < want.length; k++) expect(Math.abs((got[k] as number) - (want[k] as number)), `output ${k}`).toBeLessThanOrEqual(1e-5 * scale);
    // And both are the layer: Ŵᵀx + b from the CPU's decoded W, within f32 rounding, or with int8
    // inputs within their rounding (x̃ to int8 per group: ≈ 1e-3 of the outputs here; a wrong kernel is off by O(1)).
    const reference = Array.from({ length: cols * x.cols }, (_, k) => {
      const j = k % cols;
      const t = Math.floor(k / cols);
      let sum = 0.25 * j - 1;
      for (let i = 0; i < n; i++) sum += (decoded.data[j * n + i] as number) * (x.data[t * n + i] as number);
      return sum;
    });
    const tolerance = (options.int8Inputs ?? null) === null ? 1e-5 : 1e-2;
    for (let k = 0; k < reference.length; k++) expect(Math.abs((got[k] as number) - (reference[k] as number)), `output ${k} against the CPU`).toBeLessThanOrEqual(tolerance * scale);
  }
});
