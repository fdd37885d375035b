import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import type { Matrix } from '../../src/matrix.js';
import { gaussianMatrix } from '../../src/rotation/random.js';
import { covarianceFromActivations, MAX_COLUMN_MAGNITUDE, quantizeWeights } from '../../src/weightonly/index.js';
import { MAX_CODE } from '../../src/weightonly/packedCodes.js';
import { searchStepForRate } from '../../src/weightonly/rateSearch.js';

const methods = ['watersic', 'gptq', 'rtn'] as const;

function scaledIdentity(size: number, value = 1): Matrix {
  const data = new Float32Array(size * size);
  for (let i = 0; i < size; i++) data[i * size + i] = value;
  return { rows: size, cols: size, data };
}

function scaled(m: Matrix, factor: number): Matrix {
  return { rows: m.rows, cols: m.cols, data: m.data.map((v) => v * factor) };
}

function largestCode(codes: Int32Array): number {
  let largest = 0;
  for (const z of codes) largest = Math.max(largest, Math.abs(z));
  return largest;
}

describe('a code overflow during the rate search means "take a larger step"', () => {
  // Output 0 (one row of the PyTorch weight) is 1e6× the rest: σ_W² is all that row, so the first
  // guess is far too large a step, and the small steps the search then tries overflow the codes.
  const n = 64;
  const outputs = 128;
  const w = gaussianMatrix(n, outputs, 8);
  for (let i = 0; i < n; i++) w.data[i] = (w.data[i] as number) * 1e6;
  const sigma = scaledIdentity(n);

  it.each(methods)('%s reaches rate 4, which steps around 0.25 hit', (method) => {
    const q = quantizeWeights(w, sigma, { method, rate: 4 });
    expect(Math.abs(q.rate - 4)).toBeLessThanOrEqual(0.01);
    expect(largestCode(q.codes)).toBeLessThanOrEqual(MAX_CODE);
  });

  it('a rate only overflowing steps would reach is refused for that reason, not blamed on coarse entropy', () => {
    expect(() => quantizeWeights(w, sigma, { method: 'gptq', rate: 5 })).toThrow(
      /could not reach rate 5 ± 0\.01 bits: the closest was 4\.\d+ at step 0\.15\d*, and step 0\.15\d* is already too small for the weights .*use a lower rate/,
    );
  });

  it('a fixed step that overflows is still refused, naming the step and the code', () => {
    for (const method of methods) {
      expect(() => quantizeWeights(w, sigma, { method, step: 0.01 })).toThrow(LatticeMatmulError);
      expect(() => quantizeWeights(w, sigma, { method, step: 0.01 })).toThrow(
        new RegExp(`step 0\\.01 is too small for W: the ${method} code of output 0, input feature \\d+ is -?\\d+, beyond ±16777215 .*use a step of at least about 0\\.\\d+, or give a rate instead`),
      );
    }
  });

  it('the code range is [−(2^24 − 1), 2^24 − 1] exactly: RTN with step 1 takes W = 2^24 − 1 and refuses 2^24 as too small a step', () => {
    // RTN's code is round(w / step): with step 1 it is w itself, exact in f32 up to 2^24.
    const column = (value: number): Matrix => ({ rows: 1, cols: 2, data: Float32Array.of(value, 1) });
    expect(Array.from(quantizeWeights(column(MAX_CODE), { method: 'rtn', step: 1 }).codes)).toEqual([MAX_CODE, 1]);
    expect(Array.from(quantizeWeights(column(-MAX_CODE), { method: 'rtn', step: 1 }).codes)).toEqual([-MAX_CODE, 1]);
    expect(() => quantizeWeights(column(MAX_CODE + 1), { method: 'rtn', step: 1 })).toThrow(
      /step 1 is too small for W: the rtn code of output 0, input feature 0 is 16777216, beyond ±16777215/,
    );
  });

  it('searchStepForRate takes null (too small a step) as a rate above the target', () => {
    // Steps below 0.2 overflow; above it rate = 4 − log2(s/0.3). The first guess 2^−10 overflows.
    const tried: number[] = [];
    const found = searchStepForRate(
      (s) => {
        tried.push(s);
        return s < 0.2 ? null : { rate: 4 - Math.log2(s / 0.3) };
      },
      { target: 4, tolerance: 1e-6, initialStep: 2 ** -10 },
    );
    expect(found.step).toBeCloseTo(0.3, 5);
    expect(tried[0]).toBe(2 ** -10);
    expect(tried[1]).toBe(2 ** -2); // 8 bits up while no step below the target is known
    expect(() => searchStepForRate(() => null, { target: 4, tolerance: 0.01, initialStep: 1 })).toThrow(
      /could not reach rate 4: every step tried in 40 evaluations, up to .*, is too small for the weights/,
    );
  });
});

describe('covarianceFromActivations refuses a Σ_X outside the f32 range, naming the activations', () => {
  const x = gaussianMatrix(8, 32, 1);

  it('activations ×1e20 (Σ_X would be Infinity) and ×1e-25 (Σ_X would be 0)', () => {
    expect(() => covarianceFromActivations(scaled(x, 1e20))).toThrow(LatticeMatmulError);
    expect(() => covarianceFromActivations(scaled(x, 1e20))).toThrow(
      /these activations give Σ_X entry \(0, 0\) = 1\.4\d*e\+40, beyond the f32 range .*multiply the activations by 2\^-67/,
    );
    expect(() => covarianceFromActivations(scaled(x, 1e-25))).toThrow(
      /these activations' largest variance \(Σ_X diagonal entry\) is \d\.\d*e-50, too small for f32 \(below 2\^-102.*multiply the activations by 2\^8[23]/,
    );
  });

  it('the power of two it names gives a usable Σ_X', () => {
    for (const [factor, shift] of [[1e20, -67], [1e-25, 83]] as const) {
      const sigma = covarianceFromActivations(scaled(scaled(x, factor), 2 ** shift));
      for (let i = 0; i < 8; i++) {
        const d = sigma.data[i * 9] as number;
        expect(d).toBeGreaterThan(2 ** -126);
        expect(Number.isFinite(d)).toBe(true);
      }
      expect(() => quantizeWeights(gaussianMatrix(8, 64, 2), sigma, { method: 'gptq', step: 0.1 })).not.toThrow();
    }
  });
});

describe('covarianceFromActivations: a channel whose variance f32 rounds to 0 is dead, with its covariances', () => {
  it('its row and column are 0, and quantizeWeights takes the Σ_X it returned (it refused it as no covariance)', () => {
    // Channel 1 at 1e-25 beside channel 0 at 1e15: variance 1e-50 rounds to 0, the covariance 1e-10 does not.
    const two = covarianceFromActivations({ rows: 2, cols: 1, data: Float32Array.from([1e15, 1e-25]) });
    expect(Array.from(two.data)).toEqual([Math.fround(Math.fround(1e15) ** 2), 0, 0, 0]);
    const w = { rows: 2, cols: 4, data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]) };
    expect(() => quantizeWeights(w, two, { method: 'gptq', step: 0.5 })).not.toThrow();
    // 16 Gaussian channels, one scaled by 1e-24: its row and column are 0, the others as computed.
    const x = gaussianMatrix(16, 64, 5);
    for (let t = 0; t < 64; t++) x.data[t * 16 + 3] = (x.data[t * 16 + 3] as number) * 1e-24;
    const sigma = covarianceFromActivations(x);
    for (let k = 0; k < 16; k++) {
      expect(sigma.data[3 * 16 + k]).toBe(0);
      expect(sigma.data[k * 16 + 3]).toBe(0);
    }
    expect(sigma.data[0]).toBeGreaterThan(0.5);
    for (const method of methods) expect(() => quantizeWeights(gaussianMatrix(16, 32, 6), sigma, { method, rate: 3 })).not.toThrow();
  });
});

describe('W beyond the format limit 2^48 is refused up front, naming the entry', () => {
  const n = 64;
  const w = gaussianMatrix(n, 128, 3);
  const sigma = scaledIdentity(n);

  it.each(methods)('%s: W ×1e20', (method) => {
    const big = scaled(w, 1e20);
    expect(() => quantizeWeights(big, sigma, { method, rate: 3 })).toThrow(
      /^W has an entry -?3\.9\d*e\+20 at row 14, column 1, beyond 2\^48 .*MAX_COLUMN_MAGNITUDE.*multiply W by 2\^-69 and the layer's output by 2\^69$/,
    );
    expect(() => quantizeWeights(big, sigma, { method, rate: 3, rotate: true })).toThrow(/^W in the rotated basis \(rotate: true\) has an entry of magnitude .* beyond 2\^48/);
    expect(() => quantizeWeights(big, sigma, { method, step: 1e19 })).toThrow(/^W has an entry .* beyond 2\^48/);
  });

  // Within 2^48 but close to it, an input feature's widest code (|s|·2^(b−1), up to twice its largest
  // weight) can cross the limit: refused naming W, and the power of two it names makes it quantize.
  it.each(methods)('%s: W with its largest entry at 2^48 (and 2^47 for GPTQ and RTN) is refused naming W; the suggested 2^-k quantizes it', (method) => {
    for (const exponent of method === 'watersic' ? [48] : [47, 48]) {
      const g = gaussianMatrix(8, 256, 3);
      const largest = g.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const near = scaled(g, 2 ** exponent / largest);
      const identity = scaledIdentity(8);
      let message = '';
      try {
        quantizeWeights(near, method === 'rtn' ? null : identity, { method, rate: 2 });
      } catch (error) {
        expect(error).toBeInstanceOf(LatticeMatmulError);
        message = (error as Error).message;
      }
      expect(message, `2^${exponent}`).toMatch(/^W's largest entry, \S+, is too close to 2\^48 .*MAX_COLUMN_MAGNITUDE.* for its codes: columnScales\[\d+\] = .* above the limit 2\^48; multiply W by 2\^-(\d+) and the layer's output by 2\^\d+$/);
      const shift = Number(/multiply W by 2\^-(\d+)/.exec(message)?.[1]);
      expect(quantizeWeights(scaled(near, 2 ** -shift), method === 'rtn' ? null : identity, { method, rate: 2 }).rate).toBeCloseTo(2, 1);
    }
  });

  it('W with entries up to 2^42 is still quantized', () => {
    const large = scaled(w, 2 ** 40);
    expect(largestCode(quantizeWeights(large, sigma, { method: 'gptq', rate: 3 }).codes)).toBeGreaterThan(0);
    expect(MAX_COLUMN_MAGNITUDE).toBe(2 ** 48);
  });
});

describe('a fixed step must be a positive f32 value for GPTQ and RTN (it is their stored scale)', () => {
  const n = 8;
  const w = gaussianMatrix(n, 8, 1);
  const sigma = scaledIdentity(n);

  it.each([1e39, 1e-46])('step %s', (step) => {
    for (const method of ['gptq', 'rtn'] as const) {
      expect(() => quantizeWeights(w, sigma, { method, step })).toThrow(LatticeMatmulError);
      expect(() => quantizeWeights(w, sigma, { method, step })).toThrow(
        new RegExp(`^step ${String(step).replace('+', '\\+')} is outside the f32 range \\(2\\^-149 ≈ 1\\.4e-45 to 3\\.4e38\\): ${method} stores it`),
      );
    }
  });

  it.each(['gptq', 'watersic'] as const)('%s with a rate: W so small (1e-44) that the searched steps leave f32 is refused naming W and 2^k; W×2^k quantizes', (method) => {
    const tiny = scaled(gaussianMatrix(8, 256, 1), 1e-44);
    const sigmaX = scaledIdentity(8);
    expect(() => quantizeWeights(tiny, sigmaX, { method, rate: 4 })).toThrow(
      /^rate 4: W's entries \(root mean square 9\.\d+e-45\) need steps that f32 cannot hold \(.*\); multiply W by 2\^146 and the layer's output by 2\^-146$/,
    );
    expect(quantizeWeights(scaled(tiny, 2 ** 146), sigmaX, { method, rate: 4 }).rate).toBeCloseTo(4, 1);
    // 1e-40 stays quantizable as before.
    expect(quantizeWeights(scaled(gaussianMatrix(8, 256, 1), 1e-40), sigmaX, { method, rate: 4 }).rate).toBeCloseTo(4, 1);
  });

  it("WaterSIC's c is no stored scale: tiny W with tiny Σ_X still searches below 2^-149", () => {
    const tinyW = scaled(gaussianMatrix(32, 256, 4), 1e-29);
    const q = quantizeWeights(tinyW, scaledIdentity(32, 1e-29), { method: 'watersic', rate: 7 });
    expect(Math.abs(q.rate - 7)).toBeLessThanOrEqual(0.01);
    expect(q.analysis?.step).toBeLessThan(2 ** -149);
  });
});
