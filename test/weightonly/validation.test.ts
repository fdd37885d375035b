import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import type { Matrix } from '../../src/matrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { covarianceFromActivations, quantizeWeights, weightedDistortion, weightOnlyLimit } from '../../src/weightonly/index.js';

const n = 4;
const w = gaussianMatrix(n, 8, 1);

function identity(size: number): Matrix {
  const data = new Float32Array(size * size);
  for (let i = 0; i < size; i++) data[i * size + i] = 1;
  return { rows: size, cols: size, data };
}

function withEntry(m: Matrix, row: number, col: number, value: number): Matrix {
  const data = m.data.slice();
  data[col * m.rows + row] = value;
  return { rows: m.rows, cols: m.cols, data };
}

const badCovariances: [string, Matrix, RegExp][] = [
  ['not symmetric', withEntry(identity(n), 0, 1, 0.5), /not symmetric: entry \(1, 0\)/],
  ['indefinite (eigenvalue −1)', withEntry(withEntry(identity(n), 0, 1, 2), 1, 0, 2), /not positive definite/],
  ['a zero diagonal entry', withEntry(identity(n), 2, 2, 0), /positive diagonal.*\(2, 2\)/],
  ['a negative diagonal entry', withEntry(identity(n), 1, 1, -1), /positive diagonal/],
  ['the wrong size', identity(n + 1), /5×5, expected n×n = 4×4/],
  ['not square', { rows: n, cols: n + 1, data: new Float32Array(n * (n + 1)) }, /expected n×n/],
  ['a NaN', withEntry(identity(n), 3, 2, Number.NaN), /non-finite entry NaN at row 3, column 2/],
  ['an infinity', withEntry(identity(n), 0, 0, Infinity), /non-finite/],
  ['a wrong data length', { rows: n, cols: n, data: new Float32Array(3) }, /entries/],
];

describe('bad Σ_X gets a clear LatticeMatmulError', () => {
  it.each(badCovariances)('%s', (_name, sigma, message) => {
    for (const method of ['watersic', 'gptq', 'rtn'] as const) {
      expect(() => quantizeWeights(w, sigma, { method, rate: 3 })).toThrow(LatticeMatmulError);
      expect(() => quantizeWeights(w, sigma, { method, rate: 3 })).toThrow(message);
    }
  });

  it('a singular Σ_X (rank-deficient calibration) is accepted thanks to damping, but has no limit', () => {
    const ones: Matrix = { rows: n, cols: n, data: new Float32Array(n * n).fill(1) };
    const big = gaussianMatrix(n, 2000, 2);
    const q = quantizeWeights(big, ones, { method: 'watersic', rate: 3 });
    expect(Math.abs(q.rate - 3)).toBeLessThanOrEqual(0.01);
    expect(q.analysis?.logDetSigmaX).toBe(-Infinity);
    expect(() => weightOnlyLimit(big, ones, 3)).toThrow(/not positive definite/);
    // ... and with no damping the Cholesky factorization refuses it.
    expect(() => quantizeWeights(big, ones, { method: 'gptq', rate: 3, damping: 0 })).toThrow(/not positive definite/);
  });
});

describe('other bad input', () => {
  const sigma = identity(n);
  it.each([
    ['an unknown method', { method: 'awq', rate: 3 }, /method must be one of/],
    ['both rate and step', { method: 'rtn', rate: 3, step: 0.1 }, /exactly one of rate/],
    ['neither rate nor step', { method: 'rtn' }, /exactly one of rate/],
    ['a negative rate', { method: 'rtn', rate: -1 }, /rate must be/],
    ['a NaN rate', { method: 'rtn', rate: Number.NaN }, /rate must be/],
    ['a zero step', { method: 'gptq', step: 0 }, /step must be a positive/],
    ['a negative damping', { method: 'gptq', rate: 3, damping: -1 }, /damping/],
    ['a bad seed', { method: 'gptq', rate: 3, rotate: true, seed: -3 }, /seed/],
    // Options are strict, as quantize's are: a typo must not fall back to the default silently.
    ['a misspelled key (damp)', { method: 'gptq', rate: 3, damp: 0.5 }, /quantizeWeights options: unknown option 'damp'; known: method, rate, step, rotate/],
    ['a misspelled key (rotation)', { method: 'gptq', rate: 3, rotation: true }, /unknown option 'rotation'/],
    ['a misspelled key (rescal)', { method: 'gptq', rate: 3, rescal: true }, /unknown option 'rescal' \(did you mean 'rescale'\?\)/],
    ["rescale: 'no' (not coerced to true)", { method: 'gptq', rate: 3, rescale: 'no' }, /rescale must be true or false, got "no"/],
    ['rotate: 1', { method: 'gptq', rate: 3, rotate: 1 }, /rotate must be true or false, got 1/],
    ['options that are an array', [], /quantizeWeights options must be an object/],
  ])('%s', (_name, options, message) => {
    // @ts-expect-error deliberately malformed options
    expect(() => quantizeWeights(w, sigma, options)).toThrow(LatticeMatmulError);
    // @ts-expect-error deliberately malformed options
    expect(() => quantizeWeights(w, sigma, options)).toThrow(message);
  });

  it('a rate no empirical entropy of so few outputs reaches (log2 of the outputs), named as such', () => {
    // 8 outputs: each input feature's 8 codes have at most 3 bits of empirical entropy.
    const few = gaussianMatrix(300, 8, 1);
    expect(() => quantizeWeights(few, null, { method: 'rtn', rate: 4 })).toThrow(/rate 4 cannot be reached with 8 outputs: .* at most log2\(8\) = 3\.000/);
    expect(quantizeWeights(few, null, { method: 'rtn', rate: 2 }).rate).toBeCloseTo(2, 1);
    expect(quantizeWeights(few, null, { method: 'rtn', step: 0.01 }).outputs).toBe(8);
  });

  it('a W or Σ_X too large for the rotation\'s f32 sums (rotate: true) is refused naming it; rotate: false takes the same Σ_X', () => {
    const n = 64;
    const rotation = new RandomizedHadamard(n, 1);
    // Columns of s_i·1e37: the Hadamard's unnormalized sums overflow f32 although the rotated entries (8e37) fit.
    const w = gaussianMatrix(n, 8, 1);
    for (let i = 0; i < n; i++) w.data[i] = rotation.sign(i) * 1e37;
    expect(() => quantizeWeights(w, null, { method: 'rtn', rate: 3, rotate: true, seed: 1 })).toThrow(/^W cannot be rotated \(rotate: true\): RandomizedHadamard\.forwardColumns: the matrix has entries up to 1\.00000e\+37/);
    const sigma = new Float32Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) sigma[j * n + i] = 1e37 * rotation.sign(i) * rotation.sign(j) + (i === j ? 1e35 : 0);
    const sigmaX: Matrix = { rows: n, cols: n, data: sigma };
    const small = gaussianMatrix(n, 8, 2);
    expect(() => quantizeWeights(small, sigmaX, { method: 'gptq', rate: 3, rotate: true, seed: 1 })).toThrow(/^sigmaX cannot be rotated \(rotate: true\): /);
    expect(quantizeWeights(small, sigmaX, { method: 'gptq', rate: 3 }).rate).toBeGreaterThan(2.5);
  });

  it('a W with a NaN or all zeros', () => {
    const bad = { rows: n, cols: 8, data: w.data.slice() };
    bad.data[5] = Number.NaN;
    expect(() => quantizeWeights(bad, sigma, { method: 'rtn', rate: 3 })).toThrow(/W has a non-finite entry/);
    const zeros = { rows: n, cols: 8, data: new Float32Array(n * 8) };
    expect(() => quantizeWeights(zeros, sigma, { method: 'rtn', rate: 3 })).toThrow(/all zeros/);
  });

  it('activations with a NaN, and a distortion between mismatched matrices', () => {
    const x = gaussianMatrix(n, 10, 3);
    x.data[7] = Number.NaN;
    expect(() => covarianceFromActivations(x)).toThrow(LatticeMatmulError);
    expect(() => weightedDistortion(w, gaussianMatrix(n, 7, 1), sigma)).toThrow(/W is 4×8 but Ŵ is 4×7/);
  });
});

describe('Σ_X is optional for RTN only', () => {
  const big = gaussianMatrix(24, 40, 5);
  const sigma24 = identity(24);

  it('RTN without Σ_X (null, undefined or left out) gives the same codes and scales as with it', () => {
    for (const options of [{ method: 'rtn' as const, rate: 3 }, { method: 'rtn' as const, step: 0.3, rotate: true, seed: 4 }]) {
      const withSigma = quantizeWeights(big, sigma24, options);
      for (const q of [quantizeWeights(big, null, options), quantizeWeights(big, undefined, options), quantizeWeights(big, options)]) {
        expect(Array.from(q.codes)).toEqual(Array.from(withSigma.codes));
        expect(Array.from(q.columnScales)).toEqual(Array.from(withSigma.columnScales));
        expect(q.rotation).toBe(withSigma.rotation);
        expect(q.rate).toBe(withSigma.rate);
        // The terms that need Σ_X are NaN; the rest is measured as before.
        expect(q.analysis?.predictedGapBits).toBeNaN();
        expect(q.analysis?.logDetSigmaX).toBeNaN();
        expect(q.analysis?.feedbackPenaltyBits).toBe(0);
        expect(q.analysis?.step).toBe(withSigma.analysis?.step);
      }
    }
  });

  it.each(['watersic', 'gptq'] as const)('%s refuses a missing Σ_X by name', (method) => {
    for (const sigma of [null, undefined]) {
      expect(() => quantizeWeights(big, sigma, { method, rate: 3 })).toThrow(LatticeMatmulError);
      expect(() => quantizeWeights(big, sigma, { method, rate: 3 })).toThrow(`method '${method}' needs sigmaX`);
    }
    // @ts-expect-error the two-argument form is typed for RTN only
    expect(() => quantizeWeights(big, { method, rate: 3 })).toThrow(/needs sigmaX/);
  });

  it('RTN with rescale needs Σ_X (the rescalers are fitted to it); a bad Σ_X is still refused when given', () => {
    expect(() => quantizeWeights(big, null, { method: 'rtn', rate: 3, rescale: true })).toThrow(/rescale: true .* needs sigmaX/);
    expect(() => quantizeWeights(big, identity(5), { method: 'rtn', rate: 3 })).toThrow(/expected n×n = 24×24/);
    expect(() => quantizeWeights(big, null, { method: 'rtn', rate: 3, damping: -1 })).toThrow(/damping/);
  });
});
