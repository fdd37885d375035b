import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { D3 } from '../../src/lattices/d3.js';
import { innerProductTable, leaderTable } from '../../src/lattices/innerProductTable.js';
import { VoronoiCode } from '../../src/lattices/voronoiCode.js';
import { matmulATExact, productNmse, type Matrix } from '../../src/matrix.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import type { DeterministicLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import type { LatticeScheme } from '../../src/quantize/schemes.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { dotPathFor, type DotPath } from '../../src/gpu/kernels/e8Matmul.js';
import { tableMatmulAT, tableMatmulLayout, tableMatmulShaderSource, type TableMatmulArgs } from '../../src/gpu/kernels/tableMatmul.js';
import {
  chooseTableLayout,
  TABLE_CODES,
  tableEntry,
  tableLayout,
  tableWords,
  triangleIndex,
  type TableLayoutKind,
} from '../../src/gpu/tableLayout.js';
import { gpuQuantizeLattice, uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import type { GpuDeterministicMatrix } from '../../src/gpu/latticeOperand.js';
import { contextOnTestDevice, gpuUnavailableReason, skipUnless, testDevice } from './gpuTestDevice.js';
import { asDeterministic, asDeterministicGpu, asUniversal, shifted, withRandomCodes, worstScaledError } from './latticeTestSupport.js';

/*
 * The D3 q = 6 table product against the CPU `matmulAT` (its table path). Stated tolerance:
 * |gpu − cpu| ≤ 1e-5 · ‖a_i‖·‖b_j‖ per entry. Why: the integer block sums are exact on both sides
 * within a run of ≤ 16 blocks; the GPU adds the run sums in f32 (relative error ≤ blocks·2^−24 of
 * Σ|terms|, ≤ 1e-6 for these sizes since Σ|terms| ≲ ‖â‖‖b̂‖ ≈ ‖a‖‖b‖) and applies four f32
 * multiplications and one addition (a few 2^−24), while the CPU rounds once. A wrong table entry,
 * scale or index moves an entry by ~1e-2 · ‖a‖‖b‖ or more.
 */

const noGpu = await gpuUnavailableReason();

const code = new VoronoiCode(D3, 6);
const referenceTable = innerProductTable(code);

describe('table layouts (CPU): what the kernel reads', () => {
  it.each<TableLayoutKind>(['full', 'triangle', 'leaders'])('%s layout: every one of the 216² entries equals ⟨leader(a), leader(b)⟩', (kind) => {
    const words = tableWords(kind);
    const leaders = leaderTable(code);
    let mismatches = 0;
    for (let a = 0; a < TABLE_CODES; a++) {
      for (let b = 0; b < TABLE_CODES; b++) {
        let dot = 0;
        for (let i = 0; i < 3; i++) dot += (leaders[3 * a + i] as number) * (leaders[3 * b + i] as number);
        if (tableEntry(kind, words, a, b) !== dot || referenceTable[a * TABLE_CODES + b] !== dot) mismatches++;
      }
    }
    expect(mismatches).toBe(0);
  });

  it('table sizes: 46,656 / 23,436 / 864 bytes', () => {
    expect(4 * tableWords('full').length).toBe(46656);
    expect(4 * tableWords('triangle').length).toBe(23436);
    expect(4 * tableWords('leaders').length).toBe(864);
  });

  it('the triangle index enumerates 0 … 23,435 once each', () => {
    const seen = new Uint8Array(23436);
    for (let a = 0; a < TABLE_CODES; a++) for (let b = a; b < TABLE_CODES; b++) seen[triangleIndex(a, b)]! += 1;
    expect(seen.every((count) => count === 1)).toBe(true);
  });

  it.each([
    [16384, 8],
    [17248, 16],
    [32768, 16],
    [65536, 16],
  ] as const)('%i bytes granted → the leaders layout (the default everywhere), slices of %i blocks, within the limit', (limit, slice) => {
    const layout = chooseTableLayout(limit);
    expect([layout.kind, layout.sliceBlocks]).toEqual(['leaders', slice]);
    expect(layout.workgroupBytes).toBeLessThanOrEqual(limit);
  });

  it.each([
    // Leaders: the table (864 bytes), two code slices and two slices of multiples, 64 columns × slice × 4 bytes each.
    ['leaders', 17248, 16, 864 + 4 * 64 * 16 * 4],
    ['leaders', 17247, 8, 864 + 4 * 64 * 8 * 4],
    // Full and triangle: the table, two code slices, and the kernel's two one-entry slices of multiples.
    ['triangle', 32768, 16, 23436 + 2 * 64 * 16 * 4 + 8],
    ['full', 49152, 4, 46656 + 2 * 64 * 4 * 4 + 8],
    ['full', 65536, 16, 46656 + 2 * 64 * 16 * 4 + 8],
  ] as const)('%s layout at %i bytes: slices of %i blocks, %i bytes of workgroup memory', (kind, limit, slice, bytes) => {
    const layout = tableLayout(kind, limit);
    expect([layout?.sliceBlocks, layout?.workgroupBytes]).toEqual([slice, bytes]);
  });

  it('a layout that does not fit is refused', () => {
    expect(tableLayout('full', 32768)).toBeNull();
    expect(tableLayout('triangle', 16384)).toBeNull();
    expect(tableLayout('leaders', 864 + 4 * 64 * 4 * 4 - 1)).toBeNull();
    expect(() => chooseTableLayout(1024)).toThrow(LatticeMatmulError);
  });
});

// The table kernel multiplies deterministic D3 q = 6 codes (universal operands are decoded instead).
const D3_Q6: QuantizeOptions = { scheme: 'd3-q6-deterministic', seed: 11 };

/** Quantizes both on the CPU, runs the GPU kernel, and returns the worst scaled error against matmulAT. */
async function compare(
  context: GpuContext,
  a: Matrix,
  b: Matrix,
  options: QuantizeOptions,
  kernelOptions: Partial<Pick<TableMatmulArgs, 'layout' | 'dotPath' | 'maxBindingBytes'>> = {},
  bOptions: QuantizeOptions = options,
  randomCodes = false,
): Promise<{ ratio: number; at: string; nmse: number }> {
  const maybeRandom = (m: DeterministicLatticeMatrix, seed: number) => (randomCodes ? withRandomCodes(m, seed) : m);
  const qa = maybeRandom(asDeterministic(quantize(a, options)), 1);
  const qb = maybeRandom(asDeterministic(quantize(b, bOptions)), 2);
  const expected = matmulAT(qa, qb);
  const ga = uploadLatticeMatrix(context.device, qa);
  const gb = uploadLatticeMatrix(context.device, qb);
  try {
    const got = await tableMatmulAT(context.device, ga, gb, { dotPath: dotPathFor(context.features), ...kernelOptions });
    expect([got.rows, got.cols]).toEqual([a.cols, b.cols]);
    return { ...worstScaledError(got.data, expected.data, a, b, 1e-5), nmse: productNmse(got, a, b) };
  } finally {
    ga.destroy();
    gb.destroy();
  }
}

const shapes: [n: number, aCols: number, bCols: number][] = [
  [1, 1, 1],
  [3, 3, 17],
  [8, 17, 3],
  [13, 33, 1],
  [100, 17, 33],
  [192, 33, 65],
  [192, 1, 3],
];

describe.skipIf(noGpu !== undefined)('d3_table_matmul.wgsl on the device', () => {
  const suite = contextOnTestDevice();

  it.each(shapes)('n = %i, %i × %i columns (best layout for the device): within 1e-5·‖a_i‖‖b_j‖ of matmulAT', async (n, aCols, bCols) => {
    const a = gaussianMatrix(n, aCols, 100 + n);
    const b = gaussianMatrix(n, bCols, 200 + bCols);
    const result = await compare(suite.context, a, b, D3_Q6);
    expect(result.ratio, result.at).toBeLessThanOrEqual(1);
  });

  it('the product is an estimate of AᵀB: NMSE averaged over 4 data pairs near the scheme\'s ≈ 0.06 at n = 192', async () => {
    // The GPU product is matmulAT's within 1e-5·‖a_i‖‖b_j‖ (ratio ≤ 1), so its NMSE is the CPU's, whose
    // only randomness is the data: 0.0607 ± 0.0042 over 40 pairs of 192 × 33 and 192 × 17 Gaussian
    // columns (measured on the CPU). 4 pairs: standard error 0.0021, the bounds [0.048, 0.073] 6σ from
    // the mean (a false failure about once in 5·10⁸), and a 25 % larger error fails, where one pair
    // against [0.01, 0.15] let 2.5 times the error pass.
    let nmse = 0;
    for (let t = 0; t < 4; t++) {
      const result = await compare(suite.context, gaussianMatrix(192, 33, 5 + 2 * t), gaussianMatrix(192, 17, 6 + 2 * t), D3_Q6);
      expect(result.ratio, result.at).toBeLessThanOrEqual(1);
      nmse += result.nmse / 4;
    }
    expect(nmse).toBeGreaterThan(0.048);
    expect(nmse).toBeLessThan(0.073);
  });

  it.each([1, 8, 100, 192])('centred inputs, n = %i: the mean term n·μ_a·μ_b is added', async (n) => {
    const a = shifted(gaussianMatrix(n, 17, 7 + n), 3);
    const b = shifted(gaussianMatrix(n, 3, 8 + n), -2);
    const centred = await compare(suite.context, a, b, { ...D3_Q6, center: true });
    expect(centred.ratio, centred.at).toBeLessThanOrEqual(1);
    if (n > 1) {
      // Most of AᵀB is the mean term here: without it the estimate would be far off.
      const exact = matmulATExact(a, b);
      expect(Math.abs(exact.data[0] as number)).toBeGreaterThan(n);
    }
  });

  it('without shrinkage gains on one side (gains = null) and with them on the other', async () => {
    const a = gaussianMatrix(100, 17, 9);
    const b = gaussianMatrix(100, 33, 10);
    const result = await compare(suite.context, a, b, { ...D3_Q6, gain: 'none' }, {}, D3_Q6);
    expect(result.ratio, result.at).toBeLessThanOrEqual(1);
  });

  it('time-sharing (keepFraction 0.5): only the kept blocks count', async () => {
    const a = gaussianMatrix(192, 17, 12);
    const b = gaussianMatrix(192, 3, 13);
    const result = await compare(suite.context, a, b, { ...D3_Q6, keepFraction: 0.5 });
    expect(result.ratio, result.at).toBeLessThanOrEqual(1);
  });

  it('large scale multiples (ladder ratio 2, 9 steps: k up to 4096) sum in exact slices of 3 blocks', async () => {
    const scheme: LatticeScheme = { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 6, overload: { kind: 'ladder', beta: 0.05, ratio: 2, steps: 9 } };
    const a = gaussianMatrix(192, 33, 14);
    const b = gaussianMatrix(192, 17, 15);
    const result = await compare(suite.context, a, b, { scheme, seed: 3 });
    expect(result.ratio, result.at).toBeLessThanOrEqual(1);
  });

  it('A and B on different scale grids (4-bit indices into a ladder of all 16 multiples the kernel holds, 16 … 2896, against the default’s 2-bit ones into 4), both orders, each layout this device allows', async () => {
    // Each operand's scale indices and multiples must be read with its own bit width and grid: with
    // one operand's used for both, the other's blocks take wrong multiples (an error of order ‖a‖‖b‖).
    // Random indices reach the last of the 16 uniform slots (index 15) too.
    const wide: LatticeScheme = { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 6, overload: { kind: 'ladder', beta: 0.05, ratio: Math.SQRT2, steps: 16 } };
    const wideOptions: QuantizeOptions = { scheme: wide, seed: D3_Q6.seed };
    const a = gaussianMatrix(100, 17, 64);
    const b = gaussianMatrix(100, 3, 65);
    const granted = suite.context.device.limits.maxComputeWorkgroupStorageSize;
    const tables = (['full', 'triangle'] as const).filter((kind) => tableLayout(kind, granted) !== null);
    for (const [layout, dotPath] of [['leaders', dotPathFor(suite.context.features)], ...tables.map((kind) => [kind, 'plain'] as const)] as const) {
      for (const [aOptions, bOptions, order] of [[wideOptions, D3_Q6, 'wide × default'], [D3_Q6, wideOptions, 'default × wide']] as const) {
        const result = await compare(suite.context, a, b, aOptions, { layout, dotPath }, bOptions, true);
        expect(result.ratio, `${layout}, ${order}: ${result.at}`).toBeLessThanOrEqual(1);
      }
    }
  });

  it('work split across many bindings and dispatches (maxBindingBytes 1024) gives the same product', async () => {
    const a = gaussianMatrix(100, 70, 16);
    const b = gaussianMatrix(100, 33, 17);
    const result = await compare(suite.context, a, b, D3_Q6, { maxBindingBytes: 1024 });
    expect(result.ratio, result.at).toBeLessThanOrEqual(1);
  });

  it.each([3, 100])('random codes and scale indices (every table entry in play), n = %i, with each layout this device allows', async (n) => {
    const a = gaussianMatrix(n, 33, 60 + n);
    const b = gaussianMatrix(n, 17, 61 + n);
    const granted = suite.context.device.limits.maxComputeWorkgroupStorageSize;
    const tables = (['full', 'triangle'] as const).filter((kind) => tableLayout(kind, granted) !== null);
    for (const [layout, dotPath] of [['leaders', 'plain'], ['leaders', dotPathFor(suite.context.features)], ...tables.map((kind) => [kind, 'plain'] as const)] as const) {
      const result = await compare(suite.context, a, b, D3_Q6, { layout, dotPath }, D3_Q6, true);
      expect(result.ratio, `${layout}, ${dotPath} dot: ${result.at}`).toBeLessThanOrEqual(1);
    }
  });

  it('the leaders layout forced on this device', async () => {
    const a = gaussianMatrix(100, 33, 18);
    const b = gaussianMatrix(100, 17, 19);
    const result = await compare(suite.context, a, b, D3_Q6, { layout: 'leaders' });
    expect(result.ratio, result.at).toBeLessThanOrEqual(1);
  });

  // Bit for bit where the slices are as deep: the integer sums of a slice are exact, and the f32 sum of
  // the slices then runs in the same order (a shallower slice, as the full table's at 48 KB, sums in
  // other places: within the tolerance of the tests above).
  it.each([3, 100])('every layout this device allows with 16-block slices and both dot paths give the same C, bit for bit, n = %i, random codes', async (n) => {
    const qa = withRandomCodes(asDeterministic(quantize(gaussianMatrix(n, 33, 70 + n), D3_Q6)), 3);
    const qb = withRandomCodes(asDeterministic(quantize(gaussianMatrix(n, 65, 71 + n), D3_Q6)), 4);
    const ga = uploadLatticeMatrix(suite.context.device, qa);
    const gb = uploadLatticeMatrix(suite.context.device, qb);
    const granted = suite.context.device.limits.maxComputeWorkgroupStorageSize;
    const paths: DotPath[] = suite.context.features.packed4x8IntegerDotProduct ? ['plain', 'packed'] : ['plain'];
    const runs: { name: string; data: Float32Array }[] = [];
    try {
      for (const layout of ['full', 'triangle', 'leaders'] as const) {
        if (tableLayout(layout, granted)?.sliceBlocks !== 16) continue;
        for (const dotPath of layout === 'leaders' ? paths : (['plain'] as const)) {
          runs.push({ name: `${layout}/${dotPath}`, data: (await tableMatmulAT(suite.context.device, ga, gb, { layout, dotPath })).data });
        }
      }
    } finally {
      ga.destroy();
      gb.destroy();
    }
    expect(runs.length).toBeGreaterThanOrEqual(2);
    const first = runs[0]!;
    for (const run of runs.slice(1)) {
      const differing = run.data.findIndex((value, i) => !Object.is(value, first.data[i]));
      expect(differing, `${run.name} vs ${first.name}`).toBe(-1);
    }
  });

  it('matrices encoded on the GPU (gpuQuantizeLattice) multiply to the CPU product of the CPU encoding', async () => {
    const a = shifted(gaussianMatrix(100, 33, 62), 1);
    const b = gaussianMatrix(100, 17, 63);
    const options = { ...D3_Q6, center: true };
    const ga = asDeterministicGpu(await gpuQuantizeLattice(suite.context.device, a, options));
    const gb = asDeterministicGpu(await gpuQuantizeLattice(suite.context.device, b, options));
    try {
      const got = await tableMatmulAT(suite.context.device, ga, gb, { dotPath: dotPathFor(suite.context.features) });
      const expected = matmulAT(asDeterministic(quantize(a, options)), asDeterministic(quantize(b, options)));
      const worst = worstScaledError(got.data, expected.data, a, b, 1e-5);
      expect(worst.ratio, worst.at).toBeLessThanOrEqual(1);
    } finally {
      ga.destroy();
      gb.destroy();
    }
  });

  it('the default is the leaders layout; each table layout the device allows, forced, matches matmulAT (the full table where ≥ 48 KB is granted: real GPUs; lavapipe grants 32 KB)', async () => {
    expect(tableMatmulLayout(suite.context.device).kind).toBe('leaders');
    const granted = suite.context.device.limits.maxComputeWorkgroupStorageSize;
    const a = gaussianMatrix(192, 33, 50);
    const b = gaussianMatrix(192, 17, 51);
    for (const layout of ['full', 'triangle'] as const) {
      if (tableLayout(layout, granted) === null) continue;
      const result = await compare(suite.context, a, b, D3_Q6, { layout });
      expect(result.ratio, `${layout}: ${result.at}`).toBeLessThanOrEqual(1);
    }
  });

  it('the full-table variant compiles without WGSL errors on this device', async () => {
    const full = tableLayout('full', 65536);
    expect(full).not.toBeNull();
    const module = suite.context.device.createShaderModule({ label: 'full table probe', code: tableMatmulShaderSource({ layout: full!, dotPath: 'plain' }) });
    const info = await module.getCompilationInfo();
    expect(info.messages.filter((m) => m.type === 'error').map((m) => m.message)).toEqual([]);
  });

  it('refuses operands it cannot multiply, with LatticeMatmulError', async () => {
    const a = gaussianMatrix(24, 3, 20);
    const qa = asDeterministic(quantize(a, D3_Q6));
    const qOther = asDeterministic(quantize(a, { ...D3_Q6, seed: 12 }));
    const qE8 = asDeterministic(quantize(a, { scheme: 'e8-q16-deterministic', seed: 11 }));
    const gUniversal = uploadLatticeMatrix(suite.context.device, asUniversal(quantize(a, { scheme: 'd3-q6', seed: 11, nonce: 1 })));
    const ga = uploadLatticeMatrix(suite.context.device, qa);
    const gOther = uploadLatticeMatrix(suite.context.device, qOther);
    const gE8 = uploadLatticeMatrix(suite.context.device, qE8);
    const plain = { dotPath: 'plain' } as const;
    try {
      await expect(tableMatmulAT(suite.context.device, ga, gOther, plain)).rejects.toThrow(/different seeds/);
      await expect(tableMatmulAT(suite.context.device, ga, gE8, plain)).rejects.toThrow(LatticeMatmulError);
      // A universal D3 matrix passed where the deterministic kernel expects its operand (a JavaScript caller).
      await expect(tableMatmulAT(suite.context.device, ga, gUniversal as unknown as GpuDeterministicMatrix, plain)).rejects.toThrow(/deterministic lattice scheme/);
      const granted = suite.context.device.limits.maxComputeWorkgroupStorageSize;
      // The full table needs 46656 bytes, 2048 of operand slices and 8 of scale multiples.
      if (granted < 48712) await expect(tableMatmulAT(suite.context.device, ga, ga, { ...plain, layout: 'full' })).rejects.toThrow(/does not fit/);
      // A JavaScript caller's misspelt dot path.
      await expect(tableMatmulAT(suite.context.device, ga, ga, { dotPath: 'fast' as DotPath })).rejects.toThrow(/dotPath must be 'packed' or 'plain'/);
    } finally {
      ga.destroy();
      gOther.destroy();
      gE8.destroy();
      gUniversal.destroy();
    }
  });
});

/** One device per forced workgroup-storage limit: the layout follows the granted limit. */
describe.skipIf(noGpu !== undefined).each([
  [16384, 8],
  [32768, 16],
] as const)('device granting %i bytes of workgroup memory', (limit, sliceBlocks) => {
  let context: GpuContext | undefined;
  let adapterLimit = 0;
  beforeAll(async () => {
    const probe = await testDevice();
    adapterLimit = probe.adapter.limits.maxComputeWorkgroupStorageSize;
    probe.device.destroy();
    if (limit <= adapterLimit) context = await testDevice({ workgroupStorageLimit: limit });
  });
  afterAll(() => context?.device.destroy());

  it(`chooses the leaders layout with slices of ${sliceBlocks} blocks and matches matmulAT for n = 13, 192 and centred inputs`, async (test) => {
    skipUnless(test, context !== undefined, `${limit} bytes of workgroup memory (the adapter grants ${adapterLimit})`);
    expect([tableMatmulLayout(context.device).kind, tableMatmulLayout(context.device).sliceBlocks]).toEqual(['leaders', sliceBlocks]);
    for (const [n, aCols, bCols, center] of [
      [13, 17, 3, false],
      [192, 33, 17, true],
    ] as const) {
      const a = shifted(gaussianMatrix(n, aCols, 30 + n), center ? 1 : 0);
      const b = gaussianMatrix(n, bCols, 40 + n);
      const result = await compare(context, a, b, { ...D3_Q6, center });
      expect(result.ratio, `n = ${n}: ${result.at}`).toBeLessThanOrEqual(1);
    }
  });
});
