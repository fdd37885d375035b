import { describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import { hadamard12, hadamard20, rotationPlan } from '../../src/rotation/hadamard.js';
import { gaussianMatrix, Rng } from '../../src/rotation/random.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { contractTransform, hadamardBase, referenceForward, referenceInverse, referenceSign } from './rotationReference.js';
import { countAllocations } from '../weightonly/fuzzProperty.js';

import { transforms } from './transformCounter.js';

// Counts the fast transform's calls (a pass-through: the rotation computes as before).
vi.mock('../../src/rotation/hadamard.js', async (importOriginal) =>
  (await import('./transformCounter.js')).countingHadamard(await importOriginal<typeof import('../../src/rotation/hadamard.js')>()),
);

/*
 * RandomizedHadamard on two-stage plans (n > 1024 that are not a Hadamard length: windows [0, L) and
 * [n − L, n), each with its own random signs): the map is W_1·D_1·W_0·D_0·x, it follows the documented
 * f32 contract bit for bit, it is orthogonal up to f32 rounding, it spreads any input over the whole
 * vector (no output entry has more than N/L ≤ 4/3 times the average variance), and the lengths that
 * keep one stage rotate exactly as before.
 */

function randomVector(length: number, rng: Rng): Float32Array {
  const v = new Float32Array(length);
  for (let i = 0; i < length; i++) v[i] = rng.nextGaussian();
  return v;
}

/** Values g·2^e, e ∈ [−11, 11]: nearly every f32 addition rounds, so an order change shows. */
function mixedMagnitudes(length: number, rng: Rng): Float32Array {
  return randomVector(length, rng).map((v, i) => v * 2 ** (((i * 7) % 23) - 11));
}

function dot(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < Math.min(x.length, y.length); i++) s += (x[i] as number) * (y[i] as number);
  return s;
}

const norm = (x: ArrayLike<number>): number => Math.sqrt(dot(x, x));
const bits = (v: Float32Array): Uint32Array => new Uint32Array(v.buffer, v.byteOffset, v.length);
const stagesOf = (n: number): { offset: number; length: number }[] => rotationPlan(n).stages.map(({ offset, length }) => ({ offset, length }));

/** (H_L)[r][c] of a single Hadamard length from the Sylvester formula and the Paley tables. */
function hadamardEntry(L: number, r: number, c: number): number {
  const { m } = hadamardBase(L);
  const table = m === 20 ? hadamard20 : m === 12 ? hadamard12 : new Int8Array([1]);
  let parity = 0;
  for (let v = Math.floor(r / m) & Math.floor(c / m); v !== 0; v >>>= 1) parity ^= v & 1;
  return (parity === 0 ? 1 : -1) * (table[(r % m) * m + (c % m)] as number);
}

// n → L (windows [0, L) and [n − L, n)): 1025 → 1024 (m = 1), 1100 → 1024, 1500 → 1280 (m = 20),
// 2100 → 2048, 3000 → 2560 (m = 20), 4000 → 3072 (m = 12).
const windowed = [1025, 1100, 1500, 2100, 3000, 4000];
const modelWidths = [11008, 13824, 14336, 28672];

describe('RandomizedHadamard with two windows', () => {
  it('the sizes used here have two stages and no padding', () => {
    for (const n of [...windowed, ...modelWidths]) {
      expect(rotationPlan(n).stages).toHaveLength(2);
      expect(rotationPlan(n).length).toBe(n);
    }
  });

  it.each(windowed)('n = %d: length, plan and per-stage scales', (n) => {
    const rotation = new RandomizedHadamard(n, 17);
    expect(rotation.plan).toBe(rotationPlan(n));
    expect(rotation.length).toBe(n);
    expect(rotation.stageScales).toEqual(rotation.plan.stages.map((s) => Math.fround(1 / Math.sqrt(s.length))));
    expect(rotation.scale).toBe(rotation.stageScales[0]);
  });

  it.each([1100, 1500])('n = %d: forward equals W_1·D_1·W_0·D_0·x computed densely in float64', (n) => {
    const rotation = new RandomizedHadamard(n, 5);
    const x = randomVector(n, new Rng(n));
    const t = Float64Array.from(x);
    rotation.plan.stages.forEach(({ offset, length }, k) => {
      // D_k: the stage's own signs on its window only.
      const window = t.slice(offset, offset + length).map((v, i) => referenceSign(5, offset + i, k) * v);
      const c = 1 / Math.sqrt(length);
      for (let r = 0; r < length; r++) {
        let sum = 0;
        for (let i = 0; i < length; i++) sum += hadamardEntry(length, r, i) * (window[i] as number);
        t[offset + r] = c * sum;
      }
    });
    const y = rotation.forward(x);
    // Two stages of ≤ 20 + log2 L + 1 f32 roundings of partial sums ≤ √L‖x‖: far below 1e-6‖x‖.
    for (let p = 0; p < n; p++) expect(Math.abs((y[p] as number) - (t[p] as number))).toBeLessThan(1e-6 * norm(x));
  });

  it.each([...windowed, ...modelWidths])('n = %d: forward and inverse follow the f32 contract bit for bit', (n) => {
    const rotation = new RandomizedHadamard(n, 2025);
    const x = mixedMagnitudes(n, new Rng(n + 3));
    expect(bits(rotation.forward(x))).toEqual(bits(referenceForward(x, n, 2025, stagesOf(n))));
    const z = mixedMagnitudes(n, new Rng(n + 4));
    expect(bits(rotation.inverse(z))).toEqual(bits(referenceInverse(z, n, 2025, stagesOf(n))));
    const some = rotation.inverseColumns({ rows: n, cols: 1, data: z }, 700);
    expect(bits(some.data)).toEqual(bits(referenceInverse(z, 700, 2025, stagesOf(n))));
  });

  it('the second stage has its own signs: reusing the first stage’s signs gives different bits', () => {
    // Guards the bit test above against a reference that cannot tell the two sign sets apart.
    const n = 1100;
    const x = mixedMagnitudes(n, new Rng(1));
    const y = new RandomizedHadamard(n, 1).forward(x);
    let differ = 0;
    for (let p = 76; p < n; p++) if (referenceSign(1, p, 1) !== referenceSign(1, p, 0)) differ++;
    expect(differ / (n - 76)).toBeGreaterThan(0.4); // independent signs: half differ (σ ≈ 0.016)
    // The second stage computed with the first stage's signs s^(0) in place of s^(1).
    const [first] = stagesOf(n);
    const afterFirst = referenceForward(x, n, 1, [first as { offset: number; length: number }]);
    const window = afterFirst.slice(76, n).map((v, i) => referenceSign(1, 76 + i, 0) * v);
    const transformed = contractTransform(window, 1024, 1, new Int8Array([1]), false);
    const c = Math.fround(1 / 32);
    let same = 0;
    for (let i = 0; i < 1024; i++) if (Math.fround((transformed[i] as number) * c) === y[76 + i]) same++;
    expect(same).toBeLessThan(50);
  });

  it.each([...windowed, ...modelWidths])('n = %d: preserves norms and inner products; inverse(forward(x)) ≈ x', (n) => {
    const rotation = new RandomizedHadamard(n, 99);
    const rng = new Rng(7 * n);
    for (let t = 0; t < 2; t++) {
      const x = randomVector(n, rng);
      const y = randomVector(n, rng);
      const fx = rotation.forward(x);
      const fy = rotation.forward(y);
      // Each entry carries two stages of ≤ 20 + log2 L + 1 relative f32 roundings (≈ 2^-24 each), and
      // c²·L = 1 up to 2^-23 per stage: 4e-6 relative covers it with a wide margin for n ≤ 2^15.
      expect(Math.abs(norm(fx) - norm(x))).toBeLessThan(4e-6 * norm(x));
      expect(Math.abs(dot(fx, fy) - dot(x, y))).toBeLessThan(4e-6 * norm(x) * norm(y));
      const back = rotation.inverse(fx);
      let err = 0;
      for (let i = 0; i < n; i++) err += ((back[i] as number) - (x[i] as number)) ** 2;
      expect(Math.sqrt(err)).toBeLessThan(2e-6 * norm(x));
    }
  });

  it('orthogonality holds for arbitrary inputs, sizes and seeds (fast-check, fixed seed)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1025, max: 5000 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 1000 }),
        (n, seed, dataSeed) => {
          const rotation = new RandomizedHadamard(n, seed);
          const rng = new Rng(dataSeed);
          const x = mixedMagnitudes(n, rng);
          const y = randomVector(n, rng);
          const fx = rotation.forward(x);
          const fy = rotation.forward(y);
          return (
            fx.length === rotation.length &&
            Math.abs(norm(fx) - norm(x)) < 4e-6 * norm(x) &&
            Math.abs(dot(fx, fy) - dot(x, y)) < 4e-6 * norm(x) * norm(y) &&
            norm(rotation.inverse(fx).map((v, i) => v - (x[i] as number))) < 2e-6 * norm(x)
          );
        },
      ),
      { seed: 20250601, numRuns: 40 },
    );
  });

  /**
   * The mixing guarantee on adversarial inputs. Given the first stage's output v, an entry of the
   * second window is a sum of ±v_q/√L with independent signs, so its variance is ‖v_window‖²/L ≤ ‖x‖²/L;
   * an entry before the second window is a first-stage output, variance ‖x_{[0,L)}‖²/L ≤ ‖x‖²/L. So a
   * run of R = 256 consecutive outputs holds on average at most R/L of the energy; its fluctuation is
   * that of ≈ R squared sub-Gaussian terms (relative sd ≈ √(2/R) ≈ 0.09), so 1.6·R/L (6.7 sd) bounds it.
   * A block-diagonal rotation fails this (a spike in a block of b keeps all its energy in b entries),
   * and so does a second stage without its own signs (a shifted Hadamard column has a peaky spectrum).
   */
  it.each([1100, 3000, 11008])('n = %d: no run of 256 outputs holds more than 1.6·256/L of any input’s energy', (n) => {
    const R = 256;
    const L = rotationPlan(n).stages[0]?.length as number;
    const inputs: [string, Float32Array][] = [];
    const spike = (p: number): Float32Array => {
      const e = new Float32Array(n);
      e[p] = 1;
      return e;
    };
    for (const p of [0, 5, n - L - 1, n - L, L - 1, L, n - 1]) inputs.push([`e_${p}`, spike(p)]);
    const rng = new Rng(n);
    const tailOutliers = randomVector(n, rng);
    for (let i = n - 300; i < n; i += 15) tailOutliers[i] = (tailOutliers[i] as number) * 100;
    inputs.push(['outliers ×100 in the last 300 entries', tailOutliers]);
    const headOutliers = randomVector(n, rng);
    for (let i = 0; i < n - L; i += 7) headOutliers[i] = (headOutliers[i] as number) * 100;
    inputs.push(['outliers ×100 before the second window', headOutliers]);
    for (const seed of [1, 2, 3]) {
      const rotation = new RandomizedHadamard(n, seed);
      for (const [name, x] of inputs) {
        const y = rotation.forward(x);
        const energy = dot(x, x);
        let worst = 0;
        for (let start = 0; start < n; start += R / 2) {
          let run = 0;
          for (let p = start; p < Math.min(start + R, n); p++) run += (y[p] as number) ** 2;
          worst = Math.max(worst, run / energy);
        }
        expect(worst, `${name}, seed ${seed}`).toBeLessThanOrEqual((1.6 * R) / L);
      }
    }
  });

  it('a spike before the second window spreads exactly flat there: |y_p| = c for p < n − L', () => {
    for (const n of [1100, 3000]) {
      const rotation = new RandomizedHadamard(n, 3);
      const L = rotation.plan.stages[0]?.length as number;
      for (const position of [0, n - L - 1]) {
        const e = new Float32Array(n);
        e[position] = 1;
        const y = rotation.forward(e);
        for (let p = 0; p < n - L; p++) expect(Math.abs(y[p] as number)).toBe(rotation.scale);
      }
    }
  });

  it('forwardColumns / inverseColumns equal the per-vector maps; out and in place work', () => {
    const n = 2100;
    const rotation = new RandomizedHadamard(n, 6);
    const a = gaussianMatrix(n, 3, 10);
    const rotated = rotation.forwardColumns(a);
    expect(rotated.rows).toBe(n);
    const back = rotation.inverseColumns(rotated);
    for (let j = 0; j < 3; j++) {
      const f = rotation.forward(a.data.slice(j * n, (j + 1) * n));
      expect(bits(rotated.data.slice(j * n, (j + 1) * n))).toEqual(bits(f));
      expect(bits(back.data.slice(j * n, (j + 1) * n))).toEqual(bits(rotation.inverse(f)));
    }
    const x = randomVector(n, new Rng(2));
    const expected = rotation.forward(x);
    const inPlace = x.slice();
    expect(rotation.forward(inPlace, inPlace)).toBe(inPlace);
    expect(bits(inPlace)).toEqual(bits(expected));
    rotation.inverse(inPlace, inPlace);
    expect(bits(inPlace)).toEqual(bits(rotation.inverse(expected)));
  });

  it('rotates 28672 × 64 (two windows of 24576) with one fast transform per window and column, allocating only the output', () => {
    // Counted, not timed: the work is 2 fast Hadamard transforms (O(L·log L)) per column, each on a
    // window of L = 24576, and the only allocation is the 28672 × 64 result — a dense transform would
    // need a 28672² matrix (3.3 GB) or 28672² multiply-adds per column, minutes.
    const a = gaussianMatrix(28672, 64, 1);
    const rotation = new RandomizedHadamard(28672, 1);
    const plan = rotationPlan(28672);
    expect(plan.stages.map((stage) => stage.length)).toEqual([24576, 24576]);
    Object.assign(transforms, { calls: 0, entries: 0, longest: 0 });
    const { result, bytes } = countAllocations(() => rotation.forwardColumns(a));
    if (!result.ok) throw result.error;
    expect(result.value.rows).toBe(28672);
    expect(transforms).toEqual({ calls: 64 * 2, entries: 64 * 2 * 24576, longest: 24576 });
    expect(bytes).toBe(28672 * 64 * 4);
  });

});

describe('RandomizedHadamard on one-stage plans: unchanged by windowed plans', () => {
  /** The rotation as it was: N = the smallest m·2^k ≥ n, one stage, c = fround(1/√N). */
  function singleLength(n: number): number {
    let best = Infinity;
    for (const m of [1, 12, 20]) {
      let v = m;
      while (v < n) v *= 2;
      best = Math.min(best, v);
    }
    return best;
  }

  it.each([1, 3, 9, 13, 100, 255, 768, 769, 1000, 1024, 1536, 4096, 5120, 6144])(
    'n = %d: same length and bits as one stage of the smallest m·2^k',
    (n) => {
      const N = singleLength(n);
      // 769 and 1000 rotate unpadded by default (two windows); asked for N, they keep the one stage bit for bit.
      const rotation = n > 256 && N !== n ? new RandomizedHadamard(n, 31337, N) : new RandomizedHadamard(n, 31337);
      expect(rotation.length).toBe(N);
      expect(rotation.plan.stages).toHaveLength(1);
      const x = mixedMagnitudes(n, new Rng(n));
      expect(bits(rotation.forward(x))).toEqual(bits(referenceForward(x, N, 31337, [{ offset: 0, length: N }])));
      const y = mixedMagnitudes(N, new Rng(n + 1));
      expect(bits(rotation.inverse(y))).toEqual(bits(referenceInverse(y, n, 31337, [{ offset: 0, length: N }])));
    },
  );
});
