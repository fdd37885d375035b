import { describe, expect, it } from 'vitest';
import { toFloat32Matrix, type Matrix } from '../../src/matrix.js';
import { float16Bits } from '../../src/scalar/floatFormats.js';
import { hadamardFactors, rotationLength, rotationPlan } from '../../src/rotation/hadamard.js';
import { Rng } from '../../src/rotation/random.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { createBuffer, readBuffer, STORAGE_USAGE, uploadToBuffer } from '../../src/gpu/buffers.js';
import { withValidation } from '../../src/gpu/errorScopes.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import {
  dispatchHadamard,
  dispatchHadamardInverse,
  hadamardColumns,
  hadamardInverseColumns,
  planHadamard,
  planHadamardRotation,
  rotationRoundsInPass,
  rotationThreads,
  type HadamardOptions,
} from '../../src/gpu/kernels/hadamard.js';
import { contextOnTestDevice, f32Bits, defaultLimitsDevice, gpuUnavailableReason, hex, testDevice } from './gpuTestDevice.js';

/*
 * The GPU rotation, forward and inverse, against the CPU reference RandomizedHadamard.forwardColumns /
 * inverseColumns, bit for bit (+0 and −0 count as equal: WGSL does not promise the sign of zero).
 * Inputs mix magnitudes over ±2^20 so that nearly every addition rounds, and avoid subnormals (which a
 * GPU may flush to zero). Every case runs on three paths: workgroup memory only, subgroup shuffles
 * (with the fallback poisoned, so a match shows the shuffles ran), and the subgroup variant's
 * per-invocation fallback. The subgroup paths need the `subgroups` feature (lavapipe has it).
 */

const noGpu = await gpuUnavailableReason();
const noSubgroups = noGpu !== undefined || !(await deviceHasSubgroups());
if (noGpu === undefined && noSubgroups) {
  // CI's adapter (lavapipe) has subgroups: there a missing feature is a broken setup, not a skip.
  if (process.env.CI) throw new Error('CI: the adapter has no subgroups, so the subgroup rotation paths cannot be checked');
  console.warn('\n*** hadamard: this adapter has no subgroups; the subgroup paths are SKIPPED\n');
}

async function deviceHasSubgroups(): Promise<boolean> {
  const probe = await testDevice({ label: 'subgroups probe' });
  probe.device.destroy();
  return probe.features.subgroups;
}

const paths: [name: string, options: HadamardOptions, needsSubgroups: boolean][] = [
  ['workgroup memory', { subgroups: false }, false],
  ['subgroup shuffles', { subgroups: true, subgroupTestMode: 'require-shuffles' }, true],
  ['subgroup fallback', { subgroups: true, subgroupTestMode: 'fallback' }, true],
  ['workgroup memory, batched loads', { subgroups: false, batchedLoads: true }, false],
];

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

  it('takes the window itself as the workgroup memory when it fits, also when not a power of two (m·2^k: one pass at 48 KB)', () => {
    expect(planHadamard(12 * 1024, 49152)).toMatchObject({ workgroupElements: 12288, passes: [{ levelStride: 1, groupBlocks: 1024 }] });
    expect(planHadamard(20 * 512, 49152)).toMatchObject({ workgroupElements: 10240, passes: [{ levelStride: 1, groupBlocks: 512 }] });
    expect(planHadamard(20 * 128, 32768)).toMatchObject({ workgroupElements: 2560, passes: [{ levelStride: 1, groupBlocks: 128 }] });
    // Too large: the fewest passes (two), the levels shared evenly between them.
    expect(planHadamard(12 * 1024, 32768)).toMatchObject({ workgroupElements: 12 * 64, passes: [{ levelStride: 1, groupBlocks: 64 }, { levelStride: 64, groupBlocks: 16 }] });
    // Model widths: the windows of 14336 (12288) and 11008 (10240) take one pass each at 48 KB, two at 32 KB.
    expect(planHadamardRotation(14336, 49152).stages.map((stage) => stage.passes.length)).toEqual([1, 1]);
    expect(planHadamardRotation(11008, 49152).stages.map((stage) => stage.passes.length)).toEqual([1, 1]);
    expect(planHadamardRotation(14336, 32768).stages.map((stage) => stage.passes.length)).toEqual([2, 2]);
  });

  it.each([
    // [N, bytes, workgroup elements, groupBlocks of each pass]
    [12 * 2048, 49152, 768, [64, 32]], // 28672's windows: 11 levels, 6 + 5 (not 10 + 1 on 2 workgroups)
    [16384, 32768, 512, [512, 32]], // 14 levels, 7 + 7 raised to 9 + 5: 2 values per invocation
    [20 * 512, 32768, 640, [32, 16]], // 11008's windows at 32 KB
    [12 * 2 ** 14, 16384, 1536, [128, 128]], // 14 levels in 2 passes of 7
    [2 ** 20, 16384, 1024, [1024, 1024]], // 20 levels, at most 12 per pass: 2 passes of 10
    [2 ** 26, 16384, 512, [512, 512, 256]], // 26 levels, 3 passes: 9 + 9 + 8
    [2 ** 23, 16384, 4096, [4096, 2048]], // 23 levels, at most 12 per pass: 2 passes, 12 + 11 (11 + 11 would leave one for a third)
  ])('N = %i with %i bytes, several passes: the fewest passes, levels shared evenly (%i elements)', (N, bytes, elements, groupBlocks) => {
    const plan = planHadamard(N, bytes);
    expect(plan.workgroupElements).toBe(elements);
    expect(plan.passes.map((pass) => pass.groupBlocks)).toEqual(groupBlocks);
    // As few passes as the largest workgroup memory would take.
    const { m, pow2 } = hadamardFactors(N);
    const maxLevels = Math.floor(Math.log2(bytes / 4 / m));
    expect(plan.passes).toHaveLength(Math.ceil(Math.log2(pow2) / maxLevels));
  });

  it('refuses a forced workgroup size that is not a power of two or too large', () => {
    expect(() => planHadamard(64, 32768, 48)).toThrow(/power of two/);
    expect(() => planHadamard(64, 16384, 8192)).toThrow(/power of two/);
    expect(() => planHadamard(64, 32768, 16)).toThrow(/power of two in \[32, 8192\], got 16/); // below the 32 that hold an H_20 block
    expect(planHadamard(64, 32768, 32).workgroupElements).toBe(32);
  });

  it('rotationThreads: one invocation per 4 values, a power of two in [256, 1024] within the device limits', () => {
    const device = (invocations: number, sizeX: number) => ({ limits: { maxComputeInvocationsPerWorkgroup: invocations, maxComputeWorkgroupSizeX: sizeX } });
    const large = device(1024, 1024);
    expect([512, 1024, 2048, 4096, 12288, 65536].map((elements) => rotationThreads(large, elements))).toEqual([256, 256, 512, 1024, 1024, 1024]);
    expect(rotationThreads(large, 3072)).toBe(512); // 768 per 4 values: the power of two below
    expect(rotationThreads(device(768, 1024), 4096)).toBe(512);
    expect(rotationThreads(device(1024, 256), 4096)).toBe(256);
  });
});

describe('planHadamardRotation (CPU)', () => {
  it.each([
    [100, 32768, undefined],
    [1000, 32768, 64],
    [1100, 32768, undefined],
    [3000, 16384, 64],
    [11008, 32768, undefined],
    [11008, 16384, undefined],
    [28672, 32768, undefined],
  ])('n = %i, %i bytes, forced %s elements: planHadamard per stage of rotationPlan, one variant', (rows, bytes, elements) => {
    const plan = planHadamardRotation(rows, bytes, { workgroupElements: elements });
    const rotation = rotationPlan(rows);
    expect(plan.length).toBe(rotation.length);
    expect(plan.stages.map((s) => [s.offset, s.length, s.block])).toEqual(rotation.stages.map((s) => [s.offset, s.length, s.m]));
    for (const stage of plan.stages) {
      expect(stage).toMatchObject(planHadamard(stage.length, bytes, elements));
      expect(stage.workgroupElements).toBe(plan.workgroupElements);
    }
  });

  it('spreads a window of 8192 entries or more over passes of at most 1024 values when there are fewer than 8 columns', () => {
    const passes = (rows: number, bytes: number, options: Parameters<typeof planHadamardRotation>[2]) =>
      planHadamardRotation(rows, bytes, options).stages.map((stage) => stage.passes.map((p) => [p.levelStride, p.groupBlocks]));
    // 8192 fits 32 KB in one pass; one column spreads into 10 + 3 levels (8 workgroups per pass).
    expect(passes(8192, 32768, {})).toEqual([[[1, 8192]]]);
    expect(passes(8192, 32768, { columns: 1 })).toEqual([[[1, 1024], [1024, 8]]]);
    expect(passes(8192, 32768, { columns: 7 })).toEqual([[[1, 1024], [1024, 8]]]);
    expect(passes(8192, 32768, { columns: 8 })).toEqual([[[1, 8192]]]);
    expect(passes(8192, 32768, { columns: 1, spread: false })).toEqual([[[1, 8192]]]);
    // A forced workgroup memory wins; windows under 8192 keep one pass (4096 and 6144 = 12·512 among them).
    expect(passes(8192, 32768, { columns: 1, workgroupElements: 4096 })).toEqual([[[1, 4096], [4096, 2]]]);
    expect(passes(4096, 32768, { columns: 1 })).toEqual([[[1, 4096]]]);
    expect(passes(6144, 32768, { columns: 1 })).toEqual([[[1, 512]]]);
    expect(passes(4096, 32768, { columns: 8 })).toEqual([[[1, 4096]]]);
    expect(passes(2048, 32768, { columns: 1 })).toEqual([[[1, 2048]]]);
    // 4000: two windows of 3072 = 12·256, under 8192: one pass each.
    expect(passes(4000, 32768, { columns: 1 })).toEqual([[[1, 256]], [[1, 256]]]);
    expect(passes(11008, 49152, { columns: 1 })).toEqual([
      [[1, 32], [32, 16]],
      [[1, 32], [32, 16]],
    ]); // windows of 10240 = 20·512 in groups of 20·32 = 640 values
    // 14336 at 48 KB: windows of 12288 = 12·1024, one pass each for many columns, two of 12·64 values for one.
    expect(passes(14336, 49152, { columns: 64 })).toEqual([[[1, 1024]], [[1, 1024]]]);
    expect(passes(14336, 49152, { columns: 1 })).toEqual([
      [[1, 64], [64, 16]],
      [[1, 64], [64, 16]],
    ]);
    expect(planHadamardRotation(14336, 49152, { columns: 1 }).workgroupElements).toBe(1024); // holding one group of 768
    // A window that takes several passes anyway keeps its balanced plan (e.g. 16384 at 32 KB: 2 passes of 512-value groups).
    for (const [rows, bytes] of [[16384, 32768], [40960, 49152], [98304, 49152], [14336, 32768]] as const) {
      expect(passes(rows, bytes, { columns: 1 }), `${rows} at ${bytes} bytes`).toEqual(passes(rows, bytes, { columns: 1, spread: false }));
    }
  });

  it('refuses a forced workgroup memory too small for the blocks of 20 of a stage', () => {
    // 3000 → windows of 2560 = 20·128: a butterfly level needs two blocks of 20.
    expect(() => planHadamardRotation(3000, 32768, { workgroupElements: 32 })).toThrow(/two Hadamard blocks of 20/);
  });
});

describe.skipIf(noGpu !== undefined)('hadamard.wgsl: bit-identical to RandomizedHadamard', () => {
  const suite = contextOnTestDevice();

  /** The options of a rotation, and `length`: N (default rotationLength(rows)), which with rows picks the plan. */
  type Options = HadamardOptions & { readonly length?: number };

  async function expectForwardSameAsCpu(rows: number, cols: number, seed: number, options: Options, device = suite.context.device): Promise<void> {
    const input = testMatrix(rows, cols, (seed * 7 + rows) >>> 0);
    const expected = new RandomizedHadamard(rows, seed, options.length).forwardColumns(input);
    const got = await hadamardColumns(device, input, seed, options);
    expect([got.rows, got.cols]).toEqual([options.length ?? rotationLength(rows), cols]);
    expect(bitMismatches(got, expected)).toEqual([]);
  }

  /** The inverse of any N-row matrix (not only rotated ones): it is a linear map like the forward. */
  async function expectInverseSameAsCpu(rows: number, cols: number, seed: number, options: Options, device = suite.context.device): Promise<void> {
    const input = testMatrix(options.length ?? rotationLength(rows), cols, (seed * 13 + rows) >>> 0);
    const expected = new RandomizedHadamard(rows, seed, options.length).inverseColumns(input);
    const got = await hadamardInverseColumns(device, input, seed, rows, options);
    expect([got.rows, got.cols]).toEqual([rows, cols]);
    expect(bitMismatches(got, expected)).toEqual([]);
  }

  // n → N: 1, 4, 12, 20, 24, 40, 64, 96, 1024 (from 1000), 12·2^k up to 1536, 4096, and 20·2^k; one
  // stage each except 3000 (two windows of 2560, no padding).
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

  // Forced workgroup memory (f32 elements) and the passes it takes.
  // 1000 with N = 1024: the padded one-stage plan of time-shared matrices and of files of format ≤ 2.
  const smallMemory: [rows: number, cols: number, elements: number, passes: number, length?: number][] = [
    [64, 2, 32, 2],
    [4096, 1, 32, 3],
    [1000, 3, 64, 2, 1024],
    [768, 3, 32, 6],
    [640, 2, 64, 5],
    [20, 3, 32, 1],
    [12 * 64, 1, 128, 2],
  ];

  describe.each(paths)('%s', (_name, pathOptions, needsSubgroups) => {
    const skip = needsSubgroups && noSubgroups;

    it.skipIf(skip).each(sizes)('n = %i, %i columns (one pass): forward and inverse', async (rows, cols) => {
      const plan = planHadamardRotation(rows, suite.context.limits.maxComputeWorkgroupStorageSize);
      expect(plan.stages.map((stage) => stage.passes.length)).toEqual(plan.stages.map(() => 1));
      await expectForwardSameAsCpu(rows, cols, 42, pathOptions);
      await expectInverseSameAsCpu(rows, cols, 42, pathOptions);
    });

    it.skipIf(skip).each(smallMemory)(
      'forced small workgroup memory: n = %i, %i columns, %i elements → %i passes',
      async (rows, cols, elements, passes, length) => {
        expect(planHadamard(length ?? rotationLength(rows), 32768, elements).passes).toHaveLength(passes);
        await expectForwardSameAsCpu(rows, cols, 5, { ...pathOptions, workgroupElements: elements, length });
        await expectInverseSameAsCpu(rows, cols, 5, { ...pathOptions, workgroupElements: elements, length });
      },
    );

    it.skipIf(skip)('N = 16384, above the single-workgroup limit of 32 KB: several passes', async () => {
      const N = 16384;
      expect(N * 4).toBeGreaterThan(suite.context.limits.maxComputeWorkgroupStorageSize);
      expect(planHadamard(N, suite.context.limits.maxComputeWorkgroupStorageSize).passes.length).toBeGreaterThan(1);
      await expectForwardSameAsCpu(N - 5, 3, 7, pathOptions);
      await expectInverseSameAsCpu(N - 5, 2, 7, pathOptions);
    });

    it.skipIf(skip)('many short columns per workgroup (n = 3, 700 columns) and another seed', async () => {
      await expectForwardSameAsCpu(3, 700, 0xdeadbeef, pathOptions);
      await expectInverseSameAsCpu(3, 700, 0xdeadbeef, pathOptions);
    });
  });

  /*
   * Two-stage plans (n > 256, not a Hadamard length): windows [0, L) and [n − L, n), one after the
   * other, the second's first pass reading the first's results in place. By rotationPlan: 300 → L = 256, 896 → 768, 1000 → 768, 1025 → L =
   * 1024 (offset 1), 1100 → 1024, 1500 → 1280 = 20·64, 2100 → 2048, 3000 → 2560 = 20·128, 4000 →
   * 3072 = 12·256, 11008 → 10240 = 20·512.
   */
  describe.each(paths)('two-stage plans, %s', (_name, pathOptions, needsSubgroups) => {
    const skip = needsSubgroups && noSubgroups;
    const windowed: [rows: number, cols: number][] = [
      [300, 3],
      [896, 2],
      [1000, 1],
      [1025, 2],
      [1100, 3],
      [1500, 2],
      [2100, 1],
      [3000, 2],
      [4000, 1],
    ];

    it.skipIf(skip).each(windowed)('n = %i, %i columns (one pass per stage): forward and inverse', async (rows, cols) => {
      const plan = planHadamardRotation(rows, suite.context.limits.maxComputeWorkgroupStorageSize);
      expect(plan.stages.map((s) => s.passes.length)).toEqual([1, 1]);
      await expectForwardSameAsCpu(rows, cols, 42, pathOptions);
      await expectInverseSameAsCpu(rows, cols, 42, pathOptions);
    });

    // Forced small workgroup memory: every stage takes several passes, in place on the output.
    const smallMemory: [rows: number, cols: number, elements: number, passes: number][] = [
      [896, 2, 64, 3],
      [1100, 2, 64, 2],
      [1500, 2, 64, 6],
      [4000, 1, 256, 2],
    ];
    it.skipIf(skip).each(smallMemory)(
      'forced small workgroup memory: n = %i, %i columns, %i elements → %i passes per stage',
      async (rows, cols, elements, passes) => {
        expect(planHadamardRotation(rows, 32768, { workgroupElements: elements }).stages.map((s) => s.passes.length)).toEqual([passes, passes]);
        await expectForwardSameAsCpu(rows, cols, 5, { ...pathOptions, workgroupElements: elements });
        await expectInverseSameAsCpu(rows, cols, 5, { ...pathOptions, workgroupElements: elements });
      },
    );

    it.skipIf(skip)('a model width: n = 11008 (windows of 10240, two passes each), 2 columns', async () => {
      expect(planHadamardRotation(11008, suite.context.limits.maxComputeWorkgroupStorageSize).stages.map((s) => s.passes.length)).toEqual([2, 2]);
      await expectForwardSameAsCpu(11008, 2, 8, pathOptions);
      await expectInverseSameAsCpu(11008, 2, 8, pathOptions);
    });
  });

  it.each([
    [4096, 1],
    [5000, 2],
  ])('n = %i, %i column(s): windows under 8192 entries keep the fewest passes (spread or not) and give the CPU bits', async (rows, cols) => {
    const bytes = suite.context.limits.maxComputeWorkgroupStorageSize;
    expect(planHadamardRotation(rows, bytes, { columns: cols })).toEqual(planHadamardRotation(rows, bytes, { columns: cols, spread: false }));
    expect(planHadamardRotation(rows, bytes, { columns: cols }).stages.map((stage) => stage.passes.length)).toEqual(rows === 4096 && bytes < 4 * 4096 ? [2] : rows === 4096 ? [1] : [1, 1]);
    await expectForwardSameAsCpu(rows, cols, 11, {});
    await expectInverseSameAsCpu(rows, cols, 11, {});
  });

  it.each([
    [8192, 1],
    [8192, 7],
  ])('n = %i, %i column(s): spread over passes of ≤ 1024 values (the default) and in the fewest passes give the CPU bits', async (rows, cols) => {
    const bytes = suite.context.limits.maxComputeWorkgroupStorageSize;
    const spread = planHadamardRotation(rows, bytes, { columns: cols });
    expect(spread.workgroupElements).toBe(1024);
    expect(spread.stages.map((stage) => stage.passes.length)).toEqual(spread.stages.map(() => 2));
    if (rows === 8192) expect(planHadamardRotation(rows, bytes, { columns: cols, spread: false }).stages[0]?.passes).toHaveLength(bytes >= 4 * 8192 ? 1 : 2);
    for (const spread of [true, false]) {
      for (const batchedLoads of [false, true]) {
        await expectForwardSameAsCpu(rows, cols, 11, { spread, batchedLoads });
        await expectInverseSameAsCpu(rows, cols, 11, { spread, batchedLoads });
      }
    }
  });

  it('rotationRoundsInPass: one column of 8192 rounds apart (spread), of 4096 in the pass, 8 columns in the pass where it fits', () => {
    const fits = suite.context.limits.maxComputeWorkgroupStorageSize >= 4 * 8192;
    expect(rotationRoundsInPass(suite.context.device, 8192)).toBe(false);
    expect(rotationRoundsInPass(suite.context.device, 8192, { columns: 8 })).toBe(fits);
    expect(rotationRoundsInPass(suite.context.device, 8192, { spread: false })).toBe(fits);
    expect(rotationRoundsInPass(suite.context.device, 4096)).toBe(true);
    expect(rotationRoundsInPass(suite.context.device, 4096, { columns: 8 })).toBe(true);
    expect(rotationRoundsInPass(suite.context.device, 2048)).toBe(true);
    // Its third argument was workgroupElements, a number: refused, not ignored.
    expect(() => rotationRoundsInPass(suite.context.device, 4096, 1024 as never)).toThrow(/rotationRoundsInPass options must be an object, got 1024/);
    expect(() => rotationRoundsInPass(suite.context.device, 4096, { column: 8 } as never)).toThrow(/unknown option 'column' \(did you mean 'columns'\?\)/);
  });

  it.each([13824, 14336, 28672])('model width n = %i, one column: forward and inverse, loads batched or not', async (rows) => {
    expect(rotationLength(rows)).toBe(rows);
    for (const batchedLoads of [false, true]) {
      await expectForwardSameAsCpu(rows, 1, 3, { batchedLoads });
      await expectInverseSameAsCpu(rows, 1, 3, { batchedLoads });
    }
  });

  it('two-stage plans undo themselves: ‖inverse(forward(x)) − x‖ ≤ 2e-6·‖x‖ (n = 1100, 3000, 11008)', async () => {
    for (const rows of [1100, 3000, 11008]) {
      const x = testMatrix(rows, 2, rows);
      const back = await hadamardInverseColumns(suite.context.device, await hadamardColumns(suite.context.device, x, 9), 9, rows);
      let error = 0;
      let norm = 0;
      for (let i = 0; i < x.data.length; i++) {
        error += ((back.data[i] as number) - (x.data[i] as number)) ** 2;
        norm += (x.data[i] as number) ** 2;
      }
      expect(Math.sqrt(error), `n = ${rows}`).toBeLessThanOrEqual(2e-6 * Math.sqrt(norm));
    }
  });

  it('inverse undoes forward: ‖inverse(forward(x)) − x‖ ≤ 1e-6·‖x‖ (n = 1000, 768, 20, 3 columns)', async () => {
    for (const rows of [1000, 768, 20]) {
      const x = testMatrix(rows, 3, rows);
      const back = await hadamardInverseColumns(suite.context.device, await hadamardColumns(suite.context.device, x, 9), 9, rows);
      let error = 0;
      let norm = 0;
      for (let i = 0; i < x.data.length; i++) {
        error += ((back.data[i] as number) - (x.data[i] as number)) ** 2;
        norm += (x.data[i] as number) ** 2;
      }
      expect(Math.sqrt(error), `n = ${rows}`).toBeLessThanOrEqual(1e-6 * Math.sqrt(norm));
    }
  });

  it('refuses workgroup memory that cannot hold two blocks of 20', () => {
    expect(() => planHadamard(40, 32768, 32)).toThrow(/two Hadamard blocks/);
  });

  /**
   * Columns split across bindings (three per binding: four chunks) at unaligned offsets, both
   * directions; with forced small workgroup memory the inverse's work buffer serves every chunk (n = 90,
   * padded) or the two stages work in place (n = 1100, windows of 1024).
   */
  it.each([
    ['n = 90 (N = 96), default', 90, {}],
    ['n = 90, 3 passes, no subgroups', 90, { workgroupElements: 32, subgroups: false }],
    ['n = 90, 3 passes', 90, { workgroupElements: 32 }],
    ['n = 1100 (two windows of 1024), default', 1100, {}],
    ['n = 1100, 2 passes per stage, no subgroups', 1100, { workgroupElements: 64, subgroups: false }],
    ['n = 1100, 2 passes per stage', 1100, { workgroupElements: 64 }],
  ] as [string, number, Options][])('splits columns across bindings and honours unaligned offsets (%s)', async (_name, rows, options) => {
    const { device } = suite.context;
    const cols = 10;
    const N = rotationLength(rows);
    const seed = 99;
    const input = testMatrix(rows, cols, 3);
    const rotated = new RandomizedHadamard(rows, seed).forwardColumns(input);
    const restored = new RandomizedHadamard(rows, seed).inverseColumns(rotated);
    const rotatedOffset = 44;
    const inputOffset = 20;
    const restoredOffset = 8;
    const inputBuffer = createBuffer(device, 'test hadamard input', inputOffset + 4 * rows * cols, STORAGE_USAGE);
    const rotatedBuffer = createBuffer(device, 'test hadamard rotated', rotatedOffset + 4 * N * cols, STORAGE_USAGE);
    const restoredBuffer = createBuffer(device, 'test hadamard restored', restoredOffset + 4 * rows * cols, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const [gotRotated, gotRestored] = await withValidation(device, 'split hadamard', async () => {
        uploadToBuffer(device, inputBuffer, input.data, inputOffset);
        const encoder = device.createCommandEncoder({ label: 'split hadamard' });
        const maxBindingBytes = 4 * N * 3 + 256;
        const common = { ...options, rows, cols, seed, maxBindingBytes };
        dispatchHadamard(device, encoder, scratch, { ...common, input: inputBuffer, output: rotatedBuffer, inputOffset, outputOffset: rotatedOffset });
        dispatchHadamardInverse(device, encoder, scratch, {
          ...common,
          input: rotatedBuffer,
          output: restoredBuffer,
          inputOffset: rotatedOffset,
          outputOffset: restoredOffset,
        });
        device.queue.submit([encoder.finish()]);
        return [
          new Float32Array(await readBuffer(device, rotatedBuffer, 4 * N * cols, rotatedOffset)),
          new Float32Array(await readBuffer(device, restoredBuffer, 4 * rows * cols, restoredOffset)),
        ];
      });
      expect(bitMismatches({ rows: N, cols, data: gotRotated }, rotated)).toEqual([]);
      expect(bitMismatches({ rows, cols, data: gotRestored }, restored)).toEqual([]);
    } finally {
      scratch.destroy();
      inputBuffer.destroy();
      rotatedBuffer.destroy();
      restoredBuffer.destroy();
    }
  });

  /**
   * f16 input (a model's activations): widened exactly on load, so the result equals the CPU rotation
   * of the f16 values bit for bit, whatever the half offset (odd columns start mid-word: n odd), the
   * passes and stages, with loads batched or not, and with the columns split across bindings.
   */
  it.each([
    ['n = 9 (N = 12), odd half offset', 9, 3, 6, {}],
    ['n = 1000, 2 passes', 1000, 3, 2, { workgroupElements: 64 }],
    ['n = 1100 (two stages), split across bindings', 1100, 10, 42, { maxBindingBytes: 4 * 1100 * 3 + 256 }],
    ['n = 90, 3 passes, no subgroups, split across bindings', 90, 10, 22, { workgroupElements: 32, subgroups: false, maxBindingBytes: 4 * 96 * 3 + 256 }],
    // Batched loads read the input through a load of its own (input_value_unbranched).
    ['n = 9 (N = 12), odd half offset, batched loads', 9, 3, 6, { batchedLoads: true }],
    ['n = 1000, 2 passes, batched loads', 1000, 3, 2, { workgroupElements: 64, batchedLoads: true }],
  ] as [string, number, number, number, Options][])('f16 input equals the CPU rotation of the f16 values (%s)', async (_name, rows, cols, inputOffset, options) => {
    const { device } = suite.context;
    const N = rotationLength(rows);
    const seed = 31;
    // Within f16's range (testMatrix spans 2^±20), zeros included.
    const rng = new Rng(rows + 1);
    const source = { rows, cols, data: Float32Array.from({ length: rows * cols }, () => (rng.nextInt(50) === 0 ? 0 : rng.nextGaussian() * 2 ** (rng.nextInt(21) - 10))) };
    // Subnormal halves (fraction · 2^-24, which WGSL's unpack2x16float may read as ±0) and −0 among them.
    for (const [i, v] of [[1, 2 ** -24], [2, -3 * 2 ** -24], [4, 0x3ff * 2 ** -24], [5, -0], [7, 0x200 * 2 ** -24]] as const) source.data[i] = v;
    const bits = Uint16Array.from(source.data, (v) => float16Bits(v));
    const values = toFloat32Matrix({ rows, cols, data: bits });
    expect(values.data.some((v, i) => v !== source.data[i])).toBe(true); // the test data are not exact in f16
    const expected = new RandomizedHadamard(rows, seed).forwardColumns(values);
    const bytes = new Uint8Array(Math.ceil((inputOffset + 2 * rows * cols) / 4) * 4 + 4);
    bytes.fill(0x7c); // +Inf/NaN-like halves around the data: read past it and the result shows it
    bytes.set(new Uint8Array(bits.buffer), inputOffset);
    const inputBuffer = createBuffer(device, 'test hadamard f16 input', bytes.length, STORAGE_USAGE);
    const output = createBuffer(device, 'test hadamard f16 output', 4 * N * cols, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const got = await withValidation(device, 'f16 hadamard', async () => {
        uploadToBuffer(device, inputBuffer, bytes);
        const encoder = device.createCommandEncoder({ label: 'f16 hadamard' });
        dispatchHadamard(device, encoder, scratch, { ...options, input: inputBuffer, inputOffset, inputFormat: 'f16', output, rows, cols, seed });
        device.queue.submit([encoder.finish()]);
        return new Float32Array(await readBuffer(device, output, 4 * N * cols));
      });
      expect(bitMismatches({ rows: N, cols, data: got }, expected)).toEqual([]);
      const encoder = device.createCommandEncoder();
      expect(() => dispatchHadamard(device, encoder, scratch, { input: inputBuffer, inputOffset: 3, inputFormat: 'f16', output, rows, cols, seed })).toThrow(/multiple of 2/);
      expect(() => dispatchHadamard(device, encoder, scratch, { input: inputBuffer, inputFormat: 'bf16' as 'f16', output, rows, cols, seed })).toThrow(/inputFormat/);
    } finally {
      scratch.destroy();
      inputBuffer.destroy();
      output.destroy();
    }
  });

  it("a device with WebGPU's default limits (256 invocations, 16 KB), as an app may create: 256-invocation variants, the same bits", async () => {
    // Up to 1024 invocations where the device allows them; the defaults allow 256.
    expect(rotationThreads(suite.context.device, 12288)).toBe(Math.min(1024, suite.context.limits.maxComputeInvocationsPerWorkgroup, suite.context.limits.maxComputeWorkgroupSizeX));
    const device = await defaultLimitsDevice();
    try {
      expect(device.limits.maxComputeInvocationsPerWorkgroup).toBe(256);
      expect(rotationThreads(device, 4096)).toBe(256);
      // 4096: one pass (16 KB holds it); 8000 → 8192 and 12·1024: two passes; 11008: two stages of two passes.
      for (const [rows, cols] of [[4096, 1], [8000, 2], [12 * 1024, 1], [11008, 1]] as const) {
        await expectForwardSameAsCpu(rows, cols, 13, {}, device);
        await expectInverseSameAsCpu(rows, cols, 13, {}, device);
      }
    } finally {
      device.destroy();
    }
  });

  it('16 KB workgroup memory: N = 8192 and the windows of 11008 take two passes (both directions, each path)', async () => {
    const small = await testDevice({ workgroupStorageLimit: 16384 });
    try {
      expect(small.limits.maxComputeWorkgroupStorageSize).toBe(16384);
      expect(planHadamard(8192, 16384).passes).toHaveLength(2);
      expect(planHadamardRotation(11008, 16384).stages.map((s) => s.passes.length)).toEqual([2, 2]);
      for (const [name, options, needsSubgroups] of paths) {
        if (needsSubgroups && !small.features.subgroups) continue;
        await expectForwardSameAsCpu(8000, 2, 11, options, small.device).catch(failIn(name));
        await expectInverseSameAsCpu(8000, 2, 11, options, small.device).catch(failIn(name));
        await expectForwardSameAsCpu(11008, 1, 11, options, small.device).catch(failIn(name));
        await expectInverseSameAsCpu(11008, 1, 11, options, small.device).catch(failIn(name));
      }
    } finally {
      small.device.destroy();
    }
  });

  it('refuses the same buffer as input and output, and test modes without subgroups', () => {
    const { device } = suite.context;
    const buffer = createBuffer(device, 'test in-place', 64, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const encoder = device.createCommandEncoder();
      const same = { input: buffer, output: buffer, rows: 4, cols: 1, seed: 1 };
      expect(() => dispatchHadamard(device, encoder, scratch, same)).toThrow(/different buffers/);
      expect(() => dispatchHadamardInverse(device, encoder, scratch, same)).toThrow(/different buffers/);
      const other = createBuffer(device, 'test other', 64, STORAGE_USAGE);
      try {
        expect(() =>
          dispatchHadamard(device, encoder, scratch, { ...same, output: other, subgroups: false, subgroupTestMode: 'fallback' }),
        ).toThrow(/subgroupTestMode/);
      } finally {
        other.destroy();
      }
    } finally {
      scratch.destroy();
      buffer.destroy();
    }
  });

  it('inverse: refuses an input whose rows are not a rotated length of rows, and too small buffers', async () => {
    const { device } = suite.context;
    await expect(hadamardInverseColumns(device, testMatrix(16, 1, 1), 1, 12)).rejects.toThrow(/input has 16 rows, expected a rotated length of 12 \(12\)/);
    await expect(hadamardInverseColumns(device, testMatrix(960, 1, 1), 1, 896)).rejects.toThrow(/input has 960 rows, expected a rotated length of 896 \(896 or 1024\)/);
    const input = createBuffer(device, 'test inverse input', 4 * 12, STORAGE_USAGE); // N = 12 needs 48 bytes per column
    const output = createBuffer(device, 'test inverse output', 4 * 9, STORAGE_USAGE);
    const scratch = new GpuScratch(device);
    try {
      const encoder = device.createCommandEncoder();
      expect(() => dispatchHadamardInverse(device, encoder, scratch, { input, output, rows: 9, cols: 2, seed: 1 })).toThrow(/input/);
    } finally {
      scratch.destroy();
      input.destroy();
      output.destroy();
    }
  });
});

function failIn(name: string): (error: unknown) => never {
  return (error) => {
    throw new Error(`path ${name}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  };
}
