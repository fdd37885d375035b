import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import type { Matrix } from '../../src/matrix.js';
import { dequantize } from '../../src/product/dequantize.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import type { LatticeScheme } from '../../src/quantize/schemes.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { latticeGemv, latticeLeaderTableCopies } from '../../src/gpu/kernels/latticeGemv.js';
import { dotPathFor } from '../../src/gpu/kernels/e8Matmul.js';
import { latticeGemvI8 } from '../../src/gpu/kernels/latticeGemvI8.js';
import { MatrixColumnSide } from '../../src/gpu/latticeOperand.js';
import { uploadLatticeMatrix } from '../../src/gpu/gpuQuantize.js';
import { contextOnTestDevice, gpuUnavailableReason, testDevice } from './gpuTestDevice.js';
import { asDeterministic, columnNorm, shifted, withRandomCodes } from './latticeTestSupport.js';

/*
 * The weight-only product Y = ŴᵀX against the CPU reference dequantize(Ŵ)ᵀ·X computed in float64.
 * Stated tolerance: |gpu − ref| ≤ 1e-5 · ‖ŵ_j‖·‖x_r‖ per entry. Why: both sides rotate in f32 (the
 * GPU rotates x forward, the CPU rotates Ŵ's columns back), each off an exact orthogonal map by
 * about log2(N)·2^−24 relative; the GPU sums ≤ N products in f32 (≤ N·2^−24 of Σ|ŵ x| ≤ ‖ŵ‖‖x‖);
 * and |μ_j·Σx| ≤ ‖ŵ_j‖‖x‖ bounds the mean term. A wrong leader, scale or coordinate costs ~1e-2.
 */

const noGpu = await gpuUnavailableReason();

const Z_Q16: LatticeScheme = { kind: 'lattice', mode: 'deterministic', lattice: 'Z', q: 16, overload: { kind: 'betaSet', betas: [0.2, 0.28, 0.392, 0.5488] } };
// 5 multiples → 3-bit scale indices, 10 per word, not a multiple of the 4 codes per word (7-bit codes):
// the kernel reads an index word per block.
const D3_Q5: LatticeScheme = { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 5, overload: { kind: 'ladder', beta: 0.45, ratio: 1.3, steps: 5 } };
// q³ = 1728 > 1024: no leader table, leaders decoded per block (11-bit codes, 2 per word).
const D3_Q12: LatticeScheme = { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 12, overload: { kind: 'ladder', beta: 0.3, ratio: 1.3, steps: 5 } };
const schemes: [name: string, options: QuantizeOptions][] = [
  ['d3-q6-deterministic (leader table)', { scheme: 'd3-q6-deterministic', seed: 9 }],
  ['e8-q16-deterministic', { scheme: 'e8-q16-deterministic', seed: 9 }],
  ['Z^8 q = 16', { scheme: Z_Q16, seed: 9 }],
  ['D3 q = 5 (leader table of 125, 3-bit scale indices)', { scheme: D3_Q5, seed: 9 }],
  ['D3 q = 12 (decoded per block)', { scheme: D3_Q12, seed: 9 }],
];

/** dequantize(qW)ᵀ·X in float64: cols × rhs. */
function reference(wHat: Matrix, x: Matrix): Float64Array {
  const out = new Float64Array(wHat.cols * x.cols);
  for (let r = 0; r < x.cols; r++) {
    for (let j = 0; j < wHat.cols; j++) {
      let sum = 0;
      for (let k = 0; k < wHat.rows; k++) sum += (wHat.data[j * wHat.rows + k] as number) * (x.data[r * x.rows + k] as number);
      out[r * wHat.cols + j] = sum;
    }
  }
  return out;
}

async function compare(
  context: GpuContext,
  w: Matrix,
  x: Matrix,
  options: QuantizeOptions,
  extra: { cpuRotation?: boolean; maxBindingBytes?: number; randomCodes?: boolean } = {},
): Promise<{ ratio: number; at: string }> {
  const quantized = asDeterministic(quantize(w, options));
  const q = extra.randomCodes ? withRandomCodes(quantized, w.rows) : quantized;
  const wHat = dequantize(q);
  const expected = reference(wHat, x);
  let xRotated: Float32Array | undefined;
  if (extra.cpuRotation) {
    const rotation = new RandomizedHadamard(x.rows, q.seed);
    xRotated = new Float32Array(q.length * x.cols);
    for (let r = 0; r < x.cols; r++) rotation.forward(x.data.subarray(r * x.rows, (r + 1) * x.rows), xRotated.subarray(r * q.length, (r + 1) * q.length));
  }
  const gw = uploadLatticeMatrix(context.device, q);
  try {
    const got = await latticeGemv(context.device, gw, x.cols === 1 ? x.data : x, { xRotated, maxBindingBytes: extra.maxBindingBytes });
    expect([got.rows, got.cols]).toEqual([w.cols, x.cols]);
    let worst = { ratio: 0, at: 'none' };
    for (let r = 0; r < x.cols; r++) {
      const xNorm = columnNorm(x, r);
      for (let j = 0; j < w.cols; j++) {
        const k = r * w.cols + j;
        const g = got.data[k] as number;
        const e = expected[k] as number;
        const ratio = Math.abs(g - e) / (1e-5 * columnNorm(wHat, j) * xNorm);
        if (!(ratio <= worst.ratio)) worst = { ratio, at: `y[${j}, ${r}] = ${g}, expected ${e}` };
      }
    }
    return worst;
  } finally {
    gw.destroy();
  }
}

describe('lattice GEMV leader table sizing', () => {
  it('fits as many copies (8 at most) as the workgroup memory leaves next to the 12 KB staged chunk', () => {
    expect(latticeLeaderTableCopies('D3', 6, 16384)).toBe(1);
    expect(latticeLeaderTableCopies('D3', 6, 32768)).toBe(4);
    expect(latticeLeaderTableCopies('D3', 6, 49152)).toBe(8);
    expect(latticeLeaderTableCopies('D3', 10, 16384)).toBe(0); // 16 KB per copy
    expect(latticeLeaderTableCopies('D3', 11, 1 << 20)).toBe(0); // q³ > 1024: decoded per block
    expect(latticeLeaderTableCopies('E8', 16, 1 << 20)).toBe(0);
  });
});

describe.skipIf(noGpu !== undefined)('lattice_gemv.wgsl on the device', () => {
  const suite = contextOnTestDevice();

  const shapes: [n: number, cols: number][] = [
    [1, 3],
    [3, 1],
    [8, 17],
    [13, 33],
    [100, 17],
    [192, 64],
  ];

  for (const [name, options] of schemes) {
    it.each(shapes)(`${name}: y = Ŵᵀx, n = %i, %i columns, within 1e-5·‖ŵ_j‖‖x‖ of dequantize(Ŵ)ᵀx`, async (n, cols) => {
      const w = gaussianMatrix(n, cols, 500 + n);
      const x = gaussianMatrix(n, 1, 600 + cols);
      const result = await compare(suite.context, w, x, options);
      expect(result.ratio, result.at).toBeLessThanOrEqual(1);
    });
  }

  it.each([3, 8, 17])('several right-hand sides (%i): Y = ŴᵀX for D3 and E8', async (rhs) => {
    for (const [, options] of schemes.slice(0, 2)) {
      const w = gaussianMatrix(192, 33, 700 + rhs);
      const x = gaussianMatrix(192, rhs, 800 + rhs);
      const result = await compare(suite.context, w, x, options!);
      expect(result.ratio, result.at).toBeLessThanOrEqual(1);
    }
  });

  // x̃ is staged in chunks of 3072 f32 (X_CHUNK) for the right-hand sides of a tile together: 256 D3 code
  // words of a column per chunk with one right-hand side, 32 D3 or 48 E8 words with a tile of 8. The
  // shapes above fit one chunk; these need a second, partial one (n ≥ 3073 for one right-hand side,
  // > 384 with a tile; the rotated length is at least n).
  it.each([
    ['d3-q6-deterministic', 3100, 1],
    ['d3-q6-deterministic', 500, 3],
    ['e8-q16-deterministic', 400, 3],
  ] as const)('%s, n = %i, %i right-hand side(s): x̃ in more than one staged chunk', async (scheme, n, rhs) => {
    const w = gaussianMatrix(n, 9, 1400 + n);
    const x = gaussianMatrix(n, rhs, 1500 + n);
    const result = await compare(suite.context, w, x, { scheme, seed: 9 });
    expect(result.ratio, result.at).toBeLessThanOrEqual(1);
  });

  it.each([1, 13, 100])('centred W, n = %i: the mean term μ_j·Σx is added (vector and matrix)', async (n) => {
    for (const rhs of [1, 3]) {
      const w = shifted(gaussianMatrix(n, 17, 900 + n), 2);
      const x = shifted(gaussianMatrix(n, rhs, 1000 + n), 0.5);
      for (const options of [{ scheme: 'd3-q6-deterministic', seed: 9, center: true }, { scheme: 'e8-q16-deterministic', seed: 9, center: true }] as const) {
        const result = await compare(suite.context, w, x, options);
        expect(result.ratio, `${options.scheme}, rhs ${rhs}: ${result.at}`).toBeLessThanOrEqual(1);
      }
    }
  });

  it('R·x supplied by the caller (CPU rotation) gives the same result as the GPU rotation', async () => {
    const w = gaussianMatrix(100, 33, 1100);
    const x = gaussianMatrix(100, 2, 1101);
    for (const [, options] of schemes.slice(0, 2)) {
      const result = await compare(suite.context, w, x, options!, { cpuRotation: true });
      expect(result.ratio, result.at).toBeLessThanOrEqual(1);
    }
  });

  it('no rotation, no gains, time-sharing, and a split over bindings (maxBindingBytes 1024)', async () => {
    const w = gaussianMatrix(100, 70, 1200);
    const x = gaussianMatrix(100, 3, 1201);
    for (const options of [
      { scheme: 'd3-q6-deterministic', seed: 9, rotate: false },
      { scheme: 'e8-q16-deterministic', seed: 9, gain: 'none' },
      { scheme: 'd3-q6-deterministic', seed: 9, keepFraction: 0.5 },
    ] as const) {
      const result = await compare(suite.context, w, x, options);
      expect(result.ratio, `${JSON.stringify(options)}: ${result.at}`).toBeLessThanOrEqual(1);
    }
    const split = await compare(suite.context, w, x, { scheme: 'e8-q16-deterministic', seed: 9 }, { maxBindingBytes: 1024 });
    expect(split.ratio, split.at).toBeLessThanOrEqual(1);
  });

  /*
   * Norms, gains and means gathered once for the whole matrix (MatrixColumnSide, what QuantizedLinear
   * keeps so that a replay records no copies) against the per-call gather of each column range: the
   * same bytes, with gains and means (centred, MMSE gains) and with W's columns split across dispatches
   * (maxBindingBytes), where a range starts past column 0 and reads the whole-matrix side at its offset.
   */
  it.each([
    ['centred with gains, 1100 × 33, 9 right-hand sides', 1100, 33, 9, undefined],
    ['centred with gains, 300 × 70, 5 right-hand sides, bindings of 2 KB (columns split)', 300, 70, 5, 2048],
  ] as const)('a column side gathered once gives the bytes of the per-call gather, both GEMVs (%s)', async (_name, n, cols, rhs, maxBindingBytes) => {
    const { device } = suite.context;
    const q = asDeterministic(quantize(gaussianMatrix(n, cols, 1300 + n), { scheme: 'd3-q6-deterministic', seed: 4, center: true, gain: 'mmse' }));
    expect(q.gains).not.toBeNull();
    expect(q.means).not.toBeNull();
    const w = uploadLatticeMatrix(device, q);
    const other = uploadLatticeMatrix(device, q);
    const side = MatrixColumnSide.create(device, w, 'test column side');
    const otherSide = MatrixColumnSide.create(device, other, 'other column side');
    try {
      const x = gaussianMatrix(n, rhs, 1301);
      const split = maxBindingBytes === undefined ? {} : { maxBindingBytes };
      const gathered = await latticeGemv(device, w, x, split);
      const once = await latticeGemv(device, w, x, { ...split, columnSide: side });
      expect(once.data).toEqual(gathered.data);
      const dotPath = dotPathFor(suite.context.features);
      const gatheredI8 = await latticeGemvI8(device, w, x, { dotPath, ...split });
      const onceI8 = await latticeGemvI8(device, w, x, { dotPath, ...split, columnSide: side });
      expect(onceI8.data).toEqual(gatheredI8.data);
      // Not vacuous: the means and gains matter (a side of zeros would give other values).
      expect(gathered.data.some((v) => v !== 0)).toBe(true);
      await expect(latticeGemv(device, w, x, { columnSide: otherSide })).rejects.toThrow(/columnSide must be a MatrixColumnSide made for this W/);
    } finally {
      side.destroy();
      otherSide.destroy();
      w.destroy();
      other.destroy();
    }
  });

  it.each([3, 100])('random codes (every leader, nonzero coordinates past N in the last block), n = %i, 3 right-hand sides', async (n) => {
    const w = gaussianMatrix(n, 33, 1400 + n);
    const x = gaussianMatrix(n, 3, 1401);
    for (const [name, options] of schemes) {
      const result = await compare(suite.context, w, x, options, { randomCodes: true });
      expect(result.ratio, `${name}: ${result.at}`).toBeLessThanOrEqual(1);
    }
  });

  it('a device with the minimum 16 KB of workgroup memory (one leader-table copy) gives the same results', async () => {
    const small = await testDevice({ workgroupStorageLimit: 16384 });
    try {
      for (const rhs of [1, 3]) {
        const w = gaussianMatrix(100, 17, 1500 + rhs);
        const x = gaussianMatrix(100, rhs, 1501);
        const result = await compare(small, w, x, { scheme: 'd3-q6-deterministic', seed: 9 });
        expect(result.ratio, result.at).toBeLessThanOrEqual(1);
      }
    } finally {
      small.device.destroy();
    }
  });

  // Its workgroup memory: 3072 staged f32 (12 288 bytes), the 16 f32 multiples (64) and the copies of
  // the 216 leaders (3456 bytes each). On a device whose limit is exactly that for 2 copies, Dawn
  // accepts the pipeline with 2 (an undercount would fail its validation); a byte less, the host takes 1.
  it('2 leader-table copies at exactly their workgroup bytes, 1 a byte below: both give the same results', async () => {
    const exact = 12288 + 64 + 2 * 3456;
    expect([latticeLeaderTableCopies('D3', 6, exact), latticeLeaderTableCopies('D3', 6, exact - 1)]).toEqual([2, 1]);
    for (const limit of [exact, exact - 1]) {
      const context = await testDevice({ workgroupStorageLimit: limit });
      try {
        expect(context.device.limits.maxComputeWorkgroupStorageSize).toBe(limit);
        const result = await compare(context, gaussianMatrix(100, 17, 1510), gaussianMatrix(100, 1, 1511), { scheme: 'd3-q6-deterministic', seed: 9 });
        expect(result.ratio, `limit ${limit}: ${result.at}`).toBeLessThanOrEqual(1);
      } finally {
        context.device.destroy();
      }
    }
  });

  it('refuses an x of the wrong length with LatticeMatmulError', async () => {
    const q = asDeterministic(quantize(gaussianMatrix(24, 3, 1300), { scheme: 'd3-q6-deterministic' }));
    const gw = uploadLatticeMatrix(suite.context.device, q);
    try {
      await expect(latticeGemv(suite.context.device, gw, new Float32Array(23))).rejects.toThrow(LatticeMatmulError);
    } finally {
      gw.destroy();
    }
  });
});
