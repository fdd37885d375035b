import { describe, expect, it } from 'vitest';
import { COLS_MAX, EXACT_NMSE_MAX_MACS, isSoftwareRenderer, N_MIN, SIZE_CAPS, sizeProblem, sizeTarget } from '../../demo/limits.js';
import { compareRuns, errorSample, firstColumn, measureNmse } from '../../demo/measure.js';
import {
  column,
  dequantize,
  matmulAT,
  matmulATExact,
  productNmse,
  quantize,
  rotationLength,
  SCHEMES,
  testMatrixPair,
  type Matrix,
  type QuantizeOptions,
  type SchemeName,
  type DeterministicLatticeMatrix,
  type ScalarQuantizedMatrix,
  type UniversalLatticeMatrix,
} from '../../src/index.js';
import { HUGE_ESCAPE } from '../../src/lattices/escapes.js';
import { LONG_ESCAPE } from '../../src/quantize/universalCode.js';
import { meanAndStd } from '../meanRatio.js';

/*
 * The demo's own measurement code, in Node (no browser needed): the NMSE it reports for large products
 * (sampled), the one-column slice behind its error picture, its GPU-vs-CPU comparison and its size caps.
 */

const SCHEME_NAMES = Object.keys(SCHEMES) as SchemeName[];

function energy(m: Matrix): number {
  return m.data.reduce((sum, v) => sum + v * v, 0);
}

/** AᵀB (`exact`, computed when not given) plus `delta` (with a random sign) on the entries `perturbed` selects. */
function perturbedProduct(a: Matrix, b: Matrix, delta: number, perturbed: (index: number) => boolean, exact = matmulATExact(a, b)): { estimate: Matrix; squaredError: number } {
  const data = new Float32Array(exact.data.length);
  let squaredError = 0;
  for (let i = 0; i < data.length; i++) {
    const shift = perturbed(i) ? (i % 3 === 0 ? -delta : delta) : 0;
    data[i] = (exact.data[i] as number) + shift;
    // The error actually stored (after f32 rounding of the sum).
    squaredError += ((data[i] as number) - (exact.data[i] as number)) ** 2;
  }
  return { estimate: { rows: exact.rows, cols: exact.cols, data }, squaredError };
}

describe('measureNmse', () => {
  it.each([
    [96, 16],
    [300, 40],
  ])('is the exact productNmse for small products (n = %i, %i columns)', (n, cols) => {
    const { a, b } = testMatrixPair('gaussian', n, cols, cols, 5);
    const estimate = matmulAT(quantize(a, { scheme: 'd3-q6', seed: 3, nonce: 1 }), quantize(b, { scheme: 'd3-q6', seed: 3, nonce: 2 }));
    const measured = measureNmse(estimate, a, b);
    expect(measured.sampledEntries).toBeNull();
    expect(measured.nmse).toBe(productNmse(estimate, a, b));
  });

  // n·cols² = 2048·300² > 2^27: the estimate is sampled.
  const { a, b } = testMatrixPair('gaussian', 2048, 300, 300, 9);

  it('samples large products, exactly right when every entry has the same error', () => {
    const { estimate, squaredError } = perturbedProduct(a, b, 4, () => true);
    const measured = measureNmse(estimate, a, b);
    expect(measured.sampledEntries).toBe(4096);
    const truth = (a.rows * squaredError) / (energy(a) * energy(b));
    expect(Math.abs(measured.nmse - truth) / truth).toBeLessThan(1e-3);
  });

  it('samples a product of operands with different column counts (2048 × 400 and 2048 × 200), scaled by its own entry count', () => {
    const wide = testMatrixPair('gaussian', 2048, 400, 200, 10);
    // Past the exact measurement's cap of MACs, which n·200² alone is not (a cap on B's width would measure exactly).
    expect(2048 * 400 * 200).toBeGreaterThan(EXACT_NMSE_MAX_MACS);
    expect(2048 * 200 * 200).toBeLessThanOrEqual(EXACT_NMSE_MAX_MACS);
    const { estimate, squaredError } = perturbedProduct(wide.a, wide.b, 4, () => true);
    const measured = measureNmse(estimate, wide.a, wide.b);
    expect(measured.sampledEntries).toBe(4096);
    const truth = (2048 * squaredError) / (energy(wide.a) * energy(wide.b));
    expect(Math.abs(measured.nmse - truth) / truth).toBeLessThan(1e-3);
  });

  it('samples large products without bias when only some entries are wrong: measured / true NMSE averages to 1 over 16 patterns', () => {
    // A tenth of the entries carry the error. The sampled entries are fixed (the demo's sample seed), so
    // the draws are which entries are wrong: pattern k perturbs entry i when a hash of (i, k) is 0 mod 10,
    // an independent tenth per pattern. (It was (i + 7919·k)·2654435761 mod 10, but 2654435761 ≡ 1 mod
    // 10, so that is i ≡ k mod 10: 10 distinct patterns, whose ratios average to 1 for any sampler, as
    // the residue classes split every sampled entry among them.) Over the patterns the expected ratio is
    // 1 for any sampler of fixed entries that averages their squared errors and scales by the entry
    // count, so what this catches is that scaling going wrong where most errors are 0 (dividing by the
    // sampled differences above rounding, say: ratio ≈ 10), which the test above, every entry wrong,
    // cannot see. One estimate's relative standard error is √(0.9 / (0.1·4096)) ≈ 4.7 % (5.5 % over 64
    // hashed patterns, measured, mean ratio 1.009). 16 patterns: |mean r − 1| ≤ 5·max(s, 0.055)/√16
    // ≈ 0.07 (a false failure about once in 10⁶).
    const exact = matmulATExact(a, b);
    const tenth = (i: number, k: number): boolean => {
      let x = Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(k + 1, 0x85ebca6b);
      x ^= x >>> 16;
      x = Math.imul(x, 0x7feb352d);
      x ^= x >>> 15;
      x = Math.imul(x, 0x846ca68b);
      x ^= x >>> 16;
      return (x >>> 0) % 10 === 0;
    };
    const ratios: number[] = [];
    for (let k = 0; k < 16; k++) {
      const { estimate, squaredError } = perturbedProduct(a, b, 6, (i) => tenth(i, k), exact);
      const measured = measureNmse(estimate, a, b);
      expect(measured.sampledEntries).toBe(4096);
      ratios.push(measured.nmse / ((a.rows * squaredError) / (energy(a) * energy(b))));
    }
    expect(new Set(ratios).size, 'distinct patterns').toBe(16);
    const { mean, std } = meanAndStd(ratios);
    expect(Math.abs(mean - 1), `mean ${mean.toFixed(4)} ± ${std.toFixed(4)} over 16 patterns`).toBeLessThanOrEqual((5 * Math.max(std, 0.055)) / 4);
  });
});

/** Options with a nonce for universal schemes (so two quantizations of one matrix are identical). */
function reproducible(scheme: SchemeName, seed: number, nonce: number): QuantizeOptions {
  const resolved = SCHEMES[scheme];
  return resolved.kind === 'lattice' && resolved.mode === 'universal' ? { scheme, seed, nonce } : { scheme, seed };
}

describe('firstColumn and errorSample', () => {
  it.each(SCHEME_NAMES)('firstColumn decodes to column 0 of the whole matrix (%s)', (scheme) => {
    for (const center of [false, true]) {
      const { a } = testMatrixPair('heavy-tailed', 200, 5, 1, 2);
      const q = quantize(a, { scheme, seed: 4, center });
      const whole = dequantize(q);
      const first = dequantize(firstColumn(q));
      expect(first.cols).toBe(1);
      expect(Array.from(first.data)).toEqual(Array.from(column(whole, 0)));
    }
  });

  // Unrotated spikes give column 0 long and explicit escapes: the slice must take exactly its own.
  it.each([
    ['E8 q = 4', { kind: 'lattice', mode: 'universal', lattice: 'E8', q: 4, beta: 0.3 }],
    ['D3 q = 5', { kind: 'lattice', mode: 'universal', lattice: 'D3', q: 5, beta: 0.2 }],
  ] as const)('firstColumn of a universal matrix takes column 0’s long and explicit escapes (%s, spiky, unrotated)', (_name, scheme) => {
    const rows = 64;
    const data = new Float32Array(rows * 4);
    for (let j = 0; j < 4; j++) {
      for (let i = 0; i < rows; i++) data[j * rows + i] = 0.01 * Math.sin(i + j);
      data[j * rows + ((7 * j + 3) % rows)] = 50;
      data[j * rows + ((11 * j + 40) % rows)] = -35;
    }
    const a: Matrix = { rows, cols: 4, data };
    const q = quantize(a, { scheme, rotate: false, nonce: 5 }) as UniversalLatticeMatrix;
    const longInColumn0 = q.escapes.subarray(0, q.blocksPerColumn).filter((symbol) => symbol === LONG_ESCAPE).length;
    // The case is only meaningful with escapes in column 0 and in later columns.
    expect(longInColumn0).toBeGreaterThan(0);
    expect(q.longEscapes.length).toBeGreaterThan(longInColumn0);
    const first = firstColumn(q) as UniversalLatticeMatrix;
    expect(first.longEscapes.length).toBe(longInColumn0);
    const d = scheme.lattice === 'E8' ? 8 : 3;
    expect(first.hugeEscapes.length).toBe(d * first.longEscapes.filter((index) => index === HUGE_ESCAPE).length);
    expect(Array.from(dequantize(first).data)).toEqual(Array.from(column(dequantize(q), 0)));
  });

  it.each(SCHEME_NAMES)('errorSample shows every coordinate when n ≤ 384 and its RMS error is ‖â − a‖/‖a‖ (%s)', (scheme) => {
    // An n that is its own rotation length, so the rotation is orthogonal and keeps distances.
    let n = 256;
    while (rotationLength(n) !== n) n++;
    expect(n).toBeLessThanOrEqual(384);
    const { a } = testMatrixPair('gaussian', n, 3, 1, 8);
    const q = quantize(a, { scheme, seed: 12 });
    const sample = errorSample(a, q, 12);
    expect(sample.input).toHaveLength(n);
    expect(sample.decoded).toHaveLength(n);
    const x = column(a, 0);
    const xHat = column(dequantize(q), 0);
    let error = 0;
    let norm = 0;
    for (let i = 0; i < x.length; i++) {
      error += ((xHat[i] as number) - (x[i] as number)) ** 2;
      norm += (x[i] as number) ** 2;
    }
    expect(sample.rmsError).toBeGreaterThan(0);
    expect(Math.abs(sample.rmsError - Math.sqrt(error / norm)) / sample.rmsError).toBeLessThan(1e-4);
    // In units of the column's RMS: the inputs have mean square 1.
    expect(sample.input.reduce((s, v) => s + v * v, 0) / n).toBeCloseTo(1, 5);
  });
  it('shows the first 384 rotated coordinates of a longer column, its RMS error over those (n = 1024)', () => {
    const { a } = testMatrixPair('gaussian', 1024, 2, 1, 8);
    const q = quantize(a, { scheme: 'e8-q16', seed: 12, nonce: 3 });
    const sample = errorSample(a, q, 12);
    expect(sample.input).toHaveLength(384);
    expect(sample.decoded).toHaveLength(384);
    const squared = sample.input.reduce((sum, x, i) => sum + ((sample.decoded[i] as number) - x) ** 2, 0);
    expect(sample.rmsError).toBeCloseTo(Math.sqrt(squared / 384), 12);
  });
});

describe('compareRuns', () => {
  const { a, b } = testMatrixPair('gaussian', 96, 4, 3, 1);

  it.each(['d3-q6', 'e8-5bit', 'd3-q6-deterministic', 'int4-g32'] as const)('finds no difference between two identical runs and one changed code (%s)', (scheme) => {
    const qa = quantize(a, reproducible(scheme, 2, 1));
    const qb = quantize(b, reproducible(scheme, 2, 2));
    const product = matmulAT(qa, qb);
    const again = [quantize(a, reproducible(scheme, 2, 1)), quantize(b, reproducible(scheme, 2, 2))] as const;
    const same = compareRuns([qa, qb], again, product, matmulAT(qa, qb));
    expect(same.valuesDiffering).toBe(0);
    expect(same.valuesCompared).toBeGreaterThan(qa.codes.length + qb.codes.length);
    expect(same.productRelativeDifference).toBe(0);
    // Deterministic lattice schemes keep a per-column gain by default ('unbiased'); the others have none.
    expect(same.gainsRelativeDifference).toBe(scheme === 'd3-q6-deterministic' ? 0 : null);

    const changedCodes = qa.codes.slice();
    changedCodes[1] = (changedCodes[1] as number) + 1;
    const changed = { ...qa, codes: changedCodes } as typeof qa;
    const shifted = { ...product, data: product.data.map((v, i) => (i === 0 ? v + 1 : v)) };
    const scale = Math.max(...Array.from(product.data, Math.abs));
    const different = compareRuns([changed, qb], [qa, qb], shifted, product);
    expect(different.valuesDiffering).toBe(1);
    expect(different.productRelativeDifference).toBeCloseTo(1 / scale, 6);
  });

  it('counts a universal run with other nonces (another dither) as different', () => {
    const qa = quantize(a, { scheme: 'e8-q16', seed: 2, nonce: 1 });
    const qb = quantize(b, { scheme: 'e8-q16', seed: 2, nonce: 2 });
    const other = [quantize(a, { scheme: 'e8-q16', seed: 2, nonce: 3 }), quantize(b, { scheme: 'e8-q16', seed: 2, nonce: 4 })] as const;
    const result = compareRuns([qa, qb], other, matmulAT(qa, qb), matmulAT(other[0], other[1]));
    expect(result.valuesDiffering).toBeGreaterThan(0);
  });

  it('counts a changed norm, nonce word or explicit-escape coordinate of a universal run as one differing value', () => {
    const qa = quantize(a, { scheme: 'd3-q6', seed: 2, nonce: 1 }) as UniversalLatticeMatrix;
    const qb = quantize(b, { scheme: 'd3-q6', seed: 2, nonce: 2 });
    const product = matmulAT(qa, qb);
    const differing = (changed: UniversalLatticeMatrix): number => compareRuns([changed, qb], [qa, qb], product, product).valuesDiffering;
    const norms = qa.norms.slice();
    norms[2] = (norms[2] as number) * 1.5;
    expect(differing({ ...qa, norms })).toBe(1);
    // Only the nonce: the same codes would decode with another dither.
    expect(differing({ ...qa, nonce: qa.nonce + 1n })).toBe(1);
    expect(differing({ ...qa, nonce: qa.nonce + (1n << 32n) })).toBe(1);

    // Explicit (huge) escapes: compareRuns compares the streams as they are, so two made-up ones do.
    const withHuge = { ...qa, hugeEscapes: Int32Array.of(4, -2, 0) };
    const changedHuge = { ...qa, hugeEscapes: Int32Array.of(4, -2, 1) };
    expect(compareRuns([changedHuge, qb], [withHuge, qb], product, product).valuesDiffering).toBe(1);
  });

  it('counts a changed scale index (deterministic) or tensor scale (scalar) as one differing value', () => {
    const qa = quantize(a, { scheme: 'd3-q6-deterministic', seed: 2 }) as DeterministicLatticeMatrix;
    const qb = quantize(b, { scheme: 'd3-q6-deterministic', seed: 2 });
    const product = matmulAT(qa, qb);
    const scaleIndices = qa.scaleIndices.slice();
    scaleIndices[0] = (scaleIndices[0] as number) + 1;
    expect(compareRuns([{ ...qa, scaleIndices }, qb], [qa, qb], product, product).valuesDiffering).toBe(1);

    const sa = quantize(a, { scheme: 'nvfp4', seed: 2 }) as ScalarQuantizedMatrix;
    const sb = quantize(b, { scheme: 'nvfp4', seed: 2 });
    const scalarProduct = matmulAT(sa, sb);
    expect(compareRuns([{ ...sa, tensorScale: sa.tensorScale * 2 }, sb], [sa, sb], scalarProduct, scalarProduct).valuesDiffering).toBe(1);
  });

  it('measures the gains’ relative difference, and calls a missing gain or product entry infinitely different', () => {
    const qa = quantize(a, { scheme: 'd3-q6-deterministic', seed: 2 }) as DeterministicLatticeMatrix;
    const qb = quantize(b, { scheme: 'd3-q6-deterministic', seed: 2 });
    const product = matmulAT(qa, qb);
    const gains = qa.gains?.slice() ?? new Float32Array(0);
    expect(gains.length).toBe(a.cols);
    gains[1] = (gains[1] as number) * 1.001;
    const scaled = compareRuns([{ ...qa, gains }, qb], [qa, qb], product, product);
    // f32 rounding of the scaled gain: 1e-3 to within 2⁻²³ relative.
    expect(Math.abs((scaled.gainsRelativeDifference ?? Number.NaN) - 1e-3)).toBeLessThan(1e-6);
    expect(compareRuns([{ ...qa, gains: null }, qb], [qa, qb], product, product).gainsRelativeDifference).toBe(Infinity);
    // A product entry that is NaN, or a product with entries missing, is not "within" anything.
    const withNaN = { ...product, data: product.data.map((v, i) => (i === 3 ? Number.NaN : v)) };
    expect(compareRuns([qa, qb], [qa, qb], withNaN, product).productRelativeDifference).toBe(Infinity);
    const short = { ...product, data: product.data.subarray(0, product.data.length - 1) };
    expect(compareRuns([qa, qb], [qa, qb], short, product).productRelativeDifference).toBe(Infinity);
  });

  it('counts every code as different between a universal and a deterministic quantization', () => {
    const universal = [quantize(a, { scheme: 'd3-q6', seed: 2, nonce: 1 }), quantize(b, { scheme: 'd3-q6', seed: 2, nonce: 2 })] as const;
    const deterministic = [quantize(a, { scheme: 'd3-q6-deterministic', seed: 2 }), quantize(b, { scheme: 'd3-q6-deterministic', seed: 2 })] as const;
    const result = compareRuns(universal, deterministic, matmulAT(...universal), matmulAT(...deterministic));
    expect(result.valuesDiffering).toBeGreaterThanOrEqual(universal[0].codes.length + universal[1].codes.length);
  });
});

describe('sizeProblem', () => {
  it('accepts sizes up to each backend cap and refuses one more', () => {
    expect(sizeProblem(1024, 256, 'cpu')).toBeNull();
    expect(1024 * 256).toBe(SIZE_CAPS.cpu.entries);
    expect(1024 * 256 * 256).toBe(SIZE_CAPS.cpu.productMacs);
    expect(sizeProblem(1024, 257, 'cpu')).toMatch(/CPU reference/);
    expect(sizeProblem(128, 1024, 'cpu')).toMatch(/columns² .* multiply-adds/);
    expect(sizeProblem(4096, 4096, 'webgpu')).toBeNull();
    expect(sizeProblem(8192, 4096, 'webgpu')).toMatch(/more than WebGPU runs here/);
    // A software renderer: 2^20 entries (1024 × 1024) and 2^27 multiply-adds (2048 × 256²).
    expect(sizeProblem(1024, 1024, 'software-webgpu')).toMatch(/columns² = 1,073,741,824 multiply-adds is more than WebGPU on a software renderer runs here \(134,217,728\)/);
    expect(sizeProblem(2048, 256, 'software-webgpu')).toBeNull();
    expect(sizeProblem(2048, 257, 'software-webgpu')).toMatch(/WebGPU on a software renderer/);
    expect(sizeProblem(8192, 128, 'software-webgpu')).toBeNull();
    expect(sizeProblem(8192, 129, 'software-webgpu')).toMatch(/n × columns = 1,056,768 is more than WebGPU on a software renderer runs here \(1,048,576\)/);
    // And 2^20 entries of AᵀB (1024 columns): 8 × 4096 is within the other two caps (8 · 4096² = 2^27)
    // but took 40–54 s on SwiftShader (quantizing and the product cost per column and per entry of AᵀB).
    expect(sizeProblem(8, 4096, 'software-webgpu')).toBe(
      'columns² = 16,777,216 entries of AᵀB is more than WebGPU on a software renderer runs here (1,048,576, that is up to 1,024 columns).',
    );
    expect(sizeProblem(8, 1025, 'software-webgpu')).toMatch(/columns² = 1,050,625 entries of AᵀB/);
    expect(sizeProblem(8, 1024, 'software-webgpu')).toBeNull();
    expect(sizeProblem(128, 1024, 'software-webgpu')).toBeNull();
    expect(sizeProblem(129, 1024, 'software-webgpu')).toMatch(/multiply-adds/);
    // On a GPU and on the CPU reference the product's entries refuse nothing the other caps allow.
    expect(sizeProblem(8, 4096, 'webgpu')).toBeNull();
    expect(sizeProblem(8, 2896, 'cpu')).toBeNull();
  });

  it('keeps every size a software renderer runs within the measured corners (at most 1024 columns)', () => {
    // The widest sizes are at the smallest n; the slowest steps measured were at the corners
    // 8192 × 128, 2048 × 256, 128 × 1024 and 8 × 1024 (demo/limits.ts).
    for (let cols = 1; cols <= COLS_MAX; cols++) {
      const allowed = sizeProblem(N_MIN, cols, 'software-webgpu') === null;
      expect(allowed, `${N_MIN} × ${cols}`).toBe(cols <= 1024);
    }
    for (const n of [8, 64, 128, 129, 512, 2048, 4096, 8192]) {
      for (const cols of [128, 256, 512, 1024, 2048, 4096]) {
        if (sizeProblem(n, cols, 'software-webgpu') !== null) continue;
        expect(cols, `${n} × ${cols}`).toBeLessThanOrEqual(1024);
      }
    }
  });

  it('holds WebGPU runs to the software caps only on a software renderer', () => {
    expect(sizeTarget('webgpu', true)).toBe('software-webgpu');
    expect(sizeTarget('webgpu', false)).toBe('webgpu');
    expect(sizeTarget('cpu', true)).toBe('cpu');
    const info = { vendor: '', architecture: '', device: '', description: '' };
    // What Chromium's SwiftShader adapter and Mesa's lavapipe report, a fallback adapter, and real GPUs.
    expect(isSoftwareRenderer({ ...info, vendor: 'google', architecture: 'swiftshader' })).toBe(true);
    expect(isSoftwareRenderer({ ...info, description: 'llvmpipe (LLVM 15.0.6, 256 bits)' })).toBe(true);
    expect(isSoftwareRenderer({ ...info, vendor: 'mesa', architecture: 'lavapipe' })).toBe(true);
    expect(isSoftwareRenderer({ ...info, isFallbackAdapter: true })).toBe(true);
    expect(isSoftwareRenderer({ ...info, vendor: 'nvidia', architecture: 'hopper', isFallbackAdapter: false })).toBe(false);
    expect(isSoftwareRenderer({ ...info, vendor: 'apple', architecture: 'metal-3' })).toBe(false);
    expect(isSoftwareRenderer(info)).toBe(false);
  });

  it.each([
    [7, 16],
    [8193, 1],
    [96.5, 16],
    [Number.NaN, 16],
    [96, 0],
    [96, 4097],
  ])('refuses n = %s, cols = %s', (n, cols) => {
    expect(sizeProblem(n, cols, 'webgpu')).toMatch(/whole number/);
  });
});
