import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import { createBuffer, createBufferWithData, readBufferExclusive, STORAGE_USAGE } from '../../src/gpu/buffers.js';
import { GpuEngine } from '../../src/gpu/engine.js';
import { gaussianMatrix, toFloat32Matrix, type Matrix } from '../../src/index.js';
import { dequantize } from '../../src/product/dequantize.js';
import { matmulAT } from '../../src/product/matmulAT.js';
import { matvecAT } from '../../src/product/matvec.js';
import { universalPairProduct } from '../../src/product/universalPairProduct.js';
import { MAX_COLUMN_NORM, MAX_NORM_PRODUCT, MIN_COLUMN_NORM } from '../../src/quantize/prepareColumn.js';
import { quantize } from '../../src/quantize/quantize.js';
import type { LatticeQuantizedMatrix } from '../../src/quantize/quantizedMatrix.js';
import type { DeterministicLatticeScheme, SchemeName } from '../../src/quantize/schemes.js';
import { engineOnTestDevice, f32Bits, gpuUnavailableReason } from '../gpu/gpuTestDevice.js';

/*
 * Extreme values (issue 8, item 3). The documented range: every column norm is 0 or in
 * [MIN_COLUMN_NORM, MAX_COLUMN_NORM] = [2^-100, 2^100], and a product is computed when the largest
 * column norms of its operands multiply to at most MAX_NORM_PRODUCT = 2^126; everything else is
 * refused with a LatticeMatmulError.
 *
 * Inside the range the answer is checked against an exact reference, not a tolerance: multiplying a
 * matrix by 2^k changes no code (the quantizer normalizes each column), and every decoded value and
 * every product scales by exactly 2^k (power-of-two scaling is exact in floating point while the
 * numbers stay normal). So `dequantize(quantize(2^k·A)) = 2^k · dequantize(quantize(A))` bit for bit,
 * and a product at scales 2^k, 2^m equals 2^(k+m) times the product at scale 1, up to the f32
 * subnormal spacing 2^-149 when the result itself falls below f32's normal range. A case is
 *   refused clearly      when the library throws a LatticeMatmulError,
 *   answered correctly   when it returns the scaled reference,
 *   silent wrong         when it returns anything else (Infinity, NaN, zeros, a different value).
 * The counts go into docs/RELIABILITY.md.
 */

const N = 96; // 96 = 3·32: no padding; not a multiple of the GEMV workgroup
const COLS = 3;
const SEED = 11;
const NONCE_A = 101n;
const NONCE_B = 202n;

/** Scales 2^k of the Gaussian columns (norm ≈ 2^k·√96 ≈ 2^(k+3.3)). */
const EXPONENTS = [-140, -126, -104, -103, -100, -90, -60, -30, 0, 30, 60, 90, 96, 97, 100, 127];
const UNIVERSAL: SchemeName[] = ['e8-q16', 'd3-q6', 'e8-2bit', 'e8-5bit'];
const OTHERS: SchemeName[] = ['d3-q6-deterministic', 'e8-q16-deterministic', 'int4-g32', 'int3-absmax', 'nvfp4'];

type Outcome = 'refused' | 'correct' | 'wrong';
interface Tally {
  tried: number;
  refused: number;
  correct: number;
  wrong: number;
  failures: string[];
}
const tallies = new Map<string, Tally>();
/**
 * Every silent wrong answer recorded, in order: a test that records without asserting on each case
 * ends with `expectNoWrongSince(mark)`, so that it fails by itself (run alone with -t, the totals
 * below do not run), not only through the totals.
 */
const wrongAnswers: string[] = [];

function expectNoWrongSince(mark: number): void {
  expect(wrongAnswers.slice(mark, mark + 10)).toEqual([]);
}

function record(family: string, outcome: Outcome, detail: string): void {
  let t = tallies.get(family);
  if (!t) {
    t = { tried: 0, refused: 0, correct: 0, wrong: 0, failures: [] };
    tallies.set(family, t);
  }
  t.tried++;
  t[outcome]++;
  if (outcome === 'wrong' && t.failures.length < 10) t.failures.push(detail);
  if (outcome === 'wrong') wrongAnswers.push(detail);
}

/** Runs `attempt`; a LatticeMatmulError is a clear refusal, any other error a failure of the test. */
function attempt<T>(work: () => T): { value: T } | { refused: string } {
  try {
    return { value: work() };
  } catch (error) {
    if (error instanceof LatticeMatmulError) return { refused: error.message };
    throw error;
  }
}

async function attemptAsync<T>(work: () => Promise<T>): Promise<{ value: T } | { refused: string }> {
  try {
    return { value: await work() };
  } catch (error) {
    if (error instanceof LatticeMatmulError) return { refused: error.message };
    throw error;
  }
}

function scaled(m: Matrix, exponent: number): Matrix {
  return { rows: m.rows, cols: m.cols, data: Float32Array.from(m.data, (v) => v * 2 ** exponent) };
}

function maxNorm(m: Matrix): number {
  let largest = 0;
  for (let j = 0; j < m.cols; j++) {
    let s = 0;
    for (let i = 0; i < m.rows; i++) s += (m.data[j * m.rows + i] as number) ** 2;
    largest = Math.max(largest, Math.sqrt(s));
  }
  return largest;
}

/** Inside the documented range: every column norm 0 or in [2^-100, 2^100]. */
function inRange(m: Matrix): boolean {
  for (let j = 0; j < m.cols; j++) {
    let s = 0;
    for (let i = 0; i < m.rows; i++) s += (m.data[j * m.rows + i] as number) ** 2;
    const norm = Math.sqrt(s);
    if (norm !== 0 && (norm < MIN_COLUMN_NORM || norm > MAX_COLUMN_NORM)) return false;
  }
  return true;
}

/** |got − 2^e·reference| within the f32 subnormal spacing (2^-149) plus one ulp of the scaled value, for every entry. */
function equalsScaled(got: Float32Array, reference: Float32Array, exponent: number): boolean {
  if (got.length !== reference.length) return false;
  for (let i = 0; i < got.length; i++) {
    const g = got[i] as number;
    const want = Math.fround((reference[i] as number) * 2 ** exponent);
    if (!Number.isFinite(g)) return false;
    if (Math.abs(g - want) > 2 ** -149 + Math.abs(want) * 2 ** -23) return false;
  }
  return true;
}

const base = gaussianMatrix(N, COLS, 5);
const baseB = gaussianMatrix(N, COLS, 6);

/** Hand-made columns at the edges of f32 and of the range (issue 8's examples). */
function specialInputs(): { name: string; a: Matrix; b: Matrix; expectRefusal: boolean }[] {
  const column = (values: Record<number, number>): Matrix => {
    const data = new Float32Array(N);
    for (const [i, v] of Object.entries(values)) data[Number(i)] = v;
    return { rows: N, cols: 1, data };
  };
  const f32Max = 3.4028234663852886e38;
  return [
    { name: 'one entry = f32 max', a: column({ 0: f32Max }), b: column({ 0: 1 }), expectRefusal: true },
    { name: 'entries near 1e37', a: column({ 0: 1e37, 1: -1e37, 5: 9e36 }), b: column({ 1: 1 }), expectRefusal: true },
    { name: 'subnormal entries only', a: column({ 0: 1e-40, 3: -1e-42 }), b: column({ 1: 1 }), expectRefusal: true },
    { name: '(1e14, 0) × (0, 1e28): norm product past 2^126', a: column({ 0: 1e14 }), b: column({ 1: 1e28 }), expectRefusal: true },
    { name: 'norms 2^62 × 2^62 (product 2^124)', a: column({ 7: 2 ** 62 }), b: column({ 7: 2 ** 62 }), expectRefusal: false },
    { name: 'norms 2^-100 × 2^100', a: column({ 2: 2 ** -100 }), b: column({ 2: 2 ** 100 }), expectRefusal: false },
    { name: 'zero column × huge column', a: column({}), b: column({ 4: 2 ** 100 }), expectRefusal: false },
    { name: 'one huge entry among tiny ones', a: column({ 0: 2 ** 90, 1: 2 ** -60, 2: -(2 ** -60) }), b: column({ 0: 2 ** 30, 3: 1 }), expectRefusal: false },
  ];
}

describe('extreme values on the CPU', () => {
  for (const scheme of [...UNIVERSAL, ...OTHERS]) {
    const isUniversal = (UNIVERSAL as string[]).includes(scheme);
    const options = (nonce: bigint) => (isUniversal ? { scheme, seed: SEED, nonce } : { scheme, seed: SEED });

    it(`${scheme}: power-of-two scalings 2^-140 … 2^127 are exact or refused`, () => {
      const mark = wrongAnswers.length;
      const q0 = quantize(base, options(NONCE_A));
      const qb0 = quantize(baseB, options(NONCE_B));
      const d0 = dequantize(q0).data;
      const p0 = matmulAT(q0, qb0).data;
      const x0 = matvecAT(q0, { rows: N, cols: 1, data: baseB.data.subarray(0, N) }).data;
      for (const k of EXPONENTS) {
        const a = scaled(base, k);
        const quantized = attempt(() => quantize(a, options(NONCE_A)));
        const family = 'quantize + dequantize at 2^k';
        if ('refused' in quantized) {
          // A refusal is right outside the range; inside it, quantize must work (fp16-scale schemes excepted, see below).
          const allowed = !inRange(a) || scheme === 'int4-g32';
          record(family, allowed ? 'refused' : 'wrong', `${scheme} 2^${k}: refused inside the range: ${quantized.refused}`);
          continue;
        }
        // What quantize accepted, dequantize decodes: its refusal is as wrong as a different value.
        const decoded = attempt(() => dequantize(quantized.value).data);
        record(
          family,
          'value' in decoded && equalsScaled(decoded.value, d0, k) ? 'correct' : 'wrong',
          `${scheme} 2^${k}: dequantize ${'value' in decoded ? 'differs from 2^k × reference' : `refused what quantize accepted: ${decoded.refused}`}`,
        );
        for (const m of [-100, 0, 60]) {
          const qb = attempt(() => quantize(scaled(baseB, m), options(NONCE_B)));
          if ('refused' in qb) continue;
          const product = attempt(() => matmulAT(quantized.value, qb.value).data);
          const limit = maxNorm(a) * maxNorm(scaled(baseB, m));
          if ('refused' in product) {
            // Refused products must be ones whose norms leave the documented product range (with
            // the slack of the decoded norms, at most a factor 2 above the input norms).
            record('matmulAT at 2^k × 2^m', limit > MAX_NORM_PRODUCT / 4 ? 'refused' : 'wrong', `${scheme} 2^${k}×2^${m}: refused a product in range`);
          } else {
            record('matmulAT at 2^k × 2^m', equalsScaled(product.value, p0, k + m) ? 'correct' : 'wrong', `${scheme} 2^${k}×2^${m}: product differs from 2^(k+m) × reference`);
          }
        }
        const x = { rows: N, cols: 1, data: Float32Array.from(baseB.data.subarray(0, N), (v) => v * 2 ** -k) };
        const mv = attempt(() => matvecAT(quantized.value, x).data);
        record('matvecAT at 2^k × 2^-k', 'value' in mv && equalsScaled(mv.value, x0, 0) ? 'correct' : 'value' in mv ? 'wrong' : 'refused', `${scheme} 2^${k}: matvec differs`);
      }
      expectNoWrongSince(mark);
    });

    it(`${scheme}: hand-made columns at the edges of f32`, () => {
      const mark = wrongAnswers.length;
      for (const { name, a, b, expectRefusal } of specialInputs()) {
        const family = 'hand-made edge columns';
        const qa = attempt(() => quantize(a, options(NONCE_A)));
        const qb = attempt(() => quantize(b, options(NONCE_B)));
        if ('refused' in qa || 'refused' in qb) {
          // fp16 group scales cannot represent some in-range columns (int4-g32 refuses them clearly).
          record(family, expectRefusal || scheme === 'int4-g32' ? 'refused' : 'wrong', `${scheme} ${name}: refused in range`);
          continue;
        }
        const product = attempt(() => matmulAT(qa.value, qb.value).data);
        const decodedA = attempt(() => dequantize(qa.value).data);
        if ('refused' in product) {
          record(family, expectRefusal ? 'refused' : 'wrong', `${scheme} ${name}: product refused in range`);
          continue;
        }
        const finite = product.value.every(Number.isFinite) && 'value' in decodedA && decodedA.value.every(Number.isFinite);
        // Accepted: the product must be finite and near the exact one (within the scheme's error at this size).
        const exact = matmulATExactF64(a, b);
        const scale = maxNorm(a) * maxNorm(b);
        const close = finite && Math.abs((product.value[0] as number) - exact) <= 0.9 * scale + 2 ** -149;
        record(family, !expectRefusal && close ? 'correct' : 'wrong', `${scheme} ${name}: ${finite ? 'accepted out of range or far from exact' : 'non-finite'} (${product.value[0]} vs ${exact})`);
      }
      expectNoWrongSince(mark);
    });
  }
});

function matmulATExactF64(a: Matrix, b: Matrix): number {
  let s = 0;
  for (let i = 0; i < a.rows; i++) s += (a.data[i] as number) * (b.data[i] as number);
  return s;
}

const noGpu = await gpuUnavailableReason();

describe.skipIf(noGpu !== undefined)('extreme values on the GPU (universal and deterministic)', () => {
  const suite = engineOnTestDevice();

  for (const scheme of ['e8-q16', 'd3-q6', 'd3-q6-deterministic', 'e8-q16-deterministic'] as SchemeName[]) {
    it(`${scheme}: GPU quantize, product and matvec at 2^k equal 2^k × the GPU result at scale 1, or are refused`, async () => {
      const mark = wrongAnswers.length;
      const universal = !scheme.endsWith('deterministic');
      const options = (nonce: bigint) => (universal ? { scheme, seed: SEED, nonce } : { scheme, seed: SEED });
      const qa0 = await suite.engine.quantize(base, options(NONCE_A));
      const qb0 = await suite.engine.quantize(baseB, options(NONCE_B));
      const p0 = (await suite.engine.matmulAT(qa0, qb0)).data;
      const x = baseB.data.slice(0, N);
      const v0 = (await suite.engine.matvec(qa0, x)).data;
      // The pair product (universal-i8) drops a term that matmulAT keeps: its CPU twin is universalPairProduct.
      const cpuProduct = suite.engine.productKernel(qa0, qb0) === 'universal-i8' ? universalPairProduct : matmulAT;
      const cpuP0 = cpuProduct(quantize(base, options(NONCE_A)), quantize(baseB, options(NONCE_B))).data;
      // The GPU sums in f32 in another order: equal to the CPU product within 1e-5 of the scale.
      const scale = maxNorm(base) * maxNorm(baseB);
      for (let i = 0; i < p0.length; i++) expect(Math.abs((p0[i] as number) - (cpuP0[i] as number))).toBeLessThan(1e-5 * scale);
      for (const k of EXPONENTS) {
        const a = scaled(base, k);
        const qa = await attemptAsync(() => suite.engine.quantize(a, options(NONCE_A)));
        if ('refused' in qa) {
          record('GPU quantize at 2^k', inRange(a) ? 'wrong' : 'refused', `${scheme} 2^${k}: GPU refused in range: ${qa.refused}`);
          continue;
        }
        record('GPU quantize at 2^k', inRange(a) ? 'correct' : 'wrong', `${scheme} 2^${k}: GPU accepted out of range`);
        for (const m of [-100, 0, 30]) {
          const qb = await attemptAsync(() => suite.engine.quantize(scaled(baseB, m), options(NONCE_B)));
          if ('refused' in qb) continue;
          const product = await attemptAsync(() => suite.engine.matmulAT(qa.value, qb.value));
          const limit = maxNorm(a) * maxNorm(scaled(baseB, m));
          if ('refused' in product) record('GPU matmulAT at 2^k × 2^m', limit > MAX_NORM_PRODUCT / 4 ? 'refused' : 'wrong', `${scheme} 2^${k}×2^${m}: GPU refused in range`);
          else record('GPU matmulAT at 2^k × 2^m', equalsScaled(product.value.data, p0, k + m) ? 'correct' : 'wrong', `${scheme} 2^${k}×2^${m}: GPU product differs`);
          qb.value.destroy();
        }
        const xs = Float32Array.from(x, (v) => v * 2 ** -k);
        const mv = await attemptAsync(() => suite.engine.matvec(qa.value, xs));
        record('GPU matvec at 2^k × 2^-k', 'value' in mv && equalsScaled(mv.value.data, v0, 0) ? 'correct' : 'value' in mv ? 'wrong' : 'refused', `${scheme} 2^${k}: GPU matvec differs`);
        qa.value.destroy();
      }
      qa0.destroy();
      qb0.destroy();
      expectNoWrongSince(mark);
    });

    it(`${scheme}: GPU matvec of a tiny x (f32 subnormals) equals the CPU's matvecAT within 1e-5·‖a‖‖x‖`, async () => {
      const options = scheme.endsWith('deterministic') ? { scheme, seed: SEED } : { scheme, seed: SEED, nonce: NONCE_A };
      const a = scaled(base, 90); // results stay normal f32 while x is subnormal
      const qa = await suite.engine.quantize(a, options);
      const cpu = quantize(a, options);
      const y = createBuffer(suite.context.device, 'tiny x: y', 4 * COLS, STORAGE_USAGE);
      try {
        for (const k of [-60, -120, -142, -146]) {
          const xs = Float32Array.from(baseB.data.subarray(0, N), (v) => v * 2 ** k);
          const want = matvecAT(cpu, { rows: N, cols: 1, data: xs }).data;
          const tolerance = 1e-5 * maxNorm(a) * Math.sqrt(xs.reduce((sum, v) => sum + v * v, 0));
          const expectNear = (got: Float32Array, what: string) => {
            for (let j = 0; j < COLS; j++) expect(Math.abs((got[j] as number) - (want[j] as number)), `${what} 2^${k}, column ${j}`).toBeLessThanOrEqual(tolerance);
          };
          // Before: x went to the GPU as subnormals and came back 8–100 tolerances off (0 where a GPU flushes them).
          expectNear((await suite.engine.matvec(qa, xs)).data, 'matvec');
          // matvecInto cannot scale y back on the host: it takes x down to 2^-80 and refuses below.
          if (k > -80) {
            await suite.engine.matvecInto(qa, xs, y);
            expectNear(new Float32Array(await readBufferExclusive(suite.context.device, y, 4 * COLS)), 'matvecInto');
          } else {
            await expect(suite.engine.matvecInto(qa, xs, y)).rejects.toThrow(/^matvecInto: the largest \|entry\| of x's column 0 is below 2\^-\d+, under 2\^-80, .*use matvec/);
          }
        }
      } finally {
        qa.destroy();
        y.destroy();
      }
    });
  }
});

describe.skipIf(noGpu !== undefined)('deterministic scales at the ends of their range, GPU and CPU', () => {
  const suite = engineOnTestDevice();

  const ladder = (beta: number): DeterministicLatticeScheme => ({ kind: 'lattice', mode: 'deterministic', lattice: 'D3', q: 6, overload: { kind: 'ladder', beta, ratio: 2, steps: 4 } });
  const betaSet = (beta: number): DeterministicLatticeScheme => ({ kind: 'lattice', mode: 'deterministic', lattice: 'E8', q: 16, overload: { kind: 'betaSet', betas: [beta, 4 * beta] } });
  const spike = new Float32Array(N * COLS);
  spike[5] = 1;
  spike[N + 40] = -3;
  const inputs: [string, Matrix][] = [['Gaussian', base], ['spikes', { rows: N, cols: COLS, data: spike }]];

  // Inside [2^-14, 64] the codes are the CPU's and every product, GEMV and decode is finite and the
  // CPU's (at 2^-14 most blocks clip, at 64 most decode to 0: useless schemes, but the same answer).
  for (const beta of [2 ** -14, 1, 64]) {
    for (const deterministicProduct of ['codes', 'decode'] as const) {
      it(`β₀ = ${beta}, ${deterministicProduct} product: GPU codes equal the CPU's; products, matvec and dequantize are finite and equal the CPU's`, async () => {
        const gpu = GpuEngine.create(suite.context, { deterministicProduct });
        try {
          for (const scheme of [ladder(beta), betaSet(beta)]) {
            for (const [name, a] of inputs) {
              for (const rotate of [true, false]) {
                const what = `${scheme.lattice} β₀ = ${beta} ${name} rotate ${rotate}`;
                const cpuA = quantize(a, { scheme, seed: SEED, rotate });
                const cpuB = quantize(baseB, { scheme, seed: SEED, rotate });
                const gpuA = await gpu.quantize(a, { scheme, seed: SEED, rotate });
                const gpuB = await gpu.quantize(baseB, { scheme, seed: SEED, rotate });
                try {
                  const read = await gpuA.read();
                  expect(Array.from(read.codes), what).toEqual(Array.from(cpuA.codes));
                  expect(Array.from(read.scaleIndices), what).toEqual(Array.from(cpuA.scaleIndices));
                  const scale = maxNorm(a) * maxNorm(baseB);
                  const x = baseB.data.slice(0, N);
                  const pairs: [string, Float32Array, Float32Array, number][] = [
                    ['matmulAT', (await gpu.matmulAT(gpuA, gpuB)).data, matmulAT(cpuA, cpuB).data, scale],
                    ['matvec', (await gpu.matvec(gpuA, x)).data, matvecAT(cpuA, { rows: N, cols: 1, data: x }).data, scale],
                    ['dequantize', (await gpu.dequantize(gpuA)).data, dequantize(cpuA).data, maxNorm(a)],
                  ];
                  for (const [call, got, want, size] of pairs) {
                    const worst = got.reduce((m, v, i) => (Number.isFinite(v) ? Math.max(m, Math.abs(v - (want[i] as number))) : Infinity), 0);
                    record('deterministic β₀ at the ends of its range (GPU = CPU)', worst <= 1e-5 * size ? 'correct' : 'wrong', `${what} ${call}: GPU differs from the CPU by ${worst}`);
                    expect(worst, `${what} ${call}`).toBeLessThanOrEqual(1e-5 * size);
                  }
                } finally {
                  gpuA.destroy();
                  gpuB.destroy();
                }
              }
            }
          }
        } finally {
          gpu.destroy();
        }
      });
    }
  }

  // Beyond it both refuse the scheme. Before: β₀ = 1e24 quantized on both, and the GPU's code-domain
  // products came back NaN where the CPU's are 0; β₀ = 1e-38 quantized on the CPU (every block
  // clipped to 0) and was refused on the GPU as an internal uniform ("numerator must be finite").
  it.each([1e24, 65, 1e-38, 2 ** -15])('β₀ = %d is refused by quantize and GpuEngine.quantize alike', async (beta) => {
    for (const scheme of [ladder(beta), betaSet(beta)]) {
      const message = /beta must be a number in \[2\^−14, 64\]/;
      expect(() => quantize(base, { scheme, seed: SEED })).toThrow(message);
      await expect(suite.engine.quantize(base, { scheme, seed: SEED })).rejects.toThrow(message);
      record('deterministic β₀ beyond its range', 'refused', '');
    }
  });
});

/**
 * Columns at the edges of f32 and of the range, for any n: one entry (first, last, 1e30, 2^99 among
 * 2^-120), entries whose squares overflow f32 (±1e20: ‖a‖² ≈ n·1e40), a constant column (zero once
 * centred) and one of constant 1.2e30/√n (a mean near the range's end), −0, 1e25 among f32
 * subnormals, a mean of 1e10 with a spread of 1024; and, refused, f32 subnormals only and 3e38.
 */
const EDGE_COLUMNS: [string, (n: number) => Float32Array][] = [
  ['1 at row 0', (n) => edgeColumn(n, (i) => (i === 0 ? 1 : 0))],
  ['−1 at the last row', (n) => edgeColumn(n, (i) => (i === n - 1 ? -1 : 0))],
  ['1e30 in the middle', (n) => edgeColumn(n, (i) => (i === n >> 1 ? 1e30 : 0))],
  ['±1e20 (‖a‖² beyond f32)', (n) => edgeColumn(n, (i) => (i % 2 ? -1e20 : 1e20))],
  ['constant 1e20', (n) => edgeColumn(n, () => 1e20)],
  ['constant 5', (n) => edgeColumn(n, () => 5)],
  ['constant 1.2e30/√n', (n) => edgeColumn(n, () => 1.2e30 / Math.sqrt(n))],
  ['−0', (n) => edgeColumn(n, () => -0)],
  ['1e25 among subnormals', (n) => edgeColumn(n, (i) => (i === 0 ? 1e25 : i % 3 === 0 ? 1e-40 : i % 3 === 1 ? 1e-38 : -1.4e-45))],
  ['1e10 ± 1024', (n) => edgeColumn(n, (i) => 1e10 + (i % 2 ? 1024 : -1024))],
  ['2^99 among 2^-120', (n) => edgeColumn(n, (i) => (i === 0 ? 2 ** 99 : 2 ** -120))],
  ['subnormals only', (n) => edgeColumn(n, (i) => (i % 2 ? 1e-40 : 1.4e-45))],
  ['3e38', (n) => edgeColumn(n, (i) => (i === 0 ? 3e38 : 0))],
];

function edgeColumn(n: number, entry: (i: number) => number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => entry(i));
}

/** The f32 bit patterns of a typed array, ±0 as one (WGSL does not promise the sign of zero). */
function bitsOf(values: ArrayLike<number> | null): string[] | null {
  return values === null ? null : Array.from(values, (v) => f32Bits(v + 0).toString(16));
}

describe.skipIf(noGpu !== undefined)('edge shapes × edge columns: GPU codes and products equal the CPU twins', () => {
  const suite = engineOnTestDevice();

  // n = 1, 2 (shorter than a block), 7, 9 (padded to 8 and 12), 1025 (two rotation windows).
  for (const n of [1, 2, 7, 9, 1025]) {
    for (const scheme of ['e8-q16', 'd3-q6-deterministic'] as SchemeName[]) {
      it(`n = ${n}, ${scheme}: quantized alike (or refused alike), products, matvec and dequantize equal, centred or not, rotated or not`, async () => {
        const universal = !scheme.endsWith('deterministic');
        const b = gaussianMatrix(n, 2, 3);
        for (const center of [false, true]) {
          for (const rotate of [true, false]) {
            const options = (nonce: bigint) => (universal ? { scheme, center, rotate, seed: SEED, nonce } : { scheme, center, rotate, seed: SEED });
            const cpuB = quantize(b, options(NONCE_B)) as LatticeQuantizedMatrix;
            const gpuB = await suite.engine.quantize(b, options(NONCE_B));
            try {
              for (const [name, column] of EDGE_COLUMNS) {
                const what = `n = ${n} ${scheme} center ${center} rotate ${rotate}, ${name}`;
                const a: Matrix = { rows: n, cols: 2, data: new Float32Array(2 * n) };
                a.data.set(column(n));
                a.data.set(gaussianMatrix(n, 1, 9).data, n);
                const cpuA = attempt(() => quantize(a, options(NONCE_A)) as LatticeQuantizedMatrix);
                const gpuA = await attemptAsync(() => suite.engine.quantize(a, options(NONCE_A)));
                if ('refused' in cpuA || 'refused' in gpuA) {
                  // Both refuse, and only out of the range (norms past [2^-100, 2^100]).
                  const agreed = 'refused' in cpuA && 'refused' in gpuA && !inRange(a);
                  record('edge shapes: quantize (GPU = CPU)', agreed ? 'refused' : 'wrong', `${what}: CPU ${'refused' in cpuA ? cpuA.refused : 'quantized'}, GPU ${'refused' in gpuA ? gpuA.refused : 'quantized'}`);
                  expect(agreed, what).toBe(true);
                  if ('value' in gpuA) gpuA.value.destroy();
                  continue;
                }
                try {
                  const read = await gpuA.value.read();
                  const same =
                    read.codes.every((c, i) => c === cpuA.value.codes[i]) &&
                    JSON.stringify(bitsOf(read.norms)) === JSON.stringify(bitsOf(cpuA.value.norms)) &&
                    JSON.stringify(bitsOf(read.means)) === JSON.stringify(bitsOf(cpuA.value.means));
                  record('edge shapes: quantize (GPU = CPU)', same ? 'correct' : 'wrong', `${what}: GPU codes, norms or means differ`);
                  expect(same, what).toBe(true);
                  const cpuProduct = suite.engine.productKernel(gpuA.value, gpuB) === 'universal-i8' ? universalPairProduct : matmulAT;
                  const normsA = [0, 1].map((j) => maxNorm({ rows: n, cols: 1, data: a.data.subarray(j * n, (j + 1) * n) }));
                  const normB = maxNorm(b);
                  const x = b.data.slice(0, n);
                  const calls: [string, () => Float32Array, () => Promise<Float32Array>, (i: number) => number][] = [
                    ['matmulAT', () => cpuProduct(cpuA.value, cpuB).data, async () => (await suite.engine.matmulAT(gpuA.value, gpuB)).data, (i) => (normsA[i % 2] as number) * normB],
                    ['matvec', () => matvecAT(cpuA.value, { rows: n, cols: 1, data: x }).data, async () => (await suite.engine.matvec(gpuA.value, x)).data, (i) => (normsA[i] as number) * normB],
                    ['dequantize', () => dequantize(cpuA.value).data, async () => (await suite.engine.dequantize(gpuA.value)).data, (i) => normsA[Math.floor(i / n)] as number],
                  ];
                  for (const [call, cpu, gpu, scale] of calls) {
                    const want = attempt(cpu);
                    const got = await attemptAsync(gpu);
                    const family = `edge shapes: ${call} (GPU = CPU)`;
                    if ('refused' in want || 'refused' in got) {
                      // The GPU may refuse a product the CPU computes (its bound on the decoded norms), never the reverse.
                      const fine = 'refused' in got;
                      record(family, fine ? 'refused' : 'wrong', `${what} ${call}: the CPU refused and the GPU answered`);
                      expect(fine, `${what} ${call}`).toBe(true);
                      continue;
                    }
                    const bad = got.value.findIndex((v, i) => !(Math.abs(v - (want.value[i] as number)) <= 1e-5 * scale(i) + 2 ** -126));
                    record(family, bad < 0 ? 'correct' : 'wrong', `${what} ${call}: entry ${bad}, GPU ${got.value[bad]}, CPU ${want.value[bad]}`);
                    expect(bad, `${what} ${call}`).toBe(-1);
                  }
                } finally {
                  gpuA.value.destroy();
                }
              }
            } finally {
              gpuB.destroy();
            }
          }
        }
      });
    }
  }

  // f16 and bf16 at their edges: 65504, ±65504, f16 subnormals (2^-24), −0, 65504 among subnormals;
  // bf16's largest finite (≈ 3.39e38, refused: its norm is past 2^100), 2^65 alternating, bf16
  // subnormals (refused) and its smallest normal 2^-126 (a norm of 2^-126·√n: refused below n = 2^52).
  const HALF_COLUMNS: ['f16' | 'bf16', string, number, (i: number) => number][] = [
    ['f16', '65504', 0x7bff, () => 0x7bff],
    ['f16', '±65504', 0x7bff, (i) => (i % 2 ? 0xfbff : 0x7bff)],
    ['f16', 'subnormals', 0x0001, (i) => (i % 2 ? 0x0001 : 0x8003)],
    ['f16', '−0', 0x8000, () => 0x8000],
    ['f16', '65504 among subnormals', 0x0001, (i) => (i === 0 ? 0x7bff : 0x0001)],
    ['bf16', 'largest finite', 0x7f7f, () => 0x7f7f],
    ['bf16', '±2^65', 0x6000, (i) => (i % 2 ? 0xe000 : 0x6000)],
    ['bf16', 'subnormals', 0x0001, () => 0x0001],
    ['bf16', '2^-126', 0x0080, () => 0x0080],
  ];
  for (const n of [1, 9, 1025]) {
    it(`n = ${n}: f16 and bf16 edge columns quantize as their f32 widening does, on the CPU and the GPU (HalfMatrix and f16 buffer), or are refused by both`, async () => {
      for (const scheme of ['e8-q16', 'd3-q6-deterministic'] as SchemeName[]) {
        for (const center of [false, true]) {
          const options = scheme.endsWith('deterministic') ? { scheme, center, seed: SEED } : { scheme, center, seed: SEED, nonce: NONCE_A };
          for (const [format, name, , entry] of HALF_COLUMNS) {
            const what = `n = ${n} ${scheme} center ${center} ${format} ${name}`;
            const bits = new Uint16Array(2 * n);
            for (let i = 0; i < n; i++) bits[i] = entry(i);
            for (let i = 0; i < n; i++) bits[n + i] = format === 'f16' ? 0x3c00 + (i % 7) * 0x40 : 0x3f80 + (i % 7) * 0x8; // 1 … 1.375
            const half = { rows: n, cols: 2, data: bits, format };
            const fromWidened = attempt(() => quantize(toFloat32Matrix(half), options) as LatticeQuantizedMatrix);
            const fromHalf = attempt(() => quantize(half, options) as LatticeQuantizedMatrix);
            const buffer = format === 'f16' ? createBufferWithData(suite.context.device, 'f16 edge input', n % 2 ? Uint16Array.from([...bits, 0]) : bits, STORAGE_USAGE) : null;
            try {
              const gpuInputs = [half, ...(buffer ? [{ buffer, rows: n, cols: 2, format: 'f16' as const }] : [])];
              for (const input of gpuInputs) {
                const gpu = await attemptAsync(async () => {
                  const q = await suite.engine.quantize(input, options);
                  try {
                    return await q.read();
                  } finally {
                    q.destroy();
                  }
                });
                let same: boolean;
                if ('refused' in fromWidened) same = 'refused' in fromHalf && 'refused' in gpu;
                else {
                  const cpu = fromWidened.value;
                  same =
                    'value' in fromHalf &&
                    'value' in gpu &&
                    [fromHalf.value, gpu.value].every(
                      (q) => q.codes.every((c, i) => c === cpu.codes[i]) && JSON.stringify([bitsOf(q.norms), bitsOf(q.means)]) === JSON.stringify([bitsOf(cpu.norms), bitsOf(cpu.means)]),
                    );
                }
                record('f16/bf16 edges: quantize (CPU 16-bit = CPU f32 = GPU)', !same ? 'wrong' : 'refused' in fromWidened ? 'refused' : 'correct', `${what} (${'buffer' in input ? 'f16 buffer' : 'HalfMatrix'})`);
                expect(same, `${what} (${'buffer' in input ? 'f16 buffer' : 'HalfMatrix'})`).toBe(true);
              }
            } finally {
              buffer?.destroy();
            }
          }
        }
      }
    });
  }
});

describe('extreme values: totals', () => {
  it('no silent wrong answer in any family', () => {
    const lines = [...tallies].map(([family, t]) => `${family}: tried ${t.tried}, refused clearly ${t.refused}, answered correctly ${t.correct}, silent wrong ${t.wrong}`);
    console.log(`extreme values:\n  ${lines.join('\n  ')}`);
    const failures = [...tallies.values()].flatMap((t) => t.failures);
    expect(failures).toEqual([]);
    expect(tallies.size).toBeGreaterThan(3);
  });
});
