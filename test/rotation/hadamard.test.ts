import { describe, expect, it } from 'vitest';
import { LatticeMatmulError } from '../../src/errors.js';
import {
  hadamard12,
  hadamard20,
  hadamardFactors,
  hadamardTransformInPlace,
  hadamardTransposeInPlace,
  isRotationLength,
  isShortWindowedRotation,
  MAX_DEFAULT_PADDED_ROTATION_N,
  MAX_PADDED_ROTATION_N,
  oneStageRotationLength,
  rotationLength,
  rotationPlan,
} from '../../src/rotation/hadamard.js';
import { Rng } from '../../src/rotation/random.js';
import { contractTransform, tableEntry as entry } from './rotationReference.js';

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

/** Smallest m·2^k ≥ n (m ∈ {1, 12, 20}): the rotation length before windowed plans existed. */
function singleLength(n: number): number {
  let best = Infinity;
  for (const m of [1, 12, 20]) {
    let v = m;
    while (v < n) v *= 2;
    best = Math.min(best, v);
  }
  return best;
}

const windows = (n: number): [number, number][] => rotationPlan(n).stages.map((s) => [s.offset, s.length]);

describe('rotationLength and rotationPlan', () => {
  it('n ≤ 256 or a Hadamard length: one stage of the smallest m·2^k ≥ n by default (every n ≤ 65536)', () => {
    expect(MAX_DEFAULT_PADDED_ROTATION_N).toBe(256);
    expect(MAX_PADDED_ROTATION_N).toBe(1024);
    const lengths = new Set(supportedLengths(2 ** 17));
    for (let n = 1; n <= 65536; n++) {
      if (n > 256 && !lengths.has(n)) continue;
      const N = singleLength(n);
      const plan = rotationPlan(n);
      if (plan.length !== N || plan.stages.length !== 1) expect({ n, plan }).toEqual({ n, plan: { length: N, stages: [{ offset: 0, length: N }] } });
      expect(rotationLength(n)).toBe(N);
    }
  });

  it('n > 256, not a Hadamard length: no padding by default, windows [0, L) and [n − L, n), L the largest m·2^k ≤ n (every n ≤ 65536)', () => {
    const lengths = supportedLengths(2 ** 17);
    const lengthSet = new Set(lengths);
    for (let n = 257; n <= 65536; n++) {
      if (lengthSet.has(n)) continue;
      const L = lengths.filter((v) => v <= n).at(-1) as number;
      const got = windows(n);
      if (rotationLength(n) !== n || got.join() !== [[0, L], [n - L, L]].join()) {
        expect({ n, length: rotationLength(n), windows: got }).toEqual({ n, length: n, windows: [[0, L], [n - L, L]] });
      }
      // The windows overlap and cover [0, n): L > 3n/4 (consecutive Hadamard lengths differ by ≤ 4/3).
      expect(4 * L).toBeGreaterThan(3 * n);
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
    [255, 256],
    [256, 256],
    [768, 768],
    [1024, 1024],
    [1536, 1536],
    [6144, 6144],
  ])('rotationLength(%d) = %d, one stage', (n, expected) => {
    expect(rotationLength(n)).toBe(expected);
    expect(rotationPlan(n).stages).toEqual([{ offset: 0, length: expected, ...hadamardFactors(expected) }]);
  });

  // By hand: L = the largest of 2^k, 12·2^k, 20·2^k not above n.
  // 1025: 1024. 1100: 1024 (1280 > 1100). 3000: 2560 = 20·128 (3072 > 3000). 4097: 4096.
  // 11008: 10240 = 20·512 (12288 > 11008). 13824: 12288 = 12·1024 (16384 > 13824). 14336: 12288.
  // 28672: 24576 = 12·2048 (32768 > 28672).
  // 257: 256. 576: 512 (640 > 576). 769: 768. 896: 768 (960 is not m·2^k, 1024 > 896). 960: 768. 1000: 768.
  it.each([
    [257, 256],
    [576, 512],
    [769, 768],
    [896, 768],
    [960, 768],
    [1000, 768],
    [1025, 1024],
    [1100, 1024],
    [3000, 2560],
    [4097, 4096],
    [11008, 10240],
    [13824, 12288],
    [14336, 12288],
    [28672, 24576],
  ])('n = %d: two windows of %d, no padding', (n, L) => {
    expect(rotationLength(n)).toBe(n);
    expect(rotationPlan(n).stages).toEqual([
      { offset: 0, length: L, ...hadamardFactors(L) },
      { offset: n - L, length: L, ...hadamardFactors(L) },
    ]);
  });

  it('padding: none by default for every n > 256 and every listed model width', () => {
    for (const n of [576, 768, 896, 960, 1024, 2048, 3072, 4096, 5120, 8192, 11008, 13824, 14336, 28672]) expect(rotationLength(n)).toBe(n);
    let worst = 0;
    let worstAt = 0;
    for (let n = 1; n <= 65536; n++) {
      const padding = (rotationLength(n) - n) / n;
      if (n > 256) expect(padding).toBe(0);
      if (padding > worst) [worst, worstAt] = [padding, n];
    }
    expect([worst, worstAt]).toEqual([3 / 5, 5]); // 5 → 8, unchanged
  });

  it('a plan is frozen, its stages are Hadamard lengths that cover [0, N), and it depends on N alone', () => {
    const rng = new Rng(11);
    const ns = [1, 2, 255, 1000, 1025, 3000, 11008, 2 ** 20 + 1, 3 * 2 ** 20 - 7, 2 ** 30];
    for (let t = 0; t < 200; t++) ns.push(1 + rng.nextInt(2 ** 24));
    for (const n of ns) {
      const plan = rotationPlan(n);
      expect(Object.isFrozen(plan) && Object.isFrozen(plan.stages) && plan.stages.every((s) => Object.isFrozen(s))).toBe(true);
      expect(plan.length).toBeGreaterThanOrEqual(n);
      const covered = new Set<number>();
      for (const stage of plan.stages) {
        expect(hadamardFactors(stage.length)).toEqual({ m: stage.m, pow2: stage.pow2 });
        expect(stage.offset + stage.length).toBeLessThanOrEqual(plan.length);
        covered.add(stage.offset).add(stage.offset + stage.length - 1);
      }
      expect(plan.stages[0]?.offset).toBe(0);
      expect((plan.stages.at(-1) as (typeof plan.stages)[number]).offset + (plan.stages.at(-1)?.length ?? 0)).toBe(plan.length);
      if (plan.stages.length === 2) expect(plan.stages[1]?.offset).toBeLessThan(plan.stages[0]?.length ?? 0); // overlap
      expect(rotationPlan(plan.length)).toEqual(plan);
    }
  });

  it('the padded one-stage plan of 256 < n ≤ 1024 (time-sharing, containers of format ≤ 2): the smallest m·2^k ≥ n, as before', () => {
    const lengths = new Set(supportedLengths(2048));
    for (let n = 257; n <= 1024; n++) {
      const N = singleLength(n);
      expect(oneStageRotationLength(n)).toBe(N);
      expect(isRotationLength(n, N)).toBe(true);
      const plan = rotationPlan(n, N);
      if (plan.length !== N || plan.stages.length !== 1) expect({ n, plan }).toEqual({ n, plan: { length: N, stages: [{ offset: 0, length: N }] } });
      // The unpadded plan exists too, and only it is "short windowed" (format version 3).
      expect(isRotationLength(n, n)).toBe(true);
      expect(isShortWindowedRotation(n, n)).toBe(!lengths.has(n));
      expect(isShortWindowedRotation(n, N)).toBe(false);
    }
  });

  it('no n ≤ 256 is "short windowed": one that is no Hadamard length has no unpadded rotation (a container claiming one is refused for that, not for its format version)', () => {
    for (let n = 1; n <= 256; n++) {
      expect(isShortWindowedRotation(n, n), `n = ${n}`).toBe(false);
      expect(isShortWindowedRotation(n, singleLength(n)), `n = ${n}`).toBe(false);
    }
  });

  it('which (n, N) exist: N = n past 256 or for a Hadamard length, the padded length up to 1024; nothing else', () => {
    for (let n = 1; n <= 1100; n++) {
      const single = singleLength(n);
      for (const N of [n - 1, n, n + 1, single, single + 1, 2 * single]) {
        const expected = (N === n && (n > 256 || single === n)) || (N === single && n <= 1024);
        if (isRotationLength(n, N) !== expected) expect({ n, N, valid: isRotationLength(n, N) }).toEqual({ n, N, valid: expected });
        if (expected) expect(rotationPlan(n, N).length).toBe(N);
        else expect(() => rotationPlan(n, N)).toThrow(/rotationPlan: no rotation of n = \d+ entries to/);
      }
    }
    expect(isRotationLength(100, 100)).toBe(false);
    expect(isRotationLength(1100, 1280)).toBe(false);
    expect(() => oneStageRotationLength(1100)).toThrow(/no one-stage rotation: it is not a Hadamard length/);
    expect(oneStageRotationLength(4096)).toBe(4096);
    for (const bad of [Number.NaN, 2.5, -1]) expect(isRotationLength(896, bad)).toBe(false);
  });

  it('refuses n that is not a positive integer', () => {
    for (const bad of [0, -1, 2.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
      expect(() => rotationLength(bad)).toThrow(LatticeMatmulError);
      expect(() => rotationPlan(bad)).toThrow(/rotationPlan: n must be a positive integer/);
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
