import { beforeAll, describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { createBuffer, createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { withValidation } from '../../src/gpu/errorScopes.js';
import { dispatchUniversalCallSums, dispatchUniversalGemv, fusedFinishSupported, leaderTableCopies, universalGemv, type UniversalGemvOptions } from '../../src/gpu/kernels/universalGemv.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { uploadUniversalMatrix } from '../../src/gpu/universalOperand.js';
import type { Matrix } from '../../src/matrix.js';
import { gpuEscapes } from '../../src/format/universalLayout.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { matvecAT } from '../../src/product/matvec.js';
import { DITHER_GRID, latticeSpec } from '../../src/quantize/latticeSpec.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import type { UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import type { UniversalLatticeScheme } from '../../src/quantize/schemes.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { nodeGpu } from '../../src/gpu/nodeGpu.js';
import { contextOnTestDevice, gpuUnavailableReason, skipUnless, testDevice } from './gpuTestDevice.js';
import { spiky, spikedGaussian } from './latticeTestSupport.js';

/*
 * The universal GEMV kernel (shaders/universal_gemv.wgsl + universal_gemv_finish.wgsl) against its CPU
 * twin `matvecAT`, entry by entry. Both read the same x̃ (the GPU rotation is bit for bit the CPU's), so
 * they differ by the kernel's f32 arithmetic only. Per output the kernel adds the terms c_v·x̃_v
 * (c_v = λ_v·M/s − field_v, exact integers), then the call's Σ offset_v·x̃_v, multiplies by
 * scale = ν·β/(M·√N) and adds μ·Σx. Every term passes through at most K + 8 roundings: its product, at
 * most K additions along any path of the lane loops and trees (K = max(keptLength, n)), the offset sum,
 * the scale (rounded twice) and the final multiply-add. The standard bound for sums in any order gives
 *     |y − y_cpu| ≤ γ_{K+8}·S,   S = Σ_i |ŵ_i·x̃_i| + 2·scale·Σ_{i<kept} offset_i·|x̃_i| + |μ|·Σ|x_i| + |y_cpu|
 * (γ_k = k·u/(1 − k·u), u = 2^−24), because scale·|c_v| ≤ |ŵ_v| + scale·offset_v and the offset sum
 * adds the second offset term; the CPU's float64 adds nothing at this scale. The test allows
 * 2·(K + 8)·u·S, computing S from the CPU decode, the CPU rotation and the lattice's dither offsets, and
 * checks that this stays below 1 % of the largest |y| (it is 10^−5…2·10^−3 here), while a single wrong
 * coordinate moves an output by about |y|/√N ≥ 3 % at these sizes: a wrong block, escape, dither field,
 * offset or mean fails it (a missing tail mask, escape or offset sign does: checked by hand).
 *
 * Paths: every case runs the plain variant (workgroup-memory tree) and, where the device has
 * 'subgroups', the subgroup variant with its fallback poisoned, so a match shows that the shuffles ran
 * (lavapipe's subgroups of 8 take the shuffles and then the tree over 32/8 groups; the tree-free path
 * of subgroups ≥ 32 runs only on such GPUs).
 */

const noGpu = await gpuUnavailableReason();
const U = 2 ** -24;

const universal = (lattice: 'D3' | 'E8', q: number, beta: number): UniversalLatticeScheme => ({ kind: 'lattice', mode: 'universal', lattice, q, beta });

/** Per entry of Y = ŴᵀX: the stated tolerance 2·(K + 8)·u·S (see the file comment). */
function tolerances(q: UniversalLatticeMatrix, x: Matrix, expected: Matrix): Float64Array {
  const rotated = decodeRotated(q);
  const rotation = q.rotate ? new RandomizedHadamard(q.rows, q.seed) : null;
  const spec = latticeSpec(q.scheme.lattice);
  const d = spec.dimension;
  const offsets = spec.dither.fields.map((field) => 2 ** (field.bits - 1));
  const depth = Math.max(q.keptLength, q.rows) + 8;
  const out = new Float64Array(q.cols * x.cols);
  for (let r = 0; r < x.cols; r++) {
    const xr = x.data.subarray(r * x.rows, (r + 1) * x.rows);
    const xRotated = rotation ? rotation.forward(xr) : xr;
    let offsetTerms = 0;
    for (let i = 0; i < q.keptLength; i++) offsetTerms += (offsets[i % d] as number) * Math.abs(xRotated[i] as number);
    let xAbs = 0;
    for (const v of xr) xAbs += Math.abs(v);
    for (let j = 0; j < q.cols; j++) {
      let terms = 0;
      for (let i = 0; i < q.length; i++) terms += Math.abs((rotated[j * q.length + i] as number) * (xRotated[i] as number));
      const scale = ((q.norms[j] as number) * q.scheme.beta) / (DITHER_GRID * Math.sqrt(q.length));
      const mean = q.means ? Math.abs(q.means[j] as number) : 0;
      const index = r * q.cols + j;
      const s = terms + 2 * scale * offsetTerms + mean * xAbs + Math.abs(expected.data[index] as number);
      out[index] = 2 * depth * U * s;
    }
  }
  return out;
}

/** max |gpu − cpu| / tolerance, and how the tolerance compares with the product's own scale. */
function compare(gpu: Matrix, q: UniversalLatticeMatrix, x: Matrix): { worst: number; looseness: number } {
  const expected = matvecAT(q, x);
  expect([gpu.rows, gpu.cols]).toEqual([expected.rows, expected.cols]);
  const tolerance = tolerances(q, x, expected);
  let worst = 0;
  let largest = 0;
  let largestTolerance = 0;
  for (let i = 0; i < expected.data.length; i++) {
    const g = gpu.data[i] as number;
    const c = expected.data[i] as number;
    expect(Number.isFinite(g)).toBe(true);
    worst = Math.max(worst, Math.abs(g - c) / ((tolerance[i] as number) + 1e-30));
    largest = Math.max(largest, Math.abs(c));
    largestTolerance = Math.max(largestTolerance, tolerance[i] as number);
  }
  return { worst, looseness: largest > 0 ? largestTolerance / largest : 0 };
}

describe('universal GEMV leader table sizing', () => {
  it('fits as many copies (8 at most) as the workgroup memory leaves next to the reduction', () => {
    // 216 leaders × 16 bytes = 3456 bytes per copy; the reduction takes 1 KB (tile 1) or 8 KB (tile 8).
    expect(leaderTableCopies('D3', 6, 1, 16384)).toBe(4);
    expect(leaderTableCopies('D3', 6, 8, 16384)).toBe(2);
    expect(leaderTableCopies('D3', 6, 1, 32768)).toBe(8);
    expect(leaderTableCopies('D3', 6, 8, 32768)).toBe(4);
    expect(leaderTableCopies('D3', 10, 1, 16384)).toBe(0); // 1000 leaders: 16 KB per copy
    expect(leaderTableCopies('D3', 10, 1, 32768)).toBe(1);
    expect(leaderTableCopies('D3', 11, 1, 1 << 20)).toBe(0); // 1331 > 1024 leaders: decoded per block
    expect(leaderTableCopies('E8', 3, 1, 1 << 20)).toBe(0);
  });
});

describe.skipIf(noGpu !== undefined)('universal GEMV leader table sizing counts the workgroup memory as WebGPU does', () => {
  // 8 copies (27 648 bytes) beside 1 KB of partial sums, the subgroup variant's vote and width (16
  // bytes each) and 13 root steps of 16 bytes (D3's 12 roots and none): 28 912 bytes. A byte less
  // takes 4 copies. Dawn validates the pipeline against the device's exact limit, so an undercount
  // fails the run a byte below (the plain variant, which never reads the vote and width, has 32 bytes
  // to spare: Tint drops the variables an entry point does not use).
  const exact = 27648 + 1024 + 16 + 16 + 13 * 16;
  it('8 copies at exactly their bytes, 4 a byte below; both compile and match matvecAT', async (context) => {
    expect(leaderTableCopies('D3', 6, 1, exact)).toBe(8);
    expect(leaderTableCopies('D3', 6, 1, exact - 1)).toBe(4);
    const probe = await testDevice();
    const adapterLimit = probe.device.limits.maxComputeWorkgroupStorageSize;
    probe.device.destroy();
    skipUnless(context, adapterLimit >= exact, `${exact} bytes of workgroup memory (it grants ${adapterLimit})`);
    const q = quantize(gaussianMatrix(200, 9, 61), { scheme: 'd3-q6', seed: 3, nonce: 62 });
    if (q.kind !== 'lattice' || q.mode !== 'universal') throw new Error('expected a universal matrix');
    const x = gaussianMatrix(200, 1, 63);
    for (const limit of [exact, exact - 1]) {
      const { device } = await testDevice({ workgroupStorageLimit: limit });
      const w = uploadUniversalMatrix(device, q);
      try {
        for (const subgroups of device.features.has('subgroups') ? [false, true] : [false]) {
          const y = await universalGemv(device, w, x, { subgroups });
          expect(compare(y, q, x).worst, `limit ${limit}, subgroups ${subgroups}: worst |gpu − cpu| / tolerance`).toBeLessThanOrEqual(1);
        }
      } finally {
        w.destroy();
        device.destroy();
      }
    }
  });
});

describe.skipIf(noGpu !== undefined)('universal GEMV (GPU) = matvecAT (CPU)', () => {
  const suite = contextOnTestDevice();
  let hasSubgroups = false;
  beforeAll(() => {
    hasSubgroups = suite.context.device.features.has('subgroups');
    if (!hasSubgroups) console.warn('\n*** universal gemv: this adapter has no subgroups; the subgroup paths are SKIPPED\n');
  });

  /** The paths every case runs: workgroup memory only, then (where available) subgroup shuffles with a poisoned fallback. */
  function paths(): [string, UniversalGemvOptions][] {
    const list: [string, UniversalGemvOptions][] = [['plain', { subgroups: false }]];
    if (hasSubgroups) list.push(['subgroups', { subgroups: true, subgroupTestMode: 'require-shuffles' }]);
    return list;
  }

  async function check(q: UniversalLatticeMatrix, x: Matrix, options: UniversalGemvOptions = {}): Promise<void> {
    const gpuW = uploadUniversalMatrix(suite.context.device, q);
    try {
      for (const [path, pathOptions] of paths()) {
        const y = await universalGemv(suite.context.device, gpuW, x, { ...pathOptions, ...options });
        const { worst, looseness } = compare(y, q, x);
        expect(worst, `${path}: worst |gpu − cpu| / tolerance`).toBeLessThanOrEqual(1);
        expect(looseness, `${path}: tolerance / max |y|`).toBeLessThan(1e-2);
      }
    } finally {
      gpuW.destroy();
    }
  }

  const quantizeUniversal = (w: Matrix, options: QuantizeOptions): UniversalLatticeMatrix => {
    const q = quantize(w, options);
    if (q.kind !== 'lattice' || q.mode !== 'universal') throw new Error('expected a universal matrix');
    return q;
  };

  const cases: { name: string; w: () => Matrix; k: number; options: QuantizeOptions }[] = [
    { name: 'd3-q6, 100 × 7 (N = 128: partial last block), k = 1', w: () => gaussianMatrix(100, 7, 1), k: 1, options: { scheme: 'd3-q6', seed: 3, nonce: 11 } },
    { name: 'e8-q16, 300 × 5 centred, k = 3', w: () => gaussianMatrix(300, 5, 2), k: 3, options: { scheme: 'e8-q16', seed: 4, nonce: 12, center: true } },
    { name: 'E8 q = 24 (37-bit codes), 256 × 6, k = 1', w: () => gaussianMatrix(256, 6, 3), k: 1, options: { scheme: universal('E8', 24, 0.15), seed: 5, nonce: 13 } },
    { name: 'E8 q = 24 (37-bit codes), 200 × 9, k = 3', w: () => gaussianMatrix(200, 9, 4), k: 3, options: { scheme: universal('E8', 24, 0.15), seed: 5, nonce: 14 } },
    { name: 'E8 q = 4, spiky, unrotated (non-root escapes), 64 × 9, k = 3', w: () => spiky(64, 9, 5), k: 3, options: { scheme: universal('E8', 4, 0.3), seed: 3, nonce: 11, rotate: false } },
    { name: 'D3 q = 5, spiky, unrotated, n = 61 (not a multiple of 3), 61 × 9, k = 1', w: () => spiky(61, 9, 6), k: 1, options: { scheme: universal('D3', 5, 0.2), seed: 3, nonce: 15, rotate: false } },
    // d3-q6 has 4 blocks a group (8-bit codes) and the leader table: its non-root escapes are added after
    // each group's blocks (add_rare_blocks), here at every position of a group, in the partial last group
    // (22 blocks a column) and after a root escape of the same group (D3 q = 5 has groups of one block).
    { name: 'd3-q6, Gaussian with a spike per column, unrotated (non-root escapes at every block of a group), 64 × 9, k = 1', w: () => spikedGaussian(64, 9, 5, 5), k: 1, options: { scheme: 'd3-q6', seed: 3, nonce: 15, rotate: false } },
    // Unrotated, x̃ is x itself (stride n): the entries after the partial last block are the next
    // right-hand side's first ones, which the tail's c = 0 must keep out.
    { name: 'd3-q6, unrotated n = 61 (partial block), 61 × 9, k = 2', w: () => gaussianMatrix(61, 9, 26), k: 2, options: { scheme: 'd3-q6', seed: 3, nonce: 30, rotate: false } },
    { name: 'd3-q6, n = 1, k = 1', w: () => gaussianMatrix(1, 3, 7), k: 1, options: { scheme: 'd3-q6', seed: 1, nonce: 16 } },
    { name: 'e8-q16, n = 1 centred, k = 3', w: () => gaussianMatrix(1, 2, 8), k: 3, options: { scheme: 'e8-q16', seed: 1, nonce: 17, center: true } },
    { name: 'e8-q16, unrotated n = 37 (partial block), 37 × 13, k = 1', w: () => gaussianMatrix(37, 13, 9), k: 1, options: { scheme: 'e8-q16', seed: 2, nonce: 18, rotate: false } },
    { name: 'e8-q16, time-sharing κ = 0.4, 200 × 4, k = 3', w: () => gaussianMatrix(200, 4, 10), k: 3, options: { scheme: 'e8-q16', seed: 2, nonce: 19, keepFraction: 0.4 } },
    { name: 'e8-q16, n = 1100 (not a Hadamard length: the rotation of n > 1024), 1100 × 3, k = 1', w: () => gaussianMatrix(1100, 3, 24), k: 1, options: { scheme: 'e8-q16', seed: 9, nonce: 28 } },
    { name: 'd3-q6, n = 1100 (two rotation windows), 1100 × 9, k = 3', w: () => gaussianMatrix(1100, 9, 25), k: 3, options: { scheme: 'd3-q6', seed: 9, nonce: 29 } },
    { name: 'e8-q16, 512 × 12, k = 64', w: () => gaussianMatrix(512, 12, 11), k: 64, options: { scheme: 'e8-q16', seed: 6, nonce: 20 } },
    { name: 'd3-q6 centred, 130 × 20, k = 64', w: () => gaussianMatrix(130, 20, 12), k: 64, options: { scheme: 'd3-q6', seed: 7, nonce: 21, center: true } },
  ];

  for (const { name, w, k, options } of cases) {
    it(name, async () => {
      const matrix = w();
      await check(quantizeUniversal(matrix, options), gaussianMatrix(matrix.rows, k, 100 + k));
    });
  }

  it('the cases above have root escapes and (spiky) non-root escapes, so both escape paths run', () => {
    const counts = (q: UniversalLatticeMatrix): { escapes: number; nonRoots: number } => {
      const gpuW = uploadUniversalMatrix(suite.context.device, q);
      const result = { escapes: gpuW.escapeCount, nonRoots: gpuW.nonRootCount };
      gpuW.destroy();
      return result;
    };
    const spikyE8Matrix = quantizeUniversal(spiky(64, 9, 5), { scheme: universal('E8', 4, 0.3), seed: 3, nonce: 11, rotate: false });
    const spikyE8 = counts(spikyE8Matrix);
    expect(spikyE8.nonRoots).toBeGreaterThan(0);
    // Long escapes outside the extended table carry μ themselves ("huge"): the binary search's records.
    expect(spikyE8Matrix.hugeEscapes.length).toBeGreaterThan(0);
    const spikyD3 = counts(quantizeUniversal(spiky(61, 9, 6), { scheme: universal('D3', 5, 0.2), seed: 3, nonce: 15, rotate: false }));
    expect(spikyD3.nonRoots).toBeGreaterThan(0);
    // The grouped d3-q6 case's non-root escapes sit at every position of a 4-block group, and some after
    // a root escape of their group (whose escape slot then differs from the group's first).
    const grouped = quantizeUniversal(spikedGaussian(64, 9, 5, 5), { scheme: 'd3-q6', seed: 3, nonce: 15, rotate: false });
    const { nonRoots, nonRootCount } = gpuEscapes(grouped);
    const nonRootBlocks = new Set<number>();
    for (let r = 0; r < nonRootCount; r++) nonRootBlocks.add(nonRoots[r * 4] as number);
    const blocks = grouped.blocksPerColumn;
    expect([...new Set([...nonRootBlocks].map((b) => (b % blocks) % 4))].sort()).toEqual([0, 1, 2, 3]);
    let afterRoot = 0;
    for (let j = 0; j < grouped.cols; j++) {
      for (let first = 0; first < blocks; first += 4) {
        let rootSeen = false;
        for (let b = j * blocks + first; b < j * blocks + Math.min(first + 4, blocks); b++) {
          if (grouped.escapes[b] === 0) continue;
          if (nonRootBlocks.has(b)) afterRoot += rootSeen ? 1 : 0;
          else rootSeen = true;
        }
      }
    }
    expect(afterRoot).toBeGreaterThan(0);
    const gaussianD3 = counts(quantizeUniversal(gaussianMatrix(100, 7, 1), { scheme: 'd3-q6', seed: 3, nonce: 11 }));
    expect(gaussianD3.escapes - gaussianD3.nonRoots).toBeGreaterThan(10);
    const wideE8 = counts(quantizeUniversal(gaussianMatrix(256, 6, 3), { scheme: universal('E8', 24, 0.15), seed: 5, nonce: 13 }));
    expect(wideE8.escapes - wideE8.nonRoots).toBeGreaterThan(10);
  });

  /**
   * A copy of `q` with every block's code replaced by a uniformly random valid code (escape symbols
   * kept: the upload and the CPU decode both resolve them against the new leaders). Random codes
   * reach every leader, and for E8 the many exact ties of the Voronoi decode (a lifted coordinate on a
   * rounding boundary, equal errors, equal distances), which data from `quantize` seldom hits.
   */
  function withRandomCodes(q: UniversalLatticeMatrix, seed: number): UniversalLatticeMatrix {
    const rng = new Rng(seed);
    const size = q.scheme.q ** latticeSpec(q.scheme.lattice).dimension;
    const codes = new Uint32Array(q.codes.length);
    const codesHigh = q.codesHigh === null ? null : new Uint16Array(q.codes.length);
    for (let i = 0; i < codes.length; i++) {
      const code = Math.floor(rng.nextFloat() * size);
      codes[i] = code % 2 ** 32;
      if (codesHigh !== null) codesHigh[i] = Math.floor(code / 2 ** 32);
    }
    return { ...q, codes, codesHigh };
  }

  /** The leader decode with q a compile-time constant: every code width and division path, plain variant. */
  const decodeCases: { name: string; scheme: UniversalLatticeScheme; options?: UniversalGemvOptions }[] = [
    { name: 'd3-q6 through the leader table', scheme: universal('D3', 6, 0.45) },
    { name: 'd3-q6 decoded per block (leaderTable: false)', scheme: universal('D3', 6, 0.45), options: { leaderTable: false } },
    { name: 'D3 q = 3 (5-bit codes, table)', scheme: universal('D3', 3, 0.9) },
    { name: 'D3 q = 12 (11-bit codes, no table: q³ > 1024)', scheme: universal('D3', 12, 0.25) },
    { name: 'D3 q = 64 (18-bit codes, shifts)', scheme: universal('D3', 64, 0.05) },
    { name: 'E8 q = 16 (32-bit codes, shifts)', scheme: universal('E8', 16, 0.25) },
    { name: 'E8 q = 12 (29-bit codes, digits by 12, byte lanes split by 24 with compares)', scheme: universal('E8', 12, 0.3) },
    { name: 'E8 q = 3 (13-bit codes)', scheme: universal('E8', 3, 1.2) },
    { name: 'E8 q = 6 (21-bit codes: e8-3bit; byte lanes split by 12 with compares)', scheme: universal('E8', 6, 0.6) },
    { name: 'E8 q = 8 (24-bit codes, byte lanes split by shifts)', scheme: universal('E8', 8, 0.5) },
    { name: 'E8 q = 4 (16-bit codes: two per word)', scheme: universal('E8', 4, 0.9) },
    { name: 'E8 q = 24 (37-bit codes, 16-bit limbs)', scheme: universal('E8', 24, 0.15) },
    { name: 'E8 q = 32 (40-bit codes, a digit across the two parts)', scheme: universal('E8', 32, 0.12) },
    { name: 'E8 q = 64 (48-bit codes, den = 128)', scheme: universal('E8', 64, 0.06) },
  ];
  for (const { name, scheme, options } of decodeCases) {
    it(`random codes, ${name}: every leader equals the CPU's`, async () => {
      const d = latticeSpec(scheme.lattice).dimension;
      const n = 24 * d + 1; // a partial last block, unrotated
      const w = gaussianMatrix(n, 40, 31 + scheme.q);
      const q = withRandomCodes(quantizeUniversal(w, { scheme, seed: 2, nonce: 40 + scheme.q, rotate: false }), 7 + scheme.q);
      const x = gaussianMatrix(n, 1, 41);
      const gpuW = uploadUniversalMatrix(suite.context.device, q);
      try {
        const y = await universalGemv(suite.context.device, gpuW, x, { subgroups: false, ...options });
        const { worst, looseness } = compare(y, q, x);
        expect(worst, 'worst |gpu − cpu| / tolerance').toBeLessThanOrEqual(1);
        expect(looseness, 'tolerance / max |y|').toBeLessThan(1e-2);
      } finally {
        gpuW.destroy();
      }
    });
  }

  it('a device with the minimum 16 KB of workgroup memory (fewer leader-table copies) gives the same results', async () => {
    const small = await testDevice({ workgroupStorageLimit: 16384 });
    try {
      const { device } = small;
      for (const k of [1, 3]) {
        const q = quantizeUniversal(gaussianMatrix(130, 11, 50 + k), { scheme: 'd3-q6', seed: 5, nonce: 51 });
        const x = gaussianMatrix(130, k, 52 + k);
        const gpuW = uploadUniversalMatrix(device, q);
        try {
          const y = await universalGemv(device, gpuW, x, { subgroups: false });
          expect(compare(y, q, x).worst).toBeLessThanOrEqual(1);
        } finally {
          gpuW.destroy();
        }
      }
    } finally {
      small.device.destroy();
    }
  });

  it('a centred constant column (norm 0) gives its mean term only', async () => {
    const w = gaussianMatrix(50, 3, 13);
    w.data.fill(1.5, 50, 100);
    const q = quantizeUniversal(w, { scheme: 'e8-q16', seed: 4, nonce: 22, center: true });
    expect(q.norms[1]).toBe(0);
    await check(q, gaussianMatrix(50, 3, 14));
  });

  it('splits columns and right-hand sides across bindings (maxBindingBytes) with the same result', async () => {
    const q = quantizeUniversal(gaussianMatrix(96, 40, 15), { scheme: 'd3-q6', seed: 3, nonce: 23 });
    await check(q, gaussianMatrix(96, 3, 16), { maxBindingBytes: 1024 });
    const qE8 = quantizeUniversal(gaussianMatrix(64, 21, 17), { scheme: universal('E8', 24, 0.15), seed: 3, nonce: 24, center: true });
    await check(qE8, gaussianMatrix(64, 9, 18), { maxBindingBytes: 768 });
  });

  // The split form (call_sums, then finish: what a device with WebGPU's default 8 storage buffers per
  // stage runs) on the unrotated n = 61, k = 2 case, whose x̃ past keptLength is the next right-hand
  // side's x. Its GEMV pass has no per-call sums, hence no barrier between filling the leader table and
  // reading it but fill_leader_table's own (the fused form's sums pass hides a missing one).
  it('the split form (fusedFinish: false) keeps x̃ past keptLength out of its call sums: unrotated n = 61, k = 2', async () => {
    const q = quantizeUniversal(gaussianMatrix(61, 9, 26), { scheme: 'd3-q6', seed: 3, nonce: 30, rotate: false });
    await check(q, gaussianMatrix(61, 2, 102), { fusedFinish: false });
  });

  // Its finish pass runs one invocation per output: 70 columns × 9 right-hand sides = 630 outputs take
  // three workgroups of 256 (the cases above fit in one).
  it('the split form finishes 630 outputs (70 columns, 9 right-hand sides): more than one workgroup of its finish pass', async () => {
    const q = quantizeUniversal(gaussianMatrix(24, 70, 27), { scheme: 'd3-q6', seed: 3, nonce: 31, center: true });
    await check(q, gaussianMatrix(24, 9, 103), { fusedFinish: false });
  });

  it('splits columns with non-root escapes across bindings: a later binding finds its records by global block index', async () => {
    const q = quantizeUniversal(spiky(64, 40, 5), { scheme: 'd3-q6', seed: 3, nonce: 15, rotate: false });
    await check(q, gaussianMatrix(64, 1, 19), { maxBindingBytes: 512 });
  });

  it('the subgroup variant falls back to the plain tree when told to (same results)', async (context) => {
    skipUnless(context, hasSubgroups, 'subgroups');
    const q = quantizeUniversal(gaussianMatrix(100, 11, 19), { scheme: 'e8-q16', seed: 3, nonce: 25 });
    const x = gaussianMatrix(100, 3, 20);
    const gpuW = uploadUniversalMatrix(suite.context.device, q);
    try {
      const y = await universalGemv(suite.context.device, gpuW, x, { subgroups: true, subgroupTestMode: 'fallback' });
      expect(compare(y, q, x).worst).toBeLessThanOrEqual(1);
    } finally {
      gpuW.destroy();
    }
  });

  it('reads x at an offset inside a larger buffer and writes only its part of y', async () => {
    const { device } = suite.context;
    const q = quantizeUniversal(gaussianMatrix(70, 10, 21), { scheme: 'e8-q16', seed: 8, nonce: 26, center: true });
    const k = 3;
    const x = gaussianMatrix(70, k, 22);
    const xLead = 37; // not a multiple of the 256-byte binding alignment
    const yLead = 5;
    // Everything around x is NaN: a read outside x would spread into y.
    const xData = new Float32Array(xLead + x.data.length + 50).fill(Number.NaN);
    xData.set(x.data, xLead);
    const ySentinel = 12345;
    const yData = new Float32Array(yLead + q.cols * k + 7).fill(ySentinel);
    const gpuW = uploadUniversalMatrix(device, q);
    const scratch = new GpuScratch(device);
    const xBuffer = createBufferWithData(device, 'gemv test x (with NaN around)', xData, STORAGE_USAGE);
    const yBuffer = createBufferWithData(device, 'gemv test y (with sentinels)', yData, STORAGE_USAGE);
    try {
      for (const [, options] of paths()) {
        const bytes = await withValidation(device, 'universal gemv offsets test', async () => {
          const encoder = device.createCommandEncoder({ label: 'universal gemv offsets test' });
          dispatchUniversalGemv(device, encoder, scratch, { ...options, w: gpuW, x: xBuffer, xOffset: 4 * xLead, y: yBuffer, yOffset: 4 * yLead, rhs: k });
          device.queue.submit([encoder.finish()]);
          return readBuffer(device, yBuffer, yData.byteLength);
        });
        const y = new Float32Array(bytes);
        for (let i = 0; i < yLead; i++) expect(y[i]).toBe(ySentinel);
        for (let i = yLead + q.cols * k; i < y.length; i++) expect(y[i]).toBe(ySentinel);
        const result: Matrix = { rows: q.cols, cols: k, data: y.slice(yLead, yLead + q.cols * k) };
        expect(compare(result, q, x).worst).toBeLessThanOrEqual(1);
      }
    } finally {
      scratch.destroy();
      xBuffer.destroy();
      yBuffer.destroy();
      gpuW.destroy();
    }
  });

  /**
   * The fused form (the product writes Y, the sums recorded before it) against the split form (the
   * product writes T, then the sums and `finish`): the same f32 expression on the same T and sums, so
   * the same bits, for D3 and E8, centred (Σx) or not, one and several right-hand sides, whole and split
   * into ranges of right-hand sides and columns, with shared call sums.
   */
  it.for([
    ['d3-q6, centred, k = 3, split into ranges', 'd3-q6', { center: true }, 3, 1024],
    ['e8-q16, k = 1', 'e8-q16', {}, 1, undefined],
    ['d3-q6, unrotated, k = 1, shared call sums', 'd3-q6', { rotate: false }, 1, undefined],
  ] as [string, 'e8-q16' | 'd3-q6', Pick<QuantizeOptions, 'center' | 'rotate'>, number, number | undefined][])('the fused form equals the split form bit for bit (%s)', async ([name, scheme, form, k, maxBindingBytes], context) => {
    const { device } = suite.context;
    // An adapter with 8 storage buffers per stage has the split form only.
    skipUnless(context, fusedFinishSupported(device), 'room for the fused finish (more than 8 storage buffers per stage)');
    const n = 96;
    const q = quantizeUniversal(gaussianMatrix(n, 40, 41), { scheme, seed: 6, nonce: 42, ...form });
    const w = uploadUniversalMatrix(device, q);
    const x = gaussianMatrix(n, k, 43);
    const xBuffer = createBufferWithData(device, 'fused test x', x.data, STORAGE_USAGE);
    const ys = [0, 1].map((i) => createBuffer(device, `fused test y ${i}`, 4 * q.cols * k, STORAGE_USAGE));
    const scratch = new GpuScratch(device);
    try {
      const results = await withValidation(device, 'fused test', async () => {
        const encoder = device.createCommandEncoder({ label: 'fused test' });
        const options = maxBindingBytes === undefined ? {} : { maxBindingBytes };
        const callSums = name.includes('shared') ? { callSums: dispatchUniversalCallSums(device, encoder, scratch, { w, xRotated: xBuffer, x: xBuffer, rhs: k }) } : {};
        dispatchUniversalGemv(device, encoder, scratch, { w, x: xBuffer, y: ys[0] as GPUBuffer, rhs: k, fusedFinish: true, ...options, ...callSums });
        dispatchUniversalGemv(device, encoder, scratch, { w, x: xBuffer, y: ys[1] as GPUBuffer, rhs: k, fusedFinish: false, ...options, ...callSums });
        device.queue.submit([encoder.finish()]);
        return Promise.all(ys.map(async (y) => new Float32Array(await readBuffer(device, y, 4 * q.cols * k))));
      });
      expect(results[0]).toEqual(results[1]);
      expect(compare({ rows: q.cols, cols: k, data: results[0] as Float32Array }, q, x).worst).toBeLessThanOrEqual(1);
    } finally {
      scratch.destroy();
      xBuffer.destroy();
      for (const y of ys) y.destroy();
      w.destroy();
    }
  });

  it('on a device with WebGPU’s default 8 storage buffers per stage (an app’s own device) the split form runs by default, and fusedFinish: true is refused', async () => {
    const adapter = await (await nodeGpu()).requestAdapter();
    if (adapter === null) throw new Error('no adapter');
    const device = await adapter.requestDevice({ label: 'default-limits device' });
    try {
      expect(device.limits.maxStorageBuffersPerShaderStage).toBe(8);
      expect(fusedFinishSupported(device)).toBe(false);
      const q = quantizeUniversal(gaussianMatrix(64, 5, 44), { scheme: 'd3-q6', seed: 2, nonce: 45, center: true });
      const w = uploadUniversalMatrix(device, q);
      try {
        const x = gaussianMatrix(64, 2, 46);
        expect(compare(await universalGemv(device, w, x), q, x).worst).toBeLessThanOrEqual(1);
        await expect(universalGemv(device, w, x, { fusedFinish: true })).rejects.toThrow(/fusedFinish needs 10 storage buffers per shader stage; this device allows 8/);
      } finally {
        w.destroy();
      }
    } finally {
      device.destroy();
    }
  });

  /**
   * Sums recorded once (dispatchUniversalCallSums) and passed as `callSums` give Y bit for bit equal to
   * each call recording its own, also split into ranges of right-hand sides (each range reads its part
   * of the shared sums: Σ offset·x̃ and, centred, Σx), unrotated (x̃ = x) and for a second matrix of the
   * same lattice and block layout; the GEMV refuses sums of another layout or count.
   */
  it.each([
    ['e8-q16, centred, split into ranges of right-hand sides', 'e8-q16', { center: true }, 768],
    ['d3-q6, rotated', 'd3-q6', {}, undefined],
    ['d3-q6, unrotated, centred, split', 'd3-q6', { rotate: false, center: true }, 1024],
    // The split form's `finish` reads the shared sums of a range of right-hand sides from its first.
    ['d3-q6, unrotated, centred, split, in the split form', 'd3-q6', { rotate: false, center: true }, 1024, false],
  ] as [string, 'e8-q16' | 'd3-q6', Pick<QuantizeOptions, 'center' | 'rotate'>, number | undefined, boolean?][])('shared call sums equal per-call sums bit for bit (%s)', async (_name, scheme, form, maxBindingBytes, fusedFinish) => {
    const { device } = suite.context;
    const n = 64;
    const k = 9;
    const quantized = [31, 32].map((seed) => quantizeUniversal(gaussianMatrix(n, 21, seed), { scheme, seed: 5, nonce: seed, ...form }));
    const ws = quantized.map((q) => uploadUniversalMatrix(device, q));
    const [w0, w1] = ws as [(typeof ws)[number], (typeof ws)[number]];
    const x = gaussianMatrix(n, k, 33);
    const xBuffer = createBufferWithData(device, 'call sums test x', x.data, STORAGE_USAGE);
    const xRotated = createBufferWithData(device, 'call sums test x̃', w0.rotate ? new RandomizedHadamard(n, w0.seed).forwardColumns(x).data : x.data, STORAGE_USAGE);
    const outputs = [0, 1, 2, 3].map((i) => createBuffer(device, `call sums test y ${i}`, 4 * 21 * k, STORAGE_USAGE));
    const scratch = new GpuScratch(device);
    const options = { ...(maxBindingBytes === undefined ? {} : { maxBindingBytes }), ...(fusedFinish === undefined ? {} : { fusedFinish }) };
    try {
      const ys = await withValidation(device, 'call sums test', async () => {
        const encoder = device.createCommandEncoder({ label: 'call sums test' });
        const io = { x: xBuffer, xRotated, rhs: k, ...options };
        dispatchUniversalGemv(device, encoder, scratch, { ...io, w: w0, y: outputs[0] as GPUBuffer });
        dispatchUniversalGemv(device, encoder, scratch, { ...io, w: w1, y: outputs[1] as GPUBuffer });
        const callSums = dispatchUniversalCallSums(device, encoder, scratch, { w: w0, xRotated, x: xBuffer, rhs: k });
        dispatchUniversalGemv(device, encoder, scratch, { ...io, w: w0, y: outputs[2] as GPUBuffer, callSums });
        dispatchUniversalGemv(device, encoder, scratch, { ...io, w: w1, y: outputs[3] as GPUBuffer, callSums });
        device.queue.submit([encoder.finish()]);
        return Promise.all(outputs.map(async (y) => new Uint32Array(await readBuffer(device, y, 4 * 21 * k))));
      });
      expect(ys[2]).toEqual(ys[0]);
      expect(ys[3]).toEqual(ys[1]);
      expect(compare({ rows: 21, cols: k, data: new Float32Array((ys[2] as Uint32Array).buffer) }, quantized[0] as UniversalLatticeMatrix, x).worst).toBeLessThanOrEqual(1);
      const encoder = device.createCommandEncoder();
      const callSums = dispatchUniversalCallSums(device, encoder, scratch, { w: w0, xRotated, x: xBuffer, rhs: k });
      const other = uploadUniversalMatrix(device, quantizeUniversal(gaussianMatrix(n, 3, 34), { scheme: scheme === 'd3-q6' ? 'e8-q16' : 'd3-q6', seed: 5, nonce: 34, ...form }));
      expect(() => dispatchUniversalGemv(device, encoder, scratch, { x: xBuffer, xRotated, rhs: k, w: other, y: outputs[0] as GPUBuffer, callSums })).toThrow(/callSums were recorded for/);
      expect(() => dispatchUniversalGemv(device, encoder, scratch, { x: xBuffer, xRotated, rhs: 1, w: w0, y: outputs[0] as GPUBuffer, callSums })).toThrow(/callSums hold 9 right-hand sides/);
      if (w0.rotate) expect(() => dispatchUniversalGemv(device, encoder, scratch, { x: xBuffer, rhs: k, w: w0, y: outputs[0] as GPUBuffer, callSums })).toThrow(/go with the xRotated/);
      if (w0.hasMeans) expect(() => dispatchUniversalCallSums(device, encoder, scratch, { w: w0, xRotated, rhs: k })).toThrow(/W is centred, so x is needed/);
      other.destroy();
    } finally {
      scratch.destroy();
      for (const buffer of [xBuffer, xRotated, ...outputs]) buffer.destroy();
      for (const w of ws) w.destroy();
    }
  });

  it('refuses bad arguments with LatticeMatmulError', async () => {
    const { device } = suite.context;
    const q = quantizeUniversal(gaussianMatrix(16, 2, 23), { scheme: 'd3-q6', seed: 1, nonce: 27 });
    const gpuW = uploadUniversalMatrix(device, q);
    const scratch = new GpuScratch(device);
    const x = createBuffer(device, 'gemv test x', 4 * 16, STORAGE_USAGE);
    const y = createBuffer(device, 'gemv test y', 4 * 2, STORAGE_USAGE);
    const x3 = createBuffer(device, 'gemv test x (3 columns)', 4 * 48, STORAGE_USAGE);
    const small = createBuffer(device, 'gemv test small buffer', 4 * 8, STORAGE_USAGE);
    try {
      await expect(universalGemv(device, gpuW, new Float32Array(15))).rejects.toThrow(/x has 15 rows, but W has 16/);
      const encoder = device.createCommandEncoder({ label: 'refused' });
      const record = (args: Partial<Parameters<typeof dispatchUniversalGemv>[3]>): void =>
        dispatchUniversalGemv(device, encoder, scratch, { w: gpuW, x, y, rhs: 1, ...args });
      expect(() => record({ y: x })).toThrow(/x and y must be different buffers/);
      expect(() => record({ x: small })).toThrow(/universal gemv: x needs 64 bytes/);
      expect(() => record({ rhs: 0 })).toThrow(/rhs must be a positive integer, got 0/);
      expect(() => record({ rhs: 3, x: x3 })).toThrow(/universal gemv: y needs 24 bytes/);
      expect(() => record({ xOffset: 2 })).toThrow(LatticeMatmulError);
      if (!device.features.has('subgroups')) expect(() => record({ subgroups: true })).toThrow(/subgroups/);
      expect(() => record({ subgroups: false, subgroupTestMode: 'fallback' })).toThrow(/subgroupTestMode/);
      expect(() => record({ w: { ...gpuW, kind: 'scalar' } as unknown as typeof gpuW })).toThrow(/W must be a universal GPU lattice matrix/);
      // Without x: fine when x̃ is given and W is not centred (nothing reads x), refused otherwise.
      const { x: _x, ...withoutX } = { w: gpuW, x, y, rhs: 1 };
      expect(() => dispatchUniversalGemv(device, encoder, scratch, { ...withoutX, xRotated: x })).not.toThrow();
      expect(() => dispatchUniversalGemv(device, encoder, scratch, withoutX)).toThrow(/x is needed: give xRotated/);
      expect(() => dispatchUniversalGemv(device, encoder, scratch, { ...withoutX, xRotated: x, xOffset: 0 })).toThrow(/xOffset without x/);
      expect(() => record({ xRotatedOffset: 0 })).toThrow(/universal gemv[^:]*: xRotatedOffset without xRotated/);
      // x̃ is checked where it is read: 64 bytes at byte 4 of a 64-byte buffer (at byte 0 they would fit).
      expect(() => dispatchUniversalGemv(device, encoder, scratch, { ...withoutX, xRotated: x, xRotatedOffset: 4 })).toThrow(
        /universal gemv[^:]*: xRotated needs 64 bytes at offset 4, but its buffer has 64$/,
      );
      const centred = uploadUniversalMatrix(device, quantizeUniversal(gaussianMatrix(16, 2, 23), { scheme: 'd3-q6', seed: 1, nonce: 27, center: true }));
      expect(() => dispatchUniversalGemv(device, encoder, scratch, { ...withoutX, w: centred, xRotated: x })).toThrow(/W is centred, so x is needed/);
      expect(() => record({ fusedFinish: 'yes' as unknown as boolean })).toThrow(/fusedFinish must be true or false/);
      // 0 would have chosen the table by truthiness; 1 would not have been refused either.
      expect(() => record({ leaderTable: 0 as unknown as boolean })).toThrow(/universal gemv: leaderTable must be true or false, got 0/);
      expect(() => record({ accumulate: 1 as unknown as boolean })).toThrow(/universal gemv: accumulate must be true or false, got 1/);
      centred.destroy();
      encoder.finish();
    } finally {
      scratch.destroy();
      for (const buffer of [x, y, x3, small]) buffer.destroy();
      gpuW.destroy();
    }
  });
});
