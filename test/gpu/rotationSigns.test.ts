import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { rotationSigns } from '../../src/gpu/rotationSigns.js';
import { counterHash, RandomStream } from '../../src/rotation/random.js';
import { packedStageSigns } from '../../src/rotation/randomizedHadamard.js';
import { contextOnTestDevice, gpuUnavailableReason, testDevice } from './gpuTestDevice.js';

/*
 * The rotation's packed signs (src/gpu/rotationSigns.ts). What the GPU rotation computes with them is
 * checked bit for bit against the CPU's RandomizedHadamard in test/gpu/hadamard.test.ts (every stage,
 * both directions); here, the packing itself and the per-device cache.
 */

const noGpu = await gpuUnavailableReason();

describe('packedStageSigns', () => {
  it('sets bit i of word i/32 exactly when bit 31 of counterHash(seed, rotationSigns, offset + i, k) is set', () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffffffff }), fc.nat({ max: 3 }), fc.nat({ max: 100000 }), fc.integer({ min: 1, max: 300 }), (seed, k, offset, length) => {
        const words = packedStageSigns(seed, k, offset, length);
        expect(words.length).toBe(Math.ceil(length / 32));
        for (let i = 0; i < 32 * words.length; i++) {
          const bit = ((words[i >>> 5] as number) >>> (i & 31)) & 1;
          const expected = i < length ? counterHash(seed, RandomStream.rotationSigns, offset + i, k) >>> 31 : 0;
          if (bit !== expected) return false;
        }
        return true;
      }),
      { numRuns: 200 },
    );
  });

  it('is not constant: about half the signs are negative', () => {
    const words = packedStageSigns(42, 0, 0, 32768);
    let negative = 0;
    for (const w of words) for (let b = 0; b < 32; b++) negative += (w >>> b) & 1;
    // Binomial(32768, 1/2): standard deviation ≈ 90.5; 5 of them.
    expect(Math.abs(negative - 16384)).toBeLessThan(5 * 90.5);
  });
});

describe.skipIf(noGpu !== undefined)('rotationSigns: the packed signs kept per device', () => {
  const suite = contextOnTestDevice();

  it('uploads a rotation\'s signs once and hands the same buffer back; another seed, window or device has its own', async () => {
    const { device } = suite.context;
    const stages = [
      { offset: 0, length: 24576 },
      { offset: 4096, length: 24576 },
    ];
    const first = rotationSigns(device, 7, stages);
    expect(rotationSigns(device, 7, stages)).toBe(first);
    expect(rotationSigns(device, 7, stages.map((s) => ({ ...s })))).toBe(first); // by value, not identity
    // Stage 1 starts after stage 0's 768 words; 1536 words in all.
    expect(first.stageFirstWord).toEqual([0, 768]);
    expect(first.buffer.size).toBe(4 * 1536);
    expect(first.buffer.label).toMatch(/rotation signs \(seed 7, 2 stages, N = 28672\)/);
    expect(rotationSigns(device, 8, stages)).not.toBe(first);
    expect(rotationSigns(device, 7, [{ offset: 0, length: 4096 }])).not.toBe(first);
    // Windows of the same lengths at another offset (n = 28000: [0, 24576) and [3424, 28000)): other signs.
    const shifted = rotationSigns(device, 7, [stages[0]!, { offset: 3424, length: 24576 }]);
    expect(shifted).not.toBe(first);
    expect(shifted.buffer.label).toMatch(/N = 28000\)/);
    const other = await testDevice();
    try {
      expect(rotationSigns(other.device, 7, stages).buffer).not.toBe(first.buffer);
    } finally {
      other.device.destroy();
    }
  });

  it('keeps the 64 rotations used last per device, dropping the least recently used (not destroyed: still usable)', () => {
    const { device } = suite.context;
    const window = [{ offset: 0, length: 64 }];
    const kept = rotationSigns(device, 1000, window);
    const dropped = rotationSigns(device, 1001, window);
    for (let seed = 1002; seed < 1200; seed++) {
      rotationSigns(device, seed, window);
      expect(rotationSigns(device, 1000, window)).toBe(kept); // used every time: never the least recent
    }
    const again = rotationSigns(device, 1001, window);
    expect(again).not.toBe(dropped);
    expect(again.stageFirstWord).toEqual(dropped.stageFirstWord);
    // 65 new rotations: the first of them is the 65th most recent, dropped; the last 64 are kept.
    const fresh = Array.from({ length: 65 }, (_, i) => rotationSigns(device, 2000 + i, window));
    expect(rotationSigns(device, 2064, window)).toBe(fresh[64]);
    expect(rotationSigns(device, 2001, window)).toBe(fresh[1]);
    expect(rotationSigns(device, 2000, window)).not.toBe(fresh[0]);
  });
});
