import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { BufferUsage, createBuffer, createBufferWithData, readBuffer, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import type { GpuContext } from '../../src/gpu/device.js';
import { dotPathFor, type DotPath } from '../../src/gpu/kernels/e8Matmul.js';
import {
  dispatchUniversalGemvI8,
  escapeNibbles,
  int8InputsUnsupported,
  universalGemvI8,
  universalGemvI8Header,
  universalGemvI8LeaderTable,
  UniversalGemvI8Weights,
  type UniversalGemvI8Options,
} from '../../src/gpu/kernels/universalGemvI8.js';
import { inputsI8Bytes, inputsI8ScalesFirst } from '../../src/gpu/kernels/inputsI8Layout.js';
import { dispatchInputsI8, dispatchRotatedInputsI8, INPUT_GROUP, inputsI8Key, quantizeInputsI8, type InputsI8Operand, type RecordedInputsI8 } from '../../src/gpu/kernels/inputsI8.js';
import { dispatchHadamard, rotationRoundsInPass } from '../../src/gpu/kernels/hadamard.js';
import { rotationLength } from '../../src/rotation/hadamard.js';
import { expectRotatedRoundingEqual } from './rotatedInputsSupport.js';
import { GpuScratch } from '../../src/gpu/scratch.js';
import { runAndRead } from '../../src/gpu/runAndRead.js';
import { uploadUniversalMatrix, type GpuUniversalQuantizedMatrix } from '../../src/gpu/universalOperand.js';
import { matmulATExact, type Matrix } from '../../src/matrix.js';
import { decodeRotated } from '../../src/product/decodeRotated.js';
import { dequantizeD3GroupScaled, encodeD3GroupScaled, groupScaleIndices, type D3GroupScaledMatrix } from '../../src/quantize/d3GroupScale.js';
import { matvecAT } from '../../src/product/matvec.js';
import { quantize, type QuantizeOptions } from '../../src/quantize/quantize.js';
import type { DeterministicLatticeMatrix, UniversalLatticeMatrix } from '../../src/quantize/quantizedMatrix.js';
import { gpuQuantizeLattice, uploadLatticeMatrix, type GpuLatticeQuantizedMatrix } from '../../src/gpu/gpuQuantize.js';
import { uploadContainerEntry } from '../../src/gpu/containerUpload.js';
import { readQuantizedContainer, writeQuantizedContainer, type DeterministicContainerEntry, type UniversalContainerEntry } from '../../src/format/container.js';
import { d3GroupScaledGemvI8, dispatchD3GroupScaledGemvI8, GpuD3GroupScaledMatrix, type D3GroupScaledGemvI8Options } from '../../src/gpu/kernels/d3GroupScaledGemvI8.js';
import { dispatchLatticeGemvI8, latticeGemvI8, latticeGemvI8LeaderTable, latticeInt8InputsUnsupported, type LatticeGemvI8Options } from '../../src/gpu/kernels/latticeGemvI8.js';
import { dispatchUniversalGemv } from '../../src/gpu/kernels/universalGemv.js';
import { dispatchLatticeGemv } from '../../src/gpu/kernels/latticeGemv.js';
import { SCHEMES } from '../../src/quantize/schemes.js';
import type { DeterministicLatticeScheme, UniversalLatticeScheme } from '../../src/quantize/schemes.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { contextOnTestDevice, gpuUnavailableReason, runWgslProbe, skipUnless, testDevice } from './gpuTestDevice.js';
import { spiky, spikedGaussian } from './latticeTestSupport.js';
import { dispatchesByPipeline } from '../../bench/gpu/common.js';
import { universalCodec } from '../../src/quantize/latticeSpec.js';
import { blockDither } from '../../src/quantize/universalCode.js';
import { float16Bits } from '../../src/scalar/floatFormats.js';
import counterHashSource from '../../shaders/counter_hash.wgsl?raw';

// A case's first call compiles its pipelines (both dot paths, with and without subgroups). With a tile of
// right-hand sides (k > 1) they are large: cold, lavapipe takes ≈ 45–60 s for the universal kernel's alone
// and up to ≈ 90 s with another test file compiling beside it on a 2-core machine, near the 120 s of
// vitest.config.ts.
vi.setConfig({ testTimeout: 300_000 });

/*
 * The int8-input GEMVs — universal (src/gpu/kernels/universalGemvI8.ts) and deterministic
 * (src/gpu/kernels/latticeGemvI8.ts) — against their CPU twins.
 *
 * 1. Escape nibbles (the repack at upload): bit for bit equal to `escapeNibbles`, and non-zero exactly
 *    where the CPU matrix has an escape symbol (an independent check of the twin).
 * 2. The product, two ways, per output y_j:
 *    (a) against the twin: y_twin = Σ_k ŵ̃_jk·s_g·x̂_k + μ_j·Σx with x̂, s from `quantizeInputsI8` on the CPU
 *        rotation (bit for bit the GPU's) and ŵ̃ the CPU's rotated decode. They differ by f32 rounding,
 *        bounded as in universalGemv.test.ts by 2·u·(D·(S + |y|) + D_μ·|μ_j|Σ|x|), S = Σ|ŵ̃_jk·s_g·x̂_k|, D and
 *        D_μ the roundings along any path (see `compare`: a group's integer sum is exact, so D grows with
 *        the groups per lane, not with n),
 *        plus, where the GPU's f32 division may round a level the other way (127·x̃/m within 10⁻⁴ of a
 *        half-integer), s_g·|ŵ̃_jk| for that coordinate;
 *    (b) against the exact product matvecAT (x̃ not rounded): |y − y_exact| ≤ Σ_g s_g·(½ + 2·10⁻⁴)·Σ_{k∈g}|ŵ̃_jk|
 *        + the f32 term — the stated tolerance of the int8 inputs.
 *    A wrong leader, root, dither lane, nibble or scale moves an output by ≈ |y|/√N, far above both.
 */

const noGpu = await gpuUnavailableReason();
const U = 2 ** -24;

const d3 = (q: number, beta: number): UniversalLatticeScheme => ({ kind: 'lattice', mode: 'universal', lattice: 'D3', q, beta });

/** Blocks at five scales (×¼ … ×4 by block): a deterministic D3 code uses every rung of its scale ladder on them. */
function graded(rows: number, cols: number, seed: number): Matrix {
  const rng = new Rng(seed);
  const data = new Float32Array(rows * cols);
  for (let j = 0; j < cols; j++) for (let i = 0; i < rows; i++) data[j * rows + i] = rng.nextGaussian() * 4 ** (((Math.floor(i / 3) % 5) - 2) / 2);
  return { rows, cols, data };
}

/**
 * A deterministic D3 scheme of two scales, multiples 16 (β = 0.4) and `largest` (1-bit indices): on
 * `graded` columns both are used (a normalized column's blocks overload at β = 0.4 only where they
 * are large, and then fit at the larger scale), so the kernel meets `largest` in its sums.
 */
function twoScales(largest: number): DeterministicLatticeScheme {
  return { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 6, overload: { kind: 'ladder', beta: 0.4, ratio: largest / 16, steps: 2 } };
}

/** Columns of x that are not Gaussian: a spike, a constant, a ramp. */
function structuredX(rows: number, k: number): Matrix {
  const data = new Float32Array(rows * k);
  for (let r = 0; r < k; r++) {
    for (let i = 0; i < rows; i++) {
      const kind = r % 3;
      data[r * rows + i] = kind === 0 ? (i === Math.floor(rows / 2) ? 1000 : 1e-3) : kind === 1 ? 1 : i / rows - 0.5;
    }
  }
  return { rows, cols: k, data };
}

function deterministic(w: Matrix, options: QuantizeOptions): DeterministicLatticeMatrix {
  const q = quantize(w, options);
  if (q.kind !== 'lattice' || q.mode !== 'deterministic') throw new Error('expected a deterministic matrix');
  return q;
}

function quantizeUniversal(w: Matrix, options: QuantizeOptions): UniversalLatticeMatrix {
  const q = quantize(w, options);
  if (q.kind !== 'lattice' || q.mode !== 'universal') throw new Error('expected a universal matrix');
  return q;
}

/** What `compare` needs of a matrix: its decode in the rotated basis, its rotation and its exact product. */
interface GemvTwin {
  readonly rows: number;
  readonly cols: number;
  readonly length: number;
  readonly keptLength: number;
  readonly means: Float32Array | null;
  /** Ŵ̃: length × cols, column-major. */
  readonly rotated: ArrayLike<number>;
  readonly rotation: RandomizedHadamard | null;
  readonly groups: number;
  /** ŴᵀX: cols × k, column-major. */
  readonly exact: { readonly data: ArrayLike<number> };
}

function twinOf(q: UniversalLatticeMatrix | DeterministicLatticeMatrix | D3GroupScaledMatrix, x: Matrix): GemvTwin {
  if ('groupIndices' in q) {
    // The group-scaled prototype: no rotation, no centring; its exact product in float64.
    const w = dequantizeD3GroupScaled(q);
    return { rows: q.rows, cols: q.cols, length: q.rows, keptLength: q.rows, means: null, rotated: w.data, rotation: null, groups: q.groupsPerColumn, exact: matmulATExact(w, x) };
  }
  return {
    rows: q.rows,
    cols: q.cols,
    length: q.length,
    keptLength: q.keptLength,
    means: q.means,
    rotated: decodeRotated(q),
    rotation: q.rotate ? new RandomizedHadamard(q.rows, q.seed) : null,
    groups: Math.ceil(q.blocksPerColumn / 4),
    exact: matvecAT(q, x),
  };
}

/** max over outputs of |gpu − reference| / tolerance, for (a) the twin and (b) the exact product. */
function compare(gpu: Matrix, matrix: UniversalLatticeMatrix | DeterministicLatticeMatrix | D3GroupScaledMatrix, x: Matrix): { twin: number; exact: number; looseness: number } {
  const q = twinOf(matrix, x);
  const { rotated, rotation, groups, exact } = q;
  // Roundings along any path (see the file comment): a group's sum is an exact integer; its product
  // with the scale (whose f32 division errs by ≤ 2.5 ULP) ≈ 4, the lane's additions over its groups,
  // the 5 levels of the 32-lane sum, the finishing scale and multiply-add ≈ 4, and some slack; the mean
  // term adds Σx, summed by 256 invocations then a tree of 8 levels.
  const depth = Math.ceil(groups / 32) + 20;
  const meanDepth = Math.ceil(q.rows / 256) + 20;
  let twinWorst = 0;
  let exactWorst = 0;
  let largestTolerance = 0;
  let largest = 0;
  for (let r = 0; r < x.cols; r++) {
    const xr = x.data.subarray(r * x.rows, (r + 1) * x.rows);
    const xRotated = rotation ? rotation.forward(xr) : xr;
    const { levels, scales } = quantizeInputsI8(xRotated, q.keptLength, groups);
    // Coordinates whose level the GPU may round the other way.
    const tie = new Uint8Array(q.keptLength);
    for (let k = 0; k < q.keptLength; k++) {
      const g = Math.floor(k / INPUT_GROUP);
      const s = scales[g] as number;
      if (s > 0) {
        const t = (xRotated[k] as number) / s;
        if (Math.abs(Math.abs(t - Math.trunc(t)) - 0.5) < 1e-4) tie[k] = 1;
      }
    }
    let xAbs = 0;
    let xSum = 0;
    for (const v of xr) {
      xAbs += Math.abs(v);
      xSum += v;
    }
    for (let j = 0; j < q.cols; j++) {
      let twin = 0;
      let terms = 0;
      let tieSlack = 0;
      let rounding = 0;
      for (let k = 0; k < q.keptLength; k++) {
        const wk = rotated[j * q.length + k] as number;
        const s = scales[Math.floor(k / INPUT_GROUP)] as number;
        const xk = s * (levels[k] as number);
        twin += wk * xk;
        terms += Math.abs(wk * xk);
        if (tie[k] === 1) tieSlack += s * Math.abs(wk);
        rounding += s * (0.5 + 2e-4) * Math.abs(wk);
      }
      const mean = q.means ? (q.means[j] as number) : 0;
      twin += mean * xSum;
      const index = r * q.cols + j;
      const y = gpu.data[index] as number;
      expect(Number.isFinite(y), `y[${j}, ${r}] is finite`).toBe(true);
      const f32Slack = 2 * U * (depth * (terms + Math.abs(twin)) + meanDepth * Math.abs(mean) * xAbs);
      twinWorst = Math.max(twinWorst, Math.abs(y - twin) / (f32Slack + tieSlack + 1e-30));
      exactWorst = Math.max(exactWorst, Math.abs(y - (exact.data[index] as number)) / (rounding + f32Slack + 1e-30));
      largestTolerance = Math.max(largestTolerance, f32Slack + tieSlack);
      largest = Math.max(largest, Math.abs(twin));
    }
  }
  return { twin: twinWorst, exact: exactWorst, looseness: largest > 0 ? largestTolerance / largest : 0 };
}

/**
 * Runs `gemv` on every dot path and reduction (the subgroup one forced to its shuffles where the device
 * has subgroups) and checks each Y against the twins of `q` (`compare`).
 */
async function expectTwinsOnEveryPath(
  context: GpuContext,
  dotPaths: readonly DotPath[],
  q: Parameters<typeof compare>[1],
  x: Matrix,
  gemv: (options: { dotPath: DotPath; subgroups: boolean; subgroupTestMode?: 'require-shuffles' }) => Promise<Matrix>,
): Promise<void> {
  for (const dotPath of dotPaths) {
    const variants: { subgroups: boolean; subgroupTestMode?: 'require-shuffles' }[] = [{ subgroups: false }];
    if (context.device.features.has('subgroups')) variants.push({ subgroups: true, subgroupTestMode: 'require-shuffles' });
    for (const variant of variants) {
      const { twin, exact, looseness } = compare(await gemv({ dotPath, ...variant }), q, x);
      const path = `${dotPath}, ${variant.subgroups ? 'subgroups' : 'plain tree'}`;
      expect(twin, `${path}: worst |gpu − twin| / tolerance`).toBeLessThanOrEqual(1);
      expect(exact, `${path}: worst |gpu − exact| / int8 bound`).toBeLessThanOrEqual(1);
      expect(looseness, `${path}: largest twin tolerance / largest |y|`).toBeLessThan(1e-3);
    }
  }
}

describe('int8-input GEMV: which schemes', () => {
  it('takes universal D3 with 8-bit codes (d3-q6) and refuses the rest with a reason', () => {
    expect(int8InputsUnsupported(d3(6, 0.45))).toBeNull();
    expect(int8InputsUnsupported(d3(5, 0.45))).toMatch(/8-bit/);
    expect(int8InputsUnsupported({ kind: 'lattice', mode: 'universal', lattice: 'E8', q: 16, beta: 0.25 })).toMatch(/D3/);
  });

  it('quantizeInputsI8 rounds per group of 12, zero past keptLength, NaN scale for a non-finite group', () => {
    const x = Float32Array.from({ length: 30 }, (_, i) => (i % 5) - 2.5);
    x[13] = Number.POSITIVE_INFINITY;
    const { levels, scales } = quantizeInputsI8(x, 26, 3);
    expect(scales[0]).toBe(Math.fround(2.5 / 127)); // the f32 scale the GPU stores
    expect(levels[0]).toBe(-127); // −2.5 is the group's largest |x̃|
    expect(levels[1]).toBe(-76); // −1.5·127/2.5 = −76.2
    expect(levels[2]).toBe(-25); // −0.5·127/2.5 = −25.4
    expect(Number.isNaN(scales[1])).toBe(true);
    expect(Array.from(levels.subarray(26))).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });
});

describe('int8 inputs: the rounding error, as a statistic', () => {
  // The documented average (universalGemvI8.ts): a rounded coordinate errs by ≈ U(−s/2, s/2), variance
  // s²/12, except the group's largest, which is exact. Measured over 16 Gaussian vectors of 4096: the
  // mean of measured / predicted must be within 4 standard errors of 1 (plus 1 % for the uniform
  // model), and the relative error ≈ 2·10⁻⁵ as the docs say.
  it('adds s²/12 per coordinate (but the largest of each group): ≈ 2·10⁻⁵ of ‖x‖² on Gaussian data', () => {
    const n = 4096;
    const ratios: number[] = [];
    const relative: number[] = [];
    for (let seed = 1; seed <= 16; seed++) {
      const rng = new Rng(1000 + seed);
      const x = Float64Array.from({ length: n }, () => rng.nextGaussian());
      const { levels, scales } = quantizeInputsI8(x, n, Math.ceil(n / INPUT_GROUP));
      let error = 0;
      let predicted = 0;
      let norm = 0;
      for (let g = 0; g * INPUT_GROUP < n; g++) {
        const s = scales[g] as number;
        const end = Math.min(n, (g + 1) * INPUT_GROUP);
        let largest = g * INPUT_GROUP;
        for (let k = g * INPUT_GROUP; k < end; k++) if (Math.abs(x[k] as number) > Math.abs(x[largest] as number)) largest = k;
        for (let k = g * INPUT_GROUP; k < end; k++) {
          const e = (levels[k] as number) * s - (x[k] as number);
          error += e * e;
          norm += (x[k] as number) ** 2;
          if (k !== largest) predicted += (s * s) / 12;
        }
      }
      ratios.push(error / predicted);
      relative.push(error / norm);
    }
    const mean = ratios.reduce((a, b) => a + b, 0) / ratios.length;
    const sd = Math.sqrt(ratios.reduce((a, b) => a + (b - mean) ** 2, 0) / (ratios.length - 1));
    expect(Math.abs(mean - 1)).toBeLessThanOrEqual((4 * sd) / Math.sqrt(ratios.length) + 0.01);
    const meanRelative = relative.reduce((a, b) => a + b, 0) / relative.length;
    expect(meanRelative).toBeGreaterThan(1.5e-5);
    expect(meanRelative).toBeLessThan(2.5e-5);
  });
});

describe.skipIf(noGpu !== undefined)('int8-input universal GEMV (GPU) = its CPU twins', () => {
  const suite = contextOnTestDevice();
  let dotPaths: DotPath[] = ['plain'];
  beforeAll(() => {
    if (dotPathFor(suite.context.features) === 'packed') dotPaths = ['packed', 'plain'];
    else console.warn('\n*** int8-input gemv: no packed_4x8_integer_dot_product here; the packed path is SKIPPED\n');
  });

  function paths(): [string, UniversalGemvI8Options][] {
    const list: [string, UniversalGemvI8Options][] = [];
    for (const dotPath of dotPaths) {
      list.push([`${dotPath}, plain tree`, { dotPath, subgroups: false }]);
      if (suite.context.device.features.has('subgroups')) list.push([`${dotPath}, subgroups`, { dotPath, subgroups: true, subgroupTestMode: 'require-shuffles' }]);
    }
    return list;
  }

  async function check(q: UniversalLatticeMatrix, x: Matrix, options: Partial<UniversalGemvI8Options> = {}): Promise<void> {
    const gpuW = uploadUniversalMatrix(suite.context.device, q);
    const weights = UniversalGemvI8Weights.create(suite.context.device, gpuW);
    try {
      const nibbles = new Uint32Array(await readBuffer(suite.context.device, weights.nibbles, 4 * weights.nibbleWords));
      expect(nibbles).toEqual(escapeNibbles(q));
      for (const [path, pathOptions] of paths()) {
        const y = await universalGemvI8(suite.context.device, weights, x, { ...pathOptions, ...options });
        const { twin, exact, looseness } = compare(y, q, x);
        expect(twin, `${path}: worst |gpu − twin| / tolerance`).toBeLessThanOrEqual(1);
        expect(exact, `${path}: worst |gpu − exact| / int8 bound`).toBeLessThanOrEqual(1);
        expect(looseness, `${path}: largest twin tolerance / largest |y|`).toBeLessThan(1e-3);
      }
    } finally {
      weights.destroy();
      gpuW.destroy();
    }
  }

  const cases: { name: string; w: () => Matrix; x: (rows: number) => Matrix; options: QuantizeOptions; call?: Partial<UniversalGemvI8Options> }[] = [
    { name: 'd3-q6, 4096 × 40, k = 1', w: () => gaussianMatrix(4096, 40, 1), x: (n) => gaussianMatrix(n, 1, 2), options: { scheme: 'd3-q6', seed: 3, nonce: 11 } },
    { name: 'd3-q6, 100 × 7 (N = 128: partial last group), k = 1', w: () => gaussianMatrix(100, 7, 3), x: (n) => gaussianMatrix(n, 1, 4), options: { scheme: 'd3-q6', seed: 3, nonce: 12 } },
    { name: 'd3-q6, n = 1, k = 1', w: () => gaussianMatrix(1, 3, 5), x: (n) => gaussianMatrix(n, 1, 6), options: { scheme: 'd3-q6', seed: 1, nonce: 13 } },
    { name: 'd3-q6 unrotated, n = 13 (partial block and group), 13 × 9, k = 3', w: () => gaussianMatrix(13, 9, 7), x: (n) => gaussianMatrix(n, 3, 8), options: { scheme: 'd3-q6', seed: 1, nonce: 14, rotate: false } },
    { name: 'D3 q = 6, spiky unrotated (non-root escapes), 61 × 9, k = 1', w: () => spiky(61, 9, 9), x: (n) => gaussianMatrix(n, 1, 10), options: { scheme: d3(6, 0.2), seed: 3, nonce: 15, rotate: false } },
    // Non-root escapes at every block of a code quad's group (the spiky case has none at the fourth).
    { name: 'd3-q6, Gaussian with a spike per column, unrotated (non-root escapes at every block of a group), 64 × 9, k = 1', w: () => spikedGaussian(64, 9, 5, 5), x: (n) => gaussianMatrix(n, 1, 10), options: { scheme: 'd3-q6', seed: 3, nonce: 15, rotate: false } },
    { name: 'd3-q6 centred, 1100 × 33 (two rotation windows), k = 9 (a tile of 8 and one)', w: () => gaussianMatrix(1100, 33, 11), x: (n) => gaussianMatrix(n, 9, 12), options: { scheme: 'd3-q6', seed: 9, nonce: 16, center: true } },
    // Code words per column 4 (every column on a quad) and 5 (columns at every offset in a quad).
    { name: 'd3-q6 unrotated, 48 × 21 (columns on quads), k = 2', w: () => gaussianMatrix(48, 21, 30), x: (n) => gaussianMatrix(n, 2, 31), options: { scheme: 'd3-q6', seed: 1, nonce: 19, rotate: false } },
    { name: 'd3-q6 unrotated, 50 × 37 (5 code words per column), k = 1', w: () => gaussianMatrix(50, 37, 32), x: (n) => gaussianMatrix(n, 1, 33), options: { scheme: 'd3-q6', seed: 1, nonce: 20, rotate: false } },
    // Unrotated, the GEMV rounds x itself: 300 groups, more than one workgroup of its rounding pass (256).
    { name: 'd3-q6 unrotated, 3600 × 3 (300 groups of x̂), k = 1', w: () => gaussianMatrix(3600, 3, 34), x: (n) => gaussianMatrix(n, 1, 35), options: { scheme: 'd3-q6', seed: 1, nonce: 121, rotate: false } },
    { name: 'd3-q6, 512 × 17, structured x (spike, constant, ramp), k = 3', w: () => gaussianMatrix(512, 17, 13), x: (n) => structuredX(n, 3), options: { scheme: 'd3-q6', seed: 2, nonce: 17 } },
    {
      name: 'd3-q6, 300 × 70, k = 5, bindings of 2 KB (columns and right-hand sides split)',
      w: () => gaussianMatrix(300, 70, 14),
      x: (n) => gaussianMatrix(n, 5, 15),
      options: { scheme: 'd3-q6', seed: 2, nonce: 18 },
      call: { maxBindingBytes: 2048 },
    },
  ];
  for (const { name, w, x, options, call } of cases) {
    it(name, async () => {
      const matrix = w();
      await check(quantizeUniversal(matrix, options), x(matrix.rows), call);
    });
  }

  it('the spiky case has non-root escapes and the Gaussian ones root escapes, so every nibble kind runs', () => {
    const kinds = (q: UniversalLatticeMatrix): Set<number> => {
      const found = new Set<number>();
      for (const word of escapeNibbles(q)) for (let i = 0; i < 8; i++) found.add((word >>> (4 * i)) & 15);
      return found;
    };
    const spikyQ = quantizeUniversal(spiky(61, 9, 9), { scheme: d3(6, 0.2), seed: 3, nonce: 15, rotate: false });
    expect(kinds(spikyQ).has(15)).toBe(true);
    const gaussianQ = quantizeUniversal(gaussianMatrix(4096, 40, 1), { scheme: 'd3-q6', seed: 3, nonce: 11 });
    expect([...kinds(gaussianQ)].filter((k) => k >= 1 && k <= 12).length).toBe(12);
    const nibbles = escapeNibbles(spikyQ);
    // Independent of the twin: a nibble is non-zero exactly where the CPU matrix has an escape symbol
    // (block b of column j beside code word j·codeWords + b / 4, 16 bits per code word).
    const codeWords = Math.ceil(spikyQ.blocksPerColumn / 4);
    expect(codeWords % 4, 'columns that do not start on a quad').not.toBe(0);
    for (let j = 0; j < spikyQ.cols; j++) {
      for (let b = 0; b < spikyQ.blocksPerColumn; b++) {
        const codeWord = j * codeWords + Math.floor(b / 4);
        const nibble = ((nibbles[Math.floor(codeWord / 2)] as number) >>> (16 * (codeWord % 2) + 4 * (b % 4))) & 15;
        expect(nibble !== 0).toBe((spikyQ.escapes[j * spikyQ.blocksPerColumn + b] as number) !== 0);
      }
    }
  });

  it('a non-finite x gives non-finite outputs, never a finite wrong number', async () => {
    const { device } = suite.context;
    const q = quantizeUniversal(gaussianMatrix(64, 5, 20), { scheme: 'd3-q6', seed: 1, nonce: 21 });
    const gpuW = uploadUniversalMatrix(device, q);
    const weights = UniversalGemvI8Weights.create(device, gpuW);
    try {
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
        const x = gaussianMatrix(64, 1, 22).data;
        x[10] = bad;
        // The host helper refuses such an x: record the kernel on raw buffers, as an app does.
        const xBuffer = createBufferWithData(device, 'int8 gemv test x', x, STORAGE_USAGE);
        const yBuffer = createBuffer(device, 'int8 gemv test y', 4 * q.cols, STORAGE_USAGE);
        const scratch = new GpuScratch(device);
        const encoder = device.createCommandEncoder({ label: 'int8 gemv non-finite x' });
        dispatchUniversalGemvI8(device, encoder, scratch, { weights, x: xBuffer, y: yBuffer, rhs: 1, dotPath: dotPaths[0] as DotPath });
        device.queue.submit([encoder.finish()]);
        const y = new Float32Array(await readBuffer(device, yBuffer, 4 * q.cols));
        scratch.destroy();
        xBuffer.destroy();
        yBuffer.destroy();
        for (const v of y) expect(Number.isFinite(v)).toBe(false);
      }
    } finally {
      weights.destroy();
      gpuW.destroy();
    }
  });

  it('refuses E8 and other D3 widths, and destroyed weights, with clear errors', async () => {
    const e8 = uploadUniversalMatrix(suite.context.device, quantizeUniversal(gaussianMatrix(64, 2, 30), { scheme: 'e8-q16', seed: 1, nonce: 31 }));
    const d3q5 = uploadUniversalMatrix(suite.context.device, quantizeUniversal(gaussianMatrix(64, 2, 30), { scheme: d3(5, 0.5), seed: 1, nonce: 31 }));
    try {
      expect(() => UniversalGemvI8Weights.create(suite.context.device, e8)).toThrow(LatticeMatmulError);
      expect(() => UniversalGemvI8Weights.create(suite.context.device, d3q5)).toThrow(/8-bit D3 codes/);
    } finally {
      e8.destroy();
      d3q5.destroy();
    }
    const gpuW = uploadUniversalMatrix(suite.context.device, quantizeUniversal(gaussianMatrix(64, 2, 32), { scheme: 'd3-q6', seed: 1, nonce: 33 }));
    const weights = UniversalGemvI8Weights.create(suite.context.device, gpuW);
    weights.destroy();
    await expect(universalGemvI8(suite.context.device, weights, gaussianMatrix(64, 1, 34), { dotPath: 'plain' })).rejects.toThrow(/destroyed/);
    gpuW.destroy();
  });
});

describe.skipIf(noGpu !== undefined)('int8-input deterministic GEMV (GPU) = its CPU twins', () => {
  const suite = contextOnTestDevice();
  let dotPaths: DotPath[] = ['plain'];
  beforeAll(() => {
    if (dotPathFor(suite.context.features) === 'packed') dotPaths = ['packed', 'plain'];
  });


  it('takes d3-q6-deterministic and refuses E8 and other D3 widths with a reason', () => {
    expect(latticeInt8InputsUnsupported(SCHEMES['d3-q6-deterministic'] as never)).toBeNull();
    expect(latticeInt8InputsUnsupported(SCHEMES['e8-q16-deterministic'] as never)).toMatch(/D3/);
    expect(latticeInt8InputsUnsupported({ kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 5, overload: { kind: 'ladder', beta: 0.45, ratio: 1.3, steps: 4 } })).toMatch(/8-bit/);
  });

  const cases: { name: string; w: () => Matrix; x: (rows: number) => Matrix; options: QuantizeOptions; call?: Partial<LatticeGemvI8Options> }[] = [
    { name: '4096 × 40, k = 1', w: () => gaussianMatrix(4096, 40, 41), x: (n) => gaussianMatrix(n, 1, 42), options: { scheme: 'd3-q6-deterministic', seed: 3 } },
    { name: 'n = 1, k = 1', w: () => gaussianMatrix(1, 3, 43), x: (n) => gaussianMatrix(n, 1, 44), options: { scheme: 'd3-q6-deterministic', seed: 1 } },
    { name: 'unrotated n = 13, 13 × 9, k = 3', w: () => gaussianMatrix(13, 9, 45), x: (n) => gaussianMatrix(n, 3, 46), options: { scheme: 'd3-q6-deterministic', seed: 1, rotate: false } },
    { name: 'centred with gains, 1100 × 33, k = 9', w: () => gaussianMatrix(1100, 33, 47), x: (n) => gaussianMatrix(n, 9, 48), options: { scheme: 'd3-q6-deterministic', seed: 9, center: true, gain: 'mmse' } },
    { name: 'graded unrotated columns (every scale multiple), 512 × 17, structured x, k = 3', w: () => graded(512, 17, 49), x: (n) => structuredX(n, 3), options: { scheme: 'd3-q6-deterministic', seed: 2, rotate: false } },
    { name: 'unrotated 48 × 21 (columns on quads), k = 2', w: () => gaussianMatrix(48, 21, 52), x: (n) => gaussianMatrix(n, 2, 53), options: { scheme: 'd3-q6-deterministic', seed: 1, rotate: false } },
    { name: 'unrotated 50 × 37 (5 code words per column), k = 1', w: () => gaussianMatrix(50, 37, 54), x: (n) => gaussianMatrix(n, 1, 55), options: { scheme: 'd3-q6-deterministic', seed: 1, rotate: false } },
    {
      name: 'unrotated 100 × 70, 1-bit scale indices (8 groups per index word), bindings of 2 KB, k = 1',
      w: () => graded(100, 70, 56),
      x: (n) => gaussianMatrix(n, 1, 57),
      options: { scheme: { kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 6, overload: { kind: 'ladder', beta: 0.4, ratio: Math.SQRT2, steps: 2 } }, seed: 1, rotate: false },
      call: { maxBindingBytes: 2048 },
    },
    { name: '300 × 70, k = 5, bindings of 2 KB', w: () => gaussianMatrix(300, 70, 50), x: (n) => gaussianMatrix(n, 5, 51), options: { scheme: 'd3-q6-deterministic', seed: 2 }, call: { maxBindingBytes: 2048 } },
  ];
  for (const { name, w, x, options, call } of cases) {
    it(name, async () => {
      const matrix = w();
      const q = deterministic(matrix, options);
      const gpuW = uploadLatticeMatrix(suite.context.device, q);
      try {
        const xs = x(matrix.rows);
        await expectTwinsOnEveryPath(suite.context, dotPaths, q, xs, (options) => latticeGemvI8(suite.context.device, gpuW, xs, { ...options, ...call }));
      } finally {
        gpuW.destroy();
      }
    });
  }

  it('a codes buffer of the caller that stops short of a whole quad is refused with the reason', () => {
    const { device } = suite.context;
    // 50 rows unrotated: 17 blocks, 5 code words per column; 3 columns: 60 bytes of codes.
    const q = deterministic(gaussianMatrix(50, 3, 58), { scheme: 'd3-q6-deterministic', seed: 1, rotate: false });
    const gpuW = uploadLatticeMatrix(device, q);
    const tight = device.createBuffer({ label: 'tight codes', size: 60, usage: STORAGE_USAGE });
    const scratch = new GpuScratch(device);
    try {
      const x = scratch.buffer('x', 4 * 50, STORAGE_USAGE);
      const y = scratch.buffer('y', 4 * 3, STORAGE_USAGE);
      const encoder = device.createCommandEncoder();
      expect(() => dispatchLatticeGemvI8(device, encoder, scratch, { w: { ...gpuW, codes: tight }, x, y, rhs: 1, dotPath: 'plain' })).toThrow(/codes buffer has 60 bytes.*needs 64/);
      dispatchLatticeGemvI8(device, encoder, scratch, { w: gpuW, x, y, rhs: 1, dotPath: 'plain' });
    } finally {
      scratch.destroy();
      tight.destroy();
      gpuW.destroy();
    }
  });

  it('every way codes reach the GPU (upload, GPU quantization, container) pads them to whole quads, which the int8 GEMVs then read', async () => {
    const { device } = suite.context;
    // 50 rows unrotated: 17 blocks, 5 code words per column; 3 columns: 60 bytes of codes, 64 bound.
    const w = gaussianMatrix(50, 3, 59);
    const x = gaussianMatrix(50, 1, 60);
    const deterministicOptions = { scheme: 'd3-q6-deterministic', seed: 1, rotate: false } as const;
    const universalOptions = { scheme: 'd3-q6', seed: 1, nonce: 22, rotate: false } as const;
    const q = deterministic(w, deterministicOptions);
    const u = quantizeUniversal(w, universalOptions);
    const container = readQuantizedContainer(writeQuantizedContainer([{ name: 'd', matrix: q }, { name: 'u', matrix: u }]));
    const deterministicWays = [
      ['uploadLatticeMatrix', uploadLatticeMatrix(device, q)],
      ['gpuQuantizeLattice', await gpuQuantizeLattice(device, w, deterministicOptions)],
      ['uploadContainerEntry', uploadContainerEntry(device, container.get('d') as DeterministicContainerEntry)],
    ] as const;
    const universalWays = [
      ['uploadUniversalMatrix', uploadUniversalMatrix(device, u)],
      ['gpuQuantizeLattice', await gpuQuantizeLattice(device, w, universalOptions)],
      ['uploadContainerEntry', uploadContainerEntry(device, container.get('u') as UniversalContainerEntry)],
    ] as const;
    try {
      for (const [way, gpuW] of deterministicWays) {
        expect(gpuW.codes.size, way).toBe(64);
        if (gpuW.mode !== 'deterministic') throw new Error(`${way}: expected a deterministic matrix`);
        const y = await latticeGemvI8(device, gpuW, x, { dotPath: 'plain' });
        expect(compare(y, q, x).twin, way).toBeLessThanOrEqual(1);
      }
      for (const [way, gpuW] of universalWays) {
        expect(gpuW.codes.size, way).toBe(64);
        if (gpuW.mode !== 'universal') throw new Error(`${way}: expected a universal matrix`);
        const weights = UniversalGemvI8Weights.create(device, gpuW);
        try {
          const y = await universalGemvI8(device, weights, x, { dotPath: 'plain' });
          expect(compare(y, u, x).twin, way).toBeLessThanOrEqual(1);
        } finally {
          weights.destroy();
        }
      }
    } finally {
      for (const [, gpuW] of [...deterministicWays, ...universalWays]) gpuW.destroy();
    }
  });

  it('scale multiples up to the largest whose i32 group sums cannot overflow give the twin; larger ones are refused with the reason', async () => {
    const { device } = suite.context;
    const x = structuredX(512, 2);
    // 4 blocks · 6k · (3 · 6 · 127): 305 is the largest multiple whose group sums stay below 2^24 (exact
    // in f32), 39 141 the largest below 2^31 (4 · 6 · 39 141 · 2286 < 2^31 ≤ 4 · 6 · 39 142 · 2286).
    // A matrix carries its scheme's multiples (checkQuantizedMatrix), so they come from the schemes.
    for (const scheme of ['d3-q6-deterministic', twoScales(305), twoScales(39141)] as const) {
      const q = deterministic(graded(512, 17, 49), { scheme, seed: 2, rotate: false });
      const multiples = Array.from(q.multiples).join(', ');
      expect(new Set(q.scaleIndices).size, `multiples ${multiples}: every one in use`).toBe(q.multiples.length);
      const gpuW = uploadLatticeMatrix(device, q);
      try {
        const y = await latticeGemvI8(device, gpuW, x, { dotPath: dotPaths[0] as DotPath });
        const { twin, exact } = compare(y, q, x);
        expect(twin, `multiples ${multiples}: worst |gpu − twin| / tolerance`).toBeLessThanOrEqual(1);
        expect(exact, `multiples ${multiples}: worst |gpu − exact| / int8 bound`).toBeLessThanOrEqual(1);
      } finally {
        gpuW.destroy();
      }
    }
    const tooLarge = uploadLatticeMatrix(device, deterministic(graded(512, 17, 49), { scheme: twoScales(39142), seed: 2, rotate: false }));
    try {
      await expect(latticeGemvI8(device, tooLarge, x, { dotPath: 'plain' })).rejects.toThrow(/scale multiples up to 39142 are too large for the kernel's i32 group sums/);
    } finally {
      tooLarge.destroy();
    }
  });

  it('the graded case uses every scale multiple', () => {
    const q = deterministic(graded(512, 17, 49), { scheme: 'd3-q6-deterministic', seed: 2, rotate: false });
    expect(new Set(q.scaleIndices).size).toBe(4);
  });
});

describe.skipIf(noGpu !== undefined)('the group-scaled D3 prototype\'s int8-input GEMV (one scale index per group of 4 blocks) = its CPU twins', () => {
  const suite = contextOnTestDevice();
  let dotPaths: DotPath[] = ['plain'];
  beforeAll(() => {
    if (dotPathFor(suite.context.features) === 'packed') dotPaths = ['packed', 'plain'];
  });

  /** Gaussian columns with column `zero` all zeros. */
  const withZeroColumn = (rows: number, cols: number, zero: number, seed: number): Matrix => {
    const m = gaussianMatrix(rows, cols, seed);
    m.data.fill(0, zero * rows, (zero + 1) * rows);
    return m;
  };
  const cases: { name: string; w: () => Matrix; x: (rows: number) => Matrix; call?: Partial<D3GroupScaledGemvI8Options> }[] = [
    { name: '4096 × 40, k = 1', w: () => gaussianMatrix(4096, 40, 61), x: (n) => gaussianMatrix(n, 1, 62) },
    { name: 'n = 1, 1 × 3, k = 1', w: () => gaussianMatrix(1, 3, 63), x: (n) => gaussianMatrix(n, 1, 64) },
    { name: '13 × 9, k = 3', w: () => gaussianMatrix(13, 9, 65), x: (n) => gaussianMatrix(n, 3, 66) },
    { name: 'graded columns (many scale indices), 512 × 17, structured x, k = 3', w: () => graded(512, 17, 67), x: (n) => structuredX(n, 3) },
    { name: '50 × 37 (5 code words per column: columns start inside quads), k = 9 (a tile of 8 and one more)', w: () => gaussianMatrix(50, 37, 68), x: (n) => gaussianMatrix(n, 9, 69) },
    { name: '300 × 70 (25 groups per column: 4 index words, columns starting inside them), k = 5, bindings of 2 KB', w: () => gaussianMatrix(300, 70, 70), x: (n) => gaussianMatrix(n, 5, 71), call: { maxBindingBytes: 2048 } },
    { name: 'a zero column among Gaussian ones, 96 × 5, k = 2', w: () => withZeroColumn(96, 5, 2, 72), x: (n) => gaussianMatrix(n, 2, 73) },
    { name: '1100 × 33 with 32 leader-table copies, k = 1', w: () => gaussianMatrix(1100, 33, 74), x: (n) => gaussianMatrix(n, 1, 75), call: { leaderCopies: 32 } },
  ];
  for (const { name, w, x, call } of cases) {
    it(name, async () => {
      const m = encodeD3GroupScaled(w());
      const gpuW = GpuD3GroupScaledMatrix.upload(suite.context.device, m, 'test group-scaled W');
      try {
        const xs = x(m.rows);
        await expectTwinsOnEveryPath(suite.context, dotPaths, m, xs, (options) => d3GroupScaledGemvI8(suite.context.device, gpuW, xs, { ...options, ...call }));
      } finally {
        gpuW.destroy();
      }
    });
  }

  it('the graded case uses most of the 16 scale indices, so the kernel meets them', () => {
    const m = encodeD3GroupScaled(graded(512, 17, 67));
    expect(new Set(groupScaleIndices(m)).size).toBeGreaterThanOrEqual(12);
  });

  it('refuses a destroyed W, multiples whose group sums could overflow i32, and short buffers, with the reason', () => {
    const { device } = suite.context;
    const m = encodeD3GroupScaled(gaussianMatrix(50, 3, 76));
    const gpuW = GpuD3GroupScaledMatrix.upload(device, m, 'test group-scaled W');
    gpuW.destroy();
    const scratch = new GpuScratch(device);
    const buffers = [createBuffer(device, 'test x', 4 * 50, STORAGE_USAGE), createBuffer(device, 'test y', 4 * 3, STORAGE_USAGE)];
    const [xBuffer, yBuffer] = buffers as [GPUBuffer, GPUBuffer];
    try {
      expect(() => dispatchD3GroupScaledGemvI8(device, device.createCommandEncoder(), scratch, { w: gpuW, x: xBuffer, y: yBuffer, rhs: 1, dotPath: 'plain' })).toThrow(/destroyed/);
      const fields = { ...m, multiples: Int32Array.of(16, 234_852) }; // 9144 · 234 852 ≥ 2^31
      const make = (codes: number, indices: number, norms: number): GpuD3GroupScaledMatrix => {
        const made = [createBuffer(device, 'test codes', codes, STORAGE_USAGE), createBuffer(device, 'test indices', indices, STORAGE_USAGE), createBuffer(device, 'test norms', norms, STORAGE_USAGE)] as const;
        buffers.push(...made);
        return new GpuD3GroupScaledMatrix(fields, ...made);
      };
      expect(() => make(64, 12, 12)).toThrow(/too large for the kernel's i32 group sums/);
      fields.multiples = Int32Array.of(16, 234_851); // the largest that cannot overflow
      make(64, 12, 12).destroy();
      // 5 code words per column, 3 columns: 60 bytes of codes, read as 4 quads; 1 index word per column.
      expect(() => make(60, 12, 12)).toThrow(/16 bytes at a time/);
      expect(() => make(64, 8, 12)).toThrow(/groupIndices needs 12 bytes, but its buffer has 8/);
      expect(() => make(64, 12, 8)).toThrow(/norms needs 12 bytes, but its buffer has 8/);
    } finally {
      scratch.destroy();
      for (const buffer of buffers) buffer.destroy();
    }
  });
});

describe.skipIf(noGpu !== undefined)('a caller-rotated input (xRotated, one rotation shared by layers of one seed)', () => {
  const suite = contextOnTestDevice();

  it('gives the same Y, bit for bit, as the call rotating X itself: universal f32, universal int8 and deterministic int8 GEMVs', async () => {
    const { device } = suite.context;
    const n = 300;
    const k = 3;
    const seed = 21;
    const universalQ = quantizeUniversal(gaussianMatrix(n, 11, 60), { scheme: 'd3-q6', seed, nonce: 61, center: true });
    const deterministicQ = deterministic(gaussianMatrix(n, 9, 62), { scheme: 'd3-q6-deterministic', seed });
    const x = gaussianMatrix(n, k, 63);
    const rotation = new RandomizedHadamard(n, seed);
    const length = rotation.length;
    const xRotatedData = new Float32Array(length * k);
    for (let r = 0; r < k; r++) xRotatedData.set(rotation.forward(x.data.subarray(r * n, (r + 1) * n)), r * length);
    const universalW = uploadUniversalMatrix(device, universalQ);
    const weights = UniversalGemvI8Weights.create(device, universalW);
    const deterministicW = uploadLatticeMatrix(device, deterministicQ);
    const xBuffer = createBufferWithData(device, 'shared x', x.data, STORAGE_USAGE);
    // At an offset, as an app keeps activations in one buffer.
    const xRotatedBuffer = createBuffer(device, 'shared R·x', 256 + 4 * length * k, BufferUsage.STORAGE | BufferUsage.COPY_DST);
    device.queue.writeBuffer(xRotatedBuffer, 256, xRotatedData);
    // A wrong R·x (zeros) must change Y: the call reads the buffer it is given.
    const zeros = createBuffer(device, 'zero R·x', 4 * length * k, STORAGE_USAGE);
    const dotPath = dotPathFor(suite.context.features);
    const runs: [string, number, (encoder: GPUCommandEncoder, scratch: GpuScratch, y: GPUBuffer, given: { xRotated: GPUBuffer; xRotatedOffset: number } | null) => void][] = [
      ['universal f32', universalQ.cols, (encoder, scratch, y, given) =>
        dispatchUniversalGemv(device, encoder, scratch, { w: universalW, x: xBuffer, y, rhs: k, ...given })],
      ['universal int8', universalQ.cols, (encoder, scratch, y, given) =>
        dispatchUniversalGemvI8(device, encoder, scratch, { weights, x: xBuffer, y, rhs: k, dotPath, ...given })],
      ['deterministic int8', deterministicQ.cols, (encoder, scratch, y, given) =>
        dispatchLatticeGemvI8(device, encoder, scratch, { w: deterministicW, x: xBuffer, y, rhs: k, dotPath, ...given })],
    ];
    try {
      for (const [name, cols, run] of runs) {
        const results: Float32Array[] = [];
        for (const given of [null, { xRotated: xRotatedBuffer, xRotatedOffset: 256 }, { xRotated: zeros, xRotatedOffset: 0 }]) {
          const y = createBuffer(device, `${name} y`, 4 * cols * k, STORAGE_USAGE);
          const scratch = new GpuScratch(device);
          const encoder = device.createCommandEncoder({ label: `${name} (given R·x: ${given?.xRotated.label ?? 'none'})` });
          run(encoder, scratch, y, given);
          device.queue.submit([encoder.finish()]);
          results.push(new Float32Array(await readBuffer(device, y, 4 * cols * k)));
          scratch.destroy();
          y.destroy();
        }
        expect(results[1], name).toEqual(results[0]);
        expect(results[2], `${name}: a zero R·x`).not.toEqual(results[0]);
      }
    } finally {
      weights.destroy();
      universalW.destroy();
      deterministicW.destroy();
      xBuffer.destroy();
      xRotatedBuffer.destroy();
      zeros.destroy();
    }
  });
});

describe.skipIf(noGpu !== undefined)('GEMVs with a bias and f16 output (the QuantizedLinear epilogue in the GEMV: universal, deterministic, int8-input)', () => {
  const suite = contextOnTestDevice();

  it('write Y + b as f32 bit for bit and as f16 rounded to a neighbour, at odd half offsets, touching nothing else', async () => {
    const { device } = suite.context;
    const n = 300;
    const k = 3;
    const seed = 29;
    const universalQ = quantizeUniversal(gaussianMatrix(n, 11, 80), { scheme: 'd3-q6', seed, nonce: 81, center: true });
    const deterministicQ = deterministic(gaussianMatrix(n, 11, 82), { scheme: 'd3-q6-deterministic', seed, center: true });
    const cols = 11; // odd: every other right-hand side starts on an odd half
    const x = gaussianMatrix(n, k, 83);
    const biasValues = Float32Array.from({ length: cols }, (_, j) => (j - 5) / 3);
    const universalW = uploadUniversalMatrix(device, universalQ);
    const weights = UniversalGemvI8Weights.create(device, universalW);
    const deterministicW = uploadLatticeMatrix(device, deterministicQ);
    const xBuffer = createBufferWithData(device, 'x', x.data, STORAGE_USAGE);
    // The bias at an offset inside a larger buffer, as an app keeps parameters together.
    const biasBuffer = createBuffer(device, 'bias', 256 + 4 * cols, BufferUsage.STORAGE | BufferUsage.COPY_DST);
    device.queue.writeBuffer(biasBuffer, 256, biasValues);
    const dotPath = dotPathFor(suite.context.features);
    type Run = (encoder: GPUCommandEncoder, scratch: GpuScratch, y: GPUBuffer, extra: { bias?: GPUBuffer; biasOffset?: number; outputFormat?: 'f32' | 'f16'; yOffset?: number; maxBindingBytes?: number }) => void;
    const runs: [string, Run][] = [
      // The f32-input universal GEMV: its product writes Y where the device allows 10 storage buffers;
      // the split form carries the epilogue in its finishing pass (T staged for f16).
      ['universal f32', (encoder, scratch, y, extra) => dispatchUniversalGemv(device, encoder, scratch, { w: universalW, x: xBuffer, y, rhs: k, ...extra })],
      ['universal f32, split form', (encoder, scratch, y, extra) => dispatchUniversalGemv(device, encoder, scratch, { w: universalW, x: xBuffer, y, rhs: k, fusedFinish: false, ...extra })],
      ['universal int8', (encoder, scratch, y, extra) => dispatchUniversalGemvI8(device, encoder, scratch, { weights, x: xBuffer, y, rhs: k, dotPath, ...extra })],
      ['deterministic f32', (encoder, scratch, y, extra) => dispatchLatticeGemv(device, encoder, scratch, { w: deterministicW, x: xBuffer, y, rhs: k, ...extra })],
      ['deterministic int8', (encoder, scratch, y, extra) => dispatchLatticeGemvI8(device, encoder, scratch, { w: deterministicW, x: xBuffer, y, rhs: k, dotPath, ...extra })],
    ];
    const outputs = cols * k;
    const SENTINEL = 0xabcd;
    const run = async (record: Run, extra: Parameters<Run>[3], bytes: number): Promise<Uint8Array> => {
      const y = createBuffer(device, 'y', bytes, BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC);
      device.queue.writeBuffer(y, 0, new Uint16Array(bytes / 2).fill(SENTINEL));
      const scratch = new GpuScratch(device);
      const encoder = device.createCommandEncoder();
      record(encoder, scratch, y, extra);
      device.queue.submit([encoder.finish()]);
      const data = new Uint8Array(await readBuffer(device, y, bytes));
      scratch.destroy();
      y.destroy();
      return data;
    };
    try {
      for (const [name, record] of runs) {
        for (const maxBindingBytes of [undefined, 2048]) {
          const what = `${name}${maxBindingBytes === undefined ? '' : ', 2 KB bindings'}`;
          const limits = maxBindingBytes === undefined ? {} : { maxBindingBytes };
          const plain = new Float32Array((await run(record, { ...limits }, 4 * outputs)).buffer);
          // f32 with the bias: t + b in f32, bit for bit.
          const withBias = new Float32Array((await run(record, { ...limits, bias: biasBuffer, biasOffset: 256 }, 4 * outputs)).buffer);
          for (let i = 0; i < outputs; i++) expect(withBias[i], `${what}: f32 + bias, output ${i}`).toBe(Math.fround((plain[i] as number) + (biasValues[i % cols] as number)));
          // f16 with the bias, from byte 258 (half 129: odd) of a buffer with room on both sides.
          const halves = new Uint16Array((await run(record, { ...limits, bias: biasBuffer, biasOffset: 256, outputFormat: 'f16', yOffset: 258 }, 4 * Math.ceil((512 + 2 * outputs) / 4))).buffer);
          for (let h = 0; h < halves.length; h++) {
            const i = h - 129;
            if (i < 0 || i >= outputs) {
              expect(halves[h], `${what}: half ${h} outside Y`).toBe(SENTINEL);
            } else {
              const v = Math.fround((plain[i] as number) + (biasValues[i % cols] as number));
              expect(halves[h], `${what}: f16 output ${i} (${v})`).toBe(float16Bits(v));
            }
          }
        }
      }
      // Refusals: a bias too short, an f32 output at an odd half, an unknown format.
      const scratch = new GpuScratch(device);
      const encoder = device.createCommandEncoder();
      const y = scratch.buffer('y', 4 * outputs + 8, STORAGE_USAGE);
      // Sized by hand: the library rounds its own buffers up to whole 16-byte quads.
      const short = device.createBuffer({ label: 'short bias', size: 4 * (cols - 1), usage: STORAGE_USAGE });
      expect(() => dispatchLatticeGemvI8(device, encoder, scratch, { w: deterministicW, x: xBuffer, y, rhs: k, dotPath, bias: short })).toThrow(/bias needs 44 bytes/);
      expect(() => dispatchLatticeGemvI8(device, encoder, scratch, { w: deterministicW, x: xBuffer, y, rhs: k, dotPath, yOffset: 2 })).toThrow(/offset must be a non-negative multiple of 4/);
      expect(() => dispatchUniversalGemvI8(device, encoder, scratch, { weights, x: xBuffer, y, rhs: k, dotPath, outputFormat: 'f64' as 'f32' })).toThrow(/outputFormat must be 'f32' or 'f16'/);
      scratch.destroy();
      short.destroy();
    } finally {
      weights.destroy();
      universalW.destroy();
      deterministicW.destroy();
      xBuffer.destroy();
      biasBuffer.destroy();
    }
  });
});

describe.skipIf(noGpu !== undefined)('int8 inputs rounded once (dispatchInputsI8) for several GEMVs', () => {
  const suite = contextOnTestDevice();

  it('give the same Y, bit for bit, as each call rounding its own x̃ (universal and deterministic, whole and split into ranges), and are refused for another operand', async () => {
    const { device } = suite.context;
    const n = 300;
    const k = 9;
    const seed = 23;
    const universalQ = quantizeUniversal(gaussianMatrix(n, 11, 70), { scheme: 'd3-q6', seed, nonce: 71, center: true });
    const deterministicQ = deterministic(gaussianMatrix(n, 9, 72), { scheme: 'd3-q6-deterministic', seed, center: true });
    const otherSeedQ = quantize(gaussianMatrix(n, 9, 72), { scheme: 'd3-q6-deterministic', seed: seed + 1 });
    if (otherSeedQ.kind !== 'lattice' || otherSeedQ.mode !== 'deterministic') throw new Error('expected a deterministic matrix');
    const x = gaussianMatrix(n, k, 73);
    const universalW = uploadUniversalMatrix(device, universalQ);
    const weights = UniversalGemvI8Weights.create(device, universalW);
    const deterministicW = uploadLatticeMatrix(device, deterministicQ);
    const otherSeedW = uploadLatticeMatrix(device, otherSeedQ);
    expect(inputsI8Key(deterministicW)).toBe(inputsI8Key(universalW));
    expect(inputsI8Key(otherSeedW)).not.toBe(inputsI8Key(universalW));
    const xBuffer = createBufferWithData(device, 'x', x.data, STORAGE_USAGE);
    const dotPath = dotPathFor(suite.context.features);
    type Run = (encoder: GPUCommandEncoder, scratch: GpuScratch, y: GPUBuffer, extra: { inputsI8?: RecordedInputsI8; maxBindingBytes?: number }) => void;
    const runs: [string, number, Run][] = [
      ['universal int8', universalQ.cols, (encoder, scratch, y, extra) => dispatchUniversalGemvI8(device, encoder, scratch, { weights, x: xBuffer, y, rhs: k, dotPath, ...extra })],
      ['deterministic int8', deterministicQ.cols, (encoder, scratch, y, extra) => dispatchLatticeGemvI8(device, encoder, scratch, { w: deterministicW, x: xBuffer, y, rhs: k, dotPath, ...extra })],
    ];
    // x̃ rounded once, from the rotation recorded by the test.
    const roundOnce = (encoder: GPUCommandEncoder, scratch: GpuScratch, from: GPUBuffer = xBuffer): RecordedInputsI8 => {
      const xRotated = scratch.buffer('R·x', 4 * universalW.length * k, STORAGE_USAGE);
      dispatchHadamard(device, encoder, scratch, { input: from, output: xRotated, rows: n, cols: k, seed });
      return dispatchInputsI8(device, encoder, scratch, { w: universalW, xRotated, rhs: k });
    };
    const zeros = createBuffer(device, 'zero x', 4 * n * k, STORAGE_USAGE);
    try {
      for (const [name, cols, run] of runs) {
        // Bindings of 2 KB split the call into one right-hand side per range, so the kernel reads
        // windows of the shared inputs at non-zero element offsets.
        for (const maxBindingBytes of [undefined, 2048]) {
          const what = `${name}${maxBindingBytes === undefined ? '' : ', 2 KB bindings'}`;
          const results: Float32Array[] = [];
          for (const mode of ['own', 'shared', 'shared from zeros'] as const) {
            const y = createBuffer(device, `${what} y`, 4 * cols * k, STORAGE_USAGE);
            const scratch = new GpuScratch(device);
            const encoder = device.createCommandEncoder({ label: `${what} (${mode})` });
            const extra = maxBindingBytes === undefined ? {} : { maxBindingBytes };
            if (mode === 'own') run(encoder, scratch, y, extra);
            else run(encoder, scratch, y, { ...extra, inputsI8: roundOnce(encoder, scratch, mode === 'shared' ? xBuffer : zeros) });
            device.queue.submit([encoder.finish()]);
            results.push(new Float32Array(await readBuffer(device, y, 4 * cols * k)));
            scratch.destroy();
            y.destroy();
          }
          expect(results[1], what).toEqual(results[0]);
          // Rounded from x = 0 the products vanish (only μ·Σx of the real x is left): the kernel reads what it is given.
          expect(results[2], `${what}: inputs rounded from zeros`).not.toEqual(results[0]);
          // A call rotating X itself ('own' above) rounds x̃ inside the rotation's one-pass last stage
          // (no rounding dispatch of its own), unless its bindings are split, as the 2 KB ones are.
          expect(rotationRoundsInPass(device, n)).toBe(true);
          const scratch = new GpuScratch(device);
          const y = scratch.buffer(`${what} y (counted)`, 4 * cols * k, STORAGE_USAGE);
          const dispatches = dispatchesByPipeline(device, (encoder) => run(encoder, scratch, y, maxBindingBytes === undefined ? {} : { maxBindingBytes }));
          scratch.destroy();
          const roundings = [...dispatches].filter(([label]) => label.startsWith('gemv int8 inputs')).reduce((sum, [, count]) => sum + count, 0);
          expect(roundings, what).toBe(maxBindingBytes === undefined ? 0 : k);
        }
      }
      // Refusals, with the reason named.
      const scratch = new GpuScratch(device);
      const encoder = device.createCommandEncoder();
      const inputsI8 = roundOnce(encoder, scratch);
      const y = scratch.buffer('y', 4 * 11 * k, STORAGE_USAGE);
      expect(() => dispatchLatticeGemvI8(device, encoder, scratch, { w: otherSeedW, x: xBuffer, y, rhs: k, dotPath, inputsI8 })).toThrow(/inputsI8 were rounded for rotated \(\d+ rows, length \d+, seed 23\).*seed 24/);
      expect(() => dispatchLatticeGemvI8(device, encoder, scratch, { w: deterministicW, x: xBuffer, y, rhs: k - 1, dotPath, inputsI8 })).toThrow(/inputsI8 hold 9 right-hand sides, the call has 8/);
      expect(() => dispatchUniversalGemvI8(device, encoder, scratch, { weights, x: xBuffer, y, rhs: k, dotPath, inputsI8, xRotated: xBuffer })).toThrow(/xRotated or int8 inputs rounded from it, not both/);
      // x̃ one entry short of N·k (n = N = 300 here: x itself would fit).
      const short = scratch.buffer('x̃ one entry short', 4 * (universalW.length * k - 1), STORAGE_USAGE);
      expect(() => dispatchInputsI8(device, encoder, scratch, { w: universalW, xRotated: short, rhs: k })).toThrow(/xRotated/);
      scratch.destroy();
    } finally {
      weights.destroy();
      universalW.destroy();
      deterministicW.destroy();
      otherSeedW.destroy();
      xBuffer.destroy();
      zeros.destroy();
    }
  });

  // The twin forms each level as the shader does, f32(f32(x̃/m)·127), not 127·x̃/m in float64: the two
  // round to different levels where the quotient lies within an f32 rounding of a half-integer. Such
  // near-ties (found by search; the float64 form gives the other level at each) and Gaussian groups:
  // levels and scales equal bit for bit on a device whose f32 division is correctly rounded, as
  // lavapipe's is (WGSL allows 2.5 ULP, so elsewhere a near-tie may round either way).
  it("rounds as quantizeInputsI8 does, bit for bit, near-ties of 127·x̃/m included", async () => {
    const { device } = suite.context;
    const nearTies: [number, number, number][] = [
      // [x̃, m, the shader's level]; float64's 127·x̃/m gives the level after it.
      [1.346140742301941, 1.3955907821655273, 122],
      [0.4777474105358124, 1.4981215000152588, 40],
      [0.589389443397522, 1.3991113901138306, 54],
      [0.34477558732032776, 1.1996300220489502, 36],
      [0.9135940074920654, 1.622747540473938, 72],
    ];
    const q = quantizeUniversal(gaussianMatrix(300, 3, 80), { scheme: 'd3-q6', seed: 5, nonce: 81 });
    const w = uploadUniversalMatrix(device, q);
    const groups = Math.ceil(q.blocksPerColumn / 4);
    const rng = new Rng(82);
    const xRotated = new Float32Array(q.length);
    for (let k = 0; k < q.length; k++) xRotated[k] = rng.nextGaussian();
    nearTies.forEach(([x, m], g) => {
      xRotated[g * INPUT_GROUP] = -m; // the group's largest |x̃|
      for (let t = 1; t < INPUT_GROUP; t++) xRotated[g * INPUT_GROUP + t] = t % 2 === 0 ? x : -x;
    });
    try {
      const words = new Uint32Array(
        await runAndRead(device, 'int8 near-ties', inputsI8Bytes(groups, 1), (run) =>
          dispatchInputsI8(device, run.encoder, run.scratch, { w, xRotated: run.upload('x̃ with near-ties', xRotated), rhs: 1 }).inputs,
        ),
      );
      const twin = quantizeInputsI8(xRotated, q.keptLength, groups);
      const gpuLevels = new Int8Array(groups * INPUT_GROUP);
      for (let k = 0; k < groups * INPUT_GROUP; k++) {
        gpuLevels[k] = ((words[Math.floor(k / 3)] as number) << (24 - 8 * (k % 3))) >> 24;
      }
      const gpuScales = new Float32Array(words.buffer, 4 * inputsI8ScalesFirst(groups, 1), groups);
      expect(Array.from(gpuLevels)).toEqual(Array.from(twin.levels));
      expect(Array.from(gpuScales)).toEqual(Array.from(twin.scales));
      nearTies.forEach(([x, m, level], g) => {
        expect(twin.levels[g * INPUT_GROUP + 2], `near-tie ${g}`).toBe(level);
        expect(Math.round((127 * x) / m), `near-tie ${g}: float64 gives the other level`).not.toBe(level);
      });
    } finally {
      w.destroy();
    }
  });
});

/*
 * The rotation that rounds x̃ to int8 in its own pass (dispatchRotatedInputsI8) against the two
 * dispatches it replaces (dispatchHadamard, then dispatchInputsI8): x̃ and x̂ bit for bit, over one
 * column and many per workgroup (n = 13, 64 columns), kept < N (padding past keptLength), f16 input
 * at an odd half offset, a non-finite group (NaN scale), two-stage rotations whose last stage takes
 * one pass (it rounds the positions before its window from what the first stage stored: n = 1100,
 * windows [0, 1024) and [76, 1100), 76 = 6·12 + 4, so group 6 straddles the window's start; n = 3000,
 * windows of 2560 from 440 = 36·12 + 8), and rotations whose last stage takes more than one pass,
 * which fall back to the two dispatches. Operands are built by hand: only their shape matters.
 */
describe.skipIf(noGpu !== undefined)('x̃ rounded to int8 in the rotation pass (dispatchRotatedInputsI8)', () => {
  const suite = contextOnTestDevice();

  const operand = (rows: number, seed: number, keptLength = rotationLength(rows)): InputsI8Operand => ({ rows, length: rotationLength(rows), keptLength, blocksPerColumn: Math.ceil(keptLength / 3), rotate: true, seed });
  it.each([
    ['n = 300, 3 columns', operand(300, 5), 3, 'f32', false],
    ['n = 13, 64 columns (many per workgroup)', operand(13, 6), 64, 'f32', false],
    ['n = 250 of N = 256, keptLength 241', operand(250, 7, 241), 4, 'f32', false],
    ['n = 1000, f16 input at an odd half offset', operand(1000, 8), 5, 'f16', false],
    ['n = 300, a NaN in column 1', operand(300, 9), 3, 'f32', true],
    ['n = 1100 (two stages of one pass)', operand(1100, 10), 2, 'f32', false],
    ['n = 3000 (two stages of one pass), f16 input at an odd half offset', operand(3000, 12), 3, 'f16', false],
    ['n = 1100 (two stages), a NaN in column 1', operand(1100, 13), 2, 'f32', true],
    ['n = 20000 (several passes: not fused)', operand(20000, 11), 1, 'f32', false],
    // The rotation's loads batched (an experiment the benchmark times): the same x̃ and x̂.
    ['n = 1000, f16 input at an odd half offset, loads batched', operand(1000, 8), 5, 'f16', false],
    ['n = 3000 (two stages of one pass), a NaN in column 1, loads batched', operand(3000, 14), 3, 'f32', true],
    ['n = 14336 (two stages of several passes: not fused), loads batched', operand(14336, 15), 1, 'f32', false],
  ] as [string, InputsI8Operand, number, 'f32' | 'f16', boolean][])('equals the rotation, then dispatchInputsI8, bit for bit (%s)', async (name, w, rhs, format, withNaN) => {
    const { device } = suite.context;
    const batchedLoads = name.includes('loads batched');
    const words = await expectRotatedRoundingEqual(
      device,
      { w, rhs, format, withNaN, fused: !name.includes('not fused') },
      (scratch, encoder, x) => dispatchRotatedInputsI8(device, encoder, scratch, { ...x, w, batchedLoads }),
      (scratch, encoder, xRotated) => dispatchInputsI8(device, encoder, scratch, { w, xRotated, rhs }),
    );
    // Not vacuous: levels and scales were written (and the NaN column's scales are NaN).
    const groups = Math.ceil(w.blocksPerColumn / 4);
    const scales = new Float32Array(words.buffer, 4 * 4 * groups * rhs, groups * rhs);
    expect(scales.filter((v) => v > 0).length).toBeGreaterThan(0);
    expect(scales.some(Number.isNaN)).toBe(withNaN);
  });

  // One column of 8192 spreads over two passes by default (the twin's rotation too), so it is rounded
  // after the rotation; with spread: false its one pass rounds it (the scratch buffer's label tells
  // which). Same bits either way.
  it('spread: false rounds one column of n = 8192 in the rotation pass, spread: true after it, with the same bits', async () => {
    const { device } = suite.context;
    const w = operand(8192, 16);
    for (const spread of [false, true]) {
      let recorded: RecordedInputsI8 | undefined;
      await expectRotatedRoundingEqual(
        device,
        { w, rhs: 1, format: 'f32', withNaN: false, fused: false },
        (scratch, encoder, x) => (recorded = dispatchRotatedInputsI8(device, encoder, scratch, { ...x, w, spread })),
        (scratch, encoder, xRotated) => dispatchInputsI8(device, encoder, scratch, { w, xRotated, rhs: 1 }),
      );
      expect(recorded?.inputs.label.includes('rounded in the rotation'), `spread: ${spread}`).toBe(!spread);
    }
  });

  it('refuses what it cannot do, with the reason named', () => {
    const { device } = suite.context;
    const scratch = new GpuScratch(device);
    try {
      const encoder = device.createCommandEncoder();
      const x = scratch.buffer('x', 4 * 1100, STORAGE_USAGE);
      const out = scratch.buffer('out', 4 * 1100, STORAGE_USAGE);
      const inputs = scratch.buffer('inputs', 4096, STORAGE_USAGE);
      expect(() => dispatchRotatedInputsI8(device, encoder, scratch, { w: { ...operand(300, 1), rotate: false }, x, xRotated: out, rhs: 1 })).toThrow(/for rotated matrices/);
      expect(() => dispatchHadamard(device, encoder, scratch, { input: x, output: out, rows: 1100, cols: 1, seed: 1, workgroupElements: 256, int8Output: { buffer: inputs, kept: 1100, groups: 92 } })).toThrow(/int8Output needs a rotation whose last stage takes one pass.*n = 1100 takes 2 stage\(s\), the last of 2 passes/);
      expect(() => dispatchHadamard(device, encoder, scratch, { input: x, output: out, rows: 300, cols: 1, seed: 1, int8Output: { buffer: inputs, kept: 300, groups: 20 } })).toThrow(/kept must be in \[1, min\(N, 12·groups\)\]/);
      expect(() => dispatchHadamard(device, encoder, scratch, { input: x, output: out, rows: 300, cols: 1, seed: 1, int8Output: { buffer: out, kept: 300, groups: 25 } })).toThrow(/a buffer of its own/);
    } finally {
      scratch.destroy();
    }
  });
});

describe.skipIf(noGpu !== undefined)('int8-input GEMVs with any number of leader-table copies', () => {
  const suite = contextOnTestDevice();
  let universalQ: UniversalLatticeMatrix;
  let deterministicQ: DeterministicLatticeMatrix;
  let universalW: GpuUniversalQuantizedMatrix;
  let weights: UniversalGemvI8Weights;
  let deterministicW: GpuLatticeQuantizedMatrix;
  beforeAll(() => {
    universalQ = quantizeUniversal(gaussianMatrix(700, 37, 80), { scheme: 'd3-q6', seed: 4, nonce: 81 });
    deterministicQ = deterministic(gaussianMatrix(700, 37, 82), { scheme: 'd3-q6-deterministic', seed: 4 });
    universalW = uploadUniversalMatrix(suite.context.device, universalQ);
    weights = UniversalGemvI8Weights.create(suite.context.device, universalW);
    deterministicW = uploadLatticeMatrix(suite.context.device, deterministicQ);
  });
  afterAll(() => {
    weights?.destroy();
    universalW?.destroy();
    deterministicW?.destroy();
  });

  // Lanes read copy lane mod copies: a copy left unfilled, or filled with another entry, changes Y
  // for the lanes that read it; with every copy right Y does not depend on the count at all, nor on
  // the padding to 256 entries per copy (which moves every entry's word: e·copies + c with 256 or 216
  // entries per copy is the same word, but a fill that strides by the wrong count would not be).
  // One test per kernel and tile (each compiles up to 9 pipelines).
  it.each([
    { kernel: 'universal' as const, k: 1 },
    { kernel: 'universal' as const, k: 9 },
    { kernel: 'deterministic' as const, k: 1 },
    { kernel: 'deterministic' as const, k: 9 },
  ])('$kernel, k = $k: the same Y, bit for bit, for 1, 8, 16 and 32 copies, padded or not, as by default (16, not padded), and the twin', async ({ kernel, k }) => {
    const { device } = suite.context;
    const dotPath = dotPathFor(suite.context.features);
    const workgroupBytes = device.limits.maxComputeWorkgroupStorageSize;
    const rhsTile = k === 1 ? 1 : 8;
    const x = gaussianMatrix(700, k, 83 + k);
    const copyCounts = ([1, 8, 16, 32] as const).filter((copies) => 4 * 216 * copies + 4 * rhsTile * 256 + 32 + 64 <= workgroupBytes);
    expect(copyCounts, 'at least 1, 8 and 16 copies fit the test device').toEqual(expect.arrayContaining([1, 8, 16]));
    expect(universalGemvI8LeaderTable(6, rhsTile, workgroupBytes, { padLeaderTable: true }).entries, 'the test device holds 16 padded copies').toBe(256);
    const layouts = [{}, ...copyCounts.flatMap((leaderCopies) => [{ leaderCopies }, { leaderCopies, padLeaderTable: true }])];
    const ys: Matrix[] = [];
    for (const layout of layouts) {
      ys.push(kernel === 'universal' ? await universalGemvI8(device, weights, x, { dotPath, ...layout }) : await latticeGemvI8(device, deterministicW, x, { dotPath, ...layout }));
    }
    const first = ys[0] as Matrix;
    expect(compare(first, kernel === 'universal' ? universalQ : deterministicQ, x).twin, 'default copies against the twin').toBeLessThanOrEqual(1);
    ys.forEach((y, i) => expect(Array.from(y.data), JSON.stringify(layouts[i])).toEqual(Array.from(first.data)));
  });

  it('a count that does not fit, or is not a power of two, is refused', async () => {
    const { device } = suite.context;
    const dotPath = dotPathFor(suite.context.features);
    // 32 copies (27 648 bytes) beside the 8 KB of partial sums of a tile of 8 right-hand sides exceed 32 KB.
    if (device.limits.maxComputeWorkgroupStorageSize < 27648 + 8192 + 32 + 64) {
      await expect(latticeGemvI8(device, deterministicW, gaussianMatrix(700, 9, 90), { dotPath, leaderCopies: 32 })).rejects.toThrow(/leaderCopies: 32 copies of 216 leaders need 27648 bytes/);
    }
    await expect(universalGemvI8(device, weights, gaussianMatrix(700, 1, 91), { dotPath, leaderCopies: 3 as never })).rejects.toThrow(/leaderCopies must be 32, 16, 8, 4, 2 or 1, got 3/);
  });
});

describe.skipIf(noGpu !== undefined)('the deterministic int8-input GEMV\'s scale multiples from the cubic or from a table', () => {
  const suite = contextOnTestDevice();

  // Both give each block the same i32 6k (the table is filled from the cubic), so Y is the same bit
  // for bit; a wrong cubic or a table filled wrongly changes the blocks of those indices.
  it.each([
    { what: 'd3-q6-deterministic (2-bit indices)', scheme: 'd3-q6-deterministic' as const },
    { what: 'two multiples (1-bit indices)', scheme: twoScales(32) },
    { what: 'two multiples far apart (16 and 1000)', scheme: twoScales(1000) },
  ])('give the same Y, bit for bit, and the twin: $what', async ({ scheme }) => {
    const { device } = suite.context;
    const dotPath = dotPathFor(suite.context.features);
    const q = scheme === 'd3-q6-deterministic'
      ? deterministic(gaussianMatrix(700, 21, 52), { scheme, seed: 3 })
      : deterministic(graded(300, 21, 51), { scheme, seed: 3, rotate: false });
    const gpuW = uploadLatticeMatrix(device, q);
    try {
      for (const k of [1, 9]) {
        const x = gaussianMatrix(q.rows, k, 60 + k);
        const cubic = await latticeGemvI8(device, gpuW, x, { dotPath });
        const table = await latticeGemvI8(device, gpuW, x, { dotPath, scaleMultiples: 'table' });
        expect(compare(cubic, q, x).twin, `k = ${k}: worst |gpu − twin| / tolerance`).toBeLessThanOrEqual(1);
        expect(Array.from(table.data), `k = ${k}`).toEqual(Array.from(cubic.data));
      }
      await expect(latticeGemvI8(device, gpuW, gaussianMatrix(q.rows, 1, 70), { dotPath, scaleMultiples: 'lookup' as never })).rejects.toThrow(/scaleMultiples must be 'cubic' or 'table', got "lookup"/);
    } finally {
      gpuW.destroy();
    }
  });
});

describe.skipIf(noGpu !== undefined)('the workgroup memory the int8-input GEMVs count is what WebGPU counts', () => {
  // 32 copies of 216 leaders (27 648 bytes), 1 KB of partial sums, the vote and the width (16 bytes
  // each as WebGPU counts a u32), and the universal kernel's own 64 bytes (its root steps; the
  // deterministic kernel has none; the group-scaled prototype's 16 multiples take 64): 28 768 and 28 704. On a device whose limit is exactly that, Dawn
  // accepts the pipeline (an undercount would fail its validation); a byte less, the host refuses 32
  // copies before Dawn would. (The subgroup variant, which runs where the device has subgroups, uses
  // the vote and width; the plain one never reads them and Tint drops them.)
  const lanes = 27648 + 1024 + 16 + 16;
  it('32 copies compile and match the twins at exactly their bytes, and are refused a byte below', async (context) => {
    const probe = await testDevice();
    const adapterLimit = probe.device.limits.maxComputeWorkgroupStorageSize;
    probe.device.destroy();
    skipUnless(context, adapterLimit >= lanes + 64, `room for 32 copies (${lanes + 64} bytes of workgroup memory; it grants ${adapterLimit})`);
    const universalQ = quantizeUniversal(gaussianMatrix(300, 19, 92), { scheme: 'd3-q6', seed: 6, nonce: 93 });
    const deterministicQ = deterministic(gaussianMatrix(300, 19, 94), { scheme: 'd3-q6-deterministic', seed: 6 });
    const groupScaled = encodeD3GroupScaled(gaussianMatrix(300, 19, 96));
    const x = gaussianMatrix(300, 1, 95);
    const kernels = [
      { q: universalQ, exact: lanes + 64, run: (device: GPUDevice, dotPath: DotPath): Promise<Matrix> => {
        const universalW = uploadUniversalMatrix(device, universalQ);
        const weights = UniversalGemvI8Weights.create(device, universalW);
        return universalGemvI8(device, weights, x, { dotPath, leaderCopies: 32 }).finally(() => {
          weights.destroy();
          universalW.destroy();
        });
      } },
      { q: deterministicQ, exact: lanes, run: (device: GPUDevice, dotPath: DotPath): Promise<Matrix> => {
        const deterministicW = uploadLatticeMatrix(device, deterministicQ);
        return latticeGemvI8(device, deterministicW, x, { dotPath, leaderCopies: 32 }).finally(() => deterministicW.destroy());
      } },
      // its former table of multiples (scaleMultiples: 'table'): 4 i32, 16 bytes
      { q: deterministicQ, exact: lanes + 16, run: (device: GPUDevice, dotPath: DotPath): Promise<Matrix> => {
        const deterministicW = uploadLatticeMatrix(device, deterministicQ);
        return latticeGemvI8(device, deterministicW, x, { dotPath, leaderCopies: 32, scaleMultiples: 'table' }).finally(() => deterministicW.destroy());
      } },
      // the group-scaled prototype's table of 16 multiples: 64 bytes
      { q: groupScaled, exact: lanes + 64, run: (device: GPUDevice, dotPath: DotPath): Promise<Matrix> => {
        const groupScaledW = GpuD3GroupScaledMatrix.upload(device, groupScaled, 'test group-scaled W');
        return d3GroupScaledGemvI8(device, groupScaledW, x, { dotPath, leaderCopies: 32 }).finally(() => groupScaledW.destroy());
      } },
    ];
    for (const { q, exact, run } of kernels) {
      for (const limit of [exact, exact - 1]) {
        const context = await testDevice({ workgroupStorageLimit: limit });
        const { device } = context;
        try {
          expect(device.limits.maxComputeWorkgroupStorageSize).toBe(limit);
          const what = `${'groupIndices' in q ? 'group-scaled prototype' : `${q.scheme.lattice} ${q.mode}`}, limit ${limit}`;
          if (limit === exact) {
            const y = await run(device, dotPathFor(context.features)); // a validation error (the pipeline over the limit) rejects
            expect(compare(y, q, x).twin, `${what}: worst |gpu − twin| / tolerance`).toBeLessThanOrEqual(1);
          } else {
            await expect(run(device, dotPathFor(context.features))).rejects.toThrow(/leaderCopies: 32 copies of 216 leaders need 27648 bytes of workgroup memory; 27647 are left/);
          }
        } finally {
          device.destroy();
        }
      }
    }
  });

  // The default 16 copies padded to 256 entries (16 KB, padLeaderTable): a device whose limit is
  // exactly that beside the lanes and the kernel's own bytes takes the padded table (an undercount
  // would fail Dawn's validation), and a byte less keeps 16 copies of the 216 leaders; both match the twins.
  it('16 copies padded to 256 entries compile at exactly their bytes, and a byte below keep the leaders alone', async () => {
    const padded = lanes + 16384 - 27648; // 1056 + 16 384
    const universalQ = quantizeUniversal(gaussianMatrix(300, 19, 97), { scheme: 'd3-q6', seed: 6, nonce: 98 });
    const deterministicQ = deterministic(gaussianMatrix(300, 19, 99), { scheme: 'd3-q6-deterministic', seed: 6 });
    const x = gaussianMatrix(300, 1, 100);
    const kernels = [
      { q: universalQ, exact: padded + 64, table: (limit: number) => universalGemvI8LeaderTable(6, 1, limit, { padLeaderTable: true, leaderCopies: 16 }), run: (device: GPUDevice, dotPath: DotPath): Promise<Matrix> => {
        const universalW = uploadUniversalMatrix(device, universalQ);
        const weights = UniversalGemvI8Weights.create(device, universalW);
        return universalGemvI8(device, weights, x, { dotPath, padLeaderTable: true, leaderCopies: 16 }).finally(() => {
          weights.destroy();
          universalW.destroy();
        });
      } },
      { q: deterministicQ, exact: padded, table: (limit: number) => latticeGemvI8LeaderTable(6, 1, limit, { padLeaderTable: true }), run: (device: GPUDevice, dotPath: DotPath): Promise<Matrix> => {
        const deterministicW = uploadLatticeMatrix(device, deterministicQ);
        return latticeGemvI8(device, deterministicW, x, { dotPath, padLeaderTable: true }).finally(() => deterministicW.destroy());
      } },
    ];
    for (const { q, exact, table, run } of kernels) {
      for (const [limit, entries] of [[exact, 256], [exact - 1, 216]] as const) {
        expect(table(limit), `${q.mode}, limit ${limit}`).toEqual({ copies: 16, entries });
        const context = await testDevice({ workgroupStorageLimit: limit });
        const { device } = context;
        try {
          const y = await run(device, dotPathFor(context.features));
          expect(compare(y, q, x).twin, `${q.mode}, limit ${limit}: worst |gpu − twin| / tolerance`).toBeLessThanOrEqual(1);
        } finally {
          device.destroy();
        }
      }
    }
  });
});

describe.skipIf(noGpu !== undefined)('int8-input GEMVs (and the group-scaled prototype\'s) on a device with the minimum 16 KB of workgroup memory', () => {
  it('compile and match their twins for one and several right-hand sides', async () => {
    const small = await testDevice({ workgroupStorageLimit: 16384 });
    const { device } = small;
    try {
      const dotPath = dotPathFor(small.features);
      const universalQ = quantizeUniversal(gaussianMatrix(130, 11, 70), { scheme: 'd3-q6', seed: 5, nonce: 71 });
      const deterministicQ = deterministic(gaussianMatrix(130, 11, 72), { scheme: 'd3-q6-deterministic', seed: 5 });
      const universalW = uploadUniversalMatrix(device, universalQ);
      const weights = UniversalGemvI8Weights.create(device, universalW);
      const deterministicW = uploadLatticeMatrix(device, deterministicQ);
      const groupScaled = encodeD3GroupScaled(gaussianMatrix(130, 11, 77));
      const groupScaledW = GpuD3GroupScaledMatrix.upload(device, groupScaled, 'test group-scaled W');
      try {
        for (const k of [1, 3]) {
          const x = gaussianMatrix(130, k, 73 + k);
          const universalY = await universalGemvI8(device, weights, x, { dotPath });
          const deterministicY = await latticeGemvI8(device, deterministicW, x, { dotPath });
          const groupScaledY = await d3GroupScaledGemvI8(device, groupScaledW, x, { dotPath });
          for (const [q, y] of [[universalQ, universalY], [deterministicQ, deterministicY], [groupScaled, groupScaledY]] as const) {
            const { twin, exact } = compare(y, q, x);
            expect(twin, `k = ${k}: worst |gpu − twin| / tolerance`).toBeLessThanOrEqual(1);
            expect(exact, `k = ${k}: worst |gpu − exact| / int8 bound`).toBeLessThanOrEqual(1);
          }
        }
      } finally {
        weights.destroy();
        universalW.destroy();
        deterministicW.destroy();
        groupScaledW.destroy();
      }
    } finally {
      device.destroy();
    }
  });
});

describe.skipIf(noGpu !== undefined)('the int8-input universal GEMV\'s group hash = the CPU dither (blockDither), at any block index', () => {
  // The kernel hashes block first + t (first a multiple of 4, t < 4) as mix32_rest(group_hash_base(key,
  // first) ^ t), doing mix32's first xorshift once per group. That holds because t only touches bits
  // 0–1, so bits 16 and up of key ^ (first + t) are those of key ^ first. The GEMV tests reach block
  // indices far below 2^16; this probe runs the generated header on keys and group starts across
  // bit 16 and up to 2^32 − 4, and compares every dither coordinate with the CPU twin.
  const PROBE = /* wgsl */ `
const GROUP_BLOCKS: u32 = 4u;  // as shaders/gemv_i8_common.wgsl
fn i8_lane(word: u32, lane: u32) -> i32 {
  return extractBits(bitcast<i32>(word), 8u * lane, 8u);
}
@group(0) @binding(0) var<storage, read> cases: array<vec2<u32>>;  // (dither key, first block of a group)
@group(0) @binding(1) var<storage, read_write> dither: array<i32>;  // Z of blocks first … first + 3, 3 each
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  if (id.x >= arrayLength(&cases)) {
    return;
  }
  let base = group_hash_base(cases[id.x].x, cases[id.x].y);
  for (var t = 0u; t < GROUP_BLOCKS; t = t + 1u) {
    let h = block_hash_in_group(base, t);
    let lanes = dither_lanes(h);
    for (var v = 0u; v < 3u; v = v + 1u) {
      // Z_v from whichever part holds it: its packed lane, or dither_rest with x̂ = e_v.
      dither[(id.x * GROUP_BLOCKS + t) * 3u + v] = i8_lane(lanes, v) + dither_rest(h, 1u << (8u * v));
    }
  }
}
`;
  const suite = contextOnTestDevice();

  it('matches blockDither on every block of groups starting at 0, 2^16 ± 4, 2^31 and 2^32 − 4 and at random', async () => {
    const { device } = suite.context;
    const codec = universalCodec('D3', 6, 1);
    const rng = new Rng(96);
    const u32 = (): number => rng.nextInt(2 ** 16) * 2 ** 16 + rng.nextInt(2 ** 16);
    const keys = [0, 0xffffffff, 0x0000ffff, 0xffff0000, ...Array.from({ length: 12 }, u32)];
    const firsts = [0, 4, 65532, 65536, 65540, 131068, 0x7ffffffc, 0x80000000, 0xfffffffc, ...Array.from({ length: 8 }, () => (u32() & ~3) >>> 0)];
    const cases = keys.flatMap((key) => firsts.map((first) => [key, first >>> 0] as const));
    const source = `${counterHashSource}\n${universalGemvI8Header(codec.spec, 6)}\n${PROBE}`;
    const outputBytes = 4 * cases.length * 4 * 3;
    const gpu = new Int32Array(await runWgslProbe(device, 'group hash probe', source, Uint32Array.from(cases.flat()), outputBytes, cases.length));
    const cpu = new Int32Array(3);
    let compared = 0;
    cases.forEach(([key, first], c) => {
      for (let t = 0; t < 4; t++) {
        blockDither(codec, { first: key, second: key }, first + t, cpu); // D3: one hash word
        const at = (c * 4 + t) * 3;
        expect(Array.from(gpu.subarray(at, at + 3)), `key ${key.toString(16)}, block ${first + t}`).toEqual(Array.from(cpu));
        compared++;
      }
    });
    expect(compared).toBe(keys.length * firsts.length * 4);
  });
});
