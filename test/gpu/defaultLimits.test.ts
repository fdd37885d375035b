import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuEngine, type GpuEngineOptions, type ProductKernel } from '../../src/gpu/engine.js';
import { nodeGpu } from '../../src/gpu/nodeGpu.js';
import { createKernelLayout } from '../../src/gpu/pipelines.js';
import type { Matrix } from '../../src/matrix.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { universalPairProduct } from '../../src/product/universalPairProduct.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import type { LatticeQuantizedMatrix, QuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { gpuUnavailableReason } from './gpuTestDevice.js';

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
    const adapter = await (await nodeGpu()).requestAdapter();
    if (adapter === null) throw new Error('no adapter');
    device = await adapter.requestDevice({ label: 'default-limits device' });
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
