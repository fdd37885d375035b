import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Matrix } from '../../src/matrix.js';
import { hadamardFactors, rotationLength } from '../../src/rotation/hadamard.js';
import { Rng } from '../../src/rotation/random.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { createBuffer, readBuffer, STORAGE_USAGE, uploadToBuffer } from '../../src/gpu/buffers.js';
import { withValidation } from '../../src/gpu/errorScopes.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { dispatchHadamard, hadamardColumns, planHadamard } from '../../src/gpu/kernels/hadamard.js';
import { f32Bits, gpuUnavailableReason, hex, testDevice } from './gpuTestDevice.js';

/*
 * The GPU rotation against the CPU reference RandomizedHadamard.forwardColumns, bit for bit (+0 and
 * −0 count as equal: WGSL does not promise the sign of zero). Inputs mix magnitudes over ±2^20 so
 * that nearly every addition rounds, and avoid subnormals (which a GPU may flush to zero).
 */

const noGpu = await gpuUnavailableReason();

/** `rows × cols` values g · 2^e with g ~ N(0, 1) and e uniform in [−20, 20], plus a few exact zeros. */
function testMatrix(rows: number, cols: number, seed: number): Matrix {
  const rng = new Rng(seed);
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) {
    data[i] = rng.nextInt(50) === 0 ? 0 : rng.nextGaussian() * 2 ** (rng.nextInt(41) - 20);
  }
  return { rows, cols, data };
}

/** First mismatching entries (bits), treating ±0 as equal. */
function bitMismatches(got: Matrix, expected: Matrix, limit = 5): string[] {
  const out: string[] = [];
  for (let i = 0; i < expected.data.length && out.length < limit; i++) {
    const g = got.data[i] as number;
    const e = expected.data[i] as number;
    if (f32Bits(g) !== f32Bits(e) && !(g === 0 && e === 0)) {
      out.push(`row ${i % expected.rows}, column ${Math.floor(i / expected.rows)}: got ${g} (${hex(f32Bits(g))}), expected ${e} (${hex(f32Bits(e))})`);
    }
  }
  return out;
}

describe('planHadamard (CPU)', () => {
  it.each([
    [1, 32768],
    [12, 32768],
    [1024, 32768],
    [8192, 32768],
    [16384, 32768],
    [20 * 1024, 32768],
    [3072, 16384],
    [8192, 16384],
    [12 * 2 ** 14, 16384],
  ])('N = %i with %i bytes: passes cover every level once, in order, within workgroup memory', (N, bytes) => {
    const plan = planHadamard(N, bytes);
    const { m, pow2 } = hadamardFactors(N);
    expect(plan.block).toBe(m);
    expect(plan.workgroupElements * 4).toBeLessThanOrEqual(bytes);
    let stride = 1;
    for (const pass of plan.passes) {
      expect(pass.levelStride).toBe(stride);
      expect(pass.groupBlocks * m).toBeLessThanOrEqual(plan.workgroupElements);
      stride *= pass.groupBlocks;
    }
    expect(stride).toBe(pow2);
    // One pass exactly when the whole column fits in workgroup memory.
    expect(plan.passes.length === 1).toBe(N <= bytes / 4);
  });

  it('refuses a forced workgroup size that is not a power of two or too large', () => {
    expect(() => planHadamard(64, 32768, 48)).toThrow(/power of two/);
    expect(() => planHadamard(64, 16384, 8192)).toThrow(/power of two/);
  });
});

describe.skipIf(noGpu !== undefined)('hadamard.wgsl: bit-identical to RandomizedHadamard.forward', () => {
  let context: GpuContext;
  beforeAll(async () => {
    context = await testDevice();
  });
  afterAll(() => context?.device.destroy());

  async function expectSameAsCpu(
    rows: number,
    cols: number,
    seed: number,
    options: { workgroupElements?: number; maxBindingBytes?: number } = {},
    device = context.device,
  ): Promise<void> {
    const input = testMatrix(rows, cols, (seed * 7 + rows) >>> 0);
    const expected = new RandomizedHadamard(rows, seed).forwardColumns(input);
    const got = await hadamardColumns(device, input, seed, options);
    expect([got.rows, got.cols]).toEqual([rotationLength(rows), cols]);
    expect(bitMismatches(got, expected)).toEqual([]);
  }

  // n → N: 1, 4, 12, 20, 24, 40, 64, 96, 1024 (from 1000), 12·2^k up to 3072, 4096, and 20·2^k.
  const sizes: [rows: number, cols: number][] = [
    [1, 1],
    [1, 3],
    [3, 5],
    [4, 1],
    [9, 3],
    [12, 2],
    [17, 3],
    [20, 1],
    [24, 3],
    [40, 2],
    [64, 3],
    [90, 3],
    [1000, 3],
    [48, 1],
    [192, 3],
    [384, 2],
    [768, 3],
    [1536, 1],
    [3000, 3],
    [4096, 2],
    [2560, 1],
    [160, 7],
  ];
  it.each(sizes)('n = %i, %i columns (one pass)', async (rows, cols) => {
    expect(planHadamard(rotationLength(rows), context.limits.maxComputeWorkgroupStorageSize).passes).toHaveLength(1);
    await expectSameAsCpu(rows, cols, 42);
  });

  it('many short columns per workgroup (n = 3, 700 columns) and another seed', async () => {
    await expectSameAsCpu(3, 700, 0xdeadbeef);
  });

  it('N = 16384, above the single-workgroup limit of 32 KB: several passes', async () => {
    const N = 16384;
    expect(N * 4).toBeGreaterThan(context.limits.maxComputeWorkgroupStorageSize);
    expect(planHadamard(N, context.limits.maxComputeWorkgroupStorageSize).passes.length).toBeGreaterThan(1);
    await expectSameAsCpu(N - 5, 3, 7);
  });

  it.each([
    [64, 2, 32, 2],
    [4096, 1, 32, 3],
    [1000, 3, 64, 2],
    [768, 3, 32, 6],
    [640, 2, 64, 5],
    [20, 3, 32, 1],
    [12 * 64, 1, 128, 2],
  ])('forced small workgroup memory: n = %i, %i columns, %i elements → %i passes', async (rows, cols, elements, passes) => {
    expect(planHadamard(rotationLength(rows), 32768, elements).passes).toHaveLength(passes);
    await expectSameAsCpu(rows, cols, 5, { workgroupElements: elements });
  });

  it('refuses workgroup memory that cannot hold two blocks of 20', () => {
    expect(() => planHadamard(40, 32768, 32)).toThrow(/two Hadamard blocks/);
  });

  it('splits columns across bindings and honours unaligned offsets', async () => {
    const { device } = context;
    const rows = 90; // N = 96
    const cols = 10;
    const N = rotationLength(rows);
    const seed = 99;
    const input = testMatrix(rows, cols, 3);
    const expected = new RandomizedHadamard(rows, seed).forwardColumns(input);
    const inputOffset = 20;
    const outputOffset = 44;
    const inputBuffer = createBuffer(device, 'test hadamard input', inputOffset + 4 * rows * cols, STORAGE_USAGE);
    const outputBuffer = createBuffer(device, 'test hadamard output', outputOffset + 4 * N * cols, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const data = await withValidation(device, 'split hadamard', async () => {
        uploadToBuffer(device, inputBuffer, input.data, inputOffset);
        const encoder = device.createCommandEncoder({ label: 'split hadamard' });
        // Three output columns (1152 bytes + alignment slack) per binding: four chunks.
        dispatchHadamard(device, encoder, scratch, {
          input: inputBuffer,
          output: outputBuffer,
          rows,
          cols,
          seed,
          inputOffset,
          outputOffset,
          maxBindingBytes: 4 * N * 3 + 256,
        });
        device.queue.submit([encoder.finish()]);
        return new Float32Array(await readBuffer(device, outputBuffer, 4 * N * cols, outputOffset));
      });
      expect(bitMismatches({ rows: N, cols, data }, expected)).toEqual([]);
    } finally {
      scratch.destroy();
      inputBuffer.destroy();
      outputBuffer.destroy();
    }
  });

  it('16 KB workgroup memory: N = 8192 takes two passes', async () => {
    const small = await testDevice({ workgroupStorageLimit: 16384 });
    try {
      expect(small.limits.maxComputeWorkgroupStorageSize).toBe(16384);
      expect(planHadamard(8192, 16384).passes).toHaveLength(2);
      await expectSameAsCpu(8000, 2, 11, {}, small.device);
    } finally {
      small.device.destroy();
    }
  });

  it('refuses the same buffer as input and output', () => {
    const { device } = context;
    const buffer = createBuffer(device, 'test in-place', 64, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const encoder = device.createCommandEncoder();
      expect(() =>
        dispatchHadamard(device, encoder, scratch, { input: buffer, output: buffer, rows: 4, cols: 1, seed: 1 }),
      ).toThrow(/different buffers/);
    } finally {
      scratch.destroy();
      buffer.destroy();
    }
  });
});
