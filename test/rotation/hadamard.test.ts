import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import {
  hadamard12,
  hadamard20,
  hadamardFactors,
  hadamardTransformInPlace,
  hadamardTransposeInPlace,
  rotationLength,
} from '../../src/rotation/hadamard.js';
import { Rng } from '../../src/rotation/random.js';

/** Every m·2^k ≤ limit, m ∈ {1, 12, 20}, sorted. */
function supportedLengths(limit: number): number[] {
  const values = new Set<number>();
  for (const m of [1, 12, 20]) for (let v = m; v <= limit; v *= 2) values.add(v);
  return [...values].sort((a, b) => a - b);
}

function popcount(x: number): number {
  let c = 0;
  for (let v = x; v !== 0; v >>>= 1) c += v & 1;
  return c;
}

/** The m × m table as a function (row-major Int8Array). */
function entry(table: Readonly<Int8Array>, m: number, r: number, c: number): number {
  return table[r * m + c] as number;
}

/** Dense H_N = H_{2^k} ⊗ H_m in float64, row-major, with the Sylvester entries (−1)^popcount(a & a'). */
function denseHadamard(N: number): Float64Array {
  const m = N % 20 === 0 ? 20 : N % 12 === 0 ? 12 : 1;
  const table = m === 20 ? hadamard20 : m === 12 ? hadamard12 : new Int8Array([1]);
  const dense = new Float64Array(N * N);
  for (let row = 0; row < N; row++) {
    const a = Math.floor(row / m);
    const b = row % m;
    for (let col = 0; col < N; col++) {
      const a2 = Math.floor(col / m);
      const b2 = col % m;
      const sylvester = popcount(a & a2) % 2 === 0 ? 1 : -1;
      dense[row * N + col] = sylvester * entry(table, m, b, b2);
    }
  }
  return dense;
}

function randomVector(length: number, rng: Rng): Float32Array {
  const v = new Float32Array(length);
  for (let i = 0; i < length; i++) v[i] = rng.nextGaussian();
  return v;
}

/**
 * The transform exactly as the contract is worded, with Math.fround on every sum (the GPU kernel's
 * recipe): step 1 block sums left to right, step 2 loops over h and over every a with (a & h) = 0.
 */
function contractTransform(x: Float32Array, N: number, m: number, table: Readonly<Int8Array>, transpose: boolean): Float32Array {
  const y = Float32Array.from(x.subarray(0, N));
  const blocks = N / m;
  if (m > 1) {
    for (let a = 0; a < blocks; a++) {
      const block: number[] = [];
      for (let b = 0; b < m; b++) {
        const h = (b2: number): number => (transpose ? entry(table, m, b2, b) : entry(table, m, b, b2));
        let acc = h(0) * (y[a * m] as number);
        for (let b2 = 1; b2 < m; b2++) acc = Math.fround(acc + h(b2) * (y[a * m + b2] as number));
        block.push(acc);
      }
      block.forEach((v, b) => (y[a * m + b] = v));
    }
  }
  for (let h = 1; h < blocks; h *= 2) {
    for (let a = 0; a < blocks; a++) {
      if ((a & h) !== 0) continue;
      for (let b = 0; b < m; b++) {
        const u = y[a * m + b] as number;
        const v = y[(a + h) * m + b] as number;
        y[a * m + b] = Math.fround(u + v);
        y[(a + h) * m + b] = Math.fround(u - v);
      }
    }
  }
  return y;
}

describe('rotationLength', () => {
  const lengths = supportedLengths(2 ** 24);
  const bruteForce = (n: number): number => lengths.find((v) => v >= n) as number;

  it('is the smallest m·2^k ≥ n for every n ≤ 5000 and at sampled larger n', () => {
    for (let n = 1; n <= 5000; n++) expect(rotationLength(n)).toBe(bruteForce(n));
    const rng = new Rng(3);
    for (let t = 0; t < 500; t++) {
      const n = 1 + rng.nextInt(2 ** 24);
      expect(rotationLength(n)).toBe(bruteForce(n));
    }
  });

  it.each([
    [1, 1],
    [2, 2],
    [3, 4],
    [5, 8],
    [9, 12],
    [12, 12],
    [13, 16],
    [17, 20],
    [20, 20],
    [21, 24],
    [24, 24],
    [33, 40],
    [40, 40],
    [100, 128],
    [768, 768],
    [1000, 1024],
    [1536, 1536],
    [4097, 5120],
    [6144, 6144],
  ])('rotationLength(%d) = %d', (n, expected) => {
    expect(rotationLength(n)).toBe(expected);
  });

  it('refuses n that is not a positive integer', () => {
    for (const bad of [0, -1, 2.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => rotationLength(bad)).toThrow(LatticeMatmulError);
    }
  });
});

describe('hadamardFactors', () => {
  it('splits every supported length as m·pow2 with pow2 a power of two', () => {
    for (const N of supportedLengths(2 ** 30)) {
      const { m, pow2 } = hadamardFactors(N);
      expect(m * pow2).toBe(N);
      expect(Number.isInteger(Math.log2(pow2))).toBe(true);
      expect(m === 1 || m === 12 || m === 20).toBe(true);
      if (Number.isInteger(Math.log2(N))) expect(m).toBe(1);
    }
    expect(hadamardFactors(6144)).toEqual({ m: 12, pow2: 512 });
    expect(hadamardFactors(20)).toEqual({ m: 20, pow2: 1 });
    expect(hadamardFactors(1)).toEqual({ m: 1, pow2: 1 });
  });

  it.each([3, 5, 6, 7, 9, 10, 36, 60, 80 * 3, 100, 0, -4, 1.5])('refuses %d', (N) => {
    expect(() => hadamardFactors(N)).toThrow(LatticeMatmulError);
  });
});

describe.each([
  ['hadamard12', hadamard12, 12, 11],
  ['hadamard20', hadamard20, 20, 19],
])('%s', (_name, table, m, q) => {
  it('has entries ±1 and H·Hᵀ = Hᵀ·H = m·I', () => {
    expect(table.length).toBe(m * m);
    for (const v of table) expect(Math.abs(v)).toBe(1);
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < m; j++) {
        let rows = 0;
        let cols = 0;
        for (let k = 0; k < m; k++) {
          rows += entry(table, m, i, k) * entry(table, m, j, k);
          cols += entry(table, m, k, i) * entry(table, m, k, j);
        }
        expect(rows).toBe(i === j ? m : 0);
        expect(cols).toBe(i === j ? m : 0);
      }
    }
  });

  it(`is Paley construction I from the quadratic residues mod ${q}`, () => {
    const squares = new Set<number>();
    for (let x = 1; x < q; x++) squares.add((x * x) % q);
    for (let j = 0; j < m; j++) expect(entry(table, m, 0, j)).toBe(1);
    for (let i = 1; i < m; i++) {
      expect(entry(table, m, i, 0)).toBe(-1);
      for (let j = 1; j < m; j++) {
        const expected = i === j ? 1 : squares.has((((j - i) % q) + q) % q) ? 1 : -1;
        expect(entry(table, m, i, j)).toBe(expected);
      }
    }
    // Skew-Hadamard: H + Hᵀ = 2I, so H is not symmetric and the transposed transform is needed.
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < m; j++) expect(entry(table, m, i, j) + entry(table, m, j, i)).toBe(i === j ? 2 : 0);
    }
  });
});

describe('hadamardTransformInPlace / hadamardTransposeInPlace', () => {
  const sizes = [1, 2, 4, 12, 20, 24, 40, 48, 64, 96, 160];

  it.each(sizes)('N = %d: equals the dense Kronecker product H_N·x (and H_Nᵀ·x) in float64', (N) => {
    const dense = denseHadamard(N);
    const rng = new Rng(N);
    for (let trial = 0; trial < 3; trial++) {
      const x = randomVector(N, rng);
      const forward = x.slice();
      const transpose = x.slice();
      hadamardTransformInPlace(forward, N);
      hadamardTransposeInPlace(transpose, N);
      let norm1 = 0;
      for (const v of x) norm1 += Math.abs(v);
      for (let r = 0; r < N; r++) {
        let byRow = 0;
        let byColumn = 0;
        for (let c = 0; c < N; c++) {
          byRow += (dense[r * N + c] as number) * (x[c] as number);
          byColumn += (dense[c * N + r] as number) * (x[c] as number);
        }
        // Each output is a sum of ±x with ≤ m + log2 N f32 roundings, each ≤ 2^-24 of a partial sum ≤ ‖x‖₁.
        const tolerance = (20 + Math.log2(N) + 1) * 2 ** -24 * norm1;
        expect(Math.abs((forward[r] as number) - byRow)).toBeLessThanOrEqual(tolerance);
        expect(Math.abs((transpose[r] as number) - byColumn)).toBeLessThanOrEqual(tolerance);
      }
    }
  });

  it.each(sizes)('N = %d: unit vectors map exactly to the columns of H_N (and of H_Nᵀ)', (N) => {
    const dense = denseHadamard(N);
    for (let c = 0; c < N; c++) {
      const forward = new Float32Array(N);
      forward[c] = 1;
      const transpose = forward.slice();
      hadamardTransformInPlace(forward, N);
      hadamardTransposeInPlace(transpose, N);
      for (let r = 0; r < N; r++) {
        expect(forward[r]).toBe(dense[r * N + c]);
        expect(transpose[r]).toBe(dense[c * N + r]);
      }
    }
  });

  it.each([...sizes, 192, 320, 768, 1024, 1280])(
    'N = %d: follows the f32 operation order of the contract bit for bit',
    (N) => {
      const m = N % 20 === 0 ? 20 : N % 12 === 0 ? 12 : 1;
      const table = m === 20 ? hadamard20 : m === 12 ? hadamard12 : new Int8Array([1]);
      const rng = new Rng(1000 + N);
      // Values of very different magnitudes make the rounding of each step visible.
      const x = randomVector(N, rng).map((v, i) => v * 2 ** ((i * 7) % 23 - 11));
      for (const transpose of [false, true]) {
        const got = x.slice();
        if (transpose) hadamardTransposeInPlace(got, N);
        else hadamardTransformInPlace(got, N);
        const expected = contractTransform(x, N, m, table, transpose);
        expect(new Uint32Array(got.buffer)).toEqual(new Uint32Array(expected.buffer));
      }
    },
  );

  it('the contract order is observable: summing a block in another order changes some bits', () => {
    // Guards the bit-exactness test above against being vacuous: with these inputs a different
    // accumulation order (right to left) gives different f32 results.
    const N = 12;
    const x = new Float32Array(N).map((_, i) => (1 + i / 7) * 2 ** ((i * 5) % 19 - 9));
    const got = x.slice();
    hadamardTransformInPlace(got, N);
    let differs = false;
    for (let b = 0; b < 12; b++) {
      let acc = entry(hadamard12, 12, b, 11) * (x[11] as number);
      for (let b2 = 10; b2 >= 0; b2--) acc = Math.fround(acc + entry(hadamard12, 12, b, b2) * (x[b2] as number));
      if (acc !== got[b]) differs = true;
    }
    expect(differs).toBe(true);
  });

  it('transposed after forward gives N·x (H_Nᵀ·H_N = N·I)', () => {
    for (const N of [12, 20, 96, 640]) {
      const x = randomVector(N, new Rng(N));
      const y = x.slice();
      hadamardTransformInPlace(y, N);
      hadamardTransposeInPlace(y, N);
      for (let i = 0; i < N; i++) expect(Math.abs((y[i] as number) / N - (x[i] as number))).toBeLessThan(1e-5);
    }
  });

  it('works on the first N entries of a longer array and leaves the rest alone', () => {
    const x = new Float32Array([1, 2, 3, 4, 99]);
    hadamardTransformInPlace(x, 4);
    expect([...x]).toEqual([10, -2, -4, 0, 99]);
  });

  it('refuses unsupported N, short arrays and other array types', () => {
    expect(() => hadamardTransformInPlace(new Float32Array(6), 6)).toThrow(LatticeMatmulError);
    expect(() => hadamardTransformInPlace(new Float32Array(8), 16)).toThrow(/fewer than N/);
    expect(() => hadamardTransposeInPlace(new Float32Array(12), 24)).toThrow(LatticeMatmulError);
    expect(() => hadamardTransformInPlace(new Float64Array(4) as unknown as Float32Array, 4)).toThrow(
      LatticeMatmulError,
    );
    expect(() => hadamardTransformInPlace(new Float32Array(4), 0)).toThrow(LatticeMatmulError);
  });
});
