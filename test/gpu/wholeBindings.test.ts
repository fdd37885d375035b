import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/device.js';
import { GpuEngine } from '../../src/gpu/engine.js';
import { createKernelBindGroup } from '../../src/gpu/pipelines.js';
import { createBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { LatticeQuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { gpuUnavailableReason, testDevice } from './gpuTestDevice.js';

/*
 * What a kernel binds whole against the device's maxStorageBufferBindingSize (a helper's audit found
 * three silent failures): WebGPU refuses such a bind group only through the device's uncapturederror
 * event, so a product or GEMV recorded into the caller's encoder did not run and its output kept what
 * it held. Now the deterministic products split their B columns so that each range's gathered norms,
 * gains and means fit (they gave 24192-byte bindings at 8192 columns on a 16 KiB device), and every
 * bind group refuses a binding beyond the limit with an exception naming the kernel and the buffer
 * (createKernelBindGroup). The device is real (Dawn on the test adapter) but reports a 16 KiB limit to
 * the library, and its createBindGroup records the largest binding the library asked for, so a binding
 * the real device would accept but a 16 KiB one would not shows up. Twin: the same call on a device
 * with the adapter's limits, bit for bit.
 */

const noGpu = await gpuUnavailableReason();
const LIMIT = 16384;

describe.skipIf(noGpu !== undefined)('bindings a kernel makes whole, against maxStorageBufferBindingSize', () => {
  let real: GpuContext;
  let small: GpuContext;
  /** The largest storage binding the library asked `small`'s device for since the last reset. */
  let largestBinding = 0;

  beforeAll(async () => {
    real = await testDevice();
    small = await testDevice();
    const device = small.device;
    const limits = new Proxy(device.limits, { get: (target, name) => (name === 'maxStorageBufferBindingSize' ? LIMIT : Reflect.get(target, name)) });
    Object.defineProperty(device, 'limits', { value: limits, configurable: true });
    const createBindGroup = device.createBindGroup.bind(device);
    device.createBindGroup = (descriptor: GPUBindGroupDescriptor): GPUBindGroup => {
      for (const entry of descriptor.entries) {
        const resource = entry.resource as GPUBufferBinding;
        if ((resource.buffer.usage & GPUBufferUsage.STORAGE) === 0) continue;
        largestBinding = Math.max(largestBinding, resource.size ?? resource.buffer.size - (resource.offset ?? 0));
      }
      return createBindGroup(descriptor);
    };
  });

  afterAll(() => {
    real?.device.destroy();
    small?.device.destroy();
  });

  it.each(['d3-q6-deterministic', 'e8-q16-deterministic'] as const)(
    '%s: a product with 8192 B columns splits them so that each binding fits, and equals the unsplit product',
    async (scheme) => {
      const n = 8;
      // A of 2 columns: C's window (8 bytes per B column) lets a range take 2016 B columns, whose gathered
      // norms, gains and means (12 bytes each) were bound as 24192 bytes.
      const qa = quantize(gaussianMatrix(n, 2, 4), { scheme, seed: 3 }) as LatticeQuantizedMatrix;
      const qb = quantize(gaussianMatrix(n, 8192, 1), { scheme, seed: 3 }) as LatticeQuantizedMatrix;
      const reference = GpuEngine.create(real.device);
      const expected = await reference.matmulAT(reference.upload(qa), reference.upload(qb));
      const engine = GpuEngine.create(small.device);
      const a = engine.upload(qa);
      const b = engine.upload(qb);
      largestBinding = 0;
      const product = await engine.matmulAT(a, b);
      expect(largestBinding).toBeGreaterThan(LIMIT / 2);
      expect(largestBinding).toBeLessThanOrEqual(LIMIT);
      expect(Buffer.from(product.data.buffer).equals(Buffer.from(expected.data.buffer))).toBe(true);
    },
  );

  it('a product of mixed operands whose per-column exponents exceed one binding is refused, naming the kernel and the buffer', async () => {
    // D3 against E8: both decoded, then the f32 matmul (decode-f32); B's 8192 column exponents
    // (32 KiB) are bound whole by the decode and the epilogue. Before, matmulAT threw WebGPU's
    // validation error and recordMatmulAT recorded a product that did not run.
    const engine = GpuEngine.create(small.device);
    const a = engine.upload(quantize(gaussianMatrix(8, 3, 4), { scheme: 'd3-q6-deterministic', seed: 3 }));
    const b = engine.upload(quantize(gaussianMatrix(8, 8192, 1), { scheme: 'e8-q16-deterministic', seed: 3 }));
    expect(engine.productKernel(a, b)).toBe('decode-f32');
    const refusal = /binding \d+ \(".*exponents B"\) is 32768 bytes, more than one storage binding may hold on this device \(maxStorageBufferBindingSize = 16384\)/;
    await expect(engine.matmulAT(a, b)).rejects.toThrow(refusal);
    const encoder = small.device.createCommandEncoder();
    const output = createBuffer(small.device, 'C', 4 * 3 * 8192, STORAGE_USAGE);
    const scratch = new GpuScratch(small.device);
    try {
      expect(() => engine.recordMatmulAT(encoder, scratch, a, b, output)).toThrow(refusal);
    } finally {
      scratch.destroy();
      output.destroy();
    }
  });

  it('createKernelBindGroup refuses a binding beyond the limit before WebGPU sees it, and takes one at the limit', () => {
    const device = small.device;
    const layout = device.createBindGroupLayout({ label: 'one storage binding', entries: [{ binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'read-only-storage' } }] });
    const buffer = createBuffer(device, 'a side buffer', 2 * LIMIT, STORAGE_USAGE);
    try {
      expect(() => createKernelBindGroup(device, layout, 'a kernel', [{ buffer }])).toThrow(
        /^a kernel: binding 0 \("a side buffer"\) is 32768 bytes, more than one storage binding may hold on this device \(maxStorageBufferBindingSize = 16384\); use fewer columns per matrix$/,
      );
      // The rest of the buffer from an offset, and an explicit size.
      expect(() => createKernelBindGroup(device, layout, 'a kernel', [{ buffer, offset: 256 }])).toThrow(/binding 0 \("a side buffer"\) is 32512 bytes/);
      expect(() => createKernelBindGroup(device, layout, 'a kernel', [{ buffer, offset: 0, size: LIMIT + 4 }])).toThrow(/is 16388 bytes/);
      expect(() => createKernelBindGroup(device, layout, 'a kernel', [{ buffer, offset: LIMIT }])).not.toThrow();
      expect(() => createKernelBindGroup(device, layout, 'a kernel', [{ buffer, offset: 0, size: LIMIT }])).not.toThrow();
    } finally {
      buffer.destroy();
    }
  });
});
