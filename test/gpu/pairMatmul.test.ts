import { describe, expect, it } from 'vitest';
import { testMatrixPair, type DataKind } from '../../src/data/testMatrices.js';
import { LatticeMatmulError } from '../../src/errors.js';
import { GpuEngine } from '../../src/gpu/engine.js';
import { uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import { dispatchPairMatmul, pairCommonScale, pairProductKeepsDither } from '../../src/gpu/kernels/pairMatmul.js';
import { dispatchProductEpilogue } from '../../src/gpu/kernels/productEpilogue.js';
import { copyPairExponents, dispatchUniversalPairs, pairFormBytes, pairSplitWgsl, pairUnits, universalPairScalesBytes, universalPairsOnGpu } from '../../src/gpu/kernels/universalPairs.js';
import type { DotPath } from '../../src/gpu/kernels/e8Matmul.js';
import { runAndRead } from '../../src/gpu/runAndRead.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import type { GpuUniversalMatrix } from '../../src/gpu/universalOperand.js';
import type { Matrix } from '../../src/matrix.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { expectedProductError } from '../../src/product/expectedError.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import { SCHEME_NAMES, SCHEMES } from '../../src/quantize/schemes.js';
import { rotatedSpikeOnConstant } from '../quantize/rotatedSpikes.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import type { UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import {
  MAX_PAIR_RADIX_BITS,
  pairLimit,
  pairProductReference,
  pairRadixBits,
  pairShift,
  pairSums,
  roundShift,
  splitPair,
  universalIntegerCoordinates,
  universalPairColumns,
  type UniversalPairColumns,
} from '../../src/quantize/universalPairs.js';
import { engineOnTestDevice, gpuUnavailableReason, skipUnless } from './gpuTestDevice.js';
import { asUniversal, asUniversalGpu } from './latticeTestSupport.js';

/*
 * The universal product from pair forms (GpuEngine's 'universal-i8' kernel): the GPU pair form
 * equals its CPU twin `universalPairColumns` bit for bit (words, factors, exponents), and C equals the
 * twin `pairProductReference` within 1e-6·max(ν_i·ν_j, ‖ĉ_i‖·‖ĉ_j‖) per entry (ĉ the decoded rotated
 * columns: about ν for ordinary codes, far more for columns of escapes, which a container may hold:
 * audit helper-138 measured 1 f32 ulp of a 1.3e6 entry where ν_i·ν_j = 2^−10). Why that tolerance:
 * each slice of 64 coordinates is summed exactly in i32 and the slices in f32 (relative error ≤
 * slices·2^−24 of Σ|terms| ≤ ‖c_a‖·‖c_b‖), then three f32 multiplications and two exact ldexp; a
 * wrong unit, lane, factor or shift moves an entry by ≥ 1e-3·ν_i·ν_j. Against the CPU `matmulAT` (the decoded product),
 * C differs by the dropped Σ l_a·l_b, which the test takes from the twin (`pairSums`) exactly.
 */

const noGpu = await gpuUnavailableReason();

function expectCloseToTwin(gpu: Matrix, twin: Float64Array, qa: UniversalLatticeMatrix, qb: UniversalLatticeMatrix, tolerance = 1e-6): void {
  expect([gpu.rows, gpu.cols]).toEqual([qa.cols, qb.cols]);
  const decodedNorms = (q: UniversalLatticeMatrix): number[] => {
    const decoded = decodeRotated(q);
    return Array.from({ length: q.cols }, (_, j) => Math.hypot(...decoded.subarray(j * q.length, (j + 1) * q.length)));
  };
  const [na, nb] = [decodedNorms(qa), decodedNorms(qb)];
  let worst = 0;
  for (let j = 0; j < qb.cols; j++) {
    for (let i = 0; i < qa.cols; i++) {
      const k = j * qa.cols + i;
      const columns = Math.max((qa.norms[i] as number) * (qb.norms[j] as number), (na[i] as number) * (nb[j] as number));
      const scale = columns + qa.rows * Math.abs(qa.means === null || qb.means === null ? 0 : (qa.means[i] as number) * (qb.means[j] as number));
      worst = Math.max(worst, Math.abs((gpu.data[k] as number) - (twin[k] as number)) / scale);
    }
  }
  expect(worst).toBeLessThan(tolerance);
}

/**
 * The twin against the decoded product (`matmulAT`): the twin plus the dropped Σ l_a·l_b less its mean
 * (N/4) where neither column is shifted, exactly; a pair with a shifted column keeps Σ l_a·l_b, and its shifted column
 * rounds each c to a multiple of 2^s, within 2^(s−1): bounded by Σ |Δ_a|·|c_b| + |c_a|·|Δ_b| + |Δ_a·Δ_b|.
 * Returns Σ l_a·l_b of each pair in C's units (column-major), for the caller's own checks.
 */
function expectTwinIsDecoded(twin: Float64Array, qa: UniversalLatticeMatrix, pa: UniversalPairColumns, qb: UniversalLatticeMatrix, pb: UniversalPairColumns): Float64Array {
  const decoded = matmulAT(qa, qb);
  const ca = universalIntegerCoordinates(qa);
  const cb = universalIntegerCoordinates(qb);
  const absSum = (c: Int32Array, j: number, length: number) => c.subarray(j * length, (j + 1) * length).reduce((sum, v) => sum + Math.abs(v), 0);
  const lows = new Float64Array(qa.cols * qb.cols);
  for (let j = 0; j < qb.cols; j++) {
    for (let i = 0; i < qa.cols; i++) {
      const [sa, sb] = [pa.shifts[i] as number, pb.shifts[j] as number];
      const unitScale = pa.unit * pb.unit * (qa.norms[i] as number) * (qb.norms[j] as number);
      const low = unitScale * 2 ** (sa + sb) * pairSums(pa, i, pb, j).ll;
      lows[j * qa.cols + i] = low;
      // Where it is dropped, the twin adds its mean instead (droppedLowMean, written out: l's mean is −1/2).
      const dropped = sa > 0 || sb > 0 ? 0 : low - unitScale * (Math.min(qa.keptLength, qb.keptLength) / 4);
      const roundA = sa > 0 ? 2 ** (sa - 1) : 0;
      const roundB = sb > 0 ? 2 ** (sb - 1) : 0;
      const rounding = unitScale * (roundA * absSum(cb, j, qb.length) + roundB * absSum(ca, i, qa.length) + qa.length * roundA * roundB);
      const entry = decoded.data[j * qa.cols + i] as number;
      // matmulAT rounds to f32 at the end: 2^-23 of its entry, within 1e-6 of the scale.
      expect(Math.abs((twin[j * qa.cols + i] as number) + dropped - entry), `entry ${i}, ${j}`).toBeLessThan(
        1e-6 * (qa.norms[i] as number) * (qb.norms[j] as number) + 2 ** -23 * Math.abs(entry) + rounding,
      );
    }
  }
  return lows;
}

describe.skipIf(noGpu !== undefined)('universal product from pair forms (universal-i8)', () => {
  const suite = engineOnTestDevice({ universalProduct: 'i8' });

  const cases: readonly [string, QuantizeOptions, DataKind][] = [
    ['e8-4bit', { scheme: 'e8-4bit', seed: 3 }, 'gaussian'],
    ['d3-q6', { scheme: 'd3-q6', seed: 4 }, 'heavy-tailed'],
    ['e8-5bit (37-bit codes), centred', { scheme: 'e8-5bit', seed: 5, center: true }, 'outlier-rows'],
    ['e8-2bit, keepFraction 0.7', { scheme: 'e8-2bit', seed: 6, keepFraction: 0.7 }, 'low-rank'],
    ['d3-q6 unrotated', { scheme: 'd3-q6', seed: 7, rotate: false }, 'spikes'],
  ];
  for (const [name, options, kind] of cases) {
    for (const [n, aCols, bCols] of [
      [1, 1, 1],
      [13, 3, 5],
      [100, 17, 9],
      [130, 70, 65],
    ] as const) {
      it(`${name}, ${kind}, n = ${n}, ${aCols} × ${bCols}: pair forms = twin bit for bit, C ≈ twin, twin + dropped term = decoded product`, async () => {
        const { a, b } = testMatrixPair(kind, n, aCols, bCols, n + aCols);
        const qa = asUniversal(quantize(a, { ...options, nonce: 11 }));
        const qb = asUniversal(quantize(b, { ...options, nonce: 12 }));
        const ga = suite.engine.upload(qa);
        const gb = suite.engine.upload(qb);
        try {
          const radixBits = pairRadixBits(qa.scheme.q, qb.scheme.q);
          const pa = universalPairColumns(qa, radixBits);
          const pb = universalPairColumns(qb, radixBits);
          const gpuPairs = await universalPairsOnGpu(suite.context.device, ga, { radixBits });
          expect(gpuPairs.words).toEqual(pa.words);
          expect(gpuPairs.factors).toEqual(pa.factors);
          expect(gpuPairs.exponents).toEqual(pa.exponents);
          expect(suite.engine.productKernel(ga, gb)).toBe('universal-i8');
          const gpu = await suite.engine.matmulAT(ga, gb);
          const twin = pairProductReference(qa, pa, qb, pb, false);
          expectCloseToTwin(gpu, twin, qa, qb);
          expectTwinIsDecoded(twin, qa, pa, qb, pb);
        } finally {
          ga.destroy();
          gb.destroy();
        }
      });
    }
  }

  // e8-2bit too: its large β makes the mean added for unshifted pairs (N/4 c² units, β²/262144 of
  // ν_i·ν_j: 6·10⁻⁶ against e8-5bit's 8·10⁻⁸) larger than the tolerance, so a WITH_LOW tile that left
  // it out for its unshifted pairs fails here.
  for (const scheme of ['e8-5bit', 'e8-2bit'] as const) {
  it(`${scheme}: shifted columns in some tiles and not others (2 × 2 tiles of 64): C ≈ the twin, which keeps Σ l_a·l_b for their pairs only, ≈ the decoded product`, async () => {
    // Columns that rotate to a spike on a constant are stored shifted (both operands); the others are
    // Gaussian. A's shifted columns sit in its first tile only, B's in its second only, so the grid has
    // tiles with none, with A's, with B's and with both.
    const n = 1024;
    const seed = 3;
    const matrix = (cols: number, shifted: readonly number[], dataSeed: number): Matrix => {
      const m = gaussianMatrix(n, cols, dataSeed);
      for (const j of shifted) m.data.set(rotatedSpikeOnConstant(n, seed, (j * 37) % n), j * n);
      return m;
    };
    const qa = asUniversal(quantize(matrix(70, [3, 40], 1), { scheme, seed, nonce: 21 }));
    const qb = asUniversal(quantize(matrix(100, [66, 99], 2), { scheme, seed, nonce: 22 }));
    const radixBits = pairRadixBits(qa.scheme.q, qb.scheme.q);
    const pa = universalPairColumns(qa, radixBits);
    const pb = universalPairColumns(qb, radixBits);
    expect([...pa.shifts].flatMap((s, j) => (s > 0 ? [j] : []))).toEqual([3, 40]);
    expect([...pb.shifts].flatMap((s, j) => (s > 0 ? [j] : []))).toEqual([66, 99]);
    const ga = suite.engine.upload(qa);
    const gb = suite.engine.upload(qb);
    try {
      expect(suite.engine.productKernel(ga, gb)).toBe('universal-i8');
      const gpu = await suite.engine.matmulAT(ga, gb);
      const twin = pairProductReference(qa, pa, qb, pb, false);
      expectCloseToTwin(gpu, twin, qa, qb);
      // The GPU keeps Σ l_a·l_b of the pairs with a shifted column (both, or one: a shifted column of A
      // against B's Gaussian ones) too: it is at least 10× nearer the twin than the term's size.
      const lows = expectTwinIsDecoded(twin, qa, pa, qb, pb);
      const keptOverGpuError = (gpuC: Matrix, pairs: readonly (readonly [number, number])[]): number =>
        Math.min(...pairs.map(([i, j]) => Math.abs(lows[j * qa.cols + i] as number) / Math.abs((gpuC.data[j * qa.cols + i] as number) - (twin[j * qa.cols + i] as number))));
      const both = [3, 40].flatMap((i) => [66, 99].map((j) => [i, j] as const));
      const one = [[3, 0], [40, 65], [0, 66], [69, 99]] as const;
      expect(keptOverGpuError(gpu, both)).toBeGreaterThan(10);
      expect(keptOverGpuError(gpu, one)).toBeGreaterThan(10);
      // B split into chunks of 70 columns (a binding cap of 70 columns' pair forms): B's shifted column 99
      // is in the second chunk, whose tiles read their factors from b_factor_first = 70.
      const dotPath: DotPath = suite.context.features.packed4x8IntegerDotProduct ? 'packed' : 'plain';
      const chunked = await pairProduct(asUniversalGpu(ga), asUniversalGpu(gb), dotPath, 2048 * 70);
      expectCloseToTwin(chunked, twin, qa, qb);
      expect(keptOverGpuError(chunked, [...both, ...one])).toBeGreaterThan(10);
    } finally {
      ga.destroy();
      gb.destroy();
    }
  });
  }

  it('a shifted column whose factor f·2^s is exactly 1 (norm a power of two, shift 1) keeps Σ l_a·l_b as the twin does', async () => {
    // Unrotated, 112 ones and a spike of 12 have norm exactly 16 (f = 0.5) and are stored with shift 1:
    // f·2^s = 1, the smallest factor of a shifted column. B's columns and A's others are unshifted, so
    // this column alone sends its tile to the WITH_LOW pipeline; were it taken for unshifted, its pairs
    // would get the dropped term's mean instead of Σ l_a·l_b (≈ 5·10⁻⁵ of ‖a‖‖b‖ here, by the twin).
    const n = 113;
    const a = gaussianMatrix(n, 3, 31);
    a.data.fill(1, 0, n);
    a.data[56] = 12;
    const options: QuantizeOptions = { scheme: 'd3-q6', seed: 7, rotate: false };
    const qa = asUniversal(quantize(a, { ...options, nonce: 41 }));
    const qb = asUniversal(quantize(gaussianMatrix(n, 5, 32), { ...options, nonce: 42 }));
    const radixBits = pairRadixBits(qa.scheme.q, qb.scheme.q);
    const pa = universalPairColumns(qa, radixBits);
    const pb = universalPairColumns(qb, radixBits);
    expect([qa.norms[0], pa.shifts[0], pa.factors[0]]).toEqual([16, 1, 1]);
    expect([...pa.shifts.subarray(1), ...pb.shifts].every((s) => s === 0)).toBe(true);
    const ga = suite.engine.upload(qa);
    const gb = suite.engine.upload(qb);
    try {
      expect(suite.engine.productKernel(ga, gb)).toBe('universal-i8');
      expectCloseToTwin(await suite.engine.matmulAT(ga, gb), pairProductReference(qa, pa, qb, pb, false), qa, qb);
    } finally {
      ga.destroy();
      gb.destroy();
    }
  });

  it('pair_shift and pack_unit (shaders/pair_split.wgsl) equal pairShift and splitPair at every radix, at the boundaries of every shift', async () => {
    // (top, r) pairs at the edges of every shift, and units of 8 values at the split's edges
    // (h = −128, 127; l = −R/2, R/2 − 1) for shifts 0, 1, 3, 9, at radix bits 0, 4, 7, 8.
    const tops: { top: number; r: number }[] = [];
    const units: { c: number[]; s: number; r: number }[] = [];
    for (const r of [0, 4, 7, MAX_PAIR_RADIX_BITS]) {
      tops.push({ top: 0, r }, { top: 1, r }, { top: 2 ** 30, r });
      for (let s = 0; s <= 16; s++) for (const d of [-2, -1, 0, 1, 2]) tops.push({ top: Math.max(0, Math.round((pairLimit(r) + 0.5) * 2 ** s) + d), r });
      const radix = 2 ** r;
      const half = Math.floor(radix / 2);
      for (const s of [0, 1, 3, 9]) {
        const edges = [-128 * radix - half, -128 * radix - half + 1, -127 * radix - half - 1, -half, -half - 1, radix - half - 1, radix - half, pairLimit(r)].map((v) => v * 2 ** s);
        units.push({ c: edges, s, r });
        units.push({ c: edges.map((v) => v + (s > 0 ? 2 ** (s - 1) : 1)), s, r });
        units.push({ c: edges.map((v) => v - (s > 0 ? 2 ** (s - 1) : 1)), s, r });
      }
    }
    const device = suite.context.device;
    const module = device.createShaderModule({
      label: 'pair split probe',
      code: `${pairSplitWgsl()}
@group(0) @binding(0) var<storage, read> tops: array<vec2<u32>>;  // (top, r)
@group(0) @binding(1) var<storage, read> values: array<i32>;      // PAIR_UNIT per unit
@group(0) @binding(2) var<storage, read> shifts: array<vec2<u32>>; // (s, r) per unit
@group(0) @binding(3) var<storage, read_write> out: array<u32>;    // shifts of tops, then 4 words per unit
@compute @workgroup_size(1)
fn main() {
  for (var t = 0u; t < ${tops.length}u; t = t + 1u) { out[t] = pair_shift(tops[t].x, tops[t].y); }
  for (var u = 0u; u < ${units.length}u; u = u + 1u) {
    var c = array<i32, PAIR_UNIT>();
    for (var i = 0u; i < PAIR_UNIT; i = i + 1u) { c[i] = values[u * PAIR_UNIT + i]; }
    let w = pack_unit(c, shifts[u].x, shifts[u].y);
    for (var k = 0u; k < 4u; k = k + 1u) { out[${tops.length}u + 4u * u + k] = w[k]; }
  }
}`,
    });
    const pipeline = device.createComputePipeline({ label: 'pair split probe', layout: 'auto', compute: { module, entryPoint: 'main' } });
    const outBytes = 4 * (tops.length + 4 * units.length);
    const data = await runAndRead(device, 'pair split probe', outBytes, (run) => {
      const out = run.storage('probe out', outBytes);
      const bindGroup = device.createBindGroup({
        label: 'pair split probe',
        layout: pipeline.getBindGroupLayout(0),
        entries: [
          { binding: 0, resource: { buffer: run.upload('tops', Uint32Array.from(tops.flatMap((t) => [t.top, t.r]))) } },
          { binding: 1, resource: { buffer: run.upload('values', Int32Array.from(units.flatMap((u) => u.c))) } },
          { binding: 2, resource: { buffer: run.upload('shifts', Uint32Array.from(units.flatMap((u) => [u.s, u.r]))) } },
          { binding: 3, resource: { buffer: out } },
        ],
      });
      const pass = run.encoder.beginComputePass({ label: 'pair split probe' });
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(1);
      pass.end();
      return out;
    });
    const out = new Uint32Array(data);
    expect(Array.from(out.subarray(0, tops.length))).toEqual(tops.map((t) => pairShift(t.top, t.r)));
    units.forEach((unit, u) => {
      const words = [0, 0, 0, 0];
      unit.c.forEach((c, i) => {
        const { h, l } = splitPair(roundShift(c, unit.s), unit.r);
        words[i >> 2] = ((words[i >> 2] as number) | ((h & 0xff) << (8 * (i & 3)))) >>> 0;
        words[2 + (i >> 2)] = ((words[2 + (i >> 2)] as number) | ((l & 0xff) << (8 * (i & 3)))) >>> 0;
      });
      expect(Array.from(out.subarray(tops.length + 4 * u, tops.length + 4 * u + 4))).toEqual(words);
    });
  });

  it('a column beyond the unshifted range (an unrotated spike) is shifted on the GPU as on the CPU', async () => {
    const n = 4096;
    const spike: Matrix = { rows: n, cols: 3, data: new Float32Array(3 * n) };
    spike.data[17] = 5;
    for (let k = 0; k < n; k++) spike.data[n + k] = Math.sin(k);
    spike.data[2 * n + 4000] = -1e-3;
    spike.data[2 * n + 5] = 2e-4;
    const options: QuantizeOptions = { scheme: 'e8-4bit', seed: 1, rotate: false };
    const qa = asUniversal(quantize(spike, { ...options, nonce: 3 }));
    const qb = asUniversal(quantize(spike, { ...options, nonce: 4 }));
    const radixBits = pairRadixBits(12, 12);
    const pa = universalPairColumns(qa, radixBits);
    expect(pa.shifts[0]).toBeGreaterThan(0);
    expect(pa.shifts[2]).toBeGreaterThan(0);
    expect(pa.shifts[1]).toBe(0);
    const ga = suite.engine.upload(qa);
    const gb = suite.engine.upload(qb);
    try {
      const gpuPairs = await universalPairsOnGpu(suite.context.device, ga, { radixBits });
      expect(gpuPairs.words).toEqual(pa.words);
      expect(gpuPairs.factors).toEqual(pa.factors);
      expectCloseToTwin(await suite.engine.matmulAT(ga, gb), pairProductReference(qa, pa, qb, universalPairColumns(qb, radixBits), false), qa, qb);
    } finally {
      ga.destroy();
      gb.destroy();
    }
  });

  it.each([false, true])('a Gram matrix ÂᵀÂ (centred %s): one pair form, the exact diagonal, the twin off it', async (center) => {
    const { a } = testMatrixPair('gaussian', 90, 11, 1, 5);
    const q = asUniversal(quantize(a, { scheme: 'e8-q16', seed: 2, nonce: 5, center }));
    const g = suite.engine.upload(q);
    try {
      const gpu = await suite.engine.matmulAT(g, g);
      const p = universalPairColumns(q, pairRadixBits(q.scheme.q, q.scheme.q));
      const twin = pairProductReference(q, p, q, p, true);
      expectCloseToTwin(gpu, twin, q, q);
      for (let i = 0; i < q.cols; i++) {
        const expected = (q.norms[i] as number) ** 2 + (q.means === null ? 0 : q.rows * (q.means[i] as number) ** 2);
        expect(Math.abs((gpu.data[i * q.cols + i] as number) - expected)).toBeLessThanOrEqual(1e-6 * expected);
      }
    } finally {
      g.destroy();
    }
  });

  /** Pair forms, product and epilogue as the engine records them, with the test knobs. */
  async function pairProduct(ga: GpuUniversalMatrix, gb: GpuUniversalMatrix, dotPath: DotPath, maxBindingBytes?: number): Promise<Matrix> {
    const device = suite.context.device;
    const radixBits = pairRadixBits(ga.scheme.q, gb.scheme.q);
    const bytes = 4 * ga.cols * gb.cols;
    const data = await runAndRead(device, 'pair product (test)', bytes, (run) => {
      const operand = (m: GpuUniversalMatrix) => {
        const pairs = run.storage('pairs', pairFormBytes(m.length, m.cols));
        const scales = run.storage('scales', universalPairScalesBytes(m.cols));
        const exponents = run.storage('exponents', 4 * m.cols);
        dispatchUniversalPairs(device, run.encoder, run.scratch, { m, pairs, scales, radixBits, maxBindingBytes });
        copyPairExponents(run.encoder, scales, exponents, m.cols);
        return { pairs, factors: scales, exponents, cols: m.cols };
      };
      const pa = operand(ga);
      const pb = operand(gb);
      const c = run.storage('C', bytes);
      dispatchPairMatmul(device, run.encoder, run.scratch, { a: pa, b: pb, units: pairUnits(ga.length), commonScale: pairCommonScale(ga, gb), radixBits, keptLength: Math.min(ga.keptLength, gb.keptLength), c, dotPath, maxBindingBytes });
      dispatchProductEpilogue(device, run.encoder, run.scratch, { sideA: ga.side, sideB: gb.side, c, cOffset: 0, aCols: ga.cols, bCols: gb.cols, rows: ga.rows, centred: false, gram: false, exponents: { a: pa.exponents, b: pb.exponents } });
      return c;
    });
    return { rows: ga.cols, cols: gb.cols, data: new Float32Array(data) };
  }

  it.for([
    ['packed', undefined],
    ['plain', undefined],
    ['packed', 2048],
    ['plain', 1536],
  ] as const)('the %s dot path, binding cap %s: pair forms split by columns and B and C in chunks give the twin', async ([dotPath, maxBindingBytes], context) => {
    skipUnless(context, dotPath !== 'packed' || suite.context.features.packed4x8IntegerDotProduct, 'packed 4×8 integer dot products');
    const { a, b } = testMatrixPair('two-spikes', 100, 3, 70, 8);
    const qa = asUniversal(quantize(a, { scheme: 'd3-q6', seed: 9, nonce: 1 }));
    const qb = asUniversal(quantize(b, { scheme: 'd3-q6', seed: 9, nonce: 2 }));
    const ga = asUniversalGpu(uploadLatticeMatrix(suite.context.device, qa));
    const gb = asUniversalGpu(uploadLatticeMatrix(suite.context.device, qb));
    const radixBits = pairRadixBits(qa.scheme.q, qb.scheme.q);
    try {
      if (maxBindingBytes !== undefined) {
        // B's pair form (16 bytes per unit, 16 units per column) takes several bindings at this cap.
        expect(pairFormBytes(gb.length, gb.cols)).toBeGreaterThan(4 * maxBindingBytes);
        expect((await universalPairsOnGpu(suite.context.device, gb, { radixBits, maxBindingBytes })).words).toEqual(universalPairColumns(qb, radixBits).words);
      }
      const twin = pairProductReference(qa, universalPairColumns(qa, radixBits), qb, universalPairColumns(qb, radixBits), false);
      expectCloseToTwin(await pairProduct(ga, gb, dotPath, maxBindingBytes), twin, qa, qb);
    } finally {
      ga.destroy();
      gb.destroy();
    }
  });

  it('operands whose units multiply below 2^-100 (β near 0) take the decode path, which carries the units, and the kernel refuses them', async () => {
    // Codes of an ordinary quantization relabelled with β = 2^-61 and norms 2^60 larger: unit_a·unit_b ≈ 2^-144.
    const crafted = (seed: number, nonce: number): UniversalLatticeMatrix => {
      const m = asUniversal(quantize(testMatrixPair('gaussian', 64, 3, 1, seed).a, { scheme: 'd3-q6', seed: 1, nonce }));
      return { ...m, scheme: { ...m.scheme, beta: 2 ** -61 }, norms: m.norms.map((v) => v * 2 ** 60) };
    };
    const qa = crafted(1, 1);
    const qb = crafted(2, 2);
    const ga = suite.engine.upload(qa);
    const gb = suite.engine.upload(qb);
    try {
      expect(suite.engine.universalProduct).toBe('i8');
      expect(suite.engine.productKernel(ga, gb)).toBe('universal-decode');
      const gpu = await suite.engine.matmulAT(ga, gb);
      const cpu = matmulAT(qa, qb);
      const scale = Math.max(...Array.from(cpu.data, Math.abs));
      for (let k = 0; k < cpu.data.length; k++) expect(Math.abs((gpu.data[k] as number) - (cpu.data[k] as number))).toBeLessThan(1e-5 * scale);
      const c = suite.context.device.createBuffer({ label: 'unused C', size: 64, usage: GPUBufferUsage.STORAGE });
      try {
        const args = { a: { pairs: c, factors: c, cols: 1 }, b: { pairs: c, factors: c, cols: 1 }, units: 1, radixBits: 5, keptLength: 8, c, dotPath: 'plain' } as const;
        expect(() => dispatchPairMatmul(suite.context.device, suite.context.device.createCommandEncoder(), new GpuScratch(suite.context.device), { ...args, commonScale: 2 ** -101 })).toThrow(/commonScale .* is below 2\^-100/);
        expect(() => dispatchPairMatmul(suite.context.device, suite.context.device.createCommandEncoder(), new GpuScratch(suite.context.device), { ...args, commonScale: 1, keptLength: 9 })).toThrow(/keptLength must be an integer in \[0, 8\] \(8 per unit\), got 9/);
      } finally {
        c.destroy();
      }
    } finally {
      ga.destroy();
      gb.destroy();
    }
  });

  it('operands whose pair form could shift a column by more than 6 bits take the decode path (such a rounding undoes the dither: 371× the guarantee on the pair path here)', async () => {
    // Two unrotated constant columns with β = 1/10000.3: |c| ≈ 256·10000.3, shifted by 8 bits in the
    // pair form, which rounds c to multiples of 256 = DITHER_GRID, i.e. y/β + e to integers: the dither
    // is gone, and every coordinate's rounding error (≈ −0.3 + P(e > 0.2) units of β) adds up over N.
    // On the pair path the error was 371 ± 10× the guarantee on lavapipe (its CPU twin: 416 ± 8×); on the decode path it is the
    // guarantee's, plus the f32 sum's rounding, which is of its size here (β = 10⁻⁴ puts the guarantee's
    // error at ≈ 5 ulps of the entry: measured 0.47 ± 0.07 of it on lavapipe, the f64 CPU sum 0.96 ± 0.07).
    const n = 4096;
    const scheme = { kind: 'lattice', mode: 'universal', lattice: 'E8', q: 64, beta: 1 / 10000.3 } as const;
    const ones: Matrix = { rows: n, cols: 1, data: new Float32Array(n).fill(1) };
    const draws = 40;
    let ratio = 0;
    for (let t = 0; t < draws; t++) {
      const qa = asUniversal(quantize(ones, { scheme, rotate: false, nonce: 2 * t + 1 }));
      const qb = asUniversal(quantize(ones, { scheme, rotate: false, nonce: 2 * t + 2 }));
      if (t === 0) expect(universalPairColumns(qa, pairRadixBits(64, 64)).shifts[0]).toBe(8);
      const ga = suite.engine.upload(qa);
      const gb = suite.engine.upload(qb);
      try {
        expect(suite.engine.productKernel(ga, gb)).toBe('universal-decode');
        ratio += (((await suite.engine.matmulAT(ga, gb)).data[0] as number) - n) ** 2 / expectedProductError(qa, qb) / draws;
      } finally {
        ga.destroy();
        gb.destroy();
      }
    }
    // One draw's ratio is about a χ²₁ (std √2): 40 draws put the mean's standard error at ≈ 0.22.
    expect(ratio).toBeLessThan(3);
    // The bound behind the choice (largestPairShift: |y_i| ≤ √N): e8-5bit keeps the pair path to N = 334816, every
    // universal preset to 2.1·10⁵ (d3-q6) or more, none to 2^21.
    const e85 = { scheme: SCHEMES['e8-5bit'] };
    expect(pairProductKeepsDither({ ...e85, length: 262144 }, { ...e85, length: 262144 })).toBe(true);
    expect(pairProductKeepsDither({ ...e85, length: 524288 }, { ...e85, length: 524288 })).toBe(false);
    // Either operand alone decides: A of a large β against B of this test's β (whose columns shift by 8), and the reverse.
    const small = { scheme, length: n };
    const large = { scheme: { ...scheme, beta: 1 }, length: n };
    expect(pairProductKeepsDither(large, large)).toBe(true);
    expect(pairProductKeepsDither(large, small)).toBe(false);
    expect(pairProductKeepsDither(small, large)).toBe(false);
    for (const name of SCHEME_NAMES) {
      const preset = SCHEMES[name];
      if (preset.kind !== 'lattice' || preset.mode !== 'universal') continue;
      expect(pairProductKeepsDither({ scheme: preset, length: 200_000 }, { scheme: preset, length: 200_000 }), name).toBe(true);
      expect(pairProductKeepsDither({ scheme: preset, length: 2 ** 21 }, { scheme: preset, length: 2 ** 21 }), name).toBe(false);
    }
  });

  it('the engine takes the pair product where WGSL has packed dot products, and the decode path otherwise or when asked', () => {
    const packed = suite.context.features.packed4x8IntegerDotProduct;
    const byDefault = GpuEngine.create(suite.context);
    const plain = GpuEngine.create(suite.context, { dotPath: 'plain' });
    const decode = GpuEngine.create(suite.context, { universalProduct: 'decode' });
    const { a, b } = testMatrixPair('gaussian', 16, 2, 2, 1);
    const ga = byDefault.upload(asUniversal(quantize(a, { scheme: 'e8-q16', nonce: 1 })));
    const gb = byDefault.upload(asUniversal(quantize(b, { scheme: 'e8-q16', nonce: 2 })));
    const gd = byDefault.upload(quantize(b, { scheme: 'e8-q16-deterministic' }) as never);
    try {
      expect(byDefault.universalProduct).toBe(packed ? 'i8' : 'decode');
      expect(byDefault.productKernel(ga, gb)).toBe(packed ? 'universal-i8' : 'universal-decode');
      expect(plain.productKernel(ga, gb)).toBe('universal-decode');
      expect(decode.productKernel(ga, gb)).toBe('universal-decode');
      // A universal × deterministic product decodes both, whatever the option.
      expect(suite.engine.productKernel(ga, gd)).toBe('universal-decode');
      expect(() => GpuEngine.create(suite.context, { universalProduct: 'int8' as never })).toThrow(LatticeMatmulError);
      expect(() => GpuEngine.create(suite.context, { universalProduct: 'int8' as never })).toThrow(/universalProduct must be 'i8' or 'decode'/);
    } finally {
      ga.destroy();
      gb.destroy();
      gd.destroy();
    }
  });
});
