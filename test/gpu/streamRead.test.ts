import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { dispatchStreamRead, streamRead, streamReadSinkBytes, streamXor } from '../../src/gpu/kernels/streamRead.js';
import { Rng } from '../../src/rotation/random.js';
import { contextOnTestDevice, gpuUnavailableReason } from './gpuTestDevice.js';

/*
 * The streaming-read kernel against its CPU twin: the XOR of the per-workgroup results equals the XOR
 * of every 16-byte word (so every word was read exactly once: a word read twice or skipped flips the
 * XOR for data with a single set bit, the adversarial case below), across grid sizes that leave
 * partial steps, binding splits and offsets.
 */

const noGpu = await gpuUnavailableReason();

function randomWords(count: number, seed: number): Uint32Array {
  const rng = new Rng(seed);
  return Uint32Array.from({ length: count }, () => rng.nextInt(0x10000) * 0x10000 + rng.nextInt(0x10000));
}

describe('streamXor (CPU twin)', () => {
  it('is the lane-wise XOR of the 16-byte words', () => {
    expect(Array.from(streamXor(new Uint32Array([1, 2, 3, 4, 1, 0, 0, 8])))).toEqual([0, 2, 3, 12]);
    expect(() => streamXor(new Uint32Array(3))).toThrow(/multiple of 4/);
  });
});

describe.skipIf(noGpu !== undefined)('stream_read.wgsl', () => {
  const suite = contextOnTestDevice();

  // words (vec4 count) × workgroups: one partial step, exact unrolled steps, a tail after unrolled steps.
  it.each([
    [1, 1],
    [5, 2],
    [1024, 1],
    [1027, 1],
    [4096 + 3, 3],
    [20000, 7],
  ])('%i words with %i workgroups: XOR equals the CPU twin', async (words, workgroups) => {
    const data = randomWords(4 * words, words + workgroups);
    expect(Array.from(await streamRead(suite.context.device, data, { workgroups }))).toEqual(Array.from(streamXor(data)));
  });

  it('reads every word exactly once (one set bit anywhere, any grid)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 1, max: 9 }), fc.nat(), async (words, workgroups, where) => {
        const data = new Uint32Array(4 * words);
        const at = where % data.length;
        data[at] = 1 << (where % 32);
        const xor = await streamRead(suite.context.device, data, { workgroups });
        expect(Array.from(xor)).toEqual(Array.from(streamXor(data)));
      }),
      { seed: 20261130, numRuns: 12 },
    );
  });

  it('splits a read across bindings and honours an offset', async () => {
    const data = randomWords(4 * 700, 3);
    // 1024-byte bindings: 49 words per dispatch after 240 bytes of alignment slack.
    const xor = await streamRead(suite.context.device, data, { workgroups: 2, maxBindingBytes: 1024, offsetWords: 4 * 5 });
    expect(Array.from(xor)).toEqual(Array.from(streamXor(data)));
    expect(streamReadSinkBytes(suite.context.device, { bytes: 16 * 700, offset: 80, workgroups: 2, maxBindingBytes: 1024 })).toBeGreaterThan(16 * 2);
  });

  it('refuses sizes and offsets that are not 16-byte words', () => {
    const { device } = suite.context;
    const buffer = createBuffer(device, 'test stream buffer', 256, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const encoder = device.createCommandEncoder();
      expect(() => dispatchStreamRead(device, encoder, scratch, { data: buffer, bytes: 24 })).toThrow(/multiple of 16, got 24/);
      expect(() => dispatchStreamRead(device, encoder, scratch, { data: buffer, bytes: 16, offset: 8 })).toThrow(/offset must be a non-negative multiple of 16/);
      expect(() => dispatchStreamRead(device, encoder, scratch, { data: buffer, bytes: 512 })).toThrow(/needs 512 bytes/);
      expect(() => dispatchStreamRead(device, encoder, scratch, { data: buffer, bytes: 16, workgroups: 0 })).toThrow(/workgroups/);
    } finally {
      scratch.destroy();
      buffer.destroy();
    }
  });
});
