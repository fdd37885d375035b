import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BufferUsage, createBuffer, createBufferWithData, readBufferExclusive, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { dispatchEpilogue } from '../../src/gpu/kernels/activationIo.js';
import { dispatchHadamard } from '../../src/gpu/kernels/hadamard.js';
import { prepareCommands } from '../../src/gpu/prepared.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { rotationLength } from '../../src/rotation/hadamard.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { gpuUnavailableReason, testDevice } from './gpuTestDevice.js';

/*
 * Prepared commands (src/gpu/prepared.ts) replay what a chain of kernels recorded, with consecutive
 * compute passes merged into one: the results must be the bytes of the same chain recorded directly
 * (each dispatch reads what the one before it wrote, inside the merged pass), a copy between passes
 * must still split them, and the merged pass carries the labels of the passes it replaces.
 */

const noGpu = await gpuUnavailableReason();

describe.skipIf(noGpu !== undefined)('prepared commands', () => {
  let context: GpuContext;
  beforeAll(async () => {
    context = await testDevice();
  });
  afterAll(() => context?.device.destroy());

  it('merge consecutive passes, keep a copy between them, and give the bytes of the direct recording', async () => {
    const { device } = context;
    const rows = 300;
    const cols = 2;
    const length = rotationLength(rows);
    const x = createBufferWithData(device, 'x', gaussianMatrix(rows, cols, 3).data, STORAGE_USAGE);
    const bias = createBufferWithData(device, 'bias', Float32Array.from({ length }, (_, i) => i / 7), STORAGE_USAGE);
    // rotate → add bias → copy → add bias again: dependent steps, a copy in the middle.
    const chain = (encoder: GPUCommandEncoder, scratch: GpuScratch, out: GPUBuffer): void => {
      const rotated = scratch.buffer('rotated', 4 * length * cols, STORAGE_USAGE);
      const biased = scratch.buffer('biased', 4 * length * cols, STORAGE_USAGE | BufferUsage.COPY_SRC);
      const copied = scratch.buffer('copied', 4 * length * cols, STORAGE_USAGE | BufferUsage.COPY_DST);
      dispatchHadamard(device, encoder, scratch, { input: x, output: rotated, rows, cols, seed: 5 });
      dispatchEpilogue(device, encoder, scratch, { input: rotated, bias, rows: length, columns: cols, output: biased, format: 'f32' });
      encoder.copyBufferToBuffer(biased, 0, copied, 0, 4 * length * cols);
      dispatchEpilogue(device, encoder, scratch, { input: copied, bias, rows: length, columns: cols, output: out, format: 'f32' });
    };
    const direct = createBuffer(device, 'direct out', 4 * length * cols, STORAGE_USAGE);
    const replayed = createBuffer(device, 'replayed out', 4 * length * cols, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    const prepared = prepareCommands(device, 'chain', (encoder, preparedScratch) => chain(encoder, preparedScratch, replayed));
    try {
      const encoder = device.createCommandEncoder({ label: 'direct' });
      chain(encoder, scratch, direct);
      device.queue.submit([encoder.finish()]);

      // Replay into an encoder that records the passes it is asked for.
      const real = device.createCommandEncoder({ label: 'replay' });
      const passLabels: string[] = [];
      const counting = new Proxy(real, {
        get(target, property) {
          if (property === 'beginComputePass') {
            return (descriptor?: GPUComputePassDescriptor) => {
              passLabels.push(descriptor?.label ?? '');
              return target.beginComputePass(descriptor);
            };
          }
          const value = Reflect.get(target, property) as unknown;
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
      prepared.record(counting);
      device.queue.submit([real.finish()]);
      expect(passLabels).toHaveLength(2);
      expect(passLabels[0]).toMatch(/^hadamard.* → epilogue/);
      expect(passLabels[1]).toMatch(/^epilogue/);

      const a = new Uint8Array(await readBufferExclusive(device, direct, 4 * length * cols));
      const b = new Uint8Array(await readBufferExclusive(device, replayed, 4 * length * cols));
      expect(b).toEqual(a);
      // The chain wrote something (not a buffer left at zero).
      expect(new Float32Array(a.buffer).some((v) => v !== 0)).toBe(true);
    } finally {
      prepared.destroy();
      scratch.destroy();
      for (const buffer of [x, bias, direct, replayed]) buffer.destroy();
    }
  });
});
