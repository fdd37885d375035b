import { describe, expect, it, vi } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import type { Matrix } from '../../src/matrix.js';
import { hadamard12, hadamard20 } from '../../src/rotation/hadamard.js';
import { counterSign, gaussianMatrix, RandomStream, Rng } from '../../src/rotation/random.js';
import { RandomizedHadamard } from '../../src/rotation/randomizedHadamard.js';
import { countAllocations } from '../weightonly/fuzzProperty.js';

import { transforms } from './transformCounter.js';

// Counts the fast transform's calls (a pass-through: the rotation computes as before).
vi.mock('../../src/rotation/hadamard.js', async (importOriginal) =>
  (await import('./transformCounter.js')).countingHadamard(await importOriginal<typeof import('../../src/rotation/hadamard.js')>()),
);

function randomVector(length: number, rng: Rng): Float32Array {
  const v = new Float32Array(length);
  for (let i = 0; i < length; i++) v[i] = rng.nextGaussian();
  return v;
}

function dot(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < Math.min(x.length, y.length); i++) s += (x[i] as number) * (y[i] as number);
  return s;
}

const norm = (x: ArrayLike<number>): number => Math.sqrt(dot(x, x));

/** Smallest m·2^k ≥ n by enumeration (m ∈ {1, 12, 20}). */
function paddedLength(n: number): number {
  let best = Infinity;
  for (const m of [1, 12, 20]) {
    for (let v = m; v < 2 * n + 40; v *= 2) if (v >= n && v < best) best = v;
  }
  return best;
}

/** (H_N)[r][c] from the Sylvester formula and the Paley tables, in float64. */
function hadamardEntry(N: number, r: number, c: number): number {
  const m = N % 20 === 0 ? 20 : N % 12 === 0 ? 12 : 1;
  const table = m === 20 ? hadamard20 : m === 12 ? hadamard12 : new Int8Array([1]);
  let parity = 0;
  for (let v = Math.floor(r / m) & Math.floor(c / m); v !== 0; v >>>= 1) parity ^= v & 1;
  return (parity === 0 ? 1 : -1) * (table[(r % m) * m + (c % m)] as number);
}

const vectorSizes = [1, 3, 5, 12, 13, 20, 100, 768, 1000];

describe('RandomizedHadamard', () => {
  it.each(vectorSizes)('n = %d: length, scale and signs follow the definition', (n) => {
    const rotation = new RandomizedHadamard(n, 17);
    expect(rotation.n).toBe(n);
    expect(rotation.seed).toBe(17);
    // Past 256 entries, a length that is no m·2^k rotates unpadded: its first window is the largest m·2^k ≤ n.
    const padded = paddedLength(n);
    expect(rotation.length).toBe(n > 256 ? n : padded);
    const firstWindow = n > 256 && padded !== n ? 768 : padded; // 1000: [0, 768) and [232, 1000)
    expect(rotation.scale).toBe(Math.fround(1 / Math.sqrt(firstWindow)));
    expect(new RandomizedHadamard(n, 17, padded).length).toBe(padded);
    for (let i = 0; i < Math.min(n, 50); i++) expect(rotation.sign(i)).toBe(counterSign(17, RandomStream.rotationSigns, i));
  });

  it.each([1, 3, 5, 12, 13, 20, 40, 100])('n = %d: forward equals c·H_N·D·pad(x) computed densely in float64', (n) => {
    const rotation = new RandomizedHadamard(n, 5);
    const N = rotation.length;
    const x = randomVector(n, new Rng(n));
    const y = rotation.forward(x);
    expect(y.length).toBe(N);
    const c = 1 / Math.sqrt(N);
    for (let r = 0; r < N; r++) {
      let expected = 0;
      for (let i = 0; i < n; i++) expected += hadamardEntry(N, r, i) * counterSign(5, RandomStream.rotationSigns, i) * (x[i] as number);
      expect(Math.abs((y[r] as number) - c * expected)).toBeLessThan(1e-6 * norm(x));
    }
  });

  it.each(vectorSizes)('n = %d: preserves norms and inner products', (n) => {
    const rotation = new RandomizedHadamard(n, 99);
    const rng = new Rng(7 * n);
    for (let t = 0; t < 3; t++) {
      const x = randomVector(n, rng);
      const y = randomVector(n, rng);
      const fx = rotation.forward(x);
      const fy = rotation.forward(y);
      expect(Math.abs(norm(fx) - norm(x))).toBeLessThan(2e-6 * norm(x));
      expect(Math.abs(dot(fx, fy) - dot(x, y))).toBeLessThan(2e-6 * norm(x) * norm(y));
    }
  });

  it.each(vectorSizes)('n = %d: inverse(forward(x)) ≈ x to 1e-6 relative', (n) => {
    const rotation = new RandomizedHadamard(n, 2024);
    const rng = new Rng(n + 1);
    for (let t = 0; t < 3; t++) {
      const x = randomVector(n, rng);
      const back = rotation.inverse(rotation.forward(x));
      expect(back.length).toBe(n);
      let err = 0;
      for (let i = 0; i < n; i++) err += ((back[i] as number) - (x[i] as number)) ** 2;
      expect(Math.sqrt(err)).toBeLessThan(1e-6 * norm(x));
    }
  });

  it('spreads a spike evenly: every output of a unit vector has magnitude exactly c', () => {
    for (const n of [8, 12, 20, 24, 100]) {
      const rotation = new RandomizedHadamard(n, 3);
      for (const position of [0, n - 1]) {
        const e = new Float32Array(n);
        e[position] = 1;
        for (const v of rotation.forward(e)) expect(Math.abs(v)).toBe(rotation.scale);
      }
    }
  });

  it('zero padding: rotating n entries equals rotating them padded to N with the same seed', () => {
    const x = randomVector(13, new Rng(1));
    const padded = new Float32Array(16);
    padded.set(x);
    const short = new RandomizedHadamard(13, 44).forward(x);
    const long = new RandomizedHadamard(16, 44).forward(padded);
    for (let i = 0; i < 16; i++) expect(short[i] === long[i]).toBe(true);
  });

  it('the same seed gives identical bits, a different seed a different rotation', () => {
    const n = 768;
    const x = randomVector(n, new Rng(8));
    const a = new RandomizedHadamard(n, 12345).forward(x);
    const b = new RandomizedHadamard(n, 12345).forward(x);
    const c = new RandomizedHadamard(n, 12346).forward(x);
    expect(new Uint32Array(b.buffer)).toEqual(new Uint32Array(a.buffer));
    let same = 0;
    for (let i = 0; i < a.length; i++) if (a[i] === c[i]) same++;
    expect(same).toBeLessThan(a.length / 10);
    // The sign pattern itself is balanced.
    let minus = 0;
    const r = new RandomizedHadamard(n, 12345);
    for (let i = 0; i < n; i++) if (r.sign(i) === -1) minus++;
    expect(Math.abs(minus / n - 0.5)).toBeLessThan(0.08); // σ = 0.018
  });

  it('forwardColumns and inverseColumns equal the per-vector maps, bit for bit', () => {
    const n = 100;
    const rotation = new RandomizedHadamard(n, 6);
    const a = gaussianMatrix(n, 5, 10);
    const rotated = rotation.forwardColumns(a);
    expect(rotated.rows).toBe(128);
    expect(rotated.cols).toBe(5);
    const back = rotation.inverseColumns(rotated);
    expect(back.rows).toBe(n);
    expect(back.cols).toBe(5);
    for (let j = 0; j < 5; j++) {
      const column = a.data.slice(j * n, (j + 1) * n);
      const f = rotation.forward(column);
      expect(rotated.data.slice(j * 128, (j + 1) * 128)).toEqual(f);
      expect(back.data.slice(j * n, (j + 1) * n)).toEqual(rotation.inverse(f));
    }
    // Keeping all N rows: the rows past n undo the padding and are ≈ 0.
    const full = rotation.inverseColumns(rotated, 128);
    expect(full.rows).toBe(128);
    for (let j = 0; j < 5; j++) {
      for (let i = 0; i < 100; i++) expect(full.data[j * 128 + i]).toBe(back.data[j * n + i]);
      for (let i = 100; i < 128; i++) expect(Math.abs(full.data[j * 128 + i] as number)).toBeLessThan(1e-5);
    }
  });

  it('writes into out when given, and may work in place when n = N', () => {
    const rotation = new RandomizedHadamard(24, 1);
    const x = randomVector(24, new Rng(2));
    const expected = rotation.forward(x);
    const out = new Float32Array(24);
    expect(rotation.forward(x, out)).toBe(out);
    expect(out).toEqual(expected);
    const inPlace = x.slice();
    rotation.forward(inPlace, inPlace);
    expect(inPlace).toEqual(expected);
    const back = new Float32Array(24);
    expect(rotation.inverse(expected, back)).toBe(back);
    rotation.inverse(inPlace, inPlace);
    expect(inPlace).toEqual(back);
  });

  it('overwrites every entry of a reused out, the zero padding included (n = 100 → N = 128, out full of garbage)', () => {
    const rotation = new RandomizedHadamard(100, 3);
    const x = randomVector(100, new Rng(4));
    const expected = rotation.forward(x);
    const out = new Float32Array(128).fill(1e30);
    rotation.forward(x, out);
    expect(out).toEqual(expected);
  });

  it('accepts out right after x in one buffer (touching, not overlapping), and refuses one that overlaps by an entry', () => {
    const rotation = new RandomizedHadamard(24, 1);
    const memory = new Float32Array(48);
    memory.set(randomVector(24, new Rng(5)));
    const x = memory.subarray(0, 24);
    const expected = rotation.forward(x.slice());
    expect(rotation.forward(x, memory.subarray(24, 48))).toEqual(expected);
    expect(() => rotation.forward(memory.subarray(1, 25), memory.subarray(24, 48))).toThrow(/overlaps x without being x/);
  });

  it('inverseColumns past n (rows up to N) equals D·c·H_Nᵀ·y computed densely in float64, for any y', () => {
    // The padded tail's rows have signs too: s_i = counterSign(seed, rotationSigns, i) for every i < N.
    const n = 100;
    const seed = 77;
    const rotation = new RandomizedHadamard(n, seed);
    const N = rotation.length;
    expect(N).toBe(128);
    const y = randomVector(N, new Rng(6));
    const got = rotation.inverseColumns({ rows: N, cols: 1, data: y }, N);
    const c = 1 / Math.sqrt(N);
    for (let i = 0; i < N; i++) {
      let sum = 0;
      for (let r = 0; r < N; r++) sum += hadamardEntry(N, r, i) * (y[r] as number);
      const expected = counterSign(seed, RandomStream.rotationSigns, i) * c * sum;
      expect(Math.abs((got.data[i] as number) - expected), `row ${i}`).toBeLessThan(1e-5 * norm(y));
    }
  });

  it('rotates 6144 × 256 (a 6144-row matrix slice) with one fast transform per column, allocating only the output', () => {
    // Counted, not timed: the work is one fast Hadamard transform (O(N·(12 + log N)), N = 6144 = 12·2^9)
    // per column and the only allocation is the 6144 × 256 result — a quadratic transform would need a
    // 6144² matrix (150 MB) or 6144² multiply-adds per column, minutes.
    const a = gaussianMatrix(6144, 256, 1);
    const rotation = new RandomizedHadamard(6144, 1);
    Object.assign(transforms, { calls: 0, entries: 0, longest: 0 });
    const { result, bytes } = countAllocations(() => rotation.forwardColumns(a));
    if (!result.ok) throw result.error;
    expect(result.value.rows).toBe(6144);
    expect(transforms).toEqual({ calls: 256, entries: 256 * 6144, longest: 6144 });
    expect(bytes).toBe(6144 * 256 * 4);
  });


  it('refuses bad arguments with clear errors', () => {
    expect(() => new RandomizedHadamard(0, 1)).toThrow(LatticeMatmulError);
    expect(() => new RandomizedHadamard(2.5, 1)).toThrow(LatticeMatmulError);
    expect(() => new RandomizedHadamard(10, -1)).toThrow(/seed/);
    expect(() => new RandomizedHadamard(10, 2 ** 32)).toThrow(/seed/);
    expect(() => new RandomizedHadamard(10, 0.5)).toThrow(/seed/);
    const rotation = new RandomizedHadamard(10, 1);
    expect(() => rotation.forward(new Float32Array(9))).toThrow(/expected n = 10/);
    expect(rotation.length).toBe(12);
    expect(() => rotation.forward(new Float32Array(12))).toThrow(/expected n = 10/);
    expect(() => rotation.forward(new Float64Array(10) as unknown as Float32Array)).toThrow(LatticeMatmulError);
    expect(() => rotation.forward(new Float32Array(10).fill(Number.NaN))).toThrow(/non-finite/);
    expect(() => rotation.forward(new Float32Array(10), new Float32Array(10))).toThrow(/out has 10 entries/);
    const shared = new Float32Array(26);
    expect(() => rotation.forward(shared.subarray(0, 10), shared.subarray(5, 17))).toThrow(/overlaps/);
    expect(() => rotation.inverse(new Float32Array(10))).toThrow(/expected N = length = 12/);
    expect(() => rotation.inverse(new Float32Array(12), new Float32Array(12))).toThrow(/expected 10/);
    const bad: Matrix = { rows: 11, cols: 2, data: new Float32Array(22) };
    expect(() => rotation.forwardColumns(bad)).toThrow(/expected n = 10/);
    expect(() => rotation.inverseColumns(bad)).toThrow(/expected N = length = 12/);
    const rotated: Matrix = { rows: 12, cols: 1, data: new Float32Array(12) };
    expect(() => rotation.inverseColumns(rotated, 13)).toThrow(/rows must be/);
    expect(() => rotation.inverseColumns(rotated, 0)).toThrow(/rows must be/);
  });

  it('refuses entries whose unnormalized f32 sums overflow, naming the power of two to scale by; the scaled input rotates', () => {
    const rotation = new RandomizedHadamard(64, 0);
    // x_i = s_i·1e37: every sign undone, the first sum is 64e37 > f32's 3.4e38 before the 1/8 scale (the result, 8e37, would fit).
    const x = new Float32Array(64).map((_, i) => rotation.sign(i) * 1e37);
    const message = /RandomizedHadamard\.forward: x has entries up to 1\.00000e\+37, too large for the rotation's f32 sums \(they overflowed\); multiply the input by 2\^-26 and the result by 2\^26/;
    expect(() => rotation.forward(x)).toThrow(message);
    expect(() => rotation.forwardColumns({ rows: 64, cols: 1, data: x })).toThrow(/RandomizedHadamard\.forwardColumns: the matrix has entries up to/);
    const y = new Float32Array(64);
    y[0] = 3e38;
    y[1] = 3e38;
    expect(() => rotation.inverse(y)).toThrow(/RandomizedHadamard\.inverse: y has entries up to 3\.00000e\+38/);
    expect(() => rotation.inverseColumns({ rows: 64, cols: 1, data: y })).toThrow(/RandomizedHadamard\.inverseColumns: the matrix/);
    // Scaled as the message says, the same x rotates to 8e37·2^-26 in its first entry, exactly.
    const scaled = x.map((v) => v * 2 ** -26);
    expect(rotation.forward(scaled)[0]).toBe(Math.fround(Math.fround(64 * Math.fround(1e37 * 2 ** -26)) / 8));
  });
});
